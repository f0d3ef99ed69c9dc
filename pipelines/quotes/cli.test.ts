import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type QuotesFixtureServer, startQuotesFixture } from '../../src/sources/http/quotes-fixture.ts';
import { ROOT } from '../../test/helpers/samples.ts';

const BIN = path.join(ROOT, 'bin/sluice.js');

/** Runs the CLI; resolves with its exit code and output (never rejects on a non-zero exit). */
function sluice(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: ROOT, maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        const code = error ? ((error as { code?: number }).code ?? 1) : 0;
        resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
      },
    );
  });
}

let home: string;
let server: QuotesFixtureServer;
beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'sluice-quotes-cli-'));
  server = await startQuotesFixture({
    dataFile: path.join(ROOT, 'examples/data/quotes/quotes.json'),
    seed: 3,
  });
});
afterAll(async () => {
  await server.close();
  await rm(home, { recursive: true, force: true });
});

describe('sluice run quotes / sluice fixture-server quotes (real processes)', () => {
  it('polls with a simulated clock, then transforms the day', async () => {
    const polled = await sluice([
      'run',
      'quotes',
      '--api-url',
      server.url,
      '--polls',
      '30',
      '--start',
      '2024-01-01T23:45',
      '--home',
      home,
      '--json',
    ]);
    expect(polled.code).toBe(0);
    expect(JSON.parse(polled.stdout)).toMatchObject({
      stored: 30,
      first: '2024-01-01T23:45:00.000Z',
      last: '2024-01-02T00:14:00.000Z',
      days: [
        { date: '2024-01-01', rows: 15 },
        { date: '2024-01-02', rows: 15 },
      ],
      exitCode: 0,
    });
    const transformed = await sluice([
      'run',
      'quotes',
      '--transform',
      '--date',
      '2024-01-01',
      '--home',
      home,
    ]);
    expect(transformed.code).toBe(0);
    expect(transformed.stdout).toMatch(/read {5}15 rows of quotes_raw for 2024-01-01 \(1 page\)/);
    expect(transformed.stdout).toMatch(/wrote {4}analytical\/quotes\/quotes_agg\/dt=2024-01-01\//);
    expect(transformed.stdout).toMatch(/variance .*\(population, as numpy.var\)/);
    expect(transformed.stdout).toMatch(/distinct quotes {2}\d+ in 15 polls/);
  });

  it('refuses flags of other pipelines, a day not over, and fails with exit 4 when the API is down', async () => {
    const notOver = await sluice(['run', 'quotes', '--transform', '--date', '2999-01-01', '--home', home]);
    expect(notOver.code).toBe(2);
    expect(notOver.stderr).toMatch(/2999-01-01 is not over yet/);
    const mixed = await sluice(['run', 'quotes', '--polls', '3', '--input', 'x.json', '--home', home]);
    expect(mixed).toMatchObject({ code: 2, stderr: expect.stringMatching(/--input is not a quotes flag/) });
    const other = await sluice(['run', 'gharchive', '--polls', '3', '--home', home]);
    expect(other).toMatchObject({ code: 2, stderr: expect.stringMatching(/--polls is a quotes flag/) });
    const noPolls = await sluice(['run', 'quotes', '--home', home]);
    expect(noPolls).toMatchObject({ code: 2, stderr: expect.stringMatching(/needs --polls N/) });

    // A closed port: 3 attempts (the configured backoff: none), then exit 4 with nothing stored.
    const configured = await sluice(['config', 'set', 'quotes', 'retry_base_seconds', '0', '--home', home]);
    expect(configured.code).toBe(0);
    const down = await sluice([
      'run',
      'quotes',
      '--api-url',
      'http://127.0.0.1:1',
      '--polls',
      '2',
      '--start',
      '2024-05-01T00:00Z',
      '--home',
      home,
    ]);
    expect(down.code).toBe(4);
    expect(down.stdout).toMatch(
      /FAILED {3}the poll at 2024-05-01T00:00:00.000Z: .*failed 3 attempts; last error: .*ECONNREFUSED/,
    );
  });

  it('fixture-server quotes prints its URL, serves until SIGINT', async () => {
    const child = spawn(process.execPath, [BIN, 'fixture-server', 'quotes', '--port', '0', '--seed', '5'], {
      cwd: ROOT,
    });
    let text = '';
    child.stdout.on('data', (d: Buffer) => {
      text += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL in: ${text}`)), 20_000);
      child.stdout.on('data', () => {
        const m = /(http:\/\/127\.0\.0\.1:\d+)\/quotes\/random {2}\(seed 5\)/.exec(text);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
    });
    expect(text).toMatch(/serving 1508 quotes from .*examples\/data\/quotes\/quotes\.json/);
    const body = (await (await fetch(`${url}/quotes/random`)).json()) as { _id: string }[];
    const same = await startQuotesFixture({
      dataFile: path.join(ROOT, 'examples/data/quotes/quotes.json'),
      seed: 5,
    });
    try {
      const expected = (await (await fetch(`${same.url}/quotes/random`)).json()) as { _id: string }[];
      expect(body).toEqual(expected);
    } finally {
      await same.close();
    }
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(text).toMatch(/stopped after serving 1 quotes\n$/);
  });
});
