/**
 * privacyIDEA-compatible `POST /validate/check`, so Windows terminals can run the privacyIDEA
 * Credential Provider unchanged. The Credential Provider sends a form body (`user`, `pass`,
 * optionally `realm`, `transaction_id`) with Content-Type application/x-www-form-urlencoded and
 * reads `result.value` (true = success) and `detail.multi_challenge` from the JSON answer.
 *
 * Authorising the Windows terminal: the Credential Provider has no client certificate and no
 * custom headers, but it can send a configured realm. Each Windows terminal is registered with
 * `sekimori-console mfa client add --name WIN-01 [--address IP]`, which prints a credential
 * "WIN-01.<key>" once; IT staff put it in the Credential Provider's realm setting at install
 * (default realm, or the realm mapped for the domain). Other clients may send it as
 * `Authorization: Bearer WIN-01.<key>` instead. When an address was registered, the request
 * must also come from it. Only the key's hash is stored. With `send_upn=1` the Credential
 * Provider sends no realm at all (PrivacyIDEA.cpp, ValidateCheck): a request with neither realm
 * nor Authorization is then identified by its source address alone, which must be registered
 * for exactly one client. Everything else is refused with a privacyIDEA-style error (HTTP 401) —
 * still JSON, because the Credential Provider parses every answer as JSON.
 *
 * User names are matched as Windows means them (./identity.ts userKey): case-insensitive, with or
 * without "DOMAIN\" or the UPN suffix, width-folded.
 *
 * Two-step (`two_step_send_empty_password`, `two_step_send_password`, and the PAM module's
 * sendEmptyPass): the first request carries no transaction_id and an empty pass or the Windows
 * password. A pass without transaction_id that cannot be a code (not 6 or 8 digits, not a
 * recovery code) is answered as privacyIDEA answers a challenge-response TOTP token being
 * triggered — authentication CHALLENGE, detail.multi_challenge with the prompt, a transaction_id
 * — for every user alike (existing or not), counting nothing. The Credential Provider shows the
 * challenge's message as the code prompt (CCredential.cpp, SetMode PRIVACYIDEA:
 * PIResponse::GetNonFIDOMessage), in Japanese, or English when its Accept-Language is English.
 *
 * What a caller can learn is kept to accept / reject (issue 10, item 9): an unknown user, a user
 * without (confirmed, enabled) MFA, a wrong or replayed code and a locked user all get the same
 * REJECT answer; the reason is only in the console's event, and the work a recovery-shaped code
 * costs is padded so timing does not tell either. Limits (./limits.ts): per source
 * address on every request, per address on failed client authentications, per registered client;
 * over a limit the answer is HTTP 429 with Retry-After and a privacyIDEA error body. Refusals
 * anyone can cause are recorded folded (ctx.recordRepeated), one event per cause, address and minute.
 */
import { randomInt } from 'node:crypto';
import { safeText } from '../../protocol/text.js';
import { decide, hashRecoveryCode, parseCode, REASON_TEXT, recoveryMatches, type MfaReason, type RecoveryHash } from '../../protocol/mfa/decide.js';
import { RateLimiter } from '../core/limits.js';
import type { ApiRequest, ApiResponse, ConsoleContext, Route } from '../module.js';
import { MFA_LIMITS } from './limits.js';
import { clientByAddress, storedUserForWindows, userKey } from './identity.js';
import { authenticateValidateClient, mfaPolicy, verifyAttempt } from './store.js';

const VERSION = 'privacyIDEA 3.10 (Sekimori compatible)';

function envelope(ctx: { id: number }, result: Record<string, unknown>, detail?: Record<string, unknown>): Record<string, unknown> {
  return {
    id: ctx.id,
    jsonrpc: '2.0',
    result,
    time: Date.now() / 1000,
    version: VERSION,
    versionnumber: '3.10',
    ...(detail ? { detail } : {}),
  };
}

function errorResponse(status: number, code: number, message: string, headers?: Record<string, string>): ApiResponse {
  // privacyIDEA's send_error: detail null, error.code an integer (the Credential Provider's parser calls get<int>() on it).
  return { status, json: { ...envelope({ id: 1 }, { status: false, error: { code, message } }), detail: null }, ...(headers ? { headers } : {}) };
}

