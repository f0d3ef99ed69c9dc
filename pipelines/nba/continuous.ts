/**
 * The tampering job run continuously under `sluice up` (and as scheduled functions on AWS): the
 * original ran Flink on Kinesis Data Analytics reading a Kinesis data stream fed by the collector.
 * Here the job runs in invocations of a function ({@link drainTampering}, function
 * `nba-tampering`), each one draining the stream `nba-tweets` from the job's checkpoint for a bounded
 * time ({@link drainStream}) and checkpointing state + shard positions, so across invocations it
 * behaves as one continuous job (state exactly once; alerts idempotent by id).
 *
 * One invocation:
 * 1. players from the `players` / `players_by_name` tables (loaded with the bundled reference
 *    data when empty);
 * 2. the job (TamperingJob) restored from checkpoint `nba-tampering` of the kv checkpoint store
 *    (`sluice_stream_job_checkpoints`); the checkpoint also holds the job's counters and the
 *    position in `tampering_control`'s change stream;
 * 3. control: the change records after that position, applied before this invocation's tweets;
 *    on the first invocation the table's state (a scan, as INSERTs) and the changes after the
 *    position taken before the scan;
 * 4. the tweets: every shard after its checkpointed sequence number (split = shard id, position
 *    = sequence number), `periodicEmit()` on the clock after each round of reads, until caught up
 *    or `maxMs`; records that are not envelopes go to `quarantine/nba/stream/`;
 * 5. sinks, then the checkpoint: alerts through the same sink as `sluice run nba` (only ids not in
 *    `nba.tampering_alerts` are notified, then merged); late envelopes and all-tweets records to
 *    `landing/nba/{late,all-tweets}/stream/cp-<restored checkpoint id>-<sha of its positions>.ndjson.gz`:
 *    a retry after a crash starts from the same checkpoint, so it rewrites the same objects (with
 *    at least the records the crashed attempt wrote) instead of adding copies.
 *
 * The collector ({@link collectEnvelopes}, function `nba-collect`) puts envelopes on the stream:
 * from the live filtered stream (rule `nba`) when a bearer token is set, else from the file of
 * config `replay_envelopes` once per content.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { PipelineContext } from '../../src/core/context.ts';
import type { ObjectRef } from '../../src/core/layer.ts';
import { allPages, type StreamPosition } from '../../src/core/ports/kv-table.ts';
import type { Notifier } from '../../src/core/ports/notifier.ts';
import { type PutRecordInput, StreamExistsError, StreamNotFoundError } from '../../src/core/ports/stream.ts';
import type { RecordCounts } from '../../src/core/run.ts';
import {
  type Checkpoint,
  type CheckpointStore,
  type DrainResult,
  drainStream,
  KvCheckpointStore,
} from '../../src/engines/stream/index.ts';
import { FilteredStreamClient } from '../../src/sources/twitter/filtered-stream.ts';
import type { TweetInput } from '../../src/sources/twitter/types.ts';
import { PIPELINE } from './definition.ts';
import { type Envelope, readEnvelopes, type Tweet, validateEnvelope } from './envelopes.ts';
import { defaultPlayers, loadReferenceData, openReferenceTables, type PlayerRecord } from './reference.ts';
import { collectingJob, readAllChanges, sinkAlerts, tamperingCounts } from './run.ts';
import {
  type ControlChange,
  controlChangeFromRecord,
  emptyTamperingStats,
  type TamperingAlert,
  type TamperingConfig,
  type TamperingStats,
} from './tampering.ts';

/** The stream the collector writes and the job reads (a Kinesis data stream on AWS). */
export const DEFAULT_TWEET_STREAM = 'nba-tweets';
/** The job's name in the checkpoint store. */
export const TAMPERING_JOB = 'nba-tampering';
/** The job's source of tweets (its positions are the shards' sequence numbers). */
const TWEETS_SOURCE = 'tweets';
/** Key-value table of replayed envelope files, by content hash. */
export const REPLAYS_TABLE = 'nba_replayed_envelopes';

/** What the checkpoint holds besides the engine's state. */
interface NbaCheckpointExtra {
  readonly nba?: { readonly stats: TamperingStats; readonly control: StreamPosition | null };
}

/** Options of {@link drainTampering}. */
export interface TamperingDrainOptions {
  readonly runId: string;
  readonly notifier: Notifier;
  readonly stream?: string;
  /** Shards of the stream when it has to be created (default 1). */
  readonly shards?: number;
  /** Longest drain on the clock, ms (default 50 s). */
  readonly maxMs?: number;
  readonly config?: Partial<TamperingConfig>;
  /** Default: the key-value checkpoint store. */
  readonly checkpoints?: CheckpointStore;
  readonly shouldStop?: () => boolean;
  /** Called after the sinks, before the checkpoint save (tests inject a crash). */
  readonly beforeSave?: () => Promise<void>;
}

