import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { DatasetDefinition } from '../../core/dataset.ts';
import { datasetPrefix, tableDefinitionOf } from '../../core/dataset.ts';
import { escapePartitionValue, parsePartitionPath, partitionPrefix } from '../../core/partition.ts';
import type { Catalog, Partition, PartitionFile, PartitionInput } from '../../core/ports/catalog.ts';
import type { LocalObjectFile, ObjectStore } from '../../core/ports/object-store.ts';
import type { DuckDb } from './duckdb.ts';
import { quoteIdent, quoteString } from './duckdb.ts';
import { toDuckDbType } from './types.ts';

/** Inputs of {@link writeDatasetUnit}. */
export interface WriteUnitInput {
  /** The DuckDB database holding `relation`. */
  readonly db: DuckDb;
  /**
   * A table or view in `db` with the dataset's columns and one column per partition key holding
   * the partition value exactly as it should appear in the path (`'01'`). Evaluated exactly once
   * (by the `COPY`), so it may be an expensive view over the source file.
   */
  readonly relation: string;
  /**
   * A cheap table or view with the same rows as `relation` but only the primary-key, partition-key
   * and (some) non-nullable columns, used for everything but the write itself: finding touched
   * partitions, merge duplicates and NULL checks. Default: `relation`.
   */
  readonly keys?: string;
  readonly dataset: DatasetDefinition;
  /**
   * The write unit: what this write replaces when re-run. For gharchive, the hour
   * (`2015-01-01-0`): re-writing an hour replaces that hour's files and nothing else.
   * Letters, digits, `.`, `-` and `=` only.
   */
  readonly unit: string;
  readonly runId: string;
  readonly objectStore: ObjectStore;
  readonly catalog: Catalog;
  /** Called between phases, for crash-injection tests and progress. */
  readonly onPhase?: (phase: 'staged' | 'written' | 'published' | 'cataloged') => void | Promise<void>;
}

/** What {@link writeDatasetUnit} did. */
export interface WriteUnitResult {
  /** Rows written. */
  readonly loaded: number;
  /** Rows not written because their primary key already exists in another unit's files (merge). */
  readonly duplicates: number;
  /** Partitions written, with their new files. */
  readonly partitions: { values: string[]; prefix: string; files: PartitionFile[] }[];
  /** The table's schema version the data was written with. */
  readonly schemaVersion: number;
  /** Whether this write created the table or a new schema version. */
  readonly schemaChange: 'created' | 'evolved' | 'unchanged';
}

const UNIT_PATTERN = /^[A-Za-z0-9.=-]+$/;

/**
 * Writes one unit of rows into a partitioned Parquet dataset and commits it.
 *
 * 1. Registers the dataset's table in the catalog (a new schema version when its columns changed).
 * 2. For `merge`, drops rows whose primary key is already present in the files of the touched
 *    partitions written by other units (an anti-join on the key; the key is unique within the
 *    partition, and rows with the same key have the same partition values, e.g. an event's
 *    `created_at`). Duplicates inside `relation` must be removed by the caller.
 * 3. Writes Snappy Parquet into a hidden scratch directory, one file per partition
 *    (`part-<unit>_0.parquet`): a plain `COPY` when the unit touches one partition, else
 *    `COPY ... PARTITION_BY`; in row groups of at most 32 MB: DuckDB
 *    buffers a row group per thread, and the default 122,880 rows of wide GitHub events (~280 MB)
 *    pushed a 200k-event hour over a 512 MB memory limit into spilling (npm run bench -- gharchive).
 * 4. Commits: moves each file into its partition (an atomic rename on the local backend, so each
 *    partition is in its old or its new state at any instant), removes this unit's files from
 *    partitions it no longer touches (and, for `replace`, other files of the touched partitions),
 *    then registers the partitions, with the exact file listing, in the catalog.
 *
 * A crash at any point leaves the old state or the new state of each partition; re-running the
 * unit converges to the same files (deterministic names, replace-by-rename).
 *
 * @throws {Error} when `unit` has characters outside `[A-Za-z0-9.=-]`, when a non-nullable
 *   column holds NULL (the caller should have quarantined those rows), or from DuckDB / the ports.
 */
