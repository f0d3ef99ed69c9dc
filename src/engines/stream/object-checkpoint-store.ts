/**
 * Checkpoints of any size: the body is an object in the object store (S3 on AWS, the lake
 * directory locally), the key-value item of the job in {@link JOB_CHECKPOINTS_TABLE} only points
 * at it. This is the store for jobs whose checkpoint exceeds DynamoDB's 400 KB item limit.
 *
 * Layout: `<layer>/<prefix>/<job>/<id>.json` (`.json.gz` with gzip), default layer `staging`
 * (intermediate data of the pipelines; a stream job's state is intermediate too) and prefix
 * `_checkpoints`: the leading `_` hides checkpoints from `list` (crawlers, catalog, table scans)
 * under the Hive/Spark/Athena convention. `<job>` is URI-encoded, `<id>` zero-padded to 16 digits
 * so keys sort by id.
 *
 * Save, in this order, so that a crash anywhere leaves the previous checkpoint loadable:
 * 1. write the object (atomic per the port's contract: a reader never sees a part);
 * 2. switch the pointer item with one conditional put (`not_exists` or `checkpoint_id` < new id,
 *    as {@link KvCheckpointStore}): readers see the old or the new checkpoint, and a slower, older
 *    writer cannot move the pointer back; when the condition fails, the just-written object is
 *    unreferenced and deleted;
 * 3. delete the job's older objects except the one the pointer held before the switch (the
 *    previous checkpoint stays, for inspection or a manual rollback) and any newer than ours.
 * A crash between 1 and 2 leaves an unreferenced object; the next save's step 3 removes it (or
 * rewrites it: a job restored from checkpoint N numbers its next one N + 1).
 *
 * @module
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { ConditionFailedError } from '../../core/errors.ts';
import type { Layer, ObjectRef } from '../../core/layer.ts';
import type { KvStore, KvTable } from '../../core/ports/kv-table.ts';
import type { ObjectStore } from '../../core/ports/object-store.ts';
import { type CheckpointStore, idOfCheckpointText, JOB_CHECKPOINTS_TABLE } from './checkpoint-store.ts';
import type { Checkpoint } from './data-stream.ts';
import { parseCheckpoint, serializeCheckpoint } from './serialized-checkpoint.ts';

/** Options of {@link ObjectStoreCheckpointStore}. */
export interface ObjectStoreCheckpointStoreOptions {
  /** Where checkpoint bodies go. */
  readonly objects: ObjectStore;
  /** Where the pointer items go ({@link JOB_CHECKPOINTS_TABLE}). */
  readonly kv: KvStore;
  /** Default `staging`. */
  readonly layer?: Layer;
  /** Key prefix without a trailing `/`; default `_checkpoints`. */
  readonly prefix?: string;
  /**
   * `gzip` (level 1: JSON state shrinks several times for little CPU; worth it when the bytes
   * travel to S3) or `none` (default: local disks, where the write costs less than compressing).
   */
  readonly compression?: 'gzip' | 'none';
  readonly now?: () => Date;
}

const ID_DIGITS = 16;

/** Checkpoints as objects, with a pointer item per job in the key-value port. */
export class ObjectStoreCheckpointStore implements CheckpointStore {
  private table: KvTable | undefined;
  private readonly objects: ObjectStore;
  private readonly kv: KvStore;
  private readonly layer: Layer;
  private readonly prefix: string;
  private readonly gzip: boolean;
  private readonly now: () => Date;

  constructor(options: ObjectStoreCheckpointStoreOptions) {
    this.objects = options.objects;
    this.kv = options.kv;
    this.layer = options.layer ?? 'staging';
    this.prefix = (options.prefix ?? '_checkpoints').replace(/\/+$/, '');
    this.gzip = (options.compression ?? 'none') === 'gzip';
    this.now = options.now ?? (() => new Date());
  }

  private async open(): Promise<KvTable> {
    this.table ??= await this.kv.table(JOB_CHECKPOINTS_TABLE, { hashKey: { name: 'job', type: 'S' } });
    return this.table;
  }

