import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runGharchive } from '../../../pipelines/gharchive/run.ts';
import { createTestHome, type TestHome } from '../../../test/helpers/context.ts';
import { gzipLines, sampleLines } from '../../../test/helpers/samples.ts';
import type { Column } from '../../core/schema.ts';
import { DuckDb, quoteString } from '../duckdb/duckdb.ts';
import { type CrawlResult, classify, crawl } from './crawler.ts';
import { DATE_LIKE_COMMENT } from './infer-records.ts';

let t: TestHome;
let db: DuckDb;

beforeAll(async () => {
  db = await DuckDb.open({ threads: 1 });
  return () => db.close();
});
beforeEach(async () => {
  t = await createTestHome();
});
afterEach(async () => {
  await t.close();
});

/** Absolute path of an analytical-layer key in the test home. */
function lakePath(key: string): string {
  return path.join(t.home, 'lake', 'analytical', ...key.split('/'));
}

/** Writes bytes straight into the lake, as data that arrived without sluice. */
async function put(key: string, content: string | Buffer): Promise<void> {
  await mkdir(path.dirname(lakePath(key)), { recursive: true });
  await writeFile(lakePath(key), content);
}

/** Writes a Parquet file with DuckDB from a SELECT. */
async function putParquet(key: string, select: string): Promise<void> {
  await mkdir(path.dirname(lakePath(key)), { recursive: true });
  await db.run(`COPY (${select}) TO ${quoteString(lakePath(key))} (FORMAT parquet)`);
}

function run(prefix = 'mydata/', database = 'mydata', createdBy?: string): Promise<CrawlResult> {
  return crawl({
    objectStore: t.backend.objectStore,
    catalog: t.backend.catalog,
    layer: 'analytical',
    prefix,
    database,
    ...(createdBy ? { createdBy } : {}),
  });
}

const ndjson = (rows: readonly object[]) => rows.map((r) => `${JSON.stringify(r)}\n`).join('');

/** `n` trip rows with ids from `first`. */
function trips(first: number, n: number): string {
  return `SELECT i::BIGINT AS id, 'rider ' || i AS name, i * 1.5::DOUBLE AS fare,
      TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (i) MINUTE AS started_at, ['a', 'b'][1:(i % 2) + 1] AS tags
    FROM range(${first}, ${first + n}) r(i)`;
}

/** The trips columns: no file has a NULL in them, so none is nullable. */
const TRIP_COLUMNS: Column[] = [
  { name: 'id', type: 'bigint', nullable: false },
  { name: 'name', type: 'string', nullable: false },
  { name: 'fare', type: 'double', nullable: false },
  { name: 'started_at', type: 'timestamp', nullable: false },
  { name: 'tags', type: 'array<string>', nullable: false },
];

