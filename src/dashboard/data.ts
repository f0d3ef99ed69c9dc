import { ExecutionStore } from '../backends/local/local-workflow-runner.ts';
import type { Clock } from '../core/clock.ts';
import { NotFoundError, UsageError } from '../core/errors.ts';
import { isLayer, LAYERS, type Layer } from '../core/layer.ts';
import type { PipelineDefinition } from '../core/pipeline.ts';
import type { Backend } from '../core/ports/backend.ts';
import { qualifiedName } from '../core/ports/catalog.ts';
import { allPages, type JsonValue } from '../core/ports/kv-table.ts';
import type { ExecutionRecord, ExecutionStatus } from '../core/ports/workflow-runner.ts';
import { RunLog, type RunRecord, type RunStatus } from '../core/run.ts';
import { nextFireTimes, parseScheduleExpression } from '../engines/schedule/eventbridge.ts';
import { type GraphEdge, type GraphNode, workflowGraph } from './workflow-graph.ts';

/**
 * What the dashboard reads, through the ports only (runs, executions, catalog, object store,
 * key-value tables), so it shows any backend. Lists are paged on the server: `{ items, total,
 * offset, limit, nextOffset }` with `nextOffset` `null` on the last page.
 */

/** A page of a list. */
export interface Page<T> {
  readonly items: T[];
  /** Items matching the filters, over all pages. */
  readonly total: number;
  readonly offset: number;
  readonly limit: number;
  /** Offset of the next page, `null` on the last. */
  readonly nextOffset: number | null;
}

/** Paging parameters: `limit` 1..500 (default 50), `offset` >= 0. */
export interface Paging {
  readonly limit: number;
  readonly offset: number;
}

/** Parses `?limit=&offset=` (also `cursor=`, the same number), clamped to 1..500 and >= 0. */
export function parsePaging(
  query: { limit?: string | undefined; offset?: string | undefined; cursor?: string | undefined },
  defaultLimit = 50,
): Paging {
  const limit = Number(query.limit ?? defaultLimit);
  const offset = Number(query.offset ?? query.cursor ?? 0);
  return {
    limit: Number.isInteger(limit) ? Math.min(500, Math.max(1, limit)) : defaultLimit,
    offset: Number.isInteger(offset) && offset >= 0 ? offset : 0,
  };
}

/** The page of `all` at `paging`. */
export function page<T>(all: readonly T[], paging: Paging): Page<T> {
  const items = all.slice(paging.offset, paging.offset + paging.limit);
  const end = paging.offset + items.length;
  return {
    items,
    total: all.length,
    offset: paging.offset,
    limit: paging.limit,
    nextOffset: end < all.length ? end : null,
  };
}

/** A page from `items` already read at `paging` (by the store), out of `total`. */
export function pageOf<T>(items: T[], paging: Paging, total: number): Page<T> {
  const end = paging.offset + items.length;
  return { items, total, offset: paging.offset, limit: paging.limit, nextOffset: end < total ? end : null };
}

/** A pipeline as the dashboard shows it. */
export interface PipelineView {
  readonly name: string;
  readonly description: string;
  readonly datasets: { readonly table: string; readonly layer: Layer; readonly description?: string }[];
  readonly workflows: {
    readonly name: string;
    readonly description: string;
    readonly nodes: GraphNode[];
    readonly edges: GraphEdge[];
  }[];
  readonly schedules: {
    readonly name: string;
    readonly expression: string;
    readonly workflow: string;
    readonly description: string;
    readonly missedRunPolicy: string;
    readonly next: string[];
  }[];
  readonly triggers: {
    readonly name: string;
    readonly layer: Layer;
    readonly prefix: string;
    readonly suffix: string;
    readonly workflow: string;
    readonly description: string;
  }[];
  /** Bookmarks of the pipeline's jobs (key-value table `jobs`), when it has any. */
  readonly bookmarks: { readonly jobId: string; readonly bookmark: JsonValue }[];
  readonly queries: { readonly name: string; readonly description: string }[];
}

/** Read access for the dashboard's pages and API. */
export class DashboardData {
  private openedRunLog: Promise<RunLog> | undefined;

  constructor(
    readonly backend: Backend,
    readonly pipelines: Readonly<Record<string, PipelineDefinition>>,
    private readonly clock: Clock,
  ) {}

