/**
 * The batch check in its worker thread (console/backbone/batch-checker.ts): the compiled worker
 * (dist/, built by `npm test` before the tests) answers exactly what the inline check answers —
 * events, 400s, 413s — and a worker that dies or cannot start never loses an upload silently:
 * what waits is refused with 503 + Retry-After, the next upload gets a new worker, and after three
 * failed starts in a row the console checks inline.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { inlineChecker, WorkerChecker, type BatchChecker } from '../../console/backbone/batch-checker.js';
import { MAX_BATCH_EVENTS } from '../../console/backbone/batch-check.js';
import { HttpError } from '../../console/module.js';
import { chainEvent, genesisHash, type SekimoriEvent } from '../../protocol/events.js';

const AGENT = randomUUID();
const WORKER_FILE = new URL('../../dist/console/backbone/batch-check-worker.js', import.meta.url);

function chain(n: number): SekimoriEvent[] {
  const out: SekimoriEvent[] = [];
  let prev = genesisHash(AGENT);
  for (let i = 1; i <= n; i++) {
    // Keys out of order on purpose: what is stored is the canonical text the hash covered.
    const e = chainEvent(prev, { id: randomUUID(), agentId: AGENT, seq: i, ts: new Date(1_790_000_000_000 + i).toISOString(), type: 'agent.stopped', severity: 'notice', user: i % 2 ? null : 'staff', data: { reason: 'signal', pid: i } });
    out.push(e);
    prev = e.hash;
  }
  return out;
}

const body = (x: unknown) => Buffer.from(JSON.stringify(x));

async function refusal(c: BatchChecker, b: Uint8Array): Promise<HttpError> {
  try {
    await c.check(AGENT, b);
  } catch (e) {
    if (e instanceof HttpError) return e;
    throw e;
  }
  throw new Error('not refused');
}

const checkers: WorkerChecker[] = [];
afterEach(async () => {
  for (const c of checkers.splice(0)) await c.close();
});

function worker(script: ConstructorParameters<typeof WorkerChecker>[0], log: string[] = []): WorkerChecker {
  const c = new WorkerChecker(script, (m) => log.push(m));
  checkers.push(c);
  return c;
}

describe('the compiled batch-check worker', () => {
  it('is built (npm test builds before testing)', () => {
    expect(existsSync(fileURLToPath(WORKER_FILE))).toBe(true);
  });

  it('answers what the inline check answers: events with their verdicts, a tampered hash marked, not refused', async () => {
    const events = chain(5);
    events[2] = { ...events[2]!, data: { reason: 'edited', pid: 3 } }; // content changed after hashing
    const w = worker({ file: WORKER_FILE });
    const b = body({ batchId: 'b1', events });
    const fromWorker = await w.check(AGENT, b);
    expect(fromWorker).toEqual(await inlineChecker.check(AGENT, b));
    expect(fromWorker.map((e) => e.hashOk)).toEqual([true, true, false, true, true]);
    expect(fromWorker[0]).toMatchObject({ seq: 1, user: null, dataJson: '{"pid":1,"reason":"signal"}', dataErrors: null });
    expect(fromWorker[0]).not.toHaveProperty('data');
  });

  it('refuses as the inline check refuses: malformed JSON, a bad event, too many events', async () => {
    const w = worker({ file: WORKER_FILE });
    const cases = [
      Buffer.from('{"batchId": "b", "events": ['),
      body({ batchId: 'b', events: [{ ...chain(1)[0]!, severity: 'loud' }] }),
      body({ batchId: 'b', events: [{ ...chain(1)[0]!, agentId: randomUUID() }] }),
      body({ batchId: 'b', events: Array.from({ length: MAX_BATCH_EVENTS + 1 }, () => 0) }),
    ];
    const got = [];
    for (const b of cases) {
      const [a, i] = [await refusal(w, b), await refusal(inlineChecker, b)];
      expect({ status: a.status, code: a.code, message: a.message, details: a.details }).toEqual({ status: i.status, code: i.code, message: i.message, details: i.details });
      got.push(`${a.status} ${a.code}`);
    }
    expect(got).toEqual(['400 malformed_json', '400 invalid_events', '400 invalid_events', '413 batch_too_large']);
  });

  it('keeps answers apart when many uploads wait at once (answered by id, in any order)', async () => {
    const w = worker({ file: WORKER_FILE });
    const batches = Array.from({ length: 20 }, (_, i) => chain(1 + i));
    const answers = await Promise.all(batches.map((events) => w.check(AGENT, body({ batchId: randomUUID(), events }))));
    expect(answers.map((a) => a.length)).toEqual(batches.map((b) => b.length));
    expect(answers.map((a) => a.at(-1)!.hash)).toEqual(batches.map((b) => b.at(-1)!.hash));
  });

  it("takes a body that is a slice of a larger buffer (Node pools small bodies), and leaves the caller's buffer usable", async () => {
    const w = worker({ file: WORKER_FILE });
    const text = JSON.stringify({ batchId: 'b', events: chain(2) });
    const pool = Buffer.from(`xxxx${text}yyyy`);
    const slice = pool.subarray(4, 4 + text.length);
    expect(await w.check(AGENT, slice)).toHaveLength(2);
    expect(pool.toString()).toBe(`xxxx${text}yyyy`);
  });
});

describe('a worker that dies', () => {
  // Answers its first upload (no events), exits on the second.
  const ANSWERS_ONCE = `const { parentPort } = require('node:worker_threads');
    let n = 0;
    parentPort.on('message', (m) => { if (n++ === 0) parentPort.postMessage({ id: m.id, events: [] }); else process.exit(3); });`;
  const NEVER_ANSWERS = `require('node:worker_threads').parentPort.on('message', () => process.exit(4));`;

  it('refuses what waited with 503 + Retry-After, and the next upload gets a new worker', async () => {
    const log: string[] = [];
    const w = worker({ code: ANSWERS_ONCE }, log);
    const b = body({ batchId: 'b', events: chain(1) });
    expect(await w.check(AGENT, b)).toEqual([]);
    const r = await refusal(w, b);
    expect({ status: r.status, code: r.code, headers: r.headers }).toEqual({ status: 503, code: 'batch_check_restarting', headers: { 'retry-after': '1' } });
    expect(log.join('\n')).toMatch(/worker thread ended \(exit code 3\); 1 upload\(s\) refused with 503/);
    expect(await w.check(AGENT, b)).toEqual([]); // a fresh worker, answering its first upload
  });

  it('that cannot start three times in a row: refused meanwhile, then checked inline, said once', async () => {
    const log: string[] = [];
    const w = worker({ code: NEVER_ANSWERS }, log);
    const b = body({ batchId: 'b', events: chain(3) });
    for (let i = 0; i < 3; i++) expect((await refusal(w, b)).status).toBe(503);
    expect(await w.check(AGENT, b)).toEqual(await inlineChecker.check(AGENT, b));
    expect(await w.check(AGENT, b)).toHaveLength(3);
    expect(log.filter((m) => m.includes('checking inline'))).toHaveLength(1);
  });
});
