import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Outbox, capFromDisk, defaultCap, dropRecords, parseCap, seqRanges, DROP_RECORD_MAX_EVENTS, MAX_REQUEUE } from '../../agent/report/outbox.js';
import { eventImportance } from '../../protocol/importance.js';
import { eventHash, type SekimoriEvent } from '../../protocol/events.js';
import { eventDataErrors } from '../../protocol/event-data.js';
import type { NewEvent } from '../../agent/capability.js';

const AGENT = 'agent-cap-test';
const routine = (i: number): NewEvent => ({ type: 'agent.policy_applied', data: { version: i, issuedBy: 'admin' } }) as NewEvent; // info → rank 0
const notable = (i: number): NewEvent => ({ type: 'software.preexec_unavailable', data: { reason: `r${i}` } }) as NewEvent; // notice → rank 1
const evidence = (i: number): NewEvent => ({ type: 'usb.blocked', data: { i } }) as NewEvent; // warning → rank 2

describe('event importance (protocol/importance.ts)', () => {
  it.each([
    ['usb.allowed', 'info', 0],
    ['agent.policy_applied', 'info', 0],
    ['software.preexec_started', 'info', 0],
    ['posture.screen_lock_enforced', 'notice', 1],
    ['software.preexec_unavailable', 'notice', 1],
    ['usb.blocked', 'warning', 2],
    ['usb.file_written', 'notice', 2],
    ['usb.exception_used', 'notice', 2],
    ['mfa.success', 'info', 2],
    ['mfa.offline_used', 'notice', 2],
    ['software.exec_denied', 'warning', 2],
    ['software.installed', 'notice', 2],
    ['admin.anything', 'info', 2],
    ['agent.started', 'info', 2],
    ['agent.events_dropped', 'warning', 2],
    // A routine type raised to warning by its emitter is evidence: severity wins.
    ['usb.allowed', 'warning', 2],
    ['usb.allowed', 'critical', 2],
  ] as const)('%s at %s → rank %d', (type, severity, rank) => {
    expect(eventImportance(type, severity)).toBe(rank);
  });
});

describe('outbox cap decisions (pure)', () => {
  it('derives a cap from the disk, bounded both ways, and survives absurd sizes', () => {
    expect(capFromDisk(0)).toEqual({ maxEvents: 32_768, maxBytes: 16 * 1024 * 1024 });
    expect(capFromDisk(100 * 1024 ** 3)).toEqual({ maxEvents: 2_000_000, maxBytes: 1024 * 1024 * 1024 });
    expect(capFromDisk(Number.NaN)).toEqual(capFromDisk(0));
    expect(capFromDisk(-5)).toEqual(capFromDisk(0));
    expect(capFromDisk(2 ** 80)).toEqual(capFromDisk(100 * 1024 ** 3));
  });
  it.each([
    [{ maxEvents: 10, maxBytes: 1000 }, { maxEvents: 10, maxBytes: 1000 }],
    [{ maxEvents: 0, maxBytes: 0 }, { maxEvents: 0, maxBytes: 0 }],
    [{ maxEvents: -1, maxBytes: 1000 }, null],
    [{ maxEvents: 2 ** 53, maxBytes: 1000 }, null],
    [{ maxEvents: 1.5, maxBytes: 1000 }, null],
    [{ maxEvents: 10 }, null],
    [{ maxEvents: 10, maxBytes: 10, extra: 1 }, null],
    [[10, 10], null],
    ['10', null],
    [null, null],
  ])('parseCap(%j) → %j', (input, out) => {
    expect(parseCap(input)).toEqual(out);
  });
  it('groups seqs into ranges and splits drop records at 256 events', () => {
    expect(seqRanges([1, 2, 3, 7, 9, 10])).toEqual([
      { from: 1, to: 3 },
      { from: 7, to: 7 },
      { from: 9, to: 10 },
    ]);
    const dropped = Array.from({ length: 600 }, (_, i) => ({ seq: i * 2 + 1, hash: 'a'.repeat(64), type: 'usb.allowed', bytes: 10 }));
    const recs = dropRecords(dropped, { maxEvents: 1, maxBytes: 1 }, { 'usb.allowed': 3 });
    expect(recs).toHaveLength(3);
    expect(recs.map((r) => r.events)).toEqual([256, 256, 88]);
    expect(recs[0]!.notAppended).toEqual({ 'usb.allowed': 3 });
    expect(recs[1]!.notAppended).toBeUndefined();
    // Each record fits the declaration (and so the console's 32 KiB data limit).
    for (const r of recs) expect(eventDataErrors('agent.events_dropped', r)).toEqual([]);
    expect(Buffer.byteLength(JSON.stringify(recs[0]))).toBeLessThan(32 * 1024);
    expect(DROP_RECORD_MAX_EVENTS).toBe(256);
  });
});

