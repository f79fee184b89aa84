/**
 * Windows device control, the pure part: policy + this terminal's exceptions (+ the devices present,
 * for serial-less exceptions) → the exact registry state Windows should enforce, and the list of
 * places where Windows cannot express the policy exactly and the plan is STRICTER (never looser).
 * No I/O, no clock of its own (`now` is the console's clock).
 *
 * Mechanisms (Microsoft's documentation, checked):
 * - Device Installation Restrictions, HKLM\Software\Policies\Microsoft\Windows\DeviceInstall\Restrictions
 *   (DeviceInstallation.admx; learn.microsoft.com/windows/client-management/mdm/policy-csp-deviceinstallation):
 *   `AllowDenyLayered`=1 (layered evaluation: device instance IDs > device IDs > setup classes > removable),
 *   `DenyDeviceIDs`=1 + list key `DenyDeviceIDs\1..n` (REG_SZ hardware/compatible IDs) + `DenyDeviceIDsRetroactive`,
 *   `DenyDeviceClasses`=1 + `DenyDeviceClasses\1..n` (setup class GUIDs) + `DenyDeviceClassesRetroactive`,
 *   `AllowInstanceIDs`=1 + `AllowInstanceIDs\1..n` (device instance IDs). The list keys hold values named
 *   1..n as Group Policy writes them (as in the CIS benchmark's DenyDeviceIDs\1 checks).
 *   Windows refuses to install a driver for a denied device: it gets no driver, like Linux's authorized=0.
 * - USB compatible IDs of each interface (learn.microsoft.com/windows-hardware/drivers/install/standard-usb-identifiers):
 *   USB\Class_cc&SubClass_ss&Prot_pp, USB\Class_cc&SubClass_ss, USB\Class_cc. A class rule of the policy
 *   therefore maps exactly to deny entries: composite devices get only their allowed functions (the
 *   parent, USB\COMPOSITE, matches no USB\Class_ entry), as the Linux enforcer authorizes per interface.
 *   With defaultVerdict 'block' every one of the 256 class codes not allowed is listed.
 * - SD memory cards on the SD bus have the compatible ID SD\CLASS_STORAGE
 *   (learn.microsoft.com/windows-hardware/drivers/install/identifiers-for-secure-digital--sd--devices).
 *   Card readers that are USB mass storage follow the USB rules; vendor PCIe readers are not covered.
 * - WPD (phones over MTP): setup class {eec5ad98-8080-425f-922a-dabf3de3f69a} (System-defined device
 *   setup classes available to vendors); denied together with USB class 06.
 * - Removable Storage Access, HKLM\Software\Policies\Microsoft\Windows\RemovableStorageDevices\{GUID}
 *   Deny_Read / Deny_Write / Deny_Execute (REG_DWORD): Removable Disks {53f5630d-…}, CD/DVD {53f56308-…},
 *   WPD {6AC27878-…} and {F33FDC04-…}. CLASS-WIDE: every removable disk gets the same access, so one
 *   writable medium and one read-only medium cannot coexist → Deny_Write for all, and a note.
 * - Device instance ID of a USB device with a serial: USB\VID_vvvv&PID_pppp\<serial>. Windows uses the
 *   serial only when every character is > 0x20 and < 0x7F, no ',' and (instance IDs) no '\'
 *   (learn.microsoft.com/windows-hardware/drivers/install/instance-ids, IRP_MN_QUERY_ID); otherwise
 *   the instance ID is made up from the port, and a registration by serial cannot be expressed.
 *
 * The Net setup class is never denied: it also holds the terminal's own network adapter. USB network
 * adapters and tethering are denied by their interface classes (02, 0a, e0, ef/04, ff). Likewise the
 * Media and AudioEndpoint setup classes (built-in sound is in them): a USB headset is opened or closed
 * by USB\Class_01 alone (usbaudio binds that compatible ID; no Class_01 function, no endpoints), and
 * the Printer / PrintQueue classes (network printers, Print to PDF) — USB printers are closed by
 * USB\Class_07 (usbprint binds it; no USB Printing Support, no printer device).
 *
 * Model rules (UsbModelRule: VID:PID opened for NAMED interface classes only). Windows has no ID that
 * joins VID:PID with an interface class, so it cannot open only some interfaces of a device:
 * - AllowDeviceIDs (USB\VID_v&PID_p, or &MI_nn for a composite function) is useless here: in layered
 *   evaluation (Microsoft: instance IDs > device IDs > setup classes > removable; within a layer Prevent
 *   before Allow — "unless another policy setting at the same or higher layer specifically prevents that
 *   installation") a USB\Class_ff deny in DenyDeviceIDs beats it. Everything not denied installs anyway
 *   (no "deny all not described"), so it would open nothing and is never written.
 * - Only AllowInstanceIDs (the top layer) opens a denied class, and it opens the device node AS A WHOLE:
 *   a single-function device gets its function whatever its class; a composite device only its parent
 *   (its &MI_nn functions keep their own, unknown, instance IDs and stay denied by class: stricter).
 * So a SERIAL-bound model rule becomes its instance ID, as a registration does, and only while this plan
 *   denies Removable Disks, CD/DVD and WPD completely (Deny_Read+Deny_Write): a device that copies the
 *   VID:PID and serial and offers storage or MTP gets a driver but no access (never open storage). A
 *   serial-less rule (the catalogue entries) has no instance ID Windows derives from the policy (it is made
 *   from the port, which any device plugged there shares): not opened on Windows, noted. A rule whose named
 *   classes Windows does not deny anyway needs nothing. Disabled rules: nothing.
 * The agent owns the values it writes: these keys must not also be set by a domain GPO.
 */
