/** The only code on the retention tables (and the only code that deletes from `events`). */
import type Database from 'better-sqlite3';
import type { ArchiveRow } from './archive.js';
import type { Period } from './periods.js';

export function consolePeriods(db: Database.Database): Map<string, number> {
  const rows = db.prepare('SELECT family, days FROM retention_periods ORDER BY family').all() as { family: string; days: number }[];
  return new Map(rows.map((r) => [r.family, r.days]));
}

export function setPeriod(db: Database.Database, family: string, days: number, by: string, now: Date): void {
  db.prepare('INSERT INTO retention_periods (family, days, set_at, set_by) VALUES (?, ?, ?, ?) ON CONFLICT (family) DO UPDATE SET days = excluded.days, set_at = excluded.set_at, set_by = excluded.set_by').run(
    family,
    days,
    now.toISOString(),
    by,
  );
}

export function unsetPeriod(db: Database.Database, family: string): boolean {
  return db.prepare('DELETE FROM retention_periods WHERE family = ?').run(family).changes > 0;
}

/**
 * Events due under the periods, oldest (by arrival) first, at most `limit`. The newest event of
 * every chain is never due: it is the head the next event links to (the console's own chain
 * reads its head from `events`), so the chain always continues from a stored row.
 */
export function dueRows(db: Database.Database, periods: readonly Period[], limit: number): ArchiveRow[] {
  const rids: number[] = [];
  const q = db.prepare(
    `SELECT rid FROM events e WHERE type >= ? AND type < ? AND ts < ? AND rid <= ?
       AND seq < (SELECT max(seq) FROM events h WHERE h.agent_id = e.agent_id)
     ORDER BY rid LIMIT ?`,
  );
  const upTo = forwardedUpTo(db) ?? Number.MAX_SAFE_INTEGER;
  for (const p of periods) for (const r of q.all(p.family + '.', p.family + '/', p.cutoff, upTo, limit) as { rid: number }[]) rids.push(r.rid);
  rids.sort((a, b) => a - b);
  const take = rids.slice(0, limit);
  if (!take.length) return [];
  return db
    .prepare(
      'SELECT rid, id, agent_id, seq, ts, type, severity, user, data, prev_hash, hash, terminal_id, chain, received_at, agent_ts FROM events WHERE rid IN (SELECT value FROM json_each(?)) ORDER BY rid',
    )
    .all(JSON.stringify(take)) as ArchiveRow[];
}

/**
 * While SIEM forwarding (console/siem) is on, only events it has already sent (rid ≤ its cursor) may
 * be deleted: deleting the rest would lose them for the SIEM. Read-only look at its state; null when
 * forwarding is off or not installed.
 */
export function forwardedUpTo(db: Database.Database): number | null {
  const has = (name: string) => !!db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?").get(name);
  if (!has('siem_config') || !has('siem_state')) return null;
  const cfg = db.prepare('SELECT enabled FROM siem_config WHERE id = 1').get() as { enabled: number } | undefined;
  if (!cfg?.enabled) return null;
  return (db.prepare('SELECT cursor_rid FROM siem_state WHERE id = 1').get() as { cursor_rid: number } | undefined)?.cursor_rid ?? 0;
}

export interface ArchiveRecord {
  id: number;
  file: string;
  status: 'writing' | 'complete' | 'failed' | 'stale';
  createdAt: string;
  createdBy: string;
  families: string;
  fromTs: string | null;
  toTs: string | null;
  events: number;
  agents: number;
  bytes: number;
  manifestSha256: string | null;
  deleted: number;
  deletedAt: string | null;
  error: string | null;
}

const ARCHIVE_COLS =
  'id, file, status, created_at AS createdAt, created_by AS createdBy, families, from_ts AS fromTs, to_ts AS toTs, events, agents, bytes, manifest_sha256 AS manifestSha256, deleted, deleted_at AS deletedAt, error';

export function reserveArchive(db: Database.Database, by: string, families: string, now: Date): number {
  const r = db.prepare("INSERT INTO retention_archives (file, status, created_at, created_by, families) VALUES ('', 'writing', ?, ?, ?)").run(now.toISOString(), by, families);
  return Number(r.lastInsertRowid);
}

export function archiveWritten(db: Database.Database, id: number, a: { file: string; fromTs: string | null; toTs: string | null; events: number; agents: number; bytes: number; manifestSha256: string }): void {
  db.prepare('UPDATE retention_archives SET file = ?, from_ts = ?, to_ts = ?, events = ?, agents = ?, bytes = ?, manifest_sha256 = ? WHERE id = ?').run(
    a.file,
    a.fromTs,
    a.toTs,
    a.events,
    a.agents,
    a.bytes,
    a.manifestSha256,
    id,
  );
}

export function archiveFailed(db: Database.Database, id: number, status: 'failed' | 'stale', error: string): void {
  db.prepare('UPDATE retention_archives SET status = ?, error = ? WHERE id = ?').run(status, error.slice(0, 1000), id);
}

/**
 * Deletes exactly the archived rows, leaving a hash-only stub of each in chain_base, in the
 * caller's transaction. Returns null (nothing deleted) when any of them is no longer stored — another
 * run archived them meanwhile — so an archive never claims a deletion it did not cause.
 */
export function deleteArchived(db: Database.Database, archiveId: number, rids: readonly number[], now: Date): number | null {
  const list = JSON.stringify(rids);
  const held = (db.prepare('SELECT count(*) AS n FROM events WHERE rid IN (SELECT value FROM json_each(?))').get(list) as { n: number }).n;
  if (held !== rids.length) return null;
  db.prepare(
    'INSERT OR REPLACE INTO chain_base (agent_id, seq, ts, prev_hash, hash, archive_id) SELECT agent_id, seq, ts, prev_hash, hash, ? FROM events WHERE rid IN (SELECT value FROM json_each(?))',
  ).run(archiveId, list);
  const n = db.prepare('DELETE FROM events WHERE rid IN (SELECT value FROM json_each(?))').run(list).changes;
  db.prepare("UPDATE retention_archives SET status = 'complete', deleted = ?, deleted_at = ? WHERE id = ?").run(n, now.toISOString(), archiveId);
  return n;
}

export function listArchives(db: Database.Database, limit = 500): ArchiveRecord[] {
  return db.prepare(`SELECT ${ARCHIVE_COLS} FROM retention_archives ORDER BY id DESC LIMIT ?`).all(limit) as ArchiveRecord[];
}

export function getArchive(db: Database.Database, id: number): ArchiveRecord | null {
  return (db.prepare(`SELECT ${ARCHIVE_COLS} FROM retention_archives WHERE id = ?`).get(id) as ArchiveRecord | undefined) ?? null;
}

export function lastRun(db: Database.Database): string | null {
  return (db.prepare("SELECT value FROM retention_state WHERE key = 'last_run'").get() as { value: string } | undefined)?.value ?? null;
}

export function setLastRun(db: Database.Database, now: Date): void {
  db.prepare("INSERT INTO retention_state (key, value) VALUES ('last_run', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(now.toISOString());
}

/** Archived (deleted) events of a terminal in a period: the report counts them as reported. */
export function archivedCount(db: Database.Database, agentId: string, since: string, until: string): number {
  return (db.prepare('SELECT count(*) AS n FROM chain_base WHERE agent_id = ? AND ts >= ? AND ts < ?').get(agentId, since, until) as { n: number }).n;
}
