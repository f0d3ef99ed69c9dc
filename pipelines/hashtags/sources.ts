import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PipelineContext } from '../../src/core/context.ts';
import { UsageError } from '../../src/core/errors.ts';
import type { JsonValue } from '../../src/core/ports/kv-table.ts';
import { FilteredStreamClient } from '../../src/sources/twitter/filtered-stream.ts';
import type { ProducerSource } from './producer.ts';

/** The bundled real captures (examples/data/hashtags): v1.1 stream, v1.1 REST, v2 pages. */
export const BUNDLED_SAMPLES_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../examples/data/hashtags',
);

/** The bundled capture files, sorted. */
export function bundledSamples(): string[] {
  return readdirSync(BUNDLED_SAMPLES_DIR)
    .filter((name) => /\.(json|jsonl|ndjson)(\.gz)?$/.test(name))
    .sort()
    .map((name) => path.join(BUNDLED_SAMPLES_DIR, name));
}

/** A filtered-stream rule (https://developer.x.com/en/docs/x-api/tweets/filtered-stream/integrate/build-a-rule). */
export interface StreamRule {
  readonly value: string;
  readonly tag?: string;
}

/** Parses the `rules` configuration value. @throws {UsageError} naming what is wrong. */
export function parseRules(value: JsonValue | undefined): StreamRule[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new UsageError('config hashtags.rules must be a non-empty array of {"value": "...", "tag": "..."}');
  }
  return value.map((rule, i) => {
    if (!rule || typeof rule !== 'object' || Array.isArray(rule) || typeof rule.value !== 'string') {
      throw new UsageError(`config hashtags.rules[${i}] must be {"value": "<rule>", "tag": "<tag>"}`);
    }
    return { value: rule.value, ...(typeof rule.tag === 'string' ? { tag: rule.tag } : {}) };
  });
}

/**
 * The live source: syncs the account's filtered-stream rules to `rules`, then reads the filtered
 * stream for `seconds` (the connection is closed then; reconnects in between follow the API's
 * backoff rules, see src/sources/twitter/filtered-stream.ts).
 * @returns the source and `stop()` to end it early.
 */
export async function liveSource(
  ctx: PipelineContext,
  input: { bearerToken: string; seconds: number; rules: readonly StreamRule[]; baseUrl?: string },
): Promise<{ source: ProducerSource; signal: AbortSignal; stop(): void }> {
  const client = new FilteredStreamClient({
    bearerToken: input.bearerToken,
    ...(input.baseUrl ? { baseUrl: input.baseUrl } : {}),
    logger: ctx.logger,
  });
  await client.syncRules(input.rules);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), input.seconds * 1000);
  timer.unref();
  return {
    source: {
      kind: 'live',
      inputs: client.stream({ signal: controller.signal }),
      description: `Twitter filtered stream (${input.seconds} s)`,
    },
    signal: controller.signal,
    stop: () => {
      clearTimeout(timer);
      controller.abort();
    },
  };
}
