/**
 * bench/usb — from the real-kernel tier (test/e2e/qemu): time from the kernel's hot-plug uevent
 * to the agent's sysfs decision, and the number of windows in which a blocked storage device had
 * a driver or a block device. Reads the artefacts of the last QEMU run (test-output/usb-qemu/);
 * `--run` (or missing artefacts) runs the tier first.
 *
 *   scripts/n24 node dist/bench/usb.js [--run [--plugs N]]
 *
 * `--plugs N` makes the tier hot-plug N more blocked sticks and N allowed keyboards (default: the
 * tier's own 10 or so decisions).
 *
 * Clocks: the uevent time is udevadm monitor's CLOCK_MONOTONIC stamp when it received the kernel
 * event (the guest's logger or the agent's own udevadm, whichever saw it first); the agent stamps
 * each milestone with process.hrtime (CLOCK_MONOTONIC); the guest watcher polls sysfs every 5 ms
 * with the same clock. All in one guest.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { baseName, kernelEvents, kernelWindows, presences, windowsOf, type KernelEvent, type WatchLine } from './usb-guest-logs.js';

// Runs from bench/ (tsx/vitest) or from dist/bench/ (built).
const ROOT = resolve(import.meta.dirname, import.meta.dirname.split('/').includes('dist') ? '../..' : '..');
const OUT = join(ROOT, 'test-output/usb-qemu');

interface Trace {
  path: string;
  vendorId: string;
  productId: string;
  event: string;
  /** CLOCK_MONOTONIC ms milestones (agent/usb/index.ts TraceMarks). */
  mono: { ueventSeen?: number; start: number; read?: number; decided?: number; reported?: number; firstWrite?: number; done?: number };
  wrote: string[];
}

function lines<T>(file: string): T[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).flatMap((l) => {
    try {
      return [JSON.parse(l) as T];
    } catch {
      return [];
    }
  });
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN;
};

