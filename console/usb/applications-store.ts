/**
 * 申請 → 上長承認 (issue 15): the only code on usb_applications and its cursor (schema.ts). A member
 * of staff applies at the terminal (agent/usb/apply.ts); the agent's `usb.application_sent` event
 * reaches the console by the normal event path (offline terminals send it later) and the tick
 * turns it into a pending application here. An approver (or an administrator) approves — through
 * the existing exception grant (grantException: same events, same expiry judged by this console's
 * clock), linked by the application id — or rejects with a comment. The terminal learns the
 * decision from GET /api/agent/usb/applications.
 *
 * The device and the terminal come from the agent's own event (its mTLS identity), never from a
 * form: an application cannot name another terminal or another device.
 */
import { randomBytes } from 'node:crypto';
import { readEventData } from '../../protocol/event-data.js';
import { APPLICATION_LIMITS, type UsbApplicationDecisionsResponse } from '../../protocol/policy-usb.js';
import { safeText } from '../../protocol/text.js';
import { agentHostnames } from '../backbone/store.js';
import type { ConsoleContext } from '../module.js';
import { deviceSpecOf } from './device.js';
import { grantException } from './store.js';

export const APPLICATION_CONSOLE_LIMITS = {
  /** Pending applications one terminal may have here; more are refused (admin.application_refused, folded). */
  pendingPerTerminal: 20,
  /** An application older than this can no longer be decided (the terminal stopped waiting: agent/usb/apply.ts pendingTtlMs). */
  staleMs: 7 * 86_400_000,
  /** Decisions a terminal is sent back (it forgets what it has been told). */
  answerWindowMs: 8 * 86_400_000,
};

export type ApplicationStatus = 'pending' | 'approved' | 'rejected';

export interface Application {
  id: string;
  agentId: string;
  hostname: string;
  appId: string;
  rid: number;
  ref: string;
  vendorId: string;
  productId: string;
  serialHex: string;
  descriptorHash: string;
  serial: string;
  manufacturer: string;
  product: string;
  staffUser: string;
  reason: string;
  hours: number;
  appliedAt: string;
  status: ApplicationStatus;
  decidedBy: string | null;
  decidedAt: string | null;
  comment: string;
  grantId: string | null;
  until: string | null;
  /** Too old to decide (see APPLICATION_CONSOLE_LIMITS.staleMs). */
  stale: boolean;
}

interface Row {
  id: string;
  agent_id: string;
  app_id: string;
  rid: number;
  ref: string;
  vendor_id: string;
  product_id: string;
  serial_hex: string;
  descriptor_hash: string;
  serial: string;
  manufacturer: string;
  product: string;
  staff_user: string;
  reason: string;
  hours: number;
  applied_at: string;
  status: ApplicationStatus;
  decided_by: string | null;
  decided_at: string | null;
  comment: string;
  grant_id: string | null;
  until: string | null;
}

const isStale = (appliedAt: string, now: Date) => now.getTime() - Date.parse(appliedAt) > APPLICATION_CONSOLE_LIMITS.staleMs;

function toApplication(r: Row, hostname: string, now: Date): Application {
  return {
    id: r.id,
    agentId: r.agent_id,
    hostname,
    appId: r.app_id,
    rid: r.rid,
    ref: r.ref,
    vendorId: r.vendor_id,
    productId: r.product_id,
    serialHex: r.serial_hex,
    descriptorHash: r.descriptor_hash,
    serial: r.serial,
    manufacturer: r.manufacturer,
    product: r.product,
    staffUser: r.staff_user,
    reason: r.reason,
    hours: r.hours,
    appliedAt: r.applied_at,
    status: r.status,
    decidedBy: r.decided_by,
    decidedAt: r.decided_at,
    comment: r.comment,
    grantId: r.grant_id,
    until: r.until,
    stale: r.status === 'pending' && isStale(r.applied_at, now),
  };
}

// ---- from events -------------------------------------------------------------------------------

/**
 * Reads the stored events after the cursor (at most `maxRows` rows) and records the applications
 * among them. Returns the rows read (0 = caught up). One immediate transaction from reading the
 * cursor to moving it: the serving console's tick and a CLI run may catch up at the same time.
 */
