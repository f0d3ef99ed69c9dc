/** sluice's stream engine: Flink's DataStream semantics on one thread. See data-stream.ts. */
export * from './checkpoint-store.ts';
export * from './data-stream.ts';
export * from './emitter.ts';
export * from './keyed-state.ts';
export * from './object-checkpoint-store.ts';
export * from './serialized-checkpoint.ts';
export * from './stream-source.ts';
export * from './watermarks.ts';
export * from './window-assigners.ts';
export * from './window-operator.ts';
