/**
 * Unit tests of the DynamoDB kv adapter with aws-sdk-client-mock: the exact request inputs
 * (DynamoDB API reference: PutItem, Query, CreateTable; DynamoDB Streams API reference:
 * DescribeStream, GetShardIterator, GetRecords) and the mapping of responses and errors. The change
 * stream is tested only here: dynalite has no DynamoDB Streams, and these tests were not run
 * against AWS. Record shapes follow the GetRecords and DescribeStream examples of the DynamoDB
 * Streams API reference (table `Forum`, keys `ForumName`/`Subject`).
 */
import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  DeleteItemCommand,
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  ResourceNotFoundException,
  ScanCommand,
  UpdateTableCommand,
} from '@aws-sdk/client-dynamodb';
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  TrimmedDataAccessException,
} from '@aws-sdk/client-dynamodb-streams';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConditionFailedError, NotFoundError, SluiceError } from '../../core/errors.ts';
import type { KeySchema } from '../../core/ports/kv-table.ts';
import { compileCondition, DynamoDbKvStore, marshallItem, unmarshallItem } from './dynamodb-kv-store.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const dynamo = mockClient(DynamoDBClient);
const streams = mockClient(DynamoDBStreamsClient);

beforeEach(() => {
  dynamo.reset();
  streams.reset();
});
afterEach(() => {
  dynamo.reset();
  streams.reset();
});

const STREAM_ARN = 'arn:aws:dynamodb:us-west-2:111122223333:table/Forum/stream/2015-05-20T20:51:10.252';
const forumSchema: KeySchema = {
  hashKey: { name: 'ForumName', type: 'S' },
  rangeKey: { name: 'Subject', type: 'S' },
};

/** DescribeTable output of an ACTIVE `app-Forum` (DynamoDB API reference, DescribeTable). */
function forumTable(stream: boolean) {
  return {
    Table: {
      TableName: 'app-Forum',
      TableStatus: 'ACTIVE' as const,
      AttributeDefinitions: [
        { AttributeName: 'ForumName', AttributeType: 'S' as const },
        { AttributeName: 'Subject', AttributeType: 'S' as const },
      ],
      KeySchema: [
        { AttributeName: 'ForumName', KeyType: 'HASH' as const },
        { AttributeName: 'Subject', KeyType: 'RANGE' as const },
      ],
      ...(stream
        ? {
            StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' as const },
            LatestStreamArn: STREAM_ARN,
          }
        : {}),
    },
  };
}

function newStore(options: { createTables?: boolean } = {}): DynamoDbKvStore {
  return new DynamoDbKvStore(new DynamoDBClient({ region: 'us-west-2' }), {
    tablePrefix: 'app-',
    streamsClient: new DynamoDBStreamsClient({ region: 'us-west-2' }),
    ...options,
  });
}

