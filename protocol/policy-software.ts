import { boolErrors, intErrors, isObject, oneOfErrors, unknownKeys } from './validate.js';

/**
 * Unauthorized-software section of the signed policy (issue: unauthorized software).
 * Anchors: Santa (monitor/enforce, binary and path rules) and fapolicyd (trust from the package
 * database). Decision order (agent/software/decide.ts): block rules first (they win in every
 * mode), then allow rules, the approved baseline, locally restored files, then — only while no
 * baseline is approved — what dpkg installed with its content intact; anything else inside a
 * watched location is unauthorized.
 */
export type SoftwareRule =
  /** Santa-style binary rule: this exact content, wherever it lies. */
  | { kind: 'sha256'; action: 'allow' | 'block'; sha256: string; comment?: string }
  /** Everything at or below this absolute, normalised path (segment boundary: /opt/app ≠ /opt/apple). */
  | { kind: 'path'; action: 'allow' | 'block'; prefix: string; comment?: string }
  /** Files dpkg lists for this package (optionally only this version), content checked against dpkg's md5sums. */
  | { kind: 'package'; action: 'allow' | 'block'; name: string; version?: string; comment?: string };

export interface BaselinePackage {
  name: string;
  version: string;
  arch?: string;
}

export interface BaselineFile {
  path: string;
  sha256: string;
  size?: number;
  /** Set when dpkg lists the file and its content matches dpkg's md5sums (covered by package trust). */
  package?: string;
}

/** What `sekimori-agent baseline --out FILE` writes (the inventory of a reference terminal). */
export interface SoftwareBaselineDocument {
  format: 'sekimori-software-baseline/1';
  host: string;
  os: string;
  createdAt: string;
  scope: string[];
  packages: BaselinePackage[];
  files: BaselineFile[];
}

/**
 * The approved baseline as carried in the signed policy: packages with versions (trusted through
 * dpkg's file lists + md5sums) and the files no package vouches for, bound to path AND content
 * (fapolicyd-style: a copy of a baseline binary elsewhere is not trusted).
 */
export interface SoftwareBaselineRef {
  id: string;
  digest: string; // sha256 of the imported baseline document as uploaded
  host: string;
  approvedBy: string;
  approvedAt: string;
  packages: BaselinePackage[];
  files: { path: string; sha256: string }[];
}

export interface SoftwarePolicy {
  mode: 'enforce' | 'monitor';
  rules: SoftwareRule[];
  baseline: SoftwareBaselineRef | null;
  /** Where executables are watched (chokidar) and the only places whose processes are judged. */
  locations: string[];
  /** How deep below each location the file watcher descends. */
  watchDepth: number;
  /** /proc scan period. */
  scanIntervalMs: number;
  /** Basenames of interpreters whose script argument is judged too (python3 /tmp/x.py). */
  interpreters: string[];
  packages: {
    /** dpkg database (status, info/*.list, info/*.md5sums); empty string = no package watch. */
    adminDir: string;
    /** Root the listed package paths are relative to (dpkg --instdir / --root). */
    root: string;
  };
  quarantine: {
    /** Move unauthorized new files away in enforce mode. */
    enabled: boolean;
    /** Root-only folder; empty = STATE/software/quarantine. */
    dir: string;
  };
  /** How often the agent asks the console for restore requests (and reports its quarantine). */
  syncSeconds: number;
  /** Pre-exec enforcement (Linux, fanotify): a refused program never starts. Optional on the wire. */
  preExec: PreExecPolicy;
}

/**
 * The pre-exec helper (agent/software/linux/preexec/): in enforce mode it answers every exec on the
 * marked mounts before the program runs. `fallback` applies when the agent does not answer within
 * `timeoutMs` (or is gone): `deny` by default, because an attacker who can stall the agent (a flood
 * of large unknown files) must not thereby run anything; files already judged keep their verdict.
 */
export interface PreExecPolicy {
  enabled: boolean;
  fallback: 'allow' | 'deny';
  timeoutMs: number;
  /** Paths whose mounts are marked; empty = the mounts of `locations`. */
  marks: string[];
}

/**
 * Out of the box (dpkg trusted, no baseline) these are judged: the system binary folders, so a
 * modified /usr/bin binary is caught (/bin and /sbin are the same folders on merged-/usr Debian
 * and separate ones on older installs), hand-installed software (/usr/local, /opt), and every
 * place a user can write and execute from (homes, the temp folders, /dev/shm, /run/user).
 */
