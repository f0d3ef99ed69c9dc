import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { DuckDBAppender } from '@duckdb/node-api';
import { parse } from 'csv-parse';
import type { PipelineContext } from '../../src/core/context.ts';
import { datasetPrefix, tableDefinitionOf } from '../../src/core/dataset.ts';
import { Lease } from '../../src/core/lease.ts';
import type { ObjectInfo } from '../../src/core/ports/object-store.ts';
import type { CheckDefinition, CheckResult } from '../../src/core/quality.ts';
import type { RecordCounts } from '../../src/core/run.ts';
import { reconcile } from '../../src/core/run.ts';
import { writeDatasetUnit } from '../../src/engines/duckdb/dataset-writer.ts';
import { DuckDb } from '../../src/engines/duckdb/duckdb.ts';
import { stringifyJson } from '../../src/engines/duckdb/values.ts';
import { evaluateChecks, REASON_COLUMN, tableChecks } from '../../src/engines/quality/checks.ts';
import { settleChecks } from '../../src/engines/quality/publish.ts';
import { hashtagsPipeline, LANDING_COLUMNS, PIPELINE, stagingDataset } from './definition.ts';
import { explodeRecord, type LandingRecord, type StagingRow } from './enrich.ts';
import { clip, type QuarantineEntry, writeQuarantine } from './quarantine.ts';

/** Result of {@link deleteStaging}. */
export interface DeleteStagingResult {
  readonly objects: number;
  readonly partitions: number;
}

/**
 * Deletes the old staging data: every object of `staging/hashtags/staging/` and the table's
 * partition registrations (the table stays, empty), after registering the pipeline's tables in the
 * catalog when they are missing. Idempotent. Holds the dataset's lease.
 */
export async function deleteStaging(ctx: PipelineContext, runId: string): Promise<DeleteStagingResult> {
  return withDatasetLease(ctx, `dataset:${PIPELINE}.${stagingDataset.name}`, runId, async () => {
    const { objectStore, catalog } = ctx.backend;
    // The pipeline's tables exist (empty) from its first run on, so its queries work before any
    // row arrives.
    for (const dataset of hashtagsPipeline.datasets) {
      await catalog.upsertTable(tableDefinitionOf(dataset), { createdBy: runId });
    }
    let objects = 0;
    for await (const info of objectStore.list('staging', datasetPrefix(stagingDataset), {
      includeHidden: true,
    })) {
      await objectStore.delete(info);
      objects++;
    }
    const partitions = await catalog.listPartitions(PIPELINE, stagingDataset.name);
    await catalog.deletePartitions(
      PIPELINE,
      stagingDataset.name,
      partitions.map((p) => p.values),
    );
    return { objects, partitions: partitions.length };
  });
}

/** Which landing objects to stage. */
export type StagingSelection =
  /** These keys (the objects a `sluice run` just landed). */
  | { readonly keys: readonly string[] }
  /** Objects under `landing/hashtags/` modified in the last `hours` hours (the original's rule). */
  | { readonly lookbackHours: number };

/** Result of {@link processStaging}. */
export interface StagingResult {
  readonly runId: string;
  /** Landing objects read. */
  readonly objects: readonly string[];
  /**
   * Landing records: `read = loaded + duplicates + quarantined + filtered`; `loaded` records gave
   * at least one staging row, `duplicates` repeat a `record_id` already staged, `filtered` have no
   * hashtag left after cleaning to `[A-Za-z0-9]` (e.g. `#日本`), `quarantined` did not parse or
   * validate, or had every row quarantined by a data-quality check.
   */
  readonly counts: RecordCounts;
  /** Staging rows written (one per record and distinct cleaned hashtag). */
  readonly rows: number;
  /** Rows a `quarantine` data-quality check moved to the quarantine (each is an entry there). */
  readonly quarantinedRows: number;
  /** The data-quality checks evaluated on the batch (also in `sluice.quality_results`). */
  readonly checks: readonly CheckResult[];
  /** Rows dropped because their `hash_id` repeated inside one record (`#Brexit #brexit` stays two; `#a #a` is one). */
  readonly duplicateRows: number;
  readonly partitions: readonly string[];
  readonly quarantine?: string;
}

