/** Issue 17 on the console side: fills close gaps, drop records bridge or are flagged, the re-send hint. */
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { beforeEach, describe, expect, it } from 'vitest';
import { migrate } from '../../console/core/db.js';
import { coreMigrations } from '../../console/core/schema.js';
import { DiskGuard, createIngester, diskFullError, ingestReserve, isDiskFull, judgeDrop, openGaps, resendHint, type SeqFact } from '../../console/backbone/ingest.js';
import { chainEvent, genesisHash, type SekimoriEvent } from '../../protocol/events.js';
import { seqRanges } from '../../agent/report/outbox.js';

const AGENT = '0b7c3c1e-8d0b-4b8e-9f5e-2d6f1a3b4c5d';
const OTHER = '1c8d4d2f-9e1c-4c9f-8a6f-3e7a2b4c5d6e';

/** A chain of `n` events; seqs listed in `dropAt` become nothing (the caller builds the drop record). */
function chain(agentId: string, n: number): SekimoriEvent[] {
  const out: SekimoriEvent[] = [];
  let prev = genesisHash(agentId);
  for (let i = 1; i <= n; i++) {
    const e = chainEvent(prev, { id: randomUUID(), agentId, seq: i, ts: new Date(1_790_000_000_000 + i).toISOString(), type: 'usb.allowed', severity: 'info', user: null, data: { i } });
    out.push(e);
    prev = e.hash;
  }
  return out;
}

/** The agent's drop record for `dropped` appended at the end of `c` (as the outbox appends it). */
function withDropRecord(c: SekimoriEvent[], dropped: number[], override: Record<string, unknown> = {}): SekimoriEvent[] {
  const agentId = c[0]!.agentId;
  const last = c[c.length - 1]!;
  const hashes = dropped.map((s) => c[s - 1]!.hash);
  const data = {
    ranges: seqRanges(dropped),
    hashes,
    byType: { 'usb.allowed': dropped.length },
    events: dropped.length,
    bytes: 100 * dropped.length,
    cap: { maxEvents: 10, maxBytes: 1000 },
    ...override,
  };
  const rec = chainEvent(last.hash, { id: randomUUID(), agentId, seq: last.seq + 1, ts: new Date(1_790_000_100_000).toISOString(), type: 'agent.events_dropped', severity: 'warning', user: null, data });
  return [...c.filter((e) => !dropped.includes(e.seq)), rec];
}

