/**
 * An imported HOTP hardware token at a Windows logon: a real console (TLS on loopback), the RFC
 * 6030 Figure 3 package imported and handed out with the real CLI, then /validate/check requests
 * shaped as the privacyIDEA Credential Provider sends them, with 8-digit codes from oathtool.
 * The counter is the console's: a code accepted once is refused on every later request.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest, startConsole, type TestConsole } from '../integration/harness.js';

let c: TestConsole;
let credential: string;
const HEX = Buffer.from('12345678901234567890').toString('hex'); // Figure 3's secret
const code = (counter: number) => execFileSync('oathtool', ['--hotp', '--digits=8', `--counter=${counter}`, HEX], { encoding: 'utf8' }).trim();

function check(params: [string, string][]) {
  const body = [...params].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  return rawRequest(c, 'POST', '/validate/check', { body, contentType: 'application/x-www-form-urlencoded', headers: { 'User-Agent': 'privacyidea-cp' } });
}
const auth = async (pass: string) => ((await check([['user', 'hw.user'], ['pass', pass], ['realm', credential]])).json() as { result: { authentication: string } }).result.authentication;

beforeAll(async () => {
  c = await startConsole();
  const imp = c.cli(['mfa', 'import', '--file', join(import.meta.dirname, 'fixtures', 'rfc6030-figure3.pskcxml'), '--json']);
  expect(imp.stderr).toBe('');
  expect(JSON.parse(imp.stdout)).toEqual({ imported: 1, assigned: 0, unassigned: 1 });
  expect(c.cli(['mfa', 'assign-token', '--user', 'hw.user', '--serial', '987654321']).code).toBe(0);
  credential = c.json<{ credential: string }>(['mfa', 'client', 'add', '--name', 'WIN-HW', '--address', '127.0.0.1']).credential;
});
afterAll(async () => {
  await c?.cleanup();
});

describe('HOTP token through /validate/check', () => {
  it('counter 0 accepted, then refused again; a later press within the look-ahead accepted; skipped codes refused', async () => {
    expect(await auth(code(0))).toBe('ACCEPT');
    expect(await auth(code(0))).toBe('REJECT');
    expect(await auth(code(4))).toBe('ACCEPT');
    expect(await auth(code(2))).toBe('REJECT');
    expect(await auth(code(20))).toBe('REJECT'); // beyond the look-ahead of 10: needs mfa resync
  });

  it('after resync with two consecutive codes the next press logs on', async () => {
    expect(c.cli(['mfa', 'resync', '--user', 'hw.user', '--codes', code(20), code(21)]).code).toBe(0);
    expect(await auth(code(21))).toBe('REJECT');
    expect(await auth(code(22))).toBe('ACCEPT');
  });
});
