import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestHome, fakeClock, type TestHome } from '../../test/helpers/context.ts';
import {
  CHANGED_RETENTION_MS,
  RUNS_BY_TIME_KEY_SCHEMA,
  RUNS_BY_TIME_TABLE,
  RunLog,
  type RunRecord,
  type RunStatus,
} from '../core/run.ts';
import { type Dashboard, startDashboard } from './server.ts';

/**
 * Run pages by cursor and the live feed over HTTP, on a home with 137 generated runs over three
 * pipelines (distinct start times, mixed statuses). Expected pages are computed here from the
 * generated list (sorted and filtered in the test), not read back through the run log.
 */
const PIPELINES = ['alpha', 'beta', 'gamma'];
const STATUSES: RunStatus[] = [
  'succeeded',
  'failed',
  'succeeded',
  'partial',
  'skipped',
  'succeeded',
  'failed',
];
const BASE = Date.UTC(2030, 0, 1);
const minute = (n: number) => new Date(BASE + n * 60_000).toISOString();

function generated(count: number): RunRecord[] {
  return Array.from({ length: count }, (_, i) => {
    // Start times out of insertion order, all distinct: i * 7 mod count is a permutation (7 ∤ 137).
    const m = (i * 7) % count;
    const status = STATUSES[i % STATUSES.length] as RunStatus;
    return {
      runId: `run-${String(i).padStart(3, '0')}`,
      pipeline: PIPELINES[i % PIPELINES.length] as string,
      step: i % 2 ? 'load' : 'ingest',
      unit: `u${i}`,
      startedAt: minute(m),
      endedAt: new Date(BASE + m * 60_000 + 30_000).toISOString(),
      status,
    };
  });
}

const newestFirst = (runs: RunRecord[]) =>
  [...runs].sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt));
const ids = (runs: { runId: string }[]) => runs.map((r) => r.runId);

interface RunsBody {
  items: RunRecord[];
  total: number | null;
  nextOffset: number | null;
  older: string | null;
  newer: string | null;
}

let t: TestHome;
let dashboard: Dashboard;
const clock = fakeClock(new Date(BASE + 200 * 60_000));
const runs = generated(137);

async function getJson<T>(pathname: string): Promise<T> {
  const response = await fetch(`${dashboard.url}${pathname}`);
  expect(response.status, pathname).toBe(200);
  return (await response.json()) as T;
}

/** Follows `older` cursors from the first page; returns every page. */
async function walk(query: string): Promise<RunsBody[]> {
  const pages: RunsBody[] = [await getJson<RunsBody>(`/api/runs?${query}`)];
  for (let last = pages[0]; last?.older; last = pages.at(-1)) {
    pages.push(await getJson<RunsBody>(`/api/runs?${query}&older=${encodeURIComponent(last.older)}`));
    if (pages.length > 100) throw new Error('no end');
  }
  return pages;
}

beforeAll(async () => {
  t = await createTestHome({ clock });
  const log = await RunLog.open(t.backend.kv, clock);
  for (const run of runs) await log.write(run);
  dashboard = await startDashboard({ backend: t.backend, clock });
});

afterAll(async () => {
  await dashboard?.close();
  await t?.close();
});

