import type { Clock } from './clock.ts';
import type { Item, JsonValue, KvStore, KvTable } from './ports/kv-table.ts';
import { allPages } from './ports/kv-table.ts';

/**
 * Status of a step run:
 * - `running`: started, not finished (or its process died: see `aborted`);
 * - `succeeded`: finished, every record accounted for;
 * - `partial`: finished and committed what it could, but the source was damaged (e.g. truncated gzip);
 * - `failed`: nothing was committed for the unit; the bookmark did not move;
 * - `aborted`: the process died while running; found and marked by the next run;
 * - `skipped`: nothing to do (e.g. the hour is not published yet).
 */
export type RunStatus = 'running' | 'succeeded' | 'partial' | 'failed' | 'aborted' | 'skipped';

/**
 * Record counts of a step. The invariant `read = loaded + duplicates + quarantined + filtered`
 * holds for every finished run (see {@link reconcile}): nothing is silently dropped.
 */
export interface RecordCounts {
  /** Records read from the source (every non-blank line, including bad ones). */
  readonly read: number;
  /** Records written to the target. */
  readonly loaded: number;
  /** Records not written because their primary key was already present (in the batch or in the target). */
  readonly duplicates: number;
  /** Records written to the quarantine (dead-letter) location with a reason. */
  readonly quarantined: number;
  /**
   * Well-formed records a pipeline rule leaves out on purpose (the hashtags producer keeps only
   * popular English retweets with hashtags): counted, never silently dropped. Absent means 0.
   */
  readonly filtered?: number;
}

/**
 * Checks `read = loaded + duplicates + quarantined + filtered`.
 * @throws {Error} naming the numbers when it does not hold (a sluice bug, never bad data).
 */
export function reconcile(counts: RecordCounts): void {
  const { read, loaded, duplicates, quarantined } = counts;
  const filtered = counts.filtered ?? 0;
  if (read !== loaded + duplicates + quarantined + filtered) {
    throw new Error(
      `record counts do not reconcile: read ${read} != loaded ${loaded} + duplicates ${duplicates} + quarantined ${quarantined}${filtered ? ` + filtered ${filtered}` : ''}`,
    );
  }
}

/** One step run, as `sluice runs` shows it. Times are ISO-8601 UTC strings. */
export interface RunRecord {
  /** Id of the invocation (one `sluice run`), shared by its steps. */
  readonly runId: string;
  readonly pipeline: string;
  readonly step: string;
  /** The unit of work, e.g. the hour file `2015-01-01-0.json.gz`. */
  readonly unit?: string;
  readonly startedAt: string;
  readonly endedAt?: string;
  readonly status: RunStatus;
  readonly counts?: RecordCounts;
  /** Bytes read from the source, when meaningful. */
  readonly bytes?: number;
  /** Error message (with causes) when failed or partial. */
  readonly error?: string;
  /** Step-specific details (partitions written, quarantine key, ...). */
  readonly details?: { [key: string]: JsonValue };
}

/**
 * A new run id: the UTC start time to the second and 6 random hex digits,
 * `20261121T160500Z-a1b2c3` (sorts by time; fits object keys and write units).
 * @param random6hex 6 hex digits (the caller draws them: the core does no I/O).
 */
export function formatRunId(now: Date, random6hex: string): string {
  return `${now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}-${random6hex}`;
}

/**
 * A new run id for `now`: {@link formatRunId} with 3 random bytes from Web Crypto
 * (`globalThis.crypto`, no import: the core stays free of Node modules).
 */
export function newRunId(now: Date): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(3));
  return formatRunId(now, Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(''));
}

/** Name of the key-value table holding run records. */
export const RUNS_TABLE = 'sluice_runs';

/**
 * Run records on the key-value port (table `sluice_runs`, hash key `pipeline`, range key
 * `run_key` = `<startedAt>#<runId>#<step>#<unit>`, so a pipeline's runs sort by start time).
 */
export class RunLog {
  private constructor(
    private readonly table: KvTable,
    private readonly clock: Clock,
  ) {}

  /** Opens (locally: creates) the runs table. */
  static async open(kv: KvStore, clock: Clock): Promise<RunLog> {
    const table = await kv.table(RUNS_TABLE, {
      hashKey: { name: 'pipeline', type: 'S' },
      rangeKey: { name: 'run_key', type: 'S' },
    });
    return new RunLog(table, clock);
  }

