/**
 * bench/ingest: console ingest rate over mutual TLS versus raw better-sqlite3 batch inserts into
 * the same schema, measured in the same run on the same machine.
 *   npm run build && scripts/n24 node dist/bench/ingest.js [--events 200000] [--agents 4] [--batch 500]
 * The console runs as its own process (`sekimori-console serve`); this process is the fleet.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { migrate, openDatabase } from '../console/core/db.js';
import { insertEventStatement } from '../console/core/events.js';
import { coreMigrations } from '../console/core/schema.js';
import type { SekimoriEvent } from '../protocol/events.js';
import { makeEvents } from './events.js';
import { cli, startBenchConsole } from './console-process.js';

const { values } = parseArgs({ options: { events: { type: 'string', default: '200000' }, agents: { type: 'string', default: '4' }, batch: { type: 'string', default: '500' } } });
const TOTAL = Number(values.events);
const AGENTS = Number(values.agents);
const BATCH = Number(values.batch);


/**
 * Each simulated agent sends a backlog of 50,000+ events within seconds: more than a real
 * terminal may send at once (the per-agent limits, console/core/paths.ts DEFAULT_LIMITS). The bench
 * measures ingest, not the limiter's 429s, so it raises those limits in DATA/config.json before
 * the console serves.
 */
const BENCH_LIMITS = {
  agentRequests: { burst: 1_000_000, perSecond: 100_000 },
  agentEvents: { burst: 100_000_000, perSecond: 10_000_000 },
  agentBytes: { burst: 64 * 1024 ** 3, perSecond: 16 * 1024 ** 3 },
};

async function main() {
  const con = await startBenchConsole('ingest', { limits: BENCH_LIMITS });
  const { dir, data, url } = con;
  try {
    // Enroll AGENTS agents through the real CLI.
    const per = Math.ceil(TOTAL / AGENTS);
    const fleet: { agentId: string; key: string; cert: string; bodies: string[] }[] = [];
    for (let a = 0; a < AGENTS; a++) {
      const tok = JSON.parse(cli('console', ['enroll-token', '--data', data, '--json'])) as { token: string; caFingerprint: string };
      const state = join(dir, `agent${a}`);
      const enrolled = cli('agent', ['enroll', '--console', url, '--token', tok.token, '--ca-fingerprint', tok.caFingerprint, '--state', state, '--json']);
      const { agentId } = JSON.parse(enrolled) as { agentId: string };
      const events = makeEvents(agentId, per);
      const bodies: string[] = [];
      for (let i = 0; i < events.length; i += BATCH) bodies.push(JSON.stringify({ batchId: randomUUID(), events: events.slice(i, i + BATCH) }));
      fleet.push({ agentId, key: readFileSync(join(state, 'agent-key.pem'), 'utf8'), cert: readFileSync(join(state, 'agent-cert.pem'), 'utf8'), bodies });
    }
    const ca = readFileSync(join(data, 'ca.pem'), 'utf8');
    const post = (agent: Agent, body: string) =>
      new Promise<void>((res, rej) => {
        const req = request(`${url}/api/agent/events`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } }, (r) => {
          r.resume();
          r.on('end', () => (r.statusCode === 200 ? res() : rej(new Error(`HTTP ${r.statusCode}`))));
        });
        req.on('error', rej);
        req.end(body);
      });
    const started = process.hrtime.bigint();
    await Promise.all(
      fleet.map(async (f) => {
        const agent = new Agent({ keepAlive: true, ca, key: f.key, cert: f.cert, minVersion: 'TLSv1.3' });
        for (const b of f.bodies) await post(agent, b);
        agent.destroy();
      }),
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const sent = per * AGENTS;
    await con.stop();
    const check = new Database(join(data, 'console.db'), { readonly: true });
    const stored = (check.prepare("SELECT count(*) AS n FROM events WHERE agent_id != 'console'").get() as { n: number }).n;
    check.close();
    if (stored !== sent) throw new Error(`stored ${stored} of ${sent}`);
    const viaConsole = sent / seconds;

    // Raw: the same events, same schema and statement, same batch size, one transaction per batch.
    const raw = openDatabase(join(dir, 'raw.db'));
    migrate(raw, 'core', coreMigrations);
    const insert = insertEventStatement(raw);
    const rawEvents = fleet.flatMap((f) => f.bodies.map((b) => (JSON.parse(b) as { events: SekimoriEvent[] }).events));
    const now = new Date().toISOString();
    const tx = raw.transaction((batch: SekimoriEvent[]) => {
      for (const e of batch) insert.run({ ...e, data: JSON.stringify(e.data), terminalId: e.agentId, chain: 'ok', receivedAt: now, agentTs: null });
    });
    const rawStart = process.hrtime.bigint();
    for (const batch of rawEvents) tx(batch);
    const rawSeconds = Number(process.hrtime.bigint() - rawStart) / 1e9;
    raw.close();
    const rawRate = sent / rawSeconds;

    console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, node ${process.version}`);
    console.log(`events: ${sent} from ${AGENTS} agents, ${BATCH} per batch, mutual TLS 1.3 on loopback (per-agent upload limits raised for the bench)`);
    console.log(`console ingest: ${Math.round(viaConsole)} events/s (${seconds.toFixed(2)} s)`);
    console.log(`raw better-sqlite3 batch insert (same schema, synchronous=FULL): ${Math.round(rawRate)} events/s (${rawSeconds.toFixed(2)} s)`);
    console.log(`ratio: ${((viaConsole / rawRate) * 100).toFixed(1)} % (targets: ≥ 20000 events/s, ≥ 50 %)`);
  } finally {
    await con.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
