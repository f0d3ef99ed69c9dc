import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An in-process emulator's HTTP server, listening on the loopback interface. */
export interface LoopbackServer {
  /** `http://127.0.0.1:<port>`, for an SDK client's `endpoint`. */
  readonly endpoint: string;
  /** Stops listening and closes every open connection; idempotent (later calls return the first's promise). */
  stop(): Promise<void>;
}

/**
 * Makes `server` listen on 127.0.0.1 with an ephemeral port (0) and returns its endpoint and a
 * `stop()` that also closes open connections: keep-alive sockets of SDK clients would otherwise
 * hold `close()` open until the emulator's idle timeout (dynalite: 30 s).
 *
 * @throws the server's `error` event (e.g. `EADDRINUSE`) when it cannot listen.
 */
export async function listenOnLoopback(server: Server): Promise<LoopbackServer> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let stopped: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stop() {
      stopped ??= new Promise<void>((resolve, reject) => {
        server.close((error?: Error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
      return stopped;
    },
  };
}
