/**
 * The Windows software platform (agent/software/platform.ts): processes from
 * sekimori-proclist.exe (proclist.c: Toolhelp snapshot + QueryFullProcessImageNameW, no PowerShell
 * or WMI), installed programs from the Uninstall keys through reg.exe, kill through the helper's
 * same-handle check, and a quarantine folder only SYSTEM and Administrators may open.
 *
 * Paths: the OS reports Win32 paths (C:\…). decide.ts compares POSIX-shaped keys, so judging goes
 * through `judgedPath` / `inScope` / `compilable` below (paths.ts) — the seam additions this
 * platform needs from the capability.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { constants, copyFileSync, existsSync, linkSync, lstatSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import type { SoftwarePolicy } from '../../../protocol/policy-software.js';
import type { InstalledProgram, InstalledSource, KillResult, ProcessCommand, ProcessOwner, ProcessSeen, ProcessWatch, QuarantineRecord, SoftwarePlatform } from '../platform.js';
import type { SoftwareRule } from '../../../protocol/policy-software.js';
import { decodeRegOutput, defaultRegExe } from '../../windows/registry.js';
import { listQuarantine, QUARANTINE_ID_RE } from '../state.js';
import { inventory, loadedUserSids, uninstallRoots } from './installed.js';
import { defaultWindowsRoots, parseProfileList, parseShellFolders, PROFILE_LIST, USER_SHELL_FOLDERS, windowsWatchedRoots, type UserProfile } from './locations.js';
import { hasShortNameSegment, inWindowsScope, looksExecutableWindows, policyPathKey, ruleKey, scopeKey } from './paths.js';
import { encodeHex16, killResultOf, parseProcList, ProcWatchState, windowsAncestry, type WinProcess } from './processes.js';

export interface RunResult {
  code: number | null;
  stdout: Buffer;
}

/** A long-running helper: its output as it comes, its end, and a way to end it. */
export interface Helper {
  onData(cb: (text: string) => void): void;
  onExit(cb: () => void): void;
  stop(): void;
}

/** How the platform runs programs (replaced in tests to record the commands). */
export interface Runner {
  run(exe: string, args: string[], timeoutMs: number): Promise<RunResult>;
  runSync(exe: string, args: string[], timeoutMs: number): RunResult;
  start(exe: string, args: string[]): Helper;
}

export const execRunner: Runner = {
  run: (exe, args, timeoutMs) =>
    new Promise((resolve) => {
      execFile(exe, args, { encoding: 'buffer', timeout: timeoutMs, windowsHide: true, maxBuffer: 64 * 1024 * 1024, shell: false }, (err, stdout) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as unknown as { code: number }).code : null) : 0;
        resolve({ code, stdout: Buffer.from(stdout ?? []) });
      });
    }),
  start: (exe, args) => {
    // stdin stays open: the helper ends itself when it closes (this agent stopped or died).
    const child = spawn(exe, args, { stdio: ['pipe', 'pipe', 'ignore'], windowsHide: true, shell: false });
    child.on('error', () => undefined); // reported through onExit
    child.stdin.on('error', () => undefined);
    child.stdout.setEncoding('latin1');
    return {
      onData: (cb) => child.stdout.on('data', (c: string) => cb(c)),
      onExit: (cb) => {
        let done = false;
        const once = () => {
          if (!done) (done = true), cb();
        };
        child.once('exit', once);
        child.once('error', once);
      },
      stop: () => {
        child.stdin.end();
        child.kill();
      },
    };
  },
  runSync: (exe, args, timeoutMs) => {
    try {
      return { code: 0, stdout: execFileSync(exe, args, { timeout: timeoutMs, windowsHide: true, maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'ignore'] }) };
    } catch (e) {
      const x = e as { status?: number | null; stdout?: Buffer };
      return { code: typeof x.status === 'number' ? x.status : null, stdout: Buffer.from(x.stdout ?? []) };
    }
  },
};

export interface WindowsSoftwareOptions {
  env?: NodeJS.ProcessEnv;
  runner?: Runner;
  /** sekimori-proclist.exe (default: next to the agent's executable; SEKIMORI_PROCLIST overrides). */
  helper?: string;
  /** This agent's pid (tests). */
  pid?: number;
  /** How often the Uninstall keys are re-read (ms, default 30 s: Node has no registry change notification). */
  refreshMs?: number;
  log?: (m: string) => void;
}