describe('runs by cursor', () => {
  it('all pipelines: older cursors walk every run once, newest first; newer goes back', async () => {
    const pages = await walk('limit=10');
    const expected = newestFirst(runs);
    expect(pages).toHaveLength(Math.ceil(expected.length / 10));
    expect(pages.flatMap((p) => ids(p.items))).toEqual(ids(expected));
    expect(pages[0]?.newer).toBeNull();
    expect(pages[0]?.total).toBeNull();
    expect(pages.at(-1)?.older).toBeNull();
    expect(pages.slice(1).every((p) => p.newer !== null)).toBe(true);
    // From the third page, `newer` gives the second again (newest first).
    const back = await getJson<RunsBody>(
      `/api/runs?limit=10&newer=${encodeURIComponent(pages[2]?.newer ?? '')}`,
    );
    expect(ids(back.items)).toEqual(ids(pages[1]?.items ?? []));
    expect(back.older).not.toBeNull();
    // From the second page, `newer` gives the first, and says nothing is newer.
    const first = await getJson<RunsBody>(
      `/api/runs?limit=10&newer=${encodeURIComponent(pages[1]?.newer ?? '')}`,
    );
    expect(ids(first.items)).toEqual(ids(pages[0]?.items ?? []));
    expect(first.newer).toBeNull();
  });

  it('filters by pipeline and status, with cursors and with offsets', async () => {
    for (const [pipeline, status] of [
      ['beta', undefined],
      ['gamma', 'failed'],
      [undefined, 'partial'],
    ] as const) {
      const query = `limit=4${pipeline ? `&pipeline=${pipeline}` : ''}${status ? `&status=${status}` : ''}`;
      const expected = newestFirst(
        runs.filter((r) => (!pipeline || r.pipeline === pipeline) && (!status || r.status === status)),
      );
      expect(expected.length).toBeGreaterThan(4);
      const pages = await walk(query);
      expect(
        pages.flatMap((p) => ids(p.items)),
        query,
      ).toEqual(ids(expected));
      expect(pages.every((p) => p.items.length <= 4)).toBe(true);
      const second = await getJson<RunsBody>(`/api/runs?${query}&offset=4`);
      expect(ids(second.items)).toEqual(ids(expected.slice(4, 8)));
      expect(second.nextOffset).toBe(expected.length > 8 ? 8 : null);
    }
    // All of one filter on one page: the total is exact.
    const failedAlpha = runs.filter((r) => r.pipeline === 'alpha' && r.status === 'failed');
    const all = await getJson<RunsBody>('/api/runs?pipeline=alpha&status=failed&limit=500');
    expect(all.total).toBe(failedAlpha.length);
    expect(all.older).toBeNull();
  });

  it('the /runs page links to older and newer pages by cursor', async () => {
    const html = await (await fetch(`${dashboard.url}/runs?pipeline=alpha&limit=5`)).text();
    const older = /rel="next" href="([^"]+)"/.exec(html)?.[1]?.replaceAll('&amp;', '&');
    expect(older).toMatch(/^\/runs\?pipeline=alpha&older=[\w-]+&limit=5$/);
    expect(html).not.toContain('rel="prev"');
    const next = await (await fetch(`${dashboard.url}${older}`)).text();
    const expected = newestFirst(runs.filter((r) => r.pipeline === 'alpha')).slice(5, 10);
    for (const r of expected) expect(next).toContain(r.runId);
    expect(next).toContain('rel="prev"');
  });

  it('refuses a cursor made for another filter, or a malformed one', async () => {
    const page = await getJson<RunsBody>('/api/runs?pipeline=alpha&limit=2');
    const other = await fetch(`${dashboard.url}/api/runs?pipeline=beta&older=${page.older}`);
    expect(other.status).toBe(400);
    expect(((await other.json()) as { error: string }).error).toMatch(/made for pipeline "alpha"/);
    expect((await fetch(`${dashboard.url}/api/runs?older=not-a-cursor`)).status).toBe(400);
    expect((await fetch(`${dashboard.url}/api/runs?status=nonsense`)).status).toBe(400);
  });
});

describe('run log pages with a status filter', () => {
  it('stop after `budget` items examined, with a cursor to go on from there', async () => {
    const log = await RunLog.open(t.backend.kv, clock);
    const expected = newestFirst(runs.filter((r) => r.status === 'partial'));
    const seen: string[] = [];
    let older: string | undefined;
    let calls = 0;
    do {
      const page = await log.page({ limit: 50, status: 'partial', budget: 25, ...(older ? { older } : {}) });
      seen.push(...ids(page.items));
      older = page.older ?? undefined;
      calls++;
    } while (older !== undefined);
    expect(seen).toEqual(ids(expected));
    // 137 runs (138 with the live one, when that test ran first) at 25 examined per call.
    expect(calls).toBeGreaterThanOrEqual(Math.ceil(137 / 25));
  });

  it('the overview counts the runs of the last 24 h', async () => {
    clock.set(new Date(BASE + (24 * 60 + 60) * 60_000)); // the window starts at minute 60
    const html = await (await fetch(`${dashboard.url}/`)).text();
    clock.set(new Date(BASE + 200 * 60_000));
    const since = minute(60);
    const recent = runs.filter((r) => r.startedAt > since);
    const failed = recent.filter((r) => r.status === 'failed');
    expect(recent.length).toBeLessThan(runs.length);
    expect(html).toContain(`<b>${recent.length}</b> step runs in the last 24 h`);
    expect(html).toContain(`<b>${failed.length}</b> failed in the last 24 h`);
  });
});