  /** Every pipeline's definition with graphs, next fire times (3 per schedule, UTC) and bookmarks. */
  async listPipelines(): Promise<PipelineView[]> {
    const jobs: { jobId: string; bookmark: JsonValue }[] = [];
    const table = await this.backend.kv.table('jobs', { hashKey: { name: 'job_id', type: 'S' } });
    for await (const item of allPages((cursor) => table.scan(cursor ? { cursor } : {}))) {
      if (item.bookmark !== undefined) jobs.push({ jobId: String(item.job_id), bookmark: item.bookmark });
    }
    const now = this.clock.now();
    return Object.values(this.pipelines).map((p) => ({
      name: p.name,
      description: p.description,
      datasets: p.datasets.map((d) => ({
        table: `${p.name}.${d.name}`,
        layer: d.layer,
        ...(d.description ? { description: d.description } : {}),
      })),
      workflows: (p.workflows ?? []).map((w) => ({
        name: w.name,
        description: w.description,
        ...workflowGraph(w.definition),
      })),
      schedules: (p.schedules ?? []).map((s) => {
        let next: string[];
        try {
          next = nextFireTimes(parseScheduleExpression(s.expression), now, 3).map((d) => d.toISOString());
        } catch {
          next = [];
        }
        return {
          name: s.name,
          expression: s.expression,
          workflow: s.workflow,
          description: s.description,
          missedRunPolicy: s.missedRunPolicy,
          next,
        };
      }),
      triggers: (p.triggers ?? []).map((t) => ({
        name: t.name,
        layer: t.layer,
        prefix: t.prefix,
        suffix: t.suffix,
        workflow: t.workflow,
        description: t.description,
      })),
      bookmarks: jobs.filter(
        (j) => j.jobId === p.name || j.jobId.startsWith(`${p.name}-`) || j.jobId.startsWith(`${p.name}.`),
      ),
      queries: (p.queries ?? []).map((q) => ({
        name: `${q.database}.${q.name}`,
        description: q.description,
      })),
    }));
  }

  /**
   * Step runs, newest first, filtered by pipeline and status: one page read by key-range queries
   * ({@link RunLog.page}), never the whole log (except on a home whose time index is not built
   * yet: see docs/dashboard.md). `paging.offset` still works (cost grows with it); `older` /
   * `newer` cursors page in constant cost.
   * @throws {UsageError} on an unknown status or a bad cursor.
   */
  async runs(
    filter: { pipeline?: string; status?: string },
    paging: Paging & { older?: string | undefined; newer?: string | undefined },
  ): Promise<RunsPage> {
    const status = filter.status ? runStatus(filter.status) : undefined;
    const log = await this.runLog();
    const result = await log.page({
      limit: paging.limit,
      offset: paging.offset,
      ...(filter.pipeline ? { pipeline: filter.pipeline } : {}),
      ...(status ? { status } : {}),
      ...(paging.older ? { older: paging.older } : {}),
      ...(paging.newer ? { newer: paging.newer } : {}),
    });
    const byOffset = !paging.older && !paging.newer;
    return {
      items: result.items,
      total: result.total,
      offset: byOffset ? paging.offset : 0,
      limit: paging.limit,
      nextOffset: byOffset && result.older !== null ? paging.offset + result.items.length : null,
      older: result.older,
      newer: result.newer,
    };
  }

  /**
   * The overview's run lists and counts: the latest runs, the latest failed ones (each one
   * page), and how many runs started in the last `hours` hours and how many of them failed (read
   * up to 10,000 runs back; `capped` when there were more).
   */
  async runsOverview(
    latest: number,
    latestFailed: number,
    hours = 24,
  ): Promise<{
    runs: RunsPage;
    failedRuns: RunsPage;
    recent: { hours: number; runs: number; failed: number; capped: boolean };
  }> {
    const first = { limit: latest, offset: 0 };
    const since = new Date(this.clock.now().getTime() - hours * 3_600_000).toISOString();
    const log = await this.runLog();
    const window = await log.page({ limit: RECENT_CAP, startedAfter: since });
    return {
      runs: await this.runs({}, first),
      failedRuns: await this.runs({ status: 'failed' }, { limit: latestFailed, offset: 0 }),
      recent: {
        hours,
        runs: window.items.length,
        failed: window.items.filter((r) => r.status === 'failed').length,
        capped: window.older !== null,
      },
    };
  }

