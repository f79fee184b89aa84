import { isObject, oneOfErrors, unknownKeys } from './validate.js';

/** Unauthorized-software section of the signed policy (issue: unauthorized software). */
export interface SoftwarePolicy {
  mode: 'enforce' | 'monitor';
}

export function defaultSoftwarePolicy(): SoftwarePolicy {
  return { mode: 'monitor' };
}

export function softwarePolicyErrors(x: unknown, where = 'software'): string[] {
  if (!isObject(x)) return [`${where}: must be an object`];
  return [...unknownKeys(x, ['mode'], where), ...oneOfErrors(x.mode, `${where}.mode`, ['enforce', 'monitor'] as const)];
}
