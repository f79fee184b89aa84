/** The I/O around ./evidence.ts: reads the period's events and the console's signing key, records the export. */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CONSOLE_CHAIN_ID } from '../../protocol/events.js';
import { signedEvent, queryEvents } from '../core/events.js';
import { consolePaths } from '../core/paths.js';
import type { ConsoleContext } from '../module.js';
import { buildEvidence, keyFingerprint, MAX_EVIDENCE_EVENTS, type EvidenceEvent, type RetentionFacts } from './evidence.js';
import { evaluate } from './items.js';
import { dayEndIso, dayStartIso, filesWritten, gatherFacts } from './store.js';

function tooMany(): Error {
  return new Error(`期間内の操作ログが ${MAX_EVIDENCE_EVENTS} 件を超えます。期間を短くしてください / more than ${MAX_EVIDENCE_EVENTS} events in the period: choose a shorter period`);
}

export function evidenceEvents(ctx: ConsoleContext, since: string, until: string): EvidenceEvent[] {
  // Counted on the ts index first: a period too long is refused before any row is read.
  if ((ctx.db.prepare('SELECT count(*) AS n FROM events WHERE ts >= ? AND ts < ?').get(since, until) as { n: number }).n > MAX_EVIDENCE_EVENTS) throw tooMany();
  const rows = queryEvents(ctx.db, { since, until, limit: MAX_EVIDENCE_EVENTS + 1 });
  if (rows.length > MAX_EVIDENCE_EVENTS) throw tooMany();
  return rows.map((e) => ({ ...signedEvent(e), terminalId: e.terminalId, chain: e.chain, receivedAt: e.receivedAt, storedTs: e.ts }));
}

/** Retention archives overlapping the period and the archived events per chain (none when retention never ran). */
function retentionFacts(ctx: ConsoleContext, since: string, until: string): RetentionFacts | undefined {
  if (!ctx.db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'chain_base'").get()) return undefined;
  const archivedEvents = ctx.db.prepare('SELECT agent_id AS agentId, count(*) AS events FROM chain_base WHERE ts >= ? AND ts < ? GROUP BY agent_id ORDER BY agent_id').all(since, until) as RetentionFacts['archivedEvents'];
  if (!archivedEvents.length) return undefined;
  const archives = ctx.db
    .prepare("SELECT file, from_ts AS \"from\", to_ts AS \"to\", events, manifest_sha256 AS manifestSha256 FROM retention_archives WHERE status = 'complete' AND from_ts < ? AND to_ts >= ? ORDER BY id")
    .all(until, since) as RetentionFacts['archives'];
  return { archives, archivedEvents };
}

/**
 * Builds the signed archive for a period. The export is recorded (admin.evidence_exported) before
 * the archive is handed out; the event itself falls after the archive's events (it is not covered).
 */
export function exportEvidence(ctx: ConsoleContext, fromDay: string, toDay: string, actor: string, now = new Date()): { archive: Buffer; events: number; fingerprint: string } {
  const events = evidenceEvents(ctx, dayStartIso(fromDay), dayEndIso(toDay));
  const facts = gatherFacts(ctx, fromDay, toDay, now);
  const items = evaluate(facts);
  const paths = consolePaths(ctx.dataDir);
  const privateKey = createPrivateKey(readFileSync(paths.policyKey, 'utf8'));
  const publicKey = createPublicKey(privateKey);
  const archive = buildEvidence({
    facts,
    items,
    events,
    files: filesWritten(ctx.db, facts.since, facts.until),
    organisation: ctx.organisation(),
    generatedBy: actor,
    generatedAt: now,
    privateKey,
    publicKey,
    retention: retentionFacts(ctx, dayStartIso(fromDay), dayEndIso(toDay)),
    consoleHead: ctx.db.prepare('SELECT seq, hash FROM events WHERE agent_id = ? ORDER BY seq DESC LIMIT 1').get(CONSOLE_CHAIN_ID) as { seq: number; hash: string } | undefined,
  });
  const fingerprint = keyFingerprint(publicKey);
  ctx.recordEvent({ type: 'admin.evidence_exported', user: actor, data: { from: fromDay, to: toDay, events: events.length, bytes: archive.length, fingerprint } });
  return { archive, events: events.length, fingerprint };
}
