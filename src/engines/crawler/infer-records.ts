import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Column, ColumnType } from '../../core/schema.ts';
import { IntegralFloat, PythonLiteralError, parseJsonOrPythonLine } from '../pydict/python-literal.ts';

/**
 * Schema inference over parsed records (JS values from JSON or Python literals), for the formats
 * DuckDB cannot read (`python-dict`). The rules follow what DuckDB's JSON reader infers for the
 * same data as NDJSON, so a file and its NDJSON copy catalog alike:
 * - columns in first-seen order over all records; a column is `nullable: false` when every record
 *   has it with a non-null value;
 * - `True`/`False`: `boolean`;
 * - integers: `bigint` (never narrowed to `int`: DuckDB infers BIGINT, and an id crawled as `int`
 *   would break Athena reads the day a value passes 2^31); beyond 64 bits: `double`, as DuckDB;
 * - any float (also `7.0`) in the column: `double` (ints and floats mixed: `double`);
 * - strings: `date` when every value is an ISO `YYYY-MM-DD` date, `timestamp` when every value is
 *   an ISO date-time (`YYYY-MM-DD[T ]HH:MM[:SS[.f]][Z|±HH[:MM]]`, dates mixed in allowed), else
 *   `string`; a `string` whose every value is a `YYYY/MM/DD` date (the tolls `transaction_date`)
 *   stays `string` (Athena cannot cast that form to `date`) with the comment
 *   {@link DATE_LIKE_COMMENT};
 * - dicts: `struct<field:type,...>` (fields in first-seen order, merged over records); lists:
 *   `array<element>` (empty lists only: `array<string>`);
 * - anything else mixed (a string and a number, a dict and a list), or only NULLs: `string`.
 */

/** The comment on a `string` column whose values are all `YYYY/MM/DD` dates. */
export const DATE_LIKE_COMMENT = 'date-like: YYYY/MM/DD';

type StringKind = 'date' | 'timestamp' | 'slash-date' | 'plain';

type Shape =
  | { readonly k: 'boolean' | 'bigint' | 'double' | 'mixed' }
  | { readonly k: 'string'; readonly sub: StringKind }
  | { readonly k: 'struct'; readonly fields: Map<string, Shape | undefined> }
  | { readonly k: 'array'; element: Shape | undefined };

