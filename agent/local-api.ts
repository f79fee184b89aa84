/**
 * The agent's local API: HTTP/1.1 over Unix sockets (a named pipe on Windows), JSON bodies.
 * - STATE/agent.sock, mode 0600 (root-only when the agent runs as root): `sekimori-agent status`,
 *   the PAM module at login, scripts. Requests carry no peer (only root can connect).
 * - The unlock socket ($SEKIMORI_UNLOCK_SOCKET, the unit sets /run/sekimori-agent/unlock.sock;
 *   else STATE/unlock.sock), mode 0666 in a root-owned folder others cannot write: screen lockers
 *   run as the locked user and must reach the agent without the state folder being loosened.
 *   Only `userRoute`s are served there, and each request carries the kernel's SO_PEERCRED of the
 *   caller (uid, pid) and the account name getpwuid gives for that uid. Node has no SO_PEERCRED,
 *   so a tiny C helper (installers/linux/pam/sekimori-peercred.c) is run with the connection as
 *   its stdin and prints what the kernel recorded at connect().
 * - Windows: the user routes are served on \\.\pipe\sekimori-user by sekimori-pipebroker.exe
 *   (agent/local/windows/), which names each caller from its token; no broker, no pipe (fail closed).
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConsoleReply, LocalApi, LocalHandler, LocalPeer, LogLevel } from './capability.js';
import { isNamedPipe } from './os.js';
import { UserPipeBroker } from './local/windows/user-pipe-broker.js';
import { userPipeName } from './local/windows/user-pipe.js';

// Not `import … from 'node:http'`: the ESM facade of node:http reads every export, and its lazy
// WebSocket/MessageEvent getters load Node's whole fetch stack (undici) — ≈12 MB of an idle agent.
const { createServer, request } = process.getBuiltinModule('node:http');

const MAX_BODY = 16 * 1024;
/** Peer look-ups (one short-lived helper process each) running at once on the unlock socket. */
const MAX_PEER_LOOKUPS = 8;
const PEER_LOOKUP_TIMEOUT_MS = 3_000;
/** Open connections on the unlock socket: anyone on the machine can connect there. */
const MAX_UNLOCK_CONNECTIONS = 32;

export const UNLOCK_SOCKET_ENV = 'SEKIMORI_UNLOCK_SOCKET';

/** Where the unlock socket of the agent whose root socket is `socketPath` lives. */
export function unlockSocketPath(socketPath: string, env: NodeJS.ProcessEnv = process.env): string {
  // Windows: the broker's user pipe beside the agent's own (agent/local/windows/user-pipe.ts).
  if (isNamedPipe(socketPath)) return userPipeName(socketPath);
  const fromEnv = env[UNLOCK_SOCKET_ENV];
  return fromEnv && isAbsolute(fromEnv) ? fromEnv : join(dirname(socketPath), 'unlock.sock');
}

/**
 * Makes (0755) or checks the folder of the unlock socket: it must be root's (or the agent's own
 * user's) and closed to writes by others, or someone else could replace the socket or plant a
 * break-glass marker there. Returns the problem, or null when the folder is fit.
 */
export function prepareUnlockDir(dir: string): string | null {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const st = lstatSync(dir);
    const me = typeof process.geteuid === 'function' ? process.geteuid() : 0;
    if (!st.isDirectory()) return `${dir}: not a directory`;
    if (st.uid !== 0 && st.uid !== me) return `${dir}: owned by uid ${st.uid}, not root`;
    if ((st.mode & 0o022) !== 0) return `${dir}: writable by group or others`;
    return null;
  } catch (e) {
    return `${dir}: ${(e as Error).message}`;
  }
}

/** The helper as installed by the .deb, else as built in this tree (dist/pam/). */
export function peercredHelperCandidates(): string[] {
  return ['/usr/lib/sekimori/sekimori-peercred', fileURLToPath(new URL('../pam/sekimori-peercred', import.meta.url))];
}

