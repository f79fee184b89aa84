/** The pure MFA decision: window, replay, lockout, malformed input, recovery codes, hostile users. */
import { describe, expect, it } from 'vitest';
import { decide, generateRecoveryCodes, hashRecoveryCode, parseCode, type MfaUserState } from '../../protocol/mfa/decide.js';
import { hotp, timeStep } from '../../protocol/mfa/otp.js';
import { defaultMfaPolicy, effectiveMfaPolicy, isValidMfaUser, mfaPolicyErrors } from '../../protocol/policy-mfa.js';

const KEY = Buffer.from('12345678901234567890');
const T0 = 1_800_000_000_000; // ms, step-aligned enough for the tests below
const STEP = timeStep(T0);
const policy = { windowSteps: 1, maxFailures: 5, lockoutSeconds: 300 };
const codeAt = (step: number) => hotp(KEY, step, 6, 'SHA1');

function state(over: Partial<MfaUserState> = {}): MfaUserState {
  return { status: 'active', key: KEY, params: { algorithm: 'SHA1', digits: 6, period: 30 }, lastStep: -1, failures: 0, lockedUntil: 0, recovery: [], ...over };
}

describe('time window', () => {
  it.each([
    [-2, 1, 'reject'],
    [-1, 1, 'accept'],
    [0, 1, 'accept'],
    [1, 1, 'accept'],
    [2, 1, 'reject'],
    [0, 0, 'accept'],
    [1, 0, 'reject'],
    [-1, 0, 'reject'],
    [3, 3, 'accept'],
    [-4, 3, 'reject'],
  ])('code from step %+d with window ±%i → %s', (d, w, want) => {
    const v = decide(state(), { user: 'tanaka', code: codeAt(STEP + d), nowMs: T0, policy: { ...policy, windowSteps: w } });
    expect(v.result).toBe(want);
    if (want === 'accept') expect(v.step).toBe(STEP + d);
    else expect(v.reason).toBe('wrong_code');
  });
});

describe('replay', () => {
  it('a used time step is never accepted again', () => {
    const first = decide(state(), { user: 'tanaka', code: codeAt(STEP), nowMs: T0, policy });
    expect(first.result).toBe('accept');
    const again = decide(state({ lastStep: first.next!.lastStep }), { user: 'tanaka', code: codeAt(STEP), nowMs: T0 + 10_000, policy });
    expect(again).toMatchObject({ result: 'reject', reason: 'replay', event: 'mfa.replay', step: STEP });
    expect(again.next!.failures).toBe(1); // a replay counts toward the lockout
  });
  it('an older step is refused after a newer one was accepted (still inside the window)', () => {
    const v = decide(state({ lastStep: STEP + 1 }), { user: 'tanaka', code: codeAt(STEP), nowMs: T0, policy });
    expect(v.reason).toBe('replay');
  });
  it('the next step is accepted', () => {
    const v = decide(state({ lastStep: STEP }), { user: 'tanaka', code: codeAt(STEP + 1), nowMs: T0 + 30_000, policy });
    expect(v).toMatchObject({ result: 'accept', step: STEP + 1 });
  });
});

describe('lockout', () => {
  it('locks after maxFailures, refuses even a correct code while locked, and forgets after lockoutSeconds', () => {
    let st = state();
    for (let i = 1; i <= 5; i++) {
      const v = decide(st, { user: 'tanaka', code: '000000', nowMs: T0, policy });
      expect(v.result).toBe('reject');
      expect(v.event).toBe(i === 5 ? 'mfa.locked' : 'mfa.failure');
      expect(v.lockedNow).toBe(i === 5);
      st = { ...st, ...v.next! };
    }
    expect(st.lockedUntil).toBe(T0 + 300_000);
    const locked = decide(st, { user: 'tanaka', code: codeAt(STEP), nowMs: T0 + 1_000, policy });
    expect(locked).toMatchObject({ result: 'reject', reason: 'locked', event: 'mfa.failure' });
    const later = T0 + 300_000;
    const after = decide(st, { user: 'tanaka', code: codeAt(timeStep(later)), nowMs: later, policy });
    expect(after.result).toBe('accept');
    expect(after.next).toMatchObject({ failures: 0, lockedUntil: 0 });
  });
  it('a success resets the failure count', () => {
    const v = decide(state({ failures: 4 }), { user: 'tanaka', code: codeAt(STEP), nowMs: T0, policy });
    expect(v.next!.failures).toBe(0);
  });
  it('honours a configured threshold', () => {
    const v = decide(state({ failures: 1 }), { user: 'tanaka', code: '111111', nowMs: T0, policy: { ...policy, maxFailures: 2, lockoutSeconds: 60 } });
    expect(v).toMatchObject({ lockedNow: true, event: 'mfa.locked' });
    expect(v.next!.lockedUntil).toBe(T0 + 60_000);
  });
});

