/**
 * The console HTTP layer's decisions, apart from Fastify and from sockets: which route a request
 * is for (404 vs 405), whether the Host is ours, which agent a client certificate belongs to, how
 * a body is read within its route's limit, and the shape of every refusal on each port.
 */
import { X509Certificate, createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { HttpError, type Route } from '../module.js';

export const DEFAULT_MAX_BODY = 64 * 1024;

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

/** The 421 refusal when the Host is not a name of the certificate (DNS rebinding, misrouted requests); null when it is. */
export function hostRefusal(header: string | undefined, allowed: ReadonlySet<string>): HttpError | null {
  const host = hostOfHeader(header);
  if (host !== null && allowed.has(host)) return null;
  return new HttpError(421, 'misdirected_request', `Host ${JSON.stringify(String(header ?? '')).slice(0, 100)} is not a name of this console's certificate`);
}

/** Only these paths are served on the validate port (everything else: 404 there). */
export function isValidatePath(path: string | RegExp): boolean {
  return typeof path === 'string' && path.startsWith('/validate/');
}

/** The routes a listener serves: the validate port has no client certificates, so no agent route and nothing outside /validate/. */
export function routesFor(kind: 'main' | 'validate', routes: Route[]): Route[] {
  return kind === 'validate' ? routes.filter((r) => r.auth === 'none' && isValidatePath(r.path)) : routes;
}

/** The path of a request target as the routes see it (no query; percent-escapes kept). */
export function pathOf(url: string | undefined): { path: string; query: URLSearchParams } {
  const u = new URL(url ?? '/', 'https://console.invalid');
  return { path: u.pathname, query: u.searchParams };
}

export type RouteMatch = { route: Route; params: string[] } | 'method' | null;

/** First route whose path matches, HEAD served by GET; 'method' when only the method is wrong (405), null for 404. */
export function matchRoute(routes: readonly Route[], method: string, path: string): RouteMatch {
  let pathMatched = false;
  for (const route of routes) {
    let params: string[] | null = null;
    if (typeof route.path === 'string') params = route.path === path ? [] : null;
    else {
      const m = route.path.exec(path);
      params = m ? m.slice(1).map((s) => decodeParam(s ?? '')) : null;
    }
    if (params === null) continue;
    pathMatched = true;
    if (route.method === method || (method === 'HEAD' && route.method === 'GET')) return { route, params };
  }
  return pathMatched ? 'method' : null;
}

function decodeParam(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new HttpError(400, 'bad_request', 'malformed percent-escape in the path');
  }
}

/** The refusal for a request no route takes: 405 when the path exists with other methods, else 404. */
export function unrouted(match: RouteMatch, method: string): HttpError {
  return match === 'method' ? new HttpError(405, 'method_not_allowed', `${method} is not allowed here`) : new HttpError(404, 'not_found', 'no such endpoint');
}

/**
 * String paths Fastify's router takes as they are; anything with router syntax (':', '*', '(')
 * or a RegExp goes through the catch-all route and matchRoute instead.
 */
export function isPlainPath(path: string | RegExp): path is string {
  return typeof path === 'string' && /^\/[A-Za-z0-9/_.~-]*$/.test(path);
}

/** Reads a body up to `limit` bytes: the declared length is refused at once, a longer stream as soon as it passes the limit. */
export function readBody(req: Readable & { headers: IncomingMessage['headers'] }, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = () => new HttpError(413, 'body_too_large', `request body larger than ${limit} bytes`);
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > limit) {
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(tooLarge());
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** 415 unless the body is declared JSON (ApiRequest.json(), and routes that hand the raw body on). */
export function requireJsonType(headers: IncomingMessage['headers']): void {
  if (!String(headers['content-type'] ?? '').startsWith('application/json')) throw new HttpError(415, 'unsupported_media_type', 'expected Content-Type: application/json');
}

/** What the agent check needs of a client certificate. */
export interface ClientCertificate {
  der: Buffer;
  /** The TLS layer verified it against the console CA. */
  authorized: boolean;
  authorizationError: string | null;
  commonName: string;
}

/** Where a request's client certificate comes from: the TLS socket in production (tlsClientCertificate). */
export type ClientCertificateSource = (req: IncomingMessage) => ClientCertificate | null;

/** The client certificate the TLS handshake presented; null on a socket that is not TLS or without one. */
export function tlsClientCertificate(req: IncomingMessage): ClientCertificate | null {
  const socket = req.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== 'function') return null;
  const peer = socket.getPeerCertificate(false);
  if (!peer || !peer.raw) return null;
  return {
    der: peer.raw,
    authorized: socket.authorized === true,
    authorizationError: socket.authorizationError ? String(socket.authorizationError) : null,
    commonName: typeof peer.subject?.CN === 'string' ? peer.subject.CN : '',
  };
}

export interface AgentAuthRow {
  status: string;
  cert_fingerprint: string;
  /** A renewed certificate the agent has not confirmed yet (console/core/renewal.ts): accepted next to the current one. */
  next_cert_fingerprint?: string | null;
}

/** Identifies the agent behind a client certificate (CA-verified, the one enrolled, not revoked), or throws why not. */
export function agentFromCertificate(cert: ClientCertificate | null, lookup: (agentId: string) => AgentAuthRow | undefined): string {
  if (!cert) throw new HttpError(401, 'client_certificate_required', 'this endpoint requires an agent client certificate');
  if (!cert.authorized) throw new HttpError(401, 'client_certificate_invalid', `client certificate rejected: ${String(cert.authorizationError)}`);
  const row = lookup(cert.commonName);
  const fingerprint = createHash('sha256').update(cert.der).digest('hex');
  if (!row || (row.cert_fingerprint !== fingerprint && row.next_cert_fingerprint !== fingerprint)) throw new HttpError(403, 'unknown_agent', 'this certificate does not belong to an enrolled agent');
  if (row.status === 'revoked') throw new HttpError(403, 'agent_revoked', 'this agent has been revoked');
  return cert.commonName;
}

/** Fastify's own refusals (body, media type, URL) as the console's HttpError; anything else is an internal error. */
export function asHttpError(e: unknown): { error: HttpError; internal: boolean } {
  if (e instanceof HttpError) return { error: e, internal: false };
  const f = e as { statusCode?: unknown; code?: unknown; message?: unknown } | null;
  const status = typeof f?.statusCode === 'number' ? f.statusCode : 500;
  const message = typeof f?.message === 'string' ? f.message.slice(0, 200) : '';
  if (status === 413) return { error: new HttpError(413, 'body_too_large', message || 'request body too large'), internal: false };
  if (status === 415) return { error: new HttpError(415, 'unsupported_media_type', message || 'unsupported media type'), internal: false };
  if (status >= 400 && status < 500) return { error: new HttpError(status, 'bad_request', message || 'bad request'), internal: false };
  return { error: new HttpError(500, 'internal', 'internal error'), internal: true };
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

/** The JSON body of a refusal: the Credential Provider parses every answer as privacyIDEA JSON, elsewhere the console's own shape. */
export function errorBody(kind: 'main' | 'validate', e: HttpError): Record<string, unknown> {
  if (kind === 'validate') return privacyIdeaError(e);
  return { error: e.code, message: e.message, ...(e.details ? { details: e.details.slice(0, 50) } : {}) };
}
