/**
 * Linux behind the software platform seam: /proc scan, the dpkg database (installed packages and
 * which package owns which file), SIGKILL after an identity check, a root-only quarantine folder.
 */
import { statSync, watch as fsWatch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { SoftwarePolicy } from '../../../protocol/policy-software.js';
import { parseExeLink } from '../decide.js';
import { PackageDb } from '../observe/dpkg.js';
import { ancestry, ProcScanner, readArgv, readCwd, readUid } from '../observe/proc.js';
import type { InstalledProgram, InstalledSource, KillResult, PreExecControl, PreExecState, ProcessSeen, ProcessWatch, QuarantineRecord, SoftwarePlatform } from '../platform.js';
import { listQuarantine } from '../state.js';
import { ensureQuarantineDir, killIfSame, quarantineFile, restoreFile, UserNames } from './actions.js';
import { PreExecLine } from './preexec/line.js';

export interface LinuxSoftwareOptions {
  /** Where /proc is (tests point it elsewhere). */
  procRoot?: string;
}

/** What changes when dpkg changes anything: its status file (replaced by rename) and its journal folder. */
export function dpkgStamp(adminDir: string): string {
  const one = (p: string) => {
    try {
      const st = statSync(p, { bigint: true });
      return `${st.ino}:${st.size}:${st.mtimeNs}`;
    } catch {
      return '-';
    }
  };
  return `${one(join(adminDir, 'status'))} ${one(join(adminDir, 'updates'))}`;
}

/** dpkg's status as the installed-software source; owners from its lists and md5sums. */
class DpkgSource implements InstalledSource {
  private readonly db: PackageDb;
  constructor(private readonly adminDir: string, root: string, locations: readonly string[]) {
    this.db = new PackageDb(adminDir, root, locations);
  }

  read(): Promise<Map<string, InstalledProgram>> {
    return this.db.readStatus();
  }

  loadOwners(): Promise<void> {
    return this.db.load();
  }

  private inflight: Promise<void> | null = null;
  private refreshedAt = -Infinity;

  /** The owner index may be older than dpkg's database (an upgrade is unpacking new binaries). */
  stale(): boolean {
    return this.db.stale();
  }

  /**
   * Reloads the owner index when dpkg changed something: joins a reload in flight, and starts at
   * most one a second (an apt run changes the status file many times; each load reads info/).
   */
  refresh(): Promise<void> {
    if (this.inflight) return this.inflight;
    if (performance.now() - this.refreshedAt < 1000 || !this.db.stale()) return Promise.resolve();
    this.inflight = this.db
      .load()
      .catch(() => undefined) // unreadable now: the previous index stays (fail closed for what it lacks)
      .finally(() => {
        this.refreshedAt = performance.now();
        this.inflight = null;
      });
    return this.inflight;
  }

  owner(path: string, md5: string) {
    return this.db.owner(path, md5);
  }

  get ownedPaths(): number {
    return this.db.ownedPaths;
  }

  watch(onChange: () => void, log: (m: string) => void): () => void {
    let timer: NodeJS.Timeout | null = null;
    let w: FSWatcher | null = null;
    let seen = dpkgStamp(this.adminDir);
    const changed = () => {
      seen = dpkgStamp(this.adminDir);
      onChange();
    };
    try {
      // dpkg replaces `status` by renaming status-new over it: watch the folder, not the file.
      w = fsWatch(this.adminDir, (_ev, name) => {
        if (name !== 'status' && name !== 'status-new' && name !== 'updates') return;
        if (timer) clearTimeout(timer);
        timer = setTimeout(changed, 150);
      });
      w.on('error', () => undefined);
    } catch (e) {
      log(`software: cannot watch ${this.adminDir}: ${(e as Error).message}`);
    }
    // Fallback for missed inotify events (and a folder created later): two stat() calls, and the
    // status file is read again only when they differ — re-reading and re-saving it every 30 s was
    // the idle agent's largest CPU cost (≈ 45 ms per 30 s, bench/agent-footprint) and an fsync each time.
    const poll = setInterval(() => {
      if (dpkgStamp(this.adminDir) !== seen) changed();
    }, 30_000);
    poll.unref?.();
    return () => {
      w?.close();
      if (timer) clearTimeout(timer);
      clearInterval(poll);
    };
  }
}

export class LinuxSoftwarePlatform implements SoftwarePlatform {
  readonly name = 'linux';
  readonly procRoot: string;
  private readonly users = new UserNames();

  constructor(opts: LinuxSoftwareOptions = {}) {
    this.procRoot = opts.procRoot ?? '/proc';
  }

  watchedRoots(policy: SoftwarePolicy): string[] {
    return policy.locations;
  }

  /** fanotify FAN_OPEN_EXEC_PERM through the root helper (preexec/): answers before the program runs. */
  preExec(state: () => PreExecState): PreExecControl {
    return new PreExecLine(state);
  }

  watchProcesses(o: { intervalMs: number; onExec(p: ProcessSeen): void }): ProcessWatch {
    const scanner = new ProcScanner({ procRoot: this.procRoot, intervalMs: o.intervalMs, onExec: o.onExec });
    scanner.start();
    return {
      stop: () => scanner.stop(),
      get ticks() {
        return scanner.ticks;
      },
      get totalMs() {
        return scanner.totalMs;
      },
    };
  }

  parseExe(exeLink: string): { path: string; deleted: boolean } {
    return parseExeLink(exeLink);
  }

  processCommand(pid: number) {
    return { argv: readArgv(this.procRoot, pid), cwd: readCwd(this.procRoot, pid) };
  }

  processOwner(pid: number) {
    const uid = readUid(this.procRoot, pid);
    return { uid, user: this.users.name(uid) };
  }

  /** The inode behind /proc/PID/exe: what the process runs, not what the path holds now. */
  exeForHashing(pid: number): string {
    return `${this.procRoot}/${pid}/exe`;
  }

  protectedPids(): Set<number> {
    return ancestry(this.procRoot, process.pid);
  }

  kill(pid: number, expectedExe: string, identity: string | null): KillResult {
    return killIfSame(this.procRoot, pid, expectedExe, identity);
  }

  installed(policy: SoftwarePolicy): InstalledSource | null {
    const p = policy.packages;
    return p.adminDir ? new DpkgSource(p.adminDir, p.root, this.watchedRoots(policy)) : null;
  }

  userName(uid: number | null): string | null {
    return this.users.name(uid);
  }

  ensureQuarantineDir(dir: string): void {
    ensureQuarantineDir(dir);
  }

  quarantine(dir: string, path: string, sha256: string, rule: string): QuarantineRecord {
    return quarantineFile(dir, path, sha256, rule);
  }

  listQuarantine(dir: string): QuarantineRecord[] {
    return listQuarantine(dir);
  }

  restore(dir: string, id: string): QuarantineRecord {
    return restoreFile(dir, id);
  }
}