export const DEFAULT_SOFTWARE_LOCATIONS = [
  '/usr/bin',
  '/usr/sbin',
  '/bin',
  '/sbin',
  '/usr/libexec',
  '/usr/local',
  '/opt',
  '/home',
  '/root',
  '/tmp',
  '/var/tmp',
  '/dev/shm',
  '/run/user',
];

export const DEFAULT_INTERPRETERS = [
  'sh', 'dash', 'bash', 'zsh', 'ksh', 'busybox',
  'python', 'python3', 'perl', 'ruby', 'node', 'nodejs', 'php', 'lua', 'tclsh', 'wish', 'awk', 'gawk', 'mawk',
  'ld-linux-x86-64.so.2', 'ld-linux.so.2', 'ld-linux-aarch64.so.1',
];

export function defaultSoftwarePolicy(): SoftwarePolicy {
  return {
    mode: 'monitor',
    rules: [],
    baseline: null,
    locations: [...DEFAULT_SOFTWARE_LOCATIONS],
    watchDepth: 4,
    scanIntervalMs: 250,
    interpreters: [...DEFAULT_INTERPRETERS],
    packages: { adminDir: '/var/lib/dpkg', root: '/' },
    quarantine: { enabled: true, dir: '' },
    syncSeconds: 10,
    preExec: { enabled: true, fallback: 'deny', timeoutMs: 1000, marks: [] },
  };
}

const SHA256_RE = /^[0-9a-f]{64}$/;
// Debian policy: package names are lowercase alphanumerics plus + - . (min 2 chars).
const PKG_RE = /^[a-z0-9][a-z0-9+.-]{0,127}$/;
const VERSION_RE = /^[A-Za-z0-9.+~:-]{1,128}$/;
const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** An absolute path with no empty, `.` or `..` segments and no NUL: what rule prefixes must look like. */
export function isCleanAbsolutePath(p: unknown): p is string {
  if (typeof p !== 'string' || p.length === 0 || p.length > 4096 || p.includes('\0')) return false;
  if (p === '/') return true;
  if (!p.startsWith('/') || p.endsWith('/')) return false;
  return p
    .slice(1)
    .split('/')
    .every((s) => s !== '' && s !== '.' && s !== '..');
}

function strErrors(x: unknown, where: string, max = 1024): string[] {
  return typeof x === 'string' && x.length <= max ? [] : [`${where}: must be a string of at most ${max} characters`];
}

export function softwareRuleErrors(r: unknown, where: string): string[] {
  if (!isObject(r)) return [`${where}: must be an object`];
  const errors = [...oneOfErrors(r.action, `${where}.action`, ['allow', 'block'] as const)];
  if (r.comment !== undefined) errors.push(...strErrors(r.comment, `${where}.comment`, 512));
  switch (r.kind) {
    case 'sha256':
      errors.push(...unknownKeys(r, ['kind', 'action', 'sha256', 'comment'], where));
      if (typeof r.sha256 !== 'string' || !SHA256_RE.test(r.sha256)) errors.push(`${where}.sha256: must be 64 lowercase hex digits`);
      break;
    case 'path':
      errors.push(...unknownKeys(r, ['kind', 'action', 'prefix', 'comment'], where));
      if (!isCleanAbsolutePath(r.prefix)) errors.push(`${where}.prefix: must be an absolute path without ., .. or trailing /`);
      break;
    case 'package':
      errors.push(...unknownKeys(r, ['kind', 'action', 'name', 'version', 'comment'], where));
      if (typeof r.name !== 'string' || !PKG_RE.test(r.name)) errors.push(`${where}.name: must be a Debian package name`);
      if (r.version !== undefined && (typeof r.version !== 'string' || !VERSION_RE.test(r.version))) errors.push(`${where}.version: must be a Debian version`);
      break;
    default:
      errors.push(`${where}.kind: must be one of sha256, path, package`);
  }
  return errors;
}

function packageErrors(p: unknown, where: string): string[] {
  if (!isObject(p)) return [`${where}: must be an object`];
  const errors = unknownKeys(p, ['name', 'version', 'arch'], where);
  if (typeof p.name !== 'string' || !PKG_RE.test(p.name)) errors.push(`${where}.name: must be a Debian package name`);
  if (typeof p.version !== 'string' || !VERSION_RE.test(p.version)) errors.push(`${where}.version: must be a Debian version`);
  if (p.arch !== undefined && (typeof p.arch !== 'string' || !/^[a-z0-9-]{1,32}$/.test(p.arch))) errors.push(`${where}.arch: must be an architecture name`);
  return errors;
}

