/**
 * The passphrase → key (scrypt) and keys.enc (AES-256-GCM), node:crypto only. The scrypt output is
 * 64 bytes: the first 32 encrypt, the last 32 key the verifier HMAC — so a wrong passphrase is told
 * apart from an altered file without weakening either.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { t } from '../../protocol/i18n.js';
import type { BackupManifest } from './format.js';

const VERIFIER_TEXT = 'sekimori-backup-passphrase-check';

export class WrongPassphraseError extends Error {
  constructor() {
    super(t('パスフレーズが違います(何も書き込んでいません)', 'wrong passphrase (nothing was written)'));
  }
}

export class AlteredBackupError extends Error {}

export type KeyParams = BackupManifest['keys'];

function derive(passphrase: string, k: Pick<KeyParams, 'logN' | 'r' | 'p' | 'salt'>): { enc: Buffer; mac: Buffer } {
  const N = 2 ** k.logN;
  // scrypt needs 128·N·r bytes; the schema caps logN/r, so this bound is at most 2 GiB + slack.
  const out = scryptSync(passphrase.normalize('NFC'), Buffer.from(k.salt, 'base64'), 64, { N, r: k.r, p: k.p, maxmem: 128 * N * k.r + 1024 * 1024 });
  return { enc: out.subarray(0, 32), mac: out.subarray(32) };
}

function verifierOf(mac: Buffer): Buffer {
  return createHmac('sha256', mac).update(VERIFIER_TEXT).digest();
}

/** Encrypts `plain` (the secrets JSON) under the passphrase; returns the manifest's keys section and keys.enc. */
export function encryptSecrets(passphrase: string, plain: Buffer, aad: Buffer, cost: { logN: number; r: number; p: number }): { keys: KeyParams; blob: Buffer } {
  const salt = randomBytes(16).toString('base64');
  const iv = randomBytes(12);
  const { enc, mac } = derive(passphrase, { ...cost, salt });
  const cipher = createCipheriv('aes-256-gcm', enc, iv);
  cipher.setAAD(aad);
  const ct = Buffer.concat([cipher.update(plain), cipher.final()]);
  // keys.enc = ciphertext ‖ 16-byte tag
  return {
    keys: { kdf: 'scrypt', logN: cost.logN, r: cost.r, p: cost.p, salt, cipher: 'aes-256-gcm', iv: iv.toString('base64'), verifier: verifierOf(mac).toString('base64') },
    blob: Buffer.concat([ct, cipher.getAuthTag()]),
  };
}

/** The secrets JSON, or WrongPassphraseError / AlteredBackupError. */
export function decryptSecrets(passphrase: string, keys: KeyParams, blob: Uint8Array, aad: Buffer): Buffer {
  const { enc, mac } = derive(passphrase, keys);
  const want = Buffer.from(keys.verifier, 'base64');
  const got = verifierOf(mac);
  if (want.length !== got.length || !timingSafeEqual(want, got)) throw new WrongPassphraseError();
  if (blob.length < 16) throw new AlteredBackupError(t('keys.enc: 短すぎます', 'keys.enc: too short'));
  const b = Buffer.from(blob);
  const decipher = createDecipheriv('aes-256-gcm', enc, Buffer.from(keys.iv, 'base64'));
  decipher.setAAD(aad);
  decipher.setAuthTag(b.subarray(b.length - 16));
  try {
    return Buffer.concat([decipher.update(b.subarray(0, b.length - 16)), decipher.final()]);
  } catch {
    throw new AlteredBackupError(
      t('バックアップが改変されています: 鍵の暗号文または他のメンバー(データベース・証明書・マニフェスト)が作成時と違います', 'the backup was altered: the encrypted keys or another member (database, certificates, manifest) differ from when it was made'),
    );
  }
}
