import path from 'node:path';
import { QueryError } from '../../core/errors.ts';
import type { Catalog, CatalogTable, Partition } from '../../core/ports/catalog.ts';
import { qualifiedName } from '../../core/ports/catalog.ts';
import type { ObjectStore } from '../../core/ports/object-store.ts';
import type { QueryEngine, QueryOptions, QueryResult } from '../../core/ports/query-engine.ts';
import { bindNamedQuery, type NamedQuery, namedQueryName } from '../../core/query.ts';
import { DuckDb, quoteIdent, quoteString } from '../../engines/duckdb/duckdb.ts';
import { toDuckDbType } from '../../engines/duckdb/types.ts';

/** Options of {@link LocalQueryEngine.open}. */
export interface LocalQueryEngineOptions {
  readonly catalog: Catalog;
  /** Lists the data files of NDJSON/CSV tables (Parquet tables are read by partition). */
  readonly objectStore: ObjectStore;
  /** The lake directory: `<home>/lake` (one subdirectory per layer). */
  readonly lakeRoot: string;
  readonly threads?: number;
  readonly memoryLimit?: string;
  /** Named queries defined as views `<database>.<name>` with their parameters' defaults. */
  readonly namedQueries?: readonly NamedQuery[];
  /**
   * Lock the engine down after the views are defined, for statements from people (the
   * dashboard's SQL console): `allowed_directories` = the lake, `enable_external_access = false`
   * (no `read_csv('/etc/passwd')`, `glob`, `ATTACH`, extension loading outside it) and
   * `lock_configuration = true` (no `SET` undoing that). Views over the lake still read, and
   * {@link LocalQueryEngine.refresh} still works: the lake is an allowed directory. Writes into the
   * lake (`COPY ... TO`) are not stopped by DuckDB: callers refuse such statements themselves.
   */
  readonly sandboxed?: boolean;
}

/**
 * SQL over the lake with DuckDB, as Athena reads the Glue Data Catalog: every cataloged table is
 * a view `<database>.<table>` over the files of its registered partitions only (a partition
 * directory that is not registered is invisible, as in Athena), with partition keys as columns
 * typed by the catalog, and files of different schema versions read by column name
 * (`union_by_name`). A table with no partitions yet is an empty view with the declared columns.
 */
export class LocalQueryEngine implements QueryEngine {
  private constructor(
    private readonly db: DuckDb,
    private readonly options: LocalQueryEngineOptions,
  ) {}

  /** Opens DuckDB and defines a view per cataloged table. */
  static async open(options: LocalQueryEngineOptions): Promise<LocalQueryEngine> {
    const db = await DuckDb.open({
      ...(options.threads !== undefined ? { threads: options.threads } : {}),
      ...(options.memoryLimit !== undefined ? { memoryLimit: options.memoryLimit } : {}),
    });
    const engine = new LocalQueryEngine(db, options);
    await engine.refresh();
    if (options.sandboxed) {
      const lake = `${path.resolve(options.lakeRoot)}${path.sep}`;
      await db.run(`SET allowed_directories = [${quoteString(lake)}]`);
      await db.run('SET enable_external_access = false');
      await db.run('SET lock_configuration = true');
    }
    return engine;
  }