describe('malformed codes are a clean reject (never a throw)', () => {
  const hostile: unknown[] = [
    '',
    '12345',
    '1234567',
    '12345a',
    'abcdef',
    '１２３４５６', // full-width digits
    '١٢٣٤٥٦', // Arabic-Indic digits
    '123456\n',
    '123456\u0000',
    '-123456',
    '+123456',
    '12.345',
    '9'.repeat(10_000),
    '💥💥💥',
    null,
    undefined,
    123456,
    {},
    [],
    { toString: () => '123456' },
  ];
  it.each(hostile.map((h) => [h]))('%j', (h) => {
    const v = decide(state(), { user: 'tanaka', code: h, nowMs: T0, policy });
    expect(v).toMatchObject({ result: 'reject', reason: 'malformed' });
    expect(v.next!.failures).toBe(1);
  });
  it('spaces as apps display them are fine', () => {
    const c = codeAt(STEP);
    expect(decide(state(), { user: 'tanaka', code: `${c.slice(0, 3)} ${c.slice(3)}`, nowMs: T0, policy }).result).toBe('accept');
  });
  it('parseCode classifies', () => {
    expect(parseCode('12345678', 8)).toEqual({ kind: 'totp', code: '12345678' });
    expect(parseCode('12345678', 6).kind).toBe('malformed');
    expect(parseCode('abcd-efgh-jkmn', 6)).toEqual({ kind: 'recovery', code: 'ABCDEFGHJKMN' });
    expect(parseCode('ABCD-EFGH-IJKL', 6).kind).toBe('malformed'); // I and L are not in the alphabet
  });
});

describe('users and status', () => {
  it.each([
    ['', false],
    ['tanaka', true],
    ['t.suzuki@city.example', true],
    ['a'.repeat(64), true],
    ['a'.repeat(65), false],
    ['root; rm -rf /', false],
    ["o'brien", false],
    ['..', false],
    ['user\nname', false],
    ['用户', false],
    ['x\u0000y', false],
  ])('%j valid=%s', (u, ok) => {
    expect(isValidMfaUser(u)).toBe(ok);
    const v = decide(state(), { user: u, code: codeAt(STEP), nowMs: T0, policy });
    if (!ok) expect(v).toMatchObject({ result: 'reject', reason: 'invalid_user' });
    else expect(v.result).toBe('accept');
  });
  it.each([
    [null, 'not_enrolled'],
    [state({ status: 'disabled' }), 'disabled'],
    [state({ status: 'pending' }), 'not_confirmed'],
  ] as const)('%#: %s', (st, reason) => {
    expect(decide(st, { user: 'tanaka', code: codeAt(STEP), nowMs: T0, policy })).toMatchObject({ result: 'reject', reason });
  });
  it('not assigned to the terminal', () => {
    expect(decide(state(), { user: 'tanaka', code: codeAt(STEP), nowMs: T0, policy, notAssigned: true }).reason).toBe('not_assigned');
  });
});

describe('recovery codes', () => {
  const codes = generateRecoveryCodes(3);
  const hashes = codes.map((c, i) => hashRecoveryCode(c, i + 1));
  it('look like XXXX-XXXX-XXXX and are stored only as salted hashes', () => {
    for (const c of codes) expect(c).toMatch(/^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/);
    for (const [i, h] of hashes.entries()) {
      expect(JSON.stringify(h)).not.toContain(codes[i]!.replace(/-/g, ''));
      expect(h.salt).not.toBe(hashes[(i + 1) % 3]!.salt);
    }
  });
  it('accepts each once (any case, with or without dashes), then refuses it', () => {
    let st = state({ recovery: hashes });
    const v = decide(st, { user: 'tanaka', code: codes[1]!.toLowerCase().replace(/-/g, ''), nowMs: T0, policy });
    expect(v).toMatchObject({ result: 'accept', reason: 'recovery', event: 'mfa.recovery_used', recoveryId: 2 });
    st = { ...st, ...v.next!, recovery: st.recovery.map((r) => (r.id === v.next!.recoveryUsed ? { ...r, used: true } : r)) };
    expect(st.lastStep).toBe(-1); // a recovery code does not consume a time step
    expect(decide(st, { user: 'tanaka', code: codes[1]!, nowMs: T0, policy })).toMatchObject({ result: 'reject', reason: 'wrong_code' });
    expect(decide(st, { user: 'tanaka', code: codes[0]!, nowMs: T0, policy }).result).toBe('accept');
  });
  it('refuses a made-up code and counts it', () => {
    const v = decide(state({ recovery: hashes }), { user: 'tanaka', code: 'AAAA-BBBB-CCCC', nowMs: T0, policy });
    expect(v).toMatchObject({ result: 'reject', reason: 'wrong_code' });
    expect(v.next!.failures).toBe(1);
  });
  it('is refused while locked', () => {
    expect(decide(state({ recovery: hashes, lockedUntil: T0 + 5 }), { user: 'tanaka', code: codes[2]!, nowMs: T0, policy }).reason).toBe('locked');
  });
});

