/**
 * Unit tests of {@link GlueCatalog} against a FAKE Glue (test/helpers/fake-glue.ts), not AWS.
 * Request inputs are asserted field by field against the Glue API reference
 * (https://docs.aws.amazon.com/glue/latest/webapi/API_CreateTable.html, API_TableInput.html,
 * API_StorageDescriptor.html, API_BatchCreatePartition.html, API_PartitionInput.html,
 * API_UpdateTable.html, API_BatchDeletePartition.html); expected values are written out here.
 */
import {
  BatchCreatePartitionCommand,
  BatchDeletePartitionCommand,
  BatchUpdatePartitionCommand,
  CreateDatabaseCommand,
  CreateTableCommand,
  GetPartitionsCommand,
  UpdateTableCommand,
} from '@aws-sdk/client-glue';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { layerBuckets } from '../../../test/helpers/aws-buckets.ts';
import { type FakeGlue, installFakeGlue } from '../../../test/helpers/fake-glue.ts';
import { ManualClock } from '../../../test/helpers/manual-clock.ts';
import { NotFoundError, SluiceError } from '../../core/errors.ts';
import type { TableDefinition } from '../../core/ports/catalog.ts';
import { fromGlueColumn, fromGlueType, GlueCatalog, toGlueColumn } from './glue-catalog.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const BUCKETS = layerBuckets('acme');

const EVENTS: TableDefinition = {
  database: 'gharchive',
  name: 'events',
  location: { layer: 'analytical', prefix: 'gharchive/events/' },
  format: 'parquet',
  columns: [
    { name: 'id', type: 'bigint', nullable: false },
    { name: 'type', type: 'string', comment: 'event type' },
    { name: 'payload', type: 'string', logicalType: 'json' },
    { name: 'created_at', type: 'timestamp' },
  ],
  partitionKeys: [
    { name: 'year', type: 'string' },
    { name: 'month', type: 'string' },
  ],
  description: 'GitHub events',
  primaryKey: ['id'],
  managedBy: 'pipeline',
};

const PARQUET_SD = {
  InputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
  OutputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
  SerdeInfo: {
    SerializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
    Parameters: { 'serialization.format': '1' },
  },
};

const GLUE_COLUMNS = [
  { Name: 'id', Type: 'bigint', Parameters: { 'sluice:nullable': 'false' } },
  { Name: 'type', Type: 'string', Comment: 'event type' },
  { Name: 'payload', Type: 'string', Parameters: { 'sluice:logical_type': 'json' } },
  { Name: 'created_at', Type: 'timestamp' },
];

