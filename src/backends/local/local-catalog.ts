import { validatePartitionInput, validateTableDefinition } from '../../core/catalog-rules.ts';
import { type Clock, systemClock } from '../../core/clock.ts';
import { NotFoundError } from '../../core/errors.ts';
import type { Layer } from '../../core/layer.ts';
import type {
  Catalog,
  CatalogTable,
  Partition,
  PartitionFile,
  PartitionInput,
  PartitionListOptions,
  PartitionSummary,
  SchemaVersion,
  TableDefinition,
  TableFormat,
  UpsertTableResult,
} from '../../core/ports/catalog.ts';
import type { Column } from '../../core/schema.ts';
import { diffColumns, isSameSchema } from '../../core/schema.ts';
import { type Database, type Migration, migrate } from './sqlite.ts';

const MIGRATIONS: readonly Migration[] = [
  `CREATE TABLE catalog_tables (
     database TEXT NOT NULL,
     name TEXT NOT NULL,
     layer TEXT NOT NULL,
     prefix TEXT NOT NULL,
     format TEXT NOT NULL,
     columns TEXT NOT NULL,
     partition_keys TEXT NOT NULL,
     description TEXT,
     primary_key TEXT,
     managed_by TEXT,
     schema_version INTEGER NOT NULL,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     PRIMARY KEY (database, name)
   ) STRICT;
   CREATE TABLE catalog_schema_versions (
     database TEXT NOT NULL,
     name TEXT NOT NULL,
     version INTEGER NOT NULL,
     columns TEXT NOT NULL,
     partition_keys TEXT NOT NULL,
     created_at TEXT NOT NULL,
     created_by TEXT,
     PRIMARY KEY (database, name, version),
     FOREIGN KEY (database, name) REFERENCES catalog_tables (database, name) ON DELETE CASCADE
   ) STRICT;
   CREATE TABLE catalog_partitions (
     database TEXT NOT NULL,
     name TEXT NOT NULL,
     sort_key TEXT NOT NULL,
     partition_values TEXT NOT NULL,
     prefix TEXT NOT NULL,
     files TEXT NOT NULL,
     rows INTEGER,
     bytes INTEGER NOT NULL,
     run_id TEXT,
     schema_version INTEGER NOT NULL,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     PRIMARY KEY (database, name, sort_key),
     FOREIGN KEY (database, name) REFERENCES catalog_tables (database, name) ON DELETE CASCADE
   ) STRICT;`,
];

type TableRow = {
  database: string;
  name: string;
  layer: string;
  prefix: string;
  format: string;
  columns: string;
  partition_keys: string;
  description: string | null;
  primary_key: string | null;
  managed_by: string | null;
  schema_version: number;
  created_at: string;
  updated_at: string;
};

type VersionRow = {
  version: number;
  columns: string;
  partition_keys: string;
  created_at: string;
  created_by: string | null;
};

type PartitionRow = {
  partition_values: string;
  prefix: string;
  files: string;
  rows: number | null;
  bytes: number;
  run_id: string | null;
  schema_version: number;
  created_at: string;
  updated_at: string;
};

/**
 * Joins partition values into a text key whose BINARY (UTF-8 byte) order is the order of the
 * value lists compared value by value: the separator U+0001 sorts below every character a value
 * may hold (control characters are refused), so `['a','b']` sorts before `['a-','a']`.
 */
function partitionSortKey(values: readonly string[]): string {
  return values.join('\u0001');
}

/**
 * The local {@link Catalog}: tables, schema versions and partitions in three tables of the
 * shared SQLite database (`<home>/sluice.db`), shaped after the AWS Glue Data Catalog:
 *
 * - {@link upsertTable} is Glue `CreateTable`/`UpdateTable`; a column or partition-key change
 *   records a new schema version (Glue `TableVersion`), other changes update the table in place;
 * - {@link putPartitions} is Glue `BatchCreatePartition` + `BatchUpdatePartition` in one
 *   transaction (stricter than Glue, which may apply part of a batch);
 * - partitions list ordered by their values, compared value by value as strings (UTF-8 bytes).
 *
 * Every write runs in a `BEGIN IMMEDIATE` transaction, so processes sharing the file see each
 * change whole. Times are stored as ISO-8601 text (millisecond precision) and returned as `Date`.
 * The constructor creates the schema when missing (idempotent).
 */
