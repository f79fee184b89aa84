/**
 * bench/report: the 自己点検 report and the evidence export on a seeded fleet.
 *   npm run build && scripts/n24 node dist/bench/report.js [--terminals 100] [--events 1000000] [--days 30] [--runs 5]
 * A scratch console (its own data folder under $TMPDIR, removed at the end) is filled through the
 * real ingester (hash chains as agents compute them, `synchronous=FULL`) with a plausible event mix
 * spread over --days, a posture document per terminal and an exception with files written. Timed,
 * median of --runs: facts + items for the whole period and for one day (what /report does), the
 * evidence export refused for a period over its limit (counted on the ts index before any row is
 * read), the evidence export of the busiest day and its offline verification.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import '../console/modules.js'; // resolves the core ↔ module import order, as the CLI does
import { initConsole, openConsole } from '../console/core/context.js';
import { createIngester } from '../console/backbone/ingest.js';
import { storePosture } from '../console/posture/store.js';
import { evaluate } from '../console/report/items.js';
import { gatherFacts } from '../console/report/store.js';
import { exportEvidence } from '../console/report/export.js';
import { verifyEvidence, MAX_EVIDENCE_EVENTS } from '../console/report/evidence.js';
import { chainEvent, genesisHash, type AgentEventType, type SekimoriEvent } from '../protocol/events.js';
import { defaultPolicyBody } from '../protocol/policy.js';
import { POSTURE_CONTROLS, type PostureDocument } from '../protocol/posture.js';

const { values } = parseArgs({
  options: {
    terminals: { type: 'string', default: '100' },
    events: { type: 'string', default: '1000000' },
    days: { type: 'string', default: '30' },
    runs: { type: 'string', default: '5' },
  },
});
const TERMINALS = Number(values.terminals);
const EVENTS = Number(values.events);
const DAYS = Number(values.days);
const RUNS = Number(values.runs);
const DAY = 86_400_000;
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** Japan's calendar day of a time (the report's periods are JST days). */
const jstDay = (ms: number) => new Date(ms + 9 * 3_600_000).toISOString().slice(0, 10);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function timed<T>(f: () => T): { ms: number; value: T } {
  const t = process.hrtime.bigint();
  const value = f();
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, value };
}

function postureDoc(policyVersion: number, collectedAt: string): PostureDocument {
  return {
    platform: 'linux',
    collectedAt,
    agentVersion: '1.0.0',
    policyVersion,
    clockOffsetMs: 0,
    outboxDepth: 0,
    controls: POSTURE_CONTROLS.map((control) => ({ control, state: 'ok' as const, evidence: [`${control}: bench`] })),
  };
}

