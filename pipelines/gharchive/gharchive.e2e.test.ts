import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type StaticServer, serveDirectory } from '../../src/sources/http/static-server.ts';
import { createTestHome, type TestHome } from '../../test/helpers/context.ts';
import {
  countBy,
  GHARCHIVE_SAMPLE,
  gzipLines,
  ROOT,
  sampleEvents,
  sampleLines,
} from '../../test/helpers/samples.ts';
import { runGharchive } from './run.ts';

const exec = promisify(execFile);
const HOUR0 = new Date('2015-01-01T00:00:00Z');
const HOUR1 = new Date('2015-01-01T01:00:00Z');

/** Runs the real CLI in a child process. */
async function sluice(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await exec(process.execPath, [path.join(ROOT, 'bin/sluice.js'), ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('gharchive end to end on the real 2015-01-01-0 hour over HTTP', () => {
  let server: StaticServer;
  let home: string;
  const events = sampleEvents();

  beforeAll(async () => {
    server = await serveDirectory(path.dirname(GHARCHIVE_SAMPLE));
    home = await mkdtemp(path.join(os.tmpdir(), 'sluice-e2e-'));
  });
  afterAll(async () => {
    await server.close();
    await rm(home, { recursive: true, force: true });
  });

  it('lands, transforms, catalogs and queries exactly the events of the raw file', async () => {
    const run = await sluice([
      'run',
      'gharchive',
      '--home',
      home,
      '--from',
      '2015-01-01T00',
      '--to',
      '2015-01-01T00',
      '--source-url',
      server.url,
      '--json',
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const summary = JSON.parse(run.stdout);
    expect(summary.totals).toEqual({
      read: events.length,
      loaded: events.length,
      duplicates: 0,
      quarantined: 0,
    });
    expect(server.requests).toContain('/2015-01-01-0.json.gz');

    // Landing holds the raw file byte for byte.
    const landed = await readFile(
      path.join(home, 'lake/landing/gharchive/date=2015-01-01/2015-01-01-0.json.gz'),
    );
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(sha(landed)).toBe(sha(await readFile(GHARCHIVE_SAMPLE)));

    // Snappy Parquet in a Hive partition.
    const partitionDir = path.join(home, 'lake/analytical/gharchive/events/year=2015/month=01/dayofmonth=01');
    expect(await readdir(partitionDir)).toEqual(['part-2015-01-01-0_0.parquet']);

    const count = await sluice([
      'query',
      'SELECT count(*) AS n, count(DISTINCT id) AS ids FROM gharchive.events',
      '--home',
      home,
      '--json',
    ]);
    expect(count.code).toBe(0);
    expect(JSON.parse(count.stdout)).toEqual([{ n: 7702, ids: 7702 }]);

    const byType = await sluice([
      'query',
      'SELECT type, count(*) AS n FROM gharchive.events GROUP BY type ORDER BY type',
      '--home',
      home,
      '--json',
    ]);
    const expected = countBy(events, (e) => String(e.type));
    const actual = Object.fromEntries(
      (JSON.parse(byType.stdout) as { type: string; n: number }[]).map((r) => [r.type, r.n]),
    );
    expect(actual).toEqual(expected);
  });

  it('flattens actor, repo and org, keeps payload as JSON and types created_at as a UTC timestamp', async () => {
    const raw = events.find((e) => e.org !== undefined && e.type === 'PushEvent') as {
      id: string;
      actor: { id: number; login: string; url: string };
      repo: { id: number; name: string };
      org: { id: number; login: string };
      payload: { head: string; commits: unknown[] };
      created_at: string;
      public: boolean;
    };
    const result = await sluice([
      'query',
      `SELECT id, actor_id, actor_login, actor_url, repo_id, repo_name, org_id, org_login, public, created_at,
              payload->>'$.head' AS head, json_array_length(payload->'$.commits') AS commits, year, month, dayofmonth
       FROM gharchive.events WHERE id = ${raw.id}`,
      '--home',
      home,
      '--json',
    ]);
    expect(JSON.parse(result.stdout)).toEqual([
      {
        id: Number(raw.id),
        actor_id: raw.actor.id,
        actor_login: raw.actor.login,
        actor_url: raw.actor.url,
        repo_id: raw.repo.id,
        repo_name: raw.repo.name,
        org_id: raw.org.id,
        org_login: raw.org.login,
        public: raw.public,
        created_at: new Date(raw.created_at).toISOString(),
        head: raw.payload.head,
        commits: raw.payload.commits.length,
        year: 2015,
        month: 1,
        dayofmonth: 1,
      },
    ]);
    const orgs = await sluice([
      'query',
      'SELECT count(*) AS n FROM gharchive.events WHERE org_id IS NOT NULL',
      '--home',
      home,
      '--json',
    ]);
    expect(JSON.parse(orgs.stdout)).toEqual([{ n: events.filter((e) => e.org !== undefined).length }]);
  });

  it('lists the table, its partition and the runs', async () => {
    const catalog = JSON.parse(
      (await sluice(['catalog', 'gharchive.events', '--home', home, '--json'])).stdout,
    );
    expect(catalog.partitionKeys.map((k: { name: string }) => k.name)).toEqual([
      'year',
      'month',
      'dayofmonth',
    ]);
    expect(catalog.columns.find((c: { name: string }) => c.name === 'payload')).toMatchObject({
      logicalType: 'json',
    });
    expect(catalog.partitions).toHaveLength(1);
    expect(catalog.partitions[0]).toMatchObject({ values: ['2015', '01', '01'], rows: 7702 });
    const runs = JSON.parse((await sluice(['runs', '--home', home, '--json'])).stdout) as {
      step: string;
      status: string;
      counts?: { read: number };
      details?: { checks?: { check: string; status: string; action: string; failing_rows: number }[] };
    }[];
    expect(runs.map((r) => [r.step, r.status])).toEqual([
      ['transform', 'succeeded'],
      ['ingest', 'succeeded'],
    ]);
    expect(runs[0]?.counts?.read).toBe(7702);
    // The transform's data-quality checks, in the JSON and as a compact column of the table.
    expect(runs[0]?.details?.checks?.map((c) => [c.check, c.status, c.action, c.failing_rows])).toEqual([
      ['not_null(id)', 'pass', 'none', 0],
      ['unique(id)', 'pass', 'none', 0],
      ['not_null(created_at)', 'pass', 'none', 0],
      ['type_is_event_type', 'pass', 'none', 0],
    ]);
    const table = (await sluice(['runs', '--home', home])).stdout.split('\n');
    expect(table[0]).toMatch(/\bchecks\b/);
    expect(table.find((line) => line.includes('transform'))).toContain('4 pass');
    const results = JSON.parse(
      (
        await sluice([
          'query',
          "SELECT check_name, status, rows_checked FROM sluice.quality_results WHERE pipeline = 'gharchive' ORDER BY 1",
          '--home',
          home,
          '--json',
        ])
      ).stdout,
    ) as unknown;
    expect(results).toEqual(
      ['not_null(created_at)', 'not_null(id)', 'type_is_event_type', 'unique(id)'].map((check_name) => ({
        check_name,
        status: 'pass',
        rows_checked: 7702,
      })),
    );
  });

  it('is idempotent: running the same hour again leaves the same rows and files', async () => {
    const again = await sluice([
      'run',
      'gharchive',
      '--home',
      home,
      '--from',
      '2015-01-01T00',
      '--to',
      '2015-01-01T00',
      '--source-url',
      server.url,
      '--json',
    ]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout).totals).toEqual({
      read: 7702,
      loaded: 7702,
      duplicates: 0,
      quarantined: 0,
    });
    const count = await sluice([
      'query',
      'SELECT count(*) AS n, count(DISTINCT id) AS ids FROM gharchive.events',
      '--home',
      home,
      '--json',
    ]);
    expect(JSON.parse(count.stdout)).toEqual([{ n: 7702, ids: 7702 }]);
    const partitionDir = path.join(home, 'lake/analytical/gharchive/events/year=2015/month=01/dayofmonth=01');
    expect(await readdir(partitionDir)).toEqual(['part-2015-01-01-0_0.parquet']);
  });
});

describe('gharchive deduplication', () => {
  let t: TestHome;
  let dir: string;
  const lines = sampleLines();

  beforeAll(async () => {
    t = await createTestHome();
    dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-src-'));
  });
  afterAll(async () => {
    await t.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps the first of duplicate ids inside a file and skips ids already in the lake', async () => {
    // Hour 0: the first 3,000 real events, with events 10..19 repeated at the end (changed type, so we can tell which copy won).
    const first = lines.slice(0, 3000);
    const repeats = lines.slice(10, 20).map((l) => l.replace(/"type":"[A-Za-z]+"/, '"type":"DuplicateCopy"'));
    await writeFile(path.join(dir, '2015-01-01-0.json.gz'), gzipLines([...first, ...repeats]));
    // Hour 1: events 2,500..5,999: 500 overlap with hour 0, 3,000 are new.
    await writeFile(path.join(dir, '2015-01-01-1.json.gz'), gzipLines(lines.slice(2500, 6000)));

    const summary = await runGharchive(t.ctx, { from: HOUR0, to: HOUR1, sourceUrl: dir });
    const [h0, h1] = summary.hours;
    expect(h0?.counts).toEqual({ read: 3010, loaded: 3000, duplicates: 10, quarantined: 0 });
    expect(h0?.transform?.duplicatesInFile).toBe(10);
    expect(h1?.counts).toEqual({ read: 3500, loaded: 3000, duplicates: 500, quarantined: 0 });
    expect(h1?.transform?.duplicatesInLake).toBe(500);

    const [row] = await t.query<{ n: number; ids: number; copies: number }>(
      `SELECT count(*) AS n, count(DISTINCT id) AS ids, count(*) FILTER (WHERE type = 'DuplicateCopy') AS copies FROM gharchive.events`,
    );
    expect(row).toEqual({ n: 6000, ids: 6000, copies: 0 });
  });

  it('re-ingesting an hour and overlapping ranges never duplicates a row', async () => {
    await runGharchive(t.ctx, { from: HOUR1, to: HOUR1, sourceUrl: dir });
    await runGharchive(t.ctx, { from: HOUR0, to: HOUR1, sourceUrl: dir });
    const [row] = await t.query<{ n: number; ids: number }>(
      'SELECT count(*) AS n, count(DISTINCT id) AS ids FROM gharchive.events',
    );
    expect(row).toEqual({ n: 6000, ids: 6000 });
  });
});
