import type { JsonValue } from './ports/kv-table.ts';

/**
 * Workflows are Amazon States Language state machines (https://states-language.net/spec.html),
 * JSONPath query language, kept as the same JSON the AWS deployment gives Step Functions.
 * The types below name only what sluice reads; field names are the spec's.
 */

/** Any ASL state (only the fields sluice inspects are typed). */
export interface AslState {
  readonly Type: 'Task' | 'Pass' | 'Choice' | 'Wait' | 'Succeed' | 'Fail' | 'Parallel' | 'Map';
  readonly Resource?: string;
  readonly Parameters?: { readonly [key: string]: JsonValue };
  readonly Branches?: readonly AslDefinition[];
  /** Map state: the spec's current name (`ItemProcessor`) and the older one (`Iterator`). */
  readonly ItemProcessor?: AslDefinition;
  readonly Iterator?: AslDefinition;
  readonly [field: string]: unknown;
}

/** A state machine definition. */
export interface AslDefinition {
  readonly Comment?: string;
  readonly StartAt: string;
  readonly States: { readonly [name: string]: AslState };
  readonly TimeoutSeconds?: number;
}

/**
 * A pipeline's workflow: its ASL definition and how it may run.
 * Task `Resource`s name sluice functions as CloudFormation definition substitutions,
 * `"Resource": "${gharchive-ingest}"`: the deployment substitutes the function's ARN; locally the
 * workflow runner calls the function of that name.
 */
export interface WorkflowDefinition {
  /** Unique name, `<pipeline>-<purpose>` (`gharchive-ingest`); the state machine's name on AWS. */
  readonly name: string;
  readonly pipeline: string;
  readonly description: string;
  readonly definition: AslDefinition;
  /**
   * Most executions of this workflow running at once (the tolls original: 2). Further starts wait
   * in a queue, in start order. Default: no limit.
   */
  readonly maxConcurrency?: number;
}

/** A Task state and the function its `Resource` names. */
export interface TaskReference {
  /** The state's name (unique within its state machine or branch). */
  readonly stateName: string;
  readonly resource: string;
  /** The sluice function name, or `undefined` when the resource is not a sluice function. */
  readonly functionName: string | undefined;
}

/**
 * The sluice function a Task `Resource` names:
 * - `${name}`: a definition substitution (sluice's form);
 * - `arn:aws:lambda:<region>:<account>:function:<name>[:alias]`: a Lambda function ARN;
 * - `arn:aws:states:::lambda:invoke` with `Parameters.FunctionName`: the optimized integration.
 * @returns the function name, or `undefined` for any other resource.
 */
export function functionNameOf(state: Pick<AslState, 'Resource' | 'Parameters'>): string | undefined {
  const resource = state.Resource ?? '';
  const substitution = /^\$\{([A-Za-z0-9_.-]+)\}$/.exec(resource);
  if (substitution) return substitution[1];
  const lambda = /^arn:aws[a-z-]*:lambda:[^:]*:[^:]*:function:([A-Za-z0-9_-]+)(?::[A-Za-z0-9_$-]+)?$/.exec(
    resource,
  );
  if (lambda) return lambda[1];
  if (/^arn:aws[a-z-]*:states:::lambda:invoke(\.waitForTaskToken)?$/.test(resource)) {
    const name = state.Parameters?.FunctionName;
    if (typeof name === 'string') return functionNameOf({ Resource: name }) ?? name;
  }
  return undefined;
}

/**
 * Every Task state of a definition, including those inside Parallel branches and Map processors,
 * in definition order.
 */
export function taskStates(definition: AslDefinition): TaskReference[] {
  const tasks: TaskReference[] = [];
  const visit = (machine: AslDefinition) => {
    for (const [stateName, state] of Object.entries(machine.States)) {
      if (state.Type === 'Task') {
        tasks.push({ stateName, resource: state.Resource ?? '', functionName: functionNameOf(state) });
      }
      for (const branch of state.Branches ?? []) visit(branch);
      const processor = state.ItemProcessor ?? state.Iterator;
      if (processor) visit(processor);
    }
  };
  visit(definition);
  return tasks;
}
