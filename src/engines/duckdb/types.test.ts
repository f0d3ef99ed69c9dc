import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ColumnType } from '../../core/schema.ts';
import { DuckDb, quoteString } from './duckdb.ts';
import { fromDuckDbType, toDuckDbType } from './types.ts';

/** Glue type -> DuckDB type, written out by hand from the two type systems' documentation. */
const GLUE_TO_DUCK: [ColumnType, string][] = [
  ['boolean', 'BOOLEAN'],
  ['tinyint', 'TINYINT'],
  ['smallint', 'SMALLINT'],
  ['int', 'INTEGER'],
  ['bigint', 'BIGINT'],
  ['float', 'FLOAT'],
  ['double', 'DOUBLE'],
  ['string', 'VARCHAR'],
  ['date', 'DATE'],
  ['timestamp', 'TIMESTAMP'],
  ['binary', 'BLOB'],
  ['decimal(10,2)', 'DECIMAL(10,2)'],
  ['decimal(38,0)', 'DECIMAL(38,0)'],
  ['decimal(1,1)', 'DECIMAL(1,1)'],
  ['array<int>', 'INTEGER[]'],
  ['array<array<string>>', 'VARCHAR[][]'],
  ['map<string,bigint>', 'MAP(VARCHAR, BIGINT)'],
  ['map<string,array<double>>', 'MAP(VARCHAR, DOUBLE[])'],
  ['struct<a:int,b:string>', 'STRUCT("a" INTEGER, "b" VARCHAR)'],
  [
    'struct<id:bigint,Name With Space:string,inner:struct<x:array<decimal(5,2)>,when:timestamp>>',
    'STRUCT("id" BIGINT, "Name With Space" VARCHAR, "inner" STRUCT("x" DECIMAL(5,2)[], "when" TIMESTAMP))',
  ],
  ['array<struct<k:string,v:map<string,int>>>', 'STRUCT("k" VARCHAR, "v" MAP(VARCHAR, INTEGER))[]'],
];

describe('toDuckDbType', () => {
  it.each(GLUE_TO_DUCK)('%s -> %s', (glue, duck) => {
    expect(toDuckDbType({ type: glue })).toBe(duck);
  });

  it('maps a JSON string column to JSON', () => {
    expect(toDuckDbType({ type: 'string', logicalType: 'json' })).toBe('JSON');
  });

  it('accepts the other spellings Glue and Hive use', () => {
    expect(toDuckDbType({ type: 'decimal' })).toBe('DECIMAL(10,0)');
    expect(toDuckDbType({ type: 'decimal(12, 4)' as ColumnType })).toBe('DECIMAL(12,4)');
    expect(toDuckDbType({ type: 'varchar(20)' })).toBe('VARCHAR');
    expect(toDuckDbType({ type: 'integer' as ColumnType })).toBe('INTEGER');
    expect(toDuckDbType({ type: 'BIGINT' as ColumnType })).toBe('BIGINT');
    expect(toDuckDbType({ type: 'ARRAY<INT>' as ColumnType })).toBe('INTEGER[]');
  });

  it('quotes struct field names, doubling embedded quotes', () => {
    expect(toDuckDbType({ type: 'struct<select:int,x"y:string>' })).toBe(
      'STRUCT("select" INTEGER, "x""y" VARCHAR)',
    );
  });

  it('rejects unknown types', () => {
    expect(() => toDuckDbType({ type: 'uuid' as ColumnType })).toThrow(/unsupported catalog type "uuid"/);
    expect(() => toDuckDbType({ type: 'array<>' as ColumnType })).toThrow(/unsupported/);
  });
});

describe('fromDuckDbType', () => {
  it.each(GLUE_TO_DUCK)('%s <- %s', (glue, duck) => {
    expect(fromDuckDbType(duck)).toEqual({ type: glue });
  });

  it('maps JSON to a string with the json logical type', () => {
    expect(fromDuckDbType('JSON')).toEqual({ type: 'string', logicalType: 'json' });
    expect(fromDuckDbType(' json ')).toEqual({ type: 'string', logicalType: 'json' });
  });

  it('maps JSON nested in lists and structs to string', () => {
    expect(fromDuckDbType('JSON[]')).toEqual({ type: 'array<string>' });
    expect(fromDuckDbType('STRUCT(c JSON[], d JSON)')).toEqual({ type: 'struct<c:array<string>,d:string>' });
  });

  it('maps the types Glue lacks to the nearest wider one', () => {
    expect(fromDuckDbType('UTINYINT').type).toBe('smallint');
    expect(fromDuckDbType('USMALLINT').type).toBe('int');
    expect(fromDuckDbType('UINTEGER').type).toBe('bigint');
    expect(fromDuckDbType('UBIGINT').type).toBe('decimal(20,0)');
    expect(fromDuckDbType('HUGEINT').type).toBe('decimal(38,0)');
    expect(fromDuckDbType('TIMESTAMP WITH TIME ZONE').type).toBe('timestamp');
    expect(fromDuckDbType('TIMESTAMP_NS').type).toBe('timestamp');
    expect(fromDuckDbType('UUID').type).toBe('string');
    expect(fromDuckDbType('INTEGER[3]').type).toBe('array<int>');
  });

  it('reads unquoted, quoted and quote-escaped struct field names', () => {
    expect(
      fromDuckDbType('STRUCT("a b" INTEGER, "Select" VARCHAR, "x""y" DOUBLE[], n STRUCT(z BIGINT))'),
    ).toEqual({ type: 'struct<a b:int,Select:string,x"y:array<double>,n:struct<z:bigint>>' });
    expect(fromDuckDbType('STRUCT("a,b" INTEGER, "c(d" VARCHAR)')).toEqual({
      type: 'struct<a,b:int,c(d:string>',
    });
  });

  it('rejects types it does not know', () => {
    expect(() => fromDuckDbType('GEOMETRY')).toThrow(/unsupported DuckDB type "GEOMETRY"/);
  });
});

