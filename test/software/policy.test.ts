import { describe, expect, it } from 'vitest';
import { defaultPolicyBody, policyBodyErrors } from '../../protocol/policy.js';
import { baselineDocumentErrors, defaultSoftwarePolicy, isCleanAbsolutePath, normalizeSoftwarePolicy, softwarePolicyErrors } from '../../protocol/policy-software.js';

const A = 'a'.repeat(64);

describe('software policy validation', () => {
  it('defaults are valid and the whole policy body too', () => {
    expect(softwarePolicyErrors(defaultSoftwarePolicy())).toEqual([]);
    expect(policyBodyErrors(defaultPolicyBody())).toEqual([]);
  });
  it('a minimal hand-written section (mode only) is valid and normalised', () => {
    expect(softwarePolicyErrors({ mode: 'enforce' })).toEqual([]);
    expect(normalizeSoftwarePolicy({ mode: 'enforce' })).toMatchObject({ mode: 'enforce', rules: [], baseline: null, scanIntervalMs: 250 });
    expect(normalizeSoftwarePolicy({ mode: 'monitor', quarantine: { enabled: false } as never }).quarantine).toEqual({ enabled: false, dir: '' });
  });
  it.each([
    [{ mode: 'block' }, 'software.mode'],
    [{ mode: 'monitor', bogus: 1 }, 'software.bogus: unknown setting'],
    [{ mode: 'monitor', rules: [{ kind: 'sha256', action: 'allow', sha256: 'ABC' }] }, 'software.rules[0].sha256'],
    [{ mode: 'monitor', rules: [{ kind: 'sha256', action: 'allow', sha256: A.toUpperCase() }] }, 'software.rules[0].sha256'],
    [{ mode: 'monitor', rules: [{ kind: 'path', action: 'allow', prefix: '/opt/../tmp' }] }, 'software.rules[0].prefix'],
    [{ mode: 'monitor', rules: [{ kind: 'path', action: 'allow', prefix: 'opt' }] }, 'software.rules[0].prefix'],
    [{ mode: 'monitor', rules: [{ kind: 'path', action: 'allow', prefix: '/opt/' }] }, 'software.rules[0].prefix'],
    [{ mode: 'monitor', rules: [{ kind: 'path', action: 'deny', prefix: '/opt' }] }, 'software.rules[0].action'],
    [{ mode: 'monitor', rules: [{ kind: 'hash', action: 'allow' }] }, 'software.rules[0].kind'],
    [{ mode: 'monitor', rules: [{ kind: 'package', action: 'allow', name: 'Bad Name' }] }, 'software.rules[0].name'],
    [{ mode: 'monitor', rules: [{ kind: 'package', action: 'allow', name: 'vim', version: '1 2' }] }, 'software.rules[0].version'],
    [{ mode: 'monitor', rules: [{ kind: 'sha256', action: 'allow', sha256: A, prefix: '/x' }] }, 'software.rules[0].prefix: unknown setting'],
    [{ mode: 'monitor', rules: {} }, 'software.rules: must be an array'],
    [{ mode: 'monitor', locations: ['/'] }, 'software.locations[0]'],
    [{ mode: 'monitor', locations: ['/tmp/a\0b'] }, 'software.locations[0]'],
    [{ mode: 'monitor', scanIntervalMs: 1 }, 'software.scanIntervalMs'],
    [{ mode: 'monitor', watchDepth: 100 }, 'software.watchDepth'],
    [{ mode: 'monitor', interpreters: ['../x'] }, 'software.interpreters[0]'],
    [{ mode: 'monitor', packages: { adminDir: 'var/lib/dpkg' } }, 'software.packages.adminDir'],
    [{ mode: 'monitor', quarantine: { enabled: 'yes' } }, 'software.quarantine.enabled'],
    [{ mode: 'monitor', quarantine: { enabled: true, dir: '/' } }, 'software.quarantine.dir'],
    [{ mode: 'monitor', baseline: { id: 'x y' } }, 'software.baseline.id'],
    [{ mode: 'monitor', baseline: { id: 'b', digest: A, host: 'h', approvedBy: 'a', approvedAt: 't', packages: [], files: [{ path: '/a/../b', sha256: A }] } }, 'software.baseline.files[0].path'],
  ])('%j → %s', (x, want) => {
    const errors = softwarePolicyErrors(x);
    expect(errors.some((e) => e.startsWith(want)), errors.join('\n')).toBe(true);
  });
  it('hostile values: not an object', () => {
    expect(softwarePolicyErrors(null)).toEqual(['software: must be an object']);
    expect(softwarePolicyErrors([])).toEqual(['software: must be an object']);
  });
  it('error list stays bounded for a huge bad rule list', () => {
    const errors = softwarePolicyErrors({ mode: 'monitor', rules: Array.from({ length: 5000 }, () => ({ kind: 'x' })) });
    expect(errors.length).toBeLessThan(100);
  });
  it.each([
    ['/', true],
    ['/usr/bin', true],
    ['/usr/bin/', false],
    ['/usr/./bin', false],
    ['/usr//bin', false],
    ['usr', false],
    ['', false],
  ])('isCleanAbsolutePath(%j) = %s', (p, want) => expect(isCleanAbsolutePath(p)).toBe(want));
  it('baseline document', () => {
    const good = { format: 'sekimori-software-baseline/1', host: 'h', os: 'Debian', createdAt: 'now', scope: ['/usr/bin'], packages: [{ name: 'coreutils', version: '9.1-1', arch: 'amd64' }], files: [{ path: '/usr/bin/ls', sha256: A, size: 1, package: 'coreutils' }] };
    expect(baselineDocumentErrors(good)).toEqual([]);
    expect(baselineDocumentErrors({ ...good, format: 'x' })[0]).toMatch(/baseline.format/);
    expect(baselineDocumentErrors({ ...good, files: [{ path: 'ls', sha256: A }] })[0]).toMatch(/baseline.files\[0\].path/);
    expect(baselineDocumentErrors({ ...good, extra: 1 })[0]).toMatch(/baseline.extra: unknown setting/);
  });
});
