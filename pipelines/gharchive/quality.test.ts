/**
 * gharchive's data-quality checks: evaluated on every hour before it publishes, recorded in
 * `sluice.quality_results` and the run log; a failed `block` check publishes nothing and leaves
 * what was published before exactly as it was; a `quarantine` check moves its events to the hour's
 * quarantine object. The violating events are crafted here from the real sample.
 */
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/core/errors.ts';
import type { CheckDefinition } from '../../src/core/quality.ts';
import { RunLog } from '../../src/core/run.ts';
import { checkSummary, formatCheckSummary, tableChecks } from '../../src/engines/quality/checks.ts';
import { createTestHome, type TestHome } from '../../test/helpers/context.ts';
import { gzipLines, sampleLines } from '../../test/helpers/samples.ts';
import { gharchivePipeline, landingKey, quarantineKey } from './definition.ts';
import { runGharchive, transformStep } from './run.ts';

const HOUR0 = new Date('2015-01-01T00:00:00Z');
const HOUR1 = new Date('2015-01-01T01:00:00Z');

type Event = { id: string; type: string; actor: { login: string } };

describe('gharchive data-quality checks', () => {
  const lines = sampleLines();
  const declared = tableChecks(gharchivePipeline, 'events');
  /** The declared checks with the event-type warning made a block. */
  const strict: CheckDefinition[] = declared.map((c) =>
    c.name === 'type_is_event_type' ? { ...c, severity: 'block' } : c,
  );
  let t: TestHome;
  let dir: string;

  beforeEach(async () => {
    t = await createTestHome();
    dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-gh-quality-'));
  });
  afterEach(async () => {
    await t.close();
    await rm(dir, { recursive: true, force: true });
  });

  const writeHour = (file: string, content: readonly string[]) =>
    writeFile(path.join(dir, file), gzipLines(content));
  const runs = async () => (await RunLog.open(t.backend.kv, t.ctx.clock)).list({ pipeline: 'gharchive' });

  /** Every file of the gharchive dataset and quarantine (name, size, mtime), the catalog's view, the rows. */
  async function published() {
    const files: string[] = [];
    for (const layer of ['analytical/gharchive', 'quarantine/gharchive']) {
      const root = path.join(t.home, 'lake', layer);
      for (const name of await readdir(root, { recursive: true }).catch(() => [] as string[])) {
        const info = await stat(path.join(root, name));
        if (info.isFile()) files.push(`${layer}/${name} ${info.size} ${info.mtimeMs}`);
      }
    }
    const partitions = (await t.backend.catalog.listPartitions('gharchive', 'events')).map((p) => ({
      prefix: p.prefix,
      files: p.files,
      rows: p.rows,
      runId: p.runId,
    }));
    const ids = await t.query<{ id: number }>('SELECT id FROM gharchive.events ORDER BY id');
    return { files: files.sort(), partitions, ids: ids.map((r) => String(r.id)) };
  }

  it('evaluates the declared checks on each hour and records them in sluice.quality_results and the run log', async () => {
    await writeHour('2015-01-01-0.json.gz', lines.slice(0, 300));
    const summary = await runGharchive(t.ctx, { from: HOUR0, to: HOUR0, sourceUrl: dir });
    expect(summary.exitCode).toBe(ExitCode.ok);
    const checks = summary.hours[0]?.transform?.checks ?? [];
    expect(checks.map((c) => [c.check, c.severity, c.status, c.rows])).toEqual([
      ['not_null(id)', 'block', 'pass', 300],
      ['unique(id)', 'block', 'pass', 300],
      ['not_null(created_at)', 'block', 'pass', 300],
      ['type_is_event_type', 'warn', 'pass', 300],
    ]);

    const stored = await t.query(
      `SELECT pipeline, table_name, run_id, unit, check_name, status, action, failing_rows, rows_checked
       FROM sluice.quality_results ORDER BY check_name`,
    );
    expect(stored).toHaveLength(4);
    expect(stored[0]).toEqual({
      pipeline: 'gharchive',
      table_name: 'events',
      run_id: summary.runId,
      unit: '2015-01-01-0',
      check_name: 'not_null(created_at)',
      status: 'pass',
      action: 'none',
      failing_rows: 0,
      rows_checked: 300,
    });

    const transform = (await runs()).find((r) => r.step === 'transform');
    expect(transform?.details?.checks).toEqual(checkSummary(checks));
    expect(formatCheckSummary(transform?.details?.checks)).toBe('4 pass');
  });

  it('a failed block check publishes nothing of the hour and leaves the published data untouched', async () => {
    await writeHour('2015-01-01-0.json.gz', lines.slice(0, 300));
    expect((await runGharchive(t.ctx, { from: HOUR0, to: HOUR0, sourceUrl: dir })).exitCode).toBe(
      ExitCode.ok,
    );
    const before = await published();
    expect(before.ids).toHaveLength(300);

    // Hour 1: the same day partition, one event with a type no GitHub event has.
    const odd = { ...(JSON.parse(lines[600]!) as Event), type: 'NotAnEventType' };
    await writeHour('2015-01-01-1.json.gz', [...lines.slice(300, 600), JSON.stringify(odd)]);
    const blocked = await runGharchive(t.ctx, { from: HOUR1, to: HOUR1, sourceUrl: dir, checks: strict });
    expect(blocked.exitCode).toBe(ExitCode.qualityBlocked);
    expect(blocked.hours[0]).toMatchObject({ file: '2015-01-01-1.json.gz', status: 'failed' });
    expect(blocked.hours[0]?.error).toMatch(
      /type_is_event_type: 1 of 301 rows fail the predicate\. Nothing of the unit was published/,
    );
    expect(await published()).toEqual(before);

    // Hour 0 re-delivered with a bad event: its files would be replaced; they are not.
    const changed = lines.slice(0, 300);
    changed[5] = JSON.stringify({ ...(JSON.parse(changed[5]!) as Event), type: 'Bogus' });
    const landing = { layer: 'landing' as const, key: landingKey('2015-01-01-0.json.gz') };
    await t.backend.objectStore.put(landing, gzipLines(changed));
    const log = await RunLog.open(t.backend.kv, t.ctx.clock);
    await expect(
      transformStep(t.ctx, log, { runId: 'redo-0', landing, checks: strict }),
    ).rejects.toMatchObject({
      name: 'QualityBlockedError',
      exitCode: ExitCode.qualityBlocked,
    });
    expect(await published()).toEqual(before);
    // (With the declared checks the odd type only warns, and the hour publishes.)

    const failed = await t.query(
      `SELECT unit, status, action, failing_rows FROM sluice.quality_results
       WHERE check_name = 'type_is_event_type' ORDER BY unit, run_id`,
    );
    expect(failed).toEqual([
      { unit: '2015-01-01-0', status: 'pass', action: 'none', failing_rows: 0 },
      { unit: '2015-01-01-0', status: 'fail', action: 'blocked', failing_rows: 1 },
      { unit: '2015-01-01-1', status: 'fail', action: 'blocked', failing_rows: 1 },
    ]);
    const records = (await runs()).filter((r) => r.step === 'transform' && r.status === 'failed');
    expect(records.map((r) => [r.unit, formatCheckSummary(r.details?.checks)])).toEqual([
      ['2015-01-01-0.json.gz', '3 pass, 1 block'],
      ['2015-01-01-1.json.gz', '3 pass, 1 block'],
    ]);
    expect(records[0]?.error).toMatch(/QualityBlockedError|severity block failed/);
  });

  it('a quarantine check moves its events to the hour quarantine, on the key columns or the full rows', async () => {
    const hour = lines.slice(0, 300);
    const events = hour.map((l) => JSON.parse(l) as Event);
    await writeHour('2015-01-01-0.json.gz', hour);
    const cases: { check: CheckDefinition; fails: (e: Event) => boolean }[] = [
      {
        // Binds on the cheap key relation (type is there).
        check: {
          kind: 'expression',
          name: 'no_watch',
          predicate: "type <> 'WatchEvent'",
          severity: 'quarantine',
        },
        fails: (e) => e.type === 'WatchEvent',
      },
      {
        // Needs the full rows (actor_login).
        check: {
          kind: 'expression',
          name: 'no_a_login',
          predicate: "actor_login NOT LIKE 'a%'",
          severity: 'quarantine',
        },
        fails: (e) => e.actor.login.startsWith('a'),
      },
    ];
    for (const { check, fails } of cases) {
      const expected = events.flatMap((e, i) => (fails(e) ? [i + 1] : []));
      expect(expected.length).toBeGreaterThan(5);
      const summary = await runGharchive(t.ctx, { from: HOUR0, to: HOUR0, sourceUrl: dir, checks: [check] });
      expect(summary.exitCode).toBe(ExitCode.ok);
      expect(summary.hours[0]?.counts).toEqual({
        read: 300,
        loaded: 300 - expected.length,
        duplicates: 0,
        quarantined: expected.length,
      });
      expect(summary.hours[0]?.transform?.checks[0]).toMatchObject({
        status: 'fail',
        action: 'quarantined',
        failingRows: expected.length,
      });
      const bytes = await t.backend.objectStore.getBytes({
        layer: 'quarantine',
        key: quarantineKey('2015-01-01-0'),
      });
      const entries = Buffer.from(bytes)
        .toString('utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { line: number; reason: string; record: string });
      expect(entries.map((e) => e.line)).toEqual(expected);
      expect(new Set(entries.map((e) => e.reason))).toEqual(
        new Set([`data-quality check failed: ${check.name}`]),
      );
      expect(entries[0]?.record).toBe(hour[expected[0]! - 1]);
      const ids = await t.query<{ id: number }>('SELECT id FROM gharchive.events');
      expect(new Set(ids.map((r) => String(r.id)))).toEqual(
        new Set(events.filter((e) => !fails(e)).map((e) => e.id)),
      );
    }
  });
});
