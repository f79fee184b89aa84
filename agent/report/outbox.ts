/**
 * The agent's outbox: every event is chained and committed to SQLite (WAL, synchronous=FULL)
 * before emit() returns, and leaves only when the console acknowledged it. Several processes
 * may append to the same outbox (the service, `mfa-verify`, tests): the chain head is read and
 * advanced inside one write transaction.
 */
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { sqliteOptions } from '../../protocol/native.js';
import { chainEvent, defaultSeverity, genesisHash, type SekimoriEvent } from '../../protocol/events.js';
import type { NewEvent } from '../capability.js';

export interface DeadLetter {
  seq: number;
  reason: string;
}

export class Outbox {
  private readonly db: Database.Database;
  private readonly head: Database.Statement;
  private readonly setHead: Database.Statement;
  private readonly insert: Database.Statement;
  private readonly appendTx: Database.Transaction<(e: NewEvent, now: Date) => SekimoriEvent>;
  private listeners: (() => void)[] = [];
  /** Stamps `ts`. The service sets the console-corrected clock (see useClock); other writers use the local one. */
  private clock: () => Date = () => new Date();

  constructor(
    path: string,
    private readonly agentId: string,
  ) {
    this.db = new Database(path, sqliteOptions());
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 10000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, json TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS chain_head (one INTEGER PRIMARY KEY CHECK (one = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS dead_letter (seq INTEGER PRIMARY KEY, json TEXT NOT NULL, reason TEXT NOT NULL, at TEXT NOT NULL);
    `);
    this.head = this.db.prepare('SELECT seq, hash FROM chain_head WHERE one = 1');
    this.setHead = this.db.prepare('INSERT INTO chain_head (one, seq, hash) VALUES (1, ?, ?) ON CONFLICT (one) DO UPDATE SET seq = excluded.seq, hash = excluded.hash');
    this.insert = this.db.prepare('INSERT INTO outbox (seq, json) VALUES (?, ?)');
    this.appendTx = this.db.transaction((e: NewEvent, now: Date): SekimoriEvent => {
      const h = this.head.get() as { seq: number; hash: string } | undefined;
      const event = chainEvent(h?.hash ?? genesisHash(this.agentId), {
        id: randomUUID(),
        agentId: this.agentId,
        seq: (h?.seq ?? 0) + 1,
        ts: now.toISOString(),
        type: e.type,
        severity: e.severity ?? defaultSeverity(e.type),
        user: e.user ?? null,
        data: e.data,
      });
      this.insert.run(event.seq, JSON.stringify(event));
      this.setHead.run(event.seq, event.hash);
      return event;
    });
  }

  /**
   * Events are stamped with this clock from now on. The service passes the console's clock as
   * measured by heartbeats (local clock + offset; the local clock until the first heartbeat), so
   * a terminal whose clock is wrong still reports when things happened in the console's time, the
   * time exceptions and the console's lists use. The console re-stamps what is still implausible.
   */
  useClock(clock: () => Date): void {
    this.clock = clock;
  }

  /** Durable when it returns. `immediate` so concurrent writers queue instead of failing. */
  append(e: NewEvent, now = this.clock()): SekimoriEvent {
    const event = this.appendTx.immediate(e, now);
    for (const l of this.listeners) l();
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
    return out;
  }

  /** Deletes exactly the events the console acknowledged. */
  acknowledge(seqs: number[]): void {
    const del = this.db.prepare('DELETE FROM outbox WHERE seq = ?');
    this.db.transaction((list: number[]) => {
      for (const s of list) del.run(s);
    })(seqs);
  }

  /** Moves an event the console refuses for good out of the way — kept on disk, never dropped. */
  deadLetter(seq: number, reason: string): void {
    this.db.transaction(() => {
      this.db.prepare('INSERT OR REPLACE INTO dead_letter (seq, json, reason, at) SELECT seq, json, ?, ? FROM outbox WHERE seq = ?').run(reason, new Date().toISOString(), seq);
      this.db.prepare('DELETE FROM outbox WHERE seq = ?').run(seq);
    })();
  }

  depth(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n;
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
