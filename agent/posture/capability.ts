/**
 * Posture (issue 16): reads whether each control is in place and sends the document to the
 * console at start, whenever a reading changes (checked every minute and on each policy), and at
 * least daily. The judgement is protocol/posture.ts postureVerdicts (the console makes it too).
 * Software and health readings come from the agent's own local API (the software capability's
 * status and pre-exec line, the outbox depth), so no other capability is touched.
 */
import { createHash } from 'node:crypto';
import { SEKIMORI_VERSION } from '../../protocol/version.js';
import { effectiveScreenLockPolicy } from '../../protocol/policy-screen-lock.js';
import { POSTURE_HEALTH, postureVerdicts, type PostureControlReport, type PostureDocument } from '../../protocol/posture.js';
import type { PolicyDocument } from '../../protocol/policy.js';
import type { AgentContext, Capability } from '../capability.js';
import { localRequest } from '../local-api.js';
import type { PosturePlatform } from './platform.js';
import { healthReport, report, softwareReport } from './probe.js';

export const POSTURE_PATH = '/api/agent/posture';

export interface PostureOptions {
  /** How often the readings are taken again (a change is sent at once). */
  checkMs?: number;
  /** An unchanged document is sent again after this long (the console's "daily"). */
  resendMs?: number;
}

const obj = (x: unknown): Record<string, unknown> => (typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Record<string, unknown>) : {});

export class PostureCapability implements Capability {
  readonly name = 'posture';
  private ctx: AgentContext | null = null;
  private policy: PolicyDocument | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();
  private lastDigest = '';
  private lastSentAt = 0;
  private latest: PostureDocument | null = null;
  private readonly checkMs: number;
  private readonly resendMs: number;

  constructor(
    private readonly platform: PosturePlatform,
    opts: PostureOptions = {},
  ) {
    this.checkMs = opts.checkMs ?? Number(process.env.SEKIMORI_POSTURE_CHECK_MS ?? 60_000);
    this.resendMs = opts.resendMs ?? 24 * 3600_000;
  }

  async start(ctx: AgentContext, policy: PolicyDocument): Promise<void> {
    this.ctx = ctx;
    this.policy = policy;
    ctx.local.route('GET', '/posture', () => ({
      status: 200,
      body: { document: this.latest, verdicts: this.latest && this.policy ? postureVerdicts(this.latest, this.policy) : [] },
    }));
    // Forces a reading and a send now (the CLI and the tests ask for it after changing something).
    ctx.local.route('POST', '/posture/check', async () => {
      await this.check(true);
      return { status: 200, body: { document: this.latest } };
    });
    this.enforceScreenLock(policy);
    // The first reading waits for the other capabilities' start (the pre-exec helper starts asynchronously).
    this.timer = setInterval(() => void this.check(false), Math.max(1000, this.checkMs));
    this.timer.unref();
    setTimeout(() => void this.check(false), 2000).unref();
  }

  async applyPolicy(policy: PolicyDocument): Promise<void> {
    this.policy = policy;
    this.enforceScreenLock(policy);
    await this.check(false);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running.catch(() => undefined);
    this.ctx = null;
  }

  /** Record first, then act: the event says which files the agent is about to write. */
  private enforceScreenLock(policy: PolicyDocument): void {
    const ctx = this.ctx;
    if (!ctx || ctx.monitorOnly || !this.platform.screenLockPlan) return;
    const sl = effectiveScreenLockPolicy(policy.agent.screenLock);
    let plan: ReturnType<NonNullable<PosturePlatform['screenLockPlan']>> = null;
    try {
      plan = this.platform.screenLockPlan(sl);
    } catch (e) {
      ctx.log('warn', `posture: screen-lock plan failed: ${(e as Error).message}`);
      return;
    }
    if (!plan) return;
    ctx.emit({ type: 'posture.screen_lock_enforced', data: { maxIdleMinutes: sl.maxIdleMinutes, files: plan.files } });
    try {
      plan.apply();
    } catch (e) {
      ctx.emit({ type: 'agent.error', data: { stage: 'posture', capability: this.name, reason: `screen lock: ${(e as Error).message}` } });
    }
  }

