import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Local scratch space shared by the object-store backends: directories named
 * `<kind>-<pid>-<random>` so that what a crashed process left can be told from what a running one
 * still uses (the local store keeps them inside each layer's `_sluice_tmp/`, the S3 store under the
 * machine's temp directory).
 */

/** Whether a process with this pid runs on this host (`kill(pid, 0)`; `EPERM`: it runs as another user). */
export function processRuns(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The name of a new scratch entry of this process: `<kind>-<pid>-<16 hex>`. */
export function scratchName(kind: string): string {
  return `${kind}-${process.pid}-${randomBytes(8).toString('hex')}`;
}

/** Creates `<dir>/scratch-<pid>-<random>/`; `release` removes it with its content. */
export async function makeScratchDir(dir: string): Promise<{ path: string; release(): Promise<void> }> {
  const path = join(dir, scratchName('scratch'));
  await mkdir(path, { recursive: true });
  return { path, release: () => rm(path, { recursive: true, force: true }) };
}

/**
 * Removes the entries of `dir` named `<kind>-<pid>-...` (one of `kinds`) whose process no longer
 * runs; those of live processes, this one included, stay. A missing `dir` is nothing to do.
 * @throws {Error} when `dir` cannot be read for another reason than not existing.
 */
export async function sweepDeadScratch(dir: string, kinds: readonly string[]): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return;
    throw error;
  }
  const pattern = new RegExp(`^(?:${kinds.join('|')})-(\\d+)-`);
  for (const name of entries) {
    const pid = Number(pattern.exec(name)?.[1]);
    if (Number.isInteger(pid) && processRuns(pid)) continue;
    await rm(join(dir, name), { recursive: true, force: true });
  }
}
