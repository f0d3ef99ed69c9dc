/**
 * `npm run bench -- stream [--json] [--events N] [--rate R] [--envelopes M] [--checkpoint-every C]`
 *
 * Events per second on one core through sluice's stream engine, with checkpoints, next to Flink's
 * published Nexmark figures:
 *   - Nexmark q5 (hot items: HOP 10 s / 2 s bid counts per auction, the max per window) and q7
 *     (highest bid: 10 s tumbling max price) on events of bench/nexmark/generator.ts (default
 *     5,000,000 events at 10,000,000 events/s of event time, as nexmark.yaml). Events are generated
 *     in chunks of 50,000 into memory before they are pushed; generation is timed apart and left
 *     out of the throughput. Throughput counts every event (persons and auctions too), as Nexmark.
 *   - the nba tampering job (pipelines/nba/tampering.ts) on the real tweets of examples/data/nba
 *     made envelopes (`envelopesFromTweetsFile`), sorted by event time and replicated with event
 *     time shifted per copy, default 1,000,000 envelopes.
 * Checkpoints: every C events (default 1,000,000) `env.snapshot()` (a JSON copy of all state) is
 * saved with `KvCheckpointStore` into the SQLite key-value table of a local backend in a temp home,
 * awaited; the time is part of the throughput and also printed apart.
 * Before measuring, each query's results on 100,000 events (at the bench rate and at 1,000
 * events/s, so with many windows; tampering: 100,000 envelopes), with a checkpoint, save, load and
 * restore into a fresh job halfway, are compared with a plain loop's results; a mismatch fails the
 * bench.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type Envelope, envelopesFromTweetsFile } from '../pipelines/nba/envelopes.ts';
import { defaultPlayers, NBA_DATA_DIR, NBA_FILES, type PlayerRecord } from '../pipelines/nba/reference.ts';
import { type TamperingAlert, TamperingJob } from '../pipelines/nba/tampering.ts';
import { createLocalBackend } from '../src/backends/local/local-backend.ts';
import type { Clock } from '../src/core/clock.ts';
import { type CheckpointStore, KvCheckpointStore } from '../src/engines/stream/index.ts';
import { NexmarkGenerator } from './nexmark/generator.ts';
import {
  buildQuery,
  canonical,
  expectedResults,
  type HighestBid,
  type HotItem,
  type QueryName,
} from './nexmark/queries.ts';

/**
 * Flink's per-core throughput from the Nexmark README (github.com/nexmark/nexmark, "Benchmark
 * Results": Flink 1.13, 8 TaskManagers of 1 core each, RocksDB state backend, exactly-once):
 * throughput/core.
 */
export const FLINK_PER_CORE = {
  source:
    'github.com/nexmark/nexmark README, Benchmark Results (Flink 1.13, 8 x 1-core TMs, RocksDB, exactly-once)',
  q5: 22_100,
  q7: 12_300,
} as const;
const TARGET_RATIO = 10;
const CHUNK = 50_000;
const PERIODIC_EVERY = 4096;
const VERIFY_EVENTS = 100_000;
/** Processing time for the tampering job's idleness: constant, so no split ever goes idle. */
const FIXED_CLOCK: Clock = { now: () => new Date(0), sleep: async () => {} };

