import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { PipelineContext } from '../../src/core/context.ts';
import type { ObjectRef } from '../../src/core/layer.ts';
import { Lease } from '../../src/core/lease.ts';
import type { LocalObjectFile } from '../../src/core/ports/object-store.ts';
import type { CheckResult } from '../../src/core/quality.ts';
import { type RecordCounts, reconcile } from '../../src/core/run.ts';
import { type CrawlResult, crawl } from '../../src/engines/crawler/crawler.ts';
import {
  type DeliveredObject,
  type DeliveryStats,
  DeliveryStream,
  type TransformOutput,
} from '../../src/engines/delivery/delivery-stream.ts';
import { writeDatasetUnit } from '../../src/engines/duckdb/dataset-writer.ts';
import { DuckDb, quoteString } from '../../src/engines/duckdb/duckdb.ts';
import { evaluateChecks, tableChecks } from '../../src/engines/quality/checks.ts';
import { settleChecks } from '../../src/engines/quality/publish.ts';
import {
  type CopyOnceResult,
  copyOnce,
  createTableIfMissing,
  LOADS_TABLE_DDL,
} from '../../src/engines/warehouse/copy-once.ts';
import {
  CRAWL_DATABASE,
  DELIVERY_STREAM,
  nbaPipeline,
  PIPELINE,
  RAW_PREFIX,
  SOURCE_PREFIX,
  TOTALS_COLUMNS,
  TOTALS_TABLE,
  TOTALS_TABLE_DDL,
  totalsDataset,
  tweetsDataset,
} from './definition.ts';
import { type Envelope, validateEnvelope } from './envelopes.ts';

/**
 * The original's Firehose transform Lambda: parses the envelope, keeps `data[0]`, adds
 * `users = includes.users` and `year`/`month`/`day` (UTC, zero-padded strings) of the tweet's
 * `created_at`, and returns those as the dynamic-partitioning keys. An invalid envelope fails
 * (`ProcessingFailed`, to the error output).
 */
export function nbaDeliveryTransform(data: string): TransformOutput {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch (error) {
    return { result: 'ProcessingFailed', reason: `not JSON: ${(error as Error).message}` };
  }
  const envelope = validateEnvelope(value);
  if (typeof envelope === 'string') return { result: 'ProcessingFailed', reason: envelope };
  const tweet = envelope.data[0] as Envelope['data'][number];
  const iso = new Date(Date.parse(tweet.created_at)).toISOString();
  const year = iso.slice(0, 4);
  const month = iso.slice(5, 7);
  const day = iso.slice(8, 10);
  return {
    result: 'Ok',
    data: JSON.stringify({ ...tweet, users: envelope.includes.users, year, month, day }),
    partitionKeys: { year, month, day },
  };
}

/** Result of {@link deliverEnvelopes}. */
export interface DeliverResult {
  readonly stats: DeliveryStats;
  /** Delivered objects of transformed tweets (`landing/nba/raw/year=/month=/day=/...`). */
  readonly raw: readonly DeliveredObject[];
  /** Objects of the original records (`landing/nba/source/year=/month=/day=/` of arrival). */
  readonly source: readonly DeliveredObject[];
  /** Objects of failed records (`quarantine/nba/raw/processing-failed/`). */
  readonly errors: readonly DeliveredObject[];
}

/**
 * Puts the envelopes, in order, through the nba delivery stream (transform {@link nbaDeliveryTransform},
 * dynamic partitioning by `year/month/day` of `created_at`, gzip, source backup) and closes it.
 * Buffering hints default to Firehose's (5 MiB, 300 s of `ctx.clock`).
 */
export async function deliverEnvelopes(
  ctx: PipelineContext,
  envelopes: Iterable<Envelope | string>,
  options: { buffering?: { sizeBytes?: number; intervalMs?: number }; compression?: 'gzip' | 'none' } = {},
): Promise<DeliverResult> {
  const stream = new DeliveryStream({
    name: DELIVERY_STREAM,
    objectStore: ctx.backend.objectStore,
    clock: ctx.clock,
    layer: 'landing',
    prefix: RAW_PREFIX,
    partitionKeys: ['year', 'month', 'day'],
    transform: nbaDeliveryTransform,
    backup: { prefix: SOURCE_PREFIX },
    ...(options.buffering ? { buffering: options.buffering } : {}),
    ...(options.compression ? { compression: options.compression } : {}),
  });
  for (const envelope of envelopes) {
    await stream.put(typeof envelope === 'string' ? envelope : JSON.stringify(envelope));
  }
  await stream.close();
  return {
    stats: { ...stream.stats },
    raw: stream.objects.filter((o) => o.kind === 'data'),
    source: stream.objects.filter((o) => o.kind === 'backup'),
    errors: stream.objects.filter((o) => o.kind === 'error'),
  };
}

