/**
 * `npm run bench -- orchestration [--json]`
 *
 * 1. State transitions per second: executions of a 40-state workflow (Pass and Task states,
 *    a Choice and a Map over 20 items) through sluice's local workflow runner, which stores every
 *    history event in SQLite as it happens, against the baseline: the same definition run by
 *    aws-local-stepfunctions alone, nothing recorded. Target: sluice >= 1,000 transitions/s.
 * 2. Object written -> execution started, p50/p99, through `sluice up`'s trigger path:
 *    (a) objects written by sluice (the object store's own event), (b) files copied into the lake
 *    by hand (the watcher, which waits for the file to stop changing: 300 ms by default). The
 *    baseline is chokidar's raw notification of the same kind of file, with no stability wait.
 *    Target: p99 < 1 s.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createLocalBackend } from '../src/backends/local/local-backend.ts';
import { LocalWorkflowRunner } from '../src/backends/local/local-workflow-runner.ts';
import { systemClock } from '../src/core/clock.ts';
import type { PipelineContext } from '../src/core/context.ts';
import { noProgress, silentLogger } from '../src/core/logger.ts';
import type { PipelineModule } from '../src/core/pipeline.ts';
import type { AslDefinition } from '../src/core/workflow.ts';
import { runStateMachine } from '../src/engines/asl/asl-engine.ts';
import { LocalStack } from '../src/runtime/local/local-stack.ts';

function flag(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
}

/** A workflow with `width` sequential states, a Choice and a Map over `$.items`. */
function benchDefinition(width: number): AslDefinition {
  const states: Record<string, unknown> = {};
  for (let i = 0; i < width; i++) {
    states[`Step${i}`] =
      i % 2 === 0
        ? { Type: 'Pass', Next: i + 1 < width ? `Step${i + 1}` : 'Route' }
        : {
            Type: 'Task',
            Resource: '${bench-noop}',
            ResultPath: null,
            Next: i + 1 < width ? `Step${i + 1}` : 'Route',
          };
  }
  states.Route = {
    Type: 'Choice',
    Choices: [{ Variable: '$.n', NumericGreaterThanEquals: 0, Next: 'Each' }],
    Default: 'Done',
  };
  states.Each = {
    Type: 'Map',
    ItemsPath: '$.items',
    ItemProcessor: {
      StartAt: 'Item',
      States: { Item: { Type: 'Task', Resource: '${bench-item}', End: true } },
    },
    ResultPath: null,
    Next: 'Done',
  };
  states.Done = { Type: 'Succeed' };
  return { StartAt: 'Step0', States: states as AslDefinition['States'] };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

async function transitions(
  executions: number,
): Promise<{ sluice: number; baseline: number; perExecution: number }> {
  const definition = benchDefinition(36);
  const input = { n: 1, items: Array.from({ length: 20 }, (_, i) => i) };
  // Baseline: the library alone (after one untimed warm-up execution, as for sluice below).
  let baselineTransitions = 0;
  let started = 0;
  for (let i = -1; i < executions; i++) {
    if (i === 0) {
      baselineTransitions = 0;
      started = performance.now();
    }
    const run = await runStateMachine({
      definition,
      input,
      tasks: {
        ...Object.fromEntries(
          Object.keys(definition.States).map((s) => [s, async (x: unknown) => x as never]),
        ),
        Item: async (x) => x,
      },
      onEvent: (e) => {
        if (e.type === 'StateEntered') baselineTransitions++;
      },
    });
    const outcome = await run.outcome;
    if (outcome.status !== 'SUCCEEDED') throw new Error(`baseline execution ${outcome.status}`);
  }
  const baselineSeconds = (performance.now() - started) / 1000;

  // sluice: the local runner, history stored in SQLite.
  const home = await mkdtemp(path.join(os.tmpdir(), 'sluice-bench-orch-'));
  const backend = createLocalBackend(home);
  try {
    const fn = (name: string) => ({
      definition: { name, description: name, timeoutSeconds: 60 },
      handler: async (e: unknown) => e as never,
    });
    const runner = await LocalWorkflowRunner.open({
      kv: backend.kv,
      clock: systemClock,
      workflows: [{ name: 'bench', pipeline: 'bench', description: 'bench', definition }],
      functions: { 'bench-noop': fn('bench-noop'), 'bench-item': fn('bench-item') },
    });
    await (await runner.start('bench', input)).done; // warm-up, untimed
    started = performance.now();
    let sluiceTransitions = 0;
    for (let i = 0; i < executions; i++) {
      const record = await (await runner.start('bench', input)).done;
      if (record.status !== 'SUCCEEDED')
        throw new Error(`sluice execution ${record.status}: ${record.cause}`);
      sluiceTransitions += (await runner.history(record.executionId)).filter(
        (e) => e.type === 'StateEntered',
      ).length;
    }
    const sluiceSeconds = (performance.now() - started) / 1000;
    return {
      sluice: sluiceTransitions / sluiceSeconds,
      baseline: baselineTransitions / baselineSeconds,
      perExecution: sluiceTransitions / executions,
    };
  } finally {
    await backend.close();
    await rm(home, { recursive: true, force: true });
  }
}

async function latency(count: number): Promise<{ store: number[]; watcher: number[]; raw: number[] }> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'sluice-bench-latency-'));
  const backend = createLocalBackend(home);
  const ctx: PipelineContext = {
    backend,
    clock: systemClock,
    logger: silentLogger,
    progress: noProgress,
    workDir: path.join(home, 'tmp'),
    engine: {},
  };
  const module: PipelineModule = {
    definition: {
      name: 'bench',
      description: 'bench',
      source: { name: 'bench', kind: 'files', description: 'bench' },
      steps: [],
      datasets: [],
      functions: [{ name: 'bench-noop', description: 'noop', timeoutSeconds: 60 }],
      workflows: [
        {
          name: 'bench-react',
          pipeline: 'bench',
          description: 'reacts to a landed file',
          definition: {
            StartAt: 'Noop',
            States: { Noop: { Type: 'Task', Resource: '${bench-noop}', End: true } },
          },
        },
      ],
      triggers: [
        {
          name: 'bench-landed',
          pipeline: 'bench',
          description: 'bench',
          layer: 'landing',
          prefix: 'bench/',
          suffix: '.json',
          workflow: 'bench-react',
        },
      ],
    },
    handlers: () => ({ 'bench-noop': async () => null }),
  };
  const written = new Map<string, number>();
  const startedAt = new Map<string, number>();
  const stack = await LocalStack.start({
    ctx,
    lakeRoot: path.join(home, 'lake'),
    modules: [module],
    notifier: { notify: async () => ({ delivered: [], failed: [] }) },
    onExecutionStarted: (_id, _workflow, source) =>
      startedAt.set(source.split(' ').at(-1) ?? '', performance.now()),
  });
  const store: number[] = [];
  const watcher: number[] = [];
  try {
    const waitFor = async (key: string) => {
      for (let i = 0; i < 2000 && !startedAt.has(key); i++) await new Promise((r) => setTimeout(r, 2));
      const t = startedAt.get(key);
      if (t === undefined) throw new Error(`no execution started for ${key}`);
      return t - (written.get(key) ?? t);
    };
    for (let i = 0; i < count; i++) {
      const key = `bench/store/file-${i}.json`;
      written.set(key, performance.now());
      await backend.objectStore.put({ layer: 'landing', key }, JSON.stringify({ i }));
      store.push(await waitFor(key));
    }
    const dir = path.join(home, 'lake/landing/bench/hand');
    await mkdir(dir, { recursive: true });
    for (let i = 0; i < count; i++) {
      const key = `bench/hand/file-${i}.json`;
      await writeFile(path.join(dir, `file-${i}.json`), JSON.stringify({ i }));
      written.set(key, performance.now());
      watcher.push(await waitFor(key));
    }
  } finally {
    await stack.stop(5_000);
    await backend.close();
  }

  // Baseline: chokidar's raw add event for the same kind of write.
  const { watch } = await import('chokidar');
  const rawDir = path.join(home, 'raw');
  await mkdir(rawDir, { recursive: true });
  const raw: number[] = [];
  const seen = new Map<string, number>();
  const w = watch(rawDir, { ignoreInitial: true });
  await new Promise<void>((resolve) => w.once('ready', () => resolve()));
  w.on('add', (file) => seen.set(path.basename(file), performance.now()));
  for (let i = 0; i < count; i++) {
    const name = `file-${i}.json`;
    await writeFile(path.join(rawDir, name), JSON.stringify({ i }));
    const t0 = performance.now();
    for (let j = 0; j < 2000 && !seen.has(name); j++) await new Promise((r) => setTimeout(r, 1));
    raw.push((seen.get(name) ?? Number.NaN) - t0);
  }
  await w.close();
  await rm(home, { recursive: true, force: true });
  return { store, watcher, raw };
}

