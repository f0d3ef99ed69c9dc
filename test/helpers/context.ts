import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createLocalBackend } from '../../src/backends/local/local-backend.ts';
import type { Clock } from '../../src/core/clock.ts';
import { systemClock } from '../../src/core/clock.ts';
import type { PipelineContext } from '../../src/core/context.ts';
import { noProgress, silentLogger } from '../../src/core/logger.ts';
import type { Backend } from '../../src/core/ports/backend.ts';

/** A fresh sluice home in the OS temp dir with a local backend and a pipeline context. */
export interface TestHome {
  readonly home: string;
  readonly backend: Backend & { home: string };
  readonly ctx: PipelineContext;
  /** Runs SQL through the local query engine (opened per call, so it sees the latest catalog). */
  query<T = Record<string, unknown>>(sql: string): Promise<T[]>;
  close(): Promise<void>;
}

/** Creates a test home; `close()` removes it. */
export async function createTestHome(options: { clock?: Clock } = {}): Promise<TestHome> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'sluice-test-'));
  const clock = options.clock ?? systemClock;
  const backend = createLocalBackend(home, { clock });
  const ctx: PipelineContext = {
    backend,
    clock,
    logger: silentLogger,
    progress: noProgress,
    workDir: path.join(home, 'tmp'),
    engine: { threads: 2, memoryLimit: '512MB' },
  };
  return {
    home,
    backend,
    ctx,
    async query<T>(sql: string): Promise<T[]> {
      const engine = await backend.openQueryEngine();
      try {
        return (await engine.query(sql)).rows as T[];
      } finally {
        await engine.close();
      }
    },
    async close() {
      await backend.close();
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** A clock whose time the test sets; `sleep` returns at once and records the requested ms. */
export function fakeClock(start: Date): Clock & { set(date: Date): void; sleeps: number[] } {
  let now = start.getTime();
  const sleeps: number[] = [];
  return {
    now: () => new Date(now),
    sleep: async (ms: number) => {
      sleeps.push(ms);
    },
    set(date: Date) {
      now = date.getTime();
    },
    sleeps,
  };
}
