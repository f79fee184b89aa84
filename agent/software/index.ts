/**
 * Unauthorized-software capability: observe (file watcher, /proc scan, dpkg status) → decide
 * (decide.ts, pure) → record (ctx.emit, durable) → act (linux/actions.ts, enforce mode only).
 */
import { renameSync, mkdirSync, openSync, readSync, closeSync, readFileSync, writeFileSync, realpathSync, lstatSync, statSync, watch as fsWatch, type FSWatcher as NodeWatcher } from 'node:fs';
import { join } from 'node:path';
import type { AgentContext, Capability } from '../capability.js';
import type { PolicyDocument } from '../../protocol/policy.js';
import { normalizeSoftwarePolicy, type SoftwarePolicy } from '../../protocol/policy-software.js';
import { safeText } from '../../protocol/text.js';
import type { SoftwareSyncRequest, SoftwareSyncResponse } from '../../protocol/api.js';
import {
  combine,
  compilePolicy,
  inScope,
  interpreterName,
  judge,
  judgePackage,
  looksExecutable,
  mayKill,
  parseExeLink,
  resolveScriptPath,
  scriptArgument,
  shouldEnforce,
  type CompiledPolicy,
  type LocalExemption,
  type Verdict,
} from './decide.js';
import { diffPackages, PackageDb, type InstalledPackage } from './observe/dpkg.js';
import { FileWatcher } from './observe/files.js';
import { Hasher, identityKey, type Digest } from './observe/hash.js';
import { ancestry, ProcScanner, readArgv, readCwd, readUid, type ProcSeen } from './observe/proc.js';
import { ensureQuarantineDir, killIfSame, listQuarantine, quarantineFile, restoreFile, UserNames, type QuarantineRecord } from './linux/actions.js';

export interface SoftwareOptions {
  /** Where /proc is (tests point it elsewhere). */
  procRoot?: string;
}

/** Wire shape of POST /api/agent/software/sync (agent → console). */

export interface SoftwareStats {
  active: boolean;
  watching: boolean;
  scans: number;
  scanMs: number;
  hashed: number;
  cacheHits: number;
  unauthorizedProcesses: number;
  unauthorizedFiles: number;
  killed: number;
  quarantined: number;
  ownedPaths: number;
}

