import { spawn } from 'node:child_process';
import { access, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLocalBackend } from '../../src/backends/local/local-backend.ts';
import { LocalCatalog } from '../../src/backends/local/local-catalog.ts';
import {
  DEFAULT_PAGE_SIZE,
  KV_MIGRATIONS,
  LocalKvStore,
  STREAM_PRUNE_INTERVAL_MS,
  STREAM_RETENTION_MS,
} from '../../src/backends/local/local-kv-table.ts';
import { LocalObjectStore, TMP_DIR } from '../../src/backends/local/local-object-store.ts';
import {
  LocalStreamStore,
  MAX_GET_RECORDS_BYTES,
  RECORDS_PRUNE_INTERVAL_MS,
  STREAM_MIGRATIONS,
} from '../../src/backends/local/local-stream.ts';
import { type Database, migrate, openSqlite, readVersion } from '../../src/backends/local/sqlite.ts';
import type { Clock } from '../../src/core/clock.ts';
import { ConditionFailedError, SluiceError } from '../../src/core/errors.ts';
import type { S3EventRecord } from '../../src/core/events.ts';
import type { KvTable, StreamPosition } from '../../src/core/ports/kv-table.ts';
import type { PutRecordResult, StreamRecord } from '../../src/core/ports/stream.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { catalogConformance } from './catalog.case.ts';
import { kvTableConformance } from './kv-table.case.ts';
import { objectStoreConformance } from './object-store.case.ts';
import { queryEngineConformance } from './query-engine.case.ts';
import { streamConformance } from './stream.case.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

