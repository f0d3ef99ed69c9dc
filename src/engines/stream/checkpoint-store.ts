/**
 * Durable checkpoints of stream jobs. One item per job in the key-value table
 * {@link JOB_CHECKPOINTS_TABLE}, replaced atomically (a single conditional put, so a reader sees the
 * old or the new checkpoint, never a mix; the condition keeps a slower, older writer from
 * overwriting a newer checkpoint). DynamoDB limits an item to 400 KB: jobs with more state use
 * {@link ObjectStoreCheckpointStore} (object-checkpoint-store.ts), whose item only points at an object,
 * or give {@link KvCheckpointStore} an object store to spill checkpoints above a size into.
 *
 * Stores write a checkpoint's JSON text as made by the snapshot (see serialized-checkpoint.ts):
 * `save(job, env.snapshot())` serializes the state once, as `saveSerialized(job,
 * env.snapshotSerialized())` does.
 */
import { ConditionFailedError } from '../../core/errors.ts';
import type { KvStore, KvTable } from '../../core/ports/kv-table.ts';
import type { ObjectStore } from '../../core/ports/object-store.ts';
import type { Checkpoint } from './data-stream.ts';
import { ObjectStoreCheckpointStore } from './object-checkpoint-store.ts';
import { checkpointIdOf, parseCheckpoint, serializeCheckpoint } from './serialized-checkpoint.ts';

/**
 * Hash key `job` (S); attributes `checkpoint_id` (N), `created_at` (ISO-8601) and either `state`
 * (S, the checkpoint's JSON; {@link KvCheckpointStore}) or `object_layer` + `object_key` (S, where
 * the checkpoint is; {@link ObjectStoreCheckpointStore}).
 */
export const JOB_CHECKPOINTS_TABLE = 'sluice_stream_job_checkpoints';

/** Where a job's latest checkpoint is kept. */
export interface CheckpointStore {
  /** Saves `checkpoint` as the job's latest; ignored when a newer one (higher id) is stored. */
  save(job: string, checkpoint: Checkpoint): Promise<void>;
  /** The latest checkpoint, or `undefined` for a job that never checkpointed. */
  load(job: string): Promise<Checkpoint | undefined>;
}

/**
 * The id of a checkpoint's JSON text (`id` first, as snapshots write it; otherwise parsed). Text
 * without a numeric id (a caller's own wrapper object) gets `undefined`.
 */
export function idOfCheckpointText(text: string): number | undefined {
  const fast = checkpointIdOf(text);
  if (fast !== undefined) return fast;
  const id = (JSON.parse(text) as { id?: unknown } | null)?.id;
  return typeof id === 'number' ? id : undefined;
}

/** Checkpoints in memory (tests, `sluice run` replays that need no restart). */
export class MemoryCheckpointStore implements CheckpointStore {
  private readonly items = new Map<string, { id: number | undefined; text: string }>();
  async save(job: string, checkpoint: Checkpoint): Promise<void> {
    await this.saveSerialized(job, serializeCheckpoint(checkpoint));
  }
  /** Saves a checkpoint's JSON text ({@link StreamExecutionEnvironment.snapshotSerialized}). */
  async saveSerialized(job: string, text: string): Promise<void> {
    const id = idOfCheckpointText(text);
    const current = this.items.get(job);
    if (current !== undefined && id !== undefined && current.id !== undefined && current.id >= id) return;
    this.items.set(job, { id, text });
  }
  async load(job: string): Promise<Checkpoint | undefined> {
    const text = await this.loadSerialized(job);
    return text === undefined ? undefined : parseCheckpoint(text);
  }
  /** The latest checkpoint's JSON text (for {@link StreamExecutionEnvironment.restoreSerialized}). */
  async loadSerialized(job: string): Promise<string | undefined> {
    return this.items.get(job)?.text;
  }
}

/**
 * Default {@link KvCheckpointStoreOptions.maxInlineBytes}: 350,000 UTF-8 bytes of JSON. DynamoDB's
 * item limit is 400 KB (409,600 bytes) counting attribute names and values
 * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-items);
 * the margin covers the other attributes.
 */
