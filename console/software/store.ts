/**
 * The only code on the unauthorized-software tables (./schema.ts): baselines (import → administrator
 * approval → published in the signed policy) and the fleet's quarantine (listed from what agents
 * report, restored on an administrator's request which the agent collects on its next sync).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { BaselineRequest, BaselineUpload, BaselineUploadResponse, InventoryEntry, SoftwareInventoryRequest, SoftwareInventoryResponse, SoftwareSyncRequest, SoftwareSyncResponse } from '../../protocol/api.js';
import { t } from '../../protocol/i18n.js';
import type { PolicyBody } from '../../protocol/policy.js';
import { baselineDocumentErrors, isCleanAbsolutePath, normalizeSoftwarePolicy, type SoftwareBaselineDocument, type SoftwareBaselineRef } from '../../protocol/policy-software.js';
import { safeText } from '../../protocol/text.js';
import type { ConsoleContext } from '../module.js';
import { baselineDiff, likeContains, type BaselineDiff, type InventoryRow } from './inventory.js';

// ---- baselines -------------------------------------------------------------------------------

export interface BaselineRow {
  id: string;
  digest: string;
  host: string;
  createdAt: string;
  importedAt: string;
  importedBy: string;
  status: 'pending' | 'approved' | 'rejected';
  decidedAt: string | null;
  decidedBy: string | null;
  policyVersion: number | null;
  packages: number;
  files: number;
}

export function importBaseline(ctx: ConsoleContext, text: string, actor: string): BaselineRow {
  return ctx.db.transaction(() => storeBaseline(ctx, text, actor))();
}

/** Judges and stores a baseline document as pending (import, or a terminal's upload); the caller holds a transaction. */
function storeBaseline(ctx: ConsoleContext, text: string, actor: string): BaselineRow {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(t(`ベースラインが JSON ではありません: ${(e as Error).message}`, `baseline is not JSON: ${(e as Error).message}`));
  }
  const errors = baselineDocumentErrors(doc);
  if (errors.length) throw new Error(t('ベースラインが不正です', 'invalid baseline') + ':\n' + errors.slice(0, 20).map((e) => `  - ${e}`).join('\n'));
  const d = doc as SoftwareBaselineDocument;
  const id = `bl-${randomBytes(6).toString('hex')}`;
  const digest = createHash('sha256').update(text).digest('hex');
  const now = new Date().toISOString();
  ctx.db
    .prepare(
      `INSERT INTO software_baselines (id, digest, host, created_at, imported_at, imported_by, status, packages, files, doc)
       VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)`,
    )
    .run(id, digest, safeText(d.host), safeText(d.createdAt, 64), now, actor, d.packages.length, d.files.length, text);
  ctx.recordEvent({
    type: 'admin.software_baseline_imported',
    user: actor,
    data: { id, digest, host: safeText(d.host), packages: d.packages.length, files: d.files.length },
  });
  return getBaseline(ctx, id)!;
}

export function getBaseline(ctx: ConsoleContext, id: string): BaselineRow | null {
  const r = ctx.db.prepare('SELECT * FROM software_baselines WHERE id = ?').get(id) as Record<string, unknown> | undefined;
  return r ? rowToBaseline(r) : null;
}

function rowToBaseline(r: Record<string, unknown>): BaselineRow {
  return {
    id: r.id as string,
    digest: r.digest as string,
    host: r.host as string,
    createdAt: r.created_at as string,
    importedAt: r.imported_at as string,
    importedBy: r.imported_by as string,
    status: r.status as BaselineRow['status'],
    decidedAt: (r.decided_at as string | null) ?? null,
    decidedBy: (r.decided_by as string | null) ?? null,
    policyVersion: (r.policy_version as number | null) ?? null,
    packages: r.packages as number,
    files: r.files as number,
  };
}

export function listBaselines(ctx: ConsoleContext): BaselineRow[] {
  return (ctx.db.prepare('SELECT * FROM software_baselines ORDER BY imported_at, id').all() as Record<string, unknown>[]).map(rowToBaseline);
}

/**
 * The administrator's approval: the baseline becomes the allowlist of the next signed policy.
 * Files that dpkg vouches for (listed by an approved package, content matching) are trusted
 * through their package; only the others are carried as path+sha256 pairs.
 */
