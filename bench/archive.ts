/**
 * bench/archive: retention's archive step on a real console data folder — events archived per
 * second (select + gzip NDJSON + sign + durable write + read-back verification + delete with
 * chain_base stubs, i.e. the whole `retention run`), archive size per 100 k events, and the
 * offline `archive verify` and `archive search` rates on the file.
 *   npm run build && scripts/n24 node dist/bench/archive.js [--events 200000] [--agents 4]
 * Events are the ingest benchmarks' (bench/events.ts: two of three full usb.blocked decisions),
 * stored through the real ingester, then aged past a usb+mfa period of 365 days.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createIngester } from '../console/backbone/ingest.js';
import { initConsole, openConsole } from '../console/core/context.js';
import { MAX_ARCHIVE_EVENTS } from '../console/retention/archive.js';
import { runRetention } from '../console/retention/run.js';
import { setPeriod } from '../console/retention/store.js';
import { searchRows, verifyArchive } from '../console/retention/verify.js';
import { makeEvents } from './events.js';

const { values } = parseArgs({ options: { events: { type: 'string', default: '200000' }, agents: { type: 'string', default: '4' } } });
const N = Number(values.events);
const AGENTS = Number(values.agents);
if (!Number.isInteger(N) || N < 1000 || !Number.isInteger(AGENTS) || AGENTS < 1) throw new Error('--events ≥ 1000, --agents ≥ 1');

const dir = mkdtempSync(join(tmpdir(), 'sekimori-bench-archive-'));
try {
  const data = join(dir, 'data');
  await initConsole(data, { sans: [], organisation: 'ベンチ市' });
  const ctx = openConsole(data);
  const ingest = createIngester(ctx.db);
  const now = new Date();
  const old = new Date(now.getTime() - 400 * 86_400_000).toISOString();
  for (let a = 0; a < AGENTS; a++) {
    const id = randomUUID();
    ctx.db.prepare("INSERT INTO agents (id, hostname, cert_fingerprint, enrolled_at) VALUES (?, ?, 'x', ?)").run(id, `PC-${a}`, now.toISOString());
    const events = makeEvents(id, Math.ceil(N / AGENTS));
    for (let i = 0; i < events.length; i += 1000) ingest(id, events.slice(i, i + 1000), now);
  }
  // Aged as the console stores an implausible clock (agent_ts keeps the signed time).
  ctx.db.prepare('UPDATE events SET agent_ts = ts, ts = ? WHERE agent_id != ?').run(old, 'console');
  const loadAvg = (await import('node:os')).loadavg()[0];
  const stored = (ctx.db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n;
  const dbBytes = statSync(join(data, 'console.db')).size;
  setPeriod(ctx.db, 'usb', 365, 'bench', now);
  setPeriod(ctx.db, 'mfa', 365, 'bench', now);

  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const r = runRetention(ctx, now, { actor: 'bench', maxArchives: 1000 });
  const runMs = performance.now() - t0;
  const runCpu = process.cpuUsage(c0);
  const runCpuS = (runCpu.user + runCpu.system) / 1e6;
  if (r.failed) throw new Error(r.failed);
  const archived = r.archives.reduce((s, a) => s + a.events, 0);
  const bytes = r.archives.reduce((s, a) => s + a.bytes, 0);

  // Offline verification and search of the largest archive file.
  const biggest = r.archives.reduce((a, b) => (b.events > a.events ? b : a));
  const file = readFileSync(join(data, 'archives', biggest.file));
  const pem = readFileSync(join(data, 'policy-signing-key.pub.pem'), 'utf8');
  const t1 = performance.now();
  const c1 = process.cpuUsage();
  const v = verifyArchive(file, { publicKeyPem: pem });
  const verifyMs = performance.now() - t1;
  const verifyCpu = process.cpuUsage(c1);
  if (!v.ok) throw new Error(v.reason);
  const t2 = performance.now();
  const found = searchRows(v.rows, { type: 'usb.*', text: 'user7' }, 1_000_000);
  const searchMs = performance.now() - t2;
  ctx.close();

  const out = {
    loadAverage1m: +loadAvg!.toFixed(1),
    storedEvents: stored,
    consoleDbBytes: dbBytes,
    archives: r.archives.length,
    maxEventsPerArchive: MAX_ARCHIVE_EVENTS,
    archivedEvents: archived,
    deleted: r.deleted,
    runSeconds: +(runMs / 1000).toFixed(2),
    archivedPerSecond: Math.round(archived / (runMs / 1000)),
    runCpuSeconds: +runCpuS.toFixed(2),
    archivedPerCpuSecond: Math.round(archived / runCpuS),
    archiveBytes: bytes,
    bytesPer100k: Math.round((bytes / archived) * 100_000),
    bytesPerEvent: +(bytes / archived).toFixed(1),
    verify: { events: v.rows.length, ms: Math.round(verifyMs), perSecond: Math.round(v.rows.length / (verifyMs / 1000)), cpuMs: Math.round((verifyCpu.user + verifyCpu.system) / 1000) },
    search: { scanned: v.rows.length, found: found.total, ms: Math.round(searchMs) },
  };
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
