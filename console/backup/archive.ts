/**
 * The backup's container, streamed: the same strict ustar as console/report/tar.ts (one mtime,
 * canonical headers, zero padding, a two-block trailer and nothing after it), but members are
 * written from and read back to files in chunks, so a store of several GiB never sits in memory.
 * ustar's 11 octal digits bound one member to 8 GiB − 1.
 */
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { t } from '../../protocol/i18n.js';
import { ustarHeader } from '../report/tar.js';

const BLOCK = 512;
const CHUNK = 1 << 20;
const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const MAX_MEMBER_BYTES = 8 * 1024 ** 3 - 1;
export const MAX_ARCHIVE_ENTRIES = 16;

/** writeTar's header (console/report/tar.ts), byte for byte, within this container's bounds. */
function memberHeader(name: string, size: number, mtimeSeconds: number): Buffer {
  if (!NAME_RE.test(name)) throw new Error(`tar: bad entry name ${JSON.stringify(name)}`);
  if (!Number.isSafeInteger(size) || size < 0 || size > MAX_MEMBER_BYTES) throw new Error(`tar: ${name} too large`);
  return ustarHeader(name, size, mtimeSeconds);
}

/** Random access to the archive's bytes: a Buffer (tests) or an open file. */
export interface Source {
  size: number;
  read(pos: number, len: number): Buffer;
  close(): void;
}

export function bufferSource(b: Buffer): Source {
  return { size: b.length, read: (pos, len) => b.subarray(pos, Math.min(b.length, pos + len)), close: () => undefined };
}

export function fileSource(path: string): Source {
  const fd = openSync(path, 'r');
  const size = fstatSync(fd).size;
  return {
    size,
    read(pos, len) {
      const out = Buffer.alloc(Math.max(0, Math.min(len, size - pos)));
      let off = 0;
      while (off < out.length) {
        const n = readSync(fd, out, off, out.length - off, pos + off);
        if (n === 0) break;
        off += n;
      }
      return out.subarray(0, off);
    },
    close: () => closeSync(fd),
  };
}

export interface MemberRef {
  name: string;
  /** Offset of the member's data in the source. */
  offset: number;
  size: number;
}

/** The members of a strict archive; throws with the reason on anything else (never reads a member's data). */
export function scanArchive(src: Source): MemberRef[] {
  if (src.size % BLOCK !== 0 || src.size < BLOCK * 2) throw new Error(t('tar: 512 バイト単位の長さではありません', 'tar: length is not a whole number of 512-byte blocks'));
  const out: MemberRef[] = [];
  let off = 0;
  let mtime: number | null = null;
  for (;;) {
    if (off + BLOCK > src.size) throw new Error(t('tar: 終端がありません', 'tar: no end-of-archive marker'));
    const h = src.read(off, BLOCK);
    if (h.every((b) => b === 0)) {
      // The trailer: exactly two zero blocks, then the end of the file.
      if (off + 2 * BLOCK !== src.size || !src.read(off + BLOCK, BLOCK).every((b) => b === 0)) throw new Error(t('tar: 終端の後にデータがあります', 'tar: data after the end-of-archive marker'));
      return out;
    }
    if (out.length >= MAX_ARCHIVE_ENTRIES) throw new Error('tar: too many entries');
    const name = field(h, 0, 100);
    if (!NAME_RE.test(name)) throw new Error(`tar: bad entry name at offset ${off}`);
    const size = octalField(h, 124, 12, `size of ${name}`);
    const m = octalField(h, 136, 12, `mtime of ${name}`);
    if (mtime !== null && m !== mtime) throw new Error(`tar: ${name}: mtime differs`);
    mtime = m;
    if (size > MAX_MEMBER_BYTES || !memberHeader(name, size, m).equals(h)) throw new Error(`tar: ${name}: header is not in canonical form`);
    const start = off + BLOCK;
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (start + size + pad > src.size) throw new Error(`tar: ${name} runs past the end`);
    if (pad && !src.read(start + size, pad).every((b) => b === 0)) throw new Error(`tar: ${name}: padding is not zero`);
    out.push({ name, offset: start, size });
    off = start + size + pad;
  }
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

/** Calls `each` with the member's bytes in chunks (bounded memory). */
export function eachChunk(src: Source, m: MemberRef, each: (chunk: Buffer) => void): void {
  for (let pos = 0; pos < m.size; pos += CHUNK) {
    const c = src.read(m.offset + pos, Math.min(CHUNK, m.size - pos));
    if (c.length === 0) throw new Error(`tar: ${m.name}: short read`);
    each(c);
  }
}

export function readMember(src: Source, m: MemberRef, max: number): Buffer {
  if (m.size > max) throw new Error(t(`${m.name}: 大きすぎます`, `${m.name}: too large`));
  return Buffer.from(src.read(m.offset, m.size));
}

export function sha256OfMember(src: Source, m: MemberRef): string {
  const h = createHash('sha256');
  eachChunk(src, m, (c) => h.update(c));
  return h.digest('hex');
}

/** SHA-256 and size of a file, read in chunks. */
export function sha256OfFile(path: string): { sha256: string; size: number } {
  const src = fileSource(path);
  try {
    return { sha256: sha256OfMember(src, { name: 'file', offset: 0, size: src.size }), size: src.size };
  } finally {
    src.close();
  }
}

export type ArchiveMember = { name: string; data: Buffer } | { name: string; path: string; size: number };

/** Writes the archive to an open file descriptor, streaming members given by path. */
export function writeArchive(fd: number, members: readonly ArchiveMember[], mtime: Date): number {
  const secs = Math.max(0, Math.floor(mtime.getTime() / 1000));
  let total = 0;
  const put = (b: Buffer) => {
    let off = 0;
    while (off < b.length) off += writeSync(fd, b, off, b.length - off);
    total += b.length;
  };
  for (const m of members) {
    const size = 'data' in m ? m.data.length : m.size;
    put(memberHeader(m.name, size, secs));
    if ('data' in m) put(m.data);
    else {
      const src = fileSource(m.path);
      try {
        // The file must not change between hashing and writing (the snapshot is private to this process).
        if (src.size !== size) throw new Error(`${m.name}: size changed while writing`);
        eachChunk(src, { name: m.name, offset: 0, size }, put);
      } finally {
        src.close();
      }
    }
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (pad) put(Buffer.alloc(pad, 0));
  }
  put(Buffer.alloc(BLOCK * 2, 0));
  return total;
}
