/**
 * Idempotent event ingestion with per-agent hash-chain checking.
 * A batch is checked whole before anything is written, and written in one transaction:
 * either every event is held (new or already held) and acknowledged, or nothing changes.
 */
import type Database from 'better-sqlite3';
import { genesisHash, type SekimoriEvent } from '../../protocol/events.js';
import { MAX_MISSING_RANGES, type ResendHint, type UploadResponse } from '../../protocol/api.js';
import { eventDataValid, readEventData } from '../../protocol/event-data.js';
import { HttpError } from '../module.js';
import { insertEventStatement, recordConsoleEvent, tsJudge, type ChainStatus } from '../core/events.js';
import type { WalSync } from '../core/wal-sync.js';
import { checkEvents, type CheckedEvent } from './batch-check.js';

/** What ingest takes: events as an agent sent them (checked here), or a batch batch-check.ts already checked. */
export type IngestInput = readonly SekimoriEvent[] | { readonly checked: readonly CheckedEvent[] };

/** An event stored although its data does not match its type's declaration (protocol/event-data.ts). */
export interface DataFinding {
  seq: number;
  type: string;
  errors: string[];
}

/**
 * Events whose data does not match its declaration: stored all the same (no event is ever lost;
 * the data is what the agent signed), marked in event_data_invalid, and reported. The batch check
 * explains the first few such events in full (batch-check.ts EXPLAINED_PER_BATCH); the rest are counted.
 */
export function dataFindings(events: readonly CheckedEvent[]): DataFinding[] {
  const out: DataFinding[] = [];
  for (const e of events) if (e.dataErrors !== null) out.push({ seq: e.seq, type: e.type, errors: e.dataErrors.slice(0, 8) });
  return out;
}

/** An event stored under the console's receipt time because its claimed time was implausible. */
export interface SkewedEvent {
  seq: number;
  claimed: string;
  received: string;
}

/** What one batch did: the agent's answer, and the clock and data findings the route reports. */
export interface IngestResult {
  response: UploadResponse;
  skewed: SkewedEvent[];
  /** Newly stored events whose data does not match its declaration (the first one explained). */
  invalidData: DataFinding[];
}

/**
 * The mark on an event whose data did not match its type's declaration when it arrived (the
 * events row itself is what the agent signed and stays as it is). Created here, beside the one
 * writer, so the mark exists wherever ingest runs.
 */
export const EVENT_DATA_INVALID_TABLE = `CREATE TABLE IF NOT EXISTS event_data_invalid (
  agent_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  errors TEXT NOT NULL,
  PRIMARY KEY (agent_id, seq)
)`;

/** Whether a stored event was marked on arrival, and why (empty errors: counted, not explained). */
export function eventDataMark(db: Database.Database, agentId: string, seq: number): { errors: string[] } | null {
  const has = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'event_data_invalid'").get();
  if (!has) return null;
  const r = db.prepare('SELECT errors FROM event_data_invalid WHERE agent_id = ? AND seq = ?').get(agentId, seq) as { errors: string } | undefined;
  return r ? { errors: JSON.parse(r.errors) as string[] } : null;
}

interface Head {
  last_seq: number;
  last_hash: string | null;
}

/**
 * Holes an agent's drop record (agent.events_dropped, issue 17) claims to explain, and the verdict:
 * 'accounted' when the record bridges the chain (the event after each hole links to the claimed
 * hash of the last dropped event, no held event contradicts it), 'unverified' otherwise — an
 * unverified claim never closes a gap. Beside the one writer, like event_data_invalid.
 */
export const CHAIN_DROPS_TABLE = `CREATE TABLE IF NOT EXISTS chain_drops (
  agent_id TEXT NOT NULL,
  record_seq INTEGER NOT NULL,
  from_seq INTEGER NOT NULL,
  to_seq INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('accounted','unverified')),
  detail TEXT NOT NULL,
  at TEXT NOT NULL,
  PRIMARY KEY (agent_id, record_seq, from_seq)
)`;

/** Open gap findings of an agent (chain_gaps rows not yet filled nor accounted for), oldest first. */
export function openGaps(db: Database.Database, agentId: string, limit = 1000): { from: number; to: number }[] {
  return db.prepare('SELECT from_seq AS "from", to_seq AS "to" FROM chain_gaps WHERE agent_id = ? ORDER BY from_seq LIMIT ?').all(agentId, limit) as { from: number; to: number }[];
}

