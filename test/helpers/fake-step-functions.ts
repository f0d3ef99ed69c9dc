/**
 * A FAKE AWS Step Functions (standard workflows) for tests: NOT Step Functions. No Step Functions
 * emulator exists here, so this fake is installed on an `SFNClient` with aws-sdk-client-mock and
 * runs each execution's ASL in-process with `aws-local-stepfunctions` (the interpreter the local
 * runner uses), each Task `Resource` resolved to a test function. What it records follows the Step
 * Functions API reference (https://docs.aws.amazon.com/step-functions/latest/apireference/):
 *
 * - `StartExecution` (API_StartExecution): the state machine must exist (`StateMachineDoesNotExist`),
 *   `name` is 1-80 characters of `[A-Za-z0-9_-]` (`InvalidName`), the input valid JSON
 *   (`InvalidExecutionInput`, default `"{}"`); a name already used is `ExecutionAlreadyExists` unless
 *   the execution is running with the same input (then the same response). Returns `executionArn`
 *   (`arn:aws:states:<region>:<account>:execution:<state machine>:<name>`) and `startDate`.
 * - `DescribeExecution` (API_DescribeExecution): `status`, `startDate`, `stopDate`, `input`, `output`,
 *   `error`, `cause`; `ExecutionDoesNotExist` for an unknown ARN, `InvalidArn` for a malformed one.
 * - `ListExecutions` (API_ListExecutions): one state machine's executions, newest first by
 *   `startDate`, `statusFilter`, `maxResults` (0: the default 100; at most 1,000) and an opaque
 *   `nextToken` (`InvalidToken` when it is not one of ours).
 * - `GetExecutionHistory` (API_GetExecutionHistory, API_HistoryEvent): events with `id` (from 1),
 *   `previousEventId`, `timestamp`, `type` and the `*EventDetails` object of the type, in ascending
 *   order or `reverseOrder`; `includeExecutionData: false` leaves out inputs and outputs.
 *
 * Pages hold at most `pageSize` items (default 4) whatever `maxResults` asks: the API says a page may
 * hold fewer than `maxResults`, and small pages exercise the callers' pagination.
 *
 * Execution histories, as Step Functions writes them for a Task whose `Resource` is a Lambda
 * function ARN (what the CDK stack's `definitionSubstitutions` make of `"${function}"`):
 * `ExecutionStarted` (previousEventId 0); `<Type>StateEntered` (the first state's previousEventId is 0,
 * later ones point at the previous state's exit); per attempt `LambdaFunctionScheduled` (pointing at
 * the state's entry, or at the failure it retries) → `LambdaFunctionStarted` →
 * `LambdaFunctionSucceeded` | `LambdaFunctionFailed`; `<Type>StateExited` (pointing at the last event
 * of the state: after a Catch, the failure); `ParallelStateStarted`/`ParallelStateSucceeded` and
 * `MapStateStarted` (`length`)/`MapIterationStarted`/`MapIterationSucceeded`/`MapIterationFailed`
 * (`name`, `index`)/`MapStateSucceeded` around branches and iterations, whose first state points at
 * the branch's or iteration's start; a `Fail` state is `FailStateEntered` then `ExecutionFailed`;
 * `ExecutionSucceeded` / `ExecutionFailed` / `ExecutionTimedOut` last. A function's error is reported
 * as the Lambda Node.js runtime reports it: error `errorType` (the thrown error's `name`) and cause the
 * JSON `{"errorType","errorMessage","trace"}` (https://docs.aws.amazon.com/lambda/latest/dg/nodejs-exceptions.html),
 * which is also the `Cause` a `Catch` puts in the state's output.
 *
 * Not implemented (throws): every other command (StopExecution, RedriveExecution, ...), Express
 * workflows, service integrations other than Lambda function ARNs, `Activity` tasks, JSONata. Retry
 * intervals and Wait states take no time (the interpreter's overrides). Known approximations: the
 * effective input and the raw result of concurrent invocations of the same Task state (Map
 * iterations) are paired with their iteration by matching the state's output, else its input (exact when
 * the Task has no `InputPath`/`Parameters`/`ResultSelector`/`ResultPath`/`OutputPath`); state names must be unique across Parallel branches,
 * and Maps are not nested in Maps.
 */