import { MODEL_INTERFACE, defaultUsbPolicy, exportInterface, type UsbException, type UsbPolicy } from '../../../protocol/policy-usb.js';
import type { RegValue } from '../../windows/registry.js';
import type { UsbPolicyInput } from '../platform.js';

export const RSA_ROOT = 'HKLM\\Software\\Policies\\Microsoft\\Windows\\RemovableStorageDevices';
export const RESTRICTIONS = 'HKLM\\Software\\Policies\\Microsoft\\Windows\\DeviceInstall\\Restrictions';

/** Removable Storage Access classes (issue 12, Microsoft's policy CSP). */
export const RSA_CLASS = {
  removableDisks: '{53f5630d-b6bf-11d0-94f2-00a0c91efb8b}',
  cdDvd: '{53f56308-b6bf-11d0-94f2-00a0c91efb8b}',
  wpd: '{6AC27878-A6FA-4155-BA85-F98F491D4F33}',
  wpdSecondary: '{F33FDC04-D1AC-4E8E-9A30-19BBD4B108AE}',
} as const;

/** Device setup classes (learn.microsoft.com …/system-defined-device-setup-classes-available-to-vendors). */
export const SETUP_CLASS = {
  wpd: '{eec5ad98-8080-425f-922a-dabf3de3f69a}',
  /** Listed to say why it is NOT used: the terminal's own NIC is in it. */
  net: '{4d36e972-e325-11ce-bfc1-08002be10318}',
  /** Not used either: built-in sound (HD Audio) is in Media, its endpoints in AudioEndpoint. */
  media: '{4d36e96c-e325-11ce-bfc1-08002be10318}',
  audioEndpoint: '{c166523c-fe0c-4a94-a586-f1a80cfbbf3e}',
  /** Not used: network printers and Print to PDF are in Printer / PrintQueue. */
  printer: '{4d36e979-e325-11ce-bfc1-08002be10318}',
  printQueue: '{1ed2bbf9-11f0-4084-b21f-ad83a8e6dcdc}',
} as const;

export const SD_STORAGE_ID = 'SD\\CLASS_STORAGE';

const RSA_NAMES = ['Deny_Read', 'Deny_Write', 'Deny_Execute'] as const;
const RESTRICTION_NAMES = ['AllowDenyLayered', 'DenyDeviceIDs', 'DenyDeviceIDsRetroactive', 'DenyDeviceClasses', 'DenyDeviceClassesRetroactive', 'AllowInstanceIDs'] as const;

/** One key of the desired state. `owned`: the value names the agent manages there ('all' = every value). */
export interface PlannedKey {
  key: string;
  owned: 'all' | readonly string[];
  values: RegValue[];
}

