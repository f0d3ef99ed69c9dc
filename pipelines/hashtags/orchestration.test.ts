import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLocalBackend } from '../../src/backends/local/local-backend.ts';
import { type LocalFunction, LocalWorkflowRunner } from '../../src/backends/local/local-workflow-runner.ts';
import type { Alert } from '../../src/core/alert.ts';
import { systemClock } from '../../src/core/clock.ts';
import { ConfigStore } from '../../src/core/config.ts';
import type { PipelineContext } from '../../src/core/context.ts';
import { LeaseHeldError, SourceUnavailableError } from '../../src/core/errors.ts';
import { noProgress, silentLogger } from '../../src/core/logger.ts';
import type { ConfigReader } from '../../src/core/pipeline.ts';
import type { JsonValue } from '../../src/core/ports/kv-table.ts';
import type { Notifier } from '../../src/core/ports/notifier.ts';
import type { ExecutionEvent, ExecutionRecord } from '../../src/core/ports/workflow-runner.ts';
import { RunLog } from '../../src/core/run.ts';
import { LocalStack } from '../../src/runtime/local/local-stack.ts';
import { ManualClock } from '../../test/helpers/manual-clock.ts';
import { HASHTAGS_SAMPLES } from '../../test/helpers/samples.ts';
import { pipelineModules } from '../index.ts';
import { DASHBOARD_TABLE } from './analytical.ts';
import { DEFAULT_STREAM, hashtagsPipeline, PIPELINE } from './definition.ts';
import { PRODUCER_TABLE } from './producer.ts';

const KINESIS_LANDING = 'hashtags-kinesis-landing';
const LANDING_ANALYTICAL = 'hashtags-landing-analytical';
const TIMELINE = HASHTAGS_SAMPLES.v1Timeline;

interface V1Status {
  retweeted_status?: V1Status;
  id_str: string;
  lang?: string;
  retweet_count: number;
  user: { screen_name: string };
  entities?: { hashtags?: { text: string }[] };
  extended_tweet?: { entities?: { hashtags?: { text: string }[] } };
}

/**
 * What the pipeline must make of the timeline sample, derived here from the raw JSON and the rules
 * of REFERENCE.md section 1 (not through sluice's filter or enrichment): the retweets of English
 * tweets with retweet_count > 99 and a hashtag (PROVENANCE.md: 15 of 63), and their staging rows
 * (one per distinct hashtag cleaned to [A-Za-z0-9]).
 */
function expectedFromTimeline() {
  const statuses = JSON.parse(readFileSync(TIMELINE, 'utf8')) as V1Status[];
  const kept: { tweetId: string; user: string; hashtags: string[] }[] = [];
  for (const status of statuses) {
    const original = status.retweeted_status;
    if (original?.lang !== 'en' || !(original.retweet_count > 99)) continue;
    const entities = original.extended_tweet?.entities ?? original.entities;
    const hashtags = (entities?.hashtags ?? []).map((h) => h.text);
    if (hashtags.length === 0) continue;
    const cleaned = [...new Set(hashtags.map((h) => h.replace(/[^A-Za-z0-9]/g, '')).filter(Boolean))];
    kept.push({ tweetId: original.id_str, user: original.user.screen_name, hashtags: cleaned });
  }
  const rows = kept.flatMap((k) => k.hashtags.map((hashtag) => `${k.tweetId} ${hashtag}`)).sort();
  const mentions: Record<string, number> = {};
  for (const k of kept) for (const h of k.hashtags) mentions[h] = (mentions[h] ?? 0) + 1;
  const retweetsByUser: Record<string, number> = {};
  for (const k of kept) retweetsByUser[k.user] = (retweetsByUser[k.user] ?? 0) + 1;
  return { statuses: statuses.length, kept, rows, mentions, retweetsByUser };
}

const expected = expectedFromTimeline();

/** Waits (in real time) until `check` returns a value; fails the test after `timeoutMs`. */
async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Names of the top-level states of both workflows (not those inside a Parallel branch). */
const TOP_LEVEL = new Set(
  (hashtagsPipeline.workflows ?? []).flatMap((w) => Object.keys(w.definition.States)),
);

/**
 * `StateEntered` states of the top level, in order. (aws-local-stepfunctions forwards the events
 * of a Parallel branch's states without naming the branch; only `ParallelBranch*` events do.)
 */
function topLevelStates(history: readonly ExecutionEvent[]): string[] {
  return history
    .filter((e) => e.type === 'StateEntered' && TOP_LEVEL.has(e.state ?? ''))
    .map((e) => e.state ?? '');
}

/** The events of one state, in order. */
function eventsOf(history: readonly ExecutionEvent[], state: string): ExecutionEvent[] {
  return history.filter((e) => e.state === state);
}

/** CreateStream's result (`$.stream`) in an execution's history. */
function streamOf(history: readonly ExecutionEvent[]): { name: string; run_id: string; created: boolean } {
  const exited = history.find((e) => e.type === 'StateExited' && e.state === 'CreateStream');
  if (!exited) throw new Error('CreateStream did not finish');
  return (exited.output as { stream: { name: string; run_id: string; created: boolean } }).stream;
}

