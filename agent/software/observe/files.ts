/**
 * A watch on the executable locations: a file that appears or changes there is handed on after a
 * short quiet period (a copy in progress fires several events). Only the path is reported here;
 * the capability resolves, hashes and judges it.
 *
 * Two engines behind one class. 'inotify' (Linux): one fs.watch (one inotify watch) per folder,
 * no per-file state and no stat per raw event — only a path that has been quiet is looked at.
 * Measured on the default locations (≈2,000 folders, ≈10,000 files): chokidar held ≈64 MB and
 * stat'ed every raw event (≈40 % of a core under a busy /tmp); this engine holds the folder list.
 * 'chokidar' stays for the other platforms (Windows paths, wine).
 */
import { watch as fsWatch, type FSWatcher as NodeWatcher } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { underPrefix } from '../decide.js';

export interface FileWatcherOptions {
  locations: string[];
  depth: number;
  /** Paths never reported (the quarantine, the agent's own state). */
  exclude: string[];
  /** The platform's own test for the same (Windows: C:\… never matches a POSIX prefix). */
  isExcluded?(path: string): boolean;
  quietMs?: number;
  /** Default 'chokidar'; the Linux capability asks for 'inotify'. */
  engine?: 'inotify' | 'chokidar';
  /** Upper bound on folders watched by the inotify engine (each costs one inotify watch). */
  maxDirs?: number;
  /** How long the start waits for the inotify engine's first walk (default 15 s); the rest finishes behind it. */
  startWaitMs?: number;
  onFile(path: string, event: 'add' | 'change', seenAt: number): void;
  onError?(e: unknown): void;
}

export class FileWatcher {
  private w: FSWatcher | null = null;
  private pending = new Map<string, { timer: NodeJS.Timeout; event: 'add' | 'change'; seenAt: number }>();
  /** inotify engine: watched folder → its watcher and depth below its location. */
  private dirs = new Map<string, { w: NodeWatcher; depth: number }>();
  private stopped = false;
  constructor(private readonly o: FileWatcherOptions) {}

  /** Folders watched now (the inotify engine; chokidar does not say). */
  get watchedDirs(): number {
    return this.dirs.size;
  }

  private excluded(p: string): boolean {
    return this.o.exclude.some((x) => underPrefix(p, x)) || (this.o.isExcluded?.(p) ?? false);
  }

