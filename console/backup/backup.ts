/**
 * Taking a backup of a console data folder while the console serves: the event is written first,
 * then the database is copied with `VACUUM INTO` — one read transaction, so the copy is exactly the
 * store at one instant although ingest goes on (WAL: the reader blocks no writer) — never a file copy.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { sqliteOptions } from '../../protocol/native.js';
import { t } from '../../protocol/i18n.js';
import { safeText } from '../../protocol/text.js';
import { SEKIMORI_VERSION } from '../../protocol/version.js';
import { openDatabase } from '../core/db.js';
import { recordConsoleEvent } from '../core/events.js';
import { consolePaths } from '../core/paths.js';
import { MAX_MEMBER_BYTES, sha256OfFile, writeArchive, type ArchiveMember } from './archive.js';
import { encryptSecrets } from './crypto.js';
import {
  BACKUP_FORMAT,
  BACKUP_FORMAT_VERSION,
  CLEAR_MEMBERS,
  DB_MEMBER,
  KEYS_MEMBER,
  keysAad,
  MANIFEST_MEMBER,
  MIN_PASSPHRASE_CHARS,
  SCRYPT_DEFAULT,
  SECRET_MEMBERS,
  sha256Hex,
  type BackupManifest,
  type BackupSecrets,
} from './format.js';

export interface BackupOptions {
  dataDir: string;
  out: string;
  passphrase: string;
  /** Where the passphrase came from, for the event (never the passphrase itself). */
  passphraseFrom: 'env' | 'terminal';
  actor: string;
  /** Tests lower nothing below the floor; benches may raise it. */
  cost?: { logN: number; r: number; p: number };
}

export interface BackupResult {
  file: string;
  bytes: number;
  manifest: BackupManifest;
  /** Milliseconds the database snapshot took (the read transaction the console's writers ran beside). */
  snapshotMs: number;
  /** Milliseconds of the rest: check + count of the snapshot, hashing + encryption, writing the file. */
  checkMs: number;
  writeMs: number;
}

/** What a database file holds: page geometry, rows per table, applied migrations per module. */
export function describeDatabase(db: Database.Database): { pageSize: number; pageCount: number; tables: Record<string, number>; schema: Record<string, number> } {
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const pageCount = db.pragma('page_count', { simple: true }) as number;
  const names = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
  const tables: Record<string, number> = {};
  for (const n of names) {
    // Table names come from the schema, not from input; still only plain identifiers are quoted in.
    if (!/^[A-Za-z0-9_]{1,64}$/.test(n)) throw new Error(`console.db: unexpected table name ${JSON.stringify(n.slice(0, 64))}`);
    tables[n] = (db.prepare(`SELECT count(*) AS c FROM "${n}"`).get() as { c: number }).c;
  }
  const schema: Record<string, number> = {};
  if (names.includes('schema_migrations')) {
    for (const r of db.prepare('SELECT module, max(version) AS v FROM schema_migrations GROUP BY module ORDER BY module').all() as { module: string; v: number }[]) schema[r.module] = r.v;
  }
  return { pageSize, pageCount, tables, schema };
}

