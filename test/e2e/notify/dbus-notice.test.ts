/**
 * The notice at the terminal, end to end on Linux (issue 15): a REAL dbus-daemon session bus
 * started by the test as an ordinary user (nobody), a test-side notification server owning
 * org.freedesktop.Notifications on it (recording-notifyd.py, python3-dbus) that records each
 * Notify call with the caller's uid, and a REAL agent process (fake sysfs) pointed at that bus
 * (SEKIMORI_NOTIFY_BUS, test only). The agent runs as root and must call as the session's user:
 * a user's session bus refuses root (checked here too).
 *
 * Shown: a blocked stick → exactly one Notify call with the Japanese text, the hostile product
 * string inert; a policy change re-judges the stick (a new usb.blocked event) without a second
 * notice; a re-plug is a new plug (a new notice); monitor mode is silent until the policy asks
 * (agent.notices.monitor), and then tells only what it had not told.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeSysfs } from '../../usb/fake-sysfs.js';
import { enrollAgent, startConsole, tempDir, testAgentEnv, waitFor, type TestAgent, type TestConsole } from '../../integration/harness.js';
import { isRoot, requireTools } from '../tools.js';
import { NOBODY, startSessionBus, startUntil } from './session.js';

const PY = '/usr/bin/python3';
const pyMissing = (): string[] => {
  if (!existsSync(PY)) return [PY];
  const r = spawnSync(PY, ['-c', 'import dbus, gi'], { timeout: 20_000 });
  return r.status === 0 ? [] : ['python3-dbus / python3-gi'];
};
const tools = requireTools('notify (D-Bus session bus)', ['dbus-daemon', 'gdbus'], 'apt-get install dbus-daemon libglib2.0-bin python3-dbus python3-gi', {
  missing: [...pyMissing(), ...(isRoot() ? [] : ['root (the agent switches to the session user)'])],
});

interface NotifyCall {
  app: string;
  icon: string;
  summary: string;
  body: string;
  hints: Record<string, number | string>;
  timeout: number;
  uid: number;
}

describe.skipIf(!tools.ok)('notice at the terminal over a real D-Bus session bus', () => {
  let dir = '';
  let address = '';
  let bus: ChildProcess | null = null;
  let server: ChildProcess | null = null;
  let c: TestConsole;
  let a: TestAgent;
  let fake: FakeSysfs;
  const saved = { ...process.env };
  const rec = () => join(dir, 'notify.jsonl');
  // The USB notices (this machine's own processes may be told about too, as unauthorized software in monitor mode).
  const calls = (): NotifyCall[] => allCalls().filter((x) => x.summary.startsWith('外部記録媒体'));
  const allCalls = (): NotifyCall[] => {
    try {
      return readFileSync(rec(), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as NotifyCall);
    } catch {
      return [];
    }
  };
  const stick = (path: string, vid: number, devnum: number) => fake.addDevice(path, vid, 0x5567, [[0, 8, 6, 0x50]], { configured: false, serial: Buffer.from(`N${path}`), devnum });
  const policyFile = (body: object) => {
    const f = join(dir, `p-${Math.random()}.json`);
    writeFileSync(f, JSON.stringify(body));
    return f;
  };
  const publish = async (body: object): Promise<number> => {
    const r = c.cli(['policy', 'set', '--file', policyFile(body)]);
    expect(r.code, r.stderr).toBe(0);
    const version = Number(/v(\d+)/.exec(r.stdout)?.[1]);
    await waitFor(`policy v${version} applied`, () => c.events(['--agent', a.agentId, '--type', 'agent.policy_applied']).some((e) => e.data.version === version), 60_000, 250);
    return version;
  };
  const events = (type: string) => c.events(['--agent', a.agentId, '--type', type]);

  beforeAll(async () => {
    dir = tempDir('notify');
    chownSync(dir, NOBODY, NOBODY); // the session user's bus socket and the recorder's file live here
    ({ proc: bus, address } = await startSessionBus(dir));
    const srv = await startUntil(PY, [join(import.meta.dirname, 'recording-notifyd.py'), rec(), '600'], { uid: NOBODY, gid: NOBODY, env: { PATH: '/usr/bin:/bin', HOME: dir, DBUS_SESSION_BUS_ADDRESS: address } }, /^ready$/);
    server = srv.proc;

    process.env.SEKIMORI_NOTIFY_BUS = address;
    process.env.SEKIMORI_NOTIFY_UID = String(NOBODY);
    process.env.SEKIMORI_NOTIFY_GID = String(NOBODY);
    process.env.SEKIMORI_LANG = 'ja';
    c = await startConsole({ policy: { agent: { heartbeatSeconds: 1, uploadBatchSize: 500 } } });
    a = await enrollAgent(c, { start: false });
    fake = new FakeSysfs(testAgentEnv(a.stateDir).SEKIMORI_USB_SYSROOT!);
    fake.addRootHub(1);
    // A stick present when the agent starts, with a hostile product string (markup, newline, RTL override).
    stick('1-1', 0x0781, 5);
    const dev = fake.real('usb1', '1-1');
    writeFileSync(join(dev, 'manufacturer'), 'SanDisk\n');
    writeFileSync(join(dev, 'product'), '<b>Ultra</b>&amp;\u202eexe.txt<img src=x>\n');
    await a.start();
  }, 180_000);

  afterAll(async () => {
    await a?.cleanup();
    await c?.cleanup();
    for (const p of [server, bus]) p?.kill('SIGKILL');
    for (const k of ['SEKIMORI_NOTIFY_BUS', 'SEKIMORI_NOTIFY_UID', 'SEKIMORI_NOTIFY_GID', 'SEKIMORI_LANG']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });

  it('the session bus refuses root: the notice must be sent as the session user', () => {
    const r = spawnSync('gdbus', ['call', '--session', '--dest', 'org.freedesktop.Notifications', '--object-path', '/org/freedesktop/Notifications', '--method', 'org.freedesktop.Notifications.GetServerInformation'], {
      env: { ...process.env, DBUS_SESSION_BUS_ADDRESS: address },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).not.toBe(0);
  });

  it('a blocked stick → exactly one Notify call, in Japanese, as the session user, hostile name inert', async () => {
    await waitFor('usb.blocked', () => events('usb.blocked').length >= 1, 60_000, 250);
    const [first] = await waitFor('one Notify call', () => (calls().length >= 1 ? calls() : null), 30_000, 100);
    expect(first!.uid).toBe(NOBODY);
    expect(first!.app).toBe('Sekimori');
    expect(first!.summary).toBe('外部記録媒体を遮断しました');
    expect(first!.body).toContain('情報持ち出し不可のため使用できません');
    expect(first!.body).toContain('「SanDisk ＜b＞Ultra＜/b＞＆amp; exe.txt＜img src=x＞」');
    expect(first!.body).not.toMatch(/[<>\u202e]/);
    expect(first!.body).toMatch(/sekimori-agent apply [0-9A-Za-z-]+|情報システム管理者に連絡/);
    expect(first!.hints.urgency).toBe(2);

    // The next policy re-judges the stick (a second usb.blocked event) — the same plug: no second notice.
    await publish({ usb: { exceptionPollSeconds: 2 } });
    await waitFor('stick re-judged under the new policy', () => events('usb.blocked').length >= 2, 60_000, 250);
    // Positive control: another stick plugged now is told, and it is the second call, not the third.
    stick('1-2', 0x0951, 5);
    await waitFor('second Notify call', () => calls().length >= 2, 60_000, 100);
    expect(calls().map((x) => x.body.match(/「(.*?)」/)?.[1])).toEqual([expect.stringContaining('SanDisk'), 'USB 0951:5567']);
  });

  it('a re-plug is a new plug: one more notice', async () => {
    fake.removeDevice('1-2');
    stick('1-2', 0x0951, 7);
    await waitFor('third Notify call', () => calls().length >= 3, 60_000, 100);
    expect(calls()[2]!.body).toContain('「USB 0951:5567」');
  });

  it('monitor mode: silent unless the policy asks; then only what was not told yet', async () => {
    const before = calls().length;
    await publish({ usb: { mode: 'monitor' } });
    stick('1-3', 0x1307, 5);
    await waitFor('usb.would_block for the new stick', () => events('usb.would_block').some((e) => e.data.port === '1-3'), 60_000, 250);
    // The policy asks for notices in monitor mode: everything is re-judged; the sticks already told
    // stay silent, the one plugged in monitor mode is told now — with the monitor-mode text.
    const wouldBlock = events('usb.would_block').length;
    await publish({ agent: { heartbeatSeconds: 1, uploadBatchSize: 500, notices: { monitor: true } } });
    await waitFor('all three re-judged', () => events('usb.would_block').length >= wouldBlock + 3, 60_000, 250);
    await waitFor('monitor-mode notice', () => calls().length >= before + 1, 60_000, 100);
    // Positive control for "nothing more": a new stick now is told, and is the next call.
    stick('1-4', 0x090c, 5);
    await waitFor('notice for the last stick', () => calls().length >= before + 2, 60_000, 100);
    const tail = calls().slice(before);
    expect(tail.map((x) => [x.summary, x.body.match(/「(.*?)」/)?.[1]])).toEqual([
      ['外部記録媒体（監視モード）', 'USB 1307:5567'],
      ['外部記録媒体（監視モード）', 'USB 090c:5567'],
    ]);
    expect(tail[0]!.body).toContain('監視モードのため今回は使用できますが、記録されました');
    expect(a.output()).toMatch(/notice: usb_blocked shown to uid 65534 \(linux-dbus\)/);
  });
});
