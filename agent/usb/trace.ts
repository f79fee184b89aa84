/**
 * CLOCK_MONOTONIC milestones of one decision, in ms, for bench/usb (SEKIMORI_USB_TRACE): the
 * kernel event as udevadm saw it, start, descriptors read, decided, reported (durable), first
 * OS write issued, done.
 */
import { writeFileSync } from 'node:fs';
import type { UsbDecision } from './decide.js';
import type { UsbDeviceInfo } from './observe.js';
import type { UsbEnforceResult } from './platform.js';

export type TraceMarks = Partial<Record<'ueventSeen' | 'read' | 'decided' | 'reported' | 'firstWrite' | 'done', number>> & { start: number };

/** CLOCK_MONOTONIC in ms (the clock udevadm stamps kernel events with). */
export const monoMs = (): number => Number(process.hrtime.bigint() / 1000n) / 1000;

/** Appends one JSON line per decision; best effort (a trace must never stop enforcement). */
export function writeTrace(file: string | undefined, d: UsbDeviceInfo, dec: UsbDecision, marks: TraceMarks, r: UsbEnforceResult): void {
  if (!file) return;
  if (r.firstWriteMs !== undefined) marks.firstWrite = r.firstWriteMs;
  marks.done = monoMs();
  const line = { path: d.path, vendorId: d.vendorId, productId: d.productId, event: dec.eventType, mono: marks, wrote: r.wrote };
  try {
    writeFileSync(file, JSON.stringify(line) + '\n', { flag: 'a' });
  } catch {
    // tracing is best effort
  }
}
