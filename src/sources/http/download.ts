/**
 * A robust single-file fetcher: downloads one file from an HTTP(S) base URL, or copies it from a
 * local directory, into a destination path without ever leaving a partial file there.
 *
 * Used for GH Archive hourly files (`https://data.gharchive.org/2015-01-01-0.json.gz`, 50-300 MB),
 * so the body is streamed to `<dest>.part`, fsynced and renamed into place only when complete.
 * Transient failures (5xx, 429, idle timeouts, connection resets, truncated bodies) are retried
 * with exponential backoff and full jitter; every wait goes through the injected {@link Clock}.
 */
import { createWriteStream } from 'node:fs';
import { type FileHandle, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import type { Clock } from '../../core/clock.ts';
import { ExitCode, SluiceError, SourceUnavailableError, UsageError } from '../../core/errors.ts';

/** Options of {@link fetchSourceFile}. */
export interface FetchOptions {
  /** Clock used for every wait between retries (tests inject a fake one; nothing sleeps with `setTimeout`). */
  clock: Clock;
  /** Retries after the first attempt (default 5, so at most 6 requests). Integer >= 0. */
  retries?: number;
  /** Backoff base in ms (default 1,000): the cap of retry `n` (0-based) is `baseDelayMs * 2^n`. */
  baseDelayMs?: number;
  /** Upper bound in ms of any single wait, including a server's `Retry-After` (default 30,000). */
  maxDelayMs?: number;
  /**
   * Idle timeout in ms per attempt (default 60,000): when no response headers or body bytes arrive
   * for this long, the attempt fails and is retried. Not a limit on the whole transfer.
   */
  idleTimeoutMs?: number;
  /**
   * Called with the bytes received so far in the current attempt and the expected total in bytes
   * (`Content-Length`, or the file size for local copies; `undefined` when unknown). Monotonic
   * within an attempt; starts again from 0 when an attempt is retried.
   */
  onProgress?: (bytes: number, total: number | undefined) => void;
  /** Aborts the transfer (and any backoff wait): the call rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Source of randomness in [0, 1) for the backoff jitter (default `Math.random`). */
  random?: () => number;
  /** `User-Agent` header sent with HTTP requests (default `sluice/0.1 (+https://github.com/sluice)`). */
  userAgent?: string;
}

/**
 * Outcome of {@link fetchSourceFile}.
 * - `fetched`: the file is complete at the destination; `bytes` is its size in bytes.
 * - `not_found`: the source answered 404/410 (or the local file does not exist), e.g. a GH Archive
 *   hour not published yet; nothing is left at the destination.
 *
 * `attempts` counts requests made (1 + retries used); `location` is the resolved source URL
 * (before redirects) or local path.
 */
export type FetchResult =
  | { status: 'fetched'; bytes: number; attempts: number; location: string }
  | { status: 'not_found'; attempts: number; location: string };

/** Default `User-Agent` of HTTP requests. */
const DEFAULT_USER_AGENT = 'sluice/0.1 (+https://github.com/sluice)';
/** Redirects followed within one attempt. */
const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const NOT_FOUND_STATUSES = new Set([404, 410]);
/** Error codes of transient network failures (Node's `code` on socket/DNS/stream errors). */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE',
]);
const ACCEPTED = 'an http:// or https:// URL, a file:// URL of a directory, or a local directory path';

/**
 * Where `fileName` lives under `base`, without touching the network or the disk.
 *
 * - `http(s)://host[/path][/]` -> `{ kind: 'http', url }`; the base path is kept and a missing
 *   trailing slash added (`https://data.gharchive.org` + `2015-01-01-0.json.gz` ->
 *   `https://data.gharchive.org/2015-01-01-0.json.gz`). Path segments of `fileName` are
 *   percent-encoded; a query or fragment of the base is dropped.
 * - `file:///dir` or a plain path (relative paths resolved against `process.cwd()`) ->
 *   `{ kind: 'file', path }` (absolute).
 *
 * @throws {UsageError} when `base` is empty, malformed or uses another scheme (e.g. `ftp://`), or
 *   when `fileName` is empty, absolute or contains `..` segments (it must stay under `base`).
 */