describe('compileCondition', () => {
  it('compiles the lease acquisition condition with placeholders only', () => {
    expect(
      compileCondition(
        {
          op: 'or',
          conditions: [
            { op: 'not_exists' },
            { op: 'lt', attribute: 'expires_at', value: 1_700_000_000_000 },
            { op: 'eq', attribute: 'owner', value: 'run-a' },
          ],
        },
        'name',
      ),
    ).toEqual({
      expression: '(attribute_not_exists(#n0)) OR (#n1 < :v0) OR (#n2 = :v1)',
      names: { '#n0': 'name', '#n1': 'expires_at', '#n2': 'owner' },
      values: { ':v0': { N: '1700000000000' }, ':v1': { S: 'run-a' } },
    });
  });

  it('reuses one name placeholder per attribute and negates with NOT', () => {
    expect(
      compileCondition(
        {
          op: 'and',
          conditions: [
            { op: 'exists', attribute: 'size' },
            { op: 'not', condition: { op: 'ge', attribute: 'size', value: 'b' } },
            { op: 'ne', attribute: 'flag', value: null },
          ],
        },
        'id',
      ),
    ).toEqual({
      expression: '(attribute_exists(#n0)) AND (NOT (#n0 >= :v0)) AND (#n1 <> :v1)',
      names: { '#n0': 'size', '#n1': 'flag' },
      values: { ':v0': { S: 'b' }, ':v1': { NULL: true } },
    });
  });

  it('compares lists and maps element by element, map keys sorted', () => {
    expect(
      compileCondition({ op: 'eq', attribute: 'bookmark', value: { hour: '10', parts: [1, true] } }, 'id'),
    ).toEqual({
      expression:
        'attribute_type(#n0, :v0) AND size(#n0) = :v1 AND #n0.#n1 = :v2 AND ' +
        'attribute_type(#n0.#n2, :v3) AND size(#n0.#n2) = :v4 AND #n0.#n2[0] = :v5 AND #n0.#n2[1] = :v6',
      names: { '#n0': 'bookmark', '#n1': 'hour', '#n2': 'parts' },
      values: {
        ':v0': { S: 'M' },
        ':v1': { N: '2' },
        ':v2': { S: '10' },
        ':v3': { S: 'L' },
        ':v4': { N: '2' },
        ':v5': { N: '1' },
        ':v6': { BOOL: true },
      },
    });
    expect(compileCondition({ op: 'ne', attribute: 'l', value: [] }, 'id')).toEqual({
      expression: 'NOT (attribute_type(#n0, :v0) AND size(#n0) = :v1)',
      names: { '#n0': 'l' },
      values: { ':v0': { S: 'L' }, ':v1': { N: '0' } },
    });
    // Too large for one expression: a single `=` of the whole value.
    const big = Array.from({ length: 100 }, (_, i) => i);
    expect(compileCondition({ op: 'eq', attribute: 'l', value: big }, 'id')).toEqual({
      expression: '#n0 = :v0',
      names: { '#n0': 'l' },
      values: { ':v0': { L: big.map((i) => ({ N: String(i) })) } },
    });
  });

  it('folds order comparisons with non-scalar values to constants', () => {
    const never = { op: 'lt', attribute: 'flag', value: true } as const;
    expect(compileCondition(never, 'id').expression).toBe(false);
    expect(compileCondition({ op: 'not', condition: never }, 'id').expression).toBe(true);
    expect(
      compileCondition({ op: 'or', conditions: [never, { op: 'eq', attribute: 'n', value: 1 }] }, 'id'),
    ).toEqual({ expression: '#n0 = :v0', names: { '#n0': 'n' }, values: { ':v0': { N: '1' } } });
    expect(
      compileCondition({ op: 'and', conditions: [never, { op: 'eq', attribute: 'n', value: 1 }] }, 'id')
        .expression,
    ).toBe(false);
  });

  it('rejects malformed conditions', () => {
    expect(() => compileCondition({ op: 'and', conditions: [] }, 'id')).toThrow(/at least one/);
    expect(() => compileCondition({ op: 'eq', attribute: '', value: 1 }, 'id')).toThrow(/attribute/);
    expect(() => compileCondition({ op: 'bogus' } as never, 'id')).toThrow(/unknown condition op "bogus"/);
  });
});

describe('marshallItem / unmarshallItem', () => {
  it('maps JSON to attribute values and back, with JSON.stringify semantics', () => {
    const item = {
      id: 'x',
      n: -1.25,
      big: 1e21,
      e: '',
      t: true,
      z: null,
      l: [1, 'a', [], {}],
      m: { b: 1, a: { c: null } },
      gone: undefined,
      nan: Number.NaN,
      at: new Date('2026-03-01T12:00:00.000Z'),
    } as never;
    const marshalled = marshallItem(item);
    expect(marshalled).toEqual({
      id: { S: 'x' },
      n: { N: '-1.25' },
      big: { N: '1e+21' },
      e: { S: '' },
      t: { BOOL: true },
      z: { NULL: true },
      l: { L: [{ N: '1' }, { S: 'a' }, { L: [] }, { M: {} }] },
      m: { M: { a: { M: { c: { NULL: true } } }, b: { N: '1' } } },
      nan: { NULL: true },
      at: { S: '2026-03-01T12:00:00.000Z' },
    });
    expect(Object.keys(marshalled.m!.M!)).toEqual(['a', 'b']);
    expect(unmarshallItem(marshalled)).toEqual({
      id: 'x',
      n: -1.25,
      big: 1e21,
      e: '',
      t: true,
      z: null,
      l: [1, 'a', [], {}],
      m: { b: 1, a: { c: null } },
      nan: null,
      at: '2026-03-01T12:00:00.000Z',
    });
  });

  it('reads sets and binary written by other tools as arrays and base64', () => {
    expect(
      unmarshallItem({
        ss: { SS: ['a', 'b'] },
        ns: { NS: ['1', '2.5'] },
        b: { B: new Uint8Array([1, 2, 255]) },
      }),
    ).toEqual({ ss: ['a', 'b'], ns: [1, 2.5], b: 'AQL/' });
  });
});

