/**
 * Reading Twitter capture files: v1.1 stream lines, v1.1 REST arrays and search responses, v2 pages
 * (twarc2 or the filtered stream's own lines), plain or gzip.
 *
 * Every status, stream control message and bad thing in a file becomes exactly one {@link TweetInput},
 * in file order, so a run can reconcile `read = kept + filtered + quarantined`. Bad input (invalid JSON
 * or UTF-8, a status that is not an object or lacks its id, user or creation time, a v2 `errors` entry,
 * a truncated file) is yielded as `kind: 'bad'` with a reason and an exact location, and reading goes on.
 *
 * Memory stays bounded by the largest record: line formats are read line by line, and a JSON array is
 * cut into its elements by a byte scanner (strings, escapes and nesting; each element is then checked by
 * `JSON.parse`), so a truncated or damaged array still yields every element before the damage, each
 * with the line it starts on. Formats follow Twitter's API docs: v1.1 "Tweet object" and "Streaming
 * message types", v2 "Data dictionary" and "Partial errors".
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { UsageError } from '../../core/errors.ts';
import type {
  SourceLocation,
  TweetInput,
  TwitterFileFormat,
  V1Status,
  V2Includes,
  V2Tweet,
} from './types.ts';

/** Options of {@link readTweetFile}. */
export interface ReadTweetFileOptions {
  /**
   * Largest record (a line, an array element, a pretty-printed object) read, in bytes; a larger one is
   * skipped without being held in memory and yielded as `bad`. Default 64 MiB.
   */
  readonly maxRecordBytes?: number;
  /** Stops reading: the iteration throws the signal's reason. */
  readonly signal?: AbortSignal;
  /** Called once with the detected format, before the first item. */
  readonly onFormat?: (format: TwitterFileFormat) => void;
}

/** Default of {@link ReadTweetFileOptions.maxRecordBytes}. */
export const DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024;

/** Most bytes of offending text kept in a `bad` item's `raw`. */
export const MAX_RAW_BYTES = 64 * 1024;

/** Bytes read before deciding the format (the start of the first record is enough). */
const PEEK_BYTES = 1024 * 1024;

/**
 * v1.1 streaming message types that are not statuses (Twitter API docs, "Streaming message types";
 * user and site stream envelopes included), checked in this order.
 */
const CONTROL_KEYS = [
  'delete',
  'scrub_geo',
  'limit',
  'status_withheld',
  'user_withheld',
  'disconnect',
  'warning',
  'event',
  'friends',
  'friends_str',
  'direct_message',
  'for_user',
  'control',
] as const;

/** Keys only a v1.1 status has at its top level. */
const V1_STATUS_KEYS = [
  'id_str',
  'created_at',
  'text',
  'full_text',
  'user',
  'retweeted_status',
  'extended_tweet',
];

const NL = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

function isSpaceByte(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x09 || byte === CR || byte === NL;
}

/**
 * Tells the capture format of a file from its first bytes (decoded as text; a BOM and leading
 * whitespace are skipped), by content, never by name:
 * - a JSON array -> `v1-array` (v1.1 REST, e.g. `statuses/user_timeline`);
 * - an object with `statuses` -> `v1-search` (v1.1 `search/tweets`);
 * - an object with `data`, `includes`, `errors` or `meta` -> `v2-page` (a v2 response: twarc2, the
 *   filtered stream; a page with only `meta` has no tweets);
 * - an object with status keys (`id_str`, `created_at`, `text`, `user`, ...) or a stream message
 *   (`delete`, `limit`, ...) -> `v1-stream`.
 *
 * Only the top-level keys of the first object are looked at, so a prefix cut anywhere works as long as
 * it reaches one of those keys.
 * @param file named in the error message.
 * @throws {UsageError} naming the file when the text is empty or none of these formats.
 */
