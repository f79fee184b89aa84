/**
 * The device inventory's table on a real console database: derived from the events ingest stored
 * (the catch-up the module's tick runs), searched across terminals, keyset-paged; hostile data.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIngester } from '../../console/backbone/ingest.js';
import { devicesForExport, deviceCount, inventoryCatchUp, inventoryCatchUpFor, inventoryLag, listDevices } from '../../console/usb/devices-store.js';
import { buildTestApp, type TestApp } from '../http/app.js';
import { Chain, RC_S380, STICK, usbData } from './devices-fixtures.js';

describe('device inventory store', () => {
  let t: TestApp;
  /** Ingest as the route does, then let the inventory catch up as the tick does. */
  let ingest: (agentId: string, events: Parameters<ReturnType<typeof createIngester>>[1]) => void;
  let a: Chain;
  let b: Chain;

  beforeAll(async () => {
    t = await buildTestApp();
    const raw = createIngester(t.ctx.db);
    ingest = (agentId, events) => {
      raw(agentId, events);
      inventoryCatchUpFor(t.ctx.db, 60_000);
      expect(inventoryLag(t.ctx.db)).toBe(0);
    };
    a = new Chain((await t.enrollAgent()).agentId);
    b = new Chain((await t.enrollAgent()).agentId);
  });
  afterAll(async () => {
    await t.close();
  });

  it('one row per terminal × device; counts, first/last seen and the newest verdict', () => {
    const t1 = '2026-11-30T01:00:00.000Z';
    const t2 = '2026-11-30T02:00:00.000Z';
    ingest(a.agentId, [a.next('usb.blocked', usbData(RC_S380), { ts: t1, user: 'tanaka' }), a.next('usb.allowed', usbData({ ...RC_S380, rule: 'model:sony-rc-s380-s' }), { ts: t2 })]);
    const rows = listDevices(t.ctx, { terminal: a.agentId }).devices;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ agentId: a.agentId, vendorId: '054c', productId: '06c1', serialHex: '', interfaces: ['ff/ff/ff'], lastType: 'usb.allowed', lastRule: 'model:sony-rc-s380-s', firstSeen: t1, lastSeen: t2, seen: 2 });
  });

  it('a late event from an outbox backlog counts but does not overwrite the newer verdict', () => {
    ingest(a.agentId, [a.next('usb.blocked', usbData(RC_S380), { ts: '2026-11-29T00:00:00.000Z' })]);
    const r = listDevices(t.ctx, { terminal: a.agentId }).devices[0]!;
    expect(r).toMatchObject({ lastType: 'usb.allowed', firstSeen: '2026-11-29T00:00:00.000Z', lastSeen: '2026-11-30T02:00:00.000Z', seen: 3 });
  });

  it("a retried batch is not counted twice; another terminal's report is its own row and never touches this one", () => {
    const e = b.next('usb.blocked', usbData(RC_S380), { ts: '2026-11-30T03:00:00.000Z' });
    ingest(b.agentId, [e]);
    ingest(b.agentId, [e]);
    expect(listDevices(t.ctx, { terminal: b.agentId }).devices.map((d) => d.seen)).toEqual([1]);
    expect(listDevices(t.ctx, { terminal: a.agentId }).devices[0]!).toMatchObject({ seen: 3, lastType: 'usb.allowed' });
    expect(listDevices(t.ctx, { text: '054c:06c1' }).total).toBe(2);
  });

  it('one batch reporting a device several times (out of order): counted each time, the newest decides', () => {
    const dev = { ...STICK, vendorId: '0951', productId: '1666', serial: 'FOLD1' };
    ingest(a.agentId, [
      a.next('usb.allowed', usbData({ ...dev, rule: 'registered:x' }), { ts: '2026-11-29T05:00:00.000Z' }),
      a.next('usb.blocked', usbData(dev), { ts: '2026-11-29T04:00:00.000Z' }),
      a.next('usb.readonly', usbData({ ...dev, rule: 'registered:y' }), { ts: '2026-11-29T06:00:00.000Z' }),
      a.next('usb.blocked', usbData(dev), { ts: '2026-11-29T03:30:00.000Z' }),
    ]);
    expect(listDevices(t.ctx, { text: 'fold1' }).devices).toEqual([
      expect.objectContaining({ seen: 4, firstSeen: '2026-11-29T03:30:00.000Z', lastSeen: '2026-11-29T06:00:00.000Z', lastType: 'usb.readonly', lastRule: 'registered:y' }),
    ]);
  });

  it('a clone with the same serial but other descriptors is a row of its own', () => {
    ingest(a.agentId, [a.next('usb.blocked', usbData(STICK)), a.next('usb.blocked', usbData({ ...STICK, descriptorHash: 'b'.repeat(64) }))]);
    expect(listDevices(t.ctx, { terminal: a.agentId, text: '0781:5581' }).devices.map((d) => d.descriptorHash).sort()).toEqual(['a'.repeat(64), 'b'.repeat(64)]);
  });

  it('hostile data: names kept as text (the page escapes), a year-9999 clock stored at receipt time, undeclared data left out', () => {
    const evil = { vendorId: 'dead', productId: 'beef', manufacturer: '<script>alert(1)</script>', product: '=HYPERLINK("http://x")', serial: '"; DROP TABLE usb_devices; --', interfaces: ['08/06/50'] };
    const before = Date.now();
    ingest(a.agentId, [
      a.next('usb.blocked', usbData(evil), { ts: '9999-12-31T23:59:59.999Z' }),
      // does not match its declaration (vendorId not hex): stored as an event, never an inventory row
      a.next('usb.blocked', { ...usbData(evil), vendorId: '<x>' }),
      // a built-in optical drive is not a USB device
      a.next('usb.blocked', { kind: 'optical', mode: 'enforce', device: 'sr0', rule: 'optical:block', partitions: [] }),
    ]);
    const rows = listDevices(t.ctx, { text: 'dead:beef' }).devices;
    expect(rows).toHaveLength(1);
    expect(rows[0]!.manufacturer).toBe('<script>alert(1)</script>');
    expect(rows[0]!.serial).toBe('"; DROP TABLE usb_devices; --');
    expect(Date.parse(rows[0]!.lastSeen)).toBeGreaterThanOrEqual(before - 1000);
    expect(rows[0]!.lastSeen < '2100').toBe(true);
    expect(listDevices(t.ctx, { text: '<x>' }).total).toBe(0);
    expect(listDevices(t.ctx, { text: '%' }).total).toBe(0); // no LIKE wildcards
    expect(listDevices(t.ctx, { text: 'sr0' }).total).toBe(0);
  });

  it('searches across terminals by VID:PID, name, serial, terminal name, verdict; and narrows by terminal and verdict', () => {
    const host = t.ctx.db.prepare('SELECT hostname FROM agents WHERE id = ?').get(b.agentId) as { hostname: string };
    expect(listDevices(t.ctx, { text: host.hostname }).devices.every((d) => d.agentId === b.agentId)).toBe(true);
    expect(listDevices(t.ctx, { text: 'sony' }).total).toBe(2); // manufacturer 'SONY', case-insensitive
    expect(listDevices(t.ctx, { text: '4c530001' }).total).toBe(2); // the display serial
    expect(listDevices(t.ctx, { verdict: 'usb.allowed' }).devices.map((d) => d.agentId)).toEqual([a.agentId]);
    expect(listDevices(t.ctx, { text: 'usb.allowed' }).total).toBe(1);
    expect(listDevices(t.ctx, { terminal: randomUUID() }).total).toBe(0);
  });

  it('catches up in bounded steps: events stored before the inventory are taken in, each once', () => {
    const raw = createIngester(t.ctx.db);
    raw(a.agentId, [a.next('usb.blocked', usbData({ ...STICK, vendorId: '1d6b', productId: '0104', serial: 'STEP' })), a.next('mfa.success', { terminal: a.agentId, result: 'accept', reason: 'ok' }), a.next('usb.blocked', usbData({ ...STICK, vendorId: '1d6b', productId: '0104', serial: 'STEP' }))]);
    expect(listDevices(t.ctx, { text: '1d6b:0104' }).total).toBe(0); // not yet read
    expect(inventoryLag(t.ctx.db)).toBe(3);
    expect(inventoryCatchUp(t.ctx.db, 1)).toBe(1);
    expect(listDevices(t.ctx, { text: '1d6b:0104' }).devices.map((d) => d.seen)).toEqual([1]);
    expect(inventoryCatchUp(t.ctx.db, 1)).toBe(1); // the MFA event: stepped over
    expect(inventoryCatchUp(t.ctx.db, 5)).toBe(1);
    expect(inventoryCatchUp(t.ctx.db, 5)).toBe(0);
    expect(listDevices(t.ctx, { text: '1d6b:0104' }).devices.map((d) => d.seen)).toEqual([2]);
  });

  it('10 000 devices from one terminal: pages of 50 through all of them, each once, newest first', () => {
    const n = 10_000;
    const base = Date.parse('2026-11-01T00:00:00.000Z');
    for (let k = 0; k < n; k += 500) {
      const batch = [];
      for (let i = k; i < k + 500; i++) batch.push(a.next('usb.blocked', usbData({ ...STICK, serial: `S${i}` }), { ts: new Date(base + Math.floor(i / 3) * 1000).toISOString() }));
      ingest(a.agentId, batch);
    }
    const total = deviceCount(t.ctx);
    let before: { lastSeen: string; id: number } | undefined;
    const seen = new Set<number>();
    let last = '9999';
    for (let pages = 0; pages < 1000; pages++) {
      const p = listDevices(t.ctx, { before });
      for (const d of p.devices) {
        expect(seen.has(d.id)).toBe(false);
        expect(d.lastSeen <= last).toBe(true);
        last = d.lastSeen;
        seen.add(d.id);
      }
      if (!p.next) break;
      before = p.next;
    }
    expect(seen.size).toBe(total);
    expect(total).toBeGreaterThanOrEqual(n);
    expect([...devicesForExport(t.ctx, { text: '0781:5581' }, 100_000)].length).toBe(n + 2);
    expect([...devicesForExport(t.ctx, {}, 10)].length).toBe(10);
  });
});
