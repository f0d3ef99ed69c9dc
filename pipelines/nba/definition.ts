import type { DatasetDefinition } from '../../src/core/dataset.ts';
import type { PipelineDefinition } from '../../src/core/pipeline.ts';
import type { AslDefinition } from '../../src/core/workflow.ts';
import collectAsl from './workflows/collect.asl.json' with { type: 'json' };
import tamperingAsl from './workflows/tampering.asl.json' with { type: 'json' };

/** The pipeline's name: key prefix in every layer, catalog database. */
export const PIPELINE = 'nba';

/** Delivery stream name (the original's Firehose delivery stream); first part of every delivered object name. */
export const DELIVERY_STREAM = 'nba-tweets';

/** Landing prefix of the delivered (transformed) tweets: `nba/raw/year=/month=/day=/`. */
export const RAW_PREFIX = `${PIPELINE}/raw/`;
/** Landing prefix of the original records (the delivery stream's source backup). */
export const SOURCE_PREFIX = `${PIPELINE}/source/`;

/** Catalog database of the crawled landing data (`landing.raw`, `landing.source` would clash: see batch.ts). */
export const CRAWL_DATABASE = 'nba_landing';

/** `nba.tweets`: the delivered tweets deduplicated on `id`, by day of `created_at`. */
export const tweetsDataset: DatasetDefinition = {
  pipeline: PIPELINE,
  name: 'tweets',
  layer: 'analytical',
  format: 'parquet',
  description: 'player tweets (Twitter API v2) delivered to landing/nba/raw/, deduplicated on id',
  columns: [
    { name: 'id', type: 'string', nullable: false, comment: 'tweet id (unique)' },
    { name: 'created_at', type: 'timestamp', nullable: false, comment: 'UTC' },
    { name: 'author_id', type: 'string' },
    { name: 'text', type: 'string' },
    { name: 'lang', type: 'string' },
    { name: 'conversation_id', type: 'string' },
    { name: 'in_reply_to_user_id', type: 'string' },
    { name: 'source', type: 'string' },
    { name: 'possibly_sensitive', type: 'boolean' },
    { name: 'public_metrics', type: 'string', logicalType: 'json' },
    { name: 'entities', type: 'string', logicalType: 'json' },
    {
      name: 'context_annotations',
      type: 'string',
      logicalType: 'json',
      comment: 'a JSON list (the source writes an empty list as {}: stored as [])',
    },
    {
      name: 'referenced_tweets',
      type: 'string',
      logicalType: 'json',
      comment: 'a JSON list ({} stored as [])',
    },
    { name: 'attachments', type: 'string', logicalType: 'json' },
    { name: 'users', type: 'string', logicalType: 'json', comment: 'includes.users of the envelope' },
    { name: 'player', type: 'string', comment: 'the handle the collector queried (sample field Player)' },
    { name: 'game_time', type: 'string', comment: 'sample field DateTime' },
    { name: 'game_id', type: 'string', comment: 'sample field GameId (basketball-reference)' },
  ],
  partitionKeys: [
    { name: 'year', type: 'int' },
    { name: 'month', type: 'int' },
    { name: 'day', type: 'int' },
  ],
  primaryKey: ['id'],
  writeDisposition: 'merge',
};

/** The daily aggregate's table name, in the lake and in the warehouse. */
export const TOTALS_TABLE = 'players_total_tweets';

/** `nba.players_total_tweets`: tweets per athlete entity and day (REFERENCE.md section 5). */
export const totalsDataset: DatasetDefinition = {
  pipeline: PIPELINE,
  name: TOTALS_TABLE,
  layer: 'analytical',
  format: 'parquet',
  description:
    'per day of created_at and athlete (context_annotations with domain.id 60, by entity.name): the number of such annotations in nba.tweets',
  columns: [
    { name: 'player', type: 'string', nullable: false, comment: 'context annotation entity.name' },
    { name: 'total', type: 'bigint', nullable: false },
  ],
  partitionKeys: [
    { name: 'year', type: 'int' },
    { name: 'month', type: 'int' },
    { name: 'day', type: 'int' },
  ],
  primaryKey: ['year', 'month', 'day', 'player'],
  writeDisposition: 'replace',
};

/** Columns of the warehouse table, in table order; also the column order of the staging CSV. */
export const TOTALS_COLUMNS = ['year', 'month', 'day', 'player', 'total'] as const;

