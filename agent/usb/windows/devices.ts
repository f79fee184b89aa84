/**
 * How the Windows agent learns of USB devices: the registry's enumeration tree
 * HKLM\SYSTEM\CurrentControlSet\Enum\USB\VID_vvvv&PID_pppp[&MI_nn]\<instance>, read with `reg query`
 * and mapped to the agent's UsbDeviceInfo, so decideUsb judges it and usb.* events carry the same
 * fields as on Linux (fields Windows does not have are null).
 *
 * What the registry gives (Microsoft: standard USB identifiers; regstr.h):
 * - HardwareID: USB\VID_v&PID_p&REV_r → vendor, product, bcdDevice. CompatibleIDs:
 *   USB\Class_cc&SubClass_ss&Prot_pp (single-function devices; composite parents have
 *   USB\DevClass_…/USB\COMPOSITE and each function is an &MI_nn node of its own with its interface class).
 * - The instance name is the serial number when the device has a usable one (characters 0x21–0x7E,
 *   no ','); otherwise Windows makes one up from the port (it contains '&'): serial null then.
 * - Mfg / DeviceDesc come from the driver's INF, NOT from the device's iManufacturer/iProduct
 *   strings (those are in the property store, readable by SYSTEM only): shown as display text only.
 * - Driver / Service: present once a driver is installed. ConfigFlags bits: CONFIGFLAG_DISABLED 0x1,
 *   CONFIGFLAG_REINSTALL 0x20, CONFIGFLAG_FAILEDINSTALL 0x40, CONFIGFLAG_FINISH_INSTALL 0x400.
 *
 * A device whose installation Device Installation Restrictions refused gets its Enum key (Windows
 * enumerates it) but no driver: no Driver/Service value, and ConfigFlags typically with
 * FAILEDINSTALL/REINSTALL set; Device Manager shows problem code 28 and setupapi.dev.log records the
 * policy check. So the agent learns of a refused device as a NEW instance key without a driver whose
 * IDs the plan denies → usb.blocked with the same fields as Linux.
 * What it cannot know from the registry: whether a device is plugged in right now (Enum keeps every
 * device ever seen; a refused device has no running driver either way), so a re-plug of a device
 * already refused once is not seen again, and the exact reason (policy vs. no driver at all).
 * No raw descriptors: descriptorHash is null, busnum/devnum are null.
 */
import type { RegKey, RegValue, WindowsRegistry } from '../../windows/registry.js';
import { subkey } from '../../windows/registry.js';
import type { UsbDeviceInfo, UsbInterfaceInfo } from '../observe.js';

export const ENUM_USB = 'HKLM\\SYSTEM\\CurrentControlSet\\Enum\\USB';
const CONFIGFLAG_DISABLED = 0x1;
const CONFIGFLAG_FAILEDINSTALL = 0x40;

/** Bounds: a registry full of junk (or an attack plugging thousands of ids) cannot stall the agent. */
export const MAX_DEVICE_KEYS = 2048;
export const MAX_INSTANCES_PER_KEY = 64;

const DEVICE_KEY = /^VID_([0-9A-Fa-f]{4})&PID_([0-9A-Fa-f]{4})(?:&MI_([0-9A-Fa-f]{2}))?$/;
const CLASS_ID = /^USB\\Class_([0-9A-Fa-f]{2})&SubClass_([0-9A-Fa-f]{2})&Prot_([0-9A-Fa-f]{2})$/i;
const DEVCLASS_ID = /^USB\\DevClass_([0-9A-Fa-f]{2})&SubClass_([0-9A-Fa-f]{2})&Prot_([0-9A-Fa-f]{2})$/i;
const REV_ID = /^USB\\VID_[0-9A-Fa-f]{4}&PID_[0-9A-Fa-f]{4}&REV_([0-9A-Fa-f]{4})$/i;

export interface EnumInstance {
  /** Key name under Enum\USB: VID_0781&PID_5567 or VID_0781&PID_5567&MI_00. */
  deviceKey: string;
  /** Instance key name. */
  instance: string;
  values: readonly RegValue[];
}

