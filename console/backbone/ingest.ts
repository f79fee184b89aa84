/**
 * Idempotent event ingestion with per-agent hash-chain checking.
 * A batch is checked whole before anything is written, and written in one transaction:
 * either every event is held (new or already held) and acknowledged, or nothing changes.
 */
import type Database from 'better-sqlite3';
import { eventHash, eventShapeErrors, genesisHash, isAgentEventType, type SekimoriEvent } from '../../protocol/events.js';
import { MAX_BATCH_EVENTS, uploadEnvelopeCheck, type UploadResponse } from '../../protocol/api.js';
import { eventDataErrors, eventDataValid } from '../../protocol/event-data.js';
import { HttpError } from '../module.js';
import { insertEventStatement, recordConsoleEvent, tsJudge, type ChainStatus } from '../core/events.js';

export { MAX_BATCH_EVENTS };

/**
 * The upload body (protocol/api.ts UploadRequest), checked whole before anything is stored:
 * 400 `invalid_events` naming every failing path, 413 over MAX_BATCH_EVENTS. Event data that does
 * not match its type's declaration is no reason to refuse (see dataFindings).
 */
export function parseBatch(body: unknown, agentId: string): SekimoriEvent[] {
  if (!uploadEnvelopeCheck.check(body)) {
    const details = uploadEnvelopeCheck.errors(body, 'body');
    throw new HttpError(400, 'invalid_batch', details[0] ?? 'body must be a JSON object {batchId, events}', details);
  }
  const events = body.events;
  if (events.length > MAX_BATCH_EVENTS) throw new HttpError(413, 'batch_too_large', `at most ${MAX_BATCH_EVENTS} events per batch`);
  const errors: string[] = [];
  for (let i = 0; i < events.length && errors.length < 100; i++) {
    const e = events[i];
    const where = `events[${i}]`;
    const shape = eventShapeErrors(e, where);
    if (shape.length) errors.push(...shape);
    else {
      const { type, agentId: claimed } = e as SekimoriEvent;
      if (!isAgentEventType(type)) errors.push(`${where}.type: ${JSON.stringify(type.slice(0, 64))} is not an agent event type`);
      if (claimed !== agentId) errors.push(`${where}.agentId: does not match the client certificate`);
    }
  }
  for (let i = 1; i < events.length && !errors.length; i++) {
    if ((events[i] as SekimoriEvent).seq <= (events[i - 1] as SekimoriEvent).seq) errors.push(`events[${i}].seq: must increase within a batch`);
  }
  if (errors.length) throw new HttpError(400, 'invalid_events', `${errors.length} problem(s) in the batch; nothing was stored`, errors);
  return events as SekimoriEvent[];
}

/** An event stored although its data does not match its type's declaration (protocol/event-data.ts). */
export interface DataFinding {
  seq: number;
  type: string;
  errors: string[];
}

/**
 * Events whose data does not match its declaration: stored all the same (no event is ever lost;
 * the data is what the agent signed), marked in event_data_invalid, and reported. Only the
 * first such event per batch is explained in full; the rest are counted (the check is cheap, the
 * explanation is not).
 */
