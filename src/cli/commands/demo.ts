import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { Backend } from '../../core/ports/backend.ts';
import { openContext, requireLocalBackend, resolveHome } from '../context.ts';
import { formatBytes, formatCount, formatDuration, formatTable } from '../output.ts';
import { parsePort, untilInterrupted } from '../serving.ts';

/** The bundled tolls sample: the original's own file, 80 Python-dict lines. */
const TOLLS_SAMPLE = 'sample_data_toll_application.first80.json';

/**
 * The nba demo replays the first this many envelopes of the bundled sample by event_time
 * (2017-10-16 .. 2018-01-31, 108 days): all 21,466 take ~10 s (382 day partitions in the batch path),
 * this ~4 s. `sluice run nba` replays them all.
 */
const NBA_DEMO_ENVELOPES = 10_000;

/** The simulated day the demo polls (fixed, so every demo run shows the same tables). */
const QUOTES_DAY = '2024-01-01';
/** Seed of the demo's quotes fixture server. */
const QUOTES_SEED = 42;

/** Directory of the bundled real samples (`examples/data/`). */
export const EXAMPLES_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../examples/data',
);

interface DemoFlags {
  home?: string;
  serve?: boolean;
  port?: string;
}

/** `sluice demo`. */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run every reference pipeline on the bundled real samples, then query the result')
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option('--serve', 'end by serving the dashboard until Ctrl-C (the default on a terminal)')
    .option('--no-serve', 'exit after the summary (the default when output is not a terminal)')
    .option('--port <n>', 'dashboard port (default 8080; 0 picks a free one)')
    .addHelpText(
      'after',
      `
gharchive: serves the bundled GH Archive hour (examples/data/gharchive/2015-01-01-0.json.gz,
7,702 real events) over HTTP on 127.0.0.1, downloads it into the landing layer, flattens and
deduplicates it into Snappy Parquet partitioned by date in the analytical layer, registers the
partition in the catalog and queries it.

hashtags: replays the bundled Twitter captures (examples/data/hashtags: v1.1 stream, v1.1 REST,
v2 search pages) through the producer filter (retweets of English tweets with more than 99
retweets and a hashtag), the stream, landing CSV, staging (clean text, VADER sentiment, one row
per hashtag) into hashtags.hashtag_data, then shows the top hashtags with their sentiment.

tolls: lands the original project's sample file (examples/data/tolls, 80 transactions written as
Python dict reprs) into landing/tolls/, whose object-created event runs the tolls-load workflow:
crawl into the catalog, job (casts, NOT NULL checks, quarantine), COPY into toll_table in a local
PostgreSQL started for the demo (and stopped at the end); then revenue per booth.

quotes: starts the quotes fixture server (quotable's documents from examples/data/quotes, seed
42) on 127.0.0.1, polls it once per simulated minute for the day 2024-01-01 (1,440 real requests
and key-value puts into quotes_raw, in seconds), then runs that day's transform: quotes_fact and
quotes_agg as Parquet partitions dt=2024-01-01, and the original's statistics of quote_count.

nba: wraps the bundled real tweets (examples/data/nba, 21,466 tweets) into the original's
envelopes (authors mapped to the reference players' handles), sorted by event_time, and replays
them through the tampering job (30 s windows keyed by team and mentioned player; alerts go to
<home>/alerts.ndjson and nba.tampering_alerts) and the batch path (delivery stream, dedup into
nba.tweets, nba.players_total_tweets, COPY into the warehouse); prints the alert count, the first
alerts and the most mentioned players. To stay fast it replays the first 10,000 envelopes by
event_time (108 days; about 4 s); \`sluice run nba\` replays all 21,466 (about 11 s).

Re-running the demo is idempotent: hours, capture files and toll files already loaded are not
loaded twice.

On a terminal the demo ends by serving the dashboard on http://127.0.0.1:8080 (--port) until
Ctrl-C; --no-serve exits after the summary, and so does a demo whose output is not a terminal
(scripts, CI) unless --serve is given.`,
    )
    .action(async (flags: DemoFlags) => {
      requireLocalBackend(
        'sluice demo',
        'it runs the reference pipelines on bundled data in a local home. On AWS, deploy the stacks (`sluice deploy`) and let their schedules and triggers run the workflows.',
      );
      const started = Date.now();
      const home = resolveHome(flags.home);
      const { serveDirectory } = await import('../../sources/http/static-server.ts');
      const { runGharchive } = await import('../../../pipelines/gharchive/run.ts');
      const { ctx, backend, close } = await openContext({ home, progress: true });
      const server = await serveDirectory(path.join(EXAMPLES_DIR, 'gharchive'));
      const out = (line = '') => process.stdout.write(`${line}\n`);
      try {
        out(`sluice demo (home: ${home})`);
        out();
        out(`gharchive: GH Archive hour 2015-01-01-0, served from the bundled sample at ${server.url}`);
        const summary = await runGharchive(ctx, {
          from: new Date('2015-01-01T00:00:00Z'),
          to: new Date('2015-01-01T00:00:00Z'),
          sourceUrl: server.url,
        });
        for (const hour of summary.hours) {
          const t = hour.transform;
          if (!t || !hour.counts) {
            out(`  ${hour.file}: ${hour.status}${hour.error ? `: ${hour.error}` : ''}`);
            continue;
          }
          out(
            `  landed   landing/gharchive/date=${hour.file.slice(0, 10)}/${hour.file} (${formatBytes(t.bytes.landed)}, ${formatBytes(t.bytes.decompressed)} uncompressed)`,
          );
          out(
            `  records  read ${formatCount(hour.counts.read)} = loaded ${formatCount(hour.counts.loaded)} + duplicates ${formatCount(hour.counts.duplicates)} + quarantined ${formatCount(hour.counts.quarantined)}`,
          );
          for (const p of t.partitions)
            out(
              `  wrote    analytical/${p.prefix} (${formatCount(p.rows)} rows, ${formatBytes(p.bytes)} Snappy Parquet)`,
            );
          out(`  catalog  gharchive.events, schema v${t.schemaVersion}`);
        }
        out();
        out(
          'hashtags: bundled Twitter captures (examples/data/hashtags) -> stream -> landing -> staging -> analytical',
        );
        const { runHashtags } = await import('../../../pipelines/hashtags/run.ts');
        const { bundledSamples } = await import('../../../pipelines/hashtags/sources.ts');
        const { printStage } = await import('./run-hashtags.ts');
        await runHashtags(ctx, { source: { kind: 'replay', files: bundledSamples() }, onStage: printStage });
        out();
        out(
          'tolls: bundled toll transactions (examples/data/tolls) -> landing -> trigger -> crawl -> job -> COPY into the warehouse',
        );
        const { executeTolls, printTollsExecution } = await import('./run-tolls.ts');
        const tolls = await executeTolls(ctx, { inputs: [path.join(EXAMPLES_DIR, 'tolls', TOLLS_SAMPLE)] });
        printTollsExecution(tolls.landed, tolls.execution);
        if (tolls.execution.status === 'SUCCEEDED') {
          const warehouse = await backend.openWarehouse();
          try {
            const revenueSql =
              'SELECT toll_booth, count(*) AS transactions, round(sum(transaction_amount)::numeric, 2) AS revenue FROM toll_table GROUP BY toll_booth ORDER BY revenue DESC';
            const revenue = await warehouse.query(revenueSql);
            out();
            out(`$ sluice query --warehouse "${revenueSql}"`);
            out(formatTable(revenue.columns, revenue.rows));
          } finally {
            await warehouse.close();
          }
        } else {
          process.exitCode = 1;
        }
        out();
        out(
          `quotes: the quotable API (fixture server, seed ${QUOTES_SEED}) polled once a simulated minute for ${QUOTES_DAY} -> quotes_raw -> daily transform`,
        );
        const { startQuotesFixture } = await import('../../sources/http/quotes-fixture.ts');
        const { pollSimulated } = await import('../../../pipelines/quotes/poll.ts');
        const { transformStep } = await import('../../../pipelines/quotes/transform.ts');
        const { printPollSummary, printTransform } = await import('./run-quotes.ts');
        const quotesServer = await startQuotesFixture({
          dataFile: path.join(EXAMPLES_DIR, 'quotes', 'quotes.json'),
          seed: QUOTES_SEED,
        });
        try {
          const polled = await pollSimulated(ctx, {
            apiUrl: quotesServer.url,
            start: new Date(`${QUOTES_DAY}T00:00:00.000Z`),
            polls: 1440,
          });
          printPollSummary(polled, '  ');
          if (polled.failed) process.exitCode = polled.exitCode;
          else printTransform(await transformStep(ctx, { date: QUOTES_DAY, leaseWaitMs: 60_000 }), '  ');
        } finally {
          await quotesServer.close();
        }
        out();
        out(
          'nba: the bundled real tweets (examples/data/nba) as envelopes, by event_time -> tampering job -> alerts; delivery stream -> dedup -> daily aggregate -> warehouse',
        );
        const { bundledEnvelopes, printNbaSummary, tamperingConfigOf } = await import('./run-nba.ts');
        const { defaultPlayers } = await import('../../../pipelines/nba/reference.ts');
        const { runNba } = await import('../../../pipelines/nba/run.ts');
        const { LocalNotifier } = await import('../../backends/local/local-notifier.ts');
        const { alertsFile } = await import('./alerts.ts');
        const nbaPlayers = defaultPlayers().players;
        const nbaInput = await bundledEnvelopes(nbaPlayers);
        const nba = await runNba(ctx, {
          envelopes: nbaInput.envelopes.slice(0, NBA_DEMO_ENVELOPES),
          rejected: nbaInput.rejected,
          source: nbaInput.file,
          players: nbaPlayers,
          notifier: new LocalNotifier({ file: alertsFile(home), console: false, clock: ctx.clock }),
          config: await tamperingConfigOf(ctx),
        });
        printNbaSummary(
          nba,
          `the bundled sample: the first ${formatCount(NBA_DEMO_ENVELOPES)} by event_time (sluice run nba replays all ${formatCount(nbaInput.envelopes.length)})`,
          { indent: '  ', maxAlerts: 5 },
        );
        const { allNamedQueries } = await import('./query.ts');
        const engine = await backend.openQueryEngine({ namedQueries: allNamedQueries() });
        try {
          const sql =
            'SELECT type, count(*) AS events, count(DISTINCT actor_id) AS actors FROM gharchive.events GROUP BY type ORDER BY events DESC LIMIT 5';
          const result = await engine.query(sql);
          out();
          out(`$ sluice query "${sql}"`);
          out(formatTable(result.columns, result.rows));
          const repos = await engine.query(
            'SELECT repo_name, count(*) AS events FROM gharchive.events GROUP BY repo_name ORDER BY events DESC, repo_name LIMIT 5',
          );
          out();
          out('top repositories:');
          out(formatTable(repos.columns, repos.rows));
          const hashtagsSql =
            'SELECT t.hashtag, t.mentions, t.tweets, round(s.mean_polarity, 3) AS polarity, round(s.mean_subjectivity, 3) AS subjectivity FROM hashtags.top_hashtags t JOIN hashtags.hashtag_sentiment s USING (hashtag) ORDER BY t.mentions DESC, t.hashtag LIMIT 10';
          out();
          out(`$ sluice query "${hashtagsSql}"`);
          const top = await engine.query(hashtagsSql);
          out(formatTable(top.columns, top.rows));
          const nbaSql =
            'SELECT player, sum(total) AS annotations, count(*) AS days FROM nba.players_total_tweets GROUP BY player ORDER BY annotations DESC, player LIMIT 5';
          out();
          out(`$ sluice query "${nbaSql}"`);
          const nbaTop = await engine.query(nbaSql);
          out(formatTable(nbaTop.columns, nbaTop.rows));
        } finally {
          await engine.close();
        }
        out();
        out(
          `done in ${formatDuration(Date.now() - started)}. Next: sluice catalog | sluice runs | sluice query --list | sluice query hashtags.top_users | sluice query quotes.top_quotes | sluice alerts`,
        );
        if (summary.exitCode !== 0) process.exitCode = summary.exitCode;
        // On a terminal the demo ends by serving the dashboard; scripts and CI get an exit.
        if (flags.serve ?? (process.stdout.isTTY === true && process.stdin.isTTY === true)) {
          await serveUntilInterrupted(backend, flags.port);
        }
      } finally {
        await server.close();
        await close();
      }
    });
}

/**
 * Serves the dashboard over the demo's backend until SIGINT/SIGTERM (the warehouse the demo
 * started stays up meanwhile, so the tolls page can query it).
 * @throws {UsageError} for a malformed `--port`.
 */
async function serveUntilInterrupted(backend: Backend, portFlag: string | undefined): Promise<void> {
  const port = parsePort(portFlag, 8080);
  const { startDashboard } = await import('../../dashboard/server.ts');
  const dashboard = await startDashboard({ backend, port });
  process.stdout.write(`\ndashboard: ${dashboard.openUrl}  (Ctrl-C to stop; --no-serve skips this)\n`);
  await untilInterrupted();
  await dashboard.close();
}
