/**
 * A client of the Twitter (X) API v2 filtered stream: the rules endpoints and the long-lived
 * stream connection, with the reconnection policy X documents.
 *
 * Sources (the same pages exist under developer.twitter.com, developer.x.com and docs.x.com):
 * - Rules: `GET /2/tweets/search/stream/rules` and `POST /2/tweets/search/stream/rules` (`add`, `delete`,
 *   `dry_run`): https://developer.x.com/en/docs/x-api/tweets/filtered-stream/api-reference/get-tweets-search-stream-rules
 *   and https://developer.x.com/en/docs/x-api/tweets/filtered-stream/api-reference/post-tweets-search-stream-rules
 * - Stream: `GET /2/tweets/search/stream` (`tweet.fields`, `expansions`, `user.fields`, ...):
 *   https://developer.x.com/en/docs/x-api/tweets/filtered-stream/api-reference/get-tweets-search-stream
 * - Disconnections, keep-alives and backoff:
 *   https://developer.twitter.com/en/docs/twitter-api/tweets/filtered-stream/integrate/handling-disconnections
 *   and https://docs.x.com/x-api/fundamentals/handling-disconnections
 *
 * Not implemented: `backfill_minutes` (recovering up to 5 minutes missed during a disconnection) and
 * the Recovery feature (`start_time`/`end_time`) are available only to Academic Research / Enterprise
 * access (https://docs.x.com/x-api/fundamentals/recovery-and-redundancy), so the client never sends them;
 * tweets matched while disconnected are lost, as with any non-Enterprise client.
 *
 * HTTP: the global `fetch` (undici in Node 20), one `AbortController` per connection, reading
 * `response.body` with a stream reader. A stall timer (re-armed on every chunk, keep-alives included)
 * aborts the controller when nothing arrives for `stallTimeoutMs`, which covers a server that never
 * answers as well as one that stops sending mid-body; so `node:http` offers nothing more here, and
 * `fetch` lets tests or callers inject another implementation (a proxy-aware one, for instance).
 */
import { setTimeout as delay } from 'node:timers/promises';
import {
  describeError,
  ExitCode,
  SluiceError,
  SourceUnavailableError,
  UsageError,
} from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { SourceLocation, TweetInput, V2Includes, V2Tweet } from './types.ts';

/** Default API base URL (X still serves v2 at this host; `https://api.x.com` is equivalent). */
export const DEFAULT_BASE_URL = 'https://api.twitter.com';

/**
 * Default stall timeout in ms: X sends a keep-alive (`\r\n`) every 20 seconds and tells clients to
 * reconnect when neither data nor a keep-alive arrived for 20 seconds (handling-disconnections page).
 */
export const DEFAULT_STALL_TIMEOUT_MS = 20_000;

/** Default of {@link StreamOptions.maxReconnects}: consecutive failed connections before giving up. */
export const DEFAULT_MAX_RECONNECTS = 10;

/**
 * Default `tweet.fields`: what the hashtags producer reads (text, long text, hashtags, retweet count,
 * language, creation time, author, the retweeted tweet's id).
 */
export const DEFAULT_TWEET_FIELDS: readonly string[] = [
  'created_at',
  'lang',
  'public_metrics',
  'entities',
  'referenced_tweets',
  'author_id',
  'note_tweet',
];

/** Default `expansions`: the author, the referenced (retweeted) tweets and their authors, in `includes`. */
export const DEFAULT_EXPANSIONS: readonly string[] = [
  'author_id',
  'referenced_tweets.id',
  'referenced_tweets.id.author_id',
];

/** Default `user.fields` of the expanded users. */
export const DEFAULT_USER_FIELDS: readonly string[] = ['username'];

/** Timeout in ms of one rules request (the rules endpoints answer in well under a second). */
const RULES_REQUEST_TIMEOUT_MS = 30_000;
/** At most this many characters of an offending line are kept in a `bad` item (64 KiB). */
const MAX_RAW_CHARS = 64 * 1024;

/** A rule to add: its text and an optional free-form tag reported in `matching_rules`. */
export interface RuleInput {
  /** Rule text, e.g. `#brexit lang:en is:retweet`. */
  readonly value: string;
  readonly tag?: string;
}

/** A rule stored on the server. */
export interface StreamRule extends RuleInput {
  /** Rule id (a decimal string: 64-bit ids do not fit a JS number). */
  readonly id: string;
}

/** Outcome of {@link FilteredStreamClient.syncRules}. */
export interface RuleSync {
  /** Rules created (empty when nothing was missing). */
  readonly added: readonly StreamRule[];
  /** Rules deleted (the server's rules that were not wanted, or had another tag). */
  readonly deleted: readonly StreamRule[];
  /** Server rules left as they were. */
  readonly kept: readonly StreamRule[];
}

