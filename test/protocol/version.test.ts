import { describe, expect, it } from 'vitest';
import { CERT_BACKDATE_MS, CERT_LIFE_MS, certLifeMs, renewalFrom, renewalState } from '../../protocol/renewal.js';
import { OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION, consoleCan, judgeAgentProtocol, judgeConsoleProtocol, protocolRefusalMessage, statedProtocol } from '../../protocol/version.js';

describe('protocol version header', () => {
  it.each<[string | string[] | undefined, number | null]>([
    [undefined, 1], // release 0.1.0 sent no header
    ['1', 1],
    ['2', 2],
    [' 2 ', 2],
    ['0', 0],
    ['3', 3],
    ['1000000', 1_000_000],
    ['9007199254740992', null], // 2^53
    ['10000000', null],
    ['-1', null],
    ['+2', null],
    ['2.0', null],
    ['02', null],
    ['0x2', null],
    ['2e0', null],
    ['', null],
    ['1 2', null],
    ['２', null], // full-width digit
    [['2'], 2],
    [['2', '1'], null], // the header twice: which one?
    [[], null],
  ])('%j states %j', (h, want) => expect(statedProtocol(h)).toBe(want));

  it('the console accepts the previous protocol and its own, and newer agents', () => {
    expect(OLDEST_PROTOCOL_VERSION).toBe(PROTOCOL_VERSION - 1);
    expect(judgeAgentProtocol(undefined)).toEqual({ ok: true, version: 1 });
    expect(judgeAgentProtocol(String(PROTOCOL_VERSION))).toEqual({ ok: true, version: PROTOCOL_VERSION });
    expect(judgeAgentProtocol(String(PROTOCOL_VERSION + 1))).toEqual({ ok: true, version: PROTOCOL_VERSION + 1 });
  });

  it.each<[string | undefined, number, boolean, string | undefined]>([
    ['0', 2, false, 'too_old'],
    [undefined, 3, false, 'too_old'], // once protocol 3 ships, 0.1.0 agents are refused
    ['1', 3, false, 'too_old'],
    ['2', 3, true, undefined],
    ['3', 3, true, undefined],
    ['junk', 2, false, 'malformed'],
    ['99999999999', 2, false, 'malformed'],
  ])('agent header %j against console protocol %d → ok %s', (h, current, ok, reason) => {
    const v = judgeAgentProtocol(h, current);
    expect(v.ok).toBe(ok);
    if (!v.ok) expect(v.reason).toBe(reason);
  });

  it('the agent tolerates a console one version older and asks it nothing it lacks', () => {
    const old = judgeConsoleProtocol(undefined);
    expect(old).toEqual({ ok: true, version: 1 });
    expect(consoleCan(1, 'cert_renewal')).toBe(false);
    expect(consoleCan(2, 'cert_renewal')).toBe(true);
    expect(judgeConsoleProtocol('1', 3).ok).toBe(false);
  });

  it('the refusal says what to do, Japanese first, without echoing the header', () => {
    const m = protocolRefusalMessage({ ok: false, version: null, reason: 'malformed' });
    expect(m.ja).toContain('エージェントを更新');
    expect(m.en).toContain('upgrade the agent');
    expect(protocolRefusalMessage({ ok: false, version: 0, reason: 'too_old' }).ja).toContain('版 0');
  });
});

describe('certificate renewal window', () => {
  const DAY = 86_400_000;
  const t0 = Date.UTC(2026, 0, 1);
  const fiveYears = { nb: t0 - CERT_BACKDATE_MS, na: t0 + CERT_LIFE_MS };
  it.each<[string, number, number, number, string]>([
    ['new 5-year certificate', fiveYears.nb, fiveYears.na, t0, 'valid'],
    ['61 days left', fiveYears.nb, fiveYears.na, fiveYears.na - 61 * DAY, 'valid'],
    ['59 days left', fiveYears.nb, fiveYears.na, fiveYears.na - 59 * DAY, 'due'],
    ['expired', fiveYears.nb, fiveYears.na, fiveYears.na, 'expired'],
    ['60 s test certificate at issue', t0 - CERT_BACKDATE_MS, t0 + 60_000, t0, 'valid'],
    ['60 s test certificate after 41 s', t0 - CERT_BACKDATE_MS, t0 + 60_000, t0 + 41_000, 'valid'],
    ['60 s test certificate after 43 s', t0 - CERT_BACKDATE_MS, t0 + 60_000, t0 + 43_000, 'due'],
    ['clock 6 h behind sees a fresh certificate as valid', fiveYears.nb, fiveYears.na, t0 - 6 * 3600_000, 'valid'],
    ['20-year CA, 59 days left', t0 - DAY, t0 + 20 * 365 * DAY, t0 + 20 * 365 * DAY - 59 * DAY, 'due'],
    ['year 9999', t0, Date.UTC(9999, 11, 31), t0, 'valid'],
    ['notAfter before notBefore', t0, t0 - 1, t0, 'unreadable'],
    ['NaN dates', Number.NaN, t0, t0, 'unreadable'],
    ['2^53 now', t0, t0 + DAY, 2 ** 53, 'expired'],
  ])('%s', (_what, nb, na, now, want) => expect(renewalState(nb, na, now)).toBe(want));

  it('a short certificate is renewed with 30 % of its life left', () => {
    expect(renewalFrom(t0 - CERT_BACKDATE_MS, t0 + 100_000)).toBe(t0 + 70_000);
  });

  it.each<[string | undefined, number]>([
    [undefined, CERT_LIFE_MS],
    ['60', 60_000],
    ['86400', 86_400_000],
    ['86401', CERT_LIFE_MS], // test-only knob: never a longer life than a day
    ['0', CERT_LIFE_MS],
    ['-5', CERT_LIFE_MS],
    ['1e3', CERT_LIFE_MS],
    ['9007199254740993', CERT_LIFE_MS],
  ])('SEKIMORI_TEST_CERT_SECONDS=%j → %d ms', (raw, ms) => expect(certLifeMs({ SEKIMORI_TEST_CERT_SECONDS: raw })).toBe(ms));
});
