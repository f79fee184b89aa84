/**
 * Console side of removable-media control: time-limited exceptions (一時許可) for one device on
 * one terminal. Granted here, judged by this console's clock (the agent receives `serverTime`
 * and judges expiry with ctx.console.consoleNow()), fetched by the agent on a timer and on plug.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { UsbException, UsbExceptionsResponse } from '../../protocol/policy-usb.js';
import { safeText } from '../../protocol/text.js';
import { decideRequest, listRequests, requestException, RequestError, type ExceptionRequest } from './requests.js';
import { parseDuration, withConsole, type CliCommand, type ConsoleContext, type ConsoleModule, type Route } from '../module.js';

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
];

/** A duration of at most 30 days (an exception is temporary by design), in milliseconds. */
export function exceptionDuration(s: string): number | null {
  const ms = parseDuration(s);
  return ms !== null && ms > 0 && ms <= 30 * 86_400_000 ? ms : null;
}

/** "VID:PID[:SERIAL]" (hex ids; the serial may itself contain colons). */
export function parseDeviceSpec(s: string): { vendorId: string; productId: string; serial: string | null } | null {
  const m = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})(?::(.+))?$/.exec(s);
  if (!m) return null;
  const serial = m[3] ?? null;
  if (serial !== null && (serial.length > 255 || !/\S/.test(serial))) return null;
  return { vendorId: m[1]!.toLowerCase(), productId: m[2]!.toLowerCase(), serial };
}

interface Row {
  id: string;
  agent_id: string;
  vendor_id: string;
  product_id: string;
  serial: string | null;
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
  if (!dev) throw new Error('--device must be VID:PID[:SERIAL] (hex), e.g. 0781:5581:4C530001');
  const known = ctx.db.prepare('SELECT 1 FROM agents WHERE id = ?').pluck().get(g.agentId);
  if (!known) throw new Error(`unknown terminal (agent id): ${g.agentId}`);
  const id = 'ux-' + randomBytes(6).toString('hex');
  const row: Row = {
    id,
    agent_id: g.agentId,
    vendor_id: dev.vendorId,
    product_id: dev.productId,
    serial: dev.serial,
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
      data: { id, vendorId: dev.vendorId, productId: dev.productId, serial: dev.serial, access: g.access, expiresAt: row.expires_at, reason: g.reason },
    });
    ctx.db
      .prepare(
        `INSERT INTO usb_exceptions (id, agent_id, vendor_id, product_id, serial, access, granted_at, expires_at, granted_by, reason)
         VALUES (@id, @agent_id, @vendor_id, @product_id, @serial, @access, @granted_at, @expires_at, @granted_by, @reason)`,
      )
      .run(row);
  })();
  return toRow(row, now);
}

