/**
 * The Lambda entry points against documented event JSON (test/fixtures/aws-events/), with the aws
 * backend on emulators (s3rver for S3, dynalite for DynamoDB) and Step Functions mocked with
 * aws-sdk-client-mock (no emulator exists for it): every StartExecution request is asserted against
 * the API reference's shape (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html).
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  DescribeExecutionCommand,
  SFNClient,
  StartExecutionCommand,
  type StartExecutionCommandInput,
} from '@aws-sdk/client-sfn';
import type { DynamoDBStreamEvent, KinesisStreamEvent, S3Event } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { pipelineModules } from '../../../pipelines/index.ts';
import { type DynaliteServer, startDynalite } from '../../../test/helpers/dynalite.ts';
import { type KinesaliteServer, startKinesalite } from '../../../test/helpers/kinesalite.ts';
import { ManualClock } from '../../../test/helpers/manual-clock.ts';
import { type RunningS3rver, startS3rver } from '../../../test/helpers/s3rver.ts';
import { ROOT } from '../../../test/helpers/samples.ts';
import {
  createAwsBackend,
  createAwsNotifier,
  createAwsWorkflowRunner,
} from '../../backends/aws/aws-backend.ts';
import { type AwsBackendConfig, awsConfigFromEnv } from '../../backends/aws/config.ts';
import { SourceUnavailableError, StepError } from '../../core/errors.ts';
import type { FunctionHandler } from '../../core/function.ts';
import { silentLogger } from '../../core/logger.ts';
import type { PipelineDefinition, PipelineModule } from '../../core/pipeline.ts';
import type { Backend } from '../../core/ports/backend.ts';
import type { JsonValue } from '../../core/ports/kv-table.ts';
import { fromAttributeValue, handleDynamoDbStreamEvent, tableName } from './dynamodb-stream.ts';
import { handleKinesisEvent, streamName } from './kinesis.ts';
import { dynamodbStreamHandler, kinesisHandler, s3Handler, scheduleHandler, taskHandler } from './lambda.ts';
import { type AwsRuntime, createAwsRuntime, type LambdaContext, resetAwsRuntime } from './runtime.ts';
import { handleS3Event, TriggerStartError } from './s3-notification.ts';
import { handleScheduleEvent } from './schedule.ts';
import { runTask } from './task.ts';

const FIXTURES = path.join(ROOT, 'test/fixtures/aws-events');
const fixture = <T>(name: string): T => JSON.parse(readFileSync(path.join(FIXTURES, name), 'utf8')) as T;

const ARN_PREFIX = 'arn:aws:states:us-east-1:123456789012:stateMachine:';
/** The deployed environment of a function, as the CDK stack sets it (awsConfigToEnv). */
const BASE_ENV = {
  AWS_REGION: 'us-east-1',
  SLUICE_BACKEND: 'aws',
  SLUICE_BUCKET_LANDING: 'sluice-test-landing',
  SLUICE_BUCKET_STAGING: 'sluice-test-staging',
  SLUICE_BUCKET_ANALYTICAL: 'sluice-test-analytical',
  SLUICE_BUCKET_QUARANTINE: 'sluice-test-quarantine',
  SLUICE_TABLE_PREFIX: 'rt-',
  SLUICE_STATE_MACHINE_ARN_PREFIX: ARN_PREFIX,
};

const lambdaContext = (remainingMs = 300_000): LambdaContext => ({
  functionName: 'sluice-tolls-stack-TollsGenerate-AbC123',
  awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
  getRemainingTimeInMillis: () => remainingMs,
});

let s3: RunningS3rver;
let dynalite: DynaliteServer;
let kinesalite: KinesaliteServer;
let backend: Backend;
let config: AwsBackendConfig;
const clock = new ManualClock(new Date('2024-06-10T19:26:30.000Z'));
const sfn = mockClient(SFNClient);

beforeAll(async () => {
  [s3, dynalite, kinesalite] = await Promise.all([startS3rver(), startDynalite(), startKinesalite()]);
  config = {
    ...awsConfigFromEnv({ ...BASE_ENV, SLUICE_STREAM_PREFIX: 'rt-' }),
    endpoints: { s3: s3.endpoint, dynamodb: dynalite.endpoint, kinesis: kinesalite.endpoint },
  };
  backend = await createAwsBackend(config, { clock, createResources: true, logger: silentLogger });
}, 60_000);