/** What the console lacks of an agent's chain: the answer the agent re-sends from (protocol/api.ts ResendHint). */
export function resendHint(gaps: readonly { from: number; to: number }[], headSeq: number): Required<ResendHint> {
  const first = gaps[0];
  return { headSeq, lastContiguousSeq: first ? first.from - 1 : headSeq, missing: gaps.slice(0, MAX_MISSING_RANGES).map((g) => ({ from: g.from, to: g.to })) };
}

/** What the console knows of one seq of the agent: the held event's hashes, or that a drop record claims it. */
export type SeqFact = { held: { hash: string; prevHash: string } } | { claimed: true } | null;

/**
 * Judges a drop record (pure; lookups passed in). Accepted only when it claims no more than it
 * could: ranges in order, before the record itself, as many hashes as seqs (≤ 256 by its schema,
 * so no range can be absurd), no held event with another hash — and when every hole bridges: the
 * event after it links to the claimed hash of its last dropped event (or another drop record of
 * the same batch or before claims that seq, the bridge continuing there).
 */
export function judgeDrop(record: Pick<SekimoriEvent, 'seq' | 'prevHash'> & { data: unknown }, fact: (seq: number) => SeqFact): { ok: true; ranges: { from: number; to: number }[]; events: number } | { ok: false; ranges: { from: number; to: number }[]; events: number; detail: string } {
  const d = readEventData('agent.events_dropped', record.data);
  if (!d || !eventDataValid('agent.events_dropped', record.data)) return { ok: false, ranges: [], events: 0, detail: 'malformed drop record' };
  const ranges = d.ranges.map((r) => ({ from: r.from, to: r.to }));
  const fail = (detail: string) => ({ ok: false as const, ranges, events: d.events, detail });
  let count = 0;
  let prevTo = 0;
  for (const r of ranges) {
    if (r.from < 1 || r.from > r.to || r.from <= prevTo) return fail(`ranges out of order at ${r.from}..${r.to}`);
    if (r.to >= record.seq) return fail(`claims #${r.to}, not before the record #${record.seq}`);
    count += r.to - r.from + 1;
    if (count > d.hashes.length) return fail(`claims more seqs than hashes (${d.hashes.length})`);
    prevTo = r.to;
  }
  if (count !== d.hashes.length || count !== d.events) return fail(`claims ${count} seqs, ${d.hashes.length} hashes, ${d.events} events`);
  let i = 0;
  for (const r of ranges) {
    for (let seq = r.from; seq <= r.to; seq++, i++) {
      const f = fact(seq);
      // Held with the same hash: dropped while already on its way (delivered all the same) — consistent.
      if (f && 'held' in f && f.held.hash !== d.hashes[i]) return fail(`claims #${seq}, which the console holds with another hash`);
    }
    const last = d.hashes[i - 1]!;
    const next = r.to + 1;
    if (next === record.seq) {
      if (record.prevHash !== last) return fail(`does not bridge to #${next}`);
      continue;
    }
    const f = fact(next);
    if (f === null) return fail(`does not bridge: #${next} is not held`);
    if ('held' in f && f.held.prevHash !== last) return fail(`does not bridge: #${next} links to another hash`);
  }
  return { ok: true, ranges, events: count };
}

