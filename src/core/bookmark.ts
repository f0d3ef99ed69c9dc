import type { Clock } from './clock.ts';
import { ConditionFailedError } from './errors.ts';
import type { Item, JsonValue, KvStore, KvTable } from './ports/kv-table.ts';
import { allPages } from './ports/kv-table.ts';

/**
 * Bookmarks with the semantics of the gharchive original (REFERENCE.md section 3), generalised:
 *
 * - table `jobs` (hash key `job_id`) holds each job and its settings, e.g. `baseline_days`, and,
 *   in sluice, the current bookmark so it can be moved with a conditional write;
 * - table `job_run_details` (hash key `job_id`, range key `job_run_time`) holds one row per
 *   successful unit `{job_id, job_run_time, job_run_bookmark_details, create_ts}`.
 *
 * The bookmark only moves forward, only for incremental runs (a backfill records its runs but
 * leaves the bookmark alone), and only with a condition on its previous value, so two writers can
 * never both move it from the same place.
 */
export class BookmarkStore {
  private constructor(
    private readonly jobs: KvTable,
    private readonly runDetails: KvTable,
    private readonly clock: Clock,
  ) {}

  /** Opens (locally: creates) the `jobs` and `job_run_details` tables. */
  static async open(kv: KvStore, clock: Clock): Promise<BookmarkStore> {
    const jobs = await kv.table('jobs', { hashKey: { name: 'job_id', type: 'S' } });
    const runDetails = await kv.table('job_run_details', {
      hashKey: { name: 'job_id', type: 'S' },
      rangeKey: { name: 'job_run_time', type: 'S' },
    });
    return new BookmarkStore(jobs, runDetails, clock);
  }

  /**
   * The job's item, created with `defaults` when missing (never overwritten when present).
   * @returns the stored item (with `job_id`, settings and, when set, `bookmark`).
   */
  async ensureJob(jobId: string, defaults: { [key: string]: JsonValue }): Promise<Item> {
    const existing = await this.jobs.get({ job_id: jobId });
    if (existing) return existing;
    const item: Item = { ...defaults, job_id: jobId, create_ts: this.clock.now().toISOString() };
    try {
      await this.jobs.put(item, { condition: { op: 'not_exists' } });
      return item;
    } catch (error) {
      if (error instanceof ConditionFailedError) {
        const raced = await this.jobs.get({ job_id: jobId });
        if (raced) return raced;
      }
      throw error;
    }
  }

  /** The job's current bookmark details, or `undefined` before the first incremental unit. */
  async current(jobId: string): Promise<{ [key: string]: JsonValue } | undefined> {
    const job = await this.jobs.get({ job_id: jobId });
    const bookmark = job?.bookmark;
    return bookmark && typeof bookmark === 'object' && !Array.isArray(bookmark) ? bookmark : undefined;
  }

  /**
   * Records a finished unit in `job_run_details` and, when `advance` is true, moves the job's
   * bookmark to `details` provided it still equals `expected` (optimistic concurrency).
   *
   * @param expected the bookmark the caller started from (`undefined` when there was none).
   * @throws {ConditionFailedError} when another writer moved the bookmark in the meantime.
   */
  async record(
    jobId: string,
    details: { [key: string]: JsonValue },
    options: { advance: boolean; expected: { [key: string]: JsonValue } | undefined; runId: string },
  ): Promise<void> {
    const now = this.clock.now();
    if (options.advance) {
      const job = await this.ensureJob(jobId, {});
      const expected = options.expected;
      await this.jobs.put(
        { ...job, bookmark: details, updated_at: now.toISOString() },
        {
          condition:
            expected === undefined
              ? { op: 'not_exists', attribute: 'bookmark' }
              : { op: 'eq', attribute: 'bookmark', value: expected },
        },
      );
    }
    // job_run_time is the range key: ISO-8601 UTC with ms; on a same-millisecond collision, step 1 ms.
    for (let offset = 0; offset < 1000; offset++) {
      const time = new Date(now.getTime() + offset).toISOString();
      try {
        await this.runDetails.put(
          {
            job_id: jobId,
            job_run_time: time,
            job_run_bookmark_details: details,
            create_ts: now.toISOString(),
            run_id: options.runId,
            mode: options.advance ? 'incremental' : 'backfill',
          },
          { condition: { op: 'not_exists' } },
        );
        return;
      } catch (error) {
        if (!(error instanceof ConditionFailedError)) throw error;
      }
    }
    throw new Error(`could not record job_run_details for ${jobId}: 1000 rows in the same second`);
  }

  /** Rows of `job_run_details` for a job, newest first. */
  async history(jobId: string, limit = 100): Promise<Item[]> {
    const rows: Item[] = [];
    for await (const item of allPages((cursor) =>
      this.runDetails.query(jobId, { descending: true, ...(cursor ? { cursor } : {}) }),
    )) {
      rows.push(item);
      if (rows.length >= limit) break;
    }
    return rows;
  }
}
