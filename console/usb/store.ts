/**
 * Time-limited exceptions (一時許可) for one device on one terminal: their tables and the only
 * code that writes them. Granted here, judged by this console's clock (the agent receives
 * `serverTime` and judges expiry with ctx.console.consoleNow()), fetched by the agent on a timer
 * and on plug. The device's matching key is its raw serial (serialHex); `serial` is display text.
 */
import { randomBytes } from 'node:crypto';
import type { UsbException, UsbExceptionsResponse } from '../../protocol/policy-usb.js';
import { safeText } from '../../protocol/text.js';
import { parseDuration, type ConsoleContext } from '../module.js';

export const usbMigrations = [
  `CREATE TABLE usb_exceptions (
     id TEXT PRIMARY KEY,
     agent_id TEXT NOT NULL,
     vendor_id TEXT NOT NULL,
     product_id TEXT NOT NULL,
     serial TEXT,
     access TEXT NOT NULL CHECK (access IN ('allow', 'readonly')),
     granted_at TEXT NOT NULL,
     expires_at TEXT NOT NULL,
     granted_by TEXT NOT NULL,
     reason TEXT NOT NULL,
     revoked_at TEXT,
     revoked_by TEXT
   )`,
  `CREATE INDEX usb_exceptions_agent ON usb_exceptions (agent_id, expires_at)`,
  // 一時許可の申請 (console/usb/requests.ts)
  `CREATE TABLE usb_exception_requests (
  id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL,
  vendor_id TEXT NOT NULL,
  product_id TEXT NOT NULL,
  serial TEXT,
  access TEXT NOT NULL CHECK (access IN ('allow', 'readonly')),
  for_ms INTEGER NOT NULL,
  staff_user TEXT NOT NULL,
  reason TEXT NOT NULL,
  requested_by TEXT NOT NULL,
  requested_at TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
  decided_by TEXT,
  decided_at TEXT,
  decision_note TEXT,
  grant_id TEXT
)`,
  // The matching key: the raw serial bytes as hex (the display serial cannot match every device).
  // NULL in rows from before it: their `serial` text is compared as then.
  `ALTER TABLE usb_exceptions ADD COLUMN serial_hex TEXT`,
  `ALTER TABLE usb_exception_requests ADD COLUMN serial_hex TEXT`,
];

/** A duration of at most 30 days (an exception is temporary by design), in milliseconds. */
export function exceptionDuration(s: string): number | null {
  const ms = parseDuration(s);
  return ms !== null && ms > 0 && ms <= 30 * 86_400_000 ? ms : null;
}

/** A device as an exception names it: the matching key (serialHex) and the text people read (serial). */
export interface DeviceSpec {
  vendorId: string;
  productId: string;
  /** Display text (safeText for a serial given as bytes); null = no serial: any device with this VID:PID. */
  serial: string | null;
  /** Raw serial bytes, lowercase hex; null when serial is null. */
  serialHex: string | null;
}

const SERIAL_HEX_MAX = 2048;

/**
 * "VID:PID[:SERIAL]" (hex ids; the serial is text and may itself contain colons) or
 * "VID:PID#HEX" (the serial as its raw bytes in hex: what "grant from this event" fills in, so a
 * serial with control characters, invalid UTF-8 or more than 128 characters matches too). A text
 * serial's key is its UTF-8 bytes, which is how the agent reads a serial.
 */
export function parseDeviceSpec(s: string): DeviceSpec | null {
  const h = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})#([0-9a-fA-F]+)$/.exec(s);
  if (h) {
    const hex = h[3]!.toLowerCase();
    if (hex.length % 2 !== 0 || hex.length > SERIAL_HEX_MAX) return null;
    const text = safeText(Buffer.from(hex, 'hex'), 128);
    return { vendorId: h[1]!.toLowerCase(), productId: h[2]!.toLowerCase(), serial: /\S/.test(text) ? text : '#' + hex.slice(0, 64), serialHex: hex };
  }
  const m = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})(?::(.+))?$/.exec(s);
  if (!m) return null;
  const serial = m[3] ?? null;
  if (serial !== null && (serial.length > 255 || !/\S/.test(serial))) return null;
  return { vendorId: m[1]!.toLowerCase(), productId: m[2]!.toLowerCase(), serial, serialHex: serial === null ? null : Buffer.from(serial, 'utf8').toString('hex') };
}

/** The spec that names exactly this device again (the hex form when the text would not). */
export function deviceSpecOf(x: { vendorId: string; productId: string; serial: string | null; serialHex?: string | null | undefined }): string {
  const base = `${x.vendorId}:${x.productId}`;
  if (typeof x.serialHex === 'string') {
    const text = Buffer.from(x.serialHex, 'hex').toString('utf8');
    // Text only when it reads back as the same bytes, shows as itself, and survives the form's trim().
    const plain = text.length <= 255 && text === text.trim() && text !== '' && Buffer.from(text, 'utf8').toString('hex') === x.serialHex && !/[#\u0000-\u001f\u007f-\u009f]/.test(text);
    return plain ? `${base}:${text}` : `${base}#${x.serialHex}`;
  }
  return x.serial === null ? base : `${base}:${x.serial}`;
}

/** The wire form of a stored key: an old row (text, no hex) keeps the old shape so the agent compares text. */
export function serialHexOf(serial: string | null, serialHex: string | null): { serialHex?: string | null } {
  if (serialHex !== null) return { serialHex };
  return serial === null ? { serialHex: null } : {};
}

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
  const known = ctx.db.prepare('SELECT 1 FROM agents WHERE id = ?').pluck().get(g.agentId);
  if (!known) throw new Error(`unknown terminal (agent id): ${g.agentId}`);
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

