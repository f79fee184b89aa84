import { describe, expect, it } from 'vitest';
import { defaultUsbPolicy, type UsbException, type UsbPolicy } from '../../protocol/policy-usb.js';
import { RESTRICTIONS, RSA_ROOT } from '../../agent/usb/windows/plan.js';
import { WindowsUsbPlatform, stricterOnWindows } from '../../agent/usb/windows/platform.js';
import { ENUM_USB } from '../../agent/usb/windows/devices.js';
import { decideUsb } from '../../agent/usb/decide.js';
import type { UsbChange, UsbPolicyInput } from '../../agent/usb/platform.js';
import { MemoryRegistry } from '../../agent/windows/registry.js';

const AGENT = 'agent-1';
const CONSOLE_NOW = new Date('2026-11-30T00:00:00Z');
const exc = (over: Partial<UsbException> = {}): UsbException => ({
  id: 'ex1',
  agentId: AGENT,
  vendorId: '0951',
  productId: '1666',
  serial: 'AB12',
  access: 'allow',
  grantedAt: '2026-11-29T23:55:00Z',
  expiresAt: '2026-11-30T00:10:00Z',
  grantedBy: 'admin',
  reason: 'r',
  ...over,
});
const input = (over: Partial<UsbPolicyInput> = {}): UsbPolicyInput => ({ policy: defaultUsbPolicy(), exceptions: [], monitor: false, monitorOnly: false, now: CONSOLE_NOW, agentId: AGENT, ...over });
const allowList = async (m: MemoryRegistry) => Object.values((await m.query(`${RESTRICTIONS}\\AllowInstanceIDs`))?.values ?? []).map((v) => v.data);

/** A platform with a hand-driven local clock (an hour behind the console's) and timers. */
function rig() {
  const reg = new MemoryRegistry();
  let local = CONSOLE_NOW.getTime() - 3600_000;
  const timers: { fn: () => void; at: number }[] = [];
  const p = new WindowsUsbPlatform({
    registry: reg,
    localNow: () => local,
    setTimer: (fn, ms) => {
      const t = { fn, at: local + ms };
      timers.push(t);
      return () => timers.splice(timers.indexOf(t), 1);
    },
  });
  const advance = async (ms: number) => {
    local += ms;
    for (const t of [...timers].filter((x) => x.at <= local)) {
      timers.splice(timers.indexOf(t), 1);
      t.fn();
    }
    await new Promise((r) => setImmediate(r));
    await (p as unknown as { applying: Promise<unknown> }).applying;
  };
  return { reg, p, timers, advance };
}

describe('exceptions end on the console clock (injected clocks)', () => {
  it('entry added when granted, removed when the console says it expired', async () => {
    const { reg, p, timers, advance } = rig();
    const r = await p.applyPolicy(input({ exceptions: [exc()] }));
    expect(r.errors).toEqual([]);
    expect(await allowList(reg)).toEqual(['USB\\VID_0951&PID_1666\\AB12']);
    expect(timers).toHaveLength(1);
    await advance(9 * 60_000); // console 00:09: still valid
    expect(await allowList(reg)).toEqual(['USB\\VID_0951&PID_1666\\AB12']);
    await advance(60_000 + 1); // console 00:10:00.001
    expect(await allowList(reg)).toEqual([]);
    expect((await reg.query(`${RSA_ROOT}\\{53f5630d-b6bf-11d0-94f2-00a0c91efb8b}`))!.values.map((v) => v.name).sort()).toEqual(['Deny_Execute', 'Deny_Read', 'Deny_Write']);
    expect(timers).toHaveLength(0);
  });
  it('the terminal clock running ahead does not end it early', async () => {
    const { reg, p } = rig();
    // The console says 00:00; the exception runs to 00:10. A local clock hours ahead changes nothing.
    await p.applyPolicy(input({ exceptions: [exc()] }));
    expect(p.consoleNow().toISOString()).toBe(CONSOLE_NOW.toISOString());
    expect(await allowList(reg)).toHaveLength(1);
  });
  it('a far expiry re-checks within the hour; a new policy replaces the timer', async () => {
    const { p, timers } = rig();
    await p.applyPolicy(input({ exceptions: [exc({ expiresAt: '2026-12-30T00:00:00Z' })] }));
    expect(timers).toHaveLength(1);
    await p.applyPolicy(input());
    expect(timers).toHaveLength(0);
  });
  it('monitorOnly: nothing written at all', async () => {
    const { reg, p } = rig();
    await p.applyPolicy(input({ monitorOnly: true, monitor: true }));
    expect(reg.ops).toEqual([]);
  });
  it('notes come back as warnings, Japanese first', async () => {
    const { p } = rig();
    const policy: UsbPolicy = { ...defaultUsbPolicy(), registered: [{ id: 'h', vendorId: '0781', productId: '5567', serial: 'S1', descriptorHash: 'a'.repeat(64), access: 'allow' }] };
    const r = await p.applyPolicy(input({ policy }));
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/^usb\.windows stricter \(descriptor-hash-unenforceable\) registered:h: .*記述子ハッシュ.* \/ .*descriptor hash/);
  });
});

