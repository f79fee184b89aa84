/**
 * 自己点検レポート: the checklist items auditors ask of the マイナンバー利用事務系 segment, judged from
 * facts the store gathered (./store.ts). Pure: no I/O, no clock (`now` and the period come in).
 * Every terminal must be shown compliant by evidence; a terminal without the evidence an item
 * needs is counted as not compliant (fail closed), with the reason `no_posture` or similar.
 */
import type { PolicyDocument } from '../../protocol/policy.js';
import type { PostureControl } from '../../protocol/posture.js';

export const ITEM_IDS = ['export', 'mfa', 'screenLock', 'software', 'exceptions', 'logs', 'policy'] as const;
export type ItemId = (typeof ITEM_IDS)[number];
export type Verdict = 'compliant' | 'noncompliant';

export interface TerminalFacts {
  id: string;
  hostname: string;
  status: 'online' | 'offline' | 'silent';
  policyVersion: number;
  monitorOnly: boolean;
  lastSeen: string | null;
}

/**
 * A terminal's latest posture report, judged against the current policy (protocol/posture.ts
 * postureVerdicts): per control ok or not, with the short reason.
 */
export interface PostureFacts {
  reportedAt: string;
  controls: Partial<Record<PostureControl, { ok: boolean; detail: string }>>;
}
/** A posture report this much older than the end of the period no longer speaks for the terminal. */
export const POSTURE_STALE_MS = 72 * 3_600_000;

export interface ExceptionFacts {
  id: string;
  agentId: string;
  /** VID:PID[:serial] as display text. */
  device: string;
  access: string;
  grantedAt: string;
  expiresAt: string;
  revokedAt: string | null;
  reason: string;
  /** Who asked (the request's recording account, and the staff member it was for); null = granted without a request. */
  applicant: string | null;
  staffUser: string | null;
  approver: string;
  requestId: string | null;
  files: FileWritten[];
}

export interface FileWritten {
  ts: string;
  agentId: string;
  path: string;
  size: number;
  sha256: string | null;
  user: string | null;
  exceptionId: string | null;
  device: string;
}

export interface ChainFacts {
  /** Events of this terminal in the period, and chain findings among them / in the gap table. */
  events: number;
  gaps: number;
  /** Issue 17: events the agent dropped at its outbox cap, accounted for by a verified drop record (not a gap). */
  dropped?: number;
  broken: number;
  tampered: number;
  headSeq: number;
  headHash: string | null;
}

export interface PolicyVersionFacts {
  version: number;
  createdAt: string;
  createdBy: string;
  signatureOk: boolean;
}

export interface ReportFacts {
  /** Period as days (JST, YYYY-MM-DD) for links, and as instants for comparisons. */
  fromDay: string;
  toDay: string;
  since: string;
  until: string;
  /** Terminals in scope: enrolled and not revoked. */
  terminals: TerminalFacts[];
  policy: PolicyDocument;
  policies: PolicyVersionFacts[];
  /** Absent = the console has no posture source at all; present but missing a terminal = that terminal never reported. */
  posture: Map<string, PostureFacts> | null;
  /** mfa.success per terminal in the period. */
  mfaSuccess: Map<string, number>;
  /** Unauthorized software seen, and stopped (killed, quarantined, refused pre-exec), per terminal. */
  softwareSeen: Map<string, number>;
  softwareStopped: Map<string, number>;
  exceptions: ExceptionFacts[];
  chain: Map<string, ChainFacts>;
  silentAlerts: Map<string, number>;
}

export interface Offender {
  terminalId: string;
  name: string;
  reasons: string[];
}

export interface Link {
  /** A message key of console/report/text.ts. */
  label: string;
  href: string;
}

export interface ItemResult {
  id: ItemId;
  verdict: Verdict;
  covered: number;
  total: number;
  offenders: Offender[];
  /** Reasons that apply to the whole fleet (the policy itself), already included in every offender. */
  fleetReasons: string[];
  links: Link[];
}

/** A link into the operation log: only the filters the events page accepts (type, terminal, since, until). */
export function eventsLink(f: ReportFacts, filter: { type?: string; terminal?: string }): string {
  const q = new URLSearchParams();
  if (filter.type) q.set('type', filter.type);
  if (filter.terminal) q.set('terminal', filter.terminal);
  q.set('since', f.fromDay);
  q.set('until', f.toDay);
  return '/events?' + q.toString();
}

