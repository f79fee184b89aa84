/**
 * 持ち出しログ on Windows, the pure part (no I/O, no clock: `now` is passed in). The platform part
 * (filelog.ts) reads HKLM\SYSTEM\MountedDevices, watches the drive root with fs.watch (libuv:
 * ReadDirectoryChangesW with bWatchSubtree) and hashes files once their writer has closed them.
 *
 * Which drive letter is which USB stick (a heuristic, said so in README): a mounted volume's
 * MountedDevices value `\DosDevices\X:` holds (UTF-16LE) the volume's device interface path,
 * `\??\STORAGE#Volume#_??_USBSTOR#Disk&Ven_…&Prod_…&Rev_…#<instance>#{…}` — the USBSTOR instance is
 * the USB serial number plus `&<LUN>` when the stick has a usable serial (the same serial the USB
 * instance id under Enum\USB is). So a usable medium maps to the letters whose USBSTOR instance
 * serial equals its serial. Not exact: a serial-less stick (Windows makes up an id containing '&')
 * cannot be mapped, two sticks with one serial map alike, and UASP sticks (SCSI# instead of
 * USBSTOR#) are not mapped. Entries stay for letters no longer mounted: the caller checks that
 * the drive root exists.
 */
import { createHash } from 'node:crypto';
import type { UsbFileWrittenData } from '../../../../protocol/event-data.js';
import { displayPath, pathHash, type UsableMedium } from '../decide.js';

export const MOUNTED_DEVICES = 'HKLM\\SYSTEM\\MountedDevices';

/** One `\DosDevices\X:` value: the letter and the USB serial its volume names (null: not a USBSTOR volume). */
export interface MountedLetter {
  letter: string;
  serial: string | null;
  /** The decoded device path (display/evidence only). */
  target: string;
}

/** REG_BINARY hex → the UTF-16LE text in it; null when it is not text (a fixed disk's signature+offset is 12 bytes of binary). */
export function decodeMountedDevice(hex: string): string | null {
  if (!/^(?:[0-9a-fA-F]{4}){1,1024}$/.test(hex)) return null;
  const text = Buffer.from(hex, 'hex').toString('utf16le');
  // A device path is printable ASCII ("\??\STORAGE#…"); anything else is not one.
  return /^[\x20-\x7e]+$/.test(text) ? text : null;
}

