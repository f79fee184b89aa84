/**
 * The unlock socket's pure parts: whose code may be verified (the kernel-named caller only), the
 * per-uid attempt budget, the folding of refusal events, and the parsing of what the peer-credential
 * helper prints — table-driven, hostile input included. The built helper runs here on a real
 * connection from this process and on a non-socket; connections from another uid are the PAM
 * tier's (test/e2e/pam/unlock.test.ts).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { LocalPeer } from '../../agent/capability.js';
import { findPeercredHelper, parsePeerLine, prepareUnlockDir, unlockSocketPath } from '../../agent/local-api.js';
import { EventFold, RateLimiter, unlockGate } from '../../agent/mfa/unlock.js';
import { ROOT } from '../integration/harness.js';

const peer = (uid: number | null, user: string | null | undefined, pid: number | null = 1234): LocalPeer => ({ uid, pid, user });

describe('unlockGate: only the caller’s own account', () => {
  it.each<[string, LocalPeer, unknown, ReturnType<typeof unlockGate>]>([
    ['own account', peer(1001, 'tanaka'), 'tanaka', { ok: true, user: 'tanaka', uid: 1001 }],
    ['root for root', peer(0, 'root'), 'root', { ok: true, user: 'root', uid: 0 }],
    ['another account', peer(1001, 'tanaka'), 'suzuki', { ok: false, reason: 'other_user', uid: 1001 }],
    ['root asking for someone (use the root socket)', peer(0, 'root'), 'tanaka', { ok: false, reason: 'other_user', uid: 0 }],
    ['case differs', peer(1001, 'tanaka'), 'Tanaka', { ok: false, reason: 'other_user', uid: 1001 }],
    ['domain-style alias', peer(1001, 'tanaka'), 'tanaka@city.local', { ok: false, reason: 'other_user', uid: 1001 }],
    ['no peer (root socket shape)', peer(null, null, null), 'tanaka', { ok: false, reason: 'no_peer', uid: null }],
    ['negative uid', peer(-1, 'tanaka'), 'tanaka', { ok: false, reason: 'no_peer', uid: null }],
    ['fractional uid', peer(1.5, 'tanaka'), 'tanaka', { ok: false, reason: 'no_peer', uid: null }],
    ['uid without account', peer(4242, null), 'tanaka', { ok: false, reason: 'no_account', uid: 4242 }],
    ['account name missing', peer(4242, undefined), 'tanaka', { ok: false, reason: 'no_account', uid: 4242 }],
    ['account name unusable', peer(4242, 'a b'), 'a b', { ok: false, reason: 'no_account', uid: 4242 }],
    ['requested not a string', peer(1001, 'tanaka'), ['tanaka'], { ok: false, reason: 'invalid_user', uid: 1001 }],
    ['requested empty', peer(1001, 'tanaka'), '', { ok: false, reason: 'invalid_user', uid: 1001 }],
    ['requested with injection', peer(1001, 'tanaka'), 'tanaka"},{"user":"root', { ok: false, reason: 'invalid_user', uid: 1001 }],
    ['requested "..', peer(1001, '..'), '..', { ok: false, reason: 'no_account', uid: 1001 }],
    ['requested overlong', peer(1001, 'tanaka'), 'x'.repeat(65), { ok: false, reason: 'invalid_user', uid: 1001 }],
  ])('%s', (_name, p, requested, want) => {
    expect(unlockGate(p, requested)).toEqual(want);
  });
});

describe('RateLimiter: per-uid attempt budget', () => {
  const o = { burst: 5, refillMs: 12_000, maxKeys: 3 };

  it('allows the burst, then one per refill period', () => {
    const r = new RateLimiter<number>(o);
    const t0 = 1_000_000;
    expect(Array.from({ length: 7 }, () => r.take(1, t0))).toEqual([true, true, true, true, true, false, false]);
    expect(r.take(1, t0 + 11_999)).toBe(false);
    expect(r.take(1, t0 + 12_000)).toBe(true);
    expect(r.take(1, t0 + 12_001)).toBe(false);
    // Refilled completely after burst × period, never above the burst.
    const later = t0 + 12_000 + 10 * 12_000;
    expect(Array.from({ length: 6 }, () => r.take(1, later))).toEqual([true, true, true, true, true, false]);
  });

  it('keeps each uid apart', () => {
    const r = new RateLimiter<number>(o);
    for (let i = 0; i < 5; i++) r.take(1000, 0);
    expect(r.take(1000, 0)).toBe(false);
    expect(r.take(1001, 0)).toBe(true);
  });

  it('a clock going backwards refills nothing', () => {
    const r = new RateLimiter<number>(o);
    for (let i = 0; i < 5; i++) r.take(7, 100_000);
    expect(r.take(7, 0)).toBe(false);
    expect(r.take(7, 99_999)).toBe(false);
    // And the bucket's time did not move back either: refill counts from the latest time seen.
    expect(r.take(7, 100_000 + 12_000)).toBe(true);
  });

  it('stays bounded: full buckets are forgotten first, then the least recently used', () => {
    const r = new RateLimiter<number>(o);
    r.take(1, 0); // owes little
    for (let i = 0; i < 5; i++) r.take(2, 0); // empty
    r.take(3, 0);
    r.take(4, 1_000_000); // 1 and 3 are full again by now: they go first
    expect(r.size()).toBeLessThanOrEqual(3);
    expect(r.take(2, 1_000)).toBe(false); // the empty bucket was kept
    for (let k = 10; k < 100; k++) r.take(k, 2_000_000);
    expect(r.size()).toBeLessThanOrEqual(3);
  });
});

describe('EventFold: one recorded refusal per key and minute', () => {
  it('folds repeats within the window and reports their count with the next one', () => {
    const f = new EventFold(60_000);
    expect(f.record('1001:other_user', 0)).toEqual({ folded: 0 });
    expect(f.record('1001:other_user', 1)).toBeNull();
    expect(f.record('1001:other_user', 59_999)).toBeNull();
    expect(f.record('1001:rate_limited', 10)).toEqual({ folded: 0 }); // another reason is another key
    expect(f.record('1002:other_user', 10)).toEqual({ folded: 0 });
    expect(f.record('1001:other_user', 60_000)).toEqual({ folded: 2 });
    expect(f.record('1001:other_user', 60_001)).toBeNull();
  });

  it('a clock going backwards starts a new window instead of folding forever', () => {
    const f = new EventFold(60_000);
    expect(f.record('k', 1_000_000)).toEqual({ folded: 0 });
    expect(f.record('k', 5)).toEqual({ folded: 0 });
  });

  it('stays bounded', () => {
    const f = new EventFold(60_000, 10);
    for (let i = 0; i < 1000; i++) f.record(`k${i}`, 0);
    // The oldest keys were forgotten: recording them again is recorded, not folded.
    expect(f.record('k0', 1)).toEqual({ folded: 0 });
  });
});

describe('parsePeerLine: what the helper prints, and nothing else', () => {
  it.each<[string, string, LocalPeer | null]>([
    ['user', '1001 4242 1001 tanaka\n', { uid: 1001, pid: 4242, user: 'tanaka' }],
    ['root', '0 1 0 root\n', { uid: 0, pid: 1, user: 'root' }],
    ['no account', '4242 77 4242 -\n', { uid: 4242, pid: 77, user: null }],
    ['domain account', '1500001 9 1500001 tanaka@city.local\n', { uid: 1500001, pid: 9, user: 'tanaka@city.local' }],
    ['no newline', '1001 4242 1001 tanaka', null],
    ['two lines', '1001 4242 1001 tanaka\n0 1 0 root\n', null],
    ['negative uid', '-1 4242 1001 tanaka\n', null],
    ['pid 0 (other pid namespace)', '1001 0 1001 tanaka\n', null],
    ['uid (uid_t)-1', '4294967295 5 5 nobody\n', null],
    ['11-digit uid', '10000000000 5 5 x\n', null],
    ['space in name', '1001 4242 1001 tan aka\n', null],
    ['quote in name', '1001 4242 1001 tanaka"\n', null],
    ['overlong name', `1001 4242 1001 ${'a'.repeat(65)}\n`, null],
    ['empty', '', null],
    ['garbage', 'Segmentation fault\n', null],
  ])('%s', (_name, text, want) => {
    expect(parsePeerLine(text)).toEqual(want);
  });
});

describe('unlock socket placement and the helper', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sekimori-unlock-unit-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('$SEKIMORI_UNLOCK_SOCKET when absolute, else next to agent.sock', () => {
    expect(unlockSocketPath('/var/lib/sekimori-agent/agent.sock', { SEKIMORI_UNLOCK_SOCKET: '/run/sekimori-agent/unlock.sock' })).toBe('/run/sekimori-agent/unlock.sock');
    expect(unlockSocketPath('/var/lib/sekimori-agent/agent.sock', { SEKIMORI_UNLOCK_SOCKET: 'relative.sock' })).toBe('/var/lib/sekimori-agent/unlock.sock');
    expect(unlockSocketPath('/var/lib/sekimori-agent/agent.sock', {})).toBe('/var/lib/sekimori-agent/unlock.sock');
  });

  it('refuses a folder others can write (they could replace the socket or plant a marker)', () => {
    const open = join(dir, 'open');
    const fresh = join(dir, 'fresh', 'run');
    expect(prepareUnlockDir(fresh)).toBeNull(); // made 0755
    expect(existsSync(fresh)).toBe(true);
    expect(prepareUnlockDir(open)).toBeNull();
    chmodSync(open, 0o777);
    expect(prepareUnlockDir(open)).toMatch(/writable by group or others/);
    chmodSync(open, 0o1777); // sticky /tmp-like folders too
    expect(prepareUnlockDir(open)).toMatch(/writable by group or others/);
    writeFileSync(join(dir, 'file'), '');
    expect(prepareUnlockDir(join(dir, 'file'))).not.toBeNull();
  });

  it('finds the helper only when only root can change it', () => {
    const h = join(dir, 'helper');
    writeFileSync(h, '#!/bin/sh\n', { mode: 0o755 });
    expect(findPeercredHelper([join(dir, 'absent'), h])).toEqual({ path: h });
    chmodSync(h, 0o775);
    expect(findPeercredHelper([h])).toHaveProperty('problem');
    chmodSync(h, 0o644);
    expect(findPeercredHelper([h])).toHaveProperty('problem');
    expect(findPeercredHelper([join(dir, 'absent')])).toHaveProperty('problem');
  });

  const HELPER = join(ROOT, 'dist/pam/sekimori-peercred');
  it.skipIf(!existsSync(HELPER))('the built helper names the connecting process (this one) and refuses a non-socket', async () => {
    const sock = join(dir, 's.sock');
    const seen = new Promise<{ code: number | null; out: string }>((resolve) => {
      const server = createServer((s) => {
        const p = spawn(HELPER, [], { stdio: [s, 'pipe', 'ignore'], env: {}, timeout: 10_000 });
        let out = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.on('close', (code) => {
          s.destroy();
          server.close();
          resolve({ code, out });
        });
      });
      server.listen(sock, () => connect(sock).on('error', () => {}));
    });
    const { code, out } = await seen;
    expect(code).toBe(0);
    const uid = process.getuid?.() ?? -1;
    expect(parsePeerLine(out)).toMatchObject({ uid, pid: process.pid });
    const notSock = spawnSync(HELPER, [], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 10_000 });
    expect(notSock.status).toBe(2);
    expect(notSock.stdout).toBe('');
  });
});
