/**
 * The local {@link Notifier}: alerts go to the console, to a JSON-lines file under the sluice home
 * (`<home>/alerts.ndjson`) and, optionally, to a webhook. The AWS backend publishes to an SNS topic
 * instead (e-mail subscription); both satisfy test/conformance/notifier.case.ts.
 */
import { appendFile, mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Alert } from '../../core/alert.ts';
import { formatAlert } from '../../core/alert.ts';
import { type Clock, systemClock } from '../../core/clock.ts';
import { describeError, SluiceError, UsageError } from '../../core/errors.ts';
import type { Notifier, NotifyResult } from '../../core/ports/notifier.ts';

/** Name of a channel of {@link LocalNotifier}, as reported in {@link NotifyResult}. */
export type LocalChannel = 'console' | 'file' | 'webhook';

/** Options of {@link LocalNotifier}. Every channel is independent and optional. */
export interface LocalNotifierOptions {
  /**
   * Path of the JSON-lines alert file (by convention `<home>/alerts.ndjson`); its directory is
   * created when missing. Omitted: no file channel.
   */
  file?: string;
  /**
   * An `http://` or `https://` URL receiving each alert as a JSON POST (e.g. a Slack incoming
   * webhook). May carry a token in its path or query, or `user:password@`: only its origin ever
   * appears in errors. Omitted: no webhook channel.
   */
  webhookUrl?: string;
  /** `true` (default): write to `process.stderr`; `false`: no console channel; a stream: write there. */
  console?: boolean | NodeJS.WritableStream;
  /** Clock used for the waits between webhook retries (default {@link systemClock}). */
  clock?: Clock;
  /** Webhook retries after the first attempt (default 3, so at most 4 requests). Integer >= 0. */
  retries?: number;
  /** Webhook backoff base in ms (default 500): the wait before retry `n` (0-based) is `random() * base * 2^n`. */
  baseDelayMs?: number;
  /** Timeout in ms of one webhook attempt, response body included (default 5,000). A timeout is retried. */
  timeoutMs?: number;
  /** Source of randomness in [0, 1) for the backoff jitter (default `Math.random`). */
  random?: () => number;
}

const DEFAULT_RETRIES = 3;
const DEFAULT_BASE_DELAY_MS = 500;
const DEFAULT_TIMEOUT_MS = 5_000;
/** Bytes of a failed webhook response's body quoted in the error. */
const BODY_SNIPPET_BYTES = 512;
const USER_AGENT = 'sluice/0.1 (+https://github.com/sluice)';

/** Outcome of one webhook attempt. */
type Attempt = { ok: true } | { ok: false; retryable: boolean; reason: string };

/**
 * A webhook target: the URL to POST to (without credentials), the headers (credentials moved into
 * `Authorization: Basic`), the origin that errors may name, and a function that removes every
 * other part of the URL from a text.
 */
interface Webhook {
  readonly target: string;
  readonly origin: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly redact: (text: string) => string;
}

/**
 * Delivers alerts locally, mirroring the AWS backend's SNS topic. Channels, in the order reported:
 *
 * - `console`: {@link formatAlert} plus a newline, written to a stream (default `process.stderr`).
 *   The stream's `error` events stay the stream owner's business.
 * - `file`: one JSON line per alert appended to `options.file` with a single `appendFile` call
 *   (`O_APPEND`), so concurrent notifiers, in this process or others, never interleave partial
 *   lines. Read it back with {@link readAlerts}.
 * - `webhook`: POST `{ "alert": <Alert>, "text": formatAlert(alert) }` with
 *   `content-type: application/json` (Slack-compatible incoming webhooks show `text`). Any 2xx
 *   delivers. Network errors, timeouts (`timeoutMs` per attempt), 429 and 5xx are retried up to
 *   `retries` times after waiting `random() * baseDelayMs * 2^n` ms (full jitter) on the injected
 *   clock; any other status fails at once. Errors name the URL's origin only.
 *
 * Channels run concurrently; {@link LocalNotifier.notify} never rejects.
 */
export class LocalNotifier implements Notifier {
  readonly #console: NodeJS.WritableStream | undefined;
  readonly #file: string | undefined;
  readonly #webhook: Webhook | undefined;
  readonly #clock: Clock;
  readonly #retries: number;
  readonly #baseDelayMs: number;
  readonly #timeoutMs: number;
  readonly #random: () => number;

