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
import { diffColumns, isNullable, isSameSchema } from '../../core/schema.ts';
import { DuckDb, quoteIdent, quoteString } from '../duckdb/duckdb.ts';
import { fromDuckDbType } from '../duckdb/types.ts';
import { isGzipFile } from '../ndjson/annotate-lines.ts';
import { PythonLiteralError, parsePythonLiteral } from '../pydict/python-literal.ts';
import { DATE_LIKE_COMMENT, inferLineFiles } from './infer-records.ts';

/**
 * The crawler: catalogs data that arrived without a sluice writer (copied by hand, produced by
 * another tool), as a Glue crawler does.
 *
 * Under `<layer>/<prefix>`, each folder is a table (`<prefix><table>/...`); inside it, Hive
 * `key=value/` folders are partitions. Each file is classified by its content, not its name
 * ({@link classify}: Parquet, JSON array, NDJSON, Python-dict lines, CSV; gzip is looked through).
 * A table keeps its majority format (Python-dict lines and NDJSON count together, as one line
 * parser reads both); other files are skipped with a reason.
 *
 * Columns: DuckDB infers Parquet, NDJSON/JSON and CSV over all of a table's files (by column name);
 * Python-dict lines are parsed in JS ({@link inferLineFiles}: at most `maxLinesPerFile` lines per
 * file, said in the table's `notes`), with the same rules as DuckDB's JSON reader. Integers stay
 * `bigint` as DuckDB infers them (never narrowed to `int`: an id would change type, or break
 * Athena, the day a value passes 2^31). A `string` column whose every value is a `YYYY/MM/DD` date
 * gets the comment `date-like: YYYY/MM/DD` (ISO dates are already `date`). Every column gets its
 * nullability: `nullable: false` when no file has a NULL or a missing value for it (Parquet: the
 * row groups' null counts, or a count query when a file has no statistics; NDJSON/CSV: a count
 * query over all files; Python-dict: the lines read). Partition key types come from their values
 * (all integers: `int` or `bigint`, else `string`).
 *
 * A schema that differs from the cataloged one (a column added or removed, a type or a nullability
 * changed) becomes a new schema version. A table written by a pipeline keeps its declared column
 * metadata (comments, logical type, nullability) when the crawl agrees with it: same type, and
 * no NULLs in a column declared NOT NULL (a declared nullable column with no NULLs agrees).
 *
 * Bad data never fails a crawl: unreadable files are skipped with the reason; a Python-dict file
 * with bad lines is cataloged and the bad lines are counted in `skipped` (the job quarantines them).
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
  /** Only these table folders (names below `prefix`); others are neither crawled nor reported. */
  readonly tables?: readonly string[];
  /** Lines read per Python-dict file for inference (default {@link DEFAULT_MAX_LINES_PER_FILE}). */
  readonly maxLinesPerFile?: number;
}

/** Default of {@link CrawlOptions.maxLinesPerFile}. */
export const DEFAULT_MAX_LINES_PER_FILE = 10_000;

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
  /** How the schema was inferred, when worth saying (sampled lines, nullability not determined). */
  readonly notes: string[];
}

/** A file, a table or some lines of a file that were not cataloged, with the reason. */
export interface SkippedItem {
  readonly key: string;
  readonly reason: string;
  /**
   * Set when the file itself is cataloged but this many of its lines are not (Python-dict or JSON
   * lines that do not parse); the reason names the first one.
   */
  readonly lines?: number;
}

/** Result of {@link crawl}. */
export interface CrawlResult {
  readonly tables: CrawledTable[];
  /** Files, tables or lines not cataloged, each with the reason. */
  readonly skipped: SkippedItem[];
}

/**
 * Crawls `<layer>/<prefix>` into `database`.
 * @throws {Error} from DuckDB when files of a table cannot be read together.
 */
