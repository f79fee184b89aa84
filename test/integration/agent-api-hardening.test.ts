/**
 * Issue 10, items 1, 4, 6 (enrolment), 12 and 14 (deep data): attacks an enrolled agent, or anyone
 * who can reach the port, made on the agent API — each run against a real console and real agents
 * over mutual TLS on loopback, and each a case that worked before:
 *  1. one event stamped 9999-12-31 made /, /report and /events?type=usb.* answer 500 for good;
 *  4. one agent could upload without limit (317 MB in 10 s);
 *  6. every bad enrolment token wrote an event on the console's chain (~211/s);
 * 12. a heartbeat could take another terminal's host name unnoticed;
 * 14. event data nested 5,000 levels deep gave a 500.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPaths } from '../../agent/state.js';
import { Outbox } from '../../agent/report/outbox.js';
import { createSession } from '../../console/web/auth.js';
import { eventHash, type SekimoriEvent } from '../../protocol/events.js';
import { enrollAgent, rawRequest, startConsole, waitFor, type ConsoleEventJson, type TestAgent, type TestConsole } from './harness.js';

const FAR = '9999-12-31T23:59:59.999Z';

function openDb(c: TestConsole): Database.Database {
  return new Database(join(c.dataDir, 'console.db'), { timeout: 15_000 });
}

/** A web session for the initial admin, made in the console's own database (the login itself is tested elsewhere). */
function adminCookie(c: TestConsole): string {
  const db = openDb(c);
  try {
    return `__Host-sekimori_session=${createSession(db, 'admin').token}`;
  } finally {
    db.close();
  }
}

function page(c: TestConsole, path: string, cookie: string) {
  return rawRequest(c, 'GET', path, { headers: { cookie } });
}

function seqsOf(c: TestConsole, agentId: string): number[] {
  const db = new Database(join(c.dataDir, 'console.db'), { readonly: true });
  try {
    return (db.prepare('SELECT seq FROM events WHERE agent_id = ? ORDER BY seq').all(agentId) as { seq: number }[]).map((r) => r.seq);
  } finally {
    db.close();
  }
}

/** Appends one event through the agent's own outbox code, stamped with `at` (a terminal whose clock says so). */
function appendAt(a: TestAgent, at: Date, data: Record<string, unknown> = { product: 'USB DISK 2.0' }): SekimoriEvent {
  const o = new Outbox(agentPaths(a.stateDir).outbox, a.agentId);
  try {
    return o.append({ type: 'usb.blocked', data }, at);
  } finally {
    o.close();
  }
}

function pending(a: TestAgent, n: number): SekimoriEvent[] {
  const o = a.outbox();
  try {
    return o.pending(n, 64 * 1024 * 1024);
  } finally {
    o.close();
  }
}

const postEvents = (c: TestConsole, a: TestAgent, events: unknown[]) => rawRequest(c, 'POST', '/api/agent/events', { agentState: a.stateDir, body: JSON.stringify({ batchId: 'b', events }) });

