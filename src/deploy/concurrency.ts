import type { JsonValue } from '../core/ports/kv-table.ts';
import type { AslDefinition, AslState } from '../core/workflow.ts';

/**
 * `WorkflowDefinition.maxConcurrency` on AWS Step Functions, which has no per-state-machine limit:
 * the semaphore pattern of the AWS blog "Controlling concurrency in distributed systems using AWS
 * Step Functions" (https://aws.amazon.com/blogs/compute/controlling-concurrency-in-distributed-systems-using-aws-step-functions/),
 * a DynamoDB item per workflow whose conditional counter is the semaphore, taken and given back by
 * the state machine itself through the optimized DynamoDB integration
 * (https://docs.aws.amazon.com/step-functions/latest/dg/connect-ddb.html).
 *
 * The slot item (table `<tablePrefix>sluice_workflow_slots`, hash key `workflow` S):
 * `{ workflow: "<workflow>", running: N <holders>, "<execution ARN>": S <execution start time> ... }`.
 * Each holder is a top-level attribute named after its execution ARN (as in the blog's sample),
 * not an entry of a `holders` map: `SET holders.#id` fails with a ValidationException ("The
 * document path provided in the update expression is invalid for update") while the map does not
 * exist yet, i.e. on a workflow's first execution, and creating it first would cost one more
 * write per execution.
 */

/** Slot table name after the stack's table prefix: `sluice-<pipeline>-sluice_workflow_slots`. */
export const SLOTS_TABLE = 'sluice_workflow_slots';
/** Hash key (S) of the slot table: the workflow (state machine) name. */
export const SLOTS_HASH_KEY = 'workflow';
/** Number attribute of a slot item: executions holding a slot. */
export const SLOTS_COUNTER = 'running';

/**
 * Prefix of the wrapper's own state names. `StepFunctionsRunner` hides states with this prefix from
 * `history()` and `failedState` (its `WRAPPER_STATE_PREFIX`, the same string), so a wrapped
 * execution reads like the pipeline's own ASL run locally. Not `sluice_`: state names must not
 * contain `:` (nor whitespace, brackets, `? * " # % \ ^ | ~ \` $ & , ; /`), and CloudWatch logging
 * wants only `0-9A-Za-z-_` (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StateEnteredEventDetails.html).
 */
export const SEMAPHORE_STATE_PREFIX = 'sluice_';

/** The wrapper's states, by role. */
export const SEMAPHORE_STATES = {
  acquire: `${SEMAPHORE_STATE_PREFIX}AcquireSlot`,
  run: `${SEMAPHORE_STATE_PREFIX}Run`,
  release: `${SEMAPHORE_STATE_PREFIX}ReleaseSlot`,
  released: `${SEMAPHORE_STATE_PREFIX}Done`,
  releaseAfterFailure: `${SEMAPHORE_STATE_PREFIX}ReleaseSlotAfterFailure`,
  reraise: `${SEMAPHORE_STATE_PREFIX}Failed`,
  noSlot: `${SEMAPHORE_STATE_PREFIX}NoSlot`,
} as const;

/**
 * Error name Step Functions gives a DynamoDB `ConditionalCheckFailedException` raised through the
 * optimized integration: the exception name prefixed with `DynamoDB.`
 * (https://docs.aws.amazon.com/step-functions/latest/dg/connect-ddb.html, as the AWS blog's sample
 * matches it).
 */
export const CONDITION_FAILED_ERROR = 'DynamoDB.ConditionalCheckFailedException';
/** Error of an execution that waited for a slot longer than its acquire retries allow. */
export const NO_SLOT_ERROR = 'sluice.ConcurrencyLimitWait';
/** DynamoDB errors worth retrying when giving a slot back (throttling, 5xx). */
const TRANSIENT_DYNAMODB_ERRORS = [
  'DynamoDB.ProvisionedThroughputExceededException',
  'DynamoDB.RequestLimitExceeded',
  'DynamoDB.ThrottlingException',
  'DynamoDB.InternalServerErrorException',
  'DynamoDB.AmazonDynamoDBException',
];

/** The optimized integration the wrapper's slot states call. */
export const UPDATE_ITEM_RESOURCE = 'arn:aws:states:::dynamodb:updateItem';

/** The acquire backoff: first wait, growth, cap, all in seconds (ASL `Retry` fields). */
export const ACQUIRE_BACKOFF = { intervalSeconds: 5, backoffRate: 1.5, maxDelaySeconds: 60 } as const;
/** Seconds added to the wrapped machine's `TimeoutSeconds` for taking and giving back the slot. */
const SLOT_OVERHEAD_SECONDS = 300;
/** Default wait for a slot when the definition has no `TimeoutSeconds`: one hour. */
const DEFAULT_WAIT_SECONDS = 3600;