/**
 * Wraps a real handler: `call` is 1 for the first invocation; `real()` runs the real handler with
 * the same event and context.
 */
type Injection = (call: number, event: JsonValue, real: () => Promise<JsonValue>) => Promise<JsonValue>;

/** One invocation of a function, kept so that a test can wait for it (and none outlives the test). */
interface Invocation {
  readonly event: JsonValue;
  readonly result: Promise<JsonValue>;
}

describe('hashtags state machines under the local workflow runner (real handlers)', () => {
  let home: string;
  let clock: ManualClock;
  let ctx: PipelineContext;
  let alerts: Alert[];
  let runners: LocalWorkflowRunner[];
  let invocations: Record<string, Invocation[]>;
  // No grace for a failed producer's retries: the retry intervals are 0 here.
  const settings: Record<string, JsonValue> = { source: 'replay', producer_retry_grace_seconds: 0 };
  const config: ConfigReader = {
    get: (key) => (key in settings ? settings[key] : hashtagsPipeline.config?.[key]?.default),
  };
  const notifier: Notifier = {
    notify: async (alert) => {
      alerts.push(alert);
      return { delivered: ['memory'], failed: [] };
    },
  };

  beforeEach(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'sluice-hashtags-wf-'));
    // Real "now" (to the minute): landing objects carry real mtimes, and ProcessStaging selects
    // those modified within staging_lookback_hours of the clock.
    clock = new ManualClock(new Date(Math.floor(Date.now() / 60_000) * 60_000));
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
    runners = [];
    invocations = {};
  });

  afterEach(async () => {
    // Handlers the state machine let go of (a Parallel that failed) must end before the home goes.
    await Promise.allSettled(Object.values(invocations).flatMap((list) => list.map((i) => i.result)));
    for (const runner of runners) await runner.shutdown(0);
    await ctx.backend.close();
    await rm(home, { recursive: true, force: true });
  });

  /** A runner over the real hashtags handlers, some wrapped by `inject`; no Retry or Wait delays. */
  async function open(inject: Record<string, Injection> = {}): Promise<LocalWorkflowRunner> {
    const handlers = pipelineModules.hashtags!.handlers({ ctx, config, notifier });
    const functions: Record<string, LocalFunction> = {};
    for (const definition of hashtagsPipeline.functions ?? []) {
      const real = handlers[definition.name]!;
      const injection = inject[definition.name];
      functions[definition.name] = {
        definition,
        handler: (event, context) => {
          const list = invocations[definition.name] ?? [];
          invocations[definition.name] = list;
          const result = injection
            ? injection(list.length + 1, event, () => real(event, context))
            : real(event, context);
          list.push({ event, result });
          return result;
        },
      };
    }
    const runner = await LocalWorkflowRunner.open({
      kv: ctx.backend.kv,
      clock,
      workflows: hashtagsPipeline.workflows ?? [],
      functions,
      notifier,
      retryIntervalMs: 0,
      waitMs: 0,
    });
    runners.push(runner);
    return runner;
  }

  async function execute(runner: LocalWorkflowRunner, workflow: string, input: JsonValue) {
    const record = await (await runner.start(workflow, input)).done;
    return { record, history: await runner.history(record.executionId) };
  }

  async function query<T = Record<string, unknown>>(sql: string): Promise<T[]> {
    const engine = await ctx.backend.openQueryEngine();
    try {
      return (await engine.query(sql)).rows as T[];
    } finally {
      await engine.close();
    }
  }

  async function landingRows(): Promise<string[][]> {
    const rows: string[][] = [];
    for await (const info of ctx.backend.objectStore.list('landing', `${PIPELINE}/`)) {
      const text = Buffer.from(await ctx.backend.objectStore.getBytes(info)).toString('utf8');
      rows.push(...(parse(text) as string[][]));
    }
    return rows;
  }

  /** Rows of data_update_log (of one run), staging before hashtag_data. */
  async function updateLog(
    runId?: string,
  ): Promise<{ table_name: string; records_inserted: number; run_id: string }[]> {
    if ((await ctx.backend.catalog.listPartitions(PIPELINE, 'data_update_log')).length === 0) return [];
    const rows = await query<{ table_name: string; records_inserted: bigint; run_id: string }>(
      'SELECT table_name, records_inserted, run_id FROM hashtags.data_update_log ORDER BY time_stamp, run_id, table_name DESC',
    );
    return rows
      .map((r) => ({ ...r, records_inserted: Number(r.records_inserted) }))
      .filter((r) => runId === undefined || r.run_id === runId);
  }

  async function analyticalRows(): Promise<number> {
    return Number((await query<{ n: bigint }>('SELECT count(*) AS n FROM hashtags.hashtag_data'))[0]?.n);
  }

  async function runsOf(runId: string) {
    const runs = await (await RunLog.open(ctx.backend.kv, clock)).list({ pipeline: PIPELINE, limit: 1000 });
    return runs.filter((r) => r.runId === runId);
  }

  async function dashboard() {
    const table = await ctx.backend.kv.table(DASHBOARD_TABLE, { hashKey: { name: 'pipeline', type: 'S' } });
    return table.get({ pipeline: PIPELINE });
  }

  it('KinesisLanding: CreateStream -> Parallel(Consume | Wait -> Produce) -> DeleteStream lands the 15 kept tweets and deletes the drained stream', async () => {
    const runner = await open();
    const { record, history } = await execute(runner, KINESIS_LANDING, { input_files: [TIMELINE] });

    expect(record.status).toBe('SUCCEEDED');
    expect(topLevelStates(history)).toEqual(['CreateStream', 'ConsumeAndProduce', 'DeleteStream']);
    const branchStates = history.filter((e) => e.type === 'StateEntered' && !TOP_LEVEL.has(e.state ?? ''));
    expect(branchStates.map((e) => e.state).sort()).toEqual(['Consume', 'Produce', 'WaitForConsumer']);
    expect(
      history.filter((e) => e.type.startsWith('ParallelBranch')).map((e) => `${e.type}:${e.parent?.state}`),
    ).toEqual([
      'ParallelBranchStarted:ConsumeAndProduce',
      'ParallelBranchStarted:ConsumeAndProduce',
      'ParallelBranchSucceeded:ConsumeAndProduce',
      'ParallelBranchSucceeded:ConsumeAndProduce',
    ]);

    // The Parallel hands both branches the whole state input: the execution input (input_files)
    // plus CreateStream's result at $.stream, which is what consumer and producer read.
    const output = record.output as {
      stream: { name: string; created: boolean; shards: number; run_id: string };
      results: [
        { counts: Record<string, number>; landed: string[]; stopped_because: string },
        { counts: Record<string, number>; files: { file: string; status: string }[] },
      ];
      deleted: { stream: string; deleted: boolean; unconsumed: number };
    };
    expect(output.stream).toMatchObject({ name: DEFAULT_STREAM, created: true, shards: 1 });
    const producerEvent = invocations['hashtags-producer']![0]!.event;
    expect(producerEvent).toEqual({ input_files: [TIMELINE], stream: output.stream });
    expect(invocations['hashtags-consumer']![0]!.event).toEqual(producerEvent);

    const [consumed, produced] = output.results;
    expect(produced.files).toEqual([{ file: TIMELINE, status: 'replayed' }]);
    expect(produced.counts).toMatchObject({
      read: expected.statuses,
      loaded: expected.kept.length,
      quarantined: 0,
      filtered: expected.statuses - expected.kept.length,
    });
    expect(expected.kept).toHaveLength(15); // PROVENANCE.md
    expect(consumed).toMatchObject({
      counts: { read: 15, loaded: 15, duplicates: 0, quarantined: 0 },
      stopped_because: 'drained',
    });

    // Landing: one CSV row per kept tweet, record_id unique, in the documented column order.
    const rows = await landingRows();
    expect(rows).toHaveLength(15);
    expect(rows.every((r) => r.length === 8)).toBe(true);
    expect(new Set(rows.map((r) => r[0])).size).toBe(15);
    expect(rows.map((r) => r[3]).sort()).toEqual(expected.kept.map((k) => k.tweetId).sort());
    expect(rows.map((r) => r[4]).sort()).toEqual(expected.kept.map((k) => k.user).sort());
    const landedKeys: string[] = [];
    for await (const info of ctx.backend.objectStore.list('landing', `${PIPELINE}/`))
      landedKeys.push(info.key);
    expect(landedKeys.sort()).toEqual([...consumed.landed].sort());

    // Drained, so deleted.
    expect(output.deleted).toEqual({ stream: DEFAULT_STREAM, deleted: true, unconsumed: 0 });
    expect(await ctx.backend.stream.listStreams()).not.toContain(DEFAULT_STREAM);

    // The run log has both stages of the run, with counts that reconcile.
    const runs = await runsOf(output.stream.run_id);
    expect(runs.map((r) => `${r.step}:${r.status}`).sort()).toEqual(['land:succeeded', 'produce:succeeded']);
    const produce = runs.find((r) => r.step === 'produce')!;
    const land = runs.find((r) => r.step === 'land')!;
    expect(produce.counts).toEqual({ read: 63, loaded: 15, duplicates: 0, quarantined: 0, filtered: 48 });
    expect(land.counts).toEqual({ read: 15, loaded: 15, duplicates: 0, quarantined: 0 });
    expect(land.details).toMatchObject({ landed: consumed.landed, stopped_because: 'drained' });
    expect(alerts).toEqual([]);
  });

  it('LandingAnalytical: staging -> log -> hashtag_data -> log -> dashboard; a rerun merges 0 and logs 0; nothing new ends at NothingToLoad', async () => {
    const runner = await open();
    expect((await execute(runner, KINESIS_LANDING, { input_files: [TIMELINE] })).record.status).toBe(
      'SUCCEEDED',
    );

    const first = await execute(runner, LANDING_ANALYTICAL, {});
    expect(first.record.status).toBe('SUCCEEDED');
    expect(topLevelStates(first.history)).toEqual([
      'DeleteOldStaging',
      'ProcessStaging',
      'StagingHasRows',
      'LogStaging',
      'LoadAnalytical',
      'LogAnalytical',
      'RefreshDashboard',
    ]);
    const out = first.record.output as {
      staging: { run_id: string; rows: number; objects: number; counts: Record<string, number> };
      analytical: { read: number; loaded: number; duplicates: number };
      dashboard: { refreshed_at: string; rows: number };
    };
    expect(expected.rows).toHaveLength(18);
    expect(out.staging).toMatchObject({
      rows: 18,
      objects: 1,
      counts: { read: 15, loaded: 15, duplicates: 0, quarantined: 0 },
    });
    expect(out.analytical).toMatchObject({ read: 18, loaded: 18, duplicates: 0 });

    const data = await query<{ hash_id: string; tweet_id: string; hashtag: string }>(
      'SELECT hash_id, tweet_id, hashtag FROM hashtags.hashtag_data',
    );
    expect(data.map((r) => `${r.tweet_id} ${r.hashtag}`).sort()).toEqual(expected.rows);
    expect(new Set(data.map((r) => r.hash_id)).size).toBe(18);
    const runId = out.staging.run_id;
    expect(await updateLog()).toEqual([
      { table_name: 'staging', records_inserted: 18, run_id: runId },
      { table_name: 'hashtag_data', records_inserted: 18, run_id: runId },
    ]);
    expect(
      (await runsOf(runId)).map((r) => `${r.step}:${r.status}:${r.counts?.read}:${r.counts?.loaded}`).sort(),
    ).toEqual(['analytical:succeeded:18:18', 'staging:succeeded:15:15']);

    // The dashboard snapshot holds the three named queries' rows over hashtag_data.
    const snapshot = (await dashboard()) as {
      refreshed_at: string;
      queries: {
        top_hashtags: { hashtag: string; mentions: number }[];
        hashtag_sentiment: { hashtag: string; mentions: number; mean_polarity: number }[];
        top_users: { user_name: string; retweets_captured: number }[];
      };
    };
    expect(snapshot.refreshed_at).toBe(out.dashboard.refreshed_at);
    expect(Object.fromEntries(snapshot.queries.top_hashtags.map((r) => [r.hashtag, r.mentions]))).toEqual(
      expected.mentions,
    );
    expect(snapshot.queries.top_hashtags[0]).toMatchObject({ hashtag: 'Turkey', mentions: 3 });
    expect(
      Object.fromEntries(snapshot.queries.hashtag_sentiment.map((r) => [r.hashtag, r.mentions])),
    ).toEqual(expected.mentions);
    expect(snapshot.queries.hashtag_sentiment.every((r) => Math.abs(r.mean_polarity) <= 1)).toBe(true);
    expect(
      Object.fromEntries(snapshot.queries.top_users.map((r) => [r.user_name, r.retweets_captured])),
    ).toEqual(expected.retweetsByUser);
    expect(out.dashboard.rows).toBe(
      snapshot.queries.top_hashtags.length +
        snapshot.queries.hashtag_sentiment.length +
        snapshot.queries.top_users.length,
    );

    // Same landing objects again: staging has the same 18 rows, the merge inserts none, and the
    // ASL logs both loads anyway (staging 18, hashtag_data 0).
    const second = await execute(runner, LANDING_ANALYTICAL, {});
    expect(second.record.status).toBe('SUCCEEDED');
    const out2 = second.record.output as typeof out;
    expect(out2.staging.rows).toBe(18);
    expect(out2.analytical).toMatchObject({ read: 18, loaded: 0, duplicates: 18 });
    expect(await analyticalRows()).toBe(18);
    expect(await updateLog()).toHaveLength(4);
    expect(await updateLog(out2.staging.run_id)).toEqual([
      { table_name: 'staging', records_inserted: 18, run_id: out2.staging.run_id },
      { table_name: 'hashtag_data', records_inserted: 0, run_id: out2.staging.run_id },
    ]);

    // Three hours later nothing landed within staging_lookback_hours (2): old staging is deleted,
    // the Choice goes to NothingToLoad, and analytical, log and dashboard stay as they were.
    const refreshed = (await dashboard())?.refreshed_at;
    await clock.advance(3 * 3_600_000);
    const third = await execute(runner, LANDING_ANALYTICAL, {});
    expect(third.record.status).toBe('SUCCEEDED');
    expect(topLevelStates(third.history)).toEqual([
      'DeleteOldStaging',
      'ProcessStaging',
      'StagingHasRows',
      'NothingToLoad',
    ]);
    expect(third.record.output).toMatchObject({ staging: { rows: 0, objects: 0 } });
    expect(await ctx.backend.catalog.listPartitions(PIPELINE, 'staging')).toEqual([]);
    expect(await analyticalRows()).toBe(18);
    expect(await updateLog()).toHaveLength(4);
    expect((await dashboard())?.refreshed_at).toBe(refreshed);
    expect(alerts).toEqual([]);
  });

  it('LandingAnalytical with no landing object at all ends at NothingToLoad and writes nothing', async () => {
    const runner = await open();
    const { record, history } = await execute(runner, LANDING_ANALYTICAL, {});
    expect(record.status).toBe('SUCCEEDED');
    expect(topLevelStates(history).at(-1)).toBe('NothingToLoad');
    expect(invocations['hashtags-log-update']).toBeUndefined();
    expect(invocations['hashtags-load-analytical']).toBeUndefined();
    expect(await ctx.backend.catalog.listPartitions(PIPELINE, 'hashtag_data')).toEqual([]);
    expect(await ctx.backend.catalog.listPartitions(PIPELINE, 'data_update_log')).toEqual([]);
    expect(await dashboard()).toBeUndefined();
  });

  it('ProcessStaging failing twice is retried (States.ALL, attempts 1 and 2) and the execution succeeds', async () => {
    const busy = (call: number) => new LeaseHeldError(`dataset hashtags.staging is busy (attempt ${call})`);
    const runner = await open({
      'hashtags-process-staging': async (call, _event, real) => {
        if (call <= 2) throw busy(call);
        return real();
      },
    });
    await execute(runner, KINESIS_LANDING, { input_files: [TIMELINE] });
    const { record, history } = await execute(runner, LANDING_ANALYTICAL, {});

    expect(record.status).toBe('SUCCEEDED');
    expect(invocations['hashtags-process-staging']).toHaveLength(3);
    expect(eventsOf(history, 'ProcessStaging').map((e) => e.type)).toEqual([
      'StateEntered',
      'StateFailed',
      'StateRetried',
      'StateFailed',
      'StateRetried',
      'StateExited',
    ]);
    expect(
      eventsOf(history, 'ProcessStaging')
        .filter((e) => e.type === 'StateFailed')
        .map((e) => [e.error, e.cause]),
    ).toEqual([
      ['LeaseHeldError', 'dataset hashtags.staging is busy (attempt 1)'],
      ['LeaseHeldError', 'dataset hashtags.staging is busy (attempt 2)'],
    ]);
    expect(history.filter((e) => e.type === 'StateRetried').map((e) => e.retry)).toEqual([
      { errorEquals: ['States.ALL'], attempt: 1 },
      { errorEquals: ['States.ALL'], attempt: 2 },
    ]);
    expect(await analyticalRows()).toBe(18);
    expect(alerts).toEqual([]);
  });

  it('ProcessStaging failing 4 times fails the execution after 3 retries and raises an alert; analytical is untouched', async () => {
    const runner = await open({
      'hashtags-process-staging': async (call) => {
        throw new LeaseHeldError(`dataset hashtags.staging is busy (attempt ${call})`);
      },
    });
    await execute(runner, KINESIS_LANDING, { input_files: [TIMELINE] });
    const { record, history } = await execute(runner, LANDING_ANALYTICAL, {});

    expect(invocations['hashtags-process-staging']).toHaveLength(4);
    expect(history.filter((e) => e.type === 'StateRetried').map((e) => e.retry?.attempt)).toEqual([1, 2, 3]);
    expect(record).toMatchObject({
      status: 'FAILED',
      failedState: 'ProcessStaging',
      error: 'LeaseHeldError',
      cause: 'dataset hashtags.staging is busy (attempt 4)',
    });
    expect(history.at(-1)?.type).toBe('ExecutionFailed');
    expect(alerts).toEqual([
      expect.objectContaining({
        severity: 'error',
        pipeline: 'hashtags',
        workflow: LANDING_ANALYTICAL,
        executionId: record.executionId,
        state: 'ProcessStaging',
        error: 'LeaseHeldError',
        cause: 'dataset hashtags.staging is busy (attempt 4)',
      }),
    ]);
    expect(alerts[0]?.title).toBe(`${LANDING_ANALYTICAL} failed in state ProcessStaging`);
    expect(await ctx.backend.catalog.listPartitions(PIPELINE, 'hashtag_data')).toEqual([]);
    expect(await updateLog()).toEqual([]);
  });

  it('KinesisLanding: a producer that fails for good -> Catch -> DeleteStreamAfterFailure -> LandingFailed; the consumer stops; the drained stream is deleted', async () => {
    const missing = path.join(home, 'no-such-capture.json');
    const runner = await open({
      // In Step Functions the producer's retries come 5, 10, 20 s apart, while the consumer sees
      // the producer's run marked `failed` within one 250 ms poll and stops. With the test's
      // zero retry intervals, the first failure is held back until the consumer has stopped, to
      // keep that order.
      'hashtags-producer': async (call, _event, real) => {
        try {
          return await real();
        } catch (error) {
          if (call === 1)
            await eventually(async () => invocations['hashtags-consumer']?.[0]).then((c) => c.result);
          throw error;
        }
      },
    });
    const { record, history } = await execute(runner, KINESIS_LANDING, { input_files: [missing] });

    expect(invocations['hashtags-producer']).toHaveLength(4);
    expect(eventsOf(history, 'Produce').filter((e) => e.type === 'StateRetried')).toHaveLength(3);
    expect(topLevelStates(history)).toEqual([
      'CreateStream',
      'ConsumeAndProduce',
      'DeleteStreamAfterFailure',
      'LandingFailed',
    ]);
    expect(history.find((e) => e.type === 'StateCaught')).toMatchObject({ state: 'ConsumeAndProduce' });
    const producerFailure = eventsOf(history, 'Produce').findLast((e) => e.type === 'StateFailed')!;
    expect(producerFailure.error).toBe('UsageError');
    expect(producerFailure.cause).toContain('no-such-capture.json');
    expect(record).toMatchObject({
      status: 'FAILED',
      error: producerFailure.error,
      cause: producerFailure.cause,
    });
    // The Fail state is what fails the execution; the cause names the stage that failed.
    expect(record.failedState).toBe('LandingFailed');
    expect(record.cause).toMatch(/^hashtags\/produce \(hashtags-tweets\) in run \S+ failed: cannot read/);

    // The consumer stopped on its own, drained, once the producer's run said `failed`.
    const consumed = (await invocations['hashtags-consumer']![0]!.result) as Record<string, JsonValue>;
    expect(consumed).toMatchObject({ counts: { read: 0, loaded: 0 }, stopped_because: 'drained' });
    const runId = streamOf(history).run_id;
    const producers = await ctx.backend.kv.table(PRODUCER_TABLE, { hashKey: { name: 'run_id', type: 'S' } });
    expect(await producers.get({ run_id: runId })).toMatchObject({ status: 'failed' });
    const runs = await runsOf(runId);
    expect(runs.filter((r) => r.step === 'land').map((r) => r.status)).toEqual(['succeeded']);
    expect(new Set(runs.filter((r) => r.step === 'produce').map((r) => r.status))).toEqual(
      new Set(['failed']),
    );

    // Nothing was put, so the stream was drained and is deleted.
    expect(eventsOf(history, 'DeleteStreamAfterFailure').at(-1)?.output).toMatchObject({
      deleted: { deleted: true, unconsumed: 0 },
      error: { Error: 'UsageError' },
    });
    expect(await ctx.backend.stream.listStreams()).not.toContain(DEFAULT_STREAM);
    expect(alerts).toEqual([
      expect.objectContaining({
        severity: 'error',
        pipeline: 'hashtags',
        workflow: KINESIS_LANDING,
        executionId: record.executionId,
        state: 'LandingFailed',
        error: 'UsageError',
        cause: producerFailure.cause,
      }),
    ]);
  });

  it('KinesisLanding: a consumer that fails for good after the producer finished keeps the stream with the unread records; the next run lands them', async () => {
    const failing = await open({
      'hashtags-consumer': async () => {
        await (await eventually(async () => invocations['hashtags-producer']?.[0])).result;
        throw new LeaseHeldError('stream-consumer:hashtags-tweets is held by another consumer');
      },
    });
    const { record, history } = await execute(failing, KINESIS_LANDING, { input_files: [TIMELINE] });

    expect(record).toMatchObject({
      status: 'FAILED',
      error: 'LeaseHeldError',
      cause: 'stream-consumer:hashtags-tweets is held by another consumer',
    });
    expect(invocations['hashtags-consumer']).toHaveLength(4);
    expect(topLevelStates(history)).toEqual([
      'CreateStream',
      'ConsumeAndProduce',
      'DeleteStreamAfterFailure',
      'LandingFailed',
    ]);
    // The producer had put its 15 records: nobody read them, so the stream is kept.
    expect(eventsOf(history, 'DeleteStreamAfterFailure').at(-1)?.output).toMatchObject({
      deleted: { stream: DEFAULT_STREAM, deleted: false, unconsumed: 15 },
    });
    expect(await ctx.backend.stream.listStreams()).toContain(DEFAULT_STREAM);
    expect(await landingRows()).toEqual([]);
    expect(alerts).toEqual([
      expect.objectContaining({ pipeline: 'hashtags', workflow: KINESIS_LANDING, error: 'LeaseHeldError' }),
    ]);

    // The next run reuses the stream; its producer skips the file already replayed, and its
    // consumer lands the records the failed run left on the stream, then deletes it.
    const healthy = await open();
    const next = await execute(healthy, KINESIS_LANDING, { input_files: [TIMELINE] });
    expect(next.record.status).toBe('SUCCEEDED');
    expect(next.record.output).toMatchObject({
      stream: { created: false },
      results: [
        { counts: { read: 15, loaded: 15 }, stopped_because: 'drained' },
        { counts: { read: 0, loaded: 0 }, files: [{ file: TIMELINE, status: 'skipped' }] },
      ],
      deleted: { deleted: true, unconsumed: 0 },
    });
    const rows = await landingRows();
    expect(rows.map((r) => r[3]).sort()).toEqual(expected.kept.map((k) => k.tweetId).sort());
    expect(await ctx.backend.stream.listStreams()).not.toContain(DEFAULT_STREAM);
  });

  it('KinesisLanding: when the consumer fails while the producer runs, the Parallel fails but the running producer is not stopped', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const runner = await open({
      'hashtags-producer': async (_call, _event, real) => {
        await gate;
        return real();
      },
      'hashtags-consumer': async () => {
        await eventually(async () => invocations['hashtags-producer']?.[0]);
        throw new LeaseHeldError('stream-consumer:hashtags-tweets is held by another consumer');
      },
    });
    const { record, history } = await execute(runner, KINESIS_LANDING, { input_files: [TIMELINE] });
    expect(record).toMatchObject({ status: 'FAILED', error: 'LeaseHeldError' });
    expect(eventsOf(history, 'DeleteStreamAfterFailure').at(-1)?.output).toMatchObject({
      deleted: { deleted: true, unconsumed: 0 },
    });

    // The producer's invocation outlives the execution (Step Functions cannot stop a running
    // Lambda either): released now, it finds the stream deleted and fails.
    const producer = invocations['hashtags-producer']![0]!;
    let settled = false;
    void producer.result.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    release();
    await expect(producer.result).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    const runId = streamOf(history).run_id;
    const producers = await ctx.backend.kv.table(PRODUCER_TABLE, { hashKey: { name: 'run_id', type: 'S' } });
    expect(await producers.get({ run_id: runId })).toMatchObject({ status: 'failed' });
    // ...and its branch, aborted when the Parallel failed, does not retry it.
    await new Promise((resolve) => setImmediate(resolve));
    expect(invocations['hashtags-producer']).toHaveLength(1);
    expect((await runner.history(record.executionId)).at(-1)?.type).toBe('ExecutionFailed');

    // Its file was not recorded as replayed, so the next run replays and lands it.
    const next = await execute(await open(), KINESIS_LANDING, { input_files: [TIMELINE] });
    expect(next.record.output).toMatchObject({
      results: [
        { counts: { read: 15, loaded: 15 } },
        { counts: { loaded: 15 }, files: [{ file: TIMELINE, status: 'replayed' }] },
      ],
      deleted: { deleted: true },
    });
  });

  it('KinesisLanding: a producer failing after the Parallel was caught is not retried for the dead branch', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const runner = await open({
      'hashtags-producer': async (call, _event, real) => {
        if (call > 1) return real();
        await gate;
        throw new SourceUnavailableError('the filtered stream disconnected');
      },
      'hashtags-consumer': async () => {
        await eventually(async () => invocations['hashtags-producer']?.[0]);
        throw new LeaseHeldError('stream-consumer:hashtags-tweets is held by another consumer');
      },
      // The Parallel has failed and been caught; its producer, still running, fails now.
      'hashtags-delete-stream': async (_call, _event, real) => {
        await new Promise((resolve) => setImmediate(resolve));
        release();
        await invocations['hashtags-producer']![0]!.result.catch(() => {});
        await new Promise((resolve) => setImmediate(resolve));
        return real();
      },
    });
    const { record, history } = await execute(runner, KINESIS_LANDING, { input_files: [TIMELINE] });
    expect(record).toMatchObject({ status: 'FAILED', error: 'LeaseHeldError' });
    // Without the guard in asl-engine.ts the library retried the Produce task of the aborted
    // branch: a second producer put 15 records nobody would read, and the stream was kept.
    expect(invocations['hashtags-producer']).toHaveLength(1);
    expect(eventsOf(history, 'DeleteStreamAfterFailure').at(-1)?.output).toMatchObject({
      deleted: { deleted: true, unconsumed: 0 },
    });
    expect(await ctx.backend.stream.listStreams()).not.toContain(DEFAULT_STREAM);
  });
});

