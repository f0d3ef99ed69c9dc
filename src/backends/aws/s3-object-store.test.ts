import { access, readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NoSuchBucket,
  NoSuchKey,
  NotFound,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { layerBuckets } from '../../../test/helpers/aws-buckets.ts';
import type { Clock } from '../../core/clock.ts';
import { NotFoundError, SluiceError } from '../../core/errors.ts';
import type { S3EventRecord } from '../../core/events.ts';
import { S3ObjectStore } from './s3-object-store.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const buckets = layerBuckets('acme');
const clock: Clock = { now: () => new Date('2026-03-04T05:06:07.089Z'), sleep: async () => {} };
const lastModified = new Date('2026-03-04T05:06:07.000Z');
const MiB = 1024 * 1024;

const s3Mock = mockClient(S3Client);
let client: S3Client;

beforeEach(() => {
  s3Mock.reset();
  client = new S3Client({
    region: 'eu-west-1',
    credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' },
  });
});
afterEach(() => client.destroy());

function store(options: { listPageSize?: number } = {}): S3ObjectStore {
  return new S3ObjectStore(client, { buckets, region: 'eu-west-1', clock, ...options });
}

const metadata = (status: number) => ({
  httpStatusCode: status,
  requestId: 'R1',
  extendedRequestId: 'X1',
  attempts: 1,
  totalRetryDelay: 0,
});

describe('S3ObjectStore requests (aws-sdk-client-mock)', () => {
  it('puts a small body with one PutObject (Bucket, Key, Body, ContentLength), then HeadObject, and emits the event', async () => {
    s3Mock.on(PutObjectCommand).resolves({ ETag: '"5d41402abc4b2a76b9719d911017c592"' });
    s3Mock.on(HeadObjectCommand).resolves({
      ContentLength: 5,
      ETag: '"5d41402abc4b2a76b9719d911017c592"',
      LastModified: lastModified,
    });
    const s = store();
    const records: S3EventRecord[] = [];
    s.onObjectCreated((record) => records.push(record));
    const info = await s.put({ layer: 'staging', key: 'tables/a b+c/é.txt' }, 'hello');

    const puts = s3Mock.commandCalls(PutObjectCommand);
    expect(puts).toHaveLength(1);
    expect(puts[0]?.args[0].input).toEqual({
      Bucket: 'acme-staging',
      Key: 'tables/a b+c/é.txt',
      Body: Buffer.from('hello'),
      ContentLength: 5,
    });
    expect(s3Mock.commandCalls(HeadObjectCommand)[0]?.args[0].input).toEqual({
      Bucket: 'acme-staging',
      Key: 'tables/a b+c/é.txt',
    });
    expect(info).toEqual({
      layer: 'staging',
      key: 'tables/a b+c/é.txt',
      size: 5,
      etag: '5d41402abc4b2a76b9719d911017c592',
      lastModified,
    });
    expect(records).toHaveLength(1);
    const record = records[0]!;
    expect(record).toEqual({
      eventVersion: '2.1',
      eventSource: 'aws:s3',
      awsRegion: 'eu-west-1',
      eventTime: '2026-03-04T05:06:07.089Z',
      eventName: 'ObjectCreated:Put',
      s3: {
        s3SchemaVersion: '1.0',
        bucket: { name: 'acme-staging', arn: 'arn:aws:s3:::acme-staging' },
        object: {
          key: 'tables/a+b%2Bc/%C3%A9.txt',
          size: 5,
          eTag: '5d41402abc4b2a76b9719d911017c592',
          sequencer: record.s3.object.sequencer,
        },
      },
    });
    expect(record.s3.object.sequencer).toMatch(/^[0-9A-F]{16}$/);
  });

  it('uploads a 17 MiB body as multipart: 8 MiB parts, CompleteMultipartUpload with every part', async () => {
    s3Mock
      .on(CreateMultipartUploadCommand)
      .resolves({ UploadId: 'upload-1', Bucket: 'acme-landing', Key: 'big.bin' });
    s3Mock
      .on(UploadPartCommand)
      .callsFake((input: { PartNumber: number }) => ({ ETag: `"etag-${input.PartNumber}"` }));
    s3Mock.on(CompleteMultipartUploadCommand).resolves({ ETag: '"0123456789abcdef0123456789abcdef-3"' });
    s3Mock.on(HeadObjectCommand).resolves({
      ContentLength: 17 * MiB,
      ETag: '"0123456789abcdef0123456789abcdef-3"',
      LastModified: lastModified,
    });
    const s = store();
    const records: S3EventRecord[] = [];
    s.onObjectCreated((record) => records.push(record));
    await s.put({ layer: 'landing', key: 'big.bin' }, new Uint8Array(17 * MiB));

    expect(s3Mock.commandCalls(PutObjectCommand)).toHaveLength(0);
    expect(s3Mock.commandCalls(CreateMultipartUploadCommand)[0]?.args[0].input).toMatchObject({
      Bucket: 'acme-landing',
      Key: 'big.bin',
    });
    const parts = s3Mock
      .commandCalls(UploadPartCommand)
      .map((call) => call.args[0].input)
      .sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
    expect(
      parts.map((p) => [p.Bucket, p.Key, p.UploadId, p.PartNumber, (p.Body as Uint8Array).byteLength]),
    ).toEqual([
      ['acme-landing', 'big.bin', 'upload-1', 1, 8 * MiB],
      ['acme-landing', 'big.bin', 'upload-1', 2, 8 * MiB],
      ['acme-landing', 'big.bin', 'upload-1', 3, 1 * MiB],
    ]);
    expect(s3Mock.commandCalls(CompleteMultipartUploadCommand)[0]?.args[0].input).toMatchObject({
      Bucket: 'acme-landing',
      Key: 'big.bin',
      UploadId: 'upload-1',
      MultipartUpload: {
        Parts: [
          { ETag: '"etag-1"', PartNumber: 1 },
          { ETag: '"etag-2"', PartNumber: 2 },
          { ETag: '"etag-3"', PartNumber: 3 },
        ],
      },
    });
    expect(records.map((r) => [r.eventName, r.s3.object.eTag, r.s3.object.size])).toEqual([
      ['ObjectCreated:CompleteMultipartUpload', '0123456789abcdef0123456789abcdef-3', 17 * MiB],
    ]);
  });

  it('pages ListObjectsV2 with ContinuationToken and MaxKeys, and filters hidden keys', async () => {
    s3Mock
      .on(ListObjectsV2Command)
      .resolvesOnce({
        IsTruncated: true,
        NextContinuationToken: 'token-1',
        Contents: [
          { Key: 't/a.parquet', Size: 3, ETag: '"e1"', LastModified: lastModified },
          { Key: 't/_SUCCESS', Size: 0, ETag: '"e2"', LastModified: lastModified },
        ],
      })
      .resolvesOnce({
        IsTruncated: false,
        Contents: [
          { Key: 't/b/.tmp', Size: 1, ETag: '"e3"', LastModified: lastModified },
          { Key: 't/c.part', Size: 1, ETag: '"e4"', LastModified: lastModified },
          { Key: 't/d.json', Size: 4, ETag: '"e5"', LastModified: lastModified },
        ],
      });
    const listed = [];
    for await (const info of store({ listPageSize: 2 }).list('analytical', 't/')) listed.push(info);
    expect(listed).toEqual([
      { layer: 'analytical', key: 't/a.parquet', size: 3, etag: 'e1', lastModified },
      { layer: 'analytical', key: 't/d.json', size: 4, etag: 'e5', lastModified },
    ]);
    expect(s3Mock.commandCalls(ListObjectsV2Command).map((call) => call.args[0].input)).toEqual([
      { Bucket: 'acme-analytical', Prefix: 't/', MaxKeys: 2 },
      { Bucket: 'acme-analytical', Prefix: 't/', MaxKeys: 2, ContinuationToken: 'token-1' },
    ]);
  });

  it('lists with S3 default page size when none is set, and skips the request for a hidden prefix', async () => {
    s3Mock.on(ListObjectsV2Command).resolves({ IsTruncated: false, Contents: [] });
    const s = store();
    for await (const _ of s.list('landing', '')) expect.unreachable();
    for await (const _ of s.list('landing', 'x/_tmp/y')) expect.unreachable();
    expect(s3Mock.commandCalls(ListObjectsV2Command).map((call) => call.args[0].input)).toEqual([
      { Bucket: 'acme-landing', Prefix: '' },
    ]);
  });

  it('deletes with DeleteObject (Bucket, Key) and s3:// URIs name the layer bucket', async () => {
    s3Mock.on(DeleteObjectCommand).resolves({});
    const s = store();
    await s.delete({ layer: 'quarantine', key: 'bad/1.json' });
    expect(s3Mock.commandCalls(DeleteObjectCommand)[0]?.args[0].input).toEqual({
      Bucket: 'acme-quarantine',
      Key: 'bad/1.json',
    });
    expect(s.uri({ layer: 'quarantine', key: 'bad/1.json' })).toBe('s3://acme-quarantine/bad/1.json');
  });
});

describe('S3ObjectStore.localPath', () => {
  it('downloads under the whole key, so Hive partition segments reach engines (DuckDB hive_partitioning)', async () => {
    const key = 'hashtags/staging/year=2026/month=03/day=04/part-0.parquet';
    s3Mock.on(GetObjectCommand, { Bucket: 'acme-staging', Key: key }).resolves({
      // The SDK's Node body is an IncomingMessage (a Readable) with mixins the adapter does not use.
      Body: Readable.from([Buffer.from('PAR1')]) as never,
      $metadata: metadata(200),
    });
    const file = await store().localPath({ layer: 'staging', key });
    try {
      expect(file.path.endsWith(`/${key}`)).toBe(true);
      expect(await readFile(file.path, 'utf8')).toBe('PAR1');
    } finally {
      await file.release();
    }
    await expect(access(file.path)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('S3ObjectStore error mapping', () => {
  it('NoSuchKey on GetObject is a NotFoundError naming s3://bucket/key', async () => {
    s3Mock
      .on(GetObjectCommand)
      .rejects(new NoSuchKey({ message: 'The specified key does not exist.', $metadata: metadata(404) }));
    const error = await store()
      .getBytes({ layer: 'staging', key: 'x/y.json' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotFoundError);
    expect((error as Error).message).toBe('object s3://acme-staging/x/y.json does not exist (layer staging)');
    expect((error as Error).cause).toBeInstanceOf(NoSuchKey);
  });

  it('HeadObject 404 NotFound is undefined; 403 is access_denied', async () => {
    s3Mock
      .on(HeadObjectCommand)
      .rejectsOnce(new NotFound({ message: 'Not Found', $metadata: metadata(404) }))
      .rejectsOnce(
        new S3ServiceException({
          name: 'Forbidden',
          $fault: 'client',
          message: 'Forbidden',
          $metadata: metadata(403),
        }),
      );
    expect(await store().head({ layer: 'staging', key: 'gone' })).toBeUndefined();
    const error = await store()
      .head({ layer: 'staging', key: 'secret' })
      .catch((e: unknown) => e);
    expect((error as SluiceError).code).toBe('access_denied');
    expect((error as Error).message).toContain('s3://acme-staging/secret');
    expect((error as Error).message).toContain('layer staging');
  });

  it('AccessDenied on PutObject is access_denied naming bucket and layer, not retryable', async () => {
    s3Mock.on(PutObjectCommand).rejects(
      new S3ServiceException({
        name: 'AccessDenied',
        $fault: 'client',
        message: 'Access Denied',
        $metadata: metadata(403),
      }),
    );
    const error = (await store()
      .put({ layer: 'landing', key: 'in/1.gz' }, 'x')
      .catch((e: unknown) => e)) as SluiceError;
    expect(error).toBeInstanceOf(SluiceError);
    expect(error.code).toBe('access_denied');
    expect(error.retryable).toBe(false);
    expect(error.message).toBe(
      'access denied: PutObject of s3://acme-landing/in/1.gz in S3 bucket "acme-landing" (bucket of layer landing); the caller\'s IAM policy must allow it on arn:aws:s3:::acme-landing',
    );
  });

  it('NoSuchBucket on ListObjectsV2 is bucket_not_found naming bucket and layer', async () => {
    s3Mock
      .on(ListObjectsV2Command)
      .rejects(
        new NoSuchBucket({ message: 'The specified bucket does not exist', $metadata: metadata(404) }),
      );
    const error = await (async () => {
      for await (const _ of store().list('analytical', 'tables/')) expect.unreachable();
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SluiceError);
    expect(error).not.toBeInstanceOf(NotFoundError);
    expect((error as SluiceError).code).toBe('bucket_not_found');
    expect((error as Error).message).toContain(
      'S3 bucket "acme-analytical" (bucket of layer analytical) does not exist',
    );
    expect((error as Error).message).toContain('SLUICE_BUCKET_ANALYTICAL');
  });

  it('a write-only role (HeadObject denied) still gets metadata and an event from the write itself', async () => {
    s3Mock.on(PutObjectCommand).resolves({ ETag: '"5eb63bbbe01eeed093cb22bb8f5acdc3"' });
    s3Mock.on(HeadObjectCommand).rejects(
      new S3ServiceException({
        name: 'Forbidden',
        $fault: 'client',
        message: 'Forbidden',
        $metadata: metadata(403),
      }),
    );
    const s = store();
    const records: S3EventRecord[] = [];
    s.onObjectCreated((record) => records.push(record));
    const info = await s.put(
      { layer: 'landing', key: 'in/h.txt' },
      Readable.from([Buffer.from('hello'), Buffer.from(' world')]),
    );
    expect(info).toEqual({
      layer: 'landing',
      key: 'in/h.txt',
      size: 11,
      etag: '5eb63bbbe01eeed093cb22bb8f5acdc3',
      lastModified: clock.now(),
    });
    expect(records.map((r) => [r.s3.object.size, r.s3.object.eTag])).toEqual([
      [11, '5eb63bbbe01eeed093cb22bb8f5acdc3'],
    ]);
  });

  it('SlowDown (503) left after SDK retries is a retryable s3_unavailable', async () => {
    s3Mock.on(PutObjectCommand).rejects(
      new S3ServiceException({
        name: 'SlowDown',
        $fault: 'server',
        message: 'Please reduce your request rate.',
        $metadata: metadata(503),
      }),
    );
    const error = (await store()
      .put({ layer: 'staging', key: 'k' }, 'x')
      .catch((e: unknown) => e)) as SluiceError;
    expect(error.code).toBe('s3_unavailable');
    expect(error.retryable).toBe(true);
    expect(error.message).toContain('s3://acme-staging/k');
  });

  it('a failing body stream surfaces its own error', async () => {
    s3Mock.on(PutObjectCommand).resolves({});
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(1);
      throw new Error('source went away');
    }
    await expect(store().put({ layer: 'staging', key: 'k' }, broken())).rejects.toThrow('source went away');
  });

  it('refuses bad options and invalid keys', async () => {
    expect(() => new S3ObjectStore(client, { buckets, region: 'eu-west-1', partSize: 4 * MiB })).toThrow(
      /partSize/,
    );
    expect(() => new S3ObjectStore(client, { buckets, region: 'eu-west-1', listPageSize: 0 })).toThrow(
      /listPageSize/,
    );
    expect(
      () => new S3ObjectStore(client, { buckets: { ...buckets, staging: '' }, region: 'eu-west-1' }),
    ).toThrow(/staging/);
    await expect(store().put({ layer: 'staging', key: 'a/../b' }, 'x')).rejects.toThrow(/key/);
    expect(s3Mock.calls()).toHaveLength(0);
  });
});
