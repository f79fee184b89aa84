import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { beforeEach, describe, expect, it } from 'vitest';
import { migrate } from '../../console/core/db.js';
import { coreMigrations } from '../../console/core/schema.js';
import { createIngester, parseBatch } from '../../console/backbone/ingest.js';
import { HttpError } from '../../console/module.js';
import { chainEvent, genesisHash, type SekimoriEvent } from '../../protocol/events.js';

const AGENT = '0b7c3c1e-8d0b-4b8e-9f5e-2d6f1a3b4c5d';

function chain(n: number): SekimoriEvent[] {
  const out: SekimoriEvent[] = [];
  let prev = genesisHash(AGENT);
  for (let i = 1; i <= n; i++) {
    const e = chainEvent(prev, { id: randomUUID(), agentId: AGENT, seq: i, ts: new Date(1_790_000_000_000 + i).toISOString(), type: 'usb.blocked', severity: 'warning', user: null, data: { i } });
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
    expect(r).toEqual({ acked: [1, 2, 3, 4, 5], stored: 5, duplicates: 0 });
    expect(chainOf().every((x) => x.chain === 'ok')).toBe(true);
  });

  it('is idempotent across batches that overlap', () => {
    const c = chain(6);
    ingest(AGENT, c.slice(0, 4));
    const r = ingest(AGENT, c.slice(2));
    expect(r).toMatchObject({ stored: 2, duplicates: 2, acked: [3, 4, 5, 6] });
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
});
