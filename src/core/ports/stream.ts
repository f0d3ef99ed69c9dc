import { SluiceError } from '../errors.ts';

/**
 * Stream port: a durable, append-only, sharded record log with the semantics of Amazon Kinesis
 * Data Streams (https://docs.aws.amazon.com/kinesis/latest/APIReference/). Local backend: SQLite
 * under the home (`src/backends/local/local-stream.ts`); AWS backend: Kinesis.
 * Contract: test/conformance/stream.case.ts.
 *
 * - A stream has a fixed number of shards. A record goes to the shard whose hash-key range holds
 *   the MD5 of its partition key read as a 128-bit unsigned integer (the ranges split
 *   0 .. 2^128-1 evenly), so records with one partition key keep their order.
 * - Each record gets a sequence number (a decimal string, increasing within its shard: compare
 *   with {@link compareSequenceNumbers}) and an arrival timestamp (the stream's clock).
 * - Records older than the retention period (default 24 h) are trimmed.
 * - Readers take a shard iterator (`TRIM_HORIZON`, `LATEST`, `AT_SEQUENCE_NUMBER`,
 *   `AFTER_SEQUENCE_NUMBER`, `AT_TIMESTAMP`), then call {@link StreamStore.getRecords} with it and
 *   continue with the returned `nextShardIterator`. Iterators expire 5 minutes after issue.
 *
 * Errors carry the Kinesis exception names (`ResourceNotFoundException`, ...), so an ASL `Retry`
 * or `Catch` matches them as on Step Functions.
 */
export interface StreamStore {
  /**
   * Creates a stream, `ACTIVE` on return.
   * @throws {StreamExistsError} when a stream of that name exists.
   * @throws {StreamArgumentError} when `shardCount` is not an integer in 1..1024 or
   *   `retentionHours` is outside 24..8760 (Kinesis's limits), or the name does not match
   *   `[a-zA-Z0-9_.-]{1,128}`.
   */
  createStream(
    name: string,
    options?: { shardCount?: number; retentionHours?: number },
  ): Promise<StreamDescription>;

  /**
   * Deletes a stream and its records.
   * @throws {StreamNotFoundError} when there is no such stream.
   */
  deleteStream(name: string): Promise<void>;

  /** @throws {StreamNotFoundError} */
  describeStream(name: string): Promise<StreamDescription>;

  /** Names of all streams, sorted. */
  listStreams(): Promise<string[]>;

  /**
   * Appends one record.
   * @throws {StreamNotFoundError}
   * @throws {StreamArgumentError} when the partition key is empty or over 256 characters, or the
   *   data is over 1 MiB (1,048,576 bytes, Kinesis's record limit).
   */
  putRecord(name: string, record: PutRecordInput): Promise<PutRecordResult>;

  /**
   * Appends up to 500 records (Kinesis's `PutRecords` limit) in order; the local backend writes
   * them in one transaction (`failedRecordCount` is always 0 there; Kinesis may fail single
   * records under throttling, which the caller must resend).
   * @throws {StreamNotFoundError}
   * @throws {StreamArgumentError} for more than 500 records or a bad record.
   */
  putRecords(name: string, records: readonly PutRecordInput[]): Promise<PutRecordsResult>;

  /**
   * An iterator into one shard.
   * @throws {StreamNotFoundError} for an unknown stream or shard.
   * @throws {StreamArgumentError} when `sequenceNumber` / `timestamp` is missing for the types
   *   that need it.
   */
  getShardIterator(name: string, shardId: string, position: ShardIteratorPosition): Promise<string>;

  /**
   * Reads up to `limit` records (default and maximum 10,000) from an iterator.
   * `nextShardIterator` is `null` only when the stream was deleted.
   * @throws {ExpiredIteratorError} when the iterator is older than 5 minutes.
   * @throws {StreamNotFoundError} when the stream was deleted or re-created since.
   * @throws {StreamArgumentError} when the iterator is malformed.
   */
  getRecords(iterator: string, options?: { limit?: number }): Promise<GetRecordsResult>;
}

