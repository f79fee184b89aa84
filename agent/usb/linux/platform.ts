/**
 * Linux behind the USB platform seam: devices from sysfs, changes from the kernel's uevents and
 * node-usb's udev hotplug, per-device authorization through the sysfs enforcer, built-in drives
 * and card readers unbound and bound again.
 */
import { createRequire } from 'node:module';
import type { BlockKind, UsbDecision } from '../decide.js';
import type { UsbDeviceInfo } from '../observe.js';
import type { BuiltinMedium, BuiltinMediaControl, UnboundMedium, UsbChange, UsbEnforceResult, UsbPlatform, UsbPolicyInput } from '../platform.js';
import { emptyResult } from '../platform.js';
import { LinuxUsbEnforcer, type EnforcerOptions, type UnboundDevice } from './enforcer.js';
import { builtinRemovableKind, DEVICE_RE, listBlockDevices, listDevicePaths, readUsbDevice, type BlockDeviceInfo } from './sysfs.js';
import { watchKernelUevents } from './uevents.js';
import { loggedInUser } from './user.js';

export interface LinuxUsbOptions extends EnforcerOptions {
  /** Use node-usb's udev hotplug (needs systemd-udevd). */
  hotplug?: boolean;
  /** Source of kernel uevents (default `udevadm monitor --kernel`); injectable for tests. */
  watchUevents?: typeof watchKernelUevents;
  utmpPaths?: string[];
}

const NAME = /^[\w:.-]{1,64}$/; // bus, driver and device names as sysfs has them; nothing that climbs out of /sys/bus

/** An entry of usb-unbound.json: it names a sysfs bind target, so it is checked before it is trusted. */
export function isUnboundDevice(x: unknown): x is UnboundDevice {
  const u = x as Partial<UnboundDevice> | null;
  return !!u && (u.kind === 'optical' || u.kind === 'sdcard') && [u.bus, u.driver, u.id].every((v) => typeof v === 'string' && NAME.test(v) && v !== '..' && v !== '.');
}

interface LinuxMedium extends BuiltinMedium {
  block: BlockDeviceInfo;
}

export class LinuxUsbPlatform implements UsbPlatform {
  readonly name = 'linux';
  readonly enforcer: LinuxUsbEnforcer;
  readonly builtinMedia: BuiltinMediaControl;

  constructor(private readonly opts: LinuxUsbOptions = {}) {
    this.enforcer = new LinuxUsbEnforcer(opts);
    const enf = this.enforcer;
    const sysRoot = enf.sysRoot;
    this.builtinMedia = {
      list: () => {
        const out: LinuxMedium[] = [];
        for (const b of listBlockDevices(sysRoot)) {
          const kind = builtinRemovableKind(sysRoot, b);
          if (kind) out.push({ name: b.name, kind, identity: b.devicePath, partitions: b.partitions, block: b });
        }
        return out;
      },
      setAccess: (m, access) => enf.setBlockDeviceAccess((m as LinuxMedium).block, access),
      unbind: (m) => enf.unbindBlockDevice((m as LinuxMedium).block, m.kind as BlockKind),
      rebind: (u: UnboundMedium) => {
        // Checked again here: the entry comes from a state file and names a sysfs write target.
        if (!isUnboundDevice(u)) return { wrote: [], errors: ['rebind: malformed entry ignored'] };
        return enf.rebind(u);
      },
      isUnbound: isUnboundDevice,
    };
  }

  get sysRoot(): string {
    return this.enforcer.sysRoot;
  }

  /** Default-deny on every root hub unless monitoring; idempotent, so it runs on every policy and exception change. */
  async applyPolicy(input: UsbPolicyInput): Promise<UsbEnforceResult> {
    if (input.monitor) return emptyResult();
    return this.enforcer.closeRootHubs();
  }

  listDevicePaths(): string[] {
    return listDevicePaths(this.sysRoot);
  }

  readDevice(path: string): UsbDeviceInfo | null {
    return readUsbDevice(this.sysRoot, path);
  }

  watch(onChange: (c: UsbChange) => void, log: (m: string) => void): () => Promise<void> {
    const ueventStop = (this.opts.watchUevents ?? watchKernelUevents)((e) => {
      const name = e.devpath.slice(e.devpath.lastIndexOf('/') + 1);
      if (e.subsystem === 'usb' && e.action === 'add' && DEVICE_RE.test(name)) onChange({ kind: 'added', path: name, ...(e.seenMs !== undefined ? { seenMs: e.seenMs } : {}) });
      else if (e.action === 'add' || e.action === 'bind' || e.action === 'change') onChange({ kind: 'rescan' });
    }, log);
    const hotplugStop = this.opts.hotplug === false ? null : startHotplug(() => onChange({ kind: 'attached' }), log);
    return async () => {
      if (hotplugStop) await hotplugStop().catch(() => undefined);
      ueventStop();
    };
  }

  async enforceDevice(d: UsbDeviceInfo, dec: UsbDecision, o: { first: boolean; monitor: boolean }): Promise<UsbEnforceResult> {
    // Monitor: let through what the kernel held back (boot default 2), block nothing.
    if (o.monitor) return this.enforcer.openDevice(d.path);
    return { ...(await this.enforcer.apply(d.path, dec, o.first)), enforcedBy: 'agent' };
  }

  forget(present: ReadonlySet<string>): void {
    this.enforcer.pruneMarkers(present as Set<string>);
  }

  keepReadonly(path: string): Promise<UsbEnforceResult> {
    return this.enforcer.setReadonlyDisks(path);
  }

  currentUser(): string | null {
    return loggedInUser(this.opts.utmpPaths);
  }
}

/** node-usb's udev hotplug: attach events only (it does not see devices the kernel left unauthorized). */
function startHotplug(onAttach: () => void, log: (m: string) => void): (() => Promise<void>) | null {
  try {
    const require = createRequire(import.meta.url);
    const native = require('usb/index.js') as {
      Emitter: new () => { addAttach(cb: (d: unknown) => void): Promise<void>; removeAttach(): Promise<void> };
    };
    const em = new native.Emitter();
    em.addAttach(() => onAttach()).catch((e: unknown) => log(`usb: hotplug unavailable (${(e as Error).message}); sysfs rescan only`));
    return () => em.removeAttach();
  } catch (e) {
    log(`usb: node-usb hotplug unavailable (${(e as Error).message}); sysfs rescan only`);
    return null;
  }
}
