/**
 * When a certificate is renewed (agent client certificates, the console's server certificate) and
 * how long a new one lives. Pure: the caller passes the certificate's dates and `now`.
 */
import { Type, type Static } from 'typebox';
import { Sha256Hex, wireCheck } from './wire-check.js';

const DAY = 86_400_000;
const closed = { additionalProperties: false } as const;

/**
 * POST /api/agent/cert/renew (mutual TLS with the agent's current certificate): a CSR for a key
 * made on the terminal, subject CN = the agent id. The console keeps the old certificate valid
 * next to the new one until the agent confirms it stored the new one.
 */
export const CertRenewRequestSchema = Type.Object({ csrPem: Type.String({ minLength: 1, maxLength: 8000 }) }, closed);
export type CertRenewRequest = Static<typeof CertRenewRequestSchema>;
export const certRenewRequestCheck = wireCheck(CertRenewRequestSchema);
export const CertRenewResponseSchema = Type.Object({ certPem: Type.String({ minLength: 1, maxLength: 16_000 }), fingerprint: Sha256Hex, notAfter: Type.String({ maxLength: 40 }) });
export type CertRenewResponse = Static<typeof CertRenewResponseSchema>;
export const certRenewResponseCheck = wireCheck(CertRenewResponseSchema);

/** POST /api/agent/cert/confirm: the agent has stored the new certificate durably; from now on only it is accepted. */
export const CertConfirmRequestSchema = Type.Object({ fingerprint: Sha256Hex }, closed);
export type CertConfirmRequest = Static<typeof CertConfirmRequestSchema>;
export const certConfirmRequestCheck = wireCheck(CertConfirmRequestSchema);

/** Certificates are issued valid from one day before issue, so a terminal whose clock is behind still accepts them. */
export const CERT_BACKDATE_MS = DAY;
/** Normal life of agent and server certificates. */
export const CERT_LIFE_MS = 5 * 365 * DAY;
/** Renew when less than this share of the certificate's life remains … */
export const RENEW_SHARE = 0.3;
/** … or less than this, whichever comes first (a 5-year certificate is renewed 60 days before it ends). */
export const RENEW_BEFORE_MS = 60 * DAY;

/**
 * Test-only: SEKIMORI_TEST_CERT_SECONDS makes newly issued agent and server certificates live that
 * many seconds (1–86,400), so a test sees renewal happen; anything else means the normal life.
 */
export function certLifeMs(env: Record<string, string | undefined>): number {
  const raw = env.SEKIMORI_TEST_CERT_SECONDS;
  if (raw === undefined || !/^[1-9]\d{0,4}$/.test(raw)) return CERT_LIFE_MS;
  const s = Number(raw);
  return s <= 86_400 ? s * 1000 : CERT_LIFE_MS;
}

/** The certificate's intended life: its validity minus the backdating before issue. */
function intendedLifeMs(notBefore: number, notAfter: number): number {
  const whole = notAfter - notBefore;
  return whole > CERT_BACKDATE_MS ? whole - CERT_BACKDATE_MS : whole;
}

/** The moment from which the certificate is due for renewal. */
export function renewalFrom(notBefore: number, notAfter: number): number {
  const window = Math.min(intendedLifeMs(notBefore, notAfter) * RENEW_SHARE, RENEW_BEFORE_MS);
  return notAfter - window;
}

export type RenewalState = 'valid' | 'due' | 'expired' | 'unreadable';

/** valid / due for renewal / already expired; dates that are not numbers or in the wrong order are unreadable. */
export function renewalState(notBefore: number, notAfter: number, now: number): RenewalState {
  if (!Number.isFinite(notBefore) || !Number.isFinite(notAfter) || !Number.isFinite(now) || notAfter <= notBefore) return 'unreadable';
  if (now >= notAfter) return 'expired';
  return now >= renewalFrom(notBefore, notAfter) ? 'due' : 'valid';
}
