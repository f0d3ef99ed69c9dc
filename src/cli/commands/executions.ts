import type { Command } from 'commander';
import { pipelines } from '../../../pipelines/index.ts';
import { AWS_ENV } from '../../backends/aws/config.ts';
import { ExecutionStore } from '../../backends/local/local-workflow-runner.ts';
import { NotFoundError, UsageError } from '../../core/errors.ts';
import type { ExecutionStatus, WorkflowRunner } from '../../core/ports/workflow-runner.ts';
import { openContext, resolveHome } from '../context.ts';
import { formatDuration, formatTable, printJson } from '../output.ts';

const STATUSES: ExecutionStatus[] = ['RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED'];

interface ListFlags {
  home?: string;
  pipeline?: string;
  workflow?: string;
  status?: string;
  limit?: string;
  json?: boolean;
}

/** A deployed stack's pipeline (its `SluiceEnv` output; the variable src/runtime/aws/runtime.ts reads). */
const PIPELINE_ENV = 'SLUICE_PIPELINE';

/**
 * Where the executions are. Local: the run history the local workflow runner keeps in the
 * `executions` table. AWS: Step Functions through `StepFunctionsRunner` (`ListExecutions`,
 * `DescribeExecution`, `GetExecutionHistory`; ids are execution ARNs), over the state machines of
 * `pipeline`, else of `$SLUICE_PIPELINE` (a stack deploys one pipeline's), else of every shipped
 * pipeline (each must then be deployed in this account and region).
 * @throws {UsageError} for an unknown pipeline, or on aws without `$SLUICE_STATE_MACHINE_ARN_PREFIX`.
 */
async function openExecutionHistory(
  opened: Awaited<ReturnType<typeof openContext>>,
  pipeline: string | undefined,
): Promise<Pick<WorkflowRunner, 'list' | 'describe' | 'history'>> {
  if (!opened.awsConfig) return ExecutionStore.open(opened.backend.kv);
  const name = pipeline ?? (process.env[PIPELINE_ENV] || undefined);
  if (name !== undefined && !pipelines[name]) {
    throw new UsageError(`unknown pipeline "${name}": expected one of ${Object.keys(pipelines).join(', ')}`);
  }
  if (opened.awsConfig.stateMachineArnPrefix === undefined) {
    throw new UsageError(
      `the aws backend needs ${AWS_ENV.stateMachineArnPrefix} (arn:aws:states:<region>:<account>:stateMachine:) to read executions; the stack's SluiceEnv output sets it`,
    );
  }
  const workflows = Object.values(pipelines)
    .filter((p) => name === undefined || p.name === name)
    .flatMap((p) => p.workflows ?? []);
  const { createAwsWorkflowRunner } = await import('../../backends/aws/aws-backend.ts');
  return createAwsWorkflowRunner(opened.awsConfig, workflows);
}

/** `sluice executions` and `sluice execution <id>`. */
export function registerExecutions(program: Command): void {
  program
    .command('executions')
    .description(
      'list workflow executions, newest first: id, workflow, status, start, duration, source, error',
    )
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option('--pipeline <name>', 'only this pipeline (on aws default $SLUICE_PIPELINE: Step Functions)')
    .option('--workflow <name>', 'only this workflow')
    .option('--status <status>', `only this status (${STATUSES.join(', ')})`)
    .option('--limit <n>', 'at most this many (default 50)')
    .option('--json', 'print a JSON array of execution records')
    .action(async (flags: ListFlags) => {
      const status = flags.status?.toUpperCase();
      if (status !== undefined && !STATUSES.includes(status as ExecutionStatus)) {
        throw new UsageError(`--status "${flags.status}": expected one of ${STATUSES.join(', ')}`);
      }
      const opened = await openContext({ home: resolveHome(flags.home), progress: false });
      const { close } = opened;
      try {
        const store = await openExecutionHistory(opened, flags.pipeline);
        const records = await store.list({
          limit: flags.limit !== undefined ? Number(flags.limit) : 50,
          ...(flags.pipeline ? { pipeline: flags.pipeline } : {}),
          ...(flags.workflow ? { workflow: flags.workflow } : {}),
          ...(status ? { status: status as ExecutionStatus } : {}),
        });
        if (flags.json) {
          printJson(records);
          return;
        }
        if (records.length === 0) {
          process.stdout.write(
            'no executions yet: `sluice up` runs the workflows on their schedules and triggers\n',
          );
          return;
        }
        const rows = records.map((r) => ({
          execution: r.executionId,
          status: r.status,
          started: r.startedAt.replace('T', ' ').slice(0, 19),
          duration: r.stoppedAt
            ? formatDuration(Date.parse(r.stoppedAt) - Date.parse(r.startedAt))
            : 'running',
          source: r.source ? `${r.source.kind}:${r.source.name}` : '',
          error: r.error ? `${r.failedState ? `${r.failedState}: ` : ''}${r.error}: ${r.cause ?? ''}` : '',
        }));
        process.stdout.write(
          `${formatTable(
            Object.keys(rows[0] ?? {}).map((name) => ({ name })),
            rows,
            { maxWidth: 70 },
          )}\n`,
        );
      } finally {
        await close();
      }
    });

  program
    .command('execution')
    .argument('<id>', 'execution id, as `sluice executions` prints it')
    .description(
      'show one execution: input, output, status, and every state entered, exited, retried, caught or failed',
    )
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option('--json', 'print { execution, events } as JSON')
    .action(async (id: string, flags: { home?: string; json?: boolean }) => {
      const opened = await openContext({ home: resolveHome(flags.home), progress: false });
      const { close } = opened;
      try {
        const store = await openExecutionHistory(opened, undefined);
        const execution = await store.describe(id);
        if (!execution) throw new NotFoundError(`no execution "${id}" (see \`sluice executions\`)`);
        const events = await store.history(id);
        if (flags.json) {
          printJson({ execution, events });
          return;
        }
        const start = Date.parse(execution.startedAt);
        const lines = [
          `${execution.executionId}`,
          `  workflow ${execution.workflow} (pipeline ${execution.pipeline}), ${execution.status}`,
          `  started ${execution.startedAt}${execution.stoppedAt ? `, stopped ${execution.stoppedAt} (${formatDuration(Date.parse(execution.stoppedAt) - start)})` : ''}`,
          ...(execution.source
            ? [
                `  started by ${execution.source.kind} ${execution.source.name}${execution.source.detail ? ` (${execution.source.detail})` : ''}`,
              ]
            : []),
          `  input  ${JSON.stringify(execution.input)}`,
          ...(execution.output !== undefined ? [`  output ${JSON.stringify(execution.output)}`] : []),
          ...(execution.error
            ? [
                `  error  ${execution.failedState ? `in ${execution.failedState}: ` : ''}${execution.error}: ${execution.cause ?? ''}`,
              ]
            : []),
          '',
        ];
        const rows = events.map((e) => ({
          '#': e.seq,
          '+ms': Date.parse(e.timestamp) - start,
          event: e.type,
          state:
            e.state ??
            (e.parent ? `${e.parent.state}${e.parent.index !== undefined ? `[${e.parent.index}]` : ''}` : ''),
          detail: e.error
            ? `${e.error}: ${e.cause ?? ''}`
            : e.retry
              ? `attempt ${e.retry.attempt} (${e.retry.errorEquals.join(', ')})`
              : '',
        }));
        process.stdout.write(
          `${lines.join('\n')}${formatTable(
            Object.keys(rows[0] ?? { '#': 0 }).map((name) => ({ name })),
            rows,
            { maxWidth: 90 },
          )}\n`,
        );
      } finally {
        await close();
      }
    });
}
