/**
 * Trust from the package database (issue 14): what dpkg installed, content intact, is trusted out
 * of the box; an approved baseline replaces that trust; rules come first. Also the dpkg index that
 * feeds it (states with files on disk, diversions, merged-/usr, md5sums read only where needed,
 * staleness) and the hash cache's identity (ctime, so `touch -d` cannot keep a stale digest).
 */
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { watchRoots } from '../../agent/software/capability.js';
import { compilePolicy, judge, judgePackage, type PackageOwner, type Subject } from '../../agent/software/decide.js';
import { unauthorizedProcessData } from '../../agent/software/events.js';
import { PackageDb, parseDiversions, parseDpkgStatus, parseMd5sums } from '../../agent/software/observe/dpkg.js';
import { Hasher } from '../../agent/software/observe/hash.js';
import { readEventData } from '../../protocol/event-data.js';
import { defaultSoftwarePolicy, type SoftwarePolicy, type SoftwareRule } from '../../protocol/policy-software.js';

const A = 'a'.repeat(64);
const tmp = mkdtempSync(join(tmpdir(), 'sekimori-sw-trust-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const baseline: NonNullable<SoftwarePolicy['baseline']> = {
  id: 'bl-1',
  digest: 'c'.repeat(64),
  host: 'ref',
  approvedBy: 'admin',
  approvedAt: '2026-11-21T00:00:00.000Z',
  packages: [{ name: 'coreutils', version: '9.1-1' }],
  files: [{ path: '/usr/local/bin/tool', sha256: A }],
};

const intact = (name: string, version: string): PackageOwner => ({ name, version, intact: true });
const coreutils = intact('coreutils', '9.1-1');

function compiled(o: { rules?: SoftwareRule[]; baseline?: boolean; packageDb?: boolean } = {}) {
  const p: SoftwarePolicy = { ...defaultSoftwarePolicy(), rules: o.rules ?? [], baseline: o.baseline ? baseline : null };
  return compilePolicy(p, [], { packageDb: o.packageDb ?? true });
}

describe('judge: package database trust', () => {
  const cases: { name: string; c: ReturnType<typeof compiled>; s: Subject; allowed: boolean; reason: string; rule?: RegExp }[] = [
    { name: 'no baseline: dpkg-installed and intact is trusted, named by package', c: compiled(), s: { path: '/usr/bin/sleep', sha256: A, owner: coreutils }, allowed: true, reason: 'package_db', rule: /^dpkg coreutils=9\.1-1$/ },
    { name: 'no baseline: a copy in /tmp has no owner → not allowed', c: compiled(), s: { path: '/tmp/sleep', sha256: A, owner: null }, allowed: false, reason: 'not_allowed', rule: /default deny/ },
    {
      name: 'no baseline: a modified system binary reads as modified',
      c: compiled(),
      s: { path: '/usr/bin/sleep', sha256: A, owner: { ...coreutils, intact: false } },
      allowed: false,
      reason: 'package_modified',
      rule: /^dpkg coreutils=9\.1-1: content differs from dpkg's md5sums$/,
    },
    {
      name: 'no md5sum for the file: never trusted, said so',
      c: compiled(),
      s: { path: '/usr/bin/x', sha256: A, owner: { name: 'odd', version: '1', intact: false, unverifiable: true } },
      allowed: false,
      reason: 'not_allowed',
      rule: /has no md5sum/,
    },
    { name: 'deleted after exec: the package no longer vouches', c: compiled(), s: { path: '/usr/bin/sleep', sha256: A, deleted: true, owner: coreutils }, allowed: false, reason: 'not_allowed' },
    { name: 'platform without a package database (Windows): no package trust', c: compiled({ packageDb: false }), s: { path: '/usr/bin/sleep', sha256: A, owner: coreutils }, allowed: false, reason: 'not_allowed' },
    {
      name: 'block rule beats package trust',
      c: compiled({ rules: [{ kind: 'package', action: 'block', name: 'coreutils' }] }),
      s: { path: '/usr/bin/sleep', sha256: A, owner: coreutils },
      allowed: false,
      reason: 'block_rule',
    },
    {
      name: 'block path rule beats package trust',
      c: compiled({ rules: [{ kind: 'path', action: 'block', prefix: '/usr/bin/sleep' }] }),
      s: { path: '/usr/bin/sleep', sha256: A, owner: coreutils },
      allowed: false,
      reason: 'block_rule',
    },
    {
      name: 'allow rule comes before package trust (names the rule)',
      c: compiled({ rules: [{ kind: 'sha256', action: 'allow', sha256: A }] }),
      s: { path: '/usr/bin/sleep', sha256: A, owner: coreutils },
      allowed: true,
      reason: 'allow_rule',
    },
    {
      name: 'allow rule can vouch for a modified system binary (an administrator chose to)',
      c: compiled({ rules: [{ kind: 'sha256', action: 'allow', sha256: A }] }),
      s: { path: '/usr/bin/sleep', sha256: A, owner: { ...coreutils, intact: false } },
      allowed: true,
      reason: 'allow_rule',
    },
    { name: 'baseline: a package in it is trusted as baseline', c: compiled({ baseline: true }), s: { path: '/usr/bin/sleep', sha256: A, owner: coreutils }, allowed: true, reason: 'baseline_package' },
    {
      name: 'baseline: a dpkg package NOT in it is not trusted (the baseline replaces dpkg trust)',
      c: compiled({ baseline: true }),
      s: { path: '/usr/bin/nmap', sha256: A, owner: intact('nmap', '7.93') },
      allowed: false,
      reason: 'not_allowed',
      rule: /dpkg nmap=7\.93 is not in baseline bl-1/,
    },
    {
      name: 'baseline: an upgraded version is not the approved one',
      c: compiled({ baseline: true }),
      s: { path: '/usr/bin/sleep', sha256: A, owner: intact('coreutils', '9.4-1') },
      allowed: false,
      reason: 'not_allowed',
      rule: /not in baseline/,
    },
    {
      name: 'baseline: a modified baseline binary is still modified',
      c: compiled({ baseline: true }),
      s: { path: '/usr/bin/sleep', sha256: A, owner: { ...coreutils, intact: false } },
      allowed: false,
      reason: 'package_modified',
    },
    // Hostile: well-formed but absurd owners never turn into trust they do not have.
    {
      name: 'hostile: huge version, intact, no baseline → trusted only as exactly that',
      c: compiled(),
      s: { path: '/usr/bin/x', sha256: A, owner: intact('p', '9'.repeat(4000)) },
      allowed: true,
      reason: 'package_db',
    },
    { name: 'hostile: relative path with an owner is still judged by owner', c: compiled(), s: { path: 'usr/bin/x', sha256: A, owner: coreutils }, allowed: true, reason: 'package_db' },
    {
      name: 'hostile: a relative path never matches a path allow rule, and no owner → deny',
      c: compiled({ rules: [{ kind: 'path', action: 'allow', prefix: '/usr' }] }),
      s: { path: '../usr/bin/x', sha256: A, owner: null },
      allowed: false,
      reason: 'not_allowed',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const v = judge(c.c, c.s);
      expect(v.allowed).toBe(c.allowed);
      expect(v.reason).toBe(c.reason);
      if (c.rule) expect(v.rule).toMatch(c.rule);
    });
  }
});

