import type { Clock } from '../../core/clock.ts';
import { systemClock } from '../../core/clock.ts';
import { ConditionFailedError, SluiceError } from '../../core/errors.ts';
import type {
  ChangeRecord,
  Condition,
  Item,
  JsonValue,
  KeyAttribute,
  KeySchema,
  KeyValue,
  KvStore,
  KvStoreCapabilities,
  KvTable,
  Page,
  PageOptions,
  RangeCondition,
  StreamPosition,
} from '../../core/ports/kv-table.ts';
import { type Database, type Migration, migrate, type Statement } from './sqlite.ts';

/** Items per page of {@link KvTable.query} and {@link KvTable.scan} when no `limit` is given. */
export const DEFAULT_PAGE_SIZE = 1000;

/** How long change records are kept, in ms: 24 hours, DynamoDB Streams' retention. */
export const STREAM_RETENTION_MS = 24 * 60 * 60 * 1000;

/**
 * Least time between two retention prunes of one {@link LocalKvStore}, in ms of its clock: writes
 * to streamed tables delete expired change records at most this often.
 */
export const STREAM_PRUNE_INTERVAL_MS = 60_000;

/**
 * Schema of the key-value module (append-only, see {@link migrate}); exported for migration tests.
 *
 * Version 1: key columns are `ANY` in a STRICT table, so SQLite keeps each value's type as bound:
 * numbers compare numerically, text with the BINARY collation, i.e. by UTF-8 bytes, which is
 * DynamoDB's order for `N` and `S` keys. Tables without a range key store `''` as range key.
 *
 * Version 2, change streams: `kv_tables.stream` (1 when the table records its changes, never reset
 * to 0) and `kv_tables.trimmed_through` (the highest sequence number of the table that retention
 * deleted, 0 when none); `kv_changes` holds the change records of every streamed table: `seq` is
 * the sequence number (`AUTOINCREMENT`, so a number is never reused, even after the newest records
 * were deleted), `keys`/`old_image`/`new_image` JSON text (images `NULL` when absent), `created_at`
 * ISO-8601 UTC.
 */
export const KV_MIGRATIONS: readonly Migration[] = [
  `CREATE TABLE kv_tables (
     name TEXT PRIMARY KEY,
     key_schema TEXT NOT NULL,
     created_at TEXT NOT NULL
   ) STRICT;
   CREATE TABLE kv_items (
     table_name TEXT NOT NULL,
     hash_key ANY NOT NULL,
     range_key ANY NOT NULL,
     item TEXT NOT NULL,
     PRIMARY KEY (table_name, hash_key, range_key)
   ) STRICT, WITHOUT ROWID;`,
  `ALTER TABLE kv_tables ADD COLUMN stream INTEGER NOT NULL DEFAULT 0 CHECK (stream IN (0, 1));
   ALTER TABLE kv_tables ADD COLUMN trimmed_through INTEGER NOT NULL DEFAULT 0;
   CREATE TABLE kv_changes (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     table_name TEXT NOT NULL,
     event_name TEXT NOT NULL CHECK (event_name IN ('INSERT', 'MODIFY', 'REMOVE')),
     keys TEXT NOT NULL,
     old_image TEXT,
     new_image TEXT,
     created_at TEXT NOT NULL
   ) STRICT;
   CREATE INDEX kv_changes_by_table ON kv_changes (table_name, seq);
   CREATE INDEX kv_changes_by_age ON kv_changes (created_at);`,
];

/** Options of {@link LocalKvStore}. */
export interface LocalKvStoreOptions {
  /** Stamps change records and drives their retention (default: the system clock). */
  readonly clock?: Clock;
}