function flag(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  const value = i >= 0 ? Number(argv[i + 1]) : fallback;
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

interface Measured {
  events: number;
  seconds: number;
  generateSeconds: number;
  checkpointSeconds: number;
  checkpoints: number;
  lastCheckpointBytes: number;
  results: number;
  peakHeapBytes: number;
}

/** Runs `query` over events `[0, events)`: generation apart, pushing + checkpoints timed. */
async function measureNexmark(
  query: QueryName,
  gen: NexmarkGenerator,
  events: number,
  checkpointEvery: number,
  store: CheckpointStore,
): Promise<Measured> {
  let results = 0;
  const { env, source } = buildQuery(query, () => {
    results++;
  });
  let seconds = 0;
  let generateSeconds = 0;
  let checkpointSeconds = 0;
  let checkpoints = 0;
  let lastCheckpointBytes = 0;
  let peakHeapBytes = 0;
  for (let from = 0; from < events; from += CHUNK) {
    const to = Math.min(events, from + CHUNK);
    let t = performance.now();
    const chunk = gen.events(from, to);
    generateSeconds += (performance.now() - t) / 1000;
    t = performance.now();
    for (let i = 0; i < chunk.length; i++) {
      const n = from + i;
      source.collect(chunk[i]!, '0', n);
      if ((n + 1) % PERIODIC_EVERY === 0) env.periodicEmit();
      if ((n + 1) % checkpointEvery === 0) {
        const c = performance.now();
        const checkpoint = env.snapshot();
        await store.save(query, checkpoint);
        checkpointSeconds += (performance.now() - c) / 1000;
        checkpoints++;
        if (n + 1 + checkpointEvery > events) lastCheckpointBytes = JSON.stringify(checkpoint).length;
      }
    }
    if (to === events) source.end();
    seconds += (performance.now() - t) / 1000;
    peakHeapBytes = Math.max(peakHeapBytes, process.memoryUsage().heapUsed);
  }
  return {
    events,
    seconds,
    generateSeconds,
    checkpointSeconds,
    checkpoints,
    lastCheckpointBytes,
    results,
    peakHeapBytes,
  };
}

/**
 * Engine results on `events` events, with a checkpoint halfway saved to `store`, loaded and
 * restored into a fresh job that reads on from there, against {@link expectedResults}.
 */
async function verifyNexmark(
  query: QueryName,
  gen: NexmarkGenerator,
  events: number,
  store: CheckpointStore,
): Promise<{ results: number; windows: number }> {
  const input = gen.events(0, events);
  const got: (HotItem | HighestBid)[] = [];
  const half = Math.floor(events / 2);
  const first = buildQuery(query, (r) => got.push(r));
  for (let n = 0; n < half; n++) {
    first.source.collect(input[n]!, '0', n);
    if ((n + 1) % PERIODIC_EVERY === 0) first.env.periodicEmit();
  }
  const job = `verify-${query}-${gen.rate}`;
  await store.save(job, first.env.snapshot());
  const second = buildQuery(query, (r) => got.push(r));
  second.env.restore((await store.load(job))!);
  const resume = Number(second.source.positions()['0']) + 1;
  if (resume !== half) throw new Error(`${query}: restored position ${resume}, expected ${half}`);
  for (let n = resume; n < events; n++) {
    second.source.collect(input[n]!, '0', n);
    if ((n + 1) % PERIODIC_EVERY === 0) second.env.periodicEmit();
  }
  second.source.end();
  const want = expectedResults(query, input);
  const have = canonical(got);
  if (have.length !== want.length || have.some((x, i) => x !== want[i])) {
    const missing = want.filter((x) => !have.includes(x)).slice(0, 3);
    const extra = have.filter((x) => !want.includes(x)).slice(0, 3);
    throw new Error(
      `${query} at ${gen.rate} events/s: engine gave ${have.length} results, the plain loop ${want.length}; ` +
        `missing e.g. ${missing.join(' ')}; extra e.g. ${extra.join(' ')}`,
    );
  }
  return { results: have.length, windows: new Set(want.map((x) => (JSON.parse(x) as number[])[0])).size };
}

/** The real envelopes sorted by event time, replicated to `count` with event time shifted per copy. */
function replicate(base: readonly Envelope[], count: number, windowMs: number): Envelope[] {
  const sorted = [...base].sort((a, b) => a.event_time - b.event_time);
  const min = sorted[0]!.event_time;
  const max = sorted.at(-1)!.event_time;
  const shift = (Math.floor((max - min) / windowMs) + 2) * windowMs;
  const out: Envelope[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const e = sorted[i % sorted.length]!;
    const copy = Math.floor(i / sorted.length);
    out[i] = copy === 0 ? e : { event_time: e.event_time + copy * shift, data: e.data, includes: e.includes };
  }
  return out;
}

/** The tampering job's alerts by a plain loop (in-order input, no control changes). */
function expectedAlerts(envelopes: readonly Envelope[], players: readonly PlayerRecord[], windowMs: number) {
  const byAccount = new Map<string, PlayerRecord>();
  const byName = new Map<string, PlayerRecord>();
  for (const p of players) {
    if (!byAccount.has(p.account)) byAccount.set(p.account, p);
    if (!byName.has(p.name)) byName.set(p.name, p);
  }
  const windows = new Map<string, string[]>();
  for (const e of envelopes) {
    const source = byAccount.get(e.includes.users[0]?.username ?? '');
    const annotations = e.data[0]?.context_annotations;
    if (source === undefined || !Array.isArray(annotations)) continue;
    const athlete = annotations.find((a) => a.domain.id === '60');
    const destination = athlete === undefined ? undefined : byName.get(athlete.entity.name);
    if (destination === undefined || destination.team === source.team) continue;
    const key = `${source.team}|${destination.name}|${e.event_time - (e.event_time % windowMs)}`;
    const list = windows.get(key);
    if (list === undefined) windows.set(key, [source.name]);
    else list.push(source.name);
  }
  return [...windows]
    .filter(([, names]) => names.length >= 2)
    .map(([key, names]) => `${key}|${names.length}|${names.join(',')}`)
    .sort();
}

async function measureTampering(
  envelopes: readonly Envelope[],
  players: readonly PlayerRecord[],
  checkpointEvery: number,
  store: CheckpointStore,
): Promise<Measured & { alerts: number }> {
  let alerts = 0;
  const job = new TamperingJob({ players, sinks: { alert: () => alerts++ }, clock: FIXED_CLOCK });
  let checkpointSeconds = 0;
  let checkpoints = 0;
  let lastCheckpointBytes = 0;
  const t = performance.now();
  for (let n = 0; n < envelopes.length; n++) {
    job.tweet(envelopes[n]!, '0', n);
    if ((n + 1) % PERIODIC_EVERY === 0) job.periodicEmit();
    if ((n + 1) % checkpointEvery === 0) {
      const c = performance.now();
      const checkpoint = job.snapshot().engine;
      await store.save('tampering', checkpoint);
      checkpointSeconds += (performance.now() - c) / 1000;
      checkpoints++;
      if (n + 1 + checkpointEvery > envelopes.length) lastCheckpointBytes = JSON.stringify(checkpoint).length;
    }
  }
  job.end();
  const seconds = (performance.now() - t) / 1000;
  if (job.stats.late !== 0) throw new Error(`tampering: ${job.stats.late} late envelopes on in-order input`);
  return {
    events: envelopes.length,
    seconds,
    generateSeconds: 0,
    checkpointSeconds,
    checkpoints,
    lastCheckpointBytes,
    results: alerts,
    alerts,
    peakHeapBytes: process.memoryUsage().heapUsed,
  };
}

async function verifyTampering(
  envelopes: readonly Envelope[],
  players: readonly PlayerRecord[],
  store: CheckpointStore,
): Promise<number> {
  const alerts: TamperingAlert[] = [];
  const half = Math.floor(envelopes.length / 2);
  const sinks = { alert: (a: TamperingAlert) => alerts.push(a) };
  const first = new TamperingJob({ players, sinks, clock: FIXED_CLOCK });
  for (let n = 0; n < half; n++) first.tweet(envelopes[n]!, '0', n);
  await store.save('verify-tampering', first.snapshot().engine);
  const second = new TamperingJob({ players, sinks, clock: FIXED_CLOCK });
  second.restore({ engine: (await store.load('verify-tampering'))!, stats: { ...first.stats } });
  for (let n = Number(second.positions().tweets['0']) + 1; n < envelopes.length; n++)
    second.tweet(envelopes[n]!, '0', n);
  second.end();
  const windowMs = second.config.windowMs;
  const have = alerts
    .map((a) => `${a.team}|${a.tamperingPlayer}|${a.window.start}|${a.total}|${a.players.join(',')}`)
    .sort();
  const want = expectedAlerts(envelopes, players, windowMs);
  if (alerts.some((a) => a.firing !== 0)) throw new Error('tampering: re-firings on in-order input');
  if (have.length !== want.length || have.some((x, i) => x !== want[i])) {
    throw new Error(`tampering: engine gave ${have.length} alerts, the plain loop ${want.length}`);
  }
  return have.length;
}

export async function main(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const events = flag(argv, '--events', 5_000_000);
  const rate = flag(argv, '--rate', 10_000_000);
  const envelopeCount = flag(argv, '--envelopes', 1_000_000);
  const checkpointEvery = flag(argv, '--checkpoint-every', 1_000_000);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const benchStarted = performance.now();
  const home = await mkdtemp(path.join(os.tmpdir(), 'sluice-bench-stream-'));
  const backend = createLocalBackend(home);
  try {
    const store = new KvCheckpointStore(backend.kv);
    const gen = new NexmarkGenerator({ rate });

    // Correctness first: engine vs a plain loop, with a checkpoint/restore halfway.
    const verified: Record<string, string> = {};
    for (const query of ['q5', 'q7'] as const) {
      const parts: string[] = [];
      for (const r of [rate, 1000]) {
        const v = await verifyNexmark(query, new NexmarkGenerator({ rate: r }), VERIFY_EVENTS, store);
        parts.push(`${v.results} results in ${v.windows} windows at ${r.toLocaleString('en-US')} ev/s`);
      }
      verified[query] = parts.join('; ');
      log(`verified ${query} on ${VERIFY_EVENTS.toLocaleString('en-US')} events: ${verified[query]}`);
    }
    const { players } = defaultPlayers();
    const base = (await envelopesFromTweetsFile(path.join(NBA_DATA_DIR, NBA_FILES.tweets), players))
      .envelopes;
    const windowMs = 30_000;
    const verifiedAlerts = await verifyTampering(replicate(base, VERIFY_EVENTS, windowMs), players, store);
    log(`verified tampering on ${VERIFY_EVENTS.toLocaleString('en-US')} envelopes: ${verifiedAlerts} alerts`);

    const measured: Record<string, Measured> = {};
    for (const query of ['q5', 'q7'] as const) {
      measured[query] = await measureNexmark(query, gen, events, checkpointEvery, store);
      log(`  ${query}: ${measured[query].seconds.toFixed(2)} s`);
    }
    const envelopes = replicate(base, envelopeCount, windowMs);
    const tampering = await measureTampering(envelopes, players, checkpointEvery, store);
    measured.tampering = tampering;

    const f = (n: number) => Math.round(n).toLocaleString('en-US');
    const perS = (m: Measured) => m.events / m.seconds;
    const line = (name: string, m: Measured, unit: string, flink?: number) => {
      const rateS = perS(m);
      const cmp =
        flink === undefined
          ? ''
          : `  Flink ${f(flink)}/core  ratio ${(rateS / flink).toFixed(1)}x (target >= ${TARGET_RATIO}x)`;
      return (
        `  ${name.padEnd(9)} ${f(rateS).padStart(10)} ${unit}/s/core  (${f(m.events)} in ${m.seconds.toFixed(2)} s; ` +
        `${m.checkpoints} checkpoints ${m.checkpointSeconds.toFixed(2)} s, last ${(m.lastCheckpointBytes / 1e3).toFixed(0)} kB; ` +
        `${f(m.results)} results)${cmp}`
      );
    };
    const q5 = measured.q5!;
    const q7 = measured.q7!;
    const result = {
      events,
      rate,
      event_time_seconds: events / rate,
      checkpoint_every: checkpointEvery,
      checkpoint_store: 'KvCheckpointStore, local backend (SQLite) in a temp home',
      flink_source: FLINK_PER_CORE.source,
      flink_q5_per_core: FLINK_PER_CORE.q5,
      flink_q7_per_core: FLINK_PER_CORE.q7,
      q5_events_per_s: perS(q5),
      q5_ratio: perS(q5) / FLINK_PER_CORE.q5,
      q5_seconds: q5.seconds,
      q5_checkpoint_seconds: q5.checkpointSeconds,
      q5_last_checkpoint_bytes: q5.lastCheckpointBytes,
      q5_results: q5.results,
      q7_events_per_s: perS(q7),
      q7_ratio: perS(q7) / FLINK_PER_CORE.q7,
      q7_seconds: q7.seconds,
      q7_checkpoint_seconds: q7.checkpointSeconds,
      q7_last_checkpoint_bytes: q7.lastCheckpointBytes,
      q7_results: q7.results,
      generate_seconds: q5.generateSeconds + q7.generateSeconds,
      generate_events_per_s: (2 * events) / (q5.generateSeconds + q7.generateSeconds),
      tampering_envelopes: tampering.events,
      tampering_base_envelopes: base.length,
      tampering_envelopes_per_s: perS(tampering),
      tampering_seconds: tampering.seconds,
      tampering_checkpoint_seconds: tampering.checkpointSeconds,
      tampering_alerts: tampering.alerts,
      verified_events: VERIFY_EVENTS,
      verified_q5: verified.q5,
      verified_q7: verified.q7,
      verified_tampering_alerts: verifiedAlerts,
      peak_heap_bytes: Math.max(q5.peakHeapBytes, q7.peakHeapBytes, tampering.peakHeapBytes),
      bench_seconds: 0,
    };
    process.stdout.write(
      [
        `stream: Nexmark on sluice's stream engine, one core, ${f(events)} events at ${f(rate)} events/s of event time ` +
          `(${(events / rate).toFixed(2)} s), checkpoint every ${f(checkpointEvery)} events into KvCheckpointStore (local SQLite)`,
        `  generation (excluded): ${f(result.generate_events_per_s)} events/s, ${result.generate_seconds.toFixed(2)} s for both queries`,
        line('q5', q5, 'events', FLINK_PER_CORE.q5),
        line('q7', q7, 'events', FLINK_PER_CORE.q7),
        line('tampering', tampering, 'envelopes'),
        `  tampering input: ${f(base.length)} real envelopes (examples/data/nba), sorted by event time, replicated to ` +
          `${f(tampering.events)}; ${f(tampering.alerts)} alerts`,
        `  verified against a plain loop (checkpoint + restore halfway): q5 ${verified.q5}; q7 ${verified.q7}; ` +
          `tampering ${verifiedAlerts} alerts on ${f(VERIFY_EVENTS)} envelopes`,
        `  Flink figures: ${FLINK_PER_CORE.source}`,
        '',
      ].join('\n'),
    );
    result.bench_seconds = (performance.now() - benchStarted) / 1000;
    log(`bench took ${result.bench_seconds.toFixed(0)} s`);
    if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await backend.close();
    await rm(home, { recursive: true, force: true });
  }
}