function posture(f: ReportFacts, id: string, controls: readonly PostureControl[]): string[] {
  if (f.posture === null) return [];
  const p = f.posture.get(id);
  if (!p) return ['no_posture'];
  const out: string[] = [];
  if (!(Date.parse(f.until) - Date.parse(p.reportedAt) <= POSTURE_STALE_MS)) out.push('posture_stale');
  for (const c of controls) {
    const v = p.controls[c];
    if (!v) out.push(`posture_missing:${c}`);
    else if (!v.ok) out.push(`posture_off:${c}`);
  }
  return out;
}

function common(f: ReportFacts, t: TerminalFacts): string[] {
  const out: string[] = [];
  if (t.monitorOnly) out.push('monitor_only');
  if (t.policyVersion < f.policy.version) out.push('policy_outdated');
  return out;
}

function item(f: ReportFacts, id: ItemId, fleetReasons: string[], perTerminal: (t: TerminalFacts) => string[], links: Link[]): ItemResult {
  const offenders: Offender[] = [];
  for (const t of f.terminals) {
    const reasons = [...fleetReasons, ...perTerminal(t)];
    if (reasons.length) offenders.push({ terminalId: t.id, name: t.hostname, reasons });
  }
  const total = f.terminals.length;
  const covered = total - offenders.length;
  // No terminal at all proves nothing: an empty fleet is not compliant.
  return { id, verdict: total > 0 && offenders.length === 0 ? 'compliant' : 'noncompliant', covered, total, offenders, fleetReasons, links };
}

/** 情報持ち出し不可設定: storage blocked by the policy, enforced (not monitor) on the current version. */
export function exportItem(f: ReportFacts): ItemResult {
  const usb = f.policy.usb;
  const fleet: string[] = [];
  if (usb.mode !== 'enforce') fleet.push('policy_usb_monitor');
  if (usb.defaultVerdict === 'allow') fleet.push('policy_usb_default_allow');
  for (const c of ['08', '06', '02', '0a', 'e0', 'ef']) {
    if (usb.classRules.some((r) => r.class.toLowerCase() === c && r.verdict === 'allow')) fleet.push(`policy_usb_class_allowed:${c}`);
  }
  return item(f, 'export', fleet, (t) => [...common(f, t), ...posture(f, t.id, ['usb_enforced', 'usb_boot_hold', 'usb_readonly_rule'])], [
    { label: 'linkBlocked', href: eventsLink(f, { type: 'usb.blocked' }) },
    { label: 'linkFilesWritten', href: eventsLink(f, { type: 'usb.file_written' }) },
    { label: 'linkExportsPage', href: `/exports?${new URLSearchParams({ from: f.fromDay, to: f.toDay }).toString()}` },
  ]);
}

/** 多要素認証 (ログインと画面ロック解除): no password-only path, in use on every terminal. */
export function mfaItem(f: ReportFacts): ItemResult {
  const fleet: string[] = [];
  if (f.policy.mfa.breakGlass) fleet.push('policy_mfa_break_glass');
  return item(
    f,
    'mfa',
    fleet,
    (t) => {
      const r = posture(f, t.id, ['mfa_pam_services', 'mfa_enrolment']);
      if (!(f.mfaSuccess.get(t.id) ?? 0)) r.push('no_mfa_in_period');
      return r;
    },
    [
      { label: 'linkMfa', href: eventsLink(f, { type: 'mfa.*' }) },
      { label: 'linkMfaFailure', href: eventsLink(f, { type: 'mfa.failure' }) },
    ],
  );
}

/** 画面ロック: only the terminal itself can say (posture); without a posture report it is not shown. */
export function screenLockItem(f: ReportFacts): ItemResult {
  return item(f, 'screenLock', [], (t) => (f.posture === null ? ['no_posture'] : posture(f, t.id, ['screen_lock'])), [{ label: 'linkAgent', href: eventsLink(f, { type: 'agent.*' }) }]);
}

