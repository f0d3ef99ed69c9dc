import {
  AlreadyExistsException,
  BatchCreatePartitionCommand,
  BatchDeletePartitionCommand,
  type BatchDeletePartitionCommandOutput,
  BatchGetPartitionCommand,
  BatchUpdatePartitionCommand,
  CreateDatabaseCommand,
  CreateTableCommand,
  DeleteTableCommand,
  EntityNotFoundException,
  GetDatabasesCommand,
  type GetDatabasesCommandOutput,
  GetPartitionsCommand,
  type GetPartitionsCommandOutput,
  GetTableCommand,
  GetTablesCommand,
  type GetTablesCommandOutput,
  GetTableVersionsCommand,
  type GlueClient,
  type Column as GlueColumn,
  type Partition as GluePartition,
  type PartitionInput as GluePartitionInput,
  type StorageDescriptor,
  type Table,
  type TableInput,
  UpdateTableCommand,
} from '@aws-sdk/client-glue';
import { validatePartitionInput, validateTableDefinition } from '../../core/catalog-rules.ts';
import { type Clock, systemClock } from '../../core/clock.ts';
import { NotFoundError, SluiceError } from '../../core/errors.ts';
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
import { type Column, type ColumnType, diffColumns, isColumnType, isSameSchema } from '../../core/schema.ts';
import { awsCallError } from './aws-errors.ts';

/**
 * Keys of the Glue table, column and partition `Parameters` sluice writes (Glue `Parameters` are a
 * string-to-string map; values up to 512,000 bytes, keys up to 255 characters:
 * https://docs.aws.amazon.com/glue/latest/webapi/API_TableInput.html). `classification`,
 * `numFiles`, `numRows` and `totalSize` are the names Glue crawlers and Hive use; the rest are
 * sluice's own, prefixed `sluice:`.
 */
export const GLUE_PARAMETERS = {
  /** Table: `parquet`, `json`, `csv` or `python-dict` (what Glue crawlers write, and sluice's extra kind). */
  classification: 'classification',
  /** Table: sluice's {@link TableFormat} (`ndjson` is classification `json`). */
  format: 'sluice:format',
  /** Table: the sluice database and table names as given (Glue lowercases names). */
  database: 'sluice:database',
  name: 'sluice:name',
  /** Table: the layer of the location (the bucket says it too; this is a fallback). */
  layer: 'sluice:layer',
  /** Table: JSON array of the primary-key column names. */
  primaryKey: 'sluice:primary_key',
  /** Table: `pipeline` or `crawler`. */
  managedBy: 'sluice:managed_by',
  /** Table and partition: sluice's schema version (decimal integer text, from 1). */
  schemaVersion: 'sluice:schema_version',
  /** Table: when the current schema version was created (ISO-8601 UTC) and by whom (a run id or `crawler`). */
  schemaCreatedAt: 'sluice:schema_created_at',
  schemaCreatedBy: 'sluice:schema_created_by',
  /** Table and partition: creation and last update (ISO-8601 UTC), stamped with sluice's clock. */
  createdAt: 'sluice:created_at',
  updatedAt: 'sluice:updated_at',
  /** Column: `true`/`false` when the definition says so (absent: not declared). */
  nullable: 'sluice:nullable',
  /** Column: `json` for a `string` column holding JSON documents. */
  logicalType: 'sluice:logical_type',
  /** Partition: JSON array of {@link PartitionFile}s. */
  files: 'sluice:files',
  /** Partition: the run that last wrote it. */
  runId: 'sluice:run_id',
  /** Partition: file count, byte total and (when every file knows it) row total, as decimal text. */
  numFiles: 'numFiles',
  totalSize: 'totalSize',
  numRows: 'numRows',
} as const;

/**
 * Hive classes per format: what Athena needs to read the files
 * (https://docs.aws.amazon.com/athena/latest/ug/supported-serdes.html):
 * - parquet: `ParquetHiveSerDe` with `MapredParquetInputFormat`/`MapredParquetOutputFormat`;
 * - ndjson: the OpenX `JsonSerDe` over text files (one JSON object per line; files holding one JSON
 *   array, which the local engine reads, are not readable by Athena);
 * - csv: `OpenCSVSerde` (quoted fields, `,` separator) with `skip.header.line.count=1` as a table
 *   parameter; Athena's OpenCSVSerde reads `timestamp`/`date` only in UNIX numeric form, so crawled
 *   CSV tables are best declared with `string` columns;
 * - python-dict: text files with no SerDe at all: no SQL engine reads Python dict reprs (see
 *   {@link TableFormat}); the table is cataloged with classification `python-dict` so it is listed,
 *   and queries of it fail in Athena as they do locally.
 */
export const GLUE_FORMATS: Readonly<
  Record<
    TableFormat,
    {
      readonly classification: string;
      readonly inputFormat: string;
      readonly outputFormat: string;
      readonly serializationLibrary?: string;
      readonly serdeParameters: Readonly<Record<string, string>>;
      readonly tableParameters: Readonly<Record<string, string>>;
    }
  >
> = {
  parquet: {
    classification: 'parquet',
    inputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
    outputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
    serializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
    serdeParameters: { 'serialization.format': '1' },
    tableParameters: {},
  },
  ndjson: {
    classification: 'json',
    inputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
    outputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
    serializationLibrary: 'org.openx.data.jsonserde.JsonSerDe',
    serdeParameters: {},
    tableParameters: {},
  },
  csv: {
    classification: 'csv',
    inputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
    outputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
    serializationLibrary: 'org.apache.hadoop.hive.serde2.OpenCSVSerde',
    serdeParameters: { separatorChar: ',', quoteChar: '"', escapeChar: '\\' },
    tableParameters: { 'skip.header.line.count': '1' },
  },
  'python-dict': {
    classification: 'python-dict',
    inputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
    outputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
    serdeParameters: {},
    tableParameters: {},
  },
};

