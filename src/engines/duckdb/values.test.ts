import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SqlValue } from '../../core/ports/query-engine.ts';
import { DuckDb } from './duckdb.ts';
import { stringifyJson, toSqlValue } from './values.ts';

const TWO_53 = 2n ** 53n;

describe('toSqlValue through a real DuckDB query', () => {
  let db: DuckDb;
  beforeAll(async () => {
    db = await DuckDb.open({ threads: 1 });
  });
  afterAll(() => db.close());

  /** The single row of `SELECT <select>`, with its column types. */
  async function row(select: string) {
    const result = await db.all(`SELECT ${select}`);
    expect(result.rows).toHaveLength(1);
    return {
      values: result.rows[0] as Record<string, SqlValue>,
      types: Object.fromEntries(result.columns.map((c) => [c.name, c.type])),
    };
  }

  it('returns BIGINT as a number within ±(2^53 - 1) and as an exact bigint beyond', async () => {
    const { values } = await row(`
      ${TWO_53 - 1n}::BIGINT AS max_safe,
      (${-(TWO_53 - 1n)})::BIGINT AS min_safe,
      ${TWO_53}::BIGINT AS two_53,
      ${TWO_53 + 1n}::BIGINT AS two_53_plus_1,
      (${-(TWO_53 + 1n)})::BIGINT AS neg,
      9223372036854775807::BIGINT AS max_bigint,
      0::BIGINT AS zero`);
    expect(values.max_safe).toBe(Number.MAX_SAFE_INTEGER);
    expect(values.min_safe).toBe(Number.MIN_SAFE_INTEGER);
    expect(values.two_53).toBe(TWO_53);
    expect(values.two_53_plus_1).toBe(TWO_53 + 1n);
    expect(values.neg).toBe(-(TWO_53 + 1n));
    expect(values.max_bigint).toBe(2n ** 63n - 1n);
    expect(values.zero).toBe(0);
  });

  it('returns HUGEINT and UBIGINT exactly', async () => {
    const { values, types } = await row(`
      1::HUGEINT AS small,
      170141183460469231731687303715884105727::HUGEINT AS max,
      (-170141183460469231731687303715884105727::HUGEINT - 1) AS min,
      18446744073709551615::UBIGINT AS umax`);
    expect(types.max).toBe('HUGEINT');
    expect(values.small).toBe(1);
    expect(values.max).toBe(2n ** 127n - 1n);
    expect(values.min).toBe(-(2n ** 127n));
    expect(values.umax).toBe(2n ** 64n - 1n);
  });

  it('returns TIMESTAMP and TIMESTAMPTZ as ISO-8601 UTC with milliseconds', async () => {
    const { values, types } = await row(`
      TIMESTAMP '2015-01-01 00:59:58.123' AS ts,
      TIMESTAMP '2016-02-29 23:00:00' AS leap,
      TIMESTAMPTZ '2024-06-01 00:30:00-05:30' AS tz,
      TIMESTAMPTZ '2024-06-01 12:00:00.5+02' AS tz2,
      TIMESTAMP '1960-07-04 10:11:12' AS old`);
    expect(types.tz).toBe('TIMESTAMP WITH TIME ZONE');
    expect(values.ts).toBe(new Date(Date.UTC(2015, 0, 1, 0, 59, 58, 123)).toISOString());
    expect(values.leap).toBe('2016-02-29T23:00:00.000Z');
    // 00:30 at UTC-05:30 is 06:00 UTC.
    expect(values.tz).toBe(new Date(Date.UTC(2024, 5, 1, 6, 0, 0)).toISOString());
    expect(values.tz2).toBe('2024-06-01T10:00:00.500Z');
    expect(values.old).toBe(new Date(Date.UTC(1960, 6, 4, 10, 11, 12)).toISOString());
  });

  it('returns DATE as YYYY-MM-DD', async () => {
    const { values } = await row(
      `DATE '2016-02-29' AS d, DATE '1960-05-06' AS old, DATE '2015-12-31' AS nye`,
    );
    expect(values).toEqual({ d: '2016-02-29', old: '1960-05-06', nye: '2015-12-31' });
  });

  it('returns DECIMAL as a number', async () => {
    const { values, types } = await row(
      `12.345::DECIMAL(10,3) AS d, (-0.5)::DECIMAL(4,2) AS neg, 7::DECIMAL(18,0) AS i`,
    );
    expect(types.d).toBe('DECIMAL(10,3)');
    expect(values.d).toBeCloseTo(12.345, 10);
    expect(values.neg).toBe(-0.5);
    expect(values.i).toBe(7);
  });

  it('parses JSON columns', async () => {
    const doc = { a: [1, 2, { b: 'c' }], n: null, t: true, s: 'é🙂' };
    const { values, types } = await row(`
      '${JSON.stringify(doc)}'::JSON AS obj,
      '[1, "x"]'::JSON AS arr,
      '"text"'::JSON AS str,
      'null'::JSON AS jnull,
      NULL::JSON AS sqlnull,
      '{"a": 1}'::VARCHAR AS notjson`);
    expect(types.obj).toBe('JSON');
    expect(values.obj).toEqual(doc);
    expect(values.arr).toEqual([1, 'x']);
    expect(values.str).toBe('text');
    expect(values.jnull).toBeNull();
    expect(values.sqlnull).toBeNull();
    expect(values.notjson).toBe('{"a": 1}');
  });

  it('converts lists element by element', async () => {
    const { values } = await row(`
      [1, 2, 3] AS ints,
      [${TWO_53 + 1n}::BIGINT, 5::BIGINT] AS bigs,
      [DATE '2020-01-02', NULL] AS dates,
      [TIMESTAMP '2020-01-02 03:04:05'] AS stamps,
      [['a'], [], ['b', 'c']] AS nested,
      []::INTEGER[] AS empty`);
    expect(values.ints).toEqual([1, 2, 3]);
    expect(values.bigs).toEqual([TWO_53 + 1n, 5]);
    expect(values.dates).toEqual(['2020-01-02', null]);
    expect(values.stamps).toEqual(['2020-01-02T03:04:05.000Z']);
    expect(values.nested).toEqual([['a'], [], ['b', 'c']]);
    expect(values.empty).toEqual([]);
  });

  it('converts structs field by field, with their types', async () => {
    const { values } = await row(`
      {'id': ${TWO_53 + 1n}::BIGINT, 'name': 'x', 'when': TIMESTAMP '2020-01-02 03:04:05', 'day': DATE '2020-01-03',
       'tags': ['a', 'b'], 'Odd "key", x': {'inner': DATE '2021-12-31', 'n': NULL::INTEGER}} AS s,
      [{'d': DATE '2022-02-02', 'k': 1}] AS list_of_structs`);
    expect(values.s).toEqual({
      id: TWO_53 + 1n,
      name: 'x',
      when: '2020-01-02T03:04:05.000Z',
      day: '2020-01-03',
      tags: ['a', 'b'],
      'Odd "key", x': { inner: '2021-12-31', n: null },
    });
    expect(values.list_of_structs).toEqual([{ d: '2022-02-02', k: 1 }]);
  });

  it('returns BLOB as base64', async () => {
    const { values } = await row(`'\\xAA\\xBB\\x00hi'::BLOB AS b, ''::BLOB AS empty`);
    expect(values.b).toBe(Buffer.from([0xaa, 0xbb, 0x00, 0x68, 0x69]).toString('base64'));
    expect(values.empty).toBe('');
  });

  it('returns NULL of any type as null', async () => {
    const { values } = await row(`
      NULL AS n, NULL::BIGINT AS b, NULL::TIMESTAMP AS t, NULL::DATE AS d, NULL::JSON AS j,
      NULL::INTEGER[] AS l, NULL::STRUCT(a INTEGER) AS s, NULL::BLOB AS x, NULL::VARCHAR AS v`);
    expect(Object.values(values)).toEqual(Array(9).fill(null));
  });

  it('keeps booleans, strings and doubles', async () => {
    const { values } = await row(
      `true AS t, false AS f, 'it''s' AS s, 1.5::DOUBLE AS d, 'NaN'::DOUBLE AS nan`,
    );
    expect(values.t).toBe(true);
    expect(values.f).toBe(false);
    expect(values.s).toBe("it's");
    expect(values.d).toBe(1.5);
    expect(values.nan).toBeNaN();
  });
});

