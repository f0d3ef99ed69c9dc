import type { PipelineContext } from '../../src/core/context.ts';
import { StepError } from '../../src/core/errors.ts';
import type { JsonValue } from '../../src/core/ports/kv-table.ts';
import type { CheckDefinition } from '../../src/core/quality.ts';
import type { RecordCounts, RunLog } from '../../src/core/run.ts';
import { newRunId, RunLog as RunLogClass } from '../../src/core/run.ts';
import { blockedResultsOf, checkSummary } from '../../src/engines/quality/checks.ts';
import { type AnalyticalResult, loadAnalytical, logUpdate, refreshDashboard } from './analytical.ts';
import { type ConsumeResult, consume } from './consumer.ts';
import { DEFAULT_STREAM, PIPELINE } from './definition.ts';
import { type ProduceResult, type ProducerSource, produce } from './producer.ts';
import { deleteStaging, processStaging, type StagingResult, type StagingSelection } from './staging.ts';
import { deleteStreamIfDrained, ensureStream } from './stream.ts';

/** A new run id (`src/core/run.ts`), re-exported for this pipeline's callers. */
export { newRunId } from '../../src/core/run.ts';

/** Options of {@link runHashtags}. */
export interface HashtagsRunOptions {
  readonly runId?: string;
  /** Where tweets come from: replayed files or the live filtered stream. */
  readonly source: ProducerSource;
  /** Ends a live source early (Ctrl-C). */
  readonly signal?: AbortSignal;
  readonly stream?: string;
  readonly shards?: number;
  /** Longest time the consumer reads, ms (default 15 min). */
  readonly consumerMaxMs?: number;
  /** Called as each stage ends, for progress output. */
  readonly onStage?: (stage: HashtagsStage) => void;
}

/** A finished stage of a run, as {@link HashtagsRunOptions.onStage} reports it. */
export type HashtagsStage =
  | { readonly stage: 'produce'; readonly result: ProduceResult }
  | { readonly stage: 'land'; readonly result: ConsumeResult }
  | { readonly stage: 'staging'; readonly result: StagingResult }
  | { readonly stage: 'analytical'; readonly result: AnalyticalResult | null };

/** What {@link runHashtags} did, stage by stage. */
export interface HashtagsRunSummary {
  readonly runId: string;
  readonly stream: {
    readonly name: string;
    readonly created: boolean;
    readonly deleted: boolean;
    readonly unconsumed: number;
  };
  readonly produce: ProduceResult;
  readonly land: ConsumeResult;
  readonly staging: StagingResult;
  /** `null` when staging had no rows (analytical is then not touched, as in the original). */
  readonly analytical: AnalyticalResult | null;
  readonly dashboardRefreshedAt: string | null;
  readonly exitCode: number;
}

/**
 * One run of the hashtags pipeline in this process, the two state machines' work in their order:
 * KinesisLanding (create the stream; consumer and producer concurrently; delete the stream once
 * drained) then LandingAnalytical (delete old staging; stage exactly the landing objects this run
 * wrote; when staging has rows: log, append to hashtag_data, log; refresh the dashboard snapshot).
 * Each stage is recorded in the run log (`sluice runs`) with counts that reconcile.
 *
 * Unlike the state machine, the producer does not wait 10 s for the consumer: both start at once
 * here, and the consumer reads from its checkpoints, so nothing depends on who starts first.
 *
 * @throws {StepError} naming the stage, with the cause's name (e.g. `ResourceNotFoundException`).
 */
