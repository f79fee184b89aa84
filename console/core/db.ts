/** SQLite store: WAL, foreign keys, and per-module migrations applied once each, in order. */
import Database from 'better-sqlite3';
import { sqliteOptions } from '../../protocol/native.js';

export function openDatabase(path: string): Database.Database {
  // A CLI command may have to wait for the serving console's write transactions (and the reverse).
  const db = new Database(path, { ...sqliteOptions(), timeout: 15_000 });
  db.pragma('journal_mode = WAL');
  // FULL: a transaction the console acknowledged survives power loss, not only a process crash.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  // Every transaction begins IMMEDIATE (takes the write lock first). A DEFERRED one that read and
  // then writes after another process (the serving console, a CLI command) committed cannot be
  // upgraded: SQLite refuses it at once with SQLITE_BUSY, without waiting for the timeout.
  const deferredTransaction = db.transaction.bind(db);
  db.transaction = ((fn) => deferredTransaction(fn).immediate) as typeof db.transaction;
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    module TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (module, version))`);
  return db;
}

export function migrate(db: Database.Database, module: string, migrations: string[]): void {
  const row = db.prepare('SELECT max(version) AS v FROM schema_migrations WHERE module = ?').get(module) as { v: number | null };
  const done = row.v ?? 0;
  for (let i = done; i < migrations.length; i++) {
    db.transaction(() => {
      db.exec(migrations[i]!);
      db.prepare('INSERT INTO schema_migrations (module, version, applied_at) VALUES (?, ?, ?)').run(module, i + 1, new Date().toISOString());
    })();
  }
}
