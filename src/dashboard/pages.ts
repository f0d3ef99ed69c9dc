import type { ExecutionEvent, ExecutionRecord } from '../core/ports/workflow-runner.ts';
import type { RunRecord } from '../core/run.ts';
import { formatCheckSummary } from '../engines/quality/checks.ts';
import type { DashboardData, Page, PipelineView, RunsPage } from './data.ts';
import { html, jsonScript, type SafeHtml } from './html.ts';
import { workflowSvg } from './workflow-graph.ts';

/**
 * Server-rendered pages. Every value from data goes through the `html` tag (escaped); data for
 * charts goes to the page's static script as `<script type="application/json">` (escaped by
 * {@link jsonScript}) or through the JSON API; no inline script is ever built.
 */

/** A chart the page's script draws with Chart.js from the result of `sql` (first column: labels; the others: series). */
export interface ChartSpec {
  readonly title: string;
  readonly sql: string;
  readonly type: 'bar' | 'line' | 'pie';
  /** Run on the warehouse instead of the lake. */
  readonly warehouse?: boolean;
  /** Horizontal bars (long labels). */
  readonly horizontal?: boolean;
  /** The result is long: (label, series name, value) rows, pivoted into one series per name. */
  readonly pivot?: boolean;
  /** Stack the series (bar charts). */
  readonly stacked?: boolean;
}

/** A result table the page's script fills from the result of `sql` (at most 1,000 rows). */
export interface TableSpec {
  readonly title: string;
  readonly sql: string;
  readonly warehouse?: boolean;
}

const NAV: readonly [string, string][] = [
  ['/', 'Overview'],
  ['/pipelines', 'Pipelines'],
  ['/runs', 'Runs'],
  ['/executions', 'Executions'],
  ['/catalog', 'Catalog'],
  ['/lake', 'Lake'],
  ['/quarantine', 'Quarantine'],
  ['/quality', 'Quality'],
  ['/sql', 'SQL'],
];

/** The page frame: navigation, stylesheet, Chart.js and the dashboard script (all static files). */
export function layout(title: string, active: string, body: SafeHtml, data: SafeHtml[] = []): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · sluice</title><link rel="stylesheet" href="/static/dashboard.css"></head>
<body><header><a class="brand" href="/">sluice</a><nav>${NAV.map(([href, label]) => html`<a href="${href}"${active === href ? html` class="active"` : html``}>${label}</a>`)}</nav><span id="live" class="live" title="live updates">●</span></header>
<main><h1>${title}</h1>${body}</main>${data}
<script src="/static/chart.umd.min.js"></script><script src="/static/dashboard.js"></script></body></html>`.toString();
}

function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

function formatCount(n: number | null | undefined): string {
  return n === null || n === undefined ? '' : n.toLocaleString('en-US');
}

function formatTime(iso: string | undefined): string {
  return iso ? iso.replace('T', ' ').slice(0, 19) : '';
}

function formatMs(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

function duration(start: string, end: string | undefined): string {
  return end ? formatMs(Date.parse(end) - Date.parse(start)) : 'running';
}

function statusBadge(status: string): SafeHtml {
  return html`<span class="status status-${status.toLowerCase()}">${status}</span>`;
}

/** Links to the previous and next page, keeping the filters. */
function pager(base: string, filters: Record<string, string | undefined>, p: Page<unknown>): SafeHtml {
  const link = (offset: number) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    q.set('offset', String(offset));
    q.set('limit', String(p.limit));
    return `${base}?${q.toString()}`;
  };
  const from = p.total === 0 ? 0 : p.offset + 1;
  return html`<p class="pager">${from}–${p.offset + p.items.length} of ${formatCount(p.total)}
    ${p.offset > 0 ? html` <a rel="prev" href="${link(Math.max(0, p.offset - p.limit))}">← newer</a>` : ''}
    ${p.nextOffset !== null ? html` <a rel="next" href="${link(p.nextOffset)}">older →</a>` : ''}</p>`;
}

/**
 * Links to the pages of newer and older runs by cursor (`?newer=` / `?older=`), keeping the
 * filters and the page size. Shows the total only when it is known without reading further.
 */
function runPager(filters: Record<string, string | undefined>, p: RunsPage): SafeHtml {
  const link = (name: 'older' | 'newer', cursor: string) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    q.set(name, cursor);
    q.set('limit', String(p.limit));
    return `/runs?${q.toString()}`;
  };
  const shown =
    p.total !== null
      ? html`${p.total === 0 ? 0 : p.offset + 1}–${p.offset + p.items.length} of ${formatCount(p.total)}`
      : html`${formatCount(p.items.length)} runs, newest first`;
  return html`<p class="pager">${shown}
    ${p.newer !== null ? html` <a rel="prev" href="${link('newer', p.newer)}">← newer</a>` : ''}
    ${p.older !== null ? html` <a rel="next" href="${link('older', p.older)}">older →</a>` : ''}</p>`;
}

function filterForm(
  action: string,
  fields: { name: string; label: string; value: string | undefined; options: readonly string[] }[],
): SafeHtml {
  return html`<form class="filters" method="get" action="${action}">${fields.map(
    (f) =>
      html`<label>${f.label} <select name="${f.name}"><option value="">all</option>${f.options.map(
        (o) => html`<option value="${o}"${o === f.value ? html` selected` : ''}>${o}</option>`,
      )}</select></label> `,
  )}<button type="submit">Filter</button></form>`;
}

function table(headers: readonly string[], rows: readonly SafeHtml[], empty: string): SafeHtml {
  if (rows.length === 0) return html`<p class="empty">${empty}</p>`;
  return html`<table><thead><tr>${headers.map((h) => html`<th>${h}</th>`)}</tr></thead><tbody>${rows}</tbody></table>`;
}

/** Runs table rows with per-stage counts. */
export function runRows(runs: readonly RunRecord[]): SafeHtml[] {
  return runs.map(
    (
      r,
    ) => html`<tr><td><a href="/pipelines/${encodeURIComponent(r.pipeline)}">${r.pipeline}</a></td><td>${r.step}</td><td>${r.unit ?? ''}</td><td>${formatTime(r.startedAt)}</td><td>${duration(r.startedAt, r.endedAt)}</td><td>${statusBadge(r.status)}</td>
