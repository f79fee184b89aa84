/**
 * Issue 13: the pure parts of the privacyIDEA-compatible answers (console/mfa/validate-check.ts),
 * table-driven with hostile input: which pass starts a two-step login, the answer language from
 * the Credential Provider's Accept-Language, form decoding as WinHTTP/AtlEscapeUrl sends it, and
 * the challenge answer's shape (the same whoever asks).
 */
import { describe, expect, it } from 'vitest';
import { challengeResponse, isCodeShaped, langOf, parseForm, pick, PROMPT_MESSAGE } from '../../console/mfa/validate-check.js';

describe('isCodeShaped: judged as a code, or a first step (user-independent)', () => {
  it.each([
    ['123456', true],
    ['123 456', true],
    ['12345678', true],
    ['ABCD-EFGH-JKMN', true], // recovery code
    ['abcdefghjkmn', true],
    ['', false],
    ['12345', false],
    ['1234567', false],
    ['123456789', false],
    ['Sommer2026!', false],
    ['パスワード', false],
    ['x'.repeat(100), false],
    ['１２３４５６', true], // digits typed with the IME on (NFKC)
  ] as const)('%j → %s', (pass, shaped) => expect(isCodeShaped(pass)).toBe(shaped));
});

describe('langOf / pick', () => {
  it.each([
    ['ja-jp', 'ja'],
    ['ja', 'ja'],
    ['JA-JP,en;q=0.5', 'ja'],
    ['en-us', 'en'],
    ['en-GB', 'en'],
    ['de-de', 'both'],
    ['', 'both'],
    [undefined, 'both'],
    [['ja-jp'], 'ja'],
  ] as const)('%j → %s', (h, lang) => expect(langOf(h)).toBe(lang));
  it('splits "日本語 / English"', () => {
    expect(pick(PROMPT_MESSAGE, 'ja')).toBe('認証コードを入力してください');
    expect(pick(PROMPT_MESSAGE, 'en')).toBe('Enter your verification code');
    expect(pick(PROMPT_MESSAGE, 'both')).toBe(PROMPT_MESSAGE);
    expect(pick('no separator', 'en')).toBe('no separator');
  });
});

describe('parseForm', () => {
  const form = 'application/x-www-form-urlencoded';
  it('decodes what AtlEscapeUrl sends (UTF-8 percent-encoded, %20 for space, first occurrence wins)', () => {
    const f = parseForm(Buffer.from('pass=&realm=WIN-01.abc&user=%E5%B1%B1%E7%94%B0%20%E5%A4%AA%E9%83%8E&user=other'), form)!;
    expect([...f.entries()]).toEqual([
      ['pass', ''],
      ['realm', 'WIN-01.abc'],
      ['user', '山田 太郎'],
    ]);
    expect(parseForm(Buffer.from('user=CITY%5Cyamada&pass=1%2B2'), form)!.get('user')).toBe('CITY\\yamada');
  });
  it.each([
    ['%', 'lone percent'],
    ['user=%E0%A4%A', 'truncated escape'],
    ['user=%C3%28', 'invalid UTF-8 escaped'],
  ])('refuses %j (%s)', (body) => expect(parseForm(Buffer.from(body), form)).toBeNull());
  it('refuses raw bytes that are not UTF-8', () => expect(parseForm(Buffer.from([0x75, 0x3d, 0xff, 0xfe]), form)).toBeNull());
  it('JSON bodies: string members only, never arrays', () => {
    expect(parseForm(Buffer.from('{"user":"a","pass":1}'), 'application/json')!.get('pass')).toBeUndefined();
    expect(parseForm(Buffer.from('["user"]'), 'application/json')).toBeNull();
  });
});

describe('challengeResponse', () => {
  it('is privacyIDEA\'s triggered-TOTP answer, identical but for the transaction id', () => {
    const a = challengeResponse('ja').json as { result: unknown; detail: Record<string, unknown> };
    const b = challengeResponse('ja').json as { result: unknown; detail: Record<string, unknown> };
    expect(a.result).toEqual({ status: true, value: false, authentication: 'CHALLENGE' });
    expect(a.detail.transaction_id).toMatch(/^[1-9]\d{19}$/);
    expect(a.detail.transaction_id).not.toBe(b.detail.transaction_id);
    const strip = (d: Record<string, unknown>) => JSON.stringify({ ...d, transaction_id: '', transaction_ids: [], multi_challenge: (d.multi_challenge as object[]).map((c) => ({ ...c, transaction_id: '' })) });
    expect(strip(a.detail)).toBe(strip(b.detail));
    expect(a.detail.multi_challenge).toEqual([{ transaction_id: a.detail.transaction_id, serial: '', type: 'totp', client_mode: 'interactive', message: '認証コードを入力してください' }]);
  });
});
