/**
 * bench/file-log: 持ち出しログ — how fast written files are recorded, with the real fanotify helper.
 *   npm run build && scripts/n24 node dist/bench/file-log.js [--files 2000] [--big-mib 256]
 * Root (fanotify, mount namespaces). A tmpfs "medium" is mounted in a private mount namespace the
 * bench creates (so nothing of the machine is watched); the agent's LinuxFileLog with the built
 * helper (dist/file-log/sekimori-file-log) watches it as an allowed stick. Measured: a burst of
 * small files written by a shell loop (all recorded after how long, how many hashed, how many past
 * the queue recorded `queue_full`), and one large file (recorded how long after its close). The
 * events go to a counter, not the agent's outbox (its fsync is timed by bench/events).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LinuxFileLog } from '../agent/usb/filelog/linux/filelog.js';
import { parseMountinfo } from '../agent/usb/filelog/decide.js';

const { values } = parseArgs({ options: { files: { type: 'string', default: '2000' }, 'big-mib': { type: 'string', default: '256' } } });
const FILES = Number(values.files);
const BIG_MIB = Number(values['big-mib']);
const helper = join(dirname(fileURLToPath(import.meta.url)), '..', 'file-log', 'sekimori-file-log');
if (process.getuid?.() !== 0 || !existsSync(helper)) {
  console.error(`bench/file-log needs root and the built helper ${helper} (npm run build with gcc and libc6-dev)`);
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), 'sekimori-bench-file-log-'));
chmodSync(work, 0o755);
const mnt = join(work, 'mnt');
mkdirSync(mnt);
let holder: ChildProcess | null = null;
try {
  holder = spawn('unshare', ['-m', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs -o size=1g sekimori-bench "$0" && echo mounted && exec sleep 600', mnt], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const h = holder;
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('the namespace did not mount its tmpfs within 10 s')), 10_000);
    h.stdout!.on('data', (b: Buffer) => b.toString().includes('mounted') && (clearTimeout(t), resolve()));
    h.once('exit', (c) => (clearTimeout(t), reject(new Error(`namespace holder exited ${c}`))));
  });
  const prefix = ['nsenter', '-t', String(h.pid), '-m', '--'];
  const majMins = () =>
    parseMountinfo(readFileSync(`/proc/${h.pid}/mountinfo`, 'latin1'))
      .filter((e) => e.mountPoint.toString() === mnt)
      .map((e) => e.majMin);
  let recorded = 0;
  let hashed = 0;
  let last = 0;
  const log = new LinuxFileLog(
    {
      emit: (e) => {
        recorded++;
        if ((e.data as { sha256?: string | null }).sha256) hashed++;
        last = performance.now();
        return {} as never;
      },
      log: () => undefined,
    },
    { sysRoot: '/nonexistent', helper, prefix, currentUser: () => null, mode: () => 'enforce', blocks: () => [{ port: '1-1', majMins: majMins() }] },
  );
  const device = { port: '1-1', vendorId: '0781', productId: '5567', serialHex: '41', descriptorHash: '', label: 'bench', serial: 'A', access: 'allow' as const, exceptionId: null };
  log.addMedium({ port: '1-1', access: 'allow', exceptionId: null, device });
  await log.sync(new Set(['1-1']));
  const until = (ok: () => boolean, ms: number, what: string) =>
    (async () => {
      const t = Date.now();
      while (!ok()) {
        if (Date.now() - t > ms) throw new Error(`${what}: not within ${ms / 1000} s`);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
  await until(() => log.stats.marks >= 1, 20_000, 'the helper marking the medium');
  const sh = (script: string) => spawnSync(prefix[0]!, [...prefix.slice(1), 'sh', '-c', script], { stdio: 'inherit' });

  let t0 = performance.now();
  sh(`mkdir ${mnt}/f && i=0; while [ $i -lt ${FILES} ]; do printf "$i" > ${mnt}/f/$i; i=$((i+1)); done`);
  const written = performance.now() - t0;
  await until(() => recorded >= FILES, 120_000, `${FILES} files recorded`);
  const burst = { written, recorded: last - t0, hashed, queueFull: recorded - hashed };

  const before = recorded;
  t0 = performance.now();
  sh(`head -c ${BIG_MIB * 1048576} /dev/zero > ${mnt}/big.bin`);
  const closed = performance.now();
  await until(() => recorded > before, 120_000, 'the large file recorded');
  const big = { written: closed - t0, afterClose: last - closed };
  await log.stop();

  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`machine: ${process.arch}, node ${process.version}, load ${load}; tmpfs medium in a private mount namespace, the real helper`);
  console.log(
    `burst: ${FILES} small files written in ${burst.written.toFixed(0)} ms; all recorded ${burst.recorded.toFixed(0)} ms after the first write (${burst.hashed} hashed, ${burst.queueFull} past the queue recorded queue_full)`,
  );
  console.log(`large file: ${BIG_MIB} MiB written in ${big.written.toFixed(0)} ms, hashed and recorded ${big.afterClose.toFixed(0)} ms after its close; RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`);
} finally {
  holder?.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
}
