import type { Readable } from 'node:stream';
import type { S3EventRecord } from '../events.ts';
import type { Layer, ObjectRef } from '../layer.ts';

/** Metadata of a stored object. */
export interface ObjectInfo extends ObjectRef {
  /** Size in bytes. */
  readonly size: number;
  /** Entity tag: changes whenever the content changes (locally: a hash of size and mtime). */
  readonly etag: string;
  /** Last modification time (UTC). */
  readonly lastModified: Date;
}

/** Bytes accepted by {@link ObjectStore.put}. */
export type ObjectBody = Uint8Array | string | Readable | AsyncIterable<Uint8Array>;

/** What an object-store backend can do; runners check these instead of the backend's type. */
export interface ObjectStoreCapabilities {
  /**
   * `true` when {@link ObjectStore.putFile} with `move` is an atomic rename on the same device
   * (local filesystem). S3 has no rename: it uploads, so commit is by upload/copy.
   */
  readonly atomicRename: boolean;
  /** `true` when {@link ObjectStore.localPath} returns the object's own file (no copy). */
  readonly localFiles: boolean;
}

/** A local file made available for an object (see {@link ObjectStore.localPath}). */
export interface LocalObjectFile {
  /** Absolute path of a readable local file with the object's bytes. */
  readonly path: string;
  /** Frees a temporary copy (no-op when the path is the object itself). */
  release(): Promise<void>;
}

/**
 * Object store port: the lake. Local backend: a directory per layer under `<home>/lake/`;
 * AWS backend: one S3 bucket per layer.
 *
 * Contract (checked by test/conformance/object-store.case.ts against every backend):
 * - writes are atomic: a reader sees the old object or the complete new one, never a part;
 * - every completed write emits one object-created event (S3 notification shape) to listeners;
 * - `list` returns objects under a prefix in ascending key order, never in-progress writes, and,
 *   unless `includeHidden`, no key with a segment (directory or file name) starting with `_` or
 *   `.` (the Hive/Spark/Athena convention for temporary files);
 * - `delete` of a missing object succeeds (idempotent, as S3's DeleteObject).
 */
export interface ObjectStore {
  readonly capabilities: ObjectStoreCapabilities;

  /**
   * Stores bytes under `ref`, replacing any existing object atomically.
   * Streams are consumed without holding the whole body in memory.
   */
  put(ref: ObjectRef, body: ObjectBody): Promise<ObjectInfo>;

  /**
   * Publishes a local file as the object `ref`. With `move: true` the file is moved (a rename
   * when {@link ObjectStoreCapabilities.atomicRename}), otherwise copied or uploaded.
   * The file should come from {@link ObjectStore.scratchDir} for the rename to be possible.
   */
  putFile(ref: ObjectRef, localPath: string, options?: { move?: boolean }): Promise<ObjectInfo>;

  /** Opens a stream of the object's bytes. @throws {NotFoundError} when it does not exist. */
  get(ref: ObjectRef): Promise<Readable>;

  /** Reads the whole object into memory; for small objects only. @throws {NotFoundError} */
  getBytes(ref: ObjectRef): Promise<Uint8Array>;

  /**
   * A local file with the object's bytes, for engines (DuckDB) that read files.
   * Locally this is the object's own file; on S3 a download into a temporary file.
   * @throws {NotFoundError}
   */
  localPath(ref: ObjectRef): Promise<LocalObjectFile>;

  /** Metadata, or `undefined` when the object does not exist. */
  head(ref: ObjectRef): Promise<ObjectInfo | undefined>;

  /** Objects whose key starts with `prefix` (`''` for the whole layer), in ascending key order. */
  list(layer: Layer, prefix: string, options?: { includeHidden?: boolean }): AsyncIterable<ObjectInfo>;

  /** Removes an object; succeeds when it does not exist. */
  delete(ref: ObjectRef): Promise<void>;

  /**
   * A new empty local directory for preparing files that will be published with
   * {@link ObjectStore.putFile} into `layer` (same device as the layer locally, so `move` is a
   * rename). Removed by `release`. Leftovers of crashed runs are hidden from `list` and removed
   * by {@link ObjectStore.cleanScratch}.
   */
  scratchDir(layer: Layer): Promise<{ path: string; release(): Promise<void> }>;

  /**
   * Removes scratch directories left by crashed runs; those of running processes stay, so it is
   * safe to call while other writers work.
   */
  cleanScratch(layer: Layer): Promise<void>;

  /**
   * Registers a listener for object-created events; returns a function that unregisters it.
   * Listeners run after the write is complete and visible.
   */
  onObjectCreated(listener: (record: S3EventRecord) => void): () => void;

  /**
   * The layer whose objects' events name `bucket` (`s3.bucket.name` of an {@link S3EventRecord}):
   * locally the layer's own name, on AWS the layer whose bucket it is; `undefined` for a bucket
   * that is not one of this lake's. Pass it to `matchesTrigger` (src/core/trigger.ts).
   */
  layerOfBucket(bucket: string): Layer | undefined;

  /** A URI for messages and lineage: `file:///...` locally, `s3://bucket/key` on AWS. */
  uri(ref: ObjectRef): string;
}
