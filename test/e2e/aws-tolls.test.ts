/**
 * End to end: the tolls pipeline on the aws backend (`createAwsBackend`) against emulators and
 * fakes: S3 on s3rver, DynamoDB on dynalite (tables created on first use), the Glue Data Catalog
 * faked with aws-sdk-client-mock at class level, and the warehouse `RedshiftDataWarehouse` over the
 * FAKE Redshift Data API (test/helpers/fake-redshift-data.ts, also mocked at class level: the
 * backend builds its own client), which runs the SQL on a real embedded PostgreSQL and reads the
 * `COPY ... FROM 's3://...'` objects from s3rver through its own S3 client.
 *
 * The real `tolls-load` ASL workflow (crawl -> job -> load) runs on the local ASL engine
 * (`LocalWorkflowRunner`, its execution records in dynalite) with the aws backend's ports. Every
 * expected value is computed here from the raw sample file (test/helpers/tolls.ts readers), and the
 * warehouse is read with a plain `pg` client, not through sluice.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ExecuteStatementCommand } from '@aws-sdk/client-redshift-data';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LANDING_PREFIX, tollsPipeline } from '../../pipelines/tolls/definition.ts';
import { tollsHandlers } from '../../pipelines/tolls/functions.ts';
import { landTollFiles } from '../../pipelines/tolls/run.ts';
import { LocalWorkflowRunner } from '../../src/backends/local/local-workflow-runner.ts';
import type { PipelineContext } from '../../src/core/context.ts';
import type { JsonValue } from '../../src/core/ports/kv-table.ts';
import type { ExecutionRecord } from '../../src/core/ports/workflow-runner.ts';
import { RunLog } from '../../src/core/run.ts';
import { type AwsStack, startAwsStack } from '../helpers/aws-stack.ts';
import {
  readNdjsonSample,
  readPythonDictLine,
  readPythonDictSample,
  TOLLS_SAMPLES,
  totalsByBooth,
} from '../helpers/tolls.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const TABLE_PREFIX = 'e2e-tolls-';
const REDSHIFT = {
  workgroupName: 'sluice-e2e',
  database: 'dev',
  copyRoleArn: 'arn:aws:iam::123456789012:role/sluice-e2e-copy',
};
const SAMPLE_NAME = path.basename(TOLLS_SAMPLES.pythonDict);
const SAMPLE_KEY = `${LANDING_PREFIX}${SAMPLE_NAME}`;
const sampleBytes = readFileSync(TOLLS_SAMPLES.pythonDict);
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** What the file holds, read by the test's own Python-dict reader (checked against the NDJSON copy). */
const expected = readPythonDictSample();

/** A file of 2 new valid transactions and 2 bad lines (an unterminated string, a booth of None). */
const MIXED_NAME = 'mixed-e2e.json';
const MIXED_LINES = [
  "{'transaction_id': 990001, 'transaction_date': '2023/08/21', 'toll_booth': 'york_rd', 'vehicle_make': 'Audi', 'vehicle_category': 'SUV', 'transaction_amount': 1.25}",
  "{'transaction_id': 990002, 'toll_booth': 'york_rd}",
  "{'transaction_id': 990003, 'transaction_date': '2023/08/21', 'toll_booth': None, 'vehicle_make': 'Fiat', 'vehicle_category': 'Car', 'transaction_amount': 2.5}",
  "{'transaction_id': 990004, 'transaction_date': '2023/08/22', 'toll_booth': 'main_st', 'vehicle_make': 'Kia', 'vehicle_category': 'Van, Truck', 'transaction_amount': 7.75}",
];

