/**
 * Canonical JSON: object keys sorted, no whitespace, `undefined` members dropped.
 * Hashes (event chain) and signatures (policy) are computed over this form, so both sides
 * must produce byte-identical text for the same value. Written with plain loops: it runs for
 * every ingested event.
 */
export function canonicalJson(value: unknown): string {
  // Data whose keys are already in order at every level (what chainEvent sends, see sortedKeys)
  // is canonical as JSON.stringify writes it: the native path, several times faster.
  if (typeof value === 'object' && value !== null && alreadyCanonical(value, 0)) return JSON.stringify(value);
  return canonicalSlow(value);
}

function canonicalSlow(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new Error('canonicalJson: non-finite number');
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new Error(`canonicalJson: cannot encode ${typeof value}`);
  }
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += (i ? ',' : '') + canonicalSlow(value[i]);
    return out + ']';
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  let out = '{';
  let first = true;
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined) continue;
    out += (first ? '' : ',') + JSON.stringify(k) + ':' + canonicalSlow(v);
    first = false;
  }
  return out + '}';
}

/**
 * True when JSON.stringify(value) equals the canonical form: plain objects and arrays only, keys in
 * sort() order at every level, no undefined member (JSON.stringify would drop it too, but one in an
 * array differs), finite numbers, nothing else (no toJSON, no bigint). Depth is bounded: anything
 * deeper takes the slow path, which is exact.
 */
function alreadyCanonical(x: object, depth: number): boolean {
  if (depth > 64) return false;
  if (Array.isArray(x)) {
    for (let i = 0; i < x.length; i++) if (!canonicalValue(x[i], depth)) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(x);
  if (proto !== Object.prototype && proto !== null) return false;
  const keys = Object.keys(x);
  for (let i = 0; i < keys.length; i++) {
    if (i > 0 && !(keys[i - 1]! < keys[i]!)) return false;
    const v = (x as Record<string, unknown>)[keys[i]!];
    if (v === undefined || !canonicalValue(v, depth)) return false;
  }
  return true;
}

function canonicalValue(v: unknown, depth: number): boolean {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(v);
    case 'object':
      return v === null || alreadyCanonical(v, depth + 1);
    default:
      return false;
  }
}

/** A copy whose object keys are in canonical order at every level (arrays keep their order); other values as they are. */
export function sortedKeys<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => sortedKeys(v)) as T;
  if (typeof value !== 'object' || value === null) return value;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value).sort()) {
    const v = sortedKeys((value as Record<string, unknown>)[k]);
    // An own "__proto__" member stays a member (plain assignment would set the prototype instead).
    if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    else out[k] = v;
  }
  return out as T;
}
