/**
 * `npm run bench -- tolls [--json] [--rows N] [--runs K] [--format python-dict|ndjson] [--parts]`
 *
 * Rows per second from a landed file of toll transactions to committed rows in the warehouse's
 * `toll_table`, on `--rows` (default 1,000,000) transactions from the pipeline's generator in the
 * original's format (`--format python-dict`, default) or NDJSON (see tolls-data.ts; cached in
 * bench/.data). One local PostgreSQL server (`PostgresServer.start` in a temporary home, stopped at
 * the end) serves every run; before each, the tables are dropped and a CHECKPOINT flushes the
 * previous run's writes. In the same run, each in its own process (peak RSS is its own):
 *   (a) sluice, the workflow: `executeTolls` (as `sluice run tolls --input FILE`): land, then
 *       crawl -> job -> load through the local workflow runner;
 *   (b) sluice, job + load: `jobForEvent` + `loadResults` on the landed file's S3 event;
 *   (c) the baseline: read the file, parse each line with the same parser, one `stream.write()`
 *       per row into `COPY toll_table_baseline ... FROM STDIN` (pg-copy-streams), the naive
 *       per-row COPY the issue measured at ~82,000 rows/s; `toll_table_baseline` has the DDL of
 *       `toll_table`.
 * Sluice is timed from the landing's object-created notification to the COMMIT (landing itself is
 * reported apart). After each run the table must hold `--rows` rows with the generated
 * sum(transaction_id). Prints rows/s of each, ratios, stage times, CPU seconds (the process's and
 * the PostgreSQL server's) and peak RSS; best of `--runs` (default 1). The machine's load average
 * is printed too: other work on it slows every side. `--parts` adds the job's work measured in
 * cumulative passes over the file (read + hash, lines, decode, parse, cast, CSV) and candidate
 * changes (tolls-child.ts `parts`). `BENCH_CPU_PROF=<dir>` runs the children with `--cpu-prof`.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { LOADS_TABLE, TOLL_TABLE, TOLL_TABLE_DDL } from '../pipelines/tolls/definition.ts';
import type { TollsFileFormat } from '../pipelines/tolls/generate.ts';
import { PostgresServer } from '../src/backends/local/postgres-server.ts';
import type { ChildResult, PartsResult } from './tolls-child.ts';
import { type TollsBenchInput, tollsInputFile, writeTollsInput } from './tolls-data.ts';

const exec = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));

type Mode = 'workflow' | 'job-load' | 'baseline';
const MODES: readonly Mode[] = ['baseline', 'job-load', 'workflow'];
const BASELINE_TABLE = 'toll_table_baseline';
/** The issue's measurement of the naive per-row COPY on these machines. */
const ISSUE_BASELINE_ROWS_PER_S = 82_000;
const TARGET_ROWS_PER_S = 100_000;

/** A child's result with the PostgreSQL server's CPU seconds over the child's run. */
type Measured = ChildResult & { readonly serverCpuSeconds: number };

/**
 * CPU seconds used so far by the PostgreSQL server: the postmaster with its reaped children
 * (`cutime`/`cstime`: the sessions that ended) and its live children (checkpointer, WAL writer,
 * open sessions), from /proc (clock ticks of 1/100 s, Linux's USER_HZ).
 */
async function serverCpu(postmaster: number): Promise<number> {
  const fields = async (pid: number | string) => {
    try {
      const text = await readFile(`/proc/${pid}/stat`, 'utf8');
      return text.slice(text.lastIndexOf(')') + 2).split(' ');
    } catch {
      return undefined;
    }
  };
  const own = await fields(postmaster);
  if (!own) return 0;
  let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const f = await fields(pid);
    if (f && Number(f[1]) === postmaster) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / 100;
}

