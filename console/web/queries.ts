/**
 * The read side of the web console, kept fast at 10 M events without new indexes on `events`
 * (every index there slows ingest): keyset pagination on (ts, rid) over the core indexes, a
 * bounded scan for free-text search, and a daily rollup filled incrementally by rid.
 */
import type Database from 'better-sqlite3';
import { AGENT_EVENT_TYPES, CONSOLE_EVENT_TYPES } from '../../protocol/events.js';
import { t } from '../../protocol/i18n.js';
import { safeText } from '../../protocol/text.js';
import { agentHostnames, agentStatusCounts, hostnameKey, policyVersionCounts } from '../backbone/store.js';
import { eventWhere, rowToEvent, type StoredEvent } from '../core/events.js';
import { consoleLog } from '../core/log.js';

export { hostnameKey };

const KNOWN_TYPES = [...new Set([...Object.keys(AGENT_EVENT_TYPES), ...Object.keys(CONSOLE_EVENT_TYPES)])];

/** Event types the dashboard counts as 遮断 (blocked actions). */
export const BLOCKED_TYPES = ['usb.blocked', 'software.killed', 'software.quarantined'] as const;
/** Types counted day by day for the dashboard and the self-inspection report. */
export const ROLLUP_TYPES = [
  ...BLOCKED_TYPES,
  'usb.exception_used',
  'mfa.failure',
  'mfa.locked',
  'mfa.replay',
  'software.unauthorized_process',
  'software.unauthorized_file',
  'software.installed',
  'agent.silent',
  'agent.tamper',
  'agent.policy_rejected',
  'admin.policy_published',
] as const;

export const SEVERITIES = ['info', 'notice', 'warning', 'critical'] as const;

export interface EventQuery {
  terminal?: string | undefined;
  user?: string | undefined;
  type?: string | undefined; // exact, or "usb.*"
  severity?: string | undefined;
  since?: string | undefined; // ISO
  until?: string | undefined; // ISO, exclusive
  text?: string | undefined;
  /** Keyset cursor: rows strictly older than (ts, rid). */
  before?: { ts: string; rid: number } | undefined;
}

export interface EventRowOut extends StoredEvent {
  rid: number;
}

export interface EventPage {
  events: EventRowOut[];
  /** Cursor for the next (older) page, or null at the end. */
  next: { ts: string; rid: number } | null;
  /** Free-text search stopped after scanning this many rows without filling the page. */
  scanLimited: boolean;
  scanned: number;
}

function whereOf(q: EventQuery): { sql: string; args: Record<string, unknown> } {
  const { where, args } = eventWhere({ type: q.type, terminalId: q.terminal, user: q.user, severity: q.severity, since: q.since, until: q.until });
  if (q.before) {
    // Row-value comparison: SQLite walks the (…, ts, rid) index backwards from the cursor.
    where.push('(ts, rid) < (@bts, @brid)');
    args.bts = q.before.ts;
    args.brid = q.before.rid;
  }
  return { sql: where.length ? 'WHERE ' + where.join(' AND ') : '', args };
}

type Row = Parameters<typeof rowToEvent>[0] & { rid: number };

/** The plan the indexes support: the most selective equality filter's (x, ts) index, newest first. */
function indexHint(q: EventQuery): string {
  if (q.terminal) return 'INDEXED BY events_terminal_ts';
  if (q.user) return 'INDEXED BY events_user_ts';
  if (q.type && !q.type.endsWith('.*')) return 'INDEXED BY events_type_ts';
  return '';
}

export const SCAN_LIMIT = 200_000;

