/**
 * 証跡の書き出し: the self-inspection evidence as one tar archive an auditor can check offline.
 *
 *   manifest.json   what the archive covers: period, every file's size and sha256, each hash
 *                   chain's events, first/last seq and last hash in the period, the console's head
 *                   of each chain, counts, the items' verdicts, and the console's public key
 *   manifest.sig    Ed25519 signature (base64) by the console's policy-signing key over
 *                   "sekimori-evidence/1\n" + manifest.json (the prefix keeps it from ever being
 *                   mistaken for a signed policy, which is signed over bare canonical JSON)
 *   report.json     the checklist items in full, exceptions, policy versions, terminals
 *   events.jsonl    every event of the period as its terminal signed it (hashes recomputable)
 *   *.csv           the same for Excel (BOM, quoted, formula cells neutralised)
 *
 * `sekimori-console evidence verify FILE` (verifyEvidence) needs nothing but the file: it checks
 * the archive is byte-for-byte canonical, the signature, every file's hash, and recomputes every
 * event hash and chain link against the manifest's statement.
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from '../../protocol/canonical.js';
import { CONSOLE_CHAIN_ID, eventHash, genesisHash, type SekimoriEvent } from '../../protocol/events.js';
import { csvLine, BOM } from '../web/csv.js';
import type { ExceptionFacts, FileWritten, ItemResult, PolicyVersionFacts, ReportFacts } from './items.js';
import { readTar, writeTar, type TarEntry } from './tar.js';

export const EVIDENCE_FORMAT = 'sekimori-evidence/1';
const SIGNED_PREFIX = Buffer.from(EVIDENCE_FORMAT + '\n', 'utf8');
/** Events one archive may carry; a longer period is refused (choose a shorter one), never cut silently. */
export const MAX_EVIDENCE_EVENTS = 200_000;

/** An event as exported: what its terminal signed, and how the console stored it. */
export interface EvidenceEvent extends SekimoriEvent {
  terminalId: string;
  chain: string;
  receivedAt: string;
  /** The time the console sorts it under (differs from ts when the agent's clock was implausible). */
  storedTs: string;
}

export interface ChainStatement {
  agentId: string;
  hostname: string;
  events: number;
  firstSeq: number;
  lastSeq: number;
  lastHash: string;
  /** Events whose hash does not recompute, links that do not match, and holes in seq, within the archive. */
  badHashes: number;
  badLinks: number;
  holes: number;
  /** The console's latest event of this chain when exporting (may be after the period). */
  consoleHeadSeq: number | null;
  consoleHeadHash: string | null;
}

export interface EvidenceManifest {
  format: typeof EVIDENCE_FORMAT;
  organisation: string;
  generatedAt: string;
  generatedBy: string;
  period: { from: string; to: string; since: string; until: string };
  key: { algorithm: 'ed25519'; publicKeyPem: string; fingerprint: string };
  files: { name: string; bytes: number; sha256: string }[];
  chains: ChainStatement[];
  counts: { terminals: number; events: number; exceptions: number; filesWritten: number; items: number; compliantItems: number };
  items: { id: string; verdict: string; covered: number; total: number }[];
}

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** SHA-256 of the public key's DER (SPKI), hex: what an auditor compares with the console's. */
export function keyFingerprint(key: KeyObject): string {
  return sha256(key.export({ type: 'spki', format: 'der' }));
}

/** What ties a check to one console: its public key (used instead of the one in the file) and/or that key's fingerprint. */
export interface KeyPin {
  publicKeyPem?: string | undefined;
  fingerprint?: string | undefined;
}

export type SignedManifestCheck<M> = { ok: true; manifest: M; fingerprint: string } | { ok: false; reason: string };

/**
 * The signed manifest of an evidence export or a retention archive (same key, same layout, each
 * format its own prefix): JSON, the expected format, canonical bytes (only the canonical text is
 * signed, so a re-serialised manifest is refused too), an Ed25519 key — the pinned one, else the one
 * the manifest carries — matching the pinned fingerprint and the manifest's, and a signature over
 * prefix + bytes. Only then is the manifest the console's own statement; `M` is what the caller's
 * format declares, and the caller checks the rest of it.
 */
