/**
 * The only code on usb_devices and its cursor (schema.ts usbDeviceMigrations): the device
 * inventory (機器一覧). Derived from the stored usb.* events by the module's tick (about once a
 * second, small steps) and before each read, at most one UPSERT per device per step; read by the
 * page, the CSV export and `sekimori-console devices`.
 */
import type Database from 'better-sqlite3';
import { readEventData } from '../../protocol/event-data.js';
import { listAgents } from '../backbone/store.js';
import type { ConsoleContext } from '../module.js';
import { isUsbDeviceEventType, sightingOf, type DeviceQuery, type DeviceSighting, type UsbDeviceEventType } from './devices.js';

/** One inventory row as readers get it: the device as its newest report described it, and its history. */
export interface InventoryDevice extends Pick<DeviceSighting, 'agentId' | 'vendorId' | 'productId' | 'serialHex' | 'descriptorHash' | 'serial' | 'manufacturer' | 'product' | 'interfaces'> {
  id: number;
  lastType: UsbDeviceEventType;
  lastRule: string;
  lastUser: string | null;
  /** The events row of the newest report (link to its detail). */
  lastRid: number;
  firstSeen: string;
  lastSeen: string;
  /** How many reports (events) this row was built from. */
  seen: number;
}

interface Row {
  id: number;
  agent_id: string;
  vendor_id: string;
  product_id: string;
  serial_hex: string;
  descriptor_hash: string;
  serial: string;
  manufacturer: string;
  product: string;
  interfaces: string;
  last_type: string;
  last_rule: string;
  last_user: string | null;
  last_rid: number;
  first_seen: string;
  last_seen: string;
  seen: number;
}

function toDevice(r: Row): InventoryDevice {
  let interfaces: string[] = [];
  try {
    const v = JSON.parse(r.interfaces) as unknown;
    if (Array.isArray(v)) interfaces = v.filter((x): x is string => typeof x === 'string');
  } catch {
    // written by this file only; a damaged cell shows as no interfaces
  }
  return {
    id: r.id,
    agentId: r.agent_id,
    vendorId: r.vendor_id,
    productId: r.product_id,
    serialHex: r.serial_hex,
    descriptorHash: r.descriptor_hash,
    serial: r.serial,
    manufacturer: r.manufacturer,
    product: r.product,
    interfaces,
    lastType: (isUsbDeviceEventType(r.last_type) ? r.last_type : 'usb.blocked') as UsbDeviceEventType,
    lastRule: r.last_rule,
    lastUser: r.last_user,
    lastRid: r.last_rid,
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
    seen: r.seen,
  };
}

// The newest report (by stored time; a late backlog does not overwrite it) decides what the row says.
const UPSERT = `INSERT INTO usb_devices (agent_id, vendor_id, product_id, serial_hex, descriptor_hash, serial, manufacturer, product, interfaces, last_type, last_rule, last_user, last_rid, first_seen, last_seen, seen)
  VALUES (@agentId, @vendorId, @productId, @serialHex, @descriptorHash, @serial, @manufacturer, @product, @interfaces, @type, @rule, @user, @rid, @firstSeen, @ts, @seen)
  ON CONFLICT (agent_id, vendor_id, product_id, serial_hex, descriptor_hash) DO UPDATE SET
    seen = seen + excluded.seen,
    first_seen = min(first_seen, excluded.first_seen),
    last_seen = max(last_seen, excluded.last_seen),
    serial = iif(excluded.last_seen >= last_seen, excluded.serial, serial),
    manufacturer = iif(excluded.last_seen >= last_seen, excluded.manufacturer, manufacturer),
    product = iif(excluded.last_seen >= last_seen, excluded.product, product),
    interfaces = iif(excluded.last_seen >= last_seen, excluded.interfaces, interfaces),
    last_type = iif(excluded.last_seen >= last_seen, excluded.last_type, last_type),
    last_rule = iif(excluded.last_seen >= last_seen, excluded.last_rule, last_rule),
    last_user = iif(excluded.last_seen >= last_seen, excluded.last_user, last_user),
    last_rid = iif(excluded.last_seen >= last_seen, excluded.last_rid, last_rid)`;