/** One page of events, newest first. Free text is matched on the raw row within a bounded scan. */
export function eventPage(db: Database.Database, q: EventQuery, pageSize = 50, scanLimit = SCAN_LIMIT, budgetMs = 150): EventPage {
  const prefix = q.type?.endsWith('.*') && !q.terminal && !q.user;
  if (prefix && !q.text?.trim()) return prefixPage(db, q, pageSize);
  const { sql, args } = whereOf(q);
  // See bench/console-queries for the plans: the partial user index needs naming, and a type
  // prefix with free text walks the time index (a range on the type index would sort millions).
  const hint = q.user && !q.terminal ? indexHint(q) : prefix ? 'INDEXED BY events_ts' : '';
  const base = `SELECT rid, id, agent_id, seq, ts, type, severity, user, data, prev_hash, hash, terminal_id, chain, received_at, agent_ts FROM events ${hint} ${sql} ORDER BY ts DESC, rid DESC`;
  const text = q.text?.trim().toLowerCase();
  if (!text) {
    const rows = db.prepare(`${base} LIMIT @limit`).all({ ...args, limit: pageSize + 1 }) as Row[];
    const more = rows.length > pageSize;
    const page = rows.slice(0, pageSize);
    const last = page[page.length - 1];
    return { events: page.map((r) => ({ ...rowToEvent(r), rid: r.rid })), next: more && last ? { ts: last.ts, rid: last.rid } : null, scanLimited: false, scanned: page.length };
  }
  // The scan reads only the columns searched (as arrays, not objects) and a case-insensitive regex
  // avoids a lower-cased copy of every row; full rows are fetched for the matches only.
  const needle = new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i');
  const scan = db.prepare(`SELECT rid, ts, type, user, terminal_id, data FROM events ${hint} ${sql} ORDER BY ts DESC, rid DESC LIMIT @limit`).raw(true);
  const found: number[] = [];
  let scanned = 0;
  let last: [number, string] | undefined;
  let exhausted = true;
  const deadline = performance.now() + budgetMs; // the page answers in time; "older" continues the search
  for (const r of scan.iterate({ ...args, limit: scanLimit + 1 }) as IterableIterator<[number, string, string, string | null, string, string]>) {
    if (found.length === pageSize || scanned === scanLimit || (scanned % 2048 === 2047 && performance.now() > deadline)) {
      exhausted = false;
      break;
    }
    scanned++;
    last = [r[0], r[1]];
    if (needle.test(r[5]) || (r[3] !== null && needle.test(r[3])) || needle.test(r[2]) || needle.test(r[4])) found.push(r[0]);
  }
  const next = !exhausted && last ? { ts: last[1], rid: last[0] } : null;
  const byRid = db.prepare('SELECT * FROM events WHERE rid = ?');
  const events = found.map((rid) => {
    const r = byRid.get(rid) as Row;
    return { ...rowToEvent(r), rid: r.rid };
  });
  return { events, next, scanLimited: !exhausted && found.length < pageSize, scanned };
}

/**
 * "usb.*" without a terminal or user: one index seek per concrete type on (type, ts), merged —
 * instead of a range over the type index that SQLite would have to sort.
 */
function prefixPage(db: Database.Database, q: EventQuery, pageSize: number): EventPage {
  const lo = q.type!.slice(0, -1);
  const hi = q.type!.slice(0, -2) + '/';
  if (rollupLag(db) <= 20_000) rollupCatchUp(db, 20_000); // so types first seen a moment ago are included
  const seen = (db.prepare('SELECT type FROM web_types WHERE type >= ? AND type < ?').all(lo, hi) as { type: string }[]).map((r) => r.type);
  const types = [...new Set([...seen, ...KNOWN_TYPES.filter((t) => t >= lo && t < hi)])];
  const merged = types.flatMap((type) => eventPage(db, { ...q, type }, pageSize + 1).events);
  merged.sort((a, b) => (a.ts === b.ts ? b.rid - a.rid : a.ts < b.ts ? 1 : -1));
  const page = merged.slice(0, pageSize);
  const last = page[page.length - 1];
  return { events: page, next: merged.length > pageSize && last ? { ts: last.ts, rid: last.rid } : null, scanLimited: false, scanned: page.length };
}

