import {
  CreateStreamCommand,
  DeleteStreamCommand,
  DescribeStreamSummaryCommand,
  type DescribeStreamSummaryCommandOutput,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type GetShardIteratorCommandInput,
  IncreaseStreamRetentionPeriodCommand,
  type KinesisClient,
  ListShardsCommand,
  type ListShardsCommandInput,
  ListStreamsCommand,
  type ListStreamsCommandInput,
  PutRecordCommand,
  PutRecordsCommand,
  type PutRecordsRequestEntry,
  type Shard,
} from '@aws-sdk/client-kinesis';
import { SluiceError } from '../../core/errors.ts';
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
  type StreamStore,
} from '../../core/ports/stream.ts';

/** Records per `PutRecords` request at most (https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html). */
export const KINESIS_MAX_PUT_RECORDS = 500;
/**
 * Bytes of one `PutRecords` request at most: 5 MiB of data blobs plus partition keys (UTF-8),
 * before base64 (API_PutRecords.html). Larger batches are sent as several requests.
 */
export const KINESIS_MAX_PUT_RECORDS_BYTES = 5 * 1024 * 1024;
/** Bytes of one record's data at most: 1 MiB (https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html). */
export const KINESIS_MAX_RECORD_BYTES = 1024 * 1024;
/** Characters of a partition key at most (API_PutRecord.html). */
export const KINESIS_MAX_PARTITION_KEY_LENGTH = 256;
/** Records per `GetRecords` call: the default and the maximum (API_GetRecords.html). */
export const KINESIS_MAX_GET_RECORDS = 10_000;
/** Shards per stream the port accepts, inclusive (the port's limit; AWS's is an account quota). */
export const KINESIS_SHARD_COUNT_LIMITS = { min: 1, max: 1024 } as const;
/** Retention in hours, inclusive: 24 h .. 365 days (API_IncreaseStreamRetentionPeriod.html). */
export const KINESIS_RETENTION_HOURS_LIMITS = { min: 24, max: 8760 } as const;
/** Retention of a new stream in hours: Kinesis's default. */
export const KINESIS_DEFAULT_RETENTION_HOURS = 24;

const NAME_PATTERN = /^[a-zA-Z0-9_.-]{1,128}$/;
const PREFIX_PATTERN = /^[a-zA-Z0-9_.-]*$/;
/** `SequenceNumber` pattern of the Kinesis API (API_GetShardIterator.html). */
const SEQUENCE_PATTERN = /^(0|[1-9]\d{0,128})$/;
/** Per-record `ErrorCode`s of `PutRecords` worth resending (API_PutRecords.html). */
const RETRYABLE_RECORD_ERRORS = new Set([
  'ProvisionedThroughputExceededException',
  'InternalFailure',
  'KMSThrottlingException',
]);

/** Options of {@link KinesisStreamStore}. */
export interface KinesisStreamStoreOptions {
  /**
   * Prepended to every port stream name to form the Kinesis stream name (`sluice-nba-` +
   * `tweets`); `[a-zA-Z0-9_.-]*`. `listStreams` shows only streams with the prefix, stripped.
   */
  readonly streamPrefix: string;
  /**
   * Longest pause between two status polls while a stream is created, updated or deleted, in ms
   * (default 1,000). Polls start at 50 ms and double up to this.
   */
  readonly pollIntervalMs?: number;
  /** How long `createStream`/`deleteStream` wait for the status to settle, in ms (default 300,000). */
  readonly maxWaitMs?: number;
  /**
   * How often `putRecords` resends the records Kinesis failed with a retryable per-record error
   * (`ProvisionedThroughputExceededException`, `InternalFailure`, `KMSThrottlingException`),
   * default 3; records still failing are reported in the result.
   */
  readonly putRetries?: number;
  /** First backoff before such a resend, in ms (default 100), doubled per attempt, at most 5,000. */
  readonly retryBaseDelayMs?: number;
  /** Waits `ms` milliseconds (default `setTimeout`); tests inject one that does not sleep. */
  readonly sleep?: (ms: number) => Promise<void>;
}

