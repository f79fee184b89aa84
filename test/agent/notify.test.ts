/**
 * Who is told and when (agent/notify/notifier.ts, notices.ts): one notice per device per plug,
 * silence in monitor mode unless the policy asks, nobody logged in → nothing and no error loop,
 * a bounded rate and bounded deliveries in flight, failures counted and never retried.
 */
import { describe, expect, it } from 'vitest';
import type { Notice, NoticeSettings } from '../../protocol/notice.js';
import { usbNotice, softwareNotice, programName, SOFTWARE_NOTICE_WINDOW_MS } from '../../agent/notify/notices.js';
import { decideNotice, MAX_IN_FLIGHT, newMemory, Notifier, RATE_MAX, RATE_WINDOW_MS, SEEN_MAX, type NoticeDelivery, type NoticeSession } from '../../agent/notify/notifier.js';

const ON: NoticeSettings = { enabled: true, monitor: false };
const tanaka: NoticeSession = { user: 'tanaka', uid: 1000, gid: 1000, address: 'unix:path=/run/user/1000/bus', lang: 'ja' };
const suzuki: NoticeSession = { user: 'suzuki', uid: 1001, gid: 1001, address: 'unix:path=/run/user/1001/bus', lang: 'en' };
const n = (over: Partial<Notice> = {}): Notice => ({ kind: 'usb_blocked', user: 'tanaka', subject: 'SanDisk', key: 'usb|1-1|1|5', ...over });

describe('decideNotice', () => {
  const table: { name: string; notice: Notice; settings?: NoticeSettings; sessions?: NoticeSession[]; want: string }[] = [
    { name: 'blocked stick, user logged in', notice: n(), want: 'show:tanaka' },
    { name: 'disabled by policy', notice: n(), settings: { enabled: false, monitor: true }, want: 'disabled' },
    { name: 'monitor mode, policy silent', notice: n({ monitor: true }), want: 'monitor' },
    { name: 'monitor mode, policy asks', notice: n({ monitor: true }), settings: { enabled: true, monitor: true }, want: 'show:tanaka' },
    { name: 'nobody logged in', notice: n(), sessions: [], want: 'nobody' },
    { name: 'another user logged in only', notice: n(), sessions: [suzuki], want: 'nobody' },
    { name: 'two users: only the one the notice is for', notice: n(), sessions: [suzuki, tanaka], want: 'show:tanaka' },
    { name: 'notice for nobody in particular → everyone logged in', notice: n({ user: '' }), sessions: [suzuki, tanaka], want: 'show:suzuki,tanaka' },
    { name: 'test override session takes any user', notice: n({ user: 'yamada' }), sessions: [{ ...tanaka, user: '' }], want: 'show:' },
    { name: 'user name from another terminal (no such session)', notice: n({ user: 'tanaka@pc-07' }), want: 'nobody' },
  ];
  for (const c of table) {
    it(c.name, () => {
      const d = decideNotice(c.notice, c.settings ?? ON, c.sessions ?? [tanaka], newMemory(), 1_000);
      expect(d.show ? `show:${d.targets.map((t) => t.user).join(',')}` : d.why).toBe(c.want);
    });
  }

  it('one notice per device per plug: the same plug again is a duplicate, a re-plug (new devnum) is new', () => {
    const mem = newMemory();
    expect(decideNotice(n(), ON, [tanaka], mem, 1).show).toBe(true);
    expect(decideNotice(n(), ON, [tanaka], mem, 2)).toEqual({ show: false, why: 'duplicate' }); // re-judged (policy change)
    expect(decideNotice(n({ key: 'usb|1-1|1|6' }), ON, [tanaka], mem, 3).show).toBe(true); // unplugged and plugged again
    expect(decideNotice(n({ key: 'usb|1-2|1|6' }), ON, [tanaka], mem, 4).show).toBe(true); // another port
  });
  it('nobody logged in at the plug: logging in later does not replay it', () => {
    const mem = newMemory();
    expect(decideNotice(n(), ON, [], mem, 1)).toEqual({ show: false, why: 'nobody' });
    expect(decideNotice(n(), ON, [tanaka], mem, 2)).toEqual({ show: false, why: 'duplicate' });
  });
  it('silenced by monitor mode does not use up the plug: a switch to enforce on the same plug tells once', () => {
    const mem = newMemory();
    expect(decideNotice(n({ monitor: true }), ON, [tanaka], mem, 1)).toEqual({ show: false, why: 'monitor' });
    expect(decideNotice(n(), ON, [tanaka], mem, 2).show).toBe(true);
  });
  it('a notice without key is shown each time (applications are answered once by their producer)', () => {
    const mem = newMemory();
    for (let i = 0; i < 3; i++) expect(decideNotice(n({ key: undefined, kind: 'application_approved' }), ON, [tanaka], mem, i * RATE_WINDOW_MS).show).toBe(true);
  });
  it(`rate: at most ${RATE_MAX} per ${RATE_WINDOW_MS} ms (a hub that re-enumerates endlessly)`, () => {
    const mem = newMemory();
    const shown = Array.from({ length: 100 }, (_, i) => decideNotice(n({ key: `usb|1-1|1|${i}` }), ON, [tanaka], mem, 1_000 + i).show).filter(Boolean);
    expect(shown).toHaveLength(RATE_MAX);
    expect(decideNotice(n({ key: 'later' }), ON, [tanaka], mem, 1_000 + RATE_WINDOW_MS + 100).show).toBe(true);
    // Programs restarted in a loop do not use up the devices' budget, nor the reverse.
    expect(decideNotice(n({ key: 'p', kind: 'software_stopped' }), ON, [tanaka], mem, 1_050).show).toBe(true);
  });
  it('a clock set back, or 2^53, does not wedge the rate bound', () => {
    const mem = newMemory();
    for (let i = 0; i < RATE_MAX; i++) decideNotice(n({ key: `k${i}` }), ON, [tanaka], mem, Number.MAX_SAFE_INTEGER);
    expect(decideNotice(n({ key: 'back' }), ON, [tanaka], mem, 5).show).toBe(true); // times in the "future" are dropped
  });
  it(`memory is bounded: ${SEEN_MAX} keys, oldest forgotten first`, () => {
    const mem = newMemory();
    for (let i = 0; i < SEEN_MAX * 3; i++) decideNotice(n({ key: `k${i}` }), ON, [], mem, i);
    expect(mem.seen.size).toBe(SEEN_MAX);
    expect(mem.seen.has('k0')).toBe(false);
    expect(mem.seen.has(`k${SEEN_MAX * 3 - 1}`)).toBe(true);
  });
});

