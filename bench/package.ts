/**
 * bench/package: size and start-up time of each packaged executable (npm run package).
 *   npm run build && npm run package && scripts/n24 node dist/bench/package.js [--runs 5]
 * Start-up = spawn → exit of `sekimori-agent|console --help` (runtime start, bundle load, usage
 * printed): the first run after the build (page cache may still be warm from the build: said
 * "first", not "cold") and the median of --runs more. Linux natively; the Windows executable
 * under wine 10 (.tools/wine-root, same mounts as test/e2e/wine/wine.ts), which adds wine's own
 * process start — measured alone with `cmd /c exit` and printed beside it. Not Windows' figure.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Math.max(1, Math.min(50, Number(values.runs) || 5));
const root = resolve(import.meta.dirname, '../..');
const sea = join(root, 'dist/sea');
const wineRoot = join(root, '.tools/wine-root');
const prefix = join(root, '.tools/wine-prefix');

const sh = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** argv for one wine run: private mount namespace, chroot into the Debian 13 root, output to /dev/null. */
function wineArgv(args: string[]): string[] {
  const env = ['PATH=/usr/bin:/bin', 'HOME=/root', 'LANG=C.UTF-8', `WINEPREFIX=${prefix}`, 'WINEDEBUG=-all', 'WINEDLLOVERRIDES=mscoree,mshtml=', `XDG_RUNTIME_DIR=${join(root, '.tools/wine-xdg')}`];
  const script = [
    'set -e',
    `mount -t proc proc ${sh(wineRoot + '/proc')}`,
    `mount --rbind /dev ${sh(wineRoot + '/dev')}`,
    ...['/tmp', root].map((m) => `mkdir -p ${sh(wineRoot + m)} && mount --bind ${sh(m)} ${sh(wineRoot + m)}`),
    // stdout to a file, never a pipe (Node under wine dies with EBADF on a Unix pipe)
    `exec chroot ${sh(wineRoot)} env -i ${env.map(sh).join(' ')} wine ${args.map(sh).join(' ')} </dev/null >/dev/null 2>&1`,
  ].join('\n');
  return ['unshare', '-m', '--propagation', 'private', 'sh', '-c', script];
}

function timeRun(argv: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0]!, argv.slice(1), { stdio: 'ignore', timeout: 300_000 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status ?? r.signal}`);
  return ms;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function measure(argv: string[]): { first: number; median: number } {
  const first = timeRun(argv);
  const rest = Array.from({ length: runs }, () => timeRun(argv));
  return { first, median: median(rest) };
}

const mb = (f: string): string => {
  const size = statSync(f).size;
  return size < 1024 * 1024 ? `${(size / 1024).toFixed(0)} KiB` : `${(size / 1024 / 1024).toFixed(1)} MiB`;
};
const rows: string[][] = [['file', 'platform', 'size', 'first start ms', `median of ${runs} ms`]];

for (const name of ['sekimori-agent', 'sekimori-console']) {
  const exe = join(sea, name);
  if (!existsSync(exe)) {
    rows.push([name, 'linux-x64', 'missing (npm run package)', '', '']);
    continue;
  }
  const m = measure([exe, '--help']);
  rows.push([name, 'linux-x64', mb(exe), m.first.toFixed(0), m.median.toFixed(0)]);
}

const haveWine = existsSync(join(wineRoot, 'usr/lib/wine/wine64')) && existsSync(join(prefix, 'system.reg')) && process.getuid?.() === 0;
const winExe = join(sea, 'sekimori-agent.exe');
if (existsSync(winExe)) {
  if (haveWine) {
    mkdirSync(join(root, '.tools/wine-xdg'), { recursive: true, mode: 0o700 });
    const base = measure(wineArgv(['cmd', '/c', 'exit']));
    const m = measure(wineArgv(['Z:' + winExe.replace(/\//g, '\\'), '--help']));
    rows.push(['sekimori-agent.exe', 'win-x64 under wine 10', mb(winExe), m.first.toFixed(0), m.median.toFixed(0)]);
    rows.push(['(wine alone: cmd /c exit)', 'wine 10', '', base.first.toFixed(0), base.median.toFixed(0)]);
  } else {
    rows.push(['sekimori-agent.exe', 'win-x64', mb(winExe), 'no wine (bash test/e2e/wine/provision.sh, as root)', '']);
  }
} else {
  rows.push(['sekimori-agent.exe', 'win-x64', 'missing (npm run package with the Windows tools)', '', '']);
}
for (const f of ['sekimori-service.exe', 'sekimori-agent.msi']) {
  const p = join(sea, f);
  rows.push([f, 'win-x64', existsSync(p) ? mb(p) : 'missing', '', '']);
}

const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
// Shared 2-core machines: the load at the end says how much the times can be trusted.
console.log(`\nnode ${process.version}, ${new Date().toISOString()}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}; Windows figures are under wine on Linux, not on Windows.`);
