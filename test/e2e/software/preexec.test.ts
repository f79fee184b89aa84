/**
 * Pre-exec tier: the real helper on the real kernel's fanotify (FAN_OPEN_EXEC_PERM), driven by the
 * real software capability in this process (its judge, its /proc scan and kill). The helper marks
 * only a tmpfs this test mounts in a private mount namespace (preexec-ns.ts): no process of this
 * machine is judged. Skips loudly when not root, when a tool is missing, or when the kernel gives
 * no fanotify permission events.
 *
 * A second part runs the agent side (PreExecGuard from dist/) as a separate process so that it can
 * be stalled and killed for real: the policy's fallback, then the helper's exit after its grace.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsoleUnreachableError, type AgentContext, type NewEvent } from '../../../agent/capability.js';
import { SoftwareCapability } from '../../../agent/software/index.js';
import { PreExecLine } from '../../../agent/software/linux/preexec/line.js';
import { defaultSeverity, type SekimoriEvent } from '../../../protocol/events.js';
import { builtinPolicy, type PolicyDocument } from '../../../protocol/policy.js';
import { defaultSoftwarePolicy, type SoftwarePolicy } from '../../../protocol/policy-software.js';
import { waitFor } from '../../integration/harness.js';
import { isRoot, requireTools } from '../tools.js';
import { buildHelper, probeFanotify, ROOT, runIn, stage, workDir, type Stage } from './preexec-ns.js';

const linux = process.platform === 'linux';
const work = workDir('preexec-e2e');
const built = linux && isRoot() ? buildHelper(work) : { path: null, error: 'not root on Linux' };
const why: string[] = [];
if (!linux) why.push('Linux (fanotify)');
else if (!isRoot()) why.push('root (fanotify permission events need CAP_SYS_ADMIN)');
else if (!built.path) why.push(`the helper built from source (${built.error})`);
else {
  const probe = probeFanotify(built.path);
  if (probe) why.push(`fanotify permission events: ${probe}`);
}
const tools = requireTools('pre-exec (real fanotify)', ['unshare', 'nsenter', 'mount', 'make', 'gcc'], 'apt-get install util-linux mount make gcc libc6-dev (and run as root)', { missing: why });
afterAll(() => rmSync(work, { recursive: true, force: true }));

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const script = (marker: string) => `#!/bin/sh\n# ${marker}\necho started > "$1"\n`;

function recorder(stateDir: string) {
  const events: NewEvent[] = [];
  const ctx: AgentContext = {
    agentId: 'preexec-test',
    stateDir,
    monitorOnly: false,
    emit(e: NewEvent): SekimoriEvent {
      events.push(e);
      return { id: randomUUID(), agentId: 'preexec-test', seq: events.length, ts: new Date().toISOString(), type: e.type, severity: e.severity ?? defaultSeverity(e.type), user: e.user ?? null, data: e.data, prevHash: '', hash: '' };
    },
    log: () => undefined,
    console: { request: () => Promise.reject(new ConsoleUnreachableError('none')), consoleNow: () => new Date(), reachable: () => false },
    local: { route: () => undefined, socketPath: join(stateDir, 'agent.sock') },
  };
  return { ctx, events };
}

describe.skipIf(!tools.ok)('pre-exec: the capability with the real helper on a test tmpfs', () => {
  let s: Stage;
  let cap: SoftwareCapability;
  /** The capability's pre-exec line: Linux's (this tier runs only there). */
  const line = (): PreExecLine => {
    if (!(cap.preExec instanceof PreExecLine)) throw new Error('no Linux pre-exec line');
    return cap.preExec;
  };
  let rec: ReturnType<typeof recorder>;
  let helper: string;
  let version = 1;
  const m = (name: string) => join(s.mnt, name);
  const marker = (name: string) => existsSync(s.outside(join(s.mnt, 'out', name)));
  const policy = (over: Partial<SoftwarePolicy>): PolicyDocument => ({
    ...builtinPolicy(),
    version: version++,
    software: {
      ...defaultSoftwarePolicy(),
      mode: 'enforce',
      locations: [s.mnt],
      rules: [{ kind: 'sha256', action: 'allow', sha256: sha(s.outside(m('good.sh'))) }],
      packages: { adminDir: '', root: '/' },
      quarantine: { enabled: false, dir: '' },
      scanIntervalMs: 100,
      syncSeconds: 3600,
      preExec: { enabled: true, fallback: 'deny', timeoutMs: 2000, marks: [s.mnt] },
      ...over,
    },
  });
  const of = (type: string) => rec.events.filter((e) => e.type === type);

  beforeAll(async () => {
    s = await stage(workDir('preexec-cap'));
    helper = join(work, 'helper-copy');
    copyFileSync(built.path!, helper);
    chmodSync(helper, 0o755);
    const put = (name: string, text: string) => {
      writeFileSync(s.outside(m(name)), text);
      chmodSync(s.outside(m(name)), 0o755);
    };
    put('good.sh', script('good'));
    put('evil.sh', script('evil'));
    copyFileSync('/usr/bin/sleep', s.outside(m('evil-sleep')));
    chmodSync(s.outside(m('evil-sleep')), 0o755);
    // Where the scripts leave their markers (a directory on the tmpfs, not marked for exec of its own).
    spawnOk(s.prefix, ['mkdir', '-m', '0777', m('out')]);
    rec = recorder(join(work, 'state'));
    cap = new SoftwareCapability();
    line().setEnv({ helper: () => helper, prefix: s.prefix, mountPollMs: 200 });
    await cap.start(rec.ctx, policy({}));
    await waitFor('helper READY', () => line().status().running, 15_000);
  }, 60_000);

  afterAll(async () => {
    await cap?.stop();
    s?.close();
  });

  it('an allowed program starts', async () => {
    const r = await runIn(s, m('good.sh'), [m('out/good')]).done;
    expect(r.rc).toBe(0);
    expect(marker('good')).toBe(true);
  });

  it('an unauthorized program never starts: the exec fails with EPERM, its marker never appears, the refusal is recorded', async () => {
    const r = await runIn(s, m('evil.sh'), [m('out/evil')]).done;
    expect(r.rc).toBe(126);
    expect(r.stderr).toMatch(/Operation not permitted/);
    expect(marker('evil')).toBe(false);
    const d = of('software.exec_denied').find((e) => String(e.data.path).endsWith('/evil.sh'));
    expect(d?.data).toMatchObject({ reason: 'not_allowed', mode: 'enforce', sha256: sha(s.outside(m('evil.sh'))) });
  });

  it('the second refusal comes from the helper’s cache (no new question to the agent)', async () => {
    const before = line().status().stats!.questions;
    const r = await runIn(s, m('evil.sh'), [m('out/evil')]).done;
    expect(r.rc).toBe(126);
    expect(line().status().stats!.questions).toBe(before);
    const hs = await line().helperStats();
    expect(hs!.hits).toBeGreaterThanOrEqual(1);
  });

  it('a policy change flushes the cache: a newly allowed file runs, and is refused again once the rule goes', async () => {
    const allowEvil = { kind: 'sha256' as const, action: 'allow' as const, sha256: sha(s.outside(m('evil.sh'))) };
    await cap.applyPolicy(policy({ rules: [...policy({}).software.rules, allowEvil] }));
    await waitFor('policy applied to the helper', () => line().status().running, 10_000);
    const r = await runIn(s, m('evil.sh'), [m('out/evil-allowed')]).done;
    expect(r.rc).toBe(0);
    expect(marker('evil-allowed')).toBe(true);
    await cap.applyPolicy(policy({}));
    const again = await runIn(s, m('evil.sh'), [m('out/evil-again')]).done;
    expect(again.rc).toBe(126);
    expect(marker('evil-again')).toBe(false);
  });

  it('monitor mode never denies (the helper is not running), enforce brings it back', async () => {
    await cap.applyPolicy(policy({ mode: 'monitor' }));
    await waitFor('helper stopped in monitor mode', () => line().status().why === 'monitor' && !line().status().running, 10_000);
    const r = await runIn(s, m('evil.sh'), [m('out/evil-monitor')]).done;
    expect(r.rc).toBe(0);
    expect(marker('evil-monitor')).toBe(true);
    const started = of('software.preexec_started').length;
    await cap.applyPolicy(policy({}));
    await waitFor('helper back in enforce mode', () => line().status().running && of('software.preexec_started').length > started, 15_000);
    expect((await runIn(s, m('evil.sh'), [m('out/evil-enforce')]).done).rc).toBe(126);
  });

  it('a tmpfs mounted later below a marked place is marked too (a mount mark covers one mount)', async () => {
    const sub = m('later');
    spawnOk(s.prefix, ['mkdir', sub]);
    spawnOk(s.prefix, ['mount', '-t', 'tmpfs', '-o', 'size=8m,mode=0755', 'sekimori-later', sub]);
    writeFileSync(s.outside(join(sub, 'evil.sh')), script('evil-later'));
    chmodSync(s.outside(join(sub, 'evil.sh')), 0o755);
    await waitFor('the new mount marked', () => line().status().marked.includes(sub), 10_000);
    await line().helperStats(); // the helper reads its input in order: the mark is placed once this answers
    const r = await runIn(s, join(sub, 'evil.sh'), [m('out/evil-later')]).done;
    expect(r.rc).toBe(126);
    expect(marker('evil-later')).toBe(false);
  });

  it('the helper killed: the kernel lets execs through, the /proc scan still kills the program; the helper comes back', async () => {
    const pid = line().status().stats!.pid!;
    expect(pid).toBeGreaterThan(1);
    // Keep it down while the program starts: its executable is moved away until the program was killed.
    renameSync(helper, `${helper}.away`);
    process.kill(pid, 'SIGKILL');
    await waitFor('helper exit noticed', () => !line().status().running && of('software.preexec_stopped').some((e) => e.data.pid === pid), 10_000);
    const run = runIn(s, m('evil-sleep'), ['30']);
    const killed = await waitFor('software.killed for evil-sleep', () => of('software.killed').find((e) => String(e.data.path).endsWith('/evil-sleep')), 15_000);
    const r = await run.done;
    expect(r.rc).toBe(137); // 128 + SIGKILL: it started (no helper) and the scan killed it
    expect(killed.data.mode).toBe('enforce');
    renameSync(`${helper}.away`, helper);
    await waitFor('helper restarted', () => line().status().running && of('software.preexec_started').some((e) => Number(e.data.restarts) >= 1), 40_000, 200);
    expect((await runIn(s, m('evil.sh'), [m('out/evil-after')]).done).rc).toBe(126);
  }, 90_000);
});

