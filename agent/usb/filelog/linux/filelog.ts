/**
 * 持ち出しログ on Linux: finds where each usable medium is mounted (sysfs block devices under the
 * USB device ↔ the helper's /proc/<pid>/mountinfo), has the fanotify helper (sekimori-file-log.c
 * beside this file) watch those filesystems for FAN_CLOSE_WRITE, and records every written file as
 * usb.file_written with its size, SHA-256 and writer.
 *
 * Hashing happens after close, streaming, one file at a time, through /proc/<helper>/root<path>
 * (the helper's mount namespace: tests run it in one of their own). Files wait in a bounded queue;
 * a file that does not fit is recorded at once without a hash, a file too large for the cap is
 * recorded with its size only, and a file removed before its turn is recorded with the reason.
 * Nothing here ever blocks a write (notification class) or the agent's event loop for long.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { AgentContext } from '../../../capability.js';
import { safeText } from '../../../../protocol/text.js';
import type { UsbDecision } from '../../decide.js';
import type { UsbDeviceInfo } from '../../observe.js';
import { listBlockDevices, readText, usbPathOfBlock } from '../../linux/sysfs.js';
import {
  fileWrittenData,
  hashPlan,
  markLine,
  parseFileLogLine,
  parseMountinfo,
  parsePasswd,
  relativePath,
  usableMedium,
  watchTargets,
  WriteQueue,
  type FileLogLine,
  type HashSkipped,
  type UsableMedium,
  type UsbBlocks,
  type WatchTarget,
  type WrittenFile,
} from '../decide.js';

/** Where the package installs the helper (installers/linux/build-deb.sh). */
export const INSTALLED_FILE_LOG_HELPER = '/usr/lib/sekimori/sekimori-file-log';

/** SEKIMORI_FILE_LOG_HELPER (tests, the QEMU tier) or the installed helper; null when neither exists. */
export function fileLogHelperPath(env: NodeJS.ProcessEnv = process.env): string | null {
  const p = env.SEKIMORI_FILE_LOG_HELPER || INSTALLED_FILE_LOG_HELPER;
  return p.startsWith('/') && existsSync(p) ? p : null;
}

export interface LinuxFileLogOptions {
  sysRoot: string;
  /** The helper executable; null: not installed (recorded as usb.file_log_unavailable per medium). */
  helper: string | null;
  /** Runs the helper through this command (tests: nsenter into their private mount namespace). */
  prefix?: string[];
  /** Files larger than this are recorded without a hash (default 4 GiB). */
  hashCapBytes?: number;
  /** Files waiting for their hash (default 1024); past it they are recorded without one. */
  queueCap?: number;
  passwdPath?: string;
  currentUser(): string | null;
  mode(): string;
  /**
   * Where the watched media come from. Default: the block devices under usable USB devices in
   * sysfs. Tests of the watcher on a loop or tmpfs "medium" name its major:minor directly.
   */
  blocks?: () => UsbBlocks[];
}

const CHUNK = 1 << 20;

export class LinuxFileLog {
  private media = new Map<string, UsableMedium>();
  private targets = new Map<string, WatchTarget>();
  private marked = new Set<string>();
  private unavailableSaid = new Set<string>();
  private readonly queue: WriteQueue;
  private child: ChildProcess | null = null;
  private helperPid: number | null = null;
  private ready: Promise<boolean> | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private restarts = 0;
  private stopped = false;
  private hashing: Promise<void> | null = null;
  private lost = 0;
  private lostTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private users: { at: number; map: Map<number, string> } | null = null;
  /** Counters for tests and benchmarks. */
  readonly stats = { recorded: 0, hashed: 0, skipped: 0, lost: 0, marks: 0, markErrors: 0 };

  constructor(
    private readonly ctx: Pick<AgentContext, 'emit' | 'log'>,
    private readonly o: LinuxFileLogOptions,
  ) {
    this.queue = new WriteQueue(o.queueCap ?? 1024);
  }

  /** A device was judged (new or changed decision): usable media are watched once mounted. */
  judged(d: UsbDeviceInfo, dec: UsbDecision, monitor: boolean): void {
    const m = usableMedium(d, dec, monitor);
    const had = this.media.has(d.path);
    if (m) this.media.set(d.path, m);
    else this.media.delete(d.path);
    if (!!m !== had) this.ctx.log('info', `usb: file log: ${safeText(d.path)} ${m ? `usable (${m.access}): writes are recorded once mounted` : 'no longer usable'}`);
    // Its own look at the mounts, not waiting for the capability's next scan to finish.
    if (m && !had) this.kick();
  }

