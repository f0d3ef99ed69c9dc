import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Clock, systemClock } from '../../src/core/clock.ts';
import { NotFoundError, SluiceError } from '../../src/core/errors.ts';
import type { JsonValue } from '../../src/core/ports/kv-table.ts';
import type {
  ExecutionEvent,
  ExecutionHandle,
  ExecutionRecord,
  ExecutionSource,
  WorkflowRunner,
} from '../../src/core/ports/workflow-runner.ts';
import type { WorkflowDefinition } from '../../src/core/workflow.ts';

/**
 * A test function: the Task's effective input in, its result out. Errors are thrown with the ASL
 * error name as `name` (what `Retry`/`Catch` match), as sluice functions throw them.
 */
export type ConformanceFunction = (event: JsonValue) => Promise<JsonValue>;

/** What a backend gets to build its runner from. */
export interface WorkflowRunnerSetup {
  /** The workflows; every Task `Resource` is `"${<function>}"` naming one of {@link functions}. */
  readonly workflows: readonly WorkflowDefinition[];
  /** The functions by name (fresh for each case: some count their calls). */
  readonly functions: Readonly<Record<string, ConformanceFunction>>;
  /**
   * The clock the runner (and a fake service) must use: the system clock, but never the same
   * millisecond twice, so executions started one after another have distinct, ordered start times.
   */
  readonly clock: Clock;
}

/** Cases a backend may skip, each with the reason (shown in the skipped test's title). */
export type WorkflowRunnerConformanceSkip = 'maxConcurrency' | 'abortOnShutdown';

/** Options of {@link workflowRunnerConformance}; the local backend passes none. */
export interface WorkflowRunnerConformanceOptions {
  /** Cases to skip, with why (a limit of the service, not of the adapter); say so in docs/parity.md. */
  readonly skip?: Partial<Record<WorkflowRunnerConformanceSkip, string>>;
}

const PIPELINE = 'conf';

function workflow(
  name: string,
  definition: WorkflowDefinition['definition'],
  extra: Partial<WorkflowDefinition> = {},
) {
  return { name, pipeline: PIPELINE, description: `conformance: ${name}`, definition, ...extra };
}