function arrayErrors(x: unknown, where: string, max: number, each: (v: unknown, w: string) => string[]): string[] {
  if (!Array.isArray(x)) return [`${where}: must be an array`];
  if (x.length > max) return [`${where}: at most ${max} entries`];
  const errors: string[] = [];
  for (let i = 0; i < x.length && errors.length < 50; i++) errors.push(...each(x[i], `${where}[${i}]`));
  return errors;
}

const MAX_BASELINE_FILES = 200_000;
const MAX_BASELINE_PACKAGES = 50_000;

export function baselineRefErrors(b: unknown, where: string): string[] {
  if (b === null) return [];
  if (!isObject(b)) return [`${where}: must be an object or null`];
  const errors = unknownKeys(b, ['id', 'digest', 'host', 'approvedBy', 'approvedAt', 'packages', 'files'], where);
  if (typeof b.id !== 'string' || !ID_RE.test(b.id)) errors.push(`${where}.id: must be 1-64 letters, digits, _ or -`);
  if (typeof b.digest !== 'string' || !SHA256_RE.test(b.digest)) errors.push(`${where}.digest: must be 64 lowercase hex digits`);
  errors.push(...strErrors(b.host, `${where}.host`, 256), ...strErrors(b.approvedBy, `${where}.approvedBy`, 256), ...strErrors(b.approvedAt, `${where}.approvedAt`, 64));
  errors.push(...arrayErrors(b.packages, `${where}.packages`, MAX_BASELINE_PACKAGES, packageErrors));
  errors.push(
    ...arrayErrors(b.files, `${where}.files`, MAX_BASELINE_FILES, (f, w) => {
      if (!isObject(f)) return [`${w}: must be an object`];
      const e = unknownKeys(f, ['path', 'sha256'], w);
      if (!isCleanAbsolutePath(f.path)) e.push(`${w}.path: must be a clean absolute path`);
      if (typeof f.sha256 !== 'string' || !SHA256_RE.test(f.sha256)) e.push(`${w}.sha256: must be 64 lowercase hex digits`);
      return e;
    }),
  );
  return errors;
}

/** Checks a baseline inventory file before the console imports it. */
export function baselineDocumentErrors(x: unknown, where = 'baseline'): string[] {
  if (!isObject(x)) return [`${where}: must be an object`];
  const errors = unknownKeys(x, ['format', 'host', 'os', 'createdAt', 'scope', 'packages', 'files'], where);
  if (x.format !== 'sekimori-software-baseline/1') errors.push(`${where}.format: must be sekimori-software-baseline/1`);
  errors.push(...strErrors(x.host, `${where}.host`, 256), ...strErrors(x.os, `${where}.os`, 256), ...strErrors(x.createdAt, `${where}.createdAt`, 64));
  errors.push(...arrayErrors(x.scope, `${where}.scope`, 256, (p, w) => (isCleanAbsolutePath(p) ? [] : [`${w}: must be a clean absolute path`])));
  errors.push(...arrayErrors(x.packages, `${where}.packages`, MAX_BASELINE_PACKAGES, packageErrors));
  errors.push(
    ...arrayErrors(x.files, `${where}.files`, MAX_BASELINE_FILES, (f, w) => {
      if (!isObject(f)) return [`${w}: must be an object`];
      const e = unknownKeys(f, ['path', 'sha256', 'size', 'package'], w);
      if (!isCleanAbsolutePath(f.path)) e.push(`${w}.path: must be a clean absolute path`);
      if (typeof f.sha256 !== 'string' || !SHA256_RE.test(f.sha256)) e.push(`${w}.sha256: must be 64 lowercase hex digits`);
      if (f.size !== undefined && !(typeof f.size === 'number' && Number.isSafeInteger(f.size) && f.size >= 0)) e.push(`${w}.size: must be a non-negative integer`);
      if (f.package !== undefined && (typeof f.package !== 'string' || !PKG_RE.test(f.package))) e.push(`${w}.package: must be a Debian package name`);
      return e;
    }),
  );
  return errors;
}

/**
 * Fills members an older or hand-written policy leaves out with the defaults (only `mode` is
 * required on the wire), so the agent always works on a complete section.
 */
