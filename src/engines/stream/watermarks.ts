/**
 * Watermarks, after Flink's `WatermarkGenerator` / `WatermarkStrategy`
 * (https://nightlies.apache.org/flink/flink-docs-stable/docs/dev/datastream/event-time/generating_watermarks/
 * and https://nightlies.apache.org/flink/flink-docs-stable/docs/concepts/time/).
 *
 * A watermark `W` asserts that no more elements with timestamp `<= W` are expected; event-time
 * windows fire when it passes their `end - 1`. Timestamps and watermarks are epoch ms.
 *
 * Periodic emission: Flink calls `onPeriodicEmit` every `autoWatermarkInterval` (200 ms of
 * processing time), so which records count as late depends on how fast a replay runs. This
 * engine instead emits after every record of a split (as if the interval were zero), which makes
 * a replay deterministic, and on {@link SourceWatermarks.periodicEmit} (driven by the injected
 * clock: that is where idleness is detected).
 */
import type { Clock } from '../../core/clock.ts';

/** The smallest watermark: nothing seen yet (Flink `Long.MIN_VALUE`). */
export const MIN_WATERMARK = Number.MIN_SAFE_INTEGER;
/** The watermark a bounded source emits at its end: fires every window (Flink `Long.MAX_VALUE`). */
export const MAX_WATERMARK = Number.MAX_SAFE_INTEGER;

/** Where a generator sends its watermarks (Flink `WatermarkOutput`). */
export interface WatermarkOutput {
  emitWatermark(watermark: number): void;
  /** This input has no data for now: it must not hold back the combined watermark. */
  markIdle(): void;
  /** The input has data again (also implied by {@link emitWatermark}). */
  markActive(): void;
}

/** Generates watermarks for one input (split, shard) (Flink `WatermarkGenerator`). */
export interface WatermarkGenerator<T> {
  /** Called for every element with its event timestamp. */
  onEvent(event: T, timestamp: number, output: WatermarkOutput): void;
  /** Called periodically (see the module doc): may emit a watermark or mark the input idle. */
  onPeriodicEmit(output: WatermarkOutput): void;
  /** JSON state for checkpoints. */
  snapshot(): unknown;
  restore(state: unknown): void;
}

/**
 * Bounded out-of-orderness (Flink `BoundedOutOfOrdernessWatermarks`): elements may arrive up to
 * `bound` ms after elements with later timestamps. Emits `maxTimestamp - bound - 1` (the `- 1`
 * so that an element exactly `bound` ms behind the newest is still on time); before any element,
 * {@link MIN_WATERMARK}.
 * @example boundedOutOfOrderness(20_000) // after an element at t=100_000: watermark 79_999
 */
export function boundedOutOfOrderness<T>(bound: number): WatermarkGenerator<T> {
  if (!Number.isSafeInteger(bound) || bound < 0) {
    throw new RangeError(`out-of-orderness bound must be an integer number of ms >= 0, got ${bound}`);
  }
  let max = MIN_WATERMARK + bound + 1;
  return {
    onEvent(_event, timestamp) {
      if (timestamp > max) max = timestamp;
    },
    onPeriodicEmit(output) {
      output.emitWatermark(max - bound - 1);
    },
    snapshot: () => max,
    restore(state) {
      max = state as number;
    },
  };
}

/**
 * Idleness (Flink `WatermarksWithIdleness` and its `IdlenessTimer`): when an input has had no
 * element for longer than `timeout` ms of processing time (the injected `clock`), it is marked
 * idle, so it no longer holds back the minimum of the watermarks of the inputs it is combined
 * with; its next element marks it active again. As in Flink, inactivity is measured between
 * periodic emissions: the first emission without new elements starts the inactivity period, and an
 * emission more than `timeout` after that start marks the input idle.
 *
 * With every input idle, the combined watermark does not advance (Flink: an all-idle input is
 * idle downstream too; processing time never moves event time).
 */
export function withIdleness<T>(
  generator: WatermarkGenerator<T>,
  timeout: number,
  clock: Clock,
): WatermarkGenerator<T> {
  if (!Number.isSafeInteger(timeout) || timeout <= 0) {
    throw new RangeError(`idleness timeout must be a positive integer number of ms, got ${timeout}`);
  }
  let counter = 0;
  let lastCounter = 0;
  let startOfInactivity = 0;
  let idle = false;
  return {
    onEvent(event, timestamp, output) {
      generator.onEvent(event, timestamp, output);
      counter++;
      if (idle) {
        idle = false;
        output.markActive();
      }
    },
    onPeriodicEmit(output) {
      if (counter !== lastCounter) {
        lastCounter = counter;
        startOfInactivity = 0;
      } else if (startOfInactivity === 0) {
        startOfInactivity = clock.now().getTime();
      } else if (clock.now().getTime() - startOfInactivity > timeout) {
        if (!idle) {
          idle = true;
          output.markIdle();
        }
        return;
      }
      if (!idle) generator.onPeriodicEmit(output);
    },
    snapshot: () => generator.snapshot(),
    restore(state) {
      generator.restore(state);
    },
  };
}

