import aslValidator from 'asl-validator';
import { describe, expect, it } from 'vitest';
import { noProgress, silentLogger } from '../src/core/logger.ts';
import { taskStates } from '../src/core/workflow.ts';
import { DuckDb, quoteIdent } from '../src/engines/duckdb/duckdb.ts';
import { toDuckDbType } from '../src/engines/duckdb/types.ts';
import { evaluateChecks, validateChecks } from '../src/engines/quality/checks.ts';
import { parseScheduleExpression } from '../src/engines/schedule/eventbridge.ts';
import { createTestHome } from '../test/helpers/context.ts';
import { pipelineModules } from './index.ts';

describe.each(Object.entries(pipelineModules))('pipeline %s is wired consistently', (name, module) => {
  const definition = module.definition;
  const functions = new Set((definition.functions ?? []).map((f) => f.name));
  const workflows = new Set((definition.workflows ?? []).map((w) => w.name));

  it.each((definition.workflows ?? []).map((w) => [w.name, w] as const))(
    'workflow %s is valid ASL',
    (_n, workflow) => {
      const result = aslValidator(workflow.definition as never);
      expect(result.errors).toEqual([]);
      expect(result.isValid).toBe(true);
      for (const task of taskStates(workflow.definition)) {
        expect(functions, `${workflow.name}/${task.stateName} -> ${task.resource}`).toContain(
          task.functionName,
        );
        // Lambda runs 15 minutes at most: every Task bounds itself below that.
        const state = workflow.definition.States[task.stateName] as { TimeoutSeconds?: number } | undefined;
        expect(state?.TimeoutSeconds ?? 60).toBeLessThanOrEqual(900);
      }
      expect(workflow.pipeline).toBe(name);
    },
  );

  it('every function has a handler, every schedule and trigger targets a workflow of the pipeline', async () => {
    const t = await createTestHome();
    try {
      const handlers = module.handlers({
        ctx: { ...t.ctx, logger: silentLogger, progress: noProgress },
        config: { get: () => undefined },
        notifier: { notify: async () => ({ delivered: [], failed: [] }) },
      });
      expect(Object.keys(handlers).sort()).toEqual([...functions].sort());
    } finally {
      await t.close();
    }
    for (const schedule of definition.schedules ?? []) {
      expect(workflows).toContain(schedule.workflow);
      expect(() => parseScheduleExpression(schedule.expression)).not.toThrow();
    }
    for (const trigger of definition.triggers ?? []) expect(workflows).toContain(trigger.workflow);
    for (const fn of definition.functions ?? []) expect(fn.timeoutSeconds).toBeLessThanOrEqual(900);
  });

  it('named queries call no DuckDB-only function, since the stack deploys them as Athena (Trino) named queries', () => {
    // Functions DuckDB has and Trino lacks (or names differently): https://trino.io/docs/current/functions/list.html
    const duckdbOnly =
      /\b(mode|strftime|strptime|list_\w+|arg_max|arg_min|epoch_ms|make_timestamp|string_agg|regexp_matches|median|quantile_\w+|struct_pack|ifnull)\s*\(/i;
    for (const query of definition.queries ?? []) {
      const code = query.sql.replace(/--.*$/gm, '');
      expect(duckdbOnly.exec(code)?.[0], `${query.database}.${query.name}`).toBeUndefined();
    }
  });

  it('declares data-quality checks that are valid and bind to the columns of their tables', async () => {
    expect(definition.checks?.length ?? 0, `${name} declares no data-quality check`).toBeGreaterThan(0);
    expect(validateChecks(definition)).toEqual([]);
    // Each table's checks evaluate on an empty table with its columns: every column and predicate binds.
    const db = await DuckDb.open({ threads: 1 });
    try {
      for (const { table, checks } of definition.checks ?? []) {
        const dataset = definition.datasets.find((d) => d.name === table);
        const warehouse = definition.warehouseTables?.find((w) => w.name === table);
        if (dataset) {
          const columns = [...dataset.columns, ...dataset.partitionKeys]
            .map((c) => `${quoteIdent(c.name)} ${toDuckDbType(c)}`)
            .join(', ');
          await db.run(`CREATE OR REPLACE TABLE ${quoteIdent(table)} (${columns})`);
        } else {
          // The warehouse DDL (the SQL PostgreSQL and Redshift share) is DuckDB SQL too.
          await db.run(`DROP TABLE IF EXISTS ${quoteIdent(table)}; ${warehouse?.ddl ?? ''}`);
        }
        const result = await evaluateChecks({
          db,
          relation: quoteIdent(table),
          checks,
          pipeline: name,
          table,
          runId: 'consistency',
          now: new Date(),
        });
        expect(result.results).toHaveLength(checks.length);
      }
    } finally {
      db.close();
    }
  });
});
