import { open } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import type { Layer } from '../../core/layer.ts';
import { parsePartitionPath } from '../../core/partition.ts';
import type {
  Catalog,
  CatalogTable,
  PartitionFile,
  PartitionInput,
  TableFormat,
} from '../../core/ports/catalog.ts';
import type { LocalObjectFile, ObjectInfo, ObjectStore } from '../../core/ports/object-store.ts';
import type { Column, ColumnType } from '../../core/schema.ts';
import { diffColumns, isSameSchema } from '../../core/schema.ts';
import { DuckDb, quoteString } from '../duckdb/duckdb.ts';
import { fromDuckDbType } from '../duckdb/types.ts';
import { isGzipFile } from '../ndjson/annotate-lines.ts';

/**
 * The crawler: catalogs data that arrived without a sluice writer (copied by hand, produced by
 * another tool), as a Glue crawler does.
 *
 * Under `<layer>/<prefix>`, each folder is a table (`<prefix><table>/...`); inside it, Hive
 * `key=value/` folders are partitions. Each file is classified by its content, not its name
 * (Parquet by its `PAR1` magic; gzip is looked through; JSON arrays by a leading `[`; NDJSON by a
 * first line that is a JSON object; otherwise CSV), the schema is inferred by DuckDB over all of a
 * table's files (by column name), partition key types from their values (all integers: `int` or
 * `bigint`, else `string`), and the table and its partitions are registered. A schema that differs
 * from the cataloged one becomes a new schema version; a table written by a pipeline keeps its
 * declared column metadata when the crawl agrees with it.
 */

/** Options of {@link crawl}. */
export interface CrawlOptions {
  readonly objectStore: ObjectStore;
  readonly catalog: Catalog;
  readonly layer: Layer;
  /** Key prefix ending in `/`, e.g. `gharchive/`; each folder below it is a table. */
  readonly prefix: string;
  /** Catalog database to register into (sluice: the pipeline name). */
  readonly database: string;
  /** Recorded as the creator of new schema versions. */
  readonly createdBy?: string;
}

/** What the crawler found for one table. */
export interface CrawledTable {
  readonly name: string;
  readonly format: TableFormat;
  readonly change: 'created' | 'evolved' | 'unchanged';
  readonly schemaVersion: number;
  readonly columns: readonly Column[];
  readonly partitionKeys: readonly Column[];
  readonly partitions: number;
  readonly files: number;
  /** Partitions removed from the catalog because their folder has no data files any more. */
  readonly removedPartitions: number;
}

/** Result of {@link crawl}. */
export interface CrawlResult {
  readonly tables: CrawledTable[];
  /** Files or tables not cataloged, each with the reason. */
  readonly skipped: { readonly key: string; readonly reason: string }[];
}

/**
 * Crawls `<layer>/<prefix>` into `database`.
 * @throws {Error} from DuckDB when files of a table cannot be read together.
 */
export async function crawl(options: CrawlOptions): Promise<CrawlResult> {
  const { objectStore, layer } = options;
  const prefix =
    options.prefix.endsWith('/') || options.prefix === '' ? options.prefix : `${options.prefix}/`;
  const skipped: { key: string; reason: string }[] = [];
  const byTable = new Map<string, ObjectInfo[]>();
  for await (const info of objectStore.list(layer, prefix)) {
    const rest = info.key.slice(prefix.length);
    const slash = rest.indexOf('/');
    if (slash === -1) {
      skipped.push({
        key: info.key,
        reason: 'a file directly under the crawled folder: put each table in its own folder',
      });
      continue;
    }
    const table = rest.slice(0, slash);
    byTable.set(table, [...(byTable.get(table) ?? []), info]);
  }

  const tables: CrawledTable[] = [];
  const db = await DuckDb.open({ threads: 2 });
  try {
    for (const [name, files] of byTable) {
      // One unreadable table must not hide the others: it is reported with its reason.
      try {
        const result = await crawlTable(db, options, name, `${prefix}${name}/`, files, skipped);
        if (result) tables.push(result);
      } catch (error) {
        skipped.push({
          key: `${prefix}${name}/`,
          reason: `table could not be read: ${(error as Error).message}`,
        });
      }
    }
  } finally {
    db.close();
  }
  return { tables, skipped };
}