  /** Resolves once the initial directory walk is done (events before that are not missed: ignoreInitial only skips existing files). */
  async start(): Promise<void> {
    if (this.o.engine === 'inotify') return this.startInotify();
    const exclude = this.o.exclude;
    const isExcluded = this.o.isExcluded;
    const w = watch(this.o.locations, {
      ignoreInitial: true,
      followSymlinks: false,
      depth: this.o.depth,
      ignorePermissionErrors: true,
      persistent: true,
      ignored: (p: string) => exclude.some((x) => underPrefix(p, x)) || (isExcluded?.(p) ?? false),
    });
    this.w = w;
    const handle = (event: 'add' | 'change') => (path: string) => this.queue(path, event);
    w.on('add', handle('add'));
    w.on('change', handle('change'));
    w.on('error', (e) => this.o.onError?.(e));
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 15_000); // bounded: a huge tree must not hold the agent's start
      w.once('ready', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /**
   * Walks every location; the agent's start waits for at most `startWaitMs` of it. A huge tree (a
   * shared /tmp, a big home) is finished in the background: its last folders are watched a little
   * later instead of never (they were, when the walk simply stopped at the start's bound).
   */
  private async startInotify(): Promise<void> {
    const walked = (async () => {
      for (const root of this.o.locations) {
        if (this.stopped) return;
        await this.walk(root, 0, Infinity, false);
      }
    })().catch((e: unknown) => this.o.onError?.(e));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([walked, new Promise<void>((r) => (timer = setTimeout(r, this.o.startWaitMs ?? 15_000)))]);
    clearTimeout(timer);
    this.walked = walked;
  }

  /** The whole start walk (tests wait for it). */
  walked: Promise<void> = Promise.resolve();

  /**
   * Watches `dir` and the folders below it down to the depth limit. `announce`: report the files
   * found (a folder that appeared after the start: what was copied in with it is new).
   */
  private async walk(dir: string, depth: number, deadline: number, announce: boolean): Promise<void> {
    const stack: { dir: string; depth: number }[] = [{ dir, depth }];
    const max = this.o.maxDirs ?? 50_000;
    let n = 0;
    while (stack.length && !this.stopped) {
      const { dir: d, depth: k } = stack.pop()!;
      if (this.dirs.has(d) || this.excluded(d) || this.dirs.size >= max || performance.now() > deadline) continue;
      let w: NodeWatcher;
      try {
        w = fsWatch(d, { persistent: false }, (_ev, name) => {
          if (typeof name === 'string' && name) this.raw(join(d, name), _ev === 'rename' ? 'add' : 'change');
        });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOSPC') this.o.onError?.(new Error(`inotify watch limit reached at ${d} (fs.inotify.max_user_watches)`));
        continue;
      }
      w.on('error', () => this.unwatch(d));
      this.dirs.set(d, { w, depth: k });
      let entries: import('node:fs').Dirent[];
      try {
        entries = await readdir(d, { withFileTypes: true });
      } catch {
        continue;
      }
      for (const e of entries) {
        const p = join(d, e.name);
        if (e.isDirectory() && k < this.o.depth) stack.push({ dir: p, depth: k + 1 });
        else if (announce && (e.isFile() || e.isSymbolicLink())) this.raw(p, 'add');
      }
      if (++n % 100 === 0) await new Promise((r) => setImmediate(r)); // let the agent breathe on a big tree
    }
  }

  private unwatch(dir: string): void {
    for (const [d, x] of this.dirs) {
      if (underPrefix(d, dir)) {
        x.w.close();
        this.dirs.delete(d);
      }
    }
  }

  /** A raw inotify event: only remembered (no I/O) until the path has been quiet. */
  private raw(path: string, event: 'add' | 'change'): void {
    if (this.stopped) return;
    const prev = this.quiet.get(path);
    const now = performance.now();
    if (prev) {
      // A busy file (a database being written) costs one map update per raw event, no timer.
      prev.last = now;
      if (event === 'add') prev.event = 'add';
      return;
    }
    // Bounded: a flood of distinct new paths keeps at most this many (the /proc scan still judges
    // whatever of them runs).
    if (this.quiet.size >= 20_000 || this.excluded(path)) return;
    this.quiet.set(path, { event, seenAt: now, last: now });
    if (!this.sweeper) {
      this.sweeper = setInterval(() => this.sweep(), Math.max(10, Math.floor((this.o.quietMs ?? 60) / 2)));
      this.sweeper.unref?.();
    }
  }

  /** Paths quiet for quietMs are looked at; one timer for all of them. */
  private quiet = new Map<string, { event: 'add' | 'change'; seenAt: number; last: number }>();
  private sweeper: NodeJS.Timeout | null = null;
  private sweep(): void {
    const now = performance.now();
    const q = this.o.quietMs ?? 60;
    for (const [path, x] of this.quiet) {
      if (now - x.last < q) continue;
      this.quiet.delete(path);
      void this.settle(path, x.event, x.seenAt).catch((e: unknown) => this.o.onError?.(e));
    }
    if (this.quiet.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  /** The quiet path, inotify engine: a new folder is watched (and its files announced), a file is handed on. */
  private async settle(path: string, event: 'add' | 'change', seenAt: number): Promise<void> {
    let st: import('node:fs').Stats;
    try {
      st = await lstat(path);
    } catch {
      if (this.dirs.has(path)) this.unwatch(path); // a watched folder went away
      return;
    }
    if (st.isDirectory()) {
      const parent = this.dirs.get(path.slice(0, path.lastIndexOf('/')) || '/');
      if (parent && parent.depth < this.o.depth && !this.dirs.has(path)) await this.walk(path, parent.depth + 1, performance.now() + 5_000, true);
      return;
    }
    if (st.isFile() || st.isSymbolicLink()) this.o.onFile(path, event, seenAt);
  }

  private queue(path: string, event: 'add' | 'change'): void {
    const prev = this.pending.get(path);
    const seenAt = prev?.seenAt ?? performance.now();
    if (prev) clearTimeout(prev.timer);
    const ev = prev?.event === 'add' ? 'add' : event;
    const timer = setTimeout(() => {
      this.pending.delete(path);
      this.o.onFile(path, ev, seenAt);
    }, this.o.quietMs ?? 60);
    this.pending.set(path, { timer, event: ev, seenAt });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    this.quiet.clear();
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    for (const x of this.dirs.values()) x.w.close();
    this.dirs.clear();
    await this.w?.close();
    this.w = null;
  }
}
