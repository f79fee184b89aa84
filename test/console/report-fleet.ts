/**
 * A seeded fleet for the 自己点検レポート tests (unit and browser): five terminals written through
 * the console's real stores — events through the real ingester (hash chains computed as agents
 * do), exceptions through request → approval and a direct grant, a signed policy — with known
 * answers per item (EXPECTED). One host name is hostile markup.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createIngester } from '../../console/backbone/ingest.js';
import type { ConsoleContext } from '../../console/module.js';
import { storePosture } from '../../console/posture/store.js';
import { applicationsCatchUp, decideApplication, listApplications } from '../../console/usb/applications-store.js';
import { decideRequest, grantException, requestException } from '../../console/usb/store.js';
import type { PostureControl, PostureControlReport, PostureDocument } from '../../protocol/posture.js';
import { chainEvent, genesisHash, type AgentEventType, type SekimoriEvent } from '../../protocol/events.js';
import { defaultPolicyBody } from '../../protocol/policy.js';

export const HOSTILE_HOST = '<img src=x onerror=alert(1)>';
/** Terminal ids (fixed so tests can name them). */
export const FLEET = {
  good1: 'aaaaaaaa-0000-4000-8000-000000000001',
  good2: 'aaaaaaaa-0000-4000-8000-000000000002',
  monitor: 'aaaaaaaa-0000-4000-8000-000000000003',
  gap: 'aaaaaaaa-0000-4000-8000-000000000004',
  silent: 'aaaaaaaa-0000-4000-8000-000000000005',
} as const;
export const HOSTNAMES: Record<keyof typeof FLEET, string> = { good1: 'mn-pc-001', good2: 'mn-pc-002', monitor: HOSTILE_HOST, gap: 'mn-pc-004', silent: 'mn-pc-005' };

/**
 * Per item: compliant terminals of 5 and the offenders (by key of FLEET). Posture: all ok except
 * good2's screen lock (30 min idle) and monitor's USB/software mode; silent never reported.
 */
export const EXPECTED: Record<string, { covered: number; offenders: (keyof typeof FLEET)[] }> = {
  export: { covered: 3, offenders: ['monitor', 'silent'] },
  mfa: { covered: 3, offenders: ['gap', 'silent'] },
  screenLock: { covered: 3, offenders: ['good2', 'silent'] },
  software: { covered: 3, offenders: ['monitor', 'silent'] },
  exceptions: { covered: 4, offenders: ['monitor'] },
  logs: { covered: 3, offenders: ['gap', 'silent'] },
  policy: { covered: 5, offenders: [] },
};

