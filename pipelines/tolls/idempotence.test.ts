import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { executeTolls } from '../../src/cli/commands/run-tolls.ts';
import { reconcile } from '../../src/core/run.ts';
import { ROOT } from '../../test/helpers/samples.ts';
import {
  createTollsHome,
  readNdjsonSample,
  startTestWarehouse,
  type TestWarehouse,
  TOLLS_SAMPLES,
  type TollsHome,
  totalsByBooth,
} from '../../test/helpers/tolls.ts';
import { jobForEvent, loadResults, newRunId } from './functions.ts';
import type { JobFileResult } from './job.ts';
import { landTollFiles } from './run.ts';

const CHILD = path.join(ROOT, 'test/helpers/tolls-load-kill-child.ts');
const SAMPLE_KEY = 'tolls/sample_data_toll_application.first80.json';
const sampleSha = createHash('sha256').update(readFileSync(TOLLS_SAMPLES.pythonDict)).digest('hex');
const expectedTotals = totalsByBooth(readNdjsonSample());

let warehouse: TestWarehouse;
let t: TollsHome;
let scratch: string;

beforeAll(async () => {
  warehouse = await startTestWarehouse('idem');
});
afterAll(async () => {
  await warehouse?.stop();
});
beforeEach(async () => {
  await warehouse.reset();
  t = await createTollsHome({ warehouseUrl: warehouse.url });
  scratch = await mkdtemp(path.join(os.tmpdir(), 'sluice-tolls-files-'));
});
afterEach(async () => {
  await t?.close();
  await rm(scratch, { recursive: true, force: true });
});

async function rowCount(): Promise<number> {
  const [row] = await warehouse.sql<{ n: number }>('SELECT count(*)::int AS n FROM toll_table');
  return row?.n ?? -1;
}

async function loadRecords(): Promise<{ source_key: string; rows: number; run_id: string }[]> {
  return warehouse.sql(
    'SELECT source_key, rows_loaded::int AS rows, run_id FROM sluice_loads ORDER BY loaded_at, source_key',
  );
}

/** Lands the sample and runs the job on it (no load). */
async function stagedSample(): Promise<JobFileResult> {
  const { event } = await landTollFiles(t.ctx, { inputs: [TOLLS_SAMPLES.pythonDict] });
  const [job] = await jobForEvent(t.ctx, event, newRunId(t.ctx.clock.now()));
  expect(job).toMatchObject({ sha256: sampleSha, counts: { loaded: 80 } });
  return job as JobFileResult;
}

/** Runs the kill child; resolves with how it ended and what it printed. */
function runKillChild(
  args: string[],
): Promise<{ signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('exit', (_code, signal) => resolve({ signal, stdout, stderr }));
  });
}

