/**
 * The streaming tampering detector of the `nba` pipeline, per REFERENCE.md section 5 (the original
 * ran it as a Flink job on Kinesis Data Analytics), on sluice's stream engine:
 *
 * 1. Source `tweets`: envelopes `{event_time, data: [tweet], includes: {users: [{username}]}}`, one
 *    split per shard; timestamps from `event_time`; bounded out-of-orderness (default 20 s) and
 *    idleness (default 90 s of processing time, the injected clock) per split.
 * 2. Enrichment: source player = players by account `includes.users[0].username`; annotations with
 *    `domain.id !== "60"` are dropped (`context_annotations` may be `{}` instead of a list);
 *    destination player = players by name of the first remaining annotation's `entity.name`.
 *    Every envelope goes to the `all-tweets` side output with its enrichment and, when it cannot be
 *    enriched, the reason (`unknown_source`, `no_athlete`, `unknown_destination`); those are not
 *    counted further.
 * 3. Control: keyed by team, connected with the tweets keyed by source team; INSERT/MODIFY of
 *    `tampering_control` sets `allowed = control`, REMOVE clears it; a tweet passes only when its
 *    source team's `allowed` is unset or false.
 * 4. Key (source team, destination player); tumbling event-time windows (default 30 s), allowed
 *    lateness (default 30 s), late records to the `late` side output. On each firing (the first,
 *    and each re-firing by a late record within the lateness) the tweets whose source team differs
 *    from the destination player's team are counted; when more than `minTweets - 1` (default: more
 *    than 1) an alert `{team, tamperingPlayer, total, players, window}` is emitted.
 *
 * Alerts have a deterministic id, `<team>|<player>|<window start>|<firing>`: a replay from a
 * checkpoint re-emits exactly the alerts emitted after it, with the same ids and contents, so a
 * sink that writes by id neither loses nor duplicates alerts across a crash.
 */
import type { Clock } from '../../src/core/clock.ts';
import { systemClock } from '../../src/core/clock.ts';
import type { ChangeRecord } from '../../src/core/ports/kv-table.ts';
import {
  type Checkpoint,
  OutputTag,
  type SourceStream,
  type SplitPosition,
  StreamExecutionEnvironment,
  TumblingEventTimeWindows,
  watermarkStrategy,
} from '../../src/engines/stream/index.ts';
import type { Envelope } from './envelopes.ts';
import type { ControlRecord, PlayerRecord } from './reference.ts';

/** The job's numbers (the original's Flink settings are the defaults). All in ms. */
export interface TamperingConfig {
  readonly windowMs: number;
  readonly allowedLatenessMs: number;
  readonly outOfOrdernessMs: number;
  readonly idlenessMs: number;
  /** An alert needs at least this many cross-team tweets in a window (the original: count > 1). */
  readonly minTweets: number;
}

export const DEFAULT_TAMPERING_CONFIG: TamperingConfig = {
  windowMs: 30_000,
  allowedLatenessMs: 30_000,
  outOfOrdernessMs: 20_000,
  idlenessMs: 90_000,
  minTweets: 2,
};

/** One alert: a team sent `total` tweets to another team's player within one window. */
export interface TamperingAlert {
  /** `<team>|<player>|<window start>|<firing>`: deterministic, for idempotent writes. */
  readonly id: string;
  readonly team: string;
  readonly tamperingPlayer: string;
  readonly total: number;
  /** Names of the source players of the counted tweets, in arrival order (repeats kept, as the original's list). */
  readonly players: readonly string[];
  /** Epoch ms, `[start, end)`. */
  readonly window: { readonly start: number; readonly end: number };
  /** 0 for the on-time firing, 1.. for re-firings by late tweets within the allowed lateness. */
  readonly firing: number;
  /** "NBA team <team> sent <total> tweets to player <player> from players <players>". */
  readonly message: string;
}

/** Why a tweet did not reach the windows at enrichment. */
export type EnrichmentDrop = 'unknown_source' | 'no_athlete' | 'unknown_destination';

/** The `all-tweets` side output: every envelope with what enrichment found. */
export interface AllTweetsRecord {
  readonly envelope: Envelope;
  readonly source: PlayerRecord | undefined;
  readonly destination: PlayerRecord | undefined;
  readonly dropped: EnrichmentDrop | undefined;
}

/** An enriched tweet on its way to the windows. */
export interface EnrichedTweet {
  readonly envelope: Envelope;
  readonly source: PlayerRecord;
  readonly destination: PlayerRecord;
}

/** A change of the control table, as the job takes it. */
export interface ControlChange {
  readonly eventName: 'INSERT' | 'MODIFY' | 'REMOVE';
  readonly team: string;
  /** The new `control` (INSERT, MODIFY). */
  readonly control?: boolean;
}

