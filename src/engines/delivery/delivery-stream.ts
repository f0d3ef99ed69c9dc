import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { Clock } from '../../core/clock.ts';
import type { Layer, ObjectRef } from '../../core/layer.ts';
import { escapePartitionValue } from '../../core/partition.ts';
import type { ObjectStore } from '../../core/ports/object-store.ts';

/**
 * What the transform function returns for one record, as a Firehose data-transformation Lambda
 * does (https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html): `Ok` with the
 * new data (one line, without the newline) and, for dynamic partitioning, the partition keys
 * (`metadata.partitionKeys`); `Dropped` to deliver nothing; `ProcessingFailed` to send the original
 * record to the error output.
 */
export type TransformOutput =
  | {
      readonly result: 'Ok';
      readonly data: string;
      readonly partitionKeys?: Readonly<Record<string, string>>;
    }
  | { readonly result: 'Dropped' }
  | { readonly result: 'ProcessingFailed'; readonly reason: string };

/** The transform-function hook: the record's data (UTF-8) and its arrival time. */
export type DeliveryTransform = (data: string, meta: { readonly arrivalMs: number }) => TransformOutput;

/** Options of {@link DeliveryStream}. */
export interface DeliveryStreamOptions {
  /** Stream name; the first part of every object name. `[A-Za-z0-9_.-]`. */
  readonly name: string;
  readonly objectStore: ObjectStore;
  /** Buffer intervals are measured on this clock (injected: tests move it, nothing sleeps). */
  readonly clock: Clock;
  /** Destination layer (`landing`) and key prefix ending in `/` (`nba/raw/`). */
  readonly layer: Layer;
  readonly prefix: string;
  /**
   * Dynamic partitioning: the partition keys, in path order; each delivered object goes under
   * `<prefix><k1>=<v1>/<k2>=<v2>/`, the values taken from the transform's `partitionKeys`. A record
   * missing one goes to the error output. Empty (default): no partitioning.
   */
  readonly partitionKeys?: readonly string[];
  /**
   * Buffering hints (Firehose `BufferingHints`): a buffer is delivered when it holds at least
   * `sizeBytes` bytes (of delivered, newline-terminated data, before compression) or when
   * `intervalMs` passed since its first record, whichever comes first. Each partition has its own
   * buffer, as with Firehose dynamic partitioning. Defaults: 5 MiB and 300 s (Firehose's).
   */
  readonly buffering?: { readonly sizeBytes?: number; readonly intervalMs?: number };
  /** `gzip` (Firehose `CompressionFormat: GZIP`, `.ndjson.gz`) or `none` (`.ndjson`). Default `gzip`. */
  readonly compression?: 'gzip' | 'none';
  readonly transform?: DeliveryTransform;
  /**
   * Source record backup (Firehose `S3BackupMode: Enabled`): every original record, before the
   * transform, also buffered (one buffer, same hints) and delivered under
   * `<prefix>year=YYYY/month=MM/day=DD/` of the arrival time (UTC) in this layer.
   */
  readonly backup?: { readonly prefix: string };
  /**
   * Error output (Firehose `ErrorOutputPrefix`) for records the transform failed or that lack a
   * partition key: NDJSON lines `{reason, data, arrival}` under `<prefix>processing-failed/`.
   * Default: the `quarantine` layer, `<prefix>` of the destination.
   */
  readonly errorOutput?: { readonly layer: Layer; readonly prefix: string };
}

/** Counts of a {@link DeliveryStream}; `received = delivered + dropped + failed` at all times after a flush. */
export interface DeliveryStats {
  received: number;
  delivered: number;
  dropped: number;
  failed: number;
  /** Bytes of delivered data (newline-terminated, uncompressed). */
  deliveredBytes: number;
}

