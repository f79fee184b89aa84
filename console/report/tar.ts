/**
 * The evidence archive's container: a plain ustar file (opens with `tar xf` and any archiver), written
 * deterministically, and read back STRICTLY: the reader rebuilds the archive from what it parsed
 * and refuses unless every byte is the same, so a change anywhere — content, header, padding,
 * trailer — is refused, not only changes inside the signed files.
 */
import { Buffer } from 'node:buffer';

export interface TarEntry {
  name: string;
  data: Buffer;
}

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const BLOCK = 512;
/** Bound on what the reader accepts (an archive is read whole into memory). */
export const MAX_TAR_BYTES = 1024 * 1024 * 1024;
export const MAX_TAR_ENTRIES = 64;

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** A canonical ustar header (mode 0644, uid/gid 0, one mtime): the only form the readers accept. */
export function ustarHeader(name: string, size: number, mtimeSeconds: number): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  h.write(name, 0, 100, 'ascii');
  h.write(octal(0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(mtimeSeconds, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write('0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

export function writeTar(entries: readonly TarEntry[], mtime: Date): Buffer {
  const secs = Math.max(0, Math.floor(mtime.getTime() / 1000));
  const parts: Buffer[] = [];
  for (const e of entries) {
    if (!NAME_RE.test(e.name)) throw new Error(`tar: bad entry name ${JSON.stringify(e.name)}`);
    parts.push(ustarHeader(e.name, e.data.length, secs), e.data);
    const pad = (BLOCK - (e.data.length % BLOCK)) % BLOCK;
    if (pad) parts.push(Buffer.alloc(pad, 0));
  }
  parts.push(Buffer.alloc(BLOCK * 2, 0));
  return Buffer.concat(parts);
}

function field(h: Buffer, off: number, len: number): string {
  const s = h.subarray(off, off + len).toString('latin1');
  const nul = s.indexOf('\0');
  return nul >= 0 ? s.slice(0, nul) : s;
}

function octalField(h: Buffer, off: number, len: number, what: string): number {
  const s = field(h, off, len);
  if (!/^[0-7]{1,11}$/.test(s)) throw new Error(`tar: ${what} is not an octal number`);
  return parseInt(s, 8);
}

/** Entries of an archive written by writeTar; throws (with the reason) on anything else. */
export function readTar(buf: Buffer): TarEntry[] {
  if (buf.length > MAX_TAR_BYTES) throw new Error('tar: archive too large');
  if (buf.length % BLOCK !== 0 || buf.length < BLOCK * 2) throw new Error('tar: length is not a whole number of 512-byte blocks');
  const entries: TarEntry[] = [];
  let off = 0;
  let mtime = 0;
  for (;;) {
    if (off + BLOCK > buf.length) throw new Error('tar: no end-of-archive marker');
    const h = buf.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) break;
    if (entries.length >= MAX_TAR_ENTRIES) throw new Error('tar: too many entries');
    const name = field(h, 0, 100);
    if (!NAME_RE.test(name)) throw new Error(`tar: bad entry name at offset ${off}`);
    const size = octalField(h, 124, 12, `size of ${name}`);
    mtime = octalField(h, 136, 12, `mtime of ${name}`);
    const start = off + BLOCK;
    if (start + size > buf.length) throw new Error(`tar: ${name} runs past the end`);
    entries.push({ name, data: Buffer.from(buf.subarray(start, start + size)) });
    off = start + size + ((BLOCK - (size % BLOCK)) % BLOCK);
  }
  // Strict: the archive must be exactly what writeTar makes of these entries.
  const again = writeTar(entries, new Date(mtime * 1000));
  if (!again.equals(buf)) {
    let i = 0;
    while (i < buf.length && i < again.length && buf[i] === again[i]) i++;
    throw new Error(`tar: archive is not in canonical form (first difference at byte ${i})`);
  }
  return entries;
}