/**
 * The first candidate that exists and that only root (or the agent's own user) can change — the
 * agent runs it as root. Returns the path, or the problem.
 */
export function findPeercredHelper(candidates = peercredHelperCandidates()): { path: string } | { problem: string } {
  const me = typeof process.geteuid === 'function' ? process.geteuid() : 0;
  for (const c of candidates) {
    if (!existsSync(c)) continue;
    const st = statSync(c);
    if (!st.isFile() || (st.uid !== 0 && st.uid !== me) || (st.mode & 0o022) !== 0 || (st.mode & 0o100) === 0) {
      return { problem: `${c}: must be an executable file owned by root and not writable by others` };
    }
    return { path: c };
  }
  return { problem: `sekimori-peercred not found (${candidates.join(', ')})` };
}

const PEER_LINE = /^(\d{1,10}) (\d{1,10}) (\d{1,10}) ([A-Za-z0-9._@-]{1,64}|-)\n$/;

/** Parses the helper's one line; anything else is no answer. */
export function parsePeerLine(text: string): LocalPeer | null {
  const m = PEER_LINE.exec(text);
  if (!m) return null;
  const [uid, pid] = [Number(m[1]), Number(m[2])];
  if (!Number.isSafeInteger(uid) || uid > 0xffff_fffe || !Number.isSafeInteger(pid) || pid <= 0) return null;
  return { uid, pid, user: m[4] === '-' ? null : m[4]! };
}

/**
 * Runs the helper with the connection as its stdin. Only called once the request body has been
 * read: handing a socket to a child makes Node stop reading it, which is fine for a request that
 * is complete and answered with Connection: close.
 */
function lookupPeer(helper: string, sock: Socket): Promise<LocalPeer | null> {
  return new Promise((resolve) => {
    let out = '';
    let done = false;
    const finish = (p: LocalPeer | null) => {
      if (!done) {
        done = true;
        resolve(p);
      }
    };
    try {
      const child = spawn(helper, [], { stdio: [sock, 'pipe', 'ignore'], env: {}, timeout: PEER_LOOKUP_TIMEOUT_MS, killSignal: 'SIGKILL' });
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (d: string) => {
        if (out.length < 256) out += d;
      });
      child.on('error', () => finish(null));
      child.on('close', (code) => finish(code === 0 ? parsePeerLine(out) : null));
    } catch {
      finish(null);
    }
  });
}

type Log = (level: LogLevel, message: string) => void;
type Method = 'GET' | 'POST';

export class LocalApiServer implements LocalApi {
  private readonly routes = new Map<string, LocalHandler>();
  private readonly userRoutes = new Map<string, LocalHandler>();
  private server: Server | null = null;
  private unlockServer: Server | null = null;
  private broker: UserPipeBroker | null = null;
  /** Windows: told once per outage of the user pipe's broker, and when it serves again. */
  onUserPipe: ((state: 'down' | 'up', detail: string) => void) | null = null;
  private peerLookups = 0;
  readonly unlockSocketPath: string;

  constructor(
    readonly socketPath: string,
    private readonly log: Log = (level, m) => process.stderr.write(`[local-api] ${new Date().toISOString()} ${level} ${m}\n`),
  ) {
    this.unlockSocketPath = unlockSocketPath(socketPath);
  }

  route(method: Method, path: string, handler: LocalHandler): void {
    this.routes.set(`${method} ${path}`, handler);
  }

  userRoute(method: Method, path: string, handler: LocalHandler): void {
    this.userRoutes.set(`${method} ${path}`, handler);
  }

