import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './bundle.ts';

const BIN = path.join(REPO_ROOT, 'bin/sluice.js');

/** Runs the CLI as a real process; resolves with its exit code and output. */
function sluice(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: REPO_ROOT, env, maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        const code = error ? ((error as { code?: number }).code ?? 1) : 0;
        resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
      },
    );
  });
}

let out: string;
beforeAll(() => {
  out = mkdtempSync(path.join(os.tmpdir(), 'sluice-deploy-cli-'));
});
afterAll(() => {
  rmSync(out, { recursive: true, force: true });
});

describe('sluice deploy (real process)', () => {
  it('--synth --out DIR gharchive writes the stack template and reports a clean cdk-nag result', async () => {
    const result = await sluice(['deploy', '--synth', '--out', out, 'gharchive']);
    expect(result.stderr).not.toMatch(/error/i);
    expect(result.code).toBe(0);
    const templatePath = path.join(out, 'sluice-gharchive.template.json');
    expect(result.stdout).toContain('sluice-gharchive');
    expect(result.stdout).toContain(templatePath);
    expect(result.stdout).toMatch(/cdk-nag AwsSolutions: 0 unacknowledged finding\(s\), \d+ acknowledged/);
    const template = JSON.parse(readFileSync(templatePath, 'utf8')) as {
      Resources: Record<string, { Type: string; Properties?: { FunctionName?: string } }>;
    };
    const functions = Object.values(template.Resources)
      .filter((r) => r.Type === 'AWS::Lambda::Function')
      .map((r) => r.Properties?.FunctionName)
      .filter((n) => n !== undefined)
      .sort();
    // The pipeline's two functions, its trigger dispatcher and the concurrency slot release function
    // (plus the CDK's unnamed notifications handler).
    expect(functions).toEqual([
      'gharchive-ingest',
      'gharchive-slot-release',
      'gharchive-transform',
      'gharchive-trigger-dispatcher',
    ]);
    // Only the requested stack.
    expect(existsSync(path.join(out, 'sluice-tolls.template.json'))).toBe(false);
  });

  it('deploy without credentials fails before synthesizing, saying how to provide them', async () => {
    const env: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('AWS_')) env[key] = value;
    Object.assign(env, {
      AWS_CONFIG_FILE: path.join(out, 'no-config'),
      AWS_SHARED_CREDENTIALS_FILE: path.join(out, 'no-credentials'),
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_REGION: 'eu-west-1',
    });
    const result = await sluice(['deploy', 'quotes', '--out', path.join(out, 'not-written')], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('no AWS credentials found in the default credential chain');
    expect(result.stderr).toContain('AWS_PROFILE');
    expect(existsSync(path.join(out, 'not-written'))).toBe(false);
  });

  it('rejects an unknown pipeline or component with a usage error', async () => {
    const unknown = await sluice(['deploy', '--synth', 'nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown pipeline "nope"');
    const component = await sluice(['deploy', '--synth', '--disable', 'lake', 'gharchive']);
    expect(component.code).toBe(2);
    expect(component.stderr).toContain('--disable lake');
  });

  it('--help teaches: switches, credentials, examples', async () => {
    const help = await sluice(['deploy', '--help']);
    expect(help.code).toBe(0);
    for (const text of [
      '--synth',
      '--out <dir>',
      '--disable',
      'AWS_PROFILE',
      'Examples:',
      'cdk-nag',
      'docs/deploy.md',
    ]) {
      expect(help.stdout).toContain(text);
    }
  });
});
