import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGharchive } from '../../pipelines/gharchive/run.ts';
import { runHashtags } from '../../pipelines/hashtags/run.ts';
import { bundledSamples } from '../../pipelines/hashtags/sources.ts';
import { pipelines } from '../../pipelines/index.ts';
import { createTestHome, type TestHome } from '../../test/helpers/context.ts';
import { ROOT } from '../../test/helpers/samples.ts';
import { ExecutionStore } from '../backends/local/local-workflow-runner.ts';
import { RunLog } from '../core/run.ts';
import { serveDirectory } from '../sources/http/static-server.ts';
import { type Dashboard, startDashboard } from './server.ts';

/**
 * The dashboard over HTTP on a demo-like home: gharchive's bundled hour through a static server
 * (as `sluice demo` does) and hashtags on the bundled captures, plus records whose text is markup.
 */
const XSS = '<script>alert(1)</script>';
const XSS_ESCAPED = '&lt;script&gt;alert(1)&lt;/script&gt;';

let t: TestHome;
let dashboard: Dashboard;

/** SQL through the query engine with the named queries, as `sluice query` runs it. */
async function engineQuery<T>(sql: string): Promise<T[]> {
  const engine = await t.backend.openQueryEngine({
    namedQueries: Object.values(pipelines).flatMap((p) => p.queries ?? []),
  });
  try {
    return (await engine.query(sql)).rows as T[];
  } finally {
    await engine.close();
  }
}

