import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanHashtags,
  cleanText,
  explodeRecord,
  formatTimeStamp,
  hashId,
  type LandingRecord,
  sentiment,
} from './enrich.ts';

// ---------------------------------------------------------------------------------------------
// Real texts, read straight from the bundled captures (independently of sluice's readers)
// ---------------------------------------------------------------------------------------------

/** The bundled captures (examples/data/hashtags/PROVENANCE.md). */
const capture = (name: string) =>
  fileURLToPath(new URL(`../../examples/data/hashtags/${name}`, import.meta.url));
const SAMPLES = {
  v1Stream: capture('v1_stream_sample_72.ndjson'),
  v1Timeline: capture('v1_user_timeline_63.json'),
  v2Search: capture('v2_search_brexit_100.jsonl'),
};

function parseCaptures(): unknown[] {
  const lines = (file: string) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line.trim().length > 0)
      .map((line) => JSON.parse(line) as unknown);
  return [
    ...lines(SAMPLES.v1Stream),
    JSON.parse(readFileSync(SAMPLES.v1Timeline, 'utf8')) as unknown,
    ...lines(SAMPLES.v2Search),
  ];
}

/** Every string under a `text` or `full_text` key, anywhere (tweets, retweeted/quoted, includes). */
function realTexts(): string[] {
  const texts = new Set<string>();
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(walk);
    else if (value !== null && typeof value === 'object') {
      for (const [key, child] of Object.entries(value)) {
        if ((key === 'text' || key === 'full_text') && typeof child === 'string') texts.add(child);
        else walk(child);
      }
    }
  };
  walk(parseCaptures());
  return [...texts];
}

/** Per tweet, its hashtags space-joined as the producer sends them (v1.1 `text`, v2 `tag`). */
function realHashtagStrings(): string[] {
  const joined: string[] = [];
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(walk);
    else if (value !== null && typeof value === 'object') {
      const tags = (value as { hashtags?: unknown }).hashtags;
      if (Array.isArray(tags) && tags.length > 0) {
        joined.push(tags.map((t: { text?: string; tag?: string }) => t.text ?? t.tag ?? '').join(' '));
      }
      Object.values(value).forEach(walk);
    }
  };
  walk(parseCaptures());
  return joined;
}

/** Words, then single spaces between words; letters, marks and numbers only. */
const CLEAN_SHAPE = /^(?:[\p{L}\p{M}\p{N}]+(?: [\p{L}\p{M}\p{N}]+)*)?$/u;

// ---------------------------------------------------------------------------------------------
// cleanText
// ---------------------------------------------------------------------------------------------