/** A command inside the namespace that must succeed (setup). */
function spawnOk(prefix: string[], cmd: string[]): void {
  const r = spawnSync(prefix[0]!, [...prefix.slice(1), ...cmd], { stdio: 'ignore', timeout: 10_000 }).status;
  if (r !== 0) throw new Error(`${cmd.join(' ')} failed (${r})`);
}

// ---- the agent as its own process: stalled, then killed ---------------------------------------

const GUARD_JS = join(ROOT, 'dist/agent/software/linux/preexec/guard.js');
const DRIVER = `
import { PreExecGuard } from ${JSON.stringify(pathToFileURL(GUARD_JS).href)};
const e = process.env;
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const guard = new PreExecGuard({
  helper: e.HELPER, args: JSON.parse(e.ARGS), marks: [e.MNT], fallback: 'deny', timeoutMs: Number(e.TIMEOUT),
  allows: (a) => a,
  // Files named slow* are answered only after 5 s (the agent stalls); everything else is allowed.
  judge: async (path) => {
    if (/\\/slow[^/]*$/.test(path)) await new Promise((r) => setTimeout(r, 5000));
    return { verdict: { allowed: true, reason: 'allow_rule', rule: 'test' }, subject: { path, sha256: '' }, inScope: true };
  },
  emit: (ev) => { out({ type: ev.type, data: ev.data }); return {}; },
  log: () => undefined,
  uidOf: () => null,
  pidFile: e.PIDFILE,
  prefix: JSON.parse(e.PREFIX),
});
const ok = await guard.start();
out({ type: 'ready', ok });
setInterval(() => undefined, 1 << 30);
`;

