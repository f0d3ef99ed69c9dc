/**
 * Event-time window assigners, after Flink's `TumblingEventTimeWindows` and
 * `SlidingEventTimeWindows`
 * (https://nightlies.apache.org/flink/flink-docs-stable/docs/dev/datastream/operators/windows/).
 *
 * A window is the half-open interval `[start, end)` of epoch milliseconds; its
 * {@link maxTimestamp} is `end - 1`, the last instant it holds and the time its event-time
 * trigger fires at. Windows are aligned to the epoch (1970-01-01T00:00:00Z) plus an optional
 * `offset`: an hourly window with offset 15 min spans `[hh:15, hh+1:15)`.
 *
 * Both assigners produce windows of one fixed `size`, so the engine identifies a window by its
 * `start` alone (no object per element); {@link TimeWindow} objects are built only when a window
 * fires.
 */

/** A window `[start, end)` in epoch ms (Flink `TimeWindow`). */
export interface TimeWindow {
  readonly start: number;
  /** Exclusive. */
  readonly end: number;
}

/** The last timestamp that belongs to the window: `end - 1` (Flink `TimeWindow.maxTimestamp()`). */
export function maxTimestamp(window: TimeWindow): number {
  return window.end - 1;
}

/**
 * Start of the window of `size` (aligned to the epoch plus `offset`) that holds `timestamp`:
 * Flink's `TimeWindow.getWindowStartWithOffset`, `ts - (ts - offset + size) % size`, made correct
 * for timestamps before the epoch too.
 */
export function windowStart(timestamp: number, offset: number, size: number): number {
  const remainder = (timestamp - offset) % size;
  return remainder < 0 ? timestamp - remainder - size : timestamp - remainder;
}

/**
 * Assigns an element to windows of one fixed size. `assignWindows` writes the starts of the
 * element's windows into `out` (cleared first, reused between calls to avoid an array per element)
 * and returns how many it wrote, in ascending order of start.
 */
export interface WindowAssigner {
  readonly kind: 'tumbling' | 'sliding';
  /** Length of every window, ms. */
  readonly size: number;
  assignWindows(timestamp: number, out: number[]): number;
}

function checkMs(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`${name} must be an integer number of ms >= ${min}, got ${value}`);
  }
}

/**
 * Tumbling event-time windows: consecutive, non-overlapping windows of `size` ms; each element
 * belongs to exactly one, `[windowStart(ts), windowStart(ts) + size)`.
 * @example TumblingEventTimeWindows.of(30_000) // [0, 30000), [30000, 60000), ...
 * @throws {RangeError} unless `size` is a positive integer and `0 <= |offset| < size`.
 */
export class TumblingEventTimeWindows implements WindowAssigner {
  readonly kind = 'tumbling' as const;

  private constructor(
    readonly size: number,
    readonly offset: number,
  ) {}

  static of(size: number, offset = 0): TumblingEventTimeWindows {
    checkMs('tumbling window size', size, 1);
    if (!Number.isSafeInteger(offset) || Math.abs(offset) >= size) {
      throw new RangeError(`tumbling window offset must satisfy |offset| < size (${size}), got ${offset}`);
    }
    return new TumblingEventTimeWindows(size, offset);
  }

  assignWindows(timestamp: number, out: number[]): number {
    out[0] = windowStart(timestamp, this.offset, this.size);
    return 1;
  }
}

/**
 * Sliding (hopping) event-time windows of `size` ms starting every `slide` ms; an element belongs
 * to `ceil(size / slide)` windows (fewer never: the windows that end before it are not assigned),
 * as Flink's `SlidingEventTimeWindows`: the last start is `windowStart(ts, offset, slide)`, then
 * every `slide` back while `start > ts - size`.
 * @example SlidingEventTimeWindows.of(10_000, 2_000) // 5 windows per element
 * @throws {RangeError} unless `size` and `slide` are positive integers and `0 <= |offset| < slide`.
 */
export class SlidingEventTimeWindows implements WindowAssigner {
  readonly kind = 'sliding' as const;

  private constructor(
    readonly size: number,
    readonly slide: number,
    readonly offset: number,
  ) {}

  static of(size: number, slide: number, offset = 0): SlidingEventTimeWindows {
    checkMs('sliding window size', size, 1);
    checkMs('sliding window slide', slide, 1);
    if (!Number.isSafeInteger(offset) || Math.abs(offset) >= slide) {
      throw new RangeError(`sliding window offset must satisfy |offset| < slide (${slide}), got ${offset}`);
    }
    return new SlidingEventTimeWindows(size, slide, offset);
  }

  assignWindows(timestamp: number, out: number[]): number {
    const last = windowStart(timestamp, this.offset, this.slide);
    let n = 0;
    // Ascending: start at the earliest window still holding `timestamp`.
    let first = last;
    while (first - this.slide > timestamp - this.size) first -= this.slide;
    for (let start = first; start <= last; start += this.slide) out[n++] = start;
    out.length = n;
    return n;
  }
}
