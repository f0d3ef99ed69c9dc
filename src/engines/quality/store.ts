import { createHash } from 'node:crypto';
import os from 'node:os';
import { systemClock } from '../../core/clock.ts';
import type { DatasetDefinition } from '../../core/dataset.ts';
import { Lease, type LivenessProbe } from '../../core/lease.ts';
import type { Catalog } from '../../core/ports/catalog.ts';
import type { KvStore } from '../../core/ports/kv-table.ts';
import type { ObjectStore } from '../../core/ports/object-store.ts';
import type { CheckResult, QualityMetric } from '../../core/quality.ts';
import type { Column } from '../../core/schema.ts';
import { writeDatasetUnit } from '../duckdb/dataset-writer.ts';
import { DuckDb, quoteIdent, quoteString } from '../duckdb/duckdb.ts';

/** Catalog database of sluice's own tables (a pseudo-pipeline `sluice`). */
export const SLUICE_DATABASE = 'sluice';

const byDay: Column[] = [
  { name: 'year', type: 'int' },
  { name: 'month', type: 'int' },
  { name: 'day', type: 'int' },
];

/** `sluice.quality_results`: one row per check evaluated, by UTC date of `checked_at`. */
export const qualityResultsDataset: DatasetDefinition = {
  pipeline: SLUICE_DATABASE,
  name: 'quality_results',
  layer: 'analytical',
  format: 'parquet',
  description: 'data-quality check results: one row per check per evaluated unit',
  columns: [
    { name: 'pipeline', type: 'string', nullable: false },
    { name: 'table_name', type: 'string', nullable: false },
    { name: 'run_id', type: 'string', nullable: false },
    { name: 'unit', type: 'string', comment: 'the write unit checked (an hour file, a date), when any' },
    { name: 'check_name', type: 'string', nullable: false },
    { name: 'kind', type: 'string', nullable: false },
    { name: 'severity', type: 'string', nullable: false, comment: 'warn | quarantine | block' },
    { name: 'status', type: 'string', nullable: false, comment: 'pass | fail' },
    {
      name: 'failing_rows',
      type: 'bigint',
      nullable: false,
      comment: 'rows failing a row-level check; 0 or 1 for a table-level one',
    },
    { name: 'rows_checked', type: 'bigint', nullable: false },
    { name: 'action', type: 'string', nullable: false, comment: 'none | warned | quarantined | blocked' },
    {
      name: 'detail',
      type: 'string',
      comment: 'what was observed (examples, the row count, the newest time)',
    },
    { name: 'checked_at', type: 'timestamp', nullable: false, comment: 'evaluation time, UTC' },
  ],
  partitionKeys: byDay,
  writeDisposition: 'append',
};

/** `sluice.quality_metrics`: per-run statistics of a table, by UTC date of `checked_at`. */
export const qualityMetricsDataset: DatasetDefinition = {
  pipeline: SLUICE_DATABASE,
  name: 'quality_metrics',
  layer: 'analytical',
  format: 'parquet',
  description: 'per-run data-quality metrics: one row per metric of a table in a run',
  columns: [
    { name: 'pipeline', type: 'string', nullable: false },
    { name: 'table_name', type: 'string', nullable: false },
    { name: 'run_id', type: 'string', nullable: false },
    { name: 'unit', type: 'string' },
    { name: 'metric', type: 'string', nullable: false },
    { name: 'value', type: 'double', comment: 'NULL for a text-only metric' },
    { name: 'text', type: 'string' },
    { name: 'measured_at', type: 'timestamp', nullable: false, comment: 'UTC' },
  ],
  partitionKeys: byDay,
  writeDisposition: 'append',
};

/**
 * The ports the quality tables are written with. Pass the backend (`ctx.backend`): with its
 * key-value store and liveness probe, writers in different processes take turns (a lease per
 * table); without, only writers in this process do.
 */
export interface QualityStorePorts {
  readonly objectStore: ObjectStore;
  readonly catalog: Catalog;
  readonly kv?: KvStore;
  readonly isAlive?: LivenessProbe;
}

/**
 * Appends check results to `sluice.quality_results` (Parquet in the analytical layer, by date of
 * `at`, cataloged). One call is one write unit named after the run, the table and a hash of the
 * results without their times: a retried call with the same outcome replaces its rows instead of
 * adding them twice. Nothing is written for an empty list.
 */
