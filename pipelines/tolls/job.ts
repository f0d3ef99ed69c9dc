import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import { stringify } from 'csv-stringify/sync';
import type { PipelineContext } from '../../src/core/context.ts';
import type { ObjectRef } from '../../src/core/layer.ts';
import type { RecordCounts } from '../../src/core/run.ts';
import { reconcile } from '../../src/core/run.ts';
import { isGzipFile } from '../../src/engines/ndjson/annotate-lines.ts';
import { parseJsonOrPythonLine } from '../../src/engines/pydict/python-literal.ts';
import { quarantineKey, stagingKey, TOLL_COLUMNS } from './definition.ts';

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
  /** `read` non-blank lines = `loaded` rows staged + `quarantined`. */
  readonly counts: RecordCounts;
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
 * @throws {NotFoundError} when the landed object does not exist.
 */
export async function runJob(
  ctx: PipelineContext,
  input: { landing: ObjectRef; runId: string },
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
    let batch: TollRow[] = [];
    const flushRows = async () => {
      if (batch.length === 0) return;
      await stagingFile.write(
        stringify(batch, {
          quoted_string: true,
          record_delimiter: 'unix',
          cast: { bigint: (v) => v.toString() },
        }),
      );
      batch = [];
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
        loaded++;
        if (batch.length >= 10_000) await flushRows();
      }
    }
    await flushRows();
    await stagingFile.close();
    await quarantineFile.close();
    const sha256 = hash.digest('hex');
    const at = ctx.clock.now();
    let staging: ObjectRef | undefined;
    if (loaded > 0) {
      staging = { layer: 'staging', key: stagingKey(input.landing.key, sha256) };
      await objectStore.putFile(staging, stagingFile.path, { move: true });
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
      ...(staging ? { staging } : {}),
      ...(quarantine ? { quarantine } : {}),
    };
  } finally {
    await local.release();
    await stagingScratch.release();
    await quarantineScratch.release();
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
