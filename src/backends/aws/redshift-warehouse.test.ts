// Unit tests of the Redshift Data API warehouse's pure parts and of its wire middleware (real SDK
// deserializer on raw JSON, no network). The full contract runs in test/conformance/aws-redshift.test.ts.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

import { Readable } from 'node:stream';
import {
  ExecuteStatementCommand,
  GetStatementResultCommand,
  RedshiftDataClient,
} from '@aws-sdk/client-redshift-data';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { WarehouseError } from '../../core/ports/warehouse.ts';
import {
  copyStatement,
  fieldValue,
  installExactLongValues,
  isoTimestamp,
  RedshiftDataWarehouse,
  sqlStateOf,
  toDataApiSql,
} from './redshift-warehouse.ts';

const buckets = { landing: 'l', staging: 's', analytical: 'a', quarantine: 'q' };

describe('toDataApiSql', () => {
  it('rewrites $n outside literals, identifiers, comments and dollar quotes', () => {
    const sql = `SELECT $1, '$2 it''s', "col$3", $$ $1 $$, $tag$ $2 $tag$ -- $1\n, /* $2 */ $2::int, $1 FROM t WHERE x$1 = 0`;
    expect(toDataApiSql(sql, [5, 'x'])).toEqual({
      sql: `SELECT :p1, '$2 it''s', "col$3", $$ $1 $$, $tag$ $2 $tag$ -- $1\n, /* $2 */ :p2::int, :p1 FROM t WHERE x$1 = 0`,
      parameters: [
        { name: 'p1', value: '5' },
        { name: 'p2', value: 'x' },
      ],
    });
  });

  it('writes values as text and inlines NULL and empty strings', () => {
    expect(
      toDataApiSql('VALUES ($1, $2, $3, $4, $5, $6)', [
        -(2n ** 63n),
        false,
        new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6)),
        null,
        '',
        0.1,
      ]),
    ).toEqual({
      sql: "VALUES (:p1, :p2, :p3, NULL, '', :p6)",
      parameters: [
        { name: 'p1', value: '-9223372036854775808' },
        { name: 'p2', value: 'false' },
        { name: 'p3', value: '2024-01-02T03:04:05.006Z' },
        { name: 'p6', value: '0.1' },
      ],
    });
  });

  it('refuses a placeholder without a value (42P02)', () => {
    let error: unknown;
    try {
      toDataApiSql('SELECT $2', [1]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(WarehouseError);
    expect((error as WarehouseError).sqlState).toBe('42P02');
  });
});

