import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipelines } from '../../pipelines/index.ts';
import { type Dashboard, startDashboard } from '../../src/dashboard/server.ts';
import { createDashboardHome, type DashboardHome } from '../helpers/dashboard-home.ts';
import { ROOT } from '../helpers/samples.ts';
import { cents, readNdjsonSample } from '../helpers/tolls.ts';

/**
 * The dashboard in headless Chromium (Debian's `chromium`, driven by `playwright-core`) on a demo-like
 * home where all five pipelines have run (test/helpers/dashboard-home.ts: gharchive, hashtags, tolls
 * through the local workflow runner into a PostgreSQL warehouse, quotes over two days, nba). Every
 * page loads without console errors, its charts render, the numbers it shows equal what the query
 * engine (`sluice query`), the warehouse or the source files give when the test computes them
 * itself; screenshots go to test-artifacts/dashboard/.
 */
const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(ROOT, 'test-artifacts/dashboard');
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium)
  console.warn(`dashboard browser tests skipped: ${CHROMIUM} is missing (apt-get install -y chromium)`);

let t: DashboardHome;
let dashboard: Dashboard;
let profile: string;
let browser: BrowserContext;

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

interface Visit {
  page: Page;
  errors: string[];
  status: number | undefined;
}

/** Opens `url` in a new tab, collecting console errors and uncaught exceptions; waits for the charts. */
async function open(url: string): Promise<Visit> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  const response = await page.goto(url, { waitUntil: 'load' });
  if (await page.$('#charts'))
    await page.waitForSelector('body[data-charts-drawn="true"]', { timeout: 10_000 });
  return { page, errors, status: response?.status() };
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Every chart figure that got rows has a drawn Chart.js canvas of non-zero size; returns how many. */
async function drawnCharts(page: Page): Promise<number> {
  const figures = await page.$$eval('[data-chart]', (els) =>
    els.map((el) => {
      const canvas = el.querySelector('canvas');
      const box = canvas?.getBoundingClientRect();
      const w = globalThis as unknown as { Chart?: { getChart(c: unknown): unknown } };
      return {
        rows: Number((el as unknown as { dataset: Record<string, string | undefined> }).dataset.rows ?? '0'),
        width: box?.width ?? 0,
        height: box?.height ?? 0,
        drawn: Boolean(canvas && w.Chart?.getChart(canvas)),
        error: el.querySelector('.error')?.textContent ?? '',
      };
    }),
  );
  for (const f of figures) {
    if (f.rows === 0) continue;
    expect(f.error).toBe('');
    expect(f.drawn).toBe(true);
    expect(f.width).toBeGreaterThan(0);
    expect(f.height).toBeGreaterThan(0);
  }
  return figures.filter((f) => f.rows > 0).length;
}

/** The labels and first dataset of the chart in figure `i`. */
async function chartData(page: Page, i: number): Promise<{ labels: string[]; data: number[] }> {
  return page.$eval(`[data-chart="${i}"] canvas`, (canvas) => {
    const w = globalThis as unknown as {
      Chart: { getChart(c: unknown): { data: { labels: string[]; datasets: { data: number[] }[] } } };
    };
    const chart = w.Chart.getChart(canvas);
    return { labels: chart.data.labels, data: chart.data.datasets[0]?.data ?? [] };
  });
}

/** Every series of the chart in figure `i`: its labels and, per dataset, its label and values. */
async function chartSeries(
  page: Page,
  i: number,
): Promise<{ type: string; labels: string[]; datasets: { label: string; data: (number | null)[] }[] }> {
  return page.$eval(`[data-chart="${i}"] canvas`, (canvas) => {
    const w = globalThis as unknown as {
      Chart: {
        getChart(c: unknown): {
          config: { type: string };
          data: { labels: string[]; datasets: { label: string; data: (number | null)[] }[] };
        };
      };
    };
    const chart = w.Chart.getChart(canvas);
    return {
      type: chart.config.type,
      labels: chart.data.labels,
      datasets: chart.data.datasets.map((d) => ({ label: d.label, data: d.data })),
    };
  });
}

/** A pivoted chart as `label|series -> value` for its non-empty points. */
function pivotPoints(chart: Awaited<ReturnType<typeof chartSeries>>): Map<string, number> {
  const points = new Map<string, number>();
  for (const d of chart.datasets)
    d.data.forEach((v, j) => {
      if (v !== null) points.set(`${chart.labels[j]}|${d.label}`, v);
    });
  return points;
}

