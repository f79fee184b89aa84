/**
 * bench/mfa: TOTP verification latency (p50/p99), measured on this machine:
 *   - core:     decide() in-process (the pure decision both sides run)
 *   - console:  agent socket → agent → console (mutual TLS) → SQLite → back  (online, the normal path)
 *   - local:    agent socket → agent offline cache (console stopped, policy offlineAllowed)
 *   - pam:      pamtester → Linux-PAM → pam_sekimori.so → agent → console (when run as root with pamtester)
 * Every measured attempt is a real, successful verification of a fresh code (one per user, so no
 * replay), plus the same number of wrong-code rejections.
 *   npm run build && scripts/n24 node dist/bench/mfa.js [--users 100]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { decide } from '../protocol/mfa/decide.js';
import { base32Decode, hotp, timeStep } from '../protocol/mfa/otp.js';
import { localRequest } from '../agent/local-api.js';
import { agentPaths } from '../agent/state.js';
import { openConsole } from '../console/core/context.js';
import { assign, confirmUser, enrollUser } from '../console/mfa/store.js';
import { defaultPolicyBody } from '../protocol/policy.js';

const root = resolve(import.meta.dirname, '../..');
const { values } = parseArgs({ options: { users: { type: 'string', default: '100' } } });
const N = Math.max(10, Math.min(1000, Number(values.users)));

function cli(bin: 'console' | 'agent', args: string[]): string {
  const r = spawnSync(process.execPath, [join(root, `bin/sekimori-${bin}.js`), ...args], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${bin} ${args[0]}: ${r.stderr}`);
  return r.stdout;
}

async function until<T>(what: string, f: () => Promise<T | null> | T | null, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const v = await f();
      if (v) return v;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out: ${what}`);
}

function startProc(args: string[], ready: RegExp): Promise<{ proc: ChildProcess; match: RegExpExecArray }> {
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return until('process ready', () => {
    if (proc.exitCode !== null) throw new Error(out);
    const m = ready.exec(out);
    return m ? { proc, match: m } : null;
  });
}

async function stopProc(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  await new Promise<void>((r) => {
    const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
    p.once('exit', () => (clearTimeout(t), r()));
    p.kill('SIGTERM');
  });
}

function stats(name: string, ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return `${name.padEnd(40)} n=${String(s.length).padStart(4)}  p50=${q(0.5).toFixed(2).padStart(7)} ms  p99=${q(0.99).toFixed(2).padStart(7)} ms  mean=${mean.toFixed(2).padStart(7)} ms`;
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'sekimori-bench-mfa-'));
  const data = join(tmp, 'console');
  const state = join(tmp, 'agent');
  const procs: ChildProcess[] = [];
  const lines: string[] = [];
  try {
    cli('console', ['init', '--data', data, '--organisation', 'ベンチ市']);
    // One terminal verifying 100 staff in a row is more than a real terminal sends (the console's
    // per-terminal request limit, 120 then 20/s): the bench measures latency, so it raises that limit.
    const configPath = join(data, 'config.json');
    writeFileSync(configPath, JSON.stringify({ ...(JSON.parse(readFileSync(configPath, 'utf8')) as object), limits: { agentRequests: { burst: 100_000, perSecond: 10_000 } } }));
    const ctx = openConsole(data);
    const body = defaultPolicyBody();
    ctx.publishPolicy({ ...body, mfa: { ...body.mfa, offlineAllowed: true, maxFailures: 100 } }, 'bench');

    const listen = async (port = '0') => {
      const c = await startProc([join(root, 'bin/sekimori-console.js'), 'serve', '--data', data, '--listen', `127.0.0.1:${port}`], /https:\/\/127\.0\.0\.1:(\d+)/);
      procs.push(c.proc);
      return c;
    };
    let con = await listen();
    const port = con.match[1]!;
    const tok = JSON.parse(cli('console', ['enroll-token', '--data', data, '--json'])) as { token: string; caFingerprint: string };
    const { agentId } = JSON.parse(
      cli('agent', ['enroll', '--console', `https://127.0.0.1:${port}`, '--token', tok.token, '--ca-fingerprint', tok.caFingerprint, '--state', state, '--json', '--monitor']),
    ) as { agentId: string };

    // Users: half verified online, half assigned to the terminal for the offline run.
    const now = Date.now();
    const keys = new Map<string, Buffer>();
    for (let i = 0; i < 2 * N; i++) {
      const user = `bench${i}`;
      const e = enrollUser(ctx, user, 'bench', { recoveryCount: 1 });
      const key = base32Decode(e.secret)!;
      confirmUser(ctx, user, hotp(key, timeStep(now) - 1), 'bench', now);
      keys.set(user, key);
      if (i >= N) assign(ctx, user, agentId, 'bench');
    }
    ctx.close();

    // core: the pure decision alone.
    const core: number[] = [];
    const st = { status: 'active' as const, key: keys.get('bench0')!, params: { algorithm: 'SHA1' as const, digits: 6 as const, period: 30 }, lastStep: -1, failures: 0, lockedUntil: 0, recovery: [] };
    for (let i = 0; i < 2000; i++) {
      const t = Date.now();
      const c = hotp(st.key, timeStep(t));
      const t0 = process.hrtime.bigint();
      decide(st, { user: 'bench0', code: c, nowMs: t, policy: { windowSteps: 1, maxFailures: 5, lockoutSeconds: 300 } });
      core.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    lines.push(stats('core decide() (accept)', core));

    const flags = JSON.parse(readFileSync(join(root, 'agent/runtime-flags.json'), 'utf8')) as string[]; // as packaged
    const agent = await startProc([...flags, join(root, 'bin/sekimori-agent.js'), 'run', '--state', state], /running \(state/);
    procs.push(agent.proc);
    const sock = agentPaths(state).socket;
    await until('offline cache', async () => {
      const r = await localRequest(sock, 'POST', '/mfa/sync');
      return r.status === 200 && (r.body as { cachedUsers: number }).cachedUsers === N ? true : null;
    });

    const measure = async (users: string[], wrong: boolean): Promise<number[]> => {
      const out: number[] = [];
      for (const u of users) {
        const code = wrong ? '000000' : hotp(keys.get(u)!, timeStep(Date.now()));
        const t0 = process.hrtime.bigint();
        const r = await localRequest(sock, 'POST', '/mfa/verify', { user: u, code });
        out.push(Number(process.hrtime.bigint() - t0) / 1e6);
        const accepted = (r.body as { result: string }).result === 'accept';
        if (accepted === wrong) throw new Error(`unexpected answer ${JSON.stringify(r.body)} for ${u}`);
      }
      return out;
    };
    const online = Array.from({ length: N }, (_, i) => `bench${i}`);
    const offline = Array.from({ length: N }, (_, i) => `bench${N + i}`);
    lines.push(stats('console: accept (socket→agent→console)', await measure(online, false)));
    // The console limits rejected attempts per terminal (console/mfa/limits.ts: a burst of 20, then
    // 1 per 5 s): measure the rejects within that limit, so no sample is a 429.
    lines.push(stats('console: reject wrong code', await measure(online.slice(0, 20), true)));

    // pam: the whole stack, if we can (root + pamtester).
    const module = join(root, 'dist/pam/pam_sekimori.so');
    const canPam = process.getuid?.() === 0 && existsSync(module) && spawnSync('sh', ['-c', 'command -v pamtester'], { stdio: 'ignore' }).status === 0;
    const service = `sekimori-test-bench-${process.pid}`;
    if (canPam) {
      writeFileSync(`/etc/pam.d/${service}`, `auth required pam_permit.so\nauth required ${module} socket=${sock}\n`);
      try {
        const pamMs: number[] = [];
        // A second round for the online users needs the next time step.
        await new Promise((r) => setTimeout(r, (30 - (Math.floor(Date.now() / 1000) % 30)) * 1000 + 200));
        for (const u of online.slice(0, Math.min(N, 50))) {
          const code = hotp(keys.get(u)!, timeStep(Date.now()));
          const t0 = process.hrtime.bigint();
          const r = spawnSync('pamtester', [service, u, 'authenticate'], { input: code + '\n', stdio: ['pipe', 'ignore', 'ignore'] });
          pamMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
          if (r.status !== 0) throw new Error(`pamtester refused ${u}`);
        }
        lines.push(stats('pam: pamtester (process spawn incl.)', pamMs));
      } finally {
        rmSync(`/etc/pam.d/${service}`, { force: true });
      }
    } else lines.push('pam: skipped (needs root, pamtester and dist/pam/pam_sekimori.so)');

    await stopProc(con.proc);
    lines.push(stats('local: accept (offline cache)', await measure(offline, false)));
    lines.push(stats('local: reject wrong code (offline)', await measure(offline, true)));
    con = await listen(port); // the agent reconciles its offline use with the console again
  } finally {
    for (const p of procs.reverse()) await stopProc(p);
    rmSync(tmp, { recursive: true, force: true });
  }
  process.stdout.write(`bench/mfa — ${N} users per path, ${new Date().toISOString()}\n${lines.join('\n')}\n`);
}

await main();
