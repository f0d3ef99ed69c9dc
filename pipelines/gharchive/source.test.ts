import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BookmarkStore } from '../../src/core/bookmark.ts';
import { ExitCode, LeaseHeldError } from '../../src/core/errors.ts';
import { Lease } from '../../src/core/lease.ts';
import { RunLog } from '../../src/core/run.ts';
import { createTestHome, fakeClock, type TestHome } from '../../test/helpers/context.ts';
import { GHARCHIVE_SAMPLE, gzipLines, ROOT, sampleLines } from '../../test/helpers/samples.ts';
import { runGharchive } from './run.ts';

const FAST_RETRY = { baseDelayMs: 1, maxDelayMs: 2 };

/** An archive server: serves `files` by name, 404 otherwise; `failures[name]` 503s before serving. */
async function archiveServer(files: Map<string, Buffer>, failures: Map<string, number> = new Map()) {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const name = (req.url ?? '/').slice(1);
    requests.push(name);
    const remaining = failures.get(name) ?? 0;
    if (remaining > 0) {
      failures.set(name, remaining - 1);
      res.writeHead(503).end('try later');
      return;
    }
    const body = files.get(name);
    if (!body) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('gharchive source behaviour', () => {
  const lines = sampleLines();
  let t: TestHome;
  let clock: ReturnType<typeof fakeClock>;
  let server: Awaited<ReturnType<typeof archiveServer>> | undefined;

  beforeEach(async () => {
    clock = fakeClock(new Date('2015-01-01T02:10:00Z'));
    t = await createTestHome({ clock });
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await t.close();
  });

  async function seedBookmark(lastFile: string) {
    const bookmarks = await BookmarkStore.open(t.backend.kv, clock);
    await bookmarks.record(
      'gharchive',
      { last_file: lastFile },
      { advance: true, expected: undefined, runId: 'seed' },
    );
    return bookmarks;
  }

  it('retries 5xx with backoff and then loads the hour', async () => {
    const sample = await readFile(GHARCHIVE_SAMPLE);
    server = await archiveServer(
      new Map([['2015-01-01-0.json.gz', sample]]),
      new Map([['2015-01-01-0.json.gz', 2]]),
    );
    const summary = await runGharchive(t.ctx, {
      from: new Date('2015-01-01T00:00:00Z'),
      to: new Date('2015-01-01T00:00:00Z'),
      sourceUrl: server.url,
      fetch: FAST_RETRY,
    });
    expect(summary.exitCode).toBe(0);
    expect(summary.totals.loaded).toBe(7702);
    expect(server.requests.filter((r) => r === '2015-01-01-0.json.gz')).toHaveLength(3);
    expect(clock.sleeps).toHaveLength(2);
    const ingest = (await (await RunLog.open(t.backend.kv, clock)).list()).find((r) => r.step === 'ingest');
    expect(ingest?.details?.attempts).toBe(3);
  });

  it('stops with exit code 4 when the source stays unavailable, leaving the bookmark alone', async () => {
    const bookmarks = await seedBookmark('2014-12-31-23.json.gz');
    server = await archiveServer(new Map(), new Map([['2015-01-01-0.json.gz', 1000]]));
    const summary = await runGharchive(t.ctx, {
      sourceUrl: server.url,
      fetch: { ...FAST_RETRY, retries: 3 },
    });
    expect(summary.exitCode).toBe(ExitCode.unavailable);
    expect(summary.hours).toHaveLength(1);
    expect(summary.hours[0]?.status).toBe('failed');
    expect(summary.hours[0]?.error).toMatch(/2015-01-01-0\.json\.gz.*unavailable after 4 attempts/);
    expect(server.requests).toHaveLength(4);
    expect((await bookmarks.current('gharchive'))?.last_file).toBe('2014-12-31-23.json.gz');
    const [ingest] = await (await RunLog.open(t.backend.kv, clock)).list();
    expect(ingest).toMatchObject({ step: 'ingest', status: 'failed' });
  });

  it('incremental: loads published hours from the bookmark, stops cleanly at a 404, continues next run', async () => {
    const bookmarks = await seedBookmark('2014-12-31-23.json.gz');
    const files = new Map([['2015-01-01-0.json.gz', gzipLines(lines.slice(0, 100))]]);
    server = await archiveServer(files);
    const first = await runGharchive(t.ctx, { sourceUrl: server.url, fetch: FAST_RETRY });
    expect(first.exitCode).toBe(0);
    expect(first.mode).toBe('incremental');
    expect(first.hours.map((h) => [h.file, h.status])).toEqual([
      ['2015-01-01-0.json.gz', 'succeeded'],
      ['2015-01-01-1.json.gz', 'not_published'],
    ]);
    expect(first.stoppedAt).toBe('2015-01-01-1.json.gz');
    expect(first.bookmark).toEqual({ before: '2014-12-31-23.json.gz', after: '2015-01-01-0.json.gz' });

    // Nothing new: the same hour 404s again, bookmark unchanged.
    const idle = await runGharchive(t.ctx, { sourceUrl: server.url, fetch: FAST_RETRY });
    expect(idle.hours.map((h) => h.status)).toEqual(['not_published']);
    expect((await bookmarks.current('gharchive'))?.last_file).toBe('2015-01-01-0.json.gz');

    files.set('2015-01-01-1.json.gz', gzipLines(lines.slice(100, 250)));
    const second = await runGharchive(t.ctx, { sourceUrl: server.url, fetch: FAST_RETRY });
    expect(second.hours.map((h) => [h.file, h.status])).toEqual([
      ['2015-01-01-1.json.gz', 'succeeded'],
      ['2015-01-01-2.json.gz', 'not_published'],
    ]);
    expect(second.bookmark.after).toBe('2015-01-01-1.json.gz');
    const [row] = await t.query<{ n: number }>('SELECT count(*) AS n FROM gharchive.events');
    expect(row?.n).toBe(250);
    const history = await bookmarks.history('gharchive');
    expect(history.map((h) => (h.job_run_bookmark_details as { last_file: string }).last_file)).toEqual([
      '2015-01-01-1.json.gz',
      '2015-01-01-0.json.gz',
      '2014-12-31-23.json.gz',
    ]);
  });

  it('first incremental run starts at <today - baseline_days>-0', async () => {
    clock.set(new Date('2015-01-04T00:30:00Z'));
    server = await archiveServer(new Map([['2015-01-01-0.json.gz', gzipLines(lines.slice(0, 10))]]));
    const summary = await runGharchive(t.ctx, { sourceUrl: server.url, fetch: FAST_RETRY });
    expect(summary.range.from).toBe('2015-01-01T00:00:00.000Z');
    expect(summary.hours.map((h) => h.status)).toEqual(['succeeded', 'not_published']);
    const bookmarks = await BookmarkStore.open(t.backend.kv, clock);
    const job = await bookmarks.ensureJob('gharchive', {});
    expect(job.baseline_days).toBe(3);
    expect(job.bookmark).toMatchObject({ last_file: '2015-01-01-0.json.gz' });
  });

  it('a backfill records its hours but does not move the bookmark', async () => {
    const bookmarks = await seedBookmark('2015-01-01-5.json.gz');
    server = await archiveServer(new Map([['2015-01-01-0.json.gz', gzipLines(lines.slice(0, 10))]]));
    const summary = await runGharchive(t.ctx, {
      from: new Date('2015-01-01T00:00:00Z'),
      to: new Date('2015-01-01T00:00:00Z'),
      sourceUrl: server.url,
    });
    expect(summary.mode).toBe('backfill');
    expect(summary.bookmark).toEqual({ before: '2015-01-01-5.json.gz', after: '2015-01-01-5.json.gz' });
    const [latest] = await bookmarks.history('gharchive');
    expect(latest).toMatchObject({
      mode: 'backfill',
      job_run_bookmark_details: { last_file: '2015-01-01-0.json.gz' },
    });
  });

  it('refuses to run while a live run holds the lease, and takes over from a dead one', async () => {
    server = await archiveServer(new Map([['2015-01-01-0.json.gz', gzipLines(lines.slice(0, 10))]]));
    const options = {
      from: new Date('2015-01-01T00:00:00Z'),
      to: new Date('2015-01-01T00:00:00Z'),
      sourceUrl: server.url,
    };
    const held = await Lease.acquire(
      t.backend.kv,
      'pipeline:gharchive',
      { id: 'other-run', host: os.hostname(), pid: process.pid },
      { clock, isAlive: t.backend.isAlive },
    );
    await expect(runGharchive(t.ctx, options)).rejects.toThrow(LeaseHeldError);
    await held.release();

    // A holder whose process is gone (a pid that has exited) does not block.
    const exited = await new Promise<number>((resolve) => {
      const child = execFile(process.execPath, ['-e', '0'], () => resolve(child.pid ?? 0));
    });
    const table = await t.backend.kv.table('sluice_leases', { hashKey: { name: 'name', type: 'S' } });
    await table.put({
      name: 'pipeline:gharchive',
      owner: 'dead-run',
      host: os.hostname(),
      pid: exited,
      acquired_at: clock.now().toISOString(),
      expires_at: clock.now().getTime() + 3_600_000,
    });
    const summary = await runGharchive(t.ctx, options);
    expect(summary.totals.loaded).toBe(10);
  });
});

describe('sluice run: usage errors', () => {
  const exec = promisify(execFile);
  async function cli(args: string[]) {
    try {
      await exec(process.execPath, [path.join(ROOT, 'bin/sluice.js'), ...args], { cwd: os.tmpdir() });
      return { code: 0, stderr: '' };
    } catch (error) {
      return error as { code: number; stderr: string };
    }
  }

  it('names the flag, the value and the expected form', async () => {
    const bad = await cli([
      'run',
      'gharchive',
      '--from',
      '2015-13-01T00',
      '--home',
      path.join(os.tmpdir(), 'sluice-usage'),
    ]);
    expect(bad.code).toBe(ExitCode.usage);
    expect(bad.stderr).toContain('--from "2015-13-01T00" is not a UTC hour: expected YYYY-MM-DDTHH');
    const unknown = await cli(['run', 'nope', '--home', path.join(os.tmpdir(), 'sluice-usage')]);
    expect(unknown.code).toBe(ExitCode.usage);
    expect(unknown.stderr).toContain('unknown pipeline "nope": expected one of gharchive');
  });
});
