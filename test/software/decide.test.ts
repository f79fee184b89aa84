import { describe, expect, it } from 'vitest';
import {
  combine,
  compilePolicy,
  inScope,
  interpreterName,
  judge,
  judgePackage,
  looksExecutable,
  mayKill,
  normalizePath,
  parseExeLink,
  resolveScriptPath,
  scriptArgument,
  shouldEnforce,
  underPrefix,
  type Subject,
} from '../../agent/software/decide.js';
import { DEFAULT_INTERPRETERS, defaultSoftwarePolicy, type SoftwarePolicy, type SoftwareRule } from '../../protocol/policy-software.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);

function policy(rules: SoftwareRule[], extra: Partial<SoftwarePolicy> = {}): SoftwarePolicy {
  return { ...defaultSoftwarePolicy(), rules, ...extra };
}

const baseline: SoftwarePolicy['baseline'] = {
  id: 'bl-1',
  digest: C,
  host: 'ref',
  approvedBy: 'admin',
  approvedAt: '2026-11-21T00:00:00.000Z',
  packages: [{ name: 'coreutils', version: '9.1-1' }],
  files: [{ path: '/usr/local/bin/tool', sha256: A }],
};

describe('judge: order and precedence', () => {
  const cases: { name: string; rules: SoftwareRule[]; s: Subject; allowed: boolean; reason: string; rule?: RegExp }[] = [
    { name: 'nothing matches → default deny', rules: [], s: { path: '/tmp/x', sha256: A }, allowed: false, reason: 'not_allowed' },
    { name: 'sha256 allow', rules: [{ kind: 'sha256', action: 'allow', sha256: A }], s: { path: '/tmp/x', sha256: A }, allowed: true, reason: 'allow_rule', rule: /rules\[0\] allow sha256/ },
    { name: 'uppercase observed hash still matches', rules: [{ kind: 'sha256', action: 'allow', sha256: A }], s: { path: '/tmp/x', sha256: A.toUpperCase() }, allowed: true, reason: 'allow_rule' },
    {
      name: 'block sha256 wins over earlier allow path',
      rules: [
        { kind: 'path', action: 'allow', prefix: '/opt/app' },
        { kind: 'sha256', action: 'block', sha256: A },
      ],
      s: { path: '/opt/app/bin/x', sha256: A },
      allowed: false,
      reason: 'block_rule',
      rule: /rules\[1\] block sha256/,
    },
    {
      name: 'block path wins over allow sha256',
      rules: [
        { kind: 'sha256', action: 'allow', sha256: A },
        { kind: 'path', action: 'block', prefix: '/tmp' },
      ],
      s: { path: '/tmp/x', sha256: A },
      allowed: false,
      reason: 'block_rule',
    },
    {
      name: 'block wins over baseline file',
      rules: [{ kind: 'sha256', action: 'block', sha256: A }],
      s: { path: '/usr/local/bin/tool', sha256: A },
      allowed: false,
      reason: 'block_rule',
    },
    {
      name: 'first matching block rule names the decision',
      rules: [
        { kind: 'path', action: 'block', prefix: '/tmp' },
        { kind: 'sha256', action: 'block', sha256: A },
      ],
      s: { path: '/tmp/x', sha256: A },
      allowed: false,
      reason: 'block_rule',
      rule: /rules\[0\] block path \/tmp/,
    },
    { name: 'path prefix respects segment boundary', rules: [{ kind: 'path', action: 'allow', prefix: '/opt/app' }], s: { path: '/opt/apple/x', sha256: A }, allowed: false, reason: 'not_allowed' },
    { name: 'path prefix equals path', rules: [{ kind: 'path', action: 'allow', prefix: '/opt/app/x' }], s: { path: '/opt/app/x', sha256: A }, allowed: true, reason: 'allow_rule' },
    { name: '.. cannot climb into an allowed prefix', rules: [{ kind: 'path', action: 'allow', prefix: '/opt/app' }], s: { path: '/tmp/../opt/app/../../tmp/evil', sha256: A }, allowed: false, reason: 'not_allowed' },
    { name: '.. folding still finds the allowed file', rules: [{ kind: 'path', action: 'allow', prefix: '/opt/app' }], s: { path: '/opt/x/../app/bin', sha256: A }, allowed: true, reason: 'allow_rule' },
    { name: 'duplicate slashes folded', rules: [{ kind: 'path', action: 'block', prefix: '/tmp' }], s: { path: '//tmp///x', sha256: A }, allowed: false, reason: 'block_rule' },
    { name: 'relative path never matches a path rule', rules: [{ kind: 'path', action: 'allow', prefix: '/tmp' }], s: { path: 'tmp/x', sha256: A }, allowed: false, reason: 'not_allowed' },
    { name: 'NUL in path never matches', rules: [{ kind: 'path', action: 'allow', prefix: '/opt' }], s: { path: '/opt/x\0/../../tmp', sha256: A }, allowed: false, reason: 'not_allowed' },
    { name: 'deleted binary: path allow does not vouch', rules: [{ kind: 'path', action: 'allow', prefix: '/opt/app' }], s: { path: '/opt/app/x', sha256: A, deleted: true }, allowed: false, reason: 'not_allowed' },
    { name: 'deleted binary: path block still blocks', rules: [{ kind: 'path', action: 'block', prefix: '/tmp' }, { kind: 'sha256', action: 'allow', sha256: A }], s: { path: '/tmp/x', sha256: A, deleted: true }, allowed: false, reason: 'block_rule' },
    { name: 'deleted binary: sha256 allow still allows', rules: [{ kind: 'sha256', action: 'allow', sha256: A }], s: { path: '/tmp/x', sha256: A, deleted: true }, allowed: true, reason: 'allow_rule' },
    { name: 'package allow needs intact content', rules: [{ kind: 'package', action: 'allow', name: 'vim' }], s: { path: '/usr/bin/vim', sha256: A, owner: { name: 'vim', version: '9', intact: false } }, allowed: false, reason: 'package_modified', rule: /^dpkg vim=9: content differs/ },
    { name: 'package allow, intact', rules: [{ kind: 'package', action: 'allow', name: 'vim' }], s: { path: '/usr/bin/vim', sha256: A, owner: { name: 'vim', version: '9', intact: true } }, allowed: true, reason: 'allow_rule' },
    { name: 'package allow pinned to another version', rules: [{ kind: 'package', action: 'allow', name: 'vim', version: '8' }], s: { path: '/usr/bin/vim', sha256: A, owner: { name: 'vim', version: '9', intact: true } }, allowed: false, reason: 'not_allowed' },
    { name: 'package block even if modified', rules: [{ kind: 'package', action: 'block', name: 'nmap' }, { kind: 'path', action: 'allow', prefix: '/usr/bin' }], s: { path: '/usr/bin/nmap', sha256: A, owner: { name: 'nmap', version: '7', intact: false } }, allowed: false, reason: 'block_rule' },
    { name: 'package allow ignored for deleted binary', rules: [{ kind: 'package', action: 'allow', name: 'vim' }], s: { path: '/usr/bin/vim', sha256: A, deleted: true, owner: { name: 'vim', version: '9', intact: true } }, allowed: false, reason: 'not_allowed' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const v = judge(compilePolicy(policy(c.rules)), c.s);
      expect(v.allowed).toBe(c.allowed);
      expect(v.reason).toBe(c.reason);
      if (c.rule) expect(v.rule).toMatch(c.rule);
    });
  }
});

