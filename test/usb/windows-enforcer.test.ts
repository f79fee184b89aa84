import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultUsbPolicy, type UsbException, type UsbModelRule, type UsbPolicy } from '../../protocol/policy-usb.js';
import { RESTRICTIONS, RSA_ROOT, planRegistry, type PlannedKey } from '../../agent/usb/windows/plan.js';
import { applyRegistryPlan, diffRegistry } from '../../agent/usb/windows/enforcer.js';
import { MemoryRegistry, type RegBatchOp, type RegKey, type RegValue } from '../../agent/windows/registry.js';

const NOW = new Date('2026-11-30T00:00:00Z');
const AGENT = 'agent-1';
const exc = (id: string, serial: string, over: Partial<UsbException> = {}): UsbException => ({
  id,
  agentId: AGENT,
  vendorId: '0951',
  productId: '1666',
  serial,
  access: 'allow',
  grantedAt: '2026-11-29T23:00:00Z',
  expiresAt: '2026-11-30T01:00:00Z',
  grantedBy: 'admin',
  reason: 'r',
  ...over,
});
const stick = (id: string, serial: string, access: 'allow' | 'readonly' = 'allow') => ({ id, vendorId: '0781', productId: '5567', serial, access });
const keysFor = (policy: UsbPolicy, exceptions: UsbException[] = [], monitor = false) => planRegistry({ policy, exceptions, monitor, now: NOW, agentId: AGENT }).keys;

/** The registry as sets of deny facts and allow facts (what strictness is made of). */
function facts(m: MemoryRegistry): { deny: Set<string>; allow: Set<string> } {
  const deny = new Set<string>();
  const allow = new Set<string>();
  const all = { ...m.dump(RSA_ROOT), ...m.dump(RESTRICTIONS) };
  for (const [key, vals] of Object.entries(all)) {
    for (const [name, v] of Object.entries(vals)) {
      const fact = key.endsWith('\\DenyDeviceIDs') || key.endsWith('\\DenyDeviceClasses') || key.endsWith('\\AllowInstanceIDs') ? `${key.split('\\').at(-1)}:${String(v.data).toLowerCase()}` : `${key}!${name}=${JSON.stringify(v.data)}`;
      if (/AllowInstanceIDs|AllowDenyLayered/i.test(fact)) allow.add(fact);
      else deny.add(fact);
    }
  }
  return { deny, allow };
}
const subset = (a: Set<string>, b: Set<string>) => [...a].every((x) => b.has(x));

/** The in-memory registry with a batch that runs in order, as reg import does (a failure stops it part-way). */
class BatchingMemory extends MemoryRegistry {
  batches = 0;
  async batch(ops: readonly RegBatchOp[]): Promise<void> {
    this.batches += 1;
    for (const o of ops) await (o.op === 'add' ? this.add(o.key, o.value) : this.delete(o.key, o.name));
  }
}
let batching = false;

async function seeded(keys: PlannedKey[] | null, extra?: (m: MemoryRegistry) => Promise<void>): Promise<MemoryRegistry> {
  const m = batching ? new BatchingMemory() : new MemoryRegistry();
  if (keys) await applyRegistryPlan(m, keys);
  if (extra) await extra(m);
  m.ops.length = 0;
  return m;
}
const snapshot = (m: MemoryRegistry) => ({ ...m.dump(RSA_ROOT), ...m.dump(RESTRICTIONS) });
function expected(keys: PlannedKey[]): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const k of keys) {
    if (k.values.length === 0) continue;
    out[k.key] = Object.fromEntries([...k.values].sort((a, b) => a.name.localeCompare(b.name)).map(({ name, ...d }) => [name, d]));
  }
  return out;
}
/** Compares only non-empty keys (an emptied key may stay). */
const nonEmpty = (s: Record<string, Record<string, unknown>>) => Object.fromEntries(Object.entries(s).filter(([, v]) => Object.keys(v).length > 0));

