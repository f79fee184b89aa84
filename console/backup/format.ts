/**
 * The console backup file: a strict ustar (console/report/tar.ts) holding
 *   manifest.json  what the backup is (time, version, schema, db page/row counts, SHA-256 of each member)
 *   console.db     an SQLite snapshot (VACUUM INTO: one read transaction, consistent while the console writes)
 *   config.json, ca.pem, server.pem, policy-signing-key.pub.pem   public files, in clear
 *   keys.enc       ca-key.pem, server-key.pem, policy-signing-key.pem, secret.key: AES-256-GCM under a
 *                  scrypt key from the passphrase; the additional data binds every other member's hash,
 *                  so a member swapped (even with the manifest rewritten to match) fails at restore.
 * Everything here is pure: no file, no clock.
 */
import { createHash } from 'node:crypto';
import { Type, type Static } from 'typebox';
import { canonicalJson } from '../../protocol/canonical.js';
import { t } from '../../protocol/i18n.js';
import { IsoTime, SafeCount, Sha256Hex, UUID_PATTERN, wireCheck } from '../../protocol/wire-check.js';

export const BACKUP_FORMAT = 'sekimori-console-backup';
export const BACKUP_FORMAT_VERSION = 1;

/** Members in clear, as named in the data folder (console/core/paths.ts) and in the archive. */
export const CLEAR_MEMBERS = ['config.json', 'ca.pem', 'server.pem', 'policy-signing-key.pub.pem'] as const;
/** Members inside keys.enc: the private keys and the key of the database's sealed secrets. */
export const SECRET_MEMBERS = ['ca-key.pem', 'server-key.pem', 'policy-signing-key.pem', 'secret.key'] as const;
export const DB_MEMBER = 'console.db';
export const KEYS_MEMBER = 'keys.enc';
export const MANIFEST_MEMBER = 'manifest.json';

/** scrypt cost bounds: below the floor is too cheap to guess against; above the cap a hostile file makes restore eat memory. */
export const SCRYPT_MIN_LOG_N = 15;
export const SCRYPT_MAX_LOG_N = 20;
export const SCRYPT_DEFAULT = { logN: 15, r: 8, p: 1 } as const;
export const MIN_PASSPHRASE_CHARS = 12;

const closed = { additionalProperties: false } as const;
const Name = Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' });
const B64 = (bytes: number) => Type.String({ pattern: `^[A-Za-z0-9+/]{${Math.ceil(bytes / 3) * 4 - 3},${Math.ceil(bytes / 3) * 4}}={0,2}$` });

export const ManifestSchema = Type.Object(
  {
    format: Type.Literal(BACKUP_FORMAT),
    formatVersion: Type.Literal(BACKUP_FORMAT_VERSION),
    backupId: Type.String({ pattern: UUID_PATTERN }),
    createdAt: IsoTime,
    consoleVersion: Type.String({ minLength: 1, maxLength: 64 }),
    /** Applied migrations per module (schema_migrations) of the snapshot. */
    schema: Type.Record(Name, SafeCount, { maxProperties: 64 }),
    db: Type.Object({ pageSize: SafeCount, pageCount: SafeCount, tables: Type.Record(Type.String({ pattern: '^[A-Za-z0-9_]{1,64}$' }), SafeCount, { maxProperties: 256 }) }, closed),
    members: Type.Array(Type.Object({ name: Name, size: SafeCount, sha256: Sha256Hex }, closed), { maxItems: 16 }),
    keys: Type.Object(
      {
        kdf: Type.Literal('scrypt'),
        logN: Type.Integer({ minimum: SCRYPT_MIN_LOG_N, maximum: SCRYPT_MAX_LOG_N }),
        r: Type.Integer({ minimum: 1, maximum: 16 }),
        p: Type.Integer({ minimum: 1, maximum: 4 }),
        salt: B64(16),
        cipher: Type.Literal('aes-256-gcm'),
        iv: B64(12),
        /** HMAC of a fixed text under the derived key: tells a wrong passphrase from an altered file. */
        verifier: B64(32),
      },
      closed,
    ),
  },
  closed,
);
export type BackupManifest = Static<typeof ManifestSchema>;
export const manifestCheck = wireCheck(ManifestSchema);

