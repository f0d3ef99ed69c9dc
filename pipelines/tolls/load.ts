import type { PipelineContext } from '../../src/core/context.ts';
import type { ObjectRef } from '../../src/core/layer.ts';
import { type Warehouse, WarehouseError } from '../../src/core/ports/warehouse.ts';
import { LOADS_TABLE, LOADS_TABLE_DDL, TOLL_COLUMNS, TOLL_TABLE, TOLL_TABLE_DDL } from './definition.ts';

/** A staged file to load. */
export interface LoadInput {
  /** The landed file it came from (recorded in `sluice_loads`). */
  readonly sourceKey: string;
  /** SHA-256 of the landed file's bytes: the idempotence key. */
  readonly sha256: string;
  /** The staging CSV; absent when the job accepted no line (nothing to copy, but recorded). */
  readonly staging?: ObjectRef;
}

/** Outcome of {@link loadFile}. */
export interface LoadResult {
  readonly sourceKey: string;
  /** `already-loaded`: a file with the same content was loaded before (by run `previousRun`). */
  readonly status: 'loaded' | 'already-loaded';
  /** Rows copied now, or, when already loaded, rows the earlier load copied. */
  readonly rows: number;
  readonly previousRun?: string;
}

/** Creates `toll_table` and `sluice_loads` when missing. Idempotent, also when two loads run it at once. */
export async function ensureWarehouseTables(warehouse: Warehouse): Promise<void> {
  await createIfMissing(warehouse, TOLL_TABLE_DDL);
  await createIfMissing(warehouse, LOADS_TABLE_DDL);
}

/**
 * PostgreSQL's `CREATE TABLE IF NOT EXISTS` is not atomic: of two sessions creating the same table
 * at once (two executions loading their first files), one fails with `23505` (on `pg_type`) or
 * `42P07`/`42710`. The table exists then, so the statement is run once more (now a no-op).
 */
async function createIfMissing(warehouse: Warehouse, ddl: string): Promise<void> {
  try {
    await warehouse.execute(ddl);
  } catch (error) {
    if (!(error instanceof WarehouseError) || !['23505', '42P07', '42710'].includes(error.sqlState ?? ''))
      throw error;
    await warehouse.execute(ddl);
  }
}

/**
 * Loads one staged file into `toll_table` with COPY, exactly once per file content, in one
 * transaction: `LOCK sluice_loads` (serialises concurrent loads; the workflow runs two at once),
 * skip when `sluice_loads` already records this content for `toll_table`, else COPY the staging
 * CSV and record the load. A crash or kill anywhere before COMMIT leaves neither rows nor the
 * record, so a retry loads the file whole; after COMMIT a re-delivery finds the record and loads
 * nothing. Uses only SQL Redshift also accepts (`LOCK`, no `ON CONFLICT`).
 *
 * @param onPhase called after the COPY, inside the transaction (crash-injection tests).
 * @throws {WarehouseError} from the server (e.g. a NOT NULL violation naming the CSV line).
 */
export async function loadFile(
  ctx: PipelineContext,
  warehouse: Warehouse,
  input: LoadInput & { runId: string; onPhase?: (phase: 'copied') => void | Promise<void> },
): Promise<LoadResult> {
  return warehouse.transaction(async (tx) => {
    await tx.execute(`LOCK ${LOADS_TABLE}`);
    const previous = await tx.query(
      `SELECT rows_loaded, run_id FROM ${LOADS_TABLE} WHERE target_table = $1 AND source_sha256 = $2`,
      [TOLL_TABLE, input.sha256],
    );
    const first = previous.rows[0];
    if (first) {
      return {
        sourceKey: input.sourceKey,
        status: 'already-loaded' as const,
        rows: Number(first.rows_loaded),
        previousRun: String(first.run_id),
      };
    }
    const rows = input.staging ? await tx.copyFrom(TOLL_TABLE, TOLL_COLUMNS, input.staging) : 0;
    await input.onPhase?.('copied');
    await tx.execute(
      `INSERT INTO ${LOADS_TABLE} (target_table, source_sha256, source_key, rows_loaded, run_id, loaded_at) VALUES ($1, $2, $3, $4, $5, $6)`,
      [TOLL_TABLE, input.sha256, input.sourceKey, rows, input.runId, ctx.clock.now().toISOString()],
    );
    return { sourceKey: input.sourceKey, status: 'loaded' as const, rows };
  });
}
