/**
 * The hashtags pipeline end to end on the bundled real captures: every expected value is derived
 * in this file (through test/helpers/tweets.ts) from the raw JSON with `JSON.parse` and the
 * original's rule (REFERENCE.md section 1), never from sluice's own readers or output.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunLog, type RunRecord } from '../../src/core/run.ts';
import { createTestHome, type TestHome } from '../../test/helpers/context.ts';
import { HASHTAGS_SAMPLES } from '../../test/helpers/samples.ts';
import {
  comparable,
  type ExpectedRecord,
  expectedRows,
  expectedV1Records,
  expectedV2Records,
  type HashtagRow,
  hashtagRows,
  iso,
  listKeys,
  multiset,
  readJsonArray,
  readJsonLines,
  readLandingCsv,
  sha1Base64,
} from '../../test/helpers/tweets.ts';
import { runHashtags } from './run.ts';

async function stepRecords(t: TestHome, runId: string): Promise<Record<string, RunRecord>> {
  const runs = await RunLog.open(t.backend.kv, t.ctx.clock);
  const records = (await runs.list({ pipeline: 'hashtags' })).filter((r) => r.runId === runId);
  return Object.fromEntries(records.map((r) => [r.step, r]));
}

/** The landing record fields the producer should have sent for `record`, in CSV column order. */
function landingFields(record: ExpectedRecord): string[] {
  return [
    record.created,
    record.tweet_id,
    record.user_name,
    String(record.rt_count),
    record.hashtags.join(' '),
    record.text,
  ];
}

