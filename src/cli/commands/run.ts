import type { Command } from 'commander';
import { GHARCHIVE_URL } from '../../../pipelines/gharchive/definition.ts';
import { parseHourArg } from '../../../pipelines/gharchive/hours.ts';
import type { GharchiveRunSummary, HourOutcome } from '../../../pipelines/gharchive/run.ts';
import { pipelineNames, pipelines } from '../../../pipelines/index.ts';
import { AWS_ENV } from '../../backends/aws/config.ts';
import { UsageError } from '../../core/errors.ts';
import { backendKind, openContext, resolveHome } from '../context.ts';
import { formatBytes, formatCount, printJson } from '../output.ts';

interface RunFlags {
  home?: string;
  from?: string;
  to?: string;
  sourceUrl?: string;
  json?: boolean;
  input?: string[];
  seconds?: string;
  rate?: string;
  again?: boolean;
  apiUrl?: string;
  polls?: string;
  start?: string;
  transform?: boolean;
  date?: string;
  envelopes?: string;
  players?: string;
  control?: string;
  writeEnvelopes?: string;
}

/** `sluice run <pipeline>`. */
export function registerRun(program: Command): void {
  program
    .command('run')
    .argument('<pipeline>', `pipeline to run (${pipelineNames.join(', ')})`)
    .description('run a pipeline once: ingest new source data, transform it, publish and catalog it')
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option('--from <YYYY-MM-DDTHH>', 'gharchive: first UTC hour of a backfill (the bookmark does not move)')
    .option('--to <YYYY-MM-DDTHH>', 'gharchive: last UTC hour, inclusive (default: now)')
    .option(
      '--source-url <url>',
      `gharchive: base URL or local directory of hour files (default ${GHARCHIVE_URL})`,
    )
    .option(
      '--input <file...>',
      'hashtags: capture files to replay (v1.1 stream NDJSON, v1.1 REST array, v1.1 search, v2 pages); tolls: transaction files to land (default: one generated file)',
    )
    .option(
      '--seconds <n>',
      'hashtags: without --input, read the live filtered stream this long (default 60)',
    )
    .option('--rate <n>', 'hashtags: replay at this many statuses per second (default: as fast as possible)')
    .option('--again', 'hashtags: replay files whose content was replayed before (default: skip them)')
    .option(
      '--api-url <url>',
      'quotes: base URL of the quotable-shaped API (default: config quotes.api_url; `sluice fixture-server quotes` serves http://127.0.0.1:8787)',
    )
    .option('--polls <n>', 'quotes: poll this many times, one simulated minute apart')
    .option(
      '--start <iso-time>',
      'quotes: simulated time of the first poll, UTC (default: now, to the minute)',
    )
    .option('--transform', 'quotes: run the daily transform of --date instead of polling')
    .option('--date <YYYY-MM-DD>', 'quotes: the UTC day --transform reads from quotes_raw')
    .option(
      '--envelopes <file>',
      'nba: NDJSON envelopes to replay in file order (gzip or plain; default: the bundled sample, by event_time)',
    )
    .option(
      '--players <file>',
      'nba: JSON array of {account, name, team} (default: the bundled reference players)',
    )
    .option(
      '--control <file>',
      'nba: JSON array of {team, control} changes applied to tampering_control before the replay (control null: remove)',
    )
    .option(
      '--write-envelopes <file>',
      'nba: write the bundled sample as envelopes (NDJSON, by event_time) to <file> and exit',
    )
    .option('--json', 'print the run summary as one JSON object')
    .addHelpText(
      'after',
      `
Without --from, gharchive runs incrementally: every published hour after the bookmark (or, on the
first run, from <today - baseline_days>-0), stopping cleanly at the first hour that is not
published yet (HTTP 404). With --from/--to it backfills that inclusive UTC range.

hashtags replays capture files (--input) or reads the live Twitter filtered stream (with
TWITTER_BEARER_TOKEN set) through the producer filter (popular English retweets with hashtags),
the stream, landing CSV, staging (clean text, VADER sentiment, one row per hashtag) and
hashtags.hashtag_data, and prints the counts of every stage. A file whose content was replayed
before is skipped (--again replays it anyway): re-runs never duplicate rows.

quotes polls the API --polls times with a simulated clock, one poll per simulated minute from
--start, so a day (1,440 polls) takes seconds; --transform --date D builds quotes_fact and
quotes_agg of day D (every page of its quotes_raw partition), replaces that day's Parquet
partitions, and prints the original's statistics. \`sluice fixture-server quotes\` serves the API.

tolls lands --input files (or one generated file) into landing/tolls/ and runs the tolls-load
workflow on them: crawl -> job (cast, NOT NULL checks, quarantine) -> COPY into the warehouse
toll_table, once per file content. The local PostgreSQL warehouse starts when needed.

nba replays --envelopes (NDJSON {event_time, data:[tweet], includes:{users:[{username}]}}, in file
order, event time from event_time; bad lines quarantined under quarantine/nba/envelopes/) through
the tampering job (alerts printed, sent to <home>/alerts.ndjson and written to
nba.tampering_alerts; late and all-tweets side outputs under landing/nba/) and the batch path
(delivery stream, dedup into nba.tweets, nba.players_total_tweets, COPY into the warehouse).
Without --envelopes it replays the bundled real tweets (examples/data/nba, 21,466 tweets wrapped
as envelopes, authors mapped to the reference players' handles, sorted by event_time);
--write-envelopes FILE writes that envelopes file. Re-runs add no alert twice.

Examples:
  sluice run quotes --api-url http://127.0.0.1:8787 --polls 1440 --start 2024-01-01T00:00Z
  sluice run quotes --transform --date 2024-01-01
  sluice run tolls --input examples/data/tolls/sample_data_toll_application.first80.json
  sluice run hashtags --input examples/data/hashtags/v1_user_timeline_63.json
  sluice run hashtags --input a.ndjson b.jsonl --rate 50 --json
  TWITTER_BEARER_TOKEN=... sluice run hashtags --seconds 120
  sluice run nba                                         # the bundled tweets
  sluice run nba --write-envelopes nba.ndjson && sluice run nba --envelopes nba.ndjson --control control.json
  sluice run gharchive                                   # catch up from the bookmark
  sluice run gharchive --from 2015-01-01T00 --to 2015-01-01T05
  sluice run gharchive --source-url ./archive --from 2015-01-01T00 --to 2015-01-01T00

Exit codes: 0 ok (also when stopped at an unpublished hour), 3 a source file was damaged
(what was readable is loaded), 4 the source stayed unavailable after retries, 5 another run
holds the pipeline's lease, 7 a block-severity data-quality check failed (nothing published).
See docs/cli.md.`,
    )
    .action(async (pipeline: string, flags: RunFlags) => {
      if (backendKind() === 'aws') refuseRunOnAws(pipeline);
      if (pipeline !== 'nba') {
        for (const [flag, key] of [
          ['--envelopes', 'envelopes'],
          ['--players', 'players'],
          ['--control', 'control'],
          ['--write-envelopes', 'writeEnvelopes'],
        ] as const) {
          if (flags[key] !== undefined && pipelineNames.includes(pipeline))
            throw new UsageError(`${flag} is an nba flag, not a ${pipeline} flag`);
        }
      }
      if (pipeline === 'quotes') {
        const { runQuotesCommand } = await import('./run-quotes.ts');
        await runQuotesCommand(flags);
        return;
      }
      for (const [flag, key] of [
        ['--api-url', 'apiUrl'],
        ['--polls', 'polls'],
        ['--start', 'start'],
        ['--transform', 'transform'],
        ['--date', 'date'],
      ] as const) {
        if (flags[key] !== undefined && pipelineNames.includes(pipeline))
          throw new UsageError(`${flag} is a quotes flag, not a ${pipeline} flag`);
      }
      if (pipeline === 'nba') {
        const { runNbaCommand } = await import('./run-nba.ts');
        await runNbaCommand(flags);
        return;
      }
      if (pipeline === 'tolls') {
        const { runTollsCommand } = await import('./run-tolls.ts');
        await runTollsCommand(flags);
        return;
      }
      if (pipeline === 'hashtags') {
        const { runHashtagsCommand } = await import('./run-hashtags.ts');
        await runHashtagsCommand(flags);
        return;
      }
      if (pipeline !== 'gharchive') {
        throw new UsageError(`unknown pipeline "${pipeline}": expected one of ${pipelineNames.join(', ')}`);
      }
      for (const [flag, given] of [
        ['--input', flags.input !== undefined],
        ['--seconds', flags.seconds !== undefined],
        ['--rate', flags.rate !== undefined],
        ['--again', flags.again !== undefined],
      ] as const) {
        if (given)
          throw new UsageError(`${flag} is a hashtags flag; gharchive takes --from, --to, --source-url`);
      }
      const from = flags.from !== undefined ? parseHourArg('--from', flags.from) : undefined;
      const to = flags.to !== undefined ? parseHourArg('--to', flags.to) : undefined;
      if (from && to && to < from) throw new UsageError(`--to ${flags.to} is before --from ${flags.from}`);
      const { runGharchive } = await import('../../../pipelines/gharchive/run.ts');
      const { ctx, close } = await openContext({ home: resolveHome(flags.home), progress: !flags.json });
      try {
        const summary = await runGharchive(ctx, {
          ...(from ? { from } : {}),
          ...(to ? { to } : {}),
          ...(flags.sourceUrl ? { sourceUrl: flags.sourceUrl } : {}),
          ...(flags.json ? {} : { onHour: printHour }),
        });
        if (flags.json) printJson(summaryJson(summary));
        else printSummary(summary);
        process.exitCode = summary.exitCode;
      } finally {
        await close();
      }
    });
}