describe('hashtags ASL timing: Retry intervals and the producer Wait (fake timers, stub functions)', () => {
  let home: string;
  let backend: ReturnType<typeof createLocalBackend>;
  let alerts: Alert[];
  const notifier: Notifier = {
    notify: async (alert) => {
      alerts.push(alert);
      return { delivered: ['memory'], failed: [] };
    },
  };

  beforeEach(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'sluice-hashtags-timing-'));
    backend = createLocalBackend(home);
    alerts = [];
  });
  afterEach(async () => {
    vi.useRealTimers();
    await backend.close();
    await rm(home, { recursive: true, force: true });
  });

  /** Every hashtags function as a stub with a plausible result; ProcessStaging fails `failures` times. */
  function stubs(failures: number): Record<string, LocalFunction> {
    let calls = 0;
    const results: Record<string, JsonValue> = {
      'hashtags-create-stream': { name: DEFAULT_STREAM, shards: 1, created: true, run_id: 'run' },
      'hashtags-delete-staging': { objects: 0, partitions: 0 },
      'hashtags-process-staging': { run_id: 'run', rows: 18, objects: 1 },
      'hashtags-load-analytical': { read: 18, loaded: 18, duplicates: 0 },
    };
    return Object.fromEntries(
      (hashtagsPipeline.functions ?? []).map((definition) => [
        definition.name,
        {
          definition,
          handler: async () => {
            if (definition.name === 'hashtags-process-staging' && ++calls <= failures) {
              throw new LeaseHeldError(`dataset hashtags.staging is busy (attempt ${calls})`);
            }
            return results[definition.name] ?? {};
          },
        },
      ]),
    );
  }

  async function run(workflow: string, failures: number) {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    // The definitions' own intervals and waits: no retryIntervalMs / waitMs override.
    const runner = await LocalWorkflowRunner.open({
      kv: backend.kv,
      clock: systemClock,
      workflows: hashtagsPipeline.workflows ?? [],
      functions: stubs(failures),
      notifier,
    });
    const { done } = await runner.start(workflow, {});
    await vi.runAllTimersAsync();
    const record = await done;
    return { record, history: await runner.history(record.executionId) };
  }

  /** Milliseconds from each `StateFailed` of `state` to the `StateRetried` that follows it. */
  function retryDelays(history: readonly ExecutionEvent[], state: string): number[] {
    const events = history.filter((e) => e.state === state);
    return events.flatMap((e, i) => {
      const next = events[i + 1];
      return e.type === 'StateFailed' && next?.type === 'StateRetried'
        ? [Date.parse(next.timestamp) - Date.parse(e.timestamp)]
        : [];
    });
  }

  it('ProcessStaging failing twice is retried 5 s then 10 s later (IntervalSeconds 5, BackoffRate 2)', async () => {
    const { record, history } = await run(LANDING_ANALYTICAL, 2);
    expect(record.status).toBe('SUCCEEDED');
    expect(retryDelays(history, 'ProcessStaging')).toEqual([5_000, 10_000]);
    expect(alerts).toEqual([]);
  });

  it('ProcessStaging failing 4 times is retried after 5, 10 and 20 s, then fails the execution with an alert', async () => {
    const { record, history } = await run(LANDING_ANALYTICAL, 4);
    expect(record).toMatchObject({
      status: 'FAILED',
      failedState: 'ProcessStaging',
      error: 'LeaseHeldError',
    });
    expect(retryDelays(history, 'ProcessStaging')).toEqual([5_000, 10_000, 20_000]);
    expect(alerts).toEqual([
      expect.objectContaining({
        pipeline: 'hashtags',
        workflow: LANDING_ANALYTICAL,
        state: 'ProcessStaging',
        error: 'LeaseHeldError',
        cause: 'dataset hashtags.staging is busy (attempt 4)',
      }),
    ]);
  });

  it('KinesisLanding starts the producer 10 s after the consumer', async () => {
    const { record, history } = await run(KINESIS_LANDING, 0);
    expect(record.status).toBe('SUCCEEDED');
    const entered = (state: string) =>
      Date.parse(history.find((e) => e.type === 'StateEntered' && e.state === state)?.timestamp ?? '');
    expect(entered('Produce') - entered('Consume')).toBe(10_000);
  });
});

