/**
 * bench/backup: how long `sekimori-console backup` takes on a console holding N events, and what
 * it costs ingest — ingest rate while a backup runs versus in the windows just before, same run,
 * same console, alternating. Then `restore` of the last backup onto a fresh folder.
 *   npm run build && scripts/n24 node dist/bench/backup.js [--base 200000] [--rounds 3] [--agents 2] [--batch 500]
 * The console runs as its own process; this process is the fleet (mutual TLS, raised limits).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chainEvent, genesisHash } from '../protocol/events.js';
import { makeEvents } from './events.js';
import { cli, root, startBenchConsole } from './console-process.js';

const { values } = parseArgs({ options: { base: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '3' }, agents: { type: 'string', default: '2' }, batch: { type: 'string', default: '500' } } });
const BASE = Number(values.base);
const ROUNDS = Number(values.rounds);
const AGENTS = Number(values.agents);
const BATCH = Number(values.batch);
const PASS = 'bench passphrase 関守 2026';

/** An agent's batches made on demand (chained like makeEvents' events, same data shapes): the run needs no memory for them. */
function batches(agentId: string): () => string {
  const shapes = makeEvents(agentId, 3);
  let prev = genesisHash(agentId);
  let seq = 0;
  return () => {
    const events = [];
    for (let i = 0; i < BATCH; i++) {
      seq++;
      const shape = shapes[seq % 3]!;
      const e = chainEvent(prev, { id: randomUUID(), agentId, seq, ts: new Date().toISOString(), type: shape.type, severity: shape.severity, user: shape.user, data: shape.data });
      prev = e.hash;
      events.push(e);
    }
    return JSON.stringify({ batchId: randomUUID(), events });
  };
}

const BENCH_LIMITS = {
  agentRequests: { burst: 1_000_000, perSecond: 100_000 },
  agentEvents: { burst: 100_000_000, perSecond: 10_000_000 },
  agentBytes: { burst: 64 * 1024 ** 3, perSecond: 16 * 1024 ** 3 },
};

function runConsole(args: string[]): Promise<{ code: number; out: string; ms: number }> {
  const started = performance.now();
  return new Promise((res) => {
    const p = spawn(process.execPath, [join(root, 'bin/sekimori-console.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SEKIMORI_BACKUP_PASSPHRASE: PASS } });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 30 * 60_000);
    p.on('exit', (code) => {
      clearTimeout(timer);
      res({ code: code ?? -1, out, ms: performance.now() - started });
    });
  });
}

async function main() {
  const con = await startBenchConsole('backup', { limits: BENCH_LIMITS });
  const { dir, data, url } = con;
  try {
    const fleet: { key: string; cert: string; next: () => string }[] = [];
    for (let a = 0; a < AGENTS; a++) {
      const tok = JSON.parse(cli('console', ['enroll-token', '--data', data, '--json'])) as { token: string; caFingerprint: string };
      const state = join(dir, `agent${a}`);
      const { agentId } = JSON.parse(cli('agent', ['enroll', '--console', url, '--token', tok.token, '--ca-fingerprint', tok.caFingerprint, '--state', state, '--json'])) as { agentId: string };
      fleet.push({ key: readFileSync(join(state, 'agent-key.pem'), 'utf8'), cert: readFileSync(join(state, 'agent-cert.pem'), 'utf8'), next: batches(agentId) });
    }
    const ca = readFileSync(join(data, 'ca.pem'), 'utf8');
    const agents = fleet.map((f) => new Agent({ keepAlive: true, ca, key: f.key, cert: f.cert, minVersion: 'TLSv1.3' }));
    const post = (agent: Agent, body: string) =>
      new Promise<void>((res, rej) => {
        const req = request(`${url}/api/agent/events`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } }, (r) => {
          r.resume();
          r.on('end', () => (r.statusCode === 200 ? res() : rej(new Error(`HTTP ${r.statusCode}`))));
        });
        req.on('error', rej);
        req.end(body);
      });
    /** Every agent posts its next batches until `until()` says stop (or `maxBatches` each). */
    const ingest = async (until: () => boolean, maxBatches: number): Promise<{ events: number; seconds: number }> => {
      const started = performance.now();
      let events = 0;
      await Promise.all(
        fleet.map(async (f, i) => {
          for (let n = 0; n < maxBatches && !until(); n++) {
            await post(agents[i]!, f.next());
            events += BATCH;
          }
        }),
      );
      return { events, seconds: (performance.now() - started) / 1000 };
    };

    // The base the backups copy.
    const baseBatches = Math.ceil(BASE / AGENTS / BATCH);
    const base = await ingest(() => false, baseBatches);
    console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, node ${process.version}`);
    console.log(`base: ${base.events} events from ${AGENTS} agents in ${base.seconds.toFixed(1)} s (${Math.round(base.events / base.seconds)} events/s)`);

    const rows: string[] = [];
    let lastFile = '';
    for (let r = 1; r <= ROUNDS; r++) {
      // Without a backup: a window of fixed size.
      const quiet = await ingest(() => false, 40);
      // With one: the fleet posts for exactly as long as the backup process runs.
      const file = join(dir, `round${r}.backup`);
      let done = false;
      const b = runConsole(['backup', '--data', data, '--out', file, '--json']).then((x) => {
        done = true;
        return x;
      });
      const during = await ingest(() => done, Number.MAX_SAFE_INTEGER);
      const res = await b;
      if (res.code !== 0) throw new Error(`backup failed: ${res.out}`);
      const j = JSON.parse(res.out) as { bytes: number; snapshotMs: number; checkMs: number; writeMs: number; tables: Record<string, number> };
      lastFile = file;
      rows.push(
        `round ${r}: backup ${(res.ms / 1000).toFixed(2)} s wall (snapshot ${(j.snapshotMs / 1000).toFixed(2)} s, check ${(j.checkMs / 1000).toFixed(2)} s, hash+encrypt+write ${(j.writeMs / 1000).toFixed(2)} s), ${j.tables.events} events, file ${(j.bytes / 1024 ** 2).toFixed(1)} MiB; ` +
          `ingest without ${Math.round(quiet.events / quiet.seconds)} ev/s, during ${Math.round(during.events / during.seconds)} ev/s (${during.events} events in the backup's ${during.seconds.toFixed(2)} s)`,
      );
      console.log(rows.at(-1));
    }
    for (const a of agents) a.destroy();
    await con.stop();
    const target = join(dir, 'restored');
    const rs = await runConsole(['restore', '--file', lastFile, '--data', target, '--json']);
    if (rs.code !== 0) throw new Error(`restore failed: ${rs.out}`);
    console.log(`restore (verify, scrypt, write, integrity_check) of ${(statSync(lastFile).size / 1024 ** 2).toFixed(1)} MiB: ${(rs.ms / 1000).toFixed(2)} s wall`);
    const v = await runConsole(['backup', 'verify', '--file', lastFile]);
    console.log(`verify (no passphrase): ${(v.ms / 1000).toFixed(2)} s wall, exit ${v.code}`);
  } finally {
    await con.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
