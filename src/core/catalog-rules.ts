/**
 * The checks every {@link Catalog} adapter applies before it writes, so the local (SQLite) and
 * aws (Glue) catalogs refuse the same definitions and partitions with the same messages.
 * Pure: no I/O. Contract: test/conformance/catalog.case.ts.
 */
import { isLayer } from './layer.ts';
import type { Catalog, PartitionInput, TableDefinition, TableFormat } from './ports/catalog.ts';
import type { Column } from './schema.ts';

/** Every {@link TableFormat}, for checking a value that came from outside the type system. */
export const TABLE_FORMATS: readonly TableFormat[] = ['parquet', 'ndjson', 'csv', 'python-dict'];

/**
 * Checks a table definition before {@link Catalog.upsertTable} stores it: non-empty `database`
 * and `name`; `location.layer` a {@link Layer}; `location.prefix` a string; `format` one of
 * {@link TABLE_FORMATS}; every column and partition key with a non-empty name, no name twice
 * across columns and partition keys (Glue and Hive refuse a partition key that repeats a column:
 * https://docs.aws.amazon.com/glue/latest/webapi/API_TableInput.html).
 *
 * @throws {Error} naming the table (`catalog table <database>.<name>`) and the rule it breaks.
 */
export function validateTableDefinition(definition: TableDefinition): void {
  const where = `catalog table ${definition.database}.${definition.name}`;
  if (typeof definition.database !== 'string' || definition.database.length === 0) {
    throw new Error('catalog table definition needs a non-empty database name');
  }
  if (typeof definition.name !== 'string' || definition.name.length === 0) {
    throw new Error(`catalog table definition in database ${definition.database} needs a non-empty name`);
  }
  if (!definition.location || !isLayer(definition.location.layer)) {
    throw new Error(`${where}: location layer ${String(definition.location?.layer)} is not a layer`);
  }
  if (typeof definition.location.prefix !== 'string')
    throw new Error(`${where}: location prefix must be a string`);
  if (!TABLE_FORMATS.includes(definition.format))
    throw new Error(`${where}: unknown format ${String(definition.format)}`);
  const names = new Set<string>();
  for (const column of [...definition.columns, ...definition.partitionKeys]) {
    if (typeof column.name !== 'string' || column.name.length === 0) {
      throw new Error(`${where}: every column needs a non-empty name`);
    }
    if (names.has(column.name)) throw new Error(`${where}: column "${column.name}" is declared twice`);
    names.add(column.name);
  }
}

/**
 * Checks one partition before {@link Catalog.putPartitions} stores it in table `table`
 * (`<database>.<name>`, for messages) whose partition keys are `keys`: exactly one value per key,
 * in key order; each value a non-empty string without control characters (U+0000-U+001F; they
 * would end up in Hive paths `key=value/`); `prefix` a string; `files` a list whose entries have a
 * string `key`, integer `bytes` >= 0 and, when given, integer `rows` >= 0.
 *
 * @throws {Error} naming the table, the partition's values and the rule it breaks.
 */
export function validatePartitionInput(
  table: string,
  keys: readonly Column[],
  partition: PartitionInput,
): void {
  const values = partition.values;
  const shown = JSON.stringify(values);
  if (!Array.isArray(values) || values.length !== keys.length) {
    throw new Error(
      `catalog table ${table}: partition ${shown} has ${Array.isArray(values) ? values.length : 'no'} value(s), ` +
        `expected ${keys.length} (${keys.map((k) => k.name).join(', ')})`,
    );
  }
  values.forEach((value, i) => {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
    if (typeof value !== 'string' || value.length === 0 || /[\u0000-\u001f]/.test(value)) {
      throw new Error(
        `catalog table ${table}: partition ${shown}: value of "${keys[i]!.name}" must be a non-empty string ` +
          'without control characters',
      );
    }
  });
  if (typeof partition.prefix !== 'string')
    throw new Error(`catalog table ${table}: partition ${shown} needs a prefix`);
  if (!Array.isArray(partition.files))
    throw new Error(`catalog table ${table}: partition ${shown} needs a files list`);
  for (const file of partition.files) {
    const okRows = file.rows === undefined || (Number.isInteger(file.rows) && file.rows >= 0);
    if (typeof file.key !== 'string' || !Number.isInteger(file.bytes) || file.bytes < 0 || !okRows) {
      throw new Error(
        `catalog table ${table}: partition ${shown}: file ${JSON.stringify(file)} needs a key, integer bytes >= 0 ` +
          'and, when given, integer rows >= 0',
      );
    }
  }
}
