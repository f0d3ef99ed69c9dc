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

/** The bundled Twitter captures (see examples/data/hashtags/PROVENANCE.md). */
export const HASHTAGS_SAMPLES = {
  /** v1.1 streaming statuses, one per line: 72 tweets, 0 retweets. */
  v1Stream: path.join(ROOT, 'examples/data/hashtags/v1_stream_sample_72.ndjson'),
  /** v1.1 REST user_timeline: a JSON array of 63 statuses, 15 kept by the producer filter. */
  v1Timeline: path.join(ROOT, 'examples/data/hashtags/v1_user_timeline_63.json'),
  /** v2 recent-search page per line (twarc2): 1 page, 100 tweets. */
  v2Search: path.join(ROOT, 'examples/data/hashtags/v2_search_brexit_100.jsonl'),
} as const;
