/**
 * ポリシーのフォーム編集 (console/web/policy-form.ts): every field → body, invalid input → the
 * message on the right field, settings the form does not know carried over untouched, hostile text.
 * And the one policy addition the form needs: USBメモリ (class 08) read-only, judged by the agent.
 */
import { describe, expect, it } from 'vitest';
import { decideUsb } from '../../agent/usb/decide.js';
import type { UsbInterfaceInfo } from '../../agent/usb/observe.js';
import { planRegistry, RSA_ROOT } from '../../agent/usb/windows/plan.js';
import { defaultPolicyBody, policyBodyErrors } from '../../protocol/policy.js';
import { defaultUsbPolicy, type RegisteredMedia, type UsbPolicy } from '../../protocol/policy-usb.js';
import { applyForm, classChoices, errorText, fieldFor, fieldNames, NEW_ROW, shownValue, type FormGet } from '../../console/web/policy-form.js';

type Obj = Record<string, unknown>;
const STICK: RegisteredMedia = { id: 'stick-1', vendorId: '0781', productId: '5581', serial: '4C530001', access: 'readonly', label: '総務課 USB-01', descriptorHash: 'a'.repeat(64) };

function base(): Obj {
  const b = defaultPolicyBody() as unknown as Obj;
  (b.usb as UsbPolicy).registered = [STICK, { ...STICK, id: 'stick-2', serial: '4C530002', access: 'allow', label: 'two' }];
  return b;
}
const form = (f: Record<string, string | string[]>): FormGet => (n) => {
  const v = f[n];
  return v === undefined ? null : Array.isArray(v) ? v.at(-1)! : v;
};
const classIndex = (b: Obj, cls: string) => (b.usb as UsbPolicy).classRules.findIndex((r) => r.class === cls && r.subclass === undefined);

/** The changed paths between two JSON values (leaves), to prove "exactly that field". */
function changedPaths(a: unknown, b: unknown, p = ''): string[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  if (a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) => changedPaths((a as Obj)[k], (b as Obj)[k], p ? `${p}.${k}` : k));
  }
  return [p];
}

