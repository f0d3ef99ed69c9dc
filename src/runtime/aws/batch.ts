import { describeError } from '../../core/errors.ts';
import type { FunctionContext, FunctionHandler } from '../../core/function.ts';
import type { Logger } from '../../core/logger.ts';
import type { JsonValue } from '../../core/ports/kv-table.ts';
import { compareSequenceNumbers } from '../../core/ports/stream.ts';

/**
 * Lambda's partial batch response for stream event sources (Kinesis, DynamoDB Streams) with
 * `FunctionResponseTypes: ['ReportBatchItemFailures']`
 * (https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-errors.html).
 * An empty list acknowledges the whole batch.
 */
export interface BatchResponse {
  batchItemFailures: { itemIdentifier: string }[];
}

/**
 * Runs `handler` with a batch event and turns the outcome into a {@link BatchResponse}:
 * - the function returns `{ batchItemFailures: [{ itemIdentifier }] }` (Lambda's own shape) with
 *   sequence numbers of the batch: the lowest of them is reported, so Lambda checkpoints before it
 *   and retries the batch from it (the records before it count as processed). Identifiers that
 *   are not in the batch are ignored with a warning;
 * - it throws: the batch's first sequence number is reported (the whole batch is retried, up to
 *   the mapping's `MaximumRetryAttempts`; a bisecting mapping splits it), the error is logged;
 * - anything else: the whole batch succeeded.
 * Sequence numbers compare as decimal strings of any length (Kinesis and DynamoDB Streams).
 */
export async function runBatch(
  handler: FunctionHandler,
  event: JsonValue,
  context: FunctionContext,
  sequenceNumbers: readonly string[],
  logger: Logger,
): Promise<BatchResponse> {
  if (sequenceNumbers.length === 0) return { batchItemFailures: [] };
  let result: JsonValue;
  try {
    result = await handler(event, context);
  } catch (error) {
    logger.error(
      {
        errorType: error instanceof Error ? error.name : typeof error,
        error: describeError(error),
        records: sequenceNumbers.length,
      },
      'function failed on the batch; it is retried from its first record',
    );
    return { batchItemFailures: [{ itemIdentifier: lowest(sequenceNumbers) }] };
  }
  const reported = (result as { batchItemFailures?: unknown } | null)?.batchItemFailures;
  if (!Array.isArray(reported) || reported.length === 0) return { batchItemFailures: [] };
  const inBatch = new Set(sequenceNumbers);
  const ids: string[] = [];
  for (const failure of reported) {
    const id = (failure as { itemIdentifier?: unknown } | null)?.itemIdentifier;
    if (typeof id === 'string' && inBatch.has(id)) ids.push(id);
    else
      logger.warn(
        { itemIdentifier: id ?? null },
        'function reported a failed record that is not in the batch; ignored',
      );
  }
  if (ids.length === 0) return { batchItemFailures: [] };
  const first = lowest(ids);
  logger.warn(
    { itemIdentifier: first, failed: ids.length },
    'partial batch failure; retried from this record',
  );
  return { batchItemFailures: [{ itemIdentifier: first }] };
}

function lowest(ids: readonly string[]): string {
  return [...ids].sort(compareSequenceNumbers)[0] as string;
}
