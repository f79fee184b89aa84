/**
 * PSKC (RFC 6030) — what token vendors ship with a box of hardware tokens. Pure: text and key
 * material in, rows or errors out. Supported: plaintext secrets (§6), AES-CBC under a pre-shared
 * key (§6.1) and under a PBKDF2 password-derived key (§6.2), each encrypted value checked with the
 * container's MAC (HMAC-SHA1/256/512 under the MACKey) before it is decrypted. HOTP and TOTP keys
 * with 6 or 8 decimal digits. Anything else (asymmetric key transport, key wrap, OCRA, encrypted
 * counters, a T0 other than 0) is refused, naming the KeyPackage by index and serial.
 */
import { createDecipheriv, createHmac, pbkdf2Sync, timingSafeEqual } from 'node:crypto';
import type { OtpAlgorithm } from '../../protocol/mfa/otp.js';
import { duplicateSerialErrors, MAX_SECRET, MIN_SECRET, SERIAL_RE, type ImportRow, type ParseResult } from './import-csv.js';
import { kid, kids, parseXml, XmlError, type XmlElement } from './import-xml.js';

const PSKC = 'urn:ietf:params:xml:ns:keyprov:pskc';
const DS = 'http://www.w3.org/2000/09/xmldsig#';
const XENC = 'http://www.w3.org/2001/04/xmlenc#';
const XENC11 = 'http://www.w3.org/2009/xmlenc11#';
const PKCS5 = 'http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#';

const CBC: Record<string, { cipher: string; keyLen: number }> = {
  [XENC + 'aes128-cbc']: { cipher: 'aes-128-cbc', keyLen: 16 },
  [XENC + 'aes192-cbc']: { cipher: 'aes-192-cbc', keyLen: 24 },
  [XENC + 'aes256-cbc']: { cipher: 'aes-256-cbc', keyLen: 32 },
};
// MAC and PBKDF2 PRF algorithms (RFC 6931 names); the same table serves both.
const MORE = 'http://www.w3.org/2001/04/xmldsig-more#';
const MACS: Record<string, string> = {
  [DS + 'hmac-sha1']: 'sha1',
  [MORE + 'hmac-sha224']: 'sha224',
  [MORE + 'hmac-sha256']: 'sha256',
  [MORE + 'hmac-sha384']: 'sha384',
  [MORE + 'hmac-sha512']: 'sha512',
};
const PRFS = MACS;
const MAX_PBKDF2_ITERATIONS = 10_000_000; // bounds the work a hostile file can ask for

export interface PskcKeys {
  /** Pre-shared AES key (hex on the command line). */
  psk?: Buffer;
  /** Password for PBKDF2-derived keys. */
  password?: string;
}

class PskcError extends Error {}

const text = (el: XmlElement | undefined): string => (el ? el.text.trim() : '');

function b64(s: string, what: string): Buffer {
  const clean = s.replace(/\s+/g, '');
  if (clean === '' || !/^[A-Za-z0-9+/]*={0,2}$/.test(clean) || clean.length % 4 !== 0) throw new PskcError(`${what}: base64 が不正です / not valid base64`);
  return Buffer.from(clean, 'base64');
}

interface Crypto {
  encKey: Buffer | null;
  macKey: Buffer | null;
  macAlg: string | null;
}