describe('toSqlValue on plain values', () => {
  it('converts without a type', () => {
    expect(toSqlValue(undefined)).toBeNull();
    expect(toSqlValue(null)).toBeNull();
    expect(toSqlValue(5n)).toBe(5);
    expect(toSqlValue(-(TWO_53 + 1n))).toBe(-(TWO_53 + 1n));
    expect(toSqlValue('{"a":1}')).toBe('{"a":1}');
    expect(toSqlValue(new Date(Date.UTC(2020, 0, 2)))).toBe('2020-01-02T00:00:00.000Z');
    expect(toSqlValue(new Date(Number.NaN))).toBeNull();
    expect(toSqlValue(new Uint8Array([1, 2, 3]))).toBe('AQID');
    expect(toSqlValue({ months: 1, days: 2, micros: 3n })).toEqual({ months: 1, days: 2, micros: 3 });
  });

  it('uses the type for dates and JSON', () => {
    expect(toSqlValue(new Date(Date.UTC(2020, 0, 2)), 'DATE')).toBe('2020-01-02');
    expect(toSqlValue('{"a":[1]}', 'JSON')).toEqual({ a: [1] });
    expect(toSqlValue('not json', 'JSON')).toBe('not json');
    expect(toSqlValue([new Date(Date.UTC(2020, 0, 2))], 'DATE[]')).toEqual(['2020-01-02']);
    expect(toSqlValue({ '"q"': new Date(Date.UTC(2020, 0, 2)) }, 'STRUCT("""q""" DATE)')).toEqual({
      '"q"': '2020-01-02',
    });
    expect(toSqlValue({ plain: '[1]' }, 'STRUCT(plain JSON)')).toEqual({ plain: [1] });
  });
});