/**
 * The local {@link KvStore}: every table's items in one SQLite table of the shared database
 * (`<home>/sluice.db`), stored as JSON and keyed by (table name, hash key, range key), with each
 * table's key schema registered in `kv_tables`.
 *
 * Mirrors DynamoDB where the port relies on it: range keys ordered numerically (`N`) or by UTF-8
 * bytes (`S`); key attributes validated (`S` a non-empty string, `N` a finite number);
 * conditional writes evaluated against the stored item atomically (in a `BEGIN IMMEDIATE`
 * transaction, so they also hold between processes sharing the file); comparisons with a missing
 * attribute false, except `ne`, which is true (DynamoDB's `<>`).
 *
 * Change streams (DynamoDB Streams with `NEW_AND_OLD_IMAGES`): a table opened with
 * `stream: true` appends a record to `kv_changes` in the same transaction as each write: `INSERT`
 * for a put without a stored item, `MODIFY` for a put over one that changes it, `REMOVE` for a
 * delete of a stored item. Like DynamoDB, it records nothing for a put that leaves the item as it
 * was (deep JSON equality; "If you perform a PutItem or UpdateItem operation that does not change
 * any data in an item, DynamoDB Streams does not write a stream record", Streams developer
 * guide), for a delete of a missing item, or for a failed conditional write. Sequence numbers are
 * shared by all tables of the file and increase in commit order, so a reader in any process sees
 * every change once, in order. Records older than {@link STREAM_RETENTION_MS} are deleted by
 * writes, at most every {@link STREAM_PRUNE_INTERVAL_MS}; reading from a position before deleted
 * records throws a {@link SluiceError} with code `stream_trimmed` (DynamoDB's
 * `TrimmedDataAccessException`). Writes to tables without a stream stay single statements, after
 * one primary-key read of the table's stream flag (so a stream enabled by another process counts).
 *
 * The constructor creates or upgrades the schema when needed (idempotent; see {@link migrate}).
 */
export class LocalKvStore implements KvStore {
  readonly capabilities: KvStoreCapabilities = { conditionalWrites: true };
  private readonly tables = new Map<string, LocalKvTable>();
  private readonly clock: Clock;
  private readonly log: ChangeLog;

  constructor(
    private readonly db: Database,
    options: LocalKvStoreOptions = {},
  ) {
    migrate(db, 'kv', KV_MIGRATIONS);
    this.clock = options.clock ?? systemClock;
    this.log = new ChangeLog(db, this.clock);
  }

  /**
   * Opens table `name`, registering it with `keySchema` on first use (DynamoDB `CreateTable`).
   * `stream: true` enables its change stream, on creation or later on an existing table (DynamoDB
   * `UpdateTable` with a `StreamSpecification`); a table's stream is never disabled, so opening a
   * streamed table without `stream: true` still records its changes.
   * @throws {Error} when the table is registered with a different key schema, or when the name
   *   or schema is malformed.
   */
  async table(name: string, keySchema: KeySchema, options: { stream?: boolean } = {}): Promise<KvTable> {
    if (typeof name !== 'string' || name.length === 0)
      throw new Error('kv table name must be a non-empty string');
    const schema = canonicalSchema(name, keySchema);
    const wanted = JSON.stringify(schema);
    const stream = options.stream === true;
    const cached = this.tables.get(name);
    const reusable = cached !== undefined && JSON.stringify(cached.keySchema) === wanted;
    if (reusable && (!stream || cached.hasStream())) return cached;

    const select = this.db.prepare<[string], { key_schema: string; stream: number }>(
      'SELECT key_schema, stream FROM kv_tables WHERE name = ?',
    );
    let stored = select.get(name);
    if (stored === undefined || (stream && stored.stream === 0 && stored.key_schema === wanted)) {
      stored = this.db
        .transaction(() => {
          const raced = select.get(name);
          if (raced === undefined) {
            this.db
              .prepare('INSERT INTO kv_tables (name, key_schema, created_at, stream) VALUES (?, ?, ?, ?)')
              .run(name, wanted, this.clock.now().toISOString(), stream ? 1 : 0);
            return { key_schema: wanted, stream: stream ? 1 : 0 };
          }
          if (stream && raced.stream === 0 && raced.key_schema === wanted) {
            this.db.prepare('UPDATE kv_tables SET stream = 1 WHERE name = ?').run(name);
            return { key_schema: raced.key_schema, stream: 1 };
          }
          return raced;
        })
        .immediate();
    }
    if (stored.key_schema !== wanted) {
      throw new Error(
        `kv table "${name}" exists with key schema ${describeSchema(JSON.parse(stored.key_schema) as KeySchema)}, ` +
          `but was opened with ${describeSchema(schema)}`,
      );
    }
    const table = reusable ? cached : new LocalKvTable(this.db, name, schema, this.log);
    if (stored.stream === 1) table.streamEnabled();
    this.tables.set(name, table);
    return table;
  }
}

