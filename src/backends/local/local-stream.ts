import { hash, randomUUID } from 'node:crypto';
import type { Clock } from '../../core/clock.ts';
import { systemClock } from '../../core/clock.ts';
import {
  ExpiredIteratorError,
  type GetRecordsResult,
  type PutRecordInput,
  type PutRecordResult,
  type PutRecordsResult,
  type ShardDescription,
  type ShardIteratorPosition,
  StreamArgumentError,
  type StreamDescription,
  StreamExistsError,
  StreamNotFoundError,
  type StreamRecord,
  type StreamStore,
} from '../../core/ports/stream.ts';
import { type Database, type Migration, migrate, type Statement } from './sqlite.ts';

/** Records per {@link LocalStreamStore.putRecords} call at most (Kinesis `PutRecords`). */
export const MAX_PUT_RECORDS = 500;
/** Bytes of one record's data at most: 1 MiB (Kinesis). */
export const MAX_RECORD_BYTES = 1024 * 1024;
/** Characters of a partition key at most (Kinesis). */
export const MAX_PARTITION_KEY_LENGTH = 256;
/** Records per {@link LocalStreamStore.getRecords} call: the default and the maximum (Kinesis). */
export const MAX_GET_RECORDS = 10_000;
/**
 * Bytes of record data one {@link LocalStreamStore.getRecords} call returns at most: 10 MiB
 * (Kinesis's `GetRecords` limit). A single record is always returned, whatever its size.
 */
export const MAX_GET_RECORDS_BYTES = 10 * 1024 * 1024;
/** How long a shard iterator stays valid after it was issued, in ms: 5 minutes (Kinesis). */
export const ITERATOR_TTL_MS = 5 * 60 * 1000;
/** Shards of a stream created without `shardCount`. */
export const DEFAULT_SHARD_COUNT = 1;
/** Retention of a stream created without `retentionHours`, in hours (Kinesis's default). */
export const DEFAULT_RETENTION_HOURS = 24;
/** Shards per stream, inclusive (Kinesis's per-stream limit). */
export const SHARD_COUNT_LIMITS = { min: 1, max: 1024 } as const;
/** Retention of a stream in hours, inclusive: 24 h .. 365 days (Kinesis). */
export const RETENTION_HOURS_LIMITS = { min: 24, max: 8760 } as const;
/**
 * Least time between two retention prunes of one {@link LocalStreamStore}, in ms of its clock:
 * puts delete expired records at most this often.
 */
export const RECORDS_PRUNE_INTERVAL_MS = 60_000;

/** Stream names Kinesis accepts. */
const NAME_PATTERN = /^[a-zA-Z0-9_.-]{1,128}$/;
/** `shardId-` and 12 digits, Kinesis's shard id format. */
const SHARD_ID_PATTERN = /^shardId-(\d{12})$/;
/** A sequence number as Kinesis accepts one (`0|([1-9]\d{0,128})`), leading zeros tolerated. */
const SEQUENCE_PATTERN = /^\d{1,129}$/;
const HOUR_MS = 60 * 60 * 1000;
const HASH_KEY_SPACE = 1n << 128n;

/**
 * Sequence numbers are `1` followed by the record's `seq` zero-padded to 20 digits: fixed width
 * (21 digits), so text order is number order, and without a leading zero, which Kinesis's
 * sequence-number pattern (`0|([1-9]\d{0,128})`) refuses. `seq` is at most 2^63 - 1 (19 digits).
 */
const SEQUENCE_DIGITS = 20;
const SEQUENCE_OFFSET = 10n ** BigInt(SEQUENCE_DIGITS);