/** Every matching event, newest first, for CSV export (bounded). */
export function* eventsForExport(db: Database.Database, q: EventQuery, max: number): Generator<EventRowOut> {
  let before = q.before;
  let n = 0;
  while (n < max) {
    const p = eventPage(db, { ...q, before }, Math.min(5000, max - n));
    for (const e of p.events) {
      yield e;
      n++;
    }
    if (!p.next) return;
    before = p.next;
  }
}

export function eventByRid(db: Database.Database, rid: number): EventRowOut | null {
  const r = db.prepare('SELECT * FROM events WHERE rid = ?').get(rid) as Row | undefined;
  return r ? { ...rowToEvent(r), rid: r.rid } : null;
}

/**
 * Rows the rollup could not put on a day (a timestamp SQLite cannot read, e.g. year 9999 + 9 h)
 * are counted under this pseudo-type in web_rollup (no event has it; per-day queries never ask
 * for it), so the count survives restarts without a schema change.
 */
export const ROLLUP_SKIPPED_TYPE = 'rollup.skipped';

export interface SkippedRow {
  rid: number;
  ts: string;
  type: string;
}

function logSkipped(n: number, sample: SkippedRow[]): void {
  const rows = sample.map((r) => `rid ${r.rid} ts ${JSON.stringify(r.ts.slice(0, 40))}`).join(', ');
  consoleLog(
    `rollup: ${t(
      `時刻を日付に換算できないイベント ${n} 件を日別集計から除外しました(操作ログには残ります)。例: ${rows}`,
      `${n} event(s) without a usable time left out of the daily counts (still listed in the log), e.g. ${rows}`,
    )}`,
  );
}

/**
 * Counts events newer than the rollup head into web_rollup; at most `maxRows` per call. Returns
 * rows counted. A row it cannot put on a day is skipped, reported and counted (rollupSkipped)
 * instead of failing the batch: one such row used to stop the rollup, and every page using it, for good.
 */
export function rollupCatchUp(db: Database.Database, maxRows = 100_000, onSkipped: (n: number, sample: SkippedRow[]) => void = logSkipped): number {
  const head = (db.prepare('SELECT rid FROM web_rollup_head WHERE one = 1').get() as { rid: number }).rid;
  const types = ROLLUP_TYPES.map((t) => `'${t}'`).join(',');
  let skipped: { n: number; sample: SkippedRow[] } | null = null;
  const counted = db.transaction((): number => {
    const top = db.prepare('SELECT max(rid) AS r FROM (SELECT rid FROM events WHERE rid > ? ORDER BY rid LIMIT ?)').get(head, maxRows) as { r: number | null };
    if (top.r === null) return 0;
    const range = { head, top: top.r };
    db.exec('CREATE TEMP TABLE IF NOT EXISTS web_batch (day TEXT, type TEXT, terminal_id TEXT, user TEXT, n INTEGER)');
    db.exec('DELETE FROM temp.web_batch');
    db.prepare(
      `INSERT INTO temp.web_batch SELECT substr(datetime(ts, '+9 hours'), 1, 10), type, terminal_id, coalesce(user, ''), count(*) FROM events
       WHERE rid > @head AND rid <= @top AND type IN (${types}) GROUP BY 1, 2, 3, 4`,
    ).run(range);
    const bad = (db.prepare('SELECT coalesce(sum(n), 0) AS n FROM temp.web_batch WHERE day IS NULL').get() as { n: number }).n;
    if (bad > 0) {
      const sample = db
        .prepare(`SELECT rid, ts, type FROM events WHERE rid > @head AND rid <= @top AND type IN (${types}) AND datetime(ts, '+9 hours') IS NULL ORDER BY rid LIMIT 5`)
        .all(range) as SkippedRow[];
      db.prepare(`INSERT INTO web_rollup (dim, type, day, key, n) VALUES ('', ?, '', '', ?) ON CONFLICT (dim, type, day, key) DO UPDATE SET n = n + excluded.n`).run(ROLLUP_SKIPPED_TYPE, bad);
      skipped = { n: bad, sample };
    }
    const upsert = `ON CONFLICT (dim, type, day, key) DO UPDATE SET n = n + excluded.n`;
    db.exec(`INSERT INTO web_rollup (dim, type, day, key, n) SELECT '', type, day, '', sum(n) FROM temp.web_batch WHERE day IS NOT NULL GROUP BY type, day ${upsert}`);
    db.exec(`INSERT INTO web_rollup (dim, type, day, key, n) SELECT 't', type, day, terminal_id, sum(n) FROM temp.web_batch WHERE day IS NOT NULL GROUP BY type, day, terminal_id ${upsert}`);
    db.exec(`INSERT INTO web_rollup (dim, type, day, key, n) SELECT 'u', type, day, user, sum(n) FROM temp.web_batch WHERE day IS NOT NULL AND user != '' GROUP BY type, day, user ${upsert}`);
    db.prepare('INSERT OR IGNORE INTO web_types (type) SELECT DISTINCT type FROM events WHERE rid > @head AND rid <= @top').run(range);
    db.prepare('UPDATE web_rollup_head SET rid = ? WHERE one = 1').run(top.r);
    return top.r - head;
  })();
  const s = skipped as { n: number; sample: SkippedRow[] } | null;
  if (s) onSkipped(s.n, s.sample); // after the commit: the head has moved past them
  return counted;
}

