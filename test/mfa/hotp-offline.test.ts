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
});
