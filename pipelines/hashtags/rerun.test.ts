/**
 * Re-running the hashtags pipeline over the same input: a replayed file is skipped, `again`
 * re-sends it under new sequence numbers, and re-staging the same landing objects loads nothing
 * twice. Expected rows are derived from the raw capture (test/helpers/tweets.ts).
 */
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestHome, type TestHome } from '../../test/helpers/context.ts';
import { HASHTAGS_SAMPLES } from '../../test/helpers/samples.ts';
import {
  comparable,
  expectedRows,
  expectedV1Records,
  expectedV2Records,
  hashtagRows,
  listKeys,
  multiset,
  readJsonArray,
  readJsonLines,
  readLandingCsv,
  sha1Base64,
} from '../../test/helpers/tweets.ts';
import { loadAnalytical } from './analytical.ts';
import { produce } from './producer.ts';
import { newRunId, runHashtags } from './run.ts';
import { deleteStaging, processStaging } from './staging.ts';
import { ensureStream } from './stream.ts';

const timeline = HASHTAGS_SAMPLES.v1Timeline;
const records = expectedV1Records(readJsonArray(timeline));
const expected = expectedRows(records);

describe('re-running the same capture file', () => {
  let t: TestHome;
  let first: Awaited<ReturnType<typeof runHashtags>>;
  let firstRows: Awaited<ReturnType<typeof hashtagRows>>;

  beforeAll(async () => {
    t = await createTestHome();
    first = await runHashtags(t.ctx, { source: { kind: 'replay', files: [timeline] } });
    firstRows = await hashtagRows(t, 'hashtag_data');
    expect(multiset(firstRows.map(comparable))).toEqual(multiset(expected));
  });
  afterAll(async () => {
    await t?.close();
  });

  it('(a) the same content again is skipped: nothing read or sent, hashtag_data unchanged', async () => {
    const landingBefore = await listKeys(t, 'landing', 'hashtags/');
    const again = await runHashtags(t.ctx, { source: { kind: 'replay', files: [timeline] } });
    expect(again.produce.files).toHaveLength(1);
    expect(again.produce.files[0]).toMatchObject({ status: 'skipped', previousRun: first.runId });
    expect(again.produce.counts).toMatchObject({ read: 0, loaded: 0, filtered: 0, quarantined: 0 });
    expect(again.land.counts.read).toBe(0);
    expect(again.land.landed).toEqual([]);
    expect(again.staging.rows).toBe(0);
    expect(again.analytical).toBeNull();
    expect(await listKeys(t, 'landing', 'hashtags/')).toEqual(landingBefore);
    expect(await hashtagRows(t, 'hashtag_data')).toEqual(firstRows);
  });

  it('(b) again: true sends the 15 records again under new sequence numbers: new record_ids, new hash_ids, 18 more rows', async () => {
    const forced = await runHashtags(t.ctx, { source: { kind: 'replay', files: [timeline], again: true } });
    expect(forced.produce.files[0]?.status).toBe('replayed');
    // The counts reconcile exactly as on the first run: 63 = 15 sent + 48 filtered + 0.
    expect(forced.produce.counts).toMatchObject({
      read: 63,
      loaded: records.length,
      filtered: 63 - records.length,
      quarantined: 0,
    });
    expect(forced.land.counts).toEqual({
      read: records.length,
      loaded: records.length,
      duplicates: 0,
      quarantined: 0,
    });
    expect(forced.staging.counts).toMatchObject({
      read: records.length,
      loaded: records.length,
      duplicates: 0,
    });
    expect(forced.staging.rows).toBe(expected.length);
    // Staging held only this run's batch, and none of its hash_ids was in hashtag_data yet.
    expect(forced.analytical?.counts).toEqual({
      read: expected.length,
      loaded: expected.length,
      duplicates: 0,
      quarantined: 0,
    });

    const all = await hashtagRows(t, 'hashtag_data');
    expect(all).toHaveLength(2 * expected.length);
    const oldRecordIds = new Set(firstRows.map((r) => r.record_id));
    const newRows = all.filter((r) => !oldRecordIds.has(r.record_id));
    expect(newRows).toHaveLength(expected.length);
    expect(new Set(newRows.map((r) => r.record_id)).size).toBe(records.length);
    // Sequence numbers keep increasing across the deleted and re-created stream.
    const maxOld = firstRows.map((r) => BigInt(r.record_id)).reduce((a, b) => (a > b ? a : b));
    for (const row of newRows) {
      expect(BigInt(row.record_id) > maxOld).toBe(true);
      expect(row.hash_id).toBe(sha1Base64(row.record_id, row.tweet_id, row.hashtag));
    }
    const oldHashIds = new Set(firstRows.map((r) => r.hash_id));
    expect(newRows.some((r) => oldHashIds.has(r.hash_id))).toBe(false);
    // The same tweets and hashtags, so every (tweet, hashtag) is now in hashtag_data twice.
    expect(multiset(newRows.map(comparable))).toEqual(multiset(expected));
    expect(multiset(all.map(comparable))).toEqual(multiset([...expected, ...expected]));
    // Two landing objects now, one per run.
    expect(await listKeys(t, 'landing', 'hashtags/')).toHaveLength(2);
  });
});