describe('judge: baseline and restored files', () => {
  const c = compilePolicy(policy([], { baseline }), [{ path: '/home/u/Downloads/ok', sha256: B }]);
  it('baseline file: same path and content', () => expect(judge(c, { path: '/usr/local/bin/tool', sha256: A })).toMatchObject({ allowed: true, reason: 'baseline_file', rule: 'baseline bl-1 file' }));
  it('baseline file copied elsewhere is not trusted', () => expect(judge(c, { path: '/tmp/tool', sha256: A }).allowed).toBe(false));
  it('baseline path with other content is not trusted', () => expect(judge(c, { path: '/usr/local/bin/tool', sha256: B }).allowed).toBe(false));
  it('baseline file via .. path', () => expect(judge(c, { path: '/usr/local/sbin/../bin/tool', sha256: A }).allowed).toBe(true));
  it('baseline package, intact, right version', () => expect(judge(c, { path: '/usr/bin/ls', sha256: B, owner: { name: 'coreutils', version: '9.1-1', intact: true } }).reason).toBe('baseline_package'));
  it('baseline package, other version', () => expect(judge(c, { path: '/usr/bin/ls', sha256: B, owner: { name: 'coreutils', version: '9.4-1', intact: true } }).allowed).toBe(false));
  it('baseline package, tampered content', () => expect(judge(c, { path: '/usr/bin/ls', sha256: B, owner: { name: 'coreutils', version: '9.1-1', intact: false } }).allowed).toBe(false));
  it('restored exemption: exact path and content only', () => {
    expect(judge(c, { path: '/home/u/Downloads/ok', sha256: B }).reason).toBe('restored');
    expect(judge(c, { path: '/home/u/Downloads/ok', sha256: A }).allowed).toBe(false);
    expect(judge(c, { path: '/home/u/Downloads/ok2', sha256: B }).allowed).toBe(false);
  });
  it('block rule beats a restored exemption', () => {
    const c2 = compilePolicy(policy([{ kind: 'sha256', action: 'block', sha256: B }], { baseline }), [{ path: '/home/u/Downloads/ok', sha256: B }]);
    expect(judge(c2, { path: '/home/u/Downloads/ok', sha256: B }).reason).toBe('block_rule');
  });
  it('empty or garbage hash never matches a baseline file', () => {
    expect(judge(c, { path: '/usr/local/bin/tool', sha256: '' }).allowed).toBe(false);
    expect(judge(c, { path: '/usr/local/bin/tool', sha256: 'zz' }).allowed).toBe(false);
  });
});

