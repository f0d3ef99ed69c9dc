// The workflow runner conformance suite against the local backend's LocalWorkflowRunner
// (aws-local-stepfunctions in-process, history in SQLite key-value tables).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKvStore } from '../../src/backends/local/local-kv-table.ts';
import { type LocalFunction, LocalWorkflowRunner } from '../../src/backends/local/local-workflow-runner.ts';
import { openSqlite } from '../../src/backends/local/sqlite.ts';
import { workflowRunnerConformance } from './workflow-runner.case.ts';

workflowRunnerConformance('local (LocalWorkflowRunner, SQLite)', async ({ workflows, functions, clock }) => {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-wf-conformance-'));
  const db = openSqlite(join(dir, 'sluice.db'));
  const local: Record<string, LocalFunction> = {};
  for (const [name, handler] of Object.entries(functions)) {
    local[name] = {
      definition: { name, description: name, timeoutSeconds: 60 },
      handler: (event) => handler(event),
    };
  }
  const runner = await LocalWorkflowRunner.open({
    kv: new LocalKvStore(db),
    clock,
    workflows,
    functions: local,
    retryIntervalMs: 0,
    waitMs: 0,
  });
  return {
    runner,
    close: async () => {
      await runner.shutdown(0);
      db.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
