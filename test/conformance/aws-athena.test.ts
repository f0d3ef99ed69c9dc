/**
 * The query-engine conformance suite on the aws backend's {@link AthenaQueryEngine}, against
 * FAKES, not AWS: no Athena or Glue emulator exists here. The catalog is the real
 * {@link GlueCatalog} over a fake Glue (test/helpers/fake-glue.ts); the data is written through a
 * {@link LocalObjectStore} whose layer directories stand in for the four buckets; the fake Athena
 * (test/helpers/fake-athena.ts) runs each statement on DuckDB over views it builds from the fake
 * Glue's tables and partitions (`s3://bucket/key` mapped to those directories), and answers in
 * Athena's API shapes (states over polls, header row, `VarCharValue` text, `ColumnInfo` types).
 * So this checks the adapter's request flow, name rewriting and value conversion, not Athena's SQL.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AthenaQueryEngine } from '../../src/backends/aws/athena-query-engine.ts';
import { GlueCatalog } from '../../src/backends/aws/glue-catalog.ts';
import { LocalObjectStore } from '../../src/backends/local/local-object-store.ts';
import type { Clock } from '../../src/core/clock.ts';
import { TEST_BUCKETS } from '../helpers/aws-buckets.ts';
import { installFakeAthena } from '../helpers/fake-athena.ts';
import { installFakeGlue } from '../helpers/fake-glue.ts';
import { queryEngineConformance } from './query-engine.case.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const BUCKETS = TEST_BUCKETS;

/** Polls without waiting: the fake answers every poll at once. */
const instantClock: Clock = { now: () => new Date(), sleep: async () => {} };

queryEngineConformance('aws (Athena + Glue, faked)', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-athena-'));
  const objectStore = new LocalObjectStore(path.join(dir, 'lake'));
  const glue = installFakeGlue();
  const catalog = new GlueCatalog(glue.client, { databasePrefix: 'sluice_test_', buckets: BUCKETS });
  const athena = installFakeAthena({
    glue,
    bucketDirs: Object.fromEntries(
      Object.entries(BUCKETS).map(([layer, bucket]) => [bucket, path.join(objectStore.root, layer)]),
    ),
  });
  return {
    objectStore,
    catalog,
    openEngine: () =>
      AthenaQueryEngine.open({
        client: athena.client,
        databasePrefix: 'sluice_test_',
        workgroup: 'sluice-test',
        catalog,
        clock: instantClock,
      }),
    close: async () => {
      await athena.close();
      glue.restore();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
