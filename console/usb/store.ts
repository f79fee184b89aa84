/**
 * The only code on the removable-media tables (./schema.ts). Time-limited exceptions (一時許可) for
 * one device on one terminal: granted here, judged by this console's clock (the agent receives
 * `serverTime` and judges expiry with ctx.console.consoleNow()), fetched by the agent on a timer
 * and on plug. The device's matching key is its raw serial (serialHex); `serial` is display text.
 *
 * 一時許可の申請と承認: a request for a temporary exception is recorded by one console account
 * (e.g. the person who took the staff member's call, with the reason) and decided by another.
 * Approval creates the grant; the requester can never approve their own request (separation of
 * duties, so one account alone cannot open a terminal's USB through this path).
 */
import { randomBytes } from 'node:crypto';
import type { UsbException, UsbExceptionsResponse } from '../../protocol/policy-usb.js';
import { agentExists } from '../backbone/store.js';
import type { ConsoleContext } from '../module.js';
import { deviceSpecOf, parseDeviceSpec, serialHexOf } from './device.js';

interface Row {
  id: string;
  agent_id: string;
  vendor_id: string;
  product_id: string;
  serial: string | null;
  serial_hex: string | null;
  access: 'allow' | 'readonly';
  granted_at: string;
  expires_at: string;
  granted_by: string;
  reason: string;
  revoked_at: string | null;
  revoked_by: string | null;
}

export interface UsbExceptionRow extends UsbException {
  revokedAt: string | null;
  revokedBy: string | null;
  active: boolean;
}

function toRow(r: Row, now: Date): UsbExceptionRow {
  return {
    id: r.id,
    agentId: r.agent_id,
    vendorId: r.vendor_id,
    productId: r.product_id,
    serial: r.serial,
    ...serialHexOf(r.serial, r.serial_hex ?? null),
    access: r.access,
    grantedAt: r.granted_at,
    expiresAt: r.expires_at,
    grantedBy: r.granted_by,
    reason: r.reason,
    revokedAt: r.revoked_at,
    revokedBy: r.revoked_by,
    active: r.revoked_at === null && Date.parse(r.expires_at) > now.getTime(),
  };
}

export function grantException(
  ctx: ConsoleContext,
  g: { agentId: string; device: string; forMs: number; reason: string; access: 'allow' | 'readonly'; actor: string },
  now = new Date(),
): UsbExceptionRow {
  const dev = parseDeviceSpec(g.device);
  if (!dev) throw new Error('--device must be VID:PID[:SERIAL] or VID:PID#SERIAL_HEX (hex ids), e.g. 0781:5581:4C530001');
  if (!agentExists(ctx, g.agentId)) throw new Error(`unknown terminal (agent id): ${g.agentId}`);
  const id = 'ux-' + randomBytes(6).toString('hex');
  const row: Row = {
    id,
    agent_id: g.agentId,
    vendor_id: dev.vendorId,
    product_id: dev.productId,
    serial: dev.serial,
    serial_hex: dev.serialHex,
    access: g.access,
    granted_at: now.toISOString(),
    expires_at: new Date(now.getTime() + g.forMs).toISOString(),
    granted_by: g.actor,
    reason: g.reason,
    revoked_at: null,
    revoked_by: null,
  };
  // One transaction: an exception that is not in the audit trail must not exist, nor the reverse.
  ctx.db.transaction(() => {
    ctx.recordEvent({
      type: 'admin.usb_exception_granted',
      user: g.actor,
      terminalId: g.agentId,
      data: { id, vendorId: dev.vendorId, productId: dev.productId, serial: dev.serial, serialHex: dev.serialHex, access: g.access, expiresAt: row.expires_at, reason: g.reason },
    });
    ctx.db
      .prepare(
        `INSERT INTO usb_exceptions (id, agent_id, vendor_id, product_id, serial, serial_hex, access, granted_at, expires_at, granted_by, reason)
         VALUES (@id, @agent_id, @vendor_id, @product_id, @serial, @serial_hex, @access, @granted_at, @expires_at, @granted_by, @reason)`,
      )
      .run(row);
  })();
  return toRow(row, now);
}

