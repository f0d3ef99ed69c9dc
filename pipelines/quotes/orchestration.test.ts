import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Alert } from '../../src/core/alert.ts';
import { ConfigStore } from '../../src/core/config.ts';
import type { Notifier } from '../../src/core/ports/notifier.ts';
import type { ExecutionRecord } from '../../src/core/ports/workflow-runner.ts';
import { LocalStack } from '../../src/runtime/local/local-stack.ts';
import { type QuotesFixtureServer, startQuotesFixture } from '../../src/sources/http/quotes-fixture.ts';
import { createTestHome, type TestHome } from '../../test/helpers/context.ts';
import { ManualClock } from '../../test/helpers/manual-clock.ts';
import { ROOT } from '../../test/helpers/samples.ts';
import { pipelineModules } from '../index.ts';
import { RAW_KEY_SCHEMA, RAW_TABLE } from './definition.ts';
import { transformDate } from './functions.ts';

/** Waits (in real time) until `check` returns a value; fails the test after `timeoutMs`. */
async function eventually<T>(
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

let t: TestHome;
let clock: ManualClock;
let server: QuotesFixtureServer;
let alerts: Alert[];
let finished: ExecutionRecord[];
const notifier: Notifier = {
  notify: async (alert) => {
    alerts.push(alert);
    return { delivered: ['memory'], failed: [] };
  },
};

beforeEach(async () => {
  clock = new ManualClock(new Date('2024-01-01T23:58:30.000Z'));
  t = await createTestHome({ clock });
  server = await startQuotesFixture({
    dataFile: path.join(ROOT, 'examples/data/quotes/quotes.json'),
    seed: 9,
  });
  alerts = [];
  finished = [];
  const config = await ConfigStore.open(t.backend.kv, clock);
  await config.set('quotes', 'api_url', server.url);
  // Retries wait on the (manual) clock: no wait, so nothing has to advance it.
  await config.set('quotes', 'retry_base_seconds', 0);
});
afterEach(async () => {
  await server.close();
  await t.close();
});

function start() {
  return LocalStack.start({
    ctx: t.ctx,
    lakeRoot: path.join(t.home, 'lake'),
    modules: [pipelineModules.quotes!],
    notifier,
    watch: false,
    retryIntervalMs: 0,
    waitMs: 0,
    configPollMs: 60_000,
    onExecutionFinished: (record) => finished.push(record),
  });
}

async function rawIds(date: string): Promise<string[]> {
  const table = await t.backend.kv.table(RAW_TABLE, RAW_KEY_SCHEMA);
  return (await table.query(date)).items.map((i) => String(i.ingested_at));
}

describe('quotes under sluice up (LocalStack, ManualClock)', () => {
  it('polls every minute; an API that keeps failing fails the poll after the retries and raises an alert; at 12:00 yesterday is transformed', async () => {
    const stack = await start();
    try {
      // The config follower and both schedules asleep on the clock.
      await eventually(() => (clock.waiting >= 3 ? true : undefined));
      // A poll stamps the clock's time when the answer arrived: let each finish before time moves on.
      await clock.set(new Date('2024-01-01T23:59:00.000Z'));
      await eventually(() => (finished.length >= 1 ? true : undefined));
      await clock.set(new Date('2024-01-02T00:00:00.000Z'));
      const polls = await eventually(() => (finished.length >= 2 ? finished.slice() : undefined));
      expect(polls.map((r) => [r.workflow, r.status, r.source?.name])).toEqual([
        ['quotes-poll', 'SUCCEEDED', 'quotes-poll-every-minute'],
        ['quotes-poll', 'SUCCEEDED', 'quotes-poll-every-minute'],
      ]);
      expect(polls[0]?.output).toMatchObject({
        ingested_date: '2024-01-01',
        ingested_at: '2024-01-01T23:59:00.000Z',
        quote_id: server.served[0]?._id,
        attempts: 1,
      });
      expect(await rawIds('2024-01-01')).toEqual(['2024-01-01T23:59:00.000Z']);
      expect(await rawIds('2024-01-02')).toEqual(['2024-01-02T00:00:00.000Z']);

      // The API answers 500 to every request of the next poll: 3 attempts in the function, times
      // 3 by the workflow's Retry, then the execution fails and an alert is raised.
      server.script(...Array.from({ length: 9 }, () => ({ kind: 'status' as const, status: 500 })));
      await clock.set(new Date('2024-01-02T00:01:00.000Z'));
      const failed = await eventually(() => finished.find((r) => r.status === 'FAILED'));
      expect(failed).toMatchObject({
        workflow: 'quotes-poll',
        failedState: 'PollQuote',
        error: 'SourceUnavailableError',
      });
      expect(server.requests.slice(-9).map((r) => r.outcome)).toEqual(Array(9).fill('scripted:status 500'));
      const history = await stack.runner.history(failed.executionId);
      expect(history.filter((e) => e.type === 'StateRetried')).toHaveLength(2);
      expect(alerts).toEqual([
        expect.objectContaining({
          severity: 'error',
          pipeline: 'quotes',
          workflow: 'quotes-poll',
          executionId: failed.executionId,
          state: 'PollQuote',
          cause: expect.stringContaining('HTTP 500'),
        }),
      ]);
      // Nothing stored for the failed minute; the next minute polls again.
      await clock.set(new Date('2024-01-02T00:02:00.000Z'));
      await eventually(() => (finished.length >= 4 ? true : undefined));
      expect(await rawIds('2024-01-02')).toEqual(['2024-01-02T00:00:00.000Z', '2024-01-02T00:02:00.000Z']);
    } finally {
      await stack.stop(5_000);
    }

    // Later that day (missed polls are skipped, not caught up): the noon transform takes yesterday.
    await clock.set(new Date('2024-01-02T11:59:30.000Z'));
    finished = [];
    const again = await start();
    try {
      await eventually(() => (clock.waiting >= 3 ? true : undefined));
      await clock.set(new Date('2024-01-02T12:00:00.000Z'));
      const transform = await eventually(() => finished.find((r) => r.workflow === 'quotes-transform'));
      expect(transform).toMatchObject({
        status: 'SUCCEEDED',
        source: { kind: 'schedule', name: 'quotes-transform-daily', detail: '2024-01-02T12:00:00.000Z' },
        output: { date: '2024-01-01', status: 'published', raw_rows: 1, fact: { rows: 1 }, agg: { rows: 1 } },
      });
      const fact = await t.query(`SELECT ingested_at, dt FROM quotes.quotes_fact`);
      expect(fact).toEqual([{ ingested_at: '2024-01-01T23:59:00.000Z', dt: '2024-01-01' }]);
      await eventually(() => (finished.some((r) => r.workflow === 'quotes-poll') ? true : undefined));
      expect(finished.filter((r) => r.workflow === 'quotes-poll')).toHaveLength(1);
      expect(alerts).toHaveLength(1);
    } finally {
      await again.stop(5_000);
    }
  });

  it('the transform takes the day before its scheduled time, or the date it is given', () => {
    const now = new Date('2024-05-05T08:00:00.000Z');
    expect(transformDate({ scheduledTime: '2024-03-01T12:00:00.000Z' }, now)).toBe('2024-02-29');
    expect(transformDate({ date: '2023-12-31' }, now)).toBe('2023-12-31');
    expect(transformDate({}, now)).toBe('2024-05-04');
    expect(() => transformDate({ date: '2023-13-01' }, now)).toThrow(/not YYYY-MM-DD/);
  });
});