export function resolveSourceLocation(
  base: string,
  fileName: string,
): { kind: 'http'; url: string } | { kind: 'file'; path: string } {
  const segments = checkFileName(fileName);
  const resolved = resolveBase(base);
  if (resolved.kind === 'http') {
    const url = new URL(resolved.url);
    url.search = '';
    url.hash = '';
    if (!url.pathname.endsWith('/')) url.pathname += '/';
    return { kind: 'http', url: new URL(segments.map(encodeURIComponent).join('/'), url).href };
  }
  return { kind: 'file', path: path.join(resolved.dir, ...segments) };
}

/**
 * Fetches `fileName` from `base` (see {@link resolveSourceLocation}) into `destPath`.
 *
 * The bytes are streamed (never buffered whole) to `destPath + '.part'`, fsynced, then renamed to
 * `destPath`, whose directory is created when missing; on any failure or abort the `.part` file is
 * removed and `destPath` is untouched.
 *
 * HTTP: redirects (301/302/303/307/308) are followed up to 5 per attempt; 200 -> `fetched`;
 * 404/410 -> `not_found`. Retried from byte 0 after a backoff wait: 5xx, 408, 429 (and 503) with
 * `Retry-After` honoured (seconds or an HTTP date, capped at `maxDelayMs`), idle timeouts,
 * connection errors (ECONNRESET, ECONNREFUSED, EPIPE, ETIMEDOUT, EAI_AGAIN, socket hang up,
 * premature close) and bodies shorter than `Content-Length`. The wait before retry `n` (0-based)
 * is `random() * min(maxDelayMs, baseDelayMs * 2^n)` ms: "full jitter" from Marc Brooker,
 * "Exponential Backoff And Jitter", AWS Architecture Blog, 2015
 * (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
 *
 * Local sources are copied once, without retries; a missing file -> `not_found`.
 *
 * @throws {UsageError} for an unsupported `base`, a bad `fileName` or bad options, or when a local
 *   base directory does not exist.
 * @throws {SourceUnavailableError} when every attempt failed transiently; the message names the
 *   URL, the number of attempts and the last reason, and `cause` is the last error.
 * @throws {SluiceError} code `http_status` (not retryable, exit code 4) for any other status
 *   (e.g. 403); code `http_redirect` for a redirect loop or a bad `Location`; code
 *   `fetch_failed` for other failures (TLS, DNS ENOTFOUND, disk full, unreadable local file).
 * @throws the signal's reason when `signal` aborts.
 */
export async function fetchSourceFile(
  base: string,
  fileName: string,
  destPath: string,
  options: FetchOptions,
): Promise<FetchResult> {
  const location = resolveSourceLocation(base, fileName);
  const settings = resolveOptions(options);
  settings.signal?.throwIfAborted();
  const partPath = `${destPath}.part`;
  await mkdir(path.dirname(path.resolve(destPath)), { recursive: true });
  let committed = false;
  try {
    const result =
      location.kind === 'http'
        ? await fetchHttp(location.url, partPath, settings)
        : await copyLocal(resolveBase(base), location.path, partPath, settings);
    if (result.status === 'fetched') {
      await commit(partPath, destPath);
      committed = true;
    }
    return result;
  } catch (error) {
    if (settings.signal?.aborted) throw settings.signal.reason;
    throw error;
  } finally {
    if (!committed) await rm(partPath, { force: true });
  }
}

/** {@link FetchOptions} with defaults applied and validated. */
interface Settings {
  clock: Clock;
  retries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  idleTimeoutMs: number;
  onProgress: ((bytes: number, total: number | undefined) => void) | undefined;
  signal: AbortSignal | undefined;
  random: () => number;
  userAgent: string;
}

function resolveOptions(options: FetchOptions): Settings {
  const settings: Settings = {
    clock: options.clock,
    retries: options.retries ?? 5,
    baseDelayMs: options.baseDelayMs ?? 1000,
    maxDelayMs: options.maxDelayMs ?? 30_000,
    idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
    onProgress: options.onProgress,
    signal: options.signal,
    random: options.random ?? Math.random,
    userAgent: options.userAgent ?? DEFAULT_USER_AGENT,
  };
  if (!Number.isInteger(settings.retries) || settings.retries < 0) {
    throw new UsageError(`retries must be an integer >= 0, got ${settings.retries}`);
  }
  for (const key of ['baseDelayMs', 'maxDelayMs'] as const) {
    if (!Number.isFinite(settings[key]) || settings[key] < 0) {
      throw new UsageError(`${key} must be a number of ms >= 0, got ${settings[key]}`);
    }
  }
  if (!Number.isFinite(settings.idleTimeoutMs) || settings.idleTimeoutMs <= 0) {
    throw new UsageError(`idleTimeoutMs must be a number of ms > 0, got ${settings.idleTimeoutMs}`);
  }
  return settings;
}

