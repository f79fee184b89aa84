/**
 * Host side of the real-kernel tier: boots Debian's kernel under QEMU with the host root over
 * read-only 9p and a writable 9p share for results, talks QMP to hot-plug devices, and drives the
 * guest through a file-based command queue (see guest.sh). Every wait is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { presences, windowsOf, type WatchLine } from '../../../bench/usb-guest-logs.js';
import { waitFor } from '../../integration/harness.js';

export type { WatchLine };

export const ROOT = resolve(import.meta.dirname, '../../..');
export const QEMU_DIR = join(ROOT, '.tools/qemu');
export const KERNEL = join(QEMU_DIR, 'vmlinuz');
export const INITRD = join(QEMU_DIR, 'initramfs.gz');

/** KVM is used only when asked (SEKIMORI_QEMU_ACCEL=kvm): nested KVM on the CI hosts hangs at boot. */
export function accelArgs(): string[] {
  const want = process.env.SEKIMORI_QEMU_ACCEL ?? 'tcg';
  if (want === 'kvm') {
    try {
      openSync('/dev/kvm', 'r+');
      return ['-accel', 'kvm', '-cpu', 'host'];
    } catch {
      // fall through to emulation
    }
  }
  return ['-accel', 'tcg'];
}

class Qmp {
  private buf = '';
  private waiters: ((v: Record<string, unknown>) => void)[] = [];
  constructor(private readonly sock: Socket) {
    sock.on('data', (c: Buffer) => {
      this.buf += c.toString();
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line) as Record<string, unknown>;
        if ('event' in msg) continue;
        this.waiters.shift()?.(msg);
      }
    });
  }
  next(timeoutMs = 20_000): Promise<Record<string, unknown>> {
    return new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error('QMP timeout')), timeoutMs);
      this.waiters.push((v) => {
        clearTimeout(t);
        res(v);
      });
    });
  }
  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const p = this.next();
    this.sock.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) }) + '\n');
    const r = await p;
    if ('error' in r) throw new Error(`QMP ${command}: ${JSON.stringify(r.error)}`);
    return r.return;
  }
}

export interface VmOptions {
  stateDir: string; // host temp dir shared as /run/state
  usbcoreOptions: string; // e.g. "authorized_default=1"
  drives: { id: string; file: string; media?: 'cdrom' }[];
  bootDevices: string[]; // -device specs present at boot
  consolePort: number | null;
  memMb?: number;
}

export class Vm {
  proc!: ChildProcess;
  qmp!: Qmp;
  private cmdNo = 0;
  private serial = '';
  constructor(readonly o: VmOptions) {}

  serialLog(): string {
    return this.serial;
  }

  async boot(): Promise<void> {
    const qmpSock = join(this.o.stateDir, '..', 'qmp.sock');
    mkdirSync(join(this.o.stateDir, 'cmd'), { recursive: true });
    const net = this.o.consolePort
      ? ['-netdev', `user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8443-cmd:${process.execPath} ${join(ROOT, 'test/e2e/qemu/fwd.mjs')} ${this.o.consolePort}`, '-device', 'virtio-net-pci,netdev=n0']
      : ['-nic', 'none'];
    const args = [
      ...accelArgs(),
      '-m', String(this.o.memMb ?? 1536),
      '-smp', '1',
      '-nographic', '-no-reboot',
      '-kernel', KERNEL,
      '-initrd', INITRD,
      '-append', `console=ttyS0 quiet panic=-1 sekimori.script=/run/state/guest.sh sekimori.usbcore=${this.o.usbcoreOptions.replace(/\s+/g, ',')} sekimori.repo=${ROOT}`,
      '-virtfs', 'local,path=/,mount_tag=hostroot,readonly=on,security_model=none',
      // The checkout again, mounted at its own path in the guest (it may be under /tmp).
      '-virtfs', `local,path=${ROOT},mount_tag=checkout,readonly=on,security_model=none`,
      '-virtfs', `local,path=${this.o.stateDir},mount_tag=statehost,security_model=none`,
      '-device', 'qemu-xhci,id=xhci',
      ...this.o.drives.flatMap((d) => ['-drive', `if=none,id=${d.id},file=${d.file},format=raw${d.media ? `,media=${d.media}` : ''}`]),
      ...this.o.bootDevices.flatMap((d) => ['-device', d]),
      ...net,
      '-qmp', `unix:${qmpSock},server=on,wait=off`,
    ];
    this.proc = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (c: Buffer) => (this.serial += c.toString()));
    this.proc.stderr!.on('data', (c: Buffer) => (this.serial += c.toString()));
    await waitFor('QMP socket', () => existsSync(qmpSock), 15_000, 100);
    const sock = connect(qmpSock);
    this.qmp = new Qmp(sock);
    await this.qmp.next(); // greeting
    await this.qmp.execute('qmp_capabilities');
  }

  async deviceAdd(args: Record<string, unknown>): Promise<void> {
    await this.qmp.execute('device_add', args);
  }

  file(name: string): string | null {
    try {
      return readFileSync(join(this.o.stateDir, name), 'utf8');
    } catch {
      return null;
    }
  }

  /**
   * Runs a shell snippet in the guest (through the command queue) and returns its output. Bounded
   * like every other step of the tier (SEKIMORI_QEMU_STEP_MS): an emulated guest on a loaded 2-core
   * machine took over 60 s for one mount + write + sync (CI, 2026-11-30).
   */
  async run(script: string, timeoutMs = Number(process.env.SEKIMORI_QEMU_STEP_MS ?? 240_000)): Promise<{ rc: number; out: string }> {
    const n = ++this.cmdNo;
    const dir = join(this.o.stateDir, 'cmd');
    writeFileSync(join(dir, `${n}.tmp`), script + '\n');
    renameSync(join(dir, `${n}.tmp`), join(dir, `${n}.sh`));
    const rc = await waitFor(`guest command ${n}: ${script.slice(0, 60)}`, () => this.file(`cmd/${n}.rc`), timeoutMs, 100);
    return { rc: Number(rc.trim()), out: this.file(`cmd/${n}.out`) ?? '' };
  }

  async shutdown(timeoutMs = 30_000): Promise<void> {
    writeFileSync(join(this.o.stateDir, 'quit'), '');
    const done = new Promise<void>((r) => (this.proc.exitCode !== null ? r() : this.proc.once('exit', () => r())));
    const t = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    await done;
    clearTimeout(t);
  }
}

export function readWatch(stateDir: string): WatchLine[] {
  let text = '';
  try {
    text = readFileSync(join(stateDir, 'watch.jsonl'), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as WatchLine);
}

/** The USB device path (e.g. "1-3") the watcher saw appear with this serial. */
export function pathOfSerial(w: WatchLine[], serial: string): string | null {
  return w.find((l) => l.kind === 'dev' && l.serial === serial)?.name ?? null;
}

/**
 * Every moment the guest saw a driver on one of the device's interfaces, or a block device under
 * it, while the device last seen at `path` was present (ports are reused by later devices).
 */
export function driverWindows(w: WatchLine[], path: string): WatchLine[] {
  const p = presences(w).filter((x) => x.path === path).pop();
  return p ? windowsOf(w, p) : [];
}