/** The workflows of the suite: small ASL machines whose Task states call the test functions. */
export const CONFORMANCE_WORKFLOWS: readonly WorkflowDefinition[] = [
  workflow('conf-double', {
    StartAt: 'Double',
    States: { Double: { Type: 'Task', Resource: '${conf-double}', End: true } },
  }),
  workflow('conf-retry', {
    StartAt: 'Fetch',
    States: {
      Fetch: {
        Type: 'Task',
        Resource: '${conf-flaky}',
        Retry: [
          // Not the matching retrier: the StateRetried event names the one that matched.
          { ErrorEquals: ['ValidationError'], MaxAttempts: 0 },
          { ErrorEquals: ['SourceUnavailableError'], IntervalSeconds: 1, MaxAttempts: 2, BackoffRate: 2 },
        ],
        End: true,
      },
    },
  }),
  workflow('conf-catch', {
    StartAt: 'Validate',
    States: {
      Validate: {
        Type: 'Task',
        Resource: '${conf-reject}',
        Catch: [{ ErrorEquals: ['ValidationError'], ResultPath: '$.error', Next: 'Quarantine' }],
        Next: 'Done',
      },
      Quarantine: { Type: 'Pass', Result: 'quarantined', ResultPath: '$.outcome', End: true },
      Done: { Type: 'Succeed' },
    },
  }),
  workflow('conf-task-fails', {
    StartAt: 'Check',
    States: { Check: { Type: 'Task', Resource: '${conf-reject}', End: true } },
  }),
  workflow('conf-fail-state', {
    StartAt: 'Prepare',
    States: {
      Prepare: { Type: 'Pass', Next: 'GiveUp' },
      GiveUp: { Type: 'Fail', Error: 'NoDataError', Cause: 'the hour had no events' },
    },
  }),
  workflow('conf-parallel', {
    StartAt: 'Both',
    States: {
      Both: {
        Type: 'Parallel',
        Branches: [
          { StartAt: 'Left', States: { Left: { Type: 'Task', Resource: '${conf-double}', End: true } } },
          { StartAt: 'Right', States: { Right: { Type: 'Pass', Result: 'right', End: true } } },
        ],
        End: true,
      },
    },
  }),
  workflow('conf-map', {
    StartAt: 'EachItem',
    States: {
      EachItem: {
        Type: 'Map',
        ItemsPath: '$.items',
        ItemProcessor: {
          StartAt: 'Item',
          States: { Item: { Type: 'Task', Resource: '${conf-double}', End: true } },
        },
        End: true,
      },
    },
  }),
  workflow('conf-map-retry', {
    StartAt: 'EachKey',
    States: {
      EachKey: {
        Type: 'Map',
        ItemsPath: '$.items',
        ItemProcessor: {
          StartAt: 'Attempt',
          States: {
            Attempt: {
              Type: 'Task',
              Resource: '${conf-flaky}',
              Retry: [{ ErrorEquals: ['SourceUnavailableError'], IntervalSeconds: 1, MaxAttempts: 2 }],
              End: true,
            },
          },
        },
        End: true,
      },
    },
  }),
  workflow('conf-block', {
    StartAt: 'Hold',
    States: { Hold: { Type: 'Task', Resource: '${conf-block}', End: true } },
  }),
  workflow(
    'conf-queue',
    { StartAt: 'Queued', States: { Queued: { Type: 'Task', Resource: '${conf-block}', End: true } } },
    { maxConcurrency: 1 },
  ),
  {
    name: 'other-pass',
    pipeline: 'other',
    description: 'conformance: a Pass state of another pipeline',
    definition: { StartAt: 'Echo', States: { Echo: { Type: 'Pass', End: true } } },
  },
];

