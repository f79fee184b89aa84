/**
 * 機器一覧 (device inventory), the pure part: what one usb.* event says about a device, and the
 * policy changes an administrator makes from an inventory row — "allow this model" (a
 * UsbModelRule for its VID:PID), "register this stick" (a registered medium) and enabling a
 * ready-made catalogue entry. No I/O and no clock: the store (devices-store.ts) and the page
 * (web/pages/devices.ts) call these; every change still goes through diff → confirm → sign.
 *
 * Everything in a device row comes from a terminal and may be hostile: display fields are
 * safeText'd and bounded here, matching keys are checked against their patterns.
 */
import { createHash } from 'node:crypto';
import type { UsbDeviceEventData, UsbEventData } from '../../protocol/event-data.js';
import { exportInterface, MODEL_INTERFACE, usbModelCatalogue, type MediaAccess, type RegisteredMedia, type UsbModelRule, type UsbPolicy } from '../../protocol/policy-usb.js';
import { safeText } from '../../protocol/text.js';

/** The event types whose data describes one USB device (protocol/event-data.ts UsbEventSchema). */
export const USB_DEVICE_EVENT_TYPES = ['usb.blocked', 'usb.allowed', 'usb.readonly', 'usb.exception_used', 'usb.would_block'] as const;
export type UsbDeviceEventType = (typeof USB_DEVICE_EVENT_TYPES)[number];
const DEVICE_TYPES: ReadonlySet<string> = new Set(USB_DEVICE_EVENT_TYPES);

export function isUsbDeviceEventType(t: string): t is UsbDeviceEventType {
  return DEVICE_TYPES.has(t);
}

/** At most this many interface labels are kept per device (a real device has a handful). */
export const MAX_INTERFACE_LABELS = 64;
const LABEL = /^[0-9a-f]{2}(\/[0-9a-f]{2}){0,2}$/;
const HEX4 = /^[0-9a-f]{4}$/;
const SERIAL_HEX = /^([0-9a-f]{2}){0,1024}$/;
const SHA256_OR_EMPTY = /^([0-9a-f]{64})?$/;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** safeText, without its cost for what agents normally send (already safe text): this runs for every USB event the inventory reads. */
function display(s: string, limit: number): string {
  return s.length <= limit && !CONTROL.test(s) && s.isWellFormed() ? s : safeText(s, limit);
}

/** One report of a device by one terminal: what the inventory row is built from. */
export interface DeviceSighting {
  /** The terminal that reported it: the uploader's certificate, never anything in the data. */
  agentId: string;
  vendorId: string;
  productId: string;
  /** Raw serial bytes (hex), '' when the device has none: the matching key. */
  serialHex: string;
  /** sha256 of the raw descriptors, '' when unreadable. */
  descriptorHash: string;
  serial: string;
  manufacturer: string;
  product: string;
  /** "cc/ss/pp" per interface alt setting (or "cc" from agents that sent classes only), sorted, unique. */
  interfaces: string[];
  type: UsbDeviceEventType;
  rule: string;
  user: string | null;
  /** The event's stored (console-judged) time. */
  ts: string;
  /** The events row. */
  rid: number;
}

/**
 * The sighting in a usb.* event whose data matched its declaration, or null when the event is not
 * about a USB device (a built-in drive) or its keys are malformed.
 */
export function sightingOf(
  agentId: string,
  type: string,
  data: UsbEventData | UsbDeviceEventData,
  user: string | null | undefined,
  ts: string,
  rid: number,
): DeviceSighting | null {
  if (!isUsbDeviceEventType(type) || data.kind !== 'usb') return null;
  const d = data as UsbDeviceEventData;
  if (!HEX4.test(d.vendorId) || !HEX4.test(d.productId)) return null;
  const serialHex = typeof d.serialHex === 'string' && SERIAL_HEX.test(d.serialHex) ? d.serialHex : '';
  return {
    agentId,
    vendorId: d.vendorId,
    productId: d.productId,
    serialHex,
    descriptorHash: SHA256_OR_EMPTY.test(d.descriptorHash) ? d.descriptorHash : '',
    serial: display(d.serial, 128),
    manufacturer: display(d.manufacturer, 128),
    product: display(d.product, 128),
    interfaces: interfaceLabels(d),
    type,
    rule: display(d.rule, 128),
    user: user ? display(user, 64) : null,
    ts,
    rid,
  };
}

