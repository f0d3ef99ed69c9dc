import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../test/helpers/manual-clock.ts';
import { LocalKvStore } from '../../backends/local/local-kv-table.ts';
import { type Database, openSqlite } from '../../backends/local/sqlite.ts';
import type { ScheduleDefinition } from '../../core/schedule.ts';
import { LocalScheduler } from './local-scheduler.ts';

function schedule(
  name: string,
  expression: string,
  missedRunPolicy: ScheduleDefinition['missedRunPolicy'],
): ScheduleDefinition {
  return { name, pipeline: 'test', description: name, expression, workflow: 'wf', missedRunPolicy };
}

/** Lets the scheduler loops reach their sleep. */
async function settle(clock: ManualClock, sleepers: number): Promise<void> {
  for (let i = 0; i < 200 && clock.waiting < sleepers; i++) await new Promise((r) => setTimeout(r, 1));
}

describe('LocalScheduler', () => {
  let dir: string;
  let db: Database;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-sched-'));
    db = openSqlite(path.join(dir, 'sluice.db'));
  });
  afterEach(async () => {
    db.close();
    await rm(dir, { recursive: true, force: true });
  });

  function start(clock: ManualClock, schedules: ScheduleDefinition[]) {
    const fired: string[] = [];
    const scheduler = new LocalScheduler({
      kv: new LocalKvStore(db),
      clock,
      schedules,
      fire: async (s, time, late) => {
        fired.push(`${s.name}@${time.toISOString()}${late ? ' (late)' : ''}`);
      },
    });
    const controller = new AbortController();
    const running = scheduler.run(controller.signal);
    return {
      fired,
      scheduler,
      stop: async () => {
        controller.abort();
        await running;
      },
    };
  }

  it('fires rate(1 hour) at the top of every hour and a cron at its times, in UTC', async () => {
    const clock = new ManualClock(new Date('2026-11-21T10:20:00Z'));
    const s = start(clock, [
      schedule('hourly', 'rate(1 hour)', 'run-once'),
      schedule('noon', 'cron(0 12 * * ? *)', 'skip'),
    ]);
    await settle(clock, 2);
    await clock.set(new Date('2026-11-21T12:30:00Z'));
    await settle(clock, 2);
    // Schedules due at the same instant fire in no particular order.
    expect(s.fired.slice(0, 1)).toEqual(['hourly@2026-11-21T11:00:00.000Z']);
    expect(s.fired.slice(1).sort()).toEqual([
      'hourly@2026-11-21T12:00:00.000Z',
      'noon@2026-11-21T12:00:00.000Z',
    ]);
    await s.stop();
  });

  it('after downtime fires once for the latest missed time with run-once, and not at all with skip', async () => {
    const clock = new ManualClock(new Date('2026-11-21T10:20:00Z'));
    const first = start(clock, [
      schedule('once', 'rate(1 hour)', 'run-once'),
      schedule('skip', 'rate(1 hour)', 'skip'),
    ]);
    await settle(clock, 2);
    await clock.set(new Date('2026-11-21T11:05:00Z'));
    await settle(clock, 2);
    await first.stop();
    expect(first.fired.sort()).toEqual(['once@2026-11-21T11:00:00.000Z', 'skip@2026-11-21T11:00:00.000Z']);

    // Down from 11:05 to 15:30: 12:00, 13:00, 14:00 and 15:00 were missed.
    await clock.set(new Date('2026-11-21T15:30:00Z'));
    const second = start(clock, [
      schedule('once', 'rate(1 hour)', 'run-once'),
      schedule('skip', 'rate(1 hour)', 'skip'),
    ]);
    await settle(clock, 2);
    expect(second.fired).toEqual(['once@2026-11-21T15:00:00.000Z (late)']);
    await clock.set(new Date('2026-11-21T16:00:00Z'));
    await settle(clock, 2);
    expect(second.fired.slice(1).sort()).toEqual([
      'once@2026-11-21T16:00:00.000Z',
      'skip@2026-11-21T16:00:00.000Z',
    ]);
    await second.stop();
  });

  it('a new or changed schedule starts from now: nothing counts as missed before it existed', async () => {
    const clock = new ManualClock(new Date('2026-11-21T10:20:00Z'));
    const first = start(clock, [schedule('s', 'rate(1 hour)', 'run-once')]);
    await settle(clock, 1);
    await first.stop();
    await clock.set(new Date('2026-11-21T18:20:00Z'));
    const changed = start(clock, [schedule('s', 'cron(30 * * * ? *)', 'run-once')]);
    await settle(clock, 1);
    expect(changed.fired).toEqual([]);
    await clock.set(new Date('2026-11-21T18:31:00Z'));
    await settle(clock, 1);
    expect(changed.fired).toEqual(['s@2026-11-21T18:30:00.000Z']);
    await changed.stop();
  });

  it('describes the next three fire times of every schedule', async () => {
    const clock = new ManualClock(new Date('2026-11-21T10:20:00Z'));
    const scheduler = new LocalScheduler({
      kv: new LocalKvStore(db),
      clock,
      schedules: [schedule('daily', 'cron(0 12 * * ? *)', 'skip')],
      fire: async () => {},
    });
    const [info] = await scheduler.describe();
    expect(info?.next.map((d) => d.toISOString())).toEqual([
      '2026-11-21T12:00:00.000Z',
      '2026-11-22T12:00:00.000Z',
      '2026-11-23T12:00:00.000Z',
    ]);
  });

  it('names the schedule whose expression is malformed', () => {
    const clock = new ManualClock(new Date('2026-11-21T10:20:00Z'));
    expect(
      () =>
        new LocalScheduler({
          kv: new LocalKvStore(db),
          clock,
          schedules: [schedule('broken', 'cron(0 12 * * * *)', 'skip')],
          fire: async () => {},
        }),
    ).toThrow(/^schedule broken: cron\(0 12 \* \* \* \*\)/);
  });
});
