import type { Command } from 'commander';
import { PostgresServer, type WarehouseServerStatus } from '../../backends/local/postgres-server.ts';
import { UsageError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { requireLocalBackend, resolveHome } from '../context.ts';
import { formatDuration, printJson } from '../output.ts';

interface WarehouseFlags {
  home?: string;
  json?: boolean;
  port?: string;
}

/** Prints warnings (users created, directories made traversable) to stderr; drops the rest. */
const stderrLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: (_fields, message) => {
    if (message) process.stderr.write(`note: ${message}\n`);
  },
  error: (_fields, message) => {
    if (message) process.stderr.write(`error: ${message}\n`);
  },
  child: () => stderrLogger,
};

/** The status as JSON: no password, only where it is kept. */
function statusJson(status: WarehouseServerStatus): Record<string, unknown> {
  return {
    running: status.running,
    initialized: status.initialized,
    host: '127.0.0.1',
    port: status.port ?? null,
    pid: status.pid ?? null,
    startedAt: status.startedAt ?? null,
    startedBy: status.startedBy ?? null,
    url: status.url ?? null,
    passwordFile: status.paths.passwordFile,
    dataDir: status.paths.dataDir,
    socketDir: status.paths.socketDir,
    logFile: status.paths.logFile,
    stateFile: status.paths.stateFile,
    stale: status.stale ?? null,
    warehouseUrlOverride: process.env.SLUICE_WAREHOUSE_URL ? 'SLUICE_WAREHOUSE_URL' : null,
  };
}

function printStatus(status: WarehouseServerStatus): void {
  const lines: string[] = [];
  const { paths } = status;
  if (status.running) {
    const by = status.startedBy
      ? `, started by ${status.startedBy.user} (${status.startedBy.owner === 'backend' ? `a sluice run, pid ${status.startedBy.pid}: stops when it ends` : `pid ${status.startedBy.pid}`}: ${status.startedBy.command})`
      : '';
    lines.push(`warehouse: running (pid ${status.pid}) since ${status.startedAt ?? '?'}${by}`);
    lines.push(`  listens on: 127.0.0.1:${status.port} only`);
    lines.push(`  url:        ${status.url} (password in ${paths.passwordFile})`);
    lines.push(`  psql:       PGPASSFILE=${paths.passwordFile} psql ${status.url}`);
  } else {
    lines.push(
      `warehouse: stopped${status.port === undefined ? '' : ` (port ${status.port} is reused at the next start while free)`}`,
    );
    if (status.stale) lines.push(`  recovered at the next start: ${status.stale}`);
  }
  lines.push(
    `  data dir:   ${paths.dataDir}${status.initialized ? '' : ' (not created yet: `sluice warehouse start` creates it)'}`,
  );
  lines.push(`  log:        ${paths.logFile}`);
  if (process.env.SLUICE_WAREHOUSE_URL) {
    lines.push(
      '  note: SLUICE_WAREHOUSE_URL is set: pipelines and `sluice query --warehouse` connect there instead',
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** `sluice warehouse start|stop|status`. */
export function registerWarehouse(program: Command): void {
  const warehouse = program
    .command('warehouse')
    .description("the home's PostgreSQL server, the local warehouse (Redshift on AWS): start, stop, status")
    .addHelpText(
      'after',
      `
The server lives in <home>/warehouse/ (data in pgdata/, log in postgres.log), listens on 127.0.0.1
only and asks for a password (role sluice; kept in <home>/warehouse/pgpass). Pipelines start it
on demand and stop it when they end; \`sluice warehouse start\` keeps it running across commands.

Examples:
  sluice warehouse start
  sluice query --warehouse "SELECT toll_booth, count(*) FROM toll_table GROUP BY 1"
  sluice warehouse status --json
  sluice warehouse stop`,
    );

  warehouse
    .command('start')
    .description('start the server (creating it on the first start); it keeps running after this command')
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option('--port <n>', 'TCP port on 127.0.0.1 (default: the previous one while free, else a free one)')
    .option('--json', 'print the status as JSON')
    .addHelpText(
      'after',
      `
Examples:
  sluice warehouse start
  sluice warehouse start --port 55432 --home /tmp/demo`,
    )
    .action(async (flags: WarehouseFlags) => {
      requireLocalBackend(
        'sluice warehouse start',
        "it starts the home's embedded PostgreSQL. On AWS the warehouse is the stack's Redshift Serverless workgroup, always on: `sluice query --warehouse`.",
      );
      const home = resolveHome(flags.home);
      let port: number | undefined;
      if (flags.port !== undefined) {
        port = Number(flags.port);
        if (!Number.isInteger(port) || port < 1 || port > 65535)
          throw new UsageError(`--port ${flags.port}: expected a TCP port (1-65535)`);
      }
      const began = performance.now();
      const server = await PostgresServer.start(home, {
        logger: stderrLogger,
        ...(port === undefined ? {} : { port }),
      });
      const status = await PostgresServer.status(home);
      if (flags.json) {
        printJson({ ...statusJson(status), started: server.started });
        return;
      }
      process.stdout.write(
        server.started
          ? `warehouse started on 127.0.0.1:${server.port} (pid ${server.pid}) in ${formatDuration(performance.now() - began)}\n`
          : `warehouse already running on 127.0.0.1:${server.port} (pid ${server.pid})\n`,
      );
      printStatus(status);
    });

  warehouse
    .command('stop')
    .description(
      'stop the server (open transactions are rolled back); the data stays in <home>/warehouse/pgdata',
    )
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option('--json', 'print {"stopped": true|false}')
    .addHelpText(
      'after',
      `
Examples:
  sluice warehouse stop
  sluice warehouse stop --home /tmp/demo --json`,
    )
    .action(async (flags: WarehouseFlags) => {
      requireLocalBackend(
        'sluice warehouse stop',
        "it stops the home's embedded PostgreSQL. On AWS the warehouse is the stack's Redshift Serverless workgroup: `sluice query --warehouse`.",
      );
      const { stopped } = await PostgresServer.stop(resolveHome(flags.home));
      if (flags.json) printJson({ stopped });
      else process.stdout.write(stopped ? 'warehouse stopped\n' : 'warehouse was not running\n');
    });

  warehouse
    .command('status')
    .description('running or stopped, port, data dir, connection URL (without the password)')
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Examples:
  sluice warehouse status
  sluice warehouse status --json

Exits 0 whether it runs or not ("running" in --json tells).`,
    )
    .action(async (flags: WarehouseFlags) => {
      requireLocalBackend(
        'sluice warehouse status',
        "it reports the home's embedded PostgreSQL. On AWS the warehouse is the stack's Redshift Serverless workgroup: `sluice query --warehouse`.",
      );
      const status = await PostgresServer.status(resolveHome(flags.home));
      if (flags.json) printJson(statusJson(status));
      else printStatus(status);
    });
}
