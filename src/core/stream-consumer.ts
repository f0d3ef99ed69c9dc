/**
 * A checkpointing reader of every shard of one stream, after the Kinesis Client Library (KCL,
 * https://docs.aws.amazon.com/streams/latest/dev/kcl.html): a record processor per shard that
 * reads with `GetRecords` and records its progress in a DynamoDB lease table, one item per shard
 * holding the `checkpoint` sequence number
 * (https://docs.aws.amazon.com/streams/latest/dev/kcl-dynamoDB.html). Here the checkpoints live in
 * the key-value table {@link CHECKPOINTS_TABLE}.
 */
import type { Clock } from './clock.ts';
import { systemClock } from './clock.ts';
import { ConditionFailedError } from './errors.ts';
import type { Item, KvStore, KvTable } from './ports/kv-table.ts';
import { allPages } from './ports/kv-table.ts';
import {
  compareSequenceNumbers,
  ExpiredIteratorError,
  type GetRecordsResult,
  StreamArgumentError,
  StreamNotFoundError,
  type StreamRecord,
  type StreamStore,
} from './ports/stream.ts';

/**
 * Name of the key-value table of stream checkpoints: hash key `consumer_stream` (S,
 * `<consumer>/<streamId>`), range key `shard_id` (S); each item also holds `consumer`,
 * `stream_name`, `stream_id`, `sequence_number` (the checkpoint) and `updated_at` (ISO-8601 UTC).
 */
export const CHECKPOINTS_TABLE = 'sluice_stream_checkpoints';

/** Consumer names: the characters of a DynamoDB table name, which KCL names after its application. */
const CONSUMER_PATTERN = /^[a-zA-Z0-9_.-]{1,128}$/;
const SEQUENCE_PATTERN = /^\d{1,129}$/;

/** Options of {@link StreamConsumer.open}. */
export interface StreamConsumerOptions {
  readonly stream: StreamStore;
  /** Where the checkpoints are kept (table {@link CHECKPOINTS_TABLE}). */
  readonly kv: KvStore;
  readonly streamName: string;
  /**
   * The consuming application, `[a-zA-Z0-9_.-]{1,128}`: each consumer has its own checkpoints
   * (KCL's application name). One process at a time should consume under one name (take a lease,
   * see `lease.ts`): two would both read every record.
   */
  readonly consumer: string;
  /**
   * Where a shard without a checkpoint starts (KCL `initialPositionInStream`): `TRIM_HORIZON`
   * (default: the oldest retained record, so nothing retained is missed) or `LATEST` (only records
   * appended after the first poll).
   */
  readonly startAt?: 'TRIM_HORIZON' | 'LATEST';
  /** Stamps the checkpoints' `updated_at` (default: the system clock). */
  readonly clock?: Clock;
}

/** Records one {@link StreamConsumer.poll} read from one shard. */
export interface ConsumerBatch {
  /** `shardId-000000000000`, ... */
  readonly shardId: string;
  /** In sequence-number order, never empty. */
  readonly records: readonly StreamRecord[];
  /** How far the batch's last record is behind the shard's newest record, in ms (0 at the tip). */
  readonly millisBehindLatest: number;
}

/** Options of {@link StreamConsumer.poll}. */
export interface PollOptions {
  /** Records per shard at most (`GetRecords` `limit`, 1..10,000; default: the backend's, 10,000). */
  readonly limitPerShard?: number;
}

/** Where the consumer is in one shard. */
interface ShardState {
  readonly shardId: string;
  /** The iterator to read with next; `undefined` before the first read or after expiry. */
  iterator: string | undefined;
  /** Sequence number of the last record delivered (or the checkpoint before the first delivery). */
  after: string | undefined;
  /** The stream ended the shard (`nextShardIterator` null): nothing more to read. */
  ended: boolean;
}

/**
 * Reads every shard of one stream and keeps per-shard checkpoints, like a KCL worker:
 *
 * - {@link poll} makes one `getRecords` per shard, from where this consumer is: after the
 *   shard's checkpoint on the first poll (or at `startAt` without one), after the last delivered
 *   record afterwards. Records delivered but not checkpointed are not delivered again by the same
 *   object; a new one (a restart) resumes after the checkpoints, so delivery is at least once: a
 *   handler must be idempotent or checkpoint only what it made durable.
 * - An expired iterator (5 minutes without a poll) is renewed transparently:
 *   `AFTER_SEQUENCE_NUMBER` of the last delivered record, or `startAt` when none was delivered
 *   yet (for `LATEST`, records appended while the iterator was expired are then skipped, as with
 *   KCL). A checkpoint pointing into data that retention deleted resumes at the oldest retained
 *   record (Kinesis's behaviour for such iterators).
 * - {@link checkpoint} records durably that a shard is processed up to and including a record; it
 *   never moves backwards (an older sequence number is ignored), also against another process
 *   checkpointing the same shard (compare, then conditional write).
 * - Checkpoints are keyed by consumer and stream id, not name: a stream deleted and re-created
 *   under the same name starts afresh; this object then fails with {@link StreamNotFoundError}.
 *
 * The stream's shards are read once, at {@link open} (the port has no resharding).
 */
