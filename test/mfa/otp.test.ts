/** RFC vectors against the HOTP/TOTP core that production verifies with (protocol/mfa/otp.ts). */
import { generateSync } from 'otplib';
import { describe, expect, it } from 'vitest';
import { base32Decode, base32Encode, hotp, matchStep, timeStep, totp, type OtpAlgorithm } from '../../protocol/mfa/otp.js';

describe('RFC 4226 Appendix D (HOTP, SHA1, 6 digits)', () => {
  const key = Buffer.from('12345678901234567890');
  const expected = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];
  it.each(expected.map((c, i) => [i, c] as const))('count %i → %s', (count, code) => {
    expect(hotp(key, count, 6, 'SHA1')).toBe(code);
  });
});

describe('RFC 6238 Appendix B (TOTP, 8 digits, X=30, T0=0)', () => {
  const seeds: Record<OtpAlgorithm, Buffer> = {
    SHA1: Buffer.from('12345678901234567890'),
    SHA256: Buffer.from('12345678901234567890123456789012'),
    SHA512: Buffer.from('1234567890123456789012345678901234567890123456789012345678901234'),
  };
  const table: [number, string, OtpAlgorithm, string][] = [
    [59, '0000000000000001', 'SHA1', '94287082'],
    [59, '0000000000000001', 'SHA256', '46119246'],
    [59, '0000000000000001', 'SHA512', '90693936'],
    [1111111109, '00000000023523EC', 'SHA1', '07081804'],
    [1111111109, '00000000023523EC', 'SHA256', '68084774'],
    [1111111109, '00000000023523EC', 'SHA512', '25091201'],
    [1111111111, '00000000023523ED', 'SHA1', '14050471'],
    [1111111111, '00000000023523ED', 'SHA256', '67062674'],
    [1111111111, '00000000023523ED', 'SHA512', '99943326'],
    [1234567890, '000000000273EF07', 'SHA1', '89005924'],
    [1234567890, '000000000273EF07', 'SHA256', '91819424'],
    [1234567890, '000000000273EF07', 'SHA512', '93441116'],
    [2000000000, '0000000003F940AA', 'SHA1', '69279037'],
    [2000000000, '0000000003F940AA', 'SHA256', '90698825'],
    [2000000000, '0000000003F940AA', 'SHA512', '38618901'],
    [20000000000, '0000000027BC86AA', 'SHA1', '65353130'],
    [20000000000, '0000000027BC86AA', 'SHA256', '77737706'],
    [20000000000, '0000000027BC86AA', 'SHA512', '47863826'],
  ];
  it.each(table)('T=%i (step %s) %s → %s', (t, hexStep, alg, code) => {
    expect(timeStep(t * 1000, 30)).toBe(parseInt(hexStep, 16));
    expect(totp(seeds[alg], t * 1000, { algorithm: alg, digits: 8, period: 30 })).toBe(code);
    // The verification path finds exactly that step.
    expect(matchStep(seeds[alg], code, timeStep(t * 1000), 1, { algorithm: alg, digits: 8, period: 30 }, -1)).toEqual({ step: parseInt(hexStep, 16), replay: false });
  });
});

describe('base32 (RFC 4648)', () => {
  it.each([
    ['', null],
    ['MY', 'f'],
    ['MZXQ', 'fo'],
    ['MZXW6', 'foo'],
    ['MZXW6YQ', 'foob'],
    ['MZXW6YTB', 'fooba'],
    ['MZXW6YTBOI======', 'foobar'],
    ['mzxw 6ytb oi', 'foobar'],
  ])('%j → %j', (b32, text) => {
    const d = base32Decode(b32);
    if (text === null) expect(d).toBeNull();
    else expect(d?.toString()).toBe(text);
  });
  it('rejects characters outside the alphabet', () => {
    for (const bad of ['MZXW1', 'MZXW8', 'ÄÖ', 'MZ/W', 'A'.repeat(2000)]) expect(base32Decode(bad)).toBeNull();
  });
  it('round-trips', () => {
    for (let n = 1; n < 70; n++) {
      const b = Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff));
      expect(base32Decode(base32Encode(b))).toEqual(b);
    }
  });
});

describe('agrees with otplib (an independent implementation) on random secrets', () => {
  it('same codes for SHA1/6 digits at many times', () => {
    for (let i = 0; i < 50; i++) {
      const key = Buffer.from(Array.from({ length: 20 }, (_, j) => (i * 97 + j * 31) & 0xff));
      const secret = base32Encode(key);
      const epoch = 1_700_000_000 + i * 7919;
      expect(totp(key, epoch * 1000)).toBe(generateSync({ secret, epoch }));
    }
  });
});
