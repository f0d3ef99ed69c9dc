import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresServer } from '../../src/backends/local/postgres-server.ts';
import { executeTolls } from '../../src/cli/commands/run-tolls.ts';
import type { JsonValue } from '../../src/core/ports/kv-table.ts';
import type { ObjectInfo } from '../../src/core/ports/object-store.ts';
import { reconcile } from '../../src/core/run.ts';
import {
  createTollsHome,
  postgresProcesses,
  readNdjsonSample,
  readPythonDictSample,
  type SampleTransaction,
  startTestWarehouse,
  type TestWarehouse,
  TOLLS_SAMPLES,
  type TollsHome,
  totalsByBooth,
} from '../../test/helpers/tolls.ts';
import { crawlLanding, jobForEvent, loadResults, newRunId } from './functions.ts';
import { landTollFiles } from './run.ts';

// What the warehouse must hold, read from the raw files here (JSON.parse, and a regex reader of
// the Python-dict lines), never from sluice's parser or output.
const expected = readNdjsonSample();
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

let warehouse: TestWarehouse;
const homes: TollsHome[] = [];
// Homes whose own server a test starts (backend with no URL): stopped by afterAll whatever failed.
const serverHomes: string[] = [];

beforeAll(async () => {
  warehouse = await startTestWarehouse('e2e');
});

afterAll(async () => {
  for (const t of homes) await t.close().catch(() => undefined);
  for (const home of serverHomes) await PostgresServer.stop(home).catch(() => undefined);
  await warehouse?.stop();
});

async function home(warehouseUrl = warehouse.url): Promise<TollsHome> {
  const t = await createTollsHome({ warehouseUrl });
  homes.push(t);
  return t;
}

async function list(t: TollsHome, layer: 'staging' | 'quarantine', prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const info of t.backend.objectStore.list(layer, prefix)) out.push(info);
  return out;
}

interface WarehouseRow {
  transaction_id: string | null;
  transaction_date: string;
  toll_booth: string;
  vehicle_make: string;
  vehicle_category: string;
  transaction_amount: number | null;
}

/** Asserts toll_table holds exactly the sample's 80 transactions, typed as the original's DDL. */
async function expectSampleInWarehouse(sql: TestWarehouse['sql']): Promise<void> {
  const columns = await sql<{ column_name: string; data_type: string; is_nullable: string }>(
    `SELECT column_name, data_type, is_nullable FROM information_schema.columns
      WHERE table_name = 'toll_table' ORDER BY ordinal_position`,
  );
  expect(columns).toEqual([
    { column_name: 'transaction_id', data_type: 'bigint', is_nullable: 'YES' },
    { column_name: 'transaction_date', data_type: 'character varying', is_nullable: 'NO' },
    { column_name: 'toll_booth', data_type: 'character varying', is_nullable: 'NO' },
    { column_name: 'vehicle_make', data_type: 'character varying', is_nullable: 'NO' },
    { column_name: 'vehicle_category', data_type: 'character varying', is_nullable: 'NO' },
    { column_name: 'transaction_amount', data_type: 'real', is_nullable: 'YES' },
  ]);
  // int8 as text (exact), real as the number pg reads back.
  const rows = await sql<WarehouseRow>(
    `SELECT transaction_id::text AS transaction_id, transaction_date, toll_booth, vehicle_make,
            vehicle_category, transaction_amount FROM toll_table ORDER BY toll_table.transaction_id`,
  );
  expect(rows).toHaveLength(80);
  const byId = [...expected].sort((a, b) => a.transaction_id - b.transaction_id);
  rows.forEach((row, i) => {
    const source = byId[i] as SampleTransaction;
    expect(row.transaction_id).toBe(String(source.transaction_id));
    expect(row).toMatchObject({
      transaction_date: source.transaction_date,
      toll_booth: source.toll_booth,
      vehicle_make: source.vehicle_make,
      vehicle_category: source.vehicle_category,
    });
    // REAL: the stored value is the float32 nearest the source amount; it prints back as 2 decimals.
    expect(Math.fround(row.transaction_amount as number)).toBe(Math.fround(source.transaction_amount));
    expect(Math.round((row.transaction_amount as number) * 100) / 100).toBe(source.transaction_amount);
  });
  // Comma-joined categories kept whole (the staging CSV quotes them).
  const multi = expected.filter((r) => r.vehicle_category.includes(', ')).length;
  expect(multi).toBeGreaterThan(0);
  expect(
    await sql<{ n: string }>(`SELECT count(*) AS n FROM toll_table WHERE vehicle_category LIKE '%, %'`),
  ).toEqual([{ n: String(multi) }]);
  // Revenue per booth, as the original's SQL editor query; numeric sums of the stored reals.
  expect(
    await sql<{ booth: string; n: number; total: string }>(
      `SELECT toll_booth AS booth, count(*)::int AS n, sum(transaction_amount::numeric)::text AS total
         FROM toll_table GROUP BY toll_booth ORDER BY toll_booth COLLATE "C"`,
    ),
  ).toEqual(totalsByBooth(expected));
}

