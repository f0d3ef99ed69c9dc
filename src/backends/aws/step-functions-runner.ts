/**
 * The workflow runner port on AWS Step Functions: the aws backend's {@link WorkflowRunner}. The state
 * machines are deployed by the CDK stack from the same ASL JSON the local runner interprets; this adapter
 * starts, polls, lists and reads the history of their executions. Not run against AWS: tested with
 * aws-sdk-client-mock against the request/response shapes of the Step Functions API reference
 * (https://docs.aws.amazon.com/step-functions/latest/apireference/Welcome.html).
 */
import { randomBytes } from 'node:crypto';
import {
  DescribeExecutionCommand,
  type DescribeExecutionOutput,
  type ExecutionListItem,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  ListExecutionsCommand,
  type SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { type Clock, systemClock } from '../../core/clock.ts';
import { NotFoundError, SluiceError } from '../../core/errors.ts';
import type { JsonValue } from '../../core/ports/kv-table.ts';
import type {
  ExecutionEvent,
  ExecutionFilter,
  ExecutionHandle,
  ExecutionRecord,
  ExecutionSource,
  ExecutionStatus,
  WorkflowRunner,
} from '../../core/ports/workflow-runner.ts';
import type { AslDefinition, AslState, WorkflowDefinition } from '../../core/workflow.ts';
import { isTransientAwsError } from './aws-errors.ts';

/** Options of {@link StepFunctionsRunner}. */
export interface StepFunctionsRunnerOptions {
  /** `arn:aws:states:<region>:<account>:stateMachine:`: a workflow's state machine is this + its name. */
  readonly stateMachineArnPrefix: string;
  /** The workflows deployed as state machines (same names). */
  readonly workflows: readonly WorkflowDefinition[];
  /** First wait between `DescribeExecution` polls of a started execution, in ms (default 1,000); x1.5 up to {@link MAX_POLL_MS}. */
  readonly pollMs?: number;
  /** Clock for the polling waits (default {@link systemClock}). */
  readonly clock?: Clock;
}

/** Longest wait between two polls of a running execution, in ms. */
export const MAX_POLL_MS = 30_000;
/** Key of the execution input under which the start's {@link ExecutionSource} travels. */
export const SOURCE_KEY = 'sluice';

/**
 * Prefix of the state names of the concurrency semaphore the deployment wraps around a workflow with
 * `maxConcurrency` (`SEMAPHORE_STATE_PREFIX` of src/deploy/concurrency.ts: `sluice_AcquireSlot`,
 * `sluice_Run`, `sluice_ReleaseSlot`, ...). {@link mapHistory} drops their events and `failedState`
 * skips them: the pipeline's own ASL uses no such names.
 */
export const WRAPPER_STATE_PREFIX = 'sluice_';

/** A state of the deployment's semaphore wrapper (hidden from the port's history). */
export function isWrapperState(name: string | undefined): boolean {
  return name?.startsWith(WRAPPER_STATE_PREFIX) ?? false;
}

/** SDK errors that mean "try again" (throttling, 5xx, network). */
const TRANSIENT = new Set([
  'ThrottlingException',
  'ServiceUnavailable',
  'InternalServerError',
  'TimeoutError',
]);

/**
 * {@link WorkflowRunner} on Step Functions (standard workflows).
 *
 * - `start` → `StartExecution` on `<stateMachineArnPrefix><workflow>` with a unique execution `name`
 *   (`<kind>-<yyyymmddThhmmssZ>-<8 hex>`, at most 80 characters of `[A-Za-z0-9-]`: the API's rule) and the
 *   input as JSON. The {@link ExecutionSource} is added to an object input as `"sluice": { "source": ... }`
 *   ({@link SOURCE_KEY}) when the input has no `sluice` key (workflows ignore unknown keys; `describe` strips
 *   it again, so records show the input that was given); for a non-object input only its kind survives, in the name.
 *   The execution ID is the execution ARN. `done` polls `DescribeExecution` (`pollMs`, x1.5 up to
 *   {@link MAX_POLL_MS}) until the status is not `RUNNING`; transient errors are retried.
 * - `maxConcurrency` is not enforced here (Step Functions has no per-state-machine limit, and a queue in a
 *   short-lived caller would not hold across Lambda invocations): `start` never waits. The CDK stack wraps
 *   such a workflow's ASL in a DynamoDB semaphore (src/deploy/concurrency.ts), so its executions wait for
 *   a slot inside Step Functions; the wrapper's states are named `sluice_*` ({@link WRAPPER_STATE_PREFIX})
 *   and hidden from `history` and `failedState`, so a wrapped execution reads like the ASL run locally.
 * - `describe` → `DescribeExecution` (`undefined` for `ExecutionDoesNotExist`); for a failed or timed-out
 *   execution `failedState` is the last state entered (`GetExecutionHistory`, `reverseOrder`).
 * - `list` → `ListExecutions` per state machine (filtered by workflow / pipeline; `statusFilter`), merged
 *   newest first by `startDate`, cut at `limit` (default 100), each read with `DescribeExecution` for its
 *   input and output (`failedState` is left out of lists).
 * - `history` → `GetExecutionHistory` pages (`includeExecutionData`), mapped by {@link mapHistory} to the ASL
 *   event vocabulary the local runner records.
 * - `shutdown(graceMs)`: no new starts; waits up to `graceMs` for polled executions to end, then stops
 *   polling: their `done` resolves with the last record read (still `RUNNING`). Executions are NOT stopped:
 *   they run in Step Functions, not in this process (the local runner aborts its own).
 */
export class StepFunctionsRunner implements WorkflowRunner {
  private readonly workflows: Map<string, WorkflowDefinition>;
  private readonly clock: Clock;
  private readonly pollMs: number;
  private stopping = false;
  private readonly stopPolling = new AbortController();
  private readonly polling = new Set<Promise<ExecutionRecord>>();

  /** @throws {SluiceError} `usage` when the prefix is not a state machine ARN prefix. */
  constructor(
    private readonly client: SFNClient,
    private readonly options: StepFunctionsRunnerOptions,
  ) {
    if (!/^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:$/.test(options.stateMachineArnPrefix)) {
      throw new SluiceError(
        `stateMachineArnPrefix must look like arn:aws:states:<region>:<account>:stateMachine:, got "${options.stateMachineArnPrefix}"`,
        { code: 'usage', exitCode: 2 },
      );
    }
    this.workflows = new Map(options.workflows.map((w) => [w.name, w]));
    this.clock = options.clock ?? systemClock;
    this.pollMs = options.pollMs ?? 1_000;
  }

  /** The state machine ARN of a workflow. */
  stateMachineArn(workflow: string): string {
    return `${this.options.stateMachineArnPrefix}${workflow}`;
  }

  /** {@inheritDoc WorkflowRunner.start} */
  async start(
    workflowName: string,
    input: JsonValue,
    options: { source?: ExecutionSource } = {},
  ): Promise<ExecutionHandle> {
    const workflow = this.workflows.get(workflowName);
    if (!workflow) {
      throw new NotFoundError(
        `unknown workflow "${workflowName}" (known: ${[...this.workflows.keys()].join(', ')})`,
      );
    }
    if (this.stopping)
      throw new SluiceError('the workflow runner is shutting down', { code: 'shutting_down' });
    const name = executionName(options.source?.kind ?? 'manual', this.clock.now());
    const sent = withSource(input, options.source);
    const started = await this.call(() =>
      this.client.send(
        new StartExecutionCommand({
          stateMachineArn: this.stateMachineArn(workflow.name),
          name,
          input: JSON.stringify(sent),
        }),
      ),
    );
    const executionId = started.executionArn ?? '';
    const initial: ExecutionRecord = {
      executionId,
      workflow: workflow.name,
      pipeline: workflow.pipeline,
      status: 'RUNNING',
      input,
      ...(options.source ? { source: options.source } : {}),
      startedAt: (started.startDate ?? this.clock.now()).toISOString(),
    };
    const done = this.poll(initial);
    this.polling.add(done);
    void done.finally(() => this.polling.delete(done));
    return { executionId, done };
  }

  /** {@inheritDoc WorkflowRunner.describe} */
  async describe(executionId: string): Promise<ExecutionRecord | undefined> {
    const output = await this.describeRaw(executionId);
    if (!output) return undefined;
    const record = this.toRecord(output);
    if (record.status !== 'FAILED' && record.status !== 'TIMED_OUT') return record;
    const failedState = await this.lastEnteredState(executionId);
    return failedState ? { ...record, failedState } : record;
  }

  /** {@inheritDoc WorkflowRunner.history} */
  async history(executionId: string): Promise<ExecutionEvent[]> {
    const events: HistoryEvent[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.call(() =>
        this.client.send(
          new GetExecutionHistoryCommand({
            executionArn: executionId,
            maxResults: 1000,
            includeExecutionData: true,
            ...(nextToken ? { nextToken } : {}),
          }),
        ),
      ).catch((error: unknown) => {
        if (isNotFound(error)) return undefined;
        throw error;
      });
      if (!page) return [];
      events.push(...(page.events ?? []));
      nextToken = page.nextToken;
    } while (nextToken);
    const workflow = this.workflows.get(workflowOf(executionId) ?? '');
    return mapHistory(events, workflow?.definition);
  }

  /** {@inheritDoc WorkflowRunner.list} */
  async list(filter: ExecutionFilter = {}): Promise<ExecutionRecord[]> {
    const limit = filter.limit ?? 100;
    const workflows = [...this.workflows.values()].filter(
      (w) =>
        (filter.workflow === undefined || w.name === filter.workflow) &&
        (filter.pipeline === undefined || w.pipeline === filter.pipeline),
    );
    const items: ExecutionListItem[] = [];
    for (const workflow of workflows) {
      let nextToken: string | undefined;
      let taken = 0;
      do {
        const page = await this.call(() =>
          this.client.send(
            new ListExecutionsCommand({
              stateMachineArn: this.stateMachineArn(workflow.name),
              ...(filter.status ? { statusFilter: filter.status } : {}),
              maxResults: Math.min(1000, Math.max(1, limit)),
              ...(nextToken ? { nextToken } : {}),
            }),
          ),
        );
        const executions = page.executions ?? [];
        items.push(...executions);
        taken += executions.length;
        nextToken = page.nextToken;
        // ListExecutions returns newest first: `limit` of each state machine is enough for the merge.
      } while (nextToken && taken < limit);
    }
    items.sort((a, b) => (b.startDate?.getTime() ?? 0) - (a.startDate?.getTime() ?? 0));
    const chosen = items.slice(0, limit);
    const records: ExecutionRecord[] = new Array(chosen.length);
    let next = 0;
    const worker = async () => {
      while (next < chosen.length) {
        const i = next++;
        const item = chosen[i] as ExecutionListItem;
        const described = await this.describeRaw(item.executionArn ?? '');
        records[i] = described
          ? this.toRecord(described)
          : this.toRecord({ ...item, input: 'null' } as DescribeExecutionOutput);
      }
    };
    await Promise.all(Array.from({ length: Math.min(4, chosen.length) }, worker));
    return records;
  }

  /** {@inheritDoc WorkflowRunner.shutdown} See {@link StepFunctionsRunner} for what happens on AWS. */
  async shutdown(graceMs: number): Promise<void> {
    this.stopping = true;
    const pending = [...this.polling];
    if (pending.length > 0) {
      const all = Promise.all(pending);
      const grace = new AbortController();
      await Promise.race([all, this.clock.sleep(graceMs, grace.signal).catch(() => undefined)]);
      grace.abort();
    }
    this.stopPolling.abort();
    await Promise.all([...this.polling]);
  }

  /** Polls until the execution ends or polling stops; never rejects. */
  private async poll(initial: ExecutionRecord): Promise<ExecutionRecord> {
    let last = initial;
    let delay = this.pollMs;
    for (;;) {
      try {
        await this.clock.sleep(delay, this.stopPolling.signal);
      } catch {
        return last;
      }
      try {
        const record = await this.describe(initial.executionId);
        if (record) {
          last = { ...record, ...(initial.source && !record.source ? { source: initial.source } : {}) };
          if (last.status !== 'RUNNING') return last;
        }
      } catch {
        // Transient or not, keep polling: `done` never rejects; shutdown ends the loop.
      }
      delay = Math.min(MAX_POLL_MS, Math.max(1, Math.ceil(delay * 1.5)));
    }
  }

  private async describeRaw(executionArn: string): Promise<DescribeExecutionOutput | undefined> {
    try {
      return await this.call(() => this.client.send(new DescribeExecutionCommand({ executionArn })));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /**
   * The name of the last state entered (newest history events first), reading further pages while none
   * is found: a page may hold fewer events than `maxResults` (API_GetExecutionHistory), and each retry
   * of a Task adds three events after its entry.
   */
  private async lastEnteredState(executionArn: string): Promise<string | undefined> {
    try {
      let nextToken: string | undefined;
      do {
        const page = await this.call(() =>
          this.client.send(
            new GetExecutionHistoryCommand({
              executionArn,
              reverseOrder: true,
              maxResults: 100,
              includeExecutionData: false,
              ...(nextToken ? { nextToken } : {}),
            }),
          ),
        );
        const entered = page.events?.find(
          (e) => e.stateEnteredEventDetails?.name && !isWrapperState(e.stateEnteredEventDetails.name),
        );
        if (entered) return entered.stateEnteredEventDetails?.name;
        nextToken = page.nextToken;
      } while (nextToken);
      return undefined;
    } catch {
      return undefined;
    }
  }

  private toRecord(output: DescribeExecutionOutput): ExecutionRecord {
    const arn = output.executionArn ?? '';
    const workflowName = workflowOf(arn) ?? '';
    const workflow = this.workflows.get(workflowName);
    const { input, source } = withoutSource(parseJson(output.input));
    const status = (
      output.status === 'PENDING_REDRIVE' ? 'FAILED' : (output.status ?? 'RUNNING')
    ) as ExecutionStatus;
    return {
      executionId: arn,
      workflow: workflowName,
      pipeline: workflow?.pipeline ?? '',
      status,
      input,
      ...(output.output !== undefined ? { output: parseJson(output.output) } : {}),
      ...(output.error !== undefined ? { error: output.error } : {}),
      ...(output.cause !== undefined ? { cause: output.cause } : {}),
      ...(source ? { source } : {}),
      startedAt: (output.startDate ?? new Date(0)).toISOString(),
      ...(output.stopDate ? { stoppedAt: output.stopDate.toISOString() } : {}),
    };
  }

  /** Runs an SDK call, retrying throttling and transient failures (4 attempts). */
  private async call<T>(send: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await send();
      } catch (error) {
        if (!isTransientAwsError(error, TRANSIENT) || attempt >= 4) throw error;
        await this.clock.sleep(200 * 2 ** (attempt - 1));
      }
    }
  }
}

function isNotFound(error: unknown): boolean {
  const name = (error as { name?: string })?.name ?? '';
  return name === 'ExecutionDoesNotExist' || name === 'StateMachineDoesNotExist';
}

/** `arn:aws:states:<region>:<account>:execution:<state machine>:<name>` → the state machine name. */
function workflowOf(executionArn: string): string | undefined {
  const parts = executionArn.split(':');
  return parts[5] === 'execution' ? parts[6] : undefined;
}

/**
 * A unique execution name: `<kind>-<yyyymmddThhmmssZ>-<8 hex>` (e.g. `schedule-20240501T100000Z-1a2b3c4d`),
 * at most 80 characters of `[A-Za-z0-9-]`, which StartExecution's `name` allows
 * (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html).
 */
export function executionName(kind: string, at: Date): string {
  const stamp = at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const safeKind = kind.replace(/[^A-Za-z0-9-]/g, '-').slice(0, 40) || 'manual';
  return `${safeKind}-${stamp}-${randomBytes(4).toString('hex')}`;
}

function withSource(input: JsonValue, source: ExecutionSource | undefined): JsonValue {
  if (!source || typeof input !== 'object' || input === null || Array.isArray(input) || SOURCE_KEY in input) {
    return input;
  }
  return { ...input, [SOURCE_KEY]: { source: source as unknown as JsonValue } };
}

function withoutSource(input: JsonValue): { input: JsonValue; source?: ExecutionSource } {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return { input };
  const carried = input[SOURCE_KEY];
  if (typeof carried !== 'object' || carried === null || Array.isArray(carried)) return { input };
  const keys = Object.keys(carried);
  const source = carried.source as unknown as ExecutionSource | undefined;
  if (keys.length !== 1 || !source || typeof source !== 'object' || typeof source.kind !== 'string') {
    return { input };
  }
  const { [SOURCE_KEY]: _, ...rest } = input;
  return { input: rest, source };
}

function parseJson(text: string | undefined): JsonValue {
  if (text === undefined) return null;
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return text;
  }
}

