/**
 * 申請 → 上長承認 end to end with real processes (issue 15): a real console and a real agent (fake
 * sysfs), a stick blocked at the terminal; an ordinary user (nobody, uid 65534) runs
 * `sekimori-agent apply <申請番号>` against the agent's user socket — the kernel names the
 * applicant (SO_PEERCRED through the peercred helper); the application reaches the console by the
 * event path; the applicant's name cannot approve it; an approver approves with the console CLI;
 * the exception reaches the agent and the stick is allowed; the agent records the answer and
 * tells the applicant once. With dbus-daemon, gdbus and python3-dbus present (the notice tier's
 * recording notification server, test/e2e/notify/recording-notifyd.py), the approved notice is
 * asserted as a real Notify call on a real session bus; without them, through the agent's
 * usb.application_answered event and its log line (said so in the test name).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeSysfs } from '../usb/fake-sysfs.js';
import { isRoot, requireTools } from '../e2e/tools.js';
import { enrollAgent, ROOT, startConsole, tempDir, testAgentEnv, waitFor, type TestAgent, type TestConsole } from './harness.js';

const NOBODY = 65534;
const AGENT_BIN = join(ROOT, 'bin/sekimori-agent.js');
const PY = '/usr/bin/python3';
const NOTIFYD = join(ROOT, 'test/e2e/notify/recording-notifyd.py');
const tools = requireTools('application (kernel peer credentials)', [], 'run as root (the test runs the apply command as nobody)', { missing: isRoot() ? [] : ['root'] });
const haveDbus =
  tools.ok &&
  existsSync(NOTIFYD) &&
  ['dbus-daemon', 'gdbus'].every((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0) &&
  existsSync(PY) &&
  spawnSync(PY, ['-c', 'import dbus, gi'], { timeout: 20_000 }).status === 0;

interface Application {
  id: string;
  appId: string;
  ref: string;
  staffUser: string;
  status: string;
  hours: number;
  agentId: string;
  grantId: string | null;
  until: string | null;
}

async function startUntil(cmd: string, args: string[], opts: { uid: number; gid: number; env: NodeJS.ProcessEnv }, ready: RegExp): Promise<{ proc: ChildProcess; line: string }> {
  const proc = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  try {
    const line = await waitFor(`${cmd} ready`, () => {
      if (proc.exitCode !== null) throw new Error(`${cmd} exited ${proc.exitCode}: ${out}`);
      return out.split('\n').find((l) => ready.test(l));
    }, 30_000, 50);
    return { proc, line };
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
}

describe.skipIf(!tools.ok)(`申請 → 上長承認 with a real agent (notice asserted ${haveDbus ? 'on a real D-Bus session bus' : 'through the agent event and log: no dbus-daemon/python3-dbus here'})`, () => {
  let c: TestConsole;
  let a: TestAgent;
  let fake: FakeSysfs;
  let dir = '';
  let unlock = '';
  const procs: ChildProcess[] = [];
  const saved = { ...process.env };
  const rec = () => join(dir, 'notify.jsonl');
  const calls = (): { summary: string; body: string; uid: number }[] => {
    try {
      return readFileSync(rec(), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { summary: string; body: string; uid: number });
    } catch {
      return [];
    }
  };
  const STICK = { vid: 0x0781, pid: 0x5567, serial: 'APPLY0001' };
  const authorized = (path: string) => readFileSync(join(fake.usbDir(), path, 'authorized'), 'utf8').trim();
  /** `sekimori-agent apply` as the ordinary user `nobody`, bounded. */
  const apply = (args: string[], uid = NOBODY) =>
    spawnSync(process.execPath, [AGENT_BIN, 'apply', ...args, '--socket', unlock, '--json'], { uid, gid: uid, encoding: 'utf8', timeout: 30_000, env: { PATH: '/usr/bin:/bin', HOME: '/' } });

  beforeAll(async () => {
    dir = tempDir('application');
    chmodSync(dir, 0o755); // nobody must reach the user socket's folder (made 0755 by the agent)
    unlock = join(dir, 'run', 'unlock.sock');
    process.env.SEKIMORI_UNLOCK_SOCKET = unlock;
    if (haveDbus) {
      chownSync(dir, NOBODY, NOBODY);
      chmodSync(dir, 0o755);
      const bus = await startUntil('dbus-daemon', ['--session', `--address=unix:path=${join(dir, 'bus')}`, '--print-address', '--nofork'], { uid: NOBODY, gid: NOBODY, env: { PATH: '/usr/bin:/bin', HOME: dir } }, /^unix:path=/);
      procs.push(bus.proc);
      const srv = await startUntil(PY, [NOTIFYD, rec(), '600'], { uid: NOBODY, gid: NOBODY, env: { PATH: '/usr/bin:/bin', HOME: dir, DBUS_SESSION_BUS_ADDRESS: bus.line.trim() } }, /^ready$/);
      procs.push(srv.proc);
      process.env.SEKIMORI_NOTIFY_BUS = bus.line.trim();
      process.env.SEKIMORI_NOTIFY_UID = String(NOBODY);
      process.env.SEKIMORI_NOTIFY_GID = String(NOBODY);
      process.env.SEKIMORI_LANG = 'ja';
    }
    c = await startConsole({ policy: { agent: { heartbeatSeconds: 1, uploadBatchSize: 500 }, usb: { exceptionPollSeconds: 1 } } });
    a = await enrollAgent(c, { start: false });
    fake = new FakeSysfs(testAgentEnv(a.stateDir).SEKIMORI_USB_SYSROOT!);
    fake.addRootHub(1);
    fake.addDevice('1-1', STICK.vid, STICK.pid, [[0, 8, 6, 0x50]], { configured: false, serial: Buffer.from(STICK.serial), devnum: 5 });
    await a.start();
  }, 180_000);

  afterAll(async () => {
    await a?.cleanup();
    await c?.cleanup();
    for (const p of procs) p.kill('SIGKILL');
    for (const k of ['SEKIMORI_UNLOCK_SOCKET', 'SEKIMORI_NOTIFY_BUS', 'SEKIMORI_NOTIFY_UID', 'SEKIMORI_NOTIFY_GID', 'SEKIMORI_LANG']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });

  it('blocked stick → apply as nobody → approver approves → exception reaches the agent → stick allowed → applicant told once', async () => {
    await waitFor('usb.blocked for the stick', () => c.events(['--agent', a.agentId, '--type', 'usb.blocked']).length >= 1, 60_000, 250);
    expect(authorized('1-1')).toBe('0');
    const ref = (await waitFor('申請番号 in the agent log', () => /1-1 blocked; 申請番号 ([A-Z2-9]{6})/.exec(a.output())?.[1], 30_000, 100))!;
    await waitFor('user socket', () => existsSync(unlock), 30_000, 100);

    // Refusals first: a ref this terminal never issued (another terminal's), a 2^53 period, a 10 kB reason.
    for (const args of [['ZZZ999', '--reason', 'x'], [ref, '--reason', 'x', '--hours', String(2 ** 53)], [ref, '--reason', '<b>x</b>'.repeat(1300)]]) {
      const r = apply(args, 1); // as daemon (uid 1): nobody's per-minute allowance stays whole
      expect(r.status, r.stderr).toBe(1);
    }
    // The applicant is whoever the kernel says is calling: nobody.
    const sent = apply([ref, '--reason', '監査資料を<b>監査室</b>へ渡すため', '--hours', '2']);
    expect(sent.status, sent.stderr + sent.stdout).toBe(0);
    const body = JSON.parse(sent.stdout) as { id: string; ref: string };
    expect(body.ref).toBe(ref);

    // The console learns it by the event path.
    const app = await waitFor('application listed', () => c.json<Application[]>(['application', 'list']).find((x) => x.appId === body.id), 60_000, 500);
    const applicant = app.staffUser;
    expect(applicant).toBe('nobody');
    expect(app).toMatchObject({ agentId: a.agentId, status: 'pending', hours: 2, ref });
    const sentEvent = c.events(['--agent', a.agentId, '--type', 'usb.application_sent'])[0]!;
    expect(sentEvent.user).toBe(applicant);
    expect(sentEvent.data).toMatchObject({ vendorId: '0781', productId: '5567', serialHex: Buffer.from(STICK.serial).toString('hex') });
    expect(c.events(['--agent', a.agentId, '--type', 'usb.application_refused']).length).toBeGreaterThanOrEqual(1);

    // The applicant's name cannot approve; an approver can.
    const own = c.cli(['application', 'approve', app.id, '--by', applicant]);
    expect(own.code).toBe(1);
    expect(own.stderr).toMatch(/申請者本人/);
    const ok = c.json<Application>(['application', 'approve', app.id, '--by', 'kacho', '--hours', '1']);
    expect(ok.status).toBe('approved');
    expect(c.cli(['application', 'approve', app.id, '--by', 'kacho']).code).toBe(1); // not twice

    await waitFor('stick allowed by the approved exception', () => authorized('1-1') === '1', 60_000, 200);
    const used = await waitFor('usb.exception_used', () => c.events(['--agent', a.agentId, '--type', 'usb.exception_used'])[0], 30_000, 250);
    expect(JSON.stringify(used.data)).toContain(ok.grantId!);
    const trail = c.events(['--type', 'admin.*']).filter((e) => JSON.stringify(e.data).includes(app.id));
    expect(trail.map((e) => [e.type, e.user])).toEqual([
      ['admin.usb_exception_granted', 'kacho'],
      ['admin.application_approved', 'kacho'],
    ]);

    // The terminal records the answer and tells the applicant, once.
    const answered = await waitFor('usb.application_answered', () => c.events(['--agent', a.agentId, '--type', 'usb.application_answered'])[0], 60_000, 250);
    expect(answered.user).toBe(applicant);
    expect(answered.data).toMatchObject({ id: body.id, status: 'approved', until: ok.until });
    await waitFor('agent log: applicant notified', () => a.output().includes(`application ${body.id} (${ref}) approved; ${applicant} notified`), 30_000, 100);
    await new Promise((r) => setTimeout(r, 3000)); // several more polls: still one answer
    expect(c.events(['--agent', a.agentId, '--type', 'usb.application_answered'])).toHaveLength(1);
  }, 300_000);

  it('a rejection: the stick stays blocked, the applicant is told once with the comment as text', async () => {
    fake.addDevice('1-2', STICK.vid, STICK.pid, [[0, 8, 6, 0x50]], { configured: false, serial: Buffer.from('APPLY0002'), devnum: 6 });
    const ref = (await waitFor('申請番号 for the second stick', () => /1-2 blocked; 申請番号 ([A-Z2-9]{6})/.exec(a.output())?.[1], 60_000, 100))!;
    const sent = apply([ref, '--reason', '研修用']);
    expect(sent.status, sent.stderr + sent.stdout).toBe(0);
    const id = (JSON.parse(sent.stdout) as { id: string }).id;
    const app = await waitFor('second application listed', () => c.json<Application[]>(['application', 'list']).find((x) => x.appId === id), 60_000, 500);
    const r = c.json<Application>(['application', 'reject', app.id, '--by', 'kacho', '--comment', '私物の媒体は使えません <b>\u0007']);
    expect(r.status).toBe('rejected');
    const answered = await waitFor('usb.application_answered (rejected)', () => c.events(['--agent', a.agentId, '--type', 'usb.application_answered']).find((e) => e.data.id === id), 60_000, 250);
    expect(answered.data).toMatchObject({ status: 'rejected', until: null });
    expect(String(answered.data.comment)).toContain('私物の媒体は使えません');
    expect(authorized('1-2')).toBe('0');
    if (haveDbus) {
      const told = await waitFor('rejected Notify call', () => {
        const l = calls().filter((x) => x.summary === '申請は承認されませんでした');
        return l.length ? l : null;
      }, 30_000, 100);
      await new Promise((r) => setTimeout(r, 3000)); // more polls: still one
      expect(calls().filter((x) => x.summary === '申請は承認されませんでした')).toHaveLength(1);
      expect(told[0]!.body).toContain('却下');
      expect(told[0]!.body).toContain('私物の媒体は使えません');
      expect(told[0]!.body).not.toMatch(/[<>\u0007]/);
    }
  }, 300_000);

  it.skipIf(!haveDbus)('the approved notice is one real Notify call on the session bus, in Japanese', async () => {
    const approved = await waitFor('approved Notify call', () => {
      const l = calls().filter((x) => x.summary === '申請が承認されました');
      return l.length ? l : null;
    }, 30_000, 100);
    expect(calls().filter((x) => x.summary === '申請が承認されました')).toHaveLength(1);
    expect(approved[0]!.body).toContain('一時許可が承認されました');
  });
});