/**
 * Glue API batch limits (AWS Glue API reference): `BatchCreatePartition` and `BatchUpdatePartition`
 * take at most 100 entries, `BatchDeletePartition` 25, `BatchGetPartition` 1,000.
 */
export const GLUE_BATCH_LIMITS = { create: 100, update: 100, delete: 25, get: 1000 } as const;

/** Options of {@link GlueCatalog}. */
export interface GlueCatalogOptions {
  /** Glue database name = `<databasePrefix><database>`, lowercased (Glue stores names lowercase). */
  readonly databasePrefix: string;
  /** The bucket of each layer: table and partition locations are `s3://<bucket>/<prefix>`. */
  readonly buckets: Readonly<Record<Layer, string>>;
  /** Stamps `createdAt`/`updatedAt` and schema-version times (default: the system clock). */
  readonly clock?: Clock;
}

/**
 * The {@link Catalog} on the AWS Glue Data Catalog (contract: test/conformance/catalog.case.ts).
 *
 * Mapping (Glue API reference, https://docs.aws.amazon.com/glue/latest/webapi/):
 * - a sluice database `gharchive` is the Glue database `<databasePrefix>gharchive`, created by the
 *   first {@link upsertTable} (`CreateDatabase`; `AlreadyExistsException` is fine). Glue lowercases
 *   database and table names, so names are sent lowercase and the names as given are kept in the
 *   table's `sluice:database`/`sluice:name` parameters: two sluice tables whose names differ only
 *   in case are one Glue table;
 * - a table is an `EXTERNAL_TABLE` whose `StorageDescriptor` has the columns (Glue/Hive type names,
 *   which are sluice's own vocabulary, src/core/schema.ts), `Location` `s3://<bucket>/<prefix>` and
 *   the SerDe and input/output formats of {@link GLUE_FORMATS}; nullability and the JSON logical
 *   type are column `Parameters`, the description is the table's `Description`, the rest are table
 *   `Parameters` ({@link GLUE_PARAMETERS});
 * - schema versions are Glue `TableVersion`s: an evolution (columns or partition keys changed, by
 *   {@link diffColumns}) is `UpdateTable` with archiving, so Glue keeps the previous version; other
 *   changes (description, location, format, column order or comments) are `UpdateTable` with
 *   `SkipArchive: true`, so versions correspond to evolutions. sluice's version number is the
 *   `sluice:schema_version` parameter of each version; `UpdateTable` passes the `VersionId` read,
 *   so a concurrent update fails instead of being overwritten;
 * - partitions: `BatchCreatePartition` (≤100 per call), then `BatchUpdatePartition` for those that
 *   already exist (replace semantics, keeping their `sluice:created_at`). Each partition has the
 *   table's storage descriptor with its own `Location`; files, totals, run id and schema version
 *   are partition `Parameters`. Glue applies a batch partly: sluice validates the whole batch first
 *   (nothing is sent when one partition is malformed), and when Glue refuses an entry it undoes the
 *   batch's creates and updates (best effort) before throwing, so the port's all-or-none holds
 *   except when that undo itself fails (the error says so);
 * - `GetPartitions` does not order: listing reads every page and orders by values client-side;
 * - `EntityNotFoundException` is {@link NotFoundError} where the port throws and "absent" elsewhere.
 *
 * Tables that are views (`VIRTUAL_VIEW`) or whose location is in none of the four buckets are
 * foreign to the lake: {@link listTables} skips them.
 */
export class GlueCatalog implements Catalog {
  private readonly clock: Clock;
  private readonly databasePrefix: string;
  private readonly buckets: Readonly<Record<Layer, string>>;

  /**
   * @param client a Glue client (credentials from the SDK's default chain).
   * @param options see {@link GlueCatalogOptions}.
   */
  constructor(
    private readonly client: GlueClient,
    options: GlueCatalogOptions,
  ) {
    this.clock = options.clock ?? systemClock;
    this.databasePrefix = options.databasePrefix;
    this.buckets = options.buckets;
  }

  /** The Glue database name of a sluice database: `<databasePrefix><database>`, lowercase. */
  glueDatabaseName(database: string): string {
    return `${this.databasePrefix}${database}`.toLowerCase();
  }