/** How a source gets timestamps and watermarks (Flink `WatermarkStrategy`). */
export interface WatermarkStrategy<T> {
  /** The event timestamp of an element, epoch ms. */
  timestampOf(event: T): number;
  /** A fresh generator for one input (split, shard). */
  createGenerator(): WatermarkGenerator<T>;
}

/** Shorthand for a strategy with bounded out-of-orderness and, when `idleness` is given, idleness. */
export function watermarkStrategy<T>(options: {
  timestamp: (event: T) => number;
  outOfOrderness: number;
  idleness?: { timeout: number; clock: Clock };
}): WatermarkStrategy<T> {
  const { idleness, outOfOrderness } = options;
  return {
    timestampOf: options.timestamp,
    createGenerator: () =>
      idleness === undefined
        ? boundedOutOfOrderness<T>(outOfOrderness)
        : withIdleness(boundedOutOfOrderness<T>(outOfOrderness), idleness.timeout, idleness.clock),
  };
}

/** One input's current watermark and idleness. */
class SplitOutput implements WatermarkOutput {
  watermark = MIN_WATERMARK;
  idle = false;
  constructor(private readonly onChange: () => void) {}
  emitWatermark(watermark: number): void {
    const wasIdle = this.idle;
    this.idle = false;
    if (watermark > this.watermark) {
      this.watermark = watermark;
      this.onChange();
    } else if (wasIdle) this.onChange();
  }
  markIdle(): void {
    if (!this.idle) {
      this.idle = true;
      this.onChange();
    }
  }
  markActive(): void {
    if (this.idle) {
      this.idle = false;
      this.onChange();
    }
  }
}

/**
 * The watermarks of one source with several inputs (splits: Kinesis shards, files), each with its
 * own generator, combined as Flink combines the splits of a source and the channels of an
 * operator (`StatusWatermarkValve`): the combined watermark is the minimum over the inputs that are
 * not idle, never moves backwards, and does not advance while all inputs are idle.
 */
export class SourceWatermarks<T> {
  private readonly splits = new Map<string, { generator: WatermarkGenerator<T>; output: SplitOutput }>();
  private combined = MIN_WATERMARK;
  private allIdle = false;

  /** @param onWatermark receives the combined watermark each time it advances. */
  constructor(
    private readonly strategy: WatermarkStrategy<T>,
    private readonly onWatermark: (watermark: number) => void,
    private readonly onIdleChange: (idle: boolean) => void = () => {},
  ) {}

  /** The combined watermark emitted last. */
  get current(): number {
    return this.combined;
  }

  /** True when every input is idle. */
  get idle(): boolean {
    return this.allIdle;
  }

  /** Declares an input before its first element, so it holds the watermark back until it is idle. */
  addSplit(split: string): void {
    if (!this.splits.has(split)) {
      const output = new SplitOutput(() => this.recompute());
      this.splits.set(split, { generator: this.strategy.createGenerator(), output });
    }
  }

  /** Feeds one element of `split`: `onEvent`, then `onPeriodicEmit` of that split's generator. */
  onEvent(split: string, event: T, timestamp: number): void {
    let entry = this.splits.get(split);
    if (entry === undefined) {
      this.addSplit(split);
      entry = this.splits.get(split)!;
    }
    entry.generator.onEvent(event, timestamp, entry.output);
    entry.generator.onPeriodicEmit(entry.output);
  }

  /** The periodic emission of every input (call on a processing-time interval: detects idleness). */
  periodicEmit(): void {
    for (const { generator, output } of this.splits.values()) generator.onPeriodicEmit(output);
  }

  private recompute(): void {
    let min = Number.POSITIVE_INFINITY;
    let active = 0;
    for (const { output } of this.splits.values()) {
      if (output.idle) continue;
      active++;
      if (output.watermark < min) min = output.watermark;
    }
    const allIdle = active === 0 && this.splits.size > 0;
    if (allIdle !== this.allIdle) {
      this.allIdle = allIdle;
      this.onIdleChange(allIdle);
    }
    if (active > 0 && min > this.combined) {
      this.combined = min;
      this.onWatermark(min);
    }
  }

  snapshot(): unknown {
    return {
      combined: this.combined,
      splits: [...this.splits].map(([split, { generator, output }]) => [
        split,
        generator.snapshot(),
        output.watermark,
      ]),
    };
  }

  restore(state: unknown): void {
    const s = state as { combined: number; splits: [string, unknown, number][] };
    this.combined = s.combined;
    for (const [split, generatorState, watermark] of s.splits) {
      this.addSplit(split);
      const entry = this.splits.get(split)!;
      entry.generator.restore(generatorState);
      entry.output.watermark = watermark;
    }
  }
}
