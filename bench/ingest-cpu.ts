/**
 * bench/ingest-cpu: the console's CPU work per event, in one process, without TLS or fsync noise:
 * the batch check of upload bodies (JSON, shapes, hashes, data declarations: batch-check.ts, which
 * the serving console runs in a worker thread) and the ingest transaction (insert, chain, findings)
 * into a real console schema with synchronous=OFF. Run under `valgrind --tool=callgrind` its
 * instruction count is repeatable on a busy machine.
 *   npm run build && scripts/n24 node dist/bench/ingest-cpu.js [--events 20000]
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { migrate, openDatabase } from '../console/core/db.js';
import { coreMigrations } from '../console/core/schema.js';
import { createIngester } from '../console/backbone/ingest.js';
import { checkUpload } from '../console/backbone/batch-check.js';
import { makeEvents } from './events.js';

const { values } = parseArgs({ options: { events: { type: 'string', default: '20000' }, batch: { type: 'string', default: '500' } } });
const N = Number(values.events);
const BATCH = Number(values.batch);
const agentId = randomUUID();
const events = makeEvents(agentId, N);
const bodies: string[] = [];
for (let i = 0; i < N; i += BATCH) bodies.push(JSON.stringify({ batchId: randomUUID(), events: events.slice(i, i + BATCH) }));
const dir = mkdtempSync(join(tmpdir(), 'sekimori-ingest-cpu-'));
try {
  const db = openDatabase(join(dir, 'console.db'));
  db.pragma('synchronous = OFF');
  migrate(db, 'core', coreMigrations);
  db.prepare("INSERT INTO agents (id, hostname, os, agent_version, cert_fingerprint, enrolled_at, last_seen, status) VALUES (?, 'h', 'linux', '1', 'x', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 'online')").run(agentId);
  const ingest = createIngester(db);
  const start = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  let stored = 0;
  for (const b of bodies) stored += ingest(agentId, { checked: checkUpload(Buffer.from(b), agentId) }).response.stored;
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  const c = process.cpuUsage(cpu0);
  const cpuS = (c.user + c.system) / 1e6;
  db.close();
  if (stored !== N) throw new Error(`stored ${stored} of ${N}`);
  console.log(`ingest CPU (parse + check + hash + insert, no TLS, no fsync): ${N} events, ${cpuS.toFixed(2)} s CPU (${Math.round(N / cpuS)} events per CPU second), ${s.toFixed(2)} s wall`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
