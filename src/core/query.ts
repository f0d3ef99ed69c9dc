/**
 * A named query a pipeline ships with its tables (Athena's named queries; a view in the query
 * engine): `SELECT * FROM hashtags.top_hashtags` runs it with its parameters' defaults, and
 * `sluice query hashtags.top_hashtags --param since=2026-11-01` runs it with other values.
 */
export interface NamedQuery {
  /** The catalog database, i.e. the pipeline (`hashtags`). */
  readonly database: string;
  /** Lower-case name, unique in the database and distinct from its tables (`top_hashtags`). */
  readonly name: string;
  readonly description: string;
  /**
   * One SELECT over `<database>.<table>` names. Parameters are written `$name` (DuckDB's named
   * prepared-statement parameters) and each must be declared in {@link parameters}.
   */
  readonly sql: string;
  /** Parameters by name, with their SQL type and default (SQL literal text, e.g. `NULL`, `10`). */
  readonly parameters?: { readonly [name: string]: QueryParameter };
}

/** A parameter of a {@link NamedQuery}. */
export interface QueryParameter {
  readonly type: 'timestamp' | 'bigint' | 'string';
  readonly description: string;
  /** Used when the caller gives no value, as SQL literal text (`NULL` = unbounded). */
  readonly default: string;
}

/** `database.name` of a named query. */
export function namedQueryName(query: Pick<NamedQuery, 'database' | 'name'>): string {
  return `${query.database}.${query.name}`;
}

/**
 * The query's SQL with every `$parameter` replaced by a typed SQL literal: the given value
 * (a string, quoted and cast to the parameter's type) or the declared default.
 * @throws {Error} naming the parameter when a value is given for an undeclared parameter, a
 *   `$name` in the SQL is undeclared, or a `bigint` value is not an integer.
 */
export function bindNamedQuery(query: NamedQuery, values: { readonly [name: string]: string } = {}): string {
  const declared = query.parameters ?? {};
  for (const name of Object.keys(values)) {
    if (!(name in declared)) {
      throw new Error(
        `${namedQueryName(query)} has no parameter "${name}" (it has: ${Object.keys(declared).join(', ') || 'none'})`,
      );
    }
  }
  return query.sql.replace(/\$([A-Za-z_][A-Za-z0-9_]*)/g, (_match, name: string) => {
    const parameter = declared[name];
    if (!parameter) throw new Error(`${namedQueryName(query)} uses undeclared parameter $${name}`);
    const value = values[name];
    if (value === undefined) return `CAST(${parameter.default} AS ${sqlType(parameter.type)})`;
    if (parameter.type === 'bigint') {
      if (!/^-?[0-9]+$/.test(value)) throw new Error(`parameter ${name} must be an integer, got "${value}"`);
      return `CAST(${value} AS BIGINT)`;
    }
    return `CAST('${value.replaceAll("'", "''")}' AS ${sqlType(parameter.type)})`;
  });
}

function sqlType(type: QueryParameter['type']): string {
  return type === 'timestamp' ? 'TIMESTAMP' : type === 'bigint' ? 'BIGINT' : 'VARCHAR';
}
