/**
 * 持ち出しログ on Windows: maps each usable medium to its drive letter (MountedDevices, see
 * decide.ts for what is exact and what is a heuristic), watches the drive root recursively with
 * fs.watch (libuv: ReadDirectoryChangesW, bWatchSubtree), and records every file written as
 * usb.file_written with size and SHA-256.
 *
 * ReadDirectoryChangesW says a name changed, not that its writer closed it, nor who wrote: a file
 * is looked at once it has been quiet for a moment, opened exclusively (UV_FS_O_EXLOCK: share mode
 * 0, fails while any writer still holds it) and closed at once, then hashed with a normal open,
 * its size and last-write time checked before and after. Still open after MAX_BUSY tries → recorded
 * with its size and hashSkipped 'still_open'. The writer is the console session's user (last
 * logged-on user, read from LogonUI: a heuristic, said so in README); uid and pid are null.
 *
 * Bounded: at most `pendingCap` names wait; past it, and when the watcher's own buffer overflows
 * (libuv hands a null file name), writes are counted and recorded as usb.file_log_overflow.
 */
import { constants, existsSync, watch, type FSWatcher } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import type { AgentContext } from '../../../capability.js';
import { safeText } from '../../../../protocol/text.js';
import type { UsbDecision } from '../../decide.js';
import type { UsbDeviceInfo } from '../../observe.js';
import { RegExeRegistry, type RegValue, type WindowsRegistry } from '../../../windows/registry.js';
import { usableMedium, type UsableMedium } from '../decide.js';
import {
  driveTargets,
  MAX_BUSY,
  MOUNTED_DEVICES,
  mountedLetters,
  PendingFiles,
  relativeName,
  sameStamp,
  stampKey,
  windowsFileWrittenData,
  writtenSince,
  type FileStamp,
  type Pending,
  type WindowsHashSkipped,
} from './decide.js';

export const LOGON_UI = 'HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Authentication\\LogonUI';

/**
 * Test-only seam (the wine tier): the MountedDevices values are read from this key instead of
 * HKLM\SYSTEM\MountedDevices — wine's mount manager owns that key and rewrites it. Only an HKLM key
 * under Software\SekimoriTest is taken (an administrator's registry, like the real one).
 */
export function mountedDevicesKey(env: NodeJS.ProcessEnv = process.env): string {
  const k = env.SEKIMORI_TEST_MOUNTED_DEVICES_KEY;
  return k && /^HKLM\\Software\\SekimoriTest\\[A-Za-z0-9_-]{1,64}$/i.test(k) ? k : MOUNTED_DEVICES;
}

export interface WindowsFileLogOptions {
  registry?: WindowsRegistry;
  /** The MountedDevices values (default: mountedDevicesKey() through the registry). */
  readMountedDevices?: () => Promise<RegValue[]>;
  /** Where drive "E:" is (default "E:\\"); tests on Linux point it at a folder. */
  driveRoot?: (drive: string) => string;
  /** The console session's user (default: LogonUI's last logged-on SAM user). */
  sessionUser?: () => Promise<string | null>;
  mode(): string;
  /** How long a name must be quiet before it is looked at (default 1 s). */
  quietMs?: number;
  /** Names waiting (default 4096). */
  pendingCap?: number;
  /** Files larger than this are recorded without a hash (default 4 GiB). */
  hashCapBytes?: number;
  /** Drive roots looked at this often while a medium is usable (default 1 s); MountedDevices read when they change. */
  pollMs?: number;
}

const CHUNK = 1 << 20;
const RECORDED_CAP = 20_000;
/**
 * libuv's exclusive-open flag on Windows (UV_FS_O_EXLOCK, share mode 0; include/uv/win.h). Node
 * does not export it in fs.constants but hands the flags to libuv as they are: checked under wine
 * (EBUSY while a writer holds the file, opens once it closed).
 */
const EXLOCK: number | undefined = process.platform === 'win32' ? 0x10000000 : undefined;

interface Watched {
  drive: string;
  root: string;
  medium: UsableMedium;
  since: number;
  watcher: FSWatcher;
}