export function approveBaseline(ctx: ConsoleContext, id: string, actor: string): { baseline: BaselineRow; policyVersion: number } {
  const row = ctx.db.prepare('SELECT * FROM software_baselines WHERE id = ?').get(id) as Record<string, unknown> | undefined;
  if (!row) throw new Error(t(`ベースラインがありません: ${id}`, `no baseline ${id}`));
  if (row.status !== 'pending') throw new Error(t(`承認待ちではありません (${String(row.status)})`, `baseline is not pending (${String(row.status)})`));
  const doc = JSON.parse(row.doc as string) as SoftwareBaselineDocument;
  const now = new Date().toISOString();
  const ref: SoftwareBaselineRef = {
    id,
    digest: row.digest as string,
    host: safeText(doc.host),
    approvedBy: actor,
    approvedAt: now,
    packages: doc.packages.map((p) => ({ name: p.name, version: p.version, ...(p.arch ? { arch: p.arch } : {}) })),
    files: doc.files.filter((f) => !f.package).map((f) => ({ path: f.path, sha256: f.sha256 })),
  };
  const current = ctx.currentPolicy().policy;
  const body: PolicyBody = {
    agent: current.agent,
    usb: current.usb,
    mfa: current.mfa,
    software: { ...normalizeSoftwarePolicy(current.software), baseline: ref },
  };
  // Anything else the policy document carries (sections added by other modules) is kept as is.
  const extra = Object.fromEntries(Object.entries(current).filter(([k]) => !['version', 'issuedAt', 'issuedBy', 'agent', 'usb', 'mfa', 'software'].includes(k)));
  const signed = ctx.publishPolicy({ ...extra, ...body }, actor);
  ctx.db
    .prepare("UPDATE software_baselines SET status = 'approved', decided_at = ?, decided_by = ?, policy_version = ? WHERE id = ?")
    .run(now, actor, signed.policy.version, id);
  ctx.db.prepare("UPDATE software_baselines SET status = 'rejected', decided_at = ?, decided_by = ? WHERE status = 'approved' AND id != ?").run(now, actor, id);
  ctx.recordEvent({
    type: 'admin.software_baseline_approved',
    user: actor,
    data: { id, digest: ref.digest, policyVersion: signed.policy.version, packages: ref.packages.length, files: ref.files.length },
  });
  return { baseline: getBaseline(ctx, id)!, policyVersion: signed.policy.version };
}

export function rejectBaseline(ctx: ConsoleContext, id: string, actor: string): void {
  const r = ctx.db.prepare("UPDATE software_baselines SET status = 'rejected', decided_at = ?, decided_by = ? WHERE id = ? AND status = 'pending'").run(new Date().toISOString(), actor, id);
  if (r.changes !== 1) throw new Error(t(`承認待ちのベースラインがありません: ${id}`, `no pending baseline ${id}`));
  ctx.recordEvent({ type: 'admin.software_baseline_rejected', user: actor, data: { id } });
}

// ---- quarantine --------------------------------------------------------------------------------

export interface QuarantineRow {
  agentId: string;
  id: string;
  path: string;
  sha256: string;
  size: number;
  quarantinedAt: string;
  rule: string;
  state: 'quarantined' | 'restore_requested' | 'restored' | 'restore_failed' | 'gone';
  requestedBy: string | null;
  requestedAt: string | null;
  updatedAt: string;
  error: string | null;
}

export function listQuarantined(ctx: ConsoleContext, agentId?: string): QuarantineRow[] {
  const rows = (
    agentId
      ? ctx.db.prepare('SELECT * FROM software_quarantine WHERE agent_id = ? ORDER BY quarantined_at').all(agentId)
      : ctx.db.prepare('SELECT * FROM software_quarantine ORDER BY quarantined_at').all()
  ) as Record<string, unknown>[];
  return rows.map((r) => ({
    agentId: r.agent_id as string,
    id: r.id as string,
    path: r.path as string,
    sha256: r.sha256 as string,
    size: r.size as number,
    quarantinedAt: r.quarantined_at as string,
    rule: r.rule as string,
    state: r.state as QuarantineRow['state'],
    requestedBy: (r.requested_by as string | null) ?? null,
    requestedAt: (r.requested_at as string | null) ?? null,
    updatedAt: r.updated_at as string,
    error: (r.error as string | null) ?? null,
  }));
}

