/**
 * bench/fleet: one console, N simulated agents (real enrollment, real client certificates,
 * mutual TLS with keep-alive as the agent uses), each heartbeating every `interval` seconds with a
 * random phase. Prints heartbeat latency p50/p99 as the fleet sees it.
 *   npm run build && scripts/n24 node dist/bench/fleet.js [--agents 5000] [--interval 30] [--duration 60]
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createKeyAndCsr } from '../protocol/pki.js';
import { cli, startBenchConsole } from './console-process.js';

const { values } = parseArgs({ options: { agents: { type: 'string', default: '5000' }, interval: { type: 'string', default: '30' }, duration: { type: 'string', default: '60' } } });
const N = Number(values.agents);
const INTERVAL_MS = Number(values.interval) * 1000;
const DURATION_MS = Number(values.duration) * 1000;

/**
 * Each simulated terminal has its own source address in 127.0.0.0/8, as real terminals have their
 * own: the console caps connections and enrolments per address.
 */
function addressOf(i: number): string {
  return `127.10.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

function post(agent: Agent | undefined, url: string, ca: string, path: string, body: unknown, localAddress?: string): Promise<{ status: number; body: string }> {
  const payload = JSON.stringify(body);
  return new Promise((res, rej) => {
    const req = request(`${url}${path}`, { method: 'POST', agent, ca, ...(agent ? {} : { localAddress }), headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } }, (r) => {
      let text = '';
      r.on('data', (c: Buffer) => (text += c.toString()));
      r.on('end', () => res({ status: r.statusCode ?? 0, body: text }));
    });
    req.on('error', rej);
    req.end(payload);
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function main() {
  const con = await startBenchConsole('fleet');
  const { dir, data, url } = con;
  try {
    const tok = JSON.parse(cli('console', ['enroll-token', '--data', data, '--uses', String(N), '--ttl', '2h', '--json'])) as { token: string };
    const ca = readFileSync(join(data, 'ca.pem'), 'utf8');
    const fleet: Agent[] = [];
    const t0 = Date.now();
    for (let i = 0; i < N; i++) {
      const agentId = randomUUID();
      const { keyPem, csrPem } = await createKeyAndCsr(agentId);
      const r = await post(undefined, url, ca, '/api/agent/enroll', { token: tok.token, agentId, csrPem, hostname: `pc-${String(i).padStart(5, '0')}`, os: 'bench', agentVersion: 'bench' }, addressOf(i));
      if (r.status !== 200) throw new Error(`enroll ${i}: ${r.status} ${r.body}`);
      const { certPem } = JSON.parse(r.body) as { certPem: string };
      fleet.push(new Agent({ keepAlive: true, maxSockets: 1, ca, key: keyPem, cert: certPem, minVersion: 'TLSv1.3', localAddress: addressOf(i) }));
    }
    console.log(`enrolled ${N} agents in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const latencies: number[] = [];
    let errors = 0;
    const end = Date.now() + DURATION_MS;
    await Promise.all(
      fleet.map(async (agent, i) => {
        await new Promise((r) => setTimeout(r, Math.random() * INTERVAL_MS));
        while (Date.now() < end) {
          const started = performance.now();
          try {
            const r = await post(agent, url, ca, '/api/agent/heartbeat', { ts: new Date().toISOString(), hostname: `pc-${String(i).padStart(5, '0')}`, os: 'bench', agentVersion: 'bench', policyVersion: 1, outboxDepth: 0, monitorOnly: false });
            if (r.status === 200) latencies.push(performance.now() - started);
            else errors++;
          } catch {
            errors++;
          }
          await new Promise((r) => setTimeout(r, INTERVAL_MS));
        }
      }),
    );
    latencies.sort((a, b) => a - b);
    console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, node ${process.version} (console and fleet share it)`);
    console.log(`${N} agents, heartbeat every ${INTERVAL_MS / 1000} s, ${DURATION_MS / 1000} s: ${latencies.length} heartbeats, ${errors} errors`);
    console.log(`heartbeat latency p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${latencies.at(-1)?.toFixed(1)} ms (target p99 < 100 ms)`);
    for (const a of fleet) a.destroy();
  } finally {
    await con.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