/**
 * Schema of the stream module (append-only, see {@link migrate}); exported for migration tests.
 *
 * Version 1: `streams` holds one row per creation: `stream_key` (`AUTOINCREMENT`, so a re-created
 * stream never gets an old key) is what records refer to, `stream_id` is the public id
 * ({@link StreamDescription.streamId}, a random UUID), `last_arrival_ms` the newest arrival time
 * handed out (arrival times never decrease within a stream). `stream_records` holds the records:
 * `seq` is the sequence number (`AUTOINCREMENT`: shared by every stream of the file, increasing in
 * commit order, never reused even after retention deleted the newest records), `shard_id` the
 * shard's index, `arrival_ms` the arrival time in ms since the epoch (UTC). Index
 * `stream_records_by_shard` reads a shard in order, `stream_records_by_arrival` serves retention
 * and `AT_TIMESTAMP`.
 */
export const STREAM_MIGRATIONS: readonly Migration[] = [
  `CREATE TABLE streams (
     stream_key INTEGER PRIMARY KEY AUTOINCREMENT,
     name TEXT NOT NULL UNIQUE,
     stream_id TEXT NOT NULL UNIQUE,
     shard_count INTEGER NOT NULL CHECK (shard_count BETWEEN 1 AND 1024),
     retention_hours INTEGER NOT NULL CHECK (retention_hours BETWEEN 24 AND 8760),
     created_at TEXT NOT NULL,
     last_arrival_ms INTEGER NOT NULL
   ) STRICT;
   CREATE TABLE stream_records (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     stream_key INTEGER NOT NULL,
     shard_id INTEGER NOT NULL,
     partition_key TEXT NOT NULL,
     data BLOB NOT NULL,
     arrival_ms INTEGER NOT NULL
   ) STRICT;
   CREATE INDEX stream_records_by_shard ON stream_records (stream_key, shard_id, seq);
   CREATE INDEX stream_records_by_arrival ON stream_records (stream_key, arrival_ms);`,
];

/** Options of {@link LocalStreamStore}. */
export interface LocalStreamStoreOptions {
  /** Stamps arrival times and drives iterator expiry and retention (default: the system clock). */
  readonly clock?: Clock;
}

interface StreamRow {
  stream_key: number;
  name: string;
  stream_id: string;
  shard_count: number;
  retention_hours: number;
  created_at: string;
  last_arrival_ms: number;
}

interface RecordRow {
  seq: number;
  partition_key: string;
  data: Buffer;
  arrival_ms: number;
}

/** What a shard iterator holds (base64url JSON); see {@link encodeIterator}. */
interface IteratorState {
  /** Public id of the stream (a re-created stream has another). */
  readonly streamId: string;
  readonly shard: number;
  /** Reading continues with the first record whose `seq` is greater. */
  readonly after: number;
  /** `AT_TIMESTAMP`: only records that arrived at or after this time (ms), until one was read. */
  readonly minArrivalMs?: number;
  /** When the iterator was issued, ms of the store's clock. */
  readonly issuedAtMs: number;
}

/**
 * The local {@link StreamStore}: Kinesis Data Streams semantics on SQLite, in its own database
 * file (`<home>/streams.db`, so stream writes never wait for the key-value/catalog database).
 *
 * - **Shards**: a record goes to the shard whose hash-key range holds the MD5 of its partition
 *   key's UTF-8 bytes, read as an unsigned 128-bit integer; shard `i` of `n` owns
 *   `floor(2^128 / n) * i ..` the next shard's start minus 1, the last one up to 2^128 - 1 (the
 *   split of Kinesis `CreateStream`).
 * - **Sequence numbers**: one counter per database file, assigned in commit order (puts run in
 *   `BEGIN IMMEDIATE` transactions), so they increase within a shard, within a stream and across
 *   processes sharing the file, and are never reused, even after retention or a stream deletion
 *   removed the newest records. Shown as 21 decimal digits (see {@link compareSequenceNumbers}).
 * - **Arrival times** come from the clock and never decrease within a stream (a clock stepping
 *   back repeats the newest arrival time), so `AT_TIMESTAMP` and retention follow record order.
 * - **Retention**: records older than the stream's retention (by the clock) are invisible at
 *   once and deleted by puts to any stream of the file, at most every
 *   {@link RECORDS_PRUNE_INTERVAL_MS}; reading from a trimmed position starts at the oldest
 *   retained record (Kinesis returns from the trim horizon).
 * - **Iterators** are base64url JSON naming the stream's id, the shard and the position; they
 *   expire {@link ITERATOR_TTL_MS} after issue (by the clock). A deleted or re-created stream makes
 *   its old iterators fail with {@link StreamNotFoundError}.
 * - **Limits** as Kinesis: {@link MAX_PUT_RECORDS} records per put, {@link MAX_RECORD_BYTES} per
 *   record, partition keys of 1..256 characters, names `[a-zA-Z0-9_.-]{1,128}`, 1..1024 shards,
 *   24..8760 h retention, {@link MAX_GET_RECORDS} records and {@link MAX_GET_RECORDS_BYTES} per read.
 *   Not enforced locally: throughput limits per shard (1 MB/s, 1,000 records/s in; 2 MB/s,
 *   5 reads/s out) and the 5 MiB request limit of `PutRecords`.
 *
 * The constructor creates or upgrades the schema when needed (idempotent; see {@link migrate}).
 * All methods are synchronous SQLite calls behind the port's promises.
 */