export class WindowsFileLog {
  private media = new Map<string, UsableMedium>();
  private watched = new Map<string, Watched>();
  private readonly pending: PendingFiles;
  private readonly recorded = new Map<string, FileStamp>();
  private overflow = new Map<string, { medium: UsableMedium; reason: string; count: number }>();
  private overflowTimer: NodeJS.Timeout | null = null;
  private unavailableSaid = new Set<string>();
  private pollTimer: NodeJS.Timeout | null = null;
  private workTimer: NodeJS.Timeout | null = null;
  private working: Promise<void> | null = null;
  private refreshing: Promise<void> | null = null;
  private stopped = false;
  private readonly reg: WindowsRegistry;
  private user: { at: number; name: string | null } | null = null;
  readonly stats = { recorded: 0, hashed: 0, skipped: 0, overflow: 0, watches: 0 };

  constructor(
    private readonly ctx: Pick<AgentContext, 'emit' | 'log'>,
    private readonly o: WindowsFileLogOptions,
  ) {
    this.reg = o.registry ?? new RegExeRegistry({});
    this.pending = new PendingFiles(o.pendingCap ?? 4096, o.quietMs ?? 1000);
  }

  judged(d: UsbDeviceInfo, dec: UsbDecision, monitor: boolean): void {
    const m = usableMedium(d, dec, monitor);
    const had = this.media.has(d.path);
    if (m) this.media.set(d.path, m);
    else this.media.delete(d.path);
    if (!!m !== had) this.ctx.log('info', `usb: file log: ${safeText(d.path)} ${m ? `usable (${m.access}): writes to its drive are recorded` : 'no longer usable'}`);
    if (m && !had) this.kick();
    if (!m && had) this.refreshLogged();
  }

  forget(present: ReadonlySet<string>): void {
    for (const p of [...this.media.keys()]) if (!present.has(p)) this.media.delete(p);
  }

  /**
   * Enum\USB keeps every device ever seen, so a registered stick stays "usable" while unplugged:
   * the poll is cheap — which drive roots exist (C: to Z:) — and reads MountedDevices (a reg.exe
   * run) only when that set changed, or once a minute.
   */
  private kick(): void {
    this.pollTimer ??= setInterval(() => {
      if (!this.media.size && !this.watched.size) {
        clearInterval(this.pollTimer!);
        this.pollTimer = null;
        return;
      }
      const root = this.o.driveRoot ?? ((d: string) => `${d}\\`);
      const drives = 'CDEFGHIJKLMNOPQRSTUVWXYZ'.split('').filter((l) => existsSync(root(`${l}:`))).join('');
      if (drives === this.lastDrives && Date.now() - this.lastRead < 60_000) return;
      this.lastDrives = drives;
      this.refreshLogged();
    }, this.o.pollMs ?? 1000);
    this.pollTimer.unref?.();
    this.refreshLogged();
  }

  private refreshLogged(): void {
    this.refresh().catch((e: unknown) => this.ctx.log('warn', `usb: file log: ${safeText((e as Error).message, 300)}`));
  }

