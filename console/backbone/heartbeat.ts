/**
 * Heartbeats are soft state: thousands of terminals beating every 30 s must not cost one
 * fsync'd transaction each. They are collected in memory and written once a second (before
 * silence detection runs), in one transaction. Losing the last second of them in a crash only
 * delays "last seen"; events never go through here.
 */
import type Database from 'better-sqlite3';
import { heartbeatRequestCheck, type HeartbeatRequest } from '../../protocol/api.js';
import { agentBody } from './body.js';

/** POST /api/agent/heartbeat's body, checked by its schema: 400 naming the path, nothing turned into ''/0. */
export function parseHeartbeat(body: unknown): HeartbeatRequest {
  return agentBody(heartbeatRequestCheck, body);
}

/** The row one beat writes. An empty host name keeps the one the console has (`hostname` is the name to keep). */
export function beatOf(agentId: string, hb: HeartbeatRequest, hostname: string, now = new Date()): Beat {
  return {
    id: agentId,
    now: now.toISOString(),
    hostname,
    os: hb.os,
    agentVersion: hb.agentVersion,
    policyVersion: hb.policyVersion,
    outboxDepth: hb.outboxDepth,
    monitorOnly: hb.monitorOnly ? 1 : 0,
  };
}

export interface Beat {
  id: string;
  now: string;
  hostname: string;
  os: string;
  agentVersion: string;
  policyVersion: number;
  outboxDepth: number;
  monitorOnly: number;
}

export class HeartbeatBuffer {
  private pending = new Map<string, Beat>();
  private readonly update: Database.Statement;
  private readonly revive: Database.Statement;
  private readonly writeAll: Database.Transaction<(beats: Beat[]) => void>;

  constructor(db: Database.Database) {
    // Buffered beats never change the status: an agent.stopped ingested after the beat was
    // received must win. Status comes back to online only through writeNow().
    this.update = db.prepare(
      `UPDATE agents SET last_seen = @now, hostname = @hostname, os = @os, agent_version = @agentVersion, policy_version = @policyVersion,
         outbox_depth = @outboxDepth, monitor_only = @monitorOnly WHERE id = @id`,
    );
    this.revive = db.prepare(`UPDATE agents SET status = 'online' WHERE id = ? AND status IN ('offline', 'silent')`);
    this.writeAll = db.transaction((beats: Beat[]) => {
      for (const b of beats) this.update.run(b);
    });
  }

  record(beat: Beat): void {
    this.pending.set(beat.id, beat);
  }

  /** Writes one beat now and marks the terminal online (it was offline or silent). */
  writeNow(beat: Beat): void {
    this.pending.delete(beat.id);
    this.update.run(beat);
    this.revive.run(beat.id);
  }

  flush(): void {
    if (this.pending.size === 0) return;
    const beats = [...this.pending.values()];
    this.pending = new Map();
    this.writeAll(beats);
  }
}