export interface PlanNote {
  /** Stable code for tests and the console. */
  code:
    | 'descriptor-hash-unenforceable'
    | 'serial-not-instance-id'
    | 'serial-less-exception'
    | 'readonly-class-wide'
    | 'narrower-allow-in-blocked-class'
    | 'optical-class-wide'
    | 'model-needs-serial'
    | 'model-would-open-storage';
  /** What it is about: `registered:<id>`, `exception:<id>`, `class:ef/04`, `sdCard`, … */
  subject: string;
  ja: string;
  en: string;
}

export interface RegistryPlan {
  keys: PlannedKey[];
  notes: PlanNote[];
  /** The lists as written (also inside `keys`), for events and tests. */
  denyDeviceIds: string[];
  denyClasses: string[];
  allowInstanceIds: string[];
}

/** A device present now, as devices.ts reads it from Enum\USB (for exceptions without a serial). */
export interface PresentUsbDevice {
  instanceId: string;
  vendorId: string;
  productId: string;
}

const dword = (name: string, data: number): RegValue => ({ name, type: 'REG_DWORD', data });
const HEX2 = /^[0-9a-f]{2}$/;
const HEX4 = /^[0-9a-f]{4}$/;
const up2 = (n: number) => n.toString(16).toUpperCase().padStart(2, '0');

/**
 * The device instance ID Windows gives a USB device with this serial, or null when Windows would
 * not use the serial (so no instance ID can be derived from the policy). Never contains a '\' beyond
 * the two separators, nor a control character: the result is data in a list value, and also cannot
 * name another key.
 */
export function usbInstanceId(vendorId: string, productId: string, serial: string | null): string | null {
  if (!HEX4.test(vendorId) || !HEX4.test(productId) || serial === null) return null;
  if (serial.length === 0 || serial.length > 126) return null; // MAX_DEVICE_ID_LEN 200 with "USB\VID_xxxx&PID_xxxx\"
  for (const ch of serial) {
    const c = ch.codePointAt(0)!;
    if (c <= 0x20 || c >= 0x7f || ch === ',' || ch === '\\') return null;
  }
  return `USB\\VID_${vendorId.toUpperCase()}&PID_${productId.toUpperCase()}\\${serial}`;
}

/** Exceptions in force now for this terminal (the same tests as decide.ts findException). */
export function activeExceptions(exceptions: readonly UsbException[], agentId: string, now: Date): UsbException[] {
  const t = now.getTime();
  return exceptions.filter((e) => {
    if (e.agentId !== agentId) return false;
    const exp = Date.parse(e.expiresAt);
    if (!(exp > t)) return false;
    if (!(Date.parse(e.grantedAt) <= t + 5 * 60_000)) return false; // granted "in the future": clock trouble
    return HEX4.test(e.vendorId) && HEX4.test(e.productId);
  });
}

/**
 * Policy class rules → USB compatible IDs to deny. Exact: for each class code the first rule
 * without a subclass (else defaultVerdict) gives the class's verdict; narrower rules before it refine.
 * A narrower ALLOW inside a denied class cannot be expressed (a deny on USB\Class_cc matches every
 * subclass at the same layer): stricter, noted.
 */
