/**
 * Hardware tokens end to end on a real console data folder: the real CLI (`node
 * bin/sekimori-console.js mfa …`, built dist/) imports the RFC 6030 example packages and
 * privacyIDEA OATH CSV, hands tokens out, resyncs; the console's store then verifies codes made by
 * oathtool (HOTP counter, replay, look-ahead, hardware-TOTP drift). All-or-nothing imports, seeds
 * sealed at rest, HOTP users kept out of the offline cache.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { timeStep } from '../../protocol/mfa/otp.js';
import { initConsole, openConsole, type OpenConsole } from '../../console/core/context.js';
import { assign, cacheFor, listStock, listUsers, verifyAttempt } from '../../console/mfa/store.js';
import { defaultPolicyBody } from '../../protocol/policy.js';

const ROOT = join(import.meta.dirname, '..', '..');
const FX = join(import.meta.dirname, 'fixtures');
const RFC_SECRET_HEX = Buffer.from('12345678901234567890').toString('hex');
const PSK = '12345678901234567890123456789012';

let tmp: string;
let data: string;
let ctx: OpenConsole;

function cli(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'sekimori-console.js'), 'mfa', ...args, '--data', data], {
    encoding: 'utf8',
    env: { ...process.env, SEKIMORI_LANG: 'en' },
    timeout: 60_000,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
const oHotp = (counter: number, digits = 8, hex = RFC_SECRET_HEX) =>
  execFileSync('oathtool', ['--hotp', `--digits=${digits}`, `--counter=${counter}`, hex], { encoding: 'utf8' }).trim();
const oTotp = (step: number, hex: string, digits = 6) => execFileSync('oathtool', ['--totp', `--digits=${digits}`, `--now=@${step * 30}`, hex], { encoding: 'utf8' }).trim();

beforeAll(async () => {
  if (!existsSync(join(ROOT, 'dist', 'console', 'mfa', 'import-pskc.js'))) throw new Error('dist/ is not built: run scripts/n24 scripts/build.sh (npm test builds first)');
  tmp = mkdtempSync(join(tmpdir(), 'sekimori-mfa-import-'));
  data = join(tmp, 'data');
  await initConsole(data, { sans: [], organisation: '関守市' });
  ctx = openConsole(data);
});
afterAll(() => {
  ctx?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('PSKC through the CLI', () => {
  it('Figure 6 (pre-shared key): imported unassigned, handed to a user, codes from oathtool verify with counter and replay', () => {
    // The key on the command line is refused (other local users read /proc/*/cmdline); from a file it works.
    expect(cli('import', '--file', join(FX, 'rfc6030-figure6.pskcxml'), '--format', 'pskc', '--psk', PSK).stderr).toMatch(/--psk-file/);
    const pskFile = join(tmp, 'psk.hex');
    writeFileSync(pskFile, PSK + '\n', { mode: 0o600 });
    const r = cli('import', '--file', join(FX, 'rfc6030-figure6.pskcxml'), '--format', 'pskc', '--psk-file', pskFile, '--json');
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ imported: 1, assigned: 0, unassigned: 1 });
    expect(listStock(ctx).map((t) => [t.serial, t.type, t.digits, t.counter])).toEqual([['987654321', 'hotp', 8, 0]]);

    expect(cli('assign-token', '--user', 'tanaka', '--serial', '987654321').status).toBe(0);
    expect(listStock(ctx)).toEqual([]);
    expect(listUsers(ctx).find((u) => u.user === 'tanaka')).toMatchObject({ status: 'active', kind: 'hardware', type: 'hotp', serial: '987654321' });

    expect(verifyAttempt(ctx, 'tanaka', oHotp(0), 'T1').verdict.result).toBe('accept');
    // The same code on another terminal: the console holds the counter for all of them.
    expect(verifyAttempt(ctx, 'tanaka', oHotp(0), 'T2').verdict.reason).toBe('replay');
    expect(verifyAttempt(ctx, 'tanaka', oHotp(6), 'T2').verdict).toMatchObject({ result: 'accept', step: 6 }); // look-ahead
    expect(verifyAttempt(ctx, 'tanaka', oHotp(3), 'T1').verdict.result).toBe('reject'); // skipped codes are gone
    expect(verifyAttempt(ctx, 'tanaka', oHotp(40), 'T1').verdict.reason).toBe('wrong_code'); // beyond look-ahead
  });

  it('resync with two consecutive codes far ahead; the used codes are refused afterwards', () => {
    const bad = cli('resync', '--user', 'tanaka', '--codes', oHotp(300), oHotp(302));
    expect(bad.status).toBe(1);
    const ok = cli('resync', '--user', 'tanaka', '--codes', oHotp(300), oHotp(301), '--json');
    expect([ok.status, JSON.parse(ok.stdout)]).toEqual([0, { ok: true, lastStep: 301 }]);
    expect(verifyAttempt(ctx, 'tanaka', oHotp(301), 'T1').verdict.reason).toBe('replay');
    expect(verifyAttempt(ctx, 'tanaka', oHotp(302), 'T1').verdict.result).toBe('accept');
  });

  it('Figure 7 (PBKDF2) with --password-file; Figure 2 refused naming KeyPackage 1; nothing half-way', () => {
    const pw = join(tmp, 'pw.txt');
    writeFileSync(pw, 'qwerty\n', { mode: 0o600 });
    // Same serial as Figure 6's token (now held by tanaka): refused without --replace.
    const dup = cli('import', '--file', join(FX, 'rfc6030-figure7.pskcxml'), '--password-file', pw);
    expect(dup.status).toBe(1);
    expect(dup.stderr).toMatch(/987654321: .*serial already imported/);
    const f2 = cli('import', '--file', join(FX, 'rfc6030-figure2.pskcxml'));
    expect(f2.status).toBe(1);
    expect(f2.stderr).toMatch(/KeyPackage 1: .*secret must be 10–64 bytes \(has 4\)/);
    expect(f2.stderr).toMatch(/nothing imported/);
    const wrongPw = join(tmp, 'wrong.txt');
    writeFileSync(wrongPw, 'qwertz');
    const w = cli('import', '--file', join(FX, 'rfc6030-figure7.pskcxml'), '--password-file', wrongPw);
    expect(w.status).toBe(1);
    expect(listStock(ctx)).toEqual([]);
  });
});

