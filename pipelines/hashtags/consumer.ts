import os from 'node:os';
import { stringify } from 'csv-stringify/sync';
import type { PipelineContext } from '../../src/core/context.ts';
import { Lease } from '../../src/core/lease.ts';
import type { StreamRecord } from '../../src/core/ports/stream.ts';
import type { RecordCounts } from '../../src/core/run.ts';
import { reconcile } from '../../src/core/run.ts';
import { StreamConsumer } from '../../src/core/stream-consumer.ts';
import type { TweetRecord } from '../../src/sources/twitter/types.ts';
import { CONSUMER, landingKey } from './definition.ts';
import { PRODUCER_TABLE } from './producer.ts';
import { clip, type QuarantineEntry, writeQuarantine } from './quarantine.ts';

/** Records buffered before a landing object is written. */
export const FLUSH_RECORDS = 10_000;
/** Longest time records wait in the buffer before a landing object is written, ms. */
export const FLUSH_INTERVAL_MS = 5_000;
/** Pause between polls when every shard is at its tip, ms (Kinesis allows 5 reads/s per shard). */
export const POLL_INTERVAL_MS = 250;

/** Options of {@link consume}. */
export interface ConsumeOptions {
  readonly runId: string;
  readonly stream: string;
  /** Longest time to read, ms; the consumer stops earlier once the producer is done and drained. */
  readonly maxMs: number;
  /** The producer run whose end ends the consumer (its item in `hashtags_producer_runs`). */
  readonly producerRunId: string;
  /**
   * How long a `failed` producer may still be retried (its Task's Retry), ms: the consumer keeps
   * reading that long after the failure before it takes the failure as final (default 0).
   */
  readonly producerRetryGraceMs?: number;
  /** Milliseconds left before the invocation's timeout; the consumer stops 15 s before. */
  readonly remainingMs?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly signal?: AbortSignal;
}

/** Result of {@link consume}. */
export interface ConsumeResult {
  readonly stream: string;
  /** `read` stream records = `loaded` landing rows + `quarantined` undecodable records. */
  readonly counts: RecordCounts;
  /** Landing objects written, in order. */
  readonly landed: readonly { readonly key: string; readonly records: number; readonly bytes: number }[];
  readonly quarantine: readonly string[];
  /** Why it stopped: the producer finished and every shard was read to its tip, or time ran out. */
  readonly stoppedBecause: 'drained' | 'max-time' | 'invocation-timeout' | 'aborted';
}

/**
 * The landing consumer (REFERENCE.md section 1): reads every shard of the tweet stream from this
 * consumer's checkpoints and writes the records as CSV without a header to
 * `landing/hashtags/YYYY/MM/DD/<stream>-HHMMSS-<first sequence number>.csv`, columns
 * `record_id` (sequence number), `timestamp` (arrival, ISO-8601 UTC), then `created, tweet_id,
 * user_name, rt_count, hashtags, text` (RFC 4180 quoting, so texts with commas, quotes and
 * newlines survive).
 *
 * A landing object is written every 10,000 records or 5 s, and only then are the shards'
 * checkpoints moved past its records: a crash re-reads from the last checkpoint and re-writes the
 * same object key (at-least-once, converging). A record whose data is not a TweetRecord goes to
 * `quarantine/hashtags/land/...` with its sequence number and reason.
 *
 * Unlike the original, which read for a fixed time and could stop before the producer's last
 * records, it stops when the producer of `producerRunId` is `done` (or `failed`) and every shard
 * is read to its tip; `maxMs` and the invocation's remaining time bound it. One consumer per
 * stream at a time (lease `stream-consumer:<stream>`).
 *
 * @throws {LeaseHeldError} when another consumer of the stream is running.
 * @throws {StreamNotFoundError} when the stream does not exist.
 */
export async function consume(ctx: PipelineContext, options: ConsumeOptions): Promise<ConsumeResult> {
  const lease = await Lease.acquire(
    ctx.backend.kv,
    `stream-consumer:${options.stream}`,
    { id: options.runId, host: os.hostname(), pid: process.pid },
    { clock: ctx.clock, isAlive: ctx.backend.isAlive, waitMs: 0 },
  );
  try {
    return await consumeLeased(ctx, options);
  } finally {
    await lease.release();
  }
}

