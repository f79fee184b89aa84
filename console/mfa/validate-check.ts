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
 */
import { isValidMfaUser } from '../../protocol/policy-mfa.js';
import { safeText } from '../../protocol/text.js';
import { REASON_TEXT } from '../../agent/mfa/decide.js';
import type { ApiRequest, ApiResponse, ConsoleContext, Route } from '../module.js';
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

function errorResponse(status: number, code: number, message: string): ApiResponse {
  return { status, json: envelope({ id: 1 }, { status: false, error: { code, message } }) };
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
  return {
    method: 'POST',
    path: '/validate/check',
    auth: 'none',
    maxBody: 4 * 1024,
    handle(req: ApiRequest): ApiResponse {
      try {
        return handle(ctx, req);
      } catch {
        return errorResponse(500, 500, 'internal error');
      }
    },
  };
}

function handle(ctx: ConsoleContext, req: ApiRequest): ApiResponse {
  const form = parseForm(req.body, String(req.headers['content-type'] ?? ''));
  if (!form) return errorResponse(400, 905, 'malformed request body');
  const auth = String(req.headers.authorization ?? '');
  const credential = auth.startsWith('Bearer ') ? auth.slice(7).trim() : (form.get('realm') ?? '');
  const terminal = authenticateValidateClient(ctx, credential, req.remoteAddress);
  if (!terminal) {
    // No user attempt is counted for an unknown client: it cannot lock staff out by guessing.
    ctx.recordEvent({
      type: 'admin.mfa_validate_refused',
      data: { from: safeText(req.remoteAddress, 64), userAgent: safeText(String(req.headers['user-agent'] ?? ''), 100) },
    });
    return errorResponse(401, 4033, 'Authentication failure. This client is not registered with the Sekimori console.');
  }
  const userRaw = form.get('user') ?? '';
  const pass = form.get('pass') ?? '';
  if (form.has('transaction_id') && pass === '') {
    // Challenge-response (push) is not offered: nothing to poll for.
    return { status: 200, json: envelope({ id: 1 }, { status: true, value: false, authentication: 'REJECT' }, { message: 'no challenge', threadid: 0 }) };
  }
  const { verdict } = verifyAttempt(ctx, userRaw, pass, terminal);
  const user = isValidMfaUser(userRaw) ? userRaw : null;
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
        : { message: REASON_TEXT[verdict.reason], threadid: 0 },
    ),
  };
}
