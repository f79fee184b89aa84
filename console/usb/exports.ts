/**
 * 持ち出しログ (issue 16), the console's read side: "what was copied to which stick, by whom, when".
 * A query over the stored usb.file_written events (no table of its own: the events are the record,
 * hash-chained per terminal), newest first with keyset pagination on (ts, rid) over the
 * events_type_ts index; filters by terminal, user, device serial and period.
 *
 * parseExportQuery is pure; exportPage / exportsForExport read the events table.
 */
import type Database from 'better-sqlite3';
import { readEventData, type UsbFileWrittenData } from '../../protocol/event-data.js';

export interface ExportQuery {
  terminal?: string;
  user?: string;
  /** The serial as shown (display text) or as raw bytes in hex ("#4c53…"). */
  serial?: string;
  serialHex?: string;
  since?: string; // ISO, inclusive
  until?: string; // ISO, exclusive
  before?: { ts: string; rid: number };
}

export interface ExportForm {
  terminal: string;
  user: string;
  serial: string;
  from: string;
  to: string;
}

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** A calendar day in Japan (the console's display zone) → its first instant in UTC; null when not a real date. */
export function jstDayStart(day: string): string | null {
  const m = DAY.exec(day);
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const t = Date.UTC(y, mo - 1, d) - 9 * 3600_000;
  const back = new Date(t + 9 * 3600_000);
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || y < 1970 || y > 9999) return null;
  return new Date(t).toISOString();
}

/** The search of a GET (query parameters); an error names the parameter. */
export function parseExportQuery(get: (k: string) => string | null | undefined): { query: ExportQuery; form: ExportForm } | { error: string } {
  const s = (k: string, max: number) => (get(k) ?? '').trim().slice(0, max);
  const form: ExportForm = { terminal: s('terminal', 64), user: s('user', 256), serial: s('serial', 512), from: s('from', 10), to: s('to', 10) };
  const query: ExportQuery = {};
  if (form.terminal) {
    if (!/^[0-9a-zA-Z-]{1,64}$/.test(form.terminal)) return { error: 'terminal: not a terminal id' };
    query.terminal = form.terminal;
  }
  if (form.user) query.user = form.user;
  if (form.serial) {
    if (/^#([0-9a-fA-F]{2}){1,1024}$/.test(form.serial)) query.serialHex = form.serial.slice(1).toLowerCase();
    else query.serial = form.serial;
  }
  if (form.from) {
    const t = jstDayStart(form.from);
    if (!t) return { error: 'from: YYYY-MM-DD' };
    query.since = t;
  }
  if (form.to) {
    const t = jstDayStart(form.to);
    if (!t) return { error: 'to: YYYY-MM-DD' };
    query.until = new Date(Date.parse(t) + 86_400_000).toISOString(); // the whole day `to`
  }
  if (query.since && query.until && query.since >= query.until) return { error: 'from: after to' };
  const before = get('before') ?? '';
  if (before) {
    const m = /^(\d{4}-\d{2}-\d{2}T[0-9:.]{8,12}Z)~(\d{1,15})$/.exec(before);
    if (!m) return { error: 'before: not a cursor' };
    query.before = { ts: m[1]!, rid: Number(m[2]) };
  }
  return { query, form };
}

export interface ExportRow {
  rid: number;
  ts: string;
  terminalId: string;
  user: string | null;
  /** null when the stored data does not match its declaration (shown as such, never guessed). */
  data: UsbFileWrittenData | null;
}

interface Raw {
  rid: number;
  ts: string;
  terminal_id: string;
  user: string | null;
  data: string;
}

function whereOf(q: ExportQuery): { sql: string; args: Record<string, unknown> } {
  const where = ["type = 'usb.file_written'"];
  const args: Record<string, unknown> = {};
  if (q.terminal) (where.push('terminal_id = @terminal'), (args.terminal = q.terminal));
  if (q.user) (where.push('user = @user'), (args.user = q.user));
  if (q.since) (where.push('ts >= @since'), (args.since = q.since));
  if (q.until) (where.push('ts < @until'), (args.until = q.until));
  if (q.serialHex) (where.push("json_extract(data, '$.device.serialHex') = @serialHex"), (args.serialHex = q.serialHex));
  if (q.serial) {
    // The serial as typed matches the display text, or the raw bytes of that text.
    where.push("(json_extract(data, '$.device.serial') = @serial OR json_extract(data, '$.device.serialHex') = @serialAsHex)");
    args.serial = q.serial;
    args.serialAsHex = Buffer.from(q.serial, 'utf8').toString('hex');
  }
  if (q.before) (where.push('(ts, rid) < (@bts, @brid)'), (args.bts = q.before.ts), (args.brid = q.before.rid));
  return { sql: where.join(' AND '), args };
}

const toRow = (r: Raw): ExportRow => {
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(r.data);
  } catch {
    parsed = null;
  }
  return { rid: r.rid, ts: r.ts, terminalId: r.terminal_id, user: r.user, data: readEventData('usb.file_written', parsed) };
};

/** One page, newest first; `next` is the cursor of the next (older) page. */
export function exportPage(db: Database.Database, q: ExportQuery, pageSize = 100): { rows: ExportRow[]; next: { ts: string; rid: number } | null } {
  const { sql, args } = whereOf(q);
  const raw = db
    .prepare(`SELECT rid, ts, terminal_id, user, data FROM events INDEXED BY events_type_ts WHERE ${sql} ORDER BY ts DESC, rid DESC LIMIT @lim`)
    .all({ ...args, lim: pageSize + 1 }) as Raw[];
  const more = raw.length > pageSize;
  const rows = raw.slice(0, pageSize).map(toRow);
  const last = rows[rows.length - 1];
  return { rows, next: more && last ? { ts: last.ts, rid: last.rid } : null };
}

/** Every matching row, newest first, at most `max` (the CSV is built in memory). */
export function* exportsForExport(db: Database.Database, q: ExportQuery, max: number): Generator<ExportRow> {
  const { sql, args } = whereOf(q);
  const it = db.prepare(`SELECT rid, ts, terminal_id, user, data FROM events INDEXED BY events_type_ts WHERE ${sql} ORDER BY ts DESC, rid DESC LIMIT @lim`).iterate({ ...args, lim: max }) as IterableIterator<Raw>;
  for (const r of it) yield toRow(r);
}

/** CSV columns (Excel-compatible through console/web/csv.ts). */
export const EXPORT_CSV_HEADER = [
  'time',
  'terminal_id',
  'hostname',
  'user',
  'user_source',
  'path',
  'size',
  'sha256',
  'hash_skipped',
  'device',
  'vendor_id',
  'product_id',
  'serial',
  'serial_hex',
  'descriptor_hash',
  'access',
  'exception_id',
  'filesystem',
  'path_sha256',
  'event_rid',
] as const;

export function exportCsvCells(r: ExportRow, hostname: string): unknown[] {
  const d = r.data;
  if (!d) return [r.ts, r.terminalId, hostname, r.user ?? '', '', '(undeclared data)', '', '', '', '', '', '', '', '', '', '', '', '', '', r.rid];
  return [
    r.ts,
    r.terminalId,
    hostname,
    r.user ?? '',
    d.userSource,
    d.path,
    d.size,
    d.sha256 ?? '',
    d.hashSkipped ?? '',
    d.device.label,
    d.device.vendorId,
    d.device.productId,
    d.device.serial,
    d.device.serialHex ?? '',
    d.device.descriptorHash,
    d.device.access,
    d.device.exceptionId ?? '',
    d.fsType,
    d.pathHash,
    r.rid,
  ];
}