function value(vs: readonly RegValue[], name: string): RegValue | undefined {
  return vs.find((v) => v.name.toLowerCase() === name.toLowerCase());
}
function strings(vs: readonly RegValue[], name: string): string[] {
  const v = value(vs, name);
  if (!v) return [];
  if (v.type === 'REG_MULTI_SZ') return v.data.slice(0, 64);
  if (v.type === 'REG_SZ' || v.type === 'REG_EXPAND_SZ') return [v.data];
  return [];
}
function text(vs: readonly RegValue[], name: string): string | null {
  const v = value(vs, name);
  if (!v || (v.type !== 'REG_SZ' && v.type !== 'REG_EXPAND_SZ')) return null;
  // "@usbstor.inf,%generic.mfg%;Compatible USB storage device": the part after ';' is the text.
  const d = v.data;
  const i = d.startsWith('@') ? d.lastIndexOf(';') : -1;
  return (i >= 0 ? d.slice(i + 1) : d).slice(0, 512);
}
function classTriples(ids: readonly string[], re: RegExp): { class: number; subclass: number; protocol: number }[] {
  const out: { class: number; subclass: number; protocol: number }[] = [];
  for (const id of ids) {
    const m = re.exec(id);
    if (m) out.push({ class: parseInt(m[1]!, 16), subclass: parseInt(m[2]!, 16), protocol: parseInt(m[3]!, 16) });
  }
  return out;
}

/** The serial, when the instance name is one (Windows-made ids contain '&'); else null. */
export function serialFromInstance(instance: string): string | null {
  if (instance.length === 0 || instance.length > 126 || instance.includes('&')) return null;
  for (const ch of instance) {
    const c = ch.codePointAt(0)!;
    if (c <= 0x20 || c >= 0x7f || ch === ',' || ch === '\\') return null;
  }
  return instance;
}

/**
 * One device from its instance key, with its function (&MI_nn) nodes when it is composite.
 * Null for keys that are not a USB device of the expected shape (never guessed).
 */
export function mapEnumDevice(dev: EnumInstance, functions: readonly EnumInstance[] = []): UsbDeviceInfo | null {
  const m = DEVICE_KEY.exec(dev.deviceKey);
  if (!m || m[3] !== undefined) return null; // function nodes are read through their parent
  if (dev.instance.length === 0 || dev.instance.includes('\\')) return null;
  const vendorId = m[1]!.toLowerCase();
  const productId = m[2]!.toLowerCase();
  const hw = strings(dev.values, 'HardwareID');
  const compat = strings(dev.values, 'CompatibleIDs');
  const rev = hw.map((h) => REV_ID.exec(h)).find((x) => x);
  const devClass = classTriples(compat, DEVCLASS_ID)[0];
  const single = classTriples(compat, CLASS_ID)[0];
  const interfaces: UsbInterfaceInfo[] = [];
  if (functions.length === 0 && single) interfaces.push({ number: 0, alt: 0, ...single });
  for (const f of functions) {
    const fm = DEVICE_KEY.exec(f.deviceKey);
    if (!fm || fm[3] === undefined || fm[1]!.toLowerCase() !== vendorId || fm[2]!.toLowerCase() !== productId) continue;
    const t = classTriples(strings(f.values, 'CompatibleIDs'), CLASS_ID)[0];
    if (t) interfaces.push({ number: parseInt(fm[3], 16), alt: 0, ...t });
  }
  const cfg = value(dev.values, 'ConfigFlags');
  const flags = cfg?.type === 'REG_DWORD' ? cfg.data : 0;
  const hasDriver = !!(text(dev.values, 'Driver') || text(dev.values, 'Service'));
  const serial = serialFromInstance(dev.instance);
  const mfg = text(dev.values, 'Mfg');
  const desc = text(dev.values, 'DeviceDesc');
  return {
    path: `USB\\${dev.deviceKey}\\${dev.instance}`,
    busnum: null,
    devnum: null,
    vendorId,
    productId,
    bcdDevice: rev ? rev[1]!.toLowerCase() : null,
    deviceClass: devClass?.class ?? single?.class ?? 0,
    deviceSubclass: devClass?.subclass ?? single?.subclass ?? 0,
    deviceProtocol: devClass?.protocol ?? single?.protocol ?? 0,
    manufacturer: mfg === null ? null : Buffer.from(mfg, 'utf8'),
    product: desc === null ? null : Buffer.from(desc, 'utf8'),
    serial: serial === null ? null : Buffer.from(serial, 'latin1'),
    interfaces,
    descriptorHash: null,
    authorized: hasDriver && (flags & (CONFIGFLAG_DISABLED | CONFIGFLAG_FAILEDINSTALL)) === 0,
  };
}

