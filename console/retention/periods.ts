/**
 * Retention periods: which event families are kept how long. Pure (no I/O, no clock): the store
 * reads the settings, these functions judge them. Default: keep everything (no family has a period).
 */
import { AGENT_EVENT_TYPES, CONSOLE_EVENT_TYPES } from '../../protocol/events.js';

/** Longest period one may set (100 years); a longer one is a typo, not a policy. */
export const MAX_RETENTION_DAYS = 36_500;
export const DAY_MS = 86_400_000;

/** Families: the event type's prefix before the first dot. */
export function familyOf(type: string): string {
  const i = type.indexOf('.');
  return i < 0 ? type : type.slice(0, i);
}

/** Every family the catalogue knows (plus admin.* and console.*, which have open type names). */
export function knownFamilies(): string[] {
  const s = new Set<string>(['admin', 'console']);
  for (const t of [...Object.keys(AGENT_EVENT_TYPES), ...Object.keys(CONSOLE_EVENT_TYPES)]) s.add(familyOf(t));
  return [...s].sort();
}

export type Checked<T> = { ok: T } | { error: string };

export function checkFamily(v: unknown): Checked<string> {
  const known = knownFamilies();
  if (typeof v !== 'string' || !known.includes(v)) return { error: `family: ${JSON.stringify(typeof v === 'string' ? v.slice(0, 40) : v)} は不明な種別です / unknown family (known: ${known.join(', ')})` };
  return { ok: v };
}

/** Whole days, 1 … MAX_RETENTION_DAYS. 0 would delete everything at once: refused, not "keep nothing". */
export function checkDays(v: unknown): Checked<number> {
  const n = typeof v === 'string' && /^\d{1,12}$/.test(v.trim()) ? Number(v.trim()) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_RETENTION_DAYS) {
    return { error: `days: 1〜${MAX_RETENTION_DAYS} の整数で指定してください / must be a whole number of days from 1 to ${MAX_RETENTION_DAYS} (got ${JSON.stringify(typeof v === 'string' ? v.slice(0, 40) : v)})` };
  }
  return { ok: n };
}

/** DATA/config.json `retention`: {"usb": 1825, …}; every error names its path. */
export function parseConfigRetention(v: unknown): Checked<Map<string, number>> {
  const out = new Map<string, number>();
  if (v === undefined) return { ok: out };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { error: 'config.json retention: {"family": days} のオブジェクトで指定してください / must be an object {"family": days}' };
  for (const [k, d] of Object.entries(v)) {
    const f = checkFamily(k);
    if ('error' in f) return { error: `config.json retention.${k.slice(0, 40)}: ${f.error}` };
    const n = checkDays(d);
    if ('error' in n) return { error: `config.json retention.${k}: ${n.error}` };
    out.set(k, n.ok);
  }
  return { ok: out };
}

export interface Period {
  family: string;
  days: number;
  source: 'console' | 'config';
  /** Events stored before this instant are due (ISO). */
  cutoff: string;
}

/** The periods in force: console settings override config.json; sorted by family. */
export function effectivePeriods(config: ReadonlyMap<string, number>, console: ReadonlyMap<string, number>, now: Date): Period[] {
  const out: Period[] = [];
  const fams = new Set([...config.keys(), ...console.keys()]);
  for (const family of [...fams].sort()) {
    const fromConsole = console.get(family);
    const days = fromConsole ?? config.get(family)!;
    const cutoffMs = now.getTime() - days * DAY_MS;
    // A clock so wrong that the cutoff is before the epoch deletes nothing (never "everything").
    if (!Number.isFinite(cutoffMs) || cutoffMs <= 0) continue;
    out.push({ family, days, source: fromConsole !== undefined ? 'console' : 'config', cutoff: new Date(cutoffMs).toISOString() });
  }
  return out;
}