/**
 * Landing -> staging (REFERENCE.md section 1): parses the landing CSV objects (RFC 4180, no header,
 * the columns of `LANDING_COLUMNS`), validates each record, cleans its text, scores its
 * sentiment, explodes its hashtags (`explodeRecord`), deduplicates on `record_id` and `hash_id`,
 * and writes `hashtags.staging` (Snappy Parquet by year/month/day of arrival). Records that do not
 * parse or validate go to `quarantine/hashtags/staging/...` with object, line and reason.
 *
 * Before writing, evaluates the data-quality checks of `hashtags.staging` (the definition's, or
 * `checks`) and records them in `sluice.quality_results`: rows failing a `quarantine` check go to
 * the quarantine with their object, line and the check's name; a failed `block` check writes
 * nothing (no staging file, no quarantine object) and throws {@link QualityBlockedError}, so
 * LandingAnalytical stops before `hashtag_data`.
 *
 * Call {@link deleteStaging} first (LandingAnalytical does): staging then holds exactly this batch.
 * Re-running with the same `runId` replaces its own files (write unit = run id).
 */
export async function processStaging(
  ctx: PipelineContext,
  input: {
    runId: string;
    selection: StagingSelection;
    /** Checks of `hashtags.staging` to evaluate instead of the definition's (tests, experiments). */
    checks?: readonly CheckDefinition[];
  },
): Promise<StagingResult> {
  return withDatasetLease(ctx, `dataset:${PIPELINE}.${stagingDataset.name}`, input.runId, () =>
    stageLeased(ctx, input),
  );
}