/**
 * The throughput of a shard or the account's control-plane rate was exceeded after the SDK's own
 * retries (Kinesis `ProvisionedThroughputExceededException`, `LimitExceededException`, or
 * `KMSThrottlingException`); `name` is the Kinesis exception name, so an ASL `Retry` matches it.
 * Retryable: back off and call again.
 */
export class StreamThrottledError extends SluiceError {
  constructor(name: string, message: string, options: { cause?: unknown } = {}) {
    super(message, { code: 'stream_throttled', retryable: true, ...options });
    this.name = name;
  }
}

/**
 * The {@link StreamStore} port on Amazon Kinesis Data Streams
 * (https://docs.aws.amazon.com/kinesis/latest/APIReference/), through an SDK v3 `KinesisClient`
 * the caller configures (region, credentials from the default chain, an emulator endpoint in
 * tests; kinesalite needs `requestHandler: new NodeHttpHandler()`).
 *
 * - **Names**: the Kinesis stream is `<streamPrefix><name>`; both the port name and the whole
 *   Kinesis name must match `[a-zA-Z0-9_.-]{1,128}`, checked before any call.
 * - **Lifecycle**: `createStream` calls `CreateStream` (provisioned mode, `ShardCount`), waits for
 *   `ACTIVE` by polling `DescribeStreamSummary`, then for a retention other than 24 h calls
 *   `IncreaseStreamRetentionPeriod` and waits again (if that fails, the stream exists with 24 h).
 *   `deleteStream` calls `DeleteStream` with `EnforceConsumerDeletion` and waits until the stream
 *   is gone, so the port's "deleted on return" holds. Waiting is bounded by `maxWaitMs`.
 * - **Describe**: `DescribeStreamSummary` plus `ListShards` (paginated), shards sorted by id;
 *   every shard is listed, also shards closed by a reshard (sluice never reshards). `streamId` is
 *   `<StreamARN>@<StreamCreationTimestamp ISO>`; `createdAt` is the creation time (Kinesis gives
 *   it to the second). A stream in `DELETING` is reported as not found; one in `CREATING` or
 *   `UPDATING` is waited for / reported as `ACTIVE` (it takes reads and writes).
 * - **Puts**: limits checked client-side as the port says (1..500 records, keys of 1..256
 *   characters, data up to 1 MiB), so a bad record refuses the whole request before anything is
 *   sent. A batch over 5 MiB is sent as several `PutRecords` requests in order. Records Kinesis
 *   fails with a retryable per-record error are resent with exponential backoff up to
 *   `putRetries` times; a resent record lands after the records of its batch that succeeded
 *   (Kinesis gives `PutRecords` no ordering guarantee across failures; use `putRecord` for a
 *   strict per-key order). Records still failing come back as `{errorCode, errorMessage}` and
 *   count in `failedRecordCount`. If a later request of a split batch fails as a whole, its
 *   records and the rest are reported failed with the error's name.
 * - **Reads**: `getShardIterator` validates the position client-side, then calls
 *   `GetShardIterator`; iterators are Kinesis's own (opaque, valid 5 minutes). `getRecords`
 *   passes Kinesis's `NextShardIterator` (`null` once a closed shard is read to its end, or never
 *   on an open one), records and `MillisBehindLatest` through.
 * - **Errors**: `ResourceNotFoundException` -> {@link StreamNotFoundError},
 *   `ResourceInUseException` on create -> {@link StreamExistsError}, `ExpiredIteratorException` ->
 *   {@link ExpiredIteratorError}, `InvalidArgumentException`/`ValidationException` ->
 *   {@link StreamArgumentError}, throttling (after the SDK's retries) -> {@link StreamThrottledError};
 *   anything else -> a {@link SluiceError} named as the AWS error, retryable for 5xx and
 *   transient network errors. Messages name the port and Kinesis stream.
 *
 * Not covered: enhanced fan-out, on-demand capacity mode, server-side encryption settings
 * (the CDK stack sets those), resharding.
 */
export class KinesisStreamStore implements StreamStore {
  private readonly prefix: string;
  private readonly pollIntervalMs: number;
  private readonly maxWaitMs: number;
  private readonly putRetries: number;
  private readonly retryBaseDelayMs: number;
  private readonly sleep: (ms: number) => Promise<void>;