export class LocalStreamStore implements StreamStore {
  private readonly clock: Clock;
  private lastPrune: number | undefined;
  private readonly byName: Statement;
  private readonly byId: Statement;
  private readonly lastSeq: Statement;
  private readonly insert: Statement;
  private readonly touch: Statement;
  private readonly readShard: Statement;
  private readonly newestInShard: Statement;
  private readonly firstAtOrAfter: Statement;
  private readonly allStreams: Statement;
  private readonly pruneStream: Statement;

  constructor(
    private readonly db: Database,
    options: LocalStreamStoreOptions = {},
  ) {
    migrate(db, 'stream', STREAM_MIGRATIONS);
    this.clock = options.clock ?? systemClock;
    this.byName = db.prepare('SELECT * FROM streams WHERE name = ?');
    this.byId = db.prepare('SELECT * FROM streams WHERE stream_id = ?');
    this.lastSeq = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'stream_records'").pluck();
    this.insert = db.prepare(
      `INSERT INTO stream_records (seq, stream_key, shard_id, partition_key, data, arrival_ms)
       VALUES (?, ?, ?, ?, ?, ?)`,
    );
    this.touch = db.prepare('UPDATE streams SET last_arrival_ms = ? WHERE stream_key = ?');
    this.readShard = db.prepare(
      `SELECT seq, partition_key, data, arrival_ms FROM stream_records INDEXED BY stream_records_by_shard
       WHERE stream_key = ? AND shard_id = ? AND seq > ? AND arrival_ms >= ?
       ORDER BY seq LIMIT ?`,
    );
    this.newestInShard = db
      .prepare(
        `SELECT arrival_ms FROM stream_records INDEXED BY stream_records_by_shard
         WHERE stream_key = ? AND shard_id = ? ORDER BY seq DESC LIMIT 1`,
      )
      .pluck();
    this.firstAtOrAfter = db
      .prepare(
        `SELECT seq FROM stream_records INDEXED BY stream_records_by_arrival
         WHERE stream_key = ? AND arrival_ms >= ? ORDER BY arrival_ms, seq LIMIT 1`,
      )
      .pluck();
    this.allStreams = db.prepare('SELECT stream_key, retention_hours FROM streams');
    this.pruneStream = db.prepare('DELETE FROM stream_records WHERE stream_key = ? AND arrival_ms < ?');
  }