  /** The run log, opened once, read-only (no backfill: a writer's `RunLog.open` builds the index). */
  private runLog(): Promise<RunLog> {
    this.openedRunLog ??= RunLog.open(this.backend.kv, this.clock, { backfill: false });
    return this.openedRunLog;
  }

  /** Workflow executions, newest first. */
  async executions(
    filter: { pipeline?: string; status?: string; workflow?: string },
    paging: Paging,
  ): Promise<Page<ExecutionRecord>> {
    const store = await ExecutionStore.open(this.backend.kv);
    const all = await store.list({
      limit: Number.MAX_SAFE_INTEGER,
      ...(filter.pipeline ? { pipeline: filter.pipeline } : {}),
      ...(filter.workflow ? { workflow: filter.workflow } : {}),
      ...(filter.status ? { status: filter.status.toUpperCase() as ExecutionStatus } : {}),
    });
    return page(all, paging);
  }

  /** One execution with its history. @throws {NotFoundError} */
  async execution(
    id: string,
  ): Promise<{ execution: ExecutionRecord; events: Awaited<ReturnType<ExecutionStore['history']>> }> {
    const store = await ExecutionStore.open(this.backend.kv);
    const execution = await store.describe(id);
    if (!execution) throw new NotFoundError(`no execution "${id}"`);
    return { execution, events: await store.history(id) };
  }

  /** Cataloged tables with partition counts, rows and bytes. */
  async catalog(filter: { pipeline?: string }) {
    const tables = await this.backend.catalog.listTables(filter.pipeline || undefined);
    const out = [];
    for (const t of tables) {
      const summary = await this.backend.catalog.summarizePartitions(t.database, t.name);
      out.push({
        table: qualifiedName(t),
        database: t.database,
        name: t.name,
        format: t.format,
        layer: t.location.layer,
        prefix: t.location.prefix,
        schemaVersion: t.schemaVersion,
        columns: t.columns.length,
        description: t.description ?? '',
        partitions: summary.partitions,
        rows: summary.rows,
        bytes: summary.bytes,
        updatedAt: t.updatedAt.toISOString(),
      });
    }
    return out;
  }

  /** One table: columns, schema versions with their differences, partitions (paged, newest values last). @throws {NotFoundError} */
  async table(database: string, name: string, paging: Paging) {
    const t = await this.backend.catalog.getTable(database, name);
    if (!t) throw new NotFoundError(`no table ${database}.${name} in the catalog`);
    const versions = await this.backend.catalog.listSchemaVersions(database, name);
    // One page of partitions, newest values first, read by SQL LIMIT/OFFSET: never the whole table.
    const { partitions: total } = await this.backend.catalog.summarizePartitions(database, name);
    const partitions = await this.backend.catalog.listPartitions(database, name, {
      descending: true,
      limit: paging.limit,
      offset: paging.offset,
    });
    const diffs = versions.map((v, i) => {
      const before = i > 0 ? versions[i - 1] : undefined;
      const prev = new Map((before?.columns ?? []).map((c) => [c.name, c.type]));
      const cur = new Map(v.columns.map((c) => [c.name, c.type]));
      return {
        version: v.version,
        createdAt: v.createdAt.toISOString(),
        createdBy: v.createdBy ?? null,
        added: before ? [...cur.keys()].filter((c) => !prev.has(c)) : [...cur.keys()],
        removed: [...prev.keys()].filter((c) => !cur.has(c)),
        changed: [...cur.entries()]
          .filter(([c, type]) => prev.has(c) && prev.get(c) !== type)
          .map(([c, type]) => `${c}: ${prev.get(c)} -> ${type}`),
      };
    });
    return {
      table: qualifiedName(t),
      database: t.database,
      name: t.name,
      description: t.description ?? '',
      format: t.format,
      location: t.location,
      managedBy: t.managedBy ?? 'pipeline',
      primaryKey: t.primaryKey ?? [],
      schemaVersion: t.schemaVersion,
      columns: [
        ...t.columns.map((c) => ({
          name: c.name,
          type: c.type,
          nullable: c.nullable !== false,
          comment: c.comment ?? '',
          partitionKey: false,
        })),
        ...t.partitionKeys.map((c) => ({
          name: c.name,
          type: c.type,
          nullable: false,
          comment: 'partition key',
          partitionKey: true,
        })),
      ],
      versions: diffs,
      partitions: pageOf(
        partitions.map((p) => ({
          values: p.values,
          prefix: p.prefix,
          files: p.files,
          rows: p.rows ?? null,
          bytes: p.bytes,
          runId: p.runId ?? null,
          schemaVersion: p.schemaVersion,
          updatedAt: p.updatedAt.toISOString(),
        })),
        paging,
        total,
      ),
    };
  }