/** The container-level EncryptionKey and MACMethod: which key decrypts, which key MACs. */
function containerCrypto(root: XmlElement, keys: PskcKeys): Crypto {
  const ek = kid(root, PSKC, 'EncryptionKey');
  let encKey: Buffer | null = null;
  if (ek) {
    const derived = kid(ek, XENC11, 'DerivedKey');
    if (derived) {
      const method = kid(derived, XENC11, 'KeyDerivationMethod');
      if (method?.attrs.get('Algorithm') !== PKCS5 + 'pbkdf2') throw new PskcError('鍵導出は PBKDF2 のみ対応 / only PBKDF2 key derivation is supported');
      // RFC 6030 Figure 7 writes pkcs5:PBKDF2-params with unqualified children; XML Encryption 1.1
      // (and some vendors) put the parameters and children in the xenc11 namespace. Either is read.
      const params = kid(method, PKCS5, 'PBKDF2-params') ?? kid(method, XENC11, 'PBKDF2-params');
      if (!params) throw new PskcError('PBKDF2-params がありません / PBKDF2-params missing');
      const pns = params.ns === XENC11 ? XENC11 : '';
      const salt = b64(text(kid(kid(params, pns, 'Salt'), pns, 'Specified')), 'Salt');
      const iterations = Number(text(kid(params, pns, 'IterationCount')));
      const keyLength = Number(text(kid(params, pns, 'KeyLength')) || '16');
      const prfEl = kid(params, pns, 'PRF');
      const prfAlg = prfEl?.attrs.get('Algorithm');
      const prf = prfAlg === undefined ? 'sha1' : PRFS[prfAlg];
      if (!prf) throw new PskcError('PBKDF2 の PRF が未対応です / unsupported PBKDF2 PRF');
      if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > MAX_PBKDF2_ITERATIONS) throw new PskcError('PBKDF2 の反復回数が不正です / invalid PBKDF2 iteration count');
      if (![16, 24, 32].includes(keyLength)) throw new PskcError('PBKDF2 の鍵長が不正です / invalid PBKDF2 key length');
      if (keys.password === undefined) throw new PskcError('パスワードで暗号化されています: --password-file が必要です / encrypted with a password: --password-file is required');
      encKey = pbkdf2Sync(Buffer.from(keys.password, 'utf8'), salt, iterations, keyLength, prf);
    } else if (kid(ek, DS, 'KeyName')) {
      if (!keys.psk) throw new PskcError('事前共有鍵で暗号化されています: --psk-file が必要です / encrypted with a pre-shared key: --psk-file is required');
      encKey = keys.psk;
    } else throw new PskcError('未対応の EncryptionKey です(事前共有鍵・PBKDF2 のみ) / unsupported EncryptionKey (pre-shared key or PBKDF2 only)');
  }
  const mm = kid(root, PSKC, 'MACMethod');
  let macKey: Buffer | null = null;
  let macAlg: string | null = null;
  if (mm) {
    macAlg = MACS[mm.attrs.get('Algorithm') ?? ''] ?? null;
    if (!macAlg) throw new PskcError('未対応の MAC 方式です / unsupported MACMethod');
    const mk = kid(mm, PSKC, 'MACKey');
    if (!mk) throw new PskcError('MACKey がありません / MACKey missing');
    if (!encKey) throw new PskcError('MACKey を復号する鍵がありません / no key to decrypt the MACKey');
    macKey = decryptValue(mk, encKey);
  }
  return { encKey, macKey, macAlg };
}

/** xenc EncryptionMethod + CipherData/CipherValue (IV ‖ ciphertext), CBC with xmlenc padding. */
function cipherBytes(el: XmlElement): { alg: { cipher: string; keyLen: number }; value: Buffer } {
  const method = kid(el, XENC, 'EncryptionMethod')?.attrs.get('Algorithm') ?? '';
  const alg = CBC[method];
  if (!alg) throw new PskcError(`未対応の暗号方式です / unsupported encryption method ${method.slice(0, 80)}`);
  const value = b64(text(kid(kid(el, XENC, 'CipherData'), XENC, 'CipherValue')), 'CipherValue');
  if (value.length < 32 || value.length % 16 !== 0) throw new PskcError('暗号文の長さが不正です / bad ciphertext length');
  return { alg, value };
}

