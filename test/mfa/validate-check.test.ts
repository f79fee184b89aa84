/**
 * POST /validate/check with the exact request the privacyIDEA Credential Provider sends (WinHTTP,
 * form body with keys in std::map order pass, realm, user; Content-Type without charset; User-Agent
 * privacyidea-cp) and the response members it reads (result.value, result.authentication, detail).
 * Real console over TLS on loopback.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base32Decode, hotp, timeStep } from '../../protocol/mfa/otp.js';
import { rawRequest, startConsole, waitFor, type TestConsole } from '../integration/harness.js';

let c: TestConsole;
let secret: Buffer;
let credential: string;
let recoveryCodes: string[];

const cpHeaders = { 'User-Agent': 'privacyidea-cp' };

function check(params: [string, string][], headers: Record<string, string> = cpHeaders) {
  // AtlEscapeUrl-style percent encoding, keys sorted as std::map sorts them.
  const body = [...params].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  return rawRequest(c, 'POST', '/validate/check', { body, contentType: 'application/x-www-form-urlencoded', headers });
}

const codeNow = (d = 0) => hotp(secret, timeStep(Date.now()) + d);

beforeAll(async () => {
  c = await startConsole();
  const e = c.json<{ secret: string; recoveryCodes: string[] }>(['mfa', 'enroll', '--user', 'win.user']);
  secret = base32Decode(e.secret)!;
  recoveryCodes = e.recoveryCodes;
  // The previous step's code confirms, so the current step stays fresh; the CLI can start in the next step under load, then the code is recomputed (at most 3 tries).
  let confirmed = false;
  for (let i = 0; i < 3 && !confirmed; i++) confirmed = c.cli(['mfa', 'confirm', '--user', 'win.user', '--code', codeNow(-1)]).code === 0;
  expect(confirmed).toBe(true);
  credential = c.json<{ credential: string }>(['mfa', 'client', 'add', '--name', 'WIN-01', '--address', '127.0.0.1']).credential;
  expect(credential).toMatch(/^WIN-01\.[A-Za-z0-9_-]{24}$/);
});
afterAll(async () => {
  await c?.cleanup();
});

describe('/validate/check (privacyIDEA Credential Provider)', () => {
  it('ACCEPT: the shape the Credential Provider reads', async () => {
    const r = await check([
      ['user', 'win.user'],
      ['pass', codeNow()],
      ['realm', credential],
    ]);
    expect(r.status).toBe(200);
    const j = r.json() as Record<string, unknown>;
    expect(j).toMatchObject({ jsonrpc: '2.0', result: { status: true, value: true, authentication: 'ACCEPT' }, detail: { message: 'matching 1 tokens' } });
    expect(typeof (j.detail as Record<string, unknown>)).toBe('object'); // the CP indexes detail["multi_challenge"]
    const ev = await waitFor('mfa.success recorded', () => c.events(['--user', 'win.user', '--type', 'mfa.success'])[0]);
    expect(ev).toMatchObject({ terminalId: 'win:WIN-01', data: { terminal: 'win:WIN-01', result: 'accept', reason: 'ok', via: 'validate/check' } });
  });

  it('REJECT: wrong code, replayed code; malformed only in a second step (with transaction_id)', async () => {
    for (const pass of ['000000', codeNow()]) {
      const r = await check([
        ['user', 'win.user'],
        ['pass', pass],
        ['realm', credential],
      ]);
      expect(r.status).toBe(200);
      expect(r.json()).toMatchObject({ result: { status: true, value: false, authentication: 'REJECT' }, detail: {} });
    }
    const second = await check([
      ['user', 'win.user'],
      ['pass', '12ab56'],
      ['realm', credential],
      ['transaction_id', '12345678901234567890'],
    ]);
    expect(second.json()).toMatchObject({ result: { status: true, value: false, authentication: 'REJECT' } });
    const reasons = c.events(['--user', 'win.user']).filter((e) => e.type.startsWith('mfa.')).map((e) => e.data.reason);
    expect(reasons).toEqual(expect.arrayContaining(['wrong_code', 'replay', 'malformed']));
  });

  it('a pass that cannot be a code, without transaction_id, is a first step: CHALLENGE, nothing judged or counted', async () => {
    const before = c.events(['--user', 'win.user']).length;
    for (const pass of ['', '12ab56', 'Windows-Passw0rd']) {
      const r = await check([
        ['user', 'win.user'],
        ['pass', pass],
        ['realm', credential],
      ]);
      expect(r.json()).toMatchObject({ result: { status: true, value: false, authentication: 'CHALLENGE' }, detail: { multi_challenge: [{ type: 'totp' }] } });
    }
    expect(c.events(['--user', 'win.user']).length).toBe(before);
  });

  it('a recovery code works once', async () => {
    const ask = () => check([['user', 'win.user'], ['pass', recoveryCodes[3]!], ['realm', credential]]);
    expect(((await ask()).json() as { result: { value: boolean } }).result.value).toBe(true);
    expect(((await ask()).json() as { result: { value: boolean } }).result.value).toBe(false);
  });

  it('the credential may come as a Bearer header instead of the realm', async () => {
    const r = await check([['user', 'win.user'], ['pass', codeNow(1)]], { ...cpHeaders, Authorization: `Bearer ${credential}` });
    expect(r.json()).toMatchObject({ result: { value: true, authentication: 'ACCEPT' } });
  });

  it('refuses unregistered clients with a JSON error (status false, no value) and counts nothing against the user', async () => {
    for (const realm of ['', 'WIN-01.' + 'A'.repeat(24), 'WIN-02.x', credential + 'x', 'realm1']) {
      const r = await check([['user', 'win.user'], ['pass', '000000'], ['realm', realm]]);
      expect(r.status).toBe(401);
      const j = r.json() as { result: { status: boolean; value?: unknown; error: { code: number; message: string } } };
      expect(j.result.status).toBe(false);
      expect(j.result.value).toBeUndefined();
      expect(j.result.error.code).toBe(4033);
    }
    // Recorded once per cause and address a minute, the rest folded (issue 10 item 6; see validate-check-limits.test.ts).
    const refused = c.events(['--type', 'admin.mfa_validate_refused']);
    expect(refused).toHaveLength(1);
    expect(refused[0]!.data).toMatchObject({ cause: 'unregistered_client', from: '127.0.0.1', userAgent: 'privacyidea-cp' });
  });

  it('refuses a registered client from another address', async () => {
    const other = c.json<{ credential: string }>(['mfa', 'client', 'add', '--name', 'WIN-09', '--address', '10.9.9.9']).credential;
    const r = await check([['user', 'win.user'], ['pass', '000000'], ['realm', other]]);
    expect(r.status).toBe(401);
  });

  it('one REJECT answer for unknown, invalid, pending, disabled, locked users and wrong or replayed codes (no user enumeration)', async () => {
    // A second client, so these attempts do not spend WIN-01's per-client budget.
    const cred2 = c.json<{ credential: string }>(['mfa', 'client', 'add', '--name', 'WIN-02', '--address', '127.0.0.1']).credential;
    const ask = (user: string, pass: string, tid?: string) => check([['user', user], ['pass', pass], ['realm', cred2], ...(tid ? [['transaction_id', tid] as [string, string]] : [])]);
    const keyOf = (user: string) => base32Decode(c.json<{ secret: string }>(['mfa', 'enroll', '--user', user]).secret)!;
    const confirm = (user: string, key: Buffer) => {
      let ok = false; // as in beforeAll: recomputed if the CLI started in the next step
      for (let i = 0; i < 3 && !ok; i++) ok = c.cli(['mfa', 'confirm', '--user', user, '--code', hotp(key, timeStep(Date.now()) - 1)]).code === 0;
      expect(ok).toBe(true);
    };
    keyOf('gen.pending');
    const kd = keyOf('gen.disabled');
    confirm('gen.disabled', kd);
    expect(c.cli(['mfa', 'disable', '--user', 'gen.disabled']).code).toBe(0);
    const kl = keyOf('gen.locked');
    confirm('gen.locked', kl);
    for (let i = 0; i < 5; i++) await ask('gen.locked', '000000');
    const kw = keyOf('gen.wrong');
    confirm('gen.wrong', kw);
    const answers = [
      await ask('nobody.here', '123456'),
      await ask('bad\tuser', '123456'),
      await ask('gen.pending', '123456'),
      await ask('gen.disabled', hotp(kd, timeStep(Date.now()))),
      await ask('gen.locked', hotp(kl, timeStep(Date.now()))),
      await ask('gen.wrong', hotp(kw, timeStep(Date.now()) - 1)), // the confirming code: a replay
      await ask('gen.wrong', '12ab56', '12345678901234567890'),
      await ask('gen.wrong', hotp(kw, timeStep(Date.now())) === '000000' ? '111111' : '000000'),
    ];
    const shapes = answers.map((r) => {
      const j = r.json() as { result: unknown; detail: unknown };
      return JSON.stringify({ status: r.status, result: j.result, detail: j.detail });
    });
    expect(new Set(shapes).size, shapes.join('\n')).toBe(1);
    expect(answers[0]!.json()).toMatchObject({ result: { status: true, value: false, authentication: 'REJECT' }, detail: { message: '認証コードが正しくありません / wrong code' } });
    // The administrator still sees each real reason.
    const reasons = c.events(['--type', 'mfa.failure']).concat(c.events(['--type', 'mfa.replay'])).filter((e) => e.terminalId === 'win:WIN-02').map((e) => e.data.reason);
    expect(reasons).toEqual(expect.arrayContaining(['not_enrolled', 'invalid_user', 'not_confirmed', 'disabled', 'locked', 'replay', 'malformed', 'wrong_code']));
  });

  it('hostile bodies: always JSON, never an accept', async () => {
    const bodies = ['%', 'user=%E0%A4%A&pass=1', 'user=' + 'a'.repeat(3000) + `&pass=1&realm=${credential}`, `user=win.user&user=other&pass=000000&realm=${encodeURIComponent(credential)}`, '\u0000\u0001'];
    for (const body of bodies) {
      const r = await rawRequest(c, 'POST', '/validate/check', { body, contentType: 'application/x-www-form-urlencoded', headers: cpHeaders });
      const j = r.json() as { result: { value?: boolean } };
      expect(j.result.value === true).toBe(false);
    }
    const big = await rawRequest(c, 'POST', '/validate/check', { body: 'x'.repeat(100_000), contentType: 'application/x-www-form-urlencoded' });
    expect(big.status).toBe(413);
  });
});
