/**
 * Disk full on the upload route, in-process: SQLite's own SQLITE_FULL, raised by capping the
 * database at its current size (PRAGMA max_page_count) — the same error a full filesystem gives
 * (test/integration/disk-full.test.ts does it with a real full tmpfs).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainEvent, genesisHash, type SekimoriEvent } from '../../protocol/events.js';
import { buildTestApp, type TestAgent, type TestApp } from '../http/app.js';

let t: TestApp;
let agent: TestAgent;
beforeAll(async () => {
  t = await buildTestApp();
  agent = await t.enrollAgent();
});
afterAll(() => t.close());

function chain(agentId: string, n: number): SekimoriEvent[] {
  const out: SekimoriEvent[] = [];
  let prev = genesisHash(agentId);
  for (let i = 1; i <= n; i++) {
    // Large-ish data so a batch needs new pages.
    const e = chainEvent(prev, { id: randomUUID(), agentId, seq: i, ts: new Date().toISOString(), type: 'usb.blocked', severity: 'warning', user: null, data: { i, pad: 'x'.repeat(2000) } });
    out.push(e);
    prev = e.hash;
  }
  return out;
}

const upload = (events: SekimoriEvent[]) =>
  t.inject({ method: 'POST', url: '/api/agent/events', headers: { ...agent.headers, 'content-type': 'application/json' }, payload: JSON.stringify({ batchId: randomUUID(), events }) });

describe('upload on a full disk', () => {
  it('503 + Retry-After + JSON, nothing half-written, web UI up; once space returns the outage is recorded first and every event arrives once', async () => {
    const db = t.ctx.db;
    const c = chain(agent.agentId, 60);
    expect((await upload(c.slice(0, 10))).statusCode).toBe(200);
    const held = () => (db.prepare('SELECT count(*) AS n FROM events WHERE agent_id = ?').get(agent.agentId) as { n: number }).n;
    // Full: the database cannot grow by one page.
    const pages = db.pragma('page_count', { simple: true }) as number;
    db.pragma(`max_page_count = ${pages}`);
    for (let i = 0; i < 3; i++) {
      const r = await upload(c.slice(10, 60));
      expect(r.statusCode).toBe(503);
      expect(r.headers['retry-after']).toBe('60');
      expect(JSON.parse(r.body)).toMatchObject({ error: 'disk_full', message: expect.stringContaining('disk is full') });
    }
    expect(held()).toBe(10); // the batch's transaction rolled back whole
    expect(t.logs).toEqual([]); // a refusal, not an internal error
    // The console still serves its web UI.
    const page = await t.inject({ method: 'GET', url: '/login' });
    expect(page.statusCode).toBe(200);
    // Space returns.
    db.pragma('max_page_count = 1073741823');
    const ok = await upload(c.slice(10, 60));
    expect(ok.statusCode).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ stored: 50, lastContiguousSeq: 60, missing: [] });
    expect(held()).toBe(60);
    const outage = db.prepare("SELECT rid, data FROM events WHERE type = 'console.disk_full'").all() as { rid: number; data: string }[];
    expect(outage).toHaveLength(1);
    expect(JSON.parse(outage[0]!.data)).toMatchObject({ refusedBatches: 3, refusedEvents: 150, reason: 'sqlite_full' });
    // Written before the events that arrived after it.
    const firstNew = db.prepare('SELECT min(rid) AS r FROM events WHERE agent_id = ? AND seq > 10').get(agent.agentId) as { r: number };
    expect(outage[0]!.rid).toBeLessThan(firstNew.r);
    // Recorded once: the next upload writes no second one.
    expect((await upload(c.slice(50, 60))).statusCode).toBe(200);
    expect((db.prepare("SELECT count(*) AS n FROM events WHERE type = 'console.disk_full'").get() as { n: number }).n).toBe(1);
  });
});

describe('the heartbeat answer says what the console lacks (re-send after a restore)', () => {
  it('headSeq, lastContiguousSeq and missing for this agent only', async () => {
    const other = await t.enrollAgent();
    const c = chain(other.agentId, 6);
    const up = await t.inject({ method: 'POST', url: '/api/agent/events', headers: { ...other.headers, 'content-type': 'application/json' }, payload: JSON.stringify({ batchId: randomUUID(), events: [c[0], c[1], c[4], c[5]] }) });
    expect(JSON.parse(up.body)).toMatchObject({ headSeq: 6, lastContiguousSeq: 2, missing: [{ from: 3, to: 4 }] });
    const beat = { ts: new Date().toISOString(), hostname: 'pc-2', os: 'test', agentVersion: 'test', policyVersion: 1, outboxDepth: 0, monitorOnly: false };
    const r = await t.inject({ method: 'POST', url: '/api/agent/heartbeat', headers: { ...other.headers, 'content-type': 'application/json' }, payload: JSON.stringify(beat) });
    expect(r.statusCode).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ headSeq: 6, lastContiguousSeq: 2, missing: [{ from: 3, to: 4 }] });
  });
});