function decryptValue(el: XmlElement, key: Buffer): Buffer {
  const { alg, value } = cipherBytes(el);
  if (key.length !== alg.keyLen) throw new PskcError(`鍵長が暗号方式と合いません(${key.length}バイト) / key length does not fit the cipher (${key.length} bytes)`);
  const d = createDecipheriv(alg.cipher, key, value.subarray(0, 16));
  d.setAutoPadding(false); // xmlenc padding: only the last byte is defined (ISO 10126)
  const plain = Buffer.concat([d.update(value.subarray(16)), d.final()]);
  const pad = plain[plain.length - 1]!;
  if (pad < 1 || pad > 16 || pad > plain.length) throw new PskcError('復号できません(鍵が違う可能性) / cannot decrypt (wrong key?)');
  return plain.subarray(0, plain.length - pad);
}

/** A Secret's key bytes: PlainValue, or EncryptedValue whose ValueMAC is checked first. */
function secretOf(secret: XmlElement, c: Crypto): Buffer {
  const plain = kid(secret, PSKC, 'PlainValue');
  const enc = kid(secret, PSKC, 'EncryptedValue');
  if (plain && !enc) return b64(text(plain), 'Secret');
  if (!enc || plain) throw new PskcError('Secret には PlainValue か EncryptedValue のどちらか一方が必要です / Secret needs exactly one of PlainValue, EncryptedValue');
  if (!c.encKey) throw new PskcError('EncryptionKey がありません / no EncryptionKey for an encrypted secret');
  // The MAC is what tells a wrong key or a tampered file from a good one: no MAC, no import.
  if (!c.macKey || !c.macAlg) throw new PskcError('MACMethod がありません / no MACMethod: the encrypted secret cannot be checked');
  const mac = b64(text(kid(secret, PSKC, 'ValueMAC')), 'ValueMAC');
  const { value } = cipherBytes(enc);
  const want = createHmac(c.macAlg, c.macKey).update(value).digest();
  if (mac.length !== want.length || !timingSafeEqual(mac, want)) throw new PskcError('MAC が一致しません(鍵またはパスワードが違うか、改ざん) / MAC mismatch (wrong key or password, or tampered)');
  return decryptValue(enc, c.encKey);
}

function plainInt(el: XmlElement | undefined, what: string): number | undefined {
  if (!el) return undefined;
  if (kid(el, PSKC, 'EncryptedValue')) throw new PskcError(`暗号化された ${what} は未対応 / encrypted ${what} is not supported`);
  const t = text(kid(el, PSKC, 'PlainValue'));
  if (!/^[0-9]{1,15}$/.test(t)) throw new PskcError(`${what} が不正です / invalid ${what}`);
  return Number(t);
}

function hashOf(suite: string): OtpAlgorithm {
  const s = suite.toUpperCase().replace(/[^A-Z0-9]/g, '');
  if (s === '' || s === 'HMACSHA1' || s === 'SHA1') return 'SHA1';
  if (s === 'HMACSHA256' || s === 'SHA256') return 'SHA256';
  if (s === 'HMACSHA512' || s === 'SHA512') return 'SHA512';
  throw new PskcError(`未対応のハッシュ ${suite.slice(0, 40)} / unsupported hash ${suite.slice(0, 40)}`);
}

