import {
  type AthenaClient,
  type ColumnInfo,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  InvalidRequestException,
  StartQueryExecutionCommand,
  type StartQueryExecutionInput,
  StopQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { type Clock, systemClock } from '../../core/clock.ts';
import { QueryError, type SluiceError } from '../../core/errors.ts';
import type { Catalog } from '../../core/ports/catalog.ts';
import type {
  QueryEngine,
  QueryOptions,
  QueryResult,
  ResultColumn,
  SqlValue,
} from '../../core/ports/query-engine.ts';
import { bindNamedQuery, type NamedQuery, namedQueryName } from '../../core/query.ts';
import { awsCallError } from './aws-errors.ts';

/** Athena's data catalog that is the account's Glue Data Catalog. */
export const ATHENA_CATALOG = 'AwsDataCatalog';

/** First poll delay (ms) and the cap of the doubling backoff between `GetQueryExecution` polls. */
export const ATHENA_POLL = { initialMs: 100, maxMs: 2000 } as const;

/** `GetQueryResults` returns at most 1,000 rows per page (Athena API reference, `MaxResults`). */
export const ATHENA_MAX_PAGE = 1000;

/** Options of {@link AthenaQueryEngine.open}. */
export interface AthenaQueryEngineOptions {
  /** An Athena client (credentials from the SDK's default chain). */
  readonly client: AthenaClient;
  /** Workgroup the statements run in (Athena's `primary` when absent). */
  readonly workgroup?: string;
  /**
   * `s3://bucket/prefix/` for result files, sent as `ResultConfiguration.OutputLocation`; leave
   * it out when the workgroup enforces its own result location.
   */
  readonly outputLocation?: string;
  /** Glue database of a sluice database `d` is `<databasePrefix>d` (as in the Glue catalog adapter). */
  readonly databasePrefix: string;
  /**
   * The catalog, read at open and by {@link AthenaQueryEngine.refresh}: it tells which two-part
   * names are sluice databases (rewritten to their Glue names) and which `string` columns hold
   * JSON (parsed in results, as the local engine returns JSON columns). Without it only the
   * databases of {@link namedQueries} are rewritten and no `varchar` column is parsed.
   */
  readonly catalog?: Pick<Catalog, 'listTables'>;
  /** Named queries, inlined where a statement names them (see {@link AthenaQueryEngine}). */
  readonly namedQueries?: readonly NamedQuery[];
  /**
   * For statements from people (the dashboard's SQL console): refuse anything but a read-only
   * statement (`SELECT`, `WITH`, `VALUES`, `TABLE`, `SHOW`, `DESCRIBE`, `EXPLAIN`). The workgroup's
   * IAM permissions remain the real boundary on AWS.
   */
  readonly sandboxed?: boolean;
  /** First delay between polls in ms (default 100), doubling up to 2,000. */
  readonly pollMs?: number;
  /** Clock for polling waits and the time limit (default: the system clock). */
  readonly clock?: Clock;
}

/**
 * The {@link QueryEngine} on Amazon Athena over the Glue Data Catalog (contract:
 * test/conformance/query-engine.case.ts). Athena API reference:
 * https://docs.aws.amazon.com/athena/latest/APIReference/.
 *
 * One {@link query}:
 * 1. rewrites the statement (see below), then `StartQueryExecution` with `QueryExecutionContext`
 *    `{ Catalog: 'AwsDataCatalog' }`, the workgroup, and `ResultConfiguration.OutputLocation` only
 *    when {@link AthenaQueryEngineOptions.outputLocation} is set;
 * 2. polls `GetQueryExecution` after 100 ms, doubling up to 2 s, until `SUCCEEDED`; `FAILED` and
 *    `CANCELLED` are a {@link QueryError} with Athena's `StateChangeReason`; past `timeoutMs` it
 *    calls `StopQueryExecution` and throws a {@link QueryError} saying the time limit stopped it;
 * 3. reads `GetQueryResults` pages (1,000 rows each) until done or past `maxRows`; for `DML`
 *    statements the first row of the first page is the header and is skipped. Values, which
 *    Athena returns as `VarCharValue` text, are converted by `ColumnInfo.Type` with
 *    {@link fromAthenaValue}.
 *
 * Names: statements say `gharchive.events`; the Glue database is `<databasePrefix>gharchive`. A
 * two-part name `db.x` whose `db` is a sluice database (known from the catalog and the named
 * queries) is rewritten to `"<databasePrefix>db".x` outside string literals, quoted identifiers
 * of other names and comments; so an alias equal to a database name followed by `.column` would
 * be rewritten too (pipelines do not alias tables by database names).
 *
 * Named queries: Athena has no session views, and persisting `CREATE VIEW`s in Glue from a query
 * engine would change the catalog on every open. So a reference `db.query` is inlined as a
 * subquery: `(<the query's SQL, bound with its parameters' defaults>) AS "query"` (no `AS` added
 * when the statement gives an alias), with nested references inlined the same way. This is what
 * the local engine's views mean, computed at the same moment.
 */
export class AthenaQueryEngine implements QueryEngine {
  private databases = new Set<string>();
  private jsonColumns = new Map<string, Set<string>>();
  private readonly named = new Map<string, NamedQuery>();
  private readonly clock: Clock;

  private constructor(private readonly options: AthenaQueryEngineOptions) {
    this.clock = options.clock ?? systemClock;
    for (const query of options.namedQueries ?? []) {
      this.named.set(namedQueryName(query).toLowerCase(), query);
    }
  }

  /** Creates the engine and reads the catalog (one `listTables`). */
  static async open(options: AthenaQueryEngineOptions): Promise<AthenaQueryEngine> {
    const engine = new AthenaQueryEngine(options);
    await engine.refresh();
    return engine;
  }

  /** Re-reads the catalog's databases and JSON columns (after new tables). */
  async refresh(): Promise<void> {
    const databases = new Set<string>();
    const jsonColumns = new Map<string, Set<string>>();
    for (const query of this.options.namedQueries ?? []) databases.add(query.database.toLowerCase());
    for (const table of (await this.options.catalog?.listTables()) ?? []) {
      databases.add(table.database.toLowerCase());
      const json = table.columns.filter((c) => c.logicalType === 'json').map((c) => c.name.toLowerCase());
      jsonColumns.set(`${table.database}.${table.name}`.toLowerCase(), new Set(json));
    }
    this.databases = databases;
    this.jsonColumns = jsonColumns;
  }

  /**
   * The statement Athena runs for `sql`, and the JSON columns of the tables it names: database
   * names mapped to Glue's, named queries inlined.
   * @throws {QueryError} when named queries reference each other in a cycle, or when sandboxed
   *   and the statement is not read-only.
   */
  rewrite(sql: string): { sql: string; jsonColumns: Set<string> } {
    if (this.options.sandboxed) assertReadOnly(sql);
    const json = new Set<string>();
    const out = this.rewriteText(sql, json, []);
    return { sql: out, jsonColumns: json };
  }

  /**
   * Runs one statement on Athena and reads its result (see the class doc).
   * @throws {QueryError} when Athena rejects or fails the statement (its reason in the message), or
   *   when `timeoutMs` passes (the statement is stopped).
   * @throws {SluiceError} `athena_error` when an Athena call fails otherwise (retryable for
   *   throttling and 5xx).
   */
  async query(sql: string, options: QueryOptions = {}): Promise<QueryResult> {
    const { sql: statement, jsonColumns } = this.rewrite(sql);
    const { client } = this.options;
    const input: StartQueryExecutionInput = {
      QueryString: statement,
      QueryExecutionContext: { Catalog: ATHENA_CATALOG },
      ...(this.options.workgroup !== undefined ? { WorkGroup: this.options.workgroup } : {}),
      ...(this.options.outputLocation !== undefined
        ? { ResultConfiguration: { OutputLocation: this.options.outputLocation } }
        : {}),
    };
    let id: string;
    try {
      const started = await client.send(new StartQueryExecutionCommand(input));
      if (!started.QueryExecutionId) throw new Error('StartQueryExecution returned no QueryExecutionId');
      id = started.QueryExecutionId;
    } catch (error) {
      if (error instanceof InvalidRequestException) {
        throw new QueryError(`Athena refused the statement: ${error.message}`, { cause: error });
      }
      throw athenaError(error, 'starting an Athena query');
    }

    const statementType = await this.waitFor(id, options.timeoutMs);
    return this.readResults(id, statementType, jsonColumns, options.maxRows);
  }

  /** Nothing to release: Athena keeps no session. The client stays the caller's. */
  async close(): Promise<void> {}

  /** Polls until the query succeeds; returns its `StatementType`. */
  private async waitFor(id: string, timeoutMs: number | undefined): Promise<string | undefined> {
    const { client } = this.options;
    const start = this.clock.now().getTime();
    let delay = this.options.pollMs ?? ATHENA_POLL.initialMs;
    for (;;) {
      let execution: Awaited<ReturnType<typeof this.getExecution>>;
      try {
        execution = await this.getExecution(id);
      } catch (error) {
        throw athenaError(error, `polling Athena query ${id}`);
      }
      const status = execution?.Status;
      const state = status?.State;
      if (state === 'SUCCEEDED') return execution?.StatementType;
      if (state === 'FAILED' || state === 'CANCELLED') {
        const reason = status?.StateChangeReason ?? status?.AthenaError?.ErrorMessage ?? 'no reason given';
        throw new QueryError(
          state === 'FAILED'
            ? `Athena query ${id} failed: ${reason}`
            : `Athena query ${id} was cancelled: ${reason}`,
        );
      }
      const elapsed = this.clock.now().getTime() - start;
      if (timeoutMs !== undefined && elapsed >= timeoutMs) {
        try {
          await client.send(new StopQueryExecutionCommand({ QueryExecutionId: id }));
        } catch {
          // Stopping is best effort: the query may have just finished.
        }
        throw new QueryError(
          `the statement was stopped after ${timeoutMs} ms (the time limit); Athena query ${id} was stopped`,
        );
      }
      const wait = timeoutMs === undefined ? delay : Math.min(delay, Math.max(0, timeoutMs - elapsed));
      await this.clock.sleep(wait);
      delay = Math.min(delay * 2, ATHENA_POLL.maxMs);
    }
  }

  private async getExecution(id: string) {
    const out = await this.options.client.send(new GetQueryExecutionCommand({ QueryExecutionId: id }));
    return out.QueryExecution;
  }

  private async readResults(
    id: string,
    statementType: string | undefined,
    jsonColumns: Set<string>,
    maxRows: number | undefined,
  ): Promise<QueryResult> {
    const limit = maxRows === undefined ? undefined : Math.max(0, Math.floor(maxRows));
    let columns: ResultColumn[] = [];
    let info: ColumnInfo[] = [];
    const rows: Record<string, SqlValue>[] = [];
    let token: string | undefined;
    let first = true;
    do {
      const pageSize =
        limit === undefined ? ATHENA_MAX_PAGE : Math.min(ATHENA_MAX_PAGE, limit - rows.length + 2);
      let out: Awaited<ReturnType<typeof this.getResultsPage>>;
      try {
        out = await this.getResultsPage(id, token, pageSize);
      } catch (error) {
        if (error instanceof InvalidRequestException) {
          throw new QueryError(`reading the result of Athena query ${id}: ${error.message}`, {
            cause: error,
          });
        }
        throw athenaError(error, `reading the result of Athena query ${id}`);
      }
      let data = out.ResultSet?.Rows ?? [];
      if (first) {
        info = out.ResultSet?.ResultSetMetadata?.ColumnInfo ?? [];
        columns = info.map((c) => ({ name: c.Name ?? '', type: resultType(c) }));
        if (statementType === 'DML') data = data.slice(1);
        first = false;
      }
      for (const row of data) {
        const record: Record<string, SqlValue> = {};
        info.forEach((column, i) => {
          const name = column.Name ?? '';
          const text = row.Data?.[i]?.VarCharValue;
          const type = (column.Type ?? 'varchar').toLowerCase();
          record[name] =
            jsonColumns.has(name.toLowerCase()) && isTextType(type)
              ? parseJson(text)
              : fromAthenaValue(text, type);
        });
        rows.push(record);
        if (limit !== undefined && rows.length > limit) break;
      }
      token = out.NextToken;
    } while (token && (limit === undefined || rows.length <= limit));
    const truncated = limit !== undefined && rows.length > limit;
    return { columns, rows: truncated ? rows.slice(0, limit) : rows, truncated };
  }

  private getResultsPage(id: string, token: string | undefined, max: number) {
    return this.options.client.send(
      new GetQueryResultsCommand({
        QueryExecutionId: id,
        MaxResults: Math.max(1, max),
        ...(token ? { NextToken: token } : {}),
      }),
    );
  }

  private rewriteText(sql: string, json: Set<string>, inlining: readonly string[]): string {
    const tokens = tokenize(sql);
    const sig = tokens.map((_, i) => i).filter((i) => !isTrivia(tokens[i]!));
    const replace = new Map<number, { until: number; text: string }>();
    for (let s = 0; s + 2 < sig.length; s++) {
      const a = tokens[sig[s]!]!;
      const dot = tokens[sig[s + 1]!]!;
      const b = tokens[sig[s + 2]!]!;
      if (!isIdent(a) || dot.text !== '.' || !isIdent(b)) continue;
      const prev = s > 0 ? tokens[sig[s - 1]!]! : undefined;
      if (prev?.text === '.') {
        const before = s > 1 ? tokens[sig[s - 2]!]! : undefined;
        if (!before || identValue(before) !== ATHENA_CATALOG.toLowerCase()) continue;
      }
      const db = identValue(a);
      const name = identValue(b);
      const query = this.named.get(`${db}.${name}`);
      if (query && prev?.text !== '.') {
        const key = namedQueryName(query).toLowerCase();
        if (inlining.includes(key)) {
          throw new QueryError(
            `named queries reference each other in a cycle: ${[...inlining, key].join(' -> ')}`,
          );
        }
        const next = s + 3 < sig.length ? tokens[sig[s + 3]!]! : undefined;
        const alias = quoteIdent(query.name);
        let text: string;
        if (next?.text === '.') {
          text = alias; // `db.query.column`: the column of the inlined subquery
        } else {
          const body = this.rewriteText(bindNamedQuery(query), json, [...inlining, key]);
          text = `(${body})${hasAlias(next) ? '' : ` AS ${alias}`}`;
        }
        replace.set(sig[s]!, { until: sig[s + 2]!, text });
        s += 2;
        continue;
      }
      if (this.databases.has(db)) {
        for (const column of this.jsonColumns.get(`${db}.${name}`) ?? []) json.add(column);
        if (this.options.databasePrefix !== '') {
          replace.set(sig[s]!, {
            until: sig[s]!,
            text: quoteIdent(`${this.options.databasePrefix}${db}`.toLowerCase()),
          });
        }
        s += 2;
      }
    }
    let out = '';
    for (let i = 0; i < tokens.length; i++) {
      const r = replace.get(i);
      if (r) {
        out += r.text;
        i = r.until;
      } else {
        out += tokens[i]!.text;
      }
    }
    return out;
  }
}

/**
 * A sluice value of an Athena `VarCharValue` by the column's `ColumnInfo.Type` (lowercase Trino
 * type names, https://docs.aws.amazon.com/athena/latest/ug/data-types.html), following the port's
 * {@link SqlValue} rules:
 * - missing `VarCharValue` (Athena's NULL): `null`;
 * - `boolean`; `tinyint`/`smallint`/`integer`: number; `bigint`: number, or `bigint` beyond ±(2^53-1);
 * - `real`/`float`/`double`: number (`NaN`, `Infinity`); `decimal`: the exact text;
 * - `date`: `YYYY-MM-DD`; `timestamp`: ISO-8601 UTC with milliseconds (`2024-01-01 00:00:07.000`
 *   becomes `2024-01-01T00:00:07.000Z`); `timestamp with time zone` likewise when the zone is UTC
 *   or an offset;
 * - `varbinary` (hex pairs): base64, as the local engine returns blobs;
 * - `json`: parsed; `array`/`map`/`row`: parsed best effort. Athena does not say the element types
 *   and prints these as `[a, b]` / `{k=v}`: JSON text is parsed as JSON, otherwise the display form
 *   is split at top-level `, ` with elements as strings (`null` as null). Cast to `JSON` in the
 *   statement for exact nested values;
 * - anything else (`varchar`, `char`, `time`, intervals, `uuid`): the text.
 */
export function fromAthenaValue(text: string | undefined, athenaType: string): SqlValue {
  if (text === undefined) return null;
  const type = athenaType
    .toLowerCase()
    .replace(/\([^)]*\)/g, '')
    .replace(/\s+/g, ' ')
    .trim();
  switch (type) {
    case 'boolean':
      return text === 'true';
    case 'tinyint':
    case 'smallint':
    case 'integer':
    case 'int':
      return Number(text);
    case 'bigint': {
      const value = BigInt(text);
      return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
        ? Number(value)
        : value;
    }
    case 'real':
    case 'float':
    case 'double':
      return Number(text);
    case 'date':
      return text;
    case 'timestamp':
      return timestampToIso(text) ?? text;
    case 'timestamp with time zone':
      return zonedTimestampToIso(text) ?? text;
    case 'varbinary':
      return Buffer.from(text.replace(/\s+/g, ''), 'hex').toString('base64');
    case 'json':
      return parseJson(text);
    case 'array':
    case 'map':
    case 'row':
      return parseComplex(text);
    default:
      return text;
  }
}

