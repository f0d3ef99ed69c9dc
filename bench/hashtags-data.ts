/**
 * Input of `npm run bench -- hashtags`: a capture of `statuses` statuses built by replicating the
 * real samples in examples/data/hashtags, so the producer filter sees their real mix:
 * - a v1.1 streaming NDJSON file cycling through the 72 statuses of `v1_stream_sample_72.ndjson`
 *   then the 63 of `v1_user_timeline_63.json` (one status per line);
 * - a v2 JSONL file of repeated copies of the 100-tweet page of `v2_search_brexit_100.jsonl` (the
 *   last page cut short so the total is exact).
 * The statuses are split in the samples' own proportions (135 v1.1 : 100 v2).
 *
 * Every copy gets distinct tweet ids: the status itself and the original it retweets (v1.1
 * `retweeted_status`; v2 every id of `data`, `includes.tweets` and `referenced_tweets`, mapped
 * consistently so each retweet still finds its original in the page's `includes`). This changes
 * no count: the pipeline dedupes staging on `record_id` (the stream sequence number) and
 * `hash_id = sha1(record_id + tweet_id + hashtag)`, so every copy is a distinct row even with the
 * original ids kept. Distinct originals make `tweet_id` as varied as in a real capture (Parquet
 * dictionaries, per-tweet queries) instead of 24 ids repeated. Texts and everything else are kept.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { explodeRecord } from '../pipelines/hashtags/enrich.ts';
import { filterTweet } from '../src/sources/twitter/filter.ts';
import type { TweetInput, V1Status, V2Includes, V2Tweet } from '../src/sources/twitter/types.ts';

/** What was generated, and what the pipeline must produce from it. */
export interface HashtagsBenchInput {
  readonly files: { readonly v1: string; readonly v2: string };
  readonly statuses: number;
  readonly v1Statuses: number;
  readonly v2Statuses: number;
  readonly v2Pages: number;
  readonly bytes: number;
  /** Statuses the producer filter keeps (records put on the stream). */
  readonly kept: number;
  readonly keptV1: number;
  readonly keptV2: number;
  /** Kept records with at least one hashtag left after cleaning (staging `loaded`). */
  readonly stagedRecords: number;
  /** Staging rows (one per kept record and distinct cleaned hashtag). */
  readonly hashtagRows: number;
  /** Per cycle of the real samples: statuses read -> kept, by sample. */
  readonly samples: readonly { readonly name: string; readonly statuses: number; readonly kept: number }[];
}

const STATUS_BASE = 1_500_000_000_000_000_000n;
const ORIGINAL_BASE = 1_400_000_000_000_000_000n;
const V2_BASE = 1_600_000_000_000_000_000n;
/** Ids per copy of a sample: more than any sample holds, so copies never collide. */
const STRIDE = 1000n;

interface Expected {
  kept: boolean;
  rows: number;
}

/** What the pipeline makes of one status: kept by the filter, and its staging rows. */
function expected(input: TweetInput): Expected {
  const outcome = filterTweet(input);
  if (outcome.kind !== 'keep') return { kept: false, rows: 0 };
  const rows = explodeRecord({
    ...outcome.record,
    record_id: '100000000000000000001',
    timestamp: new Date(),
  }).length;
  return { kept: true, rows };
}

/** A buffered line writer honouring back-pressure. */
function lineWriter(file: string) {
  const out = createWriteStream(file);
  let buffer: string[] = [];
  let size = 0;
  let bytes = 0;
  return {
    async write(line: string): Promise<void> {
      buffer.push(line);
      size += line.length;
      if (size >= 1 << 20) await this.flush();
    },
    async flush(): Promise<void> {
      if (buffer.length === 0) return;
      const chunk = `${buffer.join('\n')}\n`;
      bytes += Buffer.byteLength(chunk);
      buffer = [];
      size = 0;
      if (!out.write(chunk)) await once(out, 'drain');
    },
    async close(): Promise<number> {
      await this.flush();
      out.end();
      await once(out, 'finish');
      return bytes;
    },
  };
}

/**
 * Writes `<dir>/hashtags-<statuses>-v1.ndjson` and `-v2.jsonl` from the samples in `samplesDir`.
 * Memory stays small (one page or status at a time).
 */
