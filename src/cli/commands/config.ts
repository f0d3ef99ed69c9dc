import type { Command } from 'commander';
import { pipelines } from '../../../pipelines/index.ts';
import { ConfigStore } from '../../core/config.ts';
import { UsageError } from '../../core/errors.ts';
import type { JsonValue } from '../../core/ports/kv-table.ts';
import { openContext, resolveHome } from '../context.ts';
import { formatTable, printJson } from '../output.ts';

function checkPipeline(name: string): void {
  if (!pipelines[name])
    throw new UsageError(`unknown pipeline "${name}": expected one of ${Object.keys(pipelines).join(', ')}`);
}

/** Runs `fn` with the home's config store, closing the home afterwards. */
async function withConfigStore<T>(
  home: string | undefined,
  fn: (store: ConfigStore) => Promise<T>,
): Promise<T> {
  const { ctx, close } = await openContext({ home: resolveHome(home), progress: false });
  try {
    // On AWS, DynamoDB Streams records the write whatever the CLI opened: no need to check the stream.
    const stream = ctx.backend.name !== 'aws';
    return await fn(await ConfigStore.open(ctx.backend.kv, ctx.clock, { stream }));
  } finally {
    await close();
  }
}

/** A command-line value: JSON when it parses (numbers, booleans, objects), else the text. */
function parseValue(text: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return text;
  }
}

/** `sluice config list|get|set|unset`. */
export function registerConfig(program: Command): void {
  const config = program
    .command('config')
    .description(
      'pipeline configuration in the `config` table; changes reach running functions without a restart',
    );
  config
    .command('list')
    .argument('[pipeline]', 'only this pipeline')
    .description('every key with its value (set, or the default)')
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option('--json', 'print JSON')
    .action(async (pipeline: string | undefined, flags: { home?: string; json?: boolean }) => {
      if (pipeline) checkPipeline(pipeline);
      await withConfigStore(flags.home, async (store) => {
        const set = await store.list(pipeline);
        const rows: Record<string, JsonValue>[] = [];
        for (const definition of Object.values(pipelines)) {
          if (pipeline && definition.name !== pipeline) continue;
          for (const [key, entry] of Object.entries(definition.config ?? {})) {
            const stored = set.find((s) => s.pipeline === definition.name && s.key === key);
            rows.push({
              pipeline: definition.name,
              key,
              value: stored ? stored.value : entry.default,
              source: stored ? `set ${stored.updatedAt}` : 'default',
              description: entry.description,
            });
          }
        }
        for (const s of set) {
          if (!rows.some((r) => r.pipeline === s.pipeline && r.key === s.key)) {
            rows.push({
              pipeline: s.pipeline,
              key: s.key,
              value: s.value,
              source: `set ${s.updatedAt}`,
              description: '(not a declared key)',
            });
          }
        }
        if (flags.json) printJson(rows);
        else
          process.stdout.write(
            `${formatTable(
              Object.keys(rows[0] ?? { pipeline: '' }).map((name) => ({ name })),
              rows,
            )}\n`,
          );
      });
    });
  config
    .command('get')
    .argument('<pipeline>')
    .argument('<key>')
    .description('print one value as JSON (the default when unset)')
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .action(async (pipeline: string, key: string, flags: { home?: string }) => {
      checkPipeline(pipeline);
      await withConfigStore(flags.home, async (store) => {
        const value = (await store.get(pipeline, key)) ?? pipelines[pipeline]?.config?.[key]?.default;
        if (value === undefined) throw new UsageError(`${pipeline} has no configuration key "${key}"`);
        printJson(value);
      });
    });
  config
    .command('set')
    .argument('<pipeline>')
    .argument('<key>')
    .argument('<value>', 'JSON (42, true, "text", {...}) or plain text')
    .description('set a value; running `sluice up` picks it up at the next function call')
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .action(async (pipeline: string, key: string, value: string, flags: { home?: string }) => {
      checkPipeline(pipeline);
      await withConfigStore(flags.home, async (store) => {
        await store.set(pipeline, key, parseValue(value));
        process.stdout.write(`${pipeline}.${key} = ${JSON.stringify(parseValue(value))}\n`);
      });
    });
  config
    .command('unset')
    .argument('<pipeline>')
    .argument('<key>')
    .description('remove a value (the default applies again)')
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .action(async (pipeline: string, key: string, flags: { home?: string }) => {
      checkPipeline(pipeline);
      await withConfigStore(flags.home, async (store) => {
        await store.unset(pipeline, key);
      });
    });
}
