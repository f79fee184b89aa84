/**
 * The USB decision: policy × observed device → which interfaces the kernel may bind.
 * Pure (no I/O, no clock: `now` is the console's clock, passed in), exhaustively unit-tested.
 *
 * Order, per alt setting of each interface (the first that applies decides, and is the rule the
 * event names; an interface opens only when every one of its alt settings does):
 *   1. a valid time-limited exception for this device on this terminal opens every interface;
 *   2. registered media open their mass-storage interfaces (allow or read-only);
 *   3. the first enabled model rule matching the device opens the interfaces it names, never a
 *      storage, MTP/PTP, communications or network one (exportInterface);
 *   4. the first matching class rule; 5. the default verdict.
 * A device that shares VID:PID:serial with another device present at the same time gets no
 * registration, serial-bound model rule or exception (a cloned serial cannot ride on a registered one).
 */
import { exportInterface, modelInterfaceMatches, type RegisteredMedia, type UsbClassRule, type UsbException, type UsbModelRule, type UsbPolicy } from '../../protocol/policy-usb.js';
import { hex2, interfaceLabel, type UsbDeviceInfo, type UsbInterfaceInfo } from './observe.js';

export const MASS_STORAGE = 0x08;

export interface InterfaceVerdict {
  number: number;
  classes: string[]; // every alt setting, "cc/ss/pp"
  allow: boolean;
  rule: string;
}

export type UsbEventType = 'usb.blocked' | 'usb.allowed' | 'usb.readonly' | 'usb.exception_used';

export interface UsbDecision {
  /** Authorize the device at all (false = `authorized=0`, the kernel creates no interfaces). */
  authorizeDevice: boolean;
  interfaces: InterfaceVerdict[];
  /** Block devices under this USB device get `blockdev --setro` before anyone can mount them. */
  readonly: boolean;
  /** The rule that decided the outcome, e.g. `class:08`, `registered:stick-1`, `exception:ab12`, `default`. */
  rule: string;
  exceptionId: string | null;
  /** Some interfaces allowed and some blocked (a composite "keyboard" with storage). */
  partial: boolean;
  eventType: UsbEventType;
  /** Why a registration or exception was ignored, if it was. */
  note: string | null;
}

export interface DecideContext {
  agentId: string;
  /** The console's clock (ctx.console.consoleNow()): exceptions expire by it, not by the terminal's. */
  now: Date;
  exceptions: readonly UsbException[];
  /** The other USB devices present now (for cloned-serial detection). */
  others: readonly Pick<UsbDeviceInfo, 'path' | 'vendorId' | 'productId' | 'serial'>[];
}

const lc = (s: string) => s.toLowerCase();

/** The serial as compared with rules: exact UTF-8 text, no trimming; null when absent or empty. */
export function serialText(serial: Buffer | null): string | null {
  if (serial === null || serial.length === 0) return null;
  return serial.toString('utf8');
}

function classRuleMatches(r: UsbClassRule, i: UsbInterfaceInfo): boolean {
  if (lc(r.class) !== hex2(i.class)) return false;
  if (r.subclass !== undefined && lc(r.subclass) !== hex2(i.subclass)) return false;
  if (r.protocol !== undefined && lc(r.protocol) !== hex2(i.protocol)) return false;
  return true;
}

export function judgeInterfaceByClass(policy: UsbPolicy, i: UsbInterfaceInfo): { allow: boolean; rule: string; readonly?: boolean } {
  for (const r of policy.classRules) {
    if (classRuleMatches(r, i)) {
      const name = 'class:' + [r.class, r.subclass, r.protocol].filter((x) => x !== undefined).map((x) => lc(x!)).join('/');
      // 'readonly' (valid on class 08 only): the storage interface opens and the disk is set read-only.
      if (r.verdict === 'readonly') return { allow: i.class === MASS_STORAGE, rule: name, readonly: true };
      return { allow: r.verdict === 'allow', rule: name };
    }
  }
  return { allow: policy.defaultVerdict === 'allow', rule: 'default' };
}

