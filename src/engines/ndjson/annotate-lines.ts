import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';

/**
 * Prepares an NDJSON file (plain or gzip, detected by its magic bytes, not its name) for DuckDB's
 * `read_ndjson`: decompresses it to a plain file and inserts the physical line number (1-based)
 * into every line that starts with `{` as the first member, `{"__sluice_line":N, ...`.
 *
 * Why: DuckDB's reader is fast and parallel on plain files but, with `ignore_errors`, turns a bad
 * line into a row of NULLs without saying which line it was. With the number inside each record,
 * a bad line is the number that is missing, and every good row carries its source line, so both
 * can be quarantined or traced with file and line. Lines that are blank are kept (DuckDB skips
 * them); lines not starting with `{` are copied unchanged (DuckDB rejects them).
 *
 * Damage is reported, not thrown: a truncated or corrupt gzip stream yields every line before the
 * damage, and `damage` says what happened. Memory stays bounded by the longest line.
 */

/** The member inserted into each object. */
export const LINE_FIELD = '__sluice_line';

/** Result of {@link annotateNdjson}. */
export interface AnnotateResult {
  /** Physical lines in the decompressed input (the last line counts even without a final newline). */
  readonly lines: number;
  /** Lines that are empty or whitespace only: not records. */
  readonly blankLines: number;
  /** Bytes read from the input file (compressed size for gzip). */
  readonly bytesIn: number;
  /** Bytes of decompressed input. */
  readonly bytesDecompressed: number;
  /** Whether the input was gzip. */
  readonly gzip: boolean;
  /** Set when the gzip stream was truncated or corrupt: lines after that point could not be read. */
  readonly damage?: { readonly kind: 'truncated' | 'corrupt'; readonly message: string };
  /** Whether the last line had no terminating newline (normal at EOF; a sign of damage if `damage` is set). */
  readonly lastLineUnterminated: boolean;
}

const NEWLINE = 0x0a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

function isSpace(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0d;
}

/**
 * Decompresses (when gzip) and annotates `inputPath` into `outputPath`.
 * @param options.onProgress called with input bytes read so far.
 * @throws {Error} only for I/O errors on the files themselves (not for damaged content).
 */
export async function annotateNdjson(
  inputPath: string,
  outputPath: string,
  options: { onProgress?: (bytesIn: number) => void; signal?: AbortSignal } = {},
): Promise<AnnotateResult> {
  const gzip = await isGzipFile(inputPath);
  const input = createReadStream(inputPath, { highWaterMark: 1 << 20 });
  let bytesIn = 0;
  input.on('data', (chunk: Buffer | string) => {
    bytesIn += chunk.length;
    options.onProgress?.(bytesIn);
  });
  const source: Readable = gzip ? input.pipe(createGunzip({ chunkSize: 1 << 20 })) : input;
  const output = createWriteStream(outputPath, { highWaterMark: 1 << 22 });
  const outputError = new Promise<never>((_, reject) => output.on('error', reject));
  outputError.catch(() => {});

  let lineNumber = 0;
  let blankLines = 0;
  let bytesDecompressed = 0;
  let carry: Buffer[] = [];
  let damage: AnnotateResult['damage'];

  // Hot loop: lines are copied into one output buffer per input chunk, with the line member written
  // in place, so the cost per line is one memcpy and a few bytes (no per-line allocation).
  const prefixHead = Buffer.from(`{"${LINE_FIELD}":`, 'latin1');
  let out = Buffer.allocUnsafe(1 << 21);
  let used = 0;
  const reserve = (bytes: number) => {
    if (used + bytes <= out.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(out.length * 2, used + bytes));
    out.copy(bigger, 0, 0, used);
    out = bigger;
  };
  const flush = async (): Promise<void> => {
    if (used === 0) return;
    // The stream keeps the buffer until written: hand it over and start a new one (no copy).
    const ok = output.write(out.subarray(0, used));
    out = Buffer.allocUnsafe(out.length);
    used = 0;
    if (!ok) await Promise.race([once(output, 'drain'), outputError]);
  };

  /** Appends one complete line (`source[start, end)`, without its newline) and a newline. */
  const emit = (source: Buffer, start: number, end: number): void => {
    lineNumber++;
    let first = start;
    while (first < end && isSpace(source[first])) first++;
    if (first === end) {
      blankLines++;
      reserve(1);
      out[used++] = NEWLINE;
      return;
    }
    reserve(end - start + 32);
    if (source[first] === OPEN_BRACE) {
      let next = first + 1;
      while (next < end && isSpace(source[next])) next++;
      used += source.copy(out, used, start, first); // leading whitespace, kept so the line restores exactly
      used += prefixHead.copy(out, used);
      used += out.write(String(lineNumber), used, 'latin1');
      if (source[next] !== CLOSE_BRACE) out[used++] = 0x2c; // ','
      used += source.copy(out, used, first + 1, end);
    } else {
      used += source.copy(out, used, start, end);
    }
    out[used++] = NEWLINE;
  };

  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      if (options.signal?.aborted) throw options.signal.reason;
      bytesDecompressed += chunk.length;
      let start = 0;
      let newline = chunk.indexOf(NEWLINE, start);
      while (newline !== -1) {
        if (carry.length > 0) {
          carry.push(chunk.subarray(start, newline));
          const line = Buffer.concat(carry);
          carry = [];
          emit(line, 0, line.length);
        } else {
          emit(chunk, start, newline);
        }
        start = newline + 1;
        newline = chunk.indexOf(NEWLINE, start);
      }
      if (start < chunk.length) carry.push(Buffer.from(chunk.subarray(start)));
      await flush();
    }
  } catch (error) {
    if (options.signal?.aborted) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (!gzip || code === undefined || !code.startsWith('Z_')) throw error;
    damage = {
      kind: code === 'Z_BUF_ERROR' ? 'truncated' : 'corrupt',
      message: `${code === 'Z_BUF_ERROR' ? 'gzip stream ends early (truncated file)' : 'gzip stream is corrupt'}: ${(error as Error).message}`,
    };
  }
  const lastLineUnterminated = carry.length > 0;
  if (lastLineUnterminated) {
    const line = Buffer.concat(carry);
    emit(line, 0, line.length);
    await flush();
  }
  output.end();
  await Promise.race([once(output, 'finish'), outputError]);
  input.destroy();
  return {
    lines: lineNumber,
    blankLines,
    bytesIn,
    bytesDecompressed,
    gzip,
    lastLineUnterminated,
    ...(damage ? { damage } : {}),
  };
}

