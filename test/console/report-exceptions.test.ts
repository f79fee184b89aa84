/**
 * 例外措置 in the self-inspection report: every exception of the period keeps its applicant and
 * approver however many requests and applications came after it (the pages list only the newest
 * 500; the report looks its grants up by id).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exceptionFacts } from '../../console/report/store.js';
import { decideRequest, requestException } from '../../console/usb/store.js';
import { buildTestApp, type TestApp } from '../http/app.js';
import { FLEET, seedFleet } from './report-fleet.js';

let t: TestApp;
const now = new Date();
let seeded: ReturnType<typeof seedFleet>;

beforeAll(async () => {
  t = await buildTestApp();
  seeded = seedFleet(t.ctx, now);
  // 600 later requests, all approved: the seeded one is no longer among the newest 500.
  for (let i = 0; i < 600; i++) {
    const at = new Date(now.getTime() - 1_800_000 + i * 1000);
    const q = requestException(t.ctx, { agentId: FLEET.good2, device: `0781:5581:BULK${String(i).padStart(4, '0')}`, forMs: 3_600_000, access: 'allow', staffUser: `staff${i}`, reason: 'bulk', actor: 'suzuki' }, at);
    decideRequest(t.ctx, q.id, 'approve', 'admin', '', new Date(at.getTime() + 10));
  }
}, 120_000);

afterAll(async () => {
  await t?.close();
});

describe('report: exceptions and who asked for them', () => {
  it('the oldest exception of the period still names its applicant and approver after 600 newer requests', () => {
    const facts = exceptionFacts(t.ctx, new Date(now.getTime() - 2 * 86_400_000).toISOString(), new Date(now.getTime() + 60_000).toISOString(), [], now);
    const first = facts.find((f) => f.id === seeded.exceptionId);
    expect(first).toMatchObject({ applicant: 'suzuki', staffUser: 'tanaka', approver: 'admin' });
    expect(first!.requestId).not.toBeNull();
    const app = facts.find((f) => f.id === seeded.applicationGrant);
    expect(app?.requestId).toBe(seeded.applicationId);
    // Every bulk grant found its own request: none reads as granted without an application.
    const bulk = facts.filter((f) => f.agentId === FLEET.good2 && f.reason !== null && f.applicant?.startsWith('suzuki'));
    expect(bulk.length).toBeGreaterThanOrEqual(600);
    expect(facts.filter((f) => f.requestId === null).map((f) => f.id)).toEqual([seeded.directId]);
  });
});
