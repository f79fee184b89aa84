/**
 * Real processes on loopback for integration tests: a console (`sekimori-console serve`) on a
 * temp data folder and agents (`sekimori-agent run`) on temp state folders, all from the built
 * bin/ entry points (npm test builds first). Every wait is bounded.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Outbox } from '../../agent/report/outbox.js';
import { agentPaths } from '../../agent/state.js';

export const ROOT = resolve(import.meta.dirname, '../..');
const CONSOLE_BIN = join(ROOT, 'bin/sekimori-console.js');
const AGENT_BIN = join(ROOT, 'bin/sekimori-agent.js');

/** How long a console or agent may take to start: generous, since a loaded CI machine starts Node slowly (seen: > 20 s at load 20). */
const START_TIMEOUT_MS = 60_000;

export async function waitFor<T>(what: string, f: () => T | Promise<T>, timeoutMs = 20_000, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await f();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `sekimori-${prefix}-`));
}

export function runCli(bin: 'console' | 'agent', args: string[], input?: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin === 'console' ? CONSOLE_BIN : AGENT_BIN, ...args], { encoding: 'utf8', input, timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function cliJson<T>(bin: 'console' | 'agent', args: string[]): T {
  const r = runCli(bin, args);
  if (r.code !== 0) throw new Error(`${bin} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

function collect(proc: ChildProcess): { text: () => string } {
  let buf = '';
  proc.stdout?.on('data', (c: Buffer) => (buf += c.toString()));
  proc.stderr?.on('data', (c: Buffer) => (buf += c.toString()));
  return { text: () => buf };
}

async function exited(proc: ChildProcess, timeoutMs: number): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise<void>((resolveExit) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
    }, timeoutMs);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolveExit();
    });
  });
}

export interface TestConsole {
  dataDir: string;
  url: string;
  port: number;
  caFingerprint: string;
  proc: ChildProcess;
  output(): string;
  /** Graceful stop (SIGTERM). */
  stop(): Promise<void>;
  kill9(): Promise<void>;
  /** Starts again on the same port and data folder. */
  start(): Promise<void>;
  cli(args: string[]): { code: number; stdout: string; stderr: string };
  json<T>(args: string[]): T;
  enrollToken(ttl?: string): { token: string; caFingerprint: string; expiresAt: string };
  events(filter?: string[]): ConsoleEventJson[];
  cleanup(): Promise<void>;
}

export interface ConsoleEventJson {
  id: string;
  agentId: string;
  seq: number;
  ts: string;
  type: string;
  severity: string;
  user: string | null;
  data: Record<string, unknown>;
  hash: string;
  chain: string;
  terminalId: string;
  /** The agent's claimed time when the console stored its receipt time as ts instead (issue 10). */
  agentTs?: string | null;
}

/** `config` is merged into DATA/config.json before the console starts (e.g. `{ limits: … }`). */
export async function startConsole(opts: { sans?: string[]; policy?: object; config?: Record<string, unknown> } = {}): Promise<TestConsole> {
  const dataDir = join(tempDir('console'), 'data');
  const init = runCli('console', ['init', '--data', dataDir, '--organisation', 'テスト市', ...(opts.sans ?? []).flatMap((s) => ['--san', s])]);
  if (init.code !== 0) throw new Error(`init failed: ${init.stderr}`);
  let port = 0;
  const c: TestConsole = {
    dataDir,
    url: '',
    port: 0,
    caFingerprint: '',
    proc: undefined as unknown as ChildProcess,
    output: () => '',
    async start() {
      const proc = spawn(process.execPath, [CONSOLE_BIN, 'serve', '--data', dataDir, '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
      const out = collect(proc);
      c.proc = proc;
      c.output = out.text;
      const m = await waitFor('console to listen', () => /https:\/\/127\.0\.0\.1:(\d+)/.exec(out.text()) ?? (proc.exitCode !== null ? Promise.reject(new Error(out.text())) : null), START_TIMEOUT_MS);
      port = Number(m[1]);
      c.port = port;
      c.url = `https://127.0.0.1:${port}`;
      c.caFingerprint = /CA fingerprint: ([0-9a-f]{64})/.exec(out.text())?.[1] ?? '';
    },
    async stop() {
      c.proc.kill('SIGTERM');
      await exited(c.proc, 10_000);
    },
    async kill9() {
      c.proc.kill('SIGKILL');
      await exited(c.proc, 10_000);
    },
    cli: (args) => runCli('console', [...args, '--data', dataDir]),
    json: <T>(args: string[]) => cliJson<T>('console', [...args, '--data', dataDir, '--json']),
    enrollToken: (ttl = '1h') => cliJson('console', ['enroll-token', '--data', dataDir, '--ttl', ttl, '--json']),
    events: (filter = []) => cliJson<ConsoleEventJson[]>('console', ['events', '--data', dataDir, '--json', ...filter]),
    async cleanup() {
      if (c.proc && c.proc.exitCode === null) await c.kill9();
      rmSync(resolve(dataDir, '..'), { recursive: true, force: true });
    },
  };
  if (opts.policy) {
    const f = join(dataDir, '..', 'policy.json');
    (await import('node:fs')).writeFileSync(f, JSON.stringify(opts.policy));
    const r = runCli('console', ['policy', 'set', '--data', dataDir, '--file', f]);
    if (r.code !== 0) throw new Error(`policy set failed: ${r.stderr}`);
  }
  if (opts.config) {
    const f = join(dataDir, 'config.json');
    writeFileSync(f, JSON.stringify({ ...(JSON.parse(readFileSync(f, 'utf8')) as object), ...opts.config }, null, 2));
  }
  await c.start();
  return c;
}

