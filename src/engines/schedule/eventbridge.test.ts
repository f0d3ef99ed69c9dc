import { describe, expect, it } from 'vitest';
import { UsageError } from '../../core/errors.ts';
import {
  lastFireTimeBetween,
  nextFireTimes,
  type ParsedSchedule,
  parseScheduleExpression,
} from './eventbridge.ts';

/*
 * Expected fire times are written literally and worked out by hand from calendar facts, not
 * computed by the code under test. The calendar facts used below (all UTC):
 *   2026-11-21 Sat (the fixed `after` date), 2026-11-22 Sun, 2026-11-23 Mon, 2026-11-27 Fri,
 *   2026-11-30 Mon (November has 30 days), 2026-12-01 Tue, 2026-12-07 Mon, 2026-12-25 Fri,
 *   2026-12-31 Thu, 2027-01-01 Fri, 2027-01-04 Mon, 2027-01-29 Fri, 2027-01-31 Sun,
 *   2027-02-01 Mon, 2027-02-28 Sun (2027 is not a leap year), 2027-05-01 Sat, 2030-01-01 Tue.
 */

/** Saturday 2026-11-21, 14:37 UTC. */
const AFTER = new Date('2026-11-21T14:37:00Z');

function next(expression: string, count: number, after: Date = AFTER, anchor?: Date): string[] {
  return nextFireTimes(parseScheduleExpression(expression), after, count, anchor).map((d) => d.toISOString());
}

function last(expression: string, from: string, to: string, anchor?: Date): string | undefined {
  return lastFireTimeBetween(
    parseScheduleExpression(expression),
    new Date(from),
    new Date(to),
    anchor,
  )?.toISOString();
}

function parseError(expression: string): UsageError {
  try {
    parseScheduleExpression(expression);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return error as UsageError;
  }
  throw new Error(`${expression} was accepted`);
}

describe('parseScheduleExpression', () => {
  it('parses rate expressions', () => {
    expect(parseScheduleExpression('rate(1 minute)')).toEqual({
      kind: 'rate',
      value: 1,
      unit: 'minute',
      everyMs: 60_000,
      expression: 'rate(1 minute)',
    });
    expect(parseScheduleExpression('rate(5 minutes)')).toMatchObject({ unit: 'minute', everyMs: 300_000 });
    expect(parseScheduleExpression('rate(1 hour)')).toMatchObject({ unit: 'hour', everyMs: 3_600_000 });
    expect(parseScheduleExpression('rate(12 hours)')).toMatchObject({ unit: 'hour', everyMs: 43_200_000 });
    expect(parseScheduleExpression('rate(1 day)')).toMatchObject({ unit: 'day', everyMs: 86_400_000 });
    expect(parseScheduleExpression('rate(2 days)')).toMatchObject({
      value: 2,
      unit: 'day',
      everyMs: 172_800_000,
    });
  });

  it('keeps the fields as written and rewrites them for croner (seconds first, ? as *, a/n as a-max/n)', () => {
    expect(parseScheduleExpression('cron(0/15 * * * ? *)')).toEqual({
      kind: 'cron',
      fields: { minutes: '0/15', hours: '*', dayOfMonth: '*', month: '*', dayOfWeek: '?', year: '*' },
      cronerPattern: '0 0-59/15 * * * * *',
      expression: 'cron(0/15 * * * ? *)',
    });
    const pattern = (expression: string) =>
      (parseScheduleExpression(expression) as Extract<ParsedSchedule, { kind: 'cron' }>).cronerPattern;
    expect(pattern('cron(0 12 * * ? *)')).toBe('0 0 12 * * * *');
    // Day names become Quartz numbers (1=SUN): MON-FRI = 2-6.
    expect(pattern('cron(0 18 ? * MON-FRI *)')).toBe('0 0 18 * * 2-6 *');
    expect(pattern('cron(0 9 ? * MON#1 *)')).toBe('0 0 9 * * 2#1 *');
    // nL is croner's n#L; L alone is the last day of the week, Saturday (7).
    expect(pattern('cron(0 12 ? * 6L *)')).toBe('0 0 12 * * 6#L *');
    expect(pattern('cron(0 12 ? * FRIL *)')).toBe('0 0 12 * * 6#L *');
    expect(pattern('cron(0 12 ? * L *)')).toBe('0 0 12 * * 7 *');
    expect(pattern('cron(0 0 LW * ? *)')).toBe('0 0 0 LW * * *');
    expect(pattern('cron(0 0 15W * ? *)')).toBe('0 0 0 15W * * *');
    expect(pattern('cron(0 0 1 jan,Jul ? *)')).toBe('0 0 0 1 1,7 * *');
    // Year increments count from 1970, as AWS (Quartz) does; croner alone would count from year 0.
    expect(pattern('cron(0 0 1 1 ? */3)')).toBe('0 0 0 1 1 * 1970-2199/3');
    expect(pattern('cron(5/10 0-6/2 1/7 2/3 ? 2030/5)')).toBe('0 5-59/10 0-6/2 1-31/7 2-12/3 * 2030-2199/5');
  });
});

