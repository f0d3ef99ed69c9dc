import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HASHTAGS_SAMPLES } from '../../../test/helpers/samples.ts';
import { UsageError } from '../../core/errors.ts';
import { replayFiles } from './replay.ts';
import type { TweetInput } from './types.ts';

let dir: string;
let counter = 0;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-twitter-replay-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function statusLine(id: number): string {
  return JSON.stringify({
    created_at: 'Sat Mar 10 14:03:15 +0000 2018',
    id_str: String(id),
    text: `status ${id}`,
    user: { screen_name: 'someone' },
  });
}

/** An NDJSON file of `n` statuses (ids from `first`), with a control message and a bad line after the first. */
async function captureFile(n: number, first = 1): Promise<string> {
  const lines = Array.from({ length: n }, (_, k) => statusLine(first + k));
  lines.splice(1, 0, '{"delete":{"status":{"id_str":"1"}}}', '{"truncated');
  const file = path.join(dir, `${++counter}.ndjson`);
  await writeFile(file, lines.join('\n'));
  return file;
}

/** A fake clock: `sleep` moves time forward at once and records the wait. */
function fakeClock(start: number) {
  const clock = {
    time: start,
    sleeps: [] as number[],
    now: () => clock.time,
    sleep: async (ms: number) => {
      clock.sleeps.push(ms);
      clock.time += ms;
    },
  };
  return clock;
}

/** Status ids and the (fake) time each status was yielded at; `work` is the consumer's time per input. */
async function replayTimes(
  files: string[],
  ratePerSecond: number,
  clock: ReturnType<typeof fakeClock>,
  work: (input: TweetInput, k: number) => number = () => 0,
) {
  const statuses: { id: string | undefined; at: number }[] = [];
  const kinds: string[] = [];
  let k = 0;
  for await (const input of replayFiles(files, { ratePerSecond, now: clock.now, sleep: clock.sleep })) {
    kinds.push(input.kind);
    if (input.kind === 'v1') statuses.push({ id: input.status.id_str, at: clock.time });
    clock.time += work(input, k++);
  }
  return { statuses, kinds };
}

describe('replayFiles', () => {
  it('yields every input of the files in order, as fast as possible without a rate', async () => {
    const clock = fakeClock(0);
    const a = await captureFile(3, 1);
    const b = await captureFile(2, 10);
    const { statuses, kinds } = await replayTimes([a, b], 0, clock);
    expect(statuses.map((s) => s.id)).toEqual(['1', '2', '3', '10', '11']);
    expect(kinds).toEqual(['v1', 'control', 'bad', 'v1', 'v1', 'v1', 'control', 'bad', 'v1']);
    expect(clock.sleeps).toEqual([]);
  });

  it('paces statuses against the start time, so the consumer time does not add drift', async () => {
    const clock = fakeClock(5_000);
    const a = await captureFile(4, 1);
    const b = await captureFile(3, 10);
    // 10 statuses per second = one every 100 ms; the consumer spends 30 ms on each input.
    const { statuses } = await replayTimes([a, b], 10, clock, () => 30);
    // Status k is due at start + k * 100 ms, across both files.
    expect(statuses.map((s) => s.at)).toEqual([0, 1, 2, 3, 4, 5, 6].map((k) => 5_000 + k * 100));
    // Controls and bad lines are not paced (they pass at once); the waits make up the rest.
    expect(clock.sleeps.every((ms) => ms > 0 && ms <= 100)).toBe(true);
  });

  it('catches up after a stall and then keeps the original schedule', async () => {
    const clock = fakeClock(0);
    const file = path.join(dir, 'seven.ndjson');
    await writeFile(file, Array.from({ length: 7 }, (_, k) => statusLine(k + 1)).join('\n'));
    // The consumer stalls 350 ms on the second status (due at 100): statuses due at 200, 300 and 400 are
    // late and go at once (at 450), the one due at 500 waits until 500, the next until 600.
    const { statuses } = await replayTimes([file], 10, clock, (_, k) => (k === 1 ? 350 : 0));
    expect(statuses.map((s) => s.at)).toEqual([0, 100, 450, 450, 450, 500, 600]);
  });

  it('replays the bundled v2 sample at a rate: 100 statuses over 99 intervals', async () => {
    const clock = fakeClock(0);
    let last = 0;
    let n = 0;
    for await (const input of replayFiles([HASHTAGS_SAMPLES.v2Search], {
      ratePerSecond: 50,
      now: clock.now,
      sleep: clock.sleep,
    })) {
      expect(input.kind).toBe('v2');
      last = clock.time;
      n++;
    }
    expect(n).toBe(100);
    expect(last).toBe(99 * 20);
  });

  it('stops when the signal aborts, also during a wait', async () => {
    const file = await captureFile(3);
    const controller = new AbortController();
    const reason = new Error('stopped');
    const iterator = replayFiles([file], {
      ratePerSecond: 1,
      now: () => 0,
      sleep: () => new Promise<void>(() => {}), // never wakes by itself
      signal: controller.signal,
    })[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toMatchObject({ kind: 'v1' });
    expect((await iterator.next()).value).toMatchObject({ kind: 'control' });
    expect((await iterator.next()).value).toMatchObject({ kind: 'bad' });
    const waiting = iterator.next(); // the second status waits for its time
    controller.abort(reason);
    await expect(waiting).rejects.toBe(reason);

    const aborted = new AbortController();
    aborted.abort(reason);
    await expect(replayFiles([file], { signal: aborted.signal }).next()).rejects.toBe(reason);
  });

  it('rejects a bad rate and a missing file', async () => {
    await expect(replayFiles([], { ratePerSecond: -1 }).next()).rejects.toThrow(RangeError);
    await expect(replayFiles([path.join(dir, 'nope.json')]).next()).rejects.toThrow(UsageError);
  });
});
