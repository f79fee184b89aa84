import { createHash } from 'node:crypto';
import { Type } from 'typebox';
import { canonicalJson, sortedKeys } from './canonical.js';
import { ISO_MS_PATTERN, Nullable, Sha256Hex, UUID_PATTERN, wireCheck } from './wire-check.js';

export type Severity = 'info' | 'notice' | 'warning' | 'critical';

/**
 * The event catalogue: every type an agent may send, with its default severity.
 * Console-generated types (`admin.*`, `agent.silent`, chain findings) are in CONSOLE_EVENT_TYPES.
 */
export const AGENT_EVENT_TYPES = {
  'usb.blocked': 'warning',
  'usb.allowed': 'info',
  'usb.readonly': 'notice',
  'usb.exception_used': 'notice',
  'usb.would_block': 'notice',
  'usb.enforced_stricter': 'warning', // the OS cannot express the policy exactly: enforced more strictly (Windows)
  'usb.application_sent': 'notice', // 申請: a member of staff applied for an exception for a blocked device (agent/usb/apply.ts)
  'usb.application_refused': 'warning', // an application refused at the terminal (unknown 申請番号, too many, no reason)
  'usb.application_answered': 'info', // the terminal learnt the approver's decision and told the applicant
  'usb.file_written': 'notice', // 持ち出しログ: one file written to a usable medium (agent/usb/filelog)
  'usb.file_log_overflow': 'warning', // files written but not hashed or not recorded one by one (counted)
  'usb.file_log_unavailable': 'warning', // a usable medium whose writes cannot be recorded (no helper, no fanotify)
  'mfa.success': 'info',
  'mfa.failure': 'warning',
  'mfa.locked': 'critical',
  'mfa.replay': 'critical',
  'mfa.recovery_used': 'notice',
  'mfa.offline_used': 'notice',
  'mfa.unlock_refused': 'warning', // unlock socket: a request for another account, or too many
  'software.unauthorized_process': 'warning',
  'software.unauthorized_file': 'warning',
  'software.installed': 'notice',
  'software.removed': 'notice',
  'software.killed': 'warning',
  'software.quarantined': 'warning',
  'software.restored': 'notice',
  'software.exec_denied': 'warning', // refused before the program ran (pre-exec helper)
  'software.preexec_fallback': 'warning', // the agent did not answer in time: the policy's fallback applied (counted)
  'software.preexec_started': 'info',
  'software.preexec_stopped': 'warning', // the helper exited: the /proc scan is the only line until it restarts
  'software.preexec_unavailable': 'notice',
  'software.baseline_captured': 'info', // 基準化: the console asked for this terminal's baseline; captured, being uploaded (issue 15)
  'software.baseline_failed': 'warning', // the requested baseline could not be captured or uploaded
  'agent.started': 'info',
  'agent.stopped': 'notice',
  'agent.tamper': 'critical',
  'agent.error': 'warning',
  'agent.policy_applied': 'info',
  'agent.policy_rejected': 'critical',
  'agent.events_dropped': 'warning', // issue 17: the outbox hit its cap; says exactly which events were dropped (never dropped itself)
  'posture.screen_lock_enforced': 'notice', // issue 16: the agent wrote the dconf keyfile + lock for the policy's screen-lock maximum
} as const satisfies Record<string, Severity>;

export const CONSOLE_EVENT_TYPES = {
  'agent.enrolled': 'info',
  'agent.revoked': 'notice', // retired: written by the CLI's revoke before issue 11 (now admin.terminal_revoked); kept so stored rows stay readable
  'agent.silent': 'critical',
  'agent.back_online': 'info',
  'agent.chain_broken': 'critical',
  'agent.gap': 'critical',
  'agent.upload_rejected': 'warning',
  // An agent's claimed event time was implausible; the console sorted the event by its receipt time.
  'agent.clock_skew': 'warning',
  // An agent exceeded its upload rate or volume limit (its events wait in its outbox).
  'agent.flood': 'critical',
  // A heartbeat changed a terminal's host name (one terminal may be claiming another's name).
  'agent.hostname_changed': 'notice',
  // Events stored although their data did not match its declaration (protocol/event-data.ts); folded per agent.
  'agent.event_data_invalid': 'warning',
  // Issue 17 delivery: a hole the agent filled by re-sending, a hole its drop record accounts for, a drop
  // record that does not bridge (or claims seqs it could not have dropped), ingest refused on a full disk.
  'agent.gap_filled': 'info',
  'agent.drop_accounted': 'notice',
  'agent.drop_unverified': 'critical',
  'console.disk_full': 'critical',
  // Issue 17 trust: a terminal's client certificate renewed, the console's server certificate renewed,
  // an agent request refused for its protocol version (426).
  'agent.cert_renewed': 'info',
  'console.server_cert_renewed': 'notice',
  'agent.protocol_refused': 'warning',
  // Verifications the console answers itself (Windows terminals via POST /validate/check).
  'mfa.success': 'info',
  'mfa.failure': 'warning',
  'mfa.locked': 'critical',
  'mfa.replay': 'critical',
  'mfa.recovery_used': 'notice',
  // Offline use a terminal reported that the console did not believe, and MFA endpoints over their rate limit (issue 10).
  'mfa.reconcile_refused': 'warning',
  'mfa.rate_limited': 'warning',
  // Issue 16 posture: a terminal's controls went out of / back into compliance (once per transition, not per report).
  'posture.noncompliant': 'critical',
  'posture.compliant': 'info',
  // Issue 17 SIEM forwarding (console/siem): forwarding to the SIEM stopped / resumed (once per outage, rate-limited).
  'console.siem_stopped': 'warning',
  'console.siem_resumed': 'info',
} as const satisfies Record<string, Severity>;

