import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectRef } from '../../src/core/layer.ts';
import type { ObjectStore } from '../../src/core/ports/object-store.ts';
import { type Warehouse, WarehouseError } from '../../src/core/ports/warehouse.ts';

/** What the warehouse suite needs from a backend. */
export interface WarehouseFixture {
  readonly warehouse: Warehouse;
  /** Where staging objects for `copyFrom` are put. */
  readonly objectStore: ObjectStore;
  close(): Promise<void>;
}

/** Rejects with a {@link WarehouseError}; returns it. */
async function warehouseError(promise: Promise<unknown>): Promise<WarehouseError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WarehouseError);
  return error as WarehouseError;
}

/**
 * Warehouse contract, for every backend (PostgreSQL locally, Redshift on AWS): the SQL subset of
 * docs/warehouse.md, `$n` parameters, exact bigints, float values, atomic transactions (commit,
 * rollback on throw, isolation, concurrency), CSV `copyFrom` of a staging object (RFC 4180 quoting,
 * empty unquoted field = NULL) that fails whole and names the rejected line, errors with SQLSTATE.
 *
 * Tables have random names (`wc_<hex>_...`) and are dropped at the end, so the suite can run against
 * a shared warehouse. One fixture serves the whole suite (a warehouse is slow to start).
 */
