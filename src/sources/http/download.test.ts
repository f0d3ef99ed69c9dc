import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../core/clock.ts';
import { SluiceError, SourceUnavailableError, UsageError } from '../../core/errors.ts';
import { type FetchOptions, fetchSourceFile, resolveSourceLocation } from './download.ts';

const FILE = '2015-01-01-0.json.gz';

interface TestServer {
  base: string;
  /** Requests received, in order (path of each). */
  requests: string[];
}

let servers: http.Server[] = [];
let tmp: string;
let sleeps: number[];
let clock: Clock;

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'sluice-download-'));
  sleeps = [];
  clock = {
    now: () => new Date(),
    sleep: async (ms) => {
      sleeps.push(ms);
    },
  };
});

afterEach(async () => {
  await Promise.all(
    servers.map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
  servers = [];
  await rm(tmp, { recursive: true, force: true });
});

/** Starts a server on 127.0.0.1; `handler` gets the 0-based index of the request. */
async function serve(
  handler: (req: http.IncomingMessage, res: http.ServerResponse, index: number) => void,
): Promise<TestServer> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    handler(req, res, requests.length - 1);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { base: `http://127.0.0.1:${port}/`, requests };
}

function sendBody(res: http.ServerResponse, body: Buffer): void {
  res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': String(body.length) });
  res.end(body);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function options(extra: Partial<FetchOptions> = {}): FetchOptions {
  return { clock, ...extra };
}

function dest(): string {
  return path.join(tmp, 'out', FILE);
}

function leftovers(): string[] {
  return [dest(), `${dest()}.part`].filter((p) => existsSync(p));
}

describe('resolveSourceLocation', () => {
  it('joins http bases with or without a trailing slash and keeps their path', () => {
    expect(resolveSourceLocation('https://data.gharchive.org', FILE)).toEqual({
      kind: 'http',
      url: 'https://data.gharchive.org/2015-01-01-0.json.gz',
    });
    expect(resolveSourceLocation('https://data.gharchive.org/', FILE)).toEqual({
      kind: 'http',
      url: 'https://data.gharchive.org/2015-01-01-0.json.gz',
    });
    expect(resolveSourceLocation('http://127.0.0.1:8080/archive/', FILE)).toEqual({
      kind: 'http',
      url: 'http://127.0.0.1:8080/archive/2015-01-01-0.json.gz',
    });
    expect(resolveSourceLocation('http://127.0.0.1:8080/archive', FILE)).toEqual({
      kind: 'http',
      url: 'http://127.0.0.1:8080/archive/2015-01-01-0.json.gz',
    });
  });

  it('resolves file:// URLs and plain (relative) directories to absolute paths', () => {
    expect(resolveSourceLocation(pathToFileURL('/data/gh').href, FILE)).toEqual({
      kind: 'file',
      path: path.join('/data/gh', FILE),
    });
    expect(resolveSourceLocation('data/gh', FILE)).toEqual({
      kind: 'file',
      path: path.resolve('data/gh', FILE),
    });
  });

  it('rejects other schemes and file names that leave the base', () => {
    expect(() => resolveSourceLocation('ftp://example.com/gh', FILE)).toThrow(UsageError);
    expect(() => resolveSourceLocation('ftp://example.com/gh', FILE)).toThrow(
      /ftp:\/\/example\.com\/gh.*http/,
    );
    expect(() => resolveSourceLocation('', FILE)).toThrow(UsageError);
    expect(() => resolveSourceLocation('https://data.gharchive.org', '../etc/passwd')).toThrow(UsageError);
    expect(() => resolveSourceLocation('https://data.gharchive.org', '')).toThrow(UsageError);
  });
});

describe('fetchSourceFile over HTTP', () => {
  it('streams a multi-MB body byte-identical with monotonic progress', async () => {
    const body = randomBytes(6 * 1024 * 1024 + 123);
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(body.length) });
      let offset = 0;
      const writeMore = () => {
        while (offset < body.length) {
          const chunk = body.subarray(offset, offset + 256 * 1024);
          offset += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', writeMore);
            return;
          }
        }
        res.end();
      };
      writeMore();
    });
    const progress: Array<[number, number | undefined]> = [];
    const result = await fetchSourceFile(
      server.base,
      FILE,
      dest(),
      options({ onProgress: (bytes, total) => progress.push([bytes, total]) }),
    );
    expect(result).toEqual({
      status: 'fetched',
      bytes: body.length,
      attempts: 1,
      location: `${server.base}${FILE}`,
    });
    expect(sha256(await readFile(dest()))).toBe(sha256(body));
    expect(existsSync(`${dest()}.part`)).toBe(false);
    expect(server.requests).toEqual([`/${FILE}`]);
    expect(progress.length).toBeGreaterThan(2);
    for (let i = 1; i < progress.length; i++) {
      expect(progress[i]![0]).toBeGreaterThanOrEqual(progress[i - 1]![0]);
    }
    expect(progress.every(([, total]) => total === body.length)).toBe(true);
    expect(progress.at(-1)).toEqual([body.length, body.length]);
    expect(sleeps).toEqual([]);
  });

  it('sends the User-Agent', async () => {
    let agent: string | undefined;
    const server = await serve((req, res) => {
      agent = req.headers['user-agent'];
      sendBody(res, Buffer.from('x'));
    });
    await fetchSourceFile(server.base, FILE, dest(), options());
    expect(agent).toBe('sluice/0.1 (+https://github.com/sluice)');
    await fetchSourceFile(server.base, FILE, dest(), options({ userAgent: 'test/1' }));
    expect(agent).toBe('test/1');
  });

  it('reports 404 and 410 as not_found and leaves no file', async () => {
    for (const status of [404, 410]) {
      const server = await serve((_req, res) => {
        res.writeHead(status);
        res.end('not here');
      });
      const result = await fetchSourceFile(server.base, FILE, dest(), options());
      expect(result).toEqual({ status: 'not_found', attempts: 1, location: `${server.base}${FILE}` });
      expect(leftovers()).toEqual([]);
      expect(server.requests).toHaveLength(1);
    }
    expect(sleeps).toEqual([]);
  });

  it('retries 500s with full-jitter backoff', async () => {
    const body = Buffer.from('hello world\n');
    const server = await serve((_req, res, index) => {
      if (index < 2) {
        res.writeHead(500);
        res.end('boom');
      } else {
        sendBody(res, body);
      }
    });
    const result = await fetchSourceFile(server.base, FILE, dest(), options());
    expect(result).toMatchObject({ status: 'fetched', bytes: body.length, attempts: 3 });
    expect(server.requests).toHaveLength(3);
    expect(sleeps).toHaveLength(2);
    expect(sleeps[0]).toBeGreaterThanOrEqual(0);
    expect(sleeps[0]).toBeLessThanOrEqual(1000);
    expect(sleeps[1]).toBeGreaterThanOrEqual(0);
    expect(sleeps[1]).toBeLessThanOrEqual(2000);
    expect(await readFile(dest())).toEqual(body);
  });

  it('computes delay = random() * min(maxDelayMs, baseDelayMs * 2^n)', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(502);
      res.end();
    });
    await expect(
      fetchSourceFile(
        server.base,
        FILE,
        dest(),
        options({ retries: 4, baseDelayMs: 100, maxDelayMs: 500, random: () => 0.5 }),
      ),
    ).rejects.toThrow(SourceUnavailableError);
    expect(sleeps).toEqual([50, 100, 200, 250]);
  });

  it('gives up on 503 forever with SourceUnavailableError after retries + 1 requests', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(503);
      res.end();
    });
    const error = await fetchSourceFile(server.base, FILE, dest(), options({ retries: 3 })).catch((e) => e);
    expect(error).toBeInstanceOf(SourceUnavailableError);
    expect(error.message).toContain(`${server.base}${FILE}`);
    expect(error.message).toContain('4 attempts');
    expect(error.message).toContain('503');
    expect(error.cause).toBeInstanceOf(Error);
    expect(error.retryable).toBe(true);
    expect(error.exitCode).toBe(4);
    expect(server.requests).toHaveLength(4);
    expect(sleeps).toHaveLength(3);
    expect(leftovers()).toEqual([]);
  });

  it('retries when the server destroys the socket mid-body', async () => {
    const body = randomBytes(512 * 1024);
    const server = await serve((_req, res, index) => {
      if (index === 0) {
        res.writeHead(200, { 'content-length': String(body.length) });
        res.write(body.subarray(0, 100_000), () => res.socket?.destroy());
      } else {
        sendBody(res, body);
      }
    });
    const progress: number[] = [];
    const result = await fetchSourceFile(
      server.base,
      FILE,
      dest(),
      options({ onProgress: (bytes) => progress.push(bytes) }),
    );
    expect(result).toMatchObject({ status: 'fetched', bytes: body.length, attempts: 2 });
    expect(sha256(await readFile(dest()))).toBe(sha256(body));
    expect(sleeps).toHaveLength(1);
    // The second attempt restarts from byte 0.
    expect(progress.filter((b) => b === 0)).toHaveLength(2);
  });

  it('retries a response that stalls mid-body after idleTimeoutMs', async () => {
    const body = randomBytes(64 * 1024);
    const server = await serve((_req, res, index) => {
      if (index === 0) {
        res.writeHead(200, { 'content-length': String(body.length) });
        res.write(body.subarray(0, 1000)); // then nothing, forever
      } else {
        sendBody(res, body);
      }
    });
    // 1 s idle timeout: long enough that a loaded machine never stalls the healthy second attempt.
    const result = await fetchSourceFile(server.base, FILE, dest(), options({ idleTimeoutMs: 1000 }));
    expect(result).toMatchObject({ status: 'fetched', bytes: body.length, attempts: 2 });
    expect(sha256(await readFile(dest()))).toBe(sha256(body));
  });

  it('retries a server that never sends headers', async () => {
    const body = Buffer.from('late but fine');
    const server = await serve((_req, res, index) => {
      if (index > 0) sendBody(res, body);
    });
    const result = await fetchSourceFile(server.base, FILE, dest(), options({ idleTimeoutMs: 1000 }));
    expect(result).toMatchObject({ status: 'fetched', attempts: 2 });
  });

  it('retries a body shorter than Content-Length', async () => {
    const body = randomBytes(10_000);
    const server = await serve((_req, res, index) => {
      if (index === 0) {
        res.writeHead(200, { 'content-length': String(body.length + 5000) });
        res.write(body, () => res.socket?.end());
      } else {
        sendBody(res, body);
      }
    });
    const result = await fetchSourceFile(server.base, FILE, dest(), options({ idleTimeoutMs: 2000 }));
    expect(result).toMatchObject({ status: 'fetched', bytes: body.length, attempts: 2 });
    expect(sha256(await readFile(dest()))).toBe(sha256(body));
  });

  it('reports truncation in the final error', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('short', () => res.socket?.end());
    });
    const error = await fetchSourceFile(server.base, FILE, dest(), options({ retries: 1 })).catch((e) => e);
    expect(error).toBeInstanceOf(SourceUnavailableError);
    expect(error.message).toContain('2 attempts');
    expect(error.message).toContain('after 5 of 100 bytes');
    expect(server.requests).toHaveLength(2);
    expect(leftovers()).toEqual([]);
  });

  it('follows redirects (relative and absolute Location)', async () => {
    const body = Buffer.from('moved content');
    const server = await serve((req, res) => {
      if (req.url === `/archive/${FILE}`) {
        res.writeHead(301, { location: `/mirror/${FILE}` });
        res.end();
      } else if (req.url === `/mirror/${FILE}`) {
        res.writeHead(307, { location: `http://${req.headers.host}/final/${FILE}` });
        res.end();
      } else if (req.url === `/final/${FILE}`) {
        sendBody(res, body);
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    const result = await fetchSourceFile(`${server.base}archive`, FILE, dest(), options());
    expect(result).toEqual({
      status: 'fetched',
      bytes: body.length,
      attempts: 1,
      location: `${server.base}archive/${FILE}`,
    });
    expect(server.requests).toEqual([`/archive/${FILE}`, `/mirror/${FILE}`, `/final/${FILE}`]);
    expect(await readFile(dest())).toEqual(body);
  });

  it('stops a redirect loop without retrying', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(302, { location: `/${FILE}` });
      res.end();
    });
    const error = await fetchSourceFile(server.base, FILE, dest(), options()).catch((e) => e);
    expect(error).toBeInstanceOf(SluiceError);
    expect(error.code).toBe('http_redirect');
    expect(server.requests).toHaveLength(6);
    expect(sleeps).toEqual([]);
  });

  it('honours Retry-After on 429', async () => {
    const server = await serve((_req, res, index) => {
      if (index === 0) {
        res.writeHead(429, { 'retry-after': '2' });
        res.end();
      } else {
        sendBody(res, Buffer.from('ok'));
      }
    });
    const result = await fetchSourceFile(server.base, FILE, dest(), options());
    expect(result).toMatchObject({ status: 'fetched', attempts: 2 });
    expect(sleeps).toEqual([2000]);
  });

  it('caps Retry-After at maxDelayMs', async () => {
    const server = await serve((_req, res, index) => {
      if (index === 0) {
        res.writeHead(429, { 'retry-after': '3600' });
        res.end();
      } else {
        sendBody(res, Buffer.from('ok'));
      }
    });
    await fetchSourceFile(server.base, FILE, dest(), options({ maxDelayMs: 5000 }));
    expect(sleeps).toEqual([5000]);
  });

  it('fails at once on 403 with a non-retryable SluiceError', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(403);
      res.end('forbidden');
    });
    const error = await fetchSourceFile(server.base, FILE, dest(), options()).catch((e) => e);
    expect(error).toBeInstanceOf(SluiceError);
    expect(error).not.toBeInstanceOf(SourceUnavailableError);
    expect(error.code).toBe('http_status');
    expect(error.retryable).toBe(false);
    expect(error.exitCode).toBe(4);
    expect(error.message).toContain('403');
    expect(error.message).toContain(`${server.base}${FILE}`);
    expect(server.requests).toHaveLength(1);
    expect(sleeps).toEqual([]);
    expect(leftovers()).toEqual([]);
  });

  it('retries connection refused', async () => {
    const server = await serve(() => {});
    const base = server.base;
    await new Promise<void>((resolve) => servers.pop()?.close(() => resolve()));
    const error = await fetchSourceFile(base, FILE, dest(), options({ retries: 2 })).catch((e) => e);
    expect(error).toBeInstanceOf(SourceUnavailableError);
    expect(error.message).toContain('ECONNREFUSED');
    expect(sleeps).toHaveLength(2);
  });

  it('aborts with the signal reason and removes the .part file', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000)); // then stall
    });
    const controller = new AbortController();
    const reason = new Error('stop now');
    const error = await fetchSourceFile(
      server.base,
      FILE,
      dest(),
      options({
        onProgress: (bytes) => {
          if (bytes > 0) controller.abort(reason);
        },
        signal: controller.signal,
      }),
    ).catch((e) => e);
    expect(error).toBe(reason);
    expect(leftovers()).toEqual([]);
    expect(sleeps).toEqual([]);
  });
});