/** Sightings of one device within one batch: the newest, the earliest time, how many. */
interface Folded {
  newest: DeviceSighting;
  firstSeen: string;
  seen: number;
}

/** Records sightings: one prepared UPSERT per device per call (a device reported n times counts n). */
export function deviceRecorder(db: Database.Database): (sightings: readonly DeviceSighting[]) => void {
  const upsert = db.prepare(UPSERT);
  return (sightings) => {
    const byDevice = new Map<string, Folded>();
    for (const s of sightings) {
      const key = `${s.agentId} ${s.vendorId}${s.productId} ${s.serialHex} ${s.descriptorHash}`;
      const f = byDevice.get(key);
      if (!f) byDevice.set(key, { newest: s, firstSeen: s.ts, seen: 1 });
      else {
        f.seen++;
        if (s.ts < f.firstSeen) f.firstSeen = s.ts;
        if (s.ts >= f.newest.ts) f.newest = s;
      }
    }
    for (const { newest: s, firstSeen, seen } of byDevice.values()) upsert.run({ ...s, interfaces: JSON.stringify(s.interfaces), firstSeen, seen });
  };
}

const CATCH_UP_TYPES = "('usb.blocked', 'usb.allowed', 'usb.readonly', 'usb.exception_used', 'usb.would_block')";

/**
 * Brings the inventory up to the newest stored events: reads up to `maxRows` events after the
 * cursor (by rid, the order of storage), folds their USB device reports and writes them with the
 * cursor in one transaction. Returns how many events it stepped over (0: up to date). Events whose
 * data does not match its declaration are stepped over (readEventData), never trusted for a key.
 * The inventory is derived here, off the ingest path (ingest pays nothing; bench/ingest-inventory),
 * so it also covers events stored before it existed.
 */
export function inventoryCatchUp(db: Database.Database, maxRows = 2000): number {
  const record = deviceRecorder(db);
  // One (immediate) transaction from reading the cursor to moving it: the serving console's tick and
  // a CLI run may catch up at the same time, and no event may be counted twice.
  return db.transaction((): number => {
    const cursor = (db.prepare('SELECT last_rid FROM usb_devices_cursor WHERE id = 1').get() as { last_rid: number }).last_rid;
    const end = (db.prepare('SELECT max(rid) AS r FROM (SELECT rid FROM events WHERE rid > ? ORDER BY rid LIMIT ?)').get(cursor, Math.max(1, Math.floor(maxRows))) as { r: number | null }).r;
    if (end === null) return 0;
    const rows = db
      .prepare(`SELECT rid, agent_id, type, user, ts, data FROM events WHERE rid > ? AND rid <= ? AND type IN ${CATCH_UP_TYPES} AND agent_id != 'console' ORDER BY rid`)
      .all(cursor, end) as { rid: number; agent_id: string; type: string; user: string | null; ts: string; data: string }[];
    const sightings: DeviceSighting[] = [];
    for (const r of rows) {
      if (!isUsbDeviceEventType(r.type)) continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(r.data);
      } catch {
        continue;
      }
      const d = readEventData(r.type, parsed);
      const s = d ? sightingOf(r.agent_id, r.type, d, r.user, r.ts, r.rid) : null;
      if (s) sightings.push(s);
    }
    if (sightings.length) record(sightings);
    db.prepare('UPDATE usb_devices_cursor SET last_rid = ? WHERE id = 1').run(end);
    return end - cursor;
  })();
}

/** Catches up for at most `budgetMs` (the tick: small steps, so agents' requests never wait long). */
export function inventoryCatchUpFor(db: Database.Database, budgetMs: number, step = 2000): void {
  const until = performance.now() + budgetMs;
  for (let i = 0; i < 100_000 && performance.now() < until; i++) if (inventoryCatchUp(db, step) === 0) return;
}

/** Stored events the inventory has not read yet. */
export function inventoryLag(db: Database.Database): number {
  const cursor = (db.prepare('SELECT last_rid FROM usb_devices_cursor WHERE id = 1').get() as { last_rid: number }).last_rid;
  return (db.prepare('SELECT count(*) AS n FROM events WHERE rid > ?').get(cursor) as { n: number }).n;
}