import {
  DescribeExecutionCommand,
  type DescribeExecutionInput,
  type DescribeExecutionOutput,
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  type ExecutionListItem,
  type ExecutionStatus,
  GetExecutionHistoryCommand,
  type GetExecutionHistoryInput,
  type HistoryEvent,
  InvalidArn,
  InvalidExecutionInput,
  InvalidName,
  InvalidToken,
  ListExecutionsCommand,
  type ListExecutionsInput,
  type SFNClient,
  StartExecutionCommand,
  type StartExecutionInput,
  StateMachineDoesNotExist,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import type { JsonValue } from '../../src/core/ports/kv-table.ts';
import { type AslDefinition, type AslState, functionNameOf } from '../../src/core/workflow.ts';
import { ensurePromiseWithResolvers } from '../../src/engines/asl/promise-with-resolvers.ts';

/** A Lambda function of the fake: gets the Task's effective input, returns its result or throws. */
export type FakeLambda = (event: JsonValue) => Promise<JsonValue>;

/** Options of {@link installFakeStepFunctions}. */
export interface FakeStepFunctionsOptions {
  readonly region?: string;
  readonly account?: string;
  /**
   * The deployed state machines: name and ASL as in the repository, Task `Resource`s `"${function}"`
   * (replaced by `arn:aws:lambda:<region>:<account>:function:<function>` as the stack's
   * `definitionSubstitutions` do) or Lambda function ARNs.
   */
  readonly stateMachines: readonly { readonly name: string; readonly definition: AslDefinition }[];
  /** The Lambda functions by name. */
  readonly functions: Readonly<Record<string, FakeLambda>>;
  /** Time of `startDate`, `stopDate` and event timestamps (default: the system clock). */
  readonly now?: () => Date;
  /** Most items per page of ListExecutions and GetExecutionHistory (default 4). */
  readonly pageSize?: number;
}

/** One execution in the fake. */
export interface FakeExecution {
  readonly executionArn: string;
  readonly stateMachineArn: string;
  readonly name: string;
  status: ExecutionStatus;
  readonly startDate: Date;
  stopDate?: Date;
  readonly input: string;
  output?: string;
  error?: string;
  cause?: string;
  readonly events: HistoryEvent[];
  /** Settles when the execution has ended and its history is complete. */
  readonly settled: Promise<void>;
  abort(): void;
}

/** What {@link installFakeStepFunctions} returns. */
export interface FakeStepFunctions {
  readonly stateMachineArnPrefix: string;
  /** Executions by ARN, in start order. */
  readonly executions: Map<string, FakeExecution>;
  /** Resolves when every execution started so far has ended. */
  idle(): Promise<void>;
  /** Stops the running executions (recording nothing) and removes the mock from the client. */
  restore(): void;
}

const meta = { $metadata: {} };
const NAME = /^[A-Za-z0-9_-]{1,80}$/;

/** Installs the fake on `client`. */
export function installFakeStepFunctions(
  client: SFNClient,
  options: FakeStepFunctionsOptions,
): FakeStepFunctions {
  ensurePromiseWithResolvers();
  const region = options.region ?? 'eu-west-1';
  const account = options.account ?? '123456789012';
  const now = options.now ?? (() => new Date());
  const pageSize = options.pageSize ?? 4;
  const prefix = `arn:aws:states:${region}:${account}:stateMachine:`;
  const lambdaArn = (fn: string) => `arn:aws:lambda:${region}:${account}:function:${fn}`;
  const machines = new Map<string, AslDefinition>();
  for (const m of options.stateMachines) machines.set(`${prefix}${m.name}`, deploy(m.definition, lambdaArn));
  const executions = new Map<string, FakeExecution>();
  const mock = mockClient(client);

  mock.onAnyCommand().callsFake(async (input: unknown) => {
    throw new Error(
      `the fake Step Functions does not implement this command (input ${JSON.stringify(input)})`,
    );
  });

  mock.on(StartExecutionCommand).callsFake(async (input: StartExecutionInput) => {
    const definition = machines.get(input.stateMachineArn ?? '');
    if (!definition) {
      throw new StateMachineDoesNotExist({
        message: `State Machine Does Not Exist: '${input.stateMachineArn}'`,
        ...meta,
      });
    }
    const name = input.name ?? crypto.randomUUID();
    if (!NAME.test(name)) throw new InvalidName({ message: `Invalid Name: '${name}'`, ...meta });
    const text = input.input ?? '{}';
    let parsed: JsonValue;
    try {
      parsed = JSON.parse(text) as JsonValue;
    } catch {
      throw new InvalidExecutionInput({
        message: `Invalid State Machine Execution Input: '${text}'`,
        ...meta,
      });
    }
    const executionArn = `arn:aws:states:${region}:${account}:execution:${machineName(input.stateMachineArn ?? '')}:${name}`;
    const existing = executions.get(executionArn);
    if (existing) {
      if (existing.status === 'RUNNING' && existing.input === text) {
        return { executionArn, startDate: existing.startDate };
      }
      throw new ExecutionAlreadyExists({ message: `Execution Already Exists: '${executionArn}'`, ...meta });
    }
    const execution = run({
      executionArn,
      stateMachineArn: input.stateMachineArn ?? '',
      name,
      input: text,
      parsed,
      definition,
      functions: options.functions,
      now,
    });
    executions.set(executionArn, execution);
    return { executionArn, startDate: execution.startDate };
  });

  mock.on(DescribeExecutionCommand).callsFake(async (input: DescribeExecutionInput) => {
    const e = find(executions, input.executionArn);
    const output: DescribeExecutionOutput = {
      executionArn: e.executionArn,
      stateMachineArn: e.stateMachineArn,
      name: e.name,
      status: e.status,
      startDate: e.startDate,
      ...(e.stopDate ? { stopDate: e.stopDate } : {}),
      input: e.input,
      inputDetails: { included: true },
      ...(e.output !== undefined ? { output: e.output, outputDetails: { included: true } } : {}),
      ...(e.error !== undefined ? { error: e.error } : {}),
      ...(e.cause !== undefined ? { cause: e.cause } : {}),
    };
    return output;
  });

  mock.on(ListExecutionsCommand).callsFake(async (input: ListExecutionsInput) => {
    if (!machines.has(input.stateMachineArn ?? '')) {
      throw new StateMachineDoesNotExist({
        message: `State Machine Does Not Exist: '${input.stateMachineArn}'`,
        ...meta,
      });
    }
    const all = [...executions.values()]
      .filter((e) => e.stateMachineArn === input.stateMachineArn)
      .filter((e) => input.statusFilter === undefined || e.status === input.statusFilter)
      .sort(
        (a, b) => b.startDate.getTime() - a.startDate.getTime() || (a.executionArn < b.executionArn ? 1 : -1),
      );
    const { items, next } = page(all, input.nextToken, input.maxResults, pageSize, (e) => e.executionArn);
    const listed: ExecutionListItem[] = items.map((e) => ({
      executionArn: e.executionArn,
      stateMachineArn: e.stateMachineArn,
      name: e.name,
      status: e.status,
      startDate: e.startDate,
      ...(e.stopDate ? { stopDate: e.stopDate } : {}),
    }));
    return { executions: listed, ...(next ? { nextToken: next } : {}) };
  });

  mock.on(GetExecutionHistoryCommand).callsFake(async (input: GetExecutionHistoryInput) => {
    const e = find(executions, input.executionArn);
    const ordered = input.reverseOrder ? [...e.events].reverse() : [...e.events];
    const withData = input.includeExecutionData ?? true;
    const { items, next } = page(ordered, input.nextToken, input.maxResults, pageSize, (x) => String(x.id));
    return {
      events: items.map((x) => (withData ? structuredClone(x) : withoutData(x))),
      ...(next ? { nextToken: next } : {}),
    };
  });

  return {
    stateMachineArnPrefix: prefix,
    executions,
    idle: async () => {
      await Promise.all([...executions.values()].map((e) => e.settled));
    },
    restore: () => {
      for (const e of executions.values()) e.abort();
      mock.restore();
    },
  };
}

function machineName(stateMachineArn: string): string {
  return stateMachineArn.split(':')[6] ?? '';
}

function find(executions: Map<string, FakeExecution>, arn: string | undefined): FakeExecution {
  if (!/^arn:aws:states:[a-z0-9-]+:\d{12}:execution:[^:]+:[^:]+$/.test(arn ?? '')) {
    throw new InvalidArn({ message: `Invalid Arn: '${arn}'`, ...meta });
  }
  const e = executions.get(arn ?? '');
  if (!e) throw new ExecutionDoesNotExist({ message: `Execution Does Not Exist: '${arn}'`, ...meta });
  return e;
}

/** A page of at most `min(maxResults || 100, pageSize)` items after the token's item (opaque: base64 of its key). */
function page<T>(
  items: readonly T[],
  token: string | undefined,
  maxResults: number | undefined,
  pageSize: number,
  key: (item: T) => string,
): { items: T[]; next?: string } {
  let start = 0;
  if (token) {
    // The token names the last item of the previous page; a foreign token or a vanished item is InvalidToken.
    const after = Buffer.from(token, 'base64url').toString('utf8');
    const at = after.startsWith('k:') ? items.findIndex((item) => `k:${key(item)}` === after) : -1;
    if (at < 0) throw new InvalidToken({ message: `Invalid Token: '${token}'`, ...meta });
    start = at + 1;
  }
  const size = Math.min(maxResults || 100, 1000, pageSize);
  const slice = items.slice(start, start + size);
  const last = slice.at(-1);
  return {
    items: slice,
    ...(start + size < items.length && last !== undefined
      ? { next: Buffer.from(`k:${key(last)}`).toString('base64url') }
      : {}),
  };
}

/** The history event without inputs and outputs (`includeExecutionData: false`). */
function withoutData(event: HistoryEvent): HistoryEvent {
  const copy = structuredClone(event) as unknown as Record<string, Record<string, unknown> | unknown>;
  for (const value of Object.values(copy)) {
    if (value && typeof value === 'object' && !(value instanceof Date)) {
      const details = value as Record<string, unknown>;
      delete details.input;
      delete details.inputDetails;
      delete details.output;
      delete details.outputDetails;
    }
  }
  return copy as unknown as HistoryEvent;
}

/** The definition as deployed: `"${function}"` Task resources replaced by the function's ARN. */
function deploy(definition: AslDefinition, lambdaArn: (fn: string) => string): AslDefinition {
  const states: Record<string, AslState> = {};
  for (const [name, state] of Object.entries(definition.States)) {
    const substitution = /^\$\{([A-Za-z0-9_.-]+)\}$/.exec(state.Resource ?? '');
    states[name] = {
      ...state,
      ...(substitution ? { Resource: lambdaArn(substitution[1] as string) } : {}),
      ...(state.Branches ? { Branches: state.Branches.map((b) => deploy(b, lambdaArn)) } : {}),
      ...(state.ItemProcessor ? { ItemProcessor: deploy(state.ItemProcessor, lambdaArn) } : {}),
      ...(state.Iterator ? { Iterator: deploy(state.Iterator, lambdaArn) } : {}),
    };
  }
  return { ...definition, States: states };
}

/** Where each state runs: `root`, a Parallel branch (`<parallel>/<k>`) or a Map iteration (`<map>#`). */
function flows(
  definition: AslDefinition,
  flow = 'root',
  into = new Map<string, { flow: string; state: AslState }>(),
) {
  for (const [name, state] of Object.entries(definition.States)) {
    into.set(name, { flow, state });
    state.Branches?.forEach((branch, k) => {
      flows(branch, `${name}/${k}`, into);
    });
    const processor = state.ItemProcessor ?? state.Iterator;
    if (processor) flows(processor, `${name}#`, into);
  }
  return into;
}

/** `$`, `$.a.b` (the only ItemsPath forms the fake reads for MapStateStarted's `length`). */
function simplePath(path: string, input: JsonValue): JsonValue | undefined {
  if (path === '$') return input;
  if (!/^\$(\.[A-Za-z0-9_]+)+$/.test(path)) return undefined;
  let current: JsonValue | undefined = input;
  for (const part of path.slice(2).split('.')) {
    if (current === null || typeof current !== 'object' || Array.isArray(current)) return undefined;
    current = current[part];
  }
  return current;
}

interface Invocation {
  readonly input: JsonValue;
  outcome?: { ok: true; result: JsonValue } | { ok: false; error: string; cause: string };
  claimed: boolean;
}

/** An event of aws-local-stepfunctions' `eventLogs` (the fields the fake reads). */
interface LibraryEvent {
  type: string;
  input?: JsonValue;
  output?: JsonValue;
  Error?: string;
  Cause?: unknown;
  state?: { name: string; type: string; input?: JsonValue; output?: JsonValue };
  parentState?: { name: string; type: string };
  index?: number;
}

function run(args: {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  input: string;
  parsed: JsonValue;
  definition: AslDefinition;
  functions: Readonly<Record<string, FakeLambda>>;
  now: () => Date;
}): FakeExecution {
  const { definition, now } = args;
  const events: HistoryEvent[] = [];
  const located = flows(definition);
  const invocations = new Map<string, Invocation[]>();

  // Each Task state calls its Lambda function; a thrown error becomes what Lambda reports.
  const handlers: Record<string, (input: JsonValue) => Promise<JsonValue>> = {};
  for (const [stateName, { state }] of located) {
    if (state.Type !== 'Task') continue;
    const fnName = functionNameOf(state);
    const fn = fnName ? args.functions[fnName] : undefined;
    handlers[stateName] = async (input) => {
      if (!fn) {
        throw Object.assign(new Error(`Function not found: ${state.Resource}`), {
          name: 'Lambda.ResourceNotFoundException',
        });
      }
      const call: Invocation = { input, claimed: false };
      const calls = invocations.get(stateName) ?? [];
      invocations.set(stateName, calls);
      calls.push(call);
      try {
        const result = await fn(structuredClone(input));
        call.outcome = { ok: true, result };
        return result;
      } catch (error) {
        const thrown = error instanceof Error ? error : new Error(String(error));
        const cause = JSON.stringify({
          errorType: thrown.name,
          errorMessage: thrown.message,
          trace: (thrown.stack ?? `${thrown.name}: ${thrown.message}`).split('\n'),
        });
        call.outcome = { ok: false, error: thrown.name, cause };
        throw Object.assign(new Error(cause), { name: thrown.name });
      }
    };
  }

  const add = (type: string, previousEventId: number, details: Partial<HistoryEvent> = {}): number => {
    const id = events.length + 1;
    events.push({ id, previousEventId, timestamp: now(), type: type as HistoryEvent['type'], ...details });
    return id;
  };
  const json = (value: JsonValue | undefined) => JSON.stringify(value ?? null);
  const data = { truncated: false };

  /** Last event id per flow instance (`root`, `P/0`, `M#3`), and per state instance (`name@index`). */
  const flowLast = new Map<string, number>([['root', 0]]);
  const instances = new Map<string, { entered: number; last: number; started?: number }>();
  const flowOf = (stateName: string, index: number | undefined) => {
    const flow = located.get(stateName)?.flow ?? 'root';
    return flow.endsWith('#') ? `${flow}${index ?? 0}` : flow;
  };
  const instanceKey = (stateName: string, index: number | undefined) => `${stateName}@${index ?? ''}`;

  /**
   * The invocation behind a state's outcome: a finished, unclaimed call of that kind, preferring one
   * whose result is the state's output, then one whose input is the state's input (concurrent Map
   * iterations of one Task state), then the oldest.
   */
  const claim = (stateName: string, ok: boolean, state: { input?: JsonValue; output?: JsonValue }) => {
    const done = (invocations.get(stateName) ?? []).filter((c) => !c.claimed && c.outcome?.ok === ok);
    const same = (a: JsonValue | undefined, b: JsonValue | undefined) =>
      JSON.stringify(a) === JSON.stringify(b);
    const call =
      (ok && done.find((c) => c.outcome?.ok && same(c.outcome.result, state.output))) ||
      done.find((c) => same(c.input, state.input)) ||
      done[0];
    if (call) call.claimed = true;
    return call;
  };
  const lambdaEvents = (instance: { last: number }, call: Invocation, resource: string) => {
    const scheduled = add('LambdaFunctionScheduled', instance.last, {
      lambdaFunctionScheduledEventDetails: { resource, input: json(call.input), inputDetails: data },
    });
    const started = add('LambdaFunctionStarted', scheduled);
    const outcome = call.outcome;
    instance.last =
      outcome?.ok === false
        ? add('LambdaFunctionFailed', started, {
            lambdaFunctionFailedEventDetails: { error: outcome.error, cause: outcome.cause },
          })
        : add('LambdaFunctionSucceeded', started, {
            lambdaFunctionSucceededEventDetails: {
              output: json(outcome?.ok ? outcome.result : null),
              outputDetails: data,
            },
          });
  };

  const translate = (e: LibraryEvent): void => {
    const state = e.state;
    const info = state ? located.get(state.name) : undefined;
    switch (e.type) {
      case 'ExecutionStarted':
        add('ExecutionStarted', 0, {
          executionStartedEventDetails: {
            input: args.input,
            inputDetails: data,
            roleArn: `arn:aws:iam::${args.executionArn.split(':')[4]}:role/fake-state-machine-role`,
          },
        });
        return;
      case 'StateEntered': {
        if (!state) return;
        const flow = flowOf(state.name, e.index);
        const entered = add(`${state.type}StateEntered`, flowLast.get(flow) ?? 0, {
          stateEnteredEventDetails: { name: state.name, input: json(state.input), inputDetails: data },
        });
        const instance: { entered: number; last: number; started?: number } = { entered, last: entered };
        if (state.type === 'Parallel') {
          instance.started = instance.last = add('ParallelStateStarted', entered);
          (info?.state.Branches ?? []).forEach((_, k) => {
            flowLast.set(`${state.name}/${k}`, instance.started as number);
          });
        } else if (state.type === 'Map') {
          const items = simplePath(String(info?.state.ItemsPath ?? '$'), state.input ?? null);
          instance.started = instance.last = add('MapStateStarted', entered, {
            mapStateStartedEventDetails: Array.isArray(items) ? { length: items.length } : {},
          });
        }
        instances.set(instanceKey(state.name, e.index), instance);
        flowLast.set(flow, instance.last);
        return;
      }
      case 'StateFailed': {
        if (!state) return;
        const instance = instances.get(instanceKey(state.name, e.index));
        if (!instance) return;
        if (state.type === 'Task') {
          const call = claim(state.name, false, state) ?? claim(state.name, true, state);
          if (call) lambdaEvents(instance, call, String(info?.state.Resource ?? ''));
        } else if (state.type === 'Parallel' || state.type === 'Map') {
          instance.last = add(`${state.type}StateFailed`, instance.started ?? instance.entered);
        }
        // A Fail state has no event of its own besides FailStateEntered; ExecutionFailed follows.
        return;
      }
      case 'StateRetried':
      case 'StateCaught':
        // Step Functions has no such events: the next LambdaFunctionScheduled or the StateExited shows it.
        return;
      case 'StateExited': {
        if (!state) return;
        const key = instanceKey(state.name, e.index);
        const instance = instances.get(key);
        if (!instance) return;
        if (state.type === 'Task') {
          const call = claim(state.name, true, state);
          if (call) lambdaEvents(instance, call, String(info?.state.Resource ?? ''));
        } else if (
          (state.type === 'Parallel' || state.type === 'Map') &&
          instance.last === instance.started
        ) {
          instance.last = add(`${state.type}StateSucceeded`, instance.started);
        }
        const exited = add(`${state.type}StateExited`, instance.last, {
          stateExitedEventDetails: { name: state.name, output: json(state.output), outputDetails: data },
        });
        instances.delete(key);
        flowLast.set(flowOf(state.name, e.index), exited);
        return;
      }
      case 'MapIterationStarted':
      case 'MapIterationSucceeded':
      case 'MapIterationFailed': {
        const map = e.parentState?.name ?? '';
        const instance = instances.get(instanceKey(map, undefined));
        const details = { name: map, index: e.index ?? 0 };
        const flow = `${map}#${e.index ?? 0}`;
        const field =
          e.type === 'MapIterationStarted'
            ? 'mapIterationStartedEventDetails'
            : e.type === 'MapIterationSucceeded'
              ? 'mapIterationSucceededEventDetails'
              : 'mapIterationFailedEventDetails';
        const previous =
          e.type === 'MapIterationStarted'
            ? (instance?.started ?? 0)
            : (flowLast.get(flow) ?? instance?.started ?? 0);
        const id = add(e.type, previous, { [field]: details });
        if (e.type === 'MapIterationStarted') flowLast.set(flow, id);
        return;
      }
      case 'ExecutionSucceeded':
        add('ExecutionSucceeded', flowLast.get('root') ?? 0, {
          executionSucceededEventDetails: { output: json(e.output), outputDetails: data },
        });
        return;
      case 'ExecutionFailed':
        add('ExecutionFailed', events.length, {
          executionFailedEventDetails: { error: e.Error ?? 'States.Runtime', cause: causeText(e.Cause) },
        });
        return;
      case 'ExecutionTimeout':
        add('ExecutionTimedOut', events.length, {
          executionTimedOutEventDetails: { error: 'States.Timeout', cause: 'The execution timed out.' },
        });
        return;
      default:
        // ParallelBranch* events: Step Functions records none.
        return;
    }
  };

  const startDate = now();
  let abort = () => {};
  const execution: FakeExecution = {
    executionArn: args.executionArn,
    stateMachineArn: args.stateMachineArn,
    name: args.name,
    status: 'RUNNING',
    startDate,
    input: args.input,
    events,
    settled: Promise.resolve(),
    abort: () => abort(),
  };
  const settled = (async () => {
    const { StateMachine } = await import('aws-local-stepfunctions');
    const machine = new StateMachine(definition as never);
    const retryIntervalOverrides: Record<string, number> = {};
    const waitTimeOverrides: Record<string, number> = {};
    for (const [name, { state }] of located) {
      retryIntervalOverrides[name] = 0;
      if (state.Type === 'Wait') waitTimeOverrides[name] = 0;
    }
    const running = machine.run(args.parsed as never, {
      overrides: { taskResourceLocalHandlers: handlers as never, retryIntervalOverrides, waitTimeOverrides },
    });
    let stopped = false;
    abort = () => {
      stopped = true;
      running.abort();
    };
    const translating = (async () => {
      for await (const e of running.eventLogs as AsyncGenerator<LibraryEvent>) {
        if (!stopped) translate(e);
      }
    })();
    try {
      const output = (await running.result) as JsonValue;
      await translating;
      if (stopped) return;
      Object.assign(execution, { status: 'SUCCEEDED', output: JSON.stringify(output), stopDate: now() });
    } catch {
      if (stopped) return;
      await translating;
      const last = events.at(-1);
      const failed = last?.executionFailedEventDetails ?? last?.executionTimedOutEventDetails;
      Object.assign(execution, {
        status: last?.type === 'ExecutionTimedOut' ? 'TIMED_OUT' : 'FAILED',
        error: failed?.error ?? 'States.Runtime',
        cause: failed?.cause ?? '',
        stopDate: now(),
      });
    }
  })();
  (execution as { settled: Promise<void> }).settled = settled;
  return execution;
}

function causeText(cause: unknown): string {
  if (cause === undefined) return '';
  return typeof cause === 'string' ? cause : JSON.stringify(cause);
}
