/**
 * Runs the DEPLOYED ARTIFACT (what `bundleRuntime()` in src/deploy/bundle.ts writes) as close to
 * the AWS Lambda Node.js runtime as an offline test can: a fresh `node` process per function (a
 * Lambda execution environment), the code directory as the task root and the working directory,
 * the handler resolved from the function's handler string, and each invocation given a JSON event
 * and a context object, with failures reported as the runtime reports them.
 *
 * What the Lambda runtime does, and how this mirrors it
 * (https://docs.aws.amazon.com/lambda/latest/dg/nodejs-handler.html,
 * https://docs.aws.amazon.com/lambda/latest/dg/nodejs-context.html,
 * https://docs.aws.amazon.com/lambda/latest/dg/nodejs-exceptions.html,
 * https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime):
 * - handler `runtime/aws/lambda.taskHandler` is module `runtime/aws/lambda` under
 *   `LAMBDA_TASK_ROOT` (tried as `.js`, `.mjs`, `.cjs`) and its export `taskHandler`; a module
 *   that fails to load is `Runtime.ImportModuleError`, a missing export `Runtime.HandlerNotFound`;
 * - the event is JSON-parsed, the result JSON-serialized; an async handler's rejection is
 *   reported as `{ errorType: error.name, errorMessage: error.message, trace: stack lines }`;
 * - the bundle carries its own AWS SDK v3, so no `@aws-sdk` package is resolvable from the task
 *   root (the runtime's copy is not used); a layer is mounted at `/opt/nodejs/node_modules`. ESM
 *   resolution ignores `NODE_PATH`, so (as the runtime makes the layer resolvable from the task
 *   root) {@link layoutLambda} places the task root in a directory whose `node_modules` links,
 *   only for a function that has the layer, the layer's packages; Node follows the links to their real
 *   paths, so a layer package resolves its own dependencies inside the layer only.
 *
 * Not mirrored: the Runtime API loop, freezing between invocations, memory and /tmp limits, the
 * Linux distribution (Amazon Linux 2023) and the Node version (the child runs this machine's node).
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, symlinkSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import * as glue from '@aws-sdk/client-glue';
import type { RuntimeBundle } from '../../src/deploy/bundle.ts';
import { LAYER_PACKAGES } from '../../src/deploy/bundle.ts';
import type { FakeGlue } from './fake-glue.ts';
import { type LoopbackServer, listenOnLoopback } from './listen.ts';

/** The payload Lambda reports for a failed invocation (and `Function error` of `Invoke`). */
export interface LambdaErrorPayload {
  readonly errorType: string;
  readonly errorMessage: string;
  readonly trace: readonly string[];
}

/** One invocation's outcome: the handler's JSON result, or the error payload. */
export type InvocationOutcome =
  | { readonly ok: true; readonly result: unknown; readonly ms: number }
  | { readonly ok: false; readonly error: LambdaErrorPayload; readonly ms: number };

/** What {@link invokeLambda} observed in the child. */
export interface LambdaRun {
  /** Milliseconds the handler module took to import (the cold start's init phase), or `undefined` when it failed. */
  readonly loadMs?: number;
  /** Set when the module could not be loaded or has no such handler (then `outcomes` is empty). */
  readonly initError?: LambdaErrorPayload;
  readonly outcomes: readonly InvocationOutcome[];
  /** The child's stdout (the function's log lines: pino JSON) and stderr, the last 64 KiB each. */
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number | null;
}

/** Options of {@link invokeLambda}. */
export interface InvokeOptions {
  /** The task root ({@link layoutLambda}'s `taskRoot`). */
  readonly taskRoot: string;
  /** The function's handler string, e.g. `runtime/aws/lambda.taskHandler`. */
  readonly handler: string;
  /** The function's environment variables (what the stack sets); the Lambda-reserved ones are added. */
  readonly env: Readonly<Record<string, string>>;
  /** Events, invoked one after the other in the same process (one warm container). */
  readonly events: readonly unknown[];
  /** The function's timeout (the context's deadline), default 900,000 ms (15 min). */
  readonly functionTimeoutMs?: number;
  /** Kills the child after this many ms (default 60,000). */
  readonly killAfterMs?: number;
  /** Lambda's function name (default `env.SLUICE_FUNCTION` or `smoke-function`). */
  readonly functionName?: string;
  /** `TMPDIR` of the child (Lambda's `/tmp`). */
  readonly tmpDir: string;
}

/**
 * Program of the child (an ES module run with `node --input-type=module -e`): receives its
 * settings over IPC, imports the handler module, invokes it per event, sends the outcomes back and
 * exits. See the module comment for what it mirrors.
 */
