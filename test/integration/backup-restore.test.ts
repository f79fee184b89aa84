/**
 * Backup and restore with real processes (issue 17): a real console, two real enrolled agents (empty
 * sysfs, software capability scoped to an empty folder of their own, pre-exec off) whose outboxes
 * get events continuously; `sekimori-console backup` is taken while the console ingests; the old
 * console acknowledges more events after the snapshot (the agents delete them from their outboxes);
 * the console is SIGKILLed; `sekimori-console restore` builds a fresh data folder; a console started
 * from it on the SAME address serves the agents, which carry on without re-enrolment (same CA,
 * server key and certificate, agent records, policy). In the end every event each agent ever
 * appended is in the restored console exactly once (seq sets and hashes against the agents' own
 * heads and what the test appended), the chains verify, and no gap finding remains open — that last
 * part needs the delivery engineer's re-send (contract: /tmp/briefs/contract-resend.md).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPaths } from '../../agent/state.js';
import { rowToEvent, signedEvent } from '../../console/core/events.js';
import { eventHash, genesisHash } from '../../protocol/events.js';
import { enrollAgent, ROOT, runCli, startConsole, tempDir, waitFor, type TestAgent, type TestConsole } from './harness.js';

const CONSOLE_BIN = join(ROOT, 'bin/sekimori-console.js');
const PASS = 'バックアップ用の長いパスフレーズ 2026';

/** A CLI run that does not block this process (the emitters keep appending meanwhile); bounded. */
function runAsync(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<{ code: number; out: string }> {
  return new Promise((resolveRun) => {
    const p = spawn(process.execPath, [CONSOLE_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolveRun({ code: code ?? -1, out });
    });
  });
}

/** Reads a console store without disturbing the serving console (WAL reader, fresh connection each time). */
function withDb<T>(dataDir: string, f: (db: Database.Database) => T): T {
  const db = new Database(join(dataDir, 'console.db'), { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 10000');
    return f(db);
  } finally {
    db.close();
  }
}

const maxSeq = (dataDir: string, agentId: string) => withDb(dataDir, (db) => (db.prepare('SELECT coalesce(max(seq), 0) AS m FROM events WHERE agent_id = ?').get(agentId) as { m: number }).m);

function agentHead(a: TestAgent): { seq: number; hash: string } {
  const db = new Database(agentPaths(a.stateDir).outbox, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 10000');
    return db.prepare('SELECT seq, hash FROM chain_head WHERE one = 1').get() as { seq: number; hash: string };
  } finally {
    db.close();
  }
}

interface Held {
  seqs: number[];
  duplicates: number;
  chainBad: string[];
  statuses: Record<string, number>;
  hashes: Map<number, string>;
  openGaps: number;
}

/** What the restored console holds of one agent, with the chain recomputed from the stored rows. */
function held(dataDir: string, agentId: string): Held {
  return withDb(dataDir, (db) => {
    const rows = db.prepare('SELECT * FROM events WHERE agent_id = ? ORDER BY seq').all(agentId) as Parameters<typeof rowToEvent>[0][];
    const dup = db.prepare('SELECT count(*) - count(DISTINCT seq) AS d FROM events WHERE agent_id = ?').get(agentId) as { d: number };
    const gaps = db.prepare('SELECT count(*) AS n FROM chain_gaps WHERE agent_id = ?').get(agentId) as { n: number };
    const chainBad: string[] = [];
    const statuses: Record<string, number> = {};
    const hashes = new Map<number, string>();
    let prev = genesisHash(agentId);
    let expectSeq = 1;
    for (const r of rows) {
      const e = signedEvent(rowToEvent(r));
      statuses[r.chain] = (statuses[r.chain] ?? 0) + 1;
      hashes.set(e.seq, e.hash);
      if (e.seq !== expectSeq) chainBad.push(`seq ${e.seq}: expected ${expectSeq}`);
      else if (e.prevHash !== prev) chainBad.push(`seq ${e.seq}: prevHash does not link`);
      const { hash: _h, ...unsigned } = e;
      if (eventHash(e.prevHash, { ...unsigned } as Parameters<typeof eventHash>[1]) !== e.hash) chainBad.push(`seq ${e.seq}: hash does not verify`);
      prev = e.hash;
      expectSeq = e.seq + 1;
    }
    return { seqs: rows.map((r) => r.seq), duplicates: dup.d, chainBad: chainBad.slice(0, 10), statuses, hashes, openGaps: gaps.n };
  });
}

/** Appends through the agent's own outbox code every `everyMs`, recording each event's hash. */
class Emitter {
  readonly appended = new Map<number, string>();
  private timer: NodeJS.Timeout | null = null;
  constructor(private readonly a: TestAgent) {}
  start(perTick = 8, everyMs = 150): void {
    this.timer = setInterval(() => {
      const o = this.a.outbox();
      try {
        for (let i = 0; i < perTick; i++) {
          const e = o.append({ type: 'usb.blocked', data: { test: this.appended.size, product: 'USB DISK 2.0' } });
          this.appended.set(e.seq, e.hash);
        }
      } finally {
        o.close();
      }
    }, everyMs);
  }
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

describe('backup during ingest, restore on a fresh folder, agents carry on', () => {
  let c: TestConsole;
  const agents: TestAgent[] = [];
  const emitters: Emitter[] = [];
  let restoredDir = '';
  let restored: ChildProcess | null = null;
  let restoredOut = '';
  let backupFile = '';
  let scopeDir = '';
  const env = { ...process.env, SEKIMORI_BACKUP_PASSPHRASE: PASS };
  const certHashes = new Map<string, string>();
  const measured: Record<string, unknown> = {};

  beforeAll(async () => {
    const scope = tempDir('backup-software-scope');
    scopeDir = scope;
    c = await startConsole({
      policy: {
        agent: { heartbeatSeconds: 2, uploadBatchSize: 200 },
        software: { mode: 'monitor', locations: [scope], preExec: { enabled: false, fallback: 'deny', timeoutMs: 1000, marks: [] } },
      },
    });
    for (let i = 0; i < 2; i++) {
      const a = await enrollAgent(c);
      agents.push(a);
      certHashes.set(a.agentId, createHash('sha256').update(readFileSync(agentPaths(a.stateDir).cert)).digest('hex'));
      emitters.push(new Emitter(a));
    }
    restoredDir = join(tempDir('restored'), 'data');
    backupFile = join(tempDir('backup-file'), 'console.backup');
  }, 300_000);

  afterAll(async () => {
    for (const e of emitters) e.stop();
    if (restored && restored.exitCode === null) {
      restored.kill('SIGKILL');
      await waitFor('restored console to exit', () => restored!.exitCode !== null || restored!.signalCode !== null, 10_000).catch(() => undefined);
    }
    for (const a of agents) await a.cleanup();
    await c?.cleanup();
    for (const d of [scopeDir, restoredDir && join(restoredDir, '..'), backupFile && join(backupFile, '..')]) if (d) rmSync(d, { recursive: true, force: true });
  });

  it('takes the backup while the console ingests, then the old console acks more', async () => {
    for (const e of emitters) e.start();
    await waitFor('both agents ingested (≥ 100 events each)', () => agents.every((a) => maxSeq(c.dataDir, a.agentId) >= 100), 60_000, 250);
    const before = agents.map((a) => maxSeq(c.dataDir, a.agentId));
    const started = Date.now();
    const r = await runAsync(['backup', '--data', c.dataDir, '--out', backupFile, '--json'], env);
    expect(r.code, r.out).toBe(0);
    measured.backupCliMs = Date.now() - started;
    const after = agents.map((a) => maxSeq(c.dataDir, a.agentId));
    measured.ingestedDuringBackup = after.map((x, i) => x - before[i]!);
    // Ingest goes on past the backup (its snapshot held no lock a writer waits for). Not asserted
    // inside the CLI's run: that takes ≈ 1 s, the agents upload when their 2 s heartbeat wakes them,
    // so a run can fall between two uploads (it did in CI, and here: 1.0 s run, nothing landed in it).
    await waitFor('the console ingests on after the backup', () => agents.some((a, i) => maxSeq(c.dataDir, a.agentId) > before[i]!), 15_000, 100);
    expect((statSync(backupFile).mode & 0o777).toString(8)).toBe('600');
    const v = await runAsync(['backup', 'verify', '--file', backupFile, '--json'], process.env);
    expect(v.code, v.out).toBe(0);
    const manifest = JSON.parse(v.out) as { intact: boolean; db: { tables: Record<string, number> } };
    expect(manifest.intact).toBe(true);
    // More events acknowledged by the old console after the snapshot: the gap the restore must fill.
    const atBackup = after;
    await waitFor('old console acked ≥ 150 more events per agent after the backup', () => agents.every((a, i) => maxSeq(c.dataDir, a.agentId) >= atBackup[i]! + 150), 60_000, 250);
    // …and the agents have deleted acknowledged events from their outboxes.
    await waitFor('agents drained', () => agents.every((a) => { const o = a.outbox(); try { return o.depth() < 50; } finally { o.close(); } }), 30_000, 250);
    for (const e of emitters) e.stop();
    await c.kill9();
    measured.oldConsoleMax = agents.map((a) => maxSeq(c.dataDir, a.agentId));
  }, 240_000);

  it('restore refuses a wrong passphrase (nothing written), then restores onto a fresh folder', async () => {
    const wrong = await runAsync(['restore', '--file', backupFile, '--data', restoredDir], { ...process.env, SEKIMORI_BACKUP_PASSPHRASE: 'どこか違うパスフレーズです' });
    expect(wrong.code).not.toBe(0);
    expect(wrong.out).toMatch(/パスフレーズが違います|wrong passphrase/);
    expect(existsSync(restoredDir)).toBe(false);
    const r = await runAsync(['restore', '--file', backupFile, '--data', restoredDir, '--json'], env);
    expect(r.code, r.out).toBe(0);
    expect((JSON.parse(r.out) as { integrity: string }).integrity).toBe('ok');
    // The gap is real: the restored store lacks events the old console had acknowledged.
    const restoredMax = agents.map((a) => maxSeq(restoredDir, a.agentId));
    measured.restoredMax = restoredMax;
    const oldMax = measured.oldConsoleMax as number[];
    for (let i = 0; i < agents.length; i++) expect(restoredMax[i]!, `agent ${i}: restored store should miss acked events`).toBeLessThan(oldMax[i]!);
    const types = withDb(restoredDir, (db) => (db.prepare("SELECT type FROM events WHERE agent_id = 'console' ORDER BY seq DESC LIMIT 2").all() as { type: string }[]).map((x) => x.type));
    expect(types).toEqual(['admin.console_restored', 'admin.backup_taken']);
  }, 120_000);

  it('agents resume against the restored console on the same address without re-enrolment', async () => {
    const proc = spawn(process.execPath, [CONSOLE_BIN, 'serve', '--data', restoredDir, '--listen', `127.0.0.1:${c.port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    restored = proc;
    proc.stdout.on('data', (d: Buffer) => (restoredOut += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (restoredOut += d.toString()));
    await waitFor('restored console to listen', () => (restoredOut.includes(`127.0.0.1:${c.port}`) ? true : proc.exitCode !== null ? Promise.reject(new Error(restoredOut)) : false), 30_000);
    // Same CA as the agents pinned at enrolment.
    expect(restoredOut).toContain(c.caFingerprint);
    for (const e of emitters) e.start(4, 200);
    const base = agents.map((a) => maxSeq(restoredDir, a.agentId));
    await waitFor('new events accepted from both agents by the restored console', () => agents.every((a, i) => withDb(restoredDir, (db) => (db.prepare('SELECT count(*) AS n FROM events WHERE agent_id = ? AND seq > ?').get(a.agentId, Math.max(base[i]!, (measured.oldConsoleMax as number[])[i]!)) as { n: number }).n > 0)), 60_000, 250);
    for (const e of emitters) e.stop();
    for (const a of agents) {
      // Not re-enrolled: same certificate file, same agent record.
      expect(createHash('sha256').update(readFileSync(agentPaths(a.stateDir).cert)).digest('hex')).toBe(certHashes.get(a.agentId));
      expect(a.proc?.exitCode).toBe(null);
      const status = withDb(restoredDir, (db) => db.prepare('SELECT status FROM agents WHERE id = ?').get(a.agentId) as { status: string } | undefined);
      expect(status?.status).not.toBe('revoked');
    }
  }, 120_000);

  it('every event each agent appended is in the restored console exactly once, chains verify, no gap open', async () => {
    // Needs the re-send (delivery engineer): agents re-deliver what the restored store lacks.
    const complete = () =>
      agents.every((a) => {
        const h = agentHead(a);
        const got = held(restoredDir, a.agentId);
        return got.seqs.length === h.seq && got.seqs.at(-1) === h.seq && got.openGaps === 0;
      });
    await waitFor('restored console complete for both agents', complete, 120_000, 500).catch(() => undefined);
    for (const [i, a] of agents.entries()) {
      const h = agentHead(a);
      const got = held(restoredDir, a.agentId);
      const missing: number[] = [];
      for (let s = 1; s <= h.seq && missing.length < 20; s++) if (!got.hashes.has(s)) missing.push(s);
      measured[`agent${i}`] = { head: h.seq, held: got.seqs.length, firstMissing: missing, statuses: got.statuses };
      expect(missing, `agent ${i}: seqs missing in the restored console`).toEqual([]);
      expect(got.duplicates).toBe(0);
      expect(got.seqs.length).toBe(h.seq);
      expect(got.hashes.get(h.seq)).toBe(h.hash);
      for (const [seq, hash] of emitters[i]!.appended) expect(got.hashes.get(seq), `agent ${i} seq ${seq}`).toBe(hash);
      expect(got.chainBad).toEqual([]);
      expect(Object.keys(got.statuses)).toEqual(['ok']);
      expect(got.openGaps).toBe(0);
    }
    const integrity = withDb(restoredDir, (db) => db.pragma('integrity_check', { simple: true }));
    expect(integrity).toBe('ok');
  }, 180_000);

  afterAll(() => {
    process.stdout.write(`backup-restore measured: ${JSON.stringify(measured)}\n`);
  });
});

/**
 * The passphrase typed on a real terminal (a pty from util-linux `script`): not echoed, asked twice
 * for a backup, and what restore then needs. Without the variable and without a terminal the CLI
 * refuses (unit test); here the terminal path itself runs.
 */
describe('passphrase typed on a terminal', () => {
  const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!hasScript && process.env.CI !== 'true')('is not echoed, is asked twice, and opens the backup at restore' + (hasScript ? '' : ' — SKIPPED: util-linux `script` missing (apt-get install util-linux)'), async () => {
    const dir = tempDir('backup-tty');
    const data = join(dir, 'data');
    expect(runCli('console', ['init', '--data', data]).code).toBe(0);
    const typed = 'typed on a tty 関守 2026';
    const out = join(dir, 'tty.backup');
    const env = { ...process.env };
    delete env.SEKIMORI_BACKUP_PASSPHRASE;
    const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(CONSOLE_BIN)} backup --data ${JSON.stringify(data)} --out ${JSON.stringify(out)}`;
    const p = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env });
    let text = '';
    p.stdout.on('data', (d: Buffer) => (text += d.toString()));
    p.stderr.on('data', (d: Buffer) => (text += d.toString()));
    const exit = new Promise<number>((r) => p.on('exit', (code) => r(code ?? -1)));
    await waitFor('the passphrase prompt', () => /passphrase: /.test(text), 60_000);
    p.stdin.write(typed + '\r');
    await waitFor('the confirmation prompt', () => /again: /.test(text), 60_000);
    p.stdin.write(typed + '\r');
    const code = await Promise.race([exit, new Promise<number>((r) => setTimeout(() => r(-2), 90_000))]);
    if (code === -2) p.kill('SIGKILL');
    p.stdin.end();
    expect(code, text).toBe(0);
    expect(text).not.toContain('typed on a tty');
    expect(existsSync(out)).toBe(true);
    const wrong = runCli('console', ['restore', '--file', out, '--data', join(dir, 'r1')]);
    expect(wrong.code).not.toBe(0); // no variable, no terminal: refused
    const saved = process.env.SEKIMORI_BACKUP_PASSPHRASE;
    process.env.SEKIMORI_BACKUP_PASSPHRASE = typed;
    try {
      const r = runCli('console', ['restore', '--file', out, '--data', join(dir, 'r2')]);
      expect(r.code, r.stderr).toBe(0);
    } finally {
      if (saved === undefined) delete process.env.SEKIMORI_BACKUP_PASSPHRASE;
      else process.env.SEKIMORI_BACKUP_PASSPHRASE = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});