export function denyIdsForClassRules(policy: UsbPolicy, notes: PlanNote[]): string[] {
  const out: string[] = [];
  const rules = policy.classRules.filter((r) => HEX2.test(r.class) && (r.subclass === undefined || HEX2.test(r.subclass)) && (r.protocol === undefined || HEX2.test(r.protocol)));
  for (let c = 0; c < 256; c++) {
    const cc = up2(c);
    const forClass = rules.filter((r) => parseInt(r.class, 16) === c);
    const gi = forClass.findIndex((r) => r.subclass === undefined);
    const classVerdict = gi >= 0 ? forClass[gi]!.verdict : policy.defaultVerdict;
    const narrower = gi >= 0 ? forClass.slice(0, gi) : forClass;
    if (classVerdict === 'block') {
      out.push(`USB\\Class_${cc}`);
      for (const r of narrower)
        if (r.verdict === 'allow') notes.push(narrowerNote(`${r.class}/${r.subclass}${r.protocol ? '/' + r.protocol : ''}`, `${cc}`));
      continue;
    }
    // Class allowed: subclasses (and protocols) the rules block, first match wins.
    const subclasses = [...new Set(narrower.map((r) => r.subclass!))].sort();
    for (const s of subclasses) {
      const forSub = narrower.filter((r) => r.subclass === s);
      const si = forSub.findIndex((r) => r.protocol === undefined);
      const subVerdict = si >= 0 ? forSub[si]!.verdict : 'allow';
      const ss = s.toUpperCase();
      const protoRules = si >= 0 ? forSub.slice(0, si) : forSub;
      if (subVerdict === 'block') {
        out.push(`USB\\Class_${cc}&SubClass_${ss}`);
        for (const r of protoRules) if (r.verdict === 'allow') notes.push(narrowerNote(`${r.class}/${r.subclass}/${r.protocol}`, `${cc}/${ss}`));
        continue;
      }
      const seen = new Set<string>();
      for (const r of protoRules) {
        if (seen.has(r.protocol!)) continue; // first match wins
        seen.add(r.protocol!);
        if (r.verdict === 'block') out.push(`USB\\Class_${cc}&SubClass_${ss}&Prot_${r.protocol!.toUpperCase()}`);
      }
    }
  }
  return out;
}

function narrowerNote(rule: string, deniedAs: string): PlanNote {
  return {
    code: 'narrower-allow-in-blocked-class',
    subject: `class:${rule}`,
    ja: `クラス ${rule} の許可は Windows では表現できません(クラス ${deniedAs} 全体を遮断するため)。より厳しく遮断します。`,
    en: `Allowing ${rule} cannot be expressed on Windows (the whole class ${deniedAs} is denied); it is blocked (stricter).`,
  };
}

/** The access the policy gives a class of interfaces as a whole: 'allow' when its class code is allowed. */
function classAllowed(policy: UsbPolicy, cls: string): boolean {
  const r = policy.classRules.find((x) => x.class === cls && x.subclass === undefined);
  return (r ? r.verdict : policy.defaultVerdict) === 'allow';
}

type Access = 'allow' | 'readonly' | 'block';
interface Consumer {
  subject: string;
  access: Access;
}

/**
 * One Removable Storage Access class from everything that uses it. Deny_Read only when nothing may
 * read; Deny_Write when something may read but not everything that may read may also write — a
 * consumer allowed to write then becomes read-only (stricter), noted.
 */
function rsaValues(consumers: Consumer[], notes: PlanNote[], withExecute: boolean, classLabel: string): RegValue[] {
  const open = consumers.filter((c) => c.access !== 'block');
  if (open.length === 0) return [dword('Deny_Read', 1), dword('Deny_Write', 1), ...(withExecute ? [dword('Deny_Execute', 1)] : [])];
  const ro = open.filter((c) => c.access === 'readonly');
  if (ro.length === 0) return [];
  for (const c of open)
    if (c.access === 'allow')
      notes.push({
        code: 'readonly-class-wide',
        subject: c.subject,
        ja: `${c.subject} は書き込み可の設定ですが、Windows の取り外し可能記憶域アクセス(${classLabel})はクラス全体に効くため、読み取り専用になります(${ro.map((x) => x.subject).join(', ')} が読み取り専用のため)。`,
        en: `${c.subject} may write by policy, but Windows' Removable Storage Access (${classLabel}) is class-wide: it is read-only because ${ro.map((x) => x.subject).join(', ')} is read-only (stricter).`,
      });
  return [dword('Deny_Write', 1)];
}

function listKey(name: string, items: string[]): PlannedKey {
  return { key: `${RESTRICTIONS}\\${name}`, owned: 'all', values: items.map((d, i) => ({ name: String(i + 1), type: 'REG_SZ', data: d })) };
}

/**
 * The whole desired state. `present`: USB devices Windows has enumerated (for exceptions without a
 * serial, which can only be allowed by the instance ID Windows already gave the device).
 */
