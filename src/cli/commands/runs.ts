import type { Command } from 'commander';
import { systemClock } from '../../core/clock.ts';
import { RunLog } from '../../core/run.ts';
import { formatCheckSummary } from '../../engines/quality/checks.ts';
import { openContext, resolveHome } from '../context.ts';
import { formatTable, printJson } from '../output.ts';

interface RunsFlags {
  home?: string;
  json?: boolean;
  pipeline?: string;
  limit?: string;
}

/** `sluice runs`. */
export function registerRuns(program: Command): void {
  program
    .command('runs')
    .description(
      'list step runs, newest first: pipeline, step, unit, start, end, status, counts, data-quality checks, error',
    )
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option('--pipeline <name>', 'only this pipeline')
    .option('--limit <n>', 'at most this many runs (default 50)')
    .option('--json', 'print a JSON array')
    .action(async (flags: RunsFlags) => {
      const { backend, close } = await openContext({ home: resolveHome(flags.home), progress: false });
      try {
        const log = await RunLog.open(backend.kv, systemClock);
        const runs = await log.list({
          limit: flags.limit !== undefined ? Number(flags.limit) : 50,
          ...(flags.pipeline ? { pipeline: flags.pipeline } : {}),
        });
        if (flags.json) {
          printJson(runs);
          return;
        }
        if (runs.length === 0) {
          process.stdout.write('no runs yet: try `sluice demo` or `sluice run gharchive`\n');
          return;
        }
        const rows = runs.map((r) => ({
          pipeline: r.pipeline,
          step: r.step,
          unit: r.unit ?? '',
          started: r.startedAt.replace('T', ' ').slice(0, 19),
          ended: r.endedAt ? r.endedAt.replace('T', ' ').slice(0, 19) : '',
          status: r.status,
          read: r.counts?.read ?? null,
          loaded: r.counts?.loaded ?? null,
          duplicates: r.counts?.duplicates ?? null,
          quarantined: r.counts?.quarantined ?? null,
          filtered: r.counts ? (r.counts.filtered ?? 0) : null,
          checks: formatCheckSummary(r.details?.checks),
          error: r.error ?? '',
        }));
        const columns = Object.keys(rows[0] ?? {}).map((name) => ({ name }));
        process.stdout.write(`${formatTable(columns, rows, { maxWidth: 80, nullText: '' })}\n`);
      } finally {
        await close();
      }
    });
}
