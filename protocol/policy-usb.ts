import { Type, type Static } from 'typebox';
import { intErrors, isObject, oneOfErrors, unknownKeys } from './validate.js';
import { IsoTime, Nullable, wireCheck } from './wire-check.js';
import { SERIAL_HEX_MAX } from './event-data.js';

/**
 * Removable-media section of the signed policy (issue: removable-media export).
 *
 * USB devices are judged per interface: the first class rule that matches an interface decides,
 * else `defaultVerdict`. Registered media (by VID:PID:serial, optionally pinned to the hash of
 * their descriptors) open their mass-storage interfaces, either fully or read-only. Time-limited
 * exceptions are not part of the policy: the console grants them per terminal (console/usb).
 */
export type UsbVerdict = 'allow' | 'block';
export type MediaAccess = 'allow' | 'readonly';
export type BlockAccess = 'allow' | 'readonly' | 'block';

export interface UsbClassRule {
  /** Interface class, two lowercase hex digits ("08" mass storage). */
  class: string;
  /** Optional narrowing, two hex digits each ("ef" + subclass "04" = RNDIS over Misc). */
  subclass?: string;
  protocol?: string;
  /** 'readonly' only on the rule for class 08 as a whole: storage opens read-only (blockdev --setro). */
  verdict: UsbVerdict | 'readonly';
  /** Free text shown to administrators. */
  comment?: string;
}

export interface RegisteredMedia {
  /** Stable name of the registration, reported as the deciding rule (`registered:<id>`). */
  id: string;
  vendorId: string; // 4 lowercase hex digits
  productId: string; // 4 lowercase hex digits
  /** Exact iSerialNumber. Devices without a serial can never be registered. */
  serial: string;
  /** Optional sha256 (hex) of the sysfs `descriptors` file: defeats a clone that copies only the serial. */
  descriptorHash?: string;
  access: MediaAccess;
  label?: string;
}

/**
 * A device model opened for NAMED interface classes only (USBGuard's `allow id V:P with-interface
 * ff:*:*`): a card reader's vendor-specific interface, a label printer's class 07. Never a storage,
 * still-image/MTP, communications or network interface (exportInterface), whatever the rule says:
 * a stick that spoofs the reader's VID:PID gets nothing. Reported as the rule `model:<id>`.
 */
export interface UsbModelRule {
  /** Stable name, reported as the deciding rule (`model:<id>`). */
  id: string;
  vendorId: string; // 4 lowercase hex digits
  productId: string; // 4 lowercase hex digits
  /** Optional: only the unit with this exact iSerialNumber. */
  serial?: string;
  /** Optional: only devices whose sysfs `descriptors` hash to this sha256 (hex). */
  descriptorHash?: string;
  /** Interface classes this rule opens: "ff", "ff/01" or "07/01/02" (class[/subclass[/protocol]], lowercase hex). */
  interfaces: string[];
  /** Ready-made entries ship disabled; an administrator enables them. Disabled rules match nothing. */
  enabled: boolean;
  label?: string;
  comment?: string;
}

export interface UsbPolicy {
  /** `monitor` reports what would be blocked and changes nothing. */
  mode: 'enforce' | 'monitor';
  /** Verdict for an interface no class rule matches. */
  defaultVerdict: UsbVerdict;
  /** First match wins, per interface. */
  classRules: UsbClassRule[];
  registered: RegisteredMedia[];
  /**
   * Device models opened for named interface classes (first enabled match wins). Optional: absent
   * = none (policies signed before model rules, and what the console sends when there are none).
   */
  models?: UsbModelRule[];
  /** Built-in (non-USB) optical drives, sr*. USB ones are judged as USB devices. */
  optical: BlockAccess;
  /** SD/MMC card readers on the host controller (mmcblk*). */
  sdCard: BlockAccess;
  /** How often the agent asks the console for time-limited exceptions (also on every plug). */
  exceptionPollSeconds: number;
}

