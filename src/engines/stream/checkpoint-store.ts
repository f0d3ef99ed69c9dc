/**
 * Durable checkpoints of stream jobs. One item per job in the key-value table
 * {@link JOB_CHECKPOINTS_TABLE}, replaced atomically (a single conditional put, so a reader sees the
 * old or the new checkpoint, never a mix; the condition keeps a slower, older writer from
 * overwriting a newer checkpoint). DynamoDB limits an item to 400 KB: jobs with more state use
 * {@link ObjectStoreCheckpointStore} (object-checkpoint-store.ts), whose item only points at an object.
 *
 * Stores write a checkpoint's JSON text as made by the snapshot (see serialized-checkpoint.ts):
 * `save(job, env.snapshot())` serializes the state once, as `saveSerialized(job,
 * env.snapshotSerialized())` does.
 */
import { ConditionFailedError } from '../../core/errors.ts';
import type { KvStore, KvTable } from '../../core/ports/kv-table.ts';
import type { Checkpoint } from './data-stream.ts';
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

/** Checkpoints in the key-value port (SQLite locally, DynamoDB on AWS). */
export class KvCheckpointStore implements CheckpointStore {
  private table: KvTable | undefined;
  constructor(
    private readonly kv: KvStore,
    private readonly now: () => Date = () => new Date(),
  ) {}

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
    if (typeof item.state !== 'string') {
      throw new Error(
        `checkpoint of job "${job}" is not in the key-value table (object ${String(item.object_key)}): ` +
          'load it with ObjectStoreCheckpointStore',
      );
    }
    return item.state;
  }
}