  /**
   * @param client an SDK v3 Kinesis client (the store never closes it).
   * @throws {StreamArgumentError} when `streamPrefix` has characters Kinesis refuses in names.
   */
  constructor(
    private readonly client: KinesisClient,
    options: KinesisStreamStoreOptions,
  ) {
    if (!PREFIX_PATTERN.test(options.streamPrefix) || options.streamPrefix.length > 127) {
      throw new StreamArgumentError(
        `Kinesis stream prefix must match [a-zA-Z0-9_.-]{0,127}, got ${JSON.stringify(options.streamPrefix)}`,
      );
    }
    this.prefix = options.streamPrefix;
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.maxWaitMs = options.maxWaitMs ?? 300_000;
    this.putRetries = options.putRetries ?? 3;
    this.retryBaseDelayMs = options.retryBaseDelayMs ?? 100;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  async createStream(
    name: string,
    options: { shardCount?: number; retentionHours?: number } = {},
  ): Promise<StreamDescription> {
    const full = this.kinesisName(name);
    const shardCount = options.shardCount ?? 1;
    const retentionHours = options.retentionHours ?? KINESIS_DEFAULT_RETENTION_HOURS;
    const { min: minShards, max: maxShards } = KINESIS_SHARD_COUNT_LIMITS;
    if (!Number.isInteger(shardCount) || shardCount < minShards || shardCount > maxShards) {
      throw new StreamArgumentError(
        `stream "${name}" (Kinesis "${full}"): shardCount must be an integer in ${minShards}..${maxShards}, got ${shardCount}`,
      );
    }
    const { min: minHours, max: maxHours } = KINESIS_RETENTION_HOURS_LIMITS;
    if (!Number.isInteger(retentionHours) || retentionHours < minHours || retentionHours > maxHours) {
      throw new StreamArgumentError(
        `stream "${name}" (Kinesis "${full}"): retentionHours must be an integer in ${minHours}..${maxHours}, got ${retentionHours}`,
      );
    }
    try {
      await this.client.send(new CreateStreamCommand({ StreamName: full, ShardCount: shardCount }));
    } catch (error) {
      if (awsErrorName(error) === 'ResourceInUseException') {
        throw new StreamExistsError(
          `stream "${name}" (Kinesis "${full}") already exists (or is being deleted); expected no stream of that name`,
          { cause: error },
        );
      }
      throw mapKinesisError(error, `creating stream "${name}" (Kinesis "${full}")`);
    }
    await this.waitActive(name, full);
    if (retentionHours !== KINESIS_DEFAULT_RETENTION_HOURS) {
      await this.call(
        `setting the retention of stream "${name}" (Kinesis "${full}") to ${retentionHours} h`,
        () =>
          this.client.send(
            new IncreaseStreamRetentionPeriodCommand({
              StreamName: full,
              RetentionPeriodHours: retentionHours,
            }),
          ),
      );
      await this.waitActive(name, full);
    }
    return this.describeStream(name);
  }

  async deleteStream(name: string): Promise<void> {
    const full = this.kinesisName(name);
    await this.call(`deleting stream "${name}" (Kinesis "${full}")`, () =>
      this.client.send(new DeleteStreamCommand({ StreamName: full, EnforceConsumerDeletion: true })),
    );
    let waited = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.summary(name, full);
      } catch (error) {
        if (error instanceof StreamNotFoundError) return;
        throw error;
      }
      waited += await this.pause(attempt, waited, `deletion of stream "${name}" (Kinesis "${full}")`);
    }
  }

  async describeStream(name: string): Promise<StreamDescription> {
    const full = this.kinesisName(name);
    let summary = await this.summary(name, full);
    if (summary.StreamStatus === 'CREATING') summary = await this.waitActive(name, full);
    const shards: Shard[] = [];
    let input: ListShardsCommandInput = { StreamName: full };
    for (;;) {
      const page = await this.call(`listing the shards of stream "${name}" (Kinesis "${full}")`, () =>
        this.client.send(new ListShardsCommand(input)),
      );
      shards.push(...(page.Shards ?? []));
      if (!page.NextToken) break;
      // With NextToken, ListShards refuses StreamName (API_ListShards.html).
      input = { NextToken: page.NextToken };
    }
    shards.sort((a, b) => ((a.ShardId ?? '') < (b.ShardId ?? '') ? -1 : 1));
    const created = summary.StreamCreationTimestamp ?? new Date(0);
    return {
      name,
      streamId: `${summary.StreamARN ?? full}@${created.toISOString()}`,
      status: 'ACTIVE',
      shards: shards.map(
        (shard): ShardDescription => ({
          shardId: shard.ShardId ?? '',
          hashKeyRange: {
            startingHashKey: shard.HashKeyRange?.StartingHashKey ?? '',
            endingHashKey: shard.HashKeyRange?.EndingHashKey ?? '',
          },
        }),
      ),
      retentionHours: summary.RetentionPeriodHours ?? KINESIS_DEFAULT_RETENTION_HOURS,
      createdAt: created.toISOString(),
    };
  }

  async listStreams(): Promise<string[]> {
    const names: string[] = [];
    // ListStreams returns names in ascending order: start just before the prefix.
    let input: ListStreamsCommandInput = {
      Limit: 1000,
      ...(this.prefix === '' ? {} : { ExclusiveStartStreamName: this.prefix }),
    };
    for (;;) {
      const page = await this.call('listing Kinesis streams', () =>
        this.client.send(new ListStreamsCommand(input)),
      );
      const pageNames = page.StreamNames ?? [];
      const deleting = new Set(
        (page.StreamSummaries ?? []).filter((s) => s.StreamStatus === 'DELETING').map((s) => s.StreamName),
      );
      let past = false;
      for (const full of pageNames) {
        if (full.startsWith(this.prefix)) {
          const name = full.slice(this.prefix.length);
          if (name !== '' && !deleting.has(full)) names.push(name);
        } else if (full > this.prefix) past = true;
      }
      const last = pageNames.at(-1);
      if (past || !page.HasMoreStreams || last === undefined) break;
      input = page.NextToken
        ? { NextToken: page.NextToken, Limit: 1000 }
        : { ExclusiveStartStreamName: last, Limit: 1000 };
    }
    return names.sort();
  }

  async putRecord(name: string, record: PutRecordInput): Promise<PutRecordResult> {
    const full = this.kinesisName(name);
    const entry = toEntry(name, record, 0);
    const output = await this.call(`putting a record to stream "${name}" (Kinesis "${full}")`, () =>
      this.client.send(
        new PutRecordCommand({ StreamName: full, PartitionKey: entry.PartitionKey, Data: entry.Data }),
      ),
    );
    return { shardId: output.ShardId ?? '', sequenceNumber: output.SequenceNumber ?? '' };
  }

  async putRecords(name: string, records: readonly PutRecordInput[]): Promise<PutRecordsResult> {
    const full = this.kinesisName(name);
    if (!Array.isArray(records) || records.length === 0 || records.length > KINESIS_MAX_PUT_RECORDS) {
      throw new StreamArgumentError(
        `stream "${name}" (Kinesis "${full}"): putRecords takes 1..${KINESIS_MAX_PUT_RECORDS} records, got ${Array.isArray(records) ? records.length : typeof records}`,
      );
    }
    const entries = records.map((record, i) => toEntry(name, record, i));
    const results: PutRecordsResult['records'][number][] = new Array(entries.length);
    let start = 0;
    for (const end of requestBoundaries(entries)) {
      try {
        await this.putBatch(name, full, entries, start, end, results);
      } catch (error) {
        if (start === 0) throw error;
        // Earlier requests were written: report this one and the rest as failed, to resend.
        const errorCode = error instanceof Error ? error.name : 'Error';
        const errorMessage = error instanceof Error ? error.message : String(error);
        for (let i = start; i < entries.length; i++) results[i] = { errorCode, errorMessage };
        break;
      }
      start = end;
    }
    return {
      failedRecordCount: results.filter((r) => 'errorCode' in r).length,
      records: results,
    };
  }

  async getShardIterator(name: string, shardId: string, position: ShardIteratorPosition): Promise<string> {
    const full = this.kinesisName(name);
    const where = `stream "${name}" (Kinesis "${full}") shard ${JSON.stringify(shardId)}`;
    const input: GetShardIteratorCommandInput = {
      StreamName: full,
      ShardId: shardId,
      ShardIteratorType: undefined,
    };
    switch (position?.type) {
      case 'TRIM_HORIZON':
      case 'LATEST':
        input.ShardIteratorType = position.type;
        break;
      case 'AT_SEQUENCE_NUMBER':
      case 'AFTER_SEQUENCE_NUMBER': {
        const sequenceNumber: unknown = position.sequenceNumber;
        if (typeof sequenceNumber !== 'string' || !SEQUENCE_PATTERN.test(sequenceNumber)) {
          throw new StreamArgumentError(
            `${where}: ${position.type} needs a sequenceNumber matching 0|[1-9]\\d{0,128}, got ${JSON.stringify(sequenceNumber) ?? String(sequenceNumber)}`,
          );
        }
        input.ShardIteratorType = position.type;
        input.StartingSequenceNumber = sequenceNumber;
        break;
      }
      case 'AT_TIMESTAMP': {
        const timestamp: unknown = position.timestamp;
        if (!(timestamp instanceof Date) || Number.isNaN(timestamp.getTime())) {
          throw new StreamArgumentError(`${where}: AT_TIMESTAMP needs a valid Date timestamp`);
        }
        input.ShardIteratorType = 'AT_TIMESTAMP';
        input.Timestamp = timestamp;
        break;
      }
      default:
        throw new StreamArgumentError(
          `${where}: unknown shard iterator type ${JSON.stringify((position as { type?: unknown } | undefined)?.type)}; expected TRIM_HORIZON, LATEST, AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER or AT_TIMESTAMP`,
        );
    }
    const output = await this.call(`getting a shard iterator for ${where}`, () =>
      this.client.send(new GetShardIteratorCommand(input)),
    );
    if (!output.ShardIterator) {
      throw new SluiceError(`getting a shard iterator for ${where}: Kinesis returned none`, {
        code: 'stream_unavailable',
        retryable: true,
      });
    }
    return output.ShardIterator;
  }

  async getRecords(iterator: string, options: { limit?: number } = {}): Promise<GetRecordsResult> {
    const limit = options.limit ?? KINESIS_MAX_GET_RECORDS;
    if (!Number.isInteger(limit) || limit < 1 || limit > KINESIS_MAX_GET_RECORDS) {
      throw new StreamArgumentError(
        `getRecords: limit must be an integer in 1..${KINESIS_MAX_GET_RECORDS}, got ${limit}`,
      );
    }
    if (typeof iterator !== 'string' || iterator.length === 0 || iterator.length > 512) {
      throw new StreamArgumentError(
        'getRecords: invalid shard iterator (expected the 1..512-character string GetShardIterator or GetRecords returned)',
      );
    }
    const output = await this.call('reading records with a shard iterator', () =>
      this.client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: limit })),
    );
    return {
      records: (output.Records ?? []).map((record) => ({
        sequenceNumber: record.SequenceNumber ?? '',
        partitionKey: record.PartitionKey ?? '',
        data: record.Data ?? new Uint8Array(0),
        approximateArrivalTimestamp: record.ApproximateArrivalTimestamp ?? new Date(0),
      })),
      nextShardIterator: output.NextShardIterator ?? null,
      millisBehindLatest: output.MillisBehindLatest ?? 0,
    };
  }

  /** The Kinesis name of port stream `name`. @throws {StreamArgumentError} for a name Kinesis refuses. */
  private kinesisName(name: string): string {
    if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
      throw new StreamArgumentError(
        `stream name must match [a-zA-Z0-9_.-]{1,128}, got ${JSON.stringify(name) ?? String(name)}`,
      );
    }
    const full = `${this.prefix}${name}`;
    if (full.length > 128) {
      throw new StreamArgumentError(
        `stream name "${name}" is too long: with the prefix "${this.prefix}" the Kinesis name has ${full.length} characters, over 128`,
      );
    }
    return full;
  }

  /** Runs one SDK call, mapping its errors ({@link mapKinesisError}) with `doing` as context. */
  private async call<Output>(doing: string, send: () => Promise<Output>): Promise<Output> {
    try {
      return await send();
    } catch (error) {
      throw mapKinesisError(error, doing);
    }
  }

  private async summary(
    name: string,
    full: string,
  ): Promise<NonNullable<DescribeStreamSummaryCommandOutput['StreamDescriptionSummary']>> {
    const output = await this.call(`describing stream "${name}" (Kinesis "${full}")`, () =>
      this.client.send(new DescribeStreamSummaryCommand({ StreamName: full })),
    );
    const summary = output.StreamDescriptionSummary;
    if (summary === undefined || summary.StreamStatus === 'DELETING') {
      throw new StreamNotFoundError(`stream "${name}" (Kinesis "${full}") is being deleted`);
    }
    return summary;
  }

  /** Polls until the stream is `ACTIVE`; returns its summary. */
  private async waitActive(
    name: string,
    full: string,
  ): Promise<NonNullable<DescribeStreamSummaryCommandOutput['StreamDescriptionSummary']>> {
    let waited = 0;
    for (let attempt = 0; ; attempt++) {
      const summary = await this.summary(name, full);
      if (summary.StreamStatus === 'ACTIVE') return summary;
      waited += await this.pause(attempt, waited, `stream "${name}" (Kinesis "${full}") to become ACTIVE`);
    }
  }

  /** Sleeps before poll `attempt + 1`; returns the ms slept. @throws {SluiceError} past `maxWaitMs`. */
  private async pause(attempt: number, waited: number, what: string): Promise<number> {
    if (waited >= this.maxWaitMs) {
      throw new SluiceError(`gave up waiting for ${what} after ${waited} ms`, {
        code: 'stream_not_ready',
        retryable: true,
      });
    }
    const ms = Math.min(this.pollIntervalMs, 50 * 2 ** Math.min(attempt, 16));
    await this.sleep(ms);
    return ms;
  }

  /**
   * Puts `entries[start..end)` with `PutRecords`, resending retryable per-record failures, and
   * writes each record's outcome into `results`.
   */
  private async putBatch(
    name: string,
    full: string,
    entries: readonly PutRecordsRequestEntry[],
    start: number,
    end: number,
    results: PutRecordsResult['records'][number][],
  ): Promise<void> {
    let pending = Array.from({ length: end - start }, (_, i) => start + i);
    for (let attempt = 0; ; attempt++) {
      const output = await this.call(
        `putting ${pending.length} records to stream "${name}" (Kinesis "${full}")`,
        () =>
          this.client.send(
            new PutRecordsCommand({ StreamName: full, Records: pending.map((i) => entries[i]!) }),
          ),
      );
      const retry: number[] = [];
      pending.forEach((index, j) => {
        const entry = output.Records?.[j];
        if (entry?.ErrorCode) {
          results[index] = { errorCode: entry.ErrorCode, errorMessage: entry.ErrorMessage ?? '' };
          if (RETRYABLE_RECORD_ERRORS.has(entry.ErrorCode)) retry.push(index);
        } else {
          results[index] = { shardId: entry?.ShardId ?? '', sequenceNumber: entry?.SequenceNumber ?? '' };
        }
      });
      if (retry.length === 0 || attempt >= this.putRetries) return;
      await this.sleep(Math.min(5000, this.retryBaseDelayMs * 2 ** attempt));
      pending = retry;
    }
  }
}