  /**
   * Creates the table (and its Glue database) or updates it; see the class doc for what becomes a
   * new schema version.
   * @throws {Error} when the definition is malformed, or partition keys change while the table has partitions.
   * @throws {SluiceError} `glue_error` when Glue refuses a call (retryable for throttling and 5xx).
   */
  async upsertTable(
    definition: TableDefinition,
    options: { createdBy?: string } = {},
    attempt = 0,
  ): Promise<UpsertTableResult> {
    validateTableDefinition(definition);
    const { database, name } = definition;
    const databaseName = this.glueDatabaseName(database);
    const at = this.clock.now().toISOString();
    const existing = await this.readTable(database, name);
    if (!existing) {
      const input = this.tableInput(definition, {
        schemaVersion: 1,
        schemaCreatedAt: at,
        schemaCreatedBy: options.createdBy,
        createdAt: at,
        updatedAt: at,
      });
      await this.ensureDatabase(database);
      try {
        await this.client.send(new CreateTableCommand({ DatabaseName: databaseName, TableInput: input }));
      } catch (error) {
        if (error instanceof AlreadyExistsException && attempt === 0) {
          // Another writer created it between our read and our create: update it instead.
          return this.upsertTable(definition, options, attempt + 1);
        }
        throw glueError(error, `creating Glue table ${databaseName}.${input.Name}`);
      }
      return { table: this.toTable(fromInput(databaseName, input)), change: 'created' };
    }

    const current = this.toTable(existing);
    const columnsChanged = !isSameSchema(diffColumns(current.columns, definition.columns));
    const keysChanged = !samePartitionKeys(current.partitionKeys, definition.partitionKeys);
    if (keysChanged && (await this.hasPartitions(databaseName, existing.Name ?? name))) {
      throw new Error(
        `Glue table ${databaseName}.${existing.Name}: partition keys cannot change from ` +
          `(${current.partitionKeys.map((k) => k.name).join(', ')}) to ` +
          `(${definition.partitionKeys.map((k) => k.name).join(', ')}) while it has partitions; ` +
          'delete its partitions or the table first',
      );
    }
    const evolved = columnsChanged || keysChanged;
    if (!evolved && sameDefinition(current, definition)) return { table: current, change: 'unchanged' };

    const params = existing.Parameters ?? {};
    const input = this.tableInput(definition, {
      schemaVersion: evolved ? current.schemaVersion + 1 : current.schemaVersion,
      schemaCreatedAt: evolved ? at : (params[GLUE_PARAMETERS.schemaCreatedAt] ?? at),
      schemaCreatedBy: evolved ? options.createdBy : params[GLUE_PARAMETERS.schemaCreatedBy],
      createdAt: current.createdAt.toISOString(),
      updatedAt: at,
    });
    try {
      await this.client.send(
        new UpdateTableCommand({
          DatabaseName: databaseName,
          TableInput: input,
          SkipArchive: !evolved,
          ...(existing.VersionId !== undefined ? { VersionId: existing.VersionId } : {}),
        }),
      );
    } catch (error) {
      throw glueError(error, `updating Glue table ${databaseName}.${input.Name}`);
    }
    return {
      table: this.toTable(fromInput(databaseName, input)),
      change: evolved ? 'evolved' : 'unchanged',
    };
  }

  /** The table (Glue `GetTable`), or `undefined` when Glue says `EntityNotFoundException`. */
  async getTable(database: string, name: string): Promise<CatalogTable | undefined> {
    const table = await this.readTable(database, name);
    return table ? this.toTable(table) : undefined;
  }