describe('live feed', () => {
  interface Feed {
    cursor: string;
    runs: RunRecord[];
  }

  it('returns runs started or ended after `since`, newest change first, and the latest time as cursor', async () => {
    const since = minute(120);
    const feed = await getJson<Feed>(`/api/events?cursor=${encodeURIComponent(since)}`);
    const latest = (r: RunRecord) => (r.endedAt && r.endedAt > r.startedAt ? r.endedAt : r.startedAt);
    const expected = runs.filter((r) => latest(r) > since).sort((a, b) => (latest(a) < latest(b) ? 1 : -1));
    expect(ids(feed.runs)).toEqual(ids(expected));
    expect(feed.cursor).toBe(latest(expected[0] as RunRecord));
    const idle = await getJson<Feed>(`/api/events?cursor=${encodeURIComponent(feed.cursor)}`);
    expect(idle.runs).toEqual([]);
    expect(idle.cursor).toBe(feed.cursor);

    // A run started and finished later shows once, as finished; then nothing.
    clock.set(new Date(BASE + 300 * 60_000));
    const log = await RunLog.open(t.backend.kv, clock);
    const handle = await log.start({ runId: 'run-live', pipeline: 'beta', step: 'ingest' });
    const started = await getJson<Feed>(`/api/events?cursor=${encodeURIComponent(idle.cursor)}`);
    expect(started.runs.map((r) => [r.runId, r.status])).toEqual([['run-live', 'running']]);
    expect(started.cursor).toBe(minute(300));
    clock.set(new Date(BASE + 301 * 60_000));
    await handle.finish({ status: 'succeeded' });
    const both = await getJson<Feed>(`/api/events?cursor=${encodeURIComponent(idle.cursor)}`);
    expect(both.runs.map((r) => [r.runId, r.status])).toEqual([['run-live', 'succeeded']]);
    expect(both.cursor).toBe(minute(301));
    const top = await getJson<RunsBody>('/api/runs?limit=1');
    expect(top.items.map((r) => [r.runId, r.status])).toEqual([['run-live', 'succeeded']]);
  });
});

describe('homes written before the time index', () => {
  it('reads them the old way, then from the index once a writer backfilled it', async () => {
    const old = await createTestHome({ clock });
    try {
      // What an older sluice left: sluice_runs only (written through the table, as RunLog did).
      const table = await old.backend.kv.table('sluice_runs', {
        hashKey: { name: 'pipeline', type: 'S' },
        rangeKey: { name: 'run_key', type: 'S' },
      });
      const some = runs.slice(0, 20);
      for (const r of some) {
        await table.put({
          pipeline: r.pipeline,
          run_key: `${r.startedAt}#${r.runId}#${r.step}#${r.unit}`,
          run_id: r.runId,
          step: r.step,
          unit: r.unit ?? '',
          started_at: r.startedAt,
          ended_at: r.endedAt ?? '',
          status: r.status,
        });
      }
      const served = await startDashboard({ backend: old.backend, clock });
      try {
        const get = async <T>(p: string) => (await (await fetch(`${served.url}${p}`)).json()) as T;
        const expected = ids(newestFirst(some));
        const before = await get<RunsBody>('/api/runs?limit=500');
        expect(ids(before.items)).toEqual(expected);
        const index = await old.backend.kv.table(RUNS_BY_TIME_TABLE, RUNS_BY_TIME_KEY_SCHEMA);
        expect((await index.scan()).items).toEqual([]); // the dashboard does not write
        const writer = await RunLog.open(old.backend.kv, clock); // backfills
        expect(writer.indexed).toBe(true);
        expect((await index.query('started')).items).toHaveLength(20);
        const after = await walk2(get, 'limit=6');
        expect(after).toEqual(expected);
        const feed = await get<{ runs: RunRecord[] }>(
          `/api/events?cursor=${encodeURIComponent(minute(100))}`,
        );
        expect(ids(feed.runs).sort()).toEqual(
          ids(some.filter((r) => (r.endedAt ?? '') > minute(100))).sort(),
        );
      } finally {
        await served.close();
      }
    } finally {
      await old.close();
    }
  });

  it('backfill never overwrites an index entry a newer write made', async () => {
    const home = await createTestHome({ clock });
    try {
      const table = await home.backend.kv.table('sluice_runs', {
        hashKey: { name: 'pipeline', type: 'S' },
        rangeKey: { name: 'run_key', type: 'S' },
      });
      const key = `${minute(1)}#r1#ingest#`;
      await table.put({
        pipeline: 'alpha',
        run_key: key,
        run_id: 'r1',
        step: 'ingest',
        started_at: minute(1),
        status: 'running',
      });
      // A newer write reached the index first (a writer racing the backfill).
      const index = await home.backend.kv.table(RUNS_BY_TIME_TABLE, RUNS_BY_TIME_KEY_SCHEMA);
      await index.put({
        series: 'started',
        time_key: `${minute(1)}#alpha#${key}`,
        pipeline: 'alpha',
        run_key: key,
        run_id: 'r1',
        step: 'ingest',
        started_at: minute(1),
        status: 'succeeded',
      });
      const log = await RunLog.open(home.backend.kv, clock);
      const page = await log.page({ limit: 10 });
      expect(page.items.map((r) => [r.runId, r.status])).toEqual([['r1', 'succeeded']]);
    } finally {
      await home.close();
    }
  });
});

