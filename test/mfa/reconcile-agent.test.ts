/**
 * The honest side of issue 10 item 2: a real agent that verified offline reports to a console
 * that no longer believes it (policy turned offline use off meanwhile). The console answers 200
 * with the entries refused, and the agent drops them instead of retrying them for ever.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { localRequest } from '../../agent/local-api.js';
import { base32Decode, hotp, timeStep } from '../../protocol/mfa/otp.js';
import { agentPaths } from '../../agent/state.js';
import { enrollAgent, startConsole, waitFor, type TestAgent, type TestConsole } from '../integration/harness.js';

let c: TestConsole;
let a: TestAgent;
let key: Buffer;

function setPolicy(mfa: Record<string, unknown>): void {
  const f = join(c.dataDir, '..', 'policy-mfa.json');
  writeFileSync(f, JSON.stringify({ mfa }));
  const r = c.cli(['policy', 'set', '--file', f]);
  expect(r.code, r.stderr).toBe(0);
}

beforeAll(async () => {
  c = await startConsole({ policy: { mfa: { offlineAllowed: true } } });
  a = await enrollAgent(c);
  const e = c.json<{ secret: string }>(['mfa', 'enroll', '--user', 'field.worker']);
  key = base32Decode(e.secret)!;
  // The previous step's code confirms, so the current step stays fresh; the CLI can start in the next step under load, then the code is recomputed (at most 3 tries).
  let confirmed = false;
  for (let i = 0; i < 3 && !confirmed; i++) confirmed = c.cli(['mfa', 'confirm', '--user', 'field.worker', '--code', hotp(key, timeStep(Date.now()) - 1)]).code === 0;
  expect(confirmed).toBe(true);
  expect(c.cli(['mfa', 'assign', '--user', 'field.worker', '--terminal', a.agentId]).code).toBe(0);
}, 60_000);
afterAll(async () => {
  await a?.cleanup();
  await c?.cleanup();
});

describe('offline use reported after offline verification was turned off', () => {
  it('is refused with a 200 the agent acts on: its queue empties, the console records the refusal', async () => {
    const sock = agentPaths(a.stateDir).socket;
    await waitFor('offline cache synced', async () => {
      const r = await localRequest(sock, 'POST', '/mfa/sync');
      const s = (await localRequest(sock, 'GET', '/mfa/status')).body as { cachedUsers: string[] };
      return r.status === 200 && s.cachedUsers.includes('field.worker');
    });
    await c.stop();
    const v = await localRequest(sock, 'POST', '/mfa/verify', { user: 'field.worker', code: hotp(key, timeStep(Date.now())) });
    expect(v.body).toMatchObject({ result: 'accept', offline: true });
    expect(((await localRequest(sock, 'GET', '/mfa/status')).body as { pending: number }).pending).toBe(1);
    setPolicy({ offlineAllowed: false }); // while the console is down: the next answer refuses what the terminal did
    await c.start();
    await waitFor('agent dropped the refused entry', async () => ((await localRequest(sock, 'GET', '/mfa/status')).body as { pending: number }).pending === 0, 40_000);
    const ev = await waitFor('mfa.reconcile_refused', () => c.events(['--type', 'mfa.reconcile_refused'])[0], 20_000);
    expect(ev).toMatchObject({ terminalId: a.agentId, data: { refused: 1, applied: 0, reasons: { offline_not_allowed: 1 }, users: ['field.worker'] } });
    // Nothing is sent again: after more syncs, the shutdown flush has no folded repeat to write.
    await waitFor('another sync', async () => (await localRequest(sock, 'POST', '/mfa/sync')).status === 200);
    await c.stop();
    expect(c.events(['--type', 'mfa.reconcile_refused'])).toHaveLength(1);
  });
});