describe('tolls on the real sample (80 transactions)', () => {
  it("the test's own readers agree: the Python-dict lines and the NDJSON copy hold the same 80 records", () => {
    const fromPython = readPythonDictSample();
    expect(fromPython).toHaveLength(80);
    expect(fromPython).toEqual(expected);
    expect(new Set(expected.map((r) => r.transaction_id)).size).toBe(80);
  });

  it('Python-dict file through the workflow (executeTolls): crawl -> job -> COPY; 80 typed rows, run log, staging CSV, catalog', async () => {
    await warehouse.reset();
    const t = await home();
    const { landed, execution } = await executeTolls(t.ctx, { inputs: [TOLLS_SAMPLES.pythonDict] });
    const key = 'tolls/sample_data_toll_application.first80.json';
    expect(landed).toEqual([key]);
    expect(execution, JSON.stringify(execution.cause)).toMatchObject({
      status: 'SUCCEEDED',
      workflow: 'tolls-load',
    });
    const output = execution.output as {
      job: { files: { counts: JsonValue; quarantine_key: string | null; sha256: string }[] };
      load: { loaded: JsonValue[] };
    };
    expect(output.job.files).toHaveLength(1);
    expect(output.job.files[0]).toMatchObject({
      counts: { read: 80, loaded: 80, duplicates: 0, quarantined: 0 },
      quarantine_key: null,
      sha256: sha256(TOLLS_SAMPLES.pythonDict),
    });
    expect(output.load.loaded).toEqual([{ source_key: key, status: 'loaded', rows: 80, previous_run: null }]);

    await expectSampleInWarehouse(warehouse.sql);
    expect(
      await warehouse.sql('SELECT source_key, rows_loaded::int AS rows, source_sha256 FROM sluice_loads'),
    ).toEqual([{ source_key: key, rows: 80, source_sha256: sha256(TOLLS_SAMPLES.pythonDict) }]);

    // Run log: one job step and one load step for the file, counts reconciled.
    const runs = await t.runs();
    const steps = runs.map((r) => ({ step: r.step, unit: r.unit, status: r.status, counts: r.counts }));
    expect(steps).toEqual(
      expect.arrayContaining([
        {
          step: 'job',
          unit: 'sample_data_toll_application.first80.json',
          status: 'succeeded',
          counts: { read: 80, loaded: 80, duplicates: 0, quarantined: 0 },
        },
        {
          step: 'load',
          unit: 'sample_data_toll_application.first80.json',
          status: 'succeeded',
          counts: { read: 80, loaded: 80, duplicates: 0, quarantined: 0 },
        },
      ]),
    );
    expect(runs.filter((r) => r.step === 'job' || r.step === 'load')).toHaveLength(2);
    for (const r of runs) if (r.counts) expect(() => reconcile(r.counts!)).not.toThrow();

    // The staging CSV the COPY read: named by the file and its content hash, the 80 rows as CSV.
    const staged = await list(t, 'staging', 'tolls/toll_table/');
    expect(staged.map((o) => o.key)).toEqual([
      `tolls/toll_table/sample_data_toll_application.first80-${sha256(TOLLS_SAMPLES.pythonDict).slice(0, 12)}.csv`,
    ]);
    const csv = parse(
      Buffer.from(await t.backend.objectStore.getBytes(staged[0] as ObjectInfo)).toString('utf8'),
    ) as string[][];
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
    expect(await list(t, 'quarantine', 'tolls/')).toEqual([]);

    // The crawled catalog table: integer id, double amount, the strings NOT NULL.
    const table = await t.backend.catalog.getTable('landing', 'tolls');
    expect(table).toBeDefined();
    const column = (name: string) => table?.columns.find((c) => c.name === name);
    expect(table?.columns.map((c) => c.name)).toEqual([
      'transaction_id',
      'transaction_date',
      'toll_booth',
      'vehicle_make',
      'vehicle_category',
      'transaction_amount',
    ]);
    expect(['int', 'bigint']).toContain(column('transaction_id')?.type);
    expect(column('transaction_amount')?.type).toBe('double');
    for (const name of ['transaction_date', 'toll_booth', 'vehicle_make', 'vehicle_category']) {
      expect(column(name), name).toMatchObject({ type: 'string', nullable: false });
    }
  });

  it('NDJSON copy through the functions (land, crawlLanding, jobForEvent, loadResults): the same 80 rows', async () => {
    await warehouse.reset();
    const t = await home();
    const { landed, event } = await landTollFiles(t.ctx, { inputs: [TOLLS_SAMPLES.ndjson] });
    expect(landed).toEqual(['tolls/sample_data_toll_application.first80.ndjson']);
    // The .ndjson write emitted one object-created record that a tolls trigger matches.
    expect(event.Records).toHaveLength(1);
    const crawled = await crawlLanding(t.ctx, newRunId(t.ctx.clock.now()));
    expect(crawled).toMatchObject({ table: 'landing.tolls', files: 1, skipped: [] });
    expect(crawled.columns).toEqual(
      expect.arrayContaining([
        'transaction_date string NOT NULL',
        'toll_booth string NOT NULL',
        'vehicle_make string NOT NULL',
        'vehicle_category string NOT NULL',
      ]),
    );
    expect(crawled.columns.find((c) => c.startsWith('transaction_id '))).toMatch(
      /^transaction_id (int|bigint)\b/,
    );
    expect(crawled.columns.find((c) => c.startsWith('transaction_amount '))).toMatch(
      /^transaction_amount double\b/,
    );

    const jobRun = newRunId(t.ctx.clock.now());
    const jobs = await jobForEvent(t.ctx, event, jobRun);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({
      sourceKey: landed[0],
      sha256: sha256(TOLLS_SAMPLES.ndjson),
      counts: { read: 80, loaded: 80, duplicates: 0, quarantined: 0 },
    });
    const loads = await loadResults(t.ctx, jobs, newRunId(t.ctx.clock.now()));
    expect(loads).toEqual([{ sourceKey: landed[0], status: 'loaded', rows: 80 }]);
    await expectSampleInWarehouse(warehouse.sql);
  });

  it("a fresh home with no server (sluice run tolls' default): the backend starts PostgreSQL on 127.0.0.1 only and stops it at close", async () => {
    const t = await createTollsHome({ warehouseUrl: '' });
    serverHomes.push(t.home);
    const dataDir = PostgresServer.paths(t.home).dataDir;
    try {
      expect((await PostgresServer.status(t.home)).running).toBe(false);
      const { execution } = await executeTolls(t.ctx, { inputs: [TOLLS_SAMPLES.pythonDict] });
      expect(execution.status, JSON.stringify(execution.cause)).toBe('SUCCEEDED');
      const status = await PostgresServer.status(t.home);
      expect(status).toMatchObject({ running: true, startedBy: { owner: 'backend', pid: process.pid } });
      const w = await t.backend.openWarehouse();
      try {
        expect((await w.query('SHOW listen_addresses')).rows).toEqual([{ listen_addresses: '127.0.0.1' }]);
        expect((await w.query('SELECT count(*)::int AS n FROM toll_table')).rows).toEqual([{ n: 80 }]);
      } finally {
        await w.close();
      }
      expect(postgresProcesses(dataDir, status.pid).length).toBeGreaterThan(0);
      await t.backend.close();
      expect(postgresProcesses(dataDir, status.pid)).toEqual([]);
      expect((await PostgresServer.status(t.home)).running).toBe(false);
    } finally {
      await t.close().catch(() => undefined);
    }
  });
});
