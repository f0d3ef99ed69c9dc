/**
 * One measured run of `npm run bench -- tolls`, in its own process so peak RSS is its own.
 * argv: workflow|job-load|baseline|parts <input file> <work dir>; the warehouse URL comes in
 * `$SLUICE_WAREHOUSE_URL` (not argv: it holds the password). Prints one JSON line ({@link ChildResult},
 * or {@link PartsResult} for `parts`).
 *
 * - `workflow`: `executeTolls` (what `sluice run tolls --input FILE` runs): lands the file, then the
 *   tolls-load workflow crawl -> job -> load through the local workflow runner. Timed from the
 *   landing's object-created notification to `executeTolls` returning (committed).
 * - `job-load`: lands the file with `objectStore.put`, then `jobForEvent` + `loadResults` on its
 *   S3 event (no crawl, no workflow runner). Timed from landed to committed.
 * - `baseline`: reads the file, parses each line with the job's parser (`parseJsonOrPythonLine`),
 *   and writes one CSV row per `stream.write()` into `COPY toll_table_baseline ... FROM STDIN`
 *   (pg + pg-copy-streams, autocommit): the naive per-row COPY the issue measured.
 * - `parts` (`--parts`, no warehouse): the job's work in cumulative passes over the file, each
 *   adding one piece (read + hash, line splitting, decode, parse, cast, CSV + write), plus
 *   candidate changes, so each piece's cost is a difference (see {@link parts}).
 */
import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { stringify } from 'csv-stringify/sync';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { LANDING_PREFIX, TOLL_COLUMNS } from '../pipelines/tolls/definition.ts';
import { jobForEvent, loadResults, newRunId } from '../pipelines/tolls/functions.ts';
import { type TollRow, toRow } from '../pipelines/tolls/job.ts';
import { createLocalBackend } from '../src/backends/local/local-backend.ts';
import { executeTolls } from '../src/cli/commands/run-tolls.ts';
import { systemClock } from '../src/core/clock.ts';
import type { PipelineContext } from '../src/core/context.ts';
import type { S3EventRecord } from '../src/core/events.ts';
import { noProgress, silentLogger } from '../src/core/logger.ts';
import { RunLog } from '../src/core/run.ts';
import { eventObjectKey } from '../src/core/trigger.ts';
import { parseJsonOrPythonLine } from '../src/engines/pydict/python-literal.ts';

/** What a child prints. Times in seconds; `phases` are [name, seconds] in order. */
export interface ChildResult {
  /** Landed -> committed (baseline: first byte read -> COPY committed). */
  readonly seconds: number;
  /** Sluice: landing the file (read it + `objectStore.put`, fsync), not in `seconds`. */
  readonly landSeconds?: number;
  /** Lines read, rows staged, lines quarantined (sluice's job counts; baseline: lines parsed). */
  readonly read: number;
  readonly staged: number;
  readonly quarantined: number;
  /** Rows the COPY reported. */
  readonly copied: number;
  readonly maxRssBytes: number;
  readonly phases: [string, number][];
  /** CPU seconds (user + system) of this process over `seconds`. */
  readonly cpuSeconds: number;
}

/** What a `parts` child prints: per pass, its wall and CPU seconds and what it adds to the pass before. */
export interface PartsResult {
  readonly rows: number;
  readonly passes: { name: string; seconds: number; cpuSeconds: number; adds: string }[];
}

const [mode, file] = process.argv.slice(2) as [string, string, string];
const work = process.argv[4] as string;
const url = process.env.SLUICE_WAREHOUSE_URL ?? '';
if (!url && mode !== 'parts') throw new Error('$SLUICE_WAREHOUSE_URL is not set');
const s = (ms: number) => ms / 1000;
const landingKey = `${LANDING_PREFIX}${path.basename(file)}`;

function context(): PipelineContext {
  const backend = createLocalBackend(work, { warehouseUrl: url });
  return {
    backend,
    clock: systemClock,
    logger: silentLogger,
    progress: noProgress,
    workDir: path.join(work, 'tmp'),
    engine: { threads: 2, memoryLimit: '512MB' },
  };
}

/** Peak RSS so far (the untimed parts measured afterwards must not count). */
const rss = () => process.resourceUsage().maxRSS * 1024;
/** CPU seconds since `from`. */
const cpu = (from: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(from);
  return (used.user + used.system) / 1e6;
};

