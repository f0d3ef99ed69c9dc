/**
 * `npm run bench -- dashboard [--runs N] [--partitions N] [--executions N] [--objects N] [--json]`
 *
 * The dashboard at scale (issue 8: "with 100,000 runs and 200,000 partitions recorded, every page
 * loads in under 1 s locally"). In a temporary home it records generated run records
 * (RunLog.write over the 5 shipped pipelines, spread over a year), catalog partitions
 * (Catalog.putPartitions in batches, one big table and a few small ones, each partition with a
 * file list), execution records (ExecutionStore.put) and a few lake objects; then starts the
 * dashboard and times a GET of every page and API endpoint: the median of 5 after one warm-up.
 *
 * Baseline, measured in the same run: the raw reads under a page, straight from SQLite (the
 * newest 50 runs of one pipeline; 100 partitions of a table), so the ratio shows the dashboard's
 * overhead over the store. Target: every page < 1,000 ms.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { createLocalBackend } from '../src/backends/local/local-backend.ts';
import { ExecutionStore } from '../src/backends/local/local-workflow-runner.ts';
import { systemClock } from '../src/core/clock.ts';
import type { PartitionInput } from '../src/core/ports/catalog.ts';
import type { ExecutionRecord, ExecutionStatus } from '../src/core/ports/workflow-runner.ts';
import { formatRunId, RunLog, type RunRecord, type RunStatus } from '../src/core/run.ts';
import { startDashboard } from '../src/dashboard/server.ts';

const PIPELINES = ['gharchive', 'hashtags', 'tolls', 'quotes', 'nba'] as const;
const STEPS = ['ingest', 'transform', 'load', 'quality'] as const;
const YEAR_MS = 365 * 24 * 3600 * 1000;
const TARGET_MS = 1000;

function flag(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
}

/** A small deterministic PRNG (mulberry32), so every run generates the same data. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const hex6 = (r: () => number) =>
  Math.floor(r() * 0xffffff)
    .toString(16)
    .padStart(6, '0');
const pad = (n: number, w = 2) => String(n).padStart(w, '0');

async function seedRuns(home: string, count: number, start: number): Promise<void> {
  const backend = createLocalBackend(home);
  try {
    const log = await RunLog.open(backend.kv, systemClock);
    const r = prng(1);
    for (let i = 0; i < count; i++) {
      const pipeline = PIPELINES[i % PIPELINES.length] as string;
      const at = new Date(start + Math.floor((i / count) * YEAR_MS) + Math.floor(r() * 60_000));
      const roll = r();
      const status: RunStatus =
        roll < 0.9 ? 'succeeded' : roll < 0.95 ? 'failed' : roll < 0.97 ? 'partial' : 'skipped';
      const read = Math.floor(r() * 200_000);
      const duplicates = Math.floor(read * 0.01 * r());
      const quarantined = Math.floor(read * 0.001 * r());
      const hour = `${at.getUTCFullYear()}-${pad(at.getUTCMonth() + 1)}-${pad(at.getUTCDate())}-${at.getUTCHours()}`;
      const record: RunRecord = {
        runId: formatRunId(at, hex6(r)),
        pipeline,
        step: STEPS[i % STEPS.length] as string,
        unit: `${hour}.json.gz`,
        startedAt: at.toISOString(),
        endedAt: new Date(at.getTime() + Math.floor(r() * 120_000)).toISOString(),
        status,
        ...(status === 'skipped'
          ? {}
          : {
              counts: { read, loaded: read - duplicates - quarantined, duplicates, quarantined },
              bytes: read * 350,
            }),
        ...(status === 'failed' || status === 'partial'
          ? { error: `gunzip: unexpected end of file (${hour}.json.gz)` }
          : {}),
        details: {
          partitions: [`${pipeline}/events/year=${at.getUTCFullYear()}/month=${pad(at.getUTCMonth() + 1)}/`],
          schemaVersion: 1 + (i % 3),
        },
      };
      await log.write(record);
    }
  } finally {
    await backend.close();
  }
}

async function seedCatalog(
  home: string,
  total: number,
): Promise<{ big: string; sizes: Record<string, number> }> {
  const backend = createLocalBackend(home);
  const r = prng(2);
  const big = Math.max(1, Math.round(total * 0.85));
  const small = Math.floor((total - big) / 3);
  const tables = [
    { database: 'gharchive', name: 'events', count: big },
    { database: 'hashtags', name: 'tweets', count: small },
    { database: 'tolls', name: 'transactions', count: small },
    { database: 'nba', name: 'tweets', count: total - big - 2 * small },
  ];
  try {
    for (const t of tables) {
      await backend.catalog.upsertTable({
        database: t.database,
        name: t.name,
        location: { layer: 'analytical', prefix: `${t.database}/${t.name}/` },
        format: 'parquet',
        columns: [
          { name: 'id', type: 'string', nullable: false },
          { name: 'type', type: 'string' },
          { name: 'payload', type: 'string' },
          { name: 'created_at', type: 'timestamp' },
        ],
        partitionKeys: ['year', 'month', 'day', 'hour'].map((name) => ({ name, type: 'string' as const })),
        primaryKey: ['id'],
      });
      const base = Date.UTC(2000, 0, 1);
      for (let done = 0; done < t.count; ) {
        const batch: PartitionInput[] = [];
        for (; batch.length < 1000 && done < t.count; done++) {
          const d = new Date(base + done * 3600_000);
          const values = [
            String(d.getUTCFullYear()),
            pad(d.getUTCMonth() + 1),
            pad(d.getUTCDate()),
            pad(d.getUTCHours()),
          ];
          const prefix = `${t.database}/${t.name}/year=${values[0]}/month=${values[1]}/day=${values[2]}/hour=${values[3]}/`;
          const nFiles = 1 + Math.floor(r() * 3);
          batch.push({
            values,
            prefix,
            files: Array.from({ length: nFiles }, (_, f) => ({
              key: `${prefix}part-${f}-${hex6(r)}.parquet`,
              bytes: 50_000 + Math.floor(r() * 5_000_000),
              rows: 100 + Math.floor(r() * 50_000),
            })),
            runId: formatRunId(d, hex6(r)),
          });
        }
        await backend.catalog.putPartitions(t.database, t.name, batch);
      }
    }
  } finally {
    await backend.close();
  }
  return {
    big: `${tables[0]?.database}/${tables[0]?.name}`,
    sizes: Object.fromEntries(tables.map((t) => [`${t.database}.${t.name}`, t.count])),
  };
}

async function seedExecutions(home: string, count: number, start: number): Promise<void> {
  const backend = createLocalBackend(home);
  try {
    const store = await ExecutionStore.open(backend.kv);
    const r = prng(3);
    for (let i = 0; i < count; i++) {
      const pipeline = PIPELINES[i % PIPELINES.length] as string;
      const at = new Date(start + Math.floor((i / count) * YEAR_MS));
      const status: ExecutionStatus = r() < 0.92 ? 'SUCCEEDED' : 'FAILED';
      const record: ExecutionRecord = {
        executionId: `${pipeline}-hourly-${formatRunId(at, hex6(r))}`,
        workflow: `${pipeline}-hourly`,
        pipeline,
        status,
        input: { hour: at.toISOString().slice(0, 13) },
        output: status === 'SUCCEEDED' ? { loaded: Math.floor(r() * 100_000) } : null,
        ...(status === 'FAILED'
          ? { error: 'States.TaskFailed', cause: 'ingest failed', failedState: 'Ingest' }
          : {}),
        source: { kind: 'schedule', name: 'hourly', detail: at.toISOString() },
        startedAt: at.toISOString(),
        stoppedAt: new Date(at.getTime() + 90_000).toISOString(),
      };
      await store.put(record);
    }
  } finally {
    await backend.close();
  }
}

async function seedObjects(home: string, count: number): Promise<void> {
  const backend = createLocalBackend(home);
  try {
    for (let i = 0; i < count; i++) {
      const d = new Date(Date.UTC(2025, 0, 1) + i * 3600_000);
      const key = `gharchive/events/year=${d.getUTCFullYear()}/month=${pad(d.getUTCMonth() + 1)}/day=${pad(d.getUTCDate())}/hour=${pad(d.getUTCHours())}/part-0.parquet`;
      await backend.objectStore.put({ layer: 'analytical', key }, new Uint8Array(64));
    }
  } finally {
    await backend.close();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

async function time(fn: () => Promise<unknown> | unknown, reps = 5): Promise<number> {
  await fn(); // warm-up
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
  }
  return median(ms);
}

export async function main(argv: string[]): Promise<void> {
  const asJson = argv.includes('--json');
  const runs = flag(argv, '--runs', 100_000);
  const partitions = flag(argv, '--partitions', 200_000);
  const executions = flag(argv, '--executions', 10_000);
  const objects = flag(argv, '--objects', 2_000);
  const home = await mkdtemp(path.join(os.tmpdir(), 'sluice-bench-dashboard-'));
  const log = (s: string) => process.stderr.write(`${s}\n`);
  try {
    const start = Date.UTC(2025, 0, 1);
    let t = performance.now();
    await seedRuns(home, runs, start);
    log(`seeded ${runs} runs in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    t = performance.now();
    const { big, sizes } = await seedCatalog(home, partitions);
    log(
      `seeded ${partitions} partitions (${JSON.stringify(sizes)}) in ${((performance.now() - t) / 1000).toFixed(1)} s`,
    );
    t = performance.now();
    await seedExecutions(home, executions, start);
    log(`seeded ${executions} executions in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    t = performance.now();
    await seedObjects(home, objects);
    log(`seeded ${objects} lake objects in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    // Baseline: the raw reads, straight from SQLite.
    const db = new BetterSqlite3(path.join(home, 'sluice.db'), { readonly: true });
    const runsStmt = db.prepare(
      "SELECT item FROM kv_items WHERE table_name = 'sluice_runs' AND hash_key = ? ORDER BY range_key DESC LIMIT 50",
    );
    const partsStmt = db.prepare(
      'SELECT * FROM catalog_partitions WHERE database = ? AND name = ? ORDER BY sort_key DESC LIMIT 100',
    );
    const [bigDb, bigName] = big.split('/') as [string, string];
    const baselineRuns = await time(() =>
      runsStmt.all('gharchive').map((r) => JSON.parse((r as { item: string }).item)),
    );
    const baselinePartitions = await time(() => partsStmt.all(bigDb, bigName));
    db.close();

    const dashboard = await startDashboard({ home, port: 0 });
    // Cursors deep in the log (as a reader following "older" links would hold), read once by offset.
    const deep = async (query: string) => {
      const res = await fetch(`${dashboard.url}/api/runs?${query}`);
      return encodeURIComponent(((await res.json()) as { older: string | null }).older ?? '');
    };
    const deepAll = await deep(`offset=${Math.max(0, Math.floor(runs * 0.9) - 1)}&limit=1`);
    const deepGharchive = await deep(
      `pipeline=gharchive&offset=${Math.max(0, Math.floor(runs * 0.15))}&limit=1`,
    );
    const paths = [
      '/',
      '/pipelines',
      ...PIPELINES.map((p) => `/pipelines/${p}`),
      '/runs',
      '/runs?pipeline=tolls&status=failed&offset=4000',
      '/runs?offset=90000',
      `/runs?older=${deepAll}`,
      `/runs?pipeline=gharchive&older=${deepGharchive}`,
      '/executions',
      '/executions?pipeline=nba&status=failed&offset=100',
      '/catalog',
      `/catalog/${big}`,
      `/catalog/${big}?offset=150000`,
      '/lake',
      '/quality',
      '/api/pipelines',
      '/api/runs',
      '/api/runs?pipeline=gharchive&limit=50',
      '/api/runs?status=failed&offset=2000',
      `/api/runs?older=${deepAll}`,
      `/api/runs?status=failed&older=${deepAll}`,
      '/api/executions',
      '/api/catalog',
      `/api/catalog/${big}`,
      '/api/lake/analytical',
      '/api/quality',
      '/api/events',
      `/api/events?cursor=${encodeURIComponent(new Date(start + YEAR_MS - 3_600_000).toISOString())}`,
    ];
    const results: { path: string; ms: number; status: number; bytes: number }[] = [];
    try {
      for (const p of paths) {
        let status = 0;
        let bytes = 0;
        const ms = await time(async () => {
          const res = await fetch(`${dashboard.url}${p}`);
          const body = await res.arrayBuffer();
          status = res.status;
          bytes = body.byteLength;
        });
        // Cursors are long: show where they point instead.
        const shown = p.replace(/older=[\w%-]{20,}/, 'older=<cursor deep in the log>');
        results.push({ path: shown, ms, status, bytes });
        log(`${shown}: ${ms.toFixed(1)} ms`);
      }
    } finally {
      await dashboard.close();
    }

    const over = results.filter((r) => r.ms > TARGET_MS);
    const width = Math.max(...results.map((r) => r.path.length));
    const lines = [
      `dashboard over ${runs} runs, ${partitions} partitions (${big.replace('/', '.')}: ${sizes[big.replace('/', '.')]}), ${executions} executions, ${objects} lake objects; median of 5 after a warm-up`,
      `baseline: raw SQLite, newest 50 runs of one pipeline ${baselineRuns.toFixed(2)} ms; 100 partitions of ${big.replace('/', '.')} ${baselinePartitions.toFixed(2)} ms`,
      '',
      `${'page'.padEnd(width)}  status      ms   x baseline  `,
      ...results.map(
        (r) =>
          `${r.path.padEnd(width)}  ${String(r.status).padStart(6)}  ${r.ms.toFixed(1).padStart(7)}  ${(r.ms / baselineRuns).toFixed(0).padStart(10)}  ${r.ms > TARGET_MS ? 'OVER 1 s' : ''}`,
      ),
      '',
      over.length === 0
        ? `every page under ${TARGET_MS} ms`
        : `${over.length} of ${results.length} over ${TARGET_MS} ms (target: every page under 1 s)`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (asJson)
      process.stdout.write(
        `${JSON.stringify({
          bench: 'dashboard',
          runs,
          partitions,
          executions,
          objects,
          baselineMs: { runs50: baselineRuns, partitions100: baselinePartitions },
          pages: results,
          over: over.map((r) => r.path),
        })}\n`,
      );
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}
