import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3_SCRATCH_DIR, S3ObjectStore } from '../../src/backends/aws/s3-object-store.ts';
import { NotFoundError, SluiceError } from '../../src/core/errors.ts';
import type { S3EventRecord } from '../../src/core/events.ts';
import type { ObjectInfo } from '../../src/core/ports/object-store.ts';
import { type RunningS3rver, startS3rver } from '../helpers/s3rver.ts';
import { objectStoreConformance } from './object-store.case.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

let s3: RunningS3rver;
let scratchRoot: string;

beforeAll(async () => {
  s3 = await startS3rver();
  scratchRoot = await mkdtemp(join(tmpdir(), 'sluice-s3-scratch-test-'));
});

afterAll(async () => {
  await s3?.stop();
  if (scratchRoot) await rm(scratchRoot, { recursive: true, force: true });
});

function newStore(options: { listPageSize?: number; client?: S3Client } = {}): S3ObjectStore {
  return new S3ObjectStore(options.client ?? s3.client(), {
    buckets: s3.buckets,
    region: s3.region,
    scratchRoot,
    ...(options.listPageSize === undefined ? {} : { listPageSize: options.listPageSize }),
  });
}

// Every test writes under a random prefix, so all share the four buckets of one server.
objectStoreConformance('aws (s3rver)', async () => {
  const client = s3.client();
  return { store: newStore({ client }), close: async () => client.destroy() };
});

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const value of iterable) out.push(value);
  return out;
}

/** Deterministic pseudo-random bytes (xorshift32, seeded), `chunks` chunks of `size` bytes. */
function* pseudoRandomChunks(seed: number, chunks: number, size: number): Generator<Buffer> {
  let state = seed;
  for (let c = 0; c < chunks; c++) {
    const chunk = Buffer.alloc(size);
    for (let i = 0; i < size; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      chunk[i] = state & 0xff;
    }
    yield chunk;
  }
}

