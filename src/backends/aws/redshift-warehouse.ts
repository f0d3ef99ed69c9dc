/**
 * The warehouse port on Amazon Redshift (Serverless or provisioned) through the Redshift Data API:
 * the aws backend's {@link Warehouse}. docs/warehouse.md ("AWS backend: Redshift Data API") designs
 * the mapping; this file is its implementation. Not run against AWS: tested offline with
 * test/helpers/fake-redshift-data.ts (aws-sdk-client-mock in front of a real PostgreSQL).
 *
 * API reference: https://docs.aws.amazon.com/redshift-data/latest/APIReference/Welcome.html
 */
import {
  BatchExecuteStatementCommand,
  type BatchExecuteStatementInput,
  type ColumnMetadata,
  DescribeStatementCommand,
  type DescribeStatementResponse,
  ExecuteStatementCommand,
  type ExecuteStatementInput,
  type Field,
  GetStatementResultCommand,
  type GetStatementResultResponse,
  type RedshiftDataClient,
  type SqlParameter,
} from '@aws-sdk/client-redshift-data';
import { type Clock, systemClock } from '../../core/clock.ts';
import { formatRef, type Layer, type ObjectRef } from '../../core/layer.ts';
import type { QueryResult, ResultColumn, SqlValue } from '../../core/ports/query-engine.ts';
import {
  type Warehouse,
  WarehouseError,
  type WarehouseTransaction,
  type WarehouseValue,
} from '../../core/ports/warehouse.ts';
import { assertCopyTarget } from '../../core/warehouse-rules.ts';

/** Options of {@link RedshiftDataWarehouse}. */
export interface RedshiftDataWarehouseOptions {
  /** Redshift Serverless workgroup name or ARN (`WorkgroupName` of every request that opens a connection). */
  readonly workgroupName: string;
  /** Database name (`Database`). */
  readonly database: string;
  /** IAM role the warehouse assumes to read the staging bucket in `COPY ... IAM_ROLE '<arn>'`. */
  readonly copyRoleArn: string;
  /** One S3 bucket per lake layer: `copyFrom({ layer, key })` reads `s3://<buckets[layer]>/<key>`. */
  readonly buckets: Readonly<Record<Layer, string>>;
  /** First wait between `DescribeStatement` polls in ms (default 100); doubles up to {@link MAX_POLL_MS}. */
  readonly pollMs?: number;
  /**
   * `SessionKeepAliveSeconds` of a transaction's session (default 300, at most 86,400): how long an idle
   * session, and so an open transaction whose process died, lives after its last statement finished.
   */
  readonly sessionKeepAliveSeconds?: number;
  /** Clock used for the waits between polls and retries (default {@link systemClock}). */
  readonly clock?: Clock;
  /** Attempts of a request refused by throttling or the active-statement limits (default 5). */
  readonly attempts?: number;
}

/** Longest wait between two `DescribeStatement` polls, in ms. */
export const MAX_POLL_MS = 2_000;

/** One statement of {@link RedshiftDataWarehouse.batch}. */
export interface BatchStatement {
  readonly sql: string;
  readonly params?: readonly WarehouseValue[];
}

