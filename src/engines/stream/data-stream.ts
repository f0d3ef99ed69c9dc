/**
 * A small DataStream API with Flink's vocabulary
 * (https://nightlies.apache.org/flink/flink-docs-stable/docs/dev/datastream/overview/): sources,
 * `map` / `filter` / `flatMap` / `process` (side outputs), `keyBy`, `window(assigner)` with
 * `allowedLateness` and `sideOutputLateData`, `process` / `aggregate` / `reduce` on windows,
 * `connect` of two keyed streams into a co-flat-map with keyed state, and sinks.
 *
 * Execution is push-based and synchronous: the driver (a replay, a stream poller) hands each
 * element to a {@link SourceStream} with `collect`; it flows through the chain in the same call,
 * and sinks receive results synchronously (they buffer; the driver writes batches and then
 * checkpoints). No promise per element.
 *
 * Checkpoints ({@link StreamExecutionEnvironment.snapshot}): the state of every stateful operator
 * (windows, timers, watermarks, keyed state) and every source's positions per split, as one JSON
 * value taken between two elements, so it is consistent by construction (a single-threaded
 * aligned checkpoint). The state is serialized to JSON text once per checkpoint, and that text is
 * what stores write and restores parse (see serialized-checkpoint.ts). Restoring it into a job
 * built the same way and re-reading each split after its checkpointed position gives exactly-once
 * state; sinks get exactly-once results when their writes are idempotent on a deterministic id
 * (see {@link WindowContext.firing}) and everything emitted before a checkpoint is written before
 * the checkpoint is saved.
 */
import {
  type Collector,
  Emitter,
  type Input,
  type OutputTag,
  type SideOutput,
  type Stateful,
} from './emitter.ts';
import { HeapKeyedStateBackend, type KeyedStateStore } from './keyed-state.ts';
import { lazyCheckpoint, serializeCheckpoint } from './serialized-checkpoint.ts';
import { MAX_WATERMARK, MIN_WATERMARK, SourceWatermarks, type WatermarkStrategy } from './watermarks.ts';
import type { WindowAssigner } from './window-assigners.ts';
import {
  type WindowContents,
  type WindowContext,
  type WindowEmit,
  WindowOperator,
} from './window-operator.ts';

/** A split's read position (a sequence number, a line number). */
export type SplitPosition = string | number;

/** Everything a job needs to resume: a JSON value. */
export interface Checkpoint {
  /** Increases with every snapshot of one job. */
  readonly id: number;
  readonly sources: {
    readonly [name: string]: { positions: Record<string, SplitPosition>; watermarks: unknown };
  };
  readonly operators: { readonly [uid: string]: unknown };
}

/** Context of a {@link DataStream.process} function. */
export interface ProcessContext {
  readonly timestamp: number;
  readonly output: SideOutput;
}

/** Context of the functions of a keyed co-flat-map: the current key and its keyed state. */
export interface KeyedContext<K> extends ProcessContext {
  readonly key: K;
  readonly state: KeyedStateStore;
}

/** Flink `CoFlatMapFunction` on keyed streams (a `KeyedCoProcessFunction` without timers). */
export interface KeyedCoFlatMapFunction<A, B, K, OUT> {
  flatMap1(value: A, ctx: KeyedContext<K>, out: Collector<OUT>): void;
  flatMap2(value: B, ctx: KeyedContext<K>, out: Collector<OUT>): void;
}

/** Flink `AggregateFunction`. */
export interface AggregateFunction<IN, ACC, OUT> {
  createAccumulator(): ACC;
  add(value: IN, accumulator: ACC): ACC;
  getResult(accumulator: ACC): OUT;
}

/** Builds and runs one job: holds its sources and stateful operators. */
export class StreamExecutionEnvironment {
  private readonly sources = new Map<string, SourceStream<unknown>>();
  private readonly stateful = new Map<string, Stateful>();
  private counter = 0;
  private checkpointId = 0;

  /**
   * A source named `name` (the name keys its positions in checkpoints). With a watermark
   * strategy, elements get timestamps from it and each split its own watermark generator;
   * without one the source has no event time: its elements carry timestamp
   * {@link MIN_WATERMARK} and it is permanently idle, so it never holds back the watermark of an
   * operator it is connected to (a control stream). Flink would hold the watermark back at
   * `Long.MIN_VALUE` until the source is marked idle; this is what `withIdleness` makes of it.
   */
  fromSource<T>(name: string, options: { watermarks?: WatermarkStrategy<T> } = {}): SourceStream<T> {
    if (this.sources.has(name)) throw new Error(`source "${name}" is defined twice`);
    const source = new SourceStream<T>(this, options.watermarks);
    this.sources.set(name, source as SourceStream<unknown>);
    return source;
  }

