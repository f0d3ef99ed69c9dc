import { describe, expect, it } from 'vitest';
import { SlidingEventTimeWindows, TumblingEventTimeWindows, windowStart } from './window-assigners.ts';

function assign(assigner: { assignWindows(ts: number, out: number[]): number }, ts: number): number[] {
  const out: number[] = [];
  const n = assigner.assignWindows(ts, out);
  return out.slice(0, n);
}

describe('window assigners', () => {
  it('aligns tumbling windows [start, end) to the epoch', () => {
    const w = TumblingEventTimeWindows.of(30_000);
    expect(assign(w, 0)).toEqual([0]);
    expect(assign(w, 29_999)).toEqual([0]);
    expect(assign(w, 30_000)).toEqual([30_000]);
    expect(assign(w, 1_700_000_012_345)).toEqual([1_700_000_010_000]);
    // before the epoch: [-30000, 0)
    expect(assign(w, -1)).toEqual([-30_000]);
    expect(assign(w, -30_000)).toEqual([-30_000]);
  });

  it('applies the offset', () => {
    const w = TumblingEventTimeWindows.of(3_600_000, 900_000);
    expect(assign(w, 900_000)).toEqual([900_000]);
    expect(assign(w, 899_999)).toEqual([-2_700_000]);
    expect(windowStart(7, 2, 5)).toBe(7);
    expect(windowStart(6, 2, 5)).toBe(2);
  });

  it('gives size/slide sliding windows, ascending, all holding the timestamp', () => {
    const w = SlidingEventTimeWindows.of(10_000, 2_000);
    expect(assign(w, 11_000)).toEqual([2_000, 4_000, 6_000, 8_000, 10_000]);
    expect(assign(w, 10_000)).toEqual([2_000, 4_000, 6_000, 8_000, 10_000]);
    expect(assign(w, 9_999)).toEqual([0, 2_000, 4_000, 6_000, 8_000]);
    // size not a multiple of slide: 3 or 4 windows
    const odd = SlidingEventTimeWindows.of(5_000, 2_000);
    expect(assign(odd, 4_500)).toEqual([0, 2_000, 4_000]);
    expect(assign(odd, 5_500)).toEqual([2_000, 4_000]);
  });

  it('rejects bad sizes and offsets', () => {
    expect(() => TumblingEventTimeWindows.of(0)).toThrow(RangeError);
    expect(() => TumblingEventTimeWindows.of(10, 10)).toThrow(RangeError);
    expect(() => SlidingEventTimeWindows.of(10, 0)).toThrow(RangeError);
  });
});