/**
 * The strict default: HID, hubs, smart-card (CCID) readers and audio work; storage, phones,
 * network adapters, printers and vendor-specific devices do not. Audio (01) carries sound only, no
 * files (headsets at the counter); printing (07) is an export channel, so a printer is opened as a
 * model (UsbModelRule), never as a class. Interfaces no rule names (video 0e, …) fall to default.
 */
export function defaultUsbClassRules(): UsbClassRule[] {
  return [
    { class: '03', verdict: 'allow', comment: 'HID: keyboard, mouse' },
    { class: '09', verdict: 'allow', comment: 'hub' },
    { class: '0b', verdict: 'allow', comment: 'smart-card reader (IC card login)' },
    { class: '01', verdict: 'allow', comment: 'audio: headsets (sound only, no files)' },
    { class: '07', verdict: 'block', comment: 'printer: an export channel (open a printer model instead)' },
    { class: '08', verdict: 'block', comment: 'mass storage' },
    { class: '06', verdict: 'block', comment: 'still image / MTP / PTP' },
    { class: '02', verdict: 'block', comment: 'communications (CDC, tethering)' },
    { class: '0a', verdict: 'block', comment: 'CDC data' },
    { class: 'e0', verdict: 'block', comment: 'wireless controller (RNDIS, Bluetooth)' },
    { class: 'ef', subclass: '04', verdict: 'block', comment: 'RNDIS over Misc' },
    { class: 'ff', verdict: 'block', comment: 'vendor specific' },
  ];
}

export function defaultUsbPolicy(): UsbPolicy {
  return {
    mode: 'enforce',
    defaultVerdict: 'block',
    classRules: defaultUsbClassRules(),
    registered: [],
    models: usbModelCatalogue(),
    optical: 'block',
    sdCard: 'block',
    exceptionPollSeconds: 10,
  };
}

/**
 * Interface classes no model rule ever opens (data leaves through them): mass storage 08, still
 * image/MTP/PTP 06, communications 02 and CDC data 0a, wireless controller e0, RNDIS over Misc ef/04,
 * ActiveSync/Palm sync ef/01, IrDA bridge fe/02.
 */
export function exportInterface(cls: number, subclass: number): boolean {
  if (cls === 0x08 || cls === 0x06 || cls === 0x02 || cls === 0x0a || cls === 0xe0) return true;
  if (cls === 0xef && (subclass === 0x04 || subclass === 0x01)) return true; // RNDIS; ActiveSync / Palm sync
  return cls === 0xfe && subclass === 0x02; // IrDA bridge
}

/** A model rule's interface pattern: class[/subclass[/protocol]], lowercase hex. */
export const MODEL_INTERFACE = /^[0-9a-f]{2}(\/[0-9a-f]{2}(\/[0-9a-f]{2})?)?$/;

/** Whether a pattern ("ff", "ff/01", "07/01/02") names this interface. */
export function modelInterfaceMatches(pattern: string, cls: number, subclass: number, protocol: number): boolean {
  const [c, sc, p] = pattern.split('/').map((x) => parseInt(x, 16));
  return c === cls && (sc === undefined || sc === subclass) && (p === undefined || p === protocol);
}

/**
 * Ready-made model rules for the readers used with the マイナンバーカード whose interface is
 * vendor-specific (CCID readers need none: class 0b is allowed). Shipped disabled: an administrator
 * enables one with a click (console) and it goes out through diff → sign → version like any change.
 */
export function usbModelCatalogue(): UsbModelRule[] {
  return [
    { id: 'sony-rc-s380-s', vendorId: '054c', productId: '06c1', interfaces: ['ff'], enabled: false, label: 'Sony PaSoRi RC-S380/S', comment: 'マイナンバーカード読取 (NFC, vendor-specific ff)' },
    { id: 'sony-rc-s380-p', vendorId: '054c', productId: '06c3', interfaces: ['ff'], enabled: false, label: 'Sony PaSoRi RC-S380/P', comment: 'マイナンバーカード読取 (NFC, vendor-specific ff)' },
  ];
}

