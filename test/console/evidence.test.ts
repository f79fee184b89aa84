/**
 * The signed evidence export (console/report/evidence.ts) on a real console data folder with the
 * seeded fleet: the archive verifies offline (also through `sekimori-console evidence verify`), and
 * fails after ANY one-byte change, a re-serialised manifest, an added file, another console's key.
 * The report facts of the fleet give each item's expected verdict and coverage.
 */
import { createHash, createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../console/cli.js';
import { initConsole, openConsole, type OpenConsole } from '../../console/core/context.js';
import { verifyEvidence, type EvidenceManifest } from '../../console/report/evidence.js';
import { exportEvidence } from '../../console/report/export.js';
import { evaluate } from '../../console/report/items.js';
import { gatherFacts } from '../../console/report/store.js';
import { readTar, writeTar } from '../../console/report/tar.js';
import { canonicalJson } from '../../protocol/canonical.js';
import { EXPECTED, FLEET, HOSTILE_HOST, seedFleet } from './report-fleet.js';

let dir = '';
let data = '';
let ctx: OpenConsole;
let archive: Buffer;
let ids: ReturnType<typeof seedFleet>;
const now = new Date();
const jst = (d: Date) => new Date(d.getTime() + 9 * 3_600_000).toISOString().slice(0, 10);
const from = jst(new Date(now.getTime() - 2 * 86_400_000));
const to = jst(now);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sekimori-evidence-'));
  data = join(dir, 'data');
  await initConsole(data, { sans: [], organisation: 'テスト市' });
  ctx = openConsole(data);
  ids = seedFleet(ctx, now);
  archive = exportEvidence(ctx, from, to, 'auditor1', now).archive;
}, 60_000);

