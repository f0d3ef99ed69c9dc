/**
 * The landing consumer resumes from its checkpoints: records already checkpointed are not landed
 * again, and a consumer that dies before checkpointing lands the same records on the next call,
 * none lost. The records on the stream are read straight from the stream port (TRIM_HORIZON), and
 * the expected records are derived from the raw capture (test/helpers/tweets.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { PipelineContext } from '../../src/core/context.ts';
import type { ObjectStore } from '../../src/core/ports/object-store.ts';
import type { StreamRecord } from '../../src/core/ports/stream.ts';
import { StreamConsumer } from '../../src/core/stream-consumer.ts';
import { createTestHome, fakeClock, type TestHome } from '../../test/helpers/context.ts';
import { HASHTAGS_SAMPLES } from '../../test/helpers/samples.ts';
import { expectedV1Records, listKeys, readJsonArray, readLandingCsv } from '../../test/helpers/tweets.ts';
import { consume } from './consumer.ts';
import { CONSUMER } from './definition.ts';
import { PRODUCER_TABLE, produce } from './producer.ts';
import { processStaging } from './staging.ts';
import { deleteStreamIfDrained, ensureStream, unconsumedRecords } from './stream.ts';

const STREAM = 'hashtags-resume';
const records = expectedV1Records(readJsonArray(HASHTAGS_SAMPLES.v1Timeline));

let home: TestHome | undefined;
afterEach(async () => {
  await home?.close();
  home = undefined;
});

/** A home whose stream holds the timeline's 15 kept records, put by producer run `producer`. */
async function homeWithRecords(options: { clock?: ReturnType<typeof fakeClock> } = {}) {
  const t = await createTestHome(options.clock ? { clock: options.clock } : {});
  home = t;
  await ensureStream(t.ctx, { stream: STREAM, shards: 1 });
  const produced = await produce(t.ctx, {
    runId: 'producer',
    stream: STREAM,
    source: { kind: 'replay', files: [HASHTAGS_SAMPLES.v1Timeline] },
  });
  expect(produced.counts.loaded).toBe(records.length);
  return t;
}

/** Every record of the stream, read with the stream port from TRIM_HORIZON (no checkpoints involved). */
async function streamRecords(t: TestHome): Promise<StreamRecord[]> {
  const { stream } = t.backend;
  const all: StreamRecord[] = [];
  for (const shard of (await stream.describeStream(STREAM)).shards) {
    const iterator = await stream.getShardIterator(STREAM, shard.shardId, { type: 'TRIM_HORIZON' });
    all.push(...(await stream.getRecords(iterator)).records);
  }
  return all;
}

/** Every landing row, across all landing objects. */
async function landedRows(t: TestHome): Promise<string[][]> {
  const rows: string[][] = [];
  for (const key of await listKeys(t, 'landing', 'hashtags/')) rows.push(...(await readLandingCsv(t, key)));
  return rows;
}

/**
 * The context with an object store whose landing writes fail once: `before` the write (the
 * process died before the object was written) or `after` it (died before the checkpoint).
 */