describe('ingest: fills, drop records, re-send hint', () => {
  let db: Database.Database;
  let ingest: ReturnType<typeof createIngester>;
  const count = (type: string) => (db.prepare('SELECT count(*) AS n FROM events WHERE type = ?').get(type) as { n: number }).n;
  const dataOf = (type: string) => (db.prepare('SELECT data FROM events WHERE type = ? ORDER BY rid').all(type) as { data: string }[]).map((r) => JSON.parse(r.data) as Record<string, unknown>);
  const chainAt = (seq: number) => (db.prepare('SELECT chain FROM events WHERE agent_id = ? AND seq = ?').get(AGENT, seq) as { chain: string }).chain;
  beforeEach(() => {
    db = new Database(':memory:');
    db.exec('CREATE TABLE schema_migrations (module TEXT, version INTEGER, applied_at TEXT, PRIMARY KEY (module, version))');
    migrate(db, 'core', coreMigrations);
    for (const id of [AGENT, OTHER]) db.prepare("INSERT INTO agents (id, hostname, cert_fingerprint, enrolled_at) VALUES (?, 'pc', 'fp', 'now')").run(id);
    ingest = createIngester(db);
  });

  it('answers what it lacks, and a fill closes the gap and re-links the event after it', () => {
    const c = chain(AGENT, 8);
    const r1 = ingest(AGENT, [c[0]!, c[1]!, c[5]!, c[6]!]);
    expect(r1.response).toMatchObject({ headSeq: 7, lastContiguousSeq: 2, missing: [{ from: 3, to: 5 }] });
    expect(chainAt(6)).toBe('gap');
    // A partial fill shrinks the gap.
    const r2 = ingest(AGENT, [c[2]!]);
    expect(r2.response).toMatchObject({ headSeq: 7, lastContiguousSeq: 3, missing: [{ from: 4, to: 5 }] });
    expect(openGaps(db, AGENT)).toEqual([{ from: 4, to: 5 }]);
    const r3 = ingest(AGENT, [c[3]!, c[4]!, c[7]!]);
    expect(r3.response).toMatchObject({ acked: [4, 5, 8], headSeq: 8, lastContiguousSeq: 8, missing: [] });
    expect(openGaps(db, AGENT)).toEqual([]);
    expect(chainAt(6)).toBe('ok');
    expect(count('agent.gap')).toBe(1);
    expect(dataOf('agent.gap_filled')).toEqual([
      { agentId: AGENT, from: 3, to: 3, events: 1, closesGaps: 0 },
      { agentId: AGENT, from: 4, to: 5, events: 2, closesGaps: 1 },
    ]);
  });

  it('a restored console: the head is behind the agent; events above it re-sent fill the hole exactly once', () => {
    const c = chain(AGENT, 20);
    ingest(AGENT, c.slice(0, 10)); // what the backup holds
    const r = ingest(AGENT, c.slice(15)); // the agent's next events after the restore
    expect(r.response).toMatchObject({ headSeq: 20, lastContiguousSeq: 10, missing: [{ from: 11, to: 15 }] });
    const again = ingest(AGENT, c.slice(10, 15)); // re-sent from the agent's delivered keep
    expect(again.response).toMatchObject({ stored: 5, duplicates: 0, lastContiguousSeq: 20, missing: [] });
    // A re-send of what is held already is a duplicate, acked, never stored twice.
    const dup = ingest(AGENT, c.slice(10, 15));
    expect(dup.response).toMatchObject({ stored: 0, duplicates: 5 });
    expect((db.prepare('SELECT count(*) AS n, count(DISTINCT seq) AS d FROM events WHERE agent_id = ?').get(AGENT) as { n: number; d: number })).toEqual({ n: 20, d: 20 });
    expect(openGaps(db, AGENT)).toEqual([]);
  });

  it('a drop record that bridges accounts for the hole (apart from an unexplained gap)', () => {
    const c = chain(AGENT, 10);
    const sent = withDropRecord(c, [3, 4, 7]);
    ingest(AGENT, sent);
    expect(openGaps(db, AGENT)).toEqual([]);
    expect(count('agent.drop_accounted')).toBe(1);
    expect(count('agent.drop_unverified')).toBe(0);
    expect(dataOf('agent.drop_accounted')[0]).toMatchObject({ seq: 11, events: 3, ranges: [{ from: 3, to: 4 }, { from: 7, to: 7 }], closesGaps: 2 });
    expect(db.prepare("SELECT from_seq, to_seq, status FROM chain_drops WHERE agent_id = ? ORDER BY from_seq").all(AGENT)).toEqual([
      { from_seq: 3, to_seq: 4, status: 'accounted' },
      { from_seq: 7, to_seq: 7, status: 'accounted' },
    ]);
  });

  it('a drop record arriving in a later batch than the hole closes it then', () => {
    const c = chain(AGENT, 10);
    const sent = withDropRecord(c, [3, 4]);
    ingest(AGENT, sent.slice(0, 4));
    expect(openGaps(db, AGENT)).toEqual([{ from: 3, to: 4 }]);
    const r = ingest(AGENT, sent.slice(4));
    expect(openGaps(db, AGENT)).toEqual([]);
    expect(r.response.missing).toEqual([]);
  });

  it('one run of dropped seqs split over two drop records of the same batch bridges through both', () => {
    const c = chain(AGENT, 12);
    const first = withDropRecord(c, [3, 4, 5]); // record #13 for 3..5, then #14 for 6..7
    const rec1 = first[first.length - 1]!;
    const hashes2 = [c[5]!.hash, c[6]!.hash];
    const rec2 = chainEvent(rec1.hash, {
      id: randomUUID(), agentId: AGENT, seq: rec1.seq + 1, ts: rec1.ts, type: 'agent.events_dropped', severity: 'warning', user: null,
      data: { ranges: [{ from: 6, to: 7 }], hashes: hashes2, byType: { 'usb.allowed': 2 }, events: 2, bytes: 200, cap: { maxEvents: 10, maxBytes: 1000 } },
    });
    const batch = [...first.filter((e) => e.seq !== 6 && e.seq !== 7), rec2];
    ingest(AGENT, batch);
    expect(count('agent.drop_unverified')).toBe(0);
    expect(count('agent.drop_accounted')).toBe(2);
    expect(openGaps(db, AGENT)).toEqual([]);
  });

  // Forged or wrong drop records: flagged, never accepted as accounted for; the gap stays open.
  const forged: [string, (c: SekimoriEvent[], other: SekimoriEvent[]) => SekimoriEvent[], RegExp][] = [
    ['a hash that does not bridge', (c) => withDropRecord(c, [3, 4], { hashes: [c[2]!.hash, 'b'.repeat(64)] }), /does not bridge/],
    ['another agent\'s hashes', (c, o) => withDropRecord(c, [3, 4], { hashes: [o[2]!.hash, o[3]!.hash] }), /does not bridge/],
    ['seqs at or after the record itself', (c) => withDropRecord(c, [3, 4], { ranges: [{ from: 3, to: 3 }, { from: 11, to: 11 }] }), /not before the record/],
    ['a held event claimed with another hash', (c) => withDropRecord(c, [3, 4], { ranges: [{ from: 2, to: 3 }], hashes: ['c'.repeat(64), c[2]!.hash], events: 2 }), /holds with another hash|does not bridge/],
    ['more seqs than hashes (1..2^53-1)', (c) => withDropRecord(c, [3, 4], { ranges: [{ from: 1, to: Number.MAX_SAFE_INTEGER }], events: Number.MAX_SAFE_INTEGER }), /not before the record|more seqs/],
    ['counts that do not add up', (c) => withDropRecord(c, [3, 4], { events: 5 }), /claims 2 seqs/],
    ['ranges out of order', (c) => withDropRecord(c, [3, 4], { ranges: [{ from: 4, to: 4 }, { from: 3, to: 3 }] }), /out of order/],
    ['malformed data', (c) => withDropRecord(c, [3, 4], { hashes: 'nope' }), /malformed/],
  ];
  it.each(forged)('%s → agent.drop_unverified, gap left open', (_n, build, why) => {
    const c = chain(AGENT, 10);
    const o = chain(OTHER, 10);
    ingest(AGENT, build(c, o));
    expect(count('agent.drop_accounted')).toBe(0);
    expect(count('agent.drop_unverified')).toBe(1);
    expect(String(dataOf('agent.drop_unverified')[0]!.detail)).toMatch(why);
    expect(openGaps(db, AGENT)).toEqual([{ from: 3, to: 4 }]);
    expect(db.prepare("SELECT count(*) AS n FROM chain_drops WHERE status = 'accounted'").get()).toEqual({ n: 0 });
  });

  it('another agent\'s drop record cannot close this agent\'s gap', () => {
    const c = chain(AGENT, 10);
    ingest(AGENT, c.filter((e) => e.seq !== 3 && e.seq !== 4));
    const o = chain(OTHER, 10);
    ingest(OTHER, withDropRecord(o, [3, 4]));
    expect(openGaps(db, AGENT)).toEqual([{ from: 3, to: 4 }]);
    expect(openGaps(db, OTHER)).toEqual([]);
  });
});

