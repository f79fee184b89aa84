/**
 * Checking a backup file (no passphrase) and restoring it onto a fresh data folder. Restore writes
 * nothing until the file is intact, of a schema this console knows, and the passphrase opened its
 * keys; it builds the folder aside, checks the database there (integrity_check, rows, schema),
 * records the restore in it, and only then moves it to the operator's path.
 */
import { createPrivateKey, createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { t } from '../../protocol/i18n.js';
import { safeText } from '../../protocol/text.js';
import { openDatabase } from '../core/db.js';
import { recordConsoleEvent } from '../core/events.js';
import { coreMigrations } from '../core/schema.js';
import { bufferSource, eachChunk, fileSource, readMember, scanArchive, sha256OfMember, type MemberRef, type Source } from './archive.js';
import { describeDatabase } from './backup.js';
import { decryptSecrets } from './crypto.js';
import { CLEAR_MEMBERS, DB_MEMBER, KEYS_MEMBER, keysAad, MANIFEST_MEMBER, manifestCheck, memberErrors, schemaErrors, secretsCheck, type BackupManifest, type BackupSecrets } from './format.js';

const MAX_MANIFEST_BYTES = 256 * 1024;

export class DamagedBackupError extends Error {
  constructor(readonly problems: string[]) {
    super(t(`バックアップファイルが壊れています: ${problems.join('; ')}`, `the backup file is damaged: ${problems.join('; ')}`));
  }
}

/** Migrations this console knows per module (core + each registered feature). */
export function knownSchema(modules: readonly { name: string; migrations: readonly string[] }[]): Record<string, number> {
  const out: Record<string, number> = { core: coreMigrations.length };
  for (const m of modules) out[m.name] = m.migrations.length;
  return out;
}

export interface Inspected {
  manifest: BackupManifest;
  members: MemberRef[];
  /** Problems with the file itself (empty = intact). */
  damage: string[];
  /** Why this console cannot restore it although it is intact (a newer schema). */
  incompatible: string[];
}

/** Every member but the database is small: read whole, bounded. */
const MAX_SMALL_MEMBER = 1024 * 1024;

/**
 * Parses and checks a backup without the passphrase (hashes every member, the database in chunks);
 * DamagedBackupError when it cannot even be read. A Buffer is for tests; files go through withBackupFile.
 */
export function inspectBackup(input: Buffer | Source, known: Readonly<Record<string, number>>): Inspected {
  const src = Buffer.isBuffer(input) ? bufferSource(input) : input;
  let members: MemberRef[];
  try {
    members = scanArchive(src);
  } catch (e) {
    throw new DamagedBackupError([(e as Error).message]);
  }
  const man = members.find((e) => e.name === MANIFEST_MEMBER);
  if (!man) throw new DamagedBackupError([t('manifest.json がありません', 'manifest.json is missing')]);
  if (man.size > MAX_MANIFEST_BYTES) throw new DamagedBackupError([t('manifest.json が大きすぎます', 'manifest.json is too large')]);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readMember(src, man, MAX_MANIFEST_BYTES).toString('utf8'));
  } catch {
    throw new DamagedBackupError([t('manifest.json が JSON ではありません', 'manifest.json is not JSON')]);
  }
  if (!manifestCheck.check(parsed)) throw new DamagedBackupError(manifestCheck.errors(parsed, 'manifest', 10));
  const manifest = parsed;
  const tooLarge = members.filter((m) => m.name !== DB_MEMBER && m.size > MAX_SMALL_MEMBER).map((m) => t(`${m.name}: 大きすぎます`, `${m.name}: too large`));
  if (tooLarge.length) throw new DamagedBackupError(tooLarge);
  const found = members.map((m) => ({ name: m.name, size: m.size, sha256: sha256OfMember(src, m) }));
  return { manifest, members, damage: memberErrors(manifest, found), incompatible: schemaErrors(manifest.schema, known) };
}

/** Opens a backup file for reading; closed when `f` returns. */
export function withBackupFile<T>(file: string, f: (src: Source) => T): T {
  if (!statSync(file).isFile()) throw new DamagedBackupError([t('通常のファイルではありません', 'not a regular file')]);
  const src = fileSource(file);
  try {
    return f(src);
  } finally {
    src.close();
  }
}

/** A key and its certificate belong together (a swapped key would make a console agents cannot trust). */
function sameKey(privatePem: string, publicOf: string | X509Certificate): boolean {
  const pub = createPublicKey(createPrivateKey(privatePem)).export({ type: 'spki', format: 'der' });
  const other = typeof publicOf === 'string' ? createPublicKey(publicOf) : publicOf.publicKey;
  return pub.equals(other.export({ type: 'spki', format: 'der' }));
}