export class LocalCatalog implements Catalog {
  private readonly clock: Clock;

  /** `options.clock` stamps `createdAt`/`updatedAt` (default: the system clock). */
  constructor(
    private readonly db: Database,
    options: { clock?: Clock } = {},
  ) {
    this.clock = options.clock ?? systemClock;
    migrate(db, 'catalog', MIGRATIONS);
  }

  /**
   * Creates or updates a table. Result `created` (schema version 1), `evolved` (columns, by
   * {@link diffColumns}, or partition keys differ: a new version), or `unchanged` (other fields,
   * e.g. description, location, format or column order/comments, are updated in place).
   * @throws {Error} when partition keys change on a table that has partitions, or the definition is malformed.
   */
  async upsertTable(
    definition: TableDefinition,
    options: { createdBy?: string } = {},
  ): Promise<UpsertTableResult> {
    validateTableDefinition(definition);
    const { database, name } = definition;
    return this.db
      .transaction((): UpsertTableResult => {
        const at = this.clock.now().toISOString();
        const fields = {
          layer: definition.location.layer,
          prefix: definition.location.prefix,
          format: definition.format,
          columns: JSON.stringify(definition.columns),
          partition_keys: JSON.stringify(definition.partitionKeys),
          description: definition.description ?? null,
          primary_key: definition.primaryKey ? JSON.stringify(definition.primaryKey) : null,
          managed_by: definition.managedBy ?? null,
        };
        const existing = this.tableRow(database, name);
        if (!existing) {
          this.db
            .prepare(
              `INSERT INTO catalog_tables (database, name, layer, prefix, format, columns, partition_keys,
                 description, primary_key, managed_by, schema_version, created_at, updated_at)
               VALUES (@database, @name, @layer, @prefix, @format, @columns, @partition_keys,
                 @description, @primary_key, @managed_by, 1, @at, @at)`,
            )
            .run({ database, name, ...fields, at });
          this.insertVersion(database, name, 1, fields.columns, fields.partition_keys, at, options.createdBy);
          return { table: toTable(this.tableRow(database, name)!), change: 'created' };
        }

        const oldColumns = JSON.parse(existing.columns) as Column[];
        const oldKeys = JSON.parse(existing.partition_keys) as Column[];
        const columnsChanged = !isSameSchema(diffColumns(oldColumns, definition.columns));
        const keysChanged = !samePartitionKeys(oldKeys, definition.partitionKeys);
        if (keysChanged) {
          const count = this.db
            .prepare('SELECT count(*) FROM catalog_partitions WHERE database = ? AND name = ?')
            .pluck()
            .get(database, name) as number;
          if (count > 0) {
            throw new Error(
              `catalog table ${database}.${name}: partition keys cannot change from ` +
                `(${oldKeys.map((k) => k.name).join(', ')}) to (${definition.partitionKeys.map((k) => k.name).join(', ')}) ` +
                `while it has ${count} partition(s); delete its partitions or the table first`,
            );
          }
        }
        const evolved = columnsChanged || keysChanged;
        const version = evolved ? existing.schema_version + 1 : existing.schema_version;
        const same =
          !evolved &&
          (Object.keys(fields) as (keyof typeof fields)[]).every(
            (field) => fields[field] === existing[field],
          );
        if (same) return { table: toTable(existing), change: 'unchanged' };

        this.db
          .prepare(
            `UPDATE catalog_tables SET layer = @layer, prefix = @prefix, format = @format, columns = @columns,
               partition_keys = @partition_keys, description = @description, primary_key = @primary_key,
               managed_by = @managed_by, schema_version = @version, updated_at = @at
             WHERE database = @database AND name = @name`,
          )
          .run({ database, name, ...fields, version, at });
        if (evolved) {
          this.insertVersion(
            database,
            name,
            version,
            fields.columns,
            fields.partition_keys,
            at,
            options.createdBy,
          );
        }
        return { table: toTable(this.tableRow(database, name)!), change: evolved ? 'evolved' : 'unchanged' };
      })
      .immediate();
  }

