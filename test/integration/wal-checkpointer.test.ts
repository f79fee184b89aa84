/**
 * The serving console's WAL checkpoints run in its `wal-checkpointer` helper process
 * (console/core/checkpointer.ts): the WAL stays small although the serving connection no longer
 * checkpoints at 1000 pages; a killed helper is restarted; the helper never outlives its console.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { startConsole, waitFor, type TestConsole } from './harness.js';

/** Pids of the `wal-checkpointer` processes whose parent is `parent` (from /proc, no ps needed). */
function helpersOf(parent: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (!cmd.includes('wal-checkpointer')) continue;
      const ppid = Number(readFileSync(`/proc/${name}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      if (ppid === parent) out.push(Number(name));
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('WAL checkpoints in a helper process (issue 11: off the serving thread)', () => {
  let con: TestConsole | undefined;
  afterEach(async () => {
    await con?.cleanup();
    con = undefined;
  });

  it('keeps the WAL small while another connection writes without checkpointing itself', async () => {
    con = await startConsole();
    const c = con;
    const [helper] = await waitFor('the wal-checkpointer helper', () => (helpersOf(c.proc.pid!).length ? helpersOf(c.proc.pid!) : null));
    expect(helper).toBeGreaterThan(0);
    const dbPath = join(c.dataDir, 'console.db');
    const writer = new Database(dbPath, { timeout: 15_000 });
    try {
      writer.pragma('wal_autocheckpoint = 0'); // this connection never checkpoints: only the helper can
      writer.exec('CREATE TABLE IF NOT EXISTS scratch (b BLOB)');
      const insert = writer.prepare('INSERT INTO scratch VALUES (randomblob(4000))');
      const oneMiB = writer.transaction(() => {
        for (let i = 0; i < 256; i++) insert.run();
      });
      // 24 MiB in 24 transactions with pauses: without checkpoints the WAL would grow past 24 MiB.
      let largest = 0;
      for (let i = 0; i < 24; i++) {
        oneMiB();
        largest = Math.max(largest, statSync(`${dbPath}-wal`).size);
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(largest).toBeLessThan(12 * 1024 * 1024);
    } finally {
      writer.close();
    }
  });

  it('restarts a killed helper, and the helper ends with its console (SIGKILL too)', async () => {
    con = await startConsole();
    const c = con;
    const [first] = await waitFor('the wal-checkpointer helper', () => (helpersOf(c.proc.pid!).length ? helpersOf(c.proc.pid!) : null));
    process.kill(first!, 'SIGKILL');
    const [second] = await waitFor('a new helper', () => {
      const now = helpersOf(c.proc.pid!).filter((p) => p !== first);
      return now.length ? now : null;
    });
    expect(c.output()).toMatch(/wal-checkpointer ended \(SIGKILL\)/);
    await c.kill9(); // the console dies without cleaning up: the helper sees its stdin close
    await waitFor('the helper to end with its console', () => !alive(second!), 10_000);
    await c.start();
    const [third] = await waitFor('a helper for the restarted console', () => (helpersOf(c.proc.pid!).length ? helpersOf(c.proc.pid!) : null));
    await c.stop();
    await waitFor('the helper to end after SIGTERM', () => !alive(third!), 10_000);
  });
});
