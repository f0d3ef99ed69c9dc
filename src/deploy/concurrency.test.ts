process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

import {
  ConditionalCheckFailedException,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
  type UpdateItemCommandInput,
} from '@aws-sdk/client-dynamodb';
import { GetExecutionHistoryCommand, type HistoryEvent, SFNClient } from '@aws-sdk/client-sfn';
import aslValidator from 'asl-validator';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipelines } from '../../pipelines/index.ts';
import { type SlotTable, startSlotTable } from '../../test/helpers/slot-table.ts';
import {
  mapHistory,
  StepFunctionsRunner,
  WRAPPER_STATE_PREFIX,
} from '../backends/aws/step-functions-runner.ts';
import type { JsonValue } from '../core/ports/kv-table.ts';
import type { AslDefinition } from '../core/workflow.ts';
import { ensurePromiseWithResolvers } from '../engines/asl/promise-with-resolvers.ts';
import {
  ACQUIRE_BACKOFF,
  acquireAttempts,
  CONDITION_FAILED_ERROR,
  NO_SLOT_ERROR,
  SEMAPHORE_STATE_PREFIX,
  SEMAPHORE_STATES,
  wrapWithSemaphore,
} from './concurrency.ts';

// Node 20 lacks `Promise.withResolvers`, which aws-local-stepfunctions calls (TOOLCHAIN.md).
ensurePromiseWithResolvers();

const bounded = Object.values(pipelines).flatMap((p) =>
  (p.workflows ?? []).filter((w) => w.maxConcurrency !== undefined),
);

describe('wrapWithSemaphore: the definition', () => {
  it('covers the shipped bounded workflows (gharchive, hashtags, quotes, nba: 1; tolls: 2)', () => {
    expect(Object.fromEntries(bounded.map((w) => [w.name, w.maxConcurrency]))).toEqual({
      'gharchive-ingest': 1,
      'hashtags-kinesis-landing': 1,
      'hashtags-landing-analytical': 1,
      'tolls-load': 2,
      'quotes-transform': 1,
      'nba-tampering': 1,
      'nba-collect': 1,
    });
  });

  for (const workflow of bounded) {
    it(`${workflow.name}: validates (asl-validator) and runs the original ASL verbatim as its only branch`, () => {
      const wrapped = wrapWithSemaphore(workflow.definition, {
        workflow: workflow.name,
        maxConcurrency: workflow.maxConcurrency ?? 1,
        table: '${SluiceSlotsTable}',
      });
      const result = aslValidator(wrapped as never);
      expect(result.errors).toEqual([]);
      expect(result.isValid).toBe(true);
      const run = wrapped.States[SEMAPHORE_STATES.run];
      expect(run?.Type).toBe('Parallel');
      expect(run?.Branches).toHaveLength(1);
      // The branch is the workflow's states verbatim, without the machine-only TimeoutSeconds.
      const { TimeoutSeconds: _timeout, ...branch } = workflow.definition as typeof workflow.definition & {
        Version?: string;
      };
      expect(run?.Branches?.[0]).toStrictEqual(branch);
      expect(run?.Branches?.[0]).not.toHaveProperty('TimeoutSeconds');
      expect(run?.OutputPath).toBe('$[0]');
      // Every wrapper state is hidden by the runner's naming convention, and none of the pipeline's is.
      for (const name of Object.keys(wrapped.States))
        expect(name.startsWith(WRAPPER_STATE_PREFIX)).toBe(true);
      expect(JSON.stringify(workflow.definition)).not.toContain(`"${WRAPPER_STATE_PREFIX}`);
      // Waits for a slot as long as the original may run (its TimeoutSeconds), then fails clearly.
      const acquire = wrapped.States[SEMAPHORE_STATES.acquire] as unknown as {
        Retry: { ErrorEquals: string[]; MaxAttempts: number; MaxDelaySeconds: number }[];
      };
      expect(acquire.Retry[0]?.ErrorEquals).toEqual([CONDITION_FAILED_ERROR]);
      expect(acquire.Retry[0]?.MaxAttempts).toBe(acquireAttempts(workflow.definition.TimeoutSeconds ?? 0));
      expect(wrapped.TimeoutSeconds).toBe(2 * (workflow.definition.TimeoutSeconds ?? 0) + 300);
    });
  }

  it('the acquire backoff: expected waits (full jitter: half the capped delay) add up to the wait asked', () => {
    expect(SEMAPHORE_STATE_PREFIX).toBe(WRAPPER_STATE_PREFIX);
    expect(ACQUIRE_BACKOFF).toEqual({ intervalSeconds: 5, backoffRate: 1.5, maxDelaySeconds: 60 });
    // Delays 5, 7.5, 11.25, 16.875, 25.3125, 37.97, 56.95, then 60: halves sum to 80.4 s after 7 retries.
    expect(acquireAttempts(80)).toBe(7);
    expect(acquireAttempts(81)).toBe(8);
    // Beyond 80.4 s each retry adds 30 s on average: 600 s -> 7 + ceil(519.6 / 30) = 25.
    expect(acquireAttempts(600)).toBe(25);
    expect(acquireAttempts(3600)).toBe(125);
    expect(acquireAttempts(86400)).toBe(2885);
  });

  it('rejects a maxConcurrency that is not a positive integer', () => {
    const definition: AslDefinition = { StartAt: 'A', States: { A: { Type: 'Pass', End: true } } };
    expect(() => wrapWithSemaphore(definition, { workflow: 'w', maxConcurrency: 0, table: 't' })).toThrow(
      /maxConcurrency must be an integer >= 1, got 0/,
    );
  });
});