export function takeBackup(o: BackupOptions, now = new Date()): BackupResult {
  const paths = consolePaths(o.dataDir);
  if (!existsSync(paths.caCert) || !existsSync(paths.db)) throw new Error(t(`${o.dataDir}: 初期化されたコンソールのデータフォルダではありません`, `${o.dataDir}: not an initialised console data folder`));
  if (statSync(paths.db).size === 0) throw new Error(t('console.db が空です(0 バイト): バックアップしません', 'console.db is empty (0 bytes): nothing to back up'));
  if (existsSync(o.out)) throw new Error(t(`${o.out} は既にあります(上書きしません)`, `${o.out} already exists (not overwritten)`));
  if ([...o.passphrase].length < MIN_PASSPHRASE_CHARS) throw new Error(t(`パスフレーズは ${MIN_PASSPHRASE_CHARS} 文字以上にしてください`, `the passphrase must have at least ${MIN_PASSPHRASE_CHARS} characters`));
  const cost = o.cost ?? SCRYPT_DEFAULT;
  // Every file is read before the event: a folder missing a key fails before anything is recorded.
  const clear = CLEAR_MEMBERS.map((name) => ({ name, data: readFileSync(join(o.dataDir, name)) }));
  const secretFiles = Object.fromEntries(SECRET_MEMBERS.map((name) => [name, readFileSync(join(o.dataDir, name))]));
  const secrets: BackupSecrets = {
    'ca-key.pem': secretFiles['ca-key.pem']!.toString('utf8'),
    'server-key.pem': secretFiles['server-key.pem']!.toString('utf8'),
    'policy-signing-key.pem': secretFiles['policy-signing-key.pem']!.toString('utf8'),
    'secret.key': secretFiles['secret.key']!.toString('base64'),
  };
  if (secretFiles['secret.key']!.length !== 32) throw new Error(t('secret.key は 32 バイトではありません', 'secret.key is not 32 bytes'));

  const backupId = randomUUID();
  const snapshot = join(dirname(o.out), `.${basename(o.out)}.${randomBytes(6).toString('hex')}.db`);
  // admin.backup_taken is already in the store when a later step fails: say that this one never became a file.
  const recordFailure = (to: Database.Database, e: unknown) =>
    recordConsoleEvent(to, { type: 'admin.backup_failed', user: o.actor, data: { backupId, file: safeText(o.out, 512), reason: safeText((e as Error).message, 512) } });
  const db = openDatabase(paths.db);
  let snapshotMs = 0;
  try {
    // Recorded first (and so inside the snapshot it describes): who took which backup, where to.
    recordConsoleEvent(db, { type: 'admin.backup_taken', user: o.actor, data: { backupId, file: safeText(o.out, 512), passphraseFrom: o.passphraseFrom } }, now);
    const started = performance.now();
    try {
      db.prepare('VACUUM INTO ?').run(snapshot);
    } catch (e) {
      recordFailure(db, e);
      throw e;
    }
    snapshotMs = performance.now() - started;
  } finally {
    db.close();
  }
  let mark = performance.now();
  let checkMs = 0;
  try {
    const snap = new Database(snapshot, { ...sqliteOptions(), readonly: true, fileMustExist: true });
    let described: ReturnType<typeof describeDatabase>;
    try {
      const quick = snap.pragma('quick_check', { simple: true });
      if (quick !== 'ok') throw new Error(`console.db snapshot: quick_check: ${String(quick)}`);
      described = describeDatabase(snap);
    } finally {
      snap.close();
    }
    checkMs = performance.now() - mark;
    mark = performance.now();
    // The snapshot is streamed (hashed, then copied into the archive): a store of GiBs never sits in memory.
    const dbFile = sha256OfFile(snapshot);
    if (dbFile.size > MAX_MEMBER_BYTES) throw new Error(t('console.db が大きすぎます(8 GiB まで)', 'console.db is too large for this backup format (8 GiB at most)'));
    const withoutKeys: BackupManifest = {
      format: BACKUP_FORMAT,
      formatVersion: BACKUP_FORMAT_VERSION,
      backupId,
      createdAt: now.toISOString(),
      consoleVersion: SEKIMORI_VERSION,
      schema: described.schema,
      db: { pageSize: described.pageSize, pageCount: described.pageCount, tables: described.tables },
      members: [{ name: DB_MEMBER, size: dbFile.size, sha256: dbFile.sha256 }, ...clear.map((m) => ({ name: m.name, size: m.data.length, sha256: sha256Hex(m.data) }))],
      keys: { kdf: 'scrypt', logN: cost.logN, r: cost.r, p: cost.p, salt: '', cipher: 'aes-256-gcm', iv: '', verifier: '' },
    };
    const { keys, blob } = encryptSecrets(o.passphrase, Buffer.from(JSON.stringify(secrets)), keysAad(withoutKeys), cost);
    const manifest: BackupManifest = { ...withoutKeys, keys, members: [...withoutKeys.members, { name: KEYS_MEMBER, size: blob.length, sha256: sha256Hex(blob) }] };
    const members: ArchiveMember[] = [{ name: MANIFEST_MEMBER, data: Buffer.from(JSON.stringify(manifest, null, 2) + '\n') }, { name: DB_MEMBER, path: snapshot, size: dbFile.size }, ...clear, { name: KEYS_MEMBER, data: blob }];
    // Written aside and renamed: a crash never leaves a half backup under the operator's name.
    const partial = `${o.out}.partial-${randomBytes(6).toString('hex')}`;
    let bytes = 0;
    try {
      const fd = openSync(partial, 'wx', 0o600);
      try {
        bytes = writeArchive(fd, members, now);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(partial, o.out);
    } catch (e) {
      rmSync(partial, { force: true });
      throw e;
    }
    return { file: o.out, bytes, manifest, snapshotMs, checkMs, writeMs: performance.now() - mark };
  } catch (e) {
    const db2 = openDatabase(paths.db);
    try {
      recordFailure(db2, e);
    } finally {
      db2.close();
    }
    throw e;
  } finally {
    rmSync(snapshot, { force: true });
    rmSync(snapshot + '-journal', { force: true });
  }
}
