import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import { stringify } from 'csv-stringify/sync';
import type { PipelineContext } from '../../src/core/context.ts';
import type { ObjectRef } from '../../src/core/layer.ts';
import type { CheckDefinition, CheckResult } from '../../src/core/quality.ts';
import type { RecordCounts } from '../../src/core/run.ts';
import { reconcile } from '../../src/core/run.ts';
import { DuckDb, quoteIdent, quoteString } from '../../src/engines/duckdb/duckdb.ts';
import { stringifyJson } from '../../src/engines/duckdb/values.ts';
import { isGzipFile } from '../../src/engines/ndjson/annotate-lines.ts';
import { parseJsonOrPythonLine } from '../../src/engines/pydict/python-literal.ts';
import { evaluateChecks, REASON_COLUMN, tableChecks } from '../../src/engines/quality/checks.ts';
import { settleChecks } from '../../src/engines/quality/publish.ts';
import {
  LANDING_PREFIX,
  quarantineKey,
  stagingKey,
  TOLL_COLUMNS,
  TOLL_TABLE,
  tollsPipeline,
} from './definition.ts';

/** Longest accepted `varchar` value, in UTF-8 bytes (Redshift's `character varying` default, 256). */
export const MAX_VARCHAR_BYTES = 256;

/** The NOT NULL `varchar` columns of `toll_table`. */
const REQUIRED_STRINGS = ['transaction_date', 'toll_booth', 'vehicle_make', 'vehicle_category'] as const;

/** A typed row of `toll_table`, in column order. */
export type TollRow = [
  transactionId: bigint | null,
  transactionDate: string,
  tollBooth: string,
  vehicleMake: string,
  vehicleCategory: string,
  transactionAmount: number | null,
];

/** What the job did with one landed file. */
export interface JobFileResult {
  readonly sourceKey: string;
  /** SHA-256 of the file's bytes: the load records it, so the same content loads once. */
  readonly sha256: string;
  /** `read` non-blank lines = `loaded` rows staged + `quarantined` (by the job or a data-quality check). */
  readonly counts: RecordCounts;
  /** The data-quality checks of `toll_table` evaluated on the staged rows (also in `sluice.quality_results`). */
  readonly checks: readonly CheckResult[];
  /** The staging CSV with the accepted rows (absent when no line was accepted). */
  readonly staging?: ObjectRef;
  readonly quarantine?: ObjectRef;
}

/**
 * The tolls job (REFERENCE.md section 2, the original's Glue job): reads a landed file line by
 * line, parses each line as JSON or as a Python dict repr (what the original generator writes),
 * casts `transaction_id` to bigint and `transaction_amount` to double (a numeric string is cast; a
 * missing one is NULL, as the table allows), enforces the NOT NULL `varchar` columns (missing or
 * null: rejected; a number is cast to text; longer than 256 UTF-8 bytes: rejected), and writes:
 * - the accepted rows as CSV (no header, strings quoted, NULL unquoted-empty) to
 *   `staging/tolls/toll_table/<file>-<sha>.csv`, the location the load COPYs from;
 * - each rejected line to `quarantine/tolls/job/date=.../<file>-<sha>.ndjson` with its line
 *   number and the reason.
 * Both keys derive from the file's content hash, so a retried job rewrites the same objects.
 * Unknown fields are ignored (the original's ApplyMapping drops unmapped columns).
 *
 * Before publishing, the staging CSV is read back with DuckDB exactly as typed in `toll_table` and
 * the table's data-quality checks (the definition's, or `checks`) are evaluated on it and recorded
 * in `sluice.quality_results`: rows failing a `quarantine` check leave the CSV for the quarantine
 * (with their line and the check's name); a failed `block` check publishes nothing (no staging
 * CSV, no quarantine object), so nothing reaches the warehouse, and throws
 * {@link QualityBlockedError}. The load stays idempotent: it COPYs whatever the job published, once
 * per landed content.
 *
 * @throws {NotFoundError} when the landed object does not exist.
 * @throws {QualityBlockedError} when a `block` check failed.
 */
