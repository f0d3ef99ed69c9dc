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
import type { DynamoDBStreamEvent, KinesisStreamEvent, S3Event } from 'aws-lambda';
import { type DynamoDbStreamBatchResponse, handleDynamoDbStreamEvent } from './dynamodb-stream.ts';
import { handleKinesisEvent, type KinesisBatchResponse } from './kinesis.ts';
import { awsRuntime, type LambdaContext } from './runtime.ts';
import { handleS3Event, type S3HandlerResult } from './s3-notification.ts';
import { handleScheduleEvent, type ScheduleHandlerResult, type ScheduleInput } from './schedule.ts';
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
