import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalBackend } from '../../src/backends/local/local-backend.ts';
import { LocalWarehouse } from '../../src/backends/local/local-warehouse.ts';
import { PostgresServer, type WarehouseServerState } from '../../src/backends/local/postgres-server.ts';
import { WarehouseError } from '../../src/core/ports/warehouse.ts';
import { warehouseConformance } from './warehouse.case.ts';

// Every home whose server a test may start: afterAll stops them all, whatever failed.
const homes = new Set<string>();

async function newHome(label: string): Promise<string> {
  const home = await mkdtemp(path.join(os.tmpdir(), `sluice-wh-${label}-`));
  homes.add(home);
  return home;
}

/**
 * Processes of the server on `dataDir` that are still alive (not zombies): the postmaster (its
 * command line names the data dir) and its children (parent pid = the postmaster).
 */
function serverProcesses(dataDir: string, postmasterPid?: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (args.includes(dataDir) || (postmasterPid !== undefined && Number(fields[1]) === postmasterPid)) {
        found.push(Number(entry));
      }
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Resolves with the socket error code of a TCP connect (`undefined` when it connected). */
function connectCode(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 2000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve('ETIMEDOUT');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });
}

/** Asserts that the server of `home` is gone: no process, no listener on its port. */
async function expectGone(home: string, port: number, pid: number): Promise<void> {
  expect(serverProcesses(PostgresServer.paths(home).dataDir, pid)).toEqual([]);
  expect(await connectCode('127.0.0.1', port)).toBe('ECONNREFUSED');
  expect((await PostgresServer.status(home)).running).toBe(false);
}

