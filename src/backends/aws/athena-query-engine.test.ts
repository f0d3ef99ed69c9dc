/**
 * Unit tests of {@link AthenaQueryEngine} with aws-sdk-client-mock (scripted Athena answers in the
 * shapes of the Athena API reference: StartQueryExecution, GetQueryExecution, GetQueryResults,
 * StopQueryExecution, https://docs.aws.amazon.com/athena/latest/APIReference/). Not AWS.
 */
import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  InvalidRequestException,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../core/clock.ts';
import { QueryError } from '../../core/errors.ts';
import type { CatalogTable } from '../../core/ports/catalog.ts';
import type { NamedQuery } from '../../core/query.ts';
import { AthenaQueryEngine, fromAthenaValue } from './athena-query-engine.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

/** Virtual time: `sleep` records the wait and moves `now` on at once. */
function virtualClock(): Clock & { sleeps: number[] } {
  let t = Date.parse('2026-03-01T12:00:00.000Z');
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => new Date(t),
    sleep: async (ms) => {
      sleeps.push(ms);
      t += ms;
    },
  };
}

function table(database: string, name: string, json: string[] = []): CatalogTable {
  return {
    database,
    name,
    location: { layer: 'analytical', prefix: `${database}/${name}/` },
    format: 'parquet',
    columns: [
      { name: 'id', type: 'bigint' },
      ...json.map((c) => ({ name: c, type: 'string' as const, logicalType: 'json' as const })),
    ],
    partitionKeys: [],
    schemaVersion: 1,
    createdAt: new Date(0),
    updatedAt: new Date(0),
  };
}

const catalog = {
  listTables: async () => [table('gharchive', 'events', ['payload']), table('hashtags', 'tweets')],
};

const athena = mockClient(AthenaClient);
const client = new AthenaClient({
  region: 'eu-west-1',
  credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
});

function succeedAfter(polls: number, statementType = 'DML'): void {
  const states = [...Array.from({ length: polls }, (_, i) => (i === 0 ? 'QUEUED' : 'RUNNING')), 'SUCCEEDED'];
  let call = 0;
  athena.on(GetQueryExecutionCommand).callsFake(async () => ({
    QueryExecution: {
      QueryExecutionId: 'q-1',
      StatementType: statementType,
      Status: { State: states[Math.min(call++, states.length - 1)] },
    },
  }));
}

const col = (Name: string, Type: string, extra: Record<string, unknown> = {}) => ({
  Name,
  Label: Name,
  Type,
  ...extra,
});
const row = (...values: (string | undefined)[]) => ({
  Data: values.map((v) => (v === undefined ? {} : { VarCharValue: v })),
});

