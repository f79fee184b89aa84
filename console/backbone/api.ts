/** HTTP API of the backbone (console ↔ agent): enrollment, event upload, heartbeat, policy. */
import { MAX_MISSING_RANGES, type EnrollResponse, type HeartbeatResponse } from '../../protocol/api.js';
import { HttpError, type ConsoleContext, type Route } from '../module.js';
import type { OpenConsole } from '../core/open-console.js';
import { RateLimiter, tooManyRequests } from '../core/limits.js';
import { consoleLimits } from '../core/paths.js';
import { signAgentCsr } from '../core/pki.js';
import { sourceKey } from '../core/limits.js';
import { statfsSync } from 'node:fs';
import { WalSync } from '../core/wal-sync.js';
import { DiskGuard, GroupCommit, createIngester, diskFullError, diskFullRetryAfter, ingestReserve, isDiskFull, openGaps, resendHint } from './ingest.js';
import { batchChecker } from './batch-checker.js';
import { requireJsonType } from '../core/http-request.js';
import { consoleLog } from '../core/log.js';
import { agentExists, findEnrollToken, hashToken, insertAgent, sameNameAs, spendEnrollToken } from './store.js';
import { HeartbeatBuffer, beatOf, parseHeartbeat } from './heartbeat.js';
import { parseEnroll } from './body.js';

function enrollRoute(ctx: OpenConsole): Route {
  const attempts = new RateLimiter(consoleLimits(ctx.config).enrollPerAddress);
  // Anyone can call this: each refusal is folded per address (one event, then a counted summary a
  // minute later), so guessing tokens cannot bury real admin.* events on the console's chain.
  // Keyed like the login limits (core/limits.ts sourceKey): IPv6 by its /64, one host's usual share.
  const refused = (from: string, reason: string, hostname: string) =>
    ctx.recordRepeated({ type: 'admin.enroll_refused', data: { reason, hostname, from } }, 'enroll_refused:' + sourceKey(from));
  return {
    method: 'POST',
    path: '/api/agent/enroll',
    auth: 'none',
    maxBody: 16 * 1024,
    async handle(req) {
      const now = Date.now();
      const source = sourceKey(req.remoteAddress);
      if (!attempts.take(source, now)) {
        refused(req.remoteAddress, 'rate limited', '');
        throw tooManyRequests(attempts.retryAfterSeconds(source, now), 'enrollment attempts from this address');
      }
      const r = parseEnroll(req.json());
      const tokenHash = hashToken(r.token);
      const tok = findEnrollToken(ctx, tokenHash);
      const refuse = (why: string) => {
        refused(req.remoteAddress, why, r.hostname.slice(0, 64));
        return new HttpError(403, 'enrollment_refused', `enrollment refused: ${why}`);
      };
      if (!tok) throw refuse('unknown token');
      if (tok.usesLeft <= 0) throw refuse('token already used');
      if (Date.parse(tok.expiresAt) <= Date.now()) throw refuse('token expired');
      let signed: { certPem: string; fingerprint: string };
      try {
        signed = await signAgentCsr(ctx.ca, r.csrPem, r.agentId);
      } catch (e) {
        throw new HttpError(400, 'invalid_csr', (e as Error).message);
      }
      // Token consumption and registration are one transaction: a token cannot be spent twice
      // even by concurrent requests.
      // The refusal is recorded after the transaction: an event written inside it would be rolled back.
      const spent = ctx.db.transaction((): boolean => {
        if (!spendEnrollToken(ctx, tokenHash, new Date().toISOString())) return false;
        if (agentExists(ctx, r.agentId)) throw new HttpError(409, 'agent_exists', 'an agent with this id is already enrolled');
        const others = sameNameAs(ctx, r.hostname, r.agentId);
        insertAgent(ctx, { id: r.agentId, hostname: r.hostname, os: r.os, agentVersion: r.agentVersion, certFingerprint: signed.fingerprint }, new Date().toISOString());
        ctx.recordEvent({ type: 'agent.enrolled', terminalId: r.agentId, data: { agentId: r.agentId, hostname: r.hostname, os: r.os, ...(others.length ? { sameNameAs: others } : {}) } });
        return true;
      })();
      if (!spent) throw refuse('token already used');
      const res: EnrollResponse = { agentId: r.agentId, certPem: signed.certPem, caPem: ctx.ca.certPem, policyPublicKeyPem: ctx.policyPublicKeyPem };
      return { status: 200, json: res };
    },
  };
}

