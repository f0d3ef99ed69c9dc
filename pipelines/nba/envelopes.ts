import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import type { PlayerRecord } from './reference.ts';

/** A Twitter API v2 tweet as the bundled sample holds it (only the members sluice reads are typed). */
export interface Tweet {
  readonly id: string;
  readonly created_at: string;
  readonly author_id?: string;
  readonly text?: string;
  /** A list, or `{}` where R's write_json wrote an empty list as an object (the sample's quirk). */
  readonly context_annotations?: readonly ContextAnnotation[] | Record<string, never>;
  readonly [member: string]: unknown;
}

/** One context annotation; domain `60` is Athlete. */
export interface ContextAnnotation {
  readonly domain: { readonly id: string; readonly name?: string };
  readonly entity: { readonly id?: string; readonly name: string };
}

/**
 * The original collector's stream message (REFERENCE.md section 5): one tweet in `data`, its author
 * in `includes.users[0].username`, and the event time in epoch milliseconds.
 */
export interface Envelope {
  readonly event_time: number;
  readonly data: readonly Tweet[];
  readonly includes: { readonly users: readonly { readonly username: string }[] };
}

/**
 * The handle an author is given: `players[i].account` for `i = uint64(first 8 bytes of
 * SHA-256("nba-author:" + author_id)) mod players.length`, over the players sorted by account
 * (UTF-16 code-unit order, so the input list's order does not matter). The same author always gets
 * the same handle, for the same players list; different authors spread evenly over all players (and
 * so over their teams). The bundled tweets have no `includes.users` (academictwitteR stored users
 * separately and they were not committed), so this stands in for the real author handles.
 */
export function handleForAuthor(authorId: string, sortedAccounts: readonly string[]): string {
  if (sortedAccounts.length === 0) throw new Error('no players to map authors to');
  const digest = createHash('sha256').update(`nba-author:${authorId}`).digest();
  const index = Number(digest.readBigUInt64BE(0) % BigInt(sortedAccounts.length));
  return sortedAccounts[index] as string;
}

