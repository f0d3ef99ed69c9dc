/**
 * A client for the quotable API's random-quote endpoint (https://github.com/lukePeavey/quotable):
 * `GET {base}/quotes/random` answers a JSON array of quote documents. The public API
 * (api.quotable.io) is offline; `sluice fixture-server quotes` serves the same shape locally
 * (src/sources/http/quotes-fixture.ts), and the client takes any base URL.
 */
import http from 'node:http';
import https from 'node:https';
import { ExitCode, SluiceError, SourceUnavailableError, UsageError } from '../../core/errors.ts';

/** A quote document as quotable serves it (and as its data repository stores it). */
export interface QuotableQuote {
  readonly _id: string;
  readonly content: string;
  readonly author: string;
  /** Tag slugs, e.g. `famous-quotes`. */
  readonly tags: readonly string[];
  /** Present in quotable's documents; the pipeline does not keep it (nor did the original). */
  readonly authorId?: string;
  readonly authorSlug: string;
  /** Characters of `content`. */
  readonly length: number;
  /** `YYYY-MM-DD`. */
  readonly dateAdded: string;
  /** `YYYY-MM-DD`. */
  readonly dateModified: string;
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;

/**
 * Checks that `value` is a quote document with every field the pipeline reads (the original's
 * `pull_quote` failed with a `KeyError` on a missing one).
 * @returns the quote, or the reason it is not one (`"_id" is missing`).
 */
export function parseQuote(value: unknown): QuotableQuote | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return `expected a quote object, got ${describe(value)}`;
  }
  const q = value as Record<string, unknown>;
  for (const field of ['_id', 'content', 'author', 'authorSlug'] as const) {
    if (typeof q[field] !== 'string' || q[field] === '') {
      return `"${field}" is ${q[field] === undefined ? 'missing' : `not a non-empty string (${describe(q[field])})`}`;
    }
  }
  if (!Array.isArray(q.tags) || q.tags.some((t) => typeof t !== 'string')) {
    return `"tags" is ${q.tags === undefined ? 'missing' : `not an array of strings (${describe(q.tags)})`}`;
  }
  if (typeof q.length !== 'number' || !Number.isInteger(q.length) || q.length < 0) {
    return `"length" is ${q.length === undefined ? 'missing' : `not a non-negative integer (${describe(q.length)})`}`;
  }
  for (const field of ['dateAdded', 'dateModified'] as const) {
    if (typeof q[field] !== 'string' || !DATE.test(q[field])) {
      return `"${field}" is ${q[field] === undefined ? 'missing' : `not a YYYY-MM-DD date (${describe(q[field])})`}`;
    }
  }
  if (q.authorId !== undefined && typeof q.authorId !== 'string') {
    return `"authorId" is not a string (${describe(q.authorId)})`;
  }
  return value as QuotableQuote;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

/**
 * The API answered in a way retrying will not fix (a 4xx other than 408/429): the poll fails.
 * Not retryable; exit code 4 like an unavailable source.
 */
export class QuotesApiError extends SluiceError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: 'quotes_api', exitCode: ExitCode.unavailable, ...options });
  }
}

/** Options of {@link fetchRandomQuote}. */
export interface RandomQuoteOptions {
  /** Base URL of the API, e.g. `http://127.0.0.1:8787` (path prefixes are kept). */
  readonly baseUrl: string;
  /** Longest wait for a whole response (headers and body) per attempt, ms (default 10,000). */
  readonly timeoutMs?: number;
  /** Retries after the first attempt (default 2). */
  readonly retries?: number;
  /** Wait before retry `n` (0-based) is `min(maxDelayMs, baseDelayMs * 2^n)` ms (default 1,000). */
  readonly baseDelayMs?: number;
  /** Upper bound of one wait, including a server's `Retry-After`, ms (default 30,000). */
  readonly maxDelayMs?: number;
  /** How to wait between attempts (a clock's `sleep`: tests never wait for real). */
  readonly sleep: (ms: number) => Promise<void>;
  /** Ends the call (and any wait) early: rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** What {@link fetchRandomQuote} got. */
export interface RandomQuoteResult {
  /** The LAST element of the answered array (as the original kept it). */
  readonly quote: QuotableQuote;
  /** Elements in the answered array. */
  readonly received: number;
  /** Requests made (1 + retries used). */
  readonly attempts: number;
  readonly url: string;
}

/** Why one attempt failed in a way worth retrying. */
class TransientFailure extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** The URL of the random-quote endpoint under `base`. @throws {UsageError} for a non-http(s) URL. */
export function randomQuoteUrl(base: string): string {
  let url: URL;
  try {
    url = new URL(base);
  } catch (error) {
    throw new UsageError(`API URL ${JSON.stringify(base)} is not a URL (expected http://host:port)`, {
      cause: error,
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`API URL ${JSON.stringify(base)} must be http:// or https://`);
  }
  url.search = '';
  url.hash = '';
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return new URL('quotes/random', url).href;
}

/**
 * `GET {base}/quotes/random` and the last quote of the answered array.
 *
 * Retried with exponential backoff (no jitter: one poller a minute), up to `retries` times:
 * network errors, attempts over `timeoutMs`, 5xx, 408 and 429 (`Retry-After` honoured, capped),
 * and bodies that are not a non-empty JSON array whose last element is a complete quote (a proxy's
 * error page, a truncated answer). Any other status (404, 403, ...) fails at once.
 *
 * @throws {SourceUnavailableError} when every attempt failed transiently; the message names the
 *   URL, the attempts and the last reason (an ASL `Retry` on `SourceUnavailableError` matches it).
 * @throws {QuotesApiError} for a status retrying will not change.
 * @throws {UsageError} for a malformed base URL.
 */
export async function fetchRandomQuote(options: RandomQuoteOptions): Promise<RandomQuoteResult> {
  const url = randomQuoteUrl(options.baseUrl);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const retries = options.retries ?? 2;
  const baseDelayMs = options.baseDelayMs ?? 1000;
  const maxDelayMs = options.maxDelayMs ?? 30_000;
  if (!Number.isInteger(retries) || retries < 0) throw new UsageError(`retries must be an integer >= 0`);
  if (!(timeoutMs > 0)) throw new UsageError(`timeoutMs must be > 0`);
  let last: TransientFailure | undefined;
  for (let attempt = 1; attempt <= retries + 1; attempt++) {
    if (attempt > 1) {
      const backoff = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 2));
      await options.sleep(
        last?.retryAfterMs !== undefined ? Math.min(maxDelayMs, last.retryAfterMs) : backoff,
      );
    }
    options.signal?.throwIfAborted();
    try {
      const { quote, received } = await attemptOnce(url, timeoutMs, options.signal);
      return { quote, received, attempts: attempt, url };
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (!(error instanceof TransientFailure)) throw error;
      last = error;
    }
  }
  const attempts = retries + 1;
  throw new SourceUnavailableError(
    `${url} failed ${attempts} attempt${attempts === 1 ? '' : 's'}; last error: ${last?.message ?? 'unknown'}`,
  );
}

