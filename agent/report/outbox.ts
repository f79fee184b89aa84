/**
 * The agent's outbox: every event is chained and committed to SQLite (WAL, synchronous=FULL)
 * before emit() returns, and leaves only when the console acknowledged it. Several processes
 * may append to the same outbox (the service, `mfa-verify`, tests): the chain head is read and
 * advanced inside one write transaction.
 *
 * Issue 17:
 * - a cap (events and JSON bytes) for a very long outage: over it, the least important events
 *   (protocol/importance.ts) are dropped oldest first, and an `agent.events_dropped` record — itself
 *   never dropped — says exactly which (seq ranges, each dropped event's hash, counts by type) so the
 *   console can bridge the hole in the chain. An important event is never dropped: with nothing
 *   droppable left, unimportant events are not appended (counted) and important ones still are.
 * - acknowledged events move to `delivered`, kept for a bounded time and size, so events a restored
 *   console lacks can be sent again (requeue()).
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { sqliteOptions } from '../../protocol/native.js';
import { chainEvent, defaultSeverity, genesisHash, type SekimoriEvent } from '../../protocol/events.js';
import { eventImportance, type Importance } from '../../protocol/importance.js';
import type { NewEvent } from '../capability.js';

export interface DeadLetter {
  seq: number;
  reason: string;
}

/** Most events and JSON bytes the outbox holds before dropping routine events (null: no cap). */
export interface OutboxCap {
  maxEvents: number;
  maxBytes: number;
}

/** How long and how much of what the console acknowledged is kept for a re-send. */
export interface DeliveredKeep {
  maxEvents: number;
  maxBytes: number;
  maxAgeMs: number;
}

export const DEFAULT_DELIVERED_KEEP: DeliveredKeep = { maxEvents: 50_000, maxBytes: 64 * 1024 * 1024, maxAgeMs: 24 * 3600_000 };

const MiB = 1024 * 1024;
/** Hashes per drop record: 256 × 67 bytes stays well inside the console's 32 KiB event data limit. */
export const DROP_RECORD_MAX_EVENTS = 256;
/** Most events re-queued for one console answer (the next answer asks for the rest). */
export const MAX_REQUEUE = 5_000;

/**
 * The default cap from the size of the filesystem holding the outbox: 2 % of it, between 16 MiB
 * and 1 GiB of event JSON, and one event per 512 bytes of that (10,000 .. 2,000,000 events). The
 * database file is about twice the JSON (indexes, WAL), plus the `delivered` keep.
 */
export function capFromDisk(totalBytes: number): OutboxCap {
  const t = Number.isFinite(totalBytes) && totalBytes > 0 ? totalBytes : 0;
  const maxBytes = Math.floor(Math.min(1024 * MiB, Math.max(16 * MiB, t * 0.02)));
  const maxEvents = Math.floor(Math.min(2_000_000, Math.max(10_000, maxBytes / 512)));
  return { maxEvents, maxBytes };
}

/** A cap as configured in STATE/outbox-cap.json ({"maxEvents": N, "maxBytes": B}); null when malformed. */
export function parseCap(x: unknown): OutboxCap | null {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return null;
  const o = x as Record<string, unknown>;
  const ok = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (!ok(o.maxEvents) || !ok(o.maxBytes) || Object.keys(o).some((k) => k !== 'maxEvents' && k !== 'maxBytes')) return null;
  return { maxEvents: o.maxEvents, maxBytes: o.maxBytes };
}

/** The cap for an outbox at `path`: STATE/outbox-cap.json when present and well-formed, else from the disk. */
export function defaultCap(path: string): OutboxCap {
  const file = join(dirname(path), 'outbox-cap.json');
  if (existsSync(file)) {
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      parsed = null;
    }
    const c = parseCap(parsed);
    // A malformed file must not lift the cap nor drop evidence: fall back to the disk default.
    if (c) return c;
  }
  try {
    const s = statfsSync(dirname(path));
    return capFromDisk(Number(s.blocks) * Number(s.bsize));
  } catch {
    return capFromDisk(0);
  }
}

/** One dropped event as the drop record lists it. */
interface Dropped {
  seq: number;
  hash: string;
  type: string;
  bytes: number;
}

