/**
 * One retention run: archive what is due, prove the archive on disk, then delete exactly what it
 * holds. Fail closed at every step: an archive that could not be written completely (disk full,
 * I/O error) or does not verify when read back deletes nothing, and an event says so.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurably } from '../../protocol/durable-file.js';
import { consolePaths } from '../core/paths.js';
import type { ConsoleContext } from '../module.js';
import { buildArchive, MAX_ARCHIVE_EVENTS } from './archive.js';
import { effectivePeriods, parseConfigRetention, type Period } from './periods.js';
import { archiveFailed, archiveWritten, consolePeriods, deleteArchived, dueRows, reserveArchive, setLastRun } from './store.js';
import { verifyArchive } from './verify.js';

export const ARCHIVE_DIR = 'archives';

/** config.json `retention`, read from the file each time (an edit applies at the next run). */
export function configPeriods(dataDir: string): Map<string, number> {
  const raw = JSON.parse(readFileSync(consolePaths(dataDir).config, 'utf8')) as { retention?: unknown };
  const p = parseConfigRetention(raw.retention);
  if ('error' in p) throw new Error(p.error);
  return p.ok;
}

export function periodsInForce(ctx: ConsoleContext, now: Date): Period[] {
  return effectivePeriods(configPeriods(ctx.dataDir), consolePeriods(ctx.db), now);
}

export interface ArchiveOutcome {
  id: number;
  file: string;
  events: number;
  bytes: number;
  deleted: number;
  manifestSha256: string;
}

export interface RunResult {
  archives: ArchiveOutcome[];
  deleted: number;
  /** More was due than this run's bound allowed. */
  more: boolean;
  failed: string | null;
}

/** Writes the archive durably (temp file, fsync, rename, fsync of the folder); throws on any error (ENOSPC). */
function writeDurably(dir: string, name: string, data: Buffer): void {
  writeFileDurably(join(dir, name), data);
}

export interface RunOptions {
  actor: string;
  /** Events per archive (≤ MAX_ARCHIVE_EVENTS). */
  maxEvents?: number;
  /** Archives this run may write. */
  maxArchives?: number;
  /** Test seam: the write (default: durable write into DATA/archives). */
  write?: (dir: string, name: string, data: Buffer) => void;
}

export function runRetention(ctx: ConsoleContext, now: Date, opts: RunOptions): RunResult {
  const maxEvents = Math.max(1, Math.min(opts.maxEvents ?? MAX_ARCHIVE_EVENTS, MAX_ARCHIVE_EVENTS));
  const maxArchives = Math.max(1, Math.min(opts.maxArchives ?? 1, 1000));
  const write = opts.write ?? writeDurably;
  const out: RunResult = { archives: [], deleted: 0, more: false, failed: null };
  const periods = periodsInForce(ctx, now);
  setLastRun(ctx.db, now);
  if (!periods.length) return out;
  const paths = consolePaths(ctx.dataDir);
  const privateKey = createPrivateKey(readFileSync(paths.policyKey, 'utf8'));
  const publicKey = createPublicKey(privateKey);
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const dir = join(ctx.dataDir, ARCHIVE_DIR);
  const families = periods.map((p) => ({ family: p.family, days: p.days, cutoff: p.cutoff }));
  for (let i = 0; i < maxArchives; i++) {
    const rows = dueRows(ctx.db, periods, maxEvents + 1);
    if (!rows.length) return out;
    if (rows.length > maxEvents) {
      rows.length = maxEvents;
      out.more = true;
    } else out.more = false;
    const id = reserveArchive(ctx.db, opts.actor, JSON.stringify(families), now);
    const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'z').toLowerCase();
    const file = `archive-${String(id).padStart(6, '0')}-${stamp}.tar`;
    let built;
    try {
      built = buildArchive({ rows, archiveId: id, organisation: ctx.organisation(), createdBy: opts.actor, createdAt: now, families, privateKey, publicKey });
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      write(dir, file, built.tar);
      // Proven on disk, not in memory: read back and verified against the console's own key.
      const back = verifyArchive(readFileSync(join(dir, file)), { publicKeyPem });
      if (!back.ok) throw new Error(`archive read back does not verify: ${back.reason}`);
      if (back.rows.length !== rows.length || back.rows.some((r, k) => r.rid !== rows[k]!.rid || r.hash !== rows[k]!.hash)) throw new Error('archive read back does not hold the selected events');
    } catch (e) {
      const reason = (e as NodeJS.ErrnoException).code ? `${(e as NodeJS.ErrnoException).code}: ${(e as Error).message}` : (e as Error).message;
      archiveFailed(ctx.db, id, 'failed', reason);
      ctx.recordEvent({ type: 'admin.archive_failed', severity: 'critical', user: opts.actor, data: { archive: file, events: rows.length, reason: reason.slice(0, 500) } });
      out.failed = reason;
      return out;
    }
    const summary = { file, fromTs: built.manifest.period.from, toTs: built.manifest.period.to, events: rows.length, agents: built.manifest.chains.length, bytes: built.tar.length, manifestSha256: built.manifestSha256 };
    archiveWritten(ctx.db, id, summary);
    ctx.recordEvent({
      type: 'admin.archive_written',
      user: opts.actor,
      data: { archive: file, events: rows.length, bytes: built.tar.length, manifestSha256: built.manifestSha256, families: Object.keys(built.manifest.counts.byFamily), from: summary.fromTs ?? '', to: summary.toTs ?? '' },
    });
    // The deletion and its event are one transaction: both happen or neither.
    const deleted = ctx.db.transaction((): number | null => {
      const n = deleteArchived(ctx.db, id, rows.map((r) => r.rid), now);
      if (n === null) return null;
      ctx.recordEvent({ type: 'admin.events_deleted', user: opts.actor, data: { archive: file, events: n, families: Object.keys(built.manifest.counts.byFamily) } });
      return n;
    })();
    if (deleted === null) {
      archiveFailed(ctx.db, id, 'stale', 'another run archived some of these events first; nothing deleted');
      out.failed = 'stale';
      return out;
    }
    out.archives.push({ id, file, events: rows.length, bytes: built.tar.length, deleted, manifestSha256: built.manifestSha256 });
    out.deleted += deleted;
    if (!out.more) return out;
  }
  return out;
}
