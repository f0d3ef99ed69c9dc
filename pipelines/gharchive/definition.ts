import type { DatasetDefinition } from '../../src/core/dataset.ts';
import type { PipelineDefinition } from '../../src/core/pipeline.ts';
import type { AslDefinition } from '../../src/core/workflow.ts';
import ingestAsl from './workflows/ingest.asl.json' with { type: 'json' };
import transformAsl from './workflows/transform.asl.json' with { type: 'json' };

/** Default GH Archive location; `--source-url` overrides it. */
export const GHARCHIVE_URL = 'https://data.gharchive.org';

/**
 * `gharchive.events`: one row per GitHub event, `id` unique across all runs. `actor`, `repo` and
 * `org` are flattened into columns; `payload` is kept whole as JSON; `created_at` is a UTC
 * timestamp. Snappy Parquet under `year=YYYY/month=MM/dayofmonth=DD/` (zero-padded), from
 * `created_at`.
 */
export const eventsDataset: DatasetDefinition = {
  pipeline: 'gharchive',
  name: 'events',
  layer: 'analytical',
  format: 'parquet',
  description: 'GitHub events from GH Archive, flattened and deduplicated on id',
  columns: [
    { name: 'id', type: 'bigint', nullable: false, comment: 'event id (unique)' },
    { name: 'type', type: 'string', comment: 'event type, e.g. PushEvent' },
    { name: 'actor_id', type: 'bigint' },
    { name: 'actor_login', type: 'string' },
    { name: 'actor_display_login', type: 'string', comment: 'present in GH Archive hours since ~2016' },
    { name: 'actor_gravatar_id', type: 'string' },
    { name: 'actor_url', type: 'string' },
    { name: 'actor_avatar_url', type: 'string' },
    { name: 'repo_id', type: 'bigint' },
    { name: 'repo_name', type: 'string', comment: 'owner/name' },
    { name: 'repo_url', type: 'string' },
    { name: 'org_id', type: 'bigint' },
    { name: 'org_login', type: 'string' },
    { name: 'org_gravatar_id', type: 'string' },
    { name: 'org_url', type: 'string' },
    { name: 'org_avatar_url', type: 'string' },
    { name: 'payload', type: 'string', logicalType: 'json', comment: 'the event payload, whole, as JSON' },
    { name: 'public', type: 'boolean' },
    { name: 'created_at', type: 'timestamp', nullable: false, comment: 'UTC' },
  ],
  partitionKeys: [
    { name: 'year', type: 'int' },
    { name: 'month', type: 'int' },
    { name: 'dayofmonth', type: 'int' },
  ],
  primaryKey: ['id'],
  writeDisposition: 'merge',
};

/** The gharchive reference pipeline (REFERENCE.md section 3). */
export const gharchivePipeline: PipelineDefinition = {
  name: 'gharchive',
  description:
    'Hourly GH Archive files: bookmark -> download -> landing (raw .json.gz) -> flatten, dedupe -> partitioned Parquet, cataloged',
  source: {
    name: 'gharchive',
    kind: 'http-archive',
    description: 'Hourly gzip NDJSON files YYYY-MM-DD-H.json.gz',
    defaultLocation: GHARCHIVE_URL,
  },
  steps: [
    {
      name: 'ingest',
      description: 'download the next hour file into landing',
      reads: 'source',
      writes: 'landing',
    },
    {
      name: 'transform',
      description: 'validate, flatten, dedupe and write partitioned Parquet; quarantine bad records',
      reads: 'landing',
      writes: 'analytical',
    },
  ],
  datasets: [eventsDataset],
  checks: [
    {
      table: eventsDataset.name,
      checks: [
        {
          kind: 'not_null',
          column: 'id',
          severity: 'block',
          description: 'every event has its id (events without one are quarantined before: guards that)',
        },
        {
          kind: 'unique',
          columns: ['id'],
          severity: 'block',
          description:
            'no id twice within the hour, after its own dedup: guards the dedup (the lake merges on id)',
        },
        {
          kind: 'not_null',
          column: 'created_at',
          severity: 'block',
          description: 'every event has its time: it decides the partition',
        },
        {
          kind: 'expression',
          name: 'type_is_event_type',
          predicate: "regexp_full_match(type, '[A-Z][A-Za-z]*Event')",
          severity: 'warn',
          description:
            'type looks like a GitHub event type (PushEvent, ...); GH Archive has many over the years, so a new one warns only',
        },
      ],
    },
  ],
  functions: [
    {
      name: 'gharchive-ingest',
      description: 'land every published hour after the bookmark; move the bookmark after each',
      timeoutSeconds: 900,
    },
    {
      name: 'gharchive-transform',
      description: 'transform the landed hour files of an S3 event into gharchive.events',
      timeoutSeconds: 900,
    },
  ],
  workflows: [
    {
      name: 'gharchive-ingest',
      pipeline: 'gharchive',
      description: 'hourly: land new GH Archive hours',
      definition: ingestAsl as AslDefinition,
      maxConcurrency: 1,
    },
    {
      name: 'gharchive-transform',
      pipeline: 'gharchive',
      description: 'per landed hour file: landing -> analytical',
      definition: transformAsl as AslDefinition,
    },
  ],
  schedules: [
    {
      name: 'gharchive-hourly',
      pipeline: 'gharchive',
      description: 'GH Archive publishes one file per hour',
      expression: 'rate(1 hour)',
      workflow: 'gharchive-ingest',
      missedRunPolicy: 'run-once',
    },
  ],
  triggers: [
    {
      name: 'gharchive-landed',
      pipeline: 'gharchive',
      description: 'a landed hour file starts its transform',
      layer: 'landing',
      prefix: 'gharchive/',
      suffix: '.json.gz',
      workflow: 'gharchive-transform',
    },
  ],
  config: {
    source_url: {
      description: 'base URL or directory of the hour files',
      default: GHARCHIVE_URL,
    },
  },
};

/** Landing key of an hour file: `gharchive/date=YYYY-MM-DD/<file>`. */
export function landingKey(fileName: string): string {
  return `gharchive/date=${fileName.slice(0, 10)}/${fileName}`;
}

/** Quarantine key of an hour's rejected records: `gharchive/events/date=YYYY-MM-DD/<unit>.ndjson`. */
export function quarantineKey(unit: string): string {
  return `gharchive/events/date=${unit.slice(0, 10)}/${unit}.ndjson`;
}