async function workflow(): Promise<ChildResult> {
  const ctx = context();
  let landedAt = 0;
  let cpuAtLanding = process.cpuUsage();
  const unsubscribe = ctx.backend.objectStore.onObjectCreated((record) => {
    if (eventObjectKey(record) !== landingKey) return;
    landedAt = Date.now();
    cpuAtLanding = process.cpuUsage();
  });
  const t0 = Date.now();
  const { execution } = await executeTolls(ctx, { inputs: [file] });
  const committedAt = Date.now();
  const cpuSeconds = cpu(cpuAtLanding);
  const maxRssBytes = rss();
  unsubscribe();
  if (execution.status !== 'SUCCEEDED') {
    throw new Error(`tolls-load ${execution.status}: ${execution.error ?? ''} ${execution.cause ?? ''}`);
  }
  const runs = await (await RunLog.open(ctx.backend.kv, systemClock)).list({ pipeline: 'tolls' });
  await ctx.backend.close();
  const step = (name: string) => {
    const r = runs.find((x) => x.step === name);
    if (!r?.endedAt) throw new Error(`run log has no finished ${name} step`);
    return { start: Date.parse(r.startedAt), end: Date.parse(r.endedAt), counts: r.counts };
  };
  const job = step('job');
  const load = step('load');
  const started = Date.parse(execution.startedAt);
  const output = execution.output as { load?: { loaded?: { rows: number }[] } };
  return {
    seconds: s(committedAt - landedAt),
    landSeconds: s(landedAt - t0),
    read: job.counts?.read ?? -1,
    staged: job.counts?.loaded ?? -1,
    quarantined: job.counts?.quarantined ?? -1,
    copied: output.load?.loaded?.reduce((n, l) => n + l.rows, 0) ?? -1,
    maxRssBytes,
    cpuSeconds,
    phases: [
      ['open workflow runner, start execution', s(started - landedAt)],
      ['Crawl (landing.tolls: classify, infer 10k lines, catalog)', s(job.start - started)],
      ['Job (read, sha256, parse + cast, CSV, put staging)', s(job.end - job.start)],
      ['Load: open pool, CREATE IF NOT EXISTS', s(load.start - job.end)],
      ['Load: LOCK, COPY, record, COMMIT', s(load.end - load.start)],
      ['execution end, runner shutdown', s(committedAt - load.end)],
    ],
  };
}

async function jobLoad(): Promise<ChildResult> {
  const ctx = context();
  const records: S3EventRecord[] = [];
  const unsubscribe = ctx.backend.objectStore.onObjectCreated((record) => {
    if (eventObjectKey(record) === landingKey) records.push(record);
  });
  const t0 = performance.now();
  await ctx.backend.objectStore.put({ layer: 'landing', key: landingKey }, await readFile(file));
  unsubscribe();
  const landed = performance.now();
  const cpuAtLanding = process.cpuUsage();
  const runId = newRunId(ctx.clock.now());
  const [result] = await jobForEvent(ctx, { Records: records }, runId);
  if (!result) throw new Error('the job staged nothing');
  const jobDone = performance.now();
  let copiedAt = 0;
  const [loaded] = await loadResults(ctx, [result], runId, {
    onPhase: () => {
      copiedAt = performance.now();
    },
  });
  const committed = performance.now();
  const cpuSeconds = cpu(cpuAtLanding);
  const maxRssBytes = rss();
  const runs = await (await RunLog.open(ctx.backend.kv, systemClock)).list({ pipeline: 'tolls' });
  const loadStep = runs.find((x) => x.step === 'load');
  if (!loadStep?.endedAt) throw new Error('run log has no finished load step');
  // Run-log times are wall-clock ms; place them on the performance.now() scale.
  const offset = Date.now() - performance.now();
  const loadStart = Date.parse(loadStep.startedAt) - offset;
  const loadEnd = Date.parse(loadStep.endedAt) - offset;
  await ctx.backend.close();
  return {
    seconds: s(committed - landed),
    landSeconds: s(landed - t0),
    read: result.counts.read,
    staged: result.counts.loaded,
    quarantined: result.counts.quarantined,
    copied: loaded?.rows ?? -1,
    maxRssBytes,
    cpuSeconds,
    phases: [
      ['job (read, sha256, parse + cast, CSV, put staging)', s(jobDone - landed)],
      ['load: open pool, CREATE IF NOT EXISTS, run log', s(loadStart - jobDone)],
      ['load: LOCK, SELECT, COPY staging CSV', s(copiedAt - loadStart)],
      ['load: INSERT sluice_loads, COMMIT, run log', s(loadEnd - copiedAt)],
      ['load: close pool', s(committed - loadEnd)],
    ],
  };
}

/** A pass of {@link parts}: what it does on top of reading the file and hashing it. */
interface Pass {
  readonly name: string;
  /** Lines: one async-generator step per line (as `runJob`), or per chunk with a plain loop over its lines. */
  readonly lines?: 'per-line' | 'per-chunk';
  /** Blank-line check and UTF-8 decode of each line. */
  readonly decode?: boolean;
  readonly work?: 'parse' | 'toRow';
  /** The staging CSV, 10,000 rows at a time, written to a file. */
  readonly csv?: 'csv-stringify' | 'by hand';
  /** The pass this one is compared with (index), and what the difference is. */
  readonly base?: number;
  readonly adds: string;
}

