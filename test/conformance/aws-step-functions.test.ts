// The workflow runner conformance suite against the aws backend's StepFunctionsRunner over a FAKE
// Step Functions (test/helpers/fake-step-functions.ts): no Step Functions emulator exists here, so this
// is NOT Step Functions. The fake runs each execution's ASL in-process with aws-local-stepfunctions and
// answers StartExecution, DescribeExecution, ListExecutions and GetExecutionHistory in the shapes of the
// Step Functions API reference (LambdaFunction* history events, previousEventId chains, small pages).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  SFNClient,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { mapHistory, StepFunctionsRunner } from '../../src/backends/aws/step-functions-runner.ts';
import type { WorkflowDefinition } from '../../src/core/workflow.ts';
import { installFakeStepFunctions } from '../helpers/fake-step-functions.ts';
import { CONFORMANCE_WORKFLOWS, workflowRunnerConformance } from './workflow-runner.case.ts';

workflowRunnerConformance(
  'aws (StepFunctionsRunner, fake Step Functions)',
  async ({ workflows, functions, clock }) => {
    const client = new SFNClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'FAKE', secretAccessKey: 'FAKE' },
    });
    const fake = installFakeStepFunctions(client, {
      stateMachines: workflows.map((w) => ({ name: w.name, definition: w.definition })),
      functions,
      now: () => clock.now(),
    });
    const runner = new StepFunctionsRunner(client, {
      stateMachineArnPrefix: fake.stateMachineArnPrefix,
      workflows,
      pollMs: 1,
      clock,
    });
    return {
      runner,
      close: async () => {
        await runner.shutdown(0);
        fake.restore();
      },
    };
  },
  {
    skip: {
      maxConcurrency:
        'Step Functions has no per-state-machine concurrency limit; StepFunctionsRunner.start never waits (the deployment bounds concurrency)',
      abortOnShutdown:
        'executions run in Step Functions, not in this process: StepFunctionsRunner.shutdown stops polling and does not stop them',
    },
  },
);

