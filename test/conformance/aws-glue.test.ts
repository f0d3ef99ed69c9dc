/**
 * The catalog conformance suite on the aws backend's {@link GlueCatalog}, against a FAKE Glue
 * (test/helpers/fake-glue.ts: in-memory state behind aws-sdk-client-mock). This is not AWS: no
 * Glue emulator exists here, so the fake implements the Glue API semantics the adapter relies on
 * (lowercased names, AlreadyExists/EntityNotFound, table versions with SkipArchive, per-entry batch
 * errors, pagination, unordered GetPartitions). Exact request shapes are asserted in
 * src/backends/aws/glue-catalog.test.ts.
 */
import { GlueCatalog } from '../../src/backends/aws/glue-catalog.ts';
import { TEST_BUCKETS } from '../helpers/aws-buckets.ts';
import { installFakeGlue } from '../helpers/fake-glue.ts';
import { catalogConformance } from './catalog.case.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const BUCKETS = TEST_BUCKETS;

catalogConformance('aws (Glue, faked)', async () => {
  const glue = installFakeGlue();
  return {
    catalog: new GlueCatalog(glue.client, { databasePrefix: 'sluice_test_', buckets: BUCKETS }),
    close: async () => glue.restore(),
  };
});
