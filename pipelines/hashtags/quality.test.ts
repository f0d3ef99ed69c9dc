/**
 * hashtags' data-quality checks: evaluated on each staging batch before it is written, recorded in
 * `sluice.quality_results` and the run log; a failed `block` check stages nothing, so
 * LandingAnalytical stops before `hashtag_data`, which stays exactly as it was; a `quarantine`
 * check moves its rows to the quarantine. Landing CSV objects are dropped by hand.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/core/errors.ts';
import type { CheckDefinition } from '../../src/core/quality.ts';
import { RunLog } from '../../src/core/run.ts';
import { formatCheckSummary, tableChecks } from '../../src/engines/quality/checks.ts';
import { createTestHome, type TestHome } from '../../test/helpers/context.ts';
import { hashtagRows, listKeys, readQuarantine } from '../../test/helpers/tweets.ts';
import { loadAnalytical } from './analytical.ts';
import { hashtagsPipeline } from './definition.ts';
import { newRunId, stagingStep } from './run.ts';
import { deleteStaging } from './staging.ts';

const TS = '2026-01-02T03:04:05.678Z';
const CREATED = '2021-09-22T16:37:29.000Z';
const record = (n: number, user: string, hashtags: string, text: string) =>
  `90000000000000000000${n},${TS},${CREATED},144000000000000000${n},${user},150,${hashtags},${text}`;

describe('hashtags data-quality checks', () => {
  const declared = tableChecks(hashtagsPipeline, 'staging');
  let t: TestHome;
  let runs: RunLog;
  beforeEach(async () => {
    t = await createTestHome();
    runs = await RunLog.open(t.backend.kv, t.ctx.clock);
  });
  afterEach(async () => {
    await t.close();
  });

  /** Drops a landing CSV, then stages it as LandingAnalytical does (old staging deleted first). */
  async function stage(key: string, lines: string[], checks?: readonly CheckDefinition[]) {
    await t.backend.objectStore.put({ layer: 'landing', key }, `${lines.join('\n')}\n`);
    const runId = newRunId(t.ctx.clock.now());
    await deleteStaging(t.ctx, runId);
    return stagingStep(t.ctx, runs, { runId, selection: { keys: [key] }, ...(checks ? { checks } : {}) });
  }

  async function hashtagData() {
    const root = path.join(t.home, 'lake/analytical/hashtags/hashtag_data');
    const files: string[] = [];
    for (const name of await readdir(root, { recursive: true })) {
      const info = await stat(path.join(root, name));
      if (info.isFile()) files.push(`${name} ${info.size} ${info.mtimeMs}`);
    }
    const partitions = await t.backend.catalog.listPartitions('hashtags', 'hashtag_data');
    const rows = (await hashtagRows(t, 'hashtag_data')).map((r) => r.hash_id).sort();
    return { files: files.sort(), partitions: partitions.map((p) => [p.prefix, p.files, p.runId]), rows };
  }

  it('evaluates the declared checks on each batch and records them in sluice.quality_results and the run log', async () => {
    const staged = await stage('hashtags/2026/01/02/a.csv', [
      record(1, 'alice', 'Brexit Rosé', 'Hello world'),
      record(2, 'bob', 'Remain', 'What a great day'),
    ]);
    expect(staged.rows).toBe(3);
    expect(staged.checks.map((c) => [c.check, c.severity, c.status, c.rows])).toEqual([
      ['unique(hash_id)', 'block', 'pass', 3],
      ['sentiment_in_range', 'quarantine', 'pass', 3],
      ['not_null(hashtag)', 'block', 'pass', 3],
    ]);
    const stored = await t.query(
      `SELECT pipeline, table_name, run_id, unit, check_name, status FROM sluice.quality_results ORDER BY check_name`,
    );
    expect(stored).toEqual(
      ['not_null(hashtag)', 'sentiment_in_range', 'unique(hash_id)'].map((check_name) => ({
        pipeline: 'hashtags',
        table_name: 'staging',
        run_id: staged.runId,
        unit: staged.runId,
        check_name,
        status: 'pass',
      })),
    );
    const [record0] = await runs.list({ pipeline: 'hashtags' });
    expect(record0).toMatchObject({ step: 'staging', status: 'succeeded' });
    expect(formatCheckSummary(record0?.details?.checks)).toBe('3 pass');
  });

  it('a failed block check stages nothing and hashtag_data stays exactly as it was', async () => {
    const first = await stage('hashtags/2026/01/02/a.csv', [
      record(1, 'alice', 'Brexit', 'Hello world'),
      record(2, 'bob', 'Remain', 'What a great day'),
    ]);
    await loadAnalytical(t.ctx, { runId: first.runId });
    const before = await hashtagData();
    expect(before.rows).toHaveLength(2);

    const strict: CheckDefinition[] = [
      ...declared,
      { kind: 'expression', name: 'no_secret', predicate: "hashtag <> 'SECRETNUMBER'", severity: 'block' },
    ];
    await expect(
      stage(
        'hashtags/2026/01/02/b.csv',
        [record(3, 'carol', 'Brexit', 'More news'), record(4, 'dave', 'SECRET_NUMBER', 'Say hi')],
        strict,
      ),
    ).rejects.toMatchObject({ name: 'QualityBlockedError', exitCode: ExitCode.qualityBlocked });
    // Nothing staged (so LandingAnalytical stops), no quarantine object; hashtag_data untouched.
    expect(await listKeys(t, 'staging', 'hashtags/staging/')).toEqual([]);
    expect(await t.backend.catalog.listPartitions('hashtags', 'staging')).toEqual([]);
    expect(await listKeys(t, 'quarantine', 'hashtags/staging/')).toEqual([]);
    expect(await hashtagData()).toEqual(before);

    const failed = await t.query(
      `SELECT check_name, status, action, failing_rows, rows_checked FROM sluice.quality_results
       WHERE status = 'fail'`,
    );
    expect(failed).toEqual([
      { check_name: 'no_secret', status: 'fail', action: 'blocked', failing_rows: 1, rows_checked: 2 },
    ]);
    const [record0] = await runs.list({ pipeline: 'hashtags' });
    expect(record0).toMatchObject({ step: 'staging', status: 'failed' });
    expect(record0?.error).toMatch(/no_secret: 1 of 2 rows fail the predicate/);
    expect(formatCheckSummary(record0?.details?.checks)).toBe('3 pass, 1 block');
  });

  it('a quarantine check moves its rows; a record counts as quarantined only when none of its rows is left', async () => {
    const key = 'hashtags/2026/01/02/c.csv';
    const staged = await stage(
      key,
      [record(1, 'alice', 'Brexit Rosé', 'Hello world'), record(4, 'dave', 'SECRET_NUMBER', 'Say hi')],
      [
        {
          kind: 'expression',
          name: 'no_ros_no_secret',
          predicate: "hashtag NOT IN ('Ros', 'SECRETNUMBER')",
          severity: 'quarantine',
        },
      ],
    );
    // alice -> Brexit (staged), Ros (quarantined); dave -> SECRETNUMBER (quarantined: the record is gone).
    expect(staged.counts).toMatchObject({ read: 2, loaded: 1, duplicates: 0, quarantined: 1 });
    expect(staged.rows).toBe(1);
    expect(staged.quarantinedRows).toBe(2);
    expect((await hashtagRows(t, 'staging')).map((r) => [r.user_name, r.hashtag])).toEqual([
      ['alice', 'Brexit'],
    ]);
    const entries = await readQuarantine(t, 'hashtags/staging/');
    const uri = t.backend.objectStore.uri({ layer: 'landing', key });
    expect(entries.map((e) => [e.source, e.line, e.reason])).toEqual([
      [uri, 1, 'data-quality check failed: no_ros_no_secret'],
      [uri, 2, 'data-quality check failed: no_ros_no_secret'],
    ]);
    expect(JSON.parse(entries[0]!.raw as string)).toMatchObject({ user_name: 'alice', hashtag: 'Ros' });
  });
});
