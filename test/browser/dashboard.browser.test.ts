import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGharchive } from '../../pipelines/gharchive/run.ts';
import { runHashtags } from '../../pipelines/hashtags/run.ts';
import { bundledSamples } from '../../pipelines/hashtags/sources.ts';
import { pipelines } from '../../pipelines/index.ts';
import { type Dashboard, startDashboard } from '../../src/dashboard/server.ts';
import { serveDirectory } from '../../src/sources/http/static-server.ts';
import { createTestHome, type TestHome } from '../helpers/context.ts';
import { ROOT } from '../helpers/samples.ts';

/**
 * The dashboard in headless Chromium (Debian's `chromium`, driven by `playwright-core`) on a demo-like
 * home: gharchive's bundled hour through a static server and hashtags on the bundled captures. Every
 * page loads without console errors, its charts render, the numbers it shows equal what the query
 * engine (`sluice query`) returns for the same SQL; screenshots go to test-artifacts/dashboard/.
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

let t: TestHome;
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

describe.skipIf(!hasChromium)('dashboard in headless Chromium', () => {
  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
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
    dashboard = await startDashboard({ backend: t.backend, host: '127.0.0.1', port: 0 });
    profile = await mkdtemp(path.join(os.tmpdir(), 'sluice-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: ARGS,
      headless: true,
      viewport: { width: 1280, height: 900 },
    });
  }, 90_000);

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

  it('one execution page, when the home has executions', async () => {
    const { page, errors } = await open(`${dashboard.url}/executions`);
    const href = await page
      .$eval('main a[href^="/executions/"]', (a) => a.getAttribute('href'))
      .catch(() => null);
    await page.close();
    expect(errors).toEqual([]);
    if (!href) return;
    const one = await open(`${dashboard.url}${href}`);
    try {
      expect(one.status).toBe(200);
      await screenshot(one.page, 'execution');
      expect(one.errors).toEqual([]);
    } finally {
      await one.page.close();
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
    try {
      await page.fill('#sql', sql);
      await page.click('#sql-form button[type="submit"]');
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
