/**
 * privacyIDEA-compatible `POST /validate/check`, so Windows terminals can run the privacyIDEA
 * Credential Provider unchanged. The Credential Provider sends a form body (`user`, `pass`,
 * optionally `realm`, `transaction_id`) with Content-Type application/x-www-form-urlencoded and
 * reads `result.value` (true = success) and `detail.multi_challenge` from the JSON answer.
 *
 * Authorising the Windows terminal: the Credential Provider has no client certificate and no
 * custom headers, but it sends a configured realm. Each Windows terminal is registered with
 * `sekimori-console mfa client add --name WIN-01 [--address IP]`, which prints a credential
 * "WIN-01.<key>" once; IT staff put it in the Credential Provider's realm setting at install
 * (default realm, or the realm mapped for the domain). Other clients may send it as
 * `Authorization: Bearer WIN-01.<key>` instead. When an address was registered, the request
 * must also come from it. Only the key's hash is stored. Everything else is refused with a
 * privacyIDEA-style error (HTTP 401) — still JSON, because the Credential Provider parses
 * every answer as JSON.
 *
 * What a caller can learn is kept to accept / reject (issue 10, item 9): an unknown user, a user
 * without (confirmed, enabled) MFA, a wrong or replayed code and a locked user all get the same
 * REJECT answer; the reason is only in the console's event, and the work a recovery-shaped code
 * costs is padded so timing does not tell either. Limits (./limits.ts): per source
 * address on every request, per address on failed client authentications, per registered client;
 * over a limit the answer is HTTP 429 with Retry-After and a privacyIDEA error body. Refusals
 * anyone can cause are recorded folded (ctx.recordRepeated), one event per cause, address and minute.
 */
import { isValidMfaUser } from '../../protocol/policy-mfa.js';
import { safeText } from '../../protocol/text.js';
import { hashRecoveryCode, parseCode, REASON_TEXT, recoveryMatches, type MfaReason, type RecoveryHash } from '../../agent/mfa/decide.js';
import { RateLimiter } from '../core/limits.js';
import type { ApiRequest, ApiResponse, ConsoleContext, Route } from '../module.js';
import { MFA_LIMITS } from './limits.js';
import { authenticateValidateClient, verifyAttempt } from './store.js';

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
  return { status, json: envelope({ id: 1 }, { status: false, error: { code, message } }), ...(headers ? { headers } : {}) };
}

/** What the Credential Provider shows for every reject, whatever the reason (the reason is in the event only). */
export const GENERIC_REJECT_MESSAGE = REASON_TEXT.wrong_code;

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

function tooMany(seconds: number): ApiResponse {
  const s = Math.max(1, Math.ceil(seconds));
  return errorResponse(429, 4290, `試行が多すぎます。${s} 秒後に再度お試しください / too many attempts; retry after ${s} s`, { 'retry-after': String(s) });
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
  const text = body.toString('latin1');
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
  const form = parseForm(req.body, String(req.headers['content-type'] ?? ''));
  if (!form) return errorResponse(400, 905, 'malformed request body');
  const auth = String(req.headers.authorization ?? '');
  const credential = auth.startsWith('Bearer ') ? auth.slice(7).trim() : (form.get('realm') ?? '');
  const terminal = authenticateValidateClient(ctx, credential, from);
  if (!terminal) {
    // No user attempt is counted for an unknown client: it cannot lock staff out by guessing.
    limits.unauthenticated.take(from);
    refused('unregistered_client');
    return errorResponse(401, 4033, 'Authentication failure. This client is not registered with the Sekimori console.');
  }
  if (!limits.client.take(terminal)) {
    ctx.recordRepeated(
      { type: 'mfa.rate_limited', terminalId: terminal, data: { terminal, route: 'validate/check', from: safeText(from, 64) } },
      `mfa_rate_limited:validate:${terminal}`,
    );
    return tooMany(limits.client.retryAfterSeconds(terminal));
  }
  const userRaw = form.get('user') ?? '';
  const pass = form.get('pass') ?? '';
  if (form.has('transaction_id') && pass === '') {
    // Challenge-response (push) is not offered: nothing to poll for.
    return { status: 200, json: envelope({ id: 1 }, { status: true, value: false, authentication: 'REJECT' }, { message: 'no challenge', threadid: 0 }) };
  }
  const { verdict } = verifyAttempt(ctx, userRaw, pass, terminal);
  const user = isValidMfaUser(userRaw) ? userRaw : null;
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
        : { message: GENERIC_REJECT_MESSAGE, threadid: 0 },
    ),
  };
}
