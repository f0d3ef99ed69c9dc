import type { PipelineContext } from '../../src/core/context.ts';
import type { S3Event } from '../../src/core/events.ts';
import type { FunctionHandler } from '../../src/core/function.ts';
import type { ObjectRef } from '../../src/core/layer.ts';
import type { PipelineRuntime } from '../../src/core/pipeline.ts';
import type { JsonValue } from '../../src/core/ports/kv-table.ts';
import type { CheckDefinition } from '../../src/core/quality.ts';
import type { RecordCounts } from '../../src/core/run.ts';
import { newRunId, RunLog } from '../../src/core/run.ts';
import { eventObjectKey } from '../../src/core/trigger.ts';
import { crawl } from '../../src/engines/crawler/crawler.ts';
import { blockedResultsOf, checkSummary } from '../../src/engines/quality/checks.ts';
import { CRAWL_DATABASE, LANDING_PREFIX, PIPELINE } from './definition.ts';
import { generateFile, type TollsFileFormat } from './generate.ts';
import { type JobFileResult, runJob } from './job.ts';
import { ensureWarehouseTables, type LoadResult, loadFile } from './load.ts';

/** A new run id (`src/core/run.ts`), re-exported for this pipeline's callers. */
export { newRunId } from '../../src/core/run.ts';

/**
 * Crawls `landing/tolls/` into the catalog table `landing.tolls` (the original's Glue crawler over
 * the landing bucket): columns, types, nullability; a schema change is a new version.
 */
export async function crawlLanding(ctx: PipelineContext, runId: string) {
  const result = await crawl({
    objectStore: ctx.backend.objectStore,
    catalog: ctx.backend.catalog,
    layer: 'landing',
    prefix: '',
    tables: [LANDING_PREFIX.replace(/\/$/, '')],
    database: CRAWL_DATABASE,
    createdBy: runId,
  });
  const table = result.tables[0];
  return {
    table: table ? `${CRAWL_DATABASE}.${table.name}` : null,
    change: table?.change ?? null,
    schema_version: table?.schemaVersion ?? null,
    columns: (table?.columns ?? []).map(
      (c) => `${c.name} ${c.type}${c.nullable === false ? ' NOT NULL' : ''}`,
    ),
    files: table?.files ?? 0,
    skipped: result.skipped.map((s) => ({ key: s.key, reason: s.reason })),
  };
}

/**
 * The job over every landed `tolls/*.json` object of an S3 event; one run-log step per file, with
 * its data-quality checks in `details.checks` (also when a `block` check failed it).
 * @param options.checks checks of `toll_table` to evaluate instead of the definition's (tests).
 */
export async function jobForEvent(
  ctx: PipelineContext,
  event: S3Event,
  runId: string,
  options: { checks?: readonly CheckDefinition[] } = {},
): Promise<JobFileResult[]> {
  const runs = await RunLog.open(ctx.backend.kv, ctx.clock);
  const results: JobFileResult[] = [];
  for (const record of event.Records) {
    const key = eventObjectKey(record);
    if (!key.startsWith(LANDING_PREFIX)) continue;
    const landing: ObjectRef = { layer: 'landing', key };
    const handle = await runs.start({
      runId,
      pipeline: PIPELINE,
      step: 'job',
      unit: key.slice(LANDING_PREFIX.length),
    });
    try {
      const result = await runJob(ctx, {
        landing,
        runId,
        ...(options.checks ? { checks: options.checks } : {}),
      });
      await handle.finish({
        status: 'succeeded',
        counts: result.counts,
        details: {
          sha256: result.sha256,
          staging: result.staging?.key ?? null,
          quarantine: result.quarantine?.key ?? null,
          checks: checkSummary(result.checks),
        },
      });
      results.push(result);
    } catch (error) {
      const blocked = blockedResultsOf(error);
      await handle
        .finish({
          status: 'failed',
          error: (error as Error).message,
          ...(blocked ? { details: { checks: checkSummary(blocked) } } : {}),
        })
        .catch(() => {});
      throw error;
    }
  }
  return results;
}

