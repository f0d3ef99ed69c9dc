/**
 * The real `sluice` CLI (bin/sluice.js in a child process) on the aws backend: SLUICE_BACKEND=aws,
 * the stack's variables, and SLUICE_AWS_ENDPOINTS pointing at emulators this test starts (s3rver,
 * dynalite) and at the in-process fake Glue and Athena served over HTTP with the AWS JSON 1.1
 * protocol both speak. The gharchive pipeline first runs in-process on the same stack (the real
 * hour 2015-01-01-0), so the child finds runs, Glue tables and data to query; expected values come
 * from the raw sample file.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as athena from '@aws-sdk/client-athena';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGharchive } from '../../pipelines/gharchive/run.ts';
import { type AwsStack, startAwsStack } from '../../test/helpers/aws-stack.ts';
import { type JsonServiceServer, serveFakeGlue, serveJsonService } from '../../test/helpers/lambda-invoke.ts';
import { GHARCHIVE_SAMPLE, ROOT, sampleLines } from '../../test/helpers/samples.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { ConfigStore } from '../core/config.ts';
import { RunLog } from '../core/run.ts';
import { type StaticServer, serveDirectory } from '../sources/http/static-server.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const exec = promisify(execFile);
const TABLE_PREFIX = 'cli-aws-';

/**
 * Serves the fake Athena (mocked on `AthenaClient.prototype` by the stack) over HTTP, as
 * `serveFakeGlue` does for Glue, so the CLI in a child process reaches it.
 */
async function serveFakeAthena(): Promise<JsonServiceServer> {
  const client = new athena.AthenaClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
  });
  const served = await serveJsonService({ targetPrefix: 'AmazonAthena', commands: athena, client });
  return {
    ...served,
    stop: async () => {
      await served.stop();
      client.destroy();
    },
  };
}

/** Sluice's clock shifted so that "now" starts at `start` (an incremental run's first hour is 2015-01-01T00). */
function shiftedClock(start: Date): Clock {
  const offset = Date.now() - start.getTime();
  return { now: () => new Date(Date.now() - offset), sleep: (ms) => systemClock.sleep(ms) };
}

/** Distinct valid event ids of the raw sample (a JSON object with a decimal `id` and a parseable `created_at`). */
function expectedLoaded(): number {
  const ids = new Set<string>();
  for (const line of sampleLines()) {
    try {
      const e = JSON.parse(line) as Record<string, unknown> | null;
      if (
        e !== null &&
        typeof e === 'object' &&
        /^\d+$/.test(String(e.id)) &&
        typeof e.created_at === 'string' &&
        !Number.isNaN(Date.parse(e.created_at))
      )
        ids.add(String(e.id));
    } catch {
      // quarantined
    }
  }
  return ids.size;
}