/** A posture document as an agent sends it, every control in order unless changed. */
export function postureDoc(policyVersion: number, collectedAt: string, change: Partial<Record<PostureControl, PostureControlReport>> = {}): PostureDocument {
  const ok = (control: PostureControl, detail: PostureControlReport['detail']): PostureControlReport => change[control] ?? { control, state: 'ok', evidence: [`${control}: fixture`], detail };
  return {
    platform: 'linux',
    collectedAt,
    agentVersion: '1.0.0',
    policyVersion,
    clockOffsetMs: 0,
    outboxDepth: 0,
    controls: [
      ok('usb_enforced', { mode: 'enforce', rootHubs: 2, rootHubsHolding: 2 }),
      ok('usb_boot_hold', { configured: true, inEffect: '2' }),
      ok('usb_readonly_rule', { present: true }),
      ok('mfa_pam_services', { services: [{ name: 'login', present: true, included: true }, { name: 'gdm-password', present: true, included: true }] }),
      ok('mfa_enrolment', {}),
      ok('screen_lock', { idleDelaySeconds: 300, lockEnabled: true, lockedDown: true }),
      ok('software_enforcement', { mode: 'enforce', preexecRunning: true }),
      ok('agent_health', { clockOffsetMs: 0 }),
    ],
  };
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

export function seedFleet(ctx: ConsoleContext, now = new Date()): { exceptionId: string; directId: string; applicationId: string; applicationGrant: string } {
  const body = defaultPolicyBody();
  body.software.mode = 'enforce';
  const version = ctx.publishPolicy(body, 'admin').policy.version;
  const t0 = now.getTime() - 3_600_000;
  for (const [k, id] of Object.entries(FLEET) as [keyof typeof FLEET, string][]) {
    ctx.db
      .prepare('INSERT INTO agents (id, hostname, os, agent_version, cert_fingerprint, enrolled_at, last_seen, status, policy_version, monitor_only) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(id, HOSTNAMES[k], 'linux', '1.0.0', 'fp-' + k, new Date(t0 - 86_400_000).toISOString(), now.toISOString(), k === 'silent' ? 'silent' : 'online', version, k === 'monitor' ? 1 : 0);
  }
  const ingest = createIngester(ctx.db);
  const chains = new Map<string, { seq: number; hash: string }>();
  const send = (agentId: string, type: AgentEventType, data: Record<string, unknown>, user: string | null = null, skip = 0): SekimoriEvent => {
    const prev = chains.get(agentId) ?? { seq: 0, hash: genesisHash(agentId) };
    const seq = prev.seq + 1 + skip;
    // A skipped seq: the chain continues from a hash the console never saw (a deleted event).
    const prevHash = skip ? sha('deleted' + seq) : prev.hash;
    const e = chainEvent(prevHash, { id: randomUUID(), agentId, seq, ts: new Date(t0 + seq * 1000).toISOString(), type, severity: 'info', user, data });
    ingest(agentId, [e], now);
    chains.set(agentId, { seq, hash: e.hash });
    return e;
  };
  const mfa = (terminal: string) => ({ terminal, result: 'accept', reason: 'ok', via: 'pam', service: 'login' });
  for (const k of ['good1', 'good2', 'monitor', 'gap', 'silent'] as const) {
    send(FLEET[k], 'agent.started', { version: '1.0.0' });
    if (k !== 'gap') send(FLEET[k], 'mfa.success', mfa(FLEET[k]), 'tanaka');
  }
  send(FLEET.gap, 'usb.blocked', { note: 'before the gap' });
  send(FLEET.gap, 'agent.started', { version: '1.0.0' }, null, 2);
  const proc = { pid: 4242, uid: 1000, path: '/tmp/x', sha256: null, exe: '/tmp/x', exeSha256: null, deleted: false, rule: 'default', mode: 'enforce' };
  send(FLEET.silent, 'software.unauthorized_process', proc, 'tanaka');
  ctx.recordEvent({ type: 'agent.silent', terminalId: FLEET.silent, data: { agentId: FLEET.silent, hostname: HOSTNAMES.silent, lastSeen: now.toISOString() } });

  const at = new Date(t0).toISOString();
  storePosture(ctx, FLEET.good1, postureDoc(version, at), now.toISOString());
  storePosture(ctx, FLEET.good2, postureDoc(version, at, { screen_lock: { control: 'screen_lock', state: 'fail', evidence: ['idle-delay=uint32 1800'], detail: { idleDelaySeconds: 1800, lockEnabled: true, lockedDown: false } } }), now.toISOString());
  storePosture(
    ctx,
    FLEET.monitor,
    postureDoc(version, at, {
      usb_enforced: { control: 'usb_enforced', state: 'fail', evidence: ['mode monitor'], detail: { mode: 'monitor' } },
      software_enforcement: { control: 'software_enforcement', state: 'fail', evidence: ['mode monitor'], detail: { mode: 'monitor', preexecRunning: false } },
    }),
    now.toISOString(),
  );
  storePosture(ctx, FLEET.gap, postureDoc(version, at), now.toISOString());

  // An exception applied for by one account and approved by another, with one file written under it.
  const q = requestException(ctx, { agentId: FLEET.good1, device: '0781:5581:4C530001', forMs: 4 * 3_600_000, access: 'allow', staffUser: 'tanaka', reason: '住民票データの移送', actor: 'suzuki' }, new Date(t0));
  const d = decideRequest(ctx, q.id, 'approve', 'admin', '', new Date(t0 + 60_000));
  const exceptionId = d.grant!.id;
  send(
    FLEET.good1,
    'usb.file_written',
    {
      device: { port: '1-1', vendorId: '0781', productId: '5581', serialHex: Buffer.from('4C530001').toString('hex'), descriptorHash: '', label: 'SanDisk Ultra', serial: '4C530001', access: 'exception', exceptionId },
      path: '=HYPERLINK("x")/住民票.csv',
      pathHash: sha('p'),
      size: 12345,
      sha256: sha('content'),
      hashSkipped: null,
      uid: 1000,
      userSource: 'writer',
      pid: 99,
      fsType: 'vfat',
      mode: 'enforce',
    },
    'tanaka',
  );
  // A staff member's application from the terminal (申請), approved at the console by another account.
  send(
    FLEET.good2,
    'usb.application_sent',
    { id: randomUUID(), ref: 'A-0001', vendorId: '0781', productId: '5581', serialHex: Buffer.from('APP0001').toString('hex'), descriptorHash: '', serial: 'APP0001', manufacturer: 'SanDisk', product: 'Ultra', port: '1-2', reason: '統計データの提出', hours: 2 },
    'sato',
  );
  applicationsCatchUp(ctx);
  const app = listApplications(ctx, {}, now).find((a) => a.agentId === FLEET.good2)!;
  const applicationGrant = decideApplication(ctx, app.id, { decision: 'approve', actor: 'admin' }, now).grantId!;
  // A direct grant without a request (no separation of duties): the exceptions item flags it.
  const direct = grantException(ctx, { agentId: FLEET.monitor, device: '0781:5581:ZZ', forMs: 3_600_000, reason: '至急', access: 'readonly', actor: 'admin' }, new Date(t0));
  return { exceptionId, directId: direct.id, applicationId: app.id, applicationGrant };
}
