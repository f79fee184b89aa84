/**
 * The USB capability (agent/usb/capability.ts, unchanged) driving the Windows platform over an
 * in-memory registry: start writes the strict default, a device Windows refused (Enum\USB key, no
 * driver) is reported usb.blocked with the Linux fields, a registered stick usb.allowed, and the
 * capability's own stop leaves the registry in force.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentContext, NewEvent } from '../../agent/capability.js';
import { UsbCapability } from '../../agent/usb/capability.js';
import { WindowsUsbPlatform } from '../../agent/usb/windows/platform.js';
import { ENUM_USB } from '../../agent/usb/windows/devices.js';
import { strictDefaultPlan, RESTRICTIONS } from '../../agent/usb/windows/plan.js';
import { MemoryRegistry } from '../../agent/windows/registry.js';
import { builtinPolicy } from '../../protocol/policy.js';
import { eventDataErrors } from '../../protocol/event-data.js';

function fakeContext(stateDir: string, emitted: NewEvent[]): AgentContext {
  return {
    agentId: 'agent-win',
    stateDir,
    monitorOnly: false,
    emit: (e) => {
      emitted.push(e);
      return {} as ReturnType<AgentContext['emit']>;
    },
    log: () => undefined,
    console: { request: () => Promise.reject(new Error('offline')), consoleNow: () => new Date(), reachable: () => false },
    local: { route: () => undefined, socketPath: join(stateDir, 'agent.sock') },
  };
}

async function plugged(reg: MemoryRegistry, instance: string, driver: boolean) {
  const k = `${ENUM_USB}\\VID_0781&PID_5567\\${instance}`;
  await reg.add(k, { name: 'HardwareID', type: 'REG_MULTI_SZ', data: ['USB\\VID_0781&PID_5567&REV_0126'] });
  await reg.add(k, { name: 'CompatibleIDs', type: 'REG_MULTI_SZ', data: ['USB\\Class_08&SubClass_06&Prot_50', 'USB\\Class_08'] });
  if (driver) await reg.add(k, { name: 'Service', type: 'REG_SZ', data: 'USBSTOR' });
  else await reg.add(k, { name: 'ConfigFlags', type: 'REG_DWORD', data: 0x40 });
}

describe('UsbCapability on the Windows platform (in-memory registry)', () => {
  const dirs: string[] = [];
  let cap: UsbCapability | null = null;
  afterEach(async () => {
    await cap?.stop();
    cap = null;
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('writes the strict default, reports a refused stick as usb.blocked and a registered one as usb.allowed', async () => {
    const reg = new MemoryRegistry();
    await plugged(reg, 'REFUSED1', false);
    await plugged(reg, 'GOOD1', true);
    const state = mkdtempSync(join(tmpdir(), 'sekimori-wincap-'));
    dirs.push(state);
    const emitted: NewEvent[] = [];
    const policy = builtinPolicy();
    policy.usb = { ...policy.usb!, registered: [{ id: 'good', vendorId: '0781', productId: '5567', serial: 'GOOD1', access: 'allow' }] };
    cap = new UsbCapability({ platform: new WindowsUsbPlatform({ registry: reg, pollMs: 60_000 }), rescanMs: 60_000 });
    await cap.start(fakeContext(state, emitted), policy);

    const allow = (await reg.query(`${RESTRICTIONS}\\AllowInstanceIDs`))!.values.map((v) => v.data);
    expect(allow).toEqual(['USB\\VID_0781&PID_5567\\GOOD1']);
    const deny = (await reg.query(`${RESTRICTIONS}\\DenyDeviceIDs`))!.values.map((v) => v.data);
    expect(deny).toEqual(strictDefaultPlan().denyDeviceIds);

    const byPort = Object.fromEntries(emitted.filter((e) => e.type.startsWith('usb.')).map((e) => [String(e.data.port), e]));
    const refused = byPort['USB\\VID_0781&PID_5567\\REFUSED1']!;
    expect(refused.type).toBe('usb.blocked');
    expect(refused.data).toMatchObject({ kind: 'usb', vendorId: '0781', productId: '5567', bcdDevice: '0126', rule: 'class:08', serial: 'REFUSED1', busnum: null, descriptorHash: '' });
    expect(eventDataErrors(refused.type, refused.data)).toEqual([]);
    const good = byPort['USB\\VID_0781&PID_5567\\GOOD1']!;
    expect(good.type).toBe('usb.allowed');
    expect(good.data).toMatchObject({ rule: 'registered:good' });

    await cap.stop();
    cap = null;
    // Stopping the agent leaves Windows' policy in force.
    expect((await reg.query(`${RESTRICTIONS}\\DenyDeviceIDs`))!.values).toHaveLength(strictDefaultPlan().denyDeviceIds.length);
  });
});