  /** Re-reads the catalog and redefines the views (after new tables or partitions). */
  async refresh(): Promise<void> {
    for (const table of await this.options.catalog.listTables()) {
      const partitions = await this.options.catalog.listPartitions(table.database, table.name);
      await this.db.run(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(table.database)}`);
      const name = `${quoteIdent(table.database)}.${quoteIdent(table.name)}`;
      if (table.format === 'python-dict') {
        // Neither DuckDB nor Athena reads Python dict reprs: the view says what to query instead.
        await this.db.run(`CREATE OR REPLACE VIEW ${name} AS ${errorSelect(pythonDictMessage(table))}`);
        continue;
      }
      try {
        await this.db.run(`CREATE OR REPLACE VIEW ${name} AS ${await this.viewSql(table, partitions)}`);
      } catch (error) {
        // A table whose files cannot be read fails the queries that use it, not every query.
        const message = `table ${qualifiedName(table)} cannot be read: ${(error as Error).message.split('\n')[0]}`;
        await this.db.run(`CREATE OR REPLACE VIEW ${name} AS ${errorSelect(message)}`);
      }
    }
    for (const query of this.options.namedQueries ?? []) {
      await this.db.run(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(query.database)}`);
      const name = `${quoteIdent(query.database)}.${quoteIdent(query.name)}`;
      try {
        await this.db.run(`CREATE OR REPLACE VIEW ${name} AS ${bindNamedQuery(query)}`);
      } catch (error) {
        // Its tables do not exist yet (the pipeline never ran): the view says so when used.
        const first = (error as Error).message.split('\n')[0] ?? '';
        const message = `named query ${namedQueryName(query)} cannot run yet (${first}): run the ${query.database} pipeline first`;
        await this.db.run(
          `CREATE OR REPLACE VIEW ${name} AS SELECT NULL AS error FROM range(1) WHERE error(${quoteString(message)}) IS NULL`,
        );
      }
    }
  }

  /**
   * The SELECT behind a table's view. Parquet tables read `*.parquet` in each registered partition
   * (or under the table's prefix when unpartitioned). NDJSON and CSV tables read the files with
   * their format's extensions found there, so other files in the folder (a README, a file the
   * crawler skipped) never break the table.
   */
  private async viewSql(table: CatalogTable, partitions: readonly Partition[]): Promise<string> {
    const base = path.join(this.options.lakeRoot, table.location.layer);
    const prefixes =
      table.partitionKeys.length === 0 ? [table.location.prefix] : partitions.map((p) => p.prefix);
    let files: string[];
    if (table.format === 'parquet') {
      files =
        table.partitionKeys.length === 0
          ? [path.join(base, table.location.prefix, '**', '*.parquet')]
          : prefixes.map((p) => path.join(base, p, '*.parquet'));
    } else {
      const pattern = table.format === 'csv' ? /\.(csv|tsv|txt)(\.gz)?$/i : /\.(json|ndjson|jsonl)(\.gz)?$/i;
      files = [];
      for (const prefix of prefixes) {
        for await (const info of this.options.objectStore.list(table.location.layer, prefix)) {
          const rest = info.key.slice(prefix.length);
          if (pattern.test(info.key) && (table.partitionKeys.length === 0 || !rest.includes('/'))) {
            files.push(path.join(base, info.key));
          }
        }
      }
    }
    if (files.length === 0 || (table.partitionKeys.length > 0 && partitions.length === 0)) {
      const columns = [...table.columns, ...table.partitionKeys]
        .map((c) => `CAST(NULL AS ${toDuckDbType(c)}) AS ${quoteIdent(c.name)}`)
        .join(', ');
      return `SELECT ${columns} WHERE false`;
    }
    const list = `[${files.map(quoteString).join(', ')}]`;
    const hive =
      table.partitionKeys.length > 0
        ? `, hive_partitioning = true, hive_types = {${table.partitionKeys
            .map((k) => `${quoteString(k.name)}: ${quoteString(toDuckDbType(k))}`)
            .join(', ')}}`
        : ', hive_partitioning = false';
    // Partition keys last and in path order (DuckDB would order hive columns by name).
    const keys = table.partitionKeys.map((k) => quoteIdent(k.name)).join(', ');
    const select = keys ? `SELECT * EXCLUDE (${keys}), ${keys}` : 'SELECT *';
    switch (table.format) {
      case 'parquet':
        return `${select} FROM read_parquet(${list}, union_by_name = true${hive})`;
      case 'ndjson':
        // `format = 'auto'`: the crawler catalogs JSON array files as ndjson tables too.
        return `${select} FROM read_json_auto(${list}, format = 'auto', union_by_name = true${hive})`;
      case 'csv':
        return `${select} FROM read_csv_auto(${list}, union_by_name = true${hive})`;
      case 'python-dict':
        throw new Error(pythonDictMessage(table));
    }
  }

  /**
   * Runs one statement.
   * @throws {QueryError} with DuckDB's message, plus the list of tables when a table is unknown.
   */
  async query(sql: string, options: QueryOptions = {}): Promise<QueryResult> {
    try {
      return await this.db.all(sql, {
        ...(options.maxRows !== undefined ? { maxRows: options.maxRows } : {}),
        ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      });
    } catch (error) {
      let message = (error as Error).message;
      if (options.timeoutMs !== undefined && /INTERRUPT/i.test(message)) {
        message = `the statement was stopped after ${options.timeoutMs} ms (the time limit)`;
      }
      if (/Catalog Error: Table with name/i.test(message)) {
        const tables = (await this.options.catalog.listTables()).map(qualifiedName);
        message += `\nTables in the catalog: ${tables.length > 0 ? tables.join(', ') : '(none yet: run a pipeline or `sluice crawl`)'}.`;
      }
      throw new QueryError(message, { cause: error });
    }
  }

  /** Closes DuckDB. */
  async close(): Promise<void> {
    this.db.close();
  }
}

/** A SELECT that raises `message` when used. The filter, not a column, raises it: `count(*)` would skip evaluating a column. */
function errorSelect(message: string): string {
  return `SELECT NULL AS error FROM range(1) WHERE error(${quoteString(message)}) IS NULL`;
}

/** Why a `python-dict` table has no rows to query, and what to query instead. */
function pythonDictMessage(table: CatalogTable): string {
  return (
    `table ${qualifiedName(table)} is in python-dict format (lines of Python dict reprs, as the tolls generator writes), ` +
    'which SQL engines cannot read (Athena neither): a job converts it; query the table it writes instead ' +
    '(tolls: the staging or warehouse table)'
  );
}