// Focused tests of the StepFunctionsRunner fixes the suite exposed, on hand-written histories in the
// GetExecutionHistory shapes of the API reference (API_HistoryEvent), independent of the fake.
describe('StepFunctionsRunner history mapping (fixes found by the conformance suite)', () => {
  const t = (ms: number) => new Date(Date.UTC(2024, 4, 1, 10, 0, 0, ms));
  const resource = 'arn:aws:lambda:eu-west-1:123456789012:function:conf-flaky';
  const failure = (id: number, previousEventId: number): HistoryEvent => ({
    id,
    previousEventId,
    timestamp: t(id),
    type: 'LambdaFunctionFailed',
    lambdaFunctionFailedEventDetails: { error: 'SourceUnavailableError', cause: '{"errorMessage":"503"}' },
  });
  const scheduled = (id: number, previousEventId: number): HistoryEvent => ({
    id,
    previousEventId,
    timestamp: t(id),
    type: 'LambdaFunctionScheduled',
    lambdaFunctionScheduledEventDetails: { resource },
  });
  const entered = (id: number, previousEventId: number, type: string, name: string): HistoryEvent => ({
    id,
    previousEventId,
    timestamp: t(id),
    type: type as HistoryEvent['type'],
    stateEnteredEventDetails: { name },
  });
  const exited = (id: number, previousEventId: number, type: string, name: string): HistoryEvent => ({
    id,
    previousEventId,
    timestamp: t(id),
    type: type as HistoryEvent['type'],
    stateExitedEventDetails: { name, output: '"ok"' },
  });
  const started = (id: number, previousEventId: number): HistoryEvent => ({
    id,
    previousEventId,
    timestamp: t(id),
    type: 'LambdaFunctionStarted',
  });
  const succeeded = (id: number, previousEventId: number): HistoryEvent => ({
    id,
    previousEventId,
    timestamp: t(id),
    type: 'LambdaFunctionSucceeded',
    lambdaFunctionSucceededEventDetails: { output: '"ok"' },
  });
  const mapRetry: WorkflowDefinition['definition'] = {
    StartAt: 'EachKey',
    States: {
      EachKey: {
        Type: 'Map',
        ItemProcessor: {
          StartAt: 'Attempt',
          States: {
            Attempt: {
              Type: 'Task',
              Resource: '${conf-flaky}',
              Retry: [{ ErrorEquals: ['SourceUnavailableError'], MaxAttempts: 2 }],
              End: true,
            },
          },
        },
        End: true,
      },
    },
  };

  it('counts retries per state entry: concurrent Map iterations of one Task each retry from attempt 1', () => {
    // Iteration 0 fails, then iteration 1 is scheduled for the first time (not a retry), then both
    // fail and retry once, interleaved as concurrent iterations are.
    const events: HistoryEvent[] = [
      entered(1, 0, 'MapStateEntered', 'EachKey'),
      {
        id: 2,
        previousEventId: 1,
        timestamp: t(2),
        type: 'MapStateStarted',
        mapStateStartedEventDetails: { length: 2 },
      },
      entered(3, 2, 'TaskStateEntered', 'Attempt'),
      entered(4, 2, 'TaskStateEntered', 'Attempt'),
      scheduled(5, 3),
      started(6, 5),
      failure(7, 6),
      scheduled(8, 4),
      started(9, 8),
      failure(10, 9),
      scheduled(11, 7),
      scheduled(12, 10),
      started(13, 11),
      started(14, 12),
      succeeded(15, 13),
      succeeded(16, 14),
      exited(17, 15, 'TaskStateExited', 'Attempt'),
      exited(18, 16, 'TaskStateExited', 'Attempt'),
    ];
    const mapped = mapHistory(events, mapRetry);
    expect(mapped.map((e) => `${e.type}:${e.state}`)).toEqual([
      'StateEntered:EachKey',
      'StateEntered:Attempt',
      'StateEntered:Attempt',
      'StateFailed:Attempt',
      'StateFailed:Attempt',
      'StateRetried:Attempt',
      'StateRetried:Attempt',
      'StateExited:Attempt',
      'StateExited:Attempt',
    ]);
    expect(mapped.filter((e) => e.type === 'StateRetried').map((e) => e.retry)).toEqual([
      { errorEquals: ['SourceUnavailableError'], attempt: 1 },
      { errorEquals: ['SourceUnavailableError'], attempt: 1 },
    ]);
  });

  it('adds the StateFailed of a Fail state (FailStateEntered then ExecutionFailed), as the local runner records it', () => {
    const mapped = mapHistory([
      {
        id: 1,
        previousEventId: 0,
        timestamp: t(1),
        type: 'ExecutionStarted',
        executionStartedEventDetails: { input: '{}' },
      },
      entered(2, 0, 'FailStateEntered', 'GiveUp'),
      {
        id: 3,
        previousEventId: 2,
        timestamp: t(3),
        type: 'ExecutionFailed',
        executionFailedEventDetails: { error: 'NoDataError', cause: 'the hour had no events' },
      },
    ]);
    expect(mapped.slice(1)).toEqual([
      { seq: 2, type: 'StateEntered', timestamp: t(2).toISOString(), state: 'GiveUp', stateType: 'Fail' },
      {
        seq: 3,
        type: 'StateFailed',
        timestamp: t(3).toISOString(),
        state: 'GiveUp',
        stateType: 'Fail',
        error: 'NoDataError',
        cause: 'the hour had no events',
      },
      {
        seq: 4,
        type: 'ExecutionFailed',
        timestamp: t(3).toISOString(),
        error: 'NoDataError',
        cause: 'the hour had no events',
      },
    ]);
  });

  it('shows the ExecutionStarted input without the source the runner carried in it', () => {
    const input = JSON.stringify({ n: 3, sluice: { source: { kind: 'schedule', name: 'conf-hourly' } } });
    const [first] = mapHistory([
      {
        id: 1,
        previousEventId: 0,
        timestamp: t(1),
        type: 'ExecutionStarted',
        executionStartedEventDetails: { input },
      },
    ]);
    expect(first).toEqual({
      seq: 1,
      type: 'ExecutionStarted',
      timestamp: t(1).toISOString(),
      input: { n: 3 },
    });
  });

  it('describe reads further reverse-order history pages until it finds the failed state', async () => {
    const client = new SFNClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'FAKE', secretAccessKey: 'FAKE' },
    });
    const mock = mockClient(client);
    const arn = 'arn:aws:states:eu-west-1:123456789012:execution:conf-retry:x';
    mock.on(DescribeExecutionCommand).resolves({
      executionArn: arn,
      stateMachineArn: 'arn:aws:states:eu-west-1:123456789012:stateMachine:conf-retry',
      status: 'FAILED',
      startDate: t(0),
      stopDate: t(9),
      input: '{}',
      error: 'SourceUnavailableError',
      cause: '503',
    });
    mock
      .on(GetExecutionHistoryCommand)
      .resolvesOnce({
        events: [
          { id: 9, previousEventId: 8, timestamp: t(9), type: 'ExecutionFailed' },
          failure(8, 7),
          started(7, 6),
        ],
        nextToken: 'page-2',
      })
      .resolvesOnce({
        events: [
          scheduled(6, 5),
          failure(5, 4),
          started(4, 3),
          scheduled(3, 2),
          entered(2, 0, 'TaskStateEntered', 'Fetch'),
        ],
      });
    const runner = new StepFunctionsRunner(client, {
      stateMachineArnPrefix: 'arn:aws:states:eu-west-1:123456789012:stateMachine:',
      workflows: CONFORMANCE_WORKFLOWS,
    });
    expect(await runner.describe(arn)).toMatchObject({ status: 'FAILED', failedState: 'Fetch' });
    expect(mock.commandCalls(GetExecutionHistoryCommand).map((c) => c.args[0].input)).toEqual([
      { executionArn: arn, reverseOrder: true, maxResults: 100, includeExecutionData: false },
      {
        executionArn: arn,
        reverseOrder: true,
        maxResults: 100,
        includeExecutionData: false,
        nextToken: 'page-2',
      },
    ]);
    mock.restore();
  });
});
