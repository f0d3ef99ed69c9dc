import type { DynamoDBStreamEvent, AttributeValue as LambdaAttributeValue } from 'aws-lambda';
import type { ChangeRecord, Item, JsonValue } from '../../core/ports/kv-table.ts';
import { type BatchResponse, runBatch } from './batch.ts';
import { type AwsRuntime, FUNCTION_ENV, functionContext, type LambdaContext } from './runtime.ts';

/** The partial batch response of {@link handleDynamoDbStreamEvent}. */
export type DynamoDbStreamBatchResponse = BatchResponse;

/**
 * What a pipeline function receives from {@link handleDynamoDbStreamEvent}: the batch's changes as
 * the key-value port's {@link ChangeRecord}s (the same shape `KvTable.readChanges` returns), in
 * stream order.
 * `{ "source": "aws:dynamodb", "table": "config", "records": [{ "sequenceNumber", "eventName",
 *    "keys", "oldImage"?, "newImage"?, "approximateCreationDateTime" }] }`
 */
export interface DynamoDbStreamBatchEvent {
  readonly source: 'aws:dynamodb';
  /** The key-value table's sluice name: the ARN's table name without the backend's `tablePrefix`. */
  readonly table: string;
  readonly records: readonly ChangeRecord[];
}

/**
 * A DynamoDB Streams event source mapping batch
 * (https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html): converts each record to a
 * {@link ChangeRecord} ({@link changeRecordOf}), runs `SLUICE_FUNCTION` with
 * {@link DynamoDbStreamBatchEvent} and returns a partial batch response (`runBatch` in batch.ts;
 * item identifiers are the records' `dynamodb.SequenceNumber`,
 * https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-batchfailurereporting.html).
 * @throws {UsageError} when `SLUICE_FUNCTION` is not a function of the pipeline.
 */
export async function handleDynamoDbStreamEvent(
  runtime: AwsRuntime,
  event: DynamoDBStreamEvent,
  context: LambdaContext,
): Promise<DynamoDbStreamBatchResponse> {
  const name = runtime.functionName;
  if (name === undefined)
    throw new Error(`${FUNCTION_ENV} is not set: the DynamoDB Streams handler needs it`);
  const handler = await runtime.handler(name);
  const records = event.Records ?? [];
  const arn = records[0]?.eventSourceARN ?? '';
  const batch: DynamoDbStreamBatchEvent = {
    source: 'aws:dynamodb',
    table: tableName(arn, runtime.config.tablePrefix),
    records: records.map((r) => changeRecordOf(r)),
  };
  return runBatch(
    handler,
    batch as unknown as JsonValue,
    functionContext(name, context),
    records.map((r) => r.dynamodb?.SequenceNumber ?? ''),
    runtime.ctx.logger.child({ function: name, handler: 'dynamodb-stream', table: batch.table }),
  );
}

/**
 * One DynamoDB Streams record (`NEW_AND_OLD_IMAGES`) as a {@link ChangeRecord}: `Keys`,
 * `OldImage`, `NewImage` unmarshalled ({@link fromAttributeValue}); `ApproximateCreationDateTime`
 * (epoch seconds) as ISO-8601 UTC.
 * @throws {Error} when the record has no `dynamodb.SequenceNumber` or an unknown `eventName`.
 */
export function changeRecordOf(record: DynamoDBStreamEvent['Records'][number]): ChangeRecord {
  const d = record.dynamodb;
  const eventName = record.eventName;
  if (!d?.SequenceNumber || (eventName !== 'INSERT' && eventName !== 'MODIFY' && eventName !== 'REMOVE')) {
    throw new Error(
      `not a DynamoDB Streams change record (eventID ${record.eventID ?? '?'}): needs dynamodb.SequenceNumber and eventName INSERT|MODIFY|REMOVE`,
    );
  }
  return {
    sequenceNumber: d.SequenceNumber,
    eventName,
    keys: itemOf(d.Keys ?? {}),
    ...(d.OldImage ? { oldImage: itemOf(d.OldImage) } : {}),
    ...(d.NewImage ? { newImage: itemOf(d.NewImage) } : {}),
    approximateCreationDateTime: new Date((d.ApproximateCreationDateTime ?? 0) * 1000).toISOString(),
  };
}

function itemOf(map: Record<string, LambdaAttributeValue>): Item {
  const item: Item = {};
  for (const [name, value] of Object.entries(map)) item[name] = fromAttributeValue(value);
  return item;
}

/**
 * A DynamoDB attribute value (the JSON of the low-level API, as Lambda delivers images,
 * https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_AttributeValue.html) as JSON:
 * `S` string, `N` number, `BOOL`, `NULL` null, `M` object, `L` array, `SS`/`NS` arrays; binary
 * (`B`, `BS`) stays base64 text (the key-value port stores JSON only, so sluice never writes it).
 */
export function fromAttributeValue(value: LambdaAttributeValue): JsonValue {
  if (value.S !== undefined) return value.S;
  if (value.N !== undefined) return Number(value.N);
  if (value.BOOL !== undefined) return value.BOOL;
  if (value.NULL !== undefined) return null;
  if (value.M !== undefined) return itemOf(value.M);
  if (value.L !== undefined) return value.L.map(fromAttributeValue);
  if (value.SS !== undefined) return [...value.SS];
  if (value.NS !== undefined) return value.NS.map(Number);
  if (value.B !== undefined) return value.B;
  if (value.BS !== undefined) return [...value.BS];
  throw new Error(`unknown DynamoDB attribute value ${JSON.stringify(value).slice(0, 100)}`);
}

/** `arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>` -> `<name>` without `prefix`. */
export function tableName(arn: string, prefix: string): string {
  const match = /:table\/([^/]+)/.exec(arn);
  const name = match?.[1] ?? arn;
  return prefix !== '' && name.startsWith(prefix) ? name.slice(prefix.length) : name;
}
