/**
 * Durability of a commit made with `synchronous = NORMAL`, paid off the event loop.
 *
 * With WAL and `synchronous = FULL`, SQLite fsyncs the WAL inside every commit — on the console's
 * one thread, which meanwhile cannot parse the next uploads (bench/ingest: a quarter of its busy
 * time). With NORMAL the commit only writes the WAL frames; `sync()` then fdatasyncs the WAL file
 * in libuv's thread pool and resolves once every frame committed before the call is on disk. On
 * Linux fsync works on the inode, so our own descriptor flushes what SQLite wrote through its own.
 * A checkpoint in between changes nothing: SQLite syncs the WAL before copying it and the database
 * after. A WAL file seen for the first time also has its folder synced (its directory entry is part
 * of what makes it found after power loss; SQLite itself does that only on its first own sync).
 *
 * Coalesced: while one sync runs, every caller that arrives waits for ONE more sync after it (the
 * running one may have started before their commit), so fsyncs never queue up behind each other.
 */
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';

export class WalSync {
  private running: Promise<void> | null = null;
  private following: Promise<void> | null = null;
  private syncedInode = -1;

  constructor(private readonly databasePath: string) {}

  /** Resolves when everything committed before this call is durable; rejects if the disk refused. */
  sync(): Promise<void> {
    if (!this.running) {
      const run = this.syncOnce().finally(() => {
        if (this.running === run) this.running = null;
      });
      this.running = run;
      return run;
    }
    if (!this.following) {
      const after = () => {
        this.following = null;
        return this.sync();
      };
      this.following = this.running.then(after, after);
    }
    return this.following;
  }

  protected async syncOnce(): Promise<void> {
    let file;
    try {
      file = await open(`${this.databasePath}-wal`, 'r');
    } catch (e) {
      // No WAL (its last connection closed and checkpointed it into the database): sync that instead.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      file = await open(this.databasePath, 'r');
    }
    try {
      const { ino } = await file.stat();
      await file.datasync();
      if (ino !== this.syncedInode) {
        await syncFolder(dirname(this.databasePath));
        this.syncedInode = ino;
      }
    } finally {
      await file.close();
    }
  }
}

async function syncFolder(path: string): Promise<void> {
  const folder = await open(path, 'r');
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}
