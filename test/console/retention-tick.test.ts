/**
 * The daily run inside `serve` (console/retention/feature.ts retentionTick): nothing in the first
 * minute after start, then one bounded step; a backlog continues in further bounded steps; once
 * nothing is due, the next run waits a day. Driven with explicit times (no waiting).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIngester } from '../../console/backbone/ingest.js';
import { initConsole, openConsole, type OpenConsole } from '../../console/core/context.js';
import { retentionTick, SERVE_MAX_EVENTS } from '../../console/retention/feature.js';
import { listArchives } from '../../console/retention/store.js';
import { chainEvent, genesisHash, type SekimoriEvent } from '../../protocol/events.js';

const DAY = 86_400_000;
let dir = '';
let ctx: OpenConsole;
const t0 = new Date('2026-11-30T01:00:00.000Z');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sekimori-retention-tick-'));
  const data = join(dir, 'data');
  await initConsole(data, { sans: [], organisation: 'テスト市' });
  // The period from config.json this time.
  const cfg = join(data, 'config.json');
  writeFileSync(cfg, JSON.stringify({ ...(JSON.parse(readFileSync(cfg, 'utf8')) as object), retention: { usb: 30 } }));
  ctx = openConsole(data);
  const agentId = randomUUID();
  ctx.db.prepare("INSERT INTO agents (id, hostname, cert_fingerprint, enrolled_at) VALUES (?, 'PC-1', 'x', ?)").run(agentId, t0.toISOString());
  let prev = genesisHash(agentId);
  const events: SekimoriEvent[] = [];
  for (let i = 1; i <= SERVE_MAX_EVENTS + 11; i++) {
    const e = chainEvent(prev, { id: randomUUID(), agentId, seq: i, ts: '2026-01-01T00:00:00.000Z', type: 'usb.blocked', severity: 'warning', user: null, data: { n: i } });
    prev = e.hash;
    events.push(e);
  }
  const ingest = createIngester(ctx.db);
  for (let i = 0; i < events.length; i += 1000) ingest(agentId, events.slice(i, i + 1000), t0);
  ctx.db.prepare("UPDATE events SET ts = '2026-01-01T00:00:00.000Z' WHERE agent_id = ?").run(agentId);
}, 120_000);

afterAll(() => {
  ctx?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const at = (ms: number) => new Date(t0.getTime() + ms);

describe('daily retention inside serve', () => {
  it('waits a minute after start, then archives in bounded steps, then waits a day', () => {
    retentionTick(ctx, at(0));
    retentionTick(ctx, at(30_000));
    expect(listArchives(ctx.db)).toHaveLength(0);
    retentionTick(ctx, at(61_000));
    const first = listArchives(ctx.db);
    expect(first).toHaveLength(1);
    expect(first[0]!.events).toBe(SERVE_MAX_EVENTS);
    // Backlog: the next bounded step some seconds later, not a day.
    retentionTick(ctx, at(62_000));
    expect(listArchives(ctx.db)).toHaveLength(1);
    retentionTick(ctx, at(75_000));
    const second = listArchives(ctx.db);
    expect(second).toHaveLength(2);
    expect(second[0]!.events).toBe(10); // the head stays
    // Nothing due: no run until a day later.
    retentionTick(ctx, at(90_000));
    retentionTick(ctx, at(DAY / 2));
    expect(listArchives(ctx.db)).toHaveLength(2);
    const before = (ctx.db.prepare("SELECT count(*) AS n FROM events WHERE type = 'admin.archive_failed'").get() as { n: number }).n;
    retentionTick(ctx, at(DAY + 80_000));
    expect(listArchives(ctx.db)).toHaveLength(2);
    expect((ctx.db.prepare("SELECT count(*) AS n FROM events WHERE type = 'admin.archive_failed'").get() as { n: number }).n).toBe(before);
    expect(listArchives(ctx.db).every((a) => a.status === 'complete')).toBe(true);
  });
});
