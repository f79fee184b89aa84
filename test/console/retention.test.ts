/**
 * Retention (console/retention): periods judged (hostile values), a run on a real console data
 * folder archives exactly what is due, proves the file, then deletes only those events (never a
 * chain's head, never what could not be archived); the archive verifies offline and fails on any
 * change — a one-byte change anywhere, a swapped line, a manifest re-signed by another key, a
 * truncated gzip, a 2 GB claimed size, a gzip bomb; ingest after deletion finds no gap.
 */
import { createPrivateKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createIngester } from '../../console/backbone/ingest.js';
import { main } from '../../console/cli.js';
import { initConsole, openConsole, type OpenConsole } from '../../console/core/context.js';
import { consolePaths } from '../../console/core/paths.js';
import { verifyEvidence } from '../../console/report/evidence.js';
import { exportEvidence } from '../../console/report/export.js';
import { readTar, writeTar } from '../../console/report/tar.js';
import { assemble, rowLine, sha256, type ArchiveManifest, type ArchiveRow } from '../../console/retention/archive.js';
import { checkDays, checkFamily, effectivePeriods, parseConfigRetention } from '../../console/retention/periods.js';
import { runRetention } from '../../console/retention/run.js';
import { setPeriod } from '../../console/retention/store.js';
import { searchCsvCells, searchRows, verifyArchive } from '../../console/retention/verify.js';
import { csvLine } from '../../console/web/csv.js';
import { chainEvent, genesisHash, type SekimoriEvent } from '../../protocol/events.js';

const DAY = 86_400_000;

describe('periods (pure)', () => {
  it.each([
    [1, 1],
    [1825, 1825],
    [36_500, 36_500],
    ['30', 30],
  ])('days %s accepted', (v, n) => expect(checkDays(v)).toEqual({ ok: n }));
  it.each([0, -1, 1e9, 1.5, Number.NaN, 2 ** 53, 36_501, '0', '-1', '1e3', '', 'abc', null, undefined, {}])('days %s refused', (v) => {
    const r = checkDays(v);
    expect('error' in r).toBe(true);
  });
  it.each(['usb', 'mfa', 'software', 'admin', 'agent', 'console', 'posture'])('family %s known', (f) => expect(checkFamily(f)).toEqual({ ok: f }));
  it.each(['USB', 'usb.', '', '../x', '<script>alert(1)</script>', 'usb.blocked', 'x'.repeat(10_000), 7])('family #%# refused', (f) => expect('error' in checkFamily(f)).toBe(true));
  it('config.json retention: errors name the path', () => {
    expect(parseConfigRetention(undefined)).toEqual({ ok: new Map() });
    expect(parseConfigRetention({ usb: 1825 })).toEqual({ ok: new Map([['usb', 1825]]) });
    expect((parseConfigRetention({ usb: 0 }) as { error: string }).error).toMatch(/config\.json retention\.usb/);
    expect((parseConfigRetention({ nope: 5 }) as { error: string }).error).toMatch(/config\.json retention\.nope/);
    expect('error' in parseConfigRetention([1])).toBe(true);
  });
  it('console settings override config; a clock before the epoch deletes nothing', () => {
    const now = new Date('2026-11-30T00:00:00.000Z');
    const p = effectivePeriods(new Map([['usb', 10], ['mfa', 20]]), new Map([['usb', 5]]), now);
    expect(p.map((x) => [x.family, x.days, x.source])).toEqual([
      ['mfa', 20, 'config'],
      ['usb', 5, 'console'],
    ]);
    expect(p[1]!.cutoff).toBe(new Date(now.getTime() - 5 * DAY).toISOString());
    expect(effectivePeriods(new Map([['usb', 36_500]]), new Map(), new Date('1990-01-01T00:00:00Z'))).toEqual([]);
  });
});

let dir = '';
let data = '';
let ctx: OpenConsole;
const agentA = randomUUID();
const agentB = randomUUID();
const now = new Date();
const heads = new Map<string, { seq: number; hash: string }>();
const HOSTILE_USER = '=HYPERLINK("http://x","<script>alert(1)</script>")';

function addAgent(id: string): void {
  ctx.db.prepare("INSERT INTO agents (id, hostname, cert_fingerprint, enrolled_at) VALUES (?, ?, 'x', ?)").run(id, `PC-${id.slice(0, 4)}`, now.toISOString());
}

function make(agentId: string, type: string, ts: string, data: Record<string, unknown> = {}, user: string | null = null): SekimoriEvent {
  const h = heads.get(agentId) ?? { seq: 0, hash: genesisHash(agentId) };
  const e = chainEvent(h.hash, { id: randomUUID(), agentId, seq: h.seq + 1, ts, type: type as never, severity: 'info', user, data });
  heads.set(agentId, { seq: e.seq, hash: e.hash });
  return e;
}

