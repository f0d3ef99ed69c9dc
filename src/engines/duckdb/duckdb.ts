import type { DuckDBConnection, DuckDBInstance, DuckDBResultReader } from '@duckdb/node-api';
import type { ResultColumn, SqlValue } from '../../core/ports/query-engine.ts';
import { toSqlValue } from './values.ts';

/** Settings of an embedded DuckDB database. */
export interface DuckDbOptions {
  /** Worker threads (default: the number of CPU cores, DuckDB's default). */
  readonly threads?: number;
  /**
   * Memory DuckDB may use before spilling to `tempDirectory`, e.g. `'1GB'` (default: DuckDB's,
   * 80% of RAM). Transforms set it so an hour of any size runs in bounded memory.
   */
  readonly memoryLimit?: string;
  /** Directory for spilled data (default: DuckDB's `.tmp` next to the database). */
  readonly tempDirectory?: string;
  /** Database file; default in-memory. */
  readonly path?: string;
}

/** A fully read result: columns (name, DuckDB type; JSON columns report `JSON`) and row objects. */
export interface DuckDbResult {
  readonly columns: ResultColumn[];
  readonly rows: Record<string, SqlValue>[];
}

/**
 * One embedded DuckDB database with one connection, created with extension auto-install and
 * auto-load off (installation needs the network; `json`, `parquet` and `icu` are built in) and
 * the session time zone set to UTC, so timestamps are read and written as UTC.
 *
 * The native module loads lazily on first `open`, so commands that never touch SQL start fast.
 */
export class DuckDb {
  private constructor(
    private readonly instance: DuckDBInstance,
    readonly connection: DuckDBConnection,
  ) {}

  /**
   * Opens a database.
   * @throws {Error} from DuckDB when a setting is invalid or the file cannot be opened.
   */
  static async open(options: DuckDbOptions = {}): Promise<DuckDb> {
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const config: Record<string, string> = {
      autoinstall_known_extensions: 'false',
      autoload_known_extensions: 'false',
    };
    if (options.threads !== undefined) config.threads = String(options.threads);
    if (options.memoryLimit !== undefined) config.memory_limit = options.memoryLimit;
    if (options.tempDirectory !== undefined) config.temp_directory = options.tempDirectory;
    const instance = await DuckDBInstance.create(options.path ?? ':memory:', config);
    const connection = await instance.connect();
    await connection.run(`SET TimeZone = 'UTC'`);
    return new DuckDb(instance, connection);
  }

  /** Runs statements whose result is not needed. */
  async run(sql: string): Promise<void> {
    await this.connection.run(sql);
  }

  /**
   * Runs a query and reads every row, converted with {@link toSqlValue}.
   * @param options.maxRows stop reading after this many rows (`truncated` tells).
   * @param options.timeoutMs interrupt the statement after this many ms: it then fails with
   *   DuckDB's `INTERRUPT Error: Interrupted!`.
   */
  async all(
    sql: string,
    options: { maxRows?: number; timeoutMs?: number } = {},
  ): Promise<DuckDbResult & { truncated: boolean }> {
    if (options.timeoutMs === undefined) return this.read(sql, options.maxRows);
    const timer = setTimeout(() => this.connection.interrupt(), options.timeoutMs);
    try {
      return await this.read(sql, options.maxRows);
    } finally {
      clearTimeout(timer);
    }
  }

  private async read(
    sql: string,
    maxRows: number | undefined,
  ): Promise<DuckDbResult & { truncated: boolean }> {
    if (maxRows === undefined) {
      const result = await this.connection.runAndReadAll(sql);
      return { ...convert(result), truncated: false };
    }
    const result = await this.connection.runAndReadUntil(sql, maxRows + 1);
    const converted = convert(result);
    const truncated = converted.rows.length > maxRows;
    return { columns: converted.columns, rows: converted.rows.slice(0, maxRows), truncated };
  }

  /** The first column of the first row, or `null` when there is no row. */
  async scalar(sql: string): Promise<SqlValue> {
    const { rows, columns } = await this.all(sql);
    const first = rows[0];
    const column = columns[0];
    return first && column ? (first[column.name] ?? null) : null;
  }

  /** Closes the connection and the database. */
  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }
}

function convert(result: DuckDBResultReader): DuckDbResult {
  const types = result.columnTypes();
  const columns: ResultColumn[] = result
    .columnNames()
    .map((name, i) => ({ name, type: types[i]?.alias ?? types[i]?.toString() ?? 'UNKNOWN' }));
  const rows = result.getRowObjectsJS().map((raw) => {
    const row: Record<string, SqlValue> = {};
    for (const column of columns) row[column.name] = toSqlValue(raw[column.name], column.type);
    return row;
  });
  return { columns, rows };
}

/** Quotes an identifier for DuckDB SQL (`"name"`, doubling embedded quotes). */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Quotes a string literal for DuckDB SQL (`'it''s'`). */
export function quoteString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
