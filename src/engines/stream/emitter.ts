/**
 * The wiring between operators: an {@link Emitter} pushes elements, watermarks and idleness to the
 * {@link Input}s attached to it, synchronously (no promise per element).
 */
import { MIN_WATERMARK } from './watermarks.ts';

/** What an operator receives from one upstream. */
export interface Input<T> {
  /** One element with its event timestamp (epoch ms). */
  element(value: T, timestamp: number): void;
  /** The upstream watermark advanced. */
  watermark(watermark: number): void;
  /** The upstream became idle (`true`) or active again (Flink `WatermarkStatus`). */
  status(idle: boolean): void;
}

/** The output of one operator (or one side output of it). */
export class Emitter<T> {
  private targets: Input<T>[] = [];
  private single: Input<T> | undefined;
  /** The last watermark sent downstream. */
  watermark = MIN_WATERMARK;
  /** Whether this output is idle (sends no watermarks and must not hold any back). */
  idle = false;

  attach(target: Input<T>): void {
    this.targets.push(target);
    this.single = this.targets.length === 1 ? target : undefined;
  }

  emit(value: T, timestamp: number): void {
    if (this.single !== undefined) {
      this.single.element(value, timestamp);
      return;
    }
    for (const target of this.targets) target.element(value, timestamp);
  }

  emitWatermark(watermark: number): void {
    if (watermark <= this.watermark) return;
    this.watermark = watermark;
    for (const target of this.targets) target.watermark(watermark);
  }

  emitStatus(idle: boolean): void {
    if (idle === this.idle) return;
    this.idle = idle;
    for (const target of this.targets) target.status(idle);
  }
}

/** Collects an operator's results (Flink `Collector`). */
export interface Collector<T> {
  collect(value: T): void;
}

/** A typed name for a side output (Flink `OutputTag`). */
export class OutputTag<T> {
  /** Phantom field carrying the element type. */
  declare readonly _type?: T;
  constructor(readonly id: string) {}
}

/** Emits to a side output by tag (the `ctx.output(tag, value)` of Flink's process functions). */
export type SideOutput = <S>(tag: OutputTag<S>, value: S) => void;

/** Something with state in checkpoints. */
export interface Stateful {
  snapshot(): unknown;
  restore(state: unknown): void;
}
