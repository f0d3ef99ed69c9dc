import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { constants, gunzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/core/errors.ts';
import { createTestHome, type TestHome } from '../../test/helpers/context.ts';
import { gzipLines, sampleLines } from '../../test/helpers/samples.ts';
import { quarantineKey } from './definition.ts';
import { runGharchive } from './run.ts';

const HOUR0 = new Date('2015-01-01T00:00:00Z');
const HOUR1 = new Date('2015-01-01T01:00:00Z');

interface QuarantineRecord {
  pipeline: string;
  source: string;
  line: number;
  reason: string;
  record: string;
  record_base64?: string;
}

describe('gharchive bad input', () => {
  let t: TestHome;
  let dir: string;
  const lines = sampleLines();

  beforeEach(async () => {
    t = await createTestHome();
    dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-bad-'));
  });
  afterEach(async () => {
    await t.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function quarantine(unit: string): Promise<QuarantineRecord[]> {
    const bytes = await t.backend.objectStore.getBytes({ layer: 'quarantine', key: quarantineKey(unit) });
    return Buffer.from(bytes)
      .toString('utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as QuarantineRecord);
  }

  it('quarantines each bad record with file, line and reason, and loads the good ones', async () => {
    const event = (i: number) => JSON.parse(lines[i] ?? '{}') as Record<string, unknown>;
    const withoutId = event(3);
    delete withoutId.id;
    const badDate = { ...event(4), created_at: 'not a date' };
    const badId = { ...event(5), id: 'abc' };
    const floatId = { ...event(6), id: 1.5 };
    const noCreated = event(7);
    delete noCreated.created_at;
    const file = [
      lines[0], // 1 good
      'this is not json', // 2
      '{"id": "123", "type": "PushEvent", "payload": {', // 3 cut off
      JSON.stringify(withoutId), // 4
      JSON.stringify(badDate), // 5
      JSON.stringify(badId), // 6
      '[1, 2, 3]', // 7
      '', // 8 blank: not a record
      JSON.stringify(floatId), // 9
      '{}', // 10
      JSON.stringify(noCreated), // 11
      ...lines.slice(100, 200), // 12..111 good
    ] as string[];
    await writeFile(path.join(dir, '2015-01-01-0.json.gz'), gzipLines(file));

    const summary = await runGharchive(t.ctx, { from: HOUR0, to: HOUR0, sourceUrl: dir });
    expect(summary.exitCode).toBe(ExitCode.ok);
    const [hour] = summary.hours;
    expect(hour?.status).toBe('succeeded');
    expect(hour?.counts).toEqual({ read: 110, loaded: 101, duplicates: 0, quarantined: 9 });

    const records = await quarantine('2015-01-01-0');
    expect(records.map((r) => r.line)).toEqual([2, 3, 4, 5, 6, 7, 9, 10, 11]);
    const reasons = Object.fromEntries(records.map((r) => [r.line, r.reason]));
    expect(reasons[2]).toMatch(/not valid JSON/);
    expect(reasons[3]).toMatch(/not valid JSON/);
    expect(reasons[4]).toBe('missing id');
    expect(reasons[5]).toMatch(/^created_at is not an ISO-8601 timestamp: "not a date"/);
    expect(reasons[6]).toMatch(/^id is not a 64-bit integer: "abc"/);
    expect(reasons[7]).toMatch(/array, expected a JSON object/);
    expect(reasons[9]).toMatch(/^id is not a 64-bit integer: 1.5/);
    expect(reasons[10]).toBe('missing id');
    expect(reasons[11]).toBe('missing created_at');
    // The raw line is kept exactly.
    expect(records.find((r) => r.line === 4)?.record).toBe(JSON.stringify(withoutId));
    expect(records.find((r) => r.line === 2)?.record).toBe('this is not json');
    expect(records.every((r) => r.source === 'landing/gharchive/date=2015-01-01/2015-01-01-0.json.gz')).toBe(
      true,
    );

    const expectedIds = [lines[0], ...lines.slice(100, 200)].map((l) =>
      Number((JSON.parse(l ?? '{}') as { id: string }).id),
    );
    const rows = await t.query<{ id: number }>('SELECT id FROM gharchive.events ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual(expectedIds.sort((a, b) => a - b));
  });

  it('re-running an hour whose bad lines were fixed empties its quarantine', async () => {
    await writeFile(path.join(dir, '2015-01-01-0.json.gz'), gzipLines([lines[0] ?? '', 'garbage']));
    await runGharchive(t.ctx, { from: HOUR0, to: HOUR0, sourceUrl: dir });
    expect(await quarantine('2015-01-01-0')).toHaveLength(1);
    await t.backend.objectStore.delete({
      layer: 'landing',
      key: 'gharchive/date=2015-01-01/2015-01-01-0.json.gz',
    });
    await writeFile(path.join(dir, '2015-01-01-0.json.gz'), gzipLines([lines[0] ?? '']));
    const summary = await runGharchive(t.ctx, { from: HOUR0, to: HOUR0, sourceUrl: dir });
    expect(summary.totals).toEqual({ read: 1, loaded: 1, duplicates: 0, quarantined: 0 });
    expect(
      await t.backend.objectStore.head({ layer: 'quarantine', key: quarantineKey('2015-01-01-0') }),
    ).toBeUndefined();
  });

  it('keeps invalid UTF-8 in the quarantine as base64', async () => {
    const bad = Buffer.concat([
      Buffer.from('{"id":"1","created_at":"2015-01-01T00:00:00Z","type":"'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}'),
    ]);
    const { gzipSync } = await import('node:zlib');
    await writeFile(
      path.join(dir, '2015-01-01-0.json.gz'),
      gzipSync(Buffer.concat([Buffer.from(`${lines[0]}\n`), bad, Buffer.from('\n')])),
    );
    const summary = await runGharchive(t.ctx, { from: HOUR0, to: HOUR0, sourceUrl: dir });
    expect(summary.totals).toEqual({ read: 2, loaded: 1, duplicates: 0, quarantined: 1 });
    const [record] = await quarantine('2015-01-01-0');
    expect(record?.line).toBe(2);
    expect(record?.reason).toBe('line is not valid UTF-8');
    expect(Buffer.from(record?.record_base64 ?? '', 'base64').equals(bad)).toBe(true);
  });

  it('loads what a truncated gzip still holds, quarantines the cut line and exits 3', async () => {
    const whole = gzipLines(lines.slice(0, 2000));
    const truncated = whole.subarray(0, Math.floor(whole.length * 0.6));
    await writeFile(path.join(dir, '2015-01-01-0.json.gz'), gzipLines(lines.slice(3000, 3010)));
    await writeFile(path.join(dir, '2015-01-01-1.json.gz'), truncated);
    // What is recoverable, computed with zlib directly: complete lines, and a partial last line.
    const recovered = gunzipSync(truncated, { finishFlush: constants.Z_SYNC_FLUSH }).toString('utf8');
    const complete = recovered.split('\n').slice(0, -1);
    const partial = recovered.split('\n').at(-1) ?? '';
    expect(partial.length).toBeGreaterThan(0);

    const summary = await runGharchive(t.ctx, { from: HOUR0, to: HOUR1, sourceUrl: dir });
    expect(summary.exitCode).toBe(ExitCode.dataLoss);
    const hour1 = summary.hours[1];
    expect(hour1?.status).toBe('partial');
    expect(hour1?.error).toMatch(/truncated/);
    expect(hour1?.counts).toEqual({
      read: complete.length + 1,
      loaded: complete.length,
      duplicates: 0,
      quarantined: 1,
    });
    const [record] = await quarantine('2015-01-01-1');
    expect(record).toMatchObject({ line: complete.length + 1, record: partial });
    const [row] = await t.query<{ n: number }>('SELECT count(*) AS n FROM gharchive.events');
    expect(row?.n).toBe(10 + complete.length);
    const runs = await import('../../src/core/run.ts').then((m) => m.RunLog.open(t.backend.kv, t.ctx.clock));
    const transform = (await runs.list({ pipeline: 'gharchive' })).find(
      (r) => r.step === 'transform' && r.unit === '2015-01-01-1.json.gz',
    );
    expect(transform?.status).toBe('partial');
  });

  it('reads an hour file that is plain NDJSON despite its .gz name', async () => {
    await writeFile(path.join(dir, '2015-01-01-0.json.gz'), `${lines.slice(0, 50).join('\n')}`);
    const summary = await runGharchive(t.ctx, { from: HOUR0, to: HOUR0, sourceUrl: dir });
    expect(summary.totals).toEqual({ read: 50, loaded: 50, duplicates: 0, quarantined: 0 });
  });
});