/** Stored as ingest stores it, with the stored ts forced (ingest clamps implausible times to receipt). */
function store(events: SekimoriEvent[], storedTs?: string): void {
  const ingest = createIngester(ctx.db);
  ingest(events[0]!.agentId, events, new Date());
  if (storedTs) for (const e of events) ctx.db.prepare('UPDATE events SET ts = ? WHERE agent_id = ? AND seq = ?').run(storedTs, e.agentId, e.seq);
}

const old = new Date(now.getTime() - 400 * DAY).toISOString();
const recent = new Date(now.getTime() - 2 * DAY).toISOString();
let archiveFile = '';
let archiveBytes: Buffer;
let publicKeyPem = '';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sekimori-retention-'));
  data = join(dir, 'data');
  await initConsole(data, { sans: [], organisation: 'テスト市' });
  ctx = openConsole(data);
  publicKeyPem = readFileSync(consolePaths(data).policyPublicKey, 'utf8');
  addAgent(agentA);
  addAgent(agentB);
  // A: old usb/mfa interleaved, then recent ones; B: old usb only (its last one is its head).
  const a1: SekimoriEvent[] = [];
  for (let i = 0; i < 30; i++) a1.push(make(agentA, i % 3 === 0 ? 'mfa.success' : 'usb.blocked', old, { product: i === 4 ? '<img src=x onerror=alert(1)>' : `stick ${i}`, note: i === 4 ? '\u001b]0;pwned\u0007\u001b[2J' : '=cmd|" /c calc"!A1' }, i === 4 ? HOSTILE_USER : 'yamada'));
  store(a1, old);
  store([make(agentA, 'usb.allowed', recent, { product: 'recent' }), make(agentA, 'mfa.success', recent)], recent);
  store([make(agentB, 'usb.blocked', old), make(agentB, 'usb.blocked', old), make(agentB, 'usb.blocked', old)], old);
  // Year 9999 as stored (a row written before ingest clamped times): never due.
  store([make(agentA, 'usb.blocked', '9999-12-31T23:59:59.999Z')], '9999-12-31T23:59:59.999Z');
}, 60_000);

