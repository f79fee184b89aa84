/**
 * /api/agent/mfa/verify and /reconcile bodies are judged by their wire schemas (protocol/mfa/wire.ts,
 * one rule with the other agent bodies: 400 naming the path); a well-typed but hostile name or code
 * is for decide() to reject and count, never a 400. Routes are called in-process.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initConsole, openConsole, type OpenConsole } from '../../console/core/context.js';
import { mfaRoutes } from '../../console/mfa/api.js';
import type { ApiRequest, ApiResponse, Route } from '../../console/module.js';

let dir = '';
let ctx: OpenConsole;
let routes: Route[];
const terminal = randomUUID();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sekimori-mfa-body-'));
  await initConsole(join(dir, 'data'), { sans: [], organisation: 'テスト市' });
  ctx = openConsole(join(dir, 'data'));
  routes = mfaRoutes(ctx);
}, 60_000);

afterAll(() => {
  ctx?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function call(path: string, body: unknown): Promise<ApiResponse | { status: number; error: string; message: string }> {
  const route = routes.find((r) => r.path === path)!;
  const req = { method: 'POST', path, agentId: terminal, json: () => body, params: [], remoteAddress: '127.0.0.1' } as unknown as ApiRequest;
  try {
    return await route.handle(req);
  } catch (e) {
    const h = e as { status: number; code: string; message: string };
    return { status: h.status, error: h.code, message: h.message };
  }
}

describe('verify body', () => {
  it.each([
    ['not an object', 'user=tanaka&code=123456', 'body'],
    ['an array', [{ user: 'tanaka', code: '123456' }], 'body'],
    ['null', null, 'body'],
    ['user a number', { user: 1, code: '123456' }, 'body.user'],
    ['code a number', { user: 'tanaka', code: 123456 }, 'body.code'],
    ['code an object', { user: 'tanaka', code: { toString: '123456' } }, 'body.code'],
    ['code missing', { user: 'tanaka' }, 'body.code'],
    ['an extra member', { user: 'tanaka', code: '123456', admin: true }, 'body'],
    ['a code of 257 characters', { user: 'tanaka', code: '1'.repeat(257) }, 'body.code'],
  ])('%s → 400 naming %s', async (_n, body, where) => {
    const r = await call('/api/agent/mfa/verify', body);
    expect(r).toMatchObject({ status: 400, error: 'invalid_request' });
    expect((r as { message: string }).message).toContain(where);
  });
  it.each([
    ['an unknown user', { user: 'nobody', code: '123456' }, 'not_enrolled'],
    ['a name with control characters', { user: 'a\u0000\u001b', code: '123456' }, 'invalid_user'],
    ['a name of 256 characters', { user: 'a'.repeat(256), code: '123456' }, 'invalid_user'],
    ['SQL as the name', { user: "' OR 1=1 --", code: '123456' }, 'invalid_user'],
  ])('%s → 200, rejected by the decision', async (_n, body, reason) => {
    expect(await call('/api/agent/mfa/verify', body)).toMatchObject({ status: 200, json: { result: 'reject', reason } });
  });
});

describe('reconcile body', () => {
  it.each([
    ['no entries', {}],
    ['entries not an array', { entries: 'x' }],
    ['10 001 entries', { entries: new Array(10_001).fill(null) }],
    ['an extra member', { entries: [], more: 1 }],
  ])('%s → 400', async (_n, body) => {
    expect(await call('/api/agent/mfa/reconcile', body)).toMatchObject({ status: 400, error: 'invalid_request' });
  });
  it('malformed entries are refused one by one in a 200 answer', async () => {
    const at = new Date().toISOString();
    const r = await call('/api/agent/mfa/reconcile', { entries: [null, { user: 'x', kind: 'step', step: 1, at, extra: 1 }, { user: 'x', kind: 'failure', at: 'never' }] });
    expect(r).toMatchObject({ status: 200, json: { applied: 0, refused: [0, 1, 2].map((index) => ({ index, reason: 'malformed' })) } });
  });
});