/** Where the job's outputs go; called synchronously (buffer, write in batches). */
export interface TamperingSinks {
  alert(alert: TamperingAlert): void;
  late?(envelope: Envelope): void;
  allTweets?(record: AllTweetsRecord): void;
}

/** Counters, checkpointed with the job. */
export interface TamperingStats {
  tweets: number;
  unknownSource: number;
  noAthlete: number;
  unknownDestination: number;
  /** Enriched tweets dropped because the source team's `allowed` was true. */
  suppressed: number;
  /** Enriched tweets whose source and destination teams are the same (never counted). */
  sameTeam: number;
  late: number;
  alerts: number;
}

/** A checkpoint of the whole job. */
export interface TamperingCheckpoint {
  readonly engine: Checkpoint;
  readonly stats: TamperingStats;
}

/** The notification text of REFERENCE.md (players joined with ", "). */
export function tamperingMessage(
  team: string,
  total: number,
  player: string,
  players: readonly string[],
): string {
  return `NBA team ${team} sent ${total} tweets to player ${player} from players ${players.join(', ')}`;
}

/** A `tampering_control` change-stream record as a {@link ControlChange}. */
export function controlChangeFromRecord(record: ChangeRecord): ControlChange {
  const team = String((record.newImage ?? record.oldImage ?? record.keys).team);
  return record.eventName === 'REMOVE'
    ? { eventName: 'REMOVE', team }
    : { eventName: record.eventName, team, control: record.newImage?.control === true };
}

/** `--control` records (`{team, control}`) as changes: each one an upsert. */
export function controlChangesFromRecords(records: readonly ControlRecord[]): ControlChange[] {
  return records.map((r) => ({ eventName: 'MODIFY', team: r.team, control: r.control === true }));
}

function firstAthleteName(envelope: Envelope): string | undefined {
  const annotations = envelope.data?.[0]?.context_annotations;
  if (!Array.isArray(annotations)) return undefined; // `{}` quirk
  for (const a of annotations as { domain?: { id?: unknown }; entity?: { name?: unknown } }[]) {
    if (a?.domain?.id === '60' && typeof a.entity?.name === 'string') return a.entity.name;
  }
  return undefined;
}

const KEY_SEPARATOR = '\u0000';

/** Counters of a job that has seen nothing yet (all zero). */
export function emptyTamperingStats(): TamperingStats {
  return {
    tweets: 0,
    unknownSource: 0,
    noAthlete: 0,
    unknownDestination: 0,
    suppressed: 0,
    sameTeam: 0,
    late: 0,
    alerts: 0,
  };
}

/** The tampering job: push tweets and control changes, read alerts from the sinks. */
export class TamperingJob {
  readonly config: TamperingConfig;
  readonly stats: TamperingStats = emptyTamperingStats();
  private readonly env: StreamExecutionEnvironment;
  private readonly tweets: SourceStream<Envelope>;
  private readonly controls: SourceStream<ControlChange>;