<td class="num">${formatCount(r.counts?.read)}</td><td class="num">${formatCount(r.counts?.loaded)}</td><td class="num">${formatCount(r.counts?.duplicates)}</td><td class="num">${formatCount(r.counts?.quarantined)}</td><td class="num">${r.counts ? formatCount(r.counts.filtered ?? 0) : ''}</td><td>${formatCheckSummary(r.details?.checks)}</td><td class="error">${r.error ?? ''}</td><td class="mono">${r.runId}</td></tr>`,
  );
}

const RUN_HEADERS = [
  'pipeline',
  'step',
  'unit',
  'started (UTC)',
  'duration',
  'status',
  'read',
  'loaded',
  'duplicates',
  'quarantined',
  'filtered',
  'checks',
  'error',
  'run',
];

function executionRows(records: readonly ExecutionRecord[]): SafeHtml[] {
  return records.map(
    (e) =>
      html`<tr><td><a href="/executions/${encodeURIComponent(e.executionId)}">${e.executionId}</a></td><td>${e.workflow}</td><td>${statusBadge(e.status)}</td><td>${formatTime(e.startedAt)}</td><td>${duration(e.startedAt, e.stoppedAt)}</td><td>${e.source ? `${e.source.kind}: ${e.source.name}` : ''}</td><td class="error">${e.error ? `${e.failedState ? `${e.failedState}: ` : ''}${e.error}: ${e.cause ?? ''}` : ''}</td></tr>`,
  );
}

const EXECUTION_HEADERS = [
  'execution',
  'workflow',
  'status',
  'started (UTC)',
  'duration',
  'started by',
  'error',
];

/** Overview: counts by status, tables, latest runs and executions. */
export async function overviewPage(data: DashboardData): Promise<string> {
  const { runs, failedRuns, recent } = await data.runsOverview(10, 5);
  const executions = await data.executions({}, { limit: 10, offset: 0 });
  const tables = await data.catalog({});
  const pipelines = Object.keys(data.pipelines);
  const rows = tables.reduce((n, t) => n + t.rows, 0);
  const bytes = tables.reduce((n, t) => n + t.bytes, 0);
  const body = html`<section class="cards">
