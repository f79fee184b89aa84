/**
 * 自己点検レポート items (console/report/items.ts): each item's verdict, coverage and offenders from
 * facts, table-driven, including hostile input (absurd counts, another terminal's ids, markup in
 * host names) and the fail-closed cases (no terminals, no posture, unknown terminals).
 */
import { describe, expect, it } from 'vitest';
import { builtinPolicy, type PolicyDocument } from '../../protocol/policy.js';
import { evaluate, eventsLink, exceptionFindings, type ExceptionFacts, type ItemId, type ItemResult, type PostureFacts, type ReportFacts, type TerminalFacts } from '../../console/report/items.js';
import { reasonText } from '../../console/report/text.js';
import { POSTURE_CONTROLS, type PostureControl } from '../../protocol/posture.js';

const HOSTILE = '<img src=x onerror=alert(1)>';

function terminal(id: string, over: Partial<TerminalFacts> = {}): TerminalFacts {
  return { id, hostname: `pc-${id}`, status: 'online', policyVersion: 3, monitorOnly: false, lastSeen: '2026-11-20T00:00:00.000Z', ...over };
}

function strictPolicy(): PolicyDocument {
  const p = builtinPolicy();
  p.version = 3;
  p.usb.mode = 'enforce';
  p.software.mode = 'enforce';
  return p;
}

function allPosture(ok = true): PostureFacts {
  return { reportedAt: '2026-11-30T00:00:00.000Z', controls: Object.fromEntries(POSTURE_CONTROLS.map((c) => [c, { ok, detail: ok ? 'ok' : 'reported failing' }])) };
}

function postureWith(control: PostureControl, ok: boolean): PostureFacts {
  const p = allPosture();
  return { ...p, controls: { ...p.controls, [control]: { ok, detail: '' } } };
}

function exception(over: Partial<ExceptionFacts> = {}): ExceptionFacts {
  return {
    id: 'ux-1',
    agentId: 'a',
    device: '0781:5581:S1',
    access: 'allow',
    grantedAt: '2026-11-10T00:00:00.000Z',
    expiresAt: '2026-11-10T04:00:00.000Z',
    revokedAt: null,
    reason: '住民票データの移送',
    applicant: 'suzuki',
    staffUser: 'tanaka',
    approver: 'admin',
    requestId: 'uq-1',
    files: [],
    ...over,
  };
}

/** A compliant fleet of two terminals; each case changes one thing. */
function facts(over: Partial<ReportFacts> = {}): ReportFacts {
  const ids = ['a', 'b'];
  return {
    fromDay: '2026-11-01',
    toDay: '2026-11-30',
    since: '2026-10-31T15:00:00.000Z',
    until: '2026-11-30T15:00:00.000Z',
    terminals: ids.map((i) => terminal(i)),
    policy: strictPolicy(),
    policies: [1, 2, 3].map((v) => ({ version: v, createdAt: '2026-11-01T00:00:00.000Z', createdBy: 'admin', signatureOk: true })),
    posture: new Map(ids.map((i) => [i, allPosture()])),
    mfaSuccess: new Map(ids.map((i) => [i, 10])),
    softwareSeen: new Map(),
    softwareStopped: new Map(),
    exceptions: [exception()],
    chain: new Map(ids.map((i) => [i, { events: 100, gaps: 0, broken: 0, tampered: 0, headSeq: 100, headHash: 'f'.repeat(64) }])),
    silentAlerts: new Map(),
    ...over,
  };
}

function byId(items: ItemResult[], id: ItemId): ItemResult {
  return items.find((i) => i.id === id)!;
}

const summary = (r: ItemResult) => ({ verdict: r.verdict, covered: r.covered, total: r.total, offenders: r.offenders.map((o) => o.terminalId).sort() });

