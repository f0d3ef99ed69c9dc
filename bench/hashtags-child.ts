/**
 * One measured run of `npm run bench -- hashtags`, in its own process so peak RSS is its own.
 * argv: sluice|baseline <v1 file> <v2 file> <work dir>; prints one JSON line (see {@link ChildResult}).
 */
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { cleanText, explodeRecord, type StagingRow, sentiment } from '../pipelines/hashtags/enrich.ts';
import { runHashtags } from '../pipelines/hashtags/run.ts';
import { appendStagingRow } from '../pipelines/hashtags/staging.ts';
import { createLocalBackend } from '../src/backends/local/local-backend.ts';
import { systemClock } from '../src/core/clock.ts';
import type { PipelineContext } from '../src/core/context.ts';
import { type Progress, silentLogger } from '../src/core/logger.ts';
import { RunLog } from '../src/core/run.ts';
import { DuckDb, quoteString } from '../src/engines/duckdb/duckdb.ts';
import { filterTweet } from '../src/sources/twitter/filter.ts';
import type { TweetInput, TweetRecord, V2Includes, V2Tweet } from '../src/sources/twitter/types.ts';

/** What a child prints. Times in seconds; `phases` are [name, seconds] in order. */
export interface ChildResult {
  readonly seconds: number;
  readonly read: number;
  readonly kept: number;
  readonly stagedRecords: number;
  readonly rows: number;
  readonly maxRssBytes: number;
  readonly phases: [string, number][];
  /** Sluice: analytical rows inserted and landing objects written. */
  readonly loaded?: number;
  readonly landingObjects?: number;
  /** Baseline, measured after the timed run: records/s of each part of `explodeRecord` alone. */
  readonly parts?: { readonly records: number; readonly cleanPerS: number; readonly vaderPerS: number };
}

const [mode, v1File, v2File, work] = process.argv.slice(2) as [string, string, string, string];
const files = [v1File, v2File];
const threads = Number(process.env.BENCH_THREADS ?? 2);
const memoryLimit = process.env.SLUICE_DUCKDB_MEMORY_LIMIT ?? '512MB';

/** Progress that records when each task started and stopped (ms since the epoch). */
function recordingProgress(): Progress & { tasks: { label: string; start: number; stop?: number }[] } {
  const tasks: { label: string; start: number; stop?: number }[] = [];
  return {
    tasks,
    start(label) {
      const task: { label: string; start: number; stop?: number } = { label, start: Date.now() };
      tasks.push(task);
      return {
        update: () => {},
        stop: () => {
          task.stop = Date.now();
        },
      };
    },
  };
}

async function sluice(): Promise<ChildResult> {
  const backend = createLocalBackend(work);
  const progress = recordingProgress();
  const ctx: PipelineContext = {
    backend,
    clock: systemClock,
    logger: silentLogger,
    progress,
    workDir: path.join(work, 'tmp'),
    engine: { threads, memoryLimit },
  };
  const stageAt: Record<string, number> = {};
  const t0 = Date.now();
  const started = performance.now();
  const summary = await runHashtags(ctx, {
    source: { kind: 'replay', files },
    onStage: (s) => {
      stageAt[s.stage] = Date.now();
    },
  });
  const seconds = (performance.now() - started) / 1000;
  const runs = await (await RunLog.open(backend.kv, systemClock)).list({ pipeline: 'hashtags' });
  await backend.close();

  const step = (name: string) => {
    const r = runs.find((x) => x.runId === summary.runId && x.step === name);
    if (!r?.endedAt) throw new Error(`run log has no finished ${name} step`);
    return { start: Date.parse(r.startedAt), end: Date.parse(r.endedAt) };
  };
  const s = (ms: number) => ms / 1000;
  const produce = step('produce');
  const land = step('land');
  const staging = step('staging');
  const analytical = step('analytical');
  const producing = progress.tasks.filter((t) => t.label.startsWith('produce '));
  const stagingLoop = progress.tasks.find((t) => t.label === 'staging');
  const phases: [string, number][] = [];
  phases.push(['start (stream, run log)', s(produce.start - t0)]);
  // The producer: per file, its progress task is the read + filter + put loop; the rest is the SHA-256 of the file.
  let previous = produce.start;
  for (const task of producing) {
    const name = path.basename(task.label.slice('produce '.length));
    phases.push([`produce: sha256 + open ${name}`, s(task.start - previous)]);
    phases.push([`produce: read + filter + put ${name}`, s((task.stop ?? task.start) - task.start)]);
    previous = task.stop ?? task.start;
  }
  phases.push(['produce: finish', s(produce.end - previous)]);
  phases.push(['land: drain after producer done', s(land.end - produce.end)]);
  phases.push(['delete stream + old staging', s(staging.start - land.end)]);
  if (stagingLoop?.stop) {
    phases.push(['staging: open DuckDB, select objects', s(stagingLoop.start - staging.start)]);
    phases.push([
      'staging: CSV parse + explode (clean, VADER, sha1) + append',
      s(stagingLoop.stop - stagingLoop.start),
    ]);
    phases.push(['staging: write Parquet + catalog', s(staging.end - stagingLoop.stop)]);
  } else {
    phases.push(['staging', s(staging.end - staging.start)]);
  }
  phases.push(['log staging', s(analytical.start - staging.end)]);
  phases.push(['analytical (merge on hash_id)', s(analytical.end - analytical.start)]);
  phases.push([
    'log analytical + dashboard refresh',
    s((stageAt.analytical ?? analytical.end) - analytical.end),
  ]);
  return {
    seconds,
    read: summary.produce.counts.read,
    kept: summary.produce.counts.loaded,
    stagedRecords: summary.staging.counts.loaded,
    rows: summary.staging.rows,
    loaded: summary.analytical?.counts.loaded ?? 0,
    landingObjects: summary.land.landed.length,
    maxRssBytes: 0,
    phases,
  };
}

