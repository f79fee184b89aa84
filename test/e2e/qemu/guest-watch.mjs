// Runs INSIDE the QEMU guest: polls sysfs every few ms and logs every change to USB devices, their
// interfaces' drivers, block devices and network interfaces, with CLOCK_MONOTONIC timestamps, so
// the host can prove that a blocked device never had a driver at any moment (not just at the end).
import { readdirSync, readFileSync, readlinkSync, realpathSync, writeFileSync, existsSync } from 'node:fs';
const out = process.argv[2];
const stopFile = process.argv[3];
const everyMs = Number(process.argv[4] ?? 5);
const deadline = Date.now() + 15 * 60_000; // bounded
const usb = '/sys/bus/usb/devices';
const read = (p) => { try { return readFileSync(p, 'latin1').trim(); } catch { return null; } };
const ls = (p) => { try { return readdirSync(p); } catch { return []; } };
const now = () => Number(process.hrtime.bigint() / 1000n) / 1000; // ms, CLOCK_MONOTONIC
let lines = [];
const log = (o) => lines.push(JSON.stringify({ t: now(), ...o }));
let prev = { dev: new Map(), drv: new Map(), blk: new Map(), net: new Set() };
function snapshot() {
  const dev = new Map(), drv = new Map(), blk = new Map(), net = new Set(ls('/sys/class/net'));
  for (const n of ls(usb)) {
    if (/^\d+-\d+(\.\d+)*$/.test(n)) dev.set(n, read(`${usb}/${n}/authorized`));
    else if (/^\d+-[\d.]+:\d+\.\d+$/.test(n)) {
      let d = null;
      try { d = readlinkSync(`${usb}/${n}/driver`).split('/').pop(); } catch {}
      drv.set(n, d);
    }
  }
  for (const b of ls('/sys/block')) {
    let p = '';
    try { p = realpathSync(`/sys/block/${b}`); } catch {}
    const u = p.split('/').filter((s) => /^\d+-\d+(\.\d+)*$/.test(s)).pop() ?? null;
    blk.set(b, u);
  }
  return { dev, drv, blk, net };
}
function diff(a, b, kind, extra) {
  for (const [k, v] of b) if (!a.has(k) || a.get(k) !== v) log({ kind, name: k, value: v, ...(extra && !a.has(k) ? extra(k) : {}) });
  for (const k of a.keys()) if (!b.has(k)) log({ kind: kind + '-gone', name: k });
}
function tick() {
  const s = snapshot();
  diff(prev.dev, s.dev, 'dev', (k) => ({ serial: read(`${usb}/${k}/serial`), id: `${read(`${usb}/${k}/idVendor`)}:${read(`${usb}/${k}/idProduct`)}`, product: read(`${usb}/${k}/product`) }));
  diff(prev.drv, s.drv, 'iface', (k) => ({ cls: read(`${usb}/${k}/bInterfaceClass`) }));
  diff(prev.blk, s.blk, 'block');
  for (const n of s.net) if (!prev.net.has(n)) log({ kind: 'net', name: n });
  for (const n of prev.net) if (!s.net.has(n)) log({ kind: 'net-gone', name: n });
  prev = s;
  if (lines.length) { writeFileSync(out, lines.join('\n') + '\n', { flag: 'a' }); lines = []; }
  if (existsSync(stopFile) || Date.now() > deadline) return;
  setTimeout(tick, everyMs);
}
log({ kind: 'start' });
tick();
