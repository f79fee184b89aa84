import { boolErrors, isObject, unknownKeys } from './validate.js';

/** Multi-factor section of the signed policy (issue: TOTP login and unlock). */
export interface MfaPolicy {
  /** May the agent verify from its encrypted cache while the console is unreachable? */
  offlineAllowed: boolean;
}

export function defaultMfaPolicy(): MfaPolicy {
  return { offlineAllowed: false };
}

export function mfaPolicyErrors(x: unknown, where = 'mfa'): string[] {
  if (!isObject(x)) return [`${where}: must be an object`];
  return [...unknownKeys(x, ['offlineAllowed'], where), ...boolErrors(x.offlineAllowed, `${where}.offlineAllowed`)];
}
