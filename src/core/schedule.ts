/**
 * What happens after downtime, when fire times were missed (the local scheduler was not running):
 * - `run-once`: fire once at start-up for all missed times (the latest one), then continue;
 * - `skip`: fire nothing for missed times; continue with the next one.
 * EventBridge Scheduler itself never misses a time while the schedule exists; this policy only
 * matters locally, where `sluice up` may be stopped.
 */
export type MissedRunPolicy = 'run-once' | 'skip';

/**
 * A schedule: an EventBridge Scheduler expression that starts a workflow.
 * Expressions (https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html):
 * `rate(N minute|minutes|hour|hours|day|days)` and
 * `cron(minutes hours day-of-month month day-of-week year)`, always UTC here.
 */
export interface ScheduleDefinition {
  /** Unique name, `<pipeline>-<purpose>`. */
  readonly name: string;
  readonly pipeline: string;
  readonly description: string;
  /** `rate(1 hour)`, `cron(0 12 * * ? *)`. */
  readonly expression: string;
  /** The workflow it starts. */
  readonly workflow: string;
  /** Input of each execution; `scheduledTime` (ISO-8601 UTC) is added. */
  readonly input?: { readonly [key: string]: unknown };
  readonly missedRunPolicy: MissedRunPolicy;
}
