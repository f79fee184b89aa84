/**
 * Offline check of a retention archive (./archive.ts) and search in it. Needs only the file and,
 * to tie it to one console, that console's public key; every refusal names what is wrong.
 * Order: container (strict tar), manifest (canonical, signed by the key), compressed file (size,
 * SHA-256), declared size bounded BEFORE inflating, NDJSON (size, SHA-256), every line (shape,
 * order, hash), the chain ranges recomputed against the signed statement.
 */
import { gunzipSync } from 'node:zlib';
import { canonicalJson } from '../../protocol/canonical.js';
import { verifySignedManifest, type KeyPin } from '../report/evidence.js';
import { readTar } from '../report/tar.js';
import { ARCHIVE_FORMAT, chainRanges, familyCounts, MAX_ARCHIVE_EVENTS, MAX_NDJSON_BYTES, NDJSON_NAME, ROW_KEYS, rowHashOk, rowLine, sha256, SIGNED_PREFIX, type ArchiveManifest, type ArchiveRow } from './archive.js';

export type ArchiveCheck = { ok: true; manifest: ArchiveManifest; rows: ArchiveRow[]; pinned: boolean } | { ok: false; reason: string };

const fail = (reason: string): ArchiveCheck => ({ ok: false, reason });

export function verifyArchive(bytes: Buffer, pin: KeyPin = {}): ArchiveCheck {
  try {
    return check(bytes, pin);
  } catch (e) {
    return fail(`malformed archive: ${(e as Error).message}`);
  }
}

function isRow(x: unknown): x is ArchiveRow {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  const o = x as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length !== ROW_KEYS.length || keys.some((k, i) => k !== ROW_KEYS[i])) return false;
  const str = (k: string) => typeof o[k] === 'string';
  const int = (k: string) => Number.isSafeInteger(o[k]) && (o[k] as number) >= 0;
  return (
    int('rid') && int('seq') && str('id') && str('agent_id') && str('ts') && str('type') && str('severity') && (o.user === null || str('user')) && str('data') &&
    str('prev_hash') && str('hash') && str('terminal_id') && str('chain') && str('received_at') && (o.agent_ts === null || str('agent_ts'))
  );
}

function check(bytes: Buffer, pin: KeyPin): ArchiveCheck {
  let entries;
  try {
    entries = readTar(bytes);
  } catch (e) {
    return fail((e as Error).message);
  }
  const names = entries.map((e) => e.name).join(',');
  if (names !== `manifest.json,manifest.sig,${NDJSON_NAME}`) return fail(`entries are ${names.slice(0, 200)}, expected manifest.json, manifest.sig, ${NDJSON_NAME}`);
  const [mEntry, sEntry, gEntry] = entries as unknown as [{ data: Buffer }, { data: Buffer }, { data: Buffer }];
  const signed = verifySignedManifest<ArchiveManifest>(mEntry.data, sEntry.data, { format: ARCHIVE_FORMAT, prefix: SIGNED_PREFIX, pin });
  if (!signed.ok) return signed;
  const manifest = signed.manifest;
  // From here on the manifest is the console's own statement.
  const n = manifest.ndjson;
  const gz = gEntry.data;
  if (gz.length !== n.gzBytes) return fail(`${NDJSON_NAME}: ${gz.length} bytes, manifest says ${n.gzBytes}`);
  if (sha256(gz) !== n.gzSha256) return fail(`${NDJSON_NAME}: sha256 does not match the manifest`);
  if (!Number.isSafeInteger(n.bytes) || n.bytes < 1 || n.bytes > MAX_NDJSON_BYTES) return fail(`NDJSON: manifest claims ${n.bytes} bytes, more than this verifier reads (${MAX_NDJSON_BYTES})`);
  if (!Number.isSafeInteger(n.lines) || n.lines < 1 || n.lines > MAX_ARCHIVE_EVENTS) return fail(`NDJSON: manifest claims ${n.lines} lines (1 … ${MAX_ARCHIVE_EVENTS})`);
  let ndjson: Buffer;
  try {
    // Inflating stops at the declared size: a gzip bomb costs at most what the signed manifest admits.
    ndjson = gunzipSync(gz, { maxOutputLength: n.bytes });
  } catch (e) {
    const m = (e as Error).message;
    return fail(`${NDJSON_NAME}: ${/length|buffer/i.test(m) ? `inflates to more than the ${n.bytes} bytes the manifest says` : `not a complete gzip stream (${m})`}`);
  }
  if (ndjson.length !== n.bytes) return fail(`NDJSON: ${ndjson.length} bytes, manifest says ${n.bytes}`);
  if (sha256(ndjson) !== n.sha256) return fail('NDJSON: sha256 does not match the manifest');
  const text = ndjson.toString('utf8');
  if (!text.endsWith('\n')) return fail('NDJSON: last line not terminated');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length !== n.lines || lines.length !== manifest.counts?.events) return fail(`NDJSON: ${lines.length} lines, manifest says ${n.lines} / ${manifest.counts?.events}`);
  const rows: ArchiveRow[] = [];
  const bad = new Set<ArchiveRow>(); // rows whose hash does not recompute (each recomputed once)
  for (let i = 0; i < lines.length; i++) {
    let x: unknown;
    try {
      x = JSON.parse(lines[i]!);
    } catch {
      return fail(`line ${i + 1}: not JSON`);
    }
    if (!isRow(x)) return fail(`line ${i + 1}: not a stored event row`);
    if (rowLine(x) !== lines[i]) return fail(`line ${i + 1}: not written as stored`);
    const prev = rows[i - 1];
    if (prev && x.rid <= prev.rid) return fail(`line ${i + 1}: out of order (rid ${x.rid} after ${prev.rid})`);
    // A row the console stored as intact must still recompute; rows ingest already marked tampered are counted in the statement.
    const good = rowHashOk(x);
    if (x.chain === 'ok' && !good) return fail(`line ${i + 1}: hash does not recompute (agent ${x.agent_id.slice(0, 64)} seq ${x.seq})`);
    if (!good) bad.add(x);
    rows.push(x);
  }
  const chains = chainRanges(rows, (r) => !bad.has(r));
  if (canonicalJson(chains) !== canonicalJson(manifest.chains)) {
    const bad = chains.find((c, i) => canonicalJson(c) !== canonicalJson(manifest.chains?.[i]));
    return fail(`hash chains do not match the manifest${bad ? ` (agent ${bad.agentId.slice(0, 64)})` : ''}`);
  }
  if (canonicalJson(familyCounts(rows)) !== canonicalJson(manifest.counts.byFamily) || manifest.counts.agents !== chains.length) return fail('counts do not match the manifest');
  return { ok: true, manifest, rows, pinned: !!pin.publicKeyPem };
}