/** Accounts of the players, distinct and sorted (the domain of {@link handleForAuthor}). */
export function sortedAccounts(players: readonly PlayerRecord[]): string[] {
  return [...new Set(players.map((p) => p.account))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** A line that could not become an envelope, with its 1-based line number and the reason. */
export interface RejectedLine {
  readonly line: number;
  readonly reason: string;
  readonly raw: string;
}

/**
 * Wraps real v2 tweets (one JSON object per line) into the original's envelope:
 * `{event_time: Date.parse(created_at), data: [tweet], includes: {users: [{username}]}}`, the
 * username from {@link handleForAuthor} over `players` (a tweet without `author_id` is mapped as
 * author `""`). The tweet object is kept unchanged. Lines that are blank are skipped; lines that are
 * not a JSON object, or have no string `id` / no parseable `created_at`, are returned as rejected.
 * Output order = input order (the sample is in file order, not event-time order).
 */
export function envelopesFromTweets(
  lines: Iterable<string>,
  players: readonly PlayerRecord[],
): { envelopes: Envelope[]; rejected: RejectedLine[] } {
  const accounts = sortedAccounts(players);
  const envelopes: Envelope[] = [];
  const rejected: RejectedLine[] = [];
  let n = 0;
  for (const raw of lines) {
    n++;
    if (raw.trim() === '') continue;
    const tweet = parseTweet(raw);
    if (typeof tweet === 'string') {
      rejected.push({ line: n, reason: tweet, raw });
      continue;
    }
    const username = handleForAuthor(typeof tweet.author_id === 'string' ? tweet.author_id : '', accounts);
    envelopes.push({
      event_time: Date.parse(tweet.created_at),
      data: [tweet],
      includes: { users: [{ username }] },
    });
  }
  return { envelopes, rejected };
}

/** Lines of a file, gunzipped when it starts with the gzip magic bytes (`.gz` or not). */
export async function* readLines(file: string): AsyncGenerator<string> {
  const head = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = createReadStream(file, { start: 0, end: 1 });
    s.on('data', (c) => chunks.push(c as Buffer));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
  const gzip = head.length === 2 && head[0] === 0x1f && head[1] === 0x8b;
  const input = gzip ? createReadStream(file).pipe(createGunzip()) : createReadStream(file);
  const rl = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of rl) yield line;
}

/** {@link envelopesFromTweets} over a tweets file (NDJSON, gzip or plain): the bundled sample by default. */
export async function envelopesFromTweetsFile(
  file: string,
  players: readonly PlayerRecord[],
): Promise<{ envelopes: Envelope[]; rejected: RejectedLine[] }> {
  const lines: string[] = [];
  for await (const line of readLines(file)) lines.push(line);
  return envelopesFromTweets(lines, players);
}

/**
 * Reads an NDJSON envelopes file (gzip or plain), validating each non-blank line with
 * {@link validateEnvelope}; invalid lines come back in `rejected` with their line number and reason,
 * for the caller to quarantine. Envelopes keep file order.
 */
export async function readEnvelopes(
  file: string,
): Promise<{ envelopes: Envelope[]; rejected: RejectedLine[] }> {
  const envelopes: Envelope[] = [];
  const rejected: RejectedLine[] = [];
  let n = 0;
  for await (const raw of readLines(file)) {
    n++;
    if (raw.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (error) {
      rejected.push({ line: n, reason: `not JSON: ${(error as Error).message}`, raw });
      continue;
    }
    const checked = validateEnvelope(value);
    if (typeof checked === 'string') rejected.push({ line: n, reason: checked, raw });
    else envelopes.push(checked);
  }
  return { envelopes, rejected };
}

/**
 * The envelope, or why it is not one: an object with a finite integer `event_time`, `data` a
 * non-empty array whose first element is a tweet (string `id`, `created_at` an ISO-8601 instant),
 * and `includes.users` a non-empty array whose first element has a string `username`.
 */
export function validateEnvelope(value: unknown): Envelope | string {
  if (!isObject(value)) return 'not a JSON object';
  if (typeof value.event_time !== 'number' || !Number.isSafeInteger(value.event_time)) {
    return 'event_time is not an integer (epoch milliseconds)';
  }
  if (!Array.isArray(value.data) || value.data.length === 0) return 'data is not a non-empty array';
  const tweet = checkTweet(value.data[0]);
  if (typeof tweet === 'string') return `data[0]: ${tweet}`;
  const includes = value.includes;
  if (!isObject(includes) || !Array.isArray(includes.users) || includes.users.length === 0) {
    return 'includes.users is not a non-empty array';
  }
  const user = includes.users[0];
  if (!isObject(user) || typeof user.username !== 'string' || user.username === '') {
    return 'includes.users[0].username is not a non-empty string';
  }
  return value as unknown as Envelope;
}

function parseTweet(raw: string): Tweet | string {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (error) {
    return `not JSON: ${(error as Error).message}`;
  }
  return checkTweet(value);
}

function checkTweet(value: unknown): Tweet | string {
  if (!isObject(value)) return 'not a JSON object';
  if (typeof value.id !== 'string' || !/^[0-9]+$/.test(value.id)) return 'id is not a string of digits';
  if (typeof value.created_at !== 'string' || Number.isNaN(Date.parse(value.created_at))) {
    return 'created_at is not an ISO-8601 timestamp';
  }
  return value as Tweet;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The athlete annotations of a tweet (domain id `"60"`), treating the `{}` quirk as an empty list. */
export function athleteAnnotations(tweet: Pick<Tweet, 'context_annotations'>): ContextAnnotation[] {
  const list = tweet.context_annotations;
  if (!Array.isArray(list)) return [];
  return (list as ContextAnnotation[]).filter(
    (a) => a?.domain?.id === '60' && typeof a.entity?.name === 'string',
  );
}