describe('judgeDrop (pure)', () => {
  const h = (c: string) => c.repeat(64);
  const rec = (seq: number, ranges: { from: number; to: number }[], hashes: string[], prevHash = h('0')) => ({
    seq,
    prevHash,
    data: { ranges, hashes, byType: { x: hashes.length }, events: hashes.length, bytes: 0, cap: { maxEvents: 0, maxBytes: 0 } },
  });
  const facts = (m: Record<number, SeqFact>) => (s: number) => m[s] ?? null;
  it.each([
    ['bridges to the held next event', rec(9, [{ from: 3, to: 3 }], [h('a')]), facts({ 4: { held: { hash: h('4'), prevHash: h('a') } } }), true],
    ['bridges to the record itself', rec(4, [{ from: 3, to: 3 }], [h('a')], h('a')), facts({}), true],
    ['next seq claimed by another record', rec(9, [{ from: 3, to: 3 }], [h('a')]), facts({ 4: { claimed: true } }), true],
    ['held already with the same hash (dropped on its way)', rec(9, [{ from: 3, to: 3 }], [h('a')]), facts({ 3: { held: { hash: h('a'), prevHash: h('2') } }, 4: { held: { hash: h('4'), prevHash: h('a') } } }), true],
    ['next event not held', rec(9, [{ from: 3, to: 3 }], [h('a')]), facts({}), false],
    ['next event links elsewhere', rec(9, [{ from: 3, to: 3 }], [h('a')]), facts({ 4: { held: { hash: h('4'), prevHash: h('b') } } }), false],
    ['seq 0', rec(9, [{ from: 0, to: 0 }], [h('a')]), facts({}), false],
    ['empty claim bridges nothing but is not a lie', rec(9, [], []), facts({}), true],
  ] as const)('%s → %s', (_n, r, f, ok) => {
    expect(judgeDrop(r as never, f).ok).toBe(ok);
  });
});

