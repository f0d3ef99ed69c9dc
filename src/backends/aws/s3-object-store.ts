import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { type Clock, systemClock } from '../../core/clock.ts';
import { NotFoundError, SluiceError } from '../../core/errors.ts';
import {
  deliverObjectCreated,
  encodeEventKey,
  nextEventSequencer,
  type S3EventRecord,
} from '../../core/events.ts';
import {
  assertValidKey,
  isHiddenKey,
  isLayer,
  LAYERS,
  type Layer,
  type ObjectRef,
} from '../../core/layer.ts';
import type {
  LocalObjectFile,
  ObjectBody,
  ObjectInfo,
  ObjectStore,
  ObjectStoreCapabilities,
} from '../../core/ports/object-store.ts';
import { makeScratchDir, scratchName, sweepDeadScratch } from '../scratch.ts';

/** Default multipart part size: 8 MiB (S3's minimum is 5 MiB, its maximum 5 GiB, at most 10,000 parts). */
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;

/** Default number of parts uploaded concurrently (lib-storage's default); memory ≈ partSize × queueSize. */
export const DEFAULT_QUEUE_SIZE = 4;

/**
 * Name of the directory under the scratch root (`scratchRoot ?? os.tmpdir()`) holding this
 * adapter's local scratch directories and downloads: `<root>/sluice-s3-scratch/<bucket>/`.
 */
export const S3_SCRATCH_DIR = 'sluice-s3-scratch';

/** Options of {@link S3ObjectStore}. */
export interface S3ObjectStoreOptions {
  /** The bucket of each layer (one bucket per layer). */
  readonly buckets: Readonly<Record<Layer, string>>;
  /** AWS region of the buckets, e.g. `eu-west-1`; stamped as `awsRegion` on events. */
  readonly region: string;
  /** Stamps `eventTime` of object-created events (default: the system clock). */
  readonly clock?: Clock;
  /** Directory for local scratch directories and `localPath` downloads (default `os.tmpdir()`; `/tmp` on Lambda). */
  readonly scratchRoot?: string;
  /** Multipart part size in bytes (default {@link DEFAULT_PART_SIZE}; at least 5 MiB). */
  readonly partSize?: number;
  /** Parts uploaded concurrently per write (default {@link DEFAULT_QUEUE_SIZE}). */
  readonly queueSize?: number;
  /** `MaxKeys` of each ListObjectsV2 page (1-1000; default: S3's 1,000). Small values only to test paging. */
  readonly listPageSize?: number;
}

/** Passes `source` through as Uint8Arrays, adding their byte lengths to `counter.bytes`. */
async function* countBytes(
  source: AsyncIterable<Uint8Array | string>,
  counter: { bytes: number },
): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    counter.bytes += bytes.byteLength;
    yield bytes;
  }
}

/** An ETag without its surrounding double quotes (S3 returns `"<hex>"` or `"<hex>-<parts>"`). */
function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/^"|"$/g, '');
}

/** The fields of an AWS SDK v3 service error this adapter looks at. */
interface AwsErrorLike {
  name?: string;
  Code?: string;
  $fault?: 'client' | 'server';
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: number };
  code?: string;
}

/** Error codes (S3 error code or SDK error name) that mean "try again later". */
const RETRYABLE_CODES = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'Throttling',
  'ThrottlingException',
  'TimeoutError',
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
]);