/** Failure events of a state's work (Task resources), with their details field. */
const FAILURES: Readonly<Record<string, keyof HistoryEvent>> = {
  TaskFailed: 'taskFailedEventDetails',
  TaskTimedOut: 'taskTimedOutEventDetails',
  TaskStartFailed: 'taskStartFailedEventDetails',
  TaskSubmitFailed: 'taskSubmitFailedEventDetails',
  LambdaFunctionFailed: 'lambdaFunctionFailedEventDetails',
  LambdaFunctionTimedOut: 'lambdaFunctionTimedOutEventDetails',
  LambdaFunctionStartFailed: 'lambdaFunctionStartFailedEventDetails',
  LambdaFunctionScheduleFailed: 'lambdaFunctionScheduleFailedEventDetails',
  ActivityFailed: 'activityFailedEventDetails',
  ActivityTimedOut: 'activityTimedOutEventDetails',
  ActivityScheduleFailed: 'activityScheduleFailedEventDetails',
};
const SCHEDULED = new Set(['TaskScheduled', 'LambdaFunctionScheduled', 'ActivityScheduled']);

/**
 * Step Functions history events (`GetExecutionHistory`, https://docs.aws.amazon.com/step-functions/latest/apireference/API_HistoryEvent.html)
 * as the port's ASL event vocabulary (what aws-local-stepfunctions reports locally):
 *
 * | Step Functions                                                                 | sluice                                   |
 * | ------------------------------------------------------------------------------ | ---------------------------------------- |
 * | `ExecutionStarted` / `Succeeded` / `Failed` / `Aborted`                        | same name (input without the {@link SOURCE_KEY} the runner added, output, error, cause) |
 * | `FailStateEntered` then `ExecutionFailed`                                      | + `StateFailed` of the Fail state (error, cause), as locally |
 * | `ExecutionTimedOut`                                                            | `ExecutionTimeout`                       |
 * | `<Type>StateEntered` (`TaskStateEntered`, `PassStateEntered`, ...)             | `StateEntered`, `stateType` `<Type>`     |
 * | `<Type>StateExited`                                                            | `StateExited` (output)                   |
 * | `TaskFailed`, `LambdaFunctionFailed`, `*TimedOut`, `*StartFailed`, ...         | `StateFailed` (error, cause)             |
 * | a failure followed by a new `*Scheduled` of the same state                     | + `StateRetried` (attempt n, the ASL retrier whose `ErrorEquals` matches, from the definition) |
 * | a failure followed by the state's `*StateExited`                               | + `StateCaught` (a Catch moved on)       |
 * | `MapIterationStarted` / `Succeeded` / `Failed`                                 | same name, `parent` { Map state, index } |
 * | scheduling/start/success of the work (`TaskScheduled`, `LambdaFunctionSucceeded`, `MapStateStarted`, ...) | dropped |
 *
 * The state of a failure is found through `previousEventId` back to its `*StateEntered`; failures, retries
 * and catches are tracked per state entry (so Map iterations of one state, or a state entered again, count
 * their retry attempts from 1 each, as aws-local-stepfunctions does). Events of the deployment's semaphore
 * states (`sluice_*`, {@link WRAPPER_STATE_PREFIX}: taking and giving back a concurrency slot, the Parallel
 * around the workflow, the Fail state re-raising its error) are dropped, so a wrapped execution maps to the
 * same events as the bare ASL; `ExecutionFailed` keeps the re-raised error and cause. Events inside Map iterations and
 * Parallel branches carry no `parent` (only the iteration events do). `seq` is 1-based in the order of the
 * returned list.
 */
