/**
 * A bounded drain of a stream (the StreamStore port: Kinesis semantics) into a stream job, the
 * serverless stand-in for a Flink job reading Kinesis continuously: each invocation (a scheduled
 * function, or the Lambda event-source-mapping analog) restores the job from its last checkpoint,
 * reads every shard after the checkpoint's positions, and saves one new checkpoint at the end. A
 * sequence of invocations then behaves as one continuous job:
 *
 * - state exactly once: the checkpoint holds the engine's state and, per shard, the sequence
 *   number of the last record whose effects that state contains (the source's split positions,
 *   split = shard id); the next invocation resumes `AFTER_SEQUENCE_NUMBER` of it (`TRIM_HORIZON`
 *   for a shard without one). Flink's Kinesis consumer keeps the same per-shard sequence numbers in
 *   its checkpoints
 *   (https://nightlies.apache.org/flink/flink-docs-stable/docs/connectors/datastream/kinesis/).
 * - outputs: the job's sinks buffer; {@link drainStream} calls `flush` (write them) before saving
 *   the checkpoint. A crash between the two re-reads the same records from the previous
 *   checkpoint, and a deterministic job re-emits the same outputs, so sinks must be idempotent
 *   (write by a deterministic id) for end-to-end exactly once; otherwise at least once.
 *
 * Processing time: `periodicEmit()` of the job runs after each round of reads, on the injected clock
 * (idleness detection). The drain stops when every shard is caught up (a read returned no record
 * and `millisBehindLatest` 0) or after `maxMs` of that clock, or when `shouldStop()` says so (a
 * Lambda's remaining time).
 */
import type { Clock } from '../../core/clock.ts';
import { ExpiredIteratorError, type StreamRecord, type StreamStore } from '../../core/ports/stream.ts';
import type { CheckpointStore } from './checkpoint-store.ts';
import type { Checkpoint } from './data-stream.ts';

/** What {@link drainStream} drives. */
export interface DrainableJob {
  /** Restores a checkpoint into the fresh job (before any record). */
  restore(checkpoint: Checkpoint): void;
  /** Pushes one record of `shardId` (its `sequenceNumber` is the split position). */
  collect(record: StreamRecord, shardId: string): void;
  /** The periodic watermark emission (processing time). */
  periodicEmit(): void;
  /** A checkpoint of the job; its source `source` holds the positions per shard. */
  snapshot(): Checkpoint;
}

/** Options of {@link drainStream}. */
export interface DrainOptions {
  readonly stream: StreamStore;
  readonly streamName: string;
  /** Where the job's checkpoint is kept, and under which name. */
  readonly checkpoints: CheckpointStore;
  readonly jobName: string;
  /** The job's source fed from the stream: its positions in the checkpoint are the shards' sequence numbers. */
  readonly source: string;
  /** A fresh job, built as the one that took the checkpoint; the drain restores it. */
  readonly job: DrainableJob;
  /**
   * Called after the restore, before the first read (`checkpoint`: the restored one, undefined
   * on the first run): feed other inputs first, e.g. a control stream's changes.
   */
  readonly prepare?: (checkpoint: Checkpoint | undefined) => Promise<void>;
  readonly clock: Clock;
  /** Longest drain on `clock`, ms. */
  readonly maxMs: number;
  /** Records per `getRecords` (default 1,000). */
  readonly limitPerShard?: number;
  /** Stops the drain early (checked after each round). */
  readonly shouldStop?: () => boolean;
  /** Writes what the sinks buffered; called once, before the checkpoint is saved. */
  readonly flush: () => Promise<void>;
  /** Called after `flush`, before the save (tests inject a crash here). */
  readonly beforeSave?: () => Promise<void>;
}

