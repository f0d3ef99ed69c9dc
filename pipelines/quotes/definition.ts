import type { DatasetDefinition } from '../../src/core/dataset.ts';
import type { PipelineDefinition } from '../../src/core/pipeline.ts';
import type { KeySchema } from '../../src/core/ports/kv-table.ts';
import type { TableChecks } from '../../src/core/quality.ts';
import type { NamedQuery } from '../../src/core/query.ts';
import type { Column } from '../../src/core/schema.ts';
import type { AslDefinition } from '../../src/core/workflow.ts';
import pollAsl from './workflows/poll.asl.json' with { type: 'json' };
import transformAsl from './workflows/transform.asl.json' with { type: 'json' };

/** The pipeline's name: catalog database, key prefix in the lake, run-log pipeline. */
export const PIPELINE = 'quotes';

/**
 * Default API base URL: the local fixture server as `sluice fixture-server quotes --port 8787`
 * serves it (the public api.quotable.io is offline). `sluice config set quotes api_url URL`.
 */
export const DEFAULT_API_URL = 'http://127.0.0.1:8787';

/** The key-value table the poller writes (DynamoDB `quotes_raw` in the original). */
export const RAW_TABLE = 'quotes_raw';

/** `quotes_raw`: hash key the UTC date of the poll, range key its UTC timestamp (as the original). */
export const RAW_KEY_SCHEMA: KeySchema = {
  hashKey: { name: 'ingested_date', type: 'S' },
  rangeKey: { name: 'ingested_at', type: 'S' },
};

/**
 * Hive partition key of both analytical tables: the ingested (UTC) date, `dt=YYYY-MM-DD`. Named
 * `dt` because `quotes_fact` already has a data column `ingested_date` (Glue refuses a partition
 * key with a data column's name); one day is one partition, so a day's re-run replaces exactly it.
 */
const dayPartition: Column[] = [{ name: 'dt', type: 'date', comment: 'ingested date (UTC)' }];

/** `quotes.quotes_fact`: one row per poll of the day (the original's `quotes_fact` CTAS). */
export const quotesFactDataset: DatasetDefinition = {
  pipeline: PIPELINE,
  name: 'quotes_fact',
  layer: 'analytical',
  format: 'parquet',
  description: 'one row per poll of the quotable API: the quote drawn and when (quotes_raw renamed)',
  columns: [
    { name: 'quote_id', type: 'string', nullable: false, comment: 'quotable _id' },
    { name: 'quote_text', type: 'string', comment: 'quotable content' },
    { name: 'author', type: 'string' },
    { name: 'author_slug', type: 'string', comment: 'quotable authorSlug' },
    { name: 'tag_list', type: 'array<string>', comment: 'quotable tags (slugs)' },
    { name: 'character_count', type: 'int', comment: 'quotable length' },
    { name: 'added_date', type: 'date', comment: 'quotable dateAdded' },
    { name: 'modified_date', type: 'date', comment: 'quotable dateModified' },
    { name: 'ingested_date', type: 'date', nullable: false, comment: 'UTC date of the poll' },
    { name: 'ingested_at', type: 'timestamp', nullable: false, comment: 'UTC time of the poll' },
  ],
  partitionKeys: dayPartition,
  primaryKey: ['ingested_date', 'ingested_at'],
  writeDisposition: 'replace',
};

/**
 * `quotes.quotes_agg`: one row per distinct (quote_id, quote_text, author) of the day (the
 * original's `quotes_agg` CTAS); `ingestion_dates` keeps the original's name for the sorted list
 * of ingestion timestamps.
 */
export const quotesAggDataset: DatasetDefinition = {
  pipeline: PIPELINE,
  name: 'quotes_agg',
  layer: 'analytical',
  format: 'parquet',
  description: 'per quote and day: how often it was drawn, first and last time, every time',
  columns: [
    { name: 'quote_id', type: 'string', nullable: false },
    { name: 'quote_text', type: 'string' },
    { name: 'author', type: 'string' },
    { name: 'quote_count', type: 'bigint', nullable: false, comment: 'polls that drew it that day' },
    { name: 'first_ingestion', type: 'timestamp', comment: 'UTC' },
    { name: 'last_ingestion', type: 'timestamp', comment: 'UTC' },
    {
      name: 'ingestion_dates',
      type: 'array<timestamp>',
      comment: 'every ingestion time of the quote that day, ascending (UTC)',
    },
  ],
  partitionKeys: dayPartition,
  primaryKey: ['quote_id', 'quote_text', 'author'],
  writeDisposition: 'replace',
};

/** Data-quality checks, evaluated on the day's rows before anything of the day is published. */
export const quotesChecks: readonly TableChecks[] = [
  {
    table: quotesFactDataset.name,
    checks: [
      {
        kind: 'row_count',
        min: 1,
        severity: 'block',
        description: 'a published day has at least one poll',
      },
      {
        kind: 'not_null',
        column: 'quote_id',
        severity: 'block',
        description: 'every poll stored the id of the quote it drew',
      },
      {
        kind: 'not_null',
        column: 'ingested_at',
        severity: 'block',
        description: 'every poll has its time (the range key of quotes_raw)',
      },
      {
        kind: 'unique',
        columns: ['ingested_at'],
        severity: 'block',
        description: 'one row per poll: the range key of quotes_raw is unique within a day',
      },
      {
        kind: 'expression',
        name: 'in_its_day',
        predicate: 'ingested_date = CAST(ingested_at AS DATE)',
        severity: 'block',
        description: 'each poll sits in the partition of its own UTC date',
      },
      {
        kind: 'expression',
        name: 'length_matches_text',
        predicate: 'character_count = length(quote_text)',
        severity: 'warn',
        description: "quotable's length is the number of characters of the quote's content",
      },
    ],
  },
  {
    table: quotesAggDataset.name,
    checks: [
      {
        kind: 'expression',
        name: 'count_matches_times',
        predicate: 'quote_count = len(ingestion_dates) AND first_ingestion <= last_ingestion',
        severity: 'block',
        description: 'the count, the first/last times and the list of times agree',
      },
      {
        kind: 'unique',
        columns: ['quote_id'],
        severity: 'warn',
        description:
          'a quote whose text or author changed during the day is aggregated twice (grouped by id, text and author, as the original)',
      },
    ],
  },
];

