/**
 * The posture capability's lifecycle with a stand-in platform and context (its readers are tested
 * in posture-probe.test.ts, the real agent in the browser tier): what it sends and when (a change,
 * not the clock), what it does when the console is away, and the screen-lock enforcement — the
 * event written before the files, nothing in monitor-only enrolment.
 */
import { describe, expect, it } from 'vitest';
import type { AgentContext, ConsoleReply, LocalHandler, NewEvent } from '../../agent/capability.js';
import { ConsoleUnreachableError } from '../../agent/capability.js';
import { PostureCapability } from '../../agent/posture/capability.js';
import type { PosturePlatform } from '../../agent/posture/platform.js';
import { report } from '../../agent/posture/probe.js';
import { builtinPolicy, type PolicyDocument } from '../../protocol/policy.js';
import type { PostureDocument } from '../../protocol/posture.js';

function harness(opts: { monitorOnly?: boolean; reachable?: boolean } = {}) {
  const order: string[] = [];
  const sent: PostureDocument[] = [];
  const routes = new Map<string, LocalHandler>();
  let reachable = opts.reachable ?? true;
  let offset = 0;
  const ctx = {
    agentId: '00000000-0000-4000-8000-000000000001',
    stateDir: '/nonexistent',
    monitorOnly: opts.monitorOnly ?? false,
    emit: (e: NewEvent) => {
      order.push(`emit ${e.type}`);
      return e;
    },
    log: () => undefined,
    console: {
      request: async (_m: string, path: string, body?: unknown): Promise<ConsoleReply> => {
        if (!reachable) throw new ConsoleUnreachableError('down');
        order.push(`POST ${path}`);
        sent.push(body as PostureDocument);
        return { status: 200, body: { stored: true } };
      },
      consoleNow: () => new Date(Date.now() + offset),
      reachable: () => reachable,
    },
    local: { socketPath: '/nonexistent/agent.sock', route: (m: string, p: string, h: LocalHandler) => void routes.set(`${m} ${p}`, h) },
  } as unknown as AgentContext;
  let hold = '0';
  const platform: PosturePlatform = {
    name: 'linux',
    read: async () => [report('usb_boot_hold', hold === '0' ? 'ok' : 'fail', [`/sys/module/usbcore/parameters/authorized_default=${hold}`], { configured: true, inEffect: hold })],
    screenLockPlan: (p) => (p.enforce ? { files: ['/etc/dconf/db/local.d/00-sekimori-screenlock'], apply: () => void order.push('write dconf') } : null),
  };
  const cap = new PostureCapability(platform, { checkMs: 3_600_000, resendMs: 3_600_000 });
  return {
    cap,
    ctx,
    sent,
    order,
    routes,
    setHold: (v: string) => (hold = v),
    setReachable: (v: boolean) => (reachable = v),
    setOffset: (ms: number) => (offset = ms),
  };
}

const enforcing = (): PolicyDocument => ({ ...builtinPolicy(), version: 2, agent: { ...builtinPolicy().agent, screenLock: { maxIdleMinutes: 5, enforce: true } } });

describe('posture capability', () => {
  it('sends at the first check, then only when a reading changes (not when the clock offset moves)', async () => {
    const h = harness();
    await h.cap.start(h.ctx, builtinPolicy());
    await h.cap.check(false);
    expect(h.sent).toHaveLength(1);
    expect(h.sent[0]!.controls.map((c) => c.control)).toEqual(['usb_boot_hold', 'software_enforcement', 'agent_health']);
    h.setOffset(1234);
    await h.cap.check(false);
    expect(h.sent).toHaveLength(1);
    h.setHold('1');
    await h.cap.check(false);
    expect(h.sent).toHaveLength(2);
    expect(h.sent[1]!.controls[0]).toMatchObject({ state: 'fail', detail: { inEffect: '1' } });
    await h.cap.check(true); // forced (POST /posture/check)
    expect(h.sent).toHaveLength(3);
    await h.cap.stop();
  });

  it('console away: nothing is lost, the next check sends', async () => {
    const h = harness({ reachable: false });
    await h.cap.start(h.ctx, builtinPolicy());
    await h.cap.check(false);
    expect(h.sent).toHaveLength(0);
    h.setReachable(true);
    await h.cap.check(false);
    expect(h.sent).toHaveLength(1);
    await h.cap.stop();
  });

  it('the local API answers the latest document with its verdicts', async () => {
    const h = harness();
    await h.cap.start(h.ctx, builtinPolicy());
    await h.cap.check(false);
    const r = (await h.routes.get('GET /posture')!({ body: null, peer: { pid: null, uid: null } })) as ConsoleReply;
    const body = r.body as { document: PostureDocument; verdicts: { control: string; ok: boolean }[] };
    expect(body.document.platform).toBe('linux');
    expect(body.verdicts).toHaveLength(8);
    expect(body.verdicts.find((v) => v.control === 'usb_enforced')).toMatchObject({ ok: false }); // not reported: fail closed
    await h.cap.stop();
  });

  it('screen lock enforced by policy: the event is written before the files', async () => {
    const h = harness();
    await h.cap.start(h.ctx, enforcing());
    expect(h.order.slice(0, 2)).toEqual(['emit posture.screen_lock_enforced', 'write dconf']);
    await h.cap.stop();
  });

  it('monitor-only enrolment changes nothing on the machine', async () => {
    const h = harness({ monitorOnly: true });
    await h.cap.start(h.ctx, enforcing());
    await h.cap.applyPolicy({ ...enforcing(), version: 3 });
    expect(h.order.filter((o) => !o.startsWith('POST'))).toEqual([]);
    await h.cap.stop();
  });
});
