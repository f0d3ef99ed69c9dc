import { access, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Envelope, RejectedLine } from '../../../pipelines/nba/envelopes.ts';
import type { PlayerRecord } from '../../../pipelines/nba/reference.ts';
import type { ControlInput, NbaRunSummary } from '../../../pipelines/nba/run.ts';
import type { TamperingAlert, TamperingConfig } from '../../../pipelines/nba/tampering.ts';
import type { PipelineContext } from '../../core/context.ts';
import { UsageError } from '../../core/errors.ts';
import type { Notifier } from '../../core/ports/notifier.ts';
import { openContext, resolveHome } from '../context.ts';
import { formatCount, formatDuration, printJson } from '../output.ts';
import { alertsFile } from './alerts.ts';

/** Flags of `sluice run nba` (and the other pipelines' flags, rejected). */
export interface NbaRunFlags {
  home?: string;
  json?: boolean;
  envelopes?: string;
  players?: string;
  control?: string;
  writeEnvelopes?: string;
  input?: string[];
  seconds?: string;
  rate?: string;
  again?: boolean;
  from?: string;
  to?: string;
  sourceUrl?: string;
}

/** The nba flags, for the other pipelines to reject. */
export const NBA_FLAGS = [
  ['--envelopes', 'envelopes'],
  ['--players', 'players'],
  ['--control', 'control'],
  ['--write-envelopes', 'writeEnvelopes'],
] as const;

/**
 * The bundled sample as envelopes (envelopesFromTweetsFile over the players), sorted by
 * `event_time` (stable): the order a live collector would have sent them in. The sample file is
 * grouped by player and game, not by time; replayed in file order most tweets arrive behind the
 * watermark and go to the late side output.
 */
export async function bundledEnvelopes(
  players: readonly PlayerRecord[],
): Promise<{ envelopes: Envelope[]; rejected: RejectedLine[]; file: string }> {
  const { envelopesFromTweetsFile } = await import('../../../pipelines/nba/envelopes.ts');
  const { NBA_DATA_DIR, NBA_FILES } = await import('../../../pipelines/nba/reference.ts');
  const file = path.join(NBA_DATA_DIR, NBA_FILES.tweets);
  const { envelopes, rejected } = await envelopesFromTweetsFile(file, players);
  const sorted = envelopes
    .map((e, i) => ({ e, i }))
    .sort((a, b) => a.e.event_time - b.e.event_time || a.i - b.i)
    .map((x) => x.e);
  return { envelopes: sorted, rejected, file };
}

async function readJsonArray(flag: string, file: string): Promise<unknown[]> {
  let text: string;
  try {
    text = await readFile(path.resolve(file), 'utf8');
  } catch (error) {
    throw new UsageError(`${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${flag} ${file}: not JSON: ${(error as Error).message}`);
  }
  if (!Array.isArray(value)) throw new UsageError(`${flag} ${file}: not a JSON array`);
  return value;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** `--players FILE`: a JSON array of `{account, name, team}` (non-empty strings). */
export async function readPlayersFile(file: string): Promise<PlayerRecord[]> {
  const items = await readJsonArray('--players', file);
  return items.map((item, i) => {
    if (
      !isObject(item) ||
      ![item.account, item.name, item.team].every((v) => typeof v === 'string' && v !== '')
    ) {
      throw new UsageError(
        `--players ${file}: item ${i} is not {account, name, team} with non-empty strings: ${JSON.stringify(item)}`,
      );
    }
    return { account: String(item.account), name: String(item.name), team: String(item.team) };
  });
}

/** `--control FILE`: a JSON array of `{team, control}`, control true, false or null (remove). */
export async function readControlFile(file: string): Promise<ControlInput[]> {
  const items = await readJsonArray('--control', file);
  return items.map((item, i) => {
    if (
      !isObject(item) ||
      typeof item.team !== 'string' ||
      item.team === '' ||
      !(typeof item.control === 'boolean' || item.control === null)
    ) {
      throw new UsageError(
        `--control ${file}: item ${i} is not {team: string, control: true | false | null}: ${JSON.stringify(item)}`,
      );
    }
    return { team: item.team, control: item.control as boolean | null };
  });
}

/** The job's numbers from `sluice config set nba <key> <seconds>` (NBA_CONFIG_DEFAULTS otherwise). */
export async function tamperingConfigOf(ctx: PipelineContext): Promise<Partial<TamperingConfig>> {
  const { ConfigStore } = await import('../../core/config.ts');
  const store = await ConfigStore.open(ctx.backend.kv, ctx.clock);
  const config: { -readonly [K in keyof TamperingConfig]?: number } = {};
  for (const [key, field] of [
    ['window_seconds', 'windowMs'],
    ['allowed_lateness_seconds', 'allowedLatenessMs'],
    ['out_of_orderness_seconds', 'outOfOrdernessMs'],
    ['idleness_seconds', 'idlenessMs'],
  ] as const) {
    const value = await store.get('nba', key);
    if (value === undefined || value === null) continue;
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0)
      throw new UsageError(`config nba.${key} is not a number of seconds: ${value}`);
    config[field] = n * 1000;
  }
  return config;
}

