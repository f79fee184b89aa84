/**
 * Unit tier for the web console's pure pieces (kept beside the browser tier, which owns
 * test/e2e/browser/): escaping, CSV, diff, the login decision, same-origin check, redirects,
 * filter parsing, i18n completeness, and the event queries on a small real SQLite store.
 */
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { migrate } from '../../console/core/db.js';
import { coreMigrations } from '../../console/core/schema.js';
import { decideLogin, LOGIN_POLICY, parseCookies, sameOrigin, type LoginState } from '../../console/web/auth.js';
import { webMigrations } from '../../console/web/schema.js';
import { hotp, timeStep } from '../../protocol/mfa/otp.js';
import { sourceKey } from '../../console/core/limits.js';
import { barChart } from '../../console/web/charts.js';
import { BOM, csvCell, csvLine } from '../../console/web/csv.js';
import { diffLines } from '../../console/web/diff.js';
import { escapeHtml, html, trusted } from '../../console/web/html.js';
import { allKeys, tr } from '../../console/web/i18n.js';
import { parseEventQuery } from '../../console/web/pages/events.js';
import { parseSections } from '../../console/web/pages/policy.js';
import { reportPeriod } from '../../console/web/pages/report.js';
import { countTypes, dayString, eventPage, perDay, rollupCatchUp } from '../../console/web/queries.js';
import { qrSvg } from '../../console/web/qr.js';
import { CSP, safeNext } from '../../console/web/web.js';
import { defaultPolicyBody } from '../../protocol/policy.js';

const HOSTILE = [
  '<img src=x onerror=alert(1)>',
  '"><script>alert(1)</script>',
  "' onmouseover='alert(1)",
  '`${alert(1)}`',
  '&lt;already escaped&gt;',
  '\u0000\u001b[31mred\u202e',
  'a\ud800b', // lone surrogate
];

