/**
 * Pre-exec line, pure parts: the helper's line protocol (parsed strictly: a broken or hostile
 * helper must not make the agent answer what it did not ask), the plan (when the helper runs and
 * why not), the answer (monitor mode never denies), restart backoff, fallback counting, and the
 * policy member. The helper itself runs on a real kernel in test/e2e/software/preexec.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  answerLine,
  cacheLine,
  FallbackCounter,
  helperAllows,
  markLine,
  mountsBelow,
  keyOfStat,
  marksFor,
  parseHelperLine,
  planPreExec,
  restartDelayMs,
  sameKey,
  type PlanInput,
} from '../../agent/software/linux/preexec/protocol.js';
import { defaultSoftwarePolicy, normalizeSoftwarePolicy, softwarePolicyErrors } from '../../protocol/policy-software.js';
import { eventDataErrors } from '../../protocol/event-data.js';

const K = { dev: '38', ino: '2', ctimeSec: '1796007972', ctimeNsec: '142231897' };

describe('helper lines', () => {
  it.each([
    ['READY 6063 1', { kind: 'ready', pid: 6063, marks: 1 }],
    ['Q 1 6065 4 38 2 1796007972 142231897', { kind: 'question', id: '1', pid: 6065, fd: 4, key: K }],
    ['F timeout d 1', { kind: 'fallback', reason: 'timeout', allow: false, id: '1' }],
    ['F orphan a 0', { kind: 'fallback', reason: 'orphan', allow: true, id: '0' }],
    ['D 77 38 2 1796007972 142231897', { kind: 'cached_deny', pid: 77, key: K }],
    ['ERR mark 2 No such file or directory', { kind: 'error', stage: 'mark', errno: 2, text: 'No such file or directory' }],
    ['S 1 2 3 4 5 6 7', { kind: 'stats', hits: 1, misses: 2, allowed: 3, denied: 4, fallbacks: 5, dropped: 6, cached: 7 }],
  ])('%s', (line, want) => {
    expect(parseHelperLine(line)).toEqual(want);
  });

  it('keeps identities beyond 2^53 exact (a rounded inode would match another file)', () => {
    const big = '9007199254740993'; // 2^53 + 1: Number() would give ...992
    const q = parseHelperLine(`Q 18446744073709551615 1 3 ${big} 18446744073709551615 -1 999999999`);
    expect(q).toMatchObject({ kind: 'question', id: '18446744073709551615', key: { dev: big, ino: '18446744073709551615', ctimeSec: '-1', ctimeNsec: '999999999' } });
  });

  it.each([
    ['empty', ''],
    ['unknown command', 'Z 1 2'],
    ['inode beyond u64', 'Q 1 2 3 38 18446744073709551616 0 0'],
    ['id beyond u64', 'F timeout d 18446744073709551616'],
    ['pid 0', 'Q 1 0 3 38 2 0 0'],
    ['pid beyond PID_MAX_LIMIT', 'Q 1 9999999999 3 38 2 0 0'],
    ['negative pid', 'D -5 38 2 0 0'],
    ['nsec ≥ 1e9', 'Q 1 2 3 38 2 0 1000000000'],
    ['leading zeros (not what the helper prints)', 'Q 01 2 3 38 2 0 0'],
    ['extra field', 'Q 1 2 3 38 2 0 0 7'],
    ['double space', 'Q 1  2 3 38 2 0 0'],
    ['trailing CR', 'READY 1 1\r'],
    ['unknown fallback reason', 'F panic d 1'],
    ['verdict other than a/d', 'F timeout x 1'],
    ['embedded newline', 'READY 1 1\nQ 1 2 3 38 2 0 0'],
    ['over-long line', `ERR init 1 ${'x'.repeat(600)}`],
    ['non-ASCII error text', 'ERR init 1 止まれ'],
    ['stats with a negative count', 'S 1 2 3 -4 5 6 7'],
  ])('refuses %s', (_what, line) => {
    expect(parseHelperLine(line)).toBeNull();
  });

  it('answers carry the identity asked about, and cache lines the verdict', () => {
    expect(answerLine('7', K, true)).toBe('A 7 38 2 1796007972 142231897 a\n');
    expect(answerLine('7', K, false)).toBe('A 7 38 2 1796007972 142231897 d\n');
    expect(cacheLine(K, false)).toBe('C 38 2 1796007972 142231897 d\n');
  });

  it('file identity from a bigint stat, including times before 1970 and far in the future', () => {
    expect(keyOfStat({ dev: 38n, ino: 2n, ctimeNs: 1796007972142231897n })).toEqual(K);
    expect(keyOfStat({ dev: 1n, ino: 1n, ctimeNs: -1n })).toEqual({ dev: '1', ino: '1', ctimeSec: '-1', ctimeNsec: '999999999' });
    expect(keyOfStat({ dev: 1n, ino: 1n, ctimeNs: -1_000_000_000n })).toEqual({ dev: '1', ino: '1', ctimeSec: '-1', ctimeNsec: '0' });
    // year 9999
    expect(keyOfStat({ dev: 1n, ino: 18446744073709551615n, ctimeNs: 253402300799_000000001n })).toEqual({ dev: '1', ino: '18446744073709551615', ctimeSec: '253402300799', ctimeNsec: '1' });
    expect(sameKey(K, { ...K })).toBe(true);
    for (const f of ['dev', 'ino', 'ctimeSec', 'ctimeNsec'] as const) expect(sameKey(K, { ...K, [f]: '0' })).toBe(false);
  });
});

describe('answer: monitor mode never denies', () => {
  it.each([
    [true, 'enforce', false, true],
    [false, 'enforce', false, false],
    [false, 'monitor', false, true],
    [false, 'enforce', true, true], // enrolled monitor-only
    [true, 'monitor', true, true],
  ] as const)('allowed=%s mode=%s monitorOnly=%s → allow %s', (allowed, mode, monitorOnly, want) => {
    expect(helperAllows(allowed, mode, monitorOnly)).toBe(want);
  });
});

describe('plan', () => {
  const base: PlanInput = {
    platform: 'linux',
    isRoot: true,
    mode: 'enforce',
    monitorOnly: false,
    active: true,
    preExec: { enabled: true, fallback: 'deny', timeoutMs: 1000, marks: [] },
    locations: ['/usr/bin', '/tmp', '/tmp'],
    helper: '/usr/lib/sekimori/sekimori-exec-guard',
  };
  it('runs in enforce mode as root on Linux, marking the mounts of the watched locations', () => {
    const p = planPreExec(base);
    expect(p).toEqual({
      run: true,
      marks: ['/usr/bin', '/tmp'],
      args: ['--timeout-ms', '1000', '--fallback', 'deny', '--orphan-grace-ms', '30000', '--mark', '/usr/bin', '--mark', '/tmp'],
    });
  });
  it('the policy’s own marks replace the locations', () => {
    const p = planPreExec({ ...base, preExec: { ...base.preExec, marks: ['/srv/x'], fallback: 'allow', timeoutMs: 50 } });
    expect(p.run && p.args).toEqual(['--timeout-ms', '50', '--fallback', 'allow', '--orphan-grace-ms', '30000', '--mark', '/srv/x']);
  });
  it.each([
    ['disabled', { preExec: { ...base.preExec, enabled: false } }],
    ['monitor', { mode: 'monitor' }],
    ['monitor', { monitorOnly: true }],
    ['inactive', { active: false }],
    ['not_linux', { platform: 'win32' }],
    ['not_root', { isRoot: false }],
    ['not_installed', { helper: null }],
    ['no_marks', { locations: [] }],
    // hostile marks never reach the helper's argv
    ['no_marks', { locations: [], preExec: { ...base.preExec, marks: ['relative', '/a/../b', '/x\0y', '--fallback'] } }],
  ] as [string, Partial<PlanInput>][])('does not run: %s', (why, change) => {
    const p = planPreExec({ ...base, ...change });
    expect(p.run).toBe(false);
    if (!p.run) {
      expect(p.why).toBe(why);
      expect(p.message).toMatch(/[ぁ-んァ-ン一-龯].* \/ [a-z]/); // Japanese first, English after
    }
  });
  it('at most 64 marks, whatever the policy lists', () => {
    const many = Array.from({ length: 10_000 }, (_, i) => `/m${i}`);
    expect(marksFor({ ...base.preExec, marks: many }, [])).toHaveLength(64);
  });
});

describe('restart backoff', () => {
  it.each([
    [0, 1000],
    [1, 2000],
    [2, 4000],
    [5, 32_000],
    [6, 60_000],
    [100, 60_000],
    [2 ** 53, 60_000],
    [-1, 1000],
    [Number.NaN, 1000],
    [Number.POSITIVE_INFINITY, 1000],
  ])('after %s restarts: %s ms', (n, want) => {
    expect(restartDelayMs(n)).toBe(want);
  });
});

describe('fallbacks are counted, not recorded one per exec', () => {
  it('the first is recorded at once; a flood inside the window is one summary at its end', () => {
    const c = new FallbackCounter(60_000);
    expect(c.add('timeout', 0)).toEqual({ count: 1, reasons: { timeout: 1 } });
    for (let i = 1; i <= 100_000; i++) expect(c.add(i % 2 ? 'timeout' : 'orphan', i / 10)).toBeNull();
    expect(c.flush(59_999)).toBeNull();
    expect(c.flush(60_001)).toEqual({ count: 100_000, reasons: { timeout: 50_000, orphan: 50_000 } });
    expect(c.flush(200_000)).toBeNull();
    expect(c.total).toBe(100_001);
    // After a quiet window the next one is recorded at once again.
    expect(c.add('full', 200_001)).toEqual({ count: 1, reasons: { full: 1 } });
  });
  it('a forced flush (agent stopping) records what waits', () => {
    const c = new FallbackCounter(60_000);
    c.add('timeout', 0);
    c.add('timeout', 1);
    expect(c.flush(2, true)).toEqual({ count: 1, reasons: { timeout: 1 } });
  });
});

describe('policy: software.preExec', () => {
  it('defaults: enabled, fallback deny, 1 s, marks from locations; older policies get them', () => {
    expect(defaultSoftwarePolicy().preExec).toEqual({ enabled: true, fallback: 'deny', timeoutMs: 1000, marks: [] });
    expect(normalizeSoftwarePolicy({ mode: 'enforce' }).preExec.fallback).toBe('deny');
    expect(normalizeSoftwarePolicy({ mode: 'enforce', preExec: { fallback: 'allow' } as never }).preExec).toEqual({ enabled: true, fallback: 'allow', timeoutMs: 1000, marks: [] });
    expect(softwarePolicyErrors({ mode: 'enforce', preExec: { enabled: false } })).toEqual([]);
  });
  it.each([
    [{ preExec: [] }, 'software.preExec: must be an object'],
    [{ preExec: { fallback: 'maybe' } }, 'software.preExec.fallback'],
    [{ preExec: { timeoutMs: 10 } }, 'software.preExec.timeoutMs'],
    [{ preExec: { timeoutMs: 2 ** 53 } }, 'software.preExec.timeoutMs'],
    [{ preExec: { enabled: 'yes' } }, 'software.preExec.enabled'],
    [{ preExec: { marks: ['tmp'] } }, 'software.preExec.marks[0]'],
    [{ preExec: { marks: Array.from({ length: 65 }, (_, i) => `/m${i}`) } }, 'software.preExec.marks: at most 64'],
    [{ preExec: { bogus: 1 } }, 'software.preExec.bogus: unknown setting'],
  ])('%j → %s', (x, want) => {
    const errors = softwarePolicyErrors({ mode: 'enforce', ...x });
    expect(errors.some((e) => e.startsWith(want))).toBe(true);
  });
});

describe('event data', () => {
  it.each([
    ['software.exec_denied', { path: '/tmp/x', sha256: null, rule: 'default deny', reason: 'not_allowed', pid: 5, uid: 1000, mode: 'enforce', decideMs: 0.4 }],
    ['software.preexec_fallback', { fallback: 'deny', count: 3, reasons: { timeout: 3 }, timeoutMs: 1000 }],
    ['software.preexec_started', { pid: 9, marks: ['/tmp'], fallback: 'deny', timeoutMs: 1000, restarts: 0 }],
    ['software.preexec_stopped', { pid: 9, code: null, signal: 'SIGKILL', error: '', restarts: 0, restartInMs: 1000 }],
    ['software.preexec_unavailable', { reason: 'not_root', message: 'x' }],
  ])('%s matches its declaration', (type, data) => {
    expect(eventDataErrors(type, data)).toEqual([]);
  });
});

describe('mounts below the marked places', () => {
  const info = [
    '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
    '30 22 0:25 / /run rw,nosuid shared:5 - tmpfs tmpfs rw',
    '31 30 0:40 / /run/user/1000 rw,nosuid shared:6 - tmpfs tmpfs rw',
    '32 22 0:41 / /home/a\\040b rw shared:7 - tmpfs tmpfs rw', // a space, escaped as mountinfo does
    '33 22 0:42 / /tmpfoo rw shared:8 - tmpfs tmpfs rw', // not below /tmp (segment boundary)
    '34 22 0:43 / /tmp/x/../../etc rw shared:9 - tmpfs tmpfs rw', // not a clean path: skipped
    'garbage',
    '',
  ].join('\n');
  it('finds the mounts strictly below each root, unescaped', () => {
    expect(mountsBelow(info, ['/run/user', '/home', '/tmp'])).toEqual(['/run/user/1000', '/home/a b']);
    expect(mountsBelow(info, ['/'])).toEqual(['/run', '/run/user/1000', '/home/a b', '/tmpfoo']);
    expect(mountsBelow(info, ['relative', '/a/../b'])).toEqual([]);
  });
  it('is bounded however many mounts there are', () => {
    const many = Array.from({ length: 200_000 }, (_, i) => `${i} 22 0:1 / /run/user/${i} rw - tmpfs tmpfs rw`).join('\n');
    expect(mountsBelow(many, ['/run/user'], 64)).toHaveLength(64);
  });
  it('a mark line carries the path as hex, whatever it holds', () => {
    expect(markLine('/run/user/1000')).toBe(`M ${Buffer.from('/run/user/1000').toString('hex')}\n`);
    expect(markLine('/a b\nA 1 2 3 4 5 a')).toMatch(/^M [0-9a-f]+\n$/);
  });
});