export function applicationsCatchUp(ctx: ConsoleContext, maxRows = 2000): number {
  const db = ctx.db;
  return db.transaction((): number => {
    const cursor = (db.prepare('SELECT last_rid FROM usb_applications_cursor WHERE id = 1').get() as { last_rid: number }).last_rid;
    const end = (db.prepare('SELECT max(rid) AS r FROM (SELECT rid FROM events WHERE rid > ? ORDER BY rid LIMIT ?)').get(cursor, Math.max(1, Math.floor(maxRows))) as { r: number | null }).r;
    if (end === null) return 0;
    const rows = db
      .prepare("SELECT rid, agent_id, user, ts, data FROM events WHERE rid > ? AND rid <= ? AND type = 'usb.application_sent' AND agent_id != 'console' ORDER BY rid")
      .all(cursor, end) as { rid: number; agent_id: string; user: string | null; ts: string; data: string }[];
    // Stale applications (never decided) do not count: they must not close a terminal's applications for good.
    const pendingOf = db.prepare("SELECT count(*) AS n FROM usb_applications WHERE agent_id = ? AND status = 'pending' AND applied_at >= ?");
    const freshSince = new Date(Date.now() - APPLICATION_CONSOLE_LIMITS.staleMs).toISOString();
    const insert = db.prepare(
      `INSERT OR IGNORE INTO usb_applications (id, agent_id, app_id, rid, ref, vendor_id, product_id, serial_hex, descriptor_hash, serial, manufacturer, product, staff_user, reason, hours, applied_at, status)
       VALUES (@id, @agent_id, @app_id, @rid, @ref, @vendor_id, @product_id, @serial_hex, @descriptor_hash, @serial, @manufacturer, @product, @staff_user, @reason, @hours, @applied_at, 'pending')`,
    );
    for (const r of rows) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(r.data);
      } catch {
        continue;
      }
      const d = readEventData('usb.application_sent', parsed);
      // Not well-formed (marked at ingest already), or no applicant / no serial: nothing to decide.
      if (!d || !r.user || d.serialHex === '' || !Number.isSafeInteger(d.hours) || d.hours < 1) continue;
      const pending = (pendingOf.get(r.agent_id, freshSince) as { n: number }).n;
      if (pending >= APPLICATION_CONSOLE_LIMITS.pendingPerTerminal) {
        ctx.recordRepeated(
          { type: 'admin.application_refused', severity: 'warning', terminalId: r.agent_id, user: safeText(r.user, 64), data: { applicationId: safeText(d.id, 64), reason: 'pending_limit', pending } },
          `application_refused:${r.agent_id}`,
        );
        continue;
      }
      insert.run({
        id: 'uxa-' + randomBytes(6).toString('hex'),
        agent_id: r.agent_id,
        app_id: safeText(d.id, 64),
        rid: r.rid,
        ref: safeText(d.ref, 16),
        vendor_id: d.vendorId,
        product_id: d.productId,
        serial_hex: d.serialHex,
        descriptor_hash: safeText(d.descriptorHash, 64),
        serial: safeText(d.serial, 128),
        manufacturer: safeText(d.manufacturer, 256),
        product: safeText(d.product, 256),
        staff_user: safeText(r.user, 64),
        reason: safeText(d.reason, APPLICATION_LIMITS.reasonMax),
        // The agent bounds it; a hostile agent's 2^53 is cut to the maximum an approver could grant.
        hours: Math.min(d.hours, APPLICATION_LIMITS.hoursMax),
        applied_at: r.ts,
      });
    }
    db.prepare('UPDATE usb_applications_cursor SET last_rid = ? WHERE id = 1').run(end);
    return end - cursor;
  })();
}

/** Catches up for at most `budgetMs` (the tick, and before each read). */
export function applicationsCatchUpFor(ctx: ConsoleContext, budgetMs: number, step = 2000): void {
  const until = performance.now() + budgetMs;
  for (let i = 0; i < 100_000 && performance.now() < until; i++) if (applicationsCatchUp(ctx, step) === 0) return;
}

// ---- reading -----------------------------------------------------------------------------------

export function listApplications(ctx: ConsoleContext, f: { all?: boolean } = {}, now = new Date()): Application[] {
  applicationsCatchUpFor(ctx, 200);
  const names = new Map(agentHostnames(ctx.db).map((a) => [a.id, a.hostname]));
  const rows = (
    f.all
      ? ctx.db.prepare('SELECT * FROM usb_applications ORDER BY applied_at DESC LIMIT 500').all()
      : ctx.db.prepare("SELECT * FROM usb_applications WHERE status = 'pending' ORDER BY applied_at LIMIT 500").all()
  ) as Row[];
  return rows.map((r) => toApplication(r, names.get(r.agent_id) ?? r.agent_id, now));
}

/** The approved applications behind these grants, however old (the audit report needs every one). */
export function applicationsForGrants(ctx: ConsoleContext, grantIds: readonly string[], now = new Date()): Map<string, Application> {
  const names = new Map(agentHostnames(ctx.db).map((a) => [a.id, a.hostname]));
  const rows = ctx.db.prepare("SELECT * FROM usb_applications WHERE status = 'approved' AND grant_id IN (SELECT value FROM json_each(?))").all(JSON.stringify([...new Set(grantIds)])) as Row[];
  return new Map(rows.map((r) => [r.grant_id!, toApplication(r, names.get(r.agent_id) ?? r.agent_id, now)]));
}

export function getApplication(ctx: ConsoleContext, id: string, now = new Date()): Application | null {
  const r = ctx.db.prepare('SELECT * FROM usb_applications WHERE id = ?').get(id) as Row | undefined;
  if (!r) return null;
  const names = new Map(agentHostnames(ctx.db).map((a) => [a.id, a.hostname]));
  return toApplication(r, names.get(r.agent_id) ?? r.agent_id, now);
}

