import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';

/** Repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The bundled real GH Archive hour (7,702 events; see examples/data/gharchive/PROVENANCE.md). */
export const GHARCHIVE_SAMPLE = path.join(ROOT, 'examples/data/gharchive/2015-01-01-0.json.gz');

/** The sample's lines (decompressed, without newlines), read independently of sluice's code. */
export function sampleLines(): string[] {
  const text = gunzipSync(readFileSync(GHARCHIVE_SAMPLE)).toString('utf8');
  return text.split('\n').filter((line) => line.length > 0);
}

/** Parsed sample events. */
export function sampleEvents(): Record<string, unknown>[] {
  return sampleLines().map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Count of values by key, e.g. events per type. */
export function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}

/** Gzips NDJSON lines (each followed by a newline). */
export function gzipLines(lines: readonly string[]): Buffer {
  return gzipSync(Buffer.from(lines.map((l) => `${l}\n`).join('')));
}