function crashingOnce(ctx: PipelineContext, when: 'before' | 'after'): PipelineContext {
  const store = ctx.backend.objectStore;
  let crashes = 1;
  const objectStore = new Proxy(store, {
    get(target, property) {
      if (property === 'put') {
        const put: ObjectStore['put'] = async (ref, body) => {
          if (ref.layer !== 'landing' || crashes === 0) return target.put(ref, body);
          crashes--;
          if (when === 'after') await target.put(ref, body);
          throw new Error(`simulated crash ${when} writing landing/${ref.key}`);
        };
        return put;
      }
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { ...ctx, backend: { ...ctx.backend, objectStore } };
}

const consumeOptions = (runId: string) => ({
  runId,
  stream: STREAM,
  producerRunId: 'producer',
  maxMs: 60_000,
});

describe('hashtags landing consumer: restart and resume', () => {
  it('lands only the records after its checkpoint (the first 6 of 15 already checkpointed)', async () => {
    const t = await homeWithRecords();
    const onStream = await streamRecords(t);
    expect(onStream).toHaveLength(records.length);
    // Stream order is file order: the records' tweet ids are those derived from the capture.
    expect(onStream.map((r) => JSON.parse(Buffer.from(r.data).toString('utf8')).tweet_id)).toEqual(
      records.map((r) => r.tweet_id),
    );

    const done = 6;
    const earlier = await StreamConsumer.open({
      stream: t.backend.stream,
      kv: t.backend.kv,
      streamName: STREAM,
      consumer: CONSUMER,
    });
    const [batch] = await earlier.poll();
    await earlier.checkpoint(batch!.shardId, onStream[done - 1]!.sequenceNumber);
    // The stream is not drained for this consumer: KinesisLanding would keep it.
    expect(await unconsumedRecords(t.ctx, STREAM)).toBe(records.length - done);
    expect(await deleteStreamIfDrained(t.ctx, STREAM)).toMatchObject({
      deleted: false,
      unconsumed: records.length - done,
    });

    const result = await consume(t.ctx, consumeOptions('consumer-1'));
    expect(result.stoppedBecause).toBe('drained');
    expect(result.counts).toEqual({
      read: records.length - done,
      loaded: records.length - done,
      duplicates: 0,
      quarantined: 0,
    });
    const rows = await landedRows(t);
    expect(rows.map((r) => r[0])).toEqual(onStream.slice(done).map((r) => r.sequenceNumber));
    expect(rows.map((r) => r[3])).toEqual(records.slice(done).map((r) => r.tweet_id));
    expect(await unconsumedRecords(t.ctx, STREAM)).toBe(0);
    expect(await deleteStreamIfDrained(t.ctx, STREAM)).toMatchObject({ deleted: true });
  });

  it('a consumer killed before writing its landing object lands the same records on the next call', async () => {
    const t = await homeWithRecords();
    const sequenceNumbers = (await streamRecords(t)).map((r) => r.sequenceNumber);
    await expect(consume(crashingOnce(t.ctx, 'before'), consumeOptions('consumer-1'))).rejects.toThrow(
      /simulated crash/,
    );
    expect(await listKeys(t, 'landing', 'hashtags/')).toEqual([]);
    expect(await unconsumedRecords(t.ctx, STREAM)).toBe(records.length);

    const result = await consume(t.ctx, consumeOptions('consumer-2'));
    expect(result.counts).toMatchObject({ read: records.length, loaded: records.length });
    const rows = await landedRows(t);
    expect(rows.map((r) => r[0])).toEqual(sequenceNumbers);
    expect(await unconsumedRecords(t.ctx, STREAM)).toBe(0);
  });

  it('a consumer killed after writing but before checkpointing rewrites the same object key (fixed clock): no loss, no duplicate', async () => {
    const clock = fakeClock(new Date('2026-03-04T05:06:07.890Z'));
    const t = await homeWithRecords({ clock });
    const sequenceNumbers = (await streamRecords(t)).map((r) => r.sequenceNumber);
    // `<stream>-HHMMSS-<first sequence number>.csv` under the UTC date of the flush.
    const expectedKey = `hashtags/2026/03/04/${STREAM}-050607-${sequenceNumbers[0]}.csv`;

    await expect(consume(crashingOnce(t.ctx, 'after'), consumeOptions('consumer-1'))).rejects.toThrow(
      /simulated crash after/,
    );
    expect(await listKeys(t, 'landing', 'hashtags/')).toEqual([expectedKey]);
    expect(await unconsumedRecords(t.ctx, STREAM)).toBe(records.length);

    const result = await consume(t.ctx, consumeOptions('consumer-2'));
    expect(result.landed.map((l) => l.key)).toEqual([expectedKey]);
    expect(await listKeys(t, 'landing', 'hashtags/')).toEqual([expectedKey]);
    const rows = await landedRows(t);
    expect(rows.map((r) => r[0])).toEqual(sequenceNumbers);
    expect(await unconsumedRecords(t.ctx, STREAM)).toBe(0);

    // Staging sees each record once.
    const staged = await processStaging(t.ctx, { runId: 'staging-1', selection: { lookbackHours: 1 } });
    expect(staged.counts).toMatchObject({ read: records.length, loaded: records.length, duplicates: 0 });
  });

  it('a consumer killed after writing, with time moving on, writes a second object; staging drops the repeats by record_id', async () => {
    const clock = fakeClock(new Date('2026-03-04T05:06:07.890Z'));
    const t = await homeWithRecords({ clock });
    const sequenceNumbers = (await streamRecords(t)).map((r) => r.sequenceNumber);
    await expect(consume(crashingOnce(t.ctx, 'after'), consumeOptions('consumer-1'))).rejects.toThrow();
    clock.set(new Date('2026-03-04T05:07:00.000Z'));
    await consume(t.ctx, consumeOptions('consumer-2'));
    const keys = await listKeys(t, 'landing', 'hashtags/');
    expect(keys).toHaveLength(2);
    const rows = await landedRows(t);
    // At least once: every record landed, each exactly twice (once per object).
    expect(rows.map((r) => r[0]).sort()).toEqual([...sequenceNumbers, ...sequenceNumbers].sort());

    const staged = await processStaging(t.ctx, { runId: 'staging-1', selection: { keys } });
    expect(staged.counts).toMatchObject({
      read: 2 * records.length,
      loaded: records.length,
      duplicates: records.length,
      quarantined: 0,
    });
  });

  it('keeps reading after a producer failure for the retry grace: a retried producer lands everything', async () => {
    const clock = fakeClock(new Date('2026-03-04T05:06:07Z'));
    const t = await createTestHome({ clock });
    home = t;
    await ensureStream(t.ctx, { stream: STREAM, shards: 1 });
    const producers = await t.backend.kv.table(PRODUCER_TABLE, { hashKey: { name: 'run_id', type: 'S' } });
    // The first attempt failed before sending anything; its Retry runs while the consumer waits.
    await producers.put({
      run_id: 'retried',
      stream: STREAM,
      status: 'failed',
      updated_at: clock.now().toISOString(),
    });
    let idle = 0;
    const result = await consume(t.ctx, {
      runId: 'consumer',
      stream: STREAM,
      producerRunId: 'retried',
      maxMs: 600_000,
      producerRetryGraceMs: 40_000,
      sleep: async () => {
        idle++;
        clock.set(new Date(clock.now().getTime() + 5_000));
        if (idle === 2) {
          await produce(t.ctx, {
            runId: 'retried',
            stream: STREAM,
            source: { kind: 'replay', files: [HASHTAGS_SAMPLES.v1Timeline] },
          });
        }
      },
    });
    expect(result.stoppedBecause).toBe('drained');
    expect(result.counts.loaded).toBe(records.length);
    expect((await landedRows(t)).map((row) => row[3]).sort()).toEqual(records.map((r) => r.tweet_id).sort());
  });

  it('takes a producer failure as final once the grace has passed without a retry', async () => {
    const clock = fakeClock(new Date('2026-03-04T05:06:07Z'));
    const t = await createTestHome({ clock });
    home = t;
    await ensureStream(t.ctx, { stream: STREAM, shards: 1 });
    const producers = await t.backend.kv.table(PRODUCER_TABLE, { hashKey: { name: 'run_id', type: 'S' } });
    await producers.put({
      run_id: 'dead',
      stream: STREAM,
      status: 'failed',
      updated_at: clock.now().toISOString(),
    });
    let idle = 0;
    const result = await consume(t.ctx, {
      runId: 'consumer',
      stream: STREAM,
      producerRunId: 'dead',
      maxMs: 600_000,
      producerRetryGraceMs: 40_000,
      sleep: async () => {
        idle++;
        clock.set(new Date(clock.now().getTime() + 10_000));
      },
    });
    expect(result.stoppedBecause).toBe('drained');
    expect(result.counts.read).toBe(0);
    // 40 s of grace in 10 s steps: it polled through the grace, then stopped.
    expect(idle).toBe(4);
  });
});