export function createIngester(db: Database.Database) {
  db.exec(EVENT_DATA_INVALID_TABLE);
  db.exec(CHAIN_DROPS_TABLE);
  const gapsOver = db.prepare('SELECT from_seq, to_seq FROM chain_gaps WHERE agent_id = ? AND from_seq <= ? AND to_seq >= ?');
  const delGap = db.prepare('DELETE FROM chain_gaps WHERE agent_id = ? AND from_seq = ?');
  const openGapsOf = db.prepare('SELECT from_seq AS "from", to_seq AS "to" FROM chain_gaps WHERE agent_id = ? ORDER BY from_seq LIMIT ?');
  const heldAt = db.prepare('SELECT hash, prev_hash FROM events WHERE agent_id = ? AND seq = ?');
  const claimedAt = db.prepare('SELECT 1 FROM chain_drops WHERE agent_id = ? AND from_seq <= ? AND to_seq >= ? AND status = \'accounted\' LIMIT 1');
  const addDrop = db.prepare('INSERT OR IGNORE INTO chain_drops (agent_id, record_seq, from_seq, to_seq, status, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const relink = db.prepare("UPDATE events SET chain = 'ok' WHERE agent_id = ? AND seq = ? AND chain = 'gap' AND prev_hash = ?");

  /** Removes [a, b] from the agent's open gaps; how many gap rows it touched, and closed completely. */
  const closeRange = (agentId: string, a: number, b: number, now: string): { touched: number; closed: number } => {
    let closed = 0;
    const rows = gapsOver.all(agentId, b, a) as { from_seq: number; to_seq: number }[];
    for (const g of rows) {
      delGap.run(agentId, g.from_seq);
      if (g.from_seq < a) addGap.run(agentId, g.from_seq, a - 1, now);
      if (g.to_seq > b) addGap.run(agentId, b + 1, g.to_seq, now);
      if (g.from_seq >= a && g.to_seq <= b) closed++;
    }
    return { touched: rows.length, closed };
  };
  const insert = insertEventStatement(db);
  const markInvalid = db.prepare('INSERT OR IGNORE INTO event_data_invalid (agent_id, seq, type, errors) VALUES (?, ?, ?, ?)');
  const existing = db.prepare('SELECT id, hash FROM events WHERE agent_id = ? AND seq = ?');
  const prevHashOf = db.prepare('SELECT hash FROM events WHERE agent_id = ? AND seq = ?');
  // Retention (console/retention) deletes archived events but keeps a hash-only stub of each in
  // chain_base: the chain still links across them, and a re-sent archived event is a duplicate.
  const chainBase = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'chain_base'").get()
    ? db.prepare('SELECT hash FROM chain_base WHERE agent_id = ? AND seq = ?')
    : null;
  const head = db.prepare('SELECT last_seq, last_hash FROM agents WHERE id = ?');
  const setHead = db.prepare('UPDATE agents SET last_seq = ?, last_hash = ? WHERE id = ?');
  const addGap = db.prepare('INSERT OR IGNORE INTO chain_gaps (agent_id, from_seq, to_seq, detected_at) VALUES (?, ?, ?, ?)');
  const setStatus = db.prepare("UPDATE agents SET status = ? WHERE id = ? AND status != 'revoked'");

  const ingest = db.transaction((agentId: string, events: readonly CheckedEvent[], received: Date): IngestResult => {
    const now = received.toISOString();
    const sortable = tsJudge(received);
    const skewed: SkewedEvent[] = [];
    const h = head.get(agentId) as Head;
    let lastSeq = h.last_seq;
    let lastHash = h.last_hash;
    let stored = 0;
    let duplicates = 0;
    const fresh: CheckedEvent[] = [];
    const findings: { kind: 'gap' | 'broken' | 'tampered'; seq: number; detail: string }[] = [];
    // Issue 17: events below the head that were not held (a re-send fills a hole), and drop records.
    const fills: CheckedEvent[] = [];
    const drops: CheckedEvent[] = [];
    for (const e of events) {
      const archived = chainBase && e.seq <= lastSeq ? (chainBase.get(agentId, e.seq) as { hash: string } | undefined) : undefined;
      if (archived) {
        if (archived.hash === e.hash) {
          duplicates++;
          continue;
        }
        throw new HttpError(409, 'seq_conflict', `seq ${e.seq} is already held (archived) with different content; batch refused, nothing stored`);
      }
      // Judge the link to the previous event: the one just stored, or the stored (or archived) one before it.
      const expectedPrev =
        e.seq === 1
          ? genesisHash(agentId)
          : e.seq === lastSeq + 1
            ? lastHash
            : ((prevHashOf.get(agentId, e.seq - 1) as { hash: string } | undefined)?.hash ?? (chainBase?.get(agentId, e.seq - 1) as { hash: string } | undefined)?.hash ?? null);
      let finding: { kind: 'gap' | 'broken' | 'tampered'; seq: number; detail: string } | null = null;
      let chain: ChainStatus = 'ok';
      if (!e.hashOk) {
        chain = 'tampered';
        finding = { kind: 'tampered', seq: e.seq, detail: 'hash does not match the event content' };
      } else if (expectedPrev === null) {
        chain = 'gap';
        if (e.seq > lastSeq + 1) finding = { kind: 'gap', seq: e.seq, detail: `events ${lastSeq + 1}..${e.seq - 1} never arrived` };
      } else if (expectedPrev !== e.prevHash) {
        chain = 'broken';
        finding = { kind: 'broken', seq: e.seq, detail: 'prevHash does not match the previous event' };
      }
      // The claimed ts is what the hash covers (checked above, kept in agent_ts); the stored ts may be ours.
      const when = sortable(e.ts);
      const r = insert.run({ id: e.id, agentId: e.agentId, seq: e.seq, ts: when.ts, type: e.type, severity: e.severity, user: e.user, data: e.dataJson, prevHash: e.prevHash, hash: e.hash, terminalId: agentId, chain, receivedAt: now, agentTs: when.agentTs });
      if (r.changes === 0) {
        // (agent, seq) already held: a retry is fine, different content is not.
        const dup = existing.get(agentId, e.seq) as { id: string; hash: string };
        if (dup.id === e.id && dup.hash === e.hash) {
          duplicates++;
          continue;
        }
        throw new HttpError(409, 'seq_conflict', `seq ${e.seq} is already held with different content; batch refused, nothing stored`);
      }
      stored++;
      fresh.push(e);
      if (e.seq < lastSeq) fills.push(e);
      if (e.type === 'agent.events_dropped') drops.push(e);
      if (when.agentTs !== null) skewed.push({ seq: e.seq, claimed: when.agentTs, received: now });
      if (finding) {
        findings.push(finding);
        if (finding.kind === 'gap') addGap.run(agentId, lastSeq + 1, e.seq - 1, now);
      }
      if (e.type === 'agent.stopped') setStatus.run('offline', agentId);
      else if (e.type === 'agent.started') setStatus.run('online', agentId);
      if (e.seq > lastSeq) {
        lastSeq = e.seq;
        lastHash = e.hash;
      }
    }
    setHead.run(lastSeq, lastHash, agentId);
    const delivery = fills.length || drops.length ? settleHoles(agentId, fills, drops, now) : [];
    const invalidData = dataFindings(fresh);
    for (const f of invalidData) markInvalid.run(agentId, f.seq, f.type, JSON.stringify(f.errors));
    for (const f of findings) {
      recordConsoleEvent(db, {
        type: f.kind === 'gap' ? 'agent.gap' : 'agent.chain_broken',
        terminalId: agentId,
        data: { agentId, seq: f.seq, finding: f.kind, detail: f.detail },
      });
    }
    for (const c of delivery) recordConsoleEvent(db, c);
    const hint = resendHint(openGapsOf.all(agentId, MAX_MISSING_RANGES) as { from: number; to: number }[], lastSeq);
    return { response: { acked: events.map((e) => e.seq), stored, duplicates, ...hint }, skewed, invalidData };
  });

  /**
   * Fills close the gap rows they cover (and re-link the event after each filled seq); drop records
   * are judged and, when they bridge, close the holes they explain. Returns the console events to record.
   */
  const settleHoles = (agentId: string, fills: CheckedEvent[], checkedDrops: CheckedEvent[], now: string) => {
    const out: Parameters<typeof recordConsoleEvent>[1][] = [];
    const sorted = fills.map((e) => e.seq).sort((a, b) => a - b);
    for (const e of fills) relink.run(agentId, e.seq + 1, e.hash);
    for (const r of seqRangesOf(sorted)) {
      const { touched, closed } = closeRange(agentId, r.from, r.to, now);
      // A late event that fills no recorded gap (none was open there) is not news.
      if (touched > 0) out.push({ type: 'agent.gap_filled', terminalId: agentId, data: { agentId, from: r.from, to: r.to, events: r.to - r.from + 1, closesGaps: closed } });
    }
    // Seqs claimed by the drop records of this batch: one drop's run may continue in the next record.
    const drops = checkedDrops.map((d) => ({ seq: d.seq, prevHash: d.prevHash, data: JSON.parse(d.dataJson) as unknown }));
    const claimedInBatch = new Set<number>();
    for (const d of drops) {
      const data = readEventData('agent.events_dropped', d.data);
      for (const r of data?.ranges ?? []) for (let s = r.from; s <= r.to && s - r.from < 256; s++) claimedInBatch.add(s);
    }
    for (const d of drops) {
      const verdict = judgeDrop(d, (seq) => {
        const h = heldAt.get(agentId, seq) as { hash: string; prev_hash: string } | undefined;
        if (h) return { held: { hash: h.hash, prevHash: h.prev_hash } };
        if (claimedInBatch.has(seq) || claimedAt.get(agentId, seq, seq)) return { claimed: true };
        return null;
      });
      const status = verdict.ok ? 'accounted' : 'unverified';
      const detail = verdict.ok ? '' : verdict.detail;
      for (const r of verdict.ranges.slice(0, 256)) addDrop.run(agentId, d.seq, r.from, r.to, status, detail, now);
      let closesGaps = 0;
      if (verdict.ok) for (const r of verdict.ranges) closesGaps += closeRange(agentId, r.from, r.to, now).closed;
      out.push({
        type: verdict.ok ? 'agent.drop_accounted' : 'agent.drop_unverified',
        terminalId: agentId,
        data: { agentId, seq: d.seq, ranges: verdict.ranges.slice(0, 256), events: verdict.events, detail, closesGaps },
      });
    }
    return out;
  };

  return (agentId: string, events: IngestInput, received = new Date()): IngestResult => ingest(agentId, 'checked' in events ? events.checked : checkEvents(events), received);
}

function seqRangesOf(sorted: readonly number[]): { from: number; to: number }[] {
  const out: { from: number; to: number }[] = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last && s === last.to + 1) last.to = s;
    else out.push({ from: s, to: s });
  }
  return out;
}

