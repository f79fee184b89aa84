/**
 * WAL checkpoints in a helper process, off the serving thread.
 *
 * SQLite copies the WAL back into the database (a checkpoint, with its two fsyncs) inside whichever
 * commit pushes the WAL past `wal_autocheckpoint` pages: on the console's one thread, that was
 * ≈ 40 % of the time of raw batch inserts here (bench/ingest-checkpoint.ts: 38–43 %). A checkpoint needs no
 * lock that writers need, so `sekimori-console serve` starts itself once more as
 * `wal-checkpointer DB` (a child with its own connection, ending when its stdin closes, i.e. when
 * the console ends however it ends) which checkpoints PASSIVE every 100 ms; the serving connection
 * keeps a high backstop (it checkpoints itself only if the helper is gone or far behind). While the
 * helper is down the default comes back and it is restarted (1 s, doubling to 60 s). Durability is
 * unchanged: a commit is durable by its own WAL sync (FULL, or wal-sync.ts), never by a checkpoint.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as sea from 'node:sea';
import Database from 'better-sqlite3';
import { sqliteOptions } from '../../protocol/native.js';

export const CHECKPOINTER_COMMAND = 'wal-checkpointer';
/** SQLite's default: what the serving connection uses while no helper runs. */
const DEFAULT_AUTOCHECKPOINT_PAGES = 1000;
/** 64 MiB of 4 KiB pages: the serving connection checkpoints only if the helper fell this far behind. */
const BACKSTOP_AUTOCHECKPOINT_PAGES = 16384;
const INTERVAL_MS = 100;

/** The helper's side: checkpoint until stdin closes (the console ended) or a signal arrives. */
export function runCheckpointer(databasePath: string): Promise<number> {
  const db = new Database(databasePath, { ...sqliteOptions(), fileMustExist: true, timeout: 0 });
  let failures = 0;
  const timer = setInterval(() => {
    try {
      db.pragma('wal_checkpoint(PASSIVE)'); // never waits for a lock: busy → try again next time
      failures = 0;
    } catch (e) {
      if (++failures === 1) process.stderr.write(`[wal-checkpointer] ${(e as Error).message}\n`);
    }
  }, INTERVAL_MS);
  return new Promise((resolve) => {
    let ended = false;
    const end = () => {
      if (ended) return; // stdin's 'end' and 'close' both come
      ended = true;
      clearInterval(timer);
      db.close();
      resolve(0);
    };
    process.stdin.once('end', end).once('close', end).resume();
    process.once('SIGTERM', end);
    process.once('SIGINT', end);
  });
}

/** The command line that starts this program again: the executable itself, or node + bin/sekimori-console.js. */
function selfCommand(): string[] {
  if (sea.isSea()) return [process.execPath];
  return [process.execPath, fileURLToPath(new URL('../../../bin/sekimori-console.js', import.meta.url))];
}

/** The serving side: keeps one helper running for `db` until stop(). */
export function startCheckpointer(db: Database.Database, log: (m: string) => void): { stop(): void } {
  let child: ChildProcess | null = null;
  let stopped = false;
  let delay = 1000;
  let restart: NodeJS.Timeout | null = null;
  const start = () => {
    const [exe, ...pre] = selfCommand();
    const c = spawn(exe!, [...pre, CHECKPOINTER_COMMAND, db.name], { stdio: ['pipe', 'ignore', 'inherit'] });
    child = c;
    const startedAt = Date.now();
    c.once('spawn', () => {
      if (db.open) db.pragma(`wal_autocheckpoint = ${BACKSTOP_AUTOCHECKPOINT_PAGES}`);
    });
    c.once('error', (e) => log(`wal-checkpointer: ${e.message}`));
    c.once('close', (code, signal) => {
      child = null;
      if (!db.open) return;
      db.pragma(`wal_autocheckpoint = ${DEFAULT_AUTOCHECKPOINT_PAGES}`);
      if (stopped) return;
      if (Date.now() - startedAt > 60_000) delay = 1000;
      log(`wal-checkpointer ended (${signal ?? code}); checkpoints on the serving thread until it restarts in ${delay / 1000} s`);
      restart = setTimeout(start, delay);
      restart.unref();
      delay = Math.min(delay * 2, 60_000);
    });
  };
  start();
  return {
    stop() {
      stopped = true;
      if (restart) clearTimeout(restart);
      child?.stdin?.end(); // the helper ends on EOF
    },
  };
}
