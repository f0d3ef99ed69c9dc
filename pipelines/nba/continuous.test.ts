import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Alert } from '../../src/core/alert.ts';
import { ConfigStore } from '../../src/core/config.ts';
import type { FunctionContext } from '../../src/core/function.ts';
import type { Notifier } from '../../src/core/ports/notifier.ts';
import type { ExecutionRecord } from '../../src/core/ports/workflow-runner.ts';
import { RunLog } from '../../src/core/run.ts';
import { LocalStack } from '../../src/runtime/local/local-stack.ts';
import { createTestHome, type TestHome } from '../../test/helpers/context.ts';
import { ManualClock } from '../../test/helpers/manual-clock.ts';
import { pipelineModules } from '../index.ts';
import { DEFAULT_TWEET_STREAM, drainTampering, ensureTweetStream, putEnvelopes } from './continuous.ts';
import { nbaPipeline } from './definition.ts';
import type { Envelope } from './envelopes.ts';
import { loadReferenceData, openReferenceTables, type PlayerRecord } from './reference.ts';
import { replayTampering } from './tampering.ts';

const PLAYERS: PlayerRecord[] = [
  { account: 'a1', name: 'Alice', team: 'A' },
  { account: 'a2', name: 'Anna', team: 'A' },
  { account: 'b1', name: 'Bob', team: 'B' },
  { account: 'c1', name: 'Carl', team: 'C' },
  { account: 'c2', name: 'Cody', team: 'C' },
];
const T0 = Date.parse('2021-01-01T00:00:00.000Z');

let nextId = 1;
function envelope(t: number, username: string, athlete: string): Envelope {
  return {
    event_time: t,
    data: [
      {
        id: String(nextId++),
        created_at: new Date(t).toISOString(),
        context_annotations: [{ domain: { id: '60' }, entity: { name: athlete } }],
      },
    ],
    includes: { users: [{ username }] },
  };
}

/**
 * Windows 0..9 of 30 s, each: A -> Bob twice (alert), C -> Bob once, C -> Anna twice (alert),
 * A -> Carl once on time; after the next window, a second A -> Carl late within the allowed
 * lateness (a re-firing with an alert; windows 0..8); three windows later, a C -> Bob beyond the lateness (late
 * side output). A last envelope far ahead moves the watermark past every window.
 */
function scenario(): Envelope[] {
  const out: Envelope[] = [];
  for (let k = 0; k < 10; k++) {
    const w = T0 + k * 30_000;
    out.push(
      envelope(w + 5_000, 'a2', 'Bob'),
      envelope(w + 1_000, 'a1', 'Bob'), // out of order within the 20 s bound
      envelope(w + 7_000, 'c1', 'Bob'),
      envelope(w + 10_000, 'c1', 'Anna'),
      envelope(w + 12_000, 'c2', 'Anna'),
      envelope(w + 25_000, 'a1', 'Carl'),
    );
    if (k >= 1) out.push(envelope(T0 + (k - 1) * 30_000 + 26_000, 'a2', 'Carl'));
    if (k >= 3) out.push(envelope(T0 + (k - 3) * 30_000 + 2_000, 'c1', 'Bob'));
  }
  out.push(envelope(T0 + 3_600_000, 'nobody', 'Bob'));
  return out;
}

function chunks<T>(items: readonly T[], n: number): T[][] {
  const size = Math.ceil(items.length / n);
  return Array.from({ length: n }, (_v, i) => items.slice(i * size, (i + 1) * size));
}

const fnContext: FunctionContext = {
  functionName: 'nba-tampering',
  awsRequestId: 'test',
  getRemainingTimeInMillis: () => 300_000,
};

