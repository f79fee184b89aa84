/**
 * The console's HTTPS servers. The main port (TLS 1.3 only) serves agents (mutual TLS: the client
 * certificate is requested, and routes with auth 'agent' refuse requests without a valid,
 * non-revoked agent certificate) and the web console (which authenticates people itself).
 *
 * The validate port serves only the privacyIDEA-compatible /validate/* routes, for the Windows
 * Credential Provider: WinHTTP fails whenever a server requests a client certificate (even an
 * optional one) and Windows 10 offers no TLS 1.3, so that port requests none and also accepts
 * TLS 1.2, with forward-secret AEAD suites only. Both share the same hardening (connection caps,
 * timeouts, Host check, per-address request limits).
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { X509Certificate, createHash } from 'node:crypto';
import { HttpError, type ApiRequest, type ApiResponse, type Route } from '../module.js';
import type { OpenConsole } from './context.js';
import { RateLimiter, sourceKey } from './limits.js';
import { consoleLimits } from './paths.js';

const DEFAULT_MAX_BODY = 64 * 1024;

/** Connection limits of each HTTPS port (README, "Security limits"); request rates are in paths.ts consoleLimits. */
export const SERVER_LIMITS = {
  /** Open connections from one address (IPv6: one /64); an agent keeps at most 4, a browser about 6. */
  connectionsPerAddress: 128,
  /** Open connections in all: a fleet of 20,000 terminals keeps one each. */
  maxConnections: 25_000,
  /** TLS handshake must finish within this. */
  handshakeMs: 10_000,
  /** A new connection must have sent a whole request head within this (slowloris, silent sockets). */
  firstRequestMs: 10_000,
  /** Headers of any request must be complete within this; the whole request within requestMs. */
  headersMs: 10_000,
  requestMs: 30_000,
  /** A connection with no traffic at all for this long is closed (keep-alive included). */
  idleMs: 75_000,
} as const;

/** Host names and addresses the server certificate is valid for, canonical (lowercase, IPv6 compressed). */
export function certificateHosts(certPem: string): Set<string> {
  const san = new X509Certificate(certPem).subjectAltName ?? '';
  const hosts = new Set<string>();
  for (const part of san.split(/,\s*/)) {
    const m = /^(DNS|IP Address):(.+)$/.exec(part.trim());
    const h = m ? canonicalHost(m[2]!) : null;
    if (h) hosts.add(h);
  }
  return hosts;
}

/** "Example.LOCAL" → "example.local", "0:0:0:0:0:0:0:1" / "[::1]" → "[::1]"; null when not a host. */
export function canonicalHost(host: string): string | null {
  const bare = host.trim().replace(/^\[|\]$/g, '');
  try {
    return new URL(`https://${bare.includes(':') ? `[${bare}]` : bare}/`).hostname.toLowerCase();
  } catch {
    return null;
  }
}

/** The host part of a Host header ("console.example:8443", "[::1]:8443"), canonical; null when absent or malformed. */
export function hostOfHeader(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$/.exec(header.trim());
  return m ? canonicalHost(m[1]!) : null;
}