describe('html escaping', () => {
  it.each(HOSTILE)('never lets %j through as markup', (s) => {
    const esc = html`${s}`.value;
    expect(esc).not.toMatch(/["'<>`]/);
    expect(html`<td title="${s}">${s}</td>`.value).toBe(`<td title="${esc}">${esc}</td>`);
  });
  it('escapes nested arrays and numbers, keeps Html as is', () => {
    expect(html`${['<a>', 1, null, undefined, false, html`<b>${'<c>'}</b>`]}`.value).toBe('&lt;a&gt;1<b>&lt;c&gt;</b>');
    expect(escapeHtml('&<>"\'`')).toBe('&amp;&lt;&gt;&quot;&#39;&#96;');
    expect(html`${trusted('<svg/>')}`.value).toBe('<svg/>');
  });
  it('SVG charts escape their labels', () => {
    expect(barChart([{ label: '<script>', n: 3 }], { title: '"x"' }).value).not.toContain('<script>');
  });
  it('QR code SVG has only path data', () => {
    const s = qrSvg('otpauth://totp/a:b?secret=ABC&issuer="><script>');
    expect(s).not.toContain('<script');
    expect(s).toMatch(/^<svg [^>]+><rect [^>]+\/><path fill="#000" d="[Mhvz0-9 -]+"\/><\/svg>$/);
  });
});

describe('CSV for Excel', () => {
  it.each([
    ['plain', '"plain"'],
    ['a"b', '"a""b"'],
    ['=1+2', `"'=1+2"`],
    ['+cmd', `"'+cmd"`],
    ['-1', `"'-1"`],
    ['@SUM(A1)', `"'@SUM(A1)"`],
    ['\tx', `"'\tx"`],
    ['改行\r\nあり', '"改行\r\nあり"'],
    [null, '""'],
  ])('%j → %j', (v, want) => expect(csvCell(v)).toBe(want));
  it('objects become JSON, lines end in CRLF, BOM is U+FEFF', () => {
    expect(csvLine([{ a: '<x>' }, 3])).toBe('"{""a"":""<x>""}","3"\r\n');
    expect(Buffer.from(BOM)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
  });
});

describe('policy diff', () => {
  it('finds added, removed and kept lines', () => {
    const d = diffLines('a\nb\nc\nd', 'a\nx\nc\nd\ne');
    expect(d.map((l) => l.op + l.text)).toEqual([' a', '-b', '+x', ' c', ' d', '+e']);
  });
  it('identical text has no changes; huge inputs degrade to replace', () => {
    expect(diffLines('x\ny', 'x\ny').every((l) => l.op === ' ')).toBe(true);
    const d = diffLines('a\nb', 'c\nd', 1);
    expect(d.map((l) => l.op)).toEqual(['-', '-', '+', '+']);
  });
  it('parseSections reports JSON errors and validation errors by path', () => {
    const good = defaultPolicyBody() as unknown as Record<string, unknown>;
    const get = (over: Record<string, string>) => (k: string) => over[k] ?? JSON.stringify(good[k]);
    expect(parseSections(get({})).errors).toEqual([]);
    expect(parseSections(get({ usb: '{' })).errors[0]).toMatch(/^policy\.usb: JSON/);
    expect(parseSections(get({ agent: '{"heartbeatSeconds":0,"uploadBatchSize":1}' })).errors.join()).toContain('policy.agent.heartbeatSeconds');
    expect(parseSections(get({ agent: '{"heartbeatSeconds":5,"uploadBatchSize":1,"x":1}' })).errors.join()).toContain('policy.agent.x');
  });
});

describe('login decision (protocol/mfa/decide.ts with the password as first factor)', () => {
  const fresh: LoginState = { failures: 0, lockedUntil: 0, lastStep: -1 };
  const key = new Uint8Array(20).fill(7);
  const nowMs = 1_000_000_000;
  const step = timeStep(nowMs);
  const codeAt = (s: number) => hotp(key, s);
  const ok = { exists: true, disabled: false, passwordOk: true, key, code: codeAt(step), wellFormed: true, nowMs, streakSources: 1 };
  it.each([
    ['all good', fresh, ok, true, 'ok'],
    ['a step behind (window 1)', fresh, { ...ok, code: codeAt(step - 1) }, true, 'ok'],
    ['a step ahead (window 1)', fresh, { ...ok, code: codeAt(step + 1) }, true, 'ok'],
    ['two steps behind', fresh, { ...ok, code: codeAt(step - 2) }, false, 'bad_credentials'],
    ['wrong password', fresh, { ...ok, passwordOk: false }, false, 'bad_credentials'],
    ['wrong code', fresh, { ...ok, code: codeAt(step + 50) }, false, 'bad_credentials'],
    ['unknown account', fresh, { ...ok, exists: false }, false, 'bad_credentials'],
    ['seed that does not decode', fresh, { ...ok, key: null }, false, 'bad_credentials'],
    ['disabled account', fresh, { ...ok, disabled: true }, false, 'disabled'],
    ['disabled account, wrong password', fresh, { ...ok, disabled: true, passwordOk: false }, false, 'bad_credentials'],
    ['malformed input', fresh, { ...ok, wellFormed: false }, false, 'malformed'],
    ['replayed step', { ...fresh, lastStep: step }, ok, false, 'replay'],
    ['older step', { ...fresh, lastStep: step + 1 }, ok, false, 'replay'],
    ['locked even with right factors', { ...fresh, lockedUntil: nowMs + 1 }, ok, false, 'locked'],
    ['lock expired', { ...fresh, lockedUntil: nowMs - 1 }, ok, true, 'ok'],
    // Hostile codes reaching the decision even though attemptLogin checks the shape first.
    ['empty code', fresh, { ...ok, code: '' }, false, 'malformed'],
    ['five digits', fresh, { ...ok, code: codeAt(step).slice(1) }, false, 'malformed'],
    ['full-width digits', fresh, { ...ok, code: '１２３４５６' }, false, 'malformed'],
    ['code with a newline', fresh, { ...ok, code: codeAt(step) + '\n' }, false, 'malformed'],
    ['a recovery-code shape (accounts have none)', fresh, { ...ok, code: 'ABCD-EFGH-JKMN' }, false, 'bad_credentials'],
    ['a megabyte', fresh, { ...ok, code: '1'.repeat(1 << 20) }, false, 'malformed'],
  ] as const)('%s', (_n, state, input, wantOk, reason) => {
    const v = decideLogin(state, input);
    expect(v.ok).toBe(wantOk);
    expect(v.reason).toBe(reason);
    if (v.ok) expect(v.next).toEqual({ failures: 0, lockedUntil: 0, lastStep: timeStepOf(input.code) });
  });
  const timeStepOf = (code: string) => [step - 1, step, step + 1].find((s) => codeAt(s) === code);
  it('locks after lockFailures failures from lockSources addresses; success resets the count', () => {
    let s = fresh;
    for (let i = 1; i < LOGIN_POLICY.lockFailures; i++) {
      const v = decideLogin(s, { ...ok, passwordOk: false, streakSources: LOGIN_POLICY.lockSources });
      expect(v.lockedNow).toBe(false);
      s = v.next;
    }
    const v = decideLogin(s, { ...ok, passwordOk: false, streakSources: LOGIN_POLICY.lockSources });
    expect(v.lockedNow).toBe(true);
    expect(v.next.lockedUntil).toBe(ok.nowMs + LOGIN_POLICY.lockMs);
    expect(decideLogin(v.next, ok)).toMatchObject({ ok: false, reason: 'locked' }); // no code is looked at while locked
    expect(decideLogin({ ...fresh, failures: 3 }, ok).next).toEqual({ failures: 0, lockedUntil: 0, lastStep: step });
  });
  // Issue 10 item 8: five requests from anywhere locked `admin` for everyone.
  it.each([
    ['one address, any number of failures', 1, 10_000, false],
    ['fewer addresses than lockSources', LOGIN_POLICY.lockSources - 1, 10_000, false],
    ['enough addresses, too few failures', LOGIN_POLICY.lockSources, LOGIN_POLICY.lockFailures - 1, false],
    ['enough addresses and failures', LOGIN_POLICY.lockSources, LOGIN_POLICY.lockFailures, true],
    ['many addresses', 50, LOGIN_POLICY.lockFailures, true],
  ] as const)('account lock: %s', (_n, sources, failures, locks) => {
    let s = fresh;
    let locked = false;
    for (let i = 0; i < failures && !locked; i++) {
      const v = decideLogin(s, { ...ok, passwordOk: false, streakSources: sources });
      locked = v.lockedNow;
      s = v.next;
    }
    expect(locked).toBe(locks);
    expect(LOGIN_POLICY.lockSources).toBeGreaterThan(1);
  });
});

describe('source addresses that limits and the account lock count', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['::FFFF:10.1.2.3', '10.1.2.3'],
    ['2001:db8:1:2:aaaa:bbbb:cccc:dddd', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::1', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002:0:0:0:ffff', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['::', '0:0:0:0::/64'],
    ['', ''],
    ['not-an-address', 'not-an-address'],
    ['1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7:8:9'],
    ['g::1', 'g::1'],
  ])('%j → %j', (addr, want) => expect(sourceKey(addr)).toBe(want));
});

describe('same-origin and redirects', () => {
  it.each([
    [{ origin: 'https://c:8443', host: 'c:8443' }, true],
    [{ origin: 'https://C:8443', host: 'c:8443' }, true],
    [{ origin: 'https://evil:8443', host: 'c:8443' }, false],
    [{ origin: 'http://c:8443', host: 'c:8443' }, false],
    [{ origin: 'null', host: 'c:8443' }, false],
    [{ referer: 'https://c:8443/events', host: 'c:8443' }, true],
    [{ referer: 'https://c:8443.evil/x', host: 'c:8443' }, false],
    [{ referer: 'not a url', host: 'c:8443' }, false],
    [{ host: 'c:8443' }, false],
    [{ origin: 'https://c', host: undefined }, false],
    [{ origin: 'https://c"x', host: 'c"x' }, false],
  ])('%j → %s', (h, want) => expect(sameOrigin(h)).toBe(want));
  it.each([
    ['/events?type=usb.blocked', '/events?type=usb.blocked'],
    ['//evil.example/', '/'],
    ['/\\evil.example', '/'],
    ['https://evil.example/', '/'],
    ['javascript:alert(1)', '/'],
    ['/ok\r\nset-cookie: x', '/'],
    [null, '/'],
  ])('safeNext(%j) = %j', (v, want) => expect(safeNext(v)).toBe(want));
  it('parses cookies, first one wins', () => {
    expect(parseCookies('a=1; b=2; a=3')).toEqual(new Map([['a', '1'], ['b', '2']]));
    expect(parseCookies(undefined).size).toBe(0);
  });
  it('CSP is strict', () => {
    for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "frame-ancestors 'none'", "form-action 'self'"]) expect(CSP).toContain(d);
    expect(CSP).not.toContain('unsafe');
  });
});