/** One object the stream wrote. */
export interface DeliveredObject {
  readonly ref: ObjectRef;
  readonly kind: 'data' | 'backup' | 'error';
  readonly records: number;
  /** Uncompressed bytes. */
  readonly bytes: number;
  /** Partition values in key order (data objects with dynamic partitioning). */
  readonly partition?: readonly string[];
  /** Why the buffer was delivered. */
  readonly reason: 'size' | 'interval' | 'flush';
}

interface Buffer_ {
  readonly prefix: string;
  readonly kind: DeliveredObject['kind'];
  readonly partition?: readonly string[];
  readonly openedMs: number;
  lines: string[];
  bytes: number;
}

const NAME_PATTERN = /^[A-Za-z0-9_.-]+$/;

/**
 * A delivery stream, the Amazon Data Firehose analog for the landing layer: records are put one at a
 * time, optionally transformed, buffered per partition by size and time, and delivered as NDJSON
 * objects (one record per line). Buffers are checked against the clock on every `put` and on
 * {@link tick}; there are no timers, so a caller that stops putting should call `tick` (a scheduler
 * does) or `close`, which delivers everything buffered.
 *
 * Object names are `<name>-<yyyy-MM-dd-HH-mm-ss of the buffer's first arrival>-<SHA-256 prefix of
 * the content>.ndjson[.gz]` (Firehose's `<stream>-<version>-<time>-<uuid>` with the uuid replaced by
 * a content hash): a replay of the same records on the same clock writes the same objects, so it
 * replaces them rather than adding copies. Gzip output is deterministic (no mtime in the header).
 */
export class DeliveryStream {
  readonly stats: DeliveryStats = { received: 0, delivered: 0, dropped: 0, failed: 0, deliveredBytes: 0 };
  /** Every object written, in write order. */
  readonly objects: DeliveredObject[] = [];
  private readonly buffers = new Map<string, Buffer_>();
  private readonly sizeBytes: number;
  private readonly intervalMs: number;
  private readonly partitionKeys: readonly string[];
  private readonly errorOutput: { layer: Layer; prefix: string };
  private closed = false;

  constructor(private readonly options: DeliveryStreamOptions) {
    if (!NAME_PATTERN.test(options.name))
      throw new Error(`delivery stream name "${options.name}" must match ${NAME_PATTERN}`);
    for (const p of [options.prefix, options.backup?.prefix, options.errorOutput?.prefix]) {
      if (p !== undefined && p !== '' && !p.endsWith('/')) throw new Error(`prefix "${p}" must end with "/"`);
    }
    this.sizeBytes = options.buffering?.sizeBytes ?? 5 * 1024 * 1024;
    this.intervalMs = options.buffering?.intervalMs ?? 300_000;
    if (!(this.sizeBytes > 0) || !(this.intervalMs > 0)) throw new Error('buffering hints must be positive');
    this.partitionKeys = options.partitionKeys ?? [];
    this.errorOutput = options.errorOutput ?? { layer: 'quarantine', prefix: options.prefix };
  }

  /** Puts one record (its data as UTF-8 text, e.g. a JSON document); delivers buffers that are due. */
  async put(data: string): Promise<void> {
    if (this.closed) throw new Error(`delivery stream ${this.options.name} is closed`);
    const now = this.options.clock.now().getTime();
    await this.deliverDue(now);
    this.stats.received++;
    if (this.options.backup) {
      const arrival = new Date(now).toISOString();
      const prefix = `${this.options.backup.prefix}year=${arrival.slice(0, 4)}/month=${arrival.slice(5, 7)}/day=${arrival.slice(8, 10)}/`;
      await this.append('backup', prefix, undefined, data, now);
    }
    const out: TransformOutput = this.options.transform
      ? safeTransform(this.options.transform, data, now)
      : { result: 'Ok', data };
    if (out.result === 'Dropped') {
      this.stats.dropped++;
      return;
    }
    if (out.result === 'ProcessingFailed') {
      await this.fail(data, out.reason, now);
      return;
    }
    if (out.data.includes('\n')) {
      await this.fail(data, 'the transformed record contains a newline', now);
      return;
    }
    let prefix = this.options.prefix;
    const values: string[] = [];
    for (const key of this.partitionKeys) {
      const value = out.partitionKeys?.[key];
      if (value === undefined || value === '') {
        await this.fail(data, `partition key "${key}" missing from the transform's output`, now);
        return;
      }
      values.push(value);
      prefix += `${key}=${escapePartitionValue(value)}/`;
    }
    this.stats.delivered++;
    this.stats.deliveredBytes += Buffer.byteLength(out.data) + 1;
    await this.append('data', prefix, this.partitionKeys.length > 0 ? values : undefined, out.data, now);
  }