/**
 * The {@link ObjectStore} on Amazon S3: one bucket per lake layer; an object `layer/key` is
 * `s3://<buckets[layer]>/<key>`.
 *
 * - `put` writes with a single PutObject for in-memory bodies up to the part size, otherwise
 *   streams with lib-storage's `Upload` (multipart in `partSize` parts, `queueSize` in flight;
 *   a failed multipart upload is aborted so no parts are left). S3 writes are atomic: readers see
 *   the old object or the new one (https://docs.aws.amazon.com/AmazonS3/latest/userguide/Welcome.html#ConsistencyModel).
 * - After each write a HeadObject reads the stored size, ETag and LastModified, and one
 *   S3-shaped event (`eventSource: 'aws:s3'`, the real bucket, `ObjectCreated:Put` or
 *   `ObjectCreated:CompleteMultipartUpload`) goes to in-process listeners. Deployed, S3 itself
 *   notifies Lambda; these in-process events keep the port's contract for code listening in the
 *   same process.
 * - `list` pages through ListObjectsV2 and relies on S3 returning keys "in UTF-8 binary order"
 *   (ListObjectsV2 API reference; true of general purpose buckets, not of directory buckets),
 *   filtering hidden keys client-side.
 * - No rename: `capabilities.atomicRename` and `localFiles` are `false`; `putFile` uploads and
 *   `localPath` downloads to a temporary file. Scratch directories are local, under
 *   `<scratchRoot>/sluice-s3-scratch/<bucket>/` (nothing temporary is written to the bucket).
 *
 * Errors: a missing object (NoSuchKey, 404) is a {@link NotFoundError} naming `s3://bucket/key`;
 * NoSuchBucket and AccessDenied are {@link SluiceError}s (`bucket_not_found`, `access_denied`)
 * naming the bucket and the layer; throttling, 5xx and network failures left after the SDK's own
 * retries are retryable `s3_unavailable` SluiceErrors. Errors of the body stream given to `put`
 * are rethrown as they are.
 *
 * Credentials come only from the SDK client passed in (its default provider chain).
 */
export class S3ObjectStore implements ObjectStore {
  readonly capabilities: ObjectStoreCapabilities = { atomicRename: false, localFiles: false };
  /** The bucket of each layer. */
  readonly buckets: Readonly<Record<Layer, string>>;
  /** The buckets' region. */
  readonly region: string;
  private readonly client: S3Client;
  private readonly clock: Clock;
  private readonly scratchRoot: string;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly listPageSize: number | undefined;
  private readonly listeners = new Set<{ listener: (record: S3EventRecord) => void }>();

  /**
   * @param client an S3 client (for s3rver: path style, `requestChecksumCalculation` and
   *   `responseChecksumValidation` `WHEN_REQUIRED`, see `clientOptions` in ./clients.ts).
   * @param options buckets, region and tuning (see {@link S3ObjectStoreOptions}).
   * @throws {Error} when a layer has no bucket or a size option is out of range.
   */
  constructor(client: S3Client, options: S3ObjectStoreOptions) {
    for (const layer of ['landing', 'staging', 'analytical', 'quarantine'] as const) {
      if (!options.buckets[layer]) throw new Error(`S3ObjectStore: no bucket for layer "${layer}"`);
    }
    const partSize = options.partSize ?? DEFAULT_PART_SIZE;
    if (!Number.isInteger(partSize) || partSize < 5 * 1024 * 1024)
      throw new Error(`S3ObjectStore: partSize must be an integer of at least 5 MiB, got ${partSize}`);
    const pageSize = options.listPageSize;
    if (pageSize !== undefined && (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000))
      throw new Error(`S3ObjectStore: listPageSize must be an integer from 1 to 1000, got ${pageSize}`);
    this.client = client;
    this.buckets = { ...options.buckets };
    this.region = options.region;
    this.clock = options.clock ?? systemClock;
    this.scratchRoot = resolve(options.scratchRoot ?? tmpdir());
    this.partSize = partSize;
    this.queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
    this.listPageSize = pageSize;
  }