/** Splits `fileName` into path segments, refusing names that could leave the base. */
function checkFileName(fileName: string): string[] {
  const segments = fileName.split(/[/\\]/);
  if (
    fileName === '' ||
    path.isAbsolute(fileName) ||
    segments.some((s) => s === '' || s === '.' || s === '..')
  ) {
    throw new UsageError(
      `invalid source file name ${JSON.stringify(fileName)}: expected a relative name such as 2015-01-01-0.json.gz`,
    );
  }
  return segments;
}

/** Classifies a source base: an http(s) URL or an absolute local directory. */
function resolveBase(base: string): { kind: 'http'; url: string } | { kind: 'file'; dir: string } {
  // Two or more scheme characters, so that a Windows drive (`C:\data`) stays a path.
  const scheme = /^([a-z][a-z0-9+.-]+):/i.exec(base)?.[1]?.toLowerCase();
  const unsupported = (cause?: unknown) =>
    new UsageError(`unsupported source ${JSON.stringify(base)}: expected ${ACCEPTED}`, { cause });
  if (base.trim() === '') throw unsupported();
  if (scheme === undefined) return { kind: 'file', dir: path.resolve(base) };
  let url: URL;
  try {
    url = new URL(base);
  } catch (error) {
    throw unsupported(error);
  }
  if (scheme === 'http' || scheme === 'https') {
    if (url.hostname === '') throw unsupported();
    return { kind: 'http', url: url.href };
  }
  if (scheme === 'file') {
    try {
      return { kind: 'file', dir: fileURLToPath(url) };
    } catch (error) {
      throw unsupported(error);
    }
  }
  throw unsupported();
}

/** Why an attempt failed in a way worth retrying. */
class TransientFailure extends Error {
  constructor(
    message: string,
    /** Server-requested wait (`Retry-After`) in ms, before capping. */
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TransientFailure';
  }
}

/** Thrown by the idle watchdog when nothing arrived for `idleTimeoutMs`. */
class IdleTimeoutError extends Error {
  constructor(ms: number) {
    super(`no data received for ${ms} ms (idle timeout)`);
    this.name = 'IdleTimeoutError';
  }
}

/** The HTTP retry loop around {@link httpAttempt}. */
async function fetchHttp(url: string, partPath: string, s: Settings): Promise<FetchResult> {
  const maxAttempts = s.retries + 1;
  let lastFailure: TransientFailure | undefined;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    if (attempt > 1) {
      await s.clock.sleep(backoffMs(attempt - 2, lastFailure?.retryAfterMs, s), s.signal);
    }
    s.signal?.throwIfAborted();
    try {
      const outcome = await httpAttempt(new URL(url), partPath, s);
      return outcome.status === 'fetched'
        ? { status: 'fetched', bytes: outcome.bytes, attempts: attempt, location: url }
        : { status: 'not_found', attempts: attempt, location: url };
    } catch (error) {
      if (s.signal?.aborted) throw s.signal.reason;
      lastFailure = asTransient(error);
      if (lastFailure === undefined) {
        if (error instanceof SluiceError) throw error;
        throw new SluiceError(`fetching ${url} failed: ${messageOf(error)}`, {
          code: 'fetch_failed',
          exitCode: ExitCode.unavailable,
          cause: error,
        });
      }
    }
  }
  const reason = lastFailure?.message ?? 'unknown';
  throw new SourceUnavailableError(
    `${url} is unavailable after ${maxAttempts} attempt${maxAttempts === 1 ? '' : 's'}; last error: ${reason}`,
    { cause: lastFailure?.cause ?? lastFailure },
  );
}

/**
 * Wait in ms before retry `retry` (0-based): full jitter, `random() * min(max, base * 2^retry)`,
 * or the server's `Retry-After` capped at `maxDelayMs`.
 */
function backoffMs(retry: number, retryAfterMs: number | undefined, s: Settings): number {
  if (retryAfterMs !== undefined) return Math.min(s.maxDelayMs, retryAfterMs);
  const cap = Math.min(s.maxDelayMs, s.baseDelayMs * 2 ** retry);
  return Math.floor(s.random() * cap);
}

