import { UsageError } from '../../core/errors.ts';
import type { JsonValue } from '../../core/ports/kv-table.ts';
import type { AwsRuntime } from './runtime.ts';

/**
 * The input an EventBridge Scheduler schedule of a sluice pipeline passes to its Lambda target
 * (the schedule's `Target.Input`, a JSON string set by the CDK stack). `scheduledTime` is the
 * context attribute `<aws.scheduler.scheduled-time>`, which Scheduler replaces with the fire time
 * (ISO-8601 UTC) before invoking
 * (https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html).
 *
 * `{ "schedule": "nba-tampering-every-minute", "workflow": "nba-tampering",
 *    "scheduledTime": "<aws.scheduler.scheduled-time>" }`
 */
export interface ScheduleInput {
  /** The sluice schedule's name (`ScheduleDefinition.name`). */
  readonly schedule: string;
  /** The workflow it starts; must be the schedule definition's (a mismatch means a stale deployment). */
  readonly workflow?: string;
  /** ISO-8601 UTC fire time. */
  readonly scheduledTime?: string;
}

/** What {@link handleScheduleEvent} started. */
export interface ScheduleHandlerResult {
  readonly schedule: string;
  readonly workflow: string;
  readonly executionId: string;
  readonly scheduledTime: string;
}

/**
 * Starts the schedule's workflow with the definition's `input` plus `scheduledTime`, the same
 * input `sluice up`'s LocalScheduler gives it (src/runtime/local/local-stack.ts), with source
 * `{ kind: 'schedule', name, detail: scheduledTime }`. Returns once Step Functions accepted the
 * start; the execution runs on.
 *
 * A missing or unreplaced `scheduledTime` (a test invoke) falls back to the clock's now.
 * @throws {UsageError} for a schedule the pipeline does not declare, or a workflow that is not
 *   the schedule's; the runner's errors when the start fails (Scheduler's retry policy retries
 *   the invocation: https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-retry-policy.html).
 */
export async function handleScheduleEvent(
  runtime: AwsRuntime,
  event: ScheduleInput,
): Promise<ScheduleHandlerResult> {
  const name = typeof event?.schedule === 'string' ? event.schedule : '';
  const schedules = runtime.pipeline.schedules ?? [];
  const schedule = schedules.find((s) => s.name === name);
  if (!schedule) {
    throw new UsageError(
      `schedule "${name}" is not a schedule of pipeline ${runtime.pipeline.name} (its schedules: ${
        schedules.map((s) => s.name).join(', ') || 'none'
      }); expected input {"schedule", "workflow", "scheduledTime"}`,
    );
  }
  if (event.workflow !== undefined && event.workflow !== schedule.workflow) {
    throw new UsageError(
      `schedule ${name} starts workflow ${schedule.workflow}, but its input names ${event.workflow}: redeploy the stack`,
    );
  }
  const parsed = typeof event.scheduledTime === 'string' ? Date.parse(event.scheduledTime) : Number.NaN;
  const scheduledTime = Number.isNaN(parsed)
    ? runtime.ctx.clock.now().toISOString()
    : new Date(parsed).toISOString();
  const handle = await (await runtime.runner()).start(
    schedule.workflow,
    { ...(schedule.input as Record<string, JsonValue> | undefined), scheduledTime },
    { source: { kind: 'schedule', name: schedule.name, detail: scheduledTime } },
  );
  void handle.done.catch(() => {});
  runtime.ctx.logger.info(
    { schedule: schedule.name, workflow: schedule.workflow, executionId: handle.executionId, scheduledTime },
    'scheduled execution started',
  );
  return {
    schedule: schedule.name,
    workflow: schedule.workflow,
    executionId: handle.executionId,
    scheduledTime,
  };
}
