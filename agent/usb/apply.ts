/**
 * 申請 → 上長承認 at the terminal (issue 15). A device blocked on this plug gets a short 申請番号
 * (ref) that the notice names; the member of staff runs `sekimori-agent apply <ref> --reason …`
 * as themselves, which talks to the agent's user socket. The applicant is the account the kernel
 * reports for that connection (SO_PEERCRED through agent/local-api.ts), never a name the client
 * sends. The agent writes `usb.application_sent` to its outbox BEFORE it answers, so the
 * application reaches the console by the normal event path, also from a terminal that is offline
 * now. The console's decision comes back on the exception poll (GET /api/agent/usb/applications);
 * an approval's exception arrives with the exceptions as any grant does.
 *
 * The decisions (is this request acceptable, what is said) are pure functions here; ApplyDesk
 * holds the per-agent state (refs of this plug, pending applications, rate windows).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import {
  APPLICATION_LIMITS,
  usbApplicationDecisionsResponseCheck,
  usbApplyRequestCheck,
  type UsbApplicationDecision,
  type UsbApplyRequest,
} from '../../protocol/policy-usb.js';
import { safeText } from '../../protocol/text.js';
import type { AgentContext, ConsoleReply, LocalPeer, LocalRequest } from '../capability.js';
import { readJsonState, writeJsonState } from '../durable.js';
import type { UsbDeviceInfo } from './observe.js';

/** Bounds at the terminal: a local user (or a script) must not flood the outbox or the console. */
export const APPLY_LIMITS = {
  /** Applications (and refusals counted) per user per minute. */
  perUserPerMinute: 3,
  /** Applications sent and not yet decided, per terminal. */
  pendingPerTerminal: 10,
  /** Refs remembered (blocked devices on this plug); the oldest go first. */
  refs: 256,
  /** A ref older than this is unknown (a blocked device left plugged for a day applies again after a re-plug). */
  refTtlMs: 24 * 3_600_000,
  /** An undecided application is forgotten after this (the console treats it as stale too). */
  pendingTtlMs: 7 * 86_400_000,
} as const;

export const APPLICATIONS_FILE = 'usb-applications.json';

/** Bidi embeddings/overrides/isolates: a reason must not reorder the text around it where it is shown. */
const BIDI = /[\u202a-\u202e\u2066-\u2069]/g;

const REF_ALPHABET = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789';

/** A fresh 申請番号 (uniform over the alphabet: 31^6 ≈ 8.9e8 values). */
export function newRef(bytes: (n: number) => Buffer = randomBytes): string {
  let out = '';
  // Rejection sampling: 248 = 8 × 31, so every accepted byte maps uniformly.
  for (let guard = 0; out.length < 6 && guard < 64; guard++) {
    for (const b of bytes(12)) {
      if (b < 248 && out.length < 6) out += REF_ALPHABET[b % 31];
    }
  }
  if (out.length < 6) throw new Error('no randomness for a ref');
  return out;
}

/** What an application names: the device's matching keys and its display text (safeText'd). */
export interface ApplyDevice {
  vendorId: string;
  productId: string;
  serialHex: string;
  descriptorHash: string;
  serial: string;
  manufacturer: string;
  product: string;
  port: string;
}

/** The device as an application names it, or null when it cannot be named exactly (no serial: an exception would open every such model). */
export function applyDeviceOf(d: UsbDeviceInfo): ApplyDevice | null {
  if (!d.serial || d.serial.length === 0) return null;
  return {
    vendorId: d.vendorId,
    productId: d.productId,
    serialHex: d.serial.toString('hex'),
    descriptorHash: d.descriptorHash ?? '',
    serial: safeText(d.serial, 128),
    manufacturer: safeText(d.manufacturer),
    product: safeText(d.product),
    port: d.path,
  };
}

