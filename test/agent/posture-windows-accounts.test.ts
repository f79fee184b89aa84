/**
 * Windows mfa_enrolment: sekimori-accounts.exe's listing (NetUserEnum level 20) parsed, the accounts
 * that can log on chosen, and the console's verdict (fillEnrolment) over them — with hostile input.
 * The helper itself runs under wine in test/e2e/wine/posture.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { logonAccounts, parseAccounts } from '../../agent/posture/windows/accounts.js';
import { readWindowsPosture, windowsEnrolmentReport } from '../../agent/posture/windows/platform.js';
import { MemoryRegistry } from '../../agent/windows/registry.js';
import { defaultScreenLockPolicy } from '../../protocol/policy-screen-lock.js';

const hex = (s: string) => Buffer.from(s, 'utf16le').toString('hex');
const line = (name: string, flags = 0x201) => `A ${flags.toString(16)} ${hex(name)}`;

describe('sekimori-accounts.exe output', () => {
  it('parses accounts (Japanese names, CRLF), keeps those that can log on', () => {
    const r = parseAccounts([line('taro'), line('Administrator', 0x203), line('田中', 0x211), line('Guest', 0x223), 'END 4', ''].join('\r\n'));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.accounts.map((a) => a.name)).toEqual(['taro', 'Administrator', '田中', 'Guest']);
    expect(logonAccounts(r.accounts).map((a) => a.name)).toEqual(['taro', '田中']); // disabled left out, locked-out kept
    expect(logonAccounts(r.accounts)[0]!.evidence).toBe('NetUserEnum: taro (flags 0x201)');
  });

  it.each([
    ['no END line (the helper died)', [line('taro')].join('\n')],
    ['END with a wrong count', [line('taro'), 'END 2'].join('\n')],
    ['NetUserEnum failed', 'ERR 5\n'],
    ['junk', 'hello\nEND 0'],
    ['odd hex (half a UTF-16 unit)', 'A 201 74610\nEND 1'],
    ['the old level-1 format (a priv field)', 'A 201 1 7400\nEND 1'],
    ['upper-case hex', `A 201 ${hex('taro').toUpperCase()}\nEND 1`],
    ['a 2^53 flags field', 'A 20000000000000 7400\nEND 1'],
  ])('refuses %s', (_n, text) => {
    const r = parseAccounts(text);
    expect(r.ok).toBe(false);
    expect(windowsEnrolmentReport(r).state).toBe('unknown');
  });

  it('hostile names are display text: controls and bidi escaped, bounded', () => {
    const r = parseAccounts([line('evil\u001b[2J\r\nadmin'), line('\u202etxt.exe'), line('x'.repeat(512)), 'END 3'].join('\n'));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    for (const a of r.accounts) {
      expect(a.name).not.toMatch(/[\u0000-\u001f]/);
      expect(a.name.length).toBeLessThanOrEqual(256 + 16);
    }
    const rep = windowsEnrolmentReport(r);
    expect(rep.state).toBe('unknown'); // the console fills it in
    expect(rep.detail?.accounts?.length).toBe(3);
  });

  it('no helper → unknown, saying so; an empty listing → no accounts (ok for the console)', () => {
    expect(windowsEnrolmentReport(null)).toMatchObject({ control: 'mfa_enrolment', state: 'unknown' });
    expect(windowsEnrolmentReport(null).evidence.join(' ')).toMatch(/sekimori-accounts\.exe not installed/);
    expect(windowsEnrolmentReport(parseAccounts('END 0\n'))).toMatchObject({ state: 'unknown', detail: { accounts: [] } });
  });

  it('the Windows posture carries the accounts for the console to judge', async () => {
    const controls = await readWindowsPosture(new MemoryRegistry(), { usbMode: 'enforce', screenLock: defaultScreenLockPolicy() }, parseAccounts([line('taro'), 'END 1'].join('\n')));
    expect(controls.find((c) => c.control === 'mfa_enrolment')).toMatchObject({ state: 'unknown', detail: { accounts: ['taro'] } });
  });
});
