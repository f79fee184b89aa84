/**
 * The pre-exec tier's stage: a tmpfs mounted in a private mount namespace (`unshare -m`) that only
 * this test's processes enter (`nsenter -m`). The helper marks only that tmpfs, so no process of
 * this machine is ever judged. Files are put in and read back through /proc/<holder>/root.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../../..');

/** Builds the helper from its source into `dir` (the tier tests the source, not a stale dist/). */
export function buildHelper(dir: string): { path: string | null; error: string } {
  const out = join(dir, 'sekimori-exec-guard');
  const r = spawnSync('make', ['-s', '-C', join(ROOT, 'installers/linux/exec-guard'), `SRC=${join(ROOT, 'agent/software/linux/preexec/sekimori-exec-guard.c')}`, `OUT=${out}`], { encoding: 'utf8', timeout: 120_000 });
  return r.status === 0 ? { path: out, error: '' } : { path: null, error: (r.stderr || r.error?.message || 'make failed').trim() };
}

/**
 * Whether this kernel gives fanotify permission events: the helper marks a tmpfs in a throwaway
 * namespace and must say READY (its stdin is closed, so it exits at once). '' when it does.
 */
export function probeFanotify(helper: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'sekimori-preexec-probe-'));
  const r = spawnSync(
    'unshare',
    ['-m', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs sekimori-probe "$1" && exec "$0" --mark "$1" --orphan-grace-ms 0 </dev/null', helper, dir],
    { encoding: 'utf8', timeout: 20_000 },
  );
  rmSync(dir, { recursive: true, force: true });
  const first = (r.stdout ?? '').split('\n')[0] ?? '';
  if (first.startsWith('READY ')) return '';
  return `${first || r.stderr?.trim() || r.error?.message || 'no answer'} (fanotify permission events need root and a kernel with CONFIG_FANOTIFY_ACCESS_PERMISSIONS)`;
}

export interface Stage {
  /** The mount point (the same path inside and outside; only inside is it the tmpfs). */
  mnt: string;
  holder: ChildProcess;
  /** The same path as seen from this process (through the holder's root). */
  outside(p: string): string;
  /** nsenter prefix that runs a command inside the namespace. */
  prefix: string[];
  close(): void;
}

/** Mounts the tmpfs in a new private mount namespace held by a sleeping process. Bounded wait. */
export async function stage(work: string): Promise<Stage> {
  const mnt = join(work, 'mnt');
  mkdirSync(mnt, { recursive: true });
  const holder = spawn('unshare', ['-m', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs -o size=64m,mode=0755 sekimori-preexec "$0" && echo mounted && exec sleep 3600', mnt], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((res, rej) => {
    const t = setTimeout(() => rej(new Error('namespace holder did not mount the tmpfs within 10 s')), 10_000);
    holder.stdout!.on('data', (b: Buffer) => {
      if (b.toString().includes('mounted')) {
        clearTimeout(t);
        res();
      }
    });
    holder.once('exit', (code) => {
      clearTimeout(t);
      rej(new Error(`namespace holder exited (${code})`));
    });
  });
  const pid = holder.pid!;
  return {
    mnt,
    holder,
    outside: (p) => `/proc/${pid}/root${p}`,
    prefix: ['nsenter', '-t', String(pid), '-m', '--'],
    /** Ends the namespace (its tmpfs goes with it) and removes `work`. */
    close: () => {
      holder.kill('SIGKILL');
      rmSync(work, { recursive: true, force: true });
    },
  };
}

export interface RunResult {
  /** The shell's $? for the program: 126 when the exec was refused, 128+N when killed by signal N. */
  rc: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `path` inside the namespace as a grandchild: sh (not on the tmpfs) forks and execs it, so
 * the exec is a stranger's (the helper allows the agent's own children without asking).
 */
export function runIn(s: Stage, path: string, args: string[] = [], timeoutMs = 20_000): { child: ChildProcess; done: Promise<RunResult> } {
  const child = spawn(s.prefix[0]!, [...s.prefix.slice(1), 'sh', '-c', '"$0" "$@"; echo "rc=$?"', path, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LC_ALL: 'C' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const done = new Promise<RunResult>((res) => {
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    // 'close', not 'exit': only then has all of stdout (the rc line) been read.
    child.once('close', () => {
      clearTimeout(t);
      const m = stdout.match(/rc=(\d+)\s*$/);
      res({ rc: m ? Number(m[1]) : null, stdout, stderr });
    });
  });
  return { child, done };
}

export function workDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `sekimori-${prefix}-`));
}