/** Options of {@link wrapWithSemaphore}. */
export interface SemaphoreOptions {
  /** The workflow (state machine) name: the slot item's key. */
  readonly workflow: string;
  /** Most executions holding a slot at once (an integer >= 1). */
  readonly maxConcurrency: number;
  /** The slot table's name; a CloudFormation token or a `${substitution}` is fine (copied as is). */
  readonly table: string;
  /**
   * How long an execution waits for a slot, in seconds. Default: the definition's
   * `TimeoutSeconds` (the longest an execution holding the slot can run), else one hour.
   */
  readonly maxWaitSeconds?: number;
}

/**
 * The `MaxAttempts` of the acquire retrier so that the expected total wait reaches `waitSeconds`:
 * retry n waits a random time in [0, min(5 * 1.5^(n-1), 60)] s (`JitterStrategy: FULL`), i.e. half of
 * that on average: 2.5, 3.75, 5.6, ... then 30 s per retry once capped. One hour takes 125 attempts,
 * a day 2,885 (each retry is a state transition, billed as such).
 */
export function acquireAttempts(waitSeconds: number): number {
  const { intervalSeconds, backoffRate, maxDelaySeconds } = ACQUIRE_BACKOFF;
  let total = 0;
  let attempts = 0;
  while (total < waitSeconds) {
    total += Math.min(intervalSeconds * backoffRate ** attempts, maxDelaySeconds) / 2;
    attempts++;
  }
  return Math.max(1, attempts);
}

/**
 * `definition` as a Parallel branch: its `StartAt`, `States` and `Comment` unchanged, without the
 * fields only a whole state machine takes (`TimeoutSeconds`, `Version`): the ASL specification
 * gives a branch `States` and `StartAt` "exactly like those of the top level of a state machine"
 * and nothing else, so Step Functions' validator may refuse more. The original's
 * `TimeoutSeconds` still bounds the execution, through the wrapper's own (see
 * {@link wrapWithSemaphore}).
 */
export function asBranch(definition: AslDefinition): AslDefinition {
  return {
    ...(definition.Comment === undefined ? {} : { Comment: definition.Comment }),
    StartAt: definition.StartAt,
    States: definition.States,
  };
}

/**
 * Wraps a workflow's ASL in a semaphore of `maxConcurrency` slots (the states are named
 * `sluice_<role>`, {@link SEMAPHORE_STATES}):
 *
 * 1. `sluice_AcquireSlot`: UpdateItem `ADD running :one SET #id = :started` (`#id` the execution ARN
 *    `$$.Execution.Id`, `:started` `$$.Execution.StartTime`) if `attribute_not_exists(running) OR
 *    running < :max`, `ResultPath: null` (the input passes through). A full semaphore fails the
 *    condition (`DynamoDB.ConditionalCheckFailedException`), retried with {@link ACQUIRE_BACKOFF}
 *    and full jitter for `maxWaitSeconds` on average ({@link acquireAttempts}); then `sluice_NoSlot`
 *    fails the execution with {@link NO_SLOT_ERROR}. Transient DynamoDB errors are retried too.
 * 2. `sluice_Run`: a Parallel whose one branch is `definition`'s states verbatim ({@link asBranch});
 *    `OutputPath: '$[0]'` makes its
 *    output the branch's, so the execution's output is the original's. Any failure is caught into
 *    `$.error` → `sluice_ReleaseSlotAfterFailure` → `sluice_Failed`, a Fail state re-raising the
 *    original `Error` and `Cause` (`ErrorPath`/`CausePath`).
 * 3. `sluice_ReleaseSlot`: UpdateItem `ADD running :minus_one REMOVE #id` if `attribute_exists(#id)`,
 *    `ResultPath: null`; a failed condition means the slot was already given back (idempotent) and
 *    is caught to `sluice_Done` (Succeed). Other errors after retries fail the execution, and the
 *    EventBridge rule's release function ({@link slotReleaseHandler}) gives the slot back.
 *
 * Executions that stop without step 3 (ABORTED, TIMED_OUT, a release that failed) are released
 * by that rule. The wrapped machine's `TimeoutSeconds` is the original's plus the wait plus 300 s.
 *
 * A non-object execution input cannot take `$.error` (`States.ResultPathMatchFailure` ends the
 * execution without the in-machine release; the rule releases it): sluice inputs are objects.
 * @throws {Error} when `maxConcurrency` is not a positive integer or `workflow`/`table` is empty.
 */
