import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestHome, type TestHome } from '../../test/helpers/context.ts';
import { envelopesFromTweets, handleForAuthor, readEnvelopes, sortedAccounts } from './envelopes.ts';
import { defaultPlayers, loadReferenceData, type PlayerRecord } from './reference.ts';

const tweet = (id: string, author: string, created = '2018-01-02T03:04:05.000Z') =>
  JSON.stringify({ id, author_id: author, created_at: created, text: `t${id}` });

describe('default players', () => {
  it('joins the handles with the 2020-21 rosters and keeps the seed items first', () => {
    const { players, report } = defaultPlayers();
    expect(report).toEqual({
      seed: 6,
      handles: 1637,
      derived: 471,
      inSeed: 6,
      ambiguousName: 8,
      notOnRoster: 1115,
      noTeam: 37,
    });
    expect(players).toHaveLength(477);
    expect(players.slice(0, 6).map((p) => p.account)).toEqual([
      'luka7doncic',
      'AntDavis23',
      'KingJames',
      'KDTrey5',
      'KyrieIrving',
      'StephenCurry30',
    ]);
    expect(new Set(players.map((p) => p.account)).size).toBe(477);
    // A derived player: the CSV's name (with diacritics) and the roster team's full name.
    expect(players.find((p) => p.name === 'Jaylen Brown')).toEqual({
      account: 'FCHWPO',
      name: 'Jaylen Brown',
      team: 'Boston Celtics',
    });
    expect(new Set(players.slice(6).map((p) => p.team)).size).toBe(30);
  });
});

describe('envelopes from tweets', () => {
  const players: PlayerRecord[] = [
    { account: 'b', name: 'B', team: 'T1' },
    { account: 'a', name: 'A', team: 'T2' },
    { account: 'c', name: 'C', team: 'T3' },
  ];

  it('maps each author to a handle by a stable hash, independent of the players order', () => {
    const lines = ['1', '2', '3', '4', '5', '6', '7', '8'].map((n) => tweet(n, `author-${n}`));
    lines.push(tweet('9', 'author-1'));
    const one = envelopesFromTweets(lines, players);
    const two = envelopesFromTweets(lines, [...players].reverse());
    expect(one).toEqual(two);
    expect(one.rejected).toEqual([]);
    const users = one.envelopes.map((e) => e.includes.users[0]?.username);
    expect(users[8]).toBe(users[0]); // the same author, the same handle
    expect(new Set(users).size).toBeGreaterThan(1);
    // Pinned values: the mapping must not change between versions (documented in the README).
    expect(users).toEqual(['c', 'c', 'c', 'b', 'c', 'a', 'b', 'b', 'c']);
    expect(
      ['14927800', '807095', '1000000'].map((a) =>
        handleForAuthor(a, sortedAccounts(defaultPlayers().players)),
      ),
    ).toEqual(['1Tyus', 'Sin_City_803', 'DennisMike93']);
    expect(handleForAuthor('1', sortedAccounts(defaultPlayers().players))).toBe(
      handleForAuthor('1', sortedAccounts([...defaultPlayers().players].reverse())),
    );
    expect(one.envelopes[0]).toEqual({
      event_time: Date.parse('2018-01-02T03:04:05.000Z'),
      data: [JSON.parse(lines[0] as string)],
      includes: { users: [{ username: users[0] }] },
    });
  });

  it('spreads the real authors over many players and teams', async () => {
    const { players: all } = defaultPlayers();
    const accounts = sortedAccounts(all);
    const handles = new Set<string>();
    for (let i = 0; i < 5000; i++) handles.add(handleForAuthor(String(1_000_000 + i), accounts));
    expect(handles.size).toBeGreaterThan(400);
  });

  it('rejects lines that are not tweets, with the line and the reason', () => {
    const { envelopes, rejected } = envelopesFromTweets(
      [tweet('1', 'x'), '', 'nope', JSON.stringify({ id: 2, created_at: 'x' }), tweet('3', 'y', 'yesterday')],
      players,
    );
    expect(envelopes).toHaveLength(1);
    expect(rejected.map((r) => [r.line, r.reason.split(':')[0]])).toEqual([
      [3, 'not JSON'],
      [4, 'id is not a string of digits'],
      [5, 'created_at is not an ISO-8601 timestamp'],
    ]);
  });
});

describe('readEnvelopes', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-nba-env-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('validates each line and keeps file order', async () => {
    const good = {
      event_time: 1,
      data: [{ id: '1', created_at: '2018-01-01T00:00:00Z' }],
      includes: { users: [{ username: 'u' }] },
    };
    const file = path.join(dir, 'e.ndjson');
    await writeFile(
      file,
      [
        JSON.stringify(good),
        '{bad',
        JSON.stringify({ ...good, event_time: 1.5 }),
        JSON.stringify({ ...good, data: [] }),
        JSON.stringify({ ...good, includes: { users: [] } }),
        '',
        JSON.stringify({ ...good, event_time: 2 }),
      ].join('\n'),
    );
    const { envelopes, rejected } = await readEnvelopes(file);
    expect(envelopes.map((e) => e.event_time)).toEqual([1, 2]);
    expect(rejected.map((r) => [r.line, r.reason.split(':')[0]])).toEqual([
      [2, 'not JSON'],
      [3, 'event_time is not an integer (epoch milliseconds)'],
      [4, 'data is not a non-empty array'],
      [5, 'includes.users is not a non-empty array'],
    ]);
  });
});

describe('loadReferenceData', () => {
  let t: TestHome;
  beforeEach(async () => {
    t = await createTestHome();
  });
  afterEach(async () => {
    await t.close();
  });

  it('writes players, the name lookup and the control table with its change stream', async () => {
    const players: PlayerRecord[] = [
      { account: 'KingJames', name: 'LeBron James', team: 'Los Angeles Lakers' },
      { account: 'FCHWPO', name: 'Jaylen Brown', team: 'Boston Celtics' },
      { account: 'other', name: 'Jaylen Brown', team: 'Nowhere' },
    ];
    const result = await loadReferenceData(t.ctx, {
      players,
      control: [
        { team: 'Boston Celtics', control: true },
        { team: 'Boston Celtics', control: false },
      ],
    });
    expect(result).toMatchObject({ players: 3, names: 2, control: 2 });
    expect(await result.tables.players.get({ account: 'FCHWPO' })).toEqual(players[1]);
    expect(await result.tables.playersByName.get({ name: 'Jaylen Brown' })).toEqual(players[1]);
    const changes = await result.tables.control.readChanges({ type: 'TRIM_HORIZON' });
    expect(changes.records.map((r) => [r.eventName, r.newImage])).toEqual([
      ['INSERT', { team: 'Boston Celtics', control: true }],
      ['MODIFY', { team: 'Boston Celtics', control: false }],
    ]);
  });

  it('loads the bundled players by default', async () => {
    const result = await loadReferenceData(t.ctx);
    expect(result.players).toBe(477);
    expect(await result.tables.players.get({ account: 'KingJames' })).toEqual({
      account: 'KingJames',
      name: 'Lebron James',
      team: 'LA Lakers',
    });
  });
});
