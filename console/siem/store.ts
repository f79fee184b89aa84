/** The only code on the siem_* tables, and the forwarder's read of the event store (by rid, stored order). */
import type Database from 'better-sqlite3';
import type { StoredEventRow } from '../core/events.js';
import type { ForwardEvent } from './format.js';

export interface SiemConfig {
  enabled: boolean;
  host: string;
  port: number;
  /** The name the SIEM's certificate must carry (DNS name or IP). */
  name: string;
  caPem: string;
  clientCertPem: string | null;
  clientKeySealed: string | null;
  facility: number;
  updatedAt: string;
  updatedBy: string;
}

export interface SiemState {
  cursorRid: number;
  forwarded: number;
  state: string;
  lastError: string | null;
  lastErrorAt: string | null;
  lastOkAt: string | null;
  updatedAt: string | null;
}

interface ConfigRow {
  enabled: number;
  host: string;
  port: number;
  name: string;
  ca_pem: string;
  client_cert_pem: string | null;
  client_key_sealed: string | null;
  facility: number;
  updated_at: string;
  updated_by: string;
}

export function getConfig(db: Database.Database): SiemConfig | null {
  const r = db.prepare('SELECT * FROM siem_config WHERE id = 1').get() as ConfigRow | undefined;
  if (!r) return null;
  return {
    enabled: r.enabled === 1,
    host: r.host,
    port: r.port,
    name: r.name,
    caPem: r.ca_pem,
    clientCertPem: r.client_cert_pem,
    clientKeySealed: r.client_key_sealed,
    facility: r.facility,
    updatedAt: r.updated_at,
    updatedBy: r.updated_by,
  };
}

export function putConfig(db: Database.Database, c: SiemConfig): void {
  db.prepare(
    `INSERT INTO siem_config (id, enabled, host, port, name, ca_pem, client_cert_pem, client_key_sealed, facility, updated_at, updated_by)
     VALUES (1, @enabled, @host, @port, @name, @caPem, @clientCertPem, @clientKeySealed, @facility, @updatedAt, @updatedBy)
     ON CONFLICT (id) DO UPDATE SET enabled = excluded.enabled, host = excluded.host, port = excluded.port, name = excluded.name,
       ca_pem = excluded.ca_pem, client_cert_pem = excluded.client_cert_pem, client_key_sealed = excluded.client_key_sealed,
       facility = excluded.facility, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
  ).run({ ...c, enabled: c.enabled ? 1 : 0 });
}

export function disableConfig(db: Database.Database, at: string, by: string): boolean {
  return db.prepare('UPDATE siem_config SET enabled = 0, updated_at = ?, updated_by = ? WHERE id = 1 AND enabled = 1').run(at, by).changes > 0;
}

interface StateRow {
  cursor_rid: number;
  forwarded: number;
  state: string;
  last_error: string | null;
  last_error_at: string | null;
  last_ok_at: string | null;
  updated_at: string | null;
}

export function getState(db: Database.Database): SiemState {
  const r = db.prepare('SELECT * FROM siem_state WHERE id = 1').get() as StateRow;
  return { cursorRid: r.cursor_rid, forwarded: r.forwarded, state: r.state, lastError: r.last_error, lastErrorAt: r.last_error_at, lastOkAt: r.last_ok_at, updatedAt: r.updated_at };
}

/**
 * Moves the cursor forward (never back: a stale writer cannot rewind it) and adds what was forwarded.
 */
export function commitCursor(db: Database.Database, rid: number, count: number, at: string): void {
  db.prepare('UPDATE siem_state SET cursor_rid = max(cursor_rid, ?), forwarded = forwarded + ?, last_ok_at = ?, updated_at = ? WHERE id = 1').run(rid, count, at, at);
}

/** Moves the cursor back to `rid` if it is past it (a SIEM that failed may have dropped what it had not read). */
export function rewindCursor(db: Database.Database, rid: number, at: string): void {
  db.prepare('UPDATE siem_state SET cursor_rid = min(cursor_rid, ?), updated_at = ? WHERE id = 1').run(rid, at);
}

export function setStatus(db: Database.Database, state: string, error: string | null, at: string): void {
  if (error === null) db.prepare('UPDATE siem_state SET state = ?, updated_at = ? WHERE id = 1').run(state, at);
  else db.prepare('UPDATE siem_state SET state = ?, last_error = ?, last_error_at = ?, updated_at = ? WHERE id = 1').run(state, error.slice(0, 1024), at, at);
}

/** Events after the cursor (bounded). */
export function backlog(db: Database.Database, cursorRid: number): number {
  return (db.prepare('SELECT count(*) AS n FROM events WHERE rid > ?').get(cursorRid) as { n: number }).n;
}

/** A stored event row with its terminal's host name (null when no agents row matches). */
type BatchRow = StoredEventRow & { hostname: string | null };

/** The next events in stored order (rid), each with its terminal's host name. */
export function nextBatch(db: Database.Database, afterRid: number, limit: number): ForwardEvent[] {
  const rows = db
    .prepare(
      `SELECT e.rid, e.id, e.agent_id, e.seq, e.ts, e.type, e.severity, e.user, e.data, e.prev_hash, e.hash, e.terminal_id, e.chain, e.received_at, e.agent_ts,
              a.hostname AS hostname
         FROM events e LEFT JOIN agents a ON a.id = e.terminal_id
        WHERE e.rid > ? ORDER BY e.rid LIMIT ?`,
    )
    .all(afterRid, limit) as BatchRow[];
  return rows.map((r) => {
    let data: unknown;
    try {
      data = JSON.parse(r.data);
    } catch {
      data = r.data; // never lose an event over its data: forwarded as the stored text
    }
    return {
      rid: r.rid,
      id: r.id,
      agentId: r.agent_id,
      seq: r.seq,
      ts: r.ts,
      type: r.type,
      severity: r.severity,
      user: r.user,
      data,
      prevHash: r.prev_hash,
      hash: r.hash,
      terminalId: r.terminal_id,
      chain: r.chain,
      receivedAt: r.received_at,
      agentTs: r.agent_ts,
      hostname: r.hostname,
    };
  });
}
