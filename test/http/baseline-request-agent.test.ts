/**
 * The agent's side of "この端末を基準にする" (agent/software/baseline-request.ts), with a recorded
 * console link: the event is written before the upload, one request is handled once, an upload that
 * did not get through is retried later without capturing again, a failed capture and an oversized
 * document are reported as such, and a console answering nonsense never makes it loop.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BaselineRequests, BASELINE_RETRY_MS, type BaselineDeps } from '../../agent/software/baseline-request.js';
import { ConsoleUnreachableError, type ConsoleLink } from '../../agent/capability.js';
import { BASELINE_MAX_BYTES } from '../../protocol/api.js';
import type { SoftwareBaselineDocument } from '../../protocol/policy-software.js';

const DOC: SoftwareBaselineDocument = { format: 'sekimori-software-baseline/1', host: 'pc', os: 'linux', createdAt: '2026-11-30T00:00:00.000Z', scope: ['/opt/app'], packages: [], files: [{ path: '/opt/app/x', sha256: 'a'.repeat(64), size: 1 }] };

function harness(answers: (number | 'down')[], capture: BaselineDeps['capture'] = async () => DOC) {
  const log: string[] = [];
  let now = 1_000_000;
  let captures = 0;
  const link: ConsoleLink = {
    async request(_method, path, body) {
      const a = answers.shift() ?? 200;
      log.push(`upload ${path} ${'document' in (body as object) ? 'document' : 'error'}`);
      if (a === 'down') throw new ConsoleUnreachableError('down');
      return { status: a, headers: {}, body: a === 200 ? { status: 'stored', baselineId: 'bl-1' } : { error: 'x' } } as Awaited<ReturnType<ConsoleLink['request']>>;
    },
    consoleNow: () => new Date(now),
    reachable: () => true,
  };
  const b = new BaselineRequests({
    emit: ((e: { type: string }) => {
      log.push(`event ${e.type}`);
      return e;
    }) as unknown as BaselineDeps['emit'],
    link: () => link,
    capture: async (scope) => {
      captures++;
      log.push(`capture ${scope.join(',')}`);
      return capture(scope);
    },
    stopped: () => false,
    log: () => undefined,
    now: () => now,
  });
  return { b, log, advance: (ms: number) => (now += ms), captures: () => captures };
}

describe('agent: baseline request handling', () => {
  it('captures, records the event, then uploads; the same id again is ignored', async () => {
    const h = harness([200]);
    const req = { id: randomUUID(), scope: ['/opt/app'] };
    await h.b.offer(req);
    expect(h.log).toEqual(['capture /opt/app', 'event software.baseline_captured', 'upload /api/agent/software/baseline document']);
    expect(h.b.offer(req)).toBeNull();
    expect(h.captures()).toBe(1);
  });

  it('console unreachable: retried after the pause with the same document (no second capture)', async () => {
    const h = harness(['down', 503, 200]);
    const req = { id: randomUUID(), scope: ['/opt/app'] };
    await h.b.offer(req);
    expect(h.b.offer(req)).toBeNull(); // too soon
    h.advance(BASELINE_RETRY_MS + 1);
    await h.b.offer(req);
    h.advance(BASELINE_RETRY_MS + 1);
    await h.b.offer(req);
    expect(h.captures()).toBe(1);
    expect(h.log.filter((l) => l.startsWith('upload'))).toHaveLength(3);
    expect(h.log.filter((l) => l === 'event software.baseline_captured')).toHaveLength(1);
    h.advance(BASELINE_RETRY_MS + 1);
    expect(h.b.offer(req)).toBeNull(); // answered
  });

  it.each([400, 404, 409])('console answers %i: the request is closed (reported, never looped)', async (status) => {
    const h = harness([status]);
    const req = { id: randomUUID(), scope: ['/opt/app'] };
    await h.b.offer(req);
    expect(h.log).toContain('event software.baseline_failed');
    h.advance(BASELINE_RETRY_MS * 10);
    expect(h.b.offer(req)).toBeNull();
  });

  it('a capture that throws: the failure event, and the error goes to the console instead of a document', async () => {
    const h = harness([200], async () => {
      throw new Error('EACCES \u001b[31m/opt/app');
    });
    await h.b.offer({ id: randomUUID(), scope: ['/opt/app'] });
    expect(h.log).toEqual(['capture /opt/app', 'event software.baseline_failed', 'upload /api/agent/software/baseline error']);
  });

  it('a document over the cap is not uploaded: the error is', async () => {
    const huge = { ...DOC, files: [{ path: '/opt/app/x', sha256: 'a'.repeat(64), size: 1 }], os: 'x'.repeat(BASELINE_MAX_BYTES + 1) };
    const h = harness([200], async () => huge);
    await h.b.offer({ id: randomUUID(), scope: ['/opt/app'] });
    expect(h.log).toEqual(['capture /opt/app', 'event software.baseline_failed', 'upload /api/agent/software/baseline error']);
  });

  it('one at a time: a second request while the first runs waits for a later sync', async () => {
    let release: () => void = () => undefined;
    const h = harness([200, 200], () => new Promise((r) => (release = () => r(DOC))));
    const first = h.b.offer({ id: randomUUID(), scope: ['/a'] });
    expect(h.b.offer({ id: randomUUID(), scope: ['/b'] })).toBeNull();
    release();
    await first;
    expect(h.captures()).toBe(1);
  });

  it('many distinct ids from a misbehaving console: memory stays bounded', async () => {
    const h = harness(Array.from({ length: 500 }, () => 'down' as const));
    for (let i = 0; i < 500; i++) await h.b.offer({ id: randomUUID(), scope: ['/a'] });
    const state = h.b as unknown as { retryAt: Map<string, number>; handled: string[] };
    expect(state.retryAt.size).toBeLessThanOrEqual(64);
  });
});