function readHead(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(4);
    const n = readSync(fd, b, 0, 4, 0);
    return b.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

export class SoftwareCapability implements Capability {
  readonly name = 'software';
  private ctx!: AgentContext;
  private policy!: SoftwarePolicy;
  private compiled!: CompiledPolicy;
  private dir = '';
  private readonly procRoot: string;
  private readonly hasher = new Hasher(4);
  private readonly users = new UserNames();
  private pkgDb: PackageDb | null = null;
  private scanner: ProcScanner | null = null;
  private files: FileWatcher | null = null;
  private dpkgWatch: NodeWatcher | null = null;
  private dpkgTimer: NodeJS.Timeout | null = null;
  private dpkgPoll: NodeJS.Timeout | null = null;
  private syncTimer: NodeJS.Timeout | null = null;
  private protectedPids = new Set<number>();
  private exemptions: LocalExemption[] = [];
  private reportedFiles = new Map<string, string>(); // path → sha256 last reported
  private restoreResults: SoftwareSyncRequest['results'] = [];
  private watchKey = '';
  private stopped = false;
  private pending = new Set<Promise<unknown>>();
  readonly stats = { unauthorizedProcesses: 0, unauthorizedFiles: 0, killed: 0, quarantined: 0 };

  constructor(opts: SoftwareOptions = {}) {
    this.procRoot = opts.procRoot ?? '/proc';
  }

  async start(ctx: AgentContext, policy: PolicyDocument): Promise<void> {
    this.ctx = ctx;
    this.dir = join(ctx.stateDir, 'software');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.exemptions = this.loadJson<LocalExemption[]>('restored.json', []);
    this.protectedPids = ancestry(this.procRoot, process.pid);
    this.setPolicy(policy);
    ctx.local.route('GET', '/software/status', () => ({ status: 200, body: { mode: this.policy.mode, stats: this.getStats() } }));
    ctx.local.route('GET', '/software/quarantine', () => ({ status: 200, body: { items: listQuarantine(this.quarantineDir()) } }));
    ctx.local.route('POST', '/software/restore', (req) => {
      const id = (req.body as { id?: unknown } | null)?.id;
      if (typeof id !== 'string') return { status: 400, body: { error: 'bad_request', message: 'id required' } };
      const r = this.restore(id, 'local');
      return { status: r.ok ? 200 : 409, body: r };
    });
    await this.startObservers();
    this.syncTimer = setInterval(() => void this.track(this.sync()), this.policy.syncSeconds * 1000);
    this.syncTimer.unref?.();
  }

  async applyPolicy(policy: PolicyDocument): Promise<void> {
    this.setPolicy(policy);
    if (this.observerKey() !== this.watchKey) {
      await this.stopObservers();
      await this.startObservers();
    }
    if (this.syncTimer) {
      clearInterval(this.syncTimer);
      this.syncTimer = setInterval(() => void this.track(this.sync()), this.policy.syncSeconds * 1000);
      this.syncTimer.unref?.();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.syncTimer) clearInterval(this.syncTimer);
    await this.stopObservers();
    await Promise.allSettled([...this.pending]);
  }

  getStats(): SoftwareStats {
    return {
      active: this.scanner !== null,
      watching: this.watching,
      scans: this.scanner?.ticks ?? 0,
      scanMs: Math.round((this.scanner?.totalMs ?? 0) * 10) / 10,
      hashed: this.hasher.hashed,
      cacheHits: this.hasher.hits,
      ...this.stats,
      ownedPaths: this.pkgDb?.ownedPaths ?? 0,
    };
  }

  // ---- policy ------------------------------------------------------------------------------

  private setPolicy(policy: PolicyDocument): void {
    this.policy = normalizeSoftwarePolicy(policy.software);
    this.compiled = compilePolicy(this.policy, this.exemptions);
    this.reportedFiles.clear(); // a new policy may judge the same files differently
  }

  private observerKey(): string {
    const p = this.policy;
    return JSON.stringify([this.configured(), p.locations, p.watchDepth, p.scanIntervalMs, p.packages, p.quarantine.dir]);
  }

  private quarantineDir(): string {
    return this.policy.quarantine.dir || join(this.dir, 'quarantine');
  }

  // ---- observers ---------------------------------------------------------------------------

  /**
   * With no allowlist at all (no baseline approved, no rule) every executable would be
   * "unauthorized": reporting all of them helps nobody and enforcing would stop the terminal.
   * Until an administrator approves a baseline or writes a rule, only package changes are watched.
   */
  private configured(): boolean {
    return this.policy.baseline !== null || this.policy.rules.length > 0;
  }

  /** Resolves when the file watcher finished its first walk (tests wait for it via /software/status). */
  watcherReady: Promise<void> = Promise.resolve();
  private watching = false;

  private async startObservers(): Promise<void> {
    if (this.stopped) return;
    this.watchKey = this.observerKey();
    const p = this.policy;
    const active = this.configured();
    if (p.packages.adminDir) {
      this.pkgDb = new PackageDb(p.packages.adminDir, p.packages.root, p.locations);
      if (active) await this.pkgDb.load().catch((e) => this.ctx.log('warn', `software: dpkg database unreadable: ${(e as Error).message}`));
      await this.checkPackages(true);
      this.watchDpkg(p.packages.adminDir);
    }
    if (!active) {
      this.ctx.log('info', 'software: no baseline approved and no rules: watching package changes only');
      return;
    }
    this.scanner = new ProcScanner({ procRoot: this.procRoot, intervalMs: p.scanIntervalMs, onExec: (s) => this.onExec(s) });
    this.scanner.start();
    const existing = p.locations.filter((l) => {
      try {
        return statSync(l).isDirectory();
      } catch {
        return false;
      }
    });
    if (existing.length) {
      const files = new FileWatcher({
        locations: existing,
        depth: p.watchDepth,
        exclude: [this.quarantineDir(), this.ctx.stateDir],
        onFile: (path, event, seenAt) => void this.track(this.onFile(path, event, seenAt)),
        onError: (e) => this.ctx.log('warn', `software: watcher: ${(e as Error).message ?? String(e)}`),
      });
      this.files = files;
      // Not awaited: a large home tree must not hold up the agent's start.
      this.watcherReady = files.start().then(() => {
        if (this.files === files) this.watching = true;
      });
    }
  }

  private async stopObservers(): Promise<void> {
    this.scanner?.stop();
    this.scanner = null;
    this.watching = false;
    await this.files?.stop();
    this.files = null;
    this.dpkgWatch?.close();
    this.dpkgWatch = null;
    if (this.dpkgTimer) clearTimeout(this.dpkgTimer);
    if (this.dpkgPoll) clearInterval(this.dpkgPoll);
    this.dpkgTimer = this.dpkgPoll = null;
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return p;
  }

  // ---- processes ---------------------------------------------------------------------------

  private onExec(s: ProcSeen): void {
    const { path: exePath, deleted } = parseExeLink(s.exeLink);
    const locations = this.policy.locations;
    const exeIn = inScope(exePath, locations);
    const interp = interpreterName(exePath, undefined, this.policy.interpreters);
    if (!exeIn && !interp) return; // outside every watched location: not ours to judge
    void this.track(this.judgeProcess(s, exePath, deleted, exeIn, interp));
  }

  private async judgeProcess(s: ProcSeen, exePath: string, deleted: boolean, exeIn: boolean, interp: string | null): Promise<void> {
    const pid = s.pid;
    let script: { path: string; digest: Digest } | null = null;
    let scriptVerdict: Verdict | null = null;
    if (interp) {
      const argv = readArgv(this.procRoot, pid);
      const arg = scriptArgument(argv, interp, this.policy.interpreters);
      if (arg.kind === 'script') {
        const raw = resolveScriptPath(arg.path, readCwd(this.procRoot, pid));
        let real: string | null = null;
        try {
          real = raw ? realpathSync(raw) : null;
        } catch {
          real = null;
        }
        if (real && inScope(real, this.policy.locations)) {
          try {
            script = { path: real, digest: await this.hasher.digest(real) };
          } catch {
            script = null; // unreadable or gone: the interpreter itself is still judged
          }
        }
      }
    }
    if (!exeIn && !script) return;
    let exeDigest: Digest | null = null;
    let exeVerdict: Verdict = { allowed: true, reason: 'allow_rule', rule: 'outside watched locations' };
    if (exeIn) {
      try {
        // Hash what the process runs (the inode behind /proc/PID/exe), not what the path holds now.
        exeDigest = await this.hasher.digest(`${this.procRoot}/${pid}/exe`);
      } catch {
        return; // exited before we could read it
      }
    }
    if (this.stopped) return;
    // From here on no await: the verdict, the record and the action use the policy in force now.
    if (script) scriptVerdict = judge(this.compiled, { path: script.path, sha256: script.digest.sha256, owner: this.pkgDb?.owner(script.path, script.digest.md5) ?? null });
    if (exeIn && exeDigest) {
      exeVerdict = judge(this.compiled, {
        path: exePath,
        sha256: exeDigest.sha256,
        deleted,
        owner: deleted ? null : (this.pkgDb?.owner(exePath, exeDigest.md5) ?? null),
      });
    }
    const { verdict, decidedBy } = combine(exeVerdict, scriptVerdict);
    if (verdict.allowed) return;
    const uid = readUid(this.procRoot, pid);
    const user = this.users.name(uid);
    const enforce = shouldEnforce({ allowed: false, inScope: true, mode: this.policy.mode, monitorOnly: this.ctx.monitorOnly }) && mayKill(pid, this.protectedPids);
    const target = decidedBy === 'script' && script ? { path: script.path, sha256: script.digest.sha256 } : { path: exePath, sha256: exeDigest?.sha256 ?? '' };
    const detectMs = Math.round((performance.now() - s.seenAt) * 10) / 10;
    this.stats.unauthorizedProcesses++;
    // Record first (durable), then act.
    this.ctx.emit({
      type: 'software.unauthorized_process',
      user,
      data: {
        pid,
        uid,
        path: safeText(target.path, 1024),
        sha256: target.sha256,
        exe: safeText(exePath, 1024),
        exeSha256: exeDigest?.sha256 ?? null,
        ...(script ? { script: safeText(script.path, 1024), scriptSha256: script.digest.sha256 } : {}),
        deleted,
        rule: safeText(verdict.rule, 512),
        reason: verdict.reason,
        mode: this.policy.mode,
        action: enforce ? 'kill' : 'none',
        detectMs,
      },
    });
    if (!enforce) return;
    // Last check against the policy in force now: only what lies in a watched location is ever killed.
    if (!(inScope(target.path, this.policy.locations) || inScope(exePath, this.policy.locations))) return;
    const r = killIfSame(this.procRoot, pid, `${exePath}${deleted ? ' (deleted)' : ''}`, exeDigest ? identityKey(exeDigest) : null);
    const killMs = Math.round((performance.now() - s.seenAt) * 10) / 10;
    if (r === 'killed') {
      this.stats.killed++;
      this.ctx.emit({
        type: 'software.killed',
        user,
        data: { pid, uid, path: safeText(target.path, 1024), sha256: target.sha256, rule: safeText(verdict.rule, 512), mode: this.policy.mode, killMs },
      });
    } else if (r === 'failed') {
      this.ctx.emit({ type: 'agent.error', data: { capability: 'software', action: 'kill', pid, path: safeText(target.path, 1024), error: 'kill failed' } });
    }
  }

  // ---- files -------------------------------------------------------------------------------

  private async onFile(rawPath: string, event: 'add' | 'change', seenAt: number): Promise<void> {
    if (this.stopped) return;
    let real: string;
    try {
      const l = lstatSync(rawPath);
      // A symlink is judged by what it points to (if that is in scope, it has its own events).
      real = l.isSymbolicLink() ? realpathSync(rawPath) : rawPath;
      const st = statSync(real);
      if (!st.isFile() || !inScope(real, this.policy.locations)) return;
      if (!looksExecutable(st.mode, readHead(real))) return;
    } catch {
      return; // vanished or unreadable
    }
    let d: Digest;
    try {
      d = await this.hasher.digest(real);
    } catch {
      return;
    }
    const verdict = judge(this.compiled, { path: real, sha256: d.sha256, owner: this.pkgDb?.owner(real, d.md5) ?? null });
    // Hashing took time: a capability stopped meanwhile must not act on old orders.
    if (verdict.allowed || this.stopped) return;
    if (this.reportedFiles.get(real) === d.sha256) return;
    this.reportedFiles.set(real, d.sha256);
    if (this.reportedFiles.size > 10_000) this.reportedFiles.delete(this.reportedFiles.keys().next().value as string);
    const quarantine = shouldEnforce({ allowed: false, inScope: true, mode: this.policy.mode, monitorOnly: this.ctx.monitorOnly }) && this.policy.quarantine.enabled;
    const user = this.users.name(d.uid);
    this.stats.unauthorizedFiles++;
    this.ctx.emit({
      type: 'software.unauthorized_file',
      user,
      data: {
        path: safeText(real, 1024),
        ...(real !== rawPath ? { link: safeText(rawPath, 1024) } : {}),
        sha256: d.sha256,
        size: d.size,
        uid: d.uid,
        fileMode: (d.mode & 0o7777).toString(8),
        event,
        rule: safeText(verdict.rule, 512),
        reason: verdict.reason,
        mode: this.policy.mode,
        action: quarantine ? 'quarantine' : 'none',
        detectMs: Math.round((performance.now() - seenAt) * 10) / 10,
      },
    });
    if (!quarantine) return;
    try {
      const rec = quarantineFile(this.quarantineDir(), real, d.sha256, verdict.rule);
      this.stats.quarantined++;
      this.ctx.emit({
        type: 'software.quarantined',
        user,
        data: { id: rec.id, path: safeText(real, 1024), sha256: d.sha256, size: rec.size, uid: rec.uid, rule: safeText(verdict.rule, 512), mode: this.policy.mode },
      });
    } catch (e) {
      this.ctx.emit({ type: 'agent.error', data: { capability: 'software', action: 'quarantine', path: safeText(real, 1024), error: safeText((e as Error).message) } });
    }
  }

  // ---- packages ----------------------------------------------------------------------------

  private watchDpkg(adminDir: string): void {
    const schedule = () => {
      if (this.dpkgTimer) clearTimeout(this.dpkgTimer);
      this.dpkgTimer = setTimeout(() => void this.track(this.checkPackages(false)), 150);
    };
    try {
      // dpkg replaces `status` by renaming status-new over it: watch the folder, not the file.
      this.dpkgWatch = fsWatch(adminDir, (_ev, name) => {
        if (name === 'status' || name === 'status-new' || name === 'updates') schedule();
      });
      this.dpkgWatch.on('error', () => undefined);
    } catch (e) {
      this.ctx.log('warn', `software: cannot watch ${adminDir}: ${(e as Error).message}`);
    }
    // Fallback for missed inotify events (and a folder created later).
    this.dpkgPoll = setInterval(() => void this.track(this.checkPackages(false)), 30_000);
    this.dpkgPoll.unref?.();
  }

  private dpkgBusy = false;
  private async checkPackages(first: boolean): Promise<void> {
    const db = this.pkgDb;
    if (!db || this.dpkgBusy || this.stopped) return;
    this.dpkgBusy = true;
    try {
      let now: Map<string, InstalledPackage>;
      try {
        now = await db.readStatus();
      } catch {
        return;
      }
      const saved = this.loadJson<Record<string, InstalledPackage> | null>('packages.json', null);
      // The snapshot persists, so packages changed while the agent was down are reported at start.
      const prev = saved ? new Map(Object.entries(saved)) : null;
      this.saveJson('packages.json', Object.fromEntries(now));
      if (!prev) return;
      const changes = diffPackages(prev, now);
      if (!changes.length) return;
      for (const c of changes) {
        if (c.change === 'removed') {
          this.ctx.emit({ type: 'software.removed', data: { name: safeText(c.name), version: safeText(c.version), arch: safeText(c.arch) } });
          continue;
        }
        const v = judgePackage(this.compiled, c.name, c.version);
        this.ctx.emit({
          type: 'software.installed',
          severity: v.allowed ? 'info' : 'warning',
          data: {
            name: safeText(c.name),
            version: safeText(c.version),
            arch: safeText(c.arch),
            ...(c.previousVersion ? { previousVersion: safeText(c.previousVersion) } : {}),
            authorized: v.allowed,
            rule: safeText(v.rule, 512),
            mode: this.policy.mode,
          },
        });
      }
      if (!first && this.scanner) await db.load();
    } finally {
      this.dpkgBusy = false;
    }
  }

  // ---- quarantine restore via the console ---------------------------------------------------

  restore(id: string, by: string): { ok: boolean; error?: string; record?: QuarantineRecord } {
    try {
      const rec = restoreFile(this.quarantineDir(), id);
      // The administrator vouched for this exact file at this path: do not quarantine it again.
      this.exemptions.push({ path: rec.originalPath, sha256: rec.sha256 });
      this.saveJson('restored.json', this.exemptions);
      this.compiled = compilePolicy(this.policy, this.exemptions);
      this.ctx.emit({ type: 'software.restored', data: { id, path: safeText(rec.originalPath, 1024), sha256: rec.sha256, by: safeText(by) } });
      return { ok: true, record: rec };
    } catch (e) {
      return { ok: false, error: safeText((e as Error).message) };
    }
  }

  private syncing = false;
  private async sync(): Promise<void> {
    if (this.syncing || this.stopped) return;
    this.syncing = true;
    let again = false;
    try {
      const items = listQuarantine(this.quarantineDir()).slice(-1000);
      const body: SoftwareSyncRequest = {
        quarantine: items.map((r) => ({ id: r.id, path: safeText(r.originalPath, 1024), sha256: r.sha256, size: r.size, quarantinedAt: r.quarantinedAt, rule: safeText(r.rule, 512) })),
        results: this.restoreResults.splice(0, 100),
      };
      let reply;
      try {
        reply = await this.ctx.console.request('POST', '/api/agent/software/sync', body, 10_000);
      } catch {
        this.restoreResults.unshift(...body.results);
        return; // console unreachable: try again next period
      }
      if (reply.status !== 200) {
        this.restoreResults.unshift(...body.results);
        return;
      }
      const restore = (reply.body as Partial<SoftwareSyncResponse> | null)?.restore;
      if (!Array.isArray(restore)) return;
      for (const id of restore.slice(0, 100)) {
        if (typeof id !== 'string') continue;
        const r = this.restore(id, 'console');
        this.restoreResults.push({ id, ok: r.ok, ...(r.error ? { error: r.error } : {}) });
      }
      if (restore.length) again = true;
    } finally {
      this.syncing = false;
    }
    if (again) await this.sync();
  }

  // ---- small persistence helpers -------------------------------------------------------------

  private loadJson<T>(name: string, fallback: T): T {
    try {
      return JSON.parse(readFileSync(join(this.dir, name), 'utf8')) as T;
    } catch {
      return fallback;
    }
  }

  private saveJson(name: string, value: unknown): void {
    const tmp = join(this.dir, `${name}.tmp`);
    writeFileSync(tmp, JSON.stringify(value), { mode: 0o600 });
    renameSync(tmp, join(this.dir, name));
  }

  /** For tests and the benchmark. */
  ensureQuarantine(): string {
    const d = this.quarantineDir();
    ensureQuarantineDir(d);
    return d;
  }
}

export function createSoftwareCapability(opts: SoftwareOptions = {}): Capability {
  return new SoftwareCapability(opts);
}