describe('AthenaQueryEngine', () => {
  let clock: ReturnType<typeof virtualClock>;
  beforeEach(() => {
    athena.reset();
    clock = virtualClock();
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-1' });
  });
  afterEach(() => athena.reset());

  it('starts with the exact StartQueryExecution input, prefixing sluice databases', async () => {
    succeedAfter(0);
    athena
      .on(GetQueryResultsCommand)
      .resolves({ ResultSet: { Rows: [row('n')], ResultSetMetadata: { ColumnInfo: [col('n', 'bigint')] } } });
    const engine = await AthenaQueryEngine.open({
      client,
      workgroup: 'sluice-gharchive',
      outputLocation: 's3://acme-athena/results/',
      databasePrefix: 'acme_',
      catalog,
      clock,
    });
    await engine.query(
      "SELECT count(*) AS n FROM gharchive.events e WHERE e.type = 'gharchive.events' -- gharchive.events",
    );
    expect(athena.commandCalls(StartQueryExecutionCommand).map((c) => c.args[0].input)).toEqual([
      {
        QueryString:
          'SELECT count(*) AS n FROM "acme_gharchive".events e WHERE e.type = \'gharchive.events\' -- gharchive.events',
        QueryExecutionContext: { Catalog: 'AwsDataCatalog' },
        WorkGroup: 'sluice-gharchive',
        ResultConfiguration: { OutputLocation: 's3://acme-athena/results/' },
      },
    ]);
    expect(athena.commandCalls(GetQueryExecutionCommand)[0]!.args[0].input).toEqual({
      QueryExecutionId: 'q-1',
    });
    expect(athena.commandCalls(GetQueryResultsCommand)[0]!.args[0].input).toEqual({
      QueryExecutionId: 'q-1',
      MaxResults: 1000,
    });
  });

  it('sends no ResultConfiguration nor WorkGroup when not configured', async () => {
    succeedAfter(0);
    athena
      .on(GetQueryResultsCommand)
      .resolves({ ResultSet: { Rows: [], ResultSetMetadata: { ColumnInfo: [] } } });
    const engine = await AthenaQueryEngine.open({ client, databasePrefix: '', clock });
    await engine.query('SELECT 1');
    expect(athena.commandCalls(StartQueryExecutionCommand)[0]!.args[0].input).toEqual({
      QueryString: 'SELECT 1',
      QueryExecutionContext: { Catalog: 'AwsDataCatalog' },
    });
  });

  it('polls with exponential backoff from 100 ms, capped at 2 s', async () => {
    succeedAfter(8);
    athena
      .on(GetQueryResultsCommand)
      .resolves({ ResultSet: { Rows: [], ResultSetMetadata: { ColumnInfo: [] } } });
    const engine = await AthenaQueryEngine.open({ client, databasePrefix: '', clock });
    await engine.query('SELECT 1');
    expect(clock.sleeps).toEqual([100, 200, 400, 800, 1600, 2000, 2000, 2000]);
    expect(athena.commandCalls(GetQueryExecutionCommand)).toHaveLength(9);
  });

  it('throws QueryError with the StateChangeReason when the query fails or is cancelled', async () => {
    const engine = await AthenaQueryEngine.open({ client, databasePrefix: '', clock });
    athena.on(GetQueryExecutionCommand).resolves({
      QueryExecution: {
        Status: {
          State: 'FAILED',
          StateChangeReason: "line 1:15: Table 'awsdatacatalog.gharchive.nope' does not exist",
          AthenaError: { ErrorCategory: 2, ErrorType: 1301 },
        },
      },
    });
    const failed = await engine.query('SELECT * FROM gharchive.nope').catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(QueryError);
    expect((failed as Error).message).toBe(
      "Athena query q-1 failed: line 1:15: Table 'awsdatacatalog.gharchive.nope' does not exist",
    );
    athena.on(GetQueryExecutionCommand).resolves({
      QueryExecution: { Status: { State: 'CANCELLED', StateChangeReason: 'Query was cancelled by user' } },
    });
    await expect(engine.query('SELECT 1')).rejects.toThrow(/q-1 was cancelled: Query was cancelled by user/);
    expect(athena.commandCalls(GetQueryResultsCommand)).toHaveLength(0);
  });

  it('maps InvalidRequestException from StartQueryExecution to QueryError, throttling to a retryable error', async () => {
    const engine = await AthenaQueryEngine.open({ client, databasePrefix: '', clock });
    athena
      .on(StartQueryExecutionCommand)
      .rejects(
        new InvalidRequestException({ message: 'Queries of this type are not supported', $metadata: {} }),
      );
    await expect(engine.query('MSCK REPAIR TABLE x')).rejects.toThrow(QueryError);
    athena
      .on(StartQueryExecutionCommand)
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'TooManyRequestsException' }));
    await expect(engine.query('SELECT 1')).rejects.toMatchObject({ code: 'athena_error', retryable: true });
  });

  it('stops the query at timeoutMs and says so', async () => {
    athena.on(GetQueryExecutionCommand).resolves({ QueryExecution: { Status: { State: 'RUNNING' } } });
    athena.on(StopQueryExecutionCommand).resolves({});
    const engine = await AthenaQueryEngine.open({ client, databasePrefix: '', clock });
    const error = await engine.query('SELECT 1', { timeoutMs: 1000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QueryError);
    expect((error as Error).message).toMatch(/stopped after 1000 ms \(the time limit\)/);
    // 100 + 200 + 400 = 700, then the remaining 300 ms: 1000 ms in all.
    expect(clock.sleeps).toEqual([100, 200, 400, 300]);
    expect(athena.commandCalls(StopQueryExecutionCommand).map((c) => c.args[0].input)).toEqual([
      { QueryExecutionId: 'q-1' },
    ]);
  });

  it('reads every page, skips the header of the first only, and converts values by type', async () => {
    succeedAfter(1);
    const columns = [
      col('id', 'bigint'),
      col('big', 'bigint'),
      col('amount', 'double'),
      col('price', 'decimal', { Precision: 10, Scale: 2 }),
      col('ok', 'boolean'),
      col('day', 'date'),
      col('at', 'timestamp'),
      col('payload', 'varchar'),
      col('name', 'varchar'),
      col('tags', 'array'),
      col('n', 'integer'),
    ];
    athena
      .on(GetQueryResultsCommand, { NextToken: undefined })
      .resolves({
        ResultSet: {
          Rows: [
            row('id', 'big', 'amount', 'price', 'ok', 'day', 'at', 'payload', 'name', 'tags', 'n'),
            row(
              '1',
              '9007199254740999',
              '10.5',
              '12.30',
              'true',
              '2024-02-01',
              '2024-02-01 00:00:07.000',
              '{"a":[1,2]}',
              '{"a":1}',
              '[a, b]',
              '3',
            ),
          ],
          ResultSetMetadata: { ColumnInfo: columns },
        },
        NextToken: 'page-2',
      })
      .on(GetQueryResultsCommand, { NextToken: 'page-2' })
      .resolves({
        ResultSet: {
          Rows: [
            row(
              '2',
              '-5',
              'NaN',
              undefined,
              'false',
              undefined,
              '2024-02-01 00:00:07.123456',
              undefined,
              '',
              '[]',
              undefined,
            ),
          ],
          ResultSetMetadata: { ColumnInfo: columns },
        },
      });
    const engine = await AthenaQueryEngine.open({ client, databasePrefix: 'acme_', catalog, clock });
    const result = await engine.query('SELECT * FROM gharchive.events');
    expect(result.columns).toEqual([
      { name: 'id', type: 'BIGINT' },
      { name: 'big', type: 'BIGINT' },
      { name: 'amount', type: 'DOUBLE' },
      { name: 'price', type: 'DECIMAL(10,2)' },
      { name: 'ok', type: 'BOOLEAN' },
      { name: 'day', type: 'DATE' },
      { name: 'at', type: 'TIMESTAMP' },
      { name: 'payload', type: 'VARCHAR' },
      { name: 'name', type: 'VARCHAR' },
      { name: 'tags', type: 'ARRAY' },
      { name: 'n', type: 'INTEGER' },
    ]);
    expect(result.truncated).toBe(false);
    expect(result.rows).toEqual([
      {
        id: 1,
        big: 9007199254740999n,
        amount: 10.5,
        price: '12.30',
        ok: true,
        day: '2024-02-01',
        at: '2024-02-01T00:00:07.000Z',
        payload: { a: [1, 2] }, // a JSON column of gharchive.events: parsed
        name: '{"a":1}', // not a JSON column: text
        tags: ['a', 'b'],
        n: 3,
      },
      {
        id: 2,
        big: -5,
        amount: Number.NaN,
        price: null,
        ok: false,
        day: null,
        at: '2024-02-01T00:00:07.123Z',
        payload: null,
        name: '',
        tags: [],
        n: null,
      },
    ]);
    expect(athena.commandCalls(GetQueryResultsCommand).map((c) => c.args[0].input.NextToken)).toEqual([
      undefined,
      'page-2',
    ]);
  });

  it('does not skip a header for non-DML statements', async () => {
    succeedAfter(0, 'DDL');
    athena.on(GetQueryResultsCommand).resolves({
      ResultSet: {
        Rows: [row('events'), row('repos')],
        ResultSetMetadata: { ColumnInfo: [col('tab_name', 'string')] },
      },
    });
    const engine = await AthenaQueryEngine.open({ client, databasePrefix: '', clock });
    expect((await engine.query('SHOW TABLES IN gharchive')).rows).toEqual([
      { tab_name: 'events' },
      { tab_name: 'repos' },
    ]);
  });

  it('stops paging past maxRows and marks the result truncated', async () => {
    succeedAfter(0);
    const page = (from: number, count: number, header: boolean) => [
      ...(header ? [row('id')] : []),
      ...Array.from({ length: count }, (_, i) => row(String(from + i))),
    ];
    athena
      .on(GetQueryResultsCommand, { NextToken: undefined })
      .resolves({
        ResultSet: { Rows: page(1, 3, true), ResultSetMetadata: { ColumnInfo: [col('id', 'integer')] } },
        NextToken: 't2',
      })
      .on(GetQueryResultsCommand, { NextToken: 't2' })
      .resolves({
        ResultSet: { Rows: page(4, 4, false), ResultSetMetadata: { ColumnInfo: [col('id', 'integer')] } },
        NextToken: 't3',
      });
    const engine = await AthenaQueryEngine.open({ client, databasePrefix: '', clock });
    const cut = await engine.query('SELECT id FROM t', { maxRows: 5 });
    expect(cut.rows.map((r) => r.id)).toEqual([1, 2, 3, 4, 5]);
    expect(cut.truncated).toBe(true);
    // Pages asked for maxRows + 2 rows (header + one more to know there are more); page t3 is never read.
    expect(
      athena
        .commandCalls(GetQueryResultsCommand)
        .map((c) => [c.args[0].input.NextToken, c.args[0].input.MaxResults]),
    ).toEqual([
      [undefined, 7],
      ['t2', 4],
    ]);
  });

  describe('statement rewriting', () => {
    const top: NamedQuery = {
      database: 'hashtags',
      name: 'top_hashtags',
      description: 'top',
      sql: 'SELECT tag, count(*) AS n FROM hashtags.tweets WHERE at >= $since GROUP BY tag',
      parameters: { since: { type: 'timestamp', description: 'from', default: 'NULL' } },
    };
    const nested: NamedQuery = {
      database: 'hashtags',
      name: 'best',
      description: 'best',
      sql: 'SELECT tag FROM hashtags.top_hashtags ORDER BY n DESC LIMIT 1',
    };

    it('inlines named queries as aliased subqueries, nested ones too, with Glue database names', async () => {
      const engine = await AthenaQueryEngine.open({
        client,
        databasePrefix: 'acme_',
        catalog,
        namedQueries: [top, nested],
        clock,
      });
      const inner =
        'SELECT tag, count(*) AS n FROM "acme_hashtags".tweets WHERE at >= CAST(NULL AS TIMESTAMP) GROUP BY tag';
      expect(engine.rewrite('SELECT * FROM hashtags.top_hashtags WHERE n > 1').sql).toBe(
        `SELECT * FROM (${inner}) AS "top_hashtags" WHERE n > 1`,
      );
      expect(engine.rewrite('SELECT t.tag FROM "hashtags"."TOP_HASHTAGS" t').sql).toBe(
        `SELECT t.tag FROM (${inner}) t`,
      );
      expect(engine.rewrite('SELECT * FROM hashtags.best').sql).toBe(
        `SELECT * FROM (SELECT tag FROM (${inner}) AS "top_hashtags" ORDER BY n DESC LIMIT 1) AS "best"`,
      );
      expect(engine.rewrite('SELECT * FROM AwsDataCatalog.gharchive.events, other.events').sql).toBe(
        'SELECT * FROM AwsDataCatalog."acme_gharchive".events, other.events',
      );
      expect(engine.rewrite('SELECT * FROM gharchive.events').jsonColumns).toEqual(new Set(['payload']));
    });

    it('refuses a cycle of named queries', async () => {
      const a: NamedQuery = { database: 'd', name: 'a', description: '', sql: 'SELECT * FROM d.b' };
      const b: NamedQuery = { database: 'd', name: 'b', description: '', sql: 'SELECT * FROM d.a' };
      const engine = await AthenaQueryEngine.open({
        client,
        databasePrefix: '',
        namedQueries: [a, b],
        clock,
      });
      expect(() => engine.rewrite('SELECT * FROM d.a')).toThrow(/cycle: d.a -> d.b -> d.a/);
    });

    it('sandboxed: runs read-only statements only', async () => {
      const engine = await AthenaQueryEngine.open({ client, databasePrefix: '', sandboxed: true, clock });
      for (const sql of [
        'DROP TABLE gharchive.events',
        'INSERT INTO t VALUES (1)',
        "UNLOAD (SELECT 1) TO 's3://x/'",
      ]) {
        await expect(engine.query(sql)).rejects.toThrow(QueryError);
      }
      expect(athena.commandCalls(StartQueryExecutionCommand)).toHaveLength(0);
      expect(() => engine.rewrite('/* hi */ WITH x AS (SELECT 1) SELECT * FROM x')).not.toThrow();
    });
  });
});

