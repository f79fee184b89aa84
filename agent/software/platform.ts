/**
 * The seam between the software capability (lifecycle, decisions, events, console sync:
 * agent/software/capability.ts) and one platform's observation and enforcement.
 * - Linux (linux/platform.ts): /proc scan, dpkg database, SIGKILL, a root-only quarantine folder.
 * - Windows (windows/): process list, installed programs from the registry's Uninstall keys,
 *   taskkill, a quarantine folder only SYSTEM and Administrators can open.
 * The capability judges with the pure functions of decide.ts and records every verdict
 * (ctx.emit, durable) before it asks the platform to kill or quarantine anything.
 */
import type { SoftwarePolicy } from '../../protocol/policy-software.js';
import type { AgentContext } from '../capability.js';
import type { PackageOwner } from './decide.js';

/** The capability's judge for one executable (SoftwareCapability.judgeExecutable has this shape). */
export interface ExecJudgement {
  verdict: { allowed: boolean; reason: string; rule: string };
  subject: { path: string; sha256: string };
  inScope: boolean;
}
export type ExecJudge = (path: string, opts: { hashPath: string; deleted: boolean }) => Promise<ExecJudgement>;

/** What a pre-exec line reads from the capability at each update. */
export interface PreExecState {
  ctx: AgentContext;
  policy: SoftwarePolicy;
  /** The capability is judging processes now (observers running, not stopped). */
  active: boolean;
  judge: ExecJudge;
  uidOf(pid: number): number | null;
}

/**
 * Enforcement before the first instruction runs, where the OS offers it (Linux: fanotify, see
 * linux/preexec/). `update()` is called whenever the capability's state may have changed; the
 * line plans from it and starts, stops or flushes what it runs.
 */
export interface PreExecControl {
  update(): Promise<void>;
}

/** A process the platform saw start (or exec something new) since its last look. */
export interface ProcessSeen {
  pid: number;
  /** The executable's path as the OS reports it (Linux: the /proc/PID/exe link, may end in " (deleted)"). */
  exeLink: string;
  /** When it was first seen (performance.now() ms): detection latency is measured from here. */
  seenAt: number;
}

/** A running process watcher; stats for /software/status and bench/software. */
export interface ProcessWatch {
  stop(): void;
  readonly ticks: number;
  readonly totalMs: number;
}

/** A process's command line, read only for interpreters (the script argument is judged too). */
export interface ProcessCommand {
  argv: string[];
  cwd: string | null;
}

/** Who runs a process, read only once it is judged unauthorized. */
export interface ProcessOwner {
  /** Numeric uid on Linux; null where the platform has none (Windows names the account in `user`). */
  uid: number | null;
  /** Account name when known (Linux: from /etc/passwd; Windows: the process owner). */
  user: string | null;
}

/** One installed program (dpkg package on Linux, Uninstall key entry on Windows). Keyed by `key` in maps. */
export interface InstalledProgram {
  name: string;
  version: string;
  /** Architecture on Linux; '' where the platform has none. */
  arch: string;
}

/** The installed-software inventory: read in full, diffed by the capability against a saved snapshot. */
export interface InstalledSource {
  /** The whole list now, keyed stably (a key that disappears is a removal). Throws when unreadable. */
  read(): Promise<Map<string, InstalledProgram>>;
  /** Calls `onChange` when the inventory may have changed (debounced, plus a slow poll for missed notices); returns stop. */
  watch(onChange: () => void, log: (m: string) => void): () => void;
  /**
   * Loads what "owned by an installed package" means for the allowlist (Linux: dpkg's lists and
   * md5sums inside the watched locations). Optional: Windows has no per-file ownership.
   */
  loadOwners?(): Promise<void>;
  owner?(path: string, md5: string): PackageOwner | null;
  readonly ownedPaths?: number;
}

export type KillResult = 'killed' | 'gone' | 'changed' | 'failed';

export interface QuarantineRecord {
  id: string;
  originalPath: string;
  sha256: string;
  size: number;
  mode: number; // permission bits to restore (Linux st_mode & 07777; Windows: 0)
  uid: number;
  gid: number;
  atimeMs: number;
  mtimeMs: number;
  quarantinedAt: string;
  rule: string;
}

