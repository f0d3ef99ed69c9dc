import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../test/helpers/manual-clock.ts';
import {
  boundedOutOfOrderness,
  MIN_WATERMARK,
  SourceWatermarks,
  type WatermarkOutput,
  watermarkStrategy,
  withIdleness,
} from './watermarks.ts';

function recorder(): WatermarkOutput & { marks: (number | 'idle' | 'active')[] } {
  const marks: (number | 'idle' | 'active')[] = [];
  return {
    marks,
    emitWatermark: (w) => marks.push(w),
    markIdle: () => marks.push('idle'),
    markActive: () => marks.push('active'),
  };
}

describe('watermarks', () => {
  it('bounded out-of-orderness emits max timestamp - bound - 1', () => {
    const g = boundedOutOfOrderness<null>(20_000);
    const out = recorder();
    g.onPeriodicEmit(out);
    g.onEvent(null, 100_000, out);
    g.onPeriodicEmit(out);
    g.onEvent(null, 90_000, out); // out of order: max stays
    g.onPeriodicEmit(out);
    g.onEvent(null, 120_500, out);
    g.onPeriodicEmit(out);
    expect(out.marks).toEqual([MIN_WATERMARK, 79_999, 79_999, 100_499]);
  });

  it('marks an input idle after the timeout of processing time without elements, active on the next', () => {
    const clock = new ManualClock(new Date(1_000_000));
    const g = withIdleness(boundedOutOfOrderness<null>(0), 90_000, clock);
    const out = recorder();
    g.onEvent(null, 5_000, out);
    g.onPeriodicEmit(out); // activity since last check
    void clock.advance(10_000);
    g.onPeriodicEmit(out); // starts the inactivity period
    void clock.advance(90_000);
    g.onPeriodicEmit(out); // exactly 90 s: not yet (strictly longer, as Flink)
    void clock.advance(1);
    g.onPeriodicEmit(out); // idle
    g.onPeriodicEmit(out); // stays idle, emits nothing
    g.onEvent(null, 6_000, out); // active again
    g.onPeriodicEmit(out);
    expect(out.marks).toEqual([4_999, 4_999, 4_999, 'idle', 'active', 5_999]);
  });

  it('combines splits by the minimum over non-idle splits; all idle holds the watermark', () => {
    const clock = new ManualClock(new Date(0));
    const emitted: number[] = [];
    const idle: boolean[] = [];
    const w = new SourceWatermarks(
      watermarkStrategy<number>({
        timestamp: (t) => t,
        outOfOrderness: 1_000,
        idleness: { timeout: 5_000, clock },
      }),
      (wm) => emitted.push(wm),
      (i) => idle.push(i),
    );
    w.addSplit('a');
    w.addSplit('b');
    w.onEvent('a', 10_000, 10_000);
    expect(emitted).toEqual([]); // b holds it back at MIN
    w.onEvent('b', 7_000, 7_000);
    expect(emitted).toEqual([5_999]);
    w.onEvent('a', 20_000, 20_000);
    expect(w.current).toBe(5_999);
    // b goes quiet: two periodic emits 5 s + 1 ms apart (a keeps getting data)
    w.periodicEmit(); // both had activity
    void clock.advance(1);
    w.onEvent('a', 21_000, 21_000);
    w.periodicEmit(); // b: inactivity starts
    void clock.advance(5_001);
    w.onEvent('a', 22_000, 22_000);
    w.periodicEmit(); // b idle: a alone decides
    expect(emitted).toEqual([5_999, 20_999]);
    // a idle too: nothing advances, the source is idle
    void clock.advance(1);
    w.periodicEmit();
    void clock.advance(5_001);
    w.periodicEmit();
    expect(idle).toEqual([true]);
    expect(w.current).toBe(20_999);
    // b wakes up behind: the watermark never goes back
    w.onEvent('b', 8_000, 8_000);
    expect(idle).toEqual([true, false]);
    expect(w.current).toBe(20_999);
    w.onEvent('b', 30_000, 30_000);
    expect(w.current).toBe(28_999);
  });
});