const HELPER_NAME = 'sekimori-proclist.exe';

function system32(env: NodeJS.ProcessEnv, exe: string): string {
  return `${env.SystemRoot ?? env.SYSTEMROOT ?? 'C:\\Windows'}\\System32\\${exe}`;
}

/** %ProgramData%\Sekimori\agent\quarantine: where the MSI's state folder puts it. */
export function defaultQuarantineDir(env: NodeJS.ProcessEnv = process.env): string {
  return `${env.ProgramData ?? env.PROGRAMDATA ?? 'C:\\ProgramData'}\\Sekimori\\agent\\quarantine`;
}

/** icacls arguments that leave only SYSTEM and Administrators on the quarantine (SIDs: no localised names). */
export function quarantineAclArgs(dir: string): string[] {
  return [dir, '/inheritance:r', '/grant:r', '*S-1-5-18:(OI)(CI)F', '*S-1-5-32-544:(OI)(CI)F', '/q'];
}

/**
 * Rename on one volume (atomic; a running image may be renamed). Across volumes (Downloads on D:,
 * the quarantine on C:): copy without overwriting, then delete the original; when the original
 * cannot be deleted (a running image is locked) the copy is removed again and `undo` drops the
 * record, so nothing claims a quarantine that did not happen.
 */
export function moveAcrossVolumes(from: string, to: string, undo: () => void): void {
  try {
    renameSync(from, to);
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') {
      undo();
      throw e;
    }
  }
  try {
    copyFileSync(from, to, constants.COPYFILE_EXCL);
    unlinkSync(from);
  } catch (e) {
    rmSync(to, { force: true });
    undo();
    throw e;
  }
}


export class WindowsSoftwarePlatform implements SoftwarePlatform {
  readonly name = 'windows';
  private readonly env: NodeJS.ProcessEnv;
  private readonly runner: Runner;
  private readonly helper: string;
  private readonly pid: number;
  private readonly log: (m: string) => void;
  private readonly refreshMs: number;
  /** Latest complete process listing (ancestry, owners, creation times for kill). */
  private last: WinProcess[] = [];
  private profiles: UserProfile[] = [];
  private profilesKey = '';

  constructor(o: WindowsSoftwareOptions = {}) {
    this.env = o.env ?? process.env;
    this.runner = o.runner ?? execRunner;
    this.helper = o.helper ?? this.env.SEKIMORI_PROCLIST ?? join(dirname(process.execPath), HELPER_NAME);
    this.pid = o.pid ?? process.pid;
    this.log = o.log ?? (() => undefined);
    this.refreshMs = Math.max(1000, o.refreshMs ?? 30_000);
  }

  // ---- paths as decide.ts sees them (seam additions) ------------------------------------

  /**
   * An 8.3 alias (PROGRA~1) expanded by the file system (GetFinalPathNameByHandleW through
   * realpath.native); `unresolved` when that fails (the file is gone or unreadable).
   */
  longName(path: string): { path: string; unresolved: boolean } {
    if (!hasShortNameSegment(path)) return { path, unresolved: false };
    try {
      return { path: realpathSync.native(path), unresolved: false };
    } catch {
      return { path, unresolved: true };
    }
  }

  /** The key decide.ts judges with: the strict key, '' when no path rule may match (fail closed). */
  judgedPath(path: string): string {
    const l = this.longName(path);
    return l.unresolved ? '' : (ruleKey(l.path) ?? '');
  }

  inScope(path: string, roots: readonly string[]): boolean {
    const keys = roots.map((r) => scopeKey(r)).filter((k): k is string => k !== null);
    const l = this.longName(path);
    return inWindowsScope(l.path, keys, l.unresolved);
  }

  /**
   * The policy with its paths as keys, for compilePolicy: Windows-shaped rule prefixes and baseline
   * paths become keys; POSIX ones cannot match a Windows path and are dropped (block rules too:
   * they never matched anything here).
   */
  compilable(policy: SoftwarePolicy): SoftwarePolicy {
    const rules = policy.rules.flatMap((r): SoftwareRule[] => {
      if (r.kind !== 'path') return [r];
      const k = policyPathKey(r.prefix);
      return k === null ? [] : [{ ...r, prefix: k }];
    });
    const files = (policy.baseline?.files ?? []).flatMap((f) => {
      const k = policyPathKey(f.path);
      return k === null ? [] : [{ ...f, path: k }];
    });
    return { ...policy, rules, baseline: policy.baseline ? { ...policy.baseline, files } : null };
  }

