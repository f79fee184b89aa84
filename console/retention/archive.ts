/**
 * The retention archive: one tar file (console/report/tar.ts, read back strictly) with
 *
 *   manifest.json      canonical JSON: families and periods, per agent the hash-chain range covered
 *                      (first seq + its prevHash, last seq + its hash), counts, the NDJSON's SHA-256
 *   manifest.sig       Ed25519 signature (base64) by the console's policy-signing key over
 *                      "sekimori-archive/1\n" + manifest.json — the same key, layout and fingerprint
 *                      as the evidence export (console/report/evidence.ts), with its own prefix so
 *                      neither can pass for the other or for a signed policy
 *   events.ndjson.gz   gzip of one stored event row per line, exactly as stored (every column of
 *                      `events`, incl. hash, prev_hash, agent_ts), ordered by rid
 *
 * Building is pure apart from the signature; ./verify.ts checks an archive offline.
 */
import { createHash, sign, type KeyObject } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { canonicalJson } from '../../protocol/canonical.js';
import { eventHash, genesisHash } from '../../protocol/events.js';
import type { StoredEventRow } from '../core/events.js';
import { keyFingerprint } from '../report/evidence.js';
import { writeTar } from '../report/tar.js';
import { familyOf } from './periods.js';

export const ARCHIVE_FORMAT = 'sekimori-archive/1';
export const SIGNED_PREFIX = Buffer.from(ARCHIVE_FORMAT + '\n', 'utf8');
export const NDJSON_NAME = 'events.ndjson.gz';
/** Events one archive holds at most (the verifier reads it whole: ~50 MB of NDJSON). */
export const MAX_ARCHIVE_EVENTS = 100_000;
/** Uncompressed NDJSON the verifier accepts; a manifest claiming more is refused before inflating. */
export const MAX_NDJSON_BYTES = 512 * 1024 * 1024;

/** One row of the console's `events` table, column for column: an archive line holds exactly that. */
export type ArchiveRow = StoredEventRow;
export const ROW_KEYS = ['rid', 'id', 'agent_id', 'seq', 'ts', 'type', 'severity', 'user', 'data', 'prev_hash', 'hash', 'terminal_id', 'chain', 'received_at', 'agent_ts'] as const;

/** The line written for a row: keys in column order whatever order the object had. */
export function rowLine(r: ArchiveRow): string {
  const o: Record<string, unknown> = {};
  for (const k of ROW_KEYS) o[k] = r[k];
  return JSON.stringify(o);
}

/** Per agent: the range of its chain the archive covers, and what recomputing found. */
export interface ChainRange {
  agentId: string;
  events: number;
  firstSeq: number;
  firstPrevHash: string;
  lastSeq: number;
  lastHash: string;
  /** Contiguous runs of seq (other families are kept, so an agent's archived events need not be contiguous). */
  runs: number;
  /** Rows whose hash does not recompute / whose link to the previous seq in the archive does not match. */
  badHashes: number;
  badLinks: number;
}

export interface ArchiveManifest {
  format: typeof ARCHIVE_FORMAT;
  organisation: string;
  archiveId: number;
  createdAt: string;
  createdBy: string;
  families: { family: string; days: number; cutoff: string }[];
  period: { from: string | null; to: string | null };
  key: { algorithm: 'ed25519'; publicKeyPem: string; fingerprint: string };
  ndjson: { name: typeof NDJSON_NAME; lines: number; bytes: number; sha256: string; gzBytes: number; gzSha256: string };
  chains: ChainRange[];
  counts: { events: number; agents: number; byFamily: Record<string, number> };
}