describe('cron examples from the AWS pages (eb-scheduled-rule-pattern, scheduler schedule-types)', () => {
  it('cron(0 10 * * ? *): 10:00 UTC every day', () => {
    // 10:00 on Saturday the 21st has passed at 14:37, so the next is Sunday the 22nd.
    expect(next('cron(0 10 * * ? *)', 3)).toEqual([
      '2026-11-22T10:00:00.000Z',
      '2026-11-23T10:00:00.000Z',
      '2026-11-24T10:00:00.000Z',
    ]);
  });

  it('cron(15 12 * * ? *): 12:15 UTC every day', () => {
    expect(next('cron(15 12 * * ? *)', 2)).toEqual(['2026-11-22T12:15:00.000Z', '2026-11-23T12:15:00.000Z']);
  });

  it('cron(0 18 ? * MON-FRI *): 18:00 UTC Monday to Friday', () => {
    // From Saturday: Mon 23 .. Fri 27, then the weekend is skipped to Mon 30.
    expect(next('cron(0 18 ? * MON-FRI *)', 6)).toEqual([
      '2026-11-23T18:00:00.000Z',
      '2026-11-24T18:00:00.000Z',
      '2026-11-25T18:00:00.000Z',
      '2026-11-26T18:00:00.000Z',
      '2026-11-27T18:00:00.000Z',
      '2026-11-30T18:00:00.000Z',
    ]);
    // The numbers 2-6 (1=SUN) and lower-case names mean the same days.
    expect(next('cron(0 18 ? * 2-6 *)', 6)).toEqual(next('cron(0 18 ? * MON-FRI *)', 6));
    expect(next('cron(0 18 ? * mon-fri *)', 6)).toEqual(next('cron(0 18 ? * MON-FRI *)', 6));
  });

  it('cron(0 8 1 * ? *): 08:00 UTC on the first day of every month', () => {
    expect(next('cron(0 8 1 * ? *)', 3)).toEqual([
      '2026-12-01T08:00:00.000Z',
      '2027-01-01T08:00:00.000Z',
      '2027-02-01T08:00:00.000Z',
    ]);
  });

  it('cron(0/15 * * * ? *): every 15 minutes (0/15 = from minute 0, every 15)', () => {
    expect(next('cron(0/15 * * * ? *)', 4)).toEqual([
      '2026-11-21T14:45:00.000Z',
      '2026-11-21T15:00:00.000Z',
      '2026-11-21T15:15:00.000Z',
      '2026-11-21T15:30:00.000Z',
    ]);
    // AWS's own wording: 1/10 is "the 11th, 21st, and 31st minute, and so on", starting at minute 1.
    expect(next('cron(1/10 * * * ? *)', 3)).toEqual([
      '2026-11-21T14:41:00.000Z',
      '2026-11-21T14:51:00.000Z',
      '2026-11-21T15:01:00.000Z',
    ]);
  });

  it('cron(0/10 * ? * MON-FRI *): every 10 minutes Monday to Friday', () => {
    // Saturday: nothing until Monday 00:00.
    expect(next('cron(0/10 * ? * MON-FRI *)', 3)).toEqual([
      '2026-11-23T00:00:00.000Z',
      '2026-11-23T00:10:00.000Z',
      '2026-11-23T00:20:00.000Z',
    ]);
    // Friday 2026-11-27 23:45: 23:50 is the last of the week, then Monday 2026-11-30 00:00.
    expect(next('cron(0/10 * ? * MON-FRI *)', 2, new Date('2026-11-27T23:45:00Z'))).toEqual([
      '2026-11-27T23:50:00.000Z',
      '2026-11-30T00:00:00.000Z',
    ]);
  });

  it('cron(0/5 8-17 ? * MON-FRI *): every 5 minutes, 08:00-17:55 UTC, Monday to Friday', () => {
    expect(next('cron(0/5 8-17 ? * MON-FRI *)', 2)).toEqual([
      '2026-11-23T08:00:00.000Z',
      '2026-11-23T08:05:00.000Z',
    ]);
    // Monday 17:50: 17:55 is the last of the day, then Tuesday 08:00.
    expect(next('cron(0/5 8-17 ? * MON-FRI *)', 2, new Date('2026-11-23T17:50:00Z'))).toEqual([
      '2026-11-23T17:55:00.000Z',
      '2026-11-24T08:00:00.000Z',
    ]);
  });

  it('cron(0 9 ? * 2#1 *): 09:00 UTC on the first Monday of every month', () => {
    // November's first Monday (the 2nd) has passed. 2026-12-01 is a Tuesday, so December's first
    // Monday is the 7th; 2027-01-01 is a Friday, so January's is the 4th; 2027-02-01 is a Monday.
    const expected = ['2026-12-07T09:00:00.000Z', '2027-01-04T09:00:00.000Z', '2027-02-01T09:00:00.000Z'];
    expect(next('cron(0 9 ? * 2#1 *)', 3)).toEqual(expected);
    expect(next('cron(0 9 ? * MON#1 *)', 3)).toEqual(expected);
  });

  it('3#2: the second Tuesday (the AWS wildcard description)', () => {
    // Tuesdays of December 2026: 1, 8, 15, ...; of January 2027: 5, 12, ...
    expect(next('cron(0 9 ? * 3#2 *)', 2)).toEqual(['2026-12-08T09:00:00.000Z', '2027-01-12T09:00:00.000Z']);
  });

  it('cron(0 0 L * ? *): midnight on the last day of every month', () => {
    // November has 30 days, December 31, January 31, February 2027 28.
    expect(next('cron(0 0 L * ? *)', 4)).toEqual([
      '2026-11-30T00:00:00.000Z',
      '2026-12-31T00:00:00.000Z',
      '2027-01-31T00:00:00.000Z',
      '2027-02-28T00:00:00.000Z',
    ]);
  });

  it('cron(0 0 LW * ? *): midnight on the last weekday of every month', () => {
    // 2026-11-30 is the last day of November and a Monday: LW = Mon 2026-11-30.
    // 2026-12-31 is a Thursday: LW = Thu 2026-12-31.
    // 2027-01-31 is a Sunday (30th Saturday): LW = Fri 2027-01-29.
    // 2027-02-28 is a Sunday (27th Saturday): LW = Fri 2027-02-26.
    expect(next('cron(0 0 LW * ? *)', 4)).toEqual([
      '2026-11-30T00:00:00.000Z',
      '2026-12-31T00:00:00.000Z',
      '2027-01-29T00:00:00.000Z',
      '2027-02-26T00:00:00.000Z',
    ]);
  });

  it('cron(0 0 15W * ? *): midnight on the weekday nearest the 15th', () => {
    // 2026-11-15 is a Sunday, so November's is Monday the 16th, already past.
    // 2026-12-15 is a Tuesday; 2027-01-15 a Friday; 2027-02-15 a Monday.
    expect(next('cron(0 0 15W * ? *)', 3)).toEqual([
      '2026-12-15T00:00:00.000Z',
      '2027-01-15T00:00:00.000Z',
      '2027-02-15T00:00:00.000Z',
    ]);
    // 2027-05-01 is a Saturday, so 2027-05-15 is a Saturday too: 15W = Friday 2027-05-14.
    expect(next('cron(0 0 15W * ? *)', 1, new Date('2027-05-01T00:00:00Z'))).toEqual([
      '2027-05-14T00:00:00.000Z',
    ]);
    // W does not leave the month: 1W with Saturday 2027-05-01 is Monday 2027-05-03, not Friday in April.
    expect(next('cron(0 0 1W * ? *)', 1, new Date('2027-04-15T00:00:00Z'))).toEqual([
      '2027-05-03T00:00:00.000Z',
    ]);
  });

  it('cron(0 12 * * ? 2030-2031): 12:00 UTC every day of 2030 and 2031 only', () => {
    // Nothing before 2030-01-01 (a Tuesday).
    expect(next('cron(0 12 * * ? 2030-2031)', 2)).toEqual([
      '2030-01-01T12:00:00.000Z',
      '2030-01-02T12:00:00.000Z',
    ]);
    // The last run is 2031-12-31; afterwards the schedule has ended.
    expect(next('cron(0 12 * * ? 2030-2031)', 3, new Date('2031-12-31T11:00:00Z'))).toEqual([
      '2031-12-31T12:00:00.000Z',
    ]);
    expect(next('cron(0 12 * * ? 2030-2031)', 3, new Date('2031-12-31T12:00:00Z'))).toEqual([]);
  });

  it('cron(0 12 ? * 6L *): 12:00 UTC on the last Friday of every month', () => {
    // 2026-11-30 is a Monday, so November's last Friday is the 27th; 2026-12-31 is a Thursday, so
    // December's is the 25th; 2027-01-31 is a Sunday, so January's is the 29th.
    const expected = ['2026-11-27T12:00:00.000Z', '2026-12-25T12:00:00.000Z', '2027-01-29T12:00:00.000Z'];
    expect(next('cron(0 12 ? * 6L *)', 3)).toEqual(expected);
    expect(next('cron(0 12 ? * FRIL *)', 3)).toEqual(expected);
    // 5L, the last Thursday: 2026-11-26 (the day before Friday the 27th), 2026-12-31, 2027-01-28.
    expect(next('cron(0 12 ? * 5L *)', 3)).toEqual([
      '2026-11-26T12:00:00.000Z',
      '2026-12-31T12:00:00.000Z',
      '2027-01-28T12:00:00.000Z',
    ]);
  });

  it('L alone in day-of-week is the last day of the week, Saturday', () => {
    // 12:00 on Saturday the 21st has passed at 14:37: the next Saturday is the 28th.
    expect(next('cron(0 12 ? * L *)', 2)).toEqual(['2026-11-28T12:00:00.000Z', '2026-12-05T12:00:00.000Z']);
  });

  it('month names and numbers, and year increments counted from 1970', () => {
    expect(next('cron(0 0 1 JAN,JUL ? *)', 2)).toEqual([
      '2027-01-01T00:00:00.000Z',
      '2027-07-01T00:00:00.000Z',
    ]);
    // */3 in the year: 1970, 1973, ..., 2024, 2027, 2030 (2027 = 1970 + 57 = 1970 + 3 * 19).
    expect(next('cron(0 0 1 1 ? */3)', 2)).toEqual(['2027-01-01T00:00:00.000Z', '2030-01-01T00:00:00.000Z']);
  });

  it('returns fire times strictly after `after`, even when `after` is a fire time or has milliseconds', () => {
    expect(next('cron(0/15 * * * ? *)', 1, new Date('2026-11-21T14:45:00.000Z'))).toEqual([
      '2026-11-21T15:00:00.000Z',
    ]);
    expect(next('cron(0/15 * * * ? *)', 1, new Date('2026-11-21T14:44:59.999Z'))).toEqual([
      '2026-11-21T14:45:00.000Z',
    ]);
    expect(next('cron(0/15 * * * ? *)', 1, new Date('2026-11-21T14:45:00.001Z'))).toEqual([
      '2026-11-21T15:00:00.000Z',
    ]);
  });

  it('returns nothing for a date that never occurs (30 February)', () => {
    expect(next('cron(0 0 30 2 ? *)', 3)).toEqual([]);
  });
});