describe('sluice CLI on the aws backend (child process, emulators and fakes)', () => {
  let stack: AwsStack;
  let hours: StaticServer;
  let glueServer: JsonServiceServer;
  let athenaServer: JsonServiceServer;
  let home: string;
  let awsEnv: Record<string, string>;

  /** The environment of the child without sluice's or AWS's variables of the developer's shell. */
  function baseEnv(): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(process.env)) {
      if (value !== undefined && !/^(SLUICE_|AWS_)/.test(name)) env[name] = value;
    }
    return { ...env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  }

  async function sluice(args: string[], env: Record<string, string> = awsEnv) {
    try {
      const { stdout, stderr } = await exec(process.execPath, [path.join(ROOT, 'bin/sluice.js'), ...args], {
        cwd: ROOT,
        env,
        maxBuffer: 64 * 1024 * 1024,
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

  beforeAll(async () => {
    [stack, hours, home] = await Promise.all([
      startAwsStack({ tablePrefix: TABLE_PREFIX, clock: shiftedClock(new Date('2015-01-04T00:00:00Z')) }),
      serveDirectory(path.dirname(GHARCHIVE_SAMPLE)),
      mkdtemp(path.join(os.tmpdir(), 'sluice-cli-aws-')),
    ]);
    [glueServer, athenaServer] = await Promise.all([serveFakeGlue(stack.glue), serveFakeAthena()]);
    // What a pipeline writes on the aws backend: runs, Glue tables, Parquet on S3.
    const HOUR0 = new Date('2015-01-01T00:00:00Z');
    const summary = await runGharchive(stack.ctx(), { to: HOUR0, sourceUrl: hours.url });
    expect(summary.exitCode).toBe(0);
    // The stack creates every table; the CLI creates none (createResources false).
    // (dynalite has no Streams: created without one, as the CLI on aws does not ask for it).
    await ConfigStore.open(stack.backend.kv, stack.clock, { stream: false });
    const { buckets, endpoints } = stack.config;
    awsEnv = {
      ...baseEnv(),
      SLUICE_BACKEND: 'aws',
      AWS_REGION: 'us-east-1',
      SLUICE_BUCKET_LANDING: buckets.landing,
      SLUICE_BUCKET_STAGING: buckets.staging,
      SLUICE_BUCKET_ANALYTICAL: buckets.analytical,
      SLUICE_BUCKET_QUARANTINE: buckets.quarantine,
      SLUICE_TABLE_PREFIX: TABLE_PREFIX,
      SLUICE_ATHENA_OUTPUT_LOCATION: `s3://${buckets.staging}/athena/`,
      SLUICE_AWS_ENDPOINTS: JSON.stringify({
        ...endpoints,
        glue: glueServer.endpoint,
        athena: athenaServer.endpoint,
      }),
      SLUICE_HOME: home,
    };
  }, 120_000);

  afterAll(async () => {
    await Promise.all([glueServer?.stop(), athenaServer?.stop(), hours?.close()]);
    await stack?.close();
    if (home) await rm(home, { recursive: true, force: true });
  });

  it('config set lands in the DynamoDB config table; config get and list read it back', async () => {
    const set = await sluice(['config', 'set', 'gharchive', 'source_url', 'https://mirror.example/']);
    expect(set.stderr).toBe('');
    expect(set.code).toBe(0);
    const item = await stack.dynamo.send(
      new GetItemCommand({
        TableName: `${TABLE_PREFIX}config`,
        Key: { pipeline: { S: 'gharchive' }, key: { S: 'source_url' } },
      }),
    );
    expect(JSON.stringify(item.Item)).toContain('https://mirror.example/');
    const get = await sluice(['config', 'get', 'gharchive', 'source_url']);
    expect(get.code).toBe(0);
    expect(JSON.parse(get.stdout)).toBe('https://mirror.example/');
    const list = await sluice(['config', 'list', 'gharchive', '--json']);
    expect(JSON.parse(list.stdout)).toContainEqual(
      expect.objectContaining({ pipeline: 'gharchive', key: 'source_url', value: 'https://mirror.example/' }),
    );
    expect((await sluice(['config', 'unset', 'gharchive', 'source_url'])).code).toBe(0);
    const after = await stack.dynamo.send(
      new GetItemCommand({
        TableName: `${TABLE_PREFIX}config`,
        Key: { pipeline: { S: 'gharchive' }, key: { S: 'source_url' } },
      }),
    );
    expect(after.Item).toBeUndefined();
  }, 60_000);

  it('runs lists the runs the pipeline wrote to DynamoDB', async () => {
    const { code, stdout } = await sluice(['runs', '--json', '--pipeline', 'gharchive']);
    expect(code).toBe(0);
    const runs = JSON.parse(stdout) as { pipeline: string; status: string; counts?: { loaded: number } }[];
    const written = await (await RunLog.open(stack.backend.kv, stack.clock)).list({ pipeline: 'gharchive' });
    expect(runs).toEqual(JSON.parse(JSON.stringify(written)));
    expect(runs.length).toBeGreaterThan(0);
    expect(runs.every((r) => r.pipeline === 'gharchive' && r.status === 'succeeded')).toBe(true);
    expect(runs.some((r) => r.counts?.loaded === expectedLoaded())).toBe(true);
    const table = await sluice(['--backend', 'aws', 'runs']);
    expect(table.stdout).toMatch(/gharchive/);
  }, 60_000);

  it('catalog lists the Glue tables with their partitions and rows; catalog <table> shows one', async () => {
    const { code, stdout } = await sluice(['catalog', '--json']);
    expect(code).toBe(0);
    const tables = JSON.parse(stdout) as {
      database: string;
      name: string;
      partitionCount: number;
      rows: number;
    }[];
    const events = tables.find((t) => t.database === 'gharchive' && t.name === 'events');
    expect(events).toMatchObject({ partitionCount: 1, rows: expectedLoaded() });
    expect(tables.map((t) => `${t.database}.${t.name}`).sort()).toEqual(
      [...stack.glue.state.tables]
        .flatMap(([db, byName]) => [...byName.keys()].map((n) => `${db}.${n}`))
        .sort(),
    );
    expect(glueServer.calls).toContain('GetTables');
    const one = await sluice(['catalog', 'gharchive.events']);
    expect(one.code).toBe(0);
    expect(one.stdout).toContain('year=2015/month=01/dayofmonth=01');
  }, 60_000);

  it('query runs SQL on Athena (the fake, over HTTP) and --list needs no backend', async () => {
    const { code, stdout, stderr } = await sluice([
      'query',
      'SELECT count(*) AS n FROM gharchive.events',
      '--json',
    ]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual([{ n: expectedLoaded() }]);
    expect(athenaServer.calls).toContain('StartQueryExecution');
    const list = await sluice(['query', '--list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain('hashtags.top_hashtags');
  }, 60_000);

  it('local-only commands and sluice run refuse with exit 2 and say what to use on AWS', async () => {
    const up = await sluice(['up']);
    expect(up.code).toBe(2);
    expect(up.stderr).toMatch(/sluice up works on the local backend only .*sluice deploy/);
    const warehouse = await sluice(['warehouse', 'status']);
    expect(warehouse.code).toBe(2);
    expect(warehouse.stderr).toContain('Redshift Serverless');
    // The global option selects the backend without the environment variable.
    const { SLUICE_BACKEND: _, ...withoutBackend } = awsEnv;
    const demo = await sluice(['--backend', 'aws', 'demo'], withoutBackend);
    expect(demo.code).toBe(2);
    expect(demo.stderr).toContain('sluice demo works on the local backend only');
    const run = await sluice(['run', 'gharchive']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('aws stepfunctions start-execution');
    expect(run.stderr).toContain('gharchive-ingest');
    const executions = await sluice(['executions']);
    expect(executions.code).toBe(2);
    expect(executions.stderr).toContain('SLUICE_STATE_MACHINE_ARN_PREFIX');
    const bad = await sluice(['--backend', 'gcp', 'runs']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--backend "gcp": expected local or aws');
  }, 60_000);

  it('an incomplete environment names every missing variable', async () => {
    const { code, stderr } = await sluice(['runs'], {
      ...baseEnv(),
      SLUICE_BACKEND: 'aws',
      SLUICE_BUCKET_LANDING: 'b-landing',
      SLUICE_HOME: home,
    });
    expect(code).toBe(2);
    expect(stderr).toContain(
      'the aws backend needs these environment variables: AWS_REGION, SLUICE_BUCKET_STAGING, SLUICE_BUCKET_ANALYTICAL, SLUICE_BUCKET_QUARANTINE',
    );
    expect(stderr).toContain('SluiceEnv');
  }, 30_000);
});
