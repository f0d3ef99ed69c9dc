import { describe, expect, it } from 'vitest';
import { createTestHome } from '../../../test/helpers/context.ts';
import { KvCheckpointStore } from './checkpoint-store.ts';
import { StreamExecutionEnvironment } from './data-stream.ts';
import { OutputTag } from './emitter.ts';
import { watermarkStrategy } from './watermarks.ts';
import { SlidingEventTimeWindows, TumblingEventTimeWindows } from './window-assigners.ts';

interface Ev {
  k: string;
  t: number;
  v: number;
}

/** A job: 10 s tumbling windows per key, out-of-orderness 2 s, the given lateness; sums v. */
function sumJob(lateness: number) {
  const env = new StreamExecutionEnvironment();
  const src = env.fromSource<Ev>('in', {
    watermarks: watermarkStrategy({ timestamp: (e) => e.t, outOfOrderness: 2_000 }),
  });
  const late = new OutputTag<Ev>('late');
  const results: string[] = [];
  const lateSeen: number[] = [];
  const windowed = src
    .keyBy((e) => e.k)
    .window(TumblingEventTimeWindows.of(10_000))
    .allowedLateness(lateness)
    .sideOutputLateData(late)
    .process<string>((key, elements, ctx, out) =>
      out.collect(
        `${key}@${ctx.window.start}#${ctx.firing}=${elements.reduce((s, e) => s + e.v, 0)}(n=${elements.length})`,
      ),
    );
  windowed.sinkTo((r) => results.push(r));
  windowed.getSideOutput(late).sinkTo((e) => lateSeen.push(e.t));
  let line = 0;
  const push = (k: string, t: number, v = 1) => src.collect({ k, t, v }, 'shard-0', line++);
  return { env, src, results, lateSeen, push };
}

describe('keyed event-time windows', () => {
  it('fires when the watermark passes end - 1, out-of-order elements within the bound included', () => {
    const { push, results } = sumJob(0);
    push('a', 1_000);
    push('a', 9_999);
    push('b', 5_000);
    push('a', 11_000); // watermark 8_999
    push('a', 8_000); // out of order, on time
    expect(results).toEqual([]);
    push('a', 12_000); // watermark 9_999 = end - 1: fires [0, 10000)
    expect(results).toEqual(['a@0#0=3(n=3)', 'b@0#0=1(n=1)']);
  });

  it('re-fires a window per late element within the allowed lateness, then sends later ones aside', () => {
    const { push, src, results, lateSeen } = sumJob(5_000);
    push('a', 1_000);
    push('a', 12_000); // wm 9_999: fire #0
    push('a', 3_000, 10); // late, window kept until wm >= 14_999: re-fire with both
    push('a', 16_999); // wm 14_998: still kept
    push('a', 4_000, 100); // re-fire again
    push('a', 17_000); // wm 14_999: cleanup of [0,10000)
    push('a', 5_000); // too late: side output
    src.end();
    expect(results).toEqual(['a@0#0=1(n=1)', 'a@0#1=11(n=2)', 'a@0#2=111(n=3)', 'a@10000#0=3(n=3)']);
    expect(lateSeen).toEqual([5_000]);
  });

  it('counts per key on sliding windows (Nexmark q5 shape) and takes the max with reduce (q7 shape)', () => {
    const env = new StreamExecutionEnvironment();
    const src = env.fromSource<Ev>('bids', {
      watermarks: watermarkStrategy({ timestamp: (e) => e.t, outOfOrderness: 0 }),
    });
    const counts: string[] = [];
    src
      .keyBy((e) => e.k)
      .window(SlidingEventTimeWindows.of(10_000, 5_000))
      .aggregate<number, number, string>(
        { createAccumulator: () => 0, add: (_e, acc) => acc + 1, getResult: (acc) => acc },
        (key, count, ctx, out) => out.collect(`${key}[${ctx.window.start},${ctx.window.end})=${count}`),
      )
      .sinkTo((r) => counts.push(r));
    const maxes: number[] = [];
    src
      .keyBy(() => 0)
      .window(TumblingEventTimeWindows.of(10_000))
      .reduce((a, b) => (b.v > a.v ? b : a))
      .map((e) => e.v)
      .sinkTo((v) => maxes.push(v));
    for (const [k, t, v] of [
      ['x', 1_000, 5],
      ['x', 6_000, 9],
      ['y', 7_000, 2],
      ['x', 12_000, 1],
    ] as const)
      src.collect({ k, t, v });
    src.end();
    expect(counts).toEqual([
      'x[-5000,5000)=1',
      'x[0,10000)=2',
      'y[0,10000)=1',
      'x[5000,15000)=2',
      'y[5000,15000)=1',
      'x[10000,20000)=1',
    ]);
    expect(maxes).toEqual([9, 1]);
  });

  it('connects a keyed control stream with keyed state; the control source never holds the watermark', () => {
    const env = new StreamExecutionEnvironment();
    const data = env.fromSource<Ev>('data', {
      watermarks: watermarkStrategy({ timestamp: (e) => e.t, outOfOrderness: 0 }),
    });
    const control = env.fromSource<{ k: string; block: boolean }>('control');
    const out: string[] = [];
    data
      .keyBy((e) => e.k)
      .connect(control.keyBy((c) => c.k))
      .flatMap<Ev>({
        flatMap1: (e, ctx, o) => {
          if (ctx.state.valueState<boolean>('block').value() !== true) o.collect(e);
        },
        flatMap2: (c, ctx) => ctx.state.valueState<boolean>('block').update(c.block),
      })
      .keyBy((e) => e.k)
      .window(TumblingEventTimeWindows.of(10_000))
      .process<string>((key, els, ctx, o) => o.collect(`${key}@${ctx.window.start}=${els.length}`))
      .sinkTo((r) => out.push(r));
    control.collect({ k: 'b', block: true });
    data.collect({ k: 'a', t: 1_000, v: 1 });
    data.collect({ k: 'b', t: 2_000, v: 1 });
    data.collect({ k: 'a', t: 10_000, v: 1 }); // wm 9_999 fires [0, 10000)
    expect(out).toEqual(['a@0=1']);
  });

  it('restores a checkpoint into a new job and continues exactly like an uninterrupted one', async () => {
    const input: [string, number][] = [];
    for (let i = 0; i < 200; i++) input.push([`k${i % 7}`, i * 700 + ((i * 37) % 5) * 900]);
    const full = sumJob(3_000);
    for (const [k, t] of input) full.push(k, t);
    full.src.end();

    const test = await createTestHome();
    try {
      const store = new KvCheckpointStore(test.backend.kv);
      const first = sumJob(3_000);
      const emitted = new Set<string>();
      for (const [k, t] of input.slice(0, 90)) first.push(k, t);
      for (const r of first.results) emitted.add(r);
      await store.save('sum', first.env.snapshot());
      for (const [k, t] of input.slice(90, 120)) first.push(k, t); // emitted, then "crash"
      for (const r of first.results) emitted.add(r);

      const second = sumJob(3_000);
      second.env.restore((await store.load('sum'))!);
      const after = Number(second.src.positions()['shard-0']) + 1;
      expect(after).toBe(90);
      input.slice(after).forEach(([k, t], i) => {
        second.src.collect({ k, t, v: 1 }, 'shard-0', after + i);
      });
      second.src.end();
      for (const r of second.results) emitted.add(r);
      expect([...emitted].sort()).toEqual([...full.results].sort());
      expect(second.lateSeen).toEqual(full.lateSeen.filter((t) => input.slice(90).some(([, x]) => x === t)));
    } finally {
      await test.close();
    }
  });
});