describe('crawl: Parquet', () => {
  beforeEach(async () => {
    await putParquet('mydata/trips/year=2024/month=01/part-0.parquet', trips(0, 3));
    await putParquet('mydata/trips/year=2024/month=02/part-0.parquet', trips(100, 4));
    await putParquet('mydata/trips/year=2024/month=02/part-1.parquet', trips(200, 1));
  });

  it('catalogs a partitioned table with inferred types, int partition keys and row counts', async () => {
    const result = await run();
    expect(result.skipped).toEqual([]);
    expect(result.tables).toHaveLength(1);
    const [table] = result.tables;
    expect(table).toMatchObject({
      name: 'trips',
      format: 'parquet',
      change: 'created',
      schemaVersion: 1,
      partitions: 2,
      files: 3,
      removedPartitions: 0,
    });
    expect(table?.columns).toEqual(TRIP_COLUMNS);
    expect(table?.partitionKeys).toEqual([
      { name: 'year', type: 'int' },
      { name: 'month', type: 'int' },
    ]);

    const stored = await t.backend.catalog.getTable('mydata', 'trips');
    expect(stored).toMatchObject({
      database: 'mydata',
      name: 'trips',
      format: 'parquet',
      location: { layer: 'analytical', prefix: 'mydata/trips/' },
      managedBy: 'crawler',
      schemaVersion: 1,
    });
    expect(stored?.columns).toEqual(TRIP_COLUMNS);

    const partitions = await t.backend.catalog.listPartitions('mydata', 'trips');
    expect(partitions.map((p) => ({ values: p.values, prefix: p.prefix, rows: p.rows }))).toEqual([
      { values: ['2024', '01'], prefix: 'mydata/trips/year=2024/month=01/', rows: 3 },
      { values: ['2024', '02'], prefix: 'mydata/trips/year=2024/month=02/', rows: 5 },
    ]);
    const february = partitions[1];
    expect(february?.files.map((f) => [f.key, f.rows])).toEqual([
      ['mydata/trips/year=2024/month=02/part-0.parquet', 4],
      ['mydata/trips/year=2024/month=02/part-1.parquet', 1],
    ]);
  });

  it('is queryable with the right count and typed partition columns', async () => {
    await run();
    const engine = await t.backend.openQueryEngine();
    try {
      const count = await engine.query('SELECT count(*) AS n, sum(id) AS ids FROM mydata.trips');
      expect(count.rows).toEqual([{ n: 8, ids: 0 + 1 + 2 + 100 + 101 + 102 + 103 + 200 }]);
      const byMonth = await engine.query(
        'SELECT year, month, count(*) AS n FROM mydata.trips GROUP BY year, month ORDER BY month',
      );
      expect(byMonth.rows).toEqual([
        { year: 2024, month: 1, n: 3 },
        { year: 2024, month: 2, n: 5 },
      ]);
      expect(byMonth.columns.slice(0, 2)).toEqual([
        { name: 'year', type: 'INTEGER' },
        { name: 'month', type: 'INTEGER' },
      ]);
      const one = await engine.query(`SELECT name, fare, started_at, tags FROM mydata.trips WHERE id = 101`);
      expect(one.rows).toEqual([
        { name: 'rider 101', fare: 151.5, started_at: '2024-01-01T01:41:00.000Z', tags: ['a', 'b'] },
      ]);
    } finally {
      await engine.close();
    }
  });

  it('reports unchanged when nothing changed', async () => {
    await run();
    const again = await run();
    expect(again.tables.map((x) => [x.name, x.change, x.schemaVersion, x.partitions])).toEqual([
      ['trips', 'unchanged', 1, 2],
    ]);
    expect(await t.backend.catalog.listSchemaVersions('mydata', 'trips')).toHaveLength(1);
  });

  it('evolves the schema when a new file brings a new column', async () => {
    await run();
    await putParquet(
      'mydata/trips/year=2024/month=03/part-0.parquet',
      `SELECT *, 2.5::DOUBLE AS tip FROM (${trips(300, 2)})`,
    );
    const result = await run();
    const [table] = result.tables;
    expect(table).toMatchObject({ name: 'trips', change: 'evolved', schemaVersion: 2, partitions: 3 });
    expect(table?.columns).toEqual([...TRIP_COLUMNS, { name: 'tip', type: 'double' }]);

    const versions = await t.backend.catalog.listSchemaVersions('mydata', 'trips');
    expect(versions.map((v) => v.version)).toEqual([1, 2]);
    expect(versions[0]?.columns).toEqual(TRIP_COLUMNS);
    expect(versions[1]?.columns).toEqual([...TRIP_COLUMNS, { name: 'tip', type: 'double' }]);

    const rows = await t.query<{ month: number; n: number; tips: number }>(
      'SELECT month, count(*) AS n, count(tip) AS tips FROM mydata.trips GROUP BY month ORDER BY month',
    );
    expect(rows).toEqual([
      { month: 1, n: 3, tips: 0 },
      { month: 2, n: 5, tips: 0 },
      { month: 3, n: 2, tips: 2 },
    ]);
  });

  it('removes a partition whose files were deleted', async () => {
    await run();
    await unlink(lakePath('mydata/trips/year=2024/month=02/part-0.parquet'));
    await unlink(lakePath('mydata/trips/year=2024/month=02/part-1.parquet'));
    const result = await run();
    expect(result.tables[0]).toMatchObject({
      name: 'trips',
      change: 'unchanged',
      partitions: 1,
      removedPartitions: 1,
    });
    const partitions = await t.backend.catalog.listPartitions('mydata', 'trips');
    expect(partitions.map((p) => p.values)).toEqual([['2024', '01']]);
    expect(await t.query('SELECT count(*) AS n FROM mydata.trips')).toEqual([{ n: 3 }]);
  });

  it('skips a file directly under the prefix and a folder that is not key=value, with reasons', async () => {
    await put('mydata/README.txt', 'a,b\n1,2\n');
    await putParquet('mydata/trips/extra/part-9.parquet', trips(900, 2));
    const result = await run();
    expect(result.skipped).toHaveLength(2);
    const byKey = new Map(result.skipped.map((s) => [s.key, s.reason]));
    expect(byKey.get('mydata/README.txt')).toMatch(/directly under the crawled folder/);
    expect(byKey.get('mydata/trips/extra/part-9.parquet')).toMatch(/not a Hive partition \(key=value\)/);
    expect(result.tables.map((x) => [x.name, x.files])).toEqual([['trips', 3]]);
    expect(await t.query('SELECT count(*) AS n FROM mydata.trips')).toEqual([{ n: 8 }]);
  });

  it('records the crawler as the creator of schema versions', async () => {
    await run('mydata/', 'mydata', 'crawl-run-1');
    const versions = await t.backend.catalog.listSchemaVersions('mydata', 'trips');
    expect(versions.map((v) => v.createdBy)).toEqual(['crawl-run-1']);
  });
});

