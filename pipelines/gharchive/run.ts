import os from 'node:os';
import { BookmarkStore } from '../../src/core/bookmark.ts';
import type { PipelineContext } from '../../src/core/context.ts';
import { describeError, ExitCode, SluiceError, StepError } from '../../src/core/errors.ts';
import type { ObjectRef } from '../../src/core/layer.ts';
import { Lease } from '../../src/core/lease.ts';
import type { JsonValue } from '../../src/core/ports/kv-table.ts';
import type { CheckDefinition } from '../../src/core/quality.ts';
import type { RecordCounts, RunStatus } from '../../src/core/run.ts';
import { newRunId, RunLog } from '../../src/core/run.ts';
import { blockedResultsOf, checkSummary } from '../../src/engines/quality/checks.ts';
import type { FetchOptions } from '../../src/sources/http/download.ts';
import { GHARCHIVE_URL } from './definition.ts';
import { addHours, floorHour, hourFileName, hoursBetween, hourUnit, parseHourFileName } from './hours.ts';
import { type IngestResult, ingestHour } from './ingest.ts';
import { type TransformResult, transformHour } from './transform.ts';

/** Job id of the pipeline in the `jobs` / `job_run_details` tables. */
export const JOB_ID = 'gharchive';
/** Default `baseline_days` of the job: the first incremental run starts at `<today - 3 days>-0`. */
export const DEFAULT_BASELINE_DAYS = 3;
/** Lease held by whatever moves the bookmark (a CLI run, the ingest function). */
export const PIPELINE_LEASE = `pipeline:${JOB_ID}`;

/** Options of {@link runGharchive}. */
export interface GharchiveRunOptions {
  /** First hour of a backfill (UTC). Without it the run is incremental, from the bookmark. */
  readonly from?: Date;
  /** Last hour, inclusive (UTC). Default: the current hour. */
  readonly to?: Date;
  /** Base URL or directory holding `YYYY-MM-DD-H.json.gz` files (default https://data.gharchive.org). */
  readonly sourceUrl?: string;
  /** Run id (default: time-based with a random suffix). */
  readonly runId?: string;
  /** Retry settings of downloads (tests shorten the delays). */
  readonly fetch?: Partial<Omit<FetchOptions, 'clock' | 'onProgress'>>;
  /** Checks of `gharchive.events` to evaluate instead of the definition's (tests, experiments). */
  readonly checks?: readonly CheckDefinition[];
  /** Called after each phase of each hour; crash tests kill the process here. */
  readonly onPhase?: (unit: string, phase: string) => void | Promise<void>;
  /** Called when an hour finishes, for progress output. */
  readonly onHour?: (outcome: HourOutcome, index: number, total: number) => void;
}

/** What happened to one hour. */
export interface HourOutcome {
  readonly file: string;
  readonly status: 'succeeded' | 'partial' | 'failed' | 'not_published';
  readonly counts?: RecordCounts;
  readonly transform?: TransformResult;
  /** Bytes downloaded (0 when the landed file was reused). */
  readonly downloadedBytes?: number;
  readonly error?: string;
  /** For a failed hour: the exit code its error maps to (docs/cli.md). */
  readonly exitCode?: number;
}

/** Summary of a run (what `sluice run gharchive --json` prints). */
export interface GharchiveRunSummary {
  readonly runId: string;
  readonly mode: 'incremental' | 'backfill';
  /** First and last hour considered (ISO). */
  readonly range: { readonly from: string; readonly to: string };
  readonly hours: HourOutcome[];
  /** Sums over the hours; `read = loaded + duplicates + quarantined`. */
  readonly totals: RecordCounts;
  /** Bookmark (last file) before and after the run; unchanged by a backfill. */
  readonly bookmark: { readonly before: string | null; readonly after: string | null };
  /** The first hour not published yet, when the run stopped there. */
  readonly stoppedAt?: string;
  readonly exitCode: number;
}

/** A new run id (`src/core/run.ts`), re-exported for this pipeline's callers. */
export { newRunId } from '../../src/core/run.ts';

/** What a bookmark-moving session holds: the pipeline lease, the run log and the bookmarks. */
interface Session {
  readonly runs: RunLog;
  readonly bookmarks: BookmarkStore;
  /** The job's `baseline_days`. */
  readonly baselineDays: number;
  release(): Promise<void>;
}

/**
 * Takes the pipeline lease (failing fast with {@link LeaseHeldError}), removes scratch files and
 * marks steps left `running` by a crashed process as `aborted`.
 */