/**
 * The change records of all streamed tables of one database (`kv_changes`), with their retention:
 * {@link ChangeLog.append} runs inside the writing transaction and first deletes expired records
 * when the last prune of this store is {@link STREAM_PRUNE_INTERVAL_MS} old.
 */
class ChangeLog {
  private lastPrune: number | undefined;
  private readonly insert: Statement;
  private readonly markTrimmed: Statement;
  private readonly prune: Statement;

  constructor(
    db: Database,
    private readonly clock: Clock,
  ) {
    this.insert = db.prepare(
      `INSERT INTO kv_changes (table_name, event_name, keys, old_image, new_image, created_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
    );
    // Remember, per table, the newest record retention deletes: a reader positioned before it lost data.
    this.markTrimmed = db.prepare(
      `UPDATE kv_tables SET trimmed_through = expired.through
       FROM (SELECT table_name, MAX(seq) AS through FROM kv_changes WHERE created_at < ? GROUP BY table_name)
         AS expired
       WHERE kv_tables.name = expired.table_name AND expired.through > kv_tables.trimmed_through`,
    );
    this.prune = db.prepare('DELETE FROM kv_changes WHERE created_at < ?');
  }

  /** Appends one record; call inside the transaction of the write it records. */
  append(
    table: string,
    eventName: ChangeRecord['eventName'],
    keys: string,
    oldImage: string | undefined,
    newImage: string | undefined,
  ): void {
    const now = this.clock.now();
    this.pruneExpired(now.getTime());
    this.insert.run(table, eventName, keys, oldImage ?? null, newImage ?? null, now.toISOString());
  }

  private pruneExpired(now: number): void {
    if (this.lastPrune !== undefined && Math.abs(now - this.lastPrune) < STREAM_PRUNE_INTERVAL_MS) return;
    this.lastPrune = now;
    const cutoff = new Date(now - STREAM_RETENTION_MS).toISOString();
    this.markTrimmed.run(cutoff);
    this.prune.run(cutoff);
  }
}

/** A key schema with only the known fields, in a fixed order (stable JSON). @throws {Error} */
function canonicalSchema(table: string, schema: KeySchema): KeySchema {
  const attribute = (role: string, key: KeyAttribute): KeyAttribute => {
    if (!key || typeof key.name !== 'string' || key.name.length === 0) {
      throw new Error(`kv table "${table}": ${role} key needs a non-empty attribute name`);
    }
    if (key.type !== 'S' && key.type !== 'N') {
      throw new Error(
        `kv table "${table}": ${role} key "${key.name}" has type ${String(key.type)}; expected S or N`,
      );
    }
    return { name: key.name, type: key.type };
  };
  const hashKey = attribute('hash', schema.hashKey);
  if (schema.rangeKey === undefined) return { hashKey };
  const rangeKey = attribute('range', schema.rangeKey);
  if (rangeKey.name === hashKey.name) {
    throw new Error(`kv table "${table}": hash and range key are both "${hashKey.name}"`);
  }
  return { hashKey, rangeKey };
}

function describeSchema(schema: KeySchema): string {
  const hash = `hash ${schema.hashKey.name} (${schema.hashKey.type})`;
  return schema.rangeKey ? `${hash}, range ${schema.rangeKey.name} (${schema.rangeKey.type})` : hash;
}

type Row = { item: string };
type RangeRow = { range_key: KeyValue; item: string };
type ScanRow = { hash_key: KeyValue; range_key: KeyValue; item: string };
type ChangeRow = {
  seq: number;
  event_name: ChangeRecord['eventName'];
  keys: string;
  old_image: string | null;
  new_image: string | null;
  created_at: string;
};

/** One table of {@link LocalKvStore}; see {@link KvTable}. */
class LocalKvTable implements KvTable {
  private readonly statements = new Map<string, Statement>();
  /** True once the table is known to have a stream (it is never disabled). */
  private streamed = false;

  constructor(
    private readonly db: Database,
    readonly name: string,
    readonly keySchema: KeySchema,
    private readonly log: ChangeLog,
  ) {}

  /** Whether this table was seen with a stream (no database read). */
  hasStream(): boolean {
    return this.streamed;
  }

  /**
   * Whether the table records changes. Until it does, every call reads `kv_tables` (one primary-key
   * lookup), so a stream enabled by another connection or process applies to this one's next write.
   */
  streamEnabled(): boolean {
    if (!this.streamed) {
      const row = this.statement('SELECT stream FROM kv_tables WHERE name = ?').get(this.name) as
        | { stream: number }
        | undefined;
      this.streamed = row?.stream === 1;
    }
    return this.streamed;
  }

  async get(key: Item): Promise<Item | undefined> {
    const [hash, range] = this.keyOf(key, 'key');
    const stored = this.storedJson(hash, range);
    return stored === undefined ? undefined : (JSON.parse(stored) as Item);
  }

  async put(item: Item, options: { condition?: Condition } = {}): Promise<void> {
    const [hash, range] = this.keyOf(item, 'item');
    const json = JSON.stringify(item);
    const upsert = this.statement(
      `INSERT INTO kv_items (table_name, hash_key, range_key, item) VALUES (?, ?, ?, ?)
       ON CONFLICT (table_name, hash_key, range_key) DO UPDATE SET item = excluded.item`,
    );
    const condition = options.condition;
    if (condition !== undefined) validateCondition(condition);
    if (condition === undefined && !this.streamEnabled()) {
      upsert.run(this.name, hash, range, json); // fast path: one statement, no transaction
      return;
    }
    this.db
      .transaction(() => {
        const stored = this.storedJson(hash, range);
        if (condition !== undefined) this.check('put', condition, hash, range, stored);
        upsert.run(this.name, hash, range, json);
        // DynamoDB writes no stream record for a put that changes no data of the item.
        if (this.streamEnabled() && (stored === undefined || !sameItem(stored, json))) {
          const eventName = stored === undefined ? 'INSERT' : 'MODIFY';
          this.log.append(this.name, eventName, this.keysJson(hash, range), stored, json);
        }
      })
      .immediate();
  }

  async delete(key: Item, options: { condition?: Condition } = {}): Promise<void> {
    const [hash, range] = this.keyOf(key, 'key');
    const remove = this.statement(
      'DELETE FROM kv_items WHERE table_name = ? AND hash_key = ? AND range_key = ?',
    );
    const condition = options.condition;
    if (condition !== undefined) validateCondition(condition);
    if (condition === undefined && !this.streamEnabled()) {
      remove.run(this.name, hash, range); // fast path: one statement, no transaction
      return;
    }
    this.db
      .transaction(() => {
        const stored = this.storedJson(hash, range);
        if (condition !== undefined) this.check('delete', condition, hash, range, stored);
        if (stored === undefined) return; // nothing deleted: no REMOVE record (DynamoDB)
        remove.run(this.name, hash, range);
        if (this.streamEnabled()) {
          this.log.append(this.name, 'REMOVE', this.keysJson(hash, range), stored, undefined);
        }
      })
      .immediate();
  }

  async readChanges(
    position: StreamPosition,
    options: { limit?: number } = {},
  ): Promise<{ records: ChangeRecord[]; next: StreamPosition }> {
    const limit = pageLimit(this.name, options.limit);
    // One read transaction: the trim check and the records come from the same snapshot.
    return this.db.transaction((): { records: ChangeRecord[]; next: StreamPosition } => {
      if (!this.streamEnabled()) {
        throw new Error(
          `kv table "${this.name}" has no change stream: open it with { stream: true } to record ` +
            'its changes (DynamoDB StreamSpecification NEW_AND_OLD_IMAGES)',
        );
      }
      let after: number;
      switch (position?.type) {
        case 'LATEST': {
          // Resolved to the newest sequence number ever assigned: `next` continues after this call.
          const last = this.statement("SELECT seq FROM sqlite_sequence WHERE name = 'kv_changes'").get() as
            | { seq: number }
            | undefined;
          return {
            records: [],
            next: { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: String(last?.seq ?? 0) },
          };
        }
        case 'TRIM_HORIZON':
          after = 0;
          break;
        case 'AFTER_SEQUENCE_NUMBER': {
          after = this.parseSequence(position.sequenceNumber);
          const trimmed = this.statement('SELECT trimmed_through FROM kv_tables WHERE name = ?').get(
            this.name,
          ) as { trimmed_through: number } | undefined;
          if (trimmed !== undefined && trimmed.trimmed_through > after) {
            throw new SluiceError(
              `kv table "${this.name}": changes after sequence number ${after} are older than the ` +
                `stream's 24-hour retention and were deleted (up to ${trimmed.trimmed_through}); ` +
                'read again from TRIM_HORIZON or LATEST (DynamoDB TrimmedDataAccessException)',
              { code: 'stream_trimmed' },
            );
          }
          break;
        }
        default:
          throw new Error(
            `kv table "${this.name}": unknown stream position ${JSON.stringify(position) ?? String(position)}`,
          );
      }
      const rows = this.statement(
        `SELECT seq, event_name, keys, old_image, new_image, created_at FROM kv_changes
         WHERE table_name = ? AND seq > ? ORDER BY seq LIMIT ?`,
      ).all(this.name, after, limit) as ChangeRow[];
      const records = rows.map(toChangeRecord);
      const last = records.at(-1);
      return {
        records,
        next: last ? { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: last.sequenceNumber } : position,
      };
    })();
  }

  async query(
    hashValue: KeyValue,
    options: PageOptions & { range?: RangeCondition; descending?: boolean } = {},
  ): Promise<Page> {
    const hash = this.keyValue(this.keySchema.hashKey, hashValue, 'query');
    const limit = pageLimit(this.name, options.limit);
    const where = ['table_name = ?', 'hash_key = ?'];
    const params: unknown[] = [this.name, hash];
    if (options.range !== undefined) this.rangeClause(options.range, where, params);
    if (options.cursor !== undefined) {
      const last = this.decodeCursor(options.cursor, 'q');
      where.push(options.descending ? 'range_key < ?' : 'range_key > ?');
      params.push(last[0]);
    }
    const order = options.descending ? 'DESC' : 'ASC';
    const rows = this.statement(
      `SELECT range_key, item FROM kv_items WHERE ${where.join(' AND ')} ORDER BY range_key ${order} LIMIT ?`,
    ).all(...params, limit + 1) as RangeRow[];
    const page = rows.slice(0, limit);
    const items = page.map((row) => JSON.parse(row.item) as Item);
    const last = page.at(-1);
    return rows.length > limit && last ? { items, cursor: encodeCursor(['q', last.range_key]) } : { items };
  }

  async scan(options: PageOptions = {}): Promise<Page> {
    const limit = pageLimit(this.name, options.limit);
    let sql = 'SELECT hash_key, range_key, item FROM kv_items WHERE table_name = ?';
    const params: unknown[] = [this.name];
    if (options.cursor !== undefined) {
      const [hash, range] = this.decodeCursor(options.cursor, 's');
      sql += ' AND (hash_key, range_key) > (?, ?)';
      params.push(hash, range);
    }
    const rows = this.statement(`${sql} ORDER BY hash_key, range_key LIMIT ?`).all(
      ...params,
      limit + 1,
    ) as ScanRow[];
    const page = rows.slice(0, limit);
    const items = page.map((row) => JSON.parse(row.item) as Item);
    const last = page.at(-1);
    return rows.length > limit && last
      ? { items, cursor: encodeCursor(['s', last.hash_key, last.range_key]) }
      : { items };
  }

  /** The stored item's JSON text, or `undefined` when none. */
  private storedJson(hash: KeyValue, range: KeyValue): string | undefined {
    const row = this.statement(
      'SELECT item FROM kv_items WHERE table_name = ? AND hash_key = ? AND range_key = ?',
    ).get(this.name, hash, range) as Row | undefined;
    return row?.item;
  }

  /**
   * Throws {@link ConditionFailedError} unless `condition` holds for the stored item (its JSON
   * text, read in the same transaction).
   */
  private check(
    operation: string,
    condition: Condition,
    hash: KeyValue,
    range: KeyValue,
    storedJson: string | undefined,
  ): void {
    const stored = storedJson === undefined ? undefined : (JSON.parse(storedJson) as Item);
    if (!evaluateCondition(condition, stored)) {
      throw new ConditionFailedError(
        `conditional ${operation} on kv table "${this.name}" failed for key ${this.describeKey(hash, range)}: ` +
          (stored ? 'the stored item does not match the condition' : 'no item is stored'),
      );
    }
  }

  private describeKey(hash: KeyValue, range: KeyValue): string {
    return this.keysJson(hash, range);
  }

  /** The key attributes as a JSON object text: `{"<hash>": ..., "<range>": ...}`. */
  private keysJson(hash: KeyValue, range: KeyValue): string {
    const key: Item = { [this.keySchema.hashKey.name]: hash };
    if (this.keySchema.rangeKey) key[this.keySchema.rangeKey.name] = range;
    return JSON.stringify(key);
  }

  /** A sequence number as the integer it encodes. @throws {Error} when it is not a canonical decimal. */
  private parseSequence(sequenceNumber: unknown): number {
    const value =
      typeof sequenceNumber === 'string' && /^(0|[1-9][0-9]*)$/.test(sequenceNumber)
        ? Number(sequenceNumber)
        : Number.NaN;
    if (!Number.isSafeInteger(value)) {
      throw new Error(
        `kv table "${this.name}": invalid sequence number ${JSON.stringify(sequenceNumber) ?? String(sequenceNumber)}`,
      );
    }
    return value;
  }

  /** The (hash, range) key of an item or key; range is `''` without a range key. @throws {Error} */
  private keyOf(item: Item, what: 'item' | 'key'): [KeyValue, KeyValue] {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      throw new Error(`kv table "${this.name}": ${what} must be a JSON object`);
    }
    const value = (attribute: KeyAttribute): KeyValue => {
      if (!Object.hasOwn(item, attribute.name)) {
        throw new Error(`kv table "${this.name}": ${what} lacks key attribute "${attribute.name}"`);
      }
      return this.keyValue(attribute, item[attribute.name], what);
    };
    const hash = value(this.keySchema.hashKey);
    const range = this.keySchema.rangeKey ? value(this.keySchema.rangeKey) : '';
    return [hash, range];
  }

  /** Checks a key attribute's value against its type (`S` non-empty string, `N` finite number). */
  private keyValue(attribute: KeyAttribute, value: JsonValue | undefined, what: string): KeyValue {
    if (attribute.type === 'S') {
      if (typeof value === 'string' && value.length > 0) return value;
    } else if (typeof value === 'number' && Number.isFinite(value)) {
      return value === 0 ? 0 : value; // DynamoDB numbers have no -0
    }
    const expected = attribute.type === 'S' ? 'a non-empty string (S)' : 'a finite number (N)';
    throw new Error(
      `kv table "${this.name}": key attribute "${attribute.name}" in ${what} must be ${expected}, got ${JSON.stringify(value) ?? String(value)}`,
    );
  }

  private rangeClause(condition: RangeCondition, where: string[], params: unknown[]): void {
    const rangeKey = this.keySchema.rangeKey;
    if (!rangeKey)
      throw new Error(`kv table "${this.name}" has no range key; a range condition cannot apply`);
    const value = (v: KeyValue) => this.keyValue(rangeKey, v, 'range condition');
    switch (condition.op) {
      case 'eq':
      case 'lt':
      case 'le':
      case 'gt':
      case 'ge': {
        const sqlOp = { eq: '=', lt: '<', le: '<=', gt: '>', ge: '>=' }[condition.op];
        where.push(`range_key ${sqlOp} ?`);
        params.push(value(condition.value));
        return;
      }
      case 'between':
        where.push('range_key BETWEEN ? AND ?');
        params.push(value(condition.low), value(condition.high));
        return;
      case 'begins_with': {
        if (rangeKey.type !== 'S') {
          throw new Error(
            `kv table "${this.name}": begins_with needs a string (S) range key; "${rangeKey.name}" is N`,
          );
        }
        if (typeof condition.prefix !== 'string') {
          throw new Error(`kv table "${this.name}": begins_with prefix must be a string`);
        }
        // `>=` lets SQLite seek in the primary key; substr/length count characters, not bytes.
        where.push('range_key >= ?', 'substr(range_key, 1, length(?)) = ?');
        params.push(condition.prefix, condition.prefix, condition.prefix);
        return;
      }
      default:
        throw new Error(
          `kv table "${this.name}": unknown range condition ${JSON.stringify((condition as { op: unknown }).op)}`,
        );
    }
  }

  private decodeCursor(cursor: string, kind: 'q' | 's'): KeyValue[] {
    let decoded: unknown;
    try {
      decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    } catch {
      decoded = undefined;
    }
    const arity = kind === 'q' ? 2 : 3;
    if (
      !Array.isArray(decoded) ||
      decoded.length !== arity ||
      decoded[0] !== kind ||
      !decoded.slice(1).every((v) => typeof v === 'string' || typeof v === 'number')
    ) {
      throw new Error(
        `kv table "${this.name}": invalid ${kind === 'q' ? 'query' : 'scan'} cursor "${cursor}"`,
      );
    }
    return decoded.slice(1) as KeyValue[];
  }

  private statement(sql: string): Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }
}

