/**
 * A checkpoint's JSON text travels with it, so a checkpoint is serialized once: the environment
 * writes the text when it snapshots ({@link StreamExecutionEnvironment.snapshotSerialized}), stores
 * write that text as is, and a restore parses it once (no deep copy by `JSON.stringify` +
 * `JSON.parse`).
 *
 * {@link StreamExecutionEnvironment.snapshot} returns a {@link Checkpoint} whose `sources` and
 * `operators` are parsed from the text on first access (enumerable getters: `JSON.stringify`,
 * spreading and `toEqual` see a plain checkpoint); a checkpoint that nobody inspects is never
 * parsed. Checkpoints are values: the text attached to one is its content at snapshot or load
 * time, so a caller must not mutate a checkpoint it hands to a store or to `restore` (the fields
 * are `readonly`).
 *
 * @module
 */
import type { Checkpoint } from './data-stream.ts';

/** The JSON text of checkpoints made or loaded here (by object identity). */
const texts = new WeakMap<object, string>();

/**
 * The JSON text of `checkpoint`: the text it was made from when it came from a snapshot or a
 * store, otherwise `JSON.stringify(checkpoint)`. Accepts any JSON value (some callers wrap the
 * engine's checkpoint in their own).
 */
export function serializeCheckpoint(checkpoint: unknown): string {
  const text = typeof checkpoint === 'object' && checkpoint !== null ? texts.get(checkpoint) : undefined;
  if (text !== undefined) return text;
  const json = JSON.stringify(checkpoint);
  if (json === undefined) throw new Error('a checkpoint must be a JSON value');
  return json;
}

/** The attached JSON text of a checkpoint made or loaded here, or `undefined`. */
export function attachedCheckpointText(checkpoint: unknown): string | undefined {
  return typeof checkpoint === 'object' && checkpoint !== null ? texts.get(checkpoint) : undefined;
}

/**
 * A checkpoint backed by `text` (the JSON of a {@link Checkpoint} with this `id`): `sources` and
 * `operators` are parsed on first access, once.
 */
export function lazyCheckpoint(id: number, text: string): Checkpoint {
  let parsed: Checkpoint | undefined;
  const value = (): Checkpoint => {
    parsed ??= JSON.parse(text) as Checkpoint;
    return parsed;
  };
  const checkpoint = Object.defineProperties(
    {},
    {
      id: { value: id, enumerable: true },
      sources: { get: () => value().sources, enumerable: true },
      operators: { get: () => value().operators, enumerable: true },
    },
  ) as Checkpoint;
  texts.set(checkpoint, text);
  return checkpoint;
}

/**
 * Parses stored checkpoint text (of any JSON object, as stores hold what callers saved) and keeps
 * the text with the result, so restoring it parses the text again instead of copying the object.
 */
export function parseCheckpoint<T = Checkpoint>(text: string): T {
  const value = JSON.parse(text) as T;
  if (typeof value === 'object' && value !== null) texts.set(value, text);
  return value;
}

/** The `id` of a checkpoint's JSON text without parsing it all, when it starts with `{"id":N`. */
export function checkpointIdOf(text: string): number | undefined {
  const match = /^\{"id":(-?\d+(?:\.\d+)?)[,}]/.exec(text.slice(0, 40));
  return match === null ? undefined : Number(match[1]);
}
