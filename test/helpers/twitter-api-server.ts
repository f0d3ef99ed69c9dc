/**
 * A local stand-in for the X (Twitter) API v2 filtered stream, speaking the same protocol over real
 * HTTP on 127.0.0.1 (ephemeral port), for tests of src/sources/twitter/filtered-stream.ts.
 *
 * - `GET /2/tweets/search/stream/rules` (optional `ids`), `POST /2/tweets/search/stream/rules` with
 *   `{ add: [{ value, tag? }] }` or `{ delete: { ids } }` and `dry_run=true`: rules live in memory with
 *   decimal-string ids; answers have X's shapes (`data`, `meta.sent`, `meta.result_count`,
 *   `meta.summary`, `errors` with `DuplicateRule` / `invalid-rules` problems).
 * - `GET /2/tweets/search/stream`: each connection plays the next scripted {@link StreamConnection}
 *   (lines, keep-alives, split chunks, a clean or abrupt close, a stall, an error status); when the
 *   script is empty a connection gets headers and then silence (a stall).
 * - Every request needs `Authorization: Bearer <token>`, else HTTP 401 with X's body
 *   (`{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}`).
 *
 * Requests are recorded without the token value. Shapes follow the X API reference pages cited in
 * filtered-stream.ts.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** A request as recorded (the bearer token is never stored). */
export interface RecordedRequest {
  readonly method: string;
  /** Path without the query, e.g. `/2/tweets/search/stream`. */
  readonly path: string;
  /** Decoded query parameters. */
  readonly query: Readonly<Record<string, string>>;
  /** Lower-cased request headers; `authorization` is reduced to its scheme plus `[redacted]`. */
  readonly headers: Readonly<Record<string, string>>;
  /** The `Authorization` header was exactly `Bearer <token>`. */
  readonly authorized: boolean;
  /** Parsed JSON body of a POST (`undefined` when none or not JSON). */
  readonly body?: unknown;
}

/** One step of a scripted stream body. */
export type StreamStep =
  /** Writes these bytes or text as one chunk (the test controls delimiters). */
  | { readonly raw: string | Uint8Array }
  /** Writes `JSON.stringify(line) + '\r\n'` as one chunk. */
  | { readonly line: unknown }
  /** Waits before the next step (lets the previous chunk reach the client on its own). */
  | { readonly pauseMs: number };

/** What one stream connection does. */
export interface StreamConnection {
  /** Never send response headers (a stall before the response). */
  readonly noHeaders?: boolean;
  /** HTTP status (default 200). Any other status answers `body` (default: X's problem body) and ends. */
  readonly status?: number;
  /** Extra response headers, e.g. `{ 'x-rate-limit-reset': '1700000600' }`. */
  readonly headers?: Readonly<Record<string, string>>;
  /** JSON body of a non-200 answer. */
  readonly body?: unknown;
  /** Body steps of a 200 answer. */
  readonly steps?: readonly StreamStep[];
  /**
   * After the steps: `close` ends the body cleanly, `destroy` resets the socket (an abrupt network
   * error), `stall` (default) keeps the connection open and silent until the client leaves.
   */
  readonly end?: 'close' | 'destroy' | 'stall';
}

/** Options of {@link startTwitterApiServer}. */
export interface TwitterApiServerOptions {
  /** The bearer token the server accepts (default {@link TEST_BEARER_TOKEN}). */
  readonly token?: string;
  /** Status of a rules `add` with an invalid rule: 400 (default) or 200 with `errors`, as X has done. */
  readonly invalidRulesStatus?: 200 | 400;
}

/** A running fake API. */
export interface TwitterApiServer {
  /** Base URL without a trailing slash, e.g. `http://127.0.0.1:43211`. */
  readonly url: string;
  /** The accepted bearer token. */
  readonly token: string;
  /** Every request, in arrival order. */
  readonly requests: RecordedRequest[];
  /** Stream connections received so far. */
  readonly streamConnections: number;
  /** Stream connections whose socket is still open. */
  readonly openStreams: number;
  /** Appends behaviours for the next stream connections, in order. */
  script(...connections: StreamConnection[]): void;
  /** Current rules (id order). */
  rules(): { id: string; value: string; tag?: string }[];
  /** Adds rules directly (no request recorded); returns them with their ids. */
  seedRules(rules: readonly { value: string; tag?: string }[]): { id: string; value: string; tag?: string }[];
  /** Resolves once no stream connection is open (the client closed or the server ended them). */
  whenStreamsClosed(): Promise<void>;
  /** Stops listening and destroys every open socket. */
  close(): Promise<void>;
}

/** Default accepted bearer token: long and distinctive, so a leak is easy to grep for. */
export const TEST_BEARER_TOKEN = 'AAAAAAAAAAAAAAAAAAAAAsluiceTestBearerToken%2Fq7Zx9Kd3LmNpQrSt';

/** X's keep-alive: an empty line. */
export const KEEP_ALIVE: StreamStep = { raw: '\r\n' };