function sameIdentity(d: Pick<UsbDeviceInfo, 'vendorId' | 'productId' | 'serial'>, vendorId: string, productId: string, serial: string | null): boolean {
  if (d.vendorId !== lc(vendorId) || d.productId !== lc(productId)) return false;
  if (serial === null) return true;
  return serialText(d.serial) === serial;
}

export function findRegistration(policy: UsbPolicy, d: UsbDeviceInfo): RegisteredMedia | null {
  const serial = serialText(d.serial);
  if (serial === null) return null; // no serial, no registration: it would match every such stick
  for (const r of policy.registered) {
    if (!sameIdentity(d, r.vendorId, r.productId, r.serial)) continue;
    if (r.descriptorHash !== undefined && lc(r.descriptorHash) !== d.descriptorHash) continue;
    return r;
  }
  return null;
}

/** The first enabled model rule naming this device (VID:PID, and its serial / descriptor hash when the rule has them). */
export function findModel(policy: UsbPolicy, d: UsbDeviceInfo): UsbModelRule | null {
  for (const m of policy.models ?? []) {
    if (!m.enabled) continue;
    if (!sameIdentity(d, m.vendorId, m.productId, m.serial ?? null)) continue;
    if (m.descriptorHash !== undefined && lc(m.descriptorHash) !== d.descriptorHash) continue;
    return m;
  }
  return null;
}

/** Whether a model rule opens this alt setting: named by the rule, and never an export class. */
export function modelOpens(m: UsbModelRule, i: UsbInterfaceInfo): boolean {
  if (exportInterface(i.class, i.subclass)) return false;
  return m.interfaces.some((p) => modelInterfaceMatches(p, i.class, i.subclass, i.protocol));
}

/**
 * Whether an exception names this device. Its matching key is serialHex, the raw serial bytes
 * (the display serial in events is escaped and cut, so it cannot match every device); an
 * exception stored before serialHex compares its text with the serial read as UTF-8, as then.
 */
export function exceptionMatches(e: Pick<UsbException, 'vendorId' | 'productId' | 'serial' | 'serialHex'>, d: Pick<UsbDeviceInfo, 'vendorId' | 'productId' | 'serial'>): boolean {
  if (d.vendorId !== lc(e.vendorId) || d.productId !== lc(e.productId)) return false;
  if (typeof e.serialHex === 'string') return d.serial !== null && d.serial.length > 0 && d.serial.toString('hex') === lc(e.serialHex);
  if (e.serial === null) return true; // VID:PID only, for devices without a serial
  return serialText(d.serial) === e.serial;
}

export function findException(ctx: DecideContext, d: UsbDeviceInfo): UsbException | null {
  const now = ctx.now.getTime();
  for (const e of ctx.exceptions) {
    if (e.agentId !== ctx.agentId) continue;
    if (!exceptionMatches(e, d)) continue;
    const exp = Date.parse(e.expiresAt);
    if (!(exp > now)) continue;
    if (Date.parse(e.grantedAt) > now + 5 * 60_000) continue; // granted "in the future": clock trouble, ignore
    return e;
  }
  return null;
}

function isCloned(ctx: DecideContext, d: UsbDeviceInfo): boolean {
  const serial = serialText(d.serial);
  if (serial === null) return false;
  return ctx.others.some((o) => o.path !== d.path && o.vendorId === d.vendorId && o.productId === d.productId && serialText(o.serial) === serial);
}

/** Groups alt settings by interface number: an interface is allowed only if all its alt settings are. */
function groupInterfaces(list: readonly UsbInterfaceInfo[]): Map<number, UsbInterfaceInfo[]> {
  const m = new Map<number, UsbInterfaceInfo[]>();
  for (const i of list) {
    const g = m.get(i.number);
    if (g) g.push(i);
    else m.set(i.number, [i]);
  }
  return m;
}

