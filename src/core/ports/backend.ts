import type { LivenessProbe } from '../lease.ts';
import type { NamedQuery } from '../query.ts';
import type { Catalog } from './catalog.ts';
import type { KvStore } from './kv-table.ts';
import type { ObjectStore } from './object-store.ts';
import type { QueryEngine } from './query-engine.ts';
import type { StreamStore } from './stream.ts';

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
   */
  openQueryEngine(options?: { readonly namedQueries?: readonly NamedQuery[] }): Promise<QueryEngine>;
  /** How this backend tells whether a lease holder still runs. */
  readonly isAlive: LivenessProbe;
  /** Releases connections and files. */
  close(): Promise<void>;
}
