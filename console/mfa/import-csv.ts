/**
 * Hardware-token seed files as CSV — pure parsers, no I/O. Every row is checked before anything
 * is stored; an unsupported or malformed row is an error naming its line, and the caller imports
 * nothing when there is any error (one transaction, all or nothing).
 */
import { normaliseUserName } from './identity.js';
import { base32Decode, OTP_ALGORITHMS, type OtpAlgorithm } from '../../protocol/mfa/otp.js';

export type TokenType = 'totp' | 'hotp';

/** One token to import. `user` null = unassigned (handed out later with `mfa assign-token`). */
export interface ImportRow {
  user: string | null;
  serial: string;
  secret: Buffer;
  type: TokenType;
  algorithm: OtpAlgorithm;
  digits: 6 | 8;
  period: number;
  /** HOTP: the next counter the token will use (PSKC Counter, privacyIDEA CSV's 5th column). */
  counter: number;
}

export interface ParseResult {
  rows: ImportRow[];
  errors: string[];
}

export const SERIAL_RE = /^[A-Za-z0-9._-]{1,64}$/;
export const MAX_LINES = 100_000;
export const MIN_SECRET = 10; // bytes: RFC 4226 asks 16, but RFC 6030's own examples ship 10
export const MAX_SECRET = 64;

const msg = (n: number, ja: string, en: string) => `${n}行目: ${ja} / line ${n}: ${en}`;

/** Rows with the same serial twice in one file: the second and later are errors. */
export function duplicateSerialErrors(rows: { serial: string; where: string }[]): string[] {
  const seen = new Map<string, string>();
  const out: string[] = [];
  for (const r of rows) {
    const first = seen.get(r.serial);
    if (first) out.push(`${r.where}: シリアル ${r.serial} が重複しています(${first}) / serial ${r.serial} repeated (first at ${first})`);
    else seen.set(r.serial, r.where);
  }
  return out;
}

function lines(text: string): string[] | null {
  const all = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  return all.length > MAX_LINES ? null : all;
}

/**
 * Sekimori CSV, with a header: user,serial,secret|seed_hex[,type,algorithm,digits,period,counter].
 * `user` may be empty (token stays unassigned). A header column we do not know is an error — an
 * ignored `type` column once made HOTP tokens TOTP ones.
 */
export function parseSekimoriCsv(text: string): ParseResult {
  const rows: ImportRow[] = [];
  const errors: string[] = [];
  const all = lines(text);
  if (!all) return { rows, errors: [`行数が多すぎます(最大 ${MAX_LINES}) / too many lines (max ${MAX_LINES})`] };
  const header = (all[0] ?? '').split(',').map((h) => h.trim().toLowerCase());
  const known = ['user', 'serial', 'secret', 'seed_hex', 'type', 'algorithm', 'digits', 'period', 'counter'];
  const unknown = header.filter((h) => !known.includes(h));
  const col = (n: string) => header.indexOf(n);
  if (unknown.length > 0) return { rows, errors: [msg(1, `不明な列 ${unknown.join(',')}`, `unknown column(s) ${unknown.join(',')}`)] };
  if (col('user') < 0 || col('serial') < 0 || (col('seed_hex') < 0) === (col('secret') < 0)) {
    return { rows, errors: [msg(1, '見出しに user, serial と secret(base32)または seed_hex のどちらか一方が必要です', 'header must name user, serial and one of secret (base32) or seed_hex')] };
  }
  const where: { serial: string; where: string }[] = [];
  for (let i = 1; i < all.length; i++) {
    const n = i + 1;
    const line = all[i]!;
    if (line.trim() === '' || line.startsWith('#')) continue;
    const f = line.split(',').map((s) => s.trim());
    if (f.length > header.length) {
      errors.push(msg(n, '列が多すぎます', 'too many columns'));
      continue;
    }
    const get = (name: string) => (col(name) >= 0 ? (f[col(name)] ?? '') : '');
    // Names as the console stores them (NFC; Japanese and spaces allowed): identity.ts decides.
    const user = get('user') === '' ? '' : normaliseUserName(get('user'));
    if (user === null) {
      errors.push(msg(n, 'ユーザー名が不正です', 'invalid user name'));
      continue;
    }
    const serial = get('serial');
    if (!SERIAL_RE.test(serial)) {
      errors.push(msg(n, 'シリアルが不正です', 'invalid serial'));
      continue;
    }
    const secret = col('seed_hex') >= 0 ? hexSecret(get('seed_hex')) : base32Decode(get('secret'));
    const r = common(n, serial, secret, get('type') || 'totp', get('algorithm') || 'SHA1', get('digits') || '6', get('period') || '30', get('counter') || '0');
    if (typeof r === 'string') {
      errors.push(r);
      continue;
    }
    rows.push({ ...r, user: user === '' ? null : user });
    where.push({ serial, where: `line ${n}` });
  }
  errors.push(...duplicateSerialErrors(where));
  return { rows, errors };
}

