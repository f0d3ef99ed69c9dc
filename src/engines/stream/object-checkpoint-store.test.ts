import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestHome, type TestHome } from '../../../test/helpers/context.ts';
import type { ObjectRef } from '../../core/layer.ts';
import type { ObjectBody, ObjectInfo, ObjectStore } from '../../core/ports/object-store.ts';
import { JOB_CHECKPOINTS_TABLE, KvCheckpointStore } from './checkpoint-store.ts';
import { type Checkpoint, StreamExecutionEnvironment } from './data-stream.ts';
import { ObjectStoreCheckpointStore } from './object-checkpoint-store.ts';
import { watermarkStrategy } from './watermarks.ts';
import { TumblingEventTimeWindows } from './window-assigners.ts';

interface Ev {
  k: string;
  t: number;
}

/** Counts per key in 10 s tumbling windows; `results` collects the firings. */
function countJob() {
  const env = new StreamExecutionEnvironment();
  const src = env.fromSource<Ev>('in', {
    watermarks: watermarkStrategy({ timestamp: (e) => e.t, outOfOrderness: 1_000 }),
  });
  const results: string[] = [];
  src
    .keyBy((e) => e.k)
    .window(TumblingEventTimeWindows.of(10_000))
    .aggregate<number, number, string>(
      { createAccumulator: () => 0, add: (_e, acc) => acc + 1, getResult: (acc) => acc },
      (key, count, ctx, out) => out.collect(`${key}@${ctx.window.start}=${count}`),
    )
    .sinkTo((r) => results.push(r));
  let line = 0;
  const push = (k: string, t: number) => src.collect({ k, t }, '0', line++);
  return { env, src, results, push };
}

const checkpoint = (id: number, payload = 'x'): Checkpoint => ({
  id,
  sources: { in: { positions: { '0': id }, watermarks: null } },
  operators: { op: { payload } },
});

