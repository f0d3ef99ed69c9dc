import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runGharchive } from '../../pipelines/gharchive/run.ts';
import { runHashtags } from '../../pipelines/hashtags/run.ts';
import { bundledSamples } from '../../pipelines/hashtags/sources.ts';
import { defaultPlayers } from '../../pipelines/nba/reference.ts';
import { runNba } from '../../pipelines/nba/run.ts';
import type { TamperingAlert } from '../../pipelines/nba/tampering.ts';
import { pollSimulated } from '../../pipelines/quotes/poll.ts';
import { transformStep } from '../../pipelines/quotes/transform.ts';
import { tollsPipeline } from '../../pipelines/tolls/definition.ts';
import { tollsHandlers } from '../../pipelines/tolls/functions.ts';
import { landTollFiles } from '../../pipelines/tolls/run.ts';
import { createLocalBackend } from '../../src/backends/local/local-backend.ts';
import { type LocalFunction, LocalWorkflowRunner } from '../../src/backends/local/local-workflow-runner.ts';
import { bundledEnvelopes } from '../../src/cli/commands/run-nba.ts';
import { systemClock } from '../../src/core/clock.ts';
import type { PipelineContext } from '../../src/core/context.ts';
import { noProgress, silentLogger } from '../../src/core/logger.ts';
import type { Backend } from '../../src/core/ports/backend.ts';
import type { JsonValue } from '../../src/core/ports/kv-table.ts';
import type { ExecutionRecord } from '../../src/core/ports/workflow-runner.ts';
import type { AslDefinition, WorkflowDefinition } from '../../src/core/workflow.ts';
import { startQuotesFixture } from '../../src/sources/http/quotes-fixture.ts';
import { serveDirectory } from '../../src/sources/http/static-server.ts';
import { ROOT } from './samples.ts';
import { startTestWarehouse, type TestWarehouse, TOLLS_SAMPLES } from './tolls.ts';

/**
 * A demo-like home for the dashboard's tests where all five pipelines have run, as `sluice demo`
 * runs them (smaller where the demo is slow):
 * - gharchive: the bundled hour through a static server;
 * - hashtags: the bundled captures;
 * - tolls: the bundled 80 transactions landed and loaded by the `tolls-load` workflow through a
 *   local workflow runner (kept open: {@link DashboardHome.runner}) into a PostgreSQL warehouse
 *   started for the home. Its Crawl fails once with a transient error, so the execution shows a
 *   retry; a second, small workflow (`tolls-catch-check`) fails, retries and is caught;
 * - quotes: the fixture server polled once a simulated minute from 2024-01-01 16:00 for 16 hours
 *   (480 polls on each of two days), then both days' transforms;
 * - nba: the first {@link NBA_ENVELOPES} bundled envelopes by event time (tampering job, batch path
 *   and the warehouse).
 */
export interface DashboardHome {
  readonly home: string;
  readonly backend: Backend & { home: string };
  readonly ctx: PipelineContext;
  readonly warehouse: TestWarehouse;
  /** The runner that ran the tolls executions (open until `close`). */
  readonly runner: LocalWorkflowRunner;
  /** The tolls-load execution (SUCCEEDED after one retried Crawl). */
  readonly tollsLoad: ExecutionRecord;
  /** The tolls-catch-check execution (SUCCEEDED through its Catch). */
  readonly caught: ExecutionRecord;
  /** Every alert of the nba replay (all new, so each is a row of nba.tampering_alerts). */
  readonly nbaAlerts: readonly TamperingAlert[];
  /** Days the quotes transform wrote. */
  readonly quotesDays: readonly string[];
  /** Stops the runner, closes the backend, stops the warehouse and removes the home; never throws. */
  close(): Promise<void>;
}

/** Envelopes of the nba replay (the demo's 10,000 take ~4 s; these ~2 s, still with alerts). */
export const NBA_ENVELOPES = 4000;

/** A workflow whose only Task always fails: retried once, then caught into a Pass state. */
const CATCH_WORKFLOW: WorkflowDefinition = {
  name: 'tolls-catch-check',
  pipeline: 'tolls',
  description: 'test only: a failing Task, retried once, then caught',
  definition: {
    StartAt: 'Probe',
    States: {
      Probe: {
        Type: 'Task',
        Resource: '${tolls-probe}',
        Retry: [{ ErrorEquals: ['States.ALL'], IntervalSeconds: 1, MaxAttempts: 1 }],
        Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.failure', Next: 'Recovered' }],
        Next: 'Recovered',
      },
      Recovered: { Type: 'Pass', End: true },
    },
  } as unknown as AslDefinition,
};

