/**
 * Table schemas in the type vocabulary of the AWS Glue Data Catalog / Hive
 * (https://docs.aws.amazon.com/athena/latest/ug/data-types.html), so a schema written here is
 * exactly what the Glue backend registers and what Athena reads. Engines map these types to their
 * own (see src/engines/duckdb/types.ts).
 */

/** Scalar Glue/Hive types sluice produces. Complex types are `array<...>`, `map<...>`, `struct<...>`. */
export type ScalarType =
  | 'boolean'
  | 'tinyint'
  | 'smallint'
  | 'int'
  | 'bigint'
  | 'float'
  | 'double'
  | 'decimal'
  | 'string'
  | 'date'
  | 'timestamp'
  | 'binary';

/** A Glue/Hive type string: a scalar, `decimal(p,s)`, `varchar(n)`, or a complex type. */
export type ColumnType =
  | ScalarType
  | `decimal(${number},${number})`
  | `varchar(${number})`
  | `${'array' | 'map' | 'struct'}<${string}>`;

/** One column of a table. */
export interface Column {
  readonly name: string;
  readonly type: ColumnType;
  /** `false` when every row has a value (the writer enforces it). Default `true`. */
  readonly nullable?: boolean;
  /**
   * A finer meaning of a `string` column: `json` holds a JSON document (Parquet JSON logical
   * type; DuckDB's JSON type). Glue stores it as `string`.
   */
  readonly logicalType?: 'json';
  readonly comment?: string;
}

/** Shallow check of a Glue type string. */
export function isColumnType(value: string): value is ColumnType {
  return /^(boolean|tinyint|smallint|int|bigint|float|double|decimal|string|date|timestamp|binary|decimal\(\d+,\d+\)|varchar\(\d+\)|(array|map|struct)<.+>)$/.test(
    value,
  );
}

/** What changed between two column lists. Column order, comments and declared metadata other than type and nullability are not changes. */
export interface SchemaDiff {
  readonly added: Column[];
  readonly removed: Column[];
  /**
   * Columns whose type (or logical type) or nullability changed; `nullable` is given when the
   * nullability changed (`from`/`to` are the effective values, absent `nullable` being `true`).
   */
  readonly changed: {
    name: string;
    from: ColumnType;
    to: ColumnType;
    nullable?: { from: boolean; to: boolean };
  }[];
}

/** Whether a column admits NULL: `nullable` absent means `true`. */
export function isNullable(column: Pick<Column, 'nullable'>): boolean {
  return column.nullable !== false;
}

/**
 * Differences of `next` against `previous`, by column name: a column is changed when its type,
 * its logical type or its nullability ({@link isNullable}) differs.
 */
export function diffColumns(previous: readonly Column[], next: readonly Column[]): SchemaDiff {
  const before = new Map(previous.map((c) => [c.name, c]));
  const after = new Map(next.map((c) => [c.name, c]));
  const added = next.filter((c) => !before.has(c.name));
  const removed = previous.filter((c) => !after.has(c.name));
  const changed: SchemaDiff['changed'] = [];
  for (const column of next) {
    const old = before.get(column.name);
    if (!old) continue;
    const typeChanged =
      old.type !== column.type || (old.logicalType ?? null) !== (column.logicalType ?? null);
    const nullableChanged = isNullable(old) !== isNullable(column);
    if (typeChanged || nullableChanged) {
      changed.push({
        name: column.name,
        from: old.type,
        to: column.type,
        ...(nullableChanged ? { nullable: { from: isNullable(old), to: isNullable(column) } } : {}),
      });
    }
  }
  return { added, removed, changed };
}

/** True when the diff is empty. */
export function isSameSchema(diff: SchemaDiff): boolean {
  return diff.added.length === 0 && diff.removed.length === 0 && diff.changed.length === 0;
}