/**
 * {@link Warehouse} on the Redshift Data API. Every request names `WorkgroupName` + `Database`
 * (temporary IAM credentials of the caller's role: `redshift-serverless:GetCredentials`); credentials
 * come only from the SDK's default chain.
 *
 * - `execute` / `query`: `ExecuteStatement` (one statement), `DescribeStatement` polled with backoff
 *   (`pollMs`, doubling up to {@link MAX_POLL_MS}) until `FINISHED`, `FAILED` or `ABORTED`;
 *   `rowCount` = `ResultRows` (0 when absent or -1). Rows: `GetStatementResult` pages (`NextToken`)
 *   until all are read, or `maxRows + 1` (the rest is never fetched; results expire after 24 h).
 * - Parameters: `$1`..`$n` are rewritten to `:p1`..`:pn` (outside string literals, quoted identifiers,
 *   comments and dollar quotes) with `SqlParameter` values as text ({@link toDataApiSql}). The API
 *   refuses empty values, so `NULL` and `''` are written into the SQL instead.
 * - Values ({@link fieldValue}): by `ColumnMetadata.typeName`: `int2/int4/int8` numbers, beyond
 *   ±(2^53 - 1) exact `bigint`s (see {@link installExactLongValues}); `float4/float8` numbers;
 *   `numeric` exact text; `bool`; `timestamp`/`timestamptz` ISO-8601 UTC with ms; `date` text;
 *   `super`/`json` parsed; `blobValue` base64.
 * - `transaction(work)`: a Data API session (`SessionKeepAliveSeconds` on `BEGIN`, then `SessionId`
 *   alone on every later statement, one at a time), so reads inside `work` see its uncommitted writes:
 *   `BEGIN`, the statements, then `COMMIT`; `ROLLBACK` when `work` throws or any statement in it
 *   failed (then a `25P02` error is thrown even if `work` caught the failure). A process that dies
 *   mid-transaction leaves the session to expire after its keep-alive: Redshift rolls it back.
 *   Sessions are not reused (a workgroup allows 500 at once).
 * - `tx.copyFrom`: `COPY t (c1, ...) FROM 's3://<bucket>/<key>' IAM_ROLE '<copyRoleArn>' FORMAT AS CSV
 *   EMPTYASNULL` in the session ({@link copyStatement}); rows copied from `ResultRows`. Redshift reports
 *   only `Load into table 't' failed`: the adapter then reads `SYS_LOAD_ERROR_DETAIL` for the query and
 *   names the line, column and reason.
 * - Errors: `DescribeStatement.Error` text becomes a {@link WarehouseError}; its `sqlState` is an
 *   explicit SQLSTATE in the text when there is one, else derived from Redshift's message
 *   ({@link sqlStateOf}). Throttling (`ThrottlingException`, `ActiveStatementsExceededException`,
 *   `ActiveSessionsExceededException`) is retried `attempts` times, then thrown with `57P03`
 *   (retryable); network failures and 5xx are `08006` (retryable).
 */
export class RedshiftDataWarehouse implements Warehouse {
  readonly engine = 'redshift' as const;
  private closed = false;
  private readonly clock: Clock;
  private readonly pollMs: number;
  private readonly keepAlive: number;
  private readonly attempts: number;

  /**
   * @param client a Redshift Data API client; {@link installExactLongValues} is added to its middleware
   *   stack (once) so 64-bit integers stay exact.
   * @throws {WarehouseError} when an option is out of range.
   */
  constructor(
    private readonly client: RedshiftDataClient,
    private readonly options: RedshiftDataWarehouseOptions,
  ) {
    this.clock = options.clock ?? systemClock;
    this.pollMs = options.pollMs ?? 100;
    this.keepAlive = options.sessionKeepAliveSeconds ?? 300;
    this.attempts = options.attempts ?? 5;
    if (!Number.isFinite(this.pollMs) || this.pollMs < 0) {
      throw new WarehouseError(`pollMs must be a number of ms >= 0, got ${this.pollMs}`);
    }
    if (!Number.isInteger(this.keepAlive) || this.keepAlive < 1 || this.keepAlive > 86_400) {
      throw new WarehouseError(`sessionKeepAliveSeconds must be an integer 1..86400, got ${this.keepAlive}`);
    }
    if (!Number.isInteger(this.attempts) || this.attempts < 1) {
      throw new WarehouseError(`attempts must be an integer >= 1, got ${this.attempts}`);
    }
    installExactLongValues(client);
  }

  /** {@inheritDoc Warehouse.execute} */
  async execute(sql: string, params: readonly WarehouseValue[] = []): Promise<{ readonly rowCount: number }> {
    this.assertOpen();
    const done = await this.run({ ...this.target(), ...statementInput(sql, params) });
    return { rowCount: rowCountOf(done) };
  }

  /** {@inheritDoc Warehouse.query} */
  async query(
    sql: string,
    params: readonly WarehouseValue[] = [],
    options: { readonly maxRows?: number } = {},
  ): Promise<QueryResult> {
    this.assertOpen();
    const done = await this.run({ ...this.target(), ...statementInput(sql, params) });
    return this.results(done, options.maxRows);
  }

  /** {@inheritDoc Warehouse.transaction} */
  async transaction<T>(work: (tx: WarehouseTransaction) => Promise<T>): Promise<T> {
    this.assertOpen();
    const begun = await this.run({
      ...this.target(),
      Sql: 'BEGIN',
      SessionKeepAliveSeconds: this.keepAlive,
    });
    const sessionId = begun.SessionId;
    if (!sessionId) throw new WarehouseError('the Data API returned no SessionId for BEGIN');
    const tx = new RedshiftTransaction(this, sessionId);
    let value: T;
    try {
      value = await work(tx);
    } catch (error) {
      await tx.end('ROLLBACK').catch(() => undefined);
      throw error;
    }
    const failure = tx.failure;
    if (failure !== undefined) {
      await tx.end('ROLLBACK').catch(() => undefined);
      throw new WarehouseError(
        `the transaction was rolled back: a statement in it failed (its error was caught): ${failure.message}`,
        { sqlState: '25P02', cause: failure },
      );
    }
    await tx.end('COMMIT');
    return value;
  }