/** `CREATE TABLE` of the warehouse's `players_total_tweets` (PostgreSQL and Redshift). */
export const TOTALS_TABLE_DDL = `CREATE TABLE IF NOT EXISTS ${TOTALS_TABLE} (
  year int NOT NULL,
  month int NOT NULL,
  day int NOT NULL,
  player varchar(256) NOT NULL,
  total bigint NOT NULL
)`;

/** The tampering alerts' table name (`nba.tampering_alerts`). */
export const ALERTS_TABLE = 'tampering_alerts';

/**
 * `nba.tampering_alerts`: every firing of the tampering job that alerted, merged on `id`
 * (`<team>|<player>|<window start ms>|<firing>`, deterministic) so a re-run of the same envelopes
 * adds nothing. Partitioned by the UTC year of the window start (the sample spans 2020-2021).
 */
export const alertsDataset: DatasetDefinition = {
  pipeline: PIPELINE,
  name: ALERTS_TABLE,
  layer: 'analytical',
  format: 'parquet',
  description:
    "tampering alerts: more than one tweet from players of a team to another team's player in one 30 s event-time window",
  columns: [
    { name: 'id', type: 'string', nullable: false, comment: '<team>|<player>|<window start ms>|<firing>' },
    { name: 'team', type: 'string', nullable: false, comment: "the source players' team" },
    { name: 'tampering_player', type: 'string', nullable: false, comment: 'the destination player (name)' },
    { name: 'total', type: 'bigint', nullable: false, comment: 'cross-team tweets counted in the window' },
    { name: 'players', type: 'array<string>', comment: 'source player names, arrival order, repeats kept' },
    { name: 'window_start', type: 'timestamp', nullable: false, comment: 'UTC, inclusive' },
    { name: 'window_end', type: 'timestamp', nullable: false, comment: 'UTC, exclusive' },
    { name: 'firing', type: 'int', nullable: false, comment: '0 on time, 1.. re-fired by late tweets' },
    { name: 'message', type: 'string', comment: 'the notification text (REFERENCE.md)' },
  ],
  partitionKeys: [{ name: 'year', type: 'int' }],
  primaryKey: ['id'],
  writeDisposition: 'merge',
};

/** Configuration keys of the tampering job (the original's Flink settings). */
export const NBA_CONFIG_DEFAULTS = {
  window_seconds: 30,
  allowed_lateness_seconds: 30,
  out_of_orderness_seconds: 20,
  idleness_seconds: 90,
} as const;

/**
 * The nba reference pipeline (REFERENCE.md section 5). `sluice run nba` replays envelopes through
 * everything (pipelines/nba/run.ts); under `sluice up` (and on AWS) the collector and the
 * continuous tampering job run as scheduled functions (pipelines/nba/continuous.ts, functions.ts).
 */