class FakeDelivery implements NoticeDelivery {
  readonly name = 'fake';
  calls: { user: string; summary: string; body: string }[] = [];
  sessionCalls = 0;
  release: (() => void)[] = [];
  constructor(
    public list: NoticeSession[],
    public mode: 'ok' | 'fail' | 'hang' | 'nobody' | 'throw-sessions' = 'ok',
  ) {}
  sessions(): NoticeSession[] {
    this.sessionCalls++;
    if (this.mode === 'throw-sessions') throw new Error('utmp unreadable');
    return this.list;
  }
  deliver(s: NoticeSession, text: { summary: string; body: string }): Promise<'shown' | 'nobody'> {
    this.calls.push({ user: s.user, ...text });
    if (this.mode === 'fail') return Promise.reject(new Error('bus refused'));
    if (this.mode === 'nobody') return Promise.resolve('nobody');
    if (this.mode === 'hang') return new Promise((r) => this.release.push(() => r('shown')));
    return Promise.resolve('shown');
  }
}

const tick = () => new Promise((r) => setImmediate(r));

describe('Notifier', () => {
  it('notify() returns before anything is decided or delivered, and delivers in the user language', async () => {
    const d = new FakeDelivery([tanaka, suzuki]);
    const logs: string[] = [];
    const nf = new Notifier(d, () => ON, (_l, m) => logs.push(m));
    nf.notify(n({ user: '' }));
    expect(d.sessionCalls).toBe(0);
    expect(d.calls).toHaveLength(0);
    await tick();
    await nf.settle();
    expect(d.calls.map((c) => c.user)).toEqual(['tanaka', 'suzuki']);
    expect(d.calls[0]!.summary).toBe('外部記録媒体を遮断しました');
    expect(d.calls[1]!.summary).toBe('Removable media blocked');
    expect(nf.counters.shown).toBe(2);
  });
  it('a failure is logged and counted, never retried', async () => {
    const d = new FakeDelivery([tanaka], 'fail');
    const logs: string[] = [];
    const nf = new Notifier(d, () => ON, (l, m) => logs.push(`${l} ${m}`));
    nf.notify(n());
    await tick();
    await nf.settle();
    await tick();
    expect(d.calls).toHaveLength(1);
    expect(nf.counters.failed).toBe(1);
    expect(logs.some((l) => l.startsWith('warn') && l.includes('bus refused'))).toBe(true);
  });
  it('unreadable sessions: counted as a failure, no throw', async () => {
    const d = new FakeDelivery([tanaka], 'throw-sessions');
    const nf = new Notifier(d, () => ON, () => {});
    expect(() => nf.notify(n())).not.toThrow();
    await tick();
    expect(nf.counters.failed).toBe(1);
    expect(d.calls).toHaveLength(0);
  });
  it('nobody at the console (found only at delivery): not a failure', async () => {
    const d = new FakeDelivery([{ ...tanaka, user: '' }], 'nobody');
    const nf = new Notifier(d, () => ON, () => {});
    nf.notify(n());
    await tick();
    await nf.settle();
    expect(nf.counters).toMatchObject({ shown: 0, failed: 0, suppressed: { nobody: 1 } });
  });
  it(`deliveries that hang: at most ${MAX_IN_FLIGHT} in flight, the rest dropped and counted`, async () => {
    const d = new FakeDelivery([tanaka], 'hang');
    let t = 0;
    const nf = new Notifier(d, () => ON, () => {}, () => (t += RATE_WINDOW_MS)); // past the rate bound each time
    for (let i = 0; i < 10; i++) nf.notify(n({ key: `k${i}` }));
    await tick();
    expect(d.calls).toHaveLength(MAX_IN_FLIGHT);
    expect(nf.counters.suppressed.busy).toBe(10 - MAX_IN_FLIGHT);
    for (const r of d.release) r();
    await nf.settle();
    expect(nf.counters.shown).toBe(MAX_IN_FLIGHT);
  });
  it('the policy in force is read for each notice', async () => {
    const d = new FakeDelivery([tanaka]);
    let settings = ON;
    const nf = new Notifier(d, () => settings, () => {});
    nf.notify(n({ monitor: true, key: 'a' }));
    await tick();
    settings = { enabled: true, monitor: true };
    nf.notify(n({ monitor: true, key: 'b' }));
    await tick();
    await nf.settle();
    expect(d.calls).toHaveLength(1);
    expect(d.calls[0]!.summary).toBe('外部記録媒体（監視モード）');
  });
});