  /** Looks again now and then every few seconds while a medium is usable (besides the helper's MNT lines). */
  private kick(): void {
    this.pollTimer ??= setInterval(() => {
      if (!this.media.size && !this.targets.size) {
        clearInterval(this.pollTimer!);
        this.pollTimer = null;
        return;
      }
      this.refreshLogged();
    }, 2_000);
    this.pollTimer.unref?.();
    this.refreshLogged();
  }

  private refreshLogged(): void {
    this.refresh().catch((e: unknown) => this.ctx.log('warn', `usb: file log: ${safeText((e as Error).message, 300)}`));
  }

  /** A medium given directly (tests on a loop/tmpfs medium): watched while present in `blocks`. */
  addMedium(m: UsableMedium): void {
    this.media.set(m.port, m);
  }

  /** Unplugged devices are no longer media (see FileLogControl.forget for when this is called). */
  forget(present: ReadonlySet<string>): void {
    for (const p of [...this.media.keys()]) if (!present.has(p)) this.media.delete(p);
  }

  /** Forget, then look (tests drive it this way). */
  async sync(present: ReadonlySet<string>): Promise<void> {
    this.forget(present);
    await this.refresh();
  }

  /** Watches what is mounted now and stops watching what is not. */
  async refresh(): Promise<void> {
    if (this.stopped || (!this.media.size && !this.targets.size)) return;
    // The helper runs while a usable medium is present (its MNT lines say when one is mounted).
    const helperUp = this.media.size ? await this.ensureHelper() : this.helperPid !== null;
    const blocks = this.o.blocks ? this.o.blocks() : this.usbBlocks();
    let mounts: ReturnType<typeof parseMountinfo> = [];
    try {
      mounts = parseMountinfo(readFileSync(`/proc/${this.helperPid ?? 'self'}/mountinfo`, 'latin1'));
    } catch {
      mounts = []; // the helper just exited: its restart refreshes again
    }
    const now = new Map(watchTargets([...this.media.values()], blocks, mounts).map((t) => [t.dev, t]));
    for (const [dev, t] of this.targets) {
      if (now.has(dev)) continue;
      this.targets.delete(dev);
      this.marked.delete(dev);
      const line = markLine(false, dev, t.mounts[0]!.mountPoint);
      if (line) this.child?.stdin?.write(line);
      for (const f of this.queue.drain(dev)) this.record(t, f, null, 'medium_gone');
      this.ctx.log('info', `usb: file log: stopped watching ${safeText(t.medium.port)} (${safeText(t.mounts[0]!.mountPoint)})`);
    }
    for (const [dev, t] of now) {
      this.targets.set(dev, t);
      // A mounted medium whose writes cannot be recorded is said once (per helper start).
      if (!helperUp) {
        this.unavailable(this.o.helper ? 'helper not running' : 'helper not installed (sekimori-file-log): writes to this medium are not recorded', t.medium);
        continue;
      }
      if (this.marked.has(dev)) continue;
      this.marked.add(dev); // asked once; MARKED or ERR answers
      const line = markLine(true, dev, t.mounts[0]!.mountPoint);
      if (line) this.child?.stdin?.write(line);
    }
  }

  /** "major:minor" of the disks and partitions under each USB device, from sysfs. */
  private usbBlocks(): UsbBlocks[] {
    const out = new Map<string, string[]>();
    for (const b of listBlockDevices(this.o.sysRoot)) {
      const port = usbPathOfBlock(b.devicePath);
      if (!port || !this.media.has(port)) continue;
      const list = out.get(port) ?? [];
      for (const n of [b.name, ...b.partitions]) {
        const mm = readText(n === b.name ? join(this.o.sysRoot, 'block', n, 'dev') : join(this.o.sysRoot, 'block', b.name, n, 'dev'));
        if (mm) list.push(mm);
      }
      out.set(port, list);
    }
    return [...out].map(([port, majMins]) => ({ port, majMins }));
  }

