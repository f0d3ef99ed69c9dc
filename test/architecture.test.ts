import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/samples.ts';

/**
 * The dependency direction of docs/architecture.md, checked on every import:
 * core <- engines, sources, backends <- cli, dashboard; pipelines use core, engines and sources only.
 */
function sources(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.case.ts'))
    .map((f) => path.join(dir, f));
}

interface Import {
  file: string;
  target: string;
  typeOnly: boolean;
}

function imports(file: string): Import[] {
  const text = readFileSync(path.join(ROOT, file), 'utf8');
  const found: Import[] = [];
  for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?[^'";]*?from\s+'([^']+)'/gm)) {
    const target = m[3] ?? '';
    found.push({
      file,
      typeOnly: Boolean(m[2]),
      target: target.startsWith('.') ? path.normalize(path.join(path.dirname(file), target)) : target,
    });
  }
  for (const m of text.matchAll(/import\(\s*'([^']+)'\s*\)/g)) {
    const target = m[1] ?? '';
    found.push({
      file,
      typeOnly: false,
      target: target.startsWith('.') ? path.normalize(path.join(path.dirname(file), target)) : target,
    });
  }
  return found;
}

function violations(dir: string, allowed: (i: Import) => boolean): string[] {
  return sources(dir)
    .flatMap(imports)
    .filter((i) => !allowed(i))
    .map((i) => `${i.file} imports ${i.target}`);
}

describe('architecture', () => {
  it('sees the imports it checks (multi-line, type-only and dynamic)', () => {
    const run = imports('src/core/run.ts').map((i) => i.target);
    expect(run).toContain('src/core/clock.ts');
    expect(run).toContain('src/core/ports/kv-table.ts');
    const backend = imports('src/backends/local/local-backend.ts');
    expect(backend.find((i) => i.target === 'src/core/clock.ts')?.typeOnly).toBe(true);
    expect(backend.map((i) => i.target)).toContain('src/backends/local/local-query-engine.ts');
    expect(imports('src/core/ports/object-store.ts').find((i) => i.target === 'node:stream')?.typeOnly).toBe(
      true,
    );
  });

  it('core has no I/O and depends on nothing else in sluice', () => {
    expect(
      violations(
        'src/core',
        (i) => i.target.startsWith('src/core/') || (i.target.startsWith('node:') && i.typeOnly),
      ),
    ).toEqual([]);
  });

  it('engines and sources depend only on core (and each other), never on backends, cli or pipelines', () => {
    const ok = (i: Import) => !/^(src\/(backends|cli|dashboard)|pipelines)\//.test(i.target);
    expect([...violations('src/engines', ok), ...violations('src/sources', ok)]).toEqual([]);
  });

  it('the dashboard uses core, engines, sources, backends and pipelines, never the cli', () => {
    expect(violations('src/dashboard', (i) => !/^src\/(cli|runtime)\//.test(i.target))).toEqual([]);
  });

  it('backends never depend on the cli or on pipelines', () => {
    expect(violations('src/backends', (i) => !/^(src\/(cli|dashboard)|pipelines)\//.test(i.target))).toEqual(
      [],
    );
  });

  it('the two backends share only src/backends/*.ts: neither imports the other', () => {
    expect([
      ...violations('src/backends/aws', (i) => !i.target.startsWith('src/backends/local/')),
      ...violations('src/backends/local', (i) => !i.target.startsWith('src/backends/aws/')),
    ]).toEqual([]);
  });

  it('the Lambda runtime never reaches the local backend, the local runtime, the cli or the dashboard', () => {
    // What the deployed functions import is bundled: better-sqlite3 and friends must stay out.
    expect(
      violations(
        'src/runtime/aws',
        (i) => !/^src\/(backends\/local|runtime\/local|cli|dashboard|deploy)\//.test(i.target),
      ),
    ).toEqual([]);
  });

  it('the CDK app reads definitions and the aws config, never the local backend, cli or dashboard', () => {
    expect(
      violations(
        'src/deploy',
        (i) => !/^src\/(backends\/local|runtime\/local|cli|dashboard)\//.test(i.target),
      ),
    ).toEqual([]);
  });

  it('pipelines use core, engines and sources only: no backend is named in a pipeline', () => {
    expect(
      violations(
        'pipelines',
        (i) =>
          !/^src\/(backends|cli|dashboard)\//.test(i.target) && !/better-sqlite3|@aws-sdk/.test(i.target),
      ),
    ).toEqual([]);
  });
});
