import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode, StepError } from '../../core/errors.ts';
import type { PipelineDefinition } from '../../core/pipeline.ts';
import type { CheckDefinition, CheckResult } from '../../core/quality.ts';
import { QualityBlockedError } from '../../core/quality.ts';
import { DuckDb } from '../duckdb/duckdb.ts';
import {
  assertNotBlocked,
  blockedResultsOf,
  checkSummary,
  checksBindOn,
  evaluateChecks,
  formatCheckSummary,
  tableChecks,
  validateChecks,
  warehouseColumns,
} from './checks.ts';

/**
 * Five rows; the failing rows of each check below are worked out by hand:
 *   n | id   | name | amount | ts
 *   1 | 1    | a    | 1.0    | 2024-01-01 10:00
 *   2 | 2    | b    | 5.0    | 2024-01-01 11:00
 *   3 | 2    | c    | -1.0   | 2024-01-01 12:00
 *   4 | 3    | NULL | 11.0   | 2024-01-01 09:00
 *   5 | NULL | a    | NULL   | NULL
 */
const ROWS = `
  CREATE TABLE t AS SELECT * FROM (VALUES
    (1, 1, 'a', 1.0, TIMESTAMP '2024-01-01 10:00:00'),
    (2, 2, 'b', 5.0, TIMESTAMP '2024-01-01 11:00:00'),
    (3, 2, 'c', -1.0, TIMESTAMP '2024-01-01 12:00:00'),
    (4, 3, NULL, 11.0, TIMESTAMP '2024-01-01 09:00:00'),
    (5, NULL, 'a', NULL, NULL)
  ) v(n, id, name, amount, ts)`;

const NOW = new Date('2024-01-02T09:00:00Z');

