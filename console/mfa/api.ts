/**
 * HTTP API of the MFA feature: the agents' verify, cache and reconcile endpoints, and the
 * privacyIDEA-compatible /validate/* for Windows terminals (./validate-check.ts; served on the main
 * port and on the validate port, see console/core/server.ts). Codes are judged by the store, which
 * calls the one decision in protocol/mfa/decide.ts.
 */
import { isValidMfaUser } from '../../protocol/policy-mfa.js';
import {
  mfaReconcileEntryCheck,
  mfaReconcileRequestCheck,
  mfaVerifyRequestCheck,
  type MfaCacheResponse,
  type MfaReconcileEntry,
  type MfaReconcileResponse,
  type MfaVerifyResponse,
} from '../../protocol/mfa/wire.js';
import { agentBody } from '../backbone/body.js';
import { RateLimiter, tooManyRequests } from '../core/limits.js';
import { HttpError, type ConsoleContext, type Route } from '../module.js';
import { MFA_LIMITS } from './limits.js';
import type { ReconcileRefusal } from './reconcile.js';
import { cacheFor, reconcile, verifyAttempt } from './store.js';
import { syncUserKeys } from './identity.js';
import { validateCheckRoute, validateOtherRoutes } from './validate-check.js';

/**
 * The reconcile answer: `refused` entries will never be accepted, so the agent drops them with the
 * rest of the batch (it deletes a batch on any 200) instead of sending them again.
 */
export interface ReconcileReply extends MfaReconcileResponse {
  refused: { index: number; reason: ReconcileRefusal | 'malformed' }[];
}

function agentOf(agentId: string | null): string {
  if (!agentId) throw new HttpError(401, 'client_certificate_required', 'agent certificate required');
  return agentId;
}

export interface ParsedReconcile {
  /** The well-formed entries, and where each stood in the request. */
  entries: MfaReconcileEntry[];
  positions: number[];
  /**
   * Indexes of malformed entries. They are refused one by one in a 200 answer rather than failing
   * the batch with a 400, which the agent would send again every few seconds for ever.
   */
  malformed: number[];
}

/**
 * The envelope and each entry are judged by their wire schemas (protocol/mfa/wire.ts); beyond the
 * schema an entry needs a user name terminals may use and a time that parses.
 */
export function parseReconcile(x: unknown): ParsedReconcile {
  const body = agentBody(mfaReconcileRequestCheck, x); // 400: not {entries: [...]}, or over 10000 entries
  const out: ParsedReconcile = { entries: [], positions: [], malformed: [] };
  body.entries.forEach((e, i) => {
    if (mfaReconcileEntryCheck.check(e) && isValidMfaUser(e.user) && !Number.isNaN(Date.parse(e.at))) {
      out.entries.push(e);
      out.positions.push(i);
    } else out.malformed.push(i);
  });
  return out;
}

export function mfaRoutes(ctx: ConsoleContext): Route[] {
  // Names enrolled before Windows identities existed get theirs now (a collision leaves the newer one Linux-only).
  const collided = syncUserKeys(ctx);
  if (collided.length > 0) {
    process.stderr.write(
      `[console] 多要素認証: 次の利用者は別の利用者と Windows 上で同じ名前になるため Windows から使えません / MFA: these users share a Windows identity with an older enrolment and cannot be used from Windows: ${collided.join(', ')}\n`,
    );
  }
  const rejectLimit = new RateLimiter(MFA_LIMITS.agentRejects);
  const reconcileLimit = new RateLimiter(MFA_LIMITS.agentReconcile);
  /** Refuses with 429 (the agent then fails closed for this attempt) and tells the administrator, folded per terminal. */
  const limited = (terminal: string, limiter: RateLimiter, what: string, route: string): never => {
    ctx.recordRepeated(
      { type: 'mfa.rate_limited', terminalId: terminal, data: { terminal, route, limit: what } },
      `mfa_rate_limited:${route}:${terminal}`,
    );
    throw tooManyRequests(limiter.retryAfterSeconds(terminal), what);
  };
  return [
    {
      method: 'POST',
      path: '/api/agent/mfa/verify',
      auth: 'agent',
      maxBody: 4 * 1024,
      handle(req) {
        const terminal = agentOf(req.agentId);
        // Checked before the code is looked at: once over, no more guesses are judged at all.
        if (rejectLimit.retryAfterSeconds(terminal) > 0) limited(terminal, rejectLimit, 'failed MFA verifications from this terminal', 'verify');
        const b = agentBody(mfaVerifyRequestCheck, req.json());
        // Hostile names and codes are judged (and rejected, and counted) by decide(); they never reach SQL unvalidated.
        const { verdict, state } = verifyAttempt(ctx, b.user, b.code, terminal);
        if (verdict.result === 'reject') rejectLimit.take(terminal);
        const reply: MfaVerifyResponse = {
          result: verdict.result,
          reason: verdict.reason,
          ...(verdict.step !== undefined ? { step: verdict.step } : {}),
          ...(verdict.recoveryId !== undefined ? { recoveryId: verdict.recoveryId } : {}),
          ...(verdict.lockedNow ? { lockedNow: true } : {}),
          ...(state ? { state } : {}),
        };
        // The agent records the event in its own chain (terminal = agent), so none is written here.
        return { status: 200, json: reply };
      },
    },
    {
      method: 'GET',
      path: '/api/agent/mfa/cache',
      auth: 'agent',
      handle(req) {
        const terminal = agentOf(req.agentId);
        const c = cacheFor(ctx, terminal);
        const reply: MfaCacheResponse = { generatedAt: new Date().toISOString(), ...c };
        return { status: 200, json: reply };
      },
    },
    {
      method: 'POST',
      path: '/api/agent/mfa/reconcile',
      auth: 'agent',
      maxBody: 1024 * 1024,
      handle(req) {
        const terminal = agentOf(req.agentId);
        if (!reconcileLimit.take(terminal)) limited(terminal, reconcileLimit, 'MFA reconciliations from this terminal', 'reconcile');
        const parsed = parseReconcile(req.json());
        const { applied, refused: judged } = reconcile(ctx, terminal, parsed.entries);
        const refused: ReconcileReply['refused'] = [
          ...judged.map((r) => ({ index: parsed.positions[r.index]!, reason: r.reason })),
          ...parsed.malformed.map((index) => ({ index, reason: 'malformed' as const })),
        ].sort((a, b) => a.index - b.index);
        if (refused.length > 0) {
          const reasons: Record<string, number> = {};
          for (const r of refused) reasons[r.reason] = (reasons[r.reason] ?? 0) + 1;
          ctx.recordRepeated(
            {
              type: 'mfa.reconcile_refused',
              terminalId: terminal,
              data: { terminal, refused: refused.length, applied, reasons, users: [...new Set(judged.map((r) => r.user))].slice(0, 20) },
            },
            `reconcile_refused:${terminal}`,
          );
        }
        // 200 even when everything was refused: the agent deletes the batch (a 4xx would be retried forever).
        const reply: ReconcileReply = { applied, refused };
        return { status: 200, json: reply };
      },
    },
    validateCheckRoute(ctx),
    ...validateOtherRoutes(),
  ];
}