export interface SoftwarePlatform {
  readonly name: string;
  /** Set when this platform controls nothing (no implementation yet): the capability logs it and stays idle. */
  readonly unavailable?: string;
  /**
   * The folders actually watched for this policy. Linux: the policy's locations. Windows: the
   * platform's own defaults (Program Files, ProgramData, the users' Downloads/Desktop/AppData/Temp)
   * where the policy names the Linux defaults; the policy's paths are POSIX paths.
   */
  watchedRoots(policy: SoftwarePolicy): string[];
  /**
   * Optional path hooks for platforms whose paths are not POSIX-shaped (Windows: drive letters,
   * case-insensitive names, 8.3 aliases). decide.ts compares POSIX-shaped keys; without these hooks
   * the capability uses paths as they are (Linux).
   * - inScope: whether a path lies in the watched roots (default: decide.ts inScope).
   * - judgedPath: the key a path is judged by ('' when no path rule may match: fail closed).
   * - compilable: the policy with its paths as such keys, for compilePolicy.
   * - looksExecutable: whether a file is worth judging (default: mode bits and magic, decide.ts).
   * - rootsChanged: true when the default roots moved (a new account's profile): observers restart.
   */
  inScope?(path: string, roots: readonly string[]): boolean;
  judgedPath?(path: string): string;
  compilable?(policy: SoftwarePolicy): SoftwarePolicy;
  looksExecutable?(path: string, mode: number, head: Uint8Array): boolean;
  rootsChanged?(): boolean;
  /** Starts looking for new processes every `intervalMs`; `onExec` gets each new one. */
  watchProcesses(o: { intervalMs: number; onExec(p: ProcessSeen): void }): ProcessWatch;
  /** Pre-exec enforcement on this platform, if it has any (absent: the process watch is the only line). */
  preExec?(state: () => PreExecState): PreExecControl;
  /** Splits the executable report into path and "the file was deleted after start". */
  parseExe(exeLink: string): { path: string; deleted: boolean };
  processCommand(pid: number): ProcessCommand;
  processOwner(pid: number): ProcessOwner;
  /**
   * A path through which the bytes the process actually runs can be hashed (Linux: /proc/PID/exe,
   * the inode even when replaced; Windows: the image path).
   */
  exeForHashing(pid: number, exePath: string): string;
  /** This agent and its ancestors: never killed, whatever they run. */
  protectedPids(): Set<number>;
  /**
   * Kills `pid` only if it still runs what was judged (pid reuse, exec since): `expectedExe` is the
   * exeLink as seen, `identity` the file identity (identityKey of the digest) or null.
   */
  kill(pid: number, expectedExe: string, identity: string | null): KillResult;
  /** The installed-software source for this policy, or null when none is watched. */
  installed(policy: SoftwarePolicy): InstalledSource | null;
  /** Account name for a file owner's uid (Linux); null where unknown. */
  userName(uid: number | null): string | null;
  ensureQuarantineDir(dir: string): void;
  quarantine(dir: string, path: string, sha256: string, rule: string): QuarantineRecord;
  listQuarantine(dir: string): QuarantineRecord[];
  restore(dir: string, id: string): QuarantineRecord;
}

/** A platform without software control: watches nothing, finds nothing, refuses every action. */
export function unavailableSoftwarePlatform(name: string, unavailable: string): SoftwarePlatform {
  const refuse = (): never => {
    throw new Error(unavailable);
  };
  return {
    name,
    unavailable,
    watchedRoots: () => [],
    watchProcesses: () => ({ stop: () => undefined, ticks: 0, totalMs: 0 }),
    parseExe: (exeLink) => ({ path: exeLink, deleted: false }),
    processCommand: () => ({ argv: [], cwd: null }),
    processOwner: () => ({ uid: null, user: null }),
    exeForHashing: (_pid, exePath) => exePath,
    protectedPids: () => new Set([process.pid]),
    kill: () => 'failed',
    installed: () => null,
    userName: () => null,
    ensureQuarantineDir: refuse,
    quarantine: refuse,
    listQuarantine: () => [],
    restore: refuse,
  };
}
