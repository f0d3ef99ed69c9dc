import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalKvStore } from '../backends/local/local-kv-table.ts';
import { type Database, openSqlite } from '../backends/local/sqlite.ts';
import type { Clock } from './clock.ts';
import {
  CONFIG_KEY_SCHEMA,
  CONFIG_TABLE,
  type ConfigChange,
  ConfigStore,
  type LiveConfig,
  type WatchConfigOptions,
} from './config.ts';
import { UsageError } from './errors.ts';
import type { JsonValue, KvStore, KvTable } from './ports/kv-table.ts';

/**
 * A clock whose time moves only by sleeping: `sleep(ms)` advances `now` by `ms` and resolves on
 * the next turn of the event loop (no real waiting); it rejects when the signal aborts.
 */
function fakeClock(start = Date.parse('2024-05-01T00:00:00.000Z')): Clock {
  let now = start;
  return {
    now: () => new Date(now),
    sleep: (ms, signal) =>
      new Promise<void>((resolve, reject) => {
        if (signal?.aborted) {
          reject(signal.reason);
          return;
        }
        setImmediate(() => {
          if (signal?.aborted) {
            reject(signal.reason);
          } else {
            now += ms;
            resolve();
          }
        });
      }),
  };
}

/** A clock whose sleeps end only when the test calls `release()` (or their signal aborts). */
function gatedClock(): Clock & { waiting(): number; release(): void } {
  const pending: (() => void)[] = [];
  return {
    now: () => new Date(Date.parse('2024-05-01T00:00:00.000Z')),
    sleep: (_ms, signal) =>
      new Promise<void>((resolve, reject) => {
        if (signal?.aborted) {
          reject(signal.reason);
          return;
        }
        const wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          pending.splice(pending.indexOf(wake), 1);
          reject(signal?.reason);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        pending.push(wake);
      }),
    waiting: () => pending.length,
    release: () => {
      for (const wake of pending.splice(0)) wake();
    },
  };
}

