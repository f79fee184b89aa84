/**
 * The backbone's store: terminals (`agents`) and enrollment tokens. The CLI, the API and the web
 * pages go through these functions; the ingest and heartbeat writers (./ingest.ts, ./heartbeat.ts)
 * keep their own prepared statements on `agents` because they are the hot path.
 */
import { createHash, randomBytes } from 'node:crypto';
import { safeText } from '../../protocol/text.js';
import type Database from 'better-sqlite3';
import type { ConsoleContext } from '../module.js';

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function createEnrollToken(ctx: ConsoleContext, ttlMs: number, uses: number, actor: string): { token: string; expiresAt: string } {
  // The prefix keeps a token from starting with '-', which command lines would take for an option.
  const token = 'skt_' + randomBytes(24).toString('base64url');
  const expiresAt = new Date(Date.now() + ttlMs).toISOString();
  ctx.db
    .prepare('INSERT INTO enroll_tokens (token_hash, created_at, expires_at, uses_left, created_by) VALUES (?, ?, ?, ?, ?)')
    .run(hashToken(token), new Date().toISOString(), expiresAt, uses, actor);
  ctx.recordEvent({ type: 'admin.enroll_token_created', user: actor, data: { expiresAt, uses } });
  return { token, expiresAt };
}

export interface AgentSummary {
  id: string;
  hostname: string;
  status: 'online' | 'offline' | 'silent' | 'revoked';
  lastSeen: string | null;
  policyVersion: number;
  os: string;
  agentVersion: string;
  monitorOnly: boolean;
  outboxDepth: number;
}

/** id and claimed host name of every terminal (pages name terminals by these). */
export function agentHostnames(db: Database.Database): { id: string; hostname: string }[] {
  return db.prepare('SELECT id, hostname FROM agents').all() as { id: string; hostname: string }[];
}

/** Terminals per status, for the dashboard. */
export function agentStatusCounts(db: Database.Database): { status: AgentSummary['status']; n: number }[] {
  return db.prepare('SELECT status, count(*) AS n FROM agents GROUP BY status').all() as { status: AgentSummary['status']; n: number }[];
}

/** Terminals (not revoked) per policy version they last reported, newest first. */
export function policyVersionCounts(db: Database.Database): { version: number; n: number }[] {
  return db.prepare("SELECT policy_version AS version, count(*) AS n FROM agents WHERE status != 'revoked' GROUP BY policy_version ORDER BY policy_version DESC").all() as { version: number; n: number }[];
}

/** The enrolment row an agent request is authenticated against (core/http-app.ts), as one prepared lookup. */
export function agentAuthLookup(db: Database.Database): (id: string) => { status: string; cert_fingerprint: string; next_cert_fingerprint: string | null } | undefined {
  // next_cert_fingerprint: a renewed certificate not yet confirmed (console/core/renewal.ts) is accepted too.
  const row = db.prepare('SELECT a.status, a.cert_fingerprint, r.fingerprint AS next_cert_fingerprint FROM agents a LEFT JOIN cert_renewals r ON r.agent_id = a.id WHERE a.id = ?');
  return (id) => row.get(id) as { status: string; cert_fingerprint: string; next_cert_fingerprint: string | null } | undefined;
}

export function listAgents(ctx: ConsoleContext): AgentSummary[] {
  const rows = ctx.db
    .prepare('SELECT id, hostname, status, last_seen, policy_version, os, agent_version, monitor_only, outbox_depth FROM agents ORDER BY hostname, id')
    .all() as { id: string; hostname: string; status: AgentSummary['status']; last_seen: string | null; policy_version: number; os: string; agent_version: string; monitor_only: number; outbox_depth: number }[];
  return rows.map((r) => ({
    id: r.id,
    hostname: r.hostname,
    status: r.status,
    lastSeen: r.last_seen,
    policyVersion: r.policy_version,
    os: r.os,
    agentVersion: r.agent_version,
    monitorOnly: r.monitor_only === 1,
    outboxDepth: r.outbox_depth,
  }));
}

/**
 * What staff would read as the same host name. Names are each terminal's own claim (enrolment,
 * heartbeats): one terminal can take another's, so a name must never stand for a terminal alone.
 */
export function hostnameKey(hostname: string): string {
  return safeText(hostname, 64)
    .normalize('NFKC')
    .replace(/[\s\u00ad\u200b-\u200f\u2060\ufeff]/gu, '')
    .toLowerCase();
}

/** Other terminals (not revoked) whose name reads the same as `hostname`: at most 5 ids. */
export function sameNameAs(ctx: ConsoleContext, hostname: string, except: string): string[] {
  const key = hostnameKey(hostname);
  const rows = ctx.db.prepare("SELECT id, hostname FROM agents WHERE id != ? AND status != 'revoked' ORDER BY id").all(except) as { id: string; hostname: string }[];
  return rows.filter((r) => hostnameKey(r.hostname) === key).slice(0, 5).map((r) => r.id);
}

