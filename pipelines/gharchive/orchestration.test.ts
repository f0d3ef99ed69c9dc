import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLocalBackend } from '../../src/backends/local/local-backend.ts';
import type { Alert } from '../../src/core/alert.ts';
import { BookmarkStore } from '../../src/core/bookmark.ts';
import { ConfigStore } from '../../src/core/config.ts';
import type { PipelineContext } from '../../src/core/context.ts';
import { noProgress, silentLogger } from '../../src/core/logger.ts';
import type { Notifier } from '../../src/core/ports/notifier.ts';
import type { ExecutionRecord } from '../../src/core/ports/workflow-runner.ts';
import { LocalStack } from '../../src/runtime/local/local-stack.ts';
import { type StaticServer, serveDirectory } from '../../src/sources/http/static-server.ts';
import { ManualClock } from '../../test/helpers/manual-clock.ts';
import { countBy, GHARCHIVE_SAMPLE, sampleEvents } from '../../test/helpers/samples.ts';
import { pipelineModules } from '../index.ts';

/** Waits (in real time) until `check` returns a value; fails the test after `timeoutMs`. */
async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('sluice up keeps gharchive current: schedule -> ingest -> object-created -> transform', () => {
  let home: string;
  let archive: string;
  let server: StaticServer;
  let clock: ManualClock;
  let ctx: PipelineContext;
  let alerts: Alert[];
  let finished: ExecutionRecord[];
  const notifier: Notifier = {
    notify: async (alert) => {
      alerts.push(alert);
      return { delivered: ['memory'], failed: [] };
    },
  };

  beforeEach(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'sluice-up-'));
    archive = await mkdtemp(path.join(os.tmpdir(), 'sluice-archive-'));
    await copyFile(GHARCHIVE_SAMPLE, path.join(archive, '2015-01-01-0.json.gz'));
    server = await serveDirectory(archive);
    clock = new ManualClock(new Date('2015-01-01T00:30:00Z'));
    const backend = createLocalBackend(home, { clock });
    ctx = {
      backend,
      clock,
      logger: silentLogger,
      progress: noProgress,
      workDir: path.join(home, 'tmp'),
      engine: { threads: 2 },
    };
    alerts = [];
    finished = [];
    const bookmarks = await BookmarkStore.open(backend.kv, clock);
    await bookmarks.record(
      'gharchive',
      { last_file: '2014-12-31-23.json.gz' },
      { advance: true, expected: undefined, runId: 'seed' },
    );
    await (await ConfigStore.open(backend.kv, clock)).set('gharchive', 'source_url', server.url);
  });
  afterEach(async () => {
    await server.close();
    await ctx.backend.close();
    await rm(home, { recursive: true, force: true });
    await rm(archive, { recursive: true, force: true });
  });

  function start(options: { watch?: false | { stabilityMs: number; pollMs: number } } = {}) {
    return LocalStack.start({
      ctx,
      lakeRoot: path.join(home, 'lake'),
      modules: [pipelineModules.gharchive!],
      notifier,
      watch: options.watch ?? false,
      retryIntervalMs: 0,
      configPollMs: 60_000,
      onExecutionFinished: (record) => finished.push(record),
    });
  }

  async function count(): Promise<number> {
    const engine = await ctx.backend.openQueryEngine();
    try {
      return Number((await engine.query('SELECT count(*) AS n FROM gharchive.events')).rows[0]?.n);
    } finally {
      await engine.close();
    }
  }

  it('at the top of the hour lands the published hour, and its landing starts the transform', async () => {
    const stack = await start();

    try {
      // Both background loops asleep on the clock: the config follower and the schedule.
      await eventually(async () => (clock.waiting >= 2 ? true : undefined));
      await clock.set(new Date('2015-01-01T01:00:00Z'));
      const [ingest, transform] = await eventually(async () =>
        finished.length >= 2
          ? [
              finished.find((r) => r.workflow === 'gharchive-ingest'),
              finished.find((r) => r.workflow === 'gharchive-transform'),
            ]
          : undefined,
      );
      expect(ingest).toMatchObject({
        status: 'SUCCEEDED',
        source: { kind: 'schedule', name: 'gharchive-hourly', detail: '2015-01-01T01:00:00.000Z' },
        output: {
          landed: ['gharchive/date=2015-01-01/2015-01-01-0.json.gz'],
          stoppedAt: '2015-01-01-1.json.gz',
          more: false,
          bookmark: '2015-01-01-0.json.gz',
        },
      });
      expect(transform).toMatchObject({
        status: 'SUCCEEDED',
        source: {
          kind: 'object-created',
          name: 'gharchive-landed',
          detail: 'gharchive/date=2015-01-01/2015-01-01-0.json.gz',
        },
      });
      const events = sampleEvents();
      expect(await count()).toBe(events.length);
      const engine = await ctx.backend.openQueryEngine();
      const byType = (await engine.query('SELECT type, count(*) AS n FROM gharchive.events GROUP BY type'))
        .rows;
      await engine.close();
      expect(Object.fromEntries(byType.map((r) => [r.type, r.n]))).toEqual(
        countBy(events, (e) => String(e.type)),
      );

      // The ASL history shows the ingest's loop ending at the Choice.
      const history = await stack.runner.history(ingest!.executionId);
      expect(history.filter((e) => e.type === 'StateEntered').map((e) => e.state)).toEqual([
        'LandNewHours',
        'MoreHours',
        'Landed',
      ]);

      // Next hour: nothing new is published, so nothing is landed or transformed.
      await clock.set(new Date('2015-01-01T02:00:00Z'));
      await eventually(async () => (finished.length >= 3 ? true : undefined));
      expect(finished[2]).toMatchObject({
        workflow: 'gharchive-ingest',
        status: 'SUCCEEDED',
        output: { landed: [] },
      });
      expect(alerts).toEqual([]);
    } finally {
      await stack.stop(5_000);
    }

    // After a restart the landed object does not trigger again, and the missed 03:00 runs once.
    await clock.set(new Date('2015-01-01T03:10:00Z'));
    await copyFile(GHARCHIVE_SAMPLE, path.join(archive, '2015-01-01-1.json.gz'));
    finished = [];
    const again = await start();
    try {
      const records = await eventually(async () => (finished.length >= 2 ? finished : undefined));
      expect(records.map((r) => `${r.workflow}:${r.status}`).sort()).toEqual([
        'gharchive-ingest:SUCCEEDED',
        'gharchive-transform:SUCCEEDED',
      ]);
      expect(records.find((r) => r.workflow === 'gharchive-ingest')?.source?.detail).toBe(
        '2015-01-01T03:00:00.000Z (missed)',
      );
      expect(records.find((r) => r.workflow === 'gharchive-transform')?.source?.detail).toBe(
        'gharchive/date=2015-01-01/2015-01-01-1.json.gz',
      );
      // Hour 1 is a copy of hour 0 (same ids): every event is a duplicate, the table does not grow.
      expect(await count()).toBe(sampleEvents().length);
    } finally {
      await again.stop(5_000);
    }
  });

  it('refuses a second stack on the same home', async () => {
    const stack = await start();
    try {
      await expect(start()).rejects.toThrow(/"sluice-up" is busy/);
    } finally {
      await stack.stop(5_000);
    }
    const again = await start();
    await again.stop(5_000);
  });

  it('a configuration change reaches the running ingest function without a restart', async () => {
    const empty = await mkdtemp(path.join(os.tmpdir(), 'sluice-empty-'));
    const emptyServer = await serveDirectory(empty);
    const config = await ConfigStore.open(ctx.backend.kv, clock);
    await config.set('gharchive', 'source_url', emptyServer.url);
    const stack = await start();
    try {
      await eventually(async () => (clock.waiting >= 2 ? true : undefined));
      await clock.set(new Date('2015-01-01T01:00:00Z'));
      const first = await eventually(async () => finished.find((r) => r.workflow === 'gharchive-ingest'));
      // The empty archive publishes nothing yet.
      expect(first.output).toMatchObject({ landed: [], stoppedAt: '2015-01-01-0.json.gz' });
      expect(emptyServer.requests).toEqual(['/2015-01-01-0.json.gz']);

      await config.set('gharchive', 'source_url', server.url);
      await clock.set(new Date('2015-01-01T02:00:00Z'));
      const second = await eventually(
        async () => finished.filter((r) => r.workflow === 'gharchive-ingest')[1],
      );
      expect(second.output).toMatchObject({ landed: ['gharchive/date=2015-01-01/2015-01-01-0.json.gz'] });
      expect(server.requests).toContain('/2015-01-01-0.json.gz');
      expect(emptyServer.requests).toHaveLength(1);
    } finally {
      await stack.stop(5_000);
      await emptyServer.close();
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('a file copied into landing by hand starts its transform once, and a failure raises an alert', async () => {
    const stack = await start({ watch: { stabilityMs: 150, pollMs: 25 } });
    try {
      const dir = path.join(home, 'lake/landing/gharchive/date=2015-01-01');
      await mkdir(dir, { recursive: true });
      await copyFile(GHARCHIVE_SAMPLE, path.join(dir, '2015-01-01-0.json.gz'));
      const transform = await eventually(async () =>
        finished.find((r) => r.workflow === 'gharchive-transform'),
      );
      expect(transform).toMatchObject({
        status: 'SUCCEEDED',
        source: { kind: 'object-created', detail: 'gharchive/date=2015-01-01/2015-01-01-0.json.gz' },
      });
      expect(await count()).toBe(sampleEvents().length);

      // A landed file that is not an hour file fails its transform: the alert names what and why.
      await copyFile(GHARCHIVE_SAMPLE, path.join(dir, 'not-an-hour.json.gz'));
      const failed = await eventually(async () => finished.find((r) => r.status === 'FAILED'));
      expect(failed).toMatchObject({ workflow: 'gharchive-transform', failedState: 'TransformHour' });
      expect(alerts).toEqual([
        expect.objectContaining({
          severity: 'error',
          pipeline: 'gharchive',
          workflow: 'gharchive-transform',
          executionId: failed.executionId,
          state: 'TransformHour',
          cause: expect.stringContaining('not-an-hour.json.gz is not a GH Archive hour file'),
        }),
      ]);
      expect(finished.filter((r) => r.workflow === 'gharchive-transform')).toHaveLength(2);
    } finally {
      await stack.stop(5_000);
    }
  });
});
