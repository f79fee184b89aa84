/**
 * Unlock as the user (issue 10, item 7). Screen lockers (xscreensaver, mate-/cinnamon-screensaver)
 * check the password as the locked user, who can never reach the agent's root-only socket. Real
 * Linux-PAM: pamtester runs under setpriv as an unprivileged account this test creates (and
 * removes), loads dist/pam/pam_sekimori.so from a test service file, and the module must use the
 * agent's unlock socket, where the agent reads the caller's uid from the kernel (SO_PEERCRED) and
 * verifies for that account only. Policy has breakGlass on throughout, so every refusal below is a
 * refusal the break-glass path did not turn into a success.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localRequest } from '../../../agent/local-api.js';
import { agentPaths } from '../../../agent/state.js';
import { enrollAgent, ROOT, startConsole, waitFor, type TestAgent, type TestConsole } from '../../integration/harness.js';
import { isRoot, requireTools } from '../tools.js';

const MODULE = join(ROOT, 'dist/pam/pam_sekimori.so');
const HELPER = join(ROOT, 'dist/pam/sekimori-peercred');
const check = requireTools(
  'PAM unlock as a user (pamtester + oathtool + setpriv + useradd + built pam_sekimori.so)',
  ['pamtester', 'oathtool', 'setpriv', 'useradd', 'userdel', MODULE, HELPER],
  'apt-get install pamtester oathtool util-linux passwd gcc libpam0g-dev && npm run build',
  { missing: isRoot() ? [] : ['root (the test creates accounts and writes /etc/pam.d/sekimori-test-*)'] },
);

const GECOS = 'sekimori unlock test account';
const totpNow = (secret: string, offset = '') => execFileSync('oathtool', ['--totp', '-b', ...(offset ? ['-N', offset] : []), secret], { encoding: 'utf8' }).trim();
const wrongFor = (good: string) => String((Number(good) + 500_000) % 1_000_000).padStart(6, '0');

interface Account {
  name: string;
  uid: number;
  gid: number;
}

/** Accounts left behind by a killed run of this test (same comment) go first. */
function removeLeftoverAccounts(): void {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[4] === GECOS && /^skmt[0-9a-f]{6}$/.test(f[0] ?? '')) spawnSync('userdel', [f[0]!], { timeout: 20_000 });
  }
}

function createAccount(): Account {
  const name = `skmt${randomBytes(3).toString('hex')}`;
  const r = spawnSync('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', '--comment', GECOS, name], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  if (r.status !== 0) throw new Error(`useradd ${name}: ${r.stderr}`);
  const id = (flag: string) => Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());
  return { name, uid: id('-u'), gid: id('-g') };
}

