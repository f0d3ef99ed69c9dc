/**
 * End to end: the nba continuous tampering job (functions `nba-collect` then `nba-tampering`,
 * pipelines/nba/continuous.ts) on the aws backend (`createAwsBackend`) and, over the same input
 * and the same clock, on the local backend; the alerts must be the same.
 *
 * On AWS: the tweet stream on kinesalite; the players tables, `tampering_control`, the run log and
 * the checkpoints (`sluice_stream_job_checkpoints`) on dynalite; the lake on s3rver; Glue and
 * Athena faked with aws-sdk-client-mock at class level (test/helpers/fake-{glue,athena}.ts).
 *
 * dynalite has no DynamoDB Streams (TOOLCHAIN.md), and the job reads `tampering_control`'s change
 * stream. So this file FAKES DynamoDB Streams ({@link installFakeDynamoDbStreams}): it wraps
 * `DynamoDBClient.prototype.send` (everything still goes to dynalite; tables created with a
 * `StreamSpecification` get it and a `LatestStreamArn` back in CreateTable/DescribeTable, and each
 * successful PutItem/UpdateItem/DeleteItem on them appends an INSERT/MODIFY/REMOVE record with
 * NEW_AND_OLD_IMAGES read around the write) and answers DescribeStream/GetShardIterator/GetRecords
 * of `DynamoDBStreamsClient` from those records (one open shard per table; shapes as in the
 * DynamoDB Streams API reference). It is not AWS: one shard, no trimming, no ordering subtleties.
 *
 * Input: the first envelopes by event time of the real capture
 * examples/data/nba/nba_player_mention_tweets_v2.ndjson.gz, made into envelopes with the bundled
 * players; sent in two replay files, one drain after each.
 */
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  type AttributeValue,
  CreateTableCommand,
  type CreateTableCommandOutput,
  DeleteItemCommand,
  DescribeTableCommand,
  type DescribeTableCommandOutput,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  type TableDescription,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type _Record as StreamRecord,
} from '@aws-sdk/client-dynamodb-streams';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { type AwsStub, mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipelineModules } from '../../pipelines/index.ts';
import { nbaPipeline } from '../../pipelines/nba/definition.ts';
import { type Envelope, envelopesFromTweets } from '../../pipelines/nba/envelopes.ts';
import {
  defaultPlayers,
  NBA_DATA_DIR,
  NBA_FILES,
  openReferenceTables,
} from '../../pipelines/nba/reference.ts';
import { replayTampering } from '../../pipelines/nba/tampering.ts';
import type { Alert } from '../../src/core/alert.ts';
import type { PipelineContext } from '../../src/core/context.ts';
import type { FunctionContext } from '../../src/core/function.ts';
import type { JsonValue } from '../../src/core/ports/kv-table.ts';
import type { Notifier } from '../../src/core/ports/notifier.ts';
import { KvCheckpointStore, MAX_INLINE_CHECKPOINT_BYTES } from '../../src/engines/stream/checkpoint-store.ts';
import { type AwsStack, startAwsStack } from '../helpers/aws-stack.ts';
import { createTestHome, type TestHome } from '../helpers/context.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const TABLE_PREFIX = 'e2e-nba-';
const START = new Date('2024-03-01T12:00:30.000Z');
/** Envelopes of the capture used, and how many go in the first replay file. */
const COUNT = 8_000;
const SPLIT = 4_500;

// --- A fake of DynamoDB Streams over dynalite (see the module doc) --------------------------------

interface FakeStream {
  readonly arn: string;
  readonly table: string;
  readonly keyNames: string[];
  /** StartingSequenceNumber of the shard (records have larger numbers). */
  readonly start: bigint;
  readonly records: StreamRecord[];
}

interface FakeDynamoDbStreams {
  readonly streams: Map<string, FakeStream>;
  restore(): void;
}

type Send = (this: DynamoDBClient, command: unknown, ...rest: unknown[]) => Promise<unknown>;