interface Pending {
  agentId: string;
  events: IngestInput;
  resolve: (r: IngestResult) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit: batches that arrive while the previous commit is being written to disk are
 * ingested together in one transaction (each in its own savepoint, so one refused batch does not
 * undo the others) and acknowledged only after that transaction is durable. One fsync then serves
 * many agents instead of one. With a WalSync the fsync leaves the event loop: the transaction
 * commits with `synchronous = NORMAL` and its batches are answered when the WAL sync that began
 * after it has finished — meanwhile the next group is parsed and committed (acked = durable holds).
 */
export class GroupCommit {
  private queue: Pending[] = [];
  private scheduled = false;

  constructor(
    private readonly db: Database.Database,
    private readonly ingestOne: (agentId: string, events: IngestInput) => IngestResult,
    /**
     * `first` runs first inside each group's transaction; what it returns runs once that group is
     * durable (issue 17: the record of a disk-full outage goes in with the first batch that can be
     * written — both or neither — and the outage counts as recorded only when that is on disk).
     */
    private readonly hooks: { first?: () => (() => void) | void } = {},
    private readonly walSync: WalSync | null = null,
  ) {}

  submit(agentId: string, events: IngestInput): Promise<IngestResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ agentId, events, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const group = this.queue;
    this.queue = [];
    const outcomes: ({ ok: IngestResult } | { error: unknown })[] = [];
    let whenDurable: (() => void) | void;
    if (this.walSync) this.db.pragma('synchronous = NORMAL');
    try {
      this.db.transaction(() => {
        whenDurable = this.hooks.first?.();
        for (const p of group) {
          try {
            outcomes.push({ ok: this.ingestOne(p.agentId, p.events) }); // nested: a savepoint
          } catch (error) {
            // Out of space: SQLite may have rolled the whole transaction back already; stop the group.
            if (isDiskFull(error)) throw error;
            outcomes.push({ error });
          }
        }
      })();
    } catch (error) {
      for (const p of group) p.reject(error); // the commit itself failed: nothing is acknowledged
      return;
    } finally {
      if (this.walSync) this.db.pragma('synchronous = FULL'); // every other writer keeps FULL
    }
    const answer = () => {
      whenDurable?.();
      group.forEach((p, i) => {
        const o = outcomes[i]!;
        if ('ok' in o) p.resolve(o.ok);
        else p.reject(o.error);
      });
    };
    if (!this.walSync) return answer();
    // Not durable, not acknowledged: the agents keep these events and send them again (duplicates are answered as held).
    this.walSync.sync().then(answer, (error: unknown) => group.forEach((p) => p.reject(error)));
  }
}