describe('(c) LandingAnalytical again over the same landing objects', () => {
  let t: TestHome;
  let first: Awaited<ReturnType<typeof runHashtags>>;

  beforeAll(async () => {
    t = await createTestHome();
    first = await runHashtags(t.ctx, { source: { kind: 'replay', files: [timeline] } });
  });
  afterAll(async () => {
    await t?.close();
  });

  for (const how of ['lookbackHours', 'keys'] as const) {
    it(`inserts 0 rows (all ${expected.length} duplicates) and replaces the old staging (selection by ${how})`, async () => {
      const dataBefore = await hashtagRows(t, 'hashtag_data');
      const stagingBefore = await listKeys(t, 'staging', 'hashtags/staging/', true);
      expect(stagingBefore.length).toBeGreaterThan(0);
      const landing = await listKeys(t, 'landing', 'hashtags/');
      expect(landing).toHaveLength(1);
      const landedRecordIds = (await readLandingCsv(t, landing[0]!)).map((line) => line[0]).sort();

      const runId = newRunId(new Date());
      const deleted = await deleteStaging(t.ctx, runId);
      expect(deleted.objects).toBe(stagingBefore.length);
      expect(await listKeys(t, 'staging', 'hashtags/staging/', true)).toEqual([]);
      const staged = await processStaging(t.ctx, {
        runId,
        selection: how === 'keys' ? { keys: landing } : { lookbackHours: 24 },
      });
      expect(staged.objects).toEqual(landing);
      expect(staged.counts).toMatchObject({
        read: records.length,
        loaded: records.length,
        duplicates: 0,
        quarantined: 0,
      });
      expect(staged.rows).toBe(expected.length);
      const loaded = await loadAnalytical(t.ctx, { runId });
      expect(loaded.counts).toEqual({
        read: expected.length,
        loaded: 0,
        duplicates: expected.length,
        quarantined: 0,
      });

      // hashtag_data is unchanged; staging holds exactly this batch, written by this run only.
      expect(await hashtagRows(t, 'hashtag_data')).toEqual(dataBefore);
      const stagingRows = await hashtagRows(t, 'staging');
      expect(multiset(stagingRows.map(comparable))).toEqual(multiset(expected));
      expect([...new Set(stagingRows.map((r) => r.record_id))].sort()).toEqual(landedRecordIds);
      expect(stagingRows.map((r) => r.hash_id)).toEqual(dataBefore.map((r) => r.hash_id));
      const stagingAfter = await listKeys(t, 'staging', 'hashtags/staging/', true);
      expect(stagingAfter.length).toBeGreaterThan(0);
      for (const key of stagingAfter) expect(key).toContain(runId);
      for (const key of stagingBefore) expect(stagingAfter).not.toContain(key);
      expect(stagingAfter.some((key) => key.includes(first.runId))).toBe(false);
    });
  }
});

describe('(d) a retried Produce task (same run id, as the state machine retries it)', () => {
  let t: TestHome;
  let dir: string;

  beforeAll(async () => {
    t = await createTestHome();
    dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-hashtags-retry-'));
  });
  afterAll(async () => {
    await t?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('does not send again a file its earlier attempt finished: the stream holds 15 + 9 records, counted once', async () => {
    const v2Records = readJsonLines(HASHTAGS_SAMPLES.v2Search).flatMap((page) => expectedV2Records(page));
    const stream = 'hashtags-retry';
    await ensureStream(t.ctx, { stream, shards: 1 });
    const later = path.join(dir, 'page.jsonl');
    const files = [timeline, later];
    // Attempt 1 replays the timeline, then fails on the second file (not there yet).
    await expect(
      produce(t.ctx, { runId: 'run-1', stream, source: { kind: 'replay', files } }),
    ).rejects.toThrow(/page\.jsonl/);
    await copyFile(HASHTAGS_SAMPLES.v2Search, later);
    // Attempt 2, same run id: the timeline is not sent twice, the page is sent.
    const retried = await produce(t.ctx, { runId: 'run-1', stream, source: { kind: 'replay', files } });
    expect(retried.files.map((f) => f.status)).toEqual(['skipped', 'replayed']);
    expect(retried.files[0]?.previousRun).toBe('run-1');
    expect(retried.counts).toMatchObject({
      read: 63 + 100,
      loaded: records.length + v2Records.length,
      filtered: 63 + 100 - records.length - v2Records.length,
      quarantined: 0,
    });

    const { stream: streams } = t.backend;
    const [shard] = (await streams.describeStream(stream)).shards;
    const iterator = await streams.getShardIterator(stream, shard!.shardId, { type: 'TRIM_HORIZON' });
    const sent = (await streams.getRecords(iterator)).records.map(
      (r) => JSON.parse(Buffer.from(r.data).toString('utf8')).tweet_id as string,
    );
    expect(sent).toEqual([...records, ...v2Records].map((r) => r.tweet_id));
  });
});
