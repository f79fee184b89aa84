/**
 * The file watcher's inotify engine (Linux): one watch per folder, no per-file state, nothing
 * looked at until a path is quiet. Real inotify on a scratch tree.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileWatcher } from '../../agent/software/observe/files.js';
import { waitFor } from '../integration/harness.js';

const watchers: FileWatcher[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const w of watchers.splice(0)) await w.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup(depth = 2, exclude: string[] = []) {
  const root = mkdtempSync(join(tmpdir(), 'sekimori-sw-files-'));
  dirs.push(root);
  const seen: { path: string; event: string }[] = [];
  const w = new FileWatcher({ engine: 'inotify', locations: [root], depth, exclude: exclude.map((x) => join(root, x)), quietMs: 30, onFile: (path, event) => seen.push({ path, event }) });
  watchers.push(w);
  return { root, seen, w };
}

describe.skipIf(process.platform !== 'linux')('FileWatcher, inotify engine', () => {
  it('a new file is reported once it is quiet, as add (not once per write)', async () => {
    const { root, seen, w } = setup();
    await w.start();
    const f = join(root, 'a.bin');
    writeFileSync(f, 'x');
    for (let i = 0; i < 20; i++) writeFileSync(f, 'x'.repeat(i + 1), { flag: 'a' });
    await waitFor('reported', () => seen.find((s) => s.path === f));
    await new Promise((r) => setTimeout(r, 100));
    expect(seen.filter((s) => s.path === f)).toEqual([{ path: f, event: 'add' }]);
  });

  it('a folder moved in with files is watched and its files announced; depth is honoured', async () => {
    const { root, seen, w } = setup(1);
    await w.start();
    const staging = mkdtempSync(join(tmpdir(), 'sekimori-sw-stage-'));
    dirs.push(staging);
    mkdirSync(join(staging, 'pkg', 'deeper'), { recursive: true });
    writeFileSync(join(staging, 'pkg', 'tool'), 'x');
    writeFileSync(join(staging, 'pkg', 'deeper', 'hidden'), 'x');
    renameSync(join(staging, 'pkg'), join(root, 'pkg'));
    await waitFor('announced', () => seen.find((s) => s.path === join(root, 'pkg', 'tool')));
    // depth 1: root (0) and pkg (1) are watched, pkg/deeper (2) is not.
    writeFileSync(join(root, 'pkg', 'later'), 'x');
    await waitFor('file in the new folder', () => seen.find((s) => s.path === join(root, 'pkg', 'later')));
    writeFileSync(join(root, 'pkg', 'deeper', 'x'), 'x');
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.some((s) => s.path.includes('deeper'))).toBe(false);
    expect(w.watchedDirs).toBe(2);
  });

  it('excluded folders are neither watched nor reported; a removed folder is unwatched', async () => {
    const { root, seen, w } = setup(2, ['state']);
    mkdirSync(join(root, 'state'));
    mkdirSync(join(root, 'gone'));
    await w.start();
    expect(w.watchedDirs).toBe(2); // root and gone
    writeFileSync(join(root, 'state', 'outbox.sqlite'), 'x');
    rmSync(join(root, 'gone'), { recursive: true });
    await waitFor('gone unwatched', () => w.watchedDirs === 1 || null);
    writeFileSync(join(root, 'marker'), 'x');
    await waitFor('marker', () => seen.find((s) => s.path === join(root, 'marker')));
    expect(seen.some((s) => s.path.includes('state'))).toBe(false);
  });

  it('hostile: thousands of files at once are bounded and the watcher keeps working', async () => {
    const { root, seen, w } = setup();
    await w.start();
    for (let i = 0; i < 3000; i++) writeFileSync(join(root, `f${i}`), '');
    await waitFor('all reported', () => (seen.length >= 3000 ? true : null), 30_000);
    expect(new Set(seen.map((s) => s.path)).size).toBe(3000);
  });

  it('a tree too big for the start bound is still watched whole: the walk finishes behind the start', async () => {
    const root = mkdtempSync(join(tmpdir(), 'sekimori-sw-files-'));
    dirs.push(root);
    // 3,000 folders, then the one that matters (the walk takes the last pushed first, so put it
    // among the first: it is reached last).
    mkdirSync(join(root, 'a-late'));
    for (let i = 0; i < 3000; i++) mkdirSync(join(root, `d${i}`));
    const seen: string[] = [];
    const w = new FileWatcher({ engine: 'inotify', locations: [root], depth: 2, exclude: [], quietMs: 30, startWaitMs: 0, onFile: (path) => seen.push(path) });
    watchers.push(w);
    await w.start();
    // The start returned before the walk was done (bound 0 ms)…
    expect(w.watchedDirs).toBeLessThan(3002);
    await w.walked;
    // …and the walk went on: every folder is watched, the late one too.
    expect(w.watchedDirs).toBe(3002);
    writeFileSync(join(root, 'a-late', 'tool'), 'x');
    await waitFor('file in the folder reached last', () => seen.find((p) => p === join(root, 'a-late', 'tool')));
  });
});