const PASSES: readonly Pass[] = [
  { name: 'read (64 KiB chunks) + sha256', adds: 'read + sha256' },
  {
    name: '+ lines (async generator, one step per line)',
    lines: 'per-line',
    base: 0,
    adds: 'splitting lines',
  },
  {
    name: '+ blank check + UTF-8 decode',
    lines: 'per-line',
    decode: true,
    base: 1,
    adds: 'blank check (bytes.every) + decode',
  },
  {
    name: '+ parseJsonOrPythonLine',
    lines: 'per-line',
    decode: true,
    work: 'parse',
    base: 2,
    adds: 'parsing (Python dict / JSON)',
  },
  {
    name: '+ cast + checks (toRow), rows batched',
    lines: 'per-line',
    decode: true,
    work: 'toRow',
    base: 3,
    adds: 'casts, checks, row arrays',
  },
  {
    name: '+ CSV (csv-stringify/sync) + write: ~ runJob',
    lines: 'per-line',
    decode: true,
    work: 'toRow',
    csv: 'csv-stringify',
    base: 4,
    adds: 'csv-stringify + file write',
  },
  {
    name: 'candidate: CSV by hand instead',
    lines: 'per-line',
    decode: true,
    work: 'toRow',
    csv: 'by hand',
    base: 5,
    adds: 'vs ~runJob',
  },
  {
    name: 'candidate: CSV by hand + lines per chunk',
    lines: 'per-chunk',
    decode: true,
    work: 'toRow',
    csv: 'by hand',
    base: 5,
    adds: 'vs ~runJob',
  },
];

/**
 * The job's work on the input file in cumulative passes (see {@link PASSES}): the same pieces as
 * `runJob` (64 KiB read stream + SHA-256, lines split by an async generator, blank check, UTF-8
 * decode, `toRow`, csv-stringify 10,000 rows at a time, written to a file), then candidate
 * changes. Each pass is a full run over the file; a piece's cost is the difference to its base.
 */
async function parts(): Promise<PartsResult> {
  const passes: PartsResult['passes'] = [];
  let rows = 0;
  for (const [i, pass] of PASSES.entries()) {
    const measured = await runPass(pass, path.join(work, `pass-${i}.csv`));
    rows = measured.rows;
    const base = pass.base === undefined ? undefined : passes[pass.base];
    passes.push({
      name: pass.name,
      seconds: measured.seconds,
      cpuSeconds: measured.cpuSeconds,
      adds: base
        ? `${pass.adds} ${signed(measured.seconds - base.seconds)} s wall, ${signed(measured.cpuSeconds - base.cpuSeconds)} s CPU`
        : pass.adds,
    });
    await rm(path.join(work, `pass-${i}.csv`), { force: true });
  }
  return { rows, passes };
}

const signed = (n: number) => `${n >= 0 ? '+' : ''}${n.toFixed(2)}`;

async function runPass(
  pass: Pass,
  out: string,
): Promise<{ seconds: number; cpuSeconds: number; rows: number }> {
  const started = performance.now();
  const cpuAtStart = process.cpuUsage();
  const hash = createHash('sha256');
  const writer = pass.csv ? createWriteStream(out) : undefined;
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let batch: TollRow[] = [];
  let rows = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    if (writer) {
      const text =
        pass.csv === 'by hand'
          ? csvByHand(batch)
          : stringify(batch, {
              quoted_string: true,
              record_delimiter: 'unix',
              cast: { bigint: (v) => v.toString() },
            });
      if (!writer.write(text)) await once(writer, 'drain');
    }
    batch = [];
  };
  const onLine = (line: number, bytes: Buffer) => {
    if (!pass.decode) {
      rows++;
      return;
    }
    if (bytes.length === 0 || bytes.every((b) => b === 0x20 || b === 0x09)) return;
    const text = decoder.decode(bytes);
    rows++;
    if (pass.work === 'parse') parseJsonOrPythonLine(text);
    else if (pass.work === 'toRow') {
      const row = toRow(line === 1 ? text.replace(/^\uFEFF/, '') : text);
      if (typeof row === 'string') throw new Error(`line ${line}: ${row}`);
      batch.push(row);
    }
  };
  const chunks = hashed(createReadStream(file), hash);
  if (pass.lines === 'per-line') {
    for await (const { line, bytes } of linesOf(chunks)) {
      onLine(line, bytes);
      if (batch.length >= 10_000) await flush();
    }
  } else if (pass.lines === 'per-chunk') {
    for await (const lines of lineBatchesOf(chunks)) {
      for (const { line, bytes } of lines) onLine(line, bytes);
      if (batch.length >= 10_000) await flush();
    }
  } else {
    for await (const _ of chunks);
  }
  await flush();
  if (writer) {
    writer.end();
    await once(writer, 'finish');
  }
  hash.digest('hex');
  return { seconds: s(performance.now() - started), cpuSeconds: cpu(cpuAtStart), rows };
}

