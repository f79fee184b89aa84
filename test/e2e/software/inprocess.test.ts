/**
 * The software capability in this process with a recording context, against real processes and
 * files in a scratch scope: path tricks that need the kernel (symlinks, a binary deleted after
 * exec, an interpreter running a script, the dynamic loader running a binary) and the
 * monitor-only enrollment flag. Nothing outside the scratch folder is in scope.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ConsoleUnreachableError, type AgentContext, type NewEvent } from '../../../agent/capability.js';
import { SoftwareCapability } from '../../../agent/software/index.js';
import { defaultSeverity, type SekimoriEvent } from '../../../protocol/events.js';
import { builtinPolicy, type PolicyDocument } from '../../../protocol/policy.js';
import { defaultSoftwarePolicy, type SoftwarePolicy } from '../../../protocol/policy-software.js';
import { waitFor } from '../../integration/harness.js';

const linux = process.platform === 'linux';
const work = mkdtempSync(join(tmpdir(), 'sekimori-sw-inproc-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function recorder(monitorOnly = false) {
  const events: NewEvent[] = [];
  const state = mkdtempSync(join(work, 'state-'));
  const ctx: AgentContext = {
    agentId: 'test',
    stateDir: state,
    monitorOnly,
    emit(e: NewEvent): SekimoriEvent {
      events.push(e);
      return { id: randomUUID(), agentId: 'test', seq: events.length, ts: new Date().toISOString(), type: e.type, severity: e.severity ?? defaultSeverity(e.type), user: e.user ?? null, data: e.data, prevHash: '', hash: '' };
    },
    log: () => undefined,
    console: { request: () => Promise.reject(new ConsoleUnreachableError('none')), consoleNow: () => new Date(), reachable: () => false },
    local: { route: () => undefined, socketPath: join(state, 'agent.sock') },
  };
  return { ctx, events };
}

function policy(scope: string, s: Partial<SoftwarePolicy>): PolicyDocument {
  return {
    ...builtinPolicy(),
    version: 1,
    software: {
      ...defaultSoftwarePolicy(),
      locations: [scope],
      packages: { adminDir: '', root: '/' },
      // Something must be allowed for the capability to be active; nothing in this scope is.
      rules: [{ kind: 'sha256', action: 'allow', sha256: 'f'.repeat(64) }],
      syncSeconds: 3600,
      ...s,
    },
  };
}

const readlinkSafe = (p: string) => {
  try {
    return readlinkSync(p);
  } catch {
    return null;
  }
};
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const children: ChildProcess[] = [];
const caps: SoftwareCapability[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const c of caps.splice(0)) await c.stop();
});

async function setup(s: Partial<SoftwarePolicy>, monitorOnly = false) {
  const scope = mkdtempSync(join(work, 'scope-'));
  const r = recorder(monitorOnly);
  const cap = new SoftwareCapability();
  caps.push(cap);
  await cap.start(r.ctx, policy(scope, s));
  await cap.watcherReady;
  return { scope, cap, ...r };
}

function copyExe(from: string, to: string): string {
  copyFileSync(from, to);
  chmodSync(to, 0o755);
  return to;
}

describe.skipIf(!linux)('software capability against real processes (scratch scope)', () => {
  it('a binary deleted after exec is hashed from what runs and reported as deleted', async () => {
    const scope = mkdtempSync(join(work, 'scope-'));
    const bin = copyExe('/usr/bin/sleep', join(scope, 'vanishing'));
    const digest = sha(bin);
    const p = spawn(bin, ['30'], { stdio: 'ignore' });
    children.push(p);
    await waitFor('exec done', () => readlinkSafe(`/proc/${p.pid}/exe`) === bin);
    unlinkSync(bin); // gone before the agent's first scan sees the process
    const r = recorder();
    const cap = new SoftwareCapability();
    caps.push(cap);
    await cap.start(r.ctx, policy(scope, { mode: 'monitor' }));
    const e = await waitFor('report', () => r.events.find((x) => x.type === 'software.unauthorized_process' && x.data.pid === p.pid));
    expect(e.data.sha256).toBe(digest);
    expect(e.data.path).toBe(bin);
    expect(e.data.deleted).toBe(true);
  });

  it('a sha256 allow rule still covers a binary deleted after exec', async () => {
    const scope0 = mkdtempSync(join(work, 'pre-'));
    const src = copyExe('/usr/bin/sleep', join(scope0, 'x'));
    const { scope, events } = await setup({ mode: 'monitor', rules: [{ kind: 'sha256', action: 'allow', sha256: sha(src) }] });
    const bin = copyExe('/usr/bin/sleep', join(scope, 'allowed-by-hash'));
    const p = spawn(bin, ['30'], { stdio: 'ignore' });
    children.push(p);
    await new Promise((r) => setTimeout(r, 20));
    unlinkSync(bin);
    await new Promise((r) => setTimeout(r, 1200));
    expect(events.filter((x) => x.data.pid === p.pid)).toEqual([]);
  });

  it('a symlink in a home folder is judged by its target', async () => {
    const { scope, events } = await setup({ mode: 'monitor' });
    mkdirSync(join(scope, 'home/u/Desktop'), { recursive: true });
    const target = copyExe('/usr/bin/true', join(scope, 'real-tool'));
    await waitFor('target reported', () => events.find((x) => x.type === 'software.unauthorized_file' && x.data.path === target));
    const link = join(scope, 'home/u/Desktop/shortcut');
    symlinkSync(target, link);
    await new Promise((r) => setTimeout(r, 800));
    // Same target and content: not reported a second time under the link's name.
    expect(events.filter((x) => x.type === 'software.unauthorized_file' && x.data.link === link)).toEqual([]);
    // A link to something outside the scope is not ours to judge.
    symlinkSync('/usr/bin/true', join(scope, 'home/u/Desktop/outside'));
    await new Promise((r) => setTimeout(r, 500));
    expect(events.filter((x) => typeof x.data.path === 'string' && (x.data.path as string).startsWith('/usr/bin'))).toEqual([]);
  });

  it('an interpreter outside the scope running a script inside it, and ld.so running a binary, are judged by what they run', async () => {
    const { scope, events } = await setup({ mode: 'enforce', quarantine: { enabled: false, dir: '' } });
    const script = join(scope, 'job.sh');
    writeFileSync(script, 'sleep 30\n', { mode: 0o644 }); // not even executable: still judged when run by sh
    const p = spawn('/bin/sh', [script], { stdio: 'ignore' });
    children.push(p);
    const k = await waitFor('script killed', () => events.find((x) => x.type === 'software.killed' && x.data.pid === p.pid));
    expect(k.data.path).toBe(script);
    const bin = copyExe('/usr/bin/sleep', join(scope, 'via-loader'));
    const loader = ['/lib64/ld-linux-x86-64.so.2', '/lib/ld-linux-aarch64.so.1'].find((l) => existsSync(l));
    if (loader) {
      const q = spawn(loader, [bin, '30'], { stdio: 'ignore' });
      children.push(q);
      const e = await waitFor('loader-run binary killed', () => events.find((x) => x.type === 'software.killed' && x.data.pid === q.pid));
      expect(e.data.path).toBe(bin);
    }
  });

  it('enrolled monitor-only: reports in enforce mode but kills and moves nothing', async () => {
    const { scope, events } = await setup({ mode: 'enforce' }, true);
    const bin = copyExe('/usr/bin/sleep', join(scope, 'watched-only'));
    const p = spawn(bin, ['30'], { stdio: 'ignore' });
    children.push(p);
    const e = await waitFor('report', () => events.find((x) => x.type === 'software.unauthorized_process' && x.data.pid === p.pid));
    expect(e.data.action).toBe('none');
    await new Promise((r) => setTimeout(r, 500));
    expect(p.exitCode === null && p.signalCode === null).toBe(true);
    expect(existsSync(bin)).toBe(true);
    expect(events.filter((x) => x.type === 'software.killed' || x.type === 'software.quarantined')).toEqual([]);
  });

  it('a blocklisted binary is reported in monitor mode (block rule named) but nothing is killed', async () => {
    const pre = copyExe('/usr/bin/sleep', join(mkdtempSync(join(work, 'pre-')), 'blocked'));
    const { scope, events } = await setup({ mode: 'monitor', rules: [{ kind: 'sha256', action: 'block', sha256: sha(pre) }] });
    const bin = copyExe(pre, join(scope, 'blocked'));
    const p = spawn(bin, ['30'], { stdio: 'ignore' });
    children.push(p);
    const e = await waitFor('report', () => events.find((x) => x.type === 'software.unauthorized_process' && x.data.pid === p.pid));
    expect(e.data.reason).toBe('block_rule');
    expect(e.data.rule).toMatch(/^rules\[0\] block sha256/);
    expect(e.data.action).toBe('none');
    expect(p.exitCode === null && p.signalCode === null).toBe(true);
  });
});
