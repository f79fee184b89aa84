/**
 * bench/ingest-checkpoint: what WAL checkpoints cost the thread that commits. The same batch
 * inserts as bench/ingest's raw figure (same schema and statement, 500 per transaction) into a WAL
 * database, alternately with SQLite's automatic checkpoint (every 1000 pages, inside the commit
 * that crosses it) and with none in this thread (the WAL just grows here; in the console its
 * wal-checkpointer helper process does them, console/core/checkpointer.ts). Both with synchronous=NORMAL (the
 * console's ingest commits; its fsync runs in the thread pool, console/core/wal-sync.ts).
 *   npm run build && scripts/n24 node dist/bench/ingest-checkpoint.js [--events 200000] [--rounds 3]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { migrate, openDatabase } from '../console/core/db.js';
import { insertEventStatement } from '../console/core/events.js';
import { coreMigrations } from '../console/core/schema.js';
import type { SekimoriEvent } from '../protocol/events.js';
import { makeEvents } from './events.js';

const { values } = parseArgs({ options: { events: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '3' } } });
const N = Number(values.events);
const events = makeEvents('0b7c3c1e-8d0b-4b8e-9f5e-2d6f1a3b4c5d', N);

/** Seconds of the inserting thread for all N events. */
function insertAll(autocheckpointPages: number): number {
  const dir = mkdtempSync(join(tmpdir(), 'sekimori-bench-checkpoint-'));
  try {
    const db = openDatabase(join(dir, 'console.db'));
    migrate(db, 'core', coreMigrations);
    db.pragma('synchronous = NORMAL');
    db.pragma(`wal_autocheckpoint = ${autocheckpointPages}`);
    const insert = insertEventStatement(db);
    const now = new Date().toISOString();
    const tx = db.transaction((batch: SekimoriEvent[]) => {
      for (const e of batch) insert.run({ ...e, data: JSON.stringify(e.data), terminalId: e.agentId, chain: 'ok', receivedAt: now, agentTs: null });
    });
    const started = process.hrtime.bigint();
    for (let i = 0; i < N; i += 500) tx(events.slice(i, i + 500));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    db.close();
    return seconds;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, node ${process.version}; ${N} events, 500 per transaction, synchronous=NORMAL`);
for (let r = 1; r <= Number(values.rounds); r++) {
  const inCommit = insertAll(1000);
  const elsewhere = insertAll(0);
  console.log(
    `round ${r}: checkpoints inside the commits ${inCommit.toFixed(2)} s (${Math.round(N / inCommit)} events/s), none in this thread (the console leaves them to its helper) ${elsewhere.toFixed(2)} s (${Math.round(N / elsewhere)} events/s): checkpoints were ${(((inCommit - elsewhere) / inCommit) * 100).toFixed(0)} % of the committing thread's time`,
  );
}