describe('judgePackage with package trust', () => {
  it.each([
    ['no baseline: a newly installed package is authorized by dpkg trust', compiled(), 'hello', '1.0', true, 'package_db'],
    ['no baseline, no package database (Windows): not authorized', compiled({ packageDb: false }), 'hello', '1.0', false, 'not_allowed'],
    ['baseline: a package outside it is not authorized', compiled({ baseline: true }), 'hello', '1.0', false, 'not_allowed'],
    ['baseline: the approved version is', compiled({ baseline: true }), 'coreutils', '9.1-1', true, 'baseline_package'],
    ['block rule beats dpkg trust', compiled({ rules: [{ kind: 'package', action: 'block', name: 'hello' }] }), 'hello', '1.0', false, 'block_rule'],
  ] as const)('%s', (_n, c, name, version, allowed, reason) => {
    expect(judgePackage(c, name, version)).toMatchObject({ allowed, reason });
  });
});

describe('what trusted or refused a file is named in the event', () => {
  it('a modified system binary: rule and reason pass the event declaration', () => {
    const verdict = judge(compiled(), { path: '/usr/bin/sleep', sha256: A, owner: { name: 'coreutils', version: '9.1-1', intact: false } });
    const data = unauthorizedProcessData({
      pid: 42,
      uid: 1000,
      target: { path: '/usr/bin/sleep', sha256: A },
      exePath: '/usr/bin/sleep',
      exeSha256: A,
      script: null,
      deleted: false,
      verdict,
      mode: 'monitor',
      enforce: false,
      detectMs: 1,
    });
    expect(readEventData('software.unauthorized_process', data)).not.toBe(null);
    expect(data).toMatchObject({ reason: 'package_modified', rule: "dpkg coreutils=9.1-1: content differs from dpkg's md5sums" });
  });
});

