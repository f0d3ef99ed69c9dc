/**
 * Smoke test of the DEPLOYED ARTIFACT: the bundle `bundleRuntime()` writes (code asset
 * `runtime/aws/lambda.mjs` + copied data, and the runtime layer), loaded in a fresh `node` child
 * as the Lambda Node.js runtime loads it (test/helpers/lambda-invoke.ts: task root = the code
 * directory, nothing of the AWS SDK resolvable outside it (the bundle carries its own), the layer's packages resolvable only for the
 * functions the stack attaches the layer to), with the environment the CDK stack sets
 * (`awsConfigToEnv` + `SLUICE_PIPELINE`, `SLUICE_FUNCTION`, `AWS_REGION`) pointing at emulators
 * through the test-only `SLUICE_AWS_ENDPOINTS`:
 * - S3: s3rver; DynamoDB: dynalite, with the tables the stack creates (`pipelineTables`);
 * - Glue: the in-process fake Glue Data Catalog (test/helpers/fake-glue.ts) served over HTTP with
 *   the AWS JSON 1.1 protocol, so the child's GlueClient reaches it;
 * - SNS, Step Functions, Athena, Kinesis, DynamoDB Streams: an endpoint that refuses and records
 *   every call (none is expected), so nothing can reach real AWS.
 *
 * What runs in the child: gharchive-ingest (task handler, no layer) lands the real sample hour
 * 2015-01-01-0 from a local HTTP server; gharchive-transform (task handler, layer: DuckDB) turns
 * it into Parquet and catalogs it; the trigger dispatcher (`s3Handler`, no layer) gets a
 * documented S3 event whose key matches no trigger; a task function missing a variable fails as
 * Lambda reports it. Expected values come from the raw sample file, not from sluice's code.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gharchivePipeline } from '../../pipelines/gharchive/definition.ts';
import { type DynaliteServer, startDynalite } from '../../test/helpers/dynalite.ts';
import { type FakeGlue, installFakeGlue } from '../../test/helpers/fake-glue.ts';
import {
  invokeLambda,
  type JsonServiceServer,
  type LambdaLayout,
  layoutLambda,
  serveFakeGlue,
  serveRefusingAws,
} from '../../test/helpers/lambda-invoke.ts';
import { type RunningS3rver, startS3rver } from '../../test/helpers/s3rver.ts';
import { GHARCHIVE_SAMPLE, sampleLines } from '../../test/helpers/samples.ts';
import { createAwsBackend } from '../backends/aws/aws-backend.ts';
import {
  type AwsBackendConfig,
  awsConfigFromEnv,
  awsConfigToEnv,
  ENDPOINTS_ENV,
} from '../backends/aws/config.ts';
import { BookmarkStore } from '../core/bookmark.ts';
import { systemClock } from '../core/clock.ts';
import { CONFIG_KEY_SCHEMA, CONFIG_TABLE } from '../core/config.ts';
import type { Backend } from '../core/ports/backend.ts';
import { type StaticServer, serveDirectory } from '../sources/http/static-server.ts';
import { functionAccess, pipelineTables } from './access.ts';
import { bundleRuntime, HANDLER_MODULE, type RuntimeBundle } from './bundle.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const REGION = 'us-east-1';
const TABLE_PREFIX = 'smoke-gharchive-';
const FILE = '2015-01-01-0.json.gz';
const LANDING_KEY = `gharchive/date=2015-01-01/${FILE}`;
const PARTITION_PREFIX = 'gharchive/events/year=2015/month=01/dayofmonth=01/';

/** Counts of the sample from the raw file alone (the rule of test/e2e/aws-gharchive.test.ts). */
function expectedTotals() {
  const seen = new Set<string>();
  let loaded = 0;
  let duplicates = 0;
  let quarantined = 0;
  const lines = sampleLines();
  for (const line of lines) {
    let e: Record<string, unknown> | null;
    try {
      e = JSON.parse(line) as Record<string, unknown> | null;
    } catch {
      quarantined++;
      continue;
    }
    const valid =
      e !== null &&
      typeof e === 'object' &&
      !Array.isArray(e) &&
      /^\d+$/.test(String(e.id)) &&
      typeof e.created_at === 'string' &&
      !Number.isNaN(Date.parse(e.created_at));
    if (!valid) quarantined++;
    else if (seen.has(String(e?.id))) duplicates++;
    else {
      seen.add(String(e?.id));
      loaded++;
    }
  }
  return { read: lines.length, loaded, duplicates, quarantined };
}

