import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '@hono/node-server';
import { stringify } from 'csv-stringify/sync';
import { type Context, Hono, type MiddlewareHandler } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { pipelines as shippedPipelines } from '../../pipelines/index.ts';
import { createLocalBackend } from '../backends/local/local-backend.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { NotFoundError, QueryError, SluiceError, UsageError } from '../core/errors.ts';
import type { PipelineDefinition } from '../core/pipeline.ts';
import type { Backend } from '../core/ports/backend.ts';
import type { QueryResult } from '../core/ports/query-engine.ts';
import { WarehouseError } from '../core/ports/warehouse.ts';
import { DashboardData, parsePaging } from './data.ts';
import {
  catalogPage,
  executionPage,
  executionsPage,
  lakePage,
  overviewPage,
  pipelinePage,
  pipelinesPage,
  qualityPage,
  quarantineObjectPage,
  quarantinePage,
  runsPage,
  sqlPage,
  tablePage,
} from './pages.ts';
import { SqlConsole } from './sql-console.ts';

/** Options of {@link startDashboard}: a home directory (opened and closed by the dashboard) or an open backend. */
export type DashboardOptions = ({ readonly home: string } | { readonly backend: Backend }) & {
  /** Address to bind; default `127.0.0.1`. Any other than 127.0.0.1, ::1 or localhost requires a token. */
  readonly host?: string;
  /** Port; default 0 (a free one). */
  readonly port?: number;
  /**
   * Required on every request when set: `Authorization: Bearer <token>`, or `?token=<token>`
   * once (then an HttpOnly, SameSite=Strict cookie). On a non-loopback host without one, the
   * dashboard uses `$SLUICE_DASHBOARD_TOKEN` or generates one (returned, for printing).
   */
  readonly token?: string;
  /** Pipelines to show; default the shipped ones. */
  readonly pipelines?: Readonly<Record<string, PipelineDefinition>>;
  readonly clock?: Clock;
  /** SQL console limits; default 1,000 rows and 10 s. */
  readonly limits?: { readonly maxRows: number; readonly timeoutMs: number };
};

/** A running dashboard. */
export interface Dashboard {
  /** `http://host:port` (no token). */
  readonly url: string;
  /** The token every request needs, if any. */
  readonly token: string | undefined;
  /** The URL to open in a browser: with `?token=` when a token is needed. */
  readonly openUrl: string;
  /** Stops the server and releases the engines (and the backend, when it opened it). */
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** True when `host` is a loopback address, so only this machine can connect. */
export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host.replace(/^\[|\]$/g, '').toLowerCase());
}

const COOKIE = 'sluice_token';

function sameToken(given: string | undefined, token: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The access rule: with a token, every request carries it (header, cookie, or `?token=` which
 * then sets the cookie); 401 otherwise. Without a token (loopback only), the Host header must name
 * a loopback host, so a web page on another site cannot reach the dashboard by DNS rebinding.
 */
export function accessControl(token: string | undefined): MiddlewareHandler {
  return async (c, next) => {
    if (token === undefined) {
      const host = (c.req.header('host') ?? '').replace(/:\d+$/, '');
      if (!isLoopback(host))
        return c.text('this dashboard answers on its loopback address only (Host header)\n', 403);
      return next();
    }
    const auth = c.req.header('authorization');
    const bearer = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
    const query = c.req.query('token');
    if (sameToken(bearer, token) || sameToken(getCookie(c, COOKIE), token)) return next();
    if (sameToken(query, token)) {
      setCookie(c, COOKIE, token, { httpOnly: true, sameSite: 'Strict', path: '/' });
      return next();
    }
    c.header('WWW-Authenticate', 'Bearer realm="sluice"');
    return c.text(
      'a token is required: open the URL `sluice serve` printed (…?token=…) or send Authorization: Bearer <token>\n',
      401,
    );
  };
}

/** Security headers on every response: no inline or foreign script, no framing, no sniffing. */
const securityHeaders: MiddlewareHandler = async (c, next) => {
  await next();
  c.header(
    'Content-Security-Policy',
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
  );
  c.header('X-Content-Type-Options', 'nosniff');
  c.header('Referrer-Policy', 'no-referrer');
  c.header('X-Frame-Options', 'DENY');
};

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** The static files: the dashboard's own and Chart.js's UMD build from node_modules (no CDN). */
function staticFiles(): Record<string, { file: string; type: string }> {
  const require = createRequire(import.meta.url);
  const chartDir = path.dirname(require.resolve('chart.js'));
  return {
    'dashboard.js': {
      file: path.join(HERE, 'static', 'dashboard.js'),
      type: 'text/javascript; charset=utf-8',
    },
    'dashboard.css': { file: path.join(HERE, 'static', 'dashboard.css'), type: 'text/css; charset=utf-8' },
    'chart.umd.min.js': {
      file: path.join(chartDir, 'chart.umd.min.js'),
      type: 'text/javascript; charset=utf-8',
    },
  };
}

function json(c: Context, value: unknown, status: 200 | 400 | 404 | 500 = 200): Response {
  const body = JSON.stringify(value, (_k, v) =>
    typeof v === 'bigint' ? (Number.isSafeInteger(Number(v)) ? Number(v) : v.toString()) : v,
  );
  return c.body(body, status, { 'Content-Type': 'application/json; charset=utf-8' });
}

function errorStatus(error: unknown): 400 | 404 | 500 {
  if (error instanceof NotFoundError) return 404;
  if (error instanceof UsageError || error instanceof QueryError || error instanceof WarehouseError)
    return 400;
  return 500;
}

/** The engine's or the warehouse's "no such table" (a pipeline that has not run yet), not a refusal. */
function isMissingTable(error: unknown): boolean {
  return (
    (error instanceof QueryError || error instanceof WarehouseError) &&
    /Table with name \S+ does not exist|relation "[^"]+" does not exist/.test(error.message)
  );
}

