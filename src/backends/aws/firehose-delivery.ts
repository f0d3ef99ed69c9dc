import {
  type FirehoseClient,
  PutRecordBatchCommand,
  type PutRecordBatchCommandOutput,
} from '@aws-sdk/client-firehose';
import type {
  FirehoseTransformationEvent,
  FirehoseTransformationResult,
  FirehoseTransformationResultRecord,
} from 'aws-lambda';
import { NotFoundError, SluiceError } from '../../core/errors.ts';
import { escapePartitionValue } from '../../core/partition.ts';
import type { DeliveryTransform, TransformOutput } from '../../engines/delivery/delivery-stream.ts';

/** Records per `PutRecordBatch` request at most (https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html). */
export const FIREHOSE_MAX_BATCH_RECORDS = 500;
/** Bytes of record data per `PutRecordBatch` request at most: 4 MiB, before base64 (API_PutRecordBatch.html). */
export const FIREHOSE_MAX_BATCH_BYTES = 4 * 1024 * 1024;
/** Bytes of one record at most: 1,000 KiB, before base64 (https://docs.aws.amazon.com/firehose/latest/dev/limits.html). */
export const FIREHOSE_MAX_RECORD_BYTES = 1000 * 1024;

/** Options of {@link FirehoseDeliveryClient}. */
export interface FirehoseDeliveryOptions {
  /** The Firehose stream (`DeliveryStreamName`), e.g. `sluice-nba-tweets`. */
  readonly deliveryStreamName: string;
  /**
   * How often records that `PutRecordBatch` failed (`FailedPutCount` > 0; per-record
   * `ServiceUnavailableException` or `InternalFailure`) are resent, default 4; records still
   * failing are reported (and kept buffered by {@link FirehoseDeliveryClient.flush}).
   */
  readonly retries?: number;
  /** First backoff before a resend, in ms (default 100), doubled per attempt, at most {@link maxDelayMs}. */
  readonly retryBaseDelayMs?: number;
  /** Longest backoff, in ms (default 5,000). */
  readonly maxDelayMs?: number;
  /**
   * Appends `\n` to every record before sending (default false). Use it when no transform Lambda
   * runs (Firehose concatenates records as they are); with {@link firehoseTransformHandler} the
   * Lambda adds the newline.
   */
  readonly newlineDelimited?: boolean;
  /** Waits `ms` milliseconds (default `setTimeout`); tests inject one that does not sleep. */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Outcome of one record of {@link FirehoseDeliveryClient.putRecordBatch}: Firehose's `RecordId`, or why it failed. */
export type FirehosePutRecordResult =
  | { readonly recordId: string }
  | { readonly errorCode: string; readonly errorMessage: string };

/** Result of {@link FirehoseDeliveryClient.putRecordBatch}: one entry per input record, in order. */
export interface FirehosePutResult {
  readonly failedRecordCount: number;
  readonly records: readonly FirehosePutRecordResult[];
}

/** Counts of a {@link FirehoseDeliveryClient}: records accepted by Firehose, and attempts that failed for good. */
export interface FirehoseDeliveryStats {
  /** Records given to `put`/`putRecordBatch`. */
  received: number;
  /** Records Firehose accepted (has a `RecordId` for). */
  delivered: number;
  /** Records that failed after all resends (each time they failed). */
  failed: number;
  /** `PutRecordBatch` requests sent, resends included. */
  requests: number;
}

/**
 * Records Firehose did not accept after every resend; the records stay in the client's buffer
 * (a later {@link FirehoseDeliveryClient.flush} sends them again). Retryable.
 */
export class FirehoseDeliveryError extends SluiceError {
  /** Per failed record: `ErrorCode` and `ErrorMessage` of the last attempt. */
  readonly failures: readonly { readonly errorCode: string; readonly errorMessage: string }[];

