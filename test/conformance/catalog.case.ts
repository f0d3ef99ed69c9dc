import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NotFoundError } from '../../src/core/errors.ts';
import type { Catalog, PartitionInput, TableDefinition } from '../../src/core/ports/catalog.ts';
import type { Column } from '../../src/core/schema.ts';

/** Orders partition value lists value by value, each compared as a string (UTF-8 bytes). */
function compareValues(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const order = Buffer.compare(Buffer.from(a[i]!), Buffer.from(b[i]!));
    if (order !== 0) return order;
  }
  return a.length - b.length;
}

const COLUMNS: readonly Column[] = [
  { name: 'id', type: 'bigint', nullable: false },
  { name: 'type', type: 'string', comment: 'event type' },
  { name: 'payload', type: 'string', logicalType: 'json' },
  { name: 'created_at', type: 'timestamp' },
];

const DATE_KEYS: readonly Column[] = [
  { name: 'year', type: 'string' },
  { name: 'month', type: 'string' },
  { name: 'dayofmonth', type: 'string' },
];

function partition(
  values: readonly string[],
  files: PartitionInput['files'],
  runId?: string,
): PartitionInput {
  const input: PartitionInput = {
    values,
    prefix: `events/${values.map((v, i) => `${DATE_KEYS[i]?.name ?? `k${i}`}=${v}`).join('/')}/`,
    files,
  };
  return runId === undefined ? input : { ...input, runId };
}

/**
 * The {@link Catalog} contract, for any backend. `open` returns a catalog and a `close`; each
 * test uses databases with a random suffix, so the suite also runs against a shared Glue catalog.
 */
