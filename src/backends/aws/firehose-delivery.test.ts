process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

import { Readable } from 'node:stream';
import {
  FirehoseClient,
  PutRecordBatchCommand,
  ResourceNotFoundException,
  ServiceUnavailableException,
} from '@aws-sdk/client-firehose';
import type { FirehoseTransformationEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { NotFoundError, SluiceError } from '../../core/errors.ts';
import type { DeliveryTransform } from '../../engines/delivery/delivery-stream.ts';
import {
  FirehoseDeliveryClient,
  FirehoseDeliveryError,
  type FirehoseDeliveryOptions,
  firehoseTransformHandler,
} from './firehose-delivery.ts';

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

describe('firehoseTransformHandler (data-transformation Lambda event and response shapes)', () => {
  it('transforms the documented example event ("Hello World") into an Ok record with a trailing newline', async () => {
    // The example event of https://docs.aws.amazon.com/lambda/latest/dg/services-kinesisfirehose.html
    const event: FirehoseTransformationEvent = {
      invocationId: 'invocationIdExample',
      deliveryStreamArn: 'arn:aws:kinesis:EXAMPLE',
      region: 'us-east-1',
      records: [
        {
          recordId: '49546986683135544286507457936321625675700192471156785154',
          approximateArrivalTimestamp: 1495072949453,
          data: 'SGVsbG8gV29ybGQ=',
        },
      ],
    };
    const seen: { data: string; arrivalMs: number }[] = [];
    const handler = firehoseTransformHandler((data, meta) => {
      seen.push({ data, arrivalMs: meta.arrivalMs });
      return { result: 'Ok', data: data.toUpperCase() };
    });
    expect(await handler(event)).toEqual({
      records: [
        {
          recordId: '49546986683135544286507457936321625675700192471156785154',
          result: 'Ok',
          data: 'SEVMTE8gV09STEQK', // "HELLO WORLD\n"
        },
      ],
    });
    expect(seen).toEqual([{ data: 'Hello World', arrivalMs: 1495072949453 }]);
  });

  it('returns Ok with partition keys, Dropped and ProcessingFailed per record, in order', async () => {
    const transform: DeliveryTransform = (data) => {
      if (data === 'drop') return { result: 'Dropped' };
      if (data === 'bad') return { result: 'ProcessingFailed', reason: 'not JSON' };
      if (data === 'throw') throw new Error('boom');
      if (data === 'multi') return { result: 'Ok', data: 'a\nb', partitionKeys: { day: '03' } };
      if (data === 'nokey') return { result: 'Ok', data: '{}', partitionKeys: { month: '03' } };
      if (data === 'slash') return { result: 'Ok', data: '{"id":"2"}', partitionKeys: { day: 'a/b' } };
      const value = JSON.parse(data) as { id: string; day: string };
      return { result: 'Ok', data: JSON.stringify(value), partitionKeys: { day: value.day } };
    };
    const failures: [string, string][] = [];
    const handler = firehoseTransformHandler(transform, {
      partitionKeys: ['day'],
      onFailure: (recordId, reason) => failures.push([recordId, reason]),
    });
    const inputs = ['{"id":"1","day":"03"}', 'drop', 'bad', 'throw', 'multi', 'nokey', 'slash'];
    const event: FirehoseTransformationEvent = {
      invocationId: 'inv-1',
      deliveryStreamArn: 'arn:aws:firehose:eu-west-1:123456789012:deliverystream/sluice-nba-tweets',
      region: 'eu-west-1',
      records: inputs.map((data, i) => ({
        recordId: `r${i}`,
        approximateArrivalTimestamp: 1772366400000 + i,
        data: b64(data),
      })),
    };
    const response = await handler(event);
    expect(response).toEqual({
      records: [
        {
          recordId: 'r0',
          result: 'Ok',
          data: 'eyJpZCI6IjEiLCJkYXkiOiIwMyJ9Cg==', // {"id":"1","day":"03"}\n
          metadata: { partitionKeys: { day: '03' } },
        },
        { recordId: 'r1', result: 'Dropped', data: b64('drop') },
        { recordId: 'r2', result: 'ProcessingFailed', data: b64('bad') },
        { recordId: 'r3', result: 'ProcessingFailed', data: b64('throw') },
        { recordId: 'r4', result: 'ProcessingFailed', data: b64('multi') },
        { recordId: 'r5', result: 'ProcessingFailed', data: b64('nokey') },
        {
          recordId: 'r6',
          result: 'Ok',
          data: b64('{"id":"2"}\n'),
          metadata: { partitionKeys: { day: 'a%2Fb' } }, // escaped like a local partition path segment
        },
      ],
    });
    expect(failures).toEqual([
      ['r2', 'not JSON'],
      ['r3', 'transform threw: boom'],
      ['r4', 'the transformed record contains a newline'],
      ['r5', 'partition key "day" missing from the transform\'s output'],
    ]);
  });

  it('leaves data unterminated with lineDelimited: false', async () => {
    const handler = firehoseTransformHandler((data) => ({ result: 'Ok', data }), { lineDelimited: false });
    const response = await handler({
      invocationId: 'i',
      deliveryStreamArn: 'arn',
      region: 'us-east-1',
      records: [{ recordId: 'x', approximateArrivalTimestamp: 0, data: b64('a,b') }],
    });
    expect(response.records).toEqual([{ recordId: 'x', result: 'Ok', data: b64('a,b') }]);
  });
});

describe('FirehoseDeliveryClient (PutRecordBatch requests as the API reference describes them)', () => {
  const mocked = new FirehoseClient({ region: 'eu-west-1' });
  const firehose = mockClient(mocked);
  const sleeps: number[] = [];
  const delivery = (options: Partial<FirehoseDeliveryOptions> = {}) =>
    new FirehoseDeliveryClient(mocked, {
      deliveryStreamName: 'sluice-nba-tweets',
      sleep: async (ms) => {
        sleeps.push(ms);
      },
      ...options,
    });
  const ok = (n: number, from = 0) => ({
    FailedPutCount: 0,
    Encrypted: false,
    RequestResponses: Array.from({ length: n }, (_, i) => ({ RecordId: `id-${from + i}` })),
  });
  const inputs = () => firehose.commandCalls(PutRecordBatchCommand).map((c) => c.args[0].input);

  afterEach(() => {
    firehose.reset();
    sleeps.length = 0;
  });

  it('puts records with one PutRecordBatch and resends only the failed ones with backoff', async () => {
    firehose
      .on(PutRecordBatchCommand)
      .resolvesOnce({
        FailedPutCount: 2,
        Encrypted: false,
        RequestResponses: [
          { RecordId: 'id-a' },
          { ErrorCode: 'ServiceUnavailableException', ErrorMessage: 'Slow down.' },
          { ErrorCode: 'InternalFailure', ErrorMessage: 'Internal failure.' },
        ],
      })
      .resolvesOnce({
        FailedPutCount: 1,
        Encrypted: false,
        RequestResponses: [
          { RecordId: 'id-b' },
          { ErrorCode: 'ServiceUnavailableException', ErrorMessage: 'Slow down.' },
        ],
      })
      .resolvesOnce({ FailedPutCount: 0, Encrypted: false, RequestResponses: [{ RecordId: 'id-c' }] });
    const client = delivery();
    const result = await client.putRecordBatch(['a', Uint8Array.of(0, 255), 'c']);
    expect(inputs()).toEqual([
      {
        DeliveryStreamName: 'sluice-nba-tweets',
        Records: [{ Data: Buffer.from('a') }, { Data: Uint8Array.of(0, 255) }, { Data: Buffer.from('c') }],
      },
      {
        DeliveryStreamName: 'sluice-nba-tweets',
        Records: [{ Data: Uint8Array.of(0, 255) }, { Data: Buffer.from('c') }],
      },
      { DeliveryStreamName: 'sluice-nba-tweets', Records: [{ Data: Buffer.from('c') }] },
    ]);
    expect(sleeps).toEqual([100, 200]);
    expect(result).toEqual({
      failedRecordCount: 0,
      records: [{ recordId: 'id-a' }, { recordId: 'id-b' }, { recordId: 'id-c' }],
    });
    expect(client.stats).toEqual({ received: 3, delivered: 3, failed: 0, requests: 3 });
  });

  it('reports records still failing after the resends', async () => {
    firehose.on(PutRecordBatchCommand).resolves({
      FailedPutCount: 1,
      Encrypted: false,
      RequestResponses: [{ ErrorCode: 'ServiceUnavailableException', ErrorMessage: 'Slow down.' }],
    });
    const result = await delivery({ retries: 2, retryBaseDelayMs: 10 }).putRecordBatch(['x']);
    expect(inputs()).toHaveLength(3);
    expect(sleeps).toEqual([10, 20]);
    expect(result).toEqual({
      failedRecordCount: 1,
      records: [{ errorCode: 'ServiceUnavailableException', errorMessage: 'Slow down.' }],
    });
  });

  it('splits at 500 records and at 4 MiB of data per request', async () => {
    firehose.on(PutRecordBatchCommand).callsFake((input: { Records: unknown[] }) => ok(input.Records.length));
    const client = delivery();
    await client.putRecordBatch(Array.from({ length: 1001 }, (_, i) => `r${i}`));
    expect(inputs().map((i) => i.Records?.length)).toEqual([500, 500, 1]);
    expect(inputs()[1]!.Records?.[0]).toEqual({ Data: Buffer.from('r500') });
    firehose.resetHistory();

    // 1,000 KiB records: four make 4,096,000 bytes (under 4 MiB = 4,194,304), a fifth would not fit.
    const big = Array.from({ length: 9 }, (_, i) => Buffer.alloc(1000 * 1024, i));
    await client.putRecordBatch(big);
    expect(inputs().map((i) => i.Records?.length)).toEqual([4, 4, 1]);
    expect(Buffer.from(inputs()[2]!.Records![0]!.Data!).equals(big[8]!)).toBe(true);
  });

  it('refuses a record over 1,000 KiB before sending anything', async () => {
    await expect(delivery().putRecordBatch(['ok', Buffer.alloc(1000 * 1024 + 1)])).rejects.toThrow(
      /record 1 is 1024001 bytes, over the 1024000-byte \(1,000 KiB\) record limit/,
    );
    expect(firehose.calls()).toHaveLength(0);
  });

  it('buffers put() records, sends full requests, keeps failed records for the next flush', async () => {
    firehose.on(PutRecordBatchCommand).callsFake((input: { Records: unknown[] }) => ok(input.Records.length));
    const client = delivery({ newlineDelimited: true, retries: 0 });
    for (let i = 0; i < 501; i++) await client.put(`{"n":${i}}`);
    expect(inputs().map((i) => i.Records?.length)).toEqual([500]);
    expect(inputs()[0]!.Records?.[0]).toEqual({ Data: Buffer.from('{"n":0}\n') });
    expect(client.buffered).toBe(1);

    firehose.reset();
    firehose.on(PutRecordBatchCommand).resolves({
      FailedPutCount: 1,
      Encrypted: false,
      RequestResponses: [{ ErrorCode: 'InternalFailure', ErrorMessage: 'Internal failure.' }],
    });
    const error = await client.flush().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FirehoseDeliveryError);
    expect(error).toMatchObject({ retryable: true, code: 'delivery_failed' });
    expect((error as FirehoseDeliveryError).failures).toEqual([
      { errorCode: 'InternalFailure', errorMessage: 'Internal failure.' },
    ]);
    expect(client.buffered).toBe(1);

    firehose.reset();
    firehose.on(PutRecordBatchCommand).callsFake((input: { Records: unknown[] }) => ok(input.Records.length));
    await client.close();
    expect(client.buffered).toBe(0);
    expect(inputs().at(-1)).toEqual({
      DeliveryStreamName: 'sluice-nba-tweets',
      Records: [{ Data: Buffer.from('{"n":500}\n') }],
    });
    expect(client.stats).toMatchObject({ received: 501, delivered: 501, failed: 1 });
    await expect(client.put('late')).rejects.toThrow(/closed/);
  });

  it('maps whole-request errors: missing stream to NotFoundError, ServiceUnavailable to retryable', async () => {
    firehose
      .on(PutRecordBatchCommand)
      .rejectsOnce(new ResourceNotFoundException({ message: 'Stream not found', $metadata: {} }))
      .rejectsOnce(
        new ServiceUnavailableException({ message: 'Slow down.', $metadata: { httpStatusCode: 503 } }),
      );
    const missing = await delivery()
      .putRecordBatch(['x'])
      .catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect(missing).toMatchObject({ name: 'ResourceNotFoundException' });
    expect((missing as Error).message).toContain('Firehose stream "sluice-nba-tweets"');
    const busy = await delivery()
      .putRecordBatch(['x'])
      .catch((e: unknown) => e);
    expect(busy).toBeInstanceOf(SluiceError);
    expect(busy).toMatchObject({ name: 'ServiceUnavailableException', retryable: true });
  });
});