  /** @internal registers a stateful operator under a uid unique in the job. */
  register(kind: string, operator: Stateful, uid?: string): void {
    const id = uid ?? `${kind}-${++this.counter}`;
    if (this.stateful.has(id)) throw new Error(`operator uid "${id}" is used twice`);
    this.stateful.set(id, operator);
  }

  /** Runs the periodic watermark emission of every source (call on a processing-time interval). */
  periodicEmit(): void {
    for (const source of this.sources.values()) source.periodicEmit();
  }

  /**
   * A detached, JSON-serializable checkpoint of the job (see the module doc). The state is
   * serialized once, here (as {@link snapshotSerialized}); the result keeps that text, which
   * checkpoint stores write as is, and parses it only when `sources` or `operators` are read.
   */
  snapshot(): Checkpoint {
    const text = this.snapshotSerialized();
    return lazyCheckpoint(this.checkpointId, text);
  }

  /**
   * The checkpoint of the job as JSON text (the JSON of a {@link Checkpoint}, `id` first): the
   * state serialized once, no intermediate copy. Save it with a store's `saveSerialized`.
   */
  snapshotSerialized(): string {
    const sources: Record<string, { positions: Record<string, SplitPosition>; watermarks: unknown }> = {};
    for (const [name, source] of this.sources) sources[name] = source.snapshot();
    const operators: Record<string, unknown> = {};
    for (const [uid, operator] of this.stateful) operators[uid] = operator.snapshot();
    // Operator snapshots share live values (accumulators, keyed state): serialized right away,
    // before any element can change them.
    return JSON.stringify({ id: ++this.checkpointId, sources, operators });
  }

  /**
   * Restores a checkpoint into this job, which must be built as the one that took it (same
   * sources, same stateful operators in the same order or with the same uids), before any element.
   * The driver then resumes each source after {@link SourceStream.positions}. The job gets its own
   * copy of the state: a checkpoint from {@link snapshot} or a store is parsed from its text once;
   * any other is copied through JSON.
   * @throws {Error} when a source or operator of the checkpoint is missing here.
   */
  restore(checkpoint: Checkpoint): void {
    this.restoreSerialized(serializeCheckpoint(checkpoint));
  }

  /** {@link restore} from the JSON text of a checkpoint ({@link snapshotSerialized}, `loadSerialized`). */
  restoreSerialized(text: string): void {
    const copy = JSON.parse(text) as Checkpoint;
    for (const [name, state] of Object.entries(copy.sources)) {
      const source = this.sources.get(name);
      if (source === undefined) throw new Error(`checkpoint has source "${name}" which this job lacks`);
      source.restore(state);
    }
    for (const [uid, state] of Object.entries(copy.operators)) {
      const operator = this.stateful.get(uid);
      if (operator === undefined) throw new Error(`checkpoint has operator "${uid}" which this job lacks`);
      operator.restore(state);
    }
    this.checkpointId = copy.id;
  }
}

/** A stream of elements of type `T`. */
export class DataStream<T> {
  /** @internal */
  constructor(
    protected readonly env: StreamExecutionEnvironment,
    /** @internal */
    readonly emitter: Emitter<T>,
  ) {}

  private chain<R>(element: (value: T, timestamp: number, out: Emitter<R>) => void): DataStream<R> {
    const out = new Emitter<R>();
    out.idle = this.emitter.idle;
    this.emitter.attach({
      element: (value, timestamp) => element(value, timestamp, out),
      watermark: (watermark) => out.emitWatermark(watermark),
      status: (idle) => out.emitStatus(idle),
    });
    return new DataStream(this.env, out);
  }

  map<R>(fn: (value: T) => R): DataStream<R> {
    return this.chain((value, timestamp, out) => out.emit(fn(value), timestamp));
  }

  filter(fn: (value: T) => boolean): DataStream<T> {
    return this.chain((value, timestamp, out) => {
      if (fn(value)) out.emit(value, timestamp);
    });
  }

  flatMap<R>(fn: (value: T, out: Collector<R>) => void): DataStream<R> {
    let ts = 0;
    let target: Emitter<R> | undefined;
    const collector: Collector<R> = { collect: (value) => target!.emit(value, ts) };
    return this.chain((value, timestamp, out) => {
      ts = timestamp;
      target = out;
      fn(value, collector);
    });
  }