describe('re-send hint and disk guard (pure)', () => {
  it('hint: contiguous up to the first gap, at most 64 ranges', () => {
    expect(resendHint([], 0)).toEqual({ headSeq: 0, lastContiguousSeq: 0, missing: [] });
    const many = Array.from({ length: 100 }, (_, i) => ({ from: i * 10 + 1, to: i * 10 + 5 }));
    const r = resendHint(many, 2 ** 53 - 1);
    expect(r.lastContiguousSeq).toBe(0);
    expect(r.missing).toHaveLength(64);
    expect(r.headSeq).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('guard: refuses under the reserve, counts the outage (bounded), forgets it once recorded', () => {
    let free = 10;
    const g = new DiskGuard(100, () => free);
    expect(g.low(0)).toBe(true);
    g.refused('low_free_space', 5, new Date('2026-11-30T00:00:00Z'));
    g.refused('sqlite_full', Number.MAX_SAFE_INTEGER, new Date('2026-11-30T00:01:00Z'));
    expect(g.pending()).toMatchObject({ since: '2026-11-30T00:00:00.000Z', until: '2026-11-30T00:01:00.000Z', refusedBatches: 2, refusedEvents: Number.MAX_SAFE_INTEGER, reason: 'low_free_space', freeBytes: 10, reserveBytes: 100 });
    free = 1000;
    expect(g.low(1)).toBe(false); // a refusal forces a fresh look at the disk
    g.recorded();
    expect(g.pending()).toBeNull();
  });

  it('guard: a failing statfs is not a full disk (SQLITE_FULL still guards the write)', () => {
    const g = new DiskGuard(100, () => {
      throw new Error('EIO');
    });
    expect(g.low(0)).toBe(false);
  });

  it('503 with Retry-After; config reserve validated; SQLITE_FULL recognised', () => {
    const e = diskFullError();
    expect(e.status).toBe(503);
    expect(e.code).toBe('disk_full');
    expect(e.headers).toEqual({ 'retry-after': '60' });
    expect(ingestReserve({})).toBe(64 * 1024 * 1024);
    expect(ingestReserve({ ingestReserveBytes: 0 })).toBe(0);
    expect(() => ingestReserve({ ingestReserveBytes: -1 })).toThrow(/ingestReserveBytes/);
    expect(() => ingestReserve({ ingestReserveBytes: 2 ** 53 })).toThrow(/ingestReserveBytes/);
    expect(() => ingestReserve({ ingestReserveBytes: '1' })).toThrow(/ingestReserveBytes/);
    expect(isDiskFull({ code: 'SQLITE_FULL' })).toBe(true);
    expect(isDiskFull({ code: 'SQLITE_BUSY' })).toBe(false);
    expect(isDiskFull(null)).toBe(false);
  });
});