export async function runJob(
  ctx: PipelineContext,
  input: {
    landing: ObjectRef;
    runId: string;
    /** Checks of `toll_table` to evaluate instead of the definition's (tests, experiments). */
    checks?: readonly CheckDefinition[];
  },
): Promise<JobFileResult> {
  const { objectStore } = ctx.backend;
  const local = await objectStore.localPath(input.landing);
  const stagingScratch = await objectStore.scratchDir('staging');
  const quarantineScratch = await objectStore.scratchDir('quarantine');
  try {
    const gzip = await isGzipFile(local.path);
    const hash = createHash('sha256');
    if (gzip) for await (const chunk of createReadStream(local.path)) hash.update(chunk as Buffer);
    const stagingFile = new BufferedFile(path.join(stagingScratch.path, 'rows.csv'));
    const quarantineFile = new BufferedFile(path.join(quarantineScratch.path, 'rejected.ndjson'));
    // The landed line of each staged row, in row order (for the quarantine of a data-quality check).
    const linesFile = new BufferedFile(path.join(stagingScratch.path, 'lines.txt'));
    let batch: TollRow[] = [];
    let batchLines: number[] = [];
    const flushRows = async () => {
      if (batch.length === 0) return;
      await stagingFile.write(
        stringify(batch, {
          quoted_string: true,
          record_delimiter: 'unix',
          cast: { bigint: (v) => v.toString() },
        }),
      );
      await linesFile.write(`${batchLines.join('\n')}\n`);
      batch = [];
      batchLines = [];
    };
    let read = 0;
    let loaded = 0;
    let rejected = 0;
    const decoder = new TextDecoder('utf-8', { fatal: true });
    const source = gzip
      ? createReadStream(local.path).pipe(createGunzip())
      : hashing(createReadStream(local.path), hash);
    for await (const { line, bytes } of splitLines(source)) {
      if (bytes.length === 0 || bytes.every((b) => b === 0x20 || b === 0x09)) continue;
      read++;
      let text: string;
      try {
        text = decoder.decode(bytes);
      } catch {
        rejected++;
        await quarantineFile.write(
          `${quarantined(input, line, 'not valid UTF-8', bytes.toString('latin1'))}\n`,
        );
        continue;
      }
      const row = toRow(line === 1 ? text.replace(/^\uFEFF/, '') : text);
      if (typeof row === 'string') {
        rejected++;
        await quarantineFile.write(`${quarantined(input, line, row, text)}\n`);
      } else {
        batch.push(row);
        batchLines.push(line);
        loaded++;
        if (batch.length >= 10_000) await flushRows();
      }
    }
    await flushRows();
    await stagingFile.close();
    await linesFile.close();

    // Data-quality checks on the staged rows, before anything is published.
    let stagingPath = stagingFile.path;
    let checkResults: CheckResult[] = [];
    const checks = input.checks ?? tableChecks(tollsPipeline, TOLL_TABLE);
    if (loaded > 0 && checks.length > 0) {
      const checked = await checkStagedRows(ctx, {
        csv: stagingFile.path,
        lines: linesFile.path,
        out: path.join(stagingScratch.path, 'rows-checked.csv'),
        rows: loaded,
        checks,
        runId: input.runId,
        unit: input.landing.key.startsWith(LANDING_PREFIX)
          ? input.landing.key.slice(LANDING_PREFIX.length)
          : input.landing.key,
      });
      checkResults = checked.results;
      for (const entry of checked.quarantined) {
        await quarantineFile.write(`${quarantined(input, entry.line, entry.reason, entry.raw)}\n`);
      }
      loaded -= checked.quarantined.length;
      rejected += checked.quarantined.length;
      if (checked.path) stagingPath = checked.path;
    }
    await quarantineFile.close();
    const sha256 = hash.digest('hex');
    const at = ctx.clock.now();
    let staging: ObjectRef | undefined;
    if (loaded > 0) {
      staging = { layer: 'staging', key: stagingKey(input.landing.key, sha256) };
      await objectStore.putFile(staging, stagingPath, { move: true });
    }
    let quarantine: ObjectRef | undefined;
    if (rejected > 0) {
      quarantine = { layer: 'quarantine', key: quarantineKey(input.landing.key, sha256, at) };
      await objectStore.putFile(quarantine, quarantineFile.path, { move: true });
    }
    const counts: RecordCounts = { read, loaded, duplicates: 0, quarantined: rejected };
    reconcile(counts);
    return {
      sourceKey: input.landing.key,
      sha256,
      counts,
      checks: checkResults,
      ...(staging ? { staging } : {}),
      ...(quarantine ? { quarantine } : {}),
    };
  } finally {
    await local.release();
    await stagingScratch.release();
    await quarantineScratch.release();
  }
}

/** DuckDB types of the staging CSV's columns, as `toll_table` types them (`real` read as DOUBLE). */
const STAGING_TYPES: Record<(typeof TOLL_COLUMNS)[number], string> = {
  transaction_id: 'BIGINT',
  transaction_date: 'VARCHAR',
  toll_booth: 'VARCHAR',
  vehicle_make: 'VARCHAR',
  vehicle_category: 'VARCHAR',
  transaction_amount: 'DOUBLE',
};

