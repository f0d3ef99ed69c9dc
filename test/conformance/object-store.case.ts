import { createHash, randomUUID } from 'node:crypto';
import { access, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NotFoundError } from '../../src/core/errors.ts';
import type { S3EventRecord } from '../../src/core/events.ts';
import type { Layer } from '../../src/core/layer.ts';
import type { ObjectInfo, ObjectStore } from '../../src/core/ports/object-store.ts';

/** Collects an async iterable. */
async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const value of iterable) out.push(value);
  return out;
}

async function readAll(stream: AsyncIterable<Uint8Array | string>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** Sorts keys as S3 lists them: by UTF-8 bytes. */
function byteSorted(keys: readonly string[]): string[] {
  return [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/** The layer named by the file of a `bucket-map/<layer>.txt` key (as events carry it). */
function eventKeyLayer(key: string): string {
  return key.replace(/^bucket-map\//, '').replace(/\.txt$/, '');
}

/** The key as S3 event notifications carry it (URL-encoded, space as `+`), computed independently. */
function s3EventKey(key: string): string {
  return key
    .split('/')
    .map((segment) =>
      [...Buffer.from(segment, 'utf8')]
        .map((byte) => {
          const char = String.fromCharCode(byte);
          if (byte === 0x20) return '+';
          return /[A-Za-z0-9\-_.!~*'()]/.test(char)
            ? char
            : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
        })
        .join(''),
    )
    .join('/');
}

/** Deterministic pseudo-random bytes (xorshift32), `chunks` chunks of `size` bytes. */
function* pseudoRandomChunks(chunks: number, size: number): Generator<Uint8Array> {
  let state = 0x9e3779b9;
  for (let c = 0; c < chunks; c++) {
    const chunk = new Uint8Array(size);
    for (let i = 0; i < size; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      chunk[i] = state & 0xff;
    }
    yield chunk;
  }
}

/**
 * The {@link ObjectStore} contract, for any backend. `open` returns a store and a `close` that
 * releases it; every test opens its own and writes under a random key prefix, so the suite also
 * runs against a shared bucket.
 */
export function objectStoreConformance(
  backend: string,
  open: () => Promise<{ store: ObjectStore; close(): Promise<void> }>,
): void {
  describe(`ObjectStore conformance: ${backend}`, () => {
    let store: ObjectStore;
    let close: () => Promise<void>;
    /** Random key prefix of the current test. */
    let root: string;
    const layer: Layer = 'staging';
    const ref = (key: string, inLayer: Layer = layer) => ({ layer: inLayer, key: root + key });
    const listKeys = async (prefix: string, options?: { includeHidden?: boolean }, inLayer: Layer = layer) =>
      (await collect(store.list(inLayer, root + prefix, options))).map((info) => info.key.slice(root.length));

    beforeEach(async () => {
      ({ store, close } = await open());
      root = `conformance-${randomUUID()}/`;
    });
    afterEach(async () => {
      await close();
    });

    it('declares its capabilities', () => {
      expect(typeof store.capabilities.atomicRename).toBe('boolean');
      expect(typeof store.capabilities.localFiles).toBe('boolean');
    });

    it('round-trips bytes, strings, Readables and async iterables', async () => {
      const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
      const info = await store.put(ref('bytes.bin'), bytes);
      expect(info).toMatchObject({ layer, key: root + 'bytes.bin', size: 256 });
      expect(Buffer.from(await store.getBytes(ref('bytes.bin')))).toEqual(Buffer.from(bytes));

      const text = 'héllo ✓ 😀\n';
      await store.put(ref('text.txt'), text);
      expect(Buffer.from(await store.getBytes(ref('text.txt')))).toEqual(Buffer.from(text, 'utf8'));
      expect((await store.head(ref('text.txt')))?.size).toBe(Buffer.byteLength(text));

      await store.put(ref('readable.txt'), Readable.from([Buffer.from('ab'), Buffer.from('cd')]));
      expect(Buffer.from(await store.getBytes(ref('readable.txt'))).toString()).toBe('abcd');

      async function* generate(): AsyncGenerator<Uint8Array> {
        yield new TextEncoder().encode('x');
        yield new TextEncoder().encode('yz');
      }
      await store.put(ref('iterable.txt'), generate());
      expect((await readAll(await store.get(ref('iterable.txt')))).toString()).toBe('xyz');

      await store.put(ref('empty'), new Uint8Array(0));
      expect((await store.head(ref('empty')))?.size).toBe(0);
      expect((await store.getBytes(ref('empty'))).length).toBe(0);
    });

    it('streams a 5 MB body in and out', async () => {
      const chunkSize = 64 * 1024;
      const chunks = 80; // 5 MiB
      const expected = createHash('sha256');
      for (const chunk of pseudoRandomChunks(chunks, chunkSize)) expected.update(chunk);
      async function* body(): AsyncGenerator<Uint8Array> {
        for (const chunk of pseudoRandomChunks(chunks, chunkSize)) yield chunk;
      }
      const info = await store.put(ref('big.bin'), body());
      expect(info.size).toBe(chunks * chunkSize);

      const actual = createHash('sha256');
      let size = 0;
      for await (const chunk of await store.get(ref('big.bin'))) {
        actual.update(chunk as Buffer);
        size += (chunk as Buffer).length;
      }
      expect(size).toBe(chunks * chunkSize);
      expect(actual.digest('hex')).toBe(expected.digest('hex'));
    });

    it('put returns the same metadata head returns', async () => {
      const before = Date.now();
      const info = await store.put(ref('meta.txt'), 'metadata');
      const head = await store.head(ref('meta.txt'));
      expect(head).toEqual(info);
      expect(info.etag).toMatch(/\S/);
      expect(info.lastModified).toBeInstanceOf(Date);
      // Filesystem timestamps may be coarse; allow a few seconds of skew either way.
      expect(Math.abs(info.lastModified.getTime() - before)).toBeLessThan(5_000);
    });

    it('replaces an object atomically and changes its etag on every rewrite', async () => {
      const first = await store.put(ref('replace.txt'), 'one');
      const second = await store.put(ref('replace.txt'), 'three');
      const third = await store.put(ref('replace.txt'), 'thre3'); // same size as the second
      expect(Buffer.from(await store.getBytes(ref('replace.txt'))).toString()).toBe('thre3');
      expect(second.etag).not.toBe(first.etag);
      expect(third.etag).not.toBe(second.etag);
      expect((await store.head(ref('replace.txt')))?.etag).toBe(third.etag);
      expect(await listKeys('')).toEqual(['replace.txt']);
    });

    it('reports missing objects: head undefined, get/getBytes/localPath NotFoundError naming the key', async () => {
      expect(await store.head(ref('missing.txt'))).toBeUndefined();
      for (const read of [
        () => store.get(ref('missing.txt')),
        () => store.getBytes(ref('missing.txt')),
        () => store.localPath(ref('missing.txt')),
      ]) {
        const error = await read().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(NotFoundError);
        expect((error as Error).message).toContain(`${root}missing.txt`);
      }
    });

    it('lists in ascending UTF-8 byte order, recursively, files only', async () => {
      const keys = [
        'x/z',
        'a/c/d',
        'x/\u{1F600}', // UTF-8 F0 9F 98 80: after U+FF5E (EF BD 9E), though its UTF-16 sorts before
        'a-c',
        'B',
        'x/é',
        'a0',
        'a/b',
        'x/\uFF5E',
        'b',
        'x y/1',
        'x+y/1',
      ];
      for (const key of keys) await store.put(ref(key), key);
      const listed = await collect(store.list(layer, root));
      expect(listed.map((info) => info.key)).toEqual(byteSorted(keys).map((key) => root + key));
      for (const info of listed) {
        const key = info.key.slice(root.length);
        expect(info).toMatchObject({ layer, size: Buffer.byteLength(key) });
        expect(info.etag).toBe((await store.head(ref(key)))?.etag);
      }
    });

    it('lists by plain string prefix', async () => {
      const keys = [
        'gharchive/events/2015/01.json',
        'gharchive/events/2015/02.json',
        'gharchive/events-old/x.json',
        'gharchive/evening/y.json',
        'gharchive/other/z.json',
        'gharchive2/a.json',
      ];
      for (const key of keys) await store.put(ref(key), 'x');
      const expectPrefix = async (prefix: string) =>
        expect(await listKeys(prefix)).toEqual(byteSorted(keys.filter((key) => key.startsWith(prefix))));
      await expectPrefix('gharchive/ev');
      await expectPrefix('gharchive/events/');
      await expectPrefix('gharchive/events');
      await expectPrefix('gharchive/events/2015/0');
      await expectPrefix('gharchive');
      await expectPrefix('gharchive/events/2015/01.json');
      await expectPrefix('');
      expect(await listKeys('gharchive/events/2015/01.json/')).toEqual([]);
      expect(await listKeys('nothing/')).toEqual([]);
      expect(await listKeys('nothing')).toEqual([]);
    });

    it('hides keys with a segment starting with _ or . and *.part files, unless includeHidden', async () => {
      const visible = ['t/ok.parquet', 't/sub/ok.json', 't/sub_dir/a', 't/a_b.c'];
      const hidden = [
        't/_SUCCESS',
        't/_tmp/x',
        't/.hidden',
        't/.dir/y',
        't/file.part',
        't/sub/_x',
        't/sub/.y/z',
        't/sub/deep.part',
      ];
      for (const key of [...visible, ...hidden]) await store.put(ref(key), key);
      expect(await listKeys('t/')).toEqual(byteSorted(visible));
      expect(await listKeys('t/', { includeHidden: true })).toEqual(byteSorted([...visible, ...hidden]));
      expect(await listKeys('t/_tmp/')).toEqual([]);
      expect(await listKeys('t/_tmp/', { includeHidden: true })).toEqual(['t/_tmp/x']);
      expect(await listKeys('t/_')).toEqual([]);
      // Hidden objects are still objects: readable by key.
      expect(Buffer.from(await store.getBytes(ref('t/_SUCCESS'))).toString()).toBe('t/_SUCCESS');
    });

    it('keeps layers apart', async () => {
      await store.put(ref('only-landing.txt', 'landing'), 'landing');
      expect(await store.head(ref('only-landing.txt', 'staging'))).toBeUndefined();
      expect(await listKeys('', {}, 'staging')).toEqual([]);
      expect(await listKeys('', {}, 'landing')).toEqual(['only-landing.txt']);
      await store.put(ref('only-landing.txt', 'quarantine'), 'quarantine!');
      expect(Buffer.from(await store.getBytes(ref('only-landing.txt', 'landing'))).toString()).toBe(
        'landing',
      );
    });

    it('deletes idempotently', async () => {
      await store.delete(ref('never-existed.txt'));
      await store.put(ref('dir/victim.txt'), 'bye');
      await store.put(ref('dir/keeper.txt'), 'stay');
      await store.delete(ref('dir/victim.txt'));
      await store.delete(ref('dir/victim.txt'));
      expect(await store.head(ref('dir/victim.txt'))).toBeUndefined();
      await expect(store.getBytes(ref('dir/victim.txt'))).rejects.toBeInstanceOf(NotFoundError);
      await expect(store.get(ref('dir/victim.txt'))).rejects.toBeInstanceOf(NotFoundError);
      expect(await listKeys('')).toEqual(['dir/keeper.txt']);
      await store.delete(ref('dir/keeper.txt'));
      expect(await listKeys('')).toEqual([]);
      // The key can be written again after its "directory" vanished.
      await store.put(ref('dir/victim.txt'), 'back');
      expect(Buffer.from(await store.getBytes(ref('dir/victim.txt'))).toString()).toBe('back');
    });

    it('maps the bucket its events name back to the layer written, and no foreign bucket to a layer', async () => {
      const buckets = new Map<string, string>();
      const unsubscribe = store.onObjectCreated((record) => {
        buckets.set(eventKeyLayer(record.s3.object.key), record.s3.bucket.name);
      });
      for (const each of ['landing', 'staging', 'analytical', 'quarantine'] as const) {
        await store.put({ layer: each, key: `bucket-map/${each}.txt` }, each);
      }
      unsubscribe();
      expect([...buckets.keys()].sort()).toEqual(['analytical', 'landing', 'quarantine', 'staging']);
      for (const [written, bucket] of buckets) expect(store.layerOfBucket(bucket)).toBe(written);
      expect(new Set(buckets.values()).size).toBe(4);
      expect(store.layerOfBucket(`not-a-bucket-of-this-lake-${randomUUID()}`)).toBeUndefined();
    });

    it('emits exactly one object-created event per write, with S3 notification fields', async () => {
      const records: S3EventRecord[] = [];
      const unsubscribe = store.onObjectCreated((record) => records.push(record));
      const before = Date.now();
      const infos: ObjectInfo[] = [];
      infos.push(await store.put(ref('events/plain.txt'), 'a'));
      infos.push(await store.put(ref('events/with space+plus é.txt'), 'bb'));
      infos.push(await store.put(ref('events/plain.txt'), 'ccc')); // same key again
      const scratch = await store.scratchDir(layer);
      try {
        await writeFile(join(scratch.path, 'copied.bin'), 'dddd');
        infos.push(await store.putFile(ref('events/copied.bin'), join(scratch.path, 'copied.bin')));
        await writeFile(join(scratch.path, 'moved.bin'), 'eeeee');
        infos.push(
          await store.putFile(ref('events/moved.bin'), join(scratch.path, 'moved.bin'), { move: true }),
        );
      } finally {
        await scratch.release();
      }
      const after = Date.now();
      unsubscribe();
      await store.put(ref('events/after-unsubscribe.txt'), 'f');

      expect(records).toHaveLength(infos.length);
      records.forEach((record, i) => {
        const info = infos[i]!;
        expect(record.eventVersion).toBe('2.1');
        expect(record.eventName).toMatch(/^ObjectCreated:/);
        expect(typeof record.awsRegion).toBe('string');
        expect(record.eventTime).toBe(new Date(record.eventTime).toISOString());
        const time = Date.parse(record.eventTime);
        expect(time).toBeGreaterThanOrEqual(before - 1000);
        expect(time).toBeLessThanOrEqual(after + 1000);
        expect(record.s3.s3SchemaVersion).toBe('1.0');
        expect(record.s3.bucket.arn).toBe(`arn:aws:s3:::${record.s3.bucket.name}`);
        expect(record.s3.object.key).toBe(s3EventKey(info.key));
        expect(decodeURIComponent(record.s3.object.key.replace(/\+/g, ' '))).toBe(info.key);
        expect(record.s3.object.size).toBe(info.size);
        expect(record.s3.object.eTag).toBe(info.etag);
        expect(record.s3.object.sequencer).toMatch(/^[0-9A-F]+$/i);
      });
      expect(records[1]!.s3.object.key).toContain('with+space%2Bplus+%C3%A9.txt');
      expect(new Set(records.map((r) => r.s3.bucket.name)).size).toBe(1);
      // Later events on the same key carry a larger sequencer.
      const sequencer = (r: S3EventRecord) => BigInt(`0x${r.s3.object.sequencer}`);
      expect(sequencer(records[2]!)).toBeGreaterThan(sequencer(records[0]!));
    });

    it('keeps writing when a listener throws, and still calls the other listeners', async () => {
      const seen: string[] = [];
      const off1 = store.onObjectCreated(() => {
        throw new Error('listener failure');
      });
      const off2 = store.onObjectCreated((record) => seen.push(record.s3.object.key));
      const info = await store.put(ref('robust.txt'), 'still written');
      expect(info.size).toBe('still written'.length);
      expect(Buffer.from(await store.getBytes(ref('robust.txt'))).toString()).toBe('still written');
      expect(seen).toEqual([s3EventKey(root + 'robust.txt')]);
      off1();
      off2();
    });

    it('publishes a scratch file with putFile move, and copies without move', async () => {
      const scratch = await store.scratchDir('analytical');
      const moved = join(scratch.path, 'part-0.parquet');
      const copied = join(scratch.path, 'part-1.parquet');
      await writeFile(moved, 'moved bytes');
      await writeFile(copied, 'copied bytes');

      const info = await store.putFile(ref('t/year=2015/part-0.parquet', 'analytical'), moved, {
        move: true,
      });
      expect(info).toMatchObject({ layer: 'analytical', key: root + 't/year=2015/part-0.parquet', size: 11 });
      await expect(access(moved)).rejects.toThrow();
      expect(
        Buffer.from(await store.getBytes(ref('t/year=2015/part-0.parquet', 'analytical'))).toString(),
      ).toBe('moved bytes');

      await store.putFile(ref('t/year=2015/part-1.parquet', 'analytical'), copied);
      expect(await readFile(copied, 'utf8')).toBe('copied bytes');
      expect(
        Buffer.from(await store.getBytes(ref('t/year=2015/part-1.parquet', 'analytical'))).toString(),
      ).toBe('copied bytes');

      // Scratch files never show up as objects.
      expect(await listKeys('', { includeHidden: true }, 'analytical')).toEqual([
        't/year=2015/part-0.parquet',
        't/year=2015/part-1.parquet',
      ]);
      await scratch.release();
      await expect(access(scratch.path)).rejects.toThrow();
      await scratch.release(); // idempotent
    });

    it('putFile of a missing local file throws NotFoundError', async () => {
      const scratch = await store.scratchDir(layer);
      try {
        await expect(store.putFile(ref('x'), join(scratch.path, 'nope'))).rejects.toBeInstanceOf(
          NotFoundError,
        );
        await expect(
          store.putFile(ref('x'), join(scratch.path, 'nope'), { move: true }),
        ).rejects.toBeInstanceOf(NotFoundError);
        expect(await store.head(ref('x'))).toBeUndefined();
      } finally {
        await scratch.release();
      }
    });

    it('gives a local file with the bytes for engines', async () => {
      await store.put(ref('local.csv'), 'a,b\n1,2\n');
      const file = await store.localPath(ref('local.csv'));
      try {
        expect(await readFile(file.path, 'utf8')).toBe('a,b\n1,2\n');
      } finally {
        await file.release();
      }
      // The path ends with the whole key: engines read Hive `name=value/` segments from it.
      const nested = 'year=2026/month=03/local.csv';
      await store.put(ref(nested), 'x\n');
      const deep = await store.localPath(ref(nested));
      try {
        expect(deep.path.replaceAll('\\', '/').endsWith(`/${ref(nested).key}`)).toBe(true);
      } finally {
        await deep.release();
      }
    });

    it('refuses invalid keys', async () => {
      for (const key of ['', '/abs', 'a//b', 'a/../b', './a', 'a/.', 'back\\slash', 'nul\0']) {
        await expect(store.put({ layer, key }, 'x'), JSON.stringify(key)).rejects.toThrow(/key/);
      }
    });

    it('names objects with distinct URIs', async () => {
      const a = store.uri(ref('a.txt'));
      const b = store.uri(ref('b.txt'));
      expect(a).toMatch(/^[a-z0-9]+:\/\//);
      expect(a).not.toBe(b);
      expect(store.uri(ref('a.txt', 'landing'))).not.toBe(a);
    });

    it('hides scratch directories from listings, and cleanScratch keeps those of a live writer', async () => {
      const scratch = await store.scratchDir(layer);
      await writeFile(join(scratch.path, 'in-progress.bin'), 'a writer is still working');
      await store.put(ref('real.txt'), 'real');
      expect(await listKeys('', { includeHidden: true })).toEqual(['real.txt']);
      // This process is alive: its scratch directory must survive another writer's clean-up.
      await store.cleanScratch(layer);
      await access(join(scratch.path, 'in-progress.bin'));
      await scratch.release();
      await expect(access(scratch.path)).rejects.toThrow();
      expect(Buffer.from(await store.getBytes(ref('real.txt'))).toString()).toBe('real');
      // A new scratch directory works after the clean-up.
      const again = await store.scratchDir(layer);
      await writeFile(join(again.path, 'f'), 'x');
      await again.release();
    });
  });
}
