/**
 * Windows tier: the PACKAGED win-x64 agent (dist/sea/sekimori-agent.exe, npm run package) under
 * wine 10. It enrols with a real console on loopback (test/integration/harness.ts), runs, and its
 * agent.started reaches the console. Only the executable runs under wine: no node.exe, no dist/.
 * What wine cannot show (real device blocking, the logon screen) is listed in README.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConsole, waitFor, type TestConsole } from '../../integration/harness.js';
import { requireTools } from '../tools.js';
import { AGENT_EXE, ensureWindowsPackage, PACKAGE_TOOLS, requireWine, runWine, startWine, winPath, type WineProcess } from './wine.js';

const tools = requireTools('Windows package (npm run package)', PACKAGE_TOOLS, 'bash scripts/setup.sh --test');
const wine = tools.ok ? requireWine() : tools;

describe.skipIf(!wine.ok)('packaged sekimori-agent.exe under wine', () => {
  let c: TestConsole;
  let agent: WineProcess | undefined;
  let agentId = '';
  // Under /tmp: mounted in the wine root at the same path (Z:\tmp\…).
  const work = mkdtempSync('/tmp/sekimori-wine-agent-');
  const state = join(work, 'state');
  // Its own named pipe: other agents under the same wineserver must not collide.
  const pipe = `\\\\.\\pipe\\sekimori-wine-test-${process.pid}`;

  beforeAll(async () => {
    ensureWindowsPackage();
    c = await startConsole();
  }, 600_000);

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await c?.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('enrols with the console on loopback (one-time token, pinned CA fingerprint)', async () => {
    const tok = c.enrollToken();
    const r = await runWine(
      [winPath(AGENT_EXE), 'enroll', '--console', c.url, '--token', tok.token, '--ca-fingerprint', tok.caFingerprint, '--state', winPath(state), '--monitor', '--json'],
      { timeoutMs: 120_000 },
    );
    expect(r.timedOut, r.stderr).toBe(false);
    expect(r.code, r.stderr).toBe(0);
    agentId = (JSON.parse(r.stdout) as { agentId: string }).agentId;
    expect(agentId).toMatch(/\S/);
  });

  it('refuses a wrong CA fingerprint (pinning holds in the Windows build too)', async () => {
    const tok = c.enrollToken();
    const r = await runWine(
      [winPath(AGENT_EXE), 'enroll', '--console', c.url, '--token', tok.token, '--ca-fingerprint', '0'.repeat(64), '--state', winPath(join(work, 'state-bad')), '--json'],
      { timeoutMs: 120_000 },
    );
    expect(r.code).not.toBe(0);
  });

  it('runs; agent.started reaches the console', async () => {
    expect(agentId).not.toBe('');
    agent = startWine([winPath(AGENT_EXE), 'run', '--state', winPath(state)], { env: { SEKIMORI_AGENT_PIPE: pipe }, timeoutMs: 300_000 });
    let ended = false;
    void agent.exited.then(() => (ended = true));
    const started = await waitFor(
      'agent.started from the Windows agent at the console',
      async () => {
        if (ended) throw new Error(`agent.exe ended: ${agent?.stdout()}${agent?.stderr()}`);
        return c.events(['--type', 'agent.started']).find((e) => e.agentId === agentId);
      },
      120_000,
      500,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n--- agent output ---\n${agent?.stdout()}${agent?.stderr()}`);
    });
    expect(started.type, agent.stdout() + agent.stderr()).toBe('agent.started');
  }, 180_000);
});
