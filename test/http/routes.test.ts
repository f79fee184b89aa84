/**
 * Route tests of the console's HTTP layer, in-process with Fastify's inject(): no server, no TLS.
 * What the layer decides before a handler runs (Host, 404/405, agent certificate, limits, body
 * size and shape) and what the web plumbing refuses (auditor on an admin POST, CSRF).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECURITY_HEADERS } from '../../console/core/http-headers.js';
import { RateLimiter } from '../../console/core/limits.js';
import { HttpError } from '../../console/module.js';
import { buildTestApp, TEST_CERT_HEADER, type TestAgent, type TestApp } from './app.js';

let t: TestApp;
let agent: TestAgent;

beforeAll(async () => {
  t = await buildTestApp();
  agent = await t.enrollAgent();
}, 60_000);
afterAll(async () => {
  await t?.close();
});

const HEARTBEAT = { ts: new Date().toISOString(), hostname: 'pc-1', os: 'test', agentVersion: 'test', policyVersion: 1, outboxDepth: 0, monitorOnly: false };

function json(body: string): Record<string, unknown> {
  return JSON.parse(body) as Record<string, unknown>;
}

function expectSecurityHeaders(headers: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) expect(headers[k], k).toBe(v);
  expect(headers['x-content-type-options']).toBe('nosniff');
}

describe('routing', () => {
  it.each([
    ['unknown path', 'GET', '/no/such/thing', 404, 'not_found'],
    ['unknown path, POST', 'POST', '/api/agent/nothing', 404, 'not_found'],
    ['known path, wrong method', 'POST', '/api/agent/ca', 405, 'method_not_allowed'],
    ['known path, DELETE', 'DELETE', '/api/agent/heartbeat', 405, 'method_not_allowed'],
    ['known RegExp path, wrong method', 'PUT', '/static/console.css', 405, 'method_not_allowed'],
    ['RegExp that does not match', 'GET', '/static/../../etc/passwd', 404, 'not_found'],
    ['OPTIONS on a known path', 'OPTIONS', '/api/agent/ca', 405, 'method_not_allowed'],
    ['trailing slash is another path', 'GET', '/api/agent/ca/', 404, 'not_found'],
    ['case matters', 'GET', '/API/agent/ca', 404, 'not_found'],
    ['a method no route has, known path', 'PROPFIND', '/api/agent/ca', 405, 'method_not_allowed'],
    ['a method no route has, unknown path', 'PROPFIND', '/nothing', 404, 'not_found'],
    ['semicolon is part of the path', 'GET', '/api/agent/ca;x=1', 404, 'not_found'],
  ] as const)('%s → %i %s, JSON error shape, security headers', async (_n, method, url, status, code) => {
    const r = await t.inject({ method, url });
    expect(r.statusCode).toBe(status);
    expect(json(r.body)).toMatchObject({ error: code, message: expect.any(String) });
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    expectSecurityHeaders(r.headers);
  });

  it('GET serves, HEAD answers the same status and length without a body, on plain and RegExp paths', async () => {
    for (const url of ['/api/agent/ca', '/static/console.css']) {
      const get = await t.inject({ method: 'GET', url });
      const head = await t.inject({ method: 'HEAD', url });
      expect(get.statusCode, url).toBe(200);
      expect(head.statusCode, url).toBe(200);
      expect(head.body).toBe('');
      expect(head.headers['content-length']).toBe(get.headers['content-length']);
    }
  });

  it('the query string is passed on, not matched', async () => {
    expect((await t.inject({ method: 'GET', url: '/api/agent/ca?x=1&y=%00' })).statusCode).toBe(200);
  });
});

describe('Host must be a name of the certificate (421)', () => {
  it.each([
    ['foreign name', 'attacker.example'],
    ['foreign name with port', 'attacker.example:443'],
    ['suffix trick', 'localhost.attacker.example'],
    ['userinfo', 'localhost@attacker.example'],
    ['path in host', 'localhost/x'],
    ['two hosts', 'localhost, attacker.example'],
    ['IPv6 not in the certificate', '[2001:db8::1]:8443'],
    ['control characters', 'local\thost'],
  ])('%s (%j)', async (_n, host) => {
    for (const url of ['/api/agent/ca', '/login', '/no/such/thing']) {
      const r = await t.inject({ method: 'GET', url, headers: { host } });
      expect(r.statusCode, url).toBe(421);
      expect(json(r.body)).toMatchObject({ error: 'misdirected_request' });
      expectSecurityHeaders(r.headers);
    }
  });

  it.each(['localhost', 'LOCALHOST:8443', '127.0.0.1:8443', '[::1]:8443', '[0:0:0:0:0:0:0:1]'])('served: %s', async (host) => {
    expect((await t.inject({ method: 'GET', url: '/api/agent/ca', headers: { host } })).statusCode).toBe(200);
  });

  it('is checked before the agent certificate and before the body', async () => {
    const r = await t.inject({ method: 'POST', url: '/api/agent/events', headers: { host: 'attacker.example', 'content-type': 'application/json' }, payload: '{' });
    expect(r.statusCode).toBe(421);
  });
});

describe('agent routes: client certificate', () => {
  it('none → 401 client_certificate_required', async () => {
    const r = await t.inject({ method: 'POST', url: '/api/agent/heartbeat', payload: HEARTBEAT });
    expect(r.statusCode).toBe(401);
    expect(json(r.body)).toMatchObject({ error: 'client_certificate_required' });
  });

  it('not verified by the TLS layer → 401 client_certificate_invalid', async () => {
    const r = await t.inject({ method: 'POST', url: '/api/agent/heartbeat', payload: HEARTBEAT, headers: t.unverifiedCertificate(agent.agentId) });
    expect(r.statusCode).toBe(401);
    expect(json(r.body)).toMatchObject({ error: 'client_certificate_invalid' });
  });

  it('a CA-signed certificate that is not the enrolled one → 403 unknown_agent', async () => {
    const other = await t.enrollAgent();
    t.ctx.db.prepare("UPDATE agents SET cert_fingerprint = 'ab' WHERE id = ?").run(other.agentId); // re-enrolled elsewhere
    const r = await t.inject({ method: 'POST', url: '/api/agent/heartbeat', payload: HEARTBEAT, headers: other.headers });
    expect(r.statusCode).toBe(403);
    expect(json(r.body)).toMatchObject({ error: 'unknown_agent' });
  });

  it('enrolled → served; the same certificate once revoked → 403 agent_revoked', async () => {
    const a = await t.enrollAgent();
    expect((await t.inject({ method: 'POST', url: '/api/agent/heartbeat', payload: HEARTBEAT, headers: a.headers })).statusCode).toBe(200);
    t.revoke(a.agentId);
    const r = await t.inject({ method: 'POST', url: '/api/agent/heartbeat', payload: HEARTBEAT, headers: a.headers });
    expect(r.statusCode).toBe(403);
    expect(json(r.body)).toMatchObject({ error: 'agent_revoked' });
  });

  it('an app built as serve builds it ignores the test header: identity comes from the TLS socket only', async () => {
    const prod = await buildTestApp({ testCertificates: false });
    try {
      const a = await prod.enrollAgent();
      expect(a.headers[TEST_CERT_HEADER]).toBeDefined();
      const r = await prod.inject({ method: 'POST', url: '/api/agent/heartbeat', payload: HEARTBEAT, headers: a.headers });
      expect(r.statusCode).toBe(401);
      expect(json(r.body)).toMatchObject({ error: 'client_certificate_required' });
    } finally {
      await prod.close();
    }
  });
});

describe('agent routes: bad bodies', () => {
  const big = 'x'.repeat(9 * 1024 * 1024);
  it.each([
    ['malformed JSON', '/api/agent/heartbeat', 'application/json', '{"hostname":', 400, 'malformed_json'],
    ['JSON cut short', '/api/agent/events', 'application/json', '{"batchId":"a","events":[', 400, 'malformed_json'],
    ['invalid UTF-8', '/api/agent/heartbeat', 'application/json', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 400, 'malformed_json'],
    ['form instead of JSON', '/api/agent/heartbeat', 'application/x-www-form-urlencoded', 'hostname=x', 415, 'unsupported_media_type'],
    ['text/plain', '/api/agent/events', 'text/plain', '{}', 415, 'unsupported_media_type'],
    ['heartbeat over its 64 KiB limit', '/api/agent/heartbeat', 'application/json', JSON.stringify({ ...HEARTBEAT, os: 'x'.repeat(70 * 1024) }), 413, 'body_too_large'],
    ['events over their 8 MiB limit', '/api/agent/events', 'application/json', big, 413, 'body_too_large'],
  ] as const)('%s → %i %s', async (_n, url, type, payload, status, code) => {
    const r = await t.inject({ method: 'POST', url, payload, headers: { ...agent.headers, 'content-type': type } });
    expect(r.statusCode).toBe(status);
    expect(json(r.body)).toMatchObject({ error: code });
  });

  it.each([
    ['heartbeat: array', '/api/agent/heartbeat', '[]'],
    ['heartbeat: string', '/api/agent/heartbeat', '"hello"'],
    ['heartbeat: null', '/api/agent/heartbeat', 'null'],
    ['events: not an object', '/api/agent/events', '42'],
    ['events: events not a list', '/api/agent/events', '{"batchId":"b","events":"all"}'],
    ['events: event of the wrong shape', '/api/agent/events', '{"batchId":"b","events":[{"id":1,"seq":"x"}]}'],
    ['events: prototype keys', '/api/agent/events', '{"__proto__":{"events":[]},"constructor":{"prototype":{}}}'],
    ['events: deep nesting', '/api/agent/events', '['.repeat(5000) + ']'.repeat(5000)],
  ])('wrong type (%s) → 400 in the JSON error shape', async (_n, url, payload) => {
    const r = await t.inject({ method: 'POST', url, payload, headers: { ...agent.headers, 'content-type': 'application/json' } });
    expect(r.statusCode).toBe(400);
    expect(json(r.body)).toMatchObject({ error: expect.any(String), message: expect.any(String) });
    expect(t.logs).toEqual([]); // a refusal, not an internal error
  });

  it('a declared length over the limit is refused without closing the connection (Node discards the rest, the client reads the 413)', async () => {
    const r = await t.inject({ method: 'POST', url: '/api/agent/events', payload: big, headers: { ...agent.headers, 'content-type': 'application/json' } });
    expect(r.statusCode).toBe(413);
    expect(r.headers.connection).not.toBe('close');
  });

  it('the certificate is checked before the body is read: none with a huge body → 401, not 413', async () => {
    const r = await t.inject({ method: 'POST', url: '/api/agent/events', payload: big, headers: { 'content-type': 'application/json' } });
    expect(r.statusCode).toBe(401);
  });
});

describe('request limits', () => {
  it('an address over its budget gets 429 with Retry-After; an agent over its own budget too', async () => {
    const limiters = { agent: new RateLimiter({ burst: 2, perSecond: 0.001 }), anonymous: new RateLimiter({ burst: 3, perSecond: 0.001 }) };
    const l = await buildTestApp({ limiters });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await l.inject({ method: 'GET', url: '/api/agent/ca' })).statusCode);
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      const limited = await l.inject({ method: 'GET', url: '/login' });
      expect(limited.statusCode).toBe(429);
      expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(json(limited.body)).toMatchObject({ error: 'rate_limited' });
      expectSecurityHeaders(limited.headers);

      const a = await l.enrollAgent();
      const beats: number[] = [];
      for (let i = 0; i < 3; i++) beats.push((await l.inject({ method: 'POST', url: '/api/agent/heartbeat', payload: HEARTBEAT, headers: a.headers })).statusCode);
      expect(beats).toEqual([200, 200, 429]);
    } finally {
      await l.close();
    }
  });

  it('404 and 405 cost no budget (refused before the limiters)', async () => {
    const limiters = { agent: new RateLimiter({ burst: 1, perSecond: 0.001 }), anonymous: new RateLimiter({ burst: 1, perSecond: 0.001 }) };
    const l = await buildTestApp({ limiters });
    try {
      for (let i = 0; i < 5; i++) expect((await l.inject({ method: 'GET', url: '/nothing' })).statusCode).toBe(404);
      expect((await l.inject({ method: 'GET', url: '/api/agent/ca' })).statusCode).toBe(200);
    } finally {
      await l.close();
    }
  });
});

describe('web: roles, CSRF, headers', () => {
  const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
  const FORM = 'application/x-www-form-urlencoded';

  it('an auditor POSTing an admin action → 403, recorded as admin.forbidden, nothing changed', async () => {
    const auditor = t.session('auditor');
    const target = t.session('auditor');
    for (const url of ['/accounts/disable', '/accounts/add']) {
      const r = await t.inject({ method: 'POST', url, payload: form({ _csrf: auditor.csrf, name: target.username, username: 'x', role: 'admin' }), headers: { ...auditor.headers, 'content-type': FORM } });
      expect(r.statusCode, url).toBe(403);
      expect(r.headers['content-type']).toMatch(/^text\/html/);
      expectSecurityHeaders(r.headers);
    }
    const events = t.ctx.db.prepare("SELECT count(*) AS n FROM events WHERE type = 'admin.forbidden' AND user = ?").get(auditor.username) as { n: number };
    expect(events.n).toBe(2);
    const disabled = t.ctx.db.prepare('SELECT disabled FROM console_users WHERE username = ?').get(target.username) as { disabled: number };
    expect(disabled.disabled).toBe(0);
  });

  it('an admin with the right token and origin is served (303)', async () => {
    const admin = t.session('admin');
    const target = t.session('auditor');
    const r = await t.inject({ method: 'POST', url: '/accounts/disable', payload: form({ _csrf: admin.csrf, name: target.username }), headers: { ...admin.headers, 'content-type': FORM } });
    expect(r.statusCode).toBe(303);
    expectSecurityHeaders(r.headers);
  });

  it.each([
    ['no token', () => ({ body: form({ name: 'x' }), headers: {} as Record<string, string> })],
    ['wrong token', () => ({ body: form({ _csrf: 'A'.repeat(32), name: 'x' }), headers: {} })],
    ['empty token', () => ({ body: form({ _csrf: '', name: 'x' }), headers: {} })],
    ['token twice, second right', (csrf: string) => ({ body: `_csrf=wrong&_csrf=${csrf}&name=x`, headers: {} })],
    ['cross-origin Origin', (csrf: string) => ({ body: form({ _csrf: csrf, name: 'x' }), headers: { origin: 'https://attacker.example' } })],
    ['Origin null', (csrf: string) => ({ body: form({ _csrf: csrf, name: 'x' }), headers: { origin: 'null' } })],
    ['http Origin', (csrf: string) => ({ body: form({ _csrf: csrf, name: 'x' }), headers: { origin: 'http://localhost' } })],
    ['cross-origin Referer, no Origin', (csrf: string) => ({ body: form({ _csrf: csrf, name: 'x' }), headers: { origin: '', referer: 'https://attacker.example/x' } })],
  ] as [string, (csrf: string) => { body: string; headers: Record<string, string> }][])('%s → 403', async (_n, make) => {
    const admin = t.session('admin');
    const target = t.session('auditor');
    const { body, headers } = make(admin.csrf);
    const h: Record<string, string> = { ...admin.headers, 'content-type': FORM, ...headers };
    if (h.origin === '') delete h.origin;
    const r = await t.inject({ method: 'POST', url: '/accounts/disable', payload: body.replace('name=x', `name=${target.username}`), headers: h });
    expect(r.statusCode).toBe(403);
    expectSecurityHeaders(r.headers);
    const disabled = t.ctx.db.prepare('SELECT disabled FROM console_users WHERE username = ?').get(target.username) as { disabled: number };
    expect(disabled.disabled).toBe(0);
  });

  it('a POST without a session is sent to the login page; a GET page too; both with the security headers', async () => {
    const post = await t.inject({ method: 'POST', url: '/accounts/disable', payload: form({ _csrf: 'x', name: 'admin' }), headers: { origin: 'https://localhost', 'content-type': FORM } });
    expect(post.statusCode).toBe(303);
    expect(post.headers.location).toMatch(/^\/login/);
    const get = await t.inject({ method: 'GET', url: '/events' });
    expect(get.statusCode).toBe(303);
    expectSecurityHeaders(get.headers);
  });

  it('the login page is served with the strict CSP and sets its pre-login cookie', async () => {
    const r = await t.inject({ method: 'GET', url: '/login' });
    expect(r.statusCode).toBe(200);
    expectSecurityHeaders(r.headers);
    expect(String(r.headers['set-cookie'])).toMatch(/__Host-sekimori_login=.*Secure; HttpOnly; SameSite=Strict/);
  });
});

describe('handlers: errors, bodies and headers through the layer', () => {
  let h: TestApp;
  beforeAll(async () => {
    h = await buildTestApp({
      routes: [
        { method: 'GET', path: '/test/throws', auth: 'none', handle: () => { throw new TypeError('secret detail'); } },
        { method: 'GET', path: '/test/rejects', auth: 'none', handle: async () => Promise.reject(new Error('secret detail')) },
        { method: 'GET', path: '/test/refuses', auth: 'none', handle: () => { throw new HttpError(409, 'conflict', 'already there', ['a'], { 'retry-after': '5' }); } },
        { method: 'POST', path: /^\/test\/small\/(\w+)$/, auth: 'none', maxBody: 10, handle: (r) => ({ status: 200, json: { got: r.body.toString(), param: r.params[0] } }) },
        { method: 'POST', path: '/test/echo', auth: 'none', handle: (r) => ({ status: 201, body: r.body, headers: { 'content-type': 'application/octet-stream', 'set-cookie': ['a=1; Secure', 'b=2; Secure'] } }) },
      ],
    });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
  });

  it.each(['/test/throws', '/test/rejects'])('%s → 500 internal, the cause only in the log', async (url) => {
    const before = h.logs.length;
    const r = await h.inject({ method: 'GET', url });
    expect(r.statusCode).toBe(500);
    expect(json(r.body)).toEqual({ error: 'internal', message: 'internal error' });
    expect(r.body).not.toContain('secret');
    expect(h.logs.length).toBe(before + 1);
    expect(h.logs.at(-1)).toContain('secret detail');
  });

  it('an HttpError keeps its status, code, details and headers', async () => {
    const r = await h.inject({ method: 'GET', url: '/test/refuses' });
    expect(r.statusCode).toBe(409);
    expect(json(r.body)).toEqual({ error: 'conflict', message: 'already there', details: ['a'] });
    expect(r.headers['retry-after']).toBe('5');
  });

  it.each([
    ['within the limit', 'abc', 200],
    ['exactly the limit', '0123456789', 200],
    ['one byte over', '0123456789x', 413],
  ])('a RegExp route keeps its own body limit: %s → %i', async (_n, payload, status) => {
    const r = await h.inject({ method: 'POST', url: '/test/small/p1', payload, headers: { 'content-type': 'application/whatever' } });
    expect(r.statusCode).toBe(status);
    if (status === 200) expect(json(r.body)).toEqual({ got: payload, param: 'p1' });
  });

  it('bodies of any media type, or none, reach the route raw; Set-Cookie lists stay lists', async () => {
    const raw = Buffer.from([0, 1, 2, 0xff]);
    for (const headers of [{ 'content-type': 'application/octet-stream' }, {}, { 'content-type': 'multipart/form-data; boundary=x' }]) {
      const r = await h.inject({ method: 'POST', url: '/test/echo', payload: raw, headers });
      expect(r.statusCode).toBe(201);
      expect(r.rawPayload.equals(raw)).toBe(true);
      expect(r.headers['set-cookie']).toEqual(['a=1; Secure', 'b=2; Secure']);
    }
    expect((await h.inject({ method: 'POST', url: '/test/echo' })).statusCode).toBe(201);
  });

  it.each(['/%', '/%zz', '/test/small/%E0%A4%A'])('a malformed request target (%s) is a refusal in the JSON shape', async (url) => {
    const r = await h.inject({ method: 'POST', url, payload: 'x', headers: { 'content-type': 'text/plain' } });
    expect([400, 404]).toContain(r.statusCode);
    expect(json(r.body)).toMatchObject({ error: expect.any(String) });
  });
});

describe('validate port', () => {
  let v: TestApp;
  beforeAll(async () => {
    v = await buildTestApp({ kind: 'validate' });
  }, 60_000);
  afterAll(async () => {
    await v?.close();
  });

  it.each([
    ['an agent route', 'GET', '/api/agent/ca', 404, 601],
    ['a web page', 'GET', '/login', 404, 601],
    ['unknown', 'POST', '/validate/nothing', 404, 601],
    ['wrong method', 'GET', '/validate/check', 405, 905],
  ] as const)('%s (%s %s) → %i in privacyIDEA shape, code %i', async (_n, method, url, status, code) => {
    const r = await v.inject({ method, url });
    expect(r.statusCode).toBe(status);
    expect(json(r.body)).toMatchObject({ result: { status: false, error: { code } } });
  });

  it('Host refused → 421 in privacyIDEA shape', async () => {
    const r = await v.inject({ method: 'POST', url: '/validate/check', headers: { host: 'attacker.example', 'content-type': 'application/x-www-form-urlencoded' }, payload: 'user=a&pass=1' });
    expect(r.statusCode).toBe(421);
    expect(json(r.body)).toMatchObject({ result: { status: false, error: { code: 905 } } });
  });

  it('oversized body → 413 in privacyIDEA shape', async () => {
    const r = await v.inject({ method: 'POST', url: '/validate/check', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'user=' + 'a'.repeat(8 * 1024) });
    expect(r.statusCode).toBe(413);
    expect(json(r.body)).toMatchObject({ result: { status: false, error: { code: 905 } } });
  });
});
