import { randomUUID } from 'node:crypto';
import { DescribeTableCommand, DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDbKvStore } from '../../src/backends/aws/dynamodb-kv-store.ts';
import { BookmarkStore } from '../../src/core/bookmark.ts';
import { ConditionFailedError, LeaseHeldError, NotFoundError } from '../../src/core/errors.ts';
import { LEASES_TABLE, Lease } from '../../src/core/lease.ts';
import type { Item, KvTable } from '../../src/core/ports/kv-table.ts';
import { type DynaliteServer, startDynalite } from '../helpers/dynalite.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { kvTableConformance } from './kv-table.case.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

let dynalite: DynaliteServer;
const clients: DynamoDBClient[] = [];

beforeAll(async () => {
  dynalite = await startDynalite();
});

afterAll(async () => {
  for (const client of clients) client.destroy();
  await dynalite?.stop();
});

function newClient(): DynamoDBClient {
  const client = new DynamoDBClient({
    region: 'us-east-1',
    endpoint: dynalite.endpoint,
    credentials: { accessKeyId: 'dynalite', secretAccessKey: 'dynalite' },
  });
  clients.push(client);
  return client;
}

const PREFIX = 'sluice-test-';

// Every case uses random hash keys, so all share the tables of one dynalite server.
// dynalite has no DynamoDB Streams: the change-stream cases are skipped here, and readChanges is
// tested with aws-sdk-client-mock in src/backends/aws/dynamodb-kv-store.test.ts.
kvTableConformance(
  'aws (dynalite)',
  async () => ({
    kv: new DynamoDbKvStore(newClient(), { tablePrefix: PREFIX, createTables: true }),
    close: async () => {},
  }),
  // dynalite compares strings in conditions by UTF-16 code units; DynamoDB by UTF-8 bytes.
  { changeStream: false, utf8ConditionOrder: false },
);