/** Builds the app (routes and middleware) over `data` and `sql`; {@link startDashboard} serves it. */
export function createDashboardApp(data: DashboardData, sql: SqlConsole, token: string | undefined): Hono {
  const app = new Hono();
  const files = staticFiles();
  app.use('*', securityHeaders);
  app.use('*', accessControl(token));
  app.onError((error, c) => {
    const status = errorStatus(error);
    const message =
      error instanceof SluiceError || status !== 500 ? error.message : `internal error: ${error.message}`;
    if (c.req.path.startsWith('/api/')) return json(c, { error: message }, status);
    return c.text(`${message}\n`, status);
  });

  // Browsers ask for it on every first visit; no icon, and no 404 in their console.
  app.get('/favicon.ico', (c) => c.body(null, 204));
  app.get('/static/:file', async (c) => {
    const f = files[c.req.param('file')];
    if (!f) return c.text('not found\n', 404);
    return c.body(await readFile(f.file), 200, { 'Content-Type': f.type, 'Cache-Control': 'max-age=300' });
  });

  const filters = (c: Context) => ({
    ...(c.req.query('pipeline') ? { pipeline: c.req.query('pipeline') as string } : {}),
    ...(c.req.query('status') ? { status: c.req.query('status') as string } : {}),
  });
  const paging = (c: Context, limit = 50) =>
    parsePaging(
      { limit: c.req.query('limit'), offset: c.req.query('offset'), cursor: c.req.query('cursor') },
      limit,
    );

  const runPaging = (c: Context) => ({
    ...paging(c),
    ...(c.req.query('older') ? { older: c.req.query('older') as string } : {}),
    ...(c.req.query('newer') ? { newer: c.req.query('newer') as string } : {}),
  });

  // Pages.
  app.get('/', async (c) => c.html(await overviewPage(data)));
  app.get('/pipelines', async (c) => c.html(await pipelinesPage(data)));
  app.get('/pipelines/:name', async (c) => {
    const page = await pipelinePage(data, c.req.param('name'));
    return page ? c.html(page) : c.text('no such pipeline\n', 404);
  });
  app.get('/runs', async (c) => c.html(await runsPage(data, filters(c), runPaging(c))));
  app.get('/executions', async (c) => c.html(await executionsPage(data, filters(c), paging(c))));
  app.get('/executions/:id', async (c) => c.html(await executionPage(data, c.req.param('id'))));
  app.get('/catalog', async (c) => c.html(await catalogPage(data, filters(c))));
  app.get('/catalog/:db/:table', async (c) =>
    c.html(await tablePage(data, c.req.param('db'), c.req.param('table'), paging(c, 100))),
  );
  app.get('/lake', async (c) =>
    c.html(
      await lakePage(data, c.req.query('layer') ?? 'analytical', c.req.query('prefix') ?? '', paging(c, 100)),
    ),
  );
  app.get('/quarantine', async (c) => c.html(await quarantinePage(data, paging(c, 100))));
  app.get('/quarantine/object', async (c) =>
    c.html(await quarantineObjectPage(data, c.req.query('key') ?? '')),
  );
  app.get('/quality', async (c) => {
    const f = filters(c);
    const { result, error } = await qualityResults(sql, f, { limit: 200, offset: 0 });
    return c.html(
      await qualityPage(
        { columns: result.columns.map((col) => col.name), rows: result.rows },
        f,
        Object.keys(data.pipelines),
        error,
      ),
    );
  });
  app.get('/sql', async (c) => {
    const tables = (await data.catalog({})).map((t) => t.table);
    return c.html(
      sqlPage(
        c.req.query('sql') ??
          'SELECT type, count(*) AS events FROM gharchive.events GROUP BY type ORDER BY events DESC',
        tables,
      ),
    );
  });

  // JSON API.
  app.get('/api/pipelines', async (c) => json(c, { items: await data.listPipelines() }));
  app.get('/api/runs', async (c) => json(c, await data.runs(filters(c), runPaging(c))));
  app.get('/api/executions', async (c) =>
    json(
      c,
      await data.executions(
        {
          ...filters(c),
          ...(c.req.query('workflow') ? { workflow: c.req.query('workflow') as string } : {}),
        },
        paging(c),
      ),
    ),
  );
  app.get('/api/executions/:id', async (c) => json(c, await data.execution(c.req.param('id'))));
  app.get('/api/catalog', async (c) => json(c, { items: await data.catalog(filters(c)) }));
  app.get('/api/catalog/:db/:table', async (c) =>
    json(c, await data.table(c.req.param('db'), c.req.param('table'), paging(c, 100))),
  );
  app.get('/api/lake/:layer', async (c) =>
    json(c, await data.objects(c.req.param('layer'), c.req.query('prefix') ?? '', paging(c, 100))),
  );
  app.get('/api/quarantine', async (c) => {
    const key = c.req.query('key');
    return json(
      c,
      key
        ? await data.quarantineRecords(key)
        : await data.objects('quarantine', c.req.query('prefix') ?? '', paging(c, 100)),
    );
  });
  app.get('/api/quality', async (c) => {
    const f = filters(c);
    const p = paging(c, 100);
    const { result, error } = await qualityResults(sql, f, p);
    let metrics: QueryResult = { columns: [], rows: [], truncated: false };
    const where = f.pipeline ? ` WHERE pipeline = ${sqlString(f.pipeline)}` : '';
    try {
      metrics = await sql.internal(
        `SELECT * FROM sluice.quality_metrics${where} ORDER BY measured_at DESC, metric LIMIT ${p.limit} OFFSET ${p.offset}`,
      );
    } catch (e) {
      // No metric recorded yet: the table is not in the catalog.
      if (!(e instanceof QueryError && /quality_metrics/.test(e.message))) throw e;
    }
    return json(c, {
      results: result.rows,
      metrics: metrics.rows,
      offset: p.offset,
      limit: p.limit,
      ...(error ? { note: error } : {}),
    });
  });
  app.post('/api/query', async (c) => {
    let body: { sql?: unknown; warehouse?: unknown; chart?: unknown };
    try {
      body = (await c.req.json()) as { sql?: unknown; warehouse?: unknown; chart?: unknown };
    } catch {
      return json(c, { error: 'send JSON: {"sql": "SELECT ..."}' }, 400);
    }
    if (typeof body.sql !== 'string') return json(c, { error: 'send JSON: {"sql": "SELECT ..."}' }, 400);
    const warehouse = body.warehouse === true || c.req.query('warehouse') === '1';
    const started = Date.now();
    try {
      const result = await sql.run(body.sql, { warehouse });
      return json(c, { ...result, elapsedMs: Date.now() - started, maxRows: sql.limits.maxRows });
    } catch (error) {
      // A chart over a table its pipeline has not written yet is empty, not an error: the page says
      // "no data yet" (and the browser logs no failed request). The SQL console still gets the 400.
      if (body.chart === true && isMissingTable(error))
        return json(c, {
          columns: [],
          rows: [],
          truncated: false,
          elapsedMs: Date.now() - started,
          missing: true,
        });
      throw error;
    }
  });
  app.get('/api/query.csv', async (c) => {
    const statement = c.req.query('sql') ?? '';
    const result = await sql.run(statement, { warehouse: c.req.query('warehouse') === '1' });
    const header = result.columns.map((col) => col.name);
    const csv = stringify([header, ...result.rows.map((r) => header.map((h) => csvValue(r[h])))]);
    return c.body(csv, 200, {
      'Content-Type': 'text/csv; charset=utf-8',
      'Content-Disposition': 'attachment; filename="query.csv"',
    });
  });
  app.get('/api/events', async (c) => json(c, await data.changes(c.req.query('cursor') || undefined)));
  app.get('/api/events/stream', (c) => sseStream(c, data));
  app.notFound((c) =>
    c.req.path.startsWith('/api/') ? json(c, { error: 'not found' }, 404) : c.text('not found\n', 404),
  );
  return app;
}