/** What one invocation did. */
export interface TamperingDrainResult {
  readonly runId: string;
  readonly stream: string;
  readonly drain: DrainResult;
  /** read = stream records = quarantined + filtered + loaded (see tamperingCounts). */
  readonly counts: RecordCounts;
  /** The job's counters for this invocation only. */
  readonly stats: TamperingStats;
  readonly controlChanges: readonly ControlChange[];
  readonly alerts: readonly TamperingAlert[];
  readonly notified: number;
  readonly written: number;
  readonly alreadyPresent: number;
  readonly late: number;
  readonly allTweets: number;
  /** `landing/...` / `quarantine/...` keys written (none when nothing was read). */
  readonly keys: readonly string[];
}

/** Creates the stream when it does not exist. @returns whether it was created. */
export async function ensureTweetStream(ctx: PipelineContext, name: string, shards = 1): Promise<boolean> {
  try {
    await ctx.backend.stream.describeStream(name);
    return false;
  } catch (error) {
    if (!(error instanceof StreamNotFoundError)) throw error;
  }
  try {
    await ctx.backend.stream.createStream(name, { shardCount: shards });
    return true;
  } catch (error) {
    if (error instanceof StreamExistsError) return false;
    throw error;
  }
}

/**
 * The players the job enriches with: `players_by_name` items first (the name lookup: first wins,
 * as the loader kept it), then `players`. When `players` is empty the bundled reference data is
 * loaded first.
 */
export async function playersFromTables(ctx: PipelineContext): Promise<PlayerRecord[]> {
  const tables = await openReferenceTables(ctx);
  const first = await tables.players.scan({ limit: 1 });
  if (first.items.length === 0) {
    const { players } = defaultPlayers();
    await loadReferenceData(ctx, { players });
    return [...players];
  }
  const records: PlayerRecord[] = [];
  const asPlayer = (item: Record<string, unknown>): PlayerRecord => ({
    account: String(item.account),
    name: String(item.name),
    team: String(item.team),
  });
  for await (const item of allPages((cursor) => tables.playersByName.scan(cursor ? { cursor } : {})))
    records.push(asPlayer(item));
  for await (const item of allPages((cursor) => tables.players.scan(cursor ? { cursor } : {})))
    records.push(asPlayer(item));
  return records;
}

function subtract(after: TamperingStats, before: TamperingStats): TamperingStats {
  const out = { ...after };
  for (const key of Object.keys(out) as (keyof TamperingStats)[]) out[key] = after[key] - before[key];
  return out;
}

const ZERO_STATS: TamperingStats = emptyTamperingStats();