describe('outbox at its cap', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sekimori-outbox-cap-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const open = (cap: { maxEvents: number; maxBytes: number } | null, delivered?: { maxEvents: number; maxBytes: number; maxAgeMs: number }) =>
    new Outbox(join(dir, 'outbox.db'), AGENT, { cap, ...(delivered ? { delivered } : {}) });
  const all = (o: Outbox) => o.pending(100_000, Number.MAX_SAFE_INTEGER);
  const drops = (o: Outbox) => all(o).filter((e) => e.type === 'agent.events_dropped');

  it('drops routine events oldest first, then notable ones, never evidence, and records exactly what went', () => {
    const o = open({ maxEvents: 20, maxBytes: 10_000_000 });
    const appended: SekimoriEvent[] = [];
    for (let i = 0; i < 6; i++) {
      appended.push(o.append(routine(i)));
      appended.push(o.append(notable(i)));
      appended.push(o.append(evidence(i)));
    }
    expect(o.depth()).toBe(18);
    for (let i = 6; i < 12; i++) appended.push(o.append(evidence(i)));
    const kept = all(o);
    const rec = drops(o);
    expect(rec.length).toBeGreaterThanOrEqual(1);
    const keptSeqs = new Set(kept.map((e) => e.seq));
    const dropped = appended.filter((e) => !keptSeqs.has(e.seq));
    // Every evidence event kept; the dropped ones are the oldest routine events, then notable ones.
    expect(appended.filter((e) => e.type === 'usb.blocked').every((e) => keptSeqs.has(e.seq))).toBe(true);
    const routineSeqs = appended.filter((e) => e.type === 'agent.policy_applied').map((e) => e.seq);
    const droppedRoutine = dropped.filter((e) => e.type === 'agent.policy_applied').map((e) => e.seq);
    expect(droppedRoutine).toEqual(routineSeqs.slice(0, droppedRoutine.length));
    if (dropped.some((e) => e.type === 'software.preexec_unavailable')) expect(droppedRoutine).toEqual(routineSeqs);
    // The record lists each dropped seq with its hash, and counts by type.
    const claimed = rec.flatMap((r) => {
      const d = r.data as { ranges: { from: number; to: number }[]; hashes: string[]; byType: Record<string, number>; events: number };
      const seqs = d.ranges.flatMap((x) => Array.from({ length: x.to - x.from + 1 }, (_, k) => x.from + k));
      expect(seqs).toHaveLength(d.hashes.length);
      expect(Object.values(d.byType).reduce((a, b) => a + b, 0)).toBe(d.events);
      return seqs.map((s, i) => [s, d.hashes[i]] as const);
    });
    expect(claimed.map(([s]) => s)).toEqual(dropped.map((e) => e.seq));
    expect(claimed.map(([, h]) => h)).toEqual(dropped.map((e) => e.hash));
    // Kept events still chain: the event after each hole links to the claimed hash of its last dropped event.
    for (const e of kept) expect(eventHash(e.prevHash, e)).toBe(e.hash);
    o.close();
  });

  it('with nothing droppable left, refuses routine events (counted) but appends evidence beyond the cap', () => {
    const o = open({ maxEvents: 3, maxBytes: 10_000_000 });
    for (let i = 0; i < 5; i++) o.append(evidence(i));
    expect(o.depth()).toBe(5);
    const refused = o.append(routine(1));
    expect(refused.seq).toBe(0);
    expect(o.append(routine(2)).seq).toBe(0);
    expect(o.depth()).toBe(5);
    expect(o.lastSeq()).toBe(5); // no seq consumed: no hole in the chain
    expect(o.append(evidence(99)).seq).toBe(6);
    o.close();
  });

  it('reports refused events in the next drop record', () => {
    const o = open({ maxEvents: 4, maxBytes: 10_000_000 });
    for (let i = 0; i < 4; i++) o.append(evidence(i));
    o.append(routine(0)); // refused: nothing droppable
    o.append(notable(0)); // refused too
    expect(o.depth()).toBe(4);
    // Acknowledge two, add routine events, then overflow again: the next record carries the counts.
    o.acknowledge([1, 2]);
    o.append(routine(1));
    o.append(routine(2));
    o.append(evidence(9));
    const rec = drops(o);
    expect(rec).toHaveLength(1);
    expect((rec[0]!.data as { notAppended?: Record<string, number> }).notAppended).toEqual({ 'agent.policy_applied': 1, 'software.preexec_unavailable': 1 });
    o.close();
  });

  it('a cap of 0 keeps evidence and refuses everything droppable', () => {
    const o = open({ maxEvents: 0, maxBytes: 0 });
    expect(o.append(routine(1)).seq).toBe(0);
    expect(o.append(notable(1)).seq).toBe(0);
    expect(o.append(evidence(1)).seq).toBe(1);
    expect(o.append({ type: 'mfa.success', data: { user: 'u', method: 'totp' } } as NewEvent).seq).toBe(2);
    expect(drops(o)).toEqual([]);
    o.close();
  });

  it('a 10 MB event: refused when routine, appended when evidence (never dropped), and the byte cap counts it', () => {
    const o = open({ maxEvents: 1000, maxBytes: 1024 * 1024 });
    const big = 'x'.repeat(10 * 1024 * 1024);
    expect(o.append({ type: 'usb.allowed', data: { name: big } } as NewEvent).seq).toBe(0);
    expect(o.append({ type: 'usb.blocked', data: { name: big } } as NewEvent).seq).toBe(1);
    expect(o.bytes()).toBeGreaterThan(10 * 1024 * 1024);
    // Over the byte cap now: routine events are refused, evidence still goes in.
    expect(o.append(routine(1)).seq).toBe(0);
    expect(o.append(evidence(1)).seq).toBe(2);
    o.close();
  });

  it('keeps counting right across a chain head near 2^53 (no overflow, no hole)', () => {
    const path = join(dir, 'outbox.db');
    const o = new Outbox(path, AGENT, { cap: { maxEvents: 3, maxBytes: 10_000_000 } });
    o.close();
    const db = new Database(path);
    db.prepare("INSERT INTO chain_head (one, seq, hash) VALUES (1, ?, ?)").run(Number.MAX_SAFE_INTEGER - 10, 'f'.repeat(64));
    db.close();
    const p = new Outbox(path, AGENT, { cap: { maxEvents: 3, maxBytes: 10_000_000 } });
    const seqs = [p.append(routine(1)), p.append(routine(2)), p.append(routine(3)), p.append(evidence(4))].map((e) => e.seq);
    expect(seqs[0]).toBe(Number.MAX_SAFE_INTEGER - 9);
    expect(seqs[3]).toBeGreaterThan(seqs[2]!);
    const rec = drops(p);
    expect(rec).toHaveLength(1);
    const d = rec[0]!.data as { ranges: { from: number; to: number }[] };
    expect(d.ranges[0]!.from).toBe(Number.MAX_SAFE_INTEGER - 9);
    expect(eventDataErrors('agent.events_dropped', rec[0]!.data)).toEqual([]);
    p.close();
  });

  it('an outbox of an earlier version: queued rows count as evidence, nothing old is dropped', () => {
    const path = join(dir, 'outbox.db');
    const db = new Database(path);
    db.exec('CREATE TABLE outbox (seq INTEGER PRIMARY KEY, json TEXT NOT NULL); CREATE TABLE chain_head (one INTEGER PRIMARY KEY CHECK (one = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL)');
    const old = new Outbox(join(dir, 'scratch.db'), AGENT, { cap: null });
    const e = old.append(routine(1));
    old.close();
    db.prepare('INSERT INTO outbox (seq, json) VALUES (?, ?)').run(e.seq, JSON.stringify(e));
    db.prepare('INSERT INTO chain_head (one, seq, hash) VALUES (1, ?, ?)').run(e.seq, e.hash);
    db.close();
    const o = new Outbox(path, AGENT, { cap: { maxEvents: 1, maxBytes: 10_000_000 } });
    expect(o.depth()).toBe(1);
    expect(o.append(routine(2)).seq).toBe(0); // the old row is not dropped for it
    expect(all(o).map((x) => x.seq)).toEqual([1]);
    o.close();
  });

  it('reads the cap from STATE/outbox-cap.json; a malformed file falls back to the disk default', () => {
    const path = join(dir, 'outbox.db');
    writeFileSync(join(dir, 'outbox-cap.json'), JSON.stringify({ maxEvents: 7, maxBytes: 9000 }));
    expect(defaultCap(path)).toEqual({ maxEvents: 7, maxBytes: 9000 });
    writeFileSync(join(dir, 'outbox-cap.json'), '{"maxEvents": -1');
    const d = defaultCap(path);
    expect(d.maxEvents).toBeGreaterThanOrEqual(10_000);
  });
});

