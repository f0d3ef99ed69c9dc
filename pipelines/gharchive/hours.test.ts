import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.ts';
import {
  addHours,
  floorHour,
  hourFileName,
  hoursBetween,
  hourUnit,
  parseHourArg,
  parseHourFileName,
} from './hours.ts';

/** The UTC instant of a wall-clock hour, built without the code under test. */
const utc = (y: number, m: number, d: number, h = 0) => new Date(Date.UTC(y, m - 1, d, h));

describe('hour file names', () => {
  it('never zero-pads the hour', () => {
    expect(hourFileName(utc(2015, 1, 1, 0))).toBe('2015-01-01-0.json.gz');
    expect(hourFileName(utc(2015, 1, 1, 5))).toBe('2015-01-01-5.json.gz');
    expect(hourFileName(utc(2015, 1, 1, 15))).toBe('2015-01-01-15.json.gz');
    expect(hourFileName(utc(2015, 1, 1, 23))).toBe('2015-01-01-23.json.gz');
    expect(hourUnit(utc(2016, 2, 29, 9))).toBe('2016-02-29-9');
  });

  it('names the hour in UTC whatever the instant inside it', () => {
    expect(hourFileName(floorHour(new Date('2015-01-01T15:59:59.999Z')))).toBe('2015-01-01-15.json.gz');
    expect(floorHour(new Date('2015-01-01T15:59:59.999Z')).toISOString()).toBe('2015-01-01T15:00:00.000Z');
  });

  it.each([
    ['2015-01-01-22', utc(2015, 1, 1, 23)],
    ['2015-01-01-23', utc(2015, 1, 2, 0)],
    ['2015-01-31-23', utc(2015, 2, 1, 0)],
    ['2015-02-28-23', utc(2015, 3, 1, 0)],
    ['2016-02-28-23', utc(2016, 2, 29, 0)],
    ['2016-02-29-23', utc(2016, 3, 1, 0)],
    ['2015-12-31-23', utc(2016, 1, 1, 0)],
  ])('the hour after %s is %s', (unit, expected) => {
    const hour = parseHourFileName(unit);
    expect(hour).toBeDefined();
    const next = addHours(hour!, 1);
    expect(next.getTime()).toBe(expected.getTime());
    const [y, m, d] = [expected.getUTCFullYear(), expected.getUTCMonth() + 1, expected.getUTCDate()];
    const name = `${y}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}-${expected.getUTCHours()}.json.gz`;
    expect(hourFileName(next)).toBe(name);
  });

  it('spells the leap-day and new-year boundaries as GH Archive does', () => {
    expect(hourFileName(addHours(utc(2016, 2, 28, 23), 1))).toBe('2016-02-29-0.json.gz');
    expect(hourFileName(addHours(utc(2015, 12, 31, 23), 1))).toBe('2016-01-01-0.json.gz');
  });
});

describe('parseHourFileName', () => {
  it('parses names with and without the extension', () => {
    expect(parseHourFileName('2015-01-01-0.json.gz')?.getTime()).toBe(utc(2015, 1, 1, 0).getTime());
    expect(parseHourFileName('2015-01-01-15.json.gz')?.getTime()).toBe(utc(2015, 1, 1, 15).getTime());
    expect(parseHourFileName('2015-01-01-23')?.getTime()).toBe(utc(2015, 1, 1, 23).getTime());
    expect(parseHourFileName('2016-02-29-7')?.getTime()).toBe(utc(2016, 2, 29, 7).getTime());
  });

  it('round-trips every hour of a day', () => {
    for (let h = 0; h < 24; h++) {
      const hour = utc(2015, 6, 30, h);
      expect(parseHourFileName(hourFileName(hour))?.getTime()).toBe(hour.getTime());
    }
  });

  it.each([
    '2015-01-01-00',
    '2015-01-01-05.json.gz',
    '2015-01-01-24',
    '2015-01-01-99.json.gz',
    '2015-02-30-1',
    '2015-02-29-1.json.gz',
    '2015-13-01-1',
    '2015-00-01-1',
    '2015-01-00-1',
    '2015-1-1-1',
    '2015-01-01',
    '2015-01-01-1.json',
    '2015-01-01-1.ndjson.gz',
    'x2015-01-01-1.json.gz',
    '2015-01-01-1.json.gz.tmp',
    '2015-01-01-123',
    'garbage',
    '',
  ])('rejects %j', (name) => {
    expect(parseHourFileName(name)).toBeUndefined();
  });
});

describe('parseHourArg', () => {
  it.each([
    ['2015-01-01T00', utc(2015, 1, 1, 0)],
    ['2015-01-01T23', utc(2015, 1, 1, 23)],
    ['2015-01-01', utc(2015, 1, 1, 0)],
    ['2015-01-01T05:00:00Z', utc(2015, 1, 1, 5)],
    ['2015-01-01T05:00Z', utc(2015, 1, 1, 5)],
    ['2016-02-29T12', utc(2016, 2, 29, 12)],
    ['  2015-12-31T23  ', utc(2015, 12, 31, 23)],
  ])('accepts %j', (value, expected) => {
    expect(parseHourArg('--from', value).getTime()).toBe(expected.getTime());
  });

  it.each([
    '2015-13-01T00',
    '2015-01-01T24',
    '2015-02-30T00',
    '2015-02-29',
    '2015-00-10T00',
    '2015-01-32T00',
    '2015-01-01T05:30:00Z',
    '2015-01-01T5',
    'yesterday',
    '',
  ])('rejects %j with a UsageError naming the flag and the expected form', (value) => {
    let thrown: unknown;
    try {
      parseHourArg('--to', value);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(UsageError);
    const message = (thrown as Error).message;
    expect(message).toContain('--to');
    expect(message).toContain(`"${value}"`);
    expect(message).toContain('YYYY-MM-DDTHH');
    expect((thrown as UsageError).exitCode).toBe(2);
  });
});

describe('hoursBetween', () => {
  it('includes both ends', () => {
    const hours = hoursBetween(utc(2015, 12, 31, 22), utc(2016, 1, 1, 1));
    expect(hours.map((h) => h.toISOString())).toEqual([
      '2015-12-31T22:00:00.000Z',
      '2015-12-31T23:00:00.000Z',
      '2016-01-01T00:00:00.000Z',
      '2016-01-01T01:00:00.000Z',
    ]);
  });

  it('is one hour when from equals to', () => {
    expect(hoursBetween(utc(2015, 1, 1, 3), utc(2015, 1, 1, 3)).map((h) => h.getTime())).toEqual([
      utc(2015, 1, 1, 3).getTime(),
    ]);
  });

  it('covers a whole leap day with 24 hours', () => {
    const hours = hoursBetween(utc(2016, 2, 29, 0), utc(2016, 2, 29, 23));
    expect(hours).toHaveLength(24);
    expect(new Set(hours.map((h) => hourFileName(h).slice(0, 10)))).toEqual(new Set(['2016-02-29']));
  });

  it('is empty when reversed', () => {
    expect(hoursBetween(utc(2015, 1, 1, 5), utc(2015, 1, 1, 4))).toEqual([]);
    expect(hoursBetween(utc(2016, 1, 1, 0), utc(2015, 12, 31, 23))).toEqual([]);
  });
});