  async createStream(
    name: string,
    options: { shardCount?: number; retentionHours?: number } = {},
  ): Promise<StreamDescription> {
    checkName(name);
    const shardCount = options.shardCount ?? DEFAULT_SHARD_COUNT;
    const retentionHours = options.retentionHours ?? DEFAULT_RETENTION_HOURS;
    if (
      !Number.isInteger(shardCount) ||
      shardCount < SHARD_COUNT_LIMITS.min ||
      shardCount > SHARD_COUNT_LIMITS.max
    ) {
      throw new StreamArgumentError(
        `stream "${name}": shardCount must be an integer in ${SHARD_COUNT_LIMITS.min}..${SHARD_COUNT_LIMITS.max}, got ${shardCount}`,
      );
    }
    if (
      !Number.isInteger(retentionHours) ||
      retentionHours < RETENTION_HOURS_LIMITS.min ||
      retentionHours > RETENTION_HOURS_LIMITS.max
    ) {
      throw new StreamArgumentError(
        `stream "${name}": retentionHours must be an integer in ${RETENTION_HOURS_LIMITS.min}..${RETENTION_HOURS_LIMITS.max}, got ${retentionHours}`,
      );
    }
    const now = this.clock.now();
    const row = this.db
      .transaction((): StreamRow => {
        if (this.byName.get(name) !== undefined) {
          throw new StreamExistsError(`stream "${name}" already exists`);
        }
        this.db
          .prepare(
            `INSERT INTO streams (name, stream_id, shard_count, retention_hours, created_at, last_arrival_ms)
             VALUES (?, ?, ?, ?, ?, 0)`,
          )
          .run(name, randomUUID(), shardCount, retentionHours, now.toISOString());
        return this.byName.get(name) as StreamRow;
      })
      .immediate();
    return toDescription(row);
  }

  async deleteStream(name: string): Promise<void> {
    checkName(name);
    this.db
      .transaction(() => {
        const row = this.stream(name);
        this.db.prepare('DELETE FROM stream_records WHERE stream_key = ?').run(row.stream_key);
        this.db.prepare('DELETE FROM streams WHERE stream_key = ?').run(row.stream_key);
      })
      .immediate();
  }

  async describeStream(name: string): Promise<StreamDescription> {
    checkName(name);
    return toDescription(this.stream(name));
  }

  async listStreams(): Promise<string[]> {
    return this.db.prepare('SELECT name FROM streams ORDER BY name').pluck().all() as string[];
  }

  async putRecord(name: string, record: PutRecordInput): Promise<PutRecordResult> {
    const result = await this.putRecords(name, [record]);
    return result.records[0] as PutRecordResult;
  }

  async putRecords(name: string, records: readonly PutRecordInput[]): Promise<PutRecordsResult> {
    checkName(name);
    if (!Array.isArray(records)) throw new StreamArgumentError(`stream "${name}": records must be an array`);
    if (records.length === 0 || records.length > MAX_PUT_RECORDS) {
      throw new StreamArgumentError(
        `stream "${name}": putRecords takes 1..${MAX_PUT_RECORDS} records, got ${records.length}`,
      );
    }
    // Validate and hash everything before taking the write lock.
    const keys: string[] = new Array(records.length);
    const blobs: Uint8Array[] = new Array(records.length);
    records.forEach((record, i) => {
      keys[i] = checkPartitionKey(name, record?.partitionKey, i);
      blobs[i] = recordData(name, record?.data, i);
    });
    // Hash outside the lock too when the stream has several shards (re-checked inside).
    const before = this.byName.get(name) as StreamRow | undefined;
    let hashes = before !== undefined && before.shard_count > 1 ? keys.map(hashKey) : undefined;
    return this.db
      .transaction((): PutRecordsResult => {
        const stream = this.stream(name);
        const now = this.clock.now().getTime();
        this.pruneExpired(now);
        const arrival = Math.max(now, stream.last_arrival_ms);
        if (arrival !== stream.last_arrival_ms) this.touch.run(arrival, stream.stream_key);
        let seq = (this.lastSeq.get() as number | undefined) ?? 0;
        const shards = stream.shard_count;
        const step = HASH_KEY_SPACE / BigInt(shards);
        if (shards > 1 && hashes === undefined) hashes = keys.map(hashKey);
        const results: PutRecordResult[] = new Array(records.length);
        for (let i = 0; i < records.length; i++) {
          seq++;
          const shard = shards === 1 ? 0 : shardOf(hashes![i]!, step, shards);
          this.insert.run(seq, stream.stream_key, shard, keys[i], blobs[i], arrival);
          results[i] = { shardId: shardId(shard), sequenceNumber: formatSequence(seq) };
        }
        return { failedRecordCount: 0, records: results };
      })
      .immediate();
  }

