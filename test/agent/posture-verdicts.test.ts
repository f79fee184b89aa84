/** postureVerdicts (protocol/posture.ts): one judgement of a posture document under a policy, fail closed. */
import { describe, expect, it } from 'vitest';
import { builtinPolicy, policyBodyErrors, defaultPolicyBody, type PolicyDocument } from '../../protocol/policy.js';
import { POSTURE_CONTROLS, postureCompliant, postureDocumentCheck, postureVerdicts, type PostureControlReport, type PostureDocument } from '../../protocol/posture.js';

const policy = (over: (p: PolicyDocument) => void = () => {}): PolicyDocument => {
  const p = { ...builtinPolicy(), version: 3 };
  p.software = { ...p.software, mode: 'enforce' };
  over(p);
  return p;
};
const ok = (control: PostureControlReport['control'], detail: PostureControlReport['detail'] = {}): PostureControlReport => ({ control, state: 'ok', evidence: ['x'], detail });
const good = (): PostureDocument => ({
  platform: 'linux',
  collectedAt: '2026-11-30T00:00:00.000Z',
  agentVersion: '0.1.0',
  policyVersion: 3,
  clockOffsetMs: 120,
  outboxDepth: 3,
  controls: [
    ok('usb_enforced', { mode: 'enforce', rootHubs: 2, rootHubsHolding: 2 }),
    ok('usb_boot_hold', { configured: true, inEffect: '2' }),
    ok('usb_readonly_rule', { present: true }),
    ok('mfa_pam_services', { services: [{ name: 'login', present: true, included: true }] }),
    ok('mfa_enrolment', { accounts: ['tanaka'], unenrolled: [] }),
    ok('screen_lock', { idleDelaySeconds: 300, lockEnabled: true, lockedDown: true }),
    ok('software_enforcement', { mode: 'enforce', preexecRunning: true }),
    ok('agent_health', { clockOffsetMs: 120 }),
  ],
});
const set = (doc: PostureDocument, r: PostureControlReport) => ({ ...doc, controls: doc.controls.map((c) => (c.control === r.control ? r : c)) });
const failing = (doc: PostureDocument, p = policy()) => postureVerdicts(doc, p).filter((v) => !v.ok).map((v) => v.control);

