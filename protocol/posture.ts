/**
 * Terminal posture (issue 16): whether each control is IN PLACE on a terminal, with the evidence the
 * agent read (file:line, sysfs values, registry values). The agent sends one PostureDocument at start,
 * whenever a reading changes, and daily (POST /api/agent/posture, mutual TLS). postureVerdicts() is
 * the one judgement of such a document against the policy in force: the agent, the console's
 * terminals × controls matrix, the alert on a compliance transition and the 自己点検 report all
 * use it. Pure: no I/O, no clock.
 */
import { Type, type Static } from 'typebox';
import type { PolicyDocument } from './policy.js';
import { effectiveScreenLockPolicy } from './policy-screen-lock.js';
import { IsoTime, SafeCount, wireCheck } from './wire-check.js';

const closed = { additionalProperties: false } as const;

export const POSTURE_CONTROLS = [
  'usb_enforced', // enforcement active on every root hub (Linux authorized_default=0) / device-install restrictions (Windows)
  'usb_boot_hold', // usbcore authorized_default configured (modprobe.d / cmdline) and in effect
  'usb_readonly_rule', // the udev rule that sets registered read-only media read-only before mount
  'mfa_pam_services', // login, display managers, screen lockers, sshd, su, sudo include pam_sekimori (Windows: credential provider)
  'mfa_enrolment', // local accounts that can log in and have no MFA enrolment
  'screen_lock', // idle timeout ≤ policy maximum and locking on (optionally enforced)
  'software_enforcement', // software mode and whether pre-exec enforcement runs
  'agent_health', // agent and policy versions, clock offset, outbox depth
] as const;
export type PostureControl = (typeof POSTURE_CONTROLS)[number];

/** The agent's own reading; `not_applicable` = the control does not exist on this platform (judged ok). */
export type PostureState = 'ok' | 'fail' | 'unknown' | 'not_applicable';

/** Bounds: evidence is attacker-influenced text (file contents, account names); the console escapes it. */
export const POSTURE_LIMITS = { evidence: 64, evidenceText: 512, items: 256, name: 128, bodyBytes: 256 * 1024 } as const;

const Name = Type.String({ maxLength: POSTURE_LIMITS.name });
const Small = Type.Integer({ minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER });

/** What was read for one control; every member optional, only the ones that control uses are set. */
export const PostureDetailSchema = Type.Object(
  {
    mode: Type.Optional(Type.String({ maxLength: 16 })), // usb / software mode the agent runs ('enforce' | 'monitor')
    rootHubs: Type.Optional(SafeCount), // usb_enforced: root hubs seen
    rootHubsHolding: Type.Optional(SafeCount), // … of which authorized_default is 0 (or 2)
    configured: Type.Optional(Type.Boolean()), // usb_boot_hold: modprobe.d option or kernel cmdline sets it
    inEffect: Type.Optional(Type.Union([Type.String({ maxLength: 16 }), Type.Null()])), // usb_boot_hold: /sys/module/usbcore/parameters/authorized_default
    present: Type.Optional(Type.Boolean()), // usb_readonly_rule / credential provider present
    services: Type.Optional(
      Type.Array(Type.Object({ name: Name, present: Type.Boolean(), included: Type.Boolean() }, closed), { maxItems: POSTURE_LIMITS.items }),
    ),
    accounts: Type.Optional(Type.Array(Name, { maxItems: POSTURE_LIMITS.items })), // login-capable local accounts
    unenrolled: Type.Optional(Type.Array(Name, { maxItems: POSTURE_LIMITS.items })), // … without MFA enrolment
    idleDelaySeconds: Type.Optional(Type.Union([SafeCount, Type.Null()])), // screen_lock: 0 = never
    lockEnabled: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])),
    lockedDown: Type.Optional(Type.Boolean()), // screen_lock: the setting is locked (dconf lock / machine policy)
    preexecRunning: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])), // null: no pre-exec mechanism on this platform
    clockOffsetMs: Type.Optional(Small),
  },
  closed,
);
export type PostureDetail = Static<typeof PostureDetailSchema>;