describe('dpkg status: which packages have their files on disk', () => {
  const status = [
    'Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64',
    'Package: b\nStatus: install ok unpacked\nVersion: 2\nArchitecture: amd64',
    'Package: c\nStatus: install ok half-configured\nVersion: 3\nArchitecture: all',
    'Package: d\nStatus: install ok triggers-pending\nVersion: 4\nArchitecture: all',
    'Package: e\nStatus: install ok half-installed\nVersion: 5\nArchitecture: all',
    'Package: f\nStatus: deinstall ok config-files\nVersion: 6\nArchitecture: all',
    'Package: g\nStatus: install reinstreq unpacked\nVersion: 7\nArchitecture: all',
    'Package: h\nStatus: install ok not-installed\nVersion: 8\nArchitecture: all',
  ].join('\n\n');
  it('the inventory keeps installed only', () => expect([...parseDpkgStatus(status).values()].map((p) => p.name)).toEqual(['a']));
  it('ownership keeps every fully unpacked state (an upgrade runs its new binaries before "installed")', () => {
    expect([...parseDpkgStatus(status, { filesOnDisk: true }).values()].map((p) => p.name)).toEqual(['a', 'b', 'c', 'd']);
  });
});

describe('dpkg parsing, hostile input', () => {
  it('diversions: triplets; a torn last entry and garbage are skipped', () => {
    const d = parseDiversions('/usr/bin/pg_config\n/usr/bin/pg_config.libpq-dev\npostgresql-common\nrelative\n/x\npkg\n/usr/bin/a\n');
    expect(d.get('/usr/bin/pg_config')).toEqual({ to: '/usr/bin/pg_config.libpq-dev', by: 'postgresql-common' });
    expect(d.size).toBe(1);
  });
  it('diversions: a huge file is bounded', () => {
    const big = '/a\n/b\nx\n'.repeat(200_000);
    expect(parseDiversions(big).size).toBe(1);
  });
  it('md5sums: only the wanted paths, directories have none, odd formatting falls back to a full parse', () => {
    const m0 = '0'.repeat(32);
    const m1 = '1'.repeat(32);
    const text = `${m0}  usr/bin/hello\n${m1}  usr/share/doc/hello/README\n`;
    expect(parseMd5sums(text, new Map([['/usr/bin/hello', 1], ['/usr/bin', 1]]))).toEqual(new Map([['/usr/bin/hello', m0]]));
    expect(parseMd5sums(`${m0} *usr/bin/hello`, new Map([['/usr/bin/hello', 1]]))).toEqual(new Map([['/usr/bin/hello', m0]]));
    // A path that is a suffix of another line's path is not mistaken for it.
    expect(parseMd5sums(`${m0}  usr/bin/xhello\n`, new Map([['/usr/bin/hello', 1]])).size).toBe(0);
    expect(parseMd5sums(`${m0}  opt/usr/bin/hello\n`, new Map([['/usr/bin/hello', 1]])).size).toBe(0);
  });
});

