/**
 * The agent's side of the pre-exec helper (sekimori-exec-guard.c): starts it, answers its
 * questions with the software capability's judge, fills its cache, flushes it when the policy
 * changes, restarts it with a bounded backoff when it dies, and records what happens.
 *
 * A question names the file the kernel is about to run as /proc/<helper>/fd/<fd>: the agent hashes
 * that very inode (not whatever the path names by then) and checks its identity (dev, inode,
 * ctime) before and after judging; a file that changed meanwhile gets no answer (the fallback
 * applies). The denial is recorded (durable) before the helper is told to refuse.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { AgentContext } from '../../../capability.js';
import { safeText } from '../../../../protocol/text.js';
import {
  answerLine,
  FallbackCounter,
  FLUSH_LINE,
  keyOfStat,
  markLine,
  parseHelperLine,
  restartDelayMs,
  sameKey,
  STATS_LINE,
  type FileKey,
  type HelperLine,
} from './protocol.js';

import type { ExecJudge, ExecJudgement } from '../../platform.js';
export type { ExecJudge, ExecJudgement };

export interface GuardOptions {
  helper: string;
  args: string[];
  marks: string[];
  fallback: 'allow' | 'deny';
  timeoutMs: number;
  /** Whether a refusal is answered as such (enforce mode, not monitor-only): see protocol.helperAllows. */
  allows(allowed: boolean): boolean;
  judge: ExecJudge;
  emit: AgentContext['emit'];
  log(level: 'info' | 'warn', m: string): void;
  /** The uid of the process that asked to exec (for the event); null when gone. */
  uidOf(pid: number): number | null;
  /** Where the helper's pid is kept, so a helper left by a killed agent is ended at the next start. */
  pidFile: string;
  /** Runs the helper through this command (tests: nsenter into their private mount namespace). */
  prefix?: string[];
}

export interface GuardStats {
  running: boolean;
  pid: number | null;
  restarts: number;
  questions: number;
  answered: number;
  denied: number;
  fallbacks: number;
  cachedDenials: number;
  late: number;
  lastError: string;
  helper: Extract<HelperLine, { kind: 'stats' }> | null;
  /** Question → answer written, ms, for the last 1000 answers (bench/software-preexec). */
  answerMs: number[];
}

export class PreExecGuard {
  private child: ChildProcess | null = null;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private summaryTimer: NodeJS.Timeout | null = null;
  private readonly fallbacks = new FallbackCounter();
  private readyResolve: ((ok: boolean) => void) | null = null;
  private statsWaiters: ((s: GuardStats['helper']) => void)[] = [];
  readonly stats: GuardStats = { running: false, pid: null, restarts: 0, questions: 0, answered: 0, denied: 0, fallbacks: 0, cachedDenials: 0, late: 0, lastError: '', helper: null, answerMs: [] };

  constructor(private readonly o: GuardOptions) {}

  /** Starts the helper; resolves true once its marks are placed, false when it failed (recorded). */
  async start(): Promise<boolean> {
    // A helper left by a killed agent keeps guarding (its cache, the fallback) until ours is ready:
    // ended after, not before, so an agent restart leaves no unguarded gap where both can live.
    const leftover = leftoverPid(this.o.pidFile);
    this.summaryTimer ??= setInterval(() => this.summarize(false), 5_000);
    this.summaryTimer.unref?.();
    const ok = await this.spawnHelper();
    if (leftover !== null && leftover !== this.stats.pid) endHelper(leftover, this.o.helper);
    return ok;
  }

