import type { Command } from 'commander';
import { openContext, resolveHome } from '../context.ts';
import { formatTable, printJson } from '../output.ts';

interface QueryFlags {
  home?: string;
  json?: boolean;
  maxRows?: string;
}

/** `sluice query "SQL"`. */
export function registerQuery(program: Command): void {
  program
    .command('query')
    .argument('<sql>', 'one SQL statement (DuckDB dialect)')
    .description('run SQL over the analytical layer: every cataloged table is <pipeline>.<table>')
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option(
      '--json',
      'print one JSON array of row objects (integers as JSON numbers, timestamps ISO-8601 UTC)',
    )
    .option('--max-rows <n>', 'rows to print as a table (default 100; --json prints all)')
    .addHelpText(
      'after',
      `
Examples:
  sluice query "SELECT type, count(*) AS events FROM gharchive.events GROUP BY type ORDER BY events DESC"
  sluice query "SELECT repo_name, count(*) n FROM gharchive.events WHERE year = 2015 GROUP BY 1 ORDER BY n DESC LIMIT 10" --json
  sluice query "DESCRIBE gharchive.events"

Partition columns (year, month, dayofmonth) are regular columns; filtering on them reads only
the matching partitions. \`sluice catalog\` lists the tables.`,
    )
    .action(async (sql: string, flags: QueryFlags) => {
      const maxRows = flags.maxRows !== undefined ? Number(flags.maxRows) : 100;
      const { backend, close } = await openContext({ home: resolveHome(flags.home), progress: false });
      try {
        const engine = await backend.openQueryEngine();
        try {
          const result = await engine.query(sql, flags.json ? {} : { maxRows });
          if (flags.json) {
            printJson(result.rows);
            return;
          }
          process.stdout.write(`${formatTable(result.columns, result.rows)}\n`);
          process.stdout.write(
            `(${result.rows.length} row${result.rows.length === 1 ? '' : 's'}${result.truncated ? `, more not shown: --max-rows or --json` : ''})\n`,
          );
        } finally {
          await engine.close();
        }
      } finally {
        await close();
      }
    });
}
