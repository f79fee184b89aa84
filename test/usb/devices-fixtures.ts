/** usb.* event data as agent/usb/events.ts usbEventData writes it, and signed chains of them. */
import { randomUUID } from 'node:crypto';
import { chainEvent, genesisHash, type SekimoriEvent } from '../../protocol/events.js';

export interface DeviceSpecT {
  vendorId: string;
  productId: string;
  manufacturer?: string;
  product?: string;
  serial?: string | null;
  /** "cc/ss/pp" per interface (one alt setting each). */
  interfaces?: string[];
  rule?: string;
  descriptorHash?: string;
}

/** Sony RC-S380/S: one vendor-specific interface (ff/ff/ff), as lsusb shows it. */
export const RC_S380: DeviceSpecT = { vendorId: '054c', productId: '06c1', manufacturer: 'SONY', product: 'RC-S380/S', serial: null, interfaces: ['ff/ff/ff'], rule: 'class:ff' };
export const STICK: DeviceSpecT = { vendorId: '0781', productId: '5581', manufacturer: 'SanDisk', product: 'Ultra', serial: '4C530001', interfaces: ['08/06/50'], rule: 'class:08' };

export function usbData(d: DeviceSpecT): Record<string, unknown> {
  const ifs = d.interfaces ?? ['08/06/50'];
  const serial = d.serial === undefined ? 'SN1' : d.serial;
  return {
    kind: 'usb',
    mode: 'enforce',
    port: '1-2',
    busnum: 1,
    devnum: 5,
    vendorId: d.vendorId,
    productId: d.productId,
    bcdDevice: '0100',
    deviceClass: '00',
    interfaceClasses: [...new Set(ifs.map((l) => l.slice(0, 2)))],
    interfaces: ifs.map((c, number) => ({ number, classes: [c], allow: false, rule: d.rule ?? `class:${c.slice(0, 2)}` })),
    manufacturer: d.manufacturer ?? 'Maker',
    product: d.product ?? 'Product',
    serial: serial ?? '',
    serialHex: serial === null ? null : Buffer.from(serial, 'utf8').toString('hex'),
    descriptorHash: d.descriptorHash ?? 'a'.repeat(64),
    rule: d.rule ?? 'class:08',
    partial: false,
    readonly: false,
    exceptionId: null,
  };
}

/** A signed chain continuing from `prev`: one event per item. */
export class Chain {
  private seq = 0;
  private prev: string;
  constructor(readonly agentId: string) {
    this.prev = genesisHash(agentId);
  }
  next(type: string, data: Record<string, unknown>, opts: { ts?: string; user?: string | null } = {}): SekimoriEvent {
    this.seq++;
    const e = chainEvent(this.prev, { id: randomUUID(), agentId: this.agentId, seq: this.seq, ts: opts.ts ?? new Date().toISOString(), type: type as SekimoriEvent['type'], severity: 'warning', user: opts.user ?? null, data });
    this.prev = e.hash;
    return e;
  }
}
