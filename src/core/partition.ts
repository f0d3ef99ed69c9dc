/**
 * Hive-style partition paths (`year=2015/month=01/dayofmonth=01/`), as Hive, Spark, Glue and
 * Athena lay them out. Values are escaped like Hive's `FileUtils.escapePathName`: characters that
 * are unsafe in a path segment become `%XX` (upper-case hex).
 */

const UNSAFE_PRINTABLE = new Set(['"', '#', '%', "'", '*', '/', ':', '=', '?', '\\', '{', '[', ']', '^']);

function isUnsafe(ch: string): boolean {
  const code = ch.charCodeAt(0);
  return code < 0x20 || code === 0x7f || UNSAFE_PRINTABLE.has(ch);
}

/** Escapes a partition value for a path segment. */
export function escapePartitionValue(value: string): string {
  let out = '';
  for (const ch of value) {
    out += isUnsafe(ch) ? `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}` : ch;
  }
  return out;
}

/** Reverses {@link escapePartitionValue}. */
export function unescapePartitionValue(segment: string): string {
  return segment.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) =>
    String.fromCharCode(Number.parseInt(hex, 16)),
  );
}

/**
 * The key prefix of a partition: `<tablePrefix><k1>=<v1>/<k2>=<v2>/` (`tablePrefix` ends in `/`).
 * @throws {Error} when the number of values differs from the number of keys.
 */
export function partitionPrefix(
  tablePrefix: string,
  keys: readonly string[],
  values: readonly string[],
): string {
  if (keys.length !== values.length) {
    throw new Error(`partition has ${values.length} values for ${keys.length} keys (${keys.join(', ')})`);
  }
  return tablePrefix + keys.map((k, i) => `${k}=${escapePartitionValue(values[i] ?? '')}/`).join('');
}

/**
 * Parses the `k=v/` segments that follow `tablePrefix` in `key`.
 * @returns the keys and values found, in path order, and the remaining file name; `undefined`
 * when `key` is not under `tablePrefix`.
 */
export function parsePartitionPath(
  tablePrefix: string,
  key: string,
): { keys: string[]; values: string[]; fileName: string } | undefined {
  if (!key.startsWith(tablePrefix)) return undefined;
  const segments = key.slice(tablePrefix.length).split('/');
  const fileName = segments.pop() ?? '';
  const keys: string[] = [];
  const values: string[] = [];
  for (const segment of segments) {
    const eq = segment.indexOf('=');
    if (eq <= 0) return undefined;
    keys.push(segment.slice(0, eq));
    values.push(unescapePartitionValue(segment.slice(eq + 1)));
  }
  return { keys, values, fileName };
}
