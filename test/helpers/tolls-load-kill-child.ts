/**
 * Child process for the tolls crash test: loads one staged file into the warehouse and SIGKILLs
 * itself right after the COPY, inside the load's transaction (before COMMIT): no cleanup, no
 * ROLLBACK, no finally blocks. Prints `copied` first, so the parent knows the phase was reached.
 *
 * argv: <home> <warehouseUrl> <sourceKey> <sha256> <stagingKey>
 */
import { writeSync } from 'node:fs';
import path from 'node:path';
import { loadResults } from '../../pipelines/tolls/functions.ts';
import { createLocalBackend } from '../../src/backends/local/local-backend.ts';
import { systemClock } from '../../src/core/clock.ts';
import { noProgress, silentLogger } from '../../src/core/logger.ts';

const [home, warehouseUrl, sourceKey, sha256, stagingKey] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const backend = createLocalBackend(home, { warehouseUrl });
await loadResults(
  {
    backend,
    clock: systemClock,
    logger: silentLogger,
    progress: noProgress,
    workDir: path.join(home, 'tmp'),
    engine: { threads: 1 },
  },
  [{ sourceKey, sha256, staging: { layer: 'staging', key: stagingKey } }],
  'crash-child-run',
  {
    onPhase: (phase) => {
      if (phase !== 'copied') return;
      writeSync(1, 'copied\n');
      process.kill(process.pid, 'SIGKILL');
    },
  },
);
process.stdout.write('finished without being killed\n');
