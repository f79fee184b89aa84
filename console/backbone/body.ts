/**
 * One rule for every body an agent sends: it matches its wire schema (protocol/api.ts,
 * protocol/mfa/wire.ts), or the answer is 400 `invalid_request` naming each failing path.
 * Nothing is repaired (no '' or 0 for a bad field): a wrong body is the agent's bug to see.
 */
import { enrollRequestCheck, type EnrollRequest } from '../../protocol/api.js';
import type { WireCheck } from '../../protocol/wire-check.js';
import { HttpError } from '../module.js';

export function agentBody<T>(check: WireCheck<T>, body: unknown): T {
  if (check.check(body)) return body;
  const details = check.errors(body, 'body');
  throw new HttpError(400, 'invalid_request', details[0] ?? 'body: malformed', details);
}

/** POST /api/agent/enroll's body; what an agent may leave out is '' (as stored before). */
export function parseEnroll(body: unknown): Required<EnrollRequest> {
  const r = agentBody(enrollRequestCheck, body);
  return { ...r, os: r.os ?? '', agentVersion: r.agentVersion ?? '' };
}
