import { access } from 'node:fs/promises';
import path from 'node:path';
import type { HashtagsRunSummary, HashtagsStage } from '../../../pipelines/hashtags/run.ts';
import { UsageError } from '../../core/errors.ts';
import { openContext, resolveHome } from '../context.ts';
import { formatBytes, formatCount, printJson } from '../output.ts';

/** Flags of `sluice run hashtags`. */
export interface HashtagsRunFlags {
  home?: string;
  json?: boolean;
  input?: string[];
  seconds?: string;
  rate?: string;
  again?: boolean;
  from?: string;
  to?: string;
  sourceUrl?: string;
}

function positiveNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new UsageError(`${flag} must be a positive number, got "${value}"`);
  return n;
}

/**
 * `sluice run hashtags`: replays `--input` files (or reads the live filtered stream for
 * `--seconds`) through producer, stream, landing, staging and analytical, printing each stage's
 * counts. Exit codes: 0 ok, 2 bad flags or unreadable input, 4 the live API stayed unavailable,
 * 5 another consumer holds the stream.
 */
export async function runHashtagsCommand(flags: HashtagsRunFlags): Promise<void> {
  for (const [flag, value] of [
    ['--from', flags.from],
    ['--to', flags.to],
    ['--source-url', flags.sourceUrl],
  ] as const) {
    if (value !== undefined)
      throw new UsageError(`${flag} is a gharchive flag; hashtags takes --input, --seconds, --rate`);
  }
  const rate = positiveNumber('--rate', flags.rate);
  const seconds = positiveNumber('--seconds', flags.seconds);
  const inputs = (flags.input ?? []).map((file) => path.resolve(file));
  for (const file of inputs) {
    await access(file).catch((error: unknown) => {
      // Keep the system's reason: "no such file" and "permission denied" need different fixes.
      throw new UsageError(`--input ${file}: ${(error as Error).message}`, { cause: error });
    });
  }
  const { bearerTokenFromEnv } = await import('../../sources/twitter/filtered-stream.ts');
  const token = bearerTokenFromEnv();
  if (inputs.length === 0 && !token) {
    throw new UsageError(
      'sluice run hashtags needs --input FILE... (capture files to replay) or TWITTER_BEARER_TOKEN set to read the live filtered stream',
    );
  }
  if (inputs.length > 0 && seconds !== undefined)
    throw new UsageError('--seconds applies to the live stream, not to --input');

  const { runHashtags } = await import('../../../pipelines/hashtags/run.ts');
  const { liveSource, parseRules } = await import('../../../pipelines/hashtags/sources.ts');
  const { hashtagsPipeline } = await import('../../../pipelines/hashtags/definition.ts');
  const { ctx, close } = await openContext({ home: resolveHome(flags.home), progress: !flags.json });
  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort();
  process.once('SIGINT', onSigint);
  let stopLive: (() => void) | undefined;
  try {
    let source: Parameters<typeof runHashtags>[1]['source'];
    if (inputs.length > 0) {
      source = {
        kind: 'replay',
        files: inputs,
        ...(rate ? { ratePerSecond: rate } : {}),
        again: flags.again === true,
      };
    } else {
      const { ConfigStore } = await import('../../core/config.ts');
      const store = await ConfigStore.open(ctx.backend.kv, ctx.clock);
      const configured = await store.get('hashtags', 'rules');
      const live = await liveSource(ctx, {
        bearerToken: token as string,
        seconds: seconds ?? 60,
        rules: parseRules(configured ?? hashtagsPipeline.config?.rules?.default),
      });
      stopLive = live.stop;
      interrupt.signal.addEventListener('abort', live.stop, { once: true });
      source = live.source;
    }
    const summary = await runHashtags(ctx, {
      source,
      signal: interrupt.signal,
      ...(flags.json ? {} : { onStage: printStage }),
    });
    if (flags.json) printJson(summary);
    else printSummary(summary);
    process.exitCode = summary.exitCode;
  } finally {
    stopLive?.();
    process.off('SIGINT', onSigint);
    await close();
  }
}

const out = (line = '') => process.stdout.write(`${line}\n`);

/** Prints one finished stage (used by `sluice run hashtags` and `sluice demo`). */
export function printStage(stage: HashtagsStage): void {
  switch (stage.stage) {
    case 'produce': {
      const c = stage.result.counts;
      for (const file of stage.result.files) {
        if (file.status === 'skipped') {
          out(
            `  ${path.basename(file.file)}: already replayed by run ${file.previousRun} (same content), skipped; --again replays it`,
          );
        } else if (file.counts) {
          const f = file.counts;
          out(
            `  ${path.basename(file.file)}: read ${formatCount(f.read)} = sent ${formatCount(f.loaded)} + filtered ${formatCount(f.filtered ?? 0)} + quarantined ${formatCount(f.quarantined)}`,
          );
        }
      }
      out(
        `  produce    read ${formatCount(c.read)} = sent ${formatCount(c.loaded)} + filtered ${formatCount(c.filtered ?? 0)} + quarantined ${formatCount(c.quarantined)}${rejectionText(c.rejections)}`,
      );
      for (const key of stage.result.quarantine) out(`             quarantined records: quarantine/${key}`);
      return;
    }
    case 'land': {
      const c = stage.result.counts;
      const bytes = stage.result.landed.reduce((n, l) => n + l.bytes, 0);
      out(
        `  land       read ${formatCount(c.read)} from stream ${stage.result.stream} = landed ${formatCount(c.loaded)} + quarantined ${formatCount(c.quarantined)} (${stage.result.landed.length} CSV object${stage.result.landed.length === 1 ? '' : 's'}, ${formatBytes(bytes)})`,
      );
      for (const l of stage.result.landed) out(`             landing/${l.key}`);
      return;
    }
    case 'staging': {
      const r = stage.result;
      const c = r.counts;
      out(
        `  staging    read ${formatCount(c.read)} = staged ${formatCount(c.loaded)} + duplicates ${formatCount(c.duplicates)} + quarantined ${formatCount(c.quarantined)} + no hashtag left ${formatCount(c.filtered ?? 0)} -> ${formatCount(r.rows)} hashtag rows`,
      );
      if (r.quarantine) out(`             quarantined records: quarantine/${r.quarantine}`);
      return;
    }
    case 'analytical': {
      const r = stage.result;
      if (!r) {
        out('  analytical staging has no rows: hashtags.hashtag_data not touched');
        return;
      }
      out(
        `  analytical read ${formatCount(r.counts.read)} = inserted ${formatCount(r.counts.loaded)} + already present ${formatCount(r.counts.duplicates)} -> hashtags.hashtag_data`,
      );
    }
  }
}

function rejectionText(rejections: Partial<Record<string, number>>): string {
  const parts = Object.entries(rejections)
    .filter(([, n]) => (n ?? 0) > 0)
    .map(([rule, n]) => `${rule.replaceAll('_', ' ')} ${formatCount(n ?? 0)}`);
  return parts.length > 0 ? ` (filtered: ${parts.join(', ')})` : '';
}

function printSummary(summary: HashtagsRunSummary): void {
  out(
    `run ${summary.runId}: stream ${summary.stream.name} ${summary.stream.deleted ? 'deleted after draining' : summary.stream.unconsumed > 0 ? `kept: ${summary.stream.unconsumed} records not landed yet, the next run lands them` : 'kept'}`,
  );
  if (summary.analytical) {
    out(
      `  next: sluice query hashtags.top_hashtags | sluice query hashtags.hashtag_sentiment | sluice runs --pipeline hashtags`,
    );
  }
}
