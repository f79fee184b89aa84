/**
 * The Linux enforcer: USB authorization through sysfs (as USBGuard does it) and read-only block
 * devices through `blockdev --setro`. Fail-closed by construction: root hubs get
 * `authorized_default=0` and `interface_authorized_default=0`, so a device plugged while the agent
 * is dead, slow or crashed gets no driver at all; the agent only ever opens what policy allows.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { BlockKind, UsbDecision } from '../decide.js';
import type { UnboundMedium, UsbEnforceResult } from '../platform.js';
import { monoMs } from '../trace.js';
import { listBlockDevices, listRootHubs, readInterfaceDirs, readText, usbDevicesDir, usbPathOfBlock, type BlockDeviceInfo } from './sysfs.js';

export interface EnforcerOptions {
  sysRoot?: string; // default /sys
  devRoot?: string; // default /dev
  /** Marker files read by the udev rule (installers/linux/udev): one per USB device to keep read-only. */
  readonlyMarkerDir?: string; // default /run/sekimori/usb-readonly
  /** Runs `blockdev --setro` / `--setrw` on a device node; injectable for tests. */
  setReadonly?: (devNode: string) => Promise<void>;
  setWritable?: (devNode: string) => Promise<void>;
}

/** A built-in drive or card reader whose driver the agent unbound (kept in the agent's state). */
export interface UnboundDevice extends UnboundMedium {
  kind: BlockKind;
  bus: string; // scsi, mmc
  driver: string; // sr, mmcblk
  id: string; // the device's name on that bus: "0:0:0:0", "mmc0:4567"
}

/** Sysfs writes done and errors, as the platform seam reports them. */
export type EnforceResult = UsbEnforceResult;


