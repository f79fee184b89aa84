/**
 * Windows tier, issue 12 "What it must show", end to end: the PACKAGED sekimori-agent.exe
 * (ensureWindowsPackage) runs under wine 10 in a prefix of its own, enrolled (enforcing) with a real
 * console on loopback (test/integration/harness.ts). Policies and exceptions are made with the
 * console's CLI, as an administrator would; what the agent did is read back with wine's own
 * `reg query` (parsed by wine.ts, compared with plan.ts planRegistry, never with messages) and from
 * the console's events:
 *   - a policy published → the registry holds exactly the planned values; the registered stick
 *     → its AllowInstanceIDs entry; one stick writable and another read-only (Windows' Removable
 *     Storage Access is class-wide) → usb.enforced_stricter at the console;
 *   - an exception granted for this terminal → its entry added, removed at expiry (console clock);
 *   - a new .exe in C:\users\Public\Downloads → software.unauthorized_file (monitor), and in
 *     enforce mode software.quarantined with the file gone;
 *   - a refused device written under Enum\USB → usb.blocked with the Linux fields.
 * One agent process, one prefix; every wait is bounded. What wine cannot show (Windows refusing
 * a driver, Removable Storage Access blocking a disk) is said in README.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConsole, type ConsoleEventJson, type TestConsole } from '../../integration/harness.js';
import { requireTools } from '../tools.js';
import { clonePrefix, dropPrefix, ensureWindowsPackage, PACKAGE_TOOLS, parseRegQuery, requireWine, runWine } from './wine.js';
import { EnrolledWineAgent } from './enrolled-agent.js';
import { planRegistry, RESTRICTIONS, type RegistryPlan } from '../../../agent/usb/windows/plan.js';
import type { PolicyDocument } from '../../../protocol/policy.js';
import { eventDataErrors } from '../../../protocol/event-data.js';

const tools = requireTools('Windows package (npm run package)', PACKAGE_TOOLS, 'bash scripts/setup.sh --test');
const wine = tools.ok ? requireWine() : tools;

const POLICIES = 'HKLM\\Software\\Policies\\Microsoft\\Windows';
const WRITABLE = 'USB\\VID_0781&PID_5567\\SEKIW0001';
const READONLY = 'USB\\VID_0781&PID_5567\\SEKIR0001';
const EXC_ID = 'USB\\VID_0951&PID_1666\\SEKIEXC1';
const REFUSED_KEY = 'HKLM\\SYSTEM\\CurrentControlSet\\Enum\\USB\\VID_0781&PID_5567\\SEKIREFUSED1';
const USB = {
  exceptionPollSeconds: 2,
  registered: [
    { id: 'stick-w', vendorId: '0781', productId: '5567', serial: 'SEKIW0001', access: 'allow' },
    { id: 'stick-r', vendorId: '0781', productId: '5567', serial: 'SEKIR0001', access: 'readonly' },
  ],
  // A card-reader model bound to one unit (issue 18): with registered sticks opening removable disks,
  // Windows could only allow it as a whole device a copied serial could use for storage: withheld, reported.
  models: [{ id: 'reader-desk1', vendorId: '054c', productId: '06c1', serial: 'SEKIREADER01', interfaces: ['ff'], enabled: true }],
};
/** Software: with no rule and no baseline the agent watches package changes only, so one allow rule (for a folder nothing is dropped in). */
const SOFTWARE_RULES = [{ kind: 'path', action: 'allow', prefix: '/C:/Program Files/Approved' }];
const body = (softwareMode: 'monitor' | 'enforce') => ({ agent: { heartbeatSeconds: 2 }, usb: USB, software: { mode: softwareMode, rules: SOFTWARE_RULES } });

/** `reg query` of the policy tree, parsed by wine.ts. */
async function policyTree(prefix: string) {
  const r = await runWine(['reg', 'query', POLICIES, '/s'], { prefix, timeoutMs: 120_000 });
  return parseRegQuery(r.stdout);
}
const longKey = (k: string) => k.replace(/^HKLM\\/i, 'HKEY_LOCAL_MACHINE\\').toUpperCase();
const asText = (v: { type: string; data: unknown }) => `${v.type} ${v.type === 'REG_DWORD' ? '0x' + (v.data as number).toString(16) : String(v.data)}`;