/** The part of the logger the client uses; a sluice {@link Logger} fits. Never receives the token. */
export type StreamLogger = Pick<Logger, 'info' | 'warn'>;

/** Options of {@link FilteredStreamClient}. */
export interface FilteredStreamClientOptions {
  /** App-only OAuth 2.0 bearer token (see {@link bearerTokenFromEnv}). Never logged nor put in errors. */
  bearerToken: string;
  /** API base URL, default {@link DEFAULT_BASE_URL}; a path prefix is kept (`http://127.0.0.1:4000/x`). */
  baseUrl?: string;
  /** `fetch` implementation, default the global one. */
  fetch?: typeof fetch;
  /**
   * Waits between reconnections, in ms. Default: a timer that an aborting `signal` cancels. An
   * injected one is raced against the signal, so an abort still ends the stream at once.
   */
  sleep?: (ms: number) => Promise<void>;
  /** Current time in ms since the epoch (default `Date.now`), for `x-rate-limit-reset`. */
  now?: () => number;
  /**
   * A connection that receives no byte (no data, no keep-alive) for this many ms is considered
   * stalled and is replaced (default {@link DEFAULT_STALL_TIMEOUT_MS}, the documented 20 s).
   */
  stallTimeoutMs?: number;
  /** Receives connection events (`info`) and disconnections with the delay chosen (`warn`). */
  logger?: StreamLogger;
}

/** Options of {@link FilteredStreamClient.stream}. */
export interface StreamOptions {
  /** `tweet.fields`, default {@link DEFAULT_TWEET_FIELDS}. */
  tweetFields?: readonly string[];
  /** `expansions`, default {@link DEFAULT_EXPANSIONS}. */
  expansions?: readonly string[];
  /** `user.fields`, default {@link DEFAULT_USER_FIELDS}. */
  userFields?: readonly string[];
  /** Ends the stream: the iterator returns (no error), the connection or the wait is cancelled. */
  signal?: AbortSignal;
  /**
   * Reconnections allowed after consecutive failed connections (default {@link DEFAULT_MAX_RECONNECTS});
   * the failure after the last one throws {@link SourceUnavailableError}. 0 = never reconnect after a
   * failure; `Infinity` = never give up. A connection that delivered data resets the count.
   */
  maxReconnects?: number;
}

/**
 * The bearer token was refused (HTTP 401) or does not give access to the endpoint (HTTP 403, e.g. an
 * app outside a Project, or an access level without the filtered stream). Not retryable: the same
 * request fails again until the token or the app's access changes. The message never contains the token.
 */
export class TwitterAuthError extends SluiceError {
  /** HTTP status: 401 or 403. */
  readonly status: number;

  constructor(message: string, status: number) {
    super(message, { code: 'twitter_auth', retryable: false, exitCode: ExitCode.usage });
    this.status = status;
  }
}

/**
 * The bearer token from the environment: `TWITTER_BEARER_TOKEN`, else `X_BEARER_TOKEN`; `undefined`
 * when neither is set to a non-blank value. Surrounding whitespace is removed.
 */
export function bearerTokenFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const name of ['TWITTER_BEARER_TOKEN', 'X_BEARER_TOKEN']) {
    const value = env[name]?.trim();
    if (value) return value;
  }
  return undefined;
}

/**
 * Kind of a failed connection, which picks the backoff (handling-disconnections page):
 * - `network`: TCP/IP-level errors, connections closed or stalled before delivering data: linear,
 *   +250 ms per attempt, at most 16 s;
 * - `http`: HTTP errors worth retrying (5xx, 408) and operational disconnects: exponential from 5 s,
 *   doubling, at most 320 s;
 * - `rate-limit`: HTTP 429: exponential from 1 minute, doubling. The docs give no ceiling; sluice stops
 *   doubling at 15 minutes, the length of X's rate-limit window.
 */
export type FailureKind = 'network' | 'http' | 'rate-limit';

/**
 * The documented wait in ms before reconnection `attempt` (1-based, counted per kind since the
 * last connection that delivered data). See {@link FailureKind}.
 */
export function reconnectDelayMs(kind: FailureKind, attempt: number): number {
  const n = Math.max(1, Math.floor(attempt));
  switch (kind) {
    case 'network':
      return Math.min(250 * n, 16_000);
    case 'http':
      return Math.min(5_000 * 2 ** (n - 1), 320_000);
    case 'rate-limit':
      return Math.min(60_000 * 2 ** (n - 1), 15 * 60_000);
  }
}

