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
 *
 * This file is the TLS and connection layer; requests are handled by the Fastify app of
 * http-app.ts, which runs on the server made here (`serverFactory`).
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import type { Route } from '../module.js';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, judgeAgentProtocol, protocolRefusalMessage } from '../../protocol/version.js';
import type { OpenConsole } from './context.js';
import { buildConsoleApp, type ConsoleAppOptions, type SharedLimiters } from './http-app.js';
import { sourceKey } from './limits.js';
import { registerServer } from './live-servers.js';

// Kept importable from here (tests and other files name them through server.ts).
export { createSharedLimiters, type SharedLimiters } from './http-app.js';
export { canonicalHost, certificateHosts, hostOfHeader, isValidatePath, privacyIdeaError, type AgentAuthRow } from './http-request.js';

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

export interface ServerOptions {
  /** 'main' (default): agents + web, TLS 1.3, client certificate requested. 'validate': /validate/* only, TLS 1.2/1.3, no client certificate. */
  kind?: 'main' | 'validate';
  limiters?: SharedLimiters;
}

/**
 * The hardened https server of one port: TLS settings per kind, per-address and total connection
 * caps, handshake/first-request/headers/request/idle timeouts. `handler` gets every request.
 */
export function createHardenedServer(
  ctx: Pick<OpenConsole, 'server' | 'ca'>,
  kind: 'main' | 'validate',
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  opts: { onProtocolRefused?: (req: IncomingMessage, version: number | null, reason: string) => void } = {},
): Server {
  const L = SERVER_LIMITS;
  const tls =
    kind === 'validate'
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
  const firstRequestSeen = new WeakSet<object>();
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
      // Every answer states the protocol; an agent request of a protocol too old to be read right is refused here.
      res.setHeader(PROTOCOL_HEADER, String(PROTOCOL_VERSION));
      if (kind === 'main' && (req.url ?? '').startsWith('/api/agent/')) {
        const verdict = judgeAgentProtocol(req.headers[PROTOCOL_HEADER]);
        if (!verdict.ok) {
          opts.onProtocolRefused?.(req, verdict.version, verdict.reason);
          const m = protocolRefusalMessage(verdict);
          const body = JSON.stringify({ error: 'protocol_unsupported', message: m.ja, messageEn: m.en, supported: [PROTOCOL_VERSION - 1, PROTOCOL_VERSION] });
          res.writeHead(426, { 'content-type': 'application/json; charset=utf-8', upgrade: `Sekimori-Protocol/${PROTOCOL_VERSION}`, connection: 'Upgrade, close' });
          res.end(body);
          return;
        }
      }
      handler(req, res);
    },
  );
  server.requestTimeout = L.requestMs;
  server.headersTimeout = L.headersMs;
  server.keepAliveTimeout = 65_000;
  server.maxConnections = L.maxConnections;
  server.timeout = L.idleMs; // a socket with no traffic at all is destroyed

  // Per-address connection cap, counted at TCP level before any TLS work is spent on it.
  const perAddress = new Map<string, number>();
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
  server.on('secureConnection', (socket: TLSSocket) => {
    const timer = setTimeout(() => {
      if (!firstRequestSeen.has(socket)) socket.destroy();
    }, L.firstRequestMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  });
  registerServer(ctx, server, tls);
  return server;
}

// Kept importable from here: the renewed certificate is served through live-servers.ts.
export { serveCertificate } from './live-servers.js';

export interface ConsoleListener {
  app: FastifyInstance;
  /** The hardened server the app runs on; listen on it once (serve.ts). */
  server: Server;
}

/** One port: the Fastify app of http-app.ts on the hardened server of this file, ready to listen. */
export async function createConsoleServer(ctx: OpenConsole, allRoutes: Route[], log: (m: string) => void, opts: ServerOptions = {}): Promise<ConsoleListener> {
  const kind = opts.kind ?? 'main';
  let server: Server | null = null;
  const appOptions: ConsoleAppOptions = {
    kind,
    ...(opts.limiters ? { limiters: opts.limiters } : {}),
    serverFactory: (handler) => {
      const made = createHardenedServer(ctx, kind, handler, {
        // Folded per address: an old agent retries every few seconds, one event then a counted summary.
        onProtocolRefused: (req, version, reason) =>
          ctx.recordRepeated(
            { type: 'agent.protocol_refused', data: { from: req.socket.remoteAddress ?? '', version, reason, path: (req.url ?? '').slice(0, 128) } },
            'protocol_refused:' + sourceKey(req.socket.remoteAddress ?? ''),
          ),
      });
      server = made;
      return made;
    },
  };
  const app = buildConsoleApp(ctx, allRoutes, log, appOptions);
  await app.ready();
  if (server === null) throw new Error('Fastify did not take the hardened server');
  return { app, server };
}