function csvValue(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
  return String(v);
}

function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** Check results, newest first; an empty result with a note when no check ever ran (no `sluice.quality_results` table). */
async function qualityResults(
  sql: SqlConsole,
  f: { pipeline?: string; status?: string },
  p: { limit: number; offset: number },
): Promise<{ result: QueryResult; error?: string }> {
  const where = [
    f.pipeline ? `pipeline = ${sqlString(f.pipeline)}` : '',
    f.status ? `status = ${sqlString(f.status)}` : '',
  ].filter(Boolean);
  try {
    const result = await sql.internal(
      `SELECT checked_at, pipeline, table_name, check_name, kind, severity, status, failing_rows, rows_checked, action, run_id, unit, detail FROM sluice.quality_results${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY checked_at DESC, pipeline, table_name, check_name LIMIT ${p.limit} OFFSET ${p.offset}`,
    );
    return { result };
  } catch (error) {
    if (error instanceof QueryError && /sluice\.quality_results|quality_results/.test(error.message)) {
      return {
        result: { columns: [], rows: [], truncated: false },
        error: 'no data-quality results yet: they appear after a pipeline with checks runs',
      };
    }
    throw error;
  }
}

/** Server-sent events: a `change` event whenever runs or executions change (polled every 2 s). */
function sseStream(c: Context, data: DashboardData): Response {
  let cursor = c.req.query('cursor') || undefined;
  let timer: NodeJS.Timeout | undefined;
  const encoder = new TextEncoder();
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      const tick = async () => {
        try {
          const changes = await data.changes(cursor);
          if (changes.cursor !== (cursor ?? '')) {
            cursor = changes.cursor;
            controller.enqueue(
              encoder.encode(
                `event: change\ndata: ${JSON.stringify({ cursor, runs: changes.runs.length, executions: changes.executions.length })}\n\n`,
              ),
            );
          } else controller.enqueue(encoder.encode(': idle\n\n'));
        } catch {
          // The next tick tries again.
        }
        timer = setTimeout(tick, 2000);
      };
      void tick();
    },
    cancel() {
      clearTimeout(timer);
    },
  });
  return new Response(stream, {
    headers: { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' },
  });
}