export function decideUsb(policy: UsbPolicy, d: UsbDeviceInfo, ctx: DecideContext): UsbDecision {
  const cloned = isCloned(ctx, d);
  const exception = cloned ? null : findException(ctx, d);
  const registration = cloned || exception ? null : findRegistration(policy, d);
  const modelFound = exception ? null : findModel(policy, d);
  // A serial-bound model rule is a registration of one unit: a clone of that serial gets nothing from it.
  const model = modelFound && cloned && modelFound.serial !== undefined ? null : modelFound;
  let note: string | null = null;
  if (cloned && (findException(ctx, d) || findRegistration(policy, d) || (modelFound && !model))) note = 'clone-suspected: another present device has the same VID:PID:serial';

  const groups = groupInterfaces(d.interfaces);
  const interfaces: InterfaceVerdict[] = [];
  let readonly = false;
  let usedRegistration = false;
  let usedModel = false;
  for (const [number, alts] of [...groups.entries()].sort((a, b) => a[0] - b[0])) {
    const classes = alts.map(interfaceLabel);
    if (exception) {
      interfaces.push({ number, classes, allow: true, rule: `exception:${exception.id}` });
      if (exception.access === 'readonly' && alts.some((a) => a.class === MASS_STORAGE)) readonly = true;
      continue;
    }
    // Each alt setting goes through the documented order on its own (registration → model → class
    // rules → default); the interface opens only if every alt setting does, since the host can
    // switch to any of them once the driver is bound. The rule named: the first that blocked, else
    // the registration or model that opened some alt setting, else the first class rule.
    let allow = true;
    let blockedBy = '';
    let byRegistration = false;
    let byModel = false;
    let byClass = '';
    let byClassReadonly = false;
    for (const a of alts) {
      if (registration && a.class === MASS_STORAGE) {
        byRegistration = true;
        continue;
      }
      if (model && modelOpens(model, a)) {
        byModel = true;
        continue;
      }
      const v = judgeInterfaceByClass(policy, a);
      if (!v.allow) {
        allow = false;
        blockedBy = v.rule;
        break;
      }
      byClass ||= v.rule;
      if (v.readonly) byClassReadonly = true;
    }
    if (!allow) {
      interfaces.push({ number, classes, allow, rule: blockedBy });
      continue;
    }
    if (byRegistration) {
      usedRegistration = true;
      if (registration!.access === 'readonly') readonly = true;
    }
    if (byModel) usedModel = true;
    if (byClassReadonly) readonly = true;
    const rule = byRegistration ? `registered:${registration!.id}` : byModel ? `model:${model!.id}` : byClass;
    interfaces.push({ number, classes, allow, rule });
  }

  const allowed = interfaces.filter((i) => i.allow);
  const blocked = interfaces.filter((i) => !i.allow);
  // A model that matched yet opened nothing of a blocked device (a stick spoofing a reader's
  // VID:PID) is said so: the administrator who enabled it sees why the device stays blocked.
  if (model && !usedModel && blocked.length && note === null) note = `model-not-applicable: ${model.id} matches this VID:PID but names none of its interfaces (never storage, MTP/PTP, communications or network)`;
  const authorizeDevice = allowed.length > 0;
  const partial = authorizeDevice && blocked.length > 0;
  // The rule named in the event: what blocked it if anything was blocked, else what opened it.
  let rule: string;
  if (interfaces.length === 0) rule = 'no-interfaces';
  else if (blocked.length) rule = blocked[0]!.rule;
  else if (exception) rule = `exception:${exception.id}`;
  else if (usedRegistration && registration) rule = `registered:${registration.id}`;
  else if (usedModel && model) rule = `model:${model.id}`;
  else rule = allowed[0]!.rule;

  let eventType: UsbEventType;
  if (!authorizeDevice || partial) eventType = 'usb.blocked';
  else if (exception) eventType = 'usb.exception_used';
  else if (readonly) eventType = 'usb.readonly';
  else eventType = 'usb.allowed';

  return {
    authorizeDevice,
    interfaces,
    readonly: authorizeDevice && readonly,
    rule,
    exceptionId: exception?.id ?? null,
    partial,
    eventType,
    note,
  };
}

/** Built-in optical drives and SD/MMC readers (not behind USB). */
export type BlockKind = 'optical' | 'sdcard';
export function decideBlockDevice(policy: UsbPolicy, kind: BlockKind): { access: 'allow' | 'readonly' | 'block'; rule: string } {
  const access = kind === 'optical' ? policy.optical : policy.sdCard;
  return { access, rule: `${kind}:${access}` };
}
