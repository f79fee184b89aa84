/**
 * The pure decision on offline reconcile entries (console/mfa/reconcile.ts): what one terminal
 * may make the console believe about a user's replay state, recovery codes and lockout.
 */
import { describe, expect, it } from 'vitest';
import type { MfaReconcileEntry } from '../../protocol/mfa/wire.js';
import { planReconcile, RECONCILE_GRACE_HOURS, type ReconcilePolicy, type ReconcileUserFacts } from '../../console/mfa/reconcile.js';

const NOW = Date.UTC(2026, 10, 21, 9, 0, 0);
const STEP = Math.floor(NOW / 30_000);
const at = new Date(NOW).toISOString();
const policy: ReconcilePolicy = { offlineAllowed: true, offlineMaxAgeHours: 72, windowSteps: 1, maxFailures: 5, lockoutSeconds: 300 };

function facts(over: Partial<ReconcileUserFacts> = {}): Map<string, ReconcileUserFacts> {
  const recovery = new Map<number, { usedOn: string | null } | null>([
    [1, null],
    [2, null],
    [3, { usedOn: 'T1' }],
    [4, { usedOn: 'OTHER' }],
  ]);
  return new Map([['alice', { period: 30, lastStep: STEP - 3, failures: 0, lockedUntil: 0, recovery, ...over }]]);
}

const step = (s: number, user = 'alice'): MfaReconcileEntry => ({ user, kind: 'step', step: s, at });
const rec = (id: number, user = 'alice'): MfaReconcileEntry => ({ user, kind: 'recovery', recoveryId: id, at });
const fail = (user = 'alice'): MfaReconcileEntry => ({ user, kind: 'failure', at });
const oldest = STEP - Math.ceil(((72 + RECONCILE_GRACE_HOURS) * 3600) / 30);

describe('planReconcile: which entries are believed', () => {
  it.each<[string, MfaReconcileEntry, string | null]>([
    ['current step', step(STEP), null],
    ['step at now + window', step(STEP + 1), null],
    ['step one past the window', step(STEP + 2), 'step_in_future'],
    ['2^53-1', step(Number.MAX_SAFE_INTEGER), 'step_in_future'],
    ['step at the oldest plausible use', step(oldest), null],
    ['step older than that', step(oldest - 1), 'step_too_old'],
    ['step 0', step(0), 'step_too_old'],
    ['step already known (replay elsewhere, still a fact)', step(STEP - 5), null],
    ['unused recovery code', rec(1), null],
    ['recovery id 0 (none exists)', rec(0), 'unknown_recovery_code'],
    ['recovery id past the last', rec(21), 'unknown_recovery_code'],
    ['negative recovery id', rec(-1), 'unknown_recovery_code'],
    ['recovery code used on another terminal', rec(4), 'recovery_code_used'],
    ['recovery code this terminal already reported', rec(3), null],
    ['failure', fail(), null],
    ['user not in this terminal’s cache', fail('bob'), 'not_assigned'],
    ['step for a user not in the cache', step(STEP, 'bob'), 'not_assigned'],
  ])('%s', (_name, entry, refusal) => {
    const plan = planReconcile([entry], facts(), 'T1', policy, NOW);
    if (refusal === null) {
      expect(plan.refused).toEqual([]);
      expect(plan.applied).toBe(1);
    } else {
      expect(plan.refused).toEqual([{ index: 0, user: entry.user, kind: entry.kind, reason: refusal }]);
      expect(plan.applied).toBe(0);
      expect(plan.users.size + plan.usedSteps.length + plan.recoveryUsed.length + plan.failures.length).toBe(0);
    }
  });

  it('refuses everything while the policy in force forbids offline use', () => {
    const plan = planReconcile([step(STEP), rec(1), fail()], facts(), 'T1', { ...policy, offlineAllowed: false }, NOW);
    expect(plan.applied).toBe(0);
    expect(plan.refused.map((r) => r.reason)).toEqual(['offline_not_allowed', 'offline_not_allowed', 'offline_not_allowed']);
  });

  it('uses the user’s own period for the step bound', () => {
    const f = facts({ period: 60, lastStep: -1 });
    const s60 = Math.floor(NOW / 60_000);
    expect(planReconcile([step(s60 + 1)], f, 'T1', policy, NOW).applied).toBe(1);
    expect(planReconcile([step(s60 + 2)], f, 'T1', policy, NOW).refused[0]?.reason).toBe('step_in_future');
  });

  it('moves replay state forward only', () => {
    expect(planReconcile([step(STEP - 10)], facts(), 'T1', policy, NOW).users.get('alice')?.lastStep).toBe(STEP - 3);
    expect(planReconcile([step(STEP + 1)], facts(), 'T1', policy, NOW).users.get('alice')?.lastStep).toBe(STEP + 1);
  });

  it('the same recovery code twice in one batch is consumed once', () => {
    const plan = planReconcile([rec(2), rec(2)], facts(), 'T1', policy, NOW);
    expect(plan.recoveryUsed).toEqual([{ user: 'alice', id: 2, at }]);
    expect(plan.applied).toBe(2);
  });

  it('stores the console’s now for a time in the future', () => {
    const plan = planReconcile([{ user: 'alice', kind: 'failure', at: '9999-12-31T23:59:59.999Z' }], facts(), 'T1', policy, NOW);
    expect(plan.failures).toEqual([{ user: 'alice', at }]);
  });
});