  /**
   * All tables of the databases named `<databasePrefix>*` (Glue `GetDatabases`), or of one
   * database (`GetTables`, every page), ordered by database then name (UTF-8 bytes); foreign
   * tables (views, locations outside the lake's buckets) are skipped.
   */
  async listTables(database?: string): Promise<CatalogTable[]> {
    const databases: string[] = [];
    if (database !== undefined) {
      databases.push(this.glueDatabaseName(database));
    } else {
      let token: string | undefined;
      do {
        let page: GetDatabasesCommandOutput;
        try {
          page = await this.client.send(
            new GetDatabasesCommand(token === undefined ? {} : { NextToken: token }),
          );
        } catch (error) {
          throw glueError(error, 'listing Glue databases');
        }
        for (const db of page.DatabaseList ?? []) {
          if (db.Name?.startsWith(this.databasePrefix.toLowerCase())) databases.push(db.Name);
        }
        token = page.NextToken;
      } while (token);
    }
    const tables: CatalogTable[] = [];
    for (const databaseName of databases) {
      let token: string | undefined;
      do {
        let page: GetTablesCommandOutput;
        try {
          page = await this.client.send(
            new GetTablesCommand({ DatabaseName: databaseName, ...(token ? { NextToken: token } : {}) }),
          );
        } catch (error) {
          if (error instanceof EntityNotFoundException) break;
          throw glueError(error, `listing the tables of Glue database ${databaseName}`);
        }
        for (const table of page.TableList ?? []) {
          if (this.isLakeTable(table)) tables.push(this.toTable({ ...table, DatabaseName: databaseName }));
        }
        token = page.NextToken;
      } while (token);
    }
    return tables.sort(
      (a, b) =>
        Buffer.compare(Buffer.from(a.database), Buffer.from(b.database)) ||
        Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)),
    );
  }

  /**
   * Every schema version, oldest first, from Glue `GetTableVersions` (every page); `[]` for a
   * missing table. Glue versions carrying the same `sluice:schema_version` (updates made outside
   * sluice) count once, the oldest; versions of an earlier table of the same name, which Glue
   * deletes asynchronously, are left out.
   */
  async listSchemaVersions(database: string, name: string): Promise<SchemaVersion[]> {
    const databaseName = this.glueDatabaseName(database);
    const current = await this.readTable(database, name);
    if (!current) return [];
    const tableCreatedAt = current.Parameters?.[GLUE_PARAMETERS.createdAt];
    const found: { glueVersion: number; version: SchemaVersion }[] = [];
    let token: string | undefined;
    do {
      let page: Awaited<ReturnType<typeof this.getVersionsPage>>;
      try {
        page = await this.getVersionsPage(databaseName, name.toLowerCase(), token);
      } catch (error) {
        if (error instanceof EntityNotFoundException) return [];
        throw glueError(error, `listing the versions of Glue table ${databaseName}.${name.toLowerCase()}`);
      }
      for (const entry of page.TableVersions ?? []) {
        const table = entry.Table;
        if (!table) continue;
        const params = table.Parameters ?? {};
        if (tableCreatedAt !== undefined && params[GLUE_PARAMETERS.createdAt] !== tableCreatedAt) continue;
        const glueVersion = Number(entry.VersionId ?? table.VersionId ?? 0);
        const number = Number(params[GLUE_PARAMETERS.schemaVersion] ?? glueVersion + 1);
        const createdAt = params[GLUE_PARAMETERS.schemaCreatedAt] ?? table.UpdateTime ?? table.CreateTime;
        const version: { -readonly [K in keyof SchemaVersion]: SchemaVersion[K] } = {
          version: number,
          columns: (table.StorageDescriptor?.Columns ?? []).map(fromGlueColumn),
          partitionKeys: (table.PartitionKeys ?? []).map(fromGlueColumn),
          createdAt: createdAt === undefined ? new Date(0) : new Date(createdAt),
        };
        const createdBy = params[GLUE_PARAMETERS.schemaCreatedBy];
        if (createdBy !== undefined) version.createdBy = createdBy;
        found.push({ glueVersion, version });
      }
      token = page.NextToken;
    } while (token);
    found.sort((a, b) => a.version.version - b.version.version || a.glueVersion - b.glueVersion);
    const versions: SchemaVersion[] = [];
    for (const { version } of found) {
      if (versions.at(-1)?.version !== version.version) versions.push(version);
    }
    return versions;
  }

  /**
   * Registers partitions: `BatchCreatePartition` in batches of 100, then, for those Glue reports
   * as `AlreadyExistsException`, `BatchGetPartition` (to keep their creation time and to be able
   * to undo) and `BatchUpdatePartition` in batches of 100.
   * @throws {NotFoundError} when the table does not exist.
   * @throws {Error} when a partition is malformed (value count, empty value, control characters,
   *   file entries): nothing is sent then.
   * @throws {SluiceError} `glue_error` when Glue refuses an entry or a call; the batch's creates and
   *   updates were undone first (the message says when the undo failed too).
   */
  async putPartitions(database: string, name: string, partitions: readonly PartitionInput[]): Promise<void> {
    const table = await this.readTable(database, name);
    const databaseName = this.glueDatabaseName(database);
    if (!table) {
      throw new NotFoundError(
        `catalog table ${database}.${name} does not exist (Glue table ${databaseName}.${name.toLowerCase()})`,
      );
    }
    const tableName = table.Name ?? name.toLowerCase();
    const current = this.toTable(table);
    const where = `${database}.${name}`;
    const byKey = new Map<string, PartitionInput>();
    for (const partition of partitions) {
      validatePartitionInput(where, current.partitionKeys, partition);
      byKey.set(JSON.stringify(partition.values), partition);
    }
    if (byKey.size === 0) return;
    const at = this.clock.now().toISOString();
    const inputs = [...byKey.values()].map((p) => this.partitionInput(table, current, p, at, at));

    const created: string[][] = [];
    const snapshots: GluePartition[] = [];
    const undo = async (cause: unknown): Promise<never> => {
      const problems: string[] = [];
      for (const chunk of chunks(created, GLUE_BATCH_LIMITS.delete)) {
        try {
          const out = await this.client.send(
            new BatchDeletePartitionCommand({
              DatabaseName: databaseName,
              TableName: tableName,
              PartitionsToDelete: chunk.map((values) => ({ Values: values })),
            }),
          );
          for (const e of out.Errors ?? [])
            problems.push(`${JSON.stringify(e.PartitionValues)}: ${e.ErrorDetail?.ErrorMessage}`);
        } catch (error) {
          problems.push((error as Error).message);
        }
      }
      for (const chunk of chunks(snapshots, GLUE_BATCH_LIMITS.update)) {
        try {
          const out = await this.client.send(
            new BatchUpdatePartitionCommand({
              DatabaseName: databaseName,
              TableName: tableName,
              Entries: chunk.map((p) => ({
                PartitionValueList: p.Values ?? [],
                PartitionInput: toPartitionInput(p),
              })),
            }),
          );
          for (const e of out.Errors ?? [])
            problems.push(`${JSON.stringify(e.PartitionValueList)}: ${e.ErrorDetail?.ErrorMessage}`);
        } catch (error) {
          problems.push((error as Error).message);
        }
      }
      const base = cause instanceof Error ? cause.message : String(cause);
      throw new SluiceError(
        problems.length === 0
          ? `${base}; the batch's other partitions were undone`
          : `${base}; undoing the batch's other partitions failed too (${problems.join('; ')}): the table may hold part of the batch`,
        { code: 'glue_error', retryable: cause instanceof SluiceError && cause.retryable, cause },
      );
    };

    const existing: GluePartitionInput[] = [];
    try {
      for (const chunk of chunks(inputs, GLUE_BATCH_LIMITS.create)) {
        const out = await this.client.send(
          new BatchCreatePartitionCommand({
            DatabaseName: databaseName,
            TableName: tableName,
            PartitionInputList: chunk,
          }),
        );
        const failed = new Map<string, string>();
        for (const e of out.Errors ?? []) {
          const key = JSON.stringify(e.PartitionValues ?? []);
          if (e.ErrorDetail?.ErrorCode === 'AlreadyExistsException') {
            const input = chunk.find((p) => JSON.stringify(p.Values) === key);
            if (input) existing.push(input);
          } else {
            failed.set(key, `${e.ErrorDetail?.ErrorCode}: ${e.ErrorDetail?.ErrorMessage}`);
          }
        }
        for (const input of chunk) {
          const key = JSON.stringify(input.Values);
          if (!failed.has(key) && !existing.includes(input)) created.push(input.Values ?? []);
        }
        if (failed.size > 0) {
          throw new SluiceError(
            `Glue refused partitions of ${databaseName}.${tableName}: ${[...failed].map(([k, m]) => `${k} (${m})`).join(', ')}`,
            { code: 'glue_error' },
          );
        }
      }
      if (existing.length === 0) return;

      for (const chunk of chunks(existing, GLUE_BATCH_LIMITS.get)) {
        const out = await this.client.send(
          new BatchGetPartitionCommand({
            DatabaseName: databaseName,
            TableName: tableName,
            PartitionsToGet: chunk.map((p) => ({ Values: p.Values ?? [] })),
          }),
        );
        snapshots.push(...(out.Partitions ?? []));
      }
      const createdAtOf = new Map(
        snapshots.map((p) => [
          JSON.stringify(p.Values ?? []),
          p.Parameters?.[GLUE_PARAMETERS.createdAt] ?? p.CreationTime?.toISOString(),
        ]),
      );
      const updates = existing.map((input) => {
        const createdAt = createdAtOf.get(JSON.stringify(input.Values)) ?? at;
        return { ...input, Parameters: { ...input.Parameters, [GLUE_PARAMETERS.createdAt]: createdAt } };
      });
      for (const chunk of chunks(updates, GLUE_BATCH_LIMITS.update)) {
        const out = await this.client.send(
          new BatchUpdatePartitionCommand({
            DatabaseName: databaseName,
            TableName: tableName,
            Entries: chunk.map((input) => ({
              PartitionValueList: input.Values ?? [],
              PartitionInput: input,
            })),
          }),
        );
        if ((out.Errors ?? []).length > 0) {
          throw new SluiceError(
            `Glue refused partition updates of ${databaseName}.${tableName}: ${(out.Errors ?? [])
              .map(
                (e) =>
                  `${JSON.stringify(e.PartitionValueList)} (${e.ErrorDetail?.ErrorCode}: ${e.ErrorDetail?.ErrorMessage})`,
              )
              .join(', ')}`,
            { code: 'glue_error' },
          );
        }
      }
    } catch (error) {
      return undo(
        error instanceof SluiceError
          ? error
          : glueError(error, `registering partitions of ${databaseName}.${tableName}`),
      );
    }
  }

  /**
   * Partitions ordered by their values, value by value (UTF-8 bytes), read with `GetPartitions`
   * (every page; Glue does not order them) and paged client-side; `[]` for a missing table.
   */
  async listPartitions(
    database: string,
    name: string,
    options: PartitionListOptions = {},
  ): Promise<Partition[]> {
    const all = await this.readPartitions(database, name);
    all.sort((a, b) => compareValues(a.values, b.values));
    if (options.descending) all.reverse();
    const offset = Math.max(0, Math.floor(options.offset ?? 0));
    const end = options.limit === undefined ? undefined : offset + Math.max(0, Math.floor(options.limit));
    return all.slice(offset, end);
  }

  /** Count, known rows and bytes of a table's partitions (every `GetPartitions` page); zeros for a missing table. */
  async summarizePartitions(database: string, name: string): Promise<PartitionSummary> {
    const all = await this.readPartitions(database, name);
    return {
      partitions: all.length,
      rows: all.reduce((n, p) => n + (p.rows ?? 0), 0),
      bytes: all.reduce((n, p) => n + p.bytes, 0),
    };
  }

  /**
   * Removes partitions by values with `BatchDeletePartition` (25 per call); missing partitions
   * and a missing table are ignored.
   * @throws {SluiceError} `glue_error` when Glue refuses an entry for another reason.
   */
  async deletePartitions(
    database: string,
    name: string,
    values: readonly (readonly string[])[],
  ): Promise<void> {
    const databaseName = this.glueDatabaseName(database);
    const tableName = name.toLowerCase();
    for (const chunk of chunks(values, GLUE_BATCH_LIMITS.delete)) {
      let out: BatchDeletePartitionCommandOutput;
      try {
        out = await this.client.send(
          new BatchDeletePartitionCommand({
            DatabaseName: databaseName,
            TableName: tableName,
            PartitionsToDelete: chunk.map((v) => ({ Values: [...v] })),
          }),
        );
      } catch (error) {
        if (error instanceof EntityNotFoundException) return;
        throw glueError(error, `deleting partitions of Glue table ${databaseName}.${tableName}`);
      }
      const failed = (out.Errors ?? []).filter((e) => e.ErrorDetail?.ErrorCode !== 'EntityNotFoundException');
      if (failed.length > 0) {
        throw new SluiceError(
          `Glue refused to delete partitions of ${databaseName}.${tableName}: ${failed
            .map(
              (e) =>
                `${JSON.stringify(e.PartitionValues)} (${e.ErrorDetail?.ErrorCode}: ${e.ErrorDetail?.ErrorMessage})`,
            )
            .join(', ')}`,
          { code: 'glue_error' },
        );
      }
    }
  }

  /**
   * Removes a table (Glue `DeleteTable`; Glue removes its partitions and versions, asynchronously
   * on AWS); a missing table is ignored.
   */
  async deleteTable(database: string, name: string): Promise<void> {
    const databaseName = this.glueDatabaseName(database);
    try {
      await this.client.send(
        new DeleteTableCommand({ DatabaseName: databaseName, Name: name.toLowerCase() }),
      );
    } catch (error) {
      if (error instanceof EntityNotFoundException) return;
      throw glueError(error, `deleting Glue table ${databaseName}.${name.toLowerCase()}`);
    }
  }

  /** The Glue table behind `database.name`, or `undefined`. */
  private async readTable(database: string, name: string): Promise<Table | undefined> {
    const databaseName = this.glueDatabaseName(database);
    try {
      const out = await this.client.send(
        new GetTableCommand({ DatabaseName: databaseName, Name: name.toLowerCase() }),
      );
      return out.Table ? { ...out.Table, DatabaseName: out.Table.DatabaseName ?? databaseName } : undefined;
    } catch (error) {
      if (error instanceof EntityNotFoundException) return undefined;
      throw glueError(error, `reading Glue table ${databaseName}.${name.toLowerCase()}`);
    }
  }

  private getVersionsPage(databaseName: string, tableName: string, token: string | undefined) {
    return this.client.send(
      new GetTableVersionsCommand({
        DatabaseName: databaseName,
        TableName: tableName,
        ...(token ? { NextToken: token } : {}),
      }),
    );
  }

  private async hasPartitions(databaseName: string, tableName: string): Promise<boolean> {
    try {
      const out = await this.client.send(
        new GetPartitionsCommand({
          DatabaseName: databaseName,
          TableName: tableName,
          MaxResults: 1,
          ExcludeColumnSchema: true,
        }),
      );
      return (out.Partitions ?? []).length > 0;
    } catch (error) {
      if (error instanceof EntityNotFoundException) return false;
      throw glueError(error, `listing partitions of Glue table ${databaseName}.${tableName}`);
    }
  }

  private async readPartitions(database: string, name: string): Promise<Partition[]> {
    const databaseName = this.glueDatabaseName(database);
    const tableName = name.toLowerCase();
    const table = await this.readTable(database, name);
    if (!table) return [];
    const layer = this.toTable(table).location.layer;
    const partitions: Partition[] = [];
    let token: string | undefined;
    do {
      let page: GetPartitionsCommandOutput;
      try {
        page = await this.client.send(
          new GetPartitionsCommand({
            DatabaseName: databaseName,
            TableName: tableName,
            ExcludeColumnSchema: true,
            ...(token ? { NextToken: token } : {}),
          }),
        );
      } catch (error) {
        if (error instanceof EntityNotFoundException) return [];
        throw glueError(error, `listing partitions of Glue table ${databaseName}.${tableName}`);
      }
      for (const p of page.Partitions ?? []) partitions.push(this.toPartition(p, layer));
      token = page.NextToken;
    } while (token);
    return partitions;
  }

  private async ensureDatabase(database: string): Promise<void> {
    const name = this.glueDatabaseName(database);
    try {
      await this.client.send(
        new CreateDatabaseCommand({
          DatabaseInput: {
            Name: name,
            Description: `sluice database ${database}`,
            Parameters: { [GLUE_PARAMETERS.database]: database },
          },
        }),
      );
    } catch (error) {
      if (error instanceof AlreadyExistsException) return;
      throw glueError(error, `creating Glue database ${name}`);
    }
  }

  /** The Glue `TableInput` of a definition with sluice's bookkeeping parameters. */
  private tableInput(
    definition: TableDefinition,
    stamps: {
      schemaVersion: number;
      schemaCreatedAt: string;
      schemaCreatedBy: string | undefined;
      createdAt: string;
      updatedAt: string;
    },
  ): TableInput {
    const format = GLUE_FORMATS[definition.format];
    const parameters: Record<string, string> = {
      EXTERNAL: 'TRUE',
      ...format.tableParameters,
      [GLUE_PARAMETERS.classification]: format.classification,
      [GLUE_PARAMETERS.format]: definition.format,
      [GLUE_PARAMETERS.database]: definition.database,
      [GLUE_PARAMETERS.name]: definition.name,
      [GLUE_PARAMETERS.layer]: definition.location.layer,
      [GLUE_PARAMETERS.schemaVersion]: String(stamps.schemaVersion),
      [GLUE_PARAMETERS.schemaCreatedAt]: stamps.schemaCreatedAt,
      [GLUE_PARAMETERS.createdAt]: stamps.createdAt,
      [GLUE_PARAMETERS.updatedAt]: stamps.updatedAt,
    };
    if (stamps.schemaCreatedBy !== undefined)
      parameters[GLUE_PARAMETERS.schemaCreatedBy] = stamps.schemaCreatedBy;
    if (definition.primaryKey !== undefined) {
      parameters[GLUE_PARAMETERS.primaryKey] = JSON.stringify(definition.primaryKey);
    }
    if (definition.managedBy !== undefined) parameters[GLUE_PARAMETERS.managedBy] = definition.managedBy;
    return {
      Name: definition.name.toLowerCase(),
      ...(definition.description !== undefined ? { Description: definition.description } : {}),
      TableType: 'EXTERNAL_TABLE',
      Parameters: parameters,
      PartitionKeys: definition.partitionKeys.map(toGlueColumn),
      StorageDescriptor: this.storageDescriptor(
        definition.format,
        definition.columns,
        this.s3Location(definition.location.layer, definition.location.prefix),
      ),
    };
  }

  private storageDescriptor(
    format: TableFormat,
    columns: readonly Column[],
    location: string,
  ): StorageDescriptor {
    const classes = GLUE_FORMATS[format];
    return {
      Columns: columns.map(toGlueColumn),
      Location: location,
      InputFormat: classes.inputFormat,
      OutputFormat: classes.outputFormat,
      SerdeInfo: {
        ...(classes.serializationLibrary ? { SerializationLibrary: classes.serializationLibrary } : {}),
        Parameters: { ...classes.serdeParameters },
      },
    };
  }

  private partitionInput(
    table: Table,
    current: CatalogTable,
    partition: PartitionInput,
    createdAt: string,
    updatedAt: string,
  ): GluePartitionInput {
    const files = partition.files.map((file) => {
      const copy: { key: string; bytes: number; rows?: number } = { key: file.key, bytes: file.bytes };
      if (file.rows !== undefined) copy.rows = file.rows;
      return copy;
    });
    const parameters: Record<string, string> = {
      [GLUE_PARAMETERS.files]: JSON.stringify(files),
      [GLUE_PARAMETERS.numFiles]: String(files.length),
      [GLUE_PARAMETERS.totalSize]: String(files.reduce((n, f) => n + f.bytes, 0)),
      [GLUE_PARAMETERS.schemaVersion]: String(current.schemaVersion),
      [GLUE_PARAMETERS.createdAt]: createdAt,
      [GLUE_PARAMETERS.updatedAt]: updatedAt,
    };
    if (files.every((f) => f.rows !== undefined)) {
      parameters[GLUE_PARAMETERS.numRows] = String(files.reduce((n, f) => n + (f.rows ?? 0), 0));
    }
    if (partition.runId !== undefined) parameters[GLUE_PARAMETERS.runId] = partition.runId;
    const descriptor = this.storageDescriptor(
      current.format,
      current.columns,
      this.s3Location(current.location.layer, partition.prefix),
    );
    // Keep SerDe settings Glue holds for the table (e.g. set by hand) when they are there.
    if (table.StorageDescriptor?.SerdeInfo) descriptor.SerdeInfo = table.StorageDescriptor.SerdeInfo;
    return { Values: [...partition.values], StorageDescriptor: descriptor, Parameters: parameters };
  }

  private s3Location(layer: Layer, prefix: string): string {
    return `s3://${this.buckets[layer]}/${prefix}`;
  }

  /** Layer and key prefix of an `s3://bucket/prefix` location, or `undefined` outside the lake's buckets. */
  private parseLocation(location: string | undefined): { layer: Layer; prefix: string } | undefined {
    const m = /^s3a?:\/\/([^/]+)\/?(.*)$/.exec(location ?? '');
    if (!m) return undefined;
    for (const [layer, bucket] of Object.entries(this.buckets)) {
      if (bucket === m[1]) return { layer: layer as Layer, prefix: m[2] ?? '' };
    }
    return undefined;
  }

  private isLakeTable(table: Table): boolean {
    return (
      table.TableType !== 'VIRTUAL_VIEW' &&
      this.parseLocation(table.StorageDescriptor?.Location) !== undefined
    );
  }

  /** The port's table of a Glue table. @throws {Error} when its location is in none of the lake's buckets. */
  private toTable(table: Table): CatalogTable {
    const params = table.Parameters ?? {};
    const databaseName = table.DatabaseName ?? '';
    const location = this.parseLocation(table.StorageDescriptor?.Location);
    if (!location) {
      throw new Error(
        `Glue table ${databaseName}.${table.Name}: location ${table.StorageDescriptor?.Location} is in none ` +
          `of the lake's buckets (${Object.values(this.buckets).join(', ')})`,
      );
    }
    const created = params[GLUE_PARAMETERS.createdAt] ?? table.CreateTime?.toISOString();
    const updated = params[GLUE_PARAMETERS.updatedAt] ?? table.UpdateTime?.toISOString() ?? created;
    const result: { -readonly [K in keyof CatalogTable]: CatalogTable[K] } = {
      database:
        params[GLUE_PARAMETERS.database] ??
        (databaseName.startsWith(this.databasePrefix.toLowerCase())
          ? databaseName.slice(this.databasePrefix.length)
          : databaseName),
      name: params[GLUE_PARAMETERS.name] ?? table.Name ?? '',
      location,
      format: formatOf(params),
      columns: (table.StorageDescriptor?.Columns ?? []).map(fromGlueColumn),
      partitionKeys: (table.PartitionKeys ?? []).map(fromGlueColumn),
      schemaVersion: Number(params[GLUE_PARAMETERS.schemaVersion] ?? Number(table.VersionId ?? 0) + 1),
      createdAt: created === undefined ? new Date(0) : new Date(created),
      updatedAt: updated === undefined ? new Date(0) : new Date(updated),
    };
    if (table.Description !== undefined) result.description = table.Description;
    const primaryKey = params[GLUE_PARAMETERS.primaryKey];
    if (primaryKey !== undefined) result.primaryKey = JSON.parse(primaryKey) as string[];
    const managedBy = params[GLUE_PARAMETERS.managedBy];
    if (managedBy === 'pipeline' || managedBy === 'crawler') result.managedBy = managedBy;
    return result;
  }

  private toPartition(p: GluePartition, layer: Layer): Partition {
    const params = p.Parameters ?? {};
    const files = JSON.parse(params[GLUE_PARAMETERS.files] ?? '[]') as PartitionFile[];
    const location = this.parseLocation(p.StorageDescriptor?.Location);
    const created = params[GLUE_PARAMETERS.createdAt] ?? p.CreationTime?.toISOString();
    const updated = params[GLUE_PARAMETERS.updatedAt] ?? created;
    const rows = params[GLUE_PARAMETERS.numRows];
    const partition: { -readonly [K in keyof Partition]: Partition[K] } = {
      values: p.Values ?? [],
      prefix:
        location && location.layer === layer
          ? location.prefix
          : (p.StorageDescriptor?.Location ?? '').replace(/^s3a?:\/\/[^/]+\/?/, ''),
      files,
      bytes: Number(params[GLUE_PARAMETERS.totalSize] ?? files.reduce((n, f) => n + f.bytes, 0)),
      schemaVersion: Number(params[GLUE_PARAMETERS.schemaVersion] ?? 1),
      createdAt: created === undefined ? new Date(0) : new Date(created),
      updatedAt: updated === undefined ? new Date(0) : new Date(updated),
    };
    if (rows !== undefined) partition.rows = Number(rows);
    const runId = params[GLUE_PARAMETERS.runId];
    if (runId !== undefined) partition.runId = runId;
    return partition;
  }
}

