/**
 * The real PAM tier: Linux-PAM loads the built dist/pam/pam_sekimori.so from a test service file
 * /etc/pam.d/sekimori-test-<random> (removed afterwards), `pamtester` answers the 「認証コード」
 * prompt from stdin, and `oathtool` — an independent TOTP implementation — computes the codes.
 * A real console and an enrolled agent run on loopback. The host's own PAM stack is not touched.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localRequest } from '../../../agent/local-api.js';
import { agentPaths } from '../../../agent/state.js';
import { enrollAgent, ROOT, runCli, startConsole, waitFor, type TestAgent, type TestConsole } from '../../integration/harness.js';
import { isRoot, requireTools } from '../tools.js';

const MODULE = join(ROOT, 'dist/pam/pam_sekimori.so');
const check = requireTools('PAM (pamtester + oathtool + built pam_sekimori.so)', ['pamtester', 'oathtool', MODULE], 'apt-get install pamtester oathtool gcc libpam0g-dev && npm run build', {
  missing: isRoot() ? [] : ['root (the test writes /etc/pam.d/sekimori-test-*)'],
});

const totpNow = (secret: string, offset = '') => execFileSync('oathtool', ['--totp', '-b', ...(offset ? ['-N', offset] : []), secret], { encoding: 'utf8' }).trim();

describe.skipIf(!check.ok)('PAM tier: pamtester → pam_sekimori.so → agent → console', () => {
  let c: TestConsole;
  let a: TestAgent;
  const service = `sekimori-test-${randomBytes(6).toString('hex')}`;
  const serviceFile = `/etc/pam.d/${service}`;
  const secrets = new Map<string, string>();
  const recovery = new Map<string, string[]>();

  function pam(user: string, code: string): { ok: boolean; out: string } {
    const r = spawnSync('pamtester', [service, user, 'authenticate'], { input: code + '\n', encoding: 'utf8', timeout: 20_000 });
    return { ok: r.status === 0, out: r.stdout + r.stderr };
  }

  function enroll(user: string): void {
    const e = c.json<{ user: string; secret: string; uri: string; recoveryCodes: string[] }>(['mfa', 'enroll', '--user', user]);
    expect(e.uri).toMatch(/^otpauth:\/\/totp\/%E3%83%86%E3%82%B9%E3%83%88%E5%B8%82:/); // issuer テスト市 from config
    secrets.set(user, e.secret);
    recovery.set(user, e.recoveryCodes);
    // Confirm with the previous step's code so the current step stays fresh for the test; once
    // more if a step boundary passed between oathtool and the console (the code is then two steps old).
    let r = c.cli(['mfa', 'confirm', '--user', user, '--code', totpNow(e.secret, 'now - 30 seconds')]);
    if (r.code !== 0) r = c.cli(['mfa', 'confirm', '--user', user, '--code', totpNow(e.secret, 'now - 30 seconds')]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
  }

  const events = (user: string) => c.events(['--user', user]).filter((e) => e.type.startsWith('mfa.'));

  beforeAll(async () => {
    c = await startConsole({
      policy: { mfa: { offlineAllowed: true, maxFailures: 3, lockoutSeconds: 300, windowSteps: 1 } },
    });
    a = await enrollAgent(c);
    // pam_permit stands in for the password step (pam_unix would need real accounts and passwords);
    // the module under test is the second, required step, loaded by absolute path.
    writeFileSync(
      serviceFile,
      [
        `# Sekimori PAM tier test service (removed after the test)`,
        `auth     required  pam_permit.so`,
        `auth     required  ${MODULE} socket=${agentPaths(a.stateDir).socket} timeout=5`,
        `account  required  pam_permit.so`,
        '',
      ].join('\n'),
    );
    for (const u of ['tanaka', 'suzuki', 'sato', 'offline1']) enroll(u);
    expect(c.cli(['mfa', 'assign', '--user', 'offline1', '--terminal', a.agentId]).code).toBe(0);
  });

  afterAll(async () => {
    rmSync(serviceFile, { force: true });
    await a?.cleanup();
    await c?.cleanup();
  });

  it('accepts the current code from oathtool, and the event reaches the console', async () => {
    const r = pam('tanaka', totpNow(secrets.get('tanaka')!));
    expect(r.ok, r.out).toBe(true);
    expect(r.out).toContain('認証コード');
    const ev = await waitFor('mfa.success at the console', () => events('tanaka').find((e) => e.type === 'mfa.success'));
    expect(ev.data).toMatchObject({ terminal: a.agentId, result: 'accept', reason: 'ok', offline: false, service });
  });

  it('rejects a wrong code', async () => {
    const good = totpNow(secrets.get('suzuki')!);
    const wrong = String((Number(good) + 500_000) % 1_000_000).padStart(6, '0');
    expect(pam('suzuki', wrong).ok).toBe(false);
    await waitFor('mfa.failure wrong_code', () => events('suzuki').find((e) => e.type === 'mfa.failure' && e.data.reason === 'wrong_code'));
  });

  it('rejects the same correct code a second time (replay)', async () => {
    const code = totpNow(secrets.get('suzuki')!);
    expect(pam('suzuki', code).ok).toBe(true);
    expect(pam('suzuki', code).ok).toBe(false);
    await waitFor('mfa.replay', () => events('suzuki').find((e) => e.type === 'mfa.replay'));
  });

  it('rejects malformed and hostile input cleanly', () => {
    for (const junk of ['', 'abc', '1234567', '12345\u00e9', 'x'.repeat(5000), '"},{"result":"accept"']) expect(pam('suzuki', junk).ok).toBe(false);
    // A user name the module refuses before asking anything.
    expect(pam('bad user', '123456').ok).toBe(false);
    // Success resets failures; keep suzuki unlocked for nothing else.
    expect(c.cli(['mfa', 'unlock', '--user', 'suzuki']).code).toBe(0);
  });

  it('locks after the configured failures (3), refusing even a correct code', async () => {
    for (let i = 0; i < 3; i++) expect(pam('sato', '000000').ok).toBe(false);
    const locked = await waitFor('mfa.locked', () => events('sato').find((e) => e.type === 'mfa.locked'));
    expect(locked.data).toMatchObject({ locked: true, terminal: a.agentId });
    const r = pam('sato', totpNow(secrets.get('sato')!));
    expect(r.ok).toBe(false);
    expect(r.out).toContain('ロック');
    await waitFor('reason locked', () => events('sato').find((e) => e.data.reason === 'locked'));
    // The lock is the console's: another terminal would see it too.
    const list = c.json<{ user: string; locked: boolean }[]>(['mfa', 'list']);
    expect(list.find((u) => u.user === 'sato')?.locked).toBe(true);
  });

  it('accepts a recovery code exactly once', async () => {
    const code = recovery.get('tanaka')![0]!;
    expect(pam('tanaka', code).ok).toBe(true);
    expect(pam('tanaka', code).ok).toBe(false);
    await waitFor('mfa.recovery_used', () => events('tanaka').find((e) => e.type === 'mfa.recovery_used'));
  });

  it('sekimori-agent mfa-verify works for scripts (exit 0 / 1)', () => {
    const secret = secrets.get('tanaka')!;
    const args = ['mfa-verify', '--user', 'tanaka', '--state', a.stateDir];
    const code = totpNow(secret, 'now + 30 seconds'); // the next step: not used yet
    expect(runCli('agent', args, code + '\n').code).toBe(0);
    expect(runCli('agent', args, code + '\n').code).toBe(1);
  });

  it('with the console stopped and offline allowed, still accepts a fresh code; events and replay state arrive later', async () => {
    const sock = agentPaths(a.stateDir).socket;
    const st = await waitFor('offline cache synced', async () => {
      const r = await localRequest(sock, 'POST', '/mfa/sync');
      const s = (await localRequest(sock, 'GET', '/mfa/status')).body as { cachedUsers: string[]; offlineAllowed: boolean };
      return r.status === 200 && s.offlineAllowed && s.cachedUsers.includes('offline1') ? s : null;
    });
    expect(st.cachedUsers).toEqual(['offline1']); // only the users assigned to this terminal
    await c.stop();
    const code = totpNow(secrets.get('offline1')!);
    const r = pam('offline1', code);
    expect(r.ok, r.out + a.output()).toBe(true);
    expect(pam('offline1', code).ok).toBe(false); // replay refused locally while offline
    // A user not assigned to this terminal is not in the cache: refused offline.
    expect(pam('tanaka', totpNow(secrets.get('tanaka')!, 'now + 60 seconds')).ok).toBe(false);
    await c.start();
    const ev = await waitFor('offline success uploaded', () => events('offline1').find((e) => e.type === 'mfa.success' && e.data.offline === true), 40_000);
    expect(ev.data).toMatchObject({ terminal: a.agentId, result: 'accept' });
    await waitFor('offline replay uploaded', () => events('offline1').find((e) => e.type === 'mfa.replay' && e.data.offline === true), 40_000);
    // Reconciled: the step used offline is now refused online too (console's replay state).
    await waitFor('reconciled', async () => ((await localRequest(sock, 'GET', '/mfa/status')).body as { pending: number }).pending === 0, 40_000);
    expect(pam('offline1', code).ok).toBe(false);
    await waitFor('online replay after reconcile', () => events('offline1').find((e) => e.type === 'mfa.replay' && e.data.offline === false), 40_000);
  });

  it('refuses when the agent is stopped (fail closed)', async () => {
    await a.stop();
    expect(existsSync(join(a.stateDir, 'mfa-break-glass'))).toBe(false);
    const r = pam('suzuki', totpNow(secrets.get('suzuki')!, 'now + 30 seconds'));
    expect(r.ok).toBe(false);
    expect(r.out).toMatch(/接続できません|unavailable/);
    await a.start();
    // And once it is back, the same fresh code works.
    expect(pam('suzuki', totpNow(secrets.get('suzuki')!, 'now + 30 seconds')).ok).toBe(true);
  });
});
