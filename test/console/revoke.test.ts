/**
 * Revocation is one function with one event (issue 11): the CLI (`sekimori-console revoke`) and the
 * web terminals page both write `admin.terminal_revoked` (who, before, after); the CLI used to write
 * `agent.revoked` with neither before nor after. Hostile or stale ids change nothing and record nothing.
 * Only entry points that existed before the change are used, so this test fails on the old code.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../console/cli.js';
import { initConsole, openConsole, type OpenConsole } from '../../console/core/context.js';
import { HttpError } from '../../console/module.js';
import { terminalRoutes } from '../../console/web/pages/terminals.js';
import type { WebReq } from '../../console/web/web.js';

let dir = '';
let data = '';
let ctx: OpenConsole;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sekimori-revoke-'));
  data = join(dir, 'data');
  await initConsole(data, { sans: [], organisation: 'テスト市' });
  ctx = openConsole(data);
}, 60_000);

afterAll(() => {
  ctx?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function enrolled(status = 'online'): string {
  const id = randomUUID();
  ctx.db
    .prepare('INSERT INTO agents (id, hostname, cert_fingerprint, enrolled_at, last_seen, status) VALUES (?, ?, ?, ?, ?, ?)')
    .run(id, 'pc-' + id.slice(0, 4), 'fp', new Date().toISOString(), new Date().toISOString(), status);
  return id;
}

const revokeEvents = () =>
  ctx.db.prepare("SELECT type, user, terminal_id AS terminalId, data FROM events WHERE type IN ('admin.terminal_revoked', 'agent.revoked') ORDER BY rid").all() as {
    type: string;
    user: string;
    terminalId: string;
    data: string;
  }[];
const statusOf = (id: string) => ctx.db.prepare('SELECT status, revoked_at AS revokedAt FROM agents WHERE id = ?').get(id) as { status: string; revokedAt: string | null } | undefined;

async function cliRevoke(id: string): Promise<number> {
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    return await main(['revoke', '--data', data, id]);
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

const revokeRoute = terminalRoutes.find((r) => r.method === 'POST' && String(r.path).includes('revoke'))!;
async function webRevoke(id: string, actor: string) {
  const m = (revokeRoute.path as RegExp).exec(`/terminals/${id}/revoke`);
  if (!m) throw new HttpError(404, 'not_found', 'no route');
  const r = { ctx, lang: 'ja', session: { username: actor, role: 'admin', csrf: 'x' }, api: { params: m.slice(1) } } as unknown as WebReq;
  return revokeRoute.handle(r);
}

describe('one revocation, one event', () => {
  it.each([
    ['the CLI', async (id: string) => expect(await cliRevoke(id)).toBe(0), 'cli'],
    ['the web terminals page', async (id: string) => expect((await webRevoke(id, 'yamada')).status).toBe(303), 'yamada'],
  ] as const)('%s revokes with admin.terminal_revoked (who, before, after)', async (_n, revoke, actor) => {
    const id = enrolled();
    const before = revokeEvents().length;
    await revoke(id);
    expect(statusOf(id)).toMatchObject({ status: 'revoked' });
    expect(statusOf(id)!.revokedAt).not.toBeNull();
    const written = revokeEvents().slice(before);
    expect(written.map((e) => ({ ...e, data: JSON.parse(e.data) }))).toEqual([
      { type: 'admin.terminal_revoked', user: actor, terminalId: id, data: { agentId: id, before: { status: 'online' }, after: { status: 'revoked' } } },
    ]);
  });

  it('a silent terminal keeps its status in "before"', async () => {
    const id = enrolled('silent');
    expect(await cliRevoke(id)).toBe(0);
    expect(JSON.parse(revokeEvents().at(-1)!.data)).toMatchObject({ before: { status: 'silent' } });
  });

  it.each([
    ['an unknown id', () => randomUUID()],
    ['an already revoked terminal', () => enrolled('revoked')],
    ['an empty id', () => ''],
    ['SQL in the id', () => "' OR 1=1 --"],
    ['a very long id', () => 'a'.repeat(100_000)],
    ['control characters', () => '\u0000\u001b[31m\u202e'],
  ])('%s: nothing changes, nothing is recorded (CLI exit ≠ 0, page 404)', async (_n, make) => {
    const id = make();
    const online = enrolled();
    const before = revokeEvents().length;
    expect(await cliRevoke(id)).not.toBe(0);
    await expect(webRevoke(id, 'yamada')).rejects.toMatchObject({ status: 404 });
    expect(revokeEvents().length).toBe(before);
    expect(statusOf(online)).toMatchObject({ status: 'online' }); // nothing else was touched
  });
});