export function detectFormat(firstBytes: string, file = 'input'): TwitterFileFormat {
  const text = firstBytes.replace(/^\uFEFF/, '').trimStart();
  if (text === '') throw new UsageError(`${file}: the file is empty, so it has no Twitter capture format`);
  if (text.startsWith('[')) return 'v1-array';
  if (!text.startsWith('{')) {
    throw new UsageError(
      `${file}: not a Twitter capture: it starts with ${JSON.stringify(text.slice(0, 40))}, ` +
        'not a JSON object or array',
    );
  }
  const keys = topLevelKeys(text);
  if (keys.has('statuses')) return 'v1-search';
  if (keys.has('data') || keys.has('includes') || keys.has('errors') || keys.has('meta')) return 'v2-page';
  if (V1_STATUS_KEYS.some((k) => keys.has(k)) || CONTROL_KEYS.some((k) => keys.has(k))) return 'v1-stream';
  const seen = [...keys].slice(0, 10).join(', ');
  throw new UsageError(
    `${file}: not a known Twitter capture format: its first object has the keys ` +
      `${seen === '' ? '(none)' : seen}; expected a v1.1 status (id_str, created_at, text, user), ` +
      'a v1.1 stream message (delete, limit, ...), a v1.1 search response {statuses} or a v2 page ' +
      '{data, includes, errors, meta}',
  );
}

/** Keys of the first JSON object in `text` (which starts with `{`), as far as `text` goes. */
function topLevelKeys(text: string): Set<string> {
  const keys = new Set<string>();
  let depth = 0;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      const start = i;
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      if (i >= text.length) break;
      i++;
      if (depth === 1) {
        let j = i;
        while (j < text.length && /\s/.test(text[j] ?? '')) j++;
        if (text[j] === ':') {
          try {
            keys.add(JSON.parse(text.slice(start, i)) as string);
          } catch {
            // A malformed key is not a key.
          }
        }
      }
      continue;
    }
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) break;
    }
    i++;
  }
  return keys;
}

/**
 * Reads a Twitter capture file (plain or gzip, told by its magic bytes) in any
 * {@link TwitterFileFormat}, yielding one {@link TweetInput} per status, stream control message or bad
 * thing, in file order:
 * - v1.1 statuses -> `kind: 'v1'` (checked: an object with a decimal `id_str`, `created_at` and a `user`
 *   with a `screen_name`);
 * - v2 tweets of a page's `data` (an array, or one object as the filtered stream sends) -> `kind: 'v2'`
 *   with the page's `includes` (checked: an `id`); each entry of a page's `errors` (v2 partial errors
 *   such as "Could not find tweet") -> `bad` with its title and detail, while its `data` still flows;
 *   a page without tweets or errors (`{meta: {result_count: 0}}`) yields nothing;
 * - v1.1 stream messages (`delete`, `limit`, ...) -> `kind: 'control'`;
 * - anything unreadable -> `kind: 'bad'` with the reason, the offending text (at most 64 KiB) and its
 *   location; reading goes on with the next line or array element.
 *
 * Line formats (`v1-stream`, `v1-search`, `v2-page`) are read line by line: a UTF-8 BOM, CRLF line ends
 * and blank lines are fine, and each line is decoded strictly (invalid UTF-8 is a bad line). A line may
 * also hold a JSON array of statuses. A JSON array file (`v1-array`, one line or pretty-printed, or
 * several arrays one after the other) is cut into elements by a byte scanner; when it is truncated,
 * every complete element is still yielded, the incomplete one is `bad` and so is a missing `]`. A file
 * whose first object is pretty-printed over several lines (its first line is `{`) is read the same way,
 * one top-level object at a time. A gzip stream that ends early or is corrupt yields one more `bad`
 * item saying so, after everything read before the damage. A file of only whitespace yields nothing.
 *
 * Locations: `source` is `file` as given; `line` is 1-based (the line a status starts on); `index` and
 * `member` say where in the line's array or page the status is.
 * @throws {UsageError} naming the file when it cannot be opened or is not a Twitter capture (see
 *   {@link detectFormat}); the signal's reason when `options.signal` aborts; I/O errors while reading.
 */
