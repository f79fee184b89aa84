/**
 * Resynchronisation with two consecutive codes (protocol/mfa/decide.ts `resync`), as privacyIDEA's
 * HOTP/TOTP resync: codes from oathtool, table-driven, hostile input.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { HOTP_RESYNC_WINDOW, resync, TOTP_RESYNC_STEPS, type MfaUserState } from '../../protocol/mfa/decide.js';
import { timeStep } from '../../protocol/mfa/otp.js';

const HEX = '3132333435363738393031323334353637383930';
const KEY = Buffer.from(HEX, 'hex');
const NOW = 1_800_000_000_000;
const T = timeStep(NOW);
const oH = (c: number) => execFileSync('oathtool', ['--hotp', `--counter=${c}`, HEX], { encoding: 'utf8' }).trim();
const oT = (step: number) => execFileSync('oathtool', ['--totp', `--now=@${step * 30}`, HEX], { encoding: 'utf8' }).trim();
const st = (type: 'hotp' | 'totp', lastStep: number): Pick<MfaUserState, 'key' | 'params' | 'lastStep' | 'type'> => ({
  key: KEY,
  params: { algorithm: 'SHA1', digits: 6, period: 30 },
  lastStep,
  type,
});

describe('HOTP resync', () => {
  const table: [string, number, number, number, unknown][] = [
    ['token pressed 500 times in a drawer', -1, 500, 501, { ok: true, lastStep: 501 }],
    ['right after the last used counter', 10, 11, 12, { ok: true, lastStep: 12 }],
    ['at the window edge', 0, HOTP_RESYNC_WINDOW, HOTP_RESYNC_WINDOW + 1, { ok: true, lastStep: HOTP_RESYNC_WINDOW + 1 }],
    ['one beyond the window', 0, HOTP_RESYNC_WINDOW + 1, HOTP_RESYNC_WINDOW + 2, { ok: false, reason: 'no_match' }],
    ['codes not consecutive', -1, 40, 42, { ok: false, reason: 'no_match' }],
    ['codes in the wrong order', -1, 41, 40, { ok: false, reason: 'no_match' }],
    ['old codes (at or before the last used counter)', 50, 49, 50, { ok: false, reason: 'no_match' }],
  ];
  it.each(table)('%s', (_n, last, c1, c2, want) => {
    expect(resync(st('hotp', last), oH(c1), oH(c2), NOW)).toEqual(want);
  });

  it.each([
    ['empty', '', '123456'],
    ['7 digits', '1234567', '123456'],
    ['letters', 'abcdef', '123456'],
    ['not a string', 123456, '123456'],
  ])('malformed first code (%s)', (_n, a, b) => {
    expect(resync(st('hotp', -1), a, b, NOW)).toEqual({ ok: false, reason: 'malformed' });
    expect(resync(st('hotp', -1), b, a, NOW)).toEqual({ ok: false, reason: 'malformed' });
  });

  it.each([Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER - 1, Number.NaN, 2 ** 60])('counter %d: no throw, no match', (last) => {
    expect(resync(st('hotp', last), '123456', '654321', NOW).ok).toBe(false);
  });
});

describe('TOTP resync (hardware token clock drift)', () => {
  const table: [string, number, number, unknown][] = [
    ['token 20 steps (10 min) ahead', -1, 20, { ok: true, lastStep: T + 21, drift: 21 }],
    ['token 50 steps behind', -1, -50, { ok: true, lastStep: T - 49, drift: -49 }],
    ['at the window edge (+)', -1, TOTP_RESYNC_STEPS - 1, { ok: true, lastStep: T + TOTP_RESYNC_STEPS, drift: TOTP_RESYNC_STEPS }],
    ['beyond the window', -1, TOTP_RESYNC_STEPS, { ok: false, reason: 'no_match' }],
    ['at the window edge (−)', -1, -TOTP_RESYNC_STEPS, { ok: true, lastStep: T - TOTP_RESYNC_STEPS + 1, drift: -TOTP_RESYNC_STEPS + 1 }],
    ['codes already used (≤ lastStep)', T + 30, 20, { ok: false, reason: 'no_match' }],
  ];
  it.each(table)('%s', (_n, last, off, want) => {
    expect(resync(st('totp', last), oT(T + off), oT(T + off + 1), NOW)).toEqual(want);
  });
});
