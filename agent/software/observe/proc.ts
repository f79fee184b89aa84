/**
 * /proc scan: finds processes that started (or exec'd something new) since the last tick.
 * New pids are inspected on the tick that first sees them; pids already known are re-checked a
 * slice at a time (all of them every `recheckTicks` ticks) to catch an exec inside an old pid
 * without paying a readlink per process per tick. Synchronous syscalls: one tick costs well under
 * a millisecond for a few hundred processes and never interleaves with itself.
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';

export interface ProcSeen {
  pid: number;
  /** Raw /proc/PID/exe link text (may end in " (deleted)"). */
  exeLink: string;
  /** When the scan first saw this exec (performance.now() ms). */
  seenAt: number;
}

export interface ProcScannerOptions {
  procRoot: string;
  intervalMs: number;
  onExec(p: ProcSeen): void;
  /** Known pids are all re-checked once per this many ticks (the young ones every tick). */
  recheckTicks?: number;
}

const NO_EXE = '\0no-exe';

interface Known {
  link: string;
  firstSeen: number;
}

export class ProcScanner {
  private known = new Map<number, Known>();
  private timer: NodeJS.Timeout | null = null;
  private tickNo = 0;
  ticks = 0;
  totalMs = 0;

  constructor(private readonly o: ProcScannerOptions) {}

  start(): void {
    if (this.timer) return;
    this.scan();
    this.timer = setInterval(() => this.scan(), this.o.intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** '' when unreadable now; NO_EXE when the pid has no executable at all (kernel thread, zombie). */
  private readLink(pid: number): string {
    try {
      return readlinkSync(`${this.o.procRoot}/${pid}/exe`);
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ENOENT' ? NO_EXE : '';
    }
  }

  /** One pass; public so tests and the benchmark can drive it without timers. */
  scan(): void {
    const t0 = performance.now();
    const recheck = this.o.recheckTicks ?? 8;
    const slice = this.tickNo++ % recheck;
    let names: string[];
    try {
      names = readdirSync(this.o.procRoot);
    } catch {
      return;
    }
    const alive = new Set<number>();
    for (const n of names) {
      const c = n.charCodeAt(0);
      if (c < 48 || c > 57) continue;
      const pid = Number(n);
      if (!Number.isSafeInteger(pid)) continue;
      alive.add(pid);
      const k = this.known.get(pid);
      const young = k !== undefined && t0 - k.firstSeen < 2000;
      // Kernel threads and zombies never exec again: not worth a (throwing) readlink per tick.
      if (k && (k.link === NO_EXE || (!young && pid % recheck !== slice))) continue;
      const link = this.readLink(pid);
      if (k && k.link === link) continue;
      this.known.set(pid, { link, firstSeen: k && !link ? k.firstSeen : t0 });
      if (link && link !== NO_EXE) {
        try {
          this.o.onExec({ pid, exeLink: link, seenAt: t0 });
        } catch {
          // a consumer error must not stop the scan
        }
      }
    }
    for (const pid of this.known.keys()) if (!alive.has(pid)) this.known.delete(pid);
    this.ticks++;
    this.totalMs += performance.now() - t0;
  }
}

export function readArgv(procRoot: string, pid: number): string[] {
  try {
    const raw = readFileSync(`${procRoot}/${pid}/cmdline`);
    const parts = raw.toString('utf8').split('\0');
    if (parts.length && parts[parts.length - 1] === '') parts.pop();
    return parts.slice(0, 256);
  } catch {
    return [];
  }
}

export function readCwd(procRoot: string, pid: number): string | null {
  try {
    return readlinkSync(`${procRoot}/${pid}/cwd`);
  } catch {
    return null;
  }
}

/** The process's real uid (owner of /proc/PID is the effective uid; the status file has all four). */
export function readUid(procRoot: string, pid: number): number | null {
  try {
    const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`${procRoot}/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : statSync(`${procRoot}/${pid}`).uid;
  } catch {
    return null;
  }
}

export function readPpid(procRoot: string, pid: number): number | null {
  try {
    const stat = readFileSync(`${procRoot}/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: fields start after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(rest[1]);
    return Number.isSafeInteger(ppid) ? ppid : null;
  } catch {
    return null;
  }
}

/** This process and its ancestors: never to be killed, whatever they run. */
export function ancestry(procRoot: string, pid: number): Set<number> {
  const out = new Set<number>([pid]);
  let p: number | null = pid;
  for (let i = 0; i < 64 && p !== null && p > 1; i++) {
    p = readPpid(procRoot, p);
    if (p !== null) out.add(p);
  }
  out.add(1);
  return out;
}
