import { readFileSync } from 'node:fs';
import type { DatasetDefinition } from '../../src/core/dataset.ts';
import type { PipelineDefinition } from '../../src/core/pipeline.ts';
import type { NamedQuery, QueryParameter } from '../../src/core/query.ts';
import type { Column } from '../../src/core/schema.ts';
import type { AslDefinition } from '../../src/core/workflow.ts';
import kinesisLandingAsl from './workflows/kinesis-landing.asl.json' with { type: 'json' };
import landingAnalyticalAsl from './workflows/landing-analytical.asl.json' with { type: 'json' };

/** The pipeline's name: catalog database, key prefix in every layer, run-log pipeline. */
export const PIPELINE = 'hashtags';

/** Default name of the tweet stream (Kinesis stream on AWS). */
export const DEFAULT_STREAM = 'hashtags-tweets';

/** Name of the stream consumer whose checkpoints the landing step keeps. */
export const CONSUMER = 'hashtags-landing';

/**
 * Columns of a landing CSV object, in file order, no header (REFERENCE.md section 1):
 * the stream record's sequence number, its arrival time (ISO-8601 UTC, ms), then the fields the
 * producer sent.
 */
export const LANDING_COLUMNS = [
  'record_id',
  'timestamp',
  'created',
  'tweet_id',
  'user_name',
  'rt_count',
  'hashtags',
  'text',
] as const;

const yearMonthDay: Column[] = [
  { name: 'year', type: 'int' },
  { name: 'month', type: 'int' },
  { name: 'day', type: 'int' },
];

/** Columns shared by staging and `hashtag_data` (REFERENCE.md section 1, "Analytical"). */
const hashtagColumns: Column[] = [
  {
    name: 'hash_id',
    type: 'string',
    nullable: false,
    comment: 'base64(sha1(record_id + tweet_id + hashtag)); primary key',
  },
  { name: 'record_id', type: 'string', nullable: false, comment: 'stream sequence number of the record' },
  { name: 'time_stamp', type: 'timestamp', nullable: false, comment: 'arrival on the stream, UTC, seconds' },
  { name: 'created', type: 'timestamp', comment: 'creation of the original tweet, UTC' },
  { name: 'tweet_id', type: 'string', comment: 'id of the original (retweeted) tweet' },
  { name: 'user_name', type: 'string', comment: 'screen name of the original tweet author' },
  { name: 'rt_count', type: 'bigint', comment: 'retweet count of the original tweet when captured' },
  { name: 'hashtag', type: 'string', nullable: false, comment: 'one hashtag, cleaned to [A-Za-z0-9]' },
  { name: 'polarity', type: 'double', comment: 'VADER compound score of text_clean, -1..1' },
  { name: 'subjectivity', type: 'double', comment: 'VADER pos + neg share of text_clean, 0..1' },
  { name: 'text_clean', type: 'string', comment: 'text without URLs, RT, amp, emoji and punctuation' },
];

/**
 * `hashtags.staging`: the hashtag rows of the landing objects of the current batch. Replaced as a
 * whole by each LandingAnalytical run ("old staging data is deleted first").
 */
export const stagingDataset: DatasetDefinition = {
  pipeline: PIPELINE,
  name: 'staging',
  layer: 'staging',
  format: 'parquet',
  description: 'hashtag rows of the current landing batch: cleaned text, sentiment, one row per hashtag',
  columns: hashtagColumns,
  partitionKeys: yearMonthDay,
  primaryKey: ['hash_id'],
  writeDisposition: 'append',
};

/**
 * `hashtags.hashtag_data`: every hashtag row ever staged, appended from staging when staging has
 * rows. Merged on `hash_id`, so re-loading a batch never duplicates a row.
 */
export const hashtagDataDataset: DatasetDefinition = {
  pipeline: PIPELINE,
  name: 'hashtag_data',
  layer: 'analytical',
  format: 'parquet',
  description: 'popular English retweets: one row per hashtag, with sentiment, by arrival date',
  columns: hashtagColumns,
  partitionKeys: yearMonthDay,
  primaryKey: ['hash_id'],
  writeDisposition: 'merge',
};