  /** Windows runs by content (MZ) and by extension; the mode bits say nothing here. */
  looksExecutable(path: string, _mode: number, head: Uint8Array): boolean {
    return looksExecutableWindows(path, head);
  }

  // ---- watched roots -------------------------------------------------------------------------

  private regListing(key: string): string | null {
    const r = this.runner.runSync(defaultRegExe(this.env), ['query', key, '/s', '/reg:64'], 15_000);
    return r.code === 0 ? decodeRegOutput(r.stdout) : null;
  }

  /** Profiles from ProfileList, plus the redirected folders of the hives loaded now. */
  readProfiles(): UserProfile[] {
    const text = this.regListing(PROFILE_LIST);
    if (text === null) {
      this.log('software: ProfileList unreadable: watching machine folders and the profiles known before');
      return this.profiles;
    }
    const env = this.env as Record<string, string | undefined>;
    const list = parseProfileList(text, env).profiles;
    const hives = this.runner.runSync(defaultRegExe(this.env), ['query', 'HKU'], 15_000);
    const loaded = new Set(hives.code === 0 ? loadedUserSids(decodeRegOutput(hives.stdout)).map((s) => s.toUpperCase()) : []);
    return list.map((p) => {
      if (!loaded.has(p.sid)) return p;
      const usf = this.regListing(`HKU\\${p.sid}\\${USER_SHELL_FOLDERS}`);
      const envKey = this.runner.runSync(defaultRegExe(this.env), ['query', `HKU\\${p.sid}\\Environment`, '/v', 'TEMP'], 15_000);
      const temp = envKey.code === 0 ? /^\s+TEMP\s{4}REG_(?:EXPAND_)?SZ\s{4}(.*)$/im.exec(decodeRegOutput(envKey.stdout))?.[1] : undefined;
      return { ...p, ...(usf ? { shellFolders: parseShellFolders(usf, p.sid) } : {}), ...(temp ? { temp } : {}) };
    });
  }

  watchedRoots(policy: SoftwarePolicy): string[] {
    this.profiles = this.readProfiles();
    this.profilesKey = JSON.stringify(defaultWindowsRoots(this.env as Record<string, string>, this.profiles));
    return windowsWatchedRoots(policy, this.env as Record<string, string | undefined>, this.profiles);
  }

  /** True when a re-read of the profiles gives other default roots (a new account logged on). */
  rootsChanged(): boolean {
    const p = this.readProfiles();
    const k = JSON.stringify(defaultWindowsRoots(this.env as Record<string, string>, p));
    if (k === this.profilesKey) return false;
    this.profiles = p;
    this.profilesKey = k;
    return true;
  }

  // ---- processes -----------------------------------------------------------------------------

  /** One complete listing, or null (helper missing, failed, cut off). */
  async listProcesses(): Promise<WinProcess[] | null> {
    const r = await this.runner.run(this.helper, ['list'], 10_000);
    if (r.code !== 0) return null;
    const list = parseProcList(r.stdout.toString('latin1'));
    if (list) this.last = list;
    return list;
  }

