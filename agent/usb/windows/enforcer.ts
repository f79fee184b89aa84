/**
 * Makes the registry match a plan (plan.ts) with the fewest reg operations, in a FAIL-CLOSED order:
 * every operation that makes Windows stricter (a deny added, an allow removed) runs before any that
 * makes it looser (an allow added, a deny removed). The first failure stops everything: what is left
 * is at least as strict as before the loosening began, and the error is reported.
 *
 * The ordered operation list is computed by a pure function (diffRegistry) from the desired keys and
 * what `reg query` read; apply() runs it. A key that cannot be read is treated as unknown: its
 * desired deny values are written anyway, nothing is removed from it, and no loosening runs at all.
 */
import type { RegBatchOp, RegKey, RegValue, WindowsRegistry } from '../../windows/registry.js';
import type { UsbEnforceResult } from '../platform.js';
import type { PlannedKey } from './plan.js';

export type RegOperation =
  | { phase: 'tighten' | 'loosen'; op: 'add'; key: string; value: RegValue }
  | { phase: 'tighten' | 'loosen'; op: 'delete'; key: string; name: string };

/** Value names whose presence makes Windows looser (allow-kind); every other owned value is deny-kind. */
const ALLOW_KIND = new Set(['allowdenylayered', 'allowinstanceids']);
/** List keys whose entries allow (the others deny). */
const isAllowList = (key: string) => /\\AllowInstanceIDs$/i.test(key);

const sameData = (a: RegValue, b: RegValue) => a.type === b.type && JSON.stringify(a.data) === JSON.stringify(b.data);
const strData = (v: RegValue | undefined): string | null => (v && (v.type === 'REG_SZ' || v.type === 'REG_EXPAND_SZ') ? v.data.toLowerCase() : null);

export function describeOp(o: RegOperation): string {
  if (o.op === 'delete') return `reg delete ${o.key} /v ${o.name}`;
  return `reg add ${o.key} /v ${o.value.name} /t ${o.value.type} /d ${JSON.stringify(o.value.data)}`;
}

/** Ops for one non-list key (Removable Storage Access class, Restrictions' flags). */
function diffValues(k: PlannedKey, actual: RegKey | null | undefined): RegOperation[] {
  const ops: RegOperation[] = [];
  const owned = (n: string) => k.owned === 'all' || k.owned.some((o) => o.toLowerCase() === n.toLowerCase());
  const have = new Map((actual?.values ?? []).map((v) => [v.name.toLowerCase(), v]));
  for (const v of k.values) {
    const cur = have.get(v.name.toLowerCase());
    if (actual !== undefined && cur && sameData(cur, v)) continue;
    ops.push({ phase: ALLOW_KIND.has(v.name.toLowerCase()) ? 'loosen' : 'tighten', op: 'add', key: k.key, value: v });
  }
  if (actual) {
    const want = new Set(k.values.map((v) => v.name.toLowerCase()));
    for (const v of actual.values) {
      if (!owned(v.name) || want.has(v.name.toLowerCase())) continue;
      ops.push({ phase: ALLOW_KIND.has(v.name.toLowerCase()) ? 'tighten' : 'loosen', op: 'delete', key: k.key, name: v.name });
    }
  }
  return ops;
}

/**
 * Ops for one list key (values 1..n). Exact numbering at the end, and at no moment is an entry of
 * the desired list missing from a deny list (or an undesired entry present in an allow list ahead
 * of the tightening):
 * - deny list: first copy every desired entry that is missing or sits where it will be overwritten
 *   to a fresh name (tighten); then write 1..n, then delete every other name (loosen).
 * - allow list: first delete every entry not desired (tighten); then write 1..n and delete the rest (loosen).
 */
function diffList(k: PlannedKey, actual: RegKey | null | undefined): RegOperation[] {
  const desired = k.values;
  if (actual === undefined) {
    // Unreadable: deny entries written blindly (tighten); allow entries are never added blindly.
    return isAllowList(k.key) ? [] : desired.map((v) => ({ phase: 'tighten' as const, op: 'add' as const, key: k.key, value: v }));
  }
  const cur = new Map((actual?.values ?? []).map((v) => [v.name, v]));
  const n = desired.length;
  const mismatched = desired.filter((v) => {
    const c = cur.get(v.name);
    return !c || !sameData(c, v);
  });
  const extras = [...cur.keys()].filter((name) => !(/^[1-9][0-9]*$/.test(name) && Number(name) <= n));
  const ops: RegOperation[] = [];
  if (isAllowList(k.key)) {
    const want = new Set(desired.map((v) => strData(v)));
    for (const [name, v] of cur) if (!want.has(strData(v))) ops.push({ phase: 'tighten', op: 'delete', key: k.key, name });
    const deleted = new Set(ops.map((o) => (o.op === 'delete' ? o.name : '')));
    for (const v of mismatched) ops.push({ phase: 'loosen', op: 'add', key: k.key, value: v });
    for (const name of extras) if (!deleted.has(name)) ops.push({ phase: 'loosen', op: 'delete', key: k.key, name });
    return ops;
  }
  // Deny list. Survivors: names not overwritten; they keep their entries until the final deletes.
  const inM = new Set(mismatched.map((v) => v.name));
  const surviving = new Set([...cur].filter(([name]) => !inM.has(name)).map(([, v]) => strData(v)));
  const freeWritten = new Set<string | null>();
  for (const v of mismatched)
    if (!cur.has(v.name)) {
      ops.push({ phase: 'tighten', op: 'add', key: k.key, value: v }); // a free slot: a pure addition
      freeWritten.add(strData(v));
    }
  let fresh = Math.max(n, 0, ...[...cur.keys()].map((x) => (/^[0-9]{1,9}$/.test(x) ? Number(x) : 0)));
  const copies: string[] = [];
  const copied = new Set<string | null>();
  for (const v of mismatched) {
    if (!cur.has(v.name)) continue;
    const x = strData(v);
    if (surviving.has(x) || freeWritten.has(x) || copied.has(x)) continue;
    // Its final slot is taken (and what is there may be desired too): present it under a fresh name first.
    fresh += 1;
    copies.push(String(fresh));
    copied.add(x);
    ops.push({ phase: 'tighten', op: 'add', key: k.key, value: { ...v, name: String(fresh) } });
  }
  for (const v of mismatched) if (cur.has(v.name)) ops.push({ phase: 'loosen', op: 'add', key: k.key, value: v });
  for (const name of [...extras, ...copies]) ops.push({ phase: 'loosen', op: 'delete', key: k.key, name });
  return ops;
}