/** The interface labels a device offered: from its per-interface verdicts, else its class list. */
export function interfaceLabels(d: Pick<UsbDeviceEventData, 'interfaces' | 'interfaceClasses'>): string[] {
  const out = new Set<string>();
  for (const i of d.interfaces) {
    for (const c of i.classes) if (LABEL.test(c) && out.size < MAX_INTERFACE_LABELS) out.add(c);
  }
  if (out.size === 0) for (const c of d.interfaceClasses) if (LABEL.test(c) && out.size < MAX_INTERFACE_LABELS) out.add(c);
  return [...out].sort();
}

// ---- "allow this model" ------------------------------------------------------------------------

/** Why a row cannot become a model rule (shown next to the button, Japanese first). */
export interface Refusal {
  code: 'only-export' | 'no-interfaces' | 'too-many' | 'no-serial' | 'serial-not-text' | 'no-storage' | 'unknown-entry';
  ja: string;
  en: string;
}

/**
 * What a model rule for this device would open: its interface classes minus those no model rule
 * may open (exportInterface: storage, MTP/PTP, communications, network). Class ef is named with
 * its subclass (ef alone would include RNDIS ef/04); an ef label without subclass is dropped.
 */
export function modelInterfacesOf(labels: readonly string[]): { open: string[]; dropped: string[] } {
  const open = new Set<string>();
  const dropped = new Set<string>();
  for (const l of labels) {
    if (!LABEL.test(l)) continue;
    const [c, sc] = l.split('/').map((h) => parseInt(h, 16)) as [number, number | undefined];
    const cls = l.slice(0, 2);
    if (exportInterface(c, sc ?? -1)) {
      dropped.add(c === 0xef ? l.slice(0, 5) : cls);
      continue;
    }
    if (c === 0xef) {
      if (sc === undefined) dropped.add(cls);
      else open.add(l.slice(0, 5));
    } else open.add(cls);
  }
  return { open: [...open].sort(), dropped: [...dropped].sort() };
}

const REFUSALS: Record<Refusal['code'], Omit<Refusal, 'code'>> = {
  'only-export': {
    ja: 'この機器が提供するのはデータ持ち出しに使えるインタフェース(記憶装置・MTP/PTP・通信・ネットワーク)だけです。機種の許可では開けません。記憶媒体なら「この媒体を登録」を使ってください。',
    en: 'This device offers only interfaces that carry data off the terminal (storage, MTP/PTP, communications, network); a model rule never opens them. Register the medium instead if it is a stick.',
  },
  'no-interfaces': { ja: 'この機器はインタフェースを報告していません。', en: 'The device reported no interfaces.' },
  'too-many': { ja: 'インタフェースの種類が多すぎます(機種ルールは16種類まで)。ポリシー画面で個別に指定してください。', en: 'Too many interface classes (a model rule names at most 16); edit the policy by hand.' },
  'no-serial': { ja: 'シリアル番号のない機器は登録できません(同じ機種のすべてに一致してしまうため)。', en: 'A device without a serial number cannot be registered (it would match every device of its model).' },
  'serial-not-text': {
    ja: 'シリアル番号が文字として表せないため登録できません(一時許可なら可能です)。',
    en: 'The serial number is not representable as text, so it cannot be registered (a temporary exception can name it).',
  },
  'no-storage': { ja: 'この機器には記憶装置(クラス08)のインタフェースがありません。登録は記憶装置だけを開きます。', en: 'The device has no mass-storage (class 08) interface; a registration opens storage only.' },
  'unknown-entry': { ja: 'そのような既定の機種はありません。', en: 'No such ready-made model entry.' },
};

export function refusal(code: Refusal['code']): Refusal {
  return { code, ...REFUSALS[code] };
}

export type Proposal = { ok: true; usb: UsbPolicy; ruleId: string } | { ok: false; refusal: Refusal };

/** A policy id from free text: letters, digits, . _ - only, at most 64. */
function uniqueId(base: string, taken: ReadonlySet<string>): string {
  const b = base.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 56);
  if (!taken.has(b)) return b;
  for (let i = 2; i < 10_000; i++) if (!taken.has(`${b}-${i}`)) return `${b}-${i}`;
  return `${b}-${createHash('sha256').update(b + taken.size).digest('hex').slice(0, 6)}`;
}

/** A label for the policy (≤ 200 characters, display only). */
function labelOf(manufacturer: string, product: string, fallback: string): string {
  const s = `${manufacturer} ${product}`.trim();
  return safeText(s || fallback, 180);
}