  /** Delivers the buffers whose interval has passed on the clock; returns how many it delivered. */
  async tick(): Promise<number> {
    return this.deliverDue(this.options.clock.now().getTime());
  }

  /** Delivers every buffer now (reason `flush`). */
  async flush(): Promise<void> {
    for (const [id, buffer] of [...this.buffers]) {
      this.buffers.delete(id);
      await this.deliver(buffer, 'flush');
    }
  }

  /** Flushes and refuses further puts. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
  }

  /** Records buffered and not yet delivered (data, backup and error buffers). */
  get buffered(): number {
    let n = 0;
    for (const b of this.buffers.values()) n += b.lines.length;
    return n;
  }

  private async fail(data: string, reason: string, now: number): Promise<void> {
    this.stats.failed++;
    const line = JSON.stringify({ reason, data, arrival: new Date(now).toISOString() });
    await this.append('error', `${this.errorOutput.prefix}processing-failed/`, undefined, line, now);
  }

  private async append(
    kind: Buffer_['kind'],
    prefix: string,
    partition: readonly string[] | undefined,
    line: string,
    now: number,
  ): Promise<void> {
    const id = `${kind}\u0000${prefix}`;
    let buffer = this.buffers.get(id);
    if (!buffer) {
      buffer = { prefix, kind, openedMs: now, lines: [], bytes: 0, ...(partition ? { partition } : {}) };
      this.buffers.set(id, buffer);
    }
    buffer.lines.push(line);
    buffer.bytes += Buffer.byteLength(line) + 1;
    if (buffer.bytes >= this.sizeBytes) {
      this.buffers.delete(id);
      await this.deliver(buffer, 'size');
    }
  }

  private async deliverDue(now: number): Promise<number> {
    let n = 0;
    for (const [id, buffer] of [...this.buffers]) {
      if (now - buffer.openedMs >= this.intervalMs) {
        this.buffers.delete(id);
        await this.deliver(buffer, 'interval');
        n++;
      }
    }
    return n;
  }

  private async deliver(buffer: Buffer_, reason: DeliveredObject['reason']): Promise<void> {
    const text = `${buffer.lines.join('\n')}\n`;
    const sha = createHash('sha256').update(text).digest('hex').slice(0, 16);
    const stamp = new Date(buffer.openedMs).toISOString().slice(0, 19).replace(/[T:]/g, '-');
    const gzip = (this.options.compression ?? 'gzip') === 'gzip';
    const layer = buffer.kind === 'error' ? this.errorOutput.layer : this.options.layer;
    const ref: ObjectRef = {
      layer,
      key: `${buffer.prefix}${this.options.name}-${stamp}-${sha}.ndjson${gzip ? '.gz' : ''}`,
    };
    await this.options.objectStore.put(ref, gzip ? gzipSync(text) : text);
    this.objects.push({
      ref,
      kind: buffer.kind,
      records: buffer.lines.length,
      bytes: Buffer.byteLength(text),
      reason,
      ...(buffer.partition ? { partition: buffer.partition } : {}),
    });
  }
}

function safeTransform(transform: DeliveryTransform, data: string, arrivalMs: number): TransformOutput {
  try {
    return transform(data, { arrivalMs });
  } catch (error) {
    return { result: 'ProcessingFailed', reason: `transform threw: ${(error as Error).message}` };
  }
}
