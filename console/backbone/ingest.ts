/**
 * Idempotent event ingestion with per-agent hash-chain checking.
 * A batch is checked whole before anything is written, and written in one transaction:
 * either every event is held (new or already held) and acknowledged, or nothing changes.
 */
import type Database from 'better-sqlite3';
import { eventHash, eventShapeErrors, genesisHash, isAgentEventType, type SekimoriEvent } from '../../protocol/events.js';
import type { UploadResponse } from '../../protocol/api.js';
import { HttpError } from '../module.js';
import { insertEventStatement, recordConsoleEvent, tsJudge, type ChainStatus } from '../core/events.js';
import { isObject } from '../../protocol/validate.js';

export const MAX_BATCH_EVENTS = 5000;

export function parseBatch(body: unknown, agentId: string): SekimoriEvent[] {
  if (!isObject(body)) throw new HttpError(400, 'invalid_batch', 'body must be a JSON object {batchId, events}');
  if (typeof body.batchId !== 'string' || body.batchId.length > 64) throw new HttpError(400, 'invalid_batch', 'batchId must be a string');
  const events = body.events;
  if (!Array.isArray(events)) throw new HttpError(400, 'invalid_batch', 'events must be an array');
  if (events.length > MAX_BATCH_EVENTS) throw new HttpError(413, 'batch_too_large', `at most ${MAX_BATCH_EVENTS} events per batch`);
  const errors: string[] = [];
  events.forEach((e, i) => {
    const where = `events[${i}]`;
    errors.push(...eventShapeErrors(e, where));
    if (isObject(e)) {
      if (e.agentId !== agentId) errors.push(`${where}.agentId: does not match the client certificate`);
      if (typeof e.type === 'string' && !isAgentEventType(e.type)) errors.push(`${where}.type: ${e.type.slice(0, 64)} is not an agent event type`);
    }
  });
  for (let i = 1; i < events.length && !errors.length; i++) {
    if ((events[i] as SekimoriEvent).seq <= (events[i - 1] as SekimoriEvent).seq) errors.push(`events[${i}].seq: must increase within a batch`);
  }
  if (errors.length) throw new HttpError(400, 'invalid_events', `${errors.length} problem(s) in the batch; nothing was stored`, errors);
  return events as SekimoriEvent[];
}

/** An event stored under the console's receipt time because its claimed time was implausible. */
export interface SkewedEvent {
  seq: number;
  claimed: string;
  received: string;
}

/** What one batch did: the agent's answer, and the clock findings the route reports. */
export interface IngestResult {
  response: UploadResponse;
  skewed: SkewedEvent[];
}

interface Head {
  last_seq: number;
  last_hash: string | null;
}

export function createIngester(db: Database.Database) {
  const insert = insertEventStatement(db);
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
    for (const f of findings) {
      recordConsoleEvent(db, {
        type: f.kind === 'gap' ? 'agent.gap' : 'agent.chain_broken',
        terminalId: agentId,
        data: { agentId, seq: f.seq, finding: f.kind, detail: f.detail },
      });
    }
    return { response: { acked: events.map((e) => e.seq), stored, duplicates }, skewed };
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
