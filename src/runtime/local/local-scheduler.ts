import type { Clock } from '../../core/clock.ts';
import { describeError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { silentLogger } from '../../core/logger.ts';
import type { KvStore, KvTable } from '../../core/ports/kv-table.ts';
import type { ScheduleDefinition } from '../../core/schedule.ts';
import {
  lastFireTimeBetween,
  nextFireTimes,
  type ParsedSchedule,
  parseScheduleExpression,
} from '../../engines/schedule/eventbridge.ts';

/** Key-value table of schedule watermarks (hash key `schedule`). */
export const SCHEDULE_STATE_TABLE = 'sluice_schedule_state';

/** Options of {@link LocalScheduler}. */
export interface LocalSchedulerOptions {
  readonly kv: KvStore;
  readonly clock: Clock;
  readonly schedules: readonly ScheduleDefinition[];
  /** Starts the schedule's work for one fire time; errors are logged, the schedule goes on. */
  readonly fire: (schedule: ScheduleDefinition, scheduledTime: Date, late: boolean) => Promise<void>;
  readonly logger?: Logger;
}

/** A schedule's next fire times, for `sluice schedules`. */
export interface ScheduleInfo {
  readonly schedule: ScheduleDefinition;
  readonly next: Date[];
  /** The last fire time handled (fired, or skipped by the missed-run policy), if any. */
  readonly lastHandled: string | undefined;
}

/**
 * The local scheduler: the EventBridge Scheduler of `sluice up`. Each schedule waits, on the
 * injected clock, for its next fire time (UTC; `rate()` fire times are anchored at the Unix epoch,
 * so `rate(1 hour)` fires at the top of every hour) and calls `fire`. Fire times are never missed
 * while it runs; a watermark per schedule in `sluice_schedule_state` records the last time
 * handled, so after downtime the schedule's {@link ScheduleDefinition.missedRunPolicy} decides:
 * `run-once` fires once for the latest missed time, `skip` fires nothing. A schedule seen for the
 * first time starts from now (nothing is "missed" before it existed); so does one whose expression
 * changed.
 */
export class LocalScheduler {
  private readonly parsed: Map<string, ParsedSchedule>;
  private readonly logger: Logger;

  /** @throws {UsageError} naming the schedule whose expression is malformed. */
  constructor(private readonly options: LocalSchedulerOptions) {
    this.logger = options.logger ?? silentLogger;
    this.parsed = new Map();
    for (const schedule of options.schedules) {
      try {
        this.parsed.set(schedule.name, parseScheduleExpression(schedule.expression));
      } catch (error) {
        (error as Error).message = `schedule ${schedule.name}: ${(error as Error).message}`;
        throw error;
      }
    }
  }

  /** Next fire times and watermark of every schedule. */
  async describe(count = 3): Promise<ScheduleInfo[]> {
    const state = await this.state();
    const now = this.options.clock.now();
    const infos: ScheduleInfo[] = [];
    for (const schedule of this.options.schedules) {
      const item = await state.get({ schedule: schedule.name });
      infos.push({
        schedule,
        next: nextFireTimes(this.parsed.get(schedule.name)!, now, count),
        lastHandled: typeof item?.watermark === 'string' ? item.watermark : undefined,
      });
    }
    return infos;
  }

  /** Runs every schedule until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const state = await this.state();
    await Promise.all(this.options.schedules.map((schedule) => this.loop(schedule, state, signal)));
  }

  private async loop(schedule: ScheduleDefinition, state: KvTable, signal: AbortSignal): Promise<void> {
    const { clock } = this.options;
    const parsed = this.parsed.get(schedule.name)!;
    const stored = await state.get({ schedule: schedule.name });
    const now = clock.now();
    let watermark =
      stored && stored.expression === schedule.expression && typeof stored.watermark === 'string'
        ? new Date(stored.watermark)
        : now;
    const missed = lastFireTimeBetween(parsed, watermark, now);
    if (missed) {
      if (schedule.missedRunPolicy === 'run-once') {
        this.logger.info(
          { schedule: schedule.name, missed: missed.toISOString() },
          'firing once for missed times',
        );
        await this.fire(schedule, missed, true);
      } else {
        this.logger.info({ schedule: schedule.name, missed: missed.toISOString() }, 'skipping missed times');
      }
      watermark = now;
    }
    await this.save(state, schedule, watermark);
    while (!signal.aborted) {
      const [next] = nextFireTimes(parsed, watermark, 1);
      if (!next) return; // the expression has no future fire time (e.g. a past year)
      try {
        await clock.sleep(Math.max(0, next.getTime() - clock.now().getTime()), signal);
      } catch {
        return; // aborted
      }
      await this.fire(schedule, next, false);
      watermark = next;
      await this.save(state, schedule, watermark);
    }
  }

  private async fire(schedule: ScheduleDefinition, time: Date, late: boolean): Promise<void> {
    try {
      await this.options.fire(schedule, time, late);
    } catch (error) {
      this.logger.error(
        { schedule: schedule.name, err: describeError(error) },
        'schedule target failed to start',
      );
    }
  }

  private async save(state: KvTable, schedule: ScheduleDefinition, watermark: Date): Promise<void> {
    await state.put({
      schedule: schedule.name,
      expression: schedule.expression,
      watermark: watermark.toISOString(),
      updated_at: this.options.clock.now().toISOString(),
    });
  }

  private state(): Promise<KvTable> {
    return this.options.kv.table(SCHEDULE_STATE_TABLE, { hashKey: { name: 'schedule', type: 'S' } });
  }
}
