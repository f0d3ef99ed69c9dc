import type { BigIntStats, Dirent } from 'node:fs';
import { lstat, mkdir, readdir } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { type FSWatcher, watch } from 'chokidar';
import { encodeEventKey, nextEventSequencer, type S3EventRecord } from '../../core/events.ts';
import { assertValidKey, isHiddenKey, isLayer, type Layer } from '../../core/layer.ts';
import { type Logger, silentLogger } from '../../core/logger.ts';
import { LocalObjectStore, localEtag } from './local-object-store.ts';

/** Default {@link LocalObjectWatcherOptions.stabilityMs}: a file's size must hold still this long, in ms. */
export const DEFAULT_STABILITY_MS = 300;

/** Default {@link LocalObjectWatcherOptions.pollMs}: how often a growing file's size is checked, in ms. */
export const DEFAULT_POLL_MS = 50;

/** Options of {@link LocalObjectWatcher}. */
export interface LocalObjectWatcherOptions {
  /** The lake directory (`<home>/lake`); made absolute. Layer directories are created by `start`. */
  lakeRoot: string;
  /** The layers to watch (`<lakeRoot>/<layer>/`, recursively). */
  layers: Layer[];
  /**
   * How long, in ms, a new or changed file's size must stay the same before it counts as
   * complete (chokidar `awaitWriteFinish.stabilityThreshold`; default 300). A copy that pauses
   * longer than this between writes fires early, with a later event when it grows again.
   */
  stabilityMs?: number;
  /** How often, in ms, the size of a file being written is polled (default 50). */
  pollMs?: number;
  /** Receives watcher errors and failing listeners (default: silent). */
  logger?: Logger;
}

function errorCode(error: unknown): string | undefined {
  return error instanceof Error && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
}

/**
 * Watches the local lake's layer directories (`<lakeRoot>/<layer>/`) with chokidar and emits an
 * S3-shaped `ObjectCreated:Put` event for every file that appears or changes there, whoever
 * wrote it: sluice's {@link LocalObjectStore} (which emits its own event as well: consumers
 * deduplicate on key and ETag) or a person copying a file into `landing/<pipeline>/`.
 *
 * Mirrors S3 event notifications:
 * - no event for objects that existed before {@link start} (S3 notifies only objects created
 *   after the notification configuration); {@link scan} lists them for a catch-up instead;
 * - an event only for complete objects: a file fires once its size has not changed for
 *   `stabilityMs` (chokidar `awaitWriteFinish`), so a copy in progress does not fire; in-progress
 *   and temporary names (a segment starting with `_` or `.`, `*.part`, `<layer>/_sluice_tmp/`)
 *   never fire;
 * - delivery is at least once: a rewrite, a touch or a copy that stalls longer than
 *   `stabilityMs` can fire again, and the object store's own event duplicates this one.
 *
 * Records are built as {@link LocalObjectStore} builds them: bucket = layer name
 * (`arn:aws:s3:::<layer>`), `eventSource: 'sluice:local'`, `awsRegion: 'local'`, URL-encoded key
 * ({@link encodeEventKey}), size in bytes, ETag from {@link localEtag} (so it equals
 * {@link LocalObjectStore.head}'s for the same file) and an increasing sequencer. `eventTime` is
 * the file's ctime: when it last reached its current state (written, renamed into place, or
 * copied even with preserved timestamps), the local counterpart of "S3 finished the request".
 * The write-to-event latency is thus `Date.parse(record.eventTime)` subtracted from the time the
 * listener runs (it includes `stabilityMs`).
 *
 * Only regular files are objects: symbolic links are neither followed nor reported.
 */
export class LocalObjectWatcher {
  /** Absolute path of the lake directory. */
  readonly lakeRoot: string;
  /** The watched layers. */
  readonly layers: readonly Layer[];
  private readonly stabilityMs: number;
  private readonly pollMs: number;
  private readonly logger: Logger;
  private readonly store: LocalObjectStore;
  private readonly listeners = new Set<{ listener: (record: S3EventRecord) => void }>();
  private readonly pending = new Set<Promise<void>>();
  /** ETag last reported per file path, so a file found again (see `addDir`) is not reported twice. */
  private readonly reported = new Map<string, string>();
  private readonly rescans = new Set<NodeJS.Timeout>();
  private watcher: FSWatcher | undefined;
  private state: 'new' | 'started' | 'closed' = 'new';