describe('crawl: JSON', () => {
  const first = [
    { id: 1, kind: 'click', meta: { x: 1 } },
    { id: 2, kind: 'view', meta: { x: 2 } },
  ];
  const second = [{ id: 3, kind: 'click', meta: { x: 3 } }];
  const third = [
    { id: 4, kind: 'view', meta: { x: 4 } },
    { id: 5, kind: 'view', meta: { x: 5 } },
  ];

  it('catalogs unpartitioned NDJSON, gzip NDJSON and a JSON array file as one ndjson table', async () => {
    await put('mydata/events/a.ndjson', ndjson(first));
    await put('mydata/events/b.ndjson.gz', gzipSync(ndjson(second)));
    await put('mydata/events/c.json', JSON.stringify(third, null, 2));
    const result = await run();
    expect(result.skipped).toEqual([]);
    const [table] = result.tables;
    expect(table).toMatchObject({
      name: 'events',
      format: 'ndjson',
      change: 'created',
      files: 3,
      partitions: 0,
    });
    expect(table?.partitionKeys).toEqual([]);
    expect(table?.columns).toEqual([
      { name: 'id', type: 'bigint', nullable: false },
      { name: 'kind', type: 'string', nullable: false },
      { name: 'meta', type: 'struct<x:bigint>', nullable: false },
    ]);
    const rows = await t.query<{ id: number; kind: string; x: number }>(
      'SELECT id, kind, meta.x AS x FROM mydata.events ORDER BY id',
    );
    expect(rows).toEqual(
      [...first, ...second, ...third].map((e) => ({ id: e.id, kind: e.kind, x: e.meta.x })),
    );
  });

  it('catalogs partitioned NDJSON with a string partition key', async () => {
    await put('mydata/clicks/day=2024-01-01/a.ndjson', ndjson(first));
    await put('mydata/clicks/day=2024-01-02/b.ndjson.gz', gzipSync(ndjson([...second, ...third])));
    const result = await run();
    expect(result.skipped).toEqual([]);
    const [table] = result.tables;
    expect(table).toMatchObject({ name: 'clicks', format: 'ndjson', partitions: 2, files: 2 });
    expect(table?.partitionKeys).toEqual([{ name: 'day', type: 'string' }]);
    expect(table?.columns.map((c) => c.name)).toEqual(['id', 'kind', 'meta']);
    const rows = await t.query(
      'SELECT day, count(*) AS n, sum(id) AS ids FROM mydata.clicks GROUP BY day ORDER BY day',
    );
    expect(rows).toEqual([
      { day: '2024-01-01', n: 2, ids: 3 },
      { day: '2024-01-02', n: 3, ids: 12 },
    ]);
  });

  it('skips gzip content without a .gz name and still catalogs the rest of the table and other tables', async () => {
    await put('mydata/events/a.ndjson', ndjson(first));
    await put('mydata/events/b.ndjson', gzipSync(ndjson(second)));
    await put('mydata/other/c.ndjson', ndjson(third));
    const result = await run();
    expect(result.skipped).toEqual([
      { key: 'mydata/events/b.ndjson', reason: expect.stringMatching(/gzip content without a \.gz name/) },
    ]);
    expect(result.tables.map((x) => [x.name, x.files])).toEqual([
      ['events', 1],
      ['other', 1],
    ]);
    expect(await t.query('SELECT count(*) AS n FROM mydata.other')).toEqual([{ n: third.length }]);
    // As in Athena, a table reads every data file in its location: the skipped file still has to be
    // renamed (or moved), and until then a query names it.
    await expect(t.query('SELECT count(*) AS n FROM mydata.events')).rejects.toThrow(
      /mydata\/events\/b\.ndjson/,
    );
  });

  it('a file of another kind in a table folder does not break the table', async () => {
    await put('mydata/events/a.ndjson', ndjson(first));
    await put('mydata/events/README.txt', 'notes about this folder\n');
    const result = await run();
    expect(result.skipped.map((x) => x.key)).toEqual(['mydata/events/README.txt']);
    expect(await t.query('SELECT count(*) AS n, sum(id) AS ids FROM mydata.events')).toEqual([
      { n: 2, ids: 3 },
    ]);
  });

  it('catalogs a table holding only a JSON array file as ndjson and queries it', async () => {
    await put('mydata/docs/list.json', JSON.stringify(third, null, 2));
    const result = await run();
    expect(result.tables[0]).toMatchObject({ name: 'docs', format: 'ndjson', files: 1 });
    expect(await t.query('SELECT count(*) AS n, max(id) AS top FROM mydata.docs')).toEqual([
      { n: 2, top: 5 },
    ]);
  });
});