describe('policy section', () => {
  it('defaults are strict', () => {
    expect(defaultMfaPolicy()).toEqual({ offlineAllowed: false, offlineMaxAgeHours: 72, windowSteps: 1, maxFailures: 5, lockoutSeconds: 300, breakGlass: false, requireAssignment: false });
    expect(mfaPolicyErrors(defaultMfaPolicy())).toEqual([]);
  });
  it.each([
    [{}, ['mfa.offlineAllowed: must be true or false']],
    [{ offlineAllowed: 'yes' }, ['mfa.offlineAllowed: must be true or false']],
    [{ offlineAllowed: false, windowSteps: 11 }, ['mfa.windowSteps: must be an integer from 0 to 10']],
    [{ offlineAllowed: false, maxFailures: 0 }, ['mfa.maxFailures: must be an integer from 1 to 100']],
    [{ offlineAllowed: false, lockoutSeconds: 1.5 }, ['mfa.lockoutSeconds: must be an integer from 1 to 604800']],
    [{ offlineAllowed: false, breakGlass: 1 }, ['mfa.breakGlass: must be true or false']],
    [{ offlineAllowed: false, typo: true }, ['mfa.typo: unknown setting']],
    [[], ['mfa: must be an object']],
  ])('%j', (x, errors) => {
    expect(mfaPolicyErrors(x)).toEqual(errors);
  });
  it('older policies without the new members get the defaults', () => {
    expect(effectiveMfaPolicy({ offlineAllowed: true })).toMatchObject({ offlineAllowed: true, windowSteps: 1, maxFailures: 5, lockoutSeconds: 300 });
  });
});

// Console login (console/web/auth.ts) uses this same decision with the password as the factor before the code.
describe('a factor before the code (console login)', () => {
  const recovery = [hashRecoveryCode('ABCD-EFGH-JKMN', 1)];
  it.each([
    ['right code, password ok', 'ok', codeAt(STEP), 'accept', 'ok'],
    ['right code, password wrong', 'wrong', codeAt(STEP), 'reject', 'wrong_code'],
    ['wrong code, password wrong', 'wrong', codeAt(STEP + 9), 'reject', 'wrong_code'],
    ['malformed code, password wrong: malformed first', 'wrong', '12x456', 'reject', 'malformed'],
    ['right code, account disabled', 'disabled', codeAt(STEP), 'reject', 'disabled'],
    ['wrong code, account disabled: the code is judged first', 'disabled', codeAt(STEP + 9), 'reject', 'wrong_code'],
    ['replayed code, account disabled', 'disabled', codeAt(STEP - 1), 'reject', 'disabled'],
    ['recovery code, account disabled', 'disabled', 'ABCD-EFGH-JKMN', 'reject', 'disabled'],
    ['recovery code, password wrong', 'wrong', 'ABCD-EFGH-JKMN', 'reject', 'wrong_code'],
    ['recovery code, password ok', 'ok', 'ABCD-EFGH-JKMN', 'accept', 'recovery'],
  ] as const)('%s', (_n, priorFactor, code, result, reason) => {
    const v = decide(state({ lastStep: STEP - 1, recovery }), { user: 'tanaka', code, nowMs: T0, policy, priorFactor });
    expect(v).toMatchObject({ result, reason });
    if (result === 'reject') expect(v.next!.failures).toBe(1); // every refusal counts, whichever factor failed
  });

  it('mayLock false counts failures without locking; the first failure allowed to lock does', () => {
    let st = state();
    for (let i = 1; i <= 20; i++) {
      const v = decide(st, { user: 'tanaka', code: '000000', nowMs: T0, policy, mayLock: false });
      expect(v.lockedNow).toBe(false);
      expect(v.next!.failures).toBe(i);
      st = { ...st, ...v.next! };
    }
    const v = decide(st, { user: 'tanaka', code: '000000', nowMs: T0, policy, mayLock: true });
    expect(v).toMatchObject({ lockedNow: true, event: 'mfa.locked', next: { failures: 0, lockedUntil: T0 + 300_000 } });
    // Locked: not even the right code with the right password is looked at.
    expect(decide({ ...st, ...v.next! }, { user: 'tanaka', code: codeAt(STEP), nowMs: T0, policy, priorFactor: 'ok' })).toMatchObject({ result: 'reject', reason: 'locked' });
  });
});
