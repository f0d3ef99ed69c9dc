import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type LocalFunction, LocalWorkflowRunner } from '../../src/backends/local/local-workflow-runner.ts';
import type { Alert } from '../../src/core/alert.ts';
import type { JsonValue } from '../../src/core/ports/kv-table.ts';
import type { Notifier } from '../../src/core/ports/notifier.ts';
import type { ExecutionRecord } from '../../src/core/ports/workflow-runner.ts';
import { LocalStack } from '../../src/runtime/local/local-stack.ts';
import { ManualClock } from '../../test/helpers/manual-clock.ts';
import {
  createTollsHome,
  eventually,
  startTestWarehouse,
  type TestWarehouse,
  TOLLS_SAMPLES,
  type TollsHome,
} from '../../test/helpers/tolls.ts';
import { pipelineModules } from '../index.ts';
import { tollsPipeline } from './definition.ts';
import { landTollFiles } from './run.ts';

interface LoadOutput {
  load: { loaded: { source_key: string; status: string; rows: number }[] };
}

let warehouse: TestWarehouse;
let t: TollsHome;
let clock: ManualClock;
let alerts: Alert[];
const notifier: Notifier = {
  notify: async (alert) => {
    alerts.push(alert);
    return { delivered: ['memory'], failed: [] };
  },
};

beforeAll(async () => {
  warehouse = await startTestWarehouse('orch');
});
afterAll(async () => {
  await warehouse?.stop();
});
beforeEach(async () => {
  await warehouse.reset();
  clock = new ManualClock(new Date(Math.floor(Date.now() / 60_000) * 60_000));
  t = await createTollsHome({ warehouseUrl: warehouse.url, clock });
  alerts = [];
});
afterEach(async () => {
  await t?.close();
});

async function rowCount(): Promise<number | undefined> {
  const [row] = await warehouse
    .sql<{ n: number }>('SELECT count(*)::int AS n FROM toll_table')
    .catch(() => [undefined]);
  return row?.n;
}

describe('tolls under sluice up (LocalStack, lake watcher, ManualClock)', () => {
  it('a file copied by hand into <home>/lake/landing/tolls/ is loaded with no manual step; the same bytes dropped again under other names load nothing more', async () => {
    const landingDir = path.join(t.home, 'lake', 'landing', 'tolls');
    await mkdir(landingDir, { recursive: true });
    const finished: ExecutionRecord[] = [];
    const stack = await LocalStack.start({
      ctx: t.ctx,
      lakeRoot: path.join(t.home, 'lake'),
      modules: [pipelineModules.tolls!],
      notifier,
      watch: { stabilityMs: 100, pollMs: 20 },
      retryIntervalMs: 0,
      waitMs: 0,
      configPollMs: 60_000,
      onExecutionFinished: (record) => finished.push(record),
    });
    try {
      // A hand drop: a plain file copy, no sluice call.
      await copyFile(TOLLS_SAMPLES.pythonDict, path.join(landingDir, 'sample_data-2023-08-29-10-00.json'));
      const first = await eventually(() => finished[0], 'the first execution finished');
      expect(first).toMatchObject({
        workflow: 'tolls-load',
        status: 'SUCCEEDED',
        source: {
          kind: 'object-created',
          name: 'tolls-landed',
          detail: 'tolls/sample_data-2023-08-29-10-00.json',
        },
      });
      expect((first.output as unknown as LoadOutput).load.loaded).toEqual([
        expect.objectContaining({ status: 'loaded', rows: 80 }),
      ]);
      expect(await rowCount()).toBe(80);

      // The same bytes under another name: a new execution, nothing copied.
      await copyFile(TOLLS_SAMPLES.pythonDict, path.join(landingDir, 'sample_data-2023-08-29-10-05.json'));
      const second = await eventually(() => finished[1], 'the second execution finished');
      expect(second).toMatchObject({
        status: 'SUCCEEDED',
        source: { detail: 'tolls/sample_data-2023-08-29-10-05.json' },
      });
      expect((second.output as unknown as LoadOutput).load.loaded).toEqual([
        expect.objectContaining({ status: 'already-loaded', rows: 80 }),
      ]);
      expect(await rowCount()).toBe(80);

      // Two drops at once (the NDJSON copy under two names): two executions run concurrently; the
      // load lock lets one copy and the other find it loaded.
      await Promise.all([
        copyFile(TOLLS_SAMPLES.ndjson, path.join(landingDir, 'batch-a.ndjson')),
        copyFile(TOLLS_SAMPLES.ndjson, path.join(landingDir, 'batch-b.ndjson')),
      ]);
      await eventually(() => (finished.length >= 4 ? true : undefined), 'four executions finished');
      const pair = finished.slice(2);
      expect(pair.map((r) => r.status)).toEqual(['SUCCEEDED', 'SUCCEEDED']);
      expect(pair.map((r) => r.source?.name)).toEqual(['tolls-landed-ndjson', 'tolls-landed-ndjson']);
      expect(
        pair.flatMap((r) => (r.output as unknown as LoadOutput).load.loaded.map((l) => l.status)).sort(),
      ).toEqual(['already-loaded', 'loaded']);
      expect(await rowCount()).toBe(160);
      expect(await warehouse.sql<{ n: number }>('SELECT count(*)::int AS n FROM sluice_loads')).toEqual([
        { n: 2 },
      ]);
      expect(alerts).toEqual([]);
    } finally {
      await stack.stop(0);
    }
    expect(finished).toHaveLength(4);
  });
});