/** Result of {@link dedupTweets}. */
export interface DedupResult {
  readonly unit: string;
  /** `read` delivered lines = `loaded` + `duplicates` + `quarantined` (checked). */
  readonly counts: RecordCounts;
  /** Copies of an id within the input (all but one of each id). */
  readonly duplicatesInInput: number;
  /** Ids already in nba.tweets from other units. */
  readonly duplicatesInLake: number;
  readonly partitions: { values: string[]; rows: number }[];
  readonly checks: readonly CheckResult[];
  readonly quarantine?: ObjectRef;
}

/** `read_ndjson` column types of a delivered tweet (`JSON` keeps a member unparsed). */
const RAW_COLUMNS: Record<string, string> = {
  id: 'VARCHAR',
  created_at: 'VARCHAR',
  author_id: 'VARCHAR',
  text: 'VARCHAR',
  lang: 'VARCHAR',
  conversation_id: 'VARCHAR',
  in_reply_to_user_id: 'VARCHAR',
  source: 'VARCHAR',
  possibly_sensitive: 'BOOLEAN',
  public_metrics: 'JSON',
  entities: 'JSON',
  context_annotations: 'JSON',
  referenced_tweets: 'JSON',
  attachments: 'JSON',
  users: 'JSON',
  Player: 'VARCHAR',
  DateTime: 'VARCHAR',
  GameId: 'VARCHAR',
};

/** A JSON member that must be a list: `{}` (the sample's R quirk) becomes `[]`, anything not a list too. */
const LIST_SQL = (c: string) =>
  `CASE WHEN ${c} IS NULL THEN NULL WHEN json_type(${c}) = 'ARRAY' THEN ${c} ELSE '[]'::JSON END`;

/**
 * The Glue dedup job: reads delivered tweet files (landing/nba/raw/...), drops duplicate ids and
 * writes `nba.tweets` (Parquet, partitioned by `year/month/day` of `created_at`, merge on `id`).
 *
 * - Of the copies of an id in the input, keeps the one of the earliest game window (`DateTime`,
 *   then `GameId`, then file name): the sample's duplicates are the same tweet collected for two
 *   games, identical but for those fields.
 * - Ids already in the lake (another unit's files) are not written again (merge, see
 *   src/engines/duckdb/dataset-writer.ts).
 * - Lines without an `id` or a parseable `created_at` (or not JSON) go to
 *   `quarantine/nba/dedup/<unit>.ndjson` with the file and the reason.
 * - The checks of `nba.tweets` run on the rows about to be written (block: nothing is published).
 *
 * The unit is `raw-<SHA-256 prefix of the sorted input keys>`: re-running the same input replaces
 * its own files. Holds the lease `dataset:nba.tweets`.
 */