describe('crawl: CSV and mixed formats', () => {
  it('catalogs CSV', async () => {
    await put('mydata/people/a.csv', 'name,age,city\nAda,36,London\nLinus,28,Helsinki\n');
    await put('mydata/people/b.csv', 'name,age,city\nGrace,45,Arlington\n');
    const result = await run();
    const [table] = result.tables;
    expect(table).toMatchObject({ name: 'people', format: 'csv', files: 2, change: 'created' });
    expect(table?.columns).toEqual([
      { name: 'name', type: 'string', nullable: false },
      { name: 'age', type: 'bigint', nullable: false },
      { name: 'city', type: 'string', nullable: false },
    ]);
    expect(await t.query('SELECT count(*) AS n, sum(age) AS total FROM mydata.people')).toEqual([
      { n: 3, total: 36 + 28 + 45 },
    ]);
  });

  it('keeps the majority format of a table and skips the others with a reason', async () => {
    await put('mydata/mixed/year=2024/a.csv', 'k,v\n1,x\n');
    await put('mydata/mixed/year=2024/b.csv', 'k,v\n2,y\n');
    await put('mydata/mixed/year=2025/c.ndjson', ndjson([{ k: 3, v: 'z' }]));
    await putParquet('mydata/mixed/year=2025/d.parquet', 'SELECT 4 AS k');
    await put('mydata/mixed/year=2025/e.csv', 'k,v\n5,w\n');
    await put('mydata/mixed/year=2025/f.bin', Buffer.from([0, 1, 2, 3, 0, 0]));
    const result = await run();
    const [table] = result.tables;
    expect(table).toMatchObject({ name: 'mixed', format: 'csv', files: 3, partitions: 2 });
    const byKey = new Map(result.skipped.map((s) => [s.key, s.reason]));
    expect([...byKey.keys()].sort()).toEqual([
      'mydata/mixed/year=2025/c.ndjson',
      'mydata/mixed/year=2025/d.parquet',
      'mydata/mixed/year=2025/f.bin',
    ]);
    expect(byKey.get('mydata/mixed/year=2025/c.ndjson')).toBe("format ndjson differs from the table's (csv)");
    expect(byKey.get('mydata/mixed/year=2025/d.parquet')).toBe(
      "format parquet differs from the table's (csv)",
    );
    expect(byKey.get('mydata/mixed/year=2025/f.bin')).toMatch(/not Parquet, JSON or CSV/);
    const partitions = await t.backend.catalog.listPartitions('mydata', 'mixed');
    expect(partitions.map((p) => [p.values, p.files.map((f) => f.key)])).toEqual([
      [['2024'], ['mydata/mixed/year=2024/a.csv', 'mydata/mixed/year=2024/b.csv']],
      [['2025'], ['mydata/mixed/year=2025/e.csv']],
    ]);
  });

  it('skips files whose partition keys differ from the table majority', async () => {
    await put('mydata/logs/year=2024/a.csv', 'k,v\n1,a\n');
    await put('mydata/logs/year=2024/b.csv', 'k,v\n2,b\n');
    await put('mydata/logs/region=eu/c.csv', 'k,v\n3,c\n');
    const result = await run();
    expect(result.tables[0]).toMatchObject({ name: 'logs', files: 2 });
    expect(result.skipped).toEqual([
      {
        key: 'mydata/logs/region=eu/c.csv',
        reason: "partition keys (region) differ from the table's (year)",
      },
    ]);
  });
});

describe('crawl: a pipeline-managed table', () => {
  let source: string;
  beforeEach(async () => {
    source = await mkdtemp(path.join(os.tmpdir(), 'sluice-crawl-src-'));
  });
  afterEach(async () => {
    await rm(source, { recursive: true, force: true });
  });

  it('reports unchanged and keeps declared comments, nullability and the json logical type', async () => {
    const lines = sampleLines().slice(0, 40);
    await writeFile(path.join(source, '2015-01-01-0.json.gz'), gzipLines(lines));
    const hour = new Date('2015-01-01T00:00:00Z');
    const summary = await runGharchive(t.ctx, { from: hour, to: hour, sourceUrl: source });
    expect(summary.exitCode).toBe(0);
    const before = await t.backend.catalog.getTable('gharchive', 'events');
    expect(before?.managedBy).toBe('pipeline');

    const result = await run('gharchive/', 'gharchive');
    expect(result.skipped).toEqual([]);
    expect(result.tables).toHaveLength(1);
    const [table] = result.tables;
    expect(table).toMatchObject({ name: 'events', format: 'parquet', change: 'unchanged', schemaVersion: 1 });

    const after = await t.backend.catalog.getTable('gharchive', 'events');
    expect(after?.columns).toEqual(before?.columns);
    expect(after?.partitionKeys).toEqual(before?.partitionKeys);
    expect(after?.managedBy).toBe('pipeline');
    const column = (name: string) => after?.columns.find((c) => c.name === name);
    expect(column('id')).toEqual({
      name: 'id',
      type: 'bigint',
      nullable: false,
      comment: 'event id (unique)',
    });
    expect(column('created_at')).toEqual({
      name: 'created_at',
      type: 'timestamp',
      nullable: false,
      comment: 'UTC',
    });
    expect(column('payload')).toEqual({
      name: 'payload',
      type: 'string',
      logicalType: 'json',
      comment: 'the event payload, whole, as JSON',
    });
    expect(after?.partitionKeys.map((k) => [k.name, k.type])).toEqual([
      ['year', 'int'],
      ['month', 'int'],
      ['dayofmonth', 'int'],
    ]);
    expect(await t.backend.catalog.listSchemaVersions('gharchive', 'events')).toHaveLength(1);

    const partitions = await t.backend.catalog.listPartitions('gharchive', 'events');
    expect(partitions.map((p) => [p.values, p.rows])).toEqual([[['2015', '01', '01'], lines.length]]);
    const ids = new Set(lines.map((l) => (JSON.parse(l) as { id: string }).id));
    expect(await t.query('SELECT count(*) AS n, count(DISTINCT id) AS ids FROM gharchive.events')).toEqual([
      { n: ids.size, ids: ids.size },
    ]);
  });
});

