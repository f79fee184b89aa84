/** Reading and writing the console's event store. */
import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import { CONSOLE_CHAIN_ID, chainEvent, defaultSeverity, genesisHash, type SekimoriEvent } from '../../protocol/events.js';
import type { ConsoleEventInput } from '../module.js';

export type ChainStatus = 'ok' | 'gap' | 'broken' | 'tampered';

export interface StoredEvent extends SekimoriEvent {
  terminalId: string;
  chain: ChainStatus;
  receivedAt: string;
  /**
   * The time the agent claimed, when the console did not trust it (before 2020, or more than
   * EVENT_FUTURE_TOLERANCE_MS after receipt): `ts` is then the receipt time. Null when `ts` is the
   * agent's own. The event's hash covers the claimed time: verify with signedEvent().
   */
  agentTs: string | null;
}

/** Earliest event time the console trusts from an agent. */
export const EVENT_EARLIEST_TS = '2020-01-01T00:00:00.000Z';
/** How far ahead of the console's clock an agent's event time may be (clock drift, not skew). */
export const EVENT_FUTURE_TOLERANCE_MS = 5 * 60_000;

/**
 * The time an event is stored and sorted under: the agent's claim when plausible, else the
 * console's receipt time. `claimed` has passed eventShapeErrors (fixed ISO format). An agent
 * behind the console's clock is trusted back to 2020: its events are late, not misplaced ahead.
 */
export function sortableTs(claimed: string, receivedAt: Date): { ts: string; agentTs: string | null } {
  return tsJudge(receivedAt)(claimed);
}

/**
 * sortableTs for one batch: the bounds are formatted once, and a claim is compared as text (the
 * fixed ISO format sorts like time), so ingest pays a few string comparisons per event.
 */
export function tsJudge(receivedAt: Date): (claimed: string) => { ts: string; agentTs: string | null } {
  const received = receivedAt.toISOString();
  const latest = new Date(receivedAt.getTime() + EVENT_FUTURE_TOLERANCE_MS).toISOString();
  return (claimed) => {
    // Date.parse also accepts "…T24:00" and "02-30" (they roll over): only canonical text is taken
    // as is. Fields within month 01-12, day 01-28, 00:00:00-23:59:59 are always a real instant.
    const [mo, d, h, mi, se] = [claimed.slice(5, 7), claimed.slice(8, 10), claimed.slice(11, 13), claimed.slice(14, 16), claimed.slice(17, 19)];
    const plain = mo >= '01' && mo <= '12' && d >= '01' && d <= '28' && h <= '23' && mi <= '59' && se <= '59';
    const t = plain ? 0 : Date.parse(claimed);
    const canonical = plain || (!Number.isNaN(t) && new Date(t).toISOString() === claimed);
    if (claimed >= EVENT_EARLIEST_TS && claimed <= latest && canonical) return { ts: claimed, agentTs: null };
    return { ts: received, agentTs: claimed };
  };
}

/** The event exactly as its agent signed it (claimed time restored): what hash checks recompute. */
export function signedEvent(e: StoredEvent): SekimoriEvent {
  return { id: e.id, agentId: e.agentId, seq: e.seq, ts: e.agentTs ?? e.ts, type: e.type, severity: e.severity, user: e.user, data: e.data, prevHash: e.prevHash, hash: e.hash };
}

/** One row of the console's `events` table, column for column (`chain` as the column holds it: text). */
export interface StoredEventRow {
  rid: number;
  id: string;
  agent_id: string;
  seq: number;
  ts: string;
  type: string;
  severity: string;
  user: string | null;
  data: string;
  prev_hash: string;
  hash: string;
  terminal_id: string;
  chain: string;
  received_at: string;
  agent_ts: string | null;
}

/** The columns rowToEvent reads: no rid, `chain` as ingest writes it, a missing `agent_ts` read as null. */
type EventRow = Omit<StoredEventRow, 'rid' | 'chain' | 'agent_ts'> & { chain: ChainStatus; agent_ts?: string | null };

export function rowToEvent(r: EventRow): StoredEvent {
  return {
    id: r.id,
    agentId: r.agent_id,
    seq: r.seq,
    ts: r.ts,
    type: r.type as SekimoriEvent['type'],
    severity: r.severity as SekimoriEvent['severity'],
    user: r.user,
    data: JSON.parse(r.data) as Record<string, unknown>,
    prevHash: r.prev_hash,
    hash: r.hash,
    terminalId: r.terminal_id,
    chain: r.chain,
    receivedAt: r.received_at,
    agentTs: r.agent_ts ?? null,
  };
}