const HEX2 = /^[0-9a-f]{2}$/;
const HEX4 = /^[0-9a-f]{4}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const ID = /^[A-Za-z0-9_.-]{1,64}$/;
const USB_KEYS = ['mode', 'defaultVerdict', 'classRules', 'registered', 'optical', 'sdCard', 'exceptionPollSeconds'] as const;
const OPTIONAL_USB_KEYS = ['models'] as const;

function strErrors(x: unknown, where: string, max: number, re?: RegExp, what = 'a string'): string[] {
  if (typeof x !== 'string' || x.length < 1 || x.length > max || (re && !re.test(x))) return [`${where}: must be ${what}`];
  return [];
}

export function usbPolicyErrors(x: unknown, where = 'usb'): string[] {
  if (!isObject(x)) return [`${where}: must be an object`];
  const errors = unknownKeys(x, [...USB_KEYS, ...OPTIONAL_USB_KEYS], where);
  for (const k of USB_KEYS) if (!(k in x)) errors.push(`${where}.${k}: missing`);
  errors.push(...oneOfErrors(x.mode, `${where}.mode`, ['enforce', 'monitor'] as const));
  errors.push(...oneOfErrors(x.defaultVerdict, `${where}.defaultVerdict`, ['allow', 'block'] as const));
  errors.push(...oneOfErrors(x.optical, `${where}.optical`, ['allow', 'readonly', 'block'] as const));
  errors.push(...oneOfErrors(x.sdCard, `${where}.sdCard`, ['allow', 'readonly', 'block'] as const));
  errors.push(...intErrors(x.exceptionPollSeconds, `${where}.exceptionPollSeconds`, 1, 3600));
  if (!Array.isArray(x.classRules) || x.classRules.length > 256) errors.push(`${where}.classRules: must be a list of at most 256 rules`);
  else
    x.classRules.forEach((r, i) => {
      const w = `${where}.classRules[${i}]`;
      if (!isObject(r)) return errors.push(`${w}: must be an object`);
      errors.push(...unknownKeys(r, ['class', 'subclass', 'protocol', 'verdict', 'comment'], w));
      errors.push(...strErrors(r.class, `${w}.class`, 2, HEX2, 'two lowercase hex digits'));
      if (r.subclass !== undefined) errors.push(...strErrors(r.subclass, `${w}.subclass`, 2, HEX2, 'two lowercase hex digits'));
      if (r.protocol !== undefined) errors.push(...strErrors(r.protocol, `${w}.protocol`, 2, HEX2, 'two lowercase hex digits'));
      if (r.protocol !== undefined && r.subclass === undefined) errors.push(`${w}.protocol: needs a subclass`);
      // Only storage as a whole can be read-only: any other class (or a storage subclass) has no read-only mode to enforce.
      errors.push(...oneOfErrors(r.verdict, `${w}.verdict`, r.class === '08' && r.subclass === undefined ? (['allow', 'readonly', 'block'] as const) : (['allow', 'block'] as const)));
      if (r.comment !== undefined) errors.push(...strErrors(r.comment, `${w}.comment`, 200));
      return undefined;
    });
  if (!Array.isArray(x.registered) || x.registered.length > 10_000) errors.push(`${where}.registered: must be a list of at most 10000 media`);
  else {
    const ids = new Set<string>();
    x.registered.forEach((r, i) => {
      const w = `${where}.registered[${i}]`;
      if (!isObject(r)) return errors.push(`${w}: must be an object`);
      errors.push(...unknownKeys(r, ['id', 'vendorId', 'productId', 'serial', 'descriptorHash', 'access', 'label'], w));
      errors.push(...strErrors(r.id, `${w}.id`, 64, ID, 'letters, digits, . _ - (1-64)'));
      if (typeof r.id === 'string') {
        if (ids.has(r.id)) errors.push(`${w}.id: duplicate ${JSON.stringify(r.id)}`);
        ids.add(r.id);
      }
      errors.push(...strErrors(r.vendorId, `${w}.vendorId`, 4, HEX4, 'four lowercase hex digits'));
      errors.push(...strErrors(r.productId, `${w}.productId`, 4, HEX4, 'four lowercase hex digits'));
      errors.push(...strErrors(r.serial, `${w}.serial`, 255, /\S/, 'a non-empty serial number'));
      if (r.descriptorHash !== undefined) errors.push(...strErrors(r.descriptorHash, `${w}.descriptorHash`, 64, SHA256, 'a lowercase sha256 hex digest'));
      errors.push(...oneOfErrors(r.access, `${w}.access`, ['allow', 'readonly'] as const));
      if (r.label !== undefined) errors.push(...strErrors(r.label, `${w}.label`, 200));
      return undefined;
    });
  }
  if (x.models !== undefined) errors.push(...modelErrors(x.models, `${where}.models`));
  return errors;
}