async function openSession(ctx: PipelineContext, runId: string): Promise<Session> {
  const { backend, clock } = ctx;
  const lease = await Lease.acquire(
    backend.kv,
    PIPELINE_LEASE,
    { id: runId, host: os.hostname(), pid: process.pid },
    { clock, isAlive: backend.isAlive },
  );
  try {
    for (const layer of ['landing', 'quarantine'] as const) await backend.objectStore.cleanScratch(layer);
    const runs = await RunLog.open(backend.kv, clock);
    const aborted = await runs.abortStale(JOB_ID, runId);
    if (aborted > 0)
      ctx.logger.warn({ pipeline: JOB_ID, runId, aborted }, 'marked runs of a crashed process as aborted');
    const bookmarks = await BookmarkStore.open(backend.kv, clock);
    const job = await bookmarks.ensureJob(JOB_ID, { baseline_days: DEFAULT_BASELINE_DAYS });
    const baselineDays = typeof job.baseline_days === 'number' ? job.baseline_days : DEFAULT_BASELINE_DAYS;
    return { runs, bookmarks, baselineDays, release: () => lease.release() };
  } catch (error) {
    await lease.release();
    throw error;
  }
}

/** The first hour of an incremental run: the bookmark's next hour, else `<today - baseline_days>-0`. */
function firstIncrementalHour(lastFile: string | null, baselineDays: number, now: Date): Date {
  const last = lastFile ? parseHourFileName(lastFile) : undefined;
  if (last) return addHours(last, 1);
  return new Date(
    Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) - baselineDays * 86_400_000,
  );
}

function lastFileOf(bookmark: { [key: string]: JsonValue } | undefined): string | null {
  return typeof bookmark?.last_file === 'string' ? bookmark.last_file : null;
}

function bookmarkDetails(hour: Date, runId: string): { [key: string]: JsonValue } {
  return { last_file: hourFileName(hour), last_hour: hour.toISOString(), run_id: runId };
}

/**
 * Runs the gharchive pipeline from the CLI: for each hour, ingest (source -> landing) then
 * transform (landing -> analytical), then move the bookmark.
 *
 * - Incremental (no `from`): hours from the bookmark's next hour (or `<today - baseline_days>-0`
 *   on the first run) up to `to`/now. The bookmark moves after each hour's data is committed.
 * - Backfill (`from`): the inclusive range; recorded in `job_run_details` with `mode: backfill`;
 *   the bookmark does not move.
 * - A hour that is not published yet (404) ends the run cleanly (exit 0); later hours wait for the
 *   next run. A failing hour ends the run with its error; nothing after it is attempted.
 * - A damaged file (truncated gzip) loads what it can, is recorded `partial`, moves the bookmark
 *   (re-downloading cannot repair a damaged archive file) and makes the exit code 3.
 *
 * Holds the `pipeline:gharchive` lease for the whole run; marks runs left `running` by a crashed
 * process as `aborted` and removes their scratch files.
 *
 * @throws {LeaseHeldError} when another run is active.
 */
export async function runGharchive(
  ctx: PipelineContext,
  options: GharchiveRunOptions = {},
): Promise<GharchiveRunSummary> {
  const runId = options.runId ?? newRunId(ctx.clock.now());
  const session = await openSession(ctx, runId);
  try {
    let bookmark = await session.bookmarks.current(JOB_ID);
    const before = lastFileOf(bookmark);
    const mode = options.from ? 'backfill' : 'incremental';
    const now = ctx.clock.now();
    const from = options.from
      ? floorHour(options.from)
      : firstIncrementalHour(before, session.baselineDays, now);
    const to = floorHour(options.to ?? now);
    const hours = hoursBetween(from, to);
    const outcomes: HourOutcome[] = [];
    let stoppedAt: string | undefined;
    let exitCode: number = ExitCode.ok;
    const sourceUrl = options.sourceUrl ?? GHARCHIVE_URL;

    for (const [index, hour] of hours.entries()) {
      const file = hourFileName(hour);
      const outcome = await runHour(ctx, session.runs, { runId, hour, sourceUrl, options });
      outcomes.push(outcome);
      options.onHour?.(outcome, index, hours.length);
      if (outcome.status === 'not_published') {
        stoppedAt = file;
        break;
      }
      if (outcome.status === 'failed') {
        exitCode = outcome.exitCode ?? ExitCode.internal;
        break;
      }
      if (outcome.status === 'partial') exitCode = ExitCode.dataLoss;
      const details = bookmarkDetails(hour, runId);
      await session.bookmarks.record(JOB_ID, details, {
        advance: mode === 'incremental',
        expected: bookmark,
        runId,
      });
      if (mode === 'incremental') bookmark = details;
    }
    const totals = outcomes.reduce<RecordCounts>(
      (sum, o) => ({
        read: sum.read + (o.counts?.read ?? 0),
        loaded: sum.loaded + (o.counts?.loaded ?? 0),
        duplicates: sum.duplicates + (o.counts?.duplicates ?? 0),
        quarantined: sum.quarantined + (o.counts?.quarantined ?? 0),
      }),
      { read: 0, loaded: 0, duplicates: 0, quarantined: 0 },
    );
    return {
      runId,
      mode,
      range: { from: from.toISOString(), to: to.toISOString() },
      hours: outcomes,
      totals,
      bookmark: { before, after: lastFileOf(bookmark) },
      ...(stoppedAt ? { stoppedAt } : {}),
      exitCode,
    };
  } finally {
    await session.release();
  }
}