  /** Flink `ProcessFunction` without timers: main output through `out`, side outputs by tag. */
  process<R>(fn: (value: T, ctx: ProcessContext, out: Collector<R>) => void): OperatorStream<R> {
    const out = new Emitter<R>();
    out.idle = this.emitter.idle;
    const result = new OperatorStream<R>(this.env, out);
    let timestamp = 0;
    const collector: Collector<R> = { collect: (value) => out.emit(value, timestamp) };
    const ctx = {
      get timestamp() {
        return timestamp;
      },
      output: result.sideOutputFn(() => timestamp),
    };
    this.emitter.attach({
      element: (value, ts) => {
        timestamp = ts;
        fn(value, ctx, collector);
      },
      watermark: (watermark) => result.forwardWatermark(watermark),
      status: (idle) => result.forwardStatus(idle),
    });
    return result;
  }

  /** Partitions by key (string or number; encode composite keys, e.g. with a separator). */
  keyBy<K extends string | number>(keySelector: (value: T) => K): KeyedStream<T, K> {
    return new KeyedStream(this.env, this.emitter, keySelector);
  }

  /** Sends every element to `fn` (synchronous: buffer, and write in batches outside the chain). */
  sinkTo(fn: (value: T, timestamp: number) => void): void {
    this.emitter.attach({ element: fn, watermark: () => {}, status: () => {} });
  }
}

/** An operator's main output plus its side outputs (Flink `SingleOutputStreamOperator`). */
export class OperatorStream<T> extends DataStream<T> {
  private readonly sides = new Map<string, Emitter<unknown>>();

  /** The side output of this operator with this tag. */
  getSideOutput<S>(tag: OutputTag<S>): DataStream<S> {
    return new DataStream(this.env, this.side(tag.id) as Emitter<S>);
  }

  /** @internal */
  side(id: string): Emitter<unknown> {
    let emitter = this.sides.get(id);
    if (emitter === undefined) {
      emitter = new Emitter();
      emitter.idle = this.emitter.idle;
      this.sides.set(id, emitter);
    }
    return emitter;
  }

  /** @internal */
  sideOutputFn(timestamp: () => number): SideOutput {
    return (tag, value) => this.side(tag.id).emit(value, timestamp());
  }

  /** @internal */
  forwardWatermark(watermark: number): void {
    this.emitter.emitWatermark(watermark);
    for (const side of this.sides.values()) side.emitWatermark(watermark);
  }

  /** @internal */
  forwardStatus(idle: boolean): void {
    this.emitter.emitStatus(idle);
    for (const side of this.sides.values()) side.emitStatus(idle);
  }
}

/**
 * A source: the driver pushes elements with {@link collect}, naming the split (shard, file) and
 * the element's position in it, which the source remembers for checkpoints.
 */
export class SourceStream<T> extends DataStream<T> {
  private readonly positionsBySplit: Record<string, SplitPosition> = {};
  private readonly watermarks: SourceWatermarks<T> | undefined;

  /** @internal */
  constructor(
    env: StreamExecutionEnvironment,
    private readonly strategy: WatermarkStrategy<T> | undefined,
  ) {
    const emitter = new Emitter<T>();
    super(env, emitter);
    if (strategy === undefined) emitter.idle = true;
    else {
      this.watermarks = new SourceWatermarks(
        strategy,
        (watermark) => emitter.emitWatermark(watermark),
        (idle) => emitter.emitStatus(idle),
      );
    }
  }

  /** Declares splits before their first element, so they hold the watermark back until idle. */
  addSplits(splits: readonly string[]): void {
    for (const split of splits) this.watermarks?.addSplit(split);
  }

  /**
   * Pushes one element read from `split` at `position` through the job. The split's watermark
   * generator sees it first (so the element itself never makes the watermark pass it).
   */
  collect(value: T, split = '0', position?: SplitPosition): void {
    const strategy = this.strategy;
    if (strategy === undefined) {
      this.emitter.emit(value, MIN_WATERMARK);
    } else {
      const timestamp = strategy.timestampOf(value);
      this.emitter.emit(value, timestamp);
      this.watermarks!.onEvent(split, value, timestamp);
    }
    if (position !== undefined) this.positionsBySplit[split] = position;
  }

  /** Periodic watermark emission of every split (detects idleness). */
  periodicEmit(): void {
    this.watermarks?.periodicEmit();
  }