/** Keep-alive connections: a simulated day polls 1,440 times in seconds. Idle sockets do not hold the process. */
const agents = {
  'http:': new http.Agent({ keepAlive: true, maxSockets: 4 }),
  'https:': new https.Agent({ keepAlive: true, maxSockets: 4 }),
};

/** Longest body read, bytes (a quote is under 1 kB). */
const MAX_BODY_BYTES = 1 << 20;

interface RawResponse {
  readonly status: number;
  readonly statusText: string;
  readonly retryAfter: string | undefined;
  readonly text: string;
}

/** One GET, whole body read, within `timeoutMs`; network failures and the timeout are transient. */
function get(url: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const client = target.protocol === 'https:' ? https : http;
    let settled = false;
    const finish = (error: unknown, response?: RawResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (response) resolve(response);
      else reject(error);
    };
    const req = client.request(
      target,
      {
        method: 'GET',
        headers: { accept: 'application/json', 'user-agent': 'sluice/0.1 (+https://github.com/sluice)' },
        agent: agents[target.protocol as 'http:' | 'https:'],
      },
      (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > MAX_BODY_BYTES) {
            req.destroy(new TransientFailure(`the body is larger than ${MAX_BODY_BYTES} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', (error) => finish(error));
        res.on('aborted', () => finish(new TransientFailure('the connection closed before the body ended')));
        res.on('end', () => {
          if (!res.complete) {
            finish(new TransientFailure('the connection closed before the body ended'));
            return;
          }
          const retryAfter = res.headers['retry-after'];
          finish(undefined, {
            status: res.statusCode ?? 0,
            statusText: res.statusMessage ?? '',
            retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
            text: Buffer.concat(chunks).toString('utf8'),
          });
        });
      },
    );
    const timer = setTimeout(
      () => req.destroy(new TransientFailure(`no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onAbort = () => {
      req.destroy();
      finish(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (error) => {
      if (error instanceof TransientFailure) {
        finish(error);
        return;
      }
      const code = (error as NodeJS.ErrnoException).code;
      finish(
        new TransientFailure(
          code && !error.message.includes(code) ? `${code}: ${error.message}` : error.message,
        ),
      );
    });
    req.end();
  });
}

async function attemptOnce(
  url: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<{ quote: QuotableQuote; received: number }> {
  const response = await get(url, timeoutMs, signal);
  const { status, text } = response;
  if (status !== 200) {
    const label = `HTTP ${status}${response.statusText ? ` ${response.statusText}` : ''} from ${url}`;
    if (status >= 500 || status === 408 || status === 429) {
      throw new TransientFailure(label, retryAfterMs(response.retryAfter));
    }
    throw new QuotesApiError(`unexpected ${label} (not retried): ${text.slice(0, 200)}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new TransientFailure(`the body is not JSON: ${JSON.stringify(text.slice(0, 80))}`);
  }
  if (!Array.isArray(body) || body.length === 0) {
    throw new TransientFailure(
      `expected a non-empty JSON array of quotes, got ${Array.isArray(body) ? 'an empty array' : describe(body)}`,
    );
  }
  const parsed = parseQuote(body[body.length - 1]);
  if (typeof parsed === 'string') throw new TransientFailure(`the last quote of the answer: ${parsed}`);
  return { quote: parsed, received: body.length };
}

function retryAfterMs(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const value = header.trim();
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  return undefined;
}