export function requestRestore(ctx: ConsoleContext, id: string, actor: string, agentId?: string): QuarantineRow {
  const rows = listQuarantined(ctx, agentId).filter((r) => r.id === id);
  if (rows.length !== 1) throw new Error(t(`隔離されたファイルがありません: ${id}`, `no quarantined file ${id}`));
  const r = rows[0]!;
  if (r.state !== 'quarantined' && r.state !== 'restore_failed') throw new Error(t(`復元できない状態です (${r.state})`, `cannot restore in state ${r.state}`));
  const now = new Date().toISOString();
  ctx.db
    .prepare("UPDATE software_quarantine SET state = 'restore_requested', requested_by = ?, requested_at = ?, updated_at = ?, error = NULL WHERE agent_id = ? AND id = ?")
    .run(actor, now, now, r.agentId, id);
  ctx.recordEvent({ type: 'admin.software_restore_requested', user: actor, terminalId: r.agentId, data: { id, path: r.path, sha256: r.sha256 } });
  return listQuarantined(ctx, r.agentId).find((x) => x.id === id)!;
}

/** One agent's report: what it holds in quarantine now, and how requested restores went. */
export function syncAgent(ctx: ConsoleContext, agentId: string, req: SoftwareSyncRequest): SoftwareSyncResponse {
  const now = new Date().toISOString();
  const tx = ctx.db.transaction(() => {
    const upsert = ctx.db.prepare(
      `INSERT INTO software_quarantine (agent_id, id, path, sha256, size, quarantined_at, rule, state, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, 'quarantined', ?)
       ON CONFLICT (agent_id, id) DO NOTHING`,
    );
    for (const q of req.quarantine) upsert.run(agentId, q.id, q.path, q.sha256, q.size, q.quarantinedAt, q.rule, now);
    for (const r of req.results) {
      ctx.db
        .prepare('UPDATE software_quarantine SET state = ?, error = ?, updated_at = ? WHERE agent_id = ? AND id = ?')
        .run(r.ok ? 'restored' : 'restore_failed', r.ok ? null : (r.error ?? 'failed'), now, agentId, r.id);
    }
    // Held here as quarantined but no longer on the terminal (restored locally, removed by hand).
    const held = new Set(req.quarantine.map((q) => q.id));
    const open = ctx.db.prepare("SELECT id FROM software_quarantine WHERE agent_id = ? AND state IN ('quarantined')").all(agentId) as { id: string }[];
    for (const o of open) if (!held.has(o.id)) ctx.db.prepare("UPDATE software_quarantine SET state = 'gone', updated_at = ? WHERE agent_id = ? AND id = ?").run(now, agentId, o.id);
    const pending = ctx.db.prepare("SELECT id FROM software_quarantine WHERE agent_id = ? AND state = 'restore_requested'").all(agentId) as { id: string }[];
    return pending.map((p) => p.id).filter((id) => held.has(id));
  });
  const restore = tx();
  const baseline = openBaselineRequest(ctx, agentId);
  return baseline ? { restore, baseline } : { restore };
}

// ---- baseline by click ("この端末を基準にする") -------------------------------------------------------

/** The folders captured when the administrator does not narrow them (the agent CLI's default). */
export const DEFAULT_REQUEST_SCOPE = ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin', '/opt'];
/** A request the terminal has not answered within a day is closed (a terminal switched off for the week asks nothing later). */
export const BASELINE_REQUEST_TTL_MS = 24 * 3_600_000;

export interface BaselineRequestRow {
  id: string;
  agentId: string;
  scope: string[];
  requestedAt: string;
  requestedBy: string;
  state: 'requested' | 'sent' | 'uploaded' | 'failed' | 'expired';
  sentAt: string | null;
  updatedAt: string;
  baselineId: string | null;
  error: string | null;
}

function rowToRequest(r: Record<string, unknown>): BaselineRequestRow {
  return {
    id: r.id as string,
    agentId: r.agent_id as string,
    scope: JSON.parse(r.scope as string) as string[],
    requestedAt: r.requested_at as string,
    requestedBy: r.requested_by as string,
    state: r.state as BaselineRequestRow['state'],
    sentAt: (r.sent_at as string | null) ?? null,
    updatedAt: r.updated_at as string,
    baselineId: (r.baseline_id as string | null) ?? null,
    error: (r.error as string | null) ?? null,
  };
}