/** SQLite could not write for want of space (the batch's transaction rolled back whole). */
export function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'SQLITE_FULL' || (typeof code === 'string' && code.startsWith('SQLITE_FULL'));
}

/** Default free space the console keeps for itself (web sessions, its own events, the WAL checkpoint). */
export const DEFAULT_INGEST_RESERVE_BYTES = 64 * 1024 * 1024;
/** Retry-After of a refusal for a full disk: an operator needs minutes, not seconds. */
export const DISK_FULL_RETRY_SECONDS = 60;

/** An outage kept in memory while nothing can be written (one object, counters only: bounded). */
export interface DiskOutage {
  since: string;
  until: string;
  refusedBatches: number;
  refusedEvents: number;
  freeBytes: number;
  reserveBytes: number;
  reason: 'sqlite_full' | 'low_free_space';
}

/**
 * Whether the console may take an upload, judged before writing (free space under the reserve →
 * refuse) and after (SQLITE_FULL → refuse), and the outage to record as `console.disk_full` first
 * thing once writing works again. `freeBytes` is injected: statfs of the data folder in the route.
 */
export class DiskGuard {
  private outage: DiskOutage | null = null;
  private checkedAt = -Infinity;
  private free = Number.MAX_SAFE_INTEGER;

  constructor(
    readonly reserveBytes: number,
    private readonly freeBytes: () => number,
  ) {}

