process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  ExpiredIteratorException,
  GetRecordsCommand,
  GetShardIteratorCommand,
  IncreaseStreamRetentionPeriodCommand,
  InternalFailureException,
  InvalidArgumentException,
  KinesisClient,
  ListShardsCommand,
  ListStreamsCommand,
  ProvisionedThroughputExceededException,
  PutRecordsCommand,
  ResourceInUseException,
  ResourceNotFoundException,
} from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  KinesisStreamStore,
  mapKinesisError,
  StreamThrottledError,
} from '../../src/backends/aws/kinesis-stream-store.ts';
import { SluiceError } from '../../src/core/errors.ts';
import {
  ExpiredIteratorError,
  type PutRecordResult,
  StreamArgumentError,
  StreamExistsError,
  StreamNotFoundError,
} from '../../src/core/ports/stream.ts';
import { type KinesaliteServer, startKinesalite } from '../helpers/kinesalite.ts';
import { streamConformance } from './stream.case.ts';

let kinesalite: KinesaliteServer;
beforeAll(async () => {
  kinesalite = await startKinesalite();
});
afterAll(async () => {
  await kinesalite?.stop();
});

/** A client for the kinesalite of this file (HTTP/1.1: kinesalite does not speak HTTP/2). */
function kinesaliteClient(): KinesisClient {
  return new KinesisClient({
    region: 'us-east-1',
    endpoint: kinesalite.endpoint,
    credentials: { accessKeyId: 'KINESALITE', secretAccessKey: 'KINESALITE' },
    requestHandler: new NodeHttpHandler(),
  });
}

/**
 * kinesalite runs in this process and takes its time from `Date.now()`: faking `Date` (only
 * `Date`; timers stay real, so the SDK and kinesalite's own `setTimeout`s run) makes it the
 * suite's movable clock for arrival times, iterator expiry and retention.
 */
streamConformance(
  'aws (Kinesis on kinesalite)',
  async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: new Date('2026-03-01T12:00:00.000Z') });
    const client = kinesaliteClient();
    return {
      stream: new KinesisStreamStore(client, { streamPrefix: '', pollIntervalMs: 20 }),
      clock: {
        now: () => new Date(),
        advance: (ms: number) => {
          vi.setSystemTime(Date.now() + ms);
        },
      },
      close: async () => {
        client.destroy();
        vi.useRealTimers();
      },
    };
  },
  {
    skip: {
      retentionLimits:
        'kinesalite 3.3.3 caps IncreaseStreamRetentionPeriod at 168 h (the old Kinesis limit; AWS now takes 8760); 48 h, 168 h and the name limits are tested below, 8760 h against the mock',
      millisBehindLatest: 'kinesalite reports MillisBehindLatest 0 on every open shard',
      recreatedStream:
        'kinesalite iterators name the stream, not its creation, and stamps creation to the second, so an iterator of a deleted stream reads its re-created namesake; the deleted half is tested below',
    },
  },
);

const MIB = 1024 * 1024;
const text = (data: Uint8Array) => Buffer.from(data).toString('utf8');