export async function main(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const executions = flag(argv, '--executions', 30);
  const files = flag(argv, '--files', 40);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  log(`transitions: ${executions} executions of a 36-state workflow with a Choice and a 20-item Map ...`);
  const t = await transitions(executions);
  log(`latency: ${files} objects written by sluice, ${files} files copied in by hand ...`);
  const l = await latency(files);
  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
  const s = sorted(l.store);
  const w = sorted(l.watcher);
  const r = sorted(l.raw);
  const result = {
    transitions_per_execution: t.perExecution,
    sluice_transitions_per_s: t.sluice,
    baseline_transitions_per_s: t.baseline,
    transitions_ratio: t.sluice / t.baseline,
    store_latency_p50_ms: percentile(s, 50),
    store_latency_p99_ms: percentile(s, 99),
    watcher_latency_p50_ms: percentile(w, 50),
    watcher_latency_p99_ms: percentile(w, 99),
    raw_watch_latency_p50_ms: percentile(r, 50),
    raw_watch_latency_p99_ms: percentile(r, 99),
  };
  const f = (n: number) => n.toFixed(1);
  process.stdout.write(
    [
      `state transitions (${f(t.perExecution)} per execution, history stored)`,
      `  sluice   ${Math.round(t.sluice)} transitions/s`,
      `  baseline ${Math.round(t.baseline)} transitions/s (aws-local-stepfunctions alone, nothing recorded)`,
      `  ratio    ${result.transitions_ratio.toFixed(2)}x (target: sluice >= 1,000/s)`,
      'object written -> execution started',
      `  written by sluice      p50 ${f(result.store_latency_p50_ms)} ms  p99 ${f(result.store_latency_p99_ms)} ms`,
      `  copied in by hand      p50 ${f(result.watcher_latency_p50_ms)} ms  p99 ${f(result.watcher_latency_p99_ms)} ms (includes the 300 ms stability wait)`,
      `  baseline: raw chokidar p50 ${f(result.raw_watch_latency_p50_ms)} ms  p99 ${f(result.raw_watch_latency_p99_ms)} ms (no stability wait)`,
      `  ratio (copied p99 / raw p99): ${(result.watcher_latency_p99_ms / result.raw_watch_latency_p99_ms).toFixed(1)}x (target: p99 < 1,000 ms)`,
      '',
    ].join('\n'),
  );
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
}