export async function writeDatasetUnit(input: WriteUnitInput): Promise<WriteUnitResult> {
  const { db, dataset, unit, objectStore, catalog } = input;
  if (!UNIT_PATTERN.test(unit)) throw new Error(`write unit "${unit}" must match ${UNIT_PATTERN}`);
  const keys = dataset.partitionKeys.map((k) => k.name);
  const tablePrefix = datasetPrefix(dataset);
  const { table, change } = await catalog.upsertTable(tableDefinitionOf(dataset), { createdBy: input.runId });
  const keyRelation = input.keys ?? input.relation;
  const keyColumns = new Set(
    (await db.all(`SELECT * FROM ${keyRelation} LIMIT 0`)).columns.map((c) => c.name),
  );

  for (const column of dataset.columns) {
    if (column.nullable === false) {
      const from = keyColumns.has(column.name) ? keyRelation : input.relation;
      const nulls = Number(
        await db.scalar(`SELECT count(*) FROM ${from} WHERE ${quoteIdent(column.name)} IS NULL`),
      );
      if (nulls > 0) throw new Error(`${nulls} rows have NULL in non-nullable column ${column.name}`);
    }
  }

  // Partitions this unit touches, with the files currently in them.
  const touched = await db.all(
    `SELECT DISTINCT ${keys.map(quoteIdent).join(', ')} FROM ${keyRelation} ORDER BY ALL`,
  );
  const touchedValues = touched.rows.map((row) => keys.map((k) => String(row[k])));
  const filePrefix = `part-${unit}_`;
  const current = new Map<string, PartitionState>();
  for (const values of touchedValues) {
    const prefix = partitionPrefix(tablePrefix, keys, values);
    current.set(prefix, { values, prefix, files: await listPartitionFiles(objectStore, dataset, prefix) });
  }

  // Merge: anti-join against keys already written by other units.
  let source = input.relation;
  let duplicates = 0;
  const opened: LocalObjectFile[] = [];
  try {
    if (dataset.writeDisposition === 'merge') {
      const pk = dataset.primaryKey;
      if (!pk || pk.length === 0) throw new Error(`dataset ${dataset.name} uses merge without a primary key`);
      const others: string[] = [];
      for (const state of current.values()) {
        for (const file of state.files) {
          if (fileName(file.key).startsWith(filePrefix)) continue;
          const local = await objectStore.localPath({ layer: dataset.layer, key: file.key });
          opened.push(local);
          others.push(local.path);
        }
      }
      if (others.length > 0) {
        // Find the duplicate keys on the cheap key relation, then filter the expensive relation by
        // that (small) set: a probe into a small hash table keeps the final scan streaming.
        const pkList = pk.map(quoteIdent).join(', ');
        const pkValue =
          pk.length === 1
            ? quoteIdent(pk[0]!)
            : `struct_pack(${pk.map((c) => `${quoteIdent(c)} := ${quoteIdent(c)}`).join(', ')})`;
        await db.run(
          `CREATE OR REPLACE TEMP TABLE __sluice_duplicate_keys AS
             SELECT DISTINCT ${pkList} FROM ${keyRelation}
             SEMI JOIN (SELECT ${pkList} FROM read_parquet([${others.map(quoteString).join(', ')}])) e USING (${pkList})`,
        );
        duplicates = Number(
          await db.scalar(
            `SELECT count(*) FROM ${keyRelation} SEMI JOIN __sluice_duplicate_keys USING (${pkList})`,
          ),
        );
        if (duplicates > 0) {
          await db.run(
            `CREATE OR REPLACE TEMP VIEW __sluice_merge_rows AS SELECT * FROM ${input.relation}
               WHERE ${pkValue} NOT IN (SELECT ${pkValue} FROM __sluice_duplicate_keys)`,
          );
          source = '__sluice_merge_rows';
        }
      }
    }
    await input.onPhase?.('staged');

    // Write the unit's files into a hidden scratch directory. `ROW_GROUP_SIZE_BYTES` needs
    // insertion order off; a dataset's rows have no order anyway.
    await db.run('SET preserve_insertion_order = false');
    const scratch = await objectStore.scratchDir(dataset.layer);
    try {
      const dataColumns = dataset.columns
        .map((c) => `CAST(${quoteIdent(c.name)} AS ${toDuckDbType(c)}) AS ${quoteIdent(c.name)}`)
        .join(', ');
      const options = `FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE_BYTES '32MB', RETURN_STATS`;
      let stats: Awaited<ReturnType<DuckDb['all']>>;
      const [only, ...more] = touchedValues;
      if (only && more.length === 0) {
        // One partition (an hour file, nearly always): a plain COPY to one file streams with less
        // memory than a partitioned COPY (485 vs 636 MiB, 1.1 vs 1.7 s for 200k events).
        const dir = path.join(
          scratch.path,
          ...keys.map((k, i) => `${k}=${escapePartitionValue(only[i] ?? '')}`),
        );
        await mkdir(dir, { recursive: true });
        stats = await db.all(
          `COPY (SELECT ${dataColumns} FROM ${source}) TO ${quoteString(path.join(dir, `${filePrefix}0.parquet`))} (${options})`,
        );
      } else {
        stats = await db.all(
          `COPY (SELECT ${dataColumns}, ${keys.map(quoteIdent).join(', ')} FROM ${source}) TO ${quoteString(scratch.path)} (${options}, PARTITION_BY (${keys.map(quoteIdent).join(', ')}), FILENAME_PATTERN ${quoteString(`${filePrefix}{i}`)})`,
        );
      }
      const written: { values: string[]; prefix: string; file: PartitionFile; localPath: string }[] = [];
      for (const row of stats.rows) {
        const localPath = String(row.filename);
        const relative = path.relative(scratch.path, localPath).split(path.sep).join('/');
        const parsed = parsePartitionPath('', relative);
        if (!parsed) throw new Error(`unexpected file ${localPath} written by DuckDB`);
        const prefix = partitionPrefix(tablePrefix, keys, parsed.values);
        written.push({
          values: parsed.values,
          prefix,
          localPath,
          file: {
            key: prefix + parsed.fileName,
            bytes: Number(row.file_size_bytes),
            rows: Number(row.count),
          },
        });
      }
      written.sort((a, b) => (a.file.key < b.file.key ? -1 : 1));
      await input.onPhase?.('written');

      // Commit: rename into place, then drop superseded files.
      for (const w of written) {
        await objectStore.putFile({ layer: dataset.layer, key: w.file.key }, w.localPath, { move: true });
      }
      const newKeys = new Set(written.map((w) => w.file.key));
      const cataloged = await catalog.listPartitions(dataset.pipeline, dataset.name);
      const stale = await staleFiles(objectStore, dataset, cataloged, filePrefix, newKeys, current);
      for (const key of stale) await objectStore.delete({ layer: dataset.layer, key });
      await input.onPhase?.('published');

      // Register every partition whose listing changed, with its exact files.
      const changed = new Set([
        ...written.map((w) => w.prefix),
        ...stale.map((k) => k.slice(0, k.lastIndexOf('/') + 1)),
      ]);
      const previous = new Map(cataloged.map((p) => [p.prefix, p]));
      const register: PartitionInput[] = [];
      const emptied: string[][] = [];
      for (const prefix of changed) {
        const parsed = parsePartitionPath(tablePrefix, `${prefix}x`);
        if (!parsed) continue;
        const files = await listPartitionFiles(objectStore, dataset, prefix);
        if (files.length === 0) {
          emptied.push(parsed.values);
          continue;
        }
        const known = new Map(
          [...(previous.get(prefix)?.files ?? []), ...written.map((w) => w.file)].map((f) => [f.key, f]),
        );
        register.push({
          values: parsed.values,
          prefix,
          runId: input.runId,
          files: files.map((f) => {
            const rows = known.get(f.key)?.rows;
            return rows === undefined ? f : { ...f, rows };
          }),
        });
      }
      await catalog.putPartitions(dataset.pipeline, dataset.name, register);
      if (emptied.length > 0) await catalog.deletePartitions(dataset.pipeline, dataset.name, emptied);
      await input.onPhase?.('cataloged');

      const byPrefix = new Map<string, { values: string[]; prefix: string; files: PartitionFile[] }>();
      for (const w of written) {
        const entry = byPrefix.get(w.prefix) ?? { values: w.values, prefix: w.prefix, files: [] };
        entry.files.push(w.file);
        byPrefix.set(w.prefix, entry);
      }
      return {
        loaded: written.reduce((sum, w) => sum + (w.file.rows ?? 0), 0),
        duplicates,
        partitions: [...byPrefix.values()],
        schemaVersion: table.schemaVersion,
        schemaChange: change,
      };
    } finally {
      await scratch.release();
    }
  } finally {
    for (const local of opened) await local.release();
    await db.run('DROP VIEW IF EXISTS __sluice_merge_rows; DROP TABLE IF EXISTS __sluice_duplicate_keys');
  }
}

