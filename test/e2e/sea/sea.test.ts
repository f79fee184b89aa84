/**
 * The single executables (scripts/package.sh) on their own: built once, then only
 * dist/sea/sekimori-console and dist/sea/sekimori-agent run, in a plain environment whose PATH
 * holds no node, from a scratch working folder. A console is initialised and served on
 * loopback, an agent enrolls (monitor-only, on an empty sysfs of its own) and runs, and its
 * `agent.started` must reach the console's event log. Both stop with SIGTERM and leave nothing
 * of their embedded files behind.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, waitFor, type ConsoleEventJson } from '../../integration/harness.js';

const CONSOLE_EXE = join(ROOT, 'dist/sea/sekimori-console');
const AGENT_EXE = join(ROOT, 'dist/sea/sekimori-agent');
const linuxX64 = process.platform === 'linux' && process.arch === 'x64';

const work = mkdtempSync(join(tmpdir(), 'sekimori-sea-test-'));
const dataDir = join(work, 'console-data');
const stateDir = join(work, 'agent-state');
const exeTmp = join(work, 'tmp'); // TMPDIR of both programs: where their embedded files go
const procs: ChildProcess[] = [];

/** A PATH with every command of /usr/bin and /usr/sbin except Node itself. */
function pathWithoutNode(): string {
  const bin = join(work, 'bin');
  mkdirSync(bin);
  for (const dir of ['/usr/sbin', '/usr/bin']) {
    for (const name of readdirSync(dir)) {
      if (/^(node|nodejs|npm|npx|corepack)$/.test(name)) continue;
      try {
        symlinkSync(join(dir, name), join(bin, name));
      } catch {
        // same name in both: the first one wins, as on a PATH
      }
    }
  }
  return bin;
}

let env: NodeJS.ProcessEnv = {};

function run(exe: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(exe, args, { cwd: work, env: { ...env, ...extraEnv }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function json<T>(exe: string, args: string[]): T {
  const r = run(exe, args);
  if (r.code !== 0) throw new Error(`${exe} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

function start(exe: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): { proc: ChildProcess; output: () => string } {
  const proc = spawn(exe, args, { cwd: work, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(proc);
  let buf = '';
  proc.stdout?.on('data', (c: Buffer) => (buf += c.toString()));
  proc.stderr?.on('data', (c: Buffer) => (buf += c.toString()));
  return { proc, output: () => buf };
}

async function stop(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode === null && proc.signalCode === null) {
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
  return proc.exitCode;
}

function get(url: string, ca: Buffer): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, timeout: 15_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(!linuxX64)('single executables (Node SEA, linux-x64)', () => {
  let consoleUrl = '';
  let consoleProc: ReturnType<typeof start>;
  let agentProc: ReturnType<typeof start>;
  let agentId = '';

  beforeAll(() => {
    const r = spawnSync(join(ROOT, 'scripts/n24'), ['scripts/package.sh'], { cwd: ROOT, encoding: 'utf8', timeout: 280_000, env: { ...process.env, SEKIMORI_PACKAGE_WINDOWS: '0' } }); // the wine tier builds the Windows part
    if (r.status !== 0) throw new Error(`scripts/package.sh exited ${r.status}: ${r.stdout}${r.stderr}`);
    mkdirSync(exeTmp);
    env = { PATH: pathWithoutNode(), HOME: work, TMPDIR: exeTmp, LANG: 'C.UTF-8' };
  }, 300_000);

  afterAll(async () => {
    for (const p of procs) await stop(p);
    rmSync(work, { recursive: true, force: true });
  });

  it('runs where there is no node on PATH', () => {
    expect(spawnSync('sh', ['-c', 'command -v node || command -v nodejs'], { env }).status).not.toBe(0);
    const v = run(CONSOLE_EXE, ['--help']);
    expect(v.stdout + v.stderr).toContain('sekimori-console');
  });

  it('console: init, serve on loopback, static files from the executable', async () => {
    const init = run(CONSOLE_EXE, ['init', '--data', dataDir, '--organisation', 'テスト市']);
    expect(init.code, init.stderr).toBe(0);
    consoleProc = start(CONSOLE_EXE, ['serve', '--data', dataDir, '--listen', '127.0.0.1:0']);
    const m = await waitFor('console to listen', () => /https:\/\/127\.0\.0\.1:(\d+)/.exec(consoleProc.output()) ?? (consoleProc.proc.exitCode !== null ? Promise.reject(new Error(consoleProc.output())) : null));
    consoleUrl = m[0];
    const css = await get(`${consoleUrl}/static/console.css`, readFileSync(join(dataDir, 'ca.pem')));
    expect(css.status).toBe(200);
    expect(css.type).toContain('text/css');
    expect(css.body).toBe(readFileSync(join(ROOT, 'dist/console/web/static/console.css'), 'utf8'));
  });

  it('agent: enroll (monitor-only) and run; agent.started reaches the console', async () => {
    const tok = json<{ token: string; caFingerprint: string }>(CONSOLE_EXE, ['enroll-token', '--data', dataDir, '--json']);
    agentId = json<{ agentId: string }>(AGENT_EXE, ['enroll', '--console', consoleUrl, '--token', tok.token, '--ca-fingerprint', tok.caFingerprint, '--state', stateDir, '--monitor', '--json']).agentId;
    expect(agentId).toBeTruthy();
    // Never the host's USB: the agent's enforcer looks at an empty sysfs of its own.
    const sysRoot = join(work, 'empty-sys');
    mkdirSync(sysRoot);
    agentProc = start(AGENT_EXE, ['run', '--state', stateDir], { SEKIMORI_USB_SYSROOT: sysRoot });
    await waitFor('agent to run', () => /running \(state/.test(agentProc.output()) || (agentProc.proc.exitCode !== null ? Promise.reject(new Error(agentProc.output())) : false));
    const started = await waitFor('agent.started at the console', () =>
      json<ConsoleEventJson[]>(CONSOLE_EXE, ['events', '--data', dataDir, '--json', '--type', 'agent.started']).find((e) => e.agentId === agentId),
    );
    expect(started.type).toBe('agent.started');
    // The upload was checked by the executable's batch-check worker thread: its code is in the
    // executable (extracted with the other embedded files), and a worker that fails says so in the log.
    const workerCode = readdirSync(exeTmp).map((d) => join(exeTmp, d, 'console/backbone/batch-check-worker.js'));
    expect(workerCode.some((f) => existsSync(f))).toBe(true);
    expect(consoleProc.output()).not.toContain('batch check');
    // Both addons were loaded from the files the executable wrote under its TMPDIR (libusb
    // hotplug itself may be unavailable in a container; that is a different message).
    expect(agentProc.output()).not.toContain('node-usb hotplug unavailable');
    const maps = readFileSync(`/proc/${agentProc.proc.pid}/maps`, 'utf8');
    expect(maps).toMatch(new RegExp(`${exeTmp}/sekimori-sea-[^/]+/node_modules/better-sqlite3/prebuilds/linux-x64\\.node`));
    expect(maps).toMatch(new RegExp(`${exeTmp}/sekimori-sea-[^/]+/node_modules/@node-usb/usb-linux-x64-gnu/usb\\.linux-x64-gnu\\.node`));
  });

  it('both stop on SIGTERM and remove their embedded files', async () => {
    expect(readdirSync(exeTmp).length).toBeGreaterThan(0);
    expect(await stop(agentProc.proc)).toBe(0);
    expect(await stop(consoleProc.proc)).toBe(0);
    expect(readdirSync(exeTmp)).toEqual([]);
  });
});
