// The aws backend's warehouse (Redshift Data API) against a FAKE of the Data API
// (test/helpers/fake-redshift-data.ts: aws-sdk-client-mock in front of a real PostgreSQL). This is
// not Redshift: SQL semantics are PostgreSQL's; the requests are checked against the Data API reference.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  BatchExecuteStatementCommand,
  DescribeStatementCommand,
  ExecuteStatementCommand,
} from '@aws-sdk/client-redshift-data';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RedshiftDataWarehouse } from '../../src/backends/aws/redshift-warehouse.ts';
import { LocalObjectStore } from '../../src/backends/local/local-object-store.ts';
import { PostgresServer } from '../../src/backends/local/postgres-server.ts';
import { WarehouseError } from '../../src/core/ports/warehouse.ts';
import {
  copyOnce,
  createTableIfMissing,
  LOADS_TABLE,
  LOADS_TABLE_DDL,
} from '../../src/engines/warehouse/copy-once.ts';
import { TEST_BUCKETS } from '../helpers/aws-buckets.ts';
import { FakeRedshiftData } from '../helpers/fake-redshift-data.ts';
import { warehouseConformance } from './warehouse.case.ts';

const buckets = TEST_BUCKETS;
const target = { workgroupName: 'sluice-wg', database: 'dev' };
const copyRoleArn = 'arn:aws:iam::123456789012:role/sluice-redshift-copy';

let home: string;
let server: PostgresServer;
let objectStore: LocalObjectStore;

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'sluice-aws-redshift-'));
  server = await PostgresServer.start(home);
  objectStore = new LocalObjectStore(path.join(home, 'lake'));
});

afterAll(async () => {
  if (home) {
    await PostgresServer.stop(home).catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  }
});

async function openFake(): Promise<{ fake: FakeRedshiftData; warehouse: RedshiftDataWarehouse }> {
  const fake = await FakeRedshiftData.start({
    connectionString: server.connectionString,
    objectStore,
    buckets,
    ...target,
  });
  const warehouse = new RedshiftDataWarehouse(fake.client, { ...target, copyRoleArn, buckets, pollMs: 1 });
  return { fake, warehouse };
}

warehouseConformance('aws (Redshift Data API, fake over PostgreSQL)', async () => {
  const { fake, warehouse } = await openFake();
  return {
    warehouse,
    objectStore,
    close: async () => {
      await warehouse.close();
      await fake.close();
    },
  };
});

