import { gunzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DeliveryStream } from '../../src/engines/delivery/delivery-stream.ts';
import { createTestHome, fakeClock, type TestHome } from '../../test/helpers/context.ts';
import { deliverEnvelopes, nbaDeliveryTransform } from './batch.ts';
import type { Envelope } from './envelopes.ts';

let t: TestHome;
const clock = fakeClock(new Date('2024-03-01T10:00:00.000Z'));
beforeEach(async () => {
  clock.set(new Date('2024-03-01T10:00:00.000Z'));
  t = await createTestHome({ clock });
});
afterEach(async () => {
  await t.close();
});

async function lines(layer: 'landing' | 'quarantine', key: string): Promise<string[]> {
  const bytes = Buffer.from(await t.backend.objectStore.getBytes({ layer, key }));
  const text = (key.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8');
  return text.split('\n').filter((l) => l !== '');
}

function stream(options: Partial<ConstructorParameters<typeof DeliveryStream>[0]> = {}) {
  return new DeliveryStream({
    name: 'test',
    objectStore: t.backend.objectStore,
    clock,
    layer: 'landing',
    prefix: 'x/raw/',
    compression: 'none',
    ...options,
  });
}

describe('DeliveryStream', () => {
  it('delivers a buffer when it reaches the size hint', async () => {
    const s = stream({ buffering: { sizeBytes: 10, intervalMs: 60_000 } });
    await s.put('aaaa'); // 5 bytes with the newline
    expect(s.objects).toEqual([]);
    await s.put('bbbb'); // 10: delivered
    await s.put('cc');
    expect(s.objects.map((o) => [o.records, o.bytes, o.reason])).toEqual([[2, 10, 'size']]);
    expect(s.buffered).toBe(1);
    await s.close();
    expect(s.objects.map((o) => [o.records, o.reason])).toEqual([
      [2, 'size'],
      [1, 'flush'],
    ]);
    const [first, second] = s.objects;
    expect(first?.ref.key).toMatch(/^x\/raw\/test-2024-03-01-10-00-00-[0-9a-f]{16}\.ndjson$/);
    expect(await lines('landing', first?.ref.key as string)).toEqual(['aaaa', 'bbbb']);
    expect(await lines('landing', second?.ref.key as string)).toEqual(['cc']);
    await expect(s.put('late')).rejects.toThrow(/closed/);
  });

  it('delivers a buffer when its interval passed, on the next put or tick (no timers)', async () => {
    const s = stream({ buffering: { sizeBytes: 1_000_000, intervalMs: 60_000 } });
    await s.put('a');
    clock.set(new Date('2024-03-01T10:00:59.999Z'));
    expect(await s.tick()).toBe(0);
    await s.put('b');
    clock.set(new Date('2024-03-01T10:01:00.000Z'));
    expect(await s.tick()).toBe(1);
    expect(s.objects.map((o) => [o.records, o.reason])).toEqual([[2, 'interval']]);
    await s.put('c'); // a new buffer, opened now
    clock.set(new Date('2024-03-01T10:02:30.000Z'));
    await s.put('d'); // the due buffer goes first, then d opens a new one
    expect(s.objects.map((o) => [o.records, o.reason])).toEqual([
      [2, 'interval'],
      [1, 'interval'],
    ]);
    expect(s.objects[1]?.ref.key).toContain('test-2024-03-01-10-01-00-');
    await s.close();
    expect(s.stats).toEqual({ received: 4, delivered: 4, dropped: 0, failed: 0, deliveredBytes: 8 });
  });

  it('partitions dynamically, one buffer per partition, and keeps source records and failures', async () => {
    const s = stream({
      partitionKeys: ['k', 'd'],
      buffering: { sizeBytes: 1_000_000, intervalMs: 60_000 },
      compression: 'gzip',
      backup: { prefix: 'x/source/' },
      transform: (data) =>
        data === 'drop'
          ? { result: 'Dropped' }
          : data === 'fail'
            ? { result: 'ProcessingFailed', reason: 'bad record' }
            : data === 'nokey'
              ? { result: 'Ok', data, partitionKeys: { k: 'z' } }
              : { result: 'Ok', data: data.toUpperCase(), partitionKeys: { k: data[0] as string, d: 'a/b' } },
    });
    for (const r of ['a1', 'b1', 'a2', 'drop', 'fail', 'nokey']) await s.put(r);
    await s.close();
    expect(s.stats).toMatchObject({ received: 6, delivered: 3, dropped: 1, failed: 2 });
    const data = s.objects.filter((o) => o.kind === 'data');
    expect(data.map((o) => [o.ref.key.replace(/test-.*$/, ''), o.partition, o.records])).toEqual([
      ['x/raw/k=a/d=a%2Fb/', ['a', 'a/b'], 2],
      ['x/raw/k=b/d=a%2Fb/', ['b', 'a/b'], 1],
    ]);
    expect(data[0]?.ref.key).toMatch(/\.ndjson\.gz$/);
    expect(await lines('landing', data[0]?.ref.key as string)).toEqual(['A1', 'A2']);
    const backup = s.objects.filter((o) => o.kind === 'backup');
    expect(backup.map((o) => o.ref.key.replace(/test-.*$/, ''))).toEqual([
      'x/source/year=2024/month=03/day=01/',
    ]);
    expect(await lines('landing', backup[0]?.ref.key as string)).toEqual([
      'a1',
      'b1',
      'a2',
      'drop',
      'fail',
      'nokey',
    ]);
    const errors = s.objects.filter((o) => o.kind === 'error');
    expect(errors.map((o) => [o.ref.layer, o.ref.key.replace(/test-.*$/, '')])).toEqual([
      ['quarantine', 'x/raw/processing-failed/'],
    ]);
    const failed = (await lines('quarantine', errors[0]?.ref.key as string)).map(
      (l) => JSON.parse(l) as { reason: string; data: string },
    );
    expect(failed.map((f) => [f.data, f.reason])).toEqual([
      ['fail', 'bad record'],
      ['nokey', 'partition key "d" missing from the transform\'s output'],
    ]);
  });

  it('writes the same objects for the same records on the same clock', async () => {
    const keys = async () => {
      const s = stream({ compression: 'gzip' });
      for (const r of ['a', 'b']) await s.put(r);
      await s.close();
      return s.objects.map((o) => o.ref.key);
    };
    expect(await keys()).toEqual(await keys());
  });
});

describe('the nba delivery stream', () => {
  const envelope: Envelope = {
    event_time: Date.parse('2018-01-02T23:59:59.000Z'),
    data: [
      { id: '1', created_at: '2018-01-02T23:59:59.000Z', text: 'hi' },
      { id: '2', created_at: '2018-01-02T23:59:59.000Z' },
    ],
    includes: { users: [{ username: 'FCHWPO' }] },
  };

  it('keeps data[0], adds users and year/month/day of created_at', () => {
    const out = nbaDeliveryTransform(JSON.stringify(envelope));
    expect(out).toEqual({
      result: 'Ok',
      data: JSON.stringify({
        id: '1',
        created_at: '2018-01-02T23:59:59.000Z',
        text: 'hi',
        users: [{ username: 'FCHWPO' }],
        year: '2018',
        month: '01',
        day: '02',
      }),
      partitionKeys: { year: '2018', month: '01', day: '02' },
    });
    expect(nbaDeliveryTransform('{"event_time": 1}')).toMatchObject({ result: 'ProcessingFailed' });
  });

  it('lands landing/nba/raw/year=/month=/day=/ and landing/nba/source/', async () => {
    const next = { ...envelope, data: [{ id: '3', created_at: '2018-01-03T00:00:00.000Z' }] };
    const result = await deliverEnvelopes(t.ctx, [envelope, next, 'not json']);
    expect(result.stats).toMatchObject({ received: 3, delivered: 2, failed: 1 });
    expect(result.raw.map((o) => o.ref.key.replace(/nba-tweets-.*$/, ''))).toEqual([
      'nba/raw/year=2018/month=01/day=02/',
      'nba/raw/year=2018/month=01/day=03/',
    ]);
    expect(result.source.map((o) => [o.ref.key.replace(/nba-tweets-.*$/, ''), o.records])).toEqual([
      ['nba/source/year=2024/month=03/day=01/', 3],
    ]);
    expect(result.errors.map((o) => o.ref.layer)).toEqual(['quarantine']);
  });
});
