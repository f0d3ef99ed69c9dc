/**
 * A FAKE AWS Glue Data Catalog for tests: in-memory databases, tables with table versions, and
 * partitions, installed on a `GlueClient` with aws-sdk-client-mock. It is not AWS: it implements
 * only the calls and the semantics the aws backend relies on, as the Glue API reference describes
 * them (https://docs.aws.amazon.com/glue/latest/webapi/):
 *
 * - names of databases and tables are stored lowercase (Glue lowercases them, Hive compatibility);
 * - `CreateDatabase`/`CreateTable` throw `AlreadyExistsException`; lookups of missing databases,
 *   tables or partitions throw `EntityNotFoundException`;
 * - `CreateTable` starts version `0`; `UpdateTable` archives the previous version under a new
 *   `VersionId` unless `SkipArchive` (then the current version is replaced in place); a
 *   `VersionId` in the request that is not the current one is a `ConcurrentModificationException`;
 * - `BatchCreatePartition` (≤100), `BatchUpdatePartition` (≤100), `BatchDeletePartition` (≤25) and
 *   `BatchGetPartition` (≤1,000) apply entry by entry and report failing entries in `Errors`
 *   (`AlreadyExistsException`, `EntityNotFoundException`, `InvalidInputException` for a wrong value
 *   count), never failing the whole call for an entry;
 * - `GetPartitions`, `GetTables`, `GetDatabases`, `GetTableVersions` page with opaque `NextToken`s
 *   (small default pages, so pagination is exercised) and return partitions in no useful order
 *   (hash order), as Glue promises none.
 *
 * Anything else (Lake Formation, catalogs other than the account's, partition indexes, filters
 * in `GetPartitions.Expression`) is not implemented and throws.
 */
import { createHash } from 'node:crypto';
import {
  AlreadyExistsException,
  BatchCreatePartitionCommand,
  BatchDeletePartitionCommand,
  BatchGetPartitionCommand,
  BatchUpdatePartitionCommand,
  ConcurrentModificationException,
  CreateDatabaseCommand,
  CreateTableCommand,
  type Database,
  DeleteTableCommand,
  EntityNotFoundException,
  GetDatabasesCommand,
  GetPartitionsCommand,
  GetTableCommand,
  GetTablesCommand,
  GetTableVersionsCommand,
  GlueClient,
  InvalidInputException,
  type Partition,
  type PartitionInput,
  type Table,
  type TableInput,
  UpdateTableCommand,
} from '@aws-sdk/client-glue';
import { type AwsStub, mockClient } from 'aws-sdk-client-mock';

/** One table in the fake: its versions, oldest first (the last is the current table). */
export interface FakeGlueTable {
  versions: Table[];
  nextVersion: number;
  partitions: Map<string, Partition>;
}

/** The fake's whole state, for tests and for the fake Athena to read. */
export interface FakeGlueState {
  readonly databases: Map<string, Database>;
  /** Tables by database name, then table name (both lowercase). */
  readonly tables: Map<string, Map<string, FakeGlueTable>>;
}

/** What {@link installFakeGlue} returns. */
export interface FakeGlue {
  readonly client: GlueClient;
  readonly state: FakeGlueState;
  // biome-ignore lint/suspicious/noExplicitAny: aws-sdk-client-mock's stub type is generic over any client
  readonly mock: AwsStub<any, any, any>;
  /** The current table, or `undefined`. */
  table(database: string, name: string): Table | undefined;
  /** The partitions of a table, in insertion order. */
  partitions(database: string, name: string): Partition[];
  /**
   * Makes calls of `command` (its class name, e.g. `BatchCreatePartitionCommand`) fail with the
   * error `fault` returns for their input (`undefined`: handled normally); `undefined` removes it.
   */
  inject(command: string, fault: ((input: unknown) => Error | undefined) | undefined): void;
  /** Removes the mock from the client. */
  restore(): void;
}

const meta = { $metadata: {} };

function notFound(message: string): EntityNotFoundException {
  return new EntityNotFoundException({ message, ...meta });
}