async function crawlTable(
  db: DuckDb,
  options: CrawlOptions,
  name: string,
  tablePrefix: string,
  files: ObjectInfo[],
  skipped: { key: string; reason: string }[],
): Promise<CrawledTable | undefined> {
  const { objectStore, catalog, layer, database } = options;
  // Partition layout: every file's folders must be k=v with the same keys in the same order.
  const layouts = new Map<string, { info: ObjectInfo; values: string[] }[]>();
  for (const info of files) {
    const parsed = parsePartitionPath(tablePrefix, info.key);
    if (!parsed) {
      skipped.push({ key: info.key, reason: 'folder is not a Hive partition (key=value)' });
      continue;
    }
    const layout = parsed.keys.join('/');
    layouts.set(layout, [...(layouts.get(layout) ?? []), { info, values: parsed.values }]);
  }
  const [layout, entries] = [...layouts.entries()].sort((a, b) => b[1].length - a[1].length)[0] ?? [];
  if (layout === undefined || !entries) return undefined;
  for (const [other, rest] of layouts) {
    if (other === layout) continue;
    for (const e of rest) {
      skipped.push({
        key: e.info.key,
        reason: `partition keys (${other || 'none'}) differ from the table's (${layout || 'none'})`,
      });
    }
  }
  const keys = layout === '' ? [] : layout.split('/');

  // Classify by content; keep the majority format.
  const opened: LocalObjectFile[] = [];
  try {
    const classified: { info: ObjectInfo; values: string[]; path: string; format: TableFormat | 'array' }[] =
      [];
    for (const entry of entries) {
      const local = await objectStore.localPath({ layer, key: entry.info.key });
      opened.push(local);
      const format = await classify(local.path);
      if (!format) {
        skipped.push({ key: entry.info.key, reason: 'content is not Parquet, JSON or CSV' });
        continue;
      }
      if (format !== 'parquet' && (await isGzipFile(local.path)) && !entry.info.key.endsWith('.gz')) {
        skipped.push({
          key: entry.info.key,
          reason:
            'gzip content without a .gz name: readers choose decompression by name; rename it to end in .gz',
        });
        continue;
      }
      classified.push({ ...entry, path: local.path, format });
    }
    // NDJSON and JSON array files are one format (`ndjson`): DuckDB's JSON reader detects which per file.
    const tableFormatOf = (f: TableFormat | 'array'): TableFormat => (f === 'array' ? 'ndjson' : f);
    const counts = new Map<TableFormat, number>();
    for (const c of classified)
      counts.set(tableFormatOf(c.format), (counts.get(tableFormatOf(c.format)) ?? 0) + 1);
    const format = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
    if (!format) return undefined;
    const chosen = classified.filter((c) => tableFormatOf(c.format) === format);
    for (const c of classified) {
      if (tableFormatOf(c.format) !== format)
        skipped.push({ key: c.info.key, reason: `format ${c.format} differs from the table's (${format})` });
    }

    const list = `[${chosen.map((c) => quoteString(c.path)).join(', ')}]`;
    const reader =
      format === 'parquet'
        ? `read_parquet(${list}, union_by_name = true, hive_partitioning = false)`
        : format === 'csv'
          ? `read_csv_auto(${list}, union_by_name = true, hive_partitioning = false)`
          : `read_json_auto(${list}, union_by_name = true, hive_partitioning = false, format = 'auto')`;
    const described = await db.all(`DESCRIBE SELECT * FROM ${reader}`);
    const inferred: Column[] = described.rows
      .map((row) => ({ name: String(row.column_name), ...fromDuckDbType(String(row.column_type)) }))
      .filter((c) => !keys.includes(c.name));

    const rowsByPath = new Map<string, number>();
    if (format === 'parquet') {
      const meta = await db.all(`SELECT file_name, num_rows FROM parquet_file_metadata(${list})`);
      for (const row of meta.rows) rowsByPath.set(String(row.file_name), Number(row.num_rows));
    }

    const partitionKeys: Column[] = keys.map((key, i) => ({
      name: key,
      type: inferKeyType(chosen.map((c) => c.values[i] ?? '')),
    }));
    const tableFormat: TableFormat = format;
    const existing = await catalog.getTable(database, name);
    const columns = existing ? mergeColumns(existing, inferred) : inferred;
    const sameAsExisting =
      existing !== undefined &&
      isSameSchema(diffColumns(existing.columns, inferred)) &&
      isSameSchema(diffColumns(existing.partitionKeys, partitionKeys));
    let table: CatalogTable;
    let change: CrawledTable['change'] = 'unchanged';
    if (existing && sameAsExisting) {
      table = existing;
    } else {
      const upserted = await catalog.upsertTable(
        {
          database,
          name,
          location: { layer, prefix: tablePrefix },
          format: tableFormat,
          columns,
          partitionKeys:
            existing && sameKeys(existing.partitionKeys, partitionKeys)
              ? existing.partitionKeys
              : partitionKeys,
          ...(existing?.description ? { description: existing.description } : {}),
          ...(existing?.primaryKey ? { primaryKey: existing.primaryKey } : {}),
          managedBy: existing?.managedBy ?? 'crawler',
        },
        { createdBy: options.createdBy ?? 'crawler' },
      );
      table = upserted.table;
      change = upserted.change;
    }

    // Partitions: one per distinct values (or one for an unpartitioned table, registered by nothing).
    const partitions = new Map<string, { values: string[]; prefix: string; files: PartitionFile[] }>();
    for (const c of chosen) {
      const dir = c.info.key.slice(0, c.info.key.lastIndexOf('/') + 1);
      const partitionDir = keys.length === 0 ? tablePrefix : dir;
      const entry = partitions.get(partitionDir) ?? { values: c.values, prefix: partitionDir, files: [] };
      const rows = rowsByPath.get(c.path);
      entry.files.push({ key: c.info.key, bytes: c.info.size, ...(rows !== undefined ? { rows } : {}) });
      partitions.set(partitionDir, entry);
    }
    let removed = 0;
    if (keys.length > 0) {
      const inputs: PartitionInput[] = [...partitions.values()].map((p) => ({
        ...p,
        runId: options.createdBy ?? 'crawler',
      }));
      await catalog.putPartitions(database, name, inputs);
      const gone = (await catalog.listPartitions(database, name)).filter((p) => !partitions.has(p.prefix));
      if (gone.length > 0)
        await catalog.deletePartitions(
          database,
          name,
          gone.map((p) => p.values),
        );
      removed = gone.length;
    }
    return {
      name,
      format: tableFormat,
      change,
      schemaVersion: table.schemaVersion,
      columns: table.columns,
      partitionKeys: table.partitionKeys,
      partitions: keys.length > 0 ? partitions.size : 0,
      files: chosen.length,
      removedPartitions: removed,
    };
  } finally {
    for (const local of opened) await local.release();
  }
}

