/**
 * The agent's one writer of state files: write to a temp file, fsync it, rename it over the old
 * one, fsync the folder. A crash leaves the old content or the new one, never a torn file; a temp
 * file left behind is never read (the rename is the commit point). No imports from the rest of the
 * agent, so platform code can use it too.
 */
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export function writeFileDurably(path: string, content: string, mode = 0o600): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, mode);
  renameSync(tmp, path);
  let dfd: number;
  try {
    dfd = openSync(dirname(path), 'r');
  } catch (e) {
    // Windows cannot open a folder as a file (EISDIR/EPERM): NTFS journals the rename itself.
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EISDIR' || code === 'EPERM') return;
    throw e;
  }
  try {
    fsyncSync(dfd);
  } catch (e) {
    // Where Windows (and wine) does open the folder, flushing it fails with EPERM: same reason.
    if (process.platform !== 'win32' || (e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
  } finally {
    closeSync(dfd);
  }
}

/**
 * Reads a JSON state file written by writeFileDurably. Missing, unreadable or malformed → undefined
 * (the caller falls back to its fail-closed default).
 */
export function readJsonState(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/** JSON through writeFileDurably (0600: root/SYSTEM only). Throws when it cannot be written. */
export function writeJsonState(path: string, value: unknown): void {
  writeFileDurably(path, JSON.stringify(value));
}