export function mapHistory(events: readonly HistoryEvent[], definition?: AslDefinition): ExecutionEvent[] {
  const byId = new Map<number, HistoryEvent>();
  for (const e of events) if (e.id !== undefined) byId.set(e.id, e);
  /** A state entry: the state's name and type, and the id of its `*StateEntered` event. */
  type Entry = { name: string; type: string; entered: number };
  const stateCache = new Map<number, Entry | undefined>();
  const stateOf = (event: HistoryEvent | undefined): Entry | undefined => {
    const seen: HistoryEvent[] = [];
    let current = event;
    let found: Entry | undefined;
    while (current) {
      if (current.id !== undefined && stateCache.has(current.id)) {
        found = stateCache.get(current.id);
        break;
      }
      seen.push(current);
      const entered = /^(\w+)StateEntered$/.exec(current.type ?? '');
      if (entered && current.stateEnteredEventDetails?.name) {
        found = {
          name: current.stateEnteredEventDetails.name,
          type: entered[1] as string,
          entered: current.id ?? 0,
        };
        break;
      }
      current = current.previousEventId !== undefined ? byId.get(current.previousEventId) : undefined;
    }
    for (const e of seen) if (e.id !== undefined) stateCache.set(e.id, found);
    return found;
  };

  const out: Omit<ExecutionEvent, 'seq'>[] = [];
  /** Per state entry: the last failure not yet followed by a retry or exit, and retry attempts so far. */
  const pendingFailure = new Map<number, { name: string; error?: string; cause?: string }>();
  const attempts = new Map<number, number>();

  for (const e of events) {
    const type = e.type ?? '';
    const timestamp = (e.timestamp ?? new Date(0)).toISOString();
    const state = stateOf(e);
    if (type === 'ExecutionStarted') {
      out.push({
        type,
        timestamp,
        input: withoutSource(parseJson(e.executionStartedEventDetails?.input)).input,
      });
    } else if (type === 'ExecutionSucceeded') {
      out.push({ type, timestamp, output: parseJson(e.executionSucceededEventDetails?.output) });
    } else if (type === 'ExecutionFailed' || type === 'ExecutionAborted' || type === 'ExecutionTimedOut') {
      const d =
        type === 'ExecutionFailed'
          ? e.executionFailedEventDetails
          : type === 'ExecutionAborted'
            ? e.executionAbortedEventDetails
            : e.executionTimedOutEventDetails;
      if (type === 'ExecutionFailed' && state?.type === 'Fail') {
        // Step Functions records no failure event of a Fail state; the local runner's StateFailed.
        out.push({
          type: 'StateFailed',
          timestamp,
          state: state.name,
          stateType: state.type,
          ...(d?.error !== undefined ? { error: d.error } : {}),
          ...(d?.cause !== undefined ? { cause: d.cause } : {}),
        });
      }
      out.push({
        type: type === 'ExecutionTimedOut' ? 'ExecutionTimeout' : type,
        timestamp,
        ...(d?.error !== undefined ? { error: d.error } : {}),
        ...(d?.cause !== undefined ? { cause: d.cause } : {}),
      });
    } else if (/StateEntered$/.test(type) && state) {
      out.push({
        type: 'StateEntered',
        timestamp,
        state: state.name,
        stateType: state.type,
        ...(e.stateEnteredEventDetails?.input !== undefined
          ? { input: parseJson(e.stateEnteredEventDetails.input) }
          : {}),
      });
    } else if (/StateExited$/.test(type)) {
      const name = e.stateExitedEventDetails?.name ?? state?.name;
      const stateType = /^(\w+)StateExited$/.exec(type)?.[1];
      // The entry this exit ends: through previousEventId, else the latest entry of that name with a failure.
      const entry =
        state && state.name === name
          ? state.entered
          : [...pendingFailure].reverse().find(([, f]) => f.name === name)?.[0];
      if (name && entry !== undefined && pendingFailure.has(entry)) {
        const failure = pendingFailure.get(entry);
        pendingFailure.delete(entry);
        out.push({
          type: 'StateCaught',
          timestamp,
          state: name,
          ...(stateType ? { stateType } : {}),
          ...(failure?.error !== undefined ? { error: failure.error } : {}),
          ...(failure?.cause !== undefined ? { cause: failure.cause } : {}),
        });
      }
      out.push({
        type: 'StateExited',
        timestamp,
        ...(name ? { state: name } : {}),
        ...(stateType ? { stateType } : {}),
        ...(e.stateExitedEventDetails?.output !== undefined
          ? { output: parseJson(e.stateExitedEventDetails.output) }
          : {}),
      });
    } else if (FAILURES[type] !== undefined) {
      const details = e[FAILURES[type]] as { error?: string; cause?: string } | undefined;
      const failure = {
        ...(details?.error !== undefined ? { error: details.error } : {}),
        ...(details?.cause !== undefined ? { cause: details.cause } : {}),
      };
      if (state) pendingFailure.set(state.entered, { name: state.name, ...failure });
      out.push({
        type: 'StateFailed',
        timestamp,
        ...(state ? { state: state.name, stateType: state.type } : {}),
        ...failure,
      });
    } else if (SCHEDULED.has(type) && state && pendingFailure.has(state.entered)) {
      const failure = pendingFailure.get(state.entered);
      pendingFailure.delete(state.entered);
      const attempt = (attempts.get(state.entered) ?? 0) + 1;
      attempts.set(state.entered, attempt);
      out.push({
        type: 'StateRetried',
        timestamp,
        state: state.name,
        stateType: state.type,
        retry: { errorEquals: matchingRetrier(definition, state.name, failure?.error), attempt },
      });
    } else if (/^MapIteration(Started|Succeeded|Failed|Aborted)$/.test(type)) {
      const d =
        e.mapIterationStartedEventDetails ??
        e.mapIterationSucceededEventDetails ??
        e.mapIterationFailedEventDetails ??
        e.mapIterationAbortedEventDetails;
      out.push({
        type,
        timestamp,
        ...(d?.name
          ? { parent: { state: d.name, ...(d.index !== undefined ? { index: d.index } : {}) } }
          : {}),
      });
    }
  }
  return out.filter((event) => !isWrapperState(event.state)).map((event, i) => ({ seq: i + 1, ...event }));
}

/** The `ErrorEquals` of the first Retrier of state `name` that matches `error` (ASL rules), or `[]`. */
function matchingRetrier(
  definition: AslDefinition | undefined,
  name: string,
  error: string | undefined,
): string[] {
  const state = definition ? findState(definition, name) : undefined;
  const retriers = (state?.Retry as { ErrorEquals?: string[] }[] | undefined) ?? [];
  for (const retrier of retriers) {
    const equals = retrier.ErrorEquals ?? [];
    if (
      equals.includes(error ?? '') ||
      equals.includes('States.ALL') ||
      (equals.includes('States.TaskFailed') && error !== 'States.Timeout')
    ) {
      return [...equals];
    }
  }
  return [];
}

function findState(definition: AslDefinition, name: string): AslState | undefined {
  for (const [stateName, state] of Object.entries(definition.States)) {
    if (stateName === name) return state;
    for (const branch of state.Branches ?? []) {
      const found = findState(branch, name);
      if (found) return found;
    }
    const processor = state.ItemProcessor ?? state.Iterator;
    if (processor) {
      const found = findState(processor, name);
      if (found) return found;
    }
  }
  return undefined;
}
