import type { ObjectRef } from '../../core/layer.ts';
import { type Warehouse, WarehouseError, type WarehouseTransaction } from '../../core/ports/warehouse.ts';

/**
 * Warehouse table recording every loaded staging file, by the SHA-256 of the content it came from:
 * content delivered twice (the same object re-notified, a copy dropped again, a retried workflow)
 * is loaded once.
 */
export const LOADS_TABLE = 'sluice_loads';

/** `CREATE TABLE` of {@link LOADS_TABLE} (Redshift-compatible: no `ON CONFLICT`, no `SERIAL`). */
export const LOADS_TABLE_DDL = `CREATE TABLE IF NOT EXISTS ${LOADS_TABLE} (
  target_table varchar(128) NOT NULL,
  source_sha256 varchar(64) NOT NULL,
  source_key varchar(1024) NOT NULL,
  rows_loaded bigint NOT NULL,
  run_id varchar(64) NOT NULL,
  loaded_at timestamp NOT NULL
)`;

/**
 * Runs a `CREATE TABLE IF NOT EXISTS`. PostgreSQL's is not atomic: of two sessions creating the same
 * table at once (two executions loading their first files), one fails with `23505` (on `pg_type`)
 * or `42P07`/`42710`. The table exists then, so the statement is run once more (now a no-op).
 */
export async function createTableIfMissing(warehouse: Warehouse, ddl: string): Promise<void> {
  try {
    await warehouse.execute(ddl);
  } catch (error) {
    if (!(error instanceof WarehouseError) || !['23505', '42P07', '42710'].includes(error.sqlState ?? ''))
      throw error;
    await warehouse.execute(ddl);
  }
}

/** Inputs of {@link copyOnce}. */
export interface CopyOnceInput {
  /** Target table and the staging CSV's columns in order. */
  readonly table: string;
  readonly columns: readonly string[];
  /** The idempotence key: SHA-256 of the content the staging file was made from. */
  readonly sha256: string;
  /** Recorded in `sluice_loads` (what was loaded: a landed file, a dataset unit). */
  readonly sourceKey: string;
  /** The staging CSV; absent when there is nothing to copy (the load is still recorded). */
  readonly staging?: ObjectRef;
  readonly runId: string;
  /** `loaded_at` of the record. */
  readonly at: Date;
  /** Runs inside the transaction before the COPY, only when the content is new (e.g. delete the rows it replaces). */
  readonly beforeCopy?: (tx: WarehouseTransaction) => Promise<void>;
  /** Called after the COPY, inside the transaction (crash-injection tests). */
  readonly onPhase?: (phase: 'copied') => void | Promise<void>;
}

/** Outcome of {@link copyOnce}. */
export interface CopyOnceResult {
  /** `already-loaded`: the same content was loaded into the table before (by run `previousRun`). */
  readonly status: 'loaded' | 'already-loaded';
  /** Rows copied now, or, when already loaded, rows the earlier load copied. */
  readonly rows: number;
  readonly previousRun?: string;
}

/**
 * COPYs a staging CSV into a table exactly once per content, in one transaction: `LOCK
 * sluice_loads` (serialises concurrent loads), skip when `sluice_loads` already records this
 * content for this table, else run `beforeCopy`, COPY and record the load. A crash or kill anywhere
 * before COMMIT leaves neither rows nor the record, so a retry loads the file whole; after COMMIT a
 * re-delivery finds the record and loads nothing. Only SQL Redshift also accepts (`LOCK`, no
 * `ON CONFLICT`). The tables must exist ({@link createTableIfMissing} with {@link LOADS_TABLE_DDL}).
 *
 * @throws {WarehouseError} from the server (e.g. a NOT NULL violation naming the CSV line).
 */
export async function copyOnce(warehouse: Warehouse, input: CopyOnceInput): Promise<CopyOnceResult> {
  return warehouse.transaction(async (tx) => {
    await tx.execute(`LOCK ${LOADS_TABLE}`);
    const previous = await tx.query(
      `SELECT rows_loaded, run_id FROM ${LOADS_TABLE} WHERE target_table = $1 AND source_sha256 = $2`,
      [input.table, input.sha256],
    );
    const first = previous.rows[0];
    if (first) {
      return {
        status: 'already-loaded' as const,
        rows: Number(first.rows_loaded),
        previousRun: String(first.run_id),
      };
    }
    await input.beforeCopy?.(tx);
    const rows = input.staging ? await tx.copyFrom(input.table, input.columns, input.staging) : 0;
    await input.onPhase?.('copied');
    await tx.execute(
      `INSERT INTO ${LOADS_TABLE} (target_table, source_sha256, source_key, rows_loaded, run_id, loaded_at) VALUES ($1, $2, $3, $4, $5, $6)`,
      [input.table, input.sha256, input.sourceKey, rows, input.runId, input.at.toISOString()],
    );
    return { status: 'loaded' as const, rows };
  });
}