<div class="card"><b>${pipelines.length}</b> pipelines</div>
<div class="card"><b>${formatCount(recent.runs)}${recent.capped ? '+' : ''}</b> step runs in the last ${recent.hours} h</div>
<div class="card"><b>${formatCount(recent.failed)}${recent.capped ? '+' : ''}</b> failed in the last ${recent.hours} h</div>
<div class="card"><b>${formatCount(executions.total)}</b> executions</div>
<div class="card"><b>${tables.length}</b> tables</div>
<div class="card"><b>${formatCount(rows)}</b> rows, ${formatBytes(bytes)}</div></section>
<h2>Rows per table</h2><div class="chart" data-chart="0"><canvas></canvas></div>
<h2>Latest runs</h2>${table(RUN_HEADERS, runRows(runs.items), 'no runs yet: try `sluice demo`')}<p><a href="/runs">all runs →</a></p>
${failedRuns.items.length > 0 ? html`<h2>Latest failed runs</h2>${table(RUN_HEADERS, runRows(failedRuns.items), '')}` : ''}
<h2>Latest executions</h2>${table(EXECUTION_HEADERS, executionRows(executions.items), 'no executions yet: `sluice up` runs the workflows')}`;
  const charts: ChartSpec[] = [
    { title: 'rows per table', type: 'bar', horizontal: true, sql: 'SELECT 1 AS unused WHERE false' },
  ];
  return layout('Overview', '/', body, [
    jsonScript('charts', charts),
    jsonScript('chart-data-0', {
      columns: ['table', 'rows'],
      rows: tables.map((t) => ({ table: t.table, rows: t.rows })),
    }),
  ]);
}

function pipelineSummary(p: PipelineView): SafeHtml {
  return html`<tr><td><a href="/pipelines/${encodeURIComponent(p.name)}">${p.name}</a></td><td>${p.description}</td><td>${p.workflows.map((w) => w.name).join(', ')}</td><td>${p.schedules.map((s) => `${s.name}: ${s.expression}, next ${formatTime(s.next[0])}`).join('; ')}</td><td>${p.triggers.map((t) => `${t.layer}/${t.prefix}*${t.suffix}`).join('; ')}</td><td>${p.bookmarks.map((b) => `${b.jobId}: ${JSON.stringify(b.bookmark)}`).join('; ')}</td></tr>`;
}

/** Pipelines: definitions with schedules, triggers, bookmarks. */
export async function pipelinesPage(data: DashboardData): Promise<string> {
  const pipelines = await data.listPipelines();
  return layout(
    'Pipelines',
    '/pipelines',
    table(
      ['pipeline', 'description', 'workflows', 'schedules (next fire, UTC)', 'triggers', 'bookmark'],
      pipelines.map(pipelineSummary),
      'no pipelines',
    ),
  );
}

/** The charts of each shipped pipeline (the numbers come from `/api/query`, as `sluice query` would). */
export const PIPELINE_CHARTS: Readonly<Record<string, readonly ChartSpec[]>> = {
  gharchive: [
    {
      title: 'events per type',
      type: 'bar',
      horizontal: true,
      sql: 'SELECT type, count(*) AS events FROM gharchive.events GROUP BY type ORDER BY events DESC, type',
    },
    {
      title: 'events per hour',
      type: 'line',
      sql: "SELECT strftime(date_trunc('hour', created_at), '%Y-%m-%d %H:00') AS hour, count(*) AS events FROM gharchive.events GROUP BY 1 ORDER BY 1",
    },
    {
      title: 'top repositories',
      type: 'bar',
      horizontal: true,
      sql: 'SELECT repo_name, count(*) AS events FROM gharchive.events GROUP BY repo_name ORDER BY events DESC, repo_name LIMIT 15',
    },
  ],
  hashtags: [
    {
      title: 'top hashtags',
      type: 'bar',
      horizontal: true,
      sql: 'SELECT hashtag, mentions FROM hashtags.top_hashtags ORDER BY mentions DESC, hashtag LIMIT 15',
    },
    {
      title: 'mean sentiment (VADER polarity) per hashtag',
      type: 'bar',
      horizontal: true,
      sql: 'SELECT s.hashtag, round(s.mean_polarity, 3) AS polarity FROM hashtags.hashtag_sentiment s JOIN hashtags.top_hashtags t USING (hashtag) ORDER BY t.mentions DESC, s.hashtag LIMIT 15',
    },
    {
      title: 'top users',
      type: 'bar',
      horizontal: true,
      sql: 'SELECT user_name, count(*) AS rows FROM hashtags.hashtag_data GROUP BY user_name ORDER BY rows DESC, user_name LIMIT 15',
    },
  ],
  tolls: [
    {
      title: 'revenue per booth per day (warehouse)',
      type: 'bar',
      warehouse: true,
      pivot: true,
      stacked: true,
      sql: "SELECT replace(transaction_date, '/', '-') AS day, toll_booth, round(sum(transaction_amount::numeric), 2)::float8 AS revenue FROM toll_table GROUP BY 1, 2 ORDER BY 1, 2",
    },
    {
      title: 'revenue per booth (warehouse)',
      type: 'bar',
      warehouse: true,
      sql: 'SELECT toll_booth, round(sum(transaction_amount::numeric), 2)::float8 AS revenue FROM toll_table GROUP BY toll_booth ORDER BY revenue DESC, toll_booth',
    },
    {
      title: 'transactions per vehicle category (warehouse)',
      type: 'pie',
      warehouse: true,
      sql: 'SELECT vehicle_category, count(*) AS transactions FROM toll_table GROUP BY vehicle_category ORDER BY transactions DESC',
    },
  ],
  quotes: [
    {
      title: 'quote_count distribution',
      type: 'bar',
      sql: 'SELECT quote_count, count(*) AS quotes FROM quotes.quotes_agg GROUP BY quote_count ORDER BY quote_count',
    },
    {
      title: 'quote_count statistics per day',
      type: 'line',
      sql: "SELECT strftime(dt, '%Y-%m-%d') AS day, min(quote_count) AS min, round(avg(quote_count), 2) AS mean, max(quote_count) AS max FROM quotes.quotes_agg GROUP BY dt ORDER BY dt",
    },
  ],
  nba: [
    {
      title: 'tweets per player per day (the 8 most mentioned players)',
      type: 'bar',
      pivot: true,
      stacked: true,
      sql: "WITH top AS (SELECT player FROM nba.players_total_tweets GROUP BY player ORDER BY sum(total) DESC, player LIMIT 8) SELECT strftime(make_date(p.year, p.month, p.day), '%Y-%m-%d') AS day, p.player, sum(p.total) AS tweets FROM nba.players_total_tweets p JOIN top USING (player) GROUP BY 1, 2 ORDER BY 1, 2",
    },
    {
      title: 'player annotations per day',
      type: 'line',
      sql: "SELECT strftime(make_date(year, month, day), '%Y-%m-%d') AS day, sum(total) AS annotations FROM nba.players_total_tweets GROUP BY 1 ORDER BY 1",
    },
    {
      title: 'tampering alerts per day',
      type: 'bar',
      sql: "SELECT strftime(window_start, '%Y-%m-%d') AS day, count(*) AS alerts FROM nba.tampering_alerts GROUP BY 1 ORDER BY 1",
    },
    {
      title: 'most mentioned players',
      type: 'bar',
      horizontal: true,
      sql: 'SELECT player, sum(total) AS annotations FROM nba.players_total_tweets GROUP BY player ORDER BY annotations DESC, player LIMIT 15',
    },
  ],
};

/** Result tables of the shipped pipelines' pages, filled like the charts (through `/api/query`). */
export const PIPELINE_TABLES: Readonly<Record<string, readonly TableSpec[]>> = {
  nba: [
    {
      title: 'tampering alerts with their windows (latest 50)',
      sql: "SELECT strftime(window_start, '%Y-%m-%d %H:%M:%S') AS window_start, strftime(window_end, '%Y-%m-%d %H:%M:%S') AS window_end, team, tampering_player, total, array_to_string(players, ', ') AS players, firing FROM nba.tampering_alerts ORDER BY nba.tampering_alerts.window_start DESC, team, tampering_player, firing LIMIT 50",
    },
  ],
};

/** One pipeline: charts, workflow graphs, schedules, triggers, bookmark, latest runs. */
export async function pipelinePage(data: DashboardData, name: string): Promise<string | undefined> {
  const p = (await data.listPipelines()).find((x) => x.name === name);
  if (!p) return undefined;
  const charts = PIPELINE_CHARTS[name] ?? [];
  const tables = PIPELINE_TABLES[name] ?? [];
  const runs = await data.runs({ pipeline: name }, { limit: 10, offset: 0 });
  const body = html`<p>${p.description}</p>
