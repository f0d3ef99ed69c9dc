import path from 'node:path';
import type { LandOptions } from '../../../pipelines/tolls/run.ts';
import type { PipelineContext } from '../../core/context.ts';
import { UsageError } from '../../core/errors.ts';
import type { JsonValue } from '../../core/ports/kv-table.ts';
import type { ExecutionRecord } from '../../core/ports/workflow-runner.ts';
import { openContext, resolveHome } from '../context.ts';
import { formatCount, printJson } from '../output.ts';

/** Flags of `sluice run tolls`. */
export interface TollsRunFlags {
  home?: string;
  json?: boolean;
  input?: string[];
  from?: string;
  to?: string;
  sourceUrl?: string;
  seconds?: string;
  rate?: string;
  again?: boolean;
}

/**
 * Lands the files (or one generated file) and runs the `tolls-load` workflow on their
 * object-created event to completion through a local workflow runner; resolves with the final
 * execution record (never rejects for a failed execution).
 */
export async function executeTolls(
  ctx: PipelineContext,
  options: LandOptions,
): Promise<{ landed: string[]; execution: ExecutionRecord }> {
  const { landTollFiles } = await import('../../../pipelines/tolls/run.ts');
  const { tollsPipeline } = await import('../../../pipelines/tolls/definition.ts');
  const { tollsHandlers } = await import('../../../pipelines/tolls/functions.ts');
  const { LocalWorkflowRunner } = await import('../../backends/local/local-workflow-runner.ts');
  const notifier = { notify: async () => ({ delivered: [], failed: [] }) };
  const handlers = tollsHandlers({ ctx, config: { get: () => undefined }, notifier });
  const functions = Object.fromEntries(
    (tollsPipeline.functions ?? []).map((definition) => [
      definition.name,
      { definition, handler: handlers[definition.name]! },
    ]),
  );
  const runner = await LocalWorkflowRunner.open({
    kv: ctx.backend.kv,
    clock: ctx.clock,
    workflows: tollsPipeline.workflows ?? [],
    functions,
    logger: ctx.logger,
  });
  try {
    // Landed after the runner is open (opening validates the ASL, ~0.5 s), so a file's load
    // starts the moment it lands, as under `sluice up`.
    const { landed, event } = await landTollFiles(ctx, options);
    const handle = await runner.start('tolls-load', event as unknown as JsonValue, {
      source: { kind: 'manual', name: 'sluice run tolls', detail: landed.join(', ') },
    });
    return { landed, execution: await handle.done };
  } finally {
    await runner.shutdown(0);
  }
}

/**
 * `sluice run tolls`: lands `--input` files (or one freshly generated file) into `landing/tolls/`
 * and runs the `tolls-load` workflow (crawl -> job -> load) on their object-created event to
 * completion, through the local workflow runner (so `sluice executions` shows it). The warehouse
 * server is started when it is not running, and stopped again at the end if this command started it.
 * Exit codes: 0 ok, 2 bad flags or unreadable input, 1 the workflow failed (its error is printed).
 */
export async function runTollsCommand(flags: TollsRunFlags): Promise<void> {
  for (const [flag, given] of [
    ['--from', flags.from],
    ['--to', flags.to],
    ['--source-url', flags.sourceUrl],
    ['--seconds', flags.seconds],
    ['--rate', flags.rate],
    ['--again', flags.again],
  ] as const) {
    if (given !== undefined) throw new UsageError(`${flag} is not a tolls flag; tolls takes --input FILE...`);
  }
  const inputs = (flags.input ?? []).map((file) => path.resolve(file));
  const { ctx, close } = await openContext({ home: resolveHome(flags.home), progress: !flags.json });
  try {
    const { landed, execution } = await executeTolls(ctx, inputs.length > 0 ? { inputs } : {});
    if (flags.json) printJson({ landed, execution });
    else printTollsExecution(landed, execution);
    if (execution.status !== 'SUCCEEDED') process.exitCode = 1;
  } finally {
    await close();
  }
}

interface TollsOutput {
  crawl?: {
    table?: string | null;
    change?: string | null;
    schema_version?: number | null;
    columns?: string[];
    skipped?: { key: string; reason: string }[];
  };
  job?: {
    files?: {
      source_key: string;
      counts: { read: number; loaded: number; quarantined: number };
      quarantine_key: string | null;
    }[];
  };
  load?: { loaded?: { source_key: string; status: string; rows: number; previous_run: string | null }[] };
}

/** Prints a finished tolls-load execution, stage by stage (used by `sluice run tolls` and `sluice demo`). */
export function printTollsExecution(landed: readonly string[], execution: ExecutionRecord): void {
  const out = (line = '') => process.stdout.write(`${line}\n`);
  for (const key of landed) out(`  landed     landing/${key}`);
  if (execution.status !== 'SUCCEEDED') {
    out(
      `  workflow   tolls-load ${execution.executionId} ${execution.status} in ${execution.failedState ?? '?'}: ${execution.error ?? ''} ${execution.cause ?? ''}`,
    );
    out(`             sluice execution ${execution.executionId} shows every state`);
    return;
  }
  const output = (execution.output ?? {}) as TollsOutput;
  const crawl = output.crawl;
  if (crawl?.table) {
    out(
      `  crawl      ${crawl.table} schema v${crawl.schema_version} (${crawl.change}): ${(crawl.columns ?? []).join(', ')}`,
    );
  }
  for (const skipped of crawl?.skipped ?? [])
    out(`             crawler skipped ${skipped.key}: ${skipped.reason}`);
  for (const file of output.job?.files ?? []) {
    const c = file.counts;
    out(
      `  job        ${file.source_key}: read ${formatCount(c.read)} = staged ${formatCount(c.loaded)} + quarantined ${formatCount(c.quarantined)}`,
    );
    if (file.quarantine_key) out(`             quarantined lines: quarantine/${file.quarantine_key}`);
  }
  for (const load of output.load?.loaded ?? []) {
    out(
      load.status === 'loaded'
        ? `  load       ${load.source_key}: ${formatCount(load.rows)} rows copied into toll_table`
        : `  load       ${load.source_key}: already loaded by run ${load.previous_run} (${formatCount(load.rows)} rows), nothing copied`,
    );
  }
  out(`  workflow   tolls-load ${execution.executionId} SUCCEEDED`);
}