  /**
   * The end of a bounded input: emits the maximum watermark, which fires every window and cleans
   * all window state up (Flink emits `Long.MAX_VALUE` when a bounded source finishes).
   */
  end(): void {
    this.emitter.emitStatus(false);
    this.emitter.emitWatermark(MAX_WATERMARK);
  }

  /** The position of the last element collected per split (after a restore: the checkpoint's). */
  positions(): Readonly<Record<string, SplitPosition>> {
    return { ...this.positionsBySplit };
  }

  /** The combined watermark of the source. */
  get currentWatermark(): number {
    return this.emitter.watermark;
  }

  /** @internal */
  snapshot(): { positions: Record<string, SplitPosition>; watermarks: unknown } {
    return { positions: { ...this.positionsBySplit }, watermarks: this.watermarks?.snapshot() ?? null };
  }

  /** @internal */
  restore(state: { positions: Record<string, SplitPosition>; watermarks: unknown }): void {
    Object.assign(this.positionsBySplit, state.positions);
    if (this.watermarks !== undefined && state.watermarks !== null) {
      this.watermarks.restore(state.watermarks);
      this.emitter.watermark = this.watermarks.current;
    }
  }
}

/** A stream partitioned by key (Flink `KeyedStream`). */
export class KeyedStream<T, K extends string | number> {
  /** @internal */
  constructor(
    private readonly env: StreamExecutionEnvironment,
    private readonly emitter: Emitter<T>,
    private readonly keySelector: (value: T) => K,
  ) {}

  /** Windows of `assigner` per key. */
  window(assigner: WindowAssigner): WindowedStream<T, K> {
    return new WindowedStream(this.env, this.emitter, this.keySelector, assigner);
  }

  /** Connects another stream keyed the same way; both go to one keyed co-flat-map. */
  connect<B>(other: KeyedStream<B, K>): ConnectedStreams<T, B, K> {
    return new ConnectedStreams(this.env, this, other);
  }

  /** @internal */
  parts(): { emitter: Emitter<T>; keySelector: (value: T) => K } {
    return { emitter: this.emitter, keySelector: this.keySelector };
  }
}

/** A windowed keyed stream (Flink `WindowedStream`). */
export class WindowedStream<T, K extends string | number> {
  private lateness = 0;
  private lateTag: OutputTag<T> | undefined;
  private uidValue: string | undefined;

  /** @internal */
  constructor(
    private readonly env: StreamExecutionEnvironment,
    private readonly emitter: Emitter<T>,
    private readonly keySelector: (value: T) => K,
    private readonly assigner: WindowAssigner,
  ) {}

  /** Keeps windows `ms` after they fired; late elements within it re-fire the window. */
  allowedLateness(ms: number): this {
    this.lateness = ms;
    return this;
  }

  /** Elements whose windows were all cleaned up go to this side output instead of being dropped. */
  sideOutputLateData(tag: OutputTag<T>): this {
    this.lateTag = tag;
    return this;
  }

  /** Names the operator's state in checkpoints (Flink `uid`); default: its position in the job. */
  uid(uid: string): this {
    this.uidValue = uid;
    return this;
  }

  /** Flink `ProcessWindowFunction`: the window's elements in arrival order, on every firing. */
  process<R>(
    fn: (key: K, elements: readonly T[], ctx: WindowContext, out: Collector<R>) => void,
  ): OperatorStream<R> {
    return this.build<T[], R>(
      {
        create: () => [],
        add: (list, value) => {
          list.push(value);
          return list;
        },
      },
      fn,
    );
  }

  /**
   * Flink `aggregate`: incremental accumulation, one result per firing; with `fn`, the result goes
   * through it (to see key and window).
   */
  aggregate<ACC, V, R = V>(
    aggregate: AggregateFunction<T, ACC, V>,
    fn?: (key: K, result: V, ctx: WindowContext, out: Collector<R>) => void,
  ): OperatorStream<R> {
    return this.build<ACC, R>(
      { create: () => aggregate.createAccumulator(), add: (acc, value) => aggregate.add(value, acc) },
      fn === undefined
        ? (_key, acc, _ctx, out) => out.collect(aggregate.getResult(acc) as unknown as R)
        : (key, acc, ctx, out) => fn(key, aggregate.getResult(acc), ctx, out),
    );
  }

