import { describe, expect, it } from 'vitest';
import type { StoredEvent } from '../../console/core/events.js';
import { summary } from '../../console/web/pages/common.js';

const usb = (product: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  kind: 'usb', mode: 'enforce', port: '1-2', busnum: 1, devnum: 5, vendorId: '0781', productId: '5581', bcdDevice: '0100', deviceClass: '00', interfaceClasses: ['08'],
  interfaces: [{ number: 0, classes: ['08/06/50'], allow: false, rule: 'class:08' }], manufacturer: 'SanDisk', product, serial: '4C530001',
  serialHex: '3443353330303031', descriptorHash: 'a'.repeat(64), rule: 'class:08', partial: false, readonly: false, exceptionId: null, ...extra,
});

function ev(type: string, data: Record<string, unknown>): StoredEvent {
  return { id: 'x', agentId: 'a', seq: 1, ts: '2026-11-29T00:00:00.000Z', type, severity: 'warning', user: null, data, prevHash: '', hash: '', terminalId: 'a', chain: 'ok', receivedAt: '', agentTs: null } as unknown as StoredEvent;
}

describe('event summary (events list)', () => {
  it('a USB device leads with maker, product, ids, serial and rule, even when its data is long', () => {
    const s = summary(ev('usb.blocked', usb('Cruzer Blade')));
    expect(s.startsWith('SanDisk Cruzer Blade (0781:5581) serial=4C530001 rule=class:08')).toBe(true);
    expect(s).not.toContain('serialHex');
  });

  it('hostile device text stays text (escaped later by the template) and is cut to the limit', () => {
    const s = summary(ev('usb.blocked', usb('<img src=x onerror=alert(1)>' + 'x'.repeat(500))));
    expect(s).toContain('<img src=x onerror=alert(1)>');
    expect(s.length).toBeLessThanOrEqual(161);
  });

  it('data that fails its declaration falls back to key=value pairs (never hidden)', () => {
    const s = summary(ev('usb.blocked', { kind: 'usb', vendorId: '0781', product: 'Old' }));
    expect(s).toBe('kind=usb vendorId=0781 product=Old');
  });

  it('other events are listed key=value as before', () => {
    expect(summary(ev('mfa.failure', { reason: 'bad_code' }))).toBe('reason=bad_code');
  });
});
