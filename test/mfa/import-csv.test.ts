/** The CSV token parsers (console/mfa/import-csv.ts), pure: table-driven, hostile input, line numbers. */
import { describe, expect, it } from 'vitest';
import { parseOathCsv, parseSekimoriCsv } from '../../console/mfa/import-csv.js';

const K20 = '3132333435363738393031323334353637383930';

describe('privacyIDEA OATH CSV', () => {
  it.each([
    [`S1, ${K20}`, { serial: 'S1', type: 'hotp', digits: 6, counter: 0, period: 30, algorithm: 'SHA1' }],
    [`S1,${K20},HOTP,8,12`, { type: 'hotp', digits: 8, counter: 12 }],
    [`S1, ${K20}, totp`, { type: 'totp', period: 30 }],
    [`S1, ${K20}, totp, 6, 60`, { type: 'totp', period: 60 }],
    [`S1, ${'31'.repeat(32)}, totp`, { algorithm: 'SHA256' }], // 64 hex
    [`S1, ${'31'.repeat(64)}, totp`, { algorithm: 'SHA512' }], // 128 hex
    [`S1, ${K20.toUpperCase()}, hotp, 6`, { secret: Buffer.from(K20, 'hex') }],
  ])('%s', (line, want) => {
    const r = parseOathCsv(line);
    expect(r.errors).toEqual([]);
    expect(r.rows[0]).toMatchObject({ user: null, ...want });
  });

  it.each([
    [`S1, ${K20}, ocra, OCRA-1:HOTP-SHA1-6:QN08`, /line 1: unsupported token type ocra/],
    [`S1, ${K20}, tan, 1 2 3`, /line 1: unsupported token type tan/],
    [`S1, ${K20}, totp, 7`, /line 1: digits must be 6 or 8/],
    [`S1, ${K20}, totp, 6, 45`, /line 1: period must be 30 or 60/],
    [`S1, ${K20}, hotp, 6, -1`, /line 1: invalid counter/],
    [`S1, ${K20}, hotp, 6, 9007199254740993`, /line 1: invalid counter/],
    [`S1, ${K20}, hotp, 6, 1e3`, /line 1: invalid counter/],
    [`S1, ${K20.slice(1)}`, /line 1: secret/], // odd hex
    ['S1, ', /line 1: secret/], // empty key
    [`S1, ${K20.replace('3', 'g')}`, /line 1: secret/],
    [`S1, 3132`, /line 1: secret/], // 2 bytes
    [`S1, ${'31'.repeat(28)}`, /SHA224\/SHA384/],
    [`S 1, ${K20}`, /line 1: invalid serial/],
    [`, ${K20}`, /line 1: invalid serial/],
    [`S1, ${K20}, hotp, 6, 0, extra`, /line 1: expected serial/],
    ['just-one-field', /line 1: expected serial/],
    [`S1, ${K20}\nS1, ${K20}`, /line 2: .*serial S1 repeated \(first at line 1\)/],
  ])('%s → refused', (text, re) => {
    const r = parseOathCsv(text);
    expect(r.errors.join('\n')).toMatch(re);
  });

  it('comments and empty lines are skipped, line numbers count them; CRLF works', () => {
    const r = parseOathCsv(`# header\r\n\r\nS1, ${K20}\r\nS2, ${K20}, ocra\r\n`);
    expect(r.errors).toEqual([expect.stringMatching(/^4行目: .* \/ line 4: unsupported token type ocra/)]);
  });

  it('version 2: user, resolver, realm first; an invalid user name is refused with its line', () => {
    const r = parseOathCsv(`# version: 2\n山田 太郎, r, x, S1, ${K20}, totp\n, , , S2, ${K20}\nbad/user, r, x, S3, ${K20}`);
    expect(r.rows.map((x) => [x.user, x.serial])).toEqual([['山田 太郎', 'S1'], [null, 'S2']]);
    expect(r.errors).toEqual([expect.stringMatching(/line 4: invalid user name/)]);
  });

  it('more than 100000 lines: refused whole', () => {
    expect(parseOathCsv('\n'.repeat(100_001)).errors[0]).toMatch(/too many lines/);
  });
});

describe('Sekimori CSV', () => {
  it('type hotp with a counter; empty user = unassigned', () => {
    const r = parseSekimoriCsv(`user,serial,seed_hex,type,counter\n,S1,${K20},hotp,5\nsato,S2,${K20},totp,0`);
    expect(r.errors).toEqual([]);
    expect(r.rows.map((x) => [x.user, x.serial, x.type, x.counter])).toEqual([[null, 'S1', 'hotp', 5], ['sato', 'S2', 'totp', 0]]);
  });
  it.each([
    ['user,serial,seed_hex,kind', /line 1: unknown column\(s\) kind/],
    ['user,serial', /line 1: header must name/],
    ['user,serial,secret,seed_hex', /line 1: header must name/],
    [`user,serial,seed_hex,type\nu,S1,${K20},ocra`, /line 2: unsupported token type ocra/],
    [`user,serial,seed_hex\nu,S1,${K20},extra`, /line 2: too many columns/],
    [`user,serial,seed_hex\nu,S1,${K20}\nv,S1,${K20}`, /line 3: .*serial S1 repeated/],
  ])('%j → refused', (text, re) => {
    expect(parseSekimoriCsv(text).errors.join('\n')).toMatch(re);
  });
});
