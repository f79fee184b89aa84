/**
 * Posture store (issue 16): the latest document per terminal; a report that changes the terminal's
 * compliance (judged by protocol/posture.ts postureVerdicts under the policy in force) raises one
 * console event — posture.noncompliant or posture.compliant — per transition, not per report.
 */
import type Database from 'better-sqlite3';
import { postureCompliant, postureDocumentCheck, postureVerdicts, type PostureDocument, type PostureVerdict } from '../../protocol/posture.js';
import { safeText } from '../../protocol/text.js';
import { agentHostnames, listAgents } from '../backbone/store.js';
import { listUsers } from '../mfa/store.js';
import type { ConsoleContext } from '../module.js';

interface Row {
  agent_id: string;
  received_at: string;
  collected_at: string;
  doc: string;
  compliant: number;
  failing: string;
}

function parseDoc(text: string): PostureDocument | null {
  try {
    const x: unknown = JSON.parse(text);
    return postureDocumentCheck.check(x) ? x : null;
  } catch {
    return null;
  }
}

/** The latest posture document of every terminal that sent one (for the matrix and the 自己点検 report). */
export function latestPostures(db: Database.Database): { agentId: string; receivedAt: string; doc: PostureDocument }[] {
  const rows = db.prepare('SELECT agent_id, received_at, doc FROM posture_reports ORDER BY agent_id').all() as Pick<Row, 'agent_id' | 'received_at' | 'doc'>[];
  const out: { agentId: string; receivedAt: string; doc: PostureDocument }[] = [];
  for (const r of rows) {
    const doc = parseDoc(r.doc);
    if (doc) out.push({ agentId: r.agent_id, receivedAt: r.received_at, doc });
  }
  return out;
}

/**
 * The console knows who is enrolled: the agent lists the accounts that can log in, the console
 * marks those without an active enrolment here (before judging and storing).
 */
export function fillEnrolment(ctx: ConsoleContext, doc: PostureDocument): PostureDocument {
  const i = doc.controls.findIndex((c) => c.control === 'mfa_enrolment');
  if (i < 0) return doc;
  const c = doc.controls[i]!;
  const accounts = c.detail?.accounts;
  if (!accounts) return doc;
  const active = new Set(listUsers(ctx).filter((u) => u.status === 'active').map((u) => u.user));
  const unenrolled = accounts.filter((a) => !active.has(a));
  const evidence = [...c.evidence.filter((e) => e !== 'enrolment known at the console'), ...accounts.map((a) => `console: ${a} ${active.has(a) ? 'enrolled (active)' : 'NOT enrolled'}`)].slice(0, 64);
  const controls = [...doc.controls];
  controls[i] = { ...c, state: unenrolled.length ? 'fail' : 'ok', evidence, detail: { ...c.detail, accounts, unenrolled } };
  return { ...doc, controls };
}

/** Stores the document and raises the transition event when compliance changed (first report: only when not compliant). */
export function storePosture(ctx: ConsoleContext, agentId: string, docIn: PostureDocument, nowIso: string): { verdicts: PostureVerdict[]; compliant: boolean } {
  const doc = fillEnrolment(ctx, docIn);
  const verdicts = postureVerdicts(doc, ctx.currentPolicy().policy);
  const compliant = postureCompliant(verdicts);
  const failing = verdicts.filter((v) => !v.ok);
  const tx = ctx.db.transaction(() => {
    const prev = ctx.db.prepare('SELECT compliant FROM posture_reports WHERE agent_id = ?').get(agentId) as { compliant: number } | undefined;
    ctx.db
      .prepare(
        `INSERT INTO posture_reports (agent_id, received_at, collected_at, doc, compliant, failing) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (agent_id) DO UPDATE SET received_at = excluded.received_at, collected_at = excluded.collected_at, doc = excluded.doc, compliant = excluded.compliant, failing = excluded.failing`,
      )
      .run(agentId, nowIso, doc.collectedAt, JSON.stringify(doc), compliant ? 1 : 0, JSON.stringify(failing.map((v) => v.control)));
    const changed = prev === undefined ? !compliant : (prev.compliant === 1) !== compliant;
    if (changed) {
      const hostname = agentHostnames(ctx.db).find((a) => a.id === agentId)?.hostname ?? '';
      ctx.recordEvent({
        type: compliant ? 'posture.compliant' : 'posture.noncompliant',
        terminalId: agentId,
        data: { agentId, hostname: safeText(hostname, 256), failing: failing.map((v) => v.control), why: failing.map((v) => safeText(v.why, 500)), collectedAt: doc.collectedAt },
      });
    }
  });
  tx.immediate();
  return { verdicts, compliant };
}

export interface PostureRow {
  agentId: string;
  hostname: string;
  receivedAt: string | null;
  compliant: boolean | null;
  verdicts: PostureVerdict[];
  doc: PostureDocument | null;
}

/** Every terminal (not revoked), with its latest posture judged under the policy in force now. */
export function postureMatrix(ctx: ConsoleContext): PostureRow[] {
  const policy = ctx.currentPolicy().policy;
  const latest = new Map(latestPostures(ctx.db).map((p) => [p.agentId, p]));
  const agents = listAgents(ctx).filter((a) => a.status !== 'revoked');
  return agents.map((a) => {
    const p = latest.get(a.id);
    if (!p) return { agentId: a.id, hostname: a.hostname, receivedAt: null, compliant: null, verdicts: [], doc: null };
    const verdicts = postureVerdicts(p.doc, policy);
    return { agentId: a.id, hostname: a.hostname, receivedAt: p.receivedAt, compliant: postureCompliant(verdicts), verdicts, doc: p.doc };
  });
}
