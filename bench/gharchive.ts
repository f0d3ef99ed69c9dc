/**
 * `npm run bench -- gharchive [--json] [--events N] [--runs N]`
 *
 * Generates a modern-size GH Archive hour from the real 2015 sample (default 200,000 unique
 * events + 1% injected duplicate ids, > 250 MB uncompressed; cached in bench/.data), then times,
 * in the same run and each in its own process:
 *   (a) sluice's landing -> analytical transform of that file (validation, line tracking,
 *       quarantine, dedup, merge against the lake, partitioned Snappy Parquet, catalog commit);
 *   (b) the baseline: one DuckDB statement reading the same .json.gz and writing deduplicated
 *       Snappy Parquet partitioned the same way.
 * Prints events/s, MB/s (uncompressed input) and peak RSS of both and the throughput ratio
 * sluice / baseline (target >= 0.8, peak RSS <= 1 GB). Best of `--runs` (default 2) each.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { writeModernHour } from './gharchive-data.ts';

const exec = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const SAMPLE = path.resolve(here, '../examples/data/gharchive/2015-01-01-0.json.gz');

interface Measure {
  seconds: number;
  rows: number;
  maxRssBytes: number;
}

function flag(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
}

export async function main(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const events = flag(argv, '--events', 200_000);
  const runs = flag(argv, '--runs', 2);
  const log = (line: string) => process.stderr.write(`${line}\n`);

  const dataDir = path.join(here, '.data');
  await mkdir(dataDir, { recursive: true });
  const file = path.join(dataDir, `gharchive-${events}.json.gz`);
  const metaFile = `${file}.meta.json`;
  if (!existsSync(file) || !existsSync(metaFile)) {
    log(`generating ${events} events from the real sample -> ${path.relative(process.cwd(), file)} ...`);
    const meta = await writeModernHour(SAMPLE, file, {
      events,
      duplicateEvery: 100,
      hour: new Date('2024-01-01T15:00:00Z'),
    });
    await writeFile(metaFile, JSON.stringify(meta));
  }
  const meta = JSON.parse(await readFile(metaFile, 'utf8')) as {
    lines: number;
    unique: number;
    uncompressedBytes: number;
  };
  log(
    `input: ${meta.lines} events (${meta.unique} unique), ${(meta.uncompressedBytes / 1e6).toFixed(0)} MB uncompressed`,
  );

  const measure = async (mode: 'sluice' | 'baseline'): Promise<Measure> => {
    const work = await mkdtemp(path.join(os.tmpdir(), `sluice-bench-${mode}-`));
    try {
      const { stdout } = await exec(
        process.execPath,
        ['--import', 'tsx', path.join(here, 'gharchive-child.ts'), mode, file, work],
        {
          maxBuffer: 1 << 20,
        },
      );
      const result = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Measure;
      if (result.rows !== meta.unique)
        throw new Error(`${mode} wrote ${result.rows} rows, expected ${meta.unique}`);
      return result;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  };
  const best: Record<'sluice' | 'baseline', Measure | undefined> = { sluice: undefined, baseline: undefined };
  for (let i = 0; i < runs; i++) {
    for (const mode of ['baseline', 'sluice'] as const) {
      const m = await measure(mode);
      log(
        `  ${mode.padEnd(8)} run ${i + 1}: ${m.seconds.toFixed(2)} s, peak RSS ${(m.maxRssBytes / 2 ** 20).toFixed(0)} MiB`,
      );
      const prev = best[mode];
      best[mode] =
        !prev || m.seconds < prev.seconds
          ? { ...m, maxRssBytes: Math.max(m.maxRssBytes, prev?.maxRssBytes ?? 0) }
          : { ...prev, maxRssBytes: Math.max(m.maxRssBytes, prev.maxRssBytes) };
    }
  }
  const s = best.sluice!;
  const b = best.baseline!;
  const result = {
    events: meta.lines,
    unique_events: meta.unique,
    uncompressed_bytes: meta.uncompressedBytes,
    sluice_seconds: s.seconds,
    baseline_seconds: b.seconds,
    sluice_events_per_s: meta.lines / s.seconds,
    baseline_events_per_s: meta.lines / b.seconds,
    sluice_mb_per_s: meta.uncompressedBytes / 1e6 / s.seconds,
    baseline_mb_per_s: meta.uncompressedBytes / 1e6 / b.seconds,
    ratio: b.seconds / s.seconds,
    sluice_peak_rss_bytes: s.maxRssBytes,
    baseline_peak_rss_bytes: b.maxRssBytes,
  };
  const f = (n: number) => Math.round(n).toLocaleString('en-US');
  process.stdout.write(
    [
      `gharchive transform, ${f(meta.lines)} events, ${(meta.uncompressedBytes / 1e6).toFixed(0)} MB uncompressed (best of ${runs})`,
      `  sluice   ${f(result.sluice_events_per_s)} events/s  ${result.sluice_mb_per_s.toFixed(1)} MB/s  peak RSS ${(s.maxRssBytes / 2 ** 20).toFixed(0)} MiB`,
      `  baseline ${f(result.baseline_events_per_s)} events/s  ${result.baseline_mb_per_s.toFixed(1)} MB/s  peak RSS ${(b.maxRssBytes / 2 ** 20).toFixed(0)} MiB`,
      `  ratio (sluice / baseline throughput): ${result.ratio.toFixed(2)}x  (target >= 0.80x, peak RSS <= 1 GiB)`,
      '',
    ].join('\n'),
  );
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
}