  /**
   * @throws {Error} on an unknown layer or a `stabilityMs`/`pollMs` that is not a positive
   *   finite number of ms.
   */
  constructor(options: LocalObjectWatcherOptions) {
    this.lakeRoot = resolve(options.lakeRoot);
    for (const layer of options.layers) {
      if (!isLayer(layer)) throw new Error(`unknown layer "${String(layer)}"`);
    }
    this.layers = [...new Set(options.layers)];
    this.stabilityMs = positiveMs('stabilityMs', options.stabilityMs ?? DEFAULT_STABILITY_MS);
    this.pollMs = positiveMs('pollMs', options.pollMs ?? DEFAULT_POLL_MS);
    this.logger = (options.logger ?? silentLogger).child({ component: 'object-watcher' });
    this.store = new LocalObjectStore(this.lakeRoot);
  }

  /**
   * Registers `listener` for object-created events; returns its unsubscribe function. Each
   * listener gets its own record. A listener that throws (or returns a rejected promise) is
   * logged and does not affect the others.
   */
  onObjectCreated(listener: (record: S3EventRecord) => void): () => void {
    const entry = { listener };
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  /**
   * Creates the watched layer directories when missing and starts watching them; resolves once
   * the existing tree has been read (chokidar `ready`), from which point every new or changed
   * file is reported. Files present before are not (see {@link scan}).
   * @throws {Error} when already started or closed, or when a layer directory cannot be created.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`object watcher on ${this.lakeRoot} is already ${this.state}`);
    this.state = 'started';
    const dirs = this.layers.map((layer) => join(this.lakeRoot, layer));
    await Promise.all(dirs.map((dir) => mkdir(dir, { recursive: true })));
    const watcher = watch(dirs, {
      ignoreInitial: true,
      followSymlinks: false,
      awaitWriteFinish: { stabilityThreshold: this.stabilityMs, pollInterval: this.pollMs },
      ignored: (path, stats) => this.ignored(path, stats?.isFile() ?? false),
    });
    this.watcher = watcher;
    const onFile = (path: string) => {
      const handled = this.handle(path).catch((error: unknown) => {
        this.logger.warn({ path, error: String(error) }, 'could not report a file of the lake');
      });
      this.pending.add(handled);
      void handled.finally(() => this.pending.delete(handled));
    };
    watcher.on('add', onFile);
    watcher.on('change', onFile);
    // chokidar can miss a file that lands in a directory right after the directory was created
    // (before its watch is in place), which happens under load: once a new directory's files
    // had time to settle, read it again and report what was not reported yet.
    watcher.on('unlink', (path) => this.reported.delete(path));
    watcher.on('addDir', (dir) => {
      const timer = setTimeout(
        () => {
          this.rescans.delete(timer);
          if (this.state !== 'started') return;
          const rescanned = this.rescanDir(dir, onFile).catch((error: unknown) => {
            this.logger.warn({ dir, error: String(error) }, 'could not re-read a new lake directory');
          });
          this.pending.add(rescanned);
          void rescanned.finally(() => this.pending.delete(rescanned));
        },
        this.stabilityMs * 2 + this.pollMs,
      );
      this.rescans.add(timer);
    });
    watcher.on('error', (error) => {
      this.logger.warn({ error: String(error) }, 'lake watcher error');
    });
    await new Promise<void>((resolveReady) => watcher.once('ready', resolveReady));
  }

  /**
   * Stops watching and waits for events being prepared to be delivered; no event follows.
   * Idempotent.
   */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const timer of this.rescans) clearTimeout(timer);
    this.rescans.clear();
    await this.watcher?.close();
    await Promise.all([...this.pending]);
    this.listeners.clear();
  }

  /**
   * Records for the objects that exist now in `layer` under `prefix` (`''` for all), in
   * ascending key order, without hidden or in-progress files (exactly
   * {@link LocalObjectStore.list}): the input of a catch-up after a start, for objects created
   * while nothing was watching. Their `eventTime` is the object's last-modification time.
   * Works whether or not the watcher is started, for any layer.
   */
  async *scan(layer: Layer, prefix: string): AsyncIterable<S3EventRecord> {
    for await (const info of this.store.list(layer, prefix)) {
      yield record(layer, info.key, info.size, info.etag, info.lastModified);
    }
  }

  /** Hands every regular file under `dir` (recursively, hidden paths skipped) to `onFile`. */
  private async rescanDir(dir: string, onFile: (path: string) => void): Promise<void> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      const code = errorCode(error);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw error;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (this.ignored(path, entry.isFile())) continue;
      if (entry.isDirectory()) await this.rescanDir(path, onFile);
      else if (entry.isFile()) onFile(path);
    }
  }

  /** chokidar's `ignored`: hidden or in-progress paths inside a layer directory. */
  private ignored(path: string, isFile: boolean): boolean {
    const rel = relative(this.lakeRoot, path);
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return false;
    const [, ...segments] = rel.split(sep);
    if (segments.length === 0) return false;
    if (segments.some((s) => s.startsWith('_') || s.startsWith('.'))) return true;
    return isFile && rel.endsWith('.part');
  }

  /** Stats a reported file and emits its record, unless it is hidden, gone or not a regular file. */
  private async handle(path: string): Promise<void> {
    if (this.state !== 'started') return;
    const rel = relative(this.lakeRoot, path);
    const [layer, ...segments] = rel.split(sep);
    if (layer === undefined || !isLayer(layer) || !this.layers.includes(layer) || segments.length === 0)
      return;
    const key = segments.join('/');
    if (isHiddenKey(key)) return;
    try {
      assertValidKey(key);
    } catch (error) {
      this.logger.warn({ path, error: String(error) }, 'ignoring a file whose name is no valid object key');
      return;
    }
    let stats: BigIntStats;
    try {
      stats = await lstat(path, { bigint: true });
    } catch (error) {
      const code = errorCode(error);
      if (code === 'ENOENT' || code === 'ENOTDIR') return; // removed or replaced meanwhile
      throw error;
    }
    if (!stats.isFile() || this.state !== 'started') return;
    const eventTime = new Date(Number(stats.ctimeNs / 1_000_000n));
    const eTag = localEtag(stats);
    if (this.reported.get(path) === eTag) return; // already reported in this state
    this.reported.set(path, eTag);
    this.emit(record(layer, key, Number(stats.size), eTag, eventTime));
  }

  private emit(base: S3EventRecord): void {
    for (const { listener } of [...this.listeners]) {
      const copy = structuredClone(base);
      try {
        const result: unknown = listener(copy);
        if (result instanceof Promise) {
          result.catch((error: unknown) => this.listenerFailed(copy, error));
        }
      } catch (error) {
        this.listenerFailed(copy, error);
      }
    }
  }

  private listenerFailed(record: S3EventRecord, error: unknown): void {
    this.logger.warn(
      { bucket: record.s3.bucket.name, key: record.s3.object.key, error: String(error) },
      'an object-created listener failed',
    );
  }
}

/** An `ObjectCreated:Put` record as {@link LocalObjectStore} emits it. */
function record(layer: Layer, key: string, size: number, eTag: string, eventTime: Date): S3EventRecord {
  return {
    eventVersion: '2.1',
    eventSource: 'sluice:local',
    awsRegion: 'local',
    eventTime: eventTime.toISOString(),
    eventName: 'ObjectCreated:Put',
    s3: {
      s3SchemaVersion: '1.0',
      bucket: { name: layer, arn: `arn:aws:s3:::${layer}` },
      object: { key: encodeEventKey(key), size, eTag, sequencer: nextEventSequencer() },
    },
  };
}

function positiveMs(name: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new Error(`object watcher: ${name} must be a positive number of ms, got ${String(value)}`);
  }
  return value;
}