describe('sluice up runs hashtags on its schedules', () => {
  it('at :00 KinesisLanding lands the configured replay_files; at :30 LandingAnalytical loads them', async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), 'sluice-hashtags-up-'));
    // Landing objects get real mtimes and staging selects those within 2 h of the clock: the
    // clock starts just before the current real hour.
    const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000;
    const clock = new ManualClock(new Date(hour - 5 * 60_000));
    const backend = createLocalBackend(home, { clock });
    const ctx: PipelineContext = {
      backend,
      clock,
      logger: silentLogger,
      progress: noProgress,
      workDir: path.join(home, 'tmp'),
      engine: { threads: 2 },
    };
    const alerts: Alert[] = [];
    const finished: ExecutionRecord[] = [];
    try {
      const config = await ConfigStore.open(backend.kv, clock);
      await config.set(PIPELINE, 'source', 'replay');
      await config.set(PIPELINE, 'replay_files', [TIMELINE]);
      const stack = await LocalStack.start({
        ctx,
        lakeRoot: path.join(home, 'lake'),
        modules: [pipelineModules.hashtags!],
        notifier: {
          notify: async (alert) => {
            alerts.push(alert);
            return { delivered: ['memory'], failed: [] };
          },
        },
        watch: false,
        retryIntervalMs: 0,
        waitMs: 0,
        configPollMs: 60_000,
        onExecutionFinished: (record) => finished.push(record),
      });
      try {
        // Asleep on the clock: the config follower and the two schedules.
        await eventually(async () => (clock.waiting >= 3 ? true : undefined));
        await clock.set(new Date(hour));
        const landing = await eventually(async () => finished.find((r) => r.workflow === KINESIS_LANDING));
        expect(finished).toHaveLength(1);
        expect(landing).toMatchObject({
          status: 'SUCCEEDED',
          source: { kind: 'schedule', name: 'hashtags-landing-hourly', detail: new Date(hour).toISOString() },
          output: {
            results: [
              { counts: { read: 15, loaded: 15 }, stopped_because: 'drained' },
              { counts: { read: 63, loaded: 15 }, files: [{ file: TIMELINE, status: 'replayed' }] },
            ],
            deleted: { deleted: true },
          },
        });

        await clock.set(new Date(hour + 30 * 60_000));
        const analytical = await eventually(async () =>
          finished.find((r) => r.workflow === LANDING_ANALYTICAL),
        );
        expect(analytical).toMatchObject({
          status: 'SUCCEEDED',
          source: {
            kind: 'schedule',
            name: 'hashtags-analytical-hourly',
            detail: new Date(hour + 30 * 60_000).toISOString(),
          },
          output: { staging: { rows: 18 }, analytical: { loaded: 18 } },
        });
        const engine = await backend.openQueryEngine();
        try {
          const rows = (await engine.query('SELECT tweet_id, hashtag FROM hashtags.hashtag_data')).rows;
          expect(rows.map((r) => `${r.tweet_id} ${r.hashtag}`).sort()).toEqual(expected.rows);
        } finally {
          await engine.close();
        }
        expect(alerts).toEqual([]);
      } finally {
        await stack.stop(5_000);
      }
    } finally {
      await backend.close();
      await rm(home, { recursive: true, force: true });
    }
  });
});
