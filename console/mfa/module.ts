/**
 * Console side of TOTP multi-factor login: the authority for every staff user's state (replay and
 * lockout hold across all terminals because they are decided here), the agent API, the
 * privacyIDEA-compatible /validate/check for Windows terminals, and the `mfa` CLI.
 */
import { isObject } from '../../protocol/validate.js';
import { isValidMfaUser } from '../../protocol/policy-mfa.js';
import type { MfaCacheResponse, MfaReconcileEntry, MfaReconcileResponse, MfaVerifyResponse } from '../../agent/mfa/wire.js';
import { HttpError, type ConsoleContext, type ConsoleModule, type Route } from '../module.js';
import { mfaCommand } from './cli.js';
import { cacheFor, mfaMigrations, reconcile, verifyAttempt } from './store.js';
import { validateCheckRoute } from './validate-check.js';

function agentOf(agentId: string | null): string {
  if (!agentId) throw new HttpError(401, 'client_certificate_required', 'agent certificate required');
  return agentId;
}

export function parseReconcile(x: unknown): MfaReconcileEntry[] {
  if (!isObject(x) || !Array.isArray(x.entries)) throw new HttpError(400, 'invalid_request', 'expected {entries: [...]}');
  if (x.entries.length > 10_000) throw new HttpError(400, 'invalid_request', 'at most 10000 entries');
  const out: MfaReconcileEntry[] = [];
  x.entries.forEach((e: unknown, i: number) => {
    const where = `entries[${i}]`;
    if (!isObject(e) || !isValidMfaUser(e.user) || typeof e.at !== 'string' || e.at.length > 40 || Number.isNaN(Date.parse(e.at))) {
      throw new HttpError(400, 'invalid_request', `${where}: needs a valid user and at`);
    }
    if (e.kind === 'step' && typeof e.step === 'number' && Number.isSafeInteger(e.step) && e.step >= 0) out.push({ user: e.user, kind: 'step', step: e.step, at: e.at });
    else if (e.kind === 'recovery' && typeof e.recoveryId === 'number' && Number.isSafeInteger(e.recoveryId)) out.push({ user: e.user, kind: 'recovery', recoveryId: e.recoveryId, at: e.at });
    else if (e.kind === 'failure') out.push({ user: e.user, kind: 'failure', at: e.at });
    else throw new HttpError(400, 'invalid_request', `${where}: unknown kind or bad fields`);
  });
  return out;
}

function routes(ctx: ConsoleContext): Route[] {
  return [
    {
      method: 'POST',
      path: '/api/agent/mfa/verify',
      auth: 'agent',
      maxBody: 4 * 1024,
      handle(req) {
        const terminal = agentOf(req.agentId);
        const b = req.json();
        if (!isObject(b)) throw new HttpError(400, 'invalid_request', 'body must be a JSON object');
        // Hostile values are judged (and rejected) by decide(); they never reach SQL unvalidated.
        const { verdict, state } = verifyAttempt(ctx, b.user, b.code, terminal);
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
        const entries = parseReconcile(req.json());
        const applied = reconcile(ctx, terminal, entries);
        const reply: MfaReconcileResponse = { applied };
        return { status: 200, json: reply };
      },
    },
    validateCheckRoute(ctx),
  ];
}

export const mfaModule: ConsoleModule = {
  name: 'mfa',
  migrations: mfaMigrations,
  routes,
  commands: { mfa: mfaCommand },
};