/** A Glue column of a sluice column: the type as is (sluice's types are Glue's), nullability and logical type as `Parameters`. */
export function toGlueColumn(column: Column): GlueColumn {
  const parameters: Record<string, string> = {};
  if (column.nullable !== undefined) parameters[GLUE_PARAMETERS.nullable] = String(column.nullable);
  if (column.logicalType !== undefined) parameters[GLUE_PARAMETERS.logicalType] = column.logicalType;
  return {
    Name: column.name,
    Type: column.type,
    ...(column.comment !== undefined ? { Comment: column.comment } : {}),
    ...(Object.keys(parameters).length > 0 ? { Parameters: parameters } : {}),
  };
}

/** The sluice column of a Glue column (inverse of {@link toGlueColumn}); types via {@link fromGlueType}. */
export function fromGlueColumn(column: GlueColumn): Column {
  const params = column.Parameters ?? {};
  const result: { -readonly [K in keyof Column]: Column[K] } = {
    name: column.Name ?? '',
    type: fromGlueType(column.Type ?? 'string'),
  };
  const nullable = params[GLUE_PARAMETERS.nullable];
  if (nullable === 'true' || nullable === 'false') result.nullable = nullable === 'true';
  if (params[GLUE_PARAMETERS.logicalType] === 'json') result.logicalType = 'json';
  if (column.Comment !== undefined) result.comment = column.Comment;
  return result;
}