  async getShardIterator(name: string, shardId: string, position: ShardIteratorPosition): Promise<string> {
    checkName(name);
    return this.db.transaction((): string => {
      const stream = this.stream(name);
      const shard = parseShardId(stream, shardId);
      const issuedAtMs = this.clock.now().getTime();
      const base = { streamId: stream.stream_id, shard, issuedAtMs };
      const last = (this.lastSeq.get() as number | undefined) ?? 0;
      switch (position?.type) {
        case 'TRIM_HORIZON':
          return encodeIterator({ ...base, after: 0 });
        case 'LATEST':
          // Every record stored now has a seq <= last; every later one gets a greater seq.
          return encodeIterator({ ...base, after: last });
        case 'AT_SEQUENCE_NUMBER':
        case 'AFTER_SEQUENCE_NUMBER': {
          const seq = parseSequence(name, position.sequenceNumber, last);
          const after = position.type === 'AT_SEQUENCE_NUMBER' ? Math.max(0, seq - 1) : seq;
          return encodeIterator({ ...base, after });
        }
        case 'AT_TIMESTAMP': {
          const timestamp = position.timestamp;
          if (!(timestamp instanceof Date) || Number.isNaN(timestamp.getTime())) {
            throw new StreamArgumentError(`stream "${name}": AT_TIMESTAMP needs a valid Date timestamp`);
          }
          const ms = timestamp.getTime();
          // Arrival times follow seq order within a stream: the stream's first record at or after
          // `ms` bounds the shard's; the filter keeps a future timestamp exact.
          const first = this.firstAtOrAfter.get(stream.stream_key, ms) as number | undefined;
          return encodeIterator({ ...base, after: first === undefined ? last : first - 1, minArrivalMs: ms });
        }
        default:
          throw new StreamArgumentError(
            `stream "${name}": unknown shard iterator type ${JSON.stringify((position as { type?: unknown } | undefined)?.type)}`,
          );
      }
    })();
  }