  /**
   * Runs a fixed list of statements as one `BatchExecuteStatement` (`ExecutionMode` `TRANSACTION`: one
   * transaction, any failure rolls back all), without a session: for loads that need no reads between
   * statements (`DELETE` + `COPY`). `$n` parameters of statement `i` (1-based) become `:s<i>p<n>`
   * batch parameters.
   * @returns the rows each statement affected (`SubStatements[].ResultRows`).
   * @throws {WarehouseError} naming the statement that failed.
   */
  async batch(statements: readonly BatchStatement[]): Promise<number[]> {
    this.assertOpen();
    if (statements.length === 0) return [];
    const sqls: string[] = [];
    const parameters: SqlParameter[] = [];
    statements.forEach((statement, i) => {
      const translated = toDataApiSql(statement.sql, statement.params ?? [], `s${i + 1}p`);
      sqls.push(translated.sql);
      parameters.push(...translated.parameters);
    });
    const input: BatchExecuteStatementInput = {
      ...this.target(),
      Sqls: sqls,
      ...(parameters.length > 0 ? { Parameters: parameters } : {}),
    };
    const id = await this.submit(() => this.client.send(new BatchExecuteStatementCommand(input)));
    const done = await this.wait(id, sqls.join('; '));
    return (done.SubStatements ?? []).map((s) => Math.max(0, s.ResultRows ?? 0));
  }

  /** Nothing to release: the Data API has no connections; open sessions end with their keep-alive. */
  async close(): Promise<void> {
    this.closed = true;
  }

  /** `WorkgroupName` + `Database` of requests outside a session. */
  private target(): { WorkgroupName: string; Database: string } {
    return { WorkgroupName: this.options.workgroupName, Database: this.options.database };
  }

  private assertOpen(): void {
    if (this.closed) throw new WarehouseError('the warehouse is closed');
  }

  /** `ExecuteStatement`, then polls until the statement ends. @internal */
  async run(input: ExecuteStatementInput): Promise<DescribeStatementResponse> {
    const started = await this.submit(() => this.client.send(new ExecuteStatementCommand(input)));
    return this.wait(started, input.Sql ?? '');
  }