describe('evaluateChecks', () => {
  let db: DuckDb;
  beforeAll(async () => {
    db = await DuckDb.open({ threads: 1 });
    await db.run(ROWS);
  });
  afterAll(() => db.close());

  const run = (checks: CheckDefinition[], now = NOW) =>
    evaluateChecks({ db, relation: 't', checks, pipeline: 'p', table: 't', runId: 'r1', unit: 'u1', now });

  /** The `n` of the rows of a view, sorted. */
  const ns = async (view: string) =>
    (await db.all(`SELECT n FROM ${view} ORDER BY n`)).rows.map((r) => Number(r.n));

  it('counts the failing rows of each kind as worked out by hand (severity warn)', async () => {
    const result = await run([
      { kind: 'not_null', column: 'id', severity: 'warn' },
      { kind: 'not_null', column: 'n', severity: 'warn' },
      { kind: 'unique', columns: ['id'], severity: 'warn' },
      { kind: 'unique', columns: ['id', 'name'], severity: 'warn' },
      { kind: 'unique', columns: ['name'], severity: 'warn' },
      { kind: 'accepted_values', column: 'name', values: ['a', 'b'], severity: 'warn' },
      { kind: 'accepted_values', column: 'id', values: [1, 2, 3], severity: 'warn' },
      { kind: 'expression', name: 'amount_range', predicate: 'amount BETWEEN 0 AND 10', severity: 'warn' },
      { kind: 'row_count', min: 1, max: 4, severity: 'warn' },
      { kind: 'row_count', name: 'enough_rows', min: 5, severity: 'warn' },
      { kind: 'freshness', column: 'ts', maxAgeHours: 24, severity: 'warn' },
    ]);
    const byName = Object.fromEntries(result.results.map((r) => [r.check, r]));
    const failing = Object.fromEntries(result.results.map((r) => [r.check, r.failingRows]));
    expect(failing).toEqual({
      'not_null(id)': 1, // row 5
      'not_null(n)': 0,
      'unique(id)': 2, // rows 2 and 3 share id 2; row 5's NULL is not a key
      'unique(id,name)': 0,
      'unique(name)': 2, // rows 1 and 5 share 'a'; row 4's NULL is not a key
      'accepted_values(name)': 1, // row 3 'c'; row 4's NULL passes
      'accepted_values(id)': 0,
      amount_range: 3, // rows 3 (-1), 4 (11), 5 (NULL: no verdict fails)
      row_count: 1, // 5 rows > 4
      enough_rows: 0,
      'freshness(ts)': 0, // newest 12:00 on the 1st, limit 09:00 on the 1st
    });
    expect(result.results.every((r) => r.rows === 5)).toBe(true);
    expect(byName['not_null(n)']).toMatchObject({ status: 'pass', action: 'none' });
    expect(byName['unique(id)']).toMatchObject({
      status: 'fail',
      action: 'warned',
      kind: 'unique',
      severity: 'warn',
      pipeline: 'p',
      table: 't',
      runId: 'r1',
      unit: 'u1',
      at: NOW.toISOString(),
    });
    expect(byName['unique(id)']?.detail).toBe('1 key occurs more than once (2 of 5 rows), e.g. 2');
    expect(byName['accepted_values(name)']?.detail).toContain("'c' (1)");
    expect(byName.row_count?.detail).toBe('5 rows (expected 1..4)');
    expect(byName['freshness(ts)']?.detail).toContain('2024-01-01 12:00:00');
    // Warnings route nothing and block nothing.
    expect(result).toMatchObject({ passed: 't', quarantinedRows: 0, blocked: false });
    expect(result.quarantined).toBeUndefined();
  });

  it('fails freshness when the newest value is too old, or when there is none', async () => {
    const stale = await run(
      [{ kind: 'freshness', column: 'ts', maxAgeHours: 24, severity: 'warn' }],
      new Date('2024-01-03T00:00:00Z'),
    );
    expect(stale.results[0]).toMatchObject({ status: 'fail', failingRows: 1, action: 'warned' });
    await db.run('CREATE OR REPLACE VIEW no_ts AS SELECT * FROM t WHERE ts IS NULL');
    const none = await evaluateChecks({
      db,
      relation: 'no_ts',
      checks: [{ kind: 'freshness', column: 'ts', maxAgeHours: 1000, severity: 'warn' }],
      pipeline: 'p',
      table: 't',
      runId: 'r1',
      now: NOW,
    });
    expect(none.results[0]).toMatchObject({ status: 'fail', rows: 1 });
    expect(none.results[0]?.detail).toContain('newest ts none');
    expect(none.results[0]?.unit).toBeUndefined();
  });

  it('routes the rows failing quarantine checks, with the failed check names as the reason', async () => {
    const result = await run([
      { kind: 'unique', columns: ['id'], severity: 'quarantine' },
      {
        kind: 'expression',
        name: 'amount_range',
        predicate: 'amount BETWEEN 0 AND 10',
        severity: 'quarantine',
      },
      { kind: 'not_null', column: 'n', severity: 'quarantine' }, // passes: routes nothing
      { kind: 'accepted_values', column: 'name', values: ['a', 'b'], severity: 'warn' }, // row 3: warned only
    ]);
    expect(result.blocked).toBe(false);
    expect(result.quarantinedRows).toBe(4);
    expect(result.passed).not.toBe('t');
    expect(await ns(result.passed)).toEqual([1]);
    expect(await ns(result.quarantined!)).toEqual([2, 3, 4, 5]);
    const reasons = await db.all(`SELECT n, __sluice_reason AS reason FROM ${result.quarantined} ORDER BY n`);
    expect(reasons.rows.map((r) => [Number(r.n), r.reason])).toEqual([
      [2, 'unique(id)'],
      [3, 'unique(id); amount_range'],
      [4, 'amount_range'],
      [5, 'amount_range'],
    ]);
    expect(result.results.map((r) => r.action)).toEqual(['quarantined', 'quarantined', 'none', 'warned']);
  });

  it('passes the relation through untouched when the quarantine checks pass', async () => {
    const result = await run([{ kind: 'not_null', column: 'n', severity: 'quarantine' }]);
    expect(result).toMatchObject({ passed: 't', quarantinedRows: 0, blocked: false });
  });

  it('blocks on a failed block check; assertNotBlocked names it', async () => {
    const result = await run([
      { kind: 'not_null', column: 'id', severity: 'block' },
      { kind: 'not_null', column: 'n', severity: 'block' },
      {
        kind: 'expression',
        name: 'amount_range',
        predicate: 'amount BETWEEN 0 AND 10',
        severity: 'quarantine',
      },
      { kind: 'row_count', max: 4, severity: 'warn' },
    ]);
    expect(result.blocked).toBe(true);
    // Nothing of a blocked unit is written, not even its quarantine: those rows are blocked too.
    expect(result.results.map((r) => [r.check, r.status, r.action])).toEqual([
      ['not_null(id)', 'fail', 'blocked'],
      ['not_null(n)', 'pass', 'none'],
      ['amount_range', 'fail', 'blocked'],
      ['row_count', 'fail', 'warned'],
    ]);
    let thrown: unknown;
    try {
      assertNotBlocked(result);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(QualityBlockedError);
    const error = thrown as QualityBlockedError;
    expect(error.name).toBe('QualityBlockedError');
    expect(error.exitCode).toBe(ExitCode.qualityBlocked);
    expect(error.message).toContain('p.t (unit u1)');
    expect(error.message).toContain('not_null(id): 1 of 5 rows have NULL id');
    expect(error.message).not.toContain('amount_range');
    expect(error.results).toBe(result.results);
    // A table-level block check blocks too.
    const tooMany = await run([{ kind: 'row_count', max: 4, severity: 'block' }]);
    expect(tooMany.blocked).toBe(true);
    expect(() => assertNotBlocked(tooMany)).toThrow(/row_count: 5 rows \(expected -inf\.\.4\)/);
    const fits = await run([{ kind: 'row_count', max: 5, severity: 'block' }]);
    expect(() => assertNotBlocked(fits)).not.toThrow();
  });

  it('refuses definition errors before evaluating anything', async () => {
    await expect(run([{ kind: 'row_count', min: 1, severity: 'quarantine' }])).rejects.toThrow(
      /invalid checks on p\.t: row_count: severity quarantine needs a row-level check/,
    );
    await expect(
      run([{ kind: 'freshness', column: 'ts', maxAgeHours: 1, severity: 'quarantine' }]),
    ).rejects.toThrow(/freshness\(ts\): severity quarantine needs a row-level check/);
    await expect(
      run([
        { kind: 'not_null', column: 'id', severity: 'warn' },
        { kind: 'not_null', column: 'id', severity: 'block' },
      ]),
    ).rejects.toThrow(/two checks are named not_null\(id\)/);
    await expect(run([{ kind: 'not_null', column: 'nope', severity: 'warn' }])).rejects.toThrow(/nope/);
  });

  it('tells whether checks bind on a relation', async () => {
    await db.run('CREATE OR REPLACE VIEW only_ids AS SELECT n, id FROM t');
    const onIds: CheckDefinition[] = [
      { kind: 'unique', columns: ['id'], severity: 'block' },
      { kind: 'expression', predicate: 'id > 0', severity: 'warn' },
      { kind: 'row_count', min: 1, severity: 'warn' },
    ];
    expect(await checksBindOn(db, 'only_ids', onIds)).toBe(true);
    expect(
      await checksBindOn(db, 'only_ids', [...onIds, { kind: 'not_null', column: 'name', severity: 'warn' }]),
    ).toBe(false);
    expect(
      await checksBindOn(db, 'only_ids', [{ kind: 'expression', predicate: 'amount > 0', severity: 'warn' }]),
    ).toBe(false);
  });
});

describe('check declarations', () => {
  const definition: PipelineDefinition = {
    name: 'demo',
    description: '',
    source: { name: 's', kind: 'files', description: '' },
    steps: [],
    datasets: [
      {
        pipeline: 'demo',
        name: 'things',
        layer: 'analytical',
        format: 'parquet',
        description: '',
        columns: [
          { name: 'id', type: 'bigint' },
          { name: 'name', type: 'string' },
        ],
        partitionKeys: [{ name: 'year', type: 'int' }],
        writeDisposition: 'append',
      },
    ],
    warehouseTables: [
      {
        name: 'wh',
        ddl: 'CREATE TABLE IF NOT EXISTS wh (a bigint, "B c" varchar(256) NOT NULL, amount numeric(10, 2), PRIMARY KEY (a))',
      },
    ],
    checks: [
      {
        table: 'things',
        checks: [
          { kind: 'unique', columns: ['id'], severity: 'block' },
          { kind: 'not_null', column: 'year', severity: 'block' },
        ],
      },
      { table: 'wh', checks: [{ kind: 'not_null', column: 'B c', severity: 'block' }] },
    ],
  };

  it('accepts consistent declarations', () => {
    expect(validateChecks(definition)).toEqual([]);
    expect(tableChecks(definition, 'things')).toHaveLength(2);
    expect(tableChecks(definition, 'other')).toEqual([]);
    expect([...(warehouseColumns(definition.warehouseTables![0]!.ddl) ?? [])]).toEqual([
      'a',
      'B c',
      'amount',
    ]);
  });

  it('reports unknown tables and columns, table-level quarantine and bad bounds', () => {
    const problems = validateChecks({
      ...definition,
      checks: [
        {
          table: 'things',
          checks: [
            { kind: 'not_null', column: 'nope', severity: 'block' },
            { kind: 'row_count', min: 5, max: 1, severity: 'quarantine' },
            { kind: 'freshness', column: 'name', maxAgeHours: 0, severity: 'warn' },
            { kind: 'accepted_values', column: 'name', values: [], severity: 'warn' },
          ],
        },
        { table: 'missing', checks: [{ kind: 'row_count', min: 1, severity: 'warn' }] },
      ],
    });
    expect(problems).toEqual([
      'demo.things: row_count: severity quarantine needs a row-level check (not_null, unique, accepted_values, expression); a row_count check judges the whole unit: use warn or block',
      'demo.things: row_count: row_count min 5 is above max 1',
      'demo.things: freshness(name): freshness needs maxAgeHours > 0',
      'demo.things: accepted_values(name): accepted_values needs at least one value',
      'demo.things: not_null(nope) names unknown column nope',
      'demo.missing: not a dataset or warehouse table of the pipeline',
    ]);
  });
});

describe('check summaries', () => {
  const result = (
    check: string,
    status: 'pass' | 'fail',
    severity: CheckResult['severity'],
  ): CheckResult => ({
    pipeline: 'p',
    table: 't',
    runId: 'r',
    check,
    kind: 'not_null',
    severity,
    status,
    failingRows: status === 'fail' ? 2 : 0,
    rows: 10,
    action:
      status === 'pass'
        ? 'none'
        : severity === 'warn'
          ? 'warned'
          : severity === 'block'
            ? 'blocked'
            : 'quarantined',
    at: NOW.toISOString(),
  });

  it('summarizes results for run records and `sluice runs`', () => {
    const results = [
      result('a', 'pass', 'block'),
      result('b', 'pass', 'warn'),
      result('c', 'fail', 'warn'),
      result('d', 'fail', 'quarantine'),
      result('e', 'pass', 'quarantine'),
    ];
    const summary = checkSummary(results);
    expect(summary[2]).toEqual({
      table: 't',
      check: 'c',
      severity: 'warn',
      status: 'fail',
      action: 'warned',
      failing_rows: 2,
    });
    expect(formatCheckSummary(summary)).toBe('3 pass, 1 warn, 1 quarantine');
    expect(
      formatCheckSummary(checkSummary([result('x', 'fail', 'block'), result('y', 'pass', 'warn')])),
    ).toBe('1 pass, 1 block');
    expect(formatCheckSummary(undefined)).toBe('');
    expect(formatCheckSummary([])).toBe('');
  });

  it('finds the results of a blocked unit through wrapping errors', () => {
    const results = [result('a', 'fail', 'block')];
    const wrapped = new StepError(
      { pipeline: 'p', step: 's', runId: 'r' },
      new QualityBlockedError('blocked', results),
    );
    expect(wrapped.name).toBe('QualityBlockedError');
    expect(blockedResultsOf(wrapped)).toBe(results);
    expect(blockedResultsOf(new Error('other'))).toBeUndefined();
  });
});
