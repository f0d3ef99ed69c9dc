import type { LivenessProbe } from '../lease.ts';
import type { NamedQuery } from '../query.ts';
import type { Catalog } from './catalog.ts';
import type { KvStore } from './kv-table.ts';
import type { ObjectStore } from './object-store.ts';
import type { QueryEngine } from './query-engine.ts';
import type { StreamStore } from './stream.ts';
import type { Warehouse } from './warehouse.ts';

/**
 * One backend's implementations of every port, chosen once at the composition root (the CLI,
 * or a deployed stack). Pipelines receive these and never know which backend they run on.
 */
export interface Backend {
  /** `local` (embedded engines under a home directory) or `aws`. */
  readonly name: 'local' | 'aws';
  readonly objectStore: ObjectStore;
  readonly kv: KvStore;
  readonly catalog: Catalog;
  /** Sharded record streams (Kinesis Data Streams semantics; locally SQLite in `<home>/streams.db`). */
  readonly stream: StreamStore;
  /**
   * Opens a query engine over the current catalog (heavy: loaded lazily). Close it after use.
   * `namedQueries` become views `<database>.<name>` (with their parameters' defaults).
   * `sandboxed`: for statements from people (the dashboard's SQL console): the engine reads the
   * cataloged tables and nothing else: no file outside the lake, no changing its settings
   * (locally DuckDB's `enable_external_access = false` with `allowed_directories` = the lake, and
   * `lock_configuration`; on AWS an Athena workgroup whose role reads only the lake's buckets).
   */
  openQueryEngine(options?: {
    readonly namedQueries?: readonly NamedQuery[];
    readonly sandboxed?: boolean;
  }): Promise<QueryEngine>;
  /**
   * Opens the warehouse (PostgreSQL locally, Redshift on AWS); close it after use.
   *
   * Locally it connects to `$SLUICE_WAREHOUSE_URL` when set, else to the home's server
   * (`<home>/warehouse/`), starting it when it is not running. A server started (or adopted after
   * its starter died) this way is stopped by {@link Backend.close}, so a `sluice run` leaves nothing
   * running; one started by `sluice warehouse start`, or already running under another live
   * process, is left running (docs/warehouse.md).
   * @throws {WarehouseError} when the warehouse cannot be reached; locally also
   *   `WarehouseServerError` when the home's server fails to start (the message names its log).
   */
  openWarehouse(): Promise<Warehouse>;
  /** How this backend tells whether a lease holder still runs. */
  readonly isAlive: LivenessProbe;
  /** Releases connections and files; stops a local warehouse server that {@link Backend.openWarehouse} started. */
  close(): Promise<void>;
}