export type Lang = 'ja' | 'en' | 'both';

/** The Credential Provider sends its Windows display language as Accept-Language ("ja-jp", "en-us"). */
export function langOf(acceptLanguage: unknown): Lang {
  const first = String(acceptLanguage ?? '').split(',')[0]!.trim().toLowerCase();
  if (first.startsWith('ja')) return 'ja';
  if (first.startsWith('en')) return 'en';
  return 'both';
}

/** "日本語 / English" → the part for `lang` (both when not asked for one). */
export function pick(text: string, lang: Lang): string {
  const i = text.indexOf(' / ');
  if (lang === 'both' || i < 0) return text;
  return lang === 'ja' ? text.slice(0, i) : text.slice(i + 3);
}

/** What the Credential Provider shows for every reject, whatever the reason (the reason is in the event only). */
export const GENERIC_REJECT_MESSAGE = REASON_TEXT.wrong_code;
/** The code prompt after the first of two steps. */
export const PROMPT_MESSAGE = '認証コードを入力してください / Enter your verification code';

/** Could this be a code at all (6 or 8 digits, or a recovery code)? Independent of the user, so it tells nothing about one. */
export function isCodeShaped(pass: string): boolean {
  const p = pass.normalize('NFKC');
  return parseCode(p, 6).kind !== 'malformed' || parseCode(p, 8).kind !== 'malformed';
}

/** A privacyIDEA-style transaction id (20 digits). It carries no authority here: the code decides. */
function transactionId(): string {
  let s = String(randomInt(1, 10));
  while (s.length < 20) s += String(randomInt(0, 10));
  return s;
}

/**
 * privacyIDEA's answer when a challenge-response TOTP token is triggered (lib/token/auth.py
 * create_challenges_from_tokens + lib/utils prepare_result): the same for every user.
 */
export function challengeResponse(lang: Lang): ApiResponse {
  const tid = transactionId();
  const message = pick(PROMPT_MESSAGE, lang);
  const challenge = { transaction_id: tid, serial: '', type: 'totp', client_mode: 'interactive', message };
  return {
    status: 200,
    json: envelope(
      { id: 1 },
      { status: true, value: false, authentication: 'CHALLENGE' },
      {
        message,
        messages: [message],
        multi_challenge: [challenge],
        transaction_id: tid,
        transaction_ids: [tid],
        client_mode: 'interactive',
        preferred_client_mode: 'interactive',
        type: 'totp',
        serial: '',
        threadid: 0,
      },
    ),
  };
}

/**
 * A recovery-shaped code costs one scrypt per unused recovery code of an active user (~16 ms
 * each) and nothing for anyone else: the answer's timing would tell who is enrolled. So the work
 * is padded to at least RECOVERY_WORK comparisons whatever the reason.
 */
const RECOVERY_WORK = 10;
let dummyHash: RecoveryHash | null = null;

/** Dummy comparisons still to do after decide() judged a recovery-shaped code. */
export function recoveryPadding(reason: MfaReason, unusedCodes: number): number {
  // decide() compares with every unused code only when none matched (wrong_code); otherwise with none.
  const compared = reason === 'wrong_code' ? unusedCodes : 0;
  return reason === 'recovery' ? 0 : Math.max(RECOVERY_WORK, unusedCodes) - compared;
}

function padRecoveryWork(ctx: ConsoleContext, user: string | null, pass: string, reason: MfaReason): void {
  if (parseCode(pass, 6).kind !== 'recovery') return;
  const unused = user ? (ctx.db.prepare('SELECT count(*) AS n FROM mfa_recovery_codes WHERE user = ? AND used_at IS NULL').get(user) as { n: number }).n : 0;
  dummyHash ??= hashRecoveryCode('0000-0000-0000', 0);
  for (let i = recoveryPadding(reason, unused); i > 0; i--) recoveryMatches('ZZZZZZZZZZZZ', dummyHash);
}

function tooMany(seconds: number, lang: Lang = 'both'): ApiResponse {
  const s = Math.max(1, Math.ceil(seconds));
  return errorResponse(429, 4290, pick(`試行が多すぎます。${s} 秒後に再度お試しください / too many attempts; retry after ${s} s`, lang), { 'retry-after': String(s) });
}