/** `hashtags.data_update_log`: one row per load of a table (operational). */
export const updateLogDataset: DatasetDefinition = {
  pipeline: PIPELINE,
  name: 'data_update_log',
  layer: 'analytical',
  format: 'parquet',
  description: 'one row per load: when, which table, how many rows were inserted',
  columns: [
    { name: 'time_stamp', type: 'timestamp', nullable: false, comment: 'UTC' },
    { name: 'table_name', type: 'string', nullable: false },
    { name: 'records_inserted', type: 'bigint', nullable: false },
    { name: 'run_id', type: 'string', comment: 'the sluice run that loaded' },
  ],
  partitionKeys: yearMonthDay,
  writeDisposition: 'append',
};

const periodParameters: { readonly [name: string]: QueryParameter } = {
  since: { type: 'timestamp', description: 'first arrival time included (UTC)', default: 'NULL' },
  until: { type: 'timestamp', description: 'first arrival time excluded (UTC)', default: 'NULL' },
  limit: { type: 'bigint', description: 'rows returned', default: '20' },
};

function query(name: string, description: string): NamedQuery {
  const sql = readFileSync(new URL(`./queries/${name}.sql`, import.meta.url), 'utf8');
  return { database: PIPELINE, name, description, sql, parameters: periodParameters };
}

/** The named queries shipped with the pipeline (SQL in `queries/`). */
export const hashtagsQueries: readonly NamedQuery[] = [
  query('top_hashtags', 'hashtags by arrivals over a period, with distinct tweets and users'),
  query('hashtag_sentiment', 'mean polarity and subjectivity per hashtag over a period'),
  query('top_users', 'authors of the original tweets by retweets captured over a period'),
];

