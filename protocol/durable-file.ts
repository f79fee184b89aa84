/**
 * The one durable file writer of both programs: write a temp file beside the target, fsync it,
 * rename it over the target, fsync the folder. A crash leaves the old content or the new one,
 * never a torn file; a temp file is never read (the rename is the commit point) and is removed
 * when writing fails (a full disk must not keep the half-written copy).
 */
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export function writeFileDurably(path: string, content: string | Buffer, mode = 0o600): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const data = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fd = openSync(tmp, 'w', mode);
    try {
      for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(tmp, mode);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
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
