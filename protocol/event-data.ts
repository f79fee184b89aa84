/**
 * The `data` of every event type, declared once: the TypeScript type producers write and readers
 * get (EventDataOf<T>), and the runtime check (compiled once with TypeBox).
 *
 * Declarations are open objects (unknown extra keys are allowed): a newer agent may add a field,
 * and the console's folding adds `repeated`/`firstSeen`/`lastSeen`/`folded` to its own events.
 * A field an older agent did not send yet is optional in the check and filled in by
 * readEventData (see LEGACY_FILL), so readers see one shape.
 *
 * Matching keys travel apart from display text: `serialHex` (the raw iSerialNumber bytes) and
 * `descriptorHash`/`vendorId`/`productId` match devices; `serial`, `manufacturer`, `product`
 * went through safeText and are only for people to read.
 */
import { Type, type Static, type TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import type { EventType } from './events.js';
import { describeErrors } from './wire-check.js';

// ---- building blocks ---------------------------------------------------------------------------

const Text = (maxLength = 4096) => Type.String({ maxLength });
const Int = Type.Integer({ minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER });
const Count = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Num = Type.Number({ minimum: -1e15, maximum: 1e15 });
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Hex4 = Type.String({ pattern: '^[0-9a-f]{4}$' });
const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$' });
/** A certificate's SHA-256 fingerprint (issue 17 trust: renewal events). */
const CertFp = Type.String({ pattern: '^[0-9a-f]{64}$', default: '0'.repeat(64) });
/** iSerialNumber is at most 255 descriptor bytes; its UTF-8 text from sysfs stays well under 1 KiB. */
export const SERIAL_HEX_MAX = 2048;
/** '' is a zero-length serial (readers treat it as none). */
const SerialHex = Type.String({ pattern: '^([0-9a-f]{2})*$', maxLength: SERIAL_HEX_MAX });
const Mode = Text(16); // 'enforce' | 'monitor' today; a string so a new mode is not a broken event
const Strings = (max = 256, item = 4096) => Type.Array(Text(item), { maxItems: max });
const Ts = Text(40);

// ---- usb ---------------------------------------------------------------------------------------

const UsbInterfaceVerdictSchema = Type.Object({
  number: Int,
  classes: Strings(64, 16),
  allow: Type.Boolean(),
  rule: Text(512),
});

/** One USB device decision (agent/usb usbEventData). */
const UsbDeviceSchema = Type.Object({
  kind: Type.Literal('usb'),
  mode: Mode,
  port: Text(1024), // Linux "1-2.3"; Windows the device instance id (long)
  busnum: Nullable(Int),
  devnum: Nullable(Int),
  vendorId: Hex4,
  productId: Hex4,
  bcdDevice: Text(8),
  deviceClass: Text(2),
  interfaceClasses: Strings(256, 2),
  interfaces: Type.Array(UsbInterfaceVerdictSchema, { maxItems: 256 }),
  manufacturer: Text(),
  product: Text(),
  /** Display text of the serial (safeText, ≤128 characters): never compare it. */
  serial: Text(),
  /** The raw iSerialNumber bytes as lowercase hex; null when the device has none. The matching key. */
  serialHex: Type.Optional(Nullable(SerialHex)), // agents before serialHex omit it: readers get null
  /** sha256 of the raw descriptors; '' when unreadable. */
  descriptorHash: Type.String({ pattern: '^([0-9a-f]{64})?$' }),
  rule: Text(512),
  partial: Type.Boolean(),
  readonly: Type.Boolean(),
  exceptionId: Nullable(Text(64)),
  note: Type.Optional(Text(512)),
});

/** Data of usb.blocked/allowed/readonly/would_block/exception_used for a USB device. */
export type UsbDeviceEventData = Omit<Static<typeof UsbDeviceSchema>, 'serialHex'> & { serialHex: string | null };

/** A built-in optical drive or SD/MMC reader (not behind USB). */
const UsbBlockDeviceSchema = Type.Object({
  kind: Type.Union([Type.Literal('optical'), Type.Literal('sdcard')]),
  mode: Mode,
  device: Text(64),
  rule: Text(512),
  partitions: Strings(256, 64),
});
export type UsbBlockDeviceEventData = Static<typeof UsbBlockDeviceSchema>;

const UsbEventSchema = Type.Union([UsbDeviceSchema, UsbBlockDeviceSchema]);
export type UsbEventData = UsbDeviceEventData | UsbBlockDeviceEventData;

/** usb.enforced_stricter: what the platform could not express exactly and enforces more strictly (never looser). */
const UsbEnforcedStricterSchema = Type.Object({
  platform: Text(32),
  policyVersion: Count,
  notes: Type.Array(Type.Object({ code: Text(64), subject: Text(1024), ja: Text(), en: Text() }), { maxItems: 1024 }),
});

// ---- usb file log (持ち出しログ, agent/usb/filelog) ---------------------------------------------

/** The medium a file was written to: the matching keys plus display text (safeText). */
const UsbMediumSchema = Type.Object({
  port: Text(1024),
  vendorId: Hex4,
  productId: Hex4,
  serialHex: Nullable(SerialHex),
  descriptorHash: Type.String({ pattern: '^([0-9a-f]{64})?$' }),
  /** "manufacturer product" as display text. */
  label: Text(512),
  serial: Text(),
  /** The allowing decision: 'allow' (registered), 'exception', or 'monitor'. */
  access: Text(16),
  exceptionId: Nullable(Text(64)),
});

/** usb.file_written: one file closed after writing on a usable medium. */
const UsbFileWrittenSchema = Type.Object({
  device: UsbMediumSchema,
  /** Display text of the path relative to the mount's root (controls and bidi overrides escaped). */
  path: Text(8192),
  /** sha256 of the raw path bytes: two names that display alike are still told apart. */
  pathHash: Sha256,
  size: Count,
  /** null when not hashed; hashSkipped says why. */
  sha256: Nullable(Sha256),
  hashSkipped: Nullable(Text(32)),
  uid: Nullable(Int),
  /** 'writer': the writing process's uid (fanotify); 'session': the logged-in user (writer unknown). */
  userSource: Text(16),
  pid: Nullable(Int),
  fsType: Text(64),
  mode: Mode,
});

export type UsbMediumData = Static<typeof UsbMediumSchema>;
export type UsbFileWrittenData = Static<typeof UsbFileWrittenSchema>;

/** usb.file_log_overflow: writes not recorded one by one, counted. */
const UsbFileLogOverflowSchema = Type.Object({
  device: Type.Optional(UsbMediumSchema),
  reason: Text(32),
  count: Count,
});

/** usb.file_log_unavailable: a usable medium whose writes cannot be recorded. */
const UsbFileLogUnavailableSchema = Type.Object({
  device: Type.Optional(UsbMediumSchema),
  reason: Text(1024),
});

// ---- mfa ---------------------------------------------------------------------------------------

/** A verification judged on a terminal (agent/mfa) or by the console (/validate/check). */
const MfaVerifySchema = Type.Object({
  terminal: Text(64),
  result: Type.Union([Type.Literal('accept'), Type.Literal('reject')]),
  reason: Text(64),
  offline: Type.Optional(Type.Boolean()),
  via: Type.Optional(Text(64)), // 'validate/check' (console), 'unlock' (agent's unlock socket)
  service: Type.Optional(Text(256)),
  tty: Type.Optional(Text(256)),
  rhost: Type.Optional(Text(256)),
  peerUid: Type.Optional(Text(16)),
  userShown: Type.Optional(Text(256)),
  stale: Type.Optional(Text(16)),
  step: Type.Optional(Num),
  locked: Type.Optional(Type.Boolean()),
});

const MfaUnlockRefusedSchema = Type.Object({
  terminal: Text(64),
  reason: Text(64),
  peerUid: Nullable(Int),
  peerPid: Nullable(Int),
  peerUser: Nullable(Text(256)),
  requested: Text(256),
  service: Text(256),
  foldedBefore: Type.Optional(Count),
});

const MfaOfflineUsedSchema = Type.Object({
  terminal: Type.Optional(Text(64)),
});

const MfaReconcileRefusedSchema = Type.Object({
  terminal: Text(64),
  refused: Count,
  applied: Count,
  reasons: Type.Record(Type.String(), Count),
  users: Strings(64, 256),
});

const MfaRateLimitedSchema = Type.Object({
  terminal: Text(64),
  route: Text(64),
  limit: Type.Optional(Text(256)),
  from: Type.Optional(Text(256)),
});

// ---- software ----------------------------------------------------------------------------------

const SoftwareProcessSchema = Type.Object({
  pid: Int,
  uid: Nullable(Int),
  path: Text(),
  sha256: Nullable(Sha256),
  exe: Text(),
  exeSha256: Nullable(Sha256),
  script: Type.Optional(Text()),
  scriptSha256: Type.Optional(Sha256),
  deleted: Type.Boolean(),
  rule: Text(512),
  reason: Text(64),
  mode: Mode,
  action: Text(16),
  detectMs: Num,
});

const SoftwareFileSchema = Type.Object({
  path: Text(),
  link: Type.Optional(Text()),
  sha256: Sha256,
  size: Count,
  uid: Nullable(Int),
  fileMode: Text(8),
  event: Text(16),
  rule: Text(512),
  reason: Text(64),
  mode: Mode,
  action: Text(16),
  detectMs: Num,
});

const SoftwareKilledSchema = Type.Object({
  pid: Int,
  uid: Nullable(Int),
  path: Text(),
  sha256: Nullable(Sha256),
  rule: Text(512),
  mode: Mode,
  killMs: Num,
});

const SoftwareQuarantinedSchema = Type.Object({
  id: Text(64),
  path: Text(),
  sha256: Sha256,
  size: Count,
  uid: Nullable(Int),
  rule: Text(512),
  mode: Mode,
});

const SoftwareInstalledSchema = Type.Object({
  name: Text(),
  version: Text(),
  arch: Text(),
  previousVersion: Type.Optional(Text()),
  authorized: Type.Boolean(),
  rule: Text(512),
  mode: Mode,
});

const SoftwareRemovedSchema = Type.Object({ name: Text(), version: Text(), arch: Text() });

const SoftwareRestoredSchema = Type.Object({ id: Text(64), path: Text(), sha256: Sha256, by: Text() });

// Pre-exec line (agent/software/linux/preexec): an exec refused before the program ran, the
// helper's lifecycle, and fallbacks (counted: one event per window, not one per exec).
const SoftwareExecDeniedSchema = Type.Object({
  path: Text(),
  sha256: Nullable(Sha256),
  rule: Text(512),
  reason: Text(64),
  pid: Int,
  uid: Nullable(Int),
  mode: Mode,
  decideMs: Num,
});
const SoftwarePreexecFallbackSchema = Type.Object({
  fallback: Text(8),
  count: Count,
  reasons: Type.Record(Type.String({ maxLength: 16 }), Count),
  timeoutMs: Count,
});
const SoftwarePreexecStartedSchema = Type.Object({ pid: Int, marks: Strings(64), fallback: Text(8), timeoutMs: Count, restarts: Count });
const SoftwarePreexecStoppedSchema = Type.Object({
  pid: Nullable(Int),
  code: Nullable(Int),
  signal: Nullable(Text(16)),
  error: Text(512),
  restarts: Count,
  restartInMs: Nullable(Count),
});
const SoftwarePreexecUnavailableSchema = Type.Object({ reason: Text(64), message: Text(512) });

// ---- agent lifecycle ---------------------------------------------------------------------------

const AgentStartedSchema = Type.Object({
  version: Text(64),
  pid: Int,
  policyVersion: Count,
  monitorOnly: Type.Boolean(),
  hostname: Text(256),
});
const AgentStoppedSchema = Type.Object({ pid: Int, reason: Text(64) });
const AgentTamperSchema = Type.Object({ what: Text(256), reason: Text(), action: Text(64) });
/** Errors come from several places; each names what it can. */
const AgentErrorSchema = Type.Object({
  stage: Type.Optional(Text(64)),
  capability: Type.Optional(Text(64)),
  action: Type.Optional(Text(64)),
  version: Type.Optional(Count),
  seq: Type.Optional(Count),
  pid: Type.Optional(Int),
  path: Type.Optional(Text()),
  reason: Type.Optional(Text()),
  error: Type.Optional(Text()),
});
const PolicyAppliedSchema = Type.Object({ version: Count, issuedBy: Text(256) });
const PolicyRejectedSchema = Type.Object({
  source: Text(16), // 'disk' | 'console'
  reason: Text(64),
  detail: Type.Optional(Text()),
  offeredVersion: Type.Optional(Nullable(Num)),
  inForce: Count,
});

// ---- console: terminals ------------------------------------------------------------------------

const AgentIdSchema = Type.Object({ agentId: Text(64) });
const AgentEnrolledSchema = Type.Object({ agentId: Text(64), hostname: Text(256), os: Text(256), sameNameAs: Type.Optional(Strings(16, 64)) });
const AgentRevokedSchema = Type.Object({ agentId: Text(64) });
const AgentSilentSchema = Type.Object({ agentId: Text(64), hostname: Nullable(Text(256)), lastSeen: Nullable(Ts) });
const ChainFindingSchema = Type.Object({ agentId: Text(64), seq: Count, finding: Text(16), detail: Text() });
// Issue 17 delivery (agent/report/outbox.ts, console/backbone/ingest.ts).
const SeqRange = Type.Object({ from: Count, to: Count });
const EventsDroppedSchema = Type.Object({
  /** Dropped seqs as ranges (oldest first); hashes[i] is the hash of the i-th dropped seq in range order. */
  ranges: Type.Array(SeqRange, { maxItems: 256 }),
  hashes: Type.Array(Type.String({ pattern: '^[0-9a-f]{64}$' }), { maxItems: 256 }),
  byType: Type.Record(Type.String({ maxLength: 80 }), Count),
  events: Count,
  bytes: Count,
  cap: Type.Object({ maxEvents: Count, maxBytes: Count }),
  /** Unimportant events not even appended because nothing droppable was left (counted by type). */
  notAppended: Type.Optional(Type.Record(Type.String({ maxLength: 80 }), Count)),
});
const GapFilledSchema = Type.Object({ agentId: Text(64), from: Count, to: Count, events: Count, closesGaps: Count });
const DropFindingSchema = Type.Object({ agentId: Text(64), seq: Count, ranges: Type.Array(SeqRange, { maxItems: 256 }), events: Count, detail: Text(), closesGaps: Count });
const DiskFullSchema = Type.Object({ since: Ts, until: Ts, refusedBatches: Count, refusedEvents: Count, freeBytes: Count, reserveBytes: Count, reason: Text(64) });
const ClockSkewSchema = Type.Object({ agentId: Text(64), seq: Count, claimed: Ts, received: Ts, events: Count });
const FloodSchema = Type.Object({ agentId: Text(64), limit: Text(16), batchEvents: Count, batchBytes: Count, retryAfterSeconds: Count });
const HostnameChangedSchema = Type.Object({ agentId: Text(64), old: Nullable(Text(256)), new: Text(256), sameNameAs: Type.Optional(Strings(16, 64)) });
const UploadRejectedSchema = Type.Object({ agentId: Type.Optional(Text(64)) });
/** Events stored although their data did not match its declaration (counted per agent, folded). */
const EventDataInvalidSchema = Type.Object({
  agentId: Text(64),
  seq: Count,
  type: Text(64),
  errors: Strings(16, 512),
  events: Count,
});

// ---- console: administrators (admin.*) ---------------------------------------------------------

const UsbExceptionGrantedSchema = Type.Object({
  id: Text(64),
  vendorId: Hex4,
  productId: Hex4,
  serial: Nullable(Text(1024)),
  serialHex: Type.Optional(Nullable(SerialHex)),
  access: Text(16),
  expiresAt: Ts,
  reason: Text(),
});
const UsbExceptionRequestedSchema = Type.Object({
  id: Text(64),
  vendorId: Hex4,
  productId: Hex4,
  serial: Nullable(Text(1024)),
  serialHex: Type.Optional(Nullable(SerialHex)),
  access: Text(16),
  forMs: Count,
  staffUser: Text(256),
  reason: Text(),
});
const UsbExceptionRevokedSchema = Type.Object({
  id: Text(64),
  vendorId: Hex4,
  productId: Hex4,
  serial: Nullable(Text(1024)),
  serialHex: Type.Optional(Nullable(SerialHex)),
});
const UsbExceptionRejectedSchema = Type.Object({ id: Text(64), requestedBy: Text(256), note: Text() });

// 申請 → 上長承認 (agent/usb/apply.ts, console/usb/applications-store.ts). The applicant is the
// event's `user` (the agent takes it from the kernel's peer credentials), never a data field.
const UsbApplicationSentSchema = Type.Object({
  id: Text(64), // the agent's id of the application (a UUID)
  ref: Text(16), // 申請番号 the notice showed
  vendorId: Hex4,
  productId: Hex4,
  serialHex: SerialHex, // the matching key of the exception asked for (never empty: no serial, no application)
  descriptorHash: Text(64),
  serial: Text(1024), // display text
  manufacturer: Text(),
  product: Text(),
  port: Text(1024),
  reason: Text(1024),
  hours: Count,
});
const UsbApplicationRefusedSchema = Type.Object({ reason: Text(64), ref: Nullable(Text(16)), refused: Count });
const UsbApplicationAnsweredSchema = Type.Object({ id: Text(64), status: Text(16), until: Nullable(Ts), comment: Text(1024) });
// Defaults only so that generated samples (tests) can be made of the console's own events.
const Hex4d = Type.String({ pattern: '^[0-9a-f]{4}$', default: '0000' });
const ApplicationDecidedSchema = Type.Object({
  id: Text(64),
  applicationId: Text(64),
  applicant: Text(256),
  vendorId: Hex4d,
  productId: Hex4d,
  serialHex: Type.String({ pattern: '^([0-9a-f]{2})*$', maxLength: SERIAL_HEX_MAX, default: '' }),
  hours: Count,
  grantId: Nullable(Text(64)),
  until: Nullable(Ts),
  comment: Text(1024),
});
const ApplicationRefusedSchema = Type.Object({ applicationId: Text(64), reason: Text(64), pending: Count });

// Baseline by click (issue 15): the console's request, the agent's capture, and a failure.
const SoftwareBaselineCapturedSchema = Type.Object({ requestId: Text(64), packages: Count, files: Count, bytes: Count, captureMs: Num, scope: Strings(64, 4096) });
const SoftwareBaselineFailedSchema = Type.Object({ requestId: Text(64), stage: Text(16), error: Text(1024) });
const SoftwareBaselineRequestedSchema = Type.Object({ requestId: Text(64), agentId: Text(64), hostname: Text(256), scope: Strings(64, 4096) });

const Before = Type.Optional(Type.Unknown());
const StaffUserSchema = Type.Object({ staffUser: Text(256) });
const AccountSchema = Type.Object({ account: Text(256), before: Before, after: Before });

// ---- posture (issue 16) ------------------------------------------------------------------------
const PostureTransitionSchema = Type.Object({ agentId: Text(64), hostname: Text(256), failing: Strings(32, 64), why: Strings(32, 512), collectedAt: Ts });
const PostureScreenLockEnforcedSchema = Type.Object({ maxIdleMinutes: Count, files: Strings(8, 1024) });

/** Every declared type and its data. admin.* types not listed here carry any object. */
export const EVENT_DATA = {
  'usb.blocked': UsbEventSchema,
  'usb.allowed': UsbEventSchema,
  'usb.readonly': UsbEventSchema,
  'usb.exception_used': UsbEventSchema,
  'usb.would_block': UsbEventSchema,
  'usb.enforced_stricter': UsbEnforcedStricterSchema,
  'usb.file_written': UsbFileWrittenSchema,
  'usb.file_log_overflow': UsbFileLogOverflowSchema,
  'usb.file_log_unavailable': UsbFileLogUnavailableSchema,
  'mfa.success': MfaVerifySchema,
  'mfa.failure': MfaVerifySchema,
  'mfa.locked': MfaVerifySchema,
  'mfa.replay': MfaVerifySchema,
  'mfa.recovery_used': MfaVerifySchema,
  'mfa.offline_used': MfaOfflineUsedSchema,
  'mfa.unlock_refused': MfaUnlockRefusedSchema,
  'mfa.reconcile_refused': MfaReconcileRefusedSchema,
  'mfa.rate_limited': MfaRateLimitedSchema,
  'software.unauthorized_process': SoftwareProcessSchema,
  'software.unauthorized_file': SoftwareFileSchema,
  'software.installed': SoftwareInstalledSchema,
  'software.removed': SoftwareRemovedSchema,
  'software.killed': SoftwareKilledSchema,
  'software.quarantined': SoftwareQuarantinedSchema,
  'software.restored': SoftwareRestoredSchema,
  'software.exec_denied': SoftwareExecDeniedSchema,
  'software.preexec_fallback': SoftwarePreexecFallbackSchema,
  'software.preexec_started': SoftwarePreexecStartedSchema,
  'software.preexec_stopped': SoftwarePreexecStoppedSchema,
  'software.preexec_unavailable': SoftwarePreexecUnavailableSchema,
  'software.baseline_captured': SoftwareBaselineCapturedSchema,
  'software.baseline_failed': SoftwareBaselineFailedSchema,
  'agent.started': AgentStartedSchema,
  'agent.stopped': AgentStoppedSchema,
  'agent.tamper': AgentTamperSchema,
  'agent.error': AgentErrorSchema,
  'agent.policy_applied': PolicyAppliedSchema,
  'agent.policy_rejected': PolicyRejectedSchema,
  'posture.screen_lock_enforced': PostureScreenLockEnforcedSchema,
  'posture.noncompliant': PostureTransitionSchema,
  'posture.compliant': PostureTransitionSchema,
  'agent.enrolled': AgentEnrolledSchema,
  'agent.revoked': AgentRevokedSchema,
  'agent.silent': AgentSilentSchema,
  'agent.back_online': AgentIdSchema,
  'agent.chain_broken': ChainFindingSchema,
  'agent.gap': ChainFindingSchema,
  'agent.upload_rejected': UploadRejectedSchema,
  'agent.clock_skew': ClockSkewSchema,
  'agent.flood': FloodSchema,
  'agent.hostname_changed': HostnameChangedSchema,
  'agent.event_data_invalid': EventDataInvalidSchema,
  'agent.events_dropped': EventsDroppedSchema,
  'agent.gap_filled': GapFilledSchema,
  'agent.drop_accounted': DropFindingSchema,
  'agent.drop_unverified': DropFindingSchema,
  'console.disk_full': DiskFullSchema,
  'agent.cert_renewed': Type.Object({ agentId: Text(64), oldFingerprint: CertFp, newFingerprint: CertFp, notAfter: Ts }),
  'console.server_cert_renewed': Type.Object({ oldFingerprint: CertFp, newFingerprint: CertFp, notAfter: Ts, hosts: Strings(64, 256) }),
  'agent.protocol_refused': Type.Object({ from: Text(256), version: Nullable(Num), reason: Text(32), path: Text(128) }),
  'admin.usb_exception_granted': UsbExceptionGrantedSchema,
  'admin.usb_exception_requested': UsbExceptionRequestedSchema,
  'admin.usb_exception_revoked': UsbExceptionRevokedSchema,
  'admin.usb_exception_rejected': UsbExceptionRejectedSchema,
  'usb.application_sent': UsbApplicationSentSchema,
  'usb.application_refused': UsbApplicationRefusedSchema,
  'usb.application_answered': UsbApplicationAnsweredSchema,
  'admin.application_approved': ApplicationDecidedSchema,
  'admin.application_rejected': ApplicationDecidedSchema,
  'admin.application_refused': ApplicationRefusedSchema,
  'admin.enroll_refused': Type.Object({ reason: Text(64), hostname: Nullable(Text(256)), from: Text(256) }),
  'admin.enroll_token_created': Type.Object({ expiresAt: Ts, uses: Count }),
  'admin.terminal_revoked': Type.Object({ agentId: Text(64), before: Before, after: Before }),
  'admin.console_initialised': Type.Object({ organisation: Text(), sans: Strings(64, 256) }),
  // Issue 17 backup: written before the snapshot (so inside it), and into the restored store by restore.
  'admin.backup_taken': Type.Object({ backupId: Text(64), file: Text(512), passphraseFrom: Type.Union([Type.Literal('env'), Type.Literal('terminal')]) }),
  'admin.console_restored': Type.Object({ backupId: Text(64), backupCreatedAt: Ts, consoleVersion: Text(64), file: Text(512) }),
  'admin.backup_failed': Type.Object({ backupId: Text(64), file: Text(512), reason: Text(512) }),
  'admin.policy_published': Type.Object({ version: Count, previousVersion: Count }),
  'admin.policy_changed': Type.Object({ before: Before, after: Before, sections: Type.Optional(Type.Unknown()), rolledForwardFrom: Type.Optional(Num), diff: Type.Optional(Strings(300)) }),
  'admin.login': Type.Object({ from: Text(256), role: Text(32) }),
  'admin.login_failed': Type.Object({ from: Text(256), reason: Text(64), known: Type.Boolean() }),
  'admin.login_throttled': Type.Object({ from: Text(256), limit: Type.Unknown() }),
  'admin.logout': Type.Object({}),
  'admin.account_locked': Type.Object({ from: Text(256), sources: Strings(20, 256), until: Ts }),
  'admin.account_created': AccountSchema,
  'admin.account_disabled': AccountSchema,
  'admin.account_enabled': AccountSchema,
  'admin.account_unlocked': AccountSchema,
  'admin.password_change_failed': Type.Object({ account: Text(256), failures: Count, max: Count }),
  'admin.password_changed': Type.Object({ account: Text(256), otherSessionsEnded: Count }),
  'admin.session_ended': Type.Object({ account: Text(256), reason: Text(64), failures: Count }),
  'admin.csrf_refused': Type.Object({ path: Text(), from: Text(256), origin: Type.Optional(Text(256)), reason: Type.Optional(Text(64)) }),
  'admin.forbidden': Type.Object({ path: Text(), method: Text(16), role: Type.Optional(Text(32)) }),
  'admin.report_generated': Type.Object({ from: Text(64), to: Text(64) }),
  'admin.evidence_exported': Type.Object({ from: Text(64), to: Text(64), events: Count, bytes: Count, fingerprint: Sha256 }),
  // issue 17: retention — archive written, events deleted after it, an archive that failed (nothing deleted), a period set
  'admin.archive_written': Type.Object({ archive: Text(256), events: Count, bytes: Count, manifestSha256: Type.String({ pattern: '^[0-9a-f]{64}$', default: '0'.repeat(64) }), families: Strings(64, 64), from: Ts, to: Ts }),
  'admin.events_deleted': Type.Object({ archive: Text(256), events: Count, families: Strings(64, 64) }),
  'admin.archive_failed': Type.Object({ archive: Text(256), events: Count, reason: Text(1024) }),
  'admin.retention_set': Type.Object({ family: Text(64), days: Nullable(Count) }),
  'admin.events_exported': Type.Object({ rows: Count, filter: Type.Record(Type.String(), Type.String()) }),
  'admin.usb_devices_exported': Type.Object({ rows: Count, filter: Type.Record(Type.String(), Type.String()) }),
  'admin.usb_exports_exported': Type.Object({ rows: Count, filter: Type.Record(Type.String(), Type.String()) }),
  'admin.software_inventory_exported': Type.Object({ rows: Count, filter: Type.Record(Type.String(), Type.String()) }),
  'admin.mfa_enrolled': StaffUserSchema,
  'admin.mfa_reset': StaffUserSchema,
  'admin.mfa_confirmed': StaffUserSchema,
  'admin.mfa_confirm_failed': Type.Object({ staffUser: Text(256), reason: Text(64) }),
  'admin.mfa_disabled': StaffUserSchema,
  'admin.mfa_enabled': StaffUserSchema,
  'admin.mfa_unlocked': StaffUserSchema,
  'admin.mfa_recovery_codes': Type.Object({ staffUser: Text(256), count: Count }),
  'admin.mfa_tokens_imported': Type.Object({ count: Count, source: Text(), assigned: Count, unassigned: Count, serials: Strings(200, 64), users: Strings(200, 256) }),
  'admin.mfa_token_assigned': Type.Object({ staffUser: Text(256), serial: Text(64), tokenType: Text(32) }),
  'admin.mfa_resync_failed': Type.Object({ staffUser: Text(256), reason: Text(64) }),
  'admin.mfa_resynced': Type.Object({ staffUser: Text(256), tokenType: Text(32), counter: Num, drift: Type.Optional(Num) }),
  'admin.mfa_assigned': Type.Object({ staffUser: Text(256), terminal: Text(64) }),
  'admin.mfa_unassigned': Type.Object({ staffUser: Text(256), terminal: Text(64) }),
  'admin.mfa_validate_client_added': Type.Object({ name: Text(256), address: Text(256) }),
  'admin.mfa_validate_refused': Type.Object({ cause: Text(64), from: Text(256), userAgent: Text(256) }),
  'admin.software_baseline_imported': Type.Object({ id: Text(64), digest: Text(128), host: Text(), packages: Count, files: Count }),
  'admin.software_baseline_approved': Type.Object({ id: Text(64), digest: Text(128), policyVersion: Count, packages: Count, files: Count }),
  'admin.software_baseline_rejected': Type.Object({ id: Text(64) }),
  'admin.software_baseline_requested': SoftwareBaselineRequestedSchema,
  'admin.software_restore_requested': Type.Object({ id: Text(64), path: Text(), sha256: Sha256 }),
  // Issue 17 SIEM forwarding (console/siem).
  'admin.siem_configured': Type.Object({ target: Text(300), name: Text(256), facility: Text(16), clientCert: Type.Boolean(), caFingerprint: Type.String({ pattern: '^[0-9a-f]{64}$', default: '0'.repeat(64) }) }),
  'admin.siem_disabled': Type.Object({ target: Text(300) }),
  'console.siem_stopped': Type.Object({ target: Text(300), error: Text(1024), cursor: Count, backlog: Count, suppressed: Count }),
  'console.siem_resumed': Type.Object({ target: Text(300), cursor: Count, backlog: Count, downSeconds: Count, failures: Count }),
} as const satisfies Record<string, TSchema>;

type Declared = typeof EVENT_DATA;
export type DeclaredEventType = keyof Declared;

/** Types whose TypeScript shape is stricter than their check (a field old agents omit is required of producers). */
interface Overrides {
  'usb.blocked': UsbEventData;
  'usb.allowed': UsbEventData;
  'usb.readonly': UsbEventData;
  'usb.exception_used': UsbEventData;
  'usb.would_block': UsbEventData;
}

/** The data of event type T (an undeclared admin.* type: any object). */
export type EventDataOf<T extends EventType> = T extends keyof Overrides
  ? Overrides[T]
  : T extends DeclaredEventType
    ? Static<Declared[T]>
    : Record<string, unknown>;

// ---- checks ------------------------------------------------------------------------------------

type Check = { Check(v: unknown): boolean; Errors(v: unknown): unknown[] };
const compiled = new Map<string, Check>();
/** Compiled on first use: the console compiles only the types it meets, once each. */
function checkOf(type: string): Check | null {
  if (!Object.hasOwn(EVENT_DATA, type)) return null;
  let c = compiled.get(type);
  if (!c) {
    c = Compile(EVENT_DATA[type as DeclaredEventType]) as unknown as Check;
    compiled.set(type, c);
  }
  return c;
}

const isPlainObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** What is wrong with `data` for `type` (empty = fine). An undeclared admin.* type accepts any object. */
export function eventDataErrors(type: string, data: unknown, where = 'data'): string[] {
  if (!isPlainObject(data)) return [`${where}: must be an object`];
  const c = checkOf(type);
  if (c === null) return type.startsWith('admin.') ? [] : [`${where}: no declaration for event type ${JSON.stringify(type.slice(0, 64))}`];
  if (c.Check(data)) return [];
  // A union reports every member's errors: explain a USB event by the member its `kind` names.
  const explain = EVENT_DATA[type as DeclaredEventType] === UsbEventSchema ? usbBranch(data.kind) : c;
  const errors = describeErrors(explain.Errors(data) as unknown as Parameters<typeof describeErrors>[0], where, 8);
  return errors.length ? errors : [`${where}: does not match its declaration`];
}

/** eventDataErrors(...).length === 0 without building messages (the ingest hot path). */
export function eventDataValid(type: string, data: unknown): boolean {
  if (!isPlainObject(data)) return false;
  const c = checkOf(type);
  return c === null ? type.startsWith('admin.') : c.Check(data);
}

let usbDevice: Check | null = null;
let usbBlock: Check | null = null;
function usbBranch(kind: unknown): Check {
  if (kind === 'optical' || kind === 'sdcard') return (usbBlock ??= Compile(UsbBlockDeviceSchema) as unknown as Check);
  return (usbDevice ??= Compile(UsbDeviceSchema) as unknown as Check);
}

/** Fields older producers omit, with the value readers see instead. */
function fillLegacy(type: string, data: Record<string, unknown>): Record<string, unknown> {
  if (type.startsWith('usb.') && data.kind === 'usb' && !('serialHex' in data)) return { ...data, serialHex: null };
  return data;
}

/**
 * The data of an event as its declared type, or null when it does not match (a reader shows
 * such an event as raw JSON and never takes a matching key from it).
 */
export function readEventData<T extends EventType>(type: T, data: unknown): EventDataOf<T> | null {
  if (!isPlainObject(data)) return null;
  const c = checkOf(type);
  if (c === null) return type.startsWith('admin.') ? (data as EventDataOf<T>) : null;
  if (!c.Check(data)) return null;
  return fillLegacy(type, data) as EventDataOf<T>;
}

/** Whether the data of a USB event describes a USB device (not a built-in drive). */
export function isUsbDeviceData(d: UsbEventData): d is UsbDeviceEventData {
  return d.kind === 'usb';
}
