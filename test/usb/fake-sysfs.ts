/**
 * A fake sysfs tree in a temp dir, shaped like the kernel's (bus/usb/devices symlinks into
 * devices/…, descriptors files, authorized attributes, block devices): the USB enforcer and the
 * agent can run against it without touching this machine's real /sys.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Iface = [number, number, number, number]; // number, class, subclass, protocol

export function devDescriptor(vid: number, pid: number, ifaces: Iface[]): Buffer {
  const d = Buffer.from([18, 1, 0, 2, 0, 0, 0, 64, vid & 0xff, vid >> 8, pid & 0xff, pid >> 8, 0, 1, 1, 2, 3, 1]);
  const parts = [d, Buffer.from([9, 2, 9 + 9 * ifaces.length, 0, ifaces.length, 1, 0, 0x80, 50])];
  for (const [n, c, s, p] of ifaces) parts.push(Buffer.from([9, 4, n, 0, 1, c, s, p, 0]));
  return Buffer.concat(parts);
}

export class FakeSysfs {
  readonly sys: string;

  /** `sys` defaults to a new temp dir; pass one to build the tree where an agent already looks. */
  constructor(sys?: string) {
    this.sys = sys ?? join(mkdtempSync(join(tmpdir(), 'sekimori-fakesys-')), 'sys');
    mkdirSync(this.usbDir(), { recursive: true });
    mkdirSync(join(this.sys, 'block'), { recursive: true });
    writeFileSync(join(this.sys, 'bus/usb/drivers_probe'), '');
  }

  usbDir(): string {
    return join(this.sys, 'bus/usb/devices');
  }

  real(...p: string[]): string {
    return join(this.sys, 'devices/pci0000:00/0000:00:04.0', ...p);
  }

  addRootHub(n: number): void {
    const dir = this.real(`usb${n}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'authorized_default'), '1\n');
    writeFileSync(join(dir, 'interface_authorized_default'), '1\n');
    writeFileSync(join(dir, 'authorized'), '1\n');
    symlinkSync(dir, join(this.usbDir(), `usb${n}`));
  }

  /** A device as the kernel shows it; `configured` = authorized with interface directories. */
  addDevice(path: string, vid: number, pid: number, ifaces: Iface[], opts: { configured: boolean; serial?: Buffer; ifaceAuthorized?: boolean; devnum?: number }): void {
    const dir = this.real('usb1', path);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'descriptors'), devDescriptor(vid, pid, ifaces));
    writeFileSync(join(dir, 'idVendor'), vid.toString(16).padStart(4, '0') + '\n');
    writeFileSync(join(dir, 'idProduct'), pid.toString(16).padStart(4, '0') + '\n');
    writeFileSync(join(dir, 'authorized'), opts.configured ? '1\n' : '0\n');
    writeFileSync(join(dir, 'busnum'), '1\n');
    writeFileSync(join(dir, 'devnum'), `${opts.devnum ?? 5}\n`);
    if (opts.serial) writeFileSync(join(dir, 'serial'), Buffer.concat([opts.serial, Buffer.from('\n')]));
    symlinkSync(dir, join(this.usbDir(), path));
    if (opts.configured) for (const [n, c, s, p] of ifaces) this.addInterface(path, n, c, s, p, opts.ifaceAuthorized ?? true);
  }

  /** Unplugs a device: its directory and its bus link disappear. */
  removeDevice(path: string): void {
    rmSync(join(this.usbDir(), path), { force: true });
    rmSync(this.real('usb1', path), { recursive: true, force: true });
  }

  addInterface(path: string, n: number, c: number, s: number, p: number, authorized: boolean): void {
    const name = `${path}:1.${n}`;
    const dir = this.real('usb1', path, name);
    mkdirSync(dir, { recursive: true });
    const h = (x: number) => x.toString(16).padStart(2, '0') + '\n';
    writeFileSync(join(dir, 'bInterfaceNumber'), h(n));
    writeFileSync(join(dir, 'bAlternateSetting'), ' 0\n');
    writeFileSync(join(dir, 'bInterfaceClass'), h(c));
    writeFileSync(join(dir, 'bInterfaceSubClass'), h(s));
    writeFileSync(join(dir, 'bInterfaceProtocol'), h(p));
    writeFileSync(join(dir, 'authorized'), authorized ? '1\n' : '0\n');
    symlinkSync(dir, join(this.usbDir(), name));
  }

  addDisk(path: string, iface: string, name: string, parts: string[], ro = false): void {
    const dir = this.real('usb1', path, iface, 'host0/target0:0:0/0:0:0:0/block', name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'ro'), ro ? '1\n' : '0\n');
    for (const p of parts) {
      mkdirSync(join(dir, p));
      writeFileSync(join(dir, p, 'ro'), ro ? '1\n' : '0\n');
    }
    symlinkSync(dir, join(this.sys, 'block', name));
  }

  /**
   * A built-in (non-USB) disk the way the kernel shows it: the bus device (`0:0:0:0` on scsi,
   * `mmc0:4567` on mmc) bound to its driver (sr, mmcblk), with the disk under it.
   */
  addBuiltinDisk(bus: 'scsi' | 'mmc', id: string, driver: string, name: string, mmcType = 'SD'): void {
    const dev = bus === 'scsi' ? join(this.sys, 'devices/pci0000:00/0000:00:06.0/virtio2/host0/target0:0:0', id) : join(this.sys, 'devices/pci0000:00/0000:00:05.0/mmc_host/mmc0', id);
    const drv = join(this.sys, 'bus', bus, 'drivers', driver);
    mkdirSync(join(dev, 'block', name), { recursive: true });
    mkdirSync(drv, { recursive: true });
    writeFileSync(join(drv, 'bind'), '');
    writeFileSync(join(drv, 'unbind'), '');
    writeFileSync(join(dev, 'block', name, 'ro'), '0\n');
    if (bus === 'mmc') writeFileSync(join(dev, 'type'), `${mmcType}\n`);
    symlinkSync(dev, join(dev, 'block', name, 'device'));
    symlinkSync(drv, join(dev, 'driver'));
    symlinkSync(join(dev, 'block', name), join(this.sys, 'block', name));
  }

  /** What the kernel does on an unbind: the disk goes away. */
  removeBuiltinDisk(name: string): void {
    rmSync(join(this.sys, 'block', name), { force: true });
  }
}
