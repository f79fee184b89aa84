import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compilePolicy, judge } from '../../agent/software/decide.js';
import { WindowsSoftwarePlatform, moveAcrossVolumes, quarantineAclArgs, type Helper, type Runner, type RunResult } from '../../agent/software/windows/platform.js';
import { decodeHex16, encodeHex16, killResultOf, parseProcList, ProcWatchState, windowsAncestry, type WinProcess } from '../../agent/software/windows/processes.js';
import { defaultSoftwarePolicy, type SoftwarePolicy } from '../../protocol/policy-software.js';

const h = encodeHex16;

function listing(rows: [number, number, string, string | null, string | null][]): string {
  return rows.map(([pid, ppid, created, image, user]) => `P ${pid} ${ppid} ${created} ${image === null ? '-' : h(image)} ${user === null ? '-' : h(user)}`).join('\n') + `\nEND ${rows.length}\n`;
}

describe('sekimori-proclist listing', () => {
  it('parses a complete listing', () => {
    const text = listing([
      [4, 0, '0', null, null],
      [1200, 800, '134404699979451220', 'C:\\Program Files\\App\\app.exe', 'PC01\\tanaka'],
      [1300, 800, '134404699979451221', 'C:\\Users\\田中\\Downloads\\x.exe', 'DOMAIN\\田中'],
    ]);
    expect(parseProcList(text)).toEqual([
      { pid: 4, ppid: 0, created: '0', image: null, user: null },
      { pid: 1200, ppid: 800, created: '134404699979451220', image: 'C:\\Program Files\\App\\app.exe', user: 'PC01\\tanaka' },
      { pid: 1300, ppid: 800, created: '134404699979451221', image: 'C:\\Users\\田中\\Downloads\\x.exe', user: 'DOMAIN\\田中' },
    ]);
    expect(parseProcList(text.replace(/\n/g, '\r\n'))).not.toBeNull();
  });

  const good = listing([[10, 1, '5', 'C:\\a.exe', null]]);
  it.each([
    ['no END (cut off)', good.replace(/END 1\n$/, '')],
    ['count does not match', good.replace('END 1', 'END 2')],
    ['a line after END', good + 'P 11 1 5 - -\n'],
    ['the same pid twice', listing([[10, 1, '5', null, null], [10, 1, '6', null, null]])],
    ['junk line', 'hello\nEND 0\n'],
    ['negative pid', 'P -1 0 0 - -\nEND 1\n'],
    ['upper-case hex', 'P 1 0 0 4A00 -\nEND 1\n'],
    ['empty', ''],
  ])('refuses an incomplete or malformed listing: %s', (_n, text) => {
    expect(parseProcList(text)).toBeNull();
  });

  it('hex decoding: odd lengths and junk are null, any UTF-16 unit survives', () => {
    expect(decodeHex16('410')).toBeNull();
    expect(decodeHex16('zz00')).toBeNull();
    expect(decodeHex16('-')).toBeNull();
    expect(decodeHex16(h('a\nb\u0000c\ud800'))).toBe('a\nb\u0000c\ud800');
  });

  it('ancestry stops at a parent younger than its child (the pid was reused)', () => {
    const list: WinProcess[] = [
      { pid: 500, ppid: 400, created: '100', image: 'node.exe', user: null },
      { pid: 400, ppid: 300, created: '50', image: 'service.exe', user: null },
      { pid: 300, ppid: 4, created: '200', image: 'someone-else.exe', user: null }, // younger: not our ancestor
    ];
    expect([...windowsAncestry(500, list)].sort((a, b) => a - b)).toEqual([0, 4, 400, 500]);
    expect([...windowsAncestry(999, [])].sort((a, b) => a - b)).toEqual([0, 4, 999]);
    const loop: WinProcess[] = [
      { pid: 1, ppid: 2, created: '2', image: 'a', user: null },
      { pid: 2, ppid: 1, created: '1', image: 'b', user: null },
    ];
    expect(windowsAncestry(1, loop).size).toBeLessThan(10);
  });

  describe('watch stream', () => {
    const P = (pid: number, created: number, image: string | null) => `P ${pid} 1 ${created} ${image === null ? '-' : h(image)} -\n`;
    it('releases new processes at the end of their snapshot, without image-less ones', () => {
      const s = new ProcWatchState();
      expect(s.feed(P(10, 5, 'C:\\a.exe') + P(4, 0, null))).toEqual([]);
      const [u] = s.feed('T 2\n');
      expect(u).toEqual({ kind: 'snapshot', fresh: [{ pid: 10, ppid: 1, created: '5', image: 'C:\\a.exe', user: null }] });
      // split across chunks, a pid reused: G then P
      expect(s.feed('G 10 5\n' + P(10, 9, 'C:\\b.exe').slice(0, 7))).toEqual([]);
      expect(s.feed(P(10, 9, 'C:\\b.exe').slice(7) + 'T 2\r\n')).toEqual([{ kind: 'snapshot', fresh: [{ pid: 10, ppid: 1, created: '9', image: 'C:\\b.exe', user: null }] }]);
      // a process that came and went inside one snapshot is not released
      expect(s.feed(P(12, 1, 'C:\\c.exe') + 'G 12 1\nT 2\n')).toEqual([{ kind: 'snapshot', fresh: [] }]);
    });
    it.each([
      ['count does not match', P(1, 1, 'C:\\a.exe') + 'T 2\n'],
      ['gone without having come', 'G 5 1\n'],
      ['gone with another creation time', P(5, 1, 'C:\\a.exe') + 'T 1\nG 5 2\n'],
      ['new on a running pid', P(5, 1, 'C:\\a.exe') + P(5, 2, 'C:\\b.exe')],
      ['junk', 'hello\n'],
      ['bad hex', 'P 1 1 1 xyz -\n'],
      ['endless line', 'P'.repeat(400_000)],
    ])('desync: %s', (_n, text) => {
      const s = new ProcWatchState();
      expect(s.feed(text).at(-1)?.kind).toBe('desync');
    });
  });

  it('kill exit codes', () => {
    expect([0, 3, 4, 5, 64, null].map(killResultOf)).toEqual(['killed', 'gone', 'changed', 'failed', 'failed', 'failed']);
  });
});

