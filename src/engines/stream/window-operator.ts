/**
 * The keyed event-time window operator, after Flink's `WindowOperator` with the default
 * `EventTimeTrigger`
 * (https://nightlies.apache.org/flink/flink-docs-stable/docs/dev/datastream/operators/windows/):
 *
 * - An element is added to each window its assigner gives, unless the window is *late*:
 *   `maxTimestamp + allowedLateness <= watermark` (Flink `isWindowLate`). An element whose windows
 *   are all late is dropped, or sent to the late-data side output when one is set
 *   (`sideOutputLateData`).
 * - A window fires when the watermark reaches its `maxTimestamp` (`end - 1`). The trigger fires but
 *   does not purge: the contents stay until the cleanup time `maxTimestamp + allowedLateness`.
 * - An element that arrives after the window fired but before cleanup (a late element within the
 *   allowed lateness) is added and the window fires again at once with all its contents (Flink's
 *   `EventTimeTrigger.onElement` returns `FIRE` when `maxTimestamp <= watermark`): downstream gets
 *   an updated result per such element.
 * - When the watermark reaches the cleanup time the window's state is dropped (fire first when
 *   both are due at once, as with zero lateness).
 * - Results carry the timestamp `maxTimestamp` of their window.
 *
 * Each window keeps, besides its contents, how often it fired (`firing` in the
 * {@link WindowContext}): a deterministic number for idempotent sink ids (key + window + firing).
 */
import type { Collector, Emitter, Input, OutputTag, SideOutput, Stateful } from './emitter.ts';
import { MIN_WATERMARK } from './watermarks.ts';
import type { TimeWindow, WindowAssigner } from './window-assigners.ts';

/** What a window function sees besides the contents. */
export interface WindowContext {
  readonly window: TimeWindow;
  readonly currentWatermark: number;
  /** 0 for the first firing of this window, 1 for the first re-firing by a late element, ... */
  readonly firing: number;
  readonly output: SideOutput;
}

/** How a window's contents are kept: a list of elements, an accumulator, a running reduction. */
export interface WindowContents<IN, ACC> {
  create(): ACC;
  add(accumulator: ACC, value: IN): ACC;
}

/** Turns a window's contents into results on each firing. */
export type WindowEmit<K, ACC, OUT> = (
  key: K,
  accumulator: ACC,
  ctx: WindowContext,
  out: Collector<OUT>,
) => void;

interface Slot<ACC> {
  acc: ACC;
  firings: number;
}

/** A binary min-heap of numbers (window starts with pending timers). */
class NumberHeap {
  private readonly items: number[] = [];
  get size(): number {
    return this.items.length;
  }
  peek(): number {
    return this.items[0]!;
  }
  push(value: number): void {
    const a = this.items;
    let i = a.push(value) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]! <= value) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = value;
  }
  pop(): number {
    const a = this.items;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && a[r]! < a[l]! ? r : l;
        if (a[c]! >= last) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
  values(): number[] {
    return [...this.items].sort((x, y) => x - y);
  }
}

/** Options of a {@link WindowOperator}. */
export interface WindowOperatorOptions<IN, K extends string | number, ACC, OUT> {
  readonly keySelector: (value: IN) => K;
  readonly assigner: WindowAssigner;
  readonly allowedLateness: number;
  readonly lateTag: OutputTag<IN> | undefined;
  readonly contents: WindowContents<IN, ACC>;
  readonly emit: WindowEmit<K, ACC, OUT>;
  readonly output: Emitter<OUT>;
  /** Emitters of side outputs by tag id (late data and those the window function writes). */
  readonly sideOutput: (tagId: string) => Emitter<unknown> | undefined;
}

/** Keyed windows of one fixed size; see the module doc. */
export class WindowOperator<IN, K extends string | number, ACC, OUT> implements Input<IN>, Stateful {
  private readonly windows = new Map<K, Map<number, Slot<ACC>>>();
  private readonly fireTimers = new Map<number, K[]>();
  private readonly fireHeap = new NumberHeap();
  private readonly cleanupTimers = new Map<number, K[]>();
  private readonly cleanupHeap = new NumberHeap();
  private readonly starts: number[] = [];
  private readonly size: number;
  private readonly lateness: number;
  private currentWatermark = MIN_WATERMARK;
  private outTimestamp = 0;
  private readonly collector: Collector<OUT>;
  private readonly sideOutput: SideOutput;
  private readonly lateEmitter: Emitter<IN> | undefined;
  /** Elements dropped because all their windows were late and no late side output is set. */
  droppedLate = 0;