describe('Redshift messages, values and COPY text', () => {
  it('derives SQLSTATEs from Redshift messages, preferring an explicit one', () => {
    expect(sqlStateOf('ERROR: syntax error at or near "SELEC"')).toBe('42601');
    expect(sqlStateOf('ERROR: relation "public.x" does not exist')).toBe('42P01');
    expect(sqlStateOf('ERROR: column "nope" does not exist in t')).toBe('42703');
    expect(sqlStateOf('ERROR: Cannot insert a NULL value into column label')).toBe('23502');
    expect(sqlStateOf('ERROR: division by zero')).toBe('22012');
    expect(sqlStateOf('ERROR: 1023 DETAIL: Serializable isolation violation on table - 123')).toBe('40001');
    expect(sqlStateOf('ERROR: something [SQLState: 57P01]')).toBe('57P01');
    expect(sqlStateOf('ERROR: something unknown')).toBeUndefined();
  });

  it('converts typed fields by ColumnMetadata.typeName', () => {
    expect(fieldValue({ isNull: true }, 'int8')).toBeNull();
    expect(fieldValue({ longValue: 42 }, 'int4')).toBe(42);
    expect(fieldValue({ stringValue: '9223372036854775807' }, 'int8')).toBe(9223372036854775807n);
    expect(fieldValue({ stringValue: '-9007199254740991' }, 'int8')).toBe(-9007199254740991);
    expect(fieldValue({ doubleValue: 10.99 }, 'float4')).toBe(10.99);
    expect(fieldValue({ booleanValue: true }, 'bool')).toBe(true);
    expect(fieldValue({ stringValue: '12345678901234567890.123' }, 'numeric')).toBe(
      '12345678901234567890.123',
    );
    expect(fieldValue({ stringValue: '2024-03-01 12:34:56.789' }, 'timestamp')).toBe(
      '2024-03-01T12:34:56.789Z',
    );
    expect(fieldValue({ stringValue: '2024-03-01 12:00:00.1+02' }, 'timestamptz')).toBe(
      '2024-03-01T10:00:00.100Z',
    );
    expect(fieldValue({ stringValue: '{"a":[1]}' }, 'super')).toEqual({ a: [1] });
    expect(fieldValue({ blobValue: new Uint8Array([1, 2]) }, 'varbyte')).toBe('AQI=');
    expect(isoTimestamp('2024-03-01 12:34:56')).toBe('2024-03-01T12:34:56.000Z');
  });

  it('writes the COPY statement and refuses names that are not identifiers', () => {
    expect(copyStatement('toll_table', ['a', '"B c"'], "s3://b/k'1.csv", 'arn:aws:iam::1:role/r')).toBe(
      `COPY toll_table (a, "B c") FROM 's3://b/k''1.csv' IAM_ROLE 'arn:aws:iam::1:role/r' FORMAT AS CSV EMPTYASNULL`,
    );
    expect(() => copyStatement('t; DROP TABLE x', ['a'], 's3://b/k', 'r')).toThrow(/not a table name/);
    expect(() => copyStatement('t', [], 's3://b/k', 'r')).toThrow(/no columns/);
  });
});

describe('installExactLongValues (real SDK deserializer on a raw GetStatementResult body)', () => {
  it('keeps 64-bit longValues exact and leaves safe ones as numbers', async () => {
    const body =
      '{"ColumnMetadata":[{"name":"v","typeName":"int8"}],"Records":[[{"longValue":9223372036854775807}],[{"longValue": -9007199254740993}],[{"longValue":42}],[{"stringValue":"{\\"longValue\\":12345678901234567}"}]],"TotalNumRows":4}';
    const client = new RedshiftDataClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'FAKE', secretAccessKey: 'FAKE' },
      requestHandler: {
        handle: async () => ({
          response: {
            statusCode: 200,
            headers: { 'content-type': 'application/x-amz-json-1.1' },
            body: Readable.from([Buffer.from(body)]),
          },
        }),
      } as never,
    });
    installExactLongValues(client);
    installExactLongValues(client); // once per client
    const page = await client.send(new GetStatementResultCommand({ Id: 'x' }));
    const values = (page.Records ?? []).map((r) => fieldValue(r[0] as never, 'int8'));
    expect(values).toEqual([9223372036854775807n, -9007199254740993n, 42, '{"longValue":12345678901234567}']);
  });
});

describe('RedshiftDataWarehouse requests', () => {
  it('retries a throttled ExecuteStatement, then fails with a retryable 57P03', async () => {
    const client = new RedshiftDataClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'F', secretAccessKey: 'F' },
    });
    const mock = mockClient(client);
    const throttled = Object.assign(new Error('Rate exceeded'), {
      name: 'ActiveStatementsExceededException',
    });
    mock.on(ExecuteStatementCommand).rejects(throttled);
    const sleeps: number[] = [];
    const warehouse = new RedshiftDataWarehouse(client, {
      workgroupName: 'wg',
      database: 'dev',
      copyRoleArn: 'arn:aws:iam::1:role/r',
      buckets,
      attempts: 3,
      clock: { now: () => new Date(0), sleep: async (ms) => void sleeps.push(ms) },
    });
    const error = await warehouse.execute('SELECT 1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WarehouseError);
    expect((error as WarehouseError).sqlState).toBe('57P03');
    expect((error as WarehouseError).retryable).toBe(true);
    expect(mock.commandCalls(ExecuteStatementCommand)).toHaveLength(3);
    expect(sleeps).toEqual([200, 400]);
    mock.restore();
  });
});
