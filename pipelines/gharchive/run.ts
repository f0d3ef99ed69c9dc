import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { BookmarkStore } from '../../src/core/bookmark.ts';
import type { PipelineContext } from '../../src/core/context.ts';
import { describeError, ExitCode, StepError } from '../../src/core/errors.ts';
import { Lease } from '../../src/core/lease.ts';
import type { Logger } from '../../src/core/logger.ts';
import type { JsonValue } from '../../src/core/ports/kv-table.ts';
import type { RecordCounts, RunHandle, RunStatus } from '../../src/core/run.ts';
import { RunLog } from '../../src/core/run.ts';
import type { FetchOptions } from '../../src/sources/http/download.ts';
import { GHARCHIVE_URL } from './definition.ts';
import { addHours, floorHour, hourFileName, hoursBetween, hourUnit, parseHourFileName } from './hours.ts';
import { ingestHour } from './ingest.ts';
import { type TransformResult, transformHour } from './transform.ts';

/** Job id of the pipeline in the `jobs` / `job_run_details` tables. */
export const JOB_ID = 'gharchive';
/** Default `baseline_days` of the job: the first incremental run starts at `<today - 3 days>-0`. */
export const DEFAULT_BASELINE_DAYS = 3;

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

/** A new run id: `20260121T120000Z-1a2b3c`. */
export function newRunId(now: Date): string {
  return `${now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
}

/**
 * Runs the gharchive pipeline: for each hour, ingest (source -> landing) then transform
 * (landing -> analytical), then move the bookmark.
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
  const { backend, clock } = ctx;
  const runId = options.runId ?? newRunId(clock.now());
  const lease = await Lease.acquire(
    backend.kv,
    `pipeline:${JOB_ID}`,
    { id: runId, host: os.hostname(), pid: process.pid },
    { clock, isAlive: backend.isAlive },
  );
  const logger = ctx.logger.child({ pipeline: JOB_ID, runId });
  try {
    await backend.objectStore.cleanScratch('landing');
    await backend.objectStore.cleanScratch('analytical');
    await backend.objectStore.cleanScratch('quarantine');
    const runs = await RunLog.open(backend.kv, clock);
    const aborted = await runs.abortStale(JOB_ID, runId);
    if (aborted > 0) logger.warn({ aborted }, 'marked runs of a crashed process as aborted');

    const bookmarks = await BookmarkStore.open(backend.kv, clock);
    const job = await bookmarks.ensureJob(JOB_ID, { baseline_days: DEFAULT_BASELINE_DAYS });
    let bookmark = await bookmarks.current(JOB_ID);
    const before = typeof bookmark?.last_file === 'string' ? bookmark.last_file : null;
    const mode = options.from ? 'backfill' : 'incremental';
    const now = clock.now();
    let from: Date;
    if (options.from) from = floorHour(options.from);
    else if (before && parseHourFileName(before)) from = addHours(parseHourFileName(before)!, 1);
    else {
      const baselineDays = typeof job.baseline_days === 'number' ? job.baseline_days : DEFAULT_BASELINE_DAYS;
      const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
      from = new Date(today - baselineDays * 86_400_000);
    }
    const to = floorHour(options.to ?? now);
    const hours = hoursBetween(from, to);
    const outcomes: HourOutcome[] = [];
    let stoppedAt: string | undefined;
    let exitCode: number = ExitCode.ok;
    const sourceUrl = options.sourceUrl ?? GHARCHIVE_URL;

    for (const [index, hour] of hours.entries()) {
      const file = hourFileName(hour);
      const unit = hourUnit(hour);
      const outcome = await runHour(ctx, runs, { runId, file, unit, sourceUrl, options });
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
      const details: { [key: string]: JsonValue } = {
        last_file: file,
        last_hour: hour.toISOString(),
        run_id: runId,
      };
      await bookmarks.record(JOB_ID, details, { advance: mode === 'incremental', expected: bookmark, runId });
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
    const after = typeof bookmark?.last_file === 'string' ? bookmark.last_file : null;
    return {
      runId,
      mode,
      range: { from: from.toISOString(), to: to.toISOString() },
      hours: outcomes,
      totals,
      bookmark: { before, after },
      ...(stoppedAt ? { stoppedAt } : {}),
      exitCode,
    };
  } finally {
    await lease.release();
  }
}

async function runHour(
  ctx: PipelineContext,
  runs: RunLog,
  input: { runId: string; file: string; unit: string; sourceUrl: string; options: GharchiveRunOptions },
): Promise<HourOutcome> {
  const { runId, file, unit } = input;
  const logger = ctx.logger.child({ pipeline: JOB_ID, runId, unit });

  const ingestRun = await runs.start({ runId, pipeline: JOB_ID, step: 'ingest', unit: file });
  let ingest: Awaited<ReturnType<typeof ingestHour>>;
  try {
    ingest = await ingestHour(ctx, {
      fileName: file,
      sourceUrl: input.sourceUrl,
      ...(input.options.fetch ? { fetch: input.options.fetch } : {}),
    });
  } catch (error) {
    return failStep(ingestRun, logger, error, 'The bookmark did not move; the next run retries this hour');
  }
  if (ingest.status === 'not_published') {
    await ingestRun.finish({
      status: 'skipped',
      details: { reason: 'not published yet (404)', location: ingest.location },
    });
    logger.info({ location: ingest.location }, 'hour not published yet');
    return { file, status: 'not_published' };
  }
  await ingestRun.finish({
    status: 'succeeded',
    bytes: ingest.bytes,
    details: {
      landing: `${ingest.landing.layer}/${ingest.landing.key}`,
      source: ingest.location,
      reused: ingest.reused,
      attempts: ingest.attempts,
    },
  });
  await input.options.onPhase?.(unit, 'landed');

  const transformRun = await runs.start({ runId, pipeline: JOB_ID, step: 'transform', unit: file });
  try {
    const result = await transformHour(ctx, {
      landing: ingest.landing,
      unit,
      runId,
      onPhase: (phase) => input.options.onPhase?.(unit, phase),
    });
    const status: RunStatus = result.damage ? 'partial' : 'succeeded';
    await transformRun.finish({
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
      },
    });
    logger.info({ counts: result.counts }, 'hour transformed');
    return {
      file,
      status: status === 'partial' ? 'partial' : 'succeeded',
      counts: result.counts,
      transform: result,
      downloadedBytes: ingest.reused ? 0 : ingest.bytes,
      ...(result.damage ? { error: `${file}: ${result.damage.message}` } : {}),
    };
  } catch (error) {
    return failStep(
      transformRun,
      logger,
      error,
      'Partitions keep their previous state and the bookmark did not move; the next run redoes this hour',
    );
  }
}

/** Records a failed step (wrapped with pipeline, step, run and unit) and the hour's outcome. */
async function failStep(
  run: RunHandle,
  logger: Logger,
  error: unknown,
  pending: string,
): Promise<HourOutcome> {
  const { pipeline, step, runId, unit } = run.record;
  const wrapped = new StepError({ pipeline, step, runId, unit }, error, pending);
  await run.finish({ status: 'failed', error: describeError(wrapped) });
  logger.error({ step, err: describeError(error) }, `${step} failed`);
  return { file: unit ?? '', status: 'failed', error: wrapped.message, exitCode: wrapped.exitCode };
}