  async getRecords(iterator: string, options: { limit?: number } = {}): Promise<GetRecordsResult> {
    const limit = options.limit ?? MAX_GET_RECORDS;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_GET_RECORDS) {
      throw new StreamArgumentError(
        `getRecords: limit must be an integer in 1..${MAX_GET_RECORDS}, got ${limit}`,
      );
    }
    const state = decodeIterator(iterator);
    const now = this.clock.now().getTime();
    if (now - state.issuedAtMs > ITERATOR_TTL_MS) {
      throw new ExpiredIteratorError(
        `shard iterator expired: issued at ${new Date(state.issuedAtMs).toISOString()}, now ` +
          `${new Date(now).toISOString()}, older than ${ITERATOR_TTL_MS} ms; get a new one`,
      );
    }
    // One read transaction: the records and the shard's newest arrival come from one snapshot.
    return this.db.transaction((): GetRecordsResult => {
      const stream = this.byId.get(state.streamId) as StreamRow | undefined;
      if (stream === undefined) {
        throw new StreamNotFoundError(
          `the stream of this shard iterator (id ${state.streamId}) no longer exists: it was deleted or re-created`,
        );
      }
      if (state.shard >= stream.shard_count) {
        throw new StreamNotFoundError(`stream "${stream.name}" has no shard ${shardId(state.shard)}`);
      }
      const cutoff = now - stream.retention_hours * HOUR_MS;
      const lower = Math.max(cutoff, state.minArrivalMs ?? cutoff);
      const records: StreamRecord[] = [];
      let bytes = 0;
      let lastRow: RecordRow | undefined;
      for (const row of this.readShard.iterate(
        stream.stream_key,
        state.shard,
        state.after,
        lower,
        limit,
      ) as IterableIterator<RecordRow>) {
        bytes += row.data.length;
        if (records.length > 0 && bytes > MAX_GET_RECORDS_BYTES) break;
        records.push({
          sequenceNumber: formatSequence(row.seq),
          partitionKey: row.partition_key,
          data: row.data,
          approximateArrivalTimestamp: new Date(row.arrival_ms),
        });
        lastRow = row;
      }
      let millisBehindLatest = 0;
      const { streamId, shard, after, minArrivalMs } = state;
      let next: IteratorState = {
        streamId,
        shard,
        after,
        ...(minArrivalMs === undefined ? {} : { minArrivalMs }),
        issuedAtMs: now,
      };
      if (lastRow !== undefined) {
        const newest = this.newestInShard.get(stream.stream_key, state.shard) as number;
        millisBehindLatest = Math.max(0, newest - lastRow.arrival_ms);
        // Arrival times never decrease within a stream: the AT_TIMESTAMP filter is done.
        next = { streamId, shard, after: lastRow.seq, issuedAtMs: now };
      }
      return { records, nextShardIterator: encodeIterator(next), millisBehindLatest };
    })();
  }

  /** The stream's row. @throws {StreamNotFoundError} */
  private stream(name: string): StreamRow {
    const row = this.byName.get(name) as StreamRow | undefined;
    if (row === undefined) throw new StreamNotFoundError(`stream "${name}" does not exist`);
    return row;
  }

  /**
   * Deletes every stream's records older than its retention, when the last prune of this store
   * is {@link RECORDS_PRUNE_INTERVAL_MS} old; call inside a write transaction.
   */
  private pruneExpired(now: number): void {
    if (this.lastPrune !== undefined && now - this.lastPrune < RECORDS_PRUNE_INTERVAL_MS) return;
    this.lastPrune = now;
    for (const row of this.allStreams.all() as { stream_key: number; retention_hours: number }[]) {
      this.pruneStream.run(row.stream_key, now - row.retention_hours * HOUR_MS);
    }
  }
}

/** The shard ranges of Kinesis `CreateStream`: `floor(2^128 / n)` hash keys each, the last up to 2^128 - 1. */
export function shardHashKeyRanges(shardCount: number): { start: bigint; end: bigint }[] {
  const step = HASH_KEY_SPACE / BigInt(shardCount);
  return Array.from({ length: shardCount }, (_, i) => ({
    start: step * BigInt(i),
    end: i === shardCount - 1 ? HASH_KEY_SPACE - 1n : step * BigInt(i + 1) - 1n,
  }));
}

/** The MD5 of a partition key's UTF-8 bytes as an unsigned 128-bit integer (Kinesis's hash key). */
export function hashKey(partitionKey: string): bigint {
  return BigInt(`0x${hash('md5', partitionKey, 'hex')}`);
}

function shardOf(hash: bigint, step: bigint, shards: number): number {
  const index = Number(hash / step);
  return index >= shards ? shards - 1 : index;
}

function shardId(index: number): string {
  return `shardId-${String(index).padStart(12, '0')}`;
}

function toDescription(row: StreamRow): StreamDescription {
  const shards: ShardDescription[] = shardHashKeyRanges(row.shard_count).map((range, i) => ({
    shardId: shardId(i),
    hashKeyRange: { startingHashKey: range.start.toString(), endingHashKey: range.end.toString() },
  }));
  return {
    name: row.name,
    streamId: row.stream_id,
    status: 'ACTIVE',
    shards,
    retentionHours: row.retention_hours,
    createdAt: row.created_at,
  };
}

/** @throws {StreamArgumentError} unless the name matches `[a-zA-Z0-9_.-]{1,128}`. */
function checkName(name: string): void {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new StreamArgumentError(
      `stream name must match [a-zA-Z0-9_.-]{1,128}, got ${JSON.stringify(name) ?? String(name)}`,
    );
  }
}