async function get(pathname: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${dashboard.url}${pathname}`, init);
}

async function getJson<T = Record<string, unknown>>(pathname: string): Promise<T> {
  const response = await get(pathname);
  expect(response.status, pathname).toBe(200);
  return (await response.json()) as T;
}

async function query(sql: string, extra: Record<string, unknown> = {}): Promise<Response> {
  return get('/api/query', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ sql, ...extra }),
  });
}

beforeAll(async () => {
  t = await createTestHome();
  const server = await serveDirectory(path.join(ROOT, 'examples/data/gharchive'));
  try {
    await runGharchive(t.ctx, {
      from: new Date('2015-01-01T00:00:00Z'),
      to: new Date('2015-01-01T00:00:00Z'),
      sourceUrl: server.url,
    });
  } finally {
    await server.close();
  }
  await runHashtags(t.ctx, { source: { kind: 'replay', files: bundledSamples() } });
  // Markup in data: a run, an execution, a table description and a quarantined record.
  const log = await RunLog.open(t.backend.kv, t.ctx.clock);
  const run = await log.start({
    runId: '20990101T000000Z-abcdef',
    pipeline: 'gharchive',
    step: 'transform',
    unit: XSS,
  });
  await run.finish({ status: 'failed', error: `bad ${XSS}` });
  const store = await ExecutionStore.open(t.backend.kv);
  await store.put({
    executionId: 'gharchive-ingest:xss',
    workflow: 'gharchive-ingest',
    pipeline: 'gharchive',
    status: 'FAILED',
    input: { note: XSS },
    error: 'Boom',
    cause: XSS,
    startedAt: '2015-01-01T00:00:00.000Z',
    stoppedAt: '2015-01-01T00:00:01.000Z',
  });
  await store.append('gharchive-ingest:xss', 1, {
    type: 'StateEntered',
    timestamp: '2015-01-01T00:00:00.100Z',
    state: 'Ingest',
  });
  await store.append('gharchive-ingest:xss', 2, {
    type: 'StateFailed',
    timestamp: '2015-01-01T00:00:00.900Z',
    state: 'Ingest',
    error: 'Boom',
    cause: XSS,
  });
  await t.backend.catalog.upsertTable({
    database: 'xss',
    name: 'notes',
    location: { layer: 'analytical', prefix: 'xss/notes/' },
    format: 'parquet',
    columns: [{ name: 'text', type: 'string', comment: XSS }],
    partitionKeys: [],
    description: XSS,
  });
  await t.backend.objectStore.put(
    { layer: 'quarantine', key: 'xss/records.ndjson' },
    `${JSON.stringify({ file: 'x.json', line: 1, reason: XSS, record: XSS })}\n`,
  );
  dashboard = await startDashboard({ backend: t.backend, limits: { maxRows: 50, timeoutMs: 5000 } });
}, 60_000);

afterAll(async () => {
  await dashboard?.close();
  await t?.close();
});

describe('dashboard pages', () => {
  const pages = [
    '/',
    '/pipelines',
    '/pipelines/gharchive',
    '/pipelines/hashtags',
    '/pipelines/tolls',
    '/pipelines/quotes',
    '/pipelines/nba',
    '/runs',
    '/runs?pipeline=gharchive&status=failed',
    '/executions',
    '/executions/gharchive-ingest%3Axss',
    '/catalog',
    '/catalog/gharchive/events',
    '/catalog/xss/notes',
    '/lake',
    '/lake?layer=quarantine',
    '/quarantine',
    '/quarantine/object?key=xss%2Frecords.ndjson',
    '/quality',
    '/sql',
  ];

  it.each(pages)('%s is 200 HTML with every data value escaped and no inline script', async (pathname) => {
    const response = await get(pathname);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/text\/html/);
    expect(response.headers.get('content-security-policy')).toContain("script-src 'self'");
    const body = await response.text();
    expect(body).not.toContain(XSS);
    expect(body).not.toContain('alert(1)</script>');
    // Scripts: only the two static files and JSON data blocks.
    for (const m of body.matchAll(/<script([^>]*)>/g))
      expect(m[1]).toMatch(/src="\/static\/|type="application\/json"/);
  });

  it('shows the injected markup as text where it appears', async () => {
    expect(await (await get('/runs?pipeline=gharchive')).text()).toContain(XSS_ESCAPED);
    expect(await (await get('/executions/gharchive-ingest%3Axss')).text()).toContain(XSS_ESCAPED);
    expect(await (await get('/catalog/xss/notes')).text()).toContain(XSS_ESCAPED);
    expect(await (await get('/quarantine/object?key=xss%2Frecords.ndjson')).text()).toContain(XSS_ESCAPED);
  });

  it('draws workflow graphs from the ASL definitions and serves Chart.js from node_modules', async () => {
    const body = await (await get('/pipelines/gharchive')).text();
    expect(body).toContain('<svg class="workflow-graph"');
    expect(body).toContain('id="charts"');
    const chart = await get('/static/chart.umd.min.js');
    expect(chart.status).toBe(200);
    expect(await chart.text()).toContain('Chart');
    expect((await get('/static/dashboard.js')).status).toBe(200);
    expect((await get('/static/../server.ts')).status).toBe(404);
  });
});

describe('dashboard API', () => {
  it('pipelines: workflows as nodes and edges, schedules with next fire times', async () => {
    const { items } = await getJson<{
      items: {
        name: string;
        workflows: { nodes: unknown[]; edges: unknown[] }[];
        schedules: { next: string[] }[];
      }[];
    }>('/api/pipelines');
    const gharchive = items.find((p) => p.name === 'gharchive');
    expect(gharchive?.workflows.length).toBeGreaterThan(0);
    expect(gharchive?.workflows[0]?.nodes.length).toBeGreaterThan(2);
    expect(gharchive?.workflows[0]?.edges.length).toBeGreaterThan(1);
    const schedule = items.flatMap((p) => p.schedules)[0];
    expect(schedule?.next).toHaveLength(3);
  });

  it('catalog numbers equal the query engine (sluice query) for the same table', async () => {
    const [expected] = await engineQuery<{ n: bigint }>('SELECT count(*) AS n FROM gharchive.events');
    const { items } = await getJson<{ items: { table: string; rows: number }[] }>('/api/catalog');
    expect(items.find((i) => i.table === 'gharchive.events')?.rows).toBe(Number(expected?.n));
    const detail = await getJson<{
      partitions: { items: { rows: number; runId: string; files: unknown[] }[] };
      columns: unknown[];
    }>('/api/catalog/gharchive/events');
    expect(detail.partitions.items.reduce((n, p) => n + p.rows, 0)).toBe(Number(expected?.n));
    expect(detail.partitions.items[0]?.runId).toBeTruthy();
  });

  it('/api/query returns what the query engine returns for the same SQL', async () => {
    const sql =
      'SELECT type, count(*) AS events FROM gharchive.events GROUP BY type ORDER BY events DESC, type';
    const expected = await engineQuery<{ type: string; events: bigint }>(sql);
    const response = await query(sql);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { rows: { type: string; events: number }[] };
    expect(body.rows).toEqual(expected.map((r) => ({ type: r.type, events: Number(r.events) })));
    const hashtagsSql =
      'SELECT hashtag, mentions FROM hashtags.top_hashtags ORDER BY mentions DESC, hashtag LIMIT 5';
    const top = await engineQuery<{ hashtag: string; mentions: bigint }>(hashtagsSql);
    expect(top.length).toBeGreaterThan(0);
    const api = (await (await query(hashtagsSql)).json()) as {
      rows: { hashtag: string; mentions: number }[];
    };
    expect(api.rows).toEqual(top.map((r) => ({ hashtag: r.hashtag, mentions: Number(r.mentions) })));
  });

  it.each([
    ['DROP TABLE gharchive.events', /DROP is not allowed/],
    ['INSERT INTO gharchive.events SELECT * FROM gharchive.events', /INSERT is not allowed/],
    ["COPY (SELECT 1) TO '/tmp/x.csv'", /COPY is not allowed/],
    ["ATTACH '/tmp/x.db' AS x", /ATTACH is not allowed/],
    ["SELECT * FROM read_csv('/etc/passwd')", /read_csv\(\) is not allowed/],
    ["SELECT * FROM read_text('/etc/passwd')", /read_text\(\) is not allowed/],
    ["SELECT * FROM '/etc/passwd'", /reading a file by name/],
    ['SELECT 1; DROP TABLE x', /one statement at a time/],
    ['SET enable_external_access = true', /SET is not allowed/],
    ['PRAGMA version', /PRAGMA is not allowed/],
    ["SELECT * FROM glob('/etc/*')", /glob\(\) is not allowed/],
  ])('refuses %s with 400 and a clear message', async (sql, message) => {
    const response = await query(sql);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toMatch(message);
  });

  it('a chart over a table not written yet gets an empty result; the console still gets the error', async () => {
    const sql = 'SELECT quote_count, count(*) AS n FROM quotes.quotes_agg GROUP BY 1';
    expect((await query(sql)).status).toBe(400);
    const chart = await query(sql, { chart: true });
    expect(chart.status).toBe(200);
    expect(await chart.json()).toMatchObject({ rows: [], missing: true });
    expect((await query('DROP TABLE x', { chart: true })).status).toBe(400);
    expect((await get('/favicon.ico')).status).toBe(204);
  });

  it('the sandboxed engine itself cannot read files outside the lake (the second line of defence)', async () => {
    const engine = await t.backend.openQueryEngine({ sandboxed: true });
    try {
      await expect(engine.query("SELECT * FROM read_csv('/etc/passwd')")).rejects.toThrow(
        /disabled by configuration/,
      );
      await expect(engine.query('SET enable_external_access = true')).rejects.toThrow(/locked/);
      expect((await engine.query('SELECT count(*) AS n FROM gharchive.events')).rows[0]?.n).toBeGreaterThan(
        0,
      );
    } finally {
      await engine.close();
    }
  });

  it('bounds results to the row limit and says so; CSV downloads the same rows', async () => {
    const response = await query('SELECT * FROM range(100000) r(i)');
    const body = (await response.json()) as { rows: unknown[]; truncated: boolean };
    expect(body.rows).toHaveLength(50);
    expect(body.truncated).toBe(true);
    const csv = await get(
      `/api/query.csv?sql=${encodeURIComponent('SELECT i, i * 2 AS j FROM range(3) r(i)')}`,
    );
    expect(csv.headers.get('content-disposition')).toContain('attachment');
    expect(await csv.text()).toBe('i,j\n0,0\n1,2\n2,4\n');
  });

  it('stops a statement at the time limit', async () => {
    const slow = await startDashboard({ backend: t.backend, limits: { maxRows: 10, timeoutMs: 200 } });
    try {
      const response = await fetch(`${slow.url}/api/query`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ sql: 'SELECT count(*) FROM range(10000000000) a' }),
      });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: string }).error).toMatch(/stopped after 200 ms/);
    } finally {
      await slow.close();
    }
  });

  it('pages runs and executions on the server, with filters', async () => {
    const all = await getJson<{ items: { runId: string }[]; total: number; nextOffset: number | null }>(
      '/api/runs?limit=1000',
    );
    expect(all.total).toBeGreaterThan(3);
    const first = await getJson<{ items: { runId: string }[]; nextOffset: number }>('/api/runs?limit=2');
    expect(first.items).toHaveLength(2);
    expect(first.nextOffset).toBe(2);
    const second = await getJson<{ items: { runId: string; step: string }[] }>('/api/runs?limit=2&offset=2');
    expect(second.items).toEqual(all.items.slice(2, 4));
    const failed = await getJson<{ items: { status: string; pipeline: string }[]; total: number }>(
      '/api/runs?pipeline=gharchive&status=failed',
    );
    expect(failed.total).toBe(1);
    expect(failed.items[0]).toMatchObject({ status: 'failed', pipeline: 'gharchive' });
    const hashtags = await getJson<{ items: { pipeline: string }[] }>('/api/runs?pipeline=hashtags');
    expect(hashtags.items.every((r) => r.pipeline === 'hashtags')).toBe(true);
    const executions = await getJson<{ items: { executionId: string }[] }>('/api/executions?status=FAILED');
    expect(executions.items.map((e) => e.executionId)).toContain('gharchive-ingest:xss');
    const history = await getJson<{ events: unknown[] }>('/api/executions/gharchive-ingest%3Axss');
    expect(history.events).toHaveLength(2);
    expect((await get('/api/executions/nope')).status).toBe(404);
  });

  it('quality results come from sluice.quality_results as the query engine sees them', async () => {
    const [expected] = await engineQuery<{ n: bigint }>(
      "SELECT count(*) AS n FROM sluice.quality_results WHERE pipeline = 'gharchive'",
    );
    const body = await getJson<{ results: { pipeline: string }[] }>(
      '/api/quality?pipeline=gharchive&limit=500',
    );
    expect(body.results).toHaveLength(Number(expected?.n));
    expect(Number(expected?.n)).toBeGreaterThan(0);
  });

  it('events: a change cursor over runs and executions', async () => {
    const first = await getJson<{ cursor: string; runs: unknown[] }>('/api/events');
    expect(first.runs.length).toBeGreaterThan(0);
    const again = await getJson<{ cursor: string; runs: unknown[]; executions: unknown[] }>(
      `/api/events?cursor=${encodeURIComponent(first.cursor)}`,
    );
    expect(again.runs).toEqual([]);
    expect(again.executions).toEqual([]);
    expect(again.cursor).toBe(first.cursor);
  });
});

describe('dashboard access', () => {
  it('refuses a non-loopback Host header when it has no token (DNS rebinding)', async () => {
    const { accessControl } = await import('./server.ts');
    const { Hono } = await import('hono');
    const app = new Hono().use('*', accessControl(undefined)).get('/', (c) => c.text('ok'));
    expect((await app.request('/', { headers: { host: 'evil.example:8080' } })).status).toBe(403);
    expect((await app.request('/', { headers: { host: '127.0.0.1:8080' } })).status).toBe(200);
  });

  it('a non-loopback bind needs the token on every request: 401 without, 200 with', async () => {
    const open = await startDashboard({ backend: t.backend, host: '0.0.0.0', token: 's3cret-token' });
    try {
      const url = open.url.replace('0.0.0.0', '127.0.0.1');
      expect(open.token).toBe('s3cret-token');
      expect((await fetch(`${url}/`)).status).toBe(401);
      expect((await fetch(`${url}/api/runs`)).status).toBe(401);
      expect((await fetch(`${url}/`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      expect(
        (await fetch(`${url}/api/runs`, { headers: { authorization: 'Bearer s3cret-token' } })).status,
      ).toBe(200);
      const viaQuery = await fetch(`${url}/?token=s3cret-token`);
      expect(viaQuery.status).toBe(200);
      const cookie = viaQuery.headers.get('set-cookie') ?? '';
      expect(cookie).toMatch(/HttpOnly/i);
      expect(cookie).toMatch(/SameSite=Strict/i);
      expect((await fetch(`${url}/runs`, { headers: { cookie: cookie.split(';')[0] ?? '' } })).status).toBe(
        200,
      );
    } finally {
      await open.close();
    }
  });

  it('generates a token for a non-loopback bind when none is given', async () => {
    const open = await startDashboard({ backend: t.backend, host: '0.0.0.0' });
    try {
      expect(open.token?.length ?? 0).toBeGreaterThanOrEqual(24);
      expect(open.openUrl).toContain('?token=');
    } finally {
      await open.close();
    }
  });
});

describe('execution timeline (retries and catches)', () => {
  /** Stores an execution with `events` (state, type, +ms, error) and returns its page's bars. */
  async function bars(id: string, events: [string, string, number, string?][]) {
    const store = await ExecutionStore.open(t.backend.kv);
    const at = (ms: number) => new Date(Date.parse('2024-01-01T00:00:00.000Z') + ms).toISOString();
    await store.put({
      executionId: id,
      workflow: 'tolls-load',
      pipeline: 'tolls',
      status: 'SUCCEEDED',
      input: {},
      startedAt: at(0),
      stoppedAt: at(1000),
    });
    for (const [i, [state, type, ms, error]] of events.entries())
      await store.append(id, i + 1, {
        type,
        timestamp: at(ms),
        state,
        ...(error ? { error, cause: `${error} happened` } : {}),
      });
    const response = await get(`/executions/${encodeURIComponent(id)}`);
    expect(response.status).toBe(200);
    const body = await response.text();
    return {
      body,
      bars: [
        ...body.matchAll(
          /<g class="bar bar-(\w+)" data-state="([^"]*)" data-outcome="([^"]*)" data-retries="(\d+)">/g,
        ),
      ].map((m) => ({ kind: m[1], state: m[2], outcome: m[3], retries: Number(m[4]) })),
    };
  }

  it('a state that failed, was retried and exited is one ok bar with a retry and its failed attempt drawn', async () => {
    const { body, bars: got } = await bars('tolls-load:retried', [
      ['Crawl', 'StateEntered', 10],
      ['Crawl', 'StateFailed', 100, 'TransientError'],
      ['Crawl', 'StateRetried', 120],
      ['Crawl', 'StateExited', 400],
      ['Job', 'StateEntered', 410],
      ['Job', 'StateExited', 900],
    ]);
    expect(got).toEqual([
      { kind: 'ok', state: 'Crawl', outcome: 'ok', retries: 1 },
      { kind: 'ok', state: 'Job', outcome: 'ok', retries: 0 },
    ]);
    expect(body.match(/class="attempt-failed"/g)).toHaveLength(1);
  });

  it('a state retried then caught is a caught bar naming the error; the Catch target follows', async () => {
    const { bars: got } = await bars('tolls-load:caught', [
      ['Probe', 'StateEntered', 10],
      ['Probe', 'StateFailed', 100, 'ProbeError'],
      ['Probe', 'StateRetried', 110],
      ['Probe', 'StateFailed', 200, 'ProbeError'],
      ['Probe', 'StateCaught', 200],
      ['Probe', 'StateExited', 200],
      ['Recovered', 'StateEntered', 210],
      ['Recovered', 'StateExited', 220],
    ]);
    expect(got).toEqual([
      { kind: 'caught', state: 'Probe', outcome: 'caught ProbeError', retries: 1 },
      { kind: 'ok', state: 'Recovered', outcome: 'ok', retries: 0 },
    ]);
  });

  it('a state whose last attempt failed with nothing after it is a failed bar', async () => {
    const { bars: got } = await bars('tolls-load:failed', [
      ['Load', 'StateEntered', 10],
      ['Load', 'StateFailed', 100, 'Boom'],
      ['Load', 'StateRetried', 110],
      ['Load', 'StateFailed', 300, 'Boom'],
    ]);
    expect(got).toEqual([{ kind: 'failed', state: 'Load', outcome: 'failed Boom', retries: 1 }]);
  });
});

describe("pipeline pages with the issue's charts", () => {
  it('tolls charts revenue per booth per day from the warehouse with exact numeric sums', async () => {
    const body = await (await get('/pipelines/tolls')).text();
    expect(body).toContain('revenue per booth per day (warehouse)');
    // Sums of the stored REALs as numeric (exact cents), not a float4 sum rounded afterwards.
    expect(body).toContain('sum(transaction_amount::numeric)');
    expect(body).not.toContain('sum(transaction_amount)::numeric');
  });

  it('nba has tweets per player per day and the tampering alerts table; an unloaded table is empty, not an error', async () => {
    const body = await (await get('/pipelines/nba')).text();
    expect(body).toContain('tweets per player per day');
    expect(body).toContain('data-table="0"');
    const spec = /<script type="application\/json" id="tables">([^<]*)<\/script>/.exec(body)?.[1];
    expect(spec).toBeDefined();
    const [alerts] = JSON.parse(spec as string) as { sql: string }[];
    const response = await query(alerts?.sql ?? '', { chart: true });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ rows: [], missing: true });
  });
});
