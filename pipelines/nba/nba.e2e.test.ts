import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLocalBackend } from '../../src/backends/local/local-backend.ts';
import { runNbaCommand } from '../../src/cli/commands/run-nba.ts';
import type { Alert } from '../../src/core/alert.ts';
import type { Notifier } from '../../src/core/ports/notifier.ts';
import { startTestWarehouse, type TestWarehouse } from '../../test/helpers/tolls.ts';
import { type Envelope, envelopesFromTweets } from './envelopes.ts';
import { defaultPlayers, NBA_DATA_DIR, NBA_FILES, type PlayerRecord } from './reference.ts';
import { replayTampering, type TamperingAlert } from './tampering.ts';

/** The real sample's lines (gunzipped here, not with sluice's reader). */
const lines = gunzipSync(readFileSync(path.join(NBA_DATA_DIR, NBA_FILES.tweets)))
  .toString('utf8')
  .split('\n')
  .filter((l) => l !== '');
const players = defaultPlayers().players;
/** The envelopes sorted by event time (stable): in order, so no record is late. */
const sorted: Envelope[] = envelopesFromTweets(lines, players)
  .envelopes.map((e, i) => ({ e, i }))
  .sort((a, b) => a.e.event_time - b.e.event_time || a.i - b.i)
  .map((x) => x.e);

/**
 * The independent, deliberately simple implementation of the original's rule on sorted input with
 * no late data: source player by account, destination by the first athlete annotation's name
 * (first player of a name wins, as the name index), window = floor(t / 30 s) * 30 s, count the
 * cross-team tweets per (source team, destination player, window), alert when more than 1.
 */
