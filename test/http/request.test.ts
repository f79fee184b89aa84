/**
 * The HTTP layer's pure decisions (console/core/http-request.ts), table-driven with hostile input:
 * Host check, route matching (404/405/HEAD), agent certificate check, body reading within a
 * limit, and the refusal shapes of both ports.
 */
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  agentFromCertificate,
  asHttpError,
  errorBody,
  hostRefusal,
  isPlainPath,
  matchRoute,
  pathOf,
  readBody,
  routesFor,
  unrouted,
  type AgentAuthRow,
  type ClientCertificate,
} from '../../console/core/http-request.js';
import { HttpError, type Route } from '../../console/module.js';

const ok = () => ({ status: 200 });
const ROUTES: Route[] = [
  { method: 'GET', path: '/api/agent/ca', auth: 'none', handle: ok },
  { method: 'POST', path: '/api/agent/events', auth: 'agent', handle: ok },
  { method: 'GET', path: /^\/events\/(\d{1,15})$/, auth: 'none', handle: ok },
  { method: 'GET', path: /^\/files\/([^/]+)$/, auth: 'none', handle: ok },
  { method: 'POST', path: '/validate/check', auth: 'none', handle: ok },
  { method: 'POST', path: '/validate/agent-only', auth: 'agent', handle: ok },
];

describe('Host check', () => {
  const allowed = new Set(['localhost', '127.0.0.1', '[::1]', 'console.example']);
  it.each([
    ['localhost', true],
    ['LocalHost:8443', true],
    ['127.0.0.1:1', true],
    ['[::1]:8443', true],
    ['[0:0:0:0:0:0:0:1]', true],
    ['console.example', true],
    [undefined, false],
    ['', false],
    ['   ', false],
    ['attacker.example', false],
    ['console.example.attacker.example', false],
    ['localhost@attacker.example', false],
    ['localhost:99999999', false],
    ['localhost:', false],
    ['localhost/evil', false],
    ['localhost\r\nX: y', false],
    ['[::1', false],
    ['[::2]:8443', false],
    ['ｌｏｃａｌｈｏｓｔ', false],
    ['x'.repeat(10_000), false],
  ] as const)('%j → %s', (header, served) => {
    const r = hostRefusal(header, allowed);
    expect(r === null).toBe(served);
    if (r) {
      expect(r.status).toBe(421);
      expect(r.message.length).toBeLessThan(200);
    }
  });
});

describe('route matching', () => {
  it.each([
    ['GET', '/api/agent/ca', 'GET /api/agent/ca', []],
    ['HEAD', '/api/agent/ca', 'GET /api/agent/ca', []],
    ['POST', '/api/agent/ca', 'method', null],
    ['DELETE', '/api/agent/events', 'method', null],
    ['GET', '/events/42', 'GET /^\\/events\\/(\\d{1,15})$/', ['42']],
    ['HEAD', '/events/42', 'GET /^\\/events\\/(\\d{1,15})$/', ['42']],
    ['GET', '/events/1234567890123456', 'none', null],
    ['GET', '/events/4x', 'none', null],
    ['GET', '/files/a%20b', 'GET /^\\/files\\/([^/]+)$/', ['a b']],
    ['GET', '/nothing', 'none', null],
    ['GET', '', 'none', null],
    ['PROPFIND', '/api/agent/ca', 'method', null],
  ] as const)('%s %s → %s', (method, path, want, params) => {
    const m = matchRoute(ROUTES, method, path);
    if (want === 'none') expect(m).toBeNull();
    else if (want === 'method') expect(m).toBe('method');
    else {
      expect(m).not.toBeNull();
      expect(typeof m).toBe('object');
      const found = m as { route: Route; params: string[] };
      expect(`${found.route.method} ${String(found.route.path)}`).toBe(want);
      expect(found.params).toEqual(params);
    }
  });

  it('a malformed percent-escape in a captured part is a 400 refusal, not an internal error', () => {
    expect(() => matchRoute(ROUTES, 'GET', '/files/%E0%A4%A')).toThrow(HttpError);
    try {
      matchRoute(ROUTES, 'GET', '/files/%zz');
    } catch (e) {
      expect((e as HttpError).status).toBe(400);
    }
  });

  it('404 vs 405', () => {
    expect(unrouted(null, 'GET').status).toBe(404);
    expect(unrouted('method', 'PUT')).toMatchObject({ status: 405, code: 'method_not_allowed' });
  });

  it.each([
    ['/', '/', ''],
    ['/api/agent/ca?x=1', '/api/agent/ca', 'x=1'],
    ['/a/../b', '/b', ''],
    ['/%2e%2e/x', '/x', ''],
    ['//evil.example/x', '/x', ''],
    [undefined, '/', ''],
  ])('path of %j is %j', (url, path, query) => {
    const p = pathOf(url);
    expect(p.path).toBe(path);
    expect(p.query.toString()).toBe(query);
  });

  it.each([
    ['/api/agent/ca', true],
    ['/validate/check', true],
    ['/:id', false],
    ['/a/*', false],
    ['/a(b)', false],
    ['relative', false],
    [/^\/x$/, false],
  ] as const)('plain path for the router: %s → %s', (p, want) => expect(isPlainPath(p)).toBe(want));

  it('the validate port keeps only /validate/* routes that need no client certificate', () => {
    expect(routesFor('validate', ROUTES).map((r) => r.path)).toEqual(['/validate/check']);
    expect(routesFor('main', ROUTES)).toHaveLength(ROUTES.length);
  });
});

