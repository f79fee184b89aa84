import { describe, expect, it } from 'vitest';
import { defaultUsbPolicy, type RegisteredMedia, type UsbException, type UsbPolicy } from '../../protocol/policy-usb.js';
import { RESTRICTIONS, RSA_ROOT, SD_STORAGE_ID, SETUP_CLASS, activeExceptions, strictDefaultPlan, denyIdsForClassRules, planRegistry, usbInstanceId, validInstanceId, type PlanNote, type RegistryPlan } from '../../agent/usb/windows/plan.js';
import { keyParts } from '../../agent/windows/registry.js';

const NOW = new Date('2026-11-30T00:00:00Z');
const AGENT = 'agent-1';
const DISKS = `${RSA_ROOT}\\{53f5630d-b6bf-11d0-94f2-00a0c91efb8b}`;
const CDDVD = `${RSA_ROOT}\\{53f56308-b6bf-11d0-94f2-00a0c91efb8b}`;
const WPD1 = `${RSA_ROOT}\\{6AC27878-A6FA-4155-BA85-F98F491D4F33}`;
const WPD2 = `${RSA_ROOT}\\{F33FDC04-D1AC-4E8E-9A30-19BBD4B108AE}`;

const stick = (over: Partial<RegisteredMedia> = {}): RegisteredMedia => ({ id: 'stick-1', vendorId: '0781', productId: '5567', serial: '4C530001231120115142', access: 'allow', ...over });
const exc = (over: Partial<UsbException> = {}): UsbException => ({
  id: 'ex1',
  agentId: AGENT,
  vendorId: '0951',
  productId: '1666',
  serial: 'AB12',
  access: 'allow',
  grantedAt: '2026-11-29T23:00:00Z',
  expiresAt: '2026-11-30T01:00:00Z',
  grantedBy: 'admin',
  reason: 'r',
  ...over,
});
const policy = (over: Partial<UsbPolicy> = {}): UsbPolicy => ({ ...defaultUsbPolicy(), ...over });
const plan = (p: UsbPolicy, exceptions: UsbException[] = [], monitor = false, present: Parameters<typeof planRegistry>[1] = []) =>
  planRegistry({ policy: p, exceptions, monitor, now: NOW, agentId: AGENT }, present);
const valuesOf = (pl: RegistryPlan, key: string) => Object.fromEntries(pl.keys.find((k) => k.key === key)!.values.map((v) => [v.name, v.data]));
const codes = (n: PlanNote[]) => n.map((x) => `${x.code} ${x.subject}`);

/** Every class code 00..ff as USB\Class_XX except the given ones. */
const allClassesBut = (...allowed: string[]) =>
  Array.from({ length: 256 }, (_, c) => c.toString(16).toUpperCase().padStart(2, '0'))
    .filter((c) => !allowed.includes(c))
    .map((c) => `USB\\Class_${c}`);

