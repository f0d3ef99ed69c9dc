import type { Clock } from '../../src/core/clock.ts';
import type { PipelineContext } from '../../src/core/context.ts';
import { describeError, ExitCode, SluiceError, StepError } from '../../src/core/errors.ts';
import type { Item, KvTable } from '../../src/core/ports/kv-table.ts';
import { newRunId, RunLog } from '../../src/core/run.ts';
import { fetchRandomQuote, type QuotableQuote } from '../../src/sources/quotes/quotable.ts';
import { PIPELINE, RAW_KEY_SCHEMA, RAW_TABLE, utcDate } from './definition.ts';

/** A new run id (`src/core/run.ts`), re-exported for this pipeline's callers. */
export { newRunId } from '../../src/core/run.ts';

/** An item of `quotes_raw`: the original's renamed fields under its keys. */
export interface RawQuoteItem {
  /** Hash key: UTC date of the poll, `YYYY-MM-DD`. */
  readonly ingested_date: string;
  /** Range key: UTC time of the poll, ISO-8601 with ms and `Z` (sorts as time). */
  readonly ingested_at: string;
  readonly quote_id: string;
  readonly content: string;
  readonly author: string;
  readonly tag_list: string[];
  readonly author_slug: string;
  readonly character_count: number;
  readonly added_date: string;
  readonly modified_date: string;
}

/** The `quotes_raw` item of a quote polled at `at` (the original's `pull_quote` renaming). */
export function rawItem(quote: QuotableQuote, at: Date): RawQuoteItem {
  return {
    ingested_date: utcDate(at),
    ingested_at: at.toISOString(),
    quote_id: quote._id,
    content: quote.content,
    author: quote.author,
    tag_list: [...quote.tags],
    author_slug: quote.authorSlug,
    character_count: quote.length,
    added_date: quote.dateAdded,
    modified_date: quote.dateModified,
  };
}

/** Opens (locally: creates) `quotes_raw`. */
export function openRawTable(ctx: PipelineContext): Promise<KvTable> {
  return ctx.backend.kv.table(RAW_TABLE, RAW_KEY_SCHEMA);
}