/** The `operational-disconnect` error X sends in the stream body before closing it. */
export const OPERATIONAL_DISCONNECT = {
  errors: [
    {
      title: 'operational-disconnect',
      disconnect_type: 'UpstreamOperationalDisconnect',
      detail: 'This stream has been disconnected upstream for operational reasons.',
      type: 'https://api.twitter.com/2/problems/operational-disconnect',
    },
  ],
};

/** A JSON line (with `\r\n`) sent in two chunks cut after `at` bytes, with a pause between them. */
export function splitLine(value: unknown, at: number): StreamStep[] {
  const bytes = Buffer.from(`${JSON.stringify(value)}\r\n`, 'utf8');
  return [{ raw: bytes.subarray(0, at) }, { pauseMs: 15 }, { raw: bytes.subarray(at) }];
}

/** A JSON line cut inside its first multi-byte UTF-8 character (throws when it has none). */
export function splitInsideMultibyte(value: unknown): StreamStep[] {
  const bytes = Buffer.from(`${JSON.stringify(value)}\r\n`, 'utf8');
  const lead = bytes.findIndex((b) => b >= 0xc0);
  if (lead < 0) throw new Error('the line has no multi-byte character');
  return splitLine(value, lead + 1);
}

/** A JSON line cut between its `\r` and `\n`. */
export function splitInsideDelimiter(value: unknown): StreamStep[] {
  const bytes = Buffer.from(`${JSON.stringify(value)}\r\n`, 'utf8');
  return splitLine(value, bytes.length - 1);
}

const PROBLEM_BODIES: Record<number, unknown> = {
  401: { title: 'Unauthorized', type: 'about:blank', status: 401, detail: 'Unauthorized' },
  403: {
    title: 'Client Forbidden',
    detail:
      'When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a Twitter developer App that is attached to a Project.',
    reason: 'client-not-enrolled',
    type: 'https://api.twitter.com/2/problems/client-forbidden',
  },
  429: {
    title: 'ConnectionException',
    detail: 'This stream is currently at the maximum allowed connection limit.',
    connection_issue: 'TooManyConnections',
    type: 'https://api.twitter.com/2/problems/streaming-connection',
  },
  503: { title: 'Service Unavailable', type: 'about:blank', status: 503, detail: 'Service Unavailable' },
};

/**
 * Starts the fake API on 127.0.0.1 and an ephemeral port.
 */