/**
 * `sluice run` on the aws backend: running a pipeline's steps on this machine against the
 * deployed resources would bypass the stack's workflows, leases and alarms, so it refuses and says
 * how Step Functions runs them (StartExecution: https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html).
 * @throws {UsageError} always.
 */
function refuseRunOnAws(pipeline: string): never {
  const workflows = (pipelines[pipeline]?.workflows ?? []).map((w) => w.name);
  throw new UsageError(
    `sluice run works on the local backend only (the backend is aws): on AWS, Step Functions runs the workflows, on their schedules and triggers or on demand with\n` +
      `  aws stepfunctions start-execution --state-machine-arn "$${AWS_ENV.stateMachineArnPrefix}<workflow>"\n` +
      (workflows.length > 0 ? `(${pipeline}'s workflows: ${workflows.join(', ')}); ` : '') +
      'follow them with `sluice executions` and `sluice runs`',
  );
}

function printHour(outcome: HourOutcome, index: number, total: number): void {
  const position = `[${index + 1}/${total}]`;
  if (outcome.status === 'not_published') {
    process.stdout.write(`${position} ${outcome.file}: not published yet (404), stopping here\n`);
    return;
  }
  if (outcome.status === 'failed') {
    process.stdout.write(`${position} ${outcome.file}: FAILED: ${outcome.error}\n`);
    return;
  }
  const c = outcome.counts;
  const t = outcome.transform;
  const parts = [
    `${position} ${outcome.file}:`,
    c
      ? `read ${formatCount(c.read)}, loaded ${formatCount(c.loaded)}, duplicates ${formatCount(c.duplicates)}, quarantined ${formatCount(c.quarantined)}`
      : '',
    t ? `-> ${t.partitions.map((p) => p.prefix).join(', ')}` : '',
    outcome.downloadedBytes ? `(downloaded ${formatBytes(outcome.downloadedBytes)})` : '',
  ];
  process.stdout.write(`${parts.filter(Boolean).join(' ')}\n`);
  if (t?.quarantine) process.stdout.write(`    quarantined records: quarantine/${t.quarantine.key}\n`);
  if (outcome.status === 'partial') process.stdout.write(`    WARNING: ${outcome.error}\n`);
}

