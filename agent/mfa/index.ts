/**
 * The agent's MFA capability: the local verification service behind the PAM module and
 * `sekimori-agent mfa-verify`. Online, the console decides (replay and lockout across all
 * terminals); when the console is unreachable and policy allows it, the encrypted offline cache
 * of this terminal's assigned users decides, and what happened is reconciled when the console
 * returns. Every attempt is an mfa.* event, written to the outbox before the answer is given.
 * Screen lockers run as the locked user and ask on the unlock socket instead: there the agent
 * verifies only for the caller's own account (kernel credentials), at a per-uid rate.
 */
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { effectiveMfaPolicy, isValidMfaUser, type MfaPolicy } from '../../protocol/policy-mfa.js';
import type { PolicyDocument } from '../../protocol/policy.js';
import { safeText } from '../../protocol/text.js';
import { isObject } from '../../protocol/validate.js';
import { ConsoleUnreachableError, type AgentContext, type Capability, type ConsoleReply, type LocalRequest } from '../capability.js';
import { prepareUnlockDir } from '../local-api.js';
import { EncryptedCache, MAX_PENDING, mfaPaths, type CacheData } from './cache.js';
import { clampDrift, decide, REASON_TEXT, type MfaReason, type MfaVerdict } from '../../protocol/mfa/decide.js';
import { base32Decode, type TotpParams } from '../../protocol/mfa/otp.js';
import { EventFold, RateLimiter, unlockGate } from './unlock.js';
import type { LocalVerifyResponse, MfaCacheResponse, MfaCacheUser, MfaReconcileResponse, MfaVerifyResponse } from '../../protocol/mfa/wire.js';

const ONLINE_TIMEOUT_MS = 3_500; // the PAM module waits 5 s for the whole exchange
const SYNC_EVERY_MS = 60_000;
const RETRY_PENDING_MS = 5_000;

const REASONS = new Set(Object.keys(REASON_TEXT));

function isVerifyResponse(x: unknown): x is MfaVerifyResponse {
  return isObject(x) && (x.result === 'accept' || x.result === 'reject') && typeof x.reason === 'string' && REASONS.has(x.reason);
}

function isCacheResponse(x: unknown): x is MfaCacheResponse {
  return isObject(x) && typeof x.offlineAllowed === 'boolean' && Array.isArray(x.users);
}

function validCacheUser(u: unknown): u is MfaCacheUser {
  return (
    isObject(u) &&
    isValidMfaUser(u.user) &&
    (u.status === 'active' || u.status === 'disabled') &&
    typeof u.secret === 'string' &&
    base32Decode(u.secret) !== null &&
    (u.algorithm === 'SHA1' || u.algorithm === 'SHA256' || u.algorithm === 'SHA512') &&
    (u.digits === 6 || u.digits === 8) &&
    (u.period === 30 || u.period === 60) &&
    Number.isSafeInteger(u.lastStep) &&
    Number.isSafeInteger(u.failures) &&
    Number.isSafeInteger(u.lockedUntil) &&
    Array.isArray(u.recovery) &&
    (u.drift === undefined || Number.isSafeInteger(u.drift))
  );
}

