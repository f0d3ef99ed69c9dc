import { appendFile, copyFile, mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { S3EventRecord } from '../../core/events.ts';
import { eventObjectKey } from '../../core/trigger.ts';
import { LocalObjectStore } from './local-object-store.ts';
import { LocalObjectWatcher } from './local-object-watcher.ts';

const STABILITY_MS = 400;

/** Polls `predicate` until it holds; fails after `timeoutMs` (a deadline, not a timing assertion). */
async function waitFor(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

interface Seen {
  record: S3EventRecord;
  /** `performance.now()` when the listener ran. */
  at: number;
}

describe('LocalObjectWatcher', () => {
  let home: string;
  let lake: string;
  let store: LocalObjectStore;
  let watcher: LocalObjectWatcher | undefined;
  let seen: Seen[];

  beforeEach(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'sluice-watcher-'));
    lake = path.join(home, 'lake');
    store = new LocalObjectStore(lake);
    seen = [];
  });

  afterEach(async () => {
    await watcher?.close();
    watcher = undefined;
    await rm(home, { recursive: true, force: true });
  });

  async function startWatcher(stabilityMs = STABILITY_MS): Promise<LocalObjectWatcher> {
    const w = new LocalObjectWatcher({
      lakeRoot: lake,
      layers: ['landing', 'staging'],
      stabilityMs,
      pollMs: 25,
    });
    w.onObjectCreated((record) => seen.push({ record, at: performance.now() }));
    await w.start();
    watcher = w;
    return w;
  }

  const keys = () => seen.map((s) => eventObjectKey(s.record));

  it('reports a file copied by hand into landing/<pipeline>/ once, with the key, size and eTag of head()', async () => {
    await startWatcher();
    const source = path.join(home, 'download.json.gz');
    await writeFile(source, Buffer.alloc(70_000, 7));
    const key = 'gharchive/2024-01-01/2024-01-01-15.json.gz';
    await mkdir(path.join(lake, 'landing', 'gharchive', '2024-01-01'), { recursive: true });
    await copyFile(source, path.join(lake, 'landing', ...key.split('/')));

    await waitFor(() => seen.length > 0, 'the event');
    await sleep(STABILITY_MS * 3); // room for a (wrong) second event
    expect(seen).toHaveLength(1);
    const { record } = seen[0]!;
    const head = await store.head({ layer: 'landing', key });
    expect(record).toMatchObject({
      eventVersion: '2.1',
      eventSource: 'sluice:local',
      awsRegion: 'local',
      eventName: 'ObjectCreated:Put',
      s3: {
        s3SchemaVersion: '1.0',
        bucket: { name: 'landing', arn: 'arn:aws:s3:::landing' },
        object: { key, size: 70_000, eTag: head?.etag },
      },
    });
    expect(record.s3.object.sequencer).toMatch(/^[0-9A-F]{16}$/);
    expect(Number.isNaN(Date.parse(record.eventTime))).toBe(false);
  });

  it('URL-encodes keys as S3 does and gives later events larger sequencers', async () => {
    await startWatcher();
    await mkdir(path.join(lake, 'landing', 'manual'), { recursive: true });
    await writeFile(path.join(lake, 'landing', 'manual', 'a b+c.csv'), 'x\n');
    await waitFor(() => seen.length === 1, 'the first event');
    await writeFile(path.join(lake, 'landing', 'manual', 'second.csv'), 'y\n');
    await waitFor(() => seen.length === 2, 'the second event');
    expect(seen[0]!.record.s3.object.key).toBe('manual/a+b%2Bc.csv');
    expect(eventObjectKey(seen[0]!.record)).toBe('manual/a b+c.csv');
    expect(seen[1]!.record.s3.object.sequencer > seen[0]!.record.s3.object.sequencer).toBe(true);
  });

  it('reports a file written slowly in chunks once, after its last chunk', async () => {
    // Chunks 100 ms apart: far under the 2 s the size must hold still, even on a loaded machine
    // where a 100 ms sleep can take several times longer.
    await startWatcher(2000);
    const file = path.join(lake, 'landing', 'gharchive', 'slow.json.gz');
    await mkdir(path.dirname(file), { recursive: true });
    const chunkWrittenAt: number[] = [];
    const handle = await open(file, 'w');
    try {
      for (let i = 0; i < 5; i++) {
        if (i > 0) await sleep(100);
        await handle.write(Buffer.alloc(10_000, i));
        await handle.sync();
        chunkWrittenAt.push(performance.now());
      }
    } finally {
      await handle.close();
    }
    await waitFor(() => seen.length > 0, 'the event');
    await sleep(2000 * 1.5);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.at).toBeGreaterThan(chunkWrittenAt.at(-1)!);
    expect(seen[0]!.record.s3.object.size).toBe(50_000);
    expect(seen[0]!.record.s3.object.eTag).toBe(
      (await store.head({ layer: 'landing', key: 'gharchive/slow.json.gz' }))?.etag,
    );
  });

  it('ignores hidden, .part and _sluice_tmp files, and files that existed before start', async () => {
    await mkdir(path.join(lake, 'landing', 'gharchive'), { recursive: true });
    await writeFile(path.join(lake, 'landing', 'gharchive', 'existing.json.gz'), 'old');
    await startWatcher();
    const hidden = [
      'gharchive/_SUCCESS',
      'gharchive/.DS_Store',
      'gharchive/hour.json.gz.part',
      'gharchive/_temporary/0/part-0.json',
      'gharchive/.staging/file.json',
      '_sluice_tmp/put-1-abc.part',
      '_sluice_tmp/scratch-1/out.parquet',
    ];
    for (const key of hidden) {
      const file = path.join(lake, 'landing', ...key.split('/'));
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, 'hidden');
    }
    await appendFile(path.join(lake, 'landing', 'gharchive', 'hour.json.gz.part'), 'more');
    // A visible file written after them: once it is reported, they would have been too.
    await writeFile(path.join(lake, 'landing', 'gharchive', 'sentinel.json.gz'), 'visible');
    await waitFor(() => seen.length > 0, 'the sentinel');
    await sleep(STABILITY_MS * 3);
    expect(keys()).toEqual(['gharchive/sentinel.json.gz']);
  });

  it("reports objects written through LocalObjectStore with the store event's eTag, not its temporary file", async () => {
    await startWatcher();
    const fromStore: S3EventRecord[] = [];
    store.onObjectCreated((record) => fromStore.push(record));
    const info = await store.put(
      { layer: 'staging', key: 'gharchive/events/part-0.parquet' },
      'parquet bytes',
    );
    await waitFor(() => seen.length > 0, 'the watcher event');
    await sleep(STABILITY_MS * 3);
    expect(keys()).toEqual(['gharchive/events/part-0.parquet']);
    expect(seen[0]!.record.s3.object.eTag).toBe(info.etag);
    expect(seen[0]!.record.s3.object.eTag).toBe(fromStore[0]!.s3.object.eTag);
    expect(seen[0]!.record.s3.bucket).toEqual(fromStore[0]!.s3.bucket);
    expect(seen[0]!.record.s3.object.key).toBe(fromStore[0]!.s3.object.key);
  });

  it('reports a rewrite with a new eTag', async () => {
    await startWatcher();
    const ref = { layer: 'landing', key: 'manual/data.csv' } as const;
    const first = await store.put(ref, 'a,b\n1,2\n');
    await waitFor(() => seen.length === 1, 'the first event');
    const second = await store.put(ref, 'a,b\n1,2\n3,4\n');
    await waitFor(() => seen.some((s) => s.record.s3.object.eTag === second.etag), 'the second event');
    expect(first.etag).not.toBe(second.etag);
    expect(seen[0]!.record.s3.object.eTag).toBe(first.etag);
  });

  it('watches only the given layers and stops reporting after close()', async () => {
    const w = await startWatcher();
    await store.put({ layer: 'analytical', key: 'gharchive/events/x.parquet' }, 'not watched');
    await store.put({ layer: 'landing', key: 'gharchive/a.json.gz' }, 'a');
    await waitFor(() => seen.length > 0, 'the landing event');
    await w.close();
    await store.put({ layer: 'landing', key: 'gharchive/b.json.gz' }, 'b');
    await sleep(STABILITY_MS * 3);
    expect(keys()).toEqual(['gharchive/a.json.gz']);
    await expect(w.start()).rejects.toThrow(/already closed/);
  });

  it('reports each file of a burst of new directories exactly once (new directories are re-read)', async () => {
    await startWatcher();
    const written = Array.from({ length: 40 }, (_, i) => `burst/d${String(i).padStart(2, '0')}/f.json`);
    await Promise.all(written.map((key) => store.put({ layer: 'landing', key }, key)));
    await waitFor(() => seen.length >= written.length, 'every file of the burst');
    // Past the re-read of the new directories (2 x stability + poll), nothing more arrives.
    await sleep(STABILITY_MS * 3);
    expect(keys().sort()).toEqual([...written].sort());
  });

  it('scan() lists existing visible objects under a prefix, in key order, with head() eTags', async () => {
    const w = new LocalObjectWatcher({ lakeRoot: lake, layers: ['landing'] });
    await store.put({ layer: 'landing', key: 'gharchive/2024-01-01-1.json.gz' }, 'one');
    await store.put({ layer: 'landing', key: 'gharchive/2024-01-01-0.json.gz' }, 'zero');
    await store.put({ layer: 'landing', key: 'other/x.csv' }, 'x');
    await mkdir(path.join(lake, 'landing', 'gharchive'), { recursive: true });
    await writeFile(path.join(lake, 'landing', 'gharchive', 'copy.json.gz.part'), 'partial');
    await writeFile(path.join(lake, 'landing', 'gharchive', '_SUCCESS'), '');

    const scanned: S3EventRecord[] = [];
    for await (const record of w.scan('landing', 'gharchive/')) scanned.push(record);
    expect(scanned.map(eventObjectKey)).toEqual([
      'gharchive/2024-01-01-0.json.gz',
      'gharchive/2024-01-01-1.json.gz',
    ]);
    for (const record of scanned) {
      const head = await store.head({ layer: 'landing', key: eventObjectKey(record) });
      expect(record.s3.object).toMatchObject({ size: head?.size, eTag: head?.etag });
      expect(record.eventTime).toBe(head?.lastModified.toISOString());
    }
    expect(scanned[1]!.s3.object.sequencer > scanned[0]!.s3.object.sequencer).toBe(true);
  });

  it('rejects bad options', () => {
    expect(() => new LocalObjectWatcher({ lakeRoot: lake, layers: ['nope' as 'landing'] })).toThrow(
      /unknown layer/,
    );
    expect(() => new LocalObjectWatcher({ lakeRoot: lake, layers: ['landing'], stabilityMs: 0 })).toThrow(
      /stabilityMs/,
    );
  });
});