describe('rate expressions anchored at a start', () => {
  it('rate(1 minute): every whole minute from the epoch', () => {
    // 14:37:00 is itself a fire time; the next ones are strictly after it.
    expect(next('rate(1 minute)', 3)).toEqual([
      '2026-11-21T14:38:00.000Z',
      '2026-11-21T14:39:00.000Z',
      '2026-11-21T14:40:00.000Z',
    ]);
  });

  it('rate(5 minutes): multiples of 5 minutes from the anchor', () => {
    expect(next('rate(5 minutes)', 2)).toEqual(['2026-11-21T14:40:00.000Z', '2026-11-21T14:45:00.000Z']);
    // Anchored at 14:33:20: 14:33:20, 14:38:20, 14:43:20, ...
    expect(next('rate(5 minutes)', 2, AFTER, new Date('2026-11-21T14:33:20Z'))).toEqual([
      '2026-11-21T14:38:20.000Z',
      '2026-11-21T14:43:20.000Z',
    ]);
  });

  it('rate(1 hour) anchored at 09:15 fires at a quarter past every hour', () => {
    expect(next('rate(1 hour)', 2, AFTER, new Date('2026-11-21T09:15:00Z'))).toEqual([
      '2026-11-21T15:15:00.000Z',
      '2026-11-21T16:15:00.000Z',
    ]);
  });

  it('rate(2 days): every other midnight from the epoch, or from the anchor', () => {
    // 2026-11-21 is day 20778 after 1970-01-01, an even number: it is a fire day (00:00, passed).
    expect(next('rate(2 days)', 2)).toEqual(['2026-11-23T00:00:00.000Z', '2026-11-25T00:00:00.000Z']);
    // Anchored at noon on Sunday the 22nd: that is the first fire time; none come before it.
    expect(next('rate(2 days)', 2, AFTER, new Date('2026-11-22T12:00:00Z'))).toEqual([
      '2026-11-22T12:00:00.000Z',
      '2026-11-24T12:00:00.000Z',
    ]);
  });
});