// ---- real runs: the wrapped ASL by aws-local-stepfunctions, its DynamoDB tasks against dynalite

const TABLE = 'sluice-test-sluice_workflow_slots';
let slots: SlotTable;
let ddb: SlotTable['ddb'];

beforeAll(async () => {
  slots = await startSlotTable(TABLE);
  ({ ddb } = slots);
});

afterAll(() => slots?.close());

/**
 * `arn:aws:states:::dynamodb:updateItem` run locally: the state's effective parameters (the
 * UpdateItem request, DynamoDB JSON as Step Functions passes it) sent to dynalite. A DynamoDB
 * error becomes the error Step Functions raises: its name prefixed with `DynamoDB.`
 * (https://docs.aws.amazon.com/step-functions/latest/dg/connect-ddb.html).
 */
async function updateItem(parameters: JsonValue): Promise<JsonValue> {
  try {
    const output = await ddb.send(new UpdateItemCommand(parameters as unknown as UpdateItemCommandInput));
    return { Attributes: (output.Attributes ?? {}) as unknown as JsonValue };
  } catch (error) {
    const name = (error as Error).name;
    const mapped = new Error((error as Error).message);
    mapped.name =
      error instanceof ConditionalCheckFailedException ? CONDITION_FAILED_ERROR : `DynamoDB.${name}`;
    throw mapped;
  }
}

/** The workflow every run test wraps: one Task `Work`, whose implementation each test gives. */
const INNER: AslDefinition = {
  Comment: 'one task',
  StartAt: 'Work',
  TimeoutSeconds: 60,
  States: {
    Work: { Type: 'Task', Resource: '${test-work}', ResultPath: '$.result', End: true },
  },
};

type Work = (input: JsonValue) => Promise<JsonValue>;

interface RunOutcome {
  status: 'SUCCEEDED' | 'FAILED';
  output?: JsonValue;
  error?: string;
  cause?: string;
}

let executionSeq = 0;