describe('classify', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-classify-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function file(name: string, content: string | Buffer): Promise<string> {
    const p = path.join(dir, name);
    await writeFile(p, content);
    return p;
  }

  it('classifies by content, not by name', async () => {
    const parquet = path.join(dir, 'data.csv');
    await db.run(`COPY (SELECT 1 AS a) TO ${quoteString(parquet)} (FORMAT parquet)`);
    expect(await classify(parquet)).toBe('parquet');
    expect(await classify(await file('a.parquet', '{"a":1}\n{"a":2}\n'))).toBe('ndjson');
    expect(await classify(await file('b.ndjson', 'a,b\n1,2\n'))).toBe('csv');
    expect(await classify(await file('c.csv', '[{"a":1}]'))).toBe('array');
  });

  it('looks through gzip, even a cut stream', async () => {
    expect(await classify(await file('d.bin', gzipSync('{"a":1}\n')))).toBe('ndjson');
    expect(await classify(await file('e.bin', gzipSync('a;b\n1;2\n')))).toBe('csv');
    const big = gzipSync(ndjson(Array.from({ length: 20_000 }, (_, i) => ({ i, s: `v${i * 7}` }))));
    expect(big.length).toBeGreaterThan(64 * 1024);
    expect(await classify(await file('f.gz', big))).toBe('ndjson');
  });

  it('accepts a byte-order mark and leading whitespace', async () => {
    expect(await classify(await file('g.json', '\uFEFF  \n[1]'))).toBe('array');
    expect(await classify(await file('h.json', '\uFEFF{"a":1}\n'))).toBe('ndjson');
  });

  it('treats an object cut by the 64 KiB head as NDJSON when it is the only line', async () => {
    expect(await classify(await file('i.json', `{"a":"${'x'.repeat(100_000)}"}`))).toBe('ndjson');
  });

  it('returns undefined for what it cannot read', async () => {
    expect(await classify(await file('j', ''))).toBeUndefined();
    expect(await classify(await file('k', 'just some words\n'))).toBeUndefined();
    expect(await classify(await file('l', '{not json\n{"a":1}\n'))).toBeUndefined();
    expect(await classify(await file('m', Buffer.from([0x1f, 0x8b, 0x00, 0x01, 0x02])))).toBeUndefined();
    expect(await classify(await file('n', Buffer.from('a,b\u0000c\n')))).toBeUndefined();
  });
});

/** The real tolls sample (examples/data/tolls): Python dict reprs, and the same records as NDJSON. */
const TOLLS_DIR = path.resolve(import.meta.dirname, '../../../examples/data/tolls');
const tollsPython = () => readFileSync(path.join(TOLLS_DIR, 'sample_data_toll_application.first80.json'));
const tollsNdjson = () => readFileSync(path.join(TOLLS_DIR, 'sample_data_toll_application.first80.ndjson'));

/** What the crawler infers for the tolls sample (REFERENCE.md section 2). */
const TOLL_COLUMNS: Column[] = [
  { name: 'transaction_id', type: 'bigint', nullable: false },
  { name: 'transaction_date', type: 'string', nullable: false, comment: DATE_LIKE_COMMENT },
  { name: 'toll_booth', type: 'string', nullable: false },
  { name: 'vehicle_make', type: 'string', nullable: false },
  { name: 'vehicle_category', type: 'string', nullable: false },
  { name: 'transaction_amount', type: 'double', nullable: false },
];