/** Named queries over the quotes tables. */
export const quotesQueries: readonly NamedQuery[] = [
  {
    database: PIPELINE,
    name: 'top_quotes',
    description: 'the most drawn quotes of a day (default: every day), most drawn first',
    sql: `SELECT dt, quote_id, quote_text, author, quote_count, first_ingestion, last_ingestion
FROM quotes.quotes_agg
WHERE $date IS NULL OR dt = CAST($date AS DATE)
ORDER BY dt DESC, quote_count DESC, first_ingestion, quote_id
LIMIT $limit`,
    parameters: {
      date: { type: 'string', description: 'the ingested date, YYYY-MM-DD', default: 'NULL' },
      limit: { type: 'bigint', description: 'rows returned', default: '10' },
    },
  },
];

/** The quotes reference pipeline (REFERENCE.md section 4). */
export const quotesPipeline: PipelineDefinition = {
  name: PIPELINE,
  description:
    'Poll the quotable API every minute into the key-value table quotes_raw; daily, build quotes_fact and quotes_agg in DuckDB as Parquet, with statistics and checks',
  source: {
    name: 'quotable',
    kind: 'http-api',
    description:
      'GET {api_url}/quotes/random (a JSON array; the last element is kept); api.quotable.io is offline, `sluice fixture-server quotes` serves its documents',
    defaultLocation: DEFAULT_API_URL,
  },
  steps: [
    {
      name: 'poll',
      description: 'draw a random quote from the API and put it into the key-value table quotes_raw',
      reads: 'source',
      writes: 'landing',
    },
    {
      name: 'transform',
      description:
        "read every page of a day's quotes_raw partition; quotes_fact and quotes_agg as that day's Parquet partitions; statistics",
      reads: 'landing',
      writes: 'analytical',
    },
  ],
  datasets: [quotesFactDataset, quotesAggDataset],
  checks: quotesChecks,
  queries: quotesQueries,
  functions: [
    {
      name: 'quotes-poll',
      description: 'poll the API once (with retries) into quotes_raw',
      timeoutSeconds: 60,
    },
    {
      name: 'quotes-transform',
      description:
        "transform yesterday's (or the event's `date`) quotes_raw partition into quotes_fact and quotes_agg",
      timeoutSeconds: 900,
    },
  ],
  workflows: [
    {
      name: 'quotes-poll',
      pipeline: PIPELINE,
      description: 'every minute: one quote into quotes_raw',
      definition: pollAsl as AslDefinition,
    },
    {
      name: 'quotes-transform',
      pipeline: PIPELINE,
      description: "daily: yesterday's polls -> quotes_fact, quotes_agg, statistics",
      definition: transformAsl as AslDefinition,
      maxConcurrency: 1,
    },
  ],
  schedules: [
    {
      name: 'quotes-poll-every-minute',
      pipeline: PIPELINE,
      description: 'the original polled once a minute (EventBridge Scheduler rate(1 minute))',
      expression: 'rate(1 minute)',
      workflow: 'quotes-poll',
      // A quote not drawn at its minute cannot be drawn later: missed minutes stay missed.
      missedRunPolicy: 'skip',
    },
    {
      name: 'quotes-transform-daily',
      pipeline: PIPELINE,
      description: "at 12:00 UTC, transform yesterday's polls (the original's daily schedule)",
      expression: 'cron(0 12 * * ? *)',
      workflow: 'quotes-transform',
      missedRunPolicy: 'run-once',
    },
  ],
  config: {
    api_url: {
      description: `base URL of the quotable-shaped API; empty: not configured, the scheduled poll does nothing (\`sluice fixture-server quotes --port 8787\` serves ${DEFAULT_API_URL})`,
      default: '',
    },
    request_timeout_seconds: { description: 'longest wait for one answer of the API, seconds', default: 10 },
    request_retries: {
      description: 'retries of one poll after a timeout, a network error, a 5xx or a bad body',
      default: 2,
    },
    retry_base_seconds: {
      description: 'wait before the first retry, seconds; doubles with each retry',
      default: 1,
    },
  },
};

/** The UTC date (`YYYY-MM-DD`) of an instant: the hash key of its poll. */
export function utcDate(at: Date): string {
  return at.toISOString().slice(0, 10);
}

/** Checks a `YYYY-MM-DD` day (a real calendar date). */
export function isDay(value: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return false;
  const at = new Date(`${value}T00:00:00.000Z`);
  return !Number.isNaN(at.getTime()) && utcDate(at) === value;
}

/** The day before `day` (`YYYY-MM-DD`). */
export function previousDay(day: string): string {
  return utcDate(new Date(Date.parse(`${day}T00:00:00.000Z`) - 86_400_000));
}
