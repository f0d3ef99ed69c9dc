import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.ts';
import type { Item, KvTable } from '../../src/core/ports/kv-table.ts';
import { allPages } from '../../src/core/ports/kv-table.ts';
import { bindNamedQuery } from '../../src/core/query.ts';
import { RunLog } from '../../src/core/run.ts';
import { type QuotesFixtureServer, startQuotesFixture } from '../../src/sources/http/quotes-fixture.ts';
import type { QuotableQuote } from '../../src/sources/quotes/quotable.ts';
import { createTestHome, fakeClock, type TestHome } from '../../test/helpers/context.ts';
import { ROOT } from '../../test/helpers/samples.ts';
import { quotesQueries, RAW_KEY_SCHEMA, RAW_TABLE } from './definition.ts';
import { pollSimulated } from './poll.ts';
import { transformStep } from './transform.ts';

const DATA = path.join(ROOT, 'examples/data/quotes/quotes.json');
const DAY = '2024-01-01';
const START = new Date(`${DAY}T00:00:00.000Z`);

let t: TestHome;
let servers: QuotesFixtureServer[];
/** The transform's "now": the day after the polled days, at noon (when the schedule runs). */
const clock = fakeClock(new Date('2024-03-02T12:00:00.000Z'));

beforeEach(async () => {
  t = await createTestHome({ clock });
  servers = [];
});
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await t.close();
});

async function serve(seed: number): Promise<QuotesFixtureServer> {
  const server = await startQuotesFixture({ dataFile: DATA, seed });
  servers.push(server);
  return server;
}

async function rawTable(): Promise<KvTable> {
  return t.backend.kv.table(RAW_TABLE, RAW_KEY_SCHEMA);
}

async function rawItems(date: string): Promise<Item[]> {
  const table = await rawTable();
  const items: Item[] = [];
  for await (const item of allPages((cursor) => table.query(date, cursor ? { cursor } : {})))
    items.push(item);
  return items;
}

/** The raw item the original's pull_quote writes for a quote polled at `at` (spelled out here). */
function expectedRaw(q: QuotableQuote, at: Date): Item {
  return {
    ingested_date: at.toISOString().slice(0, 10),
    ingested_at: at.toISOString(),
    quote_id: q._id,
    content: q.content,
    author: q.author,
    tag_list: [...q.tags],
    author_slug: q.authorSlug,
    character_count: q.length,
    added_date: q.dateAdded,
    modified_date: q.dateModified,
  };
}

interface AggRow {
  quote_id: string;
  quote_text: string;
  author: string;
  quote_count: number;
  first_ingestion: string;
  last_ingestion: string;
  ingestion_dates: string[];
}

/** quotes_agg computed in plain JS from raw items: GROUP BY quote_id, quote_text, author. */
function expectedAgg(items: readonly Item[]): AggRow[] {
  const groups = new Map<string, AggRow>();
  for (const item of items) {
    const key = JSON.stringify([item.quote_id, item.content, item.author]);
    const at = String(item.ingested_at);
    const row = groups.get(key);
    if (row) {
      row.quote_count++;
      row.ingestion_dates.push(at);
    } else {
      groups.set(key, {
        quote_id: String(item.quote_id),
        quote_text: String(item.content),
        author: String(item.author),
        quote_count: 1,
        first_ingestion: at,
        last_ingestion: at,
        ingestion_dates: [at],
      });
    }
  }
  const rows = [...groups.values()].map((row) => {
    const times = [...row.ingestion_dates].sort();
    return { ...row, ingestion_dates: times, first_ingestion: times[0]!, last_ingestion: times.at(-1)! };
  });
  return rows.sort(
    (a, b) =>
      b.quote_count - a.quote_count ||
      a.first_ingestion.localeCompare(b.first_ingestion) ||
      (a.quote_id < b.quote_id ? -1 : 1),
  );
}