/** How the device is shown to its user (display text only). */
export function deviceText(d: Pick<ApplyDevice, 'manufacturer' | 'product' | 'vendorId' | 'productId'>): string {
  const name = [d.manufacturer, d.product].filter((x) => x.trim() !== '').join(' ');
  return safeText(`${name || 'USB'} (${d.vendorId}:${d.productId})`, 200);
}

export interface Pending {
  id: string;
  user: string;
  ref: string;
  subject: string;
  sentAtMs: number;
}

export type RefusalReason = 'no_user' | 'invalid' | 'unknown_ref' | 'rate' | 'pending_limit';

export type ApplyVerdict =
  | { ok: true; request: Required<UsbApplyRequest>; user: string; device: ApplyDevice }
  | { ok: false; status: number; reason: RefusalReason; message: string };

const MESSAGES: Record<RefusalReason, string> = {
  no_user: '申請者を確認できません / the applicant could not be identified',
  invalid: '申請番号(6文字)と理由(500文字以内)を指定してください / give the 6-character reference and a reason (at most 500 characters)',
  unknown_ref: 'この端末にその申請番号はありません。機器を差し直すと新しい番号が表示されます / no such reference on this terminal; re-plug the device for a new one',
  rate: '申請が多すぎます。1分後にもう一度お試しください / too many applications; try again in a minute',
  pending_limit: 'この端末の未処理の申請が多すぎます。承認者の判断をお待ちください / too many open applications on this terminal; wait for the approver',
};

/**
 * Pure: whether an application is accepted. `recent` are this user's attempts in the last minute,
 * `pending` the terminal's undecided applications. The order makes cheap refusals first and never
 * tells a caller over its rate anything about refs.
 */
export function decideApply(input: { peer: LocalPeer; body: unknown; lookup: (ref: string) => ApplyDevice | undefined; recent: number; pending: number }): ApplyVerdict {
  const refuse = (status: number, reason: RefusalReason): ApplyVerdict => ({ ok: false, status, reason, message: MESSAGES[reason] });
  const user = input.peer.user;
  // The kernel's identity: a uid (SO_PEERCRED) on Linux, a SID (the token) on Windows.
  if ((input.peer.uid === null && !input.peer.sid) || !user) return refuse(403, 'no_user');
  if (input.recent >= APPLY_LIMITS.perUserPerMinute) return refuse(429, 'rate');
  if (!usbApplyRequestCheck.check(input.body)) return refuse(400, 'invalid');
  const body = input.body;
  const device = input.lookup(body.ref);
  if (!device) return refuse(404, 'unknown_ref');
  if (input.pending >= APPLY_LIMITS.pendingPerTerminal) return refuse(429, 'pending_limit');
  return { ok: true, user, device, request: { ref: body.ref, reason: safeText(body.reason.replace(BIDI, ' '), APPLICATION_LIMITS.reasonMax), hours: body.hours ?? APPLICATION_LIMITS.hoursDefault } };
}

/** Pure: the decisions that answer one of our pending applications (each once), and the pending that stay. */
export function matchDecisions(pending: readonly Pending[], decisions: readonly UsbApplicationDecision[], nowMs: number): { answered: { p: Pending; d: UsbApplicationDecision }[]; keep: Pending[] } {
  const byId = new Map(decisions.map((d) => [d.id, d]));
  const answered: { p: Pending; d: UsbApplicationDecision }[] = [];
  const keep: Pending[] = [];
  for (const p of pending) {
    const d = byId.get(p.id);
    if (d) answered.push({ p, d });
    else if (nowMs - p.sentAtMs < APPLY_LIMITS.pendingTtlMs && p.sentAtMs <= nowMs + 60_000) keep.push(p);
  }
  return { answered, keep };
}

const isPending = (x: unknown): x is Pending => {
  const p = x as Pending;
  return typeof x === 'object' && x !== null && typeof p.id === 'string' && p.id.length <= 64 && typeof p.user === 'string' && typeof p.ref === 'string' && typeof p.subject === 'string' && Number.isSafeInteger(p.sentAtMs);
};