  constructor(
    message: string,
    failures: FirehoseDeliveryError['failures'],
    options: { cause?: unknown } = {},
  ) {
    super(message, { code: 'delivery_failed', retryable: true, ...options });
    this.failures = failures;
  }
}

/**
 * The producer side of an Amazon Data Firehose stream: the AWS counterpart of `put` on the local
 * `DeliveryStream` (src/engines/delivery/delivery-stream.ts). Firehose itself buffers, transforms
 * (with {@link firehoseTransformHandler} as its Lambda), partitions and writes to S3; this client
 * only gets records to it, with `PutRecordBatch`
 * (https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html):
 *
 * - at most {@link FIREHOSE_MAX_BATCH_RECORDS} records and {@link FIREHOSE_MAX_BATCH_BYTES} of data
 *   per request (larger inputs are split into several requests, in order); a record over
 *   {@link FIREHOSE_MAX_RECORD_BYTES} is refused before anything is sent;
 * - records the response marks failed (`FailedPutCount` > 0, `RequestResponses[i].ErrorCode`) are
 *   resent, and only those, with exponential backoff (no jitter), up to `retries` times, as the API
 *   reference advises; the SDK base64-encodes `Data`. A resend may duplicate a record Firehose did
 *   store despite an error (Firehose is at-least-once; downstream deduplicates, as the nba
 *   pipeline's dedup step does).
 * - whole-request errors: `ResourceNotFoundException` -> {@link NotFoundError} (naming the stream),
 *   `InvalidArgumentException` / `InvalidKMSResourceException` / `ValidationException` -> a
 *   terminal {@link SluiceError}, `ServiceUnavailableException` (after the SDK's retries) and 5xx ->
 *   a retryable one; each keeps the AWS error name (for ASL `Retry`/`Catch`).
 *
 * Two ways in: {@link putRecordBatch} sends what it is given and returns per-record results;
 * {@link put} buffers single records (sending when a request is full) and {@link flush} /
 * {@link close} send the rest, throwing {@link FirehoseDeliveryError} for records that still
 * failed (they stay buffered).
 */
export class FirehoseDeliveryClient {
  /** Running counts; read them after `close`. */
  readonly stats: FirehoseDeliveryStats = { received: 0, delivered: 0, failed: 0, requests: 0 };
  private readonly name: string;
  private readonly retries: number;
  private readonly retryBaseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly newline: boolean;
  private readonly sleep: (ms: number) => Promise<void>;
  private buffer: Uint8Array[] = [];
  private bufferBytes = 0;
  private closed = false;

