import type { SimulatedPollSummary } from '../../../pipelines/quotes/poll.ts';
import type { TransformDayResult } from '../../../pipelines/quotes/transform.ts';
import { UsageError } from '../../core/errors.ts';
import type { JsonValue } from '../../core/ports/kv-table.ts';
import { openContext, resolveHome } from '../context.ts';
import { formatBytes, formatCount, formatDuration, printJson } from '../output.ts';

/** Flags of `sluice run quotes` (and the other pipelines' flags, refused). */
export interface QuotesRunFlags {
  home?: string;
  json?: boolean;
  apiUrl?: string;
  polls?: string;
  start?: string;
  transform?: boolean;
  date?: string;
  from?: string;
  to?: string;
  sourceUrl?: string;
  input?: string[];
  seconds?: string;
  rate?: string;
  again?: boolean;
}

/**
 * `--start`: an ISO-8601 time, UTC unless it names a zone (`2024-01-01T00:00`, `2024-01-01T00:00Z`,
 * `2024-01-01T02:00+02:00`, or a date `2024-01-01` for its midnight).
 */
export function parseStart(value: string): Date {
  const text = value.trim();
  const withZone = /^\d{4}-\d{2}-\d{2}$/.test(text)
    ? `${text}T00:00:00Z`
    : /(Z|[+-]\d{2}:?\d{2})$/i.test(text)
      ? text
      : `${text}Z`;
  const at = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(withZone) ? new Date(withZone) : new Date(Number.NaN);
  if (Number.isNaN(at.getTime())) {
    throw new UsageError(
      `--start ${value}: expected an ISO-8601 time such as 2024-01-01T00:00Z (UTC unless a zone is given)`,
    );
  }
  return at;
}

function parsePolls(value: string | undefined): number {
  if (value === undefined)
    throw new UsageError('sluice run quotes needs --polls N (or --transform --date YYYY-MM-DD)');
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000) {
    throw new UsageError(`--polls must be an integer from 1 to 1,000,000, got "${value}"`);
  }
  return n;
}

/**
 * `sluice run quotes`: either polls `--polls N` times with a simulated minute clock from `--start`
 * (default: now truncated to the minute), or (`--transform --date D`) runs the daily transform of
 * day D. Exit codes: 0 ok (also a day without polls), 2 bad flags or a day not over yet, 4 the API
 * stayed unavailable, 5 another transform holds the datasets, 7 a `block` check failed.
 */
export async function runQuotesCommand(flags: QuotesRunFlags): Promise<void> {
  for (const [flag, value] of [
    ['--from', flags.from],
    ['--to', flags.to],
    ['--source-url', flags.sourceUrl],
    ['--input', flags.input],
    ['--seconds', flags.seconds],
    ['--rate', flags.rate],
    ['--again', flags.again],
  ] as const) {
    if (value !== undefined)
      throw new UsageError(
        `${flag} is not a quotes flag; quotes takes --api-url, --polls, --start, or --transform --date`,
      );
  }
  if (flags.transform) {
    for (const [flag, value] of [
      ['--api-url', flags.apiUrl],
      ['--polls', flags.polls],
      ['--start', flags.start],
    ] as const) {
      if (value !== undefined)
        throw new UsageError(`${flag} is a polling flag; --transform takes --date only`);
    }
    if (flags.date === undefined) throw new UsageError('--transform needs --date YYYY-MM-DD (a UTC day)');
    const { isDay } = await import('../../../pipelines/quotes/definition.ts');
    if (!isDay(flags.date)) throw new UsageError(`--date ${flags.date}: expected a day YYYY-MM-DD`);
    await runTransform(flags, flags.date);
    return;
  }
  if (flags.date !== undefined) throw new UsageError('--date applies to --transform');
  const polls = parsePolls(flags.polls);
  const start =
    flags.start !== undefined ? parseStart(flags.start) : new Date(Math.floor(Date.now() / 60_000) * 60_000);
  const { randomQuoteUrl } = await import('../../sources/quotes/quotable.ts');
  if (flags.apiUrl !== undefined) randomQuoteUrl(flags.apiUrl);

  const { pollSimulated } = await import('../../../pipelines/quotes/poll.ts');
  const { ctx, close } = await openContext({ home: resolveHome(flags.home), progress: !flags.json });
  try {
    // The configured API settings (`sluice config set quotes ...`), as the poll function reads them.
    const { ConfigStore } = await import('../../core/config.ts');
    const { apiSettings } = await import('../../../pipelines/quotes/functions.ts');
    const { quotesPipeline } = await import('../../../pipelines/quotes/definition.ts');
    const store = await ConfigStore.open(ctx.backend.kv, ctx.clock);
    const values = new Map<string, JsonValue | undefined>();
    for (const key of Object.keys(quotesPipeline.config ?? {}))
      values.set(key, await store.get('quotes', key));
    const api = apiSettings({ get: (key) => values.get(key) });
    const apiUrl = flags.apiUrl ?? api.apiUrl;
    if (apiUrl === undefined) {
      throw new UsageError(
        'sluice run quotes needs --api-url URL (or `sluice config set quotes api_url URL`); `sluice fixture-server quotes` serves one',
      );
    }
    const task = ctx.progress.start('polls', polls, 'items');
    const summary = await pollSimulated(ctx, {
      ...api,
      apiUrl,
      start,
      polls,
      onPoll: (_result, index) => {
        if (index % 20 === 19 || index === polls - 1) task.update(index + 1);
      },
    });
    task.stop();
    if (flags.json) printJson(summary);
    else printPollSummary(summary);
    process.exitCode = summary.exitCode;
  } finally {
    await close();
  }
}

