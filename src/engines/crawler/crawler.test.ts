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

const TRIP_COLUMNS: Column[] = [
  { name: 'id', type: 'bigint' },
  { name: 'name', type: 'string' },
  { name: 'fare', type: 'double' },
  { name: 'started_at', type: 'timestamp' },
  { name: 'tags', type: 'array<string>' },
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
      { name: 'id', type: 'bigint' },
      { name: 'kind', type: 'string' },
      { name: 'meta', type: 'struct<x:bigint>' },
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
      { name: 'name', type: 'string' },
      { name: 'age', type: 'bigint' },
      { name: 'city', type: 'string' },
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