describe('DynamoDbKvStore on dynalite', () => {
  let kv: DynamoDbKvStore;
  let items: KvTable;
  let run: string;

  beforeAll(async () => {
    kv = new DynamoDbKvStore(newClient(), { tablePrefix: PREFIX, createTables: true });
    items = await kv.table('race_items', { hashKey: { name: 'id', type: 'S' } });
    run = `r-${randomUUID()}`;
  });

  it('creates <tablePrefix><name> on demand (PAY_PER_REQUEST) and stores items as attribute values', async () => {
    const client = newClient();
    const { Table } = await client.send(new DescribeTableCommand({ TableName: `${PREFIX}race_items` }));
    expect(Table?.TableStatus).toBe('ACTIVE');
    expect(Table?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
    expect(Table?.KeySchema).toEqual([{ AttributeName: 'id', KeyType: 'HASH' }]);
    const id = `${run}-shape`;
    await items.put({ id, n: 1.5, e: '', b: true, z: null, l: [1, 'x'], m: { y: 2, a: 1 } });
    const { Item: raw } = await client.send(
      new GetItemCommand({ TableName: `${PREFIX}race_items`, Key: { id: { S: id } } }),
    );
    expect(raw).toEqual({
      id: { S: id },
      n: { N: '1.5' },
      e: { S: '' },
      b: { BOOL: true },
      z: { NULL: true },
      l: { L: [{ N: '1' }, { S: 'x' }] },
      m: { M: { a: { N: '1' }, y: { N: '2' } } },
    });
    expect(Object.keys(raw?.m?.M ?? {})).toEqual(['a', 'y']); // sorted, so equal maps compare equal
  });

  it('20 concurrent conditional creates of one key: exactly one wins, the rest get ConditionFailedError', async () => {
    const id = `${run}-create`;
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        items.put({ id, owner: i }, { condition: { op: 'not_exists' } }).then(() => i),
      ),
    );
    const winners = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    expect(winners).toHaveLength(1);
    const losers = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
    expect(losers).toHaveLength(19);
    for (const reason of losers) {
      expect(reason).toBeInstanceOf(ConditionFailedError);
      expect((reason as Error).message).toContain(`${PREFIX}race_items`);
      expect((reason as Error).message).toContain(id);
    }
    expect(await items.get({ id })).toEqual({ id, owner: winners[0]! });
  });

  it('optimistic version increments from 8 racing writers lose no update', async () => {
    const id = `${run}-counter`;
    await items.put({ id, version: 0, writers: [] });
    let conflicts = 0;
    const writer = async (w: number, increments: number) => {
      for (let done = 0; done < increments; ) {
        const current = (await items.get({ id })) as Item;
        const version = current.version as number;
        try {
          await items.put(
            { id, version: version + 1, writers: [...(current.writers as number[]), w] },
            { condition: { op: 'eq', attribute: 'version', value: version } },
          );
          done++;
        } catch (error) {
          expect(error).toBeInstanceOf(ConditionFailedError);
          conflicts++;
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, w) => writer(w, 5)));
    const final = (await items.get({ id })) as Item;
    expect(final.version).toBe(40);
    const writers = final.writers as number[];
    expect(writers).toHaveLength(40);
    for (let w = 0; w < 8; w++) expect(writers.filter((x) => x === w)).toHaveLength(5);
    expect(conflicts).toBeGreaterThan(0); // the writers did race
  });

  it('a missing table without createTables is a NotFoundError pointing at the CDK stack', async () => {
    const deployed = new DynamoDbKvStore(newClient(), { tablePrefix: PREFIX });
    const error = await deployed
      .table('never_created', { hashKey: { name: 'id', type: 'S' } })
      .catch((e) => e);
    expect(error).toBeInstanceOf(NotFoundError);
    expect((error as Error).message).toContain(`"${PREFIX}never_created"`);
    expect((error as Error).message).toMatch(/CDK stack/);
    // An existing table opens without createTables.
    const table = await deployed.table('race_items', { hashKey: { name: 'id', type: 'S' } });
    expect(await table.get({ id: `${run}-shape` })).toMatchObject({ n: 1.5 });
  });

  it('a key-schema mismatch names both schemas', async () => {
    const other = new DynamoDbKvStore(newClient(), { tablePrefix: PREFIX });
    await expect(
      other.table('race_items', { hashKey: { name: 'id', type: 'S' }, rangeKey: { name: 'r', type: 'N' } }),
    ).rejects.toThrow(
      `DynamoDB table "${PREFIX}race_items" (kv table "race_items") has key schema hash id (S), but was opened with hash id (S), range r (N)`,
    );
  });

  it('stream: true fails clearly where the endpoint has no DynamoDB Streams (dynalite)', async () => {
    await expect(
      kv.table('streamed', { hashKey: { name: 'id', type: 'S' } }, { stream: true }),
    ).rejects.toThrow(/no stream.*NEW_AND_OLD_IMAGES/);
    const deployed = new DynamoDbKvStore(newClient(), { tablePrefix: PREFIX });
    await expect(
      deployed.table('race_items', { hashKey: { name: 'id', type: 'S' } }, { stream: true }),
    ).rejects.toThrow(/"sluice-test-race_items".*has no stream/);
  });

  it('readChanges on a table without a stream throws', async () => {
    await expect(items.readChanges({ type: 'TRIM_HORIZON' })).rejects.toThrow(/stream/);
  });

  it('rejects a cursor of another table', async () => {
    const numbers = await kv.table('conformance_numbers', {
      hashKey: { name: 'h', type: 'S' },
      rangeKey: { name: 'r', type: 'N' },
    });
    for (let r = 0; r < 3; r++) await numbers.put({ h: run, r });
    const first = await numbers.query(run, { limit: 2 });
    expect(first.items.map((item) => item.r)).toEqual([0, 1]);
    expect(first.cursor).toBeDefined();
    await expect(items.scan({ cursor: first.cursor! })).rejects.toThrow(/race_items.*invalid scan cursor/);
    await expect(numbers.scan({ cursor: 'not-a-cursor' })).rejects.toThrow(/invalid scan cursor/);
    const second = await numbers.query(run, { limit: 2, cursor: first.cursor! });
    expect(second.items.map((item) => item.r)).toEqual([2]);
  });

  it('runs a lease through acquire, contention, expiry takeover and release', async () => {
    const clock = new ManualClock(new Date('2026-03-01T12:00:00.000Z'));
    const name = `${run}-pipeline`;
    const a = { id: 'run-a', host: 'host-a', pid: 1 };
    const b = { id: 'run-b', host: 'host-b', pid: 2 };
    const leaseA = await Lease.acquire(kv, name, a, { clock, ttlMs: 60_000 });
    await expect(Lease.acquire(kv, name, b, { clock, ttlMs: 60_000 })).rejects.toThrow(LeaseHeldError);
    const leases = await kv.table(LEASES_TABLE, { hashKey: { name: 'name', type: 'S' } });
    expect(await leases.get({ name })).toMatchObject({
      owner: 'run-a',
      expires_at: Date.parse('2026-03-01T12:01:00.000Z'),
    });
    clock.set(new Date('2026-03-01T12:01:00.001Z')); // past a's expiry
    const leaseB = await Lease.acquire(kv, name, b, { clock, ttlMs: 60_000 });
    await expect(leaseA.renew()).rejects.toThrow(LeaseHeldError);
    await leaseA.release(); // not a's any more: leaves b's lease alone
    expect(await leases.get({ name })).toMatchObject({ owner: 'run-b' });
    await leaseB.release();
    expect(await leases.get({ name })).toBeUndefined();
  });

  it('moves a bookmark with conditional writes and lists run history newest first', async () => {
    const clock = new ManualClock(new Date('2026-03-01T12:00:00.000Z'));
    const bookmarks = await BookmarkStore.open(kv, clock);
    const job = `${run}-job`;
    await bookmarks.ensureJob(job, { baseline_days: 3 });
    await bookmarks.record(
      job,
      { hour: '2026-03-01-10' },
      { advance: true, expected: undefined, runId: 'r1' },
    );
    clock.set(new Date('2026-03-01T13:00:00.000Z'));
    await bookmarks.record(
      job,
      { hour: '2026-03-01-11' },
      { advance: true, expected: { hour: '2026-03-01-10' }, runId: 'r2' },
    );
    // A writer that started from the old bookmark loses.
    await expect(
      bookmarks.record(
        job,
        { hour: '2026-03-01-12' },
        { advance: true, expected: { hour: '2026-03-01-10' }, runId: 'r3' },
      ),
    ).rejects.toThrow(ConditionFailedError);
    expect(await bookmarks.current(job)).toEqual({ hour: '2026-03-01-11' });
    const history = await bookmarks.history(job);
    expect(history.map((row) => [row.job_run_time, row.run_id])).toEqual([
      ['2026-03-01T13:00:00.000Z', 'r2'],
      ['2026-03-01T12:00:00.000Z', 'r1'],
    ]);
  });
});
