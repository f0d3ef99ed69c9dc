import type { Layer } from './layer.ts';
import type { TableDefinition } from './ports/catalog.ts';
import type { Column } from './schema.ts';

/**
 * How a write treats data already in the dataset (dlt's term):
 * - `append`: add the new rows;
 * - `replace`: the new rows replace the partitions they touch;
 * - `merge`: rows are upserted on the primary key; a key already present is not written again.
 */
export type WriteDisposition = 'append' | 'replace' | 'merge';

/**
 * A dataset a pipeline publishes: a table in a layer, with its schema, Hive partitioning,
 * primary key and write disposition. The catalog table `<pipeline>.<name>` is derived from it.
 */
export interface DatasetDefinition {
  /** Owning pipeline; also the catalog database. */
  readonly pipeline: string;
  /** Table name (`events`). */
  readonly name: string;
  readonly layer: Layer;
  readonly format: 'parquet';
  readonly description: string;
  /** Data columns in file order. */
  readonly columns: readonly Column[];
  /** Hive partition keys in path order. Values are written as they appear in the path. */
  readonly partitionKeys: readonly Column[];
  /** Columns that identify a row; required for `merge`. */
  readonly primaryKey?: readonly string[];
  readonly writeDisposition: WriteDisposition;
}

/** Key prefix of a dataset's data in its layer: `<pipeline>/<name>/`. */
export function datasetPrefix(dataset: Pick<DatasetDefinition, 'pipeline' | 'name'>): string {
  return `${dataset.pipeline}/${dataset.name}/`;
}

/** The catalog table definition of a dataset. */
export function tableDefinitionOf(dataset: DatasetDefinition): TableDefinition {
  return {
    database: dataset.pipeline,
    name: dataset.name,
    location: { layer: dataset.layer, prefix: datasetPrefix(dataset) },
    format: dataset.format,
    columns: dataset.columns,
    partitionKeys: dataset.partitionKeys,
    description: dataset.description,
    ...(dataset.primaryKey ? { primaryKey: dataset.primaryKey } : {}),
    managedBy: 'pipeline',
  };
}
