/**
 * The hashtags producer filter (REFERENCE.md section 1), pure: which statuses the producer sends to the
 * stream, and the record it sends, all taken from the ORIGINAL (retweeted) tweet.
 */
import type {
  FilterOutcome,
  FilterRejection,
  TweetInput,
  TweetRecord,
  V2Includes,
  V2Tweet,
} from './types.ts';

/** Retweet counts above this are popular enough (`retweet_count > 99`, REFERENCE.md section 1). */
export const MIN_RETWEET_COUNT_EXCLUSIVE = 99;

/**
 * Applies the producer filter to one input (REFERENCE.md section 1):
 * keep a status only if it is a retweet of an English tweet with `retweet_count > 99` and at least one
 * hashtag, all judged on the ORIGINAL (retweeted) tweet, and build the {@link TweetRecord} from it.
 *
 * v1.1 (Twitter API docs, "Tweet object"): the original is `retweeted_status`; the rule reads its `lang`
 * (`"en"`; `null` = not English), its `retweet_count` (for a retweet the outer count equals it), and its
 * hashtags from `extended_tweet.entities` when present, else `entities` (`hashtags[].text`). The record:
 * `text` = `extended_tweet.full_text` when present and non-empty, else `full_text` (REST with
 * `tweet_mode=extended`), else `text`; `user_name` = `user.screen_name`; `tweet_id` = `id_str` (never the
 * number `id`, which loses precision above 2^53); `created` = `created_at` ("Sat Mar 10 14:03:15 +0000
 * 2018") as ISO-8601 UTC with ms.
 *
 * v2 (Twitter API docs, "Data dictionary"): a retweet has `referenced_tweets` `{type: 'retweeted', id}`
 * and the original is the page's `includes.tweets` entry with that id; the rule reads its `lang`,
 * `public_metrics.retweet_count` and hashtags (`note_tweet.entities` when present, else `entities`;
 * `hashtags[].tag`; v2 omits `entities` when there are none). The record: `text` = `note_tweet.text` when
 * non-empty, else `text`; `user_name` = the `includes.users` entry whose id is the original's `author_id`
 * -> `username`; `tweet_id` = `id`; `created` = `created_at`.
 *
 * Outcomes: `keep` with the record; `filtered` with the first rule the status fails, in the reference's
 * order (not a retweet, not English, count too low, no hashtags), or `control_message` for a stream
 * control message; `quarantine` with a reason naming the tweet when the input is `bad` or lacks what the
 * rule or the record needs (a field missing or of the wrong type, an original or its author missing
 * from a v2 page's `includes`). Fields only the record needs are checked for statuses the rule keeps.
 * Never throws; no I/O.
 */
export function filterTweet(input: TweetInput): FilterOutcome {
  switch (input.kind) {
    case 'v1':
      return filterV1(input.status as Record<string, unknown>);
    case 'v2':
      return filterV2(input.tweet as Record<string, unknown>, input.includes);
    case 'control':
      return filtered('control_message');
    case 'bad':
      return { kind: 'quarantine', reason: input.reason };
    default:
      return unreachable(input);
  }
}

function unreachable(input: never): FilterOutcome {
  return {
    kind: 'quarantine',
    reason: `unknown input kind ${JSON.stringify((input as { kind?: unknown }).kind)}`,
  };
}

function filtered(rejection: FilterRejection): FilterOutcome {
  return { kind: 'filtered', rejection };
}

function quarantine(reason: string): FilterOutcome {
  return { kind: 'quarantine', reason };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value !== '';
}

/** A field value for a reason: `missing`, or its JSON (cut). */
function shown(value: unknown): string {
  if (value === undefined) return 'missing';
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 60 ? `${json.slice(0, 57)}...` : json;
}

/**
 * Hashtag texts of an entities object (`field` is `text` in v1.1, `tag` in v2), or why they cannot be
 * read. A missing `hashtags` list means none (v2 omits empty lists).
 */
function hashtagsOf(entities: Record<string, unknown>, field: 'text' | 'tag'): string[] | { error: string } {
  const list = entities.hashtags;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) return { error: `entities.hashtags is ${shown(list)}, not a list` };
  const tags: string[] = [];
  for (const [i, entry] of list.entries()) {
    const value = isObject(entry) ? entry[field] : undefined;
    if (!nonEmptyString(value)) return { error: `hashtag ${i} has no ${field}` };
    tags.push(value);
  }
  return tags;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const TWITTER_DATE =
  /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{2}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2}) (\d{4})$/;

