/**
 * Windows tier, issue 15: 申請 from a Windows terminal with the PACKAGED programs under wine 10.
 * sekimori-agent.exe runs (enrolled, enforcing) against a real console on loopback; it starts
 * sekimori-pipebroker.exe (agent/local/windows/pipe-broker.c), which owns the user pipe and names
 * each caller from its token. Shown here:
 *   - a refused device's 申請番号 → `sekimori-agent.exe apply <番号> --reason 業務` run as the wine
 *     user → usb.application_sent at the console with applicant = DOMAIN\user as LookupAccountSid
 *     gives it; the applicant's own name cannot approve; an approver's approval → the exception in
 *     the agent's AllowInstanceIDs and usb.application_answered;
 *   - clients writing garbage, a 10 MB length, nothing at all (more of them than the broker has
 *     instances) or leaving midway → no answer for them, and the next good client is served;
 *   - the broker killed → apply refused with the Japanese message, agent.error (stage user_pipe)
 *     once at the console, served again after the agent restarts it.
 * What wine cannot show: the pipe's DACL (wine does not enforce it: every wine process is one
 * user), another member of staff's token (one Unix user), real Terminal Services sessions.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConsole, waitFor, type TestConsole } from '../../integration/harness.js';
import { requireTools } from '../tools.js';
import { AGENT_EXE, clonePrefix, dropPrefix, ensureWindowsPackage, PACKAGE_TOOLS, parseRegQuery, requireWine, runNodeExe, runWine, winPath } from './wine.js';
import { EnrolledWineAgent } from './enrolled-agent.js';
import { RESTRICTIONS } from '../../../agent/usb/windows/plan.js';
import { eventDataErrors } from '../../../protocol/event-data.js';
import type { Application } from '../../../console/usb/applications-store.js';

const tools = requireTools('Windows package (npm run package)', PACKAGE_TOOLS, 'bash scripts/setup.sh --test');
const wine = tools.ok ? requireWine() : tools;

const SERIAL = 'SEKIAPPLY01';
const REFUSED_KEY = `HKLM\\SYSTEM\\CurrentControlSet\\Enum\\USB\\VID_0781&PID_5567\\${SERIAL}`;
const INSTANCE = `USB\\VID_0781&PID_5567\\${SERIAL}`;
/** The outage after a broker death, widened so the refusal is observed, not raced (agent/local/windows/user-pipe-broker.ts). */
const RESTART_MS = 60_000;
const POLICY = {
  agent: { heartbeatSeconds: 2 },
  usb: { exceptionPollSeconds: 2 },
  // Software watches a folder nothing is dropped in, in monitor mode: nothing on this machine is stopped.
  software: { mode: 'monitor', rules: [{ kind: 'path', action: 'allow', prefix: '/C:/Program Files/Approved' }] },
};

/** Hostile clients, then one good one, on the user pipe (run by node.exe under wine: a Windows client). */
const HOSTILE = String.raw`
import { connect } from 'node:net';
const pipe = process.argv[2];
const frame = (o) => { const p = Buffer.from(JSON.stringify(o)); const l = Buffer.alloc(4); l.writeUInt32LE(p.length); return Buffer.concat([l, p]); };
const open = (what, send) => new Promise((resolve) => {
  const s = connect(pipe); let got = 0; let done = false;
  const end = (how) => { if (!done) { done = true; clearTimeout(t); resolve({ what, how, got, sock: s }); } };
  const t = setTimeout(() => end('open'), 12000);
  s.on('connect', () => { try { send(s); } catch {} });
  s.on('data', (c) => { got += c.length; });
  s.on('error', (e) => end('error ' + e.code));
  s.on('close', () => end('closed'));
});
const held = [];
const results = [];
for (let i = 0; i < 10; i++) held.push(open('silent', () => {}));
results.push(open('garbage', (s) => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')));
results.push(open('10MB', (s) => { const l = Buffer.alloc(4); l.writeUInt32LE(10000000); s.write(l); s.write(Buffer.alloc(10000000)); }));
results.push(open('midway', (s) => { const l = Buffer.alloc(4); l.writeUInt32LE(100); s.write(l); s.write('0123456789'); setTimeout(() => s.destroy(), 200); }));
results.push(open('bad-json', (s) => { const p = Buffer.from('{"method":"POST","path":"/usb/apply","body":'); const l = Buffer.alloc(4); l.writeUInt32LE(p.length); s.write(Buffer.concat([l, p])); }));
await new Promise((r) => setTimeout(r, 500));
// The answer is read as soon as its frame is complete (the broker hangs up on a client that lingers: EPIPE after it).
const good = await new Promise((resolve) => {
  const s = connect(pipe); let b = Buffer.alloc(0); let done = false;
  const end = (x) => { if (!done) { done = true; clearTimeout(t); s.destroy(); resolve(x); } };
  const t = setTimeout(() => end({ error: 'timeout' }), 60000);
  s.on('connect', () => s.write(frame({ method: 'POST', path: '/usb/apply', body: { ref: 'ZZZ999', reason: 'x' } })));
  s.on('data', (c) => { b = Buffer.concat([b, c]); if (b.length >= 4 && b.length >= 4 + b.readUInt32LE(0)) end(JSON.parse(b.subarray(4, 4 + b.readUInt32LE(0)).toString())); });
  s.on('error', (e) => end({ error: e.code }));
  s.on('close', () => end({ error: 'no answer' }));
});
const all = await Promise.all(results);
for (const h of held) (await h).sock.destroy();
const silent = await Promise.all(held);
process.stdout.write(JSON.stringify({ good, hostile: all.map(({ what, how, got }) => ({ what, how, got })), silent: silent.map(({ how, got }) => ({ how, got })) }) + '\n');
process.exit(0);
`;