<section class="charts">${charts.map((c, i) => html`<figure class="chart" data-chart="${i}"><figcaption>${c.title}</figcaption><canvas></canvas><details><summary>SQL${c.warehouse ? ' (warehouse)' : ''}</summary><pre>${c.sql}</pre></details></figure>`)}</section>
${tables.map((t, i) => html`<figure class="result" data-table="${i}"><figcaption>${t.title}</figcaption><div class="result-table"></div><details><summary>SQL${t.warehouse ? ' (warehouse)' : ''}</summary><pre>${t.sql}</pre></details></figure>`)}
<h2>Datasets</h2>${table(
    ['table', 'layer', 'description'],
    p.datasets.map(
      (d) =>
        html`<tr><td><a href="/catalog/${encodeURIComponent(p.name)}/${encodeURIComponent(d.table.slice(p.name.length + 1))}">${d.table}</a></td><td>${d.layer}</td><td>${d.description ?? ''}</td></tr>`,
    ),
    'none',
  )}
<h2>Workflows</h2>${p.workflows.map((w) => html`<section class="workflow"><h3>${w.name}</h3><p>${w.description}</p><div class="graph">${workflowSvg(w)}</div></section>`)}
<h2>Schedules</h2>${table(
    ['schedule', 'expression', 'workflow', 'missed runs', 'next fire times (UTC)', 'description'],
    p.schedules.map(
      (s) =>
        html`<tr><td>${s.name}</td><td class="mono">${s.expression}</td><td>${s.workflow}</td><td>${s.missedRunPolicy}</td><td>${s.next.map(formatTime).join(', ')}</td><td>${s.description}</td></tr>`,
    ),
    'no schedules',
  )}
<h2>Triggers</h2>${table(
    ['trigger', 'objects created in', 'workflow', 'description'],
    p.triggers.map(
      (t) =>
        html`<tr><td>${t.name}</td><td class="mono">${t.layer}/${t.prefix}*${t.suffix}</td><td>${t.workflow}</td><td>${t.description}</td></tr>`,
    ),
    'no triggers',
  )}
<h2>Bookmark</h2>${table(
    ['job', 'bookmark'],
    p.bookmarks.map(
      (b) => html`<tr><td>${b.jobId}</td><td class="mono">${JSON.stringify(b.bookmark)}</td></tr>`,
    ),
    'no bookmark recorded',
  )}