  /** Maps media to drives now: watches new ones, stops watching those gone (one look at a time). */
  refresh(): Promise<void> {
    if (this.stopped || (!this.media.size && !this.watched.size)) return Promise.resolve();
    this.refreshing ??= this.refreshNow().finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  private lastDrives = '';
  private lastRead = 0;

  private async refreshNow(): Promise<void> {
    this.lastRead = Date.now();
    let values: RegValue[] = [];
    try {
      values = this.o.readMountedDevices ? await this.o.readMountedDevices() : ((await this.reg.query(mountedDevicesKey()))?.values ?? []);
    } catch (e) {
      this.ctx.log('warn', `usb: file log: MountedDevices unreadable: ${safeText((e as Error).message, 200)}`);
    }
    const root = this.o.driveRoot ?? ((d: string) => `${d}\\`);
    const { targets, unmapped } = driveTargets([...this.media.values()], mountedLetters(values), (l) => existsSync(root(`${l}:`)));
    const now = new Map(targets.map((t) => [t.drive, t]));
    for (const [drive, w] of this.watched) {
      const t = now.get(drive);
      if (t && t.medium.port === w.medium.port) continue;
      this.unwatch(w);
    }
    for (const t of targets) {
      if (this.watched.has(t.drive)) continue;
      this.watch(t.drive, root(t.drive), t.medium);
    }
    for (const m of unmapped) {
      if (this.stopped) break;
      this.unavailable(m, m.device.serialHex ? 'no mounted drive letter names this stick yet (MountedDevices)' : 'the stick has no serial number: its drive letter cannot be told apart');
    }
  }

  private watch(drive: string, root: string, medium: UsableMedium): void {
    let watcher: FSWatcher;
    try {
      watcher = watch(root, { recursive: true, persistent: false }, (event, name) => this.onChange(drive, event, name));
    } catch (e) {
      this.unavailable(medium, `cannot watch ${drive}: ${safeText((e as Error).message, 200)}`);
      return;
    }
    watcher.on('error', (e) => {
      this.ctx.log('warn', `usb: file log: watch of ${drive} failed: ${safeText(e.message, 200)}`);
      const w = this.watched.get(drive);
      if (w && w.watcher === watcher) this.unwatch(w); // looked at again at the next refresh
    });
    const w: Watched = { drive, root, medium, since: Date.now(), watcher };
    this.watched.set(drive, w);
    this.stats.watches++;
    this.unavailableSaid.delete(`${medium.port}|unmapped`);
    this.ctx.log('info', `usb: file log: watching ${safeText(medium.port)} at ${drive}`);
  }

  private unwatch(w: Watched, why: WindowsHashSkipped = 'medium_gone'): void {
    this.watched.delete(w.drive);
    try {
      w.watcher.close();
    } catch {
      // already closed
    }
    for (const p of this.pending.drain(w.drive)) if (p.modified) this.record(w, p.rel, 0, null, why);
    this.ctx.log('info', `usb: file log: stopped watching ${safeText(w.medium.port)} at ${w.drive}`);
  }

  private unavailable(m: UsableMedium, reason: string): void {
    const key = `${m.port}|unmapped`;
    if (this.unavailableSaid.has(key)) return;
    this.unavailableSaid.add(key);
    this.ctx.emit({ type: 'usb.file_log_unavailable', data: { device: m.device, reason: safeText(reason, 1024) } });
    this.ctx.log('warn', `usb: file log unavailable for ${safeText(m.port)}: ${reason}`);
  }

  private onChange(drive: string, event: string, name: string | null): void {
    const w = this.watched.get(drive);
    if (!w || this.stopped) return;
    // A null name: ReadDirectoryChangesW's buffer overflowed and changes were lost (counted).
    const rel = name === null ? null : relativeName(String(name));
    if (rel === null) return name === null ? this.countOverflow(w.medium, 'watch_overflow') : undefined;
    if (this.pending.changed(drive, rel, Date.now(), event === 'change') === 'full') return this.countOverflow(w.medium, 'queue_full');
    this.schedule();
  }

  private countOverflow(medium: UsableMedium, reason: string): void {
    this.stats.overflow++;
    const k = `${medium.port}|${reason}`;
    const o = this.overflow.get(k) ?? { medium, reason, count: 0 };
    o.count++;
    this.overflow.set(k, o);
    this.overflowTimer ??= setTimeout(() => this.flushOverflow(), 5_000);
    this.overflowTimer.unref?.();
  }

  private flushOverflow(): void {
    this.overflowTimer = null;
    for (const o of this.overflow.values()) this.ctx.emit({ type: 'usb.file_log_overflow', data: { device: o.medium.device, reason: o.reason, count: o.count } });
    this.overflow.clear();
  }

  private schedule(): void {
    if (this.working || this.stopped) return;
    const due = this.pending.nextDue(Date.now());
    if (due === null) return;
    if (this.workTimer) clearTimeout(this.workTimer);
    this.workTimer = setTimeout(() => {
      this.workTimer = null;
      this.working ??= this.work().finally(() => {
        this.working = null;
        this.schedule();
      });
    }, due + 5);
    this.workTimer.unref?.();
  }

  private async work(): Promise<void> {
    for (let p = this.pending.takeReady(Date.now()); p && !this.stopped; p = this.pending.takeReady(Date.now())) {
      const w = this.watched.get(p.drive);
      if (w) await this.look(w, p);
    }
  }

  private fullPath(w: Watched, rel: string): string {
    const sep = w.root.includes('\\') ? '\\' : '/';
    return w.root.replace(/[\\/]$/, '') + sep + rel.split('/').join(sep);
  }

  private async look(w: Watched, p: Pending): Promise<void> {
    const path = this.fullPath(w, p.rel);
    let st;
    try {
      st = await stat(path, { bigint: false });
    } catch (e) {
      // Gone before its turn: recorded when it was written to (a deletion alone is not a write).
      if (p.modified) this.record(w, p.rel, 0, null, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'removed' : 'unreadable');
      return;
    }
    if (!st.isFile()) return;
    const stamp: FileStamp = { size: st.size, ino: String(st.ino), mtimeMs: st.mtimeMs, birthtimeMs: st.birthtimeMs, ctimeMs: st.ctimeMs };
    if (!writtenSince(stamp, w.since)) return;
    const key = stampKey(w.drive, p.rel);
    if (sameStamp(this.recorded.get(key), stamp)) return;
    if (EXLOCK !== undefined) {
      try {
        const h = await open(path, constants.O_RDONLY | EXLOCK);
        await h.close();
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EBUSY' || code === 'EPERM' || code === 'EACCES') {
          if (p.busy + 1 < MAX_BUSY) return this.pending.retry(p, Date.now());
          return this.remember(key, stamp, this.record(w, p.rel, st.size, null, 'still_open'));
        }
        return this.record(w, p.rel, st.size, null, code === 'ENOENT' ? 'removed' : 'unreadable');
      }
    }
    if (st.size > (this.o.hashCapBytes ?? 4 * 2 ** 30)) return this.remember(key, stamp, this.record(w, p.rel, st.size, null, 'too_large'));
    const r = await this.hash(path, stamp);
    this.remember(key, stamp, this.record(w, p.rel, r.size, r.sha256, r.skipped));
  }

