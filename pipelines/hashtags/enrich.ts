/**
 * The pure per-record functions of the hashtags staging step (REFERENCE.md section 1, "Staging"):
 * one landing record `{record_id, timestamp, created, tweet_id, user_name, rt_count, hashtags,
 * text}` becomes one staging row per distinct cleaned hashtag, carrying the cleaned text, its
 * sentiment, the `hash_id` primary key, the arrival `time_stamp` and the `year/month/day`
 * partitions. No I/O: reading landing objects, deduplicating across records and writing staging
 * are the step's job, not this module's.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { TweetRecord } from '../../src/sources/twitter/types.ts';

// ---------------------------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------------------------

/**
 * One landing row (REFERENCE.md section 1, "Landing"): the consumer's two columns, then the
 * producer's record fields.
 */
export interface LandingRecord extends TweetRecord {
  /** Stream sequence number of the record (decimal string; Kinesis numbers exceed 2^53). */
  readonly record_id: string;
  /** Arrival time of the record on the stream (the landing `timestamp` column). */
  readonly timestamp: Date;
}

/**
 * One staging row: one (tweet, hashtag) pair. The columns are those of the analytical
 * `hashtag_data` table plus its `year/month/day` partition values (REFERENCE.md section 1).
 */
export interface StagingRow {
  /** Primary key: {@link hashId} of `record_id`, `tweet_id` and `hashtag`. */
  readonly hash_id: string;
  readonly record_id: string;
  /** Arrival time, UTC, `YYYY-MM-DD HH:MM:SS` ({@link formatTimeStamp}). */
  readonly time_stamp: string;
  /** Creation time of the original tweet, ISO-8601, passed through from the landing record. */
  readonly created: string;
  readonly tweet_id: string;
  readonly user_name: string;
  readonly rt_count: number;
  /** One cleaned hashtag, `[A-Za-z0-9]+` ({@link cleanHashtags}). */
  readonly hashtag: string;
  /** Sentiment polarity of `text_clean`, -1 (negative) .. 1 (positive) ({@link sentiment}). */
  readonly polarity: number;
  /** Share of `text_clean` that carries sentiment, 0 .. 1 ({@link sentiment}). */
  readonly subjectivity: number;
  /** The cleaned tweet text ({@link cleanText}). */
  readonly text_clean: string;
  /** Partition values from the arrival time, UTC: year (e.g. 2026), month 1..12, day 1..31. */
  readonly year: number;
  readonly month: number;
  readonly day: number;
}

/** Sentiment of one text: {@link sentiment}. */
export interface Sentiment {
  /** -1 (most negative) .. 1 (most positive); 0 is neutral or no sentiment found. */
  readonly polarity: number;
  /** 0 (no sentiment-bearing words) .. 1 (every word carries sentiment). */
  readonly subjectivity: number;
}

// ---------------------------------------------------------------------------------------------
// text_clean
// ---------------------------------------------------------------------------------------------

