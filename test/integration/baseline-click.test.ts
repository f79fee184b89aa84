/**
 * Baseline by click, integration tier: a real console process and a real enrolled agent on
 * loopback (mutual TLS, SQLite). The request is made while the agent is down (killed -9): the
 * agent learns of it at its first software sync after restarting, captures the folder asked for,
 * uploads it once; the console holds it as a pending baseline; a second request while it is open is
 * the same request; approval publishes the next version and the agent applies it. No second
 * baseline arrives from the repeated syncs in between.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent, startConsole, tempDir, waitFor, type TestAgent, type TestConsole } from './harness.js';

interface Baseline {
  id: string;
  status: string;
  files: number;
  importedBy: string;
}

describe('baseline by click with a real agent', () => {
  let c: TestConsole;
  let agent: TestAgent;
  let scope = '';

  beforeAll(async () => {
    scope = join(tempDir('baseline-scope'), 'apps');
    mkdirSync(join(scope, 'sub'), { recursive: true });
    for (const [name, body] of [['kokuho', '#!/bin/sh\necho 国保\n'], ['sub/nenkin', '#!/bin/sh\necho 年金\n']] as const) {
      writeFileSync(join(scope, name), body);
      chmodSync(join(scope, name), 0o755);
    }
    writeFileSync(join(scope, 'readme.txt'), 'not a program'); // not executable: not in the baseline
    c = await startConsole();
    agent = await enrollAgent(c, { monitor: true, start: true });
  }, 120_000);

  afterAll(async () => {
    await agent?.cleanup();
    await c?.cleanup();
  });

  it('request while the agent is down → captured and uploaded once after restart → pending → approved → applied', async () => {
    await agent.kill9();
    const req = c.json<{ id: string; created: boolean; state: string }>(['software', 'baseline', 'request', '--agent', agent.agentId, '--scope', scope, '--by', 'kanri']);
    expect(req.created).toBe(true);
    const again = c.json<{ id: string; created: boolean }>(['software', 'baseline', 'request', '--agent', agent.agentId, '--by', 'kanri']);
    expect(again).toMatchObject({ id: req.id, created: false }); // idempotent while open
    const refused = c.cli(['software', 'baseline', 'request', '--agent', agent.agentId, '--scope', 'relative/path']);
    expect(refused.code).not.toBe(0);

    await agent.start();
    const pending = await waitFor('the pending baseline from the agent', () => c.json<Baseline[]>(['software', 'baseline', 'list']).find((b) => b.status === 'pending') ?? null, 120_000, 1000);
    expect(pending.files).toBe(2);
    expect(pending.importedBy).toContain('kanri');

    const approved = c.json<{ policyVersion: number }>(['software', 'baseline', 'approve', pending.id, '--by', 'kanri']);
    await waitFor(
      'the agent to apply the approved policy',
      () => c.events(['--type', 'agent.policy_applied']).some((e) => e.agentId === agent.agentId && (e.data as { version?: number }).version === approved.policyVersion),
      120_000,
      1000,
    );
    // Several syncs have passed since the upload: still exactly one baseline and one capture.
    const all = c.json<Baseline[]>(['software', 'baseline', 'list']);
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ id: pending.id, status: 'approved' });
    const captured = await waitFor('the capture event', () => {
      const ev = c.events(['--type', 'software.baseline_captured']).filter((e) => e.agentId === agent.agentId);
      return ev.length ? ev : null;
    }, 60_000, 1000);
    expect(captured).toHaveLength(1);
    expect(captured[0]!.data).toMatchObject({ requestId: req.id, files: 2, scope: [scope] });
    const requested = c.events(['--type', 'admin.software_baseline_requested']);
    expect(requested).toHaveLength(1);
    expect(requested[0]!.user).toBe('kanri');
  }, 400_000);
});