/** The hashtags reference pipeline (REFERENCE.md section 1). */
export const hashtagsPipeline: PipelineDefinition = {
  name: PIPELINE,
  description:
    'Tweets -> producer filter -> stream -> landing CSV -> staging (clean text, sentiment, one row per hashtag) -> analytical hashtag_data',
  source: {
    name: 'twitter',
    kind: 'stream',
    description:
      'Twitter API v2 filtered stream (bearer token in TWITTER_BEARER_TOKEN), or replay of captured v1.1/v2 files',
  },
  steps: [
    {
      name: 'produce',
      description: 'read tweets, keep popular English retweets with hashtags, put them on the stream',
      reads: 'source',
      writes: 'landing',
    },
    {
      name: 'land',
      description: 'consume the stream into landing CSV objects',
      reads: 'source',
      writes: 'landing',
    },
    {
      name: 'staging',
      description: 'clean text, score sentiment, explode and dedupe hashtags',
      reads: 'landing',
      writes: 'staging',
    },
    {
      name: 'analytical',
      description: 'append new staging rows to hashtag_data and log the load',
      reads: 'staging',
      writes: 'analytical',
    },
  ],
  datasets: [stagingDataset, hashtagDataDataset, updateLogDataset],
  checks: [
    {
      // Evaluated on each batch before it is written to staging, so they hold for hashtag_data too.
      table: stagingDataset.name,
      checks: [
        {
          kind: 'unique',
          columns: ['hash_id'],
          severity: 'block',
          description:
            'one row per record and hashtag (hash_id is the primary key hashtag_data merges on): guards the dedup and the hash',
        },
        {
          kind: 'expression',
          name: 'sentiment_in_range',
          predicate: 'polarity BETWEEN -1 AND 1 AND subjectivity BETWEEN 0 AND 1',
          severity: 'quarantine',
          description:
            'VADER compound in [-1, 1] and subjectivity in [0, 1]; anything else (NaN, NULL) is a scoring bug',
        },
        {
          kind: 'not_null',
          column: 'hashtag',
          severity: 'block',
          description: 'every row names its hashtag',
        },
      ],
    },
  ],
  queries: hashtagsQueries,
  functions: [
    {
      name: 'hashtags-create-stream',
      description: 'create the tweet stream (or reuse it)',
      timeoutSeconds: 60,
    },
    {
      name: 'hashtags-consumer',
      description: 'read the stream into landing CSV until the producer is done and drained',
      timeoutSeconds: 900,
    },
    {
      name: 'hashtags-producer',
      description: 'read tweets (live stream or replay), filter, put them on the stream',
      timeoutSeconds: 900,
    },
    {
      name: 'hashtags-delete-stream',
      description: 'delete the tweet stream once its consumer has read every record',
      timeoutSeconds: 60,
    },
    { name: 'hashtags-delete-staging', description: 'delete the old staging data', timeoutSeconds: 300 },
    {
      name: 'hashtags-process-staging',
      description: 'recent landing CSV -> staging hashtag rows with sentiment',
      timeoutSeconds: 900,
    },
    { name: 'hashtags-log-update', description: 'append a row to data_update_log', timeoutSeconds: 60 },
    {
      name: 'hashtags-load-analytical',
      description: 'append the staging rows not yet in hashtag_data',
      timeoutSeconds: 900,
    },
    {
      name: 'hashtags-refresh-dashboard',
      description: 'recompute the dashboard snapshot from the named queries',
      timeoutSeconds: 300,
    },
  ],
  workflows: [
    {
      name: 'hashtags-kinesis-landing',
      pipeline: PIPELINE,
      description: 'KinesisLanding: create stream, consume and produce in parallel, delete stream',
      definition: kinesisLandingAsl as AslDefinition,
      maxConcurrency: 1,
    },
    {
      name: 'hashtags-landing-analytical',
      pipeline: PIPELINE,
      description: 'LandingAnalytical: old staging out, landing -> staging -> analytical, logs, dashboard',
      definition: landingAnalyticalAsl as AslDefinition,
      maxConcurrency: 1,
    },
  ],
  schedules: [
    {
      name: 'hashtags-landing-hourly',
      pipeline: PIPELINE,
      description: 'capture tweets at the top of every hour',
      expression: 'cron(0 * * * ? *)',
      workflow: 'hashtags-kinesis-landing',
      missedRunPolicy: 'skip',
    },
    {
      name: 'hashtags-analytical-hourly',
      pipeline: PIPELINE,
      description: 'process the captured tweets at half past every hour',
      expression: 'cron(30 * * * ? *)',
      workflow: 'hashtags-landing-analytical',
      missedRunPolicy: 'run-once',
    },
  ],
  config: {
    source: {
      description:
        "'live' (Twitter filtered stream, needs TWITTER_BEARER_TOKEN), 'replay' (replay_files), or 'auto' (live when a token is set)",
      default: 'auto',
    },
    replay_files: {
      description:
        'capture files replayed by the producer ([] = the bundled samples in examples/data/hashtags)',
      default: [],
    },
    replay_rate: { description: 'statuses per second when replaying (0 = as fast as possible)', default: 0 },
    live_seconds: { description: 'how long the producer reads the live stream, seconds', default: 60 },
    rules: {
      description: 'filtered-stream rules (value, tag) kept on the account before reading live',
      default: [{ value: 'has:hashtags is:retweet lang:en', tag: 'sluice-hashtags' }],
    },
    stream_name: { description: 'name of the tweet stream', default: DEFAULT_STREAM },
    stream_shards: { description: 'shards of the tweet stream', default: 1 },
    consumer_seconds: {
      description:
        'longest time the consumer reads, seconds (it stops earlier once the producer is done and the stream is drained)',
      default: 600,
    },
    producer_retry_grace_seconds: {
      description:
        'how long the consumer keeps reading after the producer failed, for its Retry (5 + 10 + 20 s), seconds',
      default: 40,
    },
    staging_lookback_hours: {
      description: 'landing objects modified within this many hours are staged by LandingAnalytical',
      default: 2,
    },
  },
};

/** Landing key of a CSV object: `hashtags/YYYY/MM/DD/<stream>-HHMMSS-<first sequence number>.csv` (UTC). */
export function landingKey(stream: string, at: Date, firstSequenceNumber: string): string {
  const iso = at.toISOString();
  const hhmmss = iso.slice(11, 19).replaceAll(':', '');
  return `${PIPELINE}/${iso.slice(0, 4)}/${iso.slice(5, 7)}/${iso.slice(8, 10)}/${stream}-${hhmmss}-${firstSequenceNumber}.csv`;
}

/** Quarantine key of a step's rejected records: `hashtags/<step>/date=YYYY-MM-DD/<run id>.ndjson`. */
export function quarantineKey(step: string, runId: string, at: Date): string {
  return `${PIPELINE}/${step}/date=${at.toISOString().slice(0, 10)}/${runId}.ndjson`;
}