// ---- reading -----------------------------------------------------------------------------------

export const DEVICE_PAGE_SIZE = 50;

function where(ctx: ConsoleContext, q: DeviceQuery, withCursor: boolean): { sql: string; params: Record<string, unknown> } {
  const conds: string[] = [];
  const params: Record<string, unknown> = {};
  if (q.terminal) {
    conds.push('agent_id = @terminal');
    params.terminal = q.terminal;
  }
  if (q.verdict) {
    conds.push('last_type = @verdict');
    params.verdict = q.verdict;
  }
  if (q.text) {
    const t = q.text.toLowerCase();
    // Terminal names live with the backbone: match them there, then by id here.
    const ids = listAgents(ctx)
      .filter((a) => a.hostname.toLowerCase().includes(t) || a.id.startsWith(t))
      .map((a) => a.id);
    conds.push(`(instr(vendor_id || ':' || product_id, @t) > 0 OR instr(lower(manufacturer), @t) > 0 OR instr(lower(product), @t) > 0
      OR instr(lower(serial), @t) > 0 OR instr(serial_hex, @t) > 0 OR instr(last_type, @t) > 0 OR instr(lower(last_rule), @t) > 0
      OR instr(lower(coalesce(last_user, '')), @t) > 0 OR agent_id IN (SELECT value FROM json_each(@ids)))`);
    params.t = t;
    params.ids = JSON.stringify(ids);
  }
  if (withCursor && q.before) {
    conds.push('(last_seen < @bl OR (last_seen = @bl AND id < @bi))');
    params.bl = q.before.lastSeen;
    params.bi = q.before.id;
  }
  return { sql: conds.length ? 'WHERE ' + conds.join(' AND ') : '', params };
}

export interface DevicePage {
  devices: InventoryDevice[];
  /** Cursor of the next (older) page, null at the end. */
  next: { lastSeen: string; id: number } | null;
  /** Rows matching the search (all pages). */
  total: number;
}

/** Newest first, keyset-paged (a cursor, never an offset: any page costs the same). */
export function listDevices(ctx: ConsoleContext, q: DeviceQuery, pageSize = DEVICE_PAGE_SIZE): DevicePage {
  const size = Math.max(1, Math.min(500, Math.floor(pageSize)));
  const w = where(ctx, q, true);
  const rows = ctx.db.prepare(`SELECT * FROM usb_devices ${w.sql} ORDER BY last_seen DESC, id DESC LIMIT ${size + 1}`).all(w.params) as Row[];
  const c = where(ctx, q, false);
  const total = (ctx.db.prepare(`SELECT count(*) AS n FROM usb_devices ${c.sql}`).get(c.params) as { n: number }).n;
  const devices = rows.slice(0, size).map(toDevice);
  const last = devices[devices.length - 1];
  return { devices, next: rows.length > size && last ? { lastSeen: last.lastSeen, id: last.id } : null, total };
}

/** Every matching row, newest first, at most `max` (the CSV export). */
export function* devicesForExport(ctx: ConsoleContext, q: DeviceQuery, max: number): Generator<InventoryDevice> {
  const w = where(ctx, { ...q, before: undefined }, false);
  const stmt = ctx.db.prepare(`SELECT * FROM usb_devices ${w.sql} ORDER BY last_seen DESC, id DESC LIMIT ${Math.max(0, Math.floor(max))}`);
  for (const r of stmt.iterate(w.params) as Iterable<Row>) yield toDevice(r);
}

export function deviceById(ctx: ConsoleContext, id: number): InventoryDevice | null {
  if (!Number.isSafeInteger(id)) return null;
  const r = ctx.db.prepare('SELECT * FROM usb_devices WHERE id = ?').get(id) as Row | undefined;
  return r ? toDevice(r) : null;
}

export function deviceCount(ctx: ConsoleContext): number {
  return (ctx.db.prepare('SELECT count(*) AS n FROM usb_devices').get() as { n: number }).n;
}