describe('lastFireTimeBetween (missed runs after downtime)', () => {
  it('finds the latest cron fire time in (from, to]', () => {
    // Down from Thursday 12:00 to Saturday 14:37: the 10:00 runs of Friday and Saturday were missed.
    expect(last('cron(0 10 * * ? *)', '2026-11-19T12:00:00Z', '2026-11-21T14:37:00Z')).toBe(
      '2026-11-21T10:00:00.000Z',
    );
    // `to` is included, `from` is not.
    expect(last('cron(0 10 * * ? *)', '2026-11-21T09:00:00Z', '2026-11-21T10:00:00Z')).toBe(
      '2026-11-21T10:00:00.000Z',
    );
    expect(last('cron(0 10 * * ? *)', '2026-11-21T09:00:00Z', '2026-11-21T10:00:30.500Z')).toBe(
      '2026-11-21T10:00:00.000Z',
    );
    expect(last('cron(0 10 * * ? *)', '2026-11-21T10:00:00Z', '2026-11-21T14:37:00Z')).toBeUndefined();
    expect(last('cron(0 10 * * ? *)', '2026-11-21T09:00:00Z', '2026-11-21T09:59:59.999Z')).toBeUndefined();
    // Across a month end: the last weekday of December 2026 is Thursday the 31st.
    expect(last('cron(0 0 LW * ? *)', '2026-12-20T00:00:00Z', '2027-01-15T00:00:00Z')).toBe(
      '2026-12-31T00:00:00.000Z',
    );
    // November's last Friday is the 27th, still ahead on the 21st, so the latest is October's:
    // 2026-10-31 is a Saturday, so October's last Friday is the 30th.
    expect(last('cron(0 12 ? * 6L *)', '2026-10-01T00:00:00Z', '2026-11-21T14:37:00Z')).toBe(
      '2026-10-30T12:00:00.000Z',
    );
    expect(last('cron(0 12 * * ? 2030-2031)', '2026-01-01T00:00:00Z', '2040-01-01T00:00:00Z')).toBe(
      '2031-12-31T12:00:00.000Z',
    );
    expect(
      last('cron(0 12 * * ? 2030-2031)', '2020-01-01T00:00:00Z', '2029-12-31T23:59:00Z'),
    ).toBeUndefined();
  });

  it('finds the latest rate fire time in (from, to]', () => {
    const anchor = new Date('2026-11-21T09:15:00Z');
    // Down from 10:00 to 14:37: 10:15 .. 14:15 were missed; the latest is 14:15.
    expect(last('rate(1 hour)', '2026-11-21T10:00:00Z', '2026-11-21T14:37:00Z', anchor)).toBe(
      '2026-11-21T14:15:00.000Z',
    );
    expect(last('rate(1 hour)', '2026-11-21T14:20:00Z', '2026-11-21T14:37:00Z', anchor)).toBeUndefined();
    expect(last('rate(1 hour)', '2026-11-21T14:00:00Z', '2026-11-21T14:15:00Z', anchor)).toBe(
      '2026-11-21T14:15:00.000Z',
    );
    expect(last('rate(1 hour)', '2026-11-21T14:15:00Z', '2026-11-21T15:14:59Z', anchor)).toBeUndefined();
    // Nothing before the anchor.
    expect(last('rate(1 hour)', '2026-11-21T00:00:00Z', '2026-11-21T09:00:00Z', anchor)).toBeUndefined();
    // Epoch anchor: 5-minute multiples.
    expect(last('rate(5 minutes)', '2026-11-21T14:00:00Z', '2026-11-21T14:37:00Z')).toBe(
      '2026-11-21T14:35:00.000Z',
    );
  });

  it('returns undefined for an empty interval', () => {
    expect(last('rate(1 minute)', '2026-11-21T14:37:00Z', '2026-11-21T14:37:00Z')).toBeUndefined();
    expect(last('cron(0/15 * * * ? *)', '2026-11-21T15:00:00Z', '2026-11-21T14:00:00Z')).toBeUndefined();
  });
});

