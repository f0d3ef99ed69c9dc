import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';

/** A better-sqlite3 connection (synchronous API). */
export type Database = BetterSqlite3.Database;

/** A prepared better-sqlite3 statement with positional parameters. */
export type Statement = BetterSqlite3.Statement<unknown[], unknown>;

/** How long a connection waits for another connection's write lock before failing with `SQLITE_BUSY`, in ms. */
export const BUSY_TIMEOUT_MS = 10_000;

/**
 * Opens (creating when missing, with its parent directory) the SQLite database at `path`, set up
 * for several processes sharing the file, e.g. a CLI query while a run is writing:
 *
 * - `journal_mode = WAL`: readers never block the writer and the writer never blocks readers;
 * - `busy_timeout = 10000`: a connection waits up to 10 s for another one's write lock;
 * - `synchronous = NORMAL`: durable at checkpoints, safe against corruption (the WAL default);
 * - `foreign_keys = ON`.
 *
 * Read-modify-write sequences must run in `db.transaction(fn).immediate()` (`BEGIN IMMEDIATE`),
 * which takes the write lock up front: a deferred transaction that later upgrades to a write
 * fails at once with `SQLITE_BUSY_SNAPSHOT` when another process wrote in between.
 *
 * `':memory:'` opens a private in-memory database (no WAL).
 *
 * @throws {Error} when the file cannot be opened or is not a SQLite database.
 */
export function openSqlite(path: string): Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new BetterSqlite3(path, { timeout: BUSY_TIMEOUT_MS });
  try {
    // busy_timeout first: switching to WAL needs a lock another process may hold for a moment.
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    if (path !== ':memory:') {
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal')
        throw new Error(`SQLite database ${path} could not switch to WAL (journal_mode=${String(mode)})`);
    }
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * One schema step of a module: SQL (may hold several statements) or a function run inside the
 * migration transaction.
 */
export type Migration = string | ((db: Database) => void);

/** Name of the table recording each module's applied schema version. */
export const MIGRATIONS_TABLE = 'sluice_schema_migrations';

/**
 * Brings `module`'s schema up to date: applies `migrations[v]` for every `v` from the module's
 * recorded version to `migrations.length - 1`, and records the new version, all in one
 * `BEGIN IMMEDIATE` transaction. Several modules (key-value tables, catalog) share one database
 * file, so versions are kept per module in {@link MIGRATIONS_TABLE} (`PRAGMA user_version` holds
 * only one number per file).
 *
 * Idempotent and safe when several processes open the same file at once: the first takes the
 * write lock and migrates, the others wait, then find the schema current and do nothing.
 * Migrations are append-only: never edit or reorder a released step, add a new one.
 *
 * @throws {Error} when the database records a newer version than `migrations` knows (a newer
 *   sluice created it), or when a step fails (the transaction is rolled back).
 */
export function migrate(db: Database, module: string, migrations: readonly Migration[]): void {
  const target = migrations.length;
  if (readVersion(db, module) === target) return; // fast path: no write lock when current
  db.transaction(() => {
    db.exec(
      `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (
         module TEXT PRIMARY KEY,
         version INTEGER NOT NULL,
         applied_at TEXT NOT NULL
       ) STRICT`,
    );
    const current = readVersion(db, module) ?? 0;
    if (current > target) {
      throw new Error(
        `SQLite database ${db.name}: schema of "${module}" is at version ${current}, newer than this ` +
          `sluice knows (${target}); upgrade sluice`,
      );
    }
    for (let version = current; version < target; version++) {
      const step = migrations[version]!;
      if (typeof step === 'string') db.exec(step);
      else step(db);
    }
    if (current < target) {
      db.prepare(
        `INSERT INTO ${MIGRATIONS_TABLE} (module, version, applied_at) VALUES (?, ?, ?)
         ON CONFLICT (module) DO UPDATE SET version = excluded.version, applied_at = excluded.applied_at`,
      ).run(module, target, new Date().toISOString());
    }
  }).immediate();
}

/** The module's recorded schema version, or `undefined` when none (or no migrations table yet). */
export function readVersion(db: Database, module: string): number | undefined {
  const exists = db
    .prepare(`SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?`)
    .pluck()
    .get(MIGRATIONS_TABLE);
  if (exists === undefined) return undefined;
  const version = db.prepare(`SELECT version FROM ${MIGRATIONS_TABLE} WHERE module = ?`).pluck().get(module);
  return typeof version === 'number' ? version : undefined;
}
