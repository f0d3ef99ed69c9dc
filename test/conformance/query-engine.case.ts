import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueryError } from '../../src/core/errors.ts';
import type { Catalog } from '../../src/core/ports/catalog.ts';
import type { ObjectStore } from '../../src/core/ports/object-store.ts';
import type { QueryEngine } from '../../src/core/ports/query-engine.ts';
import { DuckDb, quoteString } from '../../src/engines/duckdb/duckdb.ts';

/** What the query-engine suite needs from a backend. */
export interface QueryEngineFixture {
  readonly objectStore: ObjectStore;
  readonly catalog: Catalog;
  /** A new engine over the catalog as it is now. */
  openEngine(): Promise<QueryEngine>;
  close(): Promise<void>;
}

/**
 * Query engine contract, for every backend: cataloged tables are `<database>.<table>`, partition
 * keys are typed columns, only registered partitions are visible, values come back typed
 * (integers exact, timestamps ISO-8601 UTC, JSON parsed), errors are {@link QueryError}s.
 *
 * Data is written with DuckDB into local Parquet files and published through the object store
 * and the catalog ports only, so the suite runs unchanged against S3 + Glue + Athena.
 */
export function queryEngineConformance(backend: string, open: () => Promise<QueryEngineFixture>): void {
  describe(`query engine conformance: ${backend}`, () => {
    let fixture: QueryEngineFixture;
    let engine: QueryEngine;
    let work: string;
    const database = `qc_${randomBytes(4).toString('hex')}`;
    // Rows: id 1..30, month = 1 + (id % 3), amount = id * 1.5, big = 2^53 + id, created = 2024-MM-01T00:00:id.
    const ids = Array.from({ length: 30 }, (_, i) => i + 1);
    const monthOf = (id: number) => 1 + (id % 3);

    beforeAll(async () => {
      fixture = await open();
      work = await mkdtemp(path.join(os.tmpdir(), 'sluice-qc-'));
      const db = await DuckDb.open({ threads: 1 });
      try {
        const partitions = [];
        for (const month of [1, 2, 3]) {
          const file = path.join(work, `part-${month}.parquet`);
          await db.run(
            `COPY (SELECT id::BIGINT AS id, 'name-' || id AS name, id * 1.5 AS amount,
                          (9007199254740992 + id)::BIGINT AS big,
                          ('{"id":' || id || ',"tags":["a","b"]}')::JSON AS doc,
                          make_timestamp(2024, ${month}, 1, 0, 0, id) AS created
                   FROM range(1, 31) t(id) WHERE 1 + (id % 3) = ${month})
             TO ${quoteString(file)} (FORMAT parquet)`,
          );
          const prefix = `${database}/trips/year=2024/month=${String(month).padStart(2, '0')}/`;
          const info = await fixture.objectStore.putFile(
            { layer: 'analytical', key: `${prefix}part-0.parquet` },
            file,
          );
          partitions.push({
            values: ['2024', String(month).padStart(2, '0')],
            prefix,
            files: [{ key: info.key, bytes: info.size, rows: 10 }],
          });
        }
        // An extra directory that is never registered: it must stay invisible.
        const stray = path.join(work, 'stray.parquet');
        await db.run(`COPY (SELECT 999::BIGINT AS id) TO ${quoteString(stray)} (FORMAT parquet)`);
        await fixture.objectStore.putFile(
          { layer: 'analytical', key: `${database}/trips/year=2024/month=12/part-0.parquet` },
          stray,
        );

        await fixture.catalog.upsertTable({
          database,
          name: 'trips',
          location: { layer: 'analytical', prefix: `${database}/trips/` },
          format: 'parquet',
          columns: [
            { name: 'id', type: 'bigint', nullable: false },
            { name: 'name', type: 'string' },
            { name: 'amount', type: 'double' },
            { name: 'big', type: 'bigint' },
            { name: 'doc', type: 'string', logicalType: 'json' },
            { name: 'created', type: 'timestamp' },
          ],
          partitionKeys: [
            { name: 'year', type: 'int' },
            { name: 'month', type: 'int' },
          ],
        });
        await fixture.catalog.putPartitions(database, 'trips', partitions);
        await fixture.catalog.upsertTable({
          database,
          name: 'empty',
          location: { layer: 'analytical', prefix: `${database}/empty/` },
          format: 'parquet',
          columns: [
            { name: 'id', type: 'bigint' },
            { name: 'label', type: 'string' },
          ],
          partitionKeys: [{ name: 'day', type: 'string' }],
        });
      } finally {
        db.close();
      }
      engine = await fixture.openEngine();
    });

    afterAll(async () => {
      await engine?.close();
      await fixture?.close();
      await rm(work, { recursive: true, force: true });
    });

    it('reads every registered partition, and only those', async () => {
      const { rows } = await engine.query(
        `SELECT count(*) AS n, sum(id) AS total, max(id) AS top FROM ${database}.trips`,
      );
      expect(rows).toEqual([{ n: 30, total: ids.reduce((a, b) => a + b, 0), top: 30 }]);
    });

    it('exposes partition keys as typed columns that filter', async () => {
      const { rows } = await engine.query(
        `SELECT year, month, count(*) AS n FROM ${database}.trips WHERE month >= 2 GROUP BY year, month ORDER BY month`,
      );
      expect(rows).toEqual(
        [2, 3].map((month) => ({ year: 2024, month, n: ids.filter((id) => monthOf(id) === month).length })),
      );
    });

    it('returns typed values: exact big integers, doubles, ISO timestamps, parsed JSON', async () => {
      const { rows, columns } = await engine.query(
        `SELECT id, name, amount, big, doc, created FROM ${database}.trips WHERE id = 7`,
      );
      expect(columns.map((c) => c.name)).toEqual(['id', 'name', 'amount', 'big', 'doc', 'created']);
      expect(rows).toEqual([
        {
          id: 7,
          name: 'name-7',
          amount: 10.5,
          big: 9007199254740999n,
          doc: { id: 7, tags: ['a', 'b'] },
          created: new Date(Date.UTC(2024, monthOf(7) - 1, 1, 0, 0, 7)).toISOString(),
        },
      ]);
    });

    it('shows a table without partitions as empty, with its declared columns', async () => {
      const { rows, columns } = await engine.query(`SELECT * FROM ${database}.empty`);
      expect(rows).toEqual([]);
      expect(columns.map((c) => c.name)).toEqual(['id', 'label', 'day']);
    });

    it('cuts results at maxRows and says so', async () => {
      const cut = await engine.query(`SELECT id FROM ${database}.trips ORDER BY id`, { maxRows: 5 });
      expect(cut.rows.map((r) => r.id)).toEqual([1, 2, 3, 4, 5]);
      expect(cut.truncated).toBe(true);
      const whole = await engine.query(`SELECT id FROM ${database}.trips ORDER BY id`, { maxRows: 30 });
      expect(whole.truncated).toBe(false);
    });

    it('reports an unknown table and a syntax error as QueryError', async () => {
      await expect(engine.query(`SELECT * FROM ${database}.nope`)).rejects.toThrow(QueryError);
      await expect(engine.query(`SELECT * FROM ${database}.nope`)).rejects.toThrow(/nope/);
      await expect(engine.query('SELEC 1')).rejects.toThrow(QueryError);
    });
  });
}
