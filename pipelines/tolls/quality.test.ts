/**
 * tolls' data-quality checks: the job reads its staging CSV back with DuckDB, evaluates the checks
 * of `toll_table` before publishing it, and records them in `sluice.quality_results` and the run
 * log; a failed `block` check stages nothing, so nothing reaches the warehouse; the amount range
 * check quarantines its rows and the rest loads, byte-for-byte the same values.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/core/errors.ts';
import type { CheckDefinition } from '../../src/core/quality.ts';
import { formatCheckSummary, tableChecks } from '../../src/engines/quality/checks.ts';
import {
  createTollsHome,
  startTestWarehouse,
  type TestWarehouse,
  TOLLS_SAMPLES,
  type TollsHome,
} from '../../test/helpers/tolls.ts';
import { tollsPipeline } from './definition.ts';
import { jobForEvent, loadResults, newRunId } from './functions.ts';
import { landTollFiles } from './run.ts';

let warehouse: TestWarehouse;
let t: TollsHome;
let scratch: string;

beforeAll(async () => {
  warehouse = await startTestWarehouse('quality');
});
afterAll(async () => {
  await warehouse?.stop();
});
beforeEach(async () => {
  await warehouse.reset();
  t = await createTollsHome({ warehouseUrl: warehouse.url });
  scratch = await mkdtemp(path.join(os.tmpdir(), 'sluice-tolls-quality-'));
});
afterEach(async () => {
  await t?.close();
  await rm(scratch, { recursive: true, force: true });
});

const transaction = (id: number, fields: Record<string, unknown> = {}) =>
  JSON.stringify({
    transaction_id: id,
    transaction_date: '2023/08/01',
    toll_booth: 'golf_rd',
    vehicle_make: 'Audi',
    vehicle_category: 'SUV',
    transaction_amount: 3.5,
    ...fields,
  });

/** Lands files (name -> lines) and runs the job on their event. */
async function job(files: Record<string, string[]> | string[], checks?: readonly CheckDefinition[]) {
  const inputs: string[] = [];
  if (Array.isArray(files)) inputs.push(...files);
  else {
    for (const [name, lines] of Object.entries(files)) {
      await writeFile(path.join(scratch, name), `${lines.join('\n')}\n`);
      inputs.push(path.join(scratch, name));
    }
  }
  const { event } = await landTollFiles(t.ctx, { inputs });
  return jobForEvent(t.ctx, event, newRunId(t.ctx.clock.now()), checks ? { checks } : {});
}

const tollTable = () =>
  warehouse.sql(
    `SELECT transaction_id::text AS id, transaction_date, toll_booth, vehicle_make, vehicle_category,
       transaction_amount FROM toll_table ORDER BY transaction_id, vehicle_make`,
  );

async function keys(layer: 'staging' | 'quarantine', prefix: string): Promise<string[]> {
  const found: string[] = [];
  for await (const info of t.backend.objectStore.list(layer, prefix)) found.push(info.key);
  return found;
}

