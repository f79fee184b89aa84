/**
 * Issue 10, items 2 and 3, over the wire: a real console, terminals enrolled with real client
 * certificates, and hostile requests sent with those certificates straight to
 * /api/agent/mfa/reconcile and /api/agent/mfa/verify (what a compromised terminal can do).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base32Decode, hotp, timeStep } from '../../protocol/mfa/otp.js';
import { agentPaths } from '../../agent/state.js';
import type { MfaReconcileEntry } from '../../protocol/mfa/wire.js';
import { MFA_LIMITS } from '../../console/mfa/limits.js';
import { enrollAgent, startConsole, waitFor, type TestAgent, type TestConsole } from '../integration/harness.js';

let c: TestConsole;
let evil: TestAgent;
let other: TestAgent;
const keys = new Map<string, Buffer>();

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: Record<string, unknown>;
}

/** POST with a terminal's own client certificate; answers with status, headers and JSON body. */
function post(agent: TestAgent, path: string, body: unknown): Promise<Reply> {
  const p = agentPaths(agent.stateDir);
  return new Promise((resolve, reject) => {
    const req = request(
      `${c.url}${path}`,
      {
        method: 'POST',
        ca: readFileSync(join(c.dataDir, 'ca.pem')),
        key: readFileSync(p.key),
        cert: readFileSync(p.cert),
        headers: { 'content-type': 'application/json' },
        timeout: 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const reconcile = (a: TestAgent, entries: MfaReconcileEntry[]) => post(a, '/api/agent/mfa/reconcile', { entries });
const verify = (a: TestAgent, user: string, code: string) => post(a, '/api/agent/mfa/verify', { user, code });
const code = (user: string, d = 0) => hotp(keys.get(user)!, timeStep(Date.now()) + d);
const listed = (user: string) => c.json<{ user: string; locked: boolean; failures: number; recoveryLeft: number }[]>(['mfa', 'list']).find((u) => u.user === user)!;

function enrol(user: string): void {
  const e = c.json<{ secret: string }>(['mfa', 'enroll', '--user', user]);
  keys.set(user, base32Decode(e.secret)!);
  // The previous step's code confirms, so the current step stays fresh; the CLI can start in the next step under load, then the code is recomputed (at most 3 tries).
  let confirmed = false;
  for (let i = 0; i < 3 && !confirmed; i++) confirmed = c.cli(['mfa', 'confirm', '--user', user, '--code', code(user, -1)]).code === 0;
  expect(confirmed).toBe(true);
}

function setPolicy(mfa: Record<string, unknown>): void {
  const f = join(c.dataDir, '..', 'policy-mfa.json');
  writeFileSync(f, JSON.stringify({ mfa }));
  const r = c.cli(['policy', 'set', '--file', f]);
  expect(r.code, r.stderr).toBe(0);
}

/** What the review sent from one terminal: a step at 2^53-1, 21 recovery codes, 5 failures. */
function attack(user: string): MfaReconcileEntry[] {
  const at = new Date().toISOString();
  return [
    { user, kind: 'step', step: Number.MAX_SAFE_INTEGER, at },
    ...Array.from({ length: 21 }, (_, i): MfaReconcileEntry => ({ user, kind: 'recovery', recoveryId: i, at })),
    ...Array.from({ length: 5 }, (): MfaReconcileEntry => ({ user, kind: 'failure', at })),
  ];
}

beforeAll(async () => {
  c = await startConsole();
  evil = await enrollAgent(c, { start: false });
  other = await enrollAgent(c, { start: false });
  for (const u of ['victim1', 'victim2', 'victim3', 'victim4']) enrol(u);
}, 60_000);
afterAll(async () => {
  await evil?.cleanup();
  await other?.cleanup();
  await c?.cleanup();
});

describe('hostile reconciliation from an enrolled terminal', () => {
  it('with offline use forbidden by policy, it can neither poison, burn nor lock anyone', async () => {
    const r = await reconcile(evil, attack('victim1'));
    expect(r.status).toBe(200); // answered, so the agent drops the batch instead of retrying it
    expect(r.json.applied).toBe(0);
    const refused = r.json.refused as { index: number; reason: string }[];
    expect(refused).toHaveLength(27);
    expect(new Set(refused.map((x) => x.reason))).toEqual(new Set(['offline_not_allowed']));
    expect(listed('victim1')).toMatchObject({ locked: false, failures: 0, recoveryLeft: 10 });
    // The user's current code still works (the far-future step did not make it a replay).
    expect((await verify(other, 'victim1', code('victim1'))).json).toMatchObject({ result: 'accept', reason: 'ok' });
    const ev = await waitFor('mfa.reconcile_refused', () => c.events(['--type', 'mfa.reconcile_refused'])[0]);
    expect(ev).toMatchObject({ severity: 'warning', terminalId: evil.agentId, data: { terminal: evil.agentId, refused: 27, applied: 0, reasons: { offline_not_allowed: 27 }, users: ['victim1'] } });
  });

  it('with offline use allowed, it is believed only for the users its offline cache holds, within bounds', async () => {
    setPolicy({ offlineAllowed: true });
    expect(c.cli(['mfa', 'assign', '--user', 'victim2', '--terminal', other.agentId]).code).toBe(0);
    expect(c.cli(['mfa', 'assign', '--user', 'victim3', '--terminal', evil.agentId]).code).toBe(0);
    // victim2 belongs to another terminal.
    const r2 = await reconcile(evil, attack('victim2'));
    expect(r2.json.applied).toBe(0);
    expect(new Set((r2.json.refused as { reason: string }[]).map((x) => x.reason))).toEqual(new Set(['not_assigned']));
    expect(listed('victim2')).toMatchObject({ locked: false, failures: 0, recoveryLeft: 10 });
    expect((await verify(other, 'victim2', code('victim2'))).json).toMatchObject({ result: 'accept' });
    // victim3 is evil's own user: the far-future step and recovery codes that do not exist are refused.
    const r3 = await reconcile(evil, attack('victim3').slice(0, 22));
    const reasons = (r3.json.refused as { reason: string }[]).map((x) => x.reason);
    expect(reasons.filter((x) => x === 'step_in_future')).toHaveLength(1);
    expect(reasons.filter((x) => x === 'unknown_recovery_code')).toHaveLength(11); // ids 0 and 11..20
    expect((await verify(other, 'victim3', code('victim3'))).json).toMatchObject({ result: 'accept', reason: 'ok' });
    // ... and mfa reset + confirm would repair a user anyway: the reset clears the replay state.
    const e = c.json<{ secret: string }>(['mfa', 'reset', '--user', 'victim3']);
    keys.set('victim3', base32Decode(e.secret)!);
    expect(c.cli(['mfa', 'confirm', '--user', 'victim3', '--code', code('victim3')]).code).toBe(0);
  });

  it('interleaving reconciled successes does not reset the failures the console counted (unlimited guessing)', async () => {
    expect(c.cli(['mfa', 'assign', '--user', 'victim4', '--terminal', evil.agentId]).code).toBe(0);
    let lockedAfter = 0;
    for (let i = 1; i <= 12 && lockedAfter === 0; i++) {
      const v = await verify(evil, 'victim4', '000000' === code('victim4') ? '111111' : '000000');
      expect(v.status).toBe(200);
      if (v.json.lockedNow === true) lockedAfter = i;
      // The review's trick: a reconcile between guesses (here a step the console would believe).
      await reconcile(evil, [{ user: 'victim4', kind: 'step', step: timeStep(Date.now()) - 2, at: new Date().toISOString() }]);
    }
    expect(lockedAfter).toBe(5); // policy maxFailures, exactly as without the reconciles
    expect((await verify(evil, 'victim4', code('victim4', 1))).json).toMatchObject({ result: 'reject', reason: 'locked' });
  });
});

describe('malformed reconcile entries', () => {
  it('are refused one by one in a 200 answer (an agent drops them), the rest of the batch is judged', async () => {
    const at = new Date().toISOString();
    const r = await post(evil, '/api/agent/mfa/reconcile', {
      entries: [{ user: 'victim4', kind: 'failure', at }, { user: 'x y', kind: 'failure', at }, { kind: 'step', step: -1 }, { user: 'nobody', kind: 'failure', at }],
    });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      applied: 1,
      refused: [
        { index: 1, reason: 'malformed' },
        { index: 2, reason: 'malformed' },
        { index: 3, reason: 'not_assigned' },
      ],
    });
    expect((await post(evil, '/api/agent/mfa/reconcile', { entries: 'x' })).status).toBe(400);
  });
});

describe('per-terminal rate limits on the MFA routes', () => {
  it('spraying wrong codes from one terminal is cut off with 429 + Retry-After, and then no code is judged', async () => {
    const sprayer = await enrollAgent(c, { start: false });
    try {
      const answers: number[] = [];
      let limited: Reply | null = null;
      for (let i = 0; i < MFA_LIMITS.agentRejects.burst + 10 && !limited; i++) {
        const r = await verify(sprayer, `nobody${i}`, '123456');
        answers.push(r.status);
        if (r.status === 429) limited = r;
      }
      expect(limited, `answers: ${answers.join(',')}`).not.toBeNull();
      expect(answers.slice(0, MFA_LIMITS.agentRejects.burst).every((s) => s === 200)).toBe(true);
      expect(Number(limited!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(limited!.json).toMatchObject({ error: 'rate_limited' });
      // Even a correct code is not looked at now (a guess would not be either).
      expect((await verify(sprayer, 'victim1', code('victim1', 1))).status).toBe(429);
      const ev = await waitFor('mfa.rate_limited', () => c.events(['--type', 'mfa.rate_limited']).find((e) => e.terminalId === sprayer.agentId));
      expect(ev.data).toMatchObject({ terminal: sprayer.agentId, route: 'verify' });
    } finally {
      await sprayer.cleanup();
    }
  });

  it('reconcile requests from one terminal are limited too', async () => {
    const flooder = await enrollAgent(c, { start: false });
    try {
      const answers: number[] = [];
      for (let i = 0; i < MFA_LIMITS.agentReconcile.burst + 10 && !answers.includes(429); i++) answers.push((await reconcile(flooder, [])).status);
      expect(answers.slice(0, MFA_LIMITS.agentReconcile.burst).every((s) => s === 200)).toBe(true);
      expect(answers).toContain(429);
    } finally {
      await flooder.cleanup();
    }
  });
});