  /** Flink `reduce`: a running reduction, emitted on every firing. */
  reduce(fn: (a: T, b: T) => T): OperatorStream<T> {
    return this.build<T | undefined, T>(
      { create: () => undefined, add: (acc, value) => (acc === undefined ? value : fn(acc, value)) },
      (_key, acc, _ctx, out) => out.collect(acc!),
    );
  }

  private build<ACC, R>(contents: WindowContents<T, ACC>, emit: WindowEmit<K, ACC, R>): OperatorStream<R> {
    const out = new Emitter<R>();
    out.idle = this.emitter.idle;
    const result = new OperatorStream<R>(this.env, out);
    // The window operator emits its watermark through `out`; side outputs follow it.
    const operator = new WindowOperator<T, K, ACC, R>({
      keySelector: this.keySelector,
      assigner: this.assigner,
      allowedLateness: this.lateness,
      lateTag: this.lateTag,
      contents,
      emit,
      output: out,
      sideOutput: (id) => result.side(id),
    });
    this.emitter.attach({
      element: (value, timestamp) => operator.element(value, timestamp),
      watermark: (watermark) => {
        operator.watermark(watermark);
        result.forwardWatermark(watermark);
      },
      status: (idle) => result.forwardStatus(idle),
    });
    this.env.register('window', operator, this.uidValue);
    return result;
  }
}

interface InputState {
  watermark: number;
  idle: boolean;
}

/** Two keyed streams connected (Flink `ConnectedStreams`). */
export class ConnectedStreams<A, B, K extends string | number> {
  /** @internal */
  constructor(
    private readonly env: StreamExecutionEnvironment,
    private readonly first: KeyedStream<A, K>,
    private readonly second: KeyedStream<B, K>,
  ) {}

  /**
   * A keyed co-flat-map: each element goes to `flatMap1` or `flatMap2` with keyed state scoped to
   * its key. The output watermark is the minimum of the two inputs' watermarks, leaving out an idle
   * input (Flink's two-input operators); a source without event time is always idle.
   */
  flatMap<R>(fn: KeyedCoFlatMapFunction<A, B, K, R>, options: { uid?: string } = {}): OperatorStream<R> {
    const out = new Emitter<R>();
    const result = new OperatorStream<R>(this.env, out);
    const backend = new HeapKeyedStateBackend();
    let timestamp = 0;
    let key: K;
    const collector: Collector<R> = { collect: (value) => out.emit(value, timestamp) };
    const ctx: KeyedContext<K> = {
      get timestamp() {
        return timestamp;
      },
      get key() {
        return key;
      },
      state: backend,
      output: result.sideOutputFn(() => timestamp),
    };
    const a = this.first.parts();
    const b = this.second.parts();
    const inputs: [InputState, InputState] = [
      { watermark: MIN_WATERMARK, idle: a.emitter.idle },
      { watermark: MIN_WATERMARK, idle: b.emitter.idle },
    ];
    out.idle = inputs[0].idle && inputs[1].idle;
    let combined = MIN_WATERMARK;
    const recompute = () => {
      let min = Number.POSITIVE_INFINITY;
      let active = 0;
      for (const input of inputs) {
        if (input.idle) continue;
        active++;
        if (input.watermark < min) min = input.watermark;
      }
      result.forwardStatus(active === 0);
      if (active > 0 && min > combined) {
        combined = min;
        result.forwardWatermark(min);
      }
    };
    const input = <V>(index: 0 | 1, handle: (value: V) => void, keySelector: (value: V) => K): Input<V> => ({
      element: (value, ts) => {
        timestamp = ts;
        key = keySelector(value);
        backend.currentKey = key;
        handle(value);
      },
      watermark: (watermark) => {
        inputs[index].watermark = watermark;
        recompute();
      },
      status: (idle) => {
        inputs[index].idle = idle;
        recompute();
      },
    });
    a.emitter.attach(input<A>(0, (value) => fn.flatMap1(value, ctx, collector), a.keySelector));
    b.emitter.attach(input<B>(1, (value) => fn.flatMap2(value, ctx, collector), b.keySelector));
    this.env.register(
      'co-flat-map',
      {
        snapshot: () => ({ state: backend.snapshot(), watermarks: inputs.map((i) => i.watermark), combined }),
        restore: (state) => {
          const s = state as { state: unknown; watermarks: number[]; combined: number };
          backend.restore(s.state);
          inputs[0].watermark = s.watermarks[0]!;
          inputs[1].watermark = s.watermarks[1]!;
          combined = s.combined;
        },
      },
      options.uid,
    );
    return result;
  }
}