/** 無許可ソフトウェア対策: enforce mode, and everything unauthorized that was seen was stopped. */
export function softwareItem(f: ReportFacts): ItemResult {
  const fleet: string[] = [];
  if (f.policy.software.mode !== 'enforce') fleet.push('policy_software_monitor');
  return item(
    f,
    'software',
    fleet,
    (t) => {
      const r = [...common(f, t), ...posture(f, t.id, ['software_enforcement'])];
      const seen = f.softwareSeen.get(t.id) ?? 0;
      if (seen > (f.softwareStopped.get(t.id) ?? 0)) r.push('unauthorized_not_stopped');
      return r;
    },
    [
      { label: 'linkSoftware', href: eventsLink(f, { type: 'software.*' }) },
      { label: 'linkUnauthorized', href: eventsLink(f, { type: 'software.unauthorized_process' }) },
    ],
  );
}

/** Why one exception does not meet the rule (empty = it does). */
export function exceptionFindings(e: ExceptionFacts): string[] {
  const out: string[] = [];
  if (e.applicant === null) out.push('exception_no_request');
  else if (e.applicant === e.approver) out.push('exception_self_approved');
  if (!e.reason.trim()) out.push('exception_no_reason');
  if (Date.parse(e.expiresAt) - Date.parse(e.grantedAt) > 31 * 86_400_000) out.push('exception_too_long');
  if (e.access === 'allow' && e.files.some((w) => w.sha256 === null)) out.push('exception_files_unhashed');
  return out;
}

/** 例外措置: every exception in the period was applied for, approved by another account, bounded. */
export function exceptionsItem(f: ReportFacts): ItemResult {
  const byTerminal = new Map<string, string[]>();
  for (const e of f.exceptions) {
    const r = exceptionFindings(e);
    if (r.length) byTerminal.set(e.agentId, [...(byTerminal.get(e.agentId) ?? []), ...r.map((x) => `${x}@${e.id}`)]);
  }
  return item(f, 'exceptions', [], (t) => byTerminal.get(t.id) ?? [], [
    { label: 'linkExceptions', href: eventsLink(f, { type: 'admin.usb_exception_granted' }) },
    { label: 'linkExceptionUsed', href: eventsLink(f, { type: 'usb.exception_used' }) },
    { label: 'linkFilesWritten', href: eventsLink(f, { type: 'usb.file_written' }) },
  ]);
}

/** ログの取得と完全性: every terminal reporting, its hash chain without gaps or breaks, never silent. */
export function logsItem(f: ReportFacts): ItemResult {
  return item(
    f,
    'logs',
    [],
    (t) => {
      const r: string[] = posture(f, t.id, ['agent_health']);
      const c = f.chain.get(t.id);
      if (!c || c.events === 0) r.push('no_events_in_period');
      if (c?.gaps) r.push('chain_gap');
      if (c?.dropped) r.push('events_dropped_accounted');
      if (c?.broken) r.push('chain_broken');
      if (c?.tampered) r.push('chain_tampered');
      if (t.status !== 'online') r.push(`status_${t.status}`);
      if (f.silentAlerts.get(t.id)) r.push('silent_in_period');
      return r;
    },
    [
      { label: 'linkSilent', href: eventsLink(f, { type: 'agent.silent' }) },
      { label: 'linkGap', href: eventsLink(f, { type: 'agent.gap' }) },
      { label: 'linkChainBroken', href: eventsLink(f, { type: 'agent.chain_broken' }) },
    ],
  );
}

/** ポリシー管理: every version signed and verifiable, every terminal on the current one. */
export function policyItem(f: ReportFacts): ItemResult {
  const fleet = f.policies.filter((p) => !p.signatureOk).map((p) => `policy_signature_bad:v${p.version}`);
  if (!f.policies.length) fleet.push('policy_none');
  return item(
    f,
    'policy',
    fleet,
    (t) => (t.policyVersion < f.policy.version ? ['policy_outdated'] : []),
    [
      { label: 'linkPolicyChanges', href: eventsLink(f, { type: 'admin.policy_published' }) },
      { label: 'linkPolicyDiffs', href: eventsLink(f, { type: 'admin.policy_changed' }) },
      { label: 'linkPolicyRejected', href: eventsLink(f, { type: 'agent.policy_rejected' }) },
    ],
  );
}

export function evaluate(f: ReportFacts): ItemResult[] {
  return [exportItem(f), mfaItem(f), screenLockItem(f), softwareItem(f), exceptionsItem(f), logsItem(f), policyItem(f)];
}
