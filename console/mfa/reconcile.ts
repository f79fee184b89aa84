/**
 * Which offline reconcile entries the console believes — the pure decision (facts in, plan out);
 * store.ts reads the facts and writes the plan in one IMMEDIATE transaction.
 *
 * A terminal reports what it did while the console was unreachable. It is believed only as far as
 * offline verification could really have happened there (issue 10, item 2):
 *   - only while the policy in force allows offline verification;
 *   - only for users in that terminal's offline cache (`cacheFor`: assigned to it, not pending);
 *     store.ts passes facts for exactly those users, everyone else is `not_assigned`;
 *   - a step no later than the console's current step + the policy's window (a far-future step
 *     would turn every later code into a replay, everywhere) and not older than the cache could
 *     have been used plus a grace for terminals that were switched off before reporting;
 *   - a recovery code that exists and is unused (or was already reported by this same terminal:
 *     a batch whose reply was lost comes again).
 * Failures count toward the console-side lock as before. A reconciled success never clears
 * failures the console itself saw (item 3: interleaving `step` entries reset the counter and
 * allowed unlimited online guessing): it clears at most the failures reported offline in the
 * same batch before it, so a batch can never leave fewer failures than it found. It never lifts
 * a lock either.
 */
import { timeStep } from '../../protocol/mfa/otp.js';
import type { MfaReconcileEntry } from '../../protocol/mfa/wire.js';
import type { MfaPolicy } from '../../protocol/policy-mfa.js';

export type ReconcileRefusal =
  | 'offline_not_allowed'
  | 'not_assigned'
  | 'step_in_future'
  | 'step_too_old'
  | 'unknown_recovery_code'
  | 'recovery_code_used';

/** How long after the cache stopped being usable an honest terminal may still report (switched off, unplugged). */
export const RECONCILE_GRACE_HOURS = 30 * 24;

export interface ReconcileUserFacts {
  period: number;
  lastStep: number;
  failures: number;
  lockedUntil: number;
  /** Recovery codes by id: null = unused, else where it was used. */
  recovery: ReadonlyMap<number, { usedOn: string | null } | null>;
}

export interface ReconcileUserState {
  lastStep: number;
  failures: number;
  lockedUntil: number;
}

export interface ReconcilePlan {
  applied: number;
  refused: { index: number; user: string; kind: MfaReconcileEntry['kind']; reason: ReconcileRefusal }[];
  /** New state of every user whose state the batch changes. */
  users: Map<string, ReconcileUserState>;
  usedSteps: { user: string; step: number; at: string }[];
  recoveryUsed: { user: string; id: number; at: string }[];
  failures: { user: string; at: string }[];
  lockedNow: string[];
}

export type ReconcilePolicy = Pick<MfaPolicy, 'offlineAllowed' | 'offlineMaxAgeHours' | 'windowSteps' | 'maxFailures' | 'lockoutSeconds'>;

/** The terminal's `at` as stored: a time after the console's now is the console's now (it cannot have happened later). */
function atOf(at: string, nowMs: number): string {
  const t = Date.parse(at);
  return new Date(Number.isFinite(t) && t <= nowMs ? t : nowMs).toISOString();
}

export function planReconcile(
  entries: readonly MfaReconcileEntry[],
  facts: ReadonlyMap<string, ReconcileUserFacts>,
  terminal: string,
  policy: ReconcilePolicy,
  nowMs: number,
): ReconcilePlan {
  const plan: ReconcilePlan = { applied: 0, refused: [], users: new Map(), usedSteps: [], recoveryUsed: [], failures: [], lockedNow: [] };
  const offlineFailures = new Map<string, number>(); // counted in this batch and not yet cleared or locked
  const usedNow = new Set<string>(); // `${user}#${id}` consumed earlier in this batch
  const maxAgeSec = (policy.offlineMaxAgeHours + RECONCILE_GRACE_HOURS) * 3600;

  entries.forEach((e, index) => {
    const refuse = (reason: ReconcileRefusal) => void plan.refused.push({ index, user: e.user, kind: e.kind, reason });
    if (!policy.offlineAllowed) return refuse('offline_not_allowed');
    const f = facts.get(e.user);
    if (!f) return refuse('not_assigned');
    let s = plan.users.get(e.user);
    if (!s) {
      s = { lastStep: f.lastStep, failures: f.failures, lockedUntil: f.lockedUntil };
      // An expired lock is forgotten with the failures that caused it (as decide() does).
      if (s.lockedUntil !== 0 && s.lockedUntil <= nowMs) s = { ...s, failures: 0, lockedUntil: 0 };
    }
    const at = atOf(e.at, nowMs);
    const clearOffline = (st: ReconcileUserState): ReconcileUserState => {
      const n = offlineFailures.get(e.user) ?? 0;
      offlineFailures.set(e.user, 0);
      return { ...st, failures: Math.max(0, st.failures - n) };
    };
    if (e.kind === 'step') {
      const nowStep = timeStep(nowMs, f.period);
      if (e.step > nowStep + policy.windowSteps) return refuse('step_in_future');
      if (e.step < nowStep - Math.ceil(maxAgeSec / f.period)) return refuse('step_too_old');
      s = clearOffline({ ...s, lastStep: Math.max(s.lastStep, e.step) });
      plan.usedSteps.push({ user: e.user, step: e.step, at });
    } else if (e.kind === 'recovery') {
      if (!f.recovery.has(e.recoveryId)) return refuse('unknown_recovery_code');
      const used = f.recovery.get(e.recoveryId);
      const key = `${e.user}#${e.recoveryId}`;
      // Reported again by the same terminal (lost reply): nothing to change, nothing to refuse.
      const again = (used && used.usedOn === terminal) || (usedNow.has(key) && !used);
      if (again) {
        plan.applied++;
        return;
      }
      if (used) return refuse('recovery_code_used');
      usedNow.add(key);
      s = clearOffline(s);
      plan.recoveryUsed.push({ user: e.user, id: e.recoveryId, at });
    } else {
      plan.failures.push({ user: e.user, at });
      // While locked, attempts are not counted (decide() does not even look at the code).
      if (!(s.lockedUntil > nowMs)) {
        const n = s.failures + 1;
        if (n >= policy.maxFailures) {
          s = { ...s, failures: 0, lockedUntil: nowMs + policy.lockoutSeconds * 1000 };
          offlineFailures.set(e.user, 0); // consumed by the lock
          plan.lockedNow.push(e.user);
        } else {
          s = { ...s, failures: n };
          offlineFailures.set(e.user, (offlineFailures.get(e.user) ?? 0) + 1);
        }
      }
    }
    plan.users.set(e.user, s);
    plan.applied++;
  });
  return plan;
}