describe('judgePackage', () => {
  const c = compilePolicy(
    policy(
      [
        { kind: 'package', action: 'block', name: 'nmap' },
        { kind: 'package', action: 'allow', name: 'nmap' },
        { kind: 'package', action: 'allow', name: 'hello', version: '1.0' },
      ],
      { baseline },
    ),
  );
  it.each([
    ['nmap', '7', false, 'block_rule'],
    ['hello', '1.0', true, 'allow_rule'],
    ['hello', '2.0', false, 'not_allowed'],
    ['coreutils', '9.1-1', true, 'baseline_package'],
    ['coreutils', '9.2', false, 'not_allowed'],
  ] as const)('%s %s', (name, version, allowed, reason) => {
    expect(judgePackage(c, name, version)).toMatchObject({ allowed, reason });
  });
});

describe('paths', () => {
  it.each([
    ['/usr/bin/ls', '/usr/bin/ls'],
    ['/usr//bin/./ls', '/usr/bin/ls'],
    ['/a/b/../../..', '/'],
    ['/tmp/', '/tmp'],
    ['relative', null],
    ['', null],
    ['/x\0y', null],
    ['/' + 'a'.repeat(5000), null],
  ])('normalizePath(%j)', (p, want) => expect(normalizePath(p)).toBe(want));
  it.each([
    ['/opt/app', '/opt/app', true],
    ['/opt/app/x', '/opt/app', true],
    ['/opt/apple', '/opt/app', false],
    ['/opt', '/opt/app', false],
    ['/anything', '/', true],
  ])('underPrefix(%s, %s)', (p, pre, want) => expect(underPrefix(p, pre)).toBe(want));
  it('inScope normalises first', () => {
    expect(inScope('/tmp/../etc/passwd', ['/tmp'])).toBe(false);
    expect(inScope('/home/u/../v/Downloads/x', ['/home'])).toBe(true);
    expect(inScope('tmp/x', ['/tmp'])).toBe(false);
  });
  it('parseExeLink handles deleted binaries', () => {
    expect(parseExeLink('/tmp/x (deleted)')).toEqual({ path: '/tmp/x', deleted: true });
    expect(parseExeLink('/tmp/x')).toEqual({ path: '/tmp/x', deleted: false });
    expect(parseExeLink('/tmp/name (deleted) (deleted)')).toEqual({ path: '/tmp/name (deleted)', deleted: true });
  });
  it('resolveScriptPath', () => {
    expect(resolveScriptPath('x.py', '/home/u')).toBe('/home/u/x.py');
    expect(resolveScriptPath('../../tmp/x.py', '/home/u')).toBe('/tmp/x.py');
    expect(resolveScriptPath('/tmp//x.sh', null)).toBe('/tmp/x.sh');
    expect(resolveScriptPath('x.py', null)).toBe(null);
    expect(resolveScriptPath('a\0b', '/')).toBe(null);
  });
});

