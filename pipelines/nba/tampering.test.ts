import { describe, expect, it } from 'vitest';
import { MemoryCheckpointStore } from '../../src/engines/stream/index.ts';
import { ManualClock } from '../../test/helpers/manual-clock.ts';
import type { Envelope } from './envelopes.ts';
import type { PlayerRecord } from './reference.ts';
import {
  controlChangeFromRecord,
  replayTampering,
  type TamperingAlert,
  type TamperingCheckpoint,
  TamperingJob,
} from './tampering.ts';

/** The seed's six players (seed_players_dynamodb_items.json). */
const PLAYERS: PlayerRecord[] = [
  { account: 'luka7doncic', name: 'Luka Doncic', team: 'Dallas' },
  { account: 'AntDavis23', name: 'Anthony Davis', team: 'LA Lakers' },
  { account: 'KingJames', name: 'Lebron James', team: 'LA Lakers' },
  { account: 'KDTrey5', name: 'Kevin Durant', team: 'BK Nets' },
  { account: 'KyrieIrving', name: 'Kyrie Irving', team: 'BK Nets' },
  { account: 'StephenCurry30', name: 'Stephen Curry', team: 'GS Warriors' },
];

/** A multiple of 30 s, so the windows are [BASE + 30k s, BASE + 30(k+1) s). */
const BASE = 1_600_000_020_000;
let nextId = 1;

/** An envelope at BASE + `seconds`, from `account`, mentioning athlete `to` (after a non-athlete annotation). */
function tweet(seconds: number, account: string, to: string | undefined): Envelope {
  const annotations =
    to === undefined
      ? {}
      : [
          { domain: { id: '12', name: 'Sport' }, entity: { name: 'Basketball' } },
          { domain: { id: '60', name: 'Athlete' }, entity: { id: '1', name: to } },
        ];
  return {
    event_time: BASE + Math.round(seconds * 1000),
    data: [
      { id: String(nextId++), created_at: '2020-09-13T12:27:00.000Z', context_annotations: annotations },
    ],
    includes: { users: [{ username: account }] },
  } as Envelope;
}

function alert(
  team: string,
  player: string,
  players: string[],
  windowStartS: number,
  firing = 0,
): TamperingAlert {
  const start = BASE + windowStartS * 1000;
  return {
    id: `${team}|${player}|${start}|${firing}`,
    team,
    tamperingPlayer: player,
    total: players.length,
    players,
    window: { start, end: start + 30_000 },
    firing,
    message: `NBA team ${team} sent ${players.length} tweets to player ${player} from players ${players.join(', ')}`,
  };
}

function harness(options: { clock?: ManualClock; splits?: string[] } = {}) {
  const alerts: TamperingAlert[] = [];
  const late: number[] = [];
  const all: string[] = [];
  const job = new TamperingJob({
    players: PLAYERS,
    sinks: {
      alert: (a) => alerts.push(a),
      late: (e) => late.push((e.event_time - BASE) / 1000),
      allTweets: (r) => all.push(`${r.envelope.data[0]?.id}:${r.dropped ?? 'ok'}`),
    },
    clock: options.clock ?? new ManualClock(new Date(0)),
    ...(options.splits === undefined ? {} : { splits: options.splits }),
  });
  return { job, alerts, late, all };
}