export class StreamConsumer {
  private readonly shards: ShardState[];
  private started = false;
  private tip = false;

  private constructor(
    private readonly stream: StreamStore,
    private readonly table: KvTable,
    private readonly clock: Clock,
    /** The stream's name. */
    readonly streamName: string,
    /** The id of the stream this consumer reads ({@link StreamDescription.streamId}). */
    readonly streamId: string,
    readonly consumer: string,
    private readonly startAt: 'TRIM_HORIZON' | 'LATEST',
    shardIds: readonly string[],
  ) {
    this.shards = shardIds.map((shardId) => ({
      shardId,
      iterator: undefined,
      after: undefined,
      ended: false,
    }));
  }

  /**
   * Opens a consumer of `streamName` (locally: creates the checkpoint table on first use).
   * Reads nothing yet: checkpoints are read by the first {@link poll}.
   * @throws {StreamNotFoundError} when the stream does not exist.
   * @throws {StreamArgumentError} when `consumer` or `startAt` is malformed.
   */
  static async open(options: StreamConsumerOptions): Promise<StreamConsumer> {
    const { consumer } = options;
    if (typeof consumer !== 'string' || !CONSUMER_PATTERN.test(consumer)) {
      throw new StreamArgumentError(
        `stream consumer name must match [a-zA-Z0-9_.-]{1,128}, got ${JSON.stringify(consumer) ?? String(consumer)}`,
      );
    }
    const startAt = options.startAt ?? 'TRIM_HORIZON';
    if (startAt !== 'TRIM_HORIZON' && startAt !== 'LATEST') {
      throw new StreamArgumentError(
        `stream consumer "${consumer}": startAt must be TRIM_HORIZON or LATEST, got ${JSON.stringify(startAt)}`,
      );
    }
    const description = await options.stream.describeStream(options.streamName);
    const table = await options.kv.table(CHECKPOINTS_TABLE, {
      hashKey: { name: 'consumer_stream', type: 'S' },
      rangeKey: { name: 'shard_id', type: 'S' },
    });
    return new StreamConsumer(
      options.stream,
      table,
      options.clock ?? systemClock,
      description.name,
      description.streamId,
      consumer,
      startAt,
      description.shards.map((s) => s.shardId),
    );
  }

  /** The stream's shard ids, in order. */
  get shardIds(): string[] {
    return this.shards.map((s) => s.shardId);
  }

  /**
   * Whether the last {@link poll} found every shard at its tip: no records and
   * `millisBehindLatest` 0 everywhere (ended shards count as at the tip). A caller draining the
   * stream stops when this is true; false before the first poll.
   */
  get atTip(): boolean {
    return this.tip;
  }

  /**
   * Reads the next records of every shard: one `getRecords` per shard (concurrently).
   * @returns one batch per shard that returned records, in shard order.
   * @throws {StreamNotFoundError} when the stream was deleted or re-created since {@link open}.
   * @throws {StreamArgumentError} when `limitPerShard` is outside 1..10,000.
   * @throws {Error} what the ports throw otherwise; no shard's position moves then, so the next
   *   poll reads the same records. Not reentrant: await each poll before the next.
   */
  async poll(options: PollOptions = {}): Promise<ConsumerBatch[]> {
    if (!this.started) {
      const stored = await this.checkpoints();
      for (const shard of this.shards) shard.after = stored[shard.shardId];
      this.started = true;
    }
    const readOptions = options.limitPerShard === undefined ? {} : { limit: options.limitPerShard };
    let verified: Promise<void> | undefined;
    /** Checks, once per poll, that the name still denotes this consumer's stream. */
    const sameStream = () => {
      verified ??= this.verifyStream();
      return verified;
    };
    // Positions move only once every shard's read succeeded: a failed poll delivers nothing and
    // the next one reads the same records again.
    const reads = await Promise.all(
      this.shards.map(async (shard): Promise<GetRecordsResult | undefined> => {
        if (shard.ended) return undefined;
        // A new iterator stands for the same position, so it may be kept even if the poll fails.
        if (shard.iterator === undefined) shard.iterator = await this.iterator(shard, sameStream);
        try {
          return await this.stream.getRecords(shard.iterator, readOptions);
        } catch (error) {
          if (!(error instanceof ExpiredIteratorError)) throw error;
          shard.iterator = await this.iterator(shard, sameStream);
          return await this.stream.getRecords(shard.iterator, readOptions);
        }
      }),
    );
    reads.forEach((read, i) => {
      if (read === undefined) return;
      const shard = this.shards[i]!;
      const last = read.records.at(-1);
      if (last !== undefined) shard.after = last.sequenceNumber;
      shard.iterator = read.nextShardIterator ?? undefined;
      if (read.nextShardIterator === null) shard.ended = true;
    });
    const batches: ConsumerBatch[] = [];
    let tip = true;
    reads.forEach((read, i) => {
      if (read === undefined) return;
      if (read.records.length > 0 || read.millisBehindLatest > 0) tip = false;
      if (read.records.length > 0) {
        batches.push({
          shardId: this.shards[i]!.shardId,
          records: read.records,
          millisBehindLatest: read.millisBehindLatest,
        });
      }
    });
    this.tip = tip;
    return batches;
  }