/** Ingest then transform one hour, recording both steps; failures become the outcome. */
async function runHour(
  ctx: PipelineContext,
  runs: RunLog,
  input: { runId: string; hour: Date; sourceUrl: string; options: GharchiveRunOptions },
): Promise<HourOutcome> {
  const { runId, hour, options } = input;
  const file = hourFileName(hour);
  let ingest: IngestResult;
  try {
    ingest = await ingestStep(ctx, runs, {
      runId,
      file,
      sourceUrl: input.sourceUrl,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
  } catch (error) {
    return failedOutcome(file, error);
  }
  if (ingest.status === 'not_published') return { file, status: 'not_published' };
  await options.onPhase?.(hourUnit(hour), 'landed');
  try {
    const result = await transformStep(ctx, runs, {
      runId,
      landing: ingest.landing,
      // A trigger-driven transform of the same dataset may be writing: wait for it rather than fail.
      leaseWaitMs: 10 * 60_000,
      ...(options.checks ? { checks: options.checks } : {}),
      ...(options.onPhase ? { onPhase: (unit, phase) => options.onPhase?.(unit, phase) } : {}),
    });
    return {
      file,
      status: result.damage ? 'partial' : 'succeeded',
      counts: result.counts,
      transform: result,
      downloadedBytes: ingest.reused ? 0 : ingest.bytes,
      ...(result.damage ? { error: `${file}: ${result.damage.message}` } : {}),
    };
  } catch (error) {
    return failedOutcome(file, error);
  }
}

function failedOutcome(file: string, error: unknown): HourOutcome {
  return {
    file,
    status: 'failed',
    error: error instanceof Error ? error.message : String(error),
    exitCode: error instanceof SluiceError ? error.exitCode : ExitCode.internal,
  };
}

/**
 * The ingest step of one hour file, recorded in the run log: `succeeded` (with bytes, source,
 * attempts), `skipped` when not published yet, `failed` with the error.
 * @throws {StepError} named after its cause (e.g. `SourceUnavailableError`), saying the bookmark did not move.
 */
export async function ingestStep(
  ctx: PipelineContext,
  runs: RunLog,
  input: {
    runId: string;
    file: string;
    sourceUrl: string;
    fetch?: Partial<Omit<FetchOptions, 'clock' | 'onProgress'>>;
  },
): Promise<IngestResult> {
  const run = await runs.start({ runId: input.runId, pipeline: JOB_ID, step: 'ingest', unit: input.file });
  try {
    const ingest = await ingestHour(ctx, {
      fileName: input.file,
      sourceUrl: input.sourceUrl,
      ...(input.fetch ? { fetch: input.fetch } : {}),
    });
    if (ingest.status === 'not_published') {
      await run.finish({
        status: 'skipped',
        details: { reason: 'not published yet (404)', location: ingest.location },
      });
      return ingest;
    }
    await run.finish({
      status: 'succeeded',
      bytes: ingest.bytes,
      details: {
        landing: `${ingest.landing.layer}/${ingest.landing.key}`,
        source: ingest.location,
        reused: ingest.reused,
        attempts: ingest.attempts,
      },
    });
    return ingest;
  } catch (error) {
    const wrapped = new StepError(
      { pipeline: JOB_ID, step: 'ingest', runId: input.runId, unit: input.file },
      error,
      'The bookmark did not move; the next run retries this hour',
    );
    await run.finish({ status: 'failed', error: describeError(wrapped) });
    ctx.logger.error(
      { pipeline: JOB_ID, runId: input.runId, unit: input.file, err: describeError(error) },
      'ingest failed',
    );
    throw wrapped;
  }
}

/**
 * The transform step of one landed hour file, recorded in the run log (`partial` when the file
 * was damaged), with a summary of its data-quality checks in `details.checks` (also when a
 * `block` check failed the step).
 * @throws {StepError} named after its cause (`LeaseHeldError` when another writer holds the
 *   dataset, `QualityBlockedError` when a `block` check failed).
 */
export async function transformStep(
  ctx: PipelineContext,
  runs: RunLog,
  input: {
    runId: string;
    landing: ObjectRef;
    leaseWaitMs?: number;
    checks?: readonly CheckDefinition[];
    onPhase?: (unit: string, phase: string) => void | Promise<void>;
  },
): Promise<TransformResult> {
  const file = input.landing.key.slice(input.landing.key.lastIndexOf('/') + 1);
  const hour = parseHourFileName(file);
  if (!hour)
    throw new SluiceError(`${input.landing.key} is not a GH Archive hour file (YYYY-MM-DD-H.json.gz)`, {
      code: 'usage',
    });
  const unit = hourUnit(hour);
  const run = await runs.start({ runId: input.runId, pipeline: JOB_ID, step: 'transform', unit: file });
  try {
    const result = await transformHour(ctx, {
      landing: input.landing,
      unit,
      runId: input.runId,
      ...(input.leaseWaitMs !== undefined ? { leaseWaitMs: input.leaseWaitMs } : {}),
      ...(input.checks ? { checks: input.checks } : {}),
      onPhase: (phase) => input.onPhase?.(unit, phase),
    });
    const status: RunStatus = result.damage ? 'partial' : 'succeeded';
    await run.finish({
      status,
      counts: result.counts,
      bytes: result.bytes.landed,
      ...(result.damage ? { error: `${file}: ${result.damage.message}` } : {}),
      details: {
        partitions: result.partitions.map((p) => p.prefix),
        duplicates_in_file: result.duplicatesInFile,
        duplicates_in_lake: result.duplicatesInLake,
        quarantine: result.quarantine ? `quarantine/${result.quarantine.key}` : null,
        schema_version: result.schemaVersion,
        checks: checkSummary(result.checks),
      },
    });
    ctx.logger.info(
      { pipeline: JOB_ID, runId: input.runId, unit, counts: result.counts },
      'hour transformed',
    );
    return result;
  } catch (error) {
    const wrapped = new StepError(
      { pipeline: JOB_ID, step: 'transform', runId: input.runId, unit: file },
      error,
      'Partitions keep their previous state; the hour is redone by its next delivery or `sluice run gharchive --from/--to`',
    );
    const blocked = blockedResultsOf(error);
    await run.finish({
      status: 'failed',
      error: describeError(wrapped),
      ...(blocked ? { details: { checks: checkSummary(blocked) } } : {}),
    });
    ctx.logger.error(
      { pipeline: JOB_ID, runId: input.runId, unit, err: describeError(error) },
      'transform failed',
    );
    throw wrapped;
  }
}

/** Result of {@link landNewHours}. */
export interface LandResult {
  /** Landing keys of the hours landed by this call, in order. */
  readonly landed: string[];
  /** The first hour not published yet, when the call stopped there. */
  readonly stoppedAt: string | null;
  /** True when time ran out with hours left: call again. */
  readonly more: boolean;
  readonly bookmark: string | null;
}

/**
 * The ingest function's work (the original's ingest Lambda): lands every published hour after the
 * bookmark into landing, moving the bookmark after each landing; the object-created trigger then
 * starts the transform of each landed file. Stops at the first hour not published yet, or when
 * `remainingMs()` drops under a minute (answering `more: true` so the workflow calls again).
 *
 * @throws {StepError} named after its cause (`SourceUnavailableError`, ...) for an ASL Retry;
 *   {@link LeaseHeldError} when another run holds the pipeline.
 */
export async function landNewHours(
  ctx: PipelineContext,
  input: {
    runId: string;
    sourceUrl: string;
    remainingMs: () => number;
    fetch?: Partial<Omit<FetchOptions, 'clock' | 'onProgress'>>;
  },
): Promise<LandResult> {
  const session = await openSession(ctx, input.runId);
  try {
    let bookmark = await session.bookmarks.current(JOB_ID);
    const now = ctx.clock.now();
    const hours = hoursBetween(
      firstIncrementalHour(lastFileOf(bookmark), session.baselineDays, now),
      floorHour(now),
    );
    const landed: string[] = [];
    for (const hour of hours) {
      if (input.remainingMs() < 60_000)
        return { landed, stoppedAt: null, more: true, bookmark: lastFileOf(bookmark) };
      const ingest = await ingestStep(ctx, session.runs, {
        runId: input.runId,
        file: hourFileName(hour),
        sourceUrl: input.sourceUrl,
        ...(input.fetch ? { fetch: input.fetch } : {}),
      });
      if (ingest.status === 'not_published') {
        return { landed, stoppedAt: hourFileName(hour), more: false, bookmark: lastFileOf(bookmark) };
      }
      landed.push(ingest.landing.key);
      const details = bookmarkDetails(hour, input.runId);
      await session.bookmarks.record(JOB_ID, details, {
        advance: true,
        expected: bookmark,
        runId: input.runId,
      });
      bookmark = details;
    }
    return { landed, stoppedAt: null, more: false, bookmark: lastFileOf(bookmark) };
  } finally {
    await session.release();
  }
}