describe('usbNotice / softwareNotice', () => {
  const dev = { path: '1-1', busnum: 1, devnum: 5, vendorId: '0781', productId: '5567', manufacturer: Buffer.from('SanDisk'), product: Buffer.from('Ultra') };
  const table: [string, Parameters<typeof usbNotice>[1]['eventType'], string | null][] = [
    ['blocked', 'usb.blocked', 'usb_blocked'],
    ['read-only', 'usb.readonly', 'usb_readonly'],
    ['allowed', 'usb.allowed', null],
    ['exception in use', 'usb.exception_used', null],
  ];
  for (const [name, eventType, kind] of table) {
    it(`${name} → ${kind ?? 'no notice'}`, () => {
      const r = usbNotice(dev, { eventType }, { user: 'tanaka', monitor: false, ref: 'AB12CD' });
      expect(r?.kind ?? null).toBe(kind);
    });
  }
  it('subject, key per plug, ref and monitor carried', () => {
    expect(usbNotice(dev, { eventType: 'usb.blocked' }, { user: null, monitor: true, ref: 'AB12CD' })).toEqual({
      kind: 'usb_blocked',
      user: '',
      subject: 'SanDisk Ultra',
      key: 'usb|1-1|1|5',
      ref: 'AB12CD',
      monitor: true,
    });
  });
  it('hostile or missing descriptor strings', () => {
    const bytes = Buffer.concat([Buffer.from('<b>'), Buffer.from([0xff, 0xfe, 0x0a]), Buffer.from('x'.repeat(10_000))]);
    const s = usbNotice({ ...dev, manufacturer: bytes, product: null }, { eventType: 'usb.blocked' }, { user: 'u', monitor: false })!.subject;
    expect(s.length).toBeLessThan(80);
    expect(s).not.toContain('\n');
    expect(usbNotice({ ...dev, manufacturer: null, product: Buffer.from('   ') }, { eventType: 'usb.blocked' }, { user: 'u', monitor: false })!.subject).toBe('USB 0781:5567');
  });
  it('software: stopped / monitor / reported, keyed per user, program and window', () => {
    const o = { user: 'tanaka', uid: 1000, path: '/home/tanaka/Downloads/evil.AppImage', sha256: 'ab'.repeat(32), nowMs: 5 * SOFTWARE_NOTICE_WINDOW_MS + 1 };
    expect(softwareNotice({ ...o, enforce: true, monitor: false })).toMatchObject({ kind: 'software_stopped', subject: 'evil.AppImage' });
    expect(softwareNotice({ ...o, enforce: false, monitor: true })).toMatchObject({ kind: 'software_stopped', monitor: true });
    expect(softwareNotice({ ...o, enforce: false, monitor: false })).toMatchObject({ kind: 'software_reported' });
    const k1 = softwareNotice({ ...o, enforce: true, monitor: false }).key;
    expect(softwareNotice({ ...o, nowMs: o.nowMs + 1000, enforce: true, monitor: false }).key).toBe(k1);
    expect(softwareNotice({ ...o, nowMs: o.nowMs + SOFTWARE_NOTICE_WINDOW_MS, enforce: true, monitor: false }).key).not.toBe(k1);
    expect(softwareNotice({ ...o, uid: 1001, enforce: true, monitor: false }).key).not.toBe(k1);
  });
  it('program names from Linux and Windows paths', () => {
    expect(programName('C:\\Users\\t\\Downloads\\tool.exe')).toBe('tool.exe');
    expect(programName('/tmp/a b/x\n.sh')).toBe('x\\x0a.sh');
    expect(programName('/')).toBe('/');
  });
});