/** The notice this part hands to the notifier (protocol/notice.ts `Notice`, structurally). */
interface ApplicationNotice {
  kind: 'application_sent' | 'application_approved' | 'application_rejected';
  user: string;
  subject: string;
  ref?: string;
  until?: string;
  reason?: string;
  key?: string;
}
type Notify = (n: ApplicationNotice) => void;

/** Per-agent state of applications: refs of blocked devices, pending applications, rate windows. */
export class ApplyDesk {
  private refs = new Map<string, { device: ApplyDevice; atMs: number }>();
  private byPort = new Map<string, string>(); // port → ref of the device there now
  private pending: Pending[];
  private attempts = new Map<string, number[]>(); // user → attempt times (ms) in the last minute
  private refusedLogged = new Map<string, number>(); // user → minute of the last refusal event
  private polling = false;

  constructor(
    private readonly ctx: AgentContext,
    private readonly nowMs: () => number = Date.now,
  ) {
    const x = readJsonState(join(ctx.stateDir, APPLICATIONS_FILE));
    this.pending = Array.isArray(x) ? x.filter(isPending).slice(0, APPLY_LIMITS.pendingPerTerminal) : [];
  }

  /** Registers the user route (the socket any local user can reach; the kernel names the caller). */
  register(): void {
    this.ctx.local.userRoute?.('POST', '/usb/apply', (req) => this.apply(req));
  }

  /**
   * A blocked device on this plug: its ref (the same ref while it stays at its port, a new one
   * after a re-plug), or null when the device cannot be applied for (no serial).
   */
  remember(d: UsbDeviceInfo): string | null {
    const dev = applyDeviceOf(d);
    if (!dev) return null;
    const old = this.byPort.get(d.path);
    const same = old ? this.refs.get(old) : undefined;
    if (old && same && same.device.serialHex === dev.serialHex && same.device.vendorId === dev.vendorId && same.device.productId === dev.productId) return old;
    let ref = newRef();
    for (let i = 0; i < 8 && this.refs.has(ref); i++) ref = newRef();
    this.refs.set(ref, { device: dev, atMs: this.nowMs() });
    this.byPort.set(d.path, ref);
    while (this.refs.size > APPLY_LIMITS.refs) this.refs.delete(this.refs.keys().next().value!);
    return ref;
  }

  /** The ref of the device now at `port` (for the notice), if it was blocked. */
  refAt(port: string): string | undefined {
    return this.byPort.get(port);
  }

  /** A device unplugged: its ref stays valid until it expires (the user may apply after unplugging). */
  forgetPort(port: string): void {
    this.byPort.delete(port);
  }

  private lookup(ref: string): ApplyDevice | undefined {
    const r = this.refs.get(ref);
    return r && this.nowMs() - r.atMs < APPLY_LIMITS.refTtlMs ? r.device : undefined;
  }

  private notify(n: ApplicationNotice): void {
    // ctx.notify is the notice part's (protocol/notice.ts); absent when no notifier is wired.
    const notify = (this.ctx as AgentContext & { notify?: Notify }).notify;
    try {
      notify?.call(this.ctx, n);
    } catch (e) {
      this.ctx.log('warn', `usb: notice failed: ${(e as Error).message}`);
    }
  }