export function revokeException(ctx: ConsoleContext, id: string, actor: string, now = new Date()): UsbExceptionRow {
  const r = ctx.db.prepare('SELECT * FROM usb_exceptions WHERE id = ?').get(id) as Row | undefined;
  if (!r) throw new Error(`no such exception: ${id}`);
  if (r.revoked_at) return toRow(r, now);
  ctx.recordEvent({ type: 'admin.usb_exception_revoked', user: actor, terminalId: r.agent_id, data: { id, vendorId: r.vendor_id, productId: r.product_id, serial: r.serial, ...serialHexOf(r.serial, r.serial_hex ?? null) } });
  ctx.db.prepare('UPDATE usb_exceptions SET revoked_at = ?, revoked_by = ? WHERE id = ?').run(now.toISOString(), actor, id);
  return toRow({ ...r, revoked_at: now.toISOString(), revoked_by: actor }, now);
}

export function listExceptions(ctx: ConsoleContext, f: { agentId?: string; all?: boolean }, now = new Date()): UsbExceptionRow[] {
  const rows = (
    f.agentId
      ? ctx.db.prepare('SELECT * FROM usb_exceptions WHERE agent_id = ? ORDER BY granted_at').all(f.agentId)
      : ctx.db.prepare('SELECT * FROM usb_exceptions ORDER BY granted_at').all()
  ) as Row[];
  return rows.map((r) => toRow(r, now)).filter((r) => f.all || r.active);
}

/** What the agent receives: only its own, unrevoked, unexpired grants, with the console's time. */
export function exceptionsForAgent(ctx: ConsoleContext, agentId: string, now = new Date()): UsbExceptionsResponse {
  const rows = ctx.db
    .prepare('SELECT * FROM usb_exceptions WHERE agent_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY granted_at')
    .all(agentId, now.toISOString()) as Row[];
  return {
    serverTime: now.toISOString(),
    exceptions: rows.map((r) => {
      const { revokedAt: _r, revokedBy: _b, active: _a, ...e } = toRow(r, now);
      return e;
    }),
  };
}

// ---- 申請と承認 (requests) -----------------------------------------------------------------------

export interface ExceptionRequest {
  id: string;
  agentId: string;
  vendorId: string;
  productId: string;
  serial: string | null;
  /** The matching key (raw serial bytes, hex); absent in requests recorded before it. */
  serialHex?: string | null;
  access: 'allow' | 'readonly';
  forMs: number;
  staffUser: string;
  reason: string;
  requestedBy: string;
  requestedAt: string;
  status: 'pending' | 'approved' | 'rejected';
  decidedBy: string | null;
  decidedAt: string | null;
  decisionNote: string | null;
  grantId: string | null;
}

interface RequestRow {
  id: string;
  agent_id: string;
  vendor_id: string;
  product_id: string;
  serial: string | null;
  serial_hex: string | null;
  access: 'allow' | 'readonly';
  for_ms: number;
  staff_user: string;
  reason: string;
  requested_by: string;
  requested_at: string;
  status: ExceptionRequest['status'];
  decided_by: string | null;
  decided_at: string | null;
  decision_note: string | null;
  grant_id: string | null;
}

const toRequest = (r: RequestRow): ExceptionRequest => ({
  id: r.id,
  agentId: r.agent_id,
  vendorId: r.vendor_id,
  productId: r.product_id,
  serial: r.serial,
  ...serialHexOf(r.serial, r.serial_hex ?? null),
  access: r.access,
  forMs: r.for_ms,
  staffUser: r.staff_user,
  reason: r.reason,
  requestedBy: r.requested_by,
  requestedAt: r.requested_at,
  status: r.status,
  decidedBy: r.decided_by,
  decidedAt: r.decided_at,
  decisionNote: r.decision_note,
  grantId: r.grant_id,
});

export class RequestError extends Error {}

