import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { beforeEach, describe, expect, it } from 'vitest';
import { migrate } from '../../console/core/db.js';
import { coreMigrations } from '../../console/core/schema.js';
import { createIngester } from '../../console/backbone/ingest.js';
import { parseBatch } from '../../console/backbone/batch-check.js';
import { HttpError } from '../../console/module.js';
import { chainEvent, eventHash, genesisHash, MAX_EVENT_DATA_DEPTH, type SekimoriEvent } from '../../protocol/events.js';
import { queryEvents, signedEvent, sortableTs } from '../../console/core/events.js';

const AGENT = '0b7c3c1e-8d0b-4b8e-9f5e-2d6f1a3b4c5d';

function chain(n: number, tsOf: (i: number) => string = (i) => new Date(1_790_000_000_000 + i).toISOString()): SekimoriEvent[] {
  const out: SekimoriEvent[] = [];
  let prev = genesisHash(AGENT);
  for (let i = 1; i <= n; i++) {
    const e = chainEvent(prev, { id: randomUUID(), agentId: AGENT, seq: i, ts: tsOf(i), type: 'usb.blocked', severity: 'warning', user: null, data: { i } });
    out.push(e);
    prev = e.hash;
  }
  return out;
}

describe('ingest', () => {
  let db: Database.Database;
  let ingest: ReturnType<typeof createIngester>;
  const chainOf = () => db.prepare('SELECT seq, chain FROM events WHERE agent_id = ? ORDER BY seq').all(AGENT) as { seq: number; chain: string }[];
  beforeEach(() => {
    db = new Database(':memory:');
    db.exec('CREATE TABLE schema_migrations (module TEXT, version INTEGER, applied_at TEXT, PRIMARY KEY (module, version))');
    migrate(db, 'core', coreMigrations);
    db.prepare("INSERT INTO agents (id, hostname, cert_fingerprint, enrolled_at) VALUES (?, 'pc', 'fp', 'now')").run(AGENT);
    ingest = createIngester(db);
  });

  it('stores a clean chain as ok and acks every seq', () => {
    const r = ingest(AGENT, chain(5));
    expect(r.response).toEqual({ acked: [1, 2, 3, 4, 5], stored: 5, duplicates: 0, headSeq: 5, lastContiguousSeq: 5, missing: [] });
    expect(r.skewed).toEqual([]);
    expect(chainOf().every((x) => x.chain === 'ok')).toBe(true);
  });

  it('is idempotent across batches that overlap', () => {
    const c = chain(6);
    ingest(AGENT, c.slice(0, 4));
    const r = ingest(AGENT, c.slice(2));
    expect(r.response).toMatchObject({ stored: 2, duplicates: 2, acked: [3, 4, 5, 6] });
    expect(chainOf()).toHaveLength(6);
  });

  it('records a gap when events never arrive, and flags the chain', () => {
    const c = chain(6);
    ingest(AGENT, [c[0]!, c[1]!, c[4]!, c[5]!]);
    expect(chainOf().map((x) => x.chain)).toEqual(['ok', 'ok', 'gap', 'ok']);
    expect(db.prepare('SELECT from_seq, to_seq FROM chain_gaps').all()).toEqual([{ from_seq: 3, to_seq: 4 }]);
    expect((db.prepare("SELECT count(*) AS n FROM events WHERE type = 'agent.gap'").get() as { n: number }).n).toBe(1);
  });

  it('flags an event whose content no longer matches its hash', () => {
    const c = chain(3);
    c[1] = { ...c[1]!, data: { i: 'edited' } };
    ingest(AGENT, c);
    expect(chainOf().map((x) => x.chain)).toEqual(['ok', 'tampered', 'ok']);
  });

  it('flags a re-hashed substitute that does not link to its predecessor', () => {
    const c = chain(3);
    c[1] = chainEvent('0'.repeat(64), { ...c[1]!, data: { i: 'forged' } });
    ingest(AGENT, c);
    expect(chainOf().map((x) => x.chain)).toEqual(['ok', 'broken', 'broken']);
  });

  it('refuses a conflicting replay as a whole', () => {
    const c = chain(3);
    ingest(AGENT, c.slice(0, 2));
    const forged = { ...c[1]!, id: randomUUID() };
    expect(() => ingest(AGENT, [forged, c[2]!])).toThrow(HttpError);
    expect(chainOf()).toHaveLength(2);
  });

  it('parseBatch rejects the whole batch when one event is bad', () => {
    const c = chain(2);
    expect(() => parseBatch({ batchId: 'b', events: [c[0], { ...c[1], type: 'usb.nope' }] }, AGENT)).toThrow(/nothing was stored/);
    expect(() => parseBatch({ batchId: 'b', events: [c[1], c[0]] }, AGENT)).toThrow();
    expect(parseBatch({ batchId: 'b', events: c }, AGENT)).toHaveLength(2);
  });

  // Issue 10, item 1: one event stamped 9999-12-31 stopped the console's daily rollup for good.
  // Such a time is accepted (the outbox must not get stuck) but never decides where the event sorts.
  it('stores an implausible agent time under the receipt time, keeps the claim, and the hash still verifies', () => {
    const received = new Date('2026-11-29T12:00:00.000Z');
    const claims: Record<number, string> = {
      2: '9999-12-31T23:59:59.999Z', // far future
      3: '1970-01-01T00:00:00.000Z', // before 2020
      4: '2026-11-29T12:06:00.000Z', // 6 minutes ahead
      5: '2026-11-29T12:04:59.000Z', // within 5 minutes: drift, trusted
      6: '2026-02-28T24:00:00.000Z', // Date.parse accepts it, but it is not the canonical form of its instant
    };
    const c = chain(7, (i) => claims[i] ?? '2026-11-29T11:00:00.000Z');
    const r = ingest(AGENT, c, received);
    expect(r.response).toMatchObject({ acked: [1, 2, 3, 4, 5, 6, 7], stored: 7, duplicates: 0 });
    expect(r.skewed.map((x) => [x.seq, x.claimed])).toEqual([
      [2, claims[2]],
      [3, claims[3]],
      [4, claims[4]],
      [6, claims[6]],
    ]);
    const stored = queryEvents(db, { terminalId: AGENT });
    const bySeq = new Map(stored.map((e) => [e.seq, e]));
    for (const seq of [2, 3, 4, 6]) {
      expect(bySeq.get(seq)).toMatchObject({ ts: received.toISOString(), agentTs: claims[seq], chain: 'ok' });
    }
    expect(bySeq.get(5)).toMatchObject({ ts: claims[5], agentTs: null });
    expect(bySeq.get(1)).toMatchObject({ ts: '2026-11-29T11:00:00.000Z', agentTs: null });
    // Every stored row re-verifies against the hash the agent made, with the claimed time restored.
    for (const e of stored) {
      const signed = signedEvent(e);
      expect(eventHash(signed.prevHash, signed), `seq ${e.seq}`).toBe(e.hash);
    }
    expect(stored.map((e) => e.chain)).toEqual(stored.map(() => 'ok'));
    // A retry of the same batch is a duplicate, not a conflict, although the stored ts differs from the sent one.
    expect(ingest(AGENT, c, new Date(received.getTime() + 60_000)).response).toMatchObject({ stored: 0, duplicates: 7 });
  });

  it.each([
    ['2019-12-31T23:59:59.999Z', 'restamped'],
    ['2020-01-01T00:00:00.000Z', 'trusted'],
    ['2026-11-29T12:05:00.000Z', 'trusted'],
    ['2026-11-29T12:05:00.001Z', 'restamped'],
    ['2026-02-30T00:00:00.000Z', 'restamped'],
    ['2024-02-29T10:00:00.000Z', 'trusted'], // a real leap day takes the slow path and passes
    ['2026-04-31T10:00:00.000Z', 'restamped'],
    ['2026-11-28T24:00:00.000Z', 'restamped'],
    ['2026-13-01T00:00:00.000Z', 'restamped'], // refused by the shape check first; never taken as is
    ['2026-11-28T23:60:00.000Z', 'restamped'],
    ['2026-00-10T00:00:00.000Z', 'restamped'],
  ])('sortableTs(%s) at 12:00 is %s', (claimed, want) => {
    const got = sortableTs(claimed, new Date('2026-11-29T12:00:00.000Z'));
    expect(got.agentTs === null ? 'trusted' : 'restamped').toBe(want);
    if (want === 'restamped') expect(got).toEqual({ ts: '2026-11-29T12:00:00.000Z', agentTs: claimed });
  });

  // Issue 10, item 14: data nested 5,000 levels deep made the shape check overflow the stack (a 500).
  it('parseBatch refuses data nested deeper than the limit with a 400 naming the path', () => {
    const deep = JSON.parse('{"a":'.repeat(5000) + '{}' + '}'.repeat(5000)) as Record<string, unknown>;
    const [e1] = chain(1);
    const bad = { ...e1!, data: deep };
    let err: unknown;
    try {
      parseBatch({ batchId: 'b', events: [bad] }, AGENT);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HttpError);
    expect((err as HttpError).status).toBe(400);
    expect((err as HttpError).code).toBe('invalid_events');
    expect((err as HttpError).details?.[0]).toBe(`events[0].data${'.a'.repeat(MAX_EVENT_DATA_DEPTH)}: nested deeper than ${MAX_EVENT_DATA_DEPTH} levels`);
    // At the limit it is fine.
    const ok = JSON.parse('{"a":'.repeat(MAX_EVENT_DATA_DEPTH - 1) + '{}' + '}'.repeat(MAX_EVENT_DATA_DEPTH - 1)) as Record<string, unknown>;
    expect(parseBatch({ batchId: 'b', events: [{ ...e1!, data: ok }] }, AGENT)).toHaveLength(1);
  });
});
