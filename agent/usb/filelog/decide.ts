/**
 * 持ち出しログ, the pure part (no I/O, no clock): which media are usable and so watched, where
 * they are mounted, what a written file's path is relative to the medium, the bounded queue of
 * files waiting to be hashed, the helper's lines, and the event data. The platform part (mount
 * table, fanotify helper, hashing) is in linux/.
 *
 * Paths are bytes (Buffer): a file name on a stick is whatever bytes the writer chose (invalid
 * UTF-8, newlines, bidi overrides); they become display text only in the event, with a hash of
 * the raw bytes beside it so two names that display alike are still told apart.
 */
import { createHash } from 'node:crypto';
import type { UsbFileWrittenData, UsbMediumData } from '../../../protocol/event-data.js';
import { safeText } from '../../../protocol/text.js';
import type { UsbDecision } from '../decide.js';
import type { UsbDeviceInfo } from '../observe.js';

/** How the medium is usable: registered (or any allowing rule), through an exception, or monitor mode (nothing blocked). */
export type MediumAccess = 'allow' | 'exception' | 'monitor';

export interface UsableMedium {
  port: string;
  access: MediumAccess;
  exceptionId: string | null;
  device: UsbMediumData;
}

const MASS_STORAGE = '08';

/**
 * Whether files can be written to this device's media: a mass-storage interface is allowed and
 * the device is not read-only. In monitor mode nothing is blocked or made read-only, so every
 * device offering mass storage is usable.
 */
export function usableMedium(d: UsbDeviceInfo, dec: UsbDecision, monitor: boolean): UsableMedium | null {
  const storage = dec.interfaces.filter((i) => i.classes.some((c) => c.slice(0, 2).toLowerCase() === MASS_STORAGE)); // "cc/ss/pp" per alt setting
  if (!storage.length && !d.interfaces.some((i) => (i.class & 0xff) === 8)) return null;
  let access: MediumAccess;
  if (monitor) access = 'monitor';
  else if (dec.readonly || !storage.some((i) => i.allow)) return null;
  else access = dec.exceptionId ? 'exception' : 'allow';
  return { port: d.path, access, exceptionId: dec.exceptionId, device: mediumData(d, access, dec.exceptionId) };
}

export function mediumData(d: UsbDeviceInfo, access: MediumAccess, exceptionId: string | null): UsbMediumData {
  const label = [safeText(d.manufacturer), safeText(d.product)].filter(Boolean).join(' ');
  return {
    port: safeText(d.path, 1024),
    vendorId: d.vendorId,
    productId: d.productId,
    serialHex: d.serial?.toString('hex') ?? null,
    descriptorHash: d.descriptorHash ?? '',
    label: safeText(label, 512),
    serial: safeText(d.serial, 128),
    access,
    exceptionId,
  };
}

// ---- mounts ------------------------------------------------------------------------------------

export interface MountEntry {
  mountId: number;
  /** "major:minor" of the mounted device. */
  majMin: string;
  /** The directory of the filesystem that is mounted (bind mounts: not '/'). */
  root: Buffer;
  mountPoint: Buffer;
  fsType: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo octal. */
function unescapeMount(field: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < field.length; i++) {
    if (field[i] === '\\' && /^[0-7]{3}$/.test(field.slice(i + 1, i + 4))) {
      out.push(parseInt(field.slice(i + 1, i + 4), 8) & 0xff);
      i += 3;
    } else out.push(field.charCodeAt(i) & 0xff);
  }
  return Buffer.from(out);
}

/** /proc/PID/mountinfo (bytes, read as latin1 so every byte survives). Malformed lines are skipped. */
export function parseMountinfo(text: string, maxEntries = 100_000): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (out.length >= maxEntries) break;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 10 || sep < 0 || sep + 1 >= f.length) continue;
    const mountId = Number(f[0]);
    if (!Number.isSafeInteger(mountId) || !/^\d{1,10}:\d{1,10}$/.test(f[2]!)) continue;
    out.push({ mountId, majMin: f[2]!, root: unescapeMount(f[3]!), mountPoint: unescapeMount(f[4]!), fsType: safeText(f[sep + 1], 64) });
  }
  return out;
}

/** st_dev as glibc encodes it (gnu_dev_makedev), in decimal: what stat() and the helper report. */
export function devNumber(majMin: string): string | null {
  const m = /^(\d{1,10}):(\d{1,10})$/.exec(majMin);
  if (!m) return null;
  const major = BigInt(m[1]!);
  const minor = BigInt(m[2]!);
  if (major > 0xffffffffn || minor > 0xffffffffn) return null;
  const dev = ((major & 0xfffff000n) << 32n) | ((major & 0xfffn) << 8n) | ((minor & 0xffffff00n) << 12n) | (minor & 0xffn);
  return dev.toString();
}

/** A USB device's block devices as "major:minor" (the disk and its partitions). */
export interface UsbBlocks {
  port: string;
  majMins: string[];
}

