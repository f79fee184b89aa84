/**
 * chokidar (inotify) on the executable locations: a file that appears or changes there is
 * handed on after a short quiet period (a copy in progress fires several events). Only the path
 * is reported here; the capability resolves, hashes and judges it.
 */
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
  onFile(path: string, event: 'add' | 'change', seenAt: number): void;
  onError?(e: unknown): void;
}

export class FileWatcher {
  private w: FSWatcher | null = null;
  private pending = new Map<string, { timer: NodeJS.Timeout; event: 'add' | 'change'; seenAt: number }>();
  constructor(private readonly o: FileWatcherOptions) {}

  /** Resolves once the initial directory walk is done (events before that are not missed: ignoreInitial only skips existing files). */
  async start(): Promise<void> {
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
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    await this.w?.close();
    this.w = null;
  }
}
