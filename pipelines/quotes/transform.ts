import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { PipelineContext } from '../../src/core/context.ts';
import { describeError, StepError, UsageError } from '../../src/core/errors.ts';
import { Lease } from '../../src/core/lease.ts';
import type { KvTable, Page } from '../../src/core/ports/kv-table.ts';
import { allPages } from '../../src/core/ports/kv-table.ts';
import { type CheckResult, QualityBlockedError, type QualityMetric } from '../../src/core/quality.ts';
import { RunLog } from '../../src/core/run.ts';
import { writeDatasetUnit } from '../../src/engines/duckdb/dataset-writer.ts';
import { DuckDb, quoteString } from '../../src/engines/duckdb/duckdb.ts';
import {
  blockedResultsOf,
  checkSummary,
  type EvaluateChecksResult,
  evaluateChecks,
  tableChecks,
} from '../../src/engines/quality/checks.ts';
import { recordMetrics, recordResults } from '../../src/engines/quality/store.ts';
import { isDay, PIPELINE, quotesAggDataset, quotesFactDataset, quotesPipeline } from './definition.ts';
import { newRunId, openRawTable } from './poll.ts';

/** Lease held while a transform writes the quotes datasets. */
export const DATASETS_LEASE = `dataset:${PIPELINE}`;

/** Options of {@link transformDay}. */
export interface TransformDayOptions {
  /** The ingested date, `YYYY-MM-DD` (UTC). */
  readonly date: string;
  readonly runId?: string;
  /** Items per page read from `quotes_raw` (default: the backend's page size, 1,000 locally). */
  readonly pageSize?: number;
  /**
   * How long to wait for another transform holding the datasets' lease, ms (default 0: fail at
   * once with `LeaseHeldError`, for the workflow's Retry).
   */
  readonly leaseWaitMs?: number;
  /** The raw table (tests inject a failing one). Default `quotes_raw`. */
  readonly rawTable?: KvTable;
}

/** The original's statistics of a day's `quote_count` distribution (`transform_quotes.py`). */
export interface QuoteStatistics {
  /** The most drawn quote (ties: the one drawn first that day, then the smaller id). */
  readonly topQuote: {
    readonly quoteId: string;
    readonly quoteText: string | null;
    readonly author: string | null;
    readonly quoteCount: number;
  };
  readonly min: number;
  readonly max: number;
  /** max - min (numpy `ptp`). */
  readonly range: number;
  /** Population variance (numpy `var`, ddof = 0; DuckDB `var_pop`). */
  readonly variance: number;
  /** Population standard deviation (numpy `std`, ddof = 0; DuckDB `stddev_pop`). */
  readonly standardDeviation: number;
  /** Rows of `quotes_agg` (the original's `len(quote_distribution)`). */
  readonly distinctQuotes: number;
  /** Rows of `quotes_fact`: polls stored that day. */
  readonly polls: number;
}

/** A table written by {@link transformDay}. */
export interface WrittenTable {
  readonly table: string;
  readonly rows: number;
  /** Partition prefix in the analytical layer, e.g. `quotes/quotes_fact/dt=2024-01-01/`. */
  readonly partition: string;
  readonly files: readonly string[];
  readonly bytes: number;
  readonly schemaVersion: number;
}

/** What {@link transformDay} did. */
export type TransformDayResult =
  | {
      readonly status: 'empty';
      readonly date: string;
      readonly runId: string;
      readonly rawRows: 0;
      readonly pages: number;
      readonly message: string;
    }
  | {
      readonly status: 'published';
      readonly date: string;
      readonly runId: string;
      readonly rawRows: number;
      /** Pages of `quotes_raw` read (every page: the original read only the first). */
      readonly pages: number;
      readonly fact: WrittenTable;
      readonly agg: WrittenTable;
      readonly statistics: QuoteStatistics;
      readonly metrics: readonly QualityMetric[];
      readonly checks: readonly CheckResult[];
    };

