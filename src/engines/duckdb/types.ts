import type { Column, ColumnType } from '../../core/schema.ts';

/**
 * Maps between the catalog's Glue/Hive types (src/core/schema.ts) and DuckDB's types
 * (https://duckdb.org/docs/sql/data_types/overview). Glue has no unsigned integers, so DuckDB's
 * unsigned types map to the next wider signed type (`UBIGINT` to `decimal(20,0)`).
 */

/** DuckDB type of a catalog column; `string` with `logicalType: 'json'` becomes `JSON`. */
export function toDuckDbType(column: Pick<Column, 'type' | 'logicalType'>): string {
  if (column.logicalType === 'json') return 'JSON';
  return glueToDuckDb(column.type);
}

function glueToDuckDb(type: string): string {
  const t = type.trim();
  const simple: Record<string, string> = {
    boolean: 'BOOLEAN',
    tinyint: 'TINYINT',
    smallint: 'SMALLINT',
    int: 'INTEGER',
    integer: 'INTEGER',
    bigint: 'BIGINT',
    float: 'FLOAT',
    double: 'DOUBLE',
    decimal: 'DECIMAL(10,0)',
    string: 'VARCHAR',
    date: 'DATE',
    timestamp: 'TIMESTAMP',
    binary: 'BLOB',
  };
  const direct = simple[t.toLowerCase()];
  if (direct) return direct;
  let m = /^decimal\((\d+),\s*(\d+)\)$/i.exec(t);
  if (m) return `DECIMAL(${m[1]},${m[2]})`;
  if (/^(var)?char\(\d+\)$/i.test(t)) return 'VARCHAR';
  m = /^array<(.+)>$/i.exec(t);
  if (m?.[1]) return `${glueToDuckDb(m[1])}[]`;
  m = /^map<(.+)>$/i.exec(t);
  if (m?.[1]) {
    const [k, v] = splitTopLevel(m[1], ',');
    if (k !== undefined && v !== undefined) return `MAP(${glueToDuckDb(k)}, ${glueToDuckDb(v)})`;
  }
  m = /^struct<(.+)>$/i.exec(t);
  if (m?.[1]) {
    const fields = splitTopLevel(m[1], ',').map((field) => {
      const colon = field.indexOf(':');
      const name = field.slice(0, colon).trim();
      return `"${name.replaceAll('"', '""')}" ${glueToDuckDb(field.slice(colon + 1))}`;
    });
    return `STRUCT(${fields.join(', ')})`;
  }
  throw new Error(`unsupported catalog type "${type}"`);
}

/**
 * Catalog column type of a DuckDB type string, as `DESCRIBE` prints it
 * (`BIGINT`, `VARCHAR[]`, `STRUCT("a" INTEGER, b VARCHAR)`, `MAP(VARCHAR, INTEGER)`, `JSON`).
 * @returns the Glue type and, for `JSON`, the logical type.
 */
export function fromDuckDbType(duckType: string): Pick<Column, 'type' | 'logicalType'> {
  const t = duckType.trim();
  if (t.toUpperCase() === 'JSON') return { type: 'string', logicalType: 'json' };
  return { type: duckToGlue(t) };
}

function duckToGlue(type: string): ColumnType {
  const t = type.trim();
  const upper = t.toUpperCase();
  if (upper.endsWith('[]')) return `array<${duckToGlue(t.slice(0, -2))}>`;
  if (/^[A-Z_ ]+\[\d+\]$/.test(upper)) return `array<${duckToGlue(t.replace(/\[\d+\]$/, ''))}>`;
  const simple: Record<string, ColumnType> = {
    BOOLEAN: 'boolean',
    TINYINT: 'tinyint',
    SMALLINT: 'smallint',
    INTEGER: 'int',
    BIGINT: 'bigint',
    UTINYINT: 'smallint',
    USMALLINT: 'int',
    UINTEGER: 'bigint',
    UBIGINT: 'decimal(20,0)',
    HUGEINT: 'decimal(38,0)',
    UHUGEINT: 'decimal(38,0)',
    FLOAT: 'float',
    DOUBLE: 'double',
    VARCHAR: 'string',
    UUID: 'string',
    TIME: 'string',
    'TIME WITH TIME ZONE': 'string',
    INTERVAL: 'string',
    BIT: 'string',
    DATE: 'date',
    TIMESTAMP: 'timestamp',
    TIMESTAMP_S: 'timestamp',
    TIMESTAMP_MS: 'timestamp',
    TIMESTAMP_NS: 'timestamp',
    'TIMESTAMP WITH TIME ZONE': 'timestamp',
    BLOB: 'binary',
    NULL: 'string',
    JSON: 'string', // nested (`JSON[]`, `STRUCT(a JSON)`): Glue has no logical type there
  };
  const direct = simple[upper];
  if (direct) return direct;
  let m = /^DECIMAL\((\d+),\s*(\d+)\)$/i.exec(t);
  if (m) return `decimal(${Number(m[1])},${Number(m[2])})`;
  m = /^STRUCT\((.*)\)$/is.exec(t);
  if (m?.[1] !== undefined) {
    const fields = splitTopLevel(m[1], ',').map((field) => {
      const f = field.trim();
      let name: string;
      let rest: string;
      if (f.startsWith('"')) {
        const end = findClosingQuote(f);
        name = f.slice(1, end).replaceAll('""', '"');
        rest = f.slice(end + 1);
      } else {
        const space = f.indexOf(' ');
        name = f.slice(0, space);
        rest = f.slice(space + 1);
      }
      return `${name}:${duckToGlue(rest)}`;
    });
    return `struct<${fields.join(',')}>`;
  }
  m = /^MAP\((.*)\)$/is.exec(t);
  if (m?.[1] !== undefined) {
    const [k, v] = splitTopLevel(m[1], ',');
    if (k !== undefined && v !== undefined) return `map<${duckToGlue(k)},${duckToGlue(v)}>`;
  }
  if (/^UNION\(/i.test(t) || /^ENUM\(/i.test(t)) return 'string';
  throw new Error(`unsupported DuckDB type "${type}"`);
}

function findClosingQuote(text: string): number {
  for (let i = 1; i < text.length; i++) {
    if (text[i] === '"') {
      if (text[i + 1] === '"') i++;
      else return i;
    }
  }
  return text.length;
}

/** Splits on `separator` outside brackets and quotes. */
export function splitTopLevel(text: string, separator: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let inQuote = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') inQuote = !inQuote;
    else if (!inQuote && (ch === '(' || ch === '<' || ch === '[')) depth++;
    else if (!inQuote && (ch === ')' || ch === '>' || ch === ']')) depth--;
    else if (!inQuote && depth === 0 && ch === separator) {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(text.slice(start).trim());
  return parts;
}
