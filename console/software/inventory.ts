/**
 * Pure questions about a terminal's installed software (no database, no clock): how it differs
 * from the approved baseline. Matching is the agent's (agent/software/decide.ts judgePackage): a
 * baseline package is by name, any of its approved versions; architecture is shown, not matched.
 */
import type { BaselinePackage } from '../../protocol/policy-software.js';

export interface InventoryRow {
  name: string;
  version: string;
  arch: string;
}

export interface BaselineDiff {
  /** In the baseline, not installed on the terminal. */
  missing: BaselinePackage[];
  /** Installed, not in the baseline. */
  extra: InventoryRow[];
  /** Installed and in the baseline, but none of the installed versions is an approved one. */
  otherVersion: { name: string; installed: InventoryRow[]; approved: string[] }[];
}

const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export function baselineDiff(baseline: readonly BaselinePackage[], installed: readonly InventoryRow[]): BaselineDiff {
  const approved = new Map<string, { versions: Set<string>; first: BaselinePackage }>();
  for (const b of baseline) {
    const a = approved.get(b.name);
    if (a) a.versions.add(b.version);
    else approved.set(b.name, { versions: new Set([b.version]), first: b });
  }
  const here = new Map<string, InventoryRow[]>();
  for (const r of installed) {
    const list = here.get(r.name);
    if (list) list.push(r);
    else here.set(r.name, [r]);
  }
  const missing: BaselinePackage[] = [];
  const otherVersion: BaselineDiff['otherVersion'] = [];
  for (const [name, a] of approved) {
    const rows = here.get(name);
    if (!rows) missing.push(a.first);
    else if (!rows.some((r) => a.versions.has(r.version))) otherVersion.push({ name, installed: rows, approved: [...a.versions].sort() });
  }
  const extra = installed.filter((r) => !approved.has(r.name));
  return { missing: missing.sort(byName), extra: [...extra].sort(byName), otherVersion: otherVersion.sort(byName) };
}

/** A LIKE pattern matching `text` literally anywhere (\ escapes % _ and itself). */
export function likeContains(text: string): string {
  return '%' + text.replace(/[\\%_]/g, (c) => '\\' + c) + '%';
}