describe('ObjectStoreCheckpointStore', () => {
  let test: TestHome;
  beforeEach(async () => {
    test = await createTestHome();
  });
  afterEach(async () => {
    await test.close();
  });

  const store = (options: { compression?: 'gzip' | 'none'; objects?: ObjectStore } = {}) =>
    new ObjectStoreCheckpointStore({
      objects: options.objects ?? test.backend.objectStore,
      kv: test.backend.kv,
      ...(options.compression === undefined ? {} : { compression: options.compression }),
    });

  it('round-trips a checkpoint; the item only points at the object', async () => {
    for (const compression of ['none', 'gzip'] as const) {
      const s = store({ compression });
      const job = `job-${compression}`;
      expect(await s.load(job)).toBeUndefined();
      const big = 'y'.repeat(500_000); // more than a DynamoDB item may hold
      await s.save(job, checkpoint(1, big));
      expect(await s.load(job)).toEqual(checkpoint(1, big));
      const item = await (
        await test.backend.kv.table(JOB_CHECKPOINTS_TABLE, {
          hashKey: { name: 'job', type: 'S' },
        })
      ).get({ job });
      expect(item).toMatchObject({ job, checkpoint_id: 1, object_layer: 'staging' });
      expect(item?.state).toBeUndefined();
      expect(JSON.stringify(item).length).toBeLessThan(1_000);
      expect(item?.object_key).toBe(
        `_checkpoints/${job}/0000000000000001.json${compression === 'gzip' ? '.gz' : ''}`,
      );
      // hidden from ordinary listings (crawlers, table scans)
      const visible: string[] = [];
      for await (const info of test.backend.objectStore.list('staging', '')) visible.push(info.key);
      expect(visible).toEqual([]);
    }
  });

  it('restores an engine job from it exactly like an uninterrupted one', async () => {
    const input: [string, number][] = [];
    for (let i = 0; i < 300; i++) input.push([`k${i % 5}`, i * 300 + ((i * 13) % 4) * 500]);
    const full = countJob();
    for (const [k, t] of input) full.push(k, t);
    full.src.end();

    const s = store({ compression: 'gzip' });
    const first = countJob();
    for (const [k, t] of input.slice(0, 150)) first.push(k, t);
    await s.saveSerialized('count', first.env.snapshotSerialized());
    const second = countJob();
    second.env.restoreSerialized((await s.loadSerialized('count'))!);
    const after = Number(second.src.positions()['0']) + 1;
    expect(after).toBe(150);
    input.slice(after).forEach(([k, t], i) => {
      second.src.collect({ k, t }, '0', after + i);
    });
    second.src.end();
    expect([...first.results, ...second.results].sort()).toEqual([...full.results].sort());
  });

  it('keeps the old checkpoint valid when the process dies between the object write and the switch', async () => {
    const s = store();
    await s.save('job', checkpoint(1, 'one'));
    // the crash: the pointer put never happens
    let crash = true;
    const kv = test.backend.kv;
    const crashing = new ObjectStoreCheckpointStore({
      objects: test.backend.objectStore,
      kv: {
        capabilities: kv.capabilities,
        table: async (name, schema, options) => {
          const table = await kv.table(name, schema, options);
          return new Proxy(table, {
            get: (target, prop, receiver) =>
              prop === 'put' && crash
                ? async () => {
                    throw new Error('killed');
                  }
                : Reflect.get(target, prop, receiver),
          });
        },
      },
    });
    await expect(crashing.save('job', checkpoint(2, 'two'))).rejects.toThrow('killed');
    expect((await s.list('job')).map((r) => r.key.split('/').at(-1))).toEqual([
      '0000000000000001.json',
      '0000000000000002.json',
    ]);
    expect(await s.load('job')).toEqual(checkpoint(1, 'one')); // the pointer still says 1

    // the restarted job numbers its next checkpoint 2 again: it replaces the orphan
    crash = false;
    await s.save('job', checkpoint(2, 'two again'));
    expect(await s.load('job')).toEqual(checkpoint(2, 'two again'));
  });

  it('removes old checkpoints after the switch, keeping the previous one', async () => {
    const s = store();
    for (let id = 1; id <= 5; id++) await s.save('job', checkpoint(id));
    expect((await s.list('job')).map((r) => r.key.split('/').at(-1))).toEqual([
      '0000000000000004.json',
      '0000000000000005.json',
    ]);
    await s.save('other', checkpoint(1));
    expect(await s.list('job')).toHaveLength(2);
    expect(await s.list('other')).toHaveLength(1);
  });

  it('ignores an older checkpoint and deletes an object that lost the race for the pointer', async () => {
    const s = store();
    await s.save('job', checkpoint(3, 'three'));
    await s.save('job', checkpoint(2, 'late')); // seen as older before writing
    expect(await s.load('job')).toEqual(checkpoint(3, 'three'));
    expect(await s.list('job')).toHaveLength(1);

    // a newer writer switches the pointer between our read and our conditional put
    const objects = test.backend.objectStore;
    let interleaved = false;
    const racing: ObjectStore = Object.create(objects, {
      put: {
        value: async (ref: ObjectRef, body: ObjectBody): Promise<ObjectInfo> => {
          const info = await objects.put(ref, body);
          if (!interleaved) {
            interleaved = true;
            await s.save('job', checkpoint(5, 'five'));
          }
          return info;
        },
      },
    });
    await store({ objects: racing }).save('job', checkpoint(4, 'four'));
    expect(await s.load('job')).toEqual(checkpoint(5, 'five'));
    expect((await s.list('job')).map((r) => r.key.split('/').at(-1))).toEqual([
      '0000000000000003.json',
      '0000000000000005.json',
    ]);
  });

  it('reads a checkpoint KvCheckpointStore wrote for the job', async () => {
    await new KvCheckpointStore(test.backend.kv).save('job', checkpoint(1, 'kv'));
    expect(await store().load('job')).toEqual(checkpoint(1, 'kv'));
    await store().save('job', checkpoint(2, 'object'));
    expect(await store().load('job')).toEqual(checkpoint(2, 'object'));
    await expect(new KvCheckpointStore(test.backend.kv).load('job')).rejects.toThrow(
      /ObjectStoreCheckpointStore/,
    );
  });
});
