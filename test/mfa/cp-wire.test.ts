/**
 * Issue 13: the privacyIDEA Credential Provider's exact requests, replayed against a real console
 * process on its validate port (TLS, loopback), and every answer parsed the way the CP parses it.
 *
 * Request shape, from privacyidea-credential-provider (CppClient/CppClient):
 * - PrivacyIDEA.cpp ValidateCheck: parameters in a std::map (so the body is in key order
 *   pass, realm, transaction_id, user); with send_upn=1 `user` is the UPN and no realm is added,
 *   otherwise `user` is the account name and AppendRealm adds `realm` only when default_realm or a
 *   realm mapping is set; `transaction_id` only when the last answer gave one.
 * - Endpoint.cpp SendRequest / EncodeRequestParameters: POST, "Content-Type:
 *   application/x-www-form-urlencoded", User-Agent "privacyidea-cp/<version> Windows/<computer>",
 *   Accept-Language from the Windows locale ("ja-jp"), values escaped by AtlEscapeUrl with
 *   ATL_URL_ENCODE_PERCENT, no Authorization header; polltransaction is a GET with a query string.
 * - CCredential.cpp Connect: the two-step first request sends pass "" (two_step_send_empty_password)
 *   or the Windows password (two_step_send_password), the second the code with the transaction_id.
 * Answer parsing: JsonParser.cpp ParseResponse (ported below), PIResponse.cpp
 * isAuthenticationSuccessful / GetNonFIDOMessage, JsonParser::IsStillActiveOfflineToken,
 * ParseRefillResponse and ParsePollTransaction.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base32Decode, hotp, timeStep } from '../../protocol/mfa/otp.js';
import { startConsole, waitFor, type TestConsole } from '../integration/harness.js';

// ---------- the CP's side ----------

/** ATL's AtlIsUnsafeUrlChar (atlutil.h): what AtlEscapeUrl percent-encodes (with ATL_URL_ENCODE_PERCENT, "%" too). */
function atlUnsafe(b: number): boolean {
  return b < 32 || b > 126 || ';\\?@&=+$, <>#%"{}|^[]`'.includes(String.fromCharCode(b));
}

/** Endpoint::URLEncode of the UTF-8 bytes (Convert::ToString gives UTF-8). Uppercase hex, as ATL writes it. */
function atlEscape(value: string): string {
  let out = '';
  for (const b of Buffer.from(value, 'utf8')) out += atlUnsafe(b) ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b);
  return out;
}

/** Endpoint::EncodeRequestParameters: std::map iteration order (byte-wise sorted keys), "k=v" joined by "&". */
function encodeParameters(params: Record<string, string>): string {
  return Object.keys(params)
    .sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b))))
    .map((k) => `${k}=${atlEscape(params[k]!)}`)
    .join('&');
}

enum AuthenticationStatus {
  NOT_SET,
  ACCEPT,
  REJECT,
  CHALLENGE,
}

interface Challenge {
  type: string;
  message: string;
  serial: string;
  transactionId: string;
  image: string;
}