afterAll(() => {
  ctx?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const count = (where = '1=1', ...args: unknown[]) => (ctx.db.prepare(`SELECT count(*) AS n FROM events WHERE ${where}`).get(...args) as { n: number }).n;

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    return { code: await main(args), out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

describe('a run', () => {
  it('default: keeps everything', () => {
    const before = count();
    const r = runRetention(ctx, now, { actor: 'test' });
    expect(r.archives).toEqual([]);
    expect(count()).toBe(before);
  });

  it('disk full while archiving: nothing deleted, an event says so', () => {
    setPeriod(ctx.db, 'usb', 365, 'test', now);
    const before = count("type LIKE 'usb.%'");
    const r = runRetention(ctx, now, {
      actor: 'test',
      write: () => {
        throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      },
    });
    expect(r.failed).toMatch(/ENOSPC/);
    expect(r.deleted).toBe(0);
    expect(count("type LIKE 'usb.%'")).toBe(before);
    const ev = ctx.db.prepare("SELECT data FROM events WHERE type = 'admin.archive_failed' ORDER BY rid DESC LIMIT 1").get() as { data: string };
    expect(JSON.parse(ev.data)).toMatchObject({ reason: expect.stringMatching(/ENOSPC/) as unknown });
    expect(readdirSync(join(data, 'archives')).filter((f) => !f.startsWith('.'))).toEqual([]);
  });

  it('SIEM forwarding on: only events the SIEM already has are due', () => {
    const has = ctx.db.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'siem_config'").get();
    if (!has) return; // SIEM module not installed: nothing to hold back for
    ctx.db.prepare("INSERT INTO siem_config (id, enabled, host, port, name, ca_pem, facility, updated_at, updated_by) VALUES (1, 1, '127.0.0.1', 6514, 'x', 'x', 13, ?, 't')").run(now.toISOString());
    try {
      ctx.db.prepare('UPDATE siem_state SET cursor_rid = 0 WHERE id = 1').run();
      const before = count();
      const r = runRetention(ctx, now, { actor: 'test' });
      expect(r.archives).toEqual([]);
      expect(count()).toBe(before);
    } finally {
      ctx.db.prepare('DELETE FROM siem_config WHERE id = 1').run();
    }
  });

  it('archives the due usb events (not mfa, not recent, not a head, not year 9999), then deletes exactly those', () => {
    const usbOldA = count("agent_id = ? AND type LIKE 'usb.%' AND ts = ?", agentA, old);
    const mfaBefore = count("type LIKE 'mfa.%'");
    const r = runRetention(ctx, now, { actor: 'test' });
    expect(r.failed).toBeNull();
    expect(r.archives).toHaveLength(1);
    // B's newest is its head and stays.
    expect(r.deleted).toBe(usbOldA + 2);
    expect(count("agent_id = ? AND type LIKE 'usb.%' AND ts = ?", agentA, old)).toBe(0);
    expect(count('agent_id = ?', agentB)).toBe(1);
    expect(count("type LIKE 'mfa.%'")).toBe(mfaBefore);
    expect(count("ts LIKE '9999-%'")).toBe(1);
    expect(count("type = 'usb.allowed'")).toBe(1);
    const stubs = (ctx.db.prepare('SELECT count(*) AS n FROM chain_base').get() as { n: number }).n;
    expect(stubs).toBe(r.deleted);
    const types = (ctx.db.prepare("SELECT type FROM events WHERE type IN ('admin.archive_written','admin.events_deleted') ORDER BY rid").all() as { type: string }[]).map((x) => x.type);
    expect(types).toEqual(['admin.archive_written', 'admin.events_deleted']);
    archiveFile = join(data, 'archives', r.archives[0]!.file);
    archiveBytes = readFileSync(archiveFile);
    // Nothing more due.
    expect(runRetention(ctx, now, { actor: 'test' }).archives).toEqual([]);
  });

  it('the archive verifies against the console key and is searchable (hostile strings kept as data, CSV neutralised)', () => {
    const v = verifyArchive(archiveBytes, { publicKeyPem });
    if (!v.ok) throw new Error(v.reason);
    expect(v.manifest.counts.byFamily).toEqual({ usb: v.rows.length });
    const a = v.manifest.chains.find((c) => c.agentId === agentA)!;
    expect(a.badHashes + a.badLinks).toBe(0);
    expect(a.runs).toBeGreaterThan(1); // mfa events in between were kept
    const found = searchRows(v.rows, { text: 'onerror' }, 10);
    expect(found.total).toBe(1);
    expect(found.rows[0]!.user).toBe(HOSTILE_USER);
    const line = csvLine(searchCsvCells(found.rows[0]!));
    expect(line).toContain(`"'=HYPERLINK(`);
    expect(searchRows(v.rows, { type: 'usb.*', agent: agentB }, 10).total).toBe(2);
    expect(searchRows(v.rows, { type: 'mfa.success' }, 10).total).toBe(0);
    expect(searchRows(v.rows, { from: '9999-01-01T00:00:00Z' }, 10).total).toBe(0);
    expect(searchRows(v.rows, { to: '9999-01-01T00:00:00Z' }, 10).total).toBe(v.rows.length);
  });

  it('ingest after deletion: the next event links to the kept head, a re-sent archived event is a duplicate, another event under an archived seq is refused — no gap, no break', () => {
    const findings = () => count("type IN ('agent.gap','agent.chain_broken')");
    const before = findings();
    const ingest = createIngester(ctx.db);
    const r1 = ingest(agentB, [make(agentB, 'usb.blocked', new Date().toISOString())]);
    expect(r1.response.stored).toBe(1);
    // A re-sent event that was archived and deleted: a duplicate, not stored again.
    const v = verifyArchive(archiveBytes, { publicKeyPem });
    if (!v.ok) throw new Error(v.reason);
    const r = v.rows.find((x) => x.agent_id === agentB && x.seq === 1)!;
    const resent: SekimoriEvent = { id: r.id, agentId: r.agent_id, seq: r.seq, ts: r.agent_ts ?? r.ts, type: r.type as never, severity: r.severity as never, user: r.user, data: JSON.parse(r.data) as Record<string, unknown>, prevHash: r.prev_hash, hash: r.hash };
    expect(ingest(agentB, [resent]).response).toMatchObject({ stored: 0, duplicates: 1 });
    expect(count('agent_id = ? AND seq = 1', agentB)).toBe(0);
    // Another event under an archived seq: refused like any seq conflict (the same hash is the archived event).
    expect(() => ingest(agentB, [{ ...resent, data: { x: 1 }, hash: 'f'.repeat(64) }])).toThrow(/already held \(archived\)/);
    expect(findings()).toBe(before);
  });

  it('the evidence export of an archived day names the archive holding its events, and verifies', () => {
    const day = new Date(Date.parse(old) + 9 * 3_600_000).toISOString().slice(0, 10);
    const { archive } = exportEvidence(ctx, day, day, 'auditor', now);
    expect(verifyEvidence(archive).ok).toBe(true);
    const report = JSON.parse(readTar(archive).find((e) => e.name === 'report.json')!.data.toString('utf8')) as { retention?: { archives: { file: string }[]; archivedEvents: { agentId: string; events: number }[] } };
    expect(report.retention?.archives.map((a) => a.file)).toEqual([archiveFile.split('/').pop()]);
    expect(report.retention?.archivedEvents.find((x) => x.agentId === agentA)?.events).toBeGreaterThan(0);
  });

  it('retention never runs on 0, -1 or 1e9 days from the CLI', async () => {
    for (const d of ['0', '-1', '1000000000']) {
      const r = await cli(['retention', 'set', '--family', 'usb', '--days', d, '--data', data]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/days/);
    }
    const ok = await cli(['retention', 'set', '--family', 'mfa', '--days', '1825', '--data', data]);
    expect(ok.code).toBe(0);
    const shown = await cli(['retention', 'show', '--data', data, '--json']);
    expect(JSON.parse(shown.out)).toEqual(expect.arrayContaining([expect.objectContaining({ family: 'mfa', days: 1825, source: 'console' })]));
  });
});

// ---- hostile archives ---------------------------------------------------------------------------

function parts(buf: Buffer): { manifest: ArchiveManifest; gz: Buffer; mtime: Date } {
  const [m, , g] = readTar(buf);
  return { manifest: JSON.parse(m!.data.toString('utf8')) as ArchiveManifest, gz: g!.data, mtime: new Date(0) };
}

function consoleKey() {
  return createPrivateKey(readFileSync(consolePaths(data).policyKey, 'utf8'));
}

/** Rebuilds an archive from NDJSON text, signed by the console's key (a console that signed something wrong). */
function resigned(manifest: ArchiveManifest, ndjson: Buffer, opts: { gz?: Buffer; claimBytes?: number } = {}): Buffer {
  const gz = opts.gz ?? gzipSync(ndjson);
  const m: ArchiveManifest = { ...manifest, ndjson: { ...manifest.ndjson, bytes: opts.claimBytes ?? ndjson.length, sha256: sha256(ndjson), gzBytes: gz.length, gzSha256: sha256(gz) } };
  return assemble(m, gz, consoleKey(), new Date(Date.parse(manifest.createdAt))).tar;
}

describe('verify: any change fails, naming what is wrong', () => {
  it('one-byte change anywhere (every 61st byte and each block edge)', () => {
    expect(verifyArchive(archiveBytes, { publicKeyPem }).ok).toBe(true);
    const positions = new Set<number>();
    for (let i = 0; i < archiveBytes.length; i += 61) positions.add(i);
    for (let i = 0; i < archiveBytes.length; i += 512) positions.add(i).add(i + 511);
    let checked = 0;
    for (const p of positions) {
      if (p >= archiveBytes.length) continue;
      const b = Buffer.from(archiveBytes);
      b[p] = b[p]! ^ 0x01;
      const r = verifyArchive(b, { publicKeyPem });
      expect(r.ok, `byte ${p}`).toBe(false);
      checked++;
    }
    expect(checked).toBeGreaterThan(50);
  });

  it('a swapped line (re-signed by the console key): out of order', () => {
    const { manifest, gz } = parts(archiveBytes);
    const lines = gunzipSync(gz).toString('utf8').trimEnd().split('\n');
    [lines[0], lines[1]] = [lines[1]!, lines[0]!];
    const r = verifyArchive(resigned(manifest, Buffer.from(lines.join('\n') + '\n')), { publicKeyPem });
    expect(r).toMatchObject({ ok: false, reason: expect.stringMatching(/line 1: out of order|line 2: out of order/) as unknown });
  });

  it('an edited event (re-signed, hashes of the file updated): its hash does not recompute', () => {
    const { manifest, gz } = parts(archiveBytes);
    const lines = gunzipSync(gz).toString('utf8').trimEnd().split('\n');
    const row = JSON.parse(lines[2]!) as ArchiveRow;
    lines[2] = rowLine({ ...row, user: 'someone-else' });
    const r = verifyArchive(resigned(manifest, Buffer.from(lines.join('\n') + '\n')), { publicKeyPem });
    expect(r).toMatchObject({ ok: false, reason: expect.stringMatching(/line 3: hash does not recompute/) as unknown });
  });

  it('a manifest re-signed with another key: refused against the console key', () => {
    const { manifest, gz } = parts(archiveBytes);
    const other = generateKeyPairSync('ed25519');
    const m: ArchiveManifest = { ...manifest, key: { algorithm: 'ed25519', publicKeyPem: other.publicKey.export({ type: 'spki', format: 'pem' }).toString(), fingerprint: sha256(other.publicKey.export({ type: 'spki', format: 'der' })) } };
    const forged = assemble(m, gz, other.privateKey, new Date(Date.parse(manifest.createdAt))).tar;
    expect(verifyArchive(forged, { publicKeyPem })).toMatchObject({ ok: false, reason: expect.stringMatching(/signed by another key/) as unknown });
    // Keeping the console's key in the manifest but signing with another: the signature fails.
    const forged2 = assemble(manifest, gz, other.privateKey, new Date(Date.parse(manifest.createdAt))).tar;
    expect(verifyArchive(forged2, { publicKeyPem })).toMatchObject({ ok: false, reason: expect.stringMatching(/signature does not verify/) as unknown });
    expect(verifyArchive(forged2)).toMatchObject({ ok: false });
  });

  it('a truncated gzip (signed as it is): not a complete gzip stream', () => {
    const { manifest, gz } = parts(archiveBytes);
    const nd = gunzipSync(gz);
    const r = verifyArchive(resigned(manifest, nd, { gz: gz.subarray(0, gz.length - 20) }), { publicKeyPem });
    expect(r).toMatchObject({ ok: false, reason: expect.stringMatching(/not a complete gzip stream/) as unknown });
  });

  it('a 2 GB claimed size: refused before inflating', () => {
    const { manifest, gz } = parts(archiveBytes);
    const r = verifyArchive(resigned(manifest, gunzipSync(gz), { gz, claimBytes: 2 * 1024 ** 3 }), { publicKeyPem });
    expect(r).toMatchObject({ ok: false, reason: expect.stringMatching(/claims 2147483648 bytes/) as unknown });
  });

  it('a gzip bomb (claims 100 bytes, inflates to 64 MiB): stops at the claim', () => {
    const { manifest } = parts(archiveBytes);
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x41));
    const r = verifyArchive(resigned(manifest, Buffer.alloc(100, 0x41), { gz: bomb, claimBytes: 100 }), { publicKeyPem });
    expect(r).toMatchObject({ ok: false, reason: expect.stringMatching(/inflates to more than the 100 bytes/) as unknown });
  });

  it('a tar entry claiming 2 GB, an extra entry, garbage: refused', () => {
    const b = Buffer.from(archiveBytes);
    b.write('17777777777\0', 124, 'ascii');
    expect(verifyArchive(b, { publicKeyPem }).ok).toBe(false);
    const entries = readTar(archiveBytes);
    expect(verifyArchive(writeTar([...entries, { name: 'extra.txt', data: Buffer.from('x') }], new Date(0)), { publicKeyPem })).toMatchObject({ ok: false, reason: expect.stringMatching(/entries are/) as unknown });
    expect(verifyArchive(Buffer.alloc(0)).ok).toBe(false);
    expect(verifyArchive(Buffer.from('not a tar at all')).ok).toBe(false);
  });

  it('the CLI: verify names the failure; search refuses a tampered archive', async () => {
    const good = await cli(['archive', 'verify', archiveFile, '--data', data]);
    expect(good.code).toBe(0);
    expect(good.out).toMatch(/検証成功|verified/);
    const bad = join(dir, 'bad.tar');
    const b = Buffer.from(archiveBytes);
    b[b.length - 1030] = b[b.length - 1030]! ^ 0xff;
    writeFileSync(bad, b);
    const r = await cli(['archive', 'verify', bad, '--data', data]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/検証失敗|verification failed/);
    expect((await cli(['archive', 'search', bad, '--data', data])).code).toBe(1);
    const s = await cli(['archive', 'search', archiveFile, '--data', data, '--text', 'onerror', '--csv']);
    expect(s.code).toBe(0);
    expect(s.out).toContain(`"'=HYPERLINK(`);
    expect(s.out.startsWith('\uFEFF')).toBe(true);
    // Plain text goes to a terminal: no escape sequence of an agent's string reaches it.
    const plain = await cli(['archive', 'search', archiveFile, '--data', data, '--text', 'onerror']);
    expect(plain.code).toBe(0);
    expect(plain.out).toContain('onerror');
    expect(plain.out).not.toMatch(/[\u001b\u0007]/);
    const j = await cli(['archive', 'search', archiveFile, '--data', data, '--agent', agentB, '--json']);
    expect(j.out.trim().split('\n')).toHaveLength(2);
    expect((await cli(['archive', 'search', archiveFile, '--from', 'yesterday-ish'])).code).toBe(2);
  });
});