export async function dedupTweets(
  ctx: PipelineContext,
  input: { raw: readonly ObjectRef[]; runId: string; leaseWaitMs?: number },
): Promise<DedupResult> {
  const keys = [...input.raw.map((r) => r.key)].sort();
  const unit = `raw-${createHash('sha256').update(keys.join('\n')).digest('hex').slice(0, 16)}`;
  const lease = await Lease.acquire(
    ctx.backend.kv,
    `dataset:${PIPELINE}.${tweetsDataset.name}`,
    { id: `${input.runId}:${unit}`, host: os.hostname(), pid: process.pid },
    { clock: ctx.clock, isAlive: ctx.backend.isAlive, waitMs: input.leaseWaitMs ?? 0 },
  );
  const { objectStore } = ctx.backend;
  const locals: LocalObjectFile[] = [];
  await mkdir(ctx.workDir, { recursive: true });
  const work = await mkdtemp(path.join(ctx.workDir, 'nba-dedup-'));
  let db: DuckDb | undefined;
  try {
    await objectStore.cleanScratch(tweetsDataset.layer);
    for (const ref of input.raw) locals.push(await objectStore.localPath(ref));
    db = await DuckDb.open({
      ...(ctx.engine.threads !== undefined ? { threads: ctx.engine.threads } : {}),
      memoryLimit: ctx.engine.memoryLimit ?? '512MB',
      tempDirectory: path.join(work, 'duckdb-tmp'),
    });
    if (locals.length === 0) {
      await db.run(
        `CREATE TEMP TABLE raw_rows AS SELECT NULL::VARCHAR AS filename, ${Object.entries(RAW_COLUMNS)
          .map(([c, t]) => `NULL::${t} AS ${c}`)
          .join(', ')} WHERE false`,
      );
    } else {
      const files = `[${locals.map((l) => quoteString(l.path)).join(', ')}]`;
      const columns = Object.entries(RAW_COLUMNS)
        .map(([c, t]) => `${c}: '${t}'`)
        .join(', ');
      await db.run(
        `CREATE TEMP VIEW raw_rows AS SELECT * FROM read_ndjson(${files}, columns = {${columns}},
           format = 'newline_delimited', ignore_errors = true, filename = true, maximum_object_size = 16777216)`,
      );
    }
    const keyOf = new Map(locals.map((l, i) => [l.path, input.raw[i]?.key ?? '']));
    // Pass 1, light: the key columns of every line, the reasons of bad lines and the copy of each id to keep.
    // Pass 2 (the view tweets_unit, read by the checks and the write): the kept rows, whole.
    await db.run(
      `SET preserve_insertion_order = false;
       CREATE TEMP TABLE typed AS SELECT filename, id, created_at, DateTime, GameId,
         TRY_CAST(created_at AS TIMESTAMPTZ)::TIMESTAMP AS created_ts,
         CASE WHEN id IS NULL OR NOT regexp_full_match(id, '[0-9]+') THEN 'id is missing or not a string of digits'
              WHEN TRY_CAST(created_at AS TIMESTAMPTZ) IS NULL THEN 'created_at is missing or not an ISO-8601 timestamp'
         END AS reason
       FROM raw_rows;
       CREATE TEMP TABLE kept AS SELECT filename, id, DateTime, GameId FROM typed WHERE reason IS NULL
         QUALIFY row_number() OVER (PARTITION BY id ORDER BY DateTime NULLS LAST, GameId NULLS LAST, filename) = 1;
       CREATE TEMP VIEW tweets_unit AS
       SELECT id, created_ts AS created_at, author_id, text, lang, conversation_id, in_reply_to_user_id, source,
              possibly_sensitive, public_metrics, entities, ${LIST_SQL('context_annotations')} AS context_annotations,
              ${LIST_SQL('referenced_tweets')} AS referenced_tweets, attachments, users,
              Player AS player, DateTime AS game_time, GameId AS game_id,
              strftime(created_ts, '%Y') AS year, strftime(created_ts, '%m') AS month, strftime(created_ts, '%d') AS day
       FROM (SELECT *, TRY_CAST(created_at AS TIMESTAMPTZ)::TIMESTAMP AS created_ts FROM raw_rows r
             SEMI JOIN kept k ON r.filename = k.filename AND r.id = k.id
               AND r.DateTime IS NOT DISTINCT FROM k.DateTime AND r.GameId IS NOT DISTINCT FROM k.GameId)`,
    );
    const stats = (
      await db.all(
        `SELECT (SELECT count(*) FROM raw_rows) AS read, (SELECT count(*) FROM typed WHERE reason IS NOT NULL) AS bad,
                (SELECT count(*) FROM kept) AS unique_ids`,
      )
    ).rows[0] as { read: number; bad: number; unique_ids: number };
    const read = Number(stats.read);
    const bad = Number(stats.bad);
    const duplicatesInInput = read - bad - Number(stats.unique_ids);

    let checks: CheckResult[] = [];
    const definitions = tableChecks(nbaPipeline, tweetsDataset.name);
    if (definitions.length > 0) {
      const checked = await evaluateChecks({
        db,
        relation: 'tweets_unit',
        checks: definitions,
        pipeline: PIPELINE,
        table: tweetsDataset.name,
        runId: input.runId,
        unit,
        now: ctx.clock.now(),
      });
      checks = checked.results;
      await settleChecks(ctx, checked);
    }

    let quarantine: ObjectRef | undefined;
    if (bad > 0) {
      const rows = (
        await db.all('SELECT filename, id, created_at, reason FROM typed WHERE reason IS NOT NULL')
      ).rows;
      const text = rows
        .map((r) =>
          JSON.stringify({
            step: 'dedup',
            run_id: input.runId,
            source: `landing/${keyOf.get(String(r.filename)) ?? String(r.filename)}`,
            reason: r.reason,
            id: r.id ?? null,
            created_at: r.created_at ?? null,
          }),
        )
        .join('\n');
      quarantine = { layer: 'quarantine', key: `${PIPELINE}/dedup/${unit}.ndjson` };
      await objectStore.put(quarantine, `${text}\n`);
    }

    const written = await writeDatasetUnit({
      db,
      relation: 'tweets_unit',
      dataset: tweetsDataset,
      unit,
      runId: input.runId,
      objectStore,
      catalog: ctx.backend.catalog,
    });
    const counts: RecordCounts = {
      read,
      loaded: written.loaded,
      duplicates: duplicatesInInput + written.duplicates,
      quarantined: bad,
    };
    reconcile(counts);
    return {
      unit,
      counts,
      duplicatesInInput,
      duplicatesInLake: written.duplicates,
      partitions: written.partitions.map((p) => ({
        values: p.values,
        rows: p.files.reduce((n, f) => n + (f.rows ?? 0), 0),
      })),
      checks,
      ...(quarantine ? { quarantine } : {}),
    };
  } finally {
    db?.close();
    for (const l of locals) await l.release();
    await rm(work, { recursive: true, force: true });
    await lease.release();
  }
}