/** DuckDB types of the `quotes_raw` attributes, so an all-empty attribute keeps its type. */
const RAW_COLUMNS: Readonly<Record<string, string>> = {
  ingested_date: 'DATE',
  ingested_at: 'TIMESTAMP',
  quote_id: 'VARCHAR',
  content: 'VARCHAR',
  author: 'VARCHAR',
  tag_list: 'VARCHAR[]',
  author_slug: 'VARCHAR',
  character_count: 'INTEGER',
  added_date: 'DATE',
  modified_date: 'DATE',
};

/** The original's `quotes_fact` (transform_sql.py), over the raw table loaded as `quotes`. */
export const QUOTES_FACT_SQL = `SELECT
    quote_id,
    content AS quote_text,
    author,
    author_slug,
    tag_list,
    character_count,
    added_date,
    modified_date,
    ingested_date,
    ingested_at
FROM quotes`;

/**
 * The original's `quotes_agg` over `source` (default `quotes_fact`), with the list of ingestion
 * times sorted and a deterministic order among equal counts (the original's was arbitrary).
 */
export function quotesAggSql(source = 'quotes_fact'): string {
  return `SELECT
    quote_id,
    quote_text,
    author,
    count(quote_id) AS quote_count,
    min(ingested_at) AS first_ingestion,
    max(ingested_at) AS last_ingestion,
    array_agg(ingested_at ORDER BY ingested_at) AS ingestion_dates
FROM ${source}
GROUP BY quote_id, quote_text, author
ORDER BY quote_count DESC, first_ingestion, quote_id`;
}

/**
 * The daily transform (the original's `transform_quotes`): reads EVERY page of `date`'s partition
 * of `quotes_raw`, loads it into DuckDB, builds `quotes_fact` and `quotes_agg` with the original's
 * SQL, evaluates the pipeline's checks on both (a failing `block` check publishes nothing of the
 * day), replaces the day's partition `dt=<date>` of both tables with Snappy Parquet in the
 * analytical layer (write disposition `replace`: a re-run replaces the day, nothing else), catalogs
 * them, and records the day's statistics in `sluice.quality_metrics`.
 *
 * A day that has not ended yet is refused (it would publish a partial day); a day without polls
 * publishes nothing and leaves what was published for it before.
 *
 * @throws {UsageError} for a malformed date or a day not over yet by the context's clock.
 * @throws {QualityBlockedError} when a `block` check fails (nothing of the day is published).
 * @throws {LeaseHeldError} when another transform holds the datasets (after `leaseWaitMs`).
 */