const dir = mkdtempSync(join(tmpdir(), 'sekimori-bench-report-'));
try {
  await initConsole(dir, { sans: ['127.0.0.1'], organisation: 'bench' });
  const ctx = openConsole(dir);
  const body = defaultPolicyBody();
  body.usb.mode = 'enforce';
  body.software.mode = 'enforce';
  const version = ctx.publishPolicy(body, 'admin').policy.version;
  const now = Date.now();
  const start = now - DAYS * DAY;
  const ids = Array.from({ length: TERMINALS }, (_, i) => `bbbbbbbb-0000-4000-8000-${String(i).padStart(12, '0')}`);
  const addAgent = ctx.db.prepare(
    "INSERT INTO agents (id, hostname, os, agent_version, cert_fingerprint, enrolled_at, last_seen, status, policy_version, monitor_only) VALUES (?, ?, 'linux', '1.0.0', ?, ?, ?, 'online', ?, 0)",
  );
  for (const [i, id] of ids.entries()) addAgent.run(id, `mn-pc-${String(i).padStart(3, '0')}`, 'fp-' + i, new Date(start - DAY).toISOString(), new Date(now).toISOString(), version);

  // The mix: mostly logins, some device and software events, a few files written under an exception.
  const mfa = (terminal: string) => ({ terminal, result: 'accept', reason: 'ok', via: 'pam', service: 'login' });
  const fileData = (exceptionId: string, n: number) => ({
    device: { port: '1-1', vendorId: '0781', productId: '5581', serialHex: Buffer.from('4C530001').toString('hex'), descriptorHash: '', label: 'SanDisk Ultra', serial: '4C530001', access: 'exception', exceptionId },
    path: `/media/stick/住民票-${n}.csv`,
    pathHash: sha('p' + n),
    size: 1000 + n,
    sha256: sha('c' + n),
    hashSkipped: null,
    uid: 1000,
    userSource: 'writer',
    pid: 99,
    fsType: 'vfat',
    mode: 'enforce',
  });
  const exceptionId = randomUUID();
  const pick = (n: number): [AgentEventType, Record<string, unknown>, string | null] => {
    const r = n % 20;
    if (r < 14) return ['mfa.success', mfa('t'), 'tanaka'];
    if (r < 16) return ['mfa.failure', { ...mfa('t'), result: 'reject', reason: 'wrong_code' }, 'tanaka'];
    if (r < 18) return ['agent.started', { version: '1.0.0' }, null];
    if (r < 19) return ['usb.file_written', fileData(exceptionId, n), 'tanaka'];
    return ['agent.policy_applied', { version }, null];
  };

  const ingest = createIngester(ctx.db);
  const perTerminal = Math.ceil(EVENTS / TERMINALS);
  const step = (DAYS * DAY) / perTerminal;
  const fill = timed(() => {
    for (const id of ids) {
      let prev = genesisHash(id);
      let batch: SekimoriEvent[] = [];
      for (let seq = 1; seq <= perTerminal; seq++) {
        const [type, data, user] = pick(seq);
        const e = chainEvent(prev, { id: randomUUID(), agentId: id, seq, ts: new Date(start + seq * step).toISOString(), type, severity: 'info', user, data });
        prev = e.hash;
        batch.push(e);
        if (batch.length === 500 || seq === perTerminal) {
          ingest(id, batch, new Date(now));
          batch = [];
        }
      }
      storePosture(ctx, id, postureDoc(version, new Date(now - 3_600_000).toISOString()), new Date(now).toISOString());
    }
  });
  const stored = (ctx.db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n;

  const fromDay = jstDay(start);
  const toDay = jstDay(now);
  const busiest = jstDay(start + Math.floor(DAYS / 2) * DAY);
  const whole: number[] = [];
  const oneDay: number[] = [];
  const refused: number[] = [];
  const exported: number[] = [];
  const verified: number[] = [];
  let archiveBytes = 0;
  let archiveEvents = 0;
  for (let r = 0; r < RUNS; r++) {
    whole.push(timed(() => evaluate(gatherFacts(ctx, fromDay, toDay, new Date(now)))).ms);
    oneDay.push(timed(() => evaluate(gatherFacts(ctx, busiest, busiest, new Date(now)))).ms);
    if (stored > MAX_EVIDENCE_EVENTS) {
      refused.push(
        timed(() => {
          try {
            exportEvidence(ctx, fromDay, toDay, 'bench', new Date(now));
          } catch {
            return 'refused';
          }
          throw new Error('the whole period was expected to be over the evidence limit');
        }).ms,
      );
    }
    const ex = timed(() => exportEvidence(ctx, busiest, busiest, 'bench', new Date(now)));
    exported.push(ex.ms);
    archiveBytes = ex.value.archive.length;
    archiveEvents = ex.value.events;
    const v = timed(() => verifyEvidence(ex.value.archive));
    if (!v.value.ok) throw new Error(`evidence did not verify: ${v.value.reason}`);
    verified.push(v.ms);
  }
  ctx.close();
  const f = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
  console.log(`machine: ${process.arch}, node ${process.version}, ${TERMINALS} terminals, ${stored} events over ${DAYS} days (filled in ${f(fill.ms)}), median of ${RUNS}`);
  console.log(`report facts + items, whole period (${fromDay}…${toDay}): ${f(median(whole))}`);
  console.log(`report facts + items, one day (${busiest}): ${f(median(oneDay))}`);
  if (refused.length) console.log(`evidence export refused (over ${MAX_EVIDENCE_EVENTS} events): ${f(median(refused))}`);
  console.log(`evidence export of one day: ${archiveEvents} events, ${(archiveBytes / 1e6).toFixed(1)} MB in ${f(median(exported))}; verify ${f(median(verified))}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