describe('KinesisStreamStore on kinesalite: prefixes, retention, splitting', () => {
  let client: KinesisClient;
  beforeAll(() => {
    client = kinesaliteClient();
  });
  afterAll(() => client.destroy());

  it('names Kinesis streams <prefix><name> and lists only its own, prefix stripped', async () => {
    const a = new KinesisStreamStore(client, { streamPrefix: 'sluice-a-', pollIntervalMs: 20 });
    const b = new KinesisStreamStore(client, { streamPrefix: 'sluice-b-', pollIntervalMs: 20 });
    const bare = new KinesisStreamStore(client, { streamPrefix: '', pollIntervalMs: 20 });
    await a.createStream('events');
    await a.createStream('clicks', { shardCount: 2 });
    await b.createStream('events');
    await bare.createStream('zz-unprefixed');
    const raw = await client.send(new ListStreamsCommand({}));
    expect(raw.StreamNames).toEqual(
      expect.arrayContaining(['sluice-a-events', 'sluice-a-clicks', 'sluice-b-events', 'zz-unprefixed']),
    );
    expect(await a.listStreams()).toEqual(['clicks', 'events']);
    expect(await b.listStreams()).toEqual(['events']);
    expect(await bare.listStreams()).toEqual(
      ['sluice-a-clicks', 'sluice-a-events', 'sluice-b-events', 'zz-unprefixed'].sort(),
    );
    const described = await a.describeStream('clicks');
    expect(described.name).toBe('clicks');
    expect(described.streamId).toMatch(
      /^arn:aws:kinesis:us-east-1:\d+:stream\/sluice-a-clicks@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/,
    );
    const put = await a.putRecord('events', { partitionKey: 'k', data: 'only in a' });
    expect(put.shardId).toBe('shardId-000000000000');
    const iterator = await b.getShardIterator('events', 'shardId-000000000000', { type: 'TRIM_HORIZON' });
    expect((await b.getRecords(iterator)).records).toEqual([]);

    // The port name may be 128 characters, but not with the prefix on top.
    await expect(a.createStream('x'.repeat(120))).rejects.toThrow(StreamArgumentError);
    await expect(a.createStream('x'.repeat(120))).rejects.toThrow(
      /with the prefix "sluice-a-" the Kinesis name has 129 characters/,
    );
    expect(() => new KinesisStreamStore(client, { streamPrefix: 'bad/prefix' })).toThrow(StreamArgumentError);

    for (const name of ['events', 'clicks']) await a.deleteStream(name);
    await b.deleteStream('events');
    await bare.deleteStream('zz-unprefixed');
    expect(await a.listStreams()).toEqual([]);
  });

  it('keeps 48 h and 168 h retention, takes 128-character and odd names (the skipped case, within kinesalite)', async () => {
    const store = new KinesisStreamStore(client, { streamPrefix: '', pollIntervalMs: 20 });
    const two = await store.createStream('retention-48', { retentionHours: 48 });
    expect(two.retentionHours).toBe(48);
    const week = await store.createStream('retention-168', { retentionHours: 168 });
    expect(week.retentionHours).toBe(168);
    expect((await store.describeStream('retention-168')).retentionHours).toBe(168);
    const longest = 'c'.padEnd(128, 'x');
    expect((await store.createStream(longest)).name).toBe(longest);
    const odd = 'A_b.c-odd';
    expect((await store.createStream(odd)).shards).toHaveLength(1);
    await expect(store.createStream(odd)).rejects.toThrow(StreamExistsError);
    for (const name of ['retention-48', 'retention-168', longest, odd]) await store.deleteStream(name);
  });

  it('fails the iterators of a deleted stream with ResourceNotFoundException', async () => {
    const store = new KinesisStreamStore(client, { streamPrefix: 'gone-', pollIntervalMs: 20 });
    await store.createStream('s');
    await store.putRecord('s', { partitionKey: 'p', data: 'old' });
    const iterator = await store.getShardIterator('s', 'shardId-000000000000', { type: 'TRIM_HORIZON' });
    await store.deleteStream('s');
    const error = await store.getRecords(iterator).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamNotFoundError);
    expect((error as Error).name).toBe('ResourceNotFoundException');
  });

  it('sends a batch over 5 MiB as several PutRecords requests, in order', async () => {
    const store = new KinesisStreamStore(client, { streamPrefix: 'split-', pollIntervalMs: 20 });
    await store.createStream('big');
    const records = Array.from({ length: 7 }, (_, i) => ({
      partitionKey: `k${i}`,
      data: Buffer.alloc(MIB, 65 + i), // 'A'..'G', 1 MiB each: 7 MiB in all
    }));
    const send = vi.spyOn(client, 'send');
    const result = await store.putRecords('big', records);
    const puts = send.mock.calls
      .map(([command]) => command)
      .filter((command) => command instanceof PutRecordsCommand) as PutRecordsCommand[];
    send.mockRestore();
    // 4 x (1 MiB + 2-byte key) fit 5 MiB, a fifth does not: requests of 4 and 3 records.
    expect(puts.map((c) => c.input.Records?.map((r) => r.PartitionKey))).toEqual([
      ['k0', 'k1', 'k2', 'k3'],
      ['k4', 'k5', 'k6'],
    ]);
    expect(result.failedRecordCount).toBe(0);
    let iterator = await store.getShardIterator('big', 'shardId-000000000000', { type: 'TRIM_HORIZON' });
    const read: string[] = [];
    for (;;) {
      const page = await store.getRecords(iterator, { limit: 2 });
      if (page.records.length === 0) break;
      read.push(
        ...page.records.map((r) => `${r.partitionKey}:${text(r.data).slice(0, 1)}:${r.data.byteLength}`),
      );
      iterator = page.nextShardIterator!;
    }
    expect(read).toEqual(records.map((_record, i) => `k${i}:${String.fromCharCode(65 + i)}:${MIB}`));
    expect(result.records.map((r) => (r as PutRecordResult).sequenceNumber)).toEqual(
      [...result.records.map((r) => (r as PutRecordResult).sequenceNumber)].sort((x, y) =>
        x.length !== y.length ? x.length - y.length : x < y ? -1 : 1,
      ),
    );
    await store.deleteStream('big');
  });
});

