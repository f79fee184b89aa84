/**
 * What a notice costs (issue 15): the time ctx.notify() takes on the capability's path (it only
 * queues), and the time one Linux delivery takes end to end (gdbus as the session user → a
 * session bus → a notification server answering Notify). Needs root, dbus-daemon, gdbus and
 * /usr/bin/python3 with python3-dbus/gi (the recording server of test/e2e/notify).
 *
 *   scripts/n24 node dist/bench/notice.js [--n 30]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { LinuxNoticeDelivery } from '../agent/notify/linux/delivery.js';
import { Notifier, type NoticeDelivery } from '../agent/notify/notifier.js';
import { noticeText, type Notice } from '../protocol/notice.js';

const ROOT = resolve(import.meta.dirname, '../..');
const NOBODY = 65534;

function until(proc: ChildProcess, re: RegExp, ms: number): Promise<string> {
  return new Promise((ok, fail) => {
    let out = '';
    const t = setTimeout(() => fail(new Error(`not ready within ${ms} ms: ${out}`)), ms);
    const on = (b: Buffer) => {
      out += b.toString();
      const line = out.split('\n').find((l) => re.test(l));
      if (line) {
        clearTimeout(t);
        ok(line.trim());
      }
    };
    proc.stdout?.on('data', on);
    proc.stderr?.on('data', on);
  });
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { n: { type: 'string', default: '30' } } });
  const n = Math.max(1, Math.min(1000, Number(values.n)));
  const dir = mkdtempSync(join(tmpdir(), 'sekimori-bench-notice-'));
  chownSync(dir, NOBODY, NOBODY);
  const procs: ChildProcess[] = [];
  try {
    const bus = spawn('dbus-daemon', ['--session', `--address=unix:path=${join(dir, 'bus')}`, '--print-address', '--nofork'], { uid: NOBODY, gid: NOBODY, env: { PATH: '/usr/bin:/bin', HOME: dir } });
    procs.push(bus);
    const address = await until(bus, /^unix:path=/, 20_000);
    const srv = spawn('/usr/bin/python3', [join(ROOT, 'test/e2e/notify/recording-notifyd.py'), join(dir, 'rec.jsonl'), '600'], { uid: NOBODY, gid: NOBODY, env: { PATH: '/usr/bin:/bin', HOME: dir, DBUS_SESSION_BUS_ADDRESS: address } });
    procs.push(srv);
    await until(srv, /^ready$/, 20_000);

    const notice: Notice = { kind: 'usb_blocked', user: '', subject: 'SanDisk Ultra', ref: 'K7Q2MX' };
    const session = { user: '', uid: NOBODY, gid: NOBODY, address, lang: 'ja' as const };
    const delivery = new LinuxNoticeDelivery({ env: {} });
    const deliverMs: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await delivery.deliver(session, noticeText(notice, 'ja'), notice);
      deliverMs.push(performance.now() - t0);
    }

    // The caller's side: notify() only queues (the decision and the delivery run later).
    const counting: NoticeDelivery = { name: 'count', sessions: () => [], deliver: () => Promise.resolve('shown') };
    const nf = new Notifier(counting, () => ({ enabled: true, monitor: false }), () => {});
    const callUs: number[] = [];
    for (let i = 0; i < 10_000; i++) {
      const t0 = performance.now();
      nf.notify({ ...notice, key: `k${i}` });
      callUs.push((performance.now() - t0) * 1000);
    }
    await new Promise((r) => setImmediate(r));

    console.log(`notice delivery (gdbus as uid ${NOBODY} → session bus → Notify answered), n=${n}: p50 ${pct(deliverMs, 50).toFixed(1)} ms, p95 ${pct(deliverMs, 95).toFixed(1)} ms, max ${Math.max(...deliverMs).toFixed(1)} ms`);
    console.log(`ctx.notify() on the capability's path, n=10000: p50 ${pct(callUs, 50).toFixed(2)} µs, p99 ${pct(callUs, 99).toFixed(2)} µs`);
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