describe('interpreters running scripts', () => {
  const I = DEFAULT_INTERPRETERS;
  it.each([
    ['/usr/bin/python3.11', undefined, 'python3'],
    ['/usr/bin/python3', undefined, 'python3'],
    ['/usr/bin/bash', undefined, 'bash'],
    ['/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', undefined, 'ld-linux-x86-64.so.2'],
    ['/usr/bin/pythonista', undefined, null],
    ['/tmp/evil (deleted)', undefined, null],
    ['/opt/custom/bin/thing', 'perl', 'perl'],
  ])('interpreterName(%s)', (exe, argv0, want) => expect(interpreterName(exe, argv0, I)).toBe(want));

  it.each([
    [['python3', '/tmp/x.py'], 'python3', { kind: 'script', path: '/tmp/x.py' }],
    [['python3', '-u', '-W', 'ignore', 'x.py', '--flag'], 'python3', { kind: 'script', path: 'x.py' }],
    [['python3', '-c', 'print(1)'], 'python3', { kind: 'inline' }],
    [['python3', '-Bc', 'print(1)'], 'python3', { kind: 'inline' }],
    [['python3', '-m', 'http.server'], 'python3', { kind: 'inline' }],
    [['python3'], 'python3', { kind: 'none' }],
    [['bash', '/tmp/run.sh', 'arg'], 'bash', { kind: 'script', path: '/tmp/run.sh' }],
    [['bash', '-e', '-o', 'pipefail', 'run.sh'], 'bash', { kind: 'script', path: 'run.sh' }],
    [['bash', '-ec', 'echo hi'], 'bash', { kind: 'inline' }],
    [['sh', '-c', 'echo'], 'sh', { kind: 'inline' }],
    [['-bash'], 'bash', { kind: 'none' }],
    [['bash', '--', '-weird-name.sh'], 'bash', { kind: 'script', path: '-weird-name.sh' }],
    [['node', '--require', 'x', 'app.js'], 'node', { kind: 'script', path: 'app.js' }],
    [['node', '-e', '1'], 'node', { kind: 'inline' }],
    [['perl', '-Ilib', 'x.pl'], 'perl', { kind: 'script', path: 'x.pl' }],
    [['perl', '-e', 'print 1'], 'perl', { kind: 'inline' }],
    [['/lib64/ld-linux-x86-64.so.2', '--library-path', '/x', '/tmp/evil'], 'ld-linux-x86-64.so.2', { kind: 'script', path: '/tmp/evil' }],
    [['awk', '-f', '/tmp/p.awk', 'in'], 'awk', { kind: 'script', path: '/tmp/p.awk' }],
    [['awk', '{print}', 'in'], 'awk', { kind: 'inline' }],
    [['busybox', 'sh', '/tmp/x.sh'], 'busybox', { kind: 'script', path: '/tmp/x.sh' }],
    [['busybox', 'ls'], 'busybox', { kind: 'none' }],
    [['python3', '-'], 'python3', { kind: 'inline' }],
  ] as const)('scriptArgument(%j)', (argv, interp, want) => expect(scriptArgument(argv, interp, I)).toEqual(want));

  it('bounded on hostile argv', () => {
    const argv = ['bash', ...Array.from({ length: 100_000 }, () => '-x')];
    expect(scriptArgument(argv, 'bash', I)).toEqual({ kind: 'none' });
  });

  it('combine: the script decides when the interpreter is allowed', () => {
    const ok = { allowed: true, reason: 'allow_rule' as const, rule: 'r' };
    const bad = { allowed: false, reason: 'not_allowed' as const, rule: 'd' };
    expect(combine(ok, bad)).toEqual({ verdict: bad, decidedBy: 'script' });
    expect(combine(bad, ok)).toEqual({ verdict: bad, decidedBy: 'exe' });
    expect(combine(ok, null)).toEqual({ verdict: ok, decidedBy: 'exe' });
  });
});

describe('what counts as executable', () => {
  it.each([
    [0o100755, [0, 0, 0, 0], true],
    [0o100644, [0x7f, 0x45, 0x4c, 0x46], true],
    [0o100644, [0x23, 0x21, 0x2f], true],
    [0o100644, [0x23, 0x20], false],
    [0o100600, [], false],
  ])('mode %o head %j', (mode, head, want) => expect(looksExecutable(mode, Uint8Array.from(head))).toBe(want));
});

describe('actions', () => {
  it.each([
    [{ allowed: false, inScope: true, mode: 'enforce', monitorOnly: false }, true],
    [{ allowed: false, inScope: true, mode: 'monitor', monitorOnly: false }, false],
    [{ allowed: false, inScope: true, mode: 'enforce', monitorOnly: true }, false],
    [{ allowed: false, inScope: false, mode: 'enforce', monitorOnly: false }, false],
    [{ allowed: true, inScope: true, mode: 'enforce', monitorOnly: false }, false],
  ] as const)('shouldEnforce(%j)', (a, want) => expect(shouldEnforce(a)).toBe(want));
  it('never kills init, the agent or its ancestors', () => {
    const prot = new Set([1, 100, 50]);
    expect(mayKill(1, prot)).toBe(false);
    expect(mayKill(0, prot)).toBe(false);
    expect(mayKill(-1, prot)).toBe(false);
    expect(mayKill(100, prot)).toBe(false);
    expect(mayKill(4242, prot)).toBe(true);
    expect(mayKill(Number.NaN, prot)).toBe(false);
  });
});