function installFakeDynamoDbStreams(): FakeDynamoDbStreams {
  const streams = new Map<string, FakeStream>();
  let sequence = 100_000_000_000_000_000_000n;
  const next = () => ++sequence;
  const proto = DynamoDBClient.prototype as unknown as { send: Send };
  const original = proto.send;
  const viewType = 'NEW_AND_OLD_IMAGES' as const;

  const withStream = (description: TableDescription | undefined): void => {
    const stream = description?.TableName ? streams.get(description.TableName) : undefined;
    if (!description || !stream) return;
    description.StreamSpecification = { StreamEnabled: true, StreamViewType: viewType };
    description.LatestStreamArn = stream.arn;
    description.LatestStreamLabel = stream.arn.split('/').at(-1);
  };
  const keyOf = (stream: FakeStream, item: Record<string, AttributeValue>) =>
    Object.fromEntries(stream.keyNames.map((name) => [name, item[name] as AttributeValue]));

  proto.send = async function send(this: DynamoDBClient, command: unknown, ...rest: unknown[]) {
    const call = (c: unknown) => original.call(this, c, ...rest);
    if (command instanceof CreateTableCommand) {
      const input = command.input;
      const output = (await call(command)) as CreateTableCommandOutput;
      if (input.StreamSpecification?.StreamEnabled && input.TableName) {
        streams.set(input.TableName, {
          arn: `arn:aws:dynamodb:us-east-1:000000000000:table/${input.TableName}/stream/2024-03-01T00:00:00.000`,
          table: input.TableName,
          keyNames: (input.KeySchema ?? []).map((k) => k.AttributeName ?? ''),
          start: next(),
          records: [],
        });
      }
      withStream(output.TableDescription);
      return output;
    }
    if (command instanceof DescribeTableCommand) {
      const output = (await call(command)) as DescribeTableCommandOutput;
      withStream(output.Table);
      return output;
    }
    const write =
      command instanceof PutItemCommand ||
      command instanceof DeleteItemCommand ||
      command instanceof UpdateItemCommand
        ? command
        : undefined;
    const stream = write?.input.TableName ? streams.get(write.input.TableName) : undefined;
    if (!write || !stream) return call(command);
    const key =
      write instanceof PutItemCommand
        ? keyOf(stream, write.input.Item ?? {})
        : (write.input.Key as Record<string, AttributeValue>);
    const read = async () =>
      (
        (await call(new GetItemCommand({ TableName: stream.table, Key: key, ConsistentRead: true }))) as {
          Item?: Record<string, AttributeValue>;
        }
      ).Item;
    const before = await read();
    const output = await call(command);
    const after = await read();
    if (before === undefined && after === undefined) return output;
    const eventName = before === undefined ? 'INSERT' : after === undefined ? 'REMOVE' : 'MODIFY';
    const sequenceNumber = String(next());
    stream.records.push({
      eventID: `fake-${sequenceNumber}`,
      eventName,
      eventVersion: '1.1',
      eventSource: 'aws:dynamodb',
      awsRegion: 'us-east-1',
      dynamodb: {
        ApproximateCreationDateTime: new Date(),
        Keys: key as never,
        ...(after ? { NewImage: after as never } : {}),
        ...(before ? { OldImage: before as never } : {}),
        SequenceNumber: sequenceNumber,
        SizeBytes: JSON.stringify({ before, after }).length,
        StreamViewType: viewType,
      },
    });
    return output;
  };

  const byArn = (arn: string | undefined) => {
    const stream = [...streams.values()].find((s) => s.arn === arn);
    if (!stream)
      throw Object.assign(new Error(`Requested resource not found: ${arn}`), {
        name: 'ResourceNotFoundException',
      });
    return stream;
  };
  const iterator = (arn: string, index: number) =>
    Buffer.from(JSON.stringify({ arn, index })).toString('base64');
  // biome-ignore lint/suspicious/noExplicitAny: aws-sdk-client-mock's stub type is generic over any client
  const mock: AwsStub<any, any, any> = mockClient(DynamoDBStreamsClient.prototype);
  mock.on(DescribeStreamCommand).callsFake(async (input: { StreamArn?: string }) => {
    const stream = byArn(input.StreamArn);
    return {
      StreamDescription: {
        StreamArn: stream.arn,
        StreamStatus: 'ENABLED',
        StreamViewType: viewType,
        TableName: stream.table,
        Shards: [
          {
            ShardId: 'shardId-00000001700000000000-fake0001',
            SequenceNumberRange: { StartingSequenceNumber: String(stream.start) },
          },
        ],
      },
    };
  });
  mock
    .on(GetShardIteratorCommand)
    .callsFake(async (input: { StreamArn?: string; ShardIteratorType?: string; SequenceNumber?: string }) => {
      const stream = byArn(input.StreamArn);
      const seq = input.SequenceNumber === undefined ? 0n : BigInt(input.SequenceNumber);
      const count = (keep: (n: bigint) => boolean) =>
        stream.records.filter((r) => keep(BigInt(r.dynamodb?.SequenceNumber ?? '0'))).length;
      const index =
        input.ShardIteratorType === 'TRIM_HORIZON'
          ? 0
          : input.ShardIteratorType === 'LATEST'
            ? stream.records.length
            : input.ShardIteratorType === 'AFTER_SEQUENCE_NUMBER'
              ? count((n) => n <= seq)
              : count((n) => n < seq);
      return { ShardIterator: iterator(stream.arn, index) };
    });
  mock.on(GetRecordsCommand).callsFake(async (input: { ShardIterator?: string; Limit?: number }) => {
    const { arn, index } = JSON.parse(Buffer.from(input.ShardIterator ?? '', 'base64').toString('utf8')) as {
      arn: string;
      index: number;
    };
    const stream = byArn(arn);
    const records = stream.records.slice(index, index + (input.Limit ?? 1000));
    return { Records: structuredClone(records), NextShardIterator: iterator(arn, index + records.length) };
  });

  return {
    streams,
    restore() {
      proto.send = original;
      mock.restore();
    },
  };
}