/**
 * The ordered operations. `actual`: what `reg query` returned per key (null = absent, undefined =
 * could not be read). Tightening first, loosening after; within each, list keys before flags
 * (lists complete before a flag enables them, flags removed before their lists shrink).
 */
export function diffRegistry(desired: readonly PlannedKey[], actual: ReadonlyMap<string, RegKey | null | undefined>): RegOperation[] {
  const lists = desired.filter((k) => k.owned === 'all');
  const flat = desired.filter((k) => k.owned !== 'all');
  const listOps = lists.flatMap((k) => diffList(k, actual.get(k.key)));
  const flatOps = flat.flatMap((k) => diffValues(k, actual.get(k.key)));
  const tighten = [...listOps.filter((o) => o.phase === 'tighten'), ...flatOps.filter((o) => o.phase === 'tighten')];
  const loosen = [
    ...listOps.filter((o) => o.phase === 'loosen' && o.op === 'add'),
    ...flatOps.filter((o) => o.phase === 'loosen'),
    ...listOps.filter((o) => o.phase === 'loosen' && o.op === 'delete'),
  ];
  return [...tighten, ...loosen];
}

export interface ApplyOutcome extends UsbEnforceResult {
  /** Operations not run because an earlier step failed or a key was unreadable. */
  skipped: RegOperation[];
}

/** Reads the planned keys, diffs, and runs the operations in order; stops at the first failure. */
export async function applyRegistryPlan(reg: WindowsRegistry, desired: readonly PlannedKey[]): Promise<ApplyOutcome> {
  const out: ApplyOutcome = { wrote: [], errors: [], skipped: [], enforcedBy: 'policy' };
  const actual = new Map<string, RegKey | null | undefined>();
  let unreadable = false;
  for (const k of desired) {
    try {
      actual.set(k.key, await reg.query(k.key));
    } catch (e) {
      actual.set(k.key, undefined);
      unreadable = true;
      out.errors.push(`registry: cannot read ${k.key}: ${(e as Error).message}`);
    }
  }
  const ops = diffRegistry(desired, actual);
  if (reg.batch) return applyInBatches(reg, ops, unreadable, out);
  for (let i = 0; i < ops.length; i++) {
    const o = ops[i]!;
    if (unreadable && o.phase === 'loosen') {
      out.skipped.push(...ops.slice(i));
      out.errors.push('registry: loosening skipped (a key could not be read): the stricter state stays');
      break;
    }
    try {
      if (o.op === 'add') await reg.add(o.key, o.value);
      else await reg.delete(o.key, o.name);
      out.wrote.push(describeOp(o));
      out.firstWriteMs ??= performance.now();
    } catch (e) {
      out.errors.push(`registry: ${describeOp(o)} failed: ${(e as Error).message}; stopped, the stricter state stays`);
      out.skipped.push(...ops.slice(i));
      break;
    }
  }
  return out;
}

/**
 * The same order as two units: every tightening operation in one batch, then every loosening one
 * (reg import of one file each instead of a reg.exe run per value). A failed batch stops everything;
 * how far it got is unknown, so all of its operations count as skipped (the next application
 * re-reads and diffs again).
 */
async function applyInBatches(reg: WindowsRegistry, ops: RegOperation[], unreadable: boolean, out: ApplyOutcome): Promise<ApplyOutcome> {
  const tighten = ops.filter((o) => o.phase === 'tighten');
  const loosen = ops.filter((o) => o.phase === 'loosen');
  const toBatch = (list: RegOperation[]): RegBatchOp[] => list.map((o) => (o.op === 'add' ? { op: 'add', key: o.key, value: o.value } : { op: 'delete', key: o.key, name: o.name }));
  for (const [phase, list] of [['tighten', tighten], ['loosen', loosen]] as const) {
    if (list.length === 0) continue;
    if (phase === 'loosen' && unreadable) {
      out.skipped.push(...list);
      out.errors.push('registry: loosening skipped (a key could not be read): the stricter state stays');
      break;
    }
    try {
      await reg.batch!(toBatch(list));
      out.wrote.push(...list.map(describeOp));
      out.firstWriteMs ??= performance.now();
    } catch (e) {
      out.errors.push(`registry: ${phase} batch of ${list.length} failed: ${(e as Error).message}; stopped, the stricter state stays`);
      out.skipped.push(...list, ...(phase === 'tighten' ? loosen : []));
      break;
    }
  }
  return out;
}
