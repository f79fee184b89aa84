/**
 * The agent's offline MFA cache: seeds and state of the users assigned to this terminal, plus what
 * happened offline and still has to be told to the console (reconcile entries). Encrypted with
 * AES-256-GCM under a 32-byte key in its own file (STATE/mfa/cache.key, 0600), bound to the agent
 * id as associated data; the cache itself is STATE/mfa/cache.bin (0600), written durably.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurably } from '../state.js';
import type { MfaCacheUser, MfaReconcileEntry } from '../../protocol/mfa/wire.js';

export interface CacheData {
  version: 1;
  /** When the user list last came from the console (null = never). */
  syncedAt: string | null;
  users: Record<string, MfaCacheUser>;
  pending: MfaReconcileEntry[];
}

export const MAX_PENDING = 10_000;

export function emptyCache(): CacheData {
  return { version: 1, syncedAt: null, users: {}, pending: [] };
}

export function mfaPaths(stateDir: string) {
  const dir = join(stateDir, 'mfa');
  return { dir, key: join(dir, 'cache.key'), cache: join(dir, 'cache.bin'), breakGlass: join(stateDir, 'mfa-break-glass') };
}

export class EncryptedCache {
  private readonly key: Buffer;
  private readonly paths: ReturnType<typeof mfaPaths>;

  constructor(
    stateDir: string,
    private readonly agentId: string,
  ) {
    this.paths = mfaPaths(stateDir);
    mkdirSync(this.paths.dir, { recursive: true, mode: 0o700 });
    chmodSync(this.paths.dir, 0o700);
    if (existsSync(this.paths.key)) {
      this.key = readFileSync(this.paths.key);
      if (this.key.length !== 32) throw new Error(`${this.paths.key}: must be 32 bytes`);
    } else {
      this.key = randomBytes(32);
      writeFileSync(this.paths.key, this.key, { mode: 0o600, flag: 'wx' });
    }
  }

  /** A missing, unreadable or tampered cache is an empty one: offline verification then refuses. */
  load(): { data: CacheData; problem: string | null } {
    if (!existsSync(this.paths.cache)) return { data: emptyCache(), problem: null };
    try {
      const raw = Buffer.from(readFileSync(this.paths.cache, 'utf8'), 'base64');
      const d = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
      d.setAAD(Buffer.from('sekimori-mfa-cache\0' + this.agentId));
      d.setAuthTag(raw.subarray(12, 28));
      const plain = Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8');
      const data = JSON.parse(plain) as CacheData;
      if (data.version !== 1 || typeof data.users !== 'object' || !Array.isArray(data.pending)) throw new Error('unknown cache format');
      return { data, problem: null };
    } catch (e) {
      return { data: emptyCache(), problem: (e as Error).message };
    }
  }

  save(data: CacheData): void {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from('sekimori-mfa-cache\0' + this.agentId));
    const ct = Buffer.concat([c.update(JSON.stringify(data), 'utf8'), c.final()]);
    writeFileDurably(this.paths.cache, Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64'), 0o600);
  }

  wipe(): void {
    rmSync(this.paths.cache, { force: true });
  }

  get file(): string {
    return this.paths.cache;
  }
}