/** Contiguous seq runs of a sorted list. */
export function seqRanges(seqs: readonly number[]): { from: number; to: number }[] {
  const out: { from: number; to: number }[] = [];
  for (const s of seqs) {
    const last = out[out.length - 1];
    if (last && s === last.to + 1) last.to = s;
    else out.push({ from: s, to: s });
  }
  return out;
}

/**
 * The data of the drop records for `dropped` (sorted by seq): one record per DROP_RECORD_MAX_EVENTS,
 * each with its ranges, the hash of every dropped event in range order, and counts by type. Pure.
 */
export function dropRecords(dropped: readonly Dropped[], cap: OutboxCap, notAppended: Record<string, number> | null): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (let i = 0; i < dropped.length; i += DROP_RECORD_MAX_EVENTS) {
    const chunk = dropped.slice(i, i + DROP_RECORD_MAX_EVENTS);
    const byType: Record<string, number> = {};
    let bytes = 0;
    for (const d of chunk) {
      byType[d.type] = (byType[d.type] ?? 0) + 1;
      bytes += d.bytes;
    }
    out.push({
      ranges: seqRanges(chunk.map((d) => d.seq)),
      hashes: chunk.map((d) => d.hash),
      byType,
      events: chunk.length,
      bytes,
      cap: { maxEvents: cap.maxEvents, maxBytes: cap.maxBytes },
      ...(i === 0 && notAppended && Object.keys(notAppended).length ? { notAppended } : {}),
    });
  }
  return out;
}

export interface OutboxOptions {
  /** null: no cap (tests of other things); default: defaultCap(path). */
  cap?: OutboxCap | null;
  delivered?: DeliveredKeep;
}

export class Outbox {
  private readonly db: Database.Database;
  private readonly head: Database.Statement;
  private readonly setHead: Database.Statement;
  private readonly insert: Database.Statement;
  private readonly stats: Database.Statement;
  private readonly appendTx: Database.Transaction<(e: NewEvent, now: Date) => SekimoriEvent>;
  private listeners: (() => void)[] = [];
  /** Stamps `ts`. The service sets the console-corrected clock (see useClock); other writers use the local one. */
  private clock: () => Date = () => new Date();
  readonly cap: OutboxCap | null;
  readonly keep: DeliveredKeep;