afterAll(async () => {
  sfn.restore();
  await backend?.close();
  await Promise.all([s3?.stop(), dynalite?.stop(), kinesalite?.stop()]);
});

beforeEach(() => {
  sfn.reset();
  sfn.on(StartExecutionCommand).callsFake((input: StartExecutionCommandInput) => ({
    executionArn: `${input.stateMachineArn?.replace(':stateMachine:', ':execution:')}:${input.name ?? 'generated'}`,
    startDate: new Date('2024-06-10T19:26:31.000Z'),
  }));
  sfn.on(DescribeExecutionCommand).resolves({
    status: 'RUNNING',
    startDate: new Date('2024-06-10T19:26:31.000Z'),
  } as never);
});

/** A runtime of `pipeline`, as a deployed function builds it, on the emulators and the mocked Step Functions. */
function runtimeOf(
  pipeline: string,
  fn?: string,
  modules: Readonly<Record<string, PipelineModule>> = pipelineModules,
): Promise<AwsRuntime> {
  return createAwsRuntime({
    env: { ...BASE_ENV, SLUICE_PIPELINE: pipeline, ...(fn ? { SLUICE_FUNCTION: fn } : {}) },
    needsFunction: fn !== undefined,
    modules,
    backend,
    clock,
    logger: silentLogger,
  });
}

function startRequests(): StartExecutionCommandInput[] {
  return sfn.commandCalls(StartExecutionCommand).map((call) => call.args[0].input);
}