<h2>Named queries</h2>${table(
    ['query', 'description'],
    p.queries.map((q) => html`<tr><td class="mono">${q.name}</td><td>${q.description}</td></tr>`),
    'none',
  )}
<h2>Latest runs</h2>${table(RUN_HEADERS, runRows(runs.items), 'no runs yet')}<p><a href="/runs?pipeline=${encodeURIComponent(name)}">all runs of ${name} →</a></p>`;
  return layout(`Pipeline ${name}`, '/pipelines', body, [
    jsonScript('charts', charts),
    ...(tables.length > 0 ? [jsonScript('tables', tables)] : []),
  ]);
}

const RUN_STATUSES = ['running', 'succeeded', 'partial', 'failed', 'aborted', 'skipped'];
const EXECUTION_STATUSES = ['RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED'];

/** Runs with filters and pagination. */
export async function runsPage(
  data: DashboardData,
  filter: { pipeline?: string; status?: string },
  paging: Parameters<DashboardData['runs']>[1],
): Promise<string> {
  const runs = await data.runs(filter, paging);
  const body = html`${filterForm('/runs', [
    { name: 'pipeline', label: 'pipeline', value: filter.pipeline, options: Object.keys(data.pipelines) },
    { name: 'status', label: 'status', value: filter.status, options: RUN_STATUSES },
  ])}${table(RUN_HEADERS, runRows(runs.items), 'no runs match')}${runPager(filter, runs)}`;
  return layout('Runs', '/runs', body);
}

/** Executions with filters and pagination. */
export async function executionsPage(
  data: DashboardData,
  filter: { pipeline?: string; status?: string },
  paging: { limit: number; offset: number },
): Promise<string> {
  const executions = await data.executions(filter, paging);
  const body = html`${filterForm('/executions', [
    { name: 'pipeline', label: 'pipeline', value: filter.pipeline, options: Object.keys(data.pipelines) },
    { name: 'status', label: 'status', value: filter.status, options: EXECUTION_STATUSES },
  ])}${table(EXECUTION_HEADERS, executionRows(executions.items), 'no executions match')}${pager('/executions', filter, executions)}`;
  return layout('Executions', '/executions', body);
}

/** One attempt of a state: entered (or retried) until it exited, failed or was caught. */
interface Attempt {
  from: number;
  to: number | undefined;
  outcome: string;
}

/** One state entry of an execution, from StateEntered to its final outcome, with its attempts. */
export interface StateInterval {
  readonly state: string;
  readonly from: number;
  readonly to: number;
  /** `ok`, `caught <error>`, `failed <error>` or `running`. */
  readonly outcome: string;
  readonly retries: number;
  readonly attempts: readonly Attempt[];
}

/**
 * State intervals of an execution's history, one per StateEntered, in entry order: a failed attempt
 * followed by StateRetried starts the next attempt of the same interval; StateCaught ends it as
 * caught, StateExited as ok; a last failed attempt with nothing after it ends it as failed.
 */
export function stateIntervals(events: readonly ExecutionEvent[], start: number): StateInterval[] {
  interface Open {
    state: string;
    from: number;
    seq: number;
    retries: number;
    attempts: Attempt[];
    failure?: string | undefined;
    /** The error of the last failed attempt (StateCaught may not repeat it). */
    error?: string | undefined;
  }
  const open = new Map<string, Open>();
  const done: (StateInterval & { seq: number })[] = [];
  const keyOf = (e: ExecutionEvent) => `${e.state ?? ''}#${e.parent?.state ?? ''}#${e.parent?.index ?? ''}`;
  const close = (key: string, o: Open, to: number, outcome: string) => {
    open.delete(key);
    const last = o.attempts[o.attempts.length - 1];
    if (last && last.to === undefined) {
      last.to = to;
      last.outcome = outcome;
    }
    const { failure: _failure, error: _error, ...rest } = o;
    done.push({ ...rest, to, outcome });
  };
  for (const e of events) {
    const t = Date.parse(e.timestamp) - start;
    const key = keyOf(e);
    const o = open.get(key);
    if (e.type === 'StateEntered' && e.state) {
      if (o) close(key, o, t, 'running');
      open.set(key, {
        state: e.parent?.index !== undefined ? `${e.state} [${e.parent.index}]` : e.state,
        from: t,
        seq: e.seq,
        retries: 0,
        attempts: [{ from: t, to: undefined, outcome: 'running' }],
      });
    } else if (!o) {
      // An event of a state never entered (a truncated history): nothing to draw.
    } else if (e.type === 'StateFailed') {
      const last = o.attempts[o.attempts.length - 1];
      if (last && last.to === undefined) {
        last.to = t;
        last.outcome = `failed ${e.error ?? ''}`.trim();
      }
      o.failure = `failed ${e.error ?? ''}`.trim();
      o.error = e.error;
    } else if (e.type === 'StateRetried') {
      o.retries++;
      o.failure = undefined;
      o.attempts.push({ from: t, to: undefined, outcome: 'running' });
    } else if (e.type === 'StateCaught') {
      close(key, o, t, `caught ${e.error ?? o.error ?? ''}`.trim());
    } else if (e.type === 'StateExited') {
      close(key, o, t, o.failure ?? 'ok');
    }
  }
  for (const [key, o] of open) {
    const last = o.attempts[o.attempts.length - 1];
    if (o.failure) close(key, o, last?.to ?? o.from, o.failure);
    else close(key, o, o.from, 'running');
  }
  return done.sort((a, b) => a.from - b.from || a.seq - b.seq).map(({ seq: _seq, ...i }) => i);
}

