import { CONFIG_KEY_SCHEMA, CONFIG_TABLE } from '../core/config.ts';
import type { Layer } from '../core/layer.ts';
import { LEASES_TABLE } from '../core/lease.ts';
import type { PipelineDefinition } from '../core/pipeline.ts';
import type { KeySchema } from '../core/ports/kv-table.ts';
import { RUNS_BY_TIME_KEY_SCHEMA, RUNS_BY_TIME_TABLE, RUNS_TABLE } from '../core/run.ts';
import { CHECKPOINTS_TABLE } from '../core/stream-consumer.ts';
import { JOB_CHECKPOINTS_TABLE } from '../engines/stream/checkpoint-store.ts';
import { DELIVERIES_KEY_SCHEMA, DELIVERIES_TABLE } from '../runtime/trigger-dispatcher.ts';

/**
 * What the deployment must know about a pipeline that its definition does not say: the key-value
 * tables its code opens (`kv.table(name, keySchema)` calls in src/core, src/engines and
 * pipelines/), and per function the layers, tables, streams and services it touches, so each
 * function's IAM role grants exactly those (least privilege).
 *
 * Kept beside the stack rather than in the pipelines so pipelines stay backend-free; the test
 * `every function of every shipped pipeline has an access entry` keeps it complete.
 */

/** A DynamoDB table a pipeline's code opens: `<tablePrefix><name>` on AWS. */
export interface KvTableSpec {
  readonly name: string;
  readonly keySchema: KeySchema;
  /** Opened with `stream: true` (DynamoDB Streams, `NEW_AND_OLD_IMAGES`). */
  readonly stream?: boolean;
}

/** What one function touches. Layers listed in `write` are also readable. */
export interface FunctionAccess {
  readonly read?: readonly Layer[];
  /** Get, put, delete objects (S3 has no rename: commits copy or delete). */
  readonly write?: readonly Layer[];
  /** Tables beyond the common ones every function gets ({@link COMMON_TABLES}). */
  readonly tables?: readonly string[];
  /** Kinesis: `produce` (put records), `consume` (read shards), `manage` (create/delete/describe). */
  readonly streams?: readonly ('produce' | 'consume' | 'manage')[];
  /** Glue Data Catalog: the pipeline's databases (its own, its crawl database) and `sluice` (quality results). */
  readonly catalog?: boolean;
  /** Runs Athena queries in the pipeline's workgroup. */
  readonly athena?: boolean;
  /** Loads the warehouse through the Redshift Data API (`COPY ... IAM_ROLE`). */
  readonly warehouse?: boolean;
  /** Runs DuckDB in the function: gets the DuckDB layer, more memory and /tmp. */
  readonly duckdb?: boolean;
}

const S = 'S' as const;

/**
 * Tables every pipeline function opens: configuration, run log (records and their time index,
 * both written by `RunLog`), leases. Every function gets read-write access to all but `config`.
 */
export const COMMON_TABLES: readonly KvTableSpec[] = [
  { name: CONFIG_TABLE, keySchema: CONFIG_KEY_SCHEMA, stream: true },
  {
    name: RUNS_TABLE,
    keySchema: { hashKey: { name: 'pipeline', type: S }, rangeKey: { name: 'run_key', type: S } },
  },
  { name: RUNS_BY_TIME_TABLE, keySchema: RUNS_BY_TIME_KEY_SCHEMA },
  { name: LEASES_TABLE, keySchema: { hashKey: { name: 'name', type: S } } },
];

/** The tables of each shipped pipeline beyond {@link COMMON_TABLES} (names as in the pipelines' code). */
export const PIPELINE_TABLES: Readonly<Record<string, readonly KvTableSpec[]>> = {
  gharchive: [
    { name: 'jobs', keySchema: { hashKey: { name: 'job_id', type: S } } },
    {
      name: 'job_run_details',
      keySchema: { hashKey: { name: 'job_id', type: S }, rangeKey: { name: 'job_run_time', type: S } },
    },
  ],
  hashtags: [
    {
      name: CHECKPOINTS_TABLE,
      keySchema: { hashKey: { name: 'consumer_stream', type: S }, rangeKey: { name: 'shard_id', type: S } },
    },
    { name: 'hashtags_producer_runs', keySchema: { hashKey: { name: 'run_id', type: S } } },
    { name: 'hashtags_replayed_files', keySchema: { hashKey: { name: 'sha256', type: S } } },
    { name: 'sluice_dashboards', keySchema: { hashKey: { name: 'pipeline', type: S } } },
  ],
  tolls: [],
  quotes: [
    {
      name: 'quotes_raw',
      keySchema: { hashKey: { name: 'ingested_date', type: S }, rangeKey: { name: 'ingested_at', type: S } },
    },
  ],
  nba: [
    { name: 'players', keySchema: { hashKey: { name: 'account', type: S } } },
    { name: 'players_by_name', keySchema: { hashKey: { name: 'name', type: S } } },
    { name: 'tampering_control', keySchema: { hashKey: { name: 'team', type: S } }, stream: true },
    { name: 'nba_replayed_envelopes', keySchema: { hashKey: { name: 'sha256', type: S } } },
    { name: JOB_CHECKPOINTS_TABLE, keySchema: { hashKey: { name: 'job', type: S } } },
  ],
};