/**
 * Splits a streamed body into lines on `\r\n`, the delimiter of the X streaming endpoints, whatever
 * the chunking: a line or a `\r\n` may span chunks, and a multi-byte UTF-8 character may be split
 * between two chunks (it is decoded once complete). Invalid UTF-8 becomes U+FFFD.
 */
export class StreamLineDecoder {
  readonly #decoder = new TextDecoder('utf-8');
  #buffer = '';

  /** Adds a chunk; returns the lines it completed (without `\r\n`; keep-alives are empty strings). */
  push(chunk: Uint8Array): string[] {
    // A delimiter may start at the last character of the previous buffer (`\r` | `\n`).
    let from = Math.max(0, this.#buffer.length - 1);
    this.#buffer += this.#decoder.decode(chunk, { stream: true });
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const at = this.#buffer.indexOf('\r\n', Math.max(from, start));
      if (at < 0) break;
      lines.push(this.#buffer.slice(start, at));
      start = at + 2;
      from = start;
    }
    if (start > 0) this.#buffer = this.#buffer.slice(start);
    return lines;
  }

  /** Ends the body: returns the unterminated rest ('' when the body ended on `\r\n`). */
  end(): string {
    const rest = this.#buffer + this.#decoder.decode();
    this.#buffer = '';
    return rest;
  }
}

/** How one connection ended, when it did not end the iteration. */
interface ConnectionEnd {
  readonly kind: FailureKind;
  /** Why, for logs and the final error (never contains the token). */
  readonly reason: string;
  /** The connection delivered data (or stayed healthy on keep-alives): reconnect at once, reset backoff. */
  readonly succeeded: boolean;
  /** `x-rate-limit-reset` of a 429, in ms since the epoch. */
  readonly resetAtMs?: number;
  readonly cause?: unknown;
}

/** Result of parsing one non-empty stream line. */
type ParsedLine =
  | { readonly kind: 'items'; readonly items: readonly TweetInput[] }
  | { readonly kind: 'disconnect'; readonly reason: string };

/**
 * A client of the filtered stream of the X (Twitter) API v2 with an app-only bearer token.
 *
 * Rules calls are single requests (no retries): network errors, 429 and 5xx throw
 * {@link SourceUnavailableError}. {@link stream} reconnects by itself.
 */
export class FilteredStreamClient {
  readonly #token: string;
  readonly #base: string;
  /** Called as a plain function (never as a method of the client), as some `fetch`es require. */
  readonly #fetch: (input: string, init: RequestInit) => Promise<Response>;
  readonly #sleep: ((ms: number) => Promise<void>) | undefined;
  readonly #now: () => number;
  readonly #stallTimeoutMs: number;
  readonly #logger: StreamLogger | undefined;

  /**
   * @throws {UsageError} when the token is empty, `baseUrl` is not an http(s) URL, or
   *   `stallTimeoutMs` is not a number of ms > 0.
   */
  constructor(options: FilteredStreamClientOptions) {
    if (typeof options.bearerToken !== 'string' || options.bearerToken.trim() === '') {
      throw new UsageError(
        'no Twitter bearer token: set TWITTER_BEARER_TOKEN (or X_BEARER_TOKEN) to the app-only bearer token of a Project app',
      );
    }
    this.#token = options.bearerToken.trim();
    const base = options.baseUrl ?? DEFAULT_BASE_URL;
    let url: URL;
    try {
      url = new URL(base);
    } catch (error) {
      throw new UsageError(`invalid Twitter API base URL ${JSON.stringify(base)}`, { cause: error });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new UsageError(`invalid Twitter API base URL ${JSON.stringify(base)}: expected http(s)://`);
    }
    this.#base = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
    const fetchImpl = options.fetch ?? globalThis.fetch;
    this.#fetch = (input, init) => fetchImpl(input, init);
    this.#sleep = options.sleep;
    this.#now = options.now ?? Date.now;
    this.#stallTimeoutMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    if (!Number.isFinite(this.#stallTimeoutMs) || this.#stallTimeoutMs <= 0) {
      throw new UsageError(`stallTimeoutMs must be a number of ms > 0, got ${this.#stallTimeoutMs}`);
    }
    this.#logger = options.logger;
  }

  /**
   * The rules of the stream (`GET /2/tweets/search/stream/rules`, following `meta.next_token`).
   * @throws {TwitterAuthError} on 401/403; {@link SourceUnavailableError} on network errors, 429, 5xx;
   *   {@link SluiceError} (code `twitter_api`) on other failures.
   */
  async getRules(): Promise<StreamRule[]> {
    const rules: StreamRule[] = [];
    let token: string | undefined;
    for (let page = 0; page < 100; page++) {
      const query: Record<string, string> = token === undefined ? {} : { pagination_token: token };
      const { body } = await this.#rulesRequest('GET', query, undefined, 'listing the stream rules');
      const data = Array.isArray(body.data) ? body.data : [];
      for (const rule of data) {
        if (isRecord(rule) && typeof rule.id === 'string' && typeof rule.value === 'string') {
          rules.push(toRule(rule));
        }
      }
      const meta = isRecord(body.meta) ? body.meta : {};
      token = typeof meta.next_token === 'string' && meta.next_token !== '' ? meta.next_token : undefined;
      if (token === undefined) break;
    }
    return rules;
  }

