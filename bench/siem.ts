/**
 * bench/siem: events forwarded per second from a real console (`sekimori-console serve`) to a real
 * rsyslog (imtcp + gtls, TLS 1.3, client certificate) on loopback, and the formatter alone for
 * comparison, in the same run on the same machine.
 *   npm run build && scripts/n24 node dist/bench/siem.js [--events 50000]
 * The events are written into the console's store before forwarding is turned on (a backlog, as
 * after an outage); the clock runs from `siem set` until rsyslog has written the last one.
 */
import { mkdirSync, openSync, readSync, closeSync, rmSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatEvent, frame } from '../console/siem/format.js';
import { nextBatch } from '../console/siem/store.js';
import { openDatabase } from '../console/core/db.js';
import { cli, startBenchConsole } from './console-process.js';
import { haveGtls, insertAgentEvents, makeCerts, startRsyslog } from './siem-rsyslog.js';

const { values } = parseArgs({ options: { events: { type: 'string', default: '50000' } } });
const N = Number(values.events);
if (!haveGtls()) {
  process.stderr.write('bench/siem needs rsyslog + rsyslog-gnutls: apt-get install rsyslog rsyslog-gnutls openssl\n');
  process.exit(2);
}

/** Counts newlines appended to `file` since the last call (reads only the new bytes). */
function lineCounter(file: string): () => number {
  let offset = 0;
  let lines = 0;
  const buf = Buffer.alloc(1 << 20);
  return () => {
    let size = 0;
    try {
      size = statSync(file).size;
    } catch {
      return lines;
    }
    const fd = openSync(file, 'r');
    try {
      while (offset < size) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, size - offset), offset);
        if (n <= 0) break;
        for (let i = 0; i < n; i++) if (buf[i] === 0x0a) lines++;
        offset += n;
      }
    } finally {
      closeSync(fd);
    }
    return lines;
  };
}

const con = await startBenchConsole('siem');
const dir = join(con.dir, 'siem');
mkdirSync(join(dir, 'rsyslog'), { recursive: true });
const certs = makeCerts(dir);
const siem = await startRsyslog(join(dir, 'rsyslog'), certs);
try {
  const dbPath = join(con.data, 'console.db');
  const data = (i: number) => ({
    kind: 'usb', mode: 'enforce', port: '1-2', busnum: 1, devnum: 5, vendorId: '0781', productId: '5581', bcdDevice: '0100', deviceClass: '00', interfaceClasses: ['08'],
    interfaces: [{ number: 0, classes: ['08/06/50'], allow: false, rule: 'class:08' }], manufacturer: 'SanDisk', product: `Ultra ${i}`,
    serial: `4C53${i}`, serialHex: null, descriptorHash: 'a'.repeat(64), rule: 'class:08', partial: false, readonly: false, exceptionId: null,
  });
  insertAgentEvents(dbPath, { id: '0b6c0d1e-aaaa-4bbb-8ccc-000000000002', hostname: 'PC-KOSEKI-07' }, N, (i) => ({ type: 'usb.blocked', severity: 'warning', user: 'yamada', data: data(i) }));

  // The formatter alone (this process, no I/O): the ceiling of what the forwarder can send.
  const db = openDatabase(dbPath);
  const rows = nextBatch(db, 0, N + 100);
  db.close();
  const f0 = performance.now();
  let bytes = 0;
  for (const e of rows) bytes += frame(formatEvent(e, { facility: 10, consoleHostname: 'console' })).length;
  const formatMs = performance.now() - f0;

  const count = lineCounter(siem.out);
  const total = rows.length + 1; // + admin.siem_configured, written by `siem set`
  const t0 = performance.now();
  cli('console', ['siem', 'set', '--data', con.data, '--target', `127.0.0.1:${siem.port}`, '--ca', certs.ca, '--name', 'siem.test', '--client-cert', certs.clientCert, '--client-key', certs.clientKey]);
  const deadline = Date.now() + 30 * 60_000;
  while (count() < total) {
    if (Date.now() > deadline) throw new Error(`only ${count()} of ${total} arrived within 30 min`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const sec = (performance.now() - t0) / 1000;
  const result = {
    events: total,
    cores: cpus().length,
    forwardedPerSecond: Math.round(total / sec),
    seconds: Number(sec.toFixed(2)),
    avgFrameBytes: Math.round(bytes / rows.length),
    formatterOnlyPerSecond: Math.round(rows.length / (formatMs / 1000)),
  };
  process.stdout.write(JSON.stringify(result) + '\n');
} finally {
  await siem.stop();
  await con.stop();
  rmSync(con.dir, { recursive: true, force: true });
}
