import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical.js';

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
  'agent.started': 'info',
  'agent.stopped': 'notice',
  'agent.tamper': 'critical',
  'agent.error': 'warning',
  'agent.policy_applied': 'info',
  'agent.policy_rejected': 'critical',
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
  // Verifications the console answers itself (Windows terminals via POST /validate/check).
  'mfa.success': 'info',
  'mfa.failure': 'warning',
  'mfa.locked': 'critical',
  'mfa.replay': 'critical',
  'mfa.recovery_used': 'notice',
  // Offline use a terminal reported that the console did not believe, and MFA endpoints over their rate limit (issue 10).
  'mfa.reconcile_refused': 'warning',
  'mfa.rate_limited': 'warning',
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
  const body =
    '{"agentId":' + JSON.stringify(e.agentId) +
    ',"data":' + canonicalJson(e.data) +
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
  return { ...e, prevHash, hash: eventHash(prevHash, e) };
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const HASH_RE = /^[0-9a-f]{64}$/;
const SEVERITIES: readonly Severity[] = ['info', 'notice', 'warning', 'critical'];
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

/** Checks the shape of an event received from outside; returns what is wrong (empty = fine). */
export function eventShapeErrors(x: unknown, where = 'event'): string[] {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return [`${where}: must be an object`];
  const e = x as Record<string, unknown>;
  const errors: string[] = [];
  if (typeof e.id !== 'string' || !UUID_RE.test(e.id)) errors.push(`${where}.id: must be a lowercase UUID`);
  if (typeof e.agentId !== 'string' || e.agentId.length < 1 || e.agentId.length > 64) errors.push(`${where}.agentId: must be a string`);
  if (typeof e.seq !== 'number' || !Number.isSafeInteger(e.seq) || e.seq < 1) errors.push(`${where}.seq: must be a positive integer`);
  if (typeof e.ts !== 'string' || !TS_RE.test(e.ts) || Number.isNaN(Date.parse(e.ts))) errors.push(`${where}.ts: must be an ISO 8601 UTC timestamp with milliseconds`);
  if (!isKnownEventType(e.type)) errors.push(`${where}.type: unknown event type ${JSON.stringify(String(e.type)).slice(0, 80)}`);
  if (typeof e.severity !== 'string' || !SEVERITIES.includes(e.severity as Severity)) errors.push(`${where}.severity: must be one of ${SEVERITIES.join(', ')}`);
  if (!(e.user === null || e.user === undefined || (typeof e.user === 'string' && e.user.length <= 256))) errors.push(`${where}.user: must be a string or null`);
  if (typeof e.data !== 'object' || e.data === null || Array.isArray(e.data)) errors.push(`${where}.data: must be an object`);
  else {
    // Depth first: measuring the size with JSON.stringify recurses and would overflow on deep data.
    const deep = tooDeepPath(e.data);
    if (deep !== null) errors.push(`${where}.data${deep}: nested deeper than ${MAX_EVENT_DATA_DEPTH} levels`);
    else if (Buffer.byteLength(JSON.stringify(e.data)) > MAX_EVENT_DATA_BYTES) errors.push(`${where}.data: larger than ${MAX_EVENT_DATA_BYTES} bytes`);
  }
  if (typeof e.prevHash !== 'string' || !HASH_RE.test(e.prevHash)) errors.push(`${where}.prevHash: must be a sha256 hex digest`);
  if (typeof e.hash !== 'string' || !HASH_RE.test(e.hash)) errors.push(`${where}.hash: must be a sha256 hex digest`);
  return errors;
}