/** One execution: record, state timeline (SVG bars), every event. */
export async function executionPage(data: DashboardData, id: string): Promise<string> {
  const { execution: e, events } = await data.execution(id);
  const start = Date.parse(e.startedAt);
  const intervals = stateIntervals(events, start);
  const total = Math.max(1, ...intervals.map((i) => i.to), e.stoppedAt ? Date.parse(e.stoppedAt) - start : 0);
  const W = 600;
  const rowH = 22;
  const x = (ms: number) => 250 + (ms / total) * W;
  const width = (from: number, to: number) => Math.max(2, ((to - from) / total) * W);
  const timeline = html`<svg class="timeline" viewBox="0 0 ${W + 260} ${intervals.length * rowH + 10}" width="${W + 260}" height="${intervals.length * rowH + 10}" xmlns="http://www.w3.org/2000/svg">${intervals.map(
    (iv, i) => {
      const kind = iv.outcome.split(' ')[0];
      const failedAttempts = iv.attempts.filter((a) => a.outcome.startsWith('failed') && a.to !== undefined);
      return html`<g class="bar bar-${kind}" data-state="${iv.state}" data-outcome="${iv.outcome}" data-retries="${iv.retries}"><title>${iv.state}: ${iv.from}–${iv.to} ms, ${iv.outcome}${iv.retries ? `, ${iv.retries} ${iv.retries === 1 ? 'retry' : 'retries'}` : ''}</title><text x="0" y="${i * rowH + 16}">${iv.state.length > 26 ? `${iv.state.slice(0, 25)}…` : iv.state}${iv.retries ? ` ↻${iv.retries}` : ''}${kind === 'caught' ? ' ⤷ caught' : ''}</text><rect x="${x(iv.from)}" y="${i * rowH + 4}" width="${width(iv.from, iv.to)}" height="${rowH - 6}"></rect>${iv.retries || kind === 'caught' ? failedAttempts.map((a) => html`<rect class="attempt-failed" x="${x(a.from)}" y="${i * rowH + 4}" width="${width(a.from, a.to ?? a.from)}" height="${rowH - 6}"></rect>`) : ''}</g>`;
    },
  )}</svg>`;
  const body = html`<dl class="facts"><dt>workflow</dt><dd>${e.workflow} (pipeline <a href="/pipelines/${encodeURIComponent(e.pipeline)}">${e.pipeline}</a>)</dd><dt>status</dt><dd>${statusBadge(e.status)}</dd>
<dt>started</dt><dd>${formatTime(e.startedAt)}</dd><dt>duration</dt><dd>${duration(e.startedAt, e.stoppedAt)}</dd>
${e.source ? html`<dt>started by</dt><dd>${e.source.kind} ${e.source.name} ${e.source.detail ?? ''}</dd>` : ''}
${e.error ? html`<dt>error</dt><dd class="error">${e.failedState ? `in ${e.failedState}: ` : ''}${e.error}: ${e.cause ?? ''}</dd>` : ''}
<dt>input</dt><dd><pre>${JSON.stringify(e.input, null, 2)}</pre></dd>${e.output !== undefined ? html`<dt>output</dt><dd><pre>${JSON.stringify(e.output, null, 2)}</pre></dd>` : ''}</dl>
<h2>Timeline</h2>${intervals.length > 0 ? timeline : html`<p class="empty">no states entered</p>`}
<h2>Events</h2>${table(
    ['#', '+ms', 'event', 'state', 'detail'],
    events.map(
      (ev) =>
        html`<tr><td>${ev.seq}</td><td class="num">${Date.parse(ev.timestamp) - start}</td><td>${ev.type}</td><td>${ev.state ?? (ev.parent ? `${ev.parent.state}${ev.parent.index !== undefined ? `[${ev.parent.index}]` : ''}` : '')}</td><td class="error">${ev.error ? `${ev.error}: ${ev.cause ?? ''}` : ev.retry ? `attempt ${ev.retry.attempt} (${ev.retry.errorEquals.join(', ')})` : ''}</td></tr>`,
    ),
    'no events',
  )}`;
  return layout(`Execution ${e.executionId}`, '/executions', body);
}

