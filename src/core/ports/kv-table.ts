/**
 * Key-value table port, shaped after DynamoDB so the AWS backend is a thin adapter:
 * items are JSON objects, addressed by a hash key and an optional range key; queries read one
 * hash key's items in range-key order, page by page; writes can carry a condition
 * (optimistic concurrency for bookmarks and leases).
 *
 * Local backend: SQLite (`<home>/sluice.db`). AWS backend: DynamoDB.
 * Contract: test/conformance/kv-table.case.ts.
 */

/** A JSON value as stored in an item. Numbers are IEEE doubles, as in DynamoDB's `N` within 2^53. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** One stored item: a JSON object that contains its key attributes. */
export type Item = { [attribute: string]: JsonValue };

/** DynamoDB scalar key types: `S` string (ordered by UTF-8 bytes), `N` number (numeric order). */
export type KeyType = 'S' | 'N';

/** A key attribute: its name and type. */
export interface KeyAttribute {
  readonly name: string;
  readonly type: KeyType;
}

/** The key schema of a table: a hash (partition) key and an optional range (sort) key. */
export interface KeySchema {
  readonly hashKey: KeyAttribute;
  readonly rangeKey?: KeyAttribute;
}

/** A key value: string for `S` attributes, number for `N`. */
export type KeyValue = string | number;

/**
 * A write condition, as a small expression tree that maps 1:1 onto a DynamoDB
 * `ConditionExpression`. Attribute paths are top-level attribute names.
 *
 * - `exists` / `not_exists`: the item (when `attribute` is omitted) or the attribute is present / absent;
 * - comparisons: the attribute compared with a JSON value (numbers numerically, strings by UTF-8
 *   bytes as DynamoDB does; other types only by `eq`/`ne`, deep equality). A comparison with a
 *   missing attribute or a value of another type is false, except `ne`, which is true (DynamoDB `<>`);
 * - `and` / `or` / `not`: combinations.
 */
export type Condition =
  | { op: 'exists'; attribute?: string }
  | { op: 'not_exists'; attribute?: string }
  | { op: 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge'; attribute: string; value: JsonValue }
  | { op: 'and' | 'or'; conditions: Condition[] }
  | { op: 'not'; condition: Condition };

/** A range-key condition for {@link KvTable.query} (DynamoDB `KeyConditionExpression`). */
export type RangeCondition =
  | { op: 'eq' | 'lt' | 'le' | 'gt' | 'ge'; value: KeyValue }
  | { op: 'between'; low: KeyValue; high: KeyValue }
  | { op: 'begins_with'; prefix: string };

/** Options of {@link KvTable.query} and {@link KvTable.scan}. */
export interface PageOptions {
  /** Maximum items per page (default: backend's page size, e.g. 1,000 locally). */
  limit?: number;
  /** The `cursor` of the previous page, to read the next one. */
  cursor?: string;
}

/** One page of results. `cursor` is present when more items may follow. */
export interface Page {
  readonly items: Item[];
  readonly cursor?: string;
}

/**
 * One change of an item, as a DynamoDB Streams record with `NEW_AND_OLD_IMAGES`
 * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html).
 */
export interface ChangeRecord {
  /** Increases with every change of the table; compare with {@link compareSequence}. */
  readonly sequenceNumber: string;
  readonly eventName: 'INSERT' | 'MODIFY' | 'REMOVE';
  /** The key attributes of the item. */
  readonly keys: Item;
  /** The item before the change (MODIFY, REMOVE). */
  readonly oldImage?: Item;
  /** The item after the change (INSERT, MODIFY). */
  readonly newImage?: Item;
  /** ISO-8601 UTC time of the change. */
  readonly approximateCreationDateTime: string;
}

/** Where to start reading a change stream (DynamoDB Streams shard iterator types). */
export type StreamPosition =
  | { readonly type: 'TRIM_HORIZON' }
  | { readonly type: 'LATEST' }
  | { readonly type: 'AFTER_SEQUENCE_NUMBER'; readonly sequenceNumber: string };

/** Orders two sequence numbers (decimal strings of any length). */
export function compareSequence(a: string, b: string): number {
  return a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
}

/** A table; obtained from {@link KvStore.table}. */
export interface KvTable {
  readonly name: string;
  readonly keySchema: KeySchema;

  /** The item with this key, or `undefined`. `key` holds the hash (and range) key attributes. */
  get(key: Item): Promise<Item | undefined>;

  /**
   * Creates or replaces the item with the key found in `item`.
   * @throws {ConditionFailedError} when `condition` is given and does not hold for the stored item.
   * @throws {Error} when key attributes are missing or of the wrong type.
   */
  put(item: Item, options?: { condition?: Condition }): Promise<void>;

  /**
   * Deletes the item with this key; succeeds when it does not exist (unless a condition says otherwise).
   * @throws {ConditionFailedError}
   */
  delete(key: Item, options?: { condition?: Condition }): Promise<void>;

  /** Items with this hash key in range-key order (ascending unless `descending`). */
  query(
    hashValue: KeyValue,
    options?: PageOptions & { range?: RangeCondition; descending?: boolean },
  ): Promise<Page>;

  /** Every item of the table, in no particular order, page by page. */
  scan(options?: PageOptions): Promise<Page>;

  /**
   * Reads the table's change stream from `position`, oldest first, at most `limit` records
   * (default 1,000). Changes are recorded atomically with the write that made them, for tables
   * opened with `stream: true`; records are kept at least 24 hours (DynamoDB Streams' retention).
   * @returns the records and the position to continue from: `AFTER_SEQUENCE_NUMBER` of the last
   *   record read; when there was none, the same position, except that `LATEST` becomes the concrete
   *   `AFTER_SEQUENCE_NUMBER` of the newest change (so nothing written after the call is missed).
   * @throws {Error} when the table was not opened with `stream: true`.
   */
  readChanges(
    position: StreamPosition,
    options?: { limit?: number },
  ): Promise<{ records: ChangeRecord[]; next: StreamPosition }>;
}

/** What a key-value backend can do. */
export interface KvStoreCapabilities {
  /** Conditional writes are atomic with respect to concurrent writers (both local and DynamoDB: yes). */
  readonly conditionalWrites: boolean;
}

/** Key-value store port: opens tables by name. */
export interface KvStore {
  readonly capabilities: KvStoreCapabilities;
  /**
   * Opens a table, creating it locally on first use. On AWS the table must exist (deployed by
   * the CDK stack) and its key schema must match. `stream: true` records every change for
   * {@link KvTable.readChanges} (DynamoDB `StreamSpecification` with `NEW_AND_OLD_IMAGES`); once
   * enabled it stays enabled. @throws {Error} on a key-schema mismatch.
   */
  table(name: string, keySchema: KeySchema, options?: { stream?: boolean }): Promise<KvTable>;
}

/** Reads every page of a query or scan (DynamoDB pagination done for you). */
export async function* allPages(read: (cursor: string | undefined) => Promise<Page>): AsyncGenerator<Item> {
  let cursor: string | undefined;
  do {
    const page = await read(cursor);
    yield* page.items;
    cursor = page.cursor;
  } while (cursor !== undefined);
}
