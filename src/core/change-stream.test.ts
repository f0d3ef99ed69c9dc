import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalKvStore } from '../backends/local/local-kv-table.ts';
import { type Database, openSqlite } from '../backends/local/sqlite.ts';
import { DEFAULT_TAIL_POLL_MS, tailChanges } from './change-stream.ts';
import type { Clock } from './clock.ts';
import type { ChangeRecord, KvStore, KvTable, StreamPosition } from './ports/kv-table.ts';

/**
 * A clock whose time moves only by sleeping: `sleep(ms)` records `ms`, advances `now` by it and
 * resolves on the next turn of the event loop (a polling loop never blocks the test, and never
 * waits for real); it rejects with the signal's reason when the signal aborts first.
 */
function fakeClock(start = Date.parse('2024-05-01T00:00:00.000Z')): Clock & { sleeps: number[] } {
  let now = start;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => new Date(now),
    sleep: (ms, signal) =>
      new Promise<void>((resolve, reject) => {
        if (signal?.aborted) {
          reject(signal.reason);
          return;
        }
        sleeps.push(ms);
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

/** Waits (a few ms at a time, 5 s at most) until `condition` holds. */
async function eventually(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

const describeRecord = (record: ChangeRecord) => `${record.eventName} ${String(record.keys.id)}`;

describe('tailChanges', () => {
  let dir: string;
  let db: Database;
  let kv: KvStore;
  let table: KvTable;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-tail-'));
    db = openSqlite(join(dir, 'sluice.db'));
    kv = new LocalKvStore(db);
    table = await kv.table('events', { hashKey: { name: 'id', type: 'S' } }, { stream: true });
  });
  afterEach(async () => {
    db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('delivers every change in order, and resumes after abort from the position it returned', async () => {
    for (let i = 0; i < 5; i++) await table.put({ id: `k${i}` });
    const clock = fakeClock();
    const controller = new AbortController();
    const seen: string[] = [];
    const batches: number[] = [];
    const position = await tailChanges(table, {
      from: { type: 'TRIM_HORIZON' },
      clock,
      batchSize: 2,
      signal: controller.signal,
      onRecords: (records) => {
        batches.push(records.length);
        seen.push(...records.map(describeRecord));
        if (seen.length >= 5) controller.abort();
      },
    });
    expect(seen).toEqual(['INSERT k0', 'INSERT k1', 'INSERT k2', 'INSERT k3', 'INSERT k4']);
    expect(batches).toEqual([2, 2, 1]);
    expect(clock.sleeps).toEqual([]); // catching up never sleeps
    const last = (await table.readChanges({ type: 'TRIM_HORIZON' })).records.at(-1)!;
    expect(position).toEqual({ type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: last.sequenceNumber });

    await table.put({ id: 'k0', v: 2 });
    await table.delete({ id: 'k1' });
    const again = new AbortController();
    const later: string[] = [];
    await tailChanges(table, {
      from: position,
      clock,
      signal: again.signal,
      onRecords: (records) => {
        later.push(...records.map(describeRecord));
        if (later.length >= 2) again.abort();
      },
    });
    expect(later).toEqual(['MODIFY k0', 'REMOVE k1']);
  });

  it('sleeps pollMs on the clock while idle and picks up changes written meanwhile (LATEST skips older ones)', async () => {
    await table.put({ id: 'early' });
    const clock = fakeClock();
    const controller = new AbortController();
    const seen: string[] = [];
    const done = tailChanges(table, {
      from: { type: 'LATEST' },
      clock,
      pollMs: 50,
      signal: controller.signal,
      onRecords: (records) => {
        seen.push(...records.map(describeRecord));
        controller.abort();
      },
    });
    await eventually(() => clock.sleeps.length >= 3, 'idle polls');
    await table.put({ id: 'late' });
    const position = await done;
    expect(seen).toEqual(['INSERT late']);
    expect(new Set(clock.sleeps)).toEqual(new Set([50]));
    expect(position).toEqual((await table.readChanges({ type: 'LATEST' })).next);
  });

  it('delivers the same batch again after onRecords throws or rejects (at least once)', async () => {
    for (const id of ['a', 'b', 'c']) await table.put({ id });
    const clock = fakeClock();
    const controller = new AbortController();
    const deliveries: string[][] = [];
    const position = await tailChanges(table, {
      from: { type: 'TRIM_HORIZON' },
      clock,
      pollMs: 30,
      signal: controller.signal,
      onRecords: async (records) => {
        deliveries.push(records.map(describeRecord));
        records.length = 0; // a handler mangling its batch does not change the retry
        if (deliveries.length === 1) throw new Error('handler down');
        if (deliveries.length === 2) await Promise.reject(new Error('still down'));
        controller.abort();
      },
    });
    const batch = ['INSERT a', 'INSERT b', 'INSERT c'];
    expect(deliveries).toEqual([batch, batch, batch]);
    expect(clock.sleeps).toEqual([30, 30]); // one pause per failure
    const last = (await table.readChanges({ type: 'TRIM_HORIZON' })).records.at(-1)!;
    expect(position).toEqual({ type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: last.sequenceNumber });
  });

  it('an abort during a failed batch keeps the position before it', async () => {
    await table.put({ id: 'a' });
    const controller = new AbortController();
    const position = await tailChanges(table, {
      from: { type: 'TRIM_HORIZON' },
      clock: fakeClock(),
      signal: controller.signal,
      onRecords: () => {
        controller.abort();
        throw new Error('handler down');
      },
    });
    expect(position).toEqual({ type: 'TRIM_HORIZON' });
  });

  it('ends when the signal aborts during the idle sleep, with the position reached', async () => {
    await table.put({ id: 'a' });
    const controller = new AbortController();
    let sleeping = false;
    /** A clock whose sleep only ends by abort. */
    const clock: Clock = {
      now: () => new Date(0),
      sleep: (_ms, signal) =>
        new Promise<void>((_resolve, reject) => {
          sleeping = true;
          signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
        }),
    };
    const done = tailChanges(table, {
      from: { type: 'TRIM_HORIZON' },
      clock,
      signal: controller.signal,
      onRecords: () => {},
    });
    await eventually(() => sleeping, 'the idle sleep');
    controller.abort();
    const [record] = (await table.readChanges({ type: 'TRIM_HORIZON' })).records;
    expect(await done).toEqual({ type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: record!.sequenceNumber });
  });

  it('returns `from` when aborted before starting; rejects what readChanges throws', async () => {
    const controller = new AbortController();
    controller.abort();
    const from: StreamPosition = { type: 'TRIM_HORIZON' };
    await table.put({ id: 'a' });
    expect(
      await tailChanges(table, {
        from,
        clock: fakeClock(),
        signal: controller.signal,
        onRecords: () => {
          throw new Error('not called');
        },
      }),
    ).toBe(from);
    const plain = await kv.table('plain', { hashKey: { name: 'id', type: 'S' } });
    await expect(tailChanges(plain, { from, clock: fakeClock(), onRecords: () => {} })).rejects.toThrow(
      /no change stream/,
    );
    await expect(
      tailChanges(table, { from, clock: fakeClock(), pollMs: -1, onRecords: () => {} }),
    ).rejects.toThrow(/pollMs/);
    expect(DEFAULT_TAIL_POLL_MS).toBe(200);
  });
});
