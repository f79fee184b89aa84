import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrate, openDatabase } from '../../console/core/db.js';
import { coreMigrations } from '../../console/core/schema.js';
import { WalSync } from '../../console/core/wal-sync.js';
import { createIngester, GroupCommit } from '../../console/backbone/ingest.js';
import { chainEvent, genesisHash, type SekimoriEvent } from '../../protocol/events.js';

const AGENT = '0b7c3c1e-8d0b-4b8e-9f5e-2d6f1a3b4c5d';

function chain(n: number): SekimoriEvent[] {
  const out: SekimoriEvent[] = [];
  let prev = genesisHash(AGENT);
  for (let i = 1; i <= n; i++) {
    const e = chainEvent(prev, { id: randomUUID(), agentId: AGENT, seq: i, ts: new Date(1_790_000_000_000 + i).toISOString(), type: 'usb.blocked', severity: 'warning', user: null, data: { i } });
    out.push(e);
    prev = e.hash;
  }
  return out;
}

/** A WalSync whose disk is in the test's hand: each sync waits until released (or fails). */
class HeldSync extends WalSync {
  started = 0;
  private releases: { ok: () => void; fail: (e: Error) => void }[] = [];
  constructor() {
    super('/nonexistent');
  }
  protected override syncOnce(): Promise<void> {
    this.started++;
    return new Promise((ok, fail) => this.releases.push({ ok, fail }));
  }
  release(error?: Error): void {
    const r = this.releases.shift();
    if (!r) throw new Error('no sync is waiting');
    if (error) r.fail(error);
    else r.ok();
  }
}

const tick = () => new Promise((r) => setImmediate(r));
const settled = <T,>(p: Promise<T>) => {
  const s = { done: false, value: undefined as T | undefined, error: undefined as unknown };
  p.then((v) => ((s.done = true), (s.value = v)), (e: unknown) => ((s.done = true), (s.error = e)));
  return s;
};

describe('WalSync: one fsync off the event loop serves every commit before it', () => {
  it('callers during a running sync share ONE following sync, never a queue of them', async () => {
    const sync = new HeldSync();
    const first = settled(sync.sync());
    const during = [settled(sync.sync()), settled(sync.sync()), settled(sync.sync())];
    await tick();
    expect(sync.started).toBe(1);
    sync.release();
    await tick();
    expect(first.done).toBe(true);
    // The running sync may have begun before their commits: they wait for the next one.
    expect(during.some((s) => s.done)).toBe(false);
    expect(sync.started).toBe(2);
    sync.release();
    await tick();
    expect(during.every((s) => s.done && s.error === undefined)).toBe(true);
    expect(sync.started).toBe(2);
  });

  it('a failed sync rejects its callers, and the next caller syncs again', async () => {
    const sync = new HeldSync();
    const a = settled(sync.sync());
    const b = settled(sync.sync());
    await tick();
    sync.release(new Error('EIO'));
    await tick();
    expect((a.error as Error).message).toBe('EIO');
    sync.release(); // b's own sync still runs after the failed one
    await tick();
    expect(b.done && b.error === undefined).toBe(true);
    const c = settled(sync.sync());
    await tick();
    expect(sync.started).toBe(3);
    sync.release();
    await tick();
    expect(c.done && c.error === undefined).toBe(true);
  });

  it('syncs a real WAL database (and its folder when the WAL is new)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'walsync-'));
    try {
      const db = openDatabase(join(dir, 'console.db'));
      db.exec('CREATE TABLE t (x)');
      db.prepare('INSERT INTO t VALUES (1)').run();
      expect(statSync(join(dir, 'console.db-wal')).size).toBeGreaterThan(0);
      await new WalSync(db.name).sync();
      db.close(); // the last connection removes the WAL: the database file itself is synced then
      await new WalSync(join(dir, 'console.db')).sync();
      await expect(new WalSync(join(dir, 'absent.db')).sync()).rejects.toThrow(/ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('GroupCommit with a WalSync: acknowledged means durable', () => {
  let dir: string;
  let db: Database.Database;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'groupcommit-'));
    db = openDatabase(join(dir, 'console.db'));
    migrate(db, 'core', coreMigrations);
    db.prepare("INSERT INTO agents (id, hostname, cert_fingerprint, enrolled_at) VALUES (?, 'pc', 'fp', 'now')").run(AGENT);
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const synchronous = () => db.pragma('synchronous', { simple: true });

  it('answers a batch only after the sync that began after its commit, and keeps FULL for every other writer', async () => {
    const sync = new HeldSync();
    let durableHook = 0;
    const commit = new GroupCommit(db, createIngester(db), { first: () => () => durableHook++ }, sync);
    const c = chain(4);
    const a = settled(commit.submit(AGENT, c.slice(0, 2)));
    await tick();
    // Committed (readable) but not yet answered: its fsync is still running.
    expect((db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n).toBe(2);
    expect(a.done).toBe(false);
    expect(durableHook).toBe(0);
    expect(synchronous()).toBe(2); // FULL again right after the ingest commit
    // The next group commits while the first is being synced.
    const b = settled(commit.submit(AGENT, c.slice(2)));
    await tick();
    expect((db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n).toBe(4);
    sync.release();
    await tick();
    expect(a.done && a.error === undefined).toBe(true);
    expect(a.value?.response.acked).toEqual([1, 2]);
    expect(b.done).toBe(false); // its commit came after the first sync had started
    expect(durableHook).toBe(1);
    sync.release();
    await tick();
    expect(b.value?.response.acked).toEqual([3, 4]);
    expect(durableHook).toBe(2);
  });

  it('a failed sync acknowledges nothing; the agent re-sends and the events are held once', async () => {
    const sync = new HeldSync();
    const commit = new GroupCommit(db, createIngester(db), {}, sync);
    const c = chain(3);
    const a = settled(commit.submit(AGENT, c));
    await tick();
    sync.release(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    await tick();
    expect((a.error as Error).message).toMatch(/EIO/);
    const again = settled(commit.submit(AGENT, c));
    await tick();
    sync.release();
    await tick();
    expect(again.value?.response).toMatchObject({ acked: [1, 2, 3], stored: 0, duplicates: 3 });
    expect((db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n).toBe(3);
  });

  it('without a WalSync the commit itself is durable (FULL) and answered at once', async () => {
    const commit = new GroupCommit(db, createIngester(db));
    const r = await commit.submit(AGENT, chain(2));
    expect(r.response.acked).toEqual([1, 2]);
    expect(synchronous()).toBe(2);
  });
});
