/** Console sync of the USB capability: this terminal's time-limited exceptions (一時許可). */
import { usbExceptionErrors, type UsbException } from '../../protocol/policy-usb.js';
import type { ConsoleLink } from '../capability.js';

/** Pure: the valid exceptions for this agent from the console's reply body; null when the body is not a list. */
export function exceptionsFromReply(body: unknown, agentId: string): UsbException[] | null {
  const list = (body as { exceptions?: unknown } | null)?.exceptions;
  if (!Array.isArray(list)) return null;
  return list.filter((e): e is UsbException => usbExceptionErrors(e).length === 0 && (e as UsbException).agentId === agentId);
}

/** Fetches this terminal's grants; null when the console is unreachable or answers otherwise (the cache stays in force). */
export async function fetchExceptions(link: ConsoleLink, agentId: string): Promise<UsbException[] | null> {
  try {
    const reply = await link.request('GET', '/api/agent/usb/exceptions', undefined, 5000);
    return reply.status === 200 ? exceptionsFromReply(reply.body, agentId) : null;
  } catch {
    return null;
  }
}

export const sameExceptions = (a: readonly UsbException[], b: readonly UsbException[]): boolean => JSON.stringify(a) === JSON.stringify(b);
