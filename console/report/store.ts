/**
 * The read side of the 自己点検レポート: gathers the facts ./items.ts judges, from the terminals,
 * the events (counts per terminal over the period, chain findings), the exceptions and their
 * requests, and the signed policy versions (each signature checked here with the console key).
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { canonicalJson } from '../../protocol/canonical.js';
import { readEventData } from '../../protocol/event-data.js';
import type { PolicyDocument } from '../../protocol/policy.js';
import { postureVerdicts } from '../../protocol/posture.js';
import { listAgents } from '../backbone/store.js';
import { latestPostures } from '../posture/store.js';
import { consolePaths } from '../core/paths.js';
import type { ConsoleContext } from '../module.js';
import { deviceSpecOf } from '../usb/device.js';
import { applicationsForGrants } from '../usb/applications-store.js';
import { listExceptions, requestsForGrants } from '../usb/store.js';
import type { ChainFacts, ExceptionFacts, FileWritten, PolicyVersionFacts, PostureFacts, ReportFacts, TerminalFacts } from './items.js';

/** JST days, as the rest of the console counts them. */
export function dayStartIso(day: string): string {
  return new Date(Date.parse(day + 'T00:00:00+09:00')).toISOString();
}
export function dayEndIso(day: string): string {
  return new Date(Date.parse(day + 'T00:00:00+09:00') + 86_400_000).toISOString();
}

export function policyPublicKey(ctx: ConsoleContext): KeyObject {
  return createPublicKey(readFileSync(consolePaths(ctx.dataDir).policyPublicKey, 'utf8'));
}

function countBy(db: Database.Database, types: string[], since: string, until: string): Map<string, number> {
  const rows = db
    .prepare(`SELECT terminal_id AS id, count(*) AS n FROM events WHERE type IN (${types.map(() => '?').join(',')}) AND ts >= ? AND ts < ? GROUP BY terminal_id`)
    .all(...types, since, until) as { id: string; n: number }[];
  return new Map(rows.map((r) => [r.id, r.n]));
}

export function policyVersions(ctx: ConsoleContext, key: KeyObject): PolicyVersionFacts[] {
  const rows = ctx.db.prepare('SELECT version, document, signature, created_at, created_by FROM policies ORDER BY version').all() as {
    version: number;
    document: string;
    signature: string;
    created_at: string;
    created_by: string;
  }[];
  return rows.map((r) => {
    let ok = false;
    try {
      const doc = JSON.parse(r.document) as { version?: unknown };
      ok = doc.version === r.version && verify(null, Buffer.from(canonicalJson(doc)), key, Buffer.from(r.signature, 'base64'));
    } catch {
      ok = false;
    }
    return { version: r.version, createdAt: r.created_at, createdBy: r.created_by, signatureOk: ok };
  });
}

/** usb.file_written events in the period (newest last), bounded. */
export function filesWritten(db: Database.Database, since: string, until: string, limit = 100_000): FileWritten[] {
  const rows = db.prepare("SELECT ts, agent_id, user, data FROM events WHERE type = 'usb.file_written' AND ts >= ? AND ts < ? ORDER BY ts, rid LIMIT ?").all(since, until, limit) as {
    ts: string;
    agent_id: string;
    user: string | null;
    data: string;
  }[];
  const out: FileWritten[] = [];
  for (const r of rows) {
    const d = readEventData('usb.file_written', JSON.parse(r.data));
    if (!d) continue;
    out.push({
      ts: r.ts,
      agentId: r.agent_id,
      path: d.path,
      size: d.size,
      sha256: d.sha256,
      user: r.user,
      exceptionId: d.device.exceptionId,
      device: `${d.device.vendorId}:${d.device.productId}${d.device.serial ? ':' + d.device.serial : ''}`,
    });
  }
  return out;
}

/**
 * Per terminal: its events in the period (index-only count on (terminal_id, ts)), and the chain
 * findings ingest recorded as console events (agent.gap, agent.chain_broken with finding
 * 'broken' | 'tampered') — read through the type index, not by scanning the period's events.
 */
