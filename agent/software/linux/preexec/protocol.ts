/**
 * The pre-exec helper's line protocol and the agent's pure decisions about it (no I/O, no clock:
 * `now` is passed in). The helper is sekimori-exec-guard.c beside this file; its header documents
 * the same lines. File identities travel as decimal strings: an inode or device number may exceed
 * 2^53, where a JavaScript number would silently round and match the wrong file.
 */
import type { PreExecPolicy } from '../../../../protocol/policy-software.js';
import { isCleanAbsolutePath } from '../../../../protocol/policy-software.js';

/** A file's identity as the helper's cache keys it: device, inode, change time (s + ns). */
export interface FileKey {
  dev: string;
  ino: string;
  ctimeSec: string;
  ctimeNsec: string;
}

export type FallbackReason = 'timeout' | 'full' | 'orphan' | 'error' | 'stop';

export type HelperLine =
  | { kind: 'ready'; pid: number; marks: number }
  | { kind: 'error'; stage: 'args' | 'init' | 'mark'; errno: number; text: string }
  | { kind: 'question'; id: string; pid: number; fd: number; key: FileKey }
  | { kind: 'fallback'; reason: FallbackReason; allow: boolean; id: string }
  | { kind: 'cached_deny'; pid: number; key: FileKey }
  | { kind: 'stats'; hits: number; misses: number; allowed: number; denied: number; fallbacks: number; dropped: number; cached: number };

const U64 = '(0|[1-9][0-9]{0,19})';
const I64 = '(-?(?:0|[1-9][0-9]{0,18}))';
const PID = '([1-9][0-9]{0,9})';
const NSEC = '(0|[1-9][0-9]{0,8})';
const KEY = `${U64} ${U64} ${I64} ${NSEC}`;
const RE = {
  ready: new RegExp(`^READY ${PID} ([0-9]{1,3})$`),
  error: /^ERR (args|init|mark) ([0-9]{1,5}) ?([\x20-\x7e]{0,400})$/,
  question: new RegExp(`^Q ${U64} ${PID} ([0-9]{1,9}) ${KEY}$`),
  fallback: new RegExp(`^F (timeout|full|orphan|error|stop) ([ad]) ${U64}$`),
  cachedDeny: new RegExp(`^D ${PID} ${KEY}$`),
  stats: new RegExp(`^S ${U64} ${U64} ${U64} ${U64} ${U64} ${U64} ${U64}$`),
};
const U64_MAX = 18446744073709551615n;

function u64ok(s: string): boolean {
  return BigInt(s) <= U64_MAX;
}
function key(m: RegExpMatchArray, at: number): FileKey | null {
  const k = { dev: m[at]!, ino: m[at + 1]!, ctimeSec: m[at + 2]!, ctimeNsec: m[at + 3]! };
  return u64ok(k.dev) && u64ok(k.ino) ? k : null;
}
function pid(s: string): number | null {
  const n = Number(s);
  return n <= 4_194_304 ? n : null; // PID_MAX_LIMIT
}
function count(s: string): number {
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : Number.MAX_SAFE_INTEGER;
}

/**
 * One line from the helper, or null when it is not a line of the protocol (a broken or hostile
 * helper must not make the agent answer something it did not ask).
 */
export function parseHelperLine(line: string): HelperLine | null {
  if (typeof line !== 'string' || line.length > 512) return null;
  let m: RegExpMatchArray | null;
  if ((m = line.match(RE.question))) {
    const p = pid(m[2]!);
    const k = key(m, 4);
    const fd = Number(m[3]);
    return p !== null && k && u64ok(m[1]!) ? { kind: 'question', id: m[1]!, pid: p, fd, key: k } : null;
  }
  if ((m = line.match(RE.fallback))) return u64ok(m[3]!) ? { kind: 'fallback', reason: m[1] as FallbackReason, allow: m[2] === 'a', id: m[3]! } : null;
  if ((m = line.match(RE.cachedDeny))) {
    const p = pid(m[1]!);
    const k = key(m, 2);
    return p !== null && k ? { kind: 'cached_deny', pid: p, key: k } : null;
  }
  if ((m = line.match(RE.ready))) {
    const p = pid(m[1]!);
    return p !== null ? { kind: 'ready', pid: p, marks: Number(m[2]) } : null;
  }
  if ((m = line.match(RE.error))) return { kind: 'error', stage: m[1] as 'args' | 'init' | 'mark', errno: Number(m[2]), text: m[3] ?? '' };
  if ((m = line.match(RE.stats))) {
    const [hits, misses, allowed, denied, fallbacks, dropped, cached] = m.slice(1, 8).map(count) as [number, number, number, number, number, number, number];
    return { kind: 'stats', hits, misses, allowed, denied, fallbacks, dropped, cached };
  }
  return null;
}