/** One execution of `definition` (the wrapper's tasks on dynalite, `Work` by `work`), as its outcome. */
async function run(definition: AslDefinition, input: JsonValue, work: Work): Promise<RunOutcome> {
  const { StateMachine } = await import('aws-local-stepfunctions');
  const machine = new StateMachine(definition as never);
  const id = `arn:aws:states:us-east-1:123456789012:execution:test-work:run-${++executionSeq}`;
  const s = SEMAPHORE_STATES;
  const execution = machine.run(
    input as never,
    {
      overrides: {
        taskResourceLocalHandlers: {
          Work: work,
          [s.acquire]: updateItem,
          [s.release]: updateItem,
          [s.releaseAfterFailure]: updateItem,
        },
        // Retry waits of 20 ms instead of 5 s x 1.5^n (the test's Work takes 300 ms): with
        // maxWaitSeconds 3600 the acquire may retry 125 times, 2.5 s here.
        retryIntervalOverrides: { [s.acquire]: 20, [s.release]: 20, [s.releaseAfterFailure]: 20 },
      },
      context: { Execution: { Id: id, StartTime: new Date().toISOString() } },
    } as never,
  ) as unknown as { result: Promise<JsonValue> };
  try {
    return { status: 'SUCCEEDED', output: await execution.result };
  } catch (error) {
    const inner = (error as Error).cause as { name?: string; message?: string } | undefined;
    return {
      status: 'FAILED',
      error: inner?.name ?? (error as Error).name,
      cause: inner?.message ?? (error as Error).message,
    };
  }
}

async function slotItem(workflow: string): Promise<Record<string, unknown> | undefined> {
  const out = await ddb.send(
    new GetItemCommand({ TableName: TABLE, Key: { workflow: { S: workflow } }, ConsistentRead: true }),
  );
  return out.Item as Record<string, unknown> | undefined;
}

/** A `Work` taking `ms` that records when it ran; returns a value computed from its input. */
function timedWork(ms: number, intervals: [number, number][]): Work {
  return async (input) => {
    const enter = performance.now();
    await new Promise((r) => setTimeout(r, ms));
    intervals.push([enter, performance.now()]);
    return { doubled: ((input as { n: number }).n ?? 0) * 2 };
  };
}

/** Most intervals open at once (a sweep over enter/exit times; an exit before an enter at the same time). */
function maxOverlap(intervals: readonly [number, number][]): number {
  const points = intervals.flatMap(([a, b]) => [
    [a, 1],
    [b, -1],
  ]);
  points.sort((x, y) => (x[0] as number) - (y[0] as number) || (x[1] as number) - (y[1] as number));
  let open = 0;
  let most = 0;
  for (const [, d] of points) {
    open += d as number;
    most = Math.max(most, open);
  }
  return most;
}