/** Result of {@link aggregateDaily}. */
export interface AggregateResult {
  /** Rows of `nba.players_total_tweets` (day x player). */
  readonly rows: number;
  readonly days: number;
  /** Sum of `total`: athlete annotations counted. */
  readonly annotations: number;
  /** Tweets of nba.tweets read. */
  readonly tweets: number;
  readonly checks: readonly CheckResult[];
  /** The staging CSV for the warehouse (`staging/nba/players_total_tweets/totals-<sha>.csv`), when rows > 0. */
  readonly staging?: ObjectRef;
  /** SHA-256 of the CSV: the load's idempotence key. */
  readonly sha256: string;
}

/**
 * The daily aggregate over all of `nba.tweets` (REFERENCE.md section 5): explode
 * `context_annotations` (stored as lists: the `{}` quirk is normalized by the dedup), keep
 * `domain.id = '60'` (Athlete), group by `entity.name` and the day of `created_at` ->
 * `players_total_tweets(year, month, day, player, total)`. An annotation without an entity name is
 * not counted. A tweet annotated twice with the same athlete counts twice (explode semantics).
 * Writes the dataset (replace: the touched days are rewritten) and a staging CSV (`year, month, day,
 * player, total`, sorted) for the warehouse.
 */
export async function aggregateDaily(
  ctx: PipelineContext,
  input: { runId: string },
): Promise<AggregateResult> {
  const { objectStore } = ctx.backend;
  const locals: LocalObjectFile[] = [];
  await mkdir(ctx.workDir, { recursive: true });
  const work = await mkdtemp(path.join(ctx.workDir, 'nba-aggregate-'));
  const lease = await Lease.acquire(
    ctx.backend.kv,
    `dataset:${PIPELINE}.${TOTALS_TABLE}`,
    { id: `${input.runId}:daily`, host: os.hostname(), pid: process.pid },
    { clock: ctx.clock, isAlive: ctx.backend.isAlive, waitMs: 0 },
  );
  let db: DuckDb | undefined;
  try {
    await objectStore.cleanScratch(totalsDataset.layer);
    for await (const info of objectStore.list(tweetsDataset.layer, `${PIPELINE}/${tweetsDataset.name}/`)) {
      if (info.key.endsWith('.parquet')) locals.push(await objectStore.localPath(info));
    }
    db = await DuckDb.open({
      ...(ctx.engine.threads !== undefined ? { threads: ctx.engine.threads } : {}),
      memoryLimit: ctx.engine.memoryLimit ?? '512MB',
      tempDirectory: path.join(work, 'duckdb-tmp'),
    });
    if (locals.length === 0) {
      await db.run(
        `CREATE TEMP TABLE tw AS SELECT NULL::TIMESTAMP AS created_at, NULL::JSON AS context_annotations WHERE false`,
      );
    } else {
      await db.run(
        `CREATE TEMP TABLE tw AS SELECT created_at, context_annotations::JSON AS context_annotations
         FROM read_parquet([${locals.map((l) => quoteString(l.path)).join(', ')}])`,
      );
    }
    await db.run(
      `CREATE TEMP TABLE totals AS
       SELECT strftime(created_at, '%Y') AS year, strftime(created_at, '%m') AS month, strftime(created_at, '%d') AS day,
              json_extract_string(a, '$.entity.name') AS player, count(*)::BIGINT AS total
       FROM tw, unnest(CASE WHEN json_type(context_annotations) = 'ARRAY' THEN context_annotations::JSON[] ELSE []::JSON[] END) AS u(a)
       WHERE json_extract_string(a, '$.domain.id') = '60' AND json_extract_string(a, '$.entity.name') IS NOT NULL
       GROUP BY ALL`,
    );
    const stats = (
      await db.all(
        `SELECT (SELECT count(*) FROM totals) AS rows, (SELECT count(DISTINCT (year, month, day)) FROM totals) AS days,
                (SELECT coalesce(sum(total), 0) FROM totals) AS annotations, (SELECT count(*) FROM tw) AS tweets`,
      )
    ).rows[0] as Record<string, unknown>;
    const checked = await evaluateChecks({
      db,
      relation: 'totals',
      checks: tableChecks(nbaPipeline, TOTALS_TABLE),
      pipeline: PIPELINE,
      table: TOTALS_TABLE,
      runId: input.runId,
      unit: 'daily',
      now: ctx.clock.now(),
    });
    await settleChecks(ctx, checked);
    const rows = Number(stats.rows);
    let staging: ObjectRef | undefined;
    let sha256 = createHash('sha256').digest('hex');
    if (rows > 0) {
      await writeDatasetUnit({
        db,
        relation: 'totals',
        dataset: totalsDataset,
        unit: 'daily',
        runId: input.runId,
        objectStore,
        catalog: ctx.backend.catalog,
      });
      const csv = path.join(work, 'totals.csv');
      await db.run(
        `COPY (SELECT year::INT AS year, month::INT AS month, day::INT AS day, player, total FROM totals ORDER BY year, month, day, player)
         TO ${quoteString(csv)} (FORMAT csv, HEADER false, DELIMITER ',', QUOTE '"', ESCAPE '"', NULLSTR '', FORCE_QUOTE (player))`,
      );
      const bytes = await readFile(csv);
      sha256 = createHash('sha256').update(bytes).digest('hex');
      staging = { layer: 'staging', key: `${PIPELINE}/${TOTALS_TABLE}/totals-${sha256.slice(0, 16)}.csv` };
      await objectStore.put(staging, bytes);
    }
    return {
      rows,
      days: Number(stats.days),
      annotations: Number(stats.annotations),
      tweets: Number(stats.tweets),
      checks: checked.results,
      sha256,
      ...(staging ? { staging } : {}),
    };
  } finally {
    db?.close();
    for (const l of locals) await l.release();
    await rm(work, { recursive: true, force: true });
    await lease.release();
  }
}