/** Whether a file starts with the gzip magic bytes (RFC 1952: 0x1f 0x8b), whatever its name. */
export async function isGzipFile(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const header = Buffer.alloc(2);
    const { bytesRead } = await handle.read(header, 0, 2, 0);
    return bytesRead === 2 && header[0] === 0x1f && header[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

/**
 * Reads chosen lines of an annotated file, in order, restoring their original text (the inserted
 * line member removed). Blank lines are skipped.
 * @param wanted 1-based physical line numbers.
 */
export async function* readAnnotatedLines(
  annotatedPath: string,
  wanted: ReadonlySet<number>,
): AsyncGenerator<{ line: number; raw: Buffer }> {
  if (wanted.size === 0) return;
  let remaining = wanted.size;
  let lineNumber = 0;
  let carry: Buffer[] = [];
  const stream = createReadStream(annotatedPath, { highWaterMark: 1 << 20 });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      let newline = chunk.indexOf(NEWLINE, start);
      while (newline !== -1) {
        lineNumber++;
        if (wanted.has(lineNumber)) {
          const piece = chunk.subarray(start, newline);
          const line = carry.length > 0 ? Buffer.concat([...carry, piece]) : Buffer.from(piece);
          if (line.some((b) => !isSpace(b))) yield { line: lineNumber, raw: restore(line, lineNumber) };
          if (--remaining === 0) return;
        }
        carry = [];
        start = newline + 1;
        newline = chunk.indexOf(NEWLINE, start);
      }
      if (start < chunk.length) carry.push(chunk.subarray(start));
    }
  } finally {
    stream.destroy();
  }
}

function restore(line: Buffer, lineNumber: number): Buffer {
  let first = 0;
  while (first < line.length && isSpace(line[first])) first++;
  for (const suffix of [',', '']) {
    const prefix = Buffer.from(`{"${LINE_FIELD}":${lineNumber}${suffix}`);
    if (line.subarray(first, first + prefix.length).equals(prefix)) {
      return Buffer.concat([line.subarray(0, first), Buffer.from('{'), line.subarray(first + prefix.length)]);
    }
  }
  return line;
}

/**
 * Why a line that DuckDB's JSON reader rejected is bad, in words for the quarantine record.
 * @param maxRecordBytes the reader's `maximum_object_size`.
 */
export function explainRejectedLine(raw: Buffer, maxRecordBytes: number): string {
  if (raw.length > maxRecordBytes) {
    return `record is ${raw.length} bytes, over the ${maxRecordBytes}-byte limit of one record`;
  }
  const text = raw.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(raw)) return 'line is not valid UTF-8';
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return `line is not valid JSON: ${(error as Error).message}`;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    const kind = parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : `a ${typeof parsed}`;
    return `line is ${kind}, expected a JSON object`;
  }
  return 'line was rejected by the JSON reader (e.g. a lone UTF-16 surrogate escape)';
}