  /** Free bytes, looked up at most every 500 ms (an upload burst must not cost a syscall each). */
  freeNow(nowMs: number): number {
    if (nowMs - this.checkedAt >= 500) {
      this.checkedAt = nowMs;
      try {
        this.free = this.freeBytes();
      } catch {
        this.free = Number.MAX_SAFE_INTEGER; // unknown: SQLITE_FULL still guards the write
      }
    }
    return this.free;
  }

  /** True when free space is under the reserve (the upload must be refused without writing). */
  low(nowMs: number): boolean {
    return this.freeNow(nowMs) < this.reserveBytes;
  }

  refused(reason: DiskOutage['reason'], events: number, now: Date): void {
    const at = now.toISOString();
    const free = this.free === Number.MAX_SAFE_INTEGER ? 0 : this.free;
    if (!this.outage) this.outage = { since: at, until: at, refusedBatches: 0, refusedEvents: 0, freeBytes: free, reserveBytes: this.reserveBytes, reason };
    const o = this.outage;
    o.until = at;
    o.refusedBatches = Math.min(Number.MAX_SAFE_INTEGER, o.refusedBatches + 1);
    o.refusedEvents = Math.min(Number.MAX_SAFE_INTEGER, o.refusedEvents + events);
    o.freeBytes = Math.min(o.freeBytes, free);
    // Forces a fresh look at the disk on the next upload (space may come back any moment).
    this.checkedAt = -Infinity;
  }

  /** The outage not yet recorded (null: none). */
  pending(): DiskOutage | null {
    return this.outage;
  }

  recorded(): void {
    this.outage = null;
  }
}

/** 503 for a full disk: the agent keeps its outbox and comes back after Retry-After. */
export function diskFullError(retryAfterSeconds = DISK_FULL_RETRY_SECONDS): HttpError {
  return new HttpError(503, 'disk_full', `the console's disk is full; events stay on the terminal; retry after ${retryAfterSeconds} s`, undefined, {
    'retry-after': String(retryAfterSeconds),
  });
}

/** DATA/config.json `diskFullRetryAfterSeconds` (1 .. 3600), else DISK_FULL_RETRY_SECONDS. */
export function diskFullRetryAfter(config: object): number {
  const v = (config as { diskFullRetryAfterSeconds?: unknown }).diskFullRetryAfterSeconds;
  if (v === undefined) return DISK_FULL_RETRY_SECONDS;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > 3600) throw new Error('config.json diskFullRetryAfterSeconds: 1〜3600 の整数を指定してください / must be an integer 1..3600');
  return v;
}

/** The reserve from DATA/config.json `ingestReserveBytes` (a non-negative integer), else the default. */
export function ingestReserve(config: object): number {
  const v = (config as { ingestReserveBytes?: unknown }).ingestReserveBytes;
  if (v === undefined) return DEFAULT_INGEST_RESERVE_BYTES;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error('config.json ingestReserveBytes: 0 以上の整数を指定してください / must be a non-negative integer');
  return v;
}