/** A stream as {@link StreamStore.describeStream} reports it. */
export interface StreamDescription {
  readonly name: string;
  /**
   * Unique per creation: a stream deleted and re-created under the same name has a new id
   * (sequence numbers of the old one mean nothing in the new one). On AWS: the stream ARN plus
   * its creation time.
   */
  readonly streamId: string;
  readonly status: 'ACTIVE';
  readonly shards: readonly ShardDescription[];
  readonly retentionHours: number;
  /** ISO-8601 UTC. */
  readonly createdAt: string;
}

/** One shard and the hash keys it owns (decimal strings of 128-bit integers, inclusive). */
export interface ShardDescription {
  /** `shardId-000000000000`, `shardId-000000000001`, ... */
  readonly shardId: string;
  readonly hashKeyRange: { readonly startingHashKey: string; readonly endingHashKey: string };
}

/** A record to append. */
export interface PutRecordInput {
  /** 1..256 characters; decides the shard (MD5). */
  readonly partitionKey: string;
  /** The payload; a string is stored as its UTF-8 bytes. At most 1 MiB. */
  readonly data: Uint8Array | string;
}

/** Where {@link StreamStore.putRecord} stored a record. */
export interface PutRecordResult {
  readonly shardId: string;
  readonly sequenceNumber: string;
}

/** Result of {@link StreamStore.putRecords}, one entry per input record, in order. */
export interface PutRecordsResult {
  readonly failedRecordCount: number;
  readonly records: readonly (
    | PutRecordResult
    | { readonly errorCode: string; readonly errorMessage: string }
  )[];
}

/** Where a shard iterator starts (Kinesis `ShardIteratorType`). */
export type ShardIteratorPosition =
  /** The oldest record still retained. */
  | { readonly type: 'TRIM_HORIZON' }
  /** Just after the newest record: only records appended after the call. */
  | { readonly type: 'LATEST' }
  | { readonly type: 'AT_SEQUENCE_NUMBER'; readonly sequenceNumber: string }
  | { readonly type: 'AFTER_SEQUENCE_NUMBER'; readonly sequenceNumber: string }
  /** The first record that arrived at or after `timestamp`. */
  | { readonly type: 'AT_TIMESTAMP'; readonly timestamp: Date };

/** A record read from a shard. */
export interface StreamRecord {
  readonly sequenceNumber: string;
  readonly partitionKey: string;
  readonly data: Uint8Array;
  /** When the stream accepted the record (the stream's clock), ms precision. */
  readonly approximateArrivalTimestamp: Date;
}

/** Result of {@link StreamStore.getRecords}. */
export interface GetRecordsResult {
  /** In sequence-number order; empty when the reader is at the tip. */
  readonly records: readonly StreamRecord[];
  readonly nextShardIterator: string | null;
  /** How far the last returned record (or the iterator) is behind the shard's newest record, in ms; 0 at the tip. */
  readonly millisBehindLatest: number;
}

/** Orders two sequence numbers (decimal strings of any length): negative, 0 or positive. */
export function compareSequenceNumbers(a: string, b: string): number {
  return a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
}

/** The stream does not exist (Kinesis `ResourceNotFoundException`). */
export class StreamNotFoundError extends SluiceError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: 'stream_not_found', ...options });
    this.name = 'ResourceNotFoundException';
  }
}

/** A stream of that name already exists (Kinesis `ResourceInUseException`). */
export class StreamExistsError extends SluiceError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: 'stream_exists', ...options });
    this.name = 'ResourceInUseException';
  }
}

/** The shard iterator is older than 5 minutes (Kinesis `ExpiredIteratorException`): get a new one. */
export class ExpiredIteratorError extends SluiceError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: 'expired_iterator', retryable: true, ...options });
    this.name = 'ExpiredIteratorException';
  }
}

/** A malformed argument (Kinesis `InvalidArgumentException`). */
export class StreamArgumentError extends SluiceError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: 'invalid_argument', ...options });
    this.name = 'InvalidArgumentException';
  }
}
