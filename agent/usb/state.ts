/**
 * The USB capability's state files, all through the agent's one durable writer (write temp,
 * fsync, rename, fsync the folder): a crash leaves the previous content or the new one, never a
 * torn file. usb-unbound.json is what lets a drive blocked earlier be bound again.
 */
import { join } from 'node:path';
import { usbExceptionErrors, type UsbException } from '../../protocol/policy-usb.js';
import { readJsonState, writeJsonState } from '../durable.js';
import type { UnboundMedium } from './platform.js';

export const EXCEPTIONS_FILE = 'usb-exceptions.json';
/** Built-in drives and card readers whose driver the agent unbound, to bind again when allowed. */
export const UNBOUND_FILE = 'usb-unbound.json';

export class UsbState {
  constructor(private readonly stateDir: string) {}

  /** The last exceptions the console sent; entries that fail the check are dropped (fail closed). */
  loadExceptions(): UsbException[] {
    const x = readJsonState(join(this.stateDir, EXCEPTIONS_FILE));
    return Array.isArray(x) ? x.filter((e): e is UsbException => usbExceptionErrors(e).length === 0) : [];
  }

  /** Throws when the file cannot be written. */
  saveExceptions(list: readonly UsbException[]): void {
    writeJsonState(join(this.stateDir, EXCEPTIONS_FILE), list);
  }

  /** Entries are checked by the platform: they name sysfs write targets. */
  loadUnbound(isUnbound: (x: unknown) => x is UnboundMedium): UnboundMedium[] {
    const x = readJsonState(join(this.stateDir, UNBOUND_FILE));
    return Array.isArray(x) ? x.filter(isUnbound) : [];
  }

  /** Throws when the file cannot be written. */
  saveUnbound(list: readonly UnboundMedium[]): void {
    writeJsonState(join(this.stateDir, UNBOUND_FILE), list);
  }
}