describe('stringifyJson', () => {
  it('writes bigints as exact JSON numbers', () => {
    const text = stringifyJson({ id: TWO_53 + 1n, n: 1, list: [-(2n ** 70n), 0n] });
    expect(text).toBe('{"id":9007199254740993,"n":1,"list":[-1180591620717411303424,0]}');
    expect(() => JSON.stringify({ id: 1n })).toThrow();
  });

  it('writes the exact digits a bigint-aware parser reads back', () => {
    const big = 2n ** 127n - 1n;
    const text = stringifyJson({ big });
    expect(/"big":(\d+)/.exec(text)?.[1]).toBe(big.toString());
  });

  it('leaves strings that look like the internal marker alone', () => {
    const tricky = {
      s: '\u0000bigint:12',
      t: 'bigint:5',
      '\u0000bigint:7': 'key',
      list: ['\u0000bigint:-1'],
    };
    expect(JSON.parse(stringifyJson(tricky))).toEqual(tricky);
  });

  it('indents like JSON.stringify when asked', () => {
    const value = { a: [1, { b: 'c' }], d: null };
    expect(stringifyJson(value, 2)).toBe(JSON.stringify(value, null, 2));
    expect(stringifyJson({ x: 3n }, 2)).toBe('{\n  "x": 3\n}');
  });

  it('writes top-level bigints and plain values', () => {
    expect(stringifyJson(TWO_53 + 1n)).toBe('9007199254740993');
    expect(stringifyJson('text')).toBe('"text"');
    expect(stringifyJson([null, true])).toBe('[null,true]');
  });
});