  /** Sends a submitting request, retrying throttling; returns the statement id. */
  private async submit(send: () => Promise<{ Id?: string | undefined }>): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        const output = await send();
        if (!output.Id) throw new WarehouseError('the Data API returned no statement Id');
        return output.Id;
      } catch (error) {
        const mapped = apiError(error);
        if (mapped.sqlState !== '57P03' || attempt >= this.attempts) throw mapped;
        await this.clock.sleep(Math.min(MAX_POLL_MS * 4, 200 * 2 ** (attempt - 1)));
      }
    }
  }

  /** Polls `DescribeStatement` with backoff until FINISHED (returned) or FAILED/ABORTED (thrown). */
  private async wait(id: string, sql: string): Promise<DescribeStatementResponse> {
    let delay = this.pollMs;
    for (;;) {
      await this.clock.sleep(delay);
      let described: DescribeStatementResponse;
      try {
        described = await this.client.send(new DescribeStatementCommand({ Id: id }));
      } catch (error) {
        const mapped = apiError(error);
        if (!mapped.retryable) throw mapped;
        delay = Math.min(MAX_POLL_MS, Math.max(delay * 2, 50));
        continue;
      }
      const status = described.Status ?? 'SUBMITTED';
      if (status === 'FINISHED') return described;
      if (status === 'FAILED') throw statementError(described);
      if (status === 'ABORTED') {
        throw new WarehouseError(`the statement was aborted (cancelled): ${shorten(sql)}`, {
          sqlState: '57014',
        });
      }
      // SUBMITTED, PICKED, STARTED: not done yet.
      delay = Math.min(MAX_POLL_MS, Math.max(delay * 2, 1));
    }
  }

  /** Reads a finished statement's rows (`GetStatementResult` pages). @internal */
  async results(done: DescribeStatementResponse, maxRows?: number): Promise<QueryResult> {
    if (!done.HasResultSet) return { columns: [], rows: [], truncated: false };
    const limit = maxRows === undefined ? Number.POSITIVE_INFINITY : Math.max(0, Math.floor(maxRows));
    let metadata: ColumnMetadata[] | undefined;
    const rows: Record<string, SqlValue>[] = [];
    let nextToken: string | undefined;
    let truncated = false;
    do {
      let page: GetStatementResultResponse;
      try {
        page = await this.client.send(
          new GetStatementResultCommand({ Id: done.Id, ...(nextToken ? { NextToken: nextToken } : {}) }),
        );
      } catch (error) {
        throw apiError(error);
      }
      metadata ??= page.ColumnMetadata ?? [];
      for (const record of page.Records ?? []) {
        if (rows.length >= limit) {
          truncated = true;
          break;
        }
        const row: Record<string, SqlValue> = {};
        record.forEach((field, i) => {
          const column = metadata?.[i];
          row[column?.name ?? column?.label ?? `column${i + 1}`] = fieldValue(field, column?.typeName);
        });
        rows.push(row);
      }
      nextToken = page.NextToken;
      if (!truncated && nextToken && rows.length >= limit) truncated = true;
    } while (nextToken && !truncated);
    const columns: ResultColumn[] = (metadata ?? []).map((c, i) => ({
      name: c.name ?? c.label ?? `column${i + 1}`,
      type: c.typeName ?? 'unknown',
    }));
    return { columns, rows, truncated };
  }

  /**
   * The `COPY` statement of {@link WarehouseTransaction.copyFrom}. @internal
   * @throws {WarehouseError} `42602` for a table or column that is not a plain or quoted identifier.
   */
  copyStatement(table: string, columns: readonly string[], source: ObjectRef): string {
    return copyStatement(table, columns, this.s3Uri(source), this.options.copyRoleArn);
  }

  /** `s3://<bucket of the layer>/<key>`. @internal */
  s3Uri(source: ObjectRef): string {
    const bucket = this.options.buckets[source.layer];
    if (!bucket) throw new WarehouseError(`no bucket is configured for layer ${source.layer}`);
    return `s3://${bucket}/${source.key}`;
  }

  /**
   * The first `SYS_LOAD_ERROR_DETAIL` row of a failed COPY (Redshift's load error log, also on
   * Serverless: https://docs.aws.amazon.com/redshift/latest/dg/SYS_LOAD_ERROR_DETAIL.html), read outside
   * the (aborted) session; `undefined` when it cannot be read. @internal
   */
  async loadError(queryId: number): Promise<Record<string, SqlValue> | undefined> {
    try {
      const done = await this.run({
        ...this.target(),
        Sql: `SELECT line_number, trim(column_name) AS column_name, error_code, trim(error_message) AS error_message FROM sys_load_error_detail WHERE query_id = ${Math.trunc(queryId)} ORDER BY line_number LIMIT 1`,
      });
      return (await this.results(done)).rows[0];
    } catch {
      return undefined;
    }
  }
}