/** `2024-01-01 00:00:07.000` (or with `T`, any fraction) as `2024-01-01T00:00:07.000Z`; `undefined` when not that shape. */
function timestampToIso(text: string): string | undefined {
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?$/.exec(text.trim());
  if (!m) return undefined;
  const ms = (m[3] ?? '').padEnd(3, '0').slice(0, 3);
  return `${m[1]}T${m[2]}.${ms}Z`;
}

function zonedTimestampToIso(text: string): string | undefined {
  const m = /^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s*(UTC|Z|[+-]\d{2}:\d{2})$/.exec(
    text.trim(),
  );
  if (!m) return undefined;
  const local = timestampToIso(m[1]!);
  if (!local || m[2] === 'UTC' || m[2] === 'Z') return local;
  const date = new Date(local.replace('Z', m[2]!));
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

function parseJson(text: string | undefined): SqlValue {
  if (text === undefined) return null;
  try {
    return JSON.parse(text) as SqlValue;
  } catch {
    return text;
  }
}

/** Athena's display form of arrays, maps and rows (`[a, b]`, `{k=v, k2=v2}`), best effort. */
function parseComplex(text: string): SqlValue {
  const trimmed = text.trim();
  try {
    return JSON.parse(trimmed) as SqlValue;
  } catch {
    // not JSON: Athena's display form
  }
  return parseDisplay(trimmed);
}

function parseDisplay(text: string): SqlValue {
  if (text === 'null') return null;
  if (text.startsWith('[') && text.endsWith(']')) {
    const inner = text.slice(1, -1);
    return inner.trim() === '' ? [] : splitDisplay(inner).map((item) => parseDisplay(item.trim()));
  }
  if (text.startsWith('{') && text.endsWith('}')) {
    const inner = text.slice(1, -1);
    if (inner.trim() === '') return {};
    const out: { [key: string]: SqlValue } = {};
    for (const item of splitDisplay(inner)) {
      const eq = topLevelIndex(item, '=');
      if (eq < 0) return text;
      out[item.slice(0, eq).trim()] = parseDisplay(item.slice(eq + 1).trim());
    }
    return out;
  }
  return text;
}

function splitDisplay(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 0 && text[i + 1] === ' ') {
      parts.push(text.slice(start, i));
      start = i + 2;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

function topLevelIndex(text: string, char: string): number {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
    else if (c === char && depth === 0) return i;
  }
  return -1;
}

function isTextType(type: string): boolean {
  return /^(varchar|char|string)\b/.test(type);
}

/** `BIGINT`, `VARCHAR`, `DECIMAL(10,2)`: Athena's type name, uppercase as the port's examples. */
function resultType(column: ColumnInfo): string {
  const type = (column.Type ?? 'varchar').toUpperCase();
  if (type === 'DECIMAL' && column.Precision !== undefined)
    return `DECIMAL(${column.Precision},${column.Scale ?? 0})`;
  return type;
}

/** Quotes an identifier for Athena (Trino) SQL: `"name"`, embedded quotes doubled. */
function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

interface Token {
  readonly kind: 'space' | 'comment' | 'string' | 'qident' | 'word' | 'number' | 'punct';
  readonly text: string;
}

/** Splits SQL into tokens, enough to find names outside literals and comments. */
function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  const patterns: [Token['kind'], RegExp][] = [
    ['space', /\s+/y],
    ['comment', /--[^\n]*/y],
    ['comment', /\/\*[\s\S]*?(?:\*\/|$)/y],
    ['string', /'(?:[^']|'')*(?:'|$)/y],
    ['qident', /"(?:[^"]|"")*(?:"|$)/y],
    ['qident', /`(?:[^`]|``)*(?:`|$)/y],
    ['word', /[A-Za-z_][A-Za-z0-9_$@]*/y],
    ['number', /[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?/y],
  ];
  let at = 0;
  outer: while (at < sql.length) {
    for (const [kind, pattern] of patterns) {
      pattern.lastIndex = at;
      const m = pattern.exec(sql);
      if (m && m[0].length > 0) {
        tokens.push({ kind, text: m[0] });
        at += m[0].length;
        continue outer;
      }
    }
    tokens.push({ kind: 'punct', text: sql[at]! });
    at++;
  }
  return tokens;
}

function isTrivia(token: Token): boolean {
  return token.kind === 'space' || token.kind === 'comment';
}

function isIdent(token: Token): boolean {
  return token.kind === 'word' || token.kind === 'qident';
}

/** An identifier's name, lowercase (Athena/Glue names are case-insensitive). */
function identValue(token: Token): string {
  if (token.kind === 'qident') {
    const quote = token.text[0]!;
    return token.text
      .slice(1, -1)
      .replaceAll(quote + quote, quote)
      .toLowerCase();
  }
  return token.text.toLowerCase();
}

/** Words that may follow a table reference and are not its alias. */
const NOT_ALIAS = new Set([
  'where',
  'group',
  'order',
  'limit',
  'offset',
  'fetch',
  'having',
  'window',
  'union',
  'intersect',
  'except',
  'join',
  'inner',
  'left',
  'right',
  'full',
  'cross',
  'natural',
  'on',
  'using',
  'tablesample',
  'for',
  'match_recognize',
  'cluster',
  'distribute',
  'sort',
  'lateral',
]);

function hasAlias(next: Token | undefined): boolean {
  if (!next || !isIdent(next)) return false;
  return next.kind === 'qident' || !NOT_ALIAS.has(next.text.toLowerCase());
}

const READ_ONLY = new Set(['select', 'with', 'values', 'table', 'show', 'describe', 'desc', 'explain']);

/** @throws {QueryError} unless the statement starts as a read-only one. */
function assertReadOnly(sql: string): void {
  const first = tokenize(sql).find((t) => !isTrivia(t));
  const ok =
    first !== undefined &&
    (first.text === '(' || (first.kind === 'word' && READ_ONLY.has(first.text.toLowerCase())));
  if (!ok) {
    throw new QueryError(
      `only read-only statements run here (SELECT, WITH, VALUES, TABLE, SHOW, DESCRIBE, EXPLAIN), not "${first?.text ?? ''}"`,
    );
  }
}

/** Maps a failed Athena call to a {@link SluiceError} `athena_error` naming what was being done. */
function athenaError(error: unknown, doing: string): SluiceError {
  return awsCallError(error, doing, 'athena_error', /TooManyRequests|Throttl|InternalServer/);
}