async function consumeLeased(ctx: PipelineContext, options: ConsumeOptions): Promise<ConsumeResult> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const producers = await ctx.backend.kv.table(PRODUCER_TABLE, { hashKey: { name: 'run_id', type: 'S' } });
  const consumer = await StreamConsumer.open({
    stream: ctx.backend.stream,
    kv: ctx.backend.kv,
    streamName: options.stream,
    consumer: CONSUMER,
    startAt: 'TRIM_HORIZON',
  });
  const started = ctx.clock.now().getTime();
  const landed: { key: string; records: number; bytes: number }[] = [];
  const quarantine: string[] = [];
  let read = 0;
  let loaded = 0;
  let quarantined = 0;
  let rows: string[][] = [];
  let bad: QuarantineEntry[] = [];
  /** Last sequence number per shard of the buffered records: checkpointed after the flush. */
  let pending = new Map<string, string>();
  let firstSequence: string | undefined;
  let bufferedSince = 0;
  const task = ctx.progress.start(`land ${options.stream}`, undefined, 'records');

  const flush = async () => {
    if (pending.size === 0) return;
    const at = ctx.clock.now();
    if (rows.length > 0 && firstSequence) {
      const key = landingKey(options.stream, at, firstSequence);
      const body = stringify(rows, { quoted_match: /[\r\n]/, record_delimiter: 'unix' });
      const info = await ctx.backend.objectStore.put({ layer: 'landing', key }, body);
      landed.push({ key, records: rows.length, bytes: info.size });
    }
    const key = await writeQuarantine(ctx, {
      step: 'land',
      runId: options.runId,
      unit: `${options.runId}-${firstSequence ?? 'none'}`,
      entries: bad,
    });
    if (key) quarantine.push(key);
    for (const [shardId, sequenceNumber] of pending) await consumer.checkpoint(shardId, sequenceNumber);
    loaded += rows.length;
    quarantined += bad.length;
    rows = [];
    bad = [];
    pending = new Map();
    firstSequence = undefined;
  };

  let stoppedBecause: ConsumeResult['stoppedBecause'] = 'drained';
  try {
    for (;;) {
      // Read the producer's state before polling: records it put before saying `done` are then
      // surely visible to this poll.
      const producer = await producers.get({ run_id: options.producerRunId });
      const failedAt = producer?.status === 'failed' ? Date.parse(String(producer.updated_at)) : Number.NaN;
      const producerFinished =
        producer?.status === 'done' ||
        (producer?.status === 'failed' &&
          !(ctx.clock.now().getTime() - failedAt < (options.producerRetryGraceMs ?? 0)));
      const batches = await consumer.poll();
      for (const batch of batches) {
        for (const record of batch.records) {
          read++;
          if (!firstSequence) {
            firstSequence = record.sequenceNumber;
            bufferedSince = ctx.clock.now().getTime();
          }
          const decoded = decodeRecord(record);
          if (typeof decoded === 'string') {
            bad.push({
              source: `stream:${options.stream}`,
              index: record.sequenceNumber,
              reason: decoded,
              raw: clip(Buffer.from(record.data).toString('utf8')),
            });
          } else {
            rows.push(landingRow(record, decoded));
          }
          pending.set(batch.shardId, record.sequenceNumber);
        }
      }
      task.update(read);
      const now = ctx.clock.now().getTime();
      if (
        rows.length + bad.length >= FLUSH_RECORDS ||
        (pending.size > 0 && now - bufferedSince >= FLUSH_INTERVAL_MS)
      ) {
        await flush();
      }
      const idle = batches.length === 0;
      if (idle && producerFinished) break;
      if (options.signal?.aborted) {
        stoppedBecause = 'aborted';
        break;
      }
      if (now - started >= options.maxMs) {
        stoppedBecause = 'max-time';
        break;
      }
      if (options.remainingMs && options.remainingMs() < 15_000) {
        stoppedBecause = 'invocation-timeout';
        break;
      }
      if (idle) await sleep(POLL_INTERVAL_MS);
    }
    await flush();
  } finally {
    task.stop();
  }
  const counts: RecordCounts = { read, loaded, duplicates: 0, quarantined };
  reconcile(counts);
  if (stoppedBecause !== 'drained') {
    ctx.logger.warn(
      { stream: options.stream, stoppedBecause },
      'consumer stopped before the producer finished: the rest stays on the stream for the next run',
    );
  }
  return { stream: options.stream, counts, landed, quarantine, stoppedBecause };
}

/** The TweetRecord in a stream record, or the reason it is not one. */
function decodeRecord(record: StreamRecord): TweetRecord | string {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(record.data));
  } catch (error) {
    return `record data is not UTF-8 JSON: ${(error as Error).message}`;
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) return 'record data is not a JSON object';
  const r = value as Record<string, unknown>;
  for (const field of ['created', 'tweet_id', 'user_name', 'hashtags', 'text'] as const) {
    if (typeof r[field] !== 'string') return `record field ${field} is missing or not a string`;
  }
  if (typeof r.rt_count !== 'number' || !Number.isInteger(r.rt_count)) {
    return 'record field rt_count is missing or not an integer';
  }
  return r as unknown as TweetRecord;
}

function landingRow(record: StreamRecord, tweet: TweetRecord): string[] {
  return [
    record.sequenceNumber,
    record.approximateArrivalTimestamp.toISOString(),
    tweet.created,
    tweet.tweet_id,
    tweet.user_name,
    String(tweet.rt_count),
    tweet.hashtags,
    tweet.text,
  ];
}
