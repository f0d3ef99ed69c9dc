import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BookmarkStore } from '../../src/core/bookmark.ts';
import { RunLog } from '../../src/core/run.ts';
import { createTestHome, fakeClock } from '../../test/helpers/context.ts';
import { gzipLines, ROOT, sampleLines } from '../../test/helpers/samples.ts';
import { runGharchive } from './run.ts';

const CHILD = path.join(ROOT, 'test/helpers/gharchive-crash-child.ts');

/** Runs the crash child; resolves with its exit signal. */
function runChild(
  args: string[],
): Promise<{ signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('exit', (_code, signal) => resolve({ signal, stdout, stderr }));
  });
}

/** Every file under a directory, relative, sorted. */
async function files(dir: string): Promise<string[]> {
  try {
    return ((await readdir(dir, { recursive: true, withFileTypes: true })) as import('node:fs').Dirent[])
      .filter((d) => d.isFile())
      .map((d) => path.relative(dir, path.join(d.parentPath, d.name)))
      .sort();
  } catch {
    return [];
  }
}

describe('gharchive crash safety: a run killed at any phase converges on the next run', () => {
  const lines = sampleLines();
  let source: string;
  // Hour 0: events 0..2,999. Hour 1: events 2,500..5,999 (500 already in hour 0).
  const hour0Ids = new Set(lines.slice(0, 3000).map((l) => (JSON.parse(l) as { id: string }).id));
  const allIds = new Set(lines.slice(0, 6000).map((l) => (JSON.parse(l) as { id: string }).id));

  beforeAll(async () => {
    source = await mkdtemp(path.join(os.tmpdir(), 'sluice-crash-src-'));
    await writeFile(path.join(source, '2015-01-01-0.json.gz'), gzipLines(lines.slice(0, 3000)));
    await writeFile(path.join(source, '2015-01-01-1.json.gz'), gzipLines(lines.slice(2500, 6000)));
  });
  afterAll(async () => {
    await rm(source, { recursive: true, force: true });
  });

  const phases = ['landed', 'annotated', 'staged', 'written', 'published', 'cataloged'] as const;
  it.each(phases)('killed after phase "%s" of hour 1', async (phase) => {
    const clock = fakeClock(new Date('2015-01-01T00:30:00Z'));
    const t = await createTestHome({ clock });
    try {
      const bookmarks = await BookmarkStore.open(t.backend.kv, clock);
      await bookmarks.record(
        'gharchive',
        { last_file: '2014-12-31-23.json.gz' },
        { advance: true, expected: undefined, runId: 'seed' },
      );
      const first = await runGharchive(t.ctx, { sourceUrl: source });
      expect(first.bookmark.after).toBe('2015-01-01-0.json.gz');

      const child = await runChild([t.home, source, '2015-01-01T01:30:00Z', '2015-01-01-1', phase]);
      expect(child.signal, child.stderr).toBe('SIGKILL');

      // Each partition is in its old or its new state, never in between.
      const [mid] = await t.query<{ n: number; ids: number }>(
        'SELECT count(*) AS n, count(DISTINCT id) AS ids FROM gharchive.events',
      );
      const committed = phase === 'published' || phase === 'cataloged';
      expect(mid).toEqual(
        committed ? { n: allIds.size, ids: allIds.size } : { n: hour0Ids.size, ids: hour0Ids.size },
      );
      expect((await bookmarks.current('gharchive'))?.last_file).toBe('2015-01-01-0.json.gz');

      // The next run takes over the dead child's lease, redoes hour 1 and converges.
      clock.set(new Date('2015-01-01T01:30:00Z'));
      const next = await runGharchive(t.ctx, { sourceUrl: source });
      expect(next.exitCode).toBe(0);
      expect(next.bookmark.after).toBe('2015-01-01-1.json.gz');
      const rows = await t.query<{ id: number }>('SELECT id FROM gharchive.events');
      expect(rows).toHaveLength(allIds.size);
      expect(new Set(rows.map((r) => String(r.id)))).toEqual(allIds);

      // No scratch files left, and the catalog lists exactly the files on disk.
      // (The check results of the hours are a dataset of their own, sluice.quality_results.)
      const analytical = path.join(t.home, 'lake/analytical');
      expect((await files(analytical)).filter((f) => !f.startsWith('sluice/quality_results/'))).toEqual([
        'gharchive/events/year=2015/month=01/dayofmonth=01/part-2015-01-01-0_0.parquet',
        'gharchive/events/year=2015/month=01/dayofmonth=01/part-2015-01-01-1_0.parquet',
      ]);
      const [partition] = await t.backend.catalog.listPartitions('gharchive', 'events');
      expect(partition?.files.map((f) => f.key).sort()).toEqual([
        'gharchive/events/year=2015/month=01/dayofmonth=01/part-2015-01-01-0_0.parquet',
        'gharchive/events/year=2015/month=01/dayofmonth=01/part-2015-01-01-1_0.parquet',
      ]);
      expect(partition?.rows).toBe(allIds.size);
      expect((await files(path.join(t.home, 'lake/landing'))).filter((f) => f.startsWith('_'))).toEqual([]);

      // The crashed run's steps are marked aborted, not left running.
      const runs = await (await RunLog.open(t.backend.kv, clock)).list({ pipeline: 'gharchive' });
      expect(runs.filter((r) => r.status === 'running')).toEqual([]);
      // "landed" falls between the finished ingest step and the transform step: nothing was running.
      expect(runs.some((r) => r.status === 'aborted')).toBe(phase !== 'landed');
    } finally {
      await t.close();
    }
  });
});