async function stageLeased(
  ctx: PipelineContext,
  input: { runId: string; selection: StagingSelection; checks?: readonly CheckDefinition[] },
): Promise<StagingResult> {
  const { objectStore } = ctx.backend;
  const objects = await selectObjects(ctx, input.selection);
  await mkdir(ctx.workDir, { recursive: true });
  const work = await mkdtemp(path.join(ctx.workDir, 'hashtags-staging-'));
  const db = await DuckDb.open({
    ...(ctx.engine.threads !== undefined ? { threads: ctx.engine.threads } : {}),
    memoryLimit: ctx.engine.memoryLimit ?? '512MB',
    tempDirectory: path.join(work, 'duckdb-tmp'),
  });
  try {
    await db.run(
      `CREATE TABLE staging_raw (hash_id VARCHAR, record_id VARCHAR, time_stamp VARCHAR, created VARCHAR,
         tweet_id VARCHAR, user_name VARCHAR, rt_count BIGINT, hashtag VARCHAR, polarity DOUBLE,
         subjectivity DOUBLE, text_clean VARCHAR, year INTEGER, month INTEGER, day INTEGER,
         __source VARCHAR, __line INTEGER)`,
    );
    const appender = await db.connection.createAppender('staging_raw');
    const seenRecords = new Set<string>();
    const bad: QuarantineEntry[] = [];
    let read = 0;
    let loaded = 0;
    let duplicates = 0;
    let filtered = 0;
    let rows = 0;
    let duplicateRows = 0;
    let checkQuarantinedRecords = 0;
    const task = ctx.progress.start('staging', objects.length, 'items');
    for (const [i, object] of objects.entries()) {
      const source = objectStore.uri(object);
      const parser = (await objectStore.get(object)).pipe(
        parse({ relax_column_count: true, info: true, skip_empty_lines: true }),
      );
      // csv-parse reports the line a record ends on; a quoted text with newlines spans several.
      let lastLine = 0;
      for await (const { record, info } of parser as AsyncIterable<{
        record: string[];
        info: { lines: number };
      }>) {
        read++;
        const firstLine = lastLine + 1;
        lastLine = info.lines;
        const parsed = toLandingRecord(record);
        if (typeof parsed === 'string') {
          const lines = firstLine < info.lines ? ` (the record spans lines ${firstLine}-${info.lines})` : '';
          bad.push({
            source,
            line: firstLine,
            reason: `${parsed}${lines}`,
            raw: clip(JSON.stringify(record)),
          });
          continue;
        }
        if (seenRecords.has(parsed.record_id)) {
          duplicates++;
          continue;
        }
        seenRecords.add(parsed.record_id);
        const exploded = explodeRecord(parsed);
        const hashIds = new Set<string>();
        let kept = 0;
        for (const row of exploded) {
          if (hashIds.has(row.hash_id)) {
            duplicateRows++;
            continue;
          }
          hashIds.add(row.hash_id);
          appendStagingRow(appender, row);
          appender.appendVarchar(source);
          appender.appendInteger(firstLine);
          appender.endRow();
          kept++;
        }
        rows += kept;
        if (kept > 0) loaded++;
        else filtered++;
      }
      task.update(i + 1);
    }
    appender.closeSync();
    task.stop();
    await db.run(
      `CREATE VIEW staging_unit AS SELECT hash_id, record_id, CAST(time_stamp AS TIMESTAMP) AS time_stamp,
         CAST(CAST(created AS TIMESTAMPTZ) AS TIMESTAMP) AS created, tweet_id, user_name, rt_count, hashtag,
         polarity, subjectivity, text_clean,
         lpad(CAST(year AS VARCHAR), 4, '0') AS year, lpad(CAST(month AS VARCHAR), 2, '0') AS month,
         lpad(CAST(day AS VARCHAR), 2, '0') AS day, __source, __line
       FROM staging_raw`,
    );

    // Data-quality checks on the batch, before anything is written.
    let relation = 'staging_unit';
    let checkResults: CheckResult[] = [];
    let quarantinedRows = 0;
    const checks = input.checks ?? tableChecks(hashtagsPipeline, stagingDataset.name);
    if (rows > 0 && checks.length > 0) {
      const checked = await evaluateChecks({
        db,
        relation,
        checks,
        pipeline: PIPELINE,
        table: stagingDataset.name,
        runId: input.runId,
        unit: input.runId,
        now: ctx.clock.now(),
      });
      checkResults = checked.results;
      await settleChecks(ctx, checked);
      if (checked.quarantined) {
        const failed = await db.all(
          `SELECT * EXCLUDE (__source, __line, ${REASON_COLUMN}, year, month, day), __source, __line,
             ${REASON_COLUMN} AS reason
           FROM ${checked.quarantined} ORDER BY __source, __line, hashtag`,
        );
        for (const row of failed.rows) {
          const { __source, __line, reason, ...values } = row;
          bad.push({
            source: String(__source),
            line: Number(__line),
            reason: `data-quality check failed: ${String(reason)}`,
            raw: clip(stringifyJson(values)),
          });
        }
        // A record is quarantined when no row of it is left; else it still loaded.
        const emptied = Number(
          await db.scalar(
            `SELECT count(DISTINCT record_id) FROM ${checked.quarantined}
             WHERE record_id NOT IN (SELECT record_id FROM ${checked.passed})`,
          ),
        );
        loaded -= emptied;
        quarantinedRows = checked.quarantinedRows;
        rows -= quarantinedRows;
        relation = checked.passed;
        checkQuarantinedRecords = emptied;
      }
    }

    const quarantine = await writeQuarantine(ctx, {
      step: 'staging',
      runId: input.runId,
      unit: input.runId,
      entries: bad,
    });
    const counts: RecordCounts = {
      read,
      loaded,
      duplicates,
      quarantined: bad.length - quarantinedRows + checkQuarantinedRecords,
      filtered,
    };
    reconcile(counts);
    let partitions: string[] = [];
    if (rows > 0) {
      const written = await writeDatasetUnit({
        db,
        relation,
        dataset: stagingDataset,
        unit: input.runId,
        runId: input.runId,
        objectStore,
        catalog: ctx.backend.catalog,
      });
      partitions = written.partitions.map((p) => p.prefix);
    }
    return {
      runId: input.runId,
      objects: objects.map((o) => o.key),
      counts,
      rows,
      quarantinedRows,
      checks: checkResults,
      duplicateRows,
      partitions,
      ...(quarantine ? { quarantine } : {}),
    };
  } finally {
    db.close();
    await rm(work, { recursive: true, force: true });
  }
}