export async function crawl(options: CrawlOptions): Promise<CrawlResult> {
  const { objectStore, layer } = options;
  const prefix =
    options.prefix.endsWith('/') || options.prefix === '' ? options.prefix : `${options.prefix}/`;
  const skipped: SkippedItem[] = [];
  const byTable = new Map<string, ObjectInfo[]>();
  const listings = options.tables ? options.tables.map((table) => `${prefix}${table}/`) : [prefix];
  for (const listing of listings) {
    for await (const info of objectStore.list(layer, listing)) {
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
      const list = byTable.get(table);
      if (list) list.push(info);
      else byTable.set(table, [info]);
    }
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
  skipped: SkippedItem[],
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
    const list = layouts.get(layout);
    if (list) list.push({ info, values: parsed.values });
    else layouts.set(layout, [{ info, values: parsed.values }]);
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
        skipped.push({
          key: entry.info.key,
          reason: 'content is not Parquet, JSON or CSV (nor Python dict lines)',
        });
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
    // NDJSON and JSON array files are one format (`ndjson`): DuckDB's JSON reader detects which per
    // file. NDJSON files also count for (and join) a table of Python-dict lines: its parser reads both.
    const tableFormatOf = (f: TableFormat | 'array'): TableFormat => (f === 'array' ? 'ndjson' : f);
    const counts = new Map<TableFormat, number>();
    for (const c of classified)
      counts.set(tableFormatOf(c.format), (counts.get(tableFormatOf(c.format)) ?? 0) + 1);
    const pythonDict = counts.get('python-dict');
    if (pythonDict !== undefined) {
      counts.set('python-dict', pythonDict + classified.filter((c) => c.format === 'ndjson').length);
    }
    const format = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
    if (!format) return undefined;
    const belongs = (f: TableFormat | 'array') =>
      tableFormatOf(f) === format || (format === 'python-dict' && f === 'ndjson');
    const chosen = classified.filter((c) => belongs(c.format));
    for (const c of classified) {
      if (!belongs(c.format))
        skipped.push({ key: c.info.key, reason: `format ${c.format} differs from the table's (${format})` });
    }

    const notes: string[] = [];
    let inferred: Column[];
    const rowsByPath = new Map<string, number>();
    if (format === 'python-dict') {
      const maxLines = options.maxLinesPerFile ?? DEFAULT_MAX_LINES_PER_FILE;
      const read = await inferLineFiles(
        chosen.map((c) => ({ path: c.path, gzip: c.info.key.endsWith('.gz') })),
        maxLines,
      );
      inferred = read.columns.filter((c) => !keys.includes(c.name));
      let truncated = 0;
      for (const [i, report] of read.files.entries()) {
        const key = chosen[i]?.info.key ?? report.path;
        if (report.truncated) truncated++;
        else if (report.bad === 0 && report.readError === undefined)
          rowsByPath.set(report.path, report.records);
        if (report.bad > 0) {
          const first = report.firstBad
            ? ` (first: line ${report.firstBad.line}: ${report.firstBad.reason})`
            : '';
          skipped.push({
            key,
            reason: `${report.bad} of ${report.lines} lines${report.truncated ? ' read' : ''} are neither a Python dict nor a JSON object${first}; the rest of the file is cataloged (the job quarantines such lines)`,
            lines: report.bad,
          });
        }
        if (report.readError !== undefined) {
          skipped.push({
            key,
            reason: `reading stopped after line ${report.lines}: ${report.readError}; the lines before it are cataloged`,
          });
        }
      }
      if (truncated > 0) {
        notes.push(
          `python-dict: types and nullability inferred from the first ${maxLines.toLocaleString('en-US')} lines of each file; ${truncated} of ${chosen.length} files have more lines, not read`,
        );
      }
    } else {
      const list = `[${chosen.map((c) => quoteString(c.path)).join(', ')}]`;
      const reader =
        format === 'parquet'
          ? `read_parquet(${list}, union_by_name = true, hive_partitioning = false)`
          : format === 'csv'
            ? `read_csv_auto(${list}, union_by_name = true, hive_partitioning = false)`
            : `read_json_auto(${list}, union_by_name = true, hive_partitioning = false, format = 'auto')`;
      const described = await db.all(`DESCRIBE SELECT * FROM ${reader}`);
      const columns: Column[] = described.rows
        .map((row) => ({ name: String(row.column_name), ...fromDuckDbType(String(row.column_type)) }))
        .filter((c) => !keys.includes(c.name));
      if (format === 'parquet') {
        const meta = await db.all(`SELECT file_name, num_rows FROM parquet_file_metadata(${list})`);
        for (const row of meta.rows) rowsByPath.set(String(row.file_name), Number(row.num_rows));
      }
      inferred = await withNullability(db, format, list, reader, columns, notes);
    }

    const partitionKeys: Column[] = keys.map((key, i) => ({
      name: key,
      type: inferKeyType(chosen.map((c) => c.values[i] ?? '')),
    }));
    const tableFormat: TableFormat = format;
    const existing = await catalog.getTable(database, name);
    const columns = existing ? mergeColumns(existing, inferred) : inferred;
    // A pipeline's table keeps its declared column order; a crawled one also takes new comments.
    const comments = new Map(existing?.columns.map((c) => [c.name, c.comment]));
    const sameAsExisting =
      existing !== undefined &&
      existing.format === tableFormat &&
      isSameSchema(diffColumns(existing.columns, columns)) &&
      isSameSchema(diffColumns(existing.partitionKeys, partitionKeys)) &&
      (existing.managedBy === 'pipeline' || columns.every((c) => comments.get(c.name) === c.comment));
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
      notes,
    };
  } finally {
    for (const local of opened) await local.release();
  }
}