describe.skipIf(!check.ok)('PAM unlock as the user: pamtester (unprivileged) → pam_sekimori.so → unlock socket → agent', () => {
  let c: TestConsole;
  let a: TestAgent;
  let me: Account; // the "locker" account for the functional cases
  let burst: Account; // a second account: its own attempt budget for the rate-limit case
  const tag = randomBytes(6).toString('hex');
  const services: string[] = [];
  const secrets = new Map<string, string>();
  const unlockDir = check.ok ? mkdtempSync(join(tmpdir(), 'sekimori-unlock-')) : '';
  const unlockSock = join(unlockDir, 'unlock.sock');
  const savedEnv = process.env.SEKIMORI_UNLOCK_SOCKET;
  let state = '';

  function service(name: string, args: string): string {
    const svc = `sekimori-test-${tag}-${name}`;
    writeFileSync(`/etc/pam.d/${svc}`, `auth required pam_permit.so\nauth required ${MODULE} ${args} timeout=5\naccount required pam_permit.so\n`, { mode: 0o644 });
    services.push(svc);
    return svc;
  }

  /** pamtester as `who` (uid, gid, no supplementary groups), asking about PAM user `user`. */
  function pamAs(who: Account | null, svc: string, user: string, code: string): { ok: boolean; out: string } {
    const cmd = who ? 'setpriv' : 'pamtester';
    const args = who ? [`--reuid=${who.uid}`, `--regid=${who.gid}`, '--clear-groups', 'pamtester', svc, user, 'authenticate'] : [svc, user, 'authenticate'];
    const r = spawnSync(cmd, args, { input: code + '\n', encoding: 'utf8', timeout: 20_000, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' } });
    if (r.signal) throw new Error(`pamtester killed by ${r.signal}: ${r.stdout}${r.stderr}`);
    return { ok: r.status === 0, out: r.stdout + r.stderr };
  }

  /** Async, for attempts at once. */
  function pamAsAsync(who: Account, svc: string, code: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const p = spawn('setpriv', [`--reuid=${who.uid}`, `--regid=${who.gid}`, '--clear-groups', 'pamtester', svc, who.name, 'authenticate'], {
        stdio: ['pipe', 'ignore', 'ignore'],
        env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
      });
      const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
      p.on('error', reject);
      p.on('exit', (status, signal) => {
        clearTimeout(timer);
        // A crash of the module kills pamtester with a signal: never count that as a refusal.
        if (signal !== null) reject(new Error(`pamtester died of ${signal}`));
        else resolve(status === 0);
      });
      p.stdin.on('error', () => {});
      p.stdin.end(code + '\n');
    });
  }

  function enroll(user: string): void {
    const e = c.json<{ secret: string }>(['mfa', 'enroll', '--user', user]);
    secrets.set(user, e.secret);
    // Confirmed with the previous step's code so that the current step stays fresh; once more if
    // a step boundary passed between oathtool and the console (that code is then two steps old).
    let r = c.cli(['mfa', 'confirm', '--user', user, '--code', totpNow(e.secret, 'now - 30 seconds')]);
    if (r.code !== 0) r = c.cli(['mfa', 'confirm', '--user', user, '--code', totpNow(e.secret, 'now - 30 seconds')]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
  }

  const events = (user: string) => c.events(['--user', user]).filter((e) => e.type.startsWith('mfa.'));

  beforeAll(async () => {
    removeLeftoverAccounts();
    me = createAccount();
    burst = createAccount();
    chmodSync(unlockDir, 0o755); // root's, closed to others' writes: what the unit's /run/sekimori-agent is
    // Read by the harness when it starts the agent (vitest runs each file in its own process).
    process.env.SEKIMORI_UNLOCK_SOCKET = unlockSock;
    c = await startConsole({ policy: { mfa: { offlineAllowed: false, breakGlass: true, maxFailures: 3, lockoutSeconds: 300, windowSteps: 1 } } });
    a = await enrollAgent(c);
    state = a.stateDir;
    for (const u of [me.name, burst.name, 'tanaka']) enroll(u);
    await waitFor('unlock socket and both break-glass markers', () =>
      existsSync(unlockSock) && existsSync(join(unlockDir, 'mfa-break-glass')) && existsSync(join(state, 'mfa-break-glass')),
    );
  });

  afterAll(async () => {
    for (const s of services) rmSync(`/etc/pam.d/${s}`, { force: true });
    if (savedEnv === undefined) delete process.env.SEKIMORI_UNLOCK_SOCKET;
    else process.env.SEKIMORI_UNLOCK_SOCKET = savedEnv;
    await a?.cleanup();
    await c?.cleanup();
    for (const u of [me, burst]) if (u) spawnSync('userdel', [u.name], { timeout: 20_000 });
    if (unlockDir) rmSync(unlockDir, { recursive: true, force: true });
  });

  it('the unlock socket is open to everyone (0666) in a folder only root writes; the state folder stays closed', () => {
    expect(statSync(unlockSock).mode & 0o777).toBe(0o666);
    expect(statSync(unlockDir).mode & 0o022).toBe(0);
    expect(statSync(state).mode & 0o077).toBe(0);
    expect(statSync(agentPaths(state).socket).mode & 0o777).toBe(0o600);
  });

  it('GET /mfa/status on the root socket says where the unlock socket is', async () => {
    const st = (await localRequest(agentPaths(state).socket, 'GET', '/mfa/status')).body as { unlockSocket: string };
    expect(st.unlockSocket).toBe(unlockSock);
  });

  it('own account, right code → accepted, recorded as an unlock with the kernel-given uid', async () => {
    const svc = service('unlock', `socket=${agentPaths(state).socket} unlock_socket=${unlockSock}`);
    const r = pamAs(me, svc, me.name, totpNow(secrets.get(me.name)!));
    expect(r.ok, r.out + a.output()).toBe(true);
    expect(r.out).toContain('認証コード');
    const ev = await waitFor('mfa.success for the unlock', () => events(me.name).find((e) => e.type === 'mfa.success'));
    expect(ev.data).toMatchObject({ terminal: a.agentId, result: 'accept', via: 'unlock', peerUid: String(me.uid), service: svc });
  });

  it('own account, wrong code → refused (a failure, as at login)', async () => {
    const svc = service('unlock2', `socket=${agentPaths(state).socket} unlock_socket=${unlockSock}`);
    expect(pamAs(me, svc, me.name, wrongFor(totpNow(secrets.get(me.name)!))).ok).toBe(false);
    await waitFor('mfa.failure wrong_code via unlock', () => events(me.name).find((e) => e.type === 'mfa.failure' && e.data.reason === 'wrong_code' && e.data.via === 'unlock'));
  });

  it("another account's right code from a user process → refused and recorded; that code is not even looked at", async () => {
    const svc = service('other', `socket=${agentPaths(state).socket} unlock_socket=${unlockSock}`);
    const code = totpNow(secrets.get('tanaka')!, 'now + 30 seconds');
    const r = pamAs(me, svc, 'tanaka', code);
    expect(r.ok).toBe(false);
    const ev = await waitFor('mfa.unlock_refused', () => events('tanaka').find((e) => e.type === 'mfa.unlock_refused'));
    expect(ev.data).toMatchObject({ terminal: a.agentId, reason: 'other_user', peerUid: me.uid, peerUser: me.name, requested: 'tanaka' });
    expect(ev.severity).toBe('warning');
    // Not a failure of tanaka's (nobody can lock a colleague from their own session) ...
    expect(events('tanaka').filter((e) => e.type !== 'mfa.unlock_refused')).toEqual([]);
    // ... and the code was never spent: root's login stack still accepts it.
    expect(pamAs(null, svc, 'tanaka', code).ok).toBe(true);
  });

  it('the lockout of login applies to unlock: failures lock the account, at the console', async () => {
    const svc = service('lock', `socket=${agentPaths(state).socket} unlock_socket=${unlockSock}`);
    // One failure above; two more reach maxFailures (3).
    for (let i = 0; i < 2; i++) expect(pamAs(me, svc, me.name, '000000').ok).toBe(false);
    const locked = await waitFor('mfa.locked via unlock', () => events(me.name).find((e) => e.type === 'mfa.locked'));
    expect(locked.data).toMatchObject({ via: 'unlock', locked: true });
    expect(c.json<{ user: string; locked: boolean }[]>(['mfa', 'list']).find((u) => u.user === me.name)?.locked).toBe(true);
  });

  it('a per-uid rate limit: ten attempts at once from one account are not all judged', async () => {
    const svc = service('burst', `socket=${agentPaths(state).socket} unlock_socket=${unlockSock}`);
    // Five at once, then one every 12 s: ten at once can only all pass if a minute went by.
    const results = await Promise.all(Array.from({ length: 10 }, () => pamAsAsync(burst, svc, '000000')));
    expect(results.every((ok) => !ok)).toBe(true);
    const ev = await waitFor('mfa.unlock_refused rate_limited', () => events(burst.name).find((e) => e.type === 'mfa.unlock_refused' && e.data.reason === 'rate_limited'));
    expect(ev.data).toMatchObject({ peerUid: burst.uid, peerUser: burst.name });
    // Refusals are folded: one recorded event per uid and reason a minute, however many arrive.
    expect(events(burst.name).filter((e) => e.type === 'mfa.unlock_refused')).toHaveLength(1);
  });

  it('regression: root socket folder loosened, socket 0600 (EACCES), break-glass on → refused, never "unreachable"', () => {
    // The situation the review found: someone made the state folder reachable so that lockers
    // would work; connect() then fails with EACCES, and the module took that for a dead agent.
    const dirs = [dirname(state), state];
    const before = dirs.map((d) => statSync(d).mode & 0o777);
    try {
      for (const d of dirs) chmodSync(d, 0o755);
      const marker = statSync(join(state, 'mfa-break-glass'));
      expect(marker.uid).toBe(0); // the marker the old module honoured is really there
      // unlock_socket= is the same root-only socket: EACCES on the unlock path too.
      const svc = service('loose', `socket=${agentPaths(state).socket} unlock_socket=${agentPaths(state).socket}`);
      const r = pamAs(me, svc, me.name, '000000');
      expect(r.ok, r.out).toBe(false);
      expect(r.out).toMatch(/権限がありません|not permitted/);
      // A socket in a folder the user cannot enter at all (lstat: EACCES) is refused too.
      const closed = service('closed', `socket=${agentPaths(state).socket} unlock_socket=${join(dirname(state), 'nowhere', 'unlock.sock')}`);
      chmodSync(dirname(state), 0o700);
      expect(pamAs(me, closed, me.name, '000000').ok).toBe(false);
    } finally {
      dirs.forEach((d, i) => chmodSync(d, before[i]!));
    }
  });

  it('a root-owned socket file served by a user process is refused: the kernel names who listens', async () => {
    // lstat sees root's socket; only SO_PEERCRED on the connection shows the listener is not root.
    const d = mkdtempSync(join(tmpdir(), 'sekimori-fake-agent-'));
    chownSync(d, me.uid, me.gid);
    const sock = join(d, 'agent.sock');
    const answer = 'HTTP/1.1 200 OK\\r\\nContent-Length: 19\\r\\n\\r\\n{"result":"accept"}';
    const script = (path: string) => `require('node:net').createServer((s) => s.on('data', () => s.end('${answer}'))).listen(${JSON.stringify(path)})`;
    const fake = spawn('setpriv', [`--reuid=${me.uid}`, `--regid=${me.gid}`, '--clear-groups', process.execPath, '-e', script(sock)], { stdio: 'ignore' });
    // Positive control: the same fake run by root is believed.
    const rootSock = join(unlockDir, 'root-fake.sock');
    const rootFake = spawn(process.execPath, ['-e', script(rootSock)], { stdio: 'ignore' });
    try {
      await waitFor('fake agents', () => existsSync(sock) && existsSync(rootSock));
      chownSync(sock, 0, 0);
      expect(pamAs(null, service('fake', `socket=${sock}`), me.name, '000000').ok).toBe(false);
      expect(pamAs(null, service('rootfake', `socket=${rootSock}`), me.name, '000000').ok).toBe(true);
    } finally {
      fake.kill('SIGKILL');
      rootFake.kill('SIGKILL');
      rmSync(d, { recursive: true, force: true });
      rmSync(rootSock, { force: true });
    }
  });

  it('positive controls: with the agent really gone (ENOENT, ECONNREFUSED) break-glass still lets the password decide', () => {
    // The agent keeps its marker next to the unlock socket too, for exactly this case.
    const gone = service('gone', `socket=${agentPaths(state).socket} unlock_socket=${join(unlockDir, 'absent.sock')}`);
    expect(pamAs(me, gone, me.name, '000000').ok).toBe(true);
    // A socket nobody listens on any more (its agent was killed): ECONNREFUSED.
    const stale = join(unlockDir, 'stale.sock');
    const r = spawnSync(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(stale)}, () => process.exit(0))`], { timeout: 20_000 });
    expect(r.status).toBe(0);
    chmodSync(stale, 0o666);
    const refused = service('refused', `socket=${agentPaths(state).socket} unlock_socket=${stale}`);
    expect(pamAs(me, refused, me.name, '000000').ok).toBe(true);
    rmSync(stale, { force: true });
  });
});