const policyWith = (over: Partial<UsbPolicy>): UsbPolicy => ({ ...defaultUsbPolicy(), ...over });
const reader = (enabled: boolean): UsbModelRule => ({ id: 'reader', vendorId: '054c', productId: '06c1', serial: '0123ABCD', interfaces: ['ff'], enabled });
const TRANSITIONS: Array<{ name: string; from: PlannedKey[] | null; to: PlannedKey[]; extra?: (m: MemoryRegistry) => Promise<void> }> = [
  { name: 'nothing → strict default (first start)', from: null, to: keysFor(defaultUsbPolicy()) },
  { name: 'default → a registered stick', from: keysFor(defaultUsbPolicy()), to: keysFor(policyWith({ registered: [stick('s1', 'A1')] })) },
  { name: 'registered stick → removed', from: keysFor(policyWith({ registered: [stick('s1', 'A1')] })), to: keysFor(defaultUsbPolicy()) },
  { name: 'allow → readonly stick', from: keysFor(policyWith({ registered: [stick('s1', 'A1')] })), to: keysFor(policyWith({ registered: [stick('s1', 'A1', 'readonly')] })) },
  { name: 'enforce → monitor', from: keysFor(policyWith({ registered: [stick('s1', 'A1')] }), [exc('e1', 'X1')]), to: keysFor(defaultUsbPolicy(), [], true) },
  { name: 'monitor → enforce', from: keysFor(defaultUsbPolicy(), [], true), to: keysFor(defaultUsbPolicy()) },
  {
    name: 'exception in the middle of the allow list expires (renumbering)',
    from: keysFor(defaultUsbPolicy(), [exc('e1', 'A'), exc('e2', 'B'), exc('e3', 'C')]),
    to: keysFor(defaultUsbPolicy(), [exc('e1', 'A'), exc('e3', 'C')]),
  },
  {
    name: 'class rule allows storage: deny list shrinks and renumbers',
    from: keysFor(defaultUsbPolicy()),
    to: keysFor(policyWith({ classRules: [{ class: '08', verdict: 'allow' }, ...defaultUsbPolicy().classRules] })),
  },
  {
    name: 'default allow with a few blocks → strict default (deny list grows, renumbered)',
    from: keysFor(policyWith({ defaultVerdict: 'allow', classRules: [{ class: 'e0', verdict: 'block' }, { class: '08', verdict: 'block' }] })),
    to: keysFor(defaultUsbPolicy()),
  },
  {
    // A terminal upgraded from the default before issue 18, which denied audio (01) by the default verdict.
    name: 'previous default (audio denied) → this default (audio allowed, printers by their own rule)',
    from: keysFor(policyWith({ classRules: [{ class: '01', verdict: 'block' }, ...defaultUsbPolicy().classRules] })),
    to: keysFor(defaultUsbPolicy()),
  },
  {
    name: 'serial-bound model rule enabled (its instance ID only)',
    from: keysFor(defaultUsbPolicy()),
    to: keysFor(policyWith({ models: [reader(true)] })),
  },
  {
    name: 'model rule disabled again (its instance ID removed first)',
    from: keysFor(policyWith({ models: [reader(true)] })),
    to: keysFor(policyWith({ models: [reader(false)] })),
  },
  {
    name: 'a stick registered while a model rule is on: the model is withheld, the stick allowed',
    from: keysFor(policyWith({ models: [reader(true)] })),
    to: keysFor(policyWith({ models: [reader(true)], registered: [stick('s1', 'A1')] })),
  },
  {
    name: 'an exception granted while a model rule is on: the model entry goes (tighten) before the exception opens disks',
    from: keysFor(policyWith({ models: [reader(true)] })),
    to: keysFor(policyWith({ models: [reader(true)] }), [exc('e1', 'AB12')]),
  },
  {
    name: 'foreign and wrong-typed values in owned places',
    from: keysFor(defaultUsbPolicy()),
    to: keysFor(policyWith({ registered: [stick('s1', 'A1')] })),
    extra: async (m) => {
      await m.add(`${RESTRICTIONS}\\DenyDeviceIDs`, { name: 'junk', type: 'REG_SZ', data: 'USB\\Class_08' });
      await m.add(`${RESTRICTIONS}\\AllowInstanceIDs`, { name: '7', type: 'REG_SZ', data: 'USB\\VID_DEAD&PID_BEEF\\evil' });
      await m.add(`${RSA_ROOT}\\{53f5630d-b6bf-11d0-94f2-00a0c91efb8b}`, { name: 'Deny_Read', type: 'REG_SZ', data: '0' });
      await m.add(RESTRICTIONS, { name: 'DenyRemovableDevices', type: 'REG_DWORD', data: 1 }); // not ours: left alone
    },
  },
];

