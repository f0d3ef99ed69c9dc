/**
 * KvCheckpointStore's spill to the object store: checkpoints above `maxInlineBytes` go to an object
 * (the item points at it), smaller ones stay inline, and either kind loads. DynamoDB's 400 KB item
 * limit itself is exercised on dynalite in test/e2e/aws-nba.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestHome, type TestHome } from '../../../test/helpers/context.ts';
import { JOB_CHECKPOINTS_TABLE, KvCheckpointStore } from './checkpoint-store.ts';
import type { Checkpoint } from './data-stream.ts';

const checkpoint = (id: number, payload: string): Checkpoint => ({
  id,
  sources: { in: { positions: { '0': id }, watermarks: null } },
  operators: { op: { payload } },
});

describe('KvCheckpointStore with an object store to spill into', () => {
  let test: TestHome;
  beforeEach(async () => {
    test = await createTestHome();
  });
  afterEach(async () => {
    await test.close();
  });

  const item = async () =>
    (await test.backend.kv.table(JOB_CHECKPOINTS_TABLE, { hashKey: { name: 'job', type: 'S' } })).get({
      job: 'j',
    });
  const objects = async () => {
    const keys: string[] = [];
    for await (const info of test.backend.objectStore.list('staging', '_checkpoints/', {
      includeHidden: true,
    }))
      keys.push(info.key);
    return keys;
  };

  it('keeps small checkpoints inline, spills large ones (gzip object + pointer), loads both', async () => {
    const store = new KvCheckpointStore(test.backend.kv, () => new Date('2024-01-01T00:00:00Z'), {
      objects: test.backend.objectStore,
      maxInlineBytes: 1_000,
    });
    await store.save('j', checkpoint(1, 'small'));
    expect(await item()).toMatchObject({ job: 'j', checkpoint_id: 1, state: expect.any(String) });
    expect(await objects()).toEqual([]);

    const big = checkpoint(2, 'x'.repeat(5_000));
    await store.save('j', big);
    const pointer = await item();
    expect(pointer).toMatchObject({
      checkpoint_id: 2,
      object_layer: 'staging',
      object_key: '_checkpoints/j/0000000000000002.json.gz',
    });
    expect(pointer?.state).toBeUndefined();
    expect(await objects()).toEqual(['_checkpoints/j/0000000000000002.json.gz']);
    expect(await store.load('j')).toEqual(big);
    // A fresh store (a new invocation) loads the spilled checkpoint too.
    expect(
      await new KvCheckpointStore(test.backend.kv, undefined, { objects: test.backend.objectStore }).load(
        'j',
      ),
    ).toEqual(big);

    // Shrinking back: inline again, and an older id is still refused.
    await store.save('j', checkpoint(3, 'small again'));
    expect(await item()).toMatchObject({ checkpoint_id: 3, state: expect.any(String) });
    expect(await store.load('j')).toEqual(checkpoint(3, 'small again'));
    await store.save('j', checkpoint(2, 'y'.repeat(5_000)));
    expect((await store.load('j'))?.id).toBe(3);
  });

  it('without an object store every checkpoint stays inline (unchanged behaviour)', async () => {
    const store = new KvCheckpointStore(test.backend.kv);
    const big = checkpoint(1, 'x'.repeat(5_000));
    await store.save('j', big);
    expect(typeof (await item())?.state).toBe('string');
    expect(await store.load('j')).toEqual(big);
  });
});
