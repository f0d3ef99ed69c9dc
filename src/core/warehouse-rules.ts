/**
 * The checks every `Warehouse` adapter applies to `copyFrom`'s target before it builds a
 * `COPY` statement, so the local (PostgreSQL) and aws (Redshift Data API) warehouses accept and
 * refuse the same names. Pure: no I/O. Contract: test/conformance/warehouse.case.ts.
 */
import { WarehouseError, type WarehouseTransaction } from './ports/warehouse.ts';

/** One identifier: unquoted (`[A-Za-z_][A-Za-z0-9_$]*`, folds to lower case) or double-quoted with `""` for `"`. */
const IDENT_PART = '(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")';
const IDENTIFIER = new RegExp(`^${IDENT_PART}$`);
const QUALIFIED_NAME = new RegExp(`^${IDENT_PART}(?:\\.${IDENT_PART}){0,2}$`);

/**
 * Checks the target of {@link WarehouseTransaction.copyFrom}: `table` is `name`, `schema.name` or
 * `database.schema.name`, each part a plain or double-quoted identifier (PostgreSQL "Identifiers
 * and Key Words", https://www.postgresql.org/docs/current/sql-syntax-lexical.html#SQL-SYNTAX-IDENTIFIERS;
 * Redshift "Names and identifiers", https://docs.aws.amazon.com/redshift/latest/dg/r_names.html),
 * and `columns` is a non-empty list of such identifiers. Names are then spliced into SQL as given,
 * so anything else (spaces, `;`, comments) is refused.
 *
 * @throws {WarehouseError} SQLSTATE `42602` (invalid name) naming the table or the first bad column.
 */
export function assertCopyTarget(table: string, columns: readonly string[]): void {
  if (!QUALIFIED_NAME.test(table)) {
    throw new WarehouseError(`copyFrom: "${table}" is not a table name`, { sqlState: '42602' });
  }
  const bad = columns.find((c) => !IDENTIFIER.test(c));
  if (columns.length === 0 || bad !== undefined) {
    throw new WarehouseError(
      `copyFrom: ${bad === undefined ? 'no columns' : `"${bad}" is not a column name`}`,
      { sqlState: '42602' },
    );
  }
}
