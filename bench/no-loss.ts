/**
 * bench/no-loss: events lost or duplicated across crashes. A real console and a real agent;
 * events are appended to the agent's outbox while the console is SIGKILLed mid-upload and
 * restarted, the agent is SIGKILLed and restarted, and finally both are SIGKILLed together (the
 * closest a test can get to a power cut on one machine) and restarted. Prints lost / duplicated.
 * (The link-cut case runs in the network tier, test/e2e/netns, which needs root.)
 *   npm run build && scripts/n24 node dist/bench/no-loss.js [--events 30000]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { Outbox } from '../agent/report/outbox.js';
import { agentPaths } from '../agent/state.js';

const root = resolve(import.meta.dirname, '../..');
const { values } = parseArgs({ options: { events: { type: 'string', default: '30000' } } });
const N = Number(values.events);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function cli(bin: string, args: string[]): string {
  const r = spawnSync(process.execPath, [join(root, `bin/sekimori-${bin}.js`), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
}
async function waitUntil(what: string, f: () => boolean, ms = 180_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (f()) return;
    await sleep(100);
  }
  throw new Error(`timed out: ${what}`);
}
async function kill9(p: ChildProcess): Promise<void> {
  p.kill('SIGKILL');
  if (p.exitCode === null && p.signalCode === null) await new Promise((r) => p.once('exit', r));
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'sekimori-bench-noloss-'));
  const data = join(dir, 'console');
  const state = join(dir, 'agent');
  const sys = join(dir, 'empty-sys'); // the agent's USB enforcer gets an empty sysfs of its own
  mkdirSync(sys);
  let port = 0;
  const startConsole = async (): Promise<ChildProcess> => {
    const p = spawn(process.execPath, [join(root, 'bin/sekimori-console.js'), 'serve', '--data', data, '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    await waitUntil('console', () => /:(\d+)\n/.test(out), 30_000);
    port = Number(/127\.0\.0\.1:(\d+)/.exec(out)![1]);
    return p;
  };
  const flags = JSON.parse(readFileSync(join(root, 'agent/runtime-flags.json'), 'utf8')) as string[]; // as packaged
  const startAgent = () => spawn(process.execPath, [...flags, join(root, 'bin/sekimori-agent.js'), 'run', '--state', state], { stdio: 'ignore', env: { ...process.env, SEKIMORI_USB_SYSROOT: sys } });
  try {
    cli('console', ['init', '--data', data]);
    writeFileSync(join(dir, 'p.json'), JSON.stringify({ agent: { heartbeatSeconds: 1, uploadBatchSize: 500 } }));
    cli('console', ['policy', 'set', '--data', data, '--file', join(dir, 'p.json')]);
    let consoleProc = await startConsole();
    const tok = JSON.parse(cli('console', ['enroll-token', '--data', data, '--json'])) as { token: string; caFingerprint: string };
    const { agentId } = JSON.parse(cli('agent', ['enroll', '--console', `https://127.0.0.1:${port}`, '--token', tok.token, '--ca-fingerprint', tok.caFingerprint, '--state', state, '--json'])) as { agentId: string };
    const outbox = new Outbox(agentPaths(state).outbox, agentId);
    const db = new Database(join(data, 'console.db'), { readonly: true });
    const held = () => (db.prepare('SELECT count(*) AS n FROM events WHERE agent_id = ?').get(agentId) as { n: number }).n;
    const append = (n: number) => {
      for (let i = 0; i < n; i++) outbox.append({ type: 'usb.blocked', data: { i } });
    };
    let agentProc = startAgent();
    const third = Math.floor(N / 3);

    append(third); // 1: console SIGKILLed mid-upload
    await waitUntil('upload under way', () => held() > 200);
    await kill9(consoleProc);
    consoleProc = await startConsole();

    append(third); // 2: agent SIGKILLed with events written but not uploaded
    await kill9(agentProc);
    agentProc = startAgent();

    append(N - 2 * third); // 3: both SIGKILLed together, then restarted
    await sleep(300);
    await Promise.all([kill9(agentProc), kill9(consoleProc)]);
    consoleProc = await startConsole();
    agentProc = startAgent();

    const produced = outbox.lastSeq();
    await waitUntil('outbox drained', () => outbox.depth() === 0 && held() >= produced);
    const seqs = (db.prepare('SELECT seq FROM events WHERE agent_id = ? ORDER BY seq').all(agentId) as { seq: number }[]).map((r) => r.seq);
    const unique = new Set(seqs);
    let lost = 0;
    for (let s = 1; s <= produced; s++) if (!unique.has(s)) lost++;
    console.log(`events produced: ${produced} (${N} appended + the agent's own), through SIGKILL of the console mid-upload, SIGKILL of the agent, SIGKILL of both`);
    console.log(`lost: ${lost}   duplicated: ${seqs.length - unique.size}   (target 0 / 0)`);
    outbox.close();
    db.close();
    await Promise.all([kill9(agentProc), kill9(consoleProc)]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