describe('diff and apply: the end state is exactly the plan', () => {
  it.each(TRANSITIONS)('$name', async ({ from, to, extra }) => {
    const m = await seeded(from, extra);
    const r = await applyRegistryPlan(m, to);
    expect(r.errors).toEqual([]);
    const snap = nonEmpty(snapshot(m));
    const foreign = extra ? { [RESTRICTIONS]: { DenyRemovableDevices: { type: 'REG_DWORD', data: 1 } } } : {};
    const want = expected(to);
    for (const [k, v] of Object.entries(foreign)) want[k] = { ...(want[k] ?? {}), ...v };
    for (const k of Object.keys(want)) want[k] = Object.fromEntries(Object.entries(want[k]!).sort(([a], [b]) => a.localeCompare(b)));
    expect(snap).toEqual(want);
    // Idempotent: a second pass changes nothing and only reads.
    m.ops.length = 0;
    const again = await applyRegistryPlan(m, to);
    expect(again.wrote).toEqual([]);
    expect(m.ops.every((o) => o.op === 'query')).toBe(true);
  });
});

describe.each([false, true])('fail-closed: each step failing in turn (batched: %s)', (batched) => {
  beforeAll(() => {
    batching = batched;
  });
  afterAll(() => {
    batching = false;
  });
  for (const t of TRANSITIONS) {
    it(`${t.name}: stops at the failing step; never looser than before the loosening began`, async () => {
      const probe = await seeded(t.from, t.extra);
      const before = facts(probe);
      const ops = diffRegistry(
        t.to,
        new Map(await Promise.all(t.to.map(async (k) => [k.key, await probe.query(k.key)] as [string, RegKey | null]))),
      );
      const afterAll = await seeded(t.from, t.extra);
      await applyRegistryPlan(afterAll, t.to);
      const target = facts(afterAll);
      const firstLoosen = ops.findIndex((o) => o.phase === 'loosen');
      // Phase order itself: no tightening after a loosening.
      if (firstLoosen >= 0) expect(ops.slice(firstLoosen).every((o) => o.phase === 'loosen')).toBe(true);
      // Every step of short lists; of long ones (the 253-entry deny list) the ends, the phase boundary and a stride.
      const steps = [...Array(ops.length).keys()].filter(
        (i) => ops.length <= 40 || i < 8 || i >= ops.length - 8 || Math.abs(i - firstLoosen) <= 3 || i % 23 === 0,
      );
      for (const i of steps) {
        const m = await seeded(t.from, t.extra);
        const writes = () => m.ops.filter((o) => o.op !== 'query').length;
        m.failWhen = (o) => o.op !== 'query' && writes() === i + 1;
        const r = await applyRegistryPlan(m, t.to);
        expect(r.errors.length, `step ${i}`).toBe(1);
        expect(r.errors[0]).toMatch(/stopped, the stricter state stays/);
        // Value by value: exactly the rest is skipped. Batched: the whole failed batch (progress unknown) and what follows.
        if (!batched) expect(r.skipped).toHaveLength(ops.length - i);
        else expect(r.skipped.length).toBe(i < (firstLoosen < 0 ? ops.length : firstLoosen) ? ops.length : ops.length - firstLoosen);
        const now = facts(m);
        if (firstLoosen < 0 || i <= firstLoosen) {
          // Still tightening: every deny fact of before is there, no allow fact was added.
          expect(subset(before.deny, now.deny), `step ${i} deny kept`).toBe(true);
          expect(subset(now.allow, before.allow), `step ${i} no allow added`).toBe(true);
        } else {
          // Loosening: everything the new policy denies is in place, nothing beyond its allows.
          expect(subset(target.deny, now.deny), `step ${i} new denies in place`).toBe(true);
          expect(subset(now.allow, target.allow), `step ${i} allows within the new policy`).toBe(true);
        }
        // Whatever step failed: at least as strict as both policies agree on.
        const common = new Set([...before.deny].filter((x) => target.deny.has(x)));
        expect(subset(common, now.deny), `step ${i} common denies`).toBe(true);
      }
    });
  }
});