/** Whether two items' JSON texts hold the same data (attribute order does not matter, as in DynamoDB). */
function sameItem(a: string, b: string): boolean {
  return a === b || jsonEqual(JSON.parse(a) as JsonValue, JSON.parse(b) as JsonValue);
}

/** A `kv_changes` row as a {@link ChangeRecord}. */
function toChangeRecord(row: ChangeRow): ChangeRecord {
  return {
    sequenceNumber: String(row.seq),
    eventName: row.event_name,
    keys: JSON.parse(row.keys) as Item,
    ...(row.old_image === null ? {} : { oldImage: JSON.parse(row.old_image) as Item }),
    ...(row.new_image === null ? {} : { newImage: JSON.parse(row.new_image) as Item }),
    approximateCreationDateTime: row.created_at,
  };
}

function encodeCursor(value: (string | KeyValue)[]): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

function pageLimit(table: string, limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new Error(`kv table "${table}": page limit must be a positive integer, got ${limit}`);
  }
  return limit;
}

/** Rejects malformed condition trees before any lock is taken. @throws {Error} */
function validateCondition(condition: Condition): void {
  switch (condition.op) {
    case 'exists':
    case 'not_exists':
      if (
        condition.attribute !== undefined &&
        (typeof condition.attribute !== 'string' || !condition.attribute)
      ) {
        throw new Error(`condition ${condition.op}: attribute must be a non-empty string`);
      }
      return;
    case 'eq':
    case 'ne':
    case 'lt':
    case 'le':
    case 'gt':
    case 'ge':
      if (typeof condition.attribute !== 'string' || !condition.attribute) {
        throw new Error(`condition ${condition.op}: attribute must be a non-empty string`);
      }
      if (condition.value === undefined) throw new Error(`condition ${condition.op}: value is missing`);
      return;
    case 'and':
    case 'or':
      // DynamoDB's AND/OR are binary operators: an empty list has no expression.
      if (!Array.isArray(condition.conditions) || condition.conditions.length === 0) {
        throw new Error(`condition ${condition.op}: needs at least one condition`);
      }
      condition.conditions.forEach(validateCondition);
      return;
    case 'not':
      validateCondition(condition.condition);
      return;
    default:
      throw new Error(`unknown condition op ${JSON.stringify((condition as { op: unknown }).op)}`);
  }
}

