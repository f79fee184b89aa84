/**
 * The kernel's own record of USB and block events, as `udevadm monitor --kernel` logs it in the
 * real-kernel tier: used by bench/usb and by the QEMU tests to find driver windows.
 */
export interface KernelEvent { t: number; action: string; devpath: string; subsystem: string }

export function kernelEvents(uevents: string): KernelEvent[] {
  return [...uevents.matchAll(/^KERNEL\[(\d+\.\d+)\]\s+(\w+)\s+(\S+)\s+\(([\w-]+)\)/gm)].map((m) => ({ t: Number(m[1]) * 1000, action: m[2]!, devpath: m[3]!, subsystem: m[4]! }));
}

export const baseName = (devpath: string) => devpath.slice(devpath.lastIndexOf('/') + 1);

/**
 * Driver windows in the kernel's own record: while the blocked device at `path` was present (its
 * add up to its remove around time `at`), any interface bound to a driver or block device added
 * under it. Unlike the watcher's sampling this misses nothing the kernel announced.
 */
export function kernelWindows(evs: KernelEvent[], path: string, at: number): KernelEvent[] {
  const isThis = (e: KernelEvent) => e.subsystem === 'usb' && baseName(e.devpath) === path;
  const added = evs.filter((e) => isThis(e) && e.action === 'add' && e.t <= at).pop();
  if (!added) return [];
  const removed = evs.find((e) => isThis(e) && e.action === 'remove' && e.t > added.t);
  const under = new RegExp(`/${path.replace(/\./g, '\\.')}/${path.replace(/\./g, '\\.')}:`);
  return evs.filter(
    (e) => e.t >= added.t && (!removed || e.t <= removed.t) && under.test(e.devpath) && ((e.subsystem === 'usb' && e.action === 'bind') || (e.subsystem === 'block' && e.action === 'add')),
  );
}