async function runTransform(flags: QuotesRunFlags, date: string): Promise<void> {
  const { transformStep } = await import('../../../pipelines/quotes/transform.ts');
  const { ctx, close } = await openContext({ home: resolveHome(flags.home), progress: !flags.json });
  try {
    // From the command line, wait a while for a scheduled transform holding the datasets.
    const result = await transformStep(ctx, { date, leaseWaitMs: 60_000 });
    if (flags.json) printJson(result);
    else printTransform(result);
  } finally {
    await close();
  }
}

const out = (line = '') => process.stdout.write(`${line}\n`);

/** Prints what a simulated polling run did (used by `sluice run quotes` and `sluice demo`). */
export function printPollSummary(summary: SimulatedPollSummary, indent = ''): void {
  const range = summary.first ? `${summary.first} .. ${summary.last}` : '(none)';
  out(
    `${indent}polled   ${formatCount(summary.stored)} of ${formatCount(summary.polls)} polls of ${summary.apiUrl} (simulated minutes ${range}) in ${formatDuration(summary.elapsedMs)}`,
  );
  out(
    `${indent}stored   ${formatCount(summary.stored)} rows in quotes_raw (${summary.days.map((d) => `${d.date}: ${formatCount(d.rows)}`).join(', ') || 'none'}), ${formatCount(summary.distinctQuotes)} distinct quotes, ${formatCount(summary.requests)} requests`,
  );
  if (summary.failed) {
    out(`${indent}FAILED   the poll at ${summary.failed.at}: ${summary.failed.error}`);
    out(`${indent}         later polls were not attempted`);
  } else if (!indent) {
    const last = summary.days[summary.days.length - 1];
    if (last) out(`next: sluice run quotes --transform --date ${last.date}`);
  }
}

/** Prints a transform's outcome and statistics (used by `sluice run quotes --transform` and `sluice demo`). */
export function printTransform(result: TransformDayResult, indent = ''): void {
  if (result.status === 'empty') {
    out(`${indent}${result.message}`);
    return;
  }
  out(
    `${indent}read     ${formatCount(result.rawRows)} rows of quotes_raw for ${result.date} (${result.pages} page${result.pages === 1 ? '' : 's'})`,
  );
  const failing = result.checks.filter((c) => c.status === 'fail');
  out(
    `${indent}checks   ${result.checks.length - failing.length} of ${result.checks.length} passed${failing.length ? `; ${failing.map((c) => `${c.table}.${c.check} ${c.action}`).join(', ')}` : ''}`,
  );
  for (const table of [result.fact, result.agg]) {
    out(
      `${indent}wrote    analytical/${table.partition} (${table.table}: ${formatCount(table.rows)} rows, ${formatBytes(table.bytes)} Snappy Parquet)`,
    );
  }
  const s = result.statistics;
  const number = (n: number) => (Number.isInteger(n) ? formatCount(n) : n.toFixed(4));
  out(`${indent}statistics of quote_count (sluice.quality_metrics, run ${result.runId}):`);
  out(
    `${indent}  top quote        "${s.topQuote.quoteText}" by ${s.topQuote.author} (drawn ${formatCount(s.topQuote.quoteCount)} times)`,
  );
  out(`${indent}  min / max        ${number(s.min)} / ${number(s.max)}`);
  out(`${indent}  range            ${number(s.range)}`);
  out(`${indent}  variance         ${number(s.variance)} (population, as numpy.var)`);
  out(`${indent}  std deviation    ${number(s.standardDeviation)} (population, as numpy.std)`);
  out(`${indent}  distinct quotes  ${formatCount(s.distinctQuotes)} in ${formatCount(s.polls)} polls`);
}
