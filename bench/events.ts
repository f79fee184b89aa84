/**
 * The events the ingest benchmarks send: what agents really send (USB decisions and MFA results,
 * two of three a full usb.blocked decision), chained as an agent chains them.
 */
import { randomUUID } from 'node:crypto';
import { chainEvent, genesisHash, type SekimoriEvent } from '../protocol/events.js';

/** `serialOf(i)`: the stick's serial in event i (default: a new stick each time). */
export function makeEvents(agentId: string, n: number, serialOf: (i: number) => string = (i) => `SN${i}`): SekimoriEvent[] {
  const out: SekimoriEvent[] = [];
  let prev = genesisHash(agentId);
  const t0 = Date.now() - n;
  for (let i = 1; i <= n; i++) {
    const serial = serialOf(i);
    const e = chainEvent(prev, {
      id: randomUUID(),
      agentId,
      seq: i,
      ts: new Date(t0 + i).toISOString(),
      type: i % 3 ? 'usb.blocked' : 'mfa.success',
      severity: 'warning',
      user: `user${i % 50}`,
      // What agents really send (USB decisions and MFA results), so ingest takes the path of valid, declared data.
      data: i % 3
        ? { kind: 'usb', mode: 'enforce', port: '1-2', busnum: 1, devnum: i % 120, vendorId: '0781', productId: '5567', bcdDevice: '0100', deviceClass: '00', interfaceClasses: ['08'],
            interfaces: [{ number: 0, classes: ['08/06/50'], allow: false, rule: 'class:08' }], manufacturer: 'SanDisk', product: 'Cruzer Blade', serial,
            serialHex: Buffer.from(serial).toString('hex'), descriptorHash: 'a'.repeat(64), rule: 'class:08', partial: false, readonly: false, exceptionId: null }
        : { terminal: agentId, result: 'accept', reason: 'ok', offline: false, service: 'login', tty: 'tty1', rhost: '' },
    });
    out.push(e);
    prev = e.hash;
  }
  return out;
}
