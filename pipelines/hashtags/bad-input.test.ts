/**
 * Bad input is quarantined with its location and a reason while everything else flows, and the
 * counts reconcile at every stage. The damaged capture is built here from the real samples; the
 * expected counts and rows are derived from the parts it is built from (test/helpers/tweets.ts).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
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
  readQuarantine,
  sha1Base64,
} from '../../test/helpers/tweets.ts';
import { newRunId, runHashtags } from './run.ts';
import { deleteStaging, processStaging } from './staging.ts';

type Json = Record<string, unknown>;

describe('a damaged NDJSON capture: bad lines are quarantined, the good statuses flow', () => {
  let t: TestHome;
  let dir: string;
  let file: string;
  let summary: Awaited<ReturnType<typeof runHashtags>>;

  const statuses = readJsonArray(HASHTAGS_SAMPLES.v1Timeline);
  const page = readJsonLines(HASHTAGS_SAMPLES.v2Search)[0]!;
  const v1Kept = expectedV1Records(statuses);
  const v2Kept = expectedV2Records(page);
  /** A kept retweet whose original lost its `user`: it passes every rule but the record cannot be built. */
  const keptIndex = statuses.findIndex(
    (s) => (s.retweeted_status as Json | undefined)?.id_str === v1Kept[0]!.tweet_id,
  );
  const withoutUser = structuredClone(statuses[keptIndex]!);
  delete (withoutUser.retweeted_status as Json).user;
  const errors = [
    {
      value: '1440000000000000000',
      detail: 'Could not find tweet with ids: [1440000000000000000].',
      title: 'Not Found Error',
      resource_type: 'tweet',
      parameter: 'ids',
      resource_id: '1440000000000000000',
      type: 'https://api.twitter.com/2/problems/resource-not-found',
    },
    {
      detail: 'Sorry, you are not authorized to see the Tweet with id: [1440000000000000001].',
      title: 'Authorization Error',
      resource_type: 'tweet',
      resource_id: '1440000000000000001',
      type: 'https://api.twitter.com/2/problems/not-authorized-for-resource',
    },
  ];
  const truncated = JSON.stringify(statuses[1]).slice(0, 300);
  const invalidUtf8 = Buffer.concat([
    Buffer.from(JSON.stringify(statuses[2]).slice(0, 80)),
    Buffer.from([0xff, 0xfe, 0xc3, 0x28]),
    Buffer.from(JSON.stringify(statuses[2]).slice(80)),
  ]);

  /** File lines in order (1-based line = index + 1); `bad` marks what must be quarantined and why. */
  const lines: { bytes: Buffer; bad?: RegExp[] }[] = [
    ...statuses.slice(0, 10).map((s) => ({ bytes: Buffer.from(JSON.stringify(s)) })),
    { bytes: Buffer.from('   ') }, // a blank line: skipped, not counted, but it is a line of the file
    ...statuses.slice(10).map((s) => ({ bytes: Buffer.from(JSON.stringify(s)) })),
    { bytes: Buffer.from(truncated), bad: [/not valid JSON/] },
    { bytes: Buffer.from(JSON.stringify(withoutUser)), bad: [/no user/] },
    { bytes: invalidUtf8, bad: [/not valid UTF-8/] },
    {
      bytes: Buffer.from(JSON.stringify({ ...page, errors })),
      bad: [/Not Found Error.*1440000000000000000/, /Authorization Error.*1440000000000000001/],
    },
    { bytes: Buffer.from('') },
  ];
  const badItems = lines.flatMap((l, i) =>
    (l.bad ?? []).map((reason, index) => ({ line: i + 1, reason, index })),
  );
  const kept = [...v1Kept, ...v2Kept];
  const expected = expectedRows(kept);
  /** Counted as read: every status line, each bad item, each tweet of the page (the blank lines are not). */
  const read = statuses.length + (page.data as unknown[]).length + badItems.length;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-hashtags-bad-'));
    file = path.join(dir, 'damaged.ndjson');
    await writeFile(file, Buffer.concat(lines.flatMap((l) => [l.bytes, Buffer.from('\n')])));
    t = await createTestHome();
    summary = await runHashtags(t.ctx, { source: { kind: 'replay', files: [file] } });
  });
  afterAll(async () => {
    await t?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('derivation: 63 statuses (15 kept), one page of 100 tweets (9 kept), 5 bad items', () => {
    expect(v1Kept).toHaveLength(15);
    expect(v2Kept).toHaveLength(9);
    expect(badItems).toHaveLength(5);
    expect(read).toBe(63 + 100 + 5);
  });

  it('produce: read = sent + filtered + quarantined (168 = 24 + 139 + 5)', () => {
    expect(summary.produce.counts).toMatchObject({
      read,
      loaded: kept.length,
      filtered: read - kept.length - badItems.length,
      quarantined: badItems.length,
      duplicates: 0,
    });
  });

  it('hashtag_data holds exactly the rows of the 15 + 9 kept retweets; counts reconcile at every stage', async () => {
    const rows = await hashtagRows(t, 'hashtag_data');
    expect(multiset(rows.map(comparable))).toEqual(multiset(expected));
    for (const row of rows) expect(row.hash_id).toBe(sha1Base64(row.record_id, row.tweet_id, row.hashtag));
    expect(summary.land.counts).toEqual({
      read: kept.length,
      loaded: kept.length,
      duplicates: 0,
      quarantined: 0,
    });
    expect(summary.staging.counts).toMatchObject({
      read: kept.length,
      loaded: kept.length,
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
  });

  it('quarantine/hashtags/produce holds one NDJSON entry per bad item with file, line and a reason naming the problem', async () => {
    const keys = await listKeys(t, 'quarantine', 'hashtags/produce/');
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) expect(key).toMatch(/^hashtags\/produce\/date=\d{4}-\d{2}-\d{2}\/[^/]+\.ndjson$/);
    expect([...keys].sort()).toEqual([...summary.produce.quarantine].sort());
    const entries = await readQuarantine(t, 'hashtags/produce/');
    expect(entries).toHaveLength(badItems.length);
    const sorted = [...entries].sort(
      (a, b) =>
        (a.line as number) - (b.line as number) || ((a.index as number) ?? 0) - ((b.index as number) ?? 0),
    );
    for (const [i, item] of badItems.entries()) {
      const entry = sorted[i]!;
      expect(entry).toMatchObject({ step: 'produce', run_id: summary.runId, source: file, line: item.line });
      expect(entry.reason).toMatch(item.reason);
      expect(typeof entry.raw).toBe('string');
    }
    // The two v2 errors of the page line are told apart by their index in `errors`.
    expect(sorted.slice(3).map((e) => e.index)).toEqual([0, 1]);
    // The status without a user names the retweet and its original.
    expect(sorted[1]!.reason).toContain(v1Kept[0]!.tweet_id);
  });
});

describe('a landing CSV dropped by hand with bad rows', () => {
  let t: TestHome;
  const key = 'hashtags/2026/01/02/dropped-by-hand.csv';
  const ts = '2026-01-02T03:04:05.678Z';
  const created = '2021-09-22T16:37:29.000Z';
  // 1: good; 2: 7 columns; 3: rt_count "lots"; 4: good, text with a quoted comma and quote.
  const csv = [
    `900000000000000000001,${ts},${created},1440000000000000001,alice,150,Brexit Rosé,Hello world`,
    `900000000000000000002,${ts},${created},1440000000000000002,bob,150,Brexit`,
    `900000000000000000003,${ts},${created},1440000000000000003,carol,lots,Brexit,text`,
    `900000000000000000004,${ts},${created},1440000000000000004,dave,200,SECRET_NUMBER,"Say ""hi"", all"`,
    '',
  ].join('\n');

  beforeAll(async () => {
    t = await createTestHome();
    await t.backend.objectStore.put({ layer: 'landing', key }, csv);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('stages the good rows and quarantines the bad ones under quarantine/hashtags/staging with object URI and line', async () => {
    const runId = newRunId(new Date());
    await deleteStaging(t.ctx, runId);
    const staged = await processStaging(t.ctx, { runId, selection: { keys: [key] } });
    // 4 records read = 2 staged + 2 quarantined; rows: alice -> Brexit, Ros; dave -> SECRETNUMBER.
    expect(staged.counts).toMatchObject({ read: 4, loaded: 2, duplicates: 0, quarantined: 2 });
    expect(staged.rows).toBe(3);
    expect(staged.quarantine).toMatch(/^hashtags\/staging\/date=\d{4}-\d{2}-\d{2}\/.+\.ndjson$/);

    const entries = await readQuarantine(t, 'hashtags/staging/');
    const uri = t.backend.objectStore.uri({ layer: 'landing', key });
    expect(entries.map((e) => [e.source, e.line])).toEqual([
      [uri, 2],
      [uri, 3],
    ]);
    expect(entries[0]!.reason).toMatch(/expected 8 columns.*found 7/);
    expect(entries[1]!.reason).toMatch(/rt_count "lots"/);
    expect(entries.every((e) => e.step === 'staging' && e.run_id === runId)).toBe(true);

    const rows = await hashtagRows(t, 'staging');
    expect(
      rows
        .map((r) => [r.record_id, r.user_name, Number(r.rt_count), r.hashtag])
        .sort((a, b) => String(a).localeCompare(String(b))),
    ).toEqual([
      ['900000000000000000001', 'alice', 150, 'Brexit'],
      ['900000000000000000001', 'alice', 150, 'Ros'],
      ['900000000000000000004', 'dave', 200, 'SECRETNUMBER'],
    ]);
    const dave = rows.find((r) => r.user_name === 'dave')!;
    expect(dave.text_clean).toBe('Say hi all');
    expect(new Date(dave.time_stamp as string).toISOString()).toBe('2026-01-02T03:04:05.000Z');
    expect([dave.year, dave.month, dave.day]).toEqual([2026, 1, 2]);
  });
});
