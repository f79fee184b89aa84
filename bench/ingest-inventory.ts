/**
 * bench/ingest-inventory: what the device inventory (console/usb/devices-store.ts) costs. The same
 * events (bench/ingest's mix: 2/3 full usb.blocked decisions, 1/3 MFA results) are ingested in
 * process, 500 per batch, one durable transaction per batch (synchronous=FULL, WAL), A: as the
 * console ingests them, B: the same with the inventory written inside ingest (one UPSERT per
 * batch-folded device, the design measured and dropped), C: the inventory caught up afterwards as
 * the module's tick does (its CPU per event, off the ingest path). ABAB… on fresh databases, so
 * machine load hits all alike; the best run of each is compared. Two device mixes: every usb event
 * a new device (bench/ingest's SN${i}: one INSERT each, the worst case) and the same 20 devices.
 *   npm run build && scripts/n24 node dist/bench/ingest-inventory.js [--events 60000] [--rounds 3]
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeEvents } from './events.js';
import { createIngester } from '../console/backbone/ingest.js';
import { migrate, openDatabase } from '../console/core/db.js';
import { coreMigrations } from '../console/core/schema.js';
import { modules } from '../console/modules.js';
import { deviceRecorder, inventoryCatchUpFor } from '../console/usb/devices-store.js';
import { sightingOf, type DeviceSighting } from '../console/usb/devices.js';
import { readEventData } from '../protocol/event-data.js';
import type { SekimoriEvent } from '../protocol/events.js';

const { values } = parseArgs({ options: { events: { type: 'string', default: '60000' }, rounds: { type: 'string', default: '3' } } });
const TOTAL = Number(values.events);
const ROUNDS = Number(values.rounds);
const BATCH = 500;
const AGENT = randomUUID();

/** Every USB report a new stick, or the same 20 sticks over and over. */
const makeEventsFor = (n: number, distinct: boolean): SekimoriEvent[] => makeEvents(AGENT, n, (i) => (distinct ? `SN${i}` : `SN${i % 20}`));

type Mode = 'ingest' | 'at-ingest' | 'catch-up';
interface Run {
  rate: number;
  cpuUs: number;
}

/** The dropped design: the inventory written inside ingest's transaction, per batch. */
function atIngest(db: ReturnType<typeof openDatabase>, events: SekimoriEvent[]): void {
  const record = deviceRecorder(db);
  const s: DeviceSighting[] = [];
  events.forEach((e, i) => {
    const d = e.type === 'usb.blocked' ? readEventData('usb.blocked', e.data) : null;
    const x = d ? sightingOf(AGENT, 'usb.blocked', d, e.user, e.ts, i + 1) : null;
    if (x) s.push(x);
  });
  record(s);
}

/** Events per second (wall) and CPU microseconds per event (user + system: less sensitive to other load). */
function run(events: SekimoriEvent[], mode: Mode): Run {
  const dir = mkdtempSync(join(tmpdir(), 'sekimori-bench-inv-'));
  try {
    const db = openDatabase(join(dir, 'console.db'));
    migrate(db, 'core', coreMigrations);
    for (const m of modules) migrate(db, m.name, m.migrations);
    db.prepare("INSERT INTO agents (id, hostname, cert_fingerprint, enrolled_at) VALUES (?, 'pc', 'fp', 'now')").run(AGENT);
    const ingest = createIngester(db);
    const step = db.transaction((batch: SekimoriEvent[]) => {
      ingest(AGENT, batch);
      if (mode === 'at-ingest') atIngest(db, batch);
    });
    if (mode === 'catch-up') for (let i = 0; i < events.length; i += BATCH) ingest(AGENT, events.slice(i, i + BATCH));
    const start = process.hrtime.bigint();
    const cpu0 = process.cpuUsage();
    if (mode === 'catch-up') inventoryCatchUpFor(db, 600_000);
    else for (let i = 0; i < events.length; i += BATCH) step(events.slice(i, i + BATCH));
    const cpu = process.cpuUsage(cpu0);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    if (mode !== 'ingest') {
      const rows = db.prepare('SELECT sum(seen) AS s FROM usb_devices').get() as { s: number };
      if (rows.s !== events.filter((e) => e.type === 'usb.blocked').length) throw new Error(`inventory counted ${rows.s}`);
    }
    db.close();
    return { rate: events.length / seconds, cpuUs: (cpu.user + cpu.system) / events.length };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const distinct of [true, false]) {
  const events = makeEventsFor(TOTAL, distinct);
  const out: Record<Mode, Run[]> = { ingest: [], 'at-ingest': [], 'catch-up': [] };
  run(events.slice(0, 5000), 'at-ingest'); // warm up (JIT, page cache)
  for (let r = 0; r < ROUNDS; r++) for (const m of ['ingest', 'at-ingest', 'catch-up'] as const) out[m].push(run(events, m));
  const best = (m: Mode) => Math.min(...out[m].map((r) => r.cpuUs));
  const med = (m: Mode) => [...out[m].map((r) => r.cpuUs)].sort((p, q) => p - q)[Math.floor(ROUNDS / 2)]!;
  const pct = (p: number, q: number) => `${p >= q ? '+' : ''}${((p / q - 1) * 100).toFixed(1)} %`;
  console.log(
    `${distinct ? 'every usb event a new device (INSERT)' : 'the same 20 devices (UPDATE)'}: ${TOTAL} events, ${BATCH}/batch, ${ROUNDS} rounds\n` +
      `  ingest as the console does (no inventory work): CPU best ${best('ingest').toFixed(1)} / median ${med('ingest').toFixed(1)} µs/event\n` +
      `  inventory written at ingest (dropped design):   CPU best ${best('at-ingest').toFixed(1)} / median ${med('at-ingest').toFixed(1)} µs/event → ${pct(best('at-ingest'), best('ingest'))} on ingest\n` +
      `  inventory caught up afterwards (the tick):       CPU best ${best('catch-up').toFixed(1)} / median ${med('catch-up').toFixed(1)} µs per stored event, off the ingest path`,
  );
}