function keyText(k: FileKey): string {
  return `${k.dev} ${k.ino} ${k.ctimeSec} ${k.ctimeNsec}`;
}

/** The answer to question `id` about file `k`; the helper caches it under `k`. */
export function answerLine(id: string, k: FileKey, allow: boolean): string {
  return `A ${id} ${keyText(k)} ${allow ? 'a' : 'd'}\n`;
}
/** A cache entry without a question (the agent already knows this file's verdict). */
export function cacheLine(k: FileKey, allow: boolean): string {
  return `C ${keyText(k)} ${allow ? 'a' : 'd'}\n`;
}
export const FLUSH_LINE = 'X\n';
/** Mark one more mount; the path travels as hex (a mount point may hold spaces or newlines). */
export function markLine(path: string): string {
  return `M ${Buffer.from(path, 'utf8').toString('hex')}\n`;
}
export const STATS_LINE = 'S\n';

export function sameKey(a: FileKey, b: FileKey): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.ctimeSec === b.ctimeSec && a.ctimeNsec === b.ctimeNsec;
}

/** The identity of a file from a bigint stat (fs.statSync(p, { bigint: true })). */
export function keyOfStat(st: { dev: bigint; ino: bigint; ctimeNs: bigint }): FileKey {
  const sec = st.ctimeNs / 1_000_000_000n;
  let nsec = st.ctimeNs % 1_000_000_000n;
  // Before 1970 BigInt division truncates toward zero; the kernel's timespec has 0 ≤ nsec < 1e9.
  const adj = nsec < 0n ? -1n : 0n;
  if (nsec < 0n) nsec += 1_000_000_000n;
  return { dev: String(st.dev), ino: String(st.ino), ctimeSec: String(sec + adj), ctimeNsec: String(nsec) };
}

/**
 * What the helper answers for a verdict: deny only in enforce mode on a terminal not enrolled
 * monitor-only. Monitor mode never denies anything.
 */
export function helperAllows(allowed: boolean, mode: 'enforce' | 'monitor', monitorOnly: boolean): boolean {
  return allowed || mode !== 'enforce' || monitorOnly;
}

export interface PlanInput {
  platform: string; // process.platform
  isRoot: boolean;
  mode: 'enforce' | 'monitor';
  monitorOnly: boolean;
  /** The capability judges processes at all (it has something that trusts something). */
  active: boolean;
  preExec: PreExecPolicy;
  locations: readonly string[];
  /** The helper executable, or null when it is not installed. */
  helper: string | null;
}

export type Plan =
  | { run: true; args: string[]; marks: string[] }
  | { run: false; why: 'disabled' | 'monitor' | 'inactive' | 'not_linux' | 'not_root' | 'not_installed' | 'no_marks'; message: string };

const WHY_TEXT: Record<Exclude<Plan, { run: true }>['why'], string> = {
  disabled: '事前実行制御はポリシーで無効です / pre-exec control is disabled by policy',
  monitor: '監視モードでは実行を拒否しません(/proc の走査が報告します) / monitor mode never denies (the /proc scan reports)',
  inactive: '許可の根拠がないため判定していません / nothing is judged (no package database, baseline or rule)',
  not_linux: 'fanotify は Linux のみです / fanotify exists on Linux only',
  not_root: 'fanotify の許可イベントには root 権限が必要です / fanotify permission events need root',
  not_installed: '事前実行ヘルパーがインストールされていません / the pre-exec helper is not installed',
  no_marks: '監視対象のマウントがありません / no mount to watch',
};