/**
 * `sluice run nba`: replays `--envelopes` (or the bundled sample) through the tampering job and
 * the batch path (see pipelines/nba/run.ts), printing each alert and each stage's counts. Alerts
 * go to `<home>/alerts.ndjson` (and `$SLUICE_ALERT_WEBHOOK`). Exit codes: 0 ok (alerts or not),
 * 2 bad flags or unreadable files, 7 a block-severity check failed.
 */
export async function runNbaCommand(
  flags: NbaRunFlags,
  options: { notifier?: Notifier } = {},
): Promise<NbaRunSummary | undefined> {
  for (const [flag, given] of [
    ['--input', flags.input],
    ['--seconds', flags.seconds],
    ['--rate', flags.rate],
    ['--again', flags.again],
    ['--from', flags.from],
    ['--to', flags.to],
    ['--source-url', flags.sourceUrl],
  ] as const) {
    if (given !== undefined)
      throw new UsageError(`${flag} is not an nba flag; nba takes --envelopes, --players, --control`);
  }
  const players = flags.players !== undefined ? await readPlayersFile(flags.players) : undefined;
  const control = flags.control !== undefined ? await readControlFile(flags.control) : undefined;
  const { defaultPlayers } = await import('../../../pipelines/nba/reference.ts');
  const usedPlayers = players ?? defaultPlayers().players;

  if (flags.writeEnvelopes !== undefined) {
    if (flags.envelopes !== undefined)
      throw new UsageError('--write-envelopes and --envelopes exclude each other');
    const bundled = await bundledEnvelopes(usedPlayers);
    const target = path.resolve(flags.writeEnvelopes);
    await writeFile(target, `${bundled.envelopes.map((e) => JSON.stringify(e)).join('\n')}\n`);
    if (flags.json) printJson({ file: target, envelopes: bundled.envelopes.length, from: bundled.file });
    else
      process.stdout.write(
        `wrote ${formatCount(bundled.envelopes.length)} envelopes (by event_time) from ${bundled.file} to ${target}\n`,
      );
    return undefined;
  }

  let envelopes: Envelope[];
  let rejected: RejectedLine[];
  let source: string;
  if (flags.envelopes !== undefined) {
    source = path.resolve(flags.envelopes);
    await access(source).catch(() => {
      throw new UsageError(`--envelopes ${flags.envelopes}: no such file`);
    });
    const { readEnvelopes } = await import('../../../pipelines/nba/envelopes.ts');
    ({ envelopes, rejected } = await readEnvelopes(source));
  } else {
    const bundled = await bundledEnvelopes(usedPlayers);
    ({ envelopes, rejected } = bundled);
    source = `${bundled.file} (bundled sample, by event_time)`;
  }

  const home = resolveHome(flags.home);
  const { ctx, close } = await openContext({ home, progress: !flags.json });
  try {
    let notifier = options.notifier;
    if (!notifier) {
      const { LocalNotifier } = await import('../../backends/local/local-notifier.ts');
      const webhookUrl = process.env.SLUICE_ALERT_WEBHOOK;
      notifier = new LocalNotifier({
        file: alertsFile(home),
        console: false,
        clock: ctx.clock,
        ...(webhookUrl ? { webhookUrl } : {}),
      });
    }
    const { runNba } = await import('../../../pipelines/nba/run.ts');
    const summary = await runNba(ctx, {
      envelopes,
      rejected,
      source,
      notifier,
      config: await tamperingConfigOf(ctx),
      ...(players ? { players } : {}),
      ...(control ? { control } : {}),
    });
    if (flags.json) printJson(summaryJson(summary, source));
    else printNbaSummary(summary, source);
    return summary;
  } finally {
    await close();
  }
}

/** One line of an alert: window, firing, message. */
export function alertLine(alert: TamperingAlert): string {
  const start = new Date(alert.window.start).toISOString();
  const end = new Date(alert.window.end).toISOString().slice(11);
  return `${start}..${end}${alert.firing > 0 ? ` (re-fired ${alert.firing})` : ''} ${alert.message}`;
}

