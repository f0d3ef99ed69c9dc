/**
 * The notifier port on Amazon SNS: the aws backend's {@link Notifier}. Each alert is one `Publish` to
 * the pipeline stack's topic (e-mail subscription). Not run against AWS: tested with aws-sdk-client-mock
 * against the Publish request shape of https://docs.aws.amazon.com/sns/latest/api/API_Publish.html.
 */
import { PublishCommand, type PublishCommandInput, type SNSClient } from '@aws-sdk/client-sns';
import type { Alert } from '../../core/alert.ts';
import { formatAlert } from '../../core/alert.ts';
import { type Clock, systemClock } from '../../core/clock.ts';
import { describeError, UsageError } from '../../core/errors.ts';
import type { Notifier, NotifyResult } from '../../core/ports/notifier.ts';
import { isTransientAwsError } from './aws-errors.ts';

/** Options of {@link SnsNotifier}. */
export interface SnsNotifierOptions {
  /** ARN of the topic alerts are published to (`arn:aws:sns:<region>:<account>:<name>`). */
  readonly topicArn: string;
  /** Retries after the first attempt when SNS throttles or fails internally (default 3). Integer >= 0. */
  readonly retries?: number;
  /** Backoff base in ms (default 200): the wait before retry `n` (0-based) is `random() * base * 2^n`. */
  readonly baseDelayMs?: number;
  /** Clock for the waits between retries (default {@link systemClock}). */
  readonly clock?: Clock;
  /** Randomness in [0, 1) for the backoff jitter (default `Math.random`). */
  readonly random?: () => number;
}

/** The channel name {@link SnsNotifier} reports in {@link NotifyResult}. */
export const SNS_CHANNEL = 'sns';
/** SNS `Subject`: "less than 100 characters long" (API_Publish). */
export const MAX_SUBJECT_CHARS = 99;
/** SNS message size limit: 256 KiB (262,144 bytes) of UTF-8 (API_Publish). */
export const MAX_MESSAGE_BYTES = 262_144;
/** The line that separates the readable text from the alert's JSON in a message. */
export const JSON_MARKER = '-- sluice alert (JSON) --';

/** Errors SNS answers for throttling or transient failure (retried; https://docs.aws.amazon.com/sns/latest/api/CommonErrors.html). */
const TRANSIENT = new Set([
  'ThrottledException',
  'Throttling',
  'ThrottlingException',
  'KMSThrottlingException',
  'InternalErrorException',
  'InternalFailure',
  'ServiceUnavailable',
  'RequestTimeout',
  'TimeoutError',
]);

/**
 * {@link Notifier} on SNS. `notify(alert)` publishes:
 *
 * - `Subject`: `[SEVERITY] <pipeline>: <title>` as ASCII ({@link snsSubject}): accents dropped, typographic
 *   quotes and dashes replaced, other characters `?`, line breaks and controls as spaces, cut at a word
 *   to at most {@link MAX_SUBJECT_CHARS} characters with `...`.
 * - `Message`: {@link formatAlert}'s text, a blank line, {@link JSON_MARKER}, then the alert as one line
 *   of JSON ({@link snsMessage}); a subscriber reads the alert back with {@link parseSnsAlert}.
 * - `MessageAttributes`: `severity` and `pipeline` as `String` attributes (filter policies can route on them).
 *
 * Throttling and internal errors are retried `retries` times (full-jitter backoff on the injected
 * clock) on top of the SDK's own retries; other errors fail at once. Never rejects: the outcome is
 * `{ delivered: ['sns'] }` or `{ failed: [{ channel: 'sns', error }] }` (the error names the topic).
 */
export class SnsNotifier implements Notifier {
  private readonly retries: number;
  private readonly baseDelayMs: number;
  private readonly clock: Clock;
  private readonly random: () => number;

  /** @throws {UsageError} when the topic ARN is not an SNS topic ARN or an option is out of range. */
  constructor(
    private readonly client: SNSClient,
    private readonly options: SnsNotifierOptions,
  ) {
    if (!/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$/.test(options.topicArn)) {
      throw new UsageError(
        `topicArn must be an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>), got "${options.topicArn}"`,
      );
    }
    this.retries = options.retries ?? 3;
    this.baseDelayMs = options.baseDelayMs ?? 200;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    if (!Number.isInteger(this.retries) || this.retries < 0) {
      throw new UsageError(`retries must be an integer >= 0, got ${this.retries}`);
    }
    if (!Number.isFinite(this.baseDelayMs) || this.baseDelayMs < 0) {
      throw new UsageError(`baseDelayMs must be a number of ms >= 0, got ${this.baseDelayMs}`);
    }
  }

  /** The `Publish` input of an alert (exported for tests and the CDK side's documentation). */
  publishInput(alert: Alert): PublishCommandInput {
    return {
      TopicArn: this.options.topicArn,
      Subject: snsSubject(alert),
      Message: snsMessage(alert),
      MessageAttributes: {
        severity: { DataType: 'String', StringValue: alert.severity },
        pipeline: { DataType: 'String', StringValue: alert.pipeline || '-' },
      },
    };
  }