/**
 * Maps an AWS SDK error from a Kinesis call to sluice's stream errors (see
 * {@link KinesisStreamStore}); `doing` says what was attempted (it names the stream).
 */
export function mapKinesisError(error: unknown, doing: string): Error {
  if (error instanceof SluiceError) return error;
  const name = awsErrorName(error);
  const detail = error instanceof Error ? error.message : String(error);
  const message = `${doing}: ${name}: ${detail}`;
  switch (name) {
    case 'ResourceNotFoundException':
      return new StreamNotFoundError(`${doing}: the stream or shard does not exist (${detail})`, {
        cause: error,
      });
    case 'ResourceInUseException':
      return Object.assign(
        new SluiceError(`${message} (the stream is being created, updated or deleted)`, {
          code: 'stream_busy',
          retryable: true,
          cause: error,
        }),
        { name },
      );
    case 'ExpiredIteratorException':
      return new ExpiredIteratorError(
        `${doing}: the shard iterator expired (older than 5 minutes); get a new one (${detail})`,
        { cause: error },
      );
    case 'InvalidArgumentException':
    case 'ValidationException':
      return new StreamArgumentError(message, { cause: error });
    case 'ProvisionedThroughputExceededException':
    case 'LimitExceededException':
    case 'KMSThrottlingException':
      return new StreamThrottledError(name, `${message}; back off and retry`, { cause: error });
    default: {
      const meta = (error as { $metadata?: { httpStatusCode?: number }; $retryable?: unknown } | null)
        ?.$metadata;
      const status = meta?.httpStatusCode;
      const network =
        error instanceof Error &&
        /ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|socket hang up|TimeoutError/.test(`${error.name} ${detail}`);
      const retryable =
        (status !== undefined && status >= 500) ||
        network ||
        Boolean((error as { $retryable?: unknown } | null)?.$retryable);
      return Object.assign(
        new SluiceError(message, {
          code: retryable ? 'stream_unavailable' : 'stream_error',
          retryable,
          cause: error,
        }),
        { name: name === 'Error' ? 'SluiceError' : name },
      );
    }
  }
}

