/**
 * Pure decisions for unauthorized software: policy × observation → verdict. No I/O here; the
 * observers (observe/) resolve paths, hash content and look up package ownership first.
 *
 * Order (judge): block rules → allow rules → approved baseline (files, then packages) → files an
 * administrator restored → the package database → not allowed.
 *
 * Trust from the package database (fapolicyd's rpm trust, for dpkg): an executable that dpkg
 * installed and whose content still matches dpkg's md5sums is trusted out of the box, so a new
 * terminal with no baseline and no rule reports a binary copied to /tmp (or /home, /dev/shm,
 * /opt, a modified /usr/bin binary) from its first start instead of watching nothing.
 *
 * Once a baseline is approved it REPLACES this trust rather than adding to it: the baseline is
 * the administrator's statement of which packages (name AND version) are approved, so a package
 * installed later that is not in it is not trusted merely because dpkg installed it (the install
 * itself is reported as software.installed, authorized=false). Without that, approving a baseline
 * could never narrow anything, and "refine" would only ever mean "allow more". Rules refine both
 * ways in either case (block rules first, then allow rules).
 */
import { posix } from 'node:path';
import type { SoftwarePolicy, SoftwareRule } from '../../protocol/policy-software.js';

/** The package dpkg says owns a path, and whether the content matches dpkg's md5sums. */
export interface PackageOwner {
  name: string;
  version: string;
  intact: boolean;
  /** dpkg lists the path but has no md5sum for it: its content cannot be checked (never trusted). */
  unverifiable?: boolean;
}

export interface Subject {
  /** The path as the kernel resolved it (/proc/PID/exe target, or realpath of a watched file). */
  path: string;
  sha256: string;
  /** The binary was unlinked (or replaced) after exec: its path no longer vouches for it. */
  deleted?: boolean;
  owner?: PackageOwner | null;
}

export type VerdictReason =
  | 'block_rule'
  | 'allow_rule'
  | 'baseline_file'
  | 'baseline_package'
  | 'restored'
  /** Trusted: dpkg installed it and the content matches dpkg's md5sums (no baseline approved). */
  | 'package_db'
  /** Not allowed: dpkg installed this path but the content differs from its md5sums (a modified system binary). */
  | 'package_modified'
  /** Not allowed: the file could not be read to judge it (fail closed). */
  | 'unreadable'
  | 'not_allowed';

export interface Verdict {
  allowed: boolean;
  reason: VerdictReason;
  /** Human-readable name of what decided: `rules[2] block sha256 …`, `baseline b1 file`, … */
  rule: string;
}

export interface LocalExemption {
  path: string;
  sha256: string;
}

export interface CompiledPolicy {
  rules: { index: number; rule: SoftwareRule }[];
  blockRules: { index: number; rule: SoftwareRule }[];
  allowRules: { index: number; rule: SoftwareRule }[];
  baselineId: string | null;
  baselineFiles: Map<string, Set<string>>; // path → allowed sha256s
  baselinePackages: Map<string, Set<string>>; // name → allowed versions
  exemptions: Set<string>; // `${path}\0${sha256}` restored from quarantine by an administrator
  /** Trust dpkg-installed, unmodified files: only while no baseline is approved (see the header). */
  trustPackageDb: boolean;
}

/**
 * Normalises an observed path so rules compare like with like: absolute, `.`/`..` folded, no
 * duplicate slashes. Returns null for what cannot be a real path (relative, NUL, empty) so path
 * rules never match it (fail closed).
 */
