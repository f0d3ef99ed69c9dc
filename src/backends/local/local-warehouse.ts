import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFromStdin } from 'pg-copy-streams';
import type { ObjectRef } from '../../core/layer.ts';
import { formatRef } from '../../core/layer.ts';
import type { ObjectStore } from '../../core/ports/object-store.ts';
import type { QueryResult, ResultColumn, SqlValue } from '../../core/ports/query-engine.ts';
import {
  type Warehouse,
  WarehouseError,
  type WarehouseTransaction,
  type WarehouseValue,
} from '../../core/ports/warehouse.ts';
import { assertCopyTarget } from '../../core/warehouse-rules.ts';

/** Options of {@link LocalWarehouse.open}. */
export interface LocalWarehouseOptions {
  /** `postgresql://user:password@host:port/database` (never logged or put in messages). */
  readonly connectionString: string;
  /** Where {@link WarehouseTransaction.copyFrom} reads its staging objects. */
  readonly objectStore: ObjectStore;
  /** Most connections held at once (default 10). */
  readonly maxConnections?: number;
  /** Runs after the pool is closed by {@link LocalWarehouse.close}. */
  readonly onClose?: () => Promise<void>;
}

/**
 * The warehouse port on PostgreSQL through a `pg` connection pool: the local backend's warehouse
 * (the server of `<home>/warehouse/`, see postgres-server.ts, or any server at `$SLUICE_WAREHOUSE_URL`).
 *
 * - Every statement goes through the extended query protocol: one statement per call, as the Redshift
 *   Data API's ExecuteStatement takes, and `$1` parameters.
 * - Sessions run with `TimeZone` UTC and `DateStyle` ISO; connections are named `sluice/<pid>`
 *   (`application_name`), which is how a closing backend sees other sluice processes on its server.
 * - Values ({@link SqlValue}, as the query engine returns them): `int8` as a number within ±(2^53 - 1),
 *   else an exact `bigint`; `int2`/`int4`/`float4`/`float8` numbers; `numeric` the exact decimal text;
 *   `timestamp`/`timestamptz` ISO-8601 UTC with milliseconds (`2024-01-01T00:00:00.000Z`; microseconds are
 *   cut); `date` `YYYY-MM-DD`; `json`/`jsonb` parsed; `bytea` base64; `interval`, `time` and unknown types
 *   their text. Result column types are PostgreSQL's `pg_type.typname` (`int8`, `varchar`, `float4`,
 *   `timestamp`), the names the Redshift Data API's `ColumnMetadata.typeName` uses.
 * - Parameters: `Date` is sent as ISO-8601 UTC text, `bigint` exactly.
 * - Errors are {@link WarehouseError}s carrying the SQLSTATE; connection failures are `08001`/`08006`
 *   (retryable).
 */
export class LocalWarehouse implements Warehouse {
  readonly engine = 'postgres' as const;
  private closed = false;
  private readonly typeNames = new Map<number, string>(TYPE_NAMES);

  private constructor(
    private readonly pool: pg.Pool,
    private readonly options: LocalWarehouseOptions,
  ) {}

