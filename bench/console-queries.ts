/**
 * bench/console-queries: the web console's dashboard and events-page queries on a store holding
 * 10 M events (target < 200 ms each).
 *   npm run build && scripts/n24 node dist/bench/console-queries.js [--events 10000000] [--db PATH] [--fresh]
 * The scratch database (same schema and migrations as the console) is kept between runs at
 * --db (default: $TMPDIR/sekimori-bench-console-queries.db); --fresh refills it. Filling takes
 * minutes (one transaction per 100k rows); the queries are then timed warm, 15 runs each.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
// The console's module list first: it is the entry point that resolves the core ↔ module import cycle.
import '../console/modules.js';
import { migrate, openDatabase } from '../console/core/db.js';
import { coreMigrations } from '../console/core/schema.js';
import { webMigrations } from '../console/web/schema.js';
import { dashboard, eventByRid, eventPage, rollupCatchUp, rollupLag, type EventQuery } from '../console/web/queries.js';
import { dayStartIso } from '../console/web/pages/events.js';
import { createSession } from '../console/web/auth.js';
import { webModule } from '../console/web/feature.js';
import { recordConsoleEvent } from '../console/core/events.js';
import type { ApiRequest, ConsoleContext, Route } from '../console/module.js';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '10000000' },
    db: { type: 'string', default: join(tmpdir(), 'sekimori-bench-console-queries.db') },
    fresh: { type: 'boolean', default: false },
    terminals: { type: 'string', default: '2000' },
    days: { type: 'string', default: '180' },
  },
});
const TOTAL = Number(values.events);
const TERMINALS = Number(values.terminals);
const DAYS = Number(values.days);
const CHUNK = 100_000;

// A plausible mix: mostly routine events, a few percent blocked/failed/unauthorized.
const MIX: [string, string, number][] = [
  ['mfa.success', 'info', 40],
  ['usb.allowed', 'info', 20],
  ['agent.started', 'info', 5],
  ['agent.policy_applied', 'info', 5],
  ['software.installed', 'notice', 5],
  ['usb.readonly', 'notice', 5],
  ['usb.blocked', 'warning', 8],
  ['mfa.failure', 'warning', 6],
  ['software.unauthorized_process', 'warning', 3],
  ['software.killed', 'warning', 1],
  ['mfa.locked', 'critical', 1],
  ['agent.silent', 'critical', 1],
];
const WHEEL: [string, string][] = MIX.flatMap(([t, s, w]) => Array.from({ length: w }, () => [t, s] as [string, string]));

if (values.fresh && existsSync(values.db)) for (const s of ['', '-wal', '-shm']) rmSync(values.db + s, { force: true });
const db = openDatabase(values.db);
db.pragma('synchronous = NORMAL'); // filling only; the console itself runs with FULL
db.pragma('cache_size = -1000000'); // 1 GB: the random-UUID unique index is what makes filling slow
migrate(db, 'core', coreMigrations);
migrate(db, 'web', webMigrations);

const have = (db.prepare('SELECT coalesce(max(rid), 0) AS n FROM events').get() as { n: number }).n;
const terminalIds = Array.from({ length: TERMINALS }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
const now = Date.now();
if (have < TOTAL) {
  const t0 = performance.now();
  const insAgent = db.prepare(
    "INSERT OR IGNORE INTO agents (id, hostname, os, agent_version, cert_fingerprint, enrolled_at, last_seen, status, policy_version) VALUES (?, ?, 'Debian GNU/Linux 12', '0.1.0', ?, ?, ?, ?, ?)",
  );
  db.transaction(() => {
    terminalIds.forEach((id, i) => {
      const status = i % 97 === 0 ? 'silent' : i % 23 === 0 ? 'offline' : 'online';
      insAgent.run(id, `PC-${String(i).padStart(5, '0')}`, 'f'.repeat(64), new Date(now - DAYS * 86_400_000).toISOString(), new Date(now - (i % 60) * 1000).toISOString(), status, i % 10 === 0 ? 6 : 7);
    });
  })();
  const ins = db.prepare(
    `INSERT INTO events (id, agent_id, seq, ts, type, severity, user, data, prev_hash, hash, terminal_id, chain, received_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ok', ?)`,
  );
  const seqs = new Uint32Array(TERMINALS);
  const span = DAYS * 86_400_000;
  const start = now - span;
  // mulberry32: deterministic and without the correlations of a plain LCG between consecutive draws.
  let x = 12345 + have;
  const rnd = () => {
    x = (x + 0x6d2b79f5) | 0;
    let t = Math.imul(x ^ (x >>> 15), 1 | x);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  // Resume where a previous (interrupted) fill stopped: per-terminal seq continues from the store.
  for (const r of db.prepare('SELECT agent_id, max(seq) AS s FROM events GROUP BY agent_id').all() as { agent_id: string; s: number }[]) {
    const i = terminalIds.indexOf(r.agent_id);
    if (i >= 0) seqs[i] = r.s;
  }
  const hash = 'a'.repeat(64);
  for (let done = have; done < TOTAL; ) {
    const n = Math.min(CHUNK, TOTAL - done);
    db.transaction(() => {
      for (let k = 0; k < n; k++) {
        const i = done + k;
        const term = Math.floor(rnd() * TERMINALS);
        const seq = ++seqs[term]!;
        // Time grows with arrival order, with up to 10 minutes of jitter (late uploads).
        const ts = new Date(start + (span * i) / TOTAL - Math.floor(rnd() * 600_000)).toISOString();
        const [type, sev] = WHEEL[Math.floor(rnd() * WHEEL.length)]!;
        // Mostly the terminal's own few staff, sometimes anyone (shared counters, substitutes).
        const u = rnd() < 0.8 ? (term * 2 + Math.floor(rnd() * 3)) % 5000 : Math.floor(rnd() * 5000);
        const user = `user${String(u).padStart(4, '0')}`;
        const data = type.startsWith('usb.')
          ? `{"kind":"usb","vendorId":"0781","productId":"5581","serial":"SN${i % 100000}","product":"USB DISK ${i % 977}"}`
          : type.startsWith('software.')
            ? `{"path":"/home/${user}/Downloads/tool-${i % 5003}.bin","sha256":"${hash}"}`
            : `{"n":${i % 1000}}`;
        ins.run(randomUUID(), terminalIds[term], seq, ts, type, sev, user, data, hash, hash, terminalIds[term], ts);
      }
    })();
    done += n;
    if (done % 1_000_000 === 0 || done === TOTAL) process.stdout.write(`filled ${done.toLocaleString('en')} events (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
  }
  db.exec('ANALYZE');
  process.stdout.write(`fill: ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

db.pragma('cache_size = -2000'); // queries run with the console's default page cache
const lag = rollupLag(db);
if (lag > 0) {
  const t0 = performance.now();
  let counted = 0;
  while (rollupLag(db) > 0) counted += rollupCatchUp(db, 500_000);
  const s = (performance.now() - t0) / 1000;
  process.stdout.write(`rollup catch-up: ${counted.toLocaleString('en')} rows in ${s.toFixed(1)} s (${Math.round(counted / s).toLocaleString('en')} rows/s; the console's tick spends at most ~25 ms per second on it)\n`);
}

const count = (db.prepare('SELECT max(rid) AS n FROM events').get() as { n: number }).n;
process.stdout.write(`\nstore: ${count.toLocaleString('en')} events, ${TERMINALS} terminals, ${DAYS} days (${values.db})\n\n`);

function time(name: string, f: () => unknown, runs = 15): void {
  f(); // warm
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    f();
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  const p50 = ms[Math.floor(ms.length / 2)]!;
  const max = ms[ms.length - 1]!;
  process.stdout.write(`${name.padEnd(58)} p50 ${p50.toFixed(1).padStart(7)} ms   max ${max.toFixed(1).padStart(7)} ms ${max < 200 ? '' : '  ← over 200 ms'}\n`);
}

const latestTs = (db.prepare('SELECT max(ts) AS t FROM events').get() as { t: string }).t;
const midRid = Math.floor(count / 2);
const mid = db.prepare('SELECT ts, rid FROM events WHERE rid = ?').get(midRid) as { ts: string; rid: number };
const weekAgo = new Date(Date.parse(latestTs) - 7 * 86_400_000).toISOString().slice(0, 10);
const q = (x: EventQuery) => () => eventPage(db, x);

time('dashboard (all figures)', () => dashboard(db, new Date(latestTs)));
time('events: newest page, no filter', q({}));
time('events: page at the middle of 10M (keyset cursor)', q({ before: mid }));
time('events: terminal', q({ terminal: terminalIds[42] }));
time('events: terminal, deep page (cursor in the middle)', q({ terminal: terminalIds[42], before: mid }));
time('events: user', q({ user: 'user0042' }));
time('events: type usb.blocked', q({ type: 'usb.blocked' }));
time('events: type prefix software.*', q({ type: 'software.*' }));
time('events: severity critical', q({ severity: 'critical' }));
time('events: period (one day a week ago)', q({ since: dayStartIso(weekAgo), until: new Date(Date.parse(dayStartIso(weekAgo)) + 86_400_000).toISOString() }));
time('events: terminal + type + period', q({ terminal: terminalIds[7], type: 'usb.blocked', since: dayStartIso(weekAgo) }));
time('events: user + severity', q({ user: 'user0042', severity: 'warning' }));
time('events: free text, common ("USB DISK 12")', q({ text: 'USB DISK 12' }));
time('events: free text, rare within the 200k-row scan bound', q({ text: 'tool-4999.bin' }));
time('events: free text + terminal', q({ terminal: terminalIds[42], text: 'tool-' }));
time('event detail', () => eventByRid(db, midRid));

// Whole pages as the server renders them (route handler + HTML), minus TLS and the network.
const ctx = {
  dataDir: '',
  db,
  recordEvent: (e: Parameters<ConsoleContext['recordEvent']>[0]) => recordConsoleEvent(db, e),
  recordRepeated: (e: Parameters<ConsoleContext['recordEvent']>[0]) => recordConsoleEvent(db, e),
  currentPolicy: () => {
    throw new Error('not used by these pages');
  },
  publishPolicy: () => {
    throw new Error('read-only bench');
  },
  seal: (p: Buffer | string) => String(p),
  open: (x: string) => Buffer.from(x),
  organisation: () => 'ベンチ市',
} as unknown as ConsoleContext;
db.prepare("INSERT OR IGNORE INTO console_users (username, role, password_hash, totp_secret, created_at) VALUES ('bench', 'auditor', 'x', 'x', ?)").run(new Date().toISOString());
const session = createSession(db, 'bench');
const routes: Route[] = webModule.routes!(ctx);
function get(pathAndQuery: string): () => void {
  const u = new URL(pathAndQuery, 'https://bench');
  return () => {
    for (const r of routes) {
      if (r.method !== 'GET') continue;
      const m = typeof r.path === 'string' ? (r.path === u.pathname ? [] : null) : r.path.exec(u.pathname)?.slice(1) ?? null;
      if (!m) continue;
      const req: ApiRequest = {
        method: 'GET',
        path: u.pathname,
        query: u.searchParams,
        headers: { cookie: `__Host-sekimori_session=${session.token}`, host: 'bench' },
        body: Buffer.alloc(0),
        remoteAddress: '127.0.0.1',
        agentId: null,
        params: m.map((x) => x ?? ''),
        json: () => null,
      };
      const res = r.handle(req) as { status: number; body?: string | Buffer };
      if (res.status !== 200) throw new Error(`${pathAndQuery}: HTTP ${res.status}`);
      return;
    }
    throw new Error(`no route for ${pathAndQuery}`);
  };
}
process.stdout.write('\n');
time('page GET / (dashboard, rendered HTML)', get('/'));
time('page GET /events', get('/events'));
time('page GET /events?terminal=…&type=usb.blocked', get(`/events?terminal=${terminalIds[42]}&type=usb.blocked`));
time('page GET /events?text=USB+DISK+12', get('/events?text=USB+DISK+12'));
time(`page GET /events?before=… (middle of the store)`, get(`/events?before=${encodeURIComponent(`${mid.ts}~${mid.rid}`)}`));
time('page GET /events/:rid', get(`/events/${midRid}`));
db.prepare("DELETE FROM web_sessions WHERE username = 'bench'").run();

const plan = (sql: string, args: Record<string, unknown>) => (db.prepare('EXPLAIN QUERY PLAN ' + sql).all(args) as { detail: string }[]).map((r) => r.detail).join(' | ');
process.stdout.write(`\nplan (user filter): ${plan("SELECT * FROM events WHERE user = @u ORDER BY ts DESC, rid DESC LIMIT 51", { u: 'user0042' })}\n`);
process.stdout.write(`plan (severity):    ${plan("SELECT * FROM events WHERE severity = @s ORDER BY ts DESC, rid DESC LIMIT 51", { s: 'critical' })}\n`);
db.close();