  async start(): Promise<void> {
    this.server = await listen(this.socketPath, 0o600, this.handle(this.routes, null));
    if (this.userRoutes.size === 0) return;
    if (isNamedPipe(this.socketPath)) return this.startBroker();
    // The unlock socket never stops the agent from starting: without it, lockers find no socket
    // (ENOENT) and fail closed unless policy chose break-glass — as with the agent stopped.
    const problem = prepareUnlockDir(dirname(this.unlockSocketPath));
    if (problem) {
      this.log('error', `unlock socket not started: ${problem}`);
      return;
    }
    const helper = findPeercredHelper();
    // Without the helper nobody can be identified: the socket still answers, with refusals.
    if ('problem' in helper) this.log('error', `unlock socket refuses every request: ${helper.problem}`);
    try {
      this.unlockServer = await listen(this.unlockSocketPath, 0o666, this.handle(this.userRoutes, 'path' in helper ? helper.path : ''));
      this.unlockServer.maxConnections = MAX_UNLOCK_CONNECTIONS;
      this.unlockServer.headersTimeout = 5_000;
      this.unlockServer.requestTimeout = 5_000;
    } catch (e) {
      this.log('error', `unlock socket not started: ${(e as Error).message}`);
    }
  }

  /**
   * Windows: user routes are served through sekimori-pipebroker.exe, which names each caller
   * from its token (Node's pipes give no peer). The peer is the broker's, never the client's.
   */
  private startBroker(): void {
    this.broker = new UserPipeBroker({
      pipe: this.unlockSocketPath,
      log: this.log,
      onDown: (d) => this.onUserPipe?.('down', `exit ${d.code ?? '-'}${d.message ? `: ${d.message}` : ''}`),
      onUp: (d) => this.onUserPipe?.('up', `pid ${d.pid}`),
      handle: async (req, peer) => {
        const handler = this.userRoutes.get(`${req.method} ${req.path}`);
        if (!handler) return { status: 404, body: { error: 'not_found' } };
        return handler({ body: req.body, peer });
      },
    });
    this.broker.start();
  }

  /** helper: null on the root socket (no peer look-up), '' when the helper is missing. */
  private handle(routes: Map<string, LocalHandler>, helper: string | null) {
    return (req: IncomingMessage, res: ServerResponse) => {
      const reply = (r: ConsoleReply) => {
        const body = JSON.stringify(r.body);
        const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
        if (helper !== null) headers.connection = 'close'; // one request per connection there
        res.writeHead(r.status, headers);
        res.end(body);
      };
      const handler = routes.get(`${req.method} ${(req.url ?? '').split('?')[0]}`);
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
        const run = (peer: LocalPeer) =>
          Promise.resolve()
            .then(() => handler({ body, peer }))
            .then(reply, (e: Error) => reply({ status: 500, body: { error: 'internal', message: e.message } }));
        if (helper === null) return void run({ pid: null, uid: null });
        if (helper === '') return reply({ status: 503, body: { error: 'peer_unknown' } });
        if (this.peerLookups >= MAX_PEER_LOOKUPS) return reply({ status: 503, body: { error: 'busy' } });
        this.peerLookups++;
        void lookupPeer(helper, req.socket)
          .finally(() => this.peerLookups--)
          .then((peer) => (peer ? run(peer) : reply({ status: 403, body: { error: 'peer_unknown' } })));
      });
    };
  }

  async stop(): Promise<void> {
    await Promise.all([close(this.server), close(this.unlockServer), this.broker?.stop()]);
    this.broker = null;
    this.server = this.unlockServer = null;
  }
}

async function listen(path: string, mode: number, onRequest: (req: IncomingMessage, res: ServerResponse) => void): Promise<Server> {
  // A Windows named pipe vanishes with its server and has no file mode: its default DACL (SYSTEM
  // and Administrators only may write) is the access control there (see agent/platform.ts).
  const pipe = isNamedPipe(path);
  if (!pipe && existsSync(path)) unlinkSync(path); // stale socket from a killed agent
  const server = createServer(onRequest);
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // umask-independent: set the mode right after bind, before any request is accepted.
    server.listen(path, () => {
      try {
        if (!pipe) chmodSync(path, mode);
        resolve();
      } catch (e) {
        server.close();
        reject(e as Error);
      }
    });
  });
  return server;
}

function close(s: Server | null): Promise<void> {
  if (!s) return Promise.resolve();
  return new Promise<void>((resolve) => {
    s.close(() => resolve());
    s.closeAllConnections();
  });
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
