import path from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../../core/errors.ts';
import { requireLocalBackend } from '../context.ts';
import { untilInterrupted } from '../serving.ts';
import { EXAMPLES_DIR } from './demo.ts';

interface FixtureFlags {
  data?: string;
  port?: string;
  seed?: string;
}

/** The bundled quotes: quotable's own documents (examples/data/quotes/PROVENANCE.md). */
export const QUOTES_DATA = path.join(EXAMPLES_DIR, 'quotes', 'quotes.json');

/** Port `sluice fixture-server quotes` listens on by default: the `quotes.api_url` default's. */
export const QUOTES_FIXTURE_PORT = 8787;

function integer(flag: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`${flag} must be an integer from ${min} to ${max}, got "${value}"`);
  return n;
}

/** `sluice fixture-server <name>`. */
export function registerFixtureServer(program: Command): void {
  program
    .command('fixture-server')
    .argument('<name>', 'which API to serve (quotes)')
    .description('serve a local stand-in for an offline public API on 127.0.0.1, until Ctrl-C')
    .option(
      '--data <file>',
      'quotes: JSON array of quote documents (default: the bundled examples/data/quotes/quotes.json)',
    )
    .option('--port <n>', `port (default ${QUOTES_FIXTURE_PORT}; 0 picks a free one)`)
    .option(
      '--seed <n>',
      'seed of the random draws: the same seed serves the same sequence (default: random)',
    )
    .addHelpText(
      'after',
      `
quotes: the quotable API (api.quotable.io is offline) from quotable's own data:
GET /quotes/random[?limit=N] answers a JSON array of N (default 1) quote documents
{_id, content, author, tags, authorId, authorSlug, length, dateAdded, dateModified}, drawn at
random with replacement. The quotes pipeline's default api_url is http://127.0.0.1:${QUOTES_FIXTURE_PORT}.

Examples:
  sluice fixture-server quotes --seed 42
  sluice run quotes --api-url http://127.0.0.1:${QUOTES_FIXTURE_PORT} --polls 1440 --start 2024-01-01T00:00Z`,
    )
    .action(async (name: string, flags: FixtureFlags) => {
      requireLocalBackend(
        'sluice fixture-server',
        'it serves fake source APIs on this machine, which deployed functions cannot reach. Point the pipeline at a reachable URL instead (`sluice config set <pipeline> <key> <url>`).',
      );
      if (name !== 'quotes') throw new UsageError(`unknown fixture server "${name}": expected quotes`);
      const port = integer('--port', flags.port, 0, 65535) ?? QUOTES_FIXTURE_PORT;
      const seed = integer('--seed', flags.seed, 0, 2 ** 32 - 1) ?? Math.floor(Math.random() * 2 ** 32);
      const dataFile = path.resolve(flags.data ?? QUOTES_DATA);
      const { startQuotesFixture } = await import('../../sources/http/quotes-fixture.ts');
      const server = await startQuotesFixture({ dataFile, port, seed }).catch((error: unknown) => {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE')
          throw new UsageError(`port ${port} is in use (another fixture server?); choose one with --port`);
        throw error;
      });
      process.stdout.write(
        `serving ${server.quoteCount} quotes from ${dataFile}\n` +
          `  ${server.url}/quotes/random  (seed ${server.seed})\n` +
          `  try: sluice run quotes --api-url ${server.url} --polls 10\n` +
          'Ctrl-C stops.\n',
      );
      await untilInterrupted();
      await server.close();
      process.stdout.write(`stopped after serving ${server.served.length} quotes\n`);
    });
}
