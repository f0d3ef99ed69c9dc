import type { Clock } from './clock.ts';
import { ConditionFailedError, NotFoundError, UsageError } from './errors.ts';
import type { Item, JsonValue, KeySchema, KvStore, KvTable, RangeCondition } from './ports/kv-table.ts';
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
 * Name of the key-value table indexing run records by time, across pipelines (see {@link RunLog}).
 * Added after `sluice_runs`; homes and stacks without it still work (the log falls back to reading
 * `sluice_runs` whole for the all-pipelines views).
 */
export const RUNS_BY_TIME_TABLE = 'sluice_runs_by_time';

/**
 * Key schema of {@link RUNS_BY_TIME_TABLE}: hash key `series` (`started`, `changed` or `meta`),
 * range key `time_key` = `<time>#<pipeline>#<run_key>` (ISO-8601 UTC time first, so a series sorts
 * by time).
 */
export const RUNS_BY_TIME_KEY_SCHEMA: KeySchema = {
  hashKey: { name: 'series', type: 'S' },
  rangeKey: { name: 'time_key', type: 'S' },
};

/** The index item that says every run of `sluice_runs` is in the index (written by {@link RunLog.open}'s backfill). */
const INDEXED_MARK: Item = { series: 'meta', time_key: 'indexed' };

/**
 * How long the `changed` series of the time index keeps a change (7 days, in ms): the live feed
 * asks for changes since its last poll; a cursor older than this gets only the changes still kept.
 */
export const CHANGED_RETENTION_MS = 7 * 24 * 3600 * 1000;

/** Most `changed` items one finishing write deletes (see {@link RunLog}). */
export const CHANGED_PRUNE_BATCH = 25;

/** Items examined at most per {@link RunLog.page} call with a status filter (a rare status stops early; the page says where). */
export const RUN_PAGE_BUDGET = 10_000;

/**
 * One page of run records, newest first ({@link RunLog.page}).
 * `older` / `newer` are opaque cursors for the adjacent pages, `null` when there is none.
 */
export interface RunPage {
  readonly items: RunRecord[];
  /** Pass as `older` for the next page of older runs; `null`: nothing older. */
  readonly older: string | null;
  /** Pass as `newer` for the page of newer runs; `null`: this page starts at the newest run. */
  readonly newer: string | null;
  /**
   * Matching runs over all pages, when known without reading further: the page started at the
   * newest run (no cursor) and reached the oldest; else `null` (sluice keeps no counters: see docs/dashboard.md).
   */
  readonly total: number | null;
}

/** Filters and position of {@link RunLog.page}. */
export interface RunPageOptions {
  readonly pipeline?: string;
  readonly status?: RunStatus;
  /** Runs per page, >= 1. */
  readonly limit: number;
  /** Cursor from a page's `older`: the page of runs older than it. */
  readonly older?: string;
  /** Cursor from a page's `newer`: the page of runs newer than it (still shown newest first). */
  readonly newer?: string;
  /** Matching runs to skip from the newest (legacy offset paging: the cost grows with the offset). */
  readonly offset?: number;
  /** Items examined at most with a status filter (default {@link RUN_PAGE_BUDGET}); ignored with `offset`. */
  readonly budget?: number;
  /** Only runs started after this ISO-8601 UTC time (older runs end the page, as if there were none). */
  readonly startedAfter?: string;
}

interface Keyed {
  readonly key: string;
  readonly record: RunRecord;
}

/**
 * Run records on the key-value port.
 *
 * - Table `sluice_runs`: hash key `pipeline`, range key `run_key` = `<startedAt>#<runId>#<step>#<unit>`,
 *   so a pipeline's runs sort by start time. The record of truth; its key schema never changes.
 * - Table `sluice_runs_by_time` ({@link RUNS_BY_TIME_KEY_SCHEMA}), written beside it on every write:
 *   series `started` holds a copy of each run's latest record at `<startedAt>#<pipeline>#<run_key>`
 *   (all pipelines newest first, one query); series `changed` holds a snapshot of each write at
 *   `<endedAt or startedAt>#<pipeline>#<run_key>` (the live feed: one range query `> since`).
 *   One hash key per series: fine for run-log write rates (a few per second at most); DynamoDB
 *   splits a hot key's items by range. `changed` keeps {@link CHANGED_RETENTION_MS}: each finishing
 *   write deletes up to {@link CHANGED_PRUNE_BATCH} older items, so the series stays bounded.
 *
 * Writes are not transactional (the port has none); their order keeps the index self-healing: a
 * `running` record goes to `sluice_runs` first, a finished one to the index first, so a process
 * that dies between two writes leaves `sluice_runs` saying `running`, which the next run's
 * {@link RunLog.abortStale} rewrites (in both tables).
 */