describe('report items', () => {
  it('a compliant fleet: every item compliant, 2 of 2', () => {
    const items = evaluate(facts());
    expect(items.map((i) => i.id)).toEqual(['export', 'mfa', 'screenLock', 'software', 'exceptions', 'logs', 'policy']);
    for (const i of items) expect(summary(i), i.id).toEqual({ verdict: 'compliant', covered: 2, total: 2, offenders: [] });
  });

  const policyWith = (f: (p: PolicyDocument) => void) => {
    const p = strictPolicy();
    f(p);
    return p;
  };

  // [name, change, item, expected offenders, a reason the first offender carries]
  const cases: [string, Partial<ReportFacts>, ItemId, string[], string][] = [
    ['USB monitor mode fails every terminal', { policy: policyWith((p) => (p.usb.mode = 'monitor')) }, 'export', ['a', 'b'], 'policy_usb_monitor'],
    ['storage class allowed by policy', { policy: policyWith((p) => p.usb.classRules.unshift({ class: '08', verdict: 'allow' })) }, 'export', ['a', 'b'], 'policy_usb_class_allowed:08'],
    ['USB default allow', { policy: policyWith((p) => (p.usb.defaultVerdict = 'allow')) }, 'export', ['a', 'b'], 'policy_usb_default_allow'],
    ['a monitor-only terminal', { terminals: [terminal('a', { monitorOnly: true }), terminal('b')] }, 'export', ['a'], 'monitor_only'],
    ['a terminal on an old policy', { terminals: [terminal('a'), terminal('b', { policyVersion: 2 })] }, 'export', ['b'], 'policy_outdated'],
    ['boot hold off in posture', { posture: new Map([['a', allPosture()], ['b', postureWith('usb_boot_hold', false)]]) }, 'export', ['b'], 'posture_off:usb_boot_hold'],
    ['read-only rule missing', { posture: new Map([['a', postureWith('usb_readonly_rule', false)], ['b', allPosture()]]) }, 'export', ['a'], 'posture_off:usb_readonly_rule'],
    ['a posture report from long before the period end', { posture: new Map([['a', { ...allPosture(), reportedAt: '2026-10-01T00:00:00.000Z' }], ['b', allPosture()]]) }, 'export', ['a'], 'posture_stale'],
    ['a posture report dated in year 9999 is not stale but proves nothing more', { posture: new Map([['a', { ...allPosture(), reportedAt: '9999-12-31T00:00:00.000Z' }], ['b', allPosture()]]) }, 'export', [], ''],
    ['a posture report with an unreadable date is stale', { posture: new Map([['a', { ...allPosture(), reportedAt: 'garbage' }], ['b', allPosture()]]) }, 'export', ['a'], 'posture_stale'],
    ['unenrolled accounts', { posture: new Map([['a', allPosture()], ['b', postureWith('mfa_enrolment', false)]]) }, 'mfa', ['b'], 'posture_off:mfa_enrolment'],
    ['agent health failing (clock, outbox)', { posture: new Map([['a', allPosture()], ['b', postureWith('agent_health', false)]]) }, 'logs', ['b'], 'posture_off:agent_health'],
    ['a terminal that never reported posture', { posture: new Map([['a', allPosture()]]) }, 'export', ['b'], 'no_posture'],
    ['posture without the control', { posture: new Map([['a', allPosture()], ['b', { reportedAt: '2026-11-30T00:00:00.000Z', controls: {} }]]) }, 'mfa', ['b'], 'posture_missing:mfa_pam_services'],
    ['posture of another terminal id only', { posture: new Map([['zz', allPosture()]]) }, 'software', ['a', 'b'], 'no_posture'],
    ['break-glass allowed', { policy: policyWith((p) => (p.mfa.breakGlass = true)) }, 'mfa', ['a', 'b'], 'policy_mfa_break_glass'],
    ['no MFA in the period on one terminal', { mfaSuccess: new Map([['a', 1]]) }, 'mfa', ['b'], 'no_mfa_in_period'],
    ['MFA counted for another terminal id only', { mfaSuccess: new Map([['zz-other', 2 ** 53]]) }, 'mfa', ['a', 'b'], 'no_mfa_in_period'],
    ['screen lock off', { posture: new Map([['a', allPosture(false)], ['b', allPosture()]]) }, 'screenLock', ['a'], 'posture_off:screen_lock'],
    ['no posture source: screen lock unverified everywhere', { posture: null }, 'screenLock', ['a', 'b'], 'no_posture'],
    ['software monitor mode', { policy: policyWith((p) => (p.software.mode = 'monitor')) }, 'software', ['a', 'b'], 'policy_software_monitor'],
    ['unauthorized not stopped', { softwareSeen: new Map([['a', 3]]), softwareStopped: new Map([['a', 2]]) }, 'software', ['a'], 'unauthorized_not_stopped'],
    ['huge counts, all stopped', { softwareSeen: new Map([['a', Number.MAX_SAFE_INTEGER]]), softwareStopped: new Map([['a', Number.MAX_SAFE_INTEGER]]) }, 'software', [], ''],
    ['exception without request', { exceptions: [exception({ applicant: null, requestId: null })] }, 'exceptions', ['a'], 'exception_no_request@ux-1'],
    ['self-approved exception', { exceptions: [exception({ agentId: 'b', applicant: 'admin', approver: 'admin' })] }, 'exceptions', ['b'], 'exception_self_approved@ux-1'],
    ['exception to year 9999', { exceptions: [exception({ expiresAt: '9999-12-31T23:59:59.999Z' })] }, 'exceptions', ['a'], 'exception_too_long@ux-1'],
    ['exception on an unknown terminal: no offender row invented', { exceptions: [exception({ agentId: 'ghost' })] }, 'exceptions', [], ''],
    ['chain gap', { chain: new Map([['a', { events: 5, gaps: 1, broken: 0, tampered: 0, headSeq: 9, headHash: null }], ['b', { events: 5, gaps: 0, broken: 0, tampered: 0, headSeq: 5, headHash: null }]]) }, 'logs', ['a'], 'chain_gap'],
    ['tampered event', { chain: new Map([['a', { events: 5, gaps: 0, broken: 0, tampered: 1, headSeq: 5, headHash: null }], ['b', { events: 5, gaps: 0, broken: 0, tampered: 0, headSeq: 5, headHash: null }]]) }, 'logs', ['a'], 'chain_tampered'],
    // Issue 17: dropped at the agent's cap and accounted for — its own reason, not a gap.
    ['events dropped, accounted for', { chain: new Map([['a', { events: 5, gaps: 0, dropped: 3, broken: 0, tampered: 0, headSeq: 9, headHash: null }], ['b', { events: 5, gaps: 0, broken: 0, tampered: 0, headSeq: 5, headHash: null }]]) }, 'logs', ['a'], 'events_dropped_accounted'],
    ['no events at all from one terminal', { chain: new Map([['a', { events: 5, gaps: 0, broken: 0, tampered: 0, headSeq: 5, headHash: null }]]) }, 'logs', ['b'], 'no_events_in_period'],
    ['silent now', { terminals: [terminal('a', { status: 'silent' }), terminal('b')] }, 'logs', ['a'], 'status_silent'],
    ['silent during the period', { silentAlerts: new Map([['b', 1]]) }, 'logs', ['b'], 'silent_in_period'],
    ['a policy version whose signature fails', { policies: [{ version: 1, createdAt: '', createdBy: HOSTILE, signatureOk: false }] }, 'policy', ['a', 'b'], 'policy_signature_bad:v1'],
    ['terminal behind on policy', { terminals: [terminal('a', { policyVersion: 0 }), terminal('b')] }, 'policy', ['a'], 'policy_outdated'],
  ];

  it.each(cases)('%s', (_name, change, id, offenders, reason) => {
    const r = byId(evaluate(facts(change)), id);
    expect(r.offenders.map((o) => o.terminalId).sort()).toEqual(offenders);
    expect(r.verdict).toBe(offenders.length ? 'noncompliant' : 'compliant');
    expect(r.covered).toBe(r.total - offenders.length);
    if (reason) expect(r.offenders[0]!.reasons).toContain(reason);
    // Every reason code has words (never shown as a raw code) in both languages.
    for (const o of r.offenders) for (const x of o.reasons) for (const L of ['ja', 'en'] as const) expect(reasonText(L, x)).not.toBe(x);
  });

  it('an empty fleet is not compliant (nothing was shown)', () => {
    for (const i of evaluate(facts({ terminals: [] }))) expect(summary(i)).toEqual({ verdict: 'noncompliant', covered: 0, total: 0, offenders: [] });
  });

  it('hostile host names are carried as data (the page escapes them)', () => {
    const r = byId(evaluate(facts({ terminals: [terminal('a', { hostname: HOSTILE, monitorOnly: true }), terminal('b')] })), 'export');
    expect(r.offenders[0]!.name).toBe(HOSTILE);
  });

  it('links filter the operation log by type or terminal and the period only', () => {
    const f = facts();
    expect(eventsLink(f, { type: 'usb.blocked' })).toBe('/events?type=usb.blocked&since=2026-11-01&until=2026-11-30');
    expect(eventsLink(f, { terminal: 'a&type=x' })).toBe('/events?terminal=a%26type%3Dx&since=2026-11-01&until=2026-11-30');
    for (const i of evaluate(f)) for (const l of i.links) expect(l.href).toMatch(/^\/events\?type=[a-z_.*%2A]+&since=2026-11-01&until=2026-11-30$|^\/exports\?from=2026-11-01&to=2026-11-30$/);
  });

  it('exception findings: files written without a hash on an allow exception', () => {
    const w = { ts: '2026-11-10T01:00:00.000Z', agentId: 'a', path: '=cmd|x', size: 1, sha256: null, user: 'tanaka', exceptionId: 'ux-1', device: '0781:5581' };
    expect(exceptionFindings(exception({ files: [w] }))).toEqual(['exception_files_unhashed']);
    expect(exceptionFindings(exception({ files: [w], access: 'readonly' }))).toEqual([]);
    expect(exceptionFindings(exception({ reason: '   ' }))).toEqual(['exception_no_reason']);
  });
});