  constructor(private readonly options: WindowOperatorOptions<IN, K, ACC, OUT>) {
    this.size = options.assigner.size;
    this.lateness = options.allowedLateness;
    if (!Number.isSafeInteger(this.lateness) || this.lateness < 0) {
      throw new RangeError(`allowed lateness must be an integer number of ms >= 0, got ${this.lateness}`);
    }
    const output = options.output;
    this.collector = { collect: (value) => output.emit(value, this.outTimestamp) };
    this.sideOutput = (tag, value) => {
      const emitter = options.sideOutput(tag.id);
      if (emitter === undefined) throw new Error(`window function wrote to unknown side output "${tag.id}"`);
      emitter.emit(value, this.outTimestamp);
    };
    this.lateEmitter =
      options.lateTag === undefined ? undefined : (options.sideOutput(options.lateTag.id) as Emitter<IN>);
  }

  element(value: IN, timestamp: number): void {
    const { assigner, keySelector, contents } = this.options;
    const n = assigner.assignWindows(timestamp, this.starts);
    const key = keySelector(value);
    const watermark = this.currentWatermark;
    const last = this.size - 1;
    let skipped = true;
    let byStart: Map<number, Slot<ACC>> | undefined;
    for (let i = 0; i < n; i++) {
      const start = this.starts[i]!;
      const maxTs = start + last;
      if (maxTs + this.lateness <= watermark) continue; // isWindowLate
      skipped = false;
      if (byStart === undefined) {
        byStart = this.windows.get(key);
        if (byStart === undefined) {
          byStart = new Map();
          this.windows.set(key, byStart);
        }
      }
      let slot = byStart.get(start);
      if (slot === undefined) {
        slot = { acc: contents.create(), firings: 0 };
        byStart.set(start, slot);
        if (maxTs > watermark) this.register(this.fireTimers, this.fireHeap, start, key);
        this.register(this.cleanupTimers, this.cleanupHeap, start, key);
      }
      slot.acc = contents.add(slot.acc, value);
      if (maxTs <= watermark) this.fire(key, start, slot); // late within allowed lateness: re-fire
    }
    if (skipped) {
      if (this.lateEmitter !== undefined) this.lateEmitter.emit(value, timestamp);
      else this.droppedLate++;
    }
  }

  private register(timers: Map<number, K[]>, heap: NumberHeap, start: number, key: K): void {
    const keys = timers.get(start);
    if (keys === undefined) {
      timers.set(start, [key]);
      heap.push(start);
    } else keys.push(key);
  }

  private fire(key: K, start: number, slot: Slot<ACC>): void {
    const window = { start, end: start + this.size };
    this.outTimestamp = window.end - 1;
    const ctx: WindowContext = {
      window,
      currentWatermark: this.currentWatermark,
      firing: slot.firings,
      output: this.sideOutput,
    };
    slot.firings++;
    this.options.emit(key, slot.acc, ctx, this.collector);
  }

  watermark(watermark: number): void {
    if (watermark <= this.currentWatermark) return;
    this.currentWatermark = watermark;
    const last = this.size - 1;
    while (this.fireHeap.size > 0 && this.fireHeap.peek() + last <= watermark) {
      const start = this.fireHeap.pop();
      const keys = this.fireTimers.get(start)!;
      this.fireTimers.delete(start);
      for (const key of keys) {
        const slot = this.windows.get(key)?.get(start);
        if (slot !== undefined) this.fire(key, start, slot);
      }
    }
    while (this.cleanupHeap.size > 0 && this.cleanupHeap.peek() + last + this.lateness <= watermark) {
      const start = this.cleanupHeap.pop();
      const keys = this.cleanupTimers.get(start)!;
      this.cleanupTimers.delete(start);
      for (const key of keys) {
        const byStart = this.windows.get(key);
        if (byStart === undefined) continue;
        byStart.delete(start);
        if (byStart.size === 0) this.windows.delete(key);
      }
    }
    this.options.output.emitWatermark(watermark);
  }

  status(idle: boolean): void {
    this.options.output.emitStatus(idle);
  }

  /** Number of (key, window) pairs held. */
  get windowCount(): number {
    let n = 0;
    for (const byStart of this.windows.values()) n += byStart.size;
    return n;
  }

  snapshot(): unknown {
    return {
      watermark: this.currentWatermark,
      droppedLate: this.droppedLate,
      windows: [...this.windows].map(([key, byStart]) => [
        key,
        [...byStart].map(([start, slot]) => [start, slot.acc, slot.firings]),
      ]),
      fire: [...this.fireTimers],
      cleanup: [...this.cleanupTimers],
    };
  }

  restore(state: unknown): void {
    const s = state as {
      watermark: number;
      droppedLate: number;
      windows: [K, [number, ACC, number][]][];
      fire: [number, K[]][];
      cleanup: [number, K[]][];
    };
    this.currentWatermark = s.watermark;
    this.droppedLate = s.droppedLate;
    this.windows.clear();
    for (const [key, slots] of s.windows) {
      this.windows.set(key, new Map(slots.map(([start, acc, firings]) => [start, { acc, firings }])));
    }
    for (const [start, keys] of s.fire) {
      this.fireTimers.set(start, keys);
      this.fireHeap.push(start);
    }
    for (const [start, keys] of s.cleanup) {
      this.cleanupTimers.set(start, keys);
      this.cleanupHeap.push(start);
    }
  }
}