  /** Records a step as `running` and returns a handle to finish it. */
  async start(run: { runId: string; pipeline: string; step: string; unit?: string }): Promise<RunHandle> {
    const record: RunRecord = { ...run, startedAt: this.clock.now().toISOString(), status: 'running' };
    await this.write(record);
    return new RunHandle(this, record, this.clock);
  }

  /** @internal Writes a record (create or replace). */
  async write(record: RunRecord): Promise<void> {
    await this.table.put(toItem(record));
  }

  /**
   * Runs of one pipeline, or all, newest first.
   * @param options.limit maximum records (default 100).
   */
  async list(options: { pipeline?: string; limit?: number } = {}): Promise<RunRecord[]> {
    const limit = options.limit ?? 100;
    const records: RunRecord[] = [];
    if (options.pipeline !== undefined) {
      const pipeline = options.pipeline;
      for await (const item of allPages((cursor) =>
        this.table.query(pipeline, { descending: true, ...(cursor ? { cursor } : {}) }),
      )) {
        records.push(fromItem(item));
        if (records.length >= limit) break;
      }
      return records;
    }
    for await (const item of allPages((cursor) => this.table.scan(cursor ? { cursor } : {}))) {
      records.push(fromItem(item));
    }
    records.sort((a, b) => (a.startedAt < b.startedAt ? 1 : a.startedAt > b.startedAt ? -1 : 0));
    return records.slice(0, limit);
  }

  /**
   * Marks every `running` record of `pipeline` as `aborted`, except those of `currentRunId`.
   * Call after acquiring the pipeline's lease: no other run can be alive then.
   * @returns the number of records marked.
   */
  async abortStale(pipeline: string, currentRunId: string): Promise<number> {
    let marked = 0;
    for await (const item of allPages((cursor) => this.table.query(pipeline, cursor ? { cursor } : {}))) {
      const record = fromItem(item);
      if (record.status === 'running' && record.runId !== currentRunId) {
        await this.write({
          ...record,
          status: 'aborted',
          endedAt: this.clock.now().toISOString(),
          error: 'the process running this step stopped before it finished; the next run redid the work',
        });
        marked++;
      }
    }
    return marked;
  }
}

/** A started step run; finish it exactly once. */
export class RunHandle {
  constructor(
    private readonly log: RunLog,
    public record: RunRecord,
    private readonly clock: Clock,
  ) {}

  /**
   * Records the end of the step. Counts, when given, must reconcile.
   * @throws {Error} when counts do not reconcile.
   */
  async finish(outcome: {
    status: Exclude<RunStatus, 'running'>;
    counts?: RecordCounts;
    bytes?: number;
    error?: string;
    details?: { [key: string]: JsonValue };
  }): Promise<RunRecord> {
    if (outcome.counts) reconcile(outcome.counts);
    this.record = { ...this.record, ...outcome, endedAt: this.clock.now().toISOString() };
    await this.log.write(this.record);
    return this.record;
  }
}

function runKey(record: RunRecord): string {
  return `${record.startedAt}#${record.runId}#${record.step}#${record.unit ?? ''}`;
}

function toItem(record: RunRecord): Item {
  const item: Item = {
    pipeline: record.pipeline,
    run_key: runKey(record),
    run_id: record.runId,
    step: record.step,
    started_at: record.startedAt,
    status: record.status,
  };
  if (record.unit !== undefined) item.unit = record.unit;
  if (record.endedAt !== undefined) item.ended_at = record.endedAt;
  if (record.counts !== undefined) item.counts = { ...record.counts };
  if (record.bytes !== undefined) item.bytes = record.bytes;
  if (record.error !== undefined) item.error = record.error;
  if (record.details !== undefined) item.details = record.details;
  return item;
}

function fromItem(item: Item): RunRecord {
  const counts = item.counts as unknown as RecordCounts | undefined;
  return {
    runId: String(item.run_id),
    pipeline: String(item.pipeline),
    step: String(item.step),
    startedAt: String(item.started_at),
    status: item.status as RunStatus,
    ...(typeof item.unit === 'string' ? { unit: item.unit } : {}),
    ...(typeof item.ended_at === 'string' ? { endedAt: item.ended_at } : {}),
    ...(counts ? { counts } : {}),
    ...(typeof item.bytes === 'number' ? { bytes: item.bytes } : {}),
    ...(typeof item.error === 'string' ? { error: item.error } : {}),
    ...(item.details && typeof item.details === 'object' && !Array.isArray(item.details)
      ? { details: item.details }
      : {}),
  };
}
