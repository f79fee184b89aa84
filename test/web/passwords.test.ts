/**
 * Issue 10 item 5: console password hashing runs on libuv's thread pool, not on the event loop,
 * and hashes stored by the earlier synchronous code still verify. Counted, not timed: while
 * hashes are checked, the event loop keeps turning (a synchronous scrypt lets it turn 0 times).
 */
import { randomBytes, scryptSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hashPassword, verifyPassword } from '../../console/core/passwords.js';

/** What the synchronous implementation stored (same format, same parameters). */
function oldStyleHash(password: string): string {
  const salt = randomBytes(16);
  const hash = scryptSync(password, salt, 32, { N: 16384, r: 8, p: 1 });
  return `scrypt$16384$8$1$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Counts event-loop turns (setImmediate) while `work` runs. */
async function loopTurnsDuring<T>(work: () => Promise<T> | T): Promise<{ turns: number; result: T }> {
  let turns = 0;
  let running = true;
  const spin = () => {
    if (!running) return;
    turns++;
    setImmediate(spin);
  };
  setImmediate(spin);
  try {
    const result = await work();
    return { turns, result };
  } finally {
    running = false;
  }
}

describe('console passwords', () => {
  it('hashes stored by the synchronous code still verify; wrong passwords and malformed hashes do not', async () => {
    const stored = oldStyleHash('correct horse battery');
    expect(await verifyPassword('correct horse battery', stored)).toBe(true);
    expect(await verifyPassword('correct horse batterY', stored)).toBe(false);
    const fresh = await hashPassword('新しいパスワード-123');
    expect(fresh).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}$/);
    expect(await verifyPassword('新しいパスワード-123', fresh)).toBe(true);
    for (const bad of ['', 'plain', 'scrypt$16384$8$1$x', 'scrypt$abc$8$1$AAAA$AAAA', 'scrypt$16385$8$1$AAAAAAAAAAAAAAAAAAAAAA==$' + 'A'.repeat(44), `scrypt$${2 ** 30}$8$1$AAAAAAAAAAAAAAAAAAAAAA==$${'A'.repeat(44)}`, 'bcrypt$x$y$z$a$b']) {
      expect(await verifyPassword('x', bad)).toBe(false);
    }
  });

  it('checking passwords leaves the event loop free: it keeps turning while 4 hashes are checked and 2 made', async () => {
    const stored = oldStyleHash('pw');
    const n = 4;
    const { turns, result } = await loopTurnsDuring(() => Promise.all([...Array.from({ length: n }, (_, i) => verifyPassword(i % 2 ? 'pw' : 'wrong', stored)), hashPassword('a'), hashPassword('b')]));
    expect(result.slice(0, n)).toEqual([false, true, false, true]);
    // Synchronous scrypt: 0 turns (the loop is blocked until every hash is done).
    expect(turns).toBeGreaterThanOrEqual(n + 2);
  });
});