export function verifySignedManifest<M extends { format: string; key: { publicKeyPem: string; fingerprint: string } }>(
  manifestBytes: Buffer,
  sigBytes: Buffer,
  opts: { format: M['format']; prefix: Buffer; pin: KeyPin },
): SignedManifestCheck<M> {
  const fail = (reason: string): SignedManifestCheck<M> => ({ ok: false, reason });
  let manifest: M;
  try {
    manifest = JSON.parse(manifestBytes.toString('utf8')) as M;
  } catch {
    return fail('manifest.json is not JSON');
  }
  if (typeof manifest !== 'object' || manifest === null || manifest.format !== opts.format) return fail(`manifest.json: format is not ${opts.format}`);
  if (canonicalJson(manifest) + '\n' !== manifestBytes.toString('utf8')) return fail('manifest.json is not in canonical form');
  let key: KeyObject;
  try {
    key = createPublicKey(opts.pin.publicKeyPem ?? manifest.key?.publicKeyPem ?? '');
  } catch {
    return fail('public key unreadable');
  }
  if (key.asymmetricKeyType !== 'ed25519') return fail('public key is not Ed25519');
  const fp = keyFingerprint(key);
  // The pin first: a file from another console is named as such, whatever its manifest claims.
  if (opts.pin.fingerprint && opts.pin.fingerprint.replace(/[:\s]/g, '').toLowerCase() !== fp) return fail(`the key is not the one pinned (${fp})`);
  if (manifest.key?.fingerprint !== fp) return fail(`signed by another key: manifest names ${String(manifest.key?.fingerprint).slice(0, 64)}, the console's key is ${fp}`);
  const sigText = sigBytes.toString('ascii');
  if (!/^[A-Za-z0-9+/]{86}==\n$/.test(sigText)) return fail('manifest.sig is not one base64 Ed25519 signature');
  let good = false;
  try {
    good = verify(null, Buffer.concat([opts.prefix, manifestBytes]), key, Buffer.from(sigText.trim(), 'base64'));
  } catch {
    good = false;
  }
  if (!good) return fail('signature does not verify (manifest changed, or signed by another key)');
  return { ok: true, manifest, fingerprint: fp };
}

/** Per-chain statement computed from the events alone (the verifier runs the same code). */
export function chainStatements(events: readonly EvidenceEvent[], hostnames: ReadonlyMap<string, string>, heads: ReadonlyMap<string, { seq: number; hash: string | null }>): ChainStatement[] {
  const by = new Map<string, EvidenceEvent[]>();
  for (const e of events) {
    const list = by.get(e.agentId);
    if (list) list.push(e);
    else by.set(e.agentId, [e]);
  }
  const out: ChainStatement[] = [];
  for (const [agentId, list] of [...by].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    list.sort((a, b) => a.seq - b.seq);
    let badHashes = 0;
    let badLinks = 0;
    let holes = 0;
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      if (eventHash(e.prevHash, e) !== e.hash) badHashes++;
      const prev = list[i - 1];
      if (e.seq === 1 && e.prevHash !== genesisHash(agentId)) badLinks++;
      else if (prev && e.seq === prev.seq + 1 && e.prevHash !== prev.hash) badLinks++;
      else if (prev && e.seq !== prev.seq + 1) holes++;
    }
    const head = heads.get(agentId);
    out.push({
      agentId,
      hostname: hostnames.get(agentId) ?? '',
      events: list.length,
      firstSeq: list[0]!.seq,
      lastSeq: list[list.length - 1]!.seq,
      lastHash: list[list.length - 1]!.hash,
      badHashes,
      badLinks,
      holes,
      consoleHeadSeq: head?.seq ?? null,
      consoleHeadHash: head?.hash ?? null,
    });
  }
  return out;
}

function csv(header: string[], rows: unknown[][]): Buffer {
  return Buffer.from(BOM + csvLine(header) + rows.map(csvLine).join(''), 'utf8');
}

export interface EvidenceInput {
  facts: ReportFacts;
  items: ItemResult[];
  events: EvidenceEvent[];
  files: FileWritten[];
  organisation: string;
  generatedBy: string;
  generatedAt: Date;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The console's own chain head (admin actions, alerts), which is not a terminal's. */
  consoleHead?: { seq: number; hash: string | null } | undefined;
  /**
   * Retention (console/retention): events of the period archived and deleted. Their seqs are
   * holes in events.jsonl; this says which archive holds them (report.json), so a hole is explained.
   */
  retention?: RetentionFacts | undefined;
}

