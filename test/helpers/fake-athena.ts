/**
 * A FAKE Amazon Athena for tests: aws-sdk-client-mock on an `AthenaClient` whose
 * `StartQueryExecution` runs the statement on DuckDB, over views it builds from a FAKE Glue
 * (test/helpers/fake-glue.ts) the way Athena reads the Glue Data Catalog: one view
 * `"<glue database>"."<table>"` per table, reading the files under each registered partition's
 * `Location` only (an unregistered directory stays invisible), with the table's declared columns
 * cast to their Glue types (missing ones NULL) and the partition keys as typed columns whose
 * values come from the partition's `Values`. `s3://bucket/key` locations map to local files
 * through `bucketDirs`.
 *
 * This is not Athena: SQL is DuckDB's dialect, not Trino's, and error messages are DuckDB's. What
 * it reproduces faithfully is the API's shape, which is what the adapter depends on
 * (https://docs.aws.amazon.com/athena/latest/APIReference/):
 * - states `QUEUED` → `RUNNING` → `SUCCEEDED`/`FAILED` over successive `GetQueryExecution` polls;
 *   `StopQueryExecution` makes it `CANCELLED`; a failure has `StateChangeReason` and `AthenaError`;
 * - `GetQueryResults` before success is an `InvalidRequestException`; pages of at most
 *   `MaxResults` (≤1,000) rows with an opaque `NextToken`; for SELECTs (`StatementType` `DML`)
 *   the first row of the first page is the header; values are `Data[].VarCharValue` text as
 *   Athena prints them (timestamps `2024-01-01 00:00:07.000`, doubles `10.5`, arrays `[a, b]`,
 *   rows and maps `{k=v}`), NULL is a `Datum` without `VarCharValue`;
 * - `ResultSetMetadata.ColumnInfo` has Athena's type names (`varchar`, `bigint`, `integer`,
 *   `double`, `decimal` with `Precision`/`Scale`, `timestamp`, `date`, `boolean`, `array`, `map`,
 *   `row`, `json`, `varbinary`).
 */