/** @throws {StreamArgumentError} unless the key has 1..256 characters (code points). */
function checkPartitionKey(stream: string, key: unknown, index: number): string {
  if (
    typeof key !== 'string' ||
    key.length === 0 ||
    (key.length > MAX_PARTITION_KEY_LENGTH && [...key].length > MAX_PARTITION_KEY_LENGTH)
  ) {
    const got = typeof key === 'string' ? `${[...key].length} characters` : typeof key;
    throw new StreamArgumentError(
      `stream "${stream}": record ${index}: partition key must be a string of 1..${MAX_PARTITION_KEY_LENGTH} characters, got ${got}`,
    );
  }
  return key;
}

/** The record's bytes (a string as UTF-8). @throws {StreamArgumentError} over 1 MiB or not bytes. */
function recordData(stream: string, data: unknown, index: number): Uint8Array {
  let bytes: Uint8Array;
  if (typeof data === 'string') bytes = Buffer.from(data, 'utf8');
  else if (data instanceof Uint8Array) bytes = data;
  else {
    throw new StreamArgumentError(
      `stream "${stream}": record ${index}: data must be a Uint8Array or a string`,
    );
  }
  if (bytes.byteLength > MAX_RECORD_BYTES) {
    throw new StreamArgumentError(
      `stream "${stream}": record ${index}: data is ${bytes.byteLength} bytes, over the ${MAX_RECORD_BYTES}-byte (1 MiB) limit`,
    );
  }
  return bytes;
}

/** The shard index of `shardId`. @throws {StreamNotFoundError} when the stream has no such shard. */
function parseShardId(stream: StreamRow, id: string): number {
  const match = typeof id === 'string' ? SHARD_ID_PATTERN.exec(id) : null;
  const index = match ? Number(match[1]) : Number.NaN;
  if (!(index < stream.shard_count)) {
    throw new StreamNotFoundError(
      `stream "${stream.name}" has no shard ${JSON.stringify(id) ?? String(id)} (it has ${stream.shard_count})`,
    );
  }
  return index;
}

function formatSequence(seq: number): string {
  return `1${String(seq).padStart(SEQUENCE_DIGITS, '0')}`;
}

/**
 * The `seq` a sequence number stands for: numbers shorter than 21 digits (or below 10^20) come
 * before every record.
 * @throws {StreamArgumentError} when it is not a decimal string or was never handed out
 *   (greater than the file's newest sequence number).
 */
function parseSequence(stream: string, sequenceNumber: unknown, last: number): number {
  if (typeof sequenceNumber !== 'string' || !SEQUENCE_PATTERN.test(sequenceNumber)) {
    throw new StreamArgumentError(
      `stream "${stream}": sequenceNumber must be a decimal string, got ${JSON.stringify(sequenceNumber) ?? String(sequenceNumber)}`,
    );
  }
  const value = BigInt(sequenceNumber) - SEQUENCE_OFFSET;
  if (value > BigInt(last)) {
    throw new StreamArgumentError(
      `stream "${stream}": sequence number ${sequenceNumber} was not issued by this stream`,
    );
  }
  return value < 0n ? 0 : Number(value);
}

function encodeIterator(state: IteratorState): string {
  return Buffer.from(JSON.stringify(state), 'utf8').toString('base64url');
}

/** @throws {StreamArgumentError} when the iterator is not one this store issued. */
function decodeIterator(iterator: unknown): IteratorState {
  let decoded: unknown;
  try {
    decoded =
      typeof iterator === 'string'
        ? JSON.parse(Buffer.from(iterator, 'base64url').toString('utf8'))
        : undefined;
  } catch {
    decoded = undefined;
  }
  const state = decoded as Partial<IteratorState> | undefined;
  const wholeNumber = (value: unknown) =>
    typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
  if (
    state === null ||
    typeof state !== 'object' ||
    typeof state.streamId !== 'string' ||
    !wholeNumber(state.shard) ||
    !wholeNumber(state.after) ||
    !wholeNumber(state.issuedAtMs) ||
    (state.minArrivalMs !== undefined && !Number.isSafeInteger(state.minArrivalMs))
  ) {
    throw new StreamArgumentError('invalid shard iterator');
  }
  return state as IteratorState;
}