/** One invocation of the continuous tampering job. See the module doc. */
export async function drainTampering(
  ctx: PipelineContext,
  options: TamperingDrainOptions,
): Promise<TamperingDrainResult> {
  const streamName = options.stream ?? DEFAULT_TWEET_STREAM;
  await ensureTweetStream(ctx, streamName, options.shards ?? 1);
  const players = await playersFromTables(ctx);
  const { control: controlTable } = await openReferenceTables(ctx);
  const { objectStore } = ctx.backend;

  const rejected: string[] = [];
  const { job, alerts, late, all } = collectingJob(ctx, players, options.config);

  let before: TamperingStats = ZERO_STATS;
  let controlPosition: StreamPosition | null = null;
  const controlChanges: ControlChange[] = [];
  let unitName = '';
  const keys: string[] = [];
  let written = { notified: 0, written: 0, alreadyPresent: 0 };

  const drain = await drainStream({
    stream: ctx.backend.stream,
    streamName,
    // State above DynamoDB's 400 KB item limit (a burst of player tweets) spills to the lake.
    checkpoints:
      options.checkpoints ??
      new KvCheckpointStore(ctx.backend.kv, () => ctx.clock.now(), { objects: ctx.backend.objectStore }),
    jobName: TAMPERING_JOB,
    source: TWEETS_SOURCE,
    clock: ctx.clock,
    maxMs: options.maxMs ?? 50_000,
    ...(options.shouldStop ? { shouldStop: options.shouldStop } : {}),
    job: {
      restore: (checkpoint) => {
        const extra = (checkpoint as Checkpoint & NbaCheckpointExtra).nba;
        job.restore({ engine: checkpoint, stats: extra?.stats ?? ZERO_STATS });
      },
      collect: (record, shardId) => {
        const text = Buffer.from(record.data).toString('utf8');
        let value: unknown;
        let reason: string | undefined;
        try {
          value = JSON.parse(text);
        } catch (error) {
          reason = `not JSON: ${(error as Error).message}`;
        }
        const envelope = reason === undefined ? validateEnvelope(value) : reason;
        if (typeof envelope === 'string') {
          rejected.push(
            JSON.stringify({
              step: 'tampering',
              run_id: options.runId,
              shard: shardId,
              sequence_number: record.sequenceNumber,
              reason: envelope,
              raw: text.slice(0, 64 * 1024),
            }),
          );
          return;
        }
        job.tweet(envelope, shardId, record.sequenceNumber);
      },
      periodicEmit: () => job.periodicEmit(),
      snapshot: () => {
        const s = job.snapshot();
        const extra: NbaCheckpointExtra = { nba: { stats: s.stats, control: controlPosition } };
        return { ...s.engine, ...extra } as Checkpoint;
      },
    },
    prepare: async (checkpoint) => {
      const extra = (checkpoint as (Checkpoint & NbaCheckpointExtra) | undefined)?.nba;
      before = { ...(extra?.stats ?? ZERO_STATS) };
      const positions = checkpoint?.sources[TWEETS_SOURCE]?.positions ?? {};
      const sha = createHash('sha256')
        .update(JSON.stringify(Object.entries(positions).sort()))
        .digest('hex')
        .slice(0, 12);
      unitName = `cp-${String(checkpoint?.id ?? 0).padStart(10, '0')}-${sha}`;
      let position = extra?.control ?? null;
      if (position === null) {
        position = (await controlTable.readChanges({ type: 'LATEST' })).next;
        for await (const item of allPages((cursor) => controlTable.scan(cursor ? { cursor } : {}))) {
          controlChanges.push({
            eventName: 'INSERT',
            team: String(item.team),
            control: item.control === true,
          });
        }
      }
      const records = await readAllChanges(controlTable, position);
      for (const record of records) controlChanges.push(controlChangeFromRecord(record));
      // Where the next invocation continues: after the last change read (or the same position).
      controlPosition =
        records.length > 0
          ? { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: records.at(-1)!.sequenceNumber }
          : position;
      for (const change of controlChanges) job.control(change);
    },
    flush: async () => {
      const put = async (ref: ObjectRef, lines: readonly string[], gzip: boolean) => {
        if (lines.length === 0) return;
        const text = `${lines.join('\n')}\n`;
        await objectStore.put(ref, gzip ? gzipSync(text) : text);
        keys.push(`${ref.layer}/${ref.key}`);
      };
      await put({ layer: 'quarantine', key: `${PIPELINE}/stream/${unitName}.ndjson` }, rejected, false);
      await put({ layer: 'landing', key: `${PIPELINE}/late/stream/${unitName}.ndjson.gz` }, late, true);
      await put({ layer: 'landing', key: `${PIPELINE}/all-tweets/stream/${unitName}.ndjson.gz` }, all, true);
      const sunk = await sinkAlerts(ctx, { alerts, runId: options.runId, notifier: options.notifier });
      written = {
        notified: sunk.notified.alerts,
        written: sunk.dataset.written,
        alreadyPresent: sunk.dataset.alreadyPresent,
      };
    },
    ...(options.beforeSave ? { beforeSave: options.beforeSave } : {}),
  });

  const stats = subtract(job.stats, before);
  return {
    runId: options.runId,
    stream: streamName,
    drain,
    counts: tamperingCounts(stats, rejected.length),
    stats,
    controlChanges,
    alerts,
    ...written,
    late: late.length,
    allTweets: all.length,
    keys,
  };
}

/** The records of one envelope batch for the stream; partition key: the author (order per author). */
function recordOf(envelope: Envelope): PutRecordInput {
  const key = envelope.includes?.users?.[0]?.username || envelope.data?.[0]?.id || 'nba';
  return { partitionKey: key.slice(0, 256), data: JSON.stringify(envelope) };
}

/** Puts envelopes on the stream in batches of 500, re-sending records Kinesis failed (throttling). */
export async function putEnvelopes(
  ctx: PipelineContext,
  streamName: string,
  envelopes: readonly Envelope[],
  onBatch?: (sent: number) => Promise<void>,
): Promise<number> {
  let sent = 0;
  for (let i = 0; i < envelopes.length; i += 500) {
    let pending = envelopes.slice(i, i + 500).map(recordOf);
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > 5) throw new Error(`stream ${streamName}: ${pending.length} records failed 6 times`);
      const result = await ctx.backend.stream.putRecords(streamName, pending);
      pending = pending.filter((_r, j) => 'errorCode' in (result.records[j] ?? {}));
      if (pending.length > 0) await ctx.clock.sleep(100 * 2 ** attempt);
    }
    sent = Math.min(i + 500, envelopes.length);
    await onBatch?.(sent);
  }
  return sent;
}

