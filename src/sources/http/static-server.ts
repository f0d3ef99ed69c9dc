import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

/** A running {@link serveDirectory} server. */
export interface StaticServer {
  /** Base URL, e.g. `http://127.0.0.1:43211/`. */
  readonly url: string;
  readonly port: number;
  /** Requests served so far, by path (for tests). */
  readonly requests: string[];
  close(): Promise<void>;
}

/**
 * Serves the files of one directory over HTTP on 127.0.0.1, as an archive like
 * data.gharchive.org does: `GET /<name>` streams the file with its `Content-Length`; a missing
 * file is 404; only `GET` and `HEAD`; no directory listing and no path outside `dir`.
 * Used by `sluice demo` and tests so the real download path runs without the internet.
 *
 * @param options.port 0 (default) picks a free port.
 */
export async function serveDirectory(
  dir: string,
  options: { port?: number; host?: string } = {},
): Promise<StaticServer> {
  const root = path.resolve(dir);
  const requests: string[] = [];
  const server = http.createServer(async (req, res) => {
    const name = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\/+/, '');
    requests.push(`/${name}`);
    const file = path.resolve(root, name);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (name === '' || !file.startsWith(`${root}${path.sep}`)) {
      res.writeHead(404).end();
      return;
    }
    try {
      const info = await stat(file);
      if (!info.isFile()) throw new Error('not a file');
      res.writeHead(200, { 'content-length': info.size, 'content-type': 'application/octet-stream' });
      if (req.method === 'HEAD') res.end();
      else createReadStream(file).pipe(res);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}/`,
    port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
