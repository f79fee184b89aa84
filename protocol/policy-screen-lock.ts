import { boolErrors, intErrors, isObject, unknownKeys } from './validate.js';

/**
 * policy.agent.screenLock (optional; issue 16): the longest idle time before the screen locks, and
 * whether the agent should enforce it (GNOME: a dconf keyfile + lock under /etc/dconf/db/local.d).
 * Policies signed before this setting existed stay valid and get the defaults.
 */
export interface ScreenLockPolicy {
  maxIdleMinutes: number;
  enforce: boolean;
}

export function defaultScreenLockPolicy(): ScreenLockPolicy {
  return { maxIdleMinutes: 5, enforce: false };
}

export function screenLockPolicyErrors(x: unknown, where = 'agent.screenLock'): string[] {
  if (!isObject(x)) return [`${where}: must be an object`];
  const errors = unknownKeys(x, ['maxIdleMinutes', 'enforce'], where);
  if (x.maxIdleMinutes !== undefined) errors.push(...intErrors(x.maxIdleMinutes, `${where}.maxIdleMinutes`, 1, 24 * 60));
  if (x.enforce !== undefined) errors.push(...boolErrors(x.enforce, `${where}.enforce`));
  return errors;
}

export function effectiveScreenLockPolicy(x: Partial<ScreenLockPolicy> | undefined | null): ScreenLockPolicy {
  const d = defaultScreenLockPolicy();
  if (!x) return d;
  return {
    maxIdleMinutes: typeof x.maxIdleMinutes === 'number' ? x.maxIdleMinutes : d.maxIdleMinutes,
    enforce: typeof x.enforce === 'boolean' ? x.enforce : d.enforce,
  };
}
