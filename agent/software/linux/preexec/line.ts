/**
 * The pre-exec line as the software capability sees it: one object, one method. `update()` is
 * called whenever something it depends on may have changed (observers started or stopped, the
 * policy or the restored files recompiled); it reads the capability's current state, plans
 * (protocol.ts planPreExec, pure), and starts, stops, restarts or flushes the helper to match.
 * Updates run one at a time, in order.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { PreExecControl, PreExecState } from '../../platform.js';
import { helperPath, PreExecGuard, type GuardStats } from './guard.js';
import { helperAllows, mountsBelow, planPreExec, type Plan } from './protocol.js';

export type { PreExecState };

export interface PreExecEnv {
  platform: string;
  isRoot: boolean;
  helper(): string | null;
  /** Tests run the helper inside their private mount namespace (nsenter -t PID -m --). */
  prefix?: string[];
  /** How often the mounts below the marked places are looked for (a tmpfs mounted at login). */
  mountPollMs?: number;
}

export interface PreExecStatus {
  running: boolean;
  why: string;
  message: string;
  marks: string[];
  /** Every mount marked so far, including those that appeared later below a marked place. */
  marked: string[];
  stats: GuardStats | null;
}

const defaultEnv = (): PreExecEnv => ({
  platform: process.platform,
  isRoot: typeof process.getuid === 'function' && process.getuid() === 0,
  helper: () => helperPath(),
});

export class PreExecLine implements PreExecControl {
  private guard: PreExecGuard | null = null;
  private guardKey = '';
  private chain: Promise<void> = Promise.resolve();
  private reportedWhy = '';
  private plan: Plan | null = null;
  private routed = false;
  private mountTimer: NodeJS.Timeout | null = null;
  private marked = new Set<string>();

  private env: PreExecEnv = defaultEnv();
  constructor(private readonly state: () => PreExecState) {}

  /** Tests and the benchmark: another helper executable, a namespace to run it in. Before start. */
  setEnv(env: Partial<PreExecEnv>): void {
    this.env = { ...this.env, ...env };
  }

  update(): Promise<void> {
    const next = this.chain.then(() => this.apply()).catch((e) => this.state().ctx.log('warn', `software: pre-exec: ${(e as Error).message}`));
    this.chain = next;
    return next;
  }

  status(): PreExecStatus {
    const p = this.plan;
    return {
      running: this.guard?.stats.running ?? false,
      why: p === null ? 'not_started' : p.run ? 'running' : p.why,
      message: p && !p.run ? p.message : '',
      marks: p && p.run ? p.marks : [],
      marked: this.guard ? [...this.marked] : [],
      stats: this.guard ? { ...this.guard.stats, answerMs: [...this.guard.stats.answerMs] } : null,
    };
  }

  /** For the benchmark and tests: the helper's own counters. */
  helperStats(): Promise<GuardStats['helper']> {
    return this.guard?.helperStats() ?? Promise.resolve(null);
  }

  private async apply(): Promise<void> {
    const s = this.state();
    const p = s.policy;
    if (!this.routed) {
      this.routed = true;
      // Root-only local API: whether the pre-exec line runs, and if not why (Japanese / English).
      s.ctx.local.route('GET', '/software/preexec', () => ({ status: 200, body: this.status() }));
    }
    const helper = this.env.helper();
    // Only paths that exist now: a missing location (no /opt on this terminal) would make the
    // helper's fanotify_mark fail and the whole line stay off. A folder made later is marked at the
    // next policy change or observer restart (the watch key includes which roots exist).
    const present = (xs: readonly string[]) => (this.env.platform === 'linux' ? xs.filter(isDir) : [...xs]);
    const plan = planPreExec({
      platform: this.env.platform,
      isRoot: this.env.isRoot,
      mode: p.mode,
      monitorOnly: s.ctx.monitorOnly,
      active: s.active,
      // The policy's own marks replace the locations, also when none of them exists (then: no_marks).
      preExec: { ...p.preExec, marks: present(p.preExec.marks) },
      locations: p.preExec.marks.length ? [] : present(p.locations),
      helper,
    });
    // The helper is restarted only when its settings change, not when a mount came and went.
    const baseArgs = plan.run ? [...plan.args] : [];
    if (plan.run) {
      // A mount mark covers one mount: mounts already below the marked places get their own.
      for (const sub of mountsBelow(readMountinfo('self'), plan.marks, 64 - plan.marks.length)) {
        plan.marks.push(sub);
        plan.args.push('--mark', sub);
      }
    }
    this.plan = plan;
    if (!plan.run) {
      await this.stopGuard();
      if (plan.why !== this.reportedWhy) {
        this.reportedWhy = plan.why;
        // Worth an event only where pre-exec control was expected and cannot be had.
        if (plan.why === 'not_root' || plan.why === 'no_marks') s.ctx.emit({ type: 'software.preexec_unavailable', data: { reason: plan.why, message: plan.message } });
        else if (plan.why !== 'inactive') s.ctx.log('info', `software: pre-exec: ${plan.message}`);
      }
      return;
    }
    this.reportedWhy = '';
    const key = JSON.stringify([helper, baseArgs, this.env.prefix ?? []]);
    if (this.guard && this.guardKey === key) {
      this.guard.flush(); // same helper settings, new verdicts: forget the cached ones
      return;
    }
    await this.stopGuard();
    const ctx = s.ctx;
    const guard = new PreExecGuard({
      helper: helper!,
      args: plan.args,
      marks: plan.marks,
      fallback: p.preExec.fallback,
      timeoutMs: p.preExec.timeoutMs,
      // Read at answer time: a policy applied since the question decides.
      allows: (allowed) => {
        const now = this.state();
        return helperAllows(allowed, now.policy.mode, now.ctx.monitorOnly);
      },
      judge: (path, o) => this.state().judge(path, o),
      emit: ctx.emit.bind(ctx),
      log: (level, m) => ctx.log(level, m),
      uidOf: (pid) => this.state().uidOf(pid),
      pidFile: join(ctx.stateDir, 'preexec.pid'),
      ...(this.env.prefix ? { prefix: this.env.prefix } : {}),
    });
    this.guard = guard;
    this.guardKey = key;
    this.marked = new Set(plan.marks);
    const ok = await guard.start();
    this.watchMounts(guard, plan.marks);
    if (!ok) ctx.log('warn', `software: pre-exec helper did not start: ${guard.stats.lastError || 'no READY'}`);
  }

  /** Mounts made later below a marked place (a user's /run/user/UID at login) are marked as they appear. */
  private watchMounts(guard: PreExecGuard, roots: string[]): void {
    if (this.mountTimer) clearInterval(this.mountTimer);
    this.mountTimer = setInterval(() => {
      if (this.guard !== guard || !guard.stats.pid) return;
      // The helper's own view: in a test it runs in another mount namespace.
      for (const sub of mountsBelow(readMountinfo(String(guard.stats.pid)), roots, 256)) {
        if (this.marked.has(sub) || this.marked.size >= 1024) continue;
        this.marked.add(sub);
        guard.addMark(sub);
      }
    }, this.env.mountPollMs ?? 10_000);
    this.mountTimer.unref?.();
  }

  private async stopGuard(): Promise<void> {
    if (this.mountTimer) clearInterval(this.mountTimer);
    this.mountTimer = null;
    const g = this.guard;
    this.guard = null;
    this.guardKey = '';
    if (g) await g.stop();
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function readMountinfo(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
  } catch {
    return '';
  }
}
