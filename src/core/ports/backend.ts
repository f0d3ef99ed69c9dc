import type { LivenessProbe } from '../lease.ts';
import type { Catalog } from './catalog.ts';
import type { KvStore } from './kv-table.ts';
import type { ObjectStore } from './object-store.ts';
import type { QueryEngine } from './query-engine.ts';

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
  /** Opens a query engine over the current catalog (heavy: loaded lazily). Close it after use. */
  openQueryEngine(): Promise<QueryEngine>;
  /** How this backend tells whether a lease holder still runs. */
  readonly isAlive: LivenessProbe;
  /** Releases connections and files. */
  close(): Promise<void>;
}