export function planRegistry(input: Pick<UsbPolicyInput, 'policy' | 'exceptions' | 'monitor' | 'now' | 'agentId'>, present: readonly PresentUsbDevice[] = []): RegistryPlan {
  const { policy } = input;
  const notes: PlanNote[] = [];
  const exceptions = activeExceptions(input.exceptions, input.agentId, input.now);

  // Per-device allows (instance IDs), from registered media and exceptions.
  const allow = new Set<string>();
  const storage: Consumer[] = [];
  for (const r of policy.registered) {
    const subject = `registered:${r.id}`;
    if (r.descriptorHash !== undefined) {
      notes.push({
        code: 'descriptor-hash-unenforceable',
        subject,
        ja: `${subject} は記述子ハッシュで固定されていますが、Windows はインストール時にハッシュを確認できません。この媒体は Windows では許可しません(より厳しい扱い)。`,
        en: `${subject} is pinned to a descriptor hash, which Windows cannot check at install time: the medium is not allowed on Windows (stricter).`,
      });
      continue;
    }
    const id = usbInstanceId(r.vendorId, r.productId, r.serial);
    if (!id) {
      notes.push(serialNote(subject));
      continue;
    }
    allow.add(id);
    storage.push({ subject, access: r.access });
  }
  const wpdConsumers: Consumer[] = [];
  for (const e of exceptions) {
    const subject = `exception:${e.id}`;
    if (e.serial === null) {
      const matches = present.filter((d) => d.vendorId === e.vendorId && d.productId === e.productId && validInstanceId(d.instanceId));
      for (const d of matches) allow.add(d.instanceId);
      notes.push({
        code: 'serial-less-exception',
        subject,
        ja: `${subject} はシリアル番号のない機器への一時許可です。Windows では現在接続中の該当機器(${matches.length} 台)のインスタンス ID だけを許可します。別のポートに挿し直した機器は、エージェントが次に検出するまで遮断されます。`,
        en: `${subject} is for devices without a serial: Windows allows only the instance IDs of matching devices present now (${matches.length}); a device re-plugged elsewhere stays blocked until the agent sees it.`,
      });
      if (matches.length === 0) continue;
    } else {
      const id = usbInstanceId(e.vendorId, e.productId, e.serial);
      if (!id) {
        notes.push(serialNote(subject));
        continue;
      }
      allow.add(id);
    }
    // An exception opens the whole device: it may be a stick or a phone.
    storage.push({ subject, access: e.access });
    wpdConsumers.push({ subject, access: e.access });
  }

  // Class-wide consumers of the Removable Disks class.
  if (classAllowed(policy, '08')) storage.push({ subject: 'class:08', access: 'allow' });
  // Storage as a whole read-only: every removable disk readable, none writable (Deny_Write).
  else if (policy.classRules.find((x) => x.class === '08' && x.subclass === undefined)?.verdict === 'readonly') storage.push({ subject: 'class:08', access: 'readonly' });
  storage.push({ subject: 'sdCard', access: policy.sdCard });
  if (classAllowed(policy, '06')) wpdConsumers.push({ subject: 'class:06', access: 'allow' });

  const denyIds = denyIdsForClassRules(policy, notes);
  if (policy.sdCard === 'block') denyIds.push(SD_STORAGE_ID);
  const denyClasses = classAllowed(policy, '06') ? [] : [SETUP_CLASS.wpd];

  const disks = rsaValues(storage, notes, true, 'Removable Disks');
  const wpd = rsaValues(wpdConsumers, notes, false, 'WPD');
  const optical = rsaValues([{ subject: 'optical', access: policy.optical }], notes, false, 'CD/DVD');
  if (classAllowed(policy, '08') && policy.optical !== 'allow')
    notes.push({
      code: 'optical-class-wide',
      subject: 'optical',
      ja: `USB 接続の光学ドライブにも optical の設定(${policy.optical})が適用されます(Windows の CD/DVD 設定はクラス全体に効くため)。`,
      en: `USB optical drives also get the optical setting (${policy.optical}): Windows' CD/DVD access is class-wide.`,
    });

  // Model rules last: whether one may be written depends on what everything else left open.
  const storageClosed = fullyDenied(disks) && fullyDenied(wpd) && fullyDenied(optical);
  for (const m of policy.models ?? []) {
    if (!m.enabled) continue;
    if (!HEX4.test(m.vendorId) || !HEX4.test(m.productId)) continue; // cannot pass validation; never written
    const denied = (m.interfaces ?? []).filter((p) => patternDenied(p, denyIds));
    if (denied.length === 0) continue; // Windows denies none of the named classes: nothing to open
    const subject = `model:${m.id}`;
    if (m.descriptorHash !== undefined) {
      notes.push({
        code: 'descriptor-hash-unenforceable',
        subject,
        ja: `${subject} は記述子ハッシュで固定されていますが、Windows はインストール時にハッシュを確認できません。この機種は Windows では許可しません(より厳しい扱い)。`,
        en: `${subject} is pinned to a descriptor hash, which Windows cannot check at install time: the model is not allowed on Windows (stricter).`,
      });
      continue;
    }
    if (m.serial === undefined) {
      notes.push({
        code: 'model-needs-serial',
        subject,
        ja: `${subject}(${m.vendorId}:${m.productId}、インターフェース ${denied.join(', ')})は Windows では開けません。Windows は VID:PID とインターフェースクラスを組み合わせて許可できず、機種(VID:PID)単位の許可はクラスの遮断に負けます。シリアル番号のない機器のインスタンス ID はポートから作られ、同じポートに挿した別の機器(記憶媒体を装うものを含む)も同じ ID になります。遮断のままです(より厳しい扱い)。Windows で使うには、機器 1 台ごとにシリアル番号付きの機種ルールを作成してください。`,
        en: `${subject} (${m.vendorId}:${m.productId}, interfaces ${denied.join(', ')}) cannot be opened on Windows: Windows cannot allow a VID:PID for some interface classes only, and a model-wide allow (device IDs) loses to the class deny; a device without a serial gets an instance ID made from the port, which any other device plugged there (a stick posing as the reader too) would share. It stays blocked (stricter). To use it on Windows, make one model rule per unit, with its serial.`,
      });
      continue;
    }
    const id = usbInstanceId(m.vendorId, m.productId, m.serial);
    if (!id) {
      notes.push(serialNote(subject));
      continue;
    }
    if (!storageClosed) {
      notes.push({
        code: 'model-would-open-storage',
        subject,
        ja: `${subject} は Windows ではインスタンス ID による機器全体の許可になり、指定のインターフェースだけを開けません。この端末では取り外し可能記憶域(ディスク・CD/DVD・WPD)がほかの規則で開いているため、同じ VID:PID とシリアル番号を装う記憶媒体にデータを書き出せてしまいます。許可しません(より厳しい扱い)。`,
        en: `${subject} would be an instance-ID allow of the whole device on Windows, not of its named interfaces only; removable storage (disks, CD/DVD or WPD) is open on this terminal by other rules, so a storage device copying this VID:PID and serial could take data off. Not allowed (stricter).`,
      });
      continue;
    }
    allow.add(id);
  }

  const allowIds = [...allow].sort();
  if (input.monitor) {
    // Monitor: nothing denied, nothing to allow. The keys stay, empty, so the enforcer removes old values.
    return {
      keys: emptyKeys(),
      notes,
      denyDeviceIds: [],
      denyClasses: [],
      allowInstanceIds: [],
    };
  }
  const restrictions: RegValue[] = [dword('AllowDenyLayered', 1)];
  if (denyIds.length) restrictions.push(dword('DenyDeviceIDs', 1), dword('DenyDeviceIDsRetroactive', 1));
  if (denyClasses.length) restrictions.push(dword('DenyDeviceClasses', 1), dword('DenyDeviceClassesRetroactive', 1));
  if (allowIds.length) restrictions.push(dword('AllowInstanceIDs', 1));
  return {
    keys: [
      { key: `${RSA_ROOT}\\${RSA_CLASS.removableDisks}`, owned: RSA_NAMES, values: disks },
      { key: `${RSA_ROOT}\\${RSA_CLASS.cdDvd}`, owned: RSA_NAMES, values: optical },
      { key: `${RSA_ROOT}\\${RSA_CLASS.wpd}`, owned: RSA_NAMES, values: wpd },
      { key: `${RSA_ROOT}\\${RSA_CLASS.wpdSecondary}`, owned: RSA_NAMES, values: wpd },
      { key: RESTRICTIONS, owned: RESTRICTION_NAMES, values: restrictions },
      listKey('DenyDeviceIDs', denyIds),
      listKey('DenyDeviceClasses', denyClasses),
      listKey('AllowInstanceIDs', allowIds),
    ],
    notes,
    denyDeviceIds: denyIds,
    denyClasses,
    allowInstanceIds: allowIds,
  };
}