/** A transaction's statements in one Data API session, one at a time. */
class RedshiftTransaction implements WarehouseTransaction {
  private finished = false;
  /** The first statement that failed in the session (the transaction is then aborted). */
  failure: WarehouseError | undefined;
  /** The previous statement of the session: statements are chained (a session runs one at a time). */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly warehouse: RedshiftDataWarehouse,
    private readonly sessionId: string,
  ) {}

  async execute(sql: string, params: readonly WarehouseValue[] = []): Promise<{ readonly rowCount: number }> {
    const done = await this.inSession(sql, params);
    return { rowCount: rowCountOf(done) };
  }

  async query(sql: string, params: readonly WarehouseValue[] = []): Promise<QueryResult> {
    const done = await this.inSession(sql, params);
    return this.warehouse.results(done);
  }

  /**
   * {@inheritDoc WarehouseTransaction.copyFrom}
   * `COPY` reads `s3://<bucket>/<key>` itself: note that S3 treats the key as a prefix, so every object
   * whose key starts with it is loaded (keep staging keys free of such siblings).
   */
  async copyFrom(table: string, columns: readonly string[], source: ObjectRef): Promise<number> {
    const sql = this.warehouse.copyStatement(table, columns, source);
    const where = `${formatRef(source)} (${this.warehouse.s3Uri(source)})`;
    try {
      const done = await this.inSession(sql, []);
      return rowCountOf(done);
    } catch (error) {
      if (!(error instanceof WarehouseError)) throw error;
      const queryId = (error as WarehouseError & { queryId?: number }).queryId;
      if (/load into table|stl_load_errors|sys_load_error_detail/i.test(error.message) && queryId) {
        const detail = await this.warehouse.loadError(queryId);
        if (detail) {
          const code = Number(detail.error_code);
          const failure = new WarehouseError(
            `COPY into ${table} from ${where} failed at line ${String(detail.line_number)}, column ${String(detail.column_name)}: ${String(detail.error_message)} (load error ${code})`,
            { sqlState: LOAD_ERROR_STATES[code] ?? '22P04', cause: error },
          );
          this.failure = failure;
          throw failure;
        }
      }
      const failure = new WarehouseError(`COPY into ${table} from ${where} failed: ${error.message}`, {
        ...(error.sqlState === undefined ? {} : { sqlState: error.sqlState }),
        cause: error,
      });
      this.failure = failure;
      throw failure;
    }
  }

  /** Ends the session's transaction (after any statement still running). */
  async end(sql: 'COMMIT' | 'ROLLBACK'): Promise<void> {
    this.finished = true;
    const previous = this.queue;
    const ending = previous
      .catch(() => undefined)
      .then(() => this.warehouse.run({ Sql: sql, SessionId: this.sessionId }));
    this.queue = ending;
    await ending;
  }

  private inSession(sql: string, params: readonly WarehouseValue[]): Promise<DescribeStatementResponse> {
    if (this.finished) {
      return Promise.reject(
        new WarehouseError('the transaction has ended: use the warehouse, not its old tx'),
      );
    }
    const input: ExecuteStatementInput = { ...statementInput(sql, params), SessionId: this.sessionId };
    const next = this.queue
      .catch(() => undefined)
      .then(() => this.warehouse.run(input))
      .catch((error: unknown) => {
        if (error instanceof WarehouseError) this.failure ??= error;
        throw error;
      });
    this.queue = next;
    return next;
  }
}

/** `Sql` and `Parameters` of a statement (no `Parameters` key when there are none). */
function statementInput(
  sql: string,
  params: readonly WarehouseValue[],
): { Sql: string; Parameters?: SqlParameter[] } {
  const translated = toDataApiSql(sql, params);
  return translated.parameters.length > 0
    ? { Sql: translated.sql, Parameters: translated.parameters }
    : { Sql: translated.sql };
}

function rowCountOf(done: DescribeStatementResponse): number {
  const rows = done.ResultRows;
  return rows === undefined || rows < 0 ? 0 : rows;
}

/**
 * Rewrites PostgreSQL-style `$1`..`$n` placeholders into the Data API's named parameters
 * (`:p1`..`:pn`, `SqlParameter { name, value }`:
 * https://docs.aws.amazon.com/redshift/latest/mgmt/data-api-calling.html#data-api-calling-cli-parameters).
 * Placeholders inside `'...'` (with `''`), `E'...'`, `"..."`, `$tag$...$tag$`, `--` and `/* *\/` comments
 * are left alone. Values are text: numbers by `String`, bigints exactly, booleans `true`/`false`, Dates
 * ISO-8601 UTC (`2015-01-01T00:00:00.000Z`). `null` and `''` are written into the SQL as `NULL` / `''`
 * (the API refuses empty values). A placeholder used twice is one parameter.
 * @param prefix parameter name prefix (default `p`).
 * @throws {WarehouseError} `42P02` when a placeholder has no value.
 */
export function toDataApiSql(
  sql: string,
  params: readonly WarehouseValue[],
  prefix = 'p',
): { sql: string; parameters: SqlParameter[] } {
  const parameters: SqlParameter[] = [];
  const used = new Set<number>();
  let out = '';
  let i = 0;
  while (i < sql.length) {
    const c = sql[i] as string;
    const next = sql[i + 1];
    let end = i + 1;
    if (c === "'" || c === '"') {
      end = i + 1;
      while (end < sql.length) {
        if (sql[end] === c) {
          if (sql[end + 1] === c) {
            end += 2;
            continue;
          }
          end++;
          break;
        }
        // E'...' strings may escape quotes with a backslash.
        if (c === "'" && sql[end] === '\\' && /[eE]$/.test(sql.slice(0, i))) end++;
        end++;
      }
    } else if (c === '-' && next === '-') {
      end = sql.indexOf('\n', i);
      end = end < 0 ? sql.length : end;
    } else if (c === '/' && next === '*') {
      end = sql.indexOf('*/', i + 2);
      end = end < 0 ? sql.length : end + 2;
    } else if (c === '$') {
      const placeholder = /^\$(\d+)/.exec(sql.slice(i));
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
      if (placeholder && !/[A-Za-z0-9_]$/.test(out)) {
        const n = Number(placeholder[1]);
        if (n < 1 || n > params.length) {
          throw new WarehouseError(`there is no parameter $${n} (${params.length} given)`, {
            sqlState: '42P02',
          });
        }
        const value = params[n - 1] as WarehouseValue;
        if (value === null || value === '') {
          out += value === null ? 'NULL' : "''";
        } else {
          const name = `${prefix}${n}`;
          if (!used.has(n)) {
            used.add(n);
            parameters.push({ name, value: parameterText(value) });
          }
          out += `:${name}`;
        }
        i += placeholder[0].length;
        continue;
      }
      if (tag) {
        const close = sql.indexOf(tag[0], i + tag[0].length);
        end = close < 0 ? sql.length : close + tag[0].length;
      }
    }
    out += sql.slice(i, end);
    i = end;
  }
  return { sql: out, parameters };
}

