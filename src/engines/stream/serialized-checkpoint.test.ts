import { describe, expect, it } from 'vitest';
import { MemoryCheckpointStore } from './checkpoint-store.ts';
import { StreamExecutionEnvironment } from './data-stream.ts';
import { attachedCheckpointText, serializeCheckpoint } from './serialized-checkpoint.ts';
import { watermarkStrategy } from './watermarks.ts';
import { SlidingEventTimeWindows } from './window-assigners.ts';

interface Ev {
  k: string;
  t: number;
}

/** Sliding windows with object accumulators (shared live values the snapshot must not alias). */
function job() {
  const env = new StreamExecutionEnvironment();
  const src = env.fromSource<Ev>('in', {
    watermarks: watermarkStrategy({ timestamp: (e) => e.t, outOfOrderness: 500 }),
  });
  const results: string[] = [];
  src
    .keyBy((e) => e.k)
    .window(SlidingEventTimeWindows.of(4_000, 1_000))
    .aggregate<{ n: number; ts: number[] }, { n: number; ts: number[] }, string>(
      {
        createAccumulator: () => ({ n: 0, ts: [] }),
        add: (e, acc) => {
          acc.n++;
          acc.ts.push(e.t);
          return acc;
        },
        getResult: (acc) => acc,
      },
      (key, acc, ctx, out) => out.collect(`${key}@${ctx.window.start}=${acc.n}:${acc.ts.join(',')}`),
    )
    .sinkTo((r) => results.push(r));
  let line = 0;
  const push = (k: string, t: number) => src.collect({ k, t }, '0', line++);
  return { env, src, results, push };
}

describe('serialized checkpoints', () => {
  it('snapshot() is a detached plain checkpoint equal to snapshotSerialized() of the same state', () => {
    const a = job();
    const b = job();
    for (let i = 0; i < 40; i++) {
      a.push(`k${i % 3}`, i * 250);
      b.push(`k${i % 3}`, i * 250);
    }
    const lazy = a.env.snapshot();
    const text = b.env.snapshotSerialized();
    expect(lazy.id).toBe(1);
    expect(attachedCheckpointText(lazy)).toBe(text);
    a.push('k0', 10_000); // changes live accumulators after the snapshot
    expect(JSON.parse(JSON.stringify(lazy))).toEqual(JSON.parse(text));
    expect({ ...lazy }).toEqual(JSON.parse(text));
    expect(lazy.sources.in!.positions).toEqual({ '0': 39 });
  });

  it('restore of snapshot(), of a loaded checkpoint and of the text give identical continuations', async () => {
    const input: [string, number][] = [];
    for (let i = 0; i < 200; i++) input.push([`k${i % 4}`, i * 170 + ((i * 7) % 5) * 200]);
    const full = job();
    for (const [k, t] of input) full.push(k, t);
    full.src.end();

    const first = job();
    for (const [k, t] of input.slice(0, 100)) first.push(k, t);
    const snap = first.env.snapshot();
    const store = new MemoryCheckpointStore();
    await store.save('j', snap);
    expect(await store.loadSerialized('j')).toBe(serializeCheckpoint(snap));
    for (const [k, t] of input.slice(100, 130)) first.push(k, t); // mutates live state only

    const restored = [
      (j: ReturnType<typeof job>) => j.env.restore(snap),
      async (j: ReturnType<typeof job>) => j.env.restore((await store.load('j'))!),
      async (j: ReturnType<typeof job>) => j.env.restoreSerialized((await store.loadSerialized('j'))!),
      (j: ReturnType<typeof job>) => j.env.restore(JSON.parse(JSON.stringify(snap))), // a plain copy
    ];
    const loaded = await store.load('j');
    for (const restore of restored) {
      const second = job();
      await restore(second);
      input.slice(100).forEach(([k, t], i) => {
        second.src.collect({ k, t }, '0', 100 + i);
      });
      second.src.end();
      const firstBefore = first.results.slice(0, first.results.length); // includes post-snapshot firings
      const merged = new Set([...firstBefore, ...second.results]);
      expect([...merged].sort()).toEqual([...new Set(full.results)].sort());
      // the next checkpoint of a restored job continues the ids
      expect(second.env.snapshot().id).toBe(2);
    }
    // restoring twice from one loaded checkpoint does not share state between the jobs
    expect(JSON.stringify(await store.load('j'))).toBe(JSON.stringify(loaded));
  });

  it('MemoryCheckpointStore keeps the newest id and accepts wrappers without an id', async () => {
    const store = new MemoryCheckpointStore();
    const env = job().env;
    const one = env.snapshot();
    const two = env.snapshot();
    await store.save('j', two);
    await store.save('j', one);
    expect((await store.load('j'))?.id).toBe(2);
    await store.save('w', { engine: one, stats: { n: 1 } } as never);
    expect(await store.load('w')).toEqual({ engine: JSON.parse(serializeCheckpoint(one)), stats: { n: 1 } });
  });
});