async function tempDir(label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `sluice-${label}-`));
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Opens a fresh database file in a new temp directory; `close` closes it and removes the directory. */
async function freshDatabase(
  label: string,
): Promise<{ dir: string; path: string; db: Database; close(): Promise<void> }> {
  const dir = await tempDir(label);
  const path = join(dir, 'sluice.db');
  const db = openSqlite(path);
  return {
    dir,
    path,
    db,
    close: async () => {
      db.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

objectStoreConformance('local', async () => {
  const dir = await tempDir('lake');
  return {
    store: new LocalObjectStore(join(dir, 'lake')),
    close: () => rm(dir, { recursive: true, force: true }),
  };
});

queryEngineConformance('local', async () => {
  const dir = await tempDir('query');
  const backend = createLocalBackend(dir);
  return {
    objectStore: backend.objectStore,
    catalog: backend.catalog,
    openEngine: () => backend.openQueryEngine(),
    close: async () => {
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

kvTableConformance('local', async () => {
  const { db, close } = await freshDatabase('kv');
  return { kv: new LocalKvStore(db), close };
});

catalogConformance('local', async () => {
  const { db, close } = await freshDatabase('catalog');
  return { catalog: new LocalCatalog(db), close };
});

streamConformance('local', async () => {
  const dir = await tempDir('stream');
  const clock = new ManualClock(new Date('2026-03-01T12:00:00.000Z'));
  const backend = createLocalBackend(dir, { clock });
  return {
    stream: backend.stream,
    clock,
    close: async () => {
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('openSqlite and migrate', () => {
  let fresh: Awaited<ReturnType<typeof freshDatabase>>;
  beforeEach(async () => {
    fresh = await freshDatabase('sqlite');
  });
  afterEach(async () => {
    await fresh.close();
  });

  it('opens in WAL mode with the documented pragmas', () => {
    expect(fresh.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(fresh.db.pragma('busy_timeout', { simple: true })).toBe(10_000);
    expect(fresh.db.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
    expect(fresh.db.pragma('foreign_keys', { simple: true })).toBe(1);
  });

  it('creates its parent directory', async () => {
    const db = openSqlite(join(fresh.dir, 'nested', 'deeper', 'x.db'));
    db.close();
    expect(await exists(join(fresh.dir, 'nested', 'deeper', 'x.db'))).toBe(true);
  });

  it('applies each module’s steps once and records versions per module', () => {
    const applied: string[] = [];
    const steps = [
      'CREATE TABLE m_a (x INTEGER)',
      (db: Database) => {
        applied.push('step 2');
        db.exec('CREATE TABLE m_b (y INTEGER)');
      },
    ];
    migrate(fresh.db, 'mod', steps);
    migrate(fresh.db, 'mod', steps);
    expect(applied).toEqual(['step 2']);
    expect(readVersion(fresh.db, 'mod')).toBe(2);
    expect(readVersion(fresh.db, 'other')).toBeUndefined();

    // A later release appends a step; only that one runs.
    migrate(fresh.db, 'mod', [...steps, 'CREATE TABLE m_c (z INTEGER)']);
    expect(readVersion(fresh.db, 'mod')).toBe(3);
    expect(applied).toEqual(['step 2']);

    // An older sluice refuses a newer schema.
    expect(() => migrate(fresh.db, 'mod', steps)).toThrow(/newer/);
  });

  it('rolls a failing step back completely', () => {
    expect(() => migrate(fresh.db, 'broken', ['CREATE TABLE ok_table (x INTEGER)', 'NOT SQL'])).toThrow();
    expect(readVersion(fresh.db, 'broken')).toBeUndefined();
    expect(fresh.db.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'ok_table'").pluck().get()).toBe(
      0,
    );
  });

  it('lets the key-value store and the catalog share one file', async () => {
    const kv = new LocalKvStore(fresh.db);
    const catalog = new LocalCatalog(fresh.db);
    new LocalKvStore(fresh.db); // idempotent
    new LocalCatalog(fresh.db);
    expect(readVersion(fresh.db, 'kv')).toBe(KV_MIGRATIONS.length);
    expect(readVersion(fresh.db, 'catalog')).toBe(1);
    await (await kv.table('t', { hashKey: { name: 'id', type: 'S' } })).put({ id: 'x' });
    await catalog.upsertTable({
      database: 'd',
      name: 't',
      location: { layer: 'staging', prefix: 'd/t/' },
      format: 'csv',
      columns: [{ name: 'a', type: 'string' }],
      partitionKeys: [],
    });

    // Everything is in the file: a second connection sees it.
    const second = openSqlite(fresh.path);
    try {
      const table = await new LocalKvStore(second).table('t', { hashKey: { name: 'id', type: 'S' } });
      expect(await table.get({ id: 'x' })).toEqual({ id: 'x' });
      expect((await new LocalCatalog(second).getTable('d', 't'))?.format).toBe('csv');
    } finally {
      second.close();
    }
  });
});

describe('LocalKvStore on a shared database file', () => {
  let fresh: Awaited<ReturnType<typeof freshDatabase>>;
  beforeEach(async () => {
    fresh = await freshDatabase('kv-shared');
  });
  afterEach(async () => {
    await fresh.close();
  });

  it('pages by 1,000 items when no limit is given', async () => {
    const table = await new LocalKvStore(fresh.db).table('paged', {
      hashKey: { name: 'h', type: 'S' },
      rangeKey: { name: 'r', type: 'N' },
    });
    for (let r = 0; r < 1001; r++) await table.put({ h: 'x', r });
    expect(DEFAULT_PAGE_SIZE).toBe(1000);
    const first = await table.query('x');
    expect(first.items).toHaveLength(1000);
    expect(first.cursor).toBeDefined();
    const second = await table.query('x', { cursor: first.cursor! });
    expect(second).toEqual({ items: [{ h: 'x', r: 1000 }] });
    const scanned = await table.scan();
    expect(scanned.items).toHaveLength(1000);
    expect((await table.scan({ cursor: scanned.cursor! })).items).toEqual([{ h: 'x', r: 1000 }]);
  });

  it('refuses a malformed cursor', async () => {
    const table = await new LocalKvStore(fresh.db).table('c', { hashKey: { name: 'id', type: 'S' } });
    await expect(table.query('x', { cursor: 'not a cursor' })).rejects.toThrow(/cursor/);
    await expect(table.scan({ cursor: Buffer.from('["q",1]').toString('base64url') })).rejects.toThrow(
      /cursor/,
    );
  });

  it('two stores on two connections: exactly one conditional create wins', async () => {
    const other = openSqlite(fresh.path);
    try {
      const a = await new LocalKvStore(fresh.db).table('leases', { hashKey: { name: 'name', type: 'S' } });
      const b = await new LocalKvStore(other).table('leases', { hashKey: { name: 'name', type: 'S' } });
      const results = await Promise.allSettled([
        a.put({ name: 'pipeline', owner: 'a' }, { condition: { op: 'not_exists' } }),
        b.put({ name: 'pipeline', owner: 'b' }, { condition: { op: 'not_exists' } }),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const loser = results.find((r) => r.status === 'rejected');
      expect(loser?.reason).toBeInstanceOf(ConditionFailedError);
      const winner = results[0]!.status === 'fulfilled' ? 'a' : 'b';
      expect(await a.get({ name: 'pipeline' })).toEqual({ name: 'pipeline', owner: winner });
      expect(await b.get({ name: 'pipeline' })).toEqual({ name: 'pipeline', owner: winner });
    } finally {
      other.close();
    }
  });

  it('separate processes racing a conditional create on a fresh file: exactly one wins', async () => {
    const racers = 4;
    const path = join(fresh.dir, 'race.db'); // not yet created: the schema migration races too
    const sqliteUrl = pathToFileURL(join(repoRoot, 'src/backends/local/sqlite.ts')).href;
    const kvUrl = pathToFileURL(join(repoRoot, 'src/backends/local/local-kv-table.ts')).href;
    const script = `
      import { createInterface } from 'node:readline';
      import { openSqlite } from ${JSON.stringify(sqliteUrl)};
      import { LocalKvStore } from ${JSON.stringify(kvUrl)};
      const [path, id] = process.argv.slice(1);
      const db = openSqlite(path);
      const table = await new LocalKvStore(db).table('leases', { hashKey: { name: 'name', type: 'S' } });
      console.log('ready');
      await new Promise((resolve) => createInterface({ input: process.stdin }).once('line', resolve));
      try {
        await table.put({ name: 'pipeline', owner: id }, { condition: { op: 'not_exists' } });
        console.log('won');
      } catch (error) {
        console.log(error.name === 'ConditionFailedError' ? 'lost' : 'error ' + error.message);
      }
      db.close();
      process.exit(0);
    `;
    const children = Array.from({ length: racers }, (_, i) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script, path, `racer-${i}`],
        { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] },
      );
      let output = '';
      let errors = '';
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      child.stderr.on('data', (chunk: Buffer) => {
        errors += chunk.toString();
      });
      const ready = new Promise<void>((resolve, reject) => {
        const timer = setInterval(() => {
          if (output.includes('ready')) {
            clearInterval(timer);
            resolve();
          }
        }, 10);
        child.once('exit', (code) => {
          clearInterval(timer);
          reject(new Error(`racer ${i} exited (${code}) before ready: ${errors}`));
        });
      });
      const done = new Promise<string>((resolve) =>
        child.once('exit', () => resolve(output.replace('ready', '').trim() || `no output: ${errors}`)),
      );
      return { child, ready, done };
    });
    await Promise.all(children.map((c) => c.ready));
    for (const { child } of children) child.stdin.write('go\n');
    const outcomes = await Promise.all(children.map((c) => c.done));
    expect(outcomes.filter((o) => o === 'won')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'lost')).toHaveLength(racers - 1);

    const db = openSqlite(path);
    try {
      const item = await (
        await new LocalKvStore(db).table('leases', { hashKey: { name: 'name', type: 'S' } })
      ).get({
        name: 'pipeline',
      });
      expect(item?.owner).toBe(`racer-${outcomes.indexOf('won')}`);
    } finally {
      db.close();
    }
  });
});

describe('LocalKvStore change streams', () => {
  let fresh: Awaited<ReturnType<typeof freshDatabase>>;
  beforeEach(async () => {
    fresh = await freshDatabase('kv-stream');
  });
  afterEach(async () => {
    await fresh.close();
  });

  const idSchema = { hashKey: { name: 'id', type: 'S' as const } };
  /** `eventName id` of every record from `from`, and the position after them. */
  async function events(
    table: KvTable,
    from: StreamPosition,
  ): Promise<{ seen: string[]; next: StreamPosition }> {
    const { records, next } = await table.readChanges(from);
    return { seen: records.map((r) => `${r.eventName} ${String(r.keys.id)}`), next };
  }

  it('another connection sees each change right after the write, and enabling the stream reaches an open writer', async () => {
    const other = openSqlite(fresh.path);
    try {
      // The writer opened the table before anyone enabled its stream.
      const writer = await new LocalKvStore(fresh.db).table('shared', idSchema);
      await writer.put({ id: 'before' });
      await expect(writer.readChanges({ type: 'TRIM_HORIZON' })).rejects.toThrow(/no change stream/);
      const reader = await new LocalKvStore(other).table('shared', idSchema, { stream: true });
      let position = await reader.readChanges({ type: 'LATEST' }).then((r) => r.next);
      expect(position).toEqual({ type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: '0' });
      for (const [write, expected] of [
        [() => writer.put({ id: 'a', v: 1 }), 'INSERT a'],
        [() => writer.put({ id: 'a', v: 2 }), 'MODIFY a'],
        [() => writer.delete({ id: 'before' }), 'REMOVE before'],
      ] as const) {
        await write();
        const read = await events(reader, position);
        expect(read.seen).toEqual([expected]);
        position = read.next;
      }
      // The writer's table has a stream now, too.
      expect((await events(writer, { type: 'TRIM_HORIZON' })).seen).toEqual([
        'INSERT a',
        'MODIFY a',
        'REMOVE before',
      ]);
    } finally {
      other.close();
    }
  });

  it('a reader sees changes a separate process writes', async () => {
    const table = await new LocalKvStore(fresh.db).table('feed', idSchema, { stream: true });
    const start = (await table.readChanges({ type: 'LATEST' })).next;
    const sqliteUrl = pathToFileURL(join(repoRoot, 'src/backends/local/sqlite.ts')).href;
    const kvUrl = pathToFileURL(join(repoRoot, 'src/backends/local/local-kv-table.ts')).href;
    const script = `
      import { openSqlite } from ${JSON.stringify(sqliteUrl)};
      import { LocalKvStore } from ${JSON.stringify(kvUrl)};
      const db = openSqlite(process.argv[1]);
      const table = await new LocalKvStore(db).table('feed', { hashKey: { name: 'id', type: 'S' } });
      await table.put({ id: 'x', v: 1 });
      await table.put({ id: 'x', v: 2 });
      await table.delete({ id: 'x' });
      db.close();
    `;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script, fresh.path],
      {
        cwd: repoRoot,
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let errors = '';
    child.stderr.on('data', (chunk: Buffer) => {
      errors += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code, errors).toBe(0);
    const { records } = await table.readChanges(start);
    expect(records.map((r) => [r.eventName, r.oldImage, r.newImage])).toEqual([
      ['INSERT', undefined, { id: 'x', v: 1 }],
      ['MODIFY', { id: 'x', v: 1 }, { id: 'x', v: 2 }],
      ['REMOVE', { id: 'x', v: 2 }, undefined],
    ]);
  });

  it('deletes records older than 24 h during writes, at most once a minute; reading past deleted records throws', async () => {
    expect(STREAM_RETENTION_MS).toBe(24 * 3600_000);
    expect(STREAM_PRUNE_INTERVAL_MS).toBe(60_000);
    const t0 = Date.parse('2024-05-01T00:00:00.000Z');
    let now = t0;
    const clock: Clock = { now: () => new Date(now), sleep: async () => {} };
    const store = new LocalKvStore(fresh.db, { clock });
    const table = await store.table('retained', idSchema, { stream: true });
    const untouched = await store.table('untouched', idSchema, { stream: true });
    const ids = async () => (await events(table, { type: 'TRIM_HORIZON' })).seen;

    await table.put({ id: 'r1' }); // prunes (first write), keeps nothing old
    const afterR1 = (await table.readChanges({ type: 'TRIM_HORIZON' })).next;
    expect((await table.readChanges({ type: 'TRIM_HORIZON' })).records[0]?.approximateCreationDateTime).toBe(
      '2024-05-01T00:00:00.000Z',
    );
    now = t0 + STREAM_RETENTION_MS - 10_000;
    await table.put({ id: 'r2' }); // prunes: r1 is not 24 h old yet
    now = t0 + STREAM_RETENTION_MS + 10_000;
    await table.put({ id: 'r3' }); // r1 expired, but the last prune was 20 s ago
    expect(await ids()).toEqual(['INSERT r1', 'INSERT r2', 'INSERT r3']);
    now += STREAM_PRUNE_INTERVAL_MS;
    await table.put({ id: 'r4' }); // prunes: r1 goes
    expect(await ids()).toEqual(['INSERT r2', 'INSERT r3', 'INSERT r4']);

    // A reader still before r1 lost it: DynamoDB's TrimmedDataAccessException.
    const lost = await table
      .readChanges({ type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: '0' })
      .catch((e: unknown) => e);
    expect(lost).toBeInstanceOf(SluiceError);
    expect((lost as SluiceError).code).toBe('stream_trimmed');
    expect((lost as Error).message).toMatch(/retained|retention/);
    // A reader past r1 lost nothing; another table lost nothing.
    expect((await events(table, afterR1)).seen).toEqual(['INSERT r2', 'INSERT r3', 'INSERT r4']);
    expect(
      (await untouched.readChanges({ type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: '0' })).records,
    ).toEqual([]);
  });

  it('numbers changes across tables in commit order and never reuses a number', async () => {
    const store = new LocalKvStore(fresh.db);
    const a = await store.table('a', idSchema, { stream: true });
    const b = await store.table('b', idSchema, { stream: true });
    await a.put({ id: '1' });
    await b.put({ id: '1' });
    await a.put({ id: '2' });
    const sequence = async (t: KvTable) =>
      (await t.readChanges({ type: 'TRIM_HORIZON' })).records.map((r) => r.sequenceNumber);
    expect(await sequence(a)).toEqual(['1', '3']);
    expect(await sequence(b)).toEqual(['2']);
    // LATEST resolves to the newest number of the file, even after its records are gone.
    fresh.db.exec('DELETE FROM kv_changes');
    expect((await a.readChanges({ type: 'LATEST' })).next).toEqual({
      type: 'AFTER_SEQUENCE_NUMBER',
      sequenceNumber: '3',
    });
    await b.put({ id: '2' });
    expect(await sequence(b)).toEqual(['4']);
  });

  it('writes to tables without a stream record nothing', async () => {
    const store = new LocalKvStore(fresh.db);
    const plain = await store.table('plain', idSchema);
    await plain.put({ id: 'x' });
    await plain.put({ id: 'x', v: 2 }, { condition: { op: 'exists' } });
    await plain.delete({ id: 'x' });
    expect(fresh.db.prepare('SELECT count(*) FROM kv_changes').pluck().get()).toBe(0);
  });

  it('rejects malformed positions and limits', async () => {
    const table = await new LocalKvStore(fresh.db).table('t', idSchema, { stream: true });
    for (const sequenceNumber of ['', '01', '-1', '1.5', 'abc', '99999999999999999999']) {
      await expect(table.readChanges({ type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber })).rejects.toThrow(
        /sequence number/,
      );
    }
    await expect(table.readChanges({ type: 'SHARD' } as unknown as StreamPosition)).rejects.toThrow(
      /position/,
    );
    await expect(table.readChanges({ type: 'TRIM_HORIZON' }, { limit: 0 })).rejects.toThrow(/limit/);
    // Past the end: nothing yet, same position back.
    const future = { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: '1000' } as const;
    expect(await table.readChanges(future)).toEqual({ records: [], next: future });
  });

  it('upgrades a version-1 database: items kept, stream off until a table is opened with it', async () => {
    migrate(fresh.db, 'kv', KV_MIGRATIONS.slice(0, 1));
    fresh.db
      .prepare('INSERT INTO kv_tables (name, key_schema, created_at) VALUES (?, ?, ?)')
      .run('old', JSON.stringify(idSchema), '2024-01-01T00:00:00.000Z');
    fresh.db
      .prepare('INSERT INTO kv_items (table_name, hash_key, range_key, item) VALUES (?, ?, ?, ?)')
      .run('old', 'a', '', '{"id":"a","v":1}');
    const store = new LocalKvStore(fresh.db);
    expect(readVersion(fresh.db, 'kv')).toBe(2);
    const old = await store.table('old', idSchema);
    expect(await old.get({ id: 'a' })).toEqual({ id: 'a', v: 1 });
    await expect(old.readChanges({ type: 'LATEST' })).rejects.toThrow(/no change stream/);
    await store.table('old', idSchema, { stream: true }); // UpdateTable: enable the stream
    await old.put({ id: 'a', v: 2 });
    const { records } = await old.readChanges({ type: 'TRIM_HORIZON' });
    expect(records.map((r) => [r.eventName, r.oldImage, r.newImage])).toEqual([
      ['MODIFY', { id: 'a', v: 1 }, { id: 'a', v: 2 }],
    ]);
    // Still refuses a wrong key schema, and does not enable a stream on it.
    await expect(store.table('old', { hashKey: { name: 'k', type: 'S' } }, { stream: true })).rejects.toThrow(
      /key schema/,
    );
  });
});

describe('LocalCatalog specifics', () => {
  it('stamps times with the injected clock; a replaced partition keeps createdAt and moves updatedAt', async () => {
    const fresh = await freshDatabase('catalog-clock');
    try {
      let now = Date.parse('2024-05-01T10:00:00.000Z');
      const clock: Clock = { now: () => new Date(now), sleep: async () => {} };
      const catalog = new LocalCatalog(fresh.db, { clock });
      const definition = {
        database: 'd',
        name: 't',
        location: { layer: 'analytical' as const, prefix: 'd/t/' },
        format: 'parquet' as const,
        columns: [{ name: 'a', type: 'string' as const }],
        partitionKeys: [{ name: 'p', type: 'string' as const }],
      };
      const created = await catalog.upsertTable(definition);
      expect(created.table.createdAt.toISOString()).toBe('2024-05-01T10:00:00.000Z');
      await catalog.putPartitions('d', 't', [{ values: ['1'], prefix: 'd/t/p=1/', files: [] }]);
      now += 60_000;
      // No change: no write, updatedAt stays.
      expect((await catalog.upsertTable(definition)).table.updatedAt.toISOString()).toBe(
        '2024-05-01T10:00:00.000Z',
      );
      const described = await catalog.upsertTable({ ...definition, description: 'now described' });
      expect(described.table.updatedAt.toISOString()).toBe('2024-05-01T10:01:00.000Z');
      expect(described.table.createdAt.toISOString()).toBe('2024-05-01T10:00:00.000Z');
      await catalog.putPartitions('d', 't', [
        { values: ['1'], prefix: 'd/t/p=1/', files: [{ key: 'f', bytes: 3 }] },
      ]);
      const [partition] = await catalog.listPartitions('d', 't');
      expect(partition?.createdAt.toISOString()).toBe('2024-05-01T10:00:00.000Z');
      expect(partition?.updatedAt.toISOString()).toBe('2024-05-01T10:01:00.000Z');
    } finally {
      await fresh.close();
    }
  });

  it('refuses partition values with control characters', async () => {
    const fresh = await freshDatabase('catalog-ctl');
    try {
      const catalog = new LocalCatalog(fresh.db);
      await catalog.upsertTable({
        database: 'd',
        name: 't',
        location: { layer: 'analytical', prefix: 'd/t/' },
        format: 'parquet',
        columns: [{ name: 'a', type: 'string' }],
        partitionKeys: [
          { name: 'p', type: 'string' },
          { name: 'q', type: 'string' },
        ],
      });
      await expect(
        catalog.putPartitions('d', 't', [{ values: ['a\u0001b', 'c'], prefix: 'x/', files: [] }]),
      ).rejects.toThrow(/control/);
    } finally {
      await fresh.close();
    }
  });
});

describe('LocalObjectStore specifics', () => {
  let dir: string;
  let root: string;
  let store: LocalObjectStore;
  beforeEach(async () => {
    dir = await tempDir('lake-local');
    root = join(dir, 'lake');
    store = new LocalObjectStore(root);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('declares atomic rename and local files', () => {
    expect(store.capabilities).toEqual({ atomicRename: true, localFiles: true });
  });

  it('stores an object as <root>/<layer>/<key> and names it with a file:// URI', async () => {
    await store.put({ layer: 'landing', key: 'gharchive/2015-01-01-0.json.gz' }, 'bytes');
    const path = join(root, 'landing', 'gharchive', '2015-01-01-0.json.gz');
    expect((await stat(path)).size).toBe(5);
    expect(store.uri({ layer: 'landing', key: 'gharchive/2015-01-01-0.json.gz' })).toBe(
      pathToFileURL(path).href,
    );
    expect((await store.localPath({ layer: 'landing', key: 'gharchive/2015-01-01-0.json.gz' })).path).toBe(
      path,
    );
  });

  it('writes through a temporary file in _sluice_tmp and leaves nothing behind', async () => {
    const seenTemp: string[] = [];
    async function* body(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('first half, ');
      // Mid-write: the target does not exist yet, the bytes are in a .part file in _sluice_tmp.
      expect(await exists(join(root, 'staging', 'a', 'b.txt'))).toBe(false);
      seenTemp.push(...(await readdir(join(root, 'staging', TMP_DIR))));
      yield Buffer.from('second half');
    }
    await store.put({ layer: 'staging', key: 'a/b.txt' }, body());
    expect(seenTemp).toHaveLength(1);
    expect(seenTemp[0]).toMatch(/\.part$/);
    expect(await readdir(join(root, 'staging', TMP_DIR))).toEqual([]);
    expect(Buffer.from(await store.getBytes({ layer: 'staging', key: 'a/b.txt' })).toString()).toBe(
      'first half, second half',
    );
  });

  it('a failing body stream leaves the old object, no temporary file and no event', async () => {
    const ref = { layer: 'staging' as const, key: 'keep.txt' };
    await store.put(ref, 'old');
    const records: S3EventRecord[] = [];
    store.onObjectCreated((r) => records.push(r));
    const failing = new Readable({
      read() {
        this.push('partial');
        this.destroy(new Error('source broke'));
      },
    });
    await expect(store.put(ref, failing)).rejects.toThrow('source broke');
    expect(Buffer.from(await store.getBytes(ref)).toString()).toBe('old');
    expect(await readdir(join(root, 'staging', TMP_DIR))).toEqual([]);
    expect(records).toEqual([]);
  });

  it('emits local S3-shaped events with 16-hex-digit increasing sequencers', async () => {
    const records: S3EventRecord[] = [];
    store.onObjectCreated((r) => records.push(r));
    const info = await store.put({ layer: 'landing', key: 'dir/a b+c.json' }, '{}');
    const scratch = await store.scratchDir('analytical');
    await writeFile(join(scratch.path, 'f.parquet'), 'PAR1');
    await store.putFile({ layer: 'analytical', key: 't/f.parquet' }, join(scratch.path, 'f.parquet'), {
      move: true,
    });
    await scratch.release();
    for (let i = 0; i < 20; i++) await store.put({ layer: 'landing', key: 'many' }, String(i));

    expect(records[0]).toEqual({
      eventVersion: '2.1',
      eventSource: 'sluice:local',
      awsRegion: 'local',
      eventTime: records[0]!.eventTime,
      eventName: 'ObjectCreated:Put',
      s3: {
        s3SchemaVersion: '1.0',
        bucket: { name: 'landing', arn: 'arn:aws:s3:::landing' },
        object: {
          key: 'dir/a+b%2Bc.json',
          size: 2,
          eTag: info.etag,
          sequencer: records[0]!.s3.object.sequencer,
        },
      },
    });
    expect(records[1]).toMatchObject({
      eventName: 'ObjectCreated:Put',
      s3: {
        bucket: { name: 'analytical', arn: 'arn:aws:s3:::analytical' },
        object: { key: 't/f.parquet', size: 4 },
      },
    });
    const sequencers = records.map((r) => r.s3.object.sequencer);
    for (const s of sequencers) expect(s).toMatch(/^[0-9A-F]{16}$/);
    for (let i = 1; i < sequencers.length; i++) expect(sequencers[i]! > sequencers[i - 1]!).toBe(true);
    // Separate stores in one process share the sequence.
    const other = new LocalObjectStore(root);
    const later: S3EventRecord[] = [];
    other.onObjectCreated((r) => later.push(r));
    await other.put({ layer: 'landing', key: 'x' }, 'x');
    expect(later[0]!.s3.object.sequencer > sequencers.at(-1)!).toBe(true);
  });

  it('calls listeners after the object is visible; an async listener that rejects is harmless', async () => {
    const seen: (number | undefined)[] = [];
    store.onObjectCreated(() => {
      // Synchronously after commit: the file is complete already.
      seen.push(-1);
    });
    store.onObjectCreated(async () => {
      throw new Error('async listener failure');
    });
    const info = await store.put({ layer: 'staging', key: 'visible.txt' }, 'visible');
    expect(seen).toEqual([-1]);
    expect(info.size).toBe(7);
  });

  it('removes empty parent directories on delete, up to the layer directory', async () => {
    await store.put({ layer: 'staging', key: 'a/b/c/d.txt' }, 'd');
    await store.put({ layer: 'staging', key: 'a/keep.txt' }, 'k');
    await store.delete({ layer: 'staging', key: 'a/b/c/d.txt' });
    expect(await exists(join(root, 'staging', 'a', 'b'))).toBe(false);
    expect(await exists(join(root, 'staging', 'a', 'keep.txt'))).toBe(true);
    await store.delete({ layer: 'staging', key: 'a/keep.txt' });
    expect(await exists(join(root, 'staging', 'a'))).toBe(false);
    expect(await exists(join(root, 'staging'))).toBe(true);
  });

  it('keeps scratch directories in <layer>/_sluice_tmp, never lists them; cleanScratch removes those of dead processes', async () => {
    const scratch = await store.scratchDir('analytical');
    expect(scratch.path.startsWith(join(root, 'analytical', TMP_DIR))).toBe(true);
    await writeFile(join(scratch.path, 'leftover.parquet'), 'x');
    await store.put({ layer: 'analytical', key: '_visible_with_hidden' }, 'x');
    const all = [];
    for await (const info of store.list('analytical', '', { includeHidden: true })) all.push(info.key);
    expect(all).toEqual(['_visible_with_hidden']);
    const under = [];
    for await (const info of store.list('analytical', `${TMP_DIR}/`, { includeHidden: true }))
      under.push(info.key);
    expect(under).toEqual([]);
    // A crashed run's leftovers: named after a process that has exited.
    const deadPid = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['-e', '0']);
      child.on('exit', () => resolve(child.pid ?? 0));
    });
    const crashed = join(root, 'analytical', TMP_DIR, `scratch-${deadPid}-0123456789abcdef`);
    await mkdir(crashed, { recursive: true });
    await writeFile(join(crashed, 'half.parquet'), 'x');
    await writeFile(join(root, 'analytical', TMP_DIR, `put-${deadPid}-0123456789abcdef.part`), 'x');
    await store.cleanScratch('analytical');
    expect(await readdir(join(root, 'analytical', TMP_DIR))).toEqual([scratch.path.split('/').at(-1)]);
    await scratch.release();
    await store.cleanScratch('analytical'); // nothing to clean: fine
  });

  it('refuses the reserved _sluice_tmp key prefix and unknown layers', async () => {
    await expect(store.put({ layer: 'staging', key: `${TMP_DIR}/x` }, 'x')).rejects.toThrow(/reserved/);
    await expect(store.put({ layer: '../escape' as 'staging', key: 'x' }, 'x')).rejects.toThrow(/layer/);
  });

  it('ignores prefixes that would escape the layer', async () => {
    await store.put({ layer: 'staging', key: 'x' }, 'x');
    await store.put({ layer: 'landing', key: 'secret' }, 's');
    for (const prefix of ['../landing/', '../', './', 'a//']) {
      const keys = [];
      for await (const info of store.list('staging', prefix)) keys.push(info.key);
      expect(keys, prefix).toEqual([]);
    }
  });

  it('changes the etag when a file is rewritten in place', async () => {
    const ref = { layer: 'staging' as const, key: 'inplace.txt' };
    const first = await store.put(ref, 'aaaa');
    await new Promise((resolve) => setTimeout(resolve, 20));
    await writeFile(join(root, 'staging', 'inplace.txt'), 'bbbb');
    expect((await store.head(ref))?.etag).not.toBe(first.etag);
  });
});

describe('LocalStreamStore specifics', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('stream-local');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A clock the test sets to any time, also backwards. */
  function settableClock(start: string): Clock & { set(iso: string | number): void; ms(): number } {
    let now = Date.parse(start);
    return {
      now: () => new Date(now),
      sleep: async () => {},
      set: (to) => {
        now = typeof to === 'number' ? to : Date.parse(to);
      },
      ms: () => now,
    };
  }

  const text = (record: StreamRecord) => Buffer.from(record.data).toString('utf8');

  async function readAll(store: LocalStreamStore, name: string, shardId = 'shardId-000000000000') {
    let iterator = await store.getShardIterator(name, shardId, { type: 'TRIM_HORIZON' });
    const records: StreamRecord[] = [];
    for (;;) {
      const page = await store.getRecords(iterator);
      records.push(...page.records);
      iterator = page.nextShardIterator!;
      if (page.records.length === 0) return records;
    }
  }

  it('keeps streams in <home>/streams.db, apart from the key-value and catalog database', async () => {
    const backend = createLocalBackend(dir);
    let shardId: string;
    try {
      await backend.stream.createStream('events', { shardCount: 2 });
      ({ shardId } = await backend.stream.putRecord('events', { partitionKey: 'p', data: 'x' }));
    } finally {
      await backend.close();
    }
    const streams = openSqlite(join(dir, 'streams.db'));
    const main = openSqlite(join(dir, 'sluice.db'));
    try {
      expect(readVersion(streams, 'stream')).toBe(STREAM_MIGRATIONS.length);
      expect(streams.prepare('SELECT name, shard_count FROM streams').all()).toEqual([
        { name: 'events', shard_count: 2 },
      ]);
      expect(streams.prepare('SELECT count(*) FROM stream_records').pluck().get()).toBe(1);
      expect(readVersion(main, 'stream')).toBeUndefined();
      expect(
        main.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'stream_records'").pluck().get(),
      ).toBe(0);
      // Another store on the file sees the stream.
      expect((await readAll(new LocalStreamStore(streams), 'events', shardId)).map(text)).toEqual(['x']);
    } finally {
      streams.close();
      main.close();
    }
  });

  it('shows sequence numbers as 21 digits and never hands one out twice, across stores, trims and re-creations', async () => {
    const clock = settableClock('2026-03-01T00:00:00.000Z');
    const db = openSqlite(join(dir, 'streams.db'));
    const other = openSqlite(join(dir, 'streams.db'));
    try {
      const store = new LocalStreamStore(db, { clock });
      await store.createStream('s');
      const first = await store.putRecords('s', [
        { partitionKey: 'p', data: '1' },
        { partitionKey: 'p', data: '2' },
      ]);
      const seen = (first.records as readonly PutRecordResult[]).map((r) => r.sequenceNumber);
      expect(seen).toEqual(['100000000000000000001', '100000000000000000002']);

      // Every record expires and a later put deletes them: the counter goes on.
      clock.set(clock.ms() + 25 * 3600_000);
      seen.push((await store.putRecord('s', { partitionKey: 'p', data: '3' })).sequenceNumber);
      expect(db.prepare('SELECT count(*) FROM stream_records').pluck().get()).toBe(1);
      // The newest record deleted with its stream, then another store on another connection.
      await store.deleteStream('s');
      expect(db.prepare('SELECT count(*) FROM stream_records').pluck().get()).toBe(0);
      const second = new LocalStreamStore(other, { clock });
      await second.createStream('s');
      seen.push((await second.putRecord('s', { partitionKey: 'p', data: '4' })).sequenceNumber);
      seen.push((await store.putRecord('s', { partitionKey: 'p', data: '5' })).sequenceNumber);
      expect(seen).toEqual([
        '100000000000000000001',
        '100000000000000000002',
        '100000000000000000003',
        '100000000000000000004',
        '100000000000000000005',
      ]);
      // A sequence number never handed out is refused.
      await expect(
        store.getShardIterator('s', 'shardId-000000000000', {
          type: 'AFTER_SEQUENCE_NUMBER',
          sequenceNumber: '100000000000000000006',
        }),
      ).rejects.toThrow(/not issued/);
    } finally {
      db.close();
      other.close();
    }
  });

  it('deletes expired records during puts, at most once a minute; expired records are invisible at once', async () => {
    expect(RECORDS_PRUNE_INTERVAL_MS).toBe(60_000);
    const clock = settableClock('2026-03-01T00:00:00.000Z');
    const db = openSqlite(join(dir, 'streams.db'));
    try {
      const store = new LocalStreamStore(db, { clock });
      await store.createStream('s');
      const onDisk = () => db.prepare('SELECT count(*) FROM stream_records').pluck().get();
      const put = (data: string) => store.putRecord('s', { partitionKey: 'p', data });
      await put('a'); // prunes (nothing yet) at t0
      clock.set(clock.ms() + 30_000);
      await put('b');
      clock.set(clock.ms() + 24 * 3600_000 - 15_000); // a is 24 h 15 s old, b 24 h - 15 s
      await put('c'); // prunes: a goes
      expect(onDisk()).toBe(2);
      clock.set(clock.ms() + 30_000); // b expired, but the last prune was 30 s ago
      expect((await readAll(store, 's')).map(text)).toEqual(['c']);
      await put('d');
      expect(onDisk()).toBe(3);
      expect((await readAll(store, 's')).map(text)).toEqual(['c', 'd']);
      clock.set(clock.ms() + 30_000);
      await put('e'); // a minute since the last prune: b goes
      expect(onDisk()).toBe(3);
      expect((await readAll(store, 's')).map(text)).toEqual(['c', 'd', 'e']);
    } finally {
      db.close();
    }
  });

  it('returns at most 10 MiB of data per read', async () => {
    expect(MAX_GET_RECORDS_BYTES).toBe(10 * 1024 * 1024);
    const db = openSqlite(join(dir, 'streams.db'));
    try {
      const store = new LocalStreamStore(db);
      await store.createStream('big');
      const mib = Buffer.alloc(1024 * 1024, 1);
      for (let i = 0; i < 12; i++) await store.putRecord('big', { partitionKey: 'p', data: mib });
      let iterator = await store.getShardIterator('big', 'shardId-000000000000', { type: 'TRIM_HORIZON' });
      const sizes: number[] = [];
      for (let i = 0; i < 3; i++) {
        const page = await store.getRecords(iterator);
        sizes.push(page.records.length);
        iterator = page.nextShardIterator!;
      }
      expect(sizes).toEqual([10, 2, 0]);
    } finally {
      db.close();
    }
  });

  it('keeps arrival times from decreasing when the clock steps back; AT_TIMESTAMP in the future waits for it', async () => {
    const clock = settableClock('2026-03-01T10:00:00.000Z');
    const db = openSqlite(join(dir, 'streams.db'));
    try {
      const store = new LocalStreamStore(db, { clock });
      await store.createStream('s');
      await store.putRecord('s', { partitionKey: 'p', data: 'first' });
      clock.set('2026-03-01T09:00:00.000Z');
      await store.putRecord('s', { partitionKey: 'p', data: 'stepped back' });
      expect((await readAll(store, 's')).map((r) => r.approximateArrivalTimestamp.toISOString())).toEqual([
        '2026-03-01T10:00:00.000Z',
        '2026-03-01T10:00:00.000Z',
      ]);

      clock.set('2026-03-01T10:00:00.000Z');
      const future = new Date('2026-03-01T10:00:10.000Z');
      let iterator = await store.getShardIterator('s', 'shardId-000000000000', {
        type: 'AT_TIMESTAMP',
        timestamp: future,
      });
      await store.putRecord('s', { partitionKey: 'p', data: 'too early' });
      let page = await store.getRecords(iterator);
      expect(page.records).toEqual([]);
      clock.set(future.getTime());
      await store.putRecord('s', { partitionKey: 'p', data: 'on time' });
      clock.set(future.getTime() + 1);
      await store.putRecord('s', { partitionKey: 'p', data: 'later' });
      iterator = page.nextShardIterator!;
      page = await store.getRecords(iterator);
      expect(page.records.map(text)).toEqual(['on time', 'later']);
    } finally {
      db.close();
    }
  });

  it('separate processes appending to one file at once: every record once, in order per partition key', async () => {
    const path = join(dir, 'streams.db');
    const db = openSqlite(path);
    try {
      const store = new LocalStreamStore(db);
      await store.createStream('shared', { shardCount: 3 });
      const sqliteUrl = pathToFileURL(join(repoRoot, 'src/backends/local/sqlite.ts')).href;
      const streamUrl = pathToFileURL(join(repoRoot, 'src/backends/local/local-stream.ts')).href;
      const writers = 2;
      const batches = 100;
      const perBatch = 50;
      // Each writer opens the file, says ready, and appends once the test says go (both at once).
      const script = `
        import { createInterface } from 'node:readline';
        import { openSqlite } from ${JSON.stringify(sqliteUrl)};
        import { LocalStreamStore } from ${JSON.stringify(streamUrl)};
        const [path, writer] = process.argv.slice(1);
        const db = openSqlite(path);
        const store = new LocalStreamStore(db);
        console.log('ready');
        await new Promise((resolve) => createInterface({ input: process.stdin }).once('line', resolve));
        let n = 0;
        for (let b = 0; b < ${batches}; b++) {
          const records = [];
          for (let i = 0; i < ${perBatch}; i++, n++) records.push({ partitionKey: writer + '-' + (n % 7), data: writer + ':' + n });
          await store.putRecords('shared', records);
          await new Promise((resolve) => setTimeout(resolve, 1)); // let the other writer in
        }
        db.close();
        process.exit(0);
      `;
      const children = Array.from({ length: writers }, (_, w) => {
        const child = spawn(
          process.execPath,
          ['--import', 'tsx', '--input-type=module', '-e', script, path, `w${w}`],
          { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] },
        );
        let output = '';
        let errors = '';
        child.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString();
        });
        child.stderr.on('data', (chunk: Buffer) => {
          errors += chunk.toString();
        });
        const exit = new Promise<void>((resolve, reject) =>
          child.once('exit', (code) =>
            code === 0 ? resolve() : reject(new Error(`writer ${w}: ${errors}`)),
          ),
        );
        const ready = new Promise<void>((resolve, reject) => {
          const timer = setInterval(() => {
            if (output.includes('ready')) {
              clearInterval(timer);
              resolve();
            }
          }, 10);
          exit.catch((error: unknown) => {
            clearInterval(timer);
            reject(error);
          });
        });
        return { child, ready, exit };
      });
      await Promise.all(children.map((c) => c.ready));
      for (const { child } of children) child.stdin.write('go\n');
      await Promise.all(children.map((c) => c.exit));

      const all: StreamRecord[] = [];
      for (const shard of ['shardId-000000000000', 'shardId-000000000001', 'shardId-000000000002']) {
        const records = await readAll(store, 'shared', shard);
        for (let i = 1; i < records.length; i++) {
          expect(BigInt(records[i]!.sequenceNumber) > BigInt(records[i - 1]!.sequenceNumber)).toBe(true);
        }
        all.push(...records);
      }
      expect(all).toHaveLength(writers * batches * perBatch);
      expect(new Set(all.map((r) => r.sequenceNumber)).size).toBe(all.length);
      const byKey = new Map<string, number[]>();
      for (const r of all) {
        const [, n] = text(r).split(':');
        byKey.set(r.partitionKey, [...(byKey.get(r.partitionKey) ?? []), Number(n)]);
      }
      for (let w = 0; w < writers; w++) {
        for (let k = 0; k < 7; k++) {
          const expected = Array.from({ length: batches * perBatch }, (_, n) => n).filter((n) => n % 7 === k);
          expect(byKey.get(`w${w}-${k}`)).toEqual(expected);
        }
      }
    } finally {
      db.close();
    }
  });
});