describe('tolls data-quality checks', () => {
  it('evaluates the declared checks on the staged rows and records them in sluice.quality_results and the run log', async () => {
    const [result] = await job([TOLLS_SAMPLES.pythonDict]);
    expect(result?.counts).toEqual({ read: 80, loaded: 80, duplicates: 0, quarantined: 0 });
    expect(result?.checks.map((c) => [c.check, c.severity, c.status, c.rows])).toEqual([
      ['not_null(transaction_date)', 'block', 'pass', 80],
      ['not_null(toll_booth)', 'block', 'pass', 80],
      ['not_null(vehicle_make)', 'block', 'pass', 80],
      ['not_null(vehicle_category)', 'block', 'pass', 80],
      ['amount_in_range', 'quarantine', 'pass', 80],
      ['accepted_values(toll_booth)', 'warn', 'pass', 80],
    ]);
    const stored = await t.backend.openQueryEngine();
    try {
      const rows = (
        await stored.query(
          `SELECT DISTINCT pipeline, table_name, unit, status FROM sluice.quality_results ORDER BY ALL`,
        )
      ).rows;
      expect(rows).toEqual([
        {
          pipeline: 'tolls',
          table_name: 'toll_table',
          unit: 'sample_data_toll_application.first80.json',
          status: 'pass',
        },
      ]);
    } finally {
      await stored.close();
    }
    const record = (await t.runs()).find((r) => r.step === 'job');
    expect(formatCheckSummary(record?.details?.checks)).toBe('6 pass');
    const [loaded] = await loadResults(t.ctx, [result!], newRunId(t.ctx.clock.now()));
    expect(loaded).toMatchObject({ status: 'loaded', rows: 80 });
  });

  it('a failed block check stages nothing, so nothing reaches the warehouse and toll_table stays as it was', async () => {
    const [sample] = await job([TOLLS_SAMPLES.pythonDict]);
    await loadResults(t.ctx, [sample!], newRunId(t.ctx.clock.now()));
    const before = await tollTable();
    const loadsBefore = await warehouse.sql('SELECT * FROM sluice_loads');
    expect(before).toHaveLength(80);

    const strict: CheckDefinition[] = [
      ...tableChecks(tollsPipeline, 'toll_table'),
      { kind: 'expression', name: 'no_trabant', predicate: "vehicle_make <> 'Trabant'", severity: 'block' },
    ];
    await expect(
      job(
        { 'bad.json': [transaction(1), transaction(2, { vehicle_make: 'Trabant' }), transaction(3)] },
        strict,
      ),
    ).rejects.toMatchObject({ name: 'QualityBlockedError', exitCode: ExitCode.qualityBlocked });
    // Nothing of the file was published: no staging CSV, no quarantine object, so no load can run.
    expect(await keys('staging', 'tolls/')).toEqual([sample!.staging!.key]);
    expect(await keys('quarantine', 'tolls/')).toEqual([]);
    expect(await tollTable()).toEqual(before);
    expect(await warehouse.sql('SELECT * FROM sluice_loads')).toEqual(loadsBefore);

    const failed = (await t.runs()).find((r) => r.step === 'job' && r.status === 'failed');
    expect(failed?.unit).toBe('bad.json');
    expect(failed?.error).toMatch(/no_trabant: 1 of 3 rows fail the predicate/);
    expect(formatCheckSummary(failed?.details?.checks)).toBe('6 pass, 1 block');
  });

  it('the amount range check quarantines its rows; the others load with their exact values, once', async () => {
    const lines = [
      transaction(1, { vehicle_make: 'O\'Neil "x", y', vehicle_category: '' }),
      transaction(2, { transaction_amount: 12 }),
      transaction(3, { transaction_amount: -1 }),
      transaction(4, { transaction_amount: null, vehicle_category: 'Van\nMinivan' }),
      transaction(5, { transaction_amount: 10, toll_booth: 'new_booth' }),
    ];
    const [result] = await job({ 'amounts.json': lines });
    expect(result?.counts).toEqual({ read: 5, loaded: 3, duplicates: 0, quarantined: 2 });
    expect(
      result?.checks.filter((c) => c.status === 'fail').map((c) => [c.check, c.action, c.failingRows]),
    ).toEqual([
      ['amount_in_range', 'quarantined', 2],
      ['accepted_values(toll_booth)', 'warned', 1],
    ]);
    const quarantine = Buffer.from(await t.backend.objectStore.getBytes(result!.quarantine!))
      .toString('utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { line: number; reason: string; raw: string });
    expect(quarantine.map((q) => [q.line, q.reason])).toEqual([
      [2, 'data-quality check failed: amount_in_range'],
      [3, 'data-quality check failed: amount_in_range'],
    ]);
    expect(JSON.parse(quarantine[0]!.raw)).toMatchObject({ transaction_id: 2, transaction_amount: 12 });

    const [loaded] = await loadResults(t.ctx, [result!], newRunId(t.ctx.clock.now()));
    expect(loaded).toMatchObject({ status: 'loaded', rows: 3 });
    expect(await tollTable()).toEqual([
      {
        id: '1',
        transaction_date: '2023/08/01',
        toll_booth: 'golf_rd',
        vehicle_make: 'O\'Neil "x", y',
        vehicle_category: '',
        transaction_amount: 3.5,
      },
      {
        id: '4',
        transaction_date: '2023/08/01',
        toll_booth: 'golf_rd',
        vehicle_make: 'Audi',
        vehicle_category: 'Van\nMinivan',
        transaction_amount: null,
      },
      {
        id: '5',
        transaction_date: '2023/08/01',
        toll_booth: 'new_booth',
        vehicle_make: 'Audi',
        vehicle_category: 'SUV',
        transaction_amount: 10,
      },
    ]);

    // A re-delivery rewrites the same staging object and loads nothing twice.
    const staged = Buffer.from(await t.backend.objectStore.getBytes(result!.staging!)).toString('utf8');
    const [again] = await job({ 'amounts.json': lines });
    expect(again?.staging).toEqual(result?.staging);
    expect(Buffer.from(await t.backend.objectStore.getBytes(again!.staging!)).toString('utf8')).toBe(staged);
    const [reloaded] = await loadResults(t.ctx, [again!], newRunId(t.ctx.clock.now()));
    expect(reloaded).toMatchObject({ status: 'already-loaded', rows: 3 });
    expect(await tollTable()).toHaveLength(3);
  });
});