/** What one drain did. */
export interface DrainResult {
  /** Records read (and pushed), per shard and in total. */
  readonly records: number;
  readonly perShard: Readonly<Record<string, number>>;
  /** Positions the drain started after (`undefined`: `TRIM_HORIZON`). */
  readonly from: Readonly<Record<string, string | undefined>>;
  /** Positions of the saved checkpoint. */
  readonly to: Readonly<Record<string, string | undefined>>;
  /** Id of the restored checkpoint (0 for none) and of the saved one. */
  readonly restoredCheckpoint: number;
  readonly savedCheckpoint: number;
  readonly stoppedBecause: 'caught_up' | 'max_time' | 'stopped';
}

/** Drains `streamName` into a job restored from its checkpoint, then checkpoints it. See the module doc. */
export async function drainStream(options: DrainOptions): Promise<DrainResult> {
  const { stream, streamName, clock } = options;
  const restored = await options.checkpoints.load(options.jobName);
  const { job } = options;
  if (restored !== undefined) job.restore(restored);
  await options.prepare?.(restored);
  const positions = restored?.sources[options.source]?.positions ?? {};

  const description = await stream.describeStream(streamName);
  const shards = description.shards.map((s) => {
    const at = positions[s.shardId];
    return {
      shardId: s.shardId,
      after: at === undefined ? undefined : String(at),
      iterator: undefined as string | undefined,
      caughtUp: false,
      ended: false,
      read: 0,
    };
  });
  const from = Object.fromEntries(shards.map((s) => [s.shardId, s.after]));
  const iteratorOf = (shard: (typeof shards)[number]) =>
    stream.getShardIterator(
      streamName,
      shard.shardId,
      shard.after === undefined
        ? { type: 'TRIM_HORIZON' }
        : { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: shard.after },
    );
  const limit = options.limitPerShard ?? 1000;
  const started = clock.now().getTime();
  let stoppedBecause: DrainResult['stoppedBecause'];
  for (;;) {
    for (const shard of shards) {
      if (shard.ended) continue;
      shard.iterator ??= await iteratorOf(shard);
      let read: Awaited<ReturnType<StreamStore['getRecords']>>;
      try {
        read = await stream.getRecords(shard.iterator, { limit });
      } catch (error) {
        if (!(error instanceof ExpiredIteratorError)) throw error;
        shard.iterator = await iteratorOf(shard);
        read = await stream.getRecords(shard.iterator, { limit });
      }
      for (const record of read.records) {
        job.collect(record, shard.shardId);
        shard.after = record.sequenceNumber;
        shard.read++;
      }
      shard.caughtUp = read.records.length === 0 && read.millisBehindLatest === 0;
      if (read.nextShardIterator === null) shard.ended = true;
      else shard.iterator = read.nextShardIterator;
    }
    job.periodicEmit();
    if (shards.every((s) => s.ended || s.caughtUp)) {
      stoppedBecause = 'caught_up';
      break;
    }
    if (clock.now().getTime() - started >= options.maxMs) {
      stoppedBecause = 'max_time';
      break;
    }
    if (options.shouldStop?.()) {
      stoppedBecause = 'stopped';
      break;
    }
  }

  // Outputs first, then the checkpoint: a crash in between re-reads from the previous checkpoint.
  await options.flush();
  await options.beforeSave?.();
  const checkpoint = job.snapshot();
  // Every record read is accounted for, also one the job rejected (not an element, so not a
  // position of the engine's source): the next drain resumes after the last record read.
  const sourceState = checkpoint.sources[options.source];
  if (sourceState !== undefined) {
    for (const s of shards) if (s.after !== undefined) sourceState.positions[s.shardId] = s.after;
  }
  await options.checkpoints.save(options.jobName, checkpoint);
  const saved = sourceState?.positions ?? {};
  return {
    records: shards.reduce((n, s) => n + s.read, 0),
    perShard: Object.fromEntries(shards.map((s) => [s.shardId, s.read])),
    from,
    to: Object.fromEntries(
      shards.map((s) => [s.shardId, saved[s.shardId] === undefined ? undefined : String(saved[s.shardId])]),
    ),
    restoredCheckpoint: restored?.id ?? 0,
    savedCheckpoint: checkpoint.id,
    stoppedBecause,
  };
}