/** Wraps a real handler: `call` is 1 for the first invocation; `real()` runs it. */
type Injection = (call: number, event: JsonValue, real: () => Promise<JsonValue>) => Promise<JsonValue>;

describe('tolls-load workflow settings (LocalWorkflowRunner, real handlers)', () => {
  const runners: LocalWorkflowRunner[] = [];
  let calls: Record<string, number>;

  afterEach(async () => {
    for (const runner of runners.splice(0)) await runner.shutdown(0);
  });

  async function open(inject: Record<string, Injection> = {}): Promise<LocalWorkflowRunner> {
    calls = {};
    const handlers = pipelineModules.tolls!.handlers({
      ctx: t.ctx,
      config: { get: () => undefined },
      notifier,
    });
    const functions: Record<string, LocalFunction> = {};
    for (const definition of tollsPipeline.functions ?? []) {
      const real = handlers[definition.name]!;
      const injection = inject[definition.name];
      functions[definition.name] = {
        definition,
        handler: (event, context) => {
          const call = (calls[definition.name] ?? 0) + 1;
          calls[definition.name] = call;
          return injection ? injection(call, event, () => real(event, context)) : real(event, context);
        },
      };
    }
    const runner = await LocalWorkflowRunner.open({
      kv: t.backend.kv,
      clock,
      workflows: tollsPipeline.workflows ?? [],
      functions,
      notifier,
      retryIntervalMs: 0,
      waitMs: 0,
    });
    runners.push(runner);
    return runner;
  }

  async function sampleEvent(): Promise<JsonValue> {
    const { event } = await landTollFiles(t.ctx, { inputs: [TOLLS_SAMPLES.pythonDict] });
    return event as unknown as JsonValue;
  }

  it('as the original: workflow max concurrency 2; the Job retries once (MaxAttempts 1) and times out after 900 s', () => {
    const [workflow] = tollsPipeline.workflows ?? [];
    expect(workflow).toMatchObject({ name: 'tolls-load', maxConcurrency: 2 });
    const states = workflow!.definition.States as Record<
      string,
      { Resource?: string; TimeoutSeconds?: number; Retry?: { ErrorEquals: string[]; MaxAttempts: number }[] }
    >;
    expect(states.Job).toMatchObject({ Resource: '${tolls-job}', TimeoutSeconds: 900 });
    // A data-quality block is not retried (the same content fails the same check); anything else once.
    expect(states.Job?.Retry).toEqual([
      { ErrorEquals: ['QualityBlockedError'], MaxAttempts: 0 },
      expect.objectContaining({ ErrorEquals: ['States.ALL'], MaxAttempts: 1 }),
    ]);
    expect(tollsPipeline.functions?.find((f) => f.name === 'tolls-job')?.timeoutSeconds).toBe(900);
    expect(tollsPipeline.triggers?.find((tr) => tr.name === 'tolls-landed')).toMatchObject({
      layer: 'landing',
      prefix: 'tolls/',
      suffix: '.json',
      workflow: 'tolls-load',
    });
  });

  it('a Job that fails once is retried once and the execution loads the 80 rows; one that fails twice fails the execution in Job', async () => {
    const flaky = await open({
      'tolls-job': async (call, _event, real) => {
        if (call === 1) throw new Error('job worker lost');
        return real();
      },
    });
    const ok = await (await flaky.start('tolls-load', await sampleEvent())).done;
    expect(ok.status, ok.cause).toBe('SUCCEEDED');
    expect(calls).toEqual({ 'tolls-crawl': 1, 'tolls-job': 2, 'tolls-load': 1 });
    expect(await rowCount()).toBe(80);

    await warehouse.reset();
    const broken = await open({
      'tolls-job': async () => {
        throw new Error('job worker lost again');
      },
    });
    const failed = await (await broken.start('tolls-load', await sampleEvent())).done;
    expect(failed).toMatchObject({ status: 'FAILED', failedState: 'Job' });
    expect(failed.cause).toMatch(/job worker lost again/);
    expect(calls).toEqual({ 'tolls-crawl': 1, 'tolls-job': 2 });
    expect(await rowCount()).toBeUndefined();
    expect(alerts.map((a) => a.title)).toEqual(['tolls-load failed in state Job']);
  });

  it('runs at most 2 executions at once: a third waits for a slot, then all finish and the file loads once', async () => {
    let active = 0;
    let maxActive = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const runner = await open({
      'tolls-crawl': async (_call, _event, real) => {
        active++;
        maxActive = Math.max(maxActive, active);
        try {
          await gate;
          return await real();
        } finally {
          active--;
        }
      },
    });
    const event = await sampleEvent();
    let startedThird = false;
    const starts = [runner.start('tolls-load', event), runner.start('tolls-load', event)];
    const third = runner.start('tolls-load', event).then((handle) => {
      startedThird = true;
      return handle;
    });
    await eventually(() => (calls['tolls-crawl'] === 2 ? true : undefined), 'two crawls running');
    // Some turns of the event loop: the third execution stays queued while two run.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(startedThird).toBe(false);
    expect(calls['tolls-crawl']).toBe(2);
    release();
    const records = await Promise.all([...starts, third].map(async (s) => (await s).done));
    expect(records.map((r) => r.status)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    expect(maxActive).toBe(2);
    expect(calls['tolls-crawl']).toBe(3);
    expect(
      records.flatMap((r) => (r.output as unknown as LoadOutput).load.loaded.map((l) => l.status)).sort(),
    ).toEqual(['already-loaded', 'already-loaded', 'loaded']);
    expect(await rowCount()).toBe(80);
  });
});
