/**
 * Retention with a real console and a real agent (issue 17): events the agent delivered, aged past
 * a usb retention period, are archived by `sekimori-console retention run` while the console
 * serves; they are deleted only after the archive file exists and verifies; the archive verifies
 * offline (`archive verify --data`) and a tampered copy fails; the agent's next events ingest
 * without a gap or chain finding; the report's ログの取得と完全性 item shows no chain finding and
 * counts the archived period as reported.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openConsole } from '../../console/core/context.js';
import { evaluate } from '../../console/report/items.js';
import { gatherFacts } from '../../console/report/store.js';
import { enrollAgent, startConsole, tempDir, waitFor, type TestAgent, type TestConsole } from './harness.js';

const DAY = 86_400_000;

describe('retention with a real console and agent', () => {
  let c: TestConsole;
  let a: TestAgent;
  const old = new Date(Date.now() - 400 * DAY);
  const oldIso = old.toISOString();
  const jstDay = (d: Date) => new Date(d.getTime() + 9 * 3_600_000).toISOString().slice(0, 10);

  beforeAll(async () => {
    // The agent runs on THIS machine: its software capability watches only an empty folder of its own.
    const scope = tempDir('archive-software-scope');
    c = await startConsole({ policy: { agent: { heartbeatSeconds: 1, uploadBatchSize: 500 }, software: { mode: 'monitor', locations: [scope], preExec: { enabled: false, fallback: 'deny', timeoutMs: 1000, marks: [] } } } });
    a = await enrollAgent(c);
  }, 120_000);

  afterAll(async () => {
    await a?.cleanup();
    await c?.cleanup();
  });

  it('archives, verifies, deletes after the archive; the chain carries on; the report stays green on chains', async () => {
    a.append(40, 'usb.blocked');
    await waitFor('40 usb.blocked at the console', () => c.events(['--agent', a.agentId, '--type', 'usb.blocked']).length >= 40 || null, 60_000, 250);
    // Age the delivered usb events by 400 days the way the console stores an implausible clock
    // (agent_ts keeps what the agent signed), so their hashes still recompute.
    const db = new Database(join(c.dataDir, 'console.db'), { timeout: 15_000 });
    try {
      db.prepare("UPDATE events SET agent_ts = ts, ts = ? WHERE agent_id = ? AND type = 'usb.blocked'").run(oldIso, a.agentId);
    } finally {
      db.close();
    }
    expect(c.cli(['retention', 'set', '--family', 'usb', '--days', '365']).code).toBe(0);
    const run = c.cli(['retention', 'run', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const r = JSON.parse(run.stdout) as { archives: { id: number; file: string; events: number; deleted: number }[]; deleted: number; failed: string | null };
    expect(r.failed).toBeNull();
    expect(r.archives).toHaveLength(1);
    expect(r.archives[0]!.events).toBeGreaterThanOrEqual(39); // the chain's head (if a usb event) stays
    const file = join(c.dataDir, 'archives', r.archives[0]!.file);
    expect(existsSync(file)).toBe(true);
    const left = c.events(['--agent', a.agentId, '--type', 'usb.blocked']);
    expect(left.length).toBe(40 - r.deleted);

    // The archive event precedes the deletion event in the console's chain.
    const admin = c.events(['--type', 'admin.*']).filter((e) => e.type === 'admin.archive_written' || e.type === 'admin.events_deleted');
    expect(admin.map((e) => e.type)).toEqual(['admin.archive_written', 'admin.events_deleted']);
    expect(admin[0]!.seq).toBeLessThan(admin[1]!.seq);
    expect(admin[1]!.data.events).toBe(r.deleted);

    // Offline verification against this console's key; a one-byte change fails.
    const ok = c.cli(['archive', 'verify', file]);
    expect(ok.code, ok.stderr).toBe(0);
    const bytes = readFileSync(file);
    const bad = join(tempDir('archive-bad'), 'bad.tar');
    const b = Buffer.from(bytes);
    b[Math.floor(b.length / 2)] = b[Math.floor(b.length / 2)]! ^ 0x20;
    writeFileSync(bad, b);
    const ko = c.cli(['archive', 'verify', bad]);
    expect(ko.code).toBe(1);
    expect(ko.stderr).toMatch(/検証失敗|verification failed/);
    // Searchable from the file.
    const s = c.cli(['archive', 'search', file, '--type', 'usb.*', '--agent', a.agentId, '--json']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout.trim().split('\n')).toHaveLength(r.archives[0]!.events);

    // The agent carries on: its next events link to the kept head, no gap, no break.
    a.append(5, 'usb.blocked');
    await waitFor('5 new usb.blocked', () => c.events(['--agent', a.agentId, '--type', 'usb.blocked']).length >= left.length + 5 || null, 60_000, 250);
    const fresh = c.events(['--agent', a.agentId, '--type', 'usb.blocked']).filter((e) => e.ts > oldIso);
    expect(fresh.every((e) => e.chain === 'ok')).toBe(true);
    expect(c.events(['--type', 'agent.gap'])).toHaveLength(0);
    expect(c.events(['--type', 'agent.chain_broken'])).toHaveLength(0);

    // The report: no chain finding today, and the archived day still counts as reported.
    const ctx = openConsole(c.dataDir);
    try {
      for (const day of [jstDay(new Date()), jstDay(old)]) {
        const logs = evaluate(gatherFacts(ctx, day, day, new Date())).find((i) => i.id === 'logs')!;
        const mine = logs.offenders.find((o) => o.terminalId === a.agentId)?.reasons ?? [];
        expect(mine.filter((x) => /^chain_|no_events_in_period/.test(x)), `${day}: ${mine.join(',')}`).toEqual([]);
      }
    } finally {
      ctx.close();
    }
  }, 240_000);
});
