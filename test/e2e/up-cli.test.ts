import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GHARCHIVE_SAMPLE, ROOT, sampleLines } from '../helpers/samples.ts';

const exec = promisify(execFile);
const BIN = path.join(ROOT, 'bin/sluice.js');

async function sluice(args: string[]): Promise<string> {
  const { stdout } = await exec(process.execPath, [BIN, ...args], { cwd: ROOT, maxBuffer: 16 << 20 });
  return stdout;
}

/** Resolves when the child's stdout has printed a line matching `pattern`. */
function waitFor(
  child: ChildProcessWithoutNullStreams,
  output: { text: string },
  pattern: RegExp,
  timeoutMs = 60_000,
) {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${pattern} in:\n${output.text}`)), timeoutMs);
    const check = () => {
      if (pattern.test(output.text)) {
        clearTimeout(timer);
        child.stdout.off('data', check);
        resolve();
      }
    };
    child.stdout.on('data', check);
    check();
  });
}

describe('sluice up (real process)', () => {
  let home: string;
  let emptyArchive: string;
  beforeAll(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'sluice-up-cli-'));
    emptyArchive = await mkdtemp(path.join(os.tmpdir(), 'sluice-empty-'));
  });
  afterAll(async () => {
    await rm(home, { recursive: true, force: true });
    await rm(emptyArchive, { recursive: true, force: true });
  });

  it('transforms a file copied into landing, shows it in executions, and stops gracefully on SIGINT', async () => {
    // Should the test cross the top of an hour, the hourly ingest must not reach for the internet.
    await sluice(['config', 'set', 'gharchive', 'source_url', emptyArchive, '--home', home]);
    const child = spawn(process.execPath, [BIN, 'up', '--home', home, '--grace', '5', '--port', '0'], {
      cwd: ROOT,
    });
    const output = { text: '' };
    child.stdout.on('data', (d: Buffer) => {
      output.text += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      output.text += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor(child, output, /running; Ctrl-C to stop/);
      expect(output.text).toMatch(/schedule gharchive-hourly: rate\(1 hour\) -> gharchive-ingest/);
      expect(output.text).toMatch(
        /trigger {2}gharchive-landed: landing\/gharchive\/\*\.json\.gz -> gharchive-transform/,
      );

      const dir = path.join(home, 'lake/landing/gharchive/date=2015-01-01');
      await mkdir(dir, { recursive: true });
      await copyFile(GHARCHIVE_SAMPLE, path.join(dir, '2015-01-01-0.json.gz'));
      await waitFor(child, output, /succeeded gharchive-transform:/);

      const executions = JSON.parse(await sluice(['executions', '--home', home, '--json'])) as {
        executionId: string;
        workflow: string;
        status: string;
        source: { kind: string; detail: string };
      }[];
      const transform = executions.find((e) => e.workflow === 'gharchive-transform');
      expect(transform).toMatchObject({
        status: 'SUCCEEDED',
        source: { kind: 'object-created', detail: 'gharchive/date=2015-01-01/2015-01-01-0.json.gz' },
      });
      const history = await sluice(['execution', transform!.executionId, '--home', home]);
      expect(history).toMatch(/StateEntered\s+TransformHour/);
      expect(history).toMatch(/ExecutionSucceeded/);
      const [count] = JSON.parse(
        await sluice(['query', 'SELECT count(*) AS n FROM gharchive.events', '--home', home, '--json']),
      );
      expect(count).toEqual({ n: sampleLines().length });

      const schedules = JSON.parse(await sluice(['schedules', '--home', home, '--json'])) as {
        name: string;
        next: string[];
      }[];
      const hourly = schedules.find((s) => s.name === 'gharchive-hourly');
      expect(hourly?.next).toHaveLength(3);
      const times = hourly!.next.map((t) => Date.parse(t));
      expect(times.map((t) => t % 3_600_000)).toEqual([0, 0, 0]);
      expect([times[1]! - times[0]!, times[2]! - times[1]!]).toEqual([3_600_000, 3_600_000]);
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
    expect(output.text).toMatch(/SIGINT: stopping/);
    expect(output.text).toMatch(/stopped\n$/);
  });
});