export function revokeException(ctx: ConsoleContext, id: string, actor: string, now = new Date()): UsbExceptionRow {
  const r = ctx.db.prepare('SELECT * FROM usb_exceptions WHERE id = ?').get(id) as Row | undefined;
  if (!r) throw new Error(`no such exception: ${id}`);
  if (r.revoked_at) return toRow(r, now);
  ctx.recordEvent({ type: 'admin.usb_exception_revoked', user: actor, terminalId: r.agent_id, data: { id, vendorId: r.vendor_id, productId: r.product_id, serial: r.serial } });
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

function routes(ctx: ConsoleContext): Route[] {
  return [
    {
      method: 'GET',
      path: '/api/agent/usb/exceptions',
      auth: 'agent',
      handle: (req) => ({ status: 200, json: exceptionsForAgent(ctx, req.agentId!) }),
    },
  ];
}

const USAGE =
  'usb-exception grant --agent ID --device VID:PID[:SERIAL] --for 2h [--reason TEXT] [--readonly] | list [--agent ID] [--all] | revoke ID | ' +
  'request --agent ID --device … --for 2h --reason TEXT [--user STAFF] [--readonly] | requests [--all] | approve REQ | reject REQ [--reason TEXT]   (--data DIR [--by NAME] [--json])';

export const usbExceptionCommand: CliCommand = {
  summary: USAGE + '   外部記録媒体の一時許可 / temporary USB exceptions',
  run(args, open) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        data: { type: 'string' },
        agent: { type: 'string' },
        device: { type: 'string' },
        for: { type: 'string' },
        reason: { type: 'string', default: '' },
        readonly: { type: 'boolean', default: false },
        all: { type: 'boolean', default: false },
        by: { type: 'string', default: 'cli' },
        user: { type: 'string', default: '' },
        json: { type: 'boolean', default: false },
      },
    });
    const [action, arg] = positionals;
    const out = (x: unknown, human: string) => process.stdout.write(values.json ? JSON.stringify(x, null, 2) + '\n' : human);
    const actor = safeText(values.by, 64);
    const line = (e: UsbExceptionRow) =>
      `${e.id}  ${e.agentId}  ${e.vendorId}:${e.productId}:${e.serial === null ? '*' : safeText(e.serial, 64)}  ${e.access === 'readonly' ? '読み取り専用/readonly' : '許可/allow'}  ` +
      `〜${e.expiresAt}  ${e.active ? '有効/active' : e.revokedAt ? '取消/revoked' : '期限切れ/expired'}  ${safeText(e.reason, 80)}\n`;
    if (action === 'grant') {
      const forMs = values.for ? exceptionDuration(values.for) : null;
      if (!values.agent || !values.device || forMs === null) {
        process.stderr.write(`使い方 / usage: sekimori-console ${USAGE}\n(--for: 90s, 30m, 2h, 1d; at most 30d)\n`);
        return 2;
      }
      return withConsole(open, (ctx) => {
        const e = grantException(ctx, { agentId: values.agent!, device: values.device!, forMs, reason: safeText(values.reason, 500), access: values.readonly ? 'readonly' : 'allow', actor });
        out(e, `一時許可を登録しました / exception granted:\n${line(e)}`);
        return 0;
      });
    }
    if (action === 'list') {
      return withConsole(open, (ctx) => {
        const list = listExceptions(ctx, { agentId: values.agent, all: values.all });
        out(list, list.length ? list.map(line).join('') : '(一時許可なし / no exceptions)\n');
        return 0;
      });
    }
    if (action === 'revoke' && arg) {
      return withConsole(open, (ctx) => {
        const e = revokeException(ctx, arg, actor);
        out(e, `一時許可を取り消しました / exception revoked:\n${line(e)}`);
        return 0;
      });
    }
    const reqLine = (q: ExceptionRequest) =>
      `${q.id}  ${q.agentId}  ${q.vendorId}:${q.productId}:${q.serial === null ? '*' : safeText(q.serial, 64)}  ${q.status}  ${safeText(q.staffUser, 32)}  ${safeText(q.requestedBy, 32)}  ${safeText(q.reason, 80)}\n`;
    const decided = (f: () => number) => {
      try {
        return f();
      } catch (e) {
        if (!(e instanceof RequestError)) throw e;
        process.stderr.write(e.message + '\n');
        return 1;
      }
    };
    if (action === 'request') {
      const forMs = values.for ? exceptionDuration(values.for) : null;
      if (!values.agent || !values.device || forMs === null || !values.reason) {
        process.stderr.write(`使い方 / usage: sekimori-console ${USAGE}\n`);
        return 2;
      }
      return withConsole(open, (ctx) =>
        decided(() => {
          const q = requestException(ctx, { agentId: values.agent!, device: values.device!, forMs, access: values.readonly ? 'readonly' : 'allow', staffUser: safeText(values.user, 64), reason: safeText(values.reason, 500), actor });
          out(q, `一時許可を申請しました / exception requested:\n${reqLine(q)}`);
          return 0;
        }),
      );
    }
    if (action === 'requests') {
      return withConsole(open, (ctx) => {
        const list = listRequests(ctx, { all: values.all });
        out(list, list.length ? list.map(reqLine).join('') : '(申請なし / no requests)\n');
        return 0;
      });
    }
    if ((action === 'approve' || action === 'reject') && arg) {
      return withConsole(open, (ctx) =>
        decided(() => {
          const r = decideRequest(ctx, arg, action, actor, safeText(values.reason, 500));
          out(r, `${action === 'approve' ? '承認しました / approved' : '却下しました / rejected'}:\n${reqLine(r.request)}${r.grant ? line(r.grant) : ''}`);
          return 0;
        }),
      );
    }
    process.stderr.write(`使い方 / usage: sekimori-console ${USAGE}\n`);
    return 2;
  },
};

export const usbModule: ConsoleModule = {
  name: 'usb',
  migrations: usbMigrations,
  routes,
  commands: { 'usb-exception': usbExceptionCommand },
};
