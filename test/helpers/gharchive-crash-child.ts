/**
 * Child process for crash tests: runs gharchive incrementally with a fixed "now" and kills itself
 * with SIGKILL (no cleanup, no finally blocks) when `unit` reaches `phase`.
 *
 * argv: <home> <sourceDir> <nowIso> <unit> <phase>
 */
import path from 'node:path';
import { runGharchive } from '../../pipelines/gharchive/run.ts';
import { createLocalBackend } from '../../src/backends/local/local-backend.ts';
import { noProgress, silentLogger } from '../../src/core/logger.ts';

const [home, sourceDir, nowIso, unit, phase] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const now = new Date(nowIso);
const clock = { now: () => now, sleep: async () => {} };
const backend = createLocalBackend(home, { clock });
await runGharchive(
  {
    backend,
    clock,
    logger: silentLogger,
    progress: noProgress,
    workDir: path.join(home, 'tmp'),
    engine: { threads: 1 },
  },
  {
    sourceUrl: sourceDir,
    onPhase: (u, p) => {
      if (u === unit && p === phase) process.kill(process.pid, 'SIGKILL');
    },
  },
);
process.stdout.write('finished without reaching the phase\n');
