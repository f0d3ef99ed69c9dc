import type { KinesisStreamEvent } from 'aws-lambda';
import type { JsonValue } from '../../core/ports/kv-table.ts';
import { type BatchResponse, runBatch } from './batch.ts';
import { type AwsRuntime, FUNCTION_ENV, functionContext, type LambdaContext } from './runtime.ts';

/** The partial batch response of {@link handleKinesisEvent}. */
export type KinesisBatchResponse = BatchResponse;

/** One decoded Kinesis record, as a pipeline function receives it in {@link KinesisBatchEvent}. */
export interface KinesisBatchRecord {
  readonly sequenceNumber: string;
  readonly partitionKey: string;
  /** The record's data as UTF-8 text (sluice's producers write JSON lines). */
  readonly data: string;
  /** The data as Kinesis delivered it, base64 (for binary records). */
  readonly dataBase64: string;
  /** ISO-8601 UTC time Kinesis accepted the record (ms precision). */
  readonly approximateArrivalTimestamp: string;
}

/**
 * What a pipeline function receives from {@link handleKinesisEvent}: one batch of one shard, in
 * sequence order.
 * `{ "source": "aws:kinesis", "stream": "nba-tweets", "shardId": "shardId-000000000000",
 *    "records": [{ "sequenceNumber", "partitionKey", "data", "dataBase64", "approximateArrivalTimestamp" }] }`
 */
export interface KinesisBatchEvent {
  readonly source: 'aws:kinesis';
  /** The stream's sluice name: the ARN's name without the backend's `streamPrefix`. */
  readonly stream: string;
  /** The shard of the batch (from the record's `eventID`, `shardId-...:seq`). */
  readonly shardId: string;
  readonly records: readonly KinesisBatchRecord[];
}

/**
 * A Kinesis event source mapping batch
 * (https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html): decodes the records
 * ({@link KinesisBatchEvent}), runs the pipeline function `SLUICE_FUNCTION` with them and returns
 * a partial batch response (`runBatch` in batch.ts: the function may return
 * `{ batchItemFailures: [{ itemIdentifier: sequenceNumber }] }`; a throw fails the batch from its
 * first record).
 *
 * Push vs pull: the reference pipelines' stream jobs (`nba-tampering`, `hashtags-consumer`) do not
 * take records pushed to them: they pull from the stream port (Kinesis `GetRecords` through
 * `KinesisStreamStore`) from a checkpoint they keep in the key-value port (DynamoDB), so that
 * windows, watermarks and side outputs survive across invocations, and they are started by their
 * schedules/workflows (`nba-tampering-every-minute`). Pointed at such a function, this adapter
 * only wakes it: the function ignores the batch, drains the stream from its own checkpoint (which
 * includes the batch's records, so nothing is lost or processed twice: the checkpoint decides)
 * and its success acknowledges the batch. That is the honest option; deploying them on their
 * schedule, without a mapping, is the one that reads each record once.
 * @throws {UsageError} when `SLUICE_FUNCTION` is not a function of the pipeline.
 */
export async function handleKinesisEvent(
  runtime: AwsRuntime,
  event: KinesisStreamEvent,
  context: LambdaContext,
): Promise<KinesisBatchResponse> {
  const name = runtime.functionName;
  if (name === undefined) throw new Error(`${FUNCTION_ENV} is not set: the Kinesis handler needs it`);
  const handler = await runtime.handler(name);
  const records = event.Records ?? [];
  const first = records[0];
  const batch: KinesisBatchEvent = {
    source: 'aws:kinesis',
    stream: first ? streamName(first.eventSourceARN, runtime.config.streamPrefix) : '',
    shardId: first ? (first.eventID.split(':')[0] ?? '') : '',
    records: records.map((r) => ({
      sequenceNumber: r.kinesis.sequenceNumber,
      partitionKey: r.kinesis.partitionKey,
      data: Buffer.from(r.kinesis.data, 'base64').toString('utf8'),
      dataBase64: r.kinesis.data,
      approximateArrivalTimestamp: new Date(
        Math.round(r.kinesis.approximateArrivalTimestamp * 1000),
      ).toISOString(),
    })),
  };
  return runBatch(
    handler,
    batch as unknown as JsonValue,
    functionContext(name, context),
    records.map((r) => r.kinesis.sequenceNumber),
    runtime.ctx.logger.child({
      function: name,
      handler: 'kinesis',
      stream: batch.stream,
      shardId: batch.shardId,
    }),
  );
}

/** `arn:aws:kinesis:<region>:<account>:stream/<name>` -> `<name>` without `prefix`. */
export function streamName(arn: string, prefix: string): string {
  const at = arn.indexOf(':stream/');
  const name = at < 0 ? arn : arn.slice(at + ':stream/'.length);
  return prefix !== '' && name.startsWith(prefix) ? name.slice(prefix.length) : name;
}