/** One row for insertEventStatement: the event with its data as JSON text, and what the console adds. */
export interface EventInsert extends Omit<SekimoriEvent, 'data'> {
  data: string;
  terminalId: string;
  chain: ChainStatus;
  receivedAt: string;
  agentTs: string | null;
}

export function insertEventStatement(db: Database.Database): { run(row: EventInsert): Database.RunResult } {
  const insert = db.prepare(
    `INSERT OR IGNORE INTO events (id, agent_id, seq, ts, type, severity, user, data, prev_hash, hash, terminal_id, chain, received_at, agent_ts)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  // Bound by position: named parameters cost ≈ 1.5–2 µs more per row in better-sqlite3 (11.4 vs 13 µs
  // CPU per insert, 100,000 events of bench/ingest's mix) — ingest's hottest line.
  return { run: (r) => insert.run(r.id, r.agentId, r.seq, r.ts, r.type, r.severity, r.user ?? null, r.data, r.prevHash, r.hash, r.terminalId, r.chain, r.receivedAt, r.agentTs) };
}

/** Appends an event to the console's own chain (admin actions, silence and chain alerts). */
export function recordConsoleEvent(db: Database.Database, input: ConsoleEventInput, now = new Date()): SekimoriEvent {
  const write = db.transaction((): SekimoriEvent => {
    const head = db.prepare('SELECT seq, hash FROM events WHERE agent_id = ? ORDER BY seq DESC LIMIT 1').get(CONSOLE_CHAIN_ID) as
      | { seq: number; hash: string }
      | undefined;
    const e = chainEvent(head?.hash ?? genesisHash(CONSOLE_CHAIN_ID), {
      id: randomUUID(),
      agentId: CONSOLE_CHAIN_ID,
      seq: (head?.seq ?? 0) + 1,
      ts: now.toISOString(),
      type: input.type,
      severity: input.severity ?? defaultSeverity(input.type),
      user: input.user ?? null,
      data: input.data,
    });
    insertEventStatement(db).run({
      ...e,
      data: JSON.stringify(e.data),
      terminalId: input.terminalId ?? CONSOLE_CHAIN_ID,
      chain: 'ok',
      receivedAt: e.ts,
      agentTs: null,
    });
    return e;
  });
  return write();
}

export interface EventFilter {
  type?: string | undefined;
  terminalId?: string | undefined;
  user?: string | undefined;
  severity?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  limit?: number | undefined;
  afterRid?: number | undefined;
}

/**
 * SQL conditions for a filter (used by the CLI and the web console). A type ending in ".*" is a
 * prefix, turned into a range so the (type, ts) index serves it.
 */
export function eventWhere(f: EventFilter): { where: string[]; args: Record<string, unknown> } {
  const where: string[] = [];
  const args: Record<string, unknown> = {};
  if (f.type) {
    if (f.type.endsWith('.*')) {
      where.push('type >= @typeLo AND type < @typeHi');
      args.typeLo = f.type.slice(0, -1);
      args.typeHi = f.type.slice(0, -2) + '/';
    } else {
      where.push('type = @type');
      args.type = f.type;
    }
  }
  const equal = [
    ['terminal_id', 'terminalId', f.terminalId],
    ['user', 'user', f.user],
    ['severity', 'severity', f.severity],
  ] as const;
  for (const [column, name, value] of equal) {
    if (!value) continue;
    where.push(`${column} = @${name}`);
    args[name] = value;
  }
  if (f.since) {
    where.push('ts >= @since');
    args.since = f.since;
  }
  if (f.until) {
    where.push('ts < @until');
    args.until = f.until;
  }
  return { where, args };
}

/** Events oldest first (by time, then arrival). */
export function queryEvents(db: Database.Database, f: EventFilter): StoredEvent[] {
  const { where, args } = eventWhere(f);
  if (f.afterRid !== undefined) {
    where.push('rid > @afterRid');
    args.afterRid = f.afterRid;
  }
  const sql = `SELECT * FROM events ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY ts, rid LIMIT @limit`;
  args.limit = f.limit ?? 1_000_000;
  return (db.prepare(sql).all(args) as EventRow[]).map(rowToEvent);
}