describe('KinesisStreamStore against aws-sdk-client-mock: exact requests (API reference shapes)', () => {
  // Mock one client instance (not the class): the kinesalite clients of this file stay real.
  const mocked = new KinesisClient({ region: 'eu-west-1' });
  const kinesis = mockClient(mocked);
  const sleeps: number[] = [];
  const store = () =>
    new KinesisStreamStore(mocked, {
      streamPrefix: 'sluice-nba-',
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
  const created = new Date('2026-03-01T12:00:00.000Z');
  const arn = 'arn:aws:kinesis:eu-west-1:123456789012:stream/sluice-nba-tweets';
  const summary = (status: 'CREATING' | 'ACTIVE' | 'UPDATING', retention = 24) => ({
    StreamDescriptionSummary: {
      StreamName: 'sluice-nba-tweets',
      StreamARN: arn,
      StreamStatus: status,
      RetentionPeriodHours: retention,
      StreamCreationTimestamp: created,
      EnhancedMonitoring: [],
      OpenShardCount: 2,
    },
  });
  const meta = { $metadata: {} };

  afterEach(() => {
    kinesis.reset();
    sleeps.length = 0;
  });

  it('creates a stream, waits for ACTIVE, raises retention to 8760 h, and pages ListShards with NextToken only', async () => {
    kinesis.on(CreateStreamCommand).resolves({});
    kinesis
      .on(DescribeStreamSummaryCommand)
      .resolvesOnce(summary('CREATING'))
      .resolvesOnce(summary('ACTIVE'))
      .resolvesOnce(summary('UPDATING', 8760))
      .resolves(summary('ACTIVE', 8760));
    kinesis.on(IncreaseStreamRetentionPeriodCommand).resolves({});
    const shard = (i: number, start: string, end: string) => ({
      ShardId: `shardId-00000000000${i}`,
      HashKeyRange: { StartingHashKey: start, EndingHashKey: end },
      SequenceNumberRange: { StartingSequenceNumber: '49000' },
    });
    kinesis
      .on(ListShardsCommand, { StreamName: 'sluice-nba-tweets' })
      .resolves({ Shards: [shard(0, '0', '170141183460469231731687303715884105727')], NextToken: 'page-2' });
    kinesis.on(ListShardsCommand, { NextToken: 'page-2' }).resolves({
      Shards: [
        shard(1, '170141183460469231731687303715884105728', '340282366920938463463374607431768211455'),
      ],
    });

    const description = await store().createStream('tweets', { shardCount: 2, retentionHours: 8760 });
    expect(kinesis.commandCalls(CreateStreamCommand).map((c) => c.args[0].input)).toEqual([
      { StreamName: 'sluice-nba-tweets', ShardCount: 2 },
    ]);
    expect(kinesis.commandCalls(IncreaseStreamRetentionPeriodCommand).map((c) => c.args[0].input)).toEqual([
      { StreamName: 'sluice-nba-tweets', RetentionPeriodHours: 8760 },
    ]);
    expect(kinesis.commandCalls(DescribeStreamSummaryCommand).map((c) => c.args[0].input)).toEqual(
      Array(5).fill({ StreamName: 'sluice-nba-tweets' }),
    );
    expect(kinesis.commandCalls(ListShardsCommand).map((c) => c.args[0].input)).toEqual([
      { StreamName: 'sluice-nba-tweets' },
      { NextToken: 'page-2' },
    ]);
    expect(sleeps).toEqual([50, 50]); // one poll pause per wait, starting at 50 ms
    expect(description).toEqual({
      name: 'tweets',
      streamId: `${arn}@2026-03-01T12:00:00.000Z`,
      status: 'ACTIVE',
      shards: [
        {
          shardId: 'shardId-000000000000',
          hashKeyRange: { startingHashKey: '0', endingHashKey: '170141183460469231731687303715884105727' },
        },
        {
          shardId: 'shardId-000000000001',
          hashKeyRange: {
            startingHashKey: '170141183460469231731687303715884105728',
            endingHashKey: '340282366920938463463374607431768211455',
          },
        },
      ],
      retentionHours: 8760,
      createdAt: '2026-03-01T12:00:00.000Z',
    });
  });

  it('maps CreateStream ResourceInUseException to StreamExistsError', async () => {
    kinesis.on(CreateStreamCommand).rejects(new ResourceInUseException({ message: 'in use', ...meta }));
    const error = await store()
      .createStream('tweets')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamExistsError);
    expect((error as Error).message).toContain('"tweets" (Kinesis "sluice-nba-tweets") already exists');
  });

  it('resends records PutRecords failed with retryable codes, with backoff, and reports the rest', async () => {
    kinesis
      .on(PutRecordsCommand)
      .resolvesOnce({
        FailedRecordCount: 3,
        Records: [
          { ShardId: 'shardId-000000000000', SequenceNumber: '101' },
          { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'Rate exceeded for shard' },
          { ErrorCode: 'KMSAccessDeniedException', ErrorMessage: 'no key access' },
          { ErrorCode: 'InternalFailure', ErrorMessage: 'Internal service failure.' },
        ],
      })
      .resolvesOnce({
        FailedRecordCount: 1,
        Records: [
          { ShardId: 'shardId-000000000001', SequenceNumber: '102' },
          { ErrorCode: 'InternalFailure', ErrorMessage: 'Internal service failure.' },
        ],
      })
      .resolves({
        FailedRecordCount: 1,
        Records: [{ ErrorCode: 'InternalFailure', ErrorMessage: 'Internal service failure.' }],
      });
    const s = new KinesisStreamStore(mocked, {
      streamPrefix: 'sluice-nba-',
      putRetries: 2,
      retryBaseDelayMs: 100,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    const result = await s.putRecords('tweets', [
      { partitionKey: 'a', data: 'one' },
      { partitionKey: 'b', data: Uint8Array.of(1, 2) },
      { partitionKey: 'c', data: 'three' },
      { partitionKey: 'd', data: 'four' },
    ]);
    const inputs = kinesis.commandCalls(PutRecordsCommand).map((c) => c.args[0].input);
    const bytes = (data: string | Uint8Array) => (typeof data === 'string' ? Buffer.from(data) : data);
    expect(inputs).toHaveLength(3);
    expect(inputs[0]).toEqual({
      StreamName: 'sluice-nba-tweets',
      Records: [
        { PartitionKey: 'a', Data: bytes('one') },
        { PartitionKey: 'b', Data: Uint8Array.of(1, 2) },
        { PartitionKey: 'c', Data: bytes('three') },
        { PartitionKey: 'd', Data: bytes('four') },
      ],
    });
    // Only the retryable failures are resent (not KMSAccessDeniedException), in their order.
    expect(inputs[1]).toEqual({
      StreamName: 'sluice-nba-tweets',
      Records: [
        { PartitionKey: 'b', Data: Uint8Array.of(1, 2) },
        { PartitionKey: 'd', Data: bytes('four') },
      ],
    });
    expect(inputs[2]).toEqual({
      StreamName: 'sluice-nba-tweets',
      Records: [{ PartitionKey: 'd', Data: bytes('four') }],
    });
    expect(sleeps).toEqual([100, 200]);
    expect(result).toEqual({
      failedRecordCount: 2,
      records: [
        { shardId: 'shardId-000000000000', sequenceNumber: '101' },
        { shardId: 'shardId-000000000001', sequenceNumber: '102' },
        { errorCode: 'KMSAccessDeniedException', errorMessage: 'no key access' },
        { errorCode: 'InternalFailure', errorMessage: 'Internal service failure.' },
      ],
    });
  });

  it('refuses a bad record before sending anything', async () => {
    await expect(
      store().putRecords('tweets', [
        { partitionKey: 'ok', data: 'a' },
        { partitionKey: 'k'.repeat(257), data: 'b' },
      ]),
    ).rejects.toThrow(/record 1: partition key must be a string of 1..256 characters, got 257/);
    await expect(store().putRecords('tweets', [])).rejects.toThrow(StreamArgumentError);
    expect(kinesis.calls()).toHaveLength(0);
  });

  it('maps read errors to the port errors, throttling to a retryable StreamThrottledError', async () => {
    kinesis
      .on(GetRecordsCommand)
      .rejectsOnce(new ProvisionedThroughputExceededException({ message: 'Rate exceeded', ...meta }))
      .rejectsOnce(new ExpiredIteratorException({ message: 'Iterator expired', ...meta }))
      .rejectsOnce(new InvalidArgumentException({ message: 'Invalid ShardIterator.', ...meta }))
      .rejectsOnce(new ResourceNotFoundException({ message: 'Shard does not exist', ...meta }))
      .resolves({
        Records: [
          {
            SequenceNumber: '49590338271490256608559692538361571095921575989136588898',
            PartitionKey: 'p',
            Data: Buffer.from('hello'),
            ApproximateArrivalTimestamp: new Date('2026-03-01T12:00:01.234Z'),
          },
        ],
        NextShardIterator: 'AAAAnext',
        MillisBehindLatest: 2500,
      });
    const s = store();
    const errors = [];
    for (let i = 0; i < 4; i++)
      errors.push(await s.getRecords('AAAAiterator', { limit: 5 }).catch((e: unknown) => e));
    expect(errors[0]).toBeInstanceOf(StreamThrottledError);
    expect(errors[0]).toMatchObject({ name: 'ProvisionedThroughputExceededException', retryable: true });
    expect(errors[1]).toBeInstanceOf(ExpiredIteratorError);
    expect(errors[1]).toMatchObject({ name: 'ExpiredIteratorException', retryable: true });
    expect(errors[2]).toBeInstanceOf(StreamArgumentError);
    expect(errors[3]).toBeInstanceOf(StreamNotFoundError);
    const page = await s.getRecords('AAAAiterator', { limit: 5 });
    expect(kinesis.commandCalls(GetRecordsCommand).map((c) => c.args[0].input)).toEqual(
      Array(5).fill({ ShardIterator: 'AAAAiterator', Limit: 5 }),
    );
    expect(page).toEqual({
      records: [
        {
          sequenceNumber: '49590338271490256608559692538361571095921575989136588898',
          partitionKey: 'p',
          data: Buffer.from('hello'),
          approximateArrivalTimestamp: new Date('2026-03-01T12:00:01.234Z'),
        },
      ],
      nextShardIterator: 'AAAAnext',
      millisBehindLatest: 2500,
    });
  });

  it('marks 5xx errors retryable and keeps the AWS name', () => {
    const error = mapKinesisError(
      new InternalFailureException({ message: 'boom', $metadata: { httpStatusCode: 500 } }),
      'putting a record to stream "tweets"',
    );
    expect(error).toBeInstanceOf(SluiceError);
    expect(error).toMatchObject({
      name: 'InternalFailureException',
      retryable: true,
      code: 'stream_unavailable',
    });
    expect(error.message).toContain('putting a record to stream "tweets"');
  });

  it('sends the iterator types as GetShardIterator documents them', async () => {
    kinesis.on(GetShardIteratorCommand).resolves({ ShardIterator: 'AAAA' });
    const s = store();
    const shard = 'shardId-000000000001';
    const at = new Date('2026-03-01T12:00:00.500Z');
    await s.getShardIterator('tweets', shard, { type: 'TRIM_HORIZON' });
    await s.getShardIterator('tweets', shard, { type: 'LATEST' });
    await s.getShardIterator('tweets', shard, { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: '4959' });
    await s.getShardIterator('tweets', shard, { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: '4960' });
    await s.getShardIterator('tweets', shard, { type: 'AT_TIMESTAMP', timestamp: at });
    const base = { StreamName: 'sluice-nba-tweets', ShardId: shard };
    expect(kinesis.commandCalls(GetShardIteratorCommand).map((c) => c.args[0].input)).toEqual([
      { ...base, ShardIteratorType: 'TRIM_HORIZON' },
      { ...base, ShardIteratorType: 'LATEST' },
      { ...base, ShardIteratorType: 'AT_SEQUENCE_NUMBER', StartingSequenceNumber: '4959' },
      { ...base, ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: '4960' },
      { ...base, ShardIteratorType: 'AT_TIMESTAMP', Timestamp: at },
    ]);
  });

  it('pages ListStreams from the prefix on and stops past it', async () => {
    kinesis
      .on(ListStreamsCommand)
      .resolvesOnce({ StreamNames: ['sluice-nba-a', 'sluice-nba-b'], HasMoreStreams: true, NextToken: 't1' })
      .resolvesOnce({
        StreamNames: ['sluice-nba-c', 'sluice-nba-d', 'sluice-nbb-x'],
        StreamSummaries: [{ StreamName: 'sluice-nba-d', StreamARN: 'arn', StreamStatus: 'DELETING' }],
        HasMoreStreams: true,
        NextToken: 't2',
      });
    expect(await store().listStreams()).toEqual(['a', 'b', 'c']);
    expect(kinesis.commandCalls(ListStreamsCommand).map((c) => c.args[0].input)).toEqual([
      { Limit: 1000, ExclusiveStartStreamName: 'sluice-nba-' },
      { NextToken: 't1', Limit: 1000 },
    ]);
  });
});