export function normalizeSoftwarePolicy(x: Partial<SoftwarePolicy> & Pick<SoftwarePolicy, 'mode'>): SoftwarePolicy {
  const d = defaultSoftwarePolicy();
  return {
    ...d,
    ...x,
    packages: { ...d.packages, ...(x.packages ?? {}) },
    quarantine: { ...d.quarantine, ...(x.quarantine ?? {}) },
    preExec: { ...d.preExec, ...(x.preExec ?? {}) },
  };
}

const KEYS = ['mode', 'rules', 'baseline', 'locations', 'watchDepth', 'scanIntervalMs', 'interpreters', 'packages', 'quarantine', 'syncSeconds', 'preExec'];

export function softwarePolicyErrors(x: unknown, where = 'software'): string[] {
  if (!isObject(x)) return [`${where}: must be an object`];
  const errors = [...unknownKeys(x, KEYS, where), ...oneOfErrors(x.mode, `${where}.mode`, ['enforce', 'monitor'] as const)];
  if ('rules' in x) errors.push(...arrayErrors(x.rules, `${where}.rules`, 10_000, softwareRuleErrors));
  if ('baseline' in x) errors.push(...baselineRefErrors(x.baseline, `${where}.baseline`));
  if ('locations' in x) errors.push(...arrayErrors(x.locations, `${where}.locations`, 256, (p, w) => (isCleanAbsolutePath(p) && p !== '/' ? [] : [`${w}: must be a clean absolute path other than /`])));
  if ('watchDepth' in x) errors.push(...intErrors(x.watchDepth, `${where}.watchDepth`, 0, 16));
  if ('scanIntervalMs' in x) errors.push(...intErrors(x.scanIntervalMs, `${where}.scanIntervalMs`, 50, 60_000));
  if ('interpreters' in x)
    errors.push(...arrayErrors(x.interpreters, `${where}.interpreters`, 256, (n, w) => (typeof n === 'string' && /^[A-Za-z0-9._+-]{1,64}$/.test(n) ? [] : [`${w}: must be a file name`])));
  if ('packages' in x) {
    const p = x.packages;
    if (!isObject(p)) errors.push(`${where}.packages: must be an object`);
    else {
      errors.push(...unknownKeys(p, ['adminDir', 'root'], `${where}.packages`));
      if (p.adminDir !== undefined && !(p.adminDir === '' || isCleanAbsolutePath(p.adminDir))) errors.push(`${where}.packages.adminDir: must be empty or a clean absolute path`);
      if (p.root !== undefined && !isCleanAbsolutePath(p.root)) errors.push(`${where}.packages.root: must be a clean absolute path`);
    }
  }
  if ('quarantine' in x) {
    const q = x.quarantine;
    if (!isObject(q)) errors.push(`${where}.quarantine: must be an object`);
    else {
      errors.push(...unknownKeys(q, ['enabled', 'dir'], `${where}.quarantine`), ...(q.enabled === undefined ? [] : boolErrors(q.enabled, `${where}.quarantine.enabled`)));
      if (q.dir !== undefined && !(q.dir === '' || (isCleanAbsolutePath(q.dir) && q.dir !== '/'))) errors.push(`${where}.quarantine.dir: must be empty or a clean absolute path`);
    }
  }
  if ('syncSeconds' in x) errors.push(...intErrors(x.syncSeconds, `${where}.syncSeconds`, 1, 3600));
  if ('preExec' in x) {
    const p = x.preExec;
    if (!isObject(p)) errors.push(`${where}.preExec: must be an object`);
    else {
      errors.push(...unknownKeys(p, ['enabled', 'fallback', 'timeoutMs', 'marks'], `${where}.preExec`));
      if (p.enabled !== undefined) errors.push(...boolErrors(p.enabled, `${where}.preExec.enabled`));
      if (p.fallback !== undefined) errors.push(...oneOfErrors(p.fallback, `${where}.preExec.fallback`, ['allow', 'deny'] as const));
      if (p.timeoutMs !== undefined) errors.push(...intErrors(p.timeoutMs, `${where}.preExec.timeoutMs`, 50, 10_000));
      if (p.marks !== undefined) errors.push(...arrayErrors(p.marks, `${where}.preExec.marks`, 64, (m, w) => (isCleanAbsolutePath(m) ? [] : [`${w}: must be a clean absolute path`])));
    }
  }
  return errors;
}
