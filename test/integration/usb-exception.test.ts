/**
 * Time-limited USB exceptions end to end with the real console and agent processes: granted with
 * the console CLI, fetched by the agent over mTLS, applied to a device in the agent's own fake
 * sysfs tree (the kernel side is proven in the QEMU tier), surviving a re-plug, gone at expiry.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeSysfs } from '../usb/fake-sysfs.js';
import { enrollAgent, startConsole, testAgentEnv, waitFor, type TestAgent, type TestConsole } from './harness.js';

describe('temporary USB exception (一時許可)', () => {
  let c: TestConsole;
  let a: TestAgent;
  let fake: FakeSysfs;
  const STICK = { vid: 0x0781, pid: 0x5567, serial: 'EXC0001' };
  const authorized = (path: string) => readFileSync(join(fake.usbDir(), path, 'authorized'), 'utf8').trim();
  const plug = (path: string, devnum: number) =>
    fake.addDevice(path, STICK.vid, STICK.pid, [[0, 8, 6, 0x50]], { configured: false, serial: Buffer.from(STICK.serial), devnum });

  beforeAll(async () => {
    c = await startConsole({ policy: { agent: { heartbeatSeconds: 1, uploadBatchSize: 500 }, usb: { exceptionPollSeconds: 1 } } });
    a = await enrollAgent(c, { start: false });
    const sysRoot = testAgentEnv(a.stateDir).SEKIMORI_USB_SYSROOT!;
    fake = new FakeSysfs(sysRoot);
    fake.addRootHub(1);
    plug('1-1', 5);
    await a.start();
  });
  afterAll(async () => {
    await a.cleanup();
    await c.cleanup();
  });

  it('blocks the stick, then lets it through while the exception lasts, also after a re-plug', async () => {
    await waitFor('usb.blocked for the stick', () => c.events(['--agent', a.agentId, '--type', 'usb.blocked']).length >= 1, 30_000, 250);
    expect(authorized('1-1')).toBe('0');
    expect(readFileSync(join(fake.usbDir(), 'usb1', 'authorized_default'), 'utf8').trim()).toBe('0');

    const grant = c.json<{ id: string; expiresAt: string }>(['usb-exception', 'grant', '--agent', a.agentId, '--device', '0781:5567:EXC0001', '--for', '1h', '--reason', '監査資料の受け渡し']);
    await waitFor('exception applied', () => authorized('1-1') === '1', 30_000, 200);
    const used = await waitFor('usb.exception_used', () => c.events(['--agent', a.agentId, '--type', 'usb.exception_used'])[0], 10_000, 200);
    expect(JSON.stringify(used.data)).toContain(grant.id);
    expect(c.events(['--type', 'admin.usb_exception_granted']).map((e) => e.data.id)).toContain(grant.id);

    // Re-plug (new device number, as the kernel does): still allowed without asking anyone.
    fake.removeDevice('1-1');
    await new Promise((r) => setTimeout(r, 1500));
    plug('1-1', 6);
    await waitFor('allowed again after re-plug', () => authorized('1-1') === '1', 30_000, 200);
  });

  it('ends with revocation: the next plug is blocked again', async () => {
    const list = c.json<{ id: string }[]>(['usb-exception', 'list', '--agent', a.agentId]);
    const revoked = c.cli(['usb-exception', 'revoke', list[0]!.id]);
    expect(revoked.code, revoked.stderr).toBe(0);
    await new Promise((r) => setTimeout(r, 2500)); // the agent polls every second
    fake.removeDevice('1-1');
    await new Promise((r) => setTimeout(r, 1500));
    const blockedBefore = c.events(['--agent', a.agentId, '--type', 'usb.blocked']).length;
    plug('1-1', 7);
    await waitFor('blocked again', () => c.events(['--agent', a.agentId, '--type', 'usb.blocked']).length > blockedBefore, 30_000, 250);
    expect(authorized('1-1')).toBe('0');
  });

  it('expires by the console clock: a plug after expiry is blocked', async () => {
    c.json(['usb-exception', 'grant', '--agent', a.agentId, '--device', '0781:5567:EXC0001', '--for', '8s']);
    fake.removeDevice('1-1');
    plug('1-1', 8);
    await waitFor('allowed during the grant', () => authorized('1-1') === '1', 5_000, 100);
    await new Promise((r) => setTimeout(r, 7000));
    fake.removeDevice('1-1');
    await new Promise((r) => setTimeout(r, 1500));
    plug('1-1', 9);
    await new Promise((r) => setTimeout(r, 3000));
    expect(authorized('1-1')).toBe('0');
  });

  it('a request is decided by someone else: the requester cannot approve it, another admin can', async () => {
    const req = c.json<{ id: string; status: string }>(['usb-exception', 'request', '--agent', a.agentId, '--device', '0781:5567:EXC0001', '--for', '1h', '--user', 'yamada', '--reason', '住民票データを監査室へ', '--by', 'it-tanaka']);
    expect(req.status).toBe('pending');
    expect(c.json<{ id: string }[]>(['usb-exception', 'requests']).map((r) => r.id)).toContain(req.id);
    const own = c.cli(['usb-exception', 'approve', req.id, '--by', 'it-tanaka']);
    expect(own.code).toBe(1);
    expect(own.stderr).toMatch(/申請者本人|requester/);
    expect(authorized('1-1')).toBe('0');
    const ok = c.json<{ request: { status: string; grantId: string } }>(['usb-exception', 'approve', req.id, '--by', 'sec-suzuki']);
    expect(ok.request.status).toBe('approved');
    await waitFor('granted by the approval', () => authorized('1-1') === '1', 30_000, 200);
    const trail = c.events(['--type', 'admin.*']).filter((e) => JSON.stringify(e.data).includes(req.id));
    expect(trail.map((e) => [e.type, e.user])).toEqual([
      ['admin.usb_exception_requested', 'it-tanaka'],
      ['admin.usb_exception_granted', 'sec-suzuki'],
    ]);
    expect(c.cli(['usb-exception', 'reject', req.id, '--by', 'sec-suzuki']).code).toBe(1); // already decided
  });
});
