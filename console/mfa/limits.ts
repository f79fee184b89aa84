/**
 * Rate limits of the MFA endpoints (issue 10, items 3, 6 and 9), per terminal and per address, on
 * top of the server's general limits. In memory (console/core/limits.ts): they slow guessing and
 * floods down; the per-user lockout that must survive a restart is in the database.
 *
 * Why these numbers: a terminal's staff type a code a few times a minute at most; the lockout
 * (policy maxFailures / lockoutSeconds) bounds guesses per user, these bound guesses per terminal
 * across users (spraying), which the lockout alone does not.
 */
import type { RateLimit } from '../core/limits.js';

export const MFA_LIMITS = {
  /**
   * Rejected verifications per agent (wrong, replayed, malformed codes, unknown users): 720 an hour
   * at most. Accepted ones are not limited here (they need a valid code; the server's per-agent
   * request limit bounds the load), so a terminal where many staff log in is never slowed.
   */
  agentRejects: { burst: 20, perSecond: 0.2 } satisfies RateLimit,
  /** POST /api/agent/mfa/reconcile per agent: the agent sends at most 1000 entries a batch, 10 batches for a full queue. */
  agentReconcile: { burst: 12, perSecond: 0.2 } satisfies RateLimit,
  /** POST /validate/check per registered Windows client (a login screen). */
  validateClient: { burst: 20, perSecond: 0.2 } satisfies RateLimit,
  /** POST /validate/check per source address, before anything else is looked at. */
  validateAddress: { burst: 40, perSecond: 1 } satisfies RateLimit,
  /** Failed client authentications on /validate/check per source address. */
  validateUnauthenticated: { burst: 10, perSecond: 0.1 } satisfies RateLimit,
} as const;