/** Loads each job result into the warehouse; one run-log step per file (`duplicates` = rows already loaded). */
export async function loadResults(
  ctx: PipelineContext,
  files: readonly Pick<JobFileResult, 'sourceKey' | 'sha256' | 'staging'>[],
  runId: string,
  options: { onPhase?: (phase: 'copied') => void | Promise<void> } = {},
): Promise<LoadResult[]> {
  const runs = await RunLog.open(ctx.backend.kv, ctx.clock);
  const warehouse = await ctx.backend.openWarehouse();
  try {
    await ensureWarehouseTables(warehouse);
    const results: LoadResult[] = [];
    for (const file of files) {
      const handle = await runs.start({
        runId,
        pipeline: PIPELINE,
        step: 'load',
        unit: file.sourceKey.slice(LANDING_PREFIX.length),
      });
      try {
        const result = await loadFile(ctx, warehouse, {
          ...file,
          runId,
          ...(options.onPhase ? { onPhase: options.onPhase } : {}),
        });
        const counts: RecordCounts =
          result.status === 'loaded'
            ? { read: result.rows, loaded: result.rows, duplicates: 0, quarantined: 0 }
            : { read: result.rows, loaded: 0, duplicates: result.rows, quarantined: 0 };
        await handle.finish({
          status: 'succeeded',
          counts,
          details: { status: result.status, previous_run: result.previousRun ?? null },
        });
        results.push(result);
      } catch (error) {
        await handle.finish({ status: 'failed', error: (error as Error).message }).catch(() => {});
        throw error;
      }
    }
    return results;
  } finally {
    await warehouse.close();
  }
}

function jobJson(result: JobFileResult): JsonValue {
  return {
    source_key: result.sourceKey,
    sha256: result.sha256,
    staging_key: result.staging?.key ?? null,
    quarantine_key: result.quarantine?.key ?? null,
    counts: { ...result.counts },
  };
}

function filesOf(event: JsonValue): Pick<JobFileResult, 'sourceKey' | 'sha256' | 'staging'>[] {
  const files = (event as { files?: unknown } | null)?.files;
  if (!Array.isArray(files))
    throw new TypeError('tolls-load expects {"files": [{"source_key", "sha256", "staging_key"}]}');
  return files.map((f, i) => {
    const file = f as { source_key?: unknown; sha256?: unknown; staging_key?: unknown };
    if (typeof file.source_key !== 'string' || typeof file.sha256 !== 'string') {
      throw new TypeError(`tolls-load files[${i}] needs source_key and sha256`);
    }
    return {
      sourceKey: file.source_key,
      sha256: file.sha256,
      ...(typeof file.staging_key === 'string'
        ? { staging: { layer: 'staging' as const, key: file.staging_key } }
        : {}),
    };
  });
}

/**
 * The tolls functions (Lambda signature):
 * - `tolls-generate` `{count?, seed?, format?}`: writes a file of fake transactions into landing
 *   (its object-created notification starts `tolls-load`);
 * - `tolls-crawl` (S3 event): crawls `landing/tolls/` into `landing.tolls`;
 * - `tolls-job` (S3 event in `$`): stages each landed file -> `{files: [...]}`;
 * - `tolls-load` `{files}`: COPYs each staged file into `toll_table`, once per content.
 */
export function tollsHandlers(runtime: PipelineRuntime): Record<string, FunctionHandler> {
  const { ctx } = runtime;
  return {
    'tolls-generate': async (event) => {
      const e = (event ?? {}) as { count?: unknown; seed?: unknown; format?: unknown };
      const result = await generateFile(ctx, {
        count: typeof e.count === 'number' ? e.count : 100,
        format: e.format === 'ndjson' ? 'ndjson' : ('python-dict' satisfies TollsFileFormat),
        ...(typeof e.seed === 'number' ? { seed: e.seed } : {}),
      });
      return { key: result.info.key, transactions: result.transactions, bytes: result.info.size };
    },
    'tolls-crawl': async () => crawlLanding(ctx, newRunId(ctx.clock.now())),
    'tolls-job': async (event) => {
      const records = (event as unknown as S3Event | null)?.Records;
      if (!Array.isArray(records))
        throw new TypeError('tolls-job expects an S3 event: { "Records": [ ... ] }');
      const runId = newRunId(ctx.clock.now());
      const results = await jobForEvent(ctx, { Records: records }, runId);
      return { run_id: runId, files: results.map(jobJson) };
    },
    'tolls-load': async (event) => {
      const runId = newRunId(ctx.clock.now());
      const results = await loadResults(ctx, filesOf(event), runId);
      return {
        run_id: runId,
        loaded: results.map((r) => ({
          source_key: r.sourceKey,
          status: r.status,
          rows: r.rows,
          previous_run: r.previousRun ?? null,
        })),
      };
    },
  };
}