/** Catalog: every table. */
export async function catalogPage(data: DashboardData, filter: { pipeline?: string }): Promise<string> {
  const tables = await data.catalog(filter);
  const body = html`${filterForm('/catalog', [{ name: 'pipeline', label: 'database', value: filter.pipeline, options: [...new Set([...Object.keys(data.pipelines), 'sluice'])] }])}
${table(
  [
    'table',
    'format',
    'location',
    'schema',
    'columns',
    'partitions',
    'rows',
    'size',
    'updated (UTC)',
    'description',
  ],
  tables.map(
    (t) =>
      html`<tr><td><a href="/catalog/${encodeURIComponent(t.database)}/${encodeURIComponent(t.name)}">${t.table}</a></td><td>${t.format}</td><td class="mono">${t.layer}/${t.prefix}</td><td>v${t.schemaVersion}</td><td class="num">${t.columns}</td><td class="num">${formatCount(t.partitions)}</td><td class="num">${formatCount(t.rows)}</td><td class="num">${formatBytes(t.bytes)}</td><td>${formatTime(t.updatedAt)}</td><td>${t.description}</td></tr>`,
  ),
  'the catalog is empty: run `sluice demo`',
)}`;
  return layout('Catalog', '/catalog', body);
}

/** One table: columns, schema versions and their differences, partitions (paged) with the run that wrote each. */
export async function tablePage(
  data: DashboardData,
  database: string,
  name: string,
  paging: { limit: number; offset: number },
): Promise<string> {
  const t = await data.table(database, name, paging);
  const body = html`<p>${t.description}</p><dl class="facts"><dt>location</dt><dd class="mono">${t.location.layer}/${t.location.prefix} (${t.format})</dd><dt>schema</dt><dd>v${t.schemaVersion}, managed by ${t.managedBy}</dd>${t.primaryKey.length ? html`<dt>primary key</dt><dd>${t.primaryKey.join(', ')}</dd>` : ''}</dl>
<p><a href="/sql?sql=${encodeURIComponent(`SELECT * FROM ${t.table} LIMIT 100`)}">query it →</a></p>
<h2>Columns</h2>${table(
    ['column', 'type', 'nullable', 'comment'],
    t.columns.map(
      (c) =>
        html`<tr><td class="mono">${c.name}</td><td class="mono">${c.type}</td><td>${c.nullable ? 'yes' : 'no'}</td><td>${c.comment}</td></tr>`,
    ),
    'no columns',
  )}
<h2>Schema versions</h2>${table(
    ['version', 'created (UTC)', 'by', 'added', 'removed', 'changed'],
    t.versions.map(
      (v) =>
        html`<tr><td>v${v.version}</td><td>${formatTime(v.createdAt)}</td><td class="mono">${v.createdBy ?? ''}</td><td>${v.added.join(', ')}</td><td>${v.removed.join(', ')}</td><td>${v.changed.join('; ')}</td></tr>`,
    ),
    'none',
  )}
<h2>Partitions</h2>${table(
    ['partition', 'files', 'rows', 'size', 'written by run', 'schema', 'updated (UTC)'],
    t.partitions.items.map(
      (p) =>
        html`<tr><td class="mono">${p.prefix}</td><td><details><summary>${p.files.length}</summary>${p.files.map((f) => html`<div class="mono">${f.key} (${formatBytes(f.bytes)}${f.rows !== undefined ? `, ${formatCount(f.rows)} rows` : ''})</div>`)}</details></td><td class="num">${formatCount(p.rows)}</td><td class="num">${formatBytes(p.bytes)}</td><td class="mono">${p.runId ?? ''}</td><td>v${p.schemaVersion}</td><td>${formatTime(p.updatedAt)}</td></tr>`,
    ),
    'no partitions registered',
  )}${pager(`/catalog/${encodeURIComponent(database)}/${encodeURIComponent(name)}`, {}, t.partitions)}`;
  return layout(`Table ${t.table}`, '/catalog', body);
}

/** Lake: objects per layer under a prefix (paged). */
export async function lakePage(
  data: DashboardData,
  layer: string,
  prefix: string,
  paging: { limit: number; offset: number },
): Promise<string> {
  const objects = await data.objects(layer, prefix, paging);
  const body = html`<form class="filters" method="get" action="/lake"><label>layer <select name="layer">${['landing', 'staging', 'analytical', 'quarantine'].map((l) => html`<option${l === layer ? html` selected` : ''}>${l}</option>`)}</select></label> <label>prefix <input name="prefix" value="${prefix}"></label> <button type="submit">Show</button></form>
${table(
  ['key', 'size', 'modified (UTC)'],
  objects.items.map(
    (o) =>
      html`<tr><td class="mono">${layer === 'quarantine' ? html`<a href="/quarantine/object?key=${encodeURIComponent(o.key)}">${o.key}</a>` : o.key}</td><td class="num">${formatBytes(o.size)}</td><td>${formatTime(o.lastModified)}</td></tr>`,
  ),
  'no objects',
)}${pager('/lake', { layer, prefix }, objects)}`;
  return layout('Lake', '/lake', body);
}