interface Driver {
  proc: ChildProcess;
  lines: { type: string; data?: Record<string, unknown>; ok?: boolean }[];
  helperPid: number;
}

/** The agent side (PreExecGuard) as its own process; every event it records is a JSON line on stdout. */
async function startDriver(s: Stage, graceMs: number): Promise<Driver> {
  const args = ['--timeout-ms', '500', '--fallback', 'deny', '--orphan-grace-ms', String(graceMs), '--mark', s.mnt];
  const proc = spawn(process.execPath, ['--input-type=module', '-e', DRIVER], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, HELPER: built.path!, ARGS: JSON.stringify(args), MNT: s.mnt, TIMEOUT: '500', PIDFILE: join(work, 'driver-helper.pid'), PREFIX: JSON.stringify(s.prefix) },
  });
  const lines: Driver['lines'] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => lines.push(JSON.parse(l)));
  const ready = await waitFor('driver ready', () => lines.find((l) => l.type === 'ready'), 15_000);
  expect(ready.ok).toBe(true);
  return { proc, lines, helperPid: Number(lines.find((l) => l.type === 'software.preexec_started')!.data!.pid) };
}

function gone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z');
  } catch {
    return true;
  }
}

async function killDriver(d: Driver): Promise<void> {
  if (d.proc.exitCode !== null || d.proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => d.proc.once('exit', () => r()));
  d.proc.kill('SIGKILL');
  await exited;
}