export async function transformDay(
  ctx: PipelineContext,
  options: TransformDayOptions,
): Promise<TransformDayResult> {
  const { date } = options;
  checkDayOver(date, ctx.clock.now());
  const runId = options.runId ?? newRunId(ctx.clock.now());
  const lease = await Lease.acquire(
    ctx.backend.kv,
    DATASETS_LEASE,
    { id: runId, host: os.hostname(), pid: process.pid },
    { clock: ctx.clock, isAlive: ctx.backend.isAlive, waitMs: options.leaseWaitMs ?? 0 },
  );
  let work: string | undefined;
  let db: DuckDb | undefined;
  try {
    await mkdir(ctx.workDir, { recursive: true });
    work = await mkdtemp(path.join(ctx.workDir, 'quotes-transform-'));
    const rawFile = path.join(work, `quotes_raw-${date}.ndjson`);
    const { rows: rawRows, pages } = await dumpDay(
      options.rawTable ?? (await openRawTable(ctx)),
      date,
      rawFile,
      {
        ...(options.pageSize !== undefined ? { pageSize: options.pageSize } : {}),
      },
    );
    if (rawRows === 0) {
      return {
        status: 'empty',
        date,
        runId,
        rawRows: 0,
        pages,
        message: `no polls stored for ${date} in quotes_raw: nothing published (quotes_fact and quotes_agg keep what they had for that day)`,
      };
    }

    db = await DuckDb.open({
      ...(ctx.engine.threads !== undefined ? { threads: ctx.engine.threads } : {}),
      memoryLimit: ctx.engine.memoryLimit ?? '512MB',
      tempDirectory: path.join(work, 'duckdb-tmp'),
    });
    const columns = Object.entries(RAW_COLUMNS)
      .map(([name, type]) => `${name}: ${quoteString(type)}`)
      .join(', ');
    await db.run(
      `CREATE TABLE quotes AS SELECT * FROM read_json(${quoteString(rawFile)}, format = 'newline_delimited', columns = {${columns}})`,
    );
    // Checks on the rows about to be published, before anything is written: the fact first (the
    // aggregate is built from the rows that pass it), then the aggregate. A failed block check on
    // either publishes nothing of the day.
    await db.run(`CREATE TABLE quotes_fact AS ${QUOTES_FACT_SQL}`);
    const factChecks = await checkTable(ctx, db, 'quotes_fact', quotesFactDataset.name, runId, date);
    await db.run(`CREATE TABLE quotes_agg AS ${quotesAggSql(factChecks.passed)}`);
    const aggChecks = await checkTable(ctx, db, 'quotes_agg', quotesAggDataset.name, runId, date);
    const checks = [...factChecks.results, ...aggChecks.results];
    await recordResults(ctx.backend, checks);
    if (factChecks.blocked || aggChecks.blocked) {
      const failed = checks.filter((r) => r.severity === 'block' && r.status === 'fail');
      throw new QualityBlockedError(
        `data-quality check${failed.length === 1 ? '' : 's'} with severity block failed on quotes ${date}: ${failed
          .map((r) => `${r.table}.${r.check}: ${r.detail ?? `${r.failingRows} of ${r.rows} rows fail`}`)
          .join('; ')}. Nothing of the day was published; the data published before stays as it was`,
        checks,
      );
    }
    for (const evaluated of [factChecks, aggChecks]) {
      if (evaluated.quarantinedRows > 0) {
        // Not reachable with the declared checks (warn and block only); refuse rather than drop rows.
        throw new Error(
          `${evaluated.quarantinedRows} rows failed a quarantine check, but the quotes transform has no quarantine destination: declare such checks warn or block`,
        );
      }
    }

    const partitionValue = quoteString(date);
    await db.run(`CREATE VIEW fact_out AS SELECT *, ${partitionValue} AS dt FROM quotes_fact`);
    await db.run(`CREATE VIEW agg_out AS SELECT *, ${partitionValue} AS dt FROM quotes_agg`);
    const fact = await writeTable(ctx, db, 'fact_out', quotesFactDataset, date, runId);
    const agg = await writeTable(ctx, db, 'agg_out', quotesAggDataset, date, runId);

    const statistics = await statisticsOf(db);
    const at = ctx.clock.now().toISOString();
    const metrics = metricsOf(statistics, { runId, unit: date, at });
    await recordMetrics(ctx.backend, metrics);
    return { status: 'published', date, runId, rawRows, pages, fact, agg, statistics, metrics, checks };
  } finally {
    db?.close();
    if (work) await rm(work, { recursive: true, force: true });
    await lease.release();
  }
}

/**
 * Refuses a malformed date, and a day that has not ended by `now` (its polls are still coming:
 * transforming it would publish a partial day).
 * @throws {UsageError}
 */
export function checkDayOver(date: string, now: Date): void {
  if (!isDay(date)) throw new UsageError(`date "${date}" is not a YYYY-MM-DD day`);
  const dayEnd = Date.parse(`${date}T00:00:00.000Z`) + 86_400_000;
  if (now.getTime() < dayEnd) {
    throw new UsageError(
      `${date} is not over yet (it ends at ${new Date(dayEnd).toISOString()}): transforming it now would publish a partial day`,
    );
  }
}