function named(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

/** The functions of one case, with the state the cases look at. */
function conformanceFunctions() {
  const calls: Record<string, JsonValue[]> = {
    'conf-double': [],
    'conf-flaky': [],
    'conf-reject': [],
    'conf-block': [],
  };
  const gates = new Map<
    string,
    { entered: () => void; release: () => void; enteredP: Promise<void>; releasedP: Promise<void> }
  >();
  const gate = (key: string) => {
    let g = gates.get(key);
    if (!g) {
      let entered!: () => void;
      let release!: () => void;
      const enteredP = new Promise<void>((r) => {
        entered = r;
      });
      const releasedP = new Promise<void>((r) => {
        release = r;
      });
      g = { entered, release, enteredP, releasedP };
      gates.set(key, g);
    }
    return g;
  };
  const key = (event: JsonValue) =>
    event !== null && typeof event === 'object' && !Array.isArray(event) ? String(event.key ?? '') : '';
  const flakyAttempts = new Map<string, number>();
  const functions: Record<string, ConformanceFunction> = {
    'conf-double': async (event) => {
      calls['conf-double']?.push(event);
      if (typeof event === 'number') return event * 2;
      const n =
        event !== null && typeof event === 'object' && !Array.isArray(event) ? Number(event.n) : Number.NaN;
      return { n: n * 2 };
    },
    /** Fails once per key with SourceUnavailableError, then succeeds. */
    'conf-flaky': async (event) => {
      calls['conf-flaky']?.push(event);
      const attempt = (flakyAttempts.get(key(event)) ?? 0) + 1;
      flakyAttempts.set(key(event), attempt);
      if (attempt === 1) throw named('SourceUnavailableError', `attempt 1 for ${key(event)}: HTTP 503`);
      return { fetched: key(event), attempts: attempt };
    },
    'conf-reject': async (event) => {
      calls['conf-reject']?.push(event);
      throw named('ValidationError', `record ${key(event)} has no id`);
    },
    /** Runs until the case releases its key. */
    'conf-block': async (event) => {
      calls['conf-block']?.push(event);
      const g = gate(key(event));
      g.entered();
      await g.releasedP;
      return { released: key(event) };
    },
  };
  return {
    functions,
    calls,
    /** Resolves once the blocking function runs for `key`. */
    entered: (k: string) => gate(k).enteredP,
    release: (k: string) => gate(k).release(),
    releaseAll: () => {
      for (const g of gates.values()) g.release();
    },
  };
}

/** The system clock, but each `now()` at least 1 ms after the previous one. */
function strictlyIncreasingClock(): Clock {
  let last = 0;
  return {
    now: () => {
      last = Math.max(Date.now(), last + 1);
      return new Date(last);
    },
    sleep: systemClock.sleep,
  };
}

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** `type` or `type:state` per event: the shape of a history, for exact sequence assertions. */
function shape(history: readonly ExecutionEvent[], types?: readonly string[]): string[] {
  return history
    .filter((e) => !types || types.includes(e.type))
    .map((e) => `${e.type}${e.state ? `:${e.state}` : ''}`);
}

/**
 * seq 1..n in order and ISO-8601 UTC timestamps with milliseconds. Timestamps are not required to
 * be non-decreasing: the local runner stamps events of Map iterations and Parallel branches when
 * they happen but appends them a little later, after events of other branches.
 */
function expectWellFormed(history: readonly ExecutionEvent[]): void {
  expect(history.map((e) => e.seq)).toEqual(history.map((_, i) => i + 1));
  for (const e of history) expect(e.timestamp).toMatch(ISO_MS);
}

/** The record of an ended execution: ISO-8601 times, stopped at or after it started. */
function expectEnded(record: ExecutionRecord, handle: ExecutionHandle, workflowName: string): void {
  expect(record.executionId).toBe(handle.executionId);
  expect(record.workflow).toBe(workflowName);
  expect(record.startedAt).toMatch(ISO_MS);
  expect(record.stoppedAt).toMatch(ISO_MS);
  expect((record.stoppedAt ?? '') >= record.startedAt).toBe(true);
}

/**
 * The {@link WorkflowRunner} contract (src/core/ports/workflow-runner.ts), for any backend. `open`
 * builds a runner over {@link WorkflowRunnerSetup} (a fresh one per case) and a `close`; the suite
 * starts executions of {@link CONFORMANCE_WORKFLOWS} and checks records, lists and histories in the
 * port's ASL event vocabulary. Fields a backend may add to events beyond the contract (e.g. the
 * local runner's `input` on `StateExited`) are not asserted.
 */
export function workflowRunnerConformance(
  backend: string,
  open: (setup: WorkflowRunnerSetup) => Promise<{ runner: WorkflowRunner; close(): Promise<void> }>,
  options: WorkflowRunnerConformanceOptions = {},
): void {
  /** `it`, or a skip whose title says why when the backend skips case `key`. */
  const itUnless = (key: WorkflowRunnerConformanceSkip, title: string, fn: () => Promise<void>) => {
    const reason = options.skip?.[key];
    if (reason === undefined) it(title, fn);
    else it.skip(`${title} (skipped on ${backend}: ${reason})`, fn);
  };

  describe(`WorkflowRunner conformance: ${backend}`, () => {
    let runner: WorkflowRunner;
    let close: () => Promise<void>;
    let fns: ReturnType<typeof conformanceFunctions>;

    beforeEach(async () => {
      fns = conformanceFunctions();
      ({ runner, close } = await open({
        workflows: CONFORMANCE_WORKFLOWS,
        functions: fns.functions,
        clock: strictlyIncreasingClock(),
      }));
    });
    afterEach(async () => {
      fns.releaseAll();
      await close();
    });

    it('start: done resolves with the final record, which describe returns; history is ordered', async () => {
      const handle = await runner.start('conf-double', { n: 21 });
      expect(handle.executionId).toEqual(expect.any(String));
      const record = await handle.done;
      expectEnded(record, handle, 'conf-double');
      expect(record).toMatchObject({
        pipeline: PIPELINE,
        status: 'SUCCEEDED',
        input: { n: 21 },
        output: { n: 42 },
      });
      expect(record).not.toHaveProperty('error');
      expect(record).not.toHaveProperty('source');
      expect(await runner.describe(handle.executionId)).toEqual(record);
      expect(fns.calls['conf-double']).toEqual([{ n: 21 }]);

      const history = await runner.history(handle.executionId);
      expectWellFormed(history);
      expect(shape(history)).toEqual([
        'ExecutionStarted',
        'StateEntered:Double',
        'StateExited:Double',
        'ExecutionSucceeded',
      ]);
      expect(history[0]).toMatchObject({ type: 'ExecutionStarted', input: { n: 21 } });
      expect(history[1]).toMatchObject({ stateType: 'Task', input: { n: 21 } });
      expect(history[2]).toMatchObject({ stateType: 'Task', output: { n: 42 } });
      expect(history[3]).toMatchObject({ output: { n: 42 } });
      expect(history[0]?.timestamp && history[0].timestamp >= record.startedAt).toBe(true);
    });

    it('keeps a non-object input as it is', async () => {
      const handle = await runner.start('other-pass', [1, 'two', null]);
      const record = await handle.done;
      expect(record).toMatchObject({
        status: 'SUCCEEDED',
        pipeline: 'other',
        input: [1, 'two', null],
        output: [1, 'two', null],
      });
    });

    it('retries a failing Task under its Retry: StateFailed, StateRetried (matching retrier, attempt 1), then success', async () => {
      const handle = await runner.start('conf-retry', { key: 'h1' });
      const record = await handle.done;
      expect(record).toMatchObject({ status: 'SUCCEEDED', output: { fetched: 'h1', attempts: 2 } });
      expect(fns.calls['conf-flaky']).toHaveLength(2);
      const history = await runner.history(handle.executionId);
      expectWellFormed(history);
      expect(shape(history)).toEqual([
        'ExecutionStarted',
        'StateEntered:Fetch',
        'StateFailed:Fetch',
        'StateRetried:Fetch',
        'StateExited:Fetch',
        'ExecutionSucceeded',
      ]);
      const failed = history[2];
      expect(failed).toMatchObject({ stateType: 'Task', error: 'SourceUnavailableError' });
      expect(failed?.cause).toContain('attempt 1 for h1: HTTP 503');
      expect(history[3]).toMatchObject({
        stateType: 'Task',
        retry: { errorEquals: ['SourceUnavailableError'], attempt: 1 },
      });
      expect(history[4]).toMatchObject({ output: { fetched: 'h1', attempts: 2 } });
    });

    it('catches a failing Task with its Catch: StateFailed, StateCaught, then the Catch target', async () => {
      const handle = await runner.start('conf-catch', { key: 'r7' });
      const record = await handle.done;
      expect(record.status).toBe('SUCCEEDED');
      const output = record.output as {
        key: string;
        outcome: string;
        error: { Error: string; Cause: string };
      };
      expect(output.key).toBe('r7');
      expect(output.outcome).toBe('quarantined');
      expect(output.error.Error).toBe('ValidationError');
      expect(output.error.Cause).toContain('record r7 has no id');
      expect(fns.calls['conf-reject']).toEqual([{ key: 'r7' }]);
      const history = await runner.history(handle.executionId);
      expectWellFormed(history);
      expect(shape(history)).toEqual([
        'ExecutionStarted',
        'StateEntered:Validate',
        'StateFailed:Validate',
        'StateCaught:Validate',
        'StateExited:Validate',
        'StateEntered:Quarantine',
        'StateExited:Quarantine',
        'ExecutionSucceeded',
      ]);
      expect(history[2]).toMatchObject({ error: 'ValidationError' });
      expect(history[2]?.cause).toContain('record r7 has no id');
      expect(history[3]).toMatchObject({ stateType: 'Task' });
      expect(history.at(-1)).toMatchObject({ output: record.output });
    });

    it('a Task failing without Retry or Catch fails the execution: error, cause and failedState; done does not reject', async () => {
      const handle = await runner.start('conf-task-fails', { key: 'r9' });
      const record = await handle.done;
      expectEnded(record, handle, 'conf-task-fails');
      expect(record).toMatchObject({ status: 'FAILED', error: 'ValidationError', failedState: 'Check' });
      expect(record.cause).toContain('record r9 has no id');
      expect(record).not.toHaveProperty('output');
      expect(await runner.describe(handle.executionId)).toEqual(record);
      const history = await runner.history(handle.executionId);
      expectWellFormed(history);
      expect(shape(history)).toEqual([
        'ExecutionStarted',
        'StateEntered:Check',
        'StateFailed:Check',
        'ExecutionFailed',
      ]);
      expect(history[2]).toMatchObject({ stateType: 'Task', error: 'ValidationError' });
      expect(history[3]).toMatchObject({ error: 'ValidationError' });
      expect(history[3]?.cause).toContain('record r9 has no id');
    });

    it('a Fail state fails the execution with its Error and Cause', async () => {
      const handle = await runner.start('conf-fail-state', { hour: '2024-05-01-10' });
      const record = await handle.done;
      expectEnded(record, handle, 'conf-fail-state');
      expect(record).toMatchObject({
        status: 'FAILED',
        error: 'NoDataError',
        cause: 'the hour had no events',
        failedState: 'GiveUp',
      });
      expect(await runner.describe(handle.executionId)).toEqual(record);
      const history = await runner.history(handle.executionId);
      expectWellFormed(history);
      expect(shape(history)).toEqual([
        'ExecutionStarted',
        'StateEntered:Prepare',
        'StateExited:Prepare',
        'StateEntered:GiveUp',
        'StateFailed:GiveUp',
        'ExecutionFailed',
      ]);
      expect(history[3]).toMatchObject({ stateType: 'Fail' });
      expect(history[4]).toMatchObject({
        stateType: 'Fail',
        error: 'NoDataError',
        cause: 'the hour had no events',
      });
      expect(history[5]).toMatchObject({ error: 'NoDataError', cause: 'the hour had no events' });
    });

    it('runs Parallel branches: output in branch order, branch states between the Parallel state entry and exit', async () => {
      const handle = await runner.start('conf-parallel', { n: 5 });
      const record = await handle.done;
      expect(record).toMatchObject({ status: 'SUCCEEDED', output: [{ n: 10 }, 'right'] });
      const history = await runner.history(handle.executionId);
      expectWellFormed(history);
      const states = shape(history, ['StateEntered', 'StateExited']);
      expect(states[0]).toBe('StateEntered:Both');
      expect(states.at(-1)).toBe('StateExited:Both');
      expect(states.slice(1, -1).sort()).toEqual(
        ['StateEntered:Left', 'StateExited:Left', 'StateEntered:Right', 'StateExited:Right'].sort(),
      );
      for (const branch of ['Left', 'Right']) {
        expect(states.indexOf(`StateEntered:${branch}`)).toBeLessThan(
          states.indexOf(`StateExited:${branch}`),
        );
      }
      expect(history.find((e) => e.type === 'StateEntered' && e.state === 'Both')).toMatchObject({
        stateType: 'Parallel',
      });
      expect(history.find((e) => e.type === 'StateExited' && e.state === 'Both')).toMatchObject({
        output: [{ n: 10 }, 'right'],
      });
      expect(shape(history).at(-1)).toBe('ExecutionSucceeded');
    });

    it('runs a Map state: one iteration per item (MapIterationStarted with the Map state and index as parent)', async () => {
      const handle = await runner.start('conf-map', { items: [1, 2, 3] });
      const record = await handle.done;
      expect(record).toMatchObject({ status: 'SUCCEEDED', output: [2, 4, 6] });
      expect([...(fns.calls['conf-double'] ?? [])].sort()).toEqual([1, 2, 3]);
      const history = await runner.history(handle.executionId);
      expectWellFormed(history);
      const iterations = history.filter((e) => e.type === 'MapIterationStarted');
      expect(iterations.map((e) => e.parent).sort((a, b) => (a?.index ?? 0) - (b?.index ?? 0))).toEqual([
        { state: 'EachItem', index: 0 },
        { state: 'EachItem', index: 1 },
        { state: 'EachItem', index: 2 },
      ]);
      const succeeded = history.filter((e) => e.type === 'MapIterationSucceeded');
      expect(succeeded.map((e) => e.parent?.index).sort()).toEqual([0, 1, 2]);
      expect(shape(history, ['StateEntered']).sort()).toEqual(
        ['StateEntered:EachItem', 'StateEntered:Item', 'StateEntered:Item', 'StateEntered:Item'].sort(),
      );
      expect(history.find((e) => e.type === 'StateEntered' && e.state === 'EachItem')).toMatchObject({
        stateType: 'Map',
      });
      expect(history.find((e) => e.type === 'StateExited' && e.state === 'EachItem')).toMatchObject({
        output: [2, 4, 6],
      });
      expect(shape(history, ['StateRetried', 'StateFailed', 'StateCaught'])).toEqual([]);
    });

    it('retries each Map iteration on its own: StateRetried attempt 1 in every iteration', async () => {
      const items = [{ key: 'm0' }, { key: 'm1' }, { key: 'm2' }];
      const handle = await runner.start('conf-map-retry', { items });
      const record = await handle.done;
      expect(record).toMatchObject({
        status: 'SUCCEEDED',
        output: items.map((i) => ({ fetched: i.key, attempts: 2 })),
      });
      expect(fns.calls['conf-flaky']).toHaveLength(6);
      const history = await runner.history(handle.executionId);
      expectWellFormed(history);
      expect(shape(history, ['StateFailed', 'StateRetried', 'StateCaught'])).toEqual(
        expect.arrayContaining(['StateFailed:Attempt', 'StateRetried:Attempt']),
      );
      expect(history.filter((e) => e.type === 'StateFailed')).toHaveLength(3);
      expect(history.filter((e) => e.type === 'StateCaught')).toHaveLength(0);
      expect(history.filter((e) => e.type === 'StateRetried').map((e) => e.retry)).toEqual([
        { errorEquals: ['SourceUnavailableError'], attempt: 1 },
        { errorEquals: ['SourceUnavailableError'], attempt: 1 },
        { errorEquals: ['SourceUnavailableError'], attempt: 1 },
      ]);
    });

    it('source: round trip through start, done, describe, list and history', async () => {
      const source: ExecutionSource = {
        kind: 'schedule',
        name: 'conf-hourly',
        detail: '2024-05-01T10:00:00Z',
      };
      const handle = await runner.start('conf-double', { n: 3 }, { source });
      const record = await handle.done;
      expect(record).toMatchObject({ status: 'SUCCEEDED', input: { n: 3 }, output: { n: 6 }, source });
      expect(await runner.describe(handle.executionId)).toEqual(record);
      const [listed] = await runner.list({ workflow: 'conf-double' });
      expect(listed).toMatchObject({ executionId: handle.executionId, input: { n: 3 }, source });
      const history = await runner.history(handle.executionId);
      expect(history[0]?.type).toBe('ExecutionStarted');
      expect(history[0]?.input).toEqual({ n: 3 });

      const manual = await runner.start(
        'conf-double',
        { n: 1 },
        { source: { kind: 'manual', name: 'sluice run' } },
      );
      expect((await manual.done).source).toEqual({ kind: 'manual', name: 'sluice run' });
    });

    it('unknown workflow: start throws NotFoundError; unknown execution: describe undefined, history empty', async () => {
      await expect(runner.start('no-such-workflow', {})).rejects.toBeInstanceOf(NotFoundError);
      const handle = await runner.start('conf-double', { n: 1 });
      await handle.done;
      const unknown = `${handle.executionId}-nope`;
      expect(await runner.describe(unknown)).toBeUndefined();
      expect(await runner.history(unknown)).toEqual([]);
      expect(await runner.list({ workflow: 'conf-double' })).toHaveLength(1);
    });

    it('list: newest first, filtered by pipeline, workflow and status, cut at limit', async () => {
      const ids: Record<string, string> = {};
      for (const [label, name, input] of [
        ['d1', 'conf-double', { n: 1 }],
        ['d2', 'conf-double', { n: 2 }],
        ['d3', 'conf-double', { n: 3 }],
        ['failed', 'conf-task-fails', { key: 'x' }],
        ['other', 'other-pass', { p: true }],
      ] as const) {
        const handle = await runner.start(name, input);
        await handle.done;
        ids[label] = handle.executionId;
      }
      const running = await runner.start('conf-block', { key: 'run' });
      ids.running = running.executionId;
      await fns.entered('run');
      const idsOf = (records: ExecutionRecord[]) =>
        records.map((r) => Object.entries(ids).find(([, id]) => id === r.executionId)?.[0] ?? r.executionId);

      expect(idsOf(await runner.list())).toEqual(['running', 'other', 'failed', 'd3', 'd2', 'd1']);
      expect(idsOf(await runner.list({ pipeline: PIPELINE }))).toEqual([
        'running',
        'failed',
        'd3',
        'd2',
        'd1',
      ]);
      expect(idsOf(await runner.list({ pipeline: 'other' }))).toEqual(['other']);
      expect(idsOf(await runner.list({ workflow: 'conf-double' }))).toEqual(['d3', 'd2', 'd1']);
      expect(idsOf(await runner.list({ status: 'FAILED' }))).toEqual(['failed']);
      expect(idsOf(await runner.list({ status: 'RUNNING' }))).toEqual(['running']);
      expect(idsOf(await runner.list({ status: 'SUCCEEDED', pipeline: PIPELINE }))).toEqual([
        'd3',
        'd2',
        'd1',
      ]);
      expect(idsOf(await runner.list({ limit: 2 }))).toEqual(['running', 'other']);
      expect(idsOf(await runner.list({ workflow: 'conf-double', limit: 2 }))).toEqual(['d3', 'd2']);
      expect(await runner.list({ workflow: 'conf-fail-state' })).toEqual([]);

      const [failed] = await runner.list({ status: 'FAILED' });
      const described = await runner.describe(ids.failed ?? '');
      expect(failed).toMatchObject({
        executionId: ids.failed,
        workflow: 'conf-task-fails',
        pipeline: PIPELINE,
        status: 'FAILED',
        input: { key: 'x' },
        error: 'ValidationError',
        cause: described?.cause,
        startedAt: described?.startedAt,
        stoppedAt: described?.stoppedAt,
      });
      const [d3] = await runner.list({ workflow: 'conf-double', limit: 1 });
      expect(d3).toEqual(await runner.describe(ids.d3 ?? ''));
      const [run] = await runner.list({ status: 'RUNNING' });
      expect(run).toMatchObject({ status: 'RUNNING', input: { key: 'run' } });
      expect(run).not.toHaveProperty('stoppedAt');

      fns.release('run');
      expect((await running.done).status).toBe('SUCCEEDED');
      expect(idsOf(await runner.list({ status: 'RUNNING' }))).toEqual([]);
    });

    it('describe and history of a running execution', async () => {
      const handle = await runner.start('conf-block', { key: 'live' });
      await fns.entered('live');
      const record = await runner.describe(handle.executionId);
      expect(record).toMatchObject({
        executionId: handle.executionId,
        status: 'RUNNING',
        input: { key: 'live' },
      });
      expect(record).not.toHaveProperty('stoppedAt');
      fns.release('live');
      const done = await handle.done;
      expect(done).toMatchObject({ status: 'SUCCEEDED', output: { released: 'live' } });
      expect(shape(await runner.history(handle.executionId))).toEqual([
        'ExecutionStarted',
        'StateEntered:Hold',
        'StateExited:Hold',
        'ExecutionSucceeded',
      ]);
    });

    it('shutdown: refuses new starts (shutting_down) and waits for running executions within the grace', async () => {
      const handle = await runner.start('conf-block', { key: 'grace' });
      await fns.entered('grace');
      const stopping = runner.shutdown(60_000);
      const refused = await runner.start('conf-double', { n: 1 }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(SluiceError);
      expect((refused as SluiceError).code).toBe('shutting_down');
      await expect(runner.start('no-such-workflow', {})).rejects.toBeInstanceOf(NotFoundError);
      fns.release('grace');
      await stopping;
      expect(await handle.done).toMatchObject({ status: 'SUCCEEDED', output: { released: 'grace' } });
      await runner.shutdown(0);
    });

    it('shutdown: returns after the grace with every done settled, even for executions still running', async () => {
      const handle = await runner.start('conf-block', { key: 'stuck' });
      await fns.entered('stuck');
      await runner.shutdown(20);
      const pending = Symbol('pending');
      const settled = await Promise.race([handle.done, Promise.resolve(pending)]);
      expect(settled).not.toBe(pending);
      expect((settled as ExecutionRecord).executionId).toBe(handle.executionId);
    });

    itUnless(
      'abortOnShutdown',
      'shutdown: an execution still running after the grace is aborted and recorded ABORTED',
      async () => {
        const handle = await runner.start('conf-block', { key: 'abort' });
        await fns.entered('abort');
        await runner.shutdown(20);
        const record = await handle.done;
        expectEnded(record, handle, 'conf-block');
        expect(record.status).toBe('ABORTED');
        expect(await runner.describe(handle.executionId)).toMatchObject({ status: 'ABORTED' });
        expect(shape(await runner.history(handle.executionId)).at(-1)).toBe('ExecutionAborted');
      },
    );

    itUnless(
      'maxConcurrency',
      'maxConcurrency: further starts wait for a slot, first come first served; waiting starts reject on shutdown',
      async () => {
        const first = await runner.start('conf-queue', { key: 'q1' });
        await fns.entered('q1');
        const order: string[] = [];
        const second = runner.start('conf-queue', { key: 'q2' }).then((h) => {
          order.push('q2');
          return h;
        });
        const third = runner.start('conf-queue', { key: 'q3' }).then((h) => {
          order.push('q3');
          return h;
        });
        for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
        expect(order).toEqual([]);
        expect(fns.calls['conf-block']).toEqual([{ key: 'q1' }]);

        fns.release('q1');
        expect((await first.done).status).toBe('SUCCEEDED');
        const secondHandle = await second;
        expect(order).toEqual(['q2']);
        await fns.entered('q2');

        const stopping = runner.shutdown(60_000);
        const refused = await third.catch((e: unknown) => e);
        expect(refused).toBeInstanceOf(SluiceError);
        expect((refused as SluiceError).code).toBe('shutting_down');
        fns.release('q2');
        await stopping;
        expect((await secondHandle.done).status).toBe('SUCCEEDED');
        expect(fns.calls['conf-block']).toEqual([{ key: 'q1' }, { key: 'q2' }]);
      },
    );
  });
}
