/**
 * Issue 17: an outage longer than the agent's outbox. A real agent with a tiny cap
 * (STATE/outbox-cap.json) runs while its console is down for the whole outage; routine events are
 * dropped oldest first, evidence never, and agent.events_dropped records list exactly what went.
 * The console comes back: every kept event and every drop record arrives, and the console's chain
 * check bridges each hole with the record ("dropped by the agent, accounted for"), no gap left open.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SekimoriEvent } from '../../protocol/events.js';
import { enrollAgent, startConsole, tempDir, waitFor, type TestAgent, type TestConsole } from './harness.js';

const CAP = { maxEvents: 40, maxBytes: 10_000_000 };

describe('outbox at its cap during a long outage', () => {
  let c: TestConsole;
  let a: TestAgent;
  beforeAll(async () => {
    const scope = tempDir('outbox-cap-software-scope');
    c = await startConsole({
      policy: {
        agent: { heartbeatSeconds: 2, uploadBatchSize: 50 },
        software: { mode: 'monitor', locations: [scope], preExec: { enabled: false, fallback: 'deny', timeoutMs: 1000, marks: [] } },
      },
    });
    a = await enrollAgent(c, { start: false });
    writeFileSync(join(a.stateDir, 'outbox-cap.json'), JSON.stringify(CAP));
  }, 120_000);
  afterAll(async () => {
    await a?.cleanup();
    await c?.cleanup();
  });

  it('drops only routine events, records exactly which, and the console bridges every hole', async () => {
    await c.stop(); // down for the whole outage
    await a.start();
    const o = a.outbox();
    const appended: SekimoriEvent[] = [];
    try {
      for (let i = 0; i < 150; i++) {
        const e =
          i % 5 === 0
            ? o.append({ type: 'usb.blocked', data: { test: i, product: 'USB DISK 2.0' } } as never)
            : i % 5 === 1
              ? o.append({ type: 'software.preexec_unavailable', data: { reason: `r${i}` } } as never)
              : o.append({ type: 'agent.policy_applied', data: { version: i, issuedBy: 'admin' } } as never);
        if (e.seq > 0) appended.push(e);
      }
    } finally {
      o.close();
    }
    const local = a.outbox();
    const kept = local.pending(10_000, Number.MAX_SAFE_INTEGER);
    const head = local.lastSeq();
    local.close();
    const keptSeqs = new Set(kept.map((e) => e.seq));
    const records = kept.filter((e) => e.type === 'agent.events_dropped');
    expect(records.length).toBeGreaterThan(0);
    // Evidence never dropped: every usb.blocked appended is still queued.
    for (const e of appended.filter((x) => x.type === 'usb.blocked')) expect(keptSeqs.has(e.seq)).toBe(true);
    const claimed = records.flatMap((r) => (r.data as { ranges: { from: number; to: number }[] }).ranges.flatMap((x) => Array.from({ length: x.to - x.from + 1 }, (_, k) => x.from + k)));
    // Every seq 1..head is either kept or claimed by a record, never both.
    for (let s = 1; s <= head; s++) expect(keptSeqs.has(s) !== claimed.includes(s), `seq ${s}`).toBe(true);
    // What was dropped is routine or notable only.
    const byType = records.reduce<Record<string, number>>((acc, r) => {
      for (const [t, n] of Object.entries((r.data as { byType: Record<string, number> }).byType)) acc[t] = (acc[t] ?? 0) + n;
      return acc;
    }, {});
    expect(Object.keys(byType).every((t) => t === 'agent.policy_applied' || t === 'software.preexec_unavailable')).toBe(true);

    // The console returns on the same address.
    await c.start();
    await waitFor('the outbox to drain', () => a.status().outboxDepth === 0 || null, 90_000, 500);
    const db = new Database(join(c.dataDir, 'console.db'), { readonly: true, fileMustExist: true });
    try {
      const rows = db.prepare('SELECT seq, hash, chain FROM events WHERE agent_id = ? ORDER BY seq').all(a.agentId) as { seq: number; hash: string; chain: string }[];
      const last = (db.prepare('SELECT max(seq) AS m FROM events WHERE agent_id = ?').get(a.agentId) as { m: number }).m;
      // Exactly the kept events (and whatever the agent appended since), each once.
      const held = new Set(rows.map((r) => r.seq));
      expect(held.size).toBe(rows.length);
      for (const e of kept) expect(held.has(e.seq), `kept #${e.seq}`).toBe(true);
      for (const s of claimed) expect(held.has(s), `dropped #${s}`).toBe(false);
      for (const e of kept) expect(rows.find((r) => r.seq === e.seq)!.hash).toBe(e.hash);
      // Every hole is accounted for by a verified drop record; none left open, none unverified.
      expect(db.prepare('SELECT count(*) AS n FROM chain_gaps WHERE agent_id = ?').get(a.agentId)).toEqual({ n: 0 });
      const drops = db.prepare('SELECT from_seq, to_seq, status FROM chain_drops WHERE agent_id = ? ORDER BY from_seq').all(a.agentId) as { from_seq: number; to_seq: number; status: string }[];
      expect(drops.every((d) => d.status === 'accounted')).toBe(true);
      const accountedSeqs = drops.flatMap((d) => Array.from({ length: d.to_seq - d.from_seq + 1 }, (_, k) => d.from_seq + k));
      expect(accountedSeqs.sort((x, y) => x - y)).toEqual([...claimed].sort((x, y) => x - y));
      expect(db.prepare("SELECT count(*) AS n FROM events WHERE type = 'agent.drop_unverified'").get()).toEqual({ n: 0 });
      expect((db.prepare("SELECT count(*) AS n FROM events WHERE type = 'agent.drop_accounted'").get() as { n: number }).n).toBe(records.length);
      // Seqs 1..last: held or accounted for, nothing unexplained.
      for (let s = 1; s <= last; s++) expect(held.has(s) || accountedSeqs.includes(s), `seq ${s}`).toBe(true);
      // Only events right after a hole carry 'gap'; everything else links.
      for (const r of rows) if (r.chain !== 'ok') expect(r.chain === 'gap' && accountedSeqs.includes(r.seq - 1), `#${r.seq} ${r.chain}`).toBe(true);
      process.stdout.write(`outbox-cap measured: ${JSON.stringify({ cap: CAP, appended: 150, kept: kept.length, dropped: claimed.length, records: records.length, byType })}\n`);
    } finally {
      db.close();
    }
  }, 240_000);
});
