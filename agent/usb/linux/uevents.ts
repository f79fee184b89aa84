/**
 * Kernel hot-plug events, read from `udevadm monitor --kernel` (the kernel's own uevent netlink
 * group: no udevd needed, and it sees devices the kernel left unauthorized, which node-usb's
 * hotplug does not report). Each `add`/`bind`/`change` on usb or block wakes the scanner at once,
 * so the decision is written within milliseconds of the kernel event instead of at the next
 * periodic rescan.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface Uevent {
  action: string;
  devpath: string;
  subsystem: string;
  /** When udevadm received it from the kernel: CLOCK_MONOTONIC, ms. */
  seenMs?: number;
}

const LINE = /^KERNEL\[(\d+\.\d+)\]\s+(\w+)\s+(\S+)\s+\(([\w-]+)\)/;

export function parseUeventLine(line: string): Uevent | null {
  const m = LINE.exec(line);
  return m ? { action: m[2]!, devpath: m[3]!, subsystem: m[4]!, seenMs: Number(m[1]) * 1000 } : null;
}

export function watchKernelUevents(onEvent: (e: Uevent) => void, log: (m: string) => void): () => void {
  let child: ChildProcess | null = null;
  let stopped = false;
  let restartTimer: NodeJS.Timeout | null = null;
  const start = () => {
    const proc = spawn('udevadm', ['monitor', '--kernel', '--subsystem-match=usb', '--subsystem-match=block'], { stdio: ['ignore', 'pipe', 'ignore'] });
    child = proc;
    let buf = '';
    proc.stdout!.on('data', (c: Buffer) => {
      buf += c.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const e = parseUeventLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (e) onEvent(e);
      }
      if (buf.length > 65_536) buf = ''; // a line that long is not a uevent
    });
    proc.on('error', (e) => log(`usb: kernel uevents unavailable (${e.message}); node-usb hotplug and sysfs rescan only`));
    proc.on('exit', () => {
      child = null;
      if (!stopped) restartTimer = setTimeout(start, 5_000);
    });
  };
  start();
  return () => {
    stopped = true;
    if (restartTimer) clearTimeout(restartTimer);
    child?.kill('SIGTERM');
  };
}
