import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import type { PipelineContext } from '../../src/core/context.ts';
import type { JsonValue } from '../../src/core/ports/kv-table.ts';
import type { LocalObjectFile } from '../../src/core/ports/object-store.ts';
import type { SqlValue } from '../../src/core/ports/query-engine.ts';
import { bindNamedQuery } from '../../src/core/query.ts';
import type { RecordCounts } from '../../src/core/run.ts';
import { reconcile } from '../../src/core/run.ts';
import { writeDatasetUnit } from '../../src/engines/duckdb/dataset-writer.ts';
import { DuckDb, quoteString } from '../../src/engines/duckdb/duckdb.ts';
import {
  hashtagDataDataset,
  hashtagsQueries,
  PIPELINE,
  stagingDataset,
  updateLogDataset,
} from './definition.ts';
import { withDatasetLease } from './staging.ts';

/** Result of {@link loadAnalytical}. */
export interface AnalyticalResult {
  readonly runId: string;
  /** `read` staging rows = `loaded` new rows + `duplicates` (hash_id already in hashtag_data). */
  readonly counts: RecordCounts;
  readonly partitions: readonly string[];
}

/**
 * Staging -> analytical (REFERENCE.md section 1): appends the rows of `hashtags.staging` whose
 * `hash_id` is not yet in `hashtags.hashtag_data` (merge on the primary key, so re-loading a
 * batch inserts nothing twice), as Snappy Parquet by year/month/day, and registers the partitions.
 * Reads only the staging partitions registered in the catalog. With an empty staging it writes
 * nothing (the original appends only when staging has rows).
 */
export async function loadAnalytical(
  ctx: PipelineContext,
  input: { runId: string },
): Promise<AnalyticalResult> {
  return withDatasetLease(ctx, `dataset:${PIPELINE}.${hashtagDataDataset.name}`, input.runId, async () => {
    const { objectStore, catalog } = ctx.backend;
    const partitions = await catalog.listPartitions(PIPELINE, stagingDataset.name);
    const files = partitions.flatMap((p) => p.files.map((f) => f.key));
    if (files.length === 0) {
      return {
        runId: input.runId,
        counts: { read: 0, loaded: 0, duplicates: 0, quarantined: 0 },
        partitions: [],
      };
    }
    await mkdir(ctx.workDir, { recursive: true });
    const work = await mkdtemp(path.join(ctx.workDir, 'hashtags-analytical-'));
    const opened: LocalObjectFile[] = [];
    const db = await DuckDb.open({
      ...(ctx.engine.threads !== undefined ? { threads: ctx.engine.threads } : {}),
      memoryLimit: ctx.engine.memoryLimit ?? '512MB',
      tempDirectory: path.join(work, 'duckdb-tmp'),
    });
    try {
      for (const key of files) opened.push(await objectStore.localPath({ layer: 'staging', key }));
      await db.run(
        `CREATE VIEW staged AS SELECT * EXCLUDE (year, month, day),
           lpad(CAST(year AS VARCHAR), 4, '0') AS year, lpad(CAST(month AS VARCHAR), 2, '0') AS month,
           lpad(CAST(day AS VARCHAR), 2, '0') AS day
         FROM read_parquet([${opened.map((f) => quoteString(f.path)).join(', ')}], hive_partitioning = true, hive_types_autocast = false)`,
      );
      const read = Number(await db.scalar('SELECT count(*) FROM staged'));
      const written = await writeDatasetUnit({
        db,
        relation: 'staged',
        dataset: hashtagDataDataset,
        unit: input.runId,
        runId: input.runId,
        objectStore,
        catalog,
      });
      const counts: RecordCounts = {
        read,
        loaded: written.loaded,
        duplicates: written.duplicates,
        quarantined: 0,
      };
      reconcile(counts);
      return { runId: input.runId, counts, partitions: written.partitions.map((p) => p.prefix) };
    } finally {
      db.close();
      for (const file of opened) await file.release();
      await rm(work, { recursive: true, force: true });
    }
  });
}

/**
 * Appends `(time_stamp, table_name, records_inserted, run_id)` to `hashtags.data_update_log`
 * (partitioned by the UTC date of `time_stamp`). The write unit is `<runId>-<table>`, so a retried
 * log call replaces its own row instead of adding a second.
 */
export async function logUpdate(
  ctx: PipelineContext,
  input: { runId: string; tableName: string; recordsInserted: number },
): Promise<{ time_stamp: string; table_name: string; records_inserted: number }> {
  if (!/^[a-z_]+$/.test(input.tableName)) throw new Error(`table name "${input.tableName}" must be [a-z_]+`);
  const at = ctx.clock.now();
  return withDatasetLease(ctx, `dataset:${PIPELINE}.${updateLogDataset.name}`, input.runId, async () => {
    const db = await DuckDb.open({ threads: 1 });
    try {
      const iso = at.toISOString();
      await db.run(
        `CREATE VIEW log_row AS SELECT CAST(${quoteString(iso.replace('T', ' ').replace('Z', ''))} AS TIMESTAMP) AS time_stamp,
           ${quoteString(input.tableName)} AS table_name, CAST(${Math.trunc(input.recordsInserted)} AS BIGINT) AS records_inserted,
           ${quoteString(input.runId)} AS run_id,
           ${quoteString(iso.slice(0, 4))} AS year, ${quoteString(iso.slice(5, 7))} AS month, ${quoteString(iso.slice(8, 10))} AS day`,
      );
      await writeDatasetUnit({
        db,
        relation: 'log_row',
        dataset: updateLogDataset,
        unit: `${input.runId}-${input.tableName.replaceAll('_', '-')}`,
        runId: input.runId,
        objectStore: ctx.backend.objectStore,
        catalog: ctx.backend.catalog,
      });
      return { time_stamp: iso, table_name: input.tableName, records_inserted: input.recordsInserted };
    } finally {
      db.close();
    }
  });
}

/** Key-value table of dashboard snapshots: one item per pipeline. */
export const DASHBOARD_TABLE = 'sluice_dashboards';

/**
 * Refreshes the dashboard snapshot (the original refreshed its BI dataset): runs the pipeline's
 * named queries with their defaults and stores their rows in `sluice_dashboards`
 * (`{pipeline, refreshed_at, queries: {top_hashtags: [...], ...}}`), so a dashboard reads one item
 * instead of scanning the lake.
 */
export async function refreshDashboard(
  ctx: PipelineContext,
): Promise<{ refreshed_at: string; rows: number }> {
  const engine = await ctx.backend.openQueryEngine();
  const queries: { [name: string]: JsonValue } = {};
  let rows = 0;
  try {
    for (const query of hashtagsQueries) {
      const result = await engine.query(bindNamedQuery(query));
      queries[query.name] = result.rows.map((row) => jsonOf(row));
      rows += result.rows.length;
    }
  } finally {
    await engine.close();
  }
  const refreshedAt = ctx.clock.now().toISOString();
  const table = await ctx.backend.kv.table(DASHBOARD_TABLE, { hashKey: { name: 'pipeline', type: 'S' } });
  await table.put({ pipeline: PIPELINE, refreshed_at: refreshedAt, queries });
  return { refreshed_at: refreshedAt, rows };
}

/** A query value as JSON: bigints as numbers when exact, else decimal strings. */
function jsonOf(value: SqlValue): JsonValue {
  if (typeof value === 'bigint') {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
      ? Number(value)
      : value.toString();
  }
  if (Array.isArray(value)) return value.map(jsonOf);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonOf(v)]));
  }
  return value;
}
