import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../test/helpers/manual-clock.ts';
import { LocalKvStore } from '../backends/local/local-kv-table.ts';
import { type Database, openSqlite } from '../backends/local/sqlite.ts';
import { LeaseHeldError } from './errors.ts';
import { Lease, type LeaseOwner } from './lease.ts';

const elsewhere = (id: string): LeaseOwner => ({ id, host: 'another-host', pid: 4242 });

describe('Lease', () => {
  let dir: string;
  let db: Database;
  let kv: LocalKvStore;
  let clock: ManualClock;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-lease-'));
    db = openSqlite(path.join(dir, 'sluice.db'));
    clock = new ManualClock(new Date('2026-11-21T10:00:00Z'));
    kv = new LocalKvStore(db, { clock });
  });
  afterEach(async () => {
    db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is exclusive while its holder is alive and unexpired, and names the holder', async () => {
    const a = await Lease.acquire(kv, 'pipeline:x', elsewhere('run-a'), {
      clock,
      ttlMs: 60_000,
      isAlive: () => undefined,
    });
    await expect(
      Lease.acquire(kv, 'pipeline:x', elsewhere('run-b'), { clock, ttlMs: 60_000, isAlive: () => undefined }),
    ).rejects.toThrow(
      /"pipeline:x" is busy: run run-a \(pid 4242 on another-host\) holds its lease until 2026-11-21T10:01:00.000Z/,
    );
    await a.release();
    const b = await Lease.acquire(kv, 'pipeline:x', elsewhere('run-b'), {
      clock,
      ttlMs: 60_000,
      isAlive: () => undefined,
    });
    await b.release();
  });

  it('expires when its holder stops renewing (a crash on a host we cannot probe)', async () => {
    await Lease.acquire(kv, 'pipeline:x', elsewhere('crashed'), {
      clock,
      ttlMs: 60_000,
      isAlive: () => undefined,
    });
    await clock.advance(59_000);
    await expect(
      Lease.acquire(kv, 'pipeline:x', elsewhere('next'), { clock, isAlive: () => undefined }),
    ).rejects.toThrow(LeaseHeldError);
    await clock.advance(2_000);
    const next = await Lease.acquire(kv, 'pipeline:x', elsewhere('next'), {
      clock,
      isAlive: () => undefined,
    });
    expect(next.owner.id).toBe('next');
    await next.release();
  });

  it('is taken over at once when the probe says the holder process is gone', async () => {
    await Lease.acquire(kv, 'pipeline:x', elsewhere('dead'), {
      clock,
      ttlMs: 3_600_000,
      isAlive: () => undefined,
    });
    const next = await Lease.acquire(kv, 'pipeline:x', elsewhere('next'), {
      clock,
      isAlive: (owner) => owner.id !== 'dead',
    });
    expect(next.owner.id).toBe('next');
    await next.release();
  });

  it('renewal keeps it past its first ttl; a release by a former holder does not free the new holder', async () => {
    const a = await Lease.acquire(kv, 'pipeline:x', elsewhere('a'), {
      clock,
      ttlMs: 60_000,
      isAlive: () => undefined,
    });
    await clock.advance(50_000);
    await a.renew();
    await clock.advance(50_000);
    await expect(
      Lease.acquire(kv, 'pipeline:x', elsewhere('b'), { clock, isAlive: () => undefined }),
    ).rejects.toThrow(LeaseHeldError);
    await clock.advance(20_000);
    const b = await Lease.acquire(kv, 'pipeline:x', elsewhere('b'), {
      clock,
      ttlMs: 60_000,
      isAlive: () => undefined,
    });
    await expect(a.renew()).rejects.toThrow(/lost/);
    await a.release(); // a lost it: must not delete b's lease
    await expect(
      Lease.acquire(kv, 'pipeline:x', elsewhere('c'), { clock, isAlive: () => undefined }),
    ).rejects.toThrow(/run b/);
    await b.release();
  });

  it('waits for a holder with waitMs, then gets it', async () => {
    const a = await Lease.acquire(kv, 'pipeline:x', elsewhere('a'), { clock, isAlive: () => undefined });
    const waiting = Lease.acquire(kv, 'pipeline:x', elsewhere('b'), {
      clock,
      waitMs: 10_000,
      isAlive: () => undefined,
    });
    await clock.advance(1_000);
    await a.release();
    await clock.advance(1_000);
    const b = await waiting;
    expect(b.owner.id).toBe('b');
    await b.release();
  });
});
