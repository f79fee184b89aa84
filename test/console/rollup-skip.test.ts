/**
 * Issue 10, item 1: one event stamped 9999-12-31 made the web rollup's datetime(ts, '+9 hours')
 * NULL, the NOT NULL on web_rollup.day failed the whole batch, and /, /report and /events?type=usb.*
 * answered 500 for good. A database already poisoned that way must recover on upgrade, and a row
 * the rollup cannot put on a day must be skipped and reported, never stop the rollup again.
 */
import Database from 'better-sqlite3';
import { beforeEach, describe, expect, it } from 'vitest';
import { migrate } from '../../console/core/db.js';
import { queryEvents } from '../../console/core/events.js';
import { coreMigrations } from '../../console/core/schema.js';
import { webMigrations } from '../../console/web/schema.js';
import { dashboard, eventPage, rollupCatchUp, rollupSkipped, type SkippedRow } from '../../console/web/queries.js';

const FAR = '9999-12-31T23:59:59.999Z';
const NOW = new Date('2026-11-29T03:00:00.000Z'); // 12:00 in Japan

function oldStyleRow(db: Database.Database, seq: number, ts: string, receivedAt: string): void {
  // Exactly the columns the ingest of earlier versions wrote: the agent's ts as it came.
  db.prepare(
    `INSERT INTO events (id, agent_id, seq, ts, type, severity, user, data, prev_hash, hash, terminal_id, chain, received_at)
     VALUES (?, 'a1', ?, ?, 'usb.blocked', 'warning', 'tanaka', '{}', 'p', 'h', 'a1', 'ok', ?)`,
  ).run(`id-${seq}`, seq, ts, receivedAt);
}

describe('a database poisoned by a far-future event', () => {
  let db: Database.Database;
  beforeEach(() => {
    db = new Database(':memory:');
    db.exec('CREATE TABLE schema_migrations (module TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (module, version))');
  });

  it('recovers on upgrade: the event keeps its claimed time in agent_ts and is counted on the day it arrived', () => {
    migrate(db, 'core', coreMigrations.slice(0, 1)); // the schema earlier versions had
    migrate(db, 'web', webMigrations);
    oldStyleRow(db, 1, '2026-11-28T01:00:00.000Z', '2026-11-28T01:00:01.000Z');
    oldStyleRow(db, 2, FAR, '2026-11-28T02:00:00.000Z');
    migrate(db, 'core', coreMigrations); // the upgrade
    const far = queryEvents(db, { terminalId: 'a1' }).find((e) => e.seq === 2)!;
    expect(far).toMatchObject({ ts: '2026-11-28T02:00:00.000Z', agentTs: FAR });
    expect(queryEvents(db, { terminalId: 'a1' }).find((e) => e.seq === 1)).toMatchObject({ agentTs: null });
    expect(() => rollupCatchUp(db)).not.toThrow();
    const d = dashboard(db, NOW);
    expect(d.blockedByDay.find((x) => x.day === '2026-11-28')?.n).toBe(2);
    expect(d.rollupSkipped).toBe(0);
    expect(eventPage(db, { type: 'usb.*' }).events.map((e) => e.seq)).toEqual([2, 1]);
  });

  it('skips, reports and counts a row it cannot put on a day, and goes on past it', () => {
    migrate(db, 'core', coreMigrations);
    migrate(db, 'web', webMigrations);
    oldStyleRow(db, 1, '2026-11-29T01:00:00.000Z', '2026-11-29T01:00:00.000Z');
    oldStyleRow(db, 2, FAR, '2026-11-29T01:00:00.000Z'); // e.g. written by hand into the database
    oldStyleRow(db, 3, '2026-11-29T02:00:00.000Z', '2026-11-29T02:00:00.000Z');
    const reports: [number, SkippedRow[]][] = [];
    expect(rollupCatchUp(db, 100_000, (n, sample) => reports.push([n, sample]))).toBe(3);
    expect(reports).toEqual([[1, [{ rid: 2, ts: FAR, type: 'usb.blocked' }]]]);
    expect(rollupSkipped(db)).toBe(1);
    // The head moved past the bad row: the next rows are counted, the bad one is not reported again.
    oldStyleRow(db, 4, '2026-11-29T02:30:00.000Z', '2026-11-29T02:30:00.000Z');
    expect(rollupCatchUp(db, 100_000, (n, sample) => reports.push([n, sample]))).toBe(1);
    expect(reports).toHaveLength(1);
    const d = dashboard(db, NOW);
    expect(d.blockedToday).toBe(3);
    expect(d.rollupSkipped).toBe(1);
    expect(d.rollupLag).toBe(0);
  });
});
