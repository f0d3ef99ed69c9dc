/**
 * Query engine port: SQL over the cataloged tables of the lake, each visible as
 * `<database>.<table>` (for gharchive: `gharchive.events`).
 * Local backend: DuckDB over the Parquet files of the registered partitions.
 * AWS backend: Athena over the Glue Data Catalog.
 * Contract: test/conformance/query-engine.case.ts.
 */

/**
 * A value in a result row. Integers wider than 2^53 stay exact as `bigint`; timestamps are
 * ISO-8601 UTC strings (`2015-01-01T00:00:00.000Z`); dates `YYYY-MM-DD`; JSON columns are parsed
 * values; lists and structs are arrays and objects.
 */
export type SqlValue = null | boolean | number | bigint | string | SqlValue[] | { [key: string]: SqlValue };

/** A result column: its name and the engine's type name (e.g. `BIGINT`, `VARCHAR`, `TIMESTAMP`). */
export interface ResultColumn {
  readonly name: string;
  readonly type: string;
}

/** A query's result, fully read. */
export interface QueryResult {
  readonly columns: readonly ResultColumn[];
  readonly rows: Record<string, SqlValue>[];
  /** True when rows were cut at `maxRows`. */
  readonly truncated: boolean;
}

/** Options of {@link QueryEngine.query}. */
export interface QueryOptions {
  /** Stop reading after this many rows and set `truncated` (default: no limit). */
  readonly maxRows?: number;
  /**
   * Stop the statement after this many ms and throw a {@link QueryError} saying so (default: no
   * limit). Locally DuckDB's interrupt; Athena: `StopQueryExecution`.
   */
  readonly timeoutMs?: number;
}

/** The query engine port. */
export interface QueryEngine {
  /**
   * Runs one SQL statement and reads its result.
   * @throws {QueryError} naming the statement's problem (syntax, unknown table or column).
   */
  query(sql: string, options?: QueryOptions): Promise<QueryResult>;

  /** Releases the engine (connections, caches). */
  close(): Promise<void>;
}