describe('S3ObjectStore on s3rver', () => {
  it('uploads a 20 MiB Readable as a multipart upload (8 MiB parts) that round-trips byte-identically', async () => {
    const store = newStore();
    const key = `multipart-${randomUUID()}/big.bin`;
    const chunkSize = 256 * 1024;
    const chunks = 80; // 20 MiB: parts of 8, 8 and 4 MiB
    const expected = createHash('sha256');
    for (const chunk of pseudoRandomChunks(0x12345678, chunks, chunkSize)) expected.update(chunk);
    const expectedHash = expected.digest('hex');

    const serverEvents: string[] = [];
    const onServerEvent = (event: { Records: Record<string, unknown>[] }) => {
      for (const record of event.Records) serverEvents.push(String(record.eventName));
    };
    s3.server.on('event', onServerEvent);
    const records: S3EventRecord[] = [];
    const off = store.onObjectCreated((record) => records.push(record));
    const info = await store.put(
      { layer: 'landing', key },
      Readable.from(pseudoRandomChunks(0x12345678, chunks, chunkSize)),
    );
    off();
    s3.server.off('event', onServerEvent);

    expect(info.size).toBe(chunks * chunkSize);
    // s3rver reports a completed multipart upload as `ObjectCreated:Post` (a single PUT as `:Put`).
    expect(serverEvents).toEqual(['ObjectCreated:Post']);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      eventSource: 'aws:s3',
      eventName: 'ObjectCreated:CompleteMultipartUpload',
      awsRegion: 'us-east-1',
      s3: {
        bucket: { name: s3.buckets.landing, arn: `arn:aws:s3:::${s3.buckets.landing}` },
        object: { key, size: chunks * chunkSize, eTag: info.etag },
      },
    });

    const actual = createHash('sha256');
    let size = 0;
    for await (const chunk of await store.get({ layer: 'landing', key })) {
      actual.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    expect(size).toBe(chunks * chunkSize);
    expect(actual.digest('hex')).toBe(expectedHash);

    // localPath downloads into the scratch root, keeping the file name; release removes it.
    const file = await store.localPath({ layer: 'landing', key });
    expect(file.path.startsWith(join(scratchRoot, S3_SCRATCH_DIR, s3.buckets.landing))).toBe(true);
    expect(file.path.endsWith('/big.bin')).toBe(true);
    const local = createHash('sha256');
    for await (const chunk of (await import('node:fs')).createReadStream(file.path))
      local.update(chunk as Buffer);
    expect(local.digest('hex')).toBe(expectedHash);
    await file.release();
    expect(await readdir(join(scratchRoot, S3_SCRATCH_DIR, s3.buckets.landing))).toEqual([]);
  });

  it('uploads a small stream with a single PutObject', async () => {
    const store = newStore();
    const key = `single-${randomUUID()}/small.txt`;
    const serverEvents: string[] = [];
    const onServerEvent = (event: { Records: Record<string, unknown>[] }) => {
      for (const record of event.Records) serverEvents.push(String(record.eventName));
    };
    s3.server.on('event', onServerEvent);
    const records: S3EventRecord[] = [];
    const off = store.onObjectCreated((record) => records.push(record));
    await store.put({ layer: 'staging', key }, Readable.from([Buffer.from('small '), Buffer.from('stream')]));
    off();
    s3.server.off('event', onServerEvent);
    expect(serverEvents).toEqual(['ObjectCreated:Put']);
    expect(records.map((r) => r.eventName)).toEqual(['ObjectCreated:Put']);
    // S3's ETag of a single PUT is the MD5 of the content, unquoted in the event.
    expect(records[0]?.s3.object.eTag).toBe(createHash('md5').update('small stream').digest('hex'));

    const empty = await store.put({ layer: 'staging', key: `${key}.empty` }, Readable.from([]));
    expect(empty.size).toBe(0);
    expect((await store.getBytes({ layer: 'staging', key: `${key}.empty` })).length).toBe(0);
  });

  it('pages through more than 1,000 keys (100-key pages and S3 default 1,000-key pages) in byte order', async () => {
    const prefix = `paging-${randomUUID()}/`;
    const visible = Array.from(
      { length: 1_205 },
      (_, i) => `k/${String(i).padStart(4, '0')}-${i % 7 === 0 ? 'é' : 'e'}`,
    );
    const hidden = Array.from({ length: 30 }, (_, i) => `k/_tmp/${i}`);
    const client = s3.client();
    const all = [...visible, ...hidden];
    for (let i = 0; i < all.length; i += 32) {
      await Promise.all(
        all
          .slice(i, i + 32)
          .map((key) =>
            client.send(new PutObjectCommand({ Bucket: s3.buckets.staging, Key: prefix + key, Body: key })),
          ),
      );
    }
    const expected = [...visible].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const listPageSize of [100, undefined]) {
      let pages = 0;
      const counting = s3.client();
      counting.middlewareStack.add(
        (next, context) => async (args) => {
          if (context.commandName === 'ListObjectsV2Command') pages++;
          return next(args);
        },
        { step: 'initialize' },
      );
      const store = newStore({ client: counting, ...(listPageSize === undefined ? {} : { listPageSize }) });
      const listed: ObjectInfo[] = await collect(store.list('staging', prefix));
      expect(listed.map((info) => info.key.slice(prefix.length))).toEqual(expected);
      expect(listed.every((info) => info.size === Buffer.byteLength(info.key.slice(prefix.length)))).toBe(
        true,
      );
      // 1,235 keys: 13 pages of 100, or 2 of 1,000.
      expect(pages).toBe(listPageSize === 100 ? 13 : 2);
      const withHidden = await collect(store.list('staging', prefix, { includeHidden: true }));
      expect(withHidden).toHaveLength(all.length);
      counting.destroy();
    }
    client.destroy();
  });

  it('maps a missing bucket to a SluiceError naming the bucket and layer', async () => {
    const client = s3.client();
    const store = new S3ObjectStore(client, {
      buckets: { ...s3.buckets, quarantine: 'sluice-test-no-such-bucket' },
      region: s3.region,
      scratchRoot,
    });
    const ref = { layer: 'quarantine' as const, key: 'x.txt' };
    const error = await store.put(ref, 'x').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SluiceError);
    expect(error).not.toBeInstanceOf(NotFoundError);
    expect((error as SluiceError).code).toBe('bucket_not_found');
    expect((error as Error).message).toContain('"sluice-test-no-such-bucket"');
    expect((error as Error).message).toContain('layer quarantine');
    const listError = await collect(store.list('quarantine', '')).catch((e: unknown) => e);
    expect((listError as SluiceError).code).toBe('bucket_not_found');
    const getError = await store.get(ref).catch((e: unknown) => e);
    expect((getError as SluiceError).code).toBe('bucket_not_found');
    client.destroy();
  });

  it('names the object s3://bucket/key when it is missing', async () => {
    const store = newStore();
    const key = `missing-${randomUUID()}/nope.txt`;
    const error = await store.getBytes({ layer: 'analytical', key }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotFoundError);
    expect((error as Error).message).toContain(`s3://${s3.buckets.analytical}/${key}`);
    expect(store.uri({ layer: 'analytical', key })).toBe(`s3://${s3.buckets.analytical}/${key}`);
  });

  it("putFile move uploads then removes the local file; cleanScratch removes dead processes' scratch", async () => {
    const store = newStore();
    const scratch = await store.scratchDir('analytical');
    expect(
      scratch.path.startsWith(
        join(scratchRoot, S3_SCRATCH_DIR, s3.buckets.analytical, `scratch-${process.pid}-`),
      ),
    ).toBe(true);
    const key = `putfile-${randomUUID()}/part-0.parquet`;
    await writeFile(join(scratch.path, 'part-0.parquet'), 'parquet bytes');
    const info = await store.putFile({ layer: 'analytical', key }, join(scratch.path, 'part-0.parquet'), {
      move: true,
    });
    expect(info.size).toBe(13);
    expect(await readdir(scratch.path)).toEqual([]);
    // A directory of a process that no longer exists (pid 2^22 + 1 is above Linux's pid_max default).
    const base = join(scratchRoot, S3_SCRATCH_DIR, s3.buckets.analytical);
    const dead = join(base, 'scratch-4194305-deadbeef');
    const deadDownload = join(base, 'get-4194305-cafe');
    await (await import('node:fs/promises')).mkdir(dead, { recursive: true });
    await (await import('node:fs/promises')).mkdir(deadDownload, { recursive: true });
    await store.cleanScratch('analytical');
    const left = await readdir(base);
    expect(left).toContain(scratch.path.slice(base.length + 1));
    expect(left).not.toContain('scratch-4194305-deadbeef');
    expect(left).not.toContain('get-4194305-cafe');
    await scratch.release();
  });
});