/**
 * One S3 event notification record as S3 sends it to Lambda (event structure version 2.1,
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html):
 * the key is URL-encoded (`=` as `%3D`).
 */
function s3Record(bucket: string, key: string, size: number, eTag: string) {
  return {
    eventVersion: '2.1',
    eventSource: 'aws:s3',
    awsRegion: REGION,
    eventTime: '2026-01-01T00:00:00.000Z',
    eventName: 'ObjectCreated:Put',
    userIdentity: { principalId: 'AWS:AIDAEXAMPLE' },
    requestParameters: { sourceIPAddress: '127.0.0.1' },
    responseElements: {
      'x-amz-request-id': 'C3D13FE58DE4C810',
      'x-amz-id-2': 'FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD',
    },
    s3: {
      s3SchemaVersion: '1.0',
      configurationId: 'sluice-trigger',
      bucket: {
        name: bucket,
        ownerIdentity: { principalId: 'A3NL1KOZZKExample' },
        arn: `arn:aws:s3:::${bucket}`,
      },
      object: { key: encodeURIComponent(key), size, eTag, sequencer: '0055AED6DCD90281E5' },
    },
  };
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

describe('the deployed artifact (bundleRuntime) in a Lambda-like child process', () => {
  const expected = expectedTotals();
  let s3: RunningS3rver;
  let dynalite: DynaliteServer;
  let http: StaticServer;
  let glue: FakeGlue;
  let glueServer: JsonServiceServer;
  let refusing: JsonServiceServer;
  let workDir: string;
  let bundle: RuntimeBundle;
  let buildMs: number;
  let bare: LambdaLayout;
  let withLayer: LambdaLayout;
  let backend: Backend;
  let s3Client: S3Client;

  /** The variables the stack sets on function `fn` (pipeline-stack.ts `makeFunction`), plus the emulators. */
  function stackEnv(fn: string): Record<string, string> {
    return {
      ...awsConfigToEnv({
        buckets: s3.buckets,
        tablePrefix: TABLE_PREFIX,
        glueDatabasePrefix: '',
        streamPrefix: '',
        athenaWorkgroup: 'sluice-gharchive',
        snsTopicArn: `arn:aws:sns:${REGION}:123456789012:sluice-gharchive-alerts`,
        stateMachineArnPrefix: `arn:aws:states:${REGION}:123456789012:stateMachine:`,
      }),
      SLUICE_PIPELINE: 'gharchive',
      SLUICE_FUNCTION: fn,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      AWS_REGION: REGION,
      AWS_DEFAULT_REGION: REGION,
      [ENDPOINTS_ENV]: JSON.stringify({
        s3: s3.endpoint,
        dynamodb: dynalite.endpoint,
        glue: glueServer.endpoint,
        athena: refusing.endpoint,
        sns: refusing.endpoint,
        sfn: refusing.endpoint,
        kinesis: refusing.endpoint,
        'dynamodb-streams': refusing.endpoint,
      }),
    };
  }

  const layoutOf = (fn: string) => (functionAccess(gharchivePipeline, fn).duckdb ? withLayer : bare);

  beforeAll(async () => {
    [s3, dynalite, http, refusing] = await Promise.all([
      startS3rver({ bucketPrefix: 'smoke-gharchive-' }),
      startDynalite(),
      serveDirectory(path.dirname(GHARCHIVE_SAMPLE)),
      serveRefusingAws(),
    ]);
    glue = installFakeGlue();
    glueServer = await serveFakeGlue(glue);
    workDir = await mkdtemp(path.join(os.tmpdir(), 'sluice-smoke-'));
    const started = performance.now();
    bundle = await bundleRuntime({ workDir: path.join(workDir, 'bundle') });
    buildMs = performance.now() - started;
    bare = layoutLambda(bundle, path.join(workDir, 'fn-bare'), { withLayer: false });
    withLayer = layoutLambda(bundle, path.join(workDir, 'fn-layer'), { withLayer: true });

    // What the stack creates before any function runs: the tables, and (here) the job's bookmark
    // just before the sample hour and the source URL in the config table.
    const config: AwsBackendConfig = {
      region: REGION,
      buckets: s3.buckets,
      tablePrefix: TABLE_PREFIX,
      glueDatabasePrefix: '',
      streamPrefix: '',
      endpoints: { s3: s3.endpoint, dynamodb: dynalite.endpoint },
    };
    backend = await createAwsBackend(config, { createResources: true });
    for (const spec of pipelineTables(gharchivePipeline)) await backend.kv.table(spec.name, spec.keySchema);
    const bookmarks = await BookmarkStore.open(backend.kv, systemClock);
    await bookmarks.ensureJob('gharchive', { baseline_days: 1 });
    await bookmarks.record(
      'gharchive',
      { last_file: '2014-12-31-23.json.gz', last_hour: '2014-12-31T23:00:00.000Z', run_id: 'smoke-seed' },
      { advance: true, expected: undefined, runId: 'smoke-seed' },
    );
    const configTable = await backend.kv.table(CONFIG_TABLE, CONFIG_KEY_SCHEMA);
    await configTable.put({
      pipeline: 'gharchive',
      key: 'source_url',
      value: http.url,
      updated_at: new Date().toISOString(),
    });
    s3Client = s3.client();
  }, 60_000);

  afterAll(async () => {
    s3Client?.destroy();
    await backend?.close();
    glue?.restore();
    await Promise.all([http?.close(), glueServer?.stop(), refusing?.stop(), dynalite?.stop(), s3?.stop()]);
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it('gharchive-ingest (no layer) lands the sample hour byte for byte, and the bundle loads in Node 20', async () => {
    expect(functionAccess(gharchivePipeline, 'gharchive-ingest').duckdb).toBeFalsy();
    const run = await invokeLambda({
      taskRoot: layoutOf('gharchive-ingest').taskRoot,
      handler: `${HANDLER_MODULE}.taskHandler`,
      env: stackEnv('gharchive-ingest'),
      // What the schedule's workflow passes (EventBridge Scheduler input + scheduled time).
      events: [
        { schedule: 'gharchive-hourly', workflow: 'gharchive-ingest', scheduledTime: '2015-01-01T01:00:00Z' },
      ],
      tmpDir: path.join(workDir, 'fn-bare'),
    });
    expect(run.initError, run.stderr).toBeUndefined();
    console.info(
      `bundle: ${(bundle.bytes / 1e6).toFixed(1)} MB built in ${buildMs.toFixed(0)} ms; cold import in the child ${run.loadMs?.toFixed(0)} ms (Node ${process.version})`,
    );
    const [outcome] = run.outcomes;
    expect(outcome, run.stdout).toMatchObject({ ok: true });
    // The sample hour is served; the next one is not (404): landed one, stopped at the next.
    expect(outcome?.ok ? outcome.result : outcome?.error).toEqual({
      landed: [LANDING_KEY],
      stoppedAt: '2015-01-01-1.json.gz',
      more: false,
      bookmark: FILE,
    });
    expect(run.exitCode).toBe(0);
    expect(http.requests).toContain(`/${FILE}`);
    const landed = await s3Client.send(
      new GetObjectCommand({ Bucket: s3.buckets.landing, Key: LANDING_KEY }),
    );
    const bytes = await landed.Body!.transformToByteArray();
    expect(sha256(bytes)).toBe(sha256(await readFile(GHARCHIVE_SAMPLE)));
  }, 40_000);

  it('gharchive-transform (layer: DuckDB) writes Parquet and catalogs it in Glue', async () => {
    expect(functionAccess(gharchivePipeline, 'gharchive-transform').duckdb).toBe(true);
    const head = await s3Client.send(new HeadObjectCommand({ Bucket: s3.buckets.landing, Key: LANDING_KEY }));
    const record = s3Record(
      s3.buckets.landing,
      LANDING_KEY,
      Number(head.ContentLength),
      String(head.ETag).replaceAll('"', ''),
    );
    const run = await invokeLambda({
      taskRoot: layoutOf('gharchive-transform').taskRoot,
      handler: `${HANDLER_MODULE}.taskHandler`,
      env: stackEnv('gharchive-transform'),
      // The trigger dispatcher starts the workflow with `{ Records: [record] }` (s3-notification.ts).
      events: [{ Records: [record] }],
      tmpDir: path.join(workDir, 'fn-layer'),
    });
    expect(run.initError, run.stderr).toBeUndefined();
    const [outcome] = run.outcomes;
    expect(outcome, `${run.stdout}\n${run.stderr}`).toMatchObject({ ok: true });
    expect(outcome?.ok ? outcome.result : undefined).toEqual({
      pipeline: 'gharchive',
      transformed: [
        {
          key: LANDING_KEY,
          counts: expected,
          partitions: [PARTITION_PREFIX],
          quarantine: null,
          damage: null,
        },
      ],
    });

    const listed = await s3Client.send(
      new ListObjectsV2Command({ Bucket: s3.buckets.analytical, Prefix: PARTITION_PREFIX }),
    );
    const keys = (listed.Contents ?? []).map((o) => o.Key ?? '');
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      const object = await s3Client.send(new GetObjectCommand({ Bucket: s3.buckets.analytical, Key: key }));
      const parquet = Buffer.from(await object.Body!.transformToByteArray());
      expect([parquet.subarray(0, 4).toString('latin1'), parquet.subarray(-4).toString('latin1')]).toEqual([
        'PAR1',
        'PAR1',
      ]);
    }
    // The Glue calls crossed the process boundary: table and partition are in the fake catalog.
    expect(glueServer.calls).toContain('CreateTable');
    const partitions = glue.partitions('gharchive', 'events');
    expect(partitions.map((p) => p.Values)).toEqual([['2015', '01', '01']]);
    expect(partitions[0]?.Parameters?.numRows).toBe(String(expected.loaded));
    expect(refusing.calls).toEqual([]);
  }, 60_000);

  it('s3Handler (the trigger dispatcher, no layer) returns for a key no trigger matches', async () => {
    const fn = 'gharchive-trigger-dispatcher';
    const run = await invokeLambda({
      taskRoot: bare.taskRoot,
      handler: `${HANDLER_MODULE}.s3Handler`,
      env: stackEnv(fn),
      events: [
        {
          Records: [
            s3Record(s3.buckets.landing, 'gharchive/README.txt', 12, '0123456789abcdef0123456789abcdef'),
          ],
        },
      ],
      tmpDir: path.join(workDir, 'fn-bare'),
    });
    expect(run.initError, run.stderr).toBeUndefined();
    expect(run.outcomes).toEqual([
      { ok: true, result: { deliveries: [], ignored: [] }, ms: expect.any(Number) },
    ]);
    expect(refusing.calls).toEqual([]);
  }, 30_000);

  it('a missing variable fails each invocation as Lambda reports it (errorType, errorMessage), the container survives', async () => {
    const env = stackEnv('gharchive-ingest');
    delete env.SLUICE_BUCKET_LANDING;
    const run = await invokeLambda({
      taskRoot: bare.taskRoot,
      handler: `${HANDLER_MODULE}.taskHandler`,
      env,
      events: [{}, {}],
      tmpDir: path.join(workDir, 'fn-bare'),
    });
    expect(run.initError, run.stderr).toBeUndefined();
    expect(run.outcomes).toHaveLength(2);
    for (const outcome of run.outcomes) {
      expect(outcome.ok).toBe(false);
      if (outcome.ok) continue;
      // `name` survives bundling: Step Functions matches `errorType` in Retry/Catch.
      expect(outcome.error.errorType).toBe('UsageError');
      expect(outcome.error.errorMessage).toContain('SLUICE_BUCKET_LANDING');
      expect(outcome.error.trace[0]).toMatch(/^UsageError: /);
    }
    expect(run.exitCode).toBe(0);
  }, 30_000);
});

describe(`the test-only ${ENDPOINTS_ENV} hook`, () => {
  const base = {
    AWS_REGION: REGION,
    SLUICE_BUCKET_LANDING: 'l',
    SLUICE_BUCKET_STAGING: 's',
    SLUICE_BUCKET_ANALYTICAL: 'a',
    SLUICE_BUCKET_QUARANTINE: 'q',
  };

  it('is read into endpoints, absent by default, never emitted by awsConfigToEnv, and rejected when malformed', () => {
    expect(awsConfigFromEnv(base).endpoints).toBeUndefined();
    expect(
      awsConfigFromEnv({ ...base, [ENDPOINTS_ENV]: '{"s3":"http://127.0.0.1:1","glue":"https://x"}' })
        .endpoints,
    ).toEqual({ s3: 'http://127.0.0.1:1', glue: 'https://x' });
    const env = awsConfigToEnv({
      buckets: { landing: 'l', staging: 's', analytical: 'a', quarantine: 'q' },
      tablePrefix: '',
      glueDatabasePrefix: '',
      streamPrefix: '',
    });
    expect(Object.keys(env)).not.toContain(ENDPOINTS_ENV);
    for (const bad of ['not json', '["http://x"]', '{"s3":1}', '{"s3":"ftp://x"}']) {
      expect(() => awsConfigFromEnv({ ...base, [ENDPOINTS_ENV]: bad })).toThrow(ENDPOINTS_ENV);
    }
  });
});