  /** The table, or `undefined` (Glue `GetTable` without the `EntityNotFoundException`). */
  async getTable(database: string, name: string): Promise<CatalogTable | undefined> {
    const row = this.tableRow(database, name);
    return row ? toTable(row) : undefined;
  }

  /** All tables, or one database's, ordered by database then name (UTF-8 bytes). */
  async listTables(database?: string): Promise<CatalogTable[]> {
    const rows = (
      database === undefined
        ? this.db.prepare('SELECT * FROM catalog_tables ORDER BY database, name').all()
        : this.db.prepare('SELECT * FROM catalog_tables WHERE database = ? ORDER BY name').all(database)
    ) as TableRow[];
    return rows.map(toTable);
  }

  /** Every schema version, oldest first (Glue `GetTableVersions`); `[]` for a missing table. */
  async listSchemaVersions(database: string, name: string): Promise<SchemaVersion[]> {
    const rows = this.db
      .prepare(
        `SELECT version, columns, partition_keys, created_at, created_by FROM catalog_schema_versions
         WHERE database = ? AND name = ? ORDER BY version`,
      )
      .all(database, name) as VersionRow[];
    return rows.map((row) => {
      const version: SchemaVersion = {
        version: row.version,
        columns: JSON.parse(row.columns) as Column[],
        partitionKeys: JSON.parse(row.partition_keys) as Column[],
        createdAt: new Date(row.created_at),
      };
      return row.created_by === null ? version : { ...version, createdBy: row.created_by };
    });
  }

  /**
   * Registers partitions, replacing those with the same values (their `createdAt` is kept), all
   * in one transaction. Each gets the table's current schema version; `rows` is the sum over
   * files when every file knows its rows, `bytes` the sum of file sizes.
   * @throws {NotFoundError} when the table does not exist.
   * @throws {Error} when a partition's value count differs from the table's partition keys, a
   *   value is not a non-empty string without control characters, or a file entry is malformed;
   *   nothing is written then.
   */
  async putPartitions(database: string, name: string, partitions: readonly PartitionInput[]): Promise<void> {
    this.db
      .transaction(() => {
        const table = this.tableRow(database, name);
        if (!table) throw new NotFoundError(`catalog table ${database}.${name} does not exist`);
        const keys = JSON.parse(table.partition_keys) as Column[];
        const at = this.clock.now().toISOString();
        const upsert = this.db.prepare(
          `INSERT INTO catalog_partitions (database, name, sort_key, partition_values, prefix, files, rows, bytes,
             run_id, schema_version, created_at, updated_at)
           VALUES (@database, @name, @sort_key, @partition_values, @prefix, @files, @rows, @bytes,
             @run_id, @schema_version, @at, @at)
           ON CONFLICT (database, name, sort_key) DO UPDATE SET
             partition_values = excluded.partition_values, prefix = excluded.prefix, files = excluded.files,
             rows = excluded.rows, bytes = excluded.bytes, run_id = excluded.run_id,
             schema_version = excluded.schema_version, updated_at = excluded.updated_at`,
        );
        for (const partition of partitions) {
          validatePartitionInput(`${database}.${name}`, keys, partition);
          const files = partition.files.map((file) => {
            const copy: { key: string; bytes: number; rows?: number } = { key: file.key, bytes: file.bytes };
            if (file.rows !== undefined) copy.rows = file.rows;
            return copy;
          });
          const rowsKnown = files.every((file) => file.rows !== undefined);
          upsert.run({
            database,
            name,
            sort_key: partitionSortKey(partition.values),
            partition_values: JSON.stringify(partition.values),
            prefix: partition.prefix,
            files: JSON.stringify(files),
            rows: rowsKnown ? files.reduce((sum, file) => sum + (file.rows ?? 0), 0) : null,
            bytes: files.reduce((sum, file) => sum + file.bytes, 0),
            run_id: partition.runId ?? null,
            schema_version: table.schema_version,
            at,
          });
        }
      })
      .immediate();
  }

