/**
 * Shared shapes of the Twitter sources: what the file readers and the filtered-stream client
 * yield, and the record the hashtags producer sends to the stream (REFERENCE.md section 1).
 */

/** Where an input item came from, for quarantine reasons and error messages. */
export interface SourceLocation {
  /** The file (replay) or `stream:<url>` (live). */
  readonly source: string;
  /**
   * 1-based line of the file: the line of the status (NDJSON / JSONL formats), or the line where the
   * status (an array element, a pretty-printed object) starts (1 for a one-line JSON array file).
   */
  readonly line: number;
  /** 0-based index of the status inside the line's array (`[...]`, `{statuses}`, `{data}`, `{errors}`), when any. */
  readonly index?: number;
  /**
   * The member of the line's object that `index` points into (`statuses`, `data` or `errors`); absent
   * for a status that is the whole line or an element of a top-level array.
   */
  readonly member?: 'statuses' | 'data' | 'errors';
}

/** Capture formats the file replay understands. */
export type TwitterFileFormat =
  /** v1.1 streaming API: one status object per line. */
  | 'v1-stream'
  /** v1.1 REST (`statuses/user_timeline`, `lookup`, ...): a JSON array of statuses. */
  | 'v1-array'
  /** v1.1 `search/tweets` response: `{ "statuses": [...], "search_metadata": {...} }` (one or one per line). */
  | 'v1-search'
  /** v2 page per line (twarc2, or the filtered stream's own lines): `{ data, includes, meta }`. */
  | 'v2-page';

/** A Twitter API v1.1 status object, as far as sluice reads it (other fields pass through). */
export interface V1Status {
  readonly created_at?: string;
  readonly id?: number;
  readonly id_str?: string;
  readonly text?: string;
  readonly full_text?: string;
  readonly lang?: string;
  readonly retweet_count?: number;
  readonly entities?: { readonly hashtags?: readonly { readonly text?: string }[] };
  readonly extended_tweet?: {
    readonly full_text?: string;
    readonly entities?: { readonly hashtags?: readonly { readonly text?: string }[] };
  };
  readonly user?: { readonly screen_name?: string; readonly id_str?: string };
  readonly retweeted_status?: V1Status;
  readonly [field: string]: unknown;
}

/** A Twitter API v2 tweet object, as far as sluice reads it. */
export interface V2Tweet {
  readonly id?: string;
  readonly text?: string;
  readonly created_at?: string;
  readonly author_id?: string;
  readonly lang?: string;
  readonly entities?: { readonly hashtags?: readonly { readonly tag?: string }[] };
  readonly public_metrics?: { readonly retweet_count?: number };
  readonly referenced_tweets?: readonly { readonly type?: string; readonly id?: string }[];
  /** Long tweets (over 280 characters): the full text (the v2 analog of `extended_tweet`). */
  readonly note_tweet?: { readonly text?: string; readonly entities?: V2Tweet['entities'] };
  readonly [field: string]: unknown;
}

/** The `includes` of a v2 response: expanded objects referenced by `data`. */
export interface V2Includes {
  readonly users?: readonly {
    readonly id?: string;
    readonly username?: string;
    readonly [field: string]: unknown;
  }[];
  readonly tweets?: readonly V2Tweet[];
  readonly [field: string]: unknown;
}

/** One item read from a capture file or the live stream. */
export type TweetInput =
  | { readonly kind: 'v1'; readonly status: V1Status; readonly location: SourceLocation }
  | {
      readonly kind: 'v2';
      readonly tweet: V2Tweet;
      /** The `includes` of the page the tweet came with. */
      readonly includes: V2Includes;
      readonly location: SourceLocation;
    }
  | {
      /**
       * A v1.1 stream message that is not a status (`delete`, `limit`, `warning`, `scrub_geo`,
       * `status_withheld`, `user_withheld`, `disconnect`, ...; Twitter's "Streaming message types").
       * Counted as read and filtered, never quarantined.
       */
      readonly kind: 'control';
      /** The message type: the object's key that names it, e.g. `delete`. */
      readonly message: string;
      /** The whole message (e.g. the id of a deleted status, which a compliant consumer must honour). */
      readonly body?: Readonly<Record<string, unknown>>;
      readonly location: SourceLocation;
    }
  | {
      /** Unreadable or invalid input: goes to the quarantine with `reason`. */
      readonly kind: 'bad';
      readonly reason: string;
      /** The offending text (a line, or the JSON of one status), at most 64 KiB. */
      readonly raw: string;
      readonly location: SourceLocation;
    };

/**
 * The record the hashtags producer sends to the stream, all fields taken from the ORIGINAL
 * (retweeted) tweet (REFERENCE.md section 1). Serialized as JSON with these keys.
 */
export interface TweetRecord {
  /** Creation time of the original tweet, ISO-8601 UTC with ms (`2018-03-10T14:03:15.000Z`). */
  readonly created: string;
  /** Id of the original tweet, decimal string (64-bit ids do not fit a JS number). */
  readonly tweet_id: string;
  /** `screen_name` (v1.1) / `username` (v2) of the original tweet's author. */
  readonly user_name: string;
  /** Retweet count of the original tweet when captured. */
  readonly rt_count: number;
  /** Hashtags of the original tweet, as written (no `#`), joined by single spaces. */
  readonly hashtags: string;
  /** Full text of the original tweet. */
  readonly text: string;
}

/** Why the producer filter did not send a well-formed status (not an error: the rule says no). */
export type FilterRejection =
  | 'not_a_retweet'
  | 'original_not_english'
  | 'retweet_count_too_low'
  | 'no_hashtags'
  /** The input was a stream control message (`kind: 'control'`), not a status. */
  | 'control_message';

/** Outcome of the producer filter for one input item. */
export type FilterOutcome =
  | { readonly kind: 'keep'; readonly record: TweetRecord }
  | { readonly kind: 'filtered'; readonly rejection: FilterRejection }
  | { readonly kind: 'quarantine'; readonly reason: string };
