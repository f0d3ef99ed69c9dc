import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestHome, type TestHome } from '../../../test/helpers/context.ts';
import type { CheckResult, QualityMetric } from '../../core/quality.ts';
import { qualityMetricsDataset, qualityResultsDataset, recordMetrics, recordResults } from './store.ts';

const AT = '2024-03-05T10:15:00.000Z';

function result(check: string, overrides: Partial<CheckResult> = {}): CheckResult {
  return {
    pipeline: 'demo',
    table: 'things',
    runId: '20240305T101500Z-abc123',
    unit: '2024-03-05-10',
    check,
    kind: 'not_null',
    severity: 'block',
    status: 'pass',
    failingRows: 0,
    rows: 42,
    action: 'none',
    at: AT,
    ...overrides,
  };
}

describe('quality store', () => {
  let t: TestHome;
  beforeEach(async () => {
    t = await createTestHome();
  });
  afterEach(async () => {
    await t.close();
  });

  it('writes results queryable as sluice.quality_results, partitioned by day of `checked_at`', async () => {
    await recordResults(t.backend, [
      result('not_null(id)'),
      result('amount_range', {
        kind: 'expression',
        severity: 'quarantine',
        status: 'fail',
        failingRows: 3,
        action: 'quarantined',
        detail: "3 of 42 rows fail the predicate, it's",
      }),
    ]);
    const rows = await t.query('SELECT * FROM sluice.quality_results ORDER BY check_name');
    expect(rows).toEqual([
      {
        pipeline: 'demo',
        table_name: 'things',
        run_id: '20240305T101500Z-abc123',
        unit: '2024-03-05-10',
        check_name: 'amount_range',
        kind: 'expression',
        severity: 'quarantine',
        status: 'fail',
        failing_rows: 3,
        rows_checked: 42,
        action: 'quarantined',
        detail: "3 of 42 rows fail the predicate, it's",
        checked_at: '2024-03-05T10:15:00.000Z',
        year: 2024,
        month: 3,
        day: 5,
      },
      expect.objectContaining({ check_name: 'not_null(id)', status: 'pass', detail: null, failing_rows: 0 }),
    ]);
    const table = await t.backend.catalog.getTable('sluice', 'quality_results');
    expect(table?.columns.map((c) => c.name)).toEqual(qualityResultsDataset.columns.map((c) => c.name));
    const partitions = await t.backend.catalog.listPartitions('sluice', 'quality_results');
    expect(partitions.map((p) => p.prefix)).toEqual(['sluice/quality_results/year=2024/month=03/day=05/']);
  });

  it('replaces a retried call with the same outcome, adds a different one, and serializes writers', async () => {
    await recordResults(t.backend, [result('a'), result('b')]);
    // The retry evaluated later (another `at`, another day) with the same outcome: still two rows.
    await recordResults(t.backend, [
      result('a', { at: '2024-03-06T00:00:01Z' }),
      result('b', { at: '2024-03-06T00:00:01Z' }),
    ]);
    expect(await t.query('SELECT check_name, checked_at FROM sluice.quality_results ORDER BY 1')).toEqual([
      { check_name: 'a', checked_at: '2024-03-06T00:00:01.000Z' },
      { check_name: 'b', checked_at: '2024-03-06T00:00:01.000Z' },
    ]);
    // A different outcome (the next unit) adds rows; concurrent callers in one process all land.
    await Promise.all(
      ['u1', 'u2', 'u3', 'u4'].map((unit) => recordResults(t.backend, [result('a', { unit })])),
    );
    const counted = await t.query<{ n: number }>('SELECT count(*) AS n FROM sluice.quality_results');
    expect(counted[0]?.n).toBe(6);
    // Without the key-value store (objectStore and catalog only) it works too.
    await recordResults({ objectStore: t.backend.objectStore, catalog: t.backend.catalog }, [result('z')]);
    expect((await t.query<{ n: number }>('SELECT count(*) AS n FROM sluice.quality_results'))[0]?.n).toBe(7);
    // Nothing to record: nothing written.
    await recordResults(t.backend, []);
  });

  it('writes metrics queryable as sluice.quality_metrics (numbers, text, NULL)', async () => {
    const metric = (name: string, value: number | null, text?: string): QualityMetric => ({
      pipeline: 'quotes',
      table: 'quotes_agg',
      runId: 'r-1',
      metric: name,
      value,
      ...(text !== undefined ? { text } : {}),
      at: AT,
    });
    await recordMetrics(t.backend, [
      metric('max_quote_count', 7),
      metric('variance', 0.5),
      metric('top_quote', null, "Don't panic"),
      metric('big', 1e21),
    ]);
    const rows = await t.query(
      'SELECT metric, value, text, unit FROM sluice.quality_metrics ORDER BY metric',
    );
    expect(rows).toEqual([
      { metric: 'big', value: 1e21, text: null, unit: null },
      { metric: 'max_quote_count', value: 7, text: null, unit: null },
      { metric: 'top_quote', value: null, text: "Don't panic", unit: null },
      { metric: 'variance', value: 0.5, text: null, unit: null },
    ]);
    const table = await t.backend.catalog.getTable('sluice', 'quality_metrics');
    expect(table?.columns.map((c) => c.name)).toEqual(qualityMetricsDataset.columns.map((c) => c.name));
  });
});