export async function createDashboardHome(): Promise<DashboardHome> {
  const warehouse = await startTestWarehouse('dashboard');
  const home = await mkdtemp(path.join(os.tmpdir(), 'sluice-dashboard-'));
  const backend = createLocalBackend(home, { warehouseUrl: warehouse.url });
  const ctx: PipelineContext = {
    backend,
    clock: systemClock,
    logger: silentLogger,
    progress: noProgress,
    workDir: path.join(home, 'tmp'),
    engine: { threads: 2, memoryLimit: '512MB' },
  };
  let runner: LocalWorkflowRunner | undefined;
  const close = async () => {
    await runner?.shutdown(0).catch(() => undefined);
    await backend.close().catch(() => undefined);
    await warehouse.stop();
    await rm(home, { recursive: true, force: true }).catch(() => undefined);
  };
  try {
    const server = await serveDirectory(path.join(ROOT, 'examples/data/gharchive'));
    try {
      await runGharchive(ctx, {
        from: new Date('2015-01-01T00:00:00Z'),
        to: new Date('2015-01-01T00:00:00Z'),
        sourceUrl: server.url,
      });
    } finally {
      await server.close();
    }
    await runHashtags(ctx, { source: { kind: 'replay', files: bundledSamples() } });

    // tolls, as executeTolls (src/cli/commands/run-tolls.ts) with a Crawl that fails once.
    const handlers = tollsHandlers({
      ctx,
      config: { get: () => undefined },
      notifier: { notify: async () => ({ delivered: [], failed: [] }) },
    });
    let crawls = 0;
    const functions: Record<string, LocalFunction> = Object.fromEntries(
      (tollsPipeline.functions ?? []).map((definition) => {
        const handler = handlers[definition.name];
        if (!handler) throw new Error(`no handler for ${definition.name}`);
        return [
          definition.name,
          {
            definition,
            handler:
              definition.name === 'tolls-crawl'
                ? async (event, context) => {
                    if (crawls++ === 0)
                      throw Object.assign(new Error('warehouse connection reset (test)'), {
                        name: 'TransientError',
                      });
                    return handler(event, context);
                  }
                : handler,
          },
        ];
      }),
    );
    functions['tolls-probe'] = {
      definition: { name: 'tolls-probe', description: 'always fails', timeoutSeconds: 10 },
      handler: async () => {
        throw Object.assign(new Error('probe failed (test)'), { name: 'ProbeError' });
      },
    };
    runner = await LocalWorkflowRunner.open({
      kv: backend.kv,
      clock: ctx.clock,
      workflows: [...(tollsPipeline.workflows ?? []), CATCH_WORKFLOW],
      functions,
      logger: ctx.logger,
      retryIntervalMs: 0,
    });
    const { landed, event } = await landTollFiles(ctx, { inputs: [TOLLS_SAMPLES.pythonDict] });
    const load = await runner.start('tolls-load', event as unknown as JsonValue, {
      source: { kind: 'manual', name: 'dashboard test', detail: landed.join(', ') },
    });
    const tollsLoad = await load.done;
    if (tollsLoad.status !== 'SUCCEEDED')
      throw new Error(`tolls-load ${tollsLoad.status}: ${tollsLoad.error}: ${tollsLoad.cause}`);
    const caught = await (await runner.start('tolls-catch-check', { probe: 1 })).done;

    // quotes: 16 simulated hours across midnight (480 polls a day), then both days.
    const quotes = await startQuotesFixture({
      dataFile: path.join(ROOT, 'examples/data/quotes/quotes.json'),
      seed: 42,
    });
    const quotesDays = ['2024-01-01', '2024-01-02'];
    try {
      const polled = await pollSimulated(ctx, {
        apiUrl: quotes.url,
        start: new Date('2024-01-01T16:00:00.000Z'),
        polls: 960,
      });
      if (polled.failed) throw new Error('quotes polls failed');
      for (const date of quotesDays) await transformStep(ctx, { date, leaseWaitMs: 60_000 });
    } finally {
      await quotes.close();
    }

    // nba: the tampering job and the batch path (into the same warehouse).
    const players = defaultPlayers().players;
    const input = await bundledEnvelopes(players);
    const nba = await runNba(ctx, {
      envelopes: input.envelopes.slice(0, NBA_ENVELOPES),
      rejected: input.rejected,
      source: input.file,
      players,
      notifier: { notify: async () => ({ delivered: [], failed: [] }) },
    });
    return {
      home,
      backend,
      ctx,
      warehouse,
      runner,
      tollsLoad,
      caught,
      nbaAlerts: nba.tampering.alerts,
      quotesDays,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
