import type { Layer } from '../layer.ts';
import type { Column } from '../schema.ts';

/**
 * Catalog port: databases (one per pipeline), tables with columns and partition keys, partitions,
 * and schema versions. Shaped after the AWS Glue Data Catalog (`CreateTable`/`UpdateTable`,
 * `BatchCreatePartition`, `GetTableVersions`), which is the AWS backend; locally it is SQLite.
 * Contract: test/conformance/catalog.case.ts.
 */

/**
 * Storage formats the catalog knows:
 * - `parquet`;
 * - `ndjson`: JSON, one object per line, or files holding one JSON array of objects;
 * - `csv`: delimited text with a header line;
 * - `python-dict`: lines of Python dict reprs (`{'id': 1, 'ok': True}`), as the tolls generator
 *   writes them (`f"{record}\n"`), possibly mixed with JSON object lines. No SQL engine reads it
 *   (Athena's JSON SerDes reject single quotes; a Glue crawler needs a custom classifier, e.g. a
 *   Grok or a custom JSON classifier, to catalog it): a job parses it
 *   (src/engines/pydict/python-literal.ts) and writes a readable format.
 */
export type TableFormat = 'parquet' | 'ndjson' | 'csv' | 'python-dict';

/** What a writer or crawler declares about a table. */
export interface TableDefinition {
  /** Database name; sluice uses the pipeline name (`gharchive`). */
  readonly database: string;
  /** Table name inside the database (`events`). Queries see it as `<database>.<name>`. */
  readonly name: string;
  /** Where the data lives: a layer and a key prefix ending in `/` (`gharchive/events/`). */
  readonly location: { readonly layer: Layer; readonly prefix: string };
  readonly format: TableFormat;
  /** Data columns, in order (partition keys excluded). */
  readonly columns: readonly Column[];
  /** Hive partition keys, in path order (`year`, `month`, `dayofmonth`). */
  readonly partitionKeys: readonly Column[];
  readonly description?: string;
  /** Columns whose values identify a row (informational in Glue; enforced by sluice's writers). */
  readonly primaryKey?: readonly string[];
  /** Who maintains the table: a pipeline's writer or the crawler. */
  readonly managedBy?: 'pipeline' | 'crawler';
}

/** A table as stored, with its current schema version. */
export interface CatalogTable extends TableDefinition {
  /** Current schema version, starting at 1; a new version is created when columns change. */
  readonly schemaVersion: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** One schema version of a table (Glue `TableVersion`). */
export interface SchemaVersion {
  readonly version: number;
  readonly columns: readonly Column[];
  readonly partitionKeys: readonly Column[];
  readonly createdAt: Date;
  /** Who made the change: a run id or `crawler`. */
  readonly createdBy?: string;
}

/** A data file of a partition. */
export interface PartitionFile {
  /** Object key inside the table's layer. */
  readonly key: string;
  /** Size in bytes. */
  readonly bytes: number;
  /** Rows in the file, when known. */
  readonly rows?: number;
}

/** What a writer registers for a partition (Glue `PartitionInput`). */
export interface PartitionInput {
  /** Values of the partition keys, in key order, as they appear in the path (`['2015','01','01']`). */
  readonly values: readonly string[];
  /** Key prefix of the partition's directory, ending in `/`. */
  readonly prefix: string;
  readonly files: readonly PartitionFile[];
  /** The run that last wrote the partition. */
  readonly runId?: string;
}

/** A partition as stored. */
export interface Partition extends PartitionInput {
  /** Total rows and bytes over {@link PartitionInput.files} (rows `undefined` when unknown). */
  readonly rows?: number;
  readonly bytes: number;
  /** The table's schema version when the partition was last written. */
  readonly schemaVersion: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** Options of {@link Catalog.listPartitions}. */
export interface PartitionListOptions {
  /** Last values first. */
  readonly descending?: boolean;
  /** At most this many partitions (default: all). */
  readonly limit?: number;
  /** Skips this many first (default 0). */
  readonly offset?: number;
}

/** Result of {@link Catalog.summarizePartitions}. */
export interface PartitionSummary {
  readonly partitions: number;
  /** Sum of the partitions' known row counts. */
  readonly rows: number;
  readonly bytes: number;
}

/** Result of {@link Catalog.upsertTable}. */
export interface UpsertTableResult {
  readonly table: CatalogTable;
  /** `created`: a new table; `evolved`: columns changed, so a new schema version; `unchanged`. */
  readonly change: 'created' | 'evolved' | 'unchanged';
}

/** The catalog port. */
export interface Catalog {
  /**
   * Creates the table or updates it. When columns or partition keys differ from the current
   * version, a new schema version is recorded (the old one stays readable).
   * @throws {Error} when partition keys change on a table that has partitions.
   */
  upsertTable(definition: TableDefinition, options?: { createdBy?: string }): Promise<UpsertTableResult>;

  /** The table, or `undefined`. */
  getTable(database: string, name: string): Promise<CatalogTable | undefined>;

  /** All tables, or those of one database, ordered by database then name. */
  listTables(database?: string): Promise<CatalogTable[]>;

  /** Every schema version of a table, oldest first. */
  listSchemaVersions(database: string, name: string): Promise<SchemaVersion[]>;

  /**
   * Registers partitions, replacing those with the same values (create-or-update in one
   * transaction: all or none). Each gets the table's current schema version.
   * @throws {NotFoundError} when the table does not exist.
   */
  putPartitions(database: string, name: string, partitions: readonly PartitionInput[]): Promise<void>;

  /**
   * Partitions of a table, ordered by their values (`descending`: last values first); with
   * `limit`/`offset`, one page of that order (the dashboard pages a table's partitions this way).
   */
  listPartitions(database: string, name: string, options?: PartitionListOptions): Promise<Partition[]>;

  /** How many partitions a table has, with their total rows (known ones) and bytes; zeros for a missing table. */
  summarizePartitions(database: string, name: string): Promise<PartitionSummary>;

  /** Removes partitions by values; missing ones are ignored. */
  deletePartitions(database: string, name: string, values: readonly (readonly string[])[]): Promise<void>;

  /** Removes a table with its partitions and versions; missing is ignored. */
  deleteTable(database: string, name: string): Promise<void>;
}

/** `database.name`, as queries see a table. */
export function qualifiedName(table: { database: string; name: string }): string {
  return `${table.database}.${table.name}`;
}