/**
 * Test agents never touch this machine's real USB devices: their USB enforcer works on an empty
 * sysfs tree of their own (the real-kernel tier tests enforcement inside QEMU instead).
 */
export function testAgentEnv(stateDir: string): NodeJS.ProcessEnv {
  const sysRoot = join(stateDir, '..', 'empty-sys');
  mkdirSync(sysRoot, { recursive: true });
  return { ...process.env, SEKIMORI_USB_SYSROOT: sysRoot };
}

/** The Node flags the packaged agent runs with (agent/runtime-flags.json), so tests exercise them. */
export const AGENT_NODE_FLAGS = JSON.parse(readFileSync(join(ROOT, 'agent/runtime-flags.json'), 'utf8')) as string[];

export interface TestAgent {
  stateDir: string;
  agentId: string;
  proc: ChildProcess | null;
  output(): string;
  start(): Promise<void>;
  stop(): Promise<void>;
  kill9(): Promise<void>;
  status(): Record<string, unknown>;
  /** Appends events through the agent's own outbox code (what capabilities do). */
  append(n: number, type?: 'usb.blocked' | 'agent.error'): void;
  outbox(): Outbox;
  cleanup(): Promise<void>;
}

export async function enrollAgent(c: TestConsole, opts: { monitor?: boolean; start?: boolean } = {}): Promise<TestAgent> {
  const stateDir = join(tempDir('agent'), 'state');
  const tok = c.enrollToken();
  const args = ['enroll', '--console', c.url, '--token', tok.token, '--ca-fingerprint', tok.caFingerprint, '--state', stateDir, '--json'];
  if (opts.monitor) args.push('--monitor');
  const { agentId } = cliJson<{ agentId: string }>('agent', args);
  const a: TestAgent = {
    stateDir,
    agentId,
    proc: null,
    output: () => '',
    async start() {
      const proc = spawn(process.execPath, [...AGENT_NODE_FLAGS, AGENT_BIN, 'run', '--state', stateDir], { stdio: ['ignore', 'pipe', 'pipe'], env: testAgentEnv(stateDir) });
      const out = collect(proc);
      a.proc = proc;
      a.output = out.text;
      await waitFor('agent to run', () => /running \(state/.test(out.text()) || (proc.exitCode !== null ? Promise.reject(new Error(out.text())) : false), START_TIMEOUT_MS);
    },
    async stop() {
      if (!a.proc) return;
      a.proc.kill('SIGTERM');
      await exited(a.proc, 15_000);
    },
    async kill9() {
      if (!a.proc) return;
      a.proc.kill('SIGKILL');
      await exited(a.proc, 10_000);
    },
    status: () => cliJson<Record<string, unknown>>('agent', ['status', '--state', stateDir, '--json']),
    append(n, type = 'usb.blocked') {
      const o = new Outbox(agentPaths(stateDir).outbox, agentId);
      try {
        for (let i = 0; i < n; i++) o.append({ type, data: { test: i, product: 'USB DISK 2.0' } });
      } finally {
        o.close();
      }
    },
    outbox: () => new Outbox(agentPaths(stateDir).outbox, agentId),
    async cleanup() {
      if (a.proc && a.proc.exitCode === null) await a.kill9();
      rmSync(resolve(stateDir, '..'), { recursive: true, force: true });
    },
  };
  if (opts.start !== false) await a.start();
  return a;
}

/** A raw HTTPS request, optionally with an agent's client certificate. */
export function rawRequest(
  c: TestConsole,
  method: string,
  path: string,
  opts: { agentState?: string; body?: string | Buffer; contentType?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: string; json: () => unknown; headers: Record<string, string | string[] | undefined> }> {
  const p = opts.agentState ? agentPaths(opts.agentState) : null;
  return new Promise((resolveReq, reject) => {
    const req = request(
      `${c.url}${path}`,
      {
        method,
        ca: readFileSync(join(c.dataDir, 'ca.pem')),
        key: p ? readFileSync(p.key) : undefined,
        cert: p ? readFileSync(p.cert) : undefined,
        headers: { ...(opts.body !== undefined ? { 'content-type': opts.contentType ?? 'application/json' } : {}), ...opts.headers },
        timeout: 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolveReq({ status: res.statusCode ?? 0, body, json: () => JSON.parse(body), headers: res.headers });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(opts.body);
  });
}