/** An unused, unexpired token's row by its hash (the token itself is never stored). */
export function findEnrollToken(ctx: ConsoleContext, tokenHash: string): { expiresAt: string; usesLeft: number } | null {
  const r = ctx.db.prepare('SELECT expires_at, uses_left FROM enroll_tokens WHERE token_hash = ?').get(tokenHash) as { expires_at: string; uses_left: number } | undefined;
  return r ? { expiresAt: r.expires_at, usesLeft: r.uses_left } : null;
}

/** Takes one use of the token if it is still valid at `nowIso`; false when it was spent or expired meanwhile. */
export function spendEnrollToken(ctx: ConsoleContext, tokenHash: string, nowIso: string): boolean {
  return ctx.db.prepare('UPDATE enroll_tokens SET uses_left = uses_left - 1 WHERE token_hash = ? AND uses_left > 0 AND expires_at > ?').run(tokenHash, nowIso).changes === 1;
}

export interface ActiveEnrollToken {
  tokenHash: string;
  createdAt: string;
  expiresAt: string;
  usesLeft: number;
  createdBy: string;
}

/** Tokens that can still enrol a terminal, newest first (at most 50). */
export function listEnrollTokens(ctx: ConsoleContext, nowIso = new Date().toISOString()): ActiveEnrollToken[] {
  const rows = ctx.db
    .prepare('SELECT token_hash, created_at, expires_at, uses_left, created_by FROM enroll_tokens WHERE expires_at > ? AND uses_left > 0 ORDER BY created_at DESC LIMIT 50')
    .all(nowIso) as { token_hash: string; created_at: string; expires_at: string; uses_left: number; created_by: string }[];
  return rows.map((t) => ({ tokenHash: t.token_hash, createdAt: t.created_at, expiresAt: t.expires_at, usesLeft: t.uses_left, createdBy: t.created_by }));
}

export function agentExists(ctx: ConsoleContext, id: string): boolean {
  return ctx.db.prepare('SELECT 1 FROM agents WHERE id = ?').get(id) !== undefined;
}

export function insertAgent(ctx: ConsoleContext, a: { id: string; hostname: string; os: string; agentVersion: string; certFingerprint: string }, nowIso: string): void {
  ctx.db
    .prepare('INSERT INTO agents (id, hostname, os, agent_version, cert_fingerprint, enrolled_at, last_seen, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
    .run(a.id, a.hostname, a.os, a.agentVersion, a.certFingerprint, nowIso, nowIso, 'online');
}

/** What the terminal page shows beyond the list: enrolment, revocation, the last sequence number. */
export function agentRecord(ctx: ConsoleContext, id: string): { enrolledAt: string; revokedAt: string | null; lastSeq: number } | null {
  const r = ctx.db.prepare('SELECT enrolled_at, revoked_at, last_seq FROM agents WHERE id = ?').get(id) as { enrolled_at: string; revoked_at: string | null; last_seq: number } | undefined;
  return r ? { enrolledAt: r.enrolled_at, revokedAt: r.revoked_at, lastSeq: r.last_seq } : null;
}

/** Terminals that have been online but not heard from since `beforeIso`. */
export function onlineNotSeenSince(ctx: ConsoleContext, beforeIso: string): { id: string; hostname: string; lastSeen: string }[] {
  const rows = ctx.db.prepare("SELECT id, hostname, last_seen FROM agents WHERE status = 'online' AND last_seen < ?").all(beforeIso) as { id: string; hostname: string; last_seen: string }[];
  return rows.map((r) => ({ id: r.id, hostname: r.hostname, lastSeen: r.last_seen }));
}

/** Marks a terminal silent and raises the alert, in one transaction (only if it is still online). */
export function markSilent(ctx: ConsoleContext, a: { id: string; hostname: string; lastSeen: string }): void {
  ctx.db.transaction(() => {
    if (ctx.db.prepare("UPDATE agents SET status = 'silent' WHERE id = ? AND status = 'online'").run(a.id).changes !== 1) return;
    ctx.recordEvent({ type: 'agent.silent', terminalId: a.id, data: { agentId: a.id, hostname: a.hostname, lastSeen: a.lastSeen } });
  })();
}

/**
 * Revokes a terminal: its certificate is refused from now on (console/core/server.ts checks the
 * status on every request). The one way to revoke, for the CLI and the web page alike, with one
 * event, `admin.terminal_revoked`, recorded in the same transaction as the change (the CLI used to
 * write the now retired `agent.revoked`). False when there is no such terminal or it is already revoked.
 */
export function revokeTerminal(ctx: ConsoleContext, id: string, actor: string): boolean {
  return ctx.db.transaction((): boolean => {
    const before = ctx.db.prepare('SELECT status FROM agents WHERE id = ?').get(id) as { status: string } | undefined;
    if (!before || before.status === 'revoked') return false;
    ctx.db.prepare("UPDATE agents SET status = 'revoked', revoked_at = ? WHERE id = ?").run(new Date().toISOString(), id);
    ctx.recordEvent({ type: 'admin.terminal_revoked', user: actor, terminalId: id, data: { agentId: id, before: { status: before.status }, after: { status: 'revoked' } } });
    return true;
  })();
}