function printSummary(summary: GharchiveRunSummary): void {
  const t = summary.totals;
  const lines = [
    `run ${summary.runId} (${summary.mode}, ${summary.range.from.slice(0, 13)} .. ${summary.range.to.slice(0, 13)} UTC)`,
    `  hours: ${summary.hours.filter((h) => h.status === 'succeeded' || h.status === 'partial').length} loaded of ${summary.hours.length} attempted`,
    `  records: read ${formatCount(t.read)} = loaded ${formatCount(t.loaded)} + duplicates ${formatCount(t.duplicates)} + quarantined ${formatCount(t.quarantined)}`,
    `  bookmark: ${summary.bookmark.before ?? '(none)'} -> ${summary.bookmark.after ?? '(none)'}${summary.mode === 'backfill' ? ' (backfills do not move it)' : ''}`,
  ];
  if (summary.stoppedAt)
    lines.push(`  stopped at ${summary.stoppedAt}: not published yet; the next run continues there`);
  if (summary.hours.length === 0) lines.push('  nothing to do: the bookmark is at the current hour');
  process.stdout.write(`${lines.join('\n')}\n`);
}

function summaryJson(summary: GharchiveRunSummary): unknown {
  return {
    ...summary,
    hours: summary.hours.map(({ transform, ...hour }) => ({
      ...hour,
      ...(transform
        ? {
            partitions: transform.partitions,
            quarantine: transform.quarantine ?? null,
            duplicates_in_file: transform.duplicatesInFile,
            duplicates_in_lake: transform.duplicatesInLake,
            damage: transform.damage ?? null,
            bytes: transform.bytes,
          }
        : {}),
    })),
  };
}
