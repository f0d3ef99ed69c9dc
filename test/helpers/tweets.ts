/**
 * Expected hashtags-pipeline output derived straight from the raw Twitter captures, independently
 * of sluice's readers, filter and enrichment (REFERENCE.md section 1), plus small readers of the
 * lake for the hashtags tests.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import type { Layer } from '../../src/core/layer.ts';
import type { TestHome } from './context.ts';

/** One record the producer should send: every field from the ORIGINAL (retweeted) tweet. */
export interface ExpectedRecord {
  readonly created: string;
  readonly tweet_id: string;
  readonly user_name: string;
  readonly rt_count: number;
  /** Hashtags as written in the capture (no `#`), in order. */
  readonly hashtags: readonly string[];
  readonly text: string;
}

/** One expected `hashtag_data` row, without the columns the run assigns (record_id, time_stamp). */
export interface ExpectedRow {
  readonly tweet_id: string;
  readonly user_name: string;
  readonly rt_count: number;
  readonly hashtag: string;
  readonly created: string;
}

type Json = Record<string, unknown>;

const MONTHS = 'Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec'.split(' ');

/** Twitter's v1.1 `created_at` ("Sat Jul 30 03:20:23 +0000 2016") as ISO-8601 UTC with ms. */
export function twitterCreatedAtToIso(value: string): string {
  const [, mon, day, time, offset, year] = value.split(' ') as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const [hh, mm, ss] = time.split(':').map(Number) as [number, number, number];
  const sign = offset.startsWith('-') ? -1 : 1;
  const offsetMinutes = sign * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(3, 5)));
  const utc = Date.UTC(Number(year), MONTHS.indexOf(mon), Number(day), hh, mm, ss) - offsetMinutes * 60_000;
  return new Date(utc).toISOString();
}

/**
 * The original's producer rule on v1.1 statuses: a retweet (`retweeted_status`) of an English
 * tweet with `retweet_count > 99` and at least one hashtag (from `extended_tweet.entities`, else
 * `entities`); the record from the original (text = `extended_tweet.full_text` else `text`).
 * `tweet_id` is the original's `id_str` (a JSON string, so exact; the numeric `id` is not).
 */
export function expectedV1Records(statuses: readonly Json[]): ExpectedRecord[] {
  const kept: ExpectedRecord[] = [];
  for (const status of statuses) {
    if (!status.retweeted_status) continue;
    const original = status.retweeted_status as Json;
    if (original.lang !== 'en' || (original.retweet_count as number) <= 99) continue;
    const extended = original.extended_tweet as Json | undefined;
    const entities = (extended?.entities ?? original.entities) as { hashtags: { text: string }[] };
    if (entities.hashtags.length === 0) continue;
    kept.push({
      created: twitterCreatedAtToIso(original.created_at as string),
      tweet_id: original.id_str as string,
      user_name: (original.user as Json).screen_name as string,
      rt_count: original.retweet_count as number,
      hashtags: entities.hashtags.map((h) => h.text),
      text: (extended?.full_text as string | undefined) || (original.text as string),
    });
  }
  return kept;
}

/**
 * The same rule on one v2 page: a tweet with a `retweeted` reference whose original (in
 * `includes.tweets`) is English, has `public_metrics.retweet_count > 99` and at least one hashtag;
 * `user_name` is the original author's `username` from `includes.users`.
 */
export function expectedV2Records(page: Json): ExpectedRecord[] {
  const includes = page.includes as { tweets: Json[]; users: Json[] };
  const kept: ExpectedRecord[] = [];
  for (const tweet of page.data as Json[]) {
    const refs = (tweet.referenced_tweets ?? []) as { type: string; id: string }[];
    const ref = refs.find((r) => r.type === 'retweeted');
    if (!ref) continue;
    const original = includes.tweets.find((t) => t.id === ref.id);
    if (!original) throw new Error(`sample changed: original ${ref.id} missing from includes`);
    const count = (original.public_metrics as { retweet_count: number }).retweet_count;
    if (original.lang !== 'en' || count <= 99) continue;
    const note = original.note_tweet as Json | undefined;
    const entities = (note?.entities ?? original.entities ?? {}) as { hashtags?: { tag: string }[] };
    const hashtags = (entities.hashtags ?? []).map((h) => h.tag);
    if (hashtags.length === 0) continue;
    const author = includes.users.find((u) => u.id === original.author_id) as Json;
    kept.push({
      created: new Date(original.created_at as string).toISOString(),
      tweet_id: ref.id,
      user_name: author.username as string,
      rt_count: count,
      hashtags,
      text: (note?.text as string | undefined) || (original.text as string),
    });
  }
  return kept;
}

