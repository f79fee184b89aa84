/**
 * "Who is logged in" for events: the most recent USER_PROCESS record in utmp (what `who` reads).
 * Null when nobody is logged in or utmp is unreadable.
 */
import { readFileSync } from 'node:fs';

const RECORD = 384; // struct utmp on x86_64 / aarch64 glibc
const USER_PROCESS = 7;

export interface UtmpUser {
  user: string;
  line: string;
  time: number; // seconds since epoch
}

function cstr(b: Buffer, off: number, len: number): string {
  const s = b.subarray(off, off + len);
  const nul = s.indexOf(0);
  return (nul >= 0 ? s.subarray(0, nul) : s).toString('utf8');
}

/** Pure: parses utmp bytes. Bounded by the buffer; a truncated tail record is ignored. */
export function parseUtmp(buf: Buffer): UtmpUser[] {
  const out: UtmpUser[] = [];
  for (let off = 0; off + RECORD <= buf.length; off += RECORD) {
    if (buf.readInt16LE(off) !== USER_PROCESS) continue;
    const user = cstr(buf, off + 44, 32);
    if (!user) continue;
    out.push({ user, line: cstr(buf, off + 8, 32), time: buf.readInt32LE(off + 340) });
  }
  return out;
}

export function loggedInUser(paths = ['/run/utmp', '/var/run/utmp']): string | null {
  for (const p of paths) {
    let buf: Buffer;
    try {
      buf = readFileSync(p);
    } catch {
      continue;
    }
    const users = parseUtmp(buf);
    if (!users.length) return null;
    // A graphical or console seat beats an ssh session; then the most recent login.
    users.sort((a, b) => Number(/^(tty|:|seat)/.test(b.line)) - Number(/^(tty|:|seat)/.test(a.line)) || b.time - a.time);
    return users[0]!.user;
  }
  return null;
}