class FakeHelper implements Helper {
  stopped = false;
  private data: ((t: string) => void)[] = [];
  private exits: (() => void)[] = [];
  onData(cb: (t: string) => void): void {
    this.data.push(cb);
  }
  onExit(cb: () => void): void {
    this.exits.push(cb);
  }
  stop(): void {
    this.stopped = true;
  }
  emit(t: string): void {
    for (const cb of this.data) cb(t);
  }
  exit(): void {
    for (const cb of this.exits) cb();
  }
}

/** Records every command; answers from a table (first matching prefix of "exe args…"). */
class FakeRunner implements Runner {
  calls: string[] = [];
  helpers: FakeHelper[] = [];
  onStart: (h: FakeHelper) => void = () => undefined;
  start(exe: string, args: string[]): Helper {
    this.calls.push([exe, ...args].join(' '));
    const h = new FakeHelper();
    this.helpers.push(h);
    queueMicrotask(() => this.onStart(h));
    return h;
  }
  constructor(private readonly answers: [RegExp, RunResult | (() => RunResult)][]) {}
  private answer(exe: string, args: string[]): RunResult {
    const line = [exe, ...args].join(' ');
    this.calls.push(line);
    for (const [re, r] of this.answers) if (re.test(line)) return typeof r === 'function' ? r() : r;
    return { code: 1, stdout: Buffer.from('') };
  }
  run(exe: string, args: string[]): Promise<RunResult> {
    return Promise.resolve(this.answer(exe, args));
  }
  runSync(exe: string, args: string[]): RunResult {
    return this.answer(exe, args);
  }
}

const ok = (s: string): RunResult => ({ code: 0, stdout: Buffer.from(s) });
const ENV = { SystemRoot: 'C:\\Windows', SystemDrive: 'C:', ProgramFiles: 'C:\\Program Files', ProgramData: 'C:\\ProgramData' };

