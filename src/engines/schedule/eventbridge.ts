import { Cron, type CronOptions } from 'croner';
import { UsageError } from '../../core/errors.ts';

/**
 * EventBridge schedule expressions (`rate(...)` and `cron(...)`) parsed and evaluated with AWS's
 * semantics, always in UTC, so that `sluice up` fires a schedule locally at the times EventBridge
 * Scheduler (or an EventBridge scheduled rule) fires it after deployment.
 *
 * The rules come from two AWS pages:
 * - EventBridge scheduled rules:
 *   https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html
 * - EventBridge Scheduler schedule types:
 *   https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html
 *
 * Cron expressions are checked field by field here (values, ranges, increments, `?`, `L`, `W`,
 * `#`, names), then rewritten to croner's seven-field pattern `0 m h dom mon dow yr` and evaluated
 * by croner in UTC with Quartz day numbers (1=SUN..7=SAT). Differences between AWS and croner are
 * bridged in the rewrite:
 * - `?` becomes `*`, so only the other day field restricts the days. croner is also told to combine
 *   day-of-month and day-of-week with AND (`domAndDow`) rather than its default Vixie-cron OR; with
 *   one of them `*` both give the same days, but AND keeps that true without relying on croner
 *   noticing the `*`;
 * - `a/n` (AWS: from `a`, every `n`) becomes `a-max/n`, which croner accepts without `sloppyRanges`;
 * - `*\/n` becomes `min-max/n`: croner counts a year increment from year 0, AWS from 1970;
 * - names (`MON`, `JAN`) become numbers; `L` alone in day-of-week (the last day of the week)
 *   becomes `7` (Saturday); `nL` (the last day `n` of the month, `6L` the last Friday) becomes croner's `n#L`.
 * Forms that AWS does not document are rejected rather than guessed: descending ranges (`20-2`),
 * `L-n` offsets, `L`/`W`/`#` inside lists or ranges, increments in day-of-week.
 */

/** A parsed schedule expression; see {@link parseScheduleExpression}. */
export type ParsedSchedule =
  | { kind: 'rate'; value: number; unit: 'minute' | 'hour' | 'day'; everyMs: number; expression: string }
  | {
      kind: 'cron';
      fields: {
        minutes: string;
        hours: string;
        dayOfMonth: string;
        month: string;
        dayOfWeek: string;
        year: string;
      };
      cronerPattern: string;
      expression: string;
    };

type CronSchedule = Extract<ParsedSchedule, { kind: 'cron' }>;
type FieldKey = keyof CronSchedule['fields'];

/** Options that give croner AWS's semantics; see the module comment. */
const CRONER_OPTIONS: CronOptions = {
  timezone: 'UTC',
  mode: '7-part',
  alternativeWeekdays: true,
  domAndDow: true,
};

const MINUTE_MS = 60_000;

const RATE_UNITS: { readonly [unit: string]: { unit: 'minute' | 'hour' | 'day'; plural: boolean } } = {
  minute: { unit: 'minute', plural: false },
  minutes: { unit: 'minute', plural: true },
  hour: { unit: 'hour', plural: false },
  hours: { unit: 'hour', plural: true },
  day: { unit: 'day', plural: false },
  days: { unit: 'day', plural: true },
};

const UNIT_MS = { minute: MINUTE_MS, hour: 60 * MINUTE_MS, day: 24 * 60 * MINUTE_MS } as const;

interface FieldSpec {
  readonly key: FieldKey;
  /** The field's name in AWS's documentation, used in messages. */
  readonly label: string;
  readonly min: number;
  readonly max: number;
  /** The largest increment accepted after `/` (Quartz's limits; `*\/60` in minutes is rejected by AWS). */
  readonly maxStep: number;
  /** Wildcards the field accepts, as AWS's table lists them. */
  readonly wildcards: string;
  readonly names?: { readonly [name: string]: number };
}

