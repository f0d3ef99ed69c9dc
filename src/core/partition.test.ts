import { describe, expect, it } from 'vitest';
import {
  escapePartitionValue,
  parsePartitionPath,
  partitionPrefix,
  unescapePartitionValue,
} from './partition.ts';

describe('partitionPrefix', () => {
  it('lays out k=v folders in key order under the table prefix', () => {
    expect(partitionPrefix('gharchive/events/', ['year', 'month', 'dayofmonth'], ['2015', '01', '01'])).toBe(
      'gharchive/events/year=2015/month=01/dayofmonth=01/',
    );
    expect(partitionPrefix('t/', [], [])).toBe('t/');
  });

  it('escapes unsafe characters as upper-case %XX, like Hive', () => {
    expect(partitionPrefix('t/', ['k'], ['a/b=c%d:e'])).toBe('t/k=a%2Fb%3Dc%25d%3Ae/');
    expect(escapePartitionValue('x?y#z')).toBe('x%3Fy%23z');
    expect(escapePartitionValue('tab\there')).toBe('tab%09here');
    expect(escapePartitionValue('back\\slash')).toBe('back%5Cslash');
    expect(escapePartitionValue('\u007f')).toBe('%7F');
  });

  it('leaves safe characters and unicode as they are', () => {
    expect(escapePartitionValue('plain-value_1.2 with space')).toBe('plain-value_1.2 with space');
    expect(escapePartitionValue('Zürich 東京 🙂')).toBe('Zürich 東京 🙂');
  });

  it('throws when the number of values differs from the number of keys', () => {
    expect(() => partitionPrefix('t/', ['year', 'month'], ['2015'])).toThrow(/1 values for 2 keys/);
    expect(() => partitionPrefix('t/', ['year'], ['2015', '01'])).toThrow(/2 values for 1 keys \(year\)/);
    expect(() => partitionPrefix('t/', [], ['x'])).toThrow();
  });
});

describe('parsePartitionPath', () => {
  const keys = ['region', 'stamp', 'label'];

  it.each([
    [['eu/west', '2024-01-01T00:00:00', 'a=b']],
    [['100%', 'x%2Fy', '%%41']],
    [['Zürich', '東京', '🙂 smile']],
    [['', 'quote"\'', '#?*[]^{}']],
    [['line\nbreak', 'ctrl\u0001', 'del\u007f']],
  ])('round-trips %j', (values) => {
    const prefix = partitionPrefix('db/table/', keys, values);
    // The path has exactly one folder per key: escaped values never add a `/`.
    expect(prefix.slice('db/table/'.length).split('/')).toHaveLength(keys.length + 1);
    const parsed = parsePartitionPath('db/table/', `${prefix}part-0.parquet`);
    expect(parsed).toEqual({ keys, values, fileName: 'part-0.parquet' });
  });

  it('parses an unpartitioned file', () => {
    expect(parsePartitionPath('db/table/', 'db/table/data.csv')).toEqual({
      keys: [],
      values: [],
      fileName: 'data.csv',
    });
  });

  it('keeps everything after the first = in the value', () => {
    expect(parsePartitionPath('t/', 't/k=a=b/f')).toEqual({ keys: ['k'], values: ['a=b'], fileName: 'f' });
  });

  it('returns undefined outside the prefix', () => {
    expect(parsePartitionPath('db/table/', 'db/other/year=2024/f.parquet')).toBeUndefined();
    expect(parsePartitionPath('db/table/', 'db/tab')).toBeUndefined();
    expect(parsePartitionPath('db/table/', 'x/db/table/year=2024/f')).toBeUndefined();
  });

  it('returns undefined for a folder that is not k=v', () => {
    expect(parsePartitionPath('t/', 't/2024/f.parquet')).toBeUndefined();
    expect(parsePartitionPath('t/', 't/year=2024/extra/f.parquet')).toBeUndefined();
    expect(parsePartitionPath('t/', 't/=2024/f.parquet')).toBeUndefined();
  });
});

describe('unescapePartitionValue', () => {
  it('reverses escaping with upper- or lower-case hex and leaves other % text alone', () => {
    expect(unescapePartitionValue('a%2fb%2Fc')).toBe('a/b/c');
    expect(unescapePartitionValue('100%')).toBe('100%');
    expect(unescapePartitionValue('%zz')).toBe('%zz');
  });
});