/**
 * sluice's type of a Glue/Hive type string (tables written by crawlers or by hand): sluice's own
 * vocabulary is kept as is; `integer` is `int`, `char(n)` is `string`, `real` is `float`;
 * anything else unknown is `string`. Whitespace inside complex types is removed.
 */
export function fromGlueType(type: string): ColumnType {
  const t = type.trim().toLowerCase().replace(/\s+/g, '');
  if (isColumnType(t)) return t;
  if (t === 'integer') return 'int';
  if (t === 'real') return 'float';
  if (/^char\(\d+\)$/.test(t) || t === 'varchar') return 'string';
  return 'string';
}

/** Maps a thrown Glue error to a {@link SluiceError} `glue_error` naming what was being done. */
function glueError(error: unknown, doing: string): SluiceError {
  return awsCallError(
    error,
    doing,
    'glue_error',
    /Throttl|ConcurrentModification|InternalService|OperationTimeout/,
  );
}

/** A Glue `Table` as it will read back after writing `input` into `databaseName`. */
function fromInput(databaseName: string, input: TableInput): Table {
  return { ...input, Name: input.Name ?? '', DatabaseName: databaseName };
}

function toPartitionInput(p: GluePartition): GluePartitionInput {
  return {
    ...(p.Values ? { Values: p.Values } : {}),
    ...(p.StorageDescriptor ? { StorageDescriptor: p.StorageDescriptor } : {}),
    ...(p.Parameters ? { Parameters: p.Parameters } : {}),
    ...(p.LastAccessTime ? { LastAccessTime: p.LastAccessTime } : {}),
  };
}