describe('strict default policy', () => {
  const pl = plan(defaultUsbPolicy());
  it('denies every interface class but audio, HID, hub and smart card, and SD cards', () => {
    expect(pl.denyDeviceIds).toEqual([...allClassesBut('01', '03', '09', '0B'), SD_STORAGE_ID]);
  });
  it('denies the WPD setup class, never the Net class', () => {
    expect(pl.denyClasses).toEqual([SETUP_CLASS.wpd]);
    expect(JSON.stringify(pl.keys)).not.toContain(SETUP_CLASS.net);
  });
  it('Removable Storage Access denies everything on disks, CD/DVD and WPD', () => {
    expect(valuesOf(pl, DISKS)).toEqual({ Deny_Read: 1, Deny_Write: 1, Deny_Execute: 1 });
    expect(valuesOf(pl, CDDVD)).toEqual({ Deny_Read: 1, Deny_Write: 1 });
    expect(valuesOf(pl, WPD1)).toEqual({ Deny_Read: 1, Deny_Write: 1 });
    expect(valuesOf(pl, WPD2)).toEqual({ Deny_Read: 1, Deny_Write: 1 });
  });
  it('Restrictions: layered, deny lists with retroactive removal, no allow list', () => {
    expect(valuesOf(pl, RESTRICTIONS)).toEqual({ AllowDenyLayered: 1, DenyDeviceIDs: 1, DenyDeviceIDsRetroactive: 1, DenyDeviceClasses: 1, DenyDeviceClassesRetroactive: 1 });
    expect(valuesOf(pl, `${RESTRICTIONS}\\AllowInstanceIDs`)).toEqual({});
    const list = pl.keys.find((k) => k.key === `${RESTRICTIONS}\\DenyDeviceIDs`)!;
    expect(list.values[0]).toEqual({ name: '1', type: 'REG_SZ', data: 'USB\\Class_00' });
    // 256 class codes − 4 allowed (01 03 09 0b) + SD\CLASS_STORAGE.
    expect(list.values.at(-1)).toEqual({ name: String(253), type: 'REG_SZ', data: SD_STORAGE_ID });
    expect(list.owned).toBe('all');
  });
  it('no notes: the default is exactly expressible', () => expect(pl.notes).toEqual([]));
  it('strictDefaultPlan (what the installer writes) is this plan', () => expect(strictDefaultPlan()).toEqual(pl));
});

describe('monitor mode: no deny values anywhere', () => {
  const pl = plan(policy({ registered: [stick()] }), [exc()], true);
  it.each(pl.keys.map((k) => k.key))('%s is empty', (key) => expect(valuesOf(pl, key)).toEqual({}));
  it('lists are empty', () => {
    expect(pl.denyDeviceIds).toEqual([]);
    expect(pl.allowInstanceIds).toEqual([]);
  });
});

describe('class rules → compatible IDs (first match wins)', () => {
  const rules = (cr: UsbPolicy['classRules'], defaultVerdict: 'allow' | 'block' = 'allow') => {
    const notes: PlanNote[] = [];
    return { ids: denyIdsForClassRules(policy({ classRules: cr, defaultVerdict }), notes), notes: codes(notes) };
  };
  it.each([
    ['default allow, nothing blocked', [], 'allow', [], []],
    ['block storage and tethering', [{ class: '08', verdict: 'block' }, { class: 'e0', verdict: 'block' }, { class: 'ef', subclass: '04', verdict: 'block' }], 'allow', ['USB\\Class_08', 'USB\\Class_E0', 'USB\\Class_EF&SubClass_04'], []],
    ['protocol-level block inside an allowed subclass', [{ class: 'e0', subclass: '01', protocol: '03', verdict: 'block' }], 'allow', ['USB\\Class_E0&SubClass_01&Prot_03'], []],
    ['subclass allow then class block: stricter, noted', [{ class: 'ef', subclass: '02', verdict: 'allow' }, { class: 'ef', verdict: 'block' }], 'allow', ['USB\\Class_EF'], ['narrower-allow-in-blocked-class class:ef/02']],
    ['protocol allow in a blocked subclass: stricter, noted', [{ class: 'e0', subclass: '01', protocol: '01', verdict: 'allow' }, { class: 'e0', subclass: '01', verdict: 'block' }], 'allow', ['USB\\Class_E0&SubClass_01'], ['narrower-allow-in-blocked-class class:e0/01/01']],
    ['class allow shadows a later class block', [{ class: '08', verdict: 'allow' }, { class: '08', verdict: 'block' }], 'allow', [], []],
    ['later narrower rules after the class rule are unreachable', [{ class: '08', verdict: 'allow' }, { class: '08', subclass: '06', verdict: 'block' }], 'allow', [], []],
    ['first of two protocol rules wins', [{ class: '02', subclass: '02', protocol: 'ff', verdict: 'allow' }, { class: '02', subclass: '02', protocol: 'ff', verdict: 'block' }], 'allow', [], []],
  ] as const)('%s', (_n, cr, dv, ids, notes) => {
    const r = rules(cr as unknown as UsbPolicy['classRules'], dv);
    expect(r.ids).toEqual(ids);
    expect(r.notes).toEqual(notes);
  });
  it('default block with a subclass allow in an unlisted class: the class is denied, noted', () => {
    const r = rules([{ class: 'ef', subclass: '01', verdict: 'allow' }], 'block');
    expect(r.ids).toContain('USB\\Class_EF');
    expect(r.notes).toEqual(['narrower-allow-in-blocked-class class:ef/01']);
  });
  it('hostile rules that slipped past validation (upper case, junk) are ignored, not written', () => {
    const r = rules([{ class: '0\\8', verdict: 'block' }, { class: '08', subclass: 'x\u0000', verdict: 'block' }] as unknown as UsbPolicy['classRules'], 'allow');
    expect(r.ids).toEqual([]);
  });
});

