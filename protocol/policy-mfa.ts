import { boolErrors, intErrors, isObject, unknownKeys } from './validate.js';

/** Multi-factor section of the signed policy (issue: TOTP login and unlock). */
export interface MfaPolicy {
  /** May the agent verify from its encrypted cache while the console is unreachable? */
  offlineAllowed: boolean;
  /** How old (hours since the last successful sync) the offline cache may be and still be used. */
  offlineMaxAgeHours: number;
  /** Accepted clock drift in time steps on each side of "now" (±1 = ±30 s for 30 s tokens). */
  windowSteps: number;
  /** Consecutive failures (wrong, replayed or malformed codes) that lock the user. */
  maxFailures: number;
  /** How long a lock lasts. While locked even a correct code is refused. */
  lockoutSeconds: number;
  /**
   * When the agent cannot be reached, the PAM module refuses (fail closed). With breakGlass the
   * agent leaves a root-owned marker file next to its socket and the module then lets the password
   * alone decide — for municipalities that prefer availability; every such login is logged.
   */
  breakGlass: boolean;
  /** Only users assigned to a terminal may verify there (assignments are kept in the console). */
  requireAssignment: boolean;
}

export function defaultMfaPolicy(): MfaPolicy {
  return {
    offlineAllowed: false,
    offlineMaxAgeHours: 72,
    windowSteps: 1,
    maxFailures: 5,
    lockoutSeconds: 300,
    breakGlass: false,
    requireAssignment: false,
  };
}

const KEYS = ['offlineAllowed', 'offlineMaxAgeHours', 'windowSteps', 'maxFailures', 'lockoutSeconds', 'breakGlass', 'requireAssignment'] as const;

/**
 * Members missing from a stored policy take their defaults, so policies signed before a setting
 * existed stay valid; present members must be well-formed.
 */
export function mfaPolicyErrors(x: unknown, where = 'mfa'): string[] {
  if (!isObject(x)) return [`${where}: must be an object`];
  const errors = unknownKeys(x, KEYS, where);
  const has = (k: string) => x[k] !== undefined;
  errors.push(...boolErrors(x.offlineAllowed, `${where}.offlineAllowed`));
  if (has('offlineMaxAgeHours')) errors.push(...intErrors(x.offlineMaxAgeHours, `${where}.offlineMaxAgeHours`, 1, 24 * 90));
  if (has('windowSteps')) errors.push(...intErrors(x.windowSteps, `${where}.windowSteps`, 0, 10));
  if (has('maxFailures')) errors.push(...intErrors(x.maxFailures, `${where}.maxFailures`, 1, 100));
  if (has('lockoutSeconds')) errors.push(...intErrors(x.lockoutSeconds, `${where}.lockoutSeconds`, 1, 7 * 86400));
  if (has('breakGlass')) errors.push(...boolErrors(x.breakGlass, `${where}.breakGlass`));
  if (has('requireAssignment')) errors.push(...boolErrors(x.requireAssignment, `${where}.requireAssignment`));
  return errors;
}

/** The effective settings: defaults for anything a (valid) policy leaves out. */
export function effectiveMfaPolicy(x: Partial<MfaPolicy> | undefined | null): MfaPolicy {
  const d = defaultMfaPolicy();
  if (!x) return d;
  const out = { ...d };
  for (const k of KEYS) if (x[k] !== undefined) (out as Record<string, unknown>)[k] = x[k];
  return out;
}

/**
 * Staff user names are attacker-controlled (typed at a login prompt): 1–64 characters of
 * letters, digits and . _ @ - (Linux and Windows/AD account names fit; no spaces, no controls,
 * no path or quote characters). Both the agent and the console check this before anything else.
 */
export const MFA_USER_RE = /^[A-Za-z0-9._@-]{1,64}$/;

export function isValidMfaUser(x: unknown): x is string {
  return typeof x === 'string' && MFA_USER_RE.test(x) && x !== '.' && x !== '..';
}