  /**
   * One long-lived `sekimori-proclist watch` reports new and gone processes each interval; new ones
   * go to onExec once their snapshot is complete. A helper that ends or says something that does
   * not add up is restarted (after 1 s, doubling to 30 s), and its first snapshot reports every
   * running process again, as a fresh start of the agent does.
   */
  watchProcesses(o: { intervalMs: number; onExec(p: ProcessSeen): void }): ProcessWatch {
    const stats = { ticks: 0, totalMs: 0 };
    let stopped = false;
    let helper: Helper | null = null;
    let retry: NodeJS.Timeout | null = null;
    let backoff = 1000;
    const interval = String(Math.min(60_000, Math.max(50, Math.round(o.intervalMs))));
    const restart = (why: string) => {
      helper?.stop();
      helper = null;
      if (stopped || retry) return;
      this.log(`software: process watch ${why}: restarting in ${backoff} ms`);
      retry = setTimeout(() => {
        retry = null;
        launch();
      }, backoff);
      retry.unref?.();
      backoff = Math.min(30_000, backoff * 2);
    };
    const launch = () => {
      if (stopped) return;
      const state = new ProcWatchState();
      let h: Helper;
      try {
        h = this.runner.start(this.helper, ['watch', interval]);
      } catch (e) {
        restart(`could not start ${this.helper} (${(e as Error).message})`);
        return;
      }
      helper = h;
      h.onExit(() => {
        if (helper === h) restart('helper ended');
      });
      h.onData((text) => {
        if (helper !== h || stopped) return;
        const t0 = performance.now();
        for (const u of state.feed(text)) {
          if (u.kind === 'desync') {
            restart(`output did not add up (${u.reason})`);
            return;
          }
          backoff = 1000;
          this.last = [...state.running.values()];
          stats.ticks++;
          for (const p of u.fresh) {
            if (stopped) break;
            if (this.isOwnHelper(p)) continue; // the agent's own lister is not something to judge or kill
            try {
              o.onExec({ pid: p.pid, exeLink: p.image!, seenAt: t0 });
            } catch {
              // a consumer error must not stop the watch
            }
          }
        }
        stats.totalMs += performance.now() - t0;
      });
    };
    launch();
    return {
      stop() {
        stopped = true;
        if (retry) clearTimeout(retry);
        helper?.stop();
        helper = null;
      },
      get ticks() {
        return stats.ticks;
      },
      get totalMs() {
        return stats.totalMs;
      },
    };
  }

  /** A sekimori-proclist started by this agent (its child, the helper's own path). */
  isOwnHelper(p: WinProcess): boolean {
    if (p.ppid !== this.pid || p.image === null) return false;
    const a = scopeKey(p.image);
    return a !== null && a === scopeKey(this.helper);
  }

  parseExe(exeLink: string): { path: string; deleted: boolean } {
    // Windows keeps a running image's file from being deleted; a rename moves the path with it.
    return { path: exeLink, deleted: false };
  }

  /** Not read on Windows yet (interpreter scripts are not judged here): see the report. */
  processCommand(_pid: number): ProcessCommand {
    return { argv: [], cwd: null };
  }

  processOwner(pid: number): ProcessOwner {
    const p = this.last.find((x) => x.pid === pid);
    return { uid: null, user: p?.user ?? null };
  }

  exeForHashing(_pid: number, exePath: string): string {
    return exePath; // a running image cannot be overwritten on Windows: the path holds what runs
  }

  /** Before the first listing (the capability asks at start) one is taken now, so the ancestry is known. */
  protectedPids(): Set<number> {
    if (this.last.length === 0) {
      const r = this.runner.runSync(this.helper, ['list'], 10_000);
      const list = r.code === 0 ? parseProcList(r.stdout.toString('latin1')) : null;
      if (list) this.last = list;
      else this.log('software: process listing failed at start: only this agent itself is protected');
    }
    return windowsAncestry(this.pid, this.last);
  }

  /**
   * Kills through the helper, which checks creation time and image path on the very handle it
   * terminates: a pid reused since the listing is 'changed', never killed. Without the helper
   * nothing is killed ('failed', reported by the capability).
   */
  kill(pid: number, expectedExe: string, _identity: string | null): KillResult {
    const p = this.last.find((x) => x.pid === pid);
    if (!p) return 'gone';
    if (p.image !== expectedExe || p.created === '0') return 'changed';
    const r = this.runner.runSync(this.helper, ['kill', String(pid), p.created, encodeHex16(expectedExe)], 15_000);
    return killResultOf(r.code);
  }

  // ---- installed programs ----------------------------------------------------------------------

  installed(_policy: SoftwarePolicy): InstalledSource {
    return {
      read: async () => {
        const reg = defaultRegExe(this.env);
        const hives = await this.runner.run(reg, ['query', 'HKU'], 15_000);
        if (hives.code !== 0) throw new Error('reg query HKU failed');
        const roots = uninstallRoots(loadedUserSids(decodeRegOutput(hives.stdout)));
        const listings: { root: (typeof roots)[number]; text: string | null }[] = [];
        for (const root of roots) {
          const r = await this.runner.run(reg, ['query', root.key, '/s', '/reg:64'], 30_000);
          if (r.code !== 0) {
            // A missing key is normal (no 32-bit programs); an unreadable machine key is not.
            if (root.label.startsWith('HKLM') && (await this.keyExists(reg, root.key)) !== false) throw new Error(`reg query ${root.key} failed`);
            listings.push({ root, text: null });
            continue;
          }
          listings.push({ root, text: decodeRegOutput(r.stdout) });
        }
        return inventory(listings) as Map<string, InstalledProgram>;
      },
      // No change notification for the registry from Node: poll (the capability debounces).
      watch: (onChange) => {
        const t = setInterval(onChange, this.refreshMs);
        t.unref?.();
        return () => clearInterval(t);
      },
    };
  }