export async function* readTweetFile(
  file: string,
  options: ReadTweetFileOptions = {},
): AsyncGenerator<TweetInput, void, undefined> {
  const maxRecordBytes = options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
  const reader = await ChunkReader.open(file, options.signal);
  try {
    // Peek at the start (from the first non-blank byte on) to decide the format and the reading mode.
    const head: Buffer[] = [];
    let ended = false;
    let prefix = '';
    for (;;) {
      const chunk = await reader.next();
      if (chunk === null) ended = true;
      else head.push(chunk);
      const joined = head.length === 1 ? head[0]! : Buffer.concat(head);
      let first = joined[0] === 0xef && joined[1] === 0xbb && joined[2] === 0xbf ? 3 : 0;
      while (first < joined.length && isSpaceByte(joined[first])) first++;
      if (ended || joined.length - first >= PEEK_BYTES) {
        prefix = joined.subarray(first, first + PEEK_BYTES).toString('utf8');
        break;
      }
    }
    if (prefix === '') {
      if (reader.damage !== undefined) yield damageItem(file, 1, reader.damage);
      return;
    }
    const format = detectFormat(prefix, file);
    options.onFormat?.(format);
    const scanner: Scanner =
      format === 'v1-array' || startsPrettyPrinted(prefix)
        ? new SequenceScanner(file, maxRecordBytes)
        : new LineScanner(file, maxRecordBytes);

    let first = true;
    const feed = function* (chunk: Buffer): Generator<TweetInput> {
      let data = chunk;
      if (first) {
        first = false;
        if (data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf) data = data.subarray(3);
      }
      for (const item of scanner.feed(data)) {
        options.signal?.throwIfAborted();
        yield item;
      }
    };
    for (const chunk of head) yield* feed(chunk);
    if (!ended) {
      for (;;) {
        const chunk = await reader.next();
        if (chunk === null) break;
        yield* feed(chunk);
      }
    }
    for (const item of scanner.end(reader.damage)) {
      options.signal?.throwIfAborted();
      yield item;
    }
  } finally {
    reader.close();
  }
}

/**
 * Whether a file whose first value is an object is pretty-printed rather than one object per line:
 * its first line is just `{`, or its first object spans lines and parses.
 */
function startsPrettyPrinted(prefix: string): boolean {
  const text = prefix.trimStart();
  const firstLine = text.split('\n', 1)[0] ?? '';
  if (firstLine.trim() === '{') return true;
  try {
    JSON.parse(firstLine);
    return false;
  } catch {
    // Not a complete JSON line: see whether the first object ends on a later line.
  }
  const end = endOfFirstValue(text);
  if (end === -1 || !text.slice(0, end).includes('\n')) return false;
  try {
    JSON.parse(text.slice(0, end));
    return true;
  } catch {
    return false;
  }
}

/** Index just after the first JSON value of `text` (starting with `{` or `[`), or -1 when it does not end. */
function endOfFirstValue(text: string): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/** Reads a file's bytes, gunzipping when it starts with the gzip magic bytes; records gzip damage. */
class ChunkReader {
  /** Set when the gzip stream was truncated or corrupt (the reading then ends). */
  damage: string | undefined;
  private readonly iterator: AsyncIterator<Buffer>;