/** A Removable Storage Access class that nothing may read or write. */
function fullyDenied(values: readonly RegValue[]): boolean {
  return values.some((v) => v.name === 'Deny_Read') && values.some((v) => v.name === 'Deny_Write');
}

/**
 * Whether the deny list closes any interface a model pattern ("ff", "ff/01", "07/01/02") names: the
 * class entry, or an entry for one of the subclasses / protocols inside the pattern. Compared
 * case-insensitively: Windows matches IDs that way.
 */
export function patternDenied(pattern: string, denyIds: readonly string[]): boolean {
  // A pattern no model may name (bad shape, storage/MTP/comms/network, ef without subclass) opens
  // nothing on Linux (decide.ts modelOpens): it must never be the reason for an allow here.
  if (!MODEL_INTERFACE.test(pattern)) return false;
  const [ci, si] = pattern.split('/').map((x) => parseInt(x, 16));
  if (exportInterface(ci!, si ?? -1) || (ci === 0xef && si === undefined)) return false;
  const [c, sc, p] = pattern.toUpperCase().split('/');
  const ids = denyIds.map((d) => d.toUpperCase());
  const cls = `USB\\CLASS_${c}`;
  return ids.some((d) => {
    if (d === cls) return true;
    if (!d.startsWith(cls + '&')) return false;
    if (sc === undefined) return true;
    const sub = `${cls}&SUBCLASS_${sc}`;
    if (d === sub) return true;
    if (!d.startsWith(sub + '&')) return false;
    return p === undefined || d === `${sub}&PROT_${p}`;
  });
}