describe('DynamoDbKvStore requests', () => {
  it('opens an existing table with DescribeTable of <prefix><name> and checks its key schema', async () => {
    dynamo.on(DescribeTableCommand).resolves(forumTable(false));
    const table = await newStore().table('Forum', forumSchema);
    expect(table.name).toBe('Forum');
    expect(dynamo.commandCalls(DescribeTableCommand).map((c) => c.args[0].input)).toEqual([
      { TableName: 'app-Forum' },
    ]);
    await expect(newStore().table('Forum', { hashKey: { name: 'ForumName', type: 'S' } })).rejects.toThrow(
      'DynamoDB table "app-Forum" (kv table "Forum") has key schema hash ForumName (S), range Subject (S), but was opened with hash ForumName (S)',
    );
  });

  it('without createTables a missing table is a NotFoundError and nothing is created', async () => {
    dynamo
      .on(DescribeTableCommand)
      .rejects(new ResourceNotFoundException({ message: 'Requested resource not found', $metadata: {} }));
    await expect(newStore().table('Forum', forumSchema)).rejects.toThrow(NotFoundError);
    expect(dynamo.commandCalls(CreateTableCommand)).toHaveLength(0);
  });

  it('with createTables creates PAY_PER_REQUEST with a NEW_AND_OLD_IMAGES stream and waits for ACTIVE', async () => {
    dynamo
      .on(DescribeTableCommand)
      .rejectsOnce(new ResourceNotFoundException({ message: 'Requested resource not found', $metadata: {} }))
      .resolvesOnce({ Table: { ...forumTable(true).Table, TableStatus: 'CREATING' } })
      .resolves(forumTable(true));
    dynamo.on(CreateTableCommand).resolves({});
    await newStore({ createTables: true }).table('Forum', forumSchema, { stream: true });
    expect(dynamo.commandCalls(CreateTableCommand).map((c) => c.args[0].input)).toEqual([
      {
        TableName: 'app-Forum',
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'ForumName', AttributeType: 'S' },
          { AttributeName: 'Subject', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'ForumName', KeyType: 'HASH' },
          { AttributeName: 'Subject', KeyType: 'RANGE' },
        ],
        StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
      },
    ]);
    expect(dynamo.commandCalls(DescribeTableCommand)).toHaveLength(3);
  });

  it('enables a missing stream with UpdateTable only under createTables', async () => {
    dynamo.on(DescribeTableCommand).resolvesOnce(forumTable(false)).resolves(forumTable(true));
    dynamo.on(UpdateTableCommand).resolves({});
    await expect(newStore().table('Forum', forumSchema, { stream: true })).rejects.toThrow(
      /"app-Forum".*has no stream.*NEW_AND_OLD_IMAGES/,
    );
    expect(dynamo.commandCalls(UpdateTableCommand)).toHaveLength(0);
    dynamo.reset();
    dynamo.on(UpdateTableCommand).resolves({});
    dynamo.on(DescribeTableCommand).resolvesOnce(forumTable(false)).resolves(forumTable(true));
    await newStore({ createTables: true }).table('Forum', forumSchema, { stream: true });
    expect(dynamo.commandCalls(UpdateTableCommand).map((c) => c.args[0].input)).toEqual([
      {
        TableName: 'app-Forum',
        StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
      },
    ]);
  });

  it('puts with a ConditionExpression and maps ConditionalCheckFailedException', async () => {
    dynamo.on(DescribeTableCommand).resolves(forumTable(false));
    const table = await newStore().table('Forum', forumSchema);
    dynamo
      .on(PutItemCommand)
      .resolvesOnce({})
      .rejects(
        new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }),
      );
    const item = { ForumName: 'DynamoDB', Subject: 'Thread 1', views: 3 };
    const condition = { op: 'eq', attribute: 'views', value: 2 } as const;
    await table.put(item, { condition });
    const error = await table.put(item, { condition }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConditionFailedError);
    expect((error as Error).message).toBe(
      'conditional put on DynamoDB table "app-Forum" (kv table "Forum") failed for key ' +
        '{"ForumName":"DynamoDB","Subject":"Thread 1"}: the stored item (or its absence) does not satisfy #n0 = :v0',
    );
    expect(dynamo.commandCalls(PutItemCommand)[0]!.args[0].input).toEqual({
      TableName: 'app-Forum',
      Item: { ForumName: { S: 'DynamoDB' }, Subject: { S: 'Thread 1' }, views: { N: '3' } },
      ConditionExpression: '#n0 = :v0',
      ExpressionAttributeNames: { '#n0': 'views' },
      ExpressionAttributeValues: { ':v0': { N: '2' } },
    });
  });

  it('fails a never-true condition without a request, and sends none for key errors', async () => {
    dynamo.on(DescribeTableCommand).resolves(forumTable(false));
    const table = await newStore().table('Forum', forumSchema);
    await expect(
      table.put({ ForumName: 'a', Subject: 'b' }, { condition: { op: 'gt', attribute: 'x', value: [1] } }),
    ).rejects.toThrow(ConditionFailedError);
    await expect(table.put({ ForumName: 'a' })).rejects.toThrow(/"Subject"/);
    expect(dynamo.commandCalls(PutItemCommand)).toHaveLength(0);
  });

  it('gets and deletes with consistent reads and key-only requests', async () => {
    dynamo.on(DescribeTableCommand).resolves(forumTable(false));
    dynamo
      .on(GetItemCommand)
      .resolves({ Item: { ForumName: { S: 'a' }, Subject: { S: 'b' }, n: { N: '1' } } });
    dynamo.on(DeleteItemCommand).resolves({});
    const table = await newStore().table('Forum', forumSchema);
    expect(await table.get({ ForumName: 'a', Subject: 'b', extra: 1 })).toEqual({
      ForumName: 'a',
      Subject: 'b',
      n: 1,
    });
    await table.delete({ ForumName: 'a', Subject: 'b' }, { condition: { op: 'exists' } });
    expect(dynamo.commandCalls(GetItemCommand)[0]!.args[0].input).toEqual({
      TableName: 'app-Forum',
      Key: { ForumName: { S: 'a' }, Subject: { S: 'b' } },
      ConsistentRead: true,
    });
    expect(dynamo.commandCalls(DeleteItemCommand)[0]!.args[0].input).toEqual({
      TableName: 'app-Forum',
      Key: { ForumName: { S: 'a' }, Subject: { S: 'b' } },
      ConditionExpression: 'attribute_exists(#n0)',
      ExpressionAttributeNames: { '#n0': 'ForumName' },
    });
  });

  it('queries with a KeyConditionExpression and round-trips LastEvaluatedKey through the cursor', async () => {
    dynamo.on(DescribeTableCommand).resolves(forumTable(false));
    const last = { ForumName: { S: 'DynamoDB' }, Subject: { S: 'Thread 2' } };
    dynamo
      .on(QueryCommand)
      .resolvesOnce({
        Items: [{ ForumName: { S: 'DynamoDB' }, Subject: { S: 'Thread 2' } }],
        LastEvaluatedKey: last,
      })
      .resolves({ Items: [] });
    const table = await newStore().table('Forum', forumSchema);
    const first = await table.query('DynamoDB', {
      limit: 1,
      descending: true,
      range: { op: 'begins_with', prefix: 'Thread' },
    });
    expect(first).toEqual({
      items: [{ ForumName: 'DynamoDB', Subject: 'Thread 2' }],
      cursor: Buffer.from(JSON.stringify(last)).toString('base64url'),
    });
    expect(
      await table.query('DynamoDB', { range: { op: 'between', low: 'A', high: 'M' }, cursor: first.cursor! }),
    ).toEqual({
      items: [],
    });
    expect(dynamo.commandCalls(QueryCommand).map((c) => c.args[0].input)).toEqual([
      {
        TableName: 'app-Forum',
        KeyConditionExpression: '#h = :h AND begins_with(#r, :p)',
        ExpressionAttributeNames: { '#h': 'ForumName', '#r': 'Subject' },
        ExpressionAttributeValues: { ':h': { S: 'DynamoDB' }, ':p': { S: 'Thread' } },
        ConsistentRead: true,
        Limit: 1,
        ScanIndexForward: false,
      },
      {
        TableName: 'app-Forum',
        KeyConditionExpression: '#h = :h AND #r BETWEEN :lo AND :hi',
        ExpressionAttributeNames: { '#h': 'ForumName', '#r': 'Subject' },
        ExpressionAttributeValues: { ':h': { S: 'DynamoDB' }, ':lo': { S: 'A' }, ':hi': { S: 'M' } },
        ConsistentRead: true,
        Limit: 1000,
        ExclusiveStartKey: last,
      },
    ]);
    // between with low > high selects nothing (DynamoDB would reject it): no request.
    expect(await table.query('DynamoDB', { range: { op: 'between', low: 'b', high: 'a' } })).toEqual({
      items: [],
    });
    expect(dynamo.commandCalls(QueryCommand)).toHaveLength(2);
  });

  it('maps throttling to a retryable SluiceError naming the table', async () => {
    dynamo.on(DescribeTableCommand).resolves(forumTable(false));
    const throttled = Object.assign(new Error('Rate of requests exceeds the allowed throughput.'), {
      name: 'ProvisionedThroughputExceededException',
      $fault: 'client',
    });
    dynamo.on(ScanCommand).rejects(throttled);
    const table = await newStore().table('Forum', forumSchema);
    const error = await table.scan().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SluiceError);
    expect(error).toMatchObject({ code: 'dynamodb_unavailable', retryable: true });
    expect((error as Error).message).toMatch(
      /^Scan of DynamoDB table "app-Forum" \(kv table "Forum"\) failed/,
    );
  });
});

