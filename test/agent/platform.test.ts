/**
 * agent/platform.ts, the one place that looks at process.platform: the capabilities per OS (no
 * PAM/MFA capability on Windows), the local API endpoint (Unix socket in the state folder on
 * Linux, named pipe on Windows), the default state folder, and the platform implementations
 * (a Windows entry not wired yet leaves its capability idle, loudly).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentContext, LogLevel } from '../../agent/capability.js';
import { createCapabilities } from '../../agent/capabilities.js';
import { agentOs, capabilityNames, defaultStateDir, isNamedPipe, localEndpoint, softwarePlatform, usbPlatform, WINDOWS_PIPE } from '../../agent/platform.js';
import { SoftwareCapability } from '../../agent/software/capability.js';
import { LinuxSoftwarePlatform } from '../../agent/software/linux/platform.js';
import { UsbCapability } from '../../agent/usb/capability.js';
import { LinuxUsbPlatform } from '../../agent/usb/linux/platform.js';
import { WindowsUsbPlatform } from '../../agent/usb/windows/platform.js';
import { WindowsSoftwarePlatform } from '../../agent/software/windows/platform.js';
import { builtinPolicy } from '../../protocol/policy.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('agentOs', () => {
  it.each([
    ['linux', 'linux'],
    ['win32', 'windows'],
    ['darwin', 'other'],
    ['freebsd', 'other'],
    ['android', 'other'],
  ] as const)('%s → %s', (p, os) => expect(agentOs(p)).toBe(os));
});

describe('capabilities per OS', () => {
  it.each([
    ['linux', ['mfa', 'software', 'usb', 'posture']],
    ['windows', ['software', 'usb', 'posture']], // logon MFA there is the Credential Provider asking the console
    ['other', ['software', 'usb']],
  ] as const)('%s → %j', (os, names) => {
    expect(capabilityNames(os)).toEqual(names);
    expect(createCapabilities(capabilityNames(os)).map((c) => c.name)).toEqual(names);
  });
});

describe('local API endpoint', () => {
  const env = { ProgramData: 'C:\\ProgramData' };
  it('Linux: STATE/agent.sock, as before', () => {
    expect(localEndpoint('/var/lib/sekimori-agent', 'linux')).toBe('/var/lib/sekimori-agent/agent.sock');
    expect(localEndpoint('/tmp/a b/state', 'linux')).toBe('/tmp/a b/state/agent.sock');
  });
  it('Windows: the default state folder gets \\\\.\\pipe\\sekimori-agent (any case, any trailing slash)', () => {
    expect(WINDOWS_PIPE).toBe('\\\\.\\pipe\\sekimori-agent');
    expect(localEndpoint('C:\\ProgramData\\Sekimori\\agent', 'windows', env)).toBe(WINDOWS_PIPE);
    expect(localEndpoint('c:\\programdata\\sekimori\\AGENT\\', 'windows', env)).toBe(WINDOWS_PIPE);
  });
  it('Windows: other state folders get pipes of their own (agents side by side), stable per folder', () => {
    const a = localEndpoint('C:\\test\\a', 'windows', env);
    const b = localEndpoint('C:\\test\\b', 'windows', env);
    expect(a).not.toBe(b);
    expect(a).toBe(localEndpoint('c:\\TEST\\a', 'windows', env));
    for (const p of [a, b]) expect(p).toMatch(/^\\\\\.\\pipe\\sekimori-agent-[0-9a-f]{16}$/);
  });
  it('Windows: hostile folder names never leave the pipe namespace', () => {
    for (const dir of ['..\\..\\pipe\\x', 'C:\\a\u0000b', '\\\\?\\pipe\\evil', 'C:\\' + 'x'.repeat(5000), '\\\\server\\share\\state']) {
      expect(localEndpoint(dir, 'windows', env)).toMatch(/^\\\\\.\\pipe\\sekimori-agent(-[0-9a-f]{16})?$/);
    }
  });
  it.each([
    ['\\\\.\\pipe\\sekimori-agent', true],
    ['\\\\?\\pipe\\x', true],
    ['\\\\.\\PIPE\\x', true],
    ['/var/lib/sekimori-agent/agent.sock', false],
    ['C:\\pipe\\x', false],
    ['\\\\server\\pipe\\x', false],
    ['', false],
  ] as const)('isNamedPipe(%j) = %s', (p, yes) => expect(isNamedPipe(p)).toBe(yes));
});

describe('default state folder', () => {
  it.each([
    ['linux', {}, '/var/lib/sekimori-agent'],
    ['windows', { ProgramData: 'D:\\PD' }, 'D:\\PD\\Sekimori\\agent'],
    ['windows', { PROGRAMDATA: 'E:\\ProgramData' }, 'E:\\ProgramData\\Sekimori\\agent'],
    ['windows', {}, 'C:\\ProgramData\\Sekimori\\agent'],
  ] as const)('%s %j → %s', (os, env, dir) => expect(defaultStateDir(os, env)).toBe(dir));
});

function fakeContext(stateDir: string, logs: [LogLevel, string][], emitted: unknown[]): AgentContext {
  return {
    agentId: 'agent-under-test',
    stateDir,
    monitorOnly: false,
    emit: (e) => {
      emitted.push(e);
      return {} as ReturnType<AgentContext['emit']>;
    },
    log: (l, m) => void logs.push([l, m]),
    console: { request: () => Promise.reject(new Error('offline')), consoleNow: () => new Date(), reachable: () => false },
    local: { route: () => undefined, socketPath: join(stateDir, 'agent.sock') },
  };
}

describe('platform implementations', () => {
  it('Linux gets the Linux implementations; SEKIMORI_USB_SYSROOT points the USB one at another sysfs', () => {
    const u = usbPlatform({}, 'linux', { SEKIMORI_USB_SYSROOT: '/tmp/fake-sys' });
    expect(u).toBeInstanceOf(LinuxUsbPlatform);
    expect((u as LinuxUsbPlatform).sysRoot).toBe('/tmp/fake-sys');
    expect((usbPlatform({}, 'linux', {}) as LinuxUsbPlatform).sysRoot).toBe('/sys');
    expect(softwarePlatform({}, 'linux')).toBeInstanceOf(LinuxSoftwarePlatform);
  });

  it('Windows gets the registry device control and the Windows software platform', () => {
    expect(usbPlatform({}, 'windows')).toBeInstanceOf(WindowsUsbPlatform);
    expect(softwarePlatform({}, 'windows')).toBeInstanceOf(WindowsSoftwarePlatform);
  });

  it('an OS without an implementation: the capabilities start idle, say so, and touch nothing', async () => {
    for (const os of ['other'] as const) {
      const state = mkdtempSync(join(tmpdir(), 'sekimori-platform-'));
      dirs.push(state);
      const logs: [LogLevel, string][] = [];
      const emitted: unknown[] = [];
      const usb = new UsbCapability({ platform: usbPlatform({}, os) });
      const sw = new SoftwareCapability(softwarePlatform({}, os));
      const policy = builtinPolicy();
      await usb.start(fakeContext(state, logs, emitted), policy);
      await sw.start(fakeContext(state, logs, emitted), policy);
      await usb.applyPolicy(policy);
      await sw.applyPolicy(policy);
      await usb.stop();
      await sw.stop();
      expect(emitted).toEqual([]);
      expect(logs.filter(([l]) => l === 'warn').map(([, m]) => m.split(':')[0])).toEqual(['usb', 'software']);
      expect(sw.restore('00000000-0000-4000-8000-000000000000', 'local').ok).toBe(false); // refused, nothing restored
    }
  });
});
