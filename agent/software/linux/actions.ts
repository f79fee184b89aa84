/**
 * Linux enforcement: kill a process (after checking the pid still runs the judged binary) and
 * move a file into a root-only quarantine with the metadata needed to put it back exactly.
 */
import { randomUUID } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, mkdirSync, readFileSync, readlinkSync, renameSync, statSync, unlinkSync, utimesSync, existsSync, lstatSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileDurably } from '../../durable.js';
import { identityKey } from '../observe/hash.js';
import { QUARANTINE_ID_RE } from '../state.js';
import type { QuarantineRecord } from '../platform.js';

/** SIGKILL only if /proc/PID/exe is still the same inode we judged (pid reuse, exec since). */
export function killIfSame(procRoot: string, pid: number, expectedLink: string, expectedIdentity: string | null): 'killed' | 'gone' | 'changed' | 'failed' {
  let link: string;
  try {
    link = readlinkSync(`${procRoot}/${pid}/exe`);
  } catch {
    return 'gone';
  }
  if (link !== expectedLink) return 'changed';
  if (expectedIdentity !== null) {
    try {
      if (identityKey(statSync(`${procRoot}/${pid}/exe`)) !== expectedIdentity) return 'changed';
    } catch {
      return 'gone';
    }
  }
  try {
    process.kill(pid, 'SIGKILL');
    return 'killed';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH' ? 'gone' : 'failed';
  }
}

/** mode: full st_mode permission bits (incl. setuid/setgid/sticky). */
export type { QuarantineRecord };

/** Creates the quarantine folder root-only (0700), tightening it if it exists looser. */
export function ensureQuarantineDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const s = lstatSync(dir);
  if (!s.isDirectory()) throw new Error(`quarantine ${dir} is not a directory`);
  if ((s.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
  if (typeof process.getuid === 'function' && process.getuid() === 0 && (s.uid !== 0 || s.gid !== 0)) chownSync(dir, 0, 0);
}

function moveFile(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    copyFileSync(from, to);
    unlinkSync(from);
  }
}

/**
 * Moves `path` into the quarantine. The file is stored without any permission bits (nothing can
 * execute or read it through the folder anyway); the record keeps what restore needs.
 */
export function quarantineFile(dir: string, path: string, sha256: string, rule: string): QuarantineRecord {
  ensureQuarantineDir(dir);
  const s = lstatSync(path);
  if (!s.isFile()) throw new Error('not a regular file');
  const id = randomUUID();
  const rec: QuarantineRecord = {
    id,
    originalPath: path,
    sha256,
    size: s.size,
    mode: s.mode & 0o7777,
    uid: s.uid,
    gid: s.gid,
    atimeMs: s.atimeMs,
    mtimeMs: s.mtimeMs,
    quarantinedAt: new Date().toISOString(),
    rule,
  };
  // Record first: a crash between the two steps leaves a record whose file is missing (visible),
  // never a file nobody knows the origin of.
  // Durable: a record torn by a crash would leave a quarantined file nobody can put back.
  writeFileDurably(join(dir, `${id}.json`), JSON.stringify(rec, null, 2));
  const dest = join(dir, `${id}.bin`);
  moveFile(path, dest);
  chmodSync(dest, 0o000);
  return rec;
}


/** Puts a quarantined file back exactly: same path, mode, owner and times. Refuses to overwrite. */
export function restoreFile(dir: string, id: string): QuarantineRecord {
  if (!QUARANTINE_ID_RE.test(id)) throw new Error('bad quarantine id');
  const rec = JSON.parse(readFileSync(join(dir, `${id}.json`), 'utf8')) as QuarantineRecord;
  const src = join(dir, `${id}.bin`);
  if (existsSync(rec.originalPath)) throw new Error('a file exists at the original path');
  mkdirSync(dirname(rec.originalPath), { recursive: true });
  chmodSync(src, 0o600);
  moveFile(src, rec.originalPath);
  try {
    chownSync(rec.originalPath, rec.uid, rec.gid);
  } catch {
    // not root (tests without privileges): the mode and times are still restored
  }
  chmodSync(rec.originalPath, rec.mode);
  utimesSync(rec.originalPath, rec.atimeMs / 1000, rec.mtimeMs / 1000);
  unlinkSync(join(dir, `${id}.json`));
  return rec;
}

/** uid → user name from /etc/passwd (cached; re-read on a miss at most every 10 s). */
export class UserNames {
  private map = new Map<number, string>();
  private readAt = 0;
  constructor(private readonly passwd = '/etc/passwd') {}
  name(uid: number | null): string | null {
    if (uid === null) return null;
    const hit = this.map.get(uid);
    if (hit !== undefined) return hit;
    if (Date.now() - this.readAt > 10_000) {
      this.readAt = Date.now();
      try {
        for (const line of readFileSync(this.passwd, 'utf8').split('\n')) {
          const f = line.split(':');
          if (f.length >= 3 && /^\d+$/.test(f[2]!)) this.map.set(Number(f[2]), f[0]!);
        }
      } catch {
        // no passwd: report the numeric uid
      }
    }
    return this.map.get(uid) ?? String(uid);
  }
}