/** A single-series chart as `label -> value`. */
function labelled(chart: { labels: string[]; data: number[] }): Map<string, number> {
  return new Map(chart.labels.map((l, j) => [l, chart.data[j] as number]));
}

/** Sums `value` per `key` of `rows`. */
function sumBy<T>(rows: readonly T[], key: (r: T) => string, value: (r: T) => number): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of rows) out.set(key(r), (out.get(key(r)) ?? 0) + value(r));
  return out;
}

const sorted = <K, V>(m: Map<K, V>) => new Map([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

describe.skipIf(!hasChromium)('dashboard in headless Chromium', () => {
  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    t = await createDashboardHome();
    dashboard = await startDashboard({ backend: t.backend, host: '127.0.0.1', port: 0 });
    profile = await mkdtemp(path.join(os.tmpdir(), 'sluice-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: ARGS,
      headless: true,
      viewport: { width: 1280, height: 900 },
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await dashboard?.close();
    await t?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  const pages: [name: string, pathname: string][] = [
    ['overview', '/'],
    ['pipelines', '/pipelines'],
    ...Object.keys(pipelines).map((p): [string, string] => [`pipeline-${p}`, `/pipelines/${p}`]),
    ['runs', '/runs'],
    ['executions', '/executions'],
    ['catalog', '/catalog'],
    ['catalog-gharchive-events', '/catalog/gharchive/events'],
    ['lake', '/lake'],
    ['quarantine', '/quarantine'],
    ['quality', '/quality'],
    ['sql', '/sql'],
  ];

  it.each(pages)(
    '%s (%s) loads without console errors, draws its charts; screenshot',
    async (name, pathname) => {
      const { page, errors, status } = await open(`${dashboard.url}${pathname}`);
      try {
        expect(status).toBe(200);
        expect(await page.textContent('h1')).toBeTruthy();
        await drawnCharts(page);
        await screenshot(page, name);
        expect(errors).toEqual([]);
      } finally {
        await page.close();
      }
    },
  );

  it('the execution pages: the tolls-load run (a retried Crawl) and a caught failure, state by state as runner.history', async () => {
    const { page, errors } = await open(`${dashboard.url}/executions?pipeline=tolls`);
    const hrefs = await page.$$eval('main a[href^="/executions/"]', (as) =>
      as.map((a) => a.getAttribute('href')),
    );
    await page.close();
    expect(errors).toEqual([]);
    for (const [name, execution] of [
      ['execution', t.tollsLoad],
      ['execution-caught', t.caught],
    ] as const) {
      const href = `/executions/${encodeURIComponent(execution.executionId)}`;
      expect(hrefs).toContain(href);
      const history = await t.runner.history(execution.executionId);
      const entered = history.filter((e) => e.type === 'StateEntered').map((e) => e.state);
      const one = await open(`${dashboard.url}${href}`);
      try {
        expect(one.status).toBe(200);
        expect(await one.page.textContent('h1')).toBe(`Execution ${execution.executionId}`);
        expect(await one.page.textContent('.status')).toBe('SUCCEEDED');
        // The timeline: one bar per state entered, in order, with its outcome and retries.
        const bars = await one.page.$$eval('svg.timeline g.bar', (gs) =>
          gs.map((g) => ({
            state: g.getAttribute('data-state'),
            outcome: g.getAttribute('data-outcome'),
            retries: Number(g.getAttribute('data-retries')),
            width: (
              g.querySelector('rect') as unknown as { getBoundingClientRect(): { width: number } }
            ).getBoundingClientRect().width,
          })),
        );
        expect(bars.map((b) => b.state)).toEqual(entered);
        for (const b of bars) expect(b.width).toBeGreaterThan(0);
        // The events table: every history event, in order.
        const rows = await one.page.$$eval('main table tbody tr', (trs) =>
          trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')),
        );
        expect(rows.map((r) => [Number(r[0]), r[2], r[3]])).toEqual(
          history.map((e) => [e.seq, e.type, e.state ?? '']),
        );
        if (execution === t.tollsLoad) {
          expect(entered).toEqual(['Crawl', 'Job', 'Load']);
          expect(bars.map((b) => [b.outcome, b.retries])).toEqual([
            ['ok', 1],
            ['ok', 0],
            ['ok', 0],
          ]);
          // The failed first attempt of Crawl is drawn inside its bar.
          expect(await one.page.$$('svg.timeline g.bar rect.attempt-failed')).toHaveLength(1);
          expect(rows.find((r) => r[2] === 'StateRetried')?.[4]).toBe('attempt 1 (States.ALL)');
        } else {
          expect(bars.map((b) => [b.state, b.outcome, b.retries])).toEqual([
            ['Probe', 'caught ProbeError', 1],
            ['Recovered', 'ok', 0],
          ]);
          expect(rows.filter((r) => r[2] === 'StateFailed')).toHaveLength(2);
        }
        await screenshot(one.page, name);
        expect(one.errors).toEqual([]);
      } finally {
        await one.page.close();
      }
    }
  });

  it('tolls: revenue per booth per day, per booth and vehicle categories equal the sample file and the warehouse', async () => {
    // From the bundled file itself (JSON.parse of its NDJSON copy), in whole cents.
    const sample = readNdjsonSample();
    const perBoothDay = sumBy(
      sample,
      (r) => `${r.transaction_date.replaceAll('/', '-')}|${r.toll_booth}`,
      (r) => cents(r.transaction_amount),
    );
    const perBooth = sumBy(
      sample,
      (r) => r.toll_booth,
      (r) => cents(r.transaction_amount),
    );
    const perCategory = sumBy(
      sample,
      (r) => r.vehicle_category,
      () => 1,
    );
    // The warehouse agrees with the file (a plain pg client, numeric sums of the stored reals).
    const warehouse = await t.warehouse.sql<{ booth: string; revenue: string }>(
      'SELECT toll_booth AS booth, sum(transaction_amount::numeric)::text AS revenue FROM toll_table GROUP BY 1',
    );
    expect(new Map(warehouse.map((r) => [r.booth, Math.round(Number(r.revenue) * 100)]))).toEqual(perBooth);

    const { page, errors } = await open(`${dashboard.url}/pipelines/tolls`);
    try {
      expect(await drawnCharts(page)).toBe(3);
      const byDay = await chartSeries(page, 0);
      expect(byDay.type).toBe('bar');
      expect(byDay.labels).toEqual([...new Set([...perBoothDay.keys()].map((k) => k.split('|')[0]))].sort());
      expect(new Set(byDay.datasets.map((d) => d.label))).toEqual(new Set(perBooth.keys()));
      expect(new Map([...pivotPoints(byDay)].map(([k, v]) => [k, Math.round(v * 100)]))).toEqual(perBoothDay);
      const booths = await chartData(page, 1);
      expect(new Map([...labelled(booths)].map(([k, v]) => [k, Math.round(v * 100)]))).toEqual(perBooth);
      expect(booths.data).toEqual([...booths.data].sort((a, b) => b - a));
      expect(labelled(await chartData(page, 2))).toEqual(perCategory);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('quotes: the quote_count distribution and its statistics per day equal the fact rows and the named query', async () => {
    // quote_count of a quote on a day = its polls that day (quotes_agg groups by id, text, author).
    const facts = await engineQuery<{ day: string; quote_id: string; quote_text: string; author: string }>(
      "SELECT strftime(ingested_date, '%Y-%m-%d') AS day, quote_id, quote_text, author FROM quotes.quotes_fact",
    );
    const counts = sumBy(
      facts,
      (r) => JSON.stringify([r.day, r.quote_id, r.quote_text, r.author]),
      () => 1,
    );
    expect([...new Set(facts.map((r) => r.day))].sort()).toEqual(t.quotesDays);
    const distribution = sorted(
      sumBy(
        [...counts.values()],
        (n) => String(n),
        () => 1,
      ),
    );
    const perDay = new Map<string, number[]>();
    for (const [key, n] of counts) {
      const day = (JSON.parse(key) as string[])[0] as string;
      perDay.set(day, [...(perDay.get(day) ?? []), n]);
    }
    // The named query quotes.top_quotes (defaults: every day, 10 rows) agrees with these counts.
    const top = await engineQuery<{
      dt: string;
      quote_id: string;
      quote_text: string;
      author: string;
      quote_count: bigint;
    }>('SELECT * FROM quotes.top_quotes');
    expect(top).toHaveLength(10);
    for (const r of top)
      expect(Number(r.quote_count)).toBe(
        counts.get(JSON.stringify([r.dt, r.quote_id, r.quote_text, r.author])),
      );

    const { page, errors } = await open(`${dashboard.url}/pipelines/quotes`);
    try {
      expect(await drawnCharts(page)).toBe(2);
      const histogram = await chartData(page, 0);
      expect(histogram.labels.map(Number)).toEqual(
        [...distribution.keys()].map(Number).sort((a, b) => a - b),
      );
      expect(labelled(histogram)).toEqual(distribution);
      const stats = await chartSeries(page, 1);
      expect(stats.labels).toEqual(t.quotesDays);
      expect(stats.datasets.map((d) => d.label)).toEqual(['min', 'mean', 'max']);
      t.quotesDays.forEach((day, j) => {
        const values = perDay.get(day) as number[];
        expect(stats.datasets[0]?.data[j]).toBe(Math.min(...values));
        expect(stats.datasets[1]?.data[j]).toBeCloseTo(values.reduce((a, b) => a + b, 0) / values.length, 2);
        expect(stats.datasets[2]?.data[j]).toBe(Math.max(...values));
      });
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('nba: tweets per player per day, alerts per day and the alerts with their windows equal the warehouse and the replay', async () => {
    // The daily totals as the warehouse holds them (loaded by COPY, read with a plain pg client).
    const totals = await t.warehouse.sql<{ day: string; player: string; total: string }>(
      'SELECT make_date(year, month, day)::text AS day, player, total::text AS total FROM players_total_tweets',
    );
    expect(totals.length).toBeGreaterThan(50);
    const perPlayer = sumBy(
      totals,
      (r) => r.player,
      (r) => Number(r.total),
    );
    const topPlayers = [...perPlayer]
      .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0))
      .map(([player]) => player);
    const top8 = new Set(topPlayers.slice(0, 8));
    const perPlayerDay = sumBy(
      totals.filter((r) => top8.has(r.player)),
      (r) => `${r.day}|${r.player}`,
      (r) => Number(r.total),
    );
    const perDay = sorted(
      sumBy(
        totals,
        (r) => r.day,
        (r) => Number(r.total),
      ),
    );
    // The alerts as the replay emitted them (every one new, so every one a row of nba.tampering_alerts).
    const alerts = t.nbaAlerts;
    expect(alerts.length).toBeGreaterThan(10);
    const iso = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
    const alertsPerDay = sorted(
      sumBy(
        alerts,
        (a) => iso(a.window.start).slice(0, 10),
        () => 1,
      ),
    );
    const latest = [...alerts]
      .sort(
        (a, b) =>
          b.window.start - a.window.start ||
          (a.team < b.team ? -1 : a.team > b.team ? 1 : 0) ||
          (a.tamperingPlayer < b.tamperingPlayer ? -1 : a.tamperingPlayer > b.tamperingPlayer ? 1 : 0) ||
          a.firing - b.firing,
      )
      .slice(0, 50);

    const { page, errors } = await open(`${dashboard.url}/pipelines/nba`);
    try {
      expect(await drawnCharts(page)).toBe(4);
      const tweets = await chartSeries(page, 0);
      expect(new Set(tweets.datasets.map((d) => d.label))).toEqual(top8);
      expect(pivotPoints(tweets)).toEqual(perPlayerDay);
      expect(labelled(await chartData(page, 1))).toEqual(perDay);
      expect(labelled(await chartData(page, 2))).toEqual(alertsPerDay);
      const mentioned = await chartData(page, 3);
      expect(mentioned.labels).toEqual(topPlayers.slice(0, 15));
      expect(mentioned.data).toEqual(topPlayers.slice(0, 15).map((p) => perPlayer.get(p)));
      // The alerts table: window start and end, team, player, total, players, firing.
      expect(await page.getAttribute('[data-table="0"]', 'data-rows')).toBe(String(latest.length));
      const rows = await page.$$eval('[data-table="0"] tbody tr', (trs) =>
        trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)),
      );
      expect(rows).toEqual(
        latest.map((a) => [
          iso(a.window.start),
          iso(a.window.end),
          a.team,
          a.tamperingPlayer,
          String(a.total),
          a.players.join(', '),
          String(a.firing),
        ]),
      );
      for (const a of latest) expect(a.window.end - a.window.start).toBe(30_000);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('overview, gharchive and hashtags charts show what the query engine returns', async () => {
    const [events] = await engineQuery<{ n: bigint }>('SELECT count(*) AS n FROM gharchive.events');
    const overview = await open(`${dashboard.url}/`);
    expect(await drawnCharts(overview.page)).toBe(1);
    const rowsPerTable = await chartData(overview.page, 0);
    expect(rowsPerTable.data[rowsPerTable.labels.indexOf('gharchive.events')]).toBe(Number(events?.n));
    await overview.page.close();

    const perType = await engineQuery<{ type: string; events: bigint }>(
      'SELECT type, count(*) AS events FROM gharchive.events GROUP BY type ORDER BY events DESC, type',
    );
    expect(perType.length).toBeGreaterThan(3);
    const gharchive = await open(`${dashboard.url}/pipelines/gharchive`);
    expect(await drawnCharts(gharchive.page)).toBe(3);
    expect(await chartData(gharchive.page, 0)).toEqual({
      labels: perType.map((r) => r.type),
      data: perType.map((r) => Number(r.events)),
    });
    await gharchive.page.close();

    const [top] = await engineQuery<{ hashtag: string; mentions: bigint }>(
      'SELECT hashtag, mentions FROM hashtags.top_hashtags ORDER BY mentions DESC, hashtag LIMIT 1',
    );
    expect(top).toBeDefined();
    const hashtags = await open(`${dashboard.url}/pipelines/hashtags`);
    expect(await drawnCharts(hashtags.page)).toBe(3);
    const chart = await chartData(hashtags.page, 0);
    expect(chart.labels[0]).toBe(top?.hashtag);
    expect(chart.data[0]).toBe(Number(top?.mentions));
    await hashtags.page.close();
  });

  it('the SQL console runs a SELECT into a table and a chart, and refuses DROP TABLE', async () => {
    const sql =
      'SELECT type, count(*) AS events FROM gharchive.events GROUP BY type ORDER BY events DESC, type';
    const expected = await engineQuery<{ type: string; events: bigint }>(sql);
    const { page, errors } = await open(`${dashboard.url}/sql`);
    const settled = () =>
      page.waitForFunction(() => {
        const status = (
          globalThis as unknown as { document: { querySelector(s: string): { textContent: string } | null } }
        ).document.querySelector('#sql-status')?.textContent;
        return status !== undefined && status !== '' && status !== 'running…';
      });
    try {
      // The page runs its default statement on load: let it finish first.
      await settled();
      await page.fill('#sql', sql);
      await page.click('#sql-form button[type="submit"]');
      await settled();
      await page.waitForSelector('#sql-result table tbody tr');
      const rows = await page.$$eval('#sql-result tbody tr', (trs) =>
        trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)),
      );
      expect(rows).toEqual(expected.map((r) => [r.type, String(r.events)]));
      expect(await page.textContent('#sql-status')).toMatch(new RegExp(`^${expected.length} rows`));
      expect(await page.isVisible('#sql-chart canvas')).toBe(true);
      await screenshot(page, 'sql-result');
      expect(errors).toEqual([]);

      await page.fill('#sql', 'DROP TABLE x');
      await page.click('#sql-form button[type="submit"]');
      await page.waitForSelector('#sql-status.error');
      expect(await page.textContent('#sql-status')).toMatch(/DROP is not allowed/);
      expect(await page.$('#sql-result table')).toBeNull();
      await screenshot(page, 'sql-refused');
      // The only error the browser reports is the refused request's 400.
      expect(errors.every((e) => /status of 400/.test(e))).toBe(true);
    } finally {
      await page.close();
    }
  });

  it('a non-loopback bind needs the token: 401 without, the pages with ?token=', async () => {
    let open0: Dashboard;
    try {
      open0 = await startDashboard({ backend: t.backend, host: '0.0.0.0', port: 0, token: 'browser-token' });
    } catch (error) {
      console.warn(`cannot bind 0.0.0.0 here, token check skipped: ${(error as Error).message}`);
      return;
    }
    const base = open0.url.replace('0.0.0.0', '127.0.0.1');
    try {
      const refused = await open(`${base}/`);
      expect(refused.status).toBe(401);
      await refused.page.close();
      const allowed = await open(`${base}/?token=browser-token`);
      expect(allowed.status).toBe(200);
      expect(await allowed.page.textContent('h1')).toBe('Overview');
      await drawnCharts(allowed.page);
      // The cookie set by ?token= carries the next pages, their scripts and their API calls.
      await allowed.page.goto(`${base}/pipelines/gharchive`);
      await allowed.page.waitForSelector('body[data-charts-drawn="true"]');
      expect(await drawnCharts(allowed.page)).toBe(3);
      await screenshot(allowed.page, 'token-pipeline-gharchive');
      expect(allowed.errors).toEqual([]);
      await allowed.page.close();
    } finally {
      await open0.close();
    }
  });
});