/**
 * Starts the dashboard on `host:port` (default 127.0.0.1, a free port).
 * @throws {UsageError} when the port is taken or the address cannot be bound.
 * @example
 *   const dashboard = await startDashboard({ home: '.sluice', port: 8080 });
 *   console.log(dashboard.openUrl); // http://127.0.0.1:8080
 */
export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const host = options.host ?? '127.0.0.1';
  const token =
    options.token ??
    (isLoopback(host)
      ? undefined
      : process.env.SLUICE_DASHBOARD_TOKEN || randomBytes(24).toString('base64url'));
  const ownBackend = 'home' in options ? createLocalBackend(options.home) : undefined;
  const backend = 'backend' in options ? options.backend : (ownBackend as Backend);
  const pipelines = options.pipelines ?? shippedPipelines;
  const data = new DashboardData(backend, pipelines, options.clock ?? systemClock);
  const named = Object.values(pipelines).flatMap((p) => p.queries ?? []);
  const sql = new SqlConsole(backend, named, options.limits);
  const app = createDashboardApp(data, sql, token);
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: host, port: options.port ?? 0 }, () => resolve(s));
    s.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new UsageError(
          `cannot listen on ${host}:${options.port ?? 0}: ${error.code === 'EADDRINUSE' ? 'the port is in use' : error.message}`,
          { cause: error },
        ),
      ),
    );
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${shownHost}:${address.port}`;
  return {
    url,
    token,
    openUrl: token ? `${url}/?token=${encodeURIComponent(token)}` : url,
    async close() {
      await new Promise<void>((resolve) => {
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
        server.close(() => resolve());
      });
      await sql.close();
      if (ownBackend) await ownBackend.close();
    },
  };
}