describe('form → body: each field changes exactly its setting', () => {
  const b = base();
  const i08 = classIndex(b, '08');
  const cases: { name: string; f: Record<string, string>; path: string; value: unknown }[] = [
    { name: 'USBメモリ → 読み取り専用', f: { [`usb.classRules[${i08}].verdict`]: 'readonly' }, path: `usb.classRules.${i08}.verdict`, value: 'readonly' },
    { name: 'USBメモリ → 許可', f: { [`usb.classRules[${i08}].verdict`]: 'allow' }, path: `usb.classRules.${i08}.verdict`, value: 'allow' },
    { name: 'HID → 遮断', f: { [`usb.classRules[0].verdict`]: 'block' }, path: 'usb.classRules.0.verdict', value: 'block' },
    { name: 'usb mode', f: { 'usb.mode': 'monitor' }, path: 'usb.mode', value: 'monitor' },
    { name: 'default verdict', f: { 'usb.defaultVerdict': 'allow' }, path: 'usb.defaultVerdict', value: 'allow' },
    { name: 'optical', f: { 'usb.optical': 'readonly' }, path: 'usb.optical', value: 'readonly' },
    { name: 'SD card', f: { 'usb.sdCard': 'allow' }, path: 'usb.sdCard', value: 'allow' },
    { name: 'exception poll', f: { 'usb.exceptionPollSeconds': ' 60 ' }, path: 'usb.exceptionPollSeconds', value: 60 },
    { name: 'model enabled (hidden false + checkbox true)', f: { 'usb.models[0].enabled': 'true' }, path: 'usb.models.0.enabled', value: true },
    { name: 'registered access', f: { 'usb.registered[0].access': 'allow' }, path: 'usb.registered.0.access', value: 'allow' },
    { name: 'registered label', f: { 'usb.registered[1].label': '  人事課  ' }, path: 'usb.registered.1.label', value: '人事課' },
    { name: 'mfa offline', f: { 'mfa.offlineAllowed': 'true' }, path: 'mfa.offlineAllowed', value: true },
    { name: 'mfa offline age', f: { 'mfa.offlineMaxAgeHours': '24' }, path: 'mfa.offlineMaxAgeHours', value: 24 },
    { name: 'mfa window', f: { 'mfa.windowSteps': '0' }, path: 'mfa.windowSteps', value: 0 },
    { name: 'mfa failures', f: { 'mfa.maxFailures': '3' }, path: 'mfa.maxFailures', value: 3 },
    { name: 'mfa lockout', f: { 'mfa.lockoutSeconds': '900' }, path: 'mfa.lockoutSeconds', value: 900 },
    { name: 'mfa break glass', f: { 'mfa.breakGlass': 'true' }, path: 'mfa.breakGlass', value: true },
    { name: 'mfa assignment', f: { 'mfa.requireAssignment': 'true' }, path: 'mfa.requireAssignment', value: true },
    { name: 'software mode', f: { 'software.mode': 'enforce' }, path: 'software.mode', value: 'enforce' },
    { name: 'software depth', f: { 'software.watchDepth': '2' }, path: 'software.watchDepth', value: 2 },
    { name: 'software scan', f: { 'software.scanIntervalMs': '1000' }, path: 'software.scanIntervalMs', value: 1000 },
    { name: 'software sync', f: { 'software.syncSeconds': '30' }, path: 'software.syncSeconds', value: 30 },
    { name: 'quarantine', f: { 'software.quarantine.enabled': 'false' }, path: 'software.quarantine.enabled', value: false },
    { name: 'pre-exec', f: { 'software.preExec.enabled': 'false' }, path: 'software.preExec.enabled', value: false },
    { name: 'pre-exec fallback', f: { 'software.preExec.fallback': 'allow' }, path: 'software.preExec.fallback', value: 'allow' },
    { name: 'heartbeat', f: { 'agent.heartbeatSeconds': '20' }, path: 'agent.heartbeatSeconds', value: 20 },
    { name: 'upload batch', f: { 'agent.uploadBatchSize': '100' }, path: 'agent.uploadBatchSize', value: 100 },
  ];
  for (const c of cases)
    it(c.name, () => {
      const r = applyForm(b, form(c.f));
      expect([...r.fieldErrors.entries(), ...r.otherErrors]).toEqual([]);
      expect(changedPaths(b, r.body)).toEqual([c.path]);
      expect(c.path.split('.').reduce<unknown>((o, k) => (o as Obj)[k], r.body)).toEqual(c.value);
      expect(policyBodyErrors(r.body)).toEqual([]);
    });

  it('locations: one path per line, blanks and CRLF dropped', () => {
    const r = applyForm(b, form({ 'software.locations': '/opt\r\n\r\n  /home  \n/tmp\n' }));
    expect(r.fieldErrors.size).toBe(0);
    expect(changedPaths(b, r.body).every((p) => p.startsWith('software.locations'))).toBe(true);
    expect((r.body.software as Obj).locations).toEqual(['/opt', '/home', '/tmp']);
  });

  it('the whole form submitted unchanged changes nothing (every field shows what is in force)', () => {
    const all: Record<string, string> = {};
    for (const n of fieldNames(b)) {
      if (n.includes(`[${NEW_ROW}]`) || n.endsWith('.remove')) continue;
      const m = /^usb\.(classRules|models|registered)\[(\d+)\]\.(\w+)$/.exec(n);
      const v = m ? ((b.usb as Obj)[m[1]!] as Obj[])[Number(m[2])]![m[3]!] : shownValue(b, n);
      all[n] = Array.isArray(v) ? v.join('\n') : String(v ?? '');
    }
    const r = applyForm(b, form(all));
    expect(r.fieldErrors.size).toBe(0);
    expect(JSON.stringify(r.body)).toBe(JSON.stringify(b)); // same keys, same order
  });

  it('an absent optional MFA setting stays absent when the form shows its default', () => {
    const b2 = base();
    b2.mfa = { offlineAllowed: false };
    const r = applyForm(b2, form({ 'mfa.lockoutSeconds': '300', 'mfa.breakGlass': 'false', 'mfa.windowSteps': '2' }));
    expect(r.body.mfa).toEqual({ offlineAllowed: false, windowSteps: 2 });
  });
});