describe('wrapWithSemaphore: real runs (aws-local-stepfunctions, DynamoDB on dynalite)', () => {
  it('maxConcurrency 1: three executions started at once never overlap, all succeed with the unwrapped outputs', async () => {
    const workflow = 'test-one';
    const wrapped = wrapWithSemaphore(INNER, {
      workflow,
      maxConcurrency: 1,
      table: TABLE,
      maxWaitSeconds: 3600,
    });
    const intervals: [number, number][] = [];
    const inputs = [1, 2, 3].map((n) => ({ n, sluice: { source: { kind: 'manual' } } }));
    const outcomes = await Promise.all(inputs.map((input) => run(wrapped, input, timedWork(300, intervals))));
    const bare = await Promise.all(inputs.map((input) => run(INNER, input, timedWork(1, []))));
    expect(outcomes).toEqual(bare);
    expect(outcomes.map((o) => o.output)).toEqual(
      inputs.map((input) => ({ ...input, result: { doubled: input.n * 2 } })),
    );
    expect(intervals).toHaveLength(3);
    expect(maxOverlap(intervals)).toBe(1);
    const sorted = [...intervals].sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < sorted.length; i++)
      expect(sorted[i]?.[0]).toBeGreaterThanOrEqual(sorted[i - 1]?.[1] as number);
    // All slots given back: the counter is 0 and no holder attribute is left.
    expect(await slotItem(workflow)).toEqual({ workflow: { S: workflow }, running: { N: '0' } });
  });

  it('maxConcurrency 2: of four executions at most two run at once, and two do', async () => {
    const workflow = 'test-two';
    const wrapped = wrapWithSemaphore(INNER, {
      workflow,
      maxConcurrency: 2,
      table: TABLE,
      maxWaitSeconds: 3600,
    });
    const intervals: [number, number][] = [];
    const outcomes = await Promise.all(
      [1, 2, 3, 4].map((n) => run(wrapped, { n }, timedWork(300, intervals))),
    );
    expect(outcomes.map((o) => o.status)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    expect(maxOverlap(intervals)).toBe(2);
    expect(await slotItem(workflow)).toEqual({ workflow: { S: workflow }, running: { N: '0' } });
  });

  it('a failing workflow re-raises the same error name and cause, and gives its slot back', async () => {
    const workflow = 'test-fail';
    const wrapped = wrapWithSemaphore(INNER, {
      workflow,
      maxConcurrency: 1,
      table: TABLE,
      maxWaitSeconds: 3600,
    });
    const failing: Work = async () => {
      const error = new Error('the source answered 503 for hour 2024-06-10-19');
      error.name = 'SourceUnavailableError';
      throw error;
    };
    const bare = await run(INNER, { n: 1 }, failing);
    expect(bare).toEqual({
      status: 'FAILED',
      error: 'SourceUnavailableError',
      cause: 'the source answered 503 for hour 2024-06-10-19',
    });
    expect(await run(wrapped, { n: 1 }, failing)).toEqual(bare);
    expect(await slotItem(workflow)).toEqual({ workflow: { S: workflow }, running: { N: '0' } });
    // The slot is free again: the next execution runs.
    expect((await run(wrapped, { n: 5 }, timedWork(1, []))).output).toEqual({
      n: 5,
      result: { doubled: 10 },
    });
  });

  it('an execution finding every slot held fails with sluice.ConcurrencyLimitWait after its retries', async () => {
    const workflow = 'test-full';
    const holder = 'arn:aws:states:us-east-1:123456789012:execution:test-full:stuck';
    await ddb.send(
      new PutItemCommand({
        TableName: TABLE,
        Item: { workflow: { S: workflow }, running: { N: '1' }, [holder]: { S: '2024-06-10T19:00:00Z' } },
      }),
    );
    const wrapped = wrapWithSemaphore(INNER, {
      workflow,
      maxConcurrency: 1,
      table: TABLE,
      maxWaitSeconds: 10,
    });
    let ran = false;
    const outcome = await run(wrapped, { n: 1 }, async () => {
      ran = true;
      return null;
    });
    expect(outcome.status).toBe('FAILED');
    expect(outcome.error).toBe(NO_SLOT_ERROR);
    expect(outcome.cause).toMatch(
      /no slot of workflow test-full \(maxConcurrency 1\) came free within about 10 s/,
    );
    expect(ran).toBe(false);
    expect((await slotItem(workflow))?.running).toEqual({ N: '1' });
  });
});

// ---- the runner hides the wrapper: history and failedState of a wrapped execution