  /** The key prefix of a job's checkpoint objects (ends with `/`). */
  jobPrefix(job: string): string {
    return `${this.prefix}/${encodeURIComponent(job)}/`;
  }

  /** Where checkpoint `id` of `job` is written. */
  objectRef(job: string, id: number): ObjectRef {
    if (!Number.isSafeInteger(id) || id < 0)
      throw new Error(`checkpoint id must be a non-negative integer, got ${id}`);
    const name = `${String(id).padStart(ID_DIGITS, '0')}.json${this.gzip ? '.gz' : ''}`;
    return { layer: this.layer, key: `${this.jobPrefix(job)}${name}` };
  }

  async save(job: string, checkpoint: Checkpoint): Promise<void> {
    await this.saveSerialized(job, serializeCheckpoint(checkpoint));
  }

  /** Saves a checkpoint's JSON text ({@link StreamExecutionEnvironment.snapshotSerialized}). */
  async saveSerialized(job: string, text: string): Promise<void> {
    const id = idOfCheckpointText(text);
    if (id === undefined) throw new Error(`checkpoint of job "${job}" has no numeric id`);
    const ref = this.objectRef(job, id);
    const table = await this.open();
    const before = await table.get({ job });
    const previousId = typeof before?.checkpoint_id === 'number' ? before.checkpoint_id : undefined;
    if (previousId !== undefined && previousId >= id) return; // a newer checkpoint is in place
    await this.objects.put(ref, this.gzip ? gzipSync(text, { level: 1 }) : text);
    try {
      await table.put(
        {
          job,
          checkpoint_id: id,
          object_layer: ref.layer,
          object_key: ref.key,
          created_at: this.now().toISOString(),
        },
        {
          condition: {
            op: 'or',
            conditions: [{ op: 'not_exists' }, { op: 'lt', attribute: 'checkpoint_id', value: id }],
          },
        },
      );
    } catch (error) {
      if (!(error instanceof ConditionFailedError)) throw error;
      await this.objects.delete(ref); // a newer writer won: ours is referenced by nothing
      return;
    }
    await this.removeOlder(job, id, previousId);
  }

  /** Deletes the job's objects with an id below `id`, except `keep`. */
  private async removeOlder(job: string, id: number, keep: number | undefined): Promise<void> {
    const prefix = this.jobPrefix(job);
    const stale: ObjectRef[] = [];
    for await (const info of this.objects.list(this.layer, prefix, { includeHidden: true })) {
      const match = /^(\d+)\.json(?:\.gz)?$/.exec(info.key.slice(prefix.length));
      if (match === null) continue;
      const other = Number(match[1]);
      if (other < id && other !== keep) stale.push({ layer: info.layer, key: info.key });
    }
    await Promise.all(stale.map((ref) => this.objects.delete(ref)));
  }

  async load(job: string): Promise<Checkpoint | undefined> {
    const text = await this.loadSerialized(job);
    return text === undefined ? undefined : parseCheckpoint(text);
  }

  /** The latest checkpoint's JSON text (for {@link StreamExecutionEnvironment.restoreSerialized}). */
  async loadSerialized(job: string): Promise<string | undefined> {
    const item = await (await this.open()).get({ job });
    if (item === undefined) return undefined;
    if (typeof item.object_key !== 'string' || typeof item.object_layer !== 'string') {
      if (typeof item.state === 'string') return item.state; // saved by KvCheckpointStore
      throw new Error(`checkpoint item of job "${job}" has neither an object nor a state`);
    }
    const key = item.object_key;
    const bytes = await this.objects.getBytes({ layer: item.object_layer as Layer, key });
    return (key.endsWith('.gz') ? gunzipSync(bytes) : Buffer.from(bytes)).toString('utf8');
  }

  /** The refs of the job's checkpoint objects, in id order (for tests and operators). */
  async list(job: string): Promise<ObjectRef[]> {
    const refs: ObjectRef[] = [];
    for await (const info of this.objects.list(this.layer, this.jobPrefix(job), { includeHidden: true }))
      refs.push({ layer: info.layer, key: info.key });
    return refs;
  }
}