  constructor(
    path: string,
    private readonly agentId: string,
    options: OutboxOptions = {},
  ) {
    this.cap = options.cap === undefined ? defaultCap(path) : options.cap;
    this.keep = options.delivered ?? DEFAULT_DELIVERED_KEEP;
    this.db = new Database(path, sqliteOptions());
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 10000');
    // 512 KiB of page cache instead of SQLite's 2 MiB: the outbox is written and read in order, and
    // the idle agent's memory budget is 80 MB (bench/agent-footprint).
    this.db.pragma('cache_size = -512');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, json TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS chain_head (one INTEGER PRIMARY KEY CHECK (one = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS dead_letter (seq INTEGER PRIMARY KEY, json TEXT NOT NULL, reason TEXT NOT NULL, at TEXT NOT NULL);
    `);
    // Issue 17 tables, added to outboxes of earlier versions in one transaction: rows already queued
    // count as evidence (importance 2) — what they were is not re-judged, so nothing old is dropped.
    this.db.transaction(() => {
      const cols = (this.db.prepare('PRAGMA table_info(outbox)').all() as { name: string }[]).map((c) => c.name);
      if (!cols.includes('importance')) this.db.exec('ALTER TABLE outbox ADD COLUMN importance INTEGER NOT NULL DEFAULT 2');
      this.db.exec(`
        CREATE INDEX IF NOT EXISTS outbox_droppable ON outbox (importance, seq) WHERE importance < 2;
        CREATE TABLE IF NOT EXISTS outbox_stats (one INTEGER PRIMARY KEY CHECK (one = 1), events INTEGER NOT NULL, bytes INTEGER NOT NULL);
        INSERT OR IGNORE INTO outbox_stats SELECT 1, count(*), coalesce(sum(length(CAST(json AS BLOB))), 0) FROM outbox;
        CREATE TRIGGER IF NOT EXISTS outbox_stats_ins AFTER INSERT ON outbox BEGIN
          UPDATE outbox_stats SET events = events + 1, bytes = bytes + length(CAST(NEW.json AS BLOB)) WHERE one = 1; END;
        CREATE TRIGGER IF NOT EXISTS outbox_stats_del AFTER DELETE ON outbox BEGIN
          UPDATE outbox_stats SET events = events - 1, bytes = bytes - length(CAST(OLD.json AS BLOB)) WHERE one = 1; END;
        CREATE TABLE IF NOT EXISTS outbox_refused (type TEXT PRIMARY KEY, count INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS delivered (seq INTEGER PRIMARY KEY, json TEXT NOT NULL, importance INTEGER NOT NULL, at INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS delivered_at ON delivered (at);
        CREATE TABLE IF NOT EXISTS delivered_stats (one INTEGER PRIMARY KEY CHECK (one = 1), events INTEGER NOT NULL, bytes INTEGER NOT NULL);
        INSERT OR IGNORE INTO delivered_stats SELECT 1, count(*), coalesce(sum(length(CAST(json AS BLOB))), 0) FROM delivered;
        CREATE TRIGGER IF NOT EXISTS delivered_stats_ins AFTER INSERT ON delivered BEGIN
          UPDATE delivered_stats SET events = events + 1, bytes = bytes + length(CAST(NEW.json AS BLOB)) WHERE one = 1; END;
        CREATE TRIGGER IF NOT EXISTS delivered_stats_del AFTER DELETE ON delivered BEGIN
          UPDATE delivered_stats SET events = events - 1, bytes = bytes - length(CAST(OLD.json AS BLOB)) WHERE one = 1; END;
      `);
    }).immediate();
    this.head = this.db.prepare('SELECT seq, hash FROM chain_head WHERE one = 1');
    this.setHead = this.db.prepare('INSERT INTO chain_head (one, seq, hash) VALUES (1, ?, ?) ON CONFLICT (one) DO UPDATE SET seq = excluded.seq, hash = excluded.hash');
    this.insert = this.db.prepare('INSERT INTO outbox (seq, json, importance) VALUES (?, ?, ?)');
    this.stats = this.db.prepare('SELECT events, bytes FROM outbox_stats WHERE one = 1');
    const chainAppend = (e: NewEvent, now: Date): SekimoriEvent => {
      const h = this.head.get() as { seq: number; hash: string } | undefined;
      const severity = e.severity ?? defaultSeverity(e.type);
      const event = chainEvent(h?.hash ?? genesisHash(this.agentId), {
        id: randomUUID(),
        agentId: this.agentId,
        seq: (h?.seq ?? 0) + 1,
        ts: now.toISOString(),
        type: e.type,
        severity,
        user: e.user ?? null,
        data: e.data,
      });
      this.insert.run(event.seq, JSON.stringify(event), eventImportance(e.type, severity));
      this.setHead.run(event.seq, event.hash);
      return event;
    };
    const refuse = this.db.prepare('INSERT INTO outbox_refused (type, count) VALUES (?, 1) ON CONFLICT (type) DO UPDATE SET count = count + 1');
    this.appendTx = this.db.transaction((e: NewEvent, now: Date): SekimoriEvent => {
      const cap = this.cap;
      if (cap) {
        const severity = e.severity ?? defaultSeverity(e.type);
        const rank = eventImportance(e.type, severity);
        // The event's size before it is chained: its data plus the fixed members (~400 bytes).
        const size = Buffer.byteLength(JSON.stringify(e.data ?? {})) + 400;
        if (this.over(cap, 1, size)) {
          // Drop down to 90 % of the cap, so drops (and their records) come in chunks, not one per event.
          // Only events less important than or as important as this one; evidence never.
          const dropped = this.dropDown(cap, rank === 2 ? 1 : rank, size);
          if (dropped.length > 0) {
            for (const data of dropRecords(dropped, cap, this.takeRefused())) chainAppend({ type: 'agent.events_dropped', data } as NewEvent, now);
          }
          if (rank < 2 && this.over(cap, 1, size)) {
            // Nothing less important left to drop: this routine event is not appended (counted for the next record).
            refuse.run(e.type);
            return { id: '', agentId: this.agentId, seq: 0, ts: now.toISOString(), type: e.type, severity, user: e.user ?? null, data: e.data, prevHash: '', hash: '' };
          }
        }
      }
      return chainAppend(e, now);
    });
  }

  private over(cap: OutboxCap, addEvents: number, addBytes: number): boolean {
    const s = this.stats.get() as { events: number; bytes: number };
    return s.events + addEvents > cap.maxEvents || s.bytes + addBytes > cap.maxBytes;
  }

  /** Deletes the least important events (rank ≤ maxRank), oldest first, until 90 % of the cap has room for `size`. */
  private dropDown(cap: OutboxCap, maxRank: Importance, size: number): Dropped[] {
    const targetEvents = Math.max(0, Math.floor(cap.maxEvents * 0.9) - 1);
    const targetBytes = Math.max(0, Math.floor(cap.maxBytes * 0.9) - size);
    const pick = this.db.prepare('SELECT seq, json FROM outbox WHERE importance = ? AND seq > ? ORDER BY seq LIMIT 500');
    const del = this.db.prepare('DELETE FROM outbox WHERE seq = ?');
    const out: Dropped[] = [];
    let { events, bytes } = this.stats.get() as { events: number; bytes: number };
    for (let rank = 0; rank <= maxRank; rank++) {
      let after = 0;
      // Bounded: each round deletes up to 500 rows of a finite table, or ends.
      for (;;) {
        if (events <= targetEvents && bytes <= targetBytes) break;
        const rows = pick.all(rank, after) as { seq: number; json: string }[];
        if (rows.length === 0) break;
        for (const r of rows) {
          if (events <= targetEvents && bytes <= targetBytes) break;
          const e = JSON.parse(r.json) as SekimoriEvent;
          const b = Buffer.byteLength(r.json);
          del.run(r.seq);
          out.push({ seq: r.seq, hash: e.hash, type: e.type, bytes: b });
          events--;
          bytes -= b;
          after = r.seq;
        }
      }
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  private takeRefused(): Record<string, number> | null {
    const rows = this.db.prepare('SELECT type, count FROM outbox_refused ORDER BY type').all() as { type: string; count: number }[];
    if (rows.length === 0) return null;
    this.db.prepare('DELETE FROM outbox_refused').run();
    return Object.fromEntries(rows.map((r) => [r.type, r.count]));
  }

  /**
   * Events stamped with this clock from now on. The service passes the console's clock as
   * measured by heartbeats (local clock + offset; the local clock until the first heartbeat), so
   * a terminal whose clock is wrong still reports when things happened in the console's time, the
   * time exceptions and the console's lists use. The console re-stamps what is still implausible.
   */
  useClock(clock: () => Date): void {
    this.clock = clock;
  }

  /**
   * Durable when it returns. `immediate` so concurrent writers queue instead of failing. A routine
   * event refused because the outbox is at its cap with nothing less important to drop comes back
   * with seq 0 (not appended; counted in the next drop record).
   */
  append(e: NewEvent, now = this.clock()): SekimoriEvent {
    const event = this.appendTx.immediate(e, now);
    if (event.seq > 0) for (const l of this.listeners) l();
    return event;
  }

  onAppend(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Oldest pending events, at most `limit` and about `maxBytes` of JSON. */
  pending(limit: number, maxBytes = 4 * 1024 * 1024): SekimoriEvent[] {
    const rows = this.db.prepare('SELECT json FROM outbox ORDER BY seq LIMIT ?').all(limit) as { json: string }[];
    const out: SekimoriEvent[] = [];
    let bytes = 0;
    for (const r of rows) {
      bytes += r.json.length;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(JSON.parse(r.json) as SekimoriEvent);
    }
    // Drop records of one drop travel together: one run of dropped seqs may continue in the next
    // record, and the console bridges it only when it sees both (at most 64 more, far below the batch limit).
    const last = out[out.length - 1];
    if (last?.type === 'agent.events_dropped') {
      const more = this.db.prepare('SELECT json FROM outbox WHERE seq > ? ORDER BY seq LIMIT 64').all(last.seq) as { json: string }[];
      for (const r of more) {
        const e = JSON.parse(r.json) as SekimoriEvent;
        if (e.type !== 'agent.events_dropped') break;
        out.push(e);
      }
    }
    return out;
  }

  /** Moves exactly the events the console acknowledged to `delivered` (kept for a re-send), then trims that keep. */
  acknowledge(seqs: number[], now = Date.now()): void {
    // An upsert, not OR REPLACE: a REPLACE deletion fires no trigger, and delivered_stats would drift.
    const keep = this.db.prepare('INSERT INTO delivered (seq, json, importance, at) SELECT seq, json, importance, ? FROM outbox WHERE seq = ? ON CONFLICT (seq) DO UPDATE SET at = excluded.at');
    const del = this.db.prepare('DELETE FROM outbox WHERE seq = ?');
    this.db.transaction((list: number[]) => {
      for (const s of list) {
        keep.run(now, s);
        del.run(s);
      }
      this.trimDelivered(now);
    })(seqs);
  }

  /** The keep's bounds: age, then count and bytes (oldest first). */
  private trimDelivered(now: number): void {
    const k = this.keep;
    this.db.prepare('DELETE FROM delivered WHERE at < ?').run(now - k.maxAgeMs);
    const st = this.db.prepare('SELECT events, bytes FROM delivered_stats WHERE one = 1');
    let s = st.get() as { events: number; bytes: number };
    if (s.events > k.maxEvents) {
      this.db.prepare('DELETE FROM delivered WHERE seq IN (SELECT seq FROM delivered ORDER BY seq LIMIT ?)').run(s.events - k.maxEvents);
      s = st.get() as { events: number; bytes: number };
    }
    // Bounded: each round deletes at least one row (1,000 at a time) of a finite table.
    while (s.bytes > k.maxBytes && s.events > 0) {
      this.db.prepare('DELETE FROM delivered WHERE seq IN (SELECT seq FROM delivered ORDER BY seq LIMIT 1000)').run();
      s = st.get() as { events: number; bytes: number };
    }
  }

  /**
   * Puts delivered events back in the outbox (original JSON, unchanged): those in `ranges` (what the
   * console says it lacks) and those above `above` (the console's head). Returns how many were
   * re-queued (at most MAX_REQUEUE per call). Events already trimmed from the keep cannot come back.
   */
  requeue(ranges: readonly { from: number; to: number }[], above: number | null): number {
    const put = this.db.prepare('INSERT OR IGNORE INTO outbox (seq, json, importance) SELECT seq, json, importance FROM delivered WHERE seq BETWEEN ? AND ? ORDER BY seq LIMIT ?');
    const n = this.db.transaction(() => {
      let total = 0;
      const all = [...ranges.filter((r) => Number.isSafeInteger(r.from) && Number.isSafeInteger(r.to) && r.from <= r.to)];
      if (above !== null && Number.isSafeInteger(above) && above >= 0 && above < Number.MAX_SAFE_INTEGER) all.push({ from: above + 1, to: Number.MAX_SAFE_INTEGER });
      for (const r of all) {
        if (total >= MAX_REQUEUE) break;
        total += put.run(r.from, r.to, MAX_REQUEUE - total).changes;
      }
      return total;
    }).immediate();
    if (n > 0) for (const l of this.listeners) l();
    return n;
  }

  /** Highest seq kept in `delivered` (0: none). */
  lastDelivered(): number {
    return (this.db.prepare('SELECT max(seq) AS s FROM delivered').get() as { s: number | null }).s ?? 0;
  }

  deliveredCount(): number {
    return (this.db.prepare('SELECT events FROM delivered_stats WHERE one = 1').get() as { events: number }).events;
  }

  /** Moves an event the console refuses for good out of the way — kept on disk, never dropped. */
  deadLetter(seq: number, reason: string): void {
    this.db.transaction(() => {
      this.db.prepare('INSERT OR REPLACE INTO dead_letter (seq, json, reason, at) SELECT seq, json, ?, ? FROM outbox WHERE seq = ?').run(reason, new Date().toISOString(), seq);
      this.db.prepare('DELETE FROM outbox WHERE seq = ?').run(seq);
    })();
  }

  depth(): number {
    return (this.stats.get() as { events: number }).events;
  }

  /** JSON bytes waiting (what the byte cap counts). */
  bytes(): number {
    return (this.stats.get() as { bytes: number }).bytes;
  }

  deadLetters(): DeadLetter[] {
    return this.db.prepare('SELECT seq, reason FROM dead_letter ORDER BY seq').all() as DeadLetter[];
  }

  lastSeq(): number {
    return (this.head.get() as { seq: number } | undefined)?.seq ?? 0;
  }

  close(): void {
    this.db.close();
  }
}