export type AgentEventType = keyof typeof AGENT_EVENT_TYPES;
export type ConsoleEventType = keyof typeof CONSOLE_EVENT_TYPES | `admin.${string}`;
export type EventType = AgentEventType | ConsoleEventType;

/** The agentId under which the console records its own chain (admin actions, silence alerts). */
export const CONSOLE_CHAIN_ID = 'console';

export interface SekimoriEvent {
  id: string; // UUID v4
  agentId: string;
  seq: number; // 1, 2, 3 … per agent, no holes
  ts: string; // ISO 8601 UTC with milliseconds: 2026-11-21T08:30:00.000Z
  type: EventType;
  severity: Severity;
  user: string | null;
  data: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

export type UnsignedEvent = Omit<SekimoriEvent, 'hash' | 'prevHash'>;

export function isAgentEventType(t: unknown): t is AgentEventType {
  return typeof t === 'string' && Object.hasOwn(AGENT_EVENT_TYPES, t);
}

export function isKnownEventType(t: unknown): t is EventType {
  return (
    isAgentEventType(t) ||
    (typeof t === 'string' && (Object.hasOwn(CONSOLE_EVENT_TYPES, t) || /^admin\.[a-z_]{1,64}$/.test(t)))
  );
}

export function defaultSeverity(type: EventType): Severity {
  if (isAgentEventType(type)) return AGENT_EVENT_TYPES[type];
  if (Object.hasOwn(CONSOLE_EVENT_TYPES, type)) return CONSOLE_EVENT_TYPES[type as keyof typeof CONSOLE_EVENT_TYPES];
  return 'notice';
}

/** The first link of every chain: bound to the agent so two chains never share a start. */
export function genesisHash(agentId: string): string {
  return createHash('sha256').update('sekimori-genesis\0' + agentId).digest('hex');
}

/**
 * hash = sha256(prevHash ‖ canonical event without its hashes). The canonical text of the
 * fixed members is written out in sorted key order (agentId, data, id, seq, severity, ts, type,
 * user) — identical to canonicalJson of the whole object, without sorting on every event.
 */
export function eventHash(prevHash: string, e: UnsignedEvent): string {
  return eventHashWithData(prevHash, e, canonicalJson(e.data));
}

/** eventHash for a caller that already holds canonicalJson(e.data) (ingest stores that same text). */
export function eventHashWithData(prevHash: string, e: Omit<UnsignedEvent, 'data'>, dataJson: string): string {
  const body =
    '{"agentId":' + JSON.stringify(e.agentId) +
    ',"data":' + dataJson +
    ',"id":' + JSON.stringify(e.id) +
    ',"seq":' + canonicalJson(e.seq) +
    ',"severity":' + JSON.stringify(e.severity) +
    ',"ts":' + JSON.stringify(e.ts) +
    ',"type":' + JSON.stringify(e.type) +
    ',"user":' + JSON.stringify(e.user ?? null) +
    '}';
  return createHash('sha256').update(prevHash).update(body).digest('hex');
}

export function chainEvent(prevHash: string, e: UnsignedEvent): SekimoriEvent {
  // Data travels with its keys in canonical order: the console's hash check then takes canonicalJson's native path.
  const data = sortedKeys(e.data);
  const sorted = { ...e, data };
  return { ...sorted, prevHash, hash: eventHash(prevHash, sorted) };
}

export const MAX_EVENT_DATA_BYTES = 32 * 1024;
/** Deepest nesting of objects/arrays accepted in event data (real events use 3 or 4 levels). */
export const MAX_EVENT_DATA_DEPTH = 32;

/**
 * Where `x` nests objects/arrays deeper than `maxDepth` (x itself is level 1), as a path such as
 * `.a.b[0]`; null when it does not. Iterative: attacker-built structures can be thousands of levels
 * deep, and recursion (ours, or JSON.stringify's) would overflow the stack.
 */
export function tooDeepPath(x: unknown, maxDepth = MAX_EVENT_DATA_DEPTH): string | null {
  if (typeof x !== 'object' || x === null) return null;
  // Every ingested event passes here: first a check that allocates nothing (its recursion stops at
  // maxDepth, so deep input cannot overflow the stack); the path is built only for data that fails.
  if (withinDepth(x, maxDepth, 1)) return null;
  const stack: { v: object; depth: number; path: string }[] = [{ v: x, depth: 1, path: '' }];
  while (stack.length > 0) {
    const { v, depth, path } = stack.pop()!;
    const entries: [string, unknown][] = Array.isArray(v) ? v.map((c, i) => [`[${i}]`, c]) : Object.entries(v).map(([k, c]) => [`.${k.slice(0, 40)}`, c]);
    for (const [step, child] of entries) {
      if (typeof child !== 'object' || child === null) continue;
      if (depth + 1 > maxDepth) return (path + step).slice(0, 400);
      stack.push({ v: child, depth: depth + 1, path: path + step });
    }
  }
  return null;
}

function withinDepth(x: object, maxDepth: number, depth: number): boolean {
  if (Array.isArray(x)) {
    for (let i = 0; i < x.length; i++) {
      const c: unknown = x[i];
      if (typeof c === 'object' && c !== null && (depth + 1 > maxDepth || !withinDepth(c, maxDepth, depth + 1))) return false;
    }
    return true;
  }
  for (const k in x) {
    if (!Object.prototype.hasOwnProperty.call(x, k)) continue;
    const c: unknown = (x as Record<string, unknown>)[k];
    if (typeof c === 'object' && c !== null && (depth + 1 > maxDepth || !withinDepth(c, maxDepth, depth + 1))) return false;
  }
  return true;
}

/**
 * An event as it travels, declared once (protocol/api.ts uploads carry these). What JSON Schema
 * cannot say is checked in eventShapeErrors: the type is in the catalogue, `ts` is a real instant,
 * `data` is at most 32 levels deep and 32 KiB.
 */
export const SekimoriEventSchema = Type.Object(
  {
    id: Type.String({ pattern: UUID_PATTERN }),
    agentId: Type.String({ minLength: 1, maxLength: 64 }),
    seq: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
    ts: Type.String({ pattern: ISO_MS_PATTERN }),
    type: Type.String({ minLength: 1, maxLength: 80 }),
    severity: Type.Union([Type.Literal('info'), Type.Literal('notice'), Type.Literal('warning'), Type.Literal('critical')]),
    user: Type.Optional(Nullable(Type.String({ maxLength: 256 }))),
    data: Type.Record(Type.String(), Type.Unknown()),
    prevHash: Sha256Hex,
    hash: Sha256Hex,
  },
  { additionalProperties: false }, // a member outside the hash would be stored unsigned
);
const eventCheck = wireCheck(SekimoriEventSchema);

/** Checks the shape of an event received from outside; returns what is wrong (empty = fine). */
export function eventShapeErrors(x: unknown, where = 'event'): string[] {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return [`${where}: must be an object`];
  const errors = eventCheck.errors(x, where, 20);
  const e = x as Record<string, unknown>;
  if (typeof e.type === 'string' && !isKnownEventType(e.type)) errors.push(`${where}.type: unknown event type ${JSON.stringify(e.type).slice(0, 80)}`);
  if (typeof e.ts === 'string' && errors.every((m) => !m.startsWith(`${where}.ts:`)) && Number.isNaN(Date.parse(e.ts))) errors.push(`${where}.ts: not a real instant`);
  if (typeof e.data === 'object' && e.data !== null && !Array.isArray(e.data)) {
    // Depth first: measuring the size with JSON.stringify recurses and would overflow on deep data.
    const deep = tooDeepPath(e.data);
    if (deep !== null) errors.push(`${where}.data${deep}: nested deeper than ${MAX_EVENT_DATA_DEPTH} levels`);
    else if (Buffer.byteLength(JSON.stringify(e.data)) > MAX_EVENT_DATA_BYTES) errors.push(`${where}.data: larger than ${MAX_EVENT_DATA_BYTES} bytes`);
  }
  return errors;
}