/**
 * A v2 filtered-stream item as the original collector's envelope: `{event_time, data: [tweet],
 * includes: {users}}`; `event_time` = the tweet's `created_at`, or `now` when it has none.
 */
export function envelopeOfTweet(input: TweetInput, now: Date): Envelope | undefined {
  if (input.kind !== 'v2') return undefined;
  const tweet = input.tweet as unknown as Tweet;
  const created = typeof tweet.created_at === 'string' ? Date.parse(tweet.created_at) : Number.NaN;
  const users = (input.includes.users ?? []).filter((u) => u.id === tweet.author_id);
  return {
    event_time: Number.isFinite(created) ? created : now.getTime(),
    data: [tweet],
    includes: {
      users: (users.length > 0 ? users : (input.includes.users ?? []))
        .filter((u) => typeof u.username === 'string')
        .map((u) => ({ username: u.username as string })),
    },
  };
}

/** Options of {@link collectEnvelopes}. */
export interface CollectOptions {
  readonly runId: string;
  readonly stream?: string;
  readonly shards?: number;
  /** Live: the bearer token; the filtered stream is read for `liveSeconds` with rule `nba`. */
  readonly bearerToken?: string;
  readonly liveSeconds?: number;
  readonly baseUrl?: string;
  /** Replay: an NDJSON envelope file (sent once per content); none: nothing to do. */
  readonly replayFile?: string;
  /** Replay a file again even when its content was sent before. */
  readonly again?: boolean;
}

/** What the collector did. */
export interface CollectResult {
  readonly mode: 'live' | 'replay' | 'none';
  readonly stream: string;
  readonly created: boolean;
  readonly read: number;
  readonly sent: number;
  readonly rejected: number;
  readonly file?: string;
  readonly status?: 'sent' | 'skipped';
}

/** The collector: live tweets or a replayed envelope file onto the stream. See the module doc. */
export async function collectEnvelopes(
  ctx: PipelineContext,
  options: CollectOptions,
): Promise<CollectResult> {
  const streamName = options.stream ?? DEFAULT_TWEET_STREAM;
  if (options.bearerToken) {
    const created = await ensureTweetStream(ctx, streamName, options.shards ?? 1);
    const client = new FilteredStreamClient({
      bearerToken: options.bearerToken,
      ...(options.baseUrl ? { baseUrl: options.baseUrl } : {}),
      logger: ctx.logger,
    });
    await client.syncRules([{ value: 'nba', tag: 'sluice-nba' }]);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), (options.liveSeconds ?? 50) * 1000);
    timer.unref();
    let read = 0;
    let sent = 0;
    let batch: Envelope[] = [];
    try {
      for await (const input of client.stream({ signal: controller.signal })) {
        read++;
        const envelope = envelopeOfTweet(input, ctx.clock.now());
        if (envelope !== undefined) batch.push(envelope);
        if (batch.length >= 100) {
          sent += await putEnvelopes(ctx, streamName, batch);
          batch = [];
        }
      }
      sent += await putEnvelopes(ctx, streamName, batch);
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
    return { mode: 'live', stream: streamName, created, read, sent, rejected: read - sent };
  }
  if (!options.replayFile) {
    return { mode: 'none', stream: streamName, created: false, read: 0, sent: 0, rejected: 0 };
  }
  const created = await ensureTweetStream(ctx, streamName, options.shards ?? 1);
  const file = path.resolve(options.replayFile);
  const sha256 = createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
  const replays = await ctx.backend.kv.table(REPLAYS_TABLE, { hashKey: { name: 'sha256', type: 'S' } });
  const record = await replays.get({ sha256 });
  const { envelopes, rejected } = await readEnvelopes(file);
  const base = { mode: 'replay' as const, stream: streamName, created, file };
  if (record?.status === 'sent' && !options.again) {
    return { ...base, read: 0, sent: 0, rejected: 0, status: 'skipped' };
  }
  // An interrupted replay (crash, timeout) resumes after the last batch it recorded as sent.
  const resumeAt = record?.status === 'sending' && typeof record.sent === 'number' ? record.sent : 0;
  const progress = (sent: number, status: 'sending' | 'sent') =>
    replays.put({ sha256, file, run_id: options.runId, status, sent: resumeAt + sent });
  const sent = await putEnvelopes(ctx, streamName, envelopes.slice(resumeAt), (n) => progress(n, 'sending'));
  await progress(sent, 'sent');
  return {
    ...base,
    read: envelopes.length + rejected.length,
    sent,
    rejected: rejected.length,
    status: 'sent',
  };
}