/** The secrets inside keys.enc (after decryption). */
export const SecretsSchema = Type.Object(
  {
    'ca-key.pem': Type.String({ minLength: 1, maxLength: 20_000 }),
    'server-key.pem': Type.String({ minLength: 1, maxLength: 20_000 }),
    'policy-signing-key.pem': Type.String({ minLength: 1, maxLength: 20_000 }),
    'secret.key': B64(32),
  },
  closed,
);
export type BackupSecrets = Static<typeof SecretsSchema>;
export const secretsCheck = wireCheck(SecretsSchema);

export function sha256Hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/**
 * The additional authenticated data of keys.enc: everything the manifest says except the keys
 * section and keys.enc's own entry (it does not exist yet when it is encrypted). Canonical JSON,
 * so key order in the file does not matter, any changed value does.
 */
export function keysAad(m: BackupManifest): Buffer {
  const { keys: _keys, members, ...rest } = m;
  return Buffer.from(canonicalJson({ ...rest, members: members.filter((x) => x.name !== KEYS_MEMBER) }));
}

/** Member names a backup must hold, exactly (no more: an unknown member is refused, never written). */
export const REQUIRED_MEMBERS: readonly string[] = [MANIFEST_MEMBER, DB_MEMBER, ...CLEAR_MEMBERS, KEYS_MEMBER];

/** A member as found in the archive: its name, size and SHA-256 (computed by the reader, in chunks). */
export interface MemberFound {
  name: string;
  size: number;
  sha256: string;
}

/**
 * What is wrong with an archive's members against its manifest (empty = intact). Checks without the
 * passphrase: names, duplicates, sizes, hashes, the db's size against its page count.
 */
export function memberErrors(m: BackupManifest, members: readonly MemberFound[]): string[] {
  const errors: string[] = [];
  const names = members.map((x) => x.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) errors.push(t(`${dup}: 同じ名前のメンバーが複数あります`, `${dup}: member appears more than once`));
  for (const n of REQUIRED_MEMBERS) if (!names.includes(n)) errors.push(t(`${n}: ありません`, `${n}: missing`));
  for (const n of names) if (!REQUIRED_MEMBERS.includes(n)) errors.push(t(`${n}: 不明なメンバーです`, `${n}: unknown member`));
  const listed = m.members.map((x) => x.name);
  for (const n of REQUIRED_MEMBERS) if (n !== MANIFEST_MEMBER && !listed.includes(n)) errors.push(t(`manifest.members: ${n} がありません`, `manifest.members: ${n} is not listed`));
  for (const n of listed) if (n === MANIFEST_MEMBER || !REQUIRED_MEMBERS.includes(n) || listed.indexOf(n) !== listed.lastIndexOf(n)) errors.push(t(`manifest.members: ${n} は不正です`, `manifest.members: ${n} is not allowed`));
  for (const entry of m.members) {
    const got = members.find((x) => x.name === entry.name);
    if (!got) continue;
    if (got.size !== entry.size) errors.push(t(`${entry.name}: 大きさが違います(${got.size} ≠ ${entry.size})`, `${entry.name}: size differs (${got.size} ≠ ${entry.size})`));
    else if (got.sha256 !== entry.sha256) errors.push(t(`${entry.name}: SHA-256 が一致しません`, `${entry.name}: SHA-256 does not match`));
  }
  const db = members.find((x) => x.name === DB_MEMBER);
  if (db) {
    if (db.size === 0 || m.db.pageCount === 0) errors.push(t('console.db: 空です', 'console.db: is empty'));
    else if (db.size !== m.db.pageSize * m.db.pageCount) errors.push(t('console.db: 大きさがページ数と合いません', 'console.db: size does not match its page count'));
  }
  return errors;
}

/**
 * Whether this console can run a store of `backup`'s schema: every module it names must be known
 * here with at least as many migrations (an older backup is migrated forward when the console opens
 * it; a newer one would run with columns this console does not know, so it is refused).
 */
export function schemaErrors(backup: Readonly<Record<string, number>>, known: Readonly<Record<string, number>>): string[] {
  const errors: string[] = [];
  for (const [module, version] of Object.entries(backup)) {
    const here = Object.hasOwn(known, module) ? known[module]! : undefined;
    if (here === undefined) errors.push(t(`モジュール ${module} はこのコンソールにありません(より新しい版のバックアップです)`, `module ${module} is unknown to this console (the backup is from a newer release)`));
    else if (version > here)
      errors.push(t(`モジュール ${module} のスキーマ ${version} はこのコンソール(${here} まで)より新しい版です。新しい版の sekimori-console で復元してください`, `module ${module} schema ${version} is newer than this console knows (${here}): restore with a newer sekimori-console`));
  }
  return errors;
}