/** The AWS error name (`ResourceNotFoundException`) of an SDK error. */
function awsErrorName(error: unknown): string {
  if (error && typeof error === 'object') {
    const named = error as { name?: unknown; Code?: unknown; __type?: unknown };
    if (typeof named.name === 'string' && named.name !== 'Error') return named.name;
    if (typeof named.Code === 'string') return named.Code;
  }
  return 'Error';
}

/** A `PutRecords` entry of a port record. @throws {StreamArgumentError} naming the record. */
function toEntry(stream: string, record: PutRecordInput, index: number): PutRecordsRequestEntry {
  const key: unknown = record?.partitionKey;
  if (
    typeof key !== 'string' ||
    key.length === 0 ||
    (key.length > KINESIS_MAX_PARTITION_KEY_LENGTH && [...key].length > KINESIS_MAX_PARTITION_KEY_LENGTH)
  ) {
    const got = typeof key === 'string' ? `${[...key].length} characters` : typeof key;
    throw new StreamArgumentError(
      `stream "${stream}": record ${index}: partition key must be a string of 1..${KINESIS_MAX_PARTITION_KEY_LENGTH} characters, got ${got}`,
    );
  }
  const data: unknown = record?.data;
  let bytes: Uint8Array;
  if (typeof data === 'string') bytes = Buffer.from(data, 'utf8');
  else if (data instanceof Uint8Array) bytes = data;
  else {
    throw new StreamArgumentError(
      `stream "${stream}": record ${index}: data must be a Uint8Array or a string`,
    );
  }
  if (bytes.byteLength > KINESIS_MAX_RECORD_BYTES) {
    throw new StreamArgumentError(
      `stream "${stream}": record ${index}: data is ${bytes.byteLength} bytes, over the ${KINESIS_MAX_RECORD_BYTES}-byte (1 MiB) limit`,
    );
  }
  return { PartitionKey: key, Data: bytes };
}

/**
 * Ends (exclusive indexes) of consecutive runs of `entries` that fit one `PutRecords` request:
 * at most 500 records and {@link KINESIS_MAX_PUT_RECORDS_BYTES} of data plus partition keys.
 */
export function requestBoundaries(entries: readonly PutRecordsRequestEntry[]): number[] {
  const ends: number[] = [];
  let bytes = 0;
  let count = 0;
  entries.forEach((entry, i) => {
    const size = (entry.Data?.byteLength ?? 0) + Buffer.byteLength(entry.PartitionKey ?? '', 'utf8');
    if (count > 0 && (bytes + size > KINESIS_MAX_PUT_RECORDS_BYTES || count >= KINESIS_MAX_PUT_RECORDS)) {
      ends.push(i);
      bytes = 0;
      count = 0;
    }
    bytes += size;
    count++;
  });
  ends.push(entries.length);
  return ends;
}