describe('WindowsSoftwarePlatform with recorded commands', () => {
  let dir = '';
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = '';
  });

  it('kill passes pid, creation time and image to the helper, and refuses what changed since the listing', async () => {
    const image = 'C:\\Users\\bob\\Downloads\\evil.exe';
    const r = new FakeRunner([
      [/proclist\.exe list$/, ok(listing([[700, 600, '123', image, 'PC\\bob']]))],
      [/proclist\.exe kill 700 123 /, { code: 0, stdout: Buffer.from('') }],
    ]);
    const p = new WindowsSoftwarePlatform({ env: ENV, runner: r, helper: 'C:\\Sekimori\\sekimori-proclist.exe', pid: 1 });
    await p.listProcesses();
    expect(p.processOwner(700)).toEqual({ uid: null, user: 'PC\\bob' });
    expect(p.kill(700, image, null)).toBe('killed');
    expect(r.calls).toContain(`C:\\Sekimori\\sekimori-proclist.exe kill 700 123 ${h(image)}`);
    expect(p.kill(700, 'C:\\other.exe', null)).toBe('changed'); // not what was judged
    expect(p.kill(701, image, null)).toBe('gone');
    expect(r.calls.filter((c) => c.includes(' kill ')).length).toBe(1);
  });

  it('protectedPids before any listing takes one, so the parents of the agent are known at start', () => {
    const r = new FakeRunner([[/list$/, ok(listing([[300, 200, '30', 'C:\\S\\sekimori-agent.exe', null], [200, 4, '20', 'C:\\S\\sekimori-service.exe', null]]))]]);
    const p = new WindowsSoftwarePlatform({ env: ENV, runner: r, helper: 'h.exe', pid: 300 });
    expect([...p.protectedPids()].sort((a, b) => a - b)).toEqual([0, 4, 200, 300]);
    const failing = new WindowsSoftwarePlatform({ env: ENV, runner: new FakeRunner([]), helper: 'h.exe', pid: 300 });
    expect([...failing.protectedPids()].sort((a, b) => a - b)).toEqual([0, 4, 300]);
  });

  it('a failing helper kills nothing and reports failed', async () => {
    const r = new FakeRunner([
      [/list$/, ok(listing([[700, 600, '123', 'C:\\x.exe', null]]))],
      [/ kill /, { code: 5, stdout: Buffer.from('') }],
    ]);
    const p = new WindowsSoftwarePlatform({ env: ENV, runner: r, helper: 'helper.exe', pid: 1 });
    await p.listProcesses();
    expect(p.kill(700, 'C:\\x.exe', null)).toBe('failed');
  });

  it('watchProcesses: one long-lived helper, new processes once per snapshot, restarted when its output does not add up', async () => {
    const r = new FakeRunner([]);
    const p = new WindowsSoftwarePlatform({ env: ENV, runner: r, helper: 'C:\\S\\sekimori-proclist.exe', pid: 1 });
    const seen: string[] = [];
    let restarted!: () => void;
    const second = new Promise<void>((res) => (restarted = res));
    r.onStart = (hp) => {
      if (r.helpers.length === 1) {
        hp.emit('P 10 1 1 ' + h('C:\\a.exe') + ' -\nP 4 0 0 - -\n'); // not complete yet: nothing reported
        expect(seen).toEqual([]);
        hp.emit('T 2\nP 11 1 2 ' + h('C:\\b.exe') + ' -\nG 10 1\nT 2\n');
        // the agent's own one-shot lister (its child, the helper's path in another case): never reported
        hp.emit('P 12 1 3 ' + h('c:\\s\\SEKIMORI-PROCLIST.EXE') + ' -\nT 3\n');
        hp.emit('G 99 1\n'); // a process it never announced: desync → restart
      } else {
        hp.emit('P 11 1 2 ' + h('C:\\b.exe') + ' -\nT 1\n');
        restarted();
      }
    };
    const w = p.watchProcesses({ intervalMs: 250, onExec: (x) => seen.push(`${x.pid} ${x.exeLink}`) });
    await second;
    w.stop();
    expect(seen).toEqual(['10 C:\\a.exe', '11 C:\\b.exe', '11 C:\\b.exe']); // after a restart everything running is judged again
    expect(r.calls[0]).toBe('C:\\S\\sekimori-proclist.exe watch 250');
    expect(r.helpers[0]!.stopped).toBe(true);
    expect(r.helpers[1]!.stopped).toBe(true);
    expect(w.ticks).toBe(4);
  });

  it('installed(): both machine views and loaded user hives; a missing WOW key is no error, an unreadable machine key is', async () => {
    const SID = 'S-1-5-21-1-2-3-1001';
    const U = 'HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall';
    const answers: [RegExp, RunResult][] = [
      [/reg\.exe query HKU$/, ok(`\r\nHKEY_USERS\\.DEFAULT\r\nHKEY_USERS\\${SID}\r\nHKEY_USERS\\${SID}_Classes\r\n`)],
      [/query HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall \/s/, ok(`\r\n${U}\r\n\r\n${U}\\App\r\n    DisplayName    REG_SZ    App\r\n    DisplayVersion    REG_SZ    1.0\r\n`)],
      [/query HKLM\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion \/reg:64$/, ok(`\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\r\n`)],
      [new RegExp(`query HKU\\\\${SID}\\\\SOFTWARE.*Uninstall /s`), ok(`\r\nHKEY_USERS\\${SID}\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\Tool\r\n    DisplayName    REG_SZ    Tool\r\n`)],
    ];
    const r = new FakeRunner(answers);
    const p = new WindowsSoftwarePlatform({ env: ENV, runner: r, helper: 'h.exe', pid: 1 });
    const inv = await p.installed(defaultSoftwarePolicy()).read();
    expect(Object.fromEntries(inv)).toEqual({
      'HKLM64\\APP': { name: 'App', version: '1.0', arch: 'x64' },
      [`HKU\\${SID}\\TOOL`]: { name: 'Tool', version: '', arch: '' },
    });
    expect(r.calls.every((c) => c.startsWith('C:\\Windows\\System32\\reg.exe '))).toBe(true);
    // The 64-bit key unreadable while it exists: an error, not "everything was removed".
    const broken = new FakeRunner([answers[0]!, [/CurrentVersion \/reg:64$/, ok(`\r\n${U}\r\n`)]]);
    await expect(new WindowsSoftwarePlatform({ env: ENV, runner: broken, helper: 'h.exe', pid: 1 }).installed(defaultSoftwarePolicy()).read()).rejects.toThrow(/failed/);
  });

  it('watchedRoots: profiles from ProfileList, redirected Downloads of a loaded hive', () => {
    const SID = 'S-1-5-21-7-7-7-1001';
    const PL = 'HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\ProfileList';
    const r = new FakeRunner([
      [/query HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\ProfileList \/s/, ok(`\r\n${PL}\r\n\r\n${PL}\\${SID}\r\n    ProfileImagePath    REG_EXPAND_SZ    %SystemDrive%\\Users\\yamada\r\n`)],
      [/query HKU$/, ok(`\r\nHKEY_USERS\\${SID}\r\n`)],
      [/User Shell Folders \/s/, ok(`\r\nHKEY_USERS\\${SID}\\Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\User Shell Folders\r\n    {374DE290-123F-4565-9164-39C4925E467B}    REG_EXPAND_SZ    E:\\Downloads\r\n`)],
    ]);
    const p = new WindowsSoftwarePlatform({ env: ENV, runner: r, helper: 'h.exe', pid: 1 });
    const roots = p.watchedRoots(defaultSoftwarePolicy());
    expect(roots).toEqual(expect.arrayContaining(['C:\\Program Files', 'C:\\ProgramData', 'C:\\Users\\yamada\\Downloads', 'E:\\Downloads', 'C:\\Users\\yamada\\AppData\\Local']));
    expect(p.rootsChanged()).toBe(false);
  });

  it('judging Windows paths with decide.ts through the platform', () => {
    const p = new WindowsSoftwarePlatform({ env: ENV, runner: new FakeRunner([]), helper: 'h.exe', pid: 1 });
    const sha = 'a'.repeat(64);
    const policy: SoftwarePolicy = {
      ...defaultSoftwarePolicy(),
      rules: [
        { kind: 'path', action: 'allow', prefix: '/C:/Program Files/Vendor' },
        { kind: 'path', action: 'allow', prefix: '/usr/bin' },
        { kind: 'path', action: 'block', prefix: '/C:/Program Files/Vendor/bad' },
      ],
      baseline: { id: 'b', digest: sha, host: 'ref', approvedBy: 'a', approvedAt: 'x', packages: [], files: [{ path: '/C:/Tools/t.exe', sha256: sha }] },
    };
    const c = compilePolicy(p.compilable(policy));
    expect(c.rules.length).toBe(2); // the POSIX rule cannot match anything here
    const allowed = (raw: string) => judge(c, { path: p.judgedPath(raw), sha256: sha }).allowed;
    expect(allowed('C:\\PROGRAM FILES\\vendor\\x.exe')).toBe(true);
    expect(allowed('C:\\Program Files\\Vendor\\bad\\x.exe')).toBe(false);
    expect(allowed('c:\\tools\\T.EXE')).toBe(true);
    expect(allowed('C:\\Tools\\t.exe:payload')).toBe(false);
    expect(allowed('C:\\PROGRA~1\\Vendor\\x.exe')).toBe(false);
    expect(p.inScope('C:\\PROGRA~1\\x.exe', ['C:\\Program Files'])).toBe(true);
    expect(p.inScope('D:\\x.exe', ['C:\\Program Files'])).toBe(false);
  });

  it('quarantine: ACL first (SIDs, no inheritance), record before the move, ACL reset on the file; restore never overwrites', () => {
    dir = mkdtempSync(join(tmpdir(), 'sekimori-winq-'));
    const q = join(dir, 'quarantine');
    const file = join(dir, 'evil.exe');
    writeFileSync(file, 'MZ payload');
    const r = new FakeRunner([[/icacls\.exe /, ok('')]]);
    const p = new WindowsSoftwarePlatform({ env: ENV, runner: r, helper: 'h.exe', pid: 1 });
    const rec = p.quarantine(q, file, 'b'.repeat(64), 'default deny');
    expect(existsSync(file)).toBe(false);
    expect(readFileSync(join(q, `${rec.id}.bin`), 'utf8')).toBe('MZ payload');
    expect(JSON.parse(readFileSync(join(q, `${rec.id}.json`), 'utf8'))).toMatchObject({ originalPath: file, sha256: 'b'.repeat(64), size: 10 });
    expect(r.calls[0]).toBe(`C:\\Windows\\System32\\icacls.exe ${quarantineAclArgs(q).join(' ')}`);
    expect(quarantineAclArgs(q)).toEqual([q, '/inheritance:r', '/grant:r', '*S-1-5-18:(OI)(CI)F', '*S-1-5-32-544:(OI)(CI)F', '/q']);
    expect(r.calls[1]).toBe(`C:\\Windows\\System32\\icacls.exe ${join(q, `${rec.id}.bin`)} /reset /q`);
    expect(p.listQuarantine(q).map((x) => x.id)).toEqual([rec.id]);
    writeFileSync(file, 'someone else');
    expect(() => p.restore(q, rec.id)).toThrow(/exists/);
    rmSync(file);
    expect(() => p.restore(q, '../../etc/passwd')).toThrow(/bad quarantine id/);
    p.restore(q, rec.id);
    expect(readFileSync(file, 'utf8')).toBe('MZ payload');
    expect(readdirSync(q)).toEqual([]);
  });

  it('quarantine across volumes: copy without overwriting, then delete; a failed move leaves no record', () => {
    dir = mkdtempSync(join(tmpdir(), 'sekimori-winq-'));
    const shm = mkdtempSync('/dev/shm/sekimori-winq-'); // tmpfs: another file system than /tmp here
    try {
      const file = join(shm, 'evil.exe');
      writeFileSync(file, 'MZ other volume');
      const p = new WindowsSoftwarePlatform({ env: ENV, runner: new FakeRunner([[/icacls/, ok('')]]), helper: 'h.exe', pid: 1 });
      const q = join(dir, 'q');
      const rec = p.quarantine(q, file, 'd'.repeat(64), 'r');
      expect(existsSync(file)).toBe(false);
      expect(readFileSync(join(q, `${rec.id}.bin`), 'utf8')).toBe('MZ other volume');
      p.restore(q, rec.id); // back across the volumes too
      expect(readFileSync(file, 'utf8')).toBe('MZ other volume');
      let undone = 0;
      expect(() => moveAcrossVolumes(join(shm, 'missing.exe'), join(dir, 'x.bin'), () => undone++)).toThrow();
      expect(undone).toBe(1);
      expect(existsSync(join(dir, 'x.bin'))).toBe(false);
    } finally {
      rmSync(shm, { recursive: true, force: true });
    }
  });

  it('quarantine fails closed when the folder cannot be restricted (the file stays, nothing recorded)', () => {
    dir = mkdtempSync(join(tmpdir(), 'sekimori-winq-'));
    const q = join(dir, 'quarantine');
    const file = join(dir, 'evil.exe');
    writeFileSync(file, 'MZ');
    const p = new WindowsSoftwarePlatform({ env: ENV, runner: new FakeRunner([[/icacls/, { code: 1332, stdout: Buffer.from('') }]]), helper: 'h.exe', pid: 1 });
    expect(() => p.quarantine(q, file, 'c'.repeat(64), 'r')).toThrow(/icacls/);
    expect(existsSync(file)).toBe(true);
    expect(readdirSync(q)).toEqual([]);
  });
});
