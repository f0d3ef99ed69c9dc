import { createHash } from 'node:crypto';
import { type BigIntStats, createWriteStream, type Dirent } from 'node:fs';
import { copyFile, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { type Clock, systemClock } from '../../core/clock.ts';
import { NotFoundError } from '../../core/errors.ts';
import {
  deliverObjectCreated,
  encodeEventKey,
  nextEventSequencer,
  type S3EventRecord,
} from '../../core/events.ts';
import {
  assertValidKey,
  formatRef,
  isHiddenSegment,
  isLayer,
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

/**
 * Name of each layer's private directory (`<root>/<layer>/_sluice_tmp/`) for in-progress writes
 * and scratch directories. Hidden from {@link LocalObjectStore.list} (even with `includeHidden`)
 * and refused as an object key's first segment.
 */
export const TMP_DIR = '_sluice_tmp';

function errorCode(error: unknown): string | undefined {
  return error instanceof Error && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
}

/** True for errors meaning "no file there": missing, a path component is a file, or a directory. */
function isNotFound(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

/** Flushes a file's data to disk (`fsync`). */
async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Bytes of an {@link ObjectBody} as something `stream.pipeline` consumes. */
function toSource(body: ObjectBody): Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array> {
  if (typeof body === 'string') return [Buffer.from(body, 'utf8')];
  if (body instanceof Uint8Array) return [body];
  return body;
}

/**
 * The local {@link ObjectStore}: the lake as a directory `<root>` with one subdirectory per layer
 * (`landing`, `staging`, `analytical`, `quarantine`), created on demand; an object `layer/key` is
 * the file `<root>/<layer>/<key>`.
 *
 * Mirrors S3 where the port relies on it:
 * - writes are atomic: bytes go to a temporary `*.part` file in `<root>/<layer>/_sluice_tmp/`,
 *   are fsynced, then renamed into place, so readers see the old file or the complete new one;
 * - each completed `put`/`putFile` emits one S3-shaped `ObjectCreated:Put` event to the listeners
 *   (bucket = layer name, key URL-encoded, increasing sequencer);
 * - `list` walks in ascending key order by UTF-8 bytes (S3 ListObjectsV2), regular files only
 *   (symbolic links are skipped), hiding `_`/`.` segments and `*.part` files unless `includeHidden`;
 * - `delete` is idempotent and, since directories are not objects, removes directories it leaves
 *   empty (up to the layer directory).
 *
 * ETags are an MD5 hex digest of (size, mtime in ns, inode): cheap, and different after every
 * rewrite (the new file is a new inode), but not a content hash as S3's.
 */
export class LocalObjectStore implements ObjectStore {
  readonly capabilities: ObjectStoreCapabilities = { atomicRename: true, localFiles: true };
  /** Absolute path of the lake directory. */
  readonly root: string;
  private readonly clock: Clock;
  private readonly listeners = new Set<{ listener: (record: S3EventRecord) => void }>();

  /**
   * @param root the lake directory (`<home>/lake`); made absolute, created on demand.
   * @param options.clock stamps `eventTime` of events (default: the system clock).
   */
  constructor(root: string, options: { clock?: Clock } = {}) {
    this.root = resolve(root);
    this.clock = options.clock ?? systemClock;
  }

  /**
   * Writes `body` to a temporary file, fsyncs it and renames it onto `<root>/<layer>/<key>`
   * (creating parent directories), then emits the event. Streams are piped, never buffered whole.
   * @throws {Error} on an invalid key (see {@link assertValidKey}) or when the body stream fails
   *   (the temporary file is removed; an existing object stays as it was).
   */
  async put(ref: ObjectRef, body: ObjectBody): Promise<ObjectInfo> {
    const target = this.filePath(ref);
    const temp = await this.tempFile(ref.layer);
    try {
      await pipeline(toSource(body), createWriteStream(temp, { flags: 'wx' }));
      // fsync through a new descriptor: it flushes the file's data all the same (FileHandle
      // streams with autoClose:false keep the handle referenced, so close() would wait forever).
      await fsyncFile(temp);
      await this.commit(temp, target);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    return this.created(ref, target);
  }

  /**
   * Publishes the local file `localPath` as `ref`. With `move`, fsyncs it and renames it into
   * place (atomic; across devices, `EXDEV`, it is copied to a temporary file in the layer,
   * renamed into place, and the source unlinked). Without, copies it via a temporary file.
   * @throws {NotFoundError} when `localPath` does not exist.
   * @throws {Error} on an invalid key or when `localPath` is not a regular file.
   */
  async putFile(ref: ObjectRef, localPath: string, options: { move?: boolean } = {}): Promise<ObjectInfo> {
    const target = this.filePath(ref);
    const source = resolve(localPath);
    try {
      if (!(await stat(source)).isFile())
        throw new Error(`cannot publish ${source} as ${formatRef(ref)}: not a file`);
    } catch (error) {
      if (isNotFound(error)) throw new NotFoundError(`local file ${source} does not exist`, { cause: error });
      throw error;
    }
    if (options.move) {
      await fsyncFile(source);
      try {
        await this.commit(source, target);
        return this.created(ref, target);
      } catch (error) {
        if (errorCode(error) !== 'EXDEV') throw error;
      }
    }
    const temp = await this.tempFile(ref.layer);
    try {
      await copyFile(source, temp);
      await fsyncFile(temp);
      await this.commit(temp, target);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    if (options.move) await rm(source, { force: true });
    return this.created(ref, target);
  }

  /**
   * A read stream of the object's file, opened before returning, so it reads the version that
   * existed then even if the object is replaced meanwhile.
   * @throws {NotFoundError} naming the object when it does not exist.
   */
  async get(ref: ObjectRef): Promise<Readable> {
    const path = this.filePath(ref);
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      if (isNotFound(error)) throw this.notFound(ref, error);
      throw error;
    }
    if (!(await handle.stat()).isFile()) {
      await handle.close();
      throw this.notFound(ref);
    }
    return handle.createReadStream();
  }

  /** The whole object in memory. @throws {NotFoundError} naming the object when it does not exist. */
  async getBytes(ref: ObjectRef): Promise<Uint8Array> {
    try {
      return await readFile(this.filePath(ref));
    } catch (error) {
      if (isNotFound(error)) throw this.notFound(ref, error);
      throw error;
    }
  }

  /** The object's own file (no copy; `release` does nothing). @throws {NotFoundError} */
  async localPath(ref: ObjectRef): Promise<LocalObjectFile> {
    const path = this.filePath(ref);
    if ((await this.stat(path)) === undefined) throw this.notFound(ref);
    return { path, release: async () => {} };
  }

  /** Size, etag and mtime of the object's file, or `undefined` when there is none (S3 HeadObject). */
  async head(ref: ObjectRef): Promise<ObjectInfo | undefined> {
    const path = this.filePath(ref);
    const stats = await this.stat(path);
    return stats && toInfo(ref, stats);
  }

  /**
   * Files under `<root>/<layer>/` whose key starts with `prefix` (a plain string prefix:
   * `gharchive/ev` matches `gharchive/events/...`), recursively, in ascending key order by UTF-8
   * bytes (S3 ListObjectsV2 order). Directories are read lazily, one at a time. Unless
   * `includeHidden`, keys with a segment starting with `_` or `.` and `*.part` files are skipped;
   * `_sluice_tmp/` at the layer root is always skipped (in-progress writes).
   */
  async *list(
    layer: Layer,
    prefix: string,
    options: { includeHidden?: boolean } = {},
  ): AsyncIterable<ObjectInfo> {
    const includeHidden = options.includeHidden ?? false;
    const layerDir = this.layerDir(layer);
    const cut = prefix.lastIndexOf('/') + 1;
    const dirSegments = cut === 0 ? [] : prefix.slice(0, cut - 1).split('/');
    // A prefix whose directory part no valid key can have matches nothing (and must not escape the layer).
    if (dirSegments.some((s) => s === '' || s === '.' || s === '..' || s.includes('\\') || s.includes('\0')))
      return;
    if (dirSegments[0] === TMP_DIR) return;
    if (!includeHidden && dirSegments.some(isHiddenSegment)) return;
    yield* this.walk(
      layer,
      join(layerDir, ...dirSegments),
      prefix.slice(0, cut),
      prefix.slice(cut),
      includeHidden,
    );
  }

  /**
   * Deletes the object's file; succeeds when it does not exist (S3 DeleteObject). Then removes
   * the parent directories left empty, up to the layer directory.
   */
  async delete(ref: ObjectRef): Promise<void> {
    const path = this.filePath(ref);
    try {
      await unlink(path);
    } catch (error) {
      if (isNotFound(error)) return;
      throw error;
    }
    await this.removeEmptyParents(dirname(path), this.layerDir(ref.layer));
  }

  /**
   * A new directory `<root>/<layer>/_sluice_tmp/scratch-<pid>-<random>` on the layer's filesystem,
   * so {@link putFile} with `move` is a rename; `release` removes it with its content.
   */
  async scratchDir(layer: Layer): Promise<{ path: string; release(): Promise<void> }> {
    return makeScratchDir(join(this.layerDir(layer), TMP_DIR));
  }

  /**
   * Removes the scratch directories and temporary files of `<root>/<layer>/_sluice_tmp/` whose
   * process (the pid in their name) no longer runs: what crashed runs left. Those of live
   * processes, this one included, are kept, so it is safe while other writers work.
   */
  async cleanScratch(layer: Layer): Promise<void> {
    await sweepDeadScratch(join(this.layerDir(layer), TMP_DIR), ['scratch', 'put']);
  }

  /**
   * Registers `listener` for object-created events; returns its unsubscribe function. Listeners
   * run synchronously after each write is committed, each with its own record.
   */
  onObjectCreated(listener: (record: S3EventRecord) => void): () => void {
    const entry = { listener };
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  /** Local events name each layer's bucket after the layer itself. */
  layerOfBucket(bucket: string): Layer | undefined {
    return isLayer(bucket) ? bucket : undefined;
  }

  /** `file://` URL of the object's file. @throws {Error} on an invalid key. */
  uri(ref: ObjectRef): string {
    return pathToFileURL(this.filePath(ref)).href;
  }

  private layerDir(layer: Layer): string {
    // Refuse anything else: the layer becomes a path component.
    if (!isLayer(layer)) throw new Error(`unknown layer "${String(layer)}"`);
    return join(this.root, layer);
  }

  private filePath(ref: ObjectRef): string {
    assertValidKey(ref.key);
    const segments = ref.key.split('/');
    if (segments[0] === TMP_DIR)
      throw new Error(`object key "${ref.key}" is reserved: "${TMP_DIR}/" is sluice's`);
    return join(this.layerDir(ref.layer), ...segments);
  }

  private async tempFile(layer: Layer): Promise<string> {
    const dir = join(this.layerDir(layer), TMP_DIR);
    await mkdir(dir, { recursive: true });
    return join(dir, `${scratchName('put')}.part`);
  }

  /**
   * Renames `from` onto `target`, creating parent directories. Retries when a concurrent
   * {@link delete} removed a just-created (empty) parent between `mkdir` and `rename`.
   */
  private async commit(from: string, target: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      await mkdir(dirname(target), { recursive: true });
      try {
        await rename(from, target);
        return;
      } catch (error) {
        if (errorCode(error) !== 'ENOENT' || attempt >= 5 || (await this.stat(from)) === undefined)
          throw error;
      }
    }
  }

  private async created(ref: ObjectRef, path: string): Promise<ObjectInfo> {
    const stats = await this.stat(path);
    if (!stats) throw new Error(`object ${formatRef(ref)} vanished right after it was written`);
    const info = toInfo(ref, stats);
    this.emit(info);
    return info;
  }

  private emit(info: ObjectInfo): void {
    const eventTime = this.clock.now().toISOString();
    const sequencer = nextEventSequencer();
    for (const { listener } of [...this.listeners]) {
      const record: S3EventRecord = {
        eventVersion: '2.1',
        eventSource: 'sluice:local',
        awsRegion: 'local',
        eventTime,
        eventName: 'ObjectCreated:Put',
        s3: {
          s3SchemaVersion: '1.0',
          bucket: { name: info.layer, arn: `arn:aws:s3:::${info.layer}` },
          object: { key: encodeEventKey(info.key), size: info.size, eTag: info.etag, sequencer },
        },
      };
      deliverObjectCreated(listener, record);
    }
  }

  /** Stats of a regular file at `path`, or `undefined` when there is none. */
  private async stat(path: string): Promise<BigIntStats | undefined> {
    try {
      const stats = await stat(path, { bigint: true });
      return stats.isFile() ? stats : undefined;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  private notFound(ref: ObjectRef, cause?: unknown): NotFoundError {
    return new NotFoundError(`object ${formatRef(ref)} does not exist`, cause === undefined ? {} : { cause });
  }

  private async *walk(
    layer: Layer,
    dir: string,
    keyPrefix: string,
    namePrefix: string,
    includeHidden: boolean,
  ): AsyncGenerator<ObjectInfo> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (isNotFound(error)) return; // missing, or removed while listing
      throw error;
    }
    const atLayerRoot = keyPrefix === '';
    const visible = entries
      .filter((entry) => (entry.isFile() || entry.isDirectory()) && entry.name.startsWith(namePrefix))
      .filter((entry) => !(atLayerRoot && entry.name === TMP_DIR))
      .filter(
        (entry) =>
          includeHidden || !(isHiddenSegment(entry.name) || (entry.isFile() && entry.name.endsWith('.part'))),
      )
      // A directory sorts as `name/`: its keys come after `name-x` and before `name0` (UTF-8 order).
      .map((entry) => ({ entry, sortKey: Buffer.from(entry.isDirectory() ? `${entry.name}/` : entry.name) }))
      .sort((a, b) => Buffer.compare(a.sortKey, b.sortKey));
    for (const { entry } of visible) {
      const key = keyPrefix + entry.name;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        yield* this.walk(layer, path, `${key}/`, '', includeHidden);
      } else {
        const stats = await this.stat(path);
        if (stats) yield toInfo({ layer, key }, stats); // else: deleted while listing
      }
    }
  }

  private async removeEmptyParents(dir: string, layerDir: string): Promise<void> {
    let current = dir;
    while (current.startsWith(layerDir + sep)) {
      try {
        await rmdir(current);
      } catch {
        return; // not empty (ENOTEMPTY/EEXIST), already gone, or busy: stop here
      }
      current = dirname(current);
    }
  }
}

/**
 * The ETag of a local object: the MD5 hex digest (32 lowercase hex digits, unquoted) of
 * `<size>:<mtime in ns>:<inode>` of its file's `stat(..., { bigint: true })`. Cheap (no read of
 * the content) and different after every rewrite (a rename into place brings a new inode), but
 * not a content hash as S3's. Shared with the lake's file watcher, so the event of a file seen
 * by both carries the same ETag.
 */
export function localEtag(stats: BigIntStats): string {
  return createHash('md5').update(`${stats.size}:${stats.mtimeNs}:${stats.ino}`).digest('hex');
}

function toInfo(ref: ObjectRef, stats: BigIntStats): ObjectInfo {
  return {
    layer: ref.layer,
    key: ref.key,
    size: Number(stats.size),
    etag: localEtag(stats),
    lastModified: new Date(Number(stats.mtimeMs)),
  };
}