function blockdev(flag: '--setro' | '--setrw', devNode: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('blockdev', [flag, devNode], { timeout: 5000, env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` } }, (err) =>
      err ? reject(err) : resolve(),
    );
  });
}

export class LinuxUsbEnforcer {
  readonly sysRoot: string;
  readonly devRoot: string;
  readonly markerDir: string;
  private readonly setRo: (devNode: string) => Promise<void>;
  private readonly setRw: (devNode: string) => Promise<void>;

  constructor(opts: EnforcerOptions = {}) {
    this.sysRoot = opts.sysRoot ?? '/sys';
    this.devRoot = opts.devRoot ?? '/dev';
    this.markerDir = opts.readonlyMarkerDir ?? '/run/sekimori/usb-readonly';
    this.setRo = opts.setReadonly ?? ((n) => blockdev('--setro', n));
    this.setRw = opts.setWritable ?? ((n) => blockdev('--setrw', n));
  }

  private write(path: string, value: string, r: EnforceResult): boolean {
    r.firstWriteMs ??= monoMs();
    try {
      writeFileSync(path, value);
      r.wrote.push(`${path.slice(this.sysRoot.length)}=${value}`);
      return true;
    } catch (e) {
      // A device unplugged between reading and writing is not an error worth reporting.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') r.errors.push(`${path}: ${(e as Error).message}`);
      return false;
    }
  }

  /** Default-deny on every root hub: new devices and new interfaces get no driver until we say so. */
  closeRootHubs(): EnforceResult {
    const r: EnforceResult = { wrote: [], errors: [] };
    for (const hub of listRootHubs(this.sysRoot)) {
      const dir = join(usbDevicesDir(this.sysRoot), hub);
      // Interfaces first: if authorized_default=0 were set first, a device authorized in between
      // could still come up with all interfaces bound.
      if (readText(join(dir, 'interface_authorized_default')) !== '0') this.write(join(dir, 'interface_authorized_default'), '0', r);
      if (readText(join(dir, 'authorized_default')) !== '0') this.write(join(dir, 'authorized_default'), '0', r);
    }
    return r;
  }

  /** Monitor mode: let through what the kernel held back (boot default 2), block nothing. */
  openDevice(path: string): EnforceResult {
    const r: EnforceResult = { wrote: [], errors: [] };
    const dir = join(usbDevicesDir(this.sysRoot), path);
    if (readText(join(dir, 'authorized')) === '0') this.write(join(dir, 'authorized'), '1', r);
    for (const i of readInterfaceDirs(this.sysRoot, path)) {
      if (!i.authorized) {
        this.write(join(usbDevicesDir(this.sysRoot), i.name, 'authorized'), '1', r);
        this.write(join(this.sysRoot, 'bus', 'usb', 'drivers_probe'), i.name, r);
      }
    }
    return r;
  }

  /**
   * Makes sysfs match the decision. Idempotent: only differences are written, so it can run on
   * every rescan and also repairs a hand-made `echo 1 > authorized`.
   */
  async apply(path: string, d: UsbDecision, first = true): Promise<EnforceResult> {
    const r: EnforceResult = { wrote: [], errors: [] };
    const devDir = join(usbDevicesDir(this.sysRoot), path);
    if (!d.authorizeDevice) {
      if (readText(join(devDir, 'authorized')) !== '0') this.write(join(devDir, 'authorized'), '0', r);
      this.clearReadonlyMarker(path);
      return r;
    }
    if (d.readonly) this.setReadonlyMarker(path);
    else this.clearReadonlyMarker(path);
    const allowed = new Set(d.interfaces.filter((i) => i.allow).map((i) => i.number));
    let ifaces = readInterfaceDirs(this.sysRoot, path);
    // Read-only media already bound when first judged (present at start, or access changed): unbind
    // so the disk is re-created read-only through the marker. Only on the first application: later
    // rescans would race udev's own setro on the freshly created disk.
    if (d.readonly && first) {
      for (const i of ifaces) {
        if (i.class === 0x08 && i.authorized && this.usbHasWritableDisk(path)) this.write(join(usbDevicesDir(this.sysRoot), i.name, 'authorized'), '0', r);
      }
      ifaces = readInterfaceDirs(this.sysRoot, path);
    }
    // Block first, then allow: never a moment where a blocked interface and the device are both live.
    for (const i of ifaces) {
      if (!allowed.has(i.number) && i.authorized) this.write(join(usbDevicesDir(this.sysRoot), i.name, 'authorized'), '0', r);
    }
    if (readText(join(devDir, 'authorized')) === '0') {
      if (!this.write(join(devDir, 'authorized'), '1', r)) return r;
      ifaces = readInterfaceDirs(this.sysRoot, path);
      // If the bus default let interfaces in (root hub not closed), block the ones policy forbids.
      for (const i of ifaces) {
        if (!allowed.has(i.number) && i.authorized) this.write(join(usbDevicesDir(this.sysRoot), i.name, 'authorized'), '0', r);
      }
    }
    for (const i of ifaces) {
      if (allowed.has(i.number) && !i.authorized) {
        if (this.write(join(usbDevicesDir(this.sysRoot), i.name, 'authorized'), '1', r) && i.driver === null) {
          // Authorizing an interface does not probe drivers by itself.
          this.write(join(this.sysRoot, 'bus', 'usb', 'drivers_probe'), i.name, r);
        }
      }
    }
    if (d.readonly) await this.setReadonlyDisks(path, r);
    return r;
  }

  private usbHasWritableDisk(path: string): boolean {
    return this.disksUnder(path).some((b) => !b.readonly);
  }

  disksUnder(path: string): BlockDeviceInfo[] {
    return listBlockDevices(this.sysRoot).filter((b) => usbPathOfBlock(b.devicePath) === path);
  }

  /** blockdev --setro on every disk under the USB device and on its partitions. */
  async setReadonlyDisks(path: string, r: EnforceResult = { wrote: [], errors: [] }): Promise<EnforceResult> {
    for (const b of this.disksUnder(path)) {
      for (const name of [b.name, ...b.partitions]) {
        const ro = readText(join(this.sysRoot, 'block', b.name, ...(name === b.name ? [] : [name]), 'ro'));
        if (ro === '1') continue;
        try {
          await this.setRo(join(this.devRoot, name));
          r.wrote.push(`setro ${name}`);
        } catch (e) {
          r.errors.push(`setro ${name}: ${(e as Error).message}`);
        }
      }
    }
    return r;
  }

  setReadonlyMarker(path: string): void {
    try {
      mkdirSync(this.markerDir, { recursive: true, mode: 0o755 });
      writeFileSync(join(this.markerDir, path), 'readonly\n');
    } catch {
      // The agent's own setro still runs; the marker only closes the window before it.
    }
  }

  clearReadonlyMarker(path: string): void {
    rmSync(join(this.markerDir, path), { force: true });
  }

  /** Removes markers of devices that are gone. */
  pruneMarkers(present: Set<string>): void {
    let names: string[] = [];
    try {
      names = readdirSync(this.markerDir);
    } catch {
      return;
    }
    for (const n of names) if (!present.has(n)) this.clearReadonlyMarker(n);
  }

  /**
   * Built-in optical drive or SD card: `readonly` sets ro on the disk and its partitions; `allow`
   * clears the ro the installer's udev rule puts on every such medium at creation.
   */
  async setBlockDeviceAccess(b: BlockDeviceInfo, access: 'readonly' | 'allow'): Promise<EnforceResult> {
    const r: EnforceResult = { wrote: [], errors: [] };
    const [op, set] = access === 'readonly' ? (['setro', this.setRo] as const) : (['setrw', this.setRw] as const);
    for (const name of [b.name, ...b.partitions]) {
      const ro = readText(join(this.sysRoot, 'block', b.name, ...(name === b.name ? [] : [name]), 'ro')) === '1';
      if (ro === (access === 'readonly')) continue;
      try {
        await set(join(this.devRoot, name));
        r.wrote.push(`${op} ${name}`);
      } catch (e) {
        r.errors.push(`${op} ${name}: ${(e as Error).message}`);
      }
    }
    return r;
  }

  /**
   * Built-in optical drive or SD card under `block`: its driver (sr, mmcblk) is unbound, so the
   * disk disappears while the hardware stays known to the kernel and can be bound again when a
   * policy allows it.
   */
  unbindBlockDevice(b: BlockDeviceInfo, kind: BlockKind): EnforceResult & { unbound?: UnboundDevice } {
    const r: EnforceResult & { unbound?: UnboundDevice } = { wrote: [], errors: [] };
    let dev: string;
    let driverDir: string;
    try {
      dev = realpathSync(join(this.sysRoot, 'block', b.name, 'device'));
      driverDir = realpathSync(join(dev, 'driver'));
    } catch (e) {
      r.errors.push(`${b.name}: no device or driver to unbind (${(e as Error).message})`);
      return r;
    }
    const id = basename(dev);
    // driverDir is …/bus/<bus>/drivers/<driver>
    const unbound: UnboundDevice = { kind, bus: basename(dirname(dirname(driverDir))), driver: basename(driverDir), id };
    if (this.write(join(driverDir, 'unbind'), id, r)) r.unbound = unbound;
    return r;
  }

  /** Binds a device's driver again (the policy allows its kind now); its disk comes back. */
  rebind(u: UnboundDevice): EnforceResult {
    const r: EnforceResult = { wrote: [], errors: [] };
    this.write(join(this.sysRoot, 'bus', u.bus, 'drivers', u.driver, 'bind'), u.id, r);
    return r;
  }
}