export function normalizePath(p: string): string | null {
  if (typeof p !== 'string' || p.length === 0 || p.length > 4096 || p.includes('\0') || !p.startsWith('/')) return null;
  const n = posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

/** True when `path` is `prefix` or lies below it on a segment boundary (/opt/app does not cover /opt/apple). */
export function underPrefix(path: string, prefix: string): boolean {
  if (prefix === '/') return path.startsWith('/');
  return path === prefix || path.startsWith(prefix + '/');
}

export function inScope(path: string, locations: readonly string[]): boolean {
  const n = normalizePath(path);
  return n !== null && locations.some((l) => underPrefix(n, l));
}

/**
 * `packageDb`: the platform has a package database that vouches for files (Linux: dpkg's lists and
 * md5sums). Without one (Windows, or no dpkg admin dir in the policy) nothing is trusted that way.
 */
export function compilePolicy(p: SoftwarePolicy, exemptions: readonly LocalExemption[] = [], opts: { packageDb?: boolean } = {}): CompiledPolicy {
  const rules = p.rules.map((rule, index) => ({ index, rule }));
  const baselineFiles = new Map<string, Set<string>>();
  const baselinePackages = new Map<string, Set<string>>();
  for (const f of p.baseline?.files ?? []) {
    const set = baselineFiles.get(f.path) ?? new Set<string>();
    set.add(f.sha256);
    baselineFiles.set(f.path, set);
  }
  for (const pk of p.baseline?.packages ?? []) {
    const set = baselinePackages.get(pk.name) ?? new Set<string>();
    set.add(pk.version);
    baselinePackages.set(pk.name, set);
  }
  return {
    rules,
    blockRules: rules.filter((r) => r.rule.action === 'block'),
    allowRules: rules.filter((r) => r.rule.action === 'allow'),
    baselineId: p.baseline?.id ?? null,
    baselineFiles,
    baselinePackages,
    exemptions: new Set(exemptions.map((e) => `${e.path}\0${e.sha256}`)),
    trustPackageDb: p.baseline === null && opts.packageDb === true,
  };
}

/** The rule text that names a package as dpkg knows it (what trusted the file, or what it was). */
export function describePackage(o: Pick<PackageOwner, 'name' | 'version'>): string {
  return `dpkg ${o.name}=${o.version}`;
}

export function describeRule(index: number, r: SoftwareRule): string {
  const what = r.kind === 'sha256' ? r.sha256 : r.kind === 'path' ? r.prefix : r.version ? `${r.name}=${r.version}` : r.name;
  return `rules[${index}] ${r.action} ${r.kind} ${what}`;
}

function ruleMatches(r: SoftwareRule, s: Subject, path: string | null): boolean {
  switch (r.kind) {
    case 'sha256':
      return s.sha256 === r.sha256;
    case 'path':
      // A deleted binary's path says where it was, not what it is: path rules may still block it,
      // but never allow it.
      if (path === null) return false;
      if (s.deleted && r.action === 'allow') return false;
      return underPrefix(path, r.prefix);
    case 'package': {
      const o = s.owner;
      if (!o || s.deleted) return false;
      if (o.name !== r.name || (r.version !== undefined && o.version !== r.version)) return false;
      // Package trust needs the content dpkg installed; blocking does not.
      return r.action === 'block' || o.intact;
    }
  }
}

/**
 * The decision, in this order: block rules (first match, they win in every mode), allow rules
 * (first match), the approved baseline (file = path AND content; package = name AND version AND
 * intact content), files an administrator restored from quarantine, the package database (dpkg
 * installed it, content intact; only while no baseline is approved), otherwise not allowed — and
 * the not-allowed rule text says what dpkg knows about the file, so a modified system binary reads
 * as such.
 */
export function judge(c: CompiledPolicy, s: Subject): Verdict {
  const path = normalizePath(s.path);
  const sha = typeof s.sha256 === 'string' ? s.sha256.toLowerCase() : '';
  const subject: Subject = { ...s, sha256: sha };
  for (const { index, rule } of c.blockRules) if (ruleMatches(rule, subject, path)) return { allowed: false, reason: 'block_rule', rule: describeRule(index, rule) };
  for (const { index, rule } of c.allowRules) if (ruleMatches(rule, subject, path)) return { allowed: true, reason: 'allow_rule', rule: describeRule(index, rule) };
  if (path !== null && sha && c.baselineFiles.get(path)?.has(sha)) return { allowed: true, reason: 'baseline_file', rule: `baseline ${c.baselineId} file` };
  const o = subject.owner;
  if (o && o.intact && !subject.deleted && c.baselinePackages.get(o.name)?.has(o.version)) {
    return { allowed: true, reason: 'baseline_package', rule: `baseline ${c.baselineId} package ${o.name}=${o.version}` };
  }
  if (path !== null && sha && c.exemptions.has(`${path}\0${sha}`)) return { allowed: true, reason: 'restored', rule: 'restored by administrator' };
  if (o && !subject.deleted) {
    if (o.intact && c.trustPackageDb) return { allowed: true, reason: 'package_db', rule: describePackage(o) };
    if (o.unverifiable) return { allowed: false, reason: 'not_allowed', rule: `default deny (${describePackage(o)} has no md5sum for this file)` };
    if (!o.intact) return { allowed: false, reason: 'package_modified', rule: `${describePackage(o)}: content differs from dpkg's md5sums` };
    return { allowed: false, reason: 'not_allowed', rule: `default deny (${describePackage(o)} is not in baseline ${c.baselineId})` };
  }
  return { allowed: false, reason: 'not_allowed', rule: 'default deny (not in allowlist)' };
}

/** Is an installed package allowed? Block package rules first, then allow package rules, then the baseline. */
export function judgePackage(c: CompiledPolicy, name: string, version: string): Verdict {
  const matches = (r: SoftwareRule) => r.kind === 'package' && r.name === name && (r.version === undefined || r.version === version);
  for (const { index, rule } of c.blockRules) if (matches(rule)) return { allowed: false, reason: 'block_rule', rule: describeRule(index, rule) };
  for (const { index, rule } of c.allowRules) if (matches(rule)) return { allowed: true, reason: 'allow_rule', rule: describeRule(index, rule) };
  if (c.baselinePackages.get(name)?.has(version)) return { allowed: true, reason: 'baseline_package', rule: `baseline ${c.baselineId} package ${name}=${version}` };
  // Out of the box dpkg is trusted: what it installs runs (the install is still reported).
  if (c.trustPackageDb) return { allowed: true, reason: 'package_db', rule: describePackage({ name, version }) };
  return { allowed: false, reason: 'not_allowed', rule: 'default deny (not in allowlist)' };
}

/** A process is allowed only if its executable AND the script an interpreter runs are allowed. */
export function combine(exe: Verdict, script: Verdict | null): { verdict: Verdict; decidedBy: 'exe' | 'script' } {
  if (!exe.allowed || script === null) return { verdict: exe, decidedBy: 'exe' };
  if (!script.allowed) return { verdict: script, decidedBy: 'script' };
  return { verdict: exe, decidedBy: 'exe' };
}

/** Matches interpreter names, tolerating version suffixes (python3.11, perl5.36.0). */
export function interpreterName(exePath: string, argv0: string | undefined, interpreters: readonly string[]): string | null {
  const candidates = [posix.basename(exePath.replace(/ \(deleted\)$/, '')), argv0 ? posix.basename(argv0) : ''];
  for (const b of candidates) {
    if (!b) continue;
    let best: string | null = null;
    for (const n of interpreters) if ((b === n || (b.startsWith(n) && /^[\d.]+$/.test(b.slice(n.length)))) && (!best || n.length > best.length)) best = n;
    if (best) return best;
  }
  return null;
}

// Options that consume the next argument, per interpreter family (so `python3 -W ignore x.py` finds x.py).
const ARG_OPTIONS: Record<string, string[]> = {
  sh: ['-o', '+o', '--rcfile', '--init-file'],
  python: ['-W', '-X', '--check-hash-based-pycs'],
  perl: ['-I', '-M', '-m', '-x'],
  node: ['-r', '--require', '--import', '--loader', '--experimental-loader', '--env-file', '--input-type', '--conditions', '-C', '--title'],
  ruby: ['-I', '-r', '-C', '-E', '-F'],
  php: ['-c', '-d', '-z'],
  ld: ['--library-path', '--preload', '--argv0', '--audit', '--inhibit-rpath'],
  awk: ['-v', '-F'],
  lua: ['-l'],
};
const INLINE_OPTIONS: Record<string, string[]> = {
  sh: ['-c'],
  python: ['-c', '-m', '-'],
  perl: ['-e', '-E'],
  node: ['-e', '--eval', '-p', '--print', '-'],
  ruby: ['-e'],
  php: ['-r'],
  awk: [],
  lua: ['-e', '-'],
  ld: [],
};

function family(name: string): string {
  if (['sh', 'dash', 'bash', 'zsh', 'ksh'].includes(name)) return 'sh';
  if (name.startsWith('python')) return 'python';
  if (name === 'nodejs' || name === 'node') return 'node';
  if (name.startsWith('ld-linux')) return 'ld';
  if (name.endsWith('awk')) return 'awk';
  if (name === 'tclsh' || name === 'wish') return 'tcl';
  return name;
}

export type ScriptArg = { kind: 'script'; path: string } | { kind: 'inline' } | { kind: 'none' };

/**
 * What an interpreter process runs, from its argv: the script file (to be judged like an
 * executable), inline code (-c/-e: nothing to hash), or nothing (interactive shell).
 */
export function scriptArgument(argv: readonly string[], interp: string, interpreters: readonly string[] = []): ScriptArg {
  if (interp === 'busybox') {
    // busybox APPLET args…: the applet decides.
    const applet = argv[1] ? posix.basename(argv[1]) : '';
    const inner = interpreters.includes(applet) && applet !== 'busybox' ? applet : null;
    return inner ? scriptArgument(argv.slice(1), inner, interpreters) : { kind: 'none' };
  }
  const fam = family(interp);
  const takesArg = ARG_OPTIONS[fam] ?? [];
  const inline = INLINE_OPTIONS[fam] ?? [];
  for (let i = 1; i < argv.length && i < 64; i++) {
    const a = argv[i]!;
    if (fam === 'awk' && a === '-f') return argv[i + 1] ? { kind: 'script', path: argv[i + 1]! } : { kind: 'none' };
    if (fam === 'awk' && a.startsWith('-f') && a.length > 2) return { kind: 'script', path: a.slice(2) };
    if (a === '--') return argv[i + 1] !== undefined ? { kind: 'script', path: argv[i + 1]! } : { kind: 'none' };
    if (inline.includes(a)) return { kind: 'inline' };
    if (fam === 'sh' && /^-[A-Za-z]*c[A-Za-z]*$/.test(a)) return { kind: 'inline' }; // bash -ec '…'
    if (fam === 'python' && /^-[A-Za-z]*c/.test(a)) return { kind: 'inline' };
    if ((fam === 'perl' || fam === 'ruby') && /^-[A-Za-z]*[eE]/.test(a)) return { kind: 'inline' };
    if (takesArg.includes(a)) {
      i++;
      continue;
    }
    if ((a.startsWith('-') || (fam === 'sh' && a.startsWith('+'))) && a.length > 1) continue;
    if (fam === 'awk') return { kind: 'inline' }; // first operand is the program text
    if (a === '-') return { kind: 'inline' };
    return { kind: 'script', path: a };
  }
  return { kind: 'none' };
}

/** Resolves a script argument against the process's working directory (pure string work). */
export function resolveScriptPath(arg: string, cwd: string | null): string | null {
  if (arg.includes('\0') || arg.length === 0) return null;
  if (arg.startsWith('/')) return normalizePath(arg);
  if (!cwd) return null;
  return normalizePath(posix.join(cwd, arg));
}

/** Is this file something the kernel (or an interpreter via #!) will run? */
export function looksExecutable(mode: number, head: Uint8Array): boolean {
  if ((mode & 0o111) !== 0) return true;
  if (head.length >= 4 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46) return true;
  return head.length >= 2 && head[0] === 0x23 && head[1] === 0x21;
}

/** `/proc/PID/exe` reads `/path (deleted)` once the binary is unlinked. */
export function parseExeLink(link: string): { path: string; deleted: boolean } {
  return link.endsWith(' (deleted)') ? { path: link.slice(0, -' (deleted)'.length), deleted: true } : { path: link, deleted: false };
}

export interface ActionInput {
  allowed: boolean;
  mode: SoftwarePolicy['mode'];
  monitorOnly: boolean;
  /** Only things inside the watched locations are ever acted on. */
  inScope: boolean;
}

/** Whether to stop what was found: only in enforce mode, only in scope, never when enrolled monitor-only. */
export function shouldEnforce(a: ActionInput): boolean {
  return !a.allowed && a.inScope && a.mode === 'enforce' && !a.monitorOnly;
}

/** Never kill the init process, the agent itself or its ancestors (a test runner, the service manager). */
export function mayKill(pid: number, protectedPids: ReadonlySet<number>): boolean {
  return Number.isSafeInteger(pid) && pid > 1 && !protectedPids.has(pid);
}
