/**
 * Which events an agent may drop when its outbox reaches its cap during a very long outage
 * (issue 17). Three ranks, judged from the type and severity only (pure):
 *   0 — routine: info-level events whose loss costs no evidence (a device allowed, a policy
 *       applied, a helper started, posture refreshed); dropped first, oldest first;
 *   1 — notable: notice-level events outside the list below; dropped only when no rank-0 event is left;
 *   2 — evidence: never dropped — every warning/critical event, every mfa.* (a login is evidence
 *       either way), usb.blocked / file_written / exception_used / readonly / applications,
 *       software.* enforcement, admin.*, the agent's own lifecycle and the drop record itself.
 */
import type { EventType, Severity } from './events.js';

export type Importance = 0 | 1 | 2;

const EVIDENCE: ReadonlySet<string> = new Set([
  'usb.blocked',
  'usb.readonly',
  'usb.exception_used',
  'usb.file_written',
  'usb.file_log_overflow',
  'usb.file_log_unavailable',
  'usb.application_sent',
  'usb.application_refused',
  'software.exec_denied',
  'software.killed',
  'software.quarantined',
  'software.restored',
  'software.installed',
  'software.removed',
  'agent.started',
  'agent.stopped',
  'agent.tamper',
  'agent.events_dropped',
]);

export function eventImportance(type: EventType | string, severity: Severity): Importance {
  if (severity === 'warning' || severity === 'critical') return 2;
  if (type.startsWith('mfa.') || type.startsWith('admin.') || EVIDENCE.has(type)) return 2;
  return severity === 'notice' ? 1 : 0;
}