  /**
   * Connects (one connection is opened at once, so a wrong URL or a stopped server fails here).
   * @throws {WarehouseError} `08001` when the server cannot be reached or refuses the login.
   */
  static async open(options: LocalWarehouseOptions): Promise<LocalWarehouse> {
    const pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.maxConnections ?? 10,
      // One idle connection is kept (min 1), so this process stays visible to a closing backend.
      min: 1,
      idleTimeoutMillis: 30_000,
      allowExitOnIdle: true,
      application_name: `sluice/${process.pid}`,
      // Session settings at connection start (no extra round trip): timestamps come back in UTC, ISO.
      options: '-c TimeZone=UTC -c DateStyle=ISO',
      types: { getTypeParser: typeParser as pg.CustomTypesConfig['getTypeParser'] },
    });
    // Idle connections that break (the server was stopped) must not crash the process: the next
    // statement opens a new connection or fails with a retryable 08xxx error.
    pool.on('error', () => {});
    const warehouse = new LocalWarehouse(pool, options);
    try {
      const client = await pool.connect();
      client.release();
    } catch (error) {
      await pool.end().catch(() => {});
      throw toWarehouseError(error, { connecting: true });
    }
    return warehouse;
  }

  /** {@inheritDoc Warehouse.execute} */
  async execute(sql: string, params: readonly WarehouseValue[] = []): Promise<{ readonly rowCount: number }> {
    this.assertOpen();
    const result = await run(this.pool, sql, params);
    return { rowCount: result.rowCount ?? 0 };
  }

  /**
   * {@inheritDoc Warehouse.query}
   * With `maxRows`, a `SELECT`/`WITH`/`VALUES`/`TABLE` statement is read through a cursor, so only
   * `maxRows + 1` rows ever leave the server; other statements are run and their rows cut.
   */
  async query(
    sql: string,
    params: readonly WarehouseValue[] = [],
    options: { readonly maxRows?: number } = {},
  ): Promise<QueryResult> {
    this.assertOpen();
    const maxRows = options.maxRows;
    if (maxRows === undefined) return this.toResult(await run(this.pool, sql, params));
    if (/^\s*(select|with|values|table)\b/i.test(sql)) {
      const viaCursor = await this.queryWithCursor(sql, params, maxRows);
      if (viaCursor) return viaCursor;
    }
    return this.toResult(await run(this.pool, sql, params), maxRows);
  }

  /** {@inheritDoc Warehouse.transaction} */
  async transaction<T>(work: (tx: WarehouseTransaction) => Promise<T>): Promise<T> {
    this.assertOpen();
    const client = await connect(this.pool);
    let broken: Error | undefined;
    try {
      await run(client, 'BEGIN', []);
      const tx = new LocalWarehouseTransaction(client, this.options.objectStore, (result) =>
        this.toResult(result),
      );
      let value: T;
      try {
        value = await work(tx);
      } catch (error) {
        tx.finished = true;
        try {
          await client.query('ROLLBACK');
        } catch (rollbackError) {
          broken = rollbackError as Error;
        }
        throw error;
      }
      tx.finished = true;
      const commit = await run(client, 'COMMIT', []);
      // PostgreSQL answers COMMIT of a failed transaction with ROLLBACK, without an error.
      if (commit.command === 'ROLLBACK') {
        throw new WarehouseError(
          'the transaction was rolled back at COMMIT: a statement in it failed (its error was caught)',
          { sqlState: '25P02' },
        );
      }
      return value;
    } catch (error) {
      if (isConnectionError(error)) broken = error as Error;
      throw error;
    } finally {
      client.release(broken);
    }
  }

  /** Closes the pool (waits for checked-out connections to be released), then runs `onClose`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.pool.end();
    } finally {
      await this.options.onClose?.();
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new WarehouseError('the warehouse connection is closed');
  }

  /** `DECLARE ... CURSOR` + `FETCH maxRows + 1`; `undefined` when the statement cannot be a cursor. */
  private async queryWithCursor(
    sql: string,
    params: readonly WarehouseValue[],
    maxRows: number,
  ): Promise<QueryResult | undefined> {
    const client = await connect(this.pool);
    let broken: Error | undefined;
    try {
      await run(client, 'BEGIN', []);
      try {
        await run(client, `DECLARE sluice_rows NO SCROLL CURSOR FOR ${stripSemicolons(sql)}`, params);
      } catch (error) {
        await run(client, 'ROLLBACK', []);
        if (isConnectionError(error)) throw error;
        // e.g. a data-modifying WITH: run it as a plain statement (which reports a real error itself).
        return undefined;
      }
      try {
        const fetched = await run(
          client,
          `FETCH FORWARD ${Math.max(0, Math.floor(maxRows)) + 1} FROM sluice_rows`,
          [],
        );
        await run(client, 'COMMIT', []);
        return this.toResult(fetched, maxRows);
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      }
    } catch (error) {
      if (isConnectionError(error)) broken = error as Error;
      throw error;
    } finally {
      client.release(broken);
    }
  }

  private async toResult(result: pg.QueryResult, maxRows?: number): Promise<QueryResult> {
    const fields = result.fields ?? [];
    const unknown = fields.map((f) => f.dataTypeID).filter((oid) => !this.typeNames.has(oid));
    if (unknown.length > 0) {
      try {
        const found = await this.pool.query<{ oid: number; typname: string }>(
          'SELECT oid::int AS oid, typname FROM pg_type WHERE oid = ANY($1::oid[])',
          [unknown],
        );
        for (const row of found.rows) this.typeNames.set(row.oid, row.typname);
      } catch {
        // names stay `oid:<n>`
      }
    }
    const columns: ResultColumn[] = fields.map((f) => ({
      name: f.name,
      type: this.typeNames.get(f.dataTypeID) ?? `oid:${f.dataTypeID}`,
    }));
    const all = (result.rows ?? []) as Record<string, unknown>[];
    const truncated = maxRows !== undefined && all.length > maxRows;
    const kept = truncated ? all.slice(0, maxRows) : all;
    const rows = kept.map((row) => {
      const out: Record<string, SqlValue> = {};
      for (const [key, value] of Object.entries(row)) out[key] = normalize(value);
      return out;
    });
    return { columns, rows, truncated };
  }
}