  private unavailable(reason: string, medium?: UsableMedium): void {
    const key = `${medium?.port ?? ''}|${reason}`;
    if (this.unavailableSaid.has(key)) return;
    this.unavailableSaid.add(key);
    this.ctx.emit({ type: 'usb.file_log_unavailable', data: { ...(medium ? { device: medium.device } : {}), reason: safeText(reason, 1024) } });
    this.ctx.log('warn', `usb: file log unavailable: ${reason}`);
  }

  private ensureHelper(): Promise<boolean> {
    if (this.ready) return this.ready;
    if (!this.o.helper) return Promise.resolve(false);
    return (this.ready = this.spawnHelper(this.o.helper));
  }

  private spawnHelper(helper: string): Promise<boolean> {
    const cmd = [...(this.o.prefix ?? []), helper];
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-512)));
    child.stdin!.on('error', () => undefined);
    let resolveReady: (ok: boolean) => void = () => undefined;
    const ready = new Promise<boolean>((r) => (resolveReady = r));
    const lines = createInterface({ input: child.stdout!, crlfDelay: Infinity });
    lines.on('line', (raw) => {
      const l = parseFileLogLine(raw);
      if (!l || child !== this.child) return;
      if (l.kind === 'ready') {
        this.ctx.log('info', `usb: file log: helper running (pid ${l.pid})`);
        this.helperPid = l.pid;
        this.restarts = 0;
        resolveReady(true);
      } else this.onLine(l);
    });
    const failed = (why: string) => {
      resolveReady(false);
      if (child !== this.child) return;
      this.child = null;
      this.helperPid = null;
      this.marked.clear();
      if (this.stopped) return;
      this.unavailable(`helper stopped: ${why}`);
      // Bounded backoff (1 s … 60 s); a restart marks every target again.
      const delay = Math.min(60_000, 1000 * 2 ** Math.min(this.restarts++, 6));
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        this.ready = null;
        this.unavailableSaid.clear();
        this.refreshLogged();
      }, delay);
      this.restartTimer.unref?.();
    };
    child.once('error', (e) => child.pid === undefined && failed(e.message));
    child.once('exit', (code, signal) => failed(`exit ${code ?? signal} ${safeText(stderr.trim(), 300)}`));
    const t = setTimeout(() => resolveReady(false), 5_000);
    t.unref?.();
    return ready.finally(() => clearTimeout(t));
  }

  private onLine(l: Exclude<FileLogLine, { kind: 'ready' }>): void {
    switch (l.kind) {
      case 'mounts_changed':
        // Every target is marked again: a medium unmounted and mounted again keeps its device
        // number (and even its mount id, which the kernel reuses) but is a new filesystem whose
        // mark went with the old one. Adding a mark a filesystem already has changes nothing.
        this.marked.clear();
        this.refreshLogged();
        return;
      case 'marked': {
        this.stats.marks++;
        const t = this.targets.get(l.dev);
        if (t) this.ctx.log('info', `usb: file log: watching ${safeText(t.medium.port)} ${t.fsType} at ${safeText(t.mounts[0]!.mountPoint)} (${l.how})`);
        return;
      }
      case 'error': {
        this.stats.markErrors++;
        const t = this.targets.get(l.dev);
        if (l.stage === 'mark' && t) {
          // Unmounted meanwhile (ESTALE/ENOENT): the next refresh decides again; else it cannot be watched.
          this.marked.delete(l.dev);
          if (l.errno !== 116 && l.errno !== 2) this.unavailable(`fanotify mark failed (errno ${l.errno})`, t.medium);
        } else if (l.stage === 'init') this.unavailable(`fanotify unavailable (errno ${l.errno})`);
        return;
      }
      case 'lost':
        this.lost += l.count;
        this.stats.lost += l.count;
        this.lostTimer ??= setTimeout(() => this.flushLost(), 5_000);
        return;
      case 'written':
        this.onWritten(l);
        return;
    }
  }

  private flushLost(): void {
    this.lostTimer = null;
    if (!this.lost) return;
    this.ctx.emit({ type: 'usb.file_log_overflow', data: { reason: 'kernel_queue', count: this.lost } });
    this.lost = 0;
  }

  private onWritten(l: Extract<FileLogLine, { kind: 'written' }>): void {
    const t = this.targets.get(l.dev);
    if (!t) return; // a filesystem we no longer watch (its mark is being removed)
    const deletedSuffix = Buffer.from(' (deleted)');
    const deleted = l.path.length > deletedSuffix.length && l.path.subarray(-deletedSuffix.length).equals(deletedSuffix);
    const f: WrittenFile = { dev: l.dev, ino: l.ino, abs: deleted ? l.path.subarray(0, -deletedSuffix.length) : l.path, size: l.size, pid: l.pid, uid: l.uid, deleted };
    if (deleted) return this.record(t, f, null, 'removed');
    if (hashPlan(f.size, this.o.hashCapBytes ?? 4 * 2 ** 30) === 'too_large') return this.record(t, f, null, 'too_large');
    if (this.queue.push(f) === 'full') return this.record(t, f, null, 'queue_full');
    this.hashing ??= this.drainQueue().finally(() => (this.hashing = null));
  }

  private async drainQueue(): Promise<void> {
    for (let f = this.queue.shift(); f; f = this.queue.shift()) {
      const t = this.targets.get(f.dev);
      if (!t) continue; // drained with 'medium_gone' already
      // Stopping: what is still queued is recorded without its hash, never dropped.
      const r = this.stopped ? { sha256: null, skipped: 'agent_stopped' as const } : await this.hash(f);
      this.record(t, f, r.sha256, r.skipped);
    }
  }

  /** Streams the file once; its identity and size must be the written ones before and after. */
  private async hash(f: WrittenFile): Promise<{ sha256: string | null; skipped: HashSkipped | null }> {
    const path = this.helperPid ? Buffer.concat([Buffer.from(`/proc/${this.helperPid}/root`), f.abs]) : f.abs;
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      return { sha256: null, skipped: (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'removed' : 'unreadable' };
    }
    try {
      const before = await fh.stat({ bigint: true });
      if (before.ino.toString() !== f.ino || before.dev.toString() !== f.dev) return { sha256: null, skipped: 'replaced' };
      if (Number(before.size) !== f.size) return { sha256: null, skipped: 'changed' };
      const h = createHash('sha256');
      const buf = Buffer.allocUnsafe(CHUNK);
      let total = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, CHUNK, total);
        if (bytesRead === 0) break;
        if (this.stopped) return { sha256: null, skipped: 'agent_stopped' };
        h.update(buf.subarray(0, bytesRead));
        total += bytesRead;
        if (total > f.size) return { sha256: null, skipped: 'changed' };
      }
      const after = await fh.stat({ bigint: true });
      if (total !== f.size || after.size !== before.size || after.mtimeNs !== before.mtimeNs) return { sha256: null, skipped: 'changed' };
      this.stats.hashed++;
      return { sha256: h.digest('hex'), skipped: null };
    } catch {
      return { sha256: null, skipped: 'unreadable' };
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  private userOf(uid: number | null): string | null {
    if (uid === null) return null;
    const now = Date.now();
    if (!this.users || (!this.users.map.has(uid) && now - this.users.at > 60_000)) {
      let map = new Map<number, string>();
      try {
        map = parsePasswd(readFileSync(this.o.passwdPath ?? '/etc/passwd', 'utf8'));
      } catch {
        // unreadable: the uid stands for itself
      }
      this.users = { at: now, map };
    }
    return this.users.map.get(uid) ?? `uid:${uid}`;
  }

  /** Recorded (durably) once per file; the hash when there is one, else why not. */
  private record(t: WatchTarget, f: WrittenFile, sha256: string | null, skipped: HashSkipped | null): void {
    const writer = this.userOf(f.uid);
    if (!sha256) this.stats.skipped++;
    this.stats.recorded++;
    this.ctx.emit({
      type: 'usb.file_written',
      user: writer ?? this.o.currentUser(),
      data: fileWrittenData({ target: t, file: f, rel: relativePath(t, f.abs), sha256, hashSkipped: skipped, userSource: writer ? 'writer' : 'session', mode: this.o.mode() }),
    });
  }

  /** Files still queued (tests, benchmarks). */
  get pending(): number {
    return this.queue.size + (this.hashing ? 1 : 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.lostTimer) clearTimeout(this.lostTimer);
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.flushLost();
    await this.hashing;
    const c = this.child;
    this.child = null;
    if (c && c.exitCode === null && c.signalCode === null) {
      const gone = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 2000);
      await gone;
      clearTimeout(t);
    }
  }
}
