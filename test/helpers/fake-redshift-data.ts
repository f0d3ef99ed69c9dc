/**
 * A FAKE of the Amazon Redshift Data API for tests. It is NOT Redshift and was never compared with
 * Redshift: an aws-sdk-client-mock stub of a `RedshiftDataClient` whose commands run the SQL on a real
 * PostgreSQL (the local backend's embedded server), so the aws warehouse adapter can be tested offline
 * against real SQL semantics (transactions, isolation, NOT NULL, COPY parsing). What it models, from the
 * Data API reference (https://docs.aws.amazon.com/redshift-data/latest/APIReference/Welcome.html):
 *
 * - `ExecuteStatement`: `Sql` with named `:name` `Parameters` (values non-empty text, each referenced);
 *   either `WorkgroupName` + `Database` (must match the fake's) or `SessionId` alone (naming both is a
 *   `ValidationException`). `SessionKeepAliveSeconds` without `SessionId` opens a session: one dedicated
 *   PostgreSQL connection per `SessionId`; a second statement while one runs in the session is refused.
 *   Sessions never expire here (a real one ends `SessionKeepAliveSeconds` after its last statement).
 * - Statements run asynchronously: the first `DescribeStatement` of each says `SUBMITTED`, later ones
 *   `STARTED` until the SQL ends, then `FINISHED` (`ResultRows`, `HasResultSet`, `RedshiftQueryId`) or
 *   `FAILED` with `Error` = `ERROR: <PostgreSQL's message>` (no SQLSTATE in it, as the Data API).
 * - `GetStatementResult`: `pageSize` records per page with `NextToken`; typed fields as the Data API
 *   sends them: `int2/int4/int8` `longValue`, `float4/float8` `doubleValue`, `bool` `booleanValue`,
 *   everything else (`numeric`, `varchar`, `timestamp` as `2024-03-01 12:34:56.789`) `stringValue`,
 *   NULL `isNull: true`. An `int8` beyond ±(2^53 - 1) is sent as `stringValue`: that is what the
 *   adapter's wire middleware (installExactLongValues, tested on raw JSON through the real SDK
 *   deserializer) turns such a `longValue` into; a mock bypasses that middleware.
 * - `BatchExecuteStatement`: `Sqls` in one transaction on one connection; `SubStatements` with
 *   `<id>:<n>` ids.
 * - `COPY t (cols) FROM 's3://bucket/prefix' IAM_ROLE '...' FORMAT AS CSV [EMPTYASNULL]`: the bucket
 *   names a layer of `buckets`; every object whose key starts with the prefix (S3 prefix semantics) is
 *   streamed through PostgreSQL's `COPY ... FROM STDIN WITH (FORMAT csv)`. A missing prefix fails with
 *   `The specified S3 prefix '...' does not exist`. A rejected row fails the statement with Redshift's
 *   `Load into table 't' failed. Check 'stl_load_errors' system table for details.` and a row in a real
 *   table `sys_load_error_detail` (query_id, file_name, line_number, column_name, error_code,
 *   error_message) that the adapter can query, as Redshift's system view. Any other COPY form fails.
 */
import { randomUUID } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
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
  type GetStatementResultRequest,
  RedshiftDataClient,
  ResourceNotFoundException,
  type SqlParameter,
  type SubStatementData,
  ValidationException,
} from '@aws-sdk/client-redshift-data';
import { type AwsStub, mockClient } from 'aws-sdk-client-mock';
import pg from 'pg';
import { from as copyFromStdin } from 'pg-copy-streams';
import type { Layer } from '../../src/core/layer.ts';
import type { ObjectStore } from '../../src/core/ports/object-store.ts';