function emptyOrAbsent(dir: string): 'absent' | 'empty' {
  if (!existsSync(dir)) return 'absent';
  if (!statSync(dir).isDirectory()) throw new Error(t(`${dir} はフォルダではありません`, `${dir} is not a directory`));
  if (readdirSync(dir).length > 0) throw new Error(t(`${dir} は空ではありません: 復元は空のフォルダにだけ行います`, `${dir} is not empty: restore only writes into an empty folder`));
  return 'empty';
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export interface RestoreOptions {
  file: string;
  dataDir: string;
  passphrase: string;
  actor: string;
  known: Readonly<Record<string, number>>;
}

export interface RestoreResult {
  dataDir: string;
  manifest: BackupManifest;
  integrity: 'ok';
}

export function restoreBackup(o: RestoreOptions, now = new Date()): RestoreResult {
  const target = resolve(o.dataDir);
  const state = emptyOrAbsent(target);
  if (state === 'absent' && !existsSync(dirname(target))) throw new Error(t(`${dirname(target)} がありません`, `${dirname(target)} does not exist`));
  return withBackupFile(o.file, (src) => restoreFrom(src, o, target, state, now));
}

function restoreFrom(src: Source, o: RestoreOptions, target: string, state: 'absent' | 'empty', now: Date): RestoreResult {
  const ins = inspectBackup(src, o.known);
  if (ins.damage.length) throw new DamagedBackupError(ins.damage);
  if (ins.incompatible.length) throw new Error(ins.incompatible.join('; '));
  const m = ins.manifest;
  const ref = (name: string): MemberRef => ins.members.find((e) => e.name === name)!;
  const member = (name: string): Buffer => readMember(src, ref(name), MAX_SMALL_MEMBER);

  // Nothing is written before the passphrase has opened the keys (and so authenticated every member).
  const plain = decryptSecrets(o.passphrase, m.keys, member(KEYS_MEMBER), keysAad(m));
  let secrets: unknown;
  try {
    secrets = JSON.parse(plain.toString('utf8'));
  } catch {
    secrets = undefined;
  }
  if (!secretsCheck.check(secrets)) throw new DamagedBackupError([t('keys.enc の中身が不正です', 'keys.enc holds malformed secrets')]);
  const s: BackupSecrets = secrets;
  const keyProblems: string[] = [];
  try {
    if (!sameKey(s['ca-key.pem'], new X509Certificate(member('ca.pem')))) keyProblems.push('ca-key.pem ≠ ca.pem');
    if (!sameKey(s['server-key.pem'], new X509Certificate(member('server.pem')))) keyProblems.push('server-key.pem ≠ server.pem');
    if (!sameKey(s['policy-signing-key.pem'], member('policy-signing-key.pub.pem').toString('utf8'))) keyProblems.push('policy-signing-key.pem ≠ policy-signing-key.pub.pem');
  } catch (e) {
    keyProblems.push((e as Error).message);
  }
  if (keyProblems.length) throw new DamagedBackupError(keyProblems.map((p) => t(`鍵と証明書が対になっていません: ${p}`, `key and certificate do not match: ${p}`)));
  const secretKey = Buffer.from(s['secret.key'], 'base64');
  if (secretKey.length !== 32) throw new DamagedBackupError([t('secret.key は 32 バイトではありません', 'secret.key is not 32 bytes')]);

  const staging = join(dirname(target), `.${basename(target)}.restoring-${randomBytes(6).toString('hex')}`);
  mkdirSync(staging, { mode: 0o700 });
  chmodSync(staging, 0o700);
  try {
    // Modes as `init` writes them: keys 0600, public files by the umask, the folder 0700.
    const secretFile = (name: string, data: Buffer | string) => {
      writeFileSync(join(staging, name), data, { mode: 0o600, flag: 'wx' });
      chmodSync(join(staging, name), 0o600);
    };
    for (const name of CLEAR_MEMBERS) writeFileSync(join(staging, name), member(name), { flag: 'wx' });
    secretFile('ca-key.pem', s['ca-key.pem']);
    secretFile('server-key.pem', s['server-key.pem']);
    secretFile('policy-signing-key.pem', s['policy-signing-key.pem']);
    secretFile('secret.key', secretKey);
    // The database is copied in chunks (it may be GiBs) and checked by SQLite below.
    const dbFd = openSync(join(staging, DB_MEMBER), 'wx', 0o600);
    try {
      eachChunk(src, ref(DB_MEMBER), (c) => {
        let off = 0;
        while (off < c.length) off += writeSync(dbFd, c, off, c.length - off);
      });
      fsyncSync(dbFd);
    } finally {
      closeSync(dbFd);
    }

    const db = openDatabase(join(staging, DB_MEMBER));
    try {
      const integrity = db.pragma('integrity_check') as { integrity_check: string }[];
      if (integrity.length !== 1 || integrity[0]!.integrity_check !== 'ok')
        throw new DamagedBackupError([`integrity_check: ${integrity.slice(0, 5).map((r) => r.integrity_check).join('; ')}`]);
      const got = describeDatabase(db);
      const diff: string[] = [];
      for (const [table, rows] of Object.entries(m.db.tables)) if (got.tables[table] !== rows) diff.push(`${table}: ${String(got.tables[table] ?? '—')} ≠ ${rows}`);
      for (const table of Object.keys(got.tables)) if (!Object.hasOwn(m.db.tables, table)) diff.push(`${table}: ${t('マニフェストにない表', 'table not in the manifest')}`);
      for (const [mod, v] of Object.entries(m.schema)) if (got.schema[mod] !== v) diff.push(`schema ${mod}: ${String(got.schema[mod] ?? '—')} ≠ ${v}`);
      if (!Object.hasOwn(got.tables, 'events') || !Object.hasOwn(got.schema, 'core')) diff.push(t('コンソールのデータベースではありません', 'not a console database'));
      if (diff.length) throw new DamagedBackupError(diff.map((d) => t(`データベースがマニフェストと違います: ${d}`, `database differs from the manifest: ${d}`)));
      // The restore is recorded in the restored store itself: the chain that continues there says where it came from.
      recordConsoleEvent(
        db,
        { type: 'admin.console_restored', user: o.actor, data: { backupId: m.backupId, backupCreatedAt: m.createdAt, consoleVersion: safeText(m.consoleVersion, 64), file: safeText(o.file, 512) } },
        now,
      );
    } finally {
      db.close();
    }
    fsyncDir(staging);
    if (state === 'absent') renameSync(staging, target);
    else {
      for (const f of readdirSync(staging)) renameSync(join(staging, f), join(target, f));
      rmdirSync(staging);
      chmodSync(target, 0o700);
    }
    fsyncDir(dirname(target));
    return { dataDir: target, manifest: m, integrity: 'ok' };
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    throw e;
  }
}