describe('registered media', () => {
  it.each<[string, Partial<RegisteredMedia>, string | null]>([
    ['plain serial', {}, 'USB\\VID_0781&PID_5567\\4C530001231120115142'],
    ['lower-case hex ids upper-cased', { vendorId: 'abcd', productId: 'ef01', serial: 'x1' }, 'USB\\VID_ABCD&PID_EF01\\x1'],
    ['ampersand and punctuation are valid instance characters', { serial: 'A&B_C-1.2' }, 'USB\\VID_0781&PID_5567\\A&B_C-1.2'],
    ['backslash: never another key', { serial: 'AB\\..\\..\\Run' }, null],
    ['comma', { serial: 'A,B' }, null],
    ['space', { serial: 'A B' }, null],
    ['control character', { serial: 'AB\u0007' }, null],
    ['newline (forged reg line)', { serial: 'AB\r\n    X    REG_SZ    y' }, null],
    ['non-ASCII', { serial: 'ＡＢ' }, null],
    ['DEL', { serial: 'AB\u007f' }, null],
    ['too long', { serial: 'A'.repeat(127) }, null],
  ])('%s', (_n, over, id) => {
    const r = stick(over);
    expect(usbInstanceId(r.vendorId, r.productId, r.serial)).toBe(id);
    const pl = plan(policy({ registered: [r] }));
    expect(pl.allowInstanceIds).toEqual(id ? [id] : []);
    if (!id) expect(codes(pl.notes)).toEqual(['serial-not-instance-id registered:stick-1']);
    for (const k of pl.keys) expect(keyParts(k.key).parts.slice(0, 4)).toEqual(['Software', 'Policies', 'Microsoft', 'Windows']);
    expect(pl.keys.map((k) => k.key).sort()).toEqual(plan(defaultUsbPolicy()).keys.map((k) => k.key).sort());
  });
  it('allow: instance ID listed, disks readable and writable, still denied by class for every other stick', () => {
    const pl = plan(policy({ registered: [stick()] }));
    expect(valuesOf(pl, `${RESTRICTIONS}\\AllowInstanceIDs`)).toEqual({ '1': 'USB\\VID_0781&PID_5567\\4C530001231120115142' });
    expect(valuesOf(pl, RESTRICTIONS)).toMatchObject({ AllowDenyLayered: 1, AllowInstanceIDs: 1, DenyDeviceIDs: 1 });
    expect(pl.denyDeviceIds).toContain('USB\\Class_08');
    expect(valuesOf(pl, DISKS)).toEqual({});
    expect(pl.notes).toEqual([]);
  });
  it('readonly: Deny_Write on removable disks, exactly', () => {
    const pl = plan(policy({ registered: [stick({ access: 'readonly' })] }));
    expect(valuesOf(pl, DISKS)).toEqual({ Deny_Write: 1 });
    expect(pl.notes).toEqual([]);
  });
  it('one writable and one read-only stick: both read-only (stricter), noted', () => {
    const pl = plan(policy({ registered: [stick(), stick({ id: 'ro', serial: 'RO1', access: 'readonly' })] }));
    expect(valuesOf(pl, DISKS)).toEqual({ Deny_Write: 1 });
    expect(codes(pl.notes)).toEqual(['readonly-class-wide registered:stick-1']);
    expect(pl.notes[0]!.ja).toContain('読み取り専用');
  });
  it('descriptor hash pinned: not allowed on Windows (stricter), noted', () => {
    const pl = plan(policy({ registered: [stick({ descriptorHash: 'a'.repeat(64) })] }));
    expect(pl.allowInstanceIds).toEqual([]);
    expect(valuesOf(pl, DISKS)).toEqual({ Deny_Read: 1, Deny_Write: 1, Deny_Execute: 1 });
    expect(codes(pl.notes)).toEqual(['descriptor-hash-unenforceable registered:stick-1']);
  });
  it('SD cards read-only while a registered stick may write: both read-only, noted', () => {
    const pl = plan(policy({ registered: [stick()], sdCard: 'readonly' }));
    expect(valuesOf(pl, DISKS)).toEqual({ Deny_Write: 1 });
    expect(pl.denyDeviceIds).not.toContain(SD_STORAGE_ID);
    expect(codes(pl.notes)).toEqual(['readonly-class-wide registered:stick-1']);
  });
  it('duplicates collapse to one entry', () => {
    const pl = plan(policy({ registered: [stick(), stick({ id: 'again' })] }));
    expect(pl.allowInstanceIds).toHaveLength(1);
  });
});