  async apply(req: LocalRequest): Promise<ConsoleReply> {
    const now = this.nowMs();
    const userKey = req.peer.sid ? `sid:${req.peer.sid}` : (req.peer.user ?? `uid:${req.peer.uid ?? '?'}`);
    const window = (this.attempts.get(userKey) ?? []).filter((t) => now - t < 60_000 && t <= now);
    const v = decideApply({ peer: req.peer, body: req.body, lookup: (r) => this.lookup(r), recent: window.length, pending: this.pending.length });
    window.push(now);
    this.attempts.set(userKey, window.slice(-APPLY_LIMITS.perUserPerMinute * 2));
    if (this.attempts.size > 1000) this.attempts.delete(this.attempts.keys().next().value!);
    if (!v.ok) {
      // One refusal event per user and minute (the count rides along): a loop cannot fill the outbox.
      const minute = Math.floor(now / 60_000);
      if (this.refusedLogged.get(userKey) !== minute) {
        this.refusedLogged.set(userKey, minute);
        if (this.refusedLogged.size > 1000) this.refusedLogged.delete(this.refusedLogged.keys().next().value!);
        const ref = (req.body as { ref?: unknown } | null)?.ref;
        this.ctx.emit({
          type: 'usb.application_refused',
          user: req.peer.user ?? null,
          data: { reason: v.reason, ref: typeof ref === 'string' ? safeText(ref, 16) : null, refused: window.length },
        });
      }
      return { status: v.status, body: { error: v.reason, message: v.message } };
    }
    const id = randomUUID();
    const { device: d, request: q } = v;
    // Recorded before answering (and before anything else): the outbox carries it to the console, also later.
    this.ctx.emit({
      type: 'usb.application_sent',
      user: v.user,
      data: { id, ref: q.ref, vendorId: d.vendorId, productId: d.productId, serialHex: d.serialHex, descriptorHash: d.descriptorHash, serial: d.serial, manufacturer: d.manufacturer, product: d.product, port: d.port, reason: q.reason, hours: q.hours },
    });
    const subject = deviceText(d);
    this.pending.push({ id, user: v.user, ref: q.ref, subject, sentAtMs: now });
    this.save();
    this.notify({ kind: 'application_sent', user: v.user, subject, ref: q.ref, key: `application|${id}|sent` });
    return { status: 202, body: { id, ref: q.ref, hours: q.hours, subject, message: '申請しました。承認されると通知します / application sent; you will be told when it is decided' } };
  }

  /** Asks the console for decisions when something is pending; tells each applicant once. */
  async poll(): Promise<void> {
    if (this.polling || this.pending.length === 0) return;
    this.polling = true;
    try {
      let reply: ConsoleReply;
      try {
        reply = await this.ctx.console.request('GET', '/api/agent/usb/applications', undefined, 5000);
      } catch {
        return; // offline: asked again at the next poll
      }
      if (reply.status !== 200 || !usbApplicationDecisionsResponseCheck.check(reply.body)) return;
      const { answered, keep } = matchDecisions(this.pending, reply.body.decisions, this.nowMs());
      for (const { p, d } of answered) {
        const comment = safeText(d.comment, APPLICATION_LIMITS.commentMax);
        this.ctx.emit({ type: 'usb.application_answered', user: p.user, data: { id: p.id, status: d.status, until: d.until, comment } });
      }
      this.pending = keep;
      this.save();
      // Told after the answer is recorded and the pending list no longer holds it: once.
      for (const { p, d } of answered) {
        this.notify(
          d.status === 'approved'
            ? { kind: 'application_approved', user: p.user, subject: p.subject, ref: p.ref, ...(d.until ? { until: d.until } : {}), key: `application|${p.id}|decided` }
            : { kind: 'application_rejected', user: p.user, subject: p.subject, ref: p.ref, reason: safeText(d.comment, APPLICATION_LIMITS.commentMax), key: `application|${p.id}|decided` },
        );
        this.ctx.log('info', `usb: application ${p.id} (${p.ref}) ${d.status}; ${p.user} notified`);
      }
    } finally {
      this.polling = false;
    }
  }

  pendingCount(): number {
    return this.pending.length;
  }

  private save(): void {
    try {
      writeJsonState(join(this.ctx.stateDir, APPLICATIONS_FILE), this.pending);
    } catch (e) {
      this.ctx.log('warn', `usb: cannot record applications: ${(e as Error).message}`);
    }
  }
}