describe('nba tampering as a continuous job over the stream (scheduled drains)', () => {
  let t: TestHome;
  let clock: ManualClock;
  let notified: Alert[];
  const notifier: Notifier = {
    notify: async (alert) => {
      notified.push(alert);
      return { delivered: ['memory'], failed: [] };
    },
  };
  const config = { get: (key: string) => nbaPipeline.config?.[key]?.default };

  beforeEach(async () => {
    clock = new ManualClock(new Date('2024-03-01T12:00:30.000Z'));
    t = await createTestHome({ clock });
    notified = [];
    nextId = 1;
    await loadReferenceData(t.ctx, { players: PLAYERS });
    await ensureTweetStream(t.ctx, DEFAULT_TWEET_STREAM);
  });
  afterEach(async () => {
    await t.close();
  });

  const handler = () => pipelineModules.nba!.handlers({ ctx: t.ctx, config, notifier })['nba-tampering']!;
  const notifiedIds = () => notified.map((a) => String(a.details?.id));
  const datasetIds = async () =>
    (await t.query<{ id: string }>('SELECT id FROM nba.tampering_alerts ORDER BY id')).map((r) => r.id);

  it('several drains over batches give exactly the alerts of one replay; counts reconcile in the run log', async () => {
    const input = scenario();
    const expected = replayTampering({ envelopes: input, players: PLAYERS });
    expect(expected.alerts.length).toBe(29); // 10 x A|Bob, 10 x C|Anna, 9 x A|Carl re-fired
    expect(expected.alerts.filter((a) => a.firing === 1)).toHaveLength(9);
    expect(expected.late).toHaveLength(7);

    const invoke = handler();
    const outputs: unknown[] = [];
    for (const batch of chunks(input, 4)) {
      await putEnvelopes(t.ctx, DEFAULT_TWEET_STREAM, batch);
      // A record that is not an envelope: quarantined, counted, the position moves past it.
      await t.backend.stream.putRecord(DEFAULT_TWEET_STREAM, { partitionKey: 'x', data: 'not json' });
      outputs.push(await invoke(null, fnContext));
      await clock.advance(60_000);
    }
    // Nothing new: a drain reads nothing and alerts nothing.
    outputs.push(await invoke(null, fnContext));

    expect(notifiedIds()).toEqual(expected.alerts.map((a) => a.id));
    expect(await datasetIds()).toEqual(expected.alerts.map((a) => a.id).sort());
    expect(outputs.at(-1)).toMatchObject({ records: 0, alerts: 0, stopped_because: 'caught_up' });

    const runs = (await (await RunLog.open(t.backend.kv, clock)).list({ pipeline: 'nba' })).filter(
      (r) => r.step === 'tampering',
    );
    expect(runs.map((r) => r.status).sort()).toEqual([
      'skipped',
      'succeeded',
      'succeeded',
      'succeeded',
      'succeeded',
    ]);
    const total = runs.reduce(
      (s, r) => ({
        read: s.read + (r.counts?.read ?? 0),
        quarantined: s.quarantined + (r.counts?.quarantined ?? 0),
        filtered: s.filtered + (r.counts?.filtered ?? 0),
        loaded: s.loaded + (r.counts?.loaded ?? 0),
      }),
      { read: 0, quarantined: 0, filtered: 0, loaded: 0 },
    );
    // 77 envelopes + 4 bad records; filtered: 1 unknown source + 7 late.
    expect(total).toEqual({ read: input.length + 4, quarantined: 4, filtered: 8, loaded: input.length - 8 });
  });

  it('a crash after the sinks but before the checkpoint re-processes without duplicate alerts', async () => {
    const input = scenario();
    const expected = replayTampering({ envelopes: input, players: PLAYERS });
    const [first = [], second = [], third = []] = chunks(input, 3);
    const invoke = handler();
    await putEnvelopes(t.ctx, DEFAULT_TWEET_STREAM, first);
    await invoke(null, fnContext);
    await clock.advance(60_000);

    await putEnvelopes(t.ctx, DEFAULT_TWEET_STREAM, second);
    const crash = new Error('killed before the checkpoint');
    await expect(
      drainTampering(t.ctx, {
        runId: 'crashed',
        notifier,
        beforeSave: async () => {
          throw crash;
        },
      }),
    ).rejects.toBe(crash);
    const afterCrash = notified.length;
    expect(afterCrash).toBeGreaterThan(0);
    await clock.advance(60_000);

    // The retry re-reads batch 2 from the previous checkpoint (plus what arrived since).
    await putEnvelopes(t.ctx, DEFAULT_TWEET_STREAM, third);
    const retry = (await invoke(null, fnContext)) as { records: number };
    expect(retry.records).toBe(second.length + third.length);
    await invoke(null, fnContext);

    expect(notifiedIds()).toEqual(expected.alerts.map((a) => a.id));
    expect(new Set(notifiedIds()).size).toBe(notified.length);
    expect(await datasetIds()).toEqual(expected.alerts.map((a) => a.id).sort());
  });

  it('a control change applied between invocations suppresses a team from then on', async () => {
    const input = scenario();
    const cut = input.findIndex((e) => e.event_time >= T0 + 5 * 30_000);
    const invoke = handler();
    await putEnvelopes(t.ctx, DEFAULT_TWEET_STREAM, input.slice(0, cut));
    await invoke(null, fnContext);
    const teamsBefore = new Set(notified.map((a) => String(a.details?.team)));
    expect(teamsBefore).toEqual(new Set(['A', 'C']));

    const { control } = await openReferenceTables(t.ctx);
    await control.put({ team: 'A', control: true });
    await clock.advance(60_000);
    await putEnvelopes(t.ctx, DEFAULT_TWEET_STREAM, input.slice(cut));
    const out = (await invoke(null, fnContext)) as { control_changes: number };
    expect(out.control_changes).toBe(1);

    // Windows 5..9: only team C alerts; A's tweets are suppressed (windows 0..4 were filled before).
    const late = notified.filter((a) => Date.parse(String(a.details?.window_start)) >= T0 + 5 * 30_000);
    expect(late.length).toBe(5);
    expect(new Set(late.map((a) => String(a.details?.team)))).toEqual(new Set(['C']));
    const runs = (await (await RunLog.open(t.backend.kv, clock)).list({ pipeline: 'nba' })).filter(
      (r) => r.step === 'tampering',
    );
    expect(Math.max(...runs.map((r) => Number(r.details?.suppressed ?? 0)))).toBeGreaterThan(0);

    // Removing the control lets A count again in the next invocation.
    await control.delete({ team: 'A' });
    await clock.advance(60_000);
    const w = T0 + 3_600_000 + 30_000;
    await putEnvelopes(t.ctx, DEFAULT_TWEET_STREAM, [
      envelope(w + 1_000, 'a1', 'Bob'),
      envelope(w + 2_000, 'a2', 'Bob'),
      envelope(w + 600_000, 'nobody', 'Bob'),
    ]);
    await invoke(null, fnContext);
    expect(notified.at(-1)?.details).toMatchObject({ team: 'A', tampering_player: 'Bob', total: 2 });
  });

  it('under sluice up (LocalStack, ManualClock) the schedules collect and drain, and alerts arrive', async () => {
    const input = scenario();
    const expected = replayTampering({ envelopes: input, players: PLAYERS });
    const file = path.join(t.home, 'envelopes.ndjson');
    await writeFile(file, `${input.map((e) => JSON.stringify(e)).join('\n')}\n`);
    await (await ConfigStore.open(t.backend.kv, clock)).set('nba', 'replay_envelopes', file);
    const finished: ExecutionRecord[] = [];
    const stack = await LocalStack.start({
      ctx: t.ctx,
      lakeRoot: path.join(t.home, 'lake'),
      modules: [pipelineModules.nba!],
      notifier,
      watch: false,
      retryIntervalMs: 0,
      waitMs: 0,
      configPollMs: 60_000,
      onExecutionFinished: (record) => finished.push(record),
    });
    const eventually = async <T>(check: () => T | undefined): Promise<T> => {
      const until = Date.now() + 15_000;
      for (;;) {
        const value = check();
        if (value !== undefined) return value;
        if (Date.now() > until) throw new Error('condition not reached in time');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    try {
      await eventually(() => (clock.waiting >= 3 ? true : undefined));
      await clock.set(new Date('2024-03-01T12:01:00.000Z'));
      await eventually(() => (finished.length >= 2 ? true : undefined));
      await clock.set(new Date('2024-03-01T12:02:00.000Z'));
      await eventually(() => (finished.length >= 4 ? true : undefined));
      expect(finished.every((r) => r.status === 'SUCCEEDED')).toBe(true);
      const collects = finished.filter((r) => r.workflow === 'nba-collect');
      expect(collects.map((r) => (r.output as { status?: string }).status)).toEqual(['sent', 'skipped']);
      expect(finished.filter((r) => r.workflow === 'nba-tampering').map((r) => r.source?.name)).toEqual([
        'nba-tampering-every-minute',
        'nba-tampering-every-minute',
      ]);
      const alerts = notified.filter((a) => a.title.startsWith('NBA team'));
      expect(alerts.map((a) => String(a.details?.id))).toEqual(expected.alerts.map((a) => a.id));
    } finally {
      await stack.stop(5_000);
    }
  });
});
