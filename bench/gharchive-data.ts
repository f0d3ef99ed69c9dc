import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createGzip, gunzipSync } from 'node:zlib';

/** Parameters of a generated hour. */
export interface ModernHourSpec {
  /** Unique events (default 200,000). */
  readonly events: number;
  /** One injected duplicate every `duplicateEvery` events (default 100: 1%). */
  readonly duplicateEvery: number;
  /** UTC hour the events are spread over. */
  readonly hour: Date;
}

/**
 * Writes a modern-size GH Archive hour built from the real 2015 sample: the real events are cycled,
 * each copy gets a new unique `id` and a `created_at` spread evenly over `hour`; after every
 * `duplicateEvery` events an exact copy of an earlier event (same id) is injected, as real hours
 * contain repeated events. Streams to a gzip file (default level), so memory stays small.
 *
 * @returns counts of lines, unique events and bytes (uncompressed).
 */
export async function writeModernHour(
  samplePath: string,
  outPath: string,
  spec: ModernHourSpec,
): Promise<{ lines: number; unique: number; duplicates: number; uncompressedBytes: number }> {
  const sample = gunzipSync(await readFile(samplePath))
    .toString('utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const gzip = createGzip();
  const out = createWriteStream(outPath);
  gzip.pipe(out);
  const start = spec.hour.getTime();
  const step = 3_600_000 / spec.events;
  const baseId = 30_000_000_000;
  let uncompressedBytes = 0;
  let lines = 0;
  let duplicates = 0;
  const recent: string[] = [];
  const write = async (line: string) => {
    uncompressedBytes += Buffer.byteLength(line) + 1;
    lines++;
    if (!gzip.write(`${line}\n`)) await once(gzip, 'drain');
  };
  for (let i = 0; i < spec.events; i++) {
    const event = {
      ...sample[i % sample.length],
      id: String(baseId + i),
      created_at: new Date(start + Math.floor(i * step)).toISOString().replace('.000Z', 'Z'),
    };
    const line = JSON.stringify(event);
    await write(line);
    recent.push(line);
    if (recent.length > 50) recent.shift();
    if ((i + 1) % spec.duplicateEvery === 0) {
      await write(recent[(i * 7) % recent.length] ?? line);
      duplicates++;
    }
  }
  gzip.end();
  await once(out, 'finish');
  return { lines, unique: spec.events, duplicates, uncompressedBytes };
}