describe('exceptions (console clock)', () => {
  it.each<[string, Partial<UsbException>, boolean]>([
    ['valid', {}, true],
    ['expired', { expiresAt: '2026-11-30T00:00:00Z' }, false],
    ['other terminal', { agentId: 'agent-2' }, false],
    ['granted in the future', { grantedAt: '2026-11-30T00:06:00Z' }, false],
    ['granted a little ahead (clock skew)', { grantedAt: '2026-11-30T00:04:00Z' }, true],
    ['unparseable expiry', { expiresAt: 'soon' }, false],
  ])('%s', (_n, over, active) => {
    expect(activeExceptions([exc(over)], AGENT, NOW).length).toBe(active ? 1 : 0);
    const pl = plan(defaultUsbPolicy(), [exc(over)]);
    expect(pl.allowInstanceIds).toEqual(active ? ['USB\\VID_0951&PID_1666\\AB12'] : []);
  });
  it('an exception opens disks and WPD for reading; readonly → Deny_Write on both', () => {
    const a = plan(defaultUsbPolicy(), [exc()]);
    expect(valuesOf(a, DISKS)).toEqual({});
    expect(valuesOf(a, WPD1)).toEqual({});
    const r = plan(defaultUsbPolicy(), [exc({ access: 'readonly' })]);
    expect(valuesOf(r, DISKS)).toEqual({ Deny_Write: 1 });
    expect(valuesOf(r, WPD2)).toEqual({ Deny_Write: 1 });
  });
  it('added at grant and gone at expiry: the same exception, two clocks', () => {
    const e = exc({ expiresAt: '2026-11-30T00:10:00Z' });
    const before = planRegistry({ policy: defaultUsbPolicy(), exceptions: [e], monitor: false, now: new Date('2026-11-30T00:09:59Z'), agentId: AGENT });
    const after = planRegistry({ policy: defaultUsbPolicy(), exceptions: [e], monitor: false, now: new Date('2026-11-30T00:10:00Z'), agentId: AGENT });
    expect(before.allowInstanceIds).toEqual(['USB\\VID_0951&PID_1666\\AB12']);
    expect(after.allowInstanceIds).toEqual([]);
    expect(after).toEqual(plan(defaultUsbPolicy()));
  });
  it('serial-less exception: the present matching devices by their instance IDs, noted', () => {
    const present = [
      { instanceId: 'USB\\VID_0951&PID_1666\\5&1a2b3c4d&0&2', vendorId: '0951', productId: '1666' },
      { instanceId: 'USB\\VID_0951&PID_1667\\X', vendorId: '0951', productId: '1667' },
      { instanceId: 'USB\\VID_0951&PID_1666\\a\\b', vendorId: '0951', productId: '1666' },
    ];
    const pl = plan(defaultUsbPolicy(), [exc({ serial: null })], false, present);
    expect(pl.allowInstanceIds).toEqual(['USB\\VID_0951&PID_1666\\5&1a2b3c4d&0&2']);
    expect(codes(pl.notes)).toEqual(['serial-less-exception exception:ex1']);
    const none = plan(defaultUsbPolicy(), [exc({ serial: null })]);
    expect(none.allowInstanceIds).toEqual([]);
    expect(valuesOf(none, DISKS)).toEqual({ Deny_Read: 1, Deny_Write: 1, Deny_Execute: 1 });
  });
  it('hostile exception serial cannot reach the registry', () => {
    const pl = plan(defaultUsbPolicy(), [exc({ serial: 'X\\..\\..\\..\\Run' })]);
    expect(pl.allowInstanceIds).toEqual([]);
    expect(codes(pl.notes)).toEqual(['serial-not-instance-id exception:ex1']);
  });
});