describe('FirehoseDeliveryClient on the wire: the SDK sends Data base64-encoded', () => {
  it('serializes PutRecordBatch as the API reference shows it', async () => {
    let body = '';
    let target: string | undefined;
    const client = new FirehoseClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'TEST', secretAccessKey: 'TEST' },
      requestHandler: {
        handle: async (request: { body?: unknown; headers: Record<string, string> }) => {
          body = String(request.body);
          target = request.headers['x-amz-target'];
          const payload = JSON.stringify({
            FailedPutCount: 0,
            Encrypted: false,
            RequestResponses: [{ RecordId: 'id-1' }],
          });
          return {
            response: {
              statusCode: 200,
              headers: { 'content-type': 'application/x-amz-json-1.1' },
              body: Readable.from([Buffer.from(payload)]),
            },
          };
        },
      },
    });
    const delivery = new FirehoseDeliveryClient(client, {
      deliveryStreamName: 'sluice-nba-tweets',
      newlineDelimited: true,
    });
    const result = await delivery.putRecordBatch(['hello']);
    expect(target).toBe('Firehose_20150804.PutRecordBatch');
    expect(JSON.parse(body)).toEqual({
      DeliveryStreamName: 'sluice-nba-tweets',
      Records: [{ Data: 'aGVsbG8K' }], // base64 of "hello\n"
    });
    expect(result).toEqual({ failedRecordCount: 0, records: [{ recordId: 'id-1' }] });
    client.destroy();
  });
});