  private constructor(
    private readonly streams: readonly Readable[],
    private readonly gzip: boolean,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.iterator = (streams.at(-1) as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  /** @throws {UsageError} naming the file when it cannot be opened or read. */
  static async open(file: string, signal: AbortSignal | undefined): Promise<ChunkReader> {
    signal?.throwIfAborted();
    let gzip: boolean;
    try {
      const handle = await open(file, 'r');
      try {
        const magic = Buffer.alloc(2);
        const { bytesRead } = await handle.read(magic, 0, 2, 0);
        gzip = bytesRead === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
      } finally {
        await handle.close();
      }
    } catch (error) {
      throw new UsageError(`cannot read the Twitter capture ${file}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const input = createReadStream(file, { highWaterMark: 1 << 20 });
    const streams: Readable[] = [input];
    if (gzip) {
      const gunzip = createGunzip({ chunkSize: 1 << 20 });
      input.on('error', (error) => gunzip.destroy(error));
      streams.push(input.pipe(gunzip));
    }
    return new ChunkReader(streams, gzip, signal);
  }

  /** The next chunk, or null at the end (or at gzip damage, see {@link damage}). */
  async next(): Promise<Buffer | null> {
    this.signal?.throwIfAborted();
    if (this.damage !== undefined) return null;
    try {
      const result = await this.iterator.next();
      this.signal?.throwIfAborted();
      return result.done ? null : result.value;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (!this.gzip || code === undefined || !code.startsWith('Z_')) throw error;
      this.damage =
        code === 'Z_BUF_ERROR'
          ? `the gzip stream ends early (truncated file): ${(error as Error).message}`
          : `the gzip stream is corrupt: ${(error as Error).message}`;
      return null;
    }
  }

  close(): void {
    for (const stream of this.streams) stream.destroy();
  }
}

/** Cuts a byte stream into records and turns them into inputs. */
interface Scanner {
  feed(chunk: Buffer): Iterable<TweetInput>;
  /** The end of the input; `damage` says why it ended early, if it did. */
  end(damage: string | undefined): Iterable<TweetInput>;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Text of `bytes` for a `bad` item: at most {@link MAX_RAW_BYTES}, cut on a character boundary. */
function rawText(bytes: Buffer): string {
  let end = Math.min(bytes.length, MAX_RAW_BYTES);
  if (end < bytes.length) while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}

/** `text` cut to at most {@link MAX_RAW_BYTES} of UTF-8. */
function clipText(text: string): string {
  return text.length * 3 <= MAX_RAW_BYTES ? text : rawText(Buffer.from(text, 'utf8'));
}

function bad(reason: string, raw: string, location: SourceLocation): TweetInput {
  return { kind: 'bad', reason, raw: clipText(raw), location };
}

function damageItem(file: string, line: number, damage: string): TweetInput {
  return bad(`${damage}; nothing after this point could be read`, '', { source: file, line });
}

/** A JSON value's kind in words, for reasons ("a number", "an array", "null"). */
function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  const type = typeof value;
  return type === 'object' ? 'an object' : `a ${type}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Decodes and parses one record, or says why it cannot be.
 * @param what "line" or "element" (for the reason).
 */
function parseRecord(bytes: Buffer, what: string): { value: unknown } | { reason: string } {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return { reason: `${what} is not valid UTF-8` };
  }
  try {
    return { value: JSON.parse(text) };
  } catch (error) {
    const message = (error as Error).message;
    const position = /position \d+/.test(message)
      ? ''
      : /end of JSON input/.test(message)
        ? ` (at position ${text.length}, the end of the ${what}: it is truncated)`
        : '';
    return { reason: `${what} is not valid JSON: ${message}${position}` };
  }
}

/** Turns one parsed top-level value (a line, or a top-level object of a pretty-printed file) into inputs. */
function inputsOfValue(
  value: unknown,
  raw: () => string,
  location: SourceLocation,
  what: string,
): TweetInput[] {
  if (Array.isArray(value)) {
    return value.map((element, index) =>
      statusInput(element, () => JSON.stringify(element) ?? '', { ...location, index }),
    );
  }
  if (!isObject(value)) {
    return [
      bad(
        `${what} is ${describeType(value)}, expected a JSON object or an array of statuses`,
        raw(),
        location,
      ),
    ];
  }
  if ('statuses' in value) {
    const statuses = value.statuses;
    if (!Array.isArray(statuses)) {
      return [
        bad(`v1.1 search response: statuses is ${describeType(statuses)}, not an array`, raw(), location),
      ];
    }
    return statuses.map((element, index) =>
      statusInput(element, () => JSON.stringify(element) ?? '', { ...location, index, member: 'statuses' }),
    );
  }
  if ('data' in value || 'includes' in value || 'errors' in value || 'meta' in value) {
    return pageInputs(value, raw, location);
  }
  return [statusInput(value, raw, location)];
}

/** Inputs of a v2 page: its `data` tweets, then one `bad` per `errors` entry. */
function pageInputs(
  page: Record<string, unknown>,
  raw: () => string,
  location: SourceLocation,
): TweetInput[] {
  const out: TweetInput[] = [];
  const includes: V2Includes = isObject(page.includes) ? (page.includes as V2Includes) : {};
  const data = page.data;
  if (Array.isArray(data)) {
    data.forEach((tweet, index) => {
      out.push(v2Input(tweet, includes, { ...location, index, member: 'data' }));
    });
  } else if (isObject(data)) {
    out.push(v2Input(data, includes, { ...location, member: 'data' }));
  } else if (data !== undefined) {
    out.push(bad(`v2 page: data is ${describeType(data)}, not an array of tweets`, raw(), location));
  }
  const errors = page.errors;
  if (Array.isArray(errors)) {
    errors.forEach((entry, index) => {
      out.push(
        bad(`v2 error: ${describeApiError(entry)}`, JSON.stringify(entry) ?? '', {
          ...location,
          index,
          member: 'errors',
        }),
      );
    });
  } else if (errors !== undefined) {
    out.push(bad(`v2 page: errors is ${describeType(errors)}, not an array`, raw(), location));
  }
  return out;
}

/** An API error entry in words: v2 `title`/`detail`/`resource_id`, or v1.1 `code`/`message`. */
function describeApiError(entry: unknown): string {
  if (!isObject(entry)) return `an error entry that is ${describeType(entry)}`;
  const parts: string[] = [];
  for (const key of ['title', 'detail', 'message']) {
    const value = entry[key];
    if (typeof value === 'string' && value !== '' && !parts.includes(value)) parts.push(value);
  }
  const extra: string[] = [];
  for (const key of ['resource_type', 'resource_id', 'parameter', 'value', 'code']) {
    const value = entry[key];
    if (typeof value === 'string' || typeof value === 'number') extra.push(`${key} ${value}`);
  }
  const text = parts.length > 0 ? parts.join(': ') : 'an error without title or detail';
  return extra.length > 0 ? `${text} (${extra.join(', ')})` : text;
}

function v2Input(tweet: unknown, includes: V2Includes, location: SourceLocation): TweetInput {
  if (!isObject(tweet)) {
    return bad(
      `v2 tweet is ${describeType(tweet)}, expected an object`,
      JSON.stringify(tweet) ?? '',
      location,
    );
  }
  if (typeof tweet.id !== 'string' || !/^\d+$/.test(tweet.id)) {
    const why = tweet.id === undefined ? 'has no id' : 'has an id that is not a decimal string';
    return bad(`v2 tweet ${why}`, JSON.stringify(tweet), location);
  }
  return { kind: 'v2', tweet: tweet as V2Tweet, includes, location };
}

/** A v1.1 status or stream control message, checked. */
function statusInput(value: unknown, raw: () => string, location: SourceLocation): TweetInput {
  if (!isObject(value)) return bad(`status is ${describeType(value)}, expected an object`, raw(), location);
  if (value.id_str === undefined && value.text === undefined && value.full_text === undefined) {
    const message = CONTROL_KEYS.find((key) => key in value);
    if (message !== undefined) return { kind: 'control', message, body: value, location };
  }
  const id = value.id_str;
  if (typeof id !== 'string' || !/^\d+$/.test(id)) {
    const why = id === undefined ? 'has no id_str' : 'has an id_str that is not a decimal string';
    return bad(`v1.1 status ${why}`, raw(), location);
  }
  if (typeof value.created_at !== 'string' || value.created_at === '') {
    return bad(`v1.1 status ${id} has no created_at`, raw(), location);
  }
  const user = value.user;
  if (!isObject(user)) return bad(`v1.1 status ${id} has no user`, raw(), location);
  if (typeof user.screen_name !== 'string' || user.screen_name === '') {
    return bad(`v1.1 status ${id}: its user has no screen_name`, raw(), location);
  }
  return { kind: 'v1', status: value as V1Status, location };
}

/** Line formats: one record per line (blank lines skipped, CR before LF dropped). */
class LineScanner implements Scanner {
  private line = 0;
  private carry: Buffer[] = [];
  private carryBytes = 0;
  /** Bytes of the current line when it is over the limit (its start is kept in `carry` for `raw`). */
  private oversized = false;

  constructor(
    private readonly file: string,
    private readonly maxRecordBytes: number,
  ) {}

  *feed(chunk: Buffer): Generator<TweetInput> {
    let start = 0;
    let newline = chunk.indexOf(NL, start);
    while (newline !== -1) {
      if (this.carryBytes > 0 || this.oversized) {
        this.append(chunk.subarray(start, newline));
        const line = this.takeCarry();
        yield* this.record(line);
      } else {
        yield* this.record(chunk.subarray(start, newline));
      }
      start = newline + 1;
      newline = chunk.indexOf(NL, start);
    }
    if (start < chunk.length) this.append(Buffer.from(chunk.subarray(start)));
  }

  *end(damage: string | undefined): Generator<TweetInput> {
    if (this.carryBytes > 0 || this.oversized) yield* this.record(this.takeCarry());
    if (damage !== undefined) yield damageItem(this.file, this.line + 1, damage);
  }

  private append(piece: Buffer): void {
    this.carryBytes += piece.length;
    if (this.oversized) return;
    if (this.carryBytes > this.maxRecordBytes) {
      this.oversized = true;
      const kept = Buffer.concat(this.carry);
      this.carry = [kept.subarray(0, MAX_RAW_BYTES + 4)];
      return;
    }
    this.carry.push(piece);
  }

  private takeCarry(): Buffer {
    const line = this.carry.length === 1 ? this.carry[0]! : Buffer.concat(this.carry);
    this.carry = [];
    return line;
  }

  private *record(bytes: Buffer): Generator<TweetInput> {
    this.line++;
    const location: SourceLocation = { source: this.file, line: this.line };
    const size = this.oversized ? this.carryBytes : bytes.length;
    if (size > this.maxRecordBytes) {
      this.oversized = false;
      this.carryBytes = 0;
      yield bad(
        `line is ${size} bytes, over the ${this.maxRecordBytes}-byte limit of one record`,
        rawText(bytes),
        location,
      );
      return;
    }
    this.carryBytes = 0;
    let end = bytes.length;
    if (bytes[end - 1] === CR) end--;
    let first = 0;
    while (first < end && isSpaceByte(bytes[first])) first++;
    if (first === end) return; // a blank line (a keep-alive in a stream capture)
    const line = bytes.subarray(0, end);
    const parsed = parseRecord(line, 'line');
    if ('reason' in parsed) {
      yield bad(parsed.reason, rawText(line), location);
      return;
    }
    yield* inputsOfValue(parsed.value, () => rawText(line), location, 'line');
  }
}

type SequenceState =
  /** Between top-level values. */
  | 'top'
  /** In a top-level array, before an element (after `[` or `,`). */
  | 'array'
  /** In an element of a top-level array. */
  | 'element'
  /** In a top-level object. */
  | 'object'
  /** In top-level text that is neither an array nor an object (up to the end of its line). */
  | 'junk';

/**
 * JSON array files (and pretty-printed objects): a byte scanner that finds where each top-level
 * object and each element of a top-level array starts and ends (tracking strings, escapes and
 * nesting only; `JSON.parse` then checks each record), so a huge array is never held whole and
 * damage stays local to one element. Structural bytes are ASCII and never occur inside a UTF-8
 * multi-byte sequence, so scanning bytes is exact.
 */
class SequenceScanner implements Scanner {
  private state: SequenceState = 'top';
  private line = 1;
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Index of the next element in the current top-level array. */
  private index = 0;
  private arrayLine = 1;
  private record: Buffer[] = [];
  private recordBytes = 0;
  private recordLine = 1;
  private oversized = false;

  constructor(
    private readonly file: string,
    private readonly maxRecordBytes: number,
  ) {}

  *feed(chunk: Buffer): Generator<TweetInput> {
    let start = -1; // where the current record's bytes start in this chunk
    if (this.state === 'element' || this.state === 'object' || this.state === 'junk') start = 0;
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'element' || this.state === 'object') {
        const element = this.state === 'element';
        const end = this.scanRecord(chunk, i, element);
        if (end === -1) break;
        if (element) {
          this.append(chunk.subarray(start, end));
          start = -1;
          yield* this.elementDone();
          this.index++;
          this.state = chunk[end] === COMMA ? 'array' : 'top';
        } else {
          this.append(chunk.subarray(start, end + 1));
          start = -1;
          yield* this.objectDone();
          this.state = 'top';
        }
        i = end + 1;
        continue;
      }
      const byte = chunk[i]!;
      if (byte === NL) this.line++;
      switch (this.state) {
        case 'top':
          if (isSpaceByte(byte)) break;
          this.recordLine = this.line;
          if (byte === OPEN_BRACKET) {
            this.state = 'array';
            this.index = 0;
            this.arrayLine = this.line;
          } else {
            this.state = byte === OPEN_BRACE ? 'object' : 'junk';
            this.depth = byte === OPEN_BRACE ? 1 : 0;
            this.inString = false;
            this.escaped = false;
            start = i;
          }
          break;
        case 'array':
          if (isSpaceByte(byte)) break;
          if (byte === CLOSE_BRACKET) {
            this.state = 'top';
            break;
          }
          this.state = 'element';
          this.recordLine = this.line;
          this.depth = 0;
          this.inString = false;
          this.escaped = false;
          start = i;
          continue; // the element scan starts at this byte (not a newline: it was not counted)
        case 'junk':
          if (byte === NL) {
            this.append(chunk.subarray(start, i));
            start = -1;
            yield* this.junkDone();
            this.state = 'top';
          }
          break;
      }
      i++;
    }
    if (start !== -1) this.append(Buffer.from(chunk.subarray(start)));
  }

  /**
   * Scans an array element (ends before a `,` or `]` at its top level) or a top-level object (ends at
   * the `}` that closes it) from `from`, counting lines; the hot loop, on locals.
   * @returns the index of the byte that ends the record, or -1 when the chunk ends first.
   */
  private scanRecord(chunk: Buffer, from: number, element: boolean): number {
    let depth = this.depth;
    let inString = this.inString;
    let escaped = this.escaped;
    let line = this.line;
    let end = -1;
    for (let i = from; i < chunk.length; i++) {
      const byte = chunk[i]!;
      if (byte === NL) line++;
      if (inString) {
        if (escaped) escaped = false;
        else if (byte === BACKSLASH) escaped = true;
        else if (byte === QUOTE) inString = false;
      } else if (byte === QUOTE) inString = true;
      else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) depth++;
      else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
        if (!element) {
          depth--;
          if (depth === 0) {
            end = i;
            break;
          }
        } else if (depth > 0) depth--;
        else if (byte === CLOSE_BRACKET) {
          end = i;
          break;
        }
      } else if (element && depth === 0 && byte === COMMA) {
        end = i;
        break;
      }
    }
    this.depth = depth;
    this.inString = inString;
    this.escaped = escaped;
    this.line = line;
    return end;
  }

  *end(damage: string | undefined): Generator<TweetInput> {
    const cause = damage ?? 'the file ends';
    const location: SourceLocation = { source: this.file, line: this.recordLine };
    switch (this.state) {
      case 'top':
        break;
      case 'array':
        yield bad(
          `${cause} inside the JSON array that starts on line ${this.arrayLine}, after ${this.index} ` +
            'element(s): its closing ] is missing (truncated file)',
          '',
          { source: this.file, line: this.line, index: this.index },
        );
        break;
      case 'element': {
        // A complete last element without its `,` or `]` is still a status.
        const complete = this.depth === 0 && !this.inString;
        const bytes = this.take();
        this.recordBytes = 0;
        const parsed = complete && !this.oversized ? parseRecord(bytes, 'element') : undefined;
        if (parsed !== undefined && 'value' in parsed) {
          yield statusInput(parsed.value, () => rawText(bytes), { ...location, index: this.index });
          yield bad(
            `${cause} inside the JSON array that starts on line ${this.arrayLine}, after ${this.index + 1} ` +
              'element(s): its closing ] is missing (truncated file)',
            '',
            { source: this.file, line: this.line, index: this.index + 1 },
          );
        } else {
          yield bad(
            `${cause} inside element ${this.index} of the JSON array that starts on line ${this.arrayLine} ` +
              '(truncated file)',
            rawText(bytes),
            { ...location, index: this.index },
          );
        }
        break;
      }
      case 'object':
        yield bad(`${cause} inside a JSON object (truncated file)`, rawText(this.take()), location);
        break;
      case 'junk':
        yield* this.junkDone();
        break;
    }
    this.state = 'top';
    if (damage !== undefined) yield damageItem(this.file, this.line, damage);
  }

  private append(piece: Buffer): void {
    this.recordBytes += piece.length;
    if (this.oversized) return;
    if (this.recordBytes > this.maxRecordBytes) {
      this.oversized = true;
      this.record = [Buffer.concat(this.record).subarray(0, MAX_RAW_BYTES + 4)];
      return;
    }
    this.record.push(piece);
  }

  private take(): Buffer {
    const bytes = this.record.length === 1 ? this.record[0]! : Buffer.concat(this.record);
    this.record = [];
    return bytes;
  }

  /** The reason when the record just taken was over the limit (and resets the size). */
  private oversizedReason(what: string): string | undefined {
    const size = this.recordBytes;
    const over = this.oversized;
    this.recordBytes = 0;
    this.oversized = false;
    return over
      ? `${what} is ${size} bytes, over the ${this.maxRecordBytes}-byte limit of one record`
      : undefined;
  }

  private *elementDone(): Generator<TweetInput> {
    const bytes = this.take();
    const location: SourceLocation = { source: this.file, line: this.recordLine, index: this.index };
    const over = this.oversizedReason('element');
    if (over !== undefined) {
      yield bad(over, rawText(bytes), location);
      return;
    }
    if (bytes.every(isSpaceByte)) {
      yield bad(`element ${this.index} of the array is empty (a stray comma)`, '', location);
      return;
    }
    const parsed = parseRecord(bytes, 'element');
    if ('reason' in parsed) {
      yield bad(`${parsed.reason} (element ${this.index} of the array)`, rawText(bytes), location);
      return;
    }
    yield statusInput(parsed.value, () => rawText(bytes), location);
  }

  private *objectDone(): Generator<TweetInput> {
    const bytes = this.take();
    const location: SourceLocation = { source: this.file, line: this.recordLine };
    const over = this.oversizedReason('object');
    if (over !== undefined) {
      yield bad(over, rawText(bytes), location);
      return;
    }
    const parsed = parseRecord(bytes, 'object');
    if ('reason' in parsed) {
      yield bad(parsed.reason, rawText(bytes), location);
      return;
    }
    yield* inputsOfValue(parsed.value, () => rawText(bytes), location, 'object');
  }

  private *junkDone(): Generator<TweetInput> {
    const bytes = this.take();
    this.oversizedReason('text');
    let end = bytes.length;
    if (bytes[end - 1] === CR) end--;
    yield bad('text outside any JSON array or object (expected [ or {)', rawText(bytes.subarray(0, end)), {
      source: this.file,
      line: this.recordLine,
    });
  }
}