/**
 * Writes every item of `date`'s partition of `quotes_raw` to `file` as NDJSON, page by page (every
 * page: DynamoDB answers at most 1 MB per query, and the original read only the first).
 */
export async function dumpDay(
  table: KvTable,
  date: string,
  file: string,
  options: { pageSize?: number } = {},
): Promise<{ rows: number; pages: number }> {
  const handle = await open(file, 'w');
  let rows = 0;
  let pages = 0;
  const read = async (cursor: string | undefined): Promise<Page> => {
    pages++;
    return table.query(date, {
      ...(options.pageSize !== undefined ? { limit: options.pageSize } : {}),
      ...(cursor !== undefined ? { cursor } : {}),
    });
  };
  try {
    let lines: string[] = [];
    for await (const item of allPages(read)) {
      lines.push(JSON.stringify(item));
      rows++;
      if (lines.length >= 1000) {
        await handle.write(`${lines.join('\n')}\n`);
        lines = [];
      }
    }
    if (lines.length > 0) await handle.write(`${lines.join('\n')}\n`);
  } finally {
    await handle.close();
  }
  return { rows, pages };
}

/** Evaluates the pipeline's checks of `table` on `relation` (the day's rows). */
function checkTable(
  ctx: PipelineContext,
  db: DuckDb,
  relation: string,
  table: string,
  runId: string,
  date: string,
): Promise<EvaluateChecksResult> {
  return evaluateChecks({
    db,
    relation,
    checks: tableChecks(quotesPipeline, table),
    pipeline: PIPELINE,
    table,
    runId,
    unit: date,
    now: ctx.clock.now(),
  });
}

async function writeTable(
  ctx: PipelineContext,
  db: DuckDb,
  relation: string,
  dataset: typeof quotesFactDataset,
  date: string,
  runId: string,
): Promise<WrittenTable> {
  const written = await writeDatasetUnit({
    db,
    relation,
    dataset,
    unit: date,
    runId,
    objectStore: ctx.backend.objectStore,
    catalog: ctx.backend.catalog,
  });
  const partition = written.partitions[0];
  return {
    table: `${dataset.pipeline}.${dataset.name}`,
    rows: written.loaded,
    partition: partition?.prefix ?? '',
    files: (partition?.files ?? []).map((f) => f.key),
    bytes: (partition?.files ?? []).reduce((sum, f) => sum + f.bytes, 0),
    schemaVersion: written.schemaVersion,
  };
}

/** The statistics of `quotes_agg` (population variance and deviation, as numpy's defaults). */
async function statisticsOf(db: DuckDb): Promise<QuoteStatistics> {
  const { rows } = await db.all(
    `SELECT count(*) AS distinct_quotes, sum(quote_count) AS polls,
       min(quote_count) AS min, max(quote_count) AS max, max(quote_count) - min(quote_count) AS range,
       var_pop(quote_count) AS variance, stddev_pop(quote_count) AS stddev
     FROM quotes_agg`,
  );
  const top = (
    await db.all(
      `SELECT quote_id, quote_text, author, quote_count FROM quotes_agg
       ORDER BY quote_count DESC, first_ingestion, quote_id LIMIT 1`,
    )
  ).rows[0];
  const s = rows[0];
  if (!s || !top) throw new Error('quotes_agg is empty');
  return {
    topQuote: {
      quoteId: String(top.quote_id),
      quoteText: top.quote_text === null ? null : String(top.quote_text),
      author: top.author === null ? null : String(top.author),
      quoteCount: Number(top.quote_count),
    },
    min: Number(s.min),
    max: Number(s.max),
    range: Number(s.range),
    variance: Number(s.variance),
    standardDeviation: Number(s.stddev),
    distinctQuotes: Number(s.distinct_quotes),
    polls: Number(s.polls),
  };
}

