/**
 * End to end: the gharchive pipeline on the aws backend (`createAwsBackend`) against emulators and
 * fakes: S3 on s3rver, DynamoDB on dynalite (tables created on first use), the Glue Data Catalog
 * and Athena faked with aws-sdk-client-mock at class level (the backend builds its own clients).
 * The fake Athena runs statements on DuckDB over the files s3rver keeps on disk for the objects
 * under each registered partition's location (`objectSuffix: '._S3rver_object'`).
 *
 * It runs the real hour 2015-01-01-0 (7,702 events) served over HTTP on 127.0.0.1; every expected
 * value is computed here from the raw sample file, not by sluice's code.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { GetItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGharchive } from '../../pipelines/gharchive/run.ts';
import { type Clock, systemClock } from '../../src/core/clock.ts';
import type { PipelineContext } from '../../src/core/context.ts';
import { type StaticServer, serveDirectory } from '../../src/sources/http/static-server.ts';
import { type AwsStack, startAwsStack } from '../helpers/aws-stack.ts';
import { countBy, GHARCHIVE_SAMPLE, sampleLines } from '../helpers/samples.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const HOUR0 = new Date('2015-01-01T00:00:00Z');
const FILE = '2015-01-01-0.json.gz';
const LANDING_KEY = `gharchive/date=2015-01-01/${FILE}`;
const PARTITION_PREFIX = 'gharchive/events/year=2015/month=01/dayofmonth=01/';
const TABLE_PREFIX = 'e2e-gharchive-';

/**
 * What the sample should turn into, from the raw file alone: a line is valid when it is a JSON
 * object with a decimal integer `id` and a parseable `created_at`; the first line of each id is
 * loaded, later ones are duplicates, invalid ones quarantined.
 */
