import aslValidator from 'asl-validator';
import { describe, expect, it } from 'vitest';
import { noProgress, silentLogger } from '../src/core/logger.ts';
import { taskStates } from '../src/core/workflow.ts';
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
});