export interface RetentionFacts {
  archives: { file: string; from: string | null; to: string | null; events: number; manifestSha256: string | null }[];
  archivedEvents: { agentId: string; events: number }[];
}

/** The archive (pure apart from the signature). */
export function buildEvidence(x: EvidenceInput): Buffer {
  const f = x.facts;
  if (x.events.length > MAX_EVIDENCE_EVENTS) throw new Error(`more than ${MAX_EVIDENCE_EVENTS} events in the period: choose a shorter period`);
  const names = new Map(f.terminals.map((t) => [t.id, t.hostname]));
  const heads = new Map([...f.chain].map(([id, c]) => [id, { seq: c.headSeq, hash: c.headHash }]));
  if (x.consoleHead) heads.set(CONSOLE_CHAIN_ID, x.consoleHead);
  const report = {
    format: EVIDENCE_FORMAT,
    period: { from: f.fromDay, to: f.toDay },
    terminals: f.terminals,
    items: x.items,
    exceptions: f.exceptions,
    policies: f.policies,
    filesWritten: x.files,
    ...(x.retention ? { retention: x.retention } : {}),
  };
  const files: TarEntry[] = [
    { name: 'report.json', data: Buffer.from(JSON.stringify(report, null, 2) + '\n', 'utf8') },
    { name: 'events.jsonl', data: Buffer.from(x.events.map((e) => JSON.stringify(e)).join('\n') + (x.events.length ? '\n' : ''), 'utf8') },
    {
      name: 'items.csv',
      data: csv(
        ['item', 'verdict', 'covered', 'total', 'non_compliant_terminals'],
        x.items.map((i) => [i.id, i.verdict, i.covered, i.total, i.offenders.map((o) => o.name).join(' / ')]),
      ),
    },
    {
      name: 'offenders.csv',
      data: csv(
        ['item', 'terminal_id', 'hostname', 'reasons'],
        x.items.flatMap((i) => i.offenders.map((o) => [i.id, o.terminalId, o.name, o.reasons.join(' ')])),
      ),
    },
    {
      name: 'exceptions.csv',
      data: csv(
        ['id', 'terminal_id', 'hostname', 'device', 'access', 'granted_at', 'expires_at', 'revoked_at', 'applicant', 'staff_user', 'approver', 'request_id', 'reason', 'files_written'],
        f.exceptions.map((e: ExceptionFacts) => [e.id, e.agentId, names.get(e.agentId) ?? '', e.device, e.access, e.grantedAt, e.expiresAt, e.revokedAt, e.applicant, e.staffUser, e.approver, e.requestId, e.reason, e.files.length]),
      ),
    },
    {
      name: 'files-written.csv',
      data: csv(
        ['ts', 'terminal_id', 'hostname', 'device', 'user', 'path', 'size', 'sha256', 'exception_id'],
        x.files.map((w) => [w.ts, w.agentId, names.get(w.agentId) ?? '', w.device, w.user, w.path, w.size, w.sha256, w.exceptionId]),
      ),
    },
    {
      name: 'policies.csv',
      data: csv(['version', 'created_at', 'created_by', 'signature'], f.policies.map((p: PolicyVersionFacts) => [p.version, p.createdAt, p.createdBy, p.signatureOk ? 'verified' : 'BAD'])),
    },
    {
      name: 'events.csv',
      data: csv(
        ['ts', 'terminal_id', 'hostname', 'agent_id', 'seq', 'type', 'severity', 'user', 'data', 'hash', 'chain'],
        x.events.map((e) => [e.storedTs, e.terminalId, names.get(e.terminalId) ?? '', e.agentId, e.seq, e.type, e.severity, e.user, e.data, e.hash, e.chain]),
      ),
    },
  ];
  const publicKeyPem = x.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const manifest: EvidenceManifest = {
    format: EVIDENCE_FORMAT,
    organisation: x.organisation,
    generatedAt: x.generatedAt.toISOString(),
    generatedBy: x.generatedBy,
    period: { from: f.fromDay, to: f.toDay, since: f.since, until: f.until },
    key: { algorithm: 'ed25519', publicKeyPem, fingerprint: keyFingerprint(x.publicKey) },
    files: files.map((e) => ({ name: e.name, bytes: e.data.length, sha256: sha256(e.data) })),
    chains: chainStatements(x.events, names, heads),
    counts: {
      terminals: f.terminals.length,
      events: x.events.length,
      exceptions: f.exceptions.length,
      filesWritten: x.files.length,
      items: x.items.length,
      compliantItems: x.items.filter((i) => i.verdict === 'compliant').length,
    },
    items: x.items.map((i) => ({ id: i.id, verdict: i.verdict, covered: i.covered, total: i.total })),
  };
  const manifestBytes = Buffer.from(canonicalJson(manifest) + '\n', 'utf8');
  const signature = sign(null, Buffer.concat([SIGNED_PREFIX, manifestBytes]), x.privateKey).toString('base64');
  return writeTar([{ name: 'manifest.json', data: manifestBytes }, { name: 'manifest.sig', data: Buffer.from(signature + '\n', 'ascii') }, ...files], x.generatedAt);
}