describe.skipIf(!tools.ok)('pre-exec: the agent stalled or killed while the helper runs (fallback deny)', () => {
  let s: Stage;
  let driver: ChildProcess;
  let lines: Driver['lines'] = [];
  const m = (name: string) => join(s.mnt, name);
  let helperPid = 0;
  const drivers: Driver[] = [];

  beforeAll(async () => {
    if (!existsSync(GUARD_JS)) throw new Error(`${GUARD_JS} missing: run npm run build first`);
    s = await stage(workDir('preexec-agent'));
    for (const n of ['ok1.sh', 'ok2.sh', 'slow1.sh', 'slow2.sh', 'slow3.sh']) {
      writeFileSync(s.outside(m(n)), script(n));
      chmodSync(s.outside(m(n)), 0o755);
    }
    spawnOk(s.prefix, ['mkdir', '-m', '0777', m('out')]);
    const d = await startDriver(s, 4000);
    drivers.push(d);
    ({ proc: driver, lines, helperPid } = d);
  }, 60_000);

  afterAll(async () => {
    for (const d of drivers) {
      await killDriver(d);
      // An orphaned helper is ours: end it if its grace has not run out yet.
      try {
        if (readFileSync(`/proc/${d.helperPid}/cmdline`, 'utf8').includes('sekimori-exec-guard')) process.kill(d.helperPid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    s?.close();
  });

  it('an agent that does not answer in time: the fallback (deny) applies, recorded once for a burst', async () => {
    const results = await Promise.all(['slow1.sh', 'slow2.sh', 'slow3.sh'].map((n) => runIn(s, m(n), [m(`out/${n}`)]).done));
    for (const r of results) expect(r.rc).toBe(126);
    for (const n of ['slow1.sh', 'slow2.sh', 'slow3.sh']) expect(existsSync(s.outside(m(`out/${n}`)))).toBe(false);
    const fb = await waitFor('software.preexec_fallback', () => lines.find((l) => l.type === 'software.preexec_fallback'), 5_000);
    expect(fb.data).toMatchObject({ fallback: 'deny', count: 1, reasons: { timeout: 1 }, timeoutMs: 500 });
    expect(lines.filter((l) => l.type === 'software.preexec_fallback')).toHaveLength(1); // the other two wait for the window's summary
  });

  it('the agent killed: cached verdicts keep applying, anything new gets the fallback, and after its grace the helper exits (execs then go through: the /proc scan of the restarted agent is the line)', async () => {
    expect((await runIn(s, m('ok1.sh'), [m('out/ok1-a')]).done).rc).toBe(0); // judged and cached while the agent lives
    driver.kill('SIGKILL');
    await new Promise<void>((r) => (driver.exitCode !== null || driver.signalCode !== null ? r() : driver.once('exit', () => r())));
    expect((await runIn(s, m('ok1.sh'), [m('out/ok1-b')]).done).rc).toBe(0);
    const fresh = await runIn(s, m('ok2.sh'), [m('out/ok2-a')]).done;
    expect(fresh.rc).toBe(126);
    expect(existsSync(s.outside(m('out/ok2-a')))).toBe(false);
    await waitFor('orphaned helper exits after its grace', () => gone(helperPid), 20_000, 200);
    expect((await runIn(s, m('ok2.sh'), [m('out/ok2-b')]).done).rc).toBe(0);
  }, 60_000);

  it('the restarted agent ends the helper its killed predecessor left, once its own helper is ready', async () => {
    const first = await startDriver(s, 600_000); // a grace far longer than this test's waits
    drivers.push(first);
    await killDriver(first);
    expect(gone(first.helperPid)).toBe(false); // orphaned, still guarding
    const second = await startDriver(s, 4000);
    drivers.push(second);
    expect(second.helperPid).not.toBe(first.helperPid);
    await waitFor('the leftover helper ended by the new agent', () => gone(first.helperPid), 20_000, 200);
    writeFileSync(s.outside(m('ok3.sh')), script('ok3'));
    chmodSync(s.outside(m('ok3.sh')), 0o755);
    expect((await runIn(s, m('ok3.sh'), [m('out/ok3')]).done).rc).toBe(0); // the new agent answers
  }, 60_000);
});

// ---- the helper alone, driven line by line: hostile and wrong answers --------------------------

describe.skipIf(!tools.ok)('pre-exec: the helper refuses what is not an answer to its question', () => {
  let s: Stage;
  let h: ChildProcess;
  const got: string[] = [];
  const m = (name: string) => join(s.mnt, name);
  const next = (pred: (l: string) => boolean, what: string) => waitFor(what, () => got.find(pred), 10_000, 20);
  /** The n-th question (0-based) the helper asked, split into its fields. */
  const question = async (n: number) => (await waitFor(`question ${n}`, () => got.filter((l) => l.startsWith('Q '))[n], 10_000, 20)).split(' ');
  const asked = () => got.filter((l) => l.startsWith('Q ')).length;

  beforeAll(async () => {
    s = await stage(workDir('preexec-raw'));
    for (const n of ['a.sh', 'b.sh', 'c.sh']) {
      writeFileSync(s.outside(m(n)), script(n));
      chmodSync(s.outside(m(n)), 0o755);
    }
    spawnOk(s.prefix, ['mkdir', '-m', '0777', m('out')]);
    h = spawn(s.prefix[0]!, [...s.prefix.slice(1), built.path!, '--mark', s.mnt, '--timeout-ms', '700', '--fallback', 'deny', '--orphan-grace-ms', '0'], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: h.stdout! }).on('line', (l) => got.push(l));
    await next((l) => l.startsWith('READY '), 'READY');
  }, 30_000);
  afterAll(() => {
    h?.kill('SIGKILL');
    s?.close();
  });

  it('garbage, an over-long line and an answer for another file identity leave the question open: it times out to the fallback', async () => {
    const run = runIn(s, m('a.sh'), [m('out/a')]);
    const [, id, , , dev, ino, cs, cns] = await question(0);
    h.stdin!.write('hello\n' + 'A'.repeat(100_000) + '\n' + `A ${id} ${dev} ${ino} ${cs} ${Number(cns) ^ 1} a\n` + `A ${id} 99999999999999999999999 ${ino} ${cs} ${cns} a\n` + `A ${id} ${dev} ${ino} ${cs} ${cns} maybe\n`);
    const r = await run.done;
    expect(r.rc).toBe(126);
    // The helper answers the kernel first, then reports: the line may reach us after the program ended.
    await next((l) => l === `F timeout d ${id}`, 'the fallback reported');
    expect(existsSync(s.outside(m('out/a')))).toBe(false);
  });

  it('still serves: a right answer lets the program run and is cached; X flushes the cache', async () => {
    const run = runIn(s, m('b.sh'), [m('out/b1')]);
    const [, id, , , dev, ino, cs, cns] = await question(1);
    h.stdin!.write(`A ${id} ${dev} ${ino} ${cs} ${cns} a\n`);
    expect((await run.done).rc).toBe(0);
    expect((await runIn(s, m('b.sh'), [m('out/b2')]).done).rc).toBe(0); // from the cache: no new question
    expect(asked()).toBe(2);
    h.stdin!.write('X\n');
    const again = runIn(s, m('b.sh'), [m('out/b3')]);
    await question(2); // asked again after the flush
    expect((await again.done).rc).toBe(126); // unanswered → fallback deny
  });

  it('the agent gone (stdin closed): pending and new questions get the fallback at once, then it exits', async () => {
    const run = runIn(s, m('c.sh'), [m('out/c')]);
    await question(3);
    h.stdin!.end();
    expect((await run.done).rc).toBe(126);
    const code = await new Promise<number | null>((res) => (h.exitCode !== null ? res(h.exitCode) : h.once('exit', (c) => res(c))));
    expect(code).toBe(0);
    expect(got.some((l) => /^F orphan d \d+$/.test(l))).toBe(true);
  });
});
