/** Wire shapes of the MFA part of the agent ↔ console API (mutual TLS, under /api/agent/mfa/). */
import type { MfaReason, MfaStatus, RecoveryHash } from './decide.js';
import type { OtpAlgorithm } from './otp.js';

/** POST /api/agent/mfa/verify — the console decides; the terminal is the client certificate's agent. */
export interface MfaVerifyRequest {
  user: string;
  code: string;
}

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

/** What happened on a terminal while the console was unreachable. */
export type MfaReconcileEntry =
  | { user: string; kind: 'step'; step: number; at: string }
  | { user: string; kind: 'recovery'; recoveryId: number; at: string }
  | { user: string; kind: 'failure'; at: string };

/** POST /api/agent/mfa/reconcile */
export interface MfaReconcileRequest {
  entries: MfaReconcileEntry[];
}
export interface MfaReconcileResponse {
  applied: number;
  /** Entries the console will never accept (index into the request's entries, and why). */
  refused?: { index: number; reason: string }[];
}

/** The agent's local socket route POST /mfa/verify (PAM module, `sekimori-agent mfa-verify`). */
export interface LocalVerifyRequest {
  user: string;
  code: string;
  service?: string;
  tty?: string;
  rhost?: string;
}
/** `result` is the first member on purpose: the PAM module checks the body starts with {"result":"accept". */
export interface LocalVerifyResponse {
  result: 'accept' | 'reject';
  reason: MfaReason;
  message: string;
  offline: boolean;
}
