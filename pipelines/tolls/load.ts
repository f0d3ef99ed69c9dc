import type { PipelineContext } from '../../src/core/context.ts';
import type { ObjectRef } from '../../src/core/layer.ts';
import type { Warehouse } from '../../src/core/ports/warehouse.ts';
import { copyOnce, createTableIfMissing, LOADS_TABLE_DDL } from '../../src/engines/warehouse/copy-once.ts';
import { TOLL_COLUMNS, TOLL_TABLE, TOLL_TABLE_DDL } from './definition.ts';

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
  await createTableIfMissing(warehouse, TOLL_TABLE_DDL);
  await createTableIfMissing(warehouse, LOADS_TABLE_DDL);
}

/**
 * Loads one staged file into `toll_table` with COPY, exactly once per file content, in one
 * transaction (src/engines/warehouse/copy-once.ts): `LOCK sluice_loads` (serialises concurrent
 * loads; the workflow runs two at once), skip when `sluice_loads` already records this content for
 * `toll_table`, else COPY the staging CSV and record the load. A crash or kill anywhere before
 * COMMIT leaves neither rows nor the record, so a retry loads the file whole; after COMMIT a
 * re-delivery finds the record and loads nothing. Uses only SQL Redshift also accepts (`LOCK`, no
 * `ON CONFLICT`).
 *
 * @param onPhase called after the COPY, inside the transaction (crash-injection tests).
 * @throws {WarehouseError} from the server (e.g. a NOT NULL violation naming the CSV line).
 */
export async function loadFile(
  ctx: PipelineContext,
  warehouse: Warehouse,
  input: LoadInput & { runId: string; onPhase?: (phase: 'copied') => void | Promise<void> },
): Promise<LoadResult> {
  const result = await copyOnce(warehouse, {
    table: TOLL_TABLE,
    columns: TOLL_COLUMNS,
    sha256: input.sha256,
    sourceKey: input.sourceKey,
    runId: input.runId,
    at: ctx.clock.now(),
    ...(input.staging ? { staging: input.staging } : {}),
    ...(input.onPhase ? { onPhase: input.onPhase } : {}),
  });
  return { sourceKey: input.sourceKey, ...result };
}
