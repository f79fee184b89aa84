/**
 * The agent's local API: HTTP/1.1 over a Unix socket in the state folder, mode 0600 (root-only
 * when the agent runs as root). Used by `sekimori-agent status`, the PAM module and scripts.
 */
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { ConsoleReply, LocalApi, LocalHandler } from './capability.js';

const MAX_BODY = 16 * 1024;

export class LocalApiServer implements LocalApi {
  private readonly routes = new Map<string, LocalHandler>();
  private server: Server | null = null;

  constructor(readonly socketPath: string) {}

  route(method: 'GET' | 'POST', path: string, handler: LocalHandler): void {
    this.routes.set(`${method} ${path}`, handler);
  }

  async start(): Promise<void> {
    if (existsSync(this.socketPath)) unlinkSync(this.socketPath); // stale socket from a killed agent
    this.server = createServer((req, res) => {
      const reply = (r: ConsoleReply) => {
        const body = JSON.stringify(r.body);
        res.writeHead(r.status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
        res.end(body);
      };
      const handler = this.routes.get(`${req.method} ${(req.url ?? '').split('?')[0]}`);
      if (!handler) return reply({ status: 404, body: { error: 'not_found' } });
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) {
          reply({ status: 413, body: { error: 'body_too_large' } });
          req.destroy();
        } else chunks.push(c);
      });
      req.on('end', () => {
        if (size > MAX_BODY) return;
        let body: unknown = null;
        if (chunks.length) {
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            return reply({ status: 400, body: { error: 'malformed_json' } });
          }
        }
        Promise.resolve()
          .then(() => handler({ body, peer: { pid: null, uid: null } }))
          .then(reply, (e: Error) => reply({ status: 500, body: { error: 'internal', message: e.message } }));
      });
    });
    this.server.requestTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      // umask-independent: restrict right after bind, before any request is accepted.
      this.server!.listen(this.socketPath, () => {
        chmodSync(this.socketPath, 0o600);
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }
}

/** Client side: one request to an agent's socket. */
export function localRequest(socketPath: string, method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = 5000): Promise<ConsoleReply> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath, method, path, timeout: timeoutMs, headers: payload ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null });
          } catch {
            resolve({ status: res.statusCode ?? 0, body: text });
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(payload);
  });
}
