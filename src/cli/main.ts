import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { describeError, ExitCode, SluiceError } from '../core/errors.ts';
import { registerAlerts } from './commands/alerts.ts';
import { registerCatalog } from './commands/catalog.ts';
import { registerConfig } from './commands/config.ts';
import { registerCrawl } from './commands/crawl.ts';
import { registerDemo } from './commands/demo.ts';
import { registerDeploy } from './commands/deploy.ts';
import { registerExecutions } from './commands/executions.ts';
import { registerFixtureServer } from './commands/fixture-server.ts';
import { registerGenerate } from './commands/generate.ts';
import { registerQuery } from './commands/query.ts';
import { registerRun } from './commands/run.ts';
import { registerRuns } from './commands/runs.ts';
import { registerSchedules } from './commands/schedules.ts';
import { registerServe } from './commands/serve.ts';
import { registerUp } from './commands/up.ts';
import { registerWarehouse } from './commands/warehouse.ts';
import { selectBackend } from './context.ts';

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** Builds the `sluice` command tree. */
export function buildProgram(): Command {
  const program = new Command('sluice')
    .version(version)
    .description(
      'ETL/ELT pipelines on one machine with embedded engines; the same pipelines deploy to AWS serverless.',
    )
    .option(
      '--backend <local|aws>',
      'local (embedded engines under --home) or aws (the deployed stack the environment names); default $SLUICE_BACKEND, else local',
    )
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .hook('preAction', (command) => selectBackend(command.opts<{ backend?: string }>().backend))
    .addHelpText(
      'after',
      `
Start here:
  sluice demo                         run the reference pipelines on bundled real data
  sluice query "SELECT count(*) FROM gharchive.events"
  sluice catalog                      tables, columns, partitions
  sluice runs                         run history with record counts

State lives in --home (default $SLUICE_HOME or ./.sluice): lake/<layer>/..., sluice.db, logs/.
Against a deployed stack: --backend aws (or SLUICE_BACKEND=aws) with the stack's SluiceEnv output
in the environment; query, catalog, runs, config, crawl, generate and executions then use AWS.
Exit codes: docs/cli.md.`,
    );
  registerDemo(program);
  registerRun(program);
  registerGenerate(program);
  registerQuery(program);
  registerWarehouse(program);
  registerCatalog(program);
  registerRuns(program);
  registerCrawl(program);
  registerUp(program);
  registerExecutions(program);
  registerSchedules(program);
  registerConfig(program);
  registerAlerts(program);
  registerServe(program);
  registerFixtureServer(program);
  registerDeploy(program);
  return program;
}

/** Runs the CLI with `argv` and sets `process.exitCode`. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end with code 0; usage errors were already printed by commander.
      process.exitCode = error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
      return;
    }
    process.stderr.write(`error: ${describeError(error)}\n`);
    process.exitCode = error instanceof SluiceError ? error.exitCode : ExitCode.internal;
    if (!(error instanceof SluiceError) && process.env.SLUICE_DEBUG) console.error(error);
  }
}

// `sluice query ... | head`: the reader went away; stop quietly, as Unix tools do.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

await main(process.argv);