describe('fetchSourceFile from local directories', () => {
  async function makeSource(): Promise<{ dir: string; body: Buffer }> {
    const dir = path.join(tmp, 'src');
    await mkdir(dir, { recursive: true });
    const body = randomBytes(300_000);
    await writeFile(path.join(dir, FILE), body);
    return { dir, body };
  }

  it('copies from a file:// URL with progress', async () => {
    const { dir, body } = await makeSource();
    const progress: Array<[number, number | undefined]> = [];
    const result = await fetchSourceFile(
      pathToFileURL(dir).href,
      FILE,
      dest(),
      options({ onProgress: (bytes, total) => progress.push([bytes, total]) }),
    );
    expect(result).toEqual({
      status: 'fetched',
      bytes: body.length,
      attempts: 1,
      location: path.join(dir, FILE),
    });
    expect(sha256(await readFile(dest()))).toBe(sha256(body));
    expect(existsSync(`${dest()}.part`)).toBe(false);
    expect(progress.at(-1)).toEqual([body.length, body.length]);
    expect(progress.every(([, total]) => total === body.length)).toBe(true);
  });

  it('copies from a plain (relative) directory path', async () => {
    const { dir, body } = await makeSource();
    const relative = path.relative(process.cwd(), dir);
    const result = await fetchSourceFile(relative, FILE, dest(), options());
    expect(result).toMatchObject({ status: 'fetched', bytes: body.length });
    expect(sha256(await readFile(dest()))).toBe(sha256(body));
  });

  it('reports a missing file as not_found', async () => {
    const { dir } = await makeSource();
    const result = await fetchSourceFile(dir, '2015-01-01-1.json.gz', dest(), options());
    expect(result).toEqual({
      status: 'not_found',
      attempts: 1,
      location: path.join(dir, '2015-01-01-1.json.gz'),
    });
    expect(leftovers()).toEqual([]);
  });

  it('treats a missing source directory as a usage error', async () => {
    await expect(fetchSourceFile(path.join(tmp, 'nope'), FILE, dest(), options())).rejects.toThrow(
      UsageError,
    );
  });

  it('rejects an unsupported scheme with UsageError', async () => {
    await expect(fetchSourceFile('ftp://example.com/gh/', FILE, dest(), options())).rejects.toThrow(
      UsageError,
    );
    expect(leftovers()).toEqual([]);
  });
});