describe('registered media table: add, remove', () => {
  it('adds a row (ids unique, hex lowercased, label optional), removes another', () => {
    const b = base();
    const r = applyForm(b, form({ 'usb.registered[0].remove': 'true', [`usb.registered[${NEW_ROW}].vendorId`]: '0951', [`usb.registered[${NEW_ROW}].productId`]: '1666', [`usb.registered[${NEW_ROW}].serial`]: 'AB12', [`usb.registered[${NEW_ROW}].access`]: 'allow' }));
    expect([...r.fieldErrors.entries(), ...r.otherErrors]).toEqual([]);
    const regs = (r.body.usb as UsbPolicy).registered;
    expect(regs.map((x) => x.id)).toEqual(['stick-2', 'media-0951-1666-1']);
    expect(regs[1]).toEqual({ id: 'media-0951-1666-1', vendorId: '0951', productId: '1666', serial: 'AB12', access: 'allow' });
  });

  it('an empty new row adds nothing; clearing a label removes it', () => {
    const b = base();
    const r = applyForm(b, form({ [`usb.registered[${NEW_ROW}].access`]: 'readonly', [`usb.registered[${NEW_ROW}].label`]: 'x', 'usb.registered[1].label': '   ' }));
    const regs = (r.body.usb as UsbPolicy).registered;
    expect(regs).toHaveLength(2);
    expect('label' in regs[1]!).toBe(false);
  });

  it('errors on the new row name its fields, errors after a removal name the row as shown', () => {
    const b = base();
    const r = applyForm(b, form({ 'usb.registered[0].remove': 'true', 'usb.registered[1].access': 'all', [`usb.registered[${NEW_ROW}].vendorId`]: '07810', [`usb.registered[${NEW_ROW}].serial`]: '' }));
    expect([...r.fieldErrors.keys()].sort()).toEqual(['usb.registered[1].access', `usb.registered[${NEW_ROW}].productId`, `usb.registered[${NEW_ROW}].serial`, `usb.registered[${NEW_ROW}].vendorId`].sort());
    expect(errorText(r.fieldErrors.get(`usb.registered[${NEW_ROW}].vendorId`)![0]!, 'ja')).toBe('16進数4桁で入力してください(例: 0781)。');
  });
});

describe('invalid input → the message is attached to its field', () => {
  const b = base();
  const cases: { f: Record<string, string>; field: string; ja: RegExp }[] = [
    { f: { 'agent.heartbeatSeconds': '0' }, field: 'agent.heartbeatSeconds', ja: /^1〜3600 の整数/ },
    { f: { 'agent.heartbeatSeconds': '9007199254740993' }, field: 'agent.heartbeatSeconds', ja: /数字だけ/ },
    { f: { 'agent.uploadBatchSize': '1e3' }, field: 'agent.uploadBatchSize', ja: /数字だけ/ },
    { f: { 'agent.uploadBatchSize': '-5' }, field: 'agent.uploadBatchSize', ja: /数字だけ/ },
    { f: { 'mfa.windowSteps': '11' }, field: 'mfa.windowSteps', ja: /^0〜10 の整数/ },
    { f: { 'mfa.lockoutSeconds': '999999999' }, field: 'mfa.lockoutSeconds', ja: /^1〜604800 の整数/ },
    { f: { 'usb.exceptionPollSeconds': '' }, field: 'usb.exceptionPollSeconds', ja: /数字だけ/ },
    { f: { 'usb.mode': 'off' }, field: 'usb.mode', ja: /選択肢/ },
    { f: { 'usb.classRules[0].verdict': 'readonly' }, field: 'usb.classRules[0].verdict', ja: /選択肢 \(block, allow\)/ }, // HID has no read-only
    { f: { 'usb.models[1].enabled': 'yes' }, field: 'usb.models[1].enabled', ja: /はい\/いいえ/ },
    { f: { 'software.locations': '/opt\nrelative/path\n/' }, field: 'software.locations', ja: /絶対パス/ },
    { f: { 'software.locations': '/opt/../etc' }, field: 'software.locations', ja: /絶対パス/ },
    { f: { 'mfa.breakGlass': 'TRUE' }, field: 'mfa.breakGlass', ja: /はい\/いいえ/ },
    { f: { 'usb.registered[0].label': 'x'.repeat(201) }, field: 'usb.registered[0].label', ja: /200文字/ },
  ];
  for (const c of cases)
    it(`${Object.keys(c.f)[0]} = ${JSON.stringify(Object.values(c.f)[0]).slice(0, 40)}`, () => {
      const r = applyForm(b, form(c.f));
      expect([...r.fieldErrors.keys()]).toEqual([c.field]);
      expect(r.otherErrors).toEqual([]);
      expect(errorText(r.fieldErrors.get(c.field)![0]!, 'ja')).toMatch(c.ja);
      expect(errorText(r.fieldErrors.get(c.field)![0]!, 'en')).not.toBe('');
    });

  it('a field longer than the bound is refused before parsing', () => {
    const r = applyForm(b, form({ 'software.locations': '/a\n'.repeat(40_000) }));
    expect([...r.fieldErrors.keys()]).toEqual(['software.locations']);
  });

  it('an error no field shows goes to the general list (e.g. a hand-edited rule)', () => {
    const b2 = base();
    (b2.software as Obj).rules = [{ kind: 'path', action: 'allow', prefix: 'nope' }];
    const r = applyForm(b2, form({}));
    expect(r.fieldErrors.size).toBe(0);
    expect(r.otherErrors).toEqual(['policy.software.rules[0].prefix: must be an absolute path without ., .. or trailing /']);
  });

  it('fieldFor: exact, under, row-level', () => {
    const names = ['software.locations', 'usb.registered[2].access', 'usb.registered[2].label'];
    expect(fieldFor(names, 'software.locations[3]')).toBe('software.locations');
    expect(fieldFor(names, 'usb.registered[2]')).toBe('usb.registered[2].access');
    expect(fieldFor(names, 'usb.registered[20].access')).toBe(null);
    expect(fieldFor(names, 'software.locationsX')).toBe(null);
  });
});