const buffers = new WeakMap<ConsoleContext, HeartbeatBuffer>();
export function heartbeatBuffer(ctx: ConsoleContext): HeartbeatBuffer {
  let b = buffers.get(ctx);
  if (!b) buffers.set(ctx, (b = new HeartbeatBuffer(ctx.db)));
  return b;
}

/** The policy's heartbeat period, read without parsing the whole document (it may carry a baseline). */
export function heartbeatSeconds(ctx: ConsoleContext): number {
  const row = ctx.db.prepare("SELECT json_extract(document, '$.agent.heartbeatSeconds') AS s FROM policies ORDER BY version DESC LIMIT 1").get() as { s: number };
  return row.s;
}

export function backboneRoutes(c: ConsoleContext): Route[] {
  const ctx = c as OpenConsole;
  // Issue 17: a full disk refuses uploads with 503 + Retry-After (nothing half-written: the batch's
  // transaction rolls back). The outage, kept in memory meanwhile, is recorded in the transaction of
  // the first batch that can be written again, before its events: both are written or neither.
  const disk = new DiskGuard(ingestReserve(ctx.config), () => {
    const s = statfsSync(ctx.paths.dataDir);
    return Number(s.bavail) * Number(s.bsize);
  });
  const fullRetry = diskFullRetryAfter(ctx.config);
  const ingest = new GroupCommit(
    ctx.db,
    createIngester(ctx.db),
    {
      first: () => {
        const recording = disk.pending();
        if (!recording) return;
        ctx.recordEvent({ type: 'console.disk_full', data: { ...recording } });
        return () => {
          if (disk.pending() === recording) disk.recorded();
        };
      },
    },
    new WalSync(ctx.db.name),
  );
  // The batch check (JSON, shapes, hashes) runs beside this thread: ingest only stores.
  const checker = batchChecker(consoleLog);
  const beats = heartbeatBuffer(ctx);
  const policyVersion = ctx.db.prepare('SELECT max(version) AS v FROM policies');
  const statusOf = ctx.db.prepare('SELECT status, hostname, last_seq FROM agents WHERE id = ?');
  const limits = consoleLimits(ctx.config);
  const eventRate = new RateLimiter(limits.agentEvents);
  const volume = new RateLimiter(limits.agentBytes);
  // Host name per agent as last reported (heartbeats reach the database up to a second later).
  const hostnames = new Map<string, string>();
  const nameChecked = new Map<string, number>();

  /** 429 for an agent over its upload limits: its events stay in its outbox; the alert is folded per agent. */
  const flood = (agentId: string, limit: 'events' | 'bytes', retryAfter: number, events: number | null, bytes: number) => {
    ctx.recordRepeated(
      { type: 'agent.flood', terminalId: agentId, data: { agentId, limit, batchEvents: events, batchBytes: bytes, retryAfterSeconds: retryAfter } },
      'flood:' + agentId,
    );
    return tooManyRequests(retryAfter, limit === 'events' ? 'events from this terminal' : 'upload bytes from this terminal');
  };
  return [
    { method: 'GET', path: '/api/agent/ca', auth: 'none', handle: () => ({ status: 200, json: { caPem: ctx.ca.certPem } }) },
    enrollRoute(ctx),
    {
      method: 'POST',
      path: '/api/agent/events',
      auth: 'agent',
      maxBody: 8 * 1024 * 1024,
      async handle(req) {
        const agentId = req.agentId!;
        const now = Date.now();
        // A batch larger than a whole burst (a config set below the body limit) costs one burst, never waits forever.
        const bytes = Math.min(req.body.length, limits.agentBytes.burst);
        // Volume before parsing, so a flood costs no JSON work; tokens are taken only when both limits allow the batch.
        const waitBytes = volume.retryAfterSeconds(agentId, now, bytes);
        if (waitBytes > 0) throw flood(agentId, 'bytes', waitBytes, null, bytes);
        requireJsonType(req.headers);
        const events = await checker.check(agentId, req.body);
        if (disk.low(now)) {
          disk.refused('low_free_space', events.length, new Date());
          throw diskFullError(fullRetry);
        }
        const cost = Math.min(events.length, limits.agentEvents.burst);
        const waitEvents = eventRate.retryAfterSeconds(agentId, now, cost);
        if (waitEvents > 0) throw flood(agentId, 'events', waitEvents, events.length, bytes);
        volume.take(agentId, now, bytes);
        eventRate.take(agentId, now, cost);
        let result;
        try {
          result = await ingest.submit(agentId, { checked: events });
        } catch (e) {
          if (!isDiskFull(e)) throw e;
          disk.refused('sqlite_full', events.length, new Date());
          throw diskFullError(fullRetry);
        }
        const first = result.skewed[0];
        if (first) {
          ctx.recordRepeated(
            {
              type: 'agent.clock_skew',
              terminalId: agentId,
              data: { agentId, seq: first.seq, claimed: first.claimed, received: first.received, events: result.skewed.length },
            },
            'clock_skew:' + agentId,
          );
        }
        const bad = result.invalidData[0];
        if (bad) {
          // Stored all the same (no event is lost); one folded alert per agent says how many and why.
          ctx.recordRepeated(
            { type: 'agent.event_data_invalid', terminalId: agentId, data: { agentId, seq: bad.seq, type: bad.type, errors: bad.errors, events: result.invalidData.length } },
            'event_data_invalid:' + agentId,
          );
        }
        return { status: 200, json: result.response };
      },
    },
    {
      method: 'POST',
      path: '/api/agent/heartbeat',
      auth: 'agent',
      handle(req) {
        const b = parseHeartbeat(req.json());
        const row = statusOf.get(req.agentId) as { status: string; hostname: string; last_seq: number };
        const before = hostnames.get(req.agentId!) ?? row.hostname;
        // A beat without a name keeps the old one (it used to blank it).
        const hostname = b.hostname.length > 0 ? b.hostname : before;
        if (hostname !== before) {
          // Names are the terminal's own claim: a change is shown, and so is another terminal's name being taken.
          // The comparison scans every terminal: at most once a minute per agent (a rogue agent may rename on every beat).
          const nowMs = Date.now();
          let others: string[] = [];
          if (nowMs - (nameChecked.get(req.agentId!) ?? 0) >= 60_000) {
            nameChecked.set(req.agentId!, nowMs);
            beats.flush(); // names other terminals reported in the last second are compared too
            others = sameNameAs(ctx, hostname, req.agentId!);
          }
          ctx.recordRepeated(
            { type: 'agent.hostname_changed', terminalId: req.agentId, data: { agentId: req.agentId, old: before, new: hostname, ...(others.length ? { sameNameAs: others } : {}) } },
            'hostname_changed:' + req.agentId,
          );
        }
        hostnames.set(req.agentId!, hostname);
        const beat = beatOf(req.agentId!, b, hostname);
        const status = row.status;
        if (status === 'online') beats.record(beat);
        else
          ctx.db.transaction(() => {
            beats.writeNow(beat);
            if (status === 'silent') ctx.recordEvent({ type: 'agent.back_online', terminalId: req.agentId, data: { agentId: req.agentId } });
          })();
        // Issue 17: what this console lacks of the agent's chain (a restored console lacks what its
        // predecessor acknowledged after the backup); the agent re-sends it from its delivered keep.
        const hint = resendHint(openGaps(ctx.db, req.agentId!, MAX_MISSING_RANGES), row.last_seq);
        const res: HeartbeatResponse = { serverTime: new Date().toISOString(), policyVersion: (policyVersion.get() as { v: number }).v, ...hint };
        return { status: 200, json: res };
      },
    },
    { method: 'GET', path: '/api/agent/policy', auth: 'agent', handle: () => ({ status: 200, json: ctx.currentPolicy() }) },
  ];
}