const MONTH_NAMES = {
  JAN: 1,
  FEB: 2,
  MAR: 3,
  APR: 4,
  MAY: 5,
  JUN: 6,
  JUL: 7,
  AUG: 8,
  SEP: 9,
  OCT: 10,
  NOV: 11,
  DEC: 12,
};
const DAY_NAMES = { SUN: 1, MON: 2, TUE: 3, WED: 4, THU: 5, FRI: 6, SAT: 7 };

/** The six fields of `cron(minutes hours day-of-month month day-of-week year)`, in order. */
const FIELDS: readonly FieldSpec[] = [
  { key: 'minutes', label: 'minutes', min: 0, max: 59, maxStep: 59, wildcards: ', - * /' },
  { key: 'hours', label: 'hours', min: 0, max: 23, maxStep: 23, wildcards: ', - * /' },
  { key: 'dayOfMonth', label: 'day-of-month', min: 1, max: 31, maxStep: 31, wildcards: ', - * ? / L W' },
  { key: 'month', label: 'month', min: 1, max: 12, maxStep: 12, wildcards: ', - * /', names: MONTH_NAMES },
  {
    key: 'dayOfWeek',
    label: 'day-of-week',
    min: 1,
    max: 7,
    maxStep: 7,
    wildcards: ', - * ? L #',
    names: DAY_NAMES,
  },
  { key: 'year', label: 'year', min: 1970, max: 2199, maxStep: 229, wildcards: ', - * /' },
];

/**
 * Parses an EventBridge schedule expression.
 *
 * - `rate(value unit)`: `value` a positive integer; `unit` is `minute`, `hour` or `day` when the
 *   value is 1 and `minutes`, `hours` or `days` otherwise, as AWS requires (`rate(5 minute)` and
 *   `rate(1 hours)` are rejected, as AWS rejects them).
 * - `cron(minutes hours day-of-month month day-of-week year)`: exactly six fields with the values
 *   and wildcards of AWS's table (minutes 0-59, hours 0-23, day-of-month 1-31 with `L`, `LW` and
 *   `nW`, month 1-12 or JAN-DEC, day-of-week 1-7 (1=SUN) or SUN-SAT with `L`, `nL` and `n#k`,
 *   year 1970-2199). Exactly one of day-of-month and day-of-week must be `?`. Names are read
 *   case-insensitively.
 *
 * See https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html and
 * https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html.
 *
 * @throws {UsageError} naming the expression, the field and what is expected
 */