export function warehouseConformance(backend: string, open: () => Promise<WarehouseFixture>): void {
  describe(`warehouse conformance: ${backend}`, () => {
    let fixture: WarehouseFixture;
    let wh: Warehouse;
    const prefix = `wc_${randomBytes(4).toString('hex')}`;
    const tables: string[] = [];
    const objects: ObjectRef[] = [];
    let counter = 0;

    /** A fresh table name, dropped in afterAll. */
    const table = (label: string) => {
      const name = `${prefix}_${label}_${++counter}`;
      tables.push(name);
      return name;
    };

    /** The tolls shape (REFERENCE.md section 2): NOT NULL strings, a bigint and a real. */
    const createTolls = async (name: string) => {
      await wh.execute(
        `CREATE TABLE IF NOT EXISTS ${name} (
           transaction_id bigint,
           transaction_date varchar(10) NOT NULL,
           toll_booth varchar(64) NOT NULL,
           vehicle_make varchar(64) NOT NULL,
           vehicle_category varchar(256) NOT NULL,
           transaction_amount real
         )`,
      );
    };
    const tollColumns = [
      'transaction_id',
      'transaction_date',
      'toll_booth',
      'vehicle_make',
      'vehicle_category',
      'transaction_amount',
    ];

    const putCsv = async (label: string, text: string): Promise<ObjectRef> => {
      const ref: ObjectRef = { layer: 'staging', key: `${prefix}/${label}-${++counter}.csv` };
      await fixture.objectStore.put(ref, text);
      objects.push(ref);
      return ref;
    };

    const count = async (name: string) => {
      const result = await wh.query(`SELECT count(*) AS n FROM ${name}`);
      return result.rows[0]?.n;
    };

    beforeAll(async () => {
      fixture = await open();
      wh = fixture.warehouse;
    });

    afterAll(async () => {
      if (!fixture) return;
      try {
        for (const name of tables) await wh.execute(`DROP TABLE IF EXISTS ${name}`);
        for (const ref of objects) await fixture.objectStore.delete(ref);
      } finally {
        await fixture.close();
      }
    });

    it('names its engine', () => {
      expect(['postgres', 'redshift']).toContain(wh.engine);
    });

    it('runs DDL, parameterized writes and queries; NOT NULL is enforced with SQLSTATE 23502', async () => {
      const name = table('basic');
      await expect(
        wh.execute(`CREATE TABLE ${name} (id bigint NOT NULL, label varchar(32) NOT NULL)`),
      ).resolves.toEqual({
        rowCount: 0,
      });
      // IF NOT EXISTS is in the common subset: a second create is a no-op.
      await wh.execute(`CREATE TABLE IF NOT EXISTS ${name} (id bigint NOT NULL, label varchar(32) NOT NULL)`);
      const inserted = await wh.execute(
        `INSERT INTO ${name} (id, label) VALUES ($1, $2), ($3, $4), ($5, $6)`,
        [1, 'one', 2, 'it\'s, "two"', 3, 'drei ü'],
      );
      expect(inserted.rowCount).toBe(3);
      const result = await wh.query(`SELECT id, label FROM ${name} WHERE id >= $1 ORDER BY id`, [2]);
      expect(result.rows).toEqual([
        { id: 2, label: 'it\'s, "two"' },
        { id: 3, label: 'drei ü' },
      ]);
      expect(result.columns.map((c) => c.name)).toEqual(['id', 'label']);
      expect(result.truncated).toBe(false);
      expect((await wh.execute(`UPDATE ${name} SET label = $1 WHERE id < $2`, ['small', 3])).rowCount).toBe(
        2,
      );
      expect((await wh.execute(`DELETE FROM ${name} WHERE id = $1`, [1])).rowCount).toBe(1);

      const error = await warehouseError(
        wh.execute(`INSERT INTO ${name} (id, label) VALUES ($1, $2)`, [4, null]),
      );
      expect(error.sqlState).toBe('23502');
      expect(error.retryable).toBe(false);
      expect(error.message).toMatch(/label/);
      expect(await count(name)).toBe(2);
    });

    it('cuts results at maxRows and says so', async () => {
      const name = table('rows');
      await wh.execute(`CREATE TABLE ${name} (id bigint NOT NULL)`);
      await wh.execute(`INSERT INTO ${name} (id) VALUES (1), (2), (3), (4), (5)`);
      const cut = await wh.query(`SELECT id FROM ${name} ORDER BY id`, [], { maxRows: 2 });
      expect(cut.rows).toEqual([{ id: 1 }, { id: 2 }]);
      expect(cut.truncated).toBe(true);
      const withParams = await wh.query(`SELECT id FROM ${name} WHERE id >= $1 ORDER BY id`, [3], {
        maxRows: 2,
      });
      expect(withParams).toMatchObject({ rows: [{ id: 3 }, { id: 4 }], truncated: true });
      const all = await wh.query(`SELECT id FROM ${name} ORDER BY id`, [], { maxRows: 5 });
      expect(all.rows).toHaveLength(5);
      expect(all.truncated).toBe(false);
    });

    it('keeps integers beyond 2^53 exact as bigint (both ways) and smaller ones as numbers', async () => {
      const name = table('big');
      await wh.execute(`CREATE TABLE ${name} (k varchar(8) NOT NULL, v bigint)`);
      const big = 2n ** 53n + 1n;
      const values: Array<[string, bigint | number | null]> = [
        ['big', big],
        ['neg', -big],
        ['max', 9223372036854775807n],
        ['min', -9223372036854775808n],
        ['safe', Number.MAX_SAFE_INTEGER],
        ['small', 42],
        ['null', null],
      ];
      for (const [k, v] of values) await wh.execute(`INSERT INTO ${name} (k, v) VALUES ($1, $2)`, [k, v]);
      const rows = (await wh.query(`SELECT k, v FROM ${name}`)).rows;
      const byKey = Object.fromEntries(rows.map((r) => [r.k as string, r.v]));
      expect(byKey).toEqual({
        big,
        neg: -big,
        max: 9223372036854775807n,
        min: -9223372036854775808n,
        safe: Number.MAX_SAFE_INTEGER,
        small: 42,
        null: null,
      });
      expect(typeof byKey.big).toBe('bigint');
      expect(typeof byKey.small).toBe('number');
      // A bigint parameter compares exactly (2^53 + 1 is not 2^53).
      const found = await wh.query(`SELECT k FROM ${name} WHERE v = $1`, [big]);
      expect(found.rows).toEqual([{ k: 'big' }]);
      // count(*) is a bigint in both engines: a plain number here.
      expect(await count(name)).toBe(7);
    });

    it('returns real and double precision values as numbers, and timestamps as ISO-8601 UTC', async () => {
      const name = table('floats');
      await wh.execute(`CREATE TABLE ${name} (id bigint NOT NULL, r real, d double precision, ts timestamp)`);
      await wh.execute(`INSERT INTO ${name} (id, r, d, ts) VALUES ($1, $2, $3, $4), ($5, $6, $7, $8)`, [
        1,
        1.5,
        0.1,
        '2024-03-01 12:34:56.789',
        2,
        -0.25,
        123456789.123456,
        new Date('2015-01-01T00:00:00.000Z'),
      ]);
      const rows = (await wh.query(`SELECT id, r, d, ts FROM ${name} ORDER BY id`)).rows;
      expect(rows).toEqual([
        { id: 1, r: 1.5, d: 0.1, ts: '2024-03-01T12:34:56.789Z' },
        { id: 2, r: -0.25, d: 123456789.123456, ts: '2015-01-01T00:00:00.000Z' },
      ]);
      // A real keeps float precision (~7 digits): 10.99 comes back within float32 rounding.
      await wh.execute(`INSERT INTO ${name} (id, r) VALUES ($1, $2)`, [3, 10.99]);
      const r = (await wh.query(`SELECT r FROM ${name} WHERE id = 3`)).rows[0]?.r;
      expect(typeof r).toBe('number');
      expect(Math.abs((r as number) - 10.99)).toBeLessThan(1e-5);
    });

    it('commits a transaction: every statement becomes visible together', async () => {
      const name = table('commit');
      await wh.execute(`CREATE TABLE ${name} (id bigint NOT NULL, label varchar(16) NOT NULL)`);
      const result = await wh.transaction(async (tx) => {
        await tx.execute(`INSERT INTO ${name} (id, label) VALUES ($1, $2)`, [1, 'a']);
        await tx.execute(`INSERT INTO ${name} (id, label) VALUES ($1, $2)`, [2, 'b']);
        // Its own writes are visible inside; others do not see them before COMMIT.
        expect((await tx.query(`SELECT count(*) AS n FROM ${name}`)).rows[0]?.n).toBe(2);
        expect(await count(name)).toBe(0);
        return 'done';
      });
      expect(result).toBe('done');
      expect(await count(name)).toBe(2);
    });

    it('rolls back on throw: the error is rethrown as is and nothing is visible, DDL included', async () => {
      const name = table('rollback');
      const created = table('created_in_tx');
      await wh.execute(`CREATE TABLE ${name} (id bigint NOT NULL)`);
      await wh.execute(`INSERT INTO ${name} (id) VALUES (1)`);
      const boom = new Error('boom');
      await expect(
        wh.transaction(async (tx) => {
          await tx.execute(`INSERT INTO ${name} (id) VALUES ($1)`, [2]);
          await tx.execute(`DELETE FROM ${name} WHERE id = $1`, [1]);
          await tx.execute(`CREATE TABLE ${created} (id bigint)`);
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect((await wh.query(`SELECT id FROM ${name}`)).rows).toEqual([{ id: 1 }]);
      expect((await warehouseError(wh.query(`SELECT * FROM ${created}`))).sqlState).toBe('42P01');
    });

    it('never commits a transaction in which a statement failed, even when work caught the error', async () => {
      const name = table('caught');
      await wh.execute(`CREATE TABLE ${name} (id bigint NOT NULL)`);
      const error = await warehouseError(
        wh.transaction(async (tx) => {
          await tx.execute(`INSERT INTO ${name} (id) VALUES (1)`);
          await tx.execute(`INSERT INTO ${name} (id) VALUES (NULL)`).catch(() => undefined);
          return 'swallowed';
        }),
      );
      expect(error.sqlState).toMatch(/^(25P02|23502)$/);
      expect(await count(name)).toBe(0);
    });

    it('refuses statements on a transaction that has ended', async () => {
      let kept: Parameters<Parameters<Warehouse['transaction']>[0]>[0] | undefined;
      await wh.transaction(async (tx) => {
        kept = tx;
      });
      await expect(kept?.query('SELECT 1 AS one')).rejects.toBeInstanceOf(WarehouseError);
    });

    it('runs concurrent transactions in isolation and commits each', async () => {
      const name = table('concurrent');
      await wh.execute(`CREATE TABLE ${name} (id bigint NOT NULL, worker bigint NOT NULL)`);
      // A holds its insert uncommitted while B commits: B never sees A's row, A then commits.
      let releaseA!: () => void;
      const aMayCommit = new Promise<void>((resolve) => {
        releaseA = resolve;
      });
      let aInserted!: () => void;
      const aHasInserted = new Promise<void>((resolve) => {
        aInserted = resolve;
      });
      const a = wh.transaction(async (tx) => {
        await tx.execute(`INSERT INTO ${name} (id, worker) VALUES (1, 1)`);
        aInserted();
        await aMayCommit;
      });
      await aHasInserted;
      await wh.transaction(async (tx) => {
        expect((await tx.query(`SELECT count(*) AS n FROM ${name}`)).rows[0]?.n).toBe(0);
        await tx.execute(`INSERT INTO ${name} (id, worker) VALUES (2, 2)`);
      });
      expect(await count(name)).toBe(1);
      releaseA();
      await a;
      expect(await count(name)).toBe(2);

      // Eight at once, each several statements: all rows, none lost or doubled.
      await Promise.all(
        Array.from({ length: 8 }, (_, w) =>
          wh.transaction(async (tx) => {
            for (let i = 0; i < 5; i++) {
              await tx.execute(`INSERT INTO ${name} (id, worker) VALUES ($1, $2)`, [
                100 + w * 10 + i,
                10 + w,
              ]);
            }
          }),
        ),
      );
      const perWorker = await wh.query(
        `SELECT worker, count(*) AS n FROM ${name} WHERE worker >= 10 GROUP BY worker ORDER BY worker`,
      );
      expect(perWorker.rows).toEqual(Array.from({ length: 8 }, (_, w) => ({ worker: 10 + w, n: 5 })));
    });

    it('copies a CSV object: quoted commas, quotes and newlines, empty unquoted fields as NULL', async () => {
      const name = table('copy');
      await createTolls(name);
      const csv =
        [
          '1,2024/03/01,buckley_rd,Toyota,car,2.5',
          '2,2024/03/02,82nd_st,"Ford, Motor ""Co""","truck,bus",',
          '3,2024/03/03,royal_ave,"multi',
          'line make",car,10',
          ',2024/03/04,york_rd,BMW,car,0.01',
        ].join('\n') + '\n';
      const ref = await putCsv('tolls', csv);
      const copied = await wh.transaction((tx) => tx.copyFrom(name, tollColumns, ref));
      expect(copied).toBe(4);
      const rows = (await wh.query(`SELECT * FROM ${name} ORDER BY transaction_date`)).rows;
      expect(rows).toEqual([
        {
          transaction_id: 1,
          transaction_date: '2024/03/01',
          toll_booth: 'buckley_rd',
          vehicle_make: 'Toyota',
          vehicle_category: 'car',
          transaction_amount: 2.5,
        },
        {
          transaction_id: 2,
          transaction_date: '2024/03/02',
          toll_booth: '82nd_st',
          vehicle_make: 'Ford, Motor "Co"',
          vehicle_category: 'truck,bus',
          transaction_amount: null,
        },
        {
          transaction_id: 3,
          transaction_date: '2024/03/03',
          toll_booth: 'royal_ave',
          vehicle_make: 'multi\nline make',
          vehicle_category: 'car',
          transaction_amount: 10,
        },
        {
          transaction_id: null,
          transaction_date: '2024/03/04',
          toll_booth: 'york_rd',
          vehicle_make: 'BMW',
          vehicle_category: 'car',
          transaction_amount: expect.closeTo(0.01, 6),
        },
      ]);
    });

    it('fails a copy as a whole on a NOT NULL violation, names the line, and rolls back the transaction', async () => {
      const name = table('copy_bad');
      await createTolls(name);
      await wh.execute(
        `INSERT INTO ${name} (transaction_id, transaction_date, toll_booth, vehicle_make, vehicle_category)
         VALUES (0, '2024/01/01', 'golf_rd', 'Kia', 'car')`,
      );
      const csv = [
        '1,2024/03/01,buckley_rd,Toyota,car,2.5',
        '2,2024/03/02,82nd_st,Ford,truck,1',
        '3,2024/03/03,,Audi,car,3', // empty toll_booth: NULL in a NOT NULL column
        '4,2024/03/04,york_rd,BMW,car,4',
      ].join('\n');
      const ref = await putCsv('bad', `${csv}\n`);
      const error = await warehouseError(
        wh.transaction(async (tx) => {
          await tx.execute(`DELETE FROM ${name}`);
          await tx.copyFrom(name, tollColumns, ref);
        }),
      );
      expect(error.sqlState).toBe('23502');
      expect(error.message).toMatch(/\bline 3\b/);
      expect(error.message).toContain('toll_booth');
      // Neither the delete nor any copied row is visible.
      expect((await wh.query(`SELECT transaction_id FROM ${name}`)).rows).toEqual([{ transaction_id: 0 }]);
    });

    it('fails a copy of a missing object, or into a missing table, with a WarehouseError', async () => {
      const name = table('copy_missing');
      await createTolls(name);
      await warehouseError(
        wh.transaction((tx) =>
          tx.copyFrom(name, tollColumns, { layer: 'staging', key: `${prefix}/nope.csv` }),
        ),
      );
      const ref = await putCsv('ok', '1,2024/03/01,buckley_rd,Toyota,car,2.5\n');
      const error = await warehouseError(
        wh.transaction((tx) => tx.copyFrom(`${prefix}_absent`, tollColumns, ref)),
      );
      expect(error.sqlState).toBe('42P01');
      expect(await count(name)).toBe(0);
    });

    it('reports SQL errors with their SQLSTATE and exit code 6', async () => {
      const syntax = await warehouseError(wh.query('SELEC 1'));
      expect(syntax.sqlState).toBe('42601');
      expect(syntax.exitCode).toBe(6);
      expect(syntax.retryable).toBe(false);
      const missing = await warehouseError(wh.query(`SELECT * FROM ${prefix}_no_such_table`));
      expect(missing.sqlState).toBe('42P01');
      expect(missing.message).toContain(`${prefix}_no_such_table`);
      const column = await warehouseError(wh.query('SELECT no_such_column FROM (SELECT 1 AS a) t'));
      expect(column.sqlState).toBe('42703');
      const division = await warehouseError(wh.query('SELECT 1 / (SELECT 0) AS x'));
      expect(division.sqlState).toBe('22012');
    });
  });
}