/**
 * Loads the aggregate's staging CSV into the warehouse table `players_total_tweets`, once per
 * content (`sluice_loads`, src/engines/warehouse/copy-once.ts). The CSV holds every day of
 * `nba.tweets`, so a new content first deletes the rows of the days it carries (in the same
 * transaction), then COPYs: the table always equals the latest aggregate, never a sum of loads.
 */
export async function loadTotals(
  ctx: PipelineContext,
  input: { aggregate: AggregateResult; runId: string },
): Promise<CopyOnceResult> {
  const warehouse = await ctx.backend.openWarehouse();
  try {
    await createTableIfMissing(warehouse, TOTALS_TABLE_DDL);
    await createTableIfMissing(warehouse, LOADS_TABLE_DDL);
    const staging = input.aggregate.staging;
    let days: string[] = [];
    if (staging) {
      const text = Buffer.from(await objectStore(ctx).getBytes(staging)).toString('utf8');
      days = [
        ...new Set(
          text
            .split('\n')
            .filter((l) => l !== '')
            .map((l) => {
              const [y, m, d] = l.split(',', 3).map(Number);
              return String((y ?? 0) * 10000 + (m ?? 0) * 100 + (d ?? 0));
            }),
        ),
      ];
    }
    return await copyOnce(warehouse, {
      table: TOTALS_TABLE,
      columns: TOTALS_COLUMNS,
      sha256: input.aggregate.sha256,
      sourceKey: staging ? `staging/${staging.key}` : `${PIPELINE}.${TOTALS_TABLE} (empty)`,
      runId: input.runId,
      at: ctx.clock.now(),
      ...(staging ? { staging } : {}),
      beforeCopy: async (tx) => {
        for (let i = 0; i < days.length; i += 500) {
          await tx.execute(
            `DELETE FROM ${TOTALS_TABLE} WHERE year * 10000 + month * 100 + day IN (${days.slice(i, i + 500).join(', ')})`,
          );
        }
      },
    });
  } finally {
    await warehouse.close();
  }
}