/** The mounts to mark: the policy's own list, else the watched locations (each marks the mount it lies on). */
export function marksFor(p: PreExecPolicy, locations: readonly string[]): string[] {
  const list = p.marks.length ? p.marks : locations;
  return [...new Set(list.filter((m) => isCleanAbsolutePath(m)))].slice(0, 64);
}

/** Whether to run the helper, and with which arguments; otherwise why not (Japanese / English). */
export function planPreExec(i: PlanInput): Plan {
  const no = (why: Exclude<Plan, { run: true }>['why']): Plan => ({ run: false, why, message: WHY_TEXT[why] });
  if (!i.preExec.enabled) return no('disabled');
  if (i.mode !== 'enforce' || i.monitorOnly) return no('monitor');
  if (!i.active) return no('inactive');
  if (i.platform !== 'linux') return no('not_linux');
  if (!i.isRoot) return no('not_root');
  if (!i.helper) return no('not_installed');
  const marks = marksFor(i.preExec, i.locations);
  if (!marks.length) return no('no_marks');
  const args = ['--timeout-ms', String(i.preExec.timeoutMs), '--fallback', i.preExec.fallback, '--orphan-grace-ms', String(ORPHAN_GRACE_MS)];
  for (const m of marks) args.push('--mark', m);
  return { run: true, args, marks };
}

/** How long a helper whose agent died keeps serving its cache before it exits (systemd restarts the agent meanwhile). */
export const ORPHAN_GRACE_MS = 30_000;

/** Restart delay after the helper's `restarts`-th unexpected exit: 1 s doubling, at most 60 s. */
export function restartDelayMs(restarts: number): number {
  if (!Number.isFinite(restarts) || restarts <= 0) return 1000;
  return Math.min(60_000, 1000 * 2 ** Math.min(restarts, 6));
}

/**
 * Fallbacks are counted, not recorded one per exec: the first in a window is recorded at once,
 * the rest of the window as one summary when the window ends (a flood makes one event a minute).
 */
export class FallbackCounter {
  private windowStart = -Infinity;
  private pending = 0;
  private reasons: Partial<Record<FallbackReason, number>> = {};
  total = 0;
  constructor(private readonly windowMs = 60_000) {}

  /** Returns the counts to record now, or null when this one waits for the window's summary. */
  add(reason: FallbackReason, now: number): { count: number; reasons: Partial<Record<FallbackReason, number>> } | null {
    this.total++;
    if (now - this.windowStart >= this.windowMs && this.pending === 0) {
      this.windowStart = now;
      return { count: 1, reasons: { [reason]: 1 } };
    }
    this.pending++;
    this.reasons[reason] = (this.reasons[reason] ?? 0) + 1;
    return null;
  }

  /** Called periodically: the window's summary once it is over (null when nothing waits). */
  flush(now: number, force = false): { count: number; reasons: Partial<Record<FallbackReason, number>> } | null {
    if (this.pending === 0 || (!force && now - this.windowStart < this.windowMs)) return null;
    const out = { count: this.pending, reasons: this.reasons };
    this.pending = 0;
    this.reasons = {};
    this.windowStart = now;
    return out;
  }
}

/** mountinfo escapes space, tab, newline and backslash in paths as \\ooo (octal). */
function unescapeMount(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Mount points at or below the given paths, from /proc/PID/mountinfo: a mount mark covers one
 * mount only, so a tmpfs mounted below a watched place (/run/user/UID at login) needs its own.
 * At most `max`; what cannot be a path is skipped.
 */
export function mountsBelow(mountinfo: string, roots: readonly string[], max = 64): string[] {
  const out = new Set<string>();
  const clean = roots.filter((r) => isCleanAbsolutePath(r));
  for (const line of mountinfo.split('\n').slice(0, 100_000)) {
    const f = line.split(' ');
    if (f.length < 10) continue;
    const mp = unescapeMount(f[4]!);
    if (!isCleanAbsolutePath(mp) || mp.length > 1000) continue;
    if (clean.some((r) => r !== mp && (r === '/' || mp.startsWith(r + '/')))) out.add(mp);
    if (out.size >= max) break;
  }
  return [...out];
}