  /**
   * Adds rules (`POST /2/tweets/search/stream/rules` with `{ add }`); with `dryRun` the server only
   * validates them (`dry_run=true`). Rules the server already has (a `DuplicateRule` error) are not
   * an error and are not returned.
   *
   * @returns the rules created (with `dryRun`, those that would be).
   * @throws {UsageError} when a rule is invalid (an `invalid-rules` error, with HTTP 400 or 200):
   *   the message names each rejected rule and the server's reason; also for other HTTP 400s.
   * @throws {TwitterAuthError} on 401/403; {@link SourceUnavailableError} on network errors, 429, 5xx;
   *   {@link SluiceError} (code `twitter_api`) on other refusals (e.g. the rule cap).
   */
  async addRules(rules: readonly RuleInput[], options: { dryRun?: boolean } = {}): Promise<StreamRule[]> {
    if (rules.length === 0) return [];
    const add = rules.map((r) => (r.tag === undefined ? { value: r.value } : { value: r.value, tag: r.tag }));
    const query: Record<string, string> = options.dryRun ? { dry_run: 'true' } : {};
    const { body } = await this.#rulesRequest('POST', query, { add }, 'adding stream rules');
    const errors = Array.isArray(body.errors) ? body.errors.filter(isRecord) : [];
    const others = errors.filter((e) => !isProblem(e, 'duplicate-rules', 'DuplicateRule'));
    if (others.length > 0) throw this.#rulesError(others, 'adding stream rules');
    const data = Array.isArray(body.data) ? body.data : [];
    return data.filter(isRecord).map(toRule);
  }