/** One transaction's statements on its dedicated connection. */
class LocalWarehouseTransaction implements WarehouseTransaction {
  /** Set when the transaction ended; later calls fail. */
  finished = false;

  constructor(
    private readonly client: pg.PoolClient,
    private readonly objectStore: ObjectStore,
    private readonly toResult: (result: pg.QueryResult) => Promise<QueryResult>,
  ) {}

  async execute(sql: string, params: readonly WarehouseValue[] = []): Promise<{ readonly rowCount: number }> {
    this.assertActive();
    const result = await run(this.client, sql, params);
    return { rowCount: result.rowCount ?? 0 };
  }

  async query(sql: string, params: readonly WarehouseValue[] = []): Promise<QueryResult> {
    this.assertActive();
    return this.toResult(await run(this.client, sql, params));
  }

  /**
   * {@inheritDoc WarehouseTransaction.copyFrom}
   * Streams the object's bytes as they are read (`COPY ... FROM STDIN WITH (FORMAT csv)`): no row is
   * parsed or held in this process. `table` is `name`, `schema.name` (unquoted identifiers fold to
   * lower case, as in every other statement) or double-quoted parts; columns likewise.
   * @throws {WarehouseError} with the server's SQLSTATE and the object's line it rejected (`58P01`
   *   when the object does not exist).
   */
  async copyFrom(table: string, columns: readonly string[], source: ObjectRef): Promise<number> {
    this.assertActive();
    assertCopyTarget(table, columns);
    const sql = `COPY ${table} (${columns.join(', ')}) FROM STDIN WITH (FORMAT csv)`;
    let input: Readable;
    try {
      input = await this.objectStore.get(source);
    } catch (error) {
      // As Redshift's COPY from a missing S3 key: a warehouse error (58P01 undefined_file).
      throw new WarehouseError(`COPY into ${table}: ${(error as Error).message}`, {
        sqlState: '58P01',
        cause: error,
      });
    }
    const copy = this.client.query(copyFromStdin(sql, { highWaterMark: 1 << 20 }));
    try {
      await pipeline(input, rechunk(1 << 20), copy);
    } catch (error) {
      throw await this.copyError(error, table, source);
    }
    return copy.rowCount;
  }