  /**
   * @throws {UsageError} when `webhookUrl` is not an http(s) URL (the message does not repeat it),
   *   or `retries`, `baseDelayMs` or `timeoutMs` is out of range.
   */
  constructor(options: LocalNotifierOptions = {}) {
    const consoleOption = options.console ?? true;
    this.#console =
      consoleOption === true ? process.stderr : consoleOption === false ? undefined : consoleOption;
    this.#file = options.file;
    this.#webhook = options.webhookUrl === undefined ? undefined : parseWebhook(options.webhookUrl);
    this.#clock = options.clock ?? systemClock;
    this.#retries = options.retries ?? DEFAULT_RETRIES;
    this.#baseDelayMs = options.baseDelayMs ?? DEFAULT_BASE_DELAY_MS;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#random = options.random ?? Math.random;
    if (!Number.isInteger(this.#retries) || this.#retries < 0) {
      throw new UsageError(`retries must be an integer >= 0, got ${this.#retries}`);
    }
    if (!Number.isFinite(this.#baseDelayMs) || this.#baseDelayMs < 0) {
      throw new UsageError(`baseDelayMs must be a number of ms >= 0, got ${this.#baseDelayMs}`);
    }
    if (!Number.isFinite(this.#timeoutMs) || this.#timeoutMs <= 0) {
      throw new UsageError(`timeoutMs must be a number of ms > 0, got ${this.#timeoutMs}`);
    }
  }

  /** The configured channels, in the order {@link LocalNotifier.notify} reports them. */
  get channels(): readonly LocalChannel[] {
    const channels: LocalChannel[] = [];
    if (this.#console) channels.push('console');
    if (this.#file !== undefined) channels.push('file');
    if (this.#webhook) channels.push('webhook');
    return channels;
  }

  /**
   * Delivers `alert` to every configured channel concurrently. Resolves with the channels that have
   * it in `delivered` and the others in `failed` with a one-line reason (for the webhook: the
   * origin, the attempts and the last status or network error); never rejects.
   */
  async notify(alert: Alert): Promise<NotifyResult> {
    const channels = this.channels;
    const outcomes = await Promise.allSettled(channels.map((channel) => this.#deliver(channel, alert)));
    const delivered: string[] = [];
    const failed: { channel: string; error: string }[] = [];
    outcomes.forEach((outcome, i) => {
      const channel = channels[i]!;
      if (outcome.status === 'fulfilled') delivered.push(channel);
      else failed.push({ channel, error: this.#describe(channel, outcome.reason) });
    });
    return { delivered, failed };
  }

  async #deliver(channel: LocalChannel, alert: Alert): Promise<void> {
    switch (channel) {
      case 'console':
        return writeTo(this.#console!, `${formatAlert(alert)}\n`);
      case 'file': {
        const line = `${JSON.stringify(alert)}\n`;
        await mkdir(dirname(this.#file!), { recursive: true });
        // One appendFile call of a complete line: opened with O_APPEND, written whole.
        await appendFile(this.#file!, line, 'utf8');
        return;
      }
      case 'webhook':
        return this.#post(this.#webhook!, alert);
    }
  }

  #describe(channel: LocalChannel, error: unknown): string {
    const text = describeError(error);
    return channel === 'webhook' && this.#webhook ? this.#webhook.redact(text) : text;
  }

  async #post(webhook: Webhook, alert: Alert): Promise<void> {
    const body = JSON.stringify({ alert, text: formatAlert(alert) });
    const attempts = this.#retries + 1;
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.#attempt(webhook, body);
      if (outcome.ok) return;
      if (!outcome.retryable) {
        throw new SluiceError(`webhook ${webhook.origin} refused the alert: ${outcome.reason}`, {
          code: 'webhook_refused',
        });
      }
      if (attempt >= attempts) {
        throw new SluiceError(
          `webhook ${webhook.origin} failed after ${attempts} attempt${attempts === 1 ? '' : 's'}; last error: ${outcome.reason}`,
          { code: 'webhook_unavailable', retryable: true },
        );
      }
      const cap = this.#baseDelayMs * 2 ** (attempt - 1);
      await this.#clock.sleep(Math.floor(this.#random() * cap));
    }
  }

  async #attempt(webhook: Webhook, body: string): Promise<Attempt> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.#timeoutMs);
    try {
      const response = await fetch(webhook.target, {
        method: 'POST',
        headers: webhook.headers,
        body,
        signal: controller.signal,
      });
      if (response.ok) {
        await response.body?.cancel();
        return { ok: true };
      }
      const snippet = webhook.redact(await readSnippet(response));
      const status = `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
      return {
        ok: false,
        retryable: response.status === 429 || response.status >= 500,
        reason: snippet ? `${status}: ${snippet}` : status,
      };
    } catch (error) {
      if (controller.signal.aborted) {
        return { ok: false, retryable: true, reason: `no response within ${this.#timeoutMs} ms` };
      }
      // fetch rejects only for network failures here (the request itself was validated up front).
      return { ok: false, retryable: true, reason: webhook.redact(describeError(error)) };
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Writes `text` to `stream`, resolving when the stream accepted it. */
function writeTo(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    stream.write(text, (error) => (error ? reject(error) : resolve()));
  });
}

/** The first {@link BODY_SNIPPET_BYTES} bytes of a response body as one line; the rest is discarded. */
async function readSnippet(response: Response): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < BODY_SNIPPET_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const text = Buffer.concat(chunks).subarray(0, BODY_SNIPPET_BYTES).toString('utf8');
  return text.replace(/\s+/g, ' ').trim().slice(0, 200);
}

/**
 * Validates a webhook URL and splits it into what is sent and what may be shown.
 * @throws {UsageError} when it is not an absolute http(s) URL; the message does not repeat it.
 */
function parseWebhook(raw: string): Webhook {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError('webhookUrl is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`webhookUrl must be an http:// or https:// URL, got a ${url.protocol} URL`);
  }
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': USER_AGENT,
  };
  const username = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  if (url.username || url.password) {
    // fetch refuses URLs with credentials; send them as HTTP Basic authentication instead.
    headers.authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  }
  const secrets = new Set<string>([raw, url.href]);
  for (const part of [url.pathname + url.search + url.hash, url.pathname, url.search, url.hash]) {
    if (part.length > 1) secrets.add(part);
  }
  for (const part of [url.username, url.password, username, password]) if (part) secrets.add(part);
  for (const value of url.searchParams.values()) if (value) secrets.add(value);
  for (const secret of [...secrets]) {
    try {
      secrets.add(decodeURIComponent(secret));
    } catch {
      // Not percent-decodable: the raw form is redacted already.
    }
  }
  // Longest first, so a whole URL is replaced before its parts.
  const ordered = [...secrets].sort((a, b) => b.length - a.length);
  url.username = '';
  url.password = '';
  const origin = url.origin;
  return {
    target: url.href,
    origin,
    headers,
    redact: (text) => {
      let out = text;
      for (const secret of ordered) out = out.split(secret).join('[redacted]');
      return out;
    },
  };
}

/**
 * Alerts read by {@link readAlerts}, oldest first. `malformed` (not enumerable, so the list still
 * compares and serialises as a plain array) counts the non-empty lines that were skipped because
 * they are not JSON or not an {@link Alert}, e.g. a line cut short when a process died mid-write.
 */
export interface AlertList extends Array<Alert> {
  readonly malformed: number;
}

/**
 * Reads the alert file written by the `file` channel of {@link LocalNotifier}: every well-formed
 * alert, newest last; with `limit`, only the last `limit` of them. Blank lines are ignored;
 * malformed lines are skipped and counted in {@link AlertList.malformed}. A missing file is an
 * empty list.
 *
 * @throws {UsageError} when `limit` is not an integer >= 0.
 * @throws the file system's error when the file exists but cannot be read (e.g. `EACCES`, `EISDIR`).
 */
export async function readAlerts(file: string, options: { limit?: number } = {}): Promise<AlertList> {
  const limit = options.limit;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) {
    throw new UsageError(`limit must be an integer >= 0, got ${limit}`);
  }
  const alerts: Alert[] = [];
  let malformed = 0;
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return toAlertList(alerts, 0);
    throw error;
  }
  try {
    for await (const raw of handle.readLines({ encoding: 'utf8', autoClose: false })) {
      const line = raw.trim();
      if (line === '') continue;
      const alert = parseAlert(line);
      if (alert === undefined) {
        malformed++;
        continue;
      }
      alerts.push(alert);
      if (limit !== undefined && alerts.length > limit) alerts.shift();
    }
  } finally {
    await handle.close();
  }
  return toAlertList(alerts, malformed);
}

function toAlertList(alerts: Alert[], malformed: number): AlertList {
  return Object.defineProperty(alerts, 'malformed', { value: malformed, enumerable: false }) as AlertList;
}

const SEVERITIES: ReadonlySet<string> = new Set(['info', 'warning', 'error']);
const OPTIONAL_STRINGS = ['workflow', 'executionId', 'state', 'error', 'cause'] as const;

/** The alert on one JSON line, or `undefined` when the line is not JSON or not alert-shaped. */
function parseAlert(line: string): Alert | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const record = value as Record<string, unknown>;
  if (typeof record.severity !== 'string' || !SEVERITIES.has(record.severity)) return undefined;
  for (const key of ['title', 'pipeline', 'at'] as const) {
    if (typeof record[key] !== 'string') return undefined;
  }
  for (const key of OPTIONAL_STRINGS) {
    if (record[key] !== undefined && typeof record[key] !== 'string') return undefined;
  }
  const details = record.details;
  if (details !== undefined && (typeof details !== 'object' || details === null || Array.isArray(details))) {
    return undefined;
  }
  return record as unknown as Alert;
}
