/**
 * Posture probes (issue 16) on fixture trees (test/fixtures/posture/good and bad: modprobe.d, udev
 * rules, pam.d stacks with @include/include/substack chains, passwd/shadow, dconf keyfiles + locks,
 * a sysfs layout) and table-driven parser cases including hostile input.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LinuxPosturePlatform } from '../../agent/posture/linux/platform.js';
import {
  bootHoldReport,
  gvariantUint,
  loginAccounts,
  pamServiceIncludes,
  pamServicesReport,
  parseKeyfile,
  readonlyRuleReport,
  screenLockFiles,
  screenLockReport,
  softwareReport,
  usbEnforcedReport,
} from '../../agent/posture/probe.js';
import { readWindowsPosture, CREDENTIAL_PROVIDERS, PRIVACYIDEA_CP_CLSID, PRIVACYIDEA_CP_SETTINGS, SYSTEM_POLICIES } from '../../agent/posture/windows/platform.js';
import { RESTRICTIONS } from '../../agent/usb/windows/plan.js';
import { MemoryRegistry } from '../../agent/windows/registry.js';
import { postureDocumentCheck, POSTURE_LIMITS, type PostureControlReport } from '../../protocol/posture.js';

const FIX = join(import.meta.dirname, '..', 'fixtures', 'posture');
const inputs = { usbMode: 'enforce', screenLock: { maxIdleMinutes: 5, enforce: true } };
const tree = (name: string) => new LinuxPosturePlatform({ root: join(FIX, name), sysRoot: join(FIX, name, 'sys'), procRoot: join(FIX, name, 'proc'), userSettings: false });
const byControl = (rs: PostureControlReport[]) => Object.fromEntries(rs.map((r) => [r.control, r]));

describe('Linux posture on fixture trees', () => {
  it('a compliant terminal: every control ok, with file:line evidence', async () => {
    const r = byControl(await tree('good').read(inputs));
    expect(r.usb_enforced).toMatchObject({ state: 'ok', detail: { rootHubs: 2, rootHubsHolding: 2, mode: 'enforce' } });
    expect(r.usb_boot_hold).toMatchObject({ state: 'ok', detail: { configured: true, inEffect: '2' } });
    expect(r.usb_boot_hold!.evidence).toContain('/etc/modprobe.d/sekimori-usb.conf:6 options usbcore authorized_default=2');
    expect(r.usb_readonly_rule).toMatchObject({ state: 'ok', detail: { present: true } });
    expect(r.usb_readonly_rule!.evidence.some((e) => e.startsWith('/etc/udev/rules.d/70-sekimori-usb-readonly.rules:4 '))).toBe(true);
    expect(r.mfa_pam_services!.state).toBe('ok');
    const svc = Object.fromEntries(r.mfa_pam_services!.detail!.services!.map((s) => [s.name, s]));
    expect(svc.login).toEqual({ name: 'login', present: true, included: true });
    expect(svc['gdm-password']).toEqual({ name: 'gdm-password', present: true, included: true }); // substack → include → module
    expect(svc.sudo).toEqual({ name: 'sudo', present: true, included: true }); // include login → @include sekimori-auth
    expect(svc.sshd).toEqual({ name: 'sshd', present: true, included: true }); // absolute module path
    expect(svc.lightdm).toEqual({ name: 'lightdm', present: false, included: false });
    expect(r.mfa_pam_services!.evidence.find((e) => e.startsWith('gdm-password:'))).toContain('/etc/pam.d/sekimori-stack:1 auth include sekimori-auth');
    expect(r.mfa_enrolment).toMatchObject({ state: 'unknown', detail: { accounts: ['tanaka'] } });
    expect(r.screen_lock).toMatchObject({ state: 'ok', detail: { idleDelaySeconds: 300, lockEnabled: true, lockedDown: true } });
    expect(postureDocumentCheck.errors({ platform: 'linux', collectedAt: new Date(0).toISOString(), agentVersion: 'x', policyVersion: 1, clockOffsetMs: 0, outboxDepth: 0, controls: Object.values(r) })).toEqual([]);
  });

  it('a non-compliant terminal: each failure named', async () => {
    const r = byControl(await tree('bad').read(inputs));
    expect(r.usb_enforced).toMatchObject({ state: 'fail', detail: { rootHubs: 2, rootHubsHolding: 1 } });
    expect(r.usb_boot_hold).toMatchObject({ state: 'fail', detail: { configured: false, inEffect: '1' } });
    expect(r.usb_boot_hold!.evidence[0]).toMatch(/no modprobe.d option/);
    expect(r.usb_readonly_rule).toMatchObject({ state: 'fail', detail: { present: false } });
    expect(r.mfa_pam_services!.state).toBe('fail');
    const svc = Object.fromEntries(r.mfa_pam_services!.detail!.services!.map((s) => [s.name, s]));
    expect(svc['gdm-password']!.included).toBe(false); // commented include; `sufficient` does not require the code
    expect(r.mfa_pam_services!.evidence.find((e) => e.startsWith('gdm-password:'))).toMatch(/control sufficient does not require/);
    expect(svc.sshd!.included).toBe(false); // include cycle stops, bounded
    expect(svc.login!.included).toBe(true);
    expect(r.screen_lock).toMatchObject({ state: 'fail', detail: { idleDelaySeconds: 900, lockEnabled: false, lockedDown: false } });
  });

  it('with the module file missing, a stack that names it is not MFA', () => {
    const read = (n: string) => (n === 'login' ? 'auth required pam_sekimori.so' : null);
    expect(pamServicesReport(read, ['login'], () => null)).toMatchObject({ state: 'fail', detail: { services: [{ name: 'login', present: true, included: false }] } });
    expect(pamServicesReport(read, ['login'], () => '/lib/security/pam_sekimori.so').state).toBe('ok');
    expect(pamServicesReport(() => null, ['login'], () => null).state).toBe('unknown');
  });
});

describe('boot hold parsing', () => {
  const f = (text: string) => [{ path: '/etc/modprobe.d/x.conf', text }];
  it.each([
    ['options usbcore authorized_default=2', null, '2', 'ok'],
    ['options usbcore authorized_default=0', null, '0', 'ok'],
    ['options usbcore   use_both_schemes=y authorized_default=2  ', null, '2', 'ok'],
    ['# options usbcore authorized_default=2', null, '2', 'fail'], // commented: not configured (in effect by chance)
    ['options usbcore authorized_default=-1', null, '-1', 'fail'],
    ['options usbcore authorized_default=2\noptions usbcore authorized_default=1', null, '1', 'fail'], // the last one wins
    ['', 'ro quiet usbcore.authorized_default=0', '0', 'ok'], // cmdline alone
    ['options usbcore authorized_default=2', 'usbcore.authorized_default=1', '1', 'fail'], // cmdline wins
    ['options usbcore authorized_default=2', null, null, 'unknown'], // usbcore not loaded / unreadable
    ['options usbcore authorized_default=99999999999999999999', null, '2', 'fail'], // absurd: not parsed
  ])('%j cmdline %j in effect %j → %s', (text, cmdline, inEffect, state) => {
    expect(bootHoldReport(f(text), cmdline, inEffect).state).toBe(state);
  });
});

describe('PAM stack resolution', () => {
  const stacks = (files: Record<string, string>) => (n: string) => files[n] ?? null;
  it.each([
    [{ s: 'auth required pam_sekimori.so' }, true],
    [{ s: 'auth [success=ok default=die] pam_sekimori.so socket=/x' }, true],
    [{ s: 'auth requisite pam_sekimori.so' }, true],
    [{ s: 'auth sufficient pam_sekimori.so' }, false],
    [{ s: 'auth optional pam_sekimori.so' }, false],
    [{ s: 'account required pam_sekimori.so' }, false],
    [{ s: '#auth required pam_sekimori.so' }, false],
    [{ s: 'auth required pam_sekimori.so.evil' }, false],
    [{ s: 'auth required /tmp/evil/pam_sekimori.so' }, true], // named; the module file check judges the path
    [{ s: '@include ../../etc/shadow' }, false], // include targets stay in the folder
    [{ s: '@include a', a: '@include b', b: '@include c', c: '@include d', d: '@include e', e: '@include f', f: '@include g', g: '@include h', h: '@include i', i: '@include j', j: 'auth required pam_sekimori.so' }, false], // deeper than 8
    [{ s: '@include a', a: 'auth substack b', b: 'auth include c', c: 'auth required pam_sekimori.so' }, true],
    [{ s: '@include s' }, false], // self-include
  ])('%j → %s', (files, included) => {
    expect(pamServiceIncludes(stacks(files as Record<string, string>), 's').included).toBe(included);
  });
  it('a huge stack is read up to a bound (no hang)', () => {
    const big = 'auth required pam_permit.so\n'.repeat(100_000) + 'auth required pam_sekimori.so\n';
    expect(pamServiceIncludes(() => big, 's').included).toBe(false);
  });
});

describe('login accounts', () => {
  it.each([
    ['u:x:1000:1000::/home/u:/bin/bash', 'u:$6$x:1', ['u']],
    ['u:x:1000:1000::/home/u:/usr/sbin/nologin', 'u:$6$x:1', []],
    ['u:x:1000:1000::/home/u:/bin/bash', 'u:!$6$x:1', []],
    ['u:x:1000:1000::/home/u:/bin/bash', 'u:*:1', []],
    ['u:x:1000:1000::/home/u:/bin/bash', 'u::1', []], // empty: no password login
    ['u:x:1000:1000::/home/u:/bin/bash', null, []], // shadow unreadable: 'x' has no hash
    ['u:$1$legacy:1000:1000::/home/u:/bin/sh', null, ['u']],
    ['<img src=x onerror=alert(1)>:x:1000:1000::/h:/bin/bash', '<img src=x onerror=alert(1)>:$6$x:1', ['<img src=x onerror=alert(1)>']], // kept as data; escaped by the page
  ])('%s / %s → %j', (passwd, shadow, names) => {
    expect(loginAccounts(passwd, shadow).map((a) => a.name)).toEqual(names);
  });
  it('a passwd of 10^5 accounts yields at most the item bound', () => {
    const p = Array.from({ length: 100_000 }, (_, i) => `u${i}:x:${i}:${i}::/h:/bin/bash`).join('\n');
    const s = Array.from({ length: 100_000 }, (_, i) => `u${i}:$6$x:1`).join('\n');
    expect(loginAccounts(p, s)).toHaveLength(POSTURE_LIMITS.items);
  });
});

describe('dconf screen lock', () => {
  const sys = (text: string) => [{ path: '/etc/dconf/db/local.d/00-x', text }];
  const locks = [{ path: '/etc/dconf/db/local.d/locks/00-x', text: '/org/gnome/desktop/session/idle-delay\n/org/gnome/desktop/screensaver/lock-enabled\n' }];
  const gnome = (over: Partial<Parameters<typeof screenLockReport>[0]>) => ({ gnome: true, system: [], locks: [], users: [], ...over });
  it.each([
    ['GNOME defaults (300 s, lock on)', gnome({}), 5, false, 'ok', 300],
    ['system 600 s over 5 min', gnome({ system: sys('[org/gnome/desktop/session]\nidle-delay=uint32 600') }), 5, false, 'fail', 600],
    ['system 600 s within 10 min', gnome({ system: sys('[org/gnome/desktop/session]\nidle-delay=uint32 600') }), 10, false, 'ok', 600],
    ['0 = never', gnome({ system: sys('[org/gnome/desktop/session]\nidle-delay=uint32 0') }), 5, false, 'fail', 0],
    ['user raises it (not locked)', gnome({ system: sys('[org/gnome/desktop/session]\nidle-delay=uint32 300'), users: [{ user: 'u', dump: '[org/gnome/desktop/session]\nidle-delay=uint32 3600' }] }), 5, false, 'fail', 3600],
    ['user raises it but locked', gnome({ system: sys('[org/gnome/desktop/session]\nidle-delay=uint32 300\n[org/gnome/desktop/screensaver]\nlock-enabled=true'), locks, users: [{ user: 'u', dump: '[org/gnome/desktop/session]\nidle-delay=uint32 3600' }] }), 5, true, 'ok', 300],
    ['enforce without a lock', gnome({ system: sys('[org/gnome/desktop/session]\nidle-delay=uint32 300') }), 5, true, 'fail', 300],
    ['garbage value', gnome({ system: sys('[org/gnome/desktop/session]\nidle-delay=uint32 4294967296999') }), 5, false, 'unknown', null],
    ['no GNOME', { gnome: false, system: [], locks: [], users: [] }, 5, false, 'unknown', null],
  ])('%s', (_n, input, max, enforce, state, idle) => {
    const r = screenLockReport(input, max, enforce);
    expect(r.state).toBe(state);
    expect(r.detail?.idleDelaySeconds ?? null).toBe(idle);
  });
  it('the files the agent writes parse back as compliant and locked', () => {
    const f = screenLockFiles(5);
    const r = screenLockReport(gnome({ system: sys(f.keyfile), locks: [{ path: 'l', text: f.locks }], users: [{ user: 'u', dump: '[org/gnome/desktop/screensaver]\nlock-enabled=false' }] }), 5, true);
    expect(r).toMatchObject({ state: 'ok', detail: { idleDelaySeconds: 300, lockEnabled: true, lockedDown: true } });
  });
  it.each([
    ['uint32 300', 300],
    ['300', 300],
    ['@u 60', 60],
    ['uint32 -1', null],
    ['"300"', null],
    ['uint32 9007199254740993', null],
  ])('gvariant %j → %j', (v, n) => expect(gvariantUint(v)).toBe(n));
  it('keyfile groups and keys', () => {
    expect([...parseKeyfile('[/org/x/]\na = 1\n# c\n[org/y]\nb=true').keys()]).toEqual(['/org/x/a', '/org/y/b']);
  });
});

describe('small readers', () => {
  it('root hubs: none is unknown; monitor mode is a failure', () => {
    expect(usbEnforcedReport([], 'enforce', '/sys/bus/usb/devices').state).toBe('unknown');
    expect(usbEnforcedReport([{ name: 'usb1', authorizedDefault: '0' }], 'monitor', '/s').state).toBe('fail');
    expect(usbEnforcedReport([{ name: 'usb1', authorizedDefault: null }], 'enforce', '/s').state).toBe('fail');
  });
  it('read-only rule: a rule without the helper file fails', () => {
    const rules = [{ path: '/etc/udev/rules.d/70.rules', text: 'ACTION=="add", SUBSYSTEM=="block", SUBSYSTEMS=="usb", RUN+="/usr/lib/sekimori/usb-readonly %k"' }];
    expect(readonlyRuleReport(rules, true, '/usr/lib/sekimori/usb-readonly').state).toBe('ok');
    expect(readonlyRuleReport(rules, false, '/usr/lib/sekimori/usb-readonly').state).toBe('fail');
  });
  it('software: enforce with the pre-exec helper down fails; no mechanism (Windows) is judged on the mode', () => {
    expect(softwareReport('enforce', { running: false, why: 'no fanotify' }).state).toBe('fail');
    expect(softwareReport('enforce', { running: true, why: '' }).state).toBe('ok');
    expect(softwareReport('enforce', null)).toMatchObject({ state: 'ok', detail: { preexecRunning: null } });
    expect(softwareReport(null, null).state).toBe('unknown');
  });
  it('evidence is bounded and control characters are made visible', async () => {
    const huge = Array.from({ length: 500 }, (_, i) => `auth optional pam_x${i}.so\x1b[2J`).join('\n');
    const r = usbEnforcedReport(Array.from({ length: 300 }, (_, i) => ({ name: `usb${i}`, authorizedDefault: '0\x1b[31m' })), 'enforce', '/s');
    expect(r.evidence.length).toBeLessThanOrEqual(POSTURE_LIMITS.evidence);
    expect(r.evidence.join('')).not.toContain('\x1b');
    expect(huge.length).toBeGreaterThan(0);
  });
});

describe('Windows posture from the registry', () => {
  it('restrictions, credential provider and inactivity limit in place → ok; absent → fail', async () => {
    const reg = new MemoryRegistry();
    const none = byControl(await readWindowsPosture(reg, inputs));
    expect(none.usb_enforced!.state).toBe('fail');
    expect(none.mfa_pam_services).toMatchObject({ state: 'fail', detail: { present: false } });
    expect(none.screen_lock!.state).toBe('fail');
    expect(none.usb_boot_hold!.state).toBe('not_applicable');
    await reg.add(RESTRICTIONS, { name: 'DenyDeviceClasses', type: 'REG_DWORD', data: 1 });
    await reg.addKey(`${CREDENTIAL_PROVIDERS}\\${PRIVACYIDEA_CP_CLSID}`);
    await reg.add(PRIVACYIDEA_CP_SETTINGS, { name: 'hostname', type: 'REG_SZ', data: 'console.local' });
    await reg.add(SYSTEM_POLICIES, { name: 'InactivityTimeoutSecs', type: 'REG_DWORD', data: 300 });
    const ok = byControl(await readWindowsPosture(reg, inputs));
    expect(ok.usb_enforced!.state).toBe('ok');
    expect(ok.mfa_pam_services!.state).toBe('ok');
    expect(ok.screen_lock).toMatchObject({ state: 'ok', detail: { idleDelaySeconds: 300 } });
    await reg.add(SYSTEM_POLICIES, { name: 'InactivityTimeoutSecs', type: 'REG_DWORD', data: 0xffffffff });
    expect(byControl(await readWindowsPosture(reg, inputs)).screen_lock!.state).toBe('fail');
  });
});