function modelErrors(list: unknown, where: string): string[] {
  if (!Array.isArray(list) || list.length > 1000) return [`${where}: must be a list of at most 1000 models`];
  const errors: string[] = [];
  const ids = new Set<string>();
  list.forEach((r, i) => {
    const w = `${where}[${i}]`;
    if (!isObject(r)) return errors.push(`${w}: must be an object`);
    errors.push(...unknownKeys(r, ['id', 'vendorId', 'productId', 'serial', 'descriptorHash', 'interfaces', 'enabled', 'label', 'comment'], w));
    errors.push(...strErrors(r.id, `${w}.id`, 64, ID, 'letters, digits, . _ - (1-64)'));
    if (typeof r.id === 'string') {
      if (ids.has(r.id)) errors.push(`${w}.id: duplicate ${JSON.stringify(r.id)}`);
      ids.add(r.id);
    }
    errors.push(...strErrors(r.vendorId, `${w}.vendorId`, 4, HEX4, 'four lowercase hex digits'));
    errors.push(...strErrors(r.productId, `${w}.productId`, 4, HEX4, 'four lowercase hex digits'));
    if (r.serial !== undefined) errors.push(...strErrors(r.serial, `${w}.serial`, 255, /\S/, 'a non-empty serial number'));
    if (r.descriptorHash !== undefined) errors.push(...strErrors(r.descriptorHash, `${w}.descriptorHash`, 64, SHA256, 'a lowercase sha256 hex digest'));
    if (typeof r.enabled !== 'boolean') errors.push(`${w}.enabled: must be true or false`);
    if (r.label !== undefined) errors.push(...strErrors(r.label, `${w}.label`, 200));
    if (r.comment !== undefined) errors.push(...strErrors(r.comment, `${w}.comment`, 200));
    if (!Array.isArray(r.interfaces) || r.interfaces.length < 1 || r.interfaces.length > 16) return errors.push(`${w}.interfaces: must name 1 to 16 interface classes`);
    r.interfaces.forEach((p, j) => {
      if (typeof p !== 'string' || !MODEL_INTERFACE.test(p)) return errors.push(`${w}.interfaces[${j}]: must be class[/subclass[/protocol]] in lowercase hex, e.g. "ff"`);
      const [c, sc] = p.split('/').map((h) => parseInt(h, 16));
      // ef alone would include RNDIS (ef/04) and fe alone the IrDA bridge (fe/02): named subclasses only there.
      if (exportInterface(c!, sc ?? -1) || ((c === 0xef || c === 0xfe) && sc === undefined))
        return errors.push(`${w}.interfaces[${j}]: ${p} carries data off the terminal (storage, MTP/PTP, communications, network): a model rule never opens it; register the medium instead`);
      return undefined;
    });
    return undefined;
  });
  return errors;
}

/**
 * A time-limited exception as the console grants it (GET /api/agent/usb/exceptions). Open to
 * members a newer console may add (as it always was): serialHex was one, and agents before it
 * ignore it and compare `serial`.
 */