describe('agent clocks never decide where an event sorts (item 1)', () => {
  let c: TestConsole;
  const agents: TestAgent[] = [];
  let cookie: string;
  beforeAll(async () => {
    c = await startConsole({ policy: { agent: { heartbeatSeconds: 1 } } });
    cookie = adminCookie(c);
  });
  afterAll(async () => {
    for (const a of agents) await a.cleanup();
    await c.cleanup();
  });

  const pagesAnswer = async () => {
    const out: Record<string, number> = {};
    for (const p of ['/', '/report', '/events?type=usb.*', '/events']) out[p] = (await page(c, p, cookie)).status;
    return out;
  };
  const allOk = { '/': 200, '/report': 200, '/events?type=usb.*': 200, '/events': 200 };

  it('a usb.blocked stamped 9999-12-31 is accepted and stored under its receipt time; the pages keep answering', async () => {
    const a = await enrollAgent(c, { start: false });
    agents.push(a);
    const sent = appendAt(a, new Date(FAR));
    await a.start();
    const [stored] = await waitFor('the far-future event at the console', () => {
      const e = c.events(['--agent', a.agentId, '--type', 'usb.blocked']);
      return e.length === 1 ? e : null;
    });
    // Before: 500 on all of these, for good.
    expect(await pagesAnswer()).toEqual(allOk);
    // Nothing is stuck in the agent: its outbox drains and nothing was set aside.
    await waitFor('the agent outbox to drain', () => a.status().outboxDepth === 0);
    expect(a.status().deadLetters).toBe(0);
    expect(stored!.agentTs).toBe(FAR);
    expect(stored!.ts < '2100-01-01T00:00:00.000Z').toBe(true);
    expect(stored!.chain).toBe('ok');
    // The hash the agent made still verifies, with the claimed time put back.
    const asSigned = { ...(stored as unknown as SekimoriEvent), ts: stored!.agentTs! };
    expect(eventHash(asSigned.prevHash, asSigned)).toBe(sent.hash);
    const skew = await waitFor('agent.clock_skew', () => c.events(['--type', 'agent.clock_skew']).find((e) => e.terminalId === a.agentId));
    expect(skew.data).toMatchObject({ agentId: a.agentId, claimed: FAR, seq: sent.seq });
    const listed = await page(c, `/events?type=usb.blocked&terminal=${a.agentId}`, cookie);
    expect(listed.status).toBe(200);
    const db = openDb(c);
    const { rid } = db.prepare('SELECT rid FROM events WHERE id = ?').get(sent.id) as { rid: number };
    db.close();
    const detail = await page(c, `/events/${rid}`, cookie);
    expect(detail.body).toContain(`<dd id="agent-ts"><code>${FAR}</code>`);
  });

  it('a database poisoned by an earlier version recovers when the console is upgraded', async () => {
    const b = await enrollAgent(c, { start: false });
    agents.push(b);
    const poison = appendAt(b, new Date(FAR));
    await c.stop();
    const db = openDb(c);
    try {
      // Back to the schema earlier versions had (when the test runs against them, this is a no-op) ...
      const cols = (db.prepare('PRAGMA table_info(events)').all() as { name: string }[]).map((x) => x.name);
      if (cols.includes('agent_ts')) {
        db.exec('ALTER TABLE events DROP COLUMN agent_ts');
        db.prepare("DELETE FROM schema_migrations WHERE module = 'core' AND version > 1").run();
      }
      // ... and the row exactly as their ingest stored it: the agent's ts as it came.
      db.prepare(
        `INSERT INTO events (id, agent_id, seq, ts, type, severity, user, data, prev_hash, hash, terminal_id, chain, received_at)
         VALUES (@id, @agentId, @seq, @ts, @type, @severity, @user, @data, @prevHash, @hash, @agentId, 'ok', @receivedAt)`,
      ).run({ ...poison, data: JSON.stringify(poison.data), receivedAt: new Date().toISOString() });
      db.prepare('UPDATE agents SET last_seq = ?, last_hash = ? WHERE id = ?').run(poison.seq, poison.hash, b.agentId);
      // The rollup had already counted everything before the poisoned row.
      db.prepare('UPDATE web_rollup_head SET rid = (SELECT max(rid) - 1 FROM events) WHERE one = 1').run();
    } finally {
      db.close();
    }
    await c.start();
    expect(await pagesAnswer()).toEqual(allOk);
    const [e] = c.events(['--agent', b.agentId, '--type', 'usb.blocked']);
    expect(e?.agentTs).toBe(FAR);
    expect(e!.ts < '2100-01-01T00:00:00.000Z').toBe(true);
  });
});

