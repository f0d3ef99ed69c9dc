import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createLocalBackend } from '../../src/backends/local/local-backend.ts';
import { PostgresServer } from '../../src/backends/local/postgres-server.ts';
import type { Clock } from '../../src/core/clock.ts';
import { systemClock } from '../../src/core/clock.ts';
import type { PipelineContext } from '../../src/core/context.ts';
import { noProgress, silentLogger } from '../../src/core/logger.ts';
import type { Backend } from '../../src/core/ports/backend.ts';
import { RunLog, type RunRecord } from '../../src/core/run.ts';
import { ROOT } from './samples.ts';

/** The bundled real tolls sample (examples/data/tolls/PROVENANCE.md): 80 Python-dict lines, and its NDJSON copy. */
export const TOLLS_SAMPLES = {
  pythonDict: path.join(ROOT, 'examples/data/tolls/sample_data_toll_application.first80.json'),
  ndjson: path.join(ROOT, 'examples/data/tolls/sample_data_toll_application.first80.ndjson'),
} as const;

/** One transaction as the sample file holds it. */
export interface SampleTransaction {
  transaction_id: number;
  transaction_date: string;
  toll_booth: string;
  vehicle_make: string;
  vehicle_category: string;
  transaction_amount: number;
}

/** The NDJSON copy's records, parsed with `JSON.parse` (not with sluice's parser). */
export function readNdjsonSample(file: string = TOLLS_SAMPLES.ndjson): SampleTransaction[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as SampleTransaction);
}

// `'key': value` of the sample's flat dicts: a quoted string (no escapes in the sample), an int, a float, None.
const PY_FIELD = /'([a-z_]+)': (?:'([^'\\]*)'|"([^"\\]*)"|(-?\d+(?:\.\d+)?)|(None))(?=, '|\}$)/g;

/**
 * A tiny reader of the sample's Python-dict lines (`{'k': 'text', 'n': 123, 'x': 8.85}`), independent
 * of sluice's Python literal parser; throws on a line it does not fully understand.
 */
export function readPythonDictLine(line: string): Record<string, string | number | null> {
  if (!line.startsWith('{') || !line.endsWith('}')) throw new Error(`not a flat dict: ${line}`);
  const out: Record<string, string | number | null> = {};
  let consumed = 2; // the braces
  for (const m of line.matchAll(PY_FIELD)) {
    const [all, key, single, double, number] = m;
    out[key as string] =
      single !== undefined
        ? single
        : double !== undefined
          ? double
          : number !== undefined
            ? Number(number)
            : null;
    consumed += all.length;
  }
  // Every character is a field, a `, ` separator or a brace.
  const fields = Object.keys(out).length;
  if (fields === 0 || consumed + 2 * (fields - 1) !== line.length) throw new Error(`unreadable: ${line}`);
  return out;
}

/** The Python-dict sample's records, read by {@link readPythonDictLine}. */
export function readPythonDictSample(file: string = TOLLS_SAMPLES.pythonDict): SampleTransaction[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => readPythonDictLine(line) as unknown as SampleTransaction);
}

/** Whole cents of an amount with 2 decimals. */
export function cents(amount: number): number {
  return Math.round(amount * 100);
}

/** `12345` cents as `123.45`. */
export function formatCents(total: number): string {
  return `${Math.trunc(total / 100)}.${String(total % 100).padStart(2, '0')}`;
}

/** Per toll booth: transactions and the total amount (as `123.45`), sorted by booth. */
export function totalsByBooth(
  records: readonly SampleTransaction[],
): { booth: string; n: number; total: string }[] {
  const by = new Map<string, { n: number; cents: number }>();
  for (const r of records) {
    const entry = by.get(r.toll_booth) ?? { n: 0, cents: 0 };
    entry.n++;
    entry.cents += cents(r.transaction_amount);
    by.set(r.toll_booth, entry);
  }
  return [...by.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([booth, e]) => ({ booth, n: e.n, total: formatCents(e.cents) }));
}

/** A PostgreSQL server for one test file, and a plain `pg` client to check what it holds. */
export interface TestWarehouse {
  readonly home: string;
  readonly server: PostgresServer;
  /** Connection string (with the password) for `createLocalBackend(..., { warehouseUrl })`. */
  readonly url: string;
  /** Runs SQL through a plain `pg` pool (int8 and numeric as strings, real as numbers). */
  sql<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  /** Drops `toll_table` and `sluice_loads` (the next load creates them again). */
  reset(): Promise<void>;
  /** Ends the pool, stops the server, removes its home; never throws. */
  stop(): Promise<void>;
}

/** Starts a fresh PostgreSQL server (initdb + start, ~1.5 s) in a temp home. Stop it in `afterAll`. */
export async function startTestWarehouse(label: string): Promise<TestWarehouse> {
  const home = await mkdtemp(path.join(os.tmpdir(), `sluice-tolls-wh-${label}-`));
  let server: PostgresServer;
  try {
    server = await PostgresServer.start(home);
  } catch (error) {
    await PostgresServer.stop(home).catch(() => undefined);
    await rm(home, { recursive: true, force: true });
    throw error;
  }
  const pool = new pg.Pool({ connectionString: server.connectionString, max: 3 });
  pool.on('error', () => {});
  return {
    home,
    server,
    url: server.connectionString,
    async sql<T>(text: string, params: unknown[] = []) {
      return (await pool.query(text, params)).rows as T[];
    },
    async reset() {
      await pool.query('DROP TABLE IF EXISTS toll_table, sluice_loads');
    },
    async stop() {
      await pool.end().catch(() => undefined);
      await PostgresServer.stop(home).catch(() => undefined);
      await rm(home, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

/** A fresh sluice home whose backend uses the warehouse at `warehouseUrl` (`''`: the home's own server). */
export interface TollsHome {
  readonly home: string;
  readonly backend: Backend & { home: string };
  readonly ctx: PipelineContext;
  /** Run-log records of the tolls pipeline, oldest first. */
  runs(): Promise<RunRecord[]>;
  close(): Promise<void>;
}

export async function createTollsHome(options: { warehouseUrl: string; clock?: Clock }): Promise<TollsHome> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'sluice-tolls-'));
  const clock = options.clock ?? systemClock;
  const backend = createLocalBackend(home, { clock, warehouseUrl: options.warehouseUrl });
  const ctx: PipelineContext = {
    backend,
    clock,
    logger: silentLogger,
    progress: noProgress,
    workDir: path.join(home, 'tmp'),
    engine: { threads: 1, memoryLimit: '256MB' },
  };
  return {
    home,
    backend,
    ctx,
    async runs() {
      const log = await RunLog.open(backend.kv, clock);
      return (await log.list({ pipeline: 'tolls', limit: 1000 })).reverse();
    },
    async close() {
      try {
        await backend.close();
      } finally {
        await rm(home, { recursive: true, force: true });
      }
    },
  };
}

/**
 * Live (non-zombie) processes of a PostgreSQL server: those whose command line names `dataDir`
 * (the postmaster) and the children of `postmasterPid`. Linux `/proc` only.
 */
export function postgresProcesses(dataDir: string, postmasterPid?: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (args.includes(dataDir) || (postmasterPid !== undefined && Number(fields[1]) === postmasterPid)) {
        found.push(Number(entry));
      }
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Waits (in real time) until `check` returns a value; fails after `timeoutMs` (a deadline, not a timing assertion). */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`not reached within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