describe('StepFunctionsRunner on a wrapped execution', () => {
  const t = (ms: number) => new Date(Date.UTC(2024, 5, 10, 19, 0, 0, ms));
  const fnArn = 'arn:aws:lambda:us-east-1:123456789012:function:test-work';
  const lambdaCause = JSON.stringify({
    errorType: 'SourceUnavailableError',
    errorMessage: 'boom',
    trace: [],
  });

  /** History events (API_HistoryEvent shapes) with ids from 1, each pointing at the one before. */
  function history(events: Omit<HistoryEvent, 'id' | 'previousEventId' | 'timestamp'>[]): HistoryEvent[] {
    return events.map((e, i) => ({ ...e, id: i + 1, previousEventId: i, timestamp: t(i) }) as HistoryEvent);
  }
  const input = JSON.stringify({ n: 1 });
  const workEvents = [
    { type: 'TaskStateEntered', stateEnteredEventDetails: { name: 'Work', input } },
    { type: 'LambdaFunctionScheduled', lambdaFunctionScheduledEventDetails: { resource: fnArn, input } },
    { type: 'LambdaFunctionStarted' },
    {
      type: 'LambdaFunctionFailed',
      lambdaFunctionFailedEventDetails: { error: 'SourceUnavailableError', cause: lambdaCause },
    },
  ] as const;
  const failed = {
    type: 'ExecutionFailed',
    executionFailedEventDetails: { error: 'SourceUnavailableError', cause: lambdaCause },
  } as const;
  const bare = history([
    { type: 'ExecutionStarted', executionStartedEventDetails: { input } },
    ...workEvents,
    failed,
  ]);
  const wrapped = history([
    { type: 'ExecutionStarted', executionStartedEventDetails: { input } },
    { type: 'TaskStateEntered', stateEnteredEventDetails: { name: SEMAPHORE_STATES.acquire, input } },
    { type: 'TaskScheduled' },
    { type: 'TaskStarted' },
    {
      type: 'TaskFailed',
      taskFailedEventDetails: {
        resourceType: 'dynamodb',
        resource: 'updateItem',
        error: CONDITION_FAILED_ERROR,
        cause: 'held',
      },
    },
    { type: 'TaskScheduled' },
    { type: 'TaskStarted' },
    { type: 'TaskSucceeded' },
    { type: 'TaskStateExited', stateExitedEventDetails: { name: SEMAPHORE_STATES.acquire, output: input } },
    { type: 'ParallelStateEntered', stateEnteredEventDetails: { name: SEMAPHORE_STATES.run, input } },
    { type: 'ParallelStateStarted' },
    ...workEvents,
    { type: 'ParallelStateFailed' },
    { type: 'ParallelStateExited', stateExitedEventDetails: { name: SEMAPHORE_STATES.run, output: input } },
    {
      type: 'TaskStateEntered',
      stateEnteredEventDetails: { name: SEMAPHORE_STATES.releaseAfterFailure, input },
    },
    { type: 'TaskScheduled' },
    { type: 'TaskStarted' },
    { type: 'TaskSucceeded' },
    {
      type: 'TaskStateExited',
      stateExitedEventDetails: { name: SEMAPHORE_STATES.releaseAfterFailure, output: input },
    },
    { type: 'FailStateEntered', stateEnteredEventDetails: { name: SEMAPHORE_STATES.reraise, input } },
    failed,
  ]);

  it('history() maps a wrapped execution to the same events as the bare one (timestamps aside)', () => {
    const strip = (events: ReturnType<typeof mapHistory>) => events.map(({ timestamp: _, ...e }) => e);
    const mapped = strip(mapHistory(wrapped, INNER));
    expect(mapped).toEqual(strip(mapHistory(bare, INNER)));
    expect(mapped.map((e) => e.type)).toEqual([
      'ExecutionStarted',
      'StateEntered',
      'StateFailed',
      'ExecutionFailed',
    ]);
    expect(mapped.some((e) => e.state?.startsWith(WRAPPER_STATE_PREFIX))).toBe(false);
  });

  it('describe(): failedState is the pipeline state that failed, not the wrapper Fail state', async () => {
    const client = new SFNClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const mock = mockClient(client);
    const executionArn = 'arn:aws:states:us-east-1:123456789012:execution:test-work:manual-1';
    mock.on(GetExecutionHistoryCommand).resolves({ events: [...wrapped].reverse() });
    const { DescribeExecutionCommand } = await import('@aws-sdk/client-sfn');
    mock.on(DescribeExecutionCommand).resolves({
      executionArn,
      stateMachineArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:test-work',
      status: 'FAILED',
      startDate: t(0),
      stopDate: t(30),
      input,
      error: 'SourceUnavailableError',
      cause: lambdaCause,
    });
    const runner = new StepFunctionsRunner(client, {
      stateMachineArnPrefix: 'arn:aws:states:us-east-1:123456789012:stateMachine:',
      workflows: [
        { name: 'test-work', pipeline: 'test', description: 'test', definition: INNER, maxConcurrency: 1 },
      ],
    });
    const record = await runner.describe(executionArn);
    expect(record).toMatchObject({ status: 'FAILED', failedState: 'Work', error: 'SourceUnavailableError' });
    mock.restore();
  });
});