import { randomUUID } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import {
  AthenaClient,
  type ColumnInfo,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  InvalidRequestException,
  type QueryExecution,
  type Row,
  StartQueryExecutionCommand,
  type StartQueryExecutionInput,
  StopQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import type { Partition, Table } from '@aws-sdk/client-glue';
import type { DuckDBType, DuckDBValue } from '@duckdb/node-api';
import { type AwsStub, mockClient } from 'aws-sdk-client-mock';
import { DuckDb, quoteIdent, quoteString } from '../../src/engines/duckdb/duckdb.ts';
import { toDuckDbType } from '../../src/engines/duckdb/types.ts';
import type { FakeGlue } from './fake-glue.ts';

/** One query the fake ran. */
export interface FakeExecution {
  readonly id: string;
  readonly input: StartQueryExecutionInput;
  polls: number;
  state: 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';
  reason?: string;
  statementType: 'DML' | 'DDL' | 'UTILITY';
  columns: ColumnInfo[];
  /** Header row (for DML) then data rows, in Athena's shape. */
  rows: Row[];
  /** Settles when DuckDB is done. */
  done: Promise<void>;
}

/** What {@link installFakeAthena} returns. */
export interface FakeAthena {
  readonly client: AthenaClient;
  // biome-ignore lint/suspicious/noExplicitAny: aws-sdk-client-mock's stub type is generic over any client
  readonly mock: AwsStub<any, any, any>;
  readonly executions: Map<string, FakeExecution>;
  /** Closes DuckDB and removes the mock. */
  close(): Promise<void>;
}

const meta = { $metadata: {} };

/**
 * Installs the fake on `client` (a new `AthenaClient` by default).
 * @param options.glue the fake Glue whose tables the statements see.
 * @param options.bucketDirs local directory of each bucket (`s3://<bucket>/<key>` is `<dir>/<key>`).
 * @param options.objectSuffix when set, the object `<key>` is the file `<dir>/<key><objectSuffix>`
 *   and other files are not objects: `'._S3rver_object'` with `bucketDirs` `<s3rver directory>/<bucket>`
 *   reads what s3rver's FilesystemStore holds (it keeps `._S3rver_metadata.json` and
 *   `._S3rver_object.md5` files beside each object). Default: every file is an object.
 * @param options.pollsBeforeRunning / pollsBeforeDone polls answered `QUEUED`, then `RUNNING` (default 1 each).
 */
export function installFakeAthena(options: {
  glue: FakeGlue;
  bucketDirs: Readonly<Record<string, string>>;
  objectSuffix?: string;
  client?: AthenaClient;
  pollsQueued?: number;
  pollsRunning?: number;
}): FakeAthena {
  const client =
    options.client ??
    new AthenaClient({ region: 'us-east-1', credentials: { accessKeyId: 'FAKE', secretAccessKey: 'FAKE' } });
  const mock = mockClient(client);
  const executions = new Map<string, FakeExecution>();
  const queued = options.pollsQueued ?? 1;
  const running = options.pollsRunning ?? 1;
  let db: Promise<DuckDb> | undefined;
  let chain: Promise<unknown> = Promise.resolve();

  const run = async (execution: FakeExecution): Promise<void> => {
    db ??= DuckDb.open({ threads: 1 });
    const duck = await db;
    try {
      await defineViews(duck, options.glue, options.bucketDirs, options.objectSuffix ?? '');
      const sql = execution.input.QueryString ?? '';
      const reader = await duck.connection.runAndReadAll(sql);
      const names = reader.columnNames();
      const types = reader.columnTypes();
      const dml = /^\s*(\(|select\b|with\b|values\b|table\b)/i.test(sql);
      execution.statementType = dml ? 'DML' : /^\s*(show|describe|explain)\b/i.test(sql) ? 'UTILITY' : 'DDL';
      execution.columns = names.map((name, i) => columnInfo(name, types[i]!));
      const data: Row[] = reader.getRows().map((row) => ({
        Data: row.map((value, i) => (value === null ? {} : { VarCharValue: formatValue(value, types[i]!) })),
      }));
      execution.rows = dml ? [{ Data: names.map((n) => ({ VarCharValue: n })) }, ...data] : data;
      execution.state = 'SUCCEEDED';
    } catch (error) {
      execution.state = 'FAILED';
      execution.reason = (error as Error).message;
    }
  };

  mock.on(StartQueryExecutionCommand).callsFake(async (input: StartQueryExecutionInput) => {
    if (!input.QueryString)
      throw new InvalidRequestException({ message: 'QueryString is required', ...meta });
    const id = randomUUID();
    const execution: FakeExecution = {
      id,
      input: structuredClone(input),
      polls: 0,
      state: 'QUEUED',
      statementType: 'DML',
      columns: [],
      rows: [],
      done: Promise.resolve(),
    };
    executions.set(id, execution);
    // One DuckDB connection: statements run one after another, as they were started.
    const done = chain.then(() => run(execution));
    chain = done;
    execution.done = done;
    // The state seen by polls is kept separately until enough polls have happened.
    execution.state = 'QUEUED';
    return { QueryExecutionId: id };
  });

  const finalState = new Map<string, FakeExecution['state']>();
  mock.on(GetQueryExecutionCommand).callsFake(async (input: { QueryExecutionId?: string }) => {
    const execution = executions.get(input.QueryExecutionId ?? '');
    if (!execution)
      throw new InvalidRequestException({
        message: `QueryExecution ${input.QueryExecutionId} was not found`,
        ...meta,
      });
    execution.polls++;
    let state: FakeExecution['state'];
    if (finalState.get(execution.id) === 'CANCELLED') state = 'CANCELLED';
    else if (execution.polls <= queued) state = 'QUEUED';
    else if (execution.polls <= queued + running) state = 'RUNNING';
    else {
      await execution.done;
      state = execution.state;
      finalState.set(execution.id, state);
    }
    const queryExecution: QueryExecution = {
      QueryExecutionId: execution.id,
      Query: execution.input.QueryString,
      StatementType: execution.statementType,
      QueryExecutionContext: execution.input.QueryExecutionContext,
      WorkGroup: execution.input.WorkGroup ?? 'primary',
      Status: {
        State: state,
        SubmissionDateTime: new Date(),
        ...(state === 'FAILED'
          ? {
              StateChangeReason: execution.reason,
              AthenaError: {
                ErrorCategory: 2,
                ErrorType: 1006,
                Retryable: false,
                ErrorMessage: execution.reason,
              },
            }
          : {}),
        ...(state === 'CANCELLED' ? { StateChangeReason: 'Query was cancelled by user' } : {}),
      },
    };
    return { QueryExecution: queryExecution };
  });

  mock.on(StopQueryExecutionCommand).callsFake(async (input: { QueryExecutionId?: string }) => {
    const execution = executions.get(input.QueryExecutionId ?? '');
    if (!execution)
      throw new InvalidRequestException({
        message: `QueryExecution ${input.QueryExecutionId} was not found`,
        ...meta,
      });
    if (finalState.get(execution.id) === undefined) finalState.set(execution.id, 'CANCELLED');
    return {};
  });

  mock
    .on(GetQueryResultsCommand)
    .callsFake(async (input: { QueryExecutionId?: string; NextToken?: string; MaxResults?: number }) => {
      const execution = executions.get(input.QueryExecutionId ?? '');
      const state = execution ? finalState.get(execution.id) : undefined;
      if (!execution || state !== 'SUCCEEDED') {
        throw new InvalidRequestException({
          message: `Query has not yet finished. Current state: ${state ?? 'RUNNING'}`,
          ...meta,
        });
      }
      const max = input.MaxResults ?? 1000;
      if (max < 1 || max > 1000) {
        throw new InvalidRequestException({ message: 'MaxResults must be between 1 and 1000', ...meta });
      }
      const start = input.NextToken ? Number(Buffer.from(input.NextToken, 'base64').toString()) : 0;
      const end = start + max;
      return {
        UpdateCount: 0,
        ResultSet: {
          Rows: structuredClone(execution.rows.slice(start, end)),
          ResultSetMetadata: { ColumnInfo: structuredClone(execution.columns) },
        },
        ...(end < execution.rows.length ? { NextToken: Buffer.from(String(end)).toString('base64') } : {}),
      };
    });

  return {
    client,
    mock,
    executions,
    close: async () => {
      mock.restore();
      if (db) (await db).close();
    },
  };
}

/** (Re)defines one view per Glue table of the fake, as Athena would read it. */
async function defineViews(
  duck: DuckDb,
  glue: FakeGlue,
  bucketDirs: Readonly<Record<string, string>>,
  objectSuffix: string,
) {
  for (const [database, tables] of glue.state.tables) {
    await duck.run(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(database)}`);
    for (const [name, entry] of tables) {
      const table = entry.versions[entry.versions.length - 1]!;
      const view = `${quoteIdent(database)}.${quoteIdent(name)}`;
      let select: string;
      try {
        select = await tableSelect(duck, table, [...entry.partitions.values()], bucketDirs, objectSuffix);
      } catch (error) {
        const message = `table ${database}.${name} cannot be read: ${(error as Error).message.split('\n')[0]}`;
        select = `SELECT NULL AS error FROM range(1) WHERE error(${quoteString(message)}) IS NULL`;
      }
      await duck.run(`CREATE OR REPLACE VIEW ${view} AS ${select}`);
    }
  }
}

async function tableSelect(
  duck: DuckDb,
  table: Table,
  partitions: readonly Partition[],
  bucketDirs: Readonly<Record<string, string>>,
  objectSuffix: string,
): Promise<string> {
  const columns = (table.StorageDescriptor?.Columns ?? []).map((c) => ({
    name: c.Name!,
    type: duckType(c.Type!),
  }));
  const keys = (table.PartitionKeys ?? []).map((c) => ({ name: c.Name!, type: duckType(c.Type!) }));
  const classification = table.Parameters?.classification;
  if (classification === 'python-dict')
    throw new Error('HIVE_UNKNOWN_ERROR: no SerDe reads python-dict files');
  const empty = `SELECT ${[...columns, ...keys].map((c) => `CAST(NULL AS ${c.type}) AS ${quoteIdent(c.name)}`).join(', ')} WHERE false`;
  const sources: { location: string | undefined; values: string[] }[] =
    keys.length === 0
      ? [{ location: table.StorageDescriptor?.Location, values: [] }]
      : partitions.map((p) => ({ location: p.StorageDescriptor?.Location, values: p.Values ?? [] }));
  const selects: string[] = [];
  for (const source of sources) {
    const files = await filesAt(source.location, bucketDirs, objectSuffix);
    if (files.length === 0) continue;
    const list = `[${files.map(quoteString).join(', ')}]`;
    const reader =
      classification === 'json'
        ? `read_json_auto(${list}, format = 'newline_delimited', union_by_name = true)`
        : classification === 'csv'
          ? `read_csv_auto(${list}, header = true, union_by_name = true)`
          : `read_parquet(${list}, union_by_name = true)`;
    const present = new Set(
      (await duck.all(`DESCRIBE SELECT * FROM ${reader}`)).rows.map((r) =>
        String(r.column_name).toLowerCase(),
      ),
    );
    const projected = columns.map((c) =>
      present.has(c.name.toLowerCase())
        ? `CAST(${quoteIdent(c.name)} AS ${c.type}) AS ${quoteIdent(c.name)}`
        : `CAST(NULL AS ${c.type}) AS ${quoteIdent(c.name)}`,
    );
    const keyValues = keys.map(
      (k, i) => `CAST(${quoteString(source.values[i] ?? '')} AS ${k.type}) AS ${quoteIdent(k.name)}`,
    );
    selects.push(`SELECT ${[...projected, ...keyValues].join(', ')} FROM ${reader}`);
  }
  return selects.length === 0 ? empty : selects.join(' UNION ALL ');
}

function duckType(glueType: string): string {
  // Athena sees a JSON column as the `string` Glue declares: VARCHAR, not DuckDB's JSON.
  return toDuckDbType({ type: glueType as never });
}

/**
 * Local files under an `s3://bucket/prefix` location, recursively, skipping `_`/`.` names (Athena
 * ignores them); with an `objectSuffix`, only files ending with it (object files of s3rver).
 */
async function filesAt(
  location: string | undefined,
  bucketDirs: Readonly<Record<string, string>>,
  objectSuffix = '',
): Promise<string[]> {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(location ?? '');
  if (!m) return [];
  const base = bucketDirs[m[1]!];
  if (base === undefined) return [];
  const dir = path.join(base, m[2] ?? '');
  const out: string[] = [];
  const walk = async (at: string): Promise<void> => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(at, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (entry.name.startsWith('_') || entry.name.startsWith('.')) continue;
      const full = path.join(at, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (
        entry.isFile() &&
        entry.name.endsWith(objectSuffix) &&
        !entry.name.slice(0, entry.name.length - objectSuffix.length).endsWith('.part')
      )
        out.push(full);
    }
  };
  await walk(dir);
  return out;
}

/** Athena's `ColumnInfo` of a DuckDB result column. */
function columnInfo(name: string, type: DuckDBType): ColumnInfo {
  const text = type.alias ?? type.toString();
  const decimal = /^DECIMAL\((\d+),\s*(\d+)\)$/i.exec(text);
  const athena = athenaType(text);
  return {
    CatalogName: 'hive',
    SchemaName: '',
    TableName: '',
    Name: name,
    Label: name,
    Type: athena,
    Precision: decimal ? Number(decimal[1]) : athena === 'varchar' ? 2147483647 : 0,
    Scale: decimal ? Number(decimal[2]) : 0,
    Nullable: 'UNKNOWN',
    CaseSensitive: athena === 'varchar',
  };
}

function athenaType(duck: string): string {
  const t = duck.toUpperCase();
  if (t.endsWith('[]') || /^[A-Z]+\[\d+\]$/.test(t)) return 'array';
  if (t.startsWith('STRUCT')) return 'row';
  if (t.startsWith('MAP')) return 'map';
  if (t.startsWith('DECIMAL')) return 'decimal';
  const simple: Record<string, string> = {
    BOOLEAN: 'boolean',
    TINYINT: 'tinyint',
    SMALLINT: 'smallint',
    INTEGER: 'integer',
    BIGINT: 'bigint',
    HUGEINT: 'bigint',
    UTINYINT: 'smallint',
    USMALLINT: 'integer',
    UINTEGER: 'bigint',
    FLOAT: 'real',
    DOUBLE: 'double',
    VARCHAR: 'varchar',
    JSON: 'json',
    DATE: 'date',
    TIMESTAMP: 'timestamp',
    'TIMESTAMP WITH TIME ZONE': 'timestamp with time zone',
    BLOB: 'varbinary',
    TIME: 'time',
    UUID: 'uuid',
  };
  return simple[t] ?? 'varchar';
}

/** A DuckDB value as Athena prints it in `VarCharValue`. */
function formatValue(value: DuckDBValue, type: DuckDBType | undefined): string {
  const text = type ? (type.alias ?? type.toString()).toUpperCase() : '';
  if (value === null) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') {
    if (text === 'DOUBLE' || text === 'FLOAT') {
      if (Number.isNaN(value)) return 'NaN';
      if (!Number.isFinite(value)) return value > 0 ? 'Infinity' : '-Infinity';
      return Number.isInteger(value) && Math.abs(value) < 1e7 ? value.toFixed(1) : String(value);
    }
    return String(value);
  }
  if (typeof value === 'string') return value;
  const v = value as unknown as Record<string, unknown> & { toString(): string };
  if ('micros' in v && typeof v.micros === 'bigint') {
    const iso = new Date(Number(v.micros / 1000n)).toISOString().replace('T', ' ').replace('Z', '');
    return text.includes('TIME ZONE') ? `${iso} UTC` : iso;
  }
  if ('items' in v && Array.isArray(v.items)) {
    const element =
      type && 'valueType' in type ? (type as unknown as { valueType: DuckDBType }).valueType : undefined;
    return `[${(v.items as DuckDBValue[]).map((item) => formatValue(item, element)).join(', ')}]`;
  }
  if ('entries' in v && Array.isArray(v.entries)) {
    return `{${(v.entries as { key: DuckDBValue; value: DuckDBValue }[]).map((e) => `${formatValue(e.key, undefined)}=${formatValue(e.value, undefined)}`).join(', ')}}`;
  }
  if ('entries' in v && typeof v.entries === 'object' && v.entries !== null) {
    return `{${Object.entries(v.entries as Record<string, DuckDBValue>)
      .map(([k, item]) => `${k}=${formatValue(item, undefined)}`)
      .join(', ')}}`;
  }
  if ('bytes' in v && v.bytes instanceof Uint8Array) {
    return [...v.bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  }
  return v.toString();
}