/** Python dict reprs of `rows`, one per line, as `str(dict)` writes them (strings, ints, floats, None, bools). */
function pyLines(rows: readonly Record<string, unknown>[]): string {
  const repr = (v: unknown): string => {
    if (v === null) return 'None';
    if (v === true) return 'True';
    if (v === false) return 'False';
    if (typeof v === 'string') return `'${v.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
    if (Array.isArray(v)) return `[${v.map(repr).join(', ')}]`;
    if (typeof v === 'object')
      return `{${Object.entries(v as object)
        .map(([k, x]) => `${repr(k)}: ${repr(x)}`)
        .join(', ')}}`;
    return String(v);
  };
  return rows.map((r) => `${repr(r)}\n`).join('');
}

describe('crawl: Python-dict lines', () => {
  it('catalogs the real tolls sample: bigint id, date-like string, NOT NULL columns, double amount', async () => {
    await put('mydata/tolls/sample_data-2023-08-29-10-00.json', tollsPython());
    const result = await run();
    expect(result.skipped).toEqual([]);
    expect(result.tables).toHaveLength(1);
    const [table] = result.tables;
    expect(table).toMatchObject({
      name: 'tolls',
      format: 'python-dict',
      change: 'created',
      schemaVersion: 1,
      files: 1,
      partitions: 0,
      notes: [],
    });
    expect(table?.columns).toEqual(TOLL_COLUMNS);
    const stored = await t.backend.catalog.getTable('mydata', 'tolls');
    expect(stored).toMatchObject({ format: 'python-dict', managedBy: 'crawler', columns: TOLL_COLUMNS });
  });

  it('infers for the Python-dict file what DuckDB infers for its NDJSON copy', async () => {
    await put('mydata/tolls/a.json', tollsPython());
    await put('mydata/tolls_ndjson/a.ndjson', tollsNdjson());
    const result = await run();
    expect(result.tables.map((x) => [x.name, x.format])).toEqual([
      ['tolls', 'python-dict'],
      ['tolls_ndjson', 'ndjson'],
    ]);
    expect(result.tables[1]?.columns).toEqual(result.tables[0]?.columns);
    expect(
      await t.query('SELECT count(*) AS n, count(DISTINCT toll_booth) AS booths FROM mydata.tolls_ndjson'),
    ).toEqual([{ n: 80, booths: 6 }]);
  });

  it('gives a python-dict table a view that says what to query instead', async () => {
    await put('mydata/tolls/a.json', tollsPython());
    await run();
    await expect(t.query('SELECT count(*) FROM mydata.tolls')).rejects.toThrow(
      /mydata\.tolls is in python-dict format .* a job converts it/,
    );
  });

  it('reads gzip files and JSON lines into the same table, and only the tables asked for', async () => {
    await put('mydata/tolls/a.json.gz', gzipSync(tollsPython()));
    await put('mydata/tolls/b.json', tollsNdjson());
    await put('mydata/other/c.ndjson', ndjson([{ x: 1 }]));
    const result = await crawl({
      objectStore: t.backend.objectStore,
      catalog: t.backend.catalog,
      layer: 'analytical',
      prefix: 'mydata/',
      database: 'mydata',
      tables: ['tolls'],
    });
    expect(result.skipped).toEqual([]);
    expect(result.tables.map((x) => [x.name, x.format, x.files])).toEqual([['tolls', 'python-dict', 2]]);
    expect(result.tables[0]?.columns).toEqual(TOLL_COLUMNS);
    expect(await t.backend.catalog.getTable('mydata', 'other')).toBeUndefined();
  });

  it('infers nested, mixed, date and time types', async () => {
    const rows = [
      {
        id: 1,
        ok: true,
        n: 1,
        mixed: 'a',
        day: '2024-02-29',
        at: '2024-02-29T10:00:00Z',
        when: '2024-02-29',
        meta: { x: 1, tags: ['a'] },
        list: [1, 2],
        empty: [],
        nothing: null,
      },
      {
        id: 2,
        ok: false,
        n: 2.5,
        mixed: 3,
        day: '2024-03-01',
        at: '2024-03-01 11:30:15.250+02:00',
        when: '2024-03-01T00:00:00',
        meta: { x: 2, y: 'b' },
        list: [],
        empty: [],
        nothing: null,
      },
    ];
    await put('mydata/kinds/a.json', pyLines(rows).replace("'list': [1, 2]", "'list': (1, 2)"));
    await put(
      'mydata/kinds/b.json',
      `{'id': 3, 'ok': True, 'n': 7.0, 'mixed': 'c', 'day': '2024-03-02', 'at': '2024-03-02T00:00:00Z', 'when': '2024-03-02', 'meta': {'x': 99999999999}, 'list': [3], 'empty': [], 'big': 123456789012345678901234567890}\n`,
    );
    const result = await run();
    expect(result.skipped).toEqual([]);
    expect(result.tables[0]?.columns).toEqual([
      { name: 'id', type: 'bigint', nullable: false },
      { name: 'ok', type: 'boolean', nullable: false },
      { name: 'n', type: 'double', nullable: false },
      { name: 'mixed', type: 'string', nullable: false },
      { name: 'day', type: 'date', nullable: false },
      { name: 'at', type: 'timestamp', nullable: false },
      { name: 'when', type: 'timestamp', nullable: false },
      { name: 'meta', type: 'struct<x:bigint,tags:array<string>,y:string>', nullable: false },
      { name: 'list', type: 'array<bigint>', nullable: false },
      { name: 'empty', type: 'array<string>', nullable: false },
      { name: 'nothing', type: 'string' },
      { name: 'big', type: 'double' },
    ]);
  });

  it('a missing key or a None makes a column nullable', async () => {
    await put('mydata/t/a.json', pyLines([{ a: 1, b: 'x', c: 1 }]));
    await put(
      'mydata/t/b.json',
      pyLines([
        { a: 2, c: null },
        { a: 3, b: 'y', c: 2 },
      ]),
    );
    const [table] = (await run()).tables;
    expect(table?.columns).toEqual([
      { name: 'a', type: 'bigint', nullable: false },
      { name: 'b', type: 'string' },
      { name: 'c', type: 'bigint' },
    ]);
  });

  it('records a new schema version for a new column, a type change and a nullability change', async () => {
    await put('mydata/t/1.json', pyLines([{ id: 1, amount: 5 }]));
    expect((await run()).tables[0]).toMatchObject({ change: 'created', schemaVersion: 1 });
    expect((await run()).tables[0]).toMatchObject({ change: 'unchanged', schemaVersion: 1 });

    await put('mydata/t/2.json', pyLines([{ id: 2, amount: 6, booth: 'york_rd' }]));
    expect((await run()).tables[0]).toMatchObject({ change: 'evolved', schemaVersion: 2 });

    await put('mydata/t/3.json', "{'id': 3, 'amount': 6.5, 'booth': 'golf_rd'}\n");
    expect((await run()).tables[0]).toMatchObject({ change: 'evolved', schemaVersion: 3 });

    await put('mydata/t/4.json', "{'id': None, 'amount': 1.25, 'booth': 'royal_ave'}\n");
    expect((await run()).tables[0]).toMatchObject({ change: 'evolved', schemaVersion: 4 });

    const versions = await t.backend.catalog.listSchemaVersions('mydata', 't');
    expect(versions.map((v) => v.columns)).toEqual([
      [
        { name: 'id', type: 'bigint', nullable: false },
        { name: 'amount', type: 'bigint', nullable: false },
      ],
      [
        { name: 'id', type: 'bigint', nullable: false },
        { name: 'amount', type: 'bigint', nullable: false },
        { name: 'booth', type: 'string' },
      ],
      [
        { name: 'id', type: 'bigint', nullable: false },
        { name: 'amount', type: 'double', nullable: false },
        { name: 'booth', type: 'string' },
      ],
      [
        { name: 'id', type: 'bigint' },
        { name: 'amount', type: 'double', nullable: false },
        { name: 'booth', type: 'string' },
      ],
    ]);
    expect(versions.map((v) => v.createdBy)).toEqual(['crawler', 'crawler', 'crawler', 'crawler']);
  });

  it('catalogs the lines that parse and reports the bad lines of a file with the first reason', async () => {
    const good = pyLines([
      { id: 1, name: 'a' },
      { id: 2, name: 'b' },
    ]);
    await put(
      'mydata/t/a.json',
      `${good}{'id' 3, 'name': 'c'}\n\n{'id': 4, 'name': 'd}\n[1, 2]\n{'id': 5, 'name': 'e'}\n`,
    );
    await put('mydata/t/b.json', pyLines([{ id: 6, name: 'f' }]));
    const result = await run();
    expect(result.tables[0]).toMatchObject({ name: 't', format: 'python-dict', files: 2 });
    expect(result.tables[0]?.columns).toEqual([
      { name: 'id', type: 'bigint', nullable: false },
      { name: 'name', type: 'string', nullable: false },
    ]);
    expect(result.skipped).toEqual([
      {
        key: 'mydata/t/a.json',
        lines: 3,
        reason:
          "3 of 7 lines are neither a Python dict nor a JSON object (first: line 3: expected ':' after key, found '3' at column 7); the rest of the file is cataloged (the job quarantines such lines)",
      },
    ]);
  });

  it('reads at most maxLinesPerFile lines per file and says so in the notes', async () => {
    await put('mydata/t/a.json', pyLines([{ a: 1 }, { a: 2 }, { a: 3 }, { a: 4, b: 'late' }]));
    await put('mydata/t/b.json', pyLines([{ a: 5 }]));
    const result = await crawl({
      objectStore: t.backend.objectStore,
      catalog: t.backend.catalog,
      layer: 'analytical',
      prefix: 'mydata/',
      database: 'mydata',
      maxLinesPerFile: 3,
    });
    const [table] = result.tables;
    expect(table?.columns).toEqual([{ name: 'a', type: 'bigint', nullable: false }]);
    expect(table?.notes).toEqual([
      'python-dict: types and nullability inferred from the first 3 lines of each file; 1 of 2 files have more lines, not read',
    ]);
  });
});