export class RunLog {
  private constructor(
    private readonly table: KvTable,
    private readonly index: KvTable | undefined,
    private readonly clock: Clock,
    private indexComplete: boolean,
  ) {}

  /**
   * Opens (locally: creates) the runs table and its time index. When the index has no
   * "indexed" mark (a home or stack written before the index existed), and `backfill` is not
   * `false`, copies every run of `sluice_runs` into it once (conditional puts: never over a newer
   * entry written concurrently), then writes the mark. Without the mark (`backfill: false`, as the
   * dashboard opens it, read-only) the all-pipelines reads fall back to reading `sluice_runs` whole.
   * When the index table does not exist (a stack deployed before it: {@link NotFoundError}), runs
   * are written to `sluice_runs` only and read the old way.
   */
  static async open(kv: KvStore, clock: Clock, options: { backfill?: boolean } = {}): Promise<RunLog> {
    const table = await kv.table(RUNS_TABLE, {
      hashKey: { name: 'pipeline', type: 'S' },
      rangeKey: { name: 'run_key', type: 'S' },
    });
    let index: KvTable | undefined;
    try {
      index = await kv.table(RUNS_BY_TIME_TABLE, RUNS_BY_TIME_KEY_SCHEMA);
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
    const log = new RunLog(table, index, clock, false);
    await log.refreshIndexed();
    if (!log.indexComplete && index && options.backfill !== false) await log.backfill(index);
    return log;
  }

  /** True when the time index holds every run (all-pipelines reads and the feed use it). */
  get indexed(): boolean {
    return this.indexComplete;
  }

  /** Re-reads the index's "indexed" mark (a reader that opened before a writer's backfill). */
  async refreshIndexed(): Promise<boolean> {
    if (!this.indexComplete && this.index)
      this.indexComplete = (await this.index.get(INDEXED_MARK)) !== undefined;
    return this.indexComplete;
  }

  private async backfill(index: KvTable): Promise<void> {
    for await (const item of allPages((cursor) => this.table.scan(cursor ? { cursor } : {}))) {
      const record = fromItem(item);
      for (const entry of indexItems(record)) {
        try {
          await index.put(entry, { condition: { op: 'not_exists' } });
        } catch (error) {
          // A concurrent writer indexed this run already, with a record as new or newer.
          if (!(error instanceof ConditionFailedError)) throw error;
        }
      }
    }
    await index.put({ ...INDEXED_MARK, at: this.clock.now().toISOString() });
    this.indexComplete = true;
  }

  /** Records a step as `running` and returns a handle to finish it. */
  async start(run: { runId: string; pipeline: string; step: string; unit?: string }): Promise<RunHandle> {
    const record: RunRecord = { ...run, startedAt: this.clock.now().toISOString(), status: 'running' };
    await this.write(record);
    return new RunHandle(this, record, this.clock);
  }

  /** @internal Writes a record (create or replace) and its index entries (order: see the class doc). */
  async write(record: RunRecord): Promise<void> {
    const index = this.index;
    const writeIndex = async () => {
      if (index) for (const entry of indexItems(record)) await index.put(entry);
    };
    if (record.status === 'running') {
      await this.table.put(toItem(record));
      await writeIndex();
    } else {
      await writeIndex();
      await this.table.put(toItem(record));
      await this.pruneChanged();
    }
  }

  /**
   * Deletes up to {@link CHANGED_PRUNE_BATCH} items of the `changed` series older than
   * {@link CHANGED_RETENTION_MS} (oldest first): called after each finishing write, which adds at
   * most two, so the series never holds much more than the retention's worth of changes.
   */
  private async pruneChanged(): Promise<void> {
    if (!this.index) return;
    const cutoff = new Date(this.clock.now().getTime() - CHANGED_RETENTION_MS).toISOString();
    const old = await this.index.query('changed', {
      range: { op: 'lt', value: cutoff },
      limit: CHANGED_PRUNE_BATCH,
    });
    for (const item of old.items)
      await this.index.delete({ series: 'changed', time_key: item.time_key ?? '' });
  }

  /**
   * Runs of one pipeline, or all, newest first.
   * @param options.limit maximum records (default 100).
   */
  async list(options: { pipeline?: string; limit?: number } = {}): Promise<RunRecord[]> {
    const limit = options.limit ?? 100;
    const records: RunRecord[] = [];
    for await (const { record } of this.descending(options.pipeline, undefined, Math.min(limit, 1000))) {
      records.push(record);
      if (records.length >= limit) break;
    }
    return records;
  }

  /**
   * One page of runs, newest first, read by key-range queries: per pipeline from `sluice_runs`,
   * across pipelines from the time index (or, on a home not indexed yet, from `sluice_runs` read
   * whole). Reads about `limit` items; with a status filter, up to `budget` items (the page may
   * then hold fewer than `limit`, with an `older` cursor to go on).
   * @throws {UsageError} on a cursor that is malformed or from another pipeline filter.
   */
  async page(options: RunPageOptions): Promise<RunPage> {
    const scope = options.pipeline ?? '*';
    const matches = (r: RunRecord) => options.status === undefined || r.status === options.status;
    const offset = options.older === undefined && options.newer === undefined ? (options.offset ?? 0) : 0;
    const budget = offset > 0 ? Number.POSITIVE_INFINITY : (options.budget ?? RUN_PAGE_BUDGET);
    const pageSize = options.status === undefined ? Math.min(options.limit + 1, 1000) : 1000;
    const items: Keyed[] = [];
    let examined = 0;
    let lastKey: string | undefined;
    let more = false;
    if (options.newer !== undefined) {
      const bound = decodeRunCursor(options.newer, scope);
      for await (const keyed of this.ascending(options.pipeline, bound, pageSize)) {
        if (items.length >= options.limit || examined >= budget) {
          more = true;
          break;
        }
        examined++;
        lastKey = keyed.key;
        if (matches(keyed.record)) items.push(keyed);
      }
      items.reverse();
      return {
        items: items.map((k) => k.record),
        older: encodeRunCursor(scope, items.at(-1)?.key ?? bound),
        newer: more && lastKey !== undefined ? encodeRunCursor(scope, lastKey) : null,
        total: null,
      };
    }
    const bound = options.older !== undefined ? decodeRunCursor(options.older, scope) : undefined;
    let skipped = 0;
    for await (const keyed of this.descending(options.pipeline, bound, pageSize, options.startedAfter)) {
      if (options.startedAfter !== undefined && keyed.record.startedAt <= options.startedAfter) break;
      if (items.length >= options.limit || examined >= budget) {
        more = true;
        break;
      }
      examined++;
      lastKey = keyed.key;
      if (!matches(keyed.record)) continue;
      if (skipped < offset) skipped++;
      else items.push(keyed);
    }
    const first = items[0]?.key ?? bound;
    return {
      items: items.map((k) => k.record),
      older: more && lastKey !== undefined ? encodeRunCursor(scope, lastKey) : null,
      newer:
        bound !== undefined || offset > 0
          ? first !== undefined
            ? encodeRunCursor(scope, first)
            : null
          : null,
      total: bound === undefined && !more ? skipped + items.length : null,
    };
  }

  /**
   * Runs whose start or end is after `since` (an ISO-8601 UTC time; none: the latest changes), the
   * newest `limit` changes (one record per run, its latest), and the new cursor: the latest start
   * or end time seen (`since`, or `''`, when nothing changed). From the index's `changed` series
   * (one range query); on a home not indexed yet, from `sluice_runs` read whole.
   */
  async changedSince(since: string | undefined, limit = 100): Promise<{ cursor: string; runs: RunRecord[] }> {
    const from = since ?? '';
    const latest = (r: RunRecord) =>
      r.endedAt !== undefined && r.endedAt > r.startedAt ? r.endedAt : r.startedAt;
    if (!this.index || !(await this.refreshIndexed())) {
      const runs = (await this.list({ limit: Number.MAX_SAFE_INTEGER })).filter((r) => latest(r) > from);
      return {
        cursor: runs.reduce((c, r) => (latest(r) > c ? latest(r) : c), from),
        runs: runs.slice(0, limit),
      };
    }
    // `$` sorts right after `#`: keys of changes at exactly `since` are left out, later ones kept.
    const page = await this.index.query('changed', {
      descending: true,
      limit,
      ...(since !== undefined ? { range: { op: 'ge', value: `${since}$` } } : {}),
    });
    const seen = new Set<string>();
    const runs: RunRecord[] = [];
    let cursor = from;
    for (const item of page.items) {
      const record = fromItem(item);
      if (latest(record) > cursor) cursor = latest(record);
      const id = `${record.pipeline}#${runKey(record)}`;
      if (seen.has(id)) continue;
      seen.add(id);
      runs.push(record);
    }
    return { cursor, runs };
  }

  /** Runs newest first, strictly older than `bound` (a key of the scope), `pageSize` items per read. */
  private async *descending(
    pipeline: string | undefined,
    bound: string | undefined,
    pageSize: number,
    startedAfter?: string,
  ): AsyncGenerator<Keyed> {
    // Keys start with the start time; `$` sorts right after `#`, so `> <time>$` means "started after <time>".
    const range: RangeCondition | undefined =
      bound !== undefined
        ? { op: 'lt', value: bound }
        : startedAfter !== undefined
          ? { op: 'gt', value: `${startedAfter}$` }
          : undefined;
    yield* this.ordered(pipeline, range, pageSize, true);
  }

  private async *ascending(
    pipeline: string | undefined,
    bound: string,
    pageSize: number,
  ): AsyncGenerator<Keyed> {
    yield* this.ordered(pipeline, { op: 'gt', value: bound }, pageSize, false);
  }

  private async *ordered(
    pipeline: string | undefined,
    condition: RangeCondition | undefined,
    pageSize: number,
    descending: boolean,
  ): AsyncGenerator<Keyed> {
    const range = condition === undefined ? {} : { range: condition };
    if (pipeline !== undefined) {
      for await (const item of allPages((cursor) =>
        this.table.query(pipeline, { descending, limit: pageSize, ...range, ...(cursor ? { cursor } : {}) }),
      )) {
        yield { key: String(item.run_key), record: fromItem(item) };
      }
      return;
    }
    const index = this.index;
    if (index && (await this.refreshIndexed())) {
      for await (const item of allPages((cursor) =>
        index.query('started', { descending, limit: pageSize, ...range, ...(cursor ? { cursor } : {}) }),
      )) {
        yield { key: String(item.time_key), record: fromItem(item) };
      }
      return;
    }
    // Not indexed yet (a home written before the index): read sluice_runs whole, as before.
    const all: Keyed[] = [];
    for await (const item of allPages((cursor) => this.table.scan(cursor ? { cursor } : {}))) {
      const record = fromItem(item);
      all.push({ key: startedKey(record), record });
    }
    all.sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0));
    if (!descending) all.reverse();
    for (const keyed of all) if (inRange(keyed.key, condition)) yield keyed;
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

/** True when `key` meets `condition` (the `lt` / `gt` conditions the log queries with; none: true). */
function inRange(key: string, condition: RangeCondition | undefined): boolean {
  if (condition === undefined) return true;
  if (condition.op === 'lt') return key < String(condition.value);
  if (condition.op === 'gt') return key > String(condition.value);
  throw new Error(`run log: unexpected range condition ${condition.op}`);
}

/** `<startedAt>#<pipeline>#<run_key>`: the run's key in the `started` series. */
function startedKey(record: RunRecord): string {
  return `${record.startedAt}#${record.pipeline}#${runKey(record)}`;
}

/** The run's two index items: its latest record in `started`, a snapshot of this write in `changed`. */
function indexItems(record: RunRecord): Item[] {
  const item = toItem(record);
  const changedAt = record.endedAt ?? record.startedAt;
  return [
    { ...item, series: 'started', time_key: startedKey(record) },
    { ...item, series: 'changed', time_key: `${changedAt}#${record.pipeline}#${runKey(record)}` },
  ];
}

/** A page cursor: base64url of `[scope, key]`, scope the pipeline filter (`*`: all pipelines). */
function encodeRunCursor(scope: string, key: string): string {
  const bytes = new TextEncoder().encode(JSON.stringify([scope, key]));
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

/**
 * The key in a cursor from {@link encodeRunCursor}.
 * @throws {UsageError} when it is malformed or was made for another pipeline filter.
 */
function decodeRunCursor(cursor: string, scope: string): string {
  let decoded: unknown;
  try {
    const binary = atob(cursor.replaceAll('-', '+').replaceAll('_', '/'));
    decoded = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
  } catch {
    decoded = undefined;
  }
  if (!Array.isArray(decoded) || decoded.length !== 2 || typeof decoded[1] !== 'string') {
    throw new UsageError(`invalid runs cursor "${cursor}": use the older/newer cursor of a page`);
  }
  if (decoded[0] !== scope) {
    throw new UsageError(
      `the runs cursor was made for ${decoded[0] === '*' ? 'all pipelines' : `pipeline ${JSON.stringify(decoded[0])}`}, not for ${scope === '*' ? 'all pipelines' : `pipeline ${JSON.stringify(scope)}`}: start from the first page`,
    );
  }
  return decoded[1];
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
