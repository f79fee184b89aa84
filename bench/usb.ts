/**
 * bench/usb — from the real-kernel tier (test/e2e/qemu): time from the kernel's hot-plug uevent
 * to the agent's sysfs decision, and the number of windows in which a blocked storage device had
 * a driver or a block device. Reads the artefacts of the last QEMU run (test-output/usb-qemu/);
 * `--run` (or missing artefacts) runs the tier first.
 *
 *   scripts/n24 node dist/bench/usb.js [--run]
 *
 * Clocks: the uevent time is udevadm monitor's CLOCK_MONOTONIC stamp when it received the kernel
 * event; the agent stamps its decision with process.hrtime (CLOCK_MONOTONIC) after its sysfs
 * writes; the guest watcher polls sysfs every 5 ms with the same clock. All in one guest.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

// Runs from bench/ (tsx/vitest) or from dist/bench/ (built).
const ROOT = resolve(import.meta.dirname, import.meta.dirname.split('/').includes('dist') ? '../..' : '..');
const OUT = join(ROOT, 'test-output/usb-qemu');

interface Trace { path: string; vendorId: string; productId: string; event: string; monoStartNs: string; monoDoneNs: string; wrote: string[] }
interface Watch { t: number; kind: string; name?: string; value?: string | null; serial?: string | null; id?: string }

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

export function kernelAdds(uevents: string): { t: number; path: string }[] {
  const out: { t: number; path: string }[] = [];
  for (const m of uevents.matchAll(/^KERNEL\[(\d+\.\d+)\]\s+add\s+(\S+)\s+\(usb\)/gm)) {
    const base = m[2]!.split('/').pop()!;
    if (/^\d+-\d+(\.\d+)*$/.test(base)) out.push({ t: Number(m[1]) * 1000, path: base });
  }
  return out;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN;
};

function main(): number {
  if (process.argv.includes('--run') || !existsSync(join(OUT, 'trace.jsonl'))) {
    process.stderr.write('bench/usb: running the QEMU tier (test/e2e/qemu) …\n');
    const r = spawnSync(join(ROOT, 'scripts/n24'), ['vitest', 'run', 'test/e2e/qemu'], { cwd: ROOT, stdio: 'inherit', timeout: 30 * 60_000 });
    if (r.status !== 0) process.stderr.write(`bench/usb: the tier exited ${r.status}; using what it left\n`);
  }
  const traces = lines<Trace>(join(OUT, 'trace.jsonl'));
  const watch = lines<Watch>(join(OUT, 'watch.jsonl'));
  const adds = kernelAdds(existsSync(join(OUT, 'uevents.log')) ? readFileSync(join(OUT, 'uevents.log'), 'utf8') : '');
  if (!traces.length) {
    process.stderr.write('bench/usb: no agent trace found (is the QEMU tier provisioned? bash test/e2e/qemu/provision.sh)\n');
    return 1;
  }
  const samples: { path: string; event: string; startMs: number; decideMs: number }[] = [];
  for (const tr of traces) {
    const done = Number(BigInt(tr.monoDoneNs) / 1000n) / 1000;
    const start = Number(BigInt(tr.monoStartNs) / 1000n) / 1000;
    const k = adds.filter((a) => a.path === tr.path && a.t <= done).pop();
    if (!k || done - k.t > 60_000) continue; // present at agent start, not a hot-plug
    samples.push({ path: tr.path, event: tr.event, startMs: start - k.t, decideMs: done - k.t });
  }
  // Windows: a storage device the agent blocked, seen by the watcher with a driver or a disk, while present.
  const blocked = new Set(traces.filter((t) => t.event === 'usb.blocked').map((t) => t.path));
  let windows = 0;
  let blockedDevices = 0;
  const present = new Map<string, { serial: string | null | undefined; since: number }>();
  const agentStart = Math.min(...traces.map((t) => Number(BigInt(t.monoStartNs) / 1000n) / 1000));
  for (const l of watch) {
    if (l.kind === 'dev' && l.serial !== undefined) {
      present.set(l.name!, { serial: l.serial, since: l.t });
      if (blocked.has(l.name!) && l.id?.startsWith('46f4:') && l.t > agentStart) blockedDevices++;
    }
    if (l.kind === 'dev-gone') present.delete(l.name!);
    const dev = l.kind === 'iface' && l.value ? l.name!.split(':')[0]! : l.kind === 'block' && l.value ? l.value : null;
    if (!dev) continue;
    const p = present.get(dev);
    // only storage plugged after the agent started; allowed media (registered) are not windows
    if (p && p.since > agentStart && blocked.has(dev) && !/^SEKI-(REG|RO)-/.test(p.serial ?? '')) windows++;
  }
  const d = samples.map((s) => s.decideMs);
  const st = samples.map((s) => s.startMs);
  const f = (x: number) => x.toFixed(1);
  process.stdout.write(
    [
      'bench/usb (QEMU TCG, Debian kernel, real agent; hot-plug uevent → agent sysfs decision)',
      `  samples                     ${samples.length}  (${[...new Set(samples.map((s) => s.event))].join(', ')})`,
      `  uevent → decision written   p50 ${f(pct(d, 50))} ms   p95 ${f(pct(d, 95))} ms   max ${f(Math.max(...d))} ms   (target ≤ 100 ms)`,
      `  uevent → agent starts judging  p50 ${f(pct(st, 50))} ms   max ${f(Math.max(...st))} ms`,
      `  blocked storage devices watched  ${blockedDevices}   windows with a driver or disk: ${windows}   (target 0)`,
      ...samples.map((s) => `    ${s.path.padEnd(8)} ${s.event.padEnd(20)} ${f(s.decideMs)} ms`),
      '',
    ].join('\n'),
  );
  return 0;
}

process.exitCode = main();
