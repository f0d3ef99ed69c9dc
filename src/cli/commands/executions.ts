import type { Command } from 'commander';
import { ExecutionStore } from '../../backends/local/local-workflow-runner.ts';
import { NotFoundError, UsageError } from '../../core/errors.ts';
import type { ExecutionStatus } from '../../core/ports/workflow-runner.ts';
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

/** `sluice executions` and `sluice execution <id>`. */
export function registerExecutions(program: Command): void {
  program
    .command('executions')
    .description(
      'list workflow executions, newest first: id, workflow, status, start, duration, source, error',
    )
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option('--pipeline <name>', 'only this pipeline')
    .option('--workflow <name>', 'only this workflow')
    .option('--status <status>', `only this status (${STATUSES.join(', ')})`)
    .option('--limit <n>', 'at most this many (default 50)')
    .option('--json', 'print a JSON array of execution records')
    .action(async (flags: ListFlags) => {
      const status = flags.status?.toUpperCase();
      if (status !== undefined && !STATUSES.includes(status as ExecutionStatus)) {
        throw new UsageError(`--status "${flags.status}": expected one of ${STATUSES.join(', ')}`);
      }
      const { backend, close } = await openContext({ home: resolveHome(flags.home), progress: false });
      try {
        const store = await ExecutionStore.open(backend.kv);
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
      const { backend, close } = await openContext({ home: resolveHome(flags.home), progress: false });
      try {
        const store = await ExecutionStore.open(backend.kv);
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