/**
 * Reads the staging CSV back with DuckDB as the warehouse's COPY will (no header, `""` an empty
 * string, an unquoted empty field NULL), evaluates the checks and records their results. When a
 * `quarantine` check failed, writes the passing rows, in order and in the same CSV form, to `out`.
 * @throws {QualityBlockedError} when a `block` check failed.
 */
async function checkStagedRows(
  ctx: PipelineContext,
  input: {
    csv: string;
    lines: string;
    out: string;
    rows: number;
    checks: readonly CheckDefinition[];
    runId: string;
    unit: string;
  },
): Promise<{
  results: CheckResult[];
  quarantined: { line: number; reason: string; raw: string }[];
  path?: string;
}> {
  const db = await DuckDb.open({
    ...(ctx.engine.threads !== undefined ? { threads: ctx.engine.threads } : {}),
    memoryLimit: ctx.engine.memoryLimit ?? '256MB',
  });
  try {
    const columns = TOLL_COLUMNS.map((c) => `${quoteString(c)}: ${quoteString(STAGING_TYPES[c])}`).join(', ');
    const rows = `read_csv(${quoteString(input.csv)}, header = false, columns = {${columns}}, delim = ',',
      quote = '"', escape = '"', nullstr = '', allow_quoted_nulls = false)`;
    await db.run(`CREATE VIEW staged AS SELECT * FROM ${rows}`);
    const evaluate = (relation: string) =>
      evaluateChecks({
        db,
        relation,
        checks: input.checks,
        pipeline: tollsPipeline.name,
        table: TOLL_TABLE,
        runId: input.runId,
        unit: input.unit,
        now: ctx.clock.now(),
      });
    const checked = await evaluate('staged');
    const read = checked.results[0]?.rows;
    if (read !== input.rows) {
      throw new Error(
        `internal: the staging CSV of ${input.unit} reads back as ${read} rows, ${input.rows} were written`,
      );
    }
    await settleChecks(ctx, checked);
    if (!checked.quarantined) return { results: checked.results, quarantined: [] };

    // Some rows go to the quarantine: number the rows in file order (one thread, so `row_number()
    // OVER ()` follows the file, as the lines file does) to give each its landed line and keep the
    // order of the others, and route them with the same checks.
    await db.run(
      `SET threads = 1;
       CREATE TABLE staged_rows AS SELECT row_number() OVER () AS __row, * FROM ${rows};
       CREATE TABLE staged_lines AS SELECT row_number() OVER () AS __row, line AS __line
         FROM read_csv(${quoteString(input.lines)}, header = false, columns = {'line': 'BIGINT'});
       CREATE VIEW staged_numbered AS SELECT * FROM staged_rows JOIN staged_lines USING (__row)`,
    );
    const routed = await evaluate('staged_numbered');
    if (routed.quarantinedRows !== checked.quarantinedRows || !routed.quarantined) {
      throw new Error(
        `internal: the rows of ${input.unit} failing quarantine checks changed between readings`,
      );
    }
    const failed = await db.all(
      `SELECT __line, ${REASON_COLUMN} AS reason, ${TOLL_COLUMNS.map(quoteIdent).join(', ')}
       FROM ${routed.quarantined} ORDER BY __row`,
    );
    const quarantined = failed.rows.map(({ __line, reason, ...row }) => ({
      line: Number(__line),
      reason: `data-quality check failed: ${String(reason)}`,
      raw: stringifyJson(row),
    }));
    const strings = TOLL_COLUMNS.filter((c) => STAGING_TYPES[c] === 'VARCHAR').map(quoteIdent);
    await db.run(
      `COPY (SELECT ${TOLL_COLUMNS.map(quoteIdent).join(', ')} FROM ${routed.passed} ORDER BY __row)
         TO ${quoteString(input.out)} (FORMAT csv, HEADER false, DELIMITER ',', QUOTE '"', ESCAPE '"',
           NULLSTR '', FORCE_QUOTE (${strings.join(', ')}))`,
    );
    return { results: checked.results, quarantined, path: input.out };
  } finally {
    db.close();
  }
}

/** Passes chunks through while hashing them. */
async function* hashing(source: AsyncIterable<Buffer | string>, hash: Hash): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    hash.update(buffer);
    yield buffer;
  }
}

