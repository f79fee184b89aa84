/**
 * The dpkg database as seen by the agent: installed packages (status file), which package owns
 * which path (info/*.list) and the content dpkg installed there (info/*.md5sums) — fapolicyd's
 * "trust from the package database", for Debian. Parsing is pure; PackageDb does the reading.
 */
import { readdirSync, realpathSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { normalizePath, underPrefix, type PackageOwner } from '../decide.js';

export interface InstalledPackage {
  name: string;
  version: string;
  arch: string;
}

/**
 * A copy of a string that shares no memory with the text it was cut from: V8 keeps a substring
 * as a view of its parent, so one version or md5 kept from a file kept the whole file (the status
 * file and every md5sums file read stayed in the agent's heap). Used for what the index keeps.
 */
export function detach(s: string): string {
  return s.length < 13 ? s : Buffer.from(s, 'utf8').toString('utf8');
}

// States whose files dpkg has fully unpacked (with that version's md5sums in info/): during an
// upgrade a package is "unpacked"/"half-configured" while its maintainer scripts run its new
// binaries, which must not read as modified system binaries. half-installed is content in flux.
const FILES_ON_DISK = /^\S+ ok (installed|unpacked|half-configured|triggers-awaited|triggers-pending)$/;

/**
 * Parses dpkg's status file; only packages whose state is "installed" count (the inventory), or
 * with `filesOnDisk` every package whose files are fully unpacked (whose files dpkg vouches for).
 */
export function parseDpkgStatus(text: string, opts: { filesOnDisk?: boolean } = {}): Map<string, InstalledPackage> {
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
    if (!name || !version) continue;
    if (opts.filesOnDisk ? !FILES_ON_DISK.test(status) : !/^\S+ ok installed$/.test(status)) continue;
    const arch = fields.get('architecture') ?? '';
    out.set(detach(arch && arch !== 'all' ? `${name}:${arch}` : name), { name: detach(name), version: detach(version), arch: detach(arch) });
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

/**
 * dpkg's `diversions` file: triplets of lines (path as packages list it, where it lives instead,
 * the diverting package or ":" for a local diversion). /usr/bin/pg_config of libpq-dev lives at
 * /usr/bin/pg_config.libpq-dev when postgresql-common diverts it.
 */
export function parseDiversions(text: string): Map<string, { to: string; by: string }> {
  const out = new Map<string, { to: string; by: string }>();
  const l = text.split('\n');
  for (let i = 0; i + 2 < l.length && i < 300_000; i += 3) {
    const from = normalizePath(l[i]!);
    const to = normalizePath(l[i + 1]!);
    if (from && to) out.set(from, { to, by: l[i + 2]! });
  }
  return out;
}

function* lines(text: string): Generator<string> {
  let i = 0;
  while (i < text.length) {
    let j = text.indexOf('\n', i);
    if (j === -1) j = text.length;
    yield text.slice(i, j);
    i = j + 1;
  }
}

/** `info/<name>[:<arch>].md5sums`: "<md5>  <path relative to the root>" per line; `only` keeps just those paths. */
export function parseMd5sums(text: string, only?: ReadonlyMap<string, unknown>): Map<string, string> {
  const out = new Map<string, string>();
  if (only && only.size <= 256 && text.length > 0) {
    // A few wanted paths in a long file: native searches beat parsing every line. dpkg writes
    // "<md5>  <path>\n"; a listed directory has no line (and stays without an md5).
    const t = text.endsWith('\n') ? text : text + '\n';
    for (const path of only.keys()) {
      const at = t.indexOf(`  ${path.slice(1)}\n`);
      if (at < 32 || (at > 32 && t.charCodeAt(at - 33) !== 10)) continue;
      const md5 = t.slice(at - 32, at);
      if (/^[0-9a-f]{32}$/.test(md5)) out.set(path, md5);
    }
    // Nothing found in a file written the usual way: the wanted paths are folders or symlinks
    // (no md5sum). Only a file written another way ('*' marker, one space) is parsed line by line.
    if (out.size > 0 || /^[0-9a-f]{32}  [^\s*]/.test(t)) return out;
  }
  for (const line of lines(text)) {
    const m = /^([0-9a-f]{32})\s+\*?(.+)$/.exec(line);
    if (!m) continue;
    const raw = '/' + m[2]!.replace(/^\/+/, '');
    // dpkg writes normalised paths: normalising every line of every file costs more than the read.
    const path = only?.has(raw) ? raw : /\/\/|\/\.|\/$/.test(raw) ? normalizePath(raw) : raw;
    if (path !== null && (!only || only.has(path))) out.set(path, m[1]!);
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
  private canonical(listed: string): string | null {
    // dpkg lists normalised paths; only odd ones pay for normalising (150k lines on a desktop).
    const n = listed.includes('//') || listed.includes('/.') || listed.endsWith('/') ? normalizePath(listed) : listed;
    if (n === null || n === '/') return null;
    const full = this.root === '/' ? n : posix.join(this.root, n);
    const rootDepth = this.root === '/' ? 0 : this.root.split('/').length - 1;
    let cut = 0;
    for (let i = 0; i < rootDepth + 1 && cut !== -1; i++) cut = full.indexOf('/', cut + 1);
    const top = cut === -1 ? full : full.slice(0, cut);
    let real = this.topCache.get(top);
    if (real === undefined) {
      try {
        real = realpathSync(top);
      } catch {
        real = top;
      }
      // Bounded: only the first segments of listed paths land here (/bin, /usr, /etc, …).
      if (this.topCache.size < 4096) this.topCache.set(top, real);
    }
    return real + full.slice(top.length);
  }

  /**
   * A prefilter over whole .list files (the regex engine is native, the per-line work is not):
   * lines that start with a watched location as dpkg would list it — relative to the root, and
   * through the root's top-level symlinks (/bin → /usr/bin on merged-/usr). canonical() and the
   * prefix check still decide; this only skips the lines that cannot matter.
   */
  private candidateLines(): RegExp {
    const rootP = this.root === '/' ? '' : this.root;
    const links: [string, string][] = [];
    let names: string[] = [];
    try {
      names = readdirSync(this.root).slice(0, 4096);
    } catch {
      names = [];
    }
    for (const n of names) {
      try {
        const real = realpathSync(posix.join(this.root, n));
        if (real !== posix.join(this.root, n)) links.push(['/' + n, real]);
      } catch {
        // dangling: nothing lives there
      }
    }
    const out = new Set<string>();
    for (const l of this.locations) {
      if (rootP && !underPrefix(l, rootP)) continue;
      out.add(rootP ? l.slice(rootP.length) || '/' : l);
      for (const [listed, real] of links) {
        if (underPrefix(l, real)) out.add(listed + l.slice(real.length));
        else if (underPrefix(real, l)) out.add(listed);
      }
    }
    if (out.has('/')) return /^\/[^\n]*$/gm;
    if (!out.size) return /(?!)/g;
    const alt = [...out].map((x) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
    return new RegExp(`^(?:${alt})(?:/[^\n]*)?$`, 'gm');
  }

  /**
   * Reloads packages and the owner index. Only paths inside the watched locations are kept, and a
   * package's md5sums are read only when it owns such a path: on a desktop Debian most of the
   * 30 MB in info/ is documentation and libraries nobody here judges.
   */
  async load(): Promise<void> {
    const stamp = this.stamp();
    const statusText = await readFile(posix.join(this.adminDir, 'status'), 'utf8');
    const packages = parseDpkgStatus(statusText);
    const withFiles = parseDpkgStatus(statusText, { filesOnDisk: true });
    const owners = new Map<string, OwnedPath>();
    const info = posix.join(this.adminDir, 'info');
    const files = new Set(await readdir(info).catch(() => [] as string[]));
    const candidates = this.candidateLines();
    const diversions = parseDiversions(await readFile(posix.join(this.adminDir, 'diversions'), 'utf8').catch(() => ''));
    for (const [key, p] of withFiles) {
      const base = files.has(`${key}.list`) ? key : files.has(`${p.name}.list`) ? p.name : null;
      if (!base) continue;
      const list = await readFile(posix.join(info, `${base}.list`), 'utf8').catch(() => '');
      let wanted: Map<string, string> | null = null; // listed path → real path
      for (const m of list.matchAll(candidates)) {
        const listed = normalizePath(m[0]);
        if (listed === null) continue;
        // Diverted by another package: this package's file lives at the diversion's target.
        const div = diversions.get(listed);
        const real = this.canonical(div && div.by !== p.name ? div.to : listed);
        if (real === null || !this.locations.some((l) => underPrefix(real, l))) continue;
        (wanted ??= new Map()).set(listed, real);
      }
      if (!wanted) continue;
      const md5 = files.has(`${base}.md5sums`) ? parseMd5sums(await readFile(posix.join(info, `${base}.md5sums`), 'utf8').catch(() => ''), wanted) : new Map<string, string>();
      for (const [listed, real] of wanted) {
        const sum = md5.get(listed);
        owners.set(detach(real), { name: p.name, version: p.version, md5: sum === undefined ? null : detach(sum) });
      }
    }
    this.packages = packages;
    this.owners = owners;
    this.loadedStamp = stamp;
  }

  private loadedStamp = '';

  /** What changes when dpkg changes anything: the status file and the info folder (files are renamed in). */
  private stamp(): string {
    const m = (p: string) => {
      try {
        const st = statSync(p);
        return `${st.mtimeMs}:${st.ctimeMs}:${st.ino}`;
      } catch {
        return '-';
      }
    };
    return `${m(posix.join(this.adminDir, 'status'))}|${m(posix.join(this.adminDir, 'info'))}`;
  }

  /** dpkg changed something since the index was loaded (two stats: cheap enough per doubtful verdict). */
  stale(): boolean {
    return this.stamp() !== this.loadedStamp;
  }

  /** Who owns `path`, and does `md5` (of the content actually there) match what dpkg installed? */
  owner(path: string, md5: string): PackageOwner | null {
    const o = this.owners.get(path);
    if (!o) return null;
    if (o.md5 === null) return { name: o.name, version: o.version, intact: false, unverifiable: true };
    return { name: o.name, version: o.version, intact: o.md5 === md5 };
  }

  get ownedPaths(): number {
    return this.owners.size;
  }
}