describe('fromAthenaValue', () => {
  it('converts VarCharValue text by Athena type', () => {
    expect(fromAthenaValue(undefined, 'varchar')).toBeNull();
    expect(fromAthenaValue('9007199254740991', 'bigint')).toBe(9007199254740991);
    expect(fromAthenaValue('-9007199254740993', 'bigint')).toBe(-9007199254740993n);
    expect(fromAthenaValue('1.0E20', 'double')).toBe(1e20);
    expect(fromAthenaValue('-Infinity', 'real')).toBe(Number.NEGATIVE_INFINITY);
    expect(fromAthenaValue('123456789012345678901.5', 'decimal(22,1)')).toBe('123456789012345678901.5');
    expect(fromAthenaValue('2024-01-01 23:59:59.5', 'timestamp(3)')).toBe('2024-01-01T23:59:59.500Z');
    expect(fromAthenaValue('2024-01-01 01:00:00.000 UTC', 'timestamp(3) with time zone')).toBe(
      '2024-01-01T01:00:00.000Z',
    );
    expect(fromAthenaValue('2024-01-01 01:00:00.000 +01:00', 'timestamp with time zone')).toBe(
      '2024-01-01T00:00:00.000Z',
    );
    expect(fromAthenaValue('68 69', 'varbinary')).toBe(Buffer.from('hi').toString('base64'));
    expect(fromAthenaValue('{"a":[1,null]}', 'json')).toEqual({ a: [1, null] });
    expect(fromAthenaValue('[1, 2, 3]', 'array')).toEqual([1, 2, 3]);
    expect(fromAthenaValue('[[a, b], [], null]', 'array')).toEqual([['a', 'b'], [], null]);
    expect(fromAthenaValue('{k1=v1, k2=[x, y]}', 'map')).toEqual({ k1: 'v1', k2: ['x', 'y'] });
    expect(fromAthenaValue('{name=ann, age=3}', 'row')).toEqual({ name: 'ann', age: '3' });
    expect(fromAthenaValue('12:30:00.000', 'time')).toBe('12:30:00.000');
  });
});
