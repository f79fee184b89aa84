/**
 * `sekimori-agent baseline --out FILE`: inventory of a reference terminal — installed packages
 * with versions and every executable in the baseline scope with its SHA-256 (streamed, bounded
 * concurrency). The console imports the file and an administrator approves it as the allowlist.
 */
import { lstat, readdir, writeFile } from 'node:fs/promises';
import { openSync, readSync, closeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { t } from '../../protocol/i18n.js';
import { isCleanAbsolutePath, type BaselineFile, type SoftwareBaselineDocument } from '../../protocol/policy-software.js';
import { osDescription } from '../os.js';
import { looksExecutable } from './decide.js';
import { PackageDb } from './observe/dpkg.js';
import { Hasher } from './observe/hash.js';

export const DEFAULT_BASELINE_SCOPE = ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin', '/opt'];

function head(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(4);
    return b.subarray(0, readSync(fd, b, 0, 4, 0));
  } finally {
    closeSync(fd);
  }
}

/** Regular executable files below `dir` (symlinks are not followed: their targets are listed where they live). */
async function* walk(dir: string, depth: number, budget: { files: number }): AsyncGenerator<string> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    if (budget.files <= 0) return;
    const p = join(dir, e.name);
    if (e.isDirectory() && depth > 0) yield* walk(p, depth - 1, budget);
    else if (e.isFile()) {
      try {
        const s = await lstat(p);
        if (looksExecutable(s.mode, head(p))) {
          budget.files--;
          yield p;
        }
      } catch {
        // unreadable: not part of the baseline
      }
    }
  }
}

export interface BaselineOptions {
  scope: string[];
  adminDir: string;
  root: string;
  concurrency: number;
  depth: number;
  maxFiles: number;
}

export async function captureBaseline(o: BaselineOptions): Promise<SoftwareBaselineDocument> {
  const db = o.adminDir ? new PackageDb(o.adminDir, o.root, o.scope) : null;
  if (db) await db.load().catch(() => undefined);
  const hasher = new Hasher(o.concurrency);
  const files: BaselineFile[] = [];
  const budget = { files: o.maxFiles };
  const inflight = new Set<Promise<void>>();
  for (const dir of o.scope) {
    for await (const p of walk(dir, o.depth, budget)) {
      const job = hasher
        .digest(p)
        .then((d) => {
          const owner = db?.owner(p, d.md5) ?? null;
          files.push({ path: p, sha256: d.sha256, size: d.size, ...(owner?.intact ? { package: owner.name } : {}) });
        })
        .catch(() => undefined)
        .finally(() => inflight.delete(job));
      inflight.add(job);
      if (inflight.size >= o.concurrency * 4) await Promise.race(inflight);
    }
  }
  await Promise.all(inflight);
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const packages = db ? [...db.packages.values()].map((p) => ({ name: p.name, version: p.version, ...(p.arch ? { arch: p.arch } : {}) })).sort((a, b) => a.name.localeCompare(b.name)) : [];
  return { format: 'sekimori-software-baseline/1', host: hostname(), os: osDescription(), createdAt: new Date().toISOString(), scope: o.scope, packages, files };
}

export async function baselineCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      out: { type: 'string' },
      scope: { type: 'string', multiple: true },
      admindir: { type: 'string', default: '/var/lib/dpkg' },
      root: { type: 'string', default: '/' },
      concurrency: { type: 'string', default: '4' },
      depth: { type: 'string', default: '8' },
      'max-files': { type: 'string', default: '200000' },
      state: { type: 'string' }, // accepted for symmetry with the other commands; unused
    },
  });
  if (!values.out) {
    process.stderr.write('usage: sekimori-agent baseline --out FILE [--scope DIR ...] [--admindir DIR] [--root DIR] [--concurrency N]\n');
    return 2;
  }
  const scope = values.scope?.length ? values.scope : DEFAULT_BASELINE_SCOPE;
  for (const s of [...scope, values.root]) {
    if (!isCleanAbsolutePath(s)) {
      process.stderr.write(t(`絶対パスを指定してください: ${s}\n`, `not a clean absolute path: ${s}\n`));
      return 2;
    }
  }
  const concurrency = Math.min(32, Math.max(1, Number(values.concurrency) || 4));
  const t0 = performance.now();
  const doc = await captureBaseline({
    scope,
    adminDir: values.admindir === '' ? '' : values.admindir,
    root: values.root,
    concurrency,
    depth: Math.min(32, Math.max(0, Number(values.depth) || 0)),
    maxFiles: Math.max(1, Number(values['max-files']) || 200_000),
  });
  await writeFile(values.out, JSON.stringify(doc, null, 1) + '\n', { mode: 0o600 });
  const covered = doc.files.filter((f) => f.package).length;
  process.stderr.write(
    t(
      `ベースラインを作成しました: ${values.out} — パッケージ ${doc.packages.length}、実行ファイル ${doc.files.length}(うちパッケージ由来 ${covered})、${Math.round(performance.now() - t0)} ms\n`,
      `baseline written: ${values.out} — ${doc.packages.length} packages, ${doc.files.length} executables (${covered} vouched for by dpkg), ${Math.round(performance.now() - t0)} ms\n`,
    ),
  );
  return 0;
}