afterAll(async () => {
  for (const home of homes) {
    await PostgresServer.stop(home).catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------
// One server for the conformance suite and the local checks (a start costs ~0.5-1 s).

let sharedHome: string;
let shared: PostgresServer;

beforeAll(async () => {
  sharedHome = await newHome('shared');
  shared = await PostgresServer.start(sharedHome);
});

warehouseConformance('local (PostgreSQL)', async () => {
  const backend = createLocalBackend(sharedHome, { warehouseUrl: '' });
  const warehouse = await backend.openWarehouse();
  return { warehouse, objectStore: backend.objectStore, close: () => backend.close() };
});

describe('local warehouse server (shared)', () => {
  let warehouse: LocalWarehouse;
  let backend: ReturnType<typeof createLocalBackend>;
  beforeAll(async () => {
    backend = createLocalBackend(sharedHome, { warehouseUrl: '' });
    warehouse = await LocalWarehouse.open({
      connectionString: shared.connectionString,
      objectStore: backend.objectStore,
    });
  });
  afterAll(async () => {
    await warehouse?.close();
    await backend?.close();
  });

  it('listens on 127.0.0.1 only', async () => {
    expect((await warehouse.query('SHOW listen_addresses')).rows).toEqual([
      { listen_addresses: '127.0.0.1' },
    ]);
    expect(await connectCode('127.0.0.1', shared.port)).toBeUndefined();
    expect(await connectCode('::1', shared.port)).not.toBeUndefined();
    const external = Object.values(os.networkInterfaces())
      .flat()
      .filter((a) => a !== undefined && !a.internal && a.family === 'IPv4')
      .map((a) => a!.address);
    for (const address of external) {
      expect(await connectCode(address, shared.port), address).toBe('ECONNREFUSED');
    }
  });

  it('asks for the password: a login without it, or with a wrong one, is refused (28P01)', async () => {
    for (const password of ['', 'wrong']) {
      const client = new pg.Client({
        host: '127.0.0.1',
        port: shared.port,
        user: 'sluice',
        database: 'sluice',
        password,
      });
      client.on('error', () => {});
      const error = await client.connect().then(
        () => undefined,
        (e: unknown) => e,
      );
      await client.end().catch(() => undefined);
      expect(error).toBeDefined();
      if (password !== '') expect((error as { code?: string }).code).toBe('28P01');
    }
  });

  it('reports its status: port, pid, URL without the password, files', async () => {
    const status = await PostgresServer.status(sharedHome);
    expect(status).toMatchObject({ running: true, initialized: true, port: shared.port, pid: shared.pid });
    expect(status.url).toBe(`postgresql://sluice@127.0.0.1:${shared.port}/sluice`);
    expect(status.startedBy).toMatchObject({ owner: 'user', pid: process.pid });
    const password = (await readFile(status.paths.passwordFile, 'utf8')).trim().split(':').pop()!;
    expect(JSON.stringify(status)).not.toContain(password);
    expect((await import('node:fs')).statSync(status.paths.passwordFile).mode & 0o077).toBe(0);
  });

  it('converts PostgreSQL-only types: timestamptz, date, numeric (exact text), json, bytea', async () => {
    const result = await warehouse.query(
      `SELECT timestamptz '2024-03-01 12:00:00.123456+02' AS tz, date '2024-02-29' AS d,
              12345678901234567890.123::numeric AS n, '{"a":[1,2]}'::json AS j, '\\x0102'::bytea AS b,
              int8 '9007199254740993' AS big, 2::int4 AS i, true AS t`,
    );
    expect(result.rows).toEqual([
      {
        tz: '2024-03-01T10:00:00.123Z',
        d: '2024-02-29',
        n: '12345678901234567890.123',
        j: { a: [1, 2] },
        b: 'AQI=',
        big: 9007199254740993n,
        i: 2,
        t: true,
      },
    ]);
    expect(result.columns.map((c) => c.type)).toEqual([
      'timestamptz',
      'date',
      'numeric',
      'json',
      'bytea',
      'int8',
      'int4',
      'bool',
    ]);
  });

  it('names the line of a rejected CSV record, counting the newlines of quoted fields before it', async () => {
    const table = `wl_${process.pid}_lines`;
    await warehouse.execute(`CREATE TABLE ${table} (id bigint, name varchar(32) NOT NULL)`);
    try {
      const ref = { layer: 'staging' as const, key: `wl-${process.pid}/lines.csv` };
      // Record 3 is on line 4 of the object.
      await backend.objectStore.put(ref, '1,a\n2,"two\nlines"\n3,\n4,d\n');
      const error = await warehouse
        .transaction((tx) => tx.copyFrom(table, ['id', 'name'], ref))
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(error).toBeInstanceOf(WarehouseError);
      expect((error as WarehouseError).message).toMatch(/failed at line 4: null value in column "name"/);
      expect((error as WarehouseError).message).toContain('staging/wl-');
    } finally {
      await warehouse.execute(`DROP TABLE ${table}`);
    }
  });

  it('is one statement per call, as the Redshift Data API', async () => {
    const error = await warehouse.execute('SELECT 1; SELECT 2').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((error as WarehouseError).sqlState).toBe('42601');
  });
});

// ---------------------------------------------------------------------------------------------
// Lifecycle: fresh homes, each stopped in its test and again by afterAll.

describe('local warehouse server lifecycle', () => {
  it('starts from a fresh home, is idempotent, stops, and keeps its data across restarts on a new port when the old one is taken', async () => {
    const home = await newHome('life');
    const paths = PostgresServer.paths(home);
    expect(await PostgresServer.status(home)).toMatchObject({
      running: false,
      initialized: false,
      port: undefined,
    });
    expect(await PostgresServer.stop(home)).toEqual({ stopped: false });

    const first = await PostgresServer.start(home);
    expect(first.started).toBe(true);
    expect(first.connectionString).toMatch(/^postgresql:\/\/sluice:[^@]+@127\.0\.0\.1:\d+\/sluice$/);
    const status = await PostgresServer.status(home);
    expect(status).toMatchObject({ running: true, initialized: true, port: first.port, pid: first.pid });
    const state = JSON.parse(await readFile(paths.stateFile, 'utf8')) as WarehouseServerState;
    expect(state).toMatchObject({
      version: 1,
      port: first.port,
      pid: first.pid,
      startedBy: { owner: 'user' },
    });

    const again = await PostgresServer.start(home);
    expect(again).toMatchObject({ started: false, port: first.port, pid: first.pid });

    const w = await LocalWarehouse.open({
      connectionString: first.connectionString,
      objectStore: createLocalBackend(home).objectStore,
    });
    await w.execute('CREATE TABLE survivor (id bigint NOT NULL)');
    await w.execute('INSERT INTO survivor VALUES (7)');
    await w.close();

    expect(await PostgresServer.stop(home)).toEqual({ stopped: true });
    await expectGone(home, first.port, first.pid);
    expect(await PostgresServer.status(home)).toMatchObject({
      running: false,
      initialized: true,
      port: first.port,
    });

    // The recorded port is taken meanwhile: the next start picks another and records it.
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(first.port, '127.0.0.1', resolve));
    try {
      const second = await PostgresServer.start(home);
      expect(second.started).toBe(true);
      expect(second.port).not.toBe(first.port);
      expect((JSON.parse(await readFile(paths.stateFile, 'utf8')) as WarehouseServerState).port).toBe(
        second.port,
      );
      const w2 = await LocalWarehouse.open({
        connectionString: second.connectionString,
        objectStore: createLocalBackend(home).objectStore,
      });
      expect((await w2.query('SELECT id FROM survivor')).rows).toEqual([{ id: 7 }]);
      await w2.close();
      await PostgresServer.stop(home);
      await expectGone(home, second.port, second.pid);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('recovers from a stale server.json and from a crashed (SIGKILLed) server', async () => {
    const home = await newHome('crash');
    const paths = PostgresServer.paths(home);
    const first = await PostgresServer.start(home);
    const w = await LocalWarehouse.open({
      connectionString: first.connectionString,
      objectStore: createLocalBackend(home).objectStore,
    });
    await w.execute('CREATE TABLE kept (id bigint)');
    await w.execute('INSERT INTO kept VALUES (1)');
    await w.close();

    // Crash: the postmaster dies without cleaning up (postmaster.pid and the socket lock stay).
    process.kill(first.pid, 'SIGKILL');
    for (let i = 0; i < 100 && serverProcesses(paths.dataDir, first.pid).length > 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const crashed = await PostgresServer.status(home);
    expect(crashed.running).toBe(false);
    expect(crashed.stale).toMatch(new RegExp(`pid ${first.pid}`));

    // Stale state too: server.json names a pid that no longer exists.
    const state = JSON.parse(await readFile(paths.stateFile, 'utf8')) as WarehouseServerState;
    const dead = spawn(process.execPath, ['-e', '']);
    await new Promise((resolve) => dead.once('exit', resolve));
    await writeFile(paths.stateFile, JSON.stringify({ ...state, pid: dead.pid }));
    expect((await PostgresServer.status(home)).stale).toMatch(new RegExp(`pid ${dead.pid}`));

    const recovered = await PostgresServer.start(home);
    expect(recovered.started).toBe(true);
    const w2 = await LocalWarehouse.open({
      connectionString: recovered.connectionString,
      objectStore: createLocalBackend(home).objectStore,
    });
    expect((await w2.query('SELECT id FROM kept')).rows).toEqual([{ id: 1 }]);
    await w2.close();
    await PostgresServer.stop(home);
    await expectGone(home, recovered.port, recovered.pid);
  });

  it("backend.openWarehouse() starts a stopped server and backend.close() stops it; a user's server is left running", async () => {
    const home = await newHome('backend');
    const backend = createLocalBackend(home, { warehouseUrl: '' });
    const warehouse = await backend.openWarehouse();
    expect(warehouse.engine).toBe('postgres');
    await warehouse.execute('CREATE TABLE t (id bigint)');
    const running = await PostgresServer.status(home);
    expect(running).toMatchObject({ running: true, startedBy: { owner: 'backend', pid: process.pid } });
    // A second warehouse of the same backend, and another backend of this process, share the server:
    // it stops when the last of them closes.
    await backend.openWarehouse();
    const sibling = createLocalBackend(home, { warehouseUrl: '' });
    const siblingWarehouse = await sibling.openWarehouse();
    await backend.close();
    expect((await siblingWarehouse.query('SELECT count(*) AS n FROM t')).rows).toEqual([{ n: 0 }]);
    await sibling.close();
    await expectGone(home, running.port!, running.pid!);

    const server = await PostgresServer.start(home);
    const other = createLocalBackend(home, { warehouseUrl: '' });
    const w = await other.openWarehouse();
    expect((await w.query('SELECT count(*) AS n FROM t')).rows).toEqual([{ n: 0 }]);
    await other.close();
    expect(await PostgresServer.status(home)).toMatchObject({ running: true, pid: server.pid });

    // A backend's server that another live sluice process uses is handed to it, not stopped.
    const third = createLocalBackend(home, { warehouseUrl: '' });
    await PostgresServer.stop(home);
    await third.openWarehouse();
    const heir = spawn('sleep', ['30']);
    const client = new pg.Client({
      connectionString: (await PostgresServer.start(home, { owner: 'backend' })).connectionString,
      application_name: `sluice/${heir.pid}`,
    });
    await client.connect();
    try {
      await third.close();
      const handed = await PostgresServer.status(home);
      expect(handed).toMatchObject({ running: true, startedBy: { owner: 'backend', pid: heir.pid } });
    } finally {
      await client.end();
      heir.kill();
    }
    // The heir died: the next backend adopts the server and stops it at its close.
    await new Promise((r) => setTimeout(r, 100));
    const fourth = createLocalBackend(home, { warehouseUrl: '' });
    await fourth.openWarehouse();
    expect((await PostgresServer.status(home)).startedBy).toMatchObject({
      owner: 'backend',
      pid: process.pid,
    });
    const before = await PostgresServer.status(home);
    await fourth.close();
    await expectGone(home, before.port!, before.pid!);
  });

  it('connects to SLUICE_WAREHOUSE_URL instead of starting the home server', async () => {
    const home = await newHome('url');
    const backend = createLocalBackend(home, { warehouseUrl: shared.connectionString });
    const w = await backend.openWarehouse();
    expect((await w.query('SELECT current_database() AS db')).rows).toEqual([{ db: 'sluice' }]);
    await backend.close();
    expect((await PostgresServer.status(home)).initialized).toBe(false);
    expect((await PostgresServer.status(sharedHome)).running).toBe(true);

    const unreachable = createLocalBackend(home, {
      warehouseUrl: 'postgresql://sluice:x@127.0.0.1:1/sluice',
    });
    const error = await unreachable.openWarehouse().then(
      () => undefined,
      (e: unknown) => e,
    );
    await unreachable.close();
    expect(error).toBeInstanceOf(WarehouseError);
    expect((error as WarehouseError).sqlState).toBe('08001');
    expect((error as WarehouseError).retryable).toBe(true);
    expect((error as WarehouseError).message).not.toContain(':x@');
  });
});

// Runs last in the file: the shared server stops and leaves nothing behind.
describe('local warehouse server (shared) shutdown', () => {
  it('stops: nothing listens on its port and no process of its data dir remains', async () => {
    expect(await PostgresServer.stop(sharedHome)).toEqual({ stopped: true });
    await expectGone(sharedHome, shared.port, shared.pid);
  });
});
