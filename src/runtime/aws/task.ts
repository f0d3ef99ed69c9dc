import { describeError } from '../../core/errors.ts';
import type { JsonValue } from '../../core/ports/kv-table.ts';
import { type AwsRuntime, FUNCTION_ENV, functionContext, type LambdaContext } from './runtime.ts';

/**
 * A Step Functions Lambda task: runs the pipeline function `SLUICE_FUNCTION` with the state's
 * input (`Payload.$: '$'` of `arn:aws:states:::lambda:invoke`, or the function ARN as the Task
 * `Resource`) and returns its result, which becomes the state's result.
 *
 * Errors are rethrown unchanged (the same instance), after logging the whole cause chain: the
 * Lambda Node.js runtime reports a thrown error as `{ errorType: error.name, errorMessage,
 * trace }` (https://docs.aws.amazon.com/lambda/latest/dg/nodejs-exceptions.html), and Step
 * Functions uses `errorType` as the ASL error name that `Retry`/`Catch` `ErrorEquals` match
 * (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html), so a
 * `SourceUnavailableError` thrown here is retried on AWS exactly as the local runner retries it.
 * A thrown non-Error value becomes an `Error` with its text.
 *
 * The event is passed as it is (JSON from Step Functions); `undefined` (a test invoke with no
 * payload) becomes `null`.
 * @throws whatever the function throws; {@link UsageError} when `SLUICE_FUNCTION` is unset.
 */
export async function runTask(
  runtime: AwsRuntime,
  event: unknown,
  context: LambdaContext,
): Promise<JsonValue> {
  const name = runtime.functionName;
  if (name === undefined) throw new Error(`${FUNCTION_ENV} is not set: the task handler needs it`);
  const handler = await runtime.handler(name);
  const logger = runtime.ctx.logger.child({ function: name, awsRequestId: context.awsRequestId });
  try {
    return await handler((event ?? null) as JsonValue, functionContext(name, context));
  } catch (error) {
    const thrown = error instanceof Error ? error : new Error(String(error));
    logger.error({ errorType: thrown.name, error: describeError(thrown) }, 'function failed');
    throw thrown;
  }
}