/** The statistics as rows of `sluice.quality_metrics` (pipeline quotes, table quotes_agg). */
export function metricsOf(
  statistics: QuoteStatistics,
  context: { runId: string; unit: string; at: string },
): QualityMetric[] {
  const base = { pipeline: PIPELINE, table: quotesAggDataset.name, ...context };
  const numeric = (metric: string, value: number): QualityMetric => ({ ...base, metric, value });
  return [
    { ...base, metric: 'top_quote', value: null, text: statistics.topQuote.quoteText ?? '' },
    { ...base, metric: 'top_quote_author', value: null, text: statistics.topQuote.author ?? '' },
    { ...base, metric: 'top_quote_id', value: null, text: statistics.topQuote.quoteId },
    numeric('quote_count_min', statistics.min),
    numeric('quote_count_max', statistics.max),
    numeric('quote_count_range', statistics.range),
    numeric('quote_count_variance', statistics.variance),
    numeric('quote_count_stddev', statistics.standardDeviation),
    numeric('distinct_quotes', statistics.distinctQuotes),
    numeric('polls', statistics.polls),
  ];
}

/**
 * {@link transformDay} recorded in the run log as step `transform` of `date`: `succeeded` with the
 * counts (read raw rows = loaded fact rows), `skipped` for a day without polls, `failed` with the
 * error (rethrown as a {@link StepError} named after its cause, e.g. `QualityBlockedError`).
 * A malformed date or a day not over yet is refused before anything is recorded ({@link UsageError}).
 */
export async function transformStep(
  ctx: PipelineContext,
  options: TransformDayOptions,
): Promise<TransformDayResult> {
  checkDayOver(options.date, ctx.clock.now());
  const runId = options.runId ?? newRunId(ctx.clock.now());
  const runs = await RunLog.open(ctx.backend.kv, ctx.clock);
  const handle = await runs.start({ runId, pipeline: PIPELINE, step: 'transform', unit: options.date });
  try {
    const result = await transformDay(ctx, { ...options, runId });
    if (result.status === 'empty') {
      await handle.finish({
        status: 'skipped',
        counts: { read: 0, loaded: 0, duplicates: 0, quarantined: 0 },
        details: { reason: result.message, pages: result.pages },
      });
      ctx.logger.warn({ pipeline: PIPELINE, runId, date: options.date }, result.message);
      return result;
    }
    await handle.finish({
      status: 'succeeded',
      counts: { read: result.rawRows, loaded: result.fact.rows, duplicates: 0, quarantined: 0 },
      details: {
        pages: result.pages,
        partitions: [result.fact.partition, result.agg.partition],
        agg_rows: result.agg.rows,
        checks: checkSummary(result.checks),
        statistics: {
          top_quote: result.statistics.topQuote.quoteText,
          top_quote_author: result.statistics.topQuote.author,
          top_quote_count: result.statistics.topQuote.quoteCount,
          min: result.statistics.min,
          max: result.statistics.max,
          range: result.statistics.range,
          variance: result.statistics.variance,
          stddev: result.statistics.standardDeviation,
          distinct_quotes: result.statistics.distinctQuotes,
        },
      },
    });
    ctx.logger.info(
      { pipeline: PIPELINE, runId, date: options.date, rows: result.rawRows, pages: result.pages },
      'day transformed',
    );
    return result;
  } catch (error) {
    const wrapped = new StepError(
      { pipeline: PIPELINE, step: 'transform', runId, unit: options.date },
      error,
      "Each table's partition is replaced atomically; re-running the day converges",
    );
    const blocked = blockedResultsOf(error);
    await handle
      .finish({
        status: 'failed',
        error: describeError(wrapped),
        ...(blocked ? { details: { checks: checkSummary(blocked) } } : {}),
      })
      .catch(() => {});
    ctx.logger.error(
      { pipeline: PIPELINE, runId, date: options.date, err: describeError(error) },
      'transform failed',
    );
    throw wrapped;
  }
}
