import type { Command } from 'commander';
import { requireLocalBackend, resolveHome } from '../context.ts';
import { parsePort, untilInterrupted } from '../serving.ts';

interface ServeFlags {
  home?: string;
  port?: string;
  host?: string;
  token?: string;
}

/** `sluice serve`: the dashboard (src/dashboard) until Ctrl-C. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve the dashboard: pipelines, runs, executions, lake, catalog, quality, SQL console')
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option('--port <n>', 'port (default 8080; 0 picks a free one)')
    .option('--host <address>', 'address to bind (default 127.0.0.1; any other needs a token)')
    .option(
      '--token <token>',
      'require this token on every request (default on a non-loopback host: $SLUICE_DASHBOARD_TOKEN, else a generated one)',
    )
    .addHelpText(
      'after',
      `
The dashboard binds 127.0.0.1 by default. Binding another address (--host 0.0.0.0) requires a token
on every request: open the printed URL once (?token=..., then an HttpOnly cookie) or send
Authorization: Bearer <token>. The SQL console is read-only (one SELECT/WITH/DESCRIBE/SHOW, at most
1,000 rows and 10 s). docs/dashboard.md.`,
    )
    .action(async (flags: ServeFlags) => {
      requireLocalBackend(
        'sluice serve',
        'the dashboard serves a local home. Against a deployed stack, use `sluice query`, `sluice catalog`, `sluice runs` and `sluice executions`.',
      );
      const port = parsePort(flags.port, 8080);
      const { startDashboard } = await import('../../dashboard/server.ts');
      const dashboard = await startDashboard({
        home: resolveHome(flags.home),
        port,
        ...(flags.host ? { host: flags.host } : {}),
        ...(flags.token ? { token: flags.token } : {}),
      });
      process.stdout.write(`sluice dashboard: ${dashboard.openUrl}\n`);
      if (dashboard.token && !flags.token) {
        process.stdout.write(
          '(a token is required on this address: the URL above carries it; keep it private)\n',
        );
      }
      process.stdout.write('Ctrl-C to stop\n');
      await untilInterrupted();
      await dashboard.close();
    });
}
