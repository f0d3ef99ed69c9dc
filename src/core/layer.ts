/**
 * The lake's layers, as data engineers name them.
 *
 * - `landing`: raw source objects exactly as received (e.g. GH Archive's `.json.gz`).
 * - `staging`: cleaned, typed, deduplicated intermediate data.
 * - `analytical`: the published, partitioned, cataloged tables queries read.
 * - `quarantine`: the dead-letter location: every rejected record with its source and reason.
 *
 * Locally each layer is a directory under `<home>/lake/`; on AWS each is its own S3 bucket.
 */
export type Layer = 'landing' | 'staging' | 'analytical' | 'quarantine';

/** All layers, in the order data flows through them. */
export const LAYERS: readonly Layer[] = ['landing', 'staging', 'analytical', 'quarantine'];

/** True when `value` names a layer. */
export function isLayer(value: string): value is Layer {
  return (LAYERS as readonly string[]).includes(value);
}

/**
 * The address of one object: a layer and a `/`-separated key inside it (no leading `/`).
 * On AWS, `layer` selects the bucket and `key` is the S3 object key.
 */
export interface ObjectRef {
  readonly layer: Layer;
  readonly key: string;
}

/**
 * Checks an object key: non-empty, relative, `/`-separated, no `.`/`..` segments, no
 * backslashes or NUL. Keys are the same locally and on S3, so anything S3 would treat
 * differently from a file path is refused.
 *
 * @throws {Error} naming the key and the rule it breaks.
 */
export function assertValidKey(key: string): void {
  if (key.length === 0) throw new Error('object key is empty');
  if (key.startsWith('/')) throw new Error(`object key "${key}" must not start with "/"`);
  if (key.includes('\\') || key.includes('\0')) {
    throw new Error(`object key "${key}" must not contain a backslash or NUL`);
  }
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw new Error(`object key "${key}" has an empty, "." or ".." segment`);
    }
  }
}

/** `layer/key`, the form used in messages and run records. */
export function formatRef(ref: ObjectRef): string {
  return `${ref.layer}/${ref.key}`;
}

/**
 * True for a key segment that Hive, Spark and Athena treat as hidden: it starts with `_` or `.`
 * (e.g. `_SUCCESS`, `_sluice_tmp`, `.staging`).
 */
export function isHiddenSegment(segment: string): boolean {
  return segment.startsWith('_') || segment.startsWith('.');
}

/**
 * True for an object key that `ObjectStore.list` hides unless `includeHidden`: any `/`-separated
 * segment is hidden ({@link isHiddenSegment}) or the key ends in `.part` (an in-progress write).
 */
export function isHiddenKey(key: string): boolean {
  return key.endsWith('.part') || key.split('/').some(isHiddenSegment);
}
