/**
 * The terminal's software inventory as the console gets it (asset management): every installed
 * package (dpkg) or program (Windows Uninstall entries), clipped to the wire's bounds, in one
 * canonical order with its digest. Pure: what to send and when is decided here; sync.ts talks.
 * Names and versions are attacker-controlled (a user's own hive, a hand-built .deb): safeText.
 */
import { INVENTORY_FIELD_LIMITS, MAX_INVENTORY_ENTRIES, canonicalInventory, inventoryDigest, type InventoryEntry } from '../../protocol/api.js';
import { safeText } from '../../protocol/text.js';
import type { InstalledProgram } from './platform.js';

/** The console confirms an unchanged inventory at most once a day. */
export const INVENTORY_CONFIRM_MS = 24 * 60 * 60 * 1000;
/** After a refused or failed full list, wait this long before the next try (a list is large). */
export const INVENTORY_FULL_RETRY_MS = 10 * 60 * 1000;
/** The full list stays below the console's body limit (4 MiB) with room for the envelope. */
export const INVENTORY_MAX_BYTES = 3 * 1024 * 1024;

export interface InventoryReport {
  entries: InventoryEntry[];
  digest: string;
  /** Entries on the terminal (after dropping unnamed and duplicate ones); > entries.length when clipped. */
  total: number;
}

/** safeText, then clipped to `max` UTF-16 units without splitting a character. */
export function clip(raw: string, max: number): string {
  // Nothing past max+1 units can survive: cut first, so a megabyte name costs nothing.
  let s = safeText(raw.slice(0, max + 1), max);
  if (s.length <= max) return s;
  let out = '';
  for (const ch of s) {
    if (out.length + ch.length > max) break;
    out += ch;
  }
  s = out;
  return s;
}

/**
 * Pure: the report for this list. Bounded by count (MAX_INVENTORY_ENTRIES) and by bytes
 * (INVENTORY_MAX_BYTES): what does not fit is left off at the end of the canonical order and
 * `total` says how many there were, so the console can show the list is partial.
 */
export function inventoryReport(programs: Iterable<InstalledProgram>, maxEntries = MAX_INVENTORY_ENTRIES, maxBytes = INVENTORY_MAX_BYTES): InventoryReport {
  const cleaned: InventoryEntry[] = [];
  let read = 0;
  for (const p of programs) {
    // A hostile source (a user's hive with millions of keys) cannot make this loop unbounded in memory.
    if (++read > 4 * MAX_INVENTORY_ENTRIES) break;
    const name = clip(p.name.trim(), INVENTORY_FIELD_LIMITS.name);
    if (!name) continue;
    cleaned.push({ name, version: clip(p.version.trim(), INVENTORY_FIELD_LIMITS.version), arch: clip(p.arch.trim(), INVENTORY_FIELD_LIMITS.arch) });
  }
  const all = canonicalInventory(cleaned);
  const entries: InventoryEntry[] = [];
  let bytes = 2;
  for (const e of all) {
    if (entries.length >= maxEntries) break;
    const size = Buffer.byteLength(JSON.stringify(e)) + 1;
    if (bytes + size > maxBytes) break;
    bytes += size;
    entries.push(e);
  }
  return { entries, digest: inventoryDigest(entries), total: all.length };
}

export interface InventorySyncState {
  /** Digest of the newest report (null: the installed source was never read). */
  latest: string | null;
  /** Digest the console last said it holds, and when (ms since the epoch). */
  confirmed: string | null;
  confirmedAt: number;
  /** No full list before this time (ms) after a refusal; 0 = none. */
  fullNotBefore: number;
  /** No request at all before this time (ms): the console's Retry-After. */
  notBefore: number;
}

export type InventoryStep = 'none' | 'digest';

/**
 * Pure: whether to ask the console now. Once at start and after every change (the console's
 * answer says whether it needs the list), otherwise once a day so "when reported" stays fresh.
 */
export function inventoryStep(s: InventorySyncState, now: number): InventoryStep {
  if (s.latest === null || now < s.notBefore) return 'none';
  if (s.confirmed !== s.latest) return 'digest';
  // A clock set back makes the age negative: confirm again rather than stay silent for a year.
  const age = now - s.confirmedAt;
  return age >= INVENTORY_CONFIRM_MS || age < 0 ? 'digest' : 'none';
}

/** Pure: whether the full list may go now (the console answered `unknown`). */
export function maySendFull(s: InventorySyncState, now: number): boolean {
  return now >= s.fullNotBefore;
}

/** Seconds from a Retry-After header (bounded to a day; garbage → a minute). */
export function retryAfterMs(header: unknown): number {
  const n = typeof header === 'string' ? Number(header) : typeof header === 'number' ? header : NaN;
  if (!Number.isFinite(n) || n < 0) return 60_000;
  return Math.min(n, 86_400) * 1000;
}
