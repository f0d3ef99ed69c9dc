import { createHash, randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type {
  PutRecordInput,
  PutRecordResult,
  ShardIteratorPosition,
  StreamRecord,
  StreamStore,
} from '../../src/core/ports/stream.ts';
import {
  compareSequenceNumbers,
  ExpiredIteratorError,
  StreamArgumentError,
  StreamExistsError,
  StreamNotFoundError,
} from '../../src/core/ports/stream.ts';

/** The clock the stream under test uses, moved by the test. */
export interface StreamConformanceClock {
  now(): Date;
  advance(ms: number): Promise<void> | void;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const MIB = 1024 * 1024;
const HASH_KEY_SPACE = 2n ** 128n;

/** The hash key Kinesis routes by: MD5 of the partition key's UTF-8 bytes, as an unsigned 128-bit integer. */
function md5Key(partitionKey: string): bigint {
  return BigInt(`0x${createHash('md5').update(Buffer.from(partitionKey, 'utf8')).digest('hex')}`);
}

/**
 * The hash-key ranges of a new stream of `n` shards as Kinesis `CreateStream` splits them: each
 * shard `floor(2^128 / n)` keys, the last one up to 2^128 - 1.
 */
function expectedRanges(n: number): { start: bigint; end: bigint }[] {
  const size = HASH_KEY_SPACE / BigInt(n);
  const ranges = [];
  for (let i = 0; i < n; i++) {
    const start = size * BigInt(i);
    ranges.push({ start, end: i === n - 1 ? HASH_KEY_SPACE - 1n : start + size - 1n });
  }
  return ranges;
}

/** `shardId-000000000003` for 3. */
function shardName(index: number): string {
  return `shardId-${String(index).padStart(12, '0')}`;
}

/** The shard a partition key belongs to, by scanning the independently computed ranges. */
function expectedShard(partitionKey: string, n: number): string {
  const hash = md5Key(partitionKey);
  const index = expectedRanges(n).findIndex((r) => r.start <= hash && hash <= r.end);
  return shardName(index);
}

const text = (record: StreamRecord) => Buffer.from(record.data).toString('utf8');

/** Cases an emulated backend may skip, each with the reason (shown in the skipped test's title). */
export type StreamConformanceSkip = 'retentionLimits' | 'millisBehindLatest' | 'recreatedStream';

/** Options of {@link streamConformance}; the local backend passes none. */
export interface StreamConformanceOptions {
  /** Cases to skip, with why (e.g. an emulator's gap); say so in docs/parity.md. */
  readonly skip?: Partial<Record<StreamConformanceSkip, string>>;
}

/**
 * The {@link StreamStore} contract, for any backend. `open` returns a store, the clock it stamps
 * arrivals and expires iterators with (the test moves it: iterator expiry and retention cases),
 * and a `close`. Every case creates streams with random names and deletes them afterwards, so the
 * suite can run against a shared account.
 */
export function streamConformance(
  backend: string,
  open: () => Promise<{ stream: StreamStore; clock: StreamConformanceClock; close(): Promise<void> }>,
  options: StreamConformanceOptions = {},
): void {
  /** `it`, or a skip whose title says why when the backend skips case `key`. */
  const caseIt = (key: StreamConformanceSkip, title: string, fn: () => Promise<void>) => {
    const reason = options.skip?.[key];
    if (reason === undefined) it(title, fn);
    else it.skip(`${title} (skipped on ${backend}: ${reason})`, fn);
  };

  describe(`StreamStore conformance: ${backend}`, () => {
    let stream: StreamStore;
    let clock: StreamConformanceClock;
    let close: () => Promise<void>;
    let created: string[];

    beforeEach(async () => {
      ({ stream, clock, close } = await open());
      created = [];
    });
    afterEach(async () => {
      for (const name of created) {
        await stream.deleteStream(name).catch((error: unknown) => {
          if (!(error instanceof StreamNotFoundError)) throw error;
        });
      }
      await close();
    });

    /** A fresh random stream name (remembered for clean-up). */
    function newName(): string {
      const name = `conformance-${randomUUID()}`;
      created.push(name);
      return name;
    }

    async function newStream(options: { shardCount?: number; retentionHours?: number } = {}) {
      const name = newName();
      const description = await stream.createStream(name, options);
      return { name, description };
    }

    /** Every record from `position` on, reading page by page until an empty page. */
    async function readFrom(
      name: string,
      shardId: string,
      position: ShardIteratorPosition,
      limit?: number,
    ): Promise<StreamRecord[]> {
      let iterator = await stream.getShardIterator(name, shardId, position);
      const records: StreamRecord[] = [];
      for (let pages = 0; ; pages++) {
        if (pages > 1000) throw new Error('reading does not end');
        const page = await stream.getRecords(iterator, limit === undefined ? {} : { limit });
        if (limit !== undefined) expect(page.records.length).toBeLessThanOrEqual(limit);
        records.push(...page.records);
        expect(page.nextShardIterator).not.toBeNull();
        iterator = page.nextShardIterator!;
        if (page.records.length === 0) return records;
      }
    }

    /** Expects `promise` to reject with an instance of `type` whose `name` is `name`. */
    async function expectError(
      promise: Promise<unknown>,
      type: abstract new (...args: never[]) => Error,
      name: string,
    ): Promise<void> {
      const error = await promise.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, `expected ${name}`).toBeInstanceOf(type);
      expect((error as Error).name).toBe(name);
    }

    describe('streams', () => {
      it('creates, describes, lists and deletes a stream', async () => {
        const before = clock.now().getTime();
        const { name, description } = await newStream({ shardCount: 3 });
        expect(description.name).toBe(name);
        expect(description.status).toBe('ACTIVE');
        expect(description.retentionHours).toBe(24); // Kinesis's default
        expect(description.streamId).toEqual(expect.any(String));
        expect(description.streamId.length).toBeGreaterThan(0);
        expect(description.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
        expect(Math.abs(Date.parse(description.createdAt) - before)).toBeLessThan(MINUTE_MS);
        expect(description.shards.map((s) => s.shardId)).toEqual([
          'shardId-000000000000',
          'shardId-000000000001',
          'shardId-000000000002',
        ]);
        expect(await stream.describeStream(name)).toEqual(description);

        const listed = await stream.listStreams();
        expect(listed).toContain(name);
        expect(listed).toEqual([...listed].sort());

        await stream.deleteStream(name);
        expect(await stream.listStreams()).not.toContain(name);
        await expectError(stream.describeStream(name), StreamNotFoundError, 'ResourceNotFoundException');
      });

      it('lists several streams in name order', async () => {
        const base = `conformance-${randomUUID()}`;
        const names = [`${base}-b`, `${base}-a`, `${base}-c`];
        created.push(...names);
        for (const name of names) await stream.createStream(name);
        const mine = (await stream.listStreams()).filter((n) => n.startsWith(base));
        expect(mine).toEqual([`${base}-a`, `${base}-b`, `${base}-c`]);
      });

      caseIt(
        'retentionLimits',
        'keeps the requested retention and accepts the limits of names, shard counts and retention',
        async () => {
          const { description } = await newStream({ retentionHours: 48 });
          expect(description.retentionHours).toBe(48);
          const longest = `c${randomUUID().replaceAll('-', '')}`.padEnd(128, 'x');
          created.push(longest);
          expect((await stream.createStream(longest, { retentionHours: 8760 })).name).toBe(longest);
          const odd = `A_b.c-${randomUUID()}`;
          created.push(odd);
          expect((await stream.createStream(odd, { retentionHours: 24 })).shards).toHaveLength(1);
        },
      );

      it('refuses to create a stream that exists, leaving it as it was', async () => {
        const { name, description } = await newStream({ shardCount: 2 });
        await expectError(
          stream.createStream(name, { shardCount: 5 }),
          StreamExistsError,
          'ResourceInUseException',
        );
        expect(await stream.describeStream(name)).toEqual(description);
      });

      it('refuses malformed names, shard counts and retention periods', async () => {
        const bad: [string, { shardCount?: number; retentionHours?: number }][] = [
          ['', {}],
          ['has space', {}],
          ['slash/name', {}],
          ['ümlaut', {}],
          ['x'.repeat(129), {}],
          [newName(), { shardCount: 0 }],
          [newName(), { shardCount: 1025 }],
          [newName(), { shardCount: 1.5 }],
          [newName(), { retentionHours: 23 }],
          [newName(), { retentionHours: 8761 }],
          [newName(), { retentionHours: 24.5 }],
        ];
        for (const [name, options] of bad) {
          await expectError(
            stream.createStream(name, options),
            StreamArgumentError,
            'InvalidArgumentException',
          );
        }
        const listed = await stream.listStreams();
        for (const [name] of bad) expect(listed).not.toContain(name);
      });

      it('reports a missing stream or shard as ResourceNotFoundException', async () => {
        const missing = newName();
        const record = { partitionKey: 'k', data: 'x' };
        const notFound = (promise: Promise<unknown>) =>
          expectError(promise, StreamNotFoundError, 'ResourceNotFoundException');
        await notFound(stream.describeStream(missing));
        await notFound(stream.deleteStream(missing));
        await notFound(stream.putRecord(missing, record));
        await notFound(stream.putRecords(missing, [record]));
        await notFound(stream.getShardIterator(missing, shardName(0), { type: 'TRIM_HORIZON' }));

        const { name } = await newStream({ shardCount: 2 });
        await notFound(stream.getShardIterator(name, shardName(2), { type: 'TRIM_HORIZON' }));
        await notFound(stream.getShardIterator(name, 'shardId-000000000099', { type: 'LATEST' }));
      });
    });

    describe('shards and sequence numbers', () => {
      it('splits the hash-key space evenly, as Kinesis CreateStream does', async () => {
        for (const n of [1, 2, 3, 7]) {
          const { description } = await newStream({ shardCount: n });
          expect(description.shards).toEqual(
            expectedRanges(n).map((r, i) => ({
              shardId: shardName(i),
              hashKeyRange: { startingHashKey: r.start.toString(), endingHashKey: r.end.toString() },
            })),
          );
        }
        // The known two-shard split: 0..2^127-1 and 2^127..2^128-1.
        const { description } = await newStream({ shardCount: 2 });
        expect(description.shards.map((s) => s.hashKeyRange)).toEqual([
          { startingHashKey: '0', endingHashKey: '170141183460469231731687303715884105727' },
          {
            startingHashKey: '170141183460469231731687303715884105728',
            endingHashKey: '340282366920938463463374607431768211455',
          },
        ]);
      });

      it('routes each record to the shard owning the MD5 of its partition key, keeping the order per key', async () => {
        const shards = 4;
        const { name } = await newStream({ shardCount: shards });
        const keys = Array.from({ length: 120 }, (_, i) => `key-${i}`);
        keys.push('é', '日本語', '😀'); // hashed as UTF-8
        const rounds = 3;
        const put: { input: PutRecordInput; result: PutRecordResult }[] = [];
        for (let round = 0; round < rounds; round++) {
          const inputs = keys.map((key) => ({ partitionKey: key, data: `${key}#${round}` }));
          for (let i = 0; i < inputs.length; i += 50) {
            const batch = inputs.slice(i, i + 50);
            const result = await stream.putRecords(name, batch);
            expect(result.failedRecordCount).toBe(0);
            expect(result.records).toHaveLength(batch.length);
            batch.forEach((input, j) => {
              put.push({ input, result: result.records[j] as PutRecordResult });
            });
          }
        }
        for (const { input, result } of put) {
          expect(result.shardId, input.partitionKey).toBe(expectedShard(input.partitionKey, shards));
        }
        // 123 keys over 4 shards: every shard gets some (expected values are spread by MD5).
        const expectedUsed = new Set(keys.map((k) => expectedShard(k, shards)));
        expect(expectedUsed.size).toBe(shards);

        for (let s = 0; s < shards; s++) {
          const records = await readFrom(name, shardName(s), { type: 'TRIM_HORIZON' });
          const mine = put.filter((p) => p.result.shardId === shardName(s));
          // Exactly this shard's records, in put order (so each key's records in order).
          expect(records.map(text)).toEqual(mine.map((p) => p.input.data));
          expect(records.map((r) => r.partitionKey)).toEqual(mine.map((p) => p.input.partitionKey));
          expect(records.map((r) => r.sequenceNumber)).toEqual(mine.map((p) => p.result.sequenceNumber));
          for (const key of new Set(records.map((r) => r.partitionKey))) {
            expect(records.filter((r) => r.partitionKey === key).map(text)).toEqual(
              Array.from({ length: rounds }, (_, round) => `${key}#${round}`),
            );
          }
        }
      });

      it('gives increasing decimal sequence numbers within a shard, never twice', async () => {
        const { name } = await newStream({ shardCount: 2 });
        const results: PutRecordResult[] = [];
        for (let i = 0; i < 10; i++)
          results.push(await stream.putRecord(name, { partitionKey: `k${i % 3}`, data: `${i}` }));
        const batch = await stream.putRecords(
          name,
          Array.from({ length: 30 }, (_, i) => ({ partitionKey: `k${i % 3}`, data: `b${i}` })),
        );
        results.push(...(batch.records as PutRecordResult[]));
        for (const r of results) expect(r.sequenceNumber).toMatch(/^\d+$/);
        expect(new Set(results.map((r) => r.sequenceNumber)).size).toBe(results.length);
        for (const shardId of [shardName(0), shardName(1)]) {
          const sequence = results.filter((r) => r.shardId === shardId).map((r) => r.sequenceNumber);
          for (let i = 1; i < sequence.length; i++) {
            expect(compareSequenceNumbers(sequence[i - 1]!, sequence[i]!)).toBeLessThan(0);
          }
        }
      });

      it('round-trips binary data, empty data and strings as UTF-8', async () => {
        const { name } = await newStream();
        const allBytes = Uint8Array.from({ length: 256 }, (_, i) => i);
        const inputs: PutRecordInput[] = [
          { partitionKey: 'bin', data: allBytes },
          { partitionKey: 'bin', data: new Uint8Array(0) },
          { partitionKey: 'bin', data: 'plain é€ 😀' },
          { partitionKey: 'bin', data: new Uint8Array(allBytes.buffer, 10, 5) }, // a view, not the whole buffer
        ];
        for (const input of inputs) await stream.putRecord(name, input);
        const records = await readFrom(name, shardName(0), { type: 'TRIM_HORIZON' });
        expect(records.map((r) => Buffer.from(r.data).toString('hex'))).toEqual([
          Buffer.from(allBytes).toString('hex'),
          '',
          Buffer.from('plain é€ 😀', 'utf8').toString('hex'),
          '0a0b0c0d0e',
        ]);
        for (const r of records) expect(r.data).toBeInstanceOf(Uint8Array);
      });
    });

    describe('limits of puts', () => {
      it('takes 1..500 records per putRecords; a refused request writes nothing', async () => {
        const { name } = await newStream();
        const many = (n: number) =>
          Array.from({ length: n }, (_, i) => ({ partitionKey: 'p', data: `${i}` }));
        await expectError(
          stream.putRecords(name, many(501)),
          StreamArgumentError,
          'InvalidArgumentException',
        );
        await expectError(stream.putRecords(name, []), StreamArgumentError, 'InvalidArgumentException');
        expect(await readFrom(name, shardName(0), { type: 'TRIM_HORIZON' })).toEqual([]);
        const result = await stream.putRecords(name, many(500));
        expect(result.records).toHaveLength(500);
        expect((await readFrom(name, shardName(0), { type: 'TRIM_HORIZON' })).map(text)).toEqual(
          many(500).map((r) => r.data),
        );
      });

      it('takes partition keys of 1..256 characters; a bad record refuses the whole request', async () => {
        const { name } = await newStream();
        const longest = 'k'.repeat(256);
        await stream.putRecord(name, { partitionKey: longest, data: 'ok' });
        for (const partitionKey of ['', 'k'.repeat(257)]) {
          await expectError(
            stream.putRecord(name, { partitionKey, data: 'x' }),
            StreamArgumentError,
            'InvalidArgumentException',
          );
          await expectError(
            stream.putRecords(name, [
              { partitionKey: 'fine', data: 'a' },
              { partitionKey, data: 'b' },
              { partitionKey: 'fine', data: 'c' },
            ]),
            StreamArgumentError,
            'InvalidArgumentException',
          );
        }
        const records = await readFrom(name, shardName(0), { type: 'TRIM_HORIZON' });
        expect(records.map((r) => [r.partitionKey, text(r)])).toEqual([[longest, 'ok']]);
      });

      it('takes data up to 1 MiB (1,048,576 bytes) and refuses one byte more', async () => {
        const { name } = await newStream();
        const largest = Buffer.alloc(MIB, 7);
        largest[0] = 1;
        largest[MIB - 1] = 2;
        await stream.putRecord(name, { partitionKey: 'big', data: largest });
        await expectError(
          stream.putRecord(name, { partitionKey: 'big', data: new Uint8Array(MIB + 1) }),
          StreamArgumentError,
          'InvalidArgumentException',
        );
        await expectError(
          stream.putRecords(name, [{ partitionKey: 'big', data: 'é'.repeat(MIB / 2) + 'x' }]), // 1 MiB + 1 as UTF-8
          StreamArgumentError,
          'InvalidArgumentException',
        );
        const records = await readFrom(name, shardName(0), { type: 'TRIM_HORIZON' });
        expect(records).toHaveLength(1);
        expect(Buffer.from(records[0]!.data).equals(largest)).toBe(true);
      });
    });

    describe('iterators and reads', () => {
      it('starts where each iterator type says', async () => {
        const { name } = await newStream();
        const shard = shardName(0);
        const put = async (data: string) => {
          const at = clock.now();
          const result = await stream.putRecord(name, { partitionKey: 'p', data });
          await clock.advance(1000);
          return { ...result, at };
        };
        const a = await put('a');
        const b = await put('b');
        await put('c');
        const latest = await stream.getShardIterator(name, shard, { type: 'LATEST' });
        const d = await put('d');

        const read = async (position: ShardIteratorPosition) =>
          (await readFrom(name, shard, position)).map(text);
        expect(await read({ type: 'TRIM_HORIZON' })).toEqual(['a', 'b', 'c', 'd']);
        expect(await read({ type: 'AT_SEQUENCE_NUMBER', sequenceNumber: b.sequenceNumber })).toEqual([
          'b',
          'c',
          'd',
        ]);
        expect(await read({ type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: b.sequenceNumber })).toEqual([
          'c',
          'd',
        ]);
        expect(await read({ type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: d.sequenceNumber })).toEqual([]);
        expect(await read({ type: 'AT_SEQUENCE_NUMBER', sequenceNumber: a.sequenceNumber })).toEqual([
          'a',
          'b',
          'c',
          'd',
        ]);
        expect(await read({ type: 'AT_TIMESTAMP', timestamp: b.at })).toEqual(['b', 'c', 'd']);
        expect(await read({ type: 'AT_TIMESTAMP', timestamp: new Date(b.at.getTime() - 1) })).toEqual([
          'b',
          'c',
          'd',
        ]);
        expect(await read({ type: 'AT_TIMESTAMP', timestamp: new Date(b.at.getTime() + 1) })).toEqual([
          'c',
          'd',
        ]);
        expect(await read({ type: 'AT_TIMESTAMP', timestamp: new Date(a.at.getTime() - HOUR_MS) })).toEqual([
          'a',
          'b',
          'c',
          'd',
        ]);
        // LATEST: only what came after the call.
        const fromLatest = await stream.getRecords(latest);
        expect(fromLatest.records.map(text)).toEqual(['d']);
        expect((await read({ type: 'LATEST' })).length).toBe(0);

        // Arrival timestamps are the stream clock's, to the ms.
        const records = await readFrom(name, shard, { type: 'TRIM_HORIZON' });
        expect(records[0]!.approximateArrivalTimestamp.getTime()).toBe(a.at.getTime());
        expect(records[1]!.approximateArrivalTimestamp.getTime()).toBe(b.at.getTime());
        expect(records[3]!.approximateArrivalTimestamp.getTime()).toBe(d.at.getTime());
      });

      it('needs a sequence number or timestamp for the types that take one', async () => {
        const { name } = await newStream();
        const shard = shardName(0);
        const invalid = (position: unknown) =>
          expectError(
            stream.getShardIterator(name, shard, position as ShardIteratorPosition),
            StreamArgumentError,
            'InvalidArgumentException',
          );
        await invalid({ type: 'AT_SEQUENCE_NUMBER' });
        await invalid({ type: 'AFTER_SEQUENCE_NUMBER' });
        await invalid({ type: 'AT_SEQUENCE_NUMBER', sequenceNumber: 'not-a-number' });
        await invalid({ type: 'AT_TIMESTAMP' });
        await invalid({ type: 'AT_TIMESTAMP', timestamp: new Date(Number.NaN) });
        await invalid({ type: 'SOMEWHERE' });
      });

      it('reads up to limit records (default and maximum 10,000) and continues after them', async () => {
        const { name } = await newStream();
        const shard = shardName(0);
        const inputs = Array.from({ length: 25 }, (_, i) => ({ partitionKey: 'p', data: `r${i}` }));
        await stream.putRecords(name, inputs);

        let iterator = await stream.getShardIterator(name, shard, { type: 'TRIM_HORIZON' });
        const sizes: number[] = [];
        const seen: string[] = [];
        for (let i = 0; i < 4; i++) {
          const page = await stream.getRecords(iterator, { limit: 10 });
          sizes.push(page.records.length);
          seen.push(...page.records.map(text));
          iterator = page.nextShardIterator!;
        }
        expect(sizes).toEqual([10, 10, 5, 0]);
        expect(seen).toEqual(inputs.map((r) => r.data));

        // An empty read keeps the position: later records come next.
        const empty = await stream.getRecords(iterator);
        expect(empty.records).toEqual([]);
        await stream.putRecord(name, { partitionKey: 'p', data: 'later' });
        const later = await stream.getRecords(empty.nextShardIterator!);
        expect(later.records.map(text)).toEqual(['later']);

        // The default reads everything here (under 10,000).
        const all = await stream.getRecords(
          await stream.getShardIterator(name, shard, { type: 'TRIM_HORIZON' }),
        );
        expect(all.records).toHaveLength(26);

        for (const limit of [0, -1, 10_001, 2.5]) {
          await expectError(
            stream.getRecords(iterator, { limit }),
            StreamArgumentError,
            'InvalidArgumentException',
          );
        }
        // 10,000 is allowed.
        expect((await stream.getRecords(later.nextShardIterator!, { limit: 10_000 })).records).toEqual([]);
      });

      caseIt(
        'millisBehindLatest',
        'reports millisBehindLatest from the last returned record to the newest one',
        async () => {
          const { name } = await newStream();
          await stream.putRecord(name, { partitionKey: 'p', data: 'first' });
          await clock.advance(1000);
          await stream.putRecord(name, { partitionKey: 'p', data: 'second' });
          await clock.advance(500);
          await stream.putRecord(name, { partitionKey: 'p', data: 'third' });

          let iterator = await stream.getShardIterator(name, shardName(0), { type: 'TRIM_HORIZON' });
          const behind: number[] = [];
          for (let i = 0; i < 4; i++) {
            const page = await stream.getRecords(iterator, { limit: 1 });
            behind.push(page.millisBehindLatest);
            iterator = page.nextShardIterator!;
          }
          expect(behind).toEqual([1500, 500, 0, 0]);
        },
      );

      it('expires iterators 5 minutes after issue; each read returns a fresh one', async () => {
        const { name } = await newStream();
        const first = await stream.getShardIterator(name, shardName(0), { type: 'TRIM_HORIZON' });
        await stream.putRecord(name, { partitionKey: 'p', data: 'x' });
        await clock.advance(5 * MINUTE_MS - 1);
        const page = await stream.getRecords(first);
        expect(page.records.map(text)).toEqual(['x']);

        await clock.advance(2);
        await expectError(stream.getRecords(first), ExpiredIteratorError, 'ExpiredIteratorException');
        // The iterator the read returned was issued then, so it is still valid.
        await stream.putRecord(name, { partitionKey: 'p', data: 'y' });
        const next = await stream.getRecords(page.nextShardIterator!);
        expect(next.records.map(text)).toEqual(['y']);

        await clock.advance(5 * MINUTE_MS + 1);
        await expectError(
          stream.getRecords(next.nextShardIterator!),
          ExpiredIteratorError,
          'ExpiredIteratorException',
        );
        const expired = await stream.getRecords(next.nextShardIterator!).catch((e: unknown) => e);
        expect((expired as ExpiredIteratorError).retryable).toBe(true);
      });

      it('refuses malformed iterators', async () => {
        await newStream();
        for (const iterator of [
          '',
          'not an iterator',
          'AAAA',
          Buffer.from('{"streamId":1}').toString('base64url'),
        ]) {
          await expectError(stream.getRecords(iterator), StreamArgumentError, 'InvalidArgumentException');
        }
      });

      caseIt(
        'recreatedStream',
        'invalidates iterators of a deleted stream, also after it is re-created under the same name',
        async () => {
          const { name, description } = await newStream({ shardCount: 2 });
          await stream.putRecord(name, { partitionKey: 'p', data: 'old' });
          const shard = (await stream.putRecord(name, { partitionKey: 'p', data: 'old 2' })).shardId;
          const iterator = await stream.getShardIterator(name, shard, { type: 'TRIM_HORIZON' });
          const oldSequence = (await readFrom(name, shard, { type: 'TRIM_HORIZON' }))[0]!.sequenceNumber;

          await stream.deleteStream(name);
          await expectError(stream.getRecords(iterator), StreamNotFoundError, 'ResourceNotFoundException');

          const again = await stream.createStream(name, { shardCount: 2 });
          expect(again.streamId).not.toBe(description.streamId);
          await expectError(stream.getRecords(iterator), StreamNotFoundError, 'ResourceNotFoundException');
          // The new stream has none of the old records.
          expect(await readFrom(name, shard, { type: 'TRIM_HORIZON' })).toEqual([]);
          await stream.putRecord(name, { partitionKey: 'p', data: 'new' });
          const fresh = await readFrom(name, shard, { type: 'TRIM_HORIZON' });
          expect(fresh.map(text)).toEqual(['new']);
          expect(fresh[0]!.sequenceNumber).not.toBe(oldSequence);
        },
      );
    });

    describe('retention', () => {
      it('hides records older than 24 hours; trimmed positions start at the oldest retained record', async () => {
        const { name } = await newStream();
        const shard = shardName(0);
        const start = clock.now();
        const old = await stream.putRecords(name, [
          { partitionKey: 'p', data: 'old 1' },
          { partitionKey: 'p', data: 'old 2' },
        ]);
        await clock.advance(23 * HOUR_MS);
        const kept = await stream.putRecord(name, { partitionKey: 'p', data: 'kept' });
        expect((await readFrom(name, shard, { type: 'TRIM_HORIZON' })).map(text)).toEqual([
          'old 1',
          'old 2',
          'kept',
        ]);

        await clock.advance(HOUR_MS + 1); // the old records are now 24 h + 1 ms old
        const oldFirst = (old.records[0] as PutRecordResult).sequenceNumber;
        const read = async (position: ShardIteratorPosition) =>
          (await readFrom(name, shard, position)).map(text);
        expect(await read({ type: 'TRIM_HORIZON' })).toEqual(['kept']);
        expect(await read({ type: 'AT_SEQUENCE_NUMBER', sequenceNumber: oldFirst })).toEqual(['kept']);
        expect(await read({ type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: oldFirst })).toEqual(['kept']);
        expect(await read({ type: 'AT_TIMESTAMP', timestamp: start })).toEqual(['kept']);

        // New records (whose put may trim the old ones for good) get sequence numbers after every earlier one.
        const after = await stream.putRecord(name, { partitionKey: 'p', data: 'new' });
        for (const earlier of [...(old.records as PutRecordResult[]), kept]) {
          expect(compareSequenceNumbers(earlier.sequenceNumber, after.sequenceNumber)).toBeLessThan(0);
        }
        expect(await read({ type: 'TRIM_HORIZON' })).toEqual(['kept', 'new']);
        expect(await read({ type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: oldFirst })).toEqual([
          'kept',
          'new',
        ]);

        // Everything expires in the end: an empty stream still goes on with larger numbers.
        await clock.advance(25 * HOUR_MS);
        expect(await read({ type: 'TRIM_HORIZON' })).toEqual([]);
        const last = await stream.putRecord(name, { partitionKey: 'p', data: 'last' });
        expect(compareSequenceNumbers(after.sequenceNumber, last.sequenceNumber)).toBeLessThan(0);
        expect(await read({ type: 'TRIM_HORIZON' })).toEqual(['last']);
      });

      it('keeps records for the stream’s own retention period', async () => {
        const { name } = await newStream({ retentionHours: 48 });
        await stream.putRecord(name, { partitionKey: 'p', data: 'two days' });
        await clock.advance(47 * HOUR_MS);
        expect((await readFrom(name, shardName(0), { type: 'TRIM_HORIZON' })).map(text)).toEqual([
          'two days',
        ]);
        await clock.advance(HOUR_MS + 1);
        expect(await readFrom(name, shardName(0), { type: 'TRIM_HORIZON' })).toEqual([]);
      });
    });
  });
}