/** Options of {@link FakeRedshiftData.start}. */
export interface FakeRedshiftDataOptions {
  /** PostgreSQL to run the SQL on (never printed). */
  readonly connectionString: string;
  /** Where `COPY ... FROM 's3://...'` reads objects. */
  readonly objectStore: ObjectStore;
  /** Bucket of each layer: `s3://<bucket>/` resolves to that layer of `objectStore`. */
  readonly buckets: Readonly<Record<Layer, string>>;
  readonly workgroupName: string;
  readonly database: string;
  /** Records per `GetStatementResult` page (default 2, so tests page). */
  readonly pageSize?: number;
  /**
   * The client to mock (default: a new `RedshiftDataClient`, then {@link FakeRedshiftData.client}).
   * `RedshiftDataClient.prototype` fakes every client created while the fake runs (a backend that
   * builds its own client); `close()` restores it.
   */
  readonly client?: RedshiftDataClient;
}

interface Statement {
  readonly id: string;
  readonly queryString: string;
  readonly sessionId: string | undefined;
  readonly createdAt: Date;
  readonly redshiftQueryId: number;
  describes: number;
  status: 'STARTED' | 'FINISHED' | 'FAILED';
  error?: string;
  resultRows: number;
  hasResultSet: boolean;
  columns: ColumnMetadata[];
  records: Field[][];
  subStatements?: SubStatementData[];
  updatedAt: Date;
}

interface Session {
  readonly client: pg.PoolClient;
  busy: boolean;
}

/** Outcome of one SQL statement on PostgreSQL. */
interface Ran {
  readonly rowCount: number;
  readonly hasResultSet: boolean;
  readonly columns: ColumnMetadata[];
  readonly records: Field[][];
}

class SqlFailure extends Error {}

const TYPE_NAMES: Readonly<Record<number, string>> = {
  16: 'bool',
  17: 'bytea',
  18: 'char',
  19: 'name',
  20: 'int8',
  21: 'int2',
  23: 'int4',
  25: 'text',
  26: 'oid',
  700: 'float4',
  701: 'float8',
  1042: 'bpchar',
  1043: 'varchar',
  1082: 'date',
  1083: 'time',
  1114: 'timestamp',
  1184: 'timestamptz',
  1700: 'numeric',
};