describe('postureVerdicts', () => {
  it('a compliant document: every control ok, in catalogue order', () => {
    const v = postureVerdicts(good(), policy());
    expect(v.map((x) => x.control)).toEqual([...POSTURE_CONTROLS]);
    expect(postureCompliant(v)).toBe(true);
    expect(postureDocumentCheck.errors(good())).toEqual([]);
  });

  it.each<[string, (d: PostureDocument) => PostureDocument, PolicyDocument | undefined, string[]]>([
    ['a control not reported', (d) => ({ ...d, controls: d.controls.slice(1) }), undefined, ['usb_enforced']],
    ['a control unknown', (d) => set(d, { ...ok('usb_boot_hold'), state: 'unknown' }), undefined, ['usb_boot_hold']],
    ['agent says fail although detail looks fine', (d) => set(d, { ...ok('usb_readonly_rule', { present: true }), state: 'fail' }), undefined, ['usb_readonly_rule']],
    ['one root hub not holding', (d) => set(d, ok('usb_enforced', { mode: 'enforce', rootHubs: 2, rootHubsHolding: 1 })), undefined, ['usb_enforced']],
    ['policy usb monitor', (d) => d, policy((p) => (p.usb = { ...p.usb, mode: 'monitor' })), ['usb_enforced']],
    ['boot hold not in effect', (d) => set(d, ok('usb_boot_hold', { configured: true, inEffect: '1' })), undefined, ['usb_boot_hold']],
    ['a service without MFA', (d) => set(d, ok('mfa_pam_services', { services: [{ name: 'gdm-password', present: true, included: false }] })), undefined, ['mfa_pam_services']],
    ['an absent service is fine', (d) => set(d, ok('mfa_pam_services', { services: [{ name: 'sddm', present: false, included: false }] })), undefined, []],
    ['an account without enrolment', (d) => set(d, ok('mfa_enrolment', { accounts: ['a'], unenrolled: ['a'] })), undefined, ['mfa_enrolment']],
    ['idle 301 s over 5 min', (d) => set(d, ok('screen_lock', { idleDelaySeconds: 301, lockEnabled: true, lockedDown: true })), undefined, ['screen_lock']],
    ['idle 600 s under a 10-min policy', (d) => set(d, ok('screen_lock', { idleDelaySeconds: 600, lockEnabled: true, lockedDown: false })), policy((p) => (p.agent = { ...p.agent, screenLock: { maxIdleMinutes: 10 } })), []],
    ['enforced but not locked down', (d) => set(d, ok('screen_lock', { idleDelaySeconds: 300, lockEnabled: true, lockedDown: false })), policy((p) => (p.agent = { ...p.agent, screenLock: { enforce: true } })), ['screen_lock']],
    ['idle never (0)', (d) => set(d, ok('screen_lock', { idleDelaySeconds: 0, lockEnabled: true })), undefined, ['screen_lock']],
    ['lock off', (d) => set(d, ok('screen_lock', { idleDelaySeconds: 60, lockEnabled: false })), undefined, ['screen_lock']],
    ['software monitor by policy', (d) => d, policy((p) => (p.software = { ...p.software, mode: 'monitor' })), ['software_enforcement']],
    ['pre-exec down', (d) => set(d, ok('software_enforcement', { mode: 'enforce', preexecRunning: false })), undefined, ['software_enforcement']],
    ['policy behind', (d) => ({ ...d, policyVersion: 2 }), undefined, ['agent_health']],
    ['clock off by 2^53 ms', (d) => ({ ...d, clockOffsetMs: Number.MAX_SAFE_INTEGER }), undefined, ['agent_health']],
    ['outbox of 2^53 − 1 events', (d) => ({ ...d, outboxDepth: Number.MAX_SAFE_INTEGER }), undefined, ['agent_health']],
    ['not applicable counts as ok', (d) => set(d, { control: 'usb_boot_hold', state: 'not_applicable', evidence: [] }), undefined, []],
    ['a duplicated control: the first one counts', (d) => ({ ...d, controls: [{ ...ok('usb_readonly_rule', { present: false }), state: 'fail' as const }, ...d.controls] }), undefined, ['usb_readonly_rule']],
  ])('%s', (_name, change, p, expected) => {
    expect(failing(change(good()), p)).toEqual(expected);
  });

  it('the schema refuses absurd documents (unknown control, 2^53, year-9999-style junk, too much evidence)', () => {
    const d = good();
    expect(postureDocumentCheck.check({ ...d, controls: [{ control: 'rootkit', state: 'ok', evidence: [] }] })).toBe(false);
    expect(postureDocumentCheck.check({ ...d, outboxDepth: 2 ** 53 })).toBe(false);
    expect(postureDocumentCheck.check({ ...d, collectedAt: '9999-99-99' })).toBe(false);
    expect(postureDocumentCheck.check({ ...d, controls: [{ ...ok('usb_enforced'), evidence: Array(65).fill('x') }] })).toBe(false);
    expect(postureDocumentCheck.check({ ...d, extra: 1 })).toBe(false);
    expect(postureDocumentCheck.check({ ...d, collectedAt: '9999-12-31T23:59:59.999Z' })).toBe(true); // well-formed: stored, judged like any other
  });

  it('policy.agent.screenLock is optional; old policies stay valid, bad values are named', () => {
    expect(policyBodyErrors(defaultPolicyBody())).toEqual([]);
    const b = defaultPolicyBody();
    expect(policyBodyErrors({ ...b, agent: { ...b.agent, screenLock: { maxIdleMinutes: 5, enforce: true } } })).toEqual([]);
    expect(policyBodyErrors({ ...b, agent: { ...b.agent, screenLock: { maxIdleMinutes: 0, lock: 1 } } })).toEqual([
      'policy.agent.screenLock.lock: unknown setting',
      'policy.agent.screenLock.maxIdleMinutes: must be an integer from 1 to 1440',
    ]);
  });
});