interface PartitionState {
  values: string[];
  prefix: string;
  files: PartitionFile[];
}

function fileName(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}

/** Parquet files directly inside a partition directory (not in deeper directories). */
async function listPartitionFiles(
  objectStore: ObjectStore,
  dataset: DatasetDefinition,
  prefix: string,
): Promise<PartitionFile[]> {
  const files: PartitionFile[] = [];
  for await (const info of objectStore.list(dataset.layer, prefix)) {
    const rest = info.key.slice(prefix.length);
    if (rest.includes('/') || !rest.endsWith('.parquet')) continue;
    files.push({ key: info.key, bytes: info.size });
  }
  return files;
}

/**
 * Files to delete after publishing: this unit's files that were not rewritten (in the touched
 * partitions and in every cataloged partition that listed one: the unit may have moved out of a
 * partition), and for `replace` every other file of the touched partitions.
 */
async function staleFiles(
  objectStore: ObjectStore,
  dataset: DatasetDefinition,
  cataloged: readonly Partition[],
  filePrefix: string,
  newKeys: Set<string>,
  touched: Map<string, PartitionState>,
): Promise<string[]> {
  const candidates = new Set(touched.keys());
  for (const partition of cataloged) {
    if (partition.files.some((f) => fileName(f.key).startsWith(filePrefix))) candidates.add(partition.prefix);
  }
  const stale: string[] = [];
  for (const prefix of candidates) {
    for (const file of await listPartitionFiles(objectStore, dataset, prefix)) {
      if (newKeys.has(file.key)) continue;
      const name = fileName(file.key);
      if (name.startsWith(filePrefix) || (dataset.writeDisposition === 'replace' && touched.has(prefix))) {
        stale.push(file.key);
      }
    }
  }
  return stale.sort();
}
