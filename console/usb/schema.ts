/**
 * Tables of the removable-media feature: exceptions (一時許可) and their requests (申請と承認).
 * Module name 'usb' as stored databases know it; only ./store.ts touches these tables.
 */
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
  // 申請 → 上長承認 (issue 15, console/usb/applications-store.ts): applications a member of staff sent
  // from a terminal (usb.application_sent events, read by the module's tick from a cursor, like
  // the device inventory), decided by an approver. (agent_id, app_id) is the agent's own id, so a
  // re-sent event is one application and one terminal cannot touch another's.
  `CREATE TABLE usb_applications (
     id TEXT PRIMARY KEY,
     agent_id TEXT NOT NULL,
     app_id TEXT NOT NULL,
     rid INTEGER NOT NULL,
     ref TEXT NOT NULL,
     vendor_id TEXT NOT NULL,
     product_id TEXT NOT NULL,
     serial_hex TEXT NOT NULL,
     descriptor_hash TEXT NOT NULL,
     serial TEXT NOT NULL,
     manufacturer TEXT NOT NULL,
     product TEXT NOT NULL,
     staff_user TEXT NOT NULL,
     reason TEXT NOT NULL,
     hours INTEGER NOT NULL,
     applied_at TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
     decided_by TEXT,
     decided_at TEXT,
     comment TEXT NOT NULL DEFAULT '',
     grant_id TEXT,
     until TEXT,
     UNIQUE (agent_id, app_id)
   );
   CREATE INDEX usb_applications_status ON usb_applications (status, applied_at);
   CREATE INDEX usb_applications_agent ON usb_applications (agent_id, status, decided_at);
   CREATE TABLE usb_applications_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), last_rid INTEGER NOT NULL);
   INSERT INTO usb_applications_cursor (id, last_rid) VALUES (1, 0);`,
];

/**
 * 機器一覧: every USB device each terminal has reported, one row per terminal × VID:PID × raw serial
 * × descriptor hash (a clone with the same serial but other descriptors is a row of its own).
 * Derived from the stored events (devices-store.ts inventoryCatchUp). A module of its own
 * ('usb-devices') so the 'usb' module's pinned migration history stays as it is.
 */
export const usbDeviceMigrations = [
  `CREATE TABLE usb_devices (
     id INTEGER PRIMARY KEY,
     agent_id TEXT NOT NULL,
     vendor_id TEXT NOT NULL,
     product_id TEXT NOT NULL,
     serial_hex TEXT NOT NULL,
     descriptor_hash TEXT NOT NULL,
     serial TEXT NOT NULL,
     manufacturer TEXT NOT NULL,
     product TEXT NOT NULL,
     interfaces TEXT NOT NULL,
     last_type TEXT NOT NULL,
     last_rule TEXT NOT NULL,
     last_user TEXT,
     last_rid INTEGER NOT NULL,
     first_seen TEXT NOT NULL,
     last_seen TEXT NOT NULL,
     seen INTEGER NOT NULL,
     UNIQUE (agent_id, vendor_id, product_id, serial_hex, descriptor_hash)
   );
   CREATE INDEX usb_devices_last_seen ON usb_devices (last_seen, id);`,
  // The index cost every ingested USB event a second B-tree write (last_seen changes on each
  // report); the inventory is small (terminals × their devices), so pages sort it instead.
  `DROP INDEX usb_devices_last_seen`,
  // Derived off the ingest path (one UPSERT per event at ingest cost the worst case about a quarter
  // of ingest's CPU): the last event (rid) the inventory has read. Starting at 0 also takes in the
  // devices of events stored before the inventory existed. Rows written at ingest until now are
  // recounted from the start.
  `DELETE FROM usb_devices;
   CREATE TABLE usb_devices_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), last_rid INTEGER NOT NULL);
   INSERT INTO usb_devices_cursor (id, last_rid) VALUES (1, 0);`,
];