describe('tolls on the aws backend (s3rver, dynalite, fake Glue, fake Redshift Data API over PostgreSQL)', () => {
  let stack: AwsStack;
  let s3: AwsStack['s3'];
  let warehouse: NonNullable<AwsStack['warehouse']>;
  let glue: AwsStack['glue'];
  let redshift: NonNullable<AwsStack['redshift']>;
  let backend: AwsStack['backend'];
  let ctx: PipelineContext;
  let s3Client: AwsStack['s3Client'];
  /** S3 event envelopes s3rver emitted for landing writes (what an S3 notification would deliver). */
  const s3Events: { Records: Record<string, unknown>[] }[] = [];

  beforeAll(async () => {
    const started = await startAwsStack({
      tablePrefix: TABLE_PREFIX,
      redshift: { ...REDSHIFT, warehouseLabel: 'aws-e2e', pageSize: 50 },
    });
    stack = started;
    ({ s3, warehouse, glue, redshift, backend, s3Client } = started);
    s3.server.on('event', (event) => s3Events.push(event));
    ctx = stack.ctx({ engine: { threads: 1, memoryLimit: '256MB' } });
  }, 60_000);

  afterAll(() => stack?.close());

  /** Runs `tolls-load` on `event` through the local ASL engine with the aws backend's ports. */
  async function runWorkflow(event: JsonValue): Promise<ExecutionRecord> {
    const notifier = { notify: async () => ({ delivered: [], failed: [] }) };
    const handlers = tollsHandlers({ ctx, config: { get: () => undefined }, notifier });
    const runner = await LocalWorkflowRunner.open({
      kv: backend.kv,
      clock: ctx.clock,
      workflows: tollsPipeline.workflows ?? [],
      functions: Object.fromEntries(
        (tollsPipeline.functions ?? []).map((definition) => [
          definition.name,
          { definition, handler: handlers[definition.name]! },
        ]),
      ),
      retryIntervalMs: 0,
    });
    try {
      const handle = await runner.start('tolls-load', event);
      return await handle.done;
    } finally {
      await runner.shutdown(0);
    }
  }

  /**
   * Runs `write` and returns the S3 notification records s3rver emitted for `key` in the landing
   * bucket (one `ObjectCreated:*` record, the real bucket name, the key URL-encoded as S3 sends it).
   */
  async function landed(key: string, write: () => Promise<unknown>): Promise<Record<string, unknown>[]> {
    s3Events.length = 0;
    await write();
    const matching = () =>
      s3Events
        .flatMap((e) => e.Records)
        .filter((r) => {
          const s3Part = r.s3 as { bucket: { name: string }; object: { key: string } };
          return s3Part.bucket.name === s3.buckets.landing && decodeURIComponent(s3Part.object.key) === key;
        });
    const deadline = Date.now() + 10_000;
    while (matching().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const records = matching();
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ eventName: expect.stringMatching(/^ObjectCreated:/) });
    return records;
  }

  async function keys(bucket: string, prefix: string): Promise<string[]> {
    const out = await s3Client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    return (out.Contents ?? []).map((o) => o.Key ?? '').sort();
  }

  async function objectText(bucket: string, key: string): Promise<string> {
    const out = await s3Client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return out.Body!.transformToString('utf8');
  }

  /** SQL the backend sent through the Data API (ExecuteStatement), in order. */
  function executedSql(): string[] {
    return redshift.mock.commandCalls(ExecuteStatementCommand).map((c) => String(c.args[0].input.Sql));
  }

  let firstRun: string | undefined;

  it('the real ASL workflow crawls, stages and COPYs exactly the 80 transactions of the file', async () => {
    // The test's own readers agree on the sample before anything is compared with them.
    expect(expected).toHaveLength(80);
    expect(expected).toEqual(readNdjsonSample());

    // Landed through the backend's object store (S3 PutObject on s3rver); S3's notification of
    // the write (as s3rver emits it, real bucket name) starts the workflow, as deployed.
    const records = await landed(SAMPLE_KEY, () =>
      backend.objectStore.put({ layer: 'landing', key: SAMPLE_KEY }, sampleBytes),
    );
    const execution = await runWorkflow({ Records: records } as unknown as JsonValue);
    expect(execution, JSON.stringify(execution.cause)).toMatchObject({
      status: 'SUCCEEDED',
      workflow: 'tolls-load',
    });
    const output = execution.output as {
      job: { files: { counts: JsonValue; quarantine_key: string | null; sha256: string }[] };
      load: { run_id: string; loaded: JsonValue[] };
    };
    expect(output.job.files).toHaveLength(1);
    expect(output.job.files[0]).toMatchObject({
      counts: { read: 80, loaded: 80, duplicates: 0, quarantined: 0 },
      quarantine_key: null,
      sha256: sha256(sampleBytes),
    });
    expect(output.load.loaded).toEqual([
      { source_key: SAMPLE_KEY, status: 'loaded', rows: 80, previous_run: null },
    ]);
    firstRun = output.load.run_id;

    // Landing bucket (plain S3 client): the file byte for byte.
    expect(await objectText(s3.buckets.landing, SAMPLE_KEY)).toBe(sampleBytes.toString('utf8'));

    // Staging bucket: one CSV named by the file and its content hash, holding the 80 rows.
    const stagingKey = `tolls/toll_table/sample_data_toll_application.first80-${sha256(sampleBytes).slice(0, 12)}.csv`;
    expect(await keys(s3.buckets.staging, 'tolls/')).toEqual([stagingKey]);
    const csv = parse(await objectText(s3.buckets.staging, stagingKey)) as string[][];
    expect(csv.map((r) => [r[0], r[1], r[2], r[3], r[4], Number(r[5])])).toEqual(
      expected.map((r) => [
        String(r.transaction_id),
        r.transaction_date,
        r.toll_booth,
        r.vehicle_make,
        r.vehicle_category,
        r.transaction_amount,
      ]),
    );
    expect(await keys(s3.buckets.quarantine, 'tolls/')).toEqual([]);

    // The COPY the backend sent reads that object from the staging bucket with the COPY role,
    // inside a Data API session (the copy-once transaction).
    const copies = redshift.mock
      .commandCalls(ExecuteStatementCommand)
      .filter((c) => /^\s*COPY\b/i.test(String(c.args[0].input.Sql)));
    expect(copies).toHaveLength(1);
    const copyInput = copies[0]!.args[0].input;
    expect(copyInput.Sql).toBe(
      `COPY toll_table (transaction_id, transaction_date, toll_booth, vehicle_make, vehicle_category, transaction_amount) FROM 's3://${s3.buckets.staging}/${stagingKey}' IAM_ROLE '${REDSHIFT.copyRoleArn}' FORMAT AS CSV EMPTYASNULL`,
    );
    expect(copyInput.SessionId).toEqual(expect.any(String));
    const inSession = redshift.mock
      .commandCalls(ExecuteStatementCommand)
      .filter((c) => c.args[0].input.SessionId === copyInput.SessionId)
      .map((c) => String(c.args[0].input.Sql).split(' ')[0]);
    expect(inSession).toEqual(['LOCK', 'SELECT', 'COPY', 'INSERT', 'COMMIT']);

    // The warehouse (plain pg on the PostgreSQL under the fake): exactly the file's 80 rows.
    const rows = await warehouse.sql<Record<string, unknown>>(
      `SELECT transaction_id::text AS transaction_id, transaction_date, toll_booth, vehicle_make,
              vehicle_category, transaction_amount FROM toll_table ORDER BY toll_table.transaction_id`,
    );
    expect(rows).toHaveLength(80);
    const byId = [...expected].sort((a, b) => a.transaction_id - b.transaction_id);
    rows.forEach((row, i) => {
      const source = byId[i]!;
      expect(row).toMatchObject({
        transaction_id: String(source.transaction_id),
        transaction_date: source.transaction_date,
        toll_booth: source.toll_booth,
        vehicle_make: source.vehicle_make,
        vehicle_category: source.vehicle_category,
      });
      expect(Math.fround(row.transaction_amount as number)).toBe(Math.fround(source.transaction_amount));
    });
    expect(
      await warehouse.sql(
        `SELECT toll_booth AS booth, count(*)::int AS n, sum(transaction_amount::numeric)::text AS total
           FROM toll_table GROUP BY toll_booth ORDER BY toll_booth COLLATE "C"`,
      ),
    ).toEqual(totalsByBooth(expected));
    expect(
      await warehouse.sql(
        'SELECT source_key, rows_loaded::int AS rows, source_sha256, run_id FROM sluice_loads',
      ),
    ).toEqual([{ source_key: SAMPLE_KEY, rows: 80, source_sha256: sha256(sampleBytes), run_id: firstRun }]);

    // Glue (fake): the table the crawler registered over the landing folder.
    const table = glue.table('landing', 'tolls');
    expect(table?.StorageDescriptor?.Location).toBe(`s3://${s3.buckets.landing}/${LANDING_PREFIX}`);
    const columns = Object.fromEntries(
      (table?.StorageDescriptor?.Columns ?? []).map((c) => [c.Name, c.Type]),
    );
    expect(Object.keys(columns)).toEqual([
      'transaction_id',
      'transaction_date',
      'toll_booth',
      'vehicle_make',
      'vehicle_category',
      'transaction_amount',
    ]);
    expect(['int', 'bigint']).toContain(columns.transaction_id);
    expect(columns.transaction_amount).toBe('double');
    for (const name of ['transaction_date', 'toll_booth', 'vehicle_make', 'vehicle_category']) {
      expect(columns[name], name).toBe('string');
    }
    const crawled = await backend.catalog.getTable('landing', 'tolls');
    for (const name of ['transaction_date', 'toll_booth', 'vehicle_make', 'vehicle_category']) {
      expect(
        crawled?.columns.find((c) => c.name === name),
        name,
      ).toMatchObject({ nullable: false });
    }

    // Run log in DynamoDB: one job step and one load step for the file.
    const runs = await (await RunLog.open(backend.kv, ctx.clock)).list({ pipeline: 'tolls', limit: 100 });
    expect(
      runs
        .filter((r) => r.step === 'job' || r.step === 'load')
        .map((r) => [r.step, r.unit, r.status, r.counts])
        .sort(),
    ).toEqual([
      ['job', SAMPLE_NAME, 'succeeded', { read: 80, loaded: 80, duplicates: 0, quarantined: 0 }],
      ['load', SAMPLE_NAME, 'succeeded', { read: 80, loaded: 80, duplicates: 0, quarantined: 0 }],
    ]);
  }, 60_000);

  it("re-delivery of the same file (s3rver's own notification of a second PUT) loads nothing new", async () => {
    expect(firstRun).toBeDefined();
    // The same bytes PUT again with a plain S3 client: a new notification of the same content.
    const records = await landed(SAMPLE_KEY, () =>
      s3Client.send(new PutObjectCommand({ Bucket: s3.buckets.landing, Key: SAMPLE_KEY, Body: sampleBytes })),
    );
    const copiesBefore = executedSql().filter((sql) => /^\s*COPY\b/i.test(sql)).length;

    const execution = await runWorkflow({ Records: records } as unknown as JsonValue);
    expect(execution.status, JSON.stringify(execution.cause)).toBe('SUCCEEDED');
    const output = execution.output as { load: { loaded: JsonValue[] } };
    expect(output.load.loaded).toEqual([
      { source_key: SAMPLE_KEY, status: 'already-loaded', rows: 80, previous_run: firstRun! },
    ]);
    expect(executedSql().filter((sql) => /^\s*COPY\b/i.test(sql)).length).toBe(copiesBefore);
    expect(await warehouse.sql('SELECT count(*)::int AS n FROM toll_table')).toEqual([{ n: 80 }]);
    expect(await warehouse.sql('SELECT count(*)::int AS n FROM sluice_loads')).toEqual([{ n: 1 }]);
  }, 60_000);

  it('bad lines go to the quarantine bucket; the good lines of the file load beside the sample', async () => {
    const bytes = Buffer.from(`${MIXED_LINES.join('\n')}\n`);
    const key = `${LANDING_PREFIX}${MIXED_NAME}`;
    // What the test's reader makes of each line: the unterminated one is unreadable, None is null.
    const good = [MIXED_LINES[0]!, MIXED_LINES[3]!].map((line) => readPythonDictLine(line));
    expect(() => readPythonDictLine(MIXED_LINES[1]!)).toThrow();
    expect(readPythonDictLine(MIXED_LINES[2]!).toll_booth).toBeNull();

    const records = await landed(key, () =>
      s3Client.send(new PutObjectCommand({ Bucket: s3.buckets.landing, Key: key, Body: bytes })),
    );
    const execution = await runWorkflow({ Records: records } as unknown as JsonValue);
    expect(execution.status, JSON.stringify(execution.cause)).toBe('SUCCEEDED');
    const output = execution.output as {
      job: { files: { counts: JsonValue; quarantine_key: string | null }[] };
      load: { loaded: JsonValue[] };
    };
    expect(output.job.files[0]?.counts).toEqual({ read: 4, loaded: 2, duplicates: 0, quarantined: 2 });
    expect(output.load.loaded).toEqual([{ source_key: key, status: 'loaded', rows: 2, previous_run: null }]);

    // One quarantine object (plain S3 listing) holding the two rejected lines, verbatim.
    const quarantineKey = output.job.files[0]?.quarantine_key;
    expect(await keys(s3.buckets.quarantine, 'tolls/')).toEqual([quarantineKey]);
    const rejected = (await objectText(s3.buckets.quarantine, quarantineKey!))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(rejected).toHaveLength(2);
    expect(JSON.stringify(rejected)).toContain(JSON.stringify(MIXED_LINES[1]).slice(1, -1));
    expect(JSON.stringify(rejected)).toContain(JSON.stringify(MIXED_LINES[2]).slice(1, -1));

    // The warehouse: the sample's 80 rows and the 2 good lines; booth totals of all 82.
    const all = [...expected, ...(good as unknown as typeof expected)];
    expect(await warehouse.sql('SELECT count(*)::int AS n FROM toll_table')).toEqual([{ n: 82 }]);
    expect(
      await warehouse.sql(
        `SELECT toll_booth AS booth, count(*)::int AS n, sum(transaction_amount::numeric)::text AS total
           FROM toll_table GROUP BY toll_booth ORDER BY toll_booth COLLATE "C"`,
      ),
    ).toEqual(totalsByBooth(all));
    expect(
      await warehouse.sql(`SELECT vehicle_category FROM toll_table WHERE transaction_id = 990004`),
    ).toEqual([{ vehicle_category: 'Van, Truck' }]);
  }, 60_000);
  it("sluice run tolls' landing step finds its trigger on S3, where buckets are not named after layers", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-aws-tolls-land-'));
    try {
      const file = path.join(dir, 'landed-by-run.json');
      await writeFile(file, sampleBytes);
      const { landed, event } = await landTollFiles(ctx, { inputs: [file] });
      expect(landed).toEqual([`${LANDING_PREFIX}landed-by-run.json`]);
      expect(event.Records).toHaveLength(1);
      expect(event.Records[0]?.s3.bucket.name).toBe(s3.buckets.landing);
      expect(event.Records[0]?.s3.bucket.name).not.toBe('landing');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