/** What one terminal is told: its recently decided applications, by its own ids. */
export function decisionsForAgent(ctx: ConsoleContext, agentId: string, now = new Date()): UsbApplicationDecisionsResponse {
  const since = new Date(now.getTime() - APPLICATION_CONSOLE_LIMITS.answerWindowMs).toISOString();
  const rows = ctx.db
    .prepare("SELECT app_id, status, until, comment FROM usb_applications WHERE agent_id = ? AND status != 'pending' AND decided_at >= ? ORDER BY decided_at DESC LIMIT 1000")
    .all(agentId, since) as { app_id: string; status: 'approved' | 'rejected'; until: string | null; comment: string }[];
  return { serverTime: now.toISOString(), decisions: rows.map((r) => ({ id: r.app_id, status: r.status, until: r.until, comment: r.comment })) };
}

// ---- deciding ----------------------------------------------------------------------------------

export class ApplicationError extends Error {}

export interface DecideInput {
  decision: 'approve' | 'reject';
  /** The console account deciding. */
  actor: string;
  /** Approval period in hours (default: what was asked), 1 … APPLICATION_LIMITS.hoursMax. */
  hours?: number;
  comment?: string;
}

/**
 * Pure: whether a terminal account and a console account name one person. A Windows applicant is
 * DOMAIN\user (the broker's LookupAccountSid): compared by its user part, as a console name has
 * no domain — a namesake in another domain is refused too (fail closed: another approver decides).
 */
export function sameAccount(staffUser: string, actor: string): boolean {
  const bare = (s: string) => s.slice(s.lastIndexOf('\\') + 1).trim().toLowerCase();
  return staffUser.toLowerCase() === actor.toLowerCase() || (bare(staffUser) !== '' && bare(staffUser) === bare(actor));
}

/**
 * Pure: why this decision may not be made, or null. The approver is never the applicant (the
 * console account compared with the terminal account, case-insensitively: one person often has
 * both under one name); a decided application stays decided; a stale one is not decided.
 */
export function refuseDecision(a: Pick<Application, 'status' | 'staffUser' | 'appliedAt'>, input: DecideInput, now: Date): string | null {
  if (!input.actor) return 'no approver';
  if (a.status !== 'pending') return `既に${a.status === 'approved' ? '承認' : '却下'}されています / already ${a.status}`;
  if (isStale(a.appliedAt, now)) return '古い申請は処理できません / the application is too old to decide';
  if (sameAccount(a.staffUser, input.actor)) return '申請者本人は承認・却下できません / the applicant cannot decide their own application';
  if (input.hours !== undefined && (!Number.isSafeInteger(input.hours) || input.hours < 1 || input.hours > APPLICATION_LIMITS.hoursMax)) {
    return `期間は1〜${APPLICATION_LIMITS.hoursMax}時間です / the period must be 1 to ${APPLICATION_LIMITS.hoursMax} hours`;
  }
  if ((input.comment ?? '').length > APPLICATION_LIMITS.commentMax) return `コメントは${APPLICATION_LIMITS.commentMax}文字以内です / comment too long`;
  return null;
}

export function decideApplication(ctx: ConsoleContext, id: string, input: DecideInput, now = new Date()): Application {
  return ctx.db.transaction((): Application => {
    const a = getApplication(ctx, id, now);
    if (!a) throw new ApplicationError(`申請がありません / no such application: ${safeText(id, 64)}`);
    const refusal = refuseDecision(a, input, now);
    if (refusal) throw new ApplicationError(refusal);
    const comment = safeText(input.comment ?? '', APPLICATION_LIMITS.commentMax);
    const hours = input.hours ?? a.hours;
    let grantId: string | null = null;
    let until: string | null = null;
    if (input.decision === 'approve') {
      // The existing grant: admin.usb_exception_granted, the row the agent fetches, the console's clock.
      const g = grantException(
        ctx,
        {
          agentId: a.agentId,
          device: deviceSpecOf({ vendorId: a.vendorId, productId: a.productId, serial: a.serial, serialHex: a.serialHex }),
          forMs: hours * 3_600_000,
          reason: safeText(`${a.id}: ${a.reason}`, 1000),
          access: 'allow',
          actor: input.actor,
        },
        now,
      );
      grantId = g.id;
      until = g.expiresAt;
    }
    const status = input.decision === 'approve' ? 'approved' : 'rejected';
    ctx.recordEvent({
      type: input.decision === 'approve' ? 'admin.application_approved' : 'admin.application_rejected',
      user: input.actor,
      terminalId: a.agentId,
      data: { id: a.id, applicationId: a.appId, applicant: a.staffUser, vendorId: a.vendorId, productId: a.productId, serialHex: a.serialHex, hours: input.decision === 'approve' ? hours : 0, grantId, until, comment },
    });
    ctx.db
      .prepare("UPDATE usb_applications SET status = ?, decided_by = ?, decided_at = ?, comment = ?, grant_id = ?, until = ? WHERE id = ? AND status = 'pending'")
      .run(status, input.actor, now.toISOString(), comment, grantId, until, a.id);
    return { ...a, status, decidedBy: input.actor, decidedAt: now.toISOString(), comment, grantId, until, hours: input.decision === 'approve' ? hours : a.hours };
  })();
}