const CHILD_PROGRAM = `
import { existsSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const toPayload = (error, type) => {
  if (error instanceof Error) {
    return {
      errorType: type ?? String(error.name),
      errorMessage: String(error.message),
      trace: String(error.stack ?? '').split('\\n'),
    };
  }
  return { errorType: type ?? typeof error, errorMessage: String(error), trace: [] };
};
const reply = (message) => new Promise((resolve) => process.send(message, () => resolve()));

process.once('message', async (settings) => {
  const dot = settings.handler.lastIndexOf('.');
  const moduleRoot = path.resolve(process.env.LAMBDA_TASK_ROOT, settings.handler.slice(0, dot));
  const exportName = settings.handler.slice(dot + 1);
  const file = ['.js', '.mjs', '.cjs'].map((ext) => moduleRoot + ext).find((f) => existsSync(f));
  const started = performance.now();
  let handler;
  try {
    if (file === undefined) throw new Error('Cannot find module ' + moduleRoot);
    const module = await import(pathToFileURL(file).href);
    handler = module[exportName];
    if (typeof handler !== 'function') {
      await reply({ type: 'done', initError: { errorType: 'Runtime.HandlerNotFound', errorMessage: settings.handler + ' is undefined or not exported', trace: [] }, outcomes: [] });
      process.exit(1);
    }
  } catch (error) {
    await reply({ type: 'done', initError: toPayload(error, 'Runtime.ImportModuleError'), outcomes: [] });
    process.exit(1);
  }
  const loadMs = performance.now() - started;
  const outcomes = [];
  for (const [index, eventJson] of settings.events.entries()) {
    const deadline = Date.now() + settings.functionTimeoutMs;
    const context = {
      callbackWaitsForEmptyEventLoop: true,
      functionName: settings.functionName,
      functionVersion: '$LATEST',
      invokedFunctionArn: 'arn:aws:lambda:' + process.env.AWS_REGION + ':123456789012:function:' + settings.functionName,
      memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      awsRequestId: '00000000-0000-4000-8000-' + String(index).padStart(12, '0'),
      logGroupName: '/aws/lambda/' + settings.functionName,
      logStreamName: '2026/01/01/[$LATEST]smoke',
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    };
    const t = performance.now();
    try {
      const result = await handler(JSON.parse(eventJson), context);
      outcomes.push({ ok: true, result: JSON.parse(JSON.stringify(result ?? null)), ms: performance.now() - t });
    } catch (error) {
      outcomes.push({ ok: false, error: toPayload(error), ms: performance.now() - t });
    }
  }
  await reply({ type: 'done', loadMs, outcomes });
  process.exit(0);
});
`;

/** Where {@link layoutLambda} put a function's execution environment. */
export interface LambdaLayout {
  /** `LAMBDA_TASK_ROOT`: a copy of the bundle's code directory. */
  readonly taskRoot: string;
  /** The `node_modules` beside the task root standing in for the runtime's SDK and `/opt/nodejs/node_modules`. */
  readonly nodeModules: string;
}

/**
 * Lays out one function's execution environment under `dir`: `dir/task` (a copy of
 * `bundle.codeDir`) and `dir/node_modules` holding, when `withLayer`, each of the layer's top-level entries linked to
 * `bundle.layerDir/nodejs/node_modules` (the stack attaches the layer to DuckDB functions only).
 */
export function layoutLambda(
  bundle: RuntimeBundle,
  dir: string,
  options: { withLayer: boolean },
): LambdaLayout {
  const taskRoot = path.join(dir, 'task');
  const nodeModules = path.join(dir, 'node_modules');
  cpSync(bundle.codeDir, taskRoot, { recursive: true });
  mkdirSync(nodeModules, { recursive: true });
  if (options.withLayer) {
    const layerModules = path.join(bundle.layerDir, 'nodejs', 'node_modules');
    const tops = new Set(LAYER_PACKAGES.map((name) => name.split('/')[0] ?? name));
    for (const top of tops) symlinkSync(path.join(layerModules, top), path.join(nodeModules, top), 'dir');
  }
  return { taskRoot, nodeModules };
}

/**
 * Starts a fresh `node` child as one Lambda execution environment and invokes `options.handler`
 * once per event. The child's environment is only `options.env` plus what Lambda sets itself
 * (`AWS_REGION` is the caller's; `LAMBDA_TASK_ROOT`, `AWS_LAMBDA_FUNCTION_NAME`, `TZ=:UTC`, ...),
 * never the test process's (no `NODE_OPTIONS` of the test runner, no credentials).
 * @throws {Error} with the child's stderr when it exits or times out without answering.
 */