  /**
   * Deletes rules by id (`POST /2/tweets/search/stream/rules` with `{ delete: { ids } }`). Ids the
   * server does not know count as `notDeleted`, not as an error (deleting is idempotent).
   * @throws as {@link getRules}.
   */
  async deleteRules(
    ids: readonly string[],
    options: { dryRun?: boolean } = {},
  ): Promise<{ deleted: number; notDeleted: number }> {
    if (ids.length === 0) return { deleted: 0, notDeleted: 0 };
    const query: Record<string, string> = options.dryRun ? { dry_run: 'true' } : {};
    const { body } = await this.#rulesRequest(
      'POST',
      query,
      { delete: { ids: [...ids] } },
      'deleting stream rules',
    );
    const summary = isRecord(body.meta) && isRecord(body.meta.summary) ? body.meta.summary : {};
    const deleted = typeof summary.deleted === 'number' ? summary.deleted : ids.length;
    const notDeleted = typeof summary.not_deleted === 'number' ? summary.not_deleted : 0;
    return { deleted, notDeleted };
  }

  /**
   * Makes the server's rules equal to `wanted` (same values, same tags): deletes the server's other
   * rules (including a wanted value with another tag), then adds the missing ones. Idempotent: when
   * the rules already match, only the `GET` is made.
   *
   * @throws {UsageError} when `wanted` lists one value twice with different tags, or a rule is invalid
   *   (the deletions are then already done: check rules first with `addRules(rules, { dryRun: true })`).
   * @throws as {@link addRules}.
   */
  async syncRules(wanted: readonly RuleInput[]): Promise<RuleSync> {
    const wantedTags = new Map<string, string | undefined>();
    for (const rule of wanted) {
      if (wantedTags.has(rule.value) && wantedTags.get(rule.value) !== rule.tag) {
        throw new UsageError(
          `stream rule ${JSON.stringify(rule.value)} is listed twice with different tags (${JSON.stringify(wantedTags.get(rule.value) ?? null)} and ${JSON.stringify(rule.tag ?? null)})`,
        );
      }
      wantedTags.set(rule.value, rule.tag);
    }
    const current = await this.getRules();
    const kept: StreamRule[] = [];
    const deleted: StreamRule[] = [];
    const present = new Set<string>();
    for (const rule of current) {
      const wantedHere =
        wantedTags.has(rule.value) && (wantedTags.get(rule.value) ?? '') === (rule.tag ?? '');
      if (wantedHere && !present.has(rule.value)) {
        kept.push(rule);
        present.add(rule.value);
      } else {
        deleted.push(rule);
      }
    }
    const missing = [...wantedTags]
      .filter(([value]) => !present.has(value))
      .map(([value, tag]): RuleInput => (tag === undefined ? { value } : { value, tag }));
    if (deleted.length > 0) await this.deleteRules(deleted.map((r) => r.id));
    const added = missing.length > 0 ? await this.addRules(missing) : [];
    this.#logger?.info(
      { added: added.length, deleted: deleted.length, kept: kept.length },
      'twitter stream rules synced',
    );
    return { added, deleted, kept };
  }

  /**
   * Streams the tweets matching the rules (`GET /2/tweets/search/stream`), reconnecting as X documents.
   *
   * The body is `\r\n`-delimited JSON; blank lines are keep-alives and are skipped. Each line
   * `{ data, includes, matching_rules }` yields `{ kind: 'v2', tweet: data, includes, location }`
   * (`matching_rules` is not kept); `location` is `{ source: 'stream:<endpoint URL>', line }` where `line`
   * counts the non-blank lines received by this iteration, across reconnections (1-based). A line that
   * is not a JSON object, has no tweet object, or carries only `errors` yields `{ kind: 'bad', reason, raw }`;
   * an `operational-disconnect` error closes the connection and reconnects instead. A line cut by a
   * disconnection yields a `bad` item too.
   *
   * Reconnection (handling-disconnections page: "once an established connection drops, attempt to
   * reconnect immediately", then back off by error type): after a connection that delivered data (a
   * line, or keep-alives for at least `stallTimeoutMs`) drops, reconnect at once (a wait of 0 ms) and
   * reset the backoff; after a
   * failed one, wait per {@link reconnectDelayMs}: network errors, clean or abrupt closes and stalls
   * (no byte for `stallTimeoutMs`) back off linearly; 5xx/408 and operational disconnects exponentially
   * from 5 s; 429 exponentially from 60 s, and never before `x-rate-limit-reset` (epoch seconds) when
   * the header is present. Every wait goes through the injected `sleep`.
   *
   * The iterator returns when `signal` aborts (during a connection, a read or a wait), or when the
   * consumer stops iterating; the connection is closed in both cases.
   *
   * @throws {TwitterAuthError} on 401/403 (never retried).
   * @throws {UsageError} on 400 (bad fields or expansions) and for a bad `maxReconnects`.
   * @throws {SourceUnavailableError} after `maxReconnects` reconnections all failed; the message says
   *   how many and the last reason.
   * @throws {SluiceError} (code `twitter_api`) on other 4xx statuses.
   */
  async *stream(options: StreamOptions = {}): AsyncIterable<TweetInput> {
    const maxReconnects = options.maxReconnects ?? DEFAULT_MAX_RECONNECTS;
    if (
      !(maxReconnects === Number.POSITIVE_INFINITY || (Number.isInteger(maxReconnects) && maxReconnects >= 0))
    ) {
      throw new UsageError(`maxReconnects must be an integer >= 0 or Infinity, got ${maxReconnects}`);
    }
    const { signal } = options;
    const endpoint = `${this.#base}/2/tweets/search/stream`;
    const query = new URLSearchParams({
      'tweet.fields': (options.tweetFields ?? DEFAULT_TWEET_FIELDS).join(','),
      expansions: (options.expansions ?? DEFAULT_EXPANSIONS).join(','),
      'user.fields': (options.userFields ?? DEFAULT_USER_FIELDS).join(','),
    });
    for (const [key, value] of [...query]) if (value === '') query.delete(key);
    const url = `${endpoint}?${query}`;
    const counter = { line: 0, source: `stream:${endpoint}` };
    const attempts: Record<FailureKind, number> = { network: 0, http: 0, 'rate-limit': 0 };
    let failures = 0;
    while (!signal?.aborted) {
      const ended = yield* this.#connection(url, endpoint, counter, signal);
      if (ended === undefined) return;
      let wait = 0;
      if (ended.succeeded) {
        failures = 0;
        attempts.network = attempts.http = attempts['rate-limit'] = 0;
      } else {
        failures++;
        if (failures > maxReconnects) {
          throw new SourceUnavailableError(
            `the Twitter filtered stream ${endpoint} stayed unavailable: ${failures} connection attempts in a row failed` +
              ` (${maxReconnects} reconnection${maxReconnects === 1 ? '' : 's'} allowed); last: ${ended.reason}`,
            { cause: ended.cause },
          );
        }
        attempts[ended.kind]++;
        wait = reconnectDelayMs(ended.kind, attempts[ended.kind]);
        if (ended.resetAtMs !== undefined) wait = Math.max(wait, ended.resetAtMs - this.#now());
      }
      this.#logger?.warn(
        { endpoint, reason: ended.reason, kind: ended.kind, delayMs: wait, consecutiveFailures: failures },
        'twitter stream disconnected; reconnecting',
      );
      if (await this.#wait(wait, signal)) return;
    }
  }

  /**
   * One connection: yields its items and returns how it ended, or `undefined` when `signal` aborted.
   * Throws for statuses that must not be retried.
   */
  async *#connection(
    url: string,
    endpoint: string,
    counter: { line: number; source: string },
    signal: AbortSignal | undefined,
  ): AsyncGenerator<TweetInput, ConnectionEnd | undefined, undefined> {
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    let stalled = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = true;
        controller.abort();
      }, this.#stallTimeoutMs);
    };
    const disarm = () => clearTimeout(timer);
    const startedAt = this.#now();
    let lastByteAt = startedAt;
    let delivered = 0;
    // Healthy: it delivered a line, or stayed alive on keep-alives for at least one stall period.
    const end = (kind: FailureKind, reason: string, extra: Partial<ConnectionEnd> = {}): ConnectionEnd => ({
      kind,
      reason: this.#scrub(reason),
      succeeded: delivered > 0 || lastByteAt - startedAt >= this.#stallTimeoutMs,
      ...extra,
    });
    const stallReason = `stalled: no data or keep-alive for ${this.#stallTimeoutMs} ms`;
    try {
      if (signal?.aborted) return undefined;
      arm();
      this.#logger?.info({ endpoint }, 'twitter stream connecting');
      let response: Response;
      try {
        response = await this.#fetch(url, { headers: this.#headers(), signal: controller.signal });
      } catch (error) {
        if (signal?.aborted) return undefined;
        return end(
          'network',
          stalled ? `no response within ${this.#stallTimeoutMs} ms` : networkReason(error),
          {
            cause: this.#safeCause(error),
          },
        );
      }
      if (response.status !== 200) {
        let text = '';
        try {
          text = await response.text();
        } catch (error) {
          if (signal?.aborted) return undefined;
          return end('network', stalled ? stallReason : networkReason(error), {
            cause: this.#safeCause(error),
          });
        }
        disarm();
        return this.#statusEnd(response, text, end);
      }
      if (response.body === null) return end('network', 'HTTP 200 without a body');
      const reader = response.body.getReader();
      const decoder = new StreamLineDecoder();
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (error) {
          if (signal?.aborted) return undefined;
          const reason = stalled ? stallReason : `connection lost: ${networkReason(error)}`;
          yield* this.#rest(decoder, counter);
          return end('network', reason, { cause: this.#safeCause(error) });
        }
        if (chunk.done) {
          yield* this.#rest(decoder, counter);
          return end('network', 'the server closed the stream');
        }
        arm();
        lastByteAt = this.#now();
        for (const line of decoder.push(chunk.value)) {
          if (line.trim() === '') continue;
          counter.line++;
          const parsed = parseStreamLine(line, { source: counter.source, line: counter.line });
          if (parsed.kind === 'disconnect') {
            return end('http', `operational disconnect: ${parsed.reason}`);
          }
          for (const item of parsed.items) {
            if (signal?.aborted) return undefined;
            disarm();
            yield this.#scrubItem(item);
            arm();
          }
          delivered++;
        }
      }
    } finally {
      disarm();
      signal?.removeEventListener('abort', onAbort);
      controller.abort();
    }
  }

  /** Yields the unterminated rest of a body cut by a disconnection as a `bad` item. */
  async *#rest(decoder: StreamLineDecoder, counter: { line: number; source: string }) {
    const rest = decoder.end();
    if (rest.trim() === '') return;
    counter.line++;
    yield this.#scrubItem({
      kind: 'bad',
      reason: 'incomplete line: the connection ended before its end (\\r\\n)',
      raw: rest.slice(0, MAX_RAW_CHARS),
      location: { source: counter.source, line: counter.line },
    } satisfies TweetInput);
  }

  /** How a non-200 stream response ends the connection, or the error it throws. */
  #statusEnd(
    response: Response,
    text: string,
    end: (kind: FailureKind, reason: string, extra?: Partial<ConnectionEnd>) => ConnectionEnd,
  ): ConnectionEnd {
    const { status } = response;
    const detail = this.#scrub(problemText(text));
    const what = `HTTP ${status}${response.statusText ? ` ${response.statusText}` : ''}${detail ? ` (${detail})` : ''}`;
    if (status === 401 || status === 403)
      throw authError('connecting to the filtered stream', status, detail);
    if (status === 429) {
      const reset = Number(response.headers.get('x-rate-limit-reset'));
      const extra: Partial<ConnectionEnd> =
        response.headers.get('x-rate-limit-reset') !== null && Number.isFinite(reset) && reset > 0
          ? { resetAtMs: reset * 1000 }
          : {};
      return end('rate-limit', what, extra);
    }
    if (status >= 500 || status === 408) return end('http', what);
    if (status === 400) {
      throw new UsageError(
        `the Twitter filtered stream refused the request: ${what}; check the fields and expansions`,
      );
    }
    throw new SluiceError(`the Twitter filtered stream refused the connection: ${what}`, {
      code: 'twitter_api',
      exitCode: ExitCode.unavailable,
    });
  }

  /** One rules request; returns the parsed body of a 2xx answer, throws for the others. */
  async #rulesRequest(
    method: 'GET' | 'POST',
    query: Record<string, string>,
    payload: unknown,
    what: string,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const search = new URLSearchParams(query).toString();
    const url = `${this.#base}/2/tweets/search/stream/rules${search ? `?${search}` : ''}`;
    const headers: Record<string, string> = this.#headers();
    if (payload !== undefined) headers['content-type'] = 'application/json';
    let status: number;
    let text: string;
    let statusText: string;
    try {
      const response = await this.#fetch(url, {
        method,
        headers,
        ...(payload === undefined ? {} : { body: JSON.stringify(payload) }),
        signal: AbortSignal.timeout(RULES_REQUEST_TIMEOUT_MS),
      });
      status = response.status;
      statusText = response.statusText;
      text = await response.text();
    } catch (error) {
      throw new SourceUnavailableError(`${what} failed: ${this.#scrub(networkReason(error))}`, {
        cause: this.#safeCause(error),
      });
    }
    let body: Record<string, unknown> = {};
    try {
      const parsed: unknown = text === '' ? {} : JSON.parse(text);
      if (isRecord(parsed)) body = parsed;
    } catch {
      // Not JSON (a proxy's error page, for instance): the status decides below.
    }
    if (status >= 200 && status < 300) return { status, body };
    const detail = this.#scrub(problemText(text));
    const described = `HTTP ${status}${statusText ? ` ${statusText}` : ''}${detail ? ` (${detail})` : ''}`;
    if (status === 401 || status === 403) throw authError(what, status, detail);
    if (status === 429 || status >= 500 || status === 408) {
      throw new SourceUnavailableError(`${what} failed: ${described}`);
    }
    const errors = Array.isArray(body.errors) ? body.errors.filter(isRecord) : [];
    const rejected = errors.filter((e) => !isProblem(e, 'duplicate-rules', 'DuplicateRule'));
    if (rejected.length > 0 && status === 400) throw this.#rulesError(rejected, what, true);
    if (status === 400) throw new UsageError(`${what} failed: ${described}`);
    throw new SluiceError(`${what} failed: ${described}`, {
      code: 'twitter_api',
      exitCode: ExitCode.unavailable,
    });
  }

  /**
   * The error for `errors` of a rules answer: a UsageError naming the rules when one is invalid or the
   * answer is a 400, else code `twitter_api` (e.g. `rule-cap`).
   */
  #rulesError(errors: readonly Record<string, unknown>[], what: string, badRequest = false): SluiceError {
    const invalid = badRequest || errors.some((e) => isProblem(e, 'invalid-rules', 'UnprocessableEntity'));
    const describe = (e: Record<string, unknown>) => {
      const details = Array.isArray(e.details) ? e.details.filter((d) => typeof d === 'string') : [];
      const reason = [problemSummary(e), ...details].filter((s) => s !== '').join('; ');
      return typeof e.value === 'string'
        ? `rule ${JSON.stringify(e.value)}: ${reason || 'rejected'}`
        : reason || JSON.stringify(e);
    };
    const message = errors.map(describe).join('; ');
    if (invalid) {
      return new UsageError(
        this.#scrub(`${what}: the API rejected ${errors.length === 1 ? 'a rule' : 'rules'}: ${message}`),
      );
    }
    return new SluiceError(this.#scrub(`${what} failed: ${message}`), {
      code: 'twitter_api',
      exitCode: ExitCode.unavailable,
    });
  }

  #headers(): Record<string, string> {
    return {
      authorization: `Bearer ${this.#token}`,
      'user-agent': 'sluice/0.1 (+https://github.com/sluice)',
    };
  }

  /** Waits `ms`; true when `signal` aborted first (or already had). */
  async #wait(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
    if (signal?.aborted) return true;
    if (this.#sleep === undefined) {
      try {
        await delay(ms, undefined, signal === undefined ? {} : { signal });
        return false;
      } catch (error) {
        if (signal?.aborted) return true;
        throw error;
      }
    }
    if (signal === undefined) {
      await this.#sleep(ms);
      return false;
    }
    let onAbort: () => void = () => {};
    const aborted = new Promise<boolean>((resolve) => {
      onAbort = () => resolve(true);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([this.#sleep(ms).then(() => false), aborted]);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** `text` with every occurrence of the token (raw or URL-decoded) replaced. */
  #scrub(text: string): string {
    let out = text;
    for (const secret of new Set([this.#token, safeDecode(this.#token)])) {
      if (secret !== '') out = out.split(secret).join('[redacted]');
    }
    return out;
  }

  /** A `bad` item's reason and raw text without the token (a server could echo it). */
  #scrubItem(item: TweetInput): TweetInput {
    if (item.kind !== 'bad') return item;
    return { ...item, reason: this.#scrub(item.reason), raw: this.#scrub(item.raw) };
  }

  /** A cause safe to attach: the network error when it does not mention the token, else its scrubbed message. */
  #safeCause(error: unknown): unknown {
    const text = describeError(error);
    return this.#scrub(text) === text ? error : new Error(this.#scrub(text));
  }
}

/** Parses one non-blank line of the stream body. */
export function parseStreamLine(line: string, location: SourceLocation): ParsedLine {
  const bad = (reason: string, at: SourceLocation = location): ParsedLine => ({
    kind: 'items',
    items: [{ kind: 'bad', reason, raw: line.slice(0, MAX_RAW_CHARS), location: at }],
  });
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    return bad(`not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!isRecord(value)) return bad('not a JSON object');
  const includes: V2Includes = isRecord(value.includes) ? (value.includes as V2Includes) : {};
  const { data } = value;
  if (data !== undefined) {
    if (Array.isArray(data)) {
      const items: TweetInput[] = data.map((tweet, index): TweetInput => {
        const at = { ...location, index };
        return isRecord(tweet)
          ? { kind: 'v2', tweet: tweet as V2Tweet, includes, location: at }
          : {
              kind: 'bad',
              reason: '`data` element is not a tweet object',
              raw: line.slice(0, MAX_RAW_CHARS),
              location: at,
            };
      });
      return { kind: 'items', items };
    }
    if (!isRecord(data)) return bad('`data` is not a tweet object');
    return { kind: 'items', items: [{ kind: 'v2', tweet: data as V2Tweet, includes, location }] };
  }
  const errors = Array.isArray(value.errors) ? value.errors.filter(isRecord) : [];
  if (errors.length > 0) {
    const disconnect = errors.find((e) => isProblem(e, 'operational-disconnect', 'operational-disconnect'));
    if (disconnect) return { kind: 'disconnect', reason: problemSummary(disconnect) };
    return bad(`stream error: ${errors.map(problemSummary).join('; ')}`);
  }
  return bad('line has neither `data` (a tweet) nor `errors`');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function toRule(raw: Record<string, unknown>): StreamRule {
  const id = String(raw.id ?? '');
  const value = String(raw.value ?? '');
  return typeof raw.tag === 'string' && raw.tag !== '' ? { id, value, tag: raw.tag } : { id, value };
}

/** Whether an API problem has the given type (`https://api.twitter.com/2/problems/<type>`) or title. */
function isProblem(problem: Record<string, unknown>, type: string, title: string): boolean {
  return (
    (typeof problem.type === 'string' && problem.type.endsWith(`/problems/${type}`)) ||
    (title !== '' && problem.title === title)
  );
}

/** `title: detail` (or `message`) of an API problem. */
function problemSummary(problem: Record<string, unknown>): string {
  const parts = [problem.title, problem.detail ?? problem.message].filter(
    (p): p is string => typeof p === 'string' && p !== '',
  );
  return parts.join(': ');
}

/** A short description of an error body: its problem fields when JSON, else its first 200 characters. */
function problemText(text: string): string {
  try {
    const body: unknown = JSON.parse(text);
    if (isRecord(body)) {
      const errors = Array.isArray(body.errors) ? body.errors.filter(isRecord) : [];
      const parts = [problemSummary(body), ...errors.map(problemSummary)].filter((p) => p !== '');
      if (parts.length > 0) return parts.join('; ');
    }
  } catch {
    // Not JSON.
  }
  return text.trim().slice(0, 200);
}

/** The message chain of a network error (undici: `fetch failed: caused by: connect ECONNREFUSED ...`). */
function networkReason(error: unknown): string {
  return describeError(error);
}

function authError(what: string, status: number, detail: string): TwitterAuthError {
  const why =
    status === 401
      ? 'the bearer token is invalid or revoked'
      : 'the bearer token lacks access to this endpoint (the app must belong to a Project with filtered-stream access)';
  return new TwitterAuthError(
    `${what} failed with HTTP ${status}${detail ? ` (${detail})` : ''}: ${why}; check TWITTER_BEARER_TOKEN (the token is not shown)`,
    status,
  );
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