describe('filters', () => {
  it('accepts known filters and converts JST days', () => {
    const { query } = parseEventQuery(new URLSearchParams('type=usb.blocked&severity=warning&since=2026-04-01&until=2026-04-01&before=2026-04-01T00:00:00.000Z~42'));
    expect(query).toMatchObject({ type: 'usb.blocked', severity: 'warning', since: '2026-03-31T15:00:00.000Z', until: '2026-04-01T15:00:00.000Z', before: { ts: '2026-04-01T00:00:00.000Z', rid: 42 } });
  });
  it.each(['type=drop table', 'severity=loud', 'since=2026-13-45x', 'before=1~2', 'user=' + 'x'.repeat(300)])('refuses %s', (s) => {
    expect(() => parseEventQuery(new URLSearchParams(s))).toThrow();
  });
  it('report periods are bounded', () => {
    expect(reportPeriod(new URLSearchParams('from=2026-01-01&to=2026-01-31'))).toEqual({ from: '2026-01-01', to: '2026-01-31' });
    expect(() => reportPeriod(new URLSearchParams('from=2026-02-01&to=2026-01-01'))).toThrow();
    expect(() => reportPeriod(new URLSearchParams('from=2020-01-01&to=2026-01-01'))).toThrow();
  });
});

describe('i18n', () => {
  it('every key has Japanese and English text', () => {
    for (const k of allKeys()) {
      expect(tr('ja', k).length).toBeGreaterThan(0);
      expect(tr('en', k).length).toBeGreaterThan(0);
    }
  });
});

