import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresServer } from '../../src/backends/local/postgres-server.ts';
import { ROOT } from '../helpers/samples.ts';

const exec = promisify(execFile);
const BIN = path.join(ROOT, 'bin/sluice.js');

/** Runs the CLI; resolves with its output and exit code (never rejects on a non-zero exit). */
async function sluice(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.SLUICE_WAREHOUSE_URL;
  try {
    const { stdout, stderr } = await exec(process.execPath, [BIN, ...args], { cwd: ROOT, env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('sluice warehouse and sluice query --warehouse (real processes)', () => {
  let home: string;
  beforeAll(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'sluice-wh-cli-'));
  });
  afterAll(async () => {
    await PostgresServer.stop(home).catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  });

  it('start, status, query across processes, SQL error exit 6, stop', async () => {
    const started = await sluice(['warehouse', 'start', '--home', home, '--json']);
    expect(started.code).toBe(0);
    const status = JSON.parse(started.stdout) as {
      running: boolean;
      port: number;
      url: string;
      started: boolean;
    };
    expect(status).toMatchObject({ running: true, started: true });
    expect(status.url).toBe(`postgresql://sluice@127.0.0.1:${status.port}/sluice`);

    // The server outlived the command that started it.
    const created = await sluice([
      'query',
      '--warehouse',
      'CREATE TABLE toll_table (transaction_id bigint, toll_booth varchar NOT NULL)',
      '--home',
      home,
    ]);
    expect(created.code).toBe(0);
    await sluice([
      'query',
      '--warehouse',
      "INSERT INTO toll_table VALUES (9007199254740993, 'york_rd')",
      '--home',
      home,
    ]);
    const rows = await sluice(['query', '--warehouse', 'SELECT * FROM toll_table', '--home', home, '--json']);
    expect(rows.code).toBe(0);
    // Exact beyond 2^53 in JSON.
    expect(rows.stdout).toContain('"transaction_id": 9007199254740993');

    const bad = await sluice(['query', '--warehouse', 'SELECT * FROM no_such_table', '--home', home]);
    expect(bad.code).toBe(6);
    expect(bad.stderr).toMatch(/error: relation "no_such_table" does not exist/);

    const human = await sluice(['warehouse', 'status', '--home', home]);
    expect(human.stdout).toMatch(/warehouse: running/);
    expect(human.stdout).toContain(`127.0.0.1:${status.port} only`);
    expect(human.stdout).not.toMatch(/sluice:[^@\s]+@/);

    const stopped = await sluice(['warehouse', 'stop', '--home', home]);
    expect(stopped).toMatchObject({ code: 0, stdout: 'warehouse stopped\n' });
    expect((await PostgresServer.status(home)).running).toBe(false);

    // On a stopped home, --warehouse starts the server for the query and stops it afterwards.
    const once = await sluice([
      'query',
      '--warehouse',
      'SELECT count(*) AS n FROM toll_table',
      '--home',
      home,
      '--json',
    ]);
    expect(JSON.parse(once.stdout)).toEqual([{ n: 1 }]);
    expect((await PostgresServer.status(home)).running).toBe(false);
  });
});