describe('s3Handler: S3 event notification -> trigger -> StartExecution', () => {
  const event = fixture<S3Event>('s3-object-created.json');

  it('starts tolls-load with the S3 event of the landed object, once; a redelivery starts nothing', async () => {
    const runtime = await runtimeOf('tolls');
    const result = await handleS3Event(runtime, event);

    const requests = startRequests();
    expect(requests).toHaveLength(1);
    const request = requests[0] as StartExecutionCommandInput;
    // StartExecution (API_StartExecution): the workflow's state machine, a unique name of at most
    // 80 [A-Za-z0-9-] (kind, UTC stamp of the clock, 8 hex), and as input `{ Records: [record] }`
    // with the record exactly as S3 delivered it, plus the runner's `sluice.source` (what started it).
    expect(Object.keys(request).sort()).toEqual(['input', 'name', 'stateMachineArn']);
    expect(request.stateMachineArn).toBe(`${ARN_PREFIX}tolls-load`);
    expect(request.name).toMatch(/^object-created-20240610T192630Z-[0-9a-f]{8}$/);
    expect(JSON.parse(request.input ?? 'null')).toEqual({
      Records: [event.Records[0]],
      sluice: {
        source: {
          kind: 'object-created',
          name: 'tolls-landed',
          detail: 'tolls/sample_data-2024-06-10-19-26.json',
        },
      },
    });
    // A Lambda handler never waits for the execution: nothing polls DescribeExecution.
    expect(sfn.commandCalls(DescribeExecutionCommand)).toEqual([]);
    expect(result.deliveries.map((d) => [d.trigger, d.key, d.etag, d.outcome])).toEqual([
      [
        'tolls-landed',
        'tolls/sample_data-2024-06-10-19-26.json',
        '0123456789abcdef0123456789abcdef',
        'started',
      ],
    ]);
    expect(result.deliveries[0]?.executionId).toMatch(
      /^arn:aws:states:us-east-1:123456789012:execution:tolls-load:/,
    );

    // S3 delivers at least once: the same event again starts nothing.
    const again = await handleS3Event(await runtimeOf('tolls'), structuredClone(event));
    expect(again.deliveries.map((d) => d.outcome)).toEqual(['duplicate']);
    expect(startRequests()).toHaveLength(1);
  });

  it('starts nothing for a key no trigger matches, and ignores a bucket that is no layer', async () => {
    const runtime = await runtimeOf('tolls');
    const other = structuredClone(event);
    const record = other.Records[0] as S3Event['Records'][number];
    record.s3.object.key = 'tolls/sample_data-2024-06-10-19-26.csv';
    const wrongPrefix = structuredClone(event);
    (wrongPrefix.Records[0] as S3Event['Records'][number]).s3.object.key = 'quotes/2024-06-10.json';
    const staging = structuredClone(event);
    (staging.Records[0] as S3Event['Records'][number]).s3.bucket.name = 'sluice-test-staging';
    const foreign = structuredClone(event);
    (foreign.Records[0] as S3Event['Records'][number]).s3.bucket.name = 'somebody-elses-bucket';

    for (const e of [other, wrongPrefix, staging]) {
      expect((await handleS3Event(runtime, e)).deliveries).toEqual([]);
    }
    const ignored = await handleS3Event(runtime, foreign);
    expect(ignored).toEqual({
      deliveries: [],
      ignored: [{ bucket: 'somebody-elses-bucket', key: 'tolls/sample_data-2024-06-10-19-26.json' }],
    });
    expect(startRequests()).toEqual([]);
  });

  it('decodes URL-encoded keys (+ is a space) before matching and deduplicating', async () => {
    const runtime = await runtimeOf('tolls');
    const encoded = structuredClone(event);
    const record = encoded.Records[0] as S3Event['Records'][number];
    record.s3.object.key = 'tolls/late+file%28copy%29.ndjson';
    record.s3.object.eTag = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
    const result = await handleS3Event(runtime, encoded);
    expect(result.deliveries.map((d) => [d.trigger, d.key, d.outcome])).toEqual([
      ['tolls-landed-ndjson', 'tolls/late file(copy).ndjson', 'started'],
    ]);
    expect(JSON.parse(startRequests()[0]?.input ?? 'null').Records[0].s3.object.key).toBe(
      'tolls/late+file%28copy%29.ndjson',
    );
  });

  it('a throttled StartExecution is retried by the runner: one execution, no polling', async () => {
    const runtime = await runtimeOf('tolls');
    const throttled = structuredClone(event);
    (throttled.Records[0] as S3Event['Records'][number]).s3.object.eTag = 'cccccccccccccccccccccccccccccccc';
    sfn
      .on(StartExecutionCommand)
      .rejectsOnce(
        Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $fault: 'client' }),
      )
      .callsFake((input: StartExecutionCommandInput) => ({
        executionArn: `${input.stateMachineArn?.replace(':stateMachine:', ':execution:')}:${input.name}`,
        startDate: new Date(),
      }));
    const result = await handleS3Event(runtime, throttled);
    expect(result.deliveries.map((d) => d.outcome)).toEqual(['started']);
    expect(startRequests()).toHaveLength(2);
    expect(sfn.commandCalls(DescribeExecutionCommand)).toEqual([]);
  });

  it('a failed StartExecution throws (Lambda retries the event); the retry starts it, once', async () => {
    const runtime = await runtimeOf('tolls');
    const failing = structuredClone(event);
    (failing.Records[0] as S3Event['Records'][number]).s3.object.eTag = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
    // Not transient (e.g. the role lacks states:StartExecution until the stack is fixed).
    sfn.on(StartExecutionCommand).rejects(
      Object.assign(new Error('not authorized to perform: states:StartExecution'), {
        name: 'AccessDeniedException',
        $fault: 'client',
      }),
    );
    await expect(handleS3Event(runtime, failing)).rejects.toThrow(TriggerStartError);
    // Lambda's retry of the event: the delivery is recorded `failed`, so it is started again (and fails again).
    await expect(handleS3Event(runtime, failing)).rejects.toThrow(
      /trigger tolls-landed on tolls\/sample_data-2024-06-10-19-26.json \(eTag b{32}\): not authorized/,
    );
    expect(startRequests()).toHaveLength(2);

    sfn.on(StartExecutionCommand).callsFake((input: StartExecutionCommandInput) => ({
      executionArn: `${input.stateMachineArn?.replace(':stateMachine:', ':execution:')}:${input.name}`,
      startDate: new Date(),
    }));
    const retried = await handleS3Event(runtime, failing);
    expect(retried.deliveries.map((d) => d.outcome)).toEqual(['restarted']);
    expect(startRequests()).toHaveLength(3);
    const afterRetry = (await handleS3Event(runtime, failing)).deliveries.map((d) => d.outcome);
    expect(afterRetry).toEqual(['duplicate']);
    expect(startRequests()).toHaveLength(3);
  });
});