describe('crawl: nullability of DuckDB-read formats', () => {
  it('NDJSON: a missing key or a null makes a column nullable; date-like strings are noted', async () => {
    await put('mydata/e/a.ndjson', ndjson([{ id: 1, day: '2023/08/13', note: 'x', meta: { x: 1 } }]));
    await put('mydata/e/b.ndjson', ndjson([{ id: 2, day: '2023/08/14', meta: null }]));
    const [table] = (await run()).tables;
    expect(table?.columns).toEqual([
      { name: 'id', type: 'bigint', nullable: false },
      { name: 'day', type: 'string', nullable: false, comment: DATE_LIKE_COMMENT },
      { name: 'note', type: 'string' },
      { name: 'meta', type: 'struct<x:bigint>' },
    ]);
  });

  it('CSV: an empty field makes a column nullable', async () => {
    await put('mydata/p/a.csv', 'name,age,city\nAda,36,\nLinus,,Helsinki\nGrace,45,Arlington\n');
    const [table] = (await run()).tables;
    expect(table?.columns).toEqual([
      { name: 'name', type: 'string', nullable: false },
      { name: 'age', type: 'bigint' },
      { name: 'city', type: 'string' },
    ]);
  });

  it('Parquet: from null counts, a nested column by a count query, a file without the column', async () => {
    await putParquet(
      'mydata/q/a.parquet',
      `SELECT i::BIGINT AS id, CASE WHEN i = 1 THEN NULL ELSE 'v' END AS s, {'x': i} AS st, [i] AS l FROM range(3) r(i)`,
    );
    await putParquet(
      'mydata/q/b.parquet',
      `SELECT 9::BIGINT AS id, 'w' AS s, NULL::STRUCT(x BIGINT) AS st, [9] AS l, 1.5 AS extra`,
    );
    const [table] = (await run()).tables;
    expect(table?.columns).toEqual([
      { name: 'id', type: 'bigint', nullable: false },
      { name: 's', type: 'string' },
      { name: 'st', type: 'struct<x:bigint>' },
      { name: 'l', type: 'array<bigint>', nullable: false },
      { name: 'extra', type: 'decimal(2,1)' },
    ]);
  });

  it('a crawled column that gains NULLs is a new schema version', async () => {
    await put('mydata/e/a.ndjson', ndjson([{ id: 1, kind: 'a' }]));
    await run();
    await put('mydata/e/b.ndjson', ndjson([{ id: 2, kind: null }]));
    const [table] = (await run()).tables;
    expect(table).toMatchObject({ change: 'evolved', schemaVersion: 2 });
    expect(table?.columns).toEqual([
      { name: 'id', type: 'bigint', nullable: false },
      { name: 'kind', type: 'string' },
    ]);
  });
});