async function selectObjects(ctx: PipelineContext, selection: StagingSelection): Promise<ObjectInfo[]> {
  const { objectStore } = ctx.backend;
  if ('keys' in selection) {
    const found: ObjectInfo[] = [];
    for (const key of selection.keys) {
      const info = await objectStore.head({ layer: 'landing', key });
      if (!info) throw new Error(`landing object ${key} does not exist`);
      found.push(info);
    }
    return found;
  }
  const since = ctx.clock.now().getTime() - selection.lookbackHours * 3_600_000;
  const found: ObjectInfo[] = [];
  for await (const info of objectStore.list('landing', `${PIPELINE}/`)) {
    if (info.key.endsWith('.csv') && info.lastModified.getTime() >= since) found.push(info);
  }
  return found;
}

const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** A landing CSV record as a {@link LandingRecord}, or the reason it is not one. */
function toLandingRecord(record: readonly string[]): LandingRecord | string {
  if (record.length !== LANDING_COLUMNS.length) {
    return `expected ${LANDING_COLUMNS.length} columns (${LANDING_COLUMNS.join(', ')}), found ${record.length}`;
  }
  const [recordId, timestamp, created, tweetId, userName, rtCount, hashtags, text] = record as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  if (!/^\d+$/.test(recordId)) return `record_id "${clip(recordId).slice(0, 80)}" is not a sequence number`;
  if (!ISO_INSTANT.test(timestamp) || Number.isNaN(Date.parse(timestamp))) {
    return `timestamp "${timestamp.slice(0, 80)}" is not an ISO-8601 UTC instant`;
  }
  if (!ISO_INSTANT.test(created) || Number.isNaN(Date.parse(created))) {
    return `created "${created.slice(0, 80)}" is not an ISO-8601 UTC instant`;
  }
  if (!/^\d+$/.test(tweetId)) return `tweet_id "${tweetId.slice(0, 80)}" is not a tweet id`;
  if (!/^\d+$/.test(rtCount)) return `rt_count "${rtCount.slice(0, 80)}" is not a non-negative integer`;
  return {
    record_id: recordId,
    timestamp: new Date(timestamp),
    created,
    tweet_id: tweetId,
    user_name: userName,
    rt_count: Number(rtCount),
    hashtags,
    text,
  };
}

/** Runs `work` holding the lease `name` (waits up to 60 s for another writer of the dataset). */
export async function withDatasetLease<T>(
  ctx: PipelineContext,
  name: string,
  runId: string,
  work: () => Promise<T>,
): Promise<T> {
  const lease = await Lease.acquire(
    ctx.backend.kv,
    name,
    { id: runId, host: os.hostname(), pid: process.pid },
    { clock: ctx.clock, isAlive: ctx.backend.isAlive, waitMs: 60_000 },
  );
  try {
    return await work();
  } finally {
    await lease.release();
  }
}

/**
 * Appends the columns of one staging row, in `stagingDataset`'s order (hash_id ... day), to a
 * DuckDB appender; the caller appends any further columns and ends the row.
 */
export function appendStagingRow(appender: DuckDBAppender, row: StagingRow): void {
  appender.appendVarchar(row.hash_id);
  appender.appendVarchar(row.record_id);
  appender.appendVarchar(row.time_stamp);
  appender.appendVarchar(row.created);
  appender.appendVarchar(row.tweet_id);
  appender.appendVarchar(row.user_name);
  appender.appendBigInt(BigInt(row.rt_count));
  appender.appendVarchar(row.hashtag);
  appender.appendDouble(row.polarity);
  appender.appendDouble(row.subjectivity);
  appender.appendVarchar(row.text_clean);
  appender.appendInteger(row.year);
  appender.appendInteger(row.month);
  appender.appendInteger(row.day);
}