export const nbaPipeline: PipelineDefinition = {
  name: PIPELINE,
  description:
    'NBA player tweets: delivery stream -> landing/nba/raw (by day) -> dedup on id -> nba.tweets -> daily players_total_tweets -> warehouse; and the streaming tampering detector',
  source: {
    name: 'nba-tweets',
    kind: 'stream',
    description:
      'stream envelopes {event_time, data:[tweet], includes:{users:[{username}]}}; the bundled sample wraps real v2 tweets (examples/data/nba/)',
  },
  steps: [
    {
      name: 'tampering',
      description:
        'stream job: enrich, control stream, key (team, player), 30 s tumbling event-time windows -> alerts to the notifier and nba.tampering_alerts; late and all-tweets side outputs to landing/nba/',
      reads: 'source',
      writes: 'analytical',
    },
    {
      name: 'deliver',
      description:
        'delivery stream: keep data[0] + users + year/month/day, partition by day into landing/nba/raw/',
      reads: 'source',
      writes: 'landing',
    },
    {
      name: 'dedup',
      description: 'drop duplicate tweet ids into nba.tweets (Parquet by day), crawl the landing data',
      reads: 'landing',
      writes: 'analytical',
    },
    {
      name: 'aggregate',
      description: 'nba.players_total_tweets: athlete annotations per entity.name and day',
      reads: 'analytical',
      writes: 'analytical',
    },
    {
      name: 'load',
      description: 'COPY players_total_tweets through a staging CSV into the warehouse, once per content',
      reads: 'analytical',
      writes: 'staging',
    },
  ],
  datasets: [tweetsDataset, totalsDataset, alertsDataset],
  warehouseTables: [{ name: TOTALS_TABLE, ddl: TOTALS_TABLE_DDL }],
  checks: [
    {
      table: tweetsDataset.name,
      checks: [
        {
          kind: 'not_null',
          column: 'id',
          severity: 'block',
          description: 'every tweet has its id (envelopes without one are rejected before: guards that)',
        },
        {
          kind: 'unique',
          columns: ['id'],
          severity: 'block',
          description: 'no id twice after the dedup: guards it (the lake also merges on id)',
        },
        {
          kind: 'not_null',
          column: 'created_at',
          severity: 'block',
          description: 'the partition comes from created_at',
        },
      ],
    },
    {
      table: TOTALS_TABLE,
      checks: [
        {
          kind: 'not_null',
          column: 'player',
          severity: 'block',
          description: 'an athlete entity has a name',
        },
        {
          kind: 'unique',
          columns: ['year', 'month', 'day', 'player'],
          severity: 'block',
          description: 'one row per day and player (the group-by key)',
        },
        {
          kind: 'expression',
          name: 'total_positive',
          predicate: 'total > 0',
          severity: 'block',
          description: 'a group has at least one annotation',
        },
      ],
    },
    {
      table: ALERTS_TABLE,
      checks: [
        {
          kind: 'unique',
          columns: ['id'],
          severity: 'block',
          description: 'one row per firing (the lake also merges on id)',
        },
        {
          kind: 'expression',
          name: 'total_above_one',
          predicate: 'total > 1',
          severity: 'block',
          description: 'an alert needs more than one cross-team tweet in its window',
        },
      ],
    },
  ],
  functions: [
    {
      name: 'nba-tampering',
      description:
        'one invocation of the continuous tampering job: restore the checkpoint, apply control changes, drain the stream nba-tweets, write alerts and side outputs, checkpoint',
      timeoutSeconds: 300,
    },
    {
      name: 'nba-collect',
      description:
        'the collector: live filtered stream (rule nba) or the replay_envelopes file (once per content) onto the stream nba-tweets',
      timeoutSeconds: 900,
    },
  ],
  workflows: [
    {
      name: 'nba-tampering',
      pipeline: PIPELINE,
      description:
        'drain the tweet stream through the tampering job from its checkpoint (Flink on KDA replaced)',
      definition: tamperingAsl as AslDefinition,
      maxConcurrency: 1,
    },
    {
      name: 'nba-collect',
      pipeline: PIPELINE,
      description: 'collect tweets (live or replayed envelopes) onto the stream nba-tweets',
      definition: collectAsl as AslDefinition,
      maxConcurrency: 1,
    },
  ],
  schedules: [
    {
      name: 'nba-tampering-every-minute',
      pipeline: PIPELINE,
      description:
        'drain the stream every minute (the event-source-mapping analog): the job is continuous across invocations',
      expression: 'rate(1 minute)',
      workflow: 'nba-tampering',
      // The next invocation reads everything a missed one would have: nothing is lost by skipping.
      missedRunPolicy: 'skip',
    },
    {
      name: 'nba-collect-every-minute',
      pipeline: PIPELINE,
      description: 'collect live tweets for live_seconds, or replay a new replay_envelopes file',
      expression: 'rate(1 minute)',
      workflow: 'nba-collect',
      missedRunPolicy: 'skip',
    },
  ],
  config: {
    stream_name: { description: 'the tweet stream (Kinesis data stream on AWS)', default: 'nba-tweets' },
    stream_shards: { description: 'shards of the tweet stream when the functions create it', default: 1 },
    drain_seconds: {
      description: 'longest drain of one nba-tampering invocation, seconds (it stops earlier once caught up)',
      default: 50,
    },
    replay_envelopes: {
      description:
        "NDJSON envelope file the collector puts on the stream once per content when no TWITTER_BEARER_TOKEN is set ('' = none)",
      default: '',
    },
    live_seconds: {
      description: 'how long one collector invocation reads the live filtered stream, seconds',
      default: 50,
    },
    window_seconds: {
      description: 'tampering: tumbling event-time window size, seconds',
      default: NBA_CONFIG_DEFAULTS.window_seconds,
    },
    allowed_lateness_seconds: {
      description: 'tampering: allowed lateness of a window after the watermark passed its end, seconds',
      default: NBA_CONFIG_DEFAULTS.allowed_lateness_seconds,
    },
    out_of_orderness_seconds: {
      description: 'tampering: bounded out-of-orderness of the watermark, seconds',
      default: NBA_CONFIG_DEFAULTS.out_of_orderness_seconds,
    },
    idleness_seconds: {
      description: 'tampering: a source without records this long stops holding the watermark back, seconds',
      default: NBA_CONFIG_DEFAULTS.idleness_seconds,
    },
  },
};