/**
 * The crawled columns, keeping the cataloged metadata (comments, nullability, JSON logical type) of
 * a pipeline-managed table's columns the crawl agrees with: same type and logical type, and the
 * column is nullable or the crawl found no NULLs in it. A crawler-managed table takes the crawl's
 * columns as they are.
 */
function mergeColumns(existing: CatalogTable, inferred: readonly Column[]): Column[] {
  if (existing.managedBy !== 'pipeline') return [...inferred];
  const known = new Map(existing.columns.map((c) => [c.name, c]));
  return inferred.map((c) => {
    const old = known.get(c.name);
    if (!old || old.type !== c.type || (old.logicalType ?? null) !== (c.logicalType ?? null)) return c;
    return isNullable(old) || !isNullable(c) ? old : c;
  });
}

/**
 * `columns` with their nullability (`nullable: false` when no row has a NULL), and the
 * date-like comment on `string` columns whose every value is `YYYY/MM/DD`. Parquet: from the row
 * groups' null counts where every file has statistics for the (top-level, scalar) column, else by a
 * count query. NDJSON/CSV: one count query over all files. When the query fails (a value DuckDB's
 * sample did not foresee), columns stay nullable and a note says why.
 */
async function withNullability(
  db: DuckDb,
  format: TableFormat,
  list: string,
  reader: string,
  columns: readonly Column[],
  notes: string[],
): Promise<Column[]> {
  const nulls = new Map<string, boolean>(); // column name -> has NULLs
  const dateLike = new Set<string>();
  let toCount: Column[] = [...columns];
  if (format === 'parquet') {
    const meta = await db.all(
      `SELECT file_name, path_in_schema, sum(stats_null_count)::BIGINT AS nulls,
         count(*) FILTER (WHERE stats_null_count IS NULL)::BIGINT AS unknown
       FROM parquet_metadata(${list}) GROUP BY ALL`,
    );
    const files = await db.all(`SELECT file_name, num_rows FROM parquet_file_metadata(${list})`);
    const stats = new Map<string, { nulls: number; unknown: number }>();
    for (const row of meta.rows)
      stats.set(`${String(row.file_name)}\u0000${String(row.path_in_schema)}`, {
        nulls: Number(row.nulls ?? 0),
        unknown: Number(row.unknown),
      });
    toCount = [];
    for (const column of columns) {
      if (/^(array|map|struct)</.test(column.type)) {
        toCount.push(column);
        continue;
      }
      let hasNulls = false;
      let unknown = false;
      for (const file of files.rows) {
        if (Number(file.num_rows) === 0) continue;
        const s = stats.get(`${String(file.file_name)}\u0000${column.name}`);
        if (!s)
          hasNulls = true; // the file has no such column: NULL in its rows
        else if (s.unknown > 0) unknown = true;
        else if (s.nulls > 0) hasNulls = true;
      }
      if (unknown && !hasNulls) toCount.push(column);
      else nulls.set(column.name, hasNulls);
    }
  }
  if (toCount.length > 0) {
    const slashDates =
      format === 'parquet' ? [] : toCount.filter((c) => c.type === 'string' && !c.logicalType);
    const select = [
      'count(*)::BIGINT AS n',
      ...toCount.map((c, i) => `count(${quoteIdent(c.name)})::BIGINT AS c${i}`),
      ...slashDates.map(
        (c, i) =>
          `count(*) FILTER (WHERE regexp_full_match(${quoteIdent(c.name)}, '[0-9]{4}/[0-9]{2}/[0-9]{2}') AND try_strptime(${quoteIdent(c.name)}, '%Y/%m/%d') IS NOT NULL)::BIGINT AS d${i}`,
      ),
    ];
    try {
      const result = await db.all(`SELECT ${select.join(', ')} FROM ${reader}`);
      const row = result.rows[0] ?? {};
      const n = Number(row.n);
      toCount.forEach((c, i) => {
        nulls.set(c.name, Number(row[`c${i}`]) < n);
      });
      slashDates.forEach((c, i) => {
        const present = Number(row[`c${toCount.indexOf(c)}`]);
        if (present > 0 && Number(row[`d${i}`]) === present) dateLike.add(c.name);
      });
    } catch (error) {
      notes.push(
        `nullability not determined for ${toCount.map((c) => c.name).join(', ')} (all nullable): ${(error as Error).message.split('\n')[0]}`,
      );
    }
  }
  return columns.map((c) => ({
    ...c,
    ...(nulls.get(c.name) === false ? { nullable: false } : {}),
    ...(dateLike.has(c.name) ? { comment: DATE_LIKE_COMMENT } : {}),
  }));
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
 * Classifies a file by its first 64 KiB (looking through gzip): `parquet` (`PAR1` magic), `array`
 * (a JSON array: a leading `[`), `ndjson` (a first non-blank line that is a JSON object),
 * `python-dict` (a first non-blank line that is a Python dict literal but not JSON, such as
 * `{'id': 1, 'ok': True}`), `csv` (a first line with a delimiter and no NUL byte), or `undefined`
 * when it is none of these. A first line cut by the 64 KiB is taken as `python-dict` when its
 * first key is single-quoted, else as `ndjson`.
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
      // not JSON: a Python dict repr?
    }
    try {
      const value = parsePythonLiteral(firstLine);
      return value !== null && typeof value === 'object' && !Array.isArray(value) ? 'python-dict' : undefined;
    } catch (error) {
      if (firstLine.length !== trimmed.length) return undefined;
      // The only line in the head: cut by the 64 KiB, or a one-line file without a newline.
      if (/^\{\s*'/.test(firstLine)) {
        return error instanceof PythonLiteralError && error.incomplete ? 'python-dict' : undefined;
      }
      return 'ndjson';
    }
  }
  const firstLine = trimmed.split('\n', 1)[0] ?? '';
  if (firstLine.length > 0 && /[,;\t|]/.test(firstLine) && !text.includes('\u0000')) return 'csv';
  return undefined;
}