/** The statuses of the bundled v1.1 REST array capture, parsed with `JSON.parse`. */
export function readJsonArray(file: string): Json[] {
  return JSON.parse(readFileSync(file, 'utf8')) as Json[];
}

/** The non-blank lines of an NDJSON/JSONL capture, parsed with `JSON.parse`. */
export function readJsonLines(file: string): Json[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Json);
}

/** Cleans one hashtag to `[A-Za-z0-9]` (REFERENCE.md section 1). */
export const cleanTag = (tag: string): string => tag.replace(/[^A-Za-z0-9]/g, '');

/** One expected row per distinct non-empty cleaned hashtag of each record. */
export function expectedRows(records: readonly ExpectedRecord[]): ExpectedRow[] {
  return records.flatMap((r) =>
    [...new Set(r.hashtags.map(cleanTag).filter((tag) => tag !== ''))].map((hashtag) => ({
      tweet_id: r.tweet_id,
      user_name: r.user_name,
      rt_count: r.rt_count,
      hashtag,
      created: r.created,
    })),
  );
}

/** Rows as sorted strings, for comparing multisets. */
export function multiset(rows: readonly object[]): string[] {
  return rows.map((row) => JSON.stringify(row)).sort();
}

/** `base64(sha1(record_id + tweet_id + hashtag))`. */
export function sha1Base64(recordId: string, tweetId: string, hashtag: string): string {
  return createHash('sha1')
    .update(recordId + tweetId + hashtag, 'utf8')
    .digest('base64');
}

/** A timestamp value from the query engine (string or Date) as ISO-8601 UTC. */
export function iso(value: unknown): string {
  return new Date(value as string | Date).toISOString();
}

/** A `hashtag_data` / `staging` row as the query engine returns it. */
export interface HashtagRow {
  readonly hash_id: string;
  readonly record_id: string;
  readonly time_stamp: unknown;
  readonly created: unknown;
  readonly tweet_id: string;
  readonly user_name: string;
  readonly rt_count: number | bigint;
  readonly hashtag: string;
  readonly polarity: number;
  readonly subjectivity: number;
  readonly text_clean: string;
  readonly year: number;
  readonly month: number;
  readonly day: number;
}

/** The rows of a hashtags table (`hashtag_data` or `staging`), optionally filtered. */
export function hashtagRows(t: TestHome, table: string, where = 'TRUE'): Promise<HashtagRow[]> {
  return t.query<HashtagRow>(`SELECT * FROM hashtags.${table} WHERE ${where} ORDER BY hash_id`);
}

/** The comparable part of a table row. */
export function comparable(row: HashtagRow): ExpectedRow {
  return {
    tweet_id: row.tweet_id,
    user_name: row.user_name,
    rt_count: Number(row.rt_count),
    hashtag: row.hashtag,
    created: iso(row.created),
  };
}

/** Keys of the objects under `prefix` in `layer`. */
export async function listKeys(
  t: TestHome,
  layer: Layer,
  prefix: string,
  includeHidden = false,
): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of t.backend.objectStore.list(layer, prefix, { includeHidden })) keys.push(info.key);
  return keys;
}

/** A landing CSV object parsed with csv-parse (no header: every line is a record). */
export async function readLandingCsv(t: TestHome, key: string): Promise<string[][]> {
  const bytes = await t.backend.objectStore.getBytes({ layer: 'landing', key });
  return parse(Buffer.from(bytes), { relax_column_count: true }) as string[][];
}

/** The NDJSON entries of the quarantine objects under `prefix`. */
export async function readQuarantine(t: TestHome, prefix: string): Promise<Json[]> {
  const entries: Json[] = [];
  for (const key of await listKeys(t, 'quarantine', prefix)) {
    const text = Buffer.from(await t.backend.objectStore.getBytes({ layer: 'quarantine', key })).toString(
      'utf8',
    );
    for (const line of text.split('\n')) if (line !== '') entries.push(JSON.parse(line) as Json);
  }
  return entries;
}