describe('event queries on SQLite', () => {
  function store(n: number) {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE schema_migrations (module TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (module, version))');
    migrate(db, 'core', coreMigrations);
    migrate(db, 'web', webMigrations);
    const ins = db.prepare("INSERT INTO events (id, agent_id, seq, ts, type, severity, user, data, prev_hash, hash, terminal_id, chain, received_at) VALUES (?, 'a', ?, ?, ?, ?, ?, ?, 'h', 'h', 't', 'ok', ?)");
    const base = Date.parse('2026-04-01T00:00:00.000Z');
    for (let i = 1; i <= n; i++) {
      // Several events share a timestamp, so pagination must break ties by rid.
      const ts = new Date(base + Math.floor(i / 3) * 60_000).toISOString();
      ins.run(`id${i}`, i, ts, i % 5 === 0 ? 'usb.blocked' : 'mfa.success', i % 5 === 0 ? 'warning' : 'info', i % 2 ? 'tanaka' : 'suzuki', JSON.stringify({ product: i === 77 ? 'Needle <b>' : 'disk' }), ts);
    }
    return db;
  }
  it('keyset pagination visits every event once, newest first', () => {
    const db = store(250);
    const seen: number[] = [];
    let before: { ts: string; rid: number } | undefined;
    for (let i = 0; i < 20; i++) {
      const p = eventPage(db, { before }, 17);
      seen.push(...p.events.map((e) => e.rid));
      if (!p.next) break;
      before = p.next;
    }
    expect(seen).toEqual(Array.from({ length: 250 }, (_, i) => 250 - i));
  });
  it('a type prefix merges per-type index seeks and still pages exactly', () => {
    const db = store(250);
    db.prepare("INSERT INTO events (id, agent_id, seq, ts, type, severity, user, data, prev_hash, hash, terminal_id, chain, received_at) VALUES ('x', 'console', 1, '2026-04-01T00:30:00.000Z', 'admin.custom_thing', 'notice', 'admin', '{}', 'h', 'h', 'console', 'ok', 'r')").run();
    for (const [type, want] of [['usb.*', 50], ['mfa.*', 200], ['admin.*', 1]] as const) {
      const seen: number[] = [];
      let before: { ts: string; rid: number } | undefined;
      for (let i = 0; i < 100; i++) {
        const p = eventPage(db, { type, before }, 7);
        seen.push(...p.events.map((e) => e.rid));
        if (!p.next) break;
        before = p.next;
      }
      const all = eventPage(db, { type: type.replace('.*', '') === 'admin' ? 'admin.custom_thing' : type === 'usb.*' ? 'usb.blocked' : 'mfa.success' }, 1000).events.map((e) => e.rid);
      expect(seen).toEqual(all);
      expect(seen.length).toBe(want);
    }
  });
  it('filters combine; free text is case-insensitive and bounded', () => {
    const db = store(250);
    expect(eventPage(db, { type: 'usb.blocked', user: 'suzuki' }, 100).events.every((e) => e.type === 'usb.blocked' && e.user === 'suzuki')).toBe(true);
    expect(eventPage(db, { type: 'usb.*' }, 100).events.length).toBe(50);
    expect(eventPage(db, { text: 'needle <B>' }, 10).events.map((e) => e.rid)).toEqual([77]);
    const bounded = eventPage(db, { text: 'needle' }, 10, 100);
    expect(bounded.events).toEqual([]);
    expect(bounded.scanLimited).toBe(true);
    expect(bounded.next).not.toBeNull();
    const cont = eventPage(db, { text: 'needle', before: bounded.next! }, 10, 200);
    expect(cont.events.map((e) => e.rid)).toEqual([77]);
  });
  it('free text is literal (regex characters are not operators)', () => {
    const db = store(20);
    expect(eventPage(db, { text: 'n.edle' }, 10).events).toEqual([]);
    expect(eventPage(db, { text: '.*' }, 10).events).toEqual([]);
    expect(eventPage(db, { text: '(' }, 10).events).toEqual([]);
    expect(eventPage(db, { text: 'DISK' }, 5).events.length).toBe(5);
  });
  it('rollup counts each event once, incrementally, by Japan day', () => {
    const db = store(250);
    expect(rollupCatchUp(db, 100)).toBe(100);
    expect(rollupCatchUp(db, 1000)).toBe(150);
    expect(rollupCatchUp(db, 1000)).toBe(0);
    expect(countTypes(db, ['usb.blocked'], '2026-04-01', '2026-04-01')).toBe(50);
    expect(perDay(db, ['usb.blocked'], '2026-03-31', '2026-04-02').map((d) => d.n)).toEqual([0, 50, 0]);
    expect(dayString(new Date('2026-04-01T15:00:00.000Z'))).toBe('2026-04-02');
  });
});