/** Keeps the cataloged metadata (comments, nullability, JSON logical type) of columns whose type the crawl confirms. */
function mergeColumns(existing: CatalogTable, inferred: readonly Column[]): Column[] {
  const known = new Map(existing.columns.map((c) => [c.name, c]));
  return inferred.map((c) => {
    const old = known.get(c.name);
    return old && old.type === c.type && (old.logicalType ?? null) === (c.logicalType ?? null) ? old : c;
  });
}

function sameKeys(a: readonly Column[], b: readonly Column[]): boolean {
  return a.length === b.length && a.every((k, i) => k.name === b[i]?.name && k.type === b[i]?.type);
}

function inferKeyType(values: readonly string[]): ColumnType {
  if (values.length > 0 && values.every((v) => /^-?\d{1,18}$/.test(v))) {
    return values.every((v) => Math.abs(Number(v)) <= 2_147_483_647) ? 'int' : 'bigint';
  }
  return 'string';
}

/**
 * Classifies a file by its first bytes (looking through gzip): `parquet`, `array` (a JSON array),
 * `ndjson`, `csv`, or `undefined` when it is none of these.
 */
export async function classify(path: string): Promise<TableFormat | 'array' | undefined> {
  const handle = await open(path, 'r');
  let head: Buffer;
  try {
    const buffer = Buffer.alloc(64 * 1024);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    head = buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
  if (head.subarray(0, 4).toString('latin1') === 'PAR1') return 'parquet';
  if (head[0] === 0x1f && head[1] === 0x8b) {
    try {
      head = gunzipSync(head, { finishFlush: 2 /* Z_SYNC_FLUSH: accept a cut stream */ });
    } catch {
      return undefined;
    }
  }
  const text = head.toString('utf8').replace(/^\uFEFF/, '');
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[')) return 'array';
  if (trimmed.startsWith('{')) {
    const firstLine = trimmed.split('\n', 1)[0] ?? '';
    try {
      const value: unknown = JSON.parse(firstLine);
      return value !== null && typeof value === 'object' ? 'ndjson' : undefined;
    } catch {
      return firstLine.length === trimmed.length ? 'ndjson' : undefined;
    }
  }
  const firstLine = trimmed.split('\n', 1)[0] ?? '';
  if (firstLine.length > 0 && /[,;\t|]/.test(firstLine) && !text.includes('\u0000')) return 'csv';
  return undefined;
}