export const MAX_INLINE_CHECKPOINT_BYTES = 350_000;

/** Options of {@link KvCheckpointStore}. */
export interface KvCheckpointStoreOptions {
  /**
   * Where checkpoints larger than {@link maxInlineBytes} go: saved by an
   * {@link ObjectStoreCheckpointStore} (gzip, `staging/_checkpoints/<job>/<id>.json.gz`) whose
   * item in {@link JOB_CHECKPOINTS_TABLE} points at the object. Without it every checkpoint is
   * inline, and one above DynamoDB's 400 KB item limit fails to save on AWS (`ValidationException:
   * Item size has exceeded the maximum allowed size`), on every retry.
   */
  readonly objects?: ObjectStore;
  /** Largest checkpoint kept inline in the item, UTF-8 bytes of JSON (default {@link MAX_INLINE_CHECKPOINT_BYTES}). */
  readonly maxInlineBytes?: number;
}

/**
 * Checkpoints in the key-value port (SQLite locally, DynamoDB on AWS): inline in the job's item,
 * or, with {@link KvCheckpointStoreOptions.objects}, spilled to the object store above
 * {@link KvCheckpointStoreOptions.maxInlineBytes} (the item then points at the object; either kind
 * of item loads). Objects of an earlier spilled checkpoint stay when the state shrinks back
 * inline, until the next spill removes them (ObjectStoreCheckpointStore removes older objects).
 */
export class KvCheckpointStore implements CheckpointStore {
  private table: KvTable | undefined;
  private readonly spill: ObjectStoreCheckpointStore | undefined;
  private readonly maxInlineBytes: number;
  constructor(
    private readonly kv: KvStore,
    private readonly now: () => Date = () => new Date(),
    options: KvCheckpointStoreOptions = {},
  ) {
    this.maxInlineBytes = options.maxInlineBytes ?? MAX_INLINE_CHECKPOINT_BYTES;
    this.spill =
      options.objects === undefined
        ? undefined
        : new ObjectStoreCheckpointStore({ objects: options.objects, kv, now, compression: 'gzip' });
  }

  private async open(): Promise<KvTable> {
    this.table ??= await this.kv.table(JOB_CHECKPOINTS_TABLE, { hashKey: { name: 'job', type: 'S' } });
    return this.table;
  }

  async save(job: string, checkpoint: Checkpoint): Promise<void> {
    await this.saveSerialized(job, serializeCheckpoint(checkpoint));
  }

  /** Saves a checkpoint's JSON text ({@link StreamExecutionEnvironment.snapshotSerialized}). */
  async saveSerialized(job: string, text: string): Promise<void> {
    const id = idOfCheckpointText(text);
    if (id === undefined) throw new Error(`checkpoint of job "${job}" has no numeric id`);
    if (this.spill !== undefined && Buffer.byteLength(text, 'utf8') > this.maxInlineBytes) {
      await this.spill.saveSerialized(job, text);
      return;
    }
    const table = await this.open();
    try {
      await table.put(
        { job, checkpoint_id: id, state: text, created_at: this.now().toISOString() },
        {
          condition: {
            op: 'or',
            conditions: [{ op: 'not_exists' }, { op: 'lt', attribute: 'checkpoint_id', value: id }],
          },
        },
      );
    } catch (error) {
      if (!(error instanceof ConditionFailedError)) throw error;
    }
  }

  async load(job: string): Promise<Checkpoint | undefined> {
    const text = await this.loadSerialized(job);
    return text === undefined ? undefined : parseCheckpoint(text);
  }

  /** The latest checkpoint's JSON text (for {@link StreamExecutionEnvironment.restoreSerialized}). */
  async loadSerialized(job: string): Promise<string | undefined> {
    const item = await (await this.open()).get({ job });
    if (item === undefined) return undefined;
    if (typeof item.state !== 'string' && this.spill !== undefined) return this.spill.loadSerialized(job);
    if (typeof item.state !== 'string') {
      throw new Error(
        `checkpoint of job "${job}" is not in the key-value table (object ${String(item.object_key)}): ` +
          'load it with ObjectStoreCheckpointStore',
      );
    }
    return item.state;
  }
}