  private spawnHelper(): Promise<boolean> {
    const cmd = [...(this.o.prefix ?? []), this.o.helper, ...this.o.args];
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-512)));
    child.stdin!.on('error', () => undefined); // EPIPE after the helper died: the exit handler reports it
    const ready = new Promise<boolean>((resolve) => (this.readyResolve = resolve));
    const lines = createInterface({ input: child.stdout!, crlfDelay: Infinity });
    lines.on('line', (l) => this.onLine(child, l));
    child.once('error', (e) => {
      this.stats.lastError = safeText(e.message, 200);
      // A helper that could not be spawned (missing, not executable) never emits 'exit'.
      if (child.pid === undefined) this.onExit(child, null, null, '');
    });
    child.once('exit', (code, signal) => this.onExit(child, code, signal, stderr));
    // Bounded: a helper that neither says READY nor exits is treated as failed.
    const t = setTimeout(() => this.readyResolve?.(false), 5_000);
    t.unref?.();
    return ready.finally(() => clearTimeout(t));
  }

  private onLine(child: ChildProcess, raw: string): void {
    if (child !== this.child) return;
    const l = parseHelperLine(raw);
    if (!l) return;
    switch (l.kind) {
      case 'ready':
        if (l.marks < this.o.marks.length) this.o.log('warn', `software: pre-exec: only ${l.marks} of ${this.o.marks.length} mounts could be marked (${this.stats.lastError})`);
        this.stats.running = true;
        this.stats.pid = l.pid;
        try {
          writeFileSync(this.o.pidFile, `${l.pid}\n`, { mode: 0o600 });
        } catch {
          // best effort: only used to end a leftover helper
        }
        this.o.emit({
          type: 'software.preexec_started',
          data: { pid: l.pid, marks: this.o.marks.map((m) => safeText(m)), fallback: this.o.fallback, timeoutMs: this.o.timeoutMs, restarts: this.stats.restarts },
        });
        this.readyResolve?.(true);
        this.readyResolve = null;
        return;
      case 'error':
        this.stats.lastError = `${l.stage}: ${safeText(l.text, 300)}`;
        return;
      case 'question':
        this.stats.questions++;
        void this.answer(child, l);
        return;
      case 'fallback':
        this.stats.fallbacks++;
        {
          const now = performance.now();
          const c = this.fallbacks.add(l.reason, now);
          if (c) this.recordFallback(c);
        }
        return;
      case 'cached_deny':
        this.stats.cachedDenials++;
        return;
      case 'stats':
        this.stats.helper = l;
        for (const w of this.statsWaiters.splice(0)) w(l);
        return;
    }
  }

  private recordFallback(c: { count: number; reasons: Record<string, number | undefined> }): void {
    const reasons: Record<string, number> = {};
    for (const [k, v] of Object.entries(c.reasons)) if (v) reasons[k] = v;
    this.o.emit({ type: 'software.preexec_fallback', data: { fallback: this.o.fallback, count: c.count, reasons, timeoutMs: this.o.timeoutMs } });
  }

  private summarize(force: boolean): void {
    const c = this.fallbacks.flush(performance.now(), force);
    if (c) this.recordFallback(c);
  }

  private async answer(child: ChildProcess, q: Extract<HelperLine, { kind: 'question' }>): Promise<void> {
    const t0 = performance.now();
    const fdPath = `/proc/${this.stats.pid ?? child.pid}/fd/${q.fd}`;
    let key: FileKey;
    let path: string;
    try {
      key = keyOfStat(statSync(fdPath, { bigint: true }));
      path = readlinkSync(fdPath);
    } catch {
      return; // the helper gave up on it already (fallback applied): nothing to answer
    }
    if (!sameKey(key, q.key)) return; // the fd number was reused for another file
    const deleted = path.endsWith(' (deleted)');
    if (deleted) path = path.slice(0, -' (deleted)'.length);
    let j: ExecJudgement;
    try {
      j = await this.o.judge(path, { hashPath: fdPath, deleted });
    } catch (e) {
      j = { verdict: { allowed: false, reason: 'unreadable', rule: safeText((e as Error).message ?? 'judge failed', 200) }, subject: { path, sha256: '' }, inScope: true };
    }
    // Judged the file we were asked about? A change while hashing means another identity: no answer.
    try {
      if (!sameKey(keyOfStat(statSync(fdPath, { bigint: true })), q.key)) return;
    } catch {
      this.stats.late++;
      return;
    }
    if (child !== this.child || this.stopping) return;
    const allow = this.o.allows(j.verdict.allowed);
    if (!allow) {
      this.stats.denied++;
      // Record first (durable), then refuse.
      this.o.emit({
        type: 'software.exec_denied',
        user: null,
        data: {
          path: safeText(j.subject.path || path),
          sha256: /^[0-9a-f]{64}$/.test(j.subject.sha256) ? j.subject.sha256 : null,
          rule: safeText(j.verdict.rule, 500),
          reason: j.verdict.reason,
          pid: q.pid,
          uid: this.o.uidOf(q.pid),
          mode: 'enforce',
          decideMs: Math.round((performance.now() - t0) * 1000) / 1000,
        },
      });
    }
    this.stats.answered++;
    child.stdin!.write(answerLine(q.id, q.key, allow));
    if (this.stats.answerMs.push(performance.now() - t0) > 1000) this.stats.answerMs.shift();
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null, stderr: string): void {
    if (child !== this.child) return;
    this.child = null;
    const pid = this.stats.pid;
    this.stats.running = false;
    this.stats.pid = null;
    this.readyResolve?.(false);
    this.readyResolve = null;
    for (const w of this.statsWaiters.splice(0)) w(null);
    const error = safeText(this.stats.lastError || stderr.trim(), 500);
    // A helper that could not even place its marks will not do better on a retry: report, no loop.
    const fatal = code === 2 || code === 3;
    const restartInMs = this.stopping || fatal ? null : restartDelayMs(this.stats.restarts);
    if (!this.stopping) {
      this.o.emit({ type: 'software.preexec_stopped', data: { pid, code, signal, error, restarts: this.stats.restarts, restartInMs } });
      this.o.log('warn', `software: pre-exec helper exited (code ${code}, signal ${signal}) ${error}`);
    }
    if (restartInMs === null) return;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopping) return;
      this.stats.restarts++;
      void this.spawnHelper();
    }, restartInMs);
    this.restartTimer.unref?.();
  }

  /** Marks one more mount (a mount that appeared below a watched place); idempotent in the kernel. */
  addMark(path: string): void {
    if (this.stats.running) this.child?.stdin?.write(markLine(path));
  }

  /** The policy changed: every cached verdict may be wrong now. */
  flush(): void {
    this.child?.stdin?.write(FLUSH_LINE);
  }

  /** The helper's own counters (cache hits, fallbacks, dropped lines); null when not running. Bounded wait. */
  helperStats(timeoutMs = 2000): Promise<GuardStats['helper']> {
    const c = this.child;
    if (!c || !this.stats.running) return Promise.resolve(null);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        const i = this.statsWaiters.indexOf(done);
        if (i >= 0) this.statsWaiters.splice(i, 1);
        resolve(null);
      }, timeoutMs);
      const done = (s: GuardStats['helper']) => {
        clearTimeout(t);
        resolve(s);
      };
      this.statsWaiters.push(done);
      c.stdin!.write(STATS_LINE);
    });
  }

  /** Ends the helper (SIGTERM: it answers what is pending with the fallback and exits; SIGKILL after 2 s). */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.summaryTimer) clearInterval(this.summaryTimer);
    this.summaryTimer = null;
    this.summarize(true);
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) {
      const gone = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 2000);
      await gone;
      clearTimeout(t);
    }
    this.child = null;
    try {
      rmSync(this.o.pidFile, { force: true });
    } catch {
      // nothing to clean
    }
  }
}