interface PIResponse {
  value: boolean;
  status: boolean;
  authenticationStatus: AuthenticationStatus;
  errorCode: number;
  errorMessage: string;
  message: string;
  transactionId: string;
  preferredMode: string;
  challenges: Challenge[];
  versionMajor: number;
  versionMinor: number;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
const isObj = (j: Json | undefined): j is { [k: string]: Json } => typeof j === 'object' && j !== null && !Array.isArray(j);

/**
 * nlohmann's non-const operator[] with a string key: null becomes an empty object, an object is
 * indexed, anything else throws type_error (an uncaught exception in the CP).
 */
function index(j: Json | undefined, key: string, where: string): Json | undefined {
  if (j === null || j === undefined) return undefined;
  if (!isObj(j)) throw new Error(`type_error: operator[] with a string on ${where}`);
  return j[key];
}
const getBoolOrFalse = (j: Json | undefined, k: string, w: string) => {
  const t = index(j, k, w);
  return typeof t === 'boolean' ? t : false;
};
const getStringOrEmpty = (j: Json | undefined, k: string, w: string) => {
  const t = index(j, k, w);
  return typeof t === 'string' ? t : '';
};
/** nlohmann get<int>(): numbers (and booleans) convert, anything else throws — we demand a real integer. */
function getInt(j: Json | undefined, where: string): number {
  if (typeof j !== 'number' || !Number.isInteger(j)) throw new Error(`type_error: ${where} is not an integer (${JSON.stringify(j)})`);
  return j;
}

/** Port of JsonParser::ParseResponse (JsonParser.cpp). Throws where the CP would fail (parse error or uncaught type_error). */
function parseResponse(serverResponse: string): PIResponse {
  const root = JSON.parse(serverResponse) as Json; // PI_JSON_PARSE_ERROR
  const r: PIResponse = {
    value: false,
    status: false,
    authenticationStatus: AuthenticationStatus.NOT_SET,
    errorCode: 0,
    errorMessage: '',
    message: '',
    transactionId: '',
    preferredMode: '',
    challenges: [],
    versionMajor: 0,
    versionMinor: 0,
  };
  if (!isObj(root) || !('result' in root)) throw new Error("PI_JSON_PARSE_ERROR: no 'result'");
  const result = root.result;
  r.value = getBoolOrFalse(result, 'value', 'result');
  r.status = getBoolOrFalse(result, 'status', 'result');
  const auth = getStringOrEmpty(result, 'authentication', 'result');
  if (auth === 'ACCEPT') r.authenticationStatus = AuthenticationStatus.ACCEPT;
  else if (auth === 'REJECT') r.authenticationStatus = AuthenticationStatus.REJECT;
  else if (auth === 'CHALLENGE') r.authenticationStatus = AuthenticationStatus.CHALLENGE;
  if (isObj(result) && 'error' in result) {
    const error = result.error;
    r.errorCode = getInt(index(error, 'code', 'result.error'), 'result.error.code');
    r.errorMessage = getStringOrEmpty(error, 'message', 'result.error');
  }
  const detail = root.detail;
  getBoolOrFalse(detail, 'enroll_via_multichallenge_optional', 'detail');
  getBoolOrFalse(detail, 'enroll_via_multichallenge', 'detail');
  const passkey = index(detail, 'passkey', 'detail');
  expect(passkey === undefined || passkey === null, 'no passkey challenge is ever offered').toBe(true);
  r.message = getStringOrEmpty(detail, 'message', 'detail');
  getStringOrEmpty(detail, 'username', 'detail');
  const multi = index(detail, 'multi_challenge', 'detail');
  if (multi !== undefined && multi !== null && !(Array.isArray(multi) && multi.length === 0) && !(isObj(multi) && Object.keys(multi).length === 0)) {
    r.transactionId = getStringOrEmpty(detail, 'transaction_id', 'detail');
    r.preferredMode = getStringOrEmpty(detail, 'preferred_client_mode', 'detail');
    const items = Array.isArray(multi) ? multi : isObj(multi) ? Object.values(multi) : [multi];
    for (const ch of items) {
      if (isObj(ch) && 'passkey_registration' in ch) throw new Error('unexpected passkey_registration');
      const type = getStringOrEmpty(ch, 'type', 'multi_challenge[]');
      expect(['webauthn', 'passkey']).not.toContain(type);
      r.challenges.push({
        type,
        message: getStringOrEmpty(ch, 'message', 'multi_challenge[]'),
        serial: getStringOrEmpty(ch, 'serial', 'multi_challenge[]'),
        transactionId: getStringOrEmpty(ch, 'transaction_id', 'multi_challenge[]'),
        image: getStringOrEmpty(ch, 'image', 'multi_challenge[]'),
      });
    }
  }
  if ('versionnumber' in root && root.versionnumber !== null) {
    if (typeof root.versionnumber !== 'string') throw new Error('type_error: versionnumber is not a string');
    // ParseVersionString: only the regex match matters (3.10, 3.10.2, 3.10dev1 …).
    const m = /^\s*(\d+)\.(\d+)(?:\.(\d+))?(?:[.-]?([a-zA-Z0-9][a-zA-Z0-9._-]*))?\s*$/.exec(root.versionnumber.split('+')[0]!);
    r.versionMajor = m ? Number(m[1]) : 0;
    r.versionMinor = m ? Number(m[2]) : 0;
  }
  return r;
}

/** PIResponse::isAuthenticationSuccessful. */
const isAuthenticationSuccessful = (r: PIResponse) =>
  r.authenticationStatus === AuthenticationStatus.ACCEPT || (r.authenticationStatus === AuthenticationStatus.NOT_SET && r.challenges.length === 0 && r.value);

/** PIResponse::GetNonFIDOMessage: what CCredential shows as the code prompt in the privacyIDEA step. */
const nonFidoMessage = (r: PIResponse) => [...new Set(r.challenges.filter((c) => c.type !== 'webauthn' && c.type !== 'passkey').map((c) => c.message))].join(', ');

/** JsonParser::IsStillActiveOfflineToken: false only for error code 905. */
function isStillActiveOfflineToken(input: string): boolean {
  const root = JSON.parse(input) as Json;
  const error = index(index(root, 'result', 'root'), 'error', 'result');
  if (isObj(error) && 'code' in error) return getInt(error.code, 'result.error.code') !== 905;
  return true;
}

/** JsonParser::ParseRefillResponse: needs auth_items.offline[0].response; our answer has none (E_FAIL / PI_JSON_PARSE_ERROR). */
function parseRefillResponse(input: string): 'ok' | 'parse_error' {
  const root = JSON.parse(input) as Json;
  const offline = index(index(root, 'auth_items', 'root'), 'offline', 'auth_items');
  return Array.isArray(offline) && offline.length > 0 && isObj(offline[0]) && 'response' in offline[0] ? 'ok' : 'parse_error';
}

/** JsonParser::ParsePollTransaction: result.value. */
const parsePollTransaction = (input: string) => getBoolOrFalse(index(JSON.parse(input) as Json, 'result', 'root'), 'value', 'result');

// ---------- the console ----------

let c: TestConsole;
let port: number;
let ca: Buffer;
let credential: string;

interface Sent {
  status: number;
  body: string;
  pi: PIResponse;
}

/** One WinHTTP request as Endpoint::SendRequest makes it. Returns the raw answer and the CP's parse of it. */
function send(endpoint: string, params: Record<string, string>, opts: { method?: 'GET' | 'POST'; lang?: string; from?: string } = {}): Promise<Sent> {
  const method = opts.method ?? 'POST';
  const data = encodeParameters(params);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: method === 'GET' ? `${endpoint}?${data}` : endpoint,
        ca,
        servername: 'localhost',
        localAddress: opts.from ?? '127.0.0.1',
        headers: {
          Host: `localhost:${port}`,
          'User-Agent': 'privacyidea-cp/3.8.0 Windows/WIN-01',
          'Accept-Language': opts.lang ?? 'ja-jp',
          'Content-Type': 'application/x-www-form-urlencoded',
          ...(method === 'POST' ? { 'Content-Length': String(Buffer.byteLength(data)) } : {}),
        },
        timeout: 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, body, pi: parseResponse(body) });
          } catch (e) {
            reject(new Error(`the CP could not parse ${endpoint}: ${(e as Error).message}\n${body}`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(method === 'POST' ? data : undefined);
  });
}