// --- The input ----------------------------------------------------------------------------------

const players = defaultPlayers().players;
const tweetLines = gunzipSync(readFileSync(path.join(NBA_DATA_DIR, NBA_FILES.tweets)))
  .toString('utf8')
  .split('\n')
  .filter((line) => line !== '');
/**
 * The first {@link COUNT} envelopes by event time (stable sort, as pipelines/nba/nba.e2e.test.ts):
 * the capture's file order is grouped by queried player, so in file order nearly every record is
 * late and the job alerts almost nothing.
 */
const envelopes: Envelope[] = envelopesFromTweets(tweetLines, players)
  .envelopes.map((e, i) => ({ e, i }))
  .sort((a, b) => a.e.event_time - b.e.event_time || a.i - b.i)
  .map((x) => x.e)
  .slice(0, COUNT);

const fnContext: FunctionContext = {
  functionName: 'nba-tampering',
  awsRequestId: 'e2e',
  getRemainingTimeInMillis: () => 900_000,
};
const config = { get: (key: string) => nbaPipeline.config?.[key]?.default };

/** What the collect/drain sequence did on one backend. */
interface Outcome {
  readonly notified: Alert[];
  readonly collects: Record<string, JsonValue>[];
  readonly drains: Record<string, JsonValue>[];
  /** The team put under control after the first drain, and how many alerts that drain notified. */
  readonly controlled: string;
  readonly firstDrain: number;
}

/**
 * The same sequence on any backend: collect file A, drain; control change; collect A again
 * (skipped) and B, drain; drain again (nothing new).
 */
async function runSequence(
  ctx: PipelineContext,
  clock: ManualClock,
  files: [string, string],
): Promise<Outcome> {
  const notified: Alert[] = [];
  const notifier: Notifier = {
    notify: async (alert) => {
      notified.push(alert);
      return { delivered: ['memory'], failed: [] };
    },
  };
  const handlers = pipelineModules.nba!.handlers({ ctx, config, notifier });
  const collect = (file: string) =>
    handlers['nba-collect']!({ replay_envelopes: file }, { ...fnContext, functionName: 'nba-collect' });
  const drain = () => handlers['nba-tampering']!(null, fnContext);
  const collects: Record<string, JsonValue>[] = [];
  const drains: Record<string, JsonValue>[] = [];
  collects.push((await collect(files[0])) as Record<string, JsonValue>);
  drains.push((await drain()) as Record<string, JsonValue>);
  await clock.advance(60_000);
  // A control change between invocations: the team that sent the most alerts so far is under
  // control from now on (its tweets are suppressed), read from tampering_control's change stream.
  const firstDrain = notified.length;
  const teams = new Map<string, number>();
  for (const a of notified) teams.set(String(a.details?.team), (teams.get(String(a.details?.team)) ?? 0) + 1);
  const controlled = [...teams].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]?.[0] ?? '';
  const { control } = await openReferenceTables(ctx);
  await control.put({ team: controlled, control: true });
  collects.push((await collect(files[0])) as Record<string, JsonValue>);
  collects.push((await collect(files[1])) as Record<string, JsonValue>);
  drains.push((await drain()) as Record<string, JsonValue>);
  await clock.advance(60_000);
  drains.push((await drain()) as Record<string, JsonValue>);
  return { notified, collects, drains, controlled, firstDrain };
}

