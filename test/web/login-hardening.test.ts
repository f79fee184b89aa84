/**
 * Issue 10, items 5, 6 (login part), 8, 10 and 11: the attacks on the web console's login and
 * accounts, each run against a real console process (built bin/) on loopback. Different source
 * addresses are real: Linux routes all of 127.0.0.0/8 to lo, so a client binds 127.0.x.y.
 * No timing thresholds: every assertion counts answers or events, or compares their order.
 */
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base32Decode, hotp, timeStep } from '../../protocol/mfa/otp.js';
import { agentPaths } from '../../agent/state.js';
import { LOGIN_LIMITS, LOGIN_POLICY } from '../../console/web/auth.js';
import { enrollAgent, startConsole, type TestAgent, type TestConsole } from '../integration/harness.js';

const PRELOGIN = '__Host-sekimori_login';
const SESSION = '__Host-sekimori_session';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** When the answer was complete, by arrival order across all requests of the test. */
  order: number;
}

let arrivals = 0;

interface SendOpts {
  method?: 'GET' | 'POST';
  from?: string; // local (source) address
  agent?: Agent;
  form?: Record<string, string>;
  json?: unknown;
  cookies?: Record<string, string>;
  origin?: string | null; // null: no Origin header
}

function send(c: TestConsole, path: string, o: SendOpts = {}): Promise<Answer> {
  const ca = readFileSync(join(c.dataDir, 'ca.pem'));
  const body = o.form ? new URLSearchParams(o.form).toString() : o.json !== undefined ? JSON.stringify(o.json) : undefined;
  const headers: Record<string, string> = {};
  if (o.form) headers['content-type'] = 'application/x-www-form-urlencoded';
  if (o.json !== undefined) headers['content-type'] = 'application/json';
  if (o.cookies) headers.cookie = Object.entries(o.cookies).map(([k, v]) => `${k}=${v}`).join('; ');
  if ((o.method ?? 'GET') === 'POST' && o.origin !== null) headers.origin = o.origin ?? c.url;
  return new Promise((resolve, reject) => {
    const req = request(
      `${c.url}${path}`,
      { method: o.method ?? 'GET', ca, headers, agent: o.agent, ...(o.from ? { localAddress: o.from } : {}), timeout: 60_000 },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, order: ++arrivals }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout: ${path}`)));
    req.on('error', reject);
    req.end(body);
  });
}

function setCookie(a: Answer, name: string): string {
  for (const line of a.headers['set-cookie'] ?? []) {
    const m = new RegExp(`^${name}=([^;]*)`).exec(line);
    if (m) return m[1]!;
  }
  throw new Error(`${name} not set (status ${a.status})`);
}

/** The pre-login CSRF token a browser gets with the login page. */
async function prelogin(c: TestConsole, from: string, agent?: Agent): Promise<string> {
  return setCookie(await send(c, '/login', { from, agent }), PRELOGIN);
}

/** Statuses of every POST /login answered, per console (item 6 checks that each one is accounted for). */
const loginStatuses = new Map<string, number[]>();

async function loginPost(c: TestConsole, from: string, token: string, creds: { username: string; password: string; code: string }, extra: { agent?: Agent; lang?: 'en' } = {}): Promise<Answer> {
  const a = await send(c, '/login', {
    method: 'POST',
    from,
    agent: extra.agent,
    cookies: { [PRELOGIN]: token, ...(extra.lang ? { '__Host-sekimori_lang': extra.lang } : {}) },
    form: { _csrf: token, next: '/', ...creds },
  });
  loginStatuses.set(c.url, [...(loginStatuses.get(c.url) ?? []), a.status]);
  return a;
}

/** The message the login page shows (p.error), without markup. */
function shownError(a: Answer): string {
  return /<p class="error" role="alert">([^<]*)<\/p>/.exec(a.body)?.[1] ?? '';
}

function initialAdmin(c: TestConsole): { password: string; key: Buffer } {
  const text = readFileSync(join(c.dataDir, 'initial-admin.txt'), 'utf8');
  const get = (n: string) => new RegExp(`^${n}: (.+)$`, 'm').exec(text)![1]!.trim();
  return { password: get('password'), key: base32Decode(get('totp-secret'))! };
}

function codeAt(key: Buffer, step: number): string {
  return hotp(key, step);
}

function readDb<T>(c: TestConsole, f: (db: Database.Database) => T): T {
  const db = new Database(join(c.dataDir, 'console.db'), { readonly: true });
  try {
    return f(db);
  } finally {
    db.close();
  }
}

function lockedUntil(c: TestConsole, user: string): number {
  return readDb(c, (db) => (db.prepare('SELECT locked_until AS l FROM web_login_state WHERE username = ?').get(user) as { l: number } | undefined)?.l ?? 0);
}

const WRONG = { username: 'admin', password: 'not-the-password', code: '123456' };

describe('login flood (items 5, 6, 8) on one console', () => {
  let c: TestConsole;
  let agent: TestAgent;
  const open: Agent[] = [];

  beforeAll(async () => {
    c = await startConsole();
    agent = await enrollAgent(c, { start: false });
  }, 120_000);

  afterAll(async () => {
    for (const a of open) a.destroy();
    await agent?.cleanup();
    await c?.cleanup();
  });

  function keepAlive(extra: { key?: Buffer; cert?: Buffer } = {}): Agent {
    const a = new Agent({ keepAlive: true, maxSockets: 1, ca: readFileSync(join(c.dataDir, 'ca.pem')), ...extra });
    open.push(a);
    return a;
  }

  it('item 5: agents are served while passwords are checked (scrypt no longer blocks the event loop)', async () => {
    // Connections are opened first, so the rounds below measure request handling, not TLS handshakes.
    const p = agentPaths(agent.stateDir);
    const beatAgent = keepAlive({ key: readFileSync(p.key), cert: readFileSync(p.cert) });
    const beat = { ts: new Date().toISOString(), hostname: 'probe', os: 'linux', agentVersion: 'test', policyVersion: 1, outboxDepth: 0, monitorOnly: false };
    expect((await send(c, '/api/agent/heartbeat', { method: 'POST', agent: beatAgent, json: beat })).status).toBe(200);
    const rounds = 5;
    let heartbeatFirst = 0;
    for (let round = 0; round < rounds; round++) {
      // As many logins as may be checked at once, each from its own address (no per-address limit).
      const clients = Array.from({ length: LOGIN_LIMITS.verifications }, (_, i) => ({ from: `127.0.2.${round * 10 + i + 1}`, agent: keepAlive() }));
      const tokens = await Promise.all(clients.map((k) => prelogin(c, k.from, k.agent)));
      // An unknown account: failures from many addresses must not add up to a lock of a real one here.
      const logins = clients.map((k, i) => loginPost(c, k.from, tokens[i]!, { ...WRONG, username: 'probe' }, { agent: k.agent }));
      const hb = await send(c, '/api/agent/heartbeat', { method: 'POST', agent: beatAgent, json: beat });
      const answers = await Promise.all(logins);
      expect(hb.status).toBe(200);
      // Both passwords were really checked (not refused by a limit), so the order means something.
      expect(answers.map((a) => a.status)).toEqual(clients.map(() => 401));
      if (answers.every((a) => a.order > hb.order)) heartbeatFirst++;
    }
    // Before: every heartbeat waited behind at least one synchronous scrypt (0 of 5).
    expect(heartbeatFirst).toBeGreaterThanOrEqual(rounds - 1);
  }, 120_000);

  it('items 5 and 8: 64 parallel logins from one address: the per-address limit answers 429 with Retry-After, and admin is not locked', async () => {
    const from = '127.0.3.1';
    const token = await prelogin(c, from);
    const answers = await Promise.all(Array.from({ length: 64 }, () => loginPost(c, from, token, WRONG)));
    const by = (s: number) => answers.filter((a) => a.status === s);
    const limited = by(429);
    // At most the burst (plus what refills meanwhile, one per 30 s) had a password checked.
    expect(by(401).length + by(503).length).toBeLessThanOrEqual(LOGIN_LIMITS.perAddress.burst + 1);
    expect(limited.length).toBeGreaterThanOrEqual(64 - LOGIN_LIMITS.perAddress.burst - 1);
    expect(by(401).length + by(503).length + limited.length).toBe(64);
    for (const a of limited) {
      expect(Number(a.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(shownError(a)).toBe(`ログインの試行が多すぎます。${a.headers['retry-after']}秒後にもう一度お試しください。`);
      expect(a.headers['content-type']).toContain('text/html');
    }
    // One address, however many failures: the well-known account is not locked for everyone.
    expect(lockedUntil(c, 'admin')).toBeLessThanOrEqual(Date.now());
    const { password, key } = initialAdmin(c);
    const other = '127.0.3.2';
    const ok = await loginPost(c, other, await prelogin(c, other), { username: 'admin', password, code: codeAt(key, timeStep(Date.now())) });
    expect(ok.status).toBe(303);
    expect(setCookie(ok, SESSION).length).toBeGreaterThan(20);
  }, 120_000);

  it('item 5: 64 parallel logins from 16 addresses: the global limit and the verification cap refuse the rest (429/503)', async () => {
    const clients = Array.from({ length: 16 }, (_, i) => `127.0.4.${i + 1}`);
    const tokens = await Promise.all(clients.map((from) => prelogin(c, from)));
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 64 }, (_, i) => loginPost(c, clients[i % 16]!, tokens[i % 16]!, WRONG, i % 2 ? { lang: 'en' } : {})));
    const seconds = (Date.now() - started) / 1000;
    const checked = answers.filter((a) => a.status === 401).length;
    const refused = answers.filter((a) => a.status === 429 || a.status === 503);
    expect(checked + refused.length).toBe(64);
    // Counting, not timing: no more passwords checked than the global bucket can hold and refill.
    expect(checked).toBeLessThanOrEqual(LOGIN_LIMITS.global.burst + Math.ceil(seconds * LOGIN_LIMITS.global.perSecond) + 1);
    expect(refused.length).toBeGreaterThan(0);
    for (const a of refused) {
      expect(Number(a.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(shownError(a)).toMatch(/^(ログインの試行が多すぎます。\d+秒後に|ログイン処理が混み合っています。|Too many login attempts\. Try again in \d+ seconds\.$|The console is busy with other logins\.)/);
    }
  }, 120_000);

  it('item 6: cross-origin and failed logins are folded into counted events per address; successful logins stay individual', async () => {
    const from = '127.0.5.1';
    const token = await prelogin(c, from);
    const forged = await Promise.all(
      Array.from({ length: 50 }, () => send(c, '/login', { method: 'POST', from, origin: 'https://evil.example', cookies: { [PRELOGIN]: token }, form: { _csrf: token, ...WRONG } })),
    );
    expect(forged.every((a) => a.status === 403)).toBe(true);
    // Stopping writes the summaries of the current minute (what serve's tick does when it ends).
    await c.stop();
    const rows = readDb(c, (db) => db.prepare("SELECT type, data FROM events WHERE agent_id = 'console' AND type IN ('admin.csrf_refused', 'admin.login_failed', 'admin.login', 'admin.login_throttled')").all() as { type: string; data: string }[]);
    const of = (type: string, addr?: string) => rows.filter((r) => r.type === type).map((r) => JSON.parse(r.data) as { from: string; repeated?: number }).filter((d) => addr === undefined || d.from === addr);
    // A recorded event stands for itself; a summary (data.repeated = N) for the N after the first.
    const represented = (ds: { repeated?: number }[]) => ds.reduce((n, d) => n + (d.repeated ?? 1), 0);
    const csrf = of('admin.csrf_refused', from);
    // Before: 50 events on the console's chain. Now one at once and one summary per minute.
    expect(csrf.length).toBeLessThanOrEqual(4);
    expect(represented(csrf)).toBe(50);
    // The flood from 127.0.3.1 above (64 attempts): a few events, not 64.
    expect(of('admin.login_failed', '127.0.3.1').length).toBeLessThanOrEqual(4);
    // Refusals are keyed by address (per-address limit) or by the limit (global, busy): at most a
    // first event and a summary per key and minute, over at most two minutes here.
    expect(of('admin.login_throttled').length).toBeLessThanOrEqual(3 * 2 * 2);
    // Nothing is lost: every refused or failed login above is counted in exactly one event.
    const statuses = loginStatuses.get(c.url) ?? [];
    expect(represented(of('admin.login_failed'))).toBe(statuses.filter((s) => s === 401).length);
    expect(represented(of('admin.login_throttled'))).toBe(statuses.filter((s) => s === 429 || s === 503).length);
    expect(of('admin.login')).toHaveLength(1);
    await c.start();
  }, 120_000);
});

describe('one message for every failure, and the account lock (item 8)', () => {
  let c: TestConsole;
  let user: { password: string; key: Buffer };

  beforeAll(async () => {
    c = await startConsole();
    const created = c.json<{ password: string; totpSecret: string }>(['user', 'add', '--name', 'kansa', '--role', 'auditor']);
    user = { password: created.password, key: base32Decode(created.totpSecret)! };
  }, 120_000);

  afterAll(async () => {
    await c?.cleanup();
  });

  it('unknown account, wrong password, wrong code and a locked account look the same; a lock needs failures from several addresses', async () => {
    const good = () => ({ username: 'kansa', password: user.password, code: codeAt(user.key, timeStep(Date.now())) });
    const attempt = async (from: string, creds: { username: string; password: string; code: string }) => loginPost(c, from, await prelogin(c, from), creds);
    const unknown = await attempt('127.0.6.1', { username: 'nobody', password: 'x', code: '123456' });
    const badPassword = await attempt('127.0.6.1', { ...good(), password: 'wrong-password' });
    const badCode = await attempt('127.0.6.1', { ...good(), code: String((Number(good().code) + 1) % 1_000_000).padStart(6, '0') });
    // The rest of the streak from two more addresses reaches the lock (lockFailures from lockSources).
    const addrs = ['127.0.6.1', '127.0.6.2', '127.0.6.3'];
    expect(addrs.length).toBe(LOGIN_POLICY.lockSources);
    for (let i = 2; i < LOGIN_POLICY.lockFailures; i++) await attempt(addrs[i % addrs.length]!, { ...good(), password: 'wrong-password' });
    expect(lockedUntil(c, 'kansa')).toBeGreaterThan(Date.now());
    const whileLocked = await attempt('127.0.6.4', good());
    const answers = { unknown, badPassword, badCode, whileLocked };
    for (const a of Object.values(answers)) expect(a.status).toBe(401);
    // Before: "locked" had its own message, which told that the account exists.
    expect(new Set(Object.values(answers).map(shownError))).toEqual(new Set(['ログインできませんでした。入力内容を確認してください。']));
    const locked = readDb(c, (db) => db.prepare("SELECT data FROM events WHERE type = 'admin.account_locked'").all() as { data: string }[]);
    expect(locked).toHaveLength(1);
    expect((JSON.parse(locked[0]!.data) as { sources: string[] }).sources.sort()).toEqual(addrs);
  }, 120_000);
});

describe('own password change (items 10, 11)', () => {
  let c: TestConsole;
  let user: { password: string; key: Buffer };
  let step0 = 0;
  let loginsDone = 0;

  beforeAll(async () => {
    c = await startConsole();
    const created = c.json<{ password: string; totpSecret: string }>(['user', 'add', '--name', 'suzuki', '--role', 'auditor']);
    user = { password: created.password, key: base32Decode(created.totpSecret)! };
    step0 = timeStep(Date.now());
  }, 120_000);

  afterAll(async () => {
    await c?.cleanup();
  });

  /** A new session: the codes for steps step0-1, step0, step0+1 are all inside the ±1 window, and each is fresh. */
  async function session(from: string): Promise<{ token: string; csrf: string; from: string }> {
    if (loginsDone >= 3) throw new Error('at most three sessions per test run (TOTP steps)');
    const code = codeAt(user.key, step0 - 1 + loginsDone++);
    const ok = await loginPost(c, from, await prelogin(c, from), { username: 'suzuki', password: user.password, code });
    expect(ok.status).toBe(303);
    const token = setCookie(ok, SESSION);
    const page = await send(c, '/accounts', { from, cookies: { [SESSION]: token } });
    const csrf = /<meta name="csrf-token" content="([^"]+)">/.exec(page.body)![1]!;
    return { token, csrf, from };
  }

  function changePassword(s: { token: string; csrf: string; from: string }, current: string, next: string): Promise<Answer> {
    return send(c, '/accounts/password', { method: 'POST', from: s.from, cookies: { [SESSION]: s.token }, form: { _csrf: s.csrf, current, next } });
  }

  async function alive(s: { token: string; from: string }): Promise<boolean> {
    const a = await send(c, '/accounts', { from: s.from, cookies: { [SESSION]: s.token } });
    return a.status === 200;
  }

  it('item 10: a session gets a few guesses at the current password, even in parallel, then it is ended', async () => {
    const thief = await session('127.0.7.1');
    const failedEvents = () => readDb(c, (db) => (db.prepare("SELECT count(*) AS n FROM events WHERE type = 'admin.password_change_failed'").get() as { n: number }).n);
    const parallel = await Promise.all(Array.from({ length: 20 }, (_, i) => changePassword(thief, `guess-${i}`, 'new-password-123456')));
    expect(parallel.every((a) => a.status === 303)).toBe(true);
    // Before: all 20 guesses were checked. Now never more than the allowance (some may be answered "busy").
    expect(failedEvents()).toBeLessThanOrEqual(LOGIN_LIMITS.passwordChangeFailures);
    const later: Answer[] = [];
    for (let i = 0; i < 10 && (await alive(thief)); i++) later.push(await changePassword(thief, `later-${i}`, 'new-password-123456'));
    expect(await alive(thief)).toBe(false);
    expect(failedEvents()).toBe(LOGIN_LIMITS.passwordChangeFailures);
    expect([...parallel, ...later].filter((a) => a.headers.location === '/login?ended=1').length).toBeGreaterThan(0);
    expect(shownError(await send(c, '/login?ended=1', { from: thief.from }))).toBe('現在のパスワードの誤りが続いたため、ログアウトしました。再度ログインしてください。');
    expect(readDb(c, (db) => db.prepare("SELECT data FROM events WHERE type = 'admin.session_ended'").all()).length).toBe(1);
  }, 120_000);

  it('item 11: a password change ends every other session of the account, not the one that changed it', async () => {
    const mine = await session('127.0.7.2');
    const other = await session('127.0.7.3');
    const wrong = await changePassword(mine, 'wrong-password', 'new-password-123456');
    expect(wrong.headers.location).toMatch(/^\/accounts\?pw=bad/);
    const ok = await changePassword(mine, user.password, 'new-password-123456');
    expect(ok.headers.location).toMatch(/^\/accounts\?pw=ok/);
    expect(await alive(mine)).toBe(true);
    // Before: the other session (say, one left open on a shared PC, or stolen) stayed logged in.
    expect(await alive(other)).toBe(false);
    expect(ok.headers.location).toBe('/accounts?pw=ok&ended=1');
    expect(wrong.headers.location).toBe(`/accounts?pw=bad&left=${LOGIN_LIMITS.passwordChangeFailures - 1}`);
    const shown = await send(c, ok.headers.location!, { from: mine.from, cookies: { [SESSION]: mine.token } });
    expect(shown.body).toContain('パスワードを変更しました。 他のセッション1件を終了しました。');
  }, 120_000);
});