function keyPackage(pkg: XmlElement, c: Crypto): Omit<ImportRow, 'user'> {
  const key = kid(pkg, PSKC, 'Key');
  if (!key) throw new PskcError('Key がありません / no Key');
  const alg = key.attrs.get('Algorithm') ?? '';
  const m = /^urn:ietf:params:xml:ns:keyprov:pskc[:#](hotp|totp)$/.exec(alg);
  if (!m) throw new PskcError(`未対応のアルゴリズム ${alg.slice(0, 80)}(HOTP / TOTP のみ) / unsupported algorithm (HOTP, TOTP only)`);
  const type = m[1] as 'hotp' | 'totp';
  const serial = text(kid(kid(pkg, PSKC, 'DeviceInfo'), PSKC, 'SerialNo')) || (key.attrs.get('Id') ?? '');
  if (!SERIAL_RE.test(serial)) throw new PskcError('シリアル(SerialNo / Key Id)が不正です / invalid serial (SerialNo or Key Id)');
  const params = kid(key, PSKC, 'AlgorithmParameters');
  const rf = kid(params, PSKC, 'ResponseFormat');
  const len = rf?.attrs.get('Length') ?? '6';
  const encoding = rf?.attrs.get('Encoding') ?? 'DECIMAL';
  if (encoding !== 'DECIMAL') throw new PskcError('応答形式は DECIMAL のみ / only DECIMAL responses');
  if (len !== '6' && len !== '8') throw new PskcError(`桁数 ${len.slice(0, 4)} は未対応(6 か 8) / ${len.slice(0, 4)} digits unsupported (6 or 8)`);
  const algorithm = hashOf(text(kid(params, PSKC, 'Suite')));
  const data = kid(key, PSKC, 'Data');
  const secretEl = kid(data, PSKC, 'Secret');
  if (!secretEl) throw new PskcError('Secret がありません / no Secret');
  const secret = secretOf(secretEl, c);
  if (secret.length < MIN_SECRET || secret.length > MAX_SECRET) {
    throw new PskcError(`秘密鍵は${MIN_SECRET}〜${MAX_SECRET}バイトが必要です(${secret.length}バイト) / secret must be ${MIN_SECRET}–${MAX_SECRET} bytes (has ${secret.length})`);
  }
  const counter = plainInt(kid(data, PSKC, 'Counter'), 'Counter') ?? 0;
  const period = plainInt(kid(data, PSKC, 'TimeInterval'), 'TimeInterval') ?? 30;
  const t0 = plainInt(kid(data, PSKC, 'Time'), 'Time') ?? 0;
  if (type === 'totp' && period !== 30 && period !== 60) throw new PskcError('TimeInterval は 30 か 60 / TimeInterval must be 30 or 60');
  if (type === 'totp' && t0 !== 0) throw new PskcError('Time(T0)は 0 のみ対応 / only Time (T0) = 0 is supported');
  return { serial, secret, type, algorithm, digits: len === '6' ? 6 : 8, period: type === 'totp' ? period : 30, counter };
}

/**
 * All KeyPackages or errors (each naming the package's 1-based index and serial). Tokens come
 * unassigned: a vendor's UserId is a directory DN of the vendor's choosing, not a staff user.
 */
export function parsePskc(xml: string, keys: PskcKeys = {}): ParseResult {
  const rows: ImportRow[] = [];
  const errors: string[] = [];
  let root: XmlElement;
  let c: Crypto;
  try {
    root = parseXml(xml);
    if (root.ns !== PSKC || root.name !== 'KeyContainer') throw new PskcError('PSKC の KeyContainer ではありません / not a PSKC KeyContainer');
    if (root.attrs.get('Version') !== '1.0') throw new PskcError('PSKC のバージョンは 1.0 のみ / only PSKC Version 1.0');
    c = containerCrypto(root, keys);
  } catch (e) {
    if (e instanceof PskcError || e instanceof XmlError) return { rows, errors: [e.message] };
    throw e;
  }
  const pkgs = kids(root, PSKC, 'KeyPackage');
  if (pkgs.length === 0) errors.push('KeyPackage がありません / no KeyPackage');
  const where: { serial: string; where: string }[] = [];
  pkgs.forEach((pkg, i) => {
    const serialHint = text(kid(kid(pkg, PSKC, 'DeviceInfo'), PSKC, 'SerialNo')).slice(0, 64);
    const label = `KeyPackage ${i + 1}${serialHint ? ` (${serialHint.replace(/[^\x21-\x7e]/g, '?')})` : ''}`;
    try {
      const r = keyPackage(pkg, c);
      rows.push({ ...r, user: null });
      where.push({ serial: r.serial, where: label });
    } catch (e) {
      if (e instanceof PskcError || e instanceof XmlError) errors.push(`${label}: ${e.message}`);
      else throw e;
    }
  });
  errors.push(...duplicateSerialErrors(where));
  return { rows, errors };
}