/** Every planned key as reg query shows it vs. the plan: [key, got, want] for each difference (owned values only). */
function differences(tree: Awaited<ReturnType<typeof policyTree>>, plan: RegistryPlan): [string, Record<string, string>, Record<string, string>][] {
  const out: [string, Record<string, string>, Record<string, string>][] = [];
  for (const k of plan.keys) {
    const got = tree.get(longKey(k.key)) ?? new Map<string, { type: string; data: string }>();
    const owned = (n: string) => n !== '(Default)' && (k.owned === 'all' || k.owned.includes(n));
    const g = Object.fromEntries([...got].filter(([n]) => owned(n)).map(([n, v]) => [n, `${v.type} ${v.data}`]));
    const w = Object.fromEntries(k.values.map((v) => [v.name, asText(v)]));
    if (JSON.stringify(Object.entries(g).sort()) !== JSON.stringify(Object.entries(w).sort())) out.push([k.key, g, w]);
  }
  return out;
}
const allowIds = (tree: Awaited<ReturnType<typeof policyTree>>) => [...(tree.get(longKey(`${RESTRICTIONS}\\AllowInstanceIDs`)) ?? new Map()).entries()].filter(([n]) => n !== '(Default)').map(([, v]) => v.data).sort();

describe.skipIf(!wine.ok)('packaged sekimori-agent.exe under wine: USB and software scenarios against a console', () => {
  let c: TestConsole;
  let prefix = '';
  let agent: EnrolledWineAgent;
  let version1 = 0;
  let grant: { id: string; expiresAt: string } | null = null;
  const work = mkdtempSync('/tmp/sekimori-wine-scen-');
  const state = join(work, 'state');
  const pipe = `\\\\.\\pipe\\sekimori-wine-scen-${process.pid}`;
  const tag = `s${process.pid}${Date.now().toString(36)}`;
  const events = (type: string) => agent.events(type);
  /** Reads the policy tree until it is the plan (bounded): an application may be between its two reg import batches. */
  const treeMatching = async (plan: RegistryPlan) => {
    let diff: ReturnType<typeof differences> = [];
    let tree: Awaited<ReturnType<typeof policyTree>> = new Map();
    await agent.until(
      'the registry to match planRegistry',
      async () => {
        tree = await policyTree(prefix);
        diff = differences(tree, plan);
        return diff.length === 0;
      },
      90_000,
      1000,
    ).catch((e: Error) => {
      throw new Error(`${JSON.stringify(diff)}: ${e.message}`);
    });
    return tree;
  };
  const publish = (softwareMode: 'monitor' | 'enforce'): number => {
    const f = join(work, `policy-${softwareMode}.json`);
    writeFileSync(f, JSON.stringify(body(softwareMode)));
    const r = c.cli(['policy', 'set', '--file', f]);
    if (r.code !== 0) throw new Error(`policy set: ${r.stderr}`);
    return c.json<{ policy: PolicyDocument }>(['policy', 'get']).policy.version;
  };

  beforeAll(async () => {
    ensureWindowsPackage();
    prefix = clonePrefix('scenarios');
    // Real Windows has C:\Users\Public\Downloads; wine's prefix lacks it, and a watched place missing when the watcher starts is not watched.
    mkdirSync(join(prefix, 'drive_c/users/Public/Downloads'), { recursive: true });
    c = await startConsole({ policy: body('monitor') });
    version1 = c.json<{ policy: PolicyDocument }>(['policy', 'get']).policy.version;
    agent = new EnrolledWineAgent(c, prefix, state);
  }, 600_000);

  afterAll(async () => {
    await agent?.stop();
    if (prefix) await dropPrefix(prefix);
    await c?.cleanup();
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('enrols (enforcing, not --monitor) and runs; agent.started reaches the console', async () => {
    await agent.enroll();
    agent.start({ SEKIMORI_AGENT_PIPE: pipe });
    await agent.eventOf('agent.started', 'agent.started', () => true, 120_000);
  }, 300_000);

  it('the policy applied: reg query shows exactly planRegistry; the registered sticks have their allow entries; the class-wide read-only is reported', async () => {
    expect(agent.agentId).not.toBe('');
    const stricter = await agent.eventOf('usb.enforced_stricter for the first policy', 'usb.enforced_stricter', (e) => e.data.policyVersion === version1);
    expect(stricter.severity).toBe('warning');
    expect(eventDataErrors('usb.enforced_stricter', stricter.data)).toEqual([]);
    const notes = stricter.data.notes as { code: string; subject: string; ja: string; en: string }[];
    expect(notes.map((n) => n.code)).toContain('readonly-class-wide');
    expect(notes.map((n) => `${n.code} ${n.subject}`)).toContain('model-would-open-storage model:reader-desk1');

    const doc = c.json<{ policy: PolicyDocument }>(['policy', 'get']).policy;
    const plan = planRegistry({ policy: doc.usb!, exceptions: [], monitor: false, now: new Date(), agentId: agent.agentId });
    expect(plan.allowInstanceIds.slice().sort()).toEqual([READONLY, WRITABLE]);
    // The notes are recorded BEFORE the registry is written (platform.ts applyNow), so the writes may
    // still be under way when the event arrives (reg import under wine takes seconds on a busy
    // machine): read until the tree matches, bounded; the last difference is what a failure shows.
    const tree = await treeMatching(plan);
    expect(differences(tree, plan)).toEqual([]);
    expect(allowIds(tree)).toEqual([READONLY, WRITABLE]);
  }, 180_000);

  it('an exception granted on the console for this terminal → its AllowInstanceIDs entry', async () => {
    grant = c.json<{ id: string; expiresAt: string }>(['usb-exception', 'grant', '--agent', agent.agentId, '--device', '0951:1666:SEKIEXC1', '--for', '90s', '--reason', 'wine シナリオ']);
    const want = [EXC_ID, READONLY, WRITABLE].sort();
    let last: string[] = [];
    await agent.until(
      'the exception in AllowInstanceIDs',
      async () => {
        last = allowIds(await policyTree(prefix));
        return JSON.stringify(last) === JSON.stringify(want);
      },
      60_000,
      2000,
    ).catch((e: Error) => {
      throw new Error(`${JSON.stringify(last)}: ${e.message}`);
    });
    // A writable exception while a registered stick is read-only: the new gap is reported too.
    const subjectsOf = (e: ConsoleEventJson) => (e.data.notes as { subject: string }[]).map((n) => n.subject);
    await agent.eventOf('usb.enforced_stricter naming the exception', 'usb.enforced_stricter', (e) => subjectsOf(e).includes(`exception:${grant!.id}`), 30_000);
  }, 120_000);

  it('a refused device under Enum\\USB → usb.blocked at the console with the Linux fields', async () => {
    for (const args of [
      ['/v', 'HardwareID', '/t', 'REG_MULTI_SZ', '/d', 'USB\\VID_0781&PID_5567&REV_0126\\0USB\\VID_0781&PID_5567'],
      ['/v', 'CompatibleIDs', '/t', 'REG_MULTI_SZ', '/d', 'USB\\Class_08&SubClass_06&Prot_50\\0USB\\Class_08&SubClass_06\\0USB\\Class_08'],
      ['/v', 'ConfigFlags', '/t', 'REG_DWORD', '/d', '64'],
    ]) {
      const r = await runWine(['reg', 'add', REFUSED_KEY, ...args, '/f'], { prefix, timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(0);
    }
    const port = REFUSED_KEY.slice(REFUSED_KEY.indexOf('USB\\'));
    // The three values are written one reg.exe call at a time (Windows writes the key at once): the
    // agent may first see the key without CompatibleIDs (rule no-interfaces) and report again once they are there.
    const ev = await agent.eventOf('usb.blocked for the refused device', 'usb.blocked', (e) => e.data.port === port && e.data.rule === 'class:08', 60_000);
    expect(ev.severity).toBe('warning');
    expect(ev.data).toMatchObject({ kind: 'usb', mode: 'enforce', vendorId: '0781', productId: '5567', bcdDevice: '0126', serial: 'SEKIREFUSED1', busnum: null, devnum: null, descriptorHash: '', rule: 'class:08', readonly: false, exceptionId: null });
    expect(ev.data.interfaceClasses).toEqual(['08']);
    expect(eventDataErrors('usb.blocked', ev.data)).toEqual([]);
  }, 120_000);

  const downloads = () => join(prefix, 'drive_c/users/Public/Downloads');
  /** A small PE-looking file (MZ header), unknown to every rule. */
  const dropExe = (name: string) => {
    mkdirSync(downloads(), { recursive: true });
    const f = join(downloads(), name);
    writeFileSync(f, Buffer.concat([Buffer.from('MZ'), Buffer.from(`${name} ${tag}`), Buffer.alloc(512)]));
    return f;
  };
  const endsWithName = (name: string) => (e: ConsoleEventJson) => String(e.data.path).toLowerCase().endsWith(`\\${name.toLowerCase()}`);

  it('monitor mode: a new .exe in C:\\users\\Public\\Downloads → software.unauthorized_file at the console, file left', async () => {
    const name = `monitor-${tag}.exe`;
    const f = dropExe(name);
    const ev = await agent.eventOf('software.unauthorized_file', 'software.unauthorized_file', endsWithName(name), 60_000);
    expect(ev.data).toMatchObject({ mode: 'monitor' });
    expect(eventDataErrors('software.unauthorized_file', ev.data)).toEqual([]);
    expect(existsSync(f)).toBe(true);
  }, 120_000);

  it('enforce mode (a new policy version): the next .exe is quarantined, the event says so and the file is gone', async () => {
    const v2 = publish('enforce');
    expect(v2).toBeGreaterThan(version1);
    await agent.eventOf('agent.policy_applied v2', 'agent.policy_applied', (e) => e.data.version === v2, 60_000);
    // A new version with the same gap is reported again (once).
    await agent.eventOf('usb.enforced_stricter v2', 'usb.enforced_stricter', (e) => e.data.policyVersion === v2, 60_000);
    const name = `enforce-${tag}.exe`;
    const f = dropExe(name);
    const q = await agent.eventOf('software.quarantined', 'software.quarantined', endsWithName(name), 60_000);
    expect(q.data).toMatchObject({ mode: 'enforce' });
    expect(eventDataErrors('software.quarantined', q.data)).toEqual([]);
    const file = events('software.unauthorized_file').find(endsWithName(name));
    expect(file?.data).toMatchObject({ mode: 'enforce', action: 'quarantine' });
    expect(existsSync(f)).toBe(false);
  }, 180_000);

  it('the exception is removed at expiry (console clock), the registered sticks stay', async () => {
    expect(grant).not.toBeNull();
    // Still in force before its expiry (when this runs early enough to tell).
    const before = allowIds(await policyTree(prefix));
    if (Date.now() < Date.parse(grant!.expiresAt) - 2_000) expect(before).toContain(EXC_ID); // the query ended before expiry
    const until = Date.parse(grant!.expiresAt) + 60_000 - Date.now();
    let last: string[] = [];
    await agent.until(
      'the exception gone from AllowInstanceIDs after expiry',
      async () => {
        last = allowIds(await policyTree(prefix));
        return JSON.stringify(last) === JSON.stringify([READONLY, WRITABLE]);
      },
      Math.max(until, 10_000),
      3000,
    ).catch((e: Error) => {
      throw new Error(`${JSON.stringify(last)}: ${e.message}`);
    });
    // And the whole policy tree is the plan again.
    const doc = c.json<{ policy: PolicyDocument }>(['policy', 'get']).policy;
    const plan = planRegistry({ policy: doc.usb!, exceptions: [], monitor: false, now: new Date(), agentId: agent.agentId });
    expect(differences(await treeMatching(plan), plan)).toEqual([]);
  }, 240_000);
});