/** Quarantine: its objects (each a unit's rejected records). */
export async function quarantinePage(
  data: DashboardData,
  paging: { limit: number; offset: number },
): Promise<string> {
  const objects = await data.objects('quarantine', '', paging);
  const body = html`<p>Every record a pipeline rejected, with its source and reason. Open an object to see its records.</p>
${table(
  ['object', 'size', 'modified (UTC)'],
  objects.items.map(
    (o) =>
      html`<tr><td class="mono"><a href="/quarantine/object?key=${encodeURIComponent(o.key)}">${o.key}</a></td><td class="num">${formatBytes(o.size)}</td><td>${formatTime(o.lastModified)}</td></tr>`,
  ),
  'the quarantine is empty: no record was rejected',
)}${pager('/quarantine', {}, objects)}`;
  return layout('Quarantine', '/quarantine', body);
}

/** One quarantine object's records: a column per field, the reason included. */
export async function quarantineObjectPage(data: DashboardData, key: string): Promise<string> {
  const { records, truncated } = await data.quarantineRecords(key);
  const columns = [
    ...new Set(
      records.flatMap((r) => (r && typeof r === 'object' && !Array.isArray(r) ? Object.keys(r) : [])),
    ),
  ];
  const cell = (v: unknown) =>
    v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v);
  const body = html`<p class="mono">${key}</p>${table(
    columns,
    records.map(
      (r) =>
        html`<tr>${columns.map((c) => html`<td class="${c === 'reason' ? 'error' : ''}">${cell((r as Record<string, unknown>)[c])}</td>`)}</tr>`,
    ),
    'no records',
  )}${truncated ? html`<p>first ${records.length} records shown</p>` : ''}`;
  return layout('Quarantined records', '/quarantine', body);
}

/** Quality: check results (table) and metrics over time (chart), from `sluice.quality_*`. */
export async function qualityPage(
  results: { columns: string[]; rows: Record<string, unknown>[] },
  filter: { pipeline?: string; status?: string },
  pipelines: readonly string[],
  error?: string,
): Promise<string> {
  const fmt = (v: unknown) =>
    v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  const body = html`${filterForm('/quality', [
    { name: 'pipeline', label: 'pipeline', value: filter.pipeline, options: pipelines },
    { name: 'status', label: 'status', value: filter.status, options: ['pass', 'warn', 'fail'] },
  ])}
<figure class="chart" data-chart="0"><figcaption>checks per status</figcaption><canvas></canvas></figure>
<figure class="chart" data-chart="1"><figcaption>metrics (latest 200 values)</figcaption><canvas></canvas></figure>
${error ? html`<p class="empty">${error}</p>` : ''}
<h2>Check results (newest first)</h2>${table(
    results.columns,
    results.rows.map(
      (r) =>
        html`<tr>${results.columns.map((c) => html`<td class="${c === 'status' ? `status status-${fmt(r[c])}` : ''}">${fmt(r[c])}</td>`)}</tr>`,
    ),
    'no check results yet',
  )}`;
  const where = filter.pipeline ? ` WHERE pipeline = '${filter.pipeline.replaceAll("'", "''")}'` : '';
  const charts: ChartSpec[] = [
    {
      title: 'checks per status',
      type: 'bar',
      sql: `SELECT status, count(*) AS checks FROM sluice.quality_results${where} GROUP BY status ORDER BY status`,
    },
    {
      title: 'metrics',
      type: 'line',
      pivot: true,
      sql: `SELECT strftime(measured_at, '%Y-%m-%d %H:%M:%S') AS measured, metric || ' ' || table_name AS series, value FROM sluice.quality_metrics${where} ORDER BY measured_at DESC LIMIT 200`,
    },
  ];
  return layout('Data quality', '/quality', body, [jsonScript('charts', charts)]);
}

/** The SQL console: the statement runs through `/api/query` from the static script. */
export function sqlPage(sql: string, tables: readonly string[]): string {
  const body = html`<form id="sql-form" class="sql"><textarea id="sql" name="sql" rows="8" spellcheck="false">${sql}</textarea>
<div><label><input type="checkbox" id="warehouse" name="warehouse" value="1"> warehouse (PostgreSQL locally)</label> <button type="submit">Run</button> <a id="csv" href="#">CSV</a> <span id="sql-status"></span></div></form>
<p class="hint">Read-only: one SELECT, WITH, DESCRIBE or SHOW statement; at most 1,000 rows and 10 s. Tables: ${tables.join(', ')}</p>
<figure class="chart" id="sql-chart" hidden><figcaption>quick chart: first column as labels, numeric columns as series</figcaption><canvas></canvas></figure>
<div id="sql-result"></div>`;
  return layout('SQL console', '/sql', body);
}
