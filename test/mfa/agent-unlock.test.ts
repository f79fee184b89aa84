/**
 * The MFA capability's unlock route, in process with a recording context: what reaches the
 * verifier (the console) and what is recorded, for the caller's own account, another account, an
 * unidentified caller, and a burst. The kernel side (SO_PEERCRED through the helper, real PAM as an
 * unprivileged user) is the PAM tier's (test/e2e/pam/unlock.test.ts).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentContext, ConsoleReply, LocalHandler, LocalPeer, NewEvent } from '../../agent/capability.js';
import { MfaCapability } from '../../agent/mfa/index.js';
import { builtinPolicy, type PolicyDocument } from '../../protocol/policy.js';

interface Rig {
  cap: MfaCapability;
  unlock: (peer: LocalPeer, body: unknown) => Promise<ConsoleReply>;
  emitted: NewEvent[];
  asked: unknown[];
  dir: string;
}

const dirs: string[] = [];
const caps: MfaCapability[] = [];
afterEach(async () => {
  for (const c of caps.splice(0)) await c.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function rig(policy: PolicyDocument = builtinPolicy()): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'sekimori-mfa-unlock-'));
  dirs.push(dir);
  const emitted: NewEvent[] = [];
  const asked: unknown[] = [];
  const userRoutes = new Map<string, LocalHandler>();
  const ctx: AgentContext = {
    agentId: 'agent-under-test',
    stateDir: dir,
    monitorOnly: false,
    emit: (e) => {
      emitted.push(e);
      return {} as ReturnType<AgentContext['emit']>;
    },
    log: () => undefined,
    console: {
      request: (_method, path, body) => {
        if (path === '/api/agent/mfa/verify') {
          asked.push(body);
          return Promise.resolve({ status: 200, body: { result: 'reject', reason: 'wrong_code' } });
        }
        return Promise.reject(new Error('not in this test'));
      },
      consoleNow: () => new Date(),
      reachable: () => true,
    },
    local: {
      route: () => undefined,
      userRoute: (m, p, h) => userRoutes.set(`${m} ${p}`, h),
      socketPath: join(dir, 'agent.sock'),
      unlockSocketPath: join(dir, 'run', 'unlock.sock'),
    },
  };
  const cap = new MfaCapability();
  caps.push(cap);
  await cap.start(ctx, policy);
  const h = userRoutes.get('POST /mfa/verify');
  if (!h) throw new Error('no unlock route registered');
  return { cap, unlock: async (peer, body) => h({ peer, body }), emitted, asked, dir };
}

const own: LocalPeer = { uid: 1001, pid: 4242, user: 'tanaka' };
const result = (r: ConsoleReply) => r.body as { result: string; reason: string; message: string };

describe('MFA unlock route', () => {
  it('verifies the caller’s own account like a login, marked as an unlock', async () => {
    const r = await rig();
    const a = await r.unlock(own, { user: 'tanaka', code: '123456', service: 'xscreensaver' });
    expect(result(a)).toMatchObject({ result: 'reject', reason: 'wrong_code' });
    expect(r.asked).toEqual([{ user: 'tanaka', code: '123456' }]);
    expect(r.emitted).toHaveLength(1);
    expect(r.emitted[0]).toMatchObject({ type: 'mfa.failure', user: 'tanaka', data: { via: 'unlock', peerUid: '1001', service: 'xscreensaver', reason: 'wrong_code' } });
  });

  it.each<[string, LocalPeer, unknown, string, string]>([
    ['another account', own, { user: 'suzuki', code: '123456' }, 'other_user', 'not_own_account'],
    ['root asking here for someone', { uid: 0, pid: 1, user: 'root' }, { user: 'tanaka', code: '123456' }, 'other_user', 'not_own_account'],
    ['a uid without account', { uid: 4242, pid: 5, user: null }, { user: 'tanaka', code: '123456' }, 'no_account', 'not_own_account'],
    ['no caller identity', { uid: null, pid: null }, { user: 'tanaka', code: '123456' }, 'no_peer', 'error'],
    ['a hostile user field', own, { user: 'tanaka"},{"x":"', code: '1' }, 'invalid_user', 'invalid_user'],
    ['no body', own, null, 'invalid_user', 'invalid_user'],
  ])('refuses %s without asking the verifier, and records it', async (_name, peer, body, reason, answer) => {
    const r = await rig();
    const a = await r.unlock(peer, body);
    expect(result(a)).toMatchObject({ result: 'reject', reason: answer });
    expect(result(a).message).toMatch(/[ぁ-んァ-ン一-龯].* \/ [a-z]/); // Japanese first, then English
    expect(r.asked).toEqual([]);
    expect(r.emitted).toHaveLength(1);
    expect(r.emitted[0]).toMatchObject({ type: 'mfa.unlock_refused', data: { terminal: 'agent-under-test', reason, peerUid: peer.uid } });
    // Never a failure, lock or anything else against the account that was named.
    expect(r.emitted.filter((e) => e.type !== 'mfa.unlock_refused')).toEqual([]);
  });

  it('a burst from one uid: five are judged, the rest refused and recorded once; another uid is unaffected', async () => {
    const r = await rig();
    const answers = await Promise.all(Array.from({ length: 12 }, () => r.unlock(own, { user: 'tanaka', code: '000000' })));
    expect(r.asked).toHaveLength(5);
    expect(answers.filter((a) => result(a).reason === 'rate_limited')).toHaveLength(7);
    const refused = r.emitted.filter((e) => e.type === 'mfa.unlock_refused');
    expect(refused).toHaveLength(1);
    expect(refused[0]!.data).toMatchObject({ reason: 'rate_limited', peerUid: 1001 });
    // Requests for another account cost attempts too: they are refused as rate-limited now.
    expect(result(await r.unlock(own, { user: 'suzuki', code: '000000' })).reason).toBe('rate_limited');
    const other: LocalPeer = { uid: 1002, pid: 7, user: 'suzuki' };
    expect(result(await r.unlock(other, { user: 'suzuki', code: '000000' })).reason).toBe('wrong_code');
  });

  it('writes the break-glass marker next to the unlock socket as well, and removes it with the policy', async () => {
    const on: PolicyDocument = { ...builtinPolicy(), version: 2, mfa: { ...builtinPolicy().mfa, breakGlass: true } };
    const r = await rig(on);
    expect(existsSync(join(r.dir, 'mfa-break-glass'))).toBe(true);
    expect(existsSync(join(r.dir, 'run', 'mfa-break-glass'))).toBe(true);
    await r.cap.applyPolicy({ ...on, version: 3, mfa: { ...on.mfa, breakGlass: false } });
    expect(existsSync(join(r.dir, 'run', 'mfa-break-glass'))).toBe(false);
    expect(existsSync(join(r.dir, 'mfa-break-glass'))).toBe(false);
  });
});