/** Pure: the scope an administrator typed (one folder per line) → clean absolute paths, or what is wrong. */
export function parseScope(text: string): { scope: string[] } | { error: string } {
  const lines = [...new Set(text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== ''))];
  if (lines.length === 0) return { scope: [...DEFAULT_REQUEST_SCOPE] };
  if (lines.length > 32) return { error: t('収集範囲は32か所までです', 'at most 32 folders') };
  for (const l of lines) if (l.length > 1024 || !isCleanAbsolutePath(l)) return { error: t(`絶対パスを指定してください: ${safeText(l, 80)}`, `not a clean absolute path: ${safeText(l, 80)}`) };
  return { scope: lines };
}

/** The newest request for a terminal (open or not), for its page. */
export function latestBaselineRequest(ctx: ConsoleContext, agentId: string): BaselineRequestRow | null {
  expireBaselineRequests(ctx, Date.now());
  const r = ctx.db.prepare('SELECT * FROM software_baseline_requests WHERE agent_id = ? ORDER BY requested_at DESC, rowid DESC LIMIT 1').get(agentId) as Record<string, unknown> | undefined;
  return r ? rowToRequest(r) : null;
}

function expireBaselineRequests(ctx: ConsoleContext, now: number): void {
  const cutoff = new Date(now - BASELINE_REQUEST_TTL_MS).toISOString();
  ctx.db
    .prepare("UPDATE software_baseline_requests SET state = 'expired', updated_at = ?, error = 'no answer within 24 h' WHERE state IN ('requested', 'sent') AND requested_at < ?")
    .run(new Date(now).toISOString(), cutoff);
}

/**
 * The administrator's click: one open request per terminal (a second click while one is open
 * returns that one: idempotent). The event is written in the same transaction, before the terminal
 * can learn of the request.
 */
export function requestBaseline(ctx: ConsoleContext, agentId: string, scope: string[], actor: string): { request: BaselineRequestRow; created: boolean } {
  return ctx.db.transaction(() => {
    expireBaselineRequests(ctx, Date.now());
    const agent = ctx.db.prepare('SELECT hostname, status FROM agents WHERE id = ?').get(agentId) as { hostname: string; status: string } | undefined;
    if (!agent) throw new Error(t(`端末がありません: ${agentId}`, `no terminal ${agentId}`));
    if (agent.status === 'revoked') throw new Error(t('失効した端末には要求できません', 'the terminal is revoked'));
    const open = ctx.db.prepare("SELECT * FROM software_baseline_requests WHERE agent_id = ? AND state IN ('requested', 'sent')").get(agentId) as Record<string, unknown> | undefined;
    if (open) return { request: rowToRequest(open), created: false };
    const id = randomUUID();
    const now = new Date().toISOString();
    ctx.recordEvent({ type: 'admin.software_baseline_requested', user: actor, terminalId: agentId, data: { requestId: id, agentId, hostname: safeText(agent.hostname), scope } });
    ctx.db
      .prepare("INSERT INTO software_baseline_requests (id, agent_id, scope, requested_at, requested_by, state, updated_at) VALUES (?, ?, ?, ?, ?, 'requested', ?)")
      .run(id, agentId, JSON.stringify(scope), now, actor, now);
    return { request: rowToRequest(ctx.db.prepare('SELECT * FROM software_baseline_requests WHERE id = ?').get(id) as Record<string, unknown>), created: true };
  })();
}

/** What the terminal's sync answer carries: its open request (again on every sync until answered: the agent dedups by id). */
function openBaselineRequest(ctx: ConsoleContext, agentId: string): BaselineRequest | null {
  expireBaselineRequests(ctx, Date.now());
  const r = ctx.db.prepare("SELECT id, scope, state FROM software_baseline_requests WHERE agent_id = ? AND state IN ('requested', 'sent')").get(agentId) as
    | { id: string; scope: string; state: string }
    | undefined;
  if (!r) return null;
  if (r.state === 'requested') {
    const now = new Date().toISOString();
    ctx.db.prepare("UPDATE software_baseline_requests SET state = 'sent', sent_at = ?, updated_at = ? WHERE id = ?").run(now, now, r.id);
  }
  return { id: r.id, scope: JSON.parse(r.scope) as string[] };
}

export class BaselineRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A terminal's answer to its open request: the document becomes a PENDING baseline (the same
 * judgement as an administrator's import, then approve/reject on 無許可ソフトウェア), or the request
 * closes with the agent's error. Only the terminal the request was made of can answer it, once.
 */