/** Even-length hex only: an odd digit count or a stray character is refused, never truncated. */
export function hexSecret(h: string): Buffer | null {
  return /^([0-9a-fA-F]{2})+$/.test(h) ? Buffer.from(h, 'hex') : null;
}

function common(
  n: number,
  serial: string,
  secret: Buffer | null,
  typeIn: string,
  algIn: string,
  digitsIn: string,
  periodIn: string,
  counterIn: string,
): Omit<ImportRow, 'user'> | string {
  if (!secret || secret.length < MIN_SECRET || secret.length > MAX_SECRET) {
    return msg(n, `秘密鍵は${MIN_SECRET}〜${MAX_SECRET}バイトが必要です`, `secret must be ${MIN_SECRET}–${MAX_SECRET} bytes`);
  }
  const type = typeIn.toLowerCase();
  if (type !== 'totp' && type !== 'hotp') return msg(n, `未対応のトークン種別 ${typeIn.slice(0, 20)}(hotp / totp のみ)`, `unsupported token type ${typeIn.slice(0, 20)} (only hotp, totp)`);
  const algorithm = algIn.toUpperCase().replace('-', '') as OtpAlgorithm;
  if (!OTP_ALGORITHMS.includes(algorithm)) return msg(n, 'アルゴリズムは SHA1, SHA256, SHA512 のいずれか', 'algorithm must be SHA1, SHA256 or SHA512');
  if (digitsIn !== '6' && digitsIn !== '8') return msg(n, '桁数は 6 か 8', 'digits must be 6 or 8');
  if (periodIn !== '30' && periodIn !== '60') return msg(n, '周期は 30 か 60 秒', 'period must be 30 or 60');
  if (!/^[0-9]{1,15}$/.test(counterIn)) return msg(n, 'カウンタが不正です(0〜999999999999999)', 'invalid counter (0–999999999999999)');
  return { serial, secret, type, algorithm, digits: digitsIn === '6' ? 6 : 8, period: Number(periodIn), counter: Number(counterIn) };
}

/**
 * privacyIDEA's OATH CSV (privacyidea/lib/importotp.py `parseOATHcsv`), no header:
 *   serial, hexkey[, hotp|totp[, 6|8[, counter (hotp) | 30|60 (totp)]]]   — type defaults to hotp.
 * A first line `# version: 2` puts user, resolver, realm in front (resolver and realm are ignored;
 * a non-empty user assigns the token). As privacyIDEA does (tokenclass.get_import_csv), a 64-hex
 * key means SHA256 and a 128-hex key SHA512; 56/96-hex keys (SHA224/384) are refused. ocra, tan and
 * any other type are refused with their line number instead of being skipped.
 */
export function parseOathCsv(text: string): ParseResult {
  const rows: ImportRow[] = [];
  const errors: string[] = [];
  const all = lines(text);
  if (!all) return { rows, errors: [`行数が多すぎます(最大 ${MAX_LINES}) / too many lines (max ${MAX_LINES})`] };
  const v2 = /^#\s*version:\s*2\s*$/.test(all[0] ?? '');
  const where: { serial: string; where: string }[] = [];
  for (let i = 0; i < all.length; i++) {
    const n = i + 1;
    const line = all[i]!;
    if (line.startsWith('#') || line.trim() === '') continue;
    const f = line.split(',').map((s) => s.trim());
    let user = '';
    if (v2) {
      const raw = f.shift() ?? '';
      f.splice(0, 2); // resolver, realm: Sekimori has one user directory
      const u = raw === '' ? '' : normaliseUserName(raw);
      if (u === null) {
        errors.push(msg(n, 'ユーザー名が不正です', 'invalid user name'));
        continue;
      }
      user = u;
    }
    if (f.length < 2 || f.length > 5) {
      errors.push(msg(n, '列は serial, hexkey[, type[, digits[, counter|period]]] です', 'expected serial, hexkey[, type[, digits[, counter|period]]]'));
      continue;
    }
    const [serial = '', key = '', typeIn = 'hotp', digits = '6', fifth] = f;
    if (!SERIAL_RE.test(serial)) {
      errors.push(msg(n, 'シリアルが不正です', 'invalid serial'));
      continue;
    }
    if (key.length === 56 || key.length === 96) {
      errors.push(msg(n, '鍵長から SHA224/SHA384 と判断されます(未対応)', 'key length means SHA224/SHA384 (unsupported)'));
      continue;
    }
    const algorithm: OtpAlgorithm = key.length === 64 ? 'SHA256' : key.length === 128 ? 'SHA512' : 'SHA1';
    const type = (typeIn || 'hotp').toLowerCase();
    const r = common(n, serial, hexSecret(key), type, algorithm, digits || '6', type === 'totp' ? fifth || '30' : '30', type === 'hotp' ? fifth || '0' : '0');
    if (typeof r === 'string') {
      errors.push(r);
      continue;
    }
    rows.push({ ...r, user: user === '' ? null : user });
    where.push({ serial, where: `line ${n}` });
  }
  errors.push(...duplicateSerialErrors(where));
  return { rows, errors };
}