describe('taskHandler: Step Functions Lambda task -> pipeline function', () => {
  it('runs tolls-generate with the task input and returns its result; the object is in S3', async () => {
    const runtime = await runtimeOf('tolls', 'tolls-generate');
    const input = fixture<JsonValue>('step-functions-task-input.json');
    const result = (await runTask(runtime, input, lambdaContext())) as {
      key: string;
      transactions: number;
      bytes: number;
    };
    // The key of a file generated at 2024-06-10T19:26:30Z (pipelines/tolls README: sample_data-YYYY-mm-dd-HH-MM.json).
    expect(result.key).toBe('tolls/sample_data-2024-06-10-19-26.json');
    expect(result.transactions).toBe(5);

    const client: S3Client = s3.client();
    try {
      const object = await client.send(
        new GetObjectCommand({
          Bucket: 'sluice-test-landing',
          Key: 'tolls/sample_data-2024-06-10-19-26.json',
        }),
      );
      const body = await object.Body?.transformToString('utf8');
      expect(Buffer.byteLength(body ?? '', 'utf8')).toBe(result.bytes);
      const lines = (body ?? '').trimEnd().split('\n');
      expect(lines).toHaveLength(5);
      for (const line of lines) expect(Object.keys(JSON.parse(line))).toContain('transaction_id');
    } finally {
      client.destroy();
    }
  });

  it('a failing function throws its error unchanged: the name is the ASL error name', async () => {
    const runtime = await runtimeOf('tolls', 'tolls-load');
    const failure = await runTask(runtime, { nope: true }, lambdaContext()).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(TypeError);
    expect((failure as Error).name).toBe('TypeError');
    expect((failure as Error).message).toMatch(/tolls-load expects \{"files"/);

    // A sluice error wrapped at a step boundary keeps its cause's name (StepError), as Retry matches it.
    const demo = demoModule({
      'demo-sink': async () => {
        throw new StepError(
          { pipeline: 'demo', step: 'fetch', runId: 'r1' },
          new SourceUnavailableError('the source answered 503'),
        );
      },
    });
    const wrapped = await runTask(await runtimeOf('demo', 'demo-sink', demo), {}, lambdaContext()).catch(
      (e: unknown) => e,
    );
    expect((wrapped as Error).name).toBe('SourceUnavailableError');
  });

  it('reads the pipeline configuration from the config table before each invocation', async () => {
    const seen: JsonValue[] = [];
    const demo: Record<string, PipelineModule> = {
      demo: {
        definition: { ...demoDefinition, config: { threshold: { description: 't', default: 3 } } },
        handlers: ({ config }) => ({
          'demo-sink': async () => {
            seen.push(config.get('threshold') ?? null);
            return null;
          },
        }),
      },
    };
    const runtime = await runtimeOf('demo', 'demo-sink', demo);
    await runTask(runtime, {}, lambdaContext());
    const table = await backend.kv.table('config', {
      hashKey: { name: 'pipeline', type: 'S' },
      rangeKey: { name: 'key', type: 'S' },
    });
    await table.put({ pipeline: 'demo', key: 'threshold', value: 7, updated_at: '2024-06-10T19:27:00.000Z' });
    await runTask(runtime, {}, lambdaContext());
    expect(seen).toEqual([3, 7]);
  });
});

describe('scheduleHandler: EventBridge Scheduler target input -> StartExecution', () => {
  it('starts the schedule workflow with the definition input plus scheduledTime', async () => {
    const runtime = await runtimeOf('nba');
    const result = await handleScheduleEvent(runtime, fixture('scheduler-target-input.json'));
    const requests = startRequests();
    expect(requests).toHaveLength(1);
    expect(requests[0]?.stateMachineArn).toBe(`${ARN_PREFIX}nba-tampering`);
    expect(requests[0]?.name).toMatch(/^schedule-20240610T192630Z-[0-9a-f]{8}$/);
    expect(JSON.parse(requests[0]?.input ?? 'null')).toEqual({
      scheduledTime: '2024-06-10T19:26:00.000Z',
      sluice: {
        source: { kind: 'schedule', name: 'nba-tampering-every-minute', detail: '2024-06-10T19:26:00.000Z' },
      },
    });
    expect(result).toMatchObject({
      schedule: 'nba-tampering-every-minute',
      workflow: 'nba-tampering',
      scheduledTime: '2024-06-10T19:26:00.000Z',
    });
  });

  it('refuses a schedule the pipeline does not have, or a workflow that is not the schedule one', async () => {
    const runtime = await runtimeOf('nba');
    await expect(handleScheduleEvent(runtime, { schedule: 'nope' })).rejects.toThrow(
      /schedule "nope" is not a schedule of pipeline nba \(its schedules: nba-tampering-every-minute, nba-collect-every-minute\)/,
    );
    await expect(
      handleScheduleEvent(runtime, { schedule: 'nba-tampering-every-minute', workflow: 'nba-collect' }),
    ).rejects.toThrow(/starts workflow nba-tampering, but its input names nba-collect/);
    expect(startRequests()).toEqual([]);
  });
});

describe('kinesisHandler / dynamodbStreamHandler: partial batch failures', () => {
  const kinesis = fixture<KinesisStreamEvent>('kinesis-batch.json');
  const changes = fixture<DynamoDBStreamEvent>('dynamodb-stream-batch.json');
  const [seq1, seq2] = kinesis.Records.map((r) => r.kinesis.sequenceNumber) as [string, string];

  it('hands the decoded records to the function and reports the record it failed', async () => {
    const received: JsonValue[] = [];
    const demo = demoModule({
      'demo-sink': async (event) => {
        received.push(event);
        const records = (event as { records: { sequenceNumber: string; data: string }[] }).records;
        return {
          batchItemFailures: records
            .filter((r) => r.data.includes('only'))
            .map((r) => ({ itemIdentifier: r.sequenceNumber })),
        };
      },
    });
    const runtime = await runtimeOf('demo', 'demo-sink', demo);
    expect(await handleKinesisEvent(runtime, kinesis, lambdaContext())).toEqual({
      batchItemFailures: [{ itemIdentifier: seq2 }],
    });
    // base64 "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==" is "Hello, this is a test."; 1545084650.987 s is 2018-12-17T22:10:50.987Z.
    expect(received[0]).toEqual({
      source: 'aws:kinesis',
      stream: 'lambda-stream',
      shardId: 'shardId-000000000006',
      records: [
        {
          sequenceNumber: seq1,
          partitionKey: '1',
          data: 'Hello, this is a test.',
          dataBase64: 'SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==',
          approximateArrivalTimestamp: '2018-12-17T22:10:50.987Z',
        },
        {
          sequenceNumber: seq2,
          partitionKey: '1',
          data: 'This is only a test.',
          dataBase64: 'VGhpcyBpcyBvbmx5IGEgdGVzdC4=',
          approximateArrivalTimestamp: '2018-12-17T22:11:51.166Z',
        },
      ],
    });
  });

  it('reports the lowest failed sequence number; a throw fails the batch from its first record; success reports none', async () => {
    let mode: 'both' | 'throw' | 'ok' = 'both';
    const demo = demoModule({
      'demo-sink': async () => {
        if (mode === 'throw') throw new Error('sink unavailable');
        if (mode === 'ok') return { drained: 2 };
        // Unordered and with an identifier from another batch, which is ignored.
        return {
          batchItemFailures: [{ itemIdentifier: seq2 }, { itemIdentifier: seq1 }, { itemIdentifier: '1' }],
        };
      },
    });
    const runtime = await runtimeOf('demo', 'demo-sink', demo);
    expect(await handleKinesisEvent(runtime, kinesis, lambdaContext())).toEqual({
      batchItemFailures: [{ itemIdentifier: seq1 }],
    });
    mode = 'throw';
    expect(await handleKinesisEvent(runtime, kinesis, lambdaContext())).toEqual({
      batchItemFailures: [{ itemIdentifier: seq1 }],
    });
    mode = 'ok';
    expect(await handleKinesisEvent(runtime, kinesis, lambdaContext())).toEqual({ batchItemFailures: [] });
  });

  it('turns DynamoDB stream records into ChangeRecords and reports the failed one', async () => {
    const received: JsonValue[] = [];
    const demo = demoModule({
      'demo-sink': async (event) => {
        received.push(event);
        const records = (event as { records: { sequenceNumber: string; eventName: string }[] }).records;
        return {
          batchItemFailures: records
            .filter((r) => r.eventName !== 'INSERT')
            .map((r) => ({ itemIdentifier: r.sequenceNumber })),
        };
      },
    });
    const runtime = await runtimeOf('demo', 'demo-sink', demo);
    expect(await handleDynamoDbStreamEvent(runtime, changes, lambdaContext())).toEqual({
      batchItemFailures: [{ itemIdentifier: '222' }],
    });
    // 1693997155 s since the epoch is 2023-09-06T10:45:55Z.
    const at = '2023-09-06T10:45:55.000Z';
    expect(received[0]).toEqual({
      source: 'aws:dynamodb',
      table: 'my-ddb-table',
      records: [
        {
          sequenceNumber: '111',
          eventName: 'INSERT',
          keys: { Id: 101 },
          newImage: { Message: 'New item!', Id: 101 },
          approximateCreationDateTime: at,
        },
        {
          sequenceNumber: '222',
          eventName: 'MODIFY',
          keys: { Id: 101 },
          oldImage: { Message: 'New item!', Id: 101 },
          newImage: { Message: 'This item has changed', Id: 101 },
          approximateCreationDateTime: at,
        },
        {
          sequenceNumber: '333',
          eventName: 'REMOVE',
          keys: { Id: 101 },
          oldImage: { Message: 'This item has changed', Id: 101 },
          approximateCreationDateTime: at,
        },
      ],
    });
  });
});

describe('event field conversions', () => {
  it('unmarshalls every DynamoDB attribute type of a stream image (API_AttributeValue)', () => {
    expect(
      fromAttributeValue({
        M: {
          s: { S: 'x' },
          n: { N: '-1.5e3' },
          b: { BOOL: false },
          z: { NULL: true },
          l: { L: [{ N: '1' }, { S: 'two' }, { M: { deep: { SS: ['a', 'b'] } } }] },
          ns: { NS: ['1', '2.5'] },
          bin: { B: 'aGk=' },
          bs: { BS: ['aGk=', 'eW8='] },
        },
      }),
    ).toEqual({
      s: 'x',
      n: -1500,
      b: false,
      z: null,
      l: [1, 'two', { deep: ['a', 'b'] }],
      ns: [1, 2.5],
      bin: 'aGk=',
      bs: ['aGk=', 'eW8='],
    });
  });

  it('takes sluice names out of stream and table ARNs, without the backend prefixes', () => {
    expect(streamName('arn:aws:kinesis:us-east-2:111122223333:stream/sluice-nba-tweets', 'sluice-nba-')).toBe(
      'tweets',
    );
    expect(streamName('arn:aws:kinesis:us-east-2:111122223333:stream/other', 'sluice-nba-')).toBe('other');
    expect(
      tableName(
        'arn:aws:dynamodb:us-east-2:123456789012:table/sluice-tolls-config/stream/2024-06-10T19:26:16.525',
        'sluice-tolls-',
      ),
    ).toBe('config');
  });
});

describe('entry points: environment', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    resetAwsRuntime();
  });

  const unset = (...names: string[]) => {
    for (const name of names) vi.stubEnv(name, '');
  };
  const ALL = [
    'SLUICE_PIPELINE',
    'SLUICE_FUNCTION',
    'AWS_REGION',
    'AWS_DEFAULT_REGION',
    'SLUICE_BUCKET_LANDING',
    'SLUICE_BUCKET_STAGING',
    'SLUICE_BUCKET_ANALYTICAL',
    'SLUICE_BUCKET_QUARANTINE',
  ];

  it('a task/stream handler without its environment names every missing variable', async () => {
    unset(...ALL);
    for (const call of [
      () => taskHandler({}, lambdaContext()),
      () => kinesisHandler({ Records: [] }, lambdaContext()),
      () => dynamodbStreamHandler({ Records: [] }, lambdaContext()),
    ]) {
      const error = (await call().catch((e: unknown) => e)) as Error;
      expect(error.name).toBe('UsageError');
      for (const name of [
        'SLUICE_PIPELINE',
        'SLUICE_FUNCTION',
        'AWS_REGION',
        'SLUICE_BUCKET_LANDING',
        'SLUICE_BUCKET_STAGING',
        'SLUICE_BUCKET_ANALYTICAL',
        'SLUICE_BUCKET_QUARANTINE',
      ]) {
        expect(error.message).toContain(name);
      }
    }
  });

  it('the S3 and schedule handlers need no SLUICE_FUNCTION; an unknown pipeline or function is named', async () => {
    unset(...ALL);
    vi.stubEnv('SLUICE_BUCKET_LANDING', 'l');
    vi.stubEnv('SLUICE_BUCKET_STAGING', 's');
    vi.stubEnv('SLUICE_BUCKET_ANALYTICAL', 'a');
    vi.stubEnv('SLUICE_BUCKET_QUARANTINE', 'q');
    for (const call of [() => s3Handler({ Records: [] }), () => scheduleHandler({ schedule: 'x' })]) {
      const error = (await call().catch((e: unknown) => e)) as Error;
      expect(error.message).toMatch(/environment variables: SLUICE_PIPELINE;/);
      expect(error.message).toContain('AWS_REGION');
      expect(error.message).not.toContain('SLUICE_FUNCTION');
    }
    await expect(
      createAwsRuntime({ env: { ...BASE_ENV, SLUICE_PIPELINE: 'nope' }, needsFunction: false, backend }),
    ).rejects.toThrow(
      /SLUICE_PIPELINE=nope is not a pipeline of this bundle \(known: gharchive, hashtags, tolls/,
    );
    await expect(
      createAwsRuntime({
        env: { ...BASE_ENV, SLUICE_PIPELINE: 'tolls', SLUICE_FUNCTION: 'tolls-nope' },
        needsFunction: true,
        backend,
      }),
    ).rejects.toThrow(
      /SLUICE_FUNCTION=tolls-nope is not a function of pipeline tolls \(its functions: tolls-generate, /,
    );
  });
});

