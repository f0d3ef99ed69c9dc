import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import type { PipelineContext } from '../../src/core/context.ts';
import { formatRef, type ObjectRef } from '../../src/core/layer.ts';
import { Lease } from '../../src/core/lease.ts';
import type { CheckDefinition, CheckResult } from '../../src/core/quality.ts';
import type { RecordCounts } from '../../src/core/run.ts';
import { reconcile } from '../../src/core/run.ts';
import { writeDatasetUnit } from '../../src/engines/duckdb/dataset-writer.ts';
import { DuckDb, quoteString } from '../../src/engines/duckdb/duckdb.ts';
import {
  annotateNdjson,
  explainRejectedLine,
  LINE_FIELD,
  readAnnotatedLines,
} from '../../src/engines/ndjson/annotate-lines.ts';
import {
  checksBindOn,
  evaluateChecks,
  REASON_COLUMN,
  tableChecks,
} from '../../src/engines/quality/checks.ts';
import { settleChecks } from '../../src/engines/quality/publish.ts';
import { eventsDataset, gharchivePipeline, quarantineKey } from './definition.ts';

/**
 * Largest accepted record, in bytes (DuckDB `maximum_object_size`, its default 16 MiB); larger lines
 * are quarantined. The JSON reader allocates buffers of this size per thread, so raising it costs
 * memory: at 64 MiB a 200k-event hour no longer fits in a 512 MB memory limit (npm run bench -- gharchive).
 */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;

/** Result of {@link transformHour}. */
export interface TransformResult {
  readonly unit: string;
  /** `read = loaded + duplicates + quarantined` (checked). */
  readonly counts: RecordCounts;
  /** Duplicates within the hour file itself. */
  readonly duplicatesInFile: number;
  /** Events already present in the lake from other hours. */
  readonly duplicatesInLake: number;
  /** Bytes of the landed file and of its decompressed content. */
  readonly bytes: { readonly landed: number; readonly decompressed: number };
  readonly partitions: { values: string[]; prefix: string; rows: number; bytes: number }[];
  /** Where the rejected records went, when there were any. */
  readonly quarantine?: { readonly key: string; readonly records: number };
  /** Set when the gzip stream was damaged: records after the damage could not be read. */
  readonly damage?: { readonly kind: 'truncated' | 'corrupt'; readonly message: string };
  readonly schemaVersion: number;
  /** The data-quality checks evaluated on the hour (also in `sluice.quality_results`). */
  readonly checks: readonly CheckResult[];
}

/**
 * Landing -> analytical for one hour file: validate, flatten, dedupe, write partitioned Parquet,
 * register partitions, and quarantine what is bad.
 *
 * - Decompresses and annotates lines (src/engines/ndjson/annotate-lines.ts), then reads them with
 *   DuckDB's `read_ndjson` with every top-level member declared `JSON` (no type inference, so a
 *   heterogeneous `payload` costs nothing), in bounded memory (`memory_limit`, spill to `workDir`).
 * - Rejects, to `quarantine/gharchive/events/date=.../<unit>.ndjson`, each line that is not a JSON
 *   object, an event without an integer `id`, or with a `created_at` that is missing or not an
 *   ISO-8601 timestamp; each with file, line and reason.
 * - Keeps the first occurrence (lowest line) of each `id` in the file, and skips ids already in the
 *   lake (merge on `id`, see src/engines/duckdb/dataset-writer.ts).
 * - Evaluates the data-quality checks of `gharchive.events` (the definition's, or `checks`) on the
 *   rows about to be written and records them in `sluice.quality_results`: on the cheap key
 *   relation (`id`, `created_at`, `type`, partition keys) when the checks bind there, else on the
 *   full rows (a second parse of the file). A `quarantine` check moves its failing events to the
 *   hour's quarantine object; a failed `block` check publishes nothing (no Parquet, no quarantine
 *   object, no catalog change) and throws {@link QualityBlockedError}.
 *
 * Re-running an hour replaces that hour's files, partition registrations and quarantine object:
 * the result is the same whatever ran before. Holds the lease `dataset:gharchive.events` while it
 * runs, so schedule-, trigger- and CLI-started transforms never write the dataset at once.
 *
 * @throws {LeaseHeldError} when another writer holds the dataset past `leaseWaitMs`.
 * @throws {Error} for I/O or engine failures; damaged input is reported in the result instead.
 */
