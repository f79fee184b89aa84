/**
 * 持ち出しログ (issue 16): every file written to a usable removable medium is recorded as
 * usb.file_written. The capability (agent/usb/capability.ts) tells it what it judged and when it
 * scanned; the pure part is decide.ts, the platform part linux/ (fanotify helper). Other platforms
 * Windows: windows/ (the drive letters of usable sticks watched with ReadDirectoryChangesW through
 * fs.watch; the writer is the session's user). Other platforms have none.
 */
import type { AgentContext } from '../../capability.js';
import type { UsbDecision } from '../decide.js';
import type { UsbDeviceInfo } from '../observe.js';
import type { UsbPlatform } from '../platform.js';
import { fileLogHelperPath, LinuxFileLog } from './linux/filelog.js';
import { WindowsFileLog } from './windows/filelog.js';

export interface FileLogControl {
  /** A device's decision is new or changed. */
  judged(d: UsbDeviceInfo, dec: UsbDecision, monitor: boolean): void;
  /**
   * Forgets the media not in `present` — called where the capability forgets its own unplugged
   * devices, before anything yields: a device the hot-plug fast path judges meanwhile is not in
   * that listing and must not be forgotten (it was: the registered stick's watch never started).
   */
  forget(present: ReadonlySet<string>): void;
  /** Looks at the mounts again (after a scan). */
  refresh(): Promise<void>;
  stop(): Promise<void>;
}

/** The file log for this platform, or null where there is none (the platform's name decides, as agent/platform.ts chose it). */
export function createFileLog(platform: UsbPlatform, ctx: AgentContext, mode: () => string): FileLogControl | null {
  if (platform.name === 'windows') {
    const w = new WindowsFileLog(ctx, { mode });
    void w.start().catch(() => undefined);
    return w;
  }
  const sysRoot = (platform as { sysRoot?: unknown }).sysRoot;
  if (platform.name !== 'linux' || typeof sysRoot !== 'string') return null;
  return new LinuxFileLog(ctx, { sysRoot, helper: fileLogHelperPath(), currentUser: () => platform.currentUser(), mode });
}