export async function writeHashtagsInput(
  samplesDir: string,
  dir: string,
  statuses: number,
): Promise<HashtagsBenchInput> {
  const stream = (await readFile(path.join(samplesDir, 'v1_stream_sample_72.ndjson'), 'utf8'))
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .map((l) => JSON.parse(l) as V1Status);
  const timeline = JSON.parse(
    await readFile(path.join(samplesDir, 'v1_user_timeline_63.json'), 'utf8'),
  ) as V1Status[];
  const page = JSON.parse(
    (await readFile(path.join(samplesDir, 'v2_search_brexit_100.jsonl'), 'utf8')).split('\n')[0] ?? '{}',
  ) as { data: V2Tweet[]; includes: V2Includes; [key: string]: unknown };

  const v1Sample = [...stream, ...timeline];
  const v1Sizes = v1Sample.length;
  const pageSize = page.data.length;
  const v1Statuses = Math.round((statuses * v1Sizes) / (v1Sizes + pageSize));
  const v2Statuses = statuses - v1Statuses;
  const location = { source: 'sample', line: 1 };
  const v1Expected = v1Sample.map((status) => expected({ kind: 'v1', status, location }));
  const v2Expected = page.data.map((tweet) =>
    expected({ kind: 'v2', tweet, includes: page.includes, location }),
  );
  const count = (list: Expected[], from = 0, to = list.length) =>
    list.slice(from, to).filter((e) => e.kept).length;

  // The originals each v1.1 copy retweets: one new id per distinct original of the sample.
  const originals = new Map<string, bigint>();
  for (const status of v1Sample) {
    const id = status.retweeted_status?.id_str;
    if (id !== undefined && !originals.has(id)) originals.set(id, BigInt(originals.size));
  }
  // Every tweet id of the v2 page (data, includes.tweets, references), mapped consistently.
  const v2Ids = new Map<string, bigint>();
  const v2Id = (id: string) => {
    if (!v2Ids.has(id)) v2Ids.set(id, BigInt(v2Ids.size));
  };
  for (const tweet of page.data) {
    if (tweet.id) v2Id(tweet.id);
    for (const ref of tweet.referenced_tweets ?? []) if (ref.id) v2Id(ref.id);
  }
  for (const tweet of page.includes.tweets ?? []) if (tweet.id) v2Id(tweet.id);
  if (BigInt(originals.size) >= STRIDE || BigInt(v2Ids.size) >= STRIDE || BigInt(v1Sizes) >= STRIDE) {
    throw new Error('a sample has more ids than a copy has room for');
  }

  const files = {
    v1: path.join(dir, `hashtags-${statuses}-v1.ndjson`),
    v2: path.join(dir, `hashtags-${statuses}-v2.jsonl`),
  };
  let kept = 0;
  let keptV1 = 0;
  let keptV2 = 0;
  let stagedRecords = 0;
  let hashtagRows = 0;
  const tally = (e: Expected) => {
    if (!e.kept) return;
    kept++;
    hashtagRows += e.rows;
    if (e.rows > 0) stagedRecords++;
  };

  const v1 = lineWriter(files.v1);
  for (let i = 0; i < v1Statuses; i++) {
    const copy = BigInt(Math.floor(i / v1Sizes));
    const j = i % v1Sizes;
    const status = v1Sample[j]!;
    const id = (STATUS_BASE + copy * STRIDE + BigInt(j)).toString();
    const original = status.retweeted_status;
    const originalId =
      original?.id_str !== undefined
        ? (ORIGINAL_BASE + copy * STRIDE + originals.get(original.id_str)!).toString()
        : undefined;
    const line = JSON.stringify({
      ...status,
      id: Number(id),
      id_str: id,
      ...(original && originalId
        ? { retweeted_status: { ...original, id: Number(originalId), id_str: originalId } }
        : {}),
    });
    await v1.write(line);
    const e = v1Expected[j]!;
    tally(e);
    if (e.kept) keptV1++;
  }
  const v1Bytes = await v1.close();

  const v2 = lineWriter(files.v2);
  let v2Pages = 0;
  for (let written = 0; written < v2Statuses; written += pageSize) {
    const copy = BigInt(v2Pages);
    const map = (id: string | undefined) =>
      id === undefined ? id : (V2_BASE + copy * STRIDE + v2Ids.get(id)!).toString();
    const take = Math.min(pageSize, v2Statuses - written);
    const data = page.data.slice(0, take).map((tweet) => ({
      ...tweet,
      id: map(tweet.id),
      ...(tweet.referenced_tweets
        ? { referenced_tweets: tweet.referenced_tweets.map((r) => ({ ...r, id: map(r.id) })) }
        : {}),
    }));
    const includes = {
      ...page.includes,
      tweets: (page.includes.tweets ?? []).map((tweet) => ({ ...tweet, id: map(tweet.id) })),
    };
    await v2.write(JSON.stringify({ ...page, data, includes }));
    for (const e of v2Expected.slice(0, take)) {
      tally(e);
      if (e.kept) keptV2++;
    }
    v2Pages++;
  }
  const v2Bytes = await v2.close();

  return {
    files,
    statuses,
    v1Statuses,
    v2Statuses,
    v2Pages,
    bytes: v1Bytes + v2Bytes,
    kept,
    keptV1,
    keptV2,
    stagedRecords,
    hashtagRows,
    samples: [
      {
        name: 'v1_stream_sample_72.ndjson',
        statuses: stream.length,
        kept: count(v1Expected, 0, stream.length),
      },
      { name: 'v1_user_timeline_63.json', statuses: timeline.length, kept: count(v1Expected, stream.length) },
      { name: 'v2_search_brexit_100.jsonl', statuses: pageSize, kept: count(v2Expected) },
    ],
  };
}