  constructor(options: {
    players: Iterable<PlayerRecord>;
    sinks: TamperingSinks;
    clock?: Clock;
    config?: Partial<TamperingConfig>;
    /** Shards declared up front hold the watermark back until they are idle. */
    splits?: readonly string[];
  }) {
    const config = { ...DEFAULT_TAMPERING_CONFIG, ...options.config };
    this.config = config;
    const { sinks } = options;
    const stats = this.stats;
    const byAccount = new Map<string, PlayerRecord>();
    const byName = new Map<string, PlayerRecord>();
    for (const p of options.players) {
      if (!byAccount.has(p.account)) byAccount.set(p.account, p);
      if (!byName.has(p.name)) byName.set(p.name, p);
    }

    const env = new StreamExecutionEnvironment();
    this.env = env;
    this.tweets = env.fromSource<Envelope>('tweets', {
      watermarks: watermarkStrategy({
        timestamp: (e) => e.event_time,
        outOfOrderness: config.outOfOrdernessMs,
        idleness: { timeout: config.idlenessMs, clock: options.clock ?? systemClock },
      }),
    });
    if (options.splits !== undefined) this.tweets.addSplits(options.splits);
    this.controls = env.fromSource<ControlChange>('control');

    const allTweetsTag = new OutputTag<AllTweetsRecord>('all-tweets');
    const lateTag = new OutputTag<EnrichedTweet>('late');

    const enriched = this.tweets.process<EnrichedTweet>((envelope, ctx, out) => {
      stats.tweets++;
      const source = byAccount.get(envelope.includes?.users?.[0]?.username ?? '');
      let dropped: EnrichmentDrop | undefined;
      let destination: PlayerRecord | undefined;
      if (source === undefined) dropped = 'unknown_source';
      else {
        const name = firstAthleteName(envelope);
        if (name === undefined) dropped = 'no_athlete';
        else {
          destination = byName.get(name);
          if (destination === undefined) dropped = 'unknown_destination';
        }
      }
      ctx.output(allTweetsTag, { envelope, source, destination, dropped });
      if (dropped === 'unknown_source') stats.unknownSource++;
      else if (dropped === 'no_athlete') stats.noAthlete++;
      else if (dropped === 'unknown_destination') stats.unknownDestination++;
      else {
        if (source!.team === destination!.team) stats.sameTeam++;
        out.collect({ envelope, source: source!, destination: destination! });
      }
    });
    enriched.getSideOutput(allTweetsTag).sinkTo((record) => sinks.allTweets?.(record));

    const allowedTweets = enriched
      .keyBy((t) => t.source.team)
      .connect(this.controls.keyBy((c) => c.team))
      .flatMap<EnrichedTweet>(
        {
          flatMap1: (tweet, ctx, out) => {
            if (ctx.state.valueState<boolean>('allowed').value() === true) stats.suppressed++;
            else out.collect(tweet);
          },
          flatMap2: (change, ctx) => {
            const allowed = ctx.state.valueState<boolean>('allowed');
            if (change.eventName === 'REMOVE') allowed.clear();
            else allowed.update(change.control === true);
          },
        },
        { uid: 'control' },
      );

    const alerts = allowedTweets
      .keyBy((t) => t.source.team + KEY_SEPARATOR + t.destination.name)
      .window(TumblingEventTimeWindows.of(config.windowMs))
      .allowedLateness(config.allowedLatenessMs)
      .sideOutputLateData(lateTag)
      .uid('windows')
      .process<TamperingAlert>((key, tweets, ctx, out) => {
        const [team = '', player = ''] = key.split(KEY_SEPARATOR);
        const players: string[] = [];
        for (const t of tweets) if (t.source.team !== t.destination.team) players.push(t.source.name);
        if (players.length < config.minTweets) return;
        const { start, end } = ctx.window;
        out.collect({
          id: `${team}|${player}|${start}|${ctx.firing}`,
          team,
          tamperingPlayer: player,
          total: players.length,
          players,
          window: { start, end },
          firing: ctx.firing,
          message: tamperingMessage(team, players.length, player, players),
        });
      });
    alerts.sinkTo((alert) => {
      stats.alerts++;
      sinks.alert(alert);
    });
    alerts.getSideOutput(lateTag).sinkTo((t) => {
      stats.late++;
      sinks.late?.(t.envelope);
    });
  }

  /** Pushes one envelope read from `split` (a shard) at `position` (for checkpoints). */
  tweet(envelope: Envelope, split = '0', position?: SplitPosition): void {
    this.tweets.collect(envelope, split, position);
  }

  /** Applies one control change (takes effect for the tweets pushed after it). */
  control(change: ControlChange, position?: SplitPosition): void {
    this.controls.collect(change, '0', position);
  }

  /** The periodic watermark emission (call on a processing-time interval; detects idle shards). */
  periodicEmit(): void {
    this.env.periodicEmit();
  }

  /** End of a bounded input (a replay): fires and cleans up every window. */
  end(): void {
    this.tweets.end();
  }

  /** Positions of the last pushed envelope per split, and of the last control change. */
  positions(): { tweets: Readonly<Record<string, SplitPosition>>; control: SplitPosition | undefined } {
    return { tweets: this.tweets.positions(), control: this.controls.positions()['0'] };
  }

  get currentWatermark(): number {
    return this.tweets.currentWatermark;
  }

  snapshot(): TamperingCheckpoint {
    return { engine: this.env.snapshot(), stats: { ...this.stats } };
  }

  /** Restores a checkpoint into this fresh job (before any input); resume after {@link positions}. */
  restore(checkpoint: TamperingCheckpoint): void {
    this.env.restore(checkpoint.engine);
    Object.assign(this.stats, checkpoint.stats);
  }
}

/**
 * Replays envelopes in order (one split, positions = indexes) after applying `control`, ends the
 * input and returns the alerts, late envelopes and stats. For `sluice run nba` and tests.
 */
export function replayTampering(options: {
  envelopes: Iterable<Envelope>;
  players: Iterable<PlayerRecord>;
  control?: readonly ControlChange[];
  config?: Partial<TamperingConfig>;
  clock?: Clock;
}): { alerts: TamperingAlert[]; late: Envelope[]; stats: TamperingStats } {
  const alerts: TamperingAlert[] = [];
  const late: Envelope[] = [];
  const job = new TamperingJob({
    players: options.players,
    sinks: { alert: (a) => alerts.push(a), late: (e) => late.push(e) },
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.config === undefined ? {} : { config: options.config }),
  });
  for (const change of options.control ?? []) job.control(change);
  let i = 0;
  for (const envelope of options.envelopes) job.tweet(envelope, '0', i++);
  job.end();
  return { alerts, late, stats: { ...job.stats } };
}