function simpleAlerts(envelopes: readonly Envelope[], list: readonly PlayerRecord[]): Set<string> {
  const byAccount = new Map<string, PlayerRecord>();
  const byName = new Map<string, PlayerRecord>();
  for (const p of list) {
    if (!byAccount.has(p.account)) byAccount.set(p.account, p);
    if (!byName.has(p.name)) byName.set(p.name, p);
  }
  const counts = new Map<string, number>();
  for (const e of envelopes) {
    const source = byAccount.get(e.includes.users[0]?.username ?? '');
    const annotations = e.data[0]?.context_annotations;
    if (!source || !Array.isArray(annotations)) continue;
    const athlete = (annotations as { domain: { id: string }; entity: { name: string } }[]).find(
      (a) => a.domain.id === '60',
    );
    const destination = athlete ? byName.get(athlete.entity.name) : undefined;
    if (!destination || destination.team === source.team) continue;
    const window = Math.floor(e.event_time / 30_000) * 30_000;
    const key = `${source.team}|${destination.name}|${window}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return new Set([...counts].filter(([, n]) => n > 1).map(([key, n]) => `${key}|${n}`));
}

/** (team, player, window start, total) of each window's final firing. */
function finalFirings(alerts: readonly TamperingAlert[]): Set<string> {
  const last = new Map<string, TamperingAlert>();
  for (const a of alerts) {
    const key = `${a.team}|${a.tamperingPlayer}|${a.window.start}`;
    if ((last.get(key)?.firing ?? -1) < a.firing) last.set(key, a);
  }
  return new Set([...last].map(([key, a]) => `${key}|${a.total}`));
}

describe('nba on the real tweets', () => {
  it('alerts equal those of a simple implementation over the same sorted input', () => {
    expect(sorted).toHaveLength(21_466);
    const { alerts, stats } = replayTampering({ envelopes: sorted, players });
    expect(stats.late).toBe(0);
    expect(alerts.every((a) => a.firing === 0)).toBe(true);
    const expected = simpleAlerts(sorted, players);
    expect(expected.size).toBe(1_088);
    expect(finalFirings(alerts)).toEqual(expected);
    for (const a of alerts) {
      expect(a.message).toBe(
        `NBA team ${a.team} sent ${a.total} tweets to player ${a.tamperingPlayer} from players ${a.players.join(', ')}`,
      );
    }
  });
});

describe('sluice run nba', () => {
  /** A contiguous slice of the sorted sample (keeps the batch path fast) plus one bad line. */
  const slice = sorted.slice(0, 4_000);
  let warehouse: TestWarehouse;
  let home: string;
  let dir: string;
  let file: string;
  const notified: Alert[] = [];
  const notifier: Notifier = {
    notify: async (alert) => {
      notified.push(alert);
      return { delivered: ['test'], failed: [] };
    },
  };
  const previousUrl = process.env.SLUICE_WAREHOUSE_URL;

  beforeAll(async () => {
    warehouse = await startTestWarehouse('nba');
    process.env.SLUICE_WAREHOUSE_URL = warehouse.url;
    home = await mkdtemp(path.join(os.tmpdir(), 'sluice-nba-'));
    dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-nba-in-'));
    file = path.join(dir, 'envelopes.ndjson');
    const text = slice.map((e) => JSON.stringify(e));
    text.splice(10, 0, '{"event_time": "soon"}');
    await writeFile(file, `${text.join('\n')}\n`);
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  }, 30_000);
  afterAll(async () => {
    vi.restoreAllMocks();
    if (previousUrl === undefined) delete process.env.SLUICE_WAREHOUSE_URL;
    else process.env.SLUICE_WAREHOUSE_URL = previousUrl;
    await warehouse?.stop();
    await rm(home, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  it('writes nba.tampering_alerts, notifies the same alerts, quarantines bad lines, and does not duplicate on a re-run', async () => {
    const first = await runNbaCommand({ home, envelopes: file }, { notifier });
    if (!first) throw new Error('no summary');
    const alerts = first.tampering.alerts;
    expect(finalFirings(alerts)).toEqual(simpleAlerts(slice, players));
    expect(alerts.length).toBeGreaterThan(10);
    expect(first.input).toMatchObject({ envelopes: 4_000, rejected: 1 });
    expect(first.input.quarantine).toMatch(/^quarantine\/nba\/envelopes\/.+\.ndjson$/);
    expect(notified.map((a) => a.title)).toEqual(alerts.map((a) => a.message));
    expect(notified.every((a) => a.severity === 'warning' && a.pipeline === 'nba')).toBe(true);
    expect(first.dataset.written).toBe(alerts.length);
    expect(first.batch?.dedup.counts.read).toBe(4_000);
    expect(first.batch?.warehouse.status).toBe('loaded');

    const second = await runNbaCommand({ home, envelopes: file }, { notifier });
    expect(second?.tampering.alerts).toEqual(alerts);
    expect(second?.notified).toMatchObject({ alerts: 0, alreadyPresent: alerts.length });
    expect(second?.dataset.written).toBe(0);
    expect(notified).toHaveLength(alerts.length);

    const backend = createLocalBackend(home, { warehouseUrl: warehouse.url });
    try {
      const engine = await backend.openQueryEngine();
      try {
        const rows = (
          await engine.query(
            'SELECT id, team, tampering_player, total, players, window_start, window_end, firing, message FROM nba.tampering_alerts',
          )
        ).rows as Record<string, unknown>[];
        expect(rows).toHaveLength(alerts.length);
        const byId = new Map(rows.map((r) => [String(r.id), r]));
        for (const a of alerts) {
          const row = byId.get(a.id);
          expect(row).toBeDefined();
          expect(Number(row?.total)).toBe(a.total);
          expect(row?.message).toBe(a.message);
          expect(row?.players).toEqual(a.players);
          expect(new Date(String(row?.window_start)).getTime()).toBe(a.window.start);
        }
      } finally {
        await engine.close();
      }
      const quarantined = Buffer.from(
        await backend.objectStore.getBytes({
          layer: 'quarantine',
          key: (first.input.quarantine ?? '').replace(/^quarantine\//, ''),
        }),
      ).toString('utf8');
      expect(JSON.parse(quarantined.trim())).toMatchObject({
        line: 11,
        reason: expect.stringContaining('event_time'),
      });
    } finally {
      await backend.close();
    }
  }, 60_000);
});
