/**
 * Regression (issue 11): "grant an exception from this blocked event" built the device from the
 * DISPLAY serial (safeText: escaped, replaced, cut at 128), so a device whose serial had control
 * characters, invalid UTF-8 or more than 128 characters could never match its grant. End to end
 * through a real console: the agent's own event data for the device → the exceptions page's grant
 * link → the grant (CLI) → the exceptions the agent fetches → decideUsb allows the device.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { Outbox } from '../../agent/report/outbox.js';
import { agentPaths } from '../../agent/state.js';
import { decideUsb } from '../../agent/usb/decide.js';
import { usbEventData } from '../../agent/usb/events.js';
import type { UsbDeviceInfo } from '../../agent/usb/observe.js';
import { createSession } from '../../console/web/auth.js';
import { defaultUsbPolicy, type UsbException } from '../../protocol/policy-usb.js';
import { enrollAgent, rawRequest, startConsole, type TestAgent, type TestConsole } from '../integration/harness.js';

const stick = (product: string, serial: Buffer | null): UsbDeviceInfo => ({
  path: '1-1',
  busnum: 1,
  devnum: 5,
  vendorId: '0781',
  productId: '5567',
  bcdDevice: '0100',
  deviceClass: 0,
  deviceSubclass: 0,
  deviceProtocol: 0,
  manufacturer: Buffer.from('SanDisk'),
  product: Buffer.from(product),
  serial,
  interfaces: [{ number: 0, alt: 0, class: 8, subclass: 6, protocol: 0x50 }],
  descriptorHash: 'a'.repeat(64),
  authorized: false,
});

/** [case, the device's raw serial, another serial that shows the same (or nearly the same) display text]. */
const CASES: [string, Buffer, Buffer][] = [
  ['plain serial (worked before too)', Buffer.from('4C530001'), Buffer.from('4C5300010')],
  // Shown as AB\x1b[2J\x07CD: a device whose serial is that text looks the same.
  ['control characters', Buffer.from('AB\u001b[2J\u0007CD'), Buffer.from('AB\\x1b[2J\\x07CD')],
  // Both decode to A\ufffd\ufffdB\ufffd: the text compare let either device use the other's grant.
  ['invalid UTF-8', Buffer.from([0x41, 0xff, 0xfe, 0x42, 0xc3]), Buffer.from([0x41, 0xfe, 0xff, 0x42, 0xc3])],
  // Shown cut at 128 characters: a device that differs after them looks the same.
  ['more than 128 characters', Buffer.from('S'.repeat(127) + 'XYZ' + 'T'.repeat(70)), Buffer.from('S'.repeat(127) + 'XYZ' + 'U'.repeat(70))],
  ['a colon, a hash and a trailing space', Buffer.from('12:34#56 '), Buffer.from('12:34#56')],
];

describe('grant from a blocked event → the device is allowed', () => {
  let c: TestConsole;
  let a: TestAgent;
  let cookie: string;
  const policy = defaultUsbPolicy();
  beforeAll(async () => {
    c = await startConsole();
    a = await enrollAgent(c, { start: false });
    const db = new Database(join(c.dataDir, 'console.db'), { timeout: 15_000 });
    try {
      cookie = `__Host-sekimori_session=${createSession(db, 'admin').token}`;
    } finally {
      db.close();
    }
    // Each device's usb.blocked, with the data the agent's own producer writes, uploaded as the agent.
    const o = new Outbox(agentPaths(a.stateDir).outbox, a.agentId);
    try {
      CASES.forEach(([, serial], i) => {
        const d = stick(`case-${i}`, serial);
        const dec = decideUsb(policy, d, { agentId: a.agentId, now: new Date(), exceptions: [], others: [] });
        expect(dec.authorizeDevice).toBe(false);
        o.append({ type: 'usb.blocked', data: usbEventData(d, dec, policy.mode) } as Parameters<Outbox['append']>[0]);
      });
      const events = o.pending(100, 1024 * 1024);
      const r = await rawRequest(c, 'POST', '/api/agent/events', { agentState: a.stateDir, body: JSON.stringify({ batchId: 'grant-from-event', events }) });
      expect(r.status).toBe(200);
    } finally {
      o.close();
    }
  }, 120_000);
  afterAll(async () => {
    await a?.cleanup();
    await c?.cleanup();
  });

  it.each(CASES.map(([name, serial, other], i) => [name, serial, other, i] as const))('%s', async (_name, serial, other, i) => {
    const page = await rawRequest(c, 'GET', '/exceptions', { headers: { cookie } });
    expect(page.status).toBe(200);
    const row = page.body.split('<tr>').find((r) => r.includes(`case-${i} `));
    expect(row, `the blocked event of case-${i} is listed`).toBeDefined();
    const href = /href="(\/exceptions\?[^"]*)#grant-form"/.exec(row!)?.[1];
    expect(href, 'the row offers a grant').toBeDefined();
    const device = new URL(href!.replace(/&amp;/g, '&'), 'https://console').searchParams.get('device')!;
    const granted = c.cli(['usb-exception', 'grant', '--agent', a.agentId, '--device', device, '--for', '2h', '--reason', `case-${i}`]);
    expect(granted.code, granted.stderr).toBe(0);

    const r = await rawRequest(c, 'GET', '/api/agent/usb/exceptions', { agentState: a.stateDir });
    expect(r.status).toBe(200);
    const { serverTime, exceptions } = r.json() as { serverTime: string; exceptions: UsbException[] };
    const mine = exceptions.filter((e) => e.reason === `case-${i}`);
    expect(mine).toHaveLength(1);
    const dec = decideUsb(policy, stick(`case-${i}`, serial), { agentId: a.agentId, now: new Date(serverTime), exceptions: mine, others: [] });
    expect(dec).toMatchObject({ authorizeDevice: true, eventType: 'usb.exception_used', exceptionId: mine[0]!.id });
    // The grant names this device only: a serial that looks the same is not let in.
    const lookalike = stick(`case-${i}`, other);
    expect(decideUsb(policy, lookalike, { agentId: a.agentId, now: new Date(serverTime), exceptions: mine, others: [] }).authorizeDevice).toBe(false);
  });
});