  private async keyExists(reg: string, key: string): Promise<boolean | null> {
    const i = key.lastIndexOf('\\');
    const r = await this.runner.run(reg, ['query', key.slice(0, i), '/reg:64'], 15_000);
    if (r.code !== 0) return null;
    const name = key.slice(i + 1).toUpperCase();
    return decodeRegOutput(r.stdout)
      .split(/\r?\n/)
      .some((l) => /^HKEY_/i.test(l) && l.trimEnd().toUpperCase().endsWith('\\' + name));
  }

  userName(_uid: number | null): string | null {
    return null; // Windows reports the owner through processOwner().user
  }

  // ---- quarantine ------------------------------------------------------------------------------

  /** Creates the folder and leaves only SYSTEM and Administrators on it; throws when it cannot (fail closed). */
  ensureQuarantineDir(dir: string): void {
    mkdirSync(dir, { recursive: true });
    if (!lstatSync(dir).isDirectory()) throw new Error(`quarantine ${dir} is not a directory`);
    const r = this.runner.runSync(system32(this.env, 'icacls.exe'), quarantineAclArgs(dir), 30_000);
    if (r.code !== 0) throw new Error(`icacls on ${dir} failed (exit ${r.code}): not quarantining into a folder others may open`);
  }

  /**
   * Record first, then move (a rename keeps the file's streams, e.g. its Zone.Identifier, for a
   * restore). A renamed file keeps its own ACL on NTFS, so it is reset to inherit the quarantine's.
   */
  quarantine(dir: string, path: string, sha256: string, rule: string): QuarantineRecord {
    this.ensureQuarantineDir(dir);
    const s = lstatSync(path);
    if (!s.isFile()) throw new Error('not a regular file');
    const id = randomUUID();
    const rec: QuarantineRecord = {
      id,
      originalPath: path,
      sha256,
      size: s.size,
      mode: 0,
      uid: 0,
      gid: 0,
      atimeMs: s.atimeMs,
      mtimeMs: s.mtimeMs,
      quarantinedAt: new Date().toISOString(),
      rule,
    };
    writeFileSync(join(dir, `${id}.json`), JSON.stringify(rec, null, 2));
    const dest = join(dir, `${id}.bin`);
    moveAcrossVolumes(path, dest, () => unlinkSync(join(dir, `${id}.json`)));
    const acl = this.runner.runSync(system32(this.env, 'icacls.exe'), [dest, '/reset', '/q'], 30_000);
    if (acl.code !== 0) this.log(`software: icacls /reset on ${dest} failed (exit ${acl.code})`);
    return rec;
  }

  listQuarantine(dir: string): QuarantineRecord[] {
    return listQuarantine(dir);
  }

  /** Puts the file back at its path; never overwrites (rename would: a hard link refuses). */
  restore(dir: string, id: string): QuarantineRecord {
    if (!QUARANTINE_ID_RE.test(id)) throw new Error('bad quarantine id');
    const rec = JSON.parse(readFileSync(join(dir, `${id}.json`), 'utf8')) as QuarantineRecord;
    if (typeof rec.originalPath !== 'string' || !isAbsolute(rec.originalPath)) throw new Error('the record has no absolute original path');
    const src = join(dir, `${id}.bin`);
    if (existsSync(rec.originalPath)) throw new Error('a file exists at the original path');
    mkdirSync(dirname(rec.originalPath), { recursive: true });
    try {
      linkSync(src, rec.originalPath);
      unlinkSync(src);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new Error('a file exists at the original path');
      moveAcrossVolumes(src, rec.originalPath, () => undefined); // another volume or no hard links: checked just above
    }
    // Back under the folder's own permissions (the quarantine's ACL must not follow it).
    this.runner.runSync(system32(this.env, 'icacls.exe'), [rec.originalPath, '/reset', '/q'], 30_000);
    unlinkSync(join(dir, `${id}.json`));
    return rec;
  }
}

export function createWindowsSoftwarePlatform(o: WindowsSoftwareOptions = {}): WindowsSoftwarePlatform {
  return new WindowsSoftwarePlatform(o);
}
