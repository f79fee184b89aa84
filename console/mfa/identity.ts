/**
 * Staff user names (issue 13): the name as enrolled (stored, shown, and matched exactly for Linux
 * terminals, whose PAM names are case-sensitive), and the identity Windows means by a name
 * (`userKey`: case-insensitive, domain and UPN suffix dropped, width-folded), kept one per stored
 * name and unique in `mfa_user_keys`, so "Yamada", "CITY\yamada" and "yamada@city.example.lg.jp"
 * reach one enrolment from the Credential Provider, while a Linux terminal still needs "yamada".
 *
 * The keys live in a table of their own (its own migration module, after `mfa`: ./schema.ts): it does not depend
 * on the columns of mfa_users, and `syncUserKeys` gives a key to every name that has none yet
 * (enrolled before keys existed, or inserted by code that does not know them).
 */
import { isValidMfaUser } from '../../protocol/policy-mfa.js';
import type { ConsoleContext } from '../module.js';
import { MfaError } from './errors.js';

/** Never part of a stored name: what Windows forbids in account names, and "\" (the domain separator). */
const FORBIDDEN_IN_NAME = /["/\\[\]:;|=,+*?<>]/;
export const MAX_NAME_CHARS = 64;

/**
 * A staff user name as stored: Unicode NFC, 1–64 characters of letters, marks, digits,
 * punctuation, symbols and spaces (U+0020, ideographic U+3000), so "山田 太郎" can be enrolled; no
 * control, format (bidi, zero-width), private-use, surrogate or unassigned code points; none of
 * " / \ [ ] : ; | = , + * ? < >; no leading or trailing space; not "." or "..". NFC changes no
 * ASCII, so a Linux login name stays exactly as PAM sends it (case included).
 */
export function normaliseUserName(x: unknown): string | null {
  if (typeof x !== 'string' || x.length === 0 || x.length > 4 * MAX_NAME_CHARS) return null;
  const n = x.normalize('NFC');
  if ([...n].length > MAX_NAME_CHARS) return null;
  if (!/^[\p{L}\p{M}\p{N}\p{P}\p{S} \u3000]+$/u.test(n)) return null;
  if (FORBIDDEN_IN_NAME.test(n) || /^[ \u3000]|[ \u3000]$/.test(n) || n === '.' || n === '..') return null;
  return n;
}

/**
 * The identity Windows means by what the Credential Provider sends as `user`: "yamada", "Yamada",
 * "CITY\yamada", "yamada@city.example.lg.jp" (UPN) and full-width "ｙａｍａｄａ" all give "yamada".
 * NFKC first (width variants and the ideographic space fold, as Active Directory ignores width),
 * then the domain is dropped (before the last "\", after the last "@"), then case is folded
 * (Windows account names are case-insensitive). Hiragana and katakana stay distinct. Null when
 * the account part is not a valid name, or the input holds control or format characters.
 */
export function userKey(x: unknown): string | null {
  if (typeof x !== 'string' || x.length === 0 || x.length > 1024 || /\p{C}/u.test(x)) return null;
  let n = x.normalize('NFKC').trim();
  const bs = n.lastIndexOf('\\');
  if (bs >= 0) n = n.slice(bs + 1);
  const at = n.lastIndexOf('@');
  if (at >= 0) n = n.slice(0, at);
  n = n.trim().toLowerCase().normalize('NFKC');
  return normaliseUserName(n) === n ? n : null;
}

export const INVALID_NAME_MESSAGE =
  'ユーザー名が不正です(1〜64文字。日本語・空白可、制御文字と " / \\ [ ] : ; | = , + * ? < > は不可) / invalid user name (1–64 characters; Japanese and spaces allowed; no control characters, no " / \\ [ ] : ; | = , + * ? < >)';

/** decide() checks the agents' ASCII grammar (protocol/policy-mfa.ts) on its `user` and uses it for nothing else. */
export function decideName(user: string): string {
  return isValidMfaUser(user) ? user : 'unicode-name';
}

/**
 * Gives every stored name without a key its key. A name whose key an older enrolment already holds
 * gets none: it stays usable from Linux terminals (exact name) and is unreachable from Windows.
 * Returns the names left without a key because of such a collision.
 */
export function syncUserKeys(ctx: ConsoleContext): string[] {
  const missing = ctx.db
    .prepare('SELECT u.user FROM mfa_users u LEFT JOIN mfa_user_keys k ON k.user = u.user WHERE k.user IS NULL ORDER BY u.created_at, u.user')
    .all() as { user: string }[];
  const collided: string[] = [];
  const ins = ctx.db.prepare('INSERT OR IGNORE INTO mfa_user_keys (user, canon) VALUES (?, ?)');
  for (const { user } of missing) {
    const key = userKey(user);
    if (key !== null && ins.run(user, key).changes === 0) collided.push(user);
  }
  return collided;
}

function holderOf(ctx: ConsoleContext, key: string): string | null {
  return (ctx.db.prepare('SELECT user FROM mfa_user_keys WHERE canon = ?').get(key) as { user: string } | undefined)?.user ?? null;
}

/** The stored name whose Windows identity `x` is, or null (unknown, or not a valid name). */
export function storedUserForWindows(ctx: ConsoleContext, x: unknown): string | null {
  const key = userKey(x);
  if (key === null) return null;
  const found = holderOf(ctx, key);
  if (found !== null) return found;
  syncUserKeys(ctx); // a name inserted without its key
  return holderOf(ctx, key);
}

/** Before a new enrolment: refuses a name whose Windows identity belongs to another enrolment, then records its key. */
export function claimUserKey(ctx: ConsoleContext, user: string): void {
  syncUserKeys(ctx);
  const key = userKey(user);
  if (key === null) return;
  const holder = holderOf(ctx, key);
  if (holder !== null && holder !== user) {
    throw new MfaError(
      `${user}: ${holder} と同じ利用者として扱われます(Windows は大文字小文字とドメインを区別しません) / the same staff identity as ${holder} (Windows ignores case and domain)`,
    );
  }
  ctx.db.prepare('INSERT OR IGNORE INTO mfa_user_keys (user, canon) VALUES (?, ?)').run(user, key);
}

/**
 * For administrators' commands: the stored name `x` means — itself when enrolled under exactly that
 * name, else the enrolment with the same Windows identity (so "Yamada" finds "yamada"), else `x`
 * (whose command then says "not enrolled").
 */
export function resolveAdminUser(ctx: ConsoleContext, x: unknown): string {
  const user = normaliseUserName(x);
  if (user === null) throw new MfaError(INVALID_NAME_MESSAGE);
  if (ctx.db.prepare('SELECT 1 FROM mfa_users WHERE user = ?').get(user) !== undefined) return user;
  return storedUserForWindows(ctx, user) ?? user;
}

/**
 * The Windows terminal behind a request that carries no credential at all (the Credential Provider
 * with send_upn=1 sends no realm): the one enabled client registered with `--address` equal to the
 * source address. None, or more than one with that address, is no identity.
 */
export function clientByAddress(ctx: ConsoleContext, remoteAddress: string): string | null {
  const a = remoteAddress.startsWith('::ffff:') ? remoteAddress.slice(7) : remoteAddress;
  if (a === '') return null;
  const rows = ctx.db.prepare('SELECT name FROM mfa_validate_clients WHERE disabled = 0 AND address IN (?, ?) LIMIT 2').all(a, `::ffff:${a}`) as { name: string }[];
  return rows.length === 1 ? `win:${rows[0]!.name}` : null;
}