function objectStore(ctx: PipelineContext) {
  return ctx.backend.objectStore;
}

/** What {@link runBatchPath} did; the counts reconcile (see {@link runBatchPath}). */
export interface BatchPathResult {
  readonly envelopes: number;
  readonly delivery: {
    readonly stats: DeliveryStats;
    readonly rawObjects: number;
    readonly sourceObjects: number;
    readonly errorObjects: number;
    readonly partitions: number;
  };
  readonly crawl?: CrawlResult;
  readonly dedup: DedupResult;
  readonly aggregate: AggregateResult;
  readonly warehouse: CopyOnceResult;
}

/**
 * The batch path of REFERENCE.md section 5 on a list of envelopes (in order):
 * delivery stream -> landing/nba/raw (and source) -> crawl of landing/nba/ into `nba_landing.raw`
 * and `nba_landing.source` -> dedup into `nba.tweets` -> daily `nba.players_total_tweets` -> COPY
 * into the warehouse's `players_total_tweets`, once per content.
 *
 * Reconciles (throws otherwise): `envelopes = delivered + dropped + failed`; the dedup reads exactly
 * the delivered records; `read = loaded + duplicates + quarantined`.
 *
 * @param options.crawl crawl the landing data (default true).
 */
export async function runBatchPath(
  ctx: PipelineContext,
  envelopes: readonly (Envelope | string)[],
  options: {
    runId: string;
    buffering?: { sizeBytes?: number; intervalMs?: number };
    crawl?: boolean;
  },
): Promise<BatchPathResult> {
  const delivered = await deliverEnvelopes(
    ctx,
    envelopes,
    options.buffering ? { buffering: options.buffering } : {},
  );
  const { stats } = delivered;
  if (
    stats.received !== envelopes.length ||
    stats.delivered + stats.dropped + stats.failed !== stats.received
  ) {
    throw new Error(
      `internal: delivery counts do not reconcile: ${JSON.stringify(stats)} for ${envelopes.length}`,
    );
  }
  const crawled =
    options.crawl === false
      ? undefined
      : await crawl({
          objectStore: ctx.backend.objectStore,
          catalog: ctx.backend.catalog,
          layer: 'landing',
          prefix: `${PIPELINE}/`,
          database: CRAWL_DATABASE,
          tables: ['raw', 'source'],
          createdBy: options.runId,
        });
  const dedup = await dedupTweets(ctx, { raw: delivered.raw.map((o) => o.ref), runId: options.runId });
  if (dedup.counts.read !== stats.delivered) {
    throw new Error(
      `internal: the dedup read ${dedup.counts.read} records, ${stats.delivered} were delivered`,
    );
  }
  const aggregate = await aggregateDaily(ctx, { runId: options.runId });
  const warehouse = await loadTotals(ctx, { aggregate, runId: options.runId });
  return {
    envelopes: envelopes.length,
    delivery: {
      stats,
      rawObjects: delivered.raw.length,
      sourceObjects: delivered.source.length,
      errorObjects: delivered.errors.length,
      partitions: new Set(delivered.raw.map((o) => o.partition?.join('/'))).size,
    },
    ...(crawled ? { crawl: crawled } : {}),
    dedup,
    aggregate,
    warehouse,
  };
}