export function dataFindings(events: readonly SekimoriEvent[]): DataFinding[] {
  const out: DataFinding[] = [];
  for (const e of events) {
    if (out.length === 0) {
      const errors = eventDataErrors(e.type, e.data);
      if (errors.length) out.push({ seq: e.seq, type: e.type, errors: errors.slice(0, 8) });
    } else if (!eventDataValid(e.type, e.data)) out.push({ seq: e.seq, type: e.type, errors: [] });
  }
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

export function createIngester(db: Database.Database) {
  db.exec(EVENT_DATA_INVALID_TABLE);
  const insert = insertEventStatement(db);
  const markInvalid = db.prepare('INSERT OR IGNORE INTO event_data_invalid (agent_id, seq, type, errors) VALUES (?, ?, ?, ?)');
  const existing = db.prepare('SELECT id, hash FROM events WHERE agent_id = ? AND seq = ?');
  const prevHashOf = db.prepare('SELECT hash FROM events WHERE agent_id = ? AND seq = ?');
  const head = db.prepare('SELECT last_seq, last_hash FROM agents WHERE id = ?');
  const setHead = db.prepare('UPDATE agents SET last_seq = ?, last_hash = ? WHERE id = ?');
  const addGap = db.prepare('INSERT OR IGNORE INTO chain_gaps (agent_id, from_seq, to_seq, detected_at) VALUES (?, ?, ?, ?)');
  const setStatus = db.prepare("UPDATE agents SET status = ? WHERE id = ? AND status != 'revoked'");

  const ingest = db.transaction((agentId: string, events: SekimoriEvent[], received: Date): IngestResult => {
    const now = received.toISOString();
    const sortable = tsJudge(received);
    const skewed: SkewedEvent[] = [];
    const h = head.get(agentId) as Head;
    let lastSeq = h.last_seq;
    let lastHash = h.last_hash;
    let stored = 0;
    let duplicates = 0;
    const fresh: SekimoriEvent[] = [];
    const findings: { kind: 'gap' | 'broken' | 'tampered'; seq: number; detail: string }[] = [];
    for (const e of events) {
      // Judge the link to the previous event: the one just stored, or the stored one before it.
      const expectedPrev =
        e.seq === 1 ? genesisHash(agentId) : e.seq === lastSeq + 1 ? lastHash : ((prevHashOf.get(agentId, e.seq - 1) as { hash: string } | undefined)?.hash ?? null);
      let finding: { kind: 'gap' | 'broken' | 'tampered'; seq: number; detail: string } | null = null;
      let chain: ChainStatus = 'ok';
      if (eventHash(e.prevHash, e) !== e.hash) {
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
      const r = insert.run({ ...e, ts: when.ts, agentTs: when.agentTs, user: e.user ?? null, data: JSON.stringify(e.data), terminalId: agentId, chain, receivedAt: now });
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
    const invalidData = dataFindings(fresh);
    for (const f of invalidData) markInvalid.run(agentId, f.seq, f.type, JSON.stringify(f.errors));
    for (const f of findings) {
      recordConsoleEvent(db, {
        type: f.kind === 'gap' ? 'agent.gap' : 'agent.chain_broken',
        terminalId: agentId,
        data: { agentId, seq: f.seq, finding: f.kind, detail: f.detail },
      });
    }
    return { response: { acked: events.map((e) => e.seq), stored, duplicates }, skewed, invalidData };
  });

  return (agentId: string, events: SekimoriEvent[], received = new Date()): IngestResult => ingest(agentId, events, received);
}

interface Pending {
  agentId: string;
  events: SekimoriEvent[];
  resolve: (r: IngestResult) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit: batches that arrive while the previous commit is being written to disk are
 * ingested together in one transaction (each in its own savepoint, so one refused batch does not
 * undo the others) and acknowledged only after that transaction is durable. One fsync then serves
 * many agents instead of one.
 */
export class GroupCommit {
  private queue: Pending[] = [];
  private scheduled = false;

  constructor(
    private readonly db: Database.Database,
    private readonly ingestOne: (agentId: string, events: SekimoriEvent[]) => IngestResult,
  ) {}

  submit(agentId: string, events: SekimoriEvent[]): Promise<IngestResult> {
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
    try {
      this.db.transaction(() => {
        for (const p of group) {
          try {
            outcomes.push({ ok: this.ingestOne(p.agentId, p.events) }); // nested: a savepoint
          } catch (error) {
            outcomes.push({ error });
          }
        }
      })();
    } catch (error) {
      for (const p of group) p.reject(error); // the commit itself failed: nothing is acknowledged
      return;
    }
    group.forEach((p, i) => {
      const o = outcomes[i]!;
      if ('ok' in o) p.resolve(o.ok);
      else p.reject(o.error);
    });
  }
}