export interface SearchFilter {
  type?: string | undefined;
  agent?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
  text?: string | undefined;
}

/** Filter checks: ISO times (compared as text like the store does), type exact or "usb.*". */
export function checkFilter(f: SearchFilter): string | null {
  for (const k of ['from', 'to'] as const) {
    const v = f[k];
    if (v !== undefined && v !== '' && (v.length > 40 || Number.isNaN(Date.parse(v)))) return `--${k}: ISO 8601 の日時を指定してください / must be an ISO 8601 time`;
  }
  for (const k of ['type', 'agent', 'text'] as const) if ((f[k]?.length ?? 0) > 256) return `--${k}: too long`;
  return null;
}

const iso = (v: string): string => {
  const t = Date.parse(v);
  // Year 9999 and beyond still compare as text; toISOString would throw past year 275760.
  return Number.isNaN(t) ? v : new Date(Math.min(Math.max(t, -8.64e15), 8.64e15)).toISOString();
};

export function matches(r: ArchiveRow, f: SearchFilter): boolean {
  if (f.type) {
    if (f.type.endsWith('.*') ? !r.type.startsWith(f.type.slice(0, -1)) : r.type !== f.type) return false;
  }
  if (f.agent && r.agent_id !== f.agent && r.terminal_id !== f.agent) return false;
  if (f.from && r.ts < iso(f.from)) return false;
  if (f.to && r.ts >= iso(f.to)) return false;
  if (f.text) {
    const needle = f.text.toLowerCase();
    if (![r.type, r.user ?? '', r.data, r.agent_id, r.terminal_id].some((s) => s.toLowerCase().includes(needle))) return false;
  }
  return true;
}

export function searchRows(rows: readonly ArchiveRow[], f: SearchFilter, limit: number): { rows: ArchiveRow[]; total: number } {
  const out: ArchiveRow[] = [];
  let total = 0;
  for (const r of rows) {
    if (!matches(r, f)) continue;
    total++;
    if (out.length < limit) out.push(r);
  }
  return { rows: out, total };
}

export const SEARCH_CSV_HEADER = ['ts', 'agent_ts', 'terminal_id', 'agent_id', 'seq', 'type', 'severity', 'user', 'data', 'hash', 'prev_hash', 'chain', 'received_at'] as const;
export function searchCsvCells(r: ArchiveRow): unknown[] {
  return [r.ts, r.agent_ts, r.terminal_id, r.agent_id, r.seq, r.type, r.severity, r.user, r.data, r.hash, r.prev_hash, r.chain, r.received_at];
}
