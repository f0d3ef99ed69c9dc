import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Clock } from '../../core/clock.ts';
import { systemClock } from '../../core/clock.ts';
import type { LeaseOwner } from '../../core/lease.ts';
import type { Logger } from '../../core/logger.ts';
import type { Backend } from '../../core/ports/backend.ts';
import type { QueryEngine } from '../../core/ports/query-engine.ts';
import type { Warehouse } from '../../core/ports/warehouse.ts';
import type { NamedQuery } from '../../core/query.ts';
import { processRuns } from '../scratch.ts';
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
  /**
   * The warehouse's connection URL (default `$SLUICE_WAREHOUSE_URL`); when empty or unset, the home's
   * own PostgreSQL server under `<home>/warehouse/` (started on demand).
   */
  readonly warehouseUrl?: string;
  /** Receives what starting the home's warehouse server changed (see postgres-server.ts). */
  readonly logger?: Logger;
}

/**
 * Per home, the backends of this process that use its warehouse server, and whether this process
 * started (or adopted) it: the last of them to close stops it (server.json names the process, not
 * a backend, as its owner).
 */
const homeServerUsers = new Map<string, { backends: Set<symbol>; owned: boolean }>();

/**
 * The embedded default backend under a home directory:
 * - `<home>/lake/<layer>/...`: the object store (a directory per layer);
 * - `<home>/sluice.db`: SQLite, holding the key-value tables (bookmarks, runs, leases) and the catalog;
 * - `<home>/streams.db`: SQLite, holding the record streams (a file of their own, so stream writes
 *   never wait for the key-value/catalog database's write lock, nor it for them);
 * - DuckDB (in memory) as the query engine over the lake's Parquet files;
 * - `<home>/warehouse/`: a PostgreSQL server as the warehouse (started on the first
 *   {@link Backend.openWarehouse} unless `$SLUICE_WAREHOUSE_URL` names another server).
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
  const warehouseUrl = options.warehouseUrl ?? process.env.SLUICE_WAREHOUSE_URL ?? '';
  const warehouses = new Set<Warehouse>();
  // This backend as a user of the home's server (see homeServerUsers).
  const serverUser = Symbol('backend');
  let closed = false;
  return {
    name: 'local',
    home: root,
    objectStore,
    kv: new LocalKvStore(db, { clock }),
    catalog,
    stream,
    isAlive: isLocalProcessAlive,
    async openQueryEngine(
      open: { readonly namedQueries?: readonly NamedQuery[]; readonly sandboxed?: boolean } = {},
    ): Promise<QueryEngine> {
      const { LocalQueryEngine } = await import('./local-query-engine.ts');
      return LocalQueryEngine.open({
        catalog,
        objectStore,
        lakeRoot,
        ...options.query,
        ...(open.namedQueries ? { namedQueries: open.namedQueries } : {}),
        ...(open.sandboxed ? { sandboxed: true } : {}),
      });
    },
    async openWarehouse(): Promise<Warehouse> {
      if (closed) throw new Error('the backend is closed');
      const { LocalWarehouse } = await import('./local-warehouse.ts');
      let url = warehouseUrl;
      if (url === '') {
        const { PostgresServer } = await import('./postgres-server.ts');
        const server = await PostgresServer.start(root, {
          owner: 'backend',
          ...(options.logger ? { logger: options.logger } : {}),
        });
        const users = homeServerUsers.get(root) ?? { backends: new Set<symbol>(), owned: false };
        homeServerUsers.set(root, users);
        users.backends.add(serverUser);
        if (server.started) users.owned = true;
        url = server.connectionString;
      }
      const warehouse = await LocalWarehouse.open({
        connectionString: url,
        objectStore,
        onClose: async () => {
          warehouses.delete(warehouse);
        },
      });
      warehouses.add(warehouse);
      return warehouse;
    },
    async close() {
      if (closed) return;
      closed = true;
      try {
        await Promise.allSettled([...warehouses].map((w) => w.close()));
        const users = homeServerUsers.get(root);
        if (users?.backends.delete(serverUser) && users.backends.size === 0) {
          homeServerUsers.delete(root);
          if (users.owned) {
            const { PostgresServer } = await import('./postgres-server.ts');
            await PostgresServer.release(root);
          }
        }
      } finally {
        try {
          streamsDb.close();
        } finally {
          db.close();
        }
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
  return processRuns(owner.pid);
}
