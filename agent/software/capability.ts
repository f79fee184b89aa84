/**
 * Unauthorized-software capability, lifecycle: observe (the platform's file roots, process watch
 * and installed-software source) → decide (decide.ts, pure) → record (ctx.emit, durable; data from
 * events.ts) → act (the platform's kill and quarantine, enforce mode only). Console sync in
 * sync.ts, state files in state.ts.
 *
 * One executable path is judged fully (resolve, hash, package owner, decide) by
 * `SoftwareCapability.judgeExecutable(path)`: the /proc scan and the file watcher use the same
 * steps, and a pre-exec helper can be handed that method as its judge.
 */
import { closeSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentContext, Capability } from '../capability.js';
import { softwareNotice } from '../notify/notices.js';
import { softwarePlatform } from '../platform.js';
import type { PolicyDocument } from '../../protocol/policy.js';
import { normalizeSoftwarePolicy, type SoftwarePolicy } from '../../protocol/policy-software.js';
import { safeText } from '../../protocol/text.js';
import {
  combine,
  compilePolicy,
  inScope,
  interpreterName,
  judge,
  judgePackage,
  looksExecutable,
  mayKill,
  resolveScriptPath,
  scriptArgument,
  shouldEnforce,
  underPrefix,
  type CompiledPolicy,
  type LocalExemption,
  type Subject,
  type Verdict,
} from './decide.js';
import {
  actionErrorData,
  installedData,
  killedData,
  quarantinedData,
  removedData,
  restoredData,
  unauthorizedFileData,
  unauthorizedProcessData,
} from './events.js';
import { diffPackages } from './observe/dpkg.js';
import { FileWatcher } from './observe/files.js';
import { Hasher, identityKey, type Digest } from './observe/hash.js';
import type { InstalledSource, PreExecControl, ProcessSeen, ProcessWatch, QuarantineRecord, SoftwarePlatform } from './platform.js';
import { SoftwareState } from './state.js';
import { SoftwareSync } from './sync.js';
import { BaselineRequests } from './baseline-request.js';
import { captureBaseline } from './cli.js';

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
  /** Processes judged (exe or script in scope), by what decided: `package_db` counts dpkg's trust at work. */
  processVerdicts: Partial<Record<Verdict['reason'], number>>;
}

/** What judgeExecutable found: the verdict and what it was judged on (event data, a verdict cache). */
export interface ExecutableJudgement {
  verdict: Verdict;
  /** The path as resolved (realpath; the given path when deleted), content hash and package owner. */
  subject: Subject;
  /** Content and file identity the verdict holds for (identityKey(digest) keys a cache); null when not read. */
  digest: Digest | null;
  /** Inside the policy's watched locations: only there is anything judged, reported or stopped. */
  inScope: boolean;
}

