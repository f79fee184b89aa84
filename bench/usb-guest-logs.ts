/**
 * The real-kernel tier's two records of what happened in the guest, used by bench/usb and by the
 * QEMU tests to find driver windows: the kernel's own uevents (`udevadm monitor --kernel`) and the
 * sysfs watcher's timeline (test/e2e/qemu/guest-watch.mjs).
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
  const p = path.replace(/\./g, '\\.');
  const under = new RegExp(`/${p}/${p}:`); // interfaces and everything below them
  return evs.filter(
    (e) => e.t >= added.t && (!removed || e.t <= removed.t) && under.test(e.devpath) && ((e.subsystem === 'usb' && e.action === 'bind') || (e.subsystem === 'block' && e.action === 'add')),
  );
}

/** One line of the sysfs watcher (guest-watch.mjs); `t` is CLOCK_MONOTONIC ms. */
export interface WatchLine {
  t: number;
  kind: string;
  name?: string;
  value?: string | null;
  serial?: string | null;
  id?: string;
  cls?: string | null;
}

/** The watcher's presences of USB devices: appearance (with serial and id) to disappearance. */
export interface Presence {
  path: string;
  serial: string | null | undefined;
  id: string | undefined;
  from: number; // index into the watch lines
  to: number; // exclusive; the end of the log while still present
}

export function presences(w: WatchLine[]): Presence[] {
  const out: Presence[] = [];
  const open = new Map<string, Presence>();
  w.forEach((l, i) => {
    if (l.kind === 'dev' && l.serial !== undefined) {
      const p: Presence = { path: l.name!, serial: l.serial, id: l.id, from: i, to: w.length };
      open.set(p.path, p);
      out.push(p);
    } else if (l.kind === 'dev-gone') {
      const p = open.get(l.name!);
      if (p) p.to = i;
      open.delete(l.name!);
    }
  });
  return out;
}

/** Driver or block device lines of one presence: a driver on one of its interfaces, or a disk under it. */
export function windowsOf(w: WatchLine[], p: Presence): WatchLine[] {
  return w.slice(p.from, p.to).filter((l) => (l.kind === 'iface' && l.name?.startsWith(p.path + ':') && l.value) || (l.kind === 'block' && l.value === p.path));
}