/**
 * Kinesis data streams the stack creates, per pipeline. hashtags is absent on purpose: its
 * KinesisLanding workflow creates and deletes its stream on every run (the original's design), so
 * the stack only grants its functions the right to do so on `hashtags-*` streams.
 */
export const PIPELINE_STREAMS: Readonly<Record<string, readonly string[]>> = {
  nba: ['nba-tweets'],
};

/** Stream names functions create themselves at run time (a name pattern under the pipeline's prefix). */
export const RUNTIME_STREAM_PATTERNS: Readonly<Record<string, string>> = {
  hashtags: 'hashtags-*',
};

/** Glue databases a pipeline's crawler writes besides its own database (tolls' `landing`, nba's `nba_landing`). */
export const CRAWL_DATABASES: Readonly<Record<string, readonly string[]>> = {
  tolls: ['landing'],
  nba: ['nba_landing'],
};

/** Per function name: what it touches (read from each function's code in pipelines/). */
export const FUNCTION_ACCESS: Readonly<Record<string, FunctionAccess>> = {
  'gharchive-ingest': { write: ['landing'], tables: ['jobs', 'job_run_details'] },
  'gharchive-transform': {
    read: ['landing'],
    write: ['analytical', 'quarantine'],
    catalog: true,
    duckdb: true,
  },
  'hashtags-create-stream': { streams: ['manage'], tables: [CHECKPOINTS_TABLE] },
  'hashtags-consumer': {
    write: ['landing'],
    streams: ['consume'],
    tables: [CHECKPOINTS_TABLE, 'hashtags_producer_runs'],
  },
  'hashtags-producer': {
    read: ['landing'],
    streams: ['produce'],
    tables: ['hashtags_producer_runs', 'hashtags_replayed_files'],
  },
  'hashtags-delete-stream': { streams: ['manage', 'consume'], tables: [CHECKPOINTS_TABLE] },
  'hashtags-delete-staging': { write: ['staging'] },
  'hashtags-process-staging': {
    read: ['landing'],
    write: ['staging', 'analytical', 'quarantine'],
    catalog: true,
    duckdb: true,
  },
  'hashtags-log-update': { write: ['analytical'], catalog: true, duckdb: true },
  'hashtags-load-analytical': { read: ['staging'], write: ['analytical'], catalog: true, duckdb: true },
  'hashtags-refresh-dashboard': {
    read: ['analytical'],
    tables: ['sluice_dashboards'],
    catalog: true,
    athena: true,
  },
  'tolls-generate': { write: ['landing'] },
  'tolls-crawl': { read: ['landing'], catalog: true },
  'tolls-job': {
    read: ['landing'],
    write: ['staging', 'analytical', 'quarantine'],
    catalog: true,
    duckdb: true,
  },
  'tolls-load': { read: ['staging'], warehouse: true },
  'quotes-poll': { tables: ['quotes_raw'] },
  'quotes-transform': { write: ['analytical'], tables: ['quotes_raw'], catalog: true, duckdb: true },
  'nba-tampering': {
    read: ['landing'],
    write: ['landing', 'analytical', 'quarantine'],
    streams: ['manage', 'consume'],
    tables: [
      'players',
      'players_by_name',
      'tampering_control',
      JOB_CHECKPOINTS_TABLE,
      'nba_replayed_envelopes',
    ],
    catalog: true,
    duckdb: true,
  },
  'nba-collect': {
    read: ['landing'],
    streams: ['manage', 'produce'],
    tables: ['nba_replayed_envelopes'],
  },
};

/**
 * The access of `functionName` in `pipeline`: its entry, or, for a function this file does not
 * know (a pipeline added later), everything the pipeline's stack holds: every layer, every table,
 * its streams and catalog, DuckDB; still scoped to the stack's own named resources.
 */
export function functionAccess(pipeline: PipelineDefinition, functionName: string): FunctionAccess {
  const known = FUNCTION_ACCESS[functionName];
  if (known) return known;
  return {
    write: ['landing', 'staging', 'analytical', 'quarantine'],
    tables: (PIPELINE_TABLES[pipeline.name] ?? []).map((t) => t.name),
    streams:
      PIPELINE_STREAMS[pipeline.name] || RUNTIME_STREAM_PATTERNS[pipeline.name]
        ? ['manage', 'produce', 'consume']
        : [],
    catalog: true,
    athena: (pipeline.queries ?? []).length > 0,
    warehouse: (pipeline.warehouseTables ?? []).length > 0,
    duckdb: true,
  };
}

/** The trigger dispatcher's record of started deliveries (one per trigger and object version). */
export const DELIVERIES: KvTableSpec = { name: DELIVERIES_TABLE, keySchema: DELIVERIES_KEY_SCHEMA };

/**
 * Every table of a pipeline's stack: the common ones, its own (names without prefix), and the
 * trigger dispatcher's deliveries when it has triggers.
 */
export function pipelineTables(pipeline: PipelineDefinition): readonly KvTableSpec[] {
  return [
    ...COMMON_TABLES,
    ...(PIPELINE_TABLES[pipeline.name] ?? []),
    ...((pipeline.triggers ?? []).length > 0 ? [DELIVERIES] : []),
  ];
}