export class MfaCapability implements Capability {
  readonly name = 'mfa';
  private ctx!: AgentContext;
  private policy: MfaPolicy = effectiveMfaPolicy(null);
  private cache!: EncryptedCache;
  private data: CacheData = { version: 1, syncedAt: null, users: {}, pending: [] };
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  // One verification or sync at a time: the offline cache is read-modify-write.
  private queue: Promise<unknown> = Promise.resolve();
  private readonly unlockRate = new RateLimiter<number>();
  private readonly unlockFold = new EventFold();

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const next = this.queue.then(f, f);
    this.queue = next.catch(() => undefined);
    return next;
  }

  async start(ctx: AgentContext, policy: PolicyDocument): Promise<void> {
    this.ctx = ctx;
    this.running = true;
    this.cache = new EncryptedCache(ctx.stateDir, ctx.agentId);
    const { data, problem } = this.cache.load();
    this.data = data;
    if (problem) {
      ctx.emit({ type: 'agent.tamper', data: { what: 'mfa offline cache', reason: safeText(problem, 200), action: 'discarded' } });
      ctx.log('error', `mfa cache unreadable (${problem}): discarded`);
    }
    this.applyMfa(policy);
    ctx.local.route('POST', '/mfa/verify', (req) => this.serial(() => this.verify(req)));
    // The PAM module sends the same request on the unlock socket when it runs as a user.
    ctx.local.userRoute?.('POST', '/mfa/verify', (req) => this.unlock(req));
    ctx.local.route('GET', '/mfa/status', () => ({
      status: 200,
      body: {
        offlineAllowed: this.policy.offlineAllowed,
        breakGlass: this.policy.breakGlass,
        unlockSocket: ctx.local.unlockSocketPath ?? null, // where screen lockers must point unlock_socket=
        syncedAt: this.data.syncedAt,
        cachedUsers: Object.keys(this.data.users).sort(),
        pending: this.data.pending.length,
      },
    }));
    ctx.local.route('POST', '/mfa/sync', () =>
      this.serial(async () => {
        const ok = await this.sync();
        return { status: ok ? 200 : 503, body: { synced: ok, syncedAt: this.data.syncedAt, pending: this.data.pending.length, cachedUsers: Object.keys(this.data.users).length } };
      }),
    );
    this.schedule(0);
  }

  async applyPolicy(policy: PolicyDocument): Promise<void> {
    this.applyMfa(policy);
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.queue;
    // The break-glass marker stays as policy set it: it matters exactly when the agent is gone.
  }

  private applyMfa(policy: PolicyDocument): void {
    this.policy = effectiveMfaPolicy(policy.mfa);
    // The PAM module looks for the marker next to the socket it uses: the root one and the unlock one.
    const markers = [mfaPaths(this.ctx.stateDir).breakGlass];
    const unlock = this.ctx.local.unlockSocketPath;
    if (unlock && dirname(unlock) !== this.ctx.stateDir) {
      const problem = prepareUnlockDir(dirname(unlock));
      if (problem) this.ctx.log('error', `mfa: no break-glass marker for unlock: ${problem}`);
      else markers.push(join(dirname(unlock), basename(markers[0]!)));
    }
    for (const marker of markers) {
      if (this.policy.breakGlass) {
        writeFileSync(marker, 'break-glass allowed by signed policy v' + policy.version + '\n', { mode: 0o644 });
        chmodSync(marker, 0o644); // whatever the umask: lockers running as users look at it too
      } else rmSync(marker, { force: true });
    }
    if (!this.policy.offlineAllowed && Object.keys(this.data.users).length) {
      // Seeds leave the terminal as soon as policy no longer allows offline use.
      this.data = { ...this.data, users: {}, syncedAt: null };
      this.persist();
    }
  }

  private persist(): void {
    this.cache.save(this.data);
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.serial(() => this.sync()).finally(() => this.schedule(this.data.pending.length ? RETRY_PENDING_MS : SYNC_EVERY_MS));
    }, ms);
    this.timer.unref();
  }

  /** Pushes what happened offline, then refreshes the cache. Returns whether the console answered. */
  private async sync(): Promise<boolean> {
    try {
      if (!(await this.pushPending())) return false;
      const reply = await this.ctx.console.request('GET', '/api/agent/mfa/cache', undefined, 10_000);
      if (reply.status !== 200 || !isCacheResponse(reply.body)) return false;
      const users: Record<string, MfaCacheUser> = {};
      if (this.policy.offlineAllowed && reply.body.offlineAllowed) {
        for (const u of reply.body.users.slice(0, 10_000)) {
          if (!validCacheUser(u)) continue;
          const local = this.data.users[u.user];
          // Never move replay state backwards, never resurrect a used recovery code.
          const usedLocally = new Set((local?.recovery ?? []).filter((r) => r.used).map((r) => r.id));
          users[u.user] = {
            ...u,
            lastStep: Math.max(u.lastStep, local?.lastStep ?? -1),
            recovery: u.recovery.map((r) => ({ ...r, used: r.used || usedLocally.has(r.id) })),
          };
        }
      }
      this.data = { ...this.data, users, syncedAt: new Date().toISOString() };
      this.persist();
      return true;
    } catch (e) {
      if (!(e instanceof ConsoleUnreachableError)) this.ctx.log('warn', `mfa sync failed: ${(e as Error).message}`);
      return false;
    }
  }

  private async pushPending(): Promise<boolean> {
    if (this.data.pending.length === 0) return true;
    const batch = this.data.pending.slice(0, 1000);
    const reply = await this.ctx.console.request('POST', '/api/agent/mfa/reconcile', { entries: batch }, 5_000);
    if (reply.status !== 200) {
      this.ctx.log('warn', `mfa reconcile refused: HTTP ${reply.status}`);
      return false;
    }
    const body = isObject(reply.body) ? (reply.body as unknown as MfaReconcileResponse) : null;
    // Refused entries (offline use no longer allowed, not this terminal's user, …) will never be
    // accepted: they are dropped with the batch; the console recorded them as mfa.reconcile_refused.
    const refused = Array.isArray(body?.refused) ? body.refused.length : 0;
    this.ctx.log(refused ? 'warn' : 'info', `mfa reconciled ${batch.length} offline entries (${body?.applied ?? 0} applied, ${refused} refused by the console)`);
    this.data = { ...this.data, pending: this.data.pending.slice(batch.length) };
    this.persist();
    return this.data.pending.length === 0 || this.pushPending();
  }

  /**
   * The unlock socket: anyone on the machine can ask, so the caller's own account (kernel
   * credentials) is the only one verified, each uid has its own attempt budget, and refusals are
   * recorded at most once a minute per uid and reason. Past those checks the attempt is judged
   * exactly like a login (console lockout, replay across terminals, offline cache).
   */
  private unlock(req: LocalRequest): ConsoleReply | Promise<ConsoleReply> {
    const b = isObject(req.body) ? req.body : {};
    const requested = b.user;
    const gate = unlockGate(req.peer, requested);
    const nowMs = Date.now();
    const refuse = (reason: string, answer: MfaReason): ConsoleReply => {
      const fold = this.unlockFold.record(`${gate.uid ?? 'none'}:${reason}`, nowMs);
      if (fold) {
        this.ctx.emit({
          type: 'mfa.unlock_refused',
          user: isValidMfaUser(requested) ? requested : null,
          data: {
            terminal: this.ctx.agentId,
            reason,
            peerUid: req.peer.uid,
            peerPid: req.peer.pid,
            peerUser: req.peer.user ?? null,
            requested: safeText(typeof requested === 'string' ? requested : String(requested), 64),
            service: safeText(typeof b.service === 'string' ? b.service : '', 64),
            ...(fold.folded ? { foldedBefore: fold.folded } : {}),
          },
        });
      }
      const body: LocalVerifyResponse = { result: 'reject', reason: answer, message: REASON_TEXT[answer], offline: false };
      return { status: 200, body };
    };
    if (gate.uid === null) return refuse(gate.ok ? 'no_peer' : gate.reason, 'error');
    // Every request costs an attempt, refused ones too: asking for others is not free either.
    if (!this.unlockRate.take(gate.uid, nowMs)) return refuse('rate_limited', 'rate_limited');
    if (!gate.ok) return refuse(gate.reason, gate.reason === 'invalid_user' ? 'invalid_user' : 'not_own_account');
    const peer = { via: 'unlock', peerUid: String(gate.uid) };
    return this.serial(() => this.verify({ body: { ...b, user: gate.user }, peer: req.peer }, peer));
  }

  private async verify(req: LocalRequest, extra: Record<string, string> = {}): Promise<ConsoleReply> {
    const b = isObject(req.body) ? req.body : {};
    const user = b.user;
    const code = typeof b.code === 'string' ? b.code : '';
    const ctxData = {
      service: safeText(typeof b.service === 'string' ? b.service : '', 64),
      tty: safeText(typeof b.tty === 'string' ? b.tty : '', 64),
      rhost: safeText(typeof b.rhost === 'string' ? b.rhost : '', 64),
      ...extra,
    };
    if (!isValidMfaUser(user)) {
      return this.answer(null, { result: 'reject', reason: 'invalid_user', event: 'mfa.failure', lockedNow: false }, false, {
        ...ctxData,
        userShown: safeText(typeof user === 'string' ? user : String(user), 64),
      });
    }
    let online: MfaVerifyResponse | null = null;
    let unreachable = false;
    let limited = false;
    try {
      // What this terminal did offline reaches the console before it judges anything new.
      await this.pushPending();
      const reply = await this.ctx.console.request('POST', '/api/agent/mfa/verify', { user, code }, ONLINE_TIMEOUT_MS);
      if (reply.status === 200 && isVerifyResponse(reply.body)) online = reply.body;
      else {
        limited = reply.status === 429; // the console limits failed attempts per terminal
        this.ctx.log('warn', `mfa verify: console answered HTTP ${reply.status}`);
      }
    } catch (e) {
      if (e instanceof ConsoleUnreachableError) unreachable = true;
      else this.ctx.log('warn', `mfa verify: ${(e as Error).message}`);
    }
    if (online) {
      this.learnOnline(user, online);
      const v: MfaVerdict = {
        result: online.result,
        reason: online.reason,
        event: eventFor(online),
        lockedNow: online.lockedNow === true,
        ...(online.step !== undefined ? { step: online.step } : {}),
      };
      return this.answer(user, v, false, ctxData);
    }
    if (!unreachable) {
      // The console answered but not sensibly (or refused for too many attempts): fail closed,
      // never fall back to offline — that would turn the console's limit into a bypass.
      return this.answer(user, { result: 'reject', reason: limited ? 'rate_limited' : 'error', event: 'mfa.failure', lockedNow: false }, false, ctxData);
    }
    return this.verifyOffline(user, code, ctxData);
  }

  private learnOnline(user: string, r: MfaVerifyResponse): void {
    const u = this.data.users[user];
    if (!u || !r.state) return;
    this.data.users[user] = {
      ...u,
      lastStep: Math.max(u.lastStep, r.state.lastStep),
      failures: r.state.failures,
      lockedUntil: r.state.lockedUntil,
      recovery: u.recovery.map((x) => (x.id === r.recoveryId ? { ...x, used: true } : x)),
    };
    this.persist();
  }

  private verifyOffline(user: string, code: string, ctxData: Record<string, string>): ConsoleReply {
    const stale =
      this.data.syncedAt === null || Date.now() - Date.parse(this.data.syncedAt) > this.policy.offlineMaxAgeHours * 3600_000;
    const u = this.data.users[user];
    if (!this.policy.offlineAllowed) return this.answer(user, { result: 'reject', reason: 'console_unreachable', event: 'mfa.failure', lockedNow: false }, true, ctxData);
    if (stale || !u || this.data.pending.length >= MAX_PENDING) {
      return this.answer(user, { result: 'reject', reason: 'offline_unavailable', event: 'mfa.failure', lockedNow: false }, true, { ...ctxData, stale: String(stale) });
    }
    const key = base32Decode(u.secret);
    const params: TotpParams = { algorithm: u.algorithm, digits: u.digits, period: u.period };
    const nowMs = this.ctx.console.consoleNow().getTime();
    const drift = u.drift === undefined ? {} : { drift: clampDrift(u.drift) }; // hardware TOTP: centre the window where its clock is
    const v = decide(key ? { status: u.status, key, params, lastStep: u.lastStep, failures: u.failures, lockedUntil: u.lockedUntil, recovery: u.recovery, ...drift } : null, {
      user,
      code,
      nowMs,
      policy: this.policy,
    });
    if (v.next) {
      const n = v.next;
      this.data.users[user] = {
        ...u,
        lastStep: n.lastStep,
        failures: n.failures,
        lockedUntil: n.lockedUntil,
        recovery: u.recovery.map((r) => (r.id === n.recoveryUsed ? { ...r, used: true } : r)),
        ...(n.drift !== undefined && u.drift !== undefined ? { drift: n.drift } : {}),
      };
      const at = new Date(nowMs).toISOString();
      if (v.result === 'accept' && v.step !== undefined) this.data.pending.push({ user, kind: 'step', step: v.step, at });
      else if (v.result === 'accept' && v.recoveryId !== undefined) this.data.pending.push({ user, kind: 'recovery', recoveryId: v.recoveryId, at });
      else if (v.reason !== 'locked') this.data.pending.push({ user, kind: 'failure', at });
      this.persist(); // replay state on disk before the answer: a crash cannot let a step be used twice
      this.schedule(RETRY_PENDING_MS);
    }
    return this.answer(user, v, true, ctxData);
  }

  /** Records the attempt (durably, first) and builds the answer for the PAM module. */
  private answer(user: string | null, v: MfaVerdict, offline: boolean, extra: Record<string, string>): ConsoleReply {
    this.ctx.emit({
      type: v.event,
      user,
      data: {
        terminal: this.ctx.agentId,
        result: v.result,
        reason: v.reason,
        offline,
        ...extra,
        ...(v.step !== undefined ? { step: v.step } : {}),
        ...(v.lockedNow ? { locked: true } : {}),
      },
    });
    const body: LocalVerifyResponse = { result: v.result, reason: v.reason, message: REASON_TEXT[v.reason], offline };
    return { status: 200, body };
  }
}

function eventFor(r: MfaVerifyResponse): MfaVerdict['event'] {
  if (r.result === 'accept') return r.reason === 'recovery' ? 'mfa.recovery_used' : 'mfa.success';
  if (r.lockedNow) return 'mfa.locked';
  if ((r.reason as MfaReason) === 'replay') return 'mfa.replay';
  return 'mfa.failure';
}

export function createMfaCapability(): Capability {
  return new MfaCapability();
}
