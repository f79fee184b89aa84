/**
 * The forwarder's decisions, pure (no I/O, no clock: `now` is passed in):
 * - which written batches may move the stored cursor (settle),
 * - how long to wait before reconnecting (backoff),
 * - when an outage becomes an event (rate-limited, so a SIEM that flaps cannot flood the store).
 *
 * At-least-once window: RFC 5425 has no acknowledgement, so "the SIEM has the bytes" is taken to
 * mean: the TLS write callback fired (the bytes left our process for the kernel) AND the connection
 * was still healthy SETTLE_MS later (a receiver that died or reset the connection is noticed by
 * then on a LAN: RST/FIN arrive in milliseconds). Only then is the cursor stored (at most every
 * 0.5 s, forwarder.ts COMMIT_EVERY_MS). So after a console SIGKILL, a SIEM restart or any connection
 * error, the events written in the last SETTLE_MS + 0.5 s (plus one batch in flight) are sent again: duplicates, identifiable by eventId. A receiver host that
 * vanishes without a FIN/RST within SETTLE_MS (power cut mid-stream) can lose what its kernel had
 * accepted; that is the limit of RFC 5425 itself.
 *
 * A SIEM that stops while it has not yet read what it received (its queue full, data still in its
 * socket buffer) drops that data although the cursor may have passed it. So when a connection fails
 * while the console lives, the cursor is moved BACK over what was written in the last REPLAY_MS or
 * the last REPLAY_BYTES (more than both kernels' socket buffers hold), and that is sent again.
 */

/** How long a written batch must stay on a healthy connection before the cursor moves past it. */
export const SETTLE_MS = 1500;
/** After a failed connection, what was written this recently is sent again (see above). */
export const REPLAY_MS = 10_000;
export const REPLAY_BYTES = 16 * 1024 * 1024;
export const BACKOFF_FIRST_MS = 1000;
export const BACKOFF_MAX_MS = 60_000;
/** At most one "forwarding stopped" event per this interval (further outages are counted in the next one). */
export const STOPPED_EVENT_MIN_INTERVAL_MS = 10 * 60_000;

export interface Written {
  /** rid of the last event in the batch. */
  rid: number;
  count: number;
  /** When the write callback fired (ms). */
  at: number;
}

/**
 * Which written batches are settled: every batch written at least settleMs before `now`, while the
 * connection is healthy. Returns the rid to store (null = none yet), how many events that covers,
 * and the batches still waiting. A broken connection settles nothing (they will be sent again).
 */
export function settle(pending: readonly Written[], now: number, healthy: boolean, settleMs = SETTLE_MS): { commitRid: number | null; count: number; rest: Written[] } {
  if (!healthy) return { commitRid: null, count: 0, rest: [] };
  let commitRid: number | null = null;
  let count = 0;
  let i = 0;
  // Batches are in write order; a batch newer than the window stops the scan (later ones are newer still).
  for (; i < pending.length; i++) {
    const w = pending[i]!;
    if (!(now - w.at >= settleMs)) break;
    commitRid = commitRid === null ? w.rid : Math.max(commitRid, w.rid);
    count += w.count;
  }
  return { commitRid, count, rest: pending.slice(i) };
}

export interface Sent {
  /** The cursor before this batch (its events are the rids after it). */
  fromRid: number;
  bytes: number;
  /** When it was written (ms). */
  at: number;
}

/**
 * Where to resume after a connection failed: before the oldest batch written within `replayMs`
 * of `now` or among the newest `replayBytes`; null when nothing qualifies. `recent` is in write order.
 */
export function replayFrom(recent: readonly Sent[], now: number, replayMs = REPLAY_MS, replayBytes = REPLAY_BYTES): number | null {
  let from: number | null = null;
  let bytes = 0;
  for (let i = recent.length - 1; i >= 0; i--) {
    const b = recent[i]!;
    const inTime = now - b.at <= replayMs || now < b.at;
    if (!inTime && bytes >= replayBytes) break;
    from = from === null ? b.fromRid : Math.min(from, b.fromRid);
    bytes += b.bytes;
  }
  return from;
}

/** Wait before reconnect attempt `attempt` (0-based): 1 s, 2 s, 4 s … capped at 60 s. */
export function backoffMs(attempt: number): number {
  const n = Number.isFinite(attempt) && attempt > 0 ? Math.min(Math.floor(attempt), 16) : 0;
  return Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** n);
}

export interface OutageState {
  down: boolean;
  /** When the current outage began (ms), null when up. */
  downSince: number | null;
  /** When the last "stopped" event was written (ms), null if never. */
  lastStoppedEventAt: number | null;
  /** Whether this outage got its "stopped" event (then its end gets a "resumed" event). */
  announced: boolean;
  /** Failed attempts in this outage. */
  failures: number;
  /** Outages since the last "stopped" event that were not announced (rate limit). */
  suppressed: number;
}

export const INITIAL_OUTAGE: OutageState = { down: false, downSince: null, lastStoppedEventAt: null, announced: false, failures: 0, suppressed: 0 };

export type OutageEvent = { kind: 'stopped'; suppressed: number } | { kind: 'resumed'; downMs: number; failures: number } | null;

/** A connection attempt or write failed. */
export function onFailure(s: OutageState, now: number, minInterval = STOPPED_EVENT_MIN_INTERVAL_MS): { next: OutageState; emit: OutageEvent } {
  if (s.down) return { next: { ...s, failures: s.failures + 1 }, emit: null };
  const mayAnnounce = s.lastStoppedEventAt === null || now - s.lastStoppedEventAt >= minInterval || now < s.lastStoppedEventAt;
  if (!mayAnnounce) return { next: { ...s, down: true, downSince: now, announced: false, failures: 1, suppressed: s.suppressed + 1 }, emit: null };
  return {
    next: { down: true, downSince: now, lastStoppedEventAt: now, announced: true, failures: 1, suppressed: 0 },
    emit: { kind: 'stopped', suppressed: s.suppressed },
  };
}

/** A connection came up (the SIEM accepted the TLS handshake). */
export function onSuccess(s: OutageState, now: number): { next: OutageState; emit: OutageEvent } {
  if (!s.down) return { next: s, emit: null };
  const next: OutageState = { ...s, down: false, downSince: null, announced: false, failures: 0 };
  if (!s.announced) return { next, emit: null };
  return { next, emit: { kind: 'resumed', downMs: Math.max(0, now - (s.downSince ?? now)), failures: s.failures } };
}