describe('upload limits per agent (item 4), enrolment refusals (item 6), deep data (item 14), host names (item 12)', () => {
  let c: TestConsole;
  let x: TestAgent;
  let y: TestAgent;
  let p: TestAgent;
  let q: TestAgent;
  let cookie: string;
  const MiB = 1024 * 1024;
  beforeAll(async () => {
    // Strict limits, so that no refill can make a refused batch pass while the test runs.
    c = await startConsole({ config: { limits: { agentEvents: { burst: 200, perSecond: 1 }, agentBytes: { burst: 1 * MiB, perSecond: 1024 } } } });
    x = await enrollAgent(c, { start: false });
    y = await enrollAgent(c, { start: false });
    p = await enrollAgent(c, { start: false });
    q = await enrollAgent(c, { start: false });
    cookie = adminCookie(c);
  });
  afterAll(async () => {
    for (const a of [x, y, p, q]) await a?.cleanup();
    await c.cleanup();
  });
  const count = (agentId: string) => seqsOf(c, agentId).length;

  it('large batches beyond the volume limit get 429 with Retry-After and store nothing', async () => {
    for (let i = 0; i < 40; i++) appendAt(x, new Date(), { pad: 'x'.repeat(30_000), i });
    const events = pending(x, 40);
    const statuses: number[] = [];
    let refused: Awaited<ReturnType<typeof rawRequest>> | null = null;
    for (let i = 0; i < 4 && refused === null; i++) {
      const r = await postEvents(c, x, events.slice(i * 10, i * 10 + 10)); // ~300 KB each
      statuses.push(r.status);
      if (r.status !== 200) refused = r;
    }
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(refused?.status).toBe(429);
    expect(refused!.json()).toMatchObject({ error: 'rate_limited' });
    expect(Number(refused!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(count(x.agentId)).toBe(30);
    expect((await postEvents(c, x, events.slice(30))).status).toBe(429);
    expect(count(x.agentId)).toBe(30);
  });

  it('more events than the rate limit allows get 429; the alert is one event per agent and minute', async () => {
    for (let i = 0; i < 250; i++) appendAt(y, new Date(), { i });
    const events = pending(y, 250);
    expect((await postEvents(c, y, events.slice(0, 200))).status).toBe(200);
    const r = await postEvents(c, y, events.slice(200));
    expect(r.status).toBe(429);
    expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect((await postEvents(c, y, events.slice(200))).status).toBe(429);
    expect(count(y.agentId)).toBe(200);
    // One alert per agent and minute, not one per refused request (the rest are counted: see below).
    const floods = c.events(['--type', 'agent.flood']);
    expect(floods.filter((e) => e.terminalId === x.agentId).map((e) => e.data.limit)).toEqual(['bytes']);
    expect(floods.filter((e) => e.terminalId === y.agentId).map((e) => e.data.limit)).toEqual(['events']);
    expect(floods.every((e) => e.severity === 'critical')).toBe(true);
  });

  it('event data nested 5,000 levels deep is a 400 naming the path; deep heartbeat and enrolment bodies are no 500 either', async () => {
    const e = appendAt(p, new Date());
    // Built as text: JSON.stringify itself cannot write something this deep.
    const body = JSON.stringify({ batchId: 'b', events: [{ ...e, data: 'DEEP' }] }).replace('"DEEP"', '{"a":'.repeat(5000) + '{}' + '}'.repeat(5000));
    const r = await rawRequest(c, 'POST', '/api/agent/events', { agentState: p.stateDir, body });
    expect(r.status).toBe(400);
    expect(r.json()).toMatchObject({ error: 'invalid_events' });
    expect((r.json() as { details: string[] }).details[0]).toMatch(/^events\[0\]\.data(\.a){32}: nested deeper than 32 levels$/);
    const deepText = '{"a":'.repeat(5000) + '1' + '}'.repeat(5000);
    const beat = await rawRequest(c, 'POST', '/api/agent/heartbeat', { agentState: p.stateDir, body: `{"hostname":${'['.repeat(5000)}${']'.repeat(5000)},"x":${deepText}}` });
    expect(beat.status).toBeLessThan(500);
    const enroll = await rawRequest(c, 'POST', '/api/agent/enroll', { body: `{"token":${deepText}}` });
    expect(enroll.status).toBeGreaterThanOrEqual(400);
    expect(enroll.status).toBeLessThan(500);
  });

  it('a heartbeat that takes another terminal’s name is recorded, and the lists tell the two apart', async () => {
    const beat = (a: TestAgent, hostname: string) =>
      rawRequest(c, 'POST', '/api/agent/heartbeat', {
        agentState: a.stateDir,
        body: JSON.stringify({ ts: new Date().toISOString(), hostname, os: 'Debian', agentVersion: 't', policyVersion: 1, outboxDepth: 0, monitorOnly: false }),
      });
    expect((await beat(p, 'madoguchi-01')).status).toBe(200);
    expect((await beat(q, 'madoguchi-01')).status).toBe(200);
    const changed = c.events(['--type', 'agent.hostname_changed']);
    expect(changed.find((e) => e.terminalId === p.agentId)?.data).toMatchObject({ new: 'madoguchi-01' });
    expect(changed.find((e) => e.terminalId === q.agentId)?.data).toMatchObject({ new: 'madoguchi-01', sameNameAs: [p.agentId] });
    // A beat without a name keeps the name (it used to blank it); the same name again is no change.
    expect((await beat(q, '')).status).toBe(200);
    expect((await beat(q, 'madoguchi-01')).status).toBe(200);
    expect(c.events(['--type', 'agent.hostname_changed']).filter((e) => e.terminalId === q.agentId)).toHaveLength(1);
    const [pp, qq] = [p.agentId.slice(0, 8), q.agentId.slice(0, 8)];
    const list = await waitFor('the terminal list to show the taken name', async () => {
      const r = await page(c, '/terminals', cookie);
      return r.body.split('>madoguchi-01</a>').length === 3 ? r : null; // both rows (beats are written once a second)
    });
    expect(list.status).toBe(200);
    for (const id of [pp, qq]) expect(list.body).toMatch(new RegExp(`madoguchi-01</a> <code class="id-prefix">${id}</code> <span class="badge sev-warning dup-name"`));
    const detail = await page(c, `/terminals/${q.agentId}`, cookie);
    expect(detail.body).toMatch(new RegExp(`<dd id="same-name"><a href="/terminals/${p.agentId}">madoguchi-01 \\(${pp}\\)</a>`));
    const log = await page(c, '/events?type=agent.hostname_changed', cookie);
    expect(log.body).toContain(`madoguchi-01 (${pp})`);
    expect(log.body).toContain(`madoguchi-01 (${qq})`);
  });

  it('bad enrolment tokens are rate-limited per address (429) and fold into one event plus a counted summary', async () => {
    const before = c.events(['--type', 'admin.enroll_refused']).length;
    const statuses: number[] = [];
    let retryAfter = '';
    for (let i = 0; i < 30; i++) {
      const r = await rawRequest(c, 'POST', '/api/agent/enroll', {
        body: JSON.stringify({ token: `skt_guess${i}`, agentId: '00000000-0000-4000-8000-000000000000', csrPem: 'x', hostname: 'attacker' }),
      });
      statuses.push(r.status);
      if (r.status === 429) retryAfter = String(r.headers['retry-after']);
    }
    expect(statuses.every((s) => s === 403 || s === 429)).toBe(true);
    expect(statuses.filter((s) => s === 403).length).toBeLessThanOrEqual(20);
    expect(statuses).toContain(429);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    // Before: one event per attempt (30). Now the first at once and the rest counted (a second
    // one only if the minute's window happened to end during the loop).
    const now = c.events(['--type', 'admin.enroll_refused']);
    expect(now.length - before).toBeGreaterThanOrEqual(1);
    expect(now.length - before).toBeLessThanOrEqual(2);
  });

  /** Attempts accounted for: each event written at once stands for one, a summary for `repeated` more. */
  const accounted = (events: ConsoleEventJson[]) => events.reduce((n, e) => n + (typeof e.data.repeated === 'number' ? e.data.repeated : 1), 0);

  it('on shutdown the folded refusals and floods are written as counted summaries: every attempt is accounted for', async () => {
    await c.stop();
    const refused = c.events(['--type', 'admin.enroll_refused']);
    expect(refused.some((e) => typeof e.data.repeated === 'number')).toBe(true);
    expect(accounted(refused)).toBe(30);
    const yFloods = c.events(['--type', 'agent.flood']).filter((e) => e.terminalId === y.agentId);
    expect(yFloods.some((e) => e.data.repeated === 1)).toBe(true);
    expect(accounted(yFloods)).toBe(2);
    expect(accounted(c.events(['--type', 'agent.flood']).filter((e) => e.terminalId === x.agentId))).toBe(2);
  });
});

describe('a real agent over its limit (item 4)', () => {
  let c: TestConsole;
  let a: TestAgent;
  beforeAll(async () => {
    // The burst covers the agent's first batch (500, before it has the console's policy): a batch
    // larger than a whole burst costs one burst, so a smaller burst would not limit it.
    c = await startConsole({ policy: { agent: { heartbeatSeconds: 1, uploadBatchSize: 50 } }, config: { limits: { agentEvents: { burst: 500, perSecond: 25 } } } });
    a = await enrollAgent(c, { start: false });
  });
  afterAll(async () => {
    await a.cleanup();
    await c.cleanup();
  });

  it('keeps what the console refuses with 429, waits as told, and delivers every event exactly once', async () => {
    a.append(900);
    await a.start();
    const o = a.outbox();
    const n = o.lastSeq();
    o.close();
    await waitFor('every event delivered', () => seqsOf(c, a.agentId).length >= n, 90_000, 250);
    const seqs = seqsOf(c, a.agentId).slice(0, n);
    expect(seqs).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(c.events(['--type', 'agent.flood']).filter((e) => e.terminalId === a.agentId).length).toBeGreaterThanOrEqual(1);
    expect(a.output()).toMatch(/console asks to wait \d+ s \(429\)/);
    expect(a.status().deadLetters).toBe(0);
    expect(c.events(['--agent', a.agentId, '--type', 'agent.error'])).toHaveLength(0);
  }, 120_000);
});