async function walk2(get: <T>(p: string) => Promise<T>, query: string): Promise<string[]> {
  const out: string[] = [];
  let page = await get<RunsBody>(`/api/runs?${query}`);
  out.push(...ids(page.items));
  while (page.older) {
    page = await get<RunsBody>(`/api/runs?${query}&older=${encodeURIComponent(page.older)}`);
    out.push(...ids(page.items));
  }
  return out;
}

describe('the live feed index keeps a bounded window of changes', () => {
  it('finishing writes delete changes older than the retention, so the series stays bounded', async () => {
    const start = Date.UTC(2031, 0, 1);
    const pruneClock = fakeClock(new Date(start));
    const home = await createTestHome({ clock: pruneClock });
    try {
      const log = await RunLog.open(home.backend.kv, pruneClock);
      // 120 runs, one every 2 hours (10 days), each written running then finished at its time.
      const hour = 3600_000;
      const written: RunRecord[] = [];
      for (let i = 0; i < 120; i++) {
        const startedAt = new Date(start + i * 2 * hour);
        pruneClock.set(startedAt);
        const record: RunRecord = {
          runId: `prune-${String(i).padStart(3, '0')}`,
          pipeline: 'alpha',
          step: 'load',
          unit: `u${i}`,
          startedAt: startedAt.toISOString(),
          status: 'running',
        };
        await log.write(record);
        const endedAt = new Date(startedAt.getTime() + 60_000);
        pruneClock.set(endedAt);
        const finished: RunRecord = { ...record, status: 'succeeded', endedAt: endedAt.toISOString() };
        await log.write(finished);
        written.push(finished);
      }
      const index = await home.backend.kv.table(RUNS_BY_TIME_TABLE, RUNS_BY_TIME_KEY_SCHEMA);
      const changed: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await index.query('changed', cursor ? { cursor } : {});
        changed.push(...page.items.map((item) => String(item.time_key)));
        cursor = page.cursor;
      } while (cursor !== undefined);
      // Expected independently: the changes (start and end of each run) not older than 7 days
      // before the last write's time.
      const cutoff = Date.parse(written.at(-1)!.endedAt!) - CHANGED_RETENTION_MS;
      const kept = written
        .flatMap((r) => [r.startedAt, r.endedAt!])
        .filter((time) => Date.parse(time) >= cutoff)
        .sort();
      expect(changed.map((key) => key.split('#')[0]).sort()).toEqual(kept);
      expect(changed.length).toBeLessThan(written.length * 2);
      // The runs themselves are all still there.
      expect((await log.list({ pipeline: 'alpha', limit: 1000 })).length).toBe(120);
    } finally {
      await home.close();
    }
  });
});