export async function runHashtags(
  ctx: PipelineContext,
  options: HashtagsRunOptions,
): Promise<HashtagsRunSummary> {
  const runId = options.runId ?? newRunId(ctx.clock.now());
  const runs = await RunLogClass.open(ctx.backend.kv, ctx.clock);
  const streamName = options.stream ?? DEFAULT_STREAM;
  const ensured = await ensureStream(ctx, { stream: streamName, shards: options.shards ?? 1 });

  // The producer stops when the run is aborted or the consumer failed (nobody would land its records).
  const stopProducer = new AbortController();
  options.signal?.addEventListener('abort', () => stopProducer.abort(), { once: true });
  const [producing, landing] = await Promise.allSettled([
    step(runs, runId, 'produce', streamName, async () => {
      const result = await produce(ctx, {
        runId,
        stream: streamName,
        source: options.source,
        signal: stopProducer.signal,
      });
      return {
        result,
        counts: result.counts,
        details: {
          files: result.files.map((f) => ({
            file: f.file,
            status: f.status,
            previous_run: f.previousRun ?? null,
          })),
          quarantine: result.quarantine.slice(),
        },
      };
    }),
    step(runs, runId, 'land', streamName, async () => {
      const result = await consume(ctx, {
        runId,
        stream: streamName,
        producerRunId: runId,
        maxMs: options.consumerMaxMs ?? 15 * 60_000,
      });
      return {
        result,
        counts: result.counts,
        details: {
          landed: result.landed.map((l) => l.key),
          quarantine: result.quarantine.slice(),
          stopped_because: result.stoppedBecause,
        },
      };
    }).catch((error: unknown) => {
      stopProducer.abort();
      throw error;
    }),
  ]);
  if (producing.status === 'rejected') throw producing.reason;
  if (landing.status === 'rejected') throw landing.reason;
  const produced = producing.value;
  const landed = landing.value;
  options.onStage?.({ stage: 'produce', result: produced });
  options.onStage?.({ stage: 'land', result: landed });
  const deleted = await deleteStreamIfDrained(ctx, streamName);

  await deleteStaging(ctx, runId);
  const staged = await stagingStep(ctx, runs, {
    runId,
    selection: { keys: landed.landed.map((l) => l.key) },
  });
  options.onStage?.({ stage: 'staging', result: staged });

  let analytical: AnalyticalResult | null = null;
  let dashboardRefreshedAt: string | null = null;
  if (staged.rows > 0) {
    await logUpdate(ctx, { runId, tableName: 'staging', recordsInserted: staged.rows });
    analytical = await step(runs, runId, 'analytical', undefined, async () => {
      const result = await loadAnalytical(ctx, { runId });
      return { result, counts: result.counts, details: { partitions: result.partitions.slice() } };
    });
    await logUpdate(ctx, { runId, tableName: 'hashtag_data', recordsInserted: analytical.counts.loaded });
    dashboardRefreshedAt = (await refreshDashboard(ctx)).refreshed_at;
  }
  options.onStage?.({ stage: 'analytical', result: analytical });
  return {
    runId,
    stream: {
      name: streamName,
      created: ensured.created,
      deleted: deleted.deleted,
      unconsumed: deleted.unconsumed,
    },
    produce: produced,
    land: landed,
    staging: staged,
    analytical,
    dashboardRefreshedAt,
    exitCode: 0,
  };
}

/**
 * The staging stage recorded in the run log, with its data-quality checks in `details.checks`
 * (also when a `block` check failed it: nothing was staged then).
 * @throws {StepError} named after its cause (`QualityBlockedError` when a `block` check failed).
 */
export async function stagingStep(
  ctx: PipelineContext,
  runs: RunLog,
  input: { runId: string; selection: StagingSelection; checks?: readonly CheckDefinition[] },
): Promise<StagingResult> {
  return step(runs, input.runId, 'staging', undefined, async () => {
    const result = await processStaging(ctx, input);
    return {
      result,
      counts: result.counts,
      details: {
        rows: result.rows,
        objects: result.objects.length,
        duplicate_rows: result.duplicateRows,
        quarantined_rows: result.quarantinedRows,
        partitions: result.partitions.slice(),
        quarantine: result.quarantine ?? null,
        checks: checkSummary(result.checks),
      },
    };
  });
}

/**
 * Runs a stage recorded in the run log (pipeline `hashtags`); a failure is recorded (with the
 * data-quality checks when a `block` check failed it) and rethrown as {@link StepError}.
 */
export async function step<T>(
  runs: RunLog,
  runId: string,
  name: string,
  unit: string | undefined,
  work: () => Promise<{ result: T; counts: RecordCounts; details: { [key: string]: JsonValue } }>,
): Promise<T> {
  const handle = await runs.start({ runId, pipeline: PIPELINE, step: name, ...(unit ? { unit } : {}) });
  try {
    const { result, counts, details } = await work();
    await handle.finish({ status: 'succeeded', counts: stripExtra(counts), details });
    return result;
  } catch (error) {
    const wrapped = new StepError({ pipeline: PIPELINE, step: name, runId, unit }, error);
    const blocked = blockedResultsOf(error);
    await handle
      .finish({
        status: 'failed',
        error: wrapped.message,
        ...(blocked ? { details: { checks: checkSummary(blocked) } } : {}),
      })
      .catch(() => {});
    throw wrapped;
  }
}

function stripExtra(counts: RecordCounts): RecordCounts {
  return {
    read: counts.read,
    loaded: counts.loaded,
    duplicates: counts.duplicates,
    quarantined: counts.quarantined,
    ...(counts.filtered ? { filtered: counts.filtered } : {}),
  };
}
