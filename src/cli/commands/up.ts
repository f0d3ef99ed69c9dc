import path from 'node:path';
import type { Command } from 'commander';
import { pipelineModules } from '../../../pipelines/index.ts';
import { formatAlert } from '../../core/alert.ts';
import { openContext, requireLocalBackend, resolveHome } from '../context.ts';
import { parsePort } from '../serving.ts';
import { alertsFile } from './alerts.ts';

interface UpFlags {
  home?: string;
  grace?: string;
  webhook?: string;
  watch?: boolean;
  serve?: boolean;
  port?: string;
}

/** `sluice up`. */
export function registerUp(program: Command): void {
  program
    .command('up')
    .description('run every pipeline live: schedules, object-created triggers and workflows, until Ctrl-C')
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option('--grace <seconds>', 'on shutdown, how long running executions may take to finish (default 30)')
    .option('--webhook <url>', 'also POST alerts to this URL (default $SLUICE_ALERT_WEBHOOK)')
    .option('--no-watch', 'do not watch the lake for files copied in by hand')
    .option('--no-serve', 'do not serve the dashboard')
    .option('--port <n>', 'dashboard port (default 8080; 0 picks a free one)')
    .addHelpText(
      'after',
      `
The local equivalent of a deployed stack being live:
  - schedules (EventBridge expressions, UTC) start workflows: \`sluice schedules\` lists them;
  - a file landing in the lake (written by a pipeline, or copied into <home>/lake/landing/<pipeline>/)
    starts the workflows of the matching object-created triggers, once per object version;
  - workflows are Amazon States Language state machines; \`sluice executions\` and
    \`sluice execution <id>\` show their history;
  - a failed execution raises an alert on the console, in <home>/alerts.ndjson and, if set, the webhook;
  - \`sluice config set <pipeline> <key> <value>\` reaches running functions without a restart.
Ctrl-C (SIGINT) or SIGTERM stops gracefully: schedules and triggers stop, running executions get
--grace seconds to finish, the rest are recorded ABORTED and redone on the next start.`,
    )
    .action(async (flags: UpFlags) => {
      requireLocalBackend(
        'sluice up',
        'it runs schedules, triggers and workflows on this machine. On AWS, EventBridge Scheduler, S3 notifications and Step Functions run them: `sluice deploy`.',
      );
      const home = resolveHome(flags.home);
      // Checked before anything starts: a bad flag must not leave a half-started stack behind.
      const dashboardPort = parsePort(flags.port, 8080);
      const graceMs = (flags.grace !== undefined ? Number(flags.grace) : 30) * 1000;
      const { LocalStack } = await import('../../runtime/local/local-stack.ts');
      const { LocalNotifier } = await import('../../backends/local/local-notifier.ts');
      const { ctx, backend, close } = await openContext({ home, progress: false });
      const webhookUrl = flags.webhook ?? process.env.SLUICE_ALERT_WEBHOOK;
      const notifier = new LocalNotifier({
        file: alertsFile(home),
        console: process.stderr,
        clock: ctx.clock,
        ...(webhookUrl ? { webhookUrl } : {}),
      });
      const out = (line: string) =>
        process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
      const stack = await LocalStack.start({
        ctx,
        lakeRoot: path.join(home, 'lake'),
        modules: Object.values(pipelineModules),
        notifier,
        watch: flags.watch === false ? false : {},
        onExecutionStarted: (id, _workflow, source) => out(`started  ${id} (${source})`),
        onExecutionFinished: (record) =>
          out(
            `${record.status.toLowerCase().padEnd(8)} ${record.executionId}${record.error ? `: ${record.error}` : ''}`,
          ),
      });
      out(`sluice up (home ${home}): ${Object.keys(pipelineModules).join(', ')}`);
      // Pipelines that load a warehouse get it started now (and stopped with the stack, unless
      // it was already running or is SLUICE_WAREHOUSE_URL), not on the first file.
      const needsWarehouse = Object.values(pipelineModules).filter(
        (m) => (m.definition.warehouseTables ?? []).length > 0,
      );
      if (needsWarehouse.length > 0) {
        const warehouse = await backend.openWarehouse();
        await warehouse.query('SELECT 1');
        await warehouse.close();
        out(
          `  warehouse ${warehouse.engine} ready for ${needsWarehouse.map((m) => m.definition.name).join(', ')}`,
        );
      }
      for (const info of await stack.scheduler.describe(1)) {
        out(
          `  schedule ${info.schedule.name}: ${info.schedule.expression} -> ${info.schedule.workflow}, next ${info.next[0]?.toISOString() ?? 'never'}`,
        );
      }
      for (const module of Object.values(pipelineModules)) {
        for (const t of module.definition.triggers ?? []) {
          out(`  trigger  ${t.name}: ${t.layer}/${t.prefix}*${t.suffix} -> ${t.workflow}`);
        }
      }
      // The dashboard runs with the stack; a port in use is a warning, not a reason to stop.
      let dashboard: { openUrl: string; close(): Promise<void> } | undefined;
      if (flags.serve !== false) {
        try {
          const { startDashboard } = await import('../../dashboard/server.ts');
          dashboard = await startDashboard({ backend, port: dashboardPort });
          out(`  dashboard ${dashboard.openUrl}`);
        } catch (error) {
          out(
            `  dashboard not started: ${(error as Error).message} (--port N picks another port, --no-serve skips it)`,
          );
        }
      }
      out('running; Ctrl-C to stop');
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: string) => {
          if (stopping) {
            out(`${signal} again: exiting now`);
            process.exit(130);
          }
          stopping = true;
          out(`${signal}: stopping (running executions get ${graceMs / 1000} s)`);
          stack
            .stop(graceMs)
            .then(() => dashboard?.close())
            .then(() => close())
            .then(resolve, (error: unknown) => {
              process.stderr.write(
                `${formatAlert({ severity: 'error', title: 'shutdown failed', pipeline: '-', cause: String(error), at: new Date().toISOString() })}\n`,
              );
              resolve();
            });
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
      out('stopped');
    });
}