function expectedFromSample() {
  const lines = sampleLines();
  const seen = new Set<string>();
  const loadedEvents: Record<string, unknown>[] = [];
  let duplicates = 0;
  let quarantined = 0;
  for (const line of lines) {
    let event: unknown;
    try {
      event = JSON.parse(line);
    } catch {
      quarantined++;
      continue;
    }
    const e = event as Record<string, unknown> | null;
    const valid =
      e !== null &&
      typeof e === 'object' &&
      !Array.isArray(e) &&
      /^\d+$/.test(String(e.id)) &&
      typeof e.created_at === 'string' &&
      !Number.isNaN(Date.parse(e.created_at));
    if (!valid) quarantined++;
    else if (seen.has(String(e.id))) duplicates++;
    else {
      seen.add(String(e.id));
      loadedEvents.push(e);
    }
  }
  return {
    totals: { read: lines.length, loaded: loadedEvents.length, duplicates, quarantined },
    byType: countBy(loadedEvents, (e) => String(e.type)),
  };
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Sluice's clock shifted so that "now" starts at 2015-01-04T00:00Z: an incremental run's first hour is 2015-01-01T00. */
function shiftedClock(start: Date): Clock {
  const offset = Date.now() - start.getTime();
  return { now: () => new Date(Date.now() - offset), sleep: (ms) => systemClock.sleep(ms) };
}

describe('gharchive on the aws backend (s3rver, dynalite, fake Glue and Athena)', () => {
  const expected = expectedFromSample();
  let stack: AwsStack;
  let s3: AwsStack['s3'];
  let http: StaticServer;
  let glue: AwsStack['glue'];
  let athena: AwsStack['athena'];
  let backend: AwsStack['backend'];
  let ctx: PipelineContext;
  let s3Client: AwsStack['s3Client'];
  let dynamo: AwsStack['dynamo'];

  beforeAll(async () => {
    [stack, http] = await Promise.all([
      startAwsStack({
        tablePrefix: TABLE_PREFIX,
        clock: shiftedClock(new Date('2015-01-04T00:00:00Z')),
      }),
      serveDirectory(path.dirname(GHARCHIVE_SAMPLE)),
    ]);
    ({ s3, glue, athena, backend, s3Client, dynamo } = stack);
    ctx = stack.ctx();
  });

  afterAll(async () => {
    await Promise.all([stack?.close(), http?.close()]);
  });

  /** Keys under the partition prefix in the analytical bucket (plain S3 listing). */
  async function partitionKeys(): Promise<string[]> {
    const out = await s3Client.send(
      new ListObjectsV2Command({ Bucket: s3.buckets.analytical, Prefix: PARTITION_PREFIX }),
    );
    return (out.Contents ?? []).map((o) => o.Key ?? '').sort();
  }

  async function query(sql: string): Promise<Record<string, unknown>[]> {
    const engine = await backend.openQueryEngine();
    try {
      return (await engine.query(sql)).rows;
    } finally {
      await engine.close();
    }
  }

  async function typeCounts(): Promise<Record<string, number>> {
    const rows = await query('SELECT type, count(*) AS n FROM gharchive.events GROUP BY type');
    return Object.fromEntries(rows.map((r) => [String(r.type), Number(r.n)]));
  }

  let firstFiles: string[] = [];

  it('lands, transforms, catalogs and queries exactly the events of the raw file', async () => {
    const summary = await runGharchive(ctx, { to: HOUR0, sourceUrl: http.url });
    expect(summary.mode).toBe('incremental');
    expect(summary.hours.map((h) => [h.file, h.status])).toEqual([[FILE, 'succeeded']]);
    expect(summary.exitCode).toBe(0);
    expect(summary.totals).toEqual(expected.totals);
    const t = summary.totals;
    expect(t.read).toBe(t.loaded + t.duplicates + t.quarantined);
    expect(summary.bookmark).toEqual({ before: null, after: FILE });
    expect(http.requests).toContain(`/${FILE}`);

    // Landing: the raw file, byte for byte, read back with a plain S3 client.
    const landed = await s3Client.send(
      new GetObjectCommand({ Bucket: s3.buckets.landing, Key: LANDING_KEY }),
    );
    const landedBytes = await landed.Body!.transformToByteArray();
    expect(sha256(landedBytes)).toBe(sha256(await readFile(GHARCHIVE_SAMPLE)));

    // Analytical: Parquet objects (magic `PAR1` at both ends) under the Hive partition prefix.
    firstFiles = await partitionKeys();
    expect(firstFiles.length).toBeGreaterThan(0);
    for (const key of firstFiles) {
      expect(key).toMatch(/\.parquet$/);
      const object = await s3Client.send(new GetObjectCommand({ Bucket: s3.buckets.analytical, Key: key }));
      const bytes = Buffer.from(await object.Body!.transformToByteArray());
      expect(bytes.subarray(0, 4).toString('latin1')).toBe('PAR1');
      expect(bytes.subarray(-4).toString('latin1')).toBe('PAR1');
    }

    // Glue: table gharchive.events with the dataset's partition keys, and the partition with its files.
    const table = glue.table('gharchive', 'events');
    expect(table?.PartitionKeys?.map((k) => [k.Name, k.Type])).toEqual([
      ['year', 'int'],
      ['month', 'int'],
      ['dayofmonth', 'int'],
    ]);
    expect(table?.StorageDescriptor?.Location).toBe(`s3://${s3.buckets.analytical}/gharchive/events/`);
    const partitions = glue.partitions('gharchive', 'events');
    expect(partitions.map((p) => p.Values)).toEqual([['2015', '01', '01']]);
    const [partition] = partitions;
    expect(partition?.StorageDescriptor?.Location).toBe(`s3://${s3.buckets.analytical}/${PARTITION_PREFIX}`);
    const files = JSON.parse(partition?.Parameters?.['sluice:files'] ?? '[]') as { key: string }[];
    expect(files.map((f) => f.key).sort()).toEqual(firstFiles);
    expect(partition?.Parameters?.numRows).toBe(String(expected.totals.loaded));

    // DynamoDB (plain client): the job's bookmark and the run records of both steps.
    const job = await dynamo.send(
      new GetItemCommand({ TableName: `${TABLE_PREFIX}jobs`, Key: { job_id: { S: 'gharchive' } } }),
    );
    expect(job.Item?.bookmark?.M?.last_file?.S).toBe(FILE);
    expect(job.Item?.bookmark?.M?.run_id?.S).toBe(summary.runId);
    const runs = await dynamo.send(
      new QueryCommand({
        TableName: `${TABLE_PREFIX}sluice_runs`,
        KeyConditionExpression: 'pipeline = :p',
        ExpressionAttributeValues: { ':p': { S: 'gharchive' } },
      }),
    );
    const steps = (runs.Items ?? []).map((i) => [i.step?.S, i.unit?.S, i.status?.S, i.run_id?.S]);
    expect(steps.sort()).toEqual([
      ['ingest', FILE, 'succeeded', summary.runId],
      ['transform', FILE, 'succeeded', summary.runId],
    ]);
    const transformRun = runs.Items?.find((i) => i.step?.S === 'transform');
    const counts = transformRun?.counts?.M ?? {};
    expect(Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, Number(v.N)]))).toEqual(
      expected.totals,
    );

    // Athena (the fake, over the objects s3rver holds): events per type as in the raw file.
    expect(await typeCounts()).toEqual(expected.byType);
    const ran = [...athena.executions.values()].map((e) => [e.input.QueryString, e.state]);
    expect(ran).toContainEqual([expect.stringMatching(/GROUP BY type/), 'SUCCEEDED']);
  });

  it('is idempotent: re-running the hour adds no rows and no partition files', async () => {
    const again = await runGharchive(ctx, { from: HOUR0, to: HOUR0, sourceUrl: http.url });
    expect(again.mode).toBe('backfill');
    expect(again.exitCode).toBe(0);
    expect(again.totals).toEqual(expected.totals);

    expect(await partitionKeys()).toEqual(firstFiles);
    const partitions = glue.partitions('gharchive', 'events');
    expect(partitions).toHaveLength(1);
    const files = JSON.parse(partitions[0]?.Parameters?.['sluice:files'] ?? '[]') as { key: string }[];
    expect(files.map((f) => f.key).sort()).toEqual(firstFiles);

    const [count] = await query('SELECT count(*) AS n, count(DISTINCT id) AS ids FROM gharchive.events');
    expect({ n: Number(count?.n), ids: Number(count?.ids) }).toEqual({
      n: expected.totals.loaded,
      ids: expected.totals.loaded,
    });
    expect(await typeCounts()).toEqual(expected.byType);

    // A backfill leaves the bookmark where the incremental run put it.
    const job = await dynamo.send(
      new GetItemCommand({ TableName: `${TABLE_PREFIX}jobs`, Key: { job_id: { S: 'gharchive' } } }),
    );
    expect(job.Item?.bookmark?.M?.last_file?.S).toBe(FILE);
  });
});
