/**
 * Network tier: the console and an agent on two hosts of our own (network namespaces joined by a
 * veth pair, addresses that exist only inside them). The link is cut and restored, also in the
 * middle of an upload: every event arrives exactly once.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Outbox } from '../../../agent/report/outbox.js';
import { agentPaths } from '../../../agent/state.js';
import { AGENT_NODE_FLAGS, ROOT, cliJson, runCli, tempDir, testAgentEnv, waitFor } from '../../integration/harness.js';
import { isRoot, requireTools } from '../tools.js';

const tools = requireTools('network namespaces', ['ip'], 'apt-get install iproute2 (and run as root)', { missing: isRoot() ? [] : ['root'] });

const id = randomBytes(3).toString('hex');
const NS_CONSOLE = `skc-${id}`;
const NS_AGENT = `ska-${id}`;
const VETH_C = `skc${id}`;
const VETH_A = `ska${id}`;
// Addresses of our own two test hosts; they exist only inside the namespaces made here.
const CONSOLE_IP = '10.213.77.1';
const AGENT_IP = '10.213.77.2';

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

function seqs(dataDir: string, agentId: string): number[] {
  const db = new Database(join(dataDir, 'console.db'), { readonly: true });
  try {
    return (db.prepare('SELECT seq FROM events WHERE agent_id = ? ORDER BY seq').all(agentId) as { seq: number }[]).map((r) => r.seq);
  } finally {
    db.close();
  }
}

describe.skipIf(!tools.ok)('agent ↔ console link cut and restored (network namespaces)', () => {
  const dir = tools.ok ? tempDir('netns') : '';
  const data = join(dir, 'console');
  const state = join(dir, 'agent');
  let consoleProc: ChildProcess;
  let agentProc: ChildProcess;
  let agentId = '';

  const inNs = (ns: string, args: string[]) => spawn('ip', ['netns', 'exec', ns, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: testAgentEnv(state) });
  const linkDown = () => ip('-n', NS_AGENT, 'link', 'set', VETH_A, 'down');
  const linkUp = () => ip('-n', NS_AGENT, 'link', 'set', VETH_A, 'up');
  const lastSeq = () => {
    const o = new Outbox(agentPaths(state).outbox, agentId);
    try {
      return o.lastSeq();
    } finally {
      o.close();
    }
  };
  const append = (n: number) => {
    const o = new Outbox(agentPaths(state).outbox, agentId);
    try {
      for (let i = 0; i < n; i++) o.append({ type: 'usb.blocked', data: { n: i } });
    } finally {
      o.close();
    }
  };

  beforeAll(async () => {
    ip('netns', 'add', NS_CONSOLE);
    ip('netns', 'add', NS_AGENT);
    ip('link', 'add', VETH_C, 'type', 'veth', 'peer', 'name', VETH_A);
    ip('link', 'set', VETH_C, 'netns', NS_CONSOLE);
    ip('link', 'set', VETH_A, 'netns', NS_AGENT);
    ip('-n', NS_CONSOLE, 'addr', 'add', `${CONSOLE_IP}/30`, 'dev', VETH_C);
    ip('-n', NS_AGENT, 'addr', 'add', `${AGENT_IP}/30`, 'dev', VETH_A);
    for (const [ns, dev] of [[NS_CONSOLE, VETH_C], [NS_AGENT, VETH_A]] as const) {
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', ns, 'link', 'set', dev, 'up');
    }
    expect(runCli('console', ['init', '--data', data, '--san', CONSOLE_IP]).code).toBe(0);
    const policy = join(dir, 'policy.json');
    (await import('node:fs')).writeFileSync(policy, JSON.stringify({ agent: { heartbeatSeconds: 1, uploadBatchSize: 500 } }));
    expect(runCli('console', ['policy', 'set', '--data', data, '--file', policy]).code).toBe(0);
    consoleProc = inNs(NS_CONSOLE, [join(ROOT, 'bin/sekimori-console.js'), 'serve', '--data', data, '--listen', `${CONSOLE_IP}:8443`]);
    let out = '';
    consoleProc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    await waitFor('console in its namespace', () => out.includes('https://'));
    const tok = cliJson<{ token: string; caFingerprint: string }>('console', ['enroll-token', '--data', data, '--json']);
    const enroll = spawn('ip', ['netns', 'exec', NS_AGENT, process.execPath, join(ROOT, 'bin/sekimori-agent.js'), 'enroll', '--console', `https://${CONSOLE_IP}:8443`, '--token', tok.token, '--ca-fingerprint', tok.caFingerprint, '--state', state, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let enrolled = '';
    enroll.stdout.on('data', (c: Buffer) => (enrolled += c.toString()));
    await new Promise((r) => enroll.once('exit', r));
    agentId = (JSON.parse(enrolled) as { agentId: string }).agentId;
    agentProc = inNs(NS_AGENT, [...AGENT_NODE_FLAGS, join(ROOT, 'bin/sekimori-agent.js'), 'run', '--state', state]);
    await waitFor('agent.started delivered across the link', () => seqs(data, agentId).length >= 1, 30_000, 200);
  });

  afterAll(async () => {
    for (const p of [agentProc, consoleProc]) {
      if (p && p.exitCode === null) {
        p.kill('SIGKILL');
        await new Promise((r) => p.once('exit', r));
      }
    }
    for (const ns of [NS_AGENT, NS_CONSOLE]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // already gone
      }
    }
  });

  it('keeps events made while the link is down and delivers them when it returns', async () => {
    linkDown();
    append(2_000);
    await waitFor('agent sees the console as unreachable', () => cliJson<{ consoleReachable: boolean }>('agent', ['status', '--state', state, '--json']).consoleReachable === false, 30_000, 250);
    const before = seqs(data, agentId).length;
    expect(before).toBeLessThan(lastSeq());
    linkUp();
    const n = lastSeq();
    await waitFor('all events after the link returns', () => seqs(data, agentId).length >= n, 60_000, 250);
    const s = seqs(data, agentId);
    expect(new Set(s).size).toBe(s.length);
    expect(s.slice(0, n)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  }, 120_000);

  it('loses nothing and duplicates nothing when the link is cut in the middle of an upload', async () => {
    append(20_000);
    await waitFor('upload under way', () => seqs(data, agentId).length > lastSeq() - 19_000, 60_000, 10);
    linkDown();
    await new Promise((r) => setTimeout(r, 3000));
    linkUp();
    const n = lastSeq();
    await waitFor('every event once', () => seqs(data, agentId).length >= n, 200_000, 250);
    const s = seqs(data, agentId);
    expect(new Set(s).size).toBe(s.length);
    expect(s.slice(0, n)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    const gaps = cliJson<unknown[]>('console', ['events', '--data', data, '--json', '--type', 'agent.gap']);
    expect(gaps).toHaveLength(0);
  }, 240_000);
});
