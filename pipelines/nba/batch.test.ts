import { readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTollsHome,
  startTestWarehouse,
  type TestWarehouse,
  type TollsHome,
} from '../../test/helpers/tolls.ts';
import { type BatchPathResult, loadTotals, runBatchPath } from './batch.ts';
import { envelopesFromTweets } from './envelopes.ts';
import { defaultPlayers, NBA_DATA_DIR, NBA_FILES } from './reference.ts';

/** The real sample, parsed here with JSON.parse on gunzipped lines (not with sluice's readers). */
const sampleLines = gunzipSync(readFileSync(path.join(NBA_DATA_DIR, NBA_FILES.tweets)))
  .toString('utf8')
  .split('\n')
  .filter((l) => l !== '');
interface SampleTweet {
  id: string;
  created_at: string;
  context_annotations?: { domain: { id: string }; entity: { name?: string } }[] | Record<string, never>;
}
const sample = sampleLines.map((l) => JSON.parse(l) as SampleTweet);
const firstById = new Map<string, SampleTweet>();
for (const tweet of sample) if (!firstById.has(tweet.id)) firstById.set(tweet.id, tweet);
const day = (iso: string) => new Date(iso).toISOString().slice(0, 10);

/** The daily aggregate computed in plain JS over the unique tweets: `YYYY-MM-DD|player` -> total. */
function expectedTotals(): Map<string, number> {
  const totals = new Map<string, number>();
  for (const tweet of firstById.values()) {
    if (!Array.isArray(tweet.context_annotations)) continue; // `{}`: no annotations
    for (const a of tweet.context_annotations) {
      if (a.domain.id !== '60' || a.entity.name === undefined) continue;
      const key = `${day(tweet.created_at)}|${a.entity.name}`;
      totals.set(key, (totals.get(key) ?? 0) + 1);
    }
  }
  return totals;
}

let warehouse: TestWarehouse;
let t: TollsHome;
let result: BatchPathResult;

beforeAll(async () => {
  warehouse = await startTestWarehouse('nba');
  t = await createTollsHome({ warehouseUrl: warehouse.url });
  const { envelopes, rejected } = envelopesFromTweets(sampleLines, defaultPlayers().players);
  expect(rejected).toEqual([]);
  // One dedup unit writes ~380 day partitions at once (DuckDB's PARTITION_BY buffers per open
  // partition): 512 MB, the default limit, instead of the tolls helper's 256 MB.
  result = await runBatchPath({ ...t.ctx, engine: { threads: 2, memoryLimit: '512MB' } }, envelopes, {
    runId: 'nba-test-1',
  });
}, 60_000);
afterAll(async () => {
  await t?.close();
  await warehouse?.stop();
});

async function query<T>(sql: string): Promise<T[]> {
  const engine = await t.backend.openQueryEngine();
  try {
    return (await engine.query(sql)).rows as T[];
  } finally {
    await engine.close();
  }
}

describe('the nba batch path on the real sample', () => {
  it('the sample is what PROVENANCE.md says', () => {
    expect(sample).toHaveLength(21_466);
    expect(firstById.size).toBe(20_264);
  });

  it('delivers every envelope by day of created_at and deduplicates on id', async () => {
    const days = new Set(sample.map((tw) => day(tw.created_at)));
    expect(result.envelopes).toBe(21_466);
    expect(result.delivery.stats).toMatchObject({
      received: 21_466,
      delivered: 21_466,
      dropped: 0,
      failed: 0,
    });
    expect(result.delivery.partitions).toBe(days.size);
    expect(result.dedup.counts).toEqual({ read: 21_466, loaded: 20_264, duplicates: 1_202, quarantined: 0 });
    expect(result.dedup.duplicatesInInput).toBe(1_202);
    expect(result.dedup.partitions).toHaveLength(days.size);
    expect(result.dedup.checks.map((c) => [c.check, c.status])).toEqual([
      ['not_null(id)', 'pass'],
      ['unique(id)', 'pass'],
      ['not_null(created_at)', 'pass'],
    ]);
    // Partition row counts equal the unique tweets per day.
    const perDay = new Map<string, number>();
    for (const tw of firstById.values())
      perDay.set(day(tw.created_at), (perDay.get(day(tw.created_at)) ?? 0) + 1);
    const written = new Map(result.dedup.partitions.map((p) => [p.values.join('-'), p.rows]));
    expect(written).toEqual(perDay);
    const [row] = await query<{ n: bigint; u: bigint }>(
      'SELECT count(*) AS n, count(DISTINCT id) AS u FROM nba.tweets',
    );
    expect([Number(row?.n), Number(row?.u)]).toEqual([20_264, 20_264]);
    // The landing data is crawled.
    expect(result.crawl?.tables.map((tb) => [tb.name, tb.partitions])).toEqual([
      ['raw', days.size],
      ['source', 1],
    ]);
  });

  it('computes the daily aggregate as a plain JS computation over the deduplicated tweets', async () => {
    const expected = expectedTotals();
    const rows = await query<{ year: number; month: number; day: number; player: string; total: bigint }>(
      'SELECT year, month, day, player, total FROM nba.players_total_tweets',
    );
    const actual = new Map(
      rows.map((r) => [
        `${r.year}-${String(r.month).padStart(2, '0')}-${String(r.day).padStart(2, '0')}|${r.player}`,
        Number(r.total),
      ]),
    );
    expect(actual.size).toBe(expected.size);
    expect(actual).toEqual(expected);
    expect(result.aggregate.rows).toBe(expected.size);
    expect(result.aggregate.annotations).toBe([...expected.values()].reduce((a, b) => a + b, 0));
    expect(actual.get('2017-10-25|Jaylen Brown')).toBe(780);
  });

  it('loads the aggregate into the warehouse once per content', async () => {
    const expected = expectedTotals();
    expect(result.warehouse).toEqual({ status: 'loaded', rows: expected.size });
    const rows = await warehouse.sql<{ d: string; player: string; total: string }>(
      `SELECT to_char(make_date(year, month, day), 'YYYY-MM-DD') AS d, player, total FROM players_total_tweets`,
    );
    expect(new Map(rows.map((r) => [`${r.d}|${r.player}`, Number(r.total)]))).toEqual(expected);
    // The same content again: nothing is copied.
    const again = await loadTotals(t.ctx, { aggregate: result.aggregate, runId: 'nba-test-2' });
    expect(again).toEqual({ status: 'already-loaded', rows: expected.size, previousRun: 'nba-test-1' });
    const [count] = await warehouse.sql<{ n: number }>('SELECT count(*)::int AS n FROM players_total_tweets');
    expect(count?.n).toBe(expected.size);
    const loads = await warehouse.sql<{ target_table: string; rows: number }>(
      'SELECT target_table, rows_loaded::int AS rows FROM sluice_loads',
    );
    expect(loads).toEqual([{ target_table: 'players_total_tweets', rows: expected.size }]);
  });
});
