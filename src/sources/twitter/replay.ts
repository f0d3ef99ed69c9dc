/**
 * Replaying Twitter capture files as if they were a live stream: the files' inputs in order, paced.
 */

import { systemClock } from '../../core/clock.ts';
import { type ReadTweetFileOptions, readTweetFile } from './files.ts';
import type { TweetInput } from './types.ts';

/** Options of {@link replayFiles}. */
export interface ReplayOptions {
  /**
   * Statuses (`v1`/`v2` inputs) per second; undefined or 0 = as fast as they can be read. Control
   * messages and bad items are not paced (they are not sent on).
   */
  readonly ratePerSecond?: number;
  /** Waits `ms` milliseconds (default: a timer). Injected by tests, which then never wait. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Milliseconds of a monotonic clock (default `performance.now()`). */
  readonly now?: () => number;
  /** Stops the replay: the iteration throws the signal's reason, also from inside a wait. */
  readonly signal?: AbortSignal;
  /** Passed to {@link readTweetFile} for each file (its `signal` is this replay's). */
  readonly read?: Omit<ReadTweetFileOptions, 'signal'>;
}

/**
 * Yields every input of `files`, file after file, in order (see {@link readTweetFile}), pacing the
 * statuses at `ratePerSecond`: status `k` (0-based, counted across all files) is yielded no earlier than
 * `start + k * 1000 / ratePerSecond` ms, where `start` is the clock when the first status is ready.
 * Scheduling against the start time rather than sleeping a fixed time per status keeps the rate
 * without drift, however long reading and the consumer take; a consumer that falls behind gets the
 * backlog at once until it is back on schedule.
 * @throws {RangeError} when `ratePerSecond` is negative or not finite.
 * @throws the signal's reason when `options.signal` aborts (before an item or during a wait); what
 *   {@link readTweetFile} throws (a missing or unknown-format file is a `UsageError` naming it).
 */
export async function* replayFiles(
  files: readonly string[],
  options: ReplayOptions = {},
): AsyncGenerator<TweetInput, void, undefined> {
  const rate = options.ratePerSecond ?? 0;
  if (!Number.isFinite(rate) || rate < 0) {
    throw new RangeError(`ratePerSecond must be a finite number >= 0, got ${rate}`);
  }
  const { signal } = options;
  const now = options.now ?? (() => performance.now());
  const sleep = options.sleep ?? ((ms: number) => systemClock.sleep(ms, signal));
  const intervalMs = rate > 0 ? 1000 / rate : 0;
  let start: number | undefined;
  let statuses = 0;
  for (const file of files) {
    signal?.throwIfAborted();
    for await (const input of readTweetFile(file, { ...options.read, ...(signal ? { signal } : {}) })) {
      signal?.throwIfAborted();
      if (intervalMs > 0 && (input.kind === 'v1' || input.kind === 'v2')) {
        if (start === undefined) start = now();
        const due = start + statuses * intervalMs;
        statuses++;
        const wait = due - now();
        if (wait > 0) await abortable(sleep(wait), signal);
      }
      yield input;
    }
  }
}

/** `promise`, or a rejection with the signal's reason as soon as it aborts. */
async function abortable(promise: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return promise;
  signal.throwIfAborted();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([promise, aborted]);
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}