/**
 * "Allow this model": the USB section with a model rule for the device's VID:PID opening the
 * classes it offered minus export classes. A rule for exactly this VID:PID (no serial, no
 * descriptor hash — e.g. the disabled catalogue entry) is enabled and widened instead of adding a
 * second one; nothing else in the section changes.
 */
export function proposeModelRule(usb: UsbPolicy, dev: { vendorId: string; productId: string; interfaces: readonly string[]; manufacturer: string; product: string }): Proposal {
  if (!HEX4.test(dev.vendorId) || !HEX4.test(dev.productId)) return { ok: false, refusal: refusal('no-interfaces') };
  if (dev.interfaces.length === 0) return { ok: false, refusal: refusal('no-interfaces') };
  const { open } = modelInterfacesOf(dev.interfaces);
  if (open.length === 0) return { ok: false, refusal: refusal('only-export') };
  const models = usb.models ?? [];
  const i = models.findIndex((m) => m.vendorId === dev.vendorId && m.productId === dev.productId && m.serial === undefined && m.descriptorHash === undefined);
  if (i >= 0) {
    const m = models[i]!;
    const interfaces = [...new Set([...m.interfaces, ...open])].sort();
    if (interfaces.length > 16) return { ok: false, refusal: refusal('too-many') };
    const next: UsbModelRule = { ...m, interfaces: sameSet(interfaces, m.interfaces) ? m.interfaces : interfaces, enabled: true };
    return { ok: true, usb: { ...usb, models: models.map((x, j) => (j === i ? next : x)) }, ruleId: m.id };
  }
  if (open.length > 16) return { ok: false, refusal: refusal('too-many') };
  const id = uniqueId(`model-${dev.vendorId}-${dev.productId}`, new Set(models.map((m) => m.id)));
  const rule: UsbModelRule = { id, vendorId: dev.vendorId, productId: dev.productId, interfaces: open, enabled: true, label: labelOf(dev.manufacturer, dev.product, `${dev.vendorId}:${dev.productId}`) };
  return { ok: true, usb: { ...usb, models: [...models, rule] }, ruleId: id };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/** Why "allow this model" cannot be offered for a row, or null when it can. */
export function modelRefusal(dev: { interfaces: readonly string[] }): Refusal | null {
  if (dev.interfaces.length === 0) return refusal('no-interfaces');
  const { open } = modelInterfacesOf(dev.interfaces);
  if (open.length === 0) return refusal('only-export');
  if (open.length > 16) return refusal('too-many');
  return null;
}

// ---- "register this stick" ---------------------------------------------------------------------

/**
 * The serial as a registration names it: the agent compares the device's serial read as UTF-8
 * with the policy's text, so the raw bytes must read back as themselves (else the text would
 * also match other byte strings), with no surrounding space the policy form could lose.
 */
export function registrationSerial(serialHex: string): { serial: string } | { refusal: Refusal } {
  if (serialHex === '') return { refusal: refusal('no-serial') };
  const text = Buffer.from(serialHex, 'hex').toString('utf8');
  if (Buffer.from(text, 'utf8').toString('hex') !== serialHex || text.length > 255 || !/\S/.test(text) || /[\u0000-\u001f\u007f-\u009f]/.test(text))
    return { refusal: refusal('serial-not-text') };
  return { serial: text };
}

/** Why "register this stick" cannot be offered for a row, or null when it can. */
export function registrationRefusal(dev: { serialHex: string; interfaces: readonly string[] }): Refusal | null {
  if (!dev.interfaces.some((l) => l.startsWith('08'))) return refusal('no-storage');
  const s = registrationSerial(dev.serialHex);
  return 'refusal' in s ? s.refusal : null;
}

/**
 * "Register this stick": a registered medium for VID:PID:serial (pinned to the descriptor hash
 * when the agent could read it, so a clone that copies only the serial gets nothing). A
 * registration of the same VID:PID:serial is updated in place (access, label) instead of doubled.
 */
export function proposeRegistration(
  usb: UsbPolicy,
  dev: { vendorId: string; productId: string; serialHex: string; descriptorHash: string; interfaces: readonly string[]; manufacturer: string; product: string },
  access: MediaAccess,
  label: string,
): Proposal {
  const why = registrationRefusal(dev);
  if (why) return { ok: false, refusal: why };
  const s = registrationSerial(dev.serialHex);
  if ('refusal' in s) return { ok: false, refusal: s.refusal };
  const text = safeText(label.trim(), 180) || labelOf(dev.manufacturer, dev.product, `${dev.vendorId}:${dev.productId}`);
  const i = usb.registered.findIndex((r) => r.vendorId === dev.vendorId && r.productId === dev.productId && r.serial === s.serial);
  if (i >= 0) {
    const r = usb.registered[i]!;
    const next: RegisteredMedia = { ...r, access, label: text };
    return { ok: true, usb: { ...usb, registered: usb.registered.map((x, j) => (j === i ? next : x)) }, ruleId: r.id };
  }
  const tag = createHash('sha256').update(dev.serialHex).digest('hex').slice(0, 8);
  const id = uniqueId(`stick-${dev.vendorId}-${dev.productId}-${tag}`, new Set(usb.registered.map((r) => r.id)));
  const reg: RegisteredMedia = {
    id,
    vendorId: dev.vendorId,
    productId: dev.productId,
    serial: s.serial,
    ...(SHA256_OR_EMPTY.test(dev.descriptorHash) && dev.descriptorHash !== '' ? { descriptorHash: dev.descriptorHash } : {}),
    access,
    label: text,
  };
  return { ok: true, usb: { ...usb, registered: [...usb.registered, reg] }, ruleId: id };
}

// ---- ready-made catalogue ----------------------------------------------------------------------

export type CatalogueState = 'enabled' | 'disabled' | 'absent';

/** Each ready-made entry (usbModelCatalogue) with its state in the policy in force (matched by id). */
export function catalogueStates(usb: UsbPolicy): { entry: UsbModelRule; state: CatalogueState }[] {
  const models = usb.models ?? [];
  return usbModelCatalogue().map((entry) => {
    const m = models.find((x) => x.id === entry.id);
    return { entry, state: !m ? 'absent' : m.enabled ? 'enabled' : 'disabled' };
  });
}

/** "有効にする": the entry enabled where it is in the policy, else added (enabled) at the end. */
export function proposeCatalogueEnable(usb: UsbPolicy, id: string): Proposal {
  const entry = usbModelCatalogue().find((e) => e.id === id);
  if (!entry) return { ok: false, refusal: refusal('unknown-entry') };
  const models = usb.models ?? [];
  const i = models.findIndex((m) => m.id === id);
  if (i >= 0) return { ok: true, usb: { ...usb, models: models.map((m, j) => (j === i ? { ...m, enabled: true } : m)) }, ruleId: id };
  return { ok: true, usb: { ...usb, models: [...models, { ...entry, enabled: true }] }, ruleId: id };
}

/** Whether a pattern is a valid model interface pattern (used to double-check what we propose). */
export function validModelInterface(p: string): boolean {
  return MODEL_INTERFACE.test(p);
}

// ---- search ------------------------------------------------------------------------------------

export interface DeviceQuery {
  /** Free text: VID:PID, maker/product name, serial, rule, verdict, terminal name. */
  text?: string | undefined;
  /** One terminal (agent id). */
  terminal?: string | undefined;
  /** Last verdict (event type). */
  verdict?: UsbDeviceEventType | undefined;
  /** Keyset cursor: rows older than (lastSeen, id). */
  before?: { lastSeen: string; id: number } | undefined;
}

const CURSOR = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)~(\d{1,16})$/;