describe('sessions', () => {
  it('expire after the idle timeout and the absolute limit, and end when the account is disabled', async () => {
    const { createSession, loadSession } = await import('../../console/web/auth.js');
    const db = new Database(':memory:');
    db.exec('CREATE TABLE schema_migrations (module TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (module, version))');
    migrate(db, 'core', coreMigrations);
    migrate(db, 'web', webMigrations);
    db.prepare("INSERT INTO console_users (username, role, password_hash, totp_secret, created_at) VALUES ('a', 'auditor', 'x', 'y', 'z')").run();
    const t0 = 1_000_000_000;
    const s = createSession(db, 'a', t0);
    expect(loadSession(db, s.token, t0 + 60_000)).toEqual({ username: 'a', role: 'auditor', csrf: s.csrf });
    expect(loadSession(db, s.token + 'x', t0 + 60_000)).toBeNull();
    expect(loadSession(db, undefined, t0)).toBeNull();
    // Activity keeps it alive up to the absolute limit.
    let t = t0;
    while (t + LOGIN_POLICY.idleMs / 2 < t0 + LOGIN_POLICY.absoluteMs) {
      t += LOGIN_POLICY.idleMs / 2;
      expect(loadSession(db, s.token, t)).not.toBeNull();
    }
    expect(loadSession(db, s.token, t0 + LOGIN_POLICY.absoluteMs + 1)).toBeNull();
    const s2 = createSession(db, 'a', t0);
    expect(loadSession(db, s2.token, t0 + LOGIN_POLICY.idleMs + 1)).toBeNull();
    const s3 = createSession(db, 'a', t0);
    db.prepare("UPDATE console_users SET disabled = 1 WHERE username = 'a'").run();
    expect(loadSession(db, s3.token, t0 + 1000)).toBeNull();
  });
});

describe('diff context', () => {
  it('collapses long unchanged runs', async () => {
    const { withContext } = await import('../../console/web/diff.js');
    const a = Array.from({ length: 20 }, (_, i) => `l${i}`).join('\n');
    const b = a.replace('l10', 'X');
    expect(withContext(diffLines(a, b), 2).map((l) => l.op + l.text)).toEqual(['…', ' l8', ' l9', '-l10', '+X', ' l11', ' l12', '…']);
  });
});