  /** Publishes `alert`; never rejects (see {@link SnsNotifier}). */
  async notify(alert: Alert): Promise<NotifyResult> {
    let input: PublishCommandInput;
    try {
      input = this.publishInput(alert);
    } catch (error) {
      return { delivered: [], failed: [{ channel: SNS_CHANNEL, error: describeError(error) }] };
    }
    const attempts = this.retries + 1;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.send(new PublishCommand(input));
        return { delivered: [SNS_CHANNEL], failed: [] };
      } catch (error) {
        const name = (error as { name?: string })?.name ?? '';
        const transient = isTransientAwsError(error, TRANSIENT);
        if (!transient || attempt >= attempts) {
          const what = transient
            ? `failed after ${attempts} attempt${attempts === 1 ? '' : 's'}`
            : 'refused the alert';
          return {
            delivered: [],
            failed: [
              {
                channel: SNS_CHANNEL,
                error: `SNS topic ${this.options.topicArn} ${what}: ${name ? `${name}: ` : ''}${describeError(error)}`,
              },
            ],
          };
        }
        await this.clock.sleep(Math.floor(this.random() * this.baseDelayMs * 2 ** (attempt - 1)));
      }
    }
  }
}

/** Typographic characters with an ASCII equivalent. */
const ASCII_LOOKALIKES: Readonly<Record<string, string>> = {
  '\u2018': "'",
  '\u2019': "'",
  '\u201a': "'",
  '\u201b': "'",
  '\u201c': '"',
  '\u201d': '"',
  '\u201e': '"',
  '\u2013': '-',
  '\u2014': '-',
  '\u2015': '-',
  '\u2212': '-',
  '\u2026': '...',
  '\u00a0': ' ',
  '\u00df': 'ss',
  '\u00e6': 'ae',
  '\u00c6': 'AE',
  '\u00f8': 'o',
  '\u00d8': 'O',
};

/** `text` as printable ASCII: lookalikes mapped, accents dropped, controls as spaces, others `?`. */
export function toAscii(text: string): string {
  let out = '';
  for (const ch of text.normalize('NFKD')) {
    const code = ch.codePointAt(0) ?? 0;
    if (code >= 0x300 && code <= 0x36f) continue; // combining accents of NFKD
    if (ASCII_LOOKALIKES[ch] !== undefined) out += ASCII_LOOKALIKES[ch];
    else if (code < 0x20 || code === 0x7f) out += ' ';
    else if (code < 0x7f) out += ch;
    else out += '?';
  }
  return out.replace(/\s+/g, ' ').trim();
}

/**
 * The SNS `Subject` of an alert: `[SEVERITY] <pipeline>: <title>` in printable ASCII ({@link toAscii}),
 * at most {@link MAX_SUBJECT_CHARS} characters: a longer one is cut at the last space in the limit
 * (or hard when there is none) and ends with `...`. Starts with `[`, a punctuation mark, as SNS requires.
 */
export function snsSubject(alert: Pick<Alert, 'severity' | 'pipeline' | 'title'>): string {
  const full = toAscii(`[${alert.severity.toUpperCase()}] ${alert.pipeline}: ${alert.title}`);
  if (full.length <= MAX_SUBJECT_CHARS) return full;
  const room = MAX_SUBJECT_CHARS - 3;
  const cut = full.slice(0, room + 1);
  const space = cut.lastIndexOf(' ');
  return `${(space > room / 2 ? cut.slice(0, space) : full.slice(0, room)).trimEnd()}...`;
}

/**
 * The SNS `Message` of an alert: {@link formatAlert}'s text, a blank line, {@link JSON_MARKER} and the
 * alert as one line of JSON. When that exceeds {@link MAX_MESSAGE_BYTES}, the text part is cut, then the
 * JSON's `cause` and `details` (marked `truncated: true` in `details`).
 */
export function snsMessage(alert: Alert): string {
  const compose = (text: string, json: Alert) => `${text}\n\n${JSON_MARKER}\n${JSON.stringify(json)}`;
  let message = compose(formatAlert(alert), alert);
  if (Buffer.byteLength(message) <= MAX_MESSAGE_BYTES) return message;
  const header = `[${alert.severity.toUpperCase()}] ${alert.title}\n  pipeline: ${alert.pipeline}\n  (text cut: see the JSON below)`;
  message = compose(header, alert);
  if (Buffer.byteLength(message) <= MAX_MESSAGE_BYTES) return message;
  const { cause, details, ...rest } = alert;
  const budget =
    MAX_MESSAGE_BYTES - Buffer.byteLength(compose(header, { ...rest, details: { truncated: true } })) - 64;
  const shortCause = cause === undefined ? undefined : cutBytes(cause, Math.max(0, budget));
  return compose(header, {
    ...rest,
    ...(shortCause === undefined ? {} : { cause: shortCause }),
    details: { truncated: true },
  });
}

function cutBytes(text: string, bytes: number): string {
  const buffer = Buffer.from(text);
  if (buffer.length <= bytes) return text;
  // Drop a partial UTF-8 character at the cut.
  return buffer
    .subarray(0, bytes)
    .toString('utf8')
    .replace(/\uFFFD$/, '');
}

/**
 * The alert in an SNS message written by {@link snsMessage} (for an e-mail or SQS subscriber), or
 * `undefined` when the message has no sluice JSON part.
 */
export function parseSnsAlert(message: string): Alert | undefined {
  const at = message.lastIndexOf(`\n${JSON_MARKER}\n`);
  if (at < 0) return undefined;
  try {
    const value = JSON.parse(message.slice(at + JSON_MARKER.length + 2)) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Alert)
      : undefined;
  } catch {
    return undefined;
  }
}
