/**
 * Following a key-value table's change stream, the way a Lambda event-source mapping follows a
 * DynamoDB stream: poll, hand each batch to a handler in order, advance only once the handler
 * succeeded, retry a failed batch (at-least-once delivery).
 */
import type { Clock } from './clock.ts';
import type { ChangeRecord, KvTable, StreamPosition } from './ports/kv-table.ts';

/** Poll interval of {@link tailChanges} when the stream has nothing new, in ms. */
export const DEFAULT_TAIL_POLL_MS = 200;

/** Options of {@link tailChanges}. */
export interface TailOptions {
  /** Where to start: `TRIM_HORIZON`, `LATEST`, or the position a previous tail returned. */
  readonly from: StreamPosition;
  /** Waits between polls (`clock.sleep`), so tests drive time. */
  readonly clock: Clock;
  /** Wait after a poll that found nothing new, or after a failed batch, in ms (default 200). */
  readonly pollMs?: number;
  /** Stops the tail: it resolves with the position reached once the current step ends. */
  readonly signal?: AbortSignal;
  /** Read size of each poll (`readChanges` `limit`; default the backend's, 1,000). */
  readonly batchSize?: number;
  /**
   * Receives each batch of records, oldest first, never empty. When it throws (or rejects), the
   * tail does not advance: it waits `pollMs` and delivers the same batch again, until it succeeds
   * or the signal aborts, so a handler sees every record at least once and must be idempotent.
   */
  onRecords(records: ChangeRecord[]): Promise<void> | void;
}

/**
 * Follows `table`'s change stream from `options.from` until `options.signal` aborts: reads with
 * {@link KvTable.readChanges}, passes each non-empty batch to `onRecords` in stream order, reads
 * again at once after a batch (catching up), and sleeps `pollMs` on the clock when nothing is new.
 *
 * @returns the position after the last batch `onRecords` accepted (a `LATEST` start resolved to a
 *   concrete position once read), to resume from later without loss or repetition; `from` when
 *   the signal was aborted before the first read.
 * @throws {Error} what `readChanges` throws (no stream on the table, data trimmed by retention,
 *   backend failures), and what `clock.sleep` throws other than the abort; `onRecords` errors
 *   are retried, never thrown.
 */
export async function tailChanges(table: KvTable, options: TailOptions): Promise<StreamPosition> {
  const { clock, signal, onRecords } = options;
  const pollMs = options.pollMs ?? DEFAULT_TAIL_POLL_MS;
  if (!Number.isFinite(pollMs) || pollMs < 0) {
    throw new Error(`tailChanges: pollMs must be a non-negative number of ms, got ${pollMs}`);
  }
  const readOptions = options.batchSize === undefined ? {} : { limit: options.batchSize };
  let position = options.from;
  /** A batch `onRecords` rejected, with the position after it; delivered again before reading on. */
  let pending: { records: ChangeRecord[]; next: StreamPosition } | undefined;

  /** Sleeps `pollMs`; false when the signal aborted (before or during the sleep). */
  const pause = async (): Promise<boolean> => {
    if (signal?.aborted) return false;
    try {
      await clock.sleep(pollMs, signal);
    } catch (error) {
      if (signal?.aborted) return false;
      throw error;
    }
    return !signal?.aborted;
  };

  while (!signal?.aborted) {
    let batch = pending;
    if (batch === undefined) {
      const read = await table.readChanges(position, readOptions);
      if (read.records.length === 0) {
        position = read.next;
        if (!(await pause())) break;
        continue;
      }
      batch = read;
    }
    try {
      await onRecords(batch.records.slice()); // a copy: a retry gets the batch unaltered
    } catch {
      // At-least-once: keep the position, deliver the same batch after a pause.
      pending = batch;
      if (!(await pause())) break;
      continue;
    }
    pending = undefined;
    position = batch.next;
  }
  return position;
}
