import type { PipelineDefinition } from '../../src/core/pipeline.ts';
import type { AslDefinition } from '../../src/core/workflow.ts';
import loadAsl from './workflows/load.asl.json' with { type: 'json' };

/** The pipeline's name: key prefix in every layer, run-log pipeline. */
export const PIPELINE = 'tolls';

/** Landing folder of the transaction files (`landing/tolls/sample_data-YYYY-mm-dd-HH-MM.json`). */
export const LANDING_PREFIX = 'tolls/';

/** Catalog database of crawled raw data; the crawled landing table is `landing.tolls`. */
export const CRAWL_DATABASE = 'landing';

/** The six toll booths of the original generator (REFERENCE.md section 2). */
export const TOLL_BOOTHS = [
  'buckley_rd',
  '82nd_st',
  'royal_ave',
  'savanna_west',
  'golf_rd',
  'york_rd',
] as const;

/** Warehouse table, as the original's `create_table.txt` (Redshift DDL; also valid PostgreSQL). */
export const TOLL_TABLE = 'toll_table';

/** Columns of {@link TOLL_TABLE} in table order; also the column order of the staging CSV. */
export const TOLL_COLUMNS = [
  'transaction_id',
  'transaction_date',
  'toll_booth',
  'vehicle_make',
  'vehicle_category',
  'transaction_amount',
] as const;

/**
 * `CREATE TABLE` of {@link TOLL_TABLE}: the original's DDL, with `IF NOT EXISTS` and Redshift's default
 * length of `character varying` (256 bytes) written out, so PostgreSQL enforces the same limit.
 */
export const TOLL_TABLE_DDL = `CREATE TABLE IF NOT EXISTS ${TOLL_TABLE} (
  transaction_id bigint,
  transaction_date varchar(256) NOT NULL,
  toll_booth varchar(256) NOT NULL,
  vehicle_make varchar(256) NOT NULL,
  vehicle_category varchar(256) NOT NULL,
  transaction_amount real
)`;

/** The load records (`sluice_loads`, one row per loaded content), shared by every COPY load. */
export { LOADS_TABLE, LOADS_TABLE_DDL } from '../../src/engines/warehouse/copy-once.ts';

/** The tolls reference pipeline (REFERENCE.md section 2). */
export const tollsPipeline: PipelineDefinition = {
  name: PIPELINE,
  description:
    'Toll transactions dropped into landing/tolls/ -> object-created trigger -> crawler -> typed job (staging, quarantine) -> COPY into the warehouse toll_table',
  source: {
    name: 'tolls',
    kind: 'files',
    description:
      'files of fake toll transactions, one Python dict repr (or JSON object) per line, dropped into landing/tolls/',
  },
  steps: [
    {
      name: 'generate',
      description: 'write a file of fake transactions into landing',
      reads: 'source',
      writes: 'landing',
    },
    {
      name: 'job',
      description: 'parse, cast and check each line into a staging CSV; quarantine bad lines',
      reads: 'landing',
      writes: 'staging',
    },
    {
      name: 'load',
      description: 'COPY the staging CSV into the warehouse toll_table, once per file content',
      reads: 'staging',
      writes: 'analytical',
    },
  ],
  datasets: [],
  warehouseTables: [{ name: TOLL_TABLE, ddl: TOLL_TABLE_DDL }],
  checks: [
    {
      // Evaluated by the job on the staging CSV (read back with DuckDB) before it is published.
      table: TOLL_TABLE,
      checks: [
        ...(['transaction_date', 'toll_booth', 'vehicle_make', 'vehicle_category'] as const).map(
          (column) =>
            ({
              kind: 'not_null',
              column,
              severity: 'block',
              description: 'NOT NULL in toll_table: the job quarantines such lines, so this guards the job',
            }) as const,
        ),
        {
          kind: 'expression',
          name: 'amount_in_range',
          predicate: 'transaction_amount IS NULL OR transaction_amount BETWEEN 0 AND 10',
          severity: 'quarantine',
          description:
            'a toll is 0..10 (the generator draws 0.01..10.00): anything else would skew revenue, so it waits in quarantine',
        },
        {
          kind: 'accepted_values',
          column: 'toll_booth',
          values: [...TOLL_BOOTHS],
          severity: 'warn',
          description: 'one of the six known booths; a new booth is plausible, so it only warns',
        },
      ],
    },
  ],
  functions: [
    {
      name: 'tolls-generate',
      description: 'write 100 fake toll transactions into landing/tolls/',
      timeoutSeconds: 60,
    },
    {
      name: 'tolls-crawl',
      description: 'crawl landing/tolls/ into the catalog table landing.tolls',
      timeoutSeconds: 300,
    },
    {
      name: 'tolls-job',
      description:
        'cast transaction_id to bigint and transaction_amount to double, enforce NOT NULL, stage CSV',
      timeoutSeconds: 900,
    },
    { name: 'tolls-load', description: 'COPY staged files into toll_table, each once', timeoutSeconds: 900 },
  ],
  workflows: [
    {
      name: 'tolls-load',
      pipeline: PIPELINE,
      description: 'per landed file: crawl -> job -> load',
      definition: loadAsl as AslDefinition,
      maxConcurrency: 2,
    },
  ],
  triggers: [
    {
      name: 'tolls-landed',
      pipeline: PIPELINE,
      description: 'a file dropped into landing/tolls/ starts its load',
      layer: 'landing',
      prefix: LANDING_PREFIX,
      suffix: '.json',
      workflow: 'tolls-load',
    },
    {
      name: 'tolls-landed-ndjson',
      pipeline: PIPELINE,
      description:
        'an NDJSON file dropped into landing/tolls/ starts its load too (the original took .json only)',
      layer: 'landing',
      prefix: LANDING_PREFIX,
      suffix: '.ndjson',
      workflow: 'tolls-load',
    },
  ],
};

/** Key of a generated file: `tolls/sample_data-YYYY-mm-dd-HH-MM.json` (UTC, as the original's name). */
export function generatedKey(at: Date, suffix = ''): string {
  const iso = at.toISOString();
  const stamp = `${iso.slice(0, 10)}-${iso.slice(11, 13)}-${iso.slice(14, 16)}`;
  return `${LANDING_PREFIX}sample_data-${stamp}${suffix}.json`;
}

/** Staging key of a landed file's accepted rows: `tolls/toll_table/<landing file stem>-<sha256 prefix>.csv`. */
export function stagingKey(landingKey: string, sha256: string): string {
  const name = landingKey.slice(landingKey.lastIndexOf('/') + 1).replace(/\.[^.]*$/, '');
  return `${PIPELINE}/${TOLL_TABLE}/${name}-${sha256.slice(0, 12)}.csv`;
}

/** Quarantine key of a landed file's rejected lines: `tolls/job/date=YYYY-MM-DD/<stem>-<sha256 prefix>.ndjson`. */
export function quarantineKey(landingKey: string, sha256: string, at: Date): string {
  const name = landingKey.slice(landingKey.lastIndexOf('/') + 1).replace(/\.[^.]*$/, '');
  return `${PIPELINE}/job/date=${at.toISOString().slice(0, 10)}/${name}-${sha256.slice(0, 12)}.ndjson`;
}