  /** One reading at a time; sends when the document changed, when forced, or after resendMs. */
  check(force: boolean): Promise<void> {
    this.running = this.running.then(() => this.checkOnce(force)).catch((e: unknown) => this.ctx?.log('warn', `posture: ${(e as Error).message}`));
    return this.running;
  }

  private async checkOnce(force: boolean): Promise<void> {
    const ctx = this.ctx;
    const policy = this.policy;
    if (!ctx || !policy) return;
    const doc = await this.collect(ctx, policy);
    this.latest = doc;
    // What counts as a change: not the moment, the exact clock offset or outbox depth (they move every
    // minute), only the health verdict and the other controls' readings.
    const stable = { ...doc, collectedAt: '', clockOffsetMs: 0, outboxDepth: 0, controls: doc.controls.map((c) => (c.control === 'agent_health' ? { control: c.control, state: c.state } : c)) };
    const digest = createHash('sha256').update(JSON.stringify(stable)).digest('hex');
    const now = Date.now();
    if (!force && digest === this.lastDigest && now - this.lastSentAt < this.resendMs) return;
    try {
      const r = await ctx.console.request('POST', POSTURE_PATH, doc, 10_000);
      if (r.status === 200) {
        this.lastDigest = digest;
        this.lastSentAt = now;
      } else ctx.log('warn', `posture: console answered ${r.status}`);
    } catch (e) {
      ctx.log('debug', `posture: not sent (${(e as Error).message}); next check retries`);
    }
  }

  async collect(ctx: AgentContext, policy: PolicyDocument): Promise<PostureDocument> {
    const usbMode = ctx.monitorOnly ? 'monitor' : policy.usb.mode;
    let controls: PostureControlReport[] = [];
    try {
      controls = await this.platform.read({ usbMode, screenLock: effectiveScreenLockPolicy(policy.agent.screenLock) });
    } catch (e) {
      controls = [report('usb_enforced', 'unknown', [`platform reading failed: ${(e as Error).message}`])];
    }
    const status = obj((await this.local(ctx, '/status'))?.body);
    const software = obj((await this.local(ctx, '/software/status'))?.body);
    const preexecReply = this.platform.name === 'linux' ? await this.local(ctx, '/software/preexec') : null;
    const preexec = preexecReply && preexecReply.status === 200 ? obj(preexecReply.body) : null;
    const mode = typeof software.mode === 'string' ? (ctx.monitorOnly ? 'monitor' : software.mode) : null;
    controls.push(
      softwareReport(
        mode,
        this.platform.name === 'linux' ? { running: preexec?.running === true, why: typeof preexec?.why === 'string' ? preexec.why : preexec ? '' : 'pre-exec line not started' } : null,
      ),
    );
    const outboxDepth = typeof status.outboxDepth === 'number' ? status.outboxDepth : 0;
    const policyVersion = typeof status.policyVersion === 'number' ? status.policyVersion : policy.version;
    const clockOffsetMs = Math.round(ctx.console.consoleNow().getTime() - Date.now());
    controls.push(healthReport({ agentVersion: SEKIMORI_VERSION, policyVersion, clockOffsetMs, outboxDepth, ...POSTURE_HEALTH }));
    return {
      platform: this.platform.name,
      collectedAt: new Date().toISOString(),
      agentVersion: SEKIMORI_VERSION,
      policyVersion,
      clockOffsetMs,
      outboxDepth,
      controls,
    };
  }

  private async local(ctx: AgentContext, path: string) {
    try {
      return await localRequest(ctx.local.socketPath, 'GET', path, undefined, 3000);
    } catch {
      return null;
    }
  }
}