/** One mounted filesystem of a usable medium, watched as a whole. */
export interface WatchTarget {
  /** st_dev in decimal: the key the helper marks and reports by. */
  dev: string;
  majMin: string;
  fsType: string;
  /** Where it is mounted (each with the filesystem directory mounted there). */
  mounts: { mountPoint: Buffer; root: Buffer }[];
  medium: UsableMedium;
}

/**
 * What to watch: every mounted filesystem on a block device under a usable medium. A device that
 * is not a usable medium's is never watched (a medium unplugged and another put in its port is
 * judged anew before it is watched).
 */
export function watchTargets(media: readonly UsableMedium[], blocks: readonly UsbBlocks[], mounts: readonly MountEntry[]): WatchTarget[] {
  const byMajMin = new Map<string, UsableMedium>();
  for (const b of blocks) {
    const m = media.find((x) => x.port === b.port);
    if (m) for (const mm of b.majMins) byMajMin.set(mm, m);
  }
  const out = new Map<string, WatchTarget>();
  for (const e of mounts) {
    const medium = byMajMin.get(e.majMin);
    const dev = medium ? devNumber(e.majMin) : null;
    if (!medium || !dev) continue;
    const t = out.get(dev) ?? { dev, majMin: e.majMin, fsType: e.fsType, mounts: [], medium };
    t.mounts.push({ mountPoint: e.mountPoint, root: e.root });
    out.set(dev, t);
  }
  return [...out.values()];
}

/**
 * A written file's path relative to the medium's root (bytes, no leading '/'): the longest mount
 * point that contains it, plus the directory mounted there. Null when no mount of the target
 * contains it (then it is not on this medium as far as we know).
 */
export function relativePath(t: Pick<WatchTarget, 'mounts'>, abs: Buffer): Buffer | null {
  let best: { mountPoint: Buffer; root: Buffer } | null = null;
  for (const m of t.mounts) {
    const mp = m.mountPoint.length > 1 && m.mountPoint[m.mountPoint.length - 1] === 0x2f ? m.mountPoint.subarray(0, -1) : m.mountPoint;
    const inside = mp.length === 1 && mp[0] === 0x2f ? abs[0] === 0x2f : abs.length > mp.length && abs.subarray(0, mp.length).equals(mp) && abs[mp.length] === 0x2f;
    if (inside && (!best || mp.length > best.mountPoint.length)) best = { mountPoint: mp, root: m.root };
  }
  if (!best) return null;
  const rest = best.mountPoint.length === 1 ? abs.subarray(1) : abs.subarray(best.mountPoint.length + 1);
  const root = best.root.length === 1 && best.root[0] === 0x2f ? Buffer.alloc(0) : Buffer.concat([best.root.subarray(best.root[0] === 0x2f ? 1 : 0), Buffer.from('/')]);
  return Buffer.concat([root, rest]);
}

/** Bidi controls would let "gpj.exe" display as "exe.jpg": shown as \u{…} like safeText shows C0/C1 controls. */
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** A path for people to read: valid UTF-8, controls and bidi overrides escaped, bounded (4096 characters). */
export function displayPath(raw: Buffer): string {
  return safeText(raw, 4096).replace(BIDI, (c) => `\\u{${c.charCodeAt(0).toString(16)}}`);
}

export const pathHash = (raw: Buffer): string => createHash('sha256').update(raw).digest('hex');

// ---- the helper's lines ------------------------------------------------------------------------

export type FileLogLine =
  | { kind: 'ready'; pid: number }
  | { kind: 'marked'; dev: string; how: 'fs' | 'mount' }
  | { kind: 'error'; stage: string; errno: number; dev: string }
  | { kind: 'written'; pid: number; uid: number | null; dev: string; ino: string; size: number; path: Buffer }
  | { kind: 'lost'; count: number }
  | { kind: 'mounts_changed' };

const U64 = '(0|[1-9][0-9]{0,19})';
const LINES: [RegExp, (m: RegExpExecArray) => FileLogLine | null][] = [
  [/^READY ([1-9][0-9]{0,9})$/, (m) => ({ kind: 'ready', pid: Number(m[1]) })],
  [new RegExp(`^MARKED ${U64} (fs|mount)$`), (m) => ({ kind: 'marked', dev: m[1]!, how: m[2] as 'fs' | 'mount' })],
  [new RegExp(`^ERR ([a-z]{1,16}) ([0-9]{1,5}) ${U64}$`), (m) => ({ kind: 'error', stage: m[1]!, errno: Number(m[2]), dev: m[3]! })],
  [
    new RegExp(`^W ([0-9]{1,10}) (-1|[0-9]{1,10}) ${U64} ${U64} ${U64} ((?:[0-9a-f]{2}){1,4096})$`),
    (m) => {
      const size = Number(m[5]);
      // A size past 2^53 cannot be stated exactly: no such file exists on a stick, so the line is refused.
      if (!Number.isSafeInteger(size)) return null;
      const uid = Number(m[2]);
      return { kind: 'written', pid: Number(m[1]), uid: uid < 0 ? null : uid, dev: m[3]!, ino: m[4]!, size, path: Buffer.from(m[6]!, 'hex') };
    },
  ],
  [new RegExp(`^O ${U64}$`), (m) => ({ kind: 'lost', count: Math.min(Number(m[1]), Number.MAX_SAFE_INTEGER) })],
  [/^MNT$/, () => ({ kind: 'mounts_changed' })],
];