  /**
   * Stores `body` as `ref`. Strings and byte arrays up to the part size go in one PutObject with
   * `ContentLength`; larger ones and streams go through lib-storage `Upload`, which sends one
   * PutObject when the stream ends within the first part and a multipart upload otherwise
   * (CreateMultipartUpload, UploadPart × n, CompleteMultipartUpload; AbortMultipartUpload on
   * failure). Memory use is at most about `partSize × queueSize`.
   * @returns the stored object's metadata (HeadObject after the write).
   * @throws {Error} on an invalid key; the body stream's own error when it fails (nothing is stored).
   * @throws {SluiceError} for S3 failures (see the class doc).
   */
  async put(ref: ObjectRef, body: ObjectBody): Promise<ObjectInfo> {
    const bucket = this.bucketOf(ref);
    const inMemory =
      typeof body === 'string' ? Buffer.from(body, 'utf8') : body instanceof Uint8Array ? body : undefined;
    if (inMemory !== undefined && inMemory.byteLength <= this.partSize) {
      const output = await this.send('PutObject', ref, () =>
        this.client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: ref.key,
            Body: inMemory,
            ContentLength: inMemory.byteLength,
          }),
        ),
      );
      return this.created(ref, 'ObjectCreated:Put', unquote(output.ETag), inMemory.byteLength);
    }
    if (inMemory !== undefined) return this.upload(ref, inMemory, inMemory.byteLength);
    const counter = { bytes: 0 };
    return this.upload(
      ref,
      Readable.from(countBytes(body as AsyncIterable<Uint8Array>, counter)),
      undefined,
      counter,
    );
  }

  /**
   * Uploads the local file `localPath` as `ref` (streamed, multipart above the part size); with
   * `move`, removes the local file once the upload completed. S3 has no rename, so this is never
   * atomic with respect to the local file: a crash between upload and unlink leaves both.
   * @throws {NotFoundError} when `localPath` does not exist.
   * @throws {Error} on an invalid key or when `localPath` is not a regular file.
   */
  async putFile(ref: ObjectRef, localPath: string, options: { move?: boolean } = {}): Promise<ObjectInfo> {
    this.bucketOf(ref);
    const source = resolve(localPath);
    let size: number;
    try {
      const stats = await stat(source);
      if (!stats.isFile()) throw new Error(`cannot upload ${source} as ${this.uri(ref)}: not a file`);
      size = stats.size;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR')
        throw new NotFoundError(`local file ${source} does not exist (to upload as ${this.uri(ref)})`, {
          cause: error,
        });
      throw error;
    }
    const info = await this.upload(ref, createReadStream(source), size);
    if (options.move) await rm(source, { force: true });
    return info;
  }

  /**
   * A stream of the object's bytes (GetObject; the response body, not buffered). S3 serves the
   * version current when the request arrived, even if it is replaced while streaming.
   * @throws {NotFoundError} naming `s3://bucket/key` when it does not exist.
   */
  async get(ref: ObjectRef): Promise<Readable> {
    const bucket = this.bucketOf(ref);
    const output = await this.send('GetObject', ref, () =>
      this.client.send(new GetObjectCommand({ Bucket: bucket, Key: ref.key })),
    );
    if (!(output.Body instanceof Readable))
      throw new SluiceError(`GetObject of ${this.uri(ref)} returned no Node.js stream`, { code: 's3_body' });
    return output.Body;
  }

  /** The whole object in memory (GetObject). @throws {NotFoundError} naming `s3://bucket/key`. */
  async getBytes(ref: ObjectRef): Promise<Uint8Array> {
    const chunks: Buffer[] = [];
    for await (const chunk of await this.get(ref)) chunks.push(Buffer.from(chunk as Uint8Array));
    return Buffer.concat(chunks);
  }

  /**
   * Downloads the object to `<scratchRoot>/sluice-s3-scratch/<bucket>/get-<pid>-<random>/<key>`:
   * the whole key, so the path ends with it as the local store's does (`<lake>/<layer>/<key>`).
   * Engines see the extension (format detection) and the Hive `name=value/` segments
   * (`read_parquet(..., hive_partitioning = true)` reads partition columns from them; with only
   * the last segment they were lost on S3). Keys are valid ({@link assertValidKey}: no `.`/`..`
   * segments), so the file stays inside the directory. `release` removes the directory.
   * Left-overs of crashed processes go with {@link cleanScratch}.
   * @throws {NotFoundError} naming `s3://bucket/key` (nothing is left on disk then).
   */
  async localPath(ref: ObjectRef): Promise<LocalObjectFile> {
    const body = await this.get(ref);
    const dir = join(this.scratchBase(ref.layer), scratchName('get'));
    const release = () => rm(dir, { recursive: true, force: true });
    try {
      const path = join(dir, ...ref.key.split('/'));
      await mkdir(dirname(path), { recursive: true });
      await pipeline(body, createWriteStream(path, { flags: 'wx' }));
      return { path, release };
    } catch (error) {
      body.destroy();
      await release();
      throw error;
    }
  }

  /**
   * Size, ETag (unquoted) and LastModified (HeadObject), or `undefined` on 404. A HEAD response
   * has no body, so a missing bucket also reads as `undefined` here.
   * @throws {SluiceError} on access denied or S3 failures.
   */
  async head(ref: ObjectRef): Promise<ObjectInfo | undefined> {
    const bucket = this.bucketOf(ref);
    try {
      const output = await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: ref.key }));
      return {
        layer: ref.layer,
        key: ref.key,
        size: output.ContentLength ?? 0,
        etag: unquote(output.ETag),
        lastModified: output.LastModified ?? new Date(0),
      };
    } catch (error) {
      const mapped = this.mapError(error, 'HeadObject', ref);
      if (mapped instanceof NotFoundError) return undefined;
      throw mapped;
    }
  }

  /**
   * Objects under `prefix` in ascending UTF-8 byte order (ListObjectsV2, `Prefix`, following
   * `NextContinuationToken`; one page in memory at a time). Unless `includeHidden`, keys with a
   * segment starting with `_` or `.` and `*.part` keys are skipped, and a prefix whose directory
   * part is hidden lists nothing without a request.
   * @throws {SluiceError} `bucket_not_found` / `access_denied` naming the bucket and layer.
   */
  async *list(
    layer: Layer,
    prefix: string,
    options: { includeHidden?: boolean } = {},
  ): AsyncIterable<ObjectInfo> {
    const bucket = this.bucketOf({ layer, key: '' }, false);
    const includeHidden = options.includeHidden ?? false;
    const dirSegments = prefix.split('/').slice(0, -1);
    if (!includeHidden && dirSegments.some((s) => s.startsWith('_') || s.startsWith('.'))) return;
    let token: string | undefined;
    do {
      const page: ListObjectsV2CommandOutput = await this.send('ListObjectsV2', { layer, key: prefix }, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: bucket,
            Prefix: prefix,
            ...(token === undefined ? {} : { ContinuationToken: token }),
            ...(this.listPageSize === undefined ? {} : { MaxKeys: this.listPageSize }),
          }),
        ),
      );
      for (const object of page.Contents ?? []) {
        const key = object.Key;
        if (key === undefined || (!includeHidden && isHiddenKey(key))) continue;
        yield {
          layer,
          key,
          size: object.Size ?? 0,
          etag: unquote(object.ETag),
          lastModified: object.LastModified ?? new Date(0),
        };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  /** Deletes the object (DeleteObject); S3 answers 204 for a missing key too, so this is idempotent. */
  async delete(ref: ObjectRef): Promise<void> {
    const bucket = this.bucketOf(ref);
    await this.send('DeleteObject', ref, () =>
      this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: ref.key })),
    );
  }

  /**
   * A new local directory `<scratchRoot>/sluice-s3-scratch/<bucket>/scratch-<pid>-<random>` for
   * files to upload with {@link putFile}; `release` removes it (idempotent). S3 offers no scratch
   * space in the bucket that `putFile` could rename from, so nothing of it is visible in `list`.
   */
  async scratchDir(layer: Layer): Promise<{ path: string; release(): Promise<void> }> {
    return makeScratchDir(this.scratchBase(layer));
  }

  /**
   * Removes the scratch directories and downloads under `<scratchRoot>/sluice-s3-scratch/<bucket>/`
   * whose process (the pid in their name) no longer runs; those of live processes stay. In-bucket
   * left-overs (incomplete multipart uploads) are for a bucket lifecycle rule
   * (`AbortIncompleteMultipartUpload`), which the deployed stack sets.
   */
  async cleanScratch(layer: Layer): Promise<void> {
    await sweepDeadScratch(this.scratchBase(layer), ['scratch', 'get']);
  }

  /**
   * Registers `listener` for object-created events of this store's writes; returns its
   * unsubscribe function. Listeners run synchronously after each write completed; a throwing or
   * rejecting listener is ignored (the write already succeeded).
   */
  onObjectCreated(listener: (record: S3EventRecord) => void): () => void {
    const entry = { listener };
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  /** The layer whose bucket is `bucket`, or `undefined` for a bucket of no layer of this lake. */
  layerOfBucket(bucket: string): Layer | undefined {
    return LAYERS.find((layer) => this.buckets[layer] === bucket);
  }

  /** `s3://<bucket>/<key>` (the key as is, not encoded). @throws {Error} on an unknown layer. */
  uri(ref: ObjectRef): string {
    return `s3://${this.bucketOf(ref, false)}/${ref.key}`;
  }

  /** The layer's bucket; validates the layer and (by default) the key. */
  private bucketOf(ref: ObjectRef, checkKey = true): string {
    if (!isLayer(ref.layer)) throw new Error(`unknown layer "${String(ref.layer)}"`);
    if (checkKey) assertValidKey(ref.key);
    return this.buckets[ref.layer];
  }

  private scratchBase(layer: Layer): string {
    return join(this.scratchRoot, S3_SCRATCH_DIR, this.bucketOf({ layer, key: '' }, false));
  }

  /** Streams `body` with lib-storage Upload, then reads back the metadata and emits the event. */
  private async upload(
    ref: ObjectRef,
    body: Readable | Uint8Array,
    size: number | undefined,
    counter?: { bytes: number },
  ): Promise<ObjectInfo> {
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucketOf(ref),
        Key: ref.key,
        Body: body,
        ...(size === undefined ? {} : { ContentLength: size }),
      },
      partSize: this.partSize,
      queueSize: this.queueSize,
      leavePartsOnError: false,
    });
    let output: { ETag?: string | undefined };
    try {
      output = await upload.done();
    } catch (error) {
      if (body instanceof Readable && !body.destroyed) body.destroy();
      throw this.mapError(error, upload.uploadId ? 'multipart upload' : 'PutObject', ref);
    }
    const eventName = upload.uploadId ? 'ObjectCreated:CompleteMultipartUpload' : 'ObjectCreated:Put';
    return this.created(ref, eventName, unquote(output.ETag), size ?? counter?.bytes ?? 0);
  }

  /**
   * Reads the stored metadata (HeadObject) and emits the event. Should another writer replace the
   * object in between, the event still carries this write's ETag. HeadObject needs
   * `s3:GetObject`: for a write-only role (access denied) the metadata comes from the write itself
   * (`size` bytes sent, the response's ETag, `lastModified` from the clock).
   */
  private async created(
    ref: ObjectRef,
    eventName: 'ObjectCreated:Put' | 'ObjectCreated:CompleteMultipartUpload',
    etag: string,
    size: number,
  ): Promise<ObjectInfo> {
    let info: ObjectInfo | undefined;
    try {
      info = await this.head(ref);
    } catch (error) {
      if (!(error instanceof SluiceError && error.code === 'access_denied' && etag !== '')) throw error;
      info = { layer: ref.layer, key: ref.key, size, etag, lastModified: this.clock.now() };
    }
    if (!info)
      throw new SluiceError(
        `object ${this.uri(ref)} (layer ${ref.layer}) is missing right after it was written`,
        {
          code: 's3_inconsistent',
          retryable: true,
        },
      );
    this.emit(info, eventName, etag || info.etag);
    return info;
  }

  private emit(info: ObjectInfo, eventName: S3EventRecord['eventName'], etag: string): void {
    const bucket = this.buckets[info.layer];
    const eventTime = this.clock.now().toISOString();
    const sequencer = nextEventSequencer();
    for (const { listener } of [...this.listeners]) {
      const record: S3EventRecord = {
        eventVersion: '2.1',
        eventSource: 'aws:s3',
        awsRegion: this.region,
        eventTime,
        eventName,
        s3: {
          s3SchemaVersion: '1.0',
          bucket: { name: bucket, arn: `arn:aws:s3:::${bucket}` },
          object: { key: encodeEventKey(info.key), size: info.size, eTag: etag, sequencer },
        },
      };
      deliverObjectCreated(listener, record);
    }
  }

  /** Runs one S3 call, mapping its errors (see {@link mapError}). */
  private async send<T>(operation: string, ref: ObjectRef, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw this.mapError(error, operation, ref);
    }
  }

  /**
   * Maps an S3 error to sluice's errors (codes from the S3 API reference "Error responses"):
   * NoSuchKey / 404 NotFound → NotFoundError; NoSuchBucket → `bucket_not_found`; AccessDenied /
   * 403 → `access_denied`; throttling, 5xx, timeouts and network errors → retryable
   * `s3_unavailable`; other service errors → `s3_error`. Errors that are not from S3 (e.g. the
   * caller's body stream failing) are returned unchanged.
   */
  private mapError(error: unknown, operation: string, ref: ObjectRef): Error {
    if (error instanceof SluiceError) return error;
    if (!(error instanceof Error)) return new SluiceError(String(error));
    const aws = error as Error & AwsErrorLike;
    const code = aws.Code ?? aws.name;
    const status = aws.$metadata?.httpStatusCode;
    const bucket = this.buckets[ref.layer];
    const where =
      ref.key === '' || operation === 'ListObjectsV2' ? `s3://${bucket}/${ref.key}*` : this.uri(ref);
    const layerNote = `(bucket of layer ${ref.layer})`;
    const notFound =
      operation !== 'ListObjectsV2' &&
      (code === 'NoSuchKey' ||
        code === 'NotFound' ||
        (status === 404 && code !== 'NoSuchBucket' && code !== 'NoSuchUpload'));
    if (notFound)
      return new NotFoundError(`object ${this.uri(ref)} does not exist (layer ${ref.layer})`, {
        cause: error,
      });
    if (code === 'NoSuchBucket')
      return new SluiceError(
        `S3 bucket "${bucket}" ${layerNote} does not exist: ${operation} of ${where} failed; check the backend's bucket configuration (SLUICE_BUCKET_${ref.layer.toUpperCase()})`,
        { code: 'bucket_not_found', cause: error },
      );
    if (code === 'AccessDenied' || code === 'Forbidden' || status === 403)
      return new SluiceError(
        `access denied: ${operation} of ${where} in S3 bucket "${bucket}" ${layerNote}; the caller's IAM policy must allow it on arn:aws:s3:::${bucket}`,
        { code: 'access_denied', cause: error },
      );
    const isService = aws.$metadata !== undefined || aws.$fault !== undefined;
    const retryable =
      RETRYABLE_CODES.has(code ?? '') ||
      RETRYABLE_CODES.has(aws.code ?? '') ||
      aws.$retryable !== undefined ||
      (status !== undefined && status >= 500);
    if (retryable)
      return new SluiceError(
        `S3 ${operation} of ${where} ${layerNote} failed, retry later: ${error.message}`,
        {
          code: 's3_unavailable',
          retryable: true,
          cause: error,
        },
      );
    if (isService)
      return new SluiceError(`S3 ${operation} of ${where} ${layerNote} failed: ${code}: ${error.message}`, {
        code: 's3_error',
        cause: error,
      });
    return error;
  }
}