describe('GlueCatalog', () => {
  let glue: FakeGlue;
  let clock: ManualClock;
  let catalog: GlueCatalog;

  beforeEach(() => {
    glue = installFakeGlue();
    clock = new ManualClock(new Date('2026-03-01T12:00:00.000Z'));
    catalog = new GlueCatalog(glue.client, { databasePrefix: 'acme_', buckets: BUCKETS, clock });
  });
  afterEach(() => glue.restore());

  it('creates the database and an EXTERNAL_TABLE with the exact CreateTable input', async () => {
    const { change } = await catalog.upsertTable(EVENTS, { createdBy: 'run-1' });
    expect(change).toBe('created');
    expect(glue.mock.commandCalls(CreateDatabaseCommand).map((c) => c.args[0].input)).toEqual([
      {
        DatabaseInput: {
          Name: 'acme_gharchive',
          Description: 'sluice database gharchive',
          Parameters: { 'sluice:database': 'gharchive' },
        },
      },
    ]);
    const calls = glue.mock.commandCalls(CreateTableCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.args[0].input).toEqual({
      DatabaseName: 'acme_gharchive',
      TableInput: {
        Name: 'events',
        Description: 'GitHub events',
        TableType: 'EXTERNAL_TABLE',
        Parameters: {
          EXTERNAL: 'TRUE',
          classification: 'parquet',
          'sluice:format': 'parquet',
          'sluice:database': 'gharchive',
          'sluice:name': 'events',
          'sluice:layer': 'analytical',
          'sluice:schema_version': '1',
          'sluice:schema_created_at': '2026-03-01T12:00:00.000Z',
          'sluice:schema_created_by': 'run-1',
          'sluice:created_at': '2026-03-01T12:00:00.000Z',
          'sluice:updated_at': '2026-03-01T12:00:00.000Z',
          'sluice:primary_key': '["id"]',
          'sluice:managed_by': 'pipeline',
        },
        PartitionKeys: [
          { Name: 'year', Type: 'string' },
          { Name: 'month', Type: 'string' },
        ],
        StorageDescriptor: {
          Columns: GLUE_COLUMNS,
          Location: 's3://acme-analytical/gharchive/events/',
          ...PARQUET_SD,
        },
      },
    });
  });

  it('sends a second CreateDatabase that Glue refuses as AlreadyExists, and goes on', async () => {
    await catalog.upsertTable(EVENTS);
    await catalog.upsertTable({ ...EVENTS, name: 'repos' });
    expect(glue.mock.commandCalls(CreateDatabaseCommand)).toHaveLength(2);
    expect(glue.mock.commandCalls(CreateTableCommand)).toHaveLength(2);
    expect((await catalog.listTables('gharchive')).map((t) => t.name)).toEqual(['events', 'repos']);
  });

  it('declares the SerDe and formats per table format', async () => {
    const base = { ...EVENTS, partitionKeys: [] };
    await catalog.upsertTable({ ...base, name: 'j', format: 'ndjson' });
    await catalog.upsertTable({ ...base, name: 'c', format: 'csv' });
    await catalog.upsertTable({ ...base, name: 'p', format: 'python-dict' });
    const j = glue.table('acme_gharchive', 'j')!;
    expect(j.Parameters?.classification).toBe('json');
    expect(j.StorageDescriptor).toMatchObject({
      InputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
      OutputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
      SerdeInfo: { SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe' },
    });
    const c = glue.table('acme_gharchive', 'c')!;
    expect(c.Parameters).toMatchObject({ classification: 'csv', 'skip.header.line.count': '1' });
    expect(c.StorageDescriptor?.SerdeInfo).toEqual({
      SerializationLibrary: 'org.apache.hadoop.hive.serde2.OpenCSVSerde',
      Parameters: { separatorChar: ',', quoteChar: '"', escapeChar: '\\' },
    });
    const p = glue.table('acme_gharchive', 'p')!;
    expect(p.Parameters?.classification).toBe('python-dict');
    expect(p.StorageDescriptor?.SerdeInfo).toEqual({ Parameters: {} });
    expect((await catalog.getTable('gharchive', 'p'))?.format).toBe('python-dict');
  });

  it('sends no UpdateTable when nothing changed, SkipArchive for in-place changes, archives on evolution', async () => {
    await catalog.upsertTable(EVENTS);
    await catalog.upsertTable(EVENTS);
    expect(glue.mock.commandCalls(UpdateTableCommand)).toHaveLength(0);

    await clock.advance(1000);
    await catalog.upsertTable({ ...EVENTS, description: 'GitHub events, hourly' });
    let updates = glue.mock.commandCalls(UpdateTableCommand);
    expect(updates).toHaveLength(1);
    expect(updates[0]!.args[0].input).toMatchObject({
      DatabaseName: 'acme_gharchive',
      SkipArchive: true,
      VersionId: '0',
      TableInput: {
        Name: 'events',
        Description: 'GitHub events, hourly',
        Parameters: {
          'sluice:schema_version': '1',
          'sluice:created_at': '2026-03-01T12:00:00.000Z',
          'sluice:updated_at': '2026-03-01T12:00:01.000Z',
        },
      },
    });
    expect(glue.state.tables.get('acme_gharchive')?.get('events')?.versions).toHaveLength(1);

    await clock.advance(1000);
    const { change, table } = await catalog.upsertTable(
      { ...EVENTS, columns: [...EVENTS.columns, { name: 'repo', type: 'string' }] },
      { createdBy: 'run-2' },
    );
    expect(change).toBe('evolved');
    expect(table.schemaVersion).toBe(2);
    updates = glue.mock.commandCalls(UpdateTableCommand);
    expect(updates[1]!.args[0].input).toMatchObject({
      SkipArchive: false,
      VersionId: '0',
      TableInput: {
        Parameters: {
          'sluice:schema_version': '2',
          'sluice:schema_created_at': '2026-03-01T12:00:02.000Z',
          'sluice:schema_created_by': 'run-2',
        },
      },
    });
    // Glue kept the previous version: one TableVersion per schema version.
    expect(
      glue.state.tables
        .get('acme_gharchive')
        ?.get('events')
        ?.versions.map((v) => v.VersionId),
    ).toEqual(['0', '1']);
    const versions = await catalog.listSchemaVersions('gharchive', 'events');
    expect(
      versions.map((v) => [v.version, v.columns.length, v.createdBy, v.createdAt.toISOString()]),
    ).toEqual([
      [1, 4, undefined, '2026-03-01T12:00:00.000Z'],
      [2, 5, 'run-2', '2026-03-01T12:00:02.000Z'],
    ]);
  });

  it('fails an update when another writer changed the table since it was read (VersionId)', async () => {
    await catalog.upsertTable(EVENTS);
    glue.inject('UpdateTableCommand', (input) => {
      // Someone else archives a version between our GetTable and our UpdateTable.
      glue.inject('UpdateTableCommand', undefined);
      const entry = glue.state.tables.get('acme_gharchive')!.get('events')!;
      entry.versions.push({ ...entry.versions[0]!, VersionId: String(entry.nextVersion++) });
      return (input as { VersionId?: string }).VersionId === '0' ? undefined : new Error('unexpected');
    });
    await expect(catalog.upsertTable({ ...EVENTS, description: 'x' })).rejects.toThrow(
      /ConcurrentModificationException/,
    );
  });

  it('lowercases Glue names and keeps the names as given', async () => {
    await catalog.upsertTable({ ...EVENTS, database: 'GhArchive', name: 'Events' });
    expect(glue.table('acme_gharchive', 'events')).toBeDefined();
    expect((await catalog.listTables()).map((t) => `${t.database}.${t.name}`)).toEqual(['GhArchive.Events']);
    expect((await catalog.getTable('GhArchive', 'Events'))?.name).toBe('Events');
  });

  it('registers partitions with the exact BatchCreatePartition input', async () => {
    await catalog.upsertTable(EVENTS);
    await clock.advance(5000);
    await catalog.putPartitions('gharchive', 'events', [
      {
        values: ['2015', '01'],
        prefix: 'gharchive/events/year=2015/month=01/',
        files: [
          { key: 'gharchive/events/year=2015/month=01/a.parquet', bytes: 100, rows: 10 },
          { key: 'gharchive/events/year=2015/month=01/b.parquet', bytes: 20, rows: 2 },
        ],
        runId: 'run-7',
      },
      {
        values: ['2015', '02'],
        prefix: 'gharchive/events/year=2015/month=02/',
        files: [{ key: 'x', bytes: 5 }],
      },
    ]);
    const calls = glue.mock.commandCalls(BatchCreatePartitionCommand);
    expect(calls).toHaveLength(1);
    const sd = (location: string) => ({ Columns: GLUE_COLUMNS, Location: location, ...PARQUET_SD });
    expect(calls[0]!.args[0].input).toEqual({
      DatabaseName: 'acme_gharchive',
      TableName: 'events',
      PartitionInputList: [
        {
          Values: ['2015', '01'],
          StorageDescriptor: sd('s3://acme-analytical/gharchive/events/year=2015/month=01/'),
          Parameters: {
            'sluice:files':
              '[{"key":"gharchive/events/year=2015/month=01/a.parquet","bytes":100,"rows":10},' +
              '{"key":"gharchive/events/year=2015/month=01/b.parquet","bytes":20,"rows":2}]',
            numFiles: '2',
            totalSize: '120',
            numRows: '12',
            'sluice:run_id': 'run-7',
            'sluice:schema_version': '1',
            'sluice:created_at': '2026-03-01T12:00:05.000Z',
            'sluice:updated_at': '2026-03-01T12:00:05.000Z',
          },
        },
        {
          Values: ['2015', '02'],
          StorageDescriptor: sd('s3://acme-analytical/gharchive/events/year=2015/month=02/'),
          Parameters: {
            'sluice:files': '[{"key":"x","bytes":5}]',
            numFiles: '1',
            totalSize: '5',
            'sluice:schema_version': '1',
            'sluice:created_at': '2026-03-01T12:00:05.000Z',
            'sluice:updated_at': '2026-03-01T12:00:05.000Z',
          },
        },
      ],
    });
    expect(glue.mock.commandCalls(BatchUpdatePartitionCommand)).toHaveLength(0);
  });

  it('batches creates by 100, updates existing ones by 100 keeping their creation time, deletes by 25', async () => {
    await catalog.upsertTable({ ...EVENTS, partitionKeys: [{ name: 'n', type: 'string' }] });
    const inputs = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, i) => ({
        values: [String(from + i).padStart(4, '0')],
        prefix: `p/${from + i}/`,
        files: [{ key: `p/${from + i}/f`, bytes: from + i }],
      }));
    await catalog.putPartitions('gharchive', 'events', inputs(0, 150));
    expect(
      glue.mock
        .commandCalls(BatchCreatePartitionCommand)
        .map((c) => c.args[0].input.PartitionInputList?.length),
    ).toEqual([100, 50]);

    await clock.advance(60_000);
    // 120..269: 30 exist (replaced), 120 are new.
    await catalog.putPartitions('gharchive', 'events', inputs(120, 270));
    expect(
      glue.mock
        .commandCalls(BatchCreatePartitionCommand)
        .map((c) => c.args[0].input.PartitionInputList?.length),
    ).toEqual([100, 50, 100, 50]);
    const updates = glue.mock.commandCalls(BatchUpdatePartitionCommand);
    expect(updates).toHaveLength(1);
    const entries = updates[0]!.args[0].input.Entries!;
    expect(entries.map((e) => e.PartitionValueList?.[0])).toEqual(
      Array.from({ length: 30 }, (_, i) => String(120 + i).padStart(4, '0')),
    );
    expect(entries[0]!.PartitionInput?.Parameters).toMatchObject({
      'sluice:created_at': '2026-03-01T12:00:00.000Z',
      'sluice:updated_at': '2026-03-01T12:01:00.000Z',
    });
    const listed = await catalog.listPartitions('gharchive', 'events');
    expect(listed).toHaveLength(270);
    expect(listed.map((p) => p.values[0])).toEqual(
      Array.from({ length: 270 }, (_, i) => String(i).padStart(4, '0')),
    );
    // Pages of 3 (the fake's page size): every page was read.
    expect(
      glue.mock.commandCalls(GetPartitionsCommand).filter((c) => c.args[0].input.MaxResults === undefined)
        .length,
    ).toBe(90);

    await catalog.deletePartitions(
      'gharchive',
      'events',
      Array.from({ length: 30 }, (_, i) => [String(i).padStart(4, '0')]),
    );
    expect(
      glue.mock
        .commandCalls(BatchDeletePartitionCommand)
        .map((c) => c.args[0].input.PartitionsToDelete?.length),
    ).toEqual([25, 5]);
    expect(glue.mock.commandCalls(BatchDeletePartitionCommand)[1]!.args[0].input).toEqual({
      DatabaseName: 'acme_gharchive',
      TableName: 'events',
      PartitionsToDelete: ['0025', '0026', '0027', '0028', '0029'].map((v) => ({ Values: [v] })),
    });
    expect(await catalog.summarizePartitions('gharchive', 'events')).toEqual({
      partitions: 240,
      rows: 0,
      bytes: Array.from({ length: 240 }, (_, i) => 30 + i).reduce((a, b) => a + b, 0),
    });
  });

  it('undoes the batch when Glue refuses part of it, so the table is as before', async () => {
    await catalog.upsertTable({ ...EVENTS, partitionKeys: [{ name: 'n', type: 'string' }] });
    const p = (n: number, bytes: number) => ({
      values: [String(n).padStart(3, '0')],
      prefix: `p/${n}/`,
      files: [{ key: `p/${n}/f`, bytes }],
    });
    await catalog.putPartitions('gharchive', 'events', [p(0, 1), p(1, 1)]);
    const before = await catalog.listPartitions('gharchive', 'events');

    // The second BatchCreatePartition call is throttled: the first chunk (100, incl. one replace) must be undone.
    let calls = 0;
    glue.inject('BatchCreatePartitionCommand', () =>
      ++calls === 2
        ? Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $retryable: {} })
        : undefined,
    );
    const batch = [p(1, 99), ...Array.from({ length: 150 }, (_, i) => p(100 + i, 2))];
    const error = await catalog.putPartitions('gharchive', 'events', batch).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SluiceError);
    expect((error as SluiceError).message).toMatch(/ThrottlingException.*undone/);
    expect((error as SluiceError).retryable).toBe(true);
    expect(await catalog.listPartitions('gharchive', 'events')).toEqual(before);
  });

  it('maps EntityNotFoundException: NotFoundError for putPartitions, absent elsewhere', async () => {
    await expect(
      catalog.putPartitions('gharchive', 'nope', [{ values: ['1'], prefix: 'x/', files: [] }]),
    ).rejects.toThrow(NotFoundError);
    await expect(
      catalog.putPartitions('gharchive', 'nope', [{ values: ['1'], prefix: 'x/', files: [] }]),
    ).rejects.toThrow(/gharchive\.nope.*acme_gharchive\.nope/);
    expect(await catalog.getTable('gharchive', 'nope')).toBeUndefined();
    expect(await catalog.listTables('gharchive')).toEqual([]);
    expect(await catalog.listPartitions('gharchive', 'nope')).toEqual([]);
    expect(await catalog.listSchemaVersions('gharchive', 'nope')).toEqual([]);
    await catalog.deletePartitions('gharchive', 'nope', [['1']]);
    await catalog.deleteTable('gharchive', 'nope');
  });

  it('skips foreign tables (outside the buckets, views) when listing', async () => {
    await catalog.upsertTable(EVENTS);
    glue.state.tables.get('acme_gharchive')!.set('elsewhere', {
      versions: [{ Name: 'elsewhere', StorageDescriptor: { Location: 's3://someone-else/x/' } }],
      nextVersion: 1,
      partitions: new Map(),
    });
    glue.state.tables.get('acme_gharchive')!.set('v', {
      versions: [
        { Name: 'v', TableType: 'VIRTUAL_VIEW', StorageDescriptor: { Location: 's3://acme-analytical/' } },
      ],
      nextVersion: 1,
      partitions: new Map(),
    });
    expect((await catalog.listTables()).map((t) => t.name)).toEqual(['events']);
    await expect(catalog.getTable('gharchive', 'elsewhere')).rejects.toThrow(
      /someone-else.*none of the lake's buckets/,
    );
  });

  it('maps column types and metadata both ways', () => {
    for (const column of EVENTS.columns) expect(fromGlueColumn(toGlueColumn(column))).toEqual(column);
    expect(fromGlueColumn(toGlueColumn({ name: 'n', type: 'int', nullable: true }))).toEqual({
      name: 'n',
      type: 'int',
      nullable: true,
    });
    expect(fromGlueType('BIGINT')).toBe('bigint');
    expect(fromGlueType('integer')).toBe('int');
    expect(fromGlueType('real')).toBe('float');
    expect(fromGlueType('char(3)')).toBe('string');
    expect(fromGlueType('decimal(10,2)')).toBe('decimal(10,2)');
    expect(fromGlueType('array<struct<a:int, b:string>>')).toBe('array<struct<a:int,b:string>>');
    expect(fromGlueType('interval')).toBe('string');
  });
});