describe('createAwsBackend: the composition root', () => {
  it('wires S3, DynamoDB and Kinesis (HTTP/1.1 for kinesalite) adapters with the config prefixes', async () => {
    expect(backend.name).toBe('aws');
    expect(backend.isAlive({ id: 'x', host: 'h', pid: 1 })).toBeUndefined();

    const info = await backend.objectStore.put({ layer: 'staging', key: 'composition/a.txt' }, 'hello');
    expect(info.size).toBe(5);
    const client = s3.client();
    try {
      const object = await client.send(
        new GetObjectCommand({ Bucket: 'sluice-test-staging', Key: 'composition/a.txt' }),
      );
      expect(await object.Body?.transformToString('utf8')).toBe('hello');
    } finally {
      client.destroy();
    }

    await backend.stream.createStream('composition', { shardCount: 1 });
    expect(await backend.stream.listStreams()).toContain('composition');
    await backend.stream.putRecord('composition', {
      partitionKey: 'k',
      data: new TextEncoder().encode('r1'),
    });
    const shard = (await backend.stream.describeStream('composition')).shards[0]?.shardId ?? '';
    const iterator = await backend.stream.getShardIterator('composition', shard, { type: 'TRIM_HORIZON' });
    const read = await backend.stream.getRecords(iterator);
    expect(read.records.map((r) => new TextDecoder().decode(r.data))).toEqual(['r1']);
  });

  it('openWarehouse and the workflow runner name the variables they miss; no topic alerts go to the log', async () => {
    await expect(backend.openWarehouse()).rejects.toThrow(
      /no warehouse configured: set SLUICE_REDSHIFT_WORKGROUP \(and SLUICE_REDSHIFT_DATABASE, SLUICE_REDSHIFT_COPY_ROLE_ARN\)/,
    );
    const { stateMachineArnPrefix: _prefix, ...withoutPrefix } = config;
    await expect(createAwsWorkflowRunner(withoutPrefix, [])).rejects.toThrow(
      /SLUICE_STATE_MACHINE_ARN_PREFIX/,
    );
    const warnings: unknown[] = [];
    const notifier = await createAwsNotifier(config, {
      logger: { ...silentLogger, warn: (fields) => warnings.push(fields) },
    });
    const alert = {
      severity: 'error' as const,
      title: 'tolls-load failed',
      pipeline: 'tolls',
      at: '2024-06-10T19:26:30.000Z',
    };
    expect(await notifier.notify(alert)).toEqual({ delivered: ['log'], failed: [] });
    expect(warnings).toEqual([{ alert }]);
  });
});

const demoDefinition: PipelineDefinition = {
  name: 'demo',
  description: 'a pipeline of one function, for the adapters',
  source: { name: 'demo', kind: 'stream', description: 'records pushed by the event source' },
  steps: [],
  datasets: [],
  functions: [{ name: 'demo-sink', description: 'receives batches', timeoutSeconds: 60 }],
};

function demoModule(handlers: Record<string, FunctionHandler>): Record<string, PipelineModule> {
  return { demo: { definition: demoDefinition, handlers: () => handlers } };
}
