/**
 * Issue 10, items 13 and 14 and the per-client request limits: what a hostile client can do to the
 * console's one HTTPS port. Each case is an attack that worked before (connections held open for
 * minutes, any Host accepted, unlimited requests) run against a real console process.
 */
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { connect as netConnect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPaths } from '../../agent/state.js';
import { DEFAULT_LIMITS } from '../../console/core/paths.js';
import { SERVER_LIMITS } from '../../console/core/server.js';
import { enrollAgent, startConsole, waitFor, type TestAgent, type TestConsole } from './harness.js';

let c: TestConsole;
let agent: TestAgent;
let ca: Buffer;

beforeAll(async () => {
  c = await startConsole();
  agent = await enrollAgent(c, { start: false });
  ca = readFileSync(join(c.dataDir, 'ca.pem'));
}, 60_000);

afterAll(async () => {
  await agent?.cleanup();
  await c?.cleanup();
});

/** Resolves when the peer closes the socket, or with 'open' after `ms`. */
function closedWithin(socket: Socket, ms: number): Promise<'closed' | 'open'> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve('closed');
    const timer = setTimeout(() => resolve('open'), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
  });
}

function tlsSocket(): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: c.port, ca, servername: 'localhost' }, () => resolve(s));
    s.once('error', reject);
  });
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function send(path: string, opts: { method?: string; host?: string; agent?: Agent; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${c.url}${path}`,
      {
        method: opts.method ?? 'GET',
        ca,
        servername: 'localhost', // the TLS name stays valid; only the Host header lies
        agent: opts.agent,
        headers: { ...(opts.host ? { host: opts.host } : {}), ...(opts.body ? { 'content-type': 'application/json' } : {}) },
        timeout: 15_000,
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('connections that never finish a request are closed (item 13)', () => {
  it('a TLS connection that sends nothing, and one that stalls half-way through its headers, are both closed', async () => {
    const silent = await tlsSocket();
    const stalled = await tlsSocket();
    stalled.write('GET /api/agent/ca HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    const bound = SERVER_LIMITS.firstRequestMs + 15_000; // before: still open after 150 s
    const [a, b] = await Promise.all([closedWithin(silent, bound), closedWithin(stalled, bound)]);
    expect({ silent: a, stalled: b }).toEqual({ silent: 'closed', stalled: 'closed' });
  }, 60_000);

  it('one address cannot hold more than the per-address cap of connections', async () => {
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < SERVER_LIMITS.connectionsPerAddress; i++) {
        const s = netConnect({ host: '127.0.0.1', port: c.port });
        s.on('error', () => {});
        sockets.push(s);
      }
      await waitFor('the capped connections to be accepted', () => sockets.every((s) => !s.connecting), 10_000);
      const extra = netConnect({ host: '127.0.0.1', port: c.port });
      extra.on('error', () => {});
      sockets.push(extra);
      expect(await closedWithin(extra, 5_000)).toBe('closed');
      // The ones within the cap are still open.
      expect(sockets.slice(0, 10).every((s) => !s.destroyed)).toBe(true);
    } finally {
      for (const s of sockets) s.destroy();
    }
    // Once they are gone the address is served again.
    await waitFor('the address to be served again', async () => (await send('/api/agent/ca')).status === 200, 10_000);
  }, 30_000);
});

describe('Host header (item 14)', () => {
  it('a Host that is not a name of the certificate is refused with 421; the certificate names are served', async () => {
    const foreign = await send('/api/agent/ca', { host: 'attacker.example' });
    expect(foreign.status).toBe(421);
    expect(JSON.parse(foreign.body)).toMatchObject({ error: 'misdirected_request' });
    expect((await send('/login', { host: 'attacker.example:443' })).status).toBe(421);
    expect((await send('/api/agent/ca', { host: `localhost:${c.port}` })).status).toBe(200);
    expect((await send('/api/agent/ca', { host: `127.0.0.1:${c.port}` })).status).toBe(200);
    expect((await send('/api/agent/ca', { host: `[::1]:${c.port}` })).status).toBe(200);
  });
});

describe('request limits per client', () => {
  it('an enrolled agent that floods gets 429 with Retry-After, and is served again later', async () => {
    const p = agentPaths(agent.stateDir);
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 4, ca, key: readFileSync(p.key), cert: readFileSync(p.cert) });
    try {
      const body = JSON.stringify({ ts: new Date().toISOString(), hostname: 'flood', os: 'x', agentVersion: 'x', policyVersion: 1, outboxDepth: 0, monitorOnly: false });
      // Faster than the refill rate until refused (bounded: at most 100 rounds).
      const answers: Answer[] = [];
      for (let round = 0; round < 100 && !answers.some((a) => a.status === 429); round++) {
        answers.push(...(await Promise.all(Array.from({ length: 20 }, () => send('/api/agent/heartbeat', { method: 'POST', agent: keepAlive, body })))));
      }
      const limited = answers.filter((a) => a.status === 429);
      expect(limited.length).toBeGreaterThan(0);
      expect(answers.filter((a) => a.status === 200).length).toBeGreaterThanOrEqual(DEFAULT_LIMITS.agentRequests.burst);
      expect(Number(limited[0]!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(JSON.parse(limited[0]!.body)).toMatchObject({ error: 'rate_limited' });
      await waitFor('the agent to be served again', async () => (await send('/api/agent/heartbeat', { method: 'POST', agent: keepAlive, body })).status === 200, 10_000, 500);
    } finally {
      keepAlive.destroy();
    }
  }, 60_000);

  it('an unauthenticated address that floods gets 429', async () => {
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 8, ca });
    try {
      let limited = 0;
      for (let round = 0; round < 100 && limited === 0; round++) {
        const answers = await Promise.all(Array.from({ length: 50 }, () => send('/api/agent/ca', { agent: keepAlive })));
        limited += answers.filter((a) => a.status === 429).length;
      }
      expect(limited).toBeGreaterThan(0);
    } finally {
      keepAlive.destroy();
    }
    await waitFor('the address to be served again', async () => (await send('/api/agent/ca')).status === 200, 10_000, 500);
  }, 60_000);
});
