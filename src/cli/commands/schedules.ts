import type { Command } from 'commander';
import { pipelines } from '../../../pipelines/index.ts';
import { LocalScheduler } from '../../runtime/local/local-scheduler.ts';
import { openContext, requireLocalBackend, resolveHome } from '../context.ts';
import { formatTable, printJson } from '../output.ts';

/** `sluice schedules`. */
export function registerSchedules(program: Command): void {
  program
    .command('schedules')
    .description(
      'list every schedule with its expression, workflow, missed-run policy and next three fire times (UTC)',
    )
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option('--json', 'print a JSON array')
    .addHelpText(
      'after',
      `
Expressions are EventBridge Scheduler's: rate(N minute|minutes|hour|hours|day|days) and
cron(minutes hours day-of-month month day-of-week year), in UTC. rate() fire times are anchored at
the Unix epoch (rate(1 hour) fires at the top of each hour). \`sluice up\` runs them. After downtime,
a schedule's missed-run policy applies: run-once fires once for the latest missed time, skip fires
nothing.`,
    )
    .action(async (flags: { home?: string; json?: boolean }) => {
      requireLocalBackend(
        'sluice schedules',
        "it reads the local scheduler's state. On AWS, EventBridge Scheduler runs the schedules: `aws scheduler list-schedules`.",
      );
      const { ctx, close } = await openContext({ home: resolveHome(flags.home), progress: false });
      try {
        const schedules = Object.values(pipelines).flatMap((p) => p.schedules ?? []);
        const scheduler = new LocalScheduler({
          kv: ctx.backend.kv,
          clock: ctx.clock,
          schedules,
          fire: async () => {},
        });
        const infos = await scheduler.describe(3);
        if (flags.json) {
          printJson(
            infos.map((i) => ({
              ...i.schedule,
              next: i.next.map((d) => d.toISOString()),
              lastHandled: i.lastHandled ?? null,
            })),
          );
          return;
        }
        const rows = infos.map((i) => ({
          schedule: i.schedule.name,
          expression: i.schedule.expression,
          workflow: i.schedule.workflow,
          'missed runs': i.schedule.missedRunPolicy,
          next: i.next.map((d) => d.toISOString().slice(0, 16).replace('T', ' ')).join(', '),
          'last handled': i.lastHandled?.slice(0, 16).replace('T', ' ') ?? '',
        }));
        process.stdout.write(
          `${formatTable(
            Object.keys(rows[0] ?? { schedule: '' }).map((name) => ({ name })),
            rows,
            { maxWidth: 60 },
          )}\n`,
        );
      } finally {
        await close();
      }
    });
}