describe('tolls loads each file content exactly once', () => {
  it('the same file landed again under the same key, and under another name: still 80 rows, the later loads already-loaded', async () => {
    const first = await executeTolls(t.ctx, { inputs: [TOLLS_SAMPLES.pythonDict] });
    expect(first.execution.status).toBe('SUCCEEDED');
    const firstLoad = (first.execution.output as { load: { run_id: string; loaded: unknown[] } }).load;
    expect(firstLoad.loaded).toEqual([
      { source_key: SAMPLE_KEY, status: 'loaded', rows: 80, previous_run: null },
    ]);

    // Dropped again under the same key (a new object-created event for the same bytes).
    const again = await executeTolls(t.ctx, { inputs: [TOLLS_SAMPLES.pythonDict] });
    expect(again.execution.status).toBe('SUCCEEDED');
    expect((again.execution.output as { load: { loaded: unknown[] } }).load.loaded).toEqual([
      { source_key: SAMPLE_KEY, status: 'already-loaded', rows: 80, previous_run: firstLoad.run_id },
    ]);

    // The same bytes under another name.
    const renamed = path.join(scratch, 'sample_data-2023-08-29-10-00.json');
    await copyFile(TOLLS_SAMPLES.pythonDict, renamed);
    const copy = await executeTolls(t.ctx, { inputs: [renamed] });
    expect(copy.execution.status).toBe('SUCCEEDED');
    expect((copy.execution.output as { load: { loaded: unknown[] } }).load.loaded).toEqual([
      {
        source_key: 'tolls/sample_data-2023-08-29-10-00.json',
        status: 'already-loaded',
        rows: 80,
        previous_run: firstLoad.run_id,
      },
    ]);

    expect(await rowCount()).toBe(80);
    expect(await loadRecords()).toEqual([{ source_key: SAMPLE_KEY, rows: 80, run_id: firstLoad.run_id }]);
    expect(
      await warehouse.sql(
        `SELECT toll_booth AS booth, count(*)::int AS n, sum(transaction_amount::numeric)::text AS total
           FROM toll_table GROUP BY toll_booth ORDER BY toll_booth COLLATE "C"`,
      ),
    ).toEqual(expectedTotals);
    // Run log: three load steps; one copied 80, two counted the 80 as duplicates; all reconcile.
    const loads = (await t.runs()).filter((r) => r.step === 'load');
    expect(loads.map((r) => r.counts).sort((a, b) => (a?.loaded ?? 0) - (b?.loaded ?? 0))).toEqual([
      { read: 80, loaded: 0, duplicates: 80, quarantined: 0 },
      { read: 80, loaded: 0, duplicates: 80, quarantined: 0 },
      { read: 80, loaded: 80, duplicates: 0, quarantined: 0 },
    ]);
    for (const r of loads) reconcile(r.counts!);
  });

  it('a load that fails after the COPY, inside its transaction, leaves nothing; the retry loads the 80 rows once', async () => {
    const job = await stagedSample();
    let failures = 0;
    let visibleDuringTransaction = -1;
    const onPhase = async (phase: 'copied') => {
      if (phase !== 'copied' || failures > 0) return;
      failures++;
      // The COPY ran but is not committed: another session sees none of it.
      visibleDuringTransaction = await rowCount();
      throw new Error('simulated kill between COPY and COMMIT');
    };
    await expect(loadResults(t.ctx, [job], newRunId(t.ctx.clock.now()), { onPhase })).rejects.toThrow(
      /simulated kill between COPY and COMMIT/,
    );
    expect(visibleDuringTransaction).toBe(0);
    expect(await rowCount()).toBe(0);
    expect(await loadRecords()).toEqual([]);

    const retryRun = newRunId(t.ctx.clock.now());
    expect(await loadResults(t.ctx, [job], retryRun, { onPhase })).toEqual([
      { sourceKey: SAMPLE_KEY, status: 'loaded', rows: 80 },
    ]);
    expect(failures).toBe(1);
    expect(await rowCount()).toBe(80);
    expect(await loadRecords()).toEqual([{ source_key: SAMPLE_KEY, rows: 80, run_id: retryRun }]);
    const loads = (await t.runs()).filter((r) => r.step === 'load');
    expect(loads.map((r) => r.status).sort()).toEqual(['failed', 'succeeded']);
    expect(loads.find((r) => r.status === 'failed')?.error).toMatch(/simulated kill/);
  });

  it('a process SIGKILLed between COPY and COMMIT leaves no row visible; the retry loads the 80 rows once', async () => {
    const job = await stagedSample();
    const child = await runKillChild([t.home, warehouse.url, job.sourceKey, job.sha256, job.staging!.key]);
    expect(child.signal, child.stderr).toBe('SIGKILL');
    expect(child.stdout).toBe('copied\n');
    expect(await rowCount()).toBe(0);
    expect(await loadRecords()).toEqual([]);

    const retryRun = newRunId(t.ctx.clock.now());
    expect(await loadResults(t.ctx, [job], retryRun)).toEqual([
      { sourceKey: SAMPLE_KEY, status: 'loaded', rows: 80 },
    ]);
    expect(await rowCount()).toBe(80);
    expect(await loadRecords()).toEqual([{ source_key: SAMPLE_KEY, rows: 80, run_id: retryRun }]);
  });

  it('two concurrent loads of the same file, on a warehouse without the tables yet and with them: one copies, the other finds it loaded', async () => {
    // No toll_table / sluice_loads yet: both loads create them at once.
    const job = await stagedSample();
    const results = await Promise.all([
      loadResults(t.ctx, [job], newRunId(t.ctx.clock.now())),
      loadResults(t.ctx, [job], newRunId(t.ctx.clock.now())),
    ]);
    expect(
      results
        .flat()
        .map((r) => r.status)
        .sort(),
    ).toEqual(['already-loaded', 'loaded']);
    expect(await rowCount()).toBe(80);
    expect(await loadRecords()).toHaveLength(1);

    // Tables in place: the NDJSON copy (other bytes, so a new load) twice at once.
    const { event } = await landTollFiles(t.ctx, { inputs: [TOLLS_SAMPLES.ndjson] });
    const [ndjson] = await jobForEvent(t.ctx, event, newRunId(t.ctx.clock.now()));
    const second = await Promise.all([
      loadResults(t.ctx, [ndjson!], newRunId(t.ctx.clock.now())),
      loadResults(t.ctx, [ndjson!], newRunId(t.ctx.clock.now())),
    ]);
    expect(
      second
        .flat()
        .map((r) => [r.status, r.rows])
        .sort(),
    ).toEqual([
      ['already-loaded', 80],
      ['loaded', 80],
    ]);
    expect(await rowCount()).toBe(160);
    expect((await loadRecords()).map((r) => r.source_key).sort()).toEqual([
      SAMPLE_KEY,
      'tolls/sample_data_toll_application.first80.ndjson',
    ]);
  });
});
