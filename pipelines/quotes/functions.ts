import type { PipelineContext } from '../../src/core/context.ts';
import { describeError, StepError, UsageError } from '../../src/core/errors.ts';
import type { FunctionHandler } from '../../src/core/function.ts';
import type { ConfigReader, PipelineRuntime } from '../../src/core/pipeline.ts';
import type { JsonValue } from '../../src/core/ports/kv-table.ts';
import { RunLog } from '../../src/core/run.ts';
import { DEFAULT_API_URL, isDay, PIPELINE, previousDay, utcDate } from './definition.ts';
import { type ApiSettings, newRunId, pollOnce } from './poll.ts';
import { type TransformDayResult, transformStep } from './transform.ts';

type Event = { readonly [key: string]: JsonValue | undefined } | null;

function numberOf(value: JsonValue | undefined, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : fallback;
}

/**
 * The API settings from the live configuration (`sluice config set quotes ...`); `apiUrl` is
 * `undefined` while `api_url` is not configured (the public API is offline: there is no default).
 */
export function apiSettings(
  config: ConfigReader,
): Omit<ApiSettings, 'apiUrl'> & { apiUrl: string | undefined } {
  const url = config.get('api_url');
  return {
    apiUrl: typeof url === 'string' && url.length > 0 ? url : undefined,
    timeoutMs: Math.max(1, numberOf(config.get('request_timeout_seconds'), 10) * 1000),
    retries: Math.trunc(numberOf(config.get('request_retries'), 2)),
    baseDelayMs: numberOf(config.get('retry_base_seconds'), 1) * 1000,
  };
}

/**
 * The day a scheduled transform works on: the event's `date`, else the day before the event's
 * `scheduledTime` (the schedule adds it), else the day before the clock's now.
 * @throws {UsageError} for a malformed `date` or `scheduledTime`.
 */
export function transformDate(event: Event, now: Date): string {
  if (typeof event?.date === 'string') {
    if (!isDay(event.date)) throw new UsageError(`quotes-transform: date "${event.date}" is not YYYY-MM-DD`);
    return event.date;
  }
  let at = now;
  if (typeof event?.scheduledTime === 'string') {
    at = new Date(event.scheduledTime);
    if (Number.isNaN(at.getTime()))
      throw new UsageError(`quotes-transform: scheduledTime "${event.scheduledTime}" is not a time`);
  }
  return previousDay(utcDate(at));
}

/** The transform's answer, as JSON for the workflow history. */
export function transformJson(result: TransformDayResult): JsonValue {
  if (result.status === 'empty') {
    return { date: result.date, run_id: result.runId, status: 'empty', raw_rows: 0, message: result.message };
  }
  const s = result.statistics;
  return {
    date: result.date,
    run_id: result.runId,
    status: 'published',
    raw_rows: result.rawRows,
    pages: result.pages,
    fact: { rows: result.fact.rows, partition: result.fact.partition },
    agg: { rows: result.agg.rows, partition: result.agg.partition },
    statistics: {
      top_quote: s.topQuote.quoteText,
      top_quote_author: s.topQuote.author,
      top_quote_id: s.topQuote.quoteId,
      min: s.min,
      max: s.max,
      range: s.range,
      variance: s.variance,
      stddev: s.standardDeviation,
      distinct_quotes: s.distinctQuotes,
    },
    checks: result.checks.map((c) => ({
      table: c.table,
      check: c.check,
      status: c.status,
      action: c.action,
    })),
  };
}

/** One poll recorded in the run log (step `poll`, unit the poll's time). */
async function pollStep(ctx: PipelineContext, api: ApiSettings, scheduledTime: string | undefined) {
  const runId = newRunId(ctx.clock.now());
  const runs = await RunLog.open(ctx.backend.kv, ctx.clock);
  const unit = scheduledTime ?? ctx.clock.now().toISOString();
  const handle = await runs.start({ runId, pipeline: PIPELINE, step: 'poll', unit });
  try {
    const result = await pollOnce(ctx, api);
    await handle.finish({
      status: 'succeeded',
      counts: { read: 1, loaded: 1, duplicates: 0, quarantined: 0 },
      details: {
        ingested_at: result.item.ingested_at,
        quote_id: result.item.quote_id,
        attempts: result.attempts,
      },
    });
    return { runId, result };
  } catch (error) {
    const wrapped = new StepError(
      { pipeline: PIPELINE, step: 'poll', runId, unit },
      error,
      api.apiUrl === DEFAULT_API_URL
        ? `Nothing was stored for this poll. ${DEFAULT_API_URL} is the default api_url, served by \`sluice fixture-server quotes\`; set another with \`sluice config set quotes api_url URL\``
        : 'Nothing was stored for this poll',
    );
    await handle.finish({ status: 'failed', error: describeError(wrapped) }).catch(() => {});
    throw wrapped;
  }
}

/**
 * The quotes functions (Lambda signature):
 * - `quotes-poll` (schedule `rate(1 minute)` -> workflow `quotes-poll`): one poll of
 *   `{api_url}/quotes/random` into `quotes_raw` -> `{ingested_date, ingested_at, quote_id, author,
 *   attempts}`; throws `SourceUnavailableError` when the API stays unavailable through the retries
 *   (the workflow's Retry polls again, then the execution fails and raises an alert);
 * - `quotes-transform` `{scheduledTime?, date?}` (schedule `cron(0 12 * * ? *)` -> workflow
 *   `quotes-transform`): transforms the event's `date`, else the day before `scheduledTime`.
 *
 * Configuration (`api_url`, `request_timeout_seconds`, `request_retries`, `retry_base_seconds`) is
 * read at each call.
 */
export function quotesHandlers(runtime: PipelineRuntime): Record<string, FunctionHandler> {
  const { ctx, config } = runtime;
  return {
    'quotes-poll': async (event) => {
      const e = event as Event;
      const scheduledTime = typeof e?.scheduledTime === 'string' ? e.scheduledTime : undefined;
      const api = apiSettings(config);
      if (api.apiUrl === undefined) {
        // Not configured yet: a schedule firing every minute must not raise an alert every minute.
        ctx.logger.warn(
          { pipeline: PIPELINE },
          `quotes: api_url is not configured; nothing polled. Run \`sluice fixture-server quotes --port 8787\` and \`sluice config set quotes api_url ${DEFAULT_API_URL}\``,
        );
        return { skipped: 'api_url is not configured' };
      }
      const { runId, result } = await pollStep(ctx, { ...api, apiUrl: api.apiUrl }, scheduledTime);
      return {
        run_id: runId,
        ingested_date: result.item.ingested_date,
        ingested_at: result.item.ingested_at,
        quote_id: result.item.quote_id,
        author: result.item.author,
        attempts: result.attempts,
      };
    },
    'quotes-transform': async (event) => {
      const date = transformDate(event as Event, ctx.clock.now());
      return transformJson(await transformStep(ctx, { date }));
    },
  };
}