function chainFacts(db: Database.Database, since: string, until: string): Map<string, ChainFacts> {
  const heads = db.prepare('SELECT id, last_seq, last_hash FROM agents').all() as { id: string; last_seq: number; last_hash: string | null }[];
  const count = db.prepare('SELECT count(*) AS n FROM events WHERE terminal_id = ? AND ts >= ? AND ts < ?');
  const findings = db
    .prepare("SELECT terminal_id AS id, type, json_extract(data, '$.finding') AS finding, count(*) AS n FROM events WHERE type IN ('agent.gap', 'agent.chain_broken') AND ts >= ? AND ts < ? GROUP BY terminal_id, type, finding")
    .all(since, until) as { id: string; type: string; finding: string | null; n: number }[];
  const out = new Map<string, ChainFacts>();
  // Events retention archived and deleted (console/retention: chain_base) were reported all the same.
  const archived = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'chain_base'").get()
    ? db.prepare('SELECT count(*) AS n FROM chain_base WHERE agent_id = ? AND ts >= ? AND ts < ?')
    : null;
  for (const h of heads) {
    const n = (count.get(h.id, since, until) as { n: number }).n + ((archived?.get(h.id, since, until) as { n: number } | undefined)?.n ?? 0);
    out.set(h.id, { events: n, gaps: 0, broken: 0, tampered: 0, headSeq: h.last_seq, headHash: h.last_hash });
  }
  for (const f of findings) {
    const c = out.get(f.id);
    if (!c) continue;
    if (f.type === 'agent.gap') c.gaps += f.n;
    else if (f.finding === 'tampered') c.tampered += f.n;
    else c.broken += f.n;
  }
  // Issue 17: gaps later filled by a re-send or accounted for by the agent's drop record are not
  // unexplained; the dropped events are counted apart.
  const settled = db
    .prepare("SELECT terminal_id AS id, type, sum(json_extract(data, '$.closesGaps')) AS closed, sum(json_extract(data, '$.events')) AS events FROM events WHERE type IN ('agent.gap_filled', 'agent.drop_accounted') AND ts >= ? AND ts < ? GROUP BY terminal_id, type")
    .all(since, until) as { id: string; type: string; closed: number | null; events: number | null }[];
  for (const f of settled) {
    const c = out.get(f.id);
    if (!c) continue;
    c.gaps = Math.max(0, c.gaps - (f.closed ?? 0));
    if (f.type === 'agent.drop_accounted') c.dropped = (c.dropped ?? 0) + (f.events ?? 0);
  }
  return out;
}

export function exceptionFacts(ctx: ConsoleContext, since: string, until: string, files: FileWritten[], now: Date): ExceptionFacts[] {
  // Who asked: a staff member's application from the terminal (申請), or a request recorded at the console.
  // In the period: granted before its end, and still in force (not yet expired nor revoked) at its start.
  const inPeriod = listExceptions(ctx, { all: true }, now).filter((e) => e.grantedAt < until && (e.revokedAt && e.revokedAt < e.expiresAt ? e.revokedAt : e.expiresAt) >= since);
  const grantIds = inPeriod.map((e) => e.id);
  const applications = applicationsForGrants(ctx, grantIds, now);
  const requests = requestsForGrants(ctx, grantIds);
  return inPeriod
    .map((e) => {
      const a = applications.get(e.id);
      const q = a ? { requestedBy: a.staffUser, staffUser: a.staffUser, decidedBy: a.decidedBy, id: a.id } : (requests.get(e.id) ?? null);
      const end = e.revokedAt && e.revokedAt < e.expiresAt ? e.revokedAt : e.expiresAt;
      const vidpid = `${e.vendorId}:${e.productId}`;
      return {
        id: e.id,
        agentId: e.agentId,
        device: deviceSpecOf(e),
        access: e.access,
        grantedAt: e.grantedAt,
        expiresAt: e.expiresAt,
        revokedAt: e.revokedAt,
        reason: e.reason,
        applicant: q ? q.requestedBy : null,
        staffUser: q ? q.staffUser : null,
        approver: q?.decidedBy ?? e.grantedBy,
        requestId: q?.id ?? null,
        // The agent names the exception that opened the medium; older agents do not: then the device within the period.
        files: files.filter((w) => w.agentId === e.agentId && (w.exceptionId === e.id || (w.exceptionId === null && w.device.startsWith(vidpid) && w.ts >= e.grantedAt && w.ts < end))),
      };
    });
}

/** Each terminal's latest posture report, judged against the policy in force now. */
export function postureFacts(ctx: ConsoleContext, policy: PolicyDocument): Map<string, PostureFacts> {
  const out = new Map<string, PostureFacts>();
  for (const p of latestPostures(ctx.db)) {
    const controls: PostureFacts['controls'] = {};
    for (const v of postureVerdicts(p.doc, policy)) controls[v.control] = { ok: v.ok, detail: v.why };
    out.set(p.agentId, { reportedAt: p.receivedAt, controls });
  }
  return out;
}

export function gatherFacts(ctx: ConsoleContext, fromDay: string, toDay: string, now: Date): ReportFacts {
  const since = dayStartIso(fromDay);
  const until = dayEndIso(toDay);
  const terminals: TerminalFacts[] = listAgents(ctx)
    .filter((a) => a.status !== 'revoked')
    .map((a) => ({ id: a.id, hostname: a.hostname, status: a.status as TerminalFacts['status'], policyVersion: a.policyVersion, monitorOnly: a.monitorOnly, lastSeen: a.lastSeen }));
  const files = filesWritten(ctx.db, since, until);
  const policy = ctx.currentPolicy().policy;
  return {
    fromDay,
    toDay,
    since,
    until,
    terminals,
    policy,
    policies: policyVersions(ctx, policyPublicKey(ctx)),
    posture: postureFacts(ctx, policy),
    mfaSuccess: countBy(ctx.db, ['mfa.success'], since, until),
    softwareSeen: countBy(ctx.db, ['software.unauthorized_process', 'software.unauthorized_file'], since, until),
    softwareStopped: countBy(ctx.db, ['software.killed', 'software.quarantined', 'software.exec_denied'], since, until),
    exceptions: exceptionFacts(ctx, since, until, files, now),
    chain: chainFacts(ctx.db, since, until),
    silentAlerts: countBy(ctx.db, ['agent.silent'], since, until),
  };
}
