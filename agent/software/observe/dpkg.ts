/**
 * The dpkg database as seen by the agent: installed packages (status file), which package owns
 * which path (info/*.list) and the content dpkg installed there (info/*.md5sums) — fapolicyd's
 * "trust from the package database", for Debian. Parsing is pure; PackageDb does the reading.
 */
import { readdir, readFile, realpath } from 'node:fs/promises';
import { posix } from 'node:path';
import { inScope, normalizePath, type PackageOwner } from '../decide.js';

export interface InstalledPackage {
  name: string;
  version: string;
  arch: string;
}

/** Parses dpkg's status file; only packages whose state is "installed" count. */
export function parseDpkgStatus(text: string): Map<string, InstalledPackage> {
  const out = new Map<string, InstalledPackage>();
  for (const para of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of para.split('\n')) {
      if (line.startsWith(' ') || line.startsWith('\t')) continue; // continuation lines
      const i = line.indexOf(':');
      if (i <= 0) continue;
      fields.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
    }
    const name = fields.get('package');
    const version = fields.get('version');
    const status = fields.get('status') ?? '';
    if (!name || !version || !/\binstalled$/.test(status) || !/^\S+ ok installed$/.test(status)) continue;
    const arch = fields.get('architecture') ?? '';
    out.set(arch && arch !== 'all' ? `${name}:${arch}` : name, { name, version, arch });
  }
  return out;
}

export interface PackageChange {
  change: 'installed' | 'removed' | 'upgraded';
  name: string;
  version: string;
  arch: string;
  previousVersion?: string;
}

export function diffPackages(prev: ReadonlyMap<string, InstalledPackage>, next: ReadonlyMap<string, InstalledPackage>): PackageChange[] {
  const out: PackageChange[] = [];
  for (const [k, p] of next) {
    const old = prev.get(k);
    if (!old) out.push({ change: 'installed', name: p.name, version: p.version, arch: p.arch });
    else if (old.version !== p.version) out.push({ change: 'upgraded', name: p.name, version: p.version, arch: p.arch, previousVersion: old.version });
  }
  for (const [k, p] of prev) if (!next.has(k)) out.push({ change: 'removed', name: p.name, version: p.version, arch: p.arch });
  return out;
}

/** `info/<name>[:<arch>].md5sums`: "<md5>  <path relative to the root>" per line. */
export function parseMd5sums(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{32})\s+\*?(.+)$/.exec(line);
    if (m) out.set('/' + m[2]!.replace(/^\/+/, ''), m[1]!);
  }
  return out;
}

interface OwnedPath {
  name: string;
  version: string;
  md5: string | null;
}

export class PackageDb {
  packages = new Map<string, InstalledPackage>();
  private owners = new Map<string, OwnedPath>();
  private topCache = new Map<string, string>();

  constructor(
    readonly adminDir: string,
    readonly root: string,
    private readonly locations: readonly string[],
  ) {}

  async readStatus(): Promise<Map<string, InstalledPackage>> {
    return parseDpkgStatus(await readFile(posix.join(this.adminDir, 'status'), 'utf8'));
  }

  /** Maps a path dpkg lists to where it really is (root prefix, then the merged-/usr symlinks of the first segment). */
  private async canonical(listed: string): Promise<string | null> {
    const n = normalizePath('/' + listed.replace(/^\/+/, ''));
    if (n === null || n === '/') return null;
    const full = this.root === '/' ? n : posix.join(this.root, n);
    const rootDepth = this.root === '/' ? 0 : this.root.split('/').length - 1;
    const segs = full.split('/');
    const top = segs.slice(0, rootDepth + 2).join('/');
    let real = this.topCache.get(top);
    if (real === undefined) {
      real = await realpath(top).catch(() => top);
      this.topCache.set(top, real);
    }
    return real + full.slice(top.length);
  }

  /** Reloads packages and the owner index (only paths inside the watched locations are kept). */
  async load(): Promise<void> {
    const packages = await this.readStatus().catch(() => new Map<string, InstalledPackage>());
    const owners = new Map<string, OwnedPath>();
    const info = posix.join(this.adminDir, 'info');
    const files = new Set(await readdir(info).catch(() => [] as string[]));
    for (const [key, p] of packages) {
      const base = files.has(`${key}.list`) ? key : files.has(`${p.name}.list`) ? p.name : null;
      if (!base) continue;
      const list = await readFile(posix.join(info, `${base}.list`), 'utf8').catch(() => '');
      const md5 = files.has(`${base}.md5sums`) ? parseMd5sums(await readFile(posix.join(info, `${base}.md5sums`), 'utf8').catch(() => '')) : new Map<string, string>();
      for (const line of list.split('\n')) {
        if (!line.startsWith('/')) continue;
        const real = await this.canonical(line);
        if (real === null || !inScope(real, this.locations)) continue;
        owners.set(real, { name: p.name, version: p.version, md5: md5.get(normalizePath(line) ?? '') ?? null });
      }
    }
    this.packages = packages;
    this.owners = owners;
  }

  /** Who owns `path`, and does `md5` (of the content actually there) match what dpkg installed? */
  owner(path: string, md5: string): PackageOwner | null {
    const o = this.owners.get(path);
    if (!o) return null;
    return { name: o.name, version: o.version, intact: o.md5 !== null && o.md5 === md5 };
  }

  get ownedPaths(): number {
    return this.owners.size;
  }
}
