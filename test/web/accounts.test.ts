/**
 * Issue 10 items 10 and 11 at the function level, on a real console data folder: the
 * current-password check is limited per session, a session ended for guessing stays ended for
 * requests already in flight, and a password change ends the account's other sessions.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initConsole, openConsole, type OpenConsole } from '../../console/core/context.js';
import { verifyPassword } from '../../console/core/passwords.js';
import { addAccount, changePassword, createSession, getAccount, LOGIN_LIMITS, loadSession } from '../../console/web/auth.js';

let dir = '';
let ctx: OpenConsole;
const PW = 'the-right-password-1';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sekimori-accounts-'));
  await initConsole(join(dir, 'data'), { sans: [], organisation: 'テスト市' });
  ctx = openConsole(join(dir, 'data'));
  await addAccount(ctx, 'sato', 'auditor', 'test', { password: PW, secret: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP' });
}, 60_000);

afterAll(() => {
  ctx?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const events = (type: string) => (ctx.db.prepare('SELECT count(*) AS n FROM events WHERE type = ?').get(type) as { n: number }).n;
const stillPw = async () => verifyPassword(PW, getAccount(ctx.db, 'sato')!.row.password_hash);

describe('own password change', () => {
  it('item 10: after the allowed wrong guesses the session is ended, and even the right password no longer works from it', async () => {
    const s = createSession(ctx.db, 'sato');
    const max = LOGIN_LIMITS.passwordChangeFailures;
    const results = [];
    for (let i = 0; i < max; i++) results.push(await changePassword(ctx, 'sato', s.token, `guess-${i}`, 'a-new-password-123'));
    expect(results.map((r) => r.result)).toEqual([...Array<string>(max - 1).fill('wrong'), 'ended']);
    expect(results[0]).toEqual({ result: 'wrong', left: max - 1 });
    expect(loadSession(ctx.db, s.token)).toBeNull();
    // A request of that session already past the session check (in flight) must not start a new count.
    expect(await changePassword(ctx, 'sato', s.token, PW, 'a-new-password-123')).toEqual({ result: 'ended' });
    expect(await stillPw()).toBe(true);
    expect(events('admin.password_change_failed')).toBe(max);
    expect(events('admin.session_ended')).toBe(1);
  });

  it('item 10: parallel guesses from one session are counted before they are checked', async () => {
    const s = createSession(ctx.db, 'sato');
    const before = events('admin.password_change_failed');
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => changePassword(ctx, 'sato', s.token, `p-${i}`, 'a-new-password-123')));
    expect(events('admin.password_change_failed') - before).toBeLessThanOrEqual(LOGIN_LIMITS.passwordChangeFailures);
    expect(results.every((r) => r.result !== 'ok')).toBe(true);
    expect(await stillPw()).toBe(true);
  });

  it('item 11: a change ends every other session of the account and keeps the one that made it', async () => {
    ctx.db.prepare('DELETE FROM web_sessions').run(); // sessions of the tests above are not part of this one
    const mine = createSession(ctx.db, 'sato');
    const others = [createSession(ctx.db, 'sato'), createSession(ctx.db, 'sato')];
    expect(await changePassword(ctx, 'sato', mine.token, PW, 'a-new-password-123')).toEqual({ result: 'ok', sessionsEnded: 2 });
    expect(loadSession(ctx.db, mine.token)).not.toBeNull();
    for (const o of others) expect(loadSession(ctx.db, o.token)).toBeNull();
    expect(await verifyPassword('a-new-password-123', getAccount(ctx.db, 'sato')!.row.password_hash)).toBe(true);
  });
});
