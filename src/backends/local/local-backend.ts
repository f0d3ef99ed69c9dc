import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Clock } from '../../core/clock.ts';
import { systemClock } from '../../core/clock.ts';
import type { LeaseOwner } from '../../core/lease.ts';
import type { Backend } from '../../core/ports/backend.ts';
import type { QueryEngine } from '../../core/ports/query-engine.ts';
import type { NamedQuery } from '../../core/query.ts';
import { LocalCatalog } from './local-catalog.ts';
import { LocalKvStore } from './local-kv-table.ts';
import { LocalObjectStore } from './local-object-store.ts';
import { LocalStreamStore } from './local-stream.ts';
import { openSqlite } from './sqlite.ts';

/** Options of {@link createLocalBackend}. */
export interface LocalBackendOptions {
  readonly clock?: Clock;
  /** DuckDB settings of query engines opened by this backend. */
  readonly query?: { readonly threads?: number; readonly memoryLimit?: string };
}

/**
 * The embedded default backend under a home directory:
 * - `<home>/lake/<layer>/...`: the object store (a directory per layer);
 * - `<home>/sluice.db`: SQLite, holding the key-value tables (bookmarks, runs, leases) and the catalog;
 * - `<home>/streams.db`: SQLite, holding the record streams (a file of their own, so stream writes
 *   never wait for the key-value/catalog database's write lock, nor it for them);
 * - DuckDB (in memory) as the query engine over the lake's Parquet files.
 *
 * Lease holders are alive when they run on this host and their process exists (`kill(pid, 0)`).
 */
export function createLocalBackend(
  home: string,
  options: LocalBackendOptions = {},
): Backend & { home: string } {
  const root = path.resolve(home);
  mkdirSync(root, { recursive: true });
  const clock = options.clock ?? systemClock;
  const db = openSqlite(path.join(root, 'sluice.db'));
  const streamsDb = openSqlite(path.join(root, 'streams.db'));
  let stream: LocalStreamStore;
  try {
    stream = new LocalStreamStore(streamsDb, { clock });
  } catch (error) {
    streamsDb.close();
    db.close();
    throw error;
  }
  const lakeRoot = path.join(root, 'lake');
  const catalog = new LocalCatalog(db, { clock });
  const objectStore = new LocalObjectStore(lakeRoot, { clock });
  return {
    name: 'local',
    home: root,
    objectStore,
    kv: new LocalKvStore(db, { clock }),
    catalog,
    stream,
    isAlive: isLocalProcessAlive,
    async openQueryEngine(
      open: { readonly namedQueries?: readonly NamedQuery[] } = {},
    ): Promise<QueryEngine> {
      const { LocalQueryEngine } = await import('./local-query-engine.ts');
      return LocalQueryEngine.open({
        catalog,
        objectStore,
        lakeRoot,
        ...options.query,
        ...(open.namedQueries ? { namedQueries: open.namedQueries } : {}),
      });
    },
    async close() {
      try {
        streamsDb.close();
      } finally {
        db.close();
      }
    },
  };
}

/**
 * Whether a lease owner's process is still running: `undefined` for another host (only expiry
 * can tell), else `kill(pid, 0)` (`EPERM` means it exists under another user).
 */
export function isLocalProcessAlive(owner: LeaseOwner): boolean | undefined {
  if (owner.host !== os.hostname()) return undefined;
  if (owner.pid === process.pid) return true;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
