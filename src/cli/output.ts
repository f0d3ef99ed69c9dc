import type { ResultColumn, SqlValue } from '../core/ports/query-engine.ts';
import { stringifyJson } from '../engines/duckdb/values.ts';

/** Writes one JSON document (bigints exact) and a newline to stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${stringifyJson(value, 2)}\n`);
}

/** A cell as text: JSON for objects and arrays, `NULL` for null. */
export function cellText(value: SqlValue | undefined, nullText = 'NULL'): string {
  if (value === null || value === undefined) return nullText;
  if (typeof value === 'object') return stringifyJson(value);
  return String(value);
}

/**
 * Formats rows as an aligned text table with a header and a rule; cells longer than
 * `maxWidth` characters are cut with `…`. Numbers are right-aligned.
 */
export function formatTable(
  columns: readonly Pick<ResultColumn, 'name'>[],
  rows: readonly Record<string, SqlValue>[],
  options: { maxWidth?: number; nullText?: string } = {},
): string {
  const maxWidth = options.maxWidth ?? 60;
  const cut = (s: string) => {
    const oneLine = s.replace(/\s+/g, ' ');
    return oneLine.length > maxWidth ? `${oneLine.slice(0, maxWidth - 1)}…` : oneLine;
  };
  const cells = rows.map((row) => columns.map((c) => cut(cellText(row[c.name], options.nullText))));
  const numeric = columns.map((c) =>
    rows.every((r) => r[c.name] === null || typeof r[c.name] === 'number' || typeof r[c.name] === 'bigint'),
  );
  const widths = columns.map((c, i) => Math.max(c.name.length, ...cells.map((r) => r[i]?.length ?? 0)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (numeric[i] ? v.padStart(widths[i] ?? 0) : v.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [
    line(columns.map((c) => c.name)),
    line(widths.map((w) => '-'.repeat(w))),
    ...cells.map((r) => line(r)),
  ].join('\n');
}

/** `1.5 MB`-style size (decimal units). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** `1.23 s` / `450 ms`. */
export function formatDuration(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

/** Thousands separators: `7,702`. */
export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}