/**
 * The baseline: the least work without durability, one process, one pass: read each line,
 * `JSON.parse`, the same filter (`filterTweet`), the same enrichment (`explodeRecord`: clean text,
 * VADER, hashtags, sha1) with a fake sequence number and arrival time, rows kept in memory, then
 * one Parquet file written by DuckDB from an appender table.
 */
async function baseline(): Promise<ChildResult> {
  const timers = { read: 0, parse: 0, filter: 0, explode: 0, parquet: 0 };
  let read = 0;
  let kept = 0;
  let stagedRecords = 0;
  let seq = 0;
  const rows: StagingRow[] = [];
  const sample: TweetRecord[] = [];
  const started = performance.now();
  const handle = (input: TweetInput) => {
    read++;
    let t = performance.now();
    const outcome = filterTweet(input);
    const t2 = performance.now();
    timers.filter += t2 - t;
    if (outcome.kind !== 'keep') return;
    kept++;
    seq++;
    // Every 4th kept record (up to 5,000), so the sample has the mix of both files' texts.
    if (kept % 4 === 0 && sample.length < 5000) sample.push(outcome.record);
    t = t2;
    const exploded = explodeRecord({
      ...outcome.record,
      record_id: `1${String(seq).padStart(20, '0')}`,
      timestamp: new Date(),
    });
    if (exploded.length > 0) stagedRecords++;
    for (const row of exploded) rows.push(row);
    timers.explode += performance.now() - t;
  };
  for (const file of files) {
    let lineNo = 0;
    let carry: Buffer | undefined;
    const onLine = (bytes: Buffer) => {
      lineNo++;
      let t = performance.now();
      const text = bytes.toString('utf8');
      const t2 = performance.now();
      const value = JSON.parse(text) as Record<string, unknown>;
      const t3 = performance.now();
      timers.read += t2 - t;
      timers.parse += t3 - t2;
      t = t3;
      const location = { source: file, line: lineNo };
      if (Array.isArray(value.data)) {
        const includes = (value.includes ?? {}) as V2Includes;
        (value.data as V2Tweet[]).forEach((tweet, index) => {
          handle({ kind: 'v2', tweet, includes, location: { ...location, index, member: 'data' } });
        });
      } else {
        handle({ kind: 'v1', status: value, location });
      }
    };
    let t = performance.now();
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      timers.read += performance.now() - t;
      let start = 0;
      let nl = chunk.indexOf(10, start);
      while (nl !== -1) {
        const piece = chunk.subarray(start, nl);
        if (carry) {
          onLine(Buffer.concat([carry, piece]));
          carry = undefined;
        } else if (piece.length > 0) onLine(piece);
        start = nl + 1;
        nl = chunk.indexOf(10, start);
      }
      if (start < chunk.length) {
        const rest = chunk.subarray(start);
        carry = carry ? Buffer.concat([carry, rest]) : Buffer.from(rest);
      }
      t = performance.now();
    }
    if (carry && carry.length > 0) onLine(carry);
  }

  const t = performance.now();
  const db = await DuckDb.open({ threads, memoryLimit });
  await db.run(
    `CREATE TABLE staging (hash_id VARCHAR, record_id VARCHAR, time_stamp VARCHAR, created VARCHAR,
       tweet_id VARCHAR, user_name VARCHAR, rt_count BIGINT, hashtag VARCHAR, polarity DOUBLE,
       subjectivity DOUBLE, text_clean VARCHAR, year INTEGER, month INTEGER, day INTEGER)`,
  );
  const appender = await db.connection.createAppender('staging');
  for (const row of rows) {
    appendStagingRow(appender, row);
    appender.endRow();
  }
  appender.closeSync();
  const out = path.join(work, 'staging.parquet');
  const copied = await db.all(
    `COPY staging TO ${quoteString(out)} (FORMAT parquet, COMPRESSION snappy, RETURN_STATS)`,
  );
  db.close();
  timers.parquet = performance.now() - t;
  const seconds = (performance.now() - started) / 1000;
  const written = copied.rows.reduce((n, r) => n + Number(r.count), 0);
  if (written !== rows.length)
    throw new Error(`baseline wrote ${written} Parquet rows, expected ${rows.length}`);
  // Untimed: the parts of explodeRecord on its own, so the report can say where its time goes.
  let t1 = performance.now();
  const cleaned = sample.map((r) => cleanText(r.text));
  const cleanS = (performance.now() - t1) / 1000;
  t1 = performance.now();
  for (const text of cleaned) sentiment(text);
  const vaderS = (performance.now() - t1) / 1000;
  const loop = seconds - timers.parquet / 1000;
  const accounted = (timers.read + timers.parse + timers.filter + timers.explode) / 1000;
  return {
    seconds,
    read,
    kept,
    stagedRecords,
    rows: rows.length,
    maxRssBytes: 0,
    parts: { records: sample.length, cleanPerS: sample.length / cleanS, vaderPerS: sample.length / vaderS },
    phases: [
      ['read + decode lines', timers.read / 1000],
      ['JSON.parse', timers.parse / 1000],
      ['filter (filterTweet)', timers.filter / 1000],
      ['explode (clean, VADER, hashtags, sha1)', timers.explode / 1000],
      ['loop overhead', Math.max(0, loop - accounted)],
      ['DuckDB appender + Parquet', timers.parquet / 1000],
    ],
  };
}

const result = mode === 'sluice' ? await sluice() : await baseline();
process.stdout.write(
  `${JSON.stringify({ ...result, maxRssBytes: process.resourceUsage().maxRSS * 1024 })}\n`,
);
