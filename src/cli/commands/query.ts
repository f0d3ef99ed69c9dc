import type { Command } from 'commander';
import { pipelines } from '../../../pipelines/index.ts';
import { UsageError } from '../../core/errors.ts';
import type { QueryResult } from '../../core/ports/query-engine.ts';
import { bindNamedQuery, type NamedQuery, namedQueryName } from '../../core/query.ts';
import { openContext, resolveHome } from '../context.ts';
import { formatTable, printJson } from '../output.ts';

interface QueryFlags {
  home?: string;
  json?: boolean;
  maxRows?: string;
  param?: string[];
  list?: boolean;
  warehouse?: boolean;
}

/** Every shipped pipeline's named queries. */
export function allNamedQueries(): NamedQuery[] {
  return Object.values(pipelines).flatMap((p) => p.queries ?? []);
}

function parseParams(values: readonly string[]): Record<string, string> {
  const params: Record<string, string> = {};
  for (const value of values) {
    const eq = value.indexOf('=');
    if (eq <= 0) throw new UsageError(`--param ${value}: expected name=value, e.g. --param since=2026-11-01`);
    params[value.slice(0, eq)] = value.slice(eq + 1);
  }
  return params;
}

function printNamedQueries(queries: readonly NamedQuery[]): void {
  for (const q of queries) {
    const params = Object.entries(q.parameters ?? {})
      .map(([name, p]) => `${name} (${p.type}, default ${p.default}): ${p.description}`)
      .join('; ');
    process.stdout.write(
      `${namedQueryName(q)}  ${q.description}${params ? `\n    parameters: ${params}` : ''}\n`,
    );
  }
}

/** `sluice query "SQL"`. */
export function registerQuery(program: Command): void {
  program
    .command('query')
    .argument(
      '[sql]',
      'one SQL statement (DuckDB dialect), or the name of a named query (hashtags.top_hashtags)',
    )
    .description(
      'run SQL over the lake: every cataloged table is <pipeline>.<table>; named queries are views of the same name',
    )
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option(
      '--json',
      'print one JSON array of row objects (integers as JSON numbers, timestamps ISO-8601 UTC)',
    )
    .option('--max-rows <n>', 'rows to print as a table (default 100; --json prints all)')
    .option(
      '--param <name=value...>',
      'a named query parameter, e.g. --param since=2026-11-01 --param limit=5 (timestamps are UTC)',
    )
    .option('--list', 'list the named queries shipped with the pipelines and their parameters')
    .option(
      '--warehouse',
      "run the statement in the warehouse instead (PostgreSQL locally, Redshift on AWS; `sluice warehouse`): $SLUICE_WAREHOUSE_URL, else the home's server, started for this query when it is not running",
    )
    .addHelpText(
      'after',
      `
Examples:
  sluice query "SELECT type, count(*) AS events FROM gharchive.events GROUP BY type ORDER BY events DESC"
  sluice query "SELECT repo_name, count(*) n FROM gharchive.events WHERE year = 2015 GROUP BY 1 ORDER BY n DESC LIMIT 10" --json
  sluice query "DESCRIBE gharchive.events"
  sluice query hashtags.top_hashtags --param since=2026-11-01 --param limit=10
  sluice query "SELECT * FROM hashtags.hashtag_sentiment WHERE mentions >= 3"
  sluice query --list
  sluice query --warehouse "SELECT toll_booth, count(*) AS n, sum(transaction_amount) FROM toll_table GROUP BY 1 ORDER BY n DESC"
  sluice query --warehouse "SELECT * FROM toll_table ORDER BY transaction_id" --max-rows 20

Partition columns (year, month, dayofmonth) are regular columns; filtering on them reads only
the matching partitions. \`sluice catalog\` lists the tables.`,
    )
    .action(async (statement: string | undefined, flags: QueryFlags) => {
      const named = allNamedQueries();
      if (flags.list) {
        printNamedQueries(named);
        return;
      }
      if (statement === undefined)
        throw new UsageError('sluice query needs a SQL statement or a named query (sluice query --list)');
      if (flags.warehouse) {
        if (flags.param?.length) throw new UsageError('--param applies to named queries, not to --warehouse');
        await queryWarehouse(statement, flags);
        return;
      }
      const namedQuery = named.find((q) => namedQueryName(q) === statement.trim());
      const params = parseParams(flags.param ?? []);
      if (!namedQuery && Object.keys(params).length > 0) {
        throw new UsageError('--param applies to named queries only (sluice query --list)');
      }
      let sql = statement;
      if (namedQuery) {
        try {
          sql = bindNamedQuery(namedQuery, params);
        } catch (error) {
          throw new UsageError((error as Error).message);
        }
      }
      const maxRows = flags.maxRows !== undefined ? Number(flags.maxRows) : 100;
      const { backend, close } = await openContext({ home: resolveHome(flags.home), progress: false });
      try {
        const engine = await backend.openQueryEngine({ namedQueries: named });
        try {
          printResult(await engine.query(sql, flags.json ? {} : { maxRows }), flags.json);
        } finally {
          await engine.close();
        }
      } finally {
        await close();
      }
    });
}

function printResult(result: QueryResult, json: boolean | undefined): void {
  if (json) {
    printJson(result.rows);
    return;
  }
  process.stdout.write(`${formatTable(result.columns, result.rows)}\n`);
  process.stdout.write(
    `(${result.rows.length} row${result.rows.length === 1 ? '' : 's'}${result.truncated ? `, more not shown: --max-rows or --json` : ''})\n`,
  );
}

/** `sluice query --warehouse "SQL"`: one statement in the warehouse; SQL errors exit 6 (WarehouseError). */
async function queryWarehouse(sql: string, flags: QueryFlags): Promise<void> {
  const maxRows = flags.maxRows !== undefined ? Number(flags.maxRows) : 100;
  if (!Number.isInteger(maxRows) || maxRows < 0)
    throw new UsageError(`--max-rows ${flags.maxRows}: expected a whole number of rows`);
  const { backend, close } = await openContext({ home: resolveHome(flags.home), progress: false });
  try {
    const warehouse = await backend.openWarehouse();
    try {
      printResult(await warehouse.query(sql, [], flags.json ? {} : { maxRows }), flags.json);
    } finally {
      await warehouse.close();
    }
  } finally {
    await close();
  }
}