const USBSTOR = /(?:^|[#\\_])USBSTOR#Disk&[^#]{1,400}#([^#]{1,260})#\{[0-9a-fA-F-]{36}\}$/i;

/** The USB serial of a USBSTOR volume path: the instance without its "&LUN" suffix; null when Windows made the id up (it then holds another '&'). */
export function serialOfVolumePath(path: string): string | null {
  const m = USBSTOR.exec(path);
  if (!m) return null;
  const inst = /^(.+)&[0-9a-fA-F]{1,2}$/.exec(m[1]!);
  const serial = inst ? inst[1]! : null;
  if (!serial || serial.includes('&') || serial.length > 126) return null;
  return serial;
}

/** The MountedDevices values (name → REG_BINARY hex) → drive letters, bounded (26 letters exist). */
export function mountedLetters(values: readonly { name: string; type: string; data: unknown }[]): MountedLetter[] {
  const out: MountedLetter[] = [];
  for (const v of values) {
    const m = /^\\DosDevices\\([A-Za-z]):$/.exec(v.name);
    if (!m || v.type !== 'REG_BINARY' || typeof v.data !== 'string') continue;
    const target = decodeMountedDevice(v.data);
    if (!target) continue;
    const letter = m[1]!.toUpperCase();
    if (out.some((x) => x.letter === letter)) continue;
    out.push({ letter, serial: serialOfVolumePath(target), target });
  }
  return out.sort((a, b) => a.letter.localeCompare(b.letter));
}

/** A usable medium's serial (the registered stick's, from its instance id): null when it has none. */
export function mediumSerial(m: UsableMedium): string | null {
  if (!m.device.serialHex) return null;
  const s = Buffer.from(m.device.serialHex, 'hex').toString('latin1');
  return s.length ? s : null;
}

export interface DriveTarget {
  /** "E:" */
  drive: string;
  medium: UsableMedium;
}

/**
 * Which letters to watch: each usable medium's letters (serial compared case-insensitively, as
 * Windows compares device ids). A letter whose serial matches two usable media is watched for the
 * first (both are usable: the record names one of them; said in README). Letters the caller says
 * are not mounted now are left out. Media with no letter are returned apart (recorded as unavailable).
 */
export function driveTargets(media: readonly UsableMedium[], letters: readonly MountedLetter[], mounted: (letter: string) => boolean): { targets: DriveTarget[]; unmapped: UsableMedium[] } {
  const targets: DriveTarget[] = [];
  const unmapped: UsableMedium[] = [];
  for (const m of media) {
    const serial = mediumSerial(m)?.toUpperCase() ?? null;
    const mine = serial === null ? [] : letters.filter((l) => l.serial?.toUpperCase() === serial && mounted(l.letter));
    let any = false;
    for (const l of mine) {
      const drive = `${l.letter}:`;
      if (targets.some((t) => t.drive === drive)) continue;
      targets.push({ drive, medium: m });
      any = true;
    }
    if (!any) unmapped.push(m);
  }
  return { targets, unmapped };
}

// ---- paths ---------------------------------------------------------------------------------------

/**
 * fs.watch's file name (relative to the drive root, '\' separated) → the recorded relative path
 * ('/' separated, as on Linux; '/' cannot occur in a Windows name, so nothing is lost). Null for a
 * name that is not a plain relative path (absolute, a drive, an empty or '.'/'..' component, a NUL,
 * or longer than 32,767 characters, the longest path Windows has).
 */
export function relativeName(name: string): string | null {
  // Wine's ReadDirectoryChangesW names start with '\' (Windows' do not): one leading separator is dropped.
  if (name.startsWith('\\')) name = name.slice(1);
  if (name.length === 0 || name.length > 32_767 || name.includes('\0')) return null;
  const parts = name.split(/[\\/]/);
  if (parts.some((p) => p === '' || p === '.' || p === '..' || p.includes(':'))) return null;
  return parts.join('/');
}

// ---- which changes are writes --------------------------------------------------------------------

export interface FileStamp {
  size: number;
  /** File index (stat.ino on Windows), decimal. */
  ino: string;
  mtimeMs: number;
  birthtimeMs: number;
  /** ChangeTime (metadata or contents changed; wine reports the Unix ctime). */
  ctimeMs: number;
}

/** FAT keeps the last-write time to 2 s. */
export const TIME_SLACK_MS = 2_000;

/**
 * Whether a file the watcher named was written while it was watched: created (copies keep the
 * source's last-write time but get a new creation time), modified, or changed (ChangeTime: under
 * wine a copy's creation time is its source's last-write time, only the change time is new) since
 * the watch began. A file only read (ReadDirectoryChangesW also reports last-access changes) is
 * none of these; a file renamed on the stick is recorded too (its change time is new).
 */
export function writtenSince(s: FileStamp, watchedSinceMs: number): boolean {
  return Math.max(s.mtimeMs, s.birthtimeMs, s.ctimeMs) >= watchedSinceMs - TIME_SLACK_MS;
}

/** Same file, same contents as far as its stamp says: recorded once. */
export const sameStamp = (a: FileStamp | undefined, b: FileStamp): boolean => !!a && a.size === b.size && a.ino === b.ino && a.mtimeMs === b.mtimeMs && a.birthtimeMs === b.birthtimeMs && a.ctimeMs === b.ctimeMs;

// ---- pending files (bounded) ---------------------------------------------------------------------

export interface Pending {
  drive: string;
  rel: string;
  /** When the last change was seen (local ms). */
  lastChange: number;
  /** Opening exclusively failed this many times (the writer still has it open). */
  busy: number;
  /** A 'change' was seen (contents or size), not only a name change: a file gone before its turn is recorded as removed. */
  modified: boolean;
}

/**
 * Files named by the watcher, waiting until they have been quiet for `quietMs` and their writer
 * has closed them. One entry per path (a file changed again keeps its place, with the later time);
 * past `cap` a name is counted, not kept: the caller records the count as usb.file_log_overflow.
 */
export class PendingFiles {
  private readonly items = new Map<string, Pending>();
  constructor(
    readonly cap: number,
    readonly quietMs: number,
  ) {}

  get size(): number {
    return this.items.size;
  }

  changed(drive: string, rel: string, now: number, modified = true): 'queued' | 'merged' | 'full' {
    const key = `${drive}\0${rel.toUpperCase()}`; // Windows names are case-insensitive
    const had = this.items.get(key);
    if (had) {
      had.lastChange = now;
      had.modified ||= modified;
      return 'merged';
    }
    if (this.items.size >= this.cap) return 'full';
    this.items.set(key, { drive, rel, lastChange: now, busy: 0, modified });
    return 'queued';
  }

  /** The next file quiet long enough, taken out; null when none is. */
  takeReady(now: number): Pending | null {
    for (const [k, p] of this.items) {
      if (now - p.lastChange < this.quietMs) continue;
      this.items.delete(k);
      return p;
    }
    return null;
  }

  /** Put back one whose writer still had it open (it waits another quiet period). */
  retry(p: Pending, now: number): void {
    const key = `${p.drive}\0${p.rel.toUpperCase()}`;
    if (!this.items.has(key)) this.items.set(key, { ...p, lastChange: now, busy: p.busy + 1 });
  }

  /** Entries of one drive (it went away: recorded without hash). */
  drain(drive: string): Pending[] {
    const out: Pending[] = [];
    for (const [k, p] of this.items) {
      if (p.drive !== drive) continue;
      this.items.delete(k);
      out.push(p);
    }
    return out;
  }

  /** Milliseconds until the earliest entry is quiet (null: none waiting). */
  nextDue(now: number): number | null {
    let best: number | null = null;
    for (const p of this.items.values()) {
      const due = Math.max(0, p.lastChange + this.quietMs - now);
      if (best === null || due < best) best = due;
    }
    return best;
  }
}

/** How many times an exclusive open may fail (writer still open) before the file is recorded without a hash. */
export const MAX_BUSY = 20;

export type WindowsHashSkipped = 'too_large' | 'removed' | 'replaced' | 'changed' | 'unreadable' | 'queue_full' | 'medium_gone' | 'agent_stopped' | 'still_open';

export interface WindowsFileWrittenInput {
  medium: UsableMedium;
  rel: string;
  size: number;
  sha256: string | null;
  skipped: WindowsHashSkipped | null;
  fsType: string;
  mode: string;
}

/**
 * The event data, the same shape as Linux: the writer is not known (ReadDirectoryChangesW does not
 * name it), so uid and pid are null and userSource is 'session' (the event's user is the console
 * session's user).
 */
export function windowsFileWrittenData(i: WindowsFileWrittenInput): UsbFileWrittenData {
  const raw = Buffer.from(i.rel, 'utf8');
  const sha256 = i.sha256 && /^[0-9a-f]{64}$/.test(i.sha256) ? i.sha256 : null;
  return {
    device: i.medium.device,
    path: displayPath(raw),
    pathHash: pathHash(raw),
    size: Number.isSafeInteger(i.size) && i.size >= 0 ? i.size : 0,
    sha256,
    hashSkipped: sha256 ? null : (i.skipped ?? 'unreadable'),
    uid: null,
    userSource: 'session',
    pid: null,
    fsType: i.fsType.slice(0, 64),
    mode: i.mode,
  };
}

/** A key for "this stamp was recorded" that does not keep whole paths of 100 k files in memory twice. */
export const stampKey = (drive: string, rel: string): string => createHash('sha256').update(`${drive}\0${rel.toUpperCase()}`).digest('base64');