describe('optical, SD card, phones, network adapters', () => {
  it.each([
    ['block', { Deny_Read: 1, Deny_Write: 1 }],
    ['readonly', { Deny_Write: 1 }],
    ['allow', {}],
  ] as const)('optical %s', (optical, want) => expect(valuesOf(plan(policy({ optical })), CDDVD)).toEqual(want));
  it.each([
    ['block', true, { Deny_Read: 1, Deny_Write: 1, Deny_Execute: 1 }],
    ['readonly', false, { Deny_Write: 1 }],
    ['allow', false, {}],
  ] as const)('sdCard %s', (sdCard, denied, disks) => {
    const pl = plan(policy({ sdCard }));
    expect(pl.denyDeviceIds.includes(SD_STORAGE_ID)).toBe(denied);
    expect(valuesOf(pl, DISKS)).toEqual(disks);
  });
  it('class 06 allowed: phones get no WPD denial', () => {
    const pl = plan(policy({ classRules: [{ class: '06', verdict: 'allow' }, ...defaultUsbPolicy().classRules] }));
    expect(pl.denyClasses).toEqual([]);
    expect(pl.denyDeviceIds).not.toContain('USB\\Class_06');
    expect(valuesOf(pl, WPD1)).toEqual({});
  });
  it('storage allowed by class: disks open, USB optical drives follow `optical` (noted)', () => {
    const pl = plan(policy({ classRules: [{ class: '08', verdict: 'allow' }, ...defaultUsbPolicy().classRules] }));
    expect(pl.denyDeviceIds).not.toContain('USB\\Class_08');
    expect(valuesOf(pl, DISKS)).toEqual({});
    expect(codes(pl.notes)).toEqual(['optical-class-wide optical']);
  });
  it('tethering classes are denied by the default', () => {
    const ids = plan(defaultUsbPolicy()).denyDeviceIds;
    for (const c of ['02', '0A', 'E0', 'EF', 'FF', '06', '08']) expect(ids).toContain(`USB\\Class_${c}`);
  });
});

describe('validInstanceId (read back from Enum\\USB)', () => {
  it.each([
    ['USB\\VID_0781&PID_5567\\4C53', true],
    ['USB\\VID_0781&PID_5567\\5&1a2b&0&2', true],
    ['USB\\VID_0781&PID_5567&MI_00\\7&1&0&0000', false],
    ['USB\\VID_0781&PID_5567\\a\\b', false],
    ['USB\\VID_0781&PID_5567\\a b', false],
    ['USB\\VID_0781&PID_5567\\a,b', false],
    ['USBSTOR\\Disk&Ven_X\\1', false],
    ['USB\\VID_0781&PID_5567\\' + 'x'.repeat(200), false],
  ])('%j → %s', (id, ok) => expect(validInstanceId(id)).toBe(ok));
});