  /** @param client an SDK v3 Firehose client (region and credentials from the default chain); never closed here. */
  constructor(
    private readonly client: FirehoseClient,
    options: FirehoseDeliveryOptions,
  ) {
    if (!/^[a-zA-Z0-9_.-]{1,64}$/.test(options.deliveryStreamName)) {
      throw new SluiceError(
        `Firehose stream name must match [a-zA-Z0-9_.-]{1,64}, got ${JSON.stringify(options.deliveryStreamName)}`,
        { code: 'invalid_argument' },
      );
    }
    this.name = options.deliveryStreamName;
    this.retries = options.retries ?? 4;
    this.retryBaseDelayMs = options.retryBaseDelayMs ?? 100;
    this.maxDelayMs = options.maxDelayMs ?? 5000;
    this.newline = options.newlineDelimited ?? false;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /** Records buffered by {@link put} and not yet accepted by Firehose. */
  get buffered(): number {
    return this.buffer.length;
  }

  /**
   * Buffers one record (a string as UTF-8); sends the buffer first when this record would make
   * the request exceed 500 records or 4 MiB.
   * @throws {SluiceError} `invalid_argument` for a record over 1,000 KiB or after `close`.
   * @throws {FirehoseDeliveryError} / mapped AWS errors from the send (see {@link flush}).
   */
  async put(data: string | Uint8Array): Promise<void> {
    if (this.closed) {
      throw new SluiceError(`Firehose client for "${this.name}" is closed`, { code: 'invalid_argument' });
    }
    const bytes = this.encode(data, this.stats.received);
    this.stats.received++;
    if (
      this.buffer.length >= FIREHOSE_MAX_BATCH_RECORDS ||
      this.bufferBytes + bytes.byteLength > FIREHOSE_MAX_BATCH_BYTES
    ) {
      await this.flush();
    }
    this.buffer.push(bytes);
    this.bufferBytes += bytes.byteLength;
    if (this.buffer.length >= FIREHOSE_MAX_BATCH_RECORDS) await this.flush();
  }

  /**
   * Sends every buffered record. Records that failed after all resends stay buffered.
   * @throws {FirehoseDeliveryError} when some records still failed (retryable: flush again later).
   * @throws {NotFoundError} when the Firehose stream does not exist; other AWS errors mapped as
   *   {@link mapFirehoseError} says (the buffer is kept).
   */
  async flush(): Promise<void> {
    if (this.buffer.length === 0) return;
    const pending = this.buffer;
    const result = await this.send(pending);
    const failed: Uint8Array[] = [];
    const failures: { errorCode: string; errorMessage: string }[] = [];
    result.records.forEach((r, i) => {
      if ('errorCode' in r) {
        failed.push(pending[i]!);
        failures.push(r);
      }
    });
    this.buffer = failed;
    this.bufferBytes = failed.reduce((n, b) => n + b.byteLength, 0);
    if (failed.length > 0) {
      throw new FirehoseDeliveryError(
        `Firehose stream "${this.name}": ${failed.length} of ${pending.length} records were not accepted after ${this.retries} resends (first: ${failures[0]!.errorCode}: ${failures[0]!.errorMessage}); they stay buffered for the next flush`,
        failures,
      );
    }
  }

  /** Flushes and refuses further puts. Idempotent once it succeeded. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
  }

  /**
   * Puts `records` (any number; strings as UTF-8) with as many `PutRecordBatch` requests as the
   * limits need, resending failed records; returns one result per record, in order. Does not
   * touch the {@link put} buffer.
   * @throws {SluiceError} `invalid_argument` for a record over 1,000 KiB (nothing is sent).
   * @throws mapped AWS errors ({@link mapFirehoseError}) when the first request fails as a whole;
   *   when a later one does, its records and the rest are reported failed with the error's name.
   */
  async putRecordBatch(records: readonly (string | Uint8Array)[]): Promise<FirehosePutResult> {
    const encoded = records.map((data, i) => this.encode(data, i));
    this.stats.received += encoded.length;
    return this.send(encoded);
  }

  private encode(data: string | Uint8Array, index: number): Uint8Array {
    let bytes: Uint8Array;
    if (typeof data === 'string') bytes = Buffer.from(this.newline ? `${data}\n` : data, 'utf8');
    else if (data instanceof Uint8Array)
      bytes = this.newline ? Buffer.concat([data, Buffer.from('\n')]) : data;
    else {
      throw new SluiceError(
        `Firehose stream "${this.name}": record ${index}: data must be a string or a Uint8Array`,
        {
          code: 'invalid_argument',
        },
      );
    }
    if (bytes.byteLength > FIREHOSE_MAX_RECORD_BYTES) {
      throw new SluiceError(
        `Firehose stream "${this.name}": record ${index} is ${bytes.byteLength} bytes, over the ${FIREHOSE_MAX_RECORD_BYTES}-byte (1,000 KiB) record limit`,
        { code: 'invalid_argument' },
      );
    }
    return bytes;
  }

  /** Sends `records` in limit-sized requests with resends; see {@link putRecordBatch}. */
  private async send(records: readonly Uint8Array[]): Promise<FirehosePutResult> {
    const results: FirehosePutRecordResult[] = new Array(records.length);
    let start = 0;
    for (const end of batchBoundaries(records)) {
      try {
        await this.sendBatch(records, start, end, results);
      } catch (error) {
        if (start === 0) throw error;
        const errorCode = error instanceof Error ? error.name : 'Error';
        const errorMessage = error instanceof Error ? error.message : String(error);
        for (let i = start; i < records.length; i++) results[i] = { errorCode, errorMessage };
        this.stats.failed += records.length - start;
        break;
      }
      start = end;
    }
    return { failedRecordCount: results.filter((r) => 'errorCode' in r).length, records: results };
  }

  private async sendBatch(
    records: readonly Uint8Array[],
    start: number,
    end: number,
    results: FirehosePutRecordResult[],
  ): Promise<void> {
    let pending = Array.from({ length: end - start }, (_, i) => start + i);
    for (let attempt = 0; ; attempt++) {
      this.stats.requests++;
      let output: PutRecordBatchCommandOutput;
      try {
        output = await this.client.send(
          new PutRecordBatchCommand({
            DeliveryStreamName: this.name,
            Records: pending.map((i) => ({ Data: records[i]! })),
          }),
        );
      } catch (error) {
        throw mapFirehoseError(error, `putting ${pending.length} records to Firehose stream "${this.name}"`);
      }
      const retry: number[] = [];
      pending.forEach((index, j) => {
        const response = output.RequestResponses?.[j];
        if (response?.RecordId && !response.ErrorCode) {
          results[index] = { recordId: response.RecordId };
          this.stats.delivered++;
        } else {
          results[index] = {
            errorCode: response?.ErrorCode ?? 'MissingResponse',
            errorMessage: response?.ErrorMessage ?? 'PutRecordBatch returned no response for this record',
          };
          retry.push(index);
        }
      });
      if (retry.length === 0) return;
      if (attempt >= this.retries) {
        this.stats.failed += retry.length;
        return;
      }
      await this.sleep(Math.min(this.maxDelayMs, this.retryBaseDelayMs * 2 ** attempt));
      pending = retry;
    }
  }
}

/** Ends (exclusive) of consecutive runs of `records` that fit one `PutRecordBatch` request (500 records, 4 MiB). */
export function batchBoundaries(records: readonly Uint8Array[]): number[] {
  const ends: number[] = [];
  let bytes = 0;
  let count = 0;
  records.forEach((record, i) => {
    if (
      count > 0 &&
      (count >= FIREHOSE_MAX_BATCH_RECORDS || bytes + record.byteLength > FIREHOSE_MAX_BATCH_BYTES)
    ) {
      ends.push(i);
      bytes = 0;
      count = 0;
    }
    bytes += record.byteLength;
    count++;
  });
  if (records.length > 0) ends.push(records.length);
  return ends;
}

/**
 * Maps an AWS SDK error of a Firehose call to sluice's errors, keeping the AWS name as `name`:
 * `ResourceNotFoundException` -> {@link NotFoundError}; `ServiceUnavailableException`,
 * `LimitExceededException`, throttling and 5xx -> retryable {@link SluiceError}
 * (`delivery_unavailable`); anything else -> terminal (`delivery_error`, e.g.
 * `InvalidArgumentException`, `InvalidKMSResourceException`, `AccessDeniedException`).
 * `doing` names the stream and what was attempted.
 */
export function mapFirehoseError(error: unknown, doing: string): Error {
  if (error instanceof SluiceError) return error;
  const name = error instanceof Error && error.name !== 'Error' ? error.name : 'Error';
  const detail = error instanceof Error ? error.message : String(error);
  if (name === 'ResourceNotFoundException') {
    return Object.assign(
      new NotFoundError(`${doing}: the Firehose stream does not exist or is not ACTIVE (${detail})`, {
        cause: error,
      }),
      { name },
    );
  }
  const status = (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
  const retryable =
    [
      'ServiceUnavailableException',
      'LimitExceededException',
      'ThrottlingException',
      'InvalidSourceException',
    ].includes(name) ||
    (status !== undefined && status >= 500) ||
    /ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|socket hang up|TimeoutError/.test(`${name} ${detail}`);
  return Object.assign(
    new SluiceError(`${doing}: ${name}: ${detail}`, {
      code: retryable ? 'delivery_unavailable' : 'delivery_error',
      retryable,
      cause: error,
    }),
    { name: name === 'Error' ? 'SluiceError' : name },
  );
}

/** Options of {@link firehoseTransformHandler}. */
export interface FirehoseTransformOptions {
  /**
   * Dynamic-partitioning keys every `Ok` record must carry (as `DeliveryStreamOptions.partitionKeys`
   * locally); a record without one, or with an empty value, becomes `ProcessingFailed`. Default:
   * none required.
   */
  readonly partitionKeys?: readonly string[];
  /**
   * Terminate each `Ok` record with `\n` (default true): the stream's S3 objects are then NDJSON,
   * as the local delivery stream writes them. False for a binary or already-delimited format.
   */
  readonly lineDelimited?: boolean;
  /** Told why a record failed (recordId and reason; never the data). Default: nothing. */
  readonly onFailure?: (recordId: string, reason: string) => void;
}

/**
 * A Firehose data-transformation Lambda handler around a sluice {@link DeliveryTransform} (the
 * same function the local `DeliveryStream` calls), per
 * https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html and
 * https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning.html:
 *
 * - Event: `{ invocationId, deliveryStreamArn, region, records: [{ recordId,
 *   approximateArrivalTimestamp (ms since the epoch), data (base64) }] }`. Each record's data is
 *   decoded as UTF-8 and given to `transform(data, { arrivalMs: approximateArrivalTimestamp })`.
 * - Response: `{ records: [{ recordId, result, data, metadata? }] }`, one per input record, same
 *   order and `recordId`s (Firehose requires it).
 *   - `Ok`: `data` is base64 of the transformed text plus `\n` (unless `lineDelimited: false`);
 *     `metadata.partitionKeys` holds the transform's partition keys, each value escaped like a
 *     local partition path segment (`escapePartitionValue`: `/` -> `%2F`, ...), so the S3 prefix
 *     `year=!{partitionKeyFromLambda:year}/` names the same keys as the local backend.
 *   - `Dropped`: `data` is the original (Firehose ignores it).
 *   - `ProcessingFailed` (returned by the transform, thrown by it, a transformed line containing a
 *     newline, or a missing required partition key): `data` is the original, which Firehose writes
 *     under the error output prefix (`processing-failed/`), as the local stream does.
 *
 * The handler never throws for a bad record (a throw would make Firehose retry the whole batch);
 * it is `async` so Lambda's Node runtime can use it directly.
 */
export function firehoseTransformHandler(
  transform: DeliveryTransform,
  options: FirehoseTransformOptions = {},
): (event: FirehoseTransformationEvent) => Promise<FirehoseTransformationResult> {
  const required = options.partitionKeys ?? [];
  const lineDelimited = options.lineDelimited ?? true;
  return async (event) => ({
    records: (event.records ?? []).map((record): FirehoseTransformationResultRecord => {
      const failed = (reason: string): FirehoseTransformationResultRecord => {
        options.onFailure?.(record.recordId, reason);
        return { recordId: record.recordId, result: 'ProcessingFailed', data: record.data };
      };
      let out: TransformOutput;
      try {
        out = transform(Buffer.from(record.data ?? '', 'base64').toString('utf8'), {
          arrivalMs: record.approximateArrivalTimestamp,
        });
      } catch (error) {
        return failed(`transform threw: ${error instanceof Error ? error.message : String(error)}`);
      }
      if (out.result === 'Dropped')
        return { recordId: record.recordId, result: 'Dropped', data: record.data };
      if (out.result === 'ProcessingFailed') return failed(out.reason);
      if (out.result !== 'Ok' || typeof out.data !== 'string') {
        return failed('the transform returned neither Ok with string data, Dropped nor ProcessingFailed');
      }
      if (lineDelimited && out.data.includes('\n'))
        return failed('the transformed record contains a newline');
      for (const key of required) {
        const value = out.partitionKeys?.[key];
        if (value === undefined || value === '') {
          return failed(`partition key "${key}" missing from the transform's output`);
        }
      }
      const data = Buffer.from(lineDelimited ? `${out.data}\n` : out.data, 'utf8').toString('base64');
      const keys = out.partitionKeys;
      if (keys === undefined || Object.keys(keys).length === 0) {
        return { recordId: record.recordId, result: 'Ok', data };
      }
      const partitionKeys: Record<string, string> = {};
      for (const [key, value] of Object.entries(keys)) partitionKeys[key] = escapePartitionValue(value);
      return { recordId: record.recordId, result: 'Ok', data, metadata: { partitionKeys } };
    }),
  });
}