export async function startTwitterApiServer(
  options: TwitterApiServerOptions = {},
): Promise<TwitterApiServer> {
  const token = options.token ?? TEST_BEARER_TOKEN;
  const requests: RecordedRequest[] = [];
  const queue: StreamConnection[] = [];
  const rules = new Map<string, { id: string; value: string; tag?: string }>();
  const sockets = new Set<Socket>();
  let nextId = 1_600_000_000_000_000_000n;
  let streamConnections = 0;
  let openStreams = 0;
  let closedWaiters: (() => void)[] = [];

  const newRule = (value: string, tag: string | undefined) => {
    nextId += 1n;
    return tag === undefined || tag === ''
      ? { id: String(nextId), value }
      : { id: String(nextId), value, tag };
  };

  const streamClosed = () => {
    openStreams--;
    if (openStreams === 0) {
      const waiters = closedWaiters;
      closedWaiters = [];
      for (const resolve of waiters) resolve();
    }
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = text === '' ? undefined : JSON.parse(text);
      } catch {
        body = undefined;
      }
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (value === undefined) continue;
        headers[name] = Array.isArray(value) ? value.join(', ') : value;
      }
      const auth = headers.authorization;
      const authorized = auth === `Bearer ${token}`;
      if (auth !== undefined) headers.authorization = `${auth.split(' ')[0] ?? ''} [redacted]`;
      requests.push({
        method: req.method ?? '',
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers,
        authorized,
        ...(body === undefined ? {} : { body }),
      });
      if (!authorized) {
        json(res, 401, PROBLEM_BODIES[401]);
        return;
      }
      if (url.pathname === '/2/tweets/search/stream/rules') {
        handleRules(req.method ?? '', url, body, res);
      } else if (url.pathname === '/2/tweets/search/stream' && req.method === 'GET') {
        streamConnections++;
        openStreams++;
        res.once('close', streamClosed);
        void serveStream(res, queue.shift() ?? {});
      } else {
        json(res, 404, { title: 'Not Found Error', type: 'about:blank', status: 404, detail: 'Not Found' });
      }
    });
  });

  function handleRules(method: string, url: URL, body: unknown, res: http.ServerResponse): void {
    const sent = new Date().toISOString();
    if (method === 'GET') {
      const ids = url.searchParams.get('ids')?.split(',');
      const data = [...rules.values()].filter((r) => ids === undefined || ids.includes(r.id));
      json(res, 200, {
        ...(data.length > 0 ? { data } : {}),
        meta: { sent, result_count: data.length },
      });
      return;
    }
    if (method !== 'POST' || typeof body !== 'object' || body === null) {
      json(res, 400, {
        title: 'Invalid Request',
        detail: 'One or more parameters to your request was invalid.',
        type: 'https://api.twitter.com/2/problems/invalid-request',
        errors: [{ message: 'Request body must be a JSON object with add or delete' }],
      });
      return;
    }
    const dryRun = url.searchParams.get('dry_run') === 'true';
    const request = body as { add?: { value?: unknown; tag?: unknown }[]; delete?: { ids?: unknown[] } };
    if (Array.isArray(request.add)) {
      const errors: Record<string, unknown>[] = [];
      const invalid: Record<string, unknown>[] = [];
      const created: { id: string; value: string; tag?: string }[] = [];
      const seen = new Map([...rules.values()].map((r) => [r.value, r.id]));
      for (const rule of request.add) {
        const value = typeof rule.value === 'string' ? rule.value : '';
        const problem = ruleProblem(value);
        if (problem !== undefined) {
          invalid.push({
            value,
            details: [problem],
            title: 'UnprocessableEntity',
            type: 'https://api.twitter.com/2/problems/invalid-rules',
          });
          continue;
        }
        const existing = seen.get(value);
        if (existing !== undefined) {
          errors.push({
            value,
            id: existing,
            title: 'DuplicateRule',
            type: 'https://api.twitter.com/2/problems/duplicate-rules',
          });
          continue;
        }
        const made = newRule(value, typeof rule.tag === 'string' ? rule.tag : undefined);
        seen.set(value, made.id);
        created.push(made);
      }
      if (invalid.length > 0) {
        // X validates the whole request: nothing is created when a rule is invalid.
        json(res, options.invalidRulesStatus ?? 400, {
          errors: [...invalid, ...errors],
          meta: {
            sent,
            summary: {
              created: 0,
              not_created: request.add.length,
              valid: request.add.length - invalid.length,
              invalid: invalid.length,
            },
          },
        });
        return;
      }
      if (!dryRun) for (const rule of created) rules.set(rule.id, rule);
      json(res, 200, {
        ...(created.length > 0 ? { data: created } : {}),
        ...(errors.length > 0 ? { errors } : {}),
        meta: {
          sent,
          summary: {
            created: created.length,
            not_created: request.add.length - created.length,
            valid: created.length,
            invalid: 0,
          },
        },
      });
      return;
    }
    if (request.delete !== undefined && Array.isArray(request.delete.ids)) {
      let deleted = 0;
      for (const id of request.delete.ids) {
        if (typeof id === 'string' && rules.has(id)) {
          deleted++;
          if (!dryRun) rules.delete(id);
        }
      }
      json(res, 200, {
        meta: { sent, summary: { deleted, not_deleted: request.delete.ids.length - deleted } },
      });
      return;
    }
    json(res, 400, {
      title: 'Invalid Request',
      detail: 'One or more parameters to your request was invalid.',
      type: 'https://api.twitter.com/2/problems/invalid-request',
      errors: [{ message: 'Either add or delete must be present' }],
    });
  }

  async function serveStream(res: http.ServerResponse, connection: StreamConnection): Promise<void> {
    if (connection.noHeaders) return;
    const status = connection.status ?? 200;
    if (status !== 200) {
      json(
        res,
        status,
        connection.body ?? PROBLEM_BODIES[status] ?? { title: `HTTP ${status}` },
        connection.headers,
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', ...connection.headers });
    res.flushHeaders();
    for (const step of connection.steps ?? []) {
      if (res.destroyed || res.writableEnded) return;
      if ('pauseMs' in step) {
        await new Promise((resolve) => setTimeout(resolve, step.pauseMs));
        continue;
      }
      const chunk = 'raw' in step ? step.raw : `${JSON.stringify(step.line)}\r\n`;
      await new Promise<void>((resolve) => res.write(chunk, () => resolve()));
    }
    if (res.destroyed) return;
    if (connection.end === 'close') res.end();
    else if (connection.end === 'destroy') res.socket?.destroy();
  }

  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    token,
    requests,
    get streamConnections() {
      return streamConnections;
    },
    get openStreams() {
      return openStreams;
    },
    script: (...connections) => {
      queue.push(...connections);
    },
    rules: () => [...rules.values()],
    seedRules: (seed) =>
      seed.map((r) => {
        const rule = newRule(r.value, r.tag);
        rules.set(rule.id, rule);
        return rule;
      }),
    whenStreamsClosed: () =>
      openStreams === 0 ? Promise.resolve() : new Promise<void>((resolve) => closedWaiters.push(resolve)),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Why X would reject a rule value (a small subset of its syntax checks), or undefined. */
function ruleProblem(value: string): string | undefined {
  if (value.trim() === '') return 'Rule must not be empty';
  if (value.length > 512) return 'Rule is longer than 512 characters';
  if (/(^|\s)[a-z_]+:(\s|$)/.test(value)) return 'Operator is missing its value';
  let depth = 0;
  for (const char of value) {
    if (char === '(') depth++;
    if (char === ')' && --depth < 0) return 'Unbalanced parentheses';
  }
  return depth === 0 ? undefined : 'Unbalanced parentheses';
}

function json(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
}