function summaryJson(summary: NbaRunSummary, source: string): unknown {
  return { source, ...summary };
}

/** Prints a run of the nba pipeline, stage by stage (used by `sluice run nba` and `sluice demo`). */
export function printNbaSummary(
  summary: NbaRunSummary,
  source: string,
  options: { indent?: string; maxAlerts?: number } = {},
): void {
  const p = options.indent ?? '';
  const out = (line = '') => process.stdout.write(`${p}${line}\n`);
  const s = summary.tampering.stats;
  const alerts = summary.tampering.alerts;
  out(`run ${summary.runId}: ${formatCount(summary.input.envelopes)} envelopes from ${source}`);
  if (summary.input.rejected > 0)
    out(
      `  read       ${formatCount(summary.input.rejected)} lines are not envelopes: ${summary.input.quarantine} (with reasons)`,
    );
  const changes = summary.reference.controlChanges;
  out(
    `  reference  ${formatCount(summary.reference.players)} players (${formatCount(summary.reference.names)} names); control stream: ${changes.length === 0 ? 'no changes' : changes.map((c) => `${c.eventName} ${c.team}${c.control === undefined ? '' : `=${c.control}`}`).join(', ')}`,
  );
  const windowed = s.tweets - s.unknownSource - s.noAthlete - s.unknownDestination - s.suppressed;
  out(
    `  tampering  read ${formatCount(s.tweets)} = unknown source ${formatCount(s.unknownSource)} + no athlete ${formatCount(s.noAthlete)} + unknown destination ${formatCount(s.unknownDestination)} + suppressed ${formatCount(s.suppressed)} + windowed ${formatCount(windowed)} (same team ${formatCount(s.sameTeam)}, late ${formatCount(s.late)}) -> ${formatCount(alerts.length)} alert${alerts.length === 1 ? '' : 's'} in ${formatDuration(summary.tampering.ms)}`,
  );
  out(`             late: ${summary.tampering.late.key} (${formatCount(summary.tampering.late.records)})`);
  out(
    `             all-tweets: ${summary.tampering.allTweets.key} (${formatCount(summary.tampering.allTweets.records)})`,
  );
  const shown = options.maxAlerts === undefined ? alerts : alerts.slice(0, options.maxAlerts);
  for (const alert of shown) out(`  ALERT      ${alertLine(alert)}`);
  if (shown.length < alerts.length) out(`  ...        ${formatCount(alerts.length - shown.length)} more`);
  out(
    `  alerts     notified ${formatCount(summary.notified.alerts)} + already in ${summary.dataset.table} ${formatCount(summary.notified.alreadyPresent)}; wrote ${formatCount(summary.dataset.written)} rows`,
  );
  for (const failure of summary.notified.failures) out(`             notifier failed: ${failure}`);
  const b = summary.batch;
  if (!b) return;
  const d = b.delivery;
  out(
    `  deliver    received ${formatCount(d.stats.received)} = delivered ${formatCount(d.stats.delivered)} + dropped ${formatCount(d.stats.dropped)} + failed ${formatCount(d.stats.failed)} -> ${formatCount(d.rawObjects)} objects in ${formatCount(d.partitions)} day partitions of landing/nba/raw/ (+ ${formatCount(d.sourceObjects)} source backups)`,
  );
  if (b.crawl)
    out(
      `  crawl      ${b.crawl.tables.map((t) => `nba_landing.${t.name} (${t.change}, ${formatCount(t.partitions)} partitions)`).join(', ')}`,
    );
  const c = b.dedup.counts;
  out(
    `  dedup      read ${formatCount(c.read)} = loaded ${formatCount(c.loaded)} + duplicates ${formatCount(c.duplicates)} + quarantined ${formatCount(c.quarantined)} -> nba.tweets`,
  );
  out(
    `  aggregate  ${formatCount(b.aggregate.rows)} rows (${formatCount(b.aggregate.days)} days, ${formatCount(b.aggregate.annotations)} athlete annotations) -> nba.players_total_tweets`,
  );
  out(
    b.warehouse.status === 'loaded'
      ? `  warehouse  ${formatCount(b.warehouse.rows)} rows copied into players_total_tweets`
      : `  warehouse  same content already loaded by run ${b.warehouse.previousRun} (${formatCount(b.warehouse.rows)} rows), nothing copied`,
  );
  if (summary.batchMs !== undefined) out(`  batch path ${formatDuration(summary.batchMs)}`);
}