describe('planReconcile: failures and lockout', () => {
  const failuresAfter = (entries: MfaReconcileEntry[], over: Partial<ReconcileUserFacts> = {}) =>
    planReconcile(entries, facts(over), 'T1', policy, NOW).users.get('alice');

  it.each<[string, Partial<ReconcileUserFacts>, MfaReconcileEntry[], { failures: number; locked: boolean }]>([
    ['a success leaves failures the console saw', { failures: 4 }, [step(STEP)], { failures: 4, locked: false }],
    ['a recovery code leaves failures the console saw', { failures: 4 }, [rec(1)], { failures: 4, locked: false }],
    ['offline failures then a success: cleared', { failures: 1 }, [fail(), fail(), step(STEP)], { failures: 1, locked: false }],
    ['success between offline failures clears only those before it', { failures: 0 }, [fail(), step(STEP), fail()], { failures: 1, locked: false }],
    ['alternating failure/success never nets below the start', { failures: 3 }, [fail(), step(STEP - 1), fail(), step(STEP)], { failures: 3, locked: false }],
    ['offline failures reach the limit: locked', { failures: 3 }, [fail(), fail()], { failures: 0, locked: true }],
    ['a success after the lock does not lift it', { failures: 4 }, [fail(), step(STEP)], { failures: 0, locked: true }],
    ['an expired lock is forgotten with its failures', { failures: 4, lockedUntil: NOW - 1 }, [fail()], { failures: 1, locked: false }],
  ])('%s', (_name, over, entries, want) => {
    const s = failuresAfter(entries, over)!;
    expect(s.failures).toBe(want.failures);
    expect(s.lockedUntil > NOW).toBe(want.locked);
  });

  it('while locked, reported failures are recorded but do not extend the lock', () => {
    const plan = planReconcile([fail(), fail()], facts({ lockedUntil: NOW + 10_000 }), 'T1', policy, NOW);
    expect(plan.failures).toHaveLength(2);
    expect(plan.users.get('alice')).toEqual({ lastStep: STEP - 3, failures: 0, lockedUntil: NOW + 10_000 });
    expect(plan.lockedNow).toEqual([]);
  });

  it('reports the lock it causes', () => {
    expect(planReconcile([fail(), fail(), fail(), fail(), fail()], facts(), 'T1', policy, NOW).lockedNow).toEqual(['alice']);
  });
});