/** How a poll talks to the API. */
export interface ApiSettings {
  readonly apiUrl: string;
  /** Per attempt, ms (default 10,000). */
  readonly timeoutMs?: number;
  /** Default 2. */
  readonly retries?: number;
  /** Wait before the first retry, doubling (default 1,000 ms). */
  readonly baseDelayMs?: number;
  /** How to wait between attempts (default: the context's clock). */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** What one poll stored. */
export interface PollResult {
  readonly item: RawQuoteItem;
  /** Requests made (1 + retries used). */
  readonly attempts: number;
}

/**
 * One poll: `GET {api}/quotes/random`, the last quote of the array, put into `quotes_raw` at the
 * clock's time after the answer (as the original stamped `pendulum.now()` after the request).
 * Nothing is written when the request fails.
 * @throws {SourceUnavailableError} after the retries; {@link QuotesApiError} for a 4xx answer.
 */
export async function pollOnce(ctx: PipelineContext, api: ApiSettings, table?: KvTable): Promise<PollResult> {
  const raw = table ?? (await openRawTable(ctx));
  const fetched = await fetchRandomQuote({
    baseUrl: api.apiUrl,
    ...(api.timeoutMs !== undefined ? { timeoutMs: api.timeoutMs } : {}),
    ...(api.retries !== undefined ? { retries: api.retries } : {}),
    ...(api.baseDelayMs !== undefined ? { baseDelayMs: api.baseDelayMs } : {}),
    sleep: api.sleep ?? ((ms) => ctx.clock.sleep(ms)),
  });
  const item = rawItem(fetched.quote, ctx.clock.now());
  await raw.put(item as unknown as Item);
  return { item, attempts: fetched.attempts };
}

/** Options of {@link pollSimulated}. */
export interface SimulatedPollOptions extends ApiSettings {
  /** The first poll's (simulated) time; later polls follow one a minute. */
  readonly start: Date;
  readonly polls: number;
  readonly runId?: string;
  /** Called after each poll (progress). */
  readonly onPoll?: (result: PollResult, index: number) => void;
}

/** What {@link pollSimulated} did. */
export interface SimulatedPollSummary {
  readonly runId: string;
  readonly apiUrl: string;
  /** Polls asked for. */
  readonly polls: number;
  /** Polls that stored a row. */
  readonly stored: number;
  /** Requests made in all (retries included). */
  readonly requests: number;
  /** Simulated time of the first and last stored poll (ISO). */
  readonly first: string | null;
  readonly last: string | null;
  /** Rows stored per ingested date, ascending. */
  readonly days: { readonly date: string; readonly rows: number }[];
  /** Distinct quote ids stored by this run. */
  readonly distinctQuotes: number;
  /** The poll that failed (after its retries); later polls were not attempted. */
  readonly failed?: { readonly at: string; readonly error: string };
  /** Real time the run took, ms. */
  readonly elapsedMs: number;
  readonly exitCode: number;
}

/**
 * Polls `polls` times with a simulated clock, one poll per simulated minute from `start`, as fast
 * as the API answers: a day (1,440 polls) takes seconds. Each poll is a real request and a real
 * `quotes_raw` put, stamped with its simulated minute; waits between retries are real (the API is
 * real). Stops at the first poll that fails after its retries (rows already stored stay: they are
 * real polls). Recorded in the run log as one `poll` step (`sluice runs --pipeline quotes`).
 */
export async function pollSimulated(
  ctx: PipelineContext,
  options: SimulatedPollOptions,
): Promise<SimulatedPollSummary> {
  if (!Number.isInteger(options.polls) || options.polls < 1) {
    throw new SluiceError(`polls must be a positive integer, got ${options.polls}`, {
      code: 'usage',
      exitCode: ExitCode.usage,
    });
  }
  const startedAt = Date.now();
  const runId = options.runId ?? newRunId(ctx.clock.now());
  let current = options.start.getTime();
  const simulated: Clock = {
    now: () => new Date(current),
    sleep: (ms, signal) => ctx.clock.sleep(ms, signal),
  };
  const simCtx: PipelineContext = { ...ctx, clock: simulated };
  const runs = await RunLog.open(ctx.backend.kv, ctx.clock);
  const lastAt = new Date(options.start.getTime() + (options.polls - 1) * 60_000).toISOString();
  const handle = await runs.start({
    runId,
    pipeline: PIPELINE,
    step: 'poll',
    unit: `${options.start.toISOString()}..${lastAt}`,
  });
  const table = await openRawTable(ctx);
  const days = new Map<string, number>();
  const quotes = new Set<string>();
  let stored = 0;
  let requests = 0;
  let first: string | null = null;
  let last: string | null = null;
  let failed: { at: string; error: string } | undefined;
  let exitCode: number = ExitCode.ok;
  const api: ApiSettings = { ...options, sleep: options.sleep ?? ((ms) => ctx.clock.sleep(ms)) };
  for (let i = 0; i < options.polls; i++) {
    current = options.start.getTime() + i * 60_000;
    try {
      const result = await pollOnce(simCtx, api, table);
      requests += result.attempts;
      stored++;
      first ??= result.item.ingested_at;
      last = result.item.ingested_at;
      days.set(result.item.ingested_date, (days.get(result.item.ingested_date) ?? 0) + 1);
      quotes.add(result.item.quote_id);
      options.onPoll?.(result, i);
    } catch (error) {
      const at = new Date(current).toISOString();
      const wrapped = new StepError({ pipeline: PIPELINE, step: 'poll', runId, unit: at }, error);
      failed = { at, error: describeError(wrapped) };
      exitCode = error instanceof SluiceError ? error.exitCode : ExitCode.internal;
      ctx.logger.error({ pipeline: PIPELINE, runId, at, err: describeError(error) }, 'poll failed');
      break;
    }
  }
  const counts = { read: stored, loaded: stored, duplicates: 0, quarantined: 0 };
  const details = {
    api_url: options.apiUrl,
    requests,
    days: Object.fromEntries([...days].sort()),
    distinct_quotes: quotes.size,
    simulated: true,
  };
  await handle.finish(
    failed
      ? { status: 'failed', counts, error: failed.error, details }
      : { status: 'succeeded', counts, details },
  );
  return {
    runId,
    apiUrl: options.apiUrl,
    polls: options.polls,
    stored,
    requests,
    first,
    last,
    days: [...days].sort(([a], [b]) => (a < b ? -1 : 1)).map(([date, rows]) => ({ date, rows })),
    distinctQuotes: quotes.size,
    ...(failed ? { failed } : {}),
    elapsedMs: Date.now() - startedAt,
    exitCode,
  };
}
