/**
 * Issue 17: an agent whose clock is hours off, for real: the agent process runs under Debian's
 * libfaketime (preloaded; it intercepts clock_gettime/time; FAKETIME_DONT_FAKE_MONOTONIC=1 keeps
 * Node's timers, which run on the monotonic clock, working). +6 h and -6 h:
 *  - mutual TLS still works both ways (certificates are valid from one day before issue);
 *  - events reach the console; an event stamped by the wrong clock keeps both clocks (agentTs);
 *  - a TOTP code valid in real time is accepted offline, also after the agent restarted while the
 *    console was away (the measured console offset is kept in STATE/clock.json); the control — the
 *    same restart without that file — refuses it.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localRequest } from '../../agent/local-api.js';
import { agentPaths } from '../../agent/state.js';
import { EncryptedCache } from '../../agent/mfa/cache.js';
import { requireTools } from '../e2e/tools.js';
import { AGENT_NODE_FLAGS, ROOT, enrollAgent, startConsole, tempDir, testAgentEnv, waitFor, type TestAgent, type TestConsole } from './harness.js';

const tools = requireTools('clock-skew', ['faketime', 'oathtool'], 'apt-get install faketime oathtool (scripts/setup.sh --test)');
const HEX = '3132333435363738393031323334353637383930';
const totpAt = (step: number) => execFileSync('oathtool', ['--totp', `--now=@${step * 30 + 1}`, HEX], { encoding: 'utf8' }).trim();
const step = () => Math.floor(Date.now() / 30_000);
const HOUR = 3_600_000;

/**
 * libfaketime itself, preloaded into the agent's own process. Not through the `faketime` wrapper:
 * it forks and waits, so a signal to the wrapper left the agent running — the "stopped" agents of
 * one step kept running beside the next and raced it for the MFA cache.
 */
function libfaketime(): string {
  const lib = tools.ok ? execFileSync('dpkg', ['-L', 'libfaketime'], { encoding: 'utf8' }).split('\n').find((l) => l.endsWith('/libfaketime.so.1')) : undefined;
  if (!lib) throw new Error('libfaketime.so.1 not found (apt-get install faketime)');
  return lib;
}