describe('Redshift Data API requests (exact inputs, per the Data API reference)', () => {
  let fake: FakeRedshiftData;
  let warehouse: RedshiftDataWarehouse;
  const table = `rs_${process.pid}_exact`;

  beforeAll(async () => {
    ({ fake, warehouse } = await openFake());
    await warehouse.execute(`DROP TABLE IF EXISTS ${table}`);
    await warehouse.execute(
      `CREATE TABLE ${table} (id bigint NOT NULL, label varchar(32), at timestamp, ok boolean)`,
    );
  });
  afterAll(async () => {
    await warehouse?.execute(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
    await warehouse?.execute(`DROP TABLE IF EXISTS ${LOADS_TABLE}`).catch(() => undefined);
    await fake?.close();
  });
  beforeEach(() => {
    fake.mock.resetHistory();
  });

  const executeInputs = () => fake.mock.commandCalls(ExecuteStatementCommand).map((c) => c.args[0].input);

  it('execute: one ExecuteStatement with WorkgroupName, Database, :pN parameters as text; NULL and empty text inlined', async () => {
    const result = await warehouse.execute(
      `INSERT INTO ${table} (id, label, at, ok) VALUES ($1, $2, $3, $4), ($5, $6, $7, $8)`,
      [9007199254740993n, "it's $1", new Date('2015-01-01T00:00:00.000Z'), true, 2, '', null, null],
    );
    expect(result).toEqual({ rowCount: 2 });
    expect(executeInputs()).toEqual([
      {
        WorkgroupName: 'sluice-wg',
        Database: 'dev',
        Sql: `INSERT INTO ${table} (id, label, at, ok) VALUES (:p1, :p2, :p3, :p4), (:p5, '', NULL, NULL)`,
        Parameters: [
          { name: 'p1', value: '9007199254740993' },
          { name: 'p2', value: "it's $1" },
          { name: 'p3', value: '2015-01-01T00:00:00.000Z' },
          { name: 'p4', value: 'true' },
          { name: 'p5', value: '2' },
        ],
      },
    ]);
    // Polled until FINISHED: the fake answers SUBMITTED first.
    expect(fake.mock.commandCalls(DescribeStatementCommand).length).toBeGreaterThanOrEqual(2);
    const rows = (await warehouse.query(`SELECT id, label, at, ok FROM ${table} ORDER BY id`)).rows;
    expect(rows).toEqual([
      { id: 2, label: '', at: null, ok: null },
      { id: 9007199254740993n, label: "it's $1", at: '2015-01-01T00:00:00.000Z', ok: true },
    ]);
  });

  it('transaction: BEGIN opens a session (SessionKeepAliveSeconds); later statements carry only SessionId; COMMIT', async () => {
    const seen = await warehouse.transaction(async (tx) => {
      await tx.execute(`INSERT INTO ${table} (id, label) VALUES ($1, $2)`, [10, 'ten']);
      return (await tx.query(`SELECT count(*) AS n FROM ${table} WHERE id = $1`, [10])).rows[0]?.n;
    });
    expect(seen).toBe(1);
    const inputs = executeInputs();
    const sessionId = inputs[1]?.SessionId;
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(inputs).toEqual([
      { WorkgroupName: 'sluice-wg', Database: 'dev', Sql: 'BEGIN', SessionKeepAliveSeconds: 300 },
      {
        Sql: `INSERT INTO ${table} (id, label) VALUES (:p1, :p2)`,
        Parameters: [
          { name: 'p1', value: '10' },
          { name: 'p2', value: 'ten' },
        ],
        SessionId: sessionId,
      },
      {
        Sql: `SELECT count(*) AS n FROM ${table} WHERE id = :p1`,
        Parameters: [{ name: 'p1', value: '10' }],
        SessionId: sessionId,
      },
      { Sql: 'COMMIT', SessionId: sessionId },
    ]);
  });

  it('transaction: ROLLBACK in the session when work throws', async () => {
    const boom = new Error('boom');
    await expect(
      warehouse.transaction(async (tx) => {
        await tx.execute(`DELETE FROM ${table}`);
        throw boom;
      }),
    ).rejects.toBe(boom);
    const inputs = executeInputs();
    expect(inputs.at(-1)).toEqual({ Sql: 'ROLLBACK', SessionId: inputs[1]?.SessionId });
    expect((await warehouse.query(`SELECT count(*) AS n FROM ${table}`)).rows[0]?.n).toBe(3);
  });

  it('copyFrom: COPY ... FROM s3://<staging bucket>/<key> IAM_ROLE ... FORMAT AS CSV EMPTYASNULL, rows from ResultRows', async () => {
    const ref = { layer: 'staging' as const, key: `rs-${process.pid}/exact.csv` };
    await objectStore.put(ref, '20,twenty,2024-03-01 12:00:00,true\n21,,,\n');
    const rows = await warehouse.transaction((tx) => tx.copyFrom(table, ['id', 'label', 'at', 'ok'], ref));
    expect(rows).toBe(2);
    expect(executeInputs()[1]).toEqual({
      Sql: `COPY ${table} (id, label, at, ok) FROM 's3://sluice-test-staging/rs-${process.pid}/exact.csv' IAM_ROLE 'arn:aws:iam::123456789012:role/sluice-redshift-copy' FORMAT AS CSV EMPTYASNULL`,
      SessionId: executeInputs()[0]?.SessionId ?? executeInputs()[1]?.SessionId,
    });
    expect(
      (await warehouse.query(`SELECT id, label, at, ok FROM ${table} WHERE id BETWEEN 20 AND 29 ORDER BY id`))
        .rows,
    ).toEqual([
      { id: 20, label: 'twenty', at: '2024-03-01T12:00:00.000Z', ok: true },
      { id: 21, label: null, at: null, ok: null },
    ]);
    await objectStore.delete(ref);
  });

  it('batch: one BatchExecuteStatement with per-statement parameter names, one transaction', async () => {
    const counts = await warehouse.batch([
      { sql: `DELETE FROM ${table} WHERE id = $1`, params: [21] },
      { sql: `INSERT INTO ${table} (id, label) VALUES ($1, $2)`, params: [30, 'thirty'] },
    ]);
    expect(counts).toEqual([1, 1]);
    expect(fake.mock.commandCalls(BatchExecuteStatementCommand).map((c) => c.args[0].input)).toEqual([
      {
        WorkgroupName: 'sluice-wg',
        Database: 'dev',
        Sqls: [
          `DELETE FROM ${table} WHERE id = :s1p1`,
          `INSERT INTO ${table} (id, label) VALUES (:s2p1, :s2p2)`,
        ],
        Parameters: [
          { name: 's1p1', value: '21' },
          { name: 's2p1', value: '30' },
          { name: 's2p2', value: 'thirty' },
        ],
      },
    ]);
    // A failing statement rolls back the whole batch and is named.
    const error = await warehouse
      .batch([
        { sql: `DELETE FROM ${table} WHERE id = $1`, params: [30] },
        { sql: `INSERT INTO ${table} (id) VALUES (NULL)` },
      ])
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(WarehouseError);
    expect((error as WarehouseError).sqlState).toBe('23502');
    expect((error as WarehouseError).message).toContain('INSERT INTO');
    expect((await warehouse.query(`SELECT label FROM ${table} WHERE id = 30`)).rows).toEqual([
      { label: 'thirty' },
    ]);
  });

  it("runs copy-once (LOCK, SELECT, COPY, INSERT in one session) and loads a file's content once", async () => {
    await createTableIfMissing(warehouse, LOADS_TABLE_DDL);
    const ref = { layer: 'staging' as const, key: `rs-${process.pid}/once.csv` };
    await objectStore.put(ref, '40,forty,,\n41,forty-one,,\n');
    const input = {
      table,
      columns: ['id', 'label', 'at', 'ok'],
      sha256: 'a'.repeat(64),
      sourceKey: 'landing/once.csv',
      staging: ref,
      runId: 'run-1',
      at: new Date('2024-05-01T00:00:00.000Z'),
    };
    expect(await copyOnce(warehouse, input)).toEqual({ status: 'loaded', rows: 2 });
    expect(await copyOnce(warehouse, { ...input, runId: 'run-2' })).toEqual({
      status: 'already-loaded',
      rows: 2,
      previousRun: 'run-1',
    });
    expect((await warehouse.query(`SELECT count(*) AS n FROM ${table} WHERE id IN (40, 41)`)).rows).toEqual([
      { n: 2 },
    ]);
    await objectStore.delete(ref);
  });
});