/** Events the rollup left out because their time could not be put on a day (ever, this database). */
export function rollupSkipped(db: Database.Database): number {
  const r = db.prepare(`SELECT n FROM web_rollup WHERE dim = '' AND type = ? AND day = '' AND key = ''`).get(ROLLUP_SKIPPED_TYPE) as { n: number } | undefined;
  return r?.n ?? 0;
}

/** Rows not yet counted (an estimate by rid; cheap). */
export function rollupLag(db: Database.Database): number {
  const head = (db.prepare('SELECT rid FROM web_rollup_head WHERE one = 1').get() as { rid: number }).rid;
  const max = (db.prepare('SELECT max(rid) AS r FROM events').get() as { r: number | null }).r ?? 0;
  return Math.max(0, max - head);
}

/** Days are counted in Japan time (UTC+9, no daylight saving), as the staff read them. */
export const DAY_OFFSET_MS = 9 * 3_600_000;

export function dayString(d: Date): string {
  return new Date(d.getTime() + DAY_OFFSET_MS).toISOString().slice(0, 10);
}

function plainDay(t: number): string {
  return new Date(t).toISOString().slice(0, 10);
}

export function daysBetween(from: string, to: string): string[] {
  const out: string[] = [];
  const end = Date.parse(to + 'T00:00:00Z');
  for (let t = Date.parse(from + 'T00:00:00Z'); t <= end && out.length < 3700; t += 86_400_000) out.push(plainDay(t));
  return out;
}

export interface Dashboard {
  terminals: { online: number; offline: number; silent: number; revoked: number };
  blockedToday: number;
  blockedByDay: { day: string; n: number }[];
  topTerminals: { terminalId: string; hostname: string; n: number }[];
  topUsers: { user: string; n: number }[];
  policyVersions: { version: number; n: number }[];
  currentPolicy: number;
  rollupLag: number;
  rollupSkipped: number;
}

export function perDay(db: Database.Database, types: readonly string[], fromDay: string, toDay: string): { day: string; n: number }[] {
  const marks = types.map(() => '?').join(',');
  const rows = db.prepare(`SELECT day, sum(n) AS n FROM web_rollup WHERE dim = '' AND type IN (${marks}) AND day >= ? AND day <= ? GROUP BY day`).all(...types, fromDay, toDay) as {
    day: string;
    n: number;
  }[];
  const m = new Map(rows.map((r) => [r.day, r.n]));
  return daysBetween(fromDay, toDay).map((day) => ({ day, n: m.get(day) ?? 0 }));
}