function flag(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  const value = i >= 0 ? Number(argv[i + 1]) : fallback;
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

export async function main(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const rows = flag(argv, '--rows', 1_000_000);
  const runs = flag(argv, '--runs', 1);
  const formatAt = argv.indexOf('--format');
  const format = (formatAt >= 0 ? argv[formatAt + 1] : 'python-dict') as TollsFileFormat;
  if (format !== 'python-dict' && format !== 'ndjson')
    throw new Error('--format must be python-dict or ndjson');
  const withParts = argv.includes('--parts');
  const cpuProf = process.env.BENCH_CPU_PROF;
  const loadBefore = os.loadavg()[0] ?? 0;
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const benchStarted = performance.now();

  const dataDir = path.join(here, '.data');
  await mkdir(dataDir, { recursive: true });
  const metaFile = `${tollsInputFile(dataDir, rows, format)}.meta.json`;
  let input: TollsBenchInput | undefined;
  if (existsSync(metaFile)) {
    input = JSON.parse(await readFile(metaFile, 'utf8')) as TollsBenchInput;
    if (!existsSync(input.file)) input = undefined;
  }
  if (!input) {
    log(`generating ${rows} transactions (${format}) -> ${path.relative(process.cwd(), dataDir)} ...`);
    input = await writeTollsInput(dataDir, rows, format);
    await writeFile(metaFile, JSON.stringify(input));
  }
  const data = input;
  log(`input: ${data.rows} transactions, ${format}, ${(data.bytes / 1e6).toFixed(0)} MB`);

  const home = await mkdtemp(path.join(os.tmpdir(), 'sluice-bench-tolls-'));
  /** Temporary directories of the children, removed at the end (also on a signal). */
  const temps = new Set<string>();
  const tempDir = async (name: string) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), `sluice-bench-tolls-${name}-`));
    temps.add(dir);
    return dir;
  };
  const removeTemp = async (dir: string) => {
    await rm(dir, { recursive: true, force: true });
    temps.delete(dir);
  };
  let server: PostgresServer | undefined;
  let admin: pg.Client | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () => {
    cleaning ??= (async () => {
      await admin?.end().catch(() => {});
      await PostgresServer.stop(home).catch((error: unknown) => log(`stopping PostgreSQL: ${error}`));
      for (const dir of [...temps, home]) await rm(dir, { recursive: true, force: true });
    })();
    return cleaning;
  };
  // `on`, not `once`: npm/tsx forward the terminal's Ctrl-C, so a second SIGINT arrives while the
  // server stops, and the default handler would end the process before it has.
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) return;
    signalled = true;
    log(`${signal}: stopping the bench's PostgreSQL server`);
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    log(`starting PostgreSQL in ${home} ...`);
    server = await PostgresServer.start(home);
    admin = new pg.Client({ connectionString: server.connectionString });
    await admin.connect();
    const version = String((await admin.query('SHOW server_version')).rows[0]?.server_version ?? '?');
    const db = admin;
    const url = server.connectionString;

    const serverPid = server.pid;
    /** Waits until no client other than `db` is connected (the child's sessions have ended). */
    const idle = async () => {
      for (let i = 0; i < 100; i++) {
        const busy = await db.query<{ n: string }>(
          "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
        );
        if (Number(busy.rows[0]?.n) === 0) return;
        await new Promise((r) => setTimeout(r, 50));
      }
    };

    const measure = async (mode: Mode): Promise<Measured> => {
      await db.query(`DROP TABLE IF EXISTS ${TOLL_TABLE}, ${LOADS_TABLE}, ${BASELINE_TABLE}`);
      if (mode === 'baseline') {
        await db.query(TOLL_TABLE_DDL.replace(`EXISTS ${TOLL_TABLE} (`, `EXISTS ${BASELINE_TABLE} (`));
      }
      await db.query('CHECKPOINT');
      const work = await tempDir(mode);
      try {
        const serverCpuBefore = await serverCpu(serverPid);
        const result = JSON.parse(await child(mode, work, url)) as ChildResult;
        await idle();
        const serverCpuSeconds = (await serverCpu(serverPid)) - serverCpuBefore;
        const table = mode === 'baseline' ? BASELINE_TABLE : TOLL_TABLE;
        const check = await db.query<{ n: string; ids: string | null }>(
          `SELECT count(*) AS n, sum(transaction_id) AS ids FROM ${table}`,
        );
        const checks: [string, number, number][] = [
          ['lines read', result.read, data.rows],
          ['rows staged', result.staged, data.rows],
          ['lines quarantined', result.quarantined, 0],
          ['rows copied', result.copied, data.rows],
          [`${table} count(*)`, Number(check.rows[0]?.n), data.rows],
          [`${table} sum(transaction_id)`, Number(check.rows[0]?.ids), data.sumTransactionId],
        ];
        for (const [what, got, want] of checks) {
          if (got !== want) throw new Error(`${mode}: ${what} ${got}, expected ${want}`);
        }
        return { ...result, serverCpuSeconds };
      } finally {
        await removeTemp(work);
      }
    };
    const child = async (mode: Mode | 'parts', work: string, warehouseUrl: string) => {
      const node = cpuProf ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(cpuProf)] : [];
      const { stdout } = await exec(
        process.execPath,
        [...node, '--import', 'tsx', path.join(here, 'tolls-child.ts'), mode, data.file, work],
        { maxBuffer: 1 << 20, env: { ...process.env, SLUICE_WAREHOUSE_URL: warehouseUrl } },
      );
      return stdout.trim().split('\n').at(-1) ?? '{}';
    };

    const best: Partial<Record<Mode, Measured>> = {};
    for (let i = 0; i < runs; i++) {
      for (const mode of MODES) {
        const m = await measure(mode);
        log(
          `  ${mode.padEnd(8)} run ${i + 1}: ${m.seconds.toFixed(2)} s (${f(data.rows / m.seconds)} rows/s), ` +
            `CPU ${m.cpuSeconds.toFixed(2)} s + server ${m.serverCpuSeconds.toFixed(2)} s, peak RSS ${mib(m.maxRssBytes)}`,
        );
        const prev = best[mode];
        best[mode] =
          !prev || m.seconds < prev.seconds
            ? { ...m, maxRssBytes: Math.max(m.maxRssBytes, prev?.maxRssBytes ?? 0) }
            : { ...prev, maxRssBytes: Math.max(m.maxRssBytes, prev.maxRssBytes) };
      }
    }
    let parts: PartsResult | undefined;
    if (withParts) {
      log('  parts: the job in cumulative passes over the file ...');
      const work = await tempDir('parts');
      try {
        parts = JSON.parse(await child('parts', work, '')) as PartsResult;
      } finally {
        await removeTemp(work);
      }
      if (parts.rows !== data.rows) throw new Error(`parts: ${parts.rows} rows, expected ${data.rows}`);
    }
    const loadAfter = os.loadavg()[0] ?? 0;

    const w = best.workflow!;
    const j = best['job-load']!;
    const b = best.baseline!;
    const rate = (m: ChildResult) => data.rows / m.seconds;
    const result = {
      rows: data.rows,
      format,
      input_bytes: data.bytes,
      runs,
      postgres_version: version,
      cpus: os.availableParallelism(),
      load_average_before: loadBefore,
      load_average_after: loadAfter,
      target_rows_per_s: TARGET_ROWS_PER_S,
      sluice_rows_per_s: rate(w),
      sluice_seconds: w.seconds,
      sluice_job_load_rows_per_s: rate(j),
      sluice_job_load_seconds: j.seconds,
      baseline_rows_per_s: rate(b),
      baseline_seconds: b.seconds,
      ratio: rate(w) / rate(b),
      ratio_job_load: rate(j) / rate(b),
      meets_target: rate(w) >= TARGET_ROWS_PER_S,
      sluice_land_seconds: w.landSeconds ?? null,
      sluice_cpu_seconds: w.cpuSeconds,
      sluice_job_load_cpu_seconds: j.cpuSeconds,
      baseline_cpu_seconds: b.cpuSeconds,
      sluice_server_cpu_seconds: w.serverCpuSeconds,
      sluice_job_load_server_cpu_seconds: j.serverCpuSeconds,
      baseline_server_cpu_seconds: b.serverCpuSeconds,
      sluice_peak_rss_bytes: w.maxRssBytes,
      sluice_job_load_peak_rss_bytes: j.maxRssBytes,
      baseline_peak_rss_bytes: b.maxRssBytes,
      sluice_stages: Object.fromEntries(w.phases),
      sluice_job_load_stages: Object.fromEntries(j.phases),
      baseline_phases: Object.fromEntries(b.phases),
      job_parts: parts
        ? Object.fromEntries(
            parts.passes.map((p) => [p.name, { seconds: p.seconds, cpu_seconds: p.cpuSeconds }]),
          )
        : null,
      verified_rows: data.rows,
      verified_sum_transaction_id: data.sumTransactionId,
      bench_seconds: 0,
    };
    const row = (name: string, m: Measured) =>
      `  ${name.padEnd(36)} ${f(rate(m)).padStart(9)} rows/s  (${m.seconds.toFixed(2)} s; CPU ${m.cpuSeconds.toFixed(2)} s ` +
      `+ PostgreSQL ${m.serverCpuSeconds.toFixed(2)} s)  peak RSS ${mib(m.maxRssBytes)}`;
    const table = (m: ChildResult) =>
      m.phases.map(
        ([name, sec]) => `    ${sec.toFixed(2).padStart(6)} s  ${pct(sec / m.seconds).padStart(6)}  ${name}`,
      );
    const target = (m: ChildResult) =>
      rate(m) >= TARGET_ROWS_PER_S ? 'met' : `NOT met (${pct(rate(m) / TARGET_ROWS_PER_S)} of it)`;
    const partLines = parts
      ? [
          `  job parts (--parts): cumulative passes over the file in one process, ${f(data.rows)} rows:`,
          ...parts.passes.map(
            (p) =>
              `    ${p.seconds.toFixed(2).padStart(6)} s  CPU ${p.cpuSeconds.toFixed(2).padStart(6)} s  ` +
              `${p.name.padEnd(46)} ${p.adds}`,
          ),
        ]
      : [];
    process.stdout.write(
      [
        `tolls: landed file -> committed toll_table rows, ${f(data.rows)} transactions ` +
          `(${format}, ${(data.bytes / 1e6).toFixed(0)} MB), local PostgreSQL ${version}, best of ${runs}; ` +
          `${result.cpus} CPUs, load average ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after`,
        row('sluice workflow (crawl + job + load)', w),
        row('sluice job + load', j),
        row('baseline: per-row COPY FROM STDIN', b),
        `  ratio sluice / baseline: workflow ${result.ratio.toFixed(2)}x, job + load ${result.ratio_job_load.toFixed(2)}x ` +
          `(the issue measured the baseline at ~${f(ISSUE_BASELINE_ROWS_PER_S)} rows/s)`,
        `  target >= ${f(TARGET_ROWS_PER_S)} rows/s: workflow ${target(w)}, job + load ${target(j)}`,
        `  verified: each table holds ${f(data.rows)} rows, sum(transaction_id) ${f(data.sumTransactionId)}; ` +
          `0 quarantined`,
        `  sluice workflow stages (landing the file took ${(w.landSeconds ?? 0).toFixed(2)} s more, not counted):`,
        ...table(w),
        `  sluice job + load stages (landing ${(j.landSeconds ?? 0).toFixed(2)} s, not counted):`,
        ...table(j),
        '  baseline phases:',
        ...table(b),
        ...partLines,
        '',
      ].join('\n'),
    );
    result.bench_seconds = (performance.now() - benchStarted) / 1000;
    log(`bench took ${result.bench_seconds.toFixed(0)} s`);
    if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}

const f = (n: number) => Math.round(n).toLocaleString('en-US');
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const pct = (n: number) => `${(100 * n).toFixed(1)}%`;