/** Function nodes of a composite parent: their instance names start with the parent's ParentIdPrefix. */
function functionsOf(parent: EnumInstance, all: readonly EnumInstance[]): EnumInstance[] {
  const prefix = value(parent.values, 'ParentIdPrefix');
  if (!prefix || prefix.type !== 'REG_SZ' || prefix.data.length < 3) return [];
  const p = prefix.data.toLowerCase() + '&';
  return all.filter((f) => f.deviceKey.toLowerCase().startsWith(parent.deviceKey.toLowerCase() + '&mi_') && f.instance.toLowerCase().startsWith(p));
}

export interface EnumListing {
  devices: UsbDeviceInfo[];
  /** Keys that could not be read (reported, never fatal). */
  errors: string[];
}

/** Instance keys (depth 2 under root) from a whole-tree listing. */
function instancesFromTree(tree: readonly RegKey[], root: string): EnumInstance[] {
  const out: EnumInstance[] = [];
  const perDevice = new Map<string, number>();
  for (const k of tree) {
    if (k.key.length <= root.length + 1 || k.key.slice(0, root.length).toLowerCase() !== root.toLowerCase()) continue;
    const rel = k.key.slice(root.length + 1).split('\\');
    if (rel.length !== 2 || !DEVICE_KEY.test(rel[0]!)) continue;
    const n = perDevice.get(rel[0]!.toLowerCase()) ?? 0;
    if (n >= MAX_INSTANCES_PER_KEY || (n === 0 && perDevice.size >= MAX_DEVICE_KEYS)) continue;
    perDevice.set(rel[0]!.toLowerCase(), n + 1);
    out.push({ deviceKey: rel[0]!, instance: rel[1]!, values: k.values });
  }
  return out;
}

/**
 * Reads Enum\USB (bounded) and maps every device: one `reg query /s` where the registry offers it
 * (the agent polls this; a run per key would be a hundred reg.exe runs on a used terminal), else key by key.
 */
export async function listEnumUsb(reg: WindowsRegistry, root = ENUM_USB): Promise<EnumListing> {
  if (reg.queryTree) {
    try {
      const tree = await reg.queryTree(root);
      const instances = tree ? instancesFromTree(tree, root) : [];
      return { devices: instances.map((i) => mapEnumDevice(i, functionsOf(i, instances))).filter((d): d is UsbDeviceInfo => d !== null), errors: [] };
    } catch (e) {
      return { devices: [], errors: [`${root}: ${(e as Error).message}`] };
    }
  }
  const errors: string[] = [];
  const top = await reg.query(root).catch((e: unknown) => {
    errors.push(`${root}: ${(e as Error).message}`);
    return null;
  });
  if (!top) return { devices: [], errors };
  const instances: EnumInstance[] = [];
  for (const deviceKey of top.subkeys.filter((s) => DEVICE_KEY.test(s)).slice(0, MAX_DEVICE_KEYS)) {
    let dk: RegKey | null;
    try {
      dk = await reg.query(subkey(root, deviceKey));
    } catch (e) {
      errors.push(`${deviceKey}: ${(e as Error).message}`);
      continue;
    }
    for (const instance of (dk?.subkeys ?? []).slice(0, MAX_INSTANCES_PER_KEY)) {
      try {
        const ik = await reg.query(subkey(subkey(root, deviceKey), instance));
        if (ik) instances.push({ deviceKey, instance, values: ik.values });
      } catch (e) {
        errors.push(`${deviceKey}\\${instance}: ${(e as Error).message}`);
      }
    }
  }
  const devices: UsbDeviceInfo[] = [];
  for (const i of instances) {
    const d = mapEnumDevice(i, functionsOf(i, instances));
    if (d) devices.push(d);
  }
  return { devices, errors };
}