describe('rejects malformed expressions, naming the expression, the field and what is expected', () => {
  const cases: [expression: string, ...parts: string[]][] = [
    // The day-of-month / day-of-week rule (EventBridge).
    [
      'cron(0 12 * * * *)',
      'cron(0 12 * * * *): day-of-month and day-of-week cannot both be "*"; one must be "?" (EventBridge rule)',
    ],
    [
      'cron(0 12 1 * MON *)',
      'day-of-month "1" and day-of-week "MON" cannot both be given',
      'one must be "?"',
    ],
    ['cron(0 12 * * MON *)', 'day-of-month "*" and day-of-week "MON"', 'one must be "?"'],
    ['cron(0 12 ? * ? *)', 'cannot both be "?"'],
    // Field count.
    ['cron(0 12 * * ?)', 'expected six fields', 'got 5'],
    ['cron(0 0 12 * * ? *)', 'expected six fields', 'got 7'],
    ['cron()', 'expected six fields', 'got 0'],
    // Out-of-range values.
    ['cron(60 12 * * ? *)', 'minutes "60" is out of range', '0-59'],
    ['cron(0 24 * * ? *)', 'hours "24" is out of range', '0-23'],
    ['cron(0 12 0 * ? *)', 'day-of-month "0" is out of range', '1-31'],
    ['cron(0 12 32 * ? *)', 'day-of-month "32" is out of range', '1-31'],
    ['cron(0 12 * 13 ? *)', 'month "13" is out of range', '1-12 or JAN-DEC'],
    ['cron(0 12 ? * 0 *)', 'day-of-week "0" is out of range', '1-7 (1=SUN) or SUN-SAT'],
    ['cron(0 12 ? * 8 *)', 'day-of-week "8" is out of range', '1-7'],
    ['cron(0 12 * * ? 1969)', 'year "1969" is out of range', '1970-2199'],
    ['cron(0 12 * * ? 2200)', 'year "2200" is out of range', '1970-2199'],
    ['cron(0 1,24 * * ? *)', 'hours "1,24" is out of range ("24")'],
    // Bad tokens and names.
    ['cron(x 12 * * ? *)', 'minutes "x" is not valid', '0-59'],
    ['cron(0 12 * FOO ? *)', 'month "FOO" is not valid', 'JAN-DEC'],
    ['cron(0 12 ? * MONDAY *)', 'day-of-week "MONDAY" is not valid'],
    ['cron(0 1,,2 * * ? *)', 'hours "1,,2" has an empty list element'],
    ['cron(0 *,2 * * ? *)', 'hours "*,2" is not valid', '"*" must stand alone'],
    // "?" outside the day fields.
    ['cron(? 12 * * ? *)', 'minutes "?" is not valid', 'only allowed in day-of-month and day-of-week'],
    ['cron(0 12 ?,1 * ? *)', 'day-of-month "?,1" is not valid', 'must stand alone'],
    // Increments.
    ['cron(*/60 * * * ? *)', 'minutes "*/60" has an invalid increment "/60"', 'from 1 to 59'],
    ['cron(0 0/0 * * ? *)', 'hours "0/0" has an invalid increment "/0"'],
    ['cron(0/x * * * ? *)', 'minutes "0/x" has an invalid increment'],
    ['cron(0 12 ? * MON/2 *)', 'day-of-week "MON/2"', 'does not accept increments'],
    // Descending (wrap-around) ranges.
    ['cron(0/30 20-2 ? * MON-FRI *)', 'hours "20-2" is a descending range', 'e.g. "20-23,0-2"'],
    ['cron(0 12 ? * FRI-MON *)', 'day-of-week "FRI-MON" is a descending range', 'e.g. "FRI-SAT,SUN-MON"'],
    // L, W and #.
    ['cron(0 12 L-2 * ? *)', 'day-of-month "L-2" is not supported', 'L-n'],
    ['cron(0 12 1,15W * ? *)', 'day-of-month "1,15W"', 'must stand alone'],
    ['cron(0 12 1-5W * ? *)', 'day-of-month "1-5W"', 'must stand alone'],
    ['cron(0 12 LW,1 * ? *)', 'day-of-month "LW,1"', 'must stand alone'],
    ['cron(0 12 32W * ? *)', 'day-of-month "32W" is out of range', 'nW with n in 1-31'],
    ['cron(0 12 * L ? *)', 'month "L" is not valid'],
    ['cron(0 12 ? * 3#1,6#3 *)', 'day-of-week "3#1,6#3"', 'exactly one expression'],
    ['cron(0 12 ? * 2#6 *)', 'day-of-week "2#6" is out of range', 'occurrence k in 1-5'],
    ['cron(0 12 ? * 2#0 *)', 'day-of-week "2#0" is out of range'],
    ['cron(0 12 ? * 8#1 *)', 'day-of-week "8#1" is out of range ("8")'],
    ['cron(0 12 ? * 6L,2 *)', 'day-of-week "6L,2"', 'nL'],
    ['cron(0 12 ? * 2-6L *)', 'day-of-week "2-6L"', 'nL'],
    ['cron(0 12 * * ? L)', 'year "L" is not valid'],
    // Rates.
    ['rate(0 minutes)', 'rate(0 minutes): value "0" is not valid; expected a positive integer'],
    ['rate(1.5 hours)', 'value "1.5" is not valid; expected a positive integer'],
    ['rate(-1 hours)', 'value "-1" is not valid'],
    ['rate(5 weeks)', 'unit "weeks" is not supported', 'minute, minutes, hour, hours, day or days'],
    ['rate(5 minute)', 'unit "minute" does not agree with value 5', 'expected "minutes"'],
    ['rate(1 hours)', 'unit "hours" does not agree with value 1', 'expected "hour"'],
    ['rate(5)', 'rate(5): expected rate(value unit)'],
    ['rate()', 'expected rate(value unit)'],
    // Not a schedule expression at all.
    ['at(2026-11-21T14:37:00)', 'one-time at() schedules are not supported'],
    ['*/5 * * * *', 'is not a schedule expression', 'cron(0 12 * * ? *)'],
    ['CRON(0 12 * * ? *)', 'is not a schedule expression'],
  ];

  it.each(cases)('%s', (expression, ...parts) => {
    const error = parseError(expression);
    expect(error.code).toBe('usage');
    if (expression.startsWith('cron(') || expression.startsWith('rate(')) {
      expect(error.message.startsWith(`${expression}: `)).toBe(true);
    }
    for (const part of parts) expect(error.message).toContain(part);
  });
});

describe('argument checks', () => {
  const schedule = parseScheduleExpression('rate(1 hour)');
  it('rejects a bad count or an invalid date', () => {
    expect(nextFireTimes(schedule, AFTER, 0)).toEqual([]);
    expect(() => nextFireTimes(schedule, AFTER, -1)).toThrow(UsageError);
    expect(() => nextFireTimes(schedule, AFTER, 1.5)).toThrow(UsageError);
    expect(() => nextFireTimes(schedule, new Date('nope'), 1)).toThrow(/after must be a valid Date/);
    expect(() => lastFireTimeBetween(schedule, new Date('nope'), AFTER)).toThrow(/from must be a valid Date/);
    expect(() => nextFireTimes(schedule, AFTER, 1, new Date('nope'))).toThrow(/anchor must be a valid Date/);
  });
});
