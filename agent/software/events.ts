/**
 * What the software capability reports: event data per type. Pure; every path and rule text
 * goes through safeText (file names are attacker-controlled), hashes travel as they are.
 */
import type { EventDataOf } from '../../protocol/event-data.js';
import { safeText } from '../../protocol/text.js';
import type { SoftwarePolicy } from '../../protocol/policy-software.js';
import type { Verdict } from './decide.js';
import type { InstalledProgram, QuarantineRecord } from './platform.js';

type Mode = SoftwarePolicy['mode'];
const path1k = (p: string) => safeText(p, 1024);
// safeText marks a cut with '…' past its limit: 511 + 1 fits the 512 the declaration allows.
const rule = (v: Pick<Verdict, 'rule'>) => safeText(v.rule, 511);

export function unauthorizedProcessData(o: {
  pid: number;
  uid: number | null;
  target: { path: string; sha256: string };
  exePath: string;
  exeSha256: string | null;
  script: { path: string; sha256: string } | null;
  deleted: boolean;
  verdict: Verdict;
  mode: Mode;
  enforce: boolean;
  detectMs: number;
}): EventDataOf<'software.unauthorized_process'> {
  return {
    pid: o.pid,
    uid: o.uid,
    path: path1k(o.target.path),
    sha256: o.target.sha256,
    exe: path1k(o.exePath),
    exeSha256: o.exeSha256,
    ...(o.script ? { script: path1k(o.script.path), scriptSha256: o.script.sha256 } : {}),
    deleted: o.deleted,
    rule: rule(o.verdict),
    reason: o.verdict.reason,
    mode: o.mode,
    action: o.enforce ? 'kill' : 'none',
    detectMs: o.detectMs,
  };
}

export function killedData(o: { pid: number; uid: number | null; target: { path: string; sha256: string }; verdict: Verdict; mode: Mode; killMs: number }): EventDataOf<'software.killed'> {
  return { pid: o.pid, uid: o.uid, path: path1k(o.target.path), sha256: o.target.sha256, rule: rule(o.verdict), mode: o.mode, killMs: o.killMs };
}

export function unauthorizedFileData(o: {
  real: string;
  rawPath: string;
  digest: { sha256: string; size: number; uid: number; mode: number };
  event: 'add' | 'change';
  verdict: Verdict;
  mode: Mode;
  quarantine: boolean;
  detectMs: number;
}): EventDataOf<'software.unauthorized_file'> {
  const d = o.digest;
  return {
    path: path1k(o.real),
    ...(o.real !== o.rawPath ? { link: path1k(o.rawPath) } : {}),
    sha256: d.sha256,
    size: d.size,
    uid: d.uid,
    fileMode: (d.mode & 0o7777).toString(8),
    event: o.event,
    rule: rule(o.verdict),
    reason: o.verdict.reason,
    mode: o.mode,
    action: o.quarantine ? 'quarantine' : 'none',
    detectMs: o.detectMs,
  };
}

export function quarantinedData(rec: QuarantineRecord, real: string, sha256: string, verdict: Verdict, mode: Mode): EventDataOf<'software.quarantined'> {
  return { id: rec.id, path: path1k(real), sha256, size: rec.size, uid: rec.uid, rule: rule(verdict), mode };
}

export function removedData(p: InstalledProgram): EventDataOf<'software.removed'> {
  return { name: safeText(p.name), version: safeText(p.version), arch: safeText(p.arch) };
}

export function installedData(p: InstalledProgram & { previousVersion?: string }, v: Pick<Verdict, 'allowed' | 'rule'>, mode: Mode): EventDataOf<'software.installed'> {
  return {
    name: safeText(p.name),
    version: safeText(p.version),
    arch: safeText(p.arch),
    ...(p.previousVersion ? { previousVersion: safeText(p.previousVersion) } : {}),
    authorized: v.allowed,
    rule: rule(v),
    mode,
  };
}

export function restoredData(id: string, rec: QuarantineRecord, by: string): EventDataOf<'software.restored'> {
  return { id, path: path1k(rec.originalPath), sha256: rec.sha256, by: safeText(by) };
}

/** agent.error for a step that failed (kill, quarantine, reading the package database). */
export function actionErrorData(action: 'kill' | 'quarantine' | 'package_db', fields: { pid?: number; path: string; error: string }): EventDataOf<'agent.error'> {
  return { capability: 'software', action, ...(fields.pid !== undefined ? { pid: fields.pid } : {}), path: path1k(fields.path), error: fields.error };
}