const keys = new Map<string, Buffer>();
const codeFor = (user: string, d = 0) => hotp(keys.get(user)!, timeStep(Date.now()) + d);

function enrolActive(user: string): void {
  const key = base32Decode(c.json<{ secret: string }>(['mfa', 'enroll', '--user', user]).secret)!;
  keys.set(user, key);
  let ok = false; // the CLI may start in the next step under load: recompute (at most 3 tries)
  for (let i = 0; i < 3 && !ok; i++) ok = c.cli(['mfa', 'confirm', '--user', user, '--code', hotp(key, timeStep(Date.now()) - 1)]).code === 0;
  expect(ok).toBe(true);
}

const failuresOf = (user: string) => c.json<{ user: string; failures: number }[]>(['mfa', 'list']).find((u) => u.user === user)?.failures;

beforeAll(async () => {
  c = await startConsole();
  ca = readFileSync(join(c.dataDir, 'ca.pem'));
  // serve prints it with the main URL; waited for anyway, bounded.
  const m = await waitFor('validate URL printed', () => /https:\/\/127\.0\.0\.1:(\d+)\/validate\/check/.exec(c.output()), 20_000);
  port = Number(m[1]);
  for (const u of ['yamada', 'sato', 'suzuki', 'takahashi', '山田 太郎']) enrolActive(u);
  credential = c.json<{ credential: string }>(['mfa', 'client', 'add', '--name', 'WIN-01', '--address', '127.0.0.1']).credential;
}, 120_000);
afterAll(async () => {
  await c?.cleanup();
});