describe('hashtags end to end on v1_user_timeline_63.json (a v1.1 REST array)', () => {
  let t: TestHome;
  let summary: Awaited<ReturnType<typeof runHashtags>>;
  let rows: HashtagRow[];
  const statuses = readJsonArray(HASHTAGS_SAMPLES.v1Timeline);
  const expectedRecords = expectedV1Records(statuses);
  const expected = expectedRows(expectedRecords);

  beforeAll(async () => {
    t = await createTestHome();
    summary = await runHashtags(t.ctx, { source: { kind: 'replay', files: [HASHTAGS_SAMPLES.v1Timeline] } });
    rows = await hashtagRows(t, 'hashtag_data');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('the independent derivation matches the capture documented in PROVENANCE.md (63 read, 15 kept)', () => {
    expect(statuses).toHaveLength(63);
    expect(expectedRecords).toHaveLength(15);
    // tweet ids come from id_str: the numeric `id` of some originals is off once parsed to a
    // double, which is why id_str (a JSON string, parsed exactly) must be used.
    const raw = readFileSync(HASHTAGS_SAMPLES.v1Timeline, 'utf8');
    for (const record of expectedRecords) {
      expect(raw).toMatch(new RegExp(`"id_str":"${record.tweet_id}"`));
    }
    const originals = statuses.flatMap((s) =>
      s.retweeted_status ? [s.retweeted_status as Record<string, unknown>] : [],
    );
    expect(originals.some((o) => String(o.id) !== o.id_str)).toBe(true);
  });

  it('hashtag_data holds exactly one row per distinct cleaned hashtag of each kept retweet', () => {
    expect(multiset(rows.map(comparable))).toEqual(multiset(expected));
    expect(rows).toHaveLength(expected.length);
  });

  it('hash_id = base64(sha1(record_id + tweet_id + hashtag)), recomputed from the row itself', () => {
    for (const row of rows) {
      expect(row.hash_id).toBe(sha1Base64(row.record_id, row.tweet_id, row.hashtag));
    }
    expect(new Set(rows.map((r) => r.hash_id)).size).toBe(rows.length);
    // One record (one sequence number) per kept retweet.
    expect(new Set(rows.map((r) => r.record_id)).size).toBe(expectedRecords.length);
  });

  it('counts reconcile in the run summary: produce 63 = 15 sent + 48 filtered + 0, land 15, staging 15, analytical = rows', () => {
    const filtered = statuses.length - expectedRecords.length;
    expect(summary.produce.counts).toMatchObject({
      read: statuses.length,
      loaded: expectedRecords.length,
      filtered,
      quarantined: 0,
      duplicates: 0,
    });
    expect(summary.produce.files.map((f) => f.status)).toEqual(['replayed']);
    expect(summary.land.counts).toEqual({
      read: expectedRecords.length,
      loaded: expectedRecords.length,
      duplicates: 0,
      quarantined: 0,
    });
    expect(summary.land.stoppedBecause).toBe('drained');
    expect(summary.staging.counts).toMatchObject({
      read: expectedRecords.length,
      loaded: expectedRecords.length,
      duplicates: 0,
      quarantined: 0,
    });
    expect(summary.staging.rows).toBe(expected.length);
    expect(summary.analytical?.counts).toEqual({
      read: expected.length,
      loaded: expected.length,
      duplicates: 0,
      quarantined: 0,
    });
    expect(summary.stream).toMatchObject({ deleted: true, unconsumed: 0 });
  });

  it('counts reconcile in the run log (sluice runs) and data_update_log records both loads', async () => {
    const steps = await stepRecords(t, summary.runId);
    expect(Object.keys(steps).sort()).toEqual(['analytical', 'land', 'produce', 'staging']);
    for (const record of Object.values(steps)) expect(record.status).toBe('succeeded');
    expect(steps.produce?.counts).toEqual({
      read: 63,
      loaded: expectedRecords.length,
      duplicates: 0,
      quarantined: 0,
      filtered: 63 - expectedRecords.length,
    });
    expect(steps.land?.counts).toEqual({
      read: expectedRecords.length,
      loaded: expectedRecords.length,
      duplicates: 0,
      quarantined: 0,
    });
    expect(steps.staging?.counts).toMatchObject({
      read: expectedRecords.length,
      loaded: expectedRecords.length,
    });
    expect(steps.staging?.details?.rows).toBe(expected.length);
    expect(steps.analytical?.counts).toMatchObject({ read: expected.length, loaded: expected.length });

    const log = await t.query<{ table_name: string; records_inserted: unknown }>(
      `SELECT table_name, records_inserted FROM hashtags.data_update_log WHERE run_id = '${summary.runId}' ORDER BY table_name`,
    );
    expect(log.map((r) => [r.table_name, Number(r.records_inserted)])).toEqual([
      ['hashtag_data', expected.length],
      ['staging', expected.length],
    ]);
  });

  it('landing CSV: no header, record_id (digits), ISO arrival timestamp, then exactly the records sent', async () => {
    const keys = await listKeys(t, 'landing', 'hashtags/');
    expect(keys).toEqual(summary.land.landed.map((l) => l.key));
    const lines: string[][] = [];
    for (const key of keys) {
      expect(key).toMatch(/^hashtags\/\d{4}\/\d{2}\/\d{2}\/hashtags-tweets-\d{6}-\d+\.csv$/);
      lines.push(...(await readLandingCsv(t, key)));
    }
    expect(lines).toHaveLength(expectedRecords.length);
    for (const line of lines) {
      expect(line).toHaveLength(8);
      expect(line[0]).toMatch(/^\d+$/);
      expect(line[1]).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    }
    expect(new Set(lines.map((l) => l[0])).size).toBe(lines.length);
    expect(multiset(lines.map((l) => l.slice(2)))).toEqual(multiset(expectedRecords.map(landingFields)));
    // The landing object's date path is the arrival date (UTC) of its first record.
    const first = lines[0]![1]!.slice(0, 10).replaceAll('-', '/');
    expect(keys[0]!.startsWith(`hashtags/${first}/`)).toBe(true);
  });

  it('text and sentiment: text_clean has no URL, emoji, punctuation or newline; polarity in [-1,1]; subjectivity in [0,1]', () => {
    for (const row of rows) {
      expect(row.text_clean).not.toMatch(/https?:|www\.|t\.co\//i);
      expect(row.text_clean).not.toMatch(/[\u{10000}-\u{10FFFF}]|\p{Extended_Pictographic}/u);
      expect(row.text_clean).not.toMatch(/[\r\n\t]/);
      expect(row.text_clean).not.toMatch(/[^\p{L}\p{M}\p{N} ]/u);
      expect(row.text_clean.split(' ')).not.toContain('RT');
      expect(row.text_clean.split(' ')).not.toContain('amp');
      expect(row.text_clean).toBe(row.text_clean.trim());
      expect(row.polarity).toBeGreaterThanOrEqual(-1);
      expect(row.polarity).toBeLessThanOrEqual(1);
      expect(row.subjectivity).toBeGreaterThanOrEqual(0);
      expect(row.subjectivity).toBeLessThanOrEqual(1);
    }
    // The raw texts do carry URLs and emoji (so the checks above bite), and sentiment is scored.
    expect(expectedRecords.some((r) => /https:\/\/t\.co\//.test(r.text))).toBe(true);
    expect(rows.some((r) => r.polarity !== 0)).toBe(true);
    expect(rows.some((r) => r.subjectivity > 0)).toBe(true);
    // Every word of text_clean is a word of the original text (nothing invented).
    for (const record of expectedRecords) {
      const row = rows.find((r) => r.tweet_id === record.tweet_id)!;
      const rawLetters = record.text.replace(/[^\p{L}\p{N}]/gu, '');
      for (const word of row.text_clean.split(' ').filter((w) => w !== '')) {
        expect(rawLetters).toContain(word.replace(/[^\p{L}\p{N}]/gu, ''));
      }
    }
  });

  it('time_stamp is the landing arrival timestamp truncated to seconds; year/month/day are its UTC date', async () => {
    const arrival = new Map<string, string>();
    for (const key of await listKeys(t, 'landing', 'hashtags/')) {
      for (const line of await readLandingCsv(t, key)) arrival.set(line[0]!, line[1]!);
    }
    for (const row of rows) {
      const landed = arrival.get(row.record_id);
      expect(landed).toBeDefined();
      const truncated = `${landed!.slice(0, 19)}.000Z`;
      expect(iso(row.time_stamp)).toBe(truncated);
      const ts = new Date(truncated);
      expect([row.year, row.month, row.day]).toEqual([
        ts.getUTCFullYear(),
        ts.getUTCMonth() + 1,
        ts.getUTCDate(),
      ]);
    }
  });
});

describe('hashtags end to end: a capture without retweets, then a v2 page', () => {
  let t: TestHome;
  let first: Awaited<ReturnType<typeof runHashtags>>;

  beforeAll(async () => {
    t = await createTestHome();
    // A first run loads the timeline, so the tables exist and staging holds its batch.
    first = await runHashtags(t.ctx, { source: { kind: 'replay', files: [HASHTAGS_SAMPLES.v1Timeline] } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('v1_stream_sample_72.ndjson: 72 read, 72 filtered (none is a retweet), nothing landed, staging emptied, analytical untouched', async () => {
    const statuses = readJsonLines(HASHTAGS_SAMPLES.v1Stream);
    // Derived: 72 lines, none with retweeted_status, so the rule keeps 0 and filters all 72.
    expect(statuses).toHaveLength(72);
    expect(statuses.filter((s) => s.retweeted_status !== undefined)).toHaveLength(0);
    expect(expectedV1Records(statuses)).toHaveLength(0);
    const before = multiset(await hashtagRows(t, 'hashtag_data'));
    const landingBefore = await listKeys(t, 'landing', 'hashtags/');

    const summary = await runHashtags(t.ctx, {
      source: { kind: 'replay', files: [HASHTAGS_SAMPLES.v1Stream] },
    });
    expect(summary.produce.counts).toMatchObject({ read: 72, loaded: 0, filtered: 72, quarantined: 0 });
    expect(summary.produce.counts.rejections).toEqual({ not_a_retweet: 72 });
    expect(summary.land.counts).toEqual({ read: 0, loaded: 0, duplicates: 0, quarantined: 0 });
    expect(summary.land.landed).toEqual([]);
    expect(await listKeys(t, 'landing', 'hashtags/')).toEqual(landingBefore);
    expect(summary.staging.counts.read).toBe(0);
    expect(summary.staging.rows).toBe(0);
    expect(summary.analytical).toBeNull();
    expect(summary.dashboardRefreshedAt).toBeNull();

    // Old staging data was deleted first: the timeline batch is gone, nothing replaced it.
    expect(await t.query('SELECT * FROM hashtags.staging')).toEqual([]);
    expect(await listKeys(t, 'staging', 'hashtags/staging/', true)).toEqual([]);
    expect(multiset(await hashtagRows(t, 'hashtag_data'))).toEqual(before);
    const log = await t.query<{ run_id: string }>('SELECT run_id FROM hashtags.data_update_log');
    expect(log.map((r) => r.run_id).sort()).toEqual([first.runId, first.runId]);
    const steps = await stepRecords(t, summary.runId);
    expect(Object.keys(steps).sort()).toEqual(['land', 'produce', 'staging']);
    expect(steps.produce?.counts).toEqual({
      read: 72,
      loaded: 0,
      duplicates: 0,
      quarantined: 0,
      filtered: 72,
    });
  });

  it('v2_search_brexit_100.jsonl: rows equal those derived from data[].referenced_tweets and includes', async () => {
    const pages = readJsonLines(HASHTAGS_SAMPLES.v2Search);
    expect(pages).toHaveLength(1);
    const tweets = (pages[0]!.data as unknown[]).length;
    const records = pages.flatMap((page) => expectedV2Records(page));
    // Derived: 100 tweets on the page; 9 retweet an English original with > 99 retweets and hashtags.
    expect(tweets).toBe(100);
    expect(records).toHaveLength(9);
    const expected = expectedRows(records);

    const summary = await runHashtags(t.ctx, {
      source: { kind: 'replay', files: [HASHTAGS_SAMPLES.v2Search] },
    });
    expect(summary.produce.counts).toMatchObject({
      read: tweets,
      loaded: records.length,
      filtered: tweets - records.length,
      quarantined: 0,
    });
    expect(summary.land.counts).toMatchObject({ read: records.length, loaded: records.length });
    expect(summary.staging.counts).toMatchObject({ read: records.length, loaded: records.length });
    expect(summary.staging.rows).toBe(expected.length);
    expect(summary.analytical?.counts).toMatchObject({ read: expected.length, loaded: expected.length });

    const rows = await hashtagRows(
      t,
      'hashtag_data',
      `record_id IN (SELECT record_id FROM hashtags.staging)`,
    );
    expect(multiset(rows.map(comparable))).toEqual(multiset(expected));
    for (const row of rows) expect(row.hash_id).toBe(sha1Base64(row.record_id, row.tweet_id, row.hashtag));
    // Staging holds exactly this batch.
    expect(multiset((await hashtagRows(t, 'staging')).map(comparable))).toEqual(multiset(expected));
    // The same original retweeted three times in the capture is three records, three sets of rows.
    expect(new Set(rows.map((r) => r.record_id)).size).toBe(records.length);
  });
});