describe('delivered keep and re-queue', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sekimori-outbox-keep-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('moves acked events to delivered and re-queues exactly the missing ranges and the tail above the console head', () => {
    const o = new Outbox(join(dir, 'outbox.db'), AGENT, { cap: null });
    const sent = Array.from({ length: 10 }, (_, i) => o.append(evidence(i)));
    o.acknowledge(sent.map((e) => e.seq));
    expect(o.depth()).toBe(0);
    expect(o.deliveredCount()).toBe(10);
    expect(o.requeue([{ from: 2, to: 3 }], 8)).toBe(4); // 2, 3, 9, 10
    const again = o.pending(100);
    expect(again.map((e) => e.seq)).toEqual([2, 3, 9, 10]);
    // Original bytes: same id, hash, ts.
    expect(again[0]).toEqual(sent[1]);
    // Re-queue is idempotent.
    expect(o.requeue([{ from: 2, to: 3 }], 8)).toBe(0);
    o.close();
  });

  it('trims the keep by count, bytes and age', () => {
    const o = new Outbox(join(dir, 'outbox.db'), AGENT, { cap: null, delivered: { maxEvents: 5, maxBytes: 1_000_000, maxAgeMs: 60_000 } });
    const sent = Array.from({ length: 8 }, (_, i) => o.append(evidence(i)));
    o.acknowledge(sent.map((e) => e.seq), 1_000_000);
    expect(o.deliveredCount()).toBe(5);
    expect(o.requeue([], 0)).toBe(5);
    o.acknowledge([4, 5, 6, 7, 8], 1_000_000);
    // An hour later everything kept before is past its age.
    const later = o.append(evidence(99));
    o.acknowledge([later.seq], 1_000_000 + 3_600_000);
    expect(o.deliveredCount()).toBe(1);
    o.close();
  });

  it('hostile hints: absurd ranges and heads re-queue nothing odd and stay bounded', () => {
    const o = new Outbox(join(dir, 'outbox.db'), AGENT, { cap: null });
    const sent = Array.from({ length: 3 }, (_, i) => o.append(evidence(i)));
    o.acknowledge(sent.map((e) => e.seq));
    expect(o.requeue([{ from: 5, to: 1 }], null)).toBe(0);
    expect(o.requeue([{ from: Number.MAX_SAFE_INTEGER, to: Number.MAX_SAFE_INTEGER }], Number.MAX_SAFE_INTEGER)).toBe(0);
    expect(o.requeue([{ from: 2 ** 60, to: 2 ** 61 }], -1)).toBe(0);
    expect(o.requeue([{ from: 0, to: Number.MAX_SAFE_INTEGER }], 0)).toBe(3);
    expect(MAX_REQUEUE).toBe(5_000);
    o.close();
  });
});