describe('round trips', () => {
  it.each(GLUE_TO_DUCK)('Glue %s -> DuckDB -> Glue', (glue) => {
    expect(fromDuckDbType(toDuckDbType({ type: glue }))).toEqual({ type: glue });
  });

  it('keeps the json logical type', () => {
    expect(fromDuckDbType(toDuckDbType({ type: 'string', logicalType: 'json' }))).toEqual({
      type: 'string',
      logicalType: 'json',
    });
  });
});

describe('against what DuckDB prints', () => {
  let db: DuckDb;
  beforeAll(async () => {
    db = await DuckDb.open({ threads: 1 });
  });
  afterAll(() => db.close());

  async function describeQuery(sql: string): Promise<Map<string, string>> {
    const { rows } = await db.all(`DESCRIBE ${sql}`);
    return new Map(rows.map((r) => [String(r.column_name), String(r.column_type)]));
  }

  it.each(GLUE_TO_DUCK)('understands DESCRIBE of a %s column', async (glue) => {
    const described = await describeQuery(`SELECT CAST(NULL AS ${toDuckDbType({ type: glue })}) AS c`);
    expect(fromDuckDbType(described.get('c') ?? '')).toEqual({ type: glue });
  });

  it('understands DESCRIBE of values built by a query', async () => {
    const described = await describeQuery(`SELECT
        true AS b,
        42::TINYINT AS ti,
        42::SMALLINT AS si,
        42 AS i,
        9007199254740993 AS bi,
        1.5::FLOAT AS f,
        1.5::DOUBLE AS d,
        12.345 AS dec,
        123456789012345678901234567890::HUGEINT AS h,
        'text' AS s,
        DATE '2024-02-29' AS dt,
        TIMESTAMP '2024-02-29 12:00:00' AS ts,
        TIMESTAMPTZ '2024-02-29 12:00:00+00' AS tstz,
        '\\xAA\\xBB'::BLOB AS bl,
        [1, 2, 3] AS arr,
        [['a'], ['b', 'c']] AS arr2,
        MAP {'k': 1.5::DOUBLE} AS m,
        {'a b': 1, 'Select': 'x', 'x"y': [1.5::DOUBLE], 'n': {'z': 1::BIGINT}} AS st,
        [{'k': 'v'}] AS arr_st,
        '{"a": [1, 2]}'::JSON AS j`);
    const expected: Record<string, { type: ColumnType; logicalType?: 'json' }> = {
      b: { type: 'boolean' },
      ti: { type: 'tinyint' },
      si: { type: 'smallint' },
      i: { type: 'int' },
      bi: { type: 'bigint' },
      f: { type: 'float' },
      d: { type: 'double' },
      dec: { type: 'decimal(5,3)' },
      h: { type: 'decimal(38,0)' },
      s: { type: 'string' },
      dt: { type: 'date' },
      ts: { type: 'timestamp' },
      tstz: { type: 'timestamp' },
      bl: { type: 'binary' },
      arr: { type: 'array<int>' },
      arr2: { type: 'array<array<string>>' },
      m: { type: 'map<string,double>' },
      st: { type: 'struct<a b:int,Select:string,x"y:array<double>,n:struct<z:bigint>>' },
      arr_st: { type: 'array<struct<k:string>>' },
      j: { type: 'string', logicalType: 'json' },
    };
    expect([...described.keys()]).toEqual(Object.keys(expected));
    for (const [name, type] of described)
      expect(fromDuckDbType(type), `${name}: ${type}`).toEqual(expected[name]);
  });

  it('understands DESCRIBE of NDJSON whose values have mixed types', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-types-'));
    try {
      const file = path.join(dir, 'mixed.ndjson');
      await writeFile(file, '{"a":[1,"x"],"b":{"c":[1,{"d":2}]},"e":1}\n{"a":[2],"b":{"c":[]},"e":"x"}\n');
      const described = await describeQuery(`SELECT * FROM read_json_auto(${quoteString(file)})`);
      expect(fromDuckDbType(described.get('a') ?? '')).toEqual({ type: 'array<string>' });
      expect(fromDuckDbType(described.get('b') ?? '')).toEqual({ type: 'struct<c:array<string>>' });
      expect(fromDuckDbType(described.get('e') ?? '')).toEqual({ type: 'string', logicalType: 'json' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