describe('tampering job', () => {
  it('alerts on on-time and out-of-order tweets, re-fires on late ones, sends later ones aside', () => {
    const { job, alerts, late, all } = harness();
    const push = (...args: Parameters<typeof tweet>) => job.tweet(tweet(...args));
    push(1, 'KingJames', 'Kevin Durant');
    push(5, 'AntDavis23', 'Kevin Durant');
    push(3, 'StephenCurry30', 'Kevin Durant'); // out of order (within 20 s)
    push(10, 'KyrieIrving', 'Kevin Durant'); // same team: never counted
    push(12, 'KDTrey5', 'Kevin Durant'); // same team
    push(20, 'nobody', 'Kevin Durant'); // unknown source
    push(21, 'KingJames', undefined); // context_annotations {}: no athlete
    push(22, 'KingJames', 'Jaylen Brown'); // unknown destination
    push(25, 'KingJames', 'Kevin Durant');
    expect(alerts).toEqual([]);
    push(51, 'luka7doncic', 'Stephen Curry'); // watermark BASE+30_999 s: fires [0, 30)
    expect(alerts).toEqual([
      alert('LA Lakers', 'Kevin Durant', ['Lebron James', 'Anthony Davis', 'Lebron James'], 0),
    ]);
    push(8, 'AntDavis23', 'Kevin Durant'); // late, within the 30 s allowed lateness: re-fire
    push(28, 'StephenCurry30', 'Kevin Durant'); // GS -> KD now 2: its window's second firing
    expect(alerts.slice(1)).toEqual([
      alert(
        'LA Lakers',
        'Kevin Durant',
        ['Lebron James', 'Anthony Davis', 'Lebron James', 'Anthony Davis'],
        0,
        1,
      ),
      alert('GS Warriors', 'Kevin Durant', ['Stephen Curry', 'Stephen Curry'], 0, 1),
    ]);
    push(80, 'luka7doncic', 'Stephen Curry'); // watermark BASE+59_999 s: window [0, 30) cleaned up
    push(29, 'KingJames', 'Kevin Durant'); // later than the allowed lateness
    job.end();
    expect(alerts).toHaveLength(3);
    expect(late).toEqual([29]);
    expect(all).toHaveLength(14);
    expect(all.filter((a) => !a.endsWith(':ok')).map((a) => a.split(':')[1])).toEqual([
      'unknown_source',
      'no_athlete',
      'unknown_destination',
    ]);
    expect(job.stats).toEqual({
      tweets: 14,
      unknownSource: 1,
      noAthlete: 1,
      unknownDestination: 1,
      suppressed: 0,
      sameTeam: 2,
      late: 1,
      alerts: 3,
    });
  });

  it('suppresses a team while its control is true and counts it again after REMOVE', () => {
    const { job, alerts } = harness();
    job.control(
      controlChangeFromRecord({
        sequenceNumber: '1',
        eventName: 'INSERT',
        keys: { team: 'LA Lakers' },
        newImage: { team: 'LA Lakers', control: true },
        approximateCreationDateTime: '2020-09-13T12:00:00.000Z',
      }),
    );
    job.control({ eventName: 'INSERT', team: 'GS Warriors', control: false });
    job.tweet(tweet(1, 'KingJames', 'Kevin Durant'));
    job.tweet(tweet(2, 'AntDavis23', 'Kevin Durant'));
    job.tweet(tweet(3, 'StephenCurry30', 'Kevin Durant'));
    job.tweet(tweet(4, 'StephenCurry30', 'Kevin Durant'));
    job.control(
      controlChangeFromRecord({
        sequenceNumber: '2',
        eventName: 'REMOVE',
        keys: { team: 'LA Lakers' },
        oldImage: { team: 'LA Lakers', control: true },
        approximateCreationDateTime: '2020-09-13T12:00:01.000Z',
      }),
    );
    job.tweet(tweet(5, 'KingJames', 'Kevin Durant'));
    job.tweet(tweet(6, 'AntDavis23', 'Kevin Durant'));
    job.control({ eventName: 'MODIFY', team: 'LA Lakers', control: true });
    job.tweet(tweet(7, 'KingJames', 'Kevin Durant'));
    job.end();
    expect(job.stats.suppressed).toBe(3);
    expect(alerts).toEqual([
      alert('GS Warriors', 'Kevin Durant', ['Stephen Curry', 'Stephen Curry'], 0),
      alert('LA Lakers', 'Kevin Durant', ['Lebron James', 'Anthony Davis'], 0),
    ]);
  });

  it('lets an idle shard stop holding the watermark back after 90 s of processing time', async () => {
    const clock = new ManualClock(new Date(0));
    const { job, alerts } = harness({ clock, splits: ['a', 'b'] });
    job.tweet(tweet(0.5, 'KyrieIrving', 'Stephen Curry'), 'b', 1);
    job.tweet(tweet(1, 'KingJames', 'Kevin Durant'), 'a', 1);
    job.tweet(tweet(2, 'AntDavis23', 'Kevin Durant'), 'a', 2);
    job.tweet(tweet(60, 'luka7doncic', 'Stephen Curry'), 'a', 3); // a alone would fire [0, 30)
    job.periodicEmit(); // both shards had elements since the last emission
    await clock.advance(1_000);
    job.tweet(tweet(61, 'luka7doncic', 'Stephen Curry'), 'a', 4);
    job.periodicEmit(); // b: inactivity starts
    await clock.advance(90_000);
    job.tweet(tweet(62, 'luka7doncic', 'Stephen Curry'), 'a', 5);
    job.periodicEmit(); // b quiet for exactly 90 s: still holding
    expect(alerts).toEqual([]);
    expect(job.currentWatermark).toBe(BASE + 500 - 20_001);
    await clock.advance(1);
    job.periodicEmit(); // b idle: the watermark is a's, BASE + 62 s - 20.001 s
    expect(job.currentWatermark).toBe(BASE + 62_000 - 20_001);
    expect(alerts).toEqual([alert('LA Lakers', 'Kevin Durant', ['Lebron James', 'Anthony Davis'], 0)]);
    expect(job.positions().tweets).toEqual({ a: 5, b: 1 });
  });

  it('restarted from a checkpoint after a crash emits exactly the alerts of an uninterrupted run', async () => {
    // Deterministic input: 600 tweets over 10 minutes, jittered up to 25 s back (some late), six players.
    const input: Envelope[] = [];
    let seed = 7;
    const rand = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    for (let i = 0; i < 600; i++) {
      const from = PLAYERS[Math.floor(rand() * PLAYERS.length)]!;
      const to = PLAYERS[Math.floor(rand() * 3) * 2]!; // Luka, Lebron or Kevin Durant
      const jitter = rand() < 0.2 ? rand() * 55 : 0;
      input.push(tweet(Math.max(0, i - jitter), from.account, to.name));
    }
    const uninterrupted = replayTampering({ envelopes: input, players: PLAYERS }).alerts;
    expect(uninterrupted.length).toBeGreaterThan(20);
    expect(uninterrupted.some((a) => a.firing > 0)).toBe(true);
    expect(new Set(uninterrupted.map((a) => a.id)).size).toBe(uninterrupted.length);

    const sink = new Map<string, TamperingAlert>();
    let duplicates = 0;
    const write = (a: TamperingAlert) => {
      const before = sink.get(a.id);
      if (before !== undefined) {
        expect(a).toEqual(before); // an idempotent write: same id, same content
        duplicates++;
      }
      sink.set(a.id, a);
    };
    const store = new MemoryCheckpointStore();
    const first = harness();
    first.job.control({ eventName: 'INSERT', team: 'Dallas', control: false });
    for (let i = 0; i < 300; i++) first.job.tweet(input[i]!, '0', i);
    first.alerts.forEach(write);
    await store.save('tampering', first.job.snapshot() as never);
    for (let i = 300; i < 370; i++) first.job.tweet(input[i]!, '0', i); // alerts sent, then the crash
    first.alerts.slice(sink.size).forEach(write);
    // crash: `first` is dropped

    const second = harness();
    second.job.restore((await store.load('tampering')) as unknown as TamperingCheckpoint);
    const resumeAt = Number(second.job.positions().tweets['0']) + 1;
    expect(resumeAt).toBe(300);
    for (let i = resumeAt; i < input.length; i++) second.job.tweet(input[i]!, '0', i);
    second.job.end();
    second.alerts.forEach(write);

    expect(duplicates).toBeGreaterThan(0); // the replay did re-emit, and the ids absorbed it
    const byId = (a: TamperingAlert, b: TamperingAlert) => (a.id < b.id ? -1 : 1);
    expect([...sink.values()].sort(byId)).toEqual([...uninterrupted].sort(byId));
    expect(second.job.stats).toEqual(replayTampering({ envelopes: input, players: PLAYERS }).stats);
  });
});