export function wrapWithSemaphore(definition: AslDefinition, options: SemaphoreOptions): AslDefinition {
  const { workflow, maxConcurrency, table } = options;
  if (!Number.isInteger(maxConcurrency) || maxConcurrency < 1)
    throw new Error(`workflow ${workflow}: maxConcurrency must be an integer >= 1, got ${maxConcurrency}`);
  if (!workflow || !table) throw new Error('wrapWithSemaphore needs a workflow name and a table');
  const waitSeconds = Math.max(
    1,
    options.maxWaitSeconds ?? definition.TimeoutSeconds ?? DEFAULT_WAIT_SECONDS,
  );
  const s = SEMAPHORE_STATES;
  const key = { [SLOTS_HASH_KEY]: { S: workflow } };
  const holder = { '#id.$': '$$.Execution.Id' };
  const release = (next: Record<string, JsonValue>): AslState => ({
    Type: 'Task',
    Comment: `Gives this execution's slot of ${workflow} back; a slot already given back fails the condition`,
    Resource: UPDATE_ITEM_RESOURCE,
    Parameters: {
      TableName: table,
      Key: key,
      UpdateExpression: `ADD ${SLOTS_COUNTER} :minus_one REMOVE #id`,
      ConditionExpression: 'attribute_exists(#id)',
      ExpressionAttributeNames: holder,
      ExpressionAttributeValues: { ':minus_one': { N: '-1' } },
    },
    ResultPath: null,
    Retry: [{ ErrorEquals: TRANSIENT_DYNAMODB_ERRORS, IntervalSeconds: 1, BackoffRate: 2, MaxAttempts: 6 }],
    ...next,
  });
  const states: Record<string, AslState> = {
    [s.acquire]: {
      Type: 'Task',
      Comment: `Takes one of ${maxConcurrency} slot(s) of ${workflow}; waits (retries) while all are taken`,
      Resource: UPDATE_ITEM_RESOURCE,
      Parameters: {
        TableName: table,
        Key: key,
        UpdateExpression: `ADD ${SLOTS_COUNTER} :one SET #id = :started`,
        ConditionExpression: `attribute_not_exists(${SLOTS_COUNTER}) OR ${SLOTS_COUNTER} < :max`,
        ExpressionAttributeNames: holder,
        ExpressionAttributeValues: {
          ':one': { N: '1' },
          ':max': { N: String(maxConcurrency) },
          ':started': { 'S.$': '$$.Execution.StartTime' },
        },
      },
      ResultPath: null,
      Retry: [
        {
          ErrorEquals: [CONDITION_FAILED_ERROR],
          IntervalSeconds: ACQUIRE_BACKOFF.intervalSeconds,
          BackoffRate: ACQUIRE_BACKOFF.backoffRate,
          MaxDelaySeconds: ACQUIRE_BACKOFF.maxDelaySeconds,
          JitterStrategy: 'FULL',
          MaxAttempts: acquireAttempts(waitSeconds),
        },
        { ErrorEquals: TRANSIENT_DYNAMODB_ERRORS, IntervalSeconds: 1, BackoffRate: 2, MaxAttempts: 6 },
      ],
      Catch: [{ ErrorEquals: [CONDITION_FAILED_ERROR], Next: s.noSlot }],
      Next: s.run,
    },
    [s.run]: {
      Type: 'Parallel',
      Comment: `The workflow ${workflow} itself (its ASL unchanged)`,
      Branches: [asBranch(definition)],
      OutputPath: '$[0]',
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: s.releaseAfterFailure }],
      Next: s.release,
    },
    [s.release]: release({
      Catch: [{ ErrorEquals: [CONDITION_FAILED_ERROR], ResultPath: null, Next: s.released }],
      Next: s.released,
    }),
    [s.released]: { Type: 'Succeed' },
    [s.releaseAfterFailure]: release({
      // Whatever happens here, the original failure is re-raised; the rule releases a slot left held.
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: null, Next: s.reraise }],
      Next: s.reraise,
    }),
    [s.reraise]: { Type: 'Fail', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' },
    [s.noSlot]: {
      Type: 'Fail',
      Error: NO_SLOT_ERROR,
      Cause: `no slot of workflow ${workflow} (maxConcurrency ${maxConcurrency}) came free within about ${waitSeconds} s`,
    },
  };
  return {
    Comment: `${definition.Comment ?? workflow} (at most ${maxConcurrency} at once: sluice semaphore)`,
    StartAt: s.acquire,
    States: states,
    TimeoutSeconds: (definition.TimeoutSeconds ?? DEFAULT_WAIT_SECONDS) + waitSeconds + SLOT_OVERHEAD_SECONDS,
  };
}
