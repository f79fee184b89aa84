/**
 * A desktop session for the notice tiers, as an ordinary user would have it: a dbus-daemon
 * session bus run as that user (root is refused on it, as on a real user's bus). Every start is
 * bounded: a child that does not say it is ready in time is killed and the test fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { waitFor } from '../../integration/harness.js';

export const NOBODY = 65534;

/** Starts a child and waits (bounded) for an output line matching `ready`. */
export async function startUntil(
  cmd: string,
  args: string[],
  opts: { uid?: number; gid?: number; env: NodeJS.ProcessEnv },
  ready: RegExp,
  timeoutMs = 30_000,
): Promise<{ proc: ChildProcess; line: string; output: () => string }> {
  const proc = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  try {
    const line = await waitFor(
      `${cmd} ready`,
      () => {
        if (proc.exitCode !== null) throw new Error(`${cmd} exited ${proc.exitCode}: ${out}`);
        return out.split('\n').find((l) => ready.test(l));
      },
      timeoutMs,
      50,
    );
    return { proc, line, output: () => out };
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
}

/** A session bus owned by `uid` with its socket in `dir` (which that user must be able to write). */
export async function startSessionBus(dir: string, uid = NOBODY): Promise<{ proc: ChildProcess; address: string }> {
  const r = await startUntil('dbus-daemon', ['--session', `--address=unix:path=${join(dir, 'bus')}`, '--print-address', '--nofork'], { uid, gid: uid, env: { PATH: '/usr/bin:/bin', HOME: dir } }, /^unix:path=/);
  return { proc: r.proc, address: r.line.trim() };
}
