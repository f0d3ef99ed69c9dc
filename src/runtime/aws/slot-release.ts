import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';

/**
 * Gives back the concurrency slot of a wrapped workflow's execution that ended without giving it
 * back itself (src/deploy/concurrency.ts): ABORTED (StopExecution), TIMED_OUT, or FAILED in or
 * after a failed release. An EventBridge rule on the Step Functions execution status change events
 * of the wrapped state machines invokes it; the documented event
 * (https://docs.aws.amazon.com/step-functions/latest/dg/eventbridge-integration.html, "Step
 * Functions Execution Status Change") is `test/fixtures/aws-events/sfn-execution-status-change.json`.
 */

/** The part of a "Step Functions Execution Status Change" event this handler reads. */
export interface ExecutionStatusChangeEvent {
  readonly 'detail-type'?: string;
  readonly source?: string;
  readonly detail?: {
    /** `arn:aws:states:<region>:<account>:execution:<state machine>:<execution name>`. */
    readonly executionArn?: string;
    readonly stateMachineArn?: string;
    /** RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED (PENDING_REDRIVE for redrives). */
    readonly status?: string;
  };
}

/** What {@link releaseSlot} did. */
export interface SlotReleaseResult {
  /** The workflow (state machine) whose slot item was updated. */
  readonly workflow: string;
  readonly executionArn: string;
  /** `true`: this call gave the slot back; `false`: it was not held (released already, or never taken). */
  readonly released: boolean;
}

/** Environment variable naming the slot table (set by the CDK stack on the release function). */
export const SLOTS_TABLE_ENV = 'SLUICE_SLOTS_TABLE';

/**
 * The same conditional release as the state machine's `sluice_ReleaseSlot` state: UpdateItem on
 * `tableName`, key `{ workflow: <state machine name> }`, `ADD running :minus_one REMOVE #id`
 * (`#id` = the execution ARN) if `attribute_exists(#id)`
 * (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html). A failed
 * condition (`ConditionalCheckFailedException`) means the execution holds no slot: idempotent, so
 * an EventBridge redelivery or an execution that released before failing is a no-op.
 * @throws {Error} when the event has no execution ARN of the form above; DynamoDB errors other than
 *   the condition (EventBridge retries the asynchronous invocation, then Lambda's retry policy).
 */
export async function releaseSlot(
  client: DynamoDBClient,
  tableName: string,
  event: ExecutionStatusChangeEvent,
): Promise<SlotReleaseResult> {
  const executionArn = event?.detail?.executionArn ?? '';
  const parts = executionArn.split(':');
  const workflow = parts[5] === 'execution' ? (parts[6] ?? '') : '';
  if (workflow === '') {
    throw new Error(
      `expected a Step Functions Execution Status Change event with detail.executionArn arn:aws:states:<region>:<account>:execution:<state machine>:<name>, got ${JSON.stringify(executionArn)}`,
    );
  }
  try {
    await client.send(
      new UpdateItemCommand({
        TableName: tableName,
        Key: { workflow: { S: workflow } },
        UpdateExpression: 'ADD running :minus_one REMOVE #id',
        ConditionExpression: 'attribute_exists(#id)',
        ExpressionAttributeNames: { '#id': executionArn },
        ExpressionAttributeValues: { ':minus_one': { N: '-1' } },
      }),
    );
    return { workflow, executionArn, released: true };
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return { workflow, executionArn, released: false };
    throw error;
  }
}