/** The failure as a {@link TransientFailure} when it is worth retrying, else `undefined`. */
function asTransient(error: unknown): TransientFailure | undefined {
  if (error instanceof TransientFailure) return error;
  if (error instanceof IdleTimeoutError) {
    return new TransientFailure(error.message, undefined, { cause: error });
  }
  if (!(error instanceof Error)) return undefined;
  const code = (error as NodeJS.ErrnoException).code;
  const message = error.message.toLowerCase();
  if (
    (code !== undefined && TRANSIENT_CODES.has(code)) ||
    message.includes('socket hang up') ||
    message.includes('premature close') ||
    message === 'aborted'
  ) {
    const reason = code && !error.message.includes(code) ? `${code}: ${error.message}` : error.message;
    return new TransientFailure(reason, undefined, { cause: error });
  }
  return undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Idle watchdog of one attempt: destroys the current stream (the request until headers arrive,
 * then the response) with an {@link IdleTimeoutError} when not kicked for `ms`.
 */
class Watchdog {
  private timer: NodeJS.Timeout | undefined;
  private target: { destroy(error?: Error): unknown } | undefined;

  constructor(private readonly ms: number) {}

  /** Watches `target` from now on and restarts the countdown. */
  watch(target: { destroy(error?: Error): unknown }): void {
    this.target = target;
    this.kick();
  }

  /** Restarts the countdown (data arrived). */
  kick(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.target?.destroy(new IdleTimeoutError(this.ms)), this.ms);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** One attempt: request, follow redirects, stream a 200 body to `partPath`. */
async function httpAttempt(
  start: URL,
  partPath: string,
  s: Settings,
): Promise<{ status: 'fetched'; bytes: number } | { status: 'not_found' }> {
  const watchdog = new Watchdog(s.idleTimeoutMs);
  try {
    let url = start;
    for (let redirects = 0; ; redirects++) {
      const res = await request(url, s, watchdog);
      const status = res.statusCode ?? 0;
      const label = `HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''} from ${url.href}`;
      if (status === 200) {
        return { status: 'fetched', bytes: await receiveBody(res, url, partPath, s, watchdog) };
      }
      res.resume();
      res.destroy();
      if (NOT_FOUND_STATUSES.has(status)) return { status: 'not_found' };
      if (REDIRECT_STATUSES.has(status)) {
        url = redirectTarget(url, res.headers.location, redirects, status);
        continue;
      }
      if (status >= 500 || status === 429 || status === 408) {
        const retryAfter =
          status === 429 || status === 503 ? parseRetryAfter(res.headers['retry-after'], s.clock) : undefined;
        throw new TransientFailure(label, retryAfter);
      }
      throw new SluiceError(`unexpected ${label} (not retried)`, {
        code: 'http_status',
        retryable: false,
        exitCode: ExitCode.unavailable,
      });
    }
  } finally {
    watchdog.stop();
  }
}

/** Where a redirect leads, or a terminal `http_redirect` error. */
function redirectTarget(from: URL, location: string | undefined, redirects: number, status: number): URL {
  const fail = (why: string, cause?: unknown) =>
    new SluiceError(`HTTP ${status} redirect from ${from.href}: ${why}`, {
      code: 'http_redirect',
      exitCode: ExitCode.unavailable,
      cause,
    });
  if (redirects >= MAX_REDIRECTS) throw fail(`more than ${MAX_REDIRECTS} redirects`);
  if (!location) throw fail('no Location header');
  let next: URL;
  try {
    next = new URL(location, from);
  } catch (error) {
    throw fail(`invalid Location ${JSON.stringify(location)}`, error);
  }
  if (next.protocol !== 'http:' && next.protocol !== 'https:') {
    throw fail(`unsupported Location ${JSON.stringify(location)}`);
  }
  return next;
}

/** `Retry-After` (delay-seconds or an HTTP date) in ms, or `undefined` when absent or unreadable. */
function parseRetryAfter(header: string | undefined, clock: Clock): number | undefined {
  if (header === undefined) return undefined;
  const value = header.trim();
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - clock.now().getTime());
}

/** Sends a GET and resolves with the response headers; the watchdog covers the wait. */
function request(url: URL, s: Settings, watchdog: Watchdog): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const client = url.protocol === 'https:' ? https : http;
    const requestOptions: http.RequestOptions = {
      method: 'GET',
      headers: { 'user-agent': s.userAgent, 'accept-encoding': 'identity', accept: '*/*' },
      // One connection per attempt: a retry never reuses a socket that just failed.
      agent: false,
    };
    if (s.signal) requestOptions.signal = s.signal;
    const req = client.request(url, requestOptions, (res) => {
      watchdog.watch(res);
      resolve(res);
    });
    // Stays attached for the whole attempt: late socket errors must not go unhandled.
    req.on('error', reject);
    watchdog.watch(req);
    req.end();
  });
}

