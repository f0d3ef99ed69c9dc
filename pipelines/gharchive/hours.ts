import { UsageError } from '../../src/core/errors.ts';

/**
 * GH Archive's hourly files. An hour is identified by its UTC start instant; its file is
 * `YYYY-MM-DD-H.json.gz` with the hour NOT zero-padded (`2015-01-01-0.json.gz`,
 * `2015-01-01-15.json.gz`), as https://www.gharchive.org documents.
 */

const HOUR_MS = 3_600_000;

/** The start of the UTC hour containing `date`. */
export function floorHour(date: Date): Date {
  return new Date(Math.floor(date.getTime() / HOUR_MS) * HOUR_MS);
}

/** `date` plus `hours` hours. */
export function addHours(date: Date, hours: number): Date {
  return new Date(date.getTime() + hours * HOUR_MS);
}

/** GH Archive file name of the hour starting at `hour`: `2015-01-01-0.json.gz`. */
export function hourFileName(hour: Date): string {
  return `${hourUnit(hour)}.json.gz`;
}

/** The hour's unit id without extension: `2015-01-01-0`. */
export function hourUnit(hour: Date): string {
  return `${hour.toISOString().slice(0, 10)}-${hour.getUTCHours()}`;
}

/**
 * Parses a GH Archive file name (`2015-01-01-0.json.gz`, or without `.json.gz`).
 * @returns the hour's start, or `undefined` when the name does not have that form.
 */
export function parseHourFileName(name: string): Date | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})-(\d{1,2})(?:\.json\.gz)?$/.exec(name);
  if (!m) return undefined;
  const hour = Number(m[4]);
  if (hour > 23 || (m[4]?.length === 2 && m[4].startsWith('0'))) return undefined;
  const date = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), hour));
  return hourUnit(date) === name.replace(/\.json\.gz$/, '') ? date : undefined;
}

/**
 * Parses a `--from`/`--to` value: `YYYY-MM-DDTHH` (UTC), also accepting `YYYY-MM-DDTHH:mm[:ss]Z`
 * on an hour boundary and a bare `YYYY-MM-DD` (hour 0).
 * @throws {UsageError} naming the flag, the value and the expected form.
 */
export function parseHourArg(flag: string, value: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2})(?::00(?::00)?)?Z?)?$/.exec(value.trim());
  const date = m
    ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4] ?? 0)))
    : undefined;
  if (
    !m ||
    !date ||
    Number.isNaN(date.getTime()) ||
    date.getUTCDate() !== Number(m[3]) ||
    date.getUTCMonth() !== Number(m[2]) - 1 ||
    Number(m[4] ?? 0) > 23
  ) {
    throw new UsageError(`${flag} "${value}" is not a UTC hour: expected YYYY-MM-DDTHH, e.g. 2015-01-01T00`);
  }
  return date;
}

/** Every hour from `from` to `to`, both included. Empty when `to` is before `from`. */
export function hoursBetween(from: Date, to: Date): Date[] {
  const hours: Date[] = [];
  for (let t = floorHour(from).getTime(); t <= to.getTime(); t += HOUR_MS) hours.push(new Date(t));
  return hours;
}
