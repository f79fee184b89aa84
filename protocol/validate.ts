/** Small helpers for checking documents that arrive from outside (policy files, API bodies). */
export type Obj = Record<string, unknown>;

export function isObject(x: unknown): x is Obj {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Names members that the schema does not know, so a typo in a policy file is an error, not a silent no-op. */
export function unknownKeys(x: Obj, known: readonly string[], where: string): string[] {
  return Object.keys(x)
    .filter((k) => !known.includes(k))
    .map((k) => `${where}.${k}: unknown setting`);
}

export function intErrors(x: unknown, where: string, min: number, max: number): string[] {
  return typeof x === 'number' && Number.isInteger(x) && x >= min && x <= max ? [] : [`${where}: must be an integer from ${min} to ${max}`];
}

export function oneOfErrors<T extends string>(x: unknown, where: string, allowed: readonly T[]): string[] {
  return typeof x === 'string' && (allowed as readonly string[]).includes(x) ? [] : [`${where}: must be one of ${allowed.join(', ')}`];
}

export function boolErrors(x: unknown, where: string): string[] {
  return typeof x === 'boolean' ? [] : [`${where}: must be true or false`];
}