  private remember(key: string, stamp: FileStamp, _recorded: void): void {
    this.recorded.delete(key);
    this.recorded.set(key, stamp);
    if (this.recorded.size > RECORDED_CAP) this.recorded.delete(this.recorded.keys().next().value!);
  }

  private async hash(path: string, stamp: FileStamp): Promise<{ sha256: string | null; skipped: WindowsHashSkipped | null; size: number }> {
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      return { sha256: null, skipped: (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'removed' : 'unreadable', size: stamp.size };
    }
    try {
      const before = await fh.stat();
      if (String(before.ino) !== stamp.ino) return { sha256: null, skipped: 'replaced', size: before.size };
      const h = createHash('sha256');
      const buf = Buffer.allocUnsafe(CHUNK);
      let total = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, CHUNK, total);
        if (bytesRead === 0) break;
        if (this.stopped) return { sha256: null, skipped: 'agent_stopped', size: before.size };
        h.update(buf.subarray(0, bytesRead));
        total += bytesRead;
        if (total > before.size) return { sha256: null, skipped: 'changed', size: before.size };
      }
      const after = await fh.stat();
      if (total !== before.size || after.size !== before.size || after.mtimeMs !== before.mtimeMs) return { sha256: null, skipped: 'changed', size: after.size };
      this.stats.hashed++;
      return { sha256: h.digest('hex'), skipped: null, size: total };
    } catch {
      // The volume went away mid-hash (the stick was pulled) or the read failed.
      return { sha256: null, skipped: 'unreadable', size: stamp.size };
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  private async sessionUser(): Promise<string | null> {
    const now = Date.now();
    if (this.user && now - this.user.at < 60_000) return this.user.name;
    let name: string | null = null;
    try {
      if (this.o.sessionUser) name = await this.o.sessionUser();
      else {
        const k = await this.reg.query(LOGON_UI);
        const v = k?.values.find((x) => x.name.toLowerCase() === 'lastloggedonsamuser');
        name = v && v.type === 'REG_SZ' && v.data ? v.data : null;
      }
    } catch {
      name = null;
    }
    this.user = { at: now, name: name === null ? null : safeText(name, 256) };
    return this.user.name;
  }

  private recordQueue: Promise<void> = Promise.resolve();

  /** Recorded durably once per file (in the order looked at); the hash when there is one, else why not. */
  private record(w: Pick<Watched, 'medium'>, rel: string, size: number, sha256: string | null, skipped: WindowsHashSkipped | null): void {
    if (!sha256) this.stats.skipped++;
    this.stats.recorded++;
    const data = windowsFileWrittenData({ medium: w.medium, rel, size, sha256, skipped, fsType: 'windows-volume', mode: this.o.mode() });
    const user = this.user?.name ?? null;
    this.ctx.emit({ type: 'usb.file_written', ...(user ? { user } : {}), data });
    // The user is refreshed after (a registry read is a process run): the next record uses it.
    this.recordQueue = this.recordQueue.then(() => this.sessionUser().then(() => undefined));
  }

  /** Names still waiting (tests). */
  get waiting(): number {
    return this.pending.size + (this.working ? 1 : 0);
  }

  /** Looks up the session user once (before the first record names it). */
  async start(): Promise<void> {
    await this.sessionUser();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of [this.pollTimer, this.workTimer, this.overflowTimer]) if (t) clearTimeout(t);
    this.flushOverflow();
    await this.working;
    for (const w of [...this.watched.values()]) this.unwatch(w, 'agent_stopped');
  }
}
