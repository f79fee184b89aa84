import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, chmodSync, existsSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { diffPackages, PackageDb, parseDpkgStatus, parseMd5sums } from '../../agent/software/observe/dpkg.js';
import { Hasher } from '../../agent/software/observe/hash.js';
import { ProcScanner, ancestry, readArgv } from '../../agent/software/observe/proc.js';
import { quarantineFile, restoreFile, UserNames } from '../../agent/software/linux/actions.js';
import { listQuarantine } from '../../agent/software/state.js';
import { createHash } from 'node:crypto';

const tmp = mkdtempSync(join(tmpdir(), 'sekimori-sw-unit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const STATUS = `Package: hello
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 2.10-3
Description: example
 package: continuation line with a colon

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: half
Status: install reinstreq half-installed
Version: 1.0

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-1
`;

describe('dpkg status', () => {
  it('keeps only installed packages, keyed by name:arch', () => {
    const m = parseDpkgStatus(STATUS);
    expect([...m.keys()]).toEqual(['hello:amd64', 'tzdata']);
    expect(m.get('hello:amd64')).toEqual({ name: 'hello', version: '2.10-3', arch: 'amd64' });
  });
  it('diff: installed, upgraded, removed', () => {
    const a = parseDpkgStatus(STATUS);
    const b = new Map(a);
    b.delete('tzdata');
    b.set('hello:amd64', { name: 'hello', version: '2.12-1', arch: 'amd64' });
    b.set('new', { name: 'new', version: '1', arch: '' });
    expect(diffPackages(a, b)).toEqual([
      { change: 'upgraded', name: 'hello', version: '2.12-1', arch: 'amd64', previousVersion: '2.10-3' },
      { change: 'installed', name: 'new', version: '1', arch: '' },
      { change: 'removed', name: 'tzdata', version: '2024a-1', arch: 'all' },
    ]);
  });
  it('hostile status text does not throw', () => {
    expect(parseDpkgStatus('\0\0\n\n:::\nPackage:\nVersion:').size).toBe(0);
    expect(parseDpkgStatus('Package: x\nStatus: install ok installed\n').size).toBe(0); // no version
  });
  it('md5sums', () => {
    const m = parseMd5sums(`${'0'.repeat(32)}  usr/bin/hello\nbad line\n${'1'.repeat(32)}  usr/share/doc/x\n`);
    expect(m.get('/usr/bin/hello')).toBe('0'.repeat(32));
    expect(m.size).toBe(2);
  });
  it('PackageDb maps owned paths under a root and checks content', async () => {
    const admin = join(tmp, 'dpkg');
    const root = join(tmp, 'root');
    mkdirSync(join(admin, 'info'), { recursive: true });
    mkdirSync(join(root, 'usr/bin'), { recursive: true });
    writeFileSync(join(root, 'usr/bin/hello'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    const md5 = createHash('md5').update('#!/bin/sh\necho hi\n').digest('hex');
    writeFileSync(join(admin, 'status'), STATUS);
    writeFileSync(join(admin, 'info', 'hello:amd64.list'), '/.\n/usr\n/usr/bin\n/usr/bin/hello\n');
    writeFileSync(join(admin, 'info', 'hello:amd64.md5sums'), `${md5}  usr/bin/hello\n`);
    const db = new PackageDb(admin, root, [join(root, 'usr/bin')]);
    await db.load();
    expect(db.owner(join(root, 'usr/bin/hello'), md5)).toEqual({ name: 'hello', version: '2.10-3', intact: true });
    expect(db.owner(join(root, 'usr/bin/hello'), 'f'.repeat(32))).toEqual({ name: 'hello', version: '2.10-3', intact: false });
    expect(db.owner(join(root, 'usr/bin/other'), md5)).toBe(null);
  });
});

describe('hashing', () => {
  it('caches by identity and notices changes', async () => {
    const f = join(tmp, 'h.bin');
    writeFileSync(f, 'one');
    const h = new Hasher(2);
    const a = await h.digest(f);
    expect(a.sha256).toBe(createHash('sha256').update('one').digest('hex'));
    await h.digest(f);
    expect(h.hits).toBe(1);
    writeFileSync(f, 'two!');
    expect((await h.digest(f)).sha256).toBe(createHash('sha256').update('two!').digest('hex'));
  });
  it('refuses directories', async () => {
    await expect(new Hasher().digest(tmp)).rejects.toThrow();
  });
});

describe('/proc scan over a fake /proc', () => {
  it('reports new pids, an exec in a known pid, deleted binaries; skips kernel threads', () => {
    const proc = join(tmp, 'proc');
    const mk = (pid: number, exe: string | null) => {
      mkdirSync(join(proc, String(pid)), { recursive: true });
      const link = join(proc, String(pid), 'exe');
      if (existsSync(link) || (() => { try { return statSync(link, { throwIfNoEntry: false }) !== undefined; } catch { return true; } })()) rmSync(link, { force: true });
      try { unlinkSync(link); } catch { /* none */ }
      if (exe) symlinkSync(exe, link);
    };
    mk(10, '/usr/bin/bash');
    mk(11, null); // kernel thread: no exe link
    mk(12, '/tmp/evil (deleted)');
    mkdirSync(join(proc, 'self'), { recursive: true });
    const seen: string[] = [];
    const s = new ProcScanner({ procRoot: proc, intervalMs: 1000, onExec: (p) => seen.push(`${p.pid}:${p.exeLink}`), recheckTicks: 1 });
    s.scan();
    expect(seen.sort()).toEqual(['10:/usr/bin/bash', '12:/tmp/evil (deleted)']);
    s.scan();
    expect(seen.length).toBe(2); // nothing new
    mk(10, '/tmp/x'); // exec inside an existing pid
    mk(13, '/opt/app');
    s.scan();
    expect(seen.slice(2).sort()).toEqual(['10:/tmp/x', '13:/opt/app']);
    rmSync(join(proc, '13'), { recursive: true });
    mk(13, '/opt/app'); // pid reused by the same binary after exiting: seen again
    s.scan();
    s.scan();
    expect(s.ticks).toBe(5);
  });
  it('reads argv and never kills its own ancestry', () => {
    expect(readArgv('/proc', process.pid).length).toBeGreaterThan(0);
    const a = ancestry('/proc', process.pid);
    expect(a.has(process.pid)).toBe(true);
    expect(a.has(process.ppid)).toBe(true);
    expect(a.has(1)).toBe(true);
  });
});

describe('quarantine', () => {
  it('moves a file away root-only and restores it exactly', () => {
    const q = join(tmp, 'q');
    const home = join(tmp, 'home', 'u', 'Downloads');
    mkdirSync(home, { recursive: true });
    const f = join(home, 'tool');
    writeFileSync(f, 'ELF?');
    chmodSync(f, 0o4755);
    const before = statSync(f);
    const rec = quarantineFile(q, f, 'a'.repeat(64), 'default deny');
    expect(existsSync(f)).toBe(false);
    expect(statSync(q).mode & 0o777).toBe(0o700);
    expect(statSync(join(q, `${rec.id}.bin`)).mode & 0o7777).toBe(0);
    expect(listQuarantine(q).map((r) => r.id)).toEqual([rec.id]);
    const back = restoreFile(q, rec.id);
    expect(back.originalPath).toBe(f);
    const after = statSync(f);
    expect(after.mode & 0o7777).toBe(0o4755);
    expect(after.uid).toBe(before.uid);
    expect(Math.round(after.mtimeMs)).toBe(Math.round(before.mtimeMs));
    expect(readFileSync(f, 'utf8')).toBe('ELF?');
    expect(listQuarantine(q)).toEqual([]);
  });
  it('restore refuses bad ids and never overwrites', () => {
    const q = join(tmp, 'q2');
    const f = join(tmp, 'over');
    writeFileSync(f, 'x');
    const rec = quarantineFile(q, f, 'b'.repeat(64), 'r');
    writeFileSync(f, 'someone else');
    expect(() => restoreFile(q, rec.id)).toThrow(/exists/);
    expect(() => restoreFile(q, '../../etc/passwd')).toThrow(/bad quarantine id/);
  });
  it('user names from passwd', () => {
    const p = join(tmp, 'passwd');
    writeFileSync(p, 'root:x:0:0::/root:/bin/bash\nstaff:x:1000:1000::/home/staff:/bin/bash\n');
    const u = new UserNames(p);
    expect(u.name(1000)).toBe('staff');
    expect(u.name(4242)).toBe('4242');
    expect(u.name(null)).toBe(null);
  });
});