afterAll(() => {
  ctx?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    const code = await main(args);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

function manifestOf(buf: Buffer): EvidenceManifest {
  return JSON.parse(readTar(buf).find((e) => e.name === 'manifest.json')!.data.toString('utf8')) as EvidenceManifest;
}

describe('self-inspection facts of the seeded fleet', () => {
  it('each item: verdict, coverage n of 5, offenders by terminal', () => {
    const items = evaluate(gatherFacts(ctx, from, to, now));
    for (const i of items) {
      const want = EXPECTED[i.id]!;
      expect({ id: i.id, covered: i.covered, total: i.total, verdict: i.verdict, offenders: i.offenders.map((o) => o.terminalId).sort() }).toEqual({
        id: i.id,
        covered: want.covered,
        total: 5,
        verdict: want.offenders.length ? 'noncompliant' : 'compliant',
        offenders: want.offenders.map((k) => FLEET[k]).sort(),
      });
    }
    const f = gatherFacts(ctx, from, to, now);
    const ex = f.exceptions.find((e) => e.id === ids.exceptionId)!;
    expect({ applicant: ex.applicant, staff: ex.staffUser, approver: ex.approver, files: ex.files.map((w) => [w.path, w.size]) }).toEqual({
      applicant: 'suzuki',
      staff: 'tanaka',
      approver: 'admin',
      files: [['=HYPERLINK("x")/住民票.csv', 12345]],
    });
    expect(f.exceptions.find((e) => e.id === ids.directId)!.applicant).toBeNull();
    // Applied for at the terminal by the staff member, approved by another account at the console.
    const app = f.exceptions.find((e) => e.id === ids.applicationGrant)!;
    expect({ applicant: app.applicant, approver: app.approver, requestId: app.requestId, agentId: app.agentId }).toEqual({ applicant: 'sato', approver: 'admin', requestId: ids.applicationId, agentId: FLEET.good2 });
    expect(f.policies.every((p) => p.signatureOk)).toBe(true);
  });
});

describe('evidence archive', () => {
  it('verifies; the manifest carries the chain heads and counts it covers', () => {
    const r = verifyEvidence(archive);
    expect(r.ok, r.ok ? '' : r.reason).toBe(true);
    const m = manifestOf(archive);
    expect(m.counts.terminals).toBe(5);
    expect(m.items.map((i) => [i.id, i.covered, i.total])).toEqual(Object.entries(EXPECTED).map(([id, e]) => [id, e.covered, 5]));
    const gap = m.chains.find((c) => c.agentId === FLEET.gap)!;
    expect({ events: gap.events, holes: gap.holes, lastSeq: gap.lastSeq }).toEqual({ events: 3, holes: 1, lastSeq: 5 });
    const good = m.chains.find((c) => c.agentId === FLEET.good1)!;
    expect({ holes: good.holes, badLinks: good.badLinks, badHashes: good.badHashes, head: good.consoleHeadHash }).toEqual({ holes: 0, badLinks: 0, badHashes: 0, head: good.lastHash });
    expect(m.counts.events).toBe(m.chains.reduce((n, c) => n + c.events, 0));
    // The console's own chain (admin actions, alerts) is covered too, with its head.
    const own = m.chains.find((c) => c.agentId === 'console')!;
    expect({ holes: own.holes, badLinks: own.badLinks, badHashes: own.badHashes, headAtOrAfter: own.consoleHeadSeq! >= own.lastSeq }).toEqual({ holes: 0, badLinks: 0, badHashes: 0, headAtOrAfter: true });
    expect(m.files.map((f) => f.name)).toEqual(['report.json', 'events.jsonl', 'items.csv', 'offenders.csv', 'exceptions.csv', 'files-written.csv', 'policies.csv', 'events.csv']);
  });

  it('CSV cells that Excel would run are neutralised; hostile names stay data', () => {
    const files = new Map(readTar(archive).map((e) => [e.name, e.data.toString('utf8')]));
    expect(files.get('files-written.csv')).toContain(`"'=HYPERLINK(""x"")/住民票.csv"`);
    expect(files.get('offenders.csv')).toContain(`"${HOSTILE_HOST}"`);
    expect(files.get('items.csv')!.startsWith('\uFEFF"item"')).toBe(true);
  });

  it('fails after any one-byte change (every byte of the first 1.5 KiB and a stride through the rest)', () => {
    const positions: number[] = [];
    for (let i = 0; i < Math.min(1536, archive.length); i++) positions.push(i);
    for (let i = 1536; i < archive.length; i += 101) positions.push(i);
    positions.push(archive.length - 1);
    const passed: number[] = [];
    for (const p of positions) {
      const b = Buffer.from(archive);
      b[p] = b[p]! ^ 0x01;
      if (verifyEvidence(b).ok) passed.push(p);
    }
    expect(passed).toEqual([]);
  });

  it.each([
    ['truncated', (b: Buffer) => b.subarray(0, b.length - 512)],
    ['one byte appended', (b: Buffer) => Buffer.concat([b, Buffer.from([0])])],
    ['a block appended', (b: Buffer) => Buffer.concat([b, Buffer.alloc(512)])],
    ['empty', () => Buffer.alloc(0)],
    ['random', () => Buffer.alloc(4096, 7)],
  ])('refuses an archive: %s', (_n, f) => {
    expect(verifyEvidence(f(archive)).ok).toBe(false);
  });

  it('refuses a re-signed or re-packed archive: extra file, re-serialised manifest, another key', () => {
    const entries = readTar(archive);
    const mtime = new Date(Math.floor(now.getTime() / 1000) * 1000);
    const extra = writeTar([...entries, { name: 'note.txt', data: Buffer.from('x') }], mtime);
    expect(verifyEvidence(extra)).toEqual({ ok: false, reason: 'note.txt: not listed in the manifest' });
    const pretty = writeTar(entries.map((e) => (e.name === 'manifest.json' ? { name: e.name, data: Buffer.from(JSON.stringify(JSON.parse(e.data.toString()), null, 1)) } : e)), mtime);
    expect(verifyEvidence(pretty)).toEqual({ ok: false, reason: 'manifest.json is not in canonical form' });
    // Another key put into the manifest: the signature no longer verifies.
    const other = generateKeyPairSync('ed25519');
    const m = manifestOf(archive);
    m.key.publicKeyPem = other.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const swapped = writeTar(entries.map((e) => (e.name === 'manifest.json' ? { name: e.name, data: Buffer.from(canonicalJson(m) + '\n') } : e)), mtime);
    expect(verifyEvidence(swapped).ok).toBe(false);
    // Pinned to another console's key or fingerprint: refused.
    expect(verifyEvidence(archive, { publicKeyPem: other.publicKey.export({ type: 'spki', format: 'pem' }).toString() }).ok).toBe(false);
    expect(verifyEvidence(archive, { fingerprint: 'ab'.repeat(32) }).ok).toBe(false);
    expect(verifyEvidence(archive, { publicKeyPem: readFileSync(join(data, 'policy-signing-key.pub.pem'), 'utf8') }).ok).toBe(true);
  });

  it('a manifest signed by the right key over malformed events is refused with a reason, never a crash', () => {
    const key = createPrivateKey(readFileSync(join(data, 'policy-signing-key.pem'), 'utf8'));
    const mtime = new Date(Math.floor(now.getTime() / 1000) * 1000);
    const resign = (jsonl: string, change: (m: EvidenceManifest) => void = () => {}) => {
      const entries = readTar(archive).map((e) => (e.name === 'events.jsonl' ? { name: e.name, data: Buffer.from(jsonl) } : e));
      const m = manifestOf(archive);
      const f = m.files.find((x) => x.name === 'events.jsonl')!;
      f.bytes = Buffer.byteLength(jsonl);
      f.sha256 = createHash('sha256').update(jsonl).digest('hex');
      change(m);
      const body = Buffer.from(canonicalJson(m) + '\n');
      const sig = sign(null, Buffer.concat([Buffer.from('sekimori-evidence/1\n'), body]), key).toString('base64') + '\n';
      return writeTar(entries.map((e) => (e.name === 'manifest.json' ? { name: e.name, data: body } : e.name === 'manifest.sig' ? { name: e.name, data: Buffer.from(sig) } : e)), mtime);
    };
    for (const [jsonl, change] of [
      ['{"x":1}\n', (m: EvidenceManifest) => (m.counts.events = 1)],
      ['not json\n', () => {}],
      ['{"agentId":{"a":1},"seq":"1e999","data":null}\n', (m: EvidenceManifest) => (m.counts.events = 1)],
      ['', (m: EvidenceManifest) => ((m as unknown as { chains: unknown }).chains = 'x')],
    ] as const) {
      const r = verifyEvidence(resign(jsonl, change));
      expect(r.ok, jsonl).toBe(false);
      if (!r.ok) expect(r.reason.length).toBeGreaterThan(5);
    }
  });

  it('the export is recorded as an admin event', () => {
    const row = ctx.db.prepare("SELECT user, data FROM events WHERE type = 'admin.evidence_exported' ORDER BY rid DESC LIMIT 1").get() as { user: string; data: string };
    expect(row.user).toBe('auditor1');
    expect(JSON.parse(row.data)).toMatchObject({ from, to, bytes: archive.length });
  });
});

describe('sekimori-console evidence', () => {
  it('export then verify: exit 0; one byte changed: exit 1 with the reason', async () => {
    const file = join(dir, 'ev.tar');
    const ex = await cli(['evidence', 'export', '--data', data, '--from', from, '--to', to, '--out', file, '--json']);
    expect(ex.code, ex.err).toBe(0);
    expect(JSON.parse(ex.out)).toMatchObject({ file });
    const ok = await cli(['evidence', 'verify', file, '--json']);
    expect(ok.code, ok.err).toBe(0);
    expect(JSON.parse(ok.out)).toMatchObject({ ok: true, counts: { terminals: 5 } });
    const text = await cli(['evidence', 'verify', file]);
    expect(text.out).toMatch(/検証成功/);
    const b = readFileSync(file);
    b[b.length - 2048] = b[b.length - 2048]! ^ 0x20;
    writeFileSync(file, b);
    const bad = await cli(['evidence', 'verify', file]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/検証失敗.*: .+/);
    const usage = await cli(['evidence', 'verify']);
    expect(usage.code).toBe(2);
  });

  it('export refuses a bad period', async () => {
    const r = await cli(['evidence', 'export', '--data', data, '--from', '2026-12-31', '--to', '2026-01-01', '--out', join(dir, 'x.tar')]);
    expect(r.code).toBe(2);
  });
});
