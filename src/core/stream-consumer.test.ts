import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../test/helpers/manual-clock.ts';
import { createLocalBackend } from '../backends/local/local-backend.ts';
import type { Backend } from './ports/backend.ts';
import type { PutRecordResult, StreamRecord, StreamStore } from './ports/stream.ts';
import { StreamArgumentError, StreamNotFoundError } from './ports/stream.ts';
import { CHECKPOINTS_TABLE, type ConsumerBatch, StreamConsumer } from './stream-consumer.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const MINUTE_MS = 60_000;

/** A record as put: its data (as text), shard and sequence number, from the put's own result. */
interface Put {
  readonly data: string;
  readonly partitionKey: string;
  readonly shardId: string;
  readonly sequenceNumber: string;
}

const text = (record: StreamRecord) => Buffer.from(record.data).toString('utf8');

describe('StreamConsumer', () => {
  let home: string;
  let clock: ManualClock;
  let backend: Backend;

  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'sluice-consumer-'));
    clock = new ManualClock(new Date('2026-03-01T12:00:00.000Z'));
    backend = createLocalBackend(home, { clock });
  });
  afterEach(async () => {
    await backend.close();
    await rm(home, { recursive: true, force: true });
  });

  /** Puts `count` records with `keys` partition keys (`k0`..), in batches of 100; data `<prefix><i>`. */
  async function putMany(name: string, count: number, keys: number, prefix = 'r'): Promise<Put[]> {
    const puts: Put[] = [];
    for (let start = 0; start < count; start += 100) {
      const inputs = Array.from({ length: Math.min(100, count - start) }, (_, j) => ({
        partitionKey: `k${(start + j) % keys}`,
        data: `${prefix}${start + j}`,
      }));
      const result = await backend.stream.putRecords(name, inputs);
      inputs.forEach((input, j) => {
        const { shardId, sequenceNumber } = result.records[j] as PutRecordResult;
        puts.push({ data: input.data, partitionKey: input.partitionKey, shardId, sequenceNumber });
      });
    }
    return puts;
  }

  function open(streamName: string, consumer = 'app', startAt?: 'TRIM_HORIZON' | 'LATEST') {
    return StreamConsumer.open({
      stream: backend.stream,
      kv: backend.kv,
      streamName,
      consumer,
      clock,
      ...(startAt ? { startAt } : {}),
    });
  }

  /** Polls until the consumer is at the tip; every batch, in order. */
  async function drain(consumer: StreamConsumer, limitPerShard?: number): Promise<ConsumerBatch[]> {
    const batches: ConsumerBatch[] = [];
    for (let polls = 0; ; polls++) {
      if (polls > 1000) throw new Error('the consumer never reached the tip');
      const polled = await consumer.poll(limitPerShard === undefined ? {} : { limitPerShard });
      batches.push(...polled);
      if (consumer.atTip) {
        expect(polled).toEqual([]);
        return batches;
      }
    }
  }

  /** `data` of the records of each shard, in delivery order. */
  function byShard(batches: ConsumerBatch[]): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const batch of batches)
      out[batch.shardId] = [...(out[batch.shardId] ?? []), ...batch.records.map(text)];
    return out;
  }

  /** `data` of the put records of each shard, in put order (what a reader must see). */
  function expectedByShard(puts: readonly Put[]): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const put of puts) {
      const list = out[put.shardId] ?? [];
      list.push(put.data);
      out[put.shardId] = list;
    }
    return out;
  }

  it('drains every shard, batch by batch, and then reports the tip', async () => {
    await backend.stream.createStream('events', { shardCount: 3 });
    const puts = await putMany('events', 300, 30);
    const consumer = await open('events');
    expect(consumer.shardIds).toEqual([
      'shardId-000000000000',
      'shardId-000000000001',
      'shardId-000000000002',
    ]);
    expect(consumer.atTip).toBe(false);

    const batches = await drain(consumer, 40);
    expect(consumer.atTip).toBe(true);
    for (const batch of batches) {
      expect(batch.records.length).toBeGreaterThan(0);
      expect(batch.records.length).toBeLessThanOrEqual(40);
    }
    const expected = expectedByShard(puts);
    expect(Object.keys(expected).sort()).toEqual(consumer.shardIds); // 30 keys reach all 3 shards
    expect(byShard(batches)).toEqual(expected);

    // Nothing new: the tip again, with nothing delivered twice.
    expect(await consumer.poll()).toEqual([]);
    expect(consumer.atTip).toBe(true);
    // New records come next, and the tip is left.
    const later = await putMany('events', 5, 5, 'later');
    const next = await consumer.poll();
    expect(consumer.atTip).toBe(false);
    expect(byShard(next)).toEqual(expectedByShard(later));
  });

  it('reports how far each batch is behind its shard’s newest record', async () => {
    await backend.stream.createStream('lag');
    await backend.stream.putRecord('lag', { partitionKey: 'p', data: 'a' });
    await clock.advance(2000);
    await backend.stream.putRecord('lag', { partitionKey: 'p', data: 'b' });
    const consumer = await open('lag');
    const first = await consumer.poll({ limitPerShard: 1 });
    expect(first.map((b) => [b.records.map(text), b.millisBehindLatest])).toEqual([[['a'], 2000]]);
    expect(consumer.atTip).toBe(false);
    const second = await consumer.poll({ limitPerShard: 1 });
    expect(second.map((b) => [b.records.map(text), b.millisBehindLatest])).toEqual([[['b'], 0]]);
    expect(consumer.atTip).toBe(false); // it returned a record
    await consumer.poll();
    expect(consumer.atTip).toBe(true);
  });

  it('a restarted consumer resumes right after its checkpoints: later records again, earlier ones never', async () => {
    await backend.stream.createStream('events', { shardCount: 2 });
    const puts = await putMany('events', 120, 12);
    const shard0 = puts.filter((p) => p.shardId === 'shardId-000000000000');
    const shard1 = puts.filter((p) => p.shardId === 'shardId-000000000001');
    expect(shard0.length).toBeGreaterThan(10);
    expect(shard1.length).toBeGreaterThan(10);

    const first = await open('events');
    await drain(first);
    await first.checkpoint('shardId-000000000000', shard0[9]!.sequenceNumber);
    await first.checkpoint('shardId-000000000001', shard1[4]!.sequenceNumber);
    expect(await first.checkpoints()).toEqual({
      'shardId-000000000000': shard0[9]!.sequenceNumber,
      'shardId-000000000001': shard1[4]!.sequenceNumber,
    });

    // A crash: the records after the checkpoints were delivered but not processed.
    const restarted = await open('events');
    expect(await restarted.checkpoints()).toEqual(await first.checkpoints());
    const again = byShard(await drain(restarted));
    expect(again).toEqual({
      'shardId-000000000000': shard0.slice(10).map((p) => p.data),
      'shardId-000000000001': shard1.slice(5).map((p) => p.data),
    });

    // A shard checkpointed at its last record delivers nothing after a restart.
    await restarted.checkpoint('shardId-000000000000', shard0.at(-1)!.sequenceNumber);
    const third = await open('events');
    expect(byShard(await drain(third))).toEqual({
      'shardId-000000000001': shard1.slice(5).map((p) => p.data),
    });

    // Another consumer has checkpoints of its own: it reads everything.
    const other = await open('events', 'other-app');
    expect(await other.checkpoints()).toEqual({});
    expect(byShard(await drain(other))).toEqual(expectedByShard(puts));

    // The checkpoints are items of the key-value table, keyed by consumer and stream id.
    const table = await backend.kv.table(CHECKPOINTS_TABLE, {
      hashKey: { name: 'consumer_stream', type: 'S' },
      rangeKey: { name: 'shard_id', type: 'S' },
    });
    const item = await table.get({
      consumer_stream: `app/${first.streamId}`,
      shard_id: 'shardId-000000000001',
    });
    expect(item).toEqual({
      consumer_stream: `app/${first.streamId}`,
      shard_id: 'shardId-000000000001',
      consumer: 'app',
      stream_name: 'events',
      stream_id: (await backend.stream.describeStream('events')).streamId,
      sequence_number: shard1[4]!.sequenceNumber,
      updated_at: clock.now().toISOString(),
    });
  });

  it('never moves a checkpoint backwards, also when consumers race', async () => {
    await backend.stream.createStream('events');
    const puts = await putMany('events', 20, 1);
    const shard = 'shardId-000000000000';
    const consumer = await open('events');
    await consumer.checkpoint(shard, puts[10]!.sequenceNumber);
    await consumer.checkpoint(shard, puts[3]!.sequenceNumber);
    await consumer.checkpoint(shard, puts[10]!.sequenceNumber);
    expect(await consumer.checkpoints()).toEqual({ [shard]: puts[10]!.sequenceNumber });

    // Several objects of the same consumer checkpoint at once: the greatest wins.
    const others = await Promise.all([open('events'), open('events'), open('events')]);
    await Promise.all([
      others[0]!.checkpoint(shard, puts[15]!.sequenceNumber),
      others[1]!.checkpoint(shard, puts[19]!.sequenceNumber),
      others[2]!.checkpoint(shard, puts[12]!.sequenceNumber),
      consumer.checkpoint(shard, puts[11]!.sequenceNumber),
    ]);
    expect(await consumer.checkpoints()).toEqual({ [shard]: puts[19]!.sequenceNumber });

    // Sequence numbers compare as numbers: by length first, not as text.
    const numeric = await open('events', 'numeric');
    await numeric.checkpoint(shard, '9');
    await numeric.checkpoint(shard, '10');
    await numeric.checkpoint(shard, '9');
    expect(await numeric.checkpoints()).toEqual({ [shard]: '10' });

    await expect(consumer.checkpoint('shardId-000000000001', puts[0]!.sequenceNumber)).rejects.toBeInstanceOf(
      StreamArgumentError,
    );
    await expect(consumer.checkpoint(shard, 'latest')).rejects.toBeInstanceOf(StreamArgumentError);
  });

  it('starts at LATEST when asked: only records put after the first poll', async () => {
    await backend.stream.createStream('events', { shardCount: 2 });
    await putMany('events', 10, 4, 'before');
    const consumer = await open('events', 'tail', 'LATEST');
    expect(await consumer.poll()).toEqual([]);
    expect(consumer.atTip).toBe(true);
    const after = await putMany('events', 6, 4, 'after');
    expect(byShard(await drain(consumer))).toEqual(expectedByShard(after));
  });

  it('renews expired iterators transparently, without losing or repeating records', async () => {
    await backend.stream.createStream('events', { shardCount: 2 });
    const consumer = await open('events');
    expect(await consumer.poll()).toEqual([]); // iterators at TRIM_HORIZON, nothing delivered yet

    await clock.advance(6 * MINUTE_MS); // every iterator expired (5 minutes)
    const first = await putMany('events', 20, 5, 'first');
    expect(byShard(await drain(consumer))).toEqual(expectedByShard(first));

    await clock.advance(6 * MINUTE_MS);
    const second = await putMany('events', 20, 5, 'second');
    expect(byShard(await drain(consumer))).toEqual(expectedByShard(second));

    // A restarted consumer renews from its checkpoint as well.
    const last = second.at(-1)!;
    await consumer.checkpoint(
      last.shardId,
      first.filter((p) => p.shardId === last.shardId).at(-1)!.sequenceNumber,
    );
    const restarted = await open('events');
    await restarted.poll({ limitPerShard: 1 });
    await clock.advance(6 * MINUTE_MS);
    const rest = byShard(await drain(restarted));
    expect(rest[last.shardId]).toEqual(
      second
        .filter((p) => p.shardId === last.shardId)
        .slice(1)
        .map((p) => p.data),
    );
  });

  it('a re-created stream starts afresh; a consumer of the old one fails with ResourceNotFoundException', async () => {
    await backend.stream.createStream('events');
    const old = await putMany('events', 5, 1, 'old');
    const consumer = await open('events');
    await drain(consumer);
    await consumer.checkpoint('shardId-000000000000', old.at(-1)!.sequenceNumber);
    const unpolled = await open('events');

    await backend.stream.deleteStream('events');
    await backend.stream.createStream('events');
    const fresh = await putMany('events', 3, 1, 'new');

    for (const stale of [consumer, unpolled]) {
      const error = await stale.poll().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StreamNotFoundError);
      expect((error as Error).name).toBe('ResourceNotFoundException');
    }
    const reopened = await open('events');
    expect(reopened.streamId).not.toBe(consumer.streamId);
    expect(await reopened.checkpoints()).toEqual({});
    expect(byShard(await drain(reopened))).toEqual(expectedByShard(fresh));
  });

  it('a failed poll moves no shard: the next poll delivers the same records', async () => {
    await backend.stream.createStream('events', { shardCount: 2 });
    const puts = await putMany('events', 40, 8);
    let failures = 1;
    // The local store, except that one read of shard 1 fails.
    const flaky: StreamStore = Object.create(backend.stream, {
      getShardIterator: {
        value: async (...args: Parameters<StreamStore['getShardIterator']>) => {
          const iterator = await backend.stream.getShardIterator(...args);
          return args[1] === 'shardId-000000000001' ? `flaky:${iterator}` : iterator;
        },
      },
      getRecords: {
        value: async (iterator: string, options?: { limit?: number }) => {
          if (iterator.startsWith('flaky:')) {
            if (failures-- > 0) throw new Error('network down');
            return backend.stream.getRecords(iterator.slice('flaky:'.length), options);
          }
          return backend.stream.getRecords(iterator, options);
        },
      },
    });
    const consumer = await StreamConsumer.open({
      stream: flaky,
      kv: backend.kv,
      streamName: 'events',
      consumer: 'app',
    });
    await expect(consumer.poll()).rejects.toThrow('network down');
    // Shard 0's read had succeeded, but its records were not delivered: they come now.
    expect(byShard(await consumer.poll())).toEqual(expectedByShard(puts));
  });

  it('refuses a missing stream and malformed options', async () => {
    await expect(open('missing')).rejects.toBeInstanceOf(StreamNotFoundError);
    await backend.stream.createStream('events');
    for (const consumer of ['', 'has space', 'a/b', 'x'.repeat(129)]) {
      await expect(open('events', consumer)).rejects.toBeInstanceOf(StreamArgumentError);
    }
    await expect(open('events', 'app', 'AT_TIMESTAMP' as 'LATEST')).rejects.toBeInstanceOf(
      StreamArgumentError,
    );
  });

  it('consumes what a separate process appends meanwhile: every record once, in order per key', async () => {
    await backend.stream.createStream('shared', { shardCount: 2 });
    const consumer = await open('shared');
    const sqliteUrl = pathToFileURL(join(repoRoot, 'src/backends/local/sqlite.ts')).href;
    const streamUrl = pathToFileURL(join(repoRoot, 'src/backends/local/local-stream.ts')).href;
    const total = 2000;
    const script = `
      import { openSqlite } from ${JSON.stringify(sqliteUrl)};
      import { LocalStreamStore } from ${JSON.stringify(streamUrl)};
      const db = openSqlite(process.argv[1]);
      const store = new LocalStreamStore(db);
      for (let n = 0; n < ${total}; n += 50) {
        const records = [];
        for (let i = n; i < n + 50; i++) records.push({ partitionKey: 'k' + (i % 5), data: String(i) });
        await store.putRecords('shared', records);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      db.close();
    `;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script, join(home, 'streams.db')],
      { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let errors = '';
    child.stderr.on('data', (chunk: Buffer) => {
      errors += chunk.toString();
    });
    let exitCode: number | null | undefined;
    const exited = new Promise<void>((resolve) =>
      child.once('exit', (code) => {
        exitCode = code;
        resolve();
      }),
    );

    const seen: StreamRecord[] = [];
    let pollsWhileWriting = 0;
    const deadline = Date.now() + 60_000; // a guard against hanging, not a speed assertion
    while (seen.length < total) {
      if (Date.now() > deadline) throw new Error(`consumed ${seen.length} of ${total} records: ${errors}`);
      if (exitCode !== undefined && exitCode !== 0) throw new Error(`writer failed: ${errors}`);
      for (const batch of await consumer.poll({ limitPerShard: 100 })) seen.push(...batch.records);
      if (exitCode === undefined) pollsWhileWriting++;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await exited;
    expect(exitCode, errors).toBe(0);
    expect(pollsWhileWriting).toBeGreaterThan(0);
    await consumer.poll();
    expect(consumer.atTip).toBe(true);

    expect(seen).toHaveLength(total);
    expect(new Set(seen.map((r) => r.sequenceNumber)).size).toBe(total);
    for (let k = 0; k < 5; k++) {
      const values = seen.filter((r) => r.partitionKey === `k${k}`).map((r) => Number(text(r)));
      expect(values).toEqual(Array.from({ length: total / 5 }, (_, j) => j * 5 + k));
    }
  });
});