/** HTML entities Twitter leaves in text (it escapes `&`, `<`, `>`), plus the common others. */
const NAMED_ENTITIES: Readonly<Record<string, string>> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: ' ',
};
const ENTITY = /&(?:(amp|lt|gt|quot|apos|nbsp)|#(\d+)|#[xX]([0-9a-fA-F]+));/g;

/**
 * `http://` or `https://` (any case, even glued to a preceding word), or `www.` starting a word
 * (so `Awww...` is not a URL), up to the next whitespace; and a scheme cut short by Twitter's
 * truncation ellipsis (`htt…`, `https…`, `https:/…`).
 */
const URL =
  /(?:https?:\/\/|(?<![\p{L}\p{M}\p{N}])www\.)\S*|(?<![\p{L}\p{M}\p{N}])htt(?:ps?)?(?::\/?)?\u2026/giu;

/**
 * Emoji and pictographs, replaced by a space:
 * - every non-BMP code point, U+10000..U+10FFFF (almost all emoji, flags (regional indicators),
 *   skin-tone modifiers, tag sequences; also non-BMP letters such as "𝐛𝐨𝐥𝐝" math letters and
 *   rare CJK, as the original removes all non-BMP characters);
 * - U+2600..U+27BF, Miscellaneous Symbols and Dingbats (☺ ☀ ★ ♀ ✔ ✓ ❤ ✨), the whole blocks;
 * - `\p{Extended_Pictographic}`: the other BMP emoji and pictographs (© ® ™ ‼ ↔ ⌚ ⏰ ⭐ ℹ 〰 ...);
 * - U+FE00..U+FE0F variation selectors (❤️ is U+2764 U+FE0F) and U+20E3 combining keycap (so
 *   the keycap 1️⃣ leaves its plain `1`).
 * The zero-width joiner (U+200D) of ZWJ sequences is a format character, removed below.
 */
const EMOJI =
  /[\u{10000}-\u{10FFFF}\u{2600}-\u{27BF}\p{Extended_Pictographic}]|[\u{FE00}-\u{FE0F}]|\u{20E3}/gu;

/** An apostrophe (straight, curly, modifier letter, backtick, acute) between two letters/digits. */
const INNER_APOSTROPHE = /(?<=[\p{L}\p{M}\p{N}])['\u2018\u2019\u02BC`\u00B4](?=[\p{L}\p{N}])/gu;

/** Format characters (ZWJ, ZWNJ, RLM/LRM, zero-width space, soft hyphen, BOM): removed. */
const FORMAT = /\p{Cf}+/gu;

/**
 * Everything that is not a letter, combining mark or number: punctuation (`\p{P}`, including
 * quotes, `@`, `#`, `_`), symbols (`\p{S}`), whitespace (newlines, tabs, no-break spaces),
 * controls, private-use and unassigned code points. Each run becomes one space.
 */
const NON_WORD = /[^\p{L}\p{M}\p{N}]+/gu;

/** Whole words removed after punctuation is gone: the retweet marker and `&amp;` leftovers. */
const DROPPED_WORDS: ReadonlySet<string> = new Set(['RT', 'amp']);

function decodeEntity(_match: string, name?: string, dec?: string, hex?: string): string {
  if (name !== undefined) return NAMED_ENTITIES[name] ?? ' ';
  const code = dec !== undefined ? Number.parseInt(dec, 10) : Number.parseInt(hex ?? '', 16);
  // Out of range or a lone surrogate: not a character, so it is markup noise.
  if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return ' ';
  return String.fromCodePoint(code);
}

/**
 * `text_clean` of a tweet (REFERENCE.md section 1, "Staging": remove URLs, quotes, the literal
 * `RT` and `amp`, non-BMP characters and emoji, punctuation (to spaces), newlines). The result
 * is words of letters (any script, accents kept: `Rosé` stays `Rosé`), combining marks and
 * numbers, separated by single spaces, no leading or trailing space; `''` when nothing is left.
 *
 * Steps, in order:
 * 1. Unicode NFC, so a decomposed `e` + U+0301 is the same word as `é`.
 * 2. HTML entities decoded once (`&amp;` -> `&`, `&lt;` -> `<`, `&#233;` -> `é`); the decoded
 *    `& < >` are punctuation, so become spaces in step 6. Double escapes (`&amp;amp;`) leave the
 *    word `amp`, dropped in step 7.
 * 3. URLs: `http://...`, `https://...` (any case) and `www....` (at a word start) up to the next
 *    whitespace -> space; so is a scheme cut by truncation (`https…`).
 * 4. Emoji -> space (ranges listed on the `EMOJI` pattern: all non-BMP code points,
 *    U+2600..U+27BF, `\p{Extended_Pictographic}`, variation selectors U+FE00..U+FE0F, U+20E3).
 * 5. Quotes: an apostrophe inside a word is removed so the word stays whole (`don't` and
 *    `don’t` -> `dont`, which VADER's negation list knows); every other quote (`"` `“` `”` `«`,
 *    an apostrophe at a word edge) is punctuation and becomes a space in step 6. Format
 *    characters (ZWJ, RLM, zero-width space, soft hyphen) are removed.
 * 6. Every run of characters that are not letters, marks or numbers (punctuation including
 *    `@`, `#` and `_`, symbols, whitespace including newlines and tabs) -> one space. So
 *    `@user_name` keeps its words (`user name`) and `#Brexit` keeps `Brexit`.
 * 7. The whole words `RT` and `amp` are dropped, case-sensitively: `ART`, `RTs`, `AMP` and
 *    `amplify` stay. (`RT` is Twitter's uppercase retweet marker; `amp` is the remnant of an
 *    `&amp;` entity, always lowercase.)
 *
 * Case is kept (VADER reads ALL-CAPS emphasis).
 *
 * @example cleanText('RT @jack: Rosé &amp; more!! https://t.co/x 😍\n') // 'jack Rosé more'
 */
export function cleanText(text: string): string {
  const replaced = text
    .normalize('NFC')
    .replace(ENTITY, decodeEntity)
    .replace(URL, ' ')
    .replace(EMOJI, ' ')
    .replace(INNER_APOSTROPHE, '')
    .replace(FORMAT, '')
    .replace(NON_WORD, ' ');
  return replaced
    .split(' ')
    .filter((word) => word.length > 0 && !DROPPED_WORDS.has(word))
    .join(' ');
}

// ---------------------------------------------------------------------------------------------
// Sentiment
// ---------------------------------------------------------------------------------------------

/** The part of `vader-sentiment` (CommonJS, no types published) that this module uses. */
interface VaderScores {
  /** Proportions of negative, neutral and positive text, each rounded by VADER to 3 decimals. */
  readonly neg: number;
  readonly neu: number;
  readonly pos: number;
  /** Normalised sum of valences, -1..1, rounded by VADER to 4 decimals. */
  readonly compound: number;
}
interface VaderModule {
  readonly SentimentIntensityAnalyzer: { polarity_scores(text: string): VaderScores };
}

let vader: VaderModule | undefined;

/** Loads VADER on first use (its lexicon is a 7,500-entry object), so importing this is cheap. */
function analyzer(): VaderModule['SentimentIntensityAnalyzer'] {
  vader ??= createRequire(import.meta.url)('vader-sentiment') as VaderModule;
  return vader.SentimentIntensityAnalyzer;
}

/**
 * Sentiment of a cleaned text (REFERENCE.md section 1: `polarity` -1..1 and `subjectivity` 0..1).
 *
 * The original computes both with TextBlob (Python). sluice uses VADER (`vader-sentiment`, the
 * JavaScript port of Hutto & Gilbert, "VADER: A Parsimonious Rule-based Model for Sentiment
 * Analysis of Social Media Text", ICWSM 2014): a lexicon of ~7,500 human-rated words, emoticons
 * and slang plus rules for negation, boosters, "but" and ALL-CAPS, tuned for social media.
 * Mapping and scales:
 * - `polarity = compound`: VADER's sum of word valences normalised to -1..1
 *   (x / sqrt(x^2 + 15)), the analogue of TextBlob's polarity (mean word polarity, -1..1). About
 *   +-0.05 is VADER's own neutral band. Precision: VADER rounds it to 4 decimals.
 * - `subjectivity = pos + neg`: the share of the text's (valence-weighted) words that carry
 *   sentiment either way, 0..1. TextBlob's subjectivity is the mean of per-word subjectivity
 *   scores (0 objective .. 1 subjective); VADER has no subjectivity, and the proportion of
 *   sentiment-bearing text is its closest analogue (opinionated text has more of it). It is
 *   `1 - neu` except that a text with no words (VADER returns all zeros) gets 0, not 1, so it is
 *   computed as `pos + neg`. VADER rounds `pos` and `neg` to 3 decimals; their sum is snapped
 *   to the nearest double of that exact thousandth (so 0.1 + 0.2 gives 0.3, not
 *   0.30000000000000004; no information is lost) and kept within 0..1 (the two roundings can add
 *   to 1.001). No further rounding is applied to either value.
 *
 * Computed on `text_clean`, as the original does. VADER itself reads punctuation (`!!!` boosts,
 * `?`), ALL-CAPS and emoticons such as `:)`; cleaning removes all but the capitals, so scores are
 * somewhat flatter than VADER on raw text would give, in exchange for matching the original's
 * definition. Words outside VADER's English lexicon (other languages) score 0.
 *
 * @example sentiment('I love this') // { polarity: 0.6369, subjectivity: 0.808 }
 */
export function sentiment(textClean: string): Sentiment {
  const scores = analyzer().polarity_scores(textClean);
  const share = Math.round((scores.pos + scores.neg) * 1000) / 1000;
  return { polarity: scores.compound, subjectivity: Math.min(1, Math.max(0, share)) };
}

// ---------------------------------------------------------------------------------------------
// Hashtags, keys, times
// ---------------------------------------------------------------------------------------------

/**
 * Cleans the landing `hashtags` column (REFERENCE.md section 1: "cleaned to `[A-Za-z0-9]`, split
 * on spaces, one row per hashtag, empty ones dropped"): split on whitespace, remove every
 * character outside ASCII `[A-Za-z0-9]` from each part (`Rosé` -> `Ros`, `SECRET_NUMBER` ->
 * `SECRETNUMBER`, `#Brexit` -> `Brexit`), drop the parts left empty. Order and duplicates are
 * kept (`'a a'` -> `['a', 'a']`); case is kept (`Brexit` and `brexit` differ).
 * {@link explodeRecord} keeps one row per distinct hashtag.
 *
 * @example cleanHashtags(' Rosé  SECRET_NUMBER 日本 ') // ['Ros', 'SECRETNUMBER']
 */
export function cleanHashtags(hashtags: string): string[] {
  const cleaned: string[] = [];
  for (const part of hashtags.split(/\s+/u)) {
    const tag = part.replace(/[^A-Za-z0-9]+/g, '');
    if (tag.length > 0) cleaned.push(tag);
  }
  return cleaned;
}

/**
 * The staging primary key (REFERENCE.md section 1): `base64(sha1(record_id + tweet_id +
 * hashtag))`, where `+` is plain string concatenation (no separator, as in the original), the
 * concatenation is hashed as UTF-8, and the digest (20 bytes) is encoded in standard base64 with
 * padding (28 characters, alphabet `A-Z a-z 0-9 + /`).
 *
 * Same as `printf '%s' "$record_id$tweet_id$hashtag" | openssl sha1 -binary | base64`.
 */
export function hashId(recordId: string, tweetId: string, hashtag: string): string {
  return createHash('sha1')
    .update(recordId + tweetId + hashtag, 'utf8')
    .digest('base64');
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0');
}

/**
 * `time_stamp` (REFERENCE.md section 1): the arrival time as `YYYY-MM-DD HH:MM:SS` in UTC,
 * 24-hour clock, milliseconds truncated (23:59:59.999 stays 23:59:59, on the same day as the
 * partitions). Independent of the process's local time zone.
 *
 * @throws RangeError when `arrival` is an invalid date or its UTC year is outside 0..9999.
 * @example formatTimeStamp(new Date('2026-01-01T00:00:00Z')) // '2026-01-01 00:00:00'
 */
export function formatTimeStamp(arrival: Date): string {
  const year = arrival.getUTCFullYear();
  if (Number.isNaN(arrival.getTime()) || year < 0 || year > 9999) {
    throw new RangeError(`time_stamp: arrival time is not a date in years 0..9999: ${String(arrival)}`);
  }
  return (
    `${pad(year, 4)}-${pad(arrival.getUTCMonth() + 1, 2)}-${pad(arrival.getUTCDate(), 2)} ` +
    `${pad(arrival.getUTCHours(), 2)}:${pad(arrival.getUTCMinutes(), 2)}:${pad(arrival.getUTCSeconds(), 2)}`
  );
}

/**
 * One landing record -> its staging rows (REFERENCE.md section 1, "Staging"): one row per
 * distinct cleaned hashtag, in first-appearance order; no rows when no hashtag survives
 * cleaning. `text_clean` and its sentiment are computed once per record and shared by its rows;
 * `time_stamp` and the UTC `year/month/day` partitions come from the arrival time.
 *
 * Duplicate hashtags within one tweet (`#Brexit ... #Brexit`, or `Rosé` and `Ros`, which both
 * clean to `Ros`) would give rows with the same `hash_id`, which the step deduplicates anyway;
 * they are dropped here so a record never yields two rows with one key. Deduplication across
 * records (the same landing record read twice) remains the step's job.
 *
 * @throws RangeError when `record.timestamp` is invalid ({@link formatTimeStamp}).
 */
export function explodeRecord(record: LandingRecord): StagingRow[] {
  const hashtags = [...new Set(cleanHashtags(record.hashtags))];
  if (hashtags.length === 0) return [];
  const time_stamp = formatTimeStamp(record.timestamp);
  const text_clean = cleanText(record.text);
  const { polarity, subjectivity } = sentiment(text_clean);
  const year = record.timestamp.getUTCFullYear();
  const month = record.timestamp.getUTCMonth() + 1;
  const day = record.timestamp.getUTCDate();
  return hashtags.map((hashtag) => ({
    hash_id: hashId(record.record_id, record.tweet_id, hashtag),
    record_id: record.record_id,
    time_stamp,
    created: record.created,
    tweet_id: record.tweet_id,
    user_name: record.user_name,
    rt_count: record.rt_count,
    hashtag,
    polarity,
    subjectivity,
    text_clean,
    year,
    month,
    day,
  }));
}
