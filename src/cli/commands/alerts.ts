import path from 'node:path';
import type { Command } from 'commander';
import { formatAlert } from '../../core/alert.ts';
import { requireLocalBackend, resolveHome } from '../context.ts';
import { printJson } from '../output.ts';

/** File the local notifier appends alerts to, under the home. */
export function alertsFile(home: string): string {
  return path.join(home, 'alerts.ndjson');
}

/** `sluice alerts`. */
export function registerAlerts(program: Command): void {
  program
    .command('alerts')
    .description('show the latest alerts (failed executions, pipeline alerts), oldest first')
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option('--limit <n>', 'the last N alerts (default 20)')
    .option('--json', 'print a JSON array')
    .action(async (flags: { home?: string; limit?: string; json?: boolean }) => {
      requireLocalBackend(
        'sluice alerts',
        "it reads the local alert file. On AWS alerts are published to the stack's SNS topic (its AlertTopicArn output, $SLUICE_SNS_TOPIC_ARN): subscribe to it.",
      );
      const { readAlerts } = await import('../../backends/local/local-notifier.ts');
      const alerts = await readAlerts(alertsFile(resolveHome(flags.home)), {
        limit: flags.limit !== undefined ? Number(flags.limit) : 20,
      });
      if (flags.json) {
        printJson([...alerts]);
        return;
      }
      if (alerts.length === 0) {
        process.stdout.write('no alerts\n');
        return;
      }
      process.stdout.write(`${alerts.map(formatAlert).join('\n\n')}\n`);
    });
}