  /** Objects of a layer under a prefix (key order), paged; for the Lake and Quarantine pages. */
  async objects(layer: string, prefix: string, paging: Paging) {
    if (!isLayer(layer)) throw new NotFoundError(`no layer "${layer}" (layers: ${LAYERS.join(', ')})`);
    const items: { key: string; size: number; lastModified: string }[] = [];
    let total = 0;
    for await (const info of this.backend.objectStore.list(layer, prefix)) {
      if (total >= paging.offset && items.length < paging.limit) {
        items.push({ key: info.key, size: info.size, lastModified: info.lastModified.toISOString() });
      }
      total++;
    }
    const end = paging.offset + items.length;
    return { items, total, offset: paging.offset, limit: paging.limit, nextOffset: end < total ? end : null };
  }

  /**
   * The first `maxRecords` rejected records of a quarantine object (NDJSON: one record per line,
   * each with its source, line and reason as the pipeline wrote them; other lines as text).
   */
  async quarantineRecords(
    key: string,
    maxRecords = 200,
  ): Promise<{ key: string; records: JsonValue[]; truncated: boolean }> {
    const bytes = await this.backend.objectStore.getBytes({ layer: 'quarantine', key });
    const lines = new TextDecoder()
      .decode(bytes.subarray(0, 4 * 1024 * 1024))
      .split('\n')
      .filter((l) => l.trim() !== '');
    const records = lines.slice(0, maxRecords).map((line): JsonValue => {
      try {
        return JSON.parse(line) as JsonValue;
      } catch {
        return { text: line };
      }
    });
    return { key, records, truncated: lines.length > maxRecords || bytes.length > 4 * 1024 * 1024 };
  }

  /**
   * Changes since `cursor` (an ISO time; none: the latest) over runs and executions, for live
   * updates: runs and executions whose start or end is after it (at most 100 of each, newest
   * changes first), and the new cursor (the latest such time seen). Runs come from one range query
   * on the run log's time index ({@link RunLog.changedSince}); executions are still read whole
   * (the execution store has no time index yet). Poll it, or use the SSE stream that polls it for you.
   */
  async changes(
    cursor: string | undefined,
  ): Promise<{ cursor: string; runs: RunRecord[]; executions: ExecutionRecord[] }> {
    const since = cursor ?? '';
    const log = await this.runLog();
    const store = await ExecutionStore.open(this.backend.kv);
    const latest = (a: string, b: string | undefined) => (b !== undefined && b > a ? b : a);
    const runs = await log.changedSince(cursor, 100);
    const executions = (await store.list({ limit: Number.MAX_SAFE_INTEGER })).filter(
      (e) => latest(e.startedAt, e.stoppedAt) > since,
    );
    let next = latest(since, runs.cursor);
    for (const e of executions) next = latest(next, latest(e.startedAt, e.stoppedAt));
    return { cursor: next, runs: runs.runs, executions: executions.slice(0, 100) };
  }
}

/** Runs read at most for the overview's "last 24 h" counts. */
const RECENT_CAP = 10_000;

/** A page of runs: offset paging (`total` exact only when known without reading further) and cursors. */
export interface RunsPage {
  readonly items: RunRecord[];
  /** Matching runs over all pages when this page reached the oldest from the newest; else `null`. */
  readonly total: number | null;
  readonly offset: number;
  readonly limit: number;
  /** Offset of the next page, `null` on the last (or when paging by cursor). */
  readonly nextOffset: number | null;
  /** Cursor of the next page of older runs (`?older=`), `null` on the last. */
  readonly older: string | null;
  /** Cursor of the page of newer runs (`?newer=`), `null` on the first. */
  readonly newer: string | null;
}

function runStatus(status: string): RunStatus {
  if (!RUN_STATUSES.includes(status as RunStatus))
    throw new UsageError(`unknown run status "${status}" (statuses: ${RUN_STATUSES.join(', ')})`);
  return status as RunStatus;
}

const RUN_STATUSES: readonly RunStatus[] = [
  'running',
  'succeeded',
  'partial',
  'failed',
  'aborted',
  'skipped',
];