describe('nba continuous tampering on the aws backend equals the local backend', () => {
  let stack: AwsStack;
  let s3: AwsStack['s3'];
  let fakeStreams: FakeDynamoDbStreams;
  let backend: AwsStack['backend'];
  let local: TestHome;
  let dir: string;
  let s3Client: AwsStack['s3Client'];
  let dynamo: AwsStack['dynamo'];
  let aws: Outcome;
  let onLocal: Outcome;

  beforeAll(async () => {
    // Wraps DynamoDBClient.prototype.send before the backend builds its clients and tables.
    fakeStreams = installFakeDynamoDbStreams();
    const awsClock = new ManualClock(START);
    stack = await startAwsStack({ tablePrefix: TABLE_PREFIX, kinesis: true, clock: awsClock });
    ({ s3, backend, s3Client, dynamo } = stack);
    dir = stack.workDir;
    const files: [string, string] = [path.join(dir, 'a.ndjson'), path.join(dir, 'b.ndjson')];
    await writeFile(
      files[0],
      `${envelopes
        .slice(0, SPLIT)
        .map((e) => JSON.stringify(e))
        .join('\n')}\n`,
    );
    await writeFile(
      files[1],
      `${envelopes
        .slice(SPLIT)
        .map((e) => JSON.stringify(e))
        .join('\n')}\n`,
    );
    const ctx = stack.ctx({ workDir: path.join(dir, 'aws-work') });
    aws = await runSequence(ctx, awsClock, files);

    const localClock = new ManualClock(START);
    local = await createTestHome({ clock: localClock });
    onLocal = await runSequence(local.ctx, localClock, files);
  }, 80_000);

  afterAll(async () => {
    await local?.close();
    await stack?.close();
    fakeStreams?.restore();
  });

  const ids = (alerts: readonly Alert[]) => alerts.map((a) => String(a.details?.id));

  it('the collector sends each file once on both backends', () => {
    for (const outcome of [aws, onLocal]) {
      expect(outcome.collects.map((c) => [c.status, c.sent])).toEqual([
        ['sent', SPLIT],
        ['skipped', 0],
        ['sent', COUNT - SPLIT],
      ]);
    }
  });

  it('notifies exactly the alerts the local backend notifies, in the same order, none twice', () => {
    expect(aws.notified.length).toBeGreaterThan(10);
    expect(ids(aws.notified)).toEqual(ids(onLocal.notified));
    // Everything but the run id (random per invocation) is the same.
    const view = (a: Alert) => [a.title, a.severity, { ...a.details, run_id: undefined }];
    expect(aws.notified.map(view)).toEqual(onLocal.notified.map(view));
    expect(new Set(ids(aws.notified)).size).toBe(aws.notified.length);
  });

  it('each drain resumes from the previous checkpoint: records, checkpoints and counts as on local', () => {
    const view = (d: Record<string, JsonValue>) => ({
      records: d.records,
      counts: d.counts,
      alerts: d.alerts,
      notified: d.notified,
      control_changes: d.control_changes,
      stopped_because: d.stopped_because,
      checkpoint: d.checkpoint,
    });
    expect(aws.drains.map(view)).toEqual(onLocal.drains.map(view));
    const [first, second, third] = aws.drains;
    expect(first?.records).toBe(SPLIT);
    expect(second?.records).toBe(COUNT - SPLIT);
    expect(third).toMatchObject({ records: 0, alerts: 0, notified: 0, stopped_because: 'caught_up' });
    const cp = aws.drains.map((d) => d.checkpoint as { restored: number | null; saved: number | null });
    expect(cp[1]?.restored).toBe(cp[0]?.saved);
    // The control change reached the second drain through the (faked) DynamoDB stream, and bit:
    // without it, the controlled team alerts in the second file's windows; with it, never.
    expect(second?.control_changes).toBe(1);
    expect(aws.controlled).toBe(onLocal.controlled);
    const secondStart = envelopes[SPLIT]!.event_time;
    const uncontrolled = replayTampering({ envelopes, players }).alerts.filter(
      (a) => a.team === aws.controlled && a.window.end > secondStart,
    );
    expect(uncontrolled.length).toBeGreaterThan(0);
    const afterControl = aws.notified.slice(aws.firstDrain);
    expect(afterControl.length).toBeGreaterThan(0);
    expect(afterControl.filter((a) => a.details?.team === aws.controlled)).toEqual([]);
    for (const d of aws.drains) {
      const c = d.counts as {
        read: number;
        loaded: number;
        quarantined: number;
        filtered: number;
        duplicates: number;
      };
      expect(c.read).toBe(c.loaded + c.duplicates + c.quarantined + (c.filtered ?? 0));
    }
  });

  it('nba.tampering_alerts in S3 (through the fake Athena) holds each notified alert once', async () => {
    const engine = await backend.openQueryEngine();
    try {
      const rows = (await engine.query('SELECT id FROM nba.tampering_alerts')).rows;
      expect(rows.map((r) => String(r.id)).sort()).toEqual(ids(aws.notified).sort());
    } finally {
      await engine.close();
    }
    const listed = await s3Client.send(
      new ListObjectsV2Command({ Bucket: s3.buckets.analytical, Prefix: 'nba/tampering_alerts/' }),
    );
    expect((listed.Contents ?? []).every((o) => o.Key?.endsWith('.parquet'))).toBe(true);
  });

  it('the checkpoint item on dynalite holds the state inline, under the inline limit', async () => {
    const item = await dynamo.send(
      new GetItemCommand({
        TableName: `${TABLE_PREFIX}sluice_stream_job_checkpoints`,
        Key: { job: { S: 'nba-tampering' } },
      }),
    );
    const state = item.Item?.state?.S ?? '';
    const saved = (aws.drains.at(-1)?.checkpoint as { saved: number } | undefined)?.saved;
    expect(Number(item.Item?.checkpoint_id?.N)).toBe(saved);
    const parsed = JSON.parse(state) as { id: number; sources: Record<string, { positions: object }> };
    expect(parsed.id).toBe(saved);
    expect(Object.keys(parsed.sources.tweets?.positions ?? {})).toHaveLength(1);
    // ~5 KB here; over the whole sorted capture the job's snapshot peaks near 73 KB.
    expect(Buffer.byteLength(state)).toBeLessThan(MAX_INLINE_CHECKPOINT_BYTES);
  });

  it("a checkpoint over DynamoDB's 400 KB item limit: refused inline by dynalite, spilled to S3 with objects", async () => {
    const big = {
      id: 7,
      sources: { tweets: { positions: { 'shardId-000000000000': '1' }, watermarks: null } },
      operators: { windows: { payload: 'x'.repeat(450_000) } },
    };
    await expect(new KvCheckpointStore(backend.kv).save('e2e-big', big)).rejects.toThrow(/size/i);
    const store = new KvCheckpointStore(backend.kv, undefined, { objects: backend.objectStore });
    await store.save('e2e-big', big);
    expect(await store.load('e2e-big')).toEqual(big);
    const item = await dynamo.send(
      new GetItemCommand({
        TableName: `${TABLE_PREFIX}sluice_stream_job_checkpoints`,
        Key: { job: { S: 'e2e-big' } },
      }),
    );
    expect(item.Item?.object_key?.S).toBe('_checkpoints/e2e-big/0000000000000007.json.gz');
    const listed = await s3Client.send(
      new ListObjectsV2Command({ Bucket: s3.buckets.staging, Prefix: '_checkpoints/e2e-big/' }),
    );
    expect((listed.Contents ?? []).map((o) => o.Key)).toEqual([
      '_checkpoints/e2e-big/0000000000000007.json.gz',
    ]);
  });
});
