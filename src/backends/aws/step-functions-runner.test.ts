// StepFunctionsRunner against aws-sdk-client-mock: no Step Functions emulator exists here, so this is
// not Step Functions. Responses follow the shapes of the Step Functions API reference
// (DescribeExecution, ListExecutions, GetExecutionHistory examples); request inputs are asserted exactly.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

import {
  DescribeExecutionCommand,
  ExecutionDoesNotExist,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  ListExecutionsCommand,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { NotFoundError, SluiceError } from '../../core/errors.ts';
import type { WorkflowDefinition } from '../../core/workflow.ts';
import { executionName, mapHistory, StepFunctionsRunner } from './step-functions-runner.ts';

const prefix = 'arn:aws:states:eu-west-1:123456789012:stateMachine:';
const execArn = (machine: string, name: string) =>
  `arn:aws:states:eu-west-1:123456789012:execution:${machine}:${name}`;

const ingest: WorkflowDefinition = {
  name: 'gharchive-ingest',
  pipeline: 'gharchive',
  description: 'ingest one hour',
  definition: {
    StartAt: 'Download',
    States: {
      Download: {
        Type: 'Task',
        Resource: '${gharchive-download}',
        Retry: [
          { ErrorEquals: ['ValidationError'], MaxAttempts: 0 },
          { ErrorEquals: ['SourceUnavailableError', 'States.Timeout'], MaxAttempts: 3 },
        ],
        Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Quarantine' }],
        Next: 'Done',
      },
      Quarantine: { Type: 'Pass', Next: 'Done' },
      Done: { Type: 'Succeed' },
    },
  },
};
const hourly: WorkflowDefinition = {
  name: 'gharchive-hourly',
  pipeline: 'gharchive',
  description: 'hourly',
  definition: { StartAt: 'P', States: { P: { Type: 'Pass', End: true } } },
  maxConcurrency: 2,
};
const tolls: WorkflowDefinition = {
  name: 'tolls-load',
  pipeline: 'tolls',
  description: 'load',
  definition: { StartAt: 'P', States: { P: { Type: 'Pass', End: true } } },
};

function setup() {
  const client = new SFNClient({
    region: 'eu-west-1',
    credentials: { accessKeyId: 'FAKE', secretAccessKey: 'FAKE' },
  });
  const mock = mockClient(client);
  const runner = new StepFunctionsRunner(client, {
    stateMachineArnPrefix: prefix,
    workflows: [ingest, hourly, tolls],
    pollMs: 1,
  });
  return { client, mock, runner };
}

let restore: (() => void) | undefined;
afterEach(() => {
  restore?.();
  restore = undefined;
});

const t = (s: number) => new Date(Date.UTC(2024, 4, 1, 10, 0, s));

describe('StepFunctionsRunner', () => {
  it('starts an execution (exact StartExecution input), carries the source in the input, and polls until it ends', async () => {
    const { mock, runner } = setup();
    restore = () => mock.restore();
    let arn = '';
    mock.on(StartExecutionCommand).callsFake((input: { name: string }) => {
      arn = execArn('gharchive-ingest', input.name);
      return { executionArn: arn, startDate: t(0) };
    });
    const sent = () => mock.commandCalls(StartExecutionCommand)[0]?.args[0].input;
    let describes = 0;
    mock.on(DescribeExecutionCommand).callsFake(() => {
      describes++;
      const base = {
        executionArn: arn,
        stateMachineArn: `${prefix}gharchive-ingest`,
        name: sent()?.name,
        startDate: t(0),
        input: sent()?.input,
        inputDetails: { included: true },
      };
      return describes < 3
        ? { ...base, status: 'RUNNING' }
        : {
            ...base,
            status: 'SUCCEEDED',
            stopDate: t(5),
            output: '{"files":1}',
            outputDetails: { included: true },
          };
    });
    const source = { kind: 'schedule' as const, name: 'gharchive-hourly', detail: '2024-05-01T10:00:00Z' };
    const handle = await runner.start('gharchive-ingest', { hour: '2015-01-01-0' }, { source });
    expect(sent()).toEqual({
      stateMachineArn: `${prefix}gharchive-ingest`,
      name: expect.stringMatching(/^schedule-\d{8}T\d{6}Z-[0-9a-f]{8}$/),
      input: JSON.stringify({ hour: '2015-01-01-0', sluice: { source } }),
    });
    expect((sent()?.name ?? '').length).toBeLessThanOrEqual(80);
    expect(handle.executionId).toBe(arn);
    const record = await handle.done;
    expect(record).toEqual({
      executionId: arn,
      workflow: 'gharchive-ingest',
      pipeline: 'gharchive',
      status: 'SUCCEEDED',
      input: { hour: '2015-01-01-0' },
      output: { files: 1 },
      source,
      startedAt: '2024-05-01T10:00:00.000Z',
      stoppedAt: '2024-05-01T10:00:05.000Z',
    });
    expect(mock.commandCalls(DescribeExecutionCommand).map((c) => c.args[0].input)).toEqual(
      Array.from({ length: 3 }, () => ({ executionArn: arn })),
    );
  });

  it('describes a failed execution with its failed state; an unknown one is undefined', async () => {
    const { mock, runner } = setup();
    restore = () => mock.restore();
    const arn = execArn('tolls-load', 'manual-20240501T100000Z-00000001');
    mock.on(DescribeExecutionCommand, { executionArn: arn }).resolves({
      executionArn: arn,
      stateMachineArn: `${prefix}tolls-load`,
      name: 'manual-20240501T100000Z-00000001',
      status: 'FAILED',
      startDate: t(0),
      stopDate: t(9),
      input: '[1,2]',
      error: 'WarehouseError',
      cause: 'null value in column "toll_booth"',
    });
    mock.on(GetExecutionHistoryCommand).resolves({
      events: [
        {
          id: 5,
          previousEventId: 4,
          timestamp: t(9),
          type: 'ExecutionFailed',
          executionFailedEventDetails: { error: 'WarehouseError', cause: 'x' },
        },
        { id: 4, previousEventId: 3, timestamp: t(8), type: 'LambdaFunctionFailed' },
        {
          id: 2,
          previousEventId: 0,
          timestamp: t(1),
          type: 'TaskStateEntered',
          stateEnteredEventDetails: { name: 'LoadWarehouse' },
        },
      ],
    });
    mock
      .on(DescribeExecutionCommand, {
        executionArn: 'arn:aws:states:eu-west-1:123456789012:execution:tolls-load:nope',
      })
      .rejects(new ExecutionDoesNotExist({ message: 'Execution Does Not Exist', $metadata: {} }));
    expect(await runner.describe(arn)).toEqual({
      executionId: arn,
      workflow: 'tolls-load',
      pipeline: 'tolls',
      status: 'FAILED',
      input: [1, 2],
      error: 'WarehouseError',
      cause: 'null value in column "toll_booth"',
      failedState: 'LoadWarehouse',
      startedAt: '2024-05-01T10:00:00.000Z',
      stoppedAt: '2024-05-01T10:00:09.000Z',
    });
    expect(mock.commandCalls(GetExecutionHistoryCommand)[0]?.args[0].input).toEqual({
      executionArn: arn,
      reverseOrder: true,
      maxResults: 100,
      includeExecutionData: false,
    });
    expect(
      await runner.describe('arn:aws:states:eu-west-1:123456789012:execution:tolls-load:nope'),
    ).toBeUndefined();
  });

  it('maps a paginated GetExecutionHistory (Lambda task retried, then caught) to the ASL event vocabulary', async () => {
    const { mock, runner } = setup();
    restore = () => mock.restore();
    const arn = execArn('gharchive-ingest', 'x');
    const resource = 'arn:aws:lambda:eu-west-1:123456789012:function:gharchive-download';
    // As in the API reference's GetExecutionHistory example: ids, previousEventId chains, *EventDetails.
    const events: HistoryEvent[] = [
      {
        id: 1,
        previousEventId: 0,
        timestamp: t(0),
        type: 'ExecutionStarted',
        executionStartedEventDetails: {
          input: '{"hour":"h"}',
          roleArn: 'arn:aws:iam::123456789012:role/sfn',
        },
      },
      {
        id: 2,
        previousEventId: 0,
        timestamp: t(0),
        type: 'TaskStateEntered',
        stateEnteredEventDetails: { name: 'Download', input: '{"hour":"h"}' },
      },
      {
        id: 3,
        previousEventId: 2,
        timestamp: t(0),
        type: 'LambdaFunctionScheduled',
        lambdaFunctionScheduledEventDetails: { resource, input: '{"hour":"h"}' },
      },
      { id: 4, previousEventId: 3, timestamp: t(0), type: 'LambdaFunctionStarted' },
      {
        id: 5,
        previousEventId: 4,
        timestamp: t(1),
        type: 'LambdaFunctionFailed',
        lambdaFunctionFailedEventDetails: { error: 'SourceUnavailableError', cause: '503 after 6 attempts' },
      },
      {
        id: 6,
        previousEventId: 5,
        timestamp: t(2),
        type: 'LambdaFunctionScheduled',
        lambdaFunctionScheduledEventDetails: { resource },
      },
      { id: 7, previousEventId: 6, timestamp: t(2), type: 'LambdaFunctionStarted' },
      {
        id: 8,
        previousEventId: 7,
        timestamp: t(3),
        type: 'LambdaFunctionFailed',
        lambdaFunctionFailedEventDetails: { error: 'ValidationError', cause: 'bad gzip' },
      },
      {
        id: 9,
        previousEventId: 8,
        timestamp: t(3),
        type: 'TaskStateExited',
        stateExitedEventDetails: { name: 'Download', output: '{"Error":"ValidationError"}' },
      },
      {
        id: 10,
        previousEventId: 9,
        timestamp: t(3),
        type: 'PassStateEntered',
        stateEnteredEventDetails: { name: 'Quarantine', input: '{}' },
      },
      {
        id: 11,
        previousEventId: 10,
        timestamp: t(3),
        type: 'PassStateExited',
        stateExitedEventDetails: { name: 'Quarantine', output: '{}' },
      },
      {
        id: 12,
        previousEventId: 11,
        timestamp: t(4),
        type: 'ExecutionSucceeded',
        executionSucceededEventDetails: { output: '{}' },
      },
    ];
    mock
      .on(GetExecutionHistoryCommand)
      .resolvesOnce({ events: events.slice(0, 6), nextToken: 'page-2' })
      .resolvesOnce({ events: events.slice(6) });
    const history = await runner.history(arn);
    expect(mock.commandCalls(GetExecutionHistoryCommand).map((c) => c.args[0].input)).toEqual([
      { executionArn: arn, maxResults: 1000, includeExecutionData: true },
      { executionArn: arn, maxResults: 1000, includeExecutionData: true, nextToken: 'page-2' },
    ]);
    const ts = (s: number) => t(s).toISOString();
    expect(history).toEqual([
      { seq: 1, type: 'ExecutionStarted', timestamp: ts(0), input: { hour: 'h' } },
      {
        seq: 2,
        type: 'StateEntered',
        timestamp: ts(0),
        state: 'Download',
        stateType: 'Task',
        input: { hour: 'h' },
      },
      {
        seq: 3,
        type: 'StateFailed',
        timestamp: ts(1),
        state: 'Download',
        stateType: 'Task',
        error: 'SourceUnavailableError',
        cause: '503 after 6 attempts',
      },
      {
        seq: 4,
        type: 'StateRetried',
        timestamp: ts(2),
        state: 'Download',
        stateType: 'Task',
        retry: { errorEquals: ['SourceUnavailableError', 'States.Timeout'], attempt: 1 },
      },
      {
        seq: 5,
        type: 'StateFailed',
        timestamp: ts(3),
        state: 'Download',
        stateType: 'Task',
        error: 'ValidationError',
        cause: 'bad gzip',
      },
      {
        seq: 6,
        type: 'StateCaught',
        timestamp: ts(3),
        state: 'Download',
        stateType: 'Task',
        error: 'ValidationError',
        cause: 'bad gzip',
      },
      {
        seq: 7,
        type: 'StateExited',
        timestamp: ts(3),
        state: 'Download',
        stateType: 'Task',
        output: { Error: 'ValidationError' },
      },
      { seq: 8, type: 'StateEntered', timestamp: ts(3), state: 'Quarantine', stateType: 'Pass', input: {} },
      { seq: 9, type: 'StateExited', timestamp: ts(3), state: 'Quarantine', stateType: 'Pass', output: {} },
      { seq: 10, type: 'ExecutionSucceeded', timestamp: ts(4), output: {} },
    ]);
  });

  it('maps Map iterations and execution time-outs', () => {
    const mapped = mapHistory([
      {
        id: 1,
        timestamp: t(0),
        type: 'MapIterationStarted',
        mapIterationStartedEventDetails: { name: 'EachHour', index: 2 },
      },
      {
        id: 2,
        timestamp: t(1),
        type: 'ExecutionTimedOut',
        executionTimedOutEventDetails: { error: 'States.Timeout', cause: 'late' },
      },
    ]);
    expect(mapped).toEqual([
      {
        seq: 1,
        type: 'MapIterationStarted',
        timestamp: t(0).toISOString(),
        parent: { state: 'EachHour', index: 2 },
      },
      {
        seq: 2,
        type: 'ExecutionTimeout',
        timestamp: t(1).toISOString(),
        error: 'States.Timeout',
        cause: 'late',
      },
    ]);
  });

  it('lists executions of the matching state machines newest first (exact ListExecutions inputs)', async () => {
    const { mock, runner } = setup();
    restore = () => mock.restore();
    const item = (machine: string, name: string, s: number) => ({
      executionArn: execArn(machine, name),
      stateMachineArn: `${prefix}${machine}`,
      name,
      status: 'FAILED' as const,
      startDate: t(s),
      stopDate: t(s + 1),
    });
    mock
      .on(ListExecutionsCommand, { stateMachineArn: `${prefix}gharchive-ingest` })
      .resolvesOnce({ executions: [item('gharchive-ingest', 'a', 30)], nextToken: 'n2' })
      .resolvesOnce({ executions: [item('gharchive-ingest', 'b', 10)] });
    mock
      .on(ListExecutionsCommand, { stateMachineArn: `${prefix}gharchive-hourly` })
      .resolves({ executions: [item('gharchive-hourly', 'c', 20)] });
    mock.on(DescribeExecutionCommand).callsFake((input: { executionArn: string }) => {
      const [machine, name] = input.executionArn.split(':').slice(6);
      const s = { a: 30, b: 10, c: 20 }[name as 'a' | 'b' | 'c'];
      return { ...item(machine ?? '', name ?? '', s), input: `{"n":"${name}"}`, error: 'E', cause: 'C' };
    });
    const records = await runner.list({ pipeline: 'gharchive', status: 'FAILED', limit: 2 });
    expect(records.map((r) => [r.workflow, r.input, r.status, r.startedAt])).toEqual([
      ['gharchive-ingest', { n: 'a' }, 'FAILED', t(30).toISOString()],
      ['gharchive-hourly', { n: 'c' }, 'FAILED', t(20).toISOString()],
    ]);
    expect(mock.commandCalls(ListExecutionsCommand).map((c) => c.args[0].input)).toEqual([
      { stateMachineArn: `${prefix}gharchive-ingest`, statusFilter: 'FAILED', maxResults: 2 },
      {
        stateMachineArn: `${prefix}gharchive-ingest`,
        statusFilter: 'FAILED',
        maxResults: 2,
        nextToken: 'n2',
      },
      { stateMachineArn: `${prefix}gharchive-hourly`, statusFilter: 'FAILED', maxResults: 2 },
    ]);
  });

  it('refuses unknown workflows; shutdown stops polling (done resolves RUNNING) and refuses later starts', async () => {
    const { mock, runner } = setup();
    restore = () => mock.restore();
    await expect(runner.start('nope', {})).rejects.toBeInstanceOf(NotFoundError);
    const arn = execArn('tolls-load', 'n');
    mock.on(StartExecutionCommand).resolves({ executionArn: arn, startDate: t(0) });
    mock
      .on(DescribeExecutionCommand)
      .resolves({ executionArn: arn, status: 'RUNNING', startDate: t(0), input: '7' });
    const handle = await runner.start('tolls-load', 7);
    expect(mock.commandCalls(StartExecutionCommand)[0]?.args[0].input).toMatchObject({ input: '7' });
    await runner.shutdown(20);
    expect(await handle.done).toMatchObject({
      executionId: arn,
      status: 'RUNNING',
      input: 7,
      workflow: 'tolls-load',
    });
    const error = await runner.start('tolls-load', {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SluiceError);
    expect((error as SluiceError).code).toBe('shutting_down');
  });

  it('makes unique execution names within the API limits', () => {
    const at = new Date('2024-05-01T10:00:00.123Z');
    const names = new Set(Array.from({ length: 50 }, () => executionName('object-created', at)));
    expect(names.size).toBe(50);
    for (const name of names) expect(name).toMatch(/^object-created-20240501T100000Z-[0-9a-f]{8}$/);
  });
});