const COPY =
  /^\s*COPY\s+(\S+)\s*\(([^)]*)\)\s+FROM\s+'((?:[^']|'')*)'\s+IAM_ROLE\s+'((?:[^']|'')*)'\s+FORMAT\s+AS\s+CSV(\s+EMPTYASNULL)?\s*;?\s*$/i;

/** The fake: `client` is the mocked client to give the adapter; `mock` records every command. */
export class FakeRedshiftData {
  readonly client: RedshiftDataClient;
  // biome-ignore lint/suspicious/noExplicitAny: the stub of one client, typed loosely for commandCalls.
  readonly mock: AwsStub<any, any, any>;
  private readonly statements = new Map<string, Statement>();
  private readonly sessions = new Map<string, Session>();
  private queryIds = 1000;
  private running = new Set<Promise<unknown>>();

  private constructor(
    private readonly pool: pg.Pool,
    private readonly options: FakeRedshiftDataOptions,
  ) {
    this.client =
      options.client ??
      new RedshiftDataClient({
        region: 'eu-west-1',
        credentials: { accessKeyId: 'FAKE', secretAccessKey: 'FAKE' },
      });
    const mock = mockClient(this.client);
    mock
      .on(ExecuteStatementCommand)
      .callsFake((input: ExecuteStatementInput) => this.executeStatement(input));
    mock
      .on(BatchExecuteStatementCommand)
      .callsFake((input: BatchExecuteStatementInput) => this.batchExecuteStatement(input));
    mock.on(DescribeStatementCommand).callsFake((input: { Id: string }) => this.describeStatement(input.Id));
    mock
      .on(GetStatementResultCommand)
      .callsFake((input: GetStatementResultRequest) => this.getStatementResult(input));
    // biome-ignore lint/suspicious/noExplicitAny: see above.
    this.mock = mock as unknown as AwsStub<any, any, any>;
  }

  /** Connects to PostgreSQL and creates `sys_load_error_detail`. */
  static async start(options: FakeRedshiftDataOptions): Promise<FakeRedshiftData> {
    const pool = new pg.Pool({
      connectionString: options.connectionString,
      max: 20,
      options: '-c TimeZone=UTC -c DateStyle=ISO',
      // Every value as PostgreSQL's text: the fake types it as the Data API does.
      types: { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig,
    });
    pool.on('error', () => {});
    await pool.query(`CREATE TABLE IF NOT EXISTS sys_load_error_detail (
      query_id bigint, file_name varchar(1024), line_number bigint, column_name varchar(128),
      error_code integer, error_message varchar(512), raw_line varchar(1024))`);
    return new FakeRedshiftData(pool, options);
  }

  /** Open sessions (for assertions). */
  get openSessions(): number {
    return this.sessions.size;
  }

  /** Waits for running statements, rolls back and releases sessions, closes the pool, restores the mock. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.running]);
    for (const session of this.sessions.values()) {
      await session.client.query('ROLLBACK').catch(() => undefined);
      session.client.release();
    }
    this.sessions.clear();
    this.mock.restore();
    await this.pool.end();
  }

  private async executeStatement(input: ExecuteStatementInput) {
    if (!input.Sql) throw validation('Sql is required');
    let session: Session | undefined;
    let sessionId = input.SessionId;
    if (sessionId !== undefined) {
      if (input.WorkgroupName !== undefined || input.Database !== undefined || input.ClusterIdentifier) {
        throw validation('SessionId cannot be combined with WorkgroupName, ClusterIdentifier or Database');
      }
      session = this.sessions.get(sessionId);
      if (!session) throw notFound(`Session ${sessionId} not found`, sessionId);
      if (session.busy) throw validation(`Session ${sessionId} is busy with another statement`);
    } else {
      this.checkTarget(input);
      if (input.SessionKeepAliveSeconds !== undefined) {
        sessionId = randomUUID();
        session = { client: await this.pool.connect(), busy: false };
        this.sessions.set(sessionId, session);
      }
    }
    const { text, values } = toPositional(input.Sql, input.Parameters ?? []);
    const statement = this.newStatement(input.Sql, sessionId);
    const target = session;
    if (target) target.busy = true;
    this.track(
      (async () => {
        const client = target?.client ?? (await this.pool.connect());
        try {
          const ran = await this.runSql(client, text, values, statement.redshiftQueryId);
          Object.assign(statement, {
            status: 'FINISHED',
            resultRows: ran.rowCount,
            hasResultSet: ran.hasResultSet,
            columns: ran.columns,
            records: ran.records,
          });
        } catch (error) {
          Object.assign(statement, { status: 'FAILED', error: errorText(error) });
        } finally {
          statement.updatedAt = new Date();
          if (target) target.busy = false;
          else client.release();
        }
      })(),
    );
    return {
      Id: statement.id,
      CreatedAt: statement.createdAt,
      ...(sessionId === undefined ? { WorkgroupName: input.WorkgroupName, Database: input.Database } : {}),
      ...(sessionId === undefined ? {} : { SessionId: sessionId }),
    };
  }

  private async batchExecuteStatement(input: BatchExecuteStatementInput) {
    this.checkTarget(input);
    const sqls = input.Sqls ?? [];
    if (sqls.length === 0) throw validation('Sqls must hold at least one statement');
    const parameters = input.Parameters ?? [];
    for (const p of parameters) {
      if (!sqls.some((sql) => new RegExp(`(^|[^:]):${p.name}\\b`).test(sql))) {
        throw validation(`Parameter ${p.name} is not referenced by any statement`);
      }
    }
    const statement = this.newStatement(sqls.join(';\n'), undefined);
    const subs: SubStatementData[] = sqls.map((sql, i) => ({
      Id: `${statement.id}:${i + 1}`,
      QueryString: sql,
      Status: 'SUBMITTED',
      RedshiftQueryId: statement.redshiftQueryId + i + 1,
    }));
    this.queryIds += sqls.length;
    statement.subStatements = subs;
    this.track(
      (async () => {
        const client = await this.pool.connect();
        try {
          await client.query('BEGIN');
          for (const [i, sql] of sqls.entries()) {
            const sub = subs[i] as SubStatementData;
            const { text, values } = toPositional(sql, parameters, false);
            try {
              const ran = await this.runSql(client, text, values, sub.RedshiftQueryId ?? 0);
              Object.assign(sub, {
                Status: 'FINISHED',
                ResultRows: ran.rowCount,
                HasResultSet: ran.hasResultSet,
              });
            } catch (error) {
              Object.assign(sub, { Status: 'FAILED', Error: errorText(error) });
              for (const later of subs.slice(i + 1)) later.Status = 'ABORTED';
              throw error;
            }
          }
          await client.query('COMMIT');
          statement.status = 'FINISHED';
          statement.resultRows = subs.reduce((n, s) => n + Math.max(0, s.ResultRows ?? 0), 0);
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          Object.assign(statement, { status: 'FAILED', error: errorText(error) });
        } finally {
          statement.updatedAt = new Date();
          client.release();
        }
      })(),
    );
    return {
      Id: statement.id,
      CreatedAt: statement.createdAt,
      WorkgroupName: input.WorkgroupName,
      Database: input.Database,
    };
  }

  private describeStatement(id: string): DescribeStatementResponse {
    const s = this.statements.get(id.replace(/:\d+$/, ''));
    if (!s) throw notFound(`Query ${id} does not exist`, id);
    s.describes++;
    const status = s.describes === 1 ? 'SUBMITTED' : s.status;
    return {
      Id: s.id,
      Status: status,
      QueryString: s.queryString,
      CreatedAt: s.createdAt,
      UpdatedAt: s.updatedAt,
      RedshiftQueryId: s.redshiftQueryId,
      ...(s.sessionId === undefined
        ? { WorkgroupName: this.options.workgroupName, Database: this.options.database }
        : { SessionId: s.sessionId }),
      ...(status === 'FINISHED' ? { ResultRows: s.resultRows, HasResultSet: s.hasResultSet } : {}),
      ...(status === 'FAILED' && s.error !== undefined ? { Error: s.error } : {}),
      ...(s.subStatements && status !== 'SUBMITTED'
        ? { SubStatements: s.subStatements.map((sub) => ({ ...sub })) }
        : {}),
    };
  }

  private getStatementResult(input: GetStatementResultRequest) {
    const s = this.statements.get(input.Id ?? '');
    if (!s) throw notFound(`Query ${input.Id} does not exist`, input.Id);
    if (s.status !== 'FINISHED') throw validation(`Query ${s.id} has not finished`);
    if (!s.hasResultSet) throw validation(`Query ${s.id} does not have result`);
    const size = this.options.pageSize ?? 2;
    const offset = input.NextToken === undefined ? 0 : Number(input.NextToken);
    const records = s.records.slice(offset, offset + size);
    const next = offset + size < s.records.length ? String(offset + size) : undefined;
    return {
      Records: records,
      ColumnMetadata: s.columns,
      TotalNumRows: s.records.length,
      ...(next === undefined ? {} : { NextToken: next }),
    };
  }

  private checkTarget(input: { WorkgroupName?: string | undefined; Database?: string | undefined }): void {
    if (input.WorkgroupName !== this.options.workgroupName) {
      throw notFound(`Workgroup ${input.WorkgroupName} not found`, input.WorkgroupName);
    }
    if (input.Database !== this.options.database)
      throw validation(`Database ${input.Database} does not exist`);
  }

  private newStatement(queryString: string, sessionId: string | undefined): Statement {
    const now = new Date();
    const statement: Statement = {
      id: randomUUID(),
      queryString,
      sessionId,
      createdAt: now,
      updatedAt: now,
      redshiftQueryId: ++this.queryIds,
      describes: 0,
      status: 'STARTED',
      resultRows: -1,
      hasResultSet: false,
      columns: [],
      records: [],
    };
    this.statements.set(statement.id, statement);
    return statement;
  }

  private track(work: Promise<unknown>): void {
    this.running.add(work);
    void work.finally(() => this.running.delete(work));
  }

  private async runSql(client: pg.PoolClient, text: string, values: string[], queryId: number): Promise<Ran> {
    const copy = COPY.exec(text);
    if (copy) return this.copy(client, copy, queryId);
    if (/^\s*COPY\b/i.test(text))
      throw new SqlFailure("the fake supports only COPY ... FROM 's3://...' IAM_ROLE ... FORMAT AS CSV");
    const result = (await client.query({
      text,
      values,
      rowMode: 'array',
      queryMode: 'extended',
    } as pg.QueryConfig)) as pg.QueryResult<unknown[]>;
    const fields = result.fields ?? [];
    const types = fields.map((f) => TYPE_NAMES[f.dataTypeID] ?? 'unknown');
    const hasResultSet = fields.length > 0;
    return {
      rowCount: hasResultSet ? result.rows.length : (result.rowCount ?? 0),
      hasResultSet,
      columns: fields.map((f, i) => ({ name: f.name, label: f.name, typeName: types[i] })),
      records: result.rows.map((row) =>
        row.map((value, i) => toField(value as string | null, types[i] ?? '')),
      ),
    };
  }

  private async copy(client: pg.PoolClient, m: RegExpExecArray, queryId: number): Promise<Ran> {
    const [, table, columns, rawUri] = m;
    const uri = (rawUri ?? '').replace(/''/g, "'");
    const s3 = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
    if (!s3) throw new SqlFailure(`invalid S3 URI ${uri}`);
    const [, bucket, prefix] = s3 as unknown as [string, string, string];
    const layer = (Object.entries(this.options.buckets) as [Layer, string][]).find(
      ([, b]) => b === bucket,
    )?.[0];
    if (!layer)
      throw new SqlFailure(
        `S3ServiceException:The specified bucket does not exist,Status 404,Bucket ${bucket}`,
      );
    const keys: string[] = [];
    for await (const info of this.options.objectStore.list(layer, prefix))
      if (info.key.startsWith(prefix)) keys.push(info.key);
    if (keys.length === 0) throw new SqlFailure(`The specified S3 prefix '${prefix}' does not exist`);
    const stream = client.query(copyFromStdin(`COPY ${table} (${columns}) FROM STDIN WITH (FORMAT csv)`));
    const store = this.options.objectStore;
    async function* bytes(): AsyncGenerator<Buffer> {
      for (const key of keys) {
        const body: Readable = await store.get({ layer: layer as Layer, key });
        for await (const chunk of body) yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
      }
    }
    try {
      await pipeline(bytes(), new PassThrough(), stream);
    } catch (error) {
      const where = (error as { where?: string }).where ?? '';
      const line = /\bline (\d+)(?:, column (\w+))?/.exec(where);
      if (!(error instanceof pg.DatabaseError) || !line) throw error;
      const code = LOAD_CODES[error.code ?? ''] ?? 1216;
      await this.pool.query(
        'INSERT INTO sys_load_error_detail (query_id, file_name, line_number, column_name, error_code, error_message, raw_line) VALUES ($1, $2, $3, $4, $5, $6, $7)',
        [
          queryId,
          uri,
          line[1],
          error.column || line[2] || /column "([^"]+)"/.exec(error.message)?.[1] || '',
          code,
          code === 1213 ? 'Missing data for not-null field' : error.message,
          '',
        ],
      );
      throw new SqlFailure(
        `Load into table '${table}' failed. Check 'stl_load_errors' system table for details.`,
      );
    }
    return { rowCount: stream.rowCount, hasResultSet: false, columns: [], records: [] };
  }
}

/** Redshift load error codes of PostgreSQL SQLSTATEs (https://docs.aws.amazon.com/redshift/latest/dg/r_Load_Error_Reference.html). */
const LOAD_CODES: Readonly<Record<string, number>> = {
  '23502': 1213,
  '22P02': 1207,
  '22003': 1204,
  '22001': 1204,
  '22007': 1206,
  '22008': 1206,
  '22P04': 1216,
};

function notFound(message: string, resourceId: string | undefined): ResourceNotFoundException {
  return new ResourceNotFoundException({ message, Message: message, $metadata: {}, ResourceId: resourceId });
}

function validation(message: string): ValidationException {
  return new ValidationException({ message, $metadata: {} });
}

/** `ERROR: <message>` as the Data API's `Error`, without a SQLSTATE. */
function errorText(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const detail = error instanceof pg.DatabaseError && error.detail ? `\n  Detail: ${error.detail}` : '';
  return `ERROR: ${message}${detail}`;
}

/**
 * `:name` parameters to PostgreSQL's `$n` (outside quotes and comments; `::` casts are kept).
 * @throws {ValidationException} for an empty value or (`strict`) a parameter that is not referenced.
 */
function toPositional(
  sql: string,
  parameters: readonly SqlParameter[],
  strict = true,
): { text: string; values: string[] } {
  const index = new Map<string, number>();
  const values: string[] = [];
  for (const p of parameters) {
    if (!p.name || !/^[A-Za-z0-9_]+$/.test(p.name)) throw validation(`invalid parameter name ${p.name}`);
    if (p.value === undefined || p.value === '')
      throw validation(`Parameter ${p.name} must have a non-empty value`);
    values.push(p.value);
    index.set(p.name, values.length);
  }
  const referenced = new Set<string>();
  let out = '';
  let i = 0;
  while (i < sql.length) {
    const c = sql[i] as string;
    if (c === "'" || c === '"') {
      let end = i + 1;
      while (end < sql.length && !(sql[end] === c && sql[end + 1] !== c)) end += sql[end] === c ? 2 : 1;
      out += sql.slice(i, end + 1);
      i = end + 1;
      continue;
    }
    if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      const stop = end < 0 ? sql.length : end;
      out += sql.slice(i, stop);
      i = stop;
      continue;
    }
    if (c === ':' && sql[i + 1] === ':') {
      out += '::';
      i += 2;
      continue;
    }
    const named = c === ':' ? /^:([A-Za-z0-9_]+)/.exec(sql.slice(i)) : null;
    if (named) {
      const name = named[1] as string;
      const n = index.get(name);
      if (n === undefined) throw validation(`Parameter ${name} is referenced but not given`);
      referenced.add(name);
      out += `$${n}`;
      i += named[0].length;
      continue;
    }
    out += c;
    i++;
  }
  if (!strict) {
    // In a batch, each statement gets only the parameters it references, renumbered.
    const used = [...referenced];
    const renumber = new Map(used.map((name, k) => [index.get(name) as number, k + 1]));
    return {
      text: out.replace(/\$(\d+)/g, (all, n: string) =>
        renumber.has(Number(n)) ? `$${renumber.get(Number(n))}` : all,
      ),
      values: used.map((name) => values[(index.get(name) as number) - 1] as string),
    };
  }
  for (const name of index.keys()) {
    if (!referenced.has(name)) throw validation(`Parameter ${name} is not referenced in the SQL`);
  }
  return { text: out, values };
}

/** A PostgreSQL text value as a Data API `Field` of a column of type `typeName`. */
function toField(value: string | null, typeName: string): Field {
  if (value === null) return { isNull: true };
  switch (typeName) {
    case 'int2':
    case 'int4':
      return { longValue: Number(value) };
    case 'int8':
      return Number.isSafeInteger(Number(value)) ? { longValue: Number(value) } : { stringValue: value };
    case 'float4':
    case 'float8':
      return { doubleValue: Number(value) };
    case 'bool':
      return { booleanValue: value === 't' || value === 'true' };
    default:
      return { stringValue: value };
  }
}