describe('PackageDb over a scratch root (merged-/usr, diversions, staleness)', () => {
  const admin = join(tmp, 'admin');
  const root = join(tmp, 'root');
  const body = '#!/bin/sh\necho hi\n';
  const md5 = createHash('md5').update(body).digest('hex');
  mkdirSync(join(admin, 'info'), { recursive: true });
  mkdirSync(join(root, 'usr/bin'), { recursive: true });
  symlinkSync('usr/bin', join(root, 'bin')); // merged-/usr: /bin → usr/bin (relative, inside the root)
  writeFileSync(join(root, 'usr/bin/hello'), body, { mode: 0o755 });
  writeFileSync(join(root, 'usr/bin/tool.real'), body, { mode: 0o755 });
  writeFileSync(join(admin, 'status'), 'Package: hello\nStatus: install ok installed\nVersion: 2.10-3\nArchitecture: amd64\n\nPackage: wrapper\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n');
  // hello lists its binary under /bin (pre-merge packaging) and ships /bin/tool, diverted by wrapper.
  writeFileSync(join(admin, 'info', 'hello:amd64.list'), '/.\n/bin\n/bin/hello\n/bin/tool\n/usr/share/doc/hello\n');
  writeFileSync(join(admin, 'info', 'hello:amd64.md5sums'), `${md5}  bin/hello\n${md5}  bin/tool\n${'f'.repeat(32)}  usr/share/doc/hello/copyright\n`);
  writeFileSync(join(admin, 'info', 'wrapper.list'), '/.\n/bin\n/bin/tool\n');
  writeFileSync(join(admin, 'info', 'wrapper.md5sums'), `${'e'.repeat(32)}  bin/tool\n`);
  writeFileSync(join(admin, 'diversions'), '/bin/tool\n/bin/tool.real\nwrapper\n');

  it('maps /bin paths through the root symlink, follows diversions, checks content', async () => {
    const db = new PackageDb(admin, root, [join(root, 'usr/bin')]);
    await db.load();
    expect(db.owner(join(root, 'usr/bin/hello'), md5)).toEqual({ name: 'hello', version: '2.10-3', intact: true });
    expect(db.owner(join(root, 'usr/bin/hello'), 'f'.repeat(32))).toEqual({ name: 'hello', version: '2.10-3', intact: false });
    // hello's diverted file lives at the diversion's target; wrapper's own file keeps the name.
    expect(db.owner(join(root, 'usr/bin/tool.real'), md5)).toEqual({ name: 'hello', version: '2.10-3', intact: true });
    expect(db.owner(join(root, 'usr/bin/tool'), 'e'.repeat(32))).toEqual({ name: 'wrapper', version: '1', intact: true });
    // Outside the locations nothing is indexed (the docs).
    expect(db.owner(join(root, 'usr/share/doc/hello/copyright'), 'f'.repeat(32))).toBe(null);
    expect(db.stale()).toBe(false);
    appendFileSync(join(admin, 'status'), '\n');
    expect(db.stale()).toBe(true);
    await db.load();
    expect(db.stale()).toBe(false);
  });

  it('an unreadable status file fails the load (the caller reports it) and keeps the old index', async () => {
    const db = new PackageDb(join(tmp, 'no-such-admin'), root, [join(root, 'usr/bin')]);
    await expect(db.load()).rejects.toThrow();
    expect(db.ownedPaths).toBe(0);
  });
});

describe('watchRoots', () => {
  it('drops missing folders, resolves symlinked ones, keeps none inside another', () => {
    const w = join(tmp, 'roots');
    mkdirSync(join(w, 'usr/bin'), { recursive: true });
    mkdirSync(join(w, 'opt'), { recursive: true });
    symlinkSync(join(w, 'usr/bin'), join(w, 'bin'));
    expect(watchRoots([join(w, 'usr/bin'), join(w, 'bin'), join(w, 'usr'), join(w, 'opt'), join(w, 'missing'), join(w, 'opt')])).toEqual([join(w, 'usr'), join(w, 'opt')]);
  });
});

describe('hash cache identity', () => {
  it('content rewritten in place with its mtime put back (touch -d) is hashed again: ctime is in the key', async () => {
    const f = join(tmp, 'bin-ctime');
    writeFileSync(f, 'AAAA');
    utimesSync(f, 1_700_000_000, 1_700_000_000); // whole seconds: put back exactly below
    const before = statSync(f);
    const h = new Hasher(1);
    const d1 = await h.digest(f);
    await new Promise((r) => setTimeout(r, 20)); // ctime must be able to move (coarse clocks)
    writeFileSync(f, 'BBBB'); // same size
    utimesSync(f, 1_700_000_000, 1_700_000_000);
    expect(statSync(f).mtimeMs).toBe(before.mtimeMs);
    const d2 = await h.digest(f);
    expect(d2.sha256).not.toBe(d1.sha256);
    expect(h.hashed).toBe(2);
    await h.digest(f);
    expect(h.hits).toBe(1); // unchanged file: one stat, no re-read
  });
});
