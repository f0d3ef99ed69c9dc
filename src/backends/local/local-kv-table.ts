import { ConditionFailedError } from '../../core/errors.ts';
import type {
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
} from '../../core/ports/kv-table.ts';
import { type Database, type Migration, migrate, type Statement } from './sqlite.ts';

/** Items per page of {@link KvTable.query} and {@link KvTable.scan} when no `limit` is given. */
export const DEFAULT_PAGE_SIZE = 1000;

/**
 * Schema of the key-value module. Key columns are `ANY` in a STRICT table, so SQLite keeps each
 * value's type as bound: numbers compare numerically, text with the BINARY collation, i.e. by
 * UTF-8 bytes, which is DynamoDB's order for `N` and `S` keys. Tables without a range key store
 * `''` as range key.
 */
const MIGRATIONS: readonly Migration[] = [
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
];

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
 * The constructor creates the schema when missing (idempotent; see {@link migrate}).
 */
export class LocalKvStore implements KvStore {
  readonly capabilities: KvStoreCapabilities = { conditionalWrites: true };
  private readonly tables = new Map<string, LocalKvTable>();

  constructor(private readonly db: Database) {
    migrate(db, 'kv', MIGRATIONS);
  }

  /**
   * Opens table `name`, registering it with `keySchema` on first use (DynamoDB `CreateTable`).
   * @throws {Error} when the table is registered with a different key schema, or when the name
   *   or schema is malformed.
   */
  async table(name: string, keySchema: KeySchema): Promise<KvTable> {
    if (typeof name !== 'string' || name.length === 0)
      throw new Error('kv table name must be a non-empty string');
    const schema = canonicalSchema(name, keySchema);
    const wanted = JSON.stringify(schema);
    const cached = this.tables.get(name);
    if (cached && JSON.stringify(cached.keySchema) === wanted) return cached;

    const select = this.db
      .prepare<[string], string>('SELECT key_schema FROM kv_tables WHERE name = ?')
      .pluck();
    let stored = select.get(name);
    if (stored === undefined) {
      stored = this.db
        .transaction(() => {
          const raced = select.get(name);
          if (raced !== undefined) return raced;
          this.db
            .prepare('INSERT INTO kv_tables (name, key_schema, created_at) VALUES (?, ?, ?)')
            .run(name, wanted, new Date().toISOString());
          return wanted;
        })
        .immediate();
    }
    if (stored !== wanted) {
      throw new Error(
        `kv table "${name}" exists with key schema ${describeSchema(JSON.parse(stored) as KeySchema)}, ` +
          `but was opened with ${describeSchema(schema)}`,
      );
    }
    const table = new LocalKvTable(this.db, name, schema);
    this.tables.set(name, table);
    return table;
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

/** One table of {@link LocalKvStore}; see {@link KvTable}. */
class LocalKvTable implements KvTable {
  private readonly statements = new Map<string, Statement>();

  constructor(
    private readonly db: Database,
    readonly name: string,
    readonly keySchema: KeySchema,
  ) {}

  async get(key: Item): Promise<Item | undefined> {
    const [hash, range] = this.keyOf(key, 'key');
    const row = this.statement(
      'SELECT item FROM kv_items WHERE table_name = ? AND hash_key = ? AND range_key = ?',
    ).get(this.name, hash, range) as Row | undefined;
    return row ? (JSON.parse(row.item) as Item) : undefined;
  }

  async put(item: Item, options: { condition?: Condition } = {}): Promise<void> {
    const [hash, range] = this.keyOf(item, 'item');
    const json = JSON.stringify(item);
    const upsert = this.statement(
      `INSERT INTO kv_items (table_name, hash_key, range_key, item) VALUES (?, ?, ?, ?)
       ON CONFLICT (table_name, hash_key, range_key) DO UPDATE SET item = excluded.item`,
    );
    const condition = options.condition;
    if (condition === undefined) {
      upsert.run(this.name, hash, range, json);
      return;
    }
    validateCondition(condition);
    this.db
      .transaction(() => {
        this.check('put', condition, hash, range);
        upsert.run(this.name, hash, range, json);
      })
      .immediate();
  }

  async delete(key: Item, options: { condition?: Condition } = {}): Promise<void> {
    const [hash, range] = this.keyOf(key, 'key');
    const remove = this.statement(
      'DELETE FROM kv_items WHERE table_name = ? AND hash_key = ? AND range_key = ?',
    );
    const condition = options.condition;
    if (condition === undefined) {
      remove.run(this.name, hash, range);
      return;
    }
    validateCondition(condition);
    this.db
      .transaction(() => {
        this.check('delete', condition, hash, range);
        remove.run(this.name, hash, range);
      })
      .immediate();
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

  /** Throws {@link ConditionFailedError} unless `condition` holds for the stored item (call in a transaction). */
  private check(operation: string, condition: Condition, hash: KeyValue, range: KeyValue): void {
    const row = this.statement(
      'SELECT item FROM kv_items WHERE table_name = ? AND hash_key = ? AND range_key = ?',
    ).get(this.name, hash, range) as Row | undefined;
    const stored = row ? (JSON.parse(row.item) as Item) : undefined;
    if (!evaluateCondition(condition, stored)) {
      throw new ConditionFailedError(
        `conditional ${operation} on kv table "${this.name}" failed for key ${this.describeKey(hash, range)}: ` +
          (stored ? 'the stored item does not match the condition' : 'no item is stored'),
      );
    }
  }

  private describeKey(hash: KeyValue, range: KeyValue): string {
    const key: Item = { [this.keySchema.hashKey.name]: hash };
    if (this.keySchema.rangeKey) key[this.keySchema.rangeKey.name] = range;
    return JSON.stringify(key);
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
