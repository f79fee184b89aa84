/**
 * 申請 at the terminal (agent/usb/apply.ts): the pure decision with hostile input (2^53 hours,
 * 10 kB reasons with markup, another terminal's ref, no peer), the decision matching, and the desk
 * in process with a recording context (events before answers, one notice per decision, bounds).
 * The kernel side (SO_PEERCRED) and the console are the integration test's.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentContext, ConsoleReply, LocalHandler, LocalPeer, NewEvent } from '../../agent/capability.js';
import { defaultSocket, INSTALLED_USER_SOCKET } from '../../agent/usb/apply-cli.js';
import { APPLY_LIMITS, ApplyDesk, applyDeviceOf, decideApply, matchDecisions, newRef, type ApplyDevice, type Pending } from '../../agent/usb/apply.js';
import type { UsbDeviceInfo } from '../../agent/usb/observe.js';
import { APPLICATION_REF_PATTERN } from '../../protocol/policy-usb.js';

const STICK: ApplyDevice = { vendorId: '0781', productId: '5567', serialHex: '4558433030', descriptorHash: 'a'.repeat(64), serial: 'EXC00', manufacturer: 'SanDisk', product: 'Cruzer', port: '1-1' };
const user: LocalPeer = { uid: 1001, pid: 42, user: 'tanaka' };
const lookup = (ref: string) => (ref === 'ABC234' ? STICK : undefined);

describe('newRef', () => {
  it('is six characters of the unambiguous alphabet, also from extreme random bytes', () => {
    const re = new RegExp(APPLICATION_REF_PATTERN);
    for (let i = 0; i < 200; i++) expect(newRef()).toMatch(re);
    expect(newRef(() => Buffer.alloc(12, 0))).toBe('AAAAAA');
    expect(newRef(() => Buffer.alloc(12, 247))).toMatch(re);
    // Only bytes ≥ 248 (rejected): no ref rather than a biased or endless one.
    expect(() => newRef(() => Buffer.alloc(12, 255))).toThrow(/randomness/);
  });
});

describe('decideApply', () => {
  const cases: { name: string; peer?: LocalPeer; body: unknown; recent?: number; pending?: number; want: string | 'ok' }[] = [
    { name: 'a plain application', body: { ref: 'ABC234', reason: '監査資料の受け渡し', hours: 4 }, want: 'ok' },
    { name: 'hours default', body: { ref: 'ABC234', reason: 'x' }, want: 'ok' },
    { name: 'no peer (root socket or unknown)', peer: { uid: null, pid: null }, body: { ref: 'ABC234', reason: 'x' }, want: 'no_user' },
    { name: 'uid without a name', peer: { uid: 1001, pid: 1, user: null }, body: { ref: 'ABC234', reason: 'x' }, want: 'no_user' },
    { name: '2^53 hours', body: { ref: 'ABC234', reason: 'x', hours: 2 ** 53 }, want: 'invalid' },
    { name: 'hours over 30 days', body: { ref: 'ABC234', reason: 'x', hours: 721 }, want: 'invalid' },
    { name: 'zero hours', body: { ref: 'ABC234', reason: 'x', hours: 0 }, want: 'invalid' },
    { name: 'fractional hours', body: { ref: 'ABC234', reason: 'x', hours: 1.5 }, want: 'invalid' },
    { name: 'hours as a string', body: { ref: 'ABC234', reason: 'x', hours: '8' }, want: 'invalid' },
    { name: 'a 10 kB reason with markup', body: { ref: 'ABC234', reason: '<script>alert(1)</script>'.repeat(400) }, want: 'invalid' },
    { name: 'empty reason', body: { ref: 'ABC234', reason: '' }, want: 'invalid' },
    { name: 'blank reason', body: { ref: 'ABC234', reason: '   \n' }, want: 'invalid' },
    { name: 'applicant named in the body (not accepted: the kernel names them)', body: { ref: 'ABC234', reason: 'x', user: 'root' }, want: 'invalid' },
    { name: 'ref with look-alike letters', body: { ref: 'ABC2I4', reason: 'x' }, want: 'invalid' },
    { name: 'lower-case ref', body: { ref: 'abc234', reason: 'x' }, want: 'invalid' },
    { name: 'another terminal’s ref (well-formed, not issued here)', body: { ref: 'ZZZ999', reason: 'x' }, want: 'unknown_ref' },
    { name: 'not an object', body: 'ABC234', want: 'invalid' },
    { name: 'null body', body: null, want: 'invalid' },
    { name: 'over the rate', body: { ref: 'ABC234', reason: 'x' }, recent: APPLY_LIMITS.perUserPerMinute, want: 'rate' },
    { name: 'rate checked before the body (garbage too)', body: 'garbage', recent: 99, want: 'rate' },
    { name: 'too many pending on this terminal', body: { ref: 'ABC234', reason: 'x' }, pending: APPLY_LIMITS.pendingPerTerminal, want: 'pending_limit' },
  ];
  it.each(cases)('$name → $want', (c) => {
    const v = decideApply({ peer: c.peer ?? user, body: c.body, lookup, recent: c.recent ?? 0, pending: c.pending ?? 0 });
    expect(v.ok ? 'ok' : v.reason).toBe(c.want);
    if (!v.ok) expect(v.message).toMatch(/[ぁ-んァ-ン一-龯].* \/ [a-z]/);
  });
  it('keeps the reason as display text (controls out) and the applicant from the peer', () => {
    const v = decideApply({ peer: user, body: { ref: 'ABC234', reason: 'USB\u202e<b>bold</b>\u0000' }, lookup, recent: 0, pending: 0 });
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    expect(v.user).toBe('tanaka');
    expect(v.request.reason).not.toMatch(/[\u0000\u202e]/);
    expect(v.request.reason).toContain('\\x00'); // shown, not acting
    expect(v.request.hours).toBe(8);
    expect(v.device).toBe(STICK);
  });
});

describe('applyDeviceOf', () => {
  const dev = (serial: Buffer | null): UsbDeviceInfo => ({
    path: '1-1',
    busnum: 1,
    devnum: 5,
    vendorId: '0781',
    productId: '5567',
    bcdDevice: '0100',
    deviceClass: 0,
    deviceSubclass: 0,
    deviceProtocol: 0,
    manufacturer: Buffer.from('<img src=x onerror=alert(1)>'),
    product: Buffer.from('A'.repeat(10_000)),
    serial,
    interfaces: [],
    descriptorHash: null,
    authorized: false,
  });
  it('no serial: no application (an exception would open every such model)', () => {
    expect(applyDeviceOf(dev(null))).toBeNull();
    expect(applyDeviceOf(dev(Buffer.alloc(0)))).toBeNull();
  });
  it('keeps the raw serial as the key and bounds the display text', () => {
    const d = applyDeviceOf(dev(Buffer.from([0xff, 0x00, 0x41])))!;
    expect(d.serialHex).toBe('ff0041');
    expect(d.product.length).toBeLessThanOrEqual(4096);
    expect(d.descriptorHash).toBe('');
  });
});

describe('matchDecisions', () => {
  const now = Date.parse('2026-11-30T00:00:00.000Z');
  const p = (id: string, ageMs = 0): Pending => ({ id, user: 'tanaka', ref: 'ABC234', subject: 's', sentAtMs: now - ageMs });
  it('answers each pending once, ignores decisions for others (another terminal’s ids), drops stale and future ones', () => {
    const { answered, keep } = matchDecisions(
      [p('a'), p('b'), p('old', APPLY_LIMITS.pendingTtlMs + 1), { ...p('future'), sentAtMs: Date.parse('9999-01-01T00:00:00.000Z') }],
      [
        { id: 'a', status: 'approved', until: '2026-11-30T08:00:00.000Z', comment: '' },
        { id: 'someone-elses', status: 'approved', until: null, comment: '' },
      ],
      now,
    );
    expect(answered.map((x) => x.p.id)).toEqual(['a']);
    expect(keep.map((x) => x.id)).toEqual(['b']);
  });
});

// ---- the desk in process ----------------------------------------------------------------------

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function rig(consoleReply: () => Promise<ConsoleReply> = () => Promise.reject(new Error('offline'))) {
  const dir = mkdtempSync(join(tmpdir(), 'sekimori-apply-'));
  dirs.push(dir);
  const emitted: NewEvent[] = [];
  const notices: unknown[] = [];
  const order: string[] = [];
  const routes = new Map<string, LocalHandler>();
  let now = Date.parse('2026-11-30T01:00:00.000Z');
  const ctx: AgentContext & { notify: (n: unknown) => void } = {
    agentId: 'agent-1',
    stateDir: dir,
    monitorOnly: false,
    emit: (e) => {
      emitted.push(e);
      order.push(`emit ${e.type}`);
      return {} as ReturnType<AgentContext['emit']>;
    },
    log: () => undefined,
    console: { request: () => consoleReply(), consoleNow: () => new Date(now), reachable: () => true },
    local: { route: () => undefined, userRoute: (m, p, h) => routes.set(`${m} ${p}`, h), socketPath: join(dir, 'agent.sock'), unlockSocketPath: join(dir, 'unlock.sock') },
    notify: (n) => {
      notices.push(n);
      order.push(`notify ${(n as { kind: string }).kind}`);
    },
  };
  const desk = new ApplyDesk(ctx, () => now);
  desk.register();
  const apply = (peer: LocalPeer, body: unknown) => routes.get('POST /usb/apply')!({ peer, body });
  const device = (path: string, serial: string): UsbDeviceInfo => ({
    path, busnum: 1, devnum: 5, vendorId: '0781', productId: '5567', bcdDevice: null, deviceClass: 0, deviceSubclass: 0, deviceProtocol: 0,
    manufacturer: Buffer.from('SanDisk'), product: Buffer.from('<b>Cruzer</b>'), serial: Buffer.from(serial), interfaces: [], descriptorHash: 'b'.repeat(64), authorized: false,
  });
  return { ctx, desk, dir, emitted, notices, order, apply, device, advance: (ms: number) => (now += ms) };
}

describe('ApplyDesk', () => {
  it('records usb.application_sent before it answers, with the device identity and the kernel’s user', async () => {
    const r = rig();
    const ref = r.desk.remember(r.device('1-1', 'EXC0001'))!;
    expect(r.desk.remember(r.device('1-1', 'EXC0001'))).toBe(ref); // same plug, same ref
    const a = await r.apply(user, { ref, reason: '監査資料', hours: 4 });
    expect(a.status).toBe(202);
    expect(r.order[0]).toBe('emit usb.application_sent');
    const e = r.emitted[0]!;
    expect(e.user).toBe('tanaka');
    expect(e.data).toMatchObject({ ref, vendorId: '0781', productId: '5567', serialHex: Buffer.from('EXC0001').toString('hex'), descriptorHash: 'b'.repeat(64), reason: '監査資料', hours: 4 });
    expect(r.desk.pendingCount()).toBe(1);
  });

  it('a re-plug is a new ref; an unknown ref and a flood are refused with one event per user and minute', async () => {
    const r = rig();
    const ref1 = r.desk.remember(r.device('1-1', 'A1'))!;
    r.desk.forgetPort('1-1');
    const ref2 = r.desk.remember(r.device('1-1', 'A1'))!;
    expect(ref2).not.toBe(ref1);
    const mallory: LocalPeer = { uid: 1002, pid: 9, user: 'mallory' };
    const answers = [];
    for (let i = 0; i < 50; i++) answers.push((await r.apply(mallory, { ref: 'ZZZ999', reason: 'x' })).status);
    expect(answers.slice(0, APPLY_LIMITS.perUserPerMinute)).toEqual(Array(APPLY_LIMITS.perUserPerMinute).fill(404));
    expect(new Set(answers.slice(APPLY_LIMITS.perUserPerMinute))).toEqual(new Set([429]));
    expect(r.emitted.filter((e) => e.type === 'usb.application_refused')).toHaveLength(1);
    expect(r.emitted.filter((e) => e.type === 'usb.application_sent')).toHaveLength(0);
    // Another user is not held up by mallory's flood.
    expect((await r.apply(user, { ref: ref2, reason: 'ok' })).status).toBe(202);
  });

  it('at most pendingPerTerminal open applications; a ref expires after a day', async () => {
    const r = rig();
    const refs = Array.from({ length: APPLY_LIMITS.pendingPerTerminal + 1 }, (_, i) => r.desk.remember(r.device(`1-${i + 1}`, `S${i}`))!);
    for (let i = 0; i < APPLY_LIMITS.pendingPerTerminal; i++) {
      expect((await r.apply({ uid: 2000 + i, pid: 1, user: `u${i}` }, { ref: refs[i], reason: 'x' })).status).toBe(202);
    }
    expect((await r.apply(user, { ref: refs.at(-1), reason: 'x' })).status).toBe(429);
    const r2 = rig();
    const ref = r2.desk.remember(r2.device('1-1', 'OLD'))!;
    r2.advance(APPLY_LIMITS.refTtlMs + 1);
    expect((await r2.apply(user, { ref, reason: 'x' })).status).toBe(404);
  });

  it('tells the applicant once per decision, after recording it; survives a restart without telling twice', async () => {
    let decisions: unknown[] = [];
    const r = rig(() => Promise.resolve({ status: 200, body: { serverTime: '2026-11-30T01:00:00.000Z', decisions } }));
    const ref = r.desk.remember(r.device('1-1', 'EXC1'))!;
    const sent = (await r.apply(user, { ref, reason: 'x' })).body as { id: string };
    await r.desk.poll();
    expect(r.notices.filter((n) => (n as { kind: string }).kind !== 'application_sent')).toHaveLength(0);
    decisions = [{ id: sent.id, status: 'approved', until: '2026-11-30T09:00:00.000Z', comment: '' }];
    await r.desk.poll();
    await r.desk.poll();
    const told = r.notices.filter((n) => (n as { kind: string }).kind === 'application_approved');
    expect(told).toEqual([expect.objectContaining({ kind: 'application_approved', user: 'tanaka', until: '2026-11-30T09:00:00.000Z', ref })]);
    expect(r.order.indexOf('emit usb.application_answered')).toBeLessThan(r.order.indexOf('notify application_approved'));
    // A new desk on the same state folder (agent restarted) has nothing pending: no second notice.
    const again = new ApplyDesk(r.ctx, () => Date.now());
    expect(again.pendingCount()).toBe(0);
  });

  it('a rejection with a hostile comment is told as display text; a malformed console reply is ignored', async () => {
    let body: unknown = { serverTime: 'not a time', decisions: [] };
    const r = rig(() => Promise.resolve({ status: 200, body }));
    const ref = r.desk.remember(r.device('1-1', 'EXC2'))!;
    const sent = (await r.apply(user, { ref, reason: 'x' })).body as { id: string };
    body = { serverTime: '2026-11-30T01:00:00.000Z', decisions: [{ id: sent.id, status: 'rejected', until: null, comment: 'no\u0007<b>' + 'x'.repeat(600) }] };
    await r.desk.poll(); // comment over 500: the whole reply fails its check, nothing told
    expect(r.desk.pendingCount()).toBe(1);
    body = { serverTime: '2026-11-30T01:00:00.000Z', decisions: [{ id: sent.id, status: 'rejected', until: null, comment: 'no\u0007<b>' }] };
    await r.desk.poll();
    const n = r.notices.find((x) => (x as { kind: string }).kind === 'application_rejected') as { reason: string };
    expect(n.reason).not.toContain('\u0007');
    expect(r.desk.pendingCount()).toBe(0);
  });
});

describe('apply command: which socket', () => {
  it('the installed agent’s user socket unless told otherwise', () => {
    expect(defaultSocket(undefined, {}, () => true)).toBe(INSTALLED_USER_SOCKET);
    expect(defaultSocket(undefined, { SEKIMORI_UNLOCK_SOCKET: '/tmp/x/unlock.sock' }, () => true)).toBe('/tmp/x/unlock.sock');
    expect(defaultSocket('/tmp/state', {}, () => true)).toBe('/tmp/state/unlock.sock');
    expect(defaultSocket(undefined, {}, () => false)).toMatch(/unlock\.sock$/);
  });
});
