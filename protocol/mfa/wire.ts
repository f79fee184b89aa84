/**
 * Wire shapes of the MFA part of the agent ↔ console API (mutual TLS, under /api/agent/mfa/).
 * Requests are declared once as TypeBox schemas: the type is Static<schema>, the check is the
 * schema compiled once (console routes: console/backbone/body.ts agentBody(check, body)).
 */
import { Type, type Static } from 'typebox';
import type { MfaReason, MfaStatus, RecoveryHash } from './decide.js';
import type { OtpAlgorithm } from './otp.js';
import { SafeCount, wireCheck } from '../wire-check.js';

/**
 * POST /api/agent/mfa/verify — the console decides; the terminal is the client certificate's agent.
 * Only the types and bounds are the schema's: a malformed user name or code is for decide() to
 * reject (and count) like any wrong code, not a 400.
 */
export const MfaVerifyRequestSchema = Type.Object(
  {
    user: Type.String({ maxLength: 256 }),
    code: Type.String({ maxLength: 256 }),
  },
  { additionalProperties: false },
);
export type MfaVerifyRequest = Static<typeof MfaVerifyRequestSchema>;
export const mfaVerifyRequestCheck = wireCheck(MfaVerifyRequestSchema);

export interface MfaUserSnapshot {
  lastStep: number;
  failures: number;
  lockedUntil: number;
}

export interface MfaVerifyResponse {
  result: 'accept' | 'reject';
  reason: MfaReason;
  step?: number;
  recoveryId?: number;
  lockedNow?: boolean;
  /** The user's state after this attempt, so the agent's offline cache stays current. */
  state?: MfaUserSnapshot;
}

export interface MfaCacheUser extends MfaUserSnapshot {
  user: string;
  status: MfaStatus;
  secret: string; // base32 seed: travels only inside mutual TLS, stored by the agent encrypted
  algorithm: OtpAlgorithm;
  digits: 6 | 8;
  period: number;
  recovery: RecoveryHash[];
  /** Hardware TOTP tokens: the clock drift in steps the console has learned (absent for apps). */
  drift?: number;
}

/** GET /api/agent/mfa/cache — only the users assigned to the asking terminal, only when policy allows offline. */
export interface MfaCacheResponse {
  generatedAt: string;
  offlineAllowed: boolean;
  users: MfaCacheUser[];
}

const ReconcileUser = Type.String({ minLength: 1, maxLength: 256 });
const ReconcileAt = Type.String({ minLength: 1, maxLength: 40 });

/** What happened on a terminal while the console was unreachable. */
export const MfaReconcileEntrySchema = Type.Union([
  Type.Object({ user: ReconcileUser, kind: Type.Literal('step'), step: SafeCount, at: ReconcileAt }, { additionalProperties: false }),
  Type.Object({ user: ReconcileUser, kind: Type.Literal('recovery'), recoveryId: Type.Integer({ minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER }), at: ReconcileAt }, { additionalProperties: false }),
  Type.Object({ user: ReconcileUser, kind: Type.Literal('failure'), at: ReconcileAt }, { additionalProperties: false }),
]);
export type MfaReconcileEntry = Static<typeof MfaReconcileEntrySchema>;
/**
 * One entry. A malformed entry is refused on its own in a 200 answer (a 400 would make the agent
 * send the batch again for ever); the user name and time are judged further by the console.
 */
export const mfaReconcileEntryCheck = wireCheck(MfaReconcileEntrySchema);

/** POST /api/agent/mfa/reconcile — the envelope: a 400 when it is wrong. */
export const MfaReconcileRequestSchema = Type.Object({ entries: Type.Array(Type.Unknown(), { maxItems: 10_000 }) }, { additionalProperties: false });
export interface MfaReconcileRequest {
  entries: MfaReconcileEntry[];
}
export const mfaReconcileRequestCheck = wireCheck(MfaReconcileRequestSchema);
export interface MfaReconcileResponse {
  applied: number;
  /** Entries the console will never accept (index into the request's entries, and why). */
  refused?: { index: number; reason: string }[];
}

/**
 * The agent's local socket route POST /mfa/verify (PAM module, `sekimori-agent mfa-verify`).
 * Open: the PAM module may send more than the agent reads. `user` is not typed here: a wrong
 * user is rejected (and recorded) by the decision, like a wrong code.
 */
export const LocalVerifyRequestSchema = Type.Object({
  user: Type.Unknown(),
  code: Type.String({ maxLength: 256 }),
  service: Type.Optional(Type.String({ maxLength: 1024 })),
  tty: Type.Optional(Type.String({ maxLength: 1024 })),
  rhost: Type.Optional(Type.String({ maxLength: 1024 })),
});
export interface LocalVerifyRequest {
  user: string;
  code: string;
  service?: string;
  tty?: string;
  rhost?: string;
}
export const localVerifyRequestCheck = wireCheck(LocalVerifyRequestSchema);
/** `result` is the first member on purpose: the PAM module checks the body starts with {"result":"accept". */
export interface LocalVerifyResponse {
  result: 'accept' | 'reject';
  reason: MfaReason;
  message: string;
  offline: boolean;
}