  private async copyError(error: unknown, table: string, source: ObjectRef): Promise<WarehouseError> {
    const base = toWarehouseError(error);
    const where = error instanceof pg.DatabaseError ? error.where : undefined;
    // `COPY t, line 3, column c: "..."`: PostgreSQL counts lines of the input, quoted newlines included.
    const line = Number(/\bline (\d+)/.exec(where ?? '')?.[1]);
    if (!Number.isInteger(line) || line <= 0) {
      return new WarehouseError(`COPY into ${table} from ${formatRef(source)} failed: ${base.message}`, {
        ...(base.sqlState === undefined ? {} : { sqlState: base.sqlState }),
        cause: error,
      });
    }
    return new WarehouseError(
      `COPY into ${table} from ${formatRef(source)} failed at line ${line}: ${base.message}`,
      { ...(base.sqlState === undefined ? {} : { sqlState: base.sqlState }), cause: error },
    );
  }

  private assertActive(): void {
    if (this.finished)
      throw new WarehouseError('the transaction has ended: use the warehouse, not its old tx');
  }
}

/** Type names by OID of the common built-in types (`pg_type.typname`); others are looked up. */
const TYPE_NAMES: ReadonlyArray<readonly [number, string]> = [
  [16, 'bool'],
  [17, 'bytea'],
  [18, 'char'],
  [19, 'name'],
  [20, 'int8'],
  [21, 'int2'],
  [23, 'int4'],
  [25, 'text'],
  [26, 'oid'],
  [114, 'json'],
  [700, 'float4'],
  [701, 'float8'],
  [1042, 'bpchar'],
  [1043, 'varchar'],
  [1082, 'date'],
  [1083, 'time'],
  [1114, 'timestamp'],
  [1184, 'timestamptz'],
  [1186, 'interval'],
  [1266, 'timetz'],
  [1700, 'numeric'],
  [2950, 'uuid'],
  [3802, 'jsonb'],
];

const TEXT = (value: string) => value;

/** Text-format parsers: see {@link LocalWarehouse} for the mapping. */
function typeParser(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
  if (format === 'binary') return pg.types.getTypeParser(oid, 'binary');
  switch (oid) {
    case 20:
      return parseInt8;
    case 1114:
    case 1184:
      return parseTimestamp;
    case 1082: // date
    case 1083: // time
    case 1266: // timetz
    case 1186: // interval
    case 1700: // numeric
      return TEXT;
    case 17: {
      const bytea = pg.types.getTypeParser(17, 'text') as (value: string) => Buffer;
      return (value) => bytea(value).toString('base64');
    }
    default:
      return pg.types.getTypeParser(oid, 'text') as (value: string) => unknown;
  }
}

/** `int8` text: a number within ±(2^53 - 1), else an exact bigint. */
function parseInt8(text: string): number | bigint {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : BigInt(text);
}

const TIMESTAMP =
  /^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:([+-]\d\d)(?::?(\d\d))?(?::?(\d\d))?)?$/;

/**
 * `timestamp` / `timestamptz` text (DateStyle ISO) as ISO-8601 UTC with milliseconds. A `timestamp`
 * (no zone) is taken as UTC, as Redshift and the query engine do. `infinity` and BC dates stay text.
 */
function parseTimestamp(text: string): string {
  const m = TIMESTAMP.exec(text);
  if (!m) return text;
  const [, y, mo, d, h, mi, s, frac, offH, offM, offS] = m;
  const ms = (frac ?? '').padEnd(3, '0').slice(0, 3);
  const wall = `${y}-${mo}-${d}T${h}:${mi}:${s}.${ms}`;
  const offsetSeconds =
    offH === undefined
      ? 0
      : Math.sign(Number(`${offH}1`)) *
        (Math.abs(Number(offH)) * 3600 + Number(offM ?? 0) * 60 + Number(offS ?? 0));
  if (offsetSeconds === 0 && (y ?? '').length === 4) return `${wall}Z`;
  const date = new Date(`${wall}Z`);
  if (Number.isNaN(date.getTime())) return text;
  return new Date(date.getTime() - offsetSeconds * 1000).toISOString();
}