/**
 * Evaluates a {@link Condition} against the stored item (`undefined` when none), as DynamoDB
 * evaluates a `ConditionExpression`: `exists`/`not_exists` test the item or one attribute
 * (an attribute holding `null` exists); `eq` is deep equality; `lt`/`le`/`gt`/`ge` compare
 * numbers numerically and strings by UTF-8 bytes, and are false for other or mixed types;
 * every comparison is false when the attribute is missing, except `ne`, which is `not eq`.
 */
export function evaluateCondition(condition: Condition, item: Item | undefined): boolean {
  switch (condition.op) {
    case 'exists':
      return (
        item !== undefined && (condition.attribute === undefined || Object.hasOwn(item, condition.attribute))
      );
    case 'not_exists':
      return !evaluateCondition({ ...condition, op: 'exists' }, item);
    case 'eq':
    case 'ne': {
      const present = item !== undefined && Object.hasOwn(item, condition.attribute);
      const equal = present && jsonEqual(item[condition.attribute] as JsonValue, condition.value);
      return condition.op === 'eq' ? equal : !equal;
    }
    case 'lt':
    case 'le':
    case 'gt':
    case 'ge': {
      if (item === undefined || !Object.hasOwn(item, condition.attribute)) return false;
      const order = compareScalars(item[condition.attribute] as JsonValue, condition.value);
      if (order === undefined) return false;
      if (condition.op === 'lt') return order < 0;
      if (condition.op === 'le') return order <= 0;
      if (condition.op === 'gt') return order > 0;
      return order >= 0;
    }
    case 'and':
      return condition.conditions.every((c) => evaluateCondition(c, item));
    case 'or':
      return condition.conditions.some((c) => evaluateCondition(c, item));
    case 'not':
      return !evaluateCondition(condition.condition, item);
    default:
      throw new Error(`unknown condition op ${JSON.stringify((condition as { op: unknown }).op)}`);
  }
}

/** Order of two numbers or two strings (UTF-8 byte order); `undefined` for other or mixed types. */
function compareScalars(a: JsonValue, b: JsonValue): number | undefined {
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'string' && typeof b === 'string') return compareUtf8(a, b);
  return undefined;
}

/** Compares strings by their UTF-8 bytes, which is code point order (not UTF-16 code unit order). */
export function compareUtf8(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++; // both are the same astral code point: skip its low surrogate
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** Deep equality of JSON values; object key order does not matter (DynamoDB maps). */
function jsonEqual(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]!))
    );
  }
  const keys = Object.keys(a);
  return (
    keys.length === Object.keys(b).length &&
    keys.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k] as JsonValue, b[k] as JsonValue))
  );
}