describe('privacyIDEA OATH CSV through the CLI', () => {
  const k20 = '3132333435363738393031323334353637383930';
  const k32 = '3132333435363738393031323334353637383930313233343536373839303132';

  it('a bad row anywhere: refused with its line number, nothing imported (one transaction)', () => {
    const f = join(tmp, 'bad.csv');
    writeFileSync(f, [`OATH-1, ${k20}, hotp, 6`, `OATH-2, ${k20}, ocra, OCRA-1:HOTP-SHA1-6:QN08`, `OATH-3, ${k20}, totp, 6, 45`, `OATH-4, ${k20.slice(1)}`].join('\n'));
    const r = cli('import', '--file', f, '--format', 'oath-csv');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/line 2: unsupported token type ocra/);
    expect(r.stderr).toMatch(/line 3: period must be 30 or 60/);
    expect(r.stderr).toMatch(/line 4: secret/); // odd hex
    expect(listStock(ctx)).toEqual([]);
  });

  it('imports hotp (default type, counter column), totp 8 digits 60 s, SHA256 from a 64-hex key; codes = oathtool', () => {
    const f = join(tmp, 'oath.csv');
    writeFileSync(f, ['# exported by privacyIDEA', `OATH-H, ${k20}`, `OATH-HC, ${k20}, hotp, 6, 100`, `OATH-T, ${k20}, totp, 8, 60`, `OATH-T256, ${k32}, TOTP, 6`, ''].join('\r\n'));
    const r = cli('import', '--file', f, '--format', 'oath-csv', '--json');
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ imported: 4, assigned: 0, unassigned: 4 });
    expect(listStock(ctx).map((t) => [t.serial, t.type, t.algorithm, t.digits, t.period, t.counter])).toEqual([
      ['OATH-H', 'hotp', 'SHA1', 6, 30, 0],
      ['OATH-HC', 'hotp', 'SHA1', 6, 30, 100],
      ['OATH-T', 'totp', 'SHA1', 8, 60, 0],
      ['OATH-T256', 'totp', 'SHA256', 6, 30, 0],
    ]);
    for (const [user, serial] of [['h1', 'OATH-HC'], ['t1', 'OATH-T'], ['t2', 'OATH-T256']] as const) expect(cli('assign-token', '--user', user, '--serial', serial).status).toBe(0);
    expect(verifyAttempt(ctx, 'h1', oHotp(99, 6, k20), 'T1').verdict.result).toBe('reject'); // before the vendor's counter
    expect(verifyAttempt(ctx, 'h1', oHotp(100, 6, k20), 'T1').verdict.result).toBe('accept');
    const now = Date.now();
    const t60 = execFileSync('oathtool', ['--totp', '--digits=8', '--time-step-size=60s', `--now=@${Math.floor(now / 1000)}`, k20], { encoding: 'utf8' }).trim();
    expect(verifyAttempt(ctx, 't1', t60, 'T1', now).verdict.result).toBe('accept');
    const t256 = execFileSync('oathtool', ['--totp=SHA256', `--now=@${Math.floor(now / 1000)}`, k32], { encoding: 'utf8' }).trim();
    expect(verifyAttempt(ctx, 't2', t256, 'T1', now).verdict.result).toBe('accept');
    // A token already on a user cannot be given to a second one.
    const again = cli('assign-token', '--user', 'h2', '--serial', 'OATH-HC');
    expect([again.status, again.stderr]).toEqual([1, expect.stringMatching(/already assigned \(to h1\)/)]);
  });

  it('a serial already imported, after a new one in the same file: the new one is rolled back too', () => {
    const f = join(tmp, 'dup.csv');
    writeFileSync(f, [`NEW-1, ${k20}, hotp`, `OATH-H, ${k20}, hotp`].join('\n'));
    const r = cli('import', '--file', f, '--format', 'oath-csv');
    expect([r.status, r.stderr]).toEqual([1, expect.stringMatching(/OATH-H: .*serial already imported/)]);
    expect(listStock(ctx).map((t) => t.serial)).not.toContain('NEW-1');
  });

  it('user names as Windows has them: a token for "Tanaka" goes to tanaka\'s enrolment only with --replace; a Japanese name is fine', () => {
    const f = join(tmp, 'names.csv');
    writeFileSync(f, ['user,serial,seed_hex,type', `Tanaka,NM-1,${k20},hotp`].join('\n'));
    const r = cli('import', '--file', f);
    expect([r.status, r.stderr]).toEqual([1, expect.stringMatching(/tanaka: .*already enrolled/)]);
    writeFileSync(f, ['user,serial,seed_hex,type', `山田,NM-2,${k20},totp`].join('\n'));
    expect(cli('import', '--file', f).status).toBe(0);
    expect(listUsers(ctx).find((u) => u.serial === 'NM-2')?.user).toBe('山田');
  });

  it('"# version: 2" puts user, resolver, realm first: the token goes to that user', () => {
    const f = join(tmp, 'v2.csv');
    writeFileSync(f, ['# version: 2', `v2user, ldap, realm1, OATH-V2, ${k20}, totp, 6, 30`, `, , , OATH-V2B, ${k20}, hotp`].join('\n'));
    const r = cli('import', '--file', f, '--format', 'oath-csv', '--json');
    expect(JSON.parse(r.stdout)).toEqual({ imported: 2, assigned: 1, unassigned: 1 });
    expect(listUsers(ctx).find((u) => u.user === 'v2user')).toMatchObject({ type: 'totp', serial: 'OATH-V2', kind: 'hardware' });
  });
});