/** Streams a 200 body to `partPath`; returns the bytes written. Short bodies are transient failures. */
async function receiveBody(
  res: http.IncomingMessage,
  url: URL,
  partPath: string,
  s: Settings,
  watchdog: Watchdog,
): Promise<number> {
  const header = res.headers['content-length'];
  const expected = header !== undefined && /^\d+$/.test(header) ? Number(header) : undefined;
  let received = 0;
  let bytes: number;
  try {
    bytes = await writeStream(res, partPath, expected, s, (count) => {
      received = count;
      watchdog.kick();
    });
  } catch (error) {
    const transient = error instanceof IdleTimeoutError ? undefined : asTransient(error);
    if (transient === undefined) throw error;
    // Node reports a connection closed before Content-Length as `aborted` (ECONNRESET).
    throw new TransientFailure(
      `transfer from ${url.href} broke off after ${received} of ${expected ?? 'unknown'} bytes: ${transient.message}`,
      undefined,
      { cause: error },
    );
  }
  if (!res.complete || (expected !== undefined && bytes < expected)) {
    throw new TransientFailure(
      `truncated transfer from ${url.href}: received ${bytes} of ${expected ?? 'unknown'} bytes`,
    );
  }
  return bytes;
}

/**
 * Streams `source` into `partPath` (truncated first), reporting progress, then fsyncs it.
 * Returns the number of bytes written.
 */
async function writeStream(
  source: Readable,
  partPath: string,
  total: number | undefined,
  s: Settings,
  onChunk?: (bytes: number) => void,
): Promise<number> {
  let bytes = 0;
  const report = s.onProgress;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      try {
        onChunk?.(bytes);
        report?.(bytes, total);
        callback(null, chunk);
      } catch (error) {
        callback(error as Error);
      }
    },
  });
  report?.(0, total);
  const sink = createWriteStream(partPath, { flags: 'w' });
  await (s.signal ? pipeline(source, counter, sink, { signal: s.signal }) : pipeline(source, counter, sink));
  // The stream has closed its descriptor; fsync through a new one (flushes the file's dirty pages).
  const handle = await open(partPath, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  return bytes;
}

/** Copies a local file (one attempt, no retries). */
async function copyLocal(
  base: { kind: 'http'; url: string } | { kind: 'file'; dir: string },
  sourcePath: string,
  partPath: string,
  s: Settings,
): Promise<FetchResult> {
  let handle: FileHandle;
  try {
    handle = await open(sourcePath, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      if (base.kind === 'file') await assertDirectory(base.dir);
      return { status: 'not_found', attempts: 1, location: sourcePath };
    }
    throw localFailure(sourcePath, error);
  }
  // The read stream takes over the handle and closes it when it ends or is destroyed.
  let owned = false;
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw localFailure(sourcePath, new Error('not a regular file'));
    const source = handle.createReadStream();
    owned = true;
    const bytes = await writeStream(source, partPath, info.size, s);
    return { status: 'fetched', bytes, attempts: 1, location: sourcePath };
  } catch (error) {
    if (s.signal?.aborted || error instanceof SluiceError) throw error;
    throw localFailure(sourcePath, error);
  } finally {
    if (!owned) await handle.close();
  }
}

/** A missing local base directory is a configuration mistake, not an unpublished file. */
async function assertDirectory(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new UsageError(`source directory ${dir} does not exist or is not a directory`);
  }
}

function localFailure(sourcePath: string, error: unknown): SluiceError {
  return new SluiceError(`copying ${sourcePath} failed: ${messageOf(error)}`, {
    code: 'fetch_failed',
    cause: error,
  });
}

/** Renames the complete `.part` file into place and fsyncs the directory (best effort). */
async function commit(partPath: string, destPath: string): Promise<void> {
  await rename(partPath, destPath);
  try {
    const dir = await open(path.dirname(path.resolve(destPath)), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    // Some platforms cannot fsync a directory; the rename itself is already done.
  }
}