/** Values the type parsers left as objects (arrays of dates, buffers) as {@link SqlValue}s. */
function normalize(value: unknown): SqlValue {
  if (value === null || value === undefined) return null;
  if (typeof value !== 'object') return value as SqlValue;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) return value.map(normalize);
  return value as SqlValue;
}

/** Parameters as `pg` sends them: `Date` as ISO-8601 UTC (pg would send local time), bigint exact. */
function toParam(value: WarehouseValue): unknown {
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'bigint') return value.toString();
  return value;
}

function stripSemicolons(sql: string): string {
  return sql.replace(/[\s;]+$/, '');
}

/** One statement through the extended protocol (one statement per call, as on Redshift), errors mapped. */
async function run(
  target: pg.Pool | pg.PoolClient,
  sql: string,
  params: readonly WarehouseValue[],
): Promise<pg.QueryResult> {
  try {
    return await target.query({
      text: sql,
      values: params.map(toParam),
      queryMode: 'extended',
    } as pg.QueryConfig);
  } catch (error) {
    throw toWarehouseError(error);
  }
}

async function connect(pool: pg.Pool): Promise<pg.PoolClient> {
  try {
    return await pool.connect();
  } catch (error) {
    throw toWarehouseError(error, { connecting: true });
  }
}

const CONNECTION_CODES: Readonly<Record<string, string>> = {
  ECONNREFUSED: '08001',
  ENOTFOUND: '08001',
  EHOSTUNREACH: '08001',
  ETIMEDOUT: '08001',
  ECONNRESET: '08006',
  EPIPE: '08006',
};

function isConnectionError(error: unknown): boolean {
  const state = error instanceof WarehouseError ? error.sqlState : (error as { code?: string })?.code;
  return (
    (typeof state === 'string' && (state.startsWith('08') || state.startsWith('57P'))) ||
    (error instanceof Error && /Connection terminated/i.test(error.message))
  );
}

/**
 * A `pg` error as a {@link WarehouseError}: the server's message with its detail, hint and position,
 * and its SQLSTATE; socket errors as `08001` (cannot connect) or `08006` (connection lost).
 */
export function toWarehouseError(error: unknown, context: { connecting?: boolean } = {}): WarehouseError {
  if (error instanceof WarehouseError) return error;
  if (error instanceof pg.DatabaseError) {
    const parts = [error.message];
    if (error.detail) parts.push(error.detail);
    if (error.hint) parts.push(`hint: ${error.hint}`);
    if (error.position) parts.push(`at character ${error.position}`);
    return new WarehouseError(parts.join('; '), {
      ...(error.code === undefined ? {} : { sqlState: error.code }),
      cause: error,
    });
  }
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  const socketState = code === undefined ? undefined : CONNECTION_CODES[code];
  if (socketState !== undefined || /Connection terminated|connection timeout/i.test(message)) {
    const state = socketState ?? (context.connecting ? '08001' : '08006');
    return new WarehouseError(
      context.connecting || state === '08001'
        ? `cannot connect to the warehouse: ${message} (is it running? \`sluice warehouse status\`)`
        : `lost the connection to the warehouse: ${message}`,
      { sqlState: state, cause: error },
    );
  }
  return new WarehouseError(message, { cause: error });
}

/** Regroups a byte stream into chunks of at least `size` bytes (one CopyData message each). */
function rechunk(size: number): (source: AsyncIterable<Buffer | string>) => AsyncGenerator<Buffer> {
  return async function* (source) {
    let parts: Buffer[] = [];
    let length = 0;
    for await (const chunk of source) {
      const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      parts.push(buffer);
      length += buffer.length;
      if (length >= size) {
        yield parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, length);
        parts = [];
        length = 0;
      }
    }
    if (length > 0) yield Buffer.concat(parts, length);
  };
}