export type VerifyResult = { ok: true; manifest: EvidenceManifest } | { ok: false; reason: string };

function fail(reason: string): VerifyResult {
  return { ok: false, reason };
}

/**
 * Checks an archive offline. `pin` (a PEM public key or its fingerprint) ties it to one console;
 * without it the embedded key is used and its fingerprint reported for the auditor to compare.
 */
export function verifyEvidence(bytes: Buffer, pin: KeyPin = {}): VerifyResult {
  try {
    return verifyOrFail(bytes, pin);
  } catch (e) {
    // Only a correctly signed manifest reaches the deeper checks; anything malformed there is still a refusal, never a crash.
    return fail(`malformed archive: ${(e as Error).message}`);
  }
}

function verifyOrFail(bytes: Buffer, pin: KeyPin): VerifyResult {
  let entries: TarEntry[];
  try {
    entries = readTar(bytes);
  } catch (e) {
    return fail((e as Error).message);
  }
  const byName = new Map<string, Buffer>();
  for (const e of entries) {
    if (byName.has(e.name)) return fail(`duplicate entry ${e.name}`);
    byName.set(e.name, e.data);
  }
  const manifestBytes = byName.get('manifest.json');
  const sig = byName.get('manifest.sig');
  if (!manifestBytes || !sig) return fail('manifest.json or manifest.sig missing');
  const signed = verifySignedManifest<EvidenceManifest>(manifestBytes, sig, { format: EVIDENCE_FORMAT, prefix: SIGNED_PREFIX, pin });
  if (!signed.ok) return signed;
  const manifest = signed.manifest;
  if (!Array.isArray(manifest.files)) return fail('manifest.files missing');
  const listed = new Set<string>(['manifest.json', 'manifest.sig']);
  for (const f of manifest.files) {
    const data = byName.get(f.name);
    if (!data) return fail(`${f.name}: listed in the manifest but missing`);
    if (data.length !== f.bytes) return fail(`${f.name}: size ${data.length}, manifest says ${f.bytes}`);
    if (sha256(data) !== f.sha256) return fail(`${f.name}: sha256 does not match the manifest`);
    listed.add(f.name);
  }
  for (const name of byName.keys()) if (!listed.has(name)) return fail(`${name}: not listed in the manifest`);
  // The chains: recompute every hash and link from events.jsonl and compare with the signed statement.
  const text = byName.get('events.jsonl')?.toString('utf8') ?? '';
  const events: EvidenceEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      events.push(JSON.parse(line) as EvidenceEvent);
    } catch {
      return fail('events.jsonl: a line is not JSON');
    }
  }
  if (events.length !== manifest.counts?.events) return fail(`events.jsonl has ${events.length} events, manifest says ${manifest.counts?.events}`);
  const names = new Map((manifest.chains ?? []).map((c) => [c.agentId, c.hostname]));
  const heads = new Map((manifest.chains ?? []).filter((c) => c.consoleHeadSeq !== null).map((c) => [c.agentId, { seq: c.consoleHeadSeq!, hash: c.consoleHeadHash }]));
  const recomputed = chainStatements(events, names, heads);
  if (canonicalJson(recomputed) !== canonicalJson(manifest.chains)) {
    const bad = recomputed.find((c, i) => canonicalJson(c) !== canonicalJson(manifest.chains[i]));
    return fail(`hash chains do not match the manifest${bad ? ` (agent ${bad.agentId})` : ''}`);
  }
  return { ok: true, manifest };
}