export function receiveBaseline(ctx: ConsoleContext, agentId: string, body: BaselineUpload, text: string | null): BaselineUploadResponse {
  const out = ctx.db.transaction((): BaselineUploadResponse | { invalid: string } => {
    expireBaselineRequests(ctx, Date.now());
    const r = ctx.db.prepare('SELECT * FROM software_baseline_requests WHERE id = ? AND agent_id = ?').get(body.requestId, agentId) as Record<string, unknown> | undefined;
    if (!r) throw new BaselineRequestError(404, 'no_such_request', 'no baseline request with this id for this terminal');
    const req = rowToRequest(r);
    if (req.state !== 'sent' && req.state !== 'requested') throw new BaselineRequestError(409, 'request_closed', `the request is ${req.state}`);
    const now = new Date().toISOString();
    if ('error' in body || text === null) {
      const error = safeText('error' in body ? body.error : 'no document', 1024);
      ctx.db.prepare("UPDATE software_baseline_requests SET state = 'failed', error = ?, updated_at = ? WHERE id = ?").run(error, now, req.id);
      return { status: 'failed', baselineId: null };
    }
    const host = (ctx.db.prepare('SELECT hostname FROM agents WHERE id = ?').get(agentId) as { hostname: string } | undefined)?.hostname ?? agentId;
    let row: BaselineRow;
    try {
      row = storeBaseline(ctx, text, `${req.requestedBy} ← ${safeText(host, 64)}`);
    } catch (e) {
      // Judged invalid: the request closes (the administrator sees why and may ask again).
      ctx.db.prepare("UPDATE software_baseline_requests SET state = 'failed', error = ?, updated_at = ? WHERE id = ?").run(safeText((e as Error).message, 1024), now, req.id);
      return { invalid: (e as Error).message.slice(0, 2000) }; // committed, then refused below
    }
    ctx.db.prepare("UPDATE software_baseline_requests SET state = 'uploaded', baseline_id = ?, updated_at = ? WHERE id = ?").run(row.id, now, req.id);
    return { status: 'stored', baselineId: row.id };
  })();
  if ('invalid' in out) throw new BaselineRequestError(400, 'invalid_baseline', out.invalid);
  return out;
}

// ---- inventory (asset management) -------------------------------------------------------------

export interface InventorySummary {
  agentId: string;
  platform: string;
  digest: string;
  /** Entries on the terminal; `stored` < `total` when the agent had to clip its list. */
  total: number;
  stored: number;
  /** When the list last changed here, and when the terminal last reported (changed or confirmed). */
  changedAt: string;
  reportedAt: string;
}

function rowToSummary(r: Record<string, unknown>): InventorySummary {
  return {
    agentId: r.agent_id as string,
    platform: r.platform as string,
    digest: r.digest as string,
    total: r.total as number,
    stored: r.stored as number,
    changedAt: r.changed_at as string,
    reportedAt: r.reported_at as string,
  };
}

/**
 * One terminal's report. Digest only: `current` (and the report time is renewed) when it is the
 * list held here, else `unknown` (the agent then sends the list). With the list (its digest
 * already checked by the route): the terminal's entries are replaced in one transaction.
 */