export function catalogConformance(
  backend: string,
  open: () => Promise<{ catalog: Catalog; close(): Promise<void> }>,
): void {
  describe(`Catalog conformance: ${backend}`, () => {
    let catalog: Catalog;
    let close: () => Promise<void>;
    let database: string;
    let definition: TableDefinition;

    beforeEach(async () => {
      ({ catalog, close } = await open());
      database = `conformance_${randomUUID().replace(/-/g, '')}`;
      definition = {
        database,
        name: 'events',
        location: { layer: 'analytical', prefix: `${database}/events/` },
        format: 'parquet',
        columns: COLUMNS,
        partitionKeys: DATE_KEYS,
        description: 'GitHub events',
        primaryKey: ['id'],
        managedBy: 'pipeline',
      };
    });
    afterEach(async () => {
      for (const table of await catalog.listTables(database)) await catalog.deleteTable(database, table.name);
      for (const table of await catalog.listTables(`${database}_b`))
        await catalog.deleteTable(`${database}_b`, table.name);
      await close();
    });

    it('creates a table with schema version 1', async () => {
      const before = Date.now();
      const { table, change } = await catalog.upsertTable(definition, { createdBy: 'run-1' });
      expect(change).toBe('created');
      expect(table).toMatchObject({ ...definition, schemaVersion: 1 });
      expect(table.createdAt).toBeInstanceOf(Date);
      expect(table.updatedAt).toBeInstanceOf(Date);
      expect(Math.abs(table.createdAt.getTime() - before)).toBeLessThan(60_000);
      expect(await catalog.getTable(database, 'events')).toEqual(table);

      const versions = await catalog.listSchemaVersions(database, 'events');
      expect(versions).toHaveLength(1);
      expect(versions[0]).toMatchObject({
        version: 1,
        columns: COLUMNS,
        partitionKeys: DATE_KEYS,
        createdBy: 'run-1',
      });
      expect(versions[0]!.createdAt).toBeInstanceOf(Date);
    });

    it('keeps optional fields absent when not given', async () => {
      const { table } = await catalog.upsertTable({
        database,
        name: 'bare',
        location: { layer: 'staging', prefix: 'bare/' },
        format: 'ndjson',
        columns: [{ name: 'x', type: 'int' }],
        partitionKeys: [],
      });
      expect(table.description).toBeUndefined();
      expect(table.primaryKey).toBeUndefined();
      expect(table.managedBy).toBeUndefined();
      expect(table.partitionKeys).toEqual([]);
      expect((await catalog.listSchemaVersions(database, 'bare'))[0]!.createdBy).toBeUndefined();
    });

    it('reports an identical definition, or one with reordered columns, as unchanged', async () => {
      const created = await catalog.upsertTable(definition);
      const same = await catalog.upsertTable(definition, { createdBy: 'run-2' });
      expect(same.change).toBe('unchanged');
      expect(same.table).toEqual(created.table);
      const reordered = await catalog.upsertTable({ ...definition, columns: [...COLUMNS].reverse() });
      expect(reordered.change).toBe('unchanged');
      expect(reordered.table.schemaVersion).toBe(1);
      expect(await catalog.listSchemaVersions(database, 'events')).toHaveLength(1);
    });

    it('updates description, location and format in place without a new version', async () => {
      await catalog.upsertTable(definition);
      const { change, table } = await catalog.upsertTable({
        ...definition,
        description: 'GitHub events, hourly',
        location: { layer: 'analytical', prefix: `${database}/events_v2/` },
        format: 'ndjson',
      });
      expect(change).toBe('unchanged');
      expect(table.schemaVersion).toBe(1);
      const stored = await catalog.getTable(database, 'events');
      expect(stored?.description).toBe('GitHub events, hourly');
      expect(stored?.location).toEqual({ layer: 'analytical', prefix: `${database}/events_v2/` });
      expect(stored?.format).toBe('ndjson');
      expect(stored!.updatedAt.getTime()).toBeGreaterThanOrEqual(stored!.createdAt.getTime());
      expect(await catalog.listSchemaVersions(database, 'events')).toHaveLength(1);
    });

    it('evolves: a new schema version per column change, old versions stay readable', async () => {
      await catalog.upsertTable(definition, { createdBy: 'run-1' });
      const added: Column[] = [...COLUMNS, { name: 'repo', type: 'string' }];
      const v2 = await catalog.upsertTable({ ...definition, columns: added }, { createdBy: 'run-2' });
      expect(v2.change).toBe('evolved');
      expect(v2.table.schemaVersion).toBe(2);
      expect(v2.table.columns).toEqual(added);

      const retyped: Column[] = added.map((c) => (c.name === 'id' ? { ...c, type: 'string' } : c));
      const v3 = await catalog.upsertTable({ ...definition, columns: retyped }, { createdBy: 'crawler' });
      expect(v3.change).toBe('evolved');
      expect(v3.table.schemaVersion).toBe(3);

      const removed = retyped.filter((c) => c.name !== 'payload');
      const v4 = await catalog.upsertTable({ ...definition, columns: removed });
      expect(v4.change).toBe('evolved');

      const versions = await catalog.listSchemaVersions(database, 'events');
      expect(versions.map((v) => v.version)).toEqual([1, 2, 3, 4]);
      expect(versions.map((v) => v.columns)).toEqual([COLUMNS, added, retyped, removed]);
      expect(versions.map((v) => v.createdBy)).toEqual(['run-1', 'run-2', 'crawler', undefined]);
      expect((await catalog.getTable(database, 'events'))?.schemaVersion).toBe(4);
    });

    it('evolves on a nullability change, not on a comment change; absent nullable is nullable', async () => {
      await catalog.upsertTable(definition);
      const commented = COLUMNS.map((c) => (c.name === 'type' ? { ...c, comment: 'the event type' } : c));
      expect((await catalog.upsertTable({ ...definition, columns: commented })).change).toBe('unchanged');
      const explicit = commented.map((c) => (c.name === 'type' ? { ...c, nullable: true } : c));
      expect((await catalog.upsertTable({ ...definition, columns: explicit })).change).toBe('unchanged');
      const notNull = commented.map((c) => (c.name === 'type' ? { ...c, nullable: false } : c));
      const v2 = await catalog.upsertTable({ ...definition, columns: notNull });
      expect(v2.change).toBe('evolved');
      expect(v2.table.schemaVersion).toBe(2);
      const nullableId = notNull.map((c) => (c.name === 'id' ? { name: 'id', type: c.type } : c));
      const v3 = await catalog.upsertTable({ ...definition, columns: nullableId });
      expect(v3.change).toBe('evolved');
      expect(v3.table.schemaVersion).toBe(3);
      expect((await catalog.listSchemaVersions(database, 'events')).at(-1)?.columns).toEqual(nullableId);
    });

    it('evolves on a partition-key change only while the table has no partitions', async () => {
      await catalog.upsertTable(definition);
      const hourly: Column[] = [...DATE_KEYS, { name: 'hour', type: 'string' }];
      const evolved = await catalog.upsertTable({ ...definition, partitionKeys: hourly });
      expect(evolved.change).toBe('evolved');
      expect(evolved.table.partitionKeys).toEqual(hourly);
      expect((await catalog.listSchemaVersions(database, 'events')).at(-1)?.partitionKeys).toEqual(hourly);

      await catalog.putPartitions(database, 'events', [
        { values: ['2015', '01', '01', '00'], prefix: 'p/', files: [{ key: 'p/f', bytes: 1 }] },
      ]);
      await expect(catalog.upsertTable({ ...definition, partitionKeys: DATE_KEYS })).rejects.toThrow(
        /partition/,
      );
      const table = await catalog.getTable(database, 'events');
      expect(table?.partitionKeys).toEqual(hourly);
      expect(table?.schemaVersion).toBe(2);
      expect(await catalog.listSchemaVersions(database, 'events')).toHaveLength(2);
    });

    it('gets and lists tables ordered by database then name', async () => {
      expect(await catalog.getTable(database, 'events')).toBeUndefined();
      const other = `${database}_b`;
      for (const [db, name] of [
        [other, 'alpha'],
        [database, 'zeta'],
        [database, 'alpha'],
        [database, 'Beta'],
      ] as const) {
        await catalog.upsertTable({ ...definition, database: db, name });
      }
      const ours = (await catalog.listTables()).filter(
        (t) => t.database === database || t.database === other,
      );
      expect(ours.map((t) => `${t.database}.${t.name}`)).toEqual([
        `${database}.Beta`,
        `${database}.alpha`,
        `${database}.zeta`,
        `${other}.alpha`,
      ]);
      expect((await catalog.listTables(database)).map((t) => t.name)).toEqual(['Beta', 'alpha', 'zeta']);
      expect(await catalog.listTables(`${database}_none`)).toEqual([]);
    });

    it('stores partitions with totals and lists them ordered by values', async () => {
      await catalog.upsertTable(definition);
      const inputs = [
        partition(['2015', '01', '02'], [{ key: 'a/1.parquet', bytes: 100, rows: 10 }], 'run-1'),
        partition(
          ['2014', '12', '31'],
          [
            { key: 'b/1.parquet', bytes: 5, rows: 1 },
            { key: 'b/2.parquet', bytes: 7, rows: 2 },
          ],
        ),
        partition(
          ['2015', '01', '01'],
          [
            { key: 'c/1.parquet', bytes: 1, rows: 4 },
            { key: 'c/2.parquet', bytes: 2 },
          ],
        ),
        partition(['2015', '01', '10'], []),
      ];
      await catalog.putPartitions(database, 'events', inputs);
      const listed = await catalog.listPartitions(database, 'events');
      expect(listed.map((p) => p.values)).toEqual(inputs.map((p) => p.values).sort(compareValues));

      const byKey = new Map(listed.map((p) => [p.values.join('-'), p]));
      expect(byKey.get('2015-01-02')).toMatchObject({
        prefix: inputs[0]!.prefix,
        files: inputs[0]!.files,
        rows: 10,
        bytes: 100,
        runId: 'run-1',
        schemaVersion: 1,
      });
      expect(byKey.get('2014-12-31')).toMatchObject({ rows: 3, bytes: 12 });
      expect(byKey.get('2014-12-31')?.runId).toBeUndefined();
      const unknownRows = byKey.get('2015-01-01')!;
      expect(unknownRows.bytes).toBe(3);
      expect(unknownRows.rows).toBeUndefined();
      expect(unknownRows.files).toEqual(inputs[2]!.files);
      expect(byKey.get('2015-01-10')).toMatchObject({ files: [], bytes: 0 });
      for (const p of listed) {
        expect(p.createdAt).toBeInstanceOf(Date);
        expect(p.updatedAt).toBeInstanceOf(Date);
      }

      // Pages of that order, either way, and the summary (rows: the known ones only).
      const sorted = inputs.map((p) => p.values).sort(compareValues);
      const page = await catalog.listPartitions(database, 'events', { limit: 2, offset: 1 });
      expect(page.map((p) => p.values)).toEqual(sorted.slice(1, 3));
      const newest = await catalog.listPartitions(database, 'events', { descending: true, limit: 2 });
      expect(newest.map((p) => p.values)).toEqual([...sorted].reverse().slice(0, 2));
      const rest = await catalog.listPartitions(database, 'events', { descending: true, offset: 3 });
      expect(rest.map((p) => p.values)).toEqual([...sorted].reverse().slice(3));
      expect(await catalog.summarizePartitions(database, 'events')).toEqual({
        partitions: inputs.length,
        rows: listed.reduce((n, p) => n + (p.rows ?? 0), 0),
        bytes: listed.reduce((n, p) => n + p.bytes, 0),
      });
      expect(await catalog.summarizePartitions(database, 'missing')).toEqual({
        partitions: 0,
        rows: 0,
        bytes: 0,
      });
    });

    it('orders partitions value by value, not by joined path', async () => {
      const keys: Column[] = [
        { name: 'k1', type: 'string' },
        { name: 'k2', type: 'string' },
      ];
      await catalog.upsertTable({ ...definition, name: 'pairs', partitionKeys: keys });
      const values = [
        ['a-', 'a'],
        ['a', 'b'],
        ['b', '0'],
        ['a', 'a'],
        ['a0', 'z'],
        ['A', 'z'],
        ['a', 'a b'],
      ];
      await catalog.putPartitions(
        database,
        'pairs',
        values.map((v) => ({ values: v, prefix: `${v.join('/')}/`, files: [] })),
      );
      const listed = await catalog.listPartitions(database, 'pairs');
      expect(listed.map((p) => p.values)).toEqual([...values].sort(compareValues));
    });

    it('replaces a partition with the same values, keeping its creation time', async () => {
      await catalog.upsertTable(definition);
      await catalog.putPartitions(database, 'events', [
        partition(['2015', '01', '01'], [{ key: 'old.parquet', bytes: 10, rows: 1 }], 'run-1'),
      ]);
      const [first] = await catalog.listPartitions(database, 'events');
      await catalog.upsertTable({ ...definition, columns: [...COLUMNS, { name: 'extra', type: 'int' }] });
      await catalog.putPartitions(database, 'events', [
        partition(['2015', '01', '01'], [{ key: 'new.parquet', bytes: 20, rows: 2 }], 'run-2'),
      ]);
      const listed = await catalog.listPartitions(database, 'events');
      expect(listed).toHaveLength(1);
      expect(listed[0]).toMatchObject({
        files: [{ key: 'new.parquet', bytes: 20, rows: 2 }],
        rows: 2,
        bytes: 20,
        runId: 'run-2',
        schemaVersion: 2,
      });
      expect(listed[0]!.createdAt).toEqual(first!.createdAt);
      expect(listed[0]!.updatedAt.getTime()).toBeGreaterThanOrEqual(first!.updatedAt.getTime());
    });

    it('putPartitions is all or none', async () => {
      await catalog.upsertTable(definition);
      const good = partition(['2015', '01', '01'], [{ key: 'g.parquet', bytes: 1 }]);
      await catalog.putPartitions(database, 'events', [good]);
      const before = await catalog.listPartitions(database, 'events');

      const batches: PartitionInput[][] = [
        [partition(['2015', '01', '02'], []), partition(['2015', '01'], [])], // too few values
        [partition(['2015', '01', '03'], []), partition(['2015', '01', '04', '00'], [])], // too many
        [partition(['2015', '01', '05'], []), partition(['2015', '', '06'], [])], // empty value
        [
          partition(['2015', '01', '07'], []),
          { ...partition(['2015', '01', '08'], []), values: ['2015', 1 as unknown as string, '08'] },
        ],
        [partition(['2016', '01', '01'], [{ key: 'x', bytes: 1 }]), partition(['2015', '01', '01'], [])], // replace + bad
      ];
      batches[4]!.push(partition(['2015'], []));
      for (const batch of batches) {
        await expect(catalog.putPartitions(database, 'events', batch)).rejects.toThrow();
        expect(await catalog.listPartitions(database, 'events')).toEqual(before);
      }
    });

    it('putPartitions on a missing table throws NotFoundError', async () => {
      await expect(
        catalog.putPartitions(database, 'missing', [partition(['2015', '01', '01'], [])]),
      ).rejects.toBeInstanceOf(NotFoundError);
    });

    it('deletes partitions by values, ignoring missing ones', async () => {
      await catalog.upsertTable(definition);
      const days = ['01', '02', '03', '04'];
      await catalog.putPartitions(
        database,
        'events',
        days.map((d) => partition(['2015', '01', d], [])),
      );
      await catalog.deletePartitions(database, 'events', [
        ['2015', '01', '02'],
        ['2015', '01', '04'],
        ['1999', '01', '01'],
      ]);
      expect((await catalog.listPartitions(database, 'events')).map((p) => p.values)).toEqual([
        ['2015', '01', '01'],
        ['2015', '01', '03'],
      ]);
      await catalog.deletePartitions(database, 'events', []);
      expect(await catalog.listPartitions(database, 'events')).toHaveLength(2);
    });

    it('deletes a table with its partitions and versions', async () => {
      await catalog.upsertTable(definition);
      await catalog.upsertTable({ ...definition, columns: [...COLUMNS, { name: 'extra', type: 'int' }] });
      await catalog.putPartitions(database, 'events', [partition(['2015', '01', '01'], [])]);
      await catalog.deleteTable(database, 'events');
      expect(await catalog.getTable(database, 'events')).toBeUndefined();
      expect(await catalog.listTables(database)).toEqual([]);
      expect(await catalog.listSchemaVersions(database, 'events')).toEqual([]);
      await catalog.deleteTable(database, 'events'); // missing: ignored

      // A table created again under the same name starts a fresh history.
      const again = await catalog.upsertTable(definition);
      expect(again.change).toBe('created');
      expect(again.table.schemaVersion).toBe(1);
      expect(await catalog.listPartitions(database, 'events')).toEqual([]);
      expect(await catalog.listSchemaVersions(database, 'events')).toHaveLength(1);
    });
  });
}
