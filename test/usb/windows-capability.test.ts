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

  describe('usb.enforced_stricter: what Windows cannot express exactly is reported once per change', () => {
    const stick = (id: string, serial: string, access: 'allow' | 'readonly') => ({ id, vendorId: '0781', productId: '5567', serial, access });
    const doc = (version: number, registered: ReturnType<typeof stick>[]) => {
      const p = builtinPolicy();
      p.version = version;
      p.usb = { ...p.usb!, registered };
      return p;
    };
    const stricter = (emitted: NewEvent[]) => emitted.filter((e) => e.type === 'usb.enforced_stricter');

    async function started(first: ReturnType<typeof doc>) {
      const state = mkdtempSync(join(tmpdir(), 'sekimori-wincap-'));
      dirs.push(state);
      const emitted: NewEvent[] = [];
      cap = new UsbCapability({ platform: new WindowsUsbPlatform({ registry: new MemoryRegistry(), pollMs: 60_000 }), rescanMs: 60_000 });
      await cap.start(fakeContext(state, emitted), first);
      return emitted;
    }

    it('one stick writable and another read-only: one warning with the notes in Japanese and English and the policy version', async () => {
      const emitted = await started(doc(7, [stick('w', 'W1', 'allow'), stick('r', 'R1', 'readonly')]));
      const ev = stricter(emitted);
      expect(ev).toHaveLength(1);
      expect(eventDataErrors('usb.enforced_stricter', ev[0]!.data)).toEqual([]);
      const data = ev[0]!.data as { platform: string; policyVersion: number; notes: { code: string; ja: string; en: string }[] };
      expect(data.platform).toBe('windows');
      expect(data.policyVersion).toBe(7);
      expect(data.notes.map((n) => n.code)).toContain('readonly-class-wide');
      for (const n of data.notes) {
        expect(n.ja).toMatch(/[\u3040-\u30ff\u4e00-\u9fff]/);
        expect(n.en).toMatch(/[a-z]/);
      }
    });

    // [what happens next, the policy applied, how many usb.enforced_stricter in total]
    const cases: [string, ReturnType<typeof doc> | null, number][] = [
      ['the same policy applied again (a poll, a restart of the policy loop)', doc(7, [stick('w', 'W1', 'allow'), stick('r', 'R1', 'readonly')]), 1],
      ['a new version with the same gap', doc(8, [stick('w', 'W1', 'allow'), stick('r', 'R1', 'readonly')]), 2],
      ['a policy Windows expresses exactly (both read-only)', doc(8, [stick('w', 'W1', 'readonly'), stick('r', 'R1', 'readonly')]), 1],
      ['nothing changes after start', null, 1],
    ];
    it.each(cases)('%s', async (_name, next, total) => {
      const emitted = await started(doc(7, [stick('w', 'W1', 'allow'), stick('r', 'R1', 'readonly')]));
      if (next) await cap!.applyPolicy(next);
      expect(stricter(emitted)).toHaveLength(total);
    });

    it('a policy with no gap reports nothing, and the gap appearing later is reported', async () => {
      const emitted = await started(doc(3, [stick('r', 'R1', 'readonly')]));
      expect(stricter(emitted)).toHaveLength(0);
      await cap!.applyPolicy(doc(4, [stick('w', 'W1', 'allow'), stick('r', 'R1', 'readonly')]));
      await cap!.applyPolicy(doc(5, [stick('r', 'R1', 'readonly')]));
      await cap!.applyPolicy(doc(6, [stick('w', 'W1', 'allow'), stick('r', 'R1', 'readonly')]));
      expect(stricter(emitted).map((e) => (e.data as { policyVersion: number }).policyVersion)).toEqual([4, 6]);
    });

    it('hostile registration ids and serials reach the event as declared data', async () => {
      const emitted = await started(doc(9, [stick('w\u001b[2J\n', 'W\u0000\u202e1', 'allow'), stick('r'.repeat(200), 'R1', 'readonly')]));
      for (const e of stricter(emitted)) expect(eventDataErrors(e.type, e.data)).toEqual([]);
      expect(stricter(emitted)).toHaveLength(1);
    });
  
    it('an exception change is reported before its entry is written, and the expiry the platform re-applies by itself is reported too', async () => {
      const reg = new MemoryRegistry();
      const state = mkdtempSync(join(tmpdir(), 'sekimori-wincap-'));
      dirs.push(state);
      const emitted: { type: string; data: unknown; excWritten: boolean }[] = [];
      const allow = async () => ((await reg.query(`${RESTRICTIONS}\\AllowInstanceIDs`))?.values ?? []).map((v) => String(v.data));
      let local = Date.parse('2026-11-30T00:00:00.000Z');
      const timers: { fn: () => void; at: number }[] = [];
      const exc = { id: 'ex1', agentId: 'agent-win', vendorId: '0951', productId: '1666', serial: 'AB12', access: 'allow', grantedAt: new Date(local - 1000).toISOString(), expiresAt: new Date(local + 60_000).toISOString(), grantedBy: 'admin', reason: 'test' };
      let granted: (typeof exc)[] = [];
      const ctx = fakeContext(state, []);
      ctx.emit = (e) => {
        // Whether the exception's entry had been written when the event was recorded.
        emitted.push({ type: e.type, data: e.data, excWritten: JSON.stringify(reg.ops).includes('AB12') });
        return {} as ReturnType<AgentContext['emit']>;
      };
      ctx.console = { request: async () => ({ status: 200, body: { exceptions: granted } }), consoleNow: () => new Date(local), reachable: () => true } as unknown as AgentContext['console'];
      const platform = new WindowsUsbPlatform({ registry: reg, pollMs: 60_000, localNow: () => local, setTimer: (fn, ms) => { const t = { fn, at: local + ms }; timers.push(t); return () => void timers.splice(timers.indexOf(t), 1); } });
      cap = new UsbCapability({ platform, rescanMs: 60_000 });
      await cap.start(ctx, doc(5, [stick('w', 'W1', 'allow'), stick('r', 'R1', 'readonly')]));
      const subjects = () => stricter(emitted as NewEvent[]).map((e) => (e.data as { notes: { subject: string }[] }).notes.map((n) => n.subject).sort());
      expect(subjects()).toEqual([['registered:w']]);

      granted = [exc];
      expect(await cap.refreshExceptions()).toBe(true);
      expect(subjects()).toEqual([['registered:w'], ['exception:ex1', 'registered:w']]);
      expect(stricter(emitted as NewEvent[]).map((e) => (e as unknown as { excWritten: boolean }).excWritten)).toEqual([false, false]); // recorded before acting
      expect(await allow()).toContain('USB\\VID_0951&PID_1666\\AB12');

      local += 60_001; // console clock past the expiry: the platform's own timer re-applies
      const due = timers.filter((t) => t.at <= local);
      expect(due).toHaveLength(1);
      for (const t of due) t.fn();
      for (let i = 0; i < 1000 && subjects().length < 3; i++) await new Promise((r) => setImmediate(r));
      expect(subjects()).toEqual([['registered:w'], ['exception:ex1', 'registered:w'], ['registered:w']]);
      for (let i = 0; i < 1000 && (await allow()).includes('USB\\VID_0951&PID_1666\\AB12'); i++) await new Promise((r) => setImmediate(r));
      expect(await allow()).not.toContain('USB\\VID_0951&PID_1666\\AB12');
    });
  });

  describe('model rules (issue 18): the reader, a spoofing stick, and what is reported', () => {
    /** An RC-S380 as Windows enumerates it (single function, vendor-specific ff), with a driver; and a stick posing as it. */
    async function readerAndSpoof(reg: MemoryRegistry) {
      const r = `${ENUM_USB}\\VID_054C&PID_06C1\\0123ABCD`;
      await reg.add(r, { name: 'HardwareID', type: 'REG_MULTI_SZ', data: ['USB\\VID_054C&PID_06C1&REV_0110', 'USB\\VID_054C&PID_06C1'] });
      await reg.add(r, { name: 'CompatibleIDs', type: 'REG_MULTI_SZ', data: ['USB\\Class_FF&SubClass_FF&Prot_FF', 'USB\\Class_FF&SubClass_FF', 'USB\\Class_FF'] });
      await reg.add(r, { name: 'Service', type: 'REG_SZ', data: 'port100' });
      const s = `${ENUM_USB}\\VID_054C&PID_06C1\\SPOOF01`;
      await reg.add(s, { name: 'CompatibleIDs', type: 'REG_MULTI_SZ', data: ['USB\\Class_08&SubClass_06&Prot_50', 'USB\\Class_08'] });
      await reg.add(s, { name: 'ConfigFlags', type: 'REG_DWORD', data: 0x40 });
    }
    const run = async (models: NonNullable<ReturnType<typeof builtinPolicy>['usb']>['models']) => {
      const reg = new MemoryRegistry();
      await readerAndSpoof(reg);
      const state = mkdtempSync(join(tmpdir(), 'sekimori-wincap-'));
      dirs.push(state);
      const emitted: NewEvent[] = [];
      const policy = builtinPolicy();
      policy.usb = { ...policy.usb!, models };
      cap = new UsbCapability({ platform: new WindowsUsbPlatform({ registry: reg, pollMs: 60_000 }), rescanMs: 60_000 });
      await cap.start(fakeContext(state, emitted), policy);
      const byPort = Object.fromEntries(emitted.filter((e) => e.type.startsWith('usb.') && e.data.port).map((e) => [String(e.data.port), e]));
      const notes = emitted.filter((e) => e.type === 'usb.enforced_stricter').flatMap((e) => (e.data as { notes: { code: string; subject: string }[] }).notes.map((n) => `${n.code} ${n.subject}`));
      const allow = ((await reg.query(`${RESTRICTIONS}\\AllowInstanceIDs`))?.values ?? []).map((v) => v.data);
      for (const e of emitted) expect(eventDataErrors(e.type, e.data), e.type).toEqual([]);
      return { reader: byPort['USB\\VID_054C&PID_06C1\\0123ABCD']!, spoof: byPort['USB\\VID_054C&PID_06C1\\SPOOF01']!, notes, allow };
    };
    const catalogue = () => builtinPolicy().usb!.models!;

    it('as shipped (catalogue disabled): the reader is blocked by class ff, nothing allowed, nothing reported', async () => {
      const r = await run(catalogue());
      expect(r.reader.type).toBe('usb.blocked');
      expect(r.reader.data.rule).toBe('class:ff');
      expect(r.spoof.data.rule).toBe('class:08');
      expect(r.allow).toEqual([]);
      expect(r.notes).toEqual([]);
    });
    it('the catalogue entry enabled (no serial): decided allowed, Windows keeps it blocked and says so', async () => {
      const r = await run(catalogue().map((m) => (m.id === 'sony-rc-s380-s' ? { ...m, enabled: true } : m)));
      expect(r.reader.type).toBe('usb.allowed');
      expect(r.reader.data.rule).toBe('model:sony-rc-s380-s');
      expect(r.allow).toEqual([]);
      expect(r.notes).toEqual(['model-needs-serial model:sony-rc-s380-s']);
      expect(r.spoof.type).toBe('usb.blocked'); // a model rule never opens storage
      expect(r.spoof.data.rule).toBe('class:08');
    });
    it("a rule with the reader's serial: its instance ID allowed, nothing reported; the spoofing stick (another serial) stays blocked", async () => {
      const r = await run([...catalogue(), { id: 'desk-1', vendorId: '054c', productId: '06c1', serial: '0123ABCD', interfaces: ['ff'], enabled: true }]);
      expect(r.reader.type).toBe('usb.allowed');
      expect(r.reader.data.rule).toBe('model:desk-1');
      expect(r.allow).toEqual(['USB\\VID_054C&PID_06C1\\0123ABCD']);
      expect(r.notes).toEqual([]);
      expect(r.spoof.type).toBe('usb.blocked');
    });
  });
});