const OUTSIDE: Verdict = { allowed: true, reason: 'allow_rule', rule: 'outside watched locations' };

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
  private state!: SoftwareState;
  private roots: string[] = [];
  /** The platform offers a package database that vouches for files (Linux with a dpkg admin dir). */
  private packageDb = false;
  private readonly hasher = new Hasher(4);
  private installedSource: InstalledSource | null = null;
  private installedStop: (() => void) | null = null;
  private processes: ProcessWatch | null = null;
  private files: FileWatcher | null = null;
  private syncTimer: NodeJS.Timeout | null = null;
  private rootsTimer: NodeJS.Timeout | null = null;
  private protectedPids = new Set<number>();
  private exemptions: LocalExemption[] = [];
  private reportedFiles = new Map<string, string>(); // path → sha256 last reported
  private readonly syncer: SoftwareSync;
  private watchKey = '';
  private stopped = false;
  private pending = new Set<Promise<unknown>>();
  readonly stats = { unauthorizedProcesses: 0, unauthorizedFiles: 0, killed: 0, quarantined: 0 };
  private readonly processVerdicts: Partial<Record<Verdict['reason'], number>> = {};
  /** Pre-exec line where the platform has one (Linux, fanotify): follows the observers, flushed on every recompile. */
  readonly preExec: PreExecControl | null;

  /** The platform defaults to this OS's (agent/platform.ts chooses); tests pass their own. */
  constructor(readonly platform: SoftwarePlatform = softwarePlatform()) {
    this.preExec =
      platform.preExec?.(() => ({
        ctx: this.ctx,
        policy: this.policy,
        active: this.processes !== null && !this.stopped,
        judge: (path, o) => this.judgeExecutable(path, o),
        uidOf: (pid) => this.platform.processOwner(pid).uid,
      })) ?? null;
    this.syncer = new SoftwareSync(
      () => this.ctx.console,
      () => this.platform.listQuarantine(this.quarantineDir()),
      (id, by) => this.restore(id, by),
      () => this.stopped,
      (req) => {
        const work = this.baselines.offer(req);
        if (work) void this.track(work);
      },
    );
  }

  /** "この端末を基準にする" (agent/software/baseline-request.ts): capture with the policy's dpkg database, upload. */
  private readonly baselines = new BaselineRequests({
    emit: (e) => this.ctx.emit(e),
    link: () => this.ctx.console,
    capture: (scope) => captureBaseline({ scope, adminDir: this.policy.packages.adminDir, root: this.policy.packages.root, concurrency: 2, depth: 8, maxFiles: 100_000 }),
    stopped: () => this.stopped,
    log: (m) => this.ctx.log('info', m),
  });

  async start(ctx: AgentContext, policy: PolicyDocument): Promise<void> {
    this.ctx = ctx;
    if (this.platform.unavailable) ctx.log('warn', `software: ${this.platform.unavailable}`);
    this.state = new SoftwareState(ctx.stateDir);
    this.exemptions = this.state.loadExemptions();
    this.protectedPids = this.platform.protectedPids();
    this.setPolicy(policy);
    ctx.local.route('GET', '/software/status', () => ({ status: 200, body: { mode: this.policy.mode, stats: this.getStats() } }));
    ctx.local.route('GET', '/software/quarantine', () => ({ status: 200, body: { items: this.platform.listQuarantine(this.quarantineDir()) } }));
    ctx.local.route('POST', '/software/restore', (req) => {
      const id = (req.body as { id?: unknown } | null)?.id;
      if (typeof id !== 'string') return { status: 400, body: { error: 'bad_request', message: 'id required' } };
      const r = this.restore(id, 'local');
      return { status: r.ok ? 200 : 409, body: r };
    });
    await this.startObservers();
    this.scheduleSync();
    // A new account's folders (Windows profiles), and a watched folder created after the start
    // (a user's Downloads made at first logon), become watched within a minute of appearing.
    this.rootsTimer = setInterval(() => void this.track(this.refreshRoots()), 60_000);
    this.rootsTimer.unref?.();
  }

  private async refreshRoots(): Promise<void> {
    if (this.stopped) return;
    if (this.platform.rootsChanged?.()) {
      this.roots = this.platform.watchedRoots(this.policy);
      this.recompile();
    }
    if (this.observerKey() !== this.watchKey) {
      await this.stopObservers();
      await this.startObservers();
    }
  }

  private scheduleSync(): void {
    if (this.syncTimer) clearInterval(this.syncTimer);
    this.syncTimer = setInterval(() => void this.track(this.syncer.run()), this.policy.syncSeconds * 1000);
    this.syncTimer.unref?.();
  }

  async applyPolicy(policy: PolicyDocument): Promise<void> {
    this.setPolicy(policy);
    if (this.observerKey() !== this.watchKey) {
      await this.stopObservers();
      await this.startObservers();
    }
    if (this.syncTimer) this.scheduleSync();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.syncTimer) clearInterval(this.syncTimer);
    if (this.rootsTimer) clearInterval(this.rootsTimer);
    await this.stopObservers();
    await Promise.allSettled([...this.pending]);
  }

  getStats(): SoftwareStats {
    return {
      active: this.processes !== null,
      watching: this.watching,
      scans: this.processes?.ticks ?? 0,
      scanMs: Math.round((this.processes?.totalMs ?? 0) * 10) / 10,
      hashed: this.hasher.hashed,
      cacheHits: this.hasher.hits,
      ...this.stats,
      ownedPaths: this.installedSource?.ownedPaths ?? 0,
      processVerdicts: { ...this.processVerdicts },
    };
  }

  // ---- policy ------------------------------------------------------------------------------

  private setPolicy(policy: PolicyDocument): void {
    this.policy = normalizeSoftwarePolicy(policy.software);
    this.roots = this.platform.watchedRoots(this.policy);
    // Constructing a source reads nothing; only whether it can name file owners matters here.
    this.packageDb = typeof this.platform.installed(this.policy)?.loadOwners === 'function';
    this.recompile();
    this.reportedFiles.clear(); // a new policy may judge the same files differently
  }

  /** The policy and the restored files as the platform's path keys (identity on Linux). */
  private recompile(): void {
    const key = (p: string) => this.judgedPath(p);
    const policy = this.platform.compilable ? this.platform.compilable(this.policy) : this.policy;
    const exemptions = this.platform.judgedPath ? this.exemptions.map((e) => ({ ...e, path: key(e.path) })).filter((e) => e.path !== '') : this.exemptions;
    this.compiled = compilePolicy(policy, exemptions, { packageDb: this.packageDb });
    if (this.ctx) void this.track(this.preExec?.update() ?? Promise.resolve());
  }

  private inScope(path: string): boolean {
    return this.platform.inScope ? this.platform.inScope(path, this.roots) : inScope(path, this.roots);
  }

  /** The path as decide.ts judges it: the platform's key, else the path itself. */
  private judgedPath(path: string): string {
    return this.platform.judgedPath ? this.platform.judgedPath(path) : path;
  }

  private observerKey(): string {
    const p = this.policy;
    // Which roots exist is part of the key: a folder missing at the start is watched once it appears.
    return JSON.stringify([this.configured(), this.roots, this.roots.map(isDirectory), p.watchDepth, p.scanIntervalMs, p.packages, p.quarantine.dir]);
  }

  private quarantineDir(): string {
    return this.policy.quarantine.dir || join(this.state.dir, 'quarantine');
  }

  // ---- observers ---------------------------------------------------------------------------

  /**
   * With nothing that trusts anything (no package database, no baseline approved, no rule) every
   * executable would be "unauthorized": reporting all of them helps nobody and enforcing would
   * stop the terminal, so only package changes are watched (Windows without a baseline or rule).
   * On Linux the dpkg database trusts what it installed, so the agent is active out of the box.
   */
  private configured(): boolean {
    return this.packageDb || this.policy.baseline !== null || this.policy.rules.length > 0;
  }

  /** Resolves when the file watcher finished its first walk (tests wait for it via /software/status). */
  watcherReady: Promise<void> = Promise.resolve();
  private watching = false;

  private async startObservers(): Promise<void> {
    if (this.stopped) return;
    this.watchKey = this.observerKey();
    const p = this.policy;
    const active = this.configured();
    const source = this.platform.installed(p);
    if (source) {
      this.installedSource = source;
      if (active && source.loadOwners) {
        await source.loadOwners().catch((e: unknown) => {
          // Nothing is trusted through it then (fail closed): say so where administrators look.
          const error = safeText((e as Error).message ?? String(e), 300);
          this.ctx.log('warn', `software: package database unreadable: ${error}`);
          this.ctx.emit({ type: 'agent.error', data: actionErrorData('package_db', { path: p.packages.adminDir, error }) });
        });
      }
      await this.checkPackages();
      this.installedStop = source.watch(
        () => void this.track(this.onPackagesChanged()),
        (m) => this.ctx.log('warn', m),
      );
    }
    if (!active) {
      this.ctx.log('info', 'software: no baseline approved and no rules: watching package changes only');
      return;
    }
    this.processes = this.platform.watchProcesses({ intervalMs: p.scanIntervalMs, onExec: (s) => this.onExec(s) });
    const existing = watchRoots(this.roots);
    if (existing.length) {
      const files = new FileWatcher({
        locations: existing,
        depth: p.watchDepth,
        // Linux: one inotify watch per folder, no per-file state (chokidar's costs ~64 MB on the defaults).
        engine: this.platform.name === 'linux' ? 'inotify' : 'chokidar',
        exclude: [this.quarantineDir(), this.ctx.stateDir],
        isExcluded: (path) => this.platform.inScope?.(path, [this.quarantineDir(), this.ctx.stateDir]) ?? false,
        onFile: (path, event, seenAt) => void this.track(this.onFile(path, event, seenAt)),
        onError: (e) => this.ctx.log('warn', `software: watcher: ${(e as Error).message ?? String(e)}`),
      });
      this.files = files;
      // Not awaited: a large home tree must not hold up the agent's start.
      this.watcherReady = files.start().then(() => {
        if (this.files === files) this.watching = true;
      });
    }
    await this.preExec?.update(); // after the package database loaded: the helper's first questions need it
  }

  private async stopObservers(): Promise<void> {
    this.processes?.stop();
    this.processes = null;
    this.watching = false;
    await this.files?.stop();
    this.files = null;
    this.installedStop?.();
    this.installedStop = null;
    await this.preExec?.update();
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return p;
  }

  // ---- processes ---------------------------------------------------------------------------

  private onExec(s: ProcessSeen): void {
    const { path: exePath, deleted } = this.platform.parseExe(s.exeLink);
    const exeIn = this.inScope(exePath);
    const interp = interpreterName(exePath, undefined, this.policy.interpreters);
    if (!exeIn && !interp) return; // outside every watched location: not ours to judge
    void this.track(this.judgeProcess(s, exePath, deleted, exeIn, interp));
  }

  private async judgeProcess(s: ProcessSeen, exePath: string, deleted: boolean, exeIn: boolean, interp: string | null): Promise<void> {
    const pid = s.pid;
    let script: { path: string; digest: Digest } | null = null;
    let scriptVerdict: Verdict | null = null;
    if (interp) {
      const cmd = this.platform.processCommand(pid);
      const arg = scriptArgument(cmd.argv, interp, this.policy.interpreters);
      if (arg.kind === 'script') {
        const raw = resolveScriptPath(arg.path, cmd.cwd);
        let real: string | null = null;
        try {
          real = raw ? realpathSync(raw) : null;
        } catch {
          real = null;
        }
        if (real && this.inScope(real)) {
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
    let exeVerdict: Verdict = OUTSIDE;
    if (exeIn) {
      try {
        // Hash what the process runs, not what the path holds now.
        exeDigest = await this.hasher.digest(this.platform.exeForHashing(pid, exePath));
      } catch {
        return; // exited before we could read it
      }
    }
    await this.settleOwners(() => {
      const exe = exeIn && exeDigest ? this.verdictFor(exePath, exeDigest, deleted).verdict : OUTSIDE;
      return !combine(exe, script ? this.verdictFor(script.path, script.digest, false).verdict : null).verdict.allowed;
    });
    if (this.stopped) return;
    // From here on no await: the verdict, the record and the action use the policy in force now.
    if (script) scriptVerdict = this.verdictFor(script.path, script.digest, false).verdict;
    if (exeIn && exeDigest) exeVerdict = this.verdictFor(exePath, exeDigest, deleted).verdict;
    const { verdict, decidedBy } = combine(exeVerdict, scriptVerdict);
    this.processVerdicts[verdict.reason] = (this.processVerdicts[verdict.reason] ?? 0) + 1;
    if (verdict.allowed) return;
    const { uid, user } = this.platform.processOwner(pid);
    const enforce = shouldEnforce({ allowed: false, inScope: true, mode: this.policy.mode, monitorOnly: this.ctx.monitorOnly }) && mayKill(pid, this.protectedPids);
    const target = decidedBy === 'script' && script ? { path: script.path, sha256: script.digest.sha256 } : { path: exePath, sha256: exeDigest?.sha256 ?? '' };
    const detectMs = Math.round((performance.now() - s.seenAt) * 10) / 10;
    this.stats.unauthorizedProcesses++;
    const mode = this.policy.mode;
    // Record first (durable), then act.
    this.ctx.emit({
      type: 'software.unauthorized_process',
      user,
      data: unauthorizedProcessData({
        pid,
        uid,
        target,
        exePath,
        exeSha256: exeDigest?.sha256 ?? null,
        script: script ? { path: script.path, sha256: script.digest.sha256 } : null,
        deleted,
        verdict,
        mode,
        enforce,
        detectMs,
      }),
    });
    this.ctx.notify?.(softwareNotice({ user, uid, path: target.path, sha256: target.sha256, enforce, monitor: mode === 'monitor' || this.ctx.monitorOnly, nowMs: Date.now() }));
    if (!enforce) return;
    // Last check against the policy in force now: only what lies in a watched location is ever killed.
    if (!(this.inScope(target.path) || this.inScope(exePath))) return;
    const r = this.platform.kill(pid, s.exeLink, exeDigest ? identityKey(exeDigest) : null);
    const killMs = Math.round((performance.now() - s.seenAt) * 10) / 10;
    if (r === 'killed') {
      this.stats.killed++;
      this.ctx.emit({ type: 'software.killed', user, data: killedData({ pid, uid, target, verdict, mode, killMs }) });
    } else if (r === 'failed') {
      this.ctx.emit({ type: 'agent.error', data: actionErrorData('kill', { pid, path: target.path, error: 'kill failed' }) });
    }
  }

  // ---- one executable ----------------------------------------------------------------------

  /**
   * The decision for content already hashed, with no await: the policy in force now. The package
   * owner is looked up by path and compared by md5; both come from caches (the digest is cached
   * by file identity, the dpkg index by path), so a hot binary costs a stat and two map lookups.
   */
  private verdictFor(path: string, d: Digest, deleted: boolean): { verdict: Verdict; subject: Subject } {
    const owner = deleted ? null : (this.installedSource?.owner?.(path, d.md5) ?? null);
    const subject: Subject = { path, sha256: d.sha256, deleted, owner };
    return { verdict: judge(this.compiled, { ...subject, path: this.judgedPath(path) }), subject };
  }

  /**
   * Judges one executable fully: resolve the path, hash the content (cached by identity), look up
   * the package that installed it, decide. Never throws: what cannot be read is not allowed
   * (reason 'unreadable'). `hashPath` reads the bytes through another name for the same file
   * (/proc/PID/exe, /proc/self/fd/N: the inode actually run); `deleted` marks a path that no
   * longer names what runs (path rules may block it, never allow it; no package vouches for it).
   */
  async judgeExecutable(path: string, opts: { hashPath?: string; deleted?: boolean } = {}): Promise<ExecutableJudgement> {
    const deleted = opts.deleted === true;
    let real = path;
    if (!deleted) {
      try {
        real = realpathSync(path);
      } catch {
        real = path; // gone already: judged by the name it was run as, through hashPath if given
      }
    }
    const inScope = this.inScope(real);
    if (!inScope) return { verdict: OUTSIDE, subject: { path: real, sha256: '', deleted, owner: null }, digest: null, inScope };
    let d: Digest;
    try {
      d = await this.hasher.digest(opts.hashPath ?? real);
    } catch (e) {
      const verdict: Verdict = { allowed: false, reason: 'unreadable', rule: `unreadable: ${safeText((e as Error).message ?? String(e), 200)}` };
      return { verdict, subject: { path: real, sha256: '', deleted, owner: null }, digest: null, inScope };
    }
    await this.settleOwners(() => !this.verdictFor(real, d, deleted).verdict.allowed);
    return { ...this.verdictFor(real, d, deleted), digest: d, inScope };
  }

  /**
   * A not-allowed verdict against a package index older than dpkg's database waits for the reload
   * (bounded by the load itself): during an upgrade dpkg unpacks new binaries and its maintainer
   * scripts run them before the index has caught up, and they must not read as modified.
   */
  private async settleOwners(notAllowed: () => boolean): Promise<void> {
    const s = refreshable(this.installedSource);
    if (!s || !notAllowed() || !s.stale()) return;
    await s.refresh();
  }

  // ---- files -------------------------------------------------------------------------------

  private async onFile(rawPath: string, event: 'add' | 'change', seenAt: number): Promise<void> {
    if (this.stopped) return;
    let real: string;
    try {
      // Judged by what it really is: a symlink by its target (if that is in scope, it has its own
      // events), a path through a symlinked folder by the folder's real path (dpkg's index is keyed so).
      real = realpathSync(rawPath);
      const st = statSync(real);
      if (!st.isFile() || !this.inScope(real)) return;
      const head = readHead(real);
      if (!(this.platform.looksExecutable ? this.platform.looksExecutable(real, st.mode, head) : looksExecutable(st.mode, head))) return;
    } catch {
      return; // vanished or unreadable
    }
    let d: Digest;
    try {
      d = await this.hasher.digest(real);
    } catch {
      return;
    }
    await this.settleOwners(() => !this.verdictFor(real, d, false).verdict.allowed);
    const { verdict } = this.verdictFor(real, d, false);
    // Hashing took time: a capability stopped meanwhile must not act on old orders.
    if (verdict.allowed || this.stopped) return;
    if (this.reportedFiles.get(real) === d.sha256) return;
    this.reportedFiles.set(real, d.sha256);
    if (this.reportedFiles.size > 10_000) this.reportedFiles.delete(this.reportedFiles.keys().next().value as string);
    const quarantine = shouldEnforce({ allowed: false, inScope: true, mode: this.policy.mode, monitorOnly: this.ctx.monitorOnly }) && this.policy.quarantine.enabled;
    const user = this.platform.userName(d.uid);
    const mode = this.policy.mode;
    this.stats.unauthorizedFiles++;
    this.ctx.emit({
      type: 'software.unauthorized_file',
      user,
      data: unauthorizedFileData({ real, rawPath, digest: d, event, verdict, mode, quarantine, detectMs: Math.round((performance.now() - seenAt) * 10) / 10 }),
    });
    if (!quarantine) return;
    try {
      const rec = this.platform.quarantine(this.quarantineDir(), real, d.sha256, verdict.rule);
      this.stats.quarantined++;
      this.ctx.emit({ type: 'software.quarantined', user, data: quarantinedData(rec, real, d.sha256, verdict, mode) });
    } catch (e) {
      this.ctx.emit({ type: 'agent.error', data: actionErrorData('quarantine', { path: real, error: safeText((e as Error).message) }) });
    }
  }

  // ---- installed software ------------------------------------------------------------------

  /** The inventory is diffed and reported; the owner index follows whatever dpkg changed. */
  private async onPackagesChanged(): Promise<void> {
    await this.checkPackages().catch((e: unknown) => this.ctx.log('warn', `software: package check: ${(e as Error).message}`));
    if (this.processes) await refreshable(this.installedSource)?.refresh();
  }

  private checkingPackages = false;
  private async checkPackages(): Promise<void> {
    const source = this.installedSource;
    if (!source || this.checkingPackages || this.stopped) return;
    this.checkingPackages = true;
    try {
      let now;
      try {
        now = await source.read();
      } catch {
        return;
      }
      // The snapshot persists, so packages changed while the agent was down are reported at start.
      const prev = this.state.loadPackages();
      this.state.savePackages(now);
      this.syncer.inventoryChanged(now, this.platform.name); // the console's inventory (asset management), sent with the next sync
      if (!prev) return;
      const changes = diffPackages(prev, now);
      if (!changes.length) return;
      for (const c of changes) {
        if (c.change === 'removed') {
          this.ctx.emit({ type: 'software.removed', data: removedData(c) });
          continue;
        }
        const v = judgePackage(this.compiled, c.name, c.version);
        this.ctx.emit({ type: 'software.installed', severity: v.allowed ? 'info' : 'warning', data: installedData(c, v, this.policy.mode) });
      }
    } finally {
      this.checkingPackages = false;
    }
  }

  // ---- quarantine restore (local API and console) -------------------------------------------

  restore(id: string, by: string): { ok: boolean; error?: string; record?: QuarantineRecord } {
    try {
      const rec = this.platform.restore(this.quarantineDir(), id);
      // The administrator vouched for this exact file at this path: do not quarantine it again.
      this.exemptions.push({ path: rec.originalPath, sha256: rec.sha256 });
      this.state.saveExemptions(this.exemptions);
      this.recompile();
      this.ctx.emit({ type: 'software.restored', data: restoredData(id, rec, by) });
      return { ok: true, record: rec };
    } catch (e) {
      return { ok: false, error: safeText((e as Error).message) };
    }
  }

  /** For tests and the benchmark. */
  ensureQuarantine(): string {
    const d = this.quarantineDir();
    this.platform.ensureQuarantineDir(d);
    return d;
  }
}

/** A source whose owner index can tell it is older than the package database (Linux dpkg). */
interface Refreshable {
  stale(): boolean;
  refresh(): Promise<void>;
}

function refreshable(s: InstalledSource | null): (InstalledSource & Refreshable) | null {
  const r = s as (InstalledSource & Partial<Refreshable>) | null;
  return r && typeof r.stale === 'function' && typeof r.refresh === 'function' ? (r as InstalledSource & Refreshable) : null;
}

/**
 * The folders to hand to the file watcher: existing ones, by their real path, none inside another
 * (on merged-/usr Debian /bin IS /usr/bin: watching both doubles the inotify watches and events).
 */
export function watchRoots(roots: readonly string[]): string[] {
  const real: string[] = [];
  for (const r of roots) {
    if (!isDirectory(r)) continue;
    try {
      real.push(realpathSync(r));
    } catch {
      // vanished between the two looks
    }
  }
  return [...new Set(real)].filter((r, _i, all) => !all.some((o) => o !== r && underPrefix(r, o)));
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