/** Reads the search from a query string; anything malformed is an error message, never a silent "all". */
export function parseDeviceQuery(get: (k: string) => string | null): { query: DeviceQuery; form: Record<'text' | 'terminal' | 'verdict', string> } | { error: string } {
  const v = (k: string, max: number): string | { error: string } => {
    const s = (get(k) ?? '').trim();
    return s.length > max ? { error: `${k}: too long` } : s;
  };
  const text = v('q', 200);
  const terminal = v('terminal', 64);
  const verdict = v('verdict', 32);
  const before = v('before', 60);
  for (const x of [text, terminal, verdict, before]) if (typeof x !== 'string') return x;
  const t = text as string;
  const term = terminal as string;
  const verd = verdict as string;
  const bef = before as string;
  if (verd && !isUsbDeviceEventType(verd)) return { error: 'verdict: unknown' };
  let cursor: DeviceQuery['before'];
  if (bef) {
    const m = CURSOR.exec(bef);
    if (!m || !Number.isSafeInteger(Number(m[2]))) return { error: 'before: bad cursor' };
    cursor = { lastSeen: m[1]!, id: Number(m[2]) };
  }
  return {
    query: { text: t || undefined, terminal: term || undefined, verdict: (verd || undefined) as UsbDeviceEventType | undefined, before: cursor },
    form: { text: t, terminal: term, verdict: verd },
  };
}