export function reportInventory(ctx: ConsoleContext, agentId: string, req: SoftwareInventoryRequest, entries: readonly InventoryEntry[] | null, now = new Date().toISOString()): SoftwareInventoryResponse {
  const held = ctx.db.prepare('SELECT digest FROM software_inventory WHERE agent_id = ?').get(agentId) as { digest: string } | undefined;
  if (entries === null) {
    if (held?.digest !== req.digest) return { status: 'unknown' };
    ctx.db.prepare('UPDATE software_inventory SET reported_at = ?, total = ?, platform = ? WHERE agent_id = ?').run(now, req.total, req.platform, agentId);
    return { status: 'current' };
  }
  const tx = ctx.db.transaction(() => {
    // Only the rows that changed are written: an upgrade touches a few dozen packages, and each
    // row costs an update of the fleet-wide name index (bench/software-inventory).
    const key = (e: { name: string; version: string; arch: string }) => JSON.stringify([e.name, e.arch, e.version]);
    const next = new Map(entries.map((e) => [key(e), e]));
    const stored = next.size; // entries that read the same once display-safe are one row
    const del = ctx.db.prepare('DELETE FROM software_inventory_entries WHERE agent_id = ? AND name = ? AND arch = ? AND version = ?');
    for (const old of ctx.db.prepare('SELECT name, version, arch FROM software_inventory_entries WHERE agent_id = ?').all(agentId) as InventoryRow[]) {
      if (!next.delete(key(old))) del.run(agentId, old.name, old.arch, old.version);
    }
    const ins = ctx.db.prepare('INSERT INTO software_inventory_entries (agent_id, name, version, arch) VALUES (?, ?, ?, ?)');
    for (const e of next.values()) ins.run(agentId, e.name, e.version, e.arch);
    ctx.db
      .prepare(
        `INSERT INTO software_inventory (agent_id, platform, digest, total, stored, changed_at, reported_at) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (agent_id) DO UPDATE SET platform = excluded.platform, total = excluded.total, stored = excluded.stored, reported_at = excluded.reported_at,
           changed_at = CASE WHEN software_inventory.digest = excluded.digest THEN software_inventory.changed_at ELSE excluded.changed_at END, digest = excluded.digest`,
      )
      .run(agentId, req.platform, req.digest, Math.max(req.total, stored), stored, now, now);
  });
  tx();
  return { status: 'stored' };
}

export function inventorySummaries(ctx: ConsoleContext): InventorySummary[] {
  return (ctx.db.prepare('SELECT * FROM software_inventory ORDER BY agent_id').all() as Record<string, unknown>[]).map(rowToSummary);
}

export function inventorySummary(ctx: ConsoleContext, agentId: string): InventorySummary | null {
  const r = ctx.db.prepare('SELECT * FROM software_inventory WHERE agent_id = ?').get(agentId) as Record<string, unknown> | undefined;
  return r ? rowToSummary(r) : null;
}

/** A terminal's packages, by name; `contains` filters by name (case-insensitive, literal). */
export function inventoryOf(ctx: ConsoleContext, agentId: string, contains = '', limit = 50_000): InventoryRow[] {
  return (
    contains
      ? ctx.db
          .prepare("SELECT name, version, arch FROM software_inventory_entries WHERE agent_id = ? AND name LIKE ? ESCAPE '\\' ORDER BY name, arch, version LIMIT ?")
          .all(agentId, likeContains(contains), limit)
      : ctx.db.prepare('SELECT name, version, arch FROM software_inventory_entries WHERE agent_id = ? ORDER BY name, arch, version LIMIT ?').all(agentId, limit)
  ) as InventoryRow[];
}

export interface InventoryHit extends InventoryRow {
  agentId: string;
  reportedAt: string;
}

/**
 * Which terminals have package `name` (exact, case-insensitive; `contains`: anywhere in the name),
 * optionally only `version` (exact). At most `limit` rows, by name, terminal.
 */
export function terminalsWith(ctx: ConsoleContext, q: { name: string; version?: string; contains?: boolean }, limit = 10_000): InventoryHit[] {
  const where = [q.contains ? "e.name LIKE ? ESCAPE '\\'" : 'e.name = ? COLLATE NOCASE'];
  const args: unknown[] = [q.contains ? likeContains(q.name) : q.name];
  if (q.version) {
    where.push('e.version = ?');
    args.push(q.version);
  }
  return (
    ctx.db
      .prepare(
        `SELECT e.agent_id AS agentId, e.name, e.version, e.arch, i.reported_at AS reportedAt FROM software_inventory_entries e
         JOIN software_inventory i ON i.agent_id = e.agent_id WHERE ${where.join(' AND ')} ORDER BY e.name, e.agent_id, e.arch, e.version LIMIT ?`,
      )
      .all(...args, limit) as InventoryHit[]
  ).map((r) => ({ agentId: r.agentId, name: r.name, version: r.version, arch: r.arch, reportedAt: r.reportedAt }));
}

/** How a terminal differs from the approved baseline of the policy in force; null when none is approved. */
export function inventoryBaselineDiff(ctx: ConsoleContext, agentId: string): (BaselineDiff & { baselineId: string }) | null {
  const baseline = normalizeSoftwarePolicy(ctx.currentPolicy().policy.software).baseline;
  if (!baseline) return null;
  return { baselineId: baseline.id, ...baselineDiff(baseline.packages, inventoryOf(ctx, agentId)) };
}