describe('readChanges through DynamoDB Streams', () => {
  /** A NEW_AND_OLD_IMAGES record in the shape of the GetRecords example (API reference). */
  function record(
    sequenceNumber: string,
    eventName: 'INSERT' | 'MODIFY' | 'REMOVE',
    subject: string,
    images: { old?: number; new?: number },
    epochSeconds: number,
  ) {
    const keys = { ForumName: { S: 'DynamoDB' }, Subject: { S: subject } };
    const image = (views: number) => ({ ...keys, Views: { N: String(views) } });
    return {
      awsRegion: 'us-west-2',
      eventID: `event-${sequenceNumber}`,
      eventName,
      eventSource: 'aws:dynamodb',
      eventVersion: '1.1',
      dynamodb: {
        ApproximateCreationDateTime: new Date(epochSeconds * 1000),
        Keys: keys,
        ...(images.old === undefined ? {} : { OldImage: image(images.old) }),
        ...(images.new === undefined ? {} : { NewImage: image(images.new) }),
        SequenceNumber: sequenceNumber,
        SizeBytes: 41,
        StreamViewType: 'NEW_AND_OLD_IMAGES' as const,
      },
    };
  }

  const PARENT = 'shardId-00000001414562045508-2bac9cd2';
  const CHILD = 'shardId-00000001414576573621-f55eea83';

  async function streamedTable() {
    dynamo.on(DescribeTableCommand).resolves(forumTable(true));
    // Listed child first, over two pages: the adapter orders by lineage.
    streams
      .on(DescribeStreamCommand, { StreamArn: STREAM_ARN })
      .resolves({
        StreamDescription: {
          StreamArn: STREAM_ARN,
          StreamStatus: 'ENABLED',
          StreamViewType: 'NEW_AND_OLD_IMAGES',
          Shards: [
            {
              ShardId: CHILD,
              ParentShardId: PARENT,
              SequenceNumberRange: { StartingSequenceNumber: '400000000000000499660' },
            },
          ],
          LastEvaluatedShardId: CHILD,
        },
      })
      .on(DescribeStreamCommand, { StreamArn: STREAM_ARN, ExclusiveStartShardId: CHILD })
      .resolves({
        StreamDescription: {
          Shards: [
            {
              ShardId: PARENT,
              SequenceNumberRange: {
                StartingSequenceNumber: '300000000000000499659',
                EndingSequenceNumber: '300000000000000499670',
              },
            },
          ],
        },
      });
    return newStore().table('Forum', forumSchema);
  }

  it('reads every shard from TRIM_HORIZON, parents first, with unmarshalled keys and images', async () => {
    const table = await streamedTable();
    streams
      .on(GetShardIteratorCommand, { ShardId: PARENT })
      .resolves({ ShardIterator: 'parent-1' })
      .on(GetShardIteratorCommand, { ShardId: CHILD })
      .resolves({ ShardIterator: 'child-1' });
    streams
      .on(GetRecordsCommand, { ShardIterator: 'parent-1' })
      .resolves({
        Records: [record('300000000000000499659', 'INSERT', 'Thread 1', { new: 1 }, 1464806460)],
        NextShardIterator: 'parent-2',
      })
      .on(GetRecordsCommand, { ShardIterator: 'parent-2' })
      .resolves({
        Records: [record('300000000000000499661', 'MODIFY', 'Thread 1', { old: 1, new: 2 }, 1464806461)],
      })
      .on(GetRecordsCommand, { ShardIterator: 'child-1' })
      .resolves({
        Records: [record('400000000000000499660', 'REMOVE', 'Thread 1', { old: 2 }, 1464806470)],
        NextShardIterator: 'child-2',
      })
      .on(GetRecordsCommand, { ShardIterator: 'child-2' })
      .resolves({ Records: [], NextShardIterator: 'child-2' });

    const { records, next } = await table.readChanges({ type: 'TRIM_HORIZON' });
    expect(records).toEqual([
      {
        sequenceNumber: '300000000000000499659',
        eventName: 'INSERT',
        keys: { ForumName: 'DynamoDB', Subject: 'Thread 1' },
        newImage: { ForumName: 'DynamoDB', Subject: 'Thread 1', Views: 1 },
        approximateCreationDateTime: '2016-06-01T18:41:00.000Z',
      },
      {
        sequenceNumber: '300000000000000499661',
        eventName: 'MODIFY',
        keys: { ForumName: 'DynamoDB', Subject: 'Thread 1' },
        oldImage: { ForumName: 'DynamoDB', Subject: 'Thread 1', Views: 1 },
        newImage: { ForumName: 'DynamoDB', Subject: 'Thread 1', Views: 2 },
        approximateCreationDateTime: '2016-06-01T18:41:01.000Z',
      },
      {
        sequenceNumber: '400000000000000499660',
        eventName: 'REMOVE',
        keys: { ForumName: 'DynamoDB', Subject: 'Thread 1' },
        oldImage: { ForumName: 'DynamoDB', Subject: 'Thread 1', Views: 2 },
        approximateCreationDateTime: '2016-06-01T18:41:10.000Z',
      },
    ]);
    expect(next).toEqual({ type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: '400000000000000499660' });
    expect(streams.commandCalls(DescribeStreamCommand).map((c) => c.args[0].input)).toEqual([
      { StreamArn: STREAM_ARN },
      { StreamArn: STREAM_ARN, ExclusiveStartShardId: CHILD },
    ]);
    expect(streams.commandCalls(GetShardIteratorCommand).map((c) => c.args[0].input)).toEqual([
      { StreamArn: STREAM_ARN, ShardId: PARENT, ShardIteratorType: 'TRIM_HORIZON' },
      { StreamArn: STREAM_ARN, ShardId: CHILD, ShardIteratorType: 'TRIM_HORIZON' },
    ]);
    // The open child shard is read until three empty answers in a row.
    expect(streams.commandCalls(GetRecordsCommand).map((c) => c.args[0].input)).toEqual([
      { ShardIterator: 'parent-1', Limit: 1000 },
      { ShardIterator: 'parent-2', Limit: 999 },
      { ShardIterator: 'child-1', Limit: 1000 },
      { ShardIterator: 'child-2', Limit: 999 },
      { ShardIterator: 'child-2', Limit: 999 },
      { ShardIterator: 'child-2', Limit: 999 },
    ]);
  });

  it('continues AFTER_SEQUENCE_NUMBER: skips finished shards, limits, and keeps the position when idle', async () => {
    const table = await streamedTable();
    streams.on(GetShardIteratorCommand).resolves({ ShardIterator: 'child-after' });
    streams.on(GetRecordsCommand, { ShardIterator: 'child-after' }).resolves({
      Records: [
        record('400000000000000499661', 'INSERT', 'Thread 2', { new: 1 }, 1464806480),
        record('400000000000000499662', 'INSERT', 'Thread 3', { new: 1 }, 1464806481),
      ],
      NextShardIterator: 'child-next',
    });
    const position = { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: '400000000000000499660' } as const;
    const page = await table.readChanges(position, { limit: 2 });
    expect(page.records.map((r) => r.keys.Subject)).toEqual(['Thread 2', 'Thread 3']);
    expect(page.next).toEqual({ type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: '400000000000000499662' });
    // The parent ended before the position: not read at all.
    expect(streams.commandCalls(GetShardIteratorCommand).map((c) => c.args[0].input)).toEqual([
      {
        StreamArn: STREAM_ARN,
        ShardId: CHILD,
        ShardIteratorType: 'AFTER_SEQUENCE_NUMBER',
        SequenceNumber: '400000000000000499660',
      },
    ]);
    expect(streams.commandCalls(GetRecordsCommand).map((c) => c.args[0].input)).toEqual([
      { ShardIterator: 'child-after', Limit: 2 },
    ]);

    streams
      .on(GetRecordsCommand, { ShardIterator: 'child-after' })
      .resolves({ Records: [], NextShardIterator: 'child-after' });
    expect(await table.readChanges(position)).toEqual({ records: [], next: position });
  });

  it('resolves LATEST to the newest sequence number of the open shard', async () => {
    const table = await streamedTable();
    streams.on(GetShardIteratorCommand).resolves({ ShardIterator: 'child-1' });
    streams
      .on(GetRecordsCommand, { ShardIterator: 'child-1' })
      .resolves({
        Records: [record('400000000000000499660', 'INSERT', 'Thread 9', { new: 1 }, 1464806470)],
        NextShardIterator: 'child-2',
      })
      .on(GetRecordsCommand, { ShardIterator: 'child-2' })
      .resolves({
        Records: [record('400000000000000499675', 'MODIFY', 'Thread 9', { old: 1, new: 2 }, 1464806471)],
        NextShardIterator: 'tip',
      })
      .on(GetRecordsCommand, { ShardIterator: 'tip' })
      .resolves({ Records: [], NextShardIterator: 'tip' });
    expect(await table.readChanges({ type: 'LATEST' })).toEqual({
      records: [],
      next: { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: '400000000000000499675' },
    });
    expect(streams.commandCalls(GetShardIteratorCommand).map((c) => c.args[0].input)).toEqual([
      { StreamArn: STREAM_ARN, ShardId: CHILD, ShardIteratorType: 'TRIM_HORIZON' },
    ]);
  });

  it('LATEST on an empty open shard resolves to just before its first sequence number', async () => {
    const table = await streamedTable();
    streams.on(GetShardIteratorCommand).resolves({ ShardIterator: 'empty' });
    streams.on(GetRecordsCommand).resolves({ Records: [], NextShardIterator: 'empty' });
    expect((await table.readChanges({ type: 'LATEST' })).next).toEqual({
      type: 'AFTER_SEQUENCE_NUMBER',
      sequenceNumber: '400000000000000499659',
    });
  });

  it('maps TrimmedDataAccessException to stream_trimmed, and needs a stream and a streams client', async () => {
    const table = await streamedTable();
    streams
      .on(GetShardIteratorCommand)
      .rejects(new TrimmedDataAccessException({ message: 'trimmed', $metadata: {} }));
    const error = await table
      .readChanges({ type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: '400000000000000499661' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SluiceError);
    expect(error).toMatchObject({ code: 'stream_trimmed' });
    expect((error as Error).message).toContain('"Forum"');

    await expect(table.readChanges({ type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: 'x1' })).rejects.toThrow(
      /invalid sequence number/,
    );
    const withoutClient = new DynamoDbKvStore(new DynamoDBClient({ region: 'us-west-2' }), {
      tablePrefix: 'app-',
    });
    const noClient = await withoutClient.table('Forum', forumSchema);
    await expect(noClient.readChanges({ type: 'LATEST' })).rejects.toThrow(/DynamoDBStreamsClient/);
    dynamo.on(DescribeTableCommand).resolves(forumTable(false));
    const plain = await newStore().table('Forum', forumSchema);
    await expect(plain.readChanges({ type: 'TRIM_HORIZON' })).rejects.toThrow(/has no change stream/);
  });
});
