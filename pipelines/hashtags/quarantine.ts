import type { PipelineContext } from '../../src/core/context.ts';
import type { SourceLocation } from '../../src/sources/twitter/types.ts';
import { quarantineKey } from './definition.ts';

/** One rejected record as written to the quarantine (dead-letter) layer, one JSON object per line. */
export interface QuarantineEntry {
  /** Where it came from: a file, `stream:<name>`, or a landing object URI. */
  readonly source: string;
  /** 1-based line in the source, when it has lines. */
  readonly line?: number;
  /** 0-based index inside the line (a status of an array or page), or the stream sequence number. */
  readonly index?: number | string;
  /** Why it was rejected, naming what was expected. */
  readonly reason: string;
  /** The rejected text, at most 64 KiB. */
  readonly raw: string;
}

/** Keeps at most 64 KiB of a rejected text (whole lines can be huge). */
export function clip(raw: string): string {
  return raw.length > 65_536 ? `${raw.slice(0, 65_536)}…` : raw;
}

/** The quarantine entry fields of a source location. */
export function located(location: SourceLocation): Pick<QuarantineEntry, 'source' | 'line' | 'index'> {
  return {
    source: location.source,
    line: location.line,
    ...(location.index !== undefined ? { index: location.index } : {}),
  };
}

/**
 * Writes a chunk of rejected records to `quarantine/hashtags/<step>/date=YYYY-MM-DD/<unit>.ndjson`
 * (NDJSON, each line `{step, run_id, source, line, index, reason, raw}`). The key is
 * deterministic in `unit`, so a retried chunk replaces itself instead of duplicating.
 * @returns the key written, or `undefined` when `entries` is empty (nothing is written).
 */
export async function writeQuarantine(
  ctx: PipelineContext,
  input: { step: string; runId: string; unit: string; entries: readonly QuarantineEntry[] },
): Promise<string | undefined> {
  if (input.entries.length === 0) return undefined;
  const key = quarantineKey(input.step, input.unit, ctx.clock.now());
  const body = input.entries
    .map((entry) => JSON.stringify({ step: input.step, run_id: input.runId, ...entry }))
    .join('\n');
  await ctx.backend.objectStore.put({ layer: 'quarantine', key }, `${body}\n`);
  return key;
}