describe('devices and enforceDevice', () => {
  async function withStick(reg: MemoryRegistry, serial: string, driver: boolean) {
    const k = `${ENUM_USB}\\VID_0781&PID_5567\\${serial}`;
    await reg.add(k, { name: 'CompatibleIDs', type: 'REG_MULTI_SZ', data: ['USB\\Class_08&SubClass_06&Prot_50'] });
    if (driver) await reg.add(k, { name: 'Service', type: 'REG_SZ', data: 'USBSTOR' });
  }
  it('a registered stick: decided allow, enforced by policy; a read-only sibling makes it stricter', async () => {
    const { reg, p } = rig();
    await withStick(reg, 'S1', true);
    const policy: UsbPolicy = { ...defaultUsbPolicy(), registered: [{ id: 's1', vendorId: '0781', productId: '5567', serial: 'S1', access: 'allow' }] };
    await p.applyPolicy(input({ policy }));
    const [path] = await p.listDevicePaths();
    const d = p.readDevice(path!)!;
    const dec = decideUsb(policy, d, { agentId: AGENT, now: CONSOLE_NOW, exceptions: [], others: [] });
    expect(dec.eventType).toBe('usb.allowed');
    expect((await p.enforceDevice(d, dec, { first: true, monitor: false })).enforcedBy).toBe('policy');
    const both: UsbPolicy = { ...policy, registered: [...policy.registered, { id: 'ro', vendorId: '0781', productId: '5567', serial: 'S2', access: 'readonly' }] };
    await p.applyPolicy(input({ policy: both }));
    expect((await p.enforceDevice(d, decideUsb(both, d, { agentId: AGENT, now: CONSOLE_NOW, exceptions: [], others: [] }), { first: true, monitor: false })).enforcedBy).toBe('stricter');
  });
  it('a refused stick (no driver) is listed and decided usb.blocked like on Linux', async () => {
    const { reg, p } = rig();
    await withStick(reg, 'EVIL1', false);
    await p.applyPolicy(input());
    const d = p.readDevice((await p.listDevicePaths())[0]!)!;
    expect(d.authorized).toBe(false);
    const dec = decideUsb(defaultUsbPolicy(), d, { agentId: AGENT, now: CONSOLE_NOW, exceptions: [], others: [] });
    expect(dec.eventType).toBe('usb.blocked');
    expect(dec.rule).toBe('class:08');
    expect(stricterOnWindows(d, dec, p.lastPlan)).toBe(false);
  });
  it('watch reports a newly enumerated device as attached (bounded wait, no timing assertion)', async () => {
    const reg = new MemoryRegistry();
    const p = new WindowsUsbPlatform({ registry: reg, pollMs: 5 });
    const seen: UsbChange[] = [];
    const stop = p.watch((c) => seen.push(c), () => undefined);
    for (let i = 0; i < 200 && reg.ops.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    await withStick(reg, 'NEW1', false);
    for (let i = 0; i < 400 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    await stop();
    expect(seen[0]).toEqual({ kind: 'attached' });
  });
});