describe('agent certificate', () => {
  const der = Buffer.from('certificate bytes');
  const fp = createHash('sha256').update(der).digest('hex');
  const cert = (over: Partial<ClientCertificate> = {}): ClientCertificate => ({ der, authorized: true, authorizationError: null, commonName: 'agent-1', ...over });
  const rows: Record<string, AgentAuthRow> = {
    'agent-1': { status: 'online', cert_fingerprint: fp },
    'agent-silent': { status: 'silent', cert_fingerprint: fp },
    'agent-revoked': { status: 'revoked', cert_fingerprint: fp },
    'agent-other': { status: 'online', cert_fingerprint: 'ab'.repeat(32) },
  };
  const lookup = (id: string) => (Object.hasOwn(rows, id) ? rows[id] : undefined);
  it.each([
    ['enrolled', cert(), 'agent-1'],
    ['enrolled, silent', cert({ commonName: 'agent-silent' }), 'agent-silent'],
    ['none', null, 401],
    ['not verified by TLS', cert({ authorized: false, authorizationError: 'CERT_HAS_EXPIRED' }), 401],
    ['revoked', cert({ commonName: 'agent-revoked' }), 403],
    ['another certificate of an enrolled agent', cert({ commonName: 'agent-other' }), 403],
    ['unknown agent', cert({ commonName: 'agent-2' }), 403],
    ['empty CN', cert({ commonName: '' }), 403],
    ['CN __proto__', cert({ commonName: '__proto__' }), 403],
    ['CN with SQL', cert({ commonName: "x' OR '1'='1" }), 403],
  ] as const)('%s → %s', (_n, c, want) => {
    if (typeof want === 'string') expect(agentFromCertificate(c, lookup)).toBe(want);
    else expect(() => agentFromCertificate(c, lookup)).toThrow(expect.objectContaining({ status: want }));
  });
  it('revoked and unknown are told apart by code', () => {
    expect(() => agentFromCertificate(cert({ commonName: 'agent-revoked' }), lookup)).toThrow(expect.objectContaining({ code: 'agent_revoked' }));
    expect(() => agentFromCertificate(cert({ commonName: 'agent-2' }), lookup)).toThrow(expect.objectContaining({ code: 'unknown_agent' }));
  });
});

describe('reading a body within its limit', () => {
  const stream = (headers: Record<string, string>, chunks: (string | Buffer)[]) => {
    const s = Object.assign(new PassThrough(), { headers });
    for (const c of chunks) s.write(c);
    s.end();
    return s;
  };
  it.each([
    ['no body', {}, [], 10, ''],
    ['exactly the limit', { 'content-length': '10' }, ['0123456789'], 10, '0123456789'],
    ['chunks under the limit', {}, ['ab', 'cd', 'ef'], 10, 'abcdef'],
  ])('%s → read', async (_n, headers, chunks, limit, want) => {
    expect((await readBody(stream(headers, chunks), limit)).toString()).toBe(want);
  });
  it.each([
    ['declared over the limit', { 'content-length': '11' }, [], 10],
    ['declared huge', { 'content-length': '99999999999999999999' }, [], 10],
    ['streamed over the limit without a length', {}, ['0123456', '7890'], 10],
    ['declared small, sent more', { 'content-length': '2' }, ['0123456789abc'], 10],
  ])('%s → 413', async (_n, headers, chunks, limit) => {
    await expect(readBody(stream(headers, chunks), limit)).rejects.toMatchObject({ status: 413, code: 'body_too_large' });
  });
});

describe('refusal shapes', () => {
  it.each([
    [new HttpError(429, 'rate_limited', 'slow down', undefined, { 'retry-after': '3' }), 429, 'rate_limited', false],
    [Object.assign(new Error('Request body is too large'), { statusCode: 413, code: 'FST_ERR_CTP_BODY_TOO_LARGE' }), 413, 'body_too_large', false],
    [Object.assign(new Error('Unsupported Media Type'), { statusCode: 415, code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE' }), 415, 'unsupported_media_type', false],
    [Object.assign(new Error('bad length'), { statusCode: 400, code: 'FST_ERR_CTP_INVALID_CONTENT_LENGTH' }), 400, 'bad_request', false],
    [new TypeError('x is undefined'), 500, 'internal', true],
    [null, 500, 'internal', true],
    ['a string', 500, 'internal', true],
    [{ statusCode: 'x' }, 500, 'internal', true],
  ])('%s → %i %s', (e, status, code, internal) => {
    const r = asHttpError(e);
    expect(r.error.status).toBe(status);
    expect(r.error.code).toBe(code);
    expect(r.internal).toBe(internal);
  });
  it('an internal error says nothing of its cause', () => {
    expect(asHttpError(new Error('SQLITE_CORRUPT at /secret/path')).error.message).toBe('internal error');
  });
  it.each([
    [404, 601],
    [429, 4290],
    [500, 903],
    [503, 903],
    [421, 905],
    [413, 905],
    [405, 905],
  ])('validate port: %i → privacyIDEA code %i; main port: the console shape', (status, code) => {
    const e = new HttpError(status, 'c', 'm', ['d1']);
    expect(errorBody('validate', e)).toMatchObject({ result: { status: false, error: { code, message: 'c: m' } } });
    expect(errorBody('main', e)).toEqual({ error: 'c', message: 'm', details: ['d1'] });
  });
  it('details are capped at 50', () => {
    const e = new HttpError(400, 'invalid', 'many', Array.from({ length: 500 }, (_, i) => `e${i}`));
    expect((errorBody('main', e).details as string[]).length).toBe(50);
  });
});