function formatOf(params: Record<string, string>): TableFormat {
  const own = params[GLUE_PARAMETERS.format];
  if (own === 'parquet' || own === 'ndjson' || own === 'csv' || own === 'python-dict') return own;
  const classification = params[GLUE_PARAMETERS.classification]?.toLowerCase();
  if (classification === 'json') return 'ndjson';
  if (classification === 'csv') return 'csv';
  if (classification === 'python-dict') return 'python-dict';
  return 'parquet';
}

function sameDefinition(current: CatalogTable, next: TableDefinition): boolean {
  const json = (v: unknown) => JSON.stringify(v ?? null);
  return (
    current.location.layer === next.location.layer &&
    current.location.prefix === next.location.prefix &&
    current.format === next.format &&
    json(current.columns.map(normalizeColumn)) === json(next.columns.map(normalizeColumn)) &&
    json(current.partitionKeys.map(normalizeColumn)) === json(next.partitionKeys.map(normalizeColumn)) &&
    (current.description ?? null) === (next.description ?? null) &&
    json(current.primaryKey) === json(next.primaryKey) &&
    (current.managedBy ?? null) === (next.managedBy ?? null)
  );
}

function normalizeColumn(c: Column): unknown[] {
  return [c.name, c.type, c.nullable ?? null, c.logicalType ?? null, c.comment ?? null];
}

function samePartitionKeys(a: readonly Column[], b: readonly Column[]): boolean {
  return a.length === b.length && a.every((key, i) => key.name === b[i]!.name && key.type === b[i]!.type);
}

/** Orders value lists value by value, each compared as UTF-8 bytes. */
function compareValues(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const order = Buffer.compare(Buffer.from(a[i]!), Buffer.from(b[i]!));
    if (order !== 0) return order;
  }
  return a.length - b.length;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
