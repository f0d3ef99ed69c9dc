import { describe, expect, it } from 'vitest';
import { encodeEventKey, nextEventSequencer } from './events.ts';
import { isHiddenKey, isHiddenSegment } from './layer.ts';

describe('encodeEventKey', () => {
  it('encodes as S3 notifications do: per segment, space as +, UTF-8 percent-escapes', () => {
    expect(encodeEventKey('red flower.jpg')).toBe('red+flower.jpg'); // the S3 user guide's example
    expect(encodeEventKey('a+b/c=d/é')).toBe('a%2Bb/c%3Dd/%C3%A9');
    expect(encodeEventKey('year=2015/part-0.parquet')).toBe('year%3D2015/part-0.parquet');
  });
});

describe('nextEventSequencer', () => {
  it('hands out 16 uppercase hex digits, strictly increasing, starting at the clock in ms << 20', () => {
    const before = BigInt(Date.now()) << 20n;
    const seen = Array.from({ length: 1000 }, () => nextEventSequencer());
    for (const s of seen) expect(s).toMatch(/^[0-9A-F]{16}$/);
    const values = seen.map((s) => BigInt(`0x${s}`));
    expect(values[0]! >= before).toBe(true);
    for (let i = 1; i < values.length; i++) expect(values[i]! > values[i - 1]!).toBe(true);
    // Same length, so string order (as S3 consumers compare) equals numeric order.
    expect([...seen].sort()).toEqual(seen);
  });
});

describe('hidden keys', () => {
  it('hides segments starting with _ or . and in-progress .part files', () => {
    expect(['_SUCCESS', '.staging', '_sluice_tmp'].map(isHiddenSegment)).toEqual([true, true, true]);
    expect(['year=2015', 'a_b', 'x.'].map(isHiddenSegment)).toEqual([false, false, false]);
    expect(isHiddenKey('t/year=2015/_SUCCESS')).toBe(true);
    expect(isHiddenKey('t/.tmp/part-0.parquet')).toBe(true);
    expect(isHiddenKey('t/part-0.parquet.part')).toBe(true);
    expect(isHiddenKey('t/year=2015/part-0.parquet')).toBe(false);
    expect(isHiddenKey('t/my_table/part.0.parquet')).toBe(false);
  });
});