/** Percent-decoding of an x-www-form-urlencoded body; returns null on malformed encoding. */
export function parseForm(body: Buffer, contentType: string): Map<string, string> | null {
  const out = new Map<string, string>();
  if (contentType.startsWith('application/json')) {
    try {
      const j = JSON.parse(body.toString('utf8')) as unknown;
      if (typeof j !== 'object' || j === null || Array.isArray(j)) return null;
      for (const [k, v] of Object.entries(j)) if (typeof v === 'string') out.set(k, v);
      return out;
    } catch {
      return null;
    }
  }
  let text: string;
  try {
    // WinHTTP sends what AtlEscapeUrl made of UTF-8 (all non-ASCII percent-encoded); raw bytes must be UTF-8 too.
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return null;
  }
  if (text.length === 0) return out;
  for (const part of text.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawK = eq < 0 ? part : part.slice(0, eq);
    const rawV = eq < 0 ? '' : part.slice(eq + 1);
    try {
      const k = decodeURIComponent(rawK.replace(/\+/g, ' '));
      const v = decodeURIComponent(rawV.replace(/\+/g, ' '));
      if (!out.has(k)) out.set(k, v); // first occurrence wins: no parameter pollution
    } catch {
      return null;
    }
  }
  return out;
}

export function validateCheckRoute(ctx: ConsoleContext): Route {
  const limits: Limits = {
    address: new RateLimiter(MFA_LIMITS.validateAddress),
    unauthenticated: new RateLimiter(MFA_LIMITS.validateUnauthenticated),
    client: new RateLimiter(MFA_LIMITS.validateClient),
  };
  return {
    method: 'POST',
    path: '/validate/check',
    auth: 'none',
    maxBody: 4 * 1024,
    handle(req: ApiRequest): ApiResponse {
      try {
        return handle(ctx, limits, req);
      } catch {
        return errorResponse(500, 500, 'internal error');
      }
    },
  };
}

interface Limits {
  address: RateLimiter;
  unauthenticated: RateLimiter;
  client: RateLimiter;
}

