import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Alert, formatAlert } from '../../core/alert.ts';
import type { Clock } from '../../core/clock.ts';
import { UsageError } from '../../core/errors.ts';
import { LocalNotifier, readAlerts } from './local-notifier.ts';

const ALERT: Alert = {
  severity: 'error',
  title: 'Workflow gharchive-hourly failed',
  pipeline: 'gharchive',
  workflow: 'gharchive-hourly',
  executionId: 'exec-42',
  state: 'Transform',
  error: 'SourceUnavailableError',
  cause: 'data.gharchive.org answered 503 six times',
  at: '2024-05-01T10:00:00.000Z',
  details: { recover: 'sluice run gharchive --from 2015-01-01T00', units: 2 },
};

/** A received webhook request. */
interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** Answers request `n` (0-based); returning without ending the response leaves it hanging. */
type Responder = (n: number, res: ServerResponse) => void;

describe('LocalNotifier', () => {
  let dir: string;
  let server: Server;
  let port: number;
  let received: Received[];
  let respond: Responder;
  let sleeps: number[];
  let clock: Clock;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-local-notifier-'));
    received = [];
    sleeps = [];
    clock = {
      now: () => new Date(),
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    };
    respond = (_n, res) => res.writeHead(200).end('ok');
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const n = received.length;
        received.push({
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        });
        respond(n, res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterEach(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve, reject) =>
      server.close((error) => (error ? reject(error) : resolve())),
    );
    await rm(dir, { recursive: true, force: true });
  });

  /** A webhook-only notifier on the test server with a secret-bearing URL. */
  function webhookNotifier(options: { retries?: number; timeoutMs?: number } = {}): LocalNotifier {
    return new LocalNotifier({
      webhookUrl: `http://127.0.0.1:${port}/hooks/SECRET-TOKEN?key=abc`,
      console: false,
      clock,
      random: () => 0.5,
      ...options,
    });
  }

  describe('webhook', () => {
    it('POSTs the exact JSON with the alert and its text', async () => {
      const result = await webhookNotifier().notify(ALERT);
      expect(result).toEqual({ delivered: ['webhook'], failed: [] });
      expect(received).toHaveLength(1);
      const [request] = received;
      expect(request!.method).toBe('POST');
      expect(request!.url).toBe('/hooks/SECRET-TOKEN?key=abc');
      expect(request!.headers['content-type']).toBe('application/json');
      expect(JSON.parse(request!.body)).toStrictEqual({ alert: ALERT, text: formatAlert(ALERT) });
      expect(request!.body).toBe(JSON.stringify({ alert: ALERT, text: formatAlert(ALERT) }));
      expect(sleeps).toEqual([]);
    });

    it('retries 503 with full-jitter backoff on the clock and then delivers', async () => {
      respond = (n, res) => (n < 2 ? res.writeHead(503).end('busy') : res.writeHead(200).end('ok'));
      const result = await webhookNotifier().notify(ALERT);
      expect(result).toEqual({ delivered: ['webhook'], failed: [] });
      expect(received).toHaveLength(3);
      // random() = 0.5 of the caps 500 ms and 1,000 ms.
      expect(sleeps).toEqual([250, 500]);
    });

    it('fails after the retries on 500 without revealing the path, query or credentials', async () => {
      respond = (_n, res) => res.writeHead(500).end('error at /hooks/SECRET-TOKEN?key=abc');
      const result = await webhookNotifier().notify(ALERT);
      expect(received).toHaveLength(4);
      expect(sleeps).toEqual([250, 500, 1000]);
      expect(result.delivered).toEqual([]);
      expect(result.failed).toHaveLength(1);
      const [failure] = result.failed;
      expect(failure!.channel).toBe('webhook');
      expect(failure!.error).toContain(`http://127.0.0.1:${port}`);
      expect(failure!.error).toContain('4 attempts');
      expect(failure!.error).toContain('HTTP 500');
      expect(failure!.error).not.toContain('SECRET-TOKEN');
      expect(failure!.error).not.toContain('abc');
      expect(failure!.error).not.toContain('/hooks');
    });

    it('sends user:password as Basic authentication and never shows them', async () => {
      respond = (_n, res) => res.writeHead(502).end();
      const notifier = new LocalNotifier({
        webhookUrl: `http://hookuser:hook-pass-word@127.0.0.1:${port}/x`,
        console: false,
        clock,
        retries: 0,
      });
      const result = await notifier.notify(ALERT);
      expect(received[0]!.headers.authorization).toBe(
        `Basic ${Buffer.from('hookuser:hook-pass-word').toString('base64')}`,
      );
      expect(result.failed[0]!.error).not.toContain('hook-pass-word');
      expect(result.failed[0]!.error).not.toContain('hookuser');
    });

    it('does not retry a 400', async () => {
      respond = (_n, res) => res.writeHead(400).end('invalid_payload');
      const result = await webhookNotifier().notify(ALERT);
      expect(received).toHaveLength(1);
      expect(sleeps).toEqual([]);
      expect(result.delivered).toEqual([]);
      expect(result.failed).toEqual([{ channel: 'webhook', error: expect.stringContaining('HTTP 400') }]);
      expect(result.failed[0]!.error).toContain('invalid_payload');
    });

    it('retries 429', async () => {
      respond = (n, res) => (n === 0 ? res.writeHead(429).end() : res.writeHead(204).end());
      const result = await webhookNotifier().notify(ALERT);
      expect(result.delivered).toEqual(['webhook']);
      expect(received).toHaveLength(2);
      expect(sleeps).toEqual([250]);
    });

    it('counts a timeout as a failure and retries it', async () => {
      respond = (n, res) => {
        if (n > 0) res.writeHead(200).end('ok');
        // The first request never gets an answer.
      };
      const result = await webhookNotifier({ timeoutMs: 100 }).notify(ALERT);
      expect(result).toEqual({ delivered: ['webhook'], failed: [] });
      expect(received).toHaveLength(2);
      expect(sleeps).toEqual([250]);
    });

    it('fails when every attempt times out', async () => {
      respond = () => {};
      const result = await webhookNotifier({ timeoutMs: 100, retries: 1 }).notify(ALERT);
      expect(received).toHaveLength(2);
      expect(result.failed).toEqual([
        { channel: 'webhook', error: expect.stringContaining('no response within 100 ms') },
      ]);
      expect(result.failed[0]!.error).not.toContain('SECRET-TOKEN');
    });

    it('retries network errors and reports them by origin only', async () => {
      const closed = await new Promise<number>((resolve) => {
        const probe = createServer();
        probe.listen(0, '127.0.0.1', () => {
          const { port: free } = probe.address() as AddressInfo;
          probe.close(() => resolve(free));
        });
      });
      const notifier = new LocalNotifier({
        webhookUrl: `http://127.0.0.1:${closed}/hooks/SECRET-TOKEN?key=abc`,
        console: false,
        clock,
        retries: 2,
      });
      const result = await notifier.notify(ALERT);
      expect(sleeps).toHaveLength(2);
      expect(result.failed).toHaveLength(1);
      expect(result.failed[0]!.error).toContain(`http://127.0.0.1:${closed}`);
      expect(result.failed[0]!.error).toContain('3 attempts');
      expect(result.failed[0]!.error).not.toContain('SECRET-TOKEN');
      expect(result.failed[0]!.error).not.toContain('abc');
    });

    it('refuses a malformed or non-http URL without repeating it', () => {
      expect(() => new LocalNotifier({ webhookUrl: 'not a url SECRET' })).toThrow(UsageError);
      expect(() => new LocalNotifier({ webhookUrl: 'not a url SECRET' })).not.toThrow(/SECRET/);
      expect(() => new LocalNotifier({ webhookUrl: 'ftp://host/SECRET' })).toThrow(/http/);
      expect(() => new LocalNotifier({ webhookUrl: 'ftp://host/SECRET' })).not.toThrow(/SECRET/);
      expect(() => new LocalNotifier({ retries: -1 })).toThrow(UsageError);
      expect(() => new LocalNotifier({ timeoutMs: 0 })).toThrow(UsageError);
    });
  });

  describe('file', () => {
    it('appends one JSON line per alert, creating the directory; readAlerts reads them back', async () => {
      const file = join(dir, 'home', 'nested', 'alerts.ndjson');
      const notifier = new LocalNotifier({ file, console: false });
      const second: Alert = {
        severity: 'info',
        title: 'second',
        pipeline: 'p',
        at: '2024-05-01T11:00:00.000Z',
      };
      expect(await notifier.notify(ALERT)).toEqual({ delivered: ['file'], failed: [] });
      expect(await notifier.notify(second)).toEqual({ delivered: ['file'], failed: [] });
      expect(await readFile(file, 'utf8')).toBe(`${JSON.stringify(ALERT)}\n${JSON.stringify(second)}\n`);
      const alerts = await readAlerts(file);
      expect(alerts).toEqual([ALERT, second]);
      expect(alerts.malformed).toBe(0);
      expect(await readAlerts(file, { limit: 1 })).toEqual([second]);
      expect(await readAlerts(file, { limit: 0 })).toEqual([]);
    });

    it('keeps 20 concurrent alerts as 20 intact lines', async () => {
      const file = join(dir, 'alerts.ndjson');
      const notifiers = [
        new LocalNotifier({ file, console: false }),
        new LocalNotifier({ file, console: false }),
      ];
      const alerts: Alert[] = Array.from({ length: 20 }, (_, i) => ({
        ...ALERT,
        title: `alert ${i}`,
        details: { padding: String(i % 10).repeat(64 * 1024) },
      }));
      const results = await Promise.all(alerts.map((alert, i) => notifiers[i % 2]!.notify(alert)));
      for (const result of results) expect(result).toEqual({ delivered: ['file'], failed: [] });
      const lines = (await readFile(file, 'utf8')).split('\n');
      expect(lines.pop()).toBe('');
      expect(lines).toHaveLength(20);
      const read = await readAlerts(file);
      expect(read.malformed).toBe(0);
      expect(read.map((a) => a.title).sort()).toEqual(alerts.map((a) => a.title).sort());
      for (const alert of read) expect(alerts).toContainEqual(alert);
    });

    it('readAlerts skips and counts malformed lines; a missing file is empty', async () => {
      const file = join(dir, 'alerts.ndjson');
      expect(await readAlerts(file)).toEqual([]);
      await mkdir(dir, { recursive: true });
      await writeFile(
        file,
        [
          JSON.stringify(ALERT),
          'not json',
          '',
          JSON.stringify({ severity: 'fatal', title: 't', pipeline: 'p', at: 'x' }),
          JSON.stringify([1, 2]),
          JSON.stringify({ ...ALERT, title: 'last' }),
          '{"severity":"error","title":"cut sho',
        ].join('\n'),
      );
      const alerts = await readAlerts(file);
      expect(alerts.map((a) => a.title)).toEqual([ALERT.title, 'last']);
      expect(alerts.malformed).toBe(4);
      await appendFile(file, '\n');
      expect((await readAlerts(file, { limit: 1 })).map((a) => a.title)).toEqual(['last']);
      await expect(readAlerts(file, { limit: -1 })).rejects.toThrow(UsageError);
    });

    it('reports an unwritable file as a failed channel without rejecting', async () => {
      const blocker = join(dir, 'blocker');
      await writeFile(blocker, 'a file, not a directory');
      const output = new PassThrough();
      const notifier = new LocalNotifier({ file: join(blocker, 'alerts.ndjson'), console: output });
      const result = await notifier.notify(ALERT);
      expect(result.delivered).toEqual(['console']);
      expect(result.failed).toEqual([{ channel: 'file', error: expect.stringMatching(/ENOTDIR|EEXIST/) }]);
    });
  });

  describe('console', () => {
    it('writes the formatted alert with its title and cause', async () => {
      const output = new PassThrough();
      let text = '';
      output.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
      });
      const result = await new LocalNotifier({ console: output }).notify(ALERT);
      expect(result).toEqual({ delivered: ['console'], failed: [] });
      expect(text).toBe(`${formatAlert(ALERT)}\n`);
      expect(text).toContain(ALERT.title);
      expect(text).toContain(ALERT.cause);
    });

    it('reports a failing stream as a failed channel', async () => {
      const broken = new Writable({
        write(_chunk, _encoding, callback) {
          callback(new Error('stream is broken'));
        },
      });
      broken.on('error', () => {});
      const result = await new LocalNotifier({ console: broken }).notify(ALERT);
      expect(result).toEqual({ delivered: [], failed: [{ channel: 'console', error: 'stream is broken' }] });
    });

    it('runs every channel and reports each', async () => {
      respond = (_n, res) => res.writeHead(404).end();
      const output = new PassThrough();
      const file = join(dir, 'alerts.ndjson');
      const notifier = new LocalNotifier({
        console: output,
        file,
        webhookUrl: `http://127.0.0.1:${port}/hooks/SECRET-TOKEN`,
        clock,
      });
      expect(notifier.channels).toEqual(['console', 'file', 'webhook']);
      const result = await notifier.notify(ALERT);
      expect(result.delivered).toEqual(['console', 'file']);
      expect(result.failed).toEqual([{ channel: 'webhook', error: expect.stringContaining('HTTP 404') }]);
      expect(await readAlerts(file)).toEqual([ALERT]);
    });
  });
});