/**
 * A helper left running by an agent that was killed keeps serving its cache for a grace period;
 * the new agent ends it once its own is ready (while both run, each exec needs both to allow).
 * Only a process that runs the helper executable is ever signalled.
 */
function leftoverPid(pidFile: string): number | null {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 1 && pid !== process.pid ? pid : null;
  } catch {
    return null;
  }
}

function endHelper(pid: number, helper: string): void {
  try {
    const exe = readlinkSync(`/proc/${pid}/exe`);
    if (exe !== helper && !(existsSync(helper) && exe === realpathOr(helper))) return;
    process.kill(pid, 'SIGTERM');
  } catch {
    // gone already
  }
}

function realpathOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** Where the package installs the helper (installers/linux/build-deb.sh). */
export const INSTALLED_HELPER = '/usr/lib/sekimori/sekimori-exec-guard';

/**
 * The helper to run: SEKIMORI_EXEC_GUARD (tests and benchmarks point it at dist/exec-guard/), else
 * the installed one; null when neither exists. A checkout's dist/ is never picked up by itself, so
 * a developer's agent does not start marking this machine's mounts.
 */
export function helperPath(env: NodeJS.ProcessEnv = process.env): string | null {
  const p = env.SEKIMORI_EXEC_GUARD || INSTALLED_HELPER;
  return p.startsWith('/') && existsSync(p) ? p : null;
}