export const UsbExceptionSchema = Type.Object({
  id: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
  agentId: Type.String({ minLength: 1, maxLength: 64 }),
  vendorId: Type.String({ pattern: '^[0-9a-f]{4}$' }),
  productId: Type.String({ pattern: '^[0-9a-f]{4}$' }),
  /**
   * The serial as text. With serialHex present it is display text only. Without it (an exception
   * stored before serialHex) it is compared with the device's serial read as UTF-8; null = any
   * device with this VID:PID on this terminal (for devices without a serial).
   */
  serial: Nullable(Type.String({ minLength: 1, maxLength: 1024, pattern: '\\S' })),
  /**
   * The matching key: the raw iSerialNumber bytes as lowercase hex, exactly as the event's
   * serialHex. Absent in exceptions stored before it; null = the device has no serial.
   */
  serialHex: Type.Optional(Nullable(Type.String({ pattern: '^([0-9a-f]{2})+$', maxLength: SERIAL_HEX_MAX }))),
  access: Type.Union([Type.Literal('allow'), Type.Literal('readonly')]),
  grantedAt: IsoTime,
  expiresAt: IsoTime, // judged by the console's clock
  grantedBy: Type.String({ maxLength: 256 }),
  reason: Type.String({ maxLength: 1000 }),
});
export type UsbException = Static<typeof UsbExceptionSchema>;
export const usbExceptionCheck = wireCheck(UsbExceptionSchema);

export const UsbExceptionsResponseSchema = Type.Object({
  serverTime: IsoTime,
  exceptions: Type.Array(UsbExceptionSchema, { maxItems: 10_000 }),
});
export type UsbExceptionsResponse = Static<typeof UsbExceptionsResponseSchema>;
export const usbExceptionsResponseCheck = wireCheck(UsbExceptionsResponseSchema);

/** Checks one exception received from the console (the agent trusts nothing unchecked). */
export function usbExceptionErrors(x: unknown, where = 'exception'): string[] {
  return usbExceptionCheck.errors(x, where);
}

// ---- 申請 → 上長承認: applications from the terminal (issue 15) -----------------------------------

/**
 * Bounds of an application (agent/usb/apply.ts, console/usb/applications-store.ts). The longest
 * period is the longest exception the console grants (console/usb/device.ts exceptionDuration: 30
 * days); an approver may shorten it, never lengthen it past this.
 */
export const APPLICATION_LIMITS = {
  reasonMax: 500,
  commentMax: 500,
  hoursMax: 30 * 24,
  hoursDefault: 8,
} as const;

/** 申請番号: six characters without look-alikes (0/O, 1/I/L), typed by a person from a notice. */
export const APPLICATION_REF_PATTERN = '^[A-HJKMNP-Z2-9]{6}$';

/** What `sekimori-agent apply` sends over the agent's user socket. The applicant is the socket's peer, never a field. */
export const UsbApplyRequestSchema = Type.Object(
  {
    ref: Type.String({ pattern: APPLICATION_REF_PATTERN }),
    reason: Type.String({ minLength: 1, maxLength: APPLICATION_LIMITS.reasonMax, pattern: '\\S' }),
    hours: Type.Optional(Type.Integer({ minimum: 1, maximum: APPLICATION_LIMITS.hoursMax })),
  },
  { additionalProperties: false },
);
export type UsbApplyRequest = Static<typeof UsbApplyRequestSchema>;
export const usbApplyRequestCheck = wireCheck(UsbApplyRequestSchema);

/** One decided application as the agent learns it (GET /api/agent/usb/applications). `id` is the agent's own id. */
export const UsbApplicationDecisionSchema = Type.Object({
  id: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
  status: Type.Union([Type.Literal('approved'), Type.Literal('rejected')]),
  until: Nullable(IsoTime),
  comment: Type.String({ maxLength: APPLICATION_LIMITS.commentMax }),
});
export type UsbApplicationDecision = Static<typeof UsbApplicationDecisionSchema>;

export const UsbApplicationDecisionsResponseSchema = Type.Object({
  serverTime: IsoTime,
  decisions: Type.Array(UsbApplicationDecisionSchema, { maxItems: 1000 }),
});
export type UsbApplicationDecisionsResponse = Static<typeof UsbApplicationDecisionsResponseSchema>;
export const usbApplicationDecisionsResponseCheck = wireCheck(UsbApplicationDecisionsResponseSchema);