export async function invokeLambda(options: InvokeOptions): Promise<LambdaRun> {
  const functionName = options.functionName ?? options.env.SLUICE_FUNCTION ?? 'smoke-function';
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    LANG: 'en_US.UTF-8',
    TZ: ':UTC',
    TMPDIR: options.tmpDir,
    LAMBDA_TASK_ROOT: options.taskRoot,
    LAMBDA_RUNTIME_DIR: '/var/runtime',
    AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
    AWS_LAMBDA_FUNCTION_NAME: functionName,
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '3008',
    AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${functionName}`,
    NODE_PATH: '/opt/nodejs/node22/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules',
    ...options.env,
  };
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD_PROGRAM], {
    cwd: options.taskRoot,
    env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let stdout = '';
  let stderr = '';
  const keep = (text: string) => text.slice(-65_536);
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout = keep(stdout + chunk);
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = keep(stderr + chunk);
  });
  const answer = new Promise<{
    loadMs?: number;
    initError?: LambdaErrorPayload;
    outcomes: InvocationOutcome[];
  }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`the Lambda child did not answer within ${options.killAfterMs ?? 60_000} ms: ${stderr}`),
      );
    }, options.killAfterMs ?? 60_000);
    child.once(
      'message',
      (message: { loadMs?: number; initError?: LambdaErrorPayload; outcomes: InvocationOutcome[] }) => {
        clearTimeout(timer);
        resolve(message);
      },
    );
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(
        new Error(`the Lambda child exited (code ${code}, signal ${signal}) without answering: ${stderr}`),
      );
    });
  });
  child.send({
    handler: options.handler,
    functionName,
    functionTimeoutMs: options.functionTimeoutMs ?? 900_000,
    events: options.events.map((event) => JSON.stringify(event)),
  });
  const message = await answer;
  const exitCode = await new Promise<number | null>((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
  return {
    ...(message.loadMs !== undefined ? { loadMs: message.loadMs } : {}),
    ...(message.initError !== undefined ? { initError: message.initError } : {}),
    outcomes: message.outcomes,
    stdout,
    stderr,
    exitCode,
  };
}

/** A JSON-protocol AWS service served over HTTP on 127.0.0.1, with the operations it was called with. */
export interface JsonServiceServer extends LoopbackServer {
  /** `X-Amz-Target` operation names in call order, e.g. `GetTable`. */
  readonly calls: string[];
}

/** Epoch seconds for every `Date` (the awsJson1_1 timestamp format); drops `$metadata`. */
function toWire(value: unknown): unknown {
  if (value instanceof Date) return value.getTime() / 1000;
  if (Array.isArray(value)) return value.map(toWire);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([key, v]) => key !== '$metadata' && v !== undefined)
        .map(([key, v]) => [key, toWire(v)]),
    );
  }
  return value;
}

/** Reads a request body as UTF-8. */
function body(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      text += chunk;
    });
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}

/**
 * Serves an in-process (faked) AWS SDK client over HTTP with the AWS JSON 1.1 protocol
 * (https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html), so a client of the same service
 * in ANOTHER process (a Lambda bundle or the CLI in a child) reaches it through an endpoint:
 * `X-Amz-Target: <targetPrefix>.<Operation>` selects `<Operation>Command` of `commands` (the
 * service's SDK module), the JSON body is its input, `client.send` answers, and the output is
 * returned as JSON with timestamps as epoch seconds; a thrown error becomes HTTP 400 with
 * `{ "__type": name, "message": message }` (how the SDK reads a modeled error's type).
 */
export async function serveJsonService(options: {
  readonly targetPrefix: string;
  readonly commands: object;
  readonly client: { send(command: never): Promise<unknown> };
}): Promise<JsonServiceServer> {
  const calls: string[] = [];
  const commands = options.commands as Record<string, new (input: unknown) => unknown>;
  const prefix = `${options.targetPrefix}.`;
  const server = http.createServer(async (req, res) => {
    const target = String(req.headers['x-amz-target'] ?? '');
    const operation = target.startsWith(prefix) ? target.slice(prefix.length) : '';
    calls.push(operation || target);
    const reply = (status: number, payload: unknown) => {
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' }).end(JSON.stringify(payload));
    };
    try {
      const Command = commands[`${operation}Command`];
      if (!operation || Command === undefined) {
        reply(400, { __type: 'UnknownOperationException', message: `unknown operation ${target}` });
        return;
      }
      const text = await body(req);
      const output = await options.client.send(new Command(text === '' ? {} : JSON.parse(text)) as never);
      reply(200, toWire(output));
    } catch (error) {
      const e = error as Error;
      reply(400, { __type: e.name, message: e.message });
    }
  });
  return { ...(await listenOnLoopback(server)), calls };
}

/** The in-process fake Glue Data Catalog (test/helpers/fake-glue.ts) served over HTTP ({@link serveJsonService}). */
export function serveFakeGlue(fake: FakeGlue): Promise<JsonServiceServer> {
  return serveJsonService({ targetPrefix: 'AWSGlue', commands: glue, client: fake.client });
}

/**
 * An endpoint for AWS services the smoke test does not expect to be called (SNS, Step Functions,
 * Athena): every request is recorded and refused with HTTP 400 `UnexpectedCall`, so no request of
 * the artifact can reach real AWS and the test can assert none was made.
 */
export async function serveRefusingAws(): Promise<JsonServiceServer> {
  const calls: string[] = [];
  const server = http.createServer((req, res) => {
    calls.push(`${req.method} ${req.url} ${String(req.headers['x-amz-target'] ?? '')}`.trim());
    req.resume();
    res
      .writeHead(400, { 'content-type': 'application/x-amz-json-1.0' })
      .end(JSON.stringify({ __type: 'UnexpectedCall', message: 'the smoke test expects no call here' }));
  });
  return { ...(await listenOnLoopback(server)), calls };
}