export interface AgentAuthRow {
  status: string;
  cert_fingerprint: string;
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > limit) {
      reject(new HttpError(413, 'body_too_large', `request body larger than ${limit} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new HttpError(413, 'body_too_large', `request body larger than ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Identifies the agent behind the TLS client certificate, or explains why not. */
function authenticateAgent(ctx: OpenConsole, socket: TLSSocket): string {
  const peer = socket.getPeerCertificate(false);
  if (!peer || !peer.raw) throw new HttpError(401, 'client_certificate_required', 'this endpoint requires an agent client certificate');
  if (!socket.authorized) throw new HttpError(401, 'client_certificate_invalid', `client certificate rejected: ${String(socket.authorizationError)}`);
  const agentId = typeof peer.subject?.CN === 'string' ? peer.subject.CN : '';
  const row = ctx.db.prepare('SELECT status, cert_fingerprint FROM agents WHERE id = ?').get(agentId) as AgentAuthRow | undefined;
  const fingerprint = createHash('sha256').update(new X509Certificate(peer.raw).raw).digest('hex');
  if (!row || row.cert_fingerprint !== fingerprint) throw new HttpError(403, 'unknown_agent', 'this certificate does not belong to an enrolled agent');
  if (row.status === 'revoked') throw new HttpError(403, 'agent_revoked', 'this agent has been revoked');
  return agentId;
}

function send(res: ServerResponse, r: ApiResponse): void {
  const headers: Record<string, string | string[]> = {
    'x-content-type-options': 'nosniff',
    'cache-control': 'no-store',
    ...r.headers,
  };
  let body: string | Buffer = '';
  if (r.json !== undefined) {
    body = JSON.stringify(r.json);
    headers['content-type'] ??= 'application/json; charset=utf-8';
  } else if (r.body !== undefined) body = r.body;
  headers['content-length'] = String(Buffer.byteLength(body));
  res.writeHead(r.status, headers);
  res.end(body);
}

function matchRoute(routes: Route[], method: string, path: string): { route: Route; params: string[] } | 'method' | null {
  let pathMatched = false;
  for (const route of routes) {
    let params: string[] | null = null;
    if (typeof route.path === 'string') params = route.path === path ? [] : null;
    else {
      const m = route.path.exec(path);
      params = m ? m.slice(1).map((s) => decodeURIComponent(s ?? '')) : null;
    }
    if (params === null) continue;
    pathMatched = true;
    if (route.method === method || (method === 'HEAD' && route.method === 'GET')) return { route, params };
  }
  return pathMatched ? 'method' : null;
}

/**
 * TLS 1.2 suites of the validate port: ECDHE (forward secrecy) with AES-GCM or ChaCha20-Poly1305
 * only — what Windows 10's Schannel offers for an ECDSA certificate; no CBC, no RSA key exchange.
 * The TLS 1.3 suites are all AEAD.
 */
export const VALIDATE_TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-RSA-CHACHA20-POLY1305',
] as const;
const TLS13_CIPHERS = ['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256'] as const;

/** Only these paths are served on the validate port (everything else: 404 there). */
export function isValidatePath(path: string | RegExp): boolean {
  return typeof path === 'string' && path.startsWith('/validate/');
}

/** Request limiters shared by the console's listeners, so an address has one budget whichever port it uses. */
export interface SharedLimiters {
  agent: RateLimiter;
  anonymous: RateLimiter;
}

export function createSharedLimiters(ctx: OpenConsole): SharedLimiters {
  const limits = consoleLimits(ctx.config);
  return { agent: new RateLimiter(limits.agentRequests, 50_000), anonymous: new RateLimiter(limits.anonymousRequests) };
}

export interface ServerOptions {
  /** 'main' (default): agents + web, TLS 1.3, client certificate requested. 'validate': /validate/* only, TLS 1.2/1.3, no client certificate. */
  kind?: 'main' | 'validate';
  limiters?: SharedLimiters;
}

/**
 * A refusal of the server itself (unknown path, Host, size, rate) in privacyIDEA's error shape
 * (api/lib/utils.py send_error): `result.error.code` an integer, as the Credential Provider's
 * parser requires — 601 not found, 4290 too many requests, 903 server error, 905 anything else.
 */
export function privacyIdeaError(e: HttpError): Record<string, unknown> {
  const code = e.status === 404 ? 601 : e.status === 429 ? 4290 : e.status >= 500 ? 903 : 905;
  return {
    jsonrpc: '2.0',
    id: 1,
    time: Date.now() / 1000,
    version: 'privacyIDEA 3.10 (Sekimori compatible)',
    versionnumber: '3.10',
    detail: null,
    result: { status: false, error: { code, message: `${e.code}: ${e.message}` } },
  };
}

export function createConsoleServer(ctx: OpenConsole, allRoutes: Route[], log: (m: string) => void, opts: ServerOptions = {}): Server {
  const L = SERVER_LIMITS;
  const validate = opts.kind === 'validate';
  // The validate port never sees an agent route: it has no client certificates to check them with.
  const routes = validate ? allRoutes.filter((r) => r.auth === 'none' && isValidatePath(r.path)) : allRoutes;
  const tls = validate
    ? {
        requestCert: false,
        minVersion: 'TLSv1.2' as const,
        ciphers: [...TLS13_CIPHERS, ...VALIDATE_TLS12_CIPHERS].join(':'),
        honorCipherOrder: true,
      }
    : {
        ca: [ctx.ca.certPem],
        requestCert: true,
        rejectUnauthorized: false, // browsers have no client certificate; agent routes check per request
        minVersion: 'TLSv1.3' as const,
      };
  const server = createServer(
    {
      key: ctx.server.keyPem,
      cert: ctx.server.certPem,
      ...tls,
      handshakeTimeout: L.handshakeMs,
      connectionsCheckingInterval: 1_000, // how often headers/request timeouts are enforced
    },
    (req, res) => {
      firstRequestSeen.add(req.socket);
      void handle(req, res);
    },
  );
  server.requestTimeout = L.requestMs;
  server.headersTimeout = L.headersMs;
  server.keepAliveTimeout = 65_000;
  server.maxConnections = L.maxConnections;
  server.timeout = L.idleMs; // a socket with no traffic at all is destroyed

  // Per-address connection cap, counted at TCP level before any TLS work is spent on it.
  const perAddress = new Map<string, number>();
  const firstRequestSeen = new WeakSet<object>();
  server.on('connection', (socket: Socket) => {
    const addr = sourceKey(socket.remoteAddress ?? '');
    const n = (perAddress.get(addr) ?? 0) + 1;
    if (n > L.connectionsPerAddress) {
      socket.destroy();
      return;
    }
    perAddress.set(addr, n);
    socket.once('close', () => {
      const left = (perAddress.get(addr) ?? 1) - 1;
      if (left <= 0) perAddress.delete(addr);
      else perAddress.set(addr, left);
    });
  });
  // A connection that completes TLS but never sends a request (or only part of its head) is closed.
  server.on('secureConnection', (tls: TLSSocket) => {
    const timer = setTimeout(() => {
      if (!firstRequestSeen.has(tls)) tls.destroy();
    }, L.firstRequestMs);
    timer.unref();
    tls.once('close', () => clearTimeout(timer));
  });

  const allowedHosts = certificateHosts(ctx.server.certPem);
  const { agent: agentLimiter, anonymous: anonymousLimiter } = opts.limiters ?? createSharedLimiters(ctx);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://console.invalid');
    const method = req.method ?? 'GET';
    try {
      // The Host must be a name the certificate is for: refuses DNS-rebinding and misrouted requests.
      const host = hostOfHeader(req.headers.host);
      if (host === null || !allowedHosts.has(host)) {
        throw new HttpError(421, 'misdirected_request', `Host ${JSON.stringify(String(req.headers.host ?? '')).slice(0, 100)} is not a name of this console's certificate`);
      }
      const found = matchRoute(routes, method, url.pathname);
      if (found === null) throw new HttpError(404, 'not_found', 'no such endpoint');
      if (found === 'method') throw new HttpError(405, 'method_not_allowed', `${method} is not allowed here`);
      const { route, params } = found;
      const agentId = route.auth === 'agent' ? authenticateAgent(ctx, req.socket as TLSSocket) : null;
      if (agentId !== null) agentLimiter.check(agentId, 'requests from this terminal');
      else anonymousLimiter.check(sourceKey(req.socket.remoteAddress ?? ''), 'requests from this address');
      const body = method === 'GET' || method === 'HEAD' ? Buffer.alloc(0) : await readBody(req, route.maxBody ?? DEFAULT_MAX_BODY);
      const apiReq: ApiRequest = {
        method,
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body,
        remoteAddress: req.socket.remoteAddress ?? '',
        agentId,
        params,
        json() {
          const type = String(req.headers['content-type'] ?? '');
          if (!type.startsWith('application/json')) throw new HttpError(415, 'unsupported_media_type', 'expected Content-Type: application/json');
          try {
            return JSON.parse(body.toString('utf8')) as unknown;
          } catch (e) {
            throw new HttpError(400, 'malformed_json', `malformed JSON: ${(e as Error).message}`);
          }
        },
      };
      send(res, await route.handle(apiReq));
    } catch (e) {
      if (!(e instanceof HttpError)) log(`internal error on ${method} ${url.pathname}: ${(e as Error).stack ?? String(e)}`);
      const err = e instanceof HttpError ? e : new HttpError(500, 'internal', 'internal error');
      send(res, {
        status: err.status,
        // The Credential Provider parses every answer as privacyIDEA JSON: elsewhere it would only say "server unavailable".
        json: validate ? privacyIdeaError(err) : { error: err.code, message: err.message, ...(err.details ? { details: err.details.slice(0, 50) } : {}) },
        ...(err.headers ? { headers: err.headers } : {}),
      });
    }
  }
  return server;
}