export const PostureControlReportSchema = Type.Object(
  {
    control: Type.Union([
      Type.Literal('usb_enforced'), Type.Literal('usb_boot_hold'), Type.Literal('usb_readonly_rule'), Type.Literal('mfa_pam_services'),
      Type.Literal('mfa_enrolment'), Type.Literal('screen_lock'), Type.Literal('software_enforcement'), Type.Literal('agent_health'),
    ]),
    state: Type.Union([Type.Literal('ok'), Type.Literal('fail'), Type.Literal('unknown'), Type.Literal('not_applicable')]),
    /** What was read: "/etc/modprobe.d/sekimori-usb.conf:3 options usbcore authorized_default=2", "/sys/bus/usb/devices/usb1/authorized_default=0". */
    evidence: Type.Array(Type.String({ maxLength: POSTURE_LIMITS.evidenceText }), { maxItems: POSTURE_LIMITS.evidence }),
    detail: Type.Optional(PostureDetailSchema),
  },
  closed,
);
export type PostureControlReport = Static<typeof PostureControlReportSchema>;

/** POST /api/agent/posture — mutual TLS; the console stores the latest per terminal. */
export const PostureDocumentSchema = Type.Object(
  {
    platform: Type.String({ pattern: '^[a-z0-9-]{1,32}$' }), // 'linux' | 'windows'
    collectedAt: IsoTime,
    agentVersion: Type.String({ maxLength: 64 }),
    policyVersion: SafeCount,
    clockOffsetMs: Small, // console clock − local clock, as last measured (0 before the first heartbeat)
    outboxDepth: SafeCount,
    controls: Type.Array(PostureControlReportSchema, { maxItems: 32 }),
  },
  closed,
);
export type PostureDocument = Static<typeof PostureDocumentSchema>;
export const postureDocumentCheck = wireCheck(PostureDocumentSchema);

export interface PostureResponse {
  stored: boolean;
}

/** Beyond these the terminal is out of compliance on agent_health. */
export const POSTURE_HEALTH = { maxClockOffsetMs: 5 * 60_000, maxOutboxDepth: 10_000 } as const;

/**
 * PAM services whose absence of pam_sekimori is a failure when the service exists on the terminal
 * (login, display managers, screen lockers, remote login, privilege change).
 */
export const MFA_PAM_SERVICES = [
  'login', 'gdm-password', 'lightdm', 'sddm', 'xscreensaver', 'gnome-screensaver', 'kde', 'xfce4-screensaver',
  'cinnamon-screensaver', 'mate-screensaver', 'i3lock', 'swaylock', 'sshd', 'su', 'sudo',
] as const;

export interface PostureVerdict {
  control: PostureControl;
  ok: boolean;
  why: string;
}

/**
 * Judges each control of `doc` against `policy` (fail closed: a control not reported or read as
 * 'unknown' is not ok). One verdict per POSTURE_CONTROLS member, in that order. `why` is short
 * English; the console shows it next to the evidence.
 */
export function postureVerdicts(doc: PostureDocument, policy: PolicyDocument): PostureVerdict[] {
  const byControl = new Map<string, PostureControlReport>();
  for (const c of doc.controls) if (!byControl.has(c.control)) byControl.set(c.control, c);
  return POSTURE_CONTROLS.map((control) => {
    const r = byControl.get(control);
    if (!r) return { control, ok: false, why: 'not reported' };
    if (r.state === 'not_applicable') return { control, ok: true, why: 'not applicable on this platform' };
    const judged = judge(control, r, doc, policy);
    if (!judged.ok) return { control, ...judged };
    // The agent's own reading must agree (it may know more than the detail carries).
    if (r.state !== 'ok') return { control, ok: false, why: r.state === 'unknown' ? 'could not be read' : 'reported failing' };
    return { control, ...judged };
  });
}