/** A parameter value as Data API text. */
function parameterText(value: Exclude<WarehouseValue, null>): string {
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return String(value);
}

/**
 * `COPY <table> (<columns>) FROM '<s3 uri>' IAM_ROLE '<role arn>' FORMAT AS CSV EMPTYASNULL`: the port's
 * CSV (RFC 4180, no header, UTF-8, `"` quotes, `""` inside quotes). Redshift loads an empty field of a
 * non-character column as NULL always, of a CHAR/VARCHAR column only with `EMPTYASNULL`
 * (https://docs.aws.amazon.com/redshift/latest/dg/copy-parameters-data-conversion.html#copy-emptyasnull),
 * so it is always given: an empty unquoted field is NULL as on PostgreSQL. A quoted `""` is an empty
 * string on PostgreSQL but may load as NULL on Redshift with `EMPTYASNULL`: write a value or NULL, never
 * rely on `""`. The S3 URI is a key prefix to Redshift (every object starting with it is loaded).
 * Single quotes in the URI or ARN are doubled.
 * @throws {WarehouseError} `42602` for a table or column that is not a plain or quoted identifier.
 */
export function copyStatement(
  table: string,
  columns: readonly string[],
  s3Uri: string,
  roleArn: string,
): string {
  assertCopyTarget(table, columns);
  const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
  return `COPY ${table} (${columns.join(', ')}) FROM ${literal(s3Uri)} IAM_ROLE ${literal(roleArn)} FORMAT AS CSV EMPTYASNULL`;
}

/**
 * SQLSTATEs of Redshift load error codes (`SYS_LOAD_ERROR_DETAIL.error_code`,
 * https://docs.aws.amazon.com/redshift/latest/dg/r_Load_Error_Reference.html).
 */
const LOAD_ERROR_STATES: Readonly<Record<number, string>> = {
  1201: '22P04', // field delimiter was not found
  1202: '22P04', // more columns than the DDL
  1203: '22P04', // fewer columns than the DDL
  1204: '22003', // value out of the data type's range
  1205: '22007', // date format not valid
  1206: '22007', // timestamp format not valid
  1207: '22P02', // digit outside 0-9
  1208: '22P02', // FLOAT format error
  1209: '22P02', // DECIMAL format error
  1210: '22P02', // BOOLEAN format error
  1211: '22P04', // input line contained no data
  1212: '58P01', // load file was not found
  1213: '23502', // a NOT NULL field contained no data
  1214: '22P04', // delimiter not found
  1215: '22001', // CHAR field error
  1216: '22P04', // input line is not valid
  1220: '22021', // invalid or unsupported UTF-8
  1221: '22021', // encoding differs from COPY's ENCODING
  1222: '22003', // integer overflow
};

/** Redshift's (and PostgreSQL's) error messages of the SQLSTATEs sluice checks, when no SQLSTATE is given. */
const MESSAGE_STATES: ReadonlyArray<readonly [RegExp, string]> = [
  [/syntax error at or near|syntax error at end of input/i, '42601'],
  [/relation "[^"]*" does not exist|Table "?[^"]*"? does not exist/i, '42P01'],
  [/column "[^"]*" (of relation "[^"]*" )?does not exist|column [^ ]+ does not exist/i, '42703'],
  [/cannot insert a null value into column|null value in column .* violates not-null constraint/i, '23502'],
  [/division by zero/i, '22012'],
  [/current transaction is aborted/i, '25P02'],
  [/serializable isolation violation|could not serialize access/i, '40001'],
  [/deadlock detected/i, '40P01'],
  [/already exists/i, '42P07'],
  [/invalid input syntax/i, '22P02'],
  [/value too long for type/i, '22001'],
  [/permission denied/i, '42501'],
  [/the specified s3 prefix .* does not exist|S3ServiceException.*(NoSuchKey|does not exist)/i, '58P01'],
  [/cannot insert multiple commands into a prepared statement/i, '42601'],
];

