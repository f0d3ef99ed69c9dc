/**
 * The Lambda entry points of a deployed sluice pipeline: what the CDK stack's functions point at
 * (`runtime/aws/lambda.taskHandler`, ...). Each one only translates its event into a core call and back; the
 * translation lives in one module per event shape (task.ts, s3-notification.ts, schedule.ts,
 * kinesis.ts, dynamodb-stream.ts), and the backend with the pipeline's handlers is built once per
 * container ({@link awsRuntime}), not per invocation.
 *
 * Environment (set by the stack): `SLUICE_PIPELINE` (pipeline name), `SLUICE_FUNCTION` (the sluice
 * function a task/stream handler runs), and the backend's variables (`AWS_ENV` in
 * src/backends/aws/config.ts). A missing variable fails the invocation with an error naming it.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBStreamEvent, KinesisStreamEvent, S3Event } from 'aws-lambda';
import { type DynamoDbStreamBatchResponse, handleDynamoDbStreamEvent } from './dynamodb-stream.ts';
import { handleKinesisEvent, type KinesisBatchResponse } from './kinesis.ts';
import { awsRuntime, type LambdaContext } from './runtime.ts';
import { handleS3Event, type S3HandlerResult } from './s3-notification.ts';
import { handleScheduleEvent, type ScheduleHandlerResult, type ScheduleInput } from './schedule.ts';
import type { ExecutionStatusChangeEvent, SlotReleaseResult } from './slot-release.ts';
import { runTask } from './task.ts';

/**
 * Step Functions Lambda task (`arn:aws:states:::lambda:invoke` with `Payload.$: '$'`, or the
 * function ARN as `Resource`): runs the pipeline function `SLUICE_FUNCTION` with the state's input
 * and returns its result. A failure rethrows with its `name` kept, so Lambda reports it as
 * `errorType` and ASL `Retry`/`Catch` match it (task.ts).
 */
export async function taskHandler(event: unknown, context: LambdaContext): Promise<unknown> {
  return runTask(await awsRuntime({ needsFunction: true }), event, context);
}

/** S3 event notification: starts the workflows of the pipeline's matching triggers, once per (key, eTag). */
export async function s3Handler(event: S3Event): Promise<S3HandlerResult> {
  return handleS3Event(await awsRuntime({ needsFunction: false }), event);
}

/** EventBridge Scheduler target input `{ schedule, workflow, scheduledTime }`: starts the workflow. */
export async function scheduleHandler(event: ScheduleInput): Promise<ScheduleHandlerResult> {
  return handleScheduleEvent(await awsRuntime({ needsFunction: false }), event);
}

/** Kinesis event source mapping batch: hands the records to `SLUICE_FUNCTION`; partial batch failures. */
export async function kinesisHandler(
  event: KinesisStreamEvent,
  context: LambdaContext,
): Promise<KinesisBatchResponse> {
  return handleKinesisEvent(await awsRuntime({ needsFunction: true }), event, context);
}

/** DynamoDB Streams batch: change records to `SLUICE_FUNCTION`; partial batch failures. */
export async function dynamodbStreamHandler(
  event: DynamoDBStreamEvent,
  context: LambdaContext,
): Promise<DynamoDbStreamBatchResponse> {
  return handleDynamoDbStreamEvent(await awsRuntime({ needsFunction: true }), event, context);
}

let slotsClient: DynamoDBClient | undefined;

/**
 * EventBridge rule target on "Step Functions Execution Status Change" (ABORTED, TIMED_OUT, FAILED) of
 * the state machines wrapped in a concurrency semaphore (src/deploy/concurrency.ts): gives back the
 * slot the execution still holds in the table `SLUICE_SLOTS_TABLE` ({@link releaseSlot}; a no-op when
 * it holds none). Needs neither `SLUICE_PIPELINE` nor the backend's variables: one DynamoDB client
 * (region from Lambda's `AWS_REGION`, credentials from the default chain), created once per container.
 * @throws {Error} when `SLUICE_SLOTS_TABLE` is unset, or from {@link releaseSlot}.
 */
export async function slotReleaseHandler(event: ExecutionStatusChangeEvent): Promise<SlotReleaseResult> {
  const { releaseSlot, SLOTS_TABLE_ENV } = await import('./slot-release.ts');
  const table = process.env[SLOTS_TABLE_ENV] ?? '';
  if (table === '') throw new Error(`${SLOTS_TABLE_ENV} is not set: the slot release handler needs it`);
  if (!slotsClient) {
    const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
    slotsClient = new DynamoDBClient({});
  }
  const result = await releaseSlot(slotsClient, table, event);
  console.log(JSON.stringify({ msg: 'concurrency slot release', ...result }));
  return result;
}