function judge(control: PostureControl, r: PostureControlReport, doc: PostureDocument, policy: PolicyDocument): { ok: boolean; why: string } {
  const d = r.detail ?? {};
  switch (control) {
    case 'usb_enforced': {
      if (policy.usb.mode !== 'enforce') return { ok: false, why: `policy usb.mode is ${policy.usb.mode}` };
      if (d.mode !== undefined && d.mode !== 'enforce') return { ok: false, why: `agent runs usb in ${d.mode} mode` };
      if (d.rootHubs !== undefined && d.rootHubsHolding !== undefined && d.rootHubsHolding < d.rootHubs)
        return { ok: false, why: `${d.rootHubs - d.rootHubsHolding} of ${d.rootHubs} root hubs not holding new devices` };
      return { ok: true, why: 'ok' };
    }
    case 'usb_boot_hold':
      if (d.configured === false) return { ok: false, why: 'not configured (modprobe.d / kernel cmdline)' };
      if (d.inEffect !== undefined && d.inEffect !== '0' && d.inEffect !== '2') return { ok: false, why: `not in effect (authorized_default=${d.inEffect ?? 'unreadable'})` };
      return { ok: true, why: 'ok' };
    case 'usb_readonly_rule':
      if (d.present === false) return { ok: false, why: 'rule missing' };
      return { ok: true, why: 'ok' };
    case 'mfa_pam_services': {
      const missing = (d.services ?? []).filter((s) => s.present && !s.included).map((s) => s.name);
      if (missing.length) return { ok: false, why: `without MFA: ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ` (+${missing.length - 8})` : ''}` };
      if (d.present === false) return { ok: false, why: 'credential provider not registered' };
      return { ok: true, why: 'ok' };
    }
    case 'mfa_enrolment': {
      const u = d.unenrolled ?? [];
      if (u.length) return { ok: false, why: `${u.length} account(s) without MFA: ${u.slice(0, 8).join(', ')}` };
      return { ok: true, why: 'ok' };
    }
    case 'screen_lock': {
      const sl = effectiveScreenLockPolicy(policy.agent.screenLock);
      if (d.lockEnabled === false) return { ok: false, why: 'locking is off' };
      if (d.idleDelaySeconds === 0) return { ok: false, why: 'idle timeout is never' };
      if (typeof d.idleDelaySeconds === 'number' && d.idleDelaySeconds > sl.maxIdleMinutes * 60)
        return { ok: false, why: `idle timeout ${d.idleDelaySeconds} s exceeds ${sl.maxIdleMinutes} min` };
      if (d.idleDelaySeconds === null || d.lockEnabled === null) return { ok: false, why: 'idle timeout or lock setting not found' };
      if (sl.enforce && d.lockedDown === false) return { ok: false, why: 'policy enforces the setting but it is not locked' };
      return { ok: true, why: 'ok' };
    }
    case 'software_enforcement':
      if (policy.software.mode !== 'enforce') return { ok: false, why: `policy software.mode is ${policy.software.mode}` };
      if (d.mode !== undefined && d.mode !== 'enforce') return { ok: false, why: `agent runs software in ${d.mode} mode` };
      if (d.preexecRunning === false) return { ok: false, why: 'pre-exec enforcement not running' };
      return { ok: true, why: 'ok' };
    case 'agent_health': {
      if (doc.policyVersion < policy.version) return { ok: false, why: `policy v${doc.policyVersion} behind v${policy.version}` };
      if (Math.abs(doc.clockOffsetMs) > POSTURE_HEALTH.maxClockOffsetMs) return { ok: false, why: `clock off by ${Math.round(doc.clockOffsetMs / 1000)} s` };
      if (doc.outboxDepth > POSTURE_HEALTH.maxOutboxDepth) return { ok: false, why: `${doc.outboxDepth} events waiting to upload` };
      return { ok: true, why: 'ok' };
    }
  }
}

/** True when every control is ok: the terminal is compliant. */
export function postureCompliant(verdicts: readonly PostureVerdict[]): boolean {
  return verdicts.length > 0 && verdicts.every((v) => v.ok);
}