function main(): number {
  if (process.argv.includes('--run') || !existsSync(join(OUT, 'trace.jsonl'))) {
    process.stderr.write('bench/usb: running the QEMU tier (test/e2e/qemu) …\n');
    const plugs = process.argv.indexOf('--plugs');
    const env = { ...process.env, ...(plugs > 0 ? { SEKIMORI_USB_BENCH_PLUGS: String(Number(process.argv[plugs + 1])) } : {}) };
    const r = spawnSync(join(ROOT, 'scripts/n24'), ['vitest', 'run', 'test/e2e/qemu'], { cwd: ROOT, env, stdio: 'inherit', timeout: 30 * 60_000 });
    if (r.status !== 0) process.stderr.write(`bench/usb: the tier exited ${r.status}; using what it left\n`);
  }
  const traces = lines<Trace>(join(OUT, 'trace.jsonl')).filter((t) => t.mono && typeof t.mono.start === 'number');
  const watch = lines<WatchLine>(join(OUT, 'watch.jsonl'));
  const evs = kernelEvents(existsSync(join(OUT, 'uevents.log')) ? readFileSync(join(OUT, 'uevents.log'), 'utf8') : '');
  if (!traces.length) {
    process.stderr.write('bench/usb: no agent trace found (is the QEMU tier provisioned? bash test/e2e/qemu/provision.sh)\n');
    return 1;
  }
  interface Sample { path: string; event: string; uevent: number; m: Trace['mono']; decision: number; wrote: boolean }
  const samples: Sample[] = [];
  const judged = new Set<KernelEvent>();
  for (const tr of traces) {
    const done = tr.mono.done ?? tr.mono.start;
    const k = evs.filter((e) => e.subsystem === 'usb' && e.action === 'add' && baseName(e.devpath) === tr.path && e.t <= done).pop();
    if (!k || done - k.t > 60_000) continue; // present at agent start, not a hot-plug
    if (judged.has(k)) continue; // judged again later (a new policy): not a hot-plug decision
    judged.add(k);
    // The kernel event as first seen in user space: the guest's logger or the agent's own udevadm.
    const uevent = Math.min(k.t, tr.mono.ueventSeen ?? Infinity);
    // The decision reaches the kernel with the first sysfs write; a blocked device needs none
    // (default-deny already holds it), so there the decision is complete once recorded.
    samples.push({ path: tr.path, event: tr.event, uevent, m: tr.mono, decision: (tr.mono.firstWrite ?? done) - uevent, wrote: tr.mono.firstWrite !== undefined });
  }
  // Windows: a device the agent blocked with a driver or a disk while present. A presence is the
  // watcher's appearance to disappearance of a device at a port; it was blocked when the agent
  // decided usb.blocked for that port after the port's previous device left.
  const blocked = traces.filter((t) => t.event === 'usb.blocked');
  const agentStart = Math.min(...traces.map((t) => t.mono.start));
  const ps = presences(watch);
  let watcherWindows = 0;
  let blockedPresences = 0;
  ps.forEach((p, i) => {
    const prevEnd = ps.slice(0, i).filter((q) => q.path === p.path).reduce((t, q) => Math.max(t, q.to < watch.length ? watch[q.to]!.t : Infinity), -Infinity);
    const end = p.to < watch.length ? watch[p.to]!.t : Infinity;
    if (watch[p.from]!.t < agentStart) return; // present before the agent: the start-up cut is tested, not timed
    if (!blocked.some((t) => t.path === p.path && (t.mono.done ?? t.mono.start) > prevEnd && (t.mono.done ?? t.mono.start) < end)) return;
    blockedPresences++;
    watcherWindows += windowsOf(watch, p).length;
  });
  const kernelWindowCount = blocked.reduce((n, t) => n + kernelWindows(evs, t.path, t.mono.done ?? t.mono.start).length, 0);
  const f = (x: number) => x.toFixed(1);
  const stat = (xs: number[]) => `p50 ${f(pct(xs, 50))} ms   p95 ${f(pct(xs, 95))} ms   max ${f(Math.max(...xs))} ms`;
  const phase = (name: string, from: (s: Sample) => number | undefined) => {
    const xs = samples.map((s) => from(s)).filter((x): x is number => x !== undefined);
    return `    ${name.padEnd(34)} p50 ${f(pct(xs, 50))} ms`;
  };
  const written = samples.filter((s) => s.wrote);
  process.stdout.write(
    [
      'bench/usb (QEMU TCG, Debian kernel, real agent; kernel hot-plug uevent → agent decision)',
      `  samples                     ${samples.length}  (${[...new Set(samples.map((s) => s.event))].join(', ')})`,
      `  uevent → decision           ${stat(samples.map((s) => s.decision))}   (target ≤ 100 ms)`,
      `    blocked (recorded; default-deny already holds the device)  ${stat(samples.filter((s) => !s.wrote).map((s) => s.decision))}`,
      ...(written.length ? [`    allowed (first sysfs write issued)                         ${stat(written.map((s) => s.decision))}`] : []),
      '  where the time goes (from the uevent, medians):',
      phase('agent receives the uevent', (s) => s.m.start - s.uevent),
      phase('descriptors read', (s) => (s.m.read === undefined ? undefined : s.m.read - s.uevent)),
      phase('decided', (s) => (s.m.decided === undefined ? undefined : s.m.decided - s.uevent)),
      phase('event recorded (durable)', (s) => (s.m.reported === undefined ? undefined : s.m.reported - s.uevent)),
      ...(written.length ? [`  kernel work inside the sysfs writes (configure, bind drivers)  ${stat(written.map((s) => (s.m.done ?? s.m.start) - s.m.firstWrite!))}`] : []),
      `  blocked devices watched     ${blockedPresences}   windows with a driver or disk: watcher ${watcherWindows}, kernel uevents ${kernelWindowCount}   (target 0)`,
      '  by decision:',
      ...[...new Set(samples.map((s) => s.event))].map((ev) => {
        const xs = samples.filter((s) => s.event === ev).map((s) => s.decision);
        return `    ${ev.padEnd(14)} n=${String(xs.length).padEnd(4)} ${stat(xs)}`;
      }),
      '',
    ].join('\n'),
  );
  return 0;
}

process.exitCode = main();
