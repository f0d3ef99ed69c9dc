import type { JsonValue } from './ports/kv-table.ts';

/**
 * What a sluice function receives besides its event: the shape of the AWS Lambda Node.js context
 * (https://docs.aws.amazon.com/lambda/latest/dg/nodejs-context.html), so a handler runs unchanged
 * in Lambda and locally.
 */
export interface FunctionContext {
  readonly functionName: string;
  /** Unique id of this invocation. */
  readonly awsRequestId: string;
  /** The workflow execution that called the function, when a workflow did. */
  readonly executionId?: string;
  /** Milliseconds left before the invocation's timeout. */
  getRemainingTimeInMillis(): number;
}

/**
 * A function: the Lambda handler signature `(event, context) => Promise<result>`. Throwing an
 * error whose `name` is an ASL error name (e.g. `SourceUnavailableError`, `LeaseHeldError`) lets
 * a workflow's `Retry`/`Catch` match it, locally and on Step Functions.
 */
export type FunctionHandler = (event: JsonValue, context: FunctionContext) => Promise<JsonValue>;

/** A named function of a pipeline. */
export interface FunctionDefinition {
  /** Unique name, `<pipeline>-<purpose>`; the Lambda function's name on AWS. */
  readonly name: string;
  readonly description: string;
  /** Longest run in seconds (Lambda's limit is 900). */
  readonly timeoutSeconds: number;
}