export function requestException(
  ctx: ConsoleContext,
  q: { agentId: string; device: string; forMs: number; access: 'allow' | 'readonly'; staffUser: string; reason: string; actor: string },
  now = new Date(),
): ExceptionRequest {
  const dev = parseDeviceSpec(q.device);
  if (!dev) throw new RequestError('device must be VID:PID[:SERIAL] or VID:PID#SERIAL_HEX (hex ids)');
  if (!q.reason.trim()) throw new RequestError('a reason is required / 理由は必須です');
  if (!agentExists(ctx, q.agentId)) throw new RequestError(`unknown terminal (agent id): ${q.agentId}`);
  const row: RequestRow = {
    id: 'uxr-' + randomBytes(6).toString('hex'),
    agent_id: q.agentId,
    vendor_id: dev.vendorId,
    product_id: dev.productId,
    serial: dev.serial,
    serial_hex: dev.serialHex,
    access: q.access,
    for_ms: q.forMs,
    staff_user: q.staffUser,
    reason: q.reason,
    requested_by: q.actor,
    requested_at: now.toISOString(),
    status: 'pending',
    decided_by: null,
    decided_at: null,
    decision_note: null,
    grant_id: null,
  };
  ctx.db.transaction(() => {
    ctx.recordEvent({
      type: 'admin.usb_exception_requested',
      user: q.actor,
      terminalId: q.agentId,
      data: { id: row.id, vendorId: row.vendor_id, productId: row.product_id, serial: row.serial, serialHex: row.serial_hex, access: row.access, forMs: row.for_ms, staffUser: row.staff_user, reason: row.reason },
    });
    ctx.db
      .prepare(
        `INSERT INTO usb_exception_requests (id, agent_id, vendor_id, product_id, serial, serial_hex, access, for_ms, staff_user, reason, requested_by, requested_at, status)
         VALUES (@id, @agent_id, @vendor_id, @product_id, @serial, @serial_hex, @access, @for_ms, @staff_user, @reason, @requested_by, @requested_at, @status)`,
      )
      .run(row);
  })();
  return toRequest(row);
}

/** Approves (→ a grant starting now, for the requested period) or rejects a pending request. */
export function decideRequest(
  ctx: ConsoleContext,
  id: string,
  decision: 'approve' | 'reject',
  actor: string,
  note = '',
  now = new Date(),
): { request: ExceptionRequest; grant: UsbExceptionRow | null } {
  return ctx.db.transaction(() => {
    const r = ctx.db.prepare('SELECT * FROM usb_exception_requests WHERE id = ?').get(id) as RequestRow | undefined;
    if (!r) throw new RequestError(`no such request: ${id}`);
    if (r.status !== 'pending') throw new RequestError(`request ${id} is already ${r.status}`);
    if (r.requested_by === actor) throw new RequestError('申請者本人は承認・却下できません / the requester cannot decide their own request');
    let grant: UsbExceptionRow | null = null;
    if (decision === 'approve') {
      grant = grantException(
        ctx,
        {
          agentId: r.agent_id,
          device: deviceSpecOf({ vendorId: r.vendor_id, productId: r.product_id, serial: r.serial, ...serialHexOf(r.serial, r.serial_hex ?? null) }),
          forMs: r.for_ms,
          reason: `${r.id}: ${r.reason}`,
          access: r.access,
          actor,
        },
        now,
      );
    } else {
      ctx.recordEvent({ type: 'admin.usb_exception_rejected', user: actor, terminalId: r.agent_id, data: { id, requestedBy: r.requested_by, note } });
    }
    const status = decision === 'approve' ? 'approved' : 'rejected';
    ctx.db
      .prepare('UPDATE usb_exception_requests SET status = ?, decided_by = ?, decided_at = ?, decision_note = ?, grant_id = ? WHERE id = ?')
      .run(status, actor, now.toISOString(), note, grant?.id ?? null, id);
    return { request: toRequest({ ...r, status, decided_by: actor, decided_at: now.toISOString(), decision_note: note, grant_id: grant?.id ?? null }), grant };
  })();
}

/** The requests that led to these grants, however old (the audit report needs every one, not the latest 500). */
export function requestsForGrants(ctx: ConsoleContext, grantIds: readonly string[]): Map<string, ExceptionRequest> {
  // One pass over the table (no index on grant_id): json_each carries any number of ids as one parameter.
  const rows = ctx.db.prepare('SELECT * FROM usb_exception_requests WHERE grant_id IN (SELECT value FROM json_each(?))').all(JSON.stringify([...new Set(grantIds)])) as RequestRow[];
  return new Map(rows.map((r) => [r.grant_id!, toRequest(r)]));
}

export function listRequests(ctx: ConsoleContext, f: { all?: boolean } = {}): ExceptionRequest[] {
  const sql = f.all ? 'SELECT * FROM usb_exception_requests ORDER BY requested_at DESC LIMIT 500' : "SELECT * FROM usb_exception_requests WHERE status = 'pending' ORDER BY requested_at";
  return (ctx.db.prepare(sql).all() as RequestRow[]).map(toRequest);
}