async function* hashed(source: AsyncIterable<Buffer>, hash: Hash): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    hash.update(chunk);
    yield chunk;
  }
}

/** Lines of the chunks, one generator step per line (as `runJob`'s `splitLines`). */
async function* linesOf(source: AsyncIterable<Buffer>): AsyncGenerator<{ line: number; bytes: Buffer }> {
  for await (const lines of lineBatchesOf(source)) yield* lines;
}

/** Lines of the chunks, one generator step per chunk. */
async function* lineBatchesOf(
  source: AsyncIterable<Buffer>,
): AsyncGenerator<{ line: number; bytes: Buffer }[]> {
  let carry: Buffer = Buffer.alloc(0);
  let line = 0;
  for await (const chunk of source) {
    const data = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
    const lines: { line: number; bytes: Buffer }[] = [];
    let start = 0;
    for (let nl = data.indexOf(0x0a, start); nl !== -1; nl = data.indexOf(0x0a, start)) {
      line++;
      lines.push({ line, bytes: data.subarray(start, nl > start && data[nl - 1] === 0x0d ? nl - 1 : nl) });
      start = nl + 1;
    }
    carry = data.subarray(start);
    yield lines;
  }
  if (carry.length > 0) yield [{ line: line + 1, bytes: carry }];
}

/** The staging CSV without csv-stringify: strings quoted (quotes doubled), NULL empty, `\n` rows. */
function csvByHand(rows: readonly TollRow[]): string {
  const q = (v: string) => `"${v.includes('"') ? v.replaceAll('"', '""') : v}"`;
  const out: string[] = [];
  for (const r of rows) {
    out.push(
      `${r[0] === null ? '' : r[0]},${q(r[1])},${q(r[2])},${q(r[3])},${q(r[4])},${r[5] === null ? '' : r[5]}\n`,
    );
  }
  return out.join('');
}

/** One CSV line of a parsed record (the baseline's only conversion): strings quoted, missing empty. */
function csvLine(record: Record<string, unknown>): string {
  let line = '';
  for (let i = 0; i < TOLL_COLUMNS.length; i++) {
    const v = record[TOLL_COLUMNS[i] as string];
    if (i > 0) line += ',';
    if (v === undefined || v === null) continue;
    line += typeof v === 'string' ? `"${v.includes('"') ? v.replaceAll('"', '""') : v}"` : String(v);
  }
  return `${line}\n`;
}

async function baseline(): Promise<ChildResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let read = 0;
  let loop = 0;
  let drain = 0;
  const started = performance.now();
  const cpuAtStart = process.cpuUsage();
  const stream = client.query(
    copyFrom(`COPY toll_table_baseline (${TOLL_COLUMNS.join(', ')}) FROM STDIN WITH (FORMAT csv)`),
  );
  const done = finished(stream);
  const write = async (line: string) => {
    read++;
    const record = parseJsonOrPythonLine(line).value as Record<string, unknown>;
    if (!stream.write(csvLine(record))) {
      const t = performance.now();
      await once(stream, 'drain');
      drain += performance.now() - t;
    }
  };
  let carry = '';
  let t = performance.now();
  for await (const chunk of createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 })) {
    const text = carry + (chunk as string);
    let start = 0;
    let nl = text.indexOf('\n');
    while (nl !== -1) {
      if (nl > start) await write(text.slice(start, nl));
      start = nl + 1;
      nl = text.indexOf('\n', start);
    }
    carry = text.slice(start);
  }
  if (carry.trim()) await write(carry);
  loop = performance.now() - t;
  t = performance.now();
  stream.end();
  await done;
  const end = performance.now() - t;
  const seconds = s(performance.now() - started);
  const cpuSeconds = cpu(cpuAtStart);
  const maxRssBytes = rss();
  await client.end();
  return {
    seconds,
    read,
    staged: read,
    quarantined: 0,
    copied: stream.rowCount,
    maxRssBytes,
    cpuSeconds,
    phases: [
      ['read + parse + one stream.write() per row', s(loop - drain)],
      ['waiting for drain (socket full)', s(drain)],
      ['COPY end: last rows, CopyDone, commit', s(end)],
    ],
  };
}

const result =
  mode === 'workflow'
    ? await workflow()
    : mode === 'job-load'
      ? await jobLoad()
      : mode === 'parts'
        ? await parts()
        : await baseline();
process.stdout.write(`${JSON.stringify(result)}\n`);