  /** Partitions ordered by their values, value by value (UTF-8 bytes); `[]` for a missing table. */
  async listPartitions(
    database: string,
    name: string,
    options: PartitionListOptions = {},
  ): Promise<Partition[]> {
    const limit = options.limit === undefined ? -1 : Math.max(0, Math.floor(options.limit));
    const offset = Math.max(0, Math.floor(options.offset ?? 0));
    const rows = this.db
      .prepare(
        `SELECT partition_values, prefix, files, rows, bytes, run_id, schema_version, created_at, updated_at
         FROM catalog_partitions WHERE database = ? AND name = ?
         ORDER BY sort_key ${options.descending ? 'DESC' : 'ASC'} LIMIT ? OFFSET ?`,
      )
      .all(database, name, limit, offset) as PartitionRow[];
    return rows.map(toPartition);
  }

  /** Count, known rows and bytes of a table's partitions, in one SQL aggregate. */
  async summarizePartitions(database: string, name: string): Promise<PartitionSummary> {
    const row = this.db
      .prepare(
        `SELECT count(*) AS partitions, coalesce(sum(rows), 0) AS rows, coalesce(sum(bytes), 0) AS bytes
         FROM catalog_partitions WHERE database = ? AND name = ?`,
      )
      .get(database, name) as PartitionSummary;
    return { partitions: row.partitions, rows: row.rows, bytes: row.bytes };
  }

  /** Removes partitions by values in one transaction (Glue `BatchDeletePartition`); missing ones are ignored. */
  async deletePartitions(
    database: string,
    name: string,
    values: readonly (readonly string[])[],
  ): Promise<void> {
    const remove = this.db.prepare(
      'DELETE FROM catalog_partitions WHERE database = ? AND name = ? AND sort_key = ?',
    );
    this.db
      .transaction(() => {
        for (const partitionValues of values) remove.run(database, name, partitionSortKey(partitionValues));
      })
      .immediate();
  }

  /** Removes a table with its partitions and schema versions (Glue `DeleteTable`); missing is ignored. */
  async deleteTable(database: string, name: string): Promise<void> {
    this.db
      .transaction(() => {
        // Explicit deletes rather than relying on ON DELETE CASCADE, which needs foreign_keys=ON.
        for (const table of ['catalog_partitions', 'catalog_schema_versions', 'catalog_tables']) {
          this.db.prepare(`DELETE FROM ${table} WHERE database = ? AND name = ?`).run(database, name);
        }
      })
      .immediate();
  }

  private tableRow(database: string, name: string): TableRow | undefined {
    return this.db
      .prepare('SELECT * FROM catalog_tables WHERE database = ? AND name = ?')
      .get(database, name) as TableRow | undefined;
  }

  private insertVersion(
    database: string,
    name: string,
    version: number,
    columns: string,
    partitionKeys: string,
    at: string,
    createdBy: string | undefined,
  ): void {
    this.db
      .prepare(
        `INSERT INTO catalog_schema_versions (database, name, version, columns, partition_keys, created_at, created_by)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(database, name, version, columns, partitionKeys, at, createdBy ?? null);
  }
}

function samePartitionKeys(a: readonly Column[], b: readonly Column[]): boolean {
  return a.length === b.length && a.every((key, i) => key.name === b[i]!.name && key.type === b[i]!.type);
}

function toTable(row: TableRow): CatalogTable {
  const table: {
    -readonly [K in keyof CatalogTable]: CatalogTable[K];
  } = {
    database: row.database,
    name: row.name,
    location: { layer: row.layer as Layer, prefix: row.prefix },
    format: row.format as TableFormat,
    columns: JSON.parse(row.columns) as Column[],
    partitionKeys: JSON.parse(row.partition_keys) as Column[],
    schemaVersion: row.schema_version,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
  if (row.description !== null) table.description = row.description;
  if (row.primary_key !== null) table.primaryKey = JSON.parse(row.primary_key) as string[];
  if (row.managed_by !== null) table.managedBy = row.managed_by as 'pipeline' | 'crawler';
  return table;
}

function toPartition(row: PartitionRow): Partition {
  const partition: { -readonly [K in keyof Partition]: Partition[K] } = {
    values: JSON.parse(row.partition_values) as string[],
    prefix: row.prefix,
    files: JSON.parse(row.files) as PartitionFile[],
    bytes: row.bytes,
    schemaVersion: row.schema_version,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
  if (row.rows !== null) partition.rows = row.rows;
  if (row.run_id !== null) partition.runId = row.run_id;
  return partition;
}
