/**
 * Durable checkpoints of stream jobs. One item per job in the key-value table
 * {@link JOB_CHECKPOINTS_TABLE}, replaced atomically (a single conditional put, so a reader sees the
 * old or the new checkpoint, never a mix; the condition keeps a slower, older writer from
 * overwriting a newer checkpoint). DynamoDB limits an item to 400 KB: jobs with more state need an
 * object-store checkpoint (not written yet).
 */
import { ConditionFailedError } from '../../core/errors.ts';
import type { KvStore, KvTable } from '../../core/ports/kv-table.ts';
import type { Checkpoint } from './data-stream.ts';

/** Hash key `job` (S); attributes `checkpoint_id` (N), `state` (S, JSON), `created_at` (ISO-8601). */
export const JOB_CHECKPOINTS_TABLE = 'sluice_stream_job_checkpoints';

/** Where a job's latest checkpoint is kept. */
export interface CheckpointStore {
  /** Saves `checkpoint` as the job's latest; ignored when a newer one (higher id) is stored. */
  save(job: string, checkpoint: Checkpoint): Promise<void>;
  /** The latest checkpoint, or `undefined` for a job that never checkpointed. */
  load(job: string): Promise<Checkpoint | undefined>;
}

/** Checkpoints in memory (tests, `sluice run` replays that need no restart). */
export class MemoryCheckpointStore implements CheckpointStore {
  private readonly items = new Map<string, string>();
  async save(job: string, checkpoint: Checkpoint): Promise<void> {
    const current = this.items.get(job);
    if (current !== undefined && (JSON.parse(current) as Checkpoint).id >= checkpoint.id) return;
    this.items.set(job, JSON.stringify(checkpoint));
  }
  async load(job: string): Promise<Checkpoint | undefined> {
    const item = this.items.get(job);
    return item === undefined ? undefined : (JSON.parse(item) as Checkpoint);
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
    const table = await this.open();
    try {
      await table.put(
        {
          job,
          checkpoint_id: checkpoint.id,
          state: JSON.stringify(checkpoint),
          created_at: this.now().toISOString(),
        },
        {
          condition: {
            op: 'or',
            conditions: [
              { op: 'not_exists' },
              { op: 'lt', attribute: 'checkpoint_id', value: checkpoint.id },
            ],
          },
        },
      );
    } catch (error) {
      if (!(error instanceof ConditionFailedError)) throw error;
    }
  }

  async load(job: string): Promise<Checkpoint | undefined> {
    const item = await (await this.open()).get({ job });
    return item === undefined ? undefined : (JSON.parse(item.state as string) as Checkpoint);
  }
}