/**
 * The SQLSTATE of a Data API error text: an explicit one when the text carries it (`SQLSTATE 42P01`,
 * `[SQLState: 42P01]`, `sqlstate=42P01`), else derived from the message ({@link MESSAGE_STATES}).
 */
export function sqlStateOf(text: string): string | undefined {
  const explicit = /sql\s*state[\s:=[\]]*([0-9A-Z]{5})\b/i.exec(text);
  if (explicit) return explicit[1]?.toUpperCase();
  return MESSAGE_STATES.find(([pattern]) => pattern.test(text))?.[1];
}

/** A FAILED statement as a {@link WarehouseError} carrying Redshift's query id (for load errors). */
function statementError(described: DescribeStatementResponse): WarehouseError {
  const text = (described.Error ?? 'the statement failed without an error message').trim();
  const failedSub = described.SubStatements?.find((s) => s.Status === 'FAILED');
  const message = failedSub?.Error?.trim() || text;
  const state = sqlStateOf(message);
  const error = new WarehouseError(
    `${message.replace(/^ERROR:\s*/, '')}${failedSub ? ` (in: ${shorten(failedSub.QueryString ?? '')})` : ''}`,
    { ...(state === undefined ? {} : { sqlState: state }) },
  );
  const queryId = failedSub?.RedshiftQueryId ?? described.RedshiftQueryId;
  if (queryId !== undefined) Object.defineProperty(error, 'queryId', { value: queryId, enumerable: false });
  return error;
}

