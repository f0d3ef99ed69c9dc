import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalKvStore } from '../backends/local/local-kv-table.ts';
import { LocalObjectStore } from '../backends/local/local-object-store.ts';
import { LocalObjectWatcher } from '../backends/local/local-object-watcher.ts';
import { type Database, openSqlite } from '../backends/local/sqlite.ts';
import { systemClock } from '../core/clock.ts';
import { NotFoundError } from '../core/errors.ts';
import type { S3Event, S3EventRecord } from '../core/events.ts';
import type { Logger } from '../core/logger.ts';
import { eventObjectKey, type TriggerDefinition } from '../core/trigger.ts';
import {
  DELIVERIES_KEY_SCHEMA,
  DELIVERIES_TABLE,
  type Delivery,
  type DeliveryRecord,
  deliveryObjectId,
  TriggerDispatcher,
} from './trigger-dispatcher.ts';

const STABILITY_MS = 400;

const gharchive: TriggerDefinition = {
  name: 'gharchive-hour-landed',
  pipeline: 'gharchive',
  description: 'an hour file landed',
  layer: 'landing',
  prefix: 'gharchive/',
  suffix: '.json.gz',
  workflow: 'gharchive-load-hour',
};

async function waitFor(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A logger that keeps error entries. */
function capturingLogger(): Logger & { errors: Record<string, unknown>[] } {
  const errors: Record<string, unknown>[] = [];
  const logger: Logger & { errors: Record<string, unknown>[] } = {
    errors,
    debug: () => {},
    info: () => {},
    warn: () => {},
    error: (fields) => errors.push(fields),
    child: () => logger,
  };
  return logger;
}

interface Started {
  trigger: string;
  event: S3Event;
}

describe('TriggerDispatcher', () => {
  let home: string;
  let lake: string;
  let store: LocalObjectStore;
  let databases: Database[];
  let closers: (() => Promise<void>)[];
  let started: Started[];

  beforeEach(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'sluice-dispatch-'));
    lake = path.join(home, 'lake');
    store = new LocalObjectStore(lake);
    databases = [];
    closers = [];
    started = [];
  });

  afterEach(async () => {
    for (const close of closers.reverse()) await close();
    for (const db of databases) if (db.open) db.close();
    await rm(home, { recursive: true, force: true });
  });

  /** A new connection to the home's SQLite file, as a restarted process opens it. */
  function openKv(): { kv: LocalKvStore; db: Database } {
    const db = openSqlite(path.join(home, 'sluice.db'));
    databases.push(db);
    return { kv: new LocalKvStore(db), db };
  }

  function dispatcher(
    options: {
      kv?: LocalKvStore;
      triggers?: TriggerDefinition[];
      start?: (trigger: TriggerDefinition, event: S3Event) => Promise<string | undefined>;
      logger?: Logger;
      onDelivery?: (delivery: Delivery) => void;
    } = {},
  ): TriggerDispatcher {
    return new TriggerDispatcher({
      kv: options.kv ?? openKv().kv,
      triggers: options.triggers ?? [gharchive],
      clock: systemClock,
      start:
        options.start ??
        (async (trigger, event) => {
          started.push({ trigger: trigger.name, event });
          return `exec-${started.length}`;
        }),
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.onDelivery ? { onDelivery: options.onDelivery } : {}),
    });
  }

  async function startWatcher(): Promise<LocalObjectWatcher> {
    const watcher = new LocalObjectWatcher({
      lakeRoot: lake,
      layers: ['landing'],
      stabilityMs: STABILITY_MS,
    });
    await watcher.start();
    closers.push(() => watcher.close());
    return watcher;
  }

  async function delivery(kv: LocalKvStore, key: string, etag: string): Promise<DeliveryRecord | undefined> {
    const table = await kv.table(DELIVERIES_TABLE, DELIVERIES_KEY_SCHEMA);
    return (await table.get({ trigger: gharchive.name, object: deliveryObjectId(key, etag) })) as
      | DeliveryRecord
      | undefined;
  }

  /** The store's event for a put (without dispatching it). */
  async function put(
    key: string,
    body: string,
    layer: 'landing' | 'staging' = 'landing',
  ): Promise<S3EventRecord> {
    const events: S3EventRecord[] = [];
    const off = store.onObjectCreated((record) => events.push(record));
    try {
      await store.put({ layer, key }, body);
    } finally {
      off();
    }
    return events[0]!;
  }

  const startedKeys = () => started.map((s) => eventObjectKey(s.event.Records[0]!));

  it('starts only triggers whose layer, prefix and suffix match, with the S3 event as input', async () => {
    const staging: TriggerDefinition = {
      ...gharchive,
      name: 'gharchive-staged',
      layer: 'staging',
      suffix: '',
    };
    const d = dispatcher({ triggers: [gharchive, staging] });
    const records = [
      await put('gharchive/2024-01-01-0.json.gz', 'a'),
      await put('gharchive/2024-01-01-0.json', 'wrong suffix'),
      await put('other/2024-01-01-0.json.gz', 'wrong prefix'),
      await put('gharchive/2024-01-01-0.json.gz', 'staged', 'staging'),
    ];
    const results = await Promise.all(records.map((r) => d.dispatch(r)));
    expect(results.map((r) => r.map((x) => [x.trigger, x.outcome]))).toEqual([
      [['gharchive-hour-landed', 'started']],
      [],
      [],
      [['gharchive-staged', 'started']],
    ]);
    expect(started.map((s) => s.trigger)).toEqual(['gharchive-hour-landed', 'gharchive-staged']);
    expect(started[0]!.event).toEqual({ Records: [records[0]] });
    expect(results[0]![0]!.executionId).toBe('exec-1');
  });

  it('starts one execution for an object reported by both the object store and the watcher', async () => {
    const { kv } = openKv();
    const deliveries: Delivery[] = [];
    const d = dispatcher({ kv, onDelivery: (x) => deliveries.push(x) });
    const watcher = await startWatcher();
    const fromWatcher: S3EventRecord[] = [];
    watcher.onObjectCreated((record) => fromWatcher.push(record));
    d.attach(store);
    d.attach(watcher);

    const info = await store.put({ layer: 'landing', key: 'gharchive/2024-01-01-0.json.gz' }, 'hour');
    await waitFor(() => fromWatcher.length > 0, 'the watcher event');
    await d.idle();

    expect(startedKeys()).toEqual(['gharchive/2024-01-01-0.json.gz']);
    expect(deliveries.map((x) => x.outcome).sort()).toEqual(['duplicate', 'started']);
    expect(deliveries.every((x) => Number.isFinite(x.latencyMs))).toBe(true);
    expect(await delivery(kv, 'gharchive/2024-01-01-0.json.gz', info.etag)).toMatchObject({
      status: 'started',
      execution_id: 'exec-1',
      key: 'gharchive/2024-01-01-0.json.gz',
      etag: info.etag,
      attempts: 1,
    });
  });

  it('starts a file copied by hand into landing/<pipeline>/ once it is complete', async () => {
    const d = dispatcher();
    d.attach(await startWatcher());
    const source = path.join(home, 'download.json.gz');
    await writeFile(source, Buffer.alloc(20_000, 1));
    await mkdir(path.join(lake, 'landing', 'gharchive'), { recursive: true });
    await copyFile(source, path.join(lake, 'landing', 'gharchive', '2024-01-01-3.json.gz'));
    await writeFile(path.join(lake, 'landing', 'gharchive', '2024-01-01-4.json.gz.part'), 'in progress');
    await waitFor(() => started.length > 0, 'the start');
    await sleep(STABILITY_MS * 3);
    await d.idle();
    expect(startedKeys()).toEqual(['gharchive/2024-01-01-3.json.gz']);
    const head = await store.head({ layer: 'landing', key: 'gharchive/2024-01-01-3.json.gz' });
    expect(started[0]!.event.Records[0]!.s3.object).toMatchObject({ size: 20_000, eTag: head?.etag });
  });

  it('does not start an object again after a restart on the same database file', async () => {
    const first = openKv();
    const record = await put('gharchive/2024-01-01-0.json.gz', 'hour');
    const d1 = dispatcher({ kv: first.kv });
    await d1.dispatch(record);
    await d1.complete(
      gharchive,
      'gharchive/2024-01-01-0.json.gz',
      record.s3.object.eTag,
      'succeeded',
      'exec-1',
    );
    first.db.close();

    const second = openKv();
    const d2 = dispatcher({ kv: second.kv });
    expect((await d2.dispatch(record)).map((x) => x.outcome)).toEqual(['duplicate']);
    const watcher = new LocalObjectWatcher({ lakeRoot: lake, layers: ['landing'] });
    const summary = await d2.catchUp(watcher.scan('landing', ''), { baseline: false });
    expect(summary).toMatchObject({ objects: 1, started: 0, duplicate: 1, restarted: 0 });
    expect(started).toHaveLength(1);
    expect(await delivery(second.kv, 'gharchive/2024-01-01-0.json.gz', record.s3.object.eTag)).toMatchObject({
      status: 'succeeded',
      execution_id: 'exec-1',
    });
  });

  it('starts an object once when two dispatchers on the same database race for it', async () => {
    const record = await put('gharchive/2024-01-01-0.json.gz', 'hour');
    const [a, b] = [dispatcher({ kv: openKv().kv }), dispatcher({ kv: openKv().kv })];
    const outcomes = (await Promise.all([a.dispatch(record), b.dispatch(record), a.dispatch(record)])).flat();
    expect(outcomes.map((x) => x.outcome).sort()).toEqual(['duplicate', 'duplicate', 'started']);
    expect(started).toHaveLength(1);
  });

  it('catch-up: a baseline records existing objects without starting; a later one starts only new objects', async () => {
    await put('gharchive/2024-01-01-0.json.gz', 'zero');
    await put('gharchive/2024-01-01-1.json.gz', 'one');
    await put('gharchive/readme.txt', 'not matching');
    const watcher = new LocalObjectWatcher({ lakeRoot: lake, layers: ['landing'] });

    const first = openKv();
    const d1 = dispatcher({ kv: first.kv });
    const baseline = await d1.catchUp(watcher.scan('landing', ''), { baseline: true });
    expect(baseline).toMatchObject({
      objects: 3,
      baseline: 2,
      started: 0,
      baselinedTriggers: [gharchive.name],
    });
    expect(started).toEqual([]);
    const zero = await store.head({ layer: 'landing', key: 'gharchive/2024-01-01-0.json.gz' });
    expect(await delivery(first.kv, 'gharchive/2024-01-01-0.json.gz', zero!.etag)).toMatchObject({
      status: 'baseline',
      attempts: 0,
      execution_id: null,
    });
    first.db.close();

    // Created while sluice was down.
    await put('gharchive/2024-01-01-2.json.gz', 'two');
    const d2 = dispatcher({ kv: openKv().kv });
    const later = await d2.catchUp(watcher.scan('landing', ''), { baseline: false });
    expect(later).toMatchObject({ objects: 4, baseline: 0, started: 1, duplicate: 2, baselinedTriggers: [] });
    expect(startedKeys()).toEqual(['gharchive/2024-01-01-2.json.gz']);
  });

  it('catch-up baselines a trigger declared after the first start (S3 does not notify existing objects)', async () => {
    const kv = openKv().kv;
    const watcher = new LocalObjectWatcher({ lakeRoot: lake, layers: ['landing'] });
    await put('manual/a.csv', 'a');
    await dispatcher({ kv }).catchUp(watcher.scan('landing', ''), { baseline: true });
    const manual: TriggerDefinition = { ...gharchive, name: 'manual-csv', prefix: 'manual/', suffix: '.csv' };
    await put('manual/b.csv', 'b');
    const d = dispatcher({ kv, triggers: [gharchive, manual] });
    const summary = await d.catchUp(watcher.scan('landing', ''), { baseline: false });
    expect(summary).toMatchObject({ baseline: 2, started: 0, baselinedTriggers: ['manual-csv'] });
    expect(started).toEqual([]);
    const c = await put('manual/c.csv', 'c');
    expect((await d.dispatch(c)).map((x) => x.outcome)).toEqual(['started']);
  });

  it('catch-up starts a delivery left started by a crash once more, then gives up', async () => {
    const record = await put('gharchive/2024-01-01-0.json.gz', 'hour');
    const etag = record.s3.object.eTag;
    const key = 'gharchive/2024-01-01-0.json.gz';
    const watcher = new LocalObjectWatcher({ lakeRoot: lake, layers: ['landing'] });
    const first = openKv();
    await dispatcher({ kv: first.kv }).dispatch(record); // the process "crashes" before completing
    first.db.close();

    const second = openKv();
    const d2 = dispatcher({ kv: second.kv });
    expect((await d2.redeliverable()).map((x) => [x.key, x.status, x.attempts])).toEqual([
      [key, 'started', 1],
    ]);
    const summary = await d2.catchUp(watcher.scan('landing', ''), { baseline: false });
    expect(summary).toMatchObject({ started: 0, duplicate: 1, restarted: 1 });
    expect(started).toHaveLength(2);
    expect(started[1]!.event).toEqual({ Records: [record] });
    expect(await delivery(second.kv, key, etag)).toMatchObject({
      status: 'started',
      attempts: 2,
      execution_id: 'exec-2',
    });
    // This instance's own deliveries are not crashed ones.
    expect(await d2.redeliverable()).toEqual([]);
    second.db.close();

    const third = openKv();
    const d3 = dispatcher({ kv: third.kv });
    expect(await d3.redeliverable()).toEqual([]);
    const again = await d3.catchUp(watcher.scan('landing', ''), { baseline: false });
    expect(again).toMatchObject({ restarted: 0, abandoned: 1 });
    expect(started).toHaveLength(2);
    expect(await delivery(third.kv, key, etag)).toMatchObject({ status: 'failed', attempts: 2 });
  });

  it('starts an object again when its content changes (new eTag)', async () => {
    const kv = openKv().kv;
    const d = dispatcher({ kv });
    d.attach(store);
    d.attach(await startWatcher());
    await store.put({ layer: 'landing', key: 'gharchive/2024-01-01-0.json.gz' }, 'first');
    await waitFor(() => started.length === 1, 'the first start');
    // Rewritten by hand: the watcher alone reports it.
    await writeFile(path.join(lake, 'landing', 'gharchive', '2024-01-01-0.json.gz'), 'second version');
    await waitFor(() => started.length === 2, 'the second start');
    await sleep(STABILITY_MS * 3);
    await d.idle();
    expect(started).toHaveLength(2);
    const [first, second] = started.map((s) => s.event.Records[0]!.s3.object.eTag);
    expect(first).not.toBe(second);
    const head = await store.head({ layer: 'landing', key: 'gharchive/2024-01-01-0.json.gz' });
    expect(second).toBe(head?.etag);
  });

  it('records a failing start as failed with its error, logs it, and can redeliver the stored event', async () => {
    const kv = openKv().kv;
    const logger = capturingLogger();
    let fail = true;
    const d = dispatcher({
      kv,
      logger,
      start: async (trigger, event) => {
        if (fail) throw new Error('state machine not found');
        started.push({ trigger: trigger.name, event });
        return 'exec-retry';
      },
    });
    const record = await put('gharchive/2024-01-01-0.json.gz', 'hour');
    const key = 'gharchive/2024-01-01-0.json.gz';
    const [result] = await d.dispatch(record);
    expect(result).toMatchObject({ outcome: 'failed', error: 'state machine not found' });
    expect(logger.errors).toEqual([expect.objectContaining({ key, error: 'state machine not found' })]);
    expect(await delivery(kv, key, record.s3.object.eTag)).toMatchObject({
      status: 'failed',
      error: 'state machine not found',
      attempts: 1,
      event: record,
    });
    expect((await d.dispatch(record)).map((x) => x.outcome)).toEqual(['duplicate']);

    fail = false;
    expect(await d.redeliver(gharchive.name, key, record.s3.object.eTag)).toMatchObject({
      outcome: 'restarted',
      executionId: 'exec-retry',
    });
    expect(started[0]!.event).toEqual({ Records: [record] });
    const stored = await delivery(kv, key, record.s3.object.eTag);
    expect(stored).toMatchObject({ status: 'started', attempts: 2, execution_id: 'exec-retry' });
    expect(stored).not.toHaveProperty('error');
  });

  it('complete() records the outcome, and refuses an unknown delivery', async () => {
    const kv = openKv().kv;
    const d = dispatcher({ kv });
    const record = await put('gharchive/2024-01-01-0.json.gz', 'hour');
    await d.dispatch(record);
    const key = 'gharchive/2024-01-01-0.json.gz';
    await d.complete(gharchive.name, key, record.s3.object.eTag, 'failed', undefined, 'bad gzip');
    expect(await delivery(kv, key, record.s3.object.eTag)).toMatchObject({
      status: 'failed',
      execution_id: 'exec-1',
      error: 'bad gzip',
      completed_at: expect.any(String),
    });
    await expect(d.complete(gharchive.name, key, 'nope', 'succeeded', 'x')).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });

  it('refuses duplicate trigger names', () => {
    expect(() => dispatcher({ triggers: [gharchive, gharchive] })).toThrow(/duplicate trigger name/);
  });
});
