/**
 * bench/ingest-delivery: the ingest transaction with issue 17's additions (re-send hint in every
 * answer, fills closing gaps, drop-record checks) against the ingest of the commit before them,
 * in the same process, on the same events, interleaved rounds (so machine load hits both alike).
 *   npm run build && scripts/n24 node dist/bench/ingest-delivery.js [--events 100000] [--batch 500] [--rounds 3] [--baseline f1a4efc]
 * The baseline is `git show BASELINE:console/backbone/ingest.ts`, bundled with esbuild against this
 * checkout's other modules. Measures the in-process ingest function (what the HTTP route calls
 * inside its group commit), on a file database with WAL and synchronous=FULL as the console runs it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { migrate } from '../console/core/db.js';
import { coreMigrations } from '../console/core/schema.js';
import { createIngester } from '../console/backbone/ingest.js';
import type { SekimoriEvent } from '../protocol/events.js';
import { makeEvents } from './events.js';

const { values } = parseArgs({ options: { events: { type: 'string', default: '100000' }, batch: { type: 'string', default: '500' }, rounds: { type: 'string', default: '3' }, baseline: { type: 'string', default: 'f1a4efc' } } });
const TOTAL = Number(values.events);
const BATCH = Number(values.batch);
const ROUNDS = Number(values.rounds);
const ROOT = resolve(import.meta.dirname, '../..');

type Ingest = (agentId: string, events: SekimoriEvent[]) => unknown;

/** The baseline ingest module: its TypeScript from git, relative imports pointed at this checkout. */
async function baseline(dir: string): Promise<(db: Database.Database) => Ingest> {
  const src = execFileSync('git', ['-C', ROOT, 'show', `${values.baseline}:console/backbone/ingest.ts`], { encoding: 'utf8' });
  const rewritten = src.replace(/from '(\.\.?\/[^']+)\.js'/g, (_m, rel: string) => `from '${join(ROOT, 'console/backbone', rel)}.ts'`);
  const entry = join(dir, 'ingest-baseline.ts');
  writeFileSync(entry, rewritten);
  // Beside this script: its bare imports (better-sqlite3, typebox) resolve from the checkout's node_modules.
  const out = join(ROOT, 'dist/bench', `.ingest-baseline-${process.pid}.mjs`);
  execFileSync(join(ROOT, 'node_modules/.bin/esbuild'), [entry, '--bundle', '--platform=node', '--format=esm', '--external:better-sqlite3', '--external:typebox', '--external:typebox/*', `--outfile=${out}`], { stdio: 'ignore' });
  try {
    const mod = (await import(pathToFileURL(out).href)) as { createIngester: (db: Database.Database) => Ingest };
    return mod.createIngester;
  } finally {
    rmSync(out, { force: true });
  }
}

function freshDb(dir: string, name: string, agentId: string): Database.Database {
  const db = new Database(join(dir, name));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (module TEXT, version INTEGER, applied_at TEXT, PRIMARY KEY (module, version))');
  migrate(db, 'core', coreMigrations);
  db.prepare("INSERT INTO agents (id, hostname, cert_fingerprint, enrolled_at) VALUES (?, 'bench', 'fp', 'now')").run(agentId);
  return db;
}

function run(make: (db: Database.Database) => Ingest, dir: string, name: string, agentId: string, events: SekimoriEvent[]): number {
  const db = freshDb(dir, name, agentId);
  const ingest = make(db);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < events.length; i += BATCH) ingest(agentId, events.slice(i, i + BATCH));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  db.close();
  return events.length / s;
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'sekimori-bench-ingest-delivery-'));
  try {
    const agentId = '0b7c3c1e-8d0b-4b8e-9f5e-2d6f1a3b4c5d';
    const events = makeEvents(agentId, TOTAL);
    const before = await baseline(dir);
    const rates: { baseline: number[]; now: number[] } = { baseline: [], now: [] };
    for (let r = 0; r < ROUNDS; r++) {
      rates.baseline.push(run(before, dir, `b${r}.db`, agentId, events));
      rates.now.push(run(createIngester as (db: Database.Database) => Ingest, dir, `n${r}.db`, agentId, events));
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const b = median(rates.baseline);
    const n = median(rates.now);
    process.stdout.write(
      JSON.stringify({ events: TOTAL, batch: BATCH, rounds: ROUNDS, baselineCommit: values.baseline, baselineEventsPerSecond: Math.round(b), nowEventsPerSecond: Math.round(n), ratio: Number((n / b).toFixed(3)), rates }, null, 2) + '\n',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