  /**
   * Records that `shardId` is processed up to and including `sequenceNumber` (KCL
   * `checkpointer.checkpoint(sequenceNumber)`): a restarted consumer resumes after it. A sequence
   * number at or before the stored checkpoint leaves it unchanged (never backwards).
   * @throws {StreamArgumentError} when the shard is not one of the stream's or the sequence number
   *   is not a decimal string.
   * @throws {Error} what the key-value port throws.
   */
  async checkpoint(shardId: string, sequenceNumber: string): Promise<void> {
    if (!this.shards.some((s) => s.shardId === shardId)) {
      throw new StreamArgumentError(
        `stream "${this.streamName}" has no shard ${JSON.stringify(shardId) ?? String(shardId)}`,
      );
    }
    if (typeof sequenceNumber !== 'string' || !SEQUENCE_PATTERN.test(sequenceNumber)) {
      throw new StreamArgumentError(
        `checkpoint of ${shardId}: sequence number must be a decimal string, got ${JSON.stringify(sequenceNumber) ?? String(sequenceNumber)}`,
      );
    }
    const key = { consumer_stream: this.hashKey(), shard_id: shardId };
    // Optimistic concurrency: compare with the stored checkpoint, then write on condition that it
    // is still the one compared with; a lost race re-reads (the winner only ever moved it forward).
    for (;;) {
      const stored = await this.table.get(key);
      const current = typeof stored?.sequence_number === 'string' ? stored.sequence_number : undefined;
      if (current !== undefined && compareSequenceNumbers(current, sequenceNumber) >= 0) return;
      const item: Item = {
        ...key,
        consumer: this.consumer,
        stream_name: this.streamName,
        stream_id: this.streamId,
        sequence_number: sequenceNumber,
        updated_at: this.clock.now().toISOString(),
      };
      try {
        await this.table.put(item, {
          condition:
            stored === undefined
              ? { op: 'not_exists' }
              : current === undefined
                ? { op: 'not_exists', attribute: 'sequence_number' }
                : { op: 'eq', attribute: 'sequence_number', value: current },
        });
        return;
      } catch (error) {
        if (!(error instanceof ConditionFailedError)) throw error;
      }
    }
  }

  /** The stored checkpoints of this consumer and stream: shard id -> sequence number. */
  async checkpoints(): Promise<Record<string, string>> {
    const result: Record<string, string> = {};
    const hash = this.hashKey();
    for await (const item of allPages((cursor) =>
      this.table.query(hash, cursor === undefined ? {} : { cursor }),
    )) {
      if (typeof item.shard_id === 'string' && typeof item.sequence_number === 'string') {
        result[item.shard_id] = item.sequence_number;
      }
    }
    return result;
  }

  private hashKey(): string {
    return `${this.consumer}/${this.streamId}`;
  }

  /** A new iterator where the shard's reading continues. */
  private async iterator(shard: ShardState, sameStream: () => Promise<void>): Promise<string> {
    await sameStream();
    return this.stream.getShardIterator(
      this.streamName,
      shard.shardId,
      shard.after === undefined
        ? { type: this.startAt }
        : { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: shard.after },
    );
  }

  /**
   * Iterators are taken by name: make sure the name still denotes the stream this consumer
   * opened. @throws {StreamNotFoundError} when it was deleted or re-created.
   */
  private async verifyStream(): Promise<void> {
    const description = await this.stream.describeStream(this.streamName);
    if (description.streamId !== this.streamId) {
      throw new StreamNotFoundError(
        `stream "${this.streamName}" was re-created since consumer "${this.consumer}" opened it ` +
          `(id ${this.streamId}, now ${description.streamId}); open a new consumer`,
      );
    }
  }
}