function shorten(sql: string): string {
  const flat = sql.replace(/\s+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 197)}...` : flat;
}

const THROTTLING = new Set([
  'ThrottlingException',
  'ActiveStatementsExceededException',
  'ActiveSessionsExceededException',
  'ActiveWaitingRequestsExceededException',
  'TooManyRequestsException',
]);

/**
 * An SDK error as a {@link WarehouseError}: throttling and active-statement limits `57P03` (retryable),
 * network failures and 5xx `08006` (retryable), anything else without a SQLSTATE (message kept).
 */
export function apiError(error: unknown): WarehouseError {
  if (error instanceof WarehouseError) return error;
  const e = error as {
    name?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number };
    code?: string;
  };
  const name = e?.name ?? 'Error';
  const message = `${name}: ${e?.message ?? String(error)}`;
  if (THROTTLING.has(name)) {
    return new WarehouseError(`the Data API is throttling or at its limit: ${message}`, {
      sqlState: '57P03',
      cause: error,
    });
  }
  const status = e?.$metadata?.httpStatusCode;
  if (
    name === 'InternalServerException' ||
    (status !== undefined && status >= 500) ||
    ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND'].includes(e?.code ?? '') ||
    name === 'TimeoutError'
  ) {
    return new WarehouseError(`cannot reach the Redshift Data API: ${message}`, {
      sqlState: '08006',
      cause: error,
    });
  }
  return new WarehouseError(`the Redshift Data API refused the request: ${message}`, { cause: error });
}

/**
 * A `GetStatementResult` field as a {@link SqlValue}, by the column's `typeName`:
 * `isNull` null; `longValue` a number (an `int2/int4/int8` in `stringValue`, as
 * {@link installExactLongValues} rewrites 64-bit values beyond 2^53, an exact `bigint` when unsafe);
 * `doubleValue` a number (`float4/float8` text such as `NaN` too); `booleanValue`; `blobValue` base64;
 * `stringValue` by type: `timestamp`/`timestamptz` ISO-8601 UTC with ms, `super`/`json` parsed when it is
 * JSON, `numeric`, `date`, `varchar` and others as text.
 */
export function fieldValue(field: Field, typeName: string | undefined): SqlValue {
  const f = field as {
    isNull?: boolean;
    longValue?: number;
    doubleValue?: number;
    booleanValue?: boolean;
    stringValue?: string;
    blobValue?: Uint8Array;
  };
  if (f.isNull) return null;
  if (f.longValue !== undefined) return f.longValue;
  if (f.doubleValue !== undefined) return f.doubleValue;
  if (f.booleanValue !== undefined) return f.booleanValue;
  if (f.blobValue !== undefined) return Buffer.from(f.blobValue).toString('base64');
  const text = f.stringValue;
  if (text === undefined) return null;
  switch ((typeName ?? '').toLowerCase()) {
    case 'int2':
    case 'int4':
    case 'int8':
    case 'integer':
    case 'bigint':
    case 'smallint': {
      if (!/^-?\d+$/.test(text.trim())) return text;
      const n = Number(text);
      return Number.isSafeInteger(n) ? n : BigInt(text.trim());
    }
    case 'float4':
    case 'float8':
    case 'real':
    case 'double precision':
      return Number(text);
    case 'bool':
    case 'boolean':
      return text === 'true' || text === 't';
    case 'timestamp':
    case 'timestamptz':
    case 'timestamp without time zone':
    case 'timestamp with time zone':
      return isoTimestamp(text);
    case 'super':
    case 'json':
    case 'jsonb':
      try {
        return JSON.parse(text) as SqlValue;
      } catch {
        return text;
      }
    default:
      return text;
  }
}

const TIMESTAMP =
  /^(\d{4,})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d(?::?\d\d)?(?::?\d\d)?)?$/;

/**
 * Redshift timestamp text (`2024-03-01 12:34:56.789`, `2024-03-01 10:00:00.123+00`) as ISO-8601 UTC
 * with ms; a timestamp without zone is taken as UTC. Other text is returned as is.
 */
export function isoTimestamp(text: string): string {
  const m = TIMESTAMP.exec(text.trim());
  if (!m) return text;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const wall = `${y}-${mo}-${d}T${h}:${mi}:${s}.${(frac ?? '').padEnd(3, '0').slice(0, 3)}`;
  if ((zone === undefined || zone === 'Z' || /^[+-]00(:?00)?(:?00)?$/.test(zone)) && y?.length === 4) {
    return `${wall}Z`;
  }
  const z = /^([+-])(\d\d):?(\d\d)?:?(\d\d)?$/.exec(zone ?? '');
  const offset = z
    ? (z[1] === '-' ? -1 : 1) * (Number(z[2]) * 3600 + Number(z[3] ?? 0) * 60 + Number(z[4] ?? 0))
    : 0;
  const date = new Date(`${wall}Z`);
  if (Number.isNaN(date.getTime())) return text;
  return new Date(date.getTime() - offset * 1000).toISOString();
}

const EXACT_LONGS = 'sluiceExactLongValues';
/** `"longValue": <integer of 16+ digits>` as JSON structure (keys cannot occur unescaped in strings). */
const LONG_VALUE = /([{,]\s*)"longValue"\s*:\s*(-?\d{16,})(?=\s*[,}])/g;

/**
 * Adds (once per client) a middleware that keeps 64-bit integers exact: JSON numbers beyond 2^53
 * cannot be represented by the SDK's `number`-typed `Field.longValue`
 * (https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_Field.html), so before the SDK
 * parses a `GetStatementResult` response, every `"longValue": n` of 16 or more digits is rewritten to
 * `"stringValue": "n"`, which {@link fieldValue} reads by the column's `int8` type (a `number` when it
 * is safe, else a `bigint`). Only that command's responses are touched.
 */
export function installExactLongValues(client: RedshiftDataClient): void {
  const stack = client.middlewareStack as unknown as {
    identify?: () => string[];
    add: (middleware: unknown, options: Record<string, unknown>) => void;
  };
  if (stack.identify?.().some((entry) => entry.startsWith(EXACT_LONGS))) return;
  stack.add(
    (next: (args: unknown) => Promise<{ response: { body?: unknown } }>, context: { commandName?: string }) =>
      async (args: unknown) => {
        const result = await next(args);
        if (context.commandName !== 'GetStatementResultCommand') return result;
        const response = result.response;
        const body = response?.body;
        if (body === undefined || body === null) return result;
        const text = await bodyText(body);
        if (text === undefined) return result;
        response.body = new TextEncoder().encode(text.replace(LONG_VALUE, '$1"stringValue":"$2"'));
        return result;
      },
    { step: 'deserialize', name: EXACT_LONGS, priority: 'low' },
  );
}

/** The whole body of a raw HTTP response (Node stream, web stream, bytes or text). */
async function bodyText(body: unknown): Promise<string | undefined> {
  if (typeof body === 'string') return body;
  if (body instanceof Uint8Array) return Buffer.from(body).toString('utf8');
  if (typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
    const chunks: Buffer[] = [];
    for await (const chunk of body as AsyncIterable<Uint8Array | string>) {
      chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk));
    }
    return Buffer.concat(chunks).toString('utf8');
  }
  return undefined;
}