/**
 * A v1.1 `created_at` ("Sat Mar 10 14:03:15 +0000 2018": weekday, month, day, time, UTC offset, year)
 * as ISO-8601 UTC with ms ("2018-03-10T14:03:15.000Z"), or undefined when it is not in that format or
 * not a real date. The weekday is not checked against the date.
 */
export function twitterDateToIso(value: string): string | undefined {
  const m = TWITTER_DATE.exec(value);
  if (!m) return undefined;
  const [, mon, dd, hh, mi, ss, sign, oh, om, yyyy] = m;
  const year = Number(yyyy);
  const month = MONTHS.indexOf(mon ?? '');
  const day = Number(dd);
  const hour = Number(hh);
  const minute = Number(mi);
  const second = Number(ss);
  if (hour > 23 || minute > 59 || second > 59 || Number(om) > 59) return undefined;
  const local = new Date(Date.UTC(year, month, day, hour, minute, second));
  if (local.getUTCFullYear() !== year || local.getUTCMonth() !== month || local.getUTCDate() !== day) {
    return undefined;
  }
  const offsetMinutes = (sign === '-' ? -1 : 1) * (Number(oh) * 60 + Number(om));
  return new Date(local.getTime() - offsetMinutes * 60_000).toISOString();
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?Z$/;

/** A v2 `created_at` ("2021-09-22T16:37:29.000Z") normalized to ms precision, or undefined when invalid. */
function isoDate(value: string): string | undefined {
  const m = ISO_DATE.exec(value);
  if (!m) return undefined;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return undefined;
  if (date.getUTCFullYear() !== Number(m[1]) || date.getUTCMonth() + 1 !== Number(m[2])) return undefined;
  if (date.getUTCDate() !== Number(m[3])) return undefined;
  return date.toISOString();
}

/** v1.1: the rule on `retweeted_status`, the record from it. */
function filterV1(status: Record<string, unknown>): FilterOutcome {
  const original = status.retweeted_status;
  if (original === undefined || original === null) return filtered('not_a_retweet');
  const outerId = typeof status.id_str === 'string' ? status.id_str : '?';
  const about = `v1.1 retweet ${outerId}`;
  if (!isObject(original))
    return quarantine(`${about}: retweeted_status is ${shown(original)}, not an object`);
  const id = original.id_str;
  const of = `${about} of ${typeof id === 'string' ? id : '?'}`;

  const lang = original.lang;
  if (lang === undefined) return quarantine(`${of}: the original has no lang`);
  if (lang !== null && typeof lang !== 'string')
    return quarantine(`${of}: the original's lang is ${shown(lang)}`);
  if (lang !== 'en') return filtered('original_not_english');

  const count = original.retweet_count;
  if (!isCount(count))
    return quarantine(`${of}: the original's retweet_count is ${shown(count)}, not a count`);
  if (count <= MIN_RETWEET_COUNT_EXCLUSIVE) return filtered('retweet_count_too_low');

  const extended = isObject(original.extended_tweet) ? original.extended_tweet : undefined;
  const entities = isObject(extended?.entities) ? extended.entities : original.entities;
  if (!isObject(entities)) return quarantine(`${of}: the original has no entities`);
  const hashtags = hashtagsOf(entities, 'text');
  if ('error' in hashtags) return quarantine(`${of}: the original's ${hashtags.error}`);
  if (hashtags.length === 0) return filtered('no_hashtags');

  if (typeof id !== 'string' || !/^\d+$/.test(id)) {
    return quarantine(`${about}: the original's id_str is ${shown(id)}, not a decimal string`);
  }
  const user = original.user;
  const screenName = isObject(user) ? user.screen_name : undefined;
  if (!nonEmptyString(screenName)) {
    return quarantine(`${of}: the original has ${isObject(user) ? 'a user without screen_name' : 'no user'}`);
  }
  const createdAt = original.created_at;
  const created = typeof createdAt === 'string' ? twitterDateToIso(createdAt) : undefined;
  if (created === undefined) {
    return quarantine(
      `${of}: the original's created_at is ${shown(createdAt)}, not in Twitter's "Sat Mar 10 14:03:15 +0000 2018" format`,
    );
  }
  const text = nonEmptyString(extended?.full_text)
    ? extended.full_text
    : nonEmptyString(original.full_text)
      ? original.full_text
      : original.text;
  if (typeof text !== 'string') return quarantine(`${of}: the original has no text`);

  return keep({
    created,
    tweet_id: id,
    user_name: screenName,
    rt_count: count,
    hashtags: hashtags.join(' '),
    text,
  });
}

/** v2: the rule on the `includes.tweets` original of a `retweeted` reference, the record from it. */
function filterV2(tweet: Record<string, unknown>, includes: V2Includes): FilterOutcome {
  const refs = tweet.referenced_tweets;
  if (refs === undefined || refs === null) return filtered('not_a_retweet');
  const about = `v2 retweet ${typeof tweet.id === 'string' ? tweet.id : '?'}`;
  if (!Array.isArray(refs)) return quarantine(`${about}: referenced_tweets is ${shown(refs)}, not a list`);
  const ref = refs.find((r) => isObject(r) && r.type === 'retweeted') as Record<string, unknown> | undefined;
  if (ref === undefined) return filtered('not_a_retweet');
  const id = ref.id;
  if (typeof id !== 'string' || !/^\d+$/.test(id)) {
    return quarantine(`${about}: the retweeted reference's id is ${shown(id)}, not a decimal string`);
  }
  const of = `${about} of ${id}`;
  const tweets = Array.isArray(includes.tweets) ? includes.tweets : [];
  const original = tweets.find((t: V2Tweet) => isObject(t) && t.id === id) as
    | Record<string, unknown>
    | undefined;
  if (original === undefined) {
    return quarantine(
      `${of}: the original tweet is not in the page's includes.tweets ` +
        '(the capture needs expansions=referenced_tweets.id)',
    );
  }

  const lang = original.lang;
  if (lang === undefined)
    return quarantine(`${of}: the original has no lang (the capture needs tweet.fields=lang)`);
  if (typeof lang !== 'string') return quarantine(`${of}: the original's lang is ${shown(lang)}`);
  if (lang !== 'en') return filtered('original_not_english');

  const metrics = original.public_metrics;
  const count = isObject(metrics) ? metrics.retweet_count : undefined;
  if (!isCount(count)) {
    return quarantine(
      `${of}: the original's public_metrics.retweet_count is ${shown(count)}, not a count ` +
        '(the capture needs tweet.fields=public_metrics)',
    );
  }
  if (count <= MIN_RETWEET_COUNT_EXCLUSIVE) return filtered('retweet_count_too_low');

  const note = isObject(original.note_tweet) ? original.note_tweet : undefined;
  const entities = isObject(note?.entities) ? note.entities : original.entities;
  let hashtags: string[] | { error: string } = [];
  if (isObject(entities)) hashtags = hashtagsOf(entities, 'tag');
  else if (entities !== undefined && entities !== null)
    hashtags = { error: `entities is ${shown(entities)}` };
  if ('error' in hashtags) return quarantine(`${of}: the original's ${hashtags.error}`);
  if (hashtags.length === 0) return filtered('no_hashtags');

  const authorId = original.author_id;
  if (!nonEmptyString(authorId)) return quarantine(`${of}: the original has no author_id`);
  const users = Array.isArray(includes.users) ? includes.users : [];
  const author = users.find((u) => isObject(u) && u.id === authorId);
  if (author === undefined) {
    return quarantine(
      `${of}: its author ${authorId} is not in the page's includes.users ` +
        '(the capture needs expansions=referenced_tweets.id.author_id)',
    );
  }
  if (!nonEmptyString(author.username)) return quarantine(`${of}: its author ${authorId} has no username`);
  const createdAt = original.created_at;
  const created = typeof createdAt === 'string' ? isoDate(createdAt) : undefined;
  if (created === undefined) {
    return quarantine(`${of}: the original's created_at is ${shown(createdAt)}, not an ISO-8601 UTC time`);
  }
  const text = nonEmptyString(note?.text) ? note.text : original.text;
  if (typeof text !== 'string') return quarantine(`${of}: the original has no text`);

  return keep({
    created,
    tweet_id: id,
    user_name: author.username,
    rt_count: count,
    hashtags: hashtags.join(' '),
    text,
  });
}

function keep(record: TweetRecord): FilterOutcome {
  return { kind: 'keep', record };
}