export function parseScheduleExpression(expression: string): ParsedSchedule {
  if (typeof expression !== 'string') {
    throw new UsageError(`schedule expression must be a string, got ${typeof expression}`);
  }
  const rate = /^rate\((.*)\)$/s.exec(expression);
  if (rate) return parseRate(expression, rate[1] ?? '');
  const cron = /^cron\((.*)\)$/s.exec(expression);
  if (cron) return parseCron(expression, cron[1] ?? '');
  if (/^at\(/.test(expression)) {
    throw new UsageError(
      `${expression}: one-time at() schedules are not supported here; expected rate(value unit) or cron(minutes hours day-of-month month day-of-week year)`,
    );
  }
  throw new UsageError(
    `${JSON.stringify(expression)} is not a schedule expression; expected rate(value unit), e.g. rate(5 minutes), or cron(minutes hours day-of-month month day-of-week year), e.g. cron(0 12 * * ? *)`,
  );
}

function parseRate(expression: string, inner: string): ParsedSchedule {
  const parts = inner.trim().split(/\s+/);
  if (parts.length !== 2 || parts[0] === '') {
    throw new UsageError(
      `${expression}: expected rate(value unit) with a positive integer value and a unit of minute(s), hour(s) or day(s), e.g. rate(5 minutes)`,
    );
  }
  const [valueText = '', unitText = ''] = parts;
  if (!/^\d+$/.test(valueText) || Number(valueText) < 1) {
    throw new UsageError(`${expression}: value "${valueText}" is not valid; expected a positive integer`);
  }
  const value = Number(valueText);
  const unit = RATE_UNITS[unitText];
  if (unit === undefined) {
    throw new UsageError(
      `${expression}: unit "${unitText}" is not supported; expected minute, minutes, hour, hours, day or days`,
    );
  }
  if (unit.plural !== (value !== 1)) {
    const expected = value === 1 ? unit.unit : `${unit.unit}s`;
    throw new UsageError(
      `${expression}: unit "${unitText}" does not agree with value ${value}; expected "${expected}" (EventBridge requires the singular unit for 1 and the plural otherwise)`,
    );
  }
  const everyMs = value * UNIT_MS[unit.unit];
  if (!Number.isSafeInteger(everyMs)) {
    throw new UsageError(`${expression}: value ${value} is too large`);
  }
  return { kind: 'rate', value, unit: unit.unit, everyMs, expression };
}

function parseCron(expression: string, inner: string): ParsedSchedule {
  const texts = inner.trim() === '' ? [] : inner.trim().split(/\s+/);
  if (texts.length !== FIELDS.length) {
    throw new UsageError(
      `${expression}: expected six fields (minutes hours day-of-month month day-of-week year), got ${texts.length}`,
    );
  }
  const fields = {} as CronSchedule['fields'];
  const croner: string[] = ['0'];
  FIELDS.forEach((spec, index) => {
    const text = texts[index] ?? '';
    fields[spec.key] = text;
    croner.push(convertField(expression, spec, text));
  });

  const dom = fields.dayOfMonth;
  const dow = fields.dayOfWeek;
  if (dom === '?' && dow === '?') {
    throw new UsageError(
      `${expression}: day-of-month and day-of-week cannot both be "?"; exactly one of them must be "?" (EventBridge rule)`,
    );
  }
  if (dom !== '?' && dow !== '?') {
    throw new UsageError(
      dom === '*' && dow === '*'
        ? `${expression}: day-of-month and day-of-week cannot both be "*"; one must be "?" (EventBridge rule)`
        : `${expression}: day-of-month "${dom}" and day-of-week "${dow}" cannot both be given; one must be "?" (EventBridge rule)`,
    );
  }

  const cronerPattern = croner.join(' ');
  try {
    new Cron(cronerPattern, CRONER_OPTIONS);
  } catch (error) {
    // The checks above should leave nothing croner rejects; if they do, say so with croner's reason.
    throw new UsageError(
      `${expression}: croner cannot evaluate the rewritten pattern "${cronerPattern}": ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
  return { kind: 'cron', fields, cronerPattern, expression };
}

/** Checks one field of a cron expression and returns its croner form. */
function convertField(expression: string, spec: FieldSpec, text: string): string {
  const fail = (problem: string, expected?: string): never => {
    throw new UsageError(
      `${expression}: ${spec.label} "${text}" ${problem}; expected ${expected ?? describeField(spec)}`,
    );
  };
  const upper = text.toUpperCase();
  /** ` ("part")` when the problem is in one part of the field, to point at it. */
  const at = (part: string): string => (part === upper ? '' : ` ("${part}")`);
  const value = (part: string): number => {
    const number = /^\d+$/.test(part) ? Number(part) : spec.names?.[part];
    if (number === undefined) {
      return fail(`is not valid${at(part)}: not a number${spec.names ? ' or a name' : ''}`);
    }
    if (number < spec.min || number > spec.max) return fail(`is out of range${at(part)}`);
    return number;
  };
  const label = (number: number): string => (spec.names ? nameOf(number, spec) : String(number));

  if (upper.includes('?')) {
    if (spec.key !== 'dayOfMonth' && spec.key !== 'dayOfWeek') {
      fail('is not valid: "?" is only allowed in day-of-month and day-of-week');
    }
    if (upper !== '?') fail('is not valid: "?" must stand alone');
    return '*';
  }

  if (spec.key === 'dayOfMonth' && /[LW]/.test(upper)) {
    if (upper === 'L' || upper === 'LW') return upper;
    if (/^L-/.test(upper)) {
      fail(
        'is not supported: offsets from the last day of the month (L-n) are not part of EventBridge cron expressions',
        'L, LW, nW or 1-31 with , - * /',
      );
    }
    const weekday = /^(\d+)W$/.exec(upper);
    if (weekday) {
      const day = Number(weekday[1]);
      if (day < 1 || day > 31) fail('is out of range', 'nW with n in 1-31, e.g. 15W');
      return `${day}W`;
    }
    return fail(
      'is not valid: L, LW and nW must stand alone in day-of-month (not in a list, range or increment)',
      'L (last day of the month), LW (last weekday of the month) or nW (the weekday nearest day n), e.g. 15W',
    );
  }

  if (spec.key === 'dayOfWeek') {
    if (upper === 'L') return '7'; // "L" alone: the last day of the week, Saturday (1=SUN..7=SAT).
    if (upper.includes('/')) fail('is not valid: day-of-week does not accept increments ("/")');
    const last = /^([A-Z]{3}|\d+)L$/.exec(upper);
    if (last) return `${value(last[1] ?? '')}#L`;
    const nth = /^([A-Z]{3}|\d+)#(\d+)$/.exec(upper);
    if (nth) {
      const day = value(nth[1] ?? '');
      const occurrence = Number(nth[2]);
      if (occurrence < 1 || occurrence > 5) {
        fail(
          'is out of range',
          'n#k with the occurrence k in 1-5, e.g. 3#2 (the second Tuesday of the month)',
        );
      }
      return `${day}#${occurrence}`;
    }
    if (upper.includes('#')) {
      fail(
        'is not valid: with "#", day-of-week must hold exactly one expression (EventBridge rule: "3#1,6#3" is invalid)',
        'n#k alone, e.g. 3#2 (the second Tuesday of the month)',
      );
    }
    if (upper.includes('L')) {
      fail(
        'is not valid: L must stand alone or follow a single day (nL), not be part of a list or range',
        'L (Saturday, the last day of the week) or nL (the last day n of the month), e.g. 6L (last Friday)',
      );
    }
  }

  if (upper === '*') return '*';

  return upper
    .split(',')
    .map((element) => {
      if (element === '') fail('has an empty list element');
      if (element === '*') fail('is not valid: "*" must stand alone, not be part of a list');
      const match = /^(\*|[A-Z0-9]+)(?:-([A-Z0-9]+))?(?:\/(.*))?$/.exec(element);
      if (!match) return fail(`is not valid${at(element)}`);
      const [, startText = '', endText, stepText] = match;
      let start: number;
      let end: number | undefined;
      if (startText === '*') {
        if (endText !== undefined) fail(`is not valid${at(element)}`);
        start = spec.min;
        end = spec.max;
      } else {
        start = value(startText);
        end = endText === undefined ? undefined : value(endText);
        if (end !== undefined && end < start) {
          const low = end === spec.min ? label(spec.min) : `${label(spec.min)}-${endText}`;
          fail(
            `is a descending range${at(`${startText}-${endText}`)}; ranges that wrap around are not part of EventBridge's documented syntax`,
            `a range whose start is not after its end; split it, e.g. "${startText}-${label(spec.max)},${low}"`,
          );
        }
      }
      if (stepText === undefined) return end === undefined ? String(start) : `${start}-${end}`;
      if (!/^\d+$/.test(stepText) || Number(stepText) < 1 || Number(stepText) > spec.maxStep) {
        fail(`has an invalid increment "/${stepText}"`, `an increment from 1 to ${spec.maxStep}`);
      }
      // `a/n` means from a, every n, to the end of the field: croner wants `a-max/n`.
      return `${start}-${end ?? spec.max}/${Number(stepText)}`;
    })
    .join(',');
}

function describeField(spec: FieldSpec): string {
  const names = spec.key === 'month' ? ' or JAN-DEC' : spec.key === 'dayOfWeek' ? ' (1=SUN) or SUN-SAT' : '';
  return `${spec.min}-${spec.max}${names} with the wildcards ${spec.wildcards}`;
}

function nameOf(value: number, spec: FieldSpec): string {
  const entry = Object.entries(spec.names ?? {}).find(([, v]) => v === value);
  return entry ? entry[0] : String(value);
}

function cronFor(schedule: CronSchedule): Cron {
  return new Cron(schedule.cronerPattern, CRONER_OPTIONS);
}

function checkDate(what: string, date: Date): number {
  const ms = date instanceof Date ? date.getTime() : Number.NaN;
  if (Number.isNaN(ms)) throw new UsageError(`${what} must be a valid Date, got ${String(date)}`);
  return ms;
}

/**
 * The next `count` fire times strictly after `after` (UTC), earliest first. Fewer are returned
 * when the schedule ends (a cron year range in the past, or a date that never occurs such as
 * `cron(0 0 30 2 ? *)`).
 *
 * Rates are anchored at `anchor` (default: the epoch) so fire times are stable:
 * `anchor + k * everyMs` for k = 0, 1, 2, ...; the anchor plays the part of a Scheduler schedule's
 * `StartDate` (or a rule's creation time): the first fire time is the anchor itself, and there are
 * none before it. `anchor` is ignored for cron expressions.
 *
 * See https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html (rate-based and
 * cron-based schedules) and https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html.
 */
export function nextFireTimes(schedule: ParsedSchedule, after: Date, count: number, anchor?: Date): Date[] {
  const afterMs = checkDate('after', after);
  if (!Number.isInteger(count) || count < 0) {
    throw new UsageError(`count must be a non-negative integer, got ${count}`);
  }
  const times: Date[] = [];
  if (count === 0) return times;

  if (schedule.kind === 'rate') {
    const anchorMs = anchor === undefined ? 0 : checkDate('anchor', anchor);
    const first = afterMs < anchorMs ? 0 : Math.floor((afterMs - anchorMs) / schedule.everyMs) + 1;
    for (let k = first; times.length < count; k++) times.push(new Date(anchorMs + k * schedule.everyMs));
    return times;
  }

  const cron = cronFor(schedule);
  // croner drops milliseconds; start from the whole second so every result is after `after`
  // (fire times are whole minutes, so the next one after the second is also after `after`).
  let cursor = new Date(Math.floor(afterMs / 1000) * 1000);
  while (times.length < count) {
    const next = cron.nextRun(cursor);
    if (next === null) break;
    if (next.getTime() <= cursor.getTime()) {
      throw new Error(`croner returned ${next.toISOString()} as the run after ${cursor.toISOString()}`);
    }
    times.push(next);
    cursor = next;
  }
  return times;
}

/**
 * The latest fire time in `(from, to]`, or undefined if there is none; used after downtime to
 * find a missed run (see `MissedRunPolicy`). Rates are anchored as in {@link nextFireTimes}.
 *
 * See https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html and
 * https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html.
 */
export function lastFireTimeBetween(
  schedule: ParsedSchedule,
  from: Date,
  to: Date,
  anchor?: Date,
): Date | undefined {
  const fromMs = checkDate('from', from);
  const toMs = checkDate('to', to);
  if (toMs <= fromMs) return undefined;

  if (schedule.kind === 'rate') {
    const anchorMs = anchor === undefined ? 0 : checkDate('anchor', anchor);
    if (toMs < anchorMs) return undefined;
    const last = anchorMs + Math.floor((toMs - anchorMs) / schedule.everyMs) * schedule.everyMs;
    return last > fromMs ? new Date(last) : undefined;
  }

  const cron = cronFor(schedule);
  // Fire times are whole minutes: the latest one at or before `to` is `to`'s minute or earlier.
  const minute = new Date(Math.floor(toMs / MINUTE_MS) * MINUTE_MS);
  const last = cron.match(minute) ? minute : cron.previousRuns(1, minute)[0];
  return last !== undefined && last.getTime() > fromMs ? last : undefined;
}
