import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HASHTAGS_SAMPLES } from '../../../test/helpers/samples.ts';
import { readTweetFile } from './files.ts';
import { filterTweet, twitterDateToIso } from './filter.ts';
import type { FilterOutcome, SourceLocation, TweetInput, TweetRecord, V2Includes } from './types.ts';

/** Every input of a file with its outcome. */
async function outcomes(file: string): Promise<{ input: TweetInput; outcome: FilterOutcome }[]> {
  const out: { input: TweetInput; outcome: FilterOutcome }[] = [];
  for await (const input of readTweetFile(file)) out.push({ input, outcome: filterTweet(input) });
  return out;
}

function kept(results: { outcome: FilterOutcome }[]): TweetRecord[] {
  return results.flatMap(({ outcome }) => (outcome.kind === 'keep' ? [outcome.record] : []));
}

// biome-ignore lint/suspicious/noExplicitAny: raw JSON of the samples, read independently of the code's types
type Json = any;

describe('filterTweet on the bundled samples', () => {
  it('v1_user_timeline_63.json: exactly the 15 retweets of popular English tweets with hashtags', async () => {
    const text = readFileSync(HASHTAGS_SAMPLES.v1Timeline, 'utf8');
    const statuses = JSON.parse(text) as Json[];
    // The rule, read straight from REFERENCE.md section 1, on the plainly parsed file.
    const expected: TweetRecord[] = [];
    for (const s of statuses) {
      const o = s.retweeted_status;
      if (o?.lang !== 'en' || !(o.retweet_count > 99)) continue;
      const tags = (o.extended_tweet?.entities ?? o.entities).hashtags.map((h: Json) => h.text);
      if (tags.length === 0) continue;
      expected.push({
        created: new Date(o.created_at).toISOString(),
        tweet_id: o.id_str,
        user_name: o.user.screen_name,
        rt_count: o.retweet_count,
        hashtags: tags.join(' '),
        text: o.extended_tweet?.full_text || o.full_text || o.text,
      });
    }
    expect(expected).toHaveLength(15);
    const results = await outcomes(HASHTAGS_SAMPLES.v1Timeline);
    expect(results).toHaveLength(63);
    expect(kept(results)).toEqual(expected);

    // Tweet ids are the originals' id_str as written in the raw text (the number `id` loses precision).
    const rawIds = [
      ...text.matchAll(/"retweeted_status":\{"created_at":"[^"]*","id":(\d+),"id_str":"(\d+)"/g),
    ];
    expect(rawIds).toHaveLength(35); // the 35 retweets of PROVENANCE.md
    const idStrs = new Set(rawIds.map((m) => m[2]));
    for (const record of kept(results)) expect(idStrs.has(record.tweet_id)).toBe(true);
    expect(rawIds.some((m) => String(Number(m[1])) !== m[2])).toBe(true);

    // In v1.1 a retweet's own retweet_count is the original's: which one the rule reads makes no difference here.
    const retweets = statuses.filter((s) => s.retweeted_status);
    expect(retweets.every((s) => s.retweet_count === s.retweeted_status.retweet_count)).toBe(true);

    // The rejections, derived the same plain way.
    const rejections: Record<string, number> = {};
    for (const s of statuses) {
      const o = s.retweeted_status;
      const tags = o ? (o.extended_tweet?.entities ?? o.entities).hashtags : [];
      const why = !o
        ? 'not_a_retweet'
        : o.lang !== 'en'
          ? 'original_not_english'
          : o.retweet_count <= 99
            ? 'retweet_count_too_low'
            : tags.length === 0
              ? 'no_hashtags'
              : undefined;
      if (why) rejections[why] = (rejections[why] ?? 0) + 1;
    }
    const seen: Record<string, number> = {};
    for (const { outcome } of results) {
      if (outcome.kind === 'filtered') seen[outcome.rejection] = (seen[outcome.rejection] ?? 0) + 1;
    }
    expect(seen).toEqual(rejections);
    expect(results.some(({ outcome }) => outcome.kind === 'quarantine')).toBe(false);

    // One record checked by hand against the raw JSON (second status of the file, a retweet of @EricHolder).
    expect(kept(results)[0]).toEqual({
      created: '2016-07-29T17:01:06.000Z',
      tweet_id: '759071263004459008',
      user_name: 'EricHolder',
      rt_count: 2248,
      hashtags: 'VoterID',
      text: 'Another voter ID law struck down as discriminatory-NorthCarolina. Joins Wisconsin and Texas-in one week. Let people vote!  #VoterID',
    });
  });

  it('v1_stream_sample_72.ndjson: 72 statuses, none kept, because none is a retweet', async () => {
    const text = readFileSync(HASHTAGS_SAMPLES.v1Stream, 'utf8');
    const lines = text.split('\n').filter((l) => l.trim() !== '');
    // Derivation: the first condition of the rule is `retweeted_status` present, and no line has one.
    expect(lines).toHaveLength(72);
    expect(lines.filter((l) => JSON.parse(l).retweeted_status !== undefined)).toHaveLength(0);
    expect(text.includes('"retweeted_status"')).toBe(false);
    const results = await outcomes(HASHTAGS_SAMPLES.v1Stream);
    expect(results).toHaveLength(72);
    expect(results.map(({ outcome }) => outcome)).toEqual(
      lines.map(() => ({ kind: 'filtered', rejection: 'not_a_retweet' })),
    );
  });

  it('v2_search_brexit_100.jsonl: the retweets whose includes.tweets original passes the rule', async () => {
    const page = JSON.parse(readFileSync(HASHTAGS_SAMPLES.v2Search, 'utf8')) as Json;
    const expected: TweetRecord[] = [];
    for (const t of page.data) {
      const ref = (t.referenced_tweets ?? []).find((r: Json) => r.type === 'retweeted');
      if (!ref) continue;
      const o = page.includes.tweets.find((x: Json) => x.id === ref.id);
      const tags = (o.note_tweet?.entities ?? o.entities)?.hashtags?.map((h: Json) => h.tag) ?? [];
      if (o.lang !== 'en' || !(o.public_metrics.retweet_count > 99) || tags.length === 0) continue;
      expected.push({
        created: o.created_at,
        tweet_id: o.id,
        user_name: page.includes.users.find((u: Json) => u.id === o.author_id).username,
        rt_count: o.public_metrics.retweet_count,
        hashtags: tags.join(' '),
        text: o.note_tweet?.text || o.text,
      });
    }
    expect(expected).toHaveLength(9);
    const results = await outcomes(HASHTAGS_SAMPLES.v2Search);
    expect(results).toHaveLength(100);
    const records = kept(results);
    expect(records).toEqual(expected);

    // Two records checked by hand against the raw JSON.
    expect(records[0]).toEqual({
      created: '2021-09-22T06:08:27.000Z',
      tweet_id: '1440558593443467278',
      user_name: 'NearlyThere19',
      rt_count: 116,
      hashtags: 'Brexit',
      text: 'Austrian TV news currently reporting on gas shortages and resulting consequences in the UK, on top of food shortages in supermarkets, with clear up front messaging they are due to #Brexit. Just saying.',
    });
    const brooks = results.find(({ input }) => input.location.index === 13);
    expect(brooks?.outcome).toEqual({
      kind: 'keep',
      record: {
        created: '2021-09-19T16:23:14.000Z',
        tweet_id: '1439626145826287616',
        user_name: 'michaeljtbrooks',
        rt_count: 1208,
        hashtags: 'Brexit BrexitFoodShortages BrexitChaos BrexitShambles',
        text: 'Dear @BBCNews,\n\nHas @GOVUK instructed you not to mention #Brexit in negative news items?\n\nBecause I, and probably a few million others, are getting quite suspicious now.\n\n#BrexitFoodShortages #BrexitChaos #BrexitShambles https://t.co/PzQ3nqafE5',
      },
    });
  });
});

const at: SourceLocation = { source: 'test', line: 1 };

function v1(status: Record<string, unknown>): TweetInput {
  return { kind: 'v1', status, location: at };
}

/** A v1.1 original status that passes the rule; `extra` changes it. */
function original(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    created_at: 'Sat Mar 10 14:03:15 +0000 2018',
    id: Number('972473004721627137'), // a JS number: not exactly the id
    id_str: '972473004721627137',
    text: 'short #one',
    entities: { hashtags: [{ text: 'one', indices: [6, 10] }] },
    user: { screen_name: 'author', id_str: '5' },
    retweet_count: 100,
    lang: 'en',
    ...extra,
  };
}