describe('classify: Python-dict lines', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-classify-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function file(name: string, content: string | Buffer): Promise<string> {
    const p = path.join(dir, name);
    await writeFile(p, content);
    return p;
  }

  it('tells Python dict lines from JSON by content', async () => {
    expect(await classify(await file('a.json', tollsPython()))).toBe('python-dict');
    expect(await classify(await file('b.json', tollsNdjson()))).toBe('ndjson');
    expect(await classify(await file('c.bin', gzipSync(tollsPython())))).toBe('python-dict');
    expect(await classify(await file('d.json', '{"a": True, "b": None}\r\n'))).toBe('python-dict');
    expect(await classify(await file('e.json', "\uFEFF\n  {'a': 1}"))).toBe('python-dict');
  });

  it('takes a first line cut by the 64 KiB head as Python when its first key is single-quoted', async () => {
    expect(await classify(await file('f.json', `{'a': '${'x'.repeat(100_000)}'}\n`))).toBe('python-dict');
  });

  it('returns undefined for a first line that is neither', async () => {
    expect(await classify(await file('g.json', "{'a': 1,, }\n{'a': 2}\n"))).toBeUndefined();
    expect(await classify(await file('h.json', "{'a' 1}"))).toBeUndefined();
    expect(await classify(await file('i.json', '{1, 2}\n'))).toBeUndefined();
  });
});

describe('crawl: a value DuckDB did not sample', () => {
  it('keeps the table, with every column nullable and a note, when the full count query fails', async () => {
    const rows = Array.from({ length: 25_000 }, (_, i) => ({ id: i, v: i }));
    await put(
      'mydata/late/a.ndjson',
      `${ndjson(rows)}${JSON.stringify({ id: 25_000, v: 'not a number' })}\n`,
    );
    const result = await run();
    expect(result.skipped).toEqual([]);
    const [table] = result.tables;
    expect(table?.columns).toEqual([
      { name: 'id', type: 'bigint' },
      { name: 'v', type: 'bigint' },
    ]);
    expect(table?.notes).toEqual([
      expect.stringMatching(/^nullability not determined for id, v \(all nullable\): /),
    ]);
  });
});