/** `hostname` is the display label (terminalNames): safe text, with an id prefix where names collide. */
export function topTerminals(db: Database.Database, types: readonly string[], fromDay: string, toDay: string, limit = 10): { terminalId: string; hostname: string; n: number }[] {
  const marks = types.map(() => '?').join(',');
  const rows = db
    .prepare(`SELECT key AS terminalId, sum(n) AS n FROM web_rollup WHERE dim = 't' AND type IN (${marks}) AND day >= ? AND day <= ? GROUP BY key ORDER BY n DESC, key LIMIT ?`)
    .all(...types, fromDay, toDay, limit) as { terminalId: string; n: number }[];
  const names = rows.length ? terminalNames(db) : new Map<string, string>();
  return rows.map((r) => ({ terminalId: r.terminalId, hostname: names.get(r.terminalId) ?? safeText(r.terminalId, 64), n: r.n }));
}

/** Ids of terminals whose host name collides with another terminal's (revoked ones included: their events remain). */
export function collidingIds(agents: readonly { id: string; hostname: string }[]): Set<string> {
  const byKey = new Map<string, string[]>();
  for (const a of agents) {
    const k = hostnameKey(a.hostname);
    byKey.set(k, [...(byKey.get(k) ?? []), a.id]);
  }
  return new Set([...byKey.values()].filter((ids) => ids.length > 1).flat());
}

/** How a terminal is named in lists: its host name (safe text), plus the first 8 hex of its id when the name collides. */
export function terminalName(hostname: string, id: string, collides: boolean): string {
  // ≤ 64 characters either way, so a caller's safeText(…, 64) never cuts the id prefix off.
  return collides ? `${safeText(hostname, 52)} (${id.slice(0, 8)})` : safeText(hostname, 64);
}

/** id → display name of every terminal (see terminalName). */
export function terminalNames(db: Database.Database): Map<string, string> {
  const agents = agentHostnames(db);
  const dup = collidingIds(agents);
  return new Map(agents.map((a) => [a.id, terminalName(a.hostname, a.id, dup.has(a.id))]));
}

export function topUsers(db: Database.Database, types: readonly string[], fromDay: string, toDay: string, limit = 10): { user: string; n: number }[] {
  const marks = types.map(() => '?').join(',');
  return db
    .prepare(`SELECT key AS user, sum(n) AS n FROM web_rollup WHERE dim = 'u' AND type IN (${marks}) AND day >= ? AND day <= ? GROUP BY key ORDER BY n DESC, key LIMIT ?`)
    .all(...types, fromDay, toDay, limit) as { user: string; n: number }[];
}

export function countTypes(db: Database.Database, types: readonly string[], fromDay: string, toDay: string): number {
  const marks = types.map(() => '?').join(',');
  return (db.prepare(`SELECT coalesce(sum(n), 0) AS n FROM web_rollup WHERE dim = '' AND type IN (${marks}) AND day >= ? AND day <= ?`).get(...types, fromDay, toDay) as { n: number }).n;
}

export function dashboard(db: Database.Database, now = new Date()): Dashboard {
  // Counting what arrived since the last tick keeps the figures current; a large backlog is left to the tick.
  if (rollupLag(db) <= 20_000) rollupCatchUp(db, 20_000);
  const today = dayString(now);
  const from = dayString(new Date(now.getTime() - 29 * 86_400_000));
  const t = { online: 0, offline: 0, silent: 0, revoked: 0 };
  for (const r of agentStatusCounts(db)) t[r.status] = r.n;
  const byDay = perDay(db, BLOCKED_TYPES, from, today);
  return {
    terminals: t,
    blockedToday: byDay[byDay.length - 1]?.n ?? 0,
    blockedByDay: byDay,
    topTerminals: topTerminals(db, BLOCKED_TYPES, from, today),
    topUsers: topUsers(db, BLOCKED_TYPES, from, today),
    policyVersions: policyVersionCounts(db),
    currentPolicy: (db.prepare('SELECT coalesce(max(version), 0) AS v FROM policies').get() as { v: number }).v,
    rollupLag: rollupLag(db),
    rollupSkipped: rollupSkipped(db),
  };
}