function retweetOf(orig: Record<string, unknown>): TweetInput {
  return v1({
    created_at: 'Sat Mar 10 15:00:00 +0000 2018',
    id_str: '972473004721627999',
    text: 'RT @author: short #one',
    user: { screen_name: 'retweeter' },
    retweet_count: orig.retweet_count,
    entities: { hashtags: [] },
    lang: 'en',
    retweeted_status: orig,
  });
}

function expectKeep(outcome: FilterOutcome): TweetRecord {
  expect(outcome.kind).toBe('keep');
  return (outcome as Extract<FilterOutcome, { kind: 'keep' }>).record;
}

function expectQuarantine(outcome: FilterOutcome, reason: RegExp): void {
  expect(outcome.kind).toBe('quarantine');
  expect((outcome as Extract<FilterOutcome, { kind: 'quarantine' }>).reason).toMatch(reason);
}

/** Freezes a value deeply, so a mutation by the filter would throw. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

describe('filterTweet on v1.1 statuses', () => {
  it('keeps a retweet of an English tweet with > 99 retweets and a hashtag, all from the original', () => {
    expect(filterTweet(deepFreeze(retweetOf(original())))).toEqual({
      kind: 'keep',
      record: {
        created: '2018-03-10T14:03:15.000Z',
        tweet_id: '972473004721627137',
        user_name: 'author',
        rt_count: 100,
        hashtags: 'one',
        text: 'short #one',
      },
    });
  });

  it('rejects by the first rule that fails, in the reference order', () => {
    expect(filterTweet(v1(original()))).toEqual({ kind: 'filtered', rejection: 'not_a_retweet' });
    expect(filterTweet(retweetOf(original({ lang: 'fr', retweet_count: 5 })))).toEqual({
      kind: 'filtered',
      rejection: 'original_not_english',
    });
    expect(filterTweet(retweetOf(original({ lang: null })))).toEqual({
      kind: 'filtered',
      rejection: 'original_not_english',
    });
    expect(filterTweet(retweetOf(original({ retweet_count: 99 })))).toEqual({
      kind: 'filtered',
      rejection: 'retweet_count_too_low',
    });
    expect(filterTweet(retweetOf(original({ entities: { hashtags: [] } })))).toEqual({
      kind: 'filtered',
      rejection: 'no_hashtags',
    });
  });

  it("uses the original's retweet_count, not the retweet's own", () => {
    const input = retweetOf(original({ retweet_count: 50 }));
    if (input.kind !== 'v1') throw new Error('v1 expected');
    const outerSays1000 = v1({ ...input.status, retweet_count: 1000 });
    expect(filterTweet(outerSays1000)).toEqual({ kind: 'filtered', rejection: 'retweet_count_too_low' });
  });

  it('prefers extended_tweet for text and hashtags, then full_text, then text', () => {
    const extended = {
      full_text: 'a long text #one #two #one',
      entities: { hashtags: [{ text: 'one' }, { text: 'two' }, { text: 'one' }] },
    };
    let record = expectKeep(
      filterTweet(retweetOf(original({ extended_tweet: extended, full_text: 'ignored' }))),
    );
    expect(record.text).toBe('a long text #one #two #one');
    expect(record.hashtags).toBe('one two one');
    // Hashtags only in extended_tweet still count; extended_tweet.entities without hashtags wins over entities.
    expect(
      expectKeep(filterTweet(retweetOf(original({ entities: { hashtags: [] }, extended_tweet: extended }))))
        .hashtags,
    ).toBe('one two one');
    expect(
      filterTweet(retweetOf(original({ extended_tweet: { full_text: 'x', entities: { hashtags: [] } } }))),
    ).toEqual({ kind: 'filtered', rejection: 'no_hashtags' });
    // Empty extended full_text falls back to full_text (REST, tweet_mode=extended), then text.
    record = expectKeep(
      filterTweet(retweetOf(original({ extended_tweet: { full_text: '' }, full_text: 'the full #one' }))),
    );
    expect(record.text).toBe('the full #one');
    expect(expectKeep(filterTweet(retweetOf(original({ extended_tweet: { full_text: '' } })))).text).toBe(
      'short #one',
    );
  });

  it('converts created_at with its offset to ISO-8601 UTC', () => {
    const record = expectKeep(
      filterTweet(retweetOf(original({ created_at: 'Wed Dec 31 23:30:00 -0130 2014' }))),
    );
    expect(record.created).toBe('2015-01-01T01:00:00.000Z');
    expect(twitterDateToIso('Sat Mar 10 14:03:15 +0000 2018')).toBe('2018-03-10T14:03:15.000Z');
    expect(twitterDateToIso('Sat Feb 30 14:03:15 +0000 2018')).toBeUndefined();
    expect(twitterDateToIso('2018-03-10T14:03:15Z')).toBeUndefined();
  });

  it('quarantines a retweet whose original lacks what the rule or the record needs', () => {
    expectQuarantine(
      filterTweet(retweetOf(original({ user: undefined }))),
      /of 972473004721627137: the original has no user$/,
    );
    expectQuarantine(
      filterTweet(retweetOf(original({ user: { id_str: '5' } }))),
      /the original has a user without screen_name/,
    );
    expectQuarantine(
      filterTweet(retweetOf(original({ id_str: undefined }))),
      /the original's id_str is missing/,
    );
    expectQuarantine(filterTweet(retweetOf(original({ lang: undefined }))), /the original has no lang/);
    expectQuarantine(
      filterTweet(retweetOf(original({ retweet_count: '100+' }))),
      /the original's retweet_count is "100\+", not a count/,
    );
    expectQuarantine(
      filterTweet(retweetOf(original({ created_at: '2018-03-10' }))),
      /the original's created_at is "2018-03-10", not in Twitter's/,
    );
    expectQuarantine(
      filterTweet(retweetOf(original({ entities: undefined }))),
      /the original has no entities/,
    );
    expectQuarantine(
      filterTweet(retweetOf(original({ entities: { hashtags: [{ indices: [1, 2] }] } }))),
      /the original's hashtag 0 has no text/,
    );
    expectQuarantine(filterTweet(retweetOf(original({ text: undefined }))), /the original has no text/);
    expectQuarantine(
      filterTweet(v1({ id_str: '1', retweeted_status: 'x' })),
      /^v1\.1 retweet 1: retweeted_status is "x"/,
    );
  });

  it('maps control messages to filtered and bad input to quarantine', () => {
    expect(filterTweet({ kind: 'control', message: 'delete', location: at })).toEqual({
      kind: 'filtered',
      rejection: 'control_message',
    });
    expect(filterTweet({ kind: 'bad', reason: 'line is not valid UTF-8', raw: 'x', location: at })).toEqual({
      kind: 'quarantine',
      reason: 'line is not valid UTF-8',
    });
  });
});

describe('filterTweet on v2 tweets', () => {
  const includes: V2Includes = {
    users: [
      { id: '1', username: 'retweeter' },
      { id: '2', username: 'author' },
    ],
    tweets: [
      {
        id: '500',
        text: 'original #One',
        author_id: '2',
        lang: 'en',
        created_at: '2021-09-22T16:37:29.000Z',
        public_metrics: { retweet_count: 250 },
        entities: { hashtags: [{ tag: 'One' }] },
      },
    ],
  };
  const retweet = {
    id: '900',
    text: 'RT @author: original #One',
    author_id: '1',
    referenced_tweets: [{ type: 'retweeted', id: '500' }],
  };
  const v2 = (tweet: Record<string, unknown>, inc: V2Includes = includes): TweetInput => ({
    kind: 'v2',
    tweet,
    includes: inc,
    location: at,
  });
  const withOriginal = (extra: Record<string, unknown>): V2Includes => ({
    ...includes,
    tweets: [{ ...includes.tweets![0]!, ...extra }],
  });

  it('keeps a retweet through referenced_tweets and includes', () => {
    expect(filterTweet(deepFreeze(v2(retweet)))).toEqual({
      kind: 'keep',
      record: {
        created: '2021-09-22T16:37:29.000Z',
        tweet_id: '500',
        user_name: 'author',
        rt_count: 250,
        hashtags: 'One',
        text: 'original #One',
      },
    });
  });

  it('prefers note_tweet for long tweets', () => {
    const note = {
      text: 'a very long text #One #Two',
      entities: { hashtags: [{ tag: 'One' }, { tag: 'Two' }] },
    };
    const record = expectKeep(filterTweet(v2(retweet, withOriginal({ note_tweet: note }))));
    expect(record.text).toBe('a very long text #One #Two');
    expect(record.hashtags).toBe('One Two');
  });

  it('filters by the same rule', () => {
    expect(filterTweet(v2({ id: '1', text: 'plain' }))).toEqual({
      kind: 'filtered',
      rejection: 'not_a_retweet',
    });
    expect(filterTweet(v2({ ...retweet, referenced_tweets: [{ type: 'quoted', id: '500' }] }))).toEqual({
      kind: 'filtered',
      rejection: 'not_a_retweet',
    });
    expect(filterTweet(v2(retweet, withOriginal({ lang: 'de' })))).toEqual({
      kind: 'filtered',
      rejection: 'original_not_english',
    });
    expect(filterTweet(v2(retweet, withOriginal({ public_metrics: { retweet_count: 99 } })))).toEqual({
      kind: 'filtered',
      rejection: 'retweet_count_too_low',
    });
    // v2 omits `entities` when a tweet has none.
    expect(filterTweet(v2(retweet, withOriginal({ entities: undefined })))).toEqual({
      kind: 'filtered',
      rejection: 'no_hashtags',
    });
  });

  it('quarantines a retweet it cannot complete from the includes', () => {
    expectQuarantine(
      filterTweet(v2(retweet, { ...includes, tweets: [] })),
      /^v2 retweet 900 of 500: the original tweet is not in the page's includes\.tweets/,
    );
    expectQuarantine(
      filterTweet(v2(retweet, { ...includes, users: [{ id: '1', username: 'retweeter' }] })),
      /^v2 retweet 900 of 500: its author 2 is not in the page's includes\.users/,
    );
    expectQuarantine(filterTweet(v2(retweet, withOriginal({ lang: undefined }))), /the original has no lang/);
    expectQuarantine(
      filterTweet(v2(retweet, withOriginal({ public_metrics: undefined }))),
      /public_metrics\.retweet_count is missing/,
    );
    expectQuarantine(
      filterTweet(v2(retweet, withOriginal({ author_id: undefined }))),
      /the original has no author_id/,
    );
    expectQuarantine(
      filterTweet(v2(retweet, withOriginal({ created_at: 'yesterday' }))),
      /created_at is "yesterday", not an ISO-8601/,
    );
  });
});
