/**
 * Content hashing with a cache keyed by file identity (dev, inode, size, mtime AND ctime): a
 * running binary seen again in the next /proc scan costs one stat, not a re-read (and so does its
 * dpkg md5sums check, which compares the cached md5). ctime is in the key because mtime is not
 * evidence: `touch -d` puts a modified binary's mtime back, but nothing but the kernel sets ctime. Reads stream, so a large
 * binary never sits in memory whole, and a semaphore bounds how many files are read at once.
 */
import { createHash } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';

export interface Digest {
  sha256: string;
  md5: string; // only for comparing with dpkg's md5sums
  size: number;
  dev: number;
  ino: number;
  mtimeMs: number;
  ctimeMs: number;
  mode: number;
  uid: number;
  gid: number;
}

export const MAX_HASH_BYTES = 2 * 1024 * 1024 * 1024;

export function identityKey(s: Pick<Stats, 'dev' | 'ino' | 'mtimeMs' | 'ctimeMs' | 'size'>): string {
  return `${s.dev}:${s.ino}:${s.mtimeMs}:${s.ctimeMs}:${s.size}`;
}

export class Semaphore {
  private active = 0;
  private waiting: (() => void)[] = [];
  constructor(private readonly limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

function streamDigest(path: string): Promise<{ sha256: string; md5: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const sha = createHash('sha256');
    const md5 = createHash('md5');
    let bytes = 0;
    const s = createReadStream(path, { highWaterMark: 256 * 1024 });
    s.on('data', (chunk) => {
      const b = chunk as Buffer;
      bytes += b.length;
      if (bytes > MAX_HASH_BYTES) {
        s.destroy(new Error('file too large to hash'));
        return;
      }
      sha.update(b);
      md5.update(b);
    });
    s.on('error', reject);
    s.on('end', () => resolve({ sha256: sha.digest('hex'), md5: md5.digest('hex'), bytes }));
  });
}

export class Hasher {
  private cache = new Map<string, Digest>();
  private readonly sem: Semaphore;
  hashed = 0;
  hits = 0;
  constructor(concurrency = 4, private readonly maxEntries = 20_000) {
    this.sem = new Semaphore(concurrency);
  }

  /**
   * Hashes what `path` refers to now (for /proc/PID/exe: the very inode the process runs, even
   * when deleted or replaced). The identity is read before and after so a file rewritten while
   * being read is not cached under its old identity.
   */
  async digest(path: string): Promise<Digest> {
    const before = await stat(path);
    if (!before.isFile()) throw new Error('not a regular file');
    const key = identityKey(before);
    const hit = this.cache.get(key);
    if (hit) {
      this.hits++;
      return hit;
    }
    const d = await this.sem.run(() => streamDigest(path));
    const after = await stat(path);
    const digest: Digest = {
      sha256: d.sha256,
      md5: d.md5,
      size: d.bytes,
      dev: after.dev,
      ino: after.ino,
      mtimeMs: after.mtimeMs,
      ctimeMs: after.ctimeMs,
      mode: after.mode,
      uid: after.uid,
      gid: after.gid,
    };
    this.hashed++;
    if (identityKey(after) === key && d.bytes === after.size) {
      if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(key, digest);
    }
    return digest;
  }
}