/** The original's statistics (numpy amin, amax, ptp, var, std: population, ddof = 0), in plain JS. */
function expectedStatistics(agg: readonly AggRow[]) {
  const counts = agg.map((r) => r.quote_count);
  const n = counts.length;
  const mean = counts.reduce((a, b) => a + b, 0) / n;
  const variance = counts.reduce((sum, c) => sum + (c - mean) ** 2, 0) / n;
  const max = Math.max(...counts);
  const min = Math.min(...counts);
  return { min, max, range: max - min, variance, standardDeviation: Math.sqrt(variance), distinctQuotes: n };
}

async function partitionFiles(table: string, date: string): Promise<string[]> {
  const dir = path.join(t.home, 'lake/analytical/quotes', table, `dt=${date}`);
  return (await readdir(dir).catch(() => [])).filter((f) => f.endsWith('.parquet')).sort();
}

describe('quotes: a simulated day of polling, then the daily transform', () => {
  it('stores one raw row per poll (the quotes served, in order), and builds the fact, the aggregate and the statistics of the original', async () => {
    const server = await serve(42);
    const started = Date.now();
    const polled = await pollSimulated(t.ctx, { apiUrl: server.url, start: START, polls: 1440 });
    const pollMs = Date.now() - started;
    expect(polled).toMatchObject({
      polls: 1440,
      stored: 1440,
      requests: 1440,
      first: '2024-01-01T00:00:00.000Z',
      last: '2024-01-01T23:59:00.000Z',
      days: [{ date: DAY, rows: 1440 }],
      exitCode: 0,
    });
    expect(polled.failed).toBeUndefined();

    // Raw rows equal polls: the exact quotes the server served, one per simulated minute.
    expect(server.served).toHaveLength(1440);
    const raw = await rawItems(DAY);
    expect(raw).toEqual(server.served.map((q, i) => expectedRaw(q, new Date(START.getTime() + i * 60_000))));
    expect(polled.distinctQuotes).toBe(new Set(server.served.map((q) => q._id)).size);

    // A page of 500 items: the day spans three pages, and every page is read.
    const transformStarted = Date.now();
    const result = await transformStep(t.ctx, { date: DAY, pageSize: 500 });
    const transformMs = Date.now() - transformStarted;
    console.log(`simulated day: 1,440 polls ${pollMs} ms, transform ${transformMs} ms`);
    if (result.status !== 'published') throw new Error(`not published: ${result.status}`);
    expect(result).toMatchObject({ rawRows: 1440, pages: 3 });

    // quotes_fact: the raw rows renamed (content AS quote_text), typed.
    const fact = await t.query(
      `SELECT * FROM quotes.quotes_fact WHERE dt = DATE '${DAY}' ORDER BY ingested_at`,
    );
    expect(fact).toEqual(
      raw.map((r) => ({
        quote_id: r.quote_id,
        quote_text: r.content,
        author: r.author,
        author_slug: r.author_slug,
        tag_list: r.tag_list,
        character_count: r.character_count,
        added_date: r.added_date,
        modified_date: r.modified_date,
        ingested_date: r.ingested_date,
        ingested_at: r.ingested_at,
        dt: DAY,
      })),
    );

    // quotes_agg: the original's GROUP BY, with the sorted list of ingestion times.
    const agg = expectedAgg(raw);
    const aggRows = await t.query(
      `SELECT * EXCLUDE (dt) FROM quotes.quotes_agg WHERE dt = DATE '${DAY}'
       ORDER BY quote_count DESC, first_ingestion, quote_id`,
    );
    expect(aggRows).toEqual(agg);
    expect(result.agg.rows).toBe(agg.length);
    expect(agg.reduce((sum, r) => sum + r.quote_count, 0)).toBe(1440);

    // Every statistic equals the value computed independently from the raw rows.
    const stats = expectedStatistics(agg);
    const s = result.statistics;
    expect({ min: s.min, max: s.max, range: s.range, distinctQuotes: s.distinctQuotes }).toEqual({
      min: stats.min,
      max: stats.max,
      range: stats.range,
      distinctQuotes: stats.distinctQuotes,
    });
    expect(s.variance).toBeCloseTo(stats.variance, 12);
    expect(s.standardDeviation).toBeCloseTo(stats.standardDeviation, 12);
    expect(s.polls).toBe(1440);
    expect(s.topQuote).toEqual({
      quoteId: agg[0]!.quote_id,
      quoteText: agg[0]!.quote_text,
      author: agg[0]!.author,
      quoteCount: stats.max,
    });
    // The seed's day has ties for the top count: the earliest drawn of them wins, deterministically.
    expect(agg.filter((r) => r.quote_count === stats.max).length).toBeGreaterThan(1);
    const metrics = Object.fromEntries(result.metrics.map((m) => [m.metric, m.value ?? m.text]));
    expect(metrics).toMatchObject({
      top_quote: agg[0]!.quote_text,
      top_quote_author: agg[0]!.author,
      top_quote_id: agg[0]!.quote_id,
      quote_count_min: stats.min,
      quote_count_max: stats.max,
      quote_count_range: stats.range,
      distinct_quotes: stats.distinctQuotes,
      polls: 1440,
    });
    expect(metrics.quote_count_variance).toBeCloseTo(stats.variance, 12);
    expect(metrics.quote_count_stddev).toBeCloseTo(stats.standardDeviation, 12);
    for (const m of result.metrics) {
      expect(m).toMatchObject({ pipeline: 'quotes', table: 'quotes_agg', runId: result.runId, unit: DAY });
    }

    // Stored in sluice.quality_metrics, queryable.
    const stored = await t.query<{ metric: string; value: number | null; text: string | null }>(
      `SELECT metric, value, text FROM sluice.quality_metrics WHERE pipeline = 'quotes' AND table_name = 'quotes_agg' AND unit = '${DAY}' AND run_id = '${result.runId}' ORDER BY metric`,
    );
    expect(stored).toEqual(
      [...result.metrics]
        .sort((a, b) => (a.metric < b.metric ? -1 : 1))
        .map((m) => ({ metric: m.metric, value: m.value, text: m.text ?? null })),
    );
    // Every check passed, and the results are in sluice.quality_results.
    expect(result.checks.map((c) => `${c.table}.${c.check}:${c.status}`)).toEqual([
      'quotes_fact.row_count:pass',
      'quotes_fact.not_null(quote_id):pass',
      'quotes_fact.not_null(ingested_at):pass',
      'quotes_fact.unique(ingested_at):pass',
      'quotes_fact.in_its_day:pass',
      'quotes_fact.length_matches_text:pass',
      'quotes_agg.count_matches_times:pass',
      'quotes_agg.unique(quote_id):pass',
    ]);
    const recorded = await t.query<{ n: number }>(
      `SELECT count(*) AS n FROM sluice.quality_results WHERE pipeline = 'quotes' AND run_id = '${result.runId}' AND status = 'pass'`,
    );
    expect(recorded).toEqual([{ n: 8 }]);

    // Cataloged with the declared types, one partition dt=<day>, Snappy Parquet.
    const factTable = await t.backend.catalog.getTable('quotes', 'quotes_fact');
    expect(Object.fromEntries(factTable!.columns.map((c) => [c.name, c.type]))).toEqual({
      quote_id: 'string',
      quote_text: 'string',
      author: 'string',
      author_slug: 'string',
      tag_list: 'array<string>',
      character_count: 'int',
      added_date: 'date',
      modified_date: 'date',
      ingested_date: 'date',
      ingested_at: 'timestamp',
    });
    const aggPartitions = await t.backend.catalog.listPartitions('quotes', 'quotes_agg');
    expect(aggPartitions.map((p) => [p.prefix, p.files.map((f) => f.rows)])).toEqual([
      [`quotes/quotes_agg/dt=${DAY}/`, [agg.length]],
    ]);
    const [file] = await partitionFiles('quotes_fact', DAY);
    const compression = await t.query<{ compression: string }>(
      `SELECT DISTINCT compression FROM parquet_metadata('${path.join(t.home, 'lake/analytical/quotes/quotes_fact', `dt=${DAY}`, file!)}')`,
    );
    expect(compression).toEqual([{ compression: 'SNAPPY' }]);

    // The named query reads it back, most drawn first.
    const top = await t.query(bindNamedQuery(quotesQueries[0]!, { date: DAY }));
    expect(top[0]).toMatchObject({ quote_id: agg[0]!.quote_id, quote_count: stats.max });

    // The run log has the poll run and the transform.
    const runs = await (await RunLog.open(t.backend.kv, clock)).list({ pipeline: 'quotes' });
    expect(runs.map((r) => [r.step, r.status, r.counts?.read]).sort()).toEqual([
      ['poll', 'succeeded', 1440],
      ['transform', 'succeeded', 1440],
    ]);
    expect(pollMs + transformMs).toBeLessThan(15_000);
  });

  it("re-running a day replaces that day's partitions and nothing else", async () => {
    const first = await serve(1);
    await pollSimulated(t.ctx, { apiUrl: first.url, start: START, polls: 30 });
    const other = new Date('2024-01-02T10:00:00.000Z');
    await pollSimulated(t.ctx, { apiUrl: first.url, start: other, polls: 5 });
    await transformStep(t.ctx, { date: DAY });
    await transformStep(t.ctx, { date: '2024-01-02' });
    const before = await t.query(`SELECT * FROM quotes.quotes_agg WHERE dt = DATE '2024-01-02' ORDER BY ALL`);

    // The same minutes polled again from another seed: the raw rows are overwritten (same keys).
    const second = await serve(99);
    await pollSimulated(t.ctx, { apiUrl: second.url, start: START, polls: 30 });
    expect((await rawItems(DAY)).map((r) => r.quote_id)).toEqual(second.served.map((q) => q._id));
    const again = await transformStep(t.ctx, { date: DAY });
    if (again.status !== 'published') throw new Error('not published');

    const fact = await t.query<{ quote_id: string }>(
      `SELECT quote_id FROM quotes.quotes_fact WHERE dt = DATE '${DAY}' ORDER BY ingested_at`,
    );
    expect(fact.map((r) => r.quote_id)).toEqual(second.served.map((q) => q._id));
    const agg = await t.query(
      `SELECT sum(quote_count) AS n, count(*) AS rows FROM quotes.quotes_agg WHERE dt = DATE '${DAY}'`,
    );
    expect(agg).toEqual([{ n: 30, rows: expectedAgg(await rawItems(DAY)).length }]);
    expect(await partitionFiles('quotes_fact', DAY)).toEqual([`part-${DAY}_0.parquet`]);
    expect(await partitionFiles('quotes_agg', DAY)).toEqual([`part-${DAY}_0.parquet`]);
    // The other day is untouched.
    expect(
      await t.query(`SELECT * FROM quotes.quotes_agg WHERE dt = DATE '2024-01-02' ORDER BY ALL`),
    ).toEqual(before);
    expect(await t.query(`SELECT dt, count(*) AS n FROM quotes.quotes_fact GROUP BY dt ORDER BY dt`)).toEqual(
      [
        { dt: DAY, n: 30 },
        { dt: '2024-01-02', n: 5 },
      ],
    );
  });

  it('a day without polls publishes nothing and keeps what was published; a day not over is refused', async () => {
    const server = await serve(5);
    await pollSimulated(t.ctx, { apiUrl: server.url, start: START, polls: 10 });
    await transformStep(t.ctx, { date: DAY });

    const empty = await transformStep(t.ctx, { date: '2024-02-01' });
    expect(empty).toMatchObject({ status: 'empty', rawRows: 0 });
    if (empty.status === 'empty')
      expect(empty.message).toMatch(/no polls stored for 2024-02-01.*nothing published/);
    expect((await t.backend.catalog.listPartitions('quotes', 'quotes_fact')).map((p) => p.prefix)).toEqual([
      `quotes/quotes_fact/dt=${DAY}/`,
    ]);
    const runs = await (await RunLog.open(t.backend.kv, clock)).list({ pipeline: 'quotes' });
    expect(runs.find((r) => r.unit === '2024-02-01')).toMatchObject({ step: 'transform', status: 'skipped' });

    // The clock's day (2024-03-02, noon) is still being polled: transforming it would publish part of it.
    await expect(transformStep(t.ctx, { date: '2024-03-02' })).rejects.toThrow(/is not over yet/);
    await expect(transformStep(t.ctx, { date: '2024-03-02' })).rejects.toBeInstanceOf(UsageError);
    await expect(transformStep(t.ctx, { date: '2024-02-30' })).rejects.toThrow(/not a YYYY-MM-DD day/);
  });

  it('a read of quotes_raw failing after the first page publishes nothing of the day', async () => {
    const server = await serve(11);
    await pollSimulated(t.ctx, { apiUrl: server.url, start: START, polls: 25 });
    await transformStep(t.ctx, { date: DAY, pageSize: 10 });
    const before = await t.query(`SELECT * FROM quotes.quotes_fact ORDER BY ingested_at`);

    const next = await serve(12);
    await pollSimulated(t.ctx, { apiUrl: next.url, start: START, polls: 25 });
    const table = await rawTable();
    let pages = 0;
    const failing: KvTable = {
      ...table,
      name: table.name,
      keySchema: table.keySchema,
      get: (key) => table.get(key),
      put: (item, options) => table.put(item, options),
      delete: (key, options) => table.delete(key, options),
      scan: (options) => table.scan(options),
      readChanges: (position, options) => table.readChanges(position, options),
      query: async (hash, options) => {
        if (++pages === 2)
          throw new Error('ProvisionedThroughputExceededException: rate of requests exceeds');
        return table.query(hash, options);
      },
    };
    await expect(transformStep(t.ctx, { date: DAY, pageSize: 10, rawTable: failing })).rejects.toThrow(
      /quotes\/transform \(2024-01-01\).*ProvisionedThroughputExceededException/,
    );
    expect(await t.query(`SELECT * FROM quotes.quotes_fact ORDER BY ingested_at`)).toEqual(before);
    const runs = await (await RunLog.open(t.backend.kv, clock)).list({ pipeline: 'quotes' });
    expect(
      runs
        .filter((r) => r.step === 'transform')
        .map((r) => r.status)
        .sort(),
    ).toEqual(['failed', 'succeeded']);
  });

  it('a block check keeps a bad day from publishing (the day published before stays); a warn check publishes and records the failure', async () => {
    const server = await serve(21);
    await pollSimulated(t.ctx, { apiUrl: server.url, start: START, polls: 20 });
    const first = await transformStep(t.ctx, { date: DAY });
    const before = await t.query(`SELECT * FROM quotes.quotes_fact ORDER BY ingested_at`);
    const beforeAgg = await t.query(`SELECT * FROM quotes.quotes_agg ORDER BY ALL`);

    // An item written by something else than the poller: no quote id.
    const table = await rawTable();
    await table.put({
      ingested_date: DAY,
      ingested_at: '2024-01-01T12:00:30.000Z',
      content: 'anonymous',
      author: 'nobody',
    });
    const error = await transformStep(t.ctx, { date: DAY }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'QualityBlockedError', exitCode: 7 });
    expect((error as Error).message).toMatch(/not_null\(quote_id\): 1 of 21 rows have NULL quote_id/);
    expect((error as Error).message).toMatch(/count_matches_times/);
    // Nothing of the day was published: both tables are as before, byte for byte the same rows.
    expect(await t.query(`SELECT * FROM quotes.quotes_fact ORDER BY ingested_at`)).toEqual(before);
    expect(await t.query(`SELECT * FROM quotes.quotes_agg ORDER BY ALL`)).toEqual(beforeAgg);
    const blocked = await t.query<{ table_name: string; check_name: string; action: string }>(
      `SELECT table_name, check_name, action FROM sluice.quality_results WHERE status = 'fail' ORDER BY ALL`,
    );
    expect(blocked).toEqual([
      { table_name: 'quotes_agg', check_name: 'count_matches_times', action: 'blocked' },
      { table_name: 'quotes_fact', check_name: 'length_matches_text', action: 'warned' },
      { table_name: 'quotes_fact', check_name: 'not_null(quote_id)', action: 'blocked' },
    ]);
    const runs = await (await RunLog.open(t.backend.kv, clock)).list({ pipeline: 'quotes' });
    const failedRun = runs.find((r) => r.step === 'transform' && r.status === 'failed');
    expect(failedRun?.details?.checks).toEqual(
      expect.arrayContaining([expect.objectContaining({ check: 'not_null(quote_id)', action: 'blocked' })]),
    );
    // No statistics of the blocked run.
    expect(await t.query(`SELECT DISTINCT run_id FROM sluice.quality_metrics`)).toEqual([
      { run_id: first.runId },
    ]);

    // A quote whose length disagrees with its text: a warning, and the day publishes.
    const q = server.served[0]!;
    await table.put({
      ingested_date: DAY,
      ingested_at: '2024-01-01T12:00:30.000Z',
      quote_id: q._id,
      content: q.content,
      author: q.author,
      tag_list: [...q.tags],
      author_slug: q.authorSlug,
      character_count: q.length + 1,
      added_date: q.dateAdded,
      modified_date: q.dateModified,
    });
    const warned = await transformStep(t.ctx, { date: DAY });
    if (warned.status !== 'published') throw new Error('not published');
    expect(warned.fact.rows).toBe(21);
    expect(warned.checks.filter((c) => c.status === 'fail')).toEqual([
      expect.objectContaining({
        table: 'quotes_fact',
        check: 'length_matches_text',
        severity: 'warn',
        action: 'warned',
        failingRows: 1,
      }),
    ]);
  });

  it('a poll failing through its retries ends the simulated run: nothing stored for it, exit code 4', async () => {
    const server = await serve(3);
    // Polls 1-3 succeed; poll 4 gets 500 on all of its 3 attempts.
    const summary = await pollSimulated(t.ctx, {
      apiUrl: server.url,
      start: START,
      polls: 10,
      baseDelayMs: 0,
      onPoll: (_result, index) => {
        if (index === 2)
          server.script(...Array.from({ length: 3 }, () => ({ kind: 'status' as const, status: 500 })));
      },
    });
    expect(summary).toMatchObject({
      stored: 3,
      requests: 3,
      exitCode: 4,
      failed: { at: '2024-01-01T00:03:00.000Z' },
    });
    expect(summary.failed?.error).toMatch(/SourceUnavailableError|failed 3 attempts; last error: HTTP 500/);
    expect((await rawItems(DAY)).map((r) => r.ingested_at)).toEqual([
      '2024-01-01T00:00:00.000Z',
      '2024-01-01T00:01:00.000Z',
      '2024-01-01T00:02:00.000Z',
    ]);
    const runs = await (await RunLog.open(t.backend.kv, clock)).list({ pipeline: 'quotes' });
    expect(runs).toEqual([
      expect.objectContaining({
        step: 'poll',
        status: 'failed',
        counts: expect.objectContaining({ read: 3, loaded: 3 }),
      }),
    ]);
  });
});