/** The agent under a clock `offset` (libfaketime syntax, e.g. "+6h") away from the machine's. */
function startSkewed(a: TestAgent, offset: string): { proc: ChildProcess; text: () => string } {
  const proc = spawn(process.execPath, [...AGENT_NODE_FLAGS, join(ROOT, 'bin/sekimori-agent.js'), 'run', '--state', a.stateDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...testAgentEnv(a.stateDir), LD_PRELOAD: libfaketime(), FAKETIME: offset, FAKETIME_DONT_FAKE_MONOTONIC: '1' },
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return { proc, text: () => out };
}

async function stopProc(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const done = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGTERM');
  await Promise.race([done, new Promise((r) => setTimeout(r, 15_000))]);
  if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
}

describe.skipIf(!tools.ok).each([
  ['+6h', 6 * HOUR],
  ['-6h', -6 * HOUR],
])('agent clock %s (real process under faketime)', (offset, skewMs) => {
  let c: TestConsole;
  let a: TestAgent;
  let run: { proc: ChildProcess; text: () => string } | null = null;

  beforeAll(async () => {
    const scope = tempDir('skew-scope');
    c = await startConsole({
      policy: {
        agent: { heartbeatSeconds: 2, uploadBatchSize: 200 },
        mfa: { offlineAllowed: true },
        // The real agent watches only an empty folder of its own (never other tests' processes).
        software: { mode: 'monitor', locations: [scope], preExec: { enabled: false, fallback: 'deny', timeoutMs: 1000, marks: [] } },
      },
    });
    a = await enrollAgent(c, { start: false });
    const f = join(c.dataDir, '..', 'tokens.csv');
    writeFileSync(f, ['user,serial,seed_hex,type', `skew.user,SK-1,${HEX},totp`].join('\n'));
    expect(c.cli(['mfa', 'import', '--file', f]).code).toBe(0);
    expect(c.cli(['mfa', 'assign', '--user', 'skew.user', '--terminal', a.agentId]).code).toBe(0);
  }, 180_000);

  afterAll(async () => {
    if (run) await stopProc(run.proc);
    await a?.cleanup();
    await c?.cleanup();
  });

  it('connects, delivers its events with both clocks, and accepts a real-time TOTP code offline, also after a restart', async () => {
    run = startSkewed(a, offset);
    const started = Date.now();
    const sock = agentPaths(a.stateDir).socket;
    // The agent's first event is stamped before it has heard the console's clock.
    const ev = await waitFor('agent.started on the console', () => c.events(['--type', 'agent.started']).find((e) => e.terminalId === a.agentId) ?? null, 60_000, 500);
    const claimed = Date.parse(ev.agentTs ?? ev.ts);
    expect(Math.abs(claimed - (started + skewMs))).toBeLessThan(10 * 60_000); // the process really ran on the wrong clock
    if (skewMs > 0) {
      // Implausibly in the future: kept at receipt time, the agent's own time beside it.
      expect(ev.agentTs).not.toBeNull();
      expect(Math.abs(Date.parse(ev.ts) - started)).toBeLessThan(10 * 60_000);
    } else {
      // In the past is plausible (a terminal that was offline): kept as the agent said, not refused.
      expect(Math.abs(Date.parse(ev.ts) - (started + skewMs))).toBeLessThan(10 * 60_000);
    }
    // After a heartbeat the agent measured the console's clock and keeps it.
    await waitFor('console offset stored', () => existsSync(join(a.stateDir, 'clock.json')), 30_000, 250);

    await waitFor('offline cache synced', async () => {
      const r = await localRequest(sock, 'POST', '/mfa/sync');
      const s = (await localRequest(sock, 'GET', '/mfa/status')).body as { cachedUsers: string[] };
      return r.status === 200 && s.cachedUsers.includes('skew.user');
    }, 30_000, 500);
    // Online: the console judges with its own clock.
    const s0 = step();
    expect((await localRequest(sock, 'POST', '/mfa/verify', { user: 'skew.user', code: totpAt(s0) })).body).toMatchObject({ result: 'accept', offline: false });
    // An event stamped after the heartbeat is in the console's time (no second clock needed).
    const mfa = await waitFor('mfa.success on the console', () => c.events(['--type', 'mfa.success']).find((e) => e.terminalId === a.agentId) ?? null, 30_000, 500);
    expect(Math.abs(Date.parse(mfa.ts) - Date.now())).toBeLessThan(5 * 60_000);

    await c.stop();
    // Offline: the terminal's clock is 6 h off, the code is for real time — accepted (console-corrected clock).
    expect((await localRequest(sock, 'POST', '/mfa/verify', { user: 'skew.user', code: totpAt(s0 + 1) })).body).toMatchObject({ result: 'accept', offline: true });

    // Control: restarted offline WITHOUT the stored offset, the terminal judges by its own clock and
    // refuses a code valid in real time — what an agent did before the offset was kept.
    await stopProc(run.proc);
    const clockFile = join(a.stateDir, 'clock.json');
    const kept = readFileSync(clockFile, 'utf8');
    rmSync(clockFile);
    run = startSkewed(a, offset);
    await waitFor('agent running (no stored offset)', () => /running \(state/.test(run!.text()) || (run!.proc.exitCode !== null ? Promise.reject(new Error(run!.text())) : false), 30_000);
    // Past s0 + 1, the step used offline above: its code would be refused as a replay, not for its time.
    await waitFor('a TOTP step not used yet (control)', () => step() > s0 + 1, 70_000, 250);
    const refused = (await localRequest(sock, 'POST', '/mfa/verify', { user: 'skew.user', code: totpAt(step()) })).body as { result: string; reason: string; offline: boolean };
    expect(refused).toMatchObject({ result: 'reject', offline: true });
    expect(refused.reason).not.toBe('replay'); // refused for its time, not because it was used

    // Restarted while the console is still away: the offset measured before the restart still applies.
    await stopProc(run.proc);
    writeFileSync(clockFile, kept);
    run = startSkewed(a, offset);
    await waitFor('agent running again', () => /running \(state/.test(run!.text()) || (run!.proc.exitCode !== null ? Promise.reject(new Error(run!.text())) : false), 30_000);
    // A step after every code tried above (a used step is a replay), still within ±1 step of real time.
    const codeStep = step() + 1;
    const code = totpAt(codeStep);
    const offline = (await localRequest(sock, 'POST', '/mfa/verify', { user: 'skew.user', code })).body;
    const { secret: _s, ...cached } = new EncryptedCache(a.stateDir, a.agentId).load().data.users['skew.user'] ?? { secret: '' };
    expect(offline, JSON.stringify({ offline, codeStep, realStep: step(), cached, clock: readFileSync(clockFile, 'utf8'), kept, status: (await localRequest(sock, 'GET', '/mfa/status')).body, log: run.text().slice(-1500) })).toMatchObject({ result: 'accept', offline: true });

    // Back online, the offline uses and the events reach the console.
    await c.start();
    const offlineUses = await waitFor(
      'the offline verifications on the console',
      () => {
        const l = c.events(['--type', 'mfa.success']).filter((e) => e.terminalId === a.agentId && e.data.offline === true);
        return l.length >= 2 ? l : null;
      },
      90_000,
      1_000,
    );
    // Stamped offline, after a restart too, in the console's time — not 6 h off.
    for (const e of offlineUses) expect(Math.abs(Date.parse(e.ts) - Date.now())).toBeLessThan(10 * 60_000);
  }, 240_000);
});