export async function transformHour(
  ctx: PipelineContext,
  input: {
    landing: ObjectRef;
    unit: string;
    runId: string;
    /** How long to wait for another writer of `gharchive.events` (default 0: fail with LeaseHeldError). */
    leaseWaitMs?: number;
    /** Checks of `gharchive.events` to evaluate instead of the definition's (tests, experiments). */
    checks?: readonly CheckDefinition[];
    onPhase?: (phase: string) => void | Promise<void>;
  },
): Promise<TransformResult> {
  // One writer per dataset at a time: merges read the other units' keys, so two concurrent writes
  // of the same partition could both keep a duplicate.
  const lease = await Lease.acquire(
    ctx.backend.kv,
    `dataset:${eventsDataset.pipeline}.${eventsDataset.name}`,
    { id: `${input.runId}:${input.unit}`, host: os.hostname(), pid: process.pid },
    { clock: ctx.clock, isAlive: ctx.backend.isAlive, waitMs: input.leaseWaitMs ?? 0 },
  );
  try {
    return await transformLeased(ctx, input);
  } finally {
    await lease.release();
  }
}

async function transformLeased(
  ctx: PipelineContext,
  input: {
    landing: ObjectRef;
    unit: string;
    runId: string;
    checks?: readonly CheckDefinition[];
    onPhase?: (phase: string) => void | Promise<void>;
  },
): Promise<TransformResult> {
  const { objectStore } = ctx.backend;
  await objectStore.cleanScratch(eventsDataset.layer);
  await mkdir(ctx.workDir, { recursive: true });
  const work = await mkdtemp(path.join(ctx.workDir, `gharchive-${input.unit}-`));
  const landed = await objectStore.localPath(input.landing);
  let db: DuckDb | undefined;
  try {
    const annotatedPath = path.join(work, 'input.ndjson');
    const landedInfo = await objectStore.head(input.landing);
    const task = ctx.progress.start(`transform ${input.unit}`, landedInfo?.size, 'bytes');
    const annotated = await annotateNdjson(landed.path, annotatedPath, { onProgress: (n) => task.update(n) });
    task.stop();
    await input.onPhase?.('annotated');

    db = await DuckDb.open({
      ...(ctx.engine.threads !== undefined ? { threads: ctx.engine.threads } : {}),
      memoryLimit: ctx.engine.memoryLimit ?? '512MB',
      tempDirectory: path.join(work, 'duckdb-tmp'),
    });
    // Nothing below depends on row order (first occurrences are chosen by line number), and not
    // preserving it lets DuckDB stream COPY with less memory.
    await db.run('SET preserve_insertion_order = false');
    // Pass 1, light: line, id and created_at of every line: validation and dedup decisions.
    await db.run(keysSql(annotatedPath));
    await db.run(
      `CREATE TEMP TABLE first_lines AS SELECT min(line) AS line FROM line_keys WHERE reason IS NULL GROUP BY id;
       CREATE TEMP TABLE dropped_lines AS SELECT line FROM line_keys ANTI JOIN first_lines USING (line);
       CREATE TEMP VIEW events_keys AS
         SELECT k.line AS ${LINE_COLUMN}, k.id, k.created_at, k.type, k.year, k.month, k.dayofmonth
         FROM line_keys k SEMI JOIN first_lines f ON k.line = f.line;
       CREATE TEMP VIEW events_unit AS ${eventsSql(annotatedPath)}`,
    );
    const stats = (
      await db.all(
        `SELECT (SELECT count(*) FROM line_keys) AS readable,
                (SELECT count(*) FROM line_keys WHERE reason IS NOT NULL) AS invalid,
                (SELECT count(*) FROM first_lines) AS unique_ids`,
      )
    ).rows[0] as { readable: number; invalid: number; unique_ids: number };
    const read = annotated.lines - annotated.blankLines;
    const good = stats.readable - stats.invalid;
    const duplicatesInFile = good - stats.unique_ids;

    // Rejected lines: those DuckDB could not read (absent from `line_keys`) and those that failed validation.
    const reasons = new Map<number, string>();
    const unreadable = new Set<number>();
    if (stats.readable < read) {
      const missing = await db.all(
        `SELECT r.range AS line FROM range(1, ${annotated.lines + 1}) r ANTI JOIN line_keys s ON s.line = r.range`,
      );
      for (const row of missing.rows) unreadable.add(Number(row.line));
    }
    for (const row of (
      await db.all(`SELECT line, reason FROM line_keys WHERE reason IS NOT NULL ORDER BY line`)
    ).rows) {
      reasons.set(Number(row.line), String(row.reason));
    }

    // Data-quality checks on the rows about to be written, before anything is published.
    const checks = input.checks ?? tableChecks(gharchivePipeline, eventsDataset.name);
    let checkResults: CheckResult[] = [];
    let checkQuarantined = 0;
    if (checks.length > 0) {
      const checked = await evaluateChecks({
        db,
        relation: (await checksBindOn(db, 'events_keys', checks)) ? 'events_keys' : 'events_unit',
        checks,
        pipeline: eventsDataset.pipeline,
        table: eventsDataset.name,
        runId: input.runId,
        unit: input.unit,
        now: ctx.clock.now(),
      });
      checkResults = checked.results;
      await settleChecks(ctx, checked);
      if (checked.quarantined) {
        // Failing events leave the write (both relations read these tables) for the quarantine.
        await db.run(
          `CREATE TEMP TABLE check_rejects AS SELECT ${LINE_COLUMN} AS line, ${REASON_COLUMN} AS reason FROM ${checked.quarantined};
           INSERT INTO dropped_lines SELECT line FROM check_rejects;
           DELETE FROM first_lines WHERE line IN (SELECT line FROM check_rejects);`,
        );
        for (const row of (await db.all('SELECT line, reason FROM check_rejects ORDER BY line')).rows) {
          reasons.set(Number(row.line), `data-quality check failed: ${String(row.reason)}`);
        }
        checkQuarantined = checked.quarantinedRows;
      }
    }
    const quarantine = await writeQuarantine(ctx, {
      annotatedPath,
      work,
      unit: input.unit,
      runId: input.runId,
      source: formatRef(input.landing),
      reasons,
      unreadable,
    });
    const quarantined = quarantine?.records ?? 0;
    if (quarantined !== read - good + checkQuarantined) {
      throw new Error(
        `internal: ${quarantined} records quarantined but ${read - good} of ${read} were rejected and ${checkQuarantined} failed a check in ${input.unit}`,
      );
    }
    await input.onPhase?.('quarantined');

    const written = await writeDatasetUnit({
      db,
      relation: 'events_unit',
      keys: 'events_keys',
      dataset: eventsDataset,
      unit: input.unit,
      runId: input.runId,
      objectStore,
      catalog: ctx.backend.catalog,
      onPhase: (phase) => input.onPhase?.(phase),
    });
    const counts: RecordCounts = {
      read,
      loaded: written.loaded,
      duplicates: duplicatesInFile + written.duplicates,
      quarantined,
    };
    reconcile(counts);
    return {
      unit: input.unit,
      counts,
      duplicatesInFile,
      duplicatesInLake: written.duplicates,
      bytes: { landed: annotated.bytesIn, decompressed: annotated.bytesDecompressed },
      partitions: written.partitions.map((p) => ({
        values: p.values,
        prefix: p.prefix,
        rows: p.files.reduce((n, f) => n + (f.rows ?? 0), 0),
        bytes: p.files.reduce((n, f) => n + f.bytes, 0),
      })),
      ...(quarantine ? { quarantine } : {}),
      ...(annotated.damage ? { damage: annotated.damage } : {}),
      schemaVersion: written.schemaVersion,
      checks: checkResults,
    };
  } finally {
    db?.close();
    await landed.release();
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * `read_ndjson` of the annotated file with the given members and their DuckDB types (`JSON` keeps a
 * member unparsed). With `ignore_errors`, a line that is not a JSON object becomes a row of NULLs
 * (dropped by the line filter) and a member of an unexpected type becomes NULL.
 */
function readSql(annotatedPath: string, members: Record<string, string>): string {
  const columns = [
    `${LINE_FIELD}: 'UBIGINT'`,
    ...Object.entries(members).map(([m, t]) => `${m}: '${t}'`),
  ].join(', ');
  return `read_ndjson(${quoteString(annotatedPath)}, columns = {${columns}}, format = 'newline_delimited',
    ignore_errors = true, maximum_object_size = ${MAX_RECORD_BYTES})`;
}

/** The actor/org object as a STRUCT: parsed once by the reader instead of once per extracted field. */
const ACCOUNT_STRUCT =
  'STRUCT(id BIGINT, login VARCHAR, display_login VARCHAR, gravatar_id VARCHAR, url VARCHAR, avatar_url VARCHAR)';

/** The integer id of a JSON `id` member (NULL unless it is a 64-bit integer or a string of one). */
const ID_SQL = (e: string) =>
  `CASE WHEN json_type(${e}.id) IN ('VARCHAR', 'BIGINT', 'UBIGINT') AND regexp_full_match(${e}.id ->> '$', '-?[0-9]+')
     THEN TRY_CAST(${e}.id ->> '$' AS BIGINT) END`;
/** `created_at` parsed as an ISO-8601 instant, as a UTC TIMESTAMP (NULL when it does not parse). */
const CREATED_SQL = (e: string) =>
  `CASE WHEN json_type(${e}.created_at) = 'VARCHAR' THEN TRY_CAST(${e}.created_at ->> '$' AS TIMESTAMPTZ)::TIMESTAMP END`;

/** Column of the relations to write holding the line of each event (for quarantine routing; not written). */
const LINE_COLUMN = '__sluice_line';

/**
 * Pass 1, `line_keys`: one row per line DuckDB could read, with `reason` (NULL for a valid event),
 * the integer `id`, `created_at` as a UTC TIMESTAMP and its partition values, and `type` (for the
 * data-quality checks). Reads only four members, so it is cheap; lines absent from it were not
 * JSON objects.
 */
function keysSql(annotatedPath: string): string {
  return `
CREATE TEMP TABLE line_keys AS
WITH parsed AS (
  SELECT e.${LINE_FIELD} AS line, e.id AS id_json, e.created_at AS created_json, e.type,
    ${ID_SQL('e')} AS id, ${CREATED_SQL('e')} AS created_at
  FROM ${readSql(annotatedPath, { id: 'JSON', created_at: 'JSON', type: 'VARCHAR' })} e
  WHERE e.${LINE_FIELD} IS NOT NULL
), checked AS (
  SELECT line, id, created_at, type,
    CASE
      WHEN id_json IS NULL OR json_type(id_json) = 'NULL' THEN 'missing id'
      WHEN id IS NULL THEN 'id is not a 64-bit integer: ' || left(id_json::VARCHAR, 200)
      WHEN created_json IS NULL OR json_type(created_json) = 'NULL' THEN 'missing created_at'
      WHEN created_at IS NULL THEN 'created_at is not an ISO-8601 timestamp: ' || left(created_json::VARCHAR, 200)
    END AS reason
  FROM parsed
)
SELECT line, reason, type,
  CASE WHEN reason IS NULL THEN id END AS id,
  CASE WHEN reason IS NULL THEN created_at END AS created_at,
  CASE WHEN reason IS NULL THEN strftime(created_at, '%Y') END AS year,
  CASE WHEN reason IS NULL THEN strftime(created_at, '%m') END AS month,
  CASE WHEN reason IS NULL THEN strftime(created_at, '%d') END AS dayofmonth
FROM checked`;
}

/**
 * Pass 2, `events_unit`: the rows to write: every member read, flattened and typed, for the lines
 * pass 1 kept (valid, first occurrence of their id). It filters out the few dropped lines rather
 * than joining the kept ones: probing a small hash table keeps the scan streaming (measured: 2.0 s
 * vs 3.8 s for 200k events, npm run bench -- gharchive). `id` and `created_at` were validated by
 * pass 1, so plain casts give the same values here. Evaluated once, by the COPY.
 */
function eventsSql(annotatedPath: string): string {
  const members = {
    id: 'VARCHAR',
    type: 'VARCHAR',
    actor: ACCOUNT_STRUCT,
    repo: 'STRUCT(id BIGINT, name VARCHAR, url VARCHAR)',
    org: ACCOUNT_STRUCT,
    payload: 'JSON',
    public: 'BOOLEAN',
    created_at: 'VARCHAR',
  };
  return `
SELECT e.*, strftime(e.created_at, '%Y') AS year, strftime(e.created_at, '%m') AS month, strftime(e.created_at, '%d') AS dayofmonth
FROM (
  SELECT
    r.${LINE_FIELD} AS ${LINE_COLUMN},
    CAST(r.id AS BIGINT) AS id,
    r.type,
    r.actor.id AS actor_id, r.actor.login AS actor_login, r.actor.display_login AS actor_display_login,
    r.actor.gravatar_id AS actor_gravatar_id, r.actor.url AS actor_url, r.actor.avatar_url AS actor_avatar_url,
    r.repo.id AS repo_id, r.repo.name AS repo_name, r.repo.url AS repo_url,
    r.org.id AS org_id, r.org.login AS org_login, r.org.gravatar_id AS org_gravatar_id,
    r.org.url AS org_url, r.org.avatar_url AS org_avatar_url,
    r.payload,
    r.public,
    CAST(r.created_at AS TIMESTAMPTZ)::TIMESTAMP AS created_at
  FROM ${readSql(annotatedPath, members)} r
  WHERE r.${LINE_FIELD} IS NOT NULL AND r.${LINE_FIELD} NOT IN (SELECT line FROM dropped_lines)
) e`;
}

/**
 * Writes the rejected records of a unit to its quarantine object (replacing it), one JSON line
 * each: `{pipeline, dataset, source, line, reason, record, run_id, quarantined_at}` (`record` is
 * the raw line; `record_base64` is added when the line is not valid UTF-8, so nothing is lost).
 * Removes the unit's quarantine object when nothing was rejected.
 */
async function writeQuarantine(
  ctx: PipelineContext,
  input: {
    annotatedPath: string;
    work: string;
    unit: string;
    runId: string;
    source: string;
    reasons: Map<number, string>;
    unreadable: Set<number>;
  },
): Promise<{ key: string; records: number } | undefined> {
  const { objectStore } = ctx.backend;
  const key = quarantineKey(input.unit);
  const wanted = new Set([...input.reasons.keys(), ...input.unreadable]);
  if (wanted.size === 0) {
    await objectStore.delete({ layer: 'quarantine', key });
    return undefined;
  }
  const file = path.join(input.work, 'quarantine.ndjson');
  const out = createWriteStream(file);
  const now = ctx.clock.now().toISOString();
  let records = 0;
  for await (const { line, raw } of readAnnotatedLines(input.annotatedPath, wanted)) {
    const text = raw.toString('utf8');
    const reason = input.reasons.get(line) ?? explainRejectedLine(raw, MAX_RECORD_BYTES);
    const entry: Record<string, unknown> = {
      pipeline: 'gharchive',
      dataset: 'events',
      source: input.source,
      line,
      reason,
      record: text,
      run_id: input.runId,
      quarantined_at: now,
    };
    if (!Buffer.from(text, 'utf8').equals(raw)) entry.record_base64 = raw.toString('base64');
    if (!out.write(`${JSON.stringify(entry)}\n`)) await once(out, 'drain');
    records++;
  }
  out.end();
  await finished(out);
  if (records === 0) {
    await objectStore.delete({ layer: 'quarantine', key });
    return undefined;
  }
  await objectStore.putFile({ layer: 'quarantine', key }, file, { move: false });
  return { key, records };
}