describe.skipIf(!wine.ok)('packaged sekimori-agent.exe under wine: 申請 through the broker (issue 15)', () => {
  let c: TestConsole;
  let prefix = '';
  let agent: EnrolledWineAgent;
  let ref = '';
  let pipe = '';
  const work = mkdtempSync('/tmp/sekimori-wine-apply-');
  const state = join(work, 'state');
  const tail = () => agent.tail();
  const brokerPids = () => [...agent.output().matchAll(/user pipe (\S+) served by broker pid (\d+)/g)].map((m) => Number(m[2]));
  const apply = (args: string[]) => runWine([winPath(AGENT_EXE), 'apply', ...args, '--state', winPath(state), '--json'], { prefix, timeoutMs: 120_000 });

  beforeAll(async () => {
    ensureWindowsPackage();
    prefix = clonePrefix('apply');
    c = await startConsole({ policy: POLICY });
    agent = new EnrolledWineAgent(c, prefix, state);
  }, 600_000);

  afterAll(async () => {
    await agent?.stop();
    if (prefix) await dropPrefix(prefix);
    await c?.cleanup();
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('enrols and runs; the broker serves the user pipe', async () => {
    await agent.enroll();
    agent.start({ SEKIMORI_PIPEBROKER_RESTART_MS: String(RESTART_MS) });
    await agent.eventOf('agent.started', 'agent.started', () => true, 120_000);
    pipe = (await agent.inLog('the broker ready', /user pipe (\S+) served by broker pid (\d+)/))[1]!;
    expect(pipe).toMatch(/^\\\\\.\\pipe\\sekimori-user-[0-9a-f]{16}$/);
  }, 300_000);

  it('a refused stick → its 申請番号 → apply as the wine user → usb.application_sent with applicant DOMAIN\\user', async () => {
    expect(agent.agentId).not.toBe('');
    for (const args of [
      ['/v', 'HardwareID', '/t', 'REG_MULTI_SZ', '/d', 'USB\\VID_0781&PID_5567&REV_0126\\0USB\\VID_0781&PID_5567'],
      ['/v', 'CompatibleIDs', '/t', 'REG_MULTI_SZ', '/d', 'USB\\Class_08&SubClass_06&Prot_50\\0USB\\Class_08&SubClass_06\\0USB\\Class_08'],
      ['/v', 'ConfigFlags', '/t', 'REG_DWORD', '/d', '64'],
    ]) {
      const r = await runWine(['reg', 'add', REFUSED_KEY, ...args, '/f'], { prefix, timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(0);
    }
    await agent.eventOf('usb.blocked for the stick', 'usb.blocked', (e) => e.data.serial === SERIAL && e.data.rule === 'class:08');
    ref = (await agent.inLog('申請番号 in the agent log', new RegExp(`${SERIAL} blocked; 申請番号 ([A-Z2-9]{6})`)))[1]!;

    const r = await apply([ref, '--reason', '業務']);
    expect(r.code, r.stderr + r.stdout + tail()).toBe(0);
    const sent = JSON.parse(r.stdout) as { id: string; ref: string };
    expect(sent.ref).toBe(ref);

    const ev = await agent.eventOf('usb.application_sent', 'usb.application_sent', (e) => e.data.id === sent.id);
    expect(eventDataErrors('usb.application_sent', ev.data)).toEqual([]);
    // LookupAccountSid's DOMAIN\user; wine's user is the Unix account running it.
    expect(ev.user).toMatch(/^[^\\]+\\[^\\]+$/);
    expect(ev.user!.split('\\')[1]!.toLowerCase()).toBe(userInfo().username.toLowerCase());
    expect(ev.data).toMatchObject({ ref, vendorId: '0781', productId: '5567', serialHex: Buffer.from(SERIAL).toString('hex'), reason: '業務' });
    const app = await waitFor('application listed', () => c.json<Application[]>(['application', 'list']).find((x) => x.appId === sent.id), 60_000, 500);
    expect(app.staffUser).toBe(ev.user);

    // The applicant cannot approve, neither as DOMAIN\user nor by the bare name a console account has.
    for (const by of [ev.user!, ev.user!.split('\\')[1]!]) {
      const own = c.cli(['application', 'approve', app.id, '--by', by]);
      expect(own.code, by).toBe(1);
      expect(own.stderr).toMatch(/申請者本人/);
    }
    const ok = c.json<Application>(['application', 'approve', app.id, '--by', 'kacho', '--hours', '1']);
    expect(ok.status).toBe('approved');

    // The exception reaches the agent: Windows' allow list names the stick; the applicant's answer is recorded.
    let last: string[] = [];
    await agent.until(
      'the approved stick in AllowInstanceIDs',
      async () => {
        const q = await runWine(['reg', 'query', `${RESTRICTIONS}\\AllowInstanceIDs`], { prefix, timeoutMs: 60_000 });
        last = [...parseRegQuery(q.stdout).values()].flatMap((m) => [...m.values()].map((v) => v.data));
        return last.includes(INSTANCE);
      },
      90_000,
      2000,
    ).catch((e: Error) => {
      throw new Error(`${JSON.stringify(last)}: ${e.message}`);
    });
    const answered = await agent.eventOf('usb.application_answered', 'usb.application_answered', (e) => e.data.id === sent.id);
    expect(answered.user).toBe(ev.user);
    expect(answered.data).toMatchObject({ status: 'approved', until: ok.until });
  }, 400_000);

  it('garbage, a 10 MB length, silence (10 clients, more than the instances), a client leaving midway → no answer for them; the next good client is served', async () => {
    expect(pipe).not.toBe('');
    const script = join(work, 'hostile.mjs');
    writeFileSync(script, HOSTILE);
    const r = await runNodeExe([winPath(script), pipe], { prefix, timeoutMs: 180_000 });
    expect(r.code, r.stderr + tail()).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      good: { status?: number; body?: { error?: string; message?: string }; error?: string };
      hostile: { what: string; how: string; got: number }[];
      silent: { how: string; got: number }[];
    };
    // Served by the agent: an answer with its refusal for a ref this terminal never issued.
    expect(out.good, JSON.stringify(out)).toMatchObject({ status: 404, body: { error: 'unknown_ref' } });
    expect(out.good.body?.message).toMatch(/申請番号/);
    const by = Object.fromEntries(out.hostile.map((h) => [h.what, h]));
    for (const what of ['garbage', '10MB', 'midway']) {
      expect(by[what]!.got, what).toBe(0); // dropped, never answered
      expect(by[what]!.how, what).not.toBe('open'); // and hung up on (bounded), not left waiting
    }
    // Well-framed but not a request: the agent answers 400 itself (8 bytes of frame at least).
    expect(by['bad-json']!.got).toBeGreaterThan(4);
    expect(out.silent.every((s) => s.got === 0)).toBe(true);
    expect(agent.ended).toBe(false);
  }, 300_000);

  it('the broker killed → apply refused in Japanese, agent.error once, served again after the restart', async () => {
    const pid = brokerPids().at(-1)!;
    expect(pid).toBeGreaterThan(0);
    const k = await runWine(['taskkill', '/F', '/PID', String(pid)], { prefix, timeoutMs: 60_000 });
    expect(k.code, k.stdout + k.stderr).toBe(0);
    await agent.inLog('broker exit noticed', /user pipe: broker not running/, 60_000);

    const refused = await apply([ref, '--reason', '業務']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/申請を受け付けられません/);
    expect(refused.stdout).toBe('');

    const down = await agent.eventOf('agent.error (user_pipe)', 'agent.error', (e) => e.data.stage === 'user_pipe', 60_000);
    expect(String(down.data.reason)).toMatch(/applications refused/);

    await agent.until('the broker restarted', () => brokerPids().length >= 2, RESTART_MS + 120_000);
    const again = await apply(['ZZZ998', '--reason', '業務']);
    expect(again.code).toBe(1); // answered by the agent: no such 申請番号 here
    expect(JSON.parse(again.stdout)).toMatchObject({ error: 'unknown_ref' });
    expect(agent.events('agent.error').filter((e) => e.data.stage === 'user_pipe')).toHaveLength(1);
  }, 400_000);
});