describe('settings the form does not know are carried over unchanged', () => {
  it('an optional section and optional members added by others survive an edit, in place', () => {
    const b = base();
    b.notices = { monitor: true, text: { ja: 'お知らせ', en: 'Notice' } };
    (b.mfa as Obj).screenLockMaxSeconds = 600;
    (b.agent as Obj).future = [1, { deep: 'x' }];
    (b.usb as Obj).registered = [{ ...STICK, futureKey: 'kept' }];
    const i08 = classIndex(b, '08');
    const r = applyForm(b, form({ [`usb.classRules[${i08}].verdict`]: 'readonly', 'mfa.maxFailures': '4' }));
    expect(changedPaths(b, r.body).sort()).toEqual([`usb.classRules.${i08}.verdict`, 'mfa.maxFailures'].sort());
    expect(r.body.notices).toEqual(b.notices);
    expect(Object.keys(r.body)).toEqual(Object.keys(b));
    expect((r.body.mfa as Obj).screenLockMaxSeconds).toBe(600);
    // The validator of this version does not know them: reported, never dropped silently.
    expect(r.otherErrors.some((e) => e.startsWith('policy.notices'))).toBe(true);
  });

  it('the input body is not modified', () => {
    const b = base();
    const copy = structuredClone(b);
    applyForm(b, form({ 'usb.mode': 'monitor', 'usb.registered[0].remove': 'true' }));
    expect(b).toEqual(copy);
  });
});

describe('hostile input', () => {
  const HOSTILE = '<img src=x onerror=alert(1)>';
  it('labels are kept as text (the page escapes them); control characters and formula prefixes are just text', () => {
    const b = base();
    const r = applyForm(b, form({ 'usb.registered[0].label': HOSTILE, [`usb.registered[${NEW_ROW}].vendorId`]: '0781', [`usb.registered[${NEW_ROW}].productId`]: '5581', [`usb.registered[${NEW_ROW}].serial`]: '=HYPERLINK("x")', [`usb.registered[${NEW_ROW}].label`]: '=cmd|x\u202e' }));
    expect(r.fieldErrors.size).toBe(0);
    const regs = (r.body.usb as UsbPolicy).registered;
    expect(regs[0]!.label).toBe(HOSTILE);
    expect(regs[2]).toMatchObject({ serial: '=HYPERLINK("x")', label: '=cmd|x\u202e' });
  });

  it('field names for another row, a prototype key, or absurd indices change nothing', () => {
    const b = base();
    const r = applyForm(b, form({ 'usb.registered[99].access': 'allow', 'usb.classRules[9007199254740993].verdict': 'allow', '__proto__.polluted': 'x', 'constructor.prototype.x': 'y', 'usb.registered[-1].remove': 'true' }));
    expect(r.fieldErrors.size).toBe(0);
    expect(JSON.stringify(r.body)).toBe(JSON.stringify(b));
    expect(({} as Obj).polluted).toBeUndefined();
  });

  it('a section that is not an object is reported, not overwritten', () => {
    const b = base();
    b.software = 'garbage';
    const r = applyForm(b, form({ 'software.quarantine.enabled': 'false' }));
    expect(r.fieldErrors.has('software.quarantine.enabled') || r.otherErrors.length > 0).toBe(true);
    expect(r.body.software).toBe('garbage');
  });

  it('10 000 registered media: one removed, the rest untouched', () => {
    const b = base();
    (b.usb as UsbPolicy).registered = Array.from({ length: 10_000 }, (_, i) => ({ ...STICK, id: `s-${i}`, serial: `S${i}` }));
    const r = applyForm(b, form({ 'usb.registered[5000].remove': 'true' }));
    expect(r.fieldErrors.size).toBe(0);
    expect((r.body.usb as UsbPolicy).registered).toHaveLength(9_999);
    expect((r.body.usb as UsbPolicy).registered[5000]!.id).toBe('s-5001');
  });
});