export async function recordResults(
  ports: QualityStorePorts,
  results: readonly CheckResult[],
): Promise<void> {
  if (results.length === 0) return;
  const rows = results.map((r) => ({
    pipeline: r.pipeline,
    table_name: r.table,
    run_id: r.runId,
    unit: r.unit ?? null,
    check_name: r.check,
    kind: r.kind,
    severity: r.severity,
    status: r.status,
    failing_rows: r.failingRows,
    rows_checked: r.rows,
    action: r.action,
    detail: r.detail ?? null,
    checked_at: r.at,
  }));
  await writeRows(ports, qualityResultsDataset, rows);
}

/**
 * Appends metrics to `sluice.quality_metrics`, as {@link recordResults} does results (one write
 * unit per call, replaced by a retried call with the same metrics).
 */
export async function recordMetrics(
  ports: QualityStorePorts,
  metrics: readonly QualityMetric[],
): Promise<void> {
  if (metrics.length === 0) return;
  const rows = metrics.map((m) => ({
    pipeline: m.pipeline,
    table_name: m.table,
    run_id: m.runId,
    unit: m.unit ?? null,
    metric: m.metric,
    value: m.value,
    text: m.text ?? null,
    measured_at: m.at,
  }));
  await writeRows(ports, qualityMetricsDataset, rows);
}

type Row = Record<string, string | number | null>;

/** Writers of this process, one at a time per table (the catalog registration lists the partition). */
const queues = new Map<string, Promise<unknown>>();

async function writeRows(
  ports: QualityStorePorts,
  dataset: DatasetDefinition,
  rows: readonly Row[],
): Promise<void> {
  const key = `${dataset.pipeline}.${dataset.name}`;
  const previous = queues.get(key) ?? Promise.resolve();
  const next = previous.catch(() => undefined).then(() => writeLeased(ports, dataset, rows));
  queues.set(key, next);
  try {
    await next;
  } finally {
    if (queues.get(key) === next) queues.delete(key);
  }
}

async function writeLeased(
  ports: QualityStorePorts,
  dataset: DatasetDefinition,
  rows: readonly Row[],
): Promise<void> {
  const first = rows[0]!;
  const runId = String(first.run_id);
  const tables = [...new Set(rows.map((r) => String(r.table_name)))];
  const content = createHash('sha256')
    .update(JSON.stringify(rows.map(({ checked_at: _c, measured_at: _m, ...rest }) => rest)))
    .digest('hex')
    .slice(0, 12);
  const unit = `${runId}-${tables.length === 1 ? tables[0] : 'tables'}-${content}`.replace(
    /[^A-Za-z0-9.=-]+/g,
    '-',
  );
  const lease = ports.kv
    ? await Lease.acquire(
        ports.kv,
        `dataset:${dataset.pipeline}.${dataset.name}`,
        { id: `${runId}:${unit}`, host: os.hostname(), pid: process.pid },
        { clock: systemClock, waitMs: 60_000, ...(ports.isAlive ? { isAlive: ports.isAlive } : {}) },
      )
    : undefined;
  const db = await DuckDb.open({ threads: 1, memoryLimit: '256MB' });
  try {
    // The time column the date partitions come from (`checked_at` / `measured_at`).
    const timeColumn = dataset.columns.find((c) => c.type === 'timestamp')?.name ?? 'checked_at';
    const columns = dataset.columns.map((c) => quoteIdent(c.name));
    const values = rows
      .map(
        (row) =>
          `(${dataset.columns
            .map((c) => {
              const v = row[c.name];
              if (v === null || v === undefined) return 'NULL';
              if (c.type === 'timestamp')
                return `CAST(CAST(${quoteString(String(v))} AS TIMESTAMPTZ) AS TIMESTAMP)`;
              if (c.type === 'double') return `CAST(${quoteString(String(v))} AS DOUBLE)`;
              if (c.type === 'bigint') return `CAST(${quoteString(String(v))} AS BIGINT)`;
              return quoteString(String(v));
            })
            .join(', ')})`,
      )
      .join(',\n');
    await db.run(
      `CREATE TABLE quality_rows AS SELECT * FROM (VALUES ${values}) AS v(${columns.join(', ')});
       CREATE VIEW quality_unit AS SELECT *, strftime(${quoteIdent(timeColumn)}, '%Y') AS year,
         strftime(${quoteIdent(timeColumn)}, '%m') AS month, strftime(${quoteIdent(timeColumn)}, '%d') AS day FROM quality_rows`,
    );
    await writeDatasetUnit({
      db,
      relation: 'quality_unit',
      dataset,
      unit,
      runId,
      objectStore: ports.objectStore,
      catalog: ports.catalog,
    });
  } finally {
    db.close();
    await lease?.release();
  }
}
