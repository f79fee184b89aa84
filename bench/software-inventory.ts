/**
 * bench/software-inventory: what the software inventory costs. Wire: bytes of a digest report and
 * of this machine's full dpkg list (and a 2,500-package desktop). Console, in process on a fresh
 * data folder (synchronous=FULL as served): storing one terminal's full list, then with a fleet
 * of N terminals × 2,500 packages the queries the page and the CLI make — which terminals have a
 * package (exact, contains, with a version), one terminal's list, its baseline differences.
 *   npm run build && scripts/n24 node dist/bench/software-inventory.js [--terminals 1000] [--packages 2500]
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { inventoryReport } from '../agent/software/inventory.js';
import { parseDpkgStatus } from '../agent/software/observe/dpkg.js';
import { initConsole, openConsole } from '../console/core/context.js';
import { baselineDiff } from '../console/software/inventory.js';
import { inventoryOf, reportInventory, terminalsWith } from '../console/software/store.js';
import type { InventoryEntry } from '../protocol/api.js';

const { values } = parseArgs({ options: { terminals: { type: 'string', default: '1000' }, packages: { type: 'string', default: '2500' }, samples: { type: 'string', default: '30' } } });
const TERMINALS = Number(values.terminals);
const PACKAGES = Number(values.packages);
const SAMPLES = Number(values.samples);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
function timed(n: number, f: (i: number) => unknown): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    f(i);
    out.push(performance.now() - t0);
  }
  return out;
}
const fmt = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(2)} ms, p95 ${pct(xs, 95).toFixed(2)} ms, max ${Math.max(...xs).toFixed(2)} ms (n=${xs.length})`;

/** A desktop-like list: names and versions shaped like Debian's (lib…, -dev, epochs). */
function desktop(n: number, variant: number): InventoryEntry[] {
  return Array.from({ length: n }, (_, i) => ({
    name: i % 7 === 0 ? `lib${i}-common` : `package-${i}`,
    version: `${i % 3 === 0 ? '1:' : ''}${(i % 13) + 1}.${i % 10}.${(i + (i % 50 === 0 ? variant : 0)) % 100}-${(i % 4) + 1}+deb12u${i % 3}`,
    arch: i % 5 === 0 ? 'all' : 'amd64',
  }));
}

async function main(): Promise<void> {
  // ---- wire sizes
  let local = '(no /var/lib/dpkg/status)';
  try {
    const r = inventoryReport(parseDpkgStatus(readFileSync('/var/lib/dpkg/status', 'utf8')).values());
    const full = JSON.stringify({ platform: 'linux', digest: r.digest, total: r.total, packages: r.entries });
    local = `${r.total} packages: full list ${(Buffer.byteLength(full) / 1024).toFixed(0)} KiB`;
  } catch {
    /* not Debian */
  }
  const synth = inventoryReport(desktop(PACKAGES, 0));
  const digestOnly = JSON.stringify({ platform: 'linux', digest: synth.digest, total: synth.total });
  const synthFull = JSON.stringify({ platform: 'linux', digest: synth.digest, total: synth.total, packages: synth.entries });
  console.log(`wire: digest report ${Buffer.byteLength(digestOnly)} B; this machine ${local}; ${PACKAGES} packages: full list ${(Buffer.byteLength(synthFull) / 1024).toFixed(0)} KiB`);
  console.log(`agent: building the report of ${PACKAGES} packages (clip, sort, digest): ${fmt(timed(SAMPLES, () => inventoryReport(desktop(PACKAGES, 0))))}`);

  // ---- console
  const dir = mkdtempSync(join(tmpdir(), 'sekimori-bench-inventory-'));
  try {
    await initConsole(join(dir, 'console'), { sans: [], organisation: 'bench' });
    const ctx = openConsole(join(dir, 'console'));
    try {
      const ids = Array.from({ length: TERMINALS }, () => randomUUID());
      const lists = [0, 1, 2, 3].map((v) => inventoryReport(desktop(PACKAGES, v)));
      const t0 = performance.now();
      const store = timed(TERMINALS, (i) => {
        const r = lists[i % 4]!;
        reportInventory(ctx, ids[i]!, { platform: 'linux', digest: r.digest, total: r.total }, r.entries);
      });
      console.log(`console: store a full list of ${PACKAGES} (replace, one transaction): ${fmt(store)}; fleet of ${TERMINALS} filled in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const replace = timed(SAMPLES, (i) => {
        const r = lists[(i + 1) % 4]!;
        reportInventory(ctx, ids[i % TERMINALS]!, { platform: 'linux', digest: r.digest, total: r.total }, r.entries);
      });
      console.log(`console: replace a terminal's list (fleet full): ${fmt(replace)}`);
      const digestCheck = timed(SAMPLES * 10, (i) => reportInventory(ctx, ids[i % TERMINALS]!, { platform: 'linux', digest: lists[0]!.digest, total: PACKAGES }, null));
      console.log(`console: digest-only report: ${fmt(digestCheck)}`);
      const exact = timed(SAMPLES, (i) => terminalsWith(ctx, { name: `package-${(i * 37) % PACKAGES || 1}` }));
      console.log(`query: which terminals have X (exact, ${TERMINALS} hits each): ${fmt(exact)}`);
      const withVersion = timed(SAMPLES, (i) => terminalsWith(ctx, { name: `package-${(i * 50) % PACKAGES || 50}`, version: lists[0]!.entries[1]!.version }));
      console.log(`query: which terminals have X version Y: ${fmt(withVersion)}`);
      const contains = timed(Math.min(SAMPLES, 10), () => terminalsWith(ctx, { name: 'common-zz', contains: true }, 2001));
      console.log(`query: name contains (web search, full scan of ${TERMINALS * PACKAGES} rows): ${fmt(contains)}`);
      const one = timed(SAMPLES, (i) => inventoryOf(ctx, ids[i % TERMINALS]!));
      console.log(`query: one terminal's list: ${fmt(one)}`);
      const baseline = lists[0]!.entries.map((e) => ({ name: e.name, version: e.version, arch: e.arch }));
      const diff = timed(SAMPLES, (i) => baselineDiff(baseline, inventoryOf(ctx, ids[i % TERMINALS]!)));
      console.log(`query: one terminal's baseline differences (list + diff): ${fmt(diff)}`);
    } finally {
      ctx.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