/** Waits (a few ms at a time, 5 s at most) until `condition` holds. */
async function eventually(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** A {@link KvStore} whose config table lets a test act between the steps of `watch`. */
function instrumented(
  kv: KvStore,
  hooks: { afterLatest?: () => Promise<void>; afterQuery?: () => Promise<void>; failRead?: () => boolean },
): KvStore {
  return {
    capabilities: kv.capabilities,
    async table(name, keySchema, options) {
      const real = await kv.table(name, keySchema, options);
      const table: KvTable = {
        name: real.name,
        keySchema: real.keySchema,
        get: (key) => real.get(key),
        put: (item, o) => real.put(item, o),
        delete: (key, o) => real.delete(key, o),
        scan: (o) => real.scan(o),
        async query(hash, o) {
          const page = await real.query(hash, o);
          await hooks.afterQuery?.();
          return page;
        },
        async readChanges(position, o) {
          if (hooks.failRead?.()) throw new Error('stream unavailable');
          const read = await real.readChanges(position, o);
          if (position.type === 'LATEST') await hooks.afterLatest?.();
          return read;
        },
      };
      return table;
    },
  };
}

describe('ConfigStore', () => {
  let dir: string;
  let path: string;
  let db: Database;
  let kv: LocalKvStore;
  let clock: Clock;
  let store: ConfigStore;
  /** A second connection to the same file, as another process would have. */
  let otherDb: Database;
  let other: ConfigStore;
  const watches: { controller: AbortController; live: LiveConfig }[] = [];

  /** Starts a watch that the test's cleanup stops. */
  async function watch(
    on: ConfigStore,
    pipeline: string,
    options: Omit<WatchConfigOptions, 'signal'> = {},
  ): Promise<{ controller: AbortController; live: LiveConfig }> {
    const controller = new AbortController();
    const live = await on.watch(pipeline, { ...options, signal: controller.signal });
    const handle = { controller, live };
    watches.push(handle);
    return handle;
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-config-'));
    path = join(dir, 'sluice.db');
    db = openSqlite(path);
    kv = new LocalKvStore(db);
    clock = fakeClock();
    store = await ConfigStore.open(kv, clock);
    otherDb = openSqlite(path);
    other = await ConfigStore.open(
      new LocalKvStore(otherDb),
      fakeClock(Date.parse('2024-06-01T00:00:00.000Z')),
    );
  });
  afterEach(async () => {
    for (const { controller, live } of watches.splice(0)) {
      controller.abort();
      await live.stopped;
    }
    db.close();
    otherDb.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('sets, gets, unsets and lists values, stamping updated_at with the clock', async () => {
    await store.set('gharchive', 'parallelism', 4);
    await store.set('gharchive', 'languages', ['ts', 'go']);
    await store.set('hashtags', 'tags', { include: ['#a'], max: 3 });
    await store.set('hashtags', 'nothing', null);
    expect(await store.get('gharchive', 'parallelism')).toBe(4);
    expect(await store.get('hashtags', 'tags')).toEqual({ include: ['#a'], max: 3 });
    expect(await store.get('hashtags', 'nothing')).toBeNull();
    expect(await store.get('hashtags', 'missing')).toBeUndefined();
    expect(await store.get('nobody', 'parallelism')).toBeUndefined();

    const at = '2024-05-01T00:00:00.000Z';
    expect(await store.list('gharchive')).toEqual([
      { pipeline: 'gharchive', key: 'languages', value: ['ts', 'go'], updatedAt: at },
      { pipeline: 'gharchive', key: 'parallelism', value: 4, updatedAt: at },
    ]);
    expect((await store.list()).map((e) => `${e.pipeline}/${e.key}`)).toEqual([
      'gharchive/languages',
      'gharchive/parallelism',
      'hashtags/nothing',
      'hashtags/tags',
    ]);
    // The stored item, as another reader of the table sees it.
    const table = await kv.table(CONFIG_TABLE, CONFIG_KEY_SCHEMA);
    expect(await table.get({ pipeline: 'gharchive', key: 'parallelism' })).toEqual({
      pipeline: 'gharchive',
      key: 'parallelism',
      value: 4,
      updated_at: at,
    });

    await other.set('gharchive', 'parallelism', 8); // another connection, another clock
    expect(await store.get('gharchive', 'parallelism')).toBe(8);
    expect((await store.list('gharchive'))[1]?.updatedAt).toBe('2024-06-01T00:00:00.000Z');
    await store.unset('gharchive', 'parallelism');
    await store.unset('gharchive', 'parallelism'); // not set: fine
    expect(await store.get('gharchive', 'parallelism')).toBeUndefined();
    expect(await store.list('gharchive')).toHaveLength(1);
  });

  it('opens the config table with a change stream', async () => {
    const table = await kv.table(CONFIG_TABLE, CONFIG_KEY_SCHEMA);
    const start = (await table.readChanges({ type: 'LATEST' })).next;
    await store.set('p', 'k', 'v');
    expect((await table.readChanges(start)).records.map((r) => [r.eventName, r.keys])).toEqual([
      ['INSERT', { pipeline: 'p', key: 'k' }],
    ]);
  });

  it('rejects empty names and values that are not JSON', async () => {
    await expect(store.set('', 'k', 1)).rejects.toThrow(UsageError);
    await expect(store.set('p', '', 1)).rejects.toThrow(/key/);
    await expect(store.get('', 'k')).rejects.toThrow(/pipeline/);
    await expect(store.list('')).rejects.toThrow(/pipeline/);
    const notJson = [
      Number.NaN,
      Number.POSITIVE_INFINITY,
      undefined,
      new Date(0),
      { nested: [1, () => 1] },
      { big: 1n },
    ] as unknown as JsonValue[];
    for (const value of notJson) await expect(store.set('p', 'k', value)).rejects.toThrow(/not JSON/);
    expect(await store.list()).toEqual([]);
  });

  it('watch loads current values and follows changes written through another connection', async () => {
    await store.set('p', 'batch', 100);
    await store.set('p', 'mode', 'fast');
    await store.set('elsewhere', 'batch', 1);
    const changes: ConfigChange[] = [];
    const { controller, live } = await watch(store, 'p', { pollMs: 20, onChange: (c) => changes.push(c) });
    expect(live.snapshot()).toEqual({ batch: 100, mode: 'fast' });
    expect(changes).toEqual([]); // the initial load is not a change

    await other.set('p', 'batch', 200);
    await other.set('elsewhere', 'batch', 2); // another pipeline: ignored
    await other.unset('p', 'mode');
    await other.set('p', 'added', '7');
    await eventually(() => changes.length >= 3, 'three changes');
    expect(changes).toEqual([
      { key: 'batch', oldValue: 100, newValue: 200 },
      { key: 'mode', oldValue: 'fast', newValue: undefined },
      { key: 'added', oldValue: undefined, newValue: '7' },
    ]);
    expect(live.get('batch')).toBe(200);
    expect(live.get('mode')).toBeUndefined();
    expect(live.getNumber('added', 0)).toBe(7);
    expect(live.snapshot()).toEqual({ batch: 200, added: '7' });

    // Setting the same value again is no change; a marker shows the watcher read past it.
    await other.set('p', 'batch', 200);
    await other.set('p', 'marker', true);
    await eventually(() => changes.length >= 4, 'the marker');
    expect(changes.slice(3)).toEqual([{ key: 'marker', oldValue: undefined, newValue: true }]);

    // After the abort the view keeps its values and stops following.
    controller.abort();
    await live.stopped;
    await other.set('p', 'batch', 300);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(live.get('batch')).toBe(200);
    expect(changes).toHaveLength(4);
  });

  it('watch loses no change made between taking the stream position and loading', async () => {
    let writes = 0;
    const racing = await ConfigStore.open(
      instrumented(kv, {
        // Visible to the load, and replayed by the stream: harmless, reported once (never).
        afterLatest: async () => {
          if (writes++ === 0) await other.set('p', 'before-load', 1);
        },
        // Missed by the load (already read), delivered by the stream.
        afterQuery: async () => {
          if (writes++ === 1) await other.set('p', 'during-load', 2);
        },
      }),
      clock,
    );
    const changes: ConfigChange[] = [];
    const { live } = await watch(racing, 'p', { onChange: (c) => changes.push(c) });
    expect(live.get('before-load')).toBe(1);
    await eventually(() => live.get('during-load') === 2, 'the change made during the load');
    expect(live.snapshot()).toEqual({ 'before-load': 1, 'during-load': 2 });
    expect(changes).toEqual([{ key: 'during-load', oldValue: undefined, newValue: 2 }]);
  });

  it('coalesces the changes of one poll per key, reporting net differences only', async () => {
    await store.set('p', 'n', 1);
    const gate = gatedClock();
    const gated = await ConfigStore.open(kv, gate);
    const changes: ConfigChange[] = [];
    const { live } = await watch(gated, 'p', { onChange: (c) => changes.push(c) });
    await eventually(() => gate.waiting() === 1, 'the idle poll');
    await other.set('p', 'n', 2);
    await other.set('p', 'n', 3);
    await other.set('p', 'flash', 'x');
    await other.unset('p', 'flash');
    gate.release(); // the next poll reads the four changes in one batch
    await eventually(() => live.get('n') === 3, 'the batch');
    await eventually(() => gate.waiting() === 1, 'idle again');
    expect(changes).toEqual([{ key: 'n', oldValue: 1, newValue: 3 }]);
    expect(live.snapshot()).toEqual({ n: 3 });
  });

  it('after a stream read failure, reports it, reloads every value and follows again', async () => {
    let failing = false;
    const flaky = await ConfigStore.open(instrumented(kv, { failRead: () => failing }), clock);
    await store.set('p', 'keep', 'k');
    const changes: ConfigChange[] = [];
    const errors: unknown[] = [];
    const { live } = await watch(flaky, 'p', {
      pollMs: 10,
      onChange: (c) => changes.push(c),
      onError: (e) => errors.push(e),
    });
    failing = true;
    await eventually(() => errors.length >= 1, 'the read failure');
    await other.set('p', 'x', 1);
    await other.unset('p', 'keep');
    failing = false;
    await eventually(() => changes.length >= 2, 'the reload');
    expect((errors[0] as Error).message).toBe('stream unavailable');
    expect(changes).toEqual(
      expect.arrayContaining([
        { key: 'keep', oldValue: 'k', newValue: undefined },
        { key: 'x', oldValue: undefined, newValue: 1 },
      ]),
    );
    expect(live.snapshot()).toEqual({ x: 1 });
    // And it follows the stream again.
    await other.set('p', 'y', 2);
    await eventually(() => live.get('y') === 2, 'a change after the reload');
  });

  it('an onChange that throws is reported and does not stop the view', async () => {
    const errors: unknown[] = [];
    const { live } = await watch(store, 'p', {
      onChange: () => {
        throw new Error('listener bug');
      },
      onError: (e) => errors.push(e),
    });
    await other.set('p', 'a', 1);
    await eventually(() => errors.length >= 1, 'the reported listener error');
    await other.set('p', 'b', 2);
    await eventually(() => live.get('b') === 2, 'the next change');
    expect(live.get('a')).toBe(1);
    expect((errors[0] as Error).message).toBe('listener bug');
  });

  it('converts values for getString and getNumber, falling back otherwise', async () => {
    const values: Record<string, JsonValue> = {
      s: 'abc',
      n: 5,
      ns: ' 7.5 ',
      b: true,
      o: { a: 1 },
      nul: null,
    };
    for (const [key, value] of Object.entries(values)) await store.set('p', key, value);
    const { live } = await watch(store, 'p');
    expect(['s', 'n', 'ns', 'b', 'o', 'nul', 'missing'].map((k) => live.getString(k, 'fallback'))).toEqual([
      'abc',
      '5',
      ' 7.5 ',
      'true',
      'fallback',
      'fallback',
      'fallback',
    ]);
    expect(['s', 'n', 'ns', 'b', 'o', 'nul', 'missing'].map((k) => live.getNumber(k, -1))).toEqual([
      -1, 5, 7.5, -1, -1, -1, -1,
    ]);
    expect(live.get('nul')).toBeNull();
    expect(live.snapshot()).toEqual(values);
  });
});