describe('recorded commands', () => {
  it('first start: deny lists, then flags, then RSA; the allow flag last', async () => {
    const m = new MemoryRegistry();
    const r = await applyRegistryPlan(m, keysFor(defaultUsbPolicy()));
    expect(r.errors).toEqual([]);
    const writes = m.ops.filter((o) => o.op !== 'query');
    const denyIdx = writes.findIndex((o) => o.op === 'add' && o.value.name === 'DenyDeviceIDs');
    const lastEntry = writes.findLastIndex((o) => o.key.endsWith('\\DenyDeviceIDs'));
    expect(lastEntry).toBeLessThan(denyIdx);
    expect(writes.at(-1)).toMatchObject({ op: 'add', key: RESTRICTIONS, value: { name: 'AllowDenyLayered', data: 1 } });
    // Deny entries: 256 class codes − the 4 the default allows (01 audio, 03 HID, 09 hub, 0b smart card)
    // + SD\CLASS_STORAGE = 253; the WPD setup class; 5 Restrictions flags; 3 + 2 + 2 + 2 RSA values.
    expect(writes.filter((o) => o.key.endsWith('\\DenyDeviceIDs'))).toHaveLength(253);
    expect(writes).toHaveLength(253 + 1 + 5 + 3 + 2 + 2 + 2);
  });
  it('an exception granted: its allow entry, the class-wide denies lifted, the allow flag last (all loosening)', async () => {
    const m = await seeded(keysFor(defaultUsbPolicy()));
    await applyRegistryPlan(m, keysFor(defaultUsbPolicy(), [exc('e1', 'AB12')]));
    expect(m.ops.filter((o) => o.op !== 'query')).toEqual([
      { op: 'add', key: `${RESTRICTIONS}\\AllowInstanceIDs`, value: { name: '1', type: 'REG_SZ', data: 'USB\\VID_0951&PID_1666\\AB12' } },
      { op: 'delete', key: `${RSA_ROOT}\\{53f5630d-b6bf-11d0-94f2-00a0c91efb8b}`, name: 'Deny_Read' },
      { op: 'delete', key: `${RSA_ROOT}\\{53f5630d-b6bf-11d0-94f2-00a0c91efb8b}`, name: 'Deny_Write' },
      { op: 'delete', key: `${RSA_ROOT}\\{53f5630d-b6bf-11d0-94f2-00a0c91efb8b}`, name: 'Deny_Execute' },
      { op: 'delete', key: `${RSA_ROOT}\\{6AC27878-A6FA-4155-BA85-F98F491D4F33}`, name: 'Deny_Read' },
      { op: 'delete', key: `${RSA_ROOT}\\{6AC27878-A6FA-4155-BA85-F98F491D4F33}`, name: 'Deny_Write' },
      { op: 'delete', key: `${RSA_ROOT}\\{F33FDC04-D1AC-4E8E-9A30-19BBD4B108AE}`, name: 'Deny_Read' },
      { op: 'delete', key: `${RSA_ROOT}\\{F33FDC04-D1AC-4E8E-9A30-19BBD4B108AE}`, name: 'Deny_Write' },
      { op: 'add', key: RESTRICTIONS, value: { name: 'AllowInstanceIDs', type: 'REG_DWORD', data: 1 } },
    ]);
  });
  it('the exception expires: its allow entry and flag go first (tighten), then the RSA denies come back', async () => {
    const m = await seeded(keysFor(defaultUsbPolicy(), [exc('e1', 'AB12')]));
    await applyRegistryPlan(m, keysFor(defaultUsbPolicy()));
    const w = m.ops.filter((o) => o.op !== 'query');
    expect(w[0]).toEqual({ op: 'delete', key: `${RESTRICTIONS}\\AllowInstanceIDs`, name: '1' });
    expect(w.map((o) => (o.op === 'add' ? `+${o.value.name}` : o.op === 'delete' ? `-${o.name}` : o.op))).toEqual(['-1', '+Deny_Read', '+Deny_Write', '+Deny_Execute', '+Deny_Read', '+Deny_Write', '+Deny_Read', '+Deny_Write', '-AllowInstanceIDs']);
  });
  it('a model rule enabled: its entry, then the allow flag; no deny touched. Disabled: both gone, tightening only', async () => {
    const m = await seeded(keysFor(defaultUsbPolicy()));
    await applyRegistryPlan(m, keysFor(policyWith({ models: [reader(true)] })));
    expect(m.ops.filter((o) => o.op !== 'query')).toEqual([
      { op: 'add', key: `${RESTRICTIONS}\\AllowInstanceIDs`, value: { name: '1', type: 'REG_SZ', data: 'USB\\VID_054C&PID_06C1\\0123ABCD' } },
      { op: 'add', key: RESTRICTIONS, value: { name: 'AllowInstanceIDs', type: 'REG_DWORD', data: 1 } },
    ]);
    m.ops.length = 0;
    const ops = diffRegistry(keysFor(policyWith({ models: [reader(false)] })), new Map(await Promise.all(keysFor(defaultUsbPolicy()).map(async (k) => [k.key, await m.query(k.key)] as [string, RegKey | null]))));
    expect(ops.map((o) => `${o.phase} ${o.op === 'add' ? '+' + o.value.name : '-' + o.name}`)).toEqual(['tighten -1', 'tighten -AllowInstanceIDs']);
    await applyRegistryPlan(m, keysFor(policyWith({ models: [reader(false)] })));
    expect(nonEmpty(snapshot(m))).toEqual(expected(keysFor(defaultUsbPolicy())));
  });
  it('an unreadable key: its denies written anyway, no loosening at all, error reported', async () => {
    const m = await seeded(keysFor(defaultUsbPolicy(), [exc('e1', 'AB12')]));
    m.failWhen = (o) => o.op === 'query' && o.key.endsWith('{53f5630d-b6bf-11d0-94f2-00a0c91efb8b}');
    const r = await applyRegistryPlan(m, keysFor(defaultUsbPolicy(), [exc('e1', 'AB12'), exc('e2', 'CD34')]));
    expect(r.errors[0]).toMatch(/cannot read/);
    expect(r.errors[1]).toMatch(/loosening skipped/);
    const w = m.ops.filter((o) => o.op !== 'query');
    expect(w.every((o) => !(o.op === 'add' && o.key.endsWith('AllowInstanceIDs')))).toBe(true);
    expect(r.skipped.some((o) => o.op === 'add' && o.value.data === 'USB\\VID_0951&PID_1666\\CD34')).toBe(true);
  });
  it('an unreadable allow list gets nothing added blindly', () => {
    const keys = keysFor(defaultUsbPolicy(), [exc('e1', 'AB12')]);
    const actual = new Map<string, RegKey | null | undefined>(keys.map((k) => [k.key, k.key.endsWith('AllowInstanceIDs') ? undefined : null]));
    const ops = diffRegistry(keys, actual);
    expect(ops.filter((o) => o.key.endsWith('\\AllowInstanceIDs'))).toEqual([]);
  });
  it('values compare by type and data: REG_SZ "1" is not REG_DWORD 1', () => {
    const key = `${RSA_ROOT}\\{53f56308-b6bf-11d0-94f2-00a0c91efb8b}`;
    const want: PlannedKey[] = [{ key, owned: ['Deny_Read', 'Deny_Write', 'Deny_Execute'], values: [{ name: 'Deny_Read', type: 'REG_DWORD', data: 1 }] }];
    const cur: RegValue[] = [{ name: 'deny_read', type: 'REG_SZ', data: '1' }];
    expect(diffRegistry(want, new Map([[key, { key, values: cur, subkeys: [] }]]))).toEqual([{ phase: 'tighten', op: 'add', key, value: want[0]!.values[0] }]);
  });
});

describe('batched application', () => {
  it('two batches at most: tighten, then loosen; the same end state', async () => {
    batching = true;
    try {
      const m = (await seeded(keysFor(defaultUsbPolicy()))) as BatchingMemory;
      m.batches = 0;
      await applyRegistryPlan(m, keysFor(defaultUsbPolicy(), [exc('e1', 'AB12')]));
      expect(m.batches).toBe(1); // only loosening here
      m.batches = 0;
      await applyRegistryPlan(m, keysFor(defaultUsbPolicy()));
      expect(m.batches).toBe(1); // the exception expired: only tightening
      m.batches = 0;
      const storageOk = keysFor(policyWith({ classRules: [{ class: '08', verdict: 'allow' }, ...defaultUsbPolicy().classRules] }));
      const r = await applyRegistryPlan(m, storageOk); // the deny list shrinks and renumbers: copies first, then the rest
      expect(m.batches).toBe(2);
      expect(r.errors).toEqual([]);
      const fresh = new MemoryRegistry();
      await applyRegistryPlan(fresh, storageOk);
      expect(nonEmpty(snapshot(m))).toEqual(nonEmpty(snapshot(fresh)));
    } finally {
      batching = false;
    }
  });
});