function handle(ctx: ConsoleContext, limits: Limits, req: ApiRequest): ApiResponse {
  const from = req.remoteAddress;
  const refused = (cause: string, extra: Record<string, unknown> = {}) =>
    ctx.recordRepeated(
      {
        type: 'admin.mfa_validate_refused',
        data: { cause, from: safeText(from, 64), userAgent: safeText(String(req.headers['user-agent'] ?? ''), 100), ...extra },
      },
      `validate_refused:${cause}:${from}`,
    );
  if (!limits.address.take(from)) {
    refused('too_many_from_address');
    return tooMany(limits.address.retryAfterSeconds(from));
  }
  // An address that keeps failing client authentication is not even checked until it has waited.
  const wait = limits.unauthenticated.retryAfterSeconds(from);
  if (wait > 0) {
    refused('too_many_unauthenticated');
    return tooMany(wait);
  }
  const lang = langOf(req.headers['accept-language']);
  const form = parseForm(req.body, String(req.headers['content-type'] ?? ''));
  if (!form) return errorResponse(400, 905, pick('リクエストの形式が不正です / malformed request body', lang));
  const auth = String(req.headers.authorization ?? '');
  const bearer = auth.startsWith('Bearer ') ? auth.slice(7).trim() : null;
  // No realm and no Authorization at all (send_upn=1): the registered source address is the identity.
  const terminal =
    bearer === null && !form.has('realm') ? clientByAddress(ctx, from) : authenticateValidateClient(ctx, bearer ?? form.get('realm') ?? '', from);
  if (!terminal) {
    // No user attempt is counted for an unknown client: it cannot lock staff out by guessing.
    limits.unauthenticated.take(from);
    refused('unregistered_client');
    return errorResponse(
      401,
      4033,
      pick('この端末は管理コンソールに登録されていません (mfa client add) / Authentication failure. This client is not registered with the Sekimori console (mfa client add).', lang),
    );
  }
  if (!limits.client.take(terminal)) {
    ctx.recordRepeated(
      { type: 'mfa.rate_limited', terminalId: terminal, data: { terminal, route: 'validate/check', from: safeText(from, 64) } },
      `mfa_rate_limited:validate:${terminal}`,
    );
    return tooMany(limits.client.retryAfterSeconds(terminal), lang);
  }
  const userRaw = form.get('user') ?? '';
  // NFKC: digits typed with the Japanese IME on arrive full-width ("１２３４５６").
  const pass = (form.get('pass') ?? '').normalize('NFKC');
  if (!form.has('transaction_id') && !isCodeShaped(pass)) {
    // First of two steps (empty pass or the Windows password): prompt for the code, count nothing.
    return challengeResponse(lang);
  }
  if (form.has('transaction_id') && pass === '') {
    // An empty code in the second step (or a push poll's finalisation; push is not offered): nothing to judge, nothing counted.
    return { status: 200, json: envelope({ id: 1 }, { status: true, value: false, authentication: 'REJECT' }, { message: pick(PROMPT_MESSAGE, lang), threadid: 0 }) };
  }
  // The enrolment Windows means by this name (case, domain and UPN suffix ignored); unknown names stay unknown.
  const user = storedUserForWindows(ctx, userRaw);
  const verdict =
    user !== null
      ? verifyAttempt(ctx, user, pass, terminal).verdict
      : // Nobody to count against: judged only for the event's reason (invalid_user or not_enrolled).
        decide(null, { user: userKey(userRaw) === null ? null : 'unknown.user', code: pass, nowMs: Date.now(), policy: mfaPolicy(ctx) });
  padRecoveryWork(ctx, user, pass, verdict.reason);
  ctx.recordEvent({
    type: verdict.event,
    user,
    terminalId: terminal,
    data: {
      terminal,
      result: verdict.result,
      reason: verdict.reason,
      via: 'validate/check',
      ...(user === null ? { userShown: safeText(userRaw, 64) } : {}),
      ...(verdict.step !== undefined ? { step: verdict.step } : {}),
      ...(verdict.lockedNow ? { locked: true } : {}),
    },
  });
  const accept = verdict.result === 'accept';
  return {
    status: 200,
    json: envelope(
      { id: 1 },
      { status: true, value: accept, authentication: accept ? 'ACCEPT' : 'REJECT' },
      accept
        ? { message: 'matching 1 tokens', type: verdict.reason === 'recovery' ? 'registration' : 'totp', threadid: 0 }
        : { message: pick(GENERIC_REJECT_MESSAGE, lang), threadid: 0 },
    ),
  };
}

/**
 * The other /validate/* endpoints the Credential Provider may call (PrivacyIDEA.h PI_ENDPOINT_*),
 * answered as privacyIDEA answers what it does not have, so the CP's parser never fails:
 * - GET /validate/polltransaction: value false (push is never offered, so the CP never polls; a
 *   stray poll just waits).
 * - POST /validate/offlinerefill: 400 with privacyIDEA's ParameterError code 905. Sekimori hands out
 *   no offline OTP values (see the README, offline Windows logon); on 905 the CP drops any offline
 *   data it holds for the token (JsonParser::IsStillActiveOfflineToken).
 * - POST /validate/initialize (passkey sign-in, hidden with disable_passkey=1): 400, code 905.
 * No client credential is asked for: they judge nothing and disclose nothing; the server's
 * per-address request limit applies.
 */
export function validateOtherRoutes(): Route[] {
  const unsupported = (what: string): ApiResponse =>
    errorResponse(400, 905, `${what}は Sekimori では提供していません / ${what.replace('オフライン認証', 'offline authentication').replace('パスキー', 'passkey sign-in')} is not offered by Sekimori`);
  return [
    {
      method: 'GET',
      path: '/validate/polltransaction',
      auth: 'none',
      handle: () => ({ status: 200, json: envelope({ id: 1 }, { status: true, value: false }, { challenge_status: 'pending', threadid: 0 }) }),
    },
    { method: 'POST', path: '/validate/offlinerefill', auth: 'none', maxBody: 4 * 1024, handle: () => unsupported('オフライン認証') },
    { method: 'POST', path: '/validate/initialize', auth: 'none', maxBody: 4 * 1024, handle: () => unsupported('パスキー') },
  ];
}