// ---- the CDK stack: slot table, scoped role, release rule and function

describe('PipelineStack with the semaphore (CDK assertions)', () => {
  type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;
  let workDir: string;
  let on: Map<string, Resources>;
  let off: Map<string, Resources>;
  let unacknowledged: number;

  beforeAll(async () => {
    const { mkdtempSync } = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const { Template } = await import('aws-cdk-lib/assertions');
    const { buildApp } = await import('./app.ts');
    const { bundleRuntime } = await import('./bundle.ts');
    const { nagReport } = await import('./nag.ts');
    workDir = mkdtempSync(path.join(os.tmpdir(), 'sluice-semaphore-test-'));
    const bundle = await bundleRuntime({ workDir: path.join(workDir, 'bundle') });
    const chosen = [pipelines.tolls, pipelines.quotes].filter((p) => p !== undefined);
    const build = async (outdir: string, enableConcurrency: boolean) => {
      const built = await buildApp({
        pipelines: chosen,
        outdir: path.join(workDir, outdir),
        bundle,
        switches: { enableConcurrency },
      });
      const templates = new Map(
        built.stacks.map((s) => [
          s.pipeline.name,
          (Template.fromStack(s).toJSON() as { Resources: Resources }).Resources,
        ]),
      );
      return { templates, nag: nagReport(built.app) };
    };
    const withSemaphore = await build('on', true);
    on = withSemaphore.templates;
    unacknowledged = withSemaphore.nag.violations.length;
    off = (await build('off', false)).templates;
  }, 180_000);

  afterAll(async () => {
    const { rmSync } = await import('node:fs');
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  const ofType = (resources: Resources | undefined, type: string) =>
    Object.entries(resources ?? {}).filter(([, r]) => r.Type === type);
  const idOf = (
    resources: Resources | undefined,
    type: string,
    pred: (p: Record<string, unknown>) => boolean,
  ) => ofType(resources, type).find(([, r]) => pred(r.Properties ?? {}))?.[0] as string;
  const statementsOf = (resources: Resources | undefined, roleId: string) =>
    ofType(resources, 'AWS::IAM::Policy')
      .filter(([, r]) => JSON.stringify(r.Properties?.Roles) === JSON.stringify([{ Ref: roleId }]))
      .flatMap(
        ([, r]) =>
          (
            r.Properties as {
              PolicyDocument: { Statement: { Action: string | string[]; Resource: unknown }[] };
            }
          ).PolicyDocument.Statement,
      );

  it('creates the slot table: hash key workflow (S), on demand, PITR, encrypted', () => {
    const tables = ofType(on.get('tolls'), 'AWS::DynamoDB::Table').filter(
      ([, r]) => r.Properties?.TableName === 'sluice-tolls-sluice_workflow_slots',
    );
    expect(tables).toHaveLength(1);
    expect(tables[0]?.[1].Properties).toMatchObject({
      KeySchema: [{ AttributeName: 'workflow', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'workflow', AttributeType: 'S' }],
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
    });
    expect(unacknowledged).toBe(0);
  });

  it('wraps bounded workflows only, with the table as a definition substitution; the role may UpdateItem on it only', () => {
    for (const [pipeline, workflowName, wrapped] of [
      ['tolls', 'tolls-load', true],
      ['quotes', 'quotes-transform', true],
      ['quotes', 'quotes-poll', false],
    ] as const) {
      const resources = on.get(pipeline);
      const tableId = idOf(
        resources,
        'AWS::DynamoDB::Table',
        (p) => p.TableName === `sluice-${pipeline}-sluice_workflow_slots`,
      );
      const [machineId, machine] = ofType(resources, 'AWS::StepFunctions::StateMachine').find(
        ([, r]) => r.Properties?.StateMachineName === workflowName,
      ) ?? ['', { Type: '' }];
      const workflow = pipelines[pipeline]?.workflows?.find((w) => w.name === workflowName);
      if (!workflow) throw new Error(`no workflow ${workflowName}`);
      const props = machine.Properties ?? {};
      const definition = JSON.parse(props.DefinitionString as string);
      const roleId = (props.RoleArn as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0] as string;
      const updates = statementsOf(resources, roleId).filter((s) =>
        ([] as string[]).concat(s.Action).some((a) => a.startsWith('dynamodb:')),
      );
      if (wrapped) {
        expect(definition).toEqual(
          wrapWithSemaphore(workflow.definition, {
            workflow: workflowName,
            maxConcurrency: workflow.maxConcurrency ?? 0,
            table: '${SluiceSlotsTable}',
          }),
        );
        expect((props.DefinitionSubstitutions as Record<string, unknown>).SluiceSlotsTable).toEqual({
          Ref: tableId,
        });
        expect(updates).toEqual([
          { Effect: 'Allow', Action: 'dynamodb:UpdateItem', Resource: { 'Fn::GetAtt': [tableId, 'Arn'] } },
        ]);
      } else {
        expect(definition).toEqual(workflow.definition);
        expect(updates).toEqual([]);
      }
      expect(machineId).not.toBe('');
    }
  });

  it('an EventBridge rule sends ABORTED/TIMED_OUT/FAILED executions of the wrapped machines to the release function', () => {
    const resources = on.get('quotes');
    const rules = ofType(resources, 'AWS::Events::Rule');
    expect(rules).toHaveLength(1);
    const machineId = idOf(
      resources,
      'AWS::StepFunctions::StateMachine',
      (p) => p.StateMachineName === 'quotes-transform',
    );
    const fnId = idOf(resources, 'AWS::Lambda::Function', (p) => p.FunctionName === 'quotes-slot-release');
    const tableId = idOf(
      resources,
      'AWS::DynamoDB::Table',
      (p) => p.TableName === 'sluice-quotes-sluice_workflow_slots',
    );
    expect(rules[0]?.[1].Properties).toMatchObject({
      EventPattern: {
        source: ['aws.states'],
        'detail-type': ['Step Functions Execution Status Change'],
        detail: { status: ['ABORTED', 'TIMED_OUT', 'FAILED'], stateMachineArn: [{ Ref: machineId }] },
      },
      State: 'ENABLED',
      Targets: [expect.objectContaining({ Arn: { 'Fn::GetAtt': [fnId, 'Arn'] } })],
    });
    const fn = resources?.[fnId]?.Properties ?? {};
    expect(fn).toMatchObject({
      Handler: 'runtime/aws/lambda.slotReleaseHandler',
      Runtime: 'nodejs22.x',
      Environment: { Variables: { SLUICE_SLOTS_TABLE: { Ref: tableId } } },
    });
    const roleId = (fn.Role as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0] as string;
    const actions = statementsOf(resources, roleId).flatMap((s) => ([] as string[]).concat(s.Action));
    expect(actions.filter((a) => !a.startsWith('logs:'))).toEqual(['dynamodb:UpdateItem']);
    expect(
      ofType(resources, 'AWS::Lambda::Permission').some(
        ([, r]) =>
          r.Properties?.Principal === 'events.amazonaws.com' &&
          JSON.stringify(r.Properties?.FunctionName) === JSON.stringify({ 'Fn::GetAtt': [fnId, 'Arn'] }),
      ),
    ).toBe(true);
  });

  it('enableConcurrency false (`--disable concurrency`): no table, rule or function; definitions unwrapped', () => {
    const resources = off.get('tolls');
    expect(ofType(resources, 'AWS::Events::Rule')).toEqual([]);
    expect(JSON.stringify(resources)).not.toContain('sluice_workflow_slots');
    const [, machine] = ofType(resources, 'AWS::StepFunctions::StateMachine').find(
      ([, r]) => r.Properties?.StateMachineName === 'tolls-load',
    ) ?? ['', {}];
    expect(
      JSON.parse((machine as { Properties: { DefinitionString: string } }).Properties.DefinitionString),
    ).toEqual(pipelines.tolls?.workflows?.find((w) => w.name === 'tolls-load')?.definition);
  });
});