describe('cleanText', () => {
  // Expected values written from the rules in enrich.ts's doc comment, not from its output.
  it.each([
    [
      'retweet marker, mention, entity, URL, emoji, newline',
      'RT @jack: Rosé &amp; more!! https://t.co/x 😍\n',
      'jack Rosé more',
    ],
    ['RT only as a whole word', 'ART is not RT but RTs are', 'ART is not but RTs are'],
    ['lowercase rt stays', 'pls rt', 'pls rt'],
    ['amp only as a whole lowercase word', 'amplify the AMP amp', 'amplify the AMP'],
    ['double-escaped &amp;amp; leaves amp, which is dropped', 'Tom &amp;amp; Jerry', 'Tom Jerry'],
    ['&lt; and &gt; are punctuation', 'A &lt;3 B &gt; C', 'A 3 B C'],
    ['numeric entities are decoded, then cleaned', 'na&#239;ve &#x1F600; x', 'naïve x'],
    ['https URL', 'see https://example.com/a?b=1&c=2 now', 'see now'],
    ['http URL, upper case', 'see HTTP://EXAMPLE.COM now', 'see now'],
    ['www URL', 'visit www.example.com/page now', 'visit now'],
    ['URL glued to a word', 'Link:https://t.co/abc', 'Link'],
    ['Awww is not a URL', 'Awww... so cute', 'Awww so cute'],
    ['scheme cut by the truncation ellipsis', 'read this https…', 'read this'],
    ['apostrophes inside words join them', "Don’t stop, it isn't over", 'Dont stop it isnt over'],
    ['quotes become spaces', 'he said"yes" and “no” «oui» \'tis', 'he said yes and no oui tis'],
    ['mention keeps the word, underscore is punctuation', '@Ali_Dokhikh hi', 'Ali Dokhikh hi'],
    ['hashtag keeps the word', '#Brexit now', 'Brexit now'],
    ['BMP emoji with variation selector', 'I ❤️ it ☺ ✨ ⭐ ⌚', 'I it'],
    ['skin tone, ZWJ family, flag', 'ok 👍🏽 👨‍👩‍👧 🇬🇧 UK', 'ok UK'],
    ['keycap keeps its digit', '1\uFE0F\u20E3 first', '1 first'],
    ['trademark and copyright signs', 'Brand™ ©2020', 'Brand 2020'],
    ['non-BMP letters are removed', '𝐁𝐨𝐥𝐝 text', 'text'],
    ['accents kept, decomposed form composed (NFC)', 'Cafe\u0301 naïve façade', 'Café naïve façade'],
    ['other scripts kept, RLM removed', '\u200Fمرحبا بالعالم!', 'مرحبا بالعالم'],
    ['newlines, tabs, no-break spaces collapse', ' a\t\tb\r\n\u00A0c\n', 'a b c'],
    ['punctuation and symbols to spaces', 'rocks 3.5 10,000 $5 50% a+b=c', 'rocks 3 5 10 000 5 50 a b c'],
    ['nothing left', '🔥🔥 https://t.co/x RT &amp;', ''],
    ['empty', '', ''],
  ])('%s', (_name, text, expected) => {
    expect(cleanText(text)).toBe(expected);
  });

  it('leaves only words of letters, marks and numbers on every real text', () => {
    const texts = realTexts();
    expect(texts.length).toBeGreaterThan(400);
    for (const text of texts) {
      const clean = cleanText(text);
      expect(clean, text).toMatch(CLEAN_SHAPE);
      expect(clean, text).not.toMatch(/[\u{10000}-\u{10FFFF}\u{2600}-\u{27BF}\p{Extended_Pictographic}]/u);
      const words = clean.split(' ');
      expect(words, text).not.toContain('RT');
      expect(words, text).not.toContain('amp');
      expect(
        words.map((w) => w.toLowerCase()),
        text,
      ).not.toContain('https');
      // No piece of any URL survives: the t.co ids are random, so they cannot be real words.
      for (const [, id] of text.matchAll(/https?:\/\/t\.co\/([A-Za-z0-9]+)/g)) {
        expect(clean, text).not.toContain(id);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// sentiment
// ---------------------------------------------------------------------------------------------

describe('sentiment', () => {
  const vader = createRequire(import.meta.url)('vader-sentiment') as {
    SentimentIntensityAnalyzer: {
      polarity_scores(t: string): { neg: number; neu: number; pos: number; compound: number };
    };
  };

  it('is positive for clearly positive text', () => {
    const s = sentiment('I love this it is great and wonderful');
    expect(s.polarity).toBeGreaterThan(0.5);
    expect(s.subjectivity).toBeGreaterThan(0);
  });

  it('is negative for clearly negative text', () => {
    const s = sentiment('This is a terrible awful horrible day');
    expect(s.polarity).toBeLessThan(-0.5);
    expect(s.subjectivity).toBeGreaterThan(0);
  });

  it('is zero for factual text with no sentiment words', () => {
    expect(sentiment('The train leaves at noon from platform 4')).toEqual({ polarity: 0, subjectivity: 0 });
  });

  it('sees negation written without the apostrophe, as cleanText leaves it', () => {
    expect(sentiment(cleanText("I don't like it")).polarity).toBeLessThan(0);
  });

  it('is zero, not one, for an empty text (VADER gives neu = 0 there)', () => {
    expect(sentiment('')).toEqual({ polarity: 0, subjectivity: 0 });
  });

  it('is polarity = compound and subjectivity = pos + neg, in range, on every real text', () => {
    for (const text of realTexts()) {
      const clean = cleanText(text);
      const s = sentiment(clean);
      const v = vader.SentimentIntensityAnalyzer.polarity_scores(clean);
      expect(s.polarity, clean).toBe(v.compound);
      expect(s.subjectivity, clean).toBeCloseTo(v.pos + v.neg, 12);
      expect(s.polarity, clean).toBeGreaterThanOrEqual(-1);
      expect(s.polarity, clean).toBeLessThanOrEqual(1);
      expect(s.subjectivity, clean).toBeGreaterThanOrEqual(0);
      expect(s.subjectivity, clean).toBeLessThanOrEqual(1);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// cleanHashtags, hashId
// ---------------------------------------------------------------------------------------------

describe('cleanHashtags', () => {
  it('keeps only ASCII letters and digits', () => {
    expect(cleanHashtags('Rosé')).toEqual(['Ros']);
    expect(cleanHashtags('SECRET_NUMBER')).toEqual(['SECRETNUMBER']);
    expect(cleanHashtags('#Brexit')).toEqual(['Brexit']);
  });

  it('splits on any whitespace and drops empty hashtags', () => {
    expect(cleanHashtags('  Brexit   PeoplesVote _ 日本 \t Vote2019 ')).toEqual([
      'Brexit',
      'PeoplesVote',
      'Vote2019',
    ]);
    expect(cleanHashtags('')).toEqual([]);
    expect(cleanHashtags('   ')).toEqual([]);
    expect(cleanHashtags('수호TV')).toEqual(['TV']);
  });

  it('keeps order, case and duplicates', () => {
    expect(cleanHashtags('Brexit brexit Brexit Rosé Ros')).toEqual([
      'Brexit',
      'brexit',
      'Brexit',
      'Ros',
      'Ros',
    ]);
  });

  it('gives [A-Za-z0-9]+ hashtags on every real tweet, unchanged when already clean', () => {
    const strings = realHashtagStrings();
    expect(strings.length).toBeGreaterThan(50);
    for (const joined of strings) {
      for (const tag of cleanHashtags(joined)) expect(tag).toMatch(/^[A-Za-z0-9]+$/);
      const alreadyClean = joined.split(' ').filter((t) => /^[A-Za-z0-9]+$/.test(t));
      for (const tag of alreadyClean) expect(cleanHashtags(joined)).toContain(tag);
    }
  });
});

describe('hashId', () => {
  const recordId = '49590338271490256608559692538361571095921575989136588898';
  const tweetId = '759227111810985984';

  it('matches a value computed with openssl', () => {
    // printf '%s' '49590338271490256608559692538361571095921575989136588898759227111810985984Brexit' \
    //   | openssl sha1 -binary | base64
    expect(hashId(recordId, tweetId, 'Brexit')).toBe('25j3p+14HSMZHdI8nGM5ikILIKw=');
  });

  it('is base64 (with padding) of sha1 over the UTF-8 concatenation', () => {
    for (const tag of ['Brexit', 'x', 'Rosé', '']) {
      const expected = createHash('sha1')
        .update(Buffer.from(`${recordId}${tweetId}${tag}`, 'utf8'))
        .digest()
        .toString('base64');
      const id = hashId(recordId, tweetId, tag);
      expect(id).toBe(expected);
      expect(id).toMatch(/^[A-Za-z0-9+/]{27}=$/);
    }
    expect(hashId(recordId, tweetId, 'Brexit')).not.toBe(hashId(recordId, tweetId, 'brexit'));
  });
});

// ---------------------------------------------------------------------------------------------
// formatTimeStamp, across local time zones
// ---------------------------------------------------------------------------------------------

describe('formatTimeStamp', () => {
  const originalTz = process.env.TZ;
  afterEach(() => {
    if (originalTz === undefined) delete process.env.TZ;
    else process.env.TZ = originalTz;
  });

  it('formats the UTC time at the new year, whatever the local zone (UTC-8)', () => {
    process.env.TZ = 'America/Los_Angeles';
    const arrival = new Date('2026-01-01T00:00:00.000Z');
    expect(arrival.getDate()).toBe(31); // the trap is armed: local time is still 2025-12-31
    expect(formatTimeStamp(arrival)).toBe('2026-01-01 00:00:00');
  });

  it('truncates milliseconds and stays on the UTC day (UTC+14)', () => {
    process.env.TZ = 'Pacific/Kiritimati';
    const arrival = new Date('2025-12-31T23:59:59.999Z');
    expect(arrival.getFullYear()).toBe(2026); // local time is already 2026-01-01
    expect(formatTimeStamp(arrival)).toBe('2025-12-31 23:59:59');
  });

  it('pads every field and handles a leap day', () => {
    expect(formatTimeStamp(new Date('2024-02-29T03:04:05Z'))).toBe('2024-02-29 03:04:05');
    expect(formatTimeStamp(new Date('0999-01-02T13:00:00Z'))).toBe('0999-01-02 13:00:00');
  });

  it('rejects an invalid date', () => {
    expect(() => formatTimeStamp(new Date('not a date'))).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------------
// explodeRecord
// ---------------------------------------------------------------------------------------------

describe('explodeRecord', () => {
  const record: LandingRecord = {
    record_id: '49590338271490256608559692538361571095921575989136588898',
    timestamp: new Date('2026-01-01T00:00:00.000Z'),
    created: '2016-07-29T17:12:35.000Z',
    tweet_id: '759227111810985984',
    user_name: 'POTUS',
    rt_count: 150,
    hashtags: 'Brexit  Rosé brexit Brexit SECRET_NUMBER _',
    text: 'RT @POTUS: Incredible speech &amp; a #Brexit win 🎉\nhttps://t.co/abc',
  };
  const sha1 = (s: string) => createHash('sha1').update(s, 'utf8').digest('base64');

  it('gives one row per distinct cleaned hashtag, in order, sharing text and sentiment', () => {
    const rows = explodeRecord(record);
    const textClean = 'POTUS Incredible speech a Brexit win';
    const { polarity, subjectivity } = sentiment(textClean);
    expect(polarity).toBeGreaterThan(0);
    const common = {
      record_id: record.record_id,
      time_stamp: '2026-01-01 00:00:00',
      created: '2016-07-29T17:12:35.000Z',
      tweet_id: '759227111810985984',
      user_name: 'POTUS',
      rt_count: 150,
      polarity,
      subjectivity,
      text_clean: textClean,
      year: 2026,
      month: 1,
      day: 1,
    };
    expect(rows).toEqual(
      ['Brexit', 'Ros', 'brexit', 'SECRETNUMBER'].map((hashtag) => ({
        hash_id: sha1(`${record.record_id}${record.tweet_id}${hashtag}`),
        hashtag,
        ...common,
      })),
    );
    expect(rows[0]?.hash_id).toBe('25j3p+14HSMZHdI8nGM5ikILIKw='); // the openssl value above
    expect(new Set(rows.map((r) => r.hash_id)).size).toBe(rows.length);
  });

  it('gives no rows when no hashtag survives cleaning', () => {
    expect(explodeRecord({ ...record, hashtags: ' 日本 _ ' })).toEqual([]);
  });

  it('takes the partitions from the UTC arrival time', () => {
    const [row] = explodeRecord({ ...record, timestamp: new Date('2025-12-31T23:59:59.999Z') });
    expect(row).toMatchObject({ time_stamp: '2025-12-31 23:59:59', year: 2025, month: 12, day: 31 });
  });
});
