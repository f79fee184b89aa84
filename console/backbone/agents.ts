/** Terminals and enrollment tokens: the data the CLI, the API and the web console share. */
import { createHash, randomBytes } from 'node:crypto';
import { safeText } from '../../protocol/text.js';
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