function invalid(message: string): InvalidInputException {
  return new InvalidInputException({ message, ...meta });
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

function valuesKey(values: readonly string[] | undefined): string {
  return JSON.stringify(values ?? []);
}

/** Pages `items` with an opaque token (base64 of the offset), `pageSize` per page by default. */
function page<T>(items: readonly T[], token: string | undefined, max: number | undefined, pageSize: number) {
  const start = token ? Number(Buffer.from(token, 'base64').toString('utf8')) : 0;
  if (!Number.isInteger(start) || start < 0) throw invalid(`bad NextToken ${token}`);
  const size = max ?? pageSize;
  const end = start + size;
  return {
    items: items.slice(start, end),
    next: end < items.length ? Buffer.from(String(end)).toString('base64') : undefined,
  };
}

/**
 * Installs the fake on `client` (a new `GlueClient` in `us-east-1` by default).
 * @param options.pageSize default page size of listing calls (default 3, to exercise pagination).
 * @param options.now the fake's clock for `CreateTime`/`UpdateTime` (default: the system clock).
 */
export function installFakeGlue(
  options: { client?: GlueClient; pageSize?: number; now?: () => Date } = {},
): FakeGlue {
  const client =
    options.client ??
    new GlueClient({ region: 'us-east-1', credentials: { accessKeyId: 'FAKE', secretAccessKey: 'FAKE' } });
  const pageSize = options.pageSize ?? 3;
  const now = options.now ?? (() => new Date());
  const state: FakeGlueState = { databases: new Map(), tables: new Map() };
  const mock = mockClient(client);
  const faults = new Map<string, (input: unknown) => Error | undefined>();
  // biome-ignore lint/suspicious/noExplicitAny: command inputs are typed by each handler's use
  const on = (command: { name: string }, handler: (input: any) => Promise<unknown>): void => {
    // biome-ignore lint/suspicious/noExplicitAny: aws-sdk-client-mock's `on` takes any command class
    mock.on(command as any).callsFake(async (input: unknown) => {
      const fault = faults.get(command.name)?.(input);
      if (fault) throw fault;
      return handler(input);
    });
  };

  const database = (name: string | undefined): Map<string, FakeGlueTable> => {
    const key = (name ?? '').toLowerCase();
    const tables = state.tables.get(key);
    if (!state.databases.has(key) || !tables) throw notFound(`Database ${key} not found.`);
    return tables;
  };
  const table = (db: string | undefined, name: string | undefined): FakeGlueTable => {
    const entry = database(db).get((name ?? '').toLowerCase());
    if (!entry) throw notFound(`Table ${(name ?? '').toLowerCase()} not found.`);
    return entry;
  };
  const current = (entry: FakeGlueTable): Table => entry.versions[entry.versions.length - 1]!;
  const toTable = (db: string, input: TableInput, versionId: string, created: Date): Table => ({
    ...clone(input),
    Name: (input.Name ?? '').toLowerCase(),
    DatabaseName: db,
    CreateTime: created,
    UpdateTime: now(),
    VersionId: versionId,
    IsRegisteredWithLakeFormation: false,
    CatalogId: '123456789012',
  });
  const toPartition = (db: string, tableName: string, input: PartitionInput, created: Date): Partition => ({
    ...clone(input),
    DatabaseName: db,
    TableName: tableName,
    CreationTime: created,
    CatalogId: '123456789012',
  });
  const checkValues = (entry: FakeGlueTable, values: string[] | undefined): string | undefined => {
    const keys = current(entry).PartitionKeys ?? [];
    if (!values || values.length !== keys.length) {
      return `The number of partition keys do not match the number of partition values`;
    }
    return undefined;
  };

  on(CreateDatabaseCommand, async (input) => {
    const name = (input.DatabaseInput?.Name ?? '').toLowerCase();
    if (!name) throw invalid('DatabaseInput.Name is required');
    if (state.databases.has(name))
      throw new AlreadyExistsException({ message: `Database already exists.`, ...meta });
    state.databases.set(name, { ...clone(input.DatabaseInput), Name: name, CreateTime: now() });
    state.tables.set(name, new Map());
    return {};
  });

  on(GetDatabasesCommand, async (input) => {
    const all = [...state.databases.values()].sort((a, b) => (a.Name! < b.Name! ? -1 : 1));
    const { items, next } = page(all, input.NextToken, input.MaxResults, pageSize);
    return { DatabaseList: clone(items), ...(next ? { NextToken: next } : {}) };
  });

  on(CreateTableCommand, async (input) => {
    const db = (input.DatabaseName ?? '').toLowerCase();
    const tables = database(db);
    const name = (input.TableInput?.Name ?? '').toLowerCase();
    if (!name) throw invalid('TableInput.Name is required');
    if (tables.has(name)) throw new AlreadyExistsException({ message: `Table already exists.`, ...meta });
    tables.set(name, {
      versions: [toTable(db, input.TableInput!, '0', now())],
      nextVersion: 1,
      partitions: new Map(),
    });
    return {};
  });

  mock
    .on(GetTableCommand)
    .callsFake(async (input) => ({ Table: clone(current(table(input.DatabaseName, input.Name))) }));

  on(GetTablesCommand, async (input) => {
    if (input.Expression) throw invalid('the fake Glue does not filter GetTables by Expression');
    const tables = [...database(input.DatabaseName).values()].map(current);
    const { items, next } = page(tables, input.NextToken, input.MaxResults, pageSize);
    return { TableList: clone(items), ...(next ? { NextToken: next } : {}) };
  });

  on(UpdateTableCommand, async (input) => {
    const db = (input.DatabaseName ?? '').toLowerCase();
    const entry = table(db, input.TableInput?.Name);
    const latest = current(entry);
    if (input.VersionId !== undefined && input.VersionId !== latest.VersionId) {
      throw new ConcurrentModificationException({
        message: `Table version ${input.VersionId} is not the current version ${latest.VersionId}`,
        ...meta,
      });
    }
    if (input.SkipArchive) {
      entry.versions[entry.versions.length - 1] = toTable(
        db,
        input.TableInput!,
        latest.VersionId!,
        latest.CreateTime!,
      );
    } else {
      entry.versions.push(toTable(db, input.TableInput!, String(entry.nextVersion++), latest.CreateTime!));
    }
    return {};
  });

  on(GetTableVersionsCommand, async (input) => {
    const entry = table(input.DatabaseName, input.TableName);
    const versions = [...entry.versions].reverse().map((t) => ({ Table: t, VersionId: t.VersionId }));
    const { items, next } = page(versions, input.NextToken, input.MaxResults, pageSize);
    return { TableVersions: clone(items), ...(next ? { NextToken: next } : {}) };
  });

  on(DeleteTableCommand, async (input) => {
    const tables = database(input.DatabaseName);
    const name = (input.Name ?? '').toLowerCase();
    if (!tables.has(name)) throw notFound(`Table ${name} not found.`);
    tables.delete(name);
    return {};
  });

  on(BatchCreatePartitionCommand, async (input) => {
    const list = input.PartitionInputList ?? [];
    if (list.length > 100) throw invalid('PartitionInputList: at most 100 items');
    const db = (input.DatabaseName ?? '').toLowerCase();
    const entry = table(db, input.TableName);
    const errors = [];
    for (const p of list) {
      const problem = checkValues(entry, p.Values);
      const key = valuesKey(p.Values);
      if (problem) {
        errors.push({
          PartitionValues: p.Values,
          ErrorDetail: { ErrorCode: 'InvalidInputException', ErrorMessage: problem },
        });
      } else if (entry.partitions.has(key)) {
        errors.push({
          PartitionValues: p.Values,
          ErrorDetail: { ErrorCode: 'AlreadyExistsException', ErrorMessage: 'Partition already exists.' },
        });
      } else {
        entry.partitions.set(key, toPartition(db, current(entry).Name!, p, now()));
      }
    }
    return errors.length > 0 ? { Errors: errors } : {};
  });

  on(BatchUpdatePartitionCommand, async (input) => {
    const entries = input.Entries ?? [];
    if (entries.length > 100) throw invalid('Entries: at most 100 items');
    const db = (input.DatabaseName ?? '').toLowerCase();
    const entry = table(db, input.TableName);
    const errors = [];
    for (const e of entries) {
      const old = entry.partitions.get(valuesKey(e.PartitionValueList));
      if (!old) {
        errors.push({
          PartitionValueList: e.PartitionValueList,
          ErrorDetail: { ErrorCode: 'EntityNotFoundException', ErrorMessage: 'Partition not found.' },
        });
        continue;
      }
      const values = e.PartitionInput?.Values ?? e.PartitionValueList;
      const problem = checkValues(entry, values);
      if (problem) {
        errors.push({
          PartitionValueList: e.PartitionValueList,
          ErrorDetail: { ErrorCode: 'InvalidInputException', ErrorMessage: problem },
        });
        continue;
      }
      entry.partitions.delete(valuesKey(e.PartitionValueList));
      entry.partitions.set(
        valuesKey(values),
        toPartition(db, current(entry).Name!, { ...e.PartitionInput, Values: values }, old.CreationTime!),
      );
    }
    return errors.length > 0 ? { Errors: errors } : {};
  });

  on(BatchGetPartitionCommand, async (input) => {
    const wanted: { Values?: string[] }[] = input.PartitionsToGet ?? [];
    if (wanted.length > 1000) throw invalid('PartitionsToGet: at most 1000 items');
    const entry = table(input.DatabaseName, input.TableName);
    const found = wanted
      .map((w: { Values?: string[] }): Partition | undefined => entry.partitions.get(valuesKey(w.Values)))
      .filter((p: Partition | undefined): p is Partition => p !== undefined);
    return { Partitions: clone(found), UnprocessedKeys: [] };
  });

  on(BatchDeletePartitionCommand, async (input) => {
    const list = input.PartitionsToDelete ?? [];
    if (list.length > 25) throw invalid('PartitionsToDelete: at most 25 items');
    const entry = table(input.DatabaseName, input.TableName);
    const errors = [];
    for (const p of list) {
      if (!entry.partitions.delete(valuesKey(p.Values))) {
        errors.push({
          PartitionValues: p.Values,
          ErrorDetail: { ErrorCode: 'EntityNotFoundException', ErrorMessage: 'Partition not found.' },
        });
      }
    }
    return errors.length > 0 ? { Errors: errors } : {};
  });

  on(GetPartitionsCommand, async (input) => {
    if (input.Expression) throw invalid('the fake Glue does not filter GetPartitions by Expression');
    const entry = table(input.DatabaseName, input.TableName);
    // Glue promises no order: hash order, stable within one state.
    const all = [...entry.partitions.entries()]
      .map(([key, p]) => ({ hash: createHash('md5').update(key).digest('hex'), p }))
      .sort((a, b) => (a.hash < b.hash ? -1 : 1))
      .map(({ p }) => {
        const copy = clone(p);
        if (input.ExcludeColumnSchema && copy.StorageDescriptor) delete copy.StorageDescriptor.Columns;
        return copy;
      });
    const { items, next } = page(all, input.NextToken, input.MaxResults, pageSize);
    return { Partitions: items, ...(next ? { NextToken: next } : {}) };
  });

  return {
    client,
    state,
    mock,
    table: (db, name) => {
      const entry = state.tables.get(db.toLowerCase())?.get(name.toLowerCase());
      return entry ? clone(current(entry)) : undefined;
    },
    partitions: (db, name) =>
      [...(state.tables.get(db.toLowerCase())?.get(name.toLowerCase())?.partitions.values() ?? [])].map(
        clone,
      ),
    inject: (command, fault) => {
      if (fault) faults.set(command, fault);
      else faults.delete(command);
    },
    restore: () => mock.restore(),
  };
}
