import { randomBytes } from 'node:crypto';
import type { SqlValue } from '../../core/ports/query-engine.ts';
import { splitTopLevel } from './types.ts';

/**
 * Converts a value from `@duckdb/node-api`'s `getRowObjectsJS()` into a {@link SqlValue}:
 * - integers: `number` when within ±(2^53 - 1), else `bigint` (exact);
 * - `TIMESTAMP` / `TIMESTAMP WITH TIME ZONE`: ISO-8601 UTC with milliseconds (`...Z`);
 * - `DATE`: `YYYY-MM-DD`;
 * - `JSON` (DuckDB's alias of VARCHAR): the parsed document;
 * - `BLOB`: base64 text; `INTERVAL`: `{ months, days, micros }`;
 * - lists and structs: converted element by element.
 *
 * @param type the column's DuckDB type name (`JSON` for JSON columns), used for dates and JSON.
 */
export function toSqlValue(value: unknown, type?: string): SqlValue {
  if (value === null || value === undefined) return null;
  if (typeof value === 'bigint') {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
      ? Number(value)
      : value;
  }
  if (typeof value === 'string') {
    if (type === 'JSON') {
      try {
        return JSON.parse(value) as SqlValue;
      } catch {
        return value;
      }
    }
    return value;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return value;
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) return null;
    return type === 'DATE' ? value.toISOString().slice(0, 10) : value.toISOString();
  }
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) {
    const element = type?.endsWith('[]') ? type.slice(0, -2) : undefined;
    return value.map((v) => toSqlValue(v, element));
  }
  if (typeof value === 'object') {
    const fields = type === undefined ? undefined : structFieldTypes(type);
    const out: { [key: string]: SqlValue } = {};
    for (const [k, v] of Object.entries(value)) out[k] = toSqlValue(v, fields?.get(k));
    return out;
  }
  return String(value);
}

/** Field types by name of a `STRUCT("a" INTEGER, b DATE)` type, so nested dates convert like top-level ones. */
function structFieldTypes(type: string): Map<string, string> | undefined {
  const m = /^STRUCT\((.*)\)$/s.exec(type);
  if (m?.[1] === undefined) return undefined;
  const fields = new Map<string, string>();
  for (const field of splitTopLevel(m[1], ',')) {
    const parts = /^"((?:[^"]|"")*)"\s+(.+)$/s.exec(field) ?? /^(\S+)\s+(.+)$/s.exec(field);
    if (parts?.[1] !== undefined && parts[2] !== undefined)
      fields.set(parts[1].replaceAll('""', '"'), parts[2]);
  }
  return fields;
}

// Random, so that no string in the data (which is written as it is) can equal a marked bigint.
const BIGINT_NONCE = randomBytes(8).toString('hex');
const BIGINT_MARKER = `\u0000bigint-${BIGINT_NONCE}:`;
const BIGINT_PATTERN = new RegExp(`"\\\\u0000bigint-${BIGINT_NONCE}:(-?\\d+)"`, 'g');

/**
 * JSON text of a value, writing `bigint`s as exact JSON numbers (JSON has no size limit on
 * numbers; `JSON.stringify` would throw on them).
 */
export function stringifyJson(value: unknown, indent?: number): string {
  const text = JSON.stringify(
    value,
    (_key, v: unknown) => (typeof v === 'bigint' ? `${BIGINT_MARKER}${v.toString()}` : v),
    indent,
  );
  return text.replace(BIGINT_PATTERN, '$1');
}