describe('USBメモリ 読み取り専用 (class 08 verdict readonly)', () => {
  const storage: UsbInterfaceInfo = { number: 0, alt: 0, class: 0x08, subclass: 6, protocol: 0x50 };
  const withReadonly = (): UsbPolicy => ({ ...defaultUsbPolicy(), classRules: defaultUsbPolicy().classRules.map((r) => (r.class === '08' ? { ...r, verdict: 'readonly' } : r)) });
  const dev = (interfaces: UsbInterfaceInfo[]) => ({
    path: '1-1', busnum: 1, devnum: 2, vendorId: '0781', productId: '5581', bcdDevice: '0100', deviceClass: 0, deviceSubclass: 0, deviceProtocol: 0,
    manufacturer: Buffer.from('SanDisk'), product: Buffer.from('Cruzer'), serial: Buffer.from('SN1'), descriptorHash: 'a'.repeat(64), authorized: false, interfaces,
  });
  const ctx = { agentId: 'a', now: new Date('2026-11-30T00:00:00Z'), exceptions: [], others: [] };

  it('is valid on class 08 as a whole only', () => {
    expect(classChoices({ class: '08' })).toEqual(['block', 'readonly', 'allow']);
    expect(classChoices({ class: '08', subclass: '06' })).toEqual(['block', 'allow']);
    expect(classChoices({ class: '06' })).toEqual(['block', 'allow']);
    const b = defaultPolicyBody();
    b.usb = withReadonly();
    expect(policyBodyErrors(b)).toEqual([]);
    b.usb.classRules = [{ class: '06', verdict: 'readonly' }, { class: '08', subclass: '06', verdict: 'readonly' }];
    expect(policyBodyErrors(b)).toEqual(['policy.usb.classRules[0].verdict: must be one of allow, block', 'policy.usb.classRules[1].verdict: must be one of allow, block']);
  });

  it('a stick opens read-only (Linux decision); a phone and a composite stick+RNDIS stay blocked', () => {
    const d = decideUsb(withReadonly(), dev([storage]), ctx);
    expect(d).toMatchObject({ authorizeDevice: true, readonly: true, eventType: 'usb.readonly', rule: 'class:08' });
    expect(decideUsb(withReadonly(), dev([{ ...storage, class: 0x06, subclass: 1, protocol: 1 }]), ctx)).toMatchObject({ authorizeDevice: false, eventType: 'usb.blocked' });
    const combo = decideUsb(withReadonly(), dev([storage, { number: 1, alt: 0, class: 0xe0, subclass: 1, protocol: 3 }]), ctx);
    expect(combo).toMatchObject({ partial: true, eventType: 'usb.blocked' });
    expect(combo.interfaces.map((i) => i.allow)).toEqual([true, false]);
  });

  it('Windows: Removable Disks readable, not writable (Deny_Write only)', () => {
    const pl = planRegistry({ policy: withReadonly(), exceptions: [], monitor: false, now: new Date('2026-11-30T00:00:00Z'), agentId: 'a' });
    const disks = pl.keys.find((k) => k.key === `${RSA_ROOT}\\{53f5630d-b6bf-11d0-94f2-00a0c91efb8b}`)!;
    expect(Object.fromEntries(disks.values.map((v) => [v.name, v.data]))).toEqual({ Deny_Write: 1 });
  });
});

describe('JSON (advanced) view keeps sections it does not know', () => {
  it('a section added later gets its own textarea and is parsed back', async () => {
    const { sectionsOf, parseSections, bodyOf } = await import('../../console/web/pages/policy.js');
    const doc = { version: 3, issuedAt: '2026-11-30T00:00:00.000Z', issuedBy: 'admin', ...defaultPolicyBody(), notices: { monitor: true } };
    expect(sectionsOf(doc)).toEqual(['agent', 'usb', 'mfa', 'software', 'notices']);
    expect(Object.keys(bodyOf(doc))).toEqual(['agent', 'usb', 'mfa', 'software', 'notices']);
    const body = bodyOf(doc) as unknown as Obj;
    const r = parseSections((s) => JSON.stringify(body[s]), sectionsOf(doc));
    expect(r.body.notices).toEqual({ monitor: true });
    // Hostile section names are not offered as form fields.
    expect(sectionsOf({ ...doc, ['"><script>']: 1 } as typeof doc)).not.toContain('"><script>');
  });
});