/** Physical lines (without `\n` or `\r\n`) with their 1-based numbers; memory bounded by the longest line. */
async function* splitLines(
  source: AsyncIterable<Buffer | string>,
): AsyncGenerator<{ line: number; bytes: Buffer }> {
  let carry: Buffer = Buffer.alloc(0);
  let line = 0;
  for await (const chunk of source) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const data = carry.length > 0 ? Buffer.concat([carry, buffer]) : buffer;
    let start = 0;
    for (let nl = data.indexOf(0x0a, start); nl !== -1; nl = data.indexOf(0x0a, start)) {
      line++;
      yield { line, bytes: data.subarray(start, nl > start && data[nl - 1] === 0x0d ? nl - 1 : nl) };
      start = nl + 1;
    }
    carry = data.subarray(start);
  }
  if (carry.length > 0) {
    line++;
    yield { line, bytes: carry[carry.length - 1] === 0x0d ? carry.subarray(0, -1) : carry };
  }
}

/** A file written through a stream, awaiting back-pressure; created on the first write. */
class BufferedFile {
  private stream: WriteStream | undefined;
  constructor(readonly path: string) {}
  async write(text: string): Promise<void> {
    this.stream ??= createWriteStream(this.path);
    if (!this.stream.write(text)) await once(this.stream, 'drain');
  }
  async close(): Promise<void> {
    if (!this.stream) return;
    const stream = this.stream;
    await new Promise<void>((resolve, reject) =>
      stream.end((error?: Error | null) => (error ? reject(error) : resolve())),
    );
  }
}

function quarantined(
  input: { landing: ObjectRef; runId: string },
  line: number,
  reason: string,
  raw: string,
): string {
  return JSON.stringify({
    step: 'job',
    run_id: input.runId,
    source: `landing/${input.landing.key}`,
    line,
    reason,
    raw: raw.length > 65_536 ? `${raw.slice(0, 65_536)}…` : raw,
  });
}

/** A parsed, cast and checked row, or the reason the line is rejected. */
export function toRow(text: string): TollRow | string {
  let value: unknown;
  try {
    value = parseJsonOrPythonLine(text).value;
  } catch (error) {
    return `not a JSON object or Python dict: ${(error as Error).message}`;
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) return 'not a JSON object or Python dict';
  const record = value as Record<string, unknown>;
  const id = castBigint(record.transaction_id);
  if (typeof id === 'string') return id;
  const strings: string[] = [];
  for (const column of REQUIRED_STRINGS) {
    const v = record[column];
    if (v === undefined || v === null) return `missing ${column} (NOT NULL in toll_table)`;
    if (typeof v === 'object') return `${column} is not text: ${JSON.stringify(v).slice(0, 80)}`;
    const s = String(v);
    // A varchar cannot hold U+0000 (PostgreSQL and Redshift): COPY would reject the whole file.
    if (s.includes('\u0000')) return `${column} contains a NUL character (not storable in varchar)`;
    if (Buffer.byteLength(s) > MAX_VARCHAR_BYTES) {
      return `${column} is ${Buffer.byteLength(s)} bytes, over varchar(${MAX_VARCHAR_BYTES})`;
    }
    strings.push(s);
  }
  const amount = castDouble(record.transaction_amount);
  if (typeof amount === 'string') return amount;
  return [id, strings[0] as string, strings[1] as string, strings[2] as string, strings[3] as string, amount];
}

const BIGINT_MIN = -(2n ** 63n);
const BIGINT_MAX = 2n ** 63n - 1n;

function castBigint(v: unknown): bigint | null | string {
  if (v === undefined || v === null) return null;
  let n: bigint | undefined;
  if (typeof v === 'bigint') n = v;
  else if (typeof v === 'number' && Number.isInteger(v)) n = BigInt(v);
  else if (typeof v === 'string' && /^\s*[+-]?\d+\s*$/.test(v)) n = BigInt(v.trim());
  if (n === undefined) return `transaction_id ${JSON.stringify(String(v)).slice(0, 80)} is not an integer`;
  if (n < BIGINT_MIN || n > BIGINT_MAX) return `transaction_id ${n} is out of the bigint range`;
  return n;
}

function castDouble(v: unknown): number | null | string {
  if (v === undefined || v === null) return null;
  const n =
    typeof v === 'number'
      ? v
      : typeof v === 'bigint'
        ? Number(v)
        : typeof v === 'string' && v.trim() !== ''
          ? Number(v)
          : Number.NaN;
  if (!Number.isFinite(n))
    return `transaction_amount ${JSON.stringify(String(v)).slice(0, 80)} is not a number`;
  // The column is `real` (float4): a value that overflows it, or a non-zero one that underflows to
  // 0, makes COPY reject the whole file (PostgreSQL and Redshift alike), so the line is rejected here.
  const real = Math.fround(n);
  if (!Number.isFinite(real) || (real === 0 && n !== 0))
    return `transaction_amount ${n} is out of the range of real (float4)`;
  return n;
}

/** Column names of the staging CSV, in order (the COPY column list). */
export const STAGING_COLUMNS = TOLL_COLUMNS;
