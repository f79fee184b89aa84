/**
 * What offline means for hardware tokens, with a real agent and console: HOTP users verify online
 * only (never in the terminal's offline cache, refused offline as 'offline_unavailable'); a
 * hardware TOTP token is cached and verifies offline like an app. Codes from oathtool.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localRequest } from '../../agent/local-api.js';
import { agentPaths } from '../../agent/state.js';
import { enrollAgent, startConsole, waitFor, type TestAgent, type TestConsole } from '../integration/harness.js';

let c: TestConsole;
let a: TestAgent;
const HEX = '3132333435363738393031323334353637383930';
const hotpCode = (n: number) => execFileSync('oathtool', ['--hotp', `--counter=${n}`, HEX], { encoding: 'utf8' }).trim();
const totpNow = () => execFileSync('oathtool', ['--totp', HEX], { encoding: 'utf8' }).trim();

beforeAll(async () => {
  c = await startConsole({ policy: { mfa: { offlineAllowed: true } } });
  a = await enrollAgent(c);
  const f = join(c.dataDir, '..', 'tokens.csv');
  writeFileSync(f, ['user,serial,seed_hex,type', `hw.button,HB-1,${HEX},hotp`, `hw.clock,HC-1,${HEX},totp`].join('\n'));
  const r = c.cli(['mfa', 'import', '--file', f]);
  expect(r.code, r.stderr).toBe(0);
  for (const u of ['hw.button', 'hw.clock']) expect(c.cli(['mfa', 'assign', '--user', u, '--terminal', a.agentId]).code).toBe(0);
}, 60_000);
afterAll(async () => {
  await a?.cleanup();
  await c?.cleanup();
});

/** The code of a TOTP token whose clock runs `steps` 30-s steps ahead of ours. */
const totpAt = (step: number) => execFileSync('oathtool', ['--totp', `--now=@${step * 30 + 1}`, HEX], { encoding: 'utf8' }).trim();

describe('hardware tokens offline', () => {
  it('HOTP: online through the console, never cached, refused offline; hardware TOTP works offline', async () => {
    const sock = agentPaths(a.stateDir).socket;
    await waitFor('offline cache synced', async () => {
      const r = await localRequest(sock, 'POST', '/mfa/sync');
      const s = (await localRequest(sock, 'GET', '/mfa/status')).body as { cachedUsers: string[] };
      return r.status === 200 && s.cachedUsers.includes('hw.clock');
    });
    expect(((await localRequest(sock, 'GET', '/mfa/status')).body as { cachedUsers: string[] }).cachedUsers).toEqual(['hw.clock']);
    expect((await localRequest(sock, 'POST', '/mfa/verify', { user: 'hw.button', code: hotpCode(0) })).body).toMatchObject({ result: 'accept', offline: false });
    await c.stop();
    expect((await localRequest(sock, 'POST', '/mfa/verify', { user: 'hw.button', code: hotpCode(1) })).body).toMatchObject({
      result: 'reject',
      reason: 'offline_unavailable',
      offline: true,
    });
    expect((await localRequest(sock, 'POST', '/mfa/verify', { user: 'hw.clock', code: totpNow() })).body).toMatchObject({ result: 'accept', offline: true });
    await c.start();
    // Back online, the HOTP code that could not be used offline is still good (nothing consumed it).
    expect((await localRequest(sock, 'POST', '/mfa/verify', { user: 'hw.button', code: hotpCode(1) })).body).toMatchObject({ result: 'accept', offline: false });
  });

  it('a drifted hardware TOTP token, resynchronised on the console, verifies offline in its drifted window', async () => {
    const sock = agentPaths(a.stateDir).socket;
    // The token's clock is 10–11 steps (5 min) ahead: resync with two consecutive codes.
    const s = Math.floor(Date.now() / 30_000);
    const r = c.cli(['mfa', 'resync', '--user', 'hw.clock', '--codes', totpAt(s + 10), totpAt(s + 11)]);
    expect(r.code, r.stderr).toBe(0);
    await waitFor('offline cache with the drift', async () => (await localRequest(sock, 'POST', '/mfa/sync')).status === 200);
    await c.stop();
    // Two steps past the resync codes: outside ±1 of the terminal's own clock, inside ±1 of the drift.
    expect((await localRequest(sock, 'POST', '/mfa/verify', { user: 'hw.clock', code: totpAt(s + 12) })).body).toMatchObject({ result: 'accept', offline: true });
    // A code for the terminal's own time is now outside the token's window.
    expect((await localRequest(sock, 'POST', '/mfa/verify', { user: 'hw.clock', code: totpAt(Math.floor(Date.now() / 30_000)) })).body).toMatchObject({ result: 'reject', offline: true });
    await c.start();
  });
});