describe('the Credential Provider against the validate port', () => {
  it('single step with default_realm (the credential): ACCEPT; case as Windows ignores it', async () => {
    const r = await send('/validate/check', { pass: codeFor('yamada'), realm: credential, user: 'yamada' });
    expect(r.status).toBe(200);
    expect(isAuthenticationSuccessful(r.pi)).toBe(true);
    expect(r.pi).toMatchObject({ value: true, status: true, errorCode: 0, versionMajor: 3, versionMinor: 10 });
    const again = await send('/validate/check', { pass: codeFor('yamada', 1), realm: credential, user: 'YAMADA' });
    expect(isAuthenticationSuccessful(again.pi)).toBe(true);
  });

  it('send_upn=1: UPN, no realm; the registered source address identifies the terminal', async () => {
    const r = await send('/validate/check', { pass: codeFor('sato'), user: 'sato@city.example.lg.jp' });
    expect(isAuthenticationSuccessful(r.pi)).toBe(true);
    const events = c.events(['--user', 'sato', '--type', 'mfa.success']);
    expect(events[0]).toMatchObject({ terminalId: 'win:WIN-01' });
  });

  it('send_upn=1 from an address no client is registered for: a privacyIDEA error with an integer code, not an accept', async () => {
    const r = await send('/validate/check', { pass: '123456', user: 'sato@city.example.lg.jp' }, { from: '127.0.0.9' });
    expect(r.status).toBe(401);
    expect(r.pi).toMatchObject({ status: false, value: false, errorCode: 4033 });
    expect(r.pi.errorMessage).toMatch(/登録されていません/);
    expect(isAuthenticationSuccessful(r.pi)).toBe(false);
  });

  it('two_step_send_empty_password: step 1 gives a Japanese prompt and counts nothing; step 2 with the transaction_id accepts', async () => {
    const before = failuresOf('suzuki');
    const one = await send('/validate/check', { pass: '', realm: credential, user: 'suzuki' });
    expect(one.status).toBe(200);
    expect(one.pi.authenticationStatus).toBe(AuthenticationStatus.CHALLENGE);
    expect(isAuthenticationSuccessful(one.pi)).toBe(false);
    expect(one.pi.challenges).toHaveLength(1);
    expect(one.pi.transactionId).toMatch(/^\d{20}$/);
    expect(nonFidoMessage(one.pi)).toBe('認証コードを入力してください');
    expect(failuresOf('suzuki')).toBe(before);
    const two = await send('/validate/check', { pass: codeFor('suzuki'), realm: credential, transaction_id: one.pi.transactionId, user: 'suzuki' });
    expect(isAuthenticationSuccessful(two.pi)).toBe(true);
  });

  it('two_step_send_password with send_upn: the Windows password triggers the prompt (English for an English Windows), then the code', async () => {
    const one = await send('/validate/check', { pass: 'Sommer2026!', user: 'takahashi@city.example.lg.jp' }, { lang: 'en-us' });
    expect(one.pi.authenticationStatus).toBe(AuthenticationStatus.CHALLENGE);
    expect(nonFidoMessage(one.pi)).toBe('Enter your verification code');
    expect(failuresOf('takahashi')).toBe(0);
    const wrong = await send('/validate/check', { pass: codeFor('takahashi') === '000000' ? '111111' : '000000', transaction_id: one.pi.transactionId, user: 'takahashi@city.example.lg.jp' });
    // CCredential shows errorMessage, else detail.message; code 904 would send the user back to step 1.
    expect(wrong.pi).toMatchObject({ authenticationStatus: AuthenticationStatus.REJECT, value: false, errorCode: 0, message: '認証コードが正しくありません' });
    expect(failuresOf('takahashi')).toBe(1);
    const two = await send('/validate/check', { pass: codeFor('takahashi'), transaction_id: one.pi.transactionId, user: 'takahashi@city.example.lg.jp' });
    expect(isAuthenticationSuccessful(two.pi)).toBe(true);
  });

  it('a Japanese, spaced user name, UTF-8 percent-encoded as AtlEscapeUrl does; a code typed full-width with the IME on', async () => {
    expect(encodeParameters({ user: '山田 太郎' })).toBe('user=%E5%B1%B1%E7%94%B0%20%E5%A4%AA%E9%83%8E');
    const fullWidth = [...codeFor('山田 太郎')].map((d) => String.fromCharCode(0xff10 + Number(d))).join('');
    const r = await send('/validate/check', { pass: fullWidth, realm: credential, user: '山田　太郎' });
    expect(isAuthenticationSuccessful(r.pi)).toBe(true);
  });

  it('never tells whether a user exists: unknown users get the same step-1 and step-2 answers', async () => {
    const strip = (s: Sent) => JSON.stringify({ ...s.pi, transactionId: '', challenges: s.pi.challenges.map((ch) => ({ ...ch, transactionId: '' })) });
    const known = await send('/validate/check', { pass: '', realm: credential, user: 'yamada' });
    const unknown = await send('/validate/check', { pass: '', realm: credential, user: 'nobody.here' });
    expect(strip(unknown)).toBe(strip(known));
    const k2 = await send('/validate/check', { pass: '000001', realm: credential, transaction_id: known.pi.transactionId, user: 'yamada' });
    const u2 = await send('/validate/check', { pass: '000001', realm: credential, transaction_id: unknown.pi.transactionId, user: 'nobody.here' });
    expect(strip(u2)).toBe(strip(k2));
    expect(u2.pi.errorCode).not.toBe(904);
  });

  it('polltransaction, offlinerefill and initialize: answers the CP parses, none of them an accept', async () => {
    const poll = await send('/validate/polltransaction', { transaction_id: '12345678901234567890' }, { method: 'GET' });
    expect(parsePollTransaction(poll.body)).toBe(false);
    const refill = await send('/validate/offlinerefill', { pass: '123456', refilltoken: 'x'.repeat(40), serial: 'HOTP0001' });
    expect(refill.pi.errorCode).toBe(905);
    expect(isStillActiveOfflineToken(refill.body)).toBe(false); // the CP drops its offline data for that token
    expect(parseRefillResponse(refill.body)).toBe('parse_error'); // no OTP values are ever handed out
    const init = await send('/validate/initialize', { type: 'passkey' });
    expect(init.pi).toMatchObject({ errorCode: 905, value: false });
    expect(isAuthenticationSuccessful(init.pi)).toBe(false);
  });
});