const BOOLEAN: Shape = { k: 'boolean' };
const BIGINT: Shape = { k: 'bigint' };
const DOUBLE: Shape = { k: 'double' };
const MIXED: Shape = { k: 'mixed' };
const STRINGS: Record<StringKind, Shape> = {
  date: { k: 'string', sub: 'date' },
  timestamp: { k: 'string', sub: 'timestamp' },
  'slash-date': { k: 'string', sub: 'slash-date' },
  plain: { k: 'string', sub: 'plain' },
};

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const SLASH_DATE = /^(\d{4})\/(\d{2})\/(\d{2})$/;
const ISO_TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})[T ]([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.\d{1,9})?)?(?:Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?$/;

function validDate(m: RegExpExecArray): boolean {
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (month < 1 || month > 12 || day < 1) return false;
  return day <= new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function stringKind(value: string): StringKind {
  const n = value.length;
  if (n < 10 || n > 35) return 'plain';
  const sep = value.charCodeAt(4);
  if (sep === 0x2f /* / */) {
    const m = n === 10 ? SLASH_DATE.exec(value) : null;
    return m && validDate(m) ? 'slash-date' : 'plain';
  }
  if (sep !== 0x2d /* - */) return 'plain';
  if (n === 10) {
    const m = ISO_DATE.exec(value);
    return m && validDate(m) ? 'date' : 'plain';
  }
  const m = ISO_TIMESTAMP.exec(value);
  return m && validDate(m) ? 'timestamp' : 'plain';
}

function combineStrings(a: StringKind, b: StringKind): StringKind {
  if (a === b) return a;
  if ((a === 'date' && b === 'timestamp') || (a === 'timestamp' && b === 'date')) return 'timestamp';
  return 'plain';
}

/** `shape` widened to admit `value`. */
function merge(shape: Shape | undefined, value: unknown): Shape | undefined {
  if (value === null || value === undefined) return shape;
  if (shape === MIXED) return shape;
  let next: Shape;
  switch (typeof value) {
    case 'boolean':
      next = BOOLEAN;
      break;
    case 'number':
      next = Number.isSafeInteger(value) ? BIGINT : DOUBLE;
      break;
    case 'bigint':
      next = value >= INT64_MIN && value <= INT64_MAX ? BIGINT : DOUBLE;
      break;
    case 'string': {
      if (shape === undefined) return STRINGS[stringKind(value)];
      if (shape.k !== 'string') return MIXED;
      if (shape.sub === 'plain') return shape;
      return STRINGS[combineStrings(shape.sub, stringKind(value))];
    }
    case 'object': {
      if (value instanceof IntegralFloat) {
        next = DOUBLE;
        break;
      }
      if (Array.isArray(value)) {
        const array: Shape = shape ?? { k: 'array', element: undefined };
        if (array.k !== 'array') return MIXED;
        for (const item of value) array.element = merge(array.element, item);
        return array;
      }
      const struct: Shape = shape ?? { k: 'struct', fields: new Map() };
      if (struct.k !== 'struct') return MIXED;
      for (const [key, item] of Object.entries(value))
        struct.fields.set(key, merge(struct.fields.get(key), item));
      return struct;
    }
    default:
      return MIXED;
  }
  if (shape === undefined || shape === next) return next;
  if ((shape === BIGINT && next === DOUBLE) || (shape === DOUBLE && next === BIGINT)) return DOUBLE;
  return MIXED;
}

function typeOf(shape: Shape | undefined): ColumnType {
  if (shape === undefined) return 'string';
  switch (shape.k) {
    case 'boolean':
    case 'bigint':
    case 'double':
      return shape.k;
    case 'string':
      return shape.sub === 'date' ? 'date' : shape.sub === 'timestamp' ? 'timestamp' : 'string';
    case 'array':
      return `array<${typeOf(shape.element)}>`;
    case 'struct':
      if (shape.fields.size === 0) return 'string';
      return `struct<${[...shape.fields].map(([name, field]) => `${name}:${typeOf(field)}`).join(',')}>`;
    case 'mixed':
      return 'string';
  }
}

/** Infers table columns from records added one by one (see the module comment for the rules). */
export class RecordSchemaInferrer {
  private readonly columns = new Map<string, { shape: Shape | undefined; present: number }>();
  /** Records added. */
  rows = 0;

  /** Adds one record (a dict / JSON object). */
  add(record: { readonly [key: string]: unknown }): void {
    this.rows++;
    for (const key in record) {
      if (!Object.hasOwn(record, key)) continue;
      const value = record[key];
      let column = this.columns.get(key);
      if (!column) {
        column = { shape: undefined, present: 0 };
        this.columns.set(key, column);
      }
      column.shape = merge(column.shape, value);
      if (value !== null && value !== undefined) column.present++;
    }
  }

  /** The inferred columns, in first-seen order. */
  result(): Column[] {
    return [...this.columns].map(([name, { shape, present }]) => ({
      name,
      type: typeOf(shape),
      ...(present === this.rows && this.rows > 0 ? { nullable: false } : {}),
      ...(shape?.k === 'string' && shape.sub === 'slash-date' ? { comment: DATE_LIKE_COMMENT } : {}),
    }));
  }
}

/** What {@link inferLineFiles} read from one file. */
export interface LineFileReport {
  readonly path: string;
  /** Lines read (blank ones included), at most the limit. */
  readonly lines: number;
  /** Records added to the schema. */
  readonly records: number;
  /** Non-blank lines that are not a dict / JSON object, with the first one's line number and reason. */
  readonly bad: number;
  readonly firstBad?: { readonly line: number; readonly reason: string };
  /** The file has more lines than the limit: the rest were not read. */
  readonly truncated: boolean;
  /** Reading stopped on an error (a corrupt gzip stream, say). */
  readonly readError?: string;
}

/**
 * Reads line files (Python dict reprs or JSON objects, one per line; gzip when `gzip`), streaming,
 * at most `maxLines` lines per file, and infers their columns together. Bad lines are counted,
 * never thrown.
 */
export async function inferLineFiles(
  files: readonly { readonly path: string; readonly gzip: boolean }[],
  maxLines: number,
): Promise<{ columns: Column[]; files: LineFileReport[] }> {
  const inferrer = new RecordSchemaInferrer();
  const reports: LineFileReport[] = [];
  for (const file of files) {
    const stream = createReadStream(file.path);
    let input: Readable = stream;
    if (file.gzip) {
      const gunzip = createGunzip();
      stream.on('error', (error) => gunzip.destroy(error));
      input = stream.pipe(gunzip);
    }
    const reader = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
    let lines = 0;
    let records = 0;
    let bad = 0;
    let firstBad: { line: number; reason: string } | undefined;
    let truncated = false;
    let readError: string | undefined;
    try {
      for await (const raw of reader) {
        if (lines === maxLines) {
          truncated = true;
          break;
        }
        lines++;
        const line = lines === 1 && raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
        if (line.trim() === '') continue;
        let reason: string | undefined;
        try {
          const { value } = parseJsonOrPythonLine(line, { keepFloatKind: true });
          if (
            value !== null &&
            typeof value === 'object' &&
            !Array.isArray(value) &&
            !(value instanceof IntegralFloat)
          ) {
            inferrer.add(value);
            records++;
          } else {
            reason = 'not a dict or JSON object';
          }
        } catch (error) {
          if (!(error instanceof PythonLiteralError)) throw error;
          reason = error.message;
        }
        if (reason !== undefined) {
          bad++;
          firstBad ??= { line: lines, reason };
        }
      }
    } catch (error) {
      readError = (error as Error).message;
    } finally {
      reader.close();
      input.destroy();
      stream.destroy();
    }
    reports.push({
      path: file.path,
      lines,
      records,
      bad,
      ...(firstBad ? { firstBad } : {}),
      truncated,
      ...(readError !== undefined ? { readError } : {}),
    });
  }
  return { columns: inferrer.result(), files: reports };
}
