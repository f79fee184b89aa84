/**
 * Issue 10, items 6 and 9: /validate/check under flood, on a real console over TLS. Each test sends
 * from its own loopback address (127.0.0.x), so the per-address limits of one do not touch another.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MFA_LIMITS } from '../../console/mfa/limits.js';
import { startConsole, waitFor, type TestConsole } from '../integration/harness.js';

let c: TestConsole;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: { result: { status: boolean; value?: boolean; authentication?: string; error?: { code: number; message: string } }; detail?: unknown };
}

function check(from: string, body: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${c.url}/validate/check`,
      {
        method: 'POST',
        localAddress: from,
        ca: readFileSync(join(c.dataDir, 'ca.pem')),
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'privacyidea-cp' },
        timeout: 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Reply['json'] }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

const form = (p: Record<string, string>) => new URLSearchParams(p).toString();

/** The privacyIDEA-style answer to a limit: JSON error the Credential Provider parses, 429, Retry-After. */
function expectLimited(r: Reply): void {
  expect(r.status).toBe(429);
  expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  expect(r.json.result.status).toBe(false);
  expect(r.json.result.value).toBeUndefined();
  expect(r.json.result.error?.code).toBe(4290);
  expect(r.json.result.error?.message).toMatch(/試行が多すぎます.*too many attempts; retry after \d+ s/);
}

beforeAll(async () => {
  c = await startConsole();
});
afterAll(async () => {
  await c?.cleanup();
});

describe('/validate/check limits', () => {
  it('one registered client spraying users is cut off (per client), the reason is recorded once', async () => {
    const cred = c.json<{ credential: string }>(['mfa', 'client', 'add', '--name', 'SPRAY', '--address', '127.0.0.2']).credential;
    const statuses: number[] = [];
    let limited: Reply | null = null;
    for (let i = 0; i < MFA_LIMITS.validateClient.burst + 15 && !limited; i++) {
      const r = await check('127.0.0.2', form({ user: `staff${i}`, pass: '123456', realm: cred }));
      statuses.push(r.status);
      if (r.status === 429) limited = r;
    }
    expect(limited, statuses.join(',')).not.toBeNull();
    expect(statuses.slice(0, MFA_LIMITS.validateClient.burst).every((s) => s === 200)).toBe(true);
    expectLimited(limited!);
    const ev = await waitFor('mfa.rate_limited', () => c.events(['--type', 'mfa.rate_limited'])[0]);
    expect(ev).toMatchObject({ terminalId: 'win:SPRAY', data: { terminal: 'win:SPRAY', route: 'validate/check' } });
  });

  it('requests without a registered client: limited per address, and one event per cause and address instead of one each', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await check('127.0.0.3', form({ user: 'win.user', pass: '000000', realm: `WIN-01.${'A'.repeat(24)}` }))).status);
    const burst = MFA_LIMITS.validateUnauthenticated.burst;
    expect(statuses.slice(0, burst).every((s) => s === 401)).toBe(true);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(30 - burst - 2); // at most a token or two regained meanwhile
    expectLimited(await check('127.0.0.3', form({ user: 'x', pass: '1', realm: 'x' })));
    const refused = c.events(['--type', 'admin.mfa_validate_refused']).filter((e) => e.data.from === '127.0.0.3');
    expect(refused.map((e) => e.data.cause).sort()).toEqual(['too_many_unauthenticated', 'unregistered_client']);
    // Another address is not affected.
    expect((await check('127.0.0.4', form({ user: 'x', pass: '1', realm: 'x' }))).status).toBe(401);
  });

  it('a flood of any request from one address is cut off before anything else is looked at', async () => {
    const statuses: number[] = [];
    // Unparseable bodies spend neither a client's nor the unauthenticated budget: only the per-address one.
    for (let i = 0; i < 200 && !statuses.includes(429); i++) statuses.push((await check('127.0.0.5', '%')).status);
    expect(statuses.slice(0, MFA_LIMITS.validateAddress.burst).every((s) => s === 400)).toBe(true);
    expect(statuses).toContain(429);
  });

  it('the folded refusals are written as counted summaries (here: on shutdown)', async () => {
    await c.stop();
    const from3 = c.events(['--type', 'admin.mfa_validate_refused']).filter((e) => e.data.from === '127.0.0.3');
    const summary = from3.find((e) => e.data.cause === 'unregistered_client' && typeof e.data.repeated === 'number');
    expect(Number(summary?.data.repeated)).toBeGreaterThanOrEqual(MFA_LIMITS.validateUnauthenticated.burst - 1); // the first was written at once
    const limited = from3.find((e) => e.data.cause === 'too_many_unauthenticated' && typeof e.data.repeated === 'number');
    expect(Number(limited?.data.repeated)).toBeGreaterThan(10);
    // Far fewer events than requests: 30 + 1 requests from 127.0.0.3 gave at most 4.
    expect(from3.length).toBeLessThanOrEqual(4);
  });
});