describe('Sekimori CSV, drift, offline cache, sealing', () => {
  it('a type=hotp row is imported as HOTP (it was silently TOTP); an unknown column is refused', () => {
    const f = join(tmp, 'seki.csv');
    writeFileSync(f, ['user,serial,seed_hex,type,digits,counter', `hh,SK-1,${RFC_SECRET_HEX},hotp,6,7`, `tt,SK-2,${RFC_SECRET_HEX},totp,6,0`].join('\n'));
    expect(cli('import', '--file', f).status).toBe(0);
    expect(listUsers(ctx).filter((u) => u.serial?.startsWith('SK-')).map((u) => [u.user, u.type])).toEqual([['hh', 'hotp'], ['tt', 'totp']]);
    expect(verifyAttempt(ctx, 'hh', oHotp(7, 6), 'T1').verdict.result).toBe('accept');
    const g = join(tmp, 'seki2.csv');
    writeFileSync(g, ['user,serial,seed_hex,kind', `x1,SK-3,${RFC_SECRET_HEX},hotp`].join('\n'));
    const r = cli('import', '--file', g);
    expect([r.status, r.stderr]).toEqual([1, expect.stringMatching(/line 1: unknown column\(s\) kind/)]);
  });

  it('hardware TOTP learns its drift: a code at the window edge moves the window', () => {
    const now = Date.UTC(2026, 10, 29, 12, 0, 0);
    const s = timeStep(now);
    // Token 'tt' runs one step fast, then two: each accepted code recentres the ±1 window.
    expect(verifyAttempt(ctx, 'tt', oTotp(s + 1, RFC_SECRET_HEX), 'T1', now).verdict.result).toBe('accept');
    expect(verifyAttempt(ctx, 'tt', oTotp(s + 2 + 1, RFC_SECRET_HEX), 'T1', now + 30_000).verdict.result).toBe('accept');
    // Two steps fast: outside a plain ±1 window, inside the one centred on the learned drift.
    expect(verifyAttempt(ctx, 'tt', oTotp(s + 4 + 2, RFC_SECRET_HEX), 'T1', now + 120_000).verdict.result).toBe('accept');
    const row = ctx.db.prepare('SELECT drift FROM mfa_users WHERE user = ?').get('tt') as { drift: number };
    expect(row.drift).toBe(2);
    // A drift resync far away (the token was in a drawer for a year: 40 minutes fast).
    // One step read once: two Date.now() calls could straddle a 30 s boundary and make the codes non-consecutive.
    const real = timeStep(Date.now());
    const r = cli('resync', '--user', 'tt', '--codes', oTotp(real + 80, RFC_SECRET_HEX), oTotp(real + 81, RFC_SECRET_HEX), '--json');
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).drift).toBeGreaterThanOrEqual(80);
  });

  it('HOTP users never reach a terminal offline cache; TOTP users do', () => {
    const body = defaultPolicyBody();
    ctx.publishPolicy({ ...body, mfa: { ...body.mfa, offlineAllowed: true } }, 'test');
    assign(ctx, 'hh', 'agent-1', 'test');
    assign(ctx, 'tt', 'agent-1', 'test');
    expect(cacheFor(ctx, 'agent-1').users.map((u) => u.user)).toEqual(['tt']);
  });

  it('no seed is stored or logged in clear', () => {
    const b32 = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'; // base32 of the RFC secret, as sealed
    for (const f of readdirSync(data)) {
      const p = join(data, f);
      let buf: Buffer;
      try {
        buf = readFileSync(p);
      } catch {
        continue; // a folder
      }
      expect(buf.includes(Buffer.from(b32)), f).toBe(false);
      expect(buf.includes(Buffer.from(RFC_SECRET_HEX)), f).toBe(false);
      expect(buf.includes(Buffer.from('12345678901234567890')), f).toBe(false);
    }
  });
});