/** One line from the helper; null for anything else (never trusted beyond its pattern). */
export function parseFileLogLine(line: string): FileLogLine | null {
  if (line.length > 8400) return null;
  for (const [re, make] of LINES) {
    const m = re.exec(line);
    if (m) return make(m);
  }
  return null;
}

/** Agent → helper: watch (M) or stop watching (U) the filesystem at `path`, only if its st_dev is `dev`. */
export function markLine(add: boolean, dev: string, path: Buffer): string | null {
  if (!/^(0|[1-9][0-9]{0,19})$/.test(dev) || path.length === 0 || path.length > 4096 || path[0] !== 0x2f || path.includes(0)) return null;
  return `${add ? 'M' : 'U'} ${dev} ${path.toString('hex')}\n`;
}

// ---- the queue of written files ----------------------------------------------------------------

export interface WrittenFile {
  dev: string;
  ino: string;
  /** The path as the helper's namespace names it (absolute, bytes). */
  abs: Buffer;
  size: number;
  pid: number;
  uid: number | null;
  /** " (deleted)" was on the path: removed before the helper saw it. */
  deleted: boolean;
}

/**
 * Files waiting to be hashed, one at a time, at most `cap` of them. A file closed again while it
 * waits is one entry (its latest size and writer): it is hashed once, as it is then. Past the cap
 * the file is not queued: the caller records it at once without a hash (every file is recorded).
 */
export class WriteQueue {
  private readonly items = new Map<string, WrittenFile>();
  constructor(readonly cap: number) {}

  get size(): number {
    return this.items.size;
  }

  push(f: WrittenFile): 'queued' | 'merged' | 'full' {
    const key = `${f.dev}:${f.ino}:${f.abs.toString('hex')}`;
    if (this.items.has(key)) {
      this.items.set(key, f); // keeps its place in the queue
      return 'merged';
    }
    if (this.items.size >= this.cap) return 'full';
    this.items.set(key, f);
    return 'queued';
  }

  shift(): WrittenFile | null {
    const first = this.items.entries().next();
    if (first.done) return null;
    this.items.delete(first.value[0]);
    return first.value[1];
  }

  /** Entries of one filesystem (its medium went away: recorded without hash). */
  drain(dev: string): WrittenFile[] {
    const out: WrittenFile[] = [];
    for (const [k, f] of this.items) {
      if (f.dev !== dev) continue;
      this.items.delete(k);
      out.push(f);
    }
    return out;
  }
}

/** Why a file has no hash: too large for the cap, gone before hashing, replaced, changed while hashed, unreadable, the queue was full, its medium was removed first, or the agent stopped. */
export type HashSkipped = 'too_large' | 'removed' | 'replaced' | 'changed' | 'unreadable' | 'queue_full' | 'medium_gone' | 'agent_stopped';

export function hashPlan(size: number, capBytes: number): 'hash' | 'too_large' {
  return size > capBytes ? 'too_large' : 'hash';
}

export interface FileWrittenInput {
  target: WatchTarget;
  file: WrittenFile;
  /** Relative path bytes (relativePath); null falls back to the absolute path. */
  rel: Buffer | null;
  sha256: string | null;
  hashSkipped: HashSkipped | null;
  userSource: 'writer' | 'session';
  mode: string;
}

export function fileWrittenData(i: FileWrittenInput): UsbFileWrittenData {
  const raw = i.rel ?? i.file.abs;
  const sha256 = i.sha256 && /^[0-9a-f]{64}$/.test(i.sha256) ? i.sha256 : null;
  return {
    device: i.target.medium.device,
    path: displayPath(raw),
    pathHash: pathHash(raw),
    size: i.file.size,
    sha256,
    hashSkipped: sha256 ? null : (i.hashSkipped ?? 'unreadable'),
    uid: i.file.uid,
    userSource: i.userSource,
    pid: i.file.pid > 0 ? i.file.pid : null,
    fsType: safeText(i.target.fsType, 64),
    mode: i.mode,
  };
}

// ---- users -------------------------------------------------------------------------------------

/** uid → name from /etc/passwd text; malformed lines skipped, the first name of a uid wins. */
export function parsePasswd(text: string, maxEntries = 100_000): Map<number, string> {
  const out = new Map<number, string>();
  for (const line of text.split('\n')) {
    if (out.size >= maxEntries) break;
    const f = line.split(':');
    if (f.length < 4 || !f[0]) continue;
    const uid = Number(f[2]);
    if (!/^\d{1,10}$/.test(f[2]!) || out.has(uid)) continue;
    out.set(uid, safeText(f[0], 256));
  }
  return out;
}