export const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** Whether a stored row's hash recomputes (the claimed time, agent_ts, is what the agent signed). */
export function rowHashOk(r: ArchiveRow): boolean {
  let data: unknown;
  try {
    data = JSON.parse(r.data);
  } catch {
    return false;
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return false;
  return (
    eventHash(r.prev_hash, { id: r.id, agentId: r.agent_id, seq: r.seq, ts: r.agent_ts ?? r.ts, type: r.type as never, severity: r.severity as never, user: r.user, data: data as Record<string, unknown> }) ===
    r.hash
  );
}

/** Chain ranges computed from the rows alone; the verifier runs the same code on what it read. */
/** `hashOk` lets a caller that already recomputed each row's hash pass the answers (by row) instead of recomputing. */
export function chainRanges(rows: readonly ArchiveRow[], hashOk: (r: ArchiveRow) => boolean = rowHashOk): ChainRange[] {
  const by = new Map<string, ArchiveRow[]>();
  for (const r of rows) {
    const l = by.get(r.agent_id);
    if (l) l.push(r);
    else by.set(r.agent_id, [r]);
  }
  const out: ChainRange[] = [];
  for (const [agentId, list] of [...by].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    list.sort((a, b) => a.seq - b.seq);
    let runs = 0;
    let badHashes = 0;
    let badLinks = 0;
    for (let i = 0; i < list.length; i++) {
      const r = list[i]!;
      const prev = list[i - 1];
      if (!hashOk(r)) badHashes++;
      if (r.seq === 1 && r.prev_hash !== genesisHash(agentId)) badLinks++;
      if (prev && r.seq === prev.seq + 1) {
        if (r.prev_hash !== prev.hash) badLinks++;
      } else runs++;
    }
    const first = list[0]!;
    const last = list[list.length - 1]!;
    out.push({ agentId, events: list.length, firstSeq: first.seq, firstPrevHash: first.prev_hash, lastSeq: last.seq, lastHash: last.hash, runs, badHashes, badLinks });
  }
  return out;
}

export function familyCounts(rows: readonly ArchiveRow[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rows) {
    const f = familyOf(r.type);
    out[f] = (out[f] ?? 0) + 1;
  }
  return out;
}

export interface BuildInput {
  rows: readonly ArchiveRow[];
  archiveId: number;
  organisation: string;
  createdBy: string;
  createdAt: Date;
  families: { family: string; days: number; cutoff: string }[];
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function signManifest(manifestBytes: Buffer, privateKey: KeyObject): Buffer {
  return Buffer.from(sign(null, Buffer.concat([SIGNED_PREFIX, manifestBytes]), privateKey).toString('base64') + '\n', 'ascii');
}

/** Assembles the tar from already-made parts (tests use it to build hostile archives). */
export function assemble(manifest: ArchiveManifest, gz: Buffer, privateKey: KeyObject, mtime: Date): { tar: Buffer; manifestSha256: string } {
  const manifestBytes = Buffer.from(canonicalJson(manifest) + '\n', 'utf8');
  const tar = writeTar(
    [
      { name: 'manifest.json', data: manifestBytes },
      { name: 'manifest.sig', data: signManifest(manifestBytes, privateKey) },
      { name: NDJSON_NAME, data: gz },
    ],
    mtime,
  );
  return { tar, manifestSha256: sha256(manifestBytes) };
}

export function buildArchive(x: BuildInput): { tar: Buffer; manifest: ArchiveManifest; manifestSha256: string } {
  if (x.rows.length === 0) throw new Error('nothing to archive');
  if (x.rows.length > MAX_ARCHIVE_EVENTS) throw new Error(`at most ${MAX_ARCHIVE_EVENTS} events per archive`);
  const ndjson = Buffer.from(x.rows.map(rowLine).join('\n') + '\n', 'utf8');
  const gz = gzipSync(ndjson, { level: 6 });
  let from: string | null = null;
  let to: string | null = null;
  for (const r of x.rows) {
    if (from === null || r.ts < from) from = r.ts;
    if (to === null || r.ts > to) to = r.ts;
  }
  const chains = chainRanges(x.rows);
  const manifest: ArchiveManifest = {
    format: ARCHIVE_FORMAT,
    organisation: x.organisation,
    archiveId: x.archiveId,
    createdAt: x.createdAt.toISOString(),
    createdBy: x.createdBy,
    families: x.families,
    period: { from, to },
    key: { algorithm: 'ed25519', publicKeyPem: x.publicKey.export({ type: 'spki', format: 'pem' }).toString(), fingerprint: keyFingerprint(x.publicKey) },
    ndjson: { name: NDJSON_NAME, lines: x.rows.length, bytes: ndjson.length, sha256: sha256(ndjson), gzBytes: gz.length, gzSha256: sha256(gz) },
    chains,
    counts: { events: x.rows.length, agents: chains.length, byFamily: familyCounts(x.rows) },
  };
  const { tar, manifestSha256 } = assemble(manifest, gz, x.privateKey, x.createdAt);
  return { tar, manifest, manifestSha256 };
}