function emptyKeys(): PlannedKey[] {
  return [
    { key: `${RSA_ROOT}\\${RSA_CLASS.removableDisks}`, owned: RSA_NAMES, values: [] },
    { key: `${RSA_ROOT}\\${RSA_CLASS.cdDvd}`, owned: RSA_NAMES, values: [] },
    { key: `${RSA_ROOT}\\${RSA_CLASS.wpd}`, owned: RSA_NAMES, values: [] },
    { key: `${RSA_ROOT}\\${RSA_CLASS.wpdSecondary}`, owned: RSA_NAMES, values: [] },
    { key: RESTRICTIONS, owned: RESTRICTION_NAMES, values: [] },
    listKey('DenyDeviceIDs', []),
    listKey('DenyDeviceClasses', []),
    listKey('AllowInstanceIDs', []),
  ];
}

/** An instance ID read back from Enum\USB (devices.ts): USB\VID_x&PID_y\<instance>, nothing else. */
export function validInstanceId(id: string): boolean {
  if (id.length > 199) return false;
  const m = /^USB\\VID_[0-9A-Fa-f]{4}&PID_[0-9A-Fa-f]{4}\\([^\\]+)$/.exec(id);
  if (!m) return false;
  return [...m[1]!].every((ch) => ch.codePointAt(0)! > 0x20 && ch.codePointAt(0)! < 0x7f && ch !== ',');
}

function serialNote(subject: string): PlanNote {
  return {
    code: 'serial-not-instance-id',
    subject,
    ja: `${subject} のシリアル番号は Windows のインスタンス ID に使われない文字を含むため(空白・制御文字・「,」「\\」・非 ASCII・長すぎる)、Windows では許可できません。遮断のままです。`,
    en: `${subject}: Windows does not use this serial in the instance ID (space, control or non-ASCII character, ',' or '\\', or too long), so it cannot be allowed on Windows; it stays blocked.`,
  };
}

/**
 * The strict default (defaultUsbPolicy, no exceptions, enforcing): what the installer writes before
 * the agent first runs, so a terminal is protected from the first boot; the agent's first plan is
 * then the same and writes nothing.
 */
export function strictDefaultPlan(): RegistryPlan {
  return planRegistry({ policy: defaultUsbPolicy(), exceptions: [], monitor: false, now: new Date(0), agentId: '' });
}
