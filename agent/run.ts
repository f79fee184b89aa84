/**
 * `sekimori-agent run`: the service. Starts from the last good policy on disk (or the strict
 * built-in one), records every event durably before acting, and keeps enforcing while the
 * console is away. The console is only told; it is never asked for permission to block.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { HeartbeatRequest } from '../protocol/api.js';
import type { PolicyDocument, PolicyVerdict } from '../protocol/policy.js';
import { safeText } from '../protocol/text.js';
import { isObject } from '../protocol/validate.js';
import { SEKIMORI_VERSION } from '../protocol/version.js';
import { createCapabilities } from './capabilities.js';
import { Notifier } from './notify/notifier.js';
import { noticeDelivery } from './platform.js';
import { noticeSettingsOf } from '../protocol/notice.js';
import type { AgentEventType } from '../protocol/events.js';
import type { AgentContext, Capability, LogLevel, NewEvent, TypedEvent } from './capability.js';
import { MutualTlsLink } from './link.js';
import { CertRenewer, applyPendingPair } from './renew.js';
import { LocalApiServer } from './local-api.js';
import { osDescription } from './os.js';
import { PolicyStore } from './policy/store.js';
import { Outbox } from './report/outbox.js';
import { Uploader } from './report/uploader.js';
import { DEFAULT_STATE_DIR, agentPaths, loadIdentity } from './state.js';

const LEVELS: LogLevel[] = ['debug', 'info', 'warn', 'error'];

export interface RunningAgent {
  ctx: AgentContext;
  stop(): Promise<void>;
  stopped: Promise<void>;
}

export async function startAgent(stateDir: string): Promise<RunningAgent> {
  const paths = agentPaths(stateDir);
  const identity = loadIdentity(paths);
  const minLevel = LEVELS.indexOf((process.env.SEKIMORI_LOG as LogLevel) ?? 'info');
  const log = (level: LogLevel, m: string) => {
    if (LEVELS.indexOf(level) >= minLevel) process.stderr.write(`[agent ${identity.agentId.slice(0, 8)}] ${new Date().toISOString()} ${level} ${m}\n`);
  };
  const outbox = new Outbox(paths.outbox, identity.agentId);
  const emit = <T extends AgentEventType>(e: TypedEvent<T>) => outbox.append(e as NewEvent);
  const confirmOwed = applyPendingPair(paths); // a certificate renewal a crash interrupted (agent/renew.ts)
  const link = new MutualTlsLink({
    consoleUrl: identity.consoleUrl,
    caPem: readFileSync(paths.ca, 'utf8'),
    keyPem: readFileSync(paths.key, 'utf8'),
    certPem: readFileSync(paths.cert, 'utf8'),
  });
  link.keepOffsetIn(join(paths.dir, 'clock.json')); // console clock offset across restarts (offline TOTP, exceptions)
  const local = new LocalApiServer(paths.socket);
  // Windows: the 申請 pipe's broker stopped (once per outage; it is restarted with backoff, applications refused meanwhile).
  local.onUserPipe = (state, detail) => state === 'down' && emit({ type: 'agent.error', data: { stage: 'user_pipe', reason: `sekimori-pipebroker not running, applications refused: ${detail}`.slice(0, 500) } });
  const ctx: AgentContext = { agentId: identity.agentId, stateDir: paths.dir, monitorOnly: identity.monitorOnly, emit, log, console: link, local };

  const store = new PolicyStore(paths.policy, readFileSync(paths.policyKey, 'utf8'));
  const loaded = store.load();
  // Desktop notices (issue 15): fire-and-forget, dedupe and monitor-mode silence in the notifier.
  const delivery = noticeDelivery();
  const notifier = delivery ? new Notifier(delivery, () => noticeSettingsOf(store.policy().agent), log) : null;
  if (notifier) ctx.notify = (n) => notifier.notify(n);
  if (loaded && !loaded.ok) {
    emit({ type: 'agent.policy_rejected', data: { source: 'disk', reason: loaded.reason, detail: safeText(loaded.detail, 2000), inForce: store.policy().version } });
    log('error', `stored policy rejected (${loaded.reason}): ${loaded.detail}; enforcing v${store.policy().version}`);
  }
  const startedAt = new Date().toISOString();
  emit({
    type: 'agent.started',
    data: { version: SEKIMORI_VERSION, pid: process.pid, policyVersion: store.policy().version, monitorOnly: identity.monitorOnly, hostname: hostname() },
  });
  writeFileSync(paths.pid, String(process.pid));

  const uploader = new Uploader(outbox, link, {
    batchSize: () => store.policy().agent.uploadBatchSize,
    maxBackoffMs: () => Math.max(2_000, store.policy().agent.heartbeatSeconds * 1000),
    log,
    emit,
  });
  let lastHeartbeat: string | null = null;
  const renewer = new CertRenewer(paths, identity.agentId, link, log);
  if (confirmOwed) log('info', 'a renewed certificate awaits confirmation');

  local.route('GET', '/status', () => ({
    status: 200,
    body: {
      agentId: identity.agentId,
      consoleUrl: identity.consoleUrl,
      running: true,
      pid: process.pid,
      startedAt,
      version: SEKIMORI_VERSION,
      policyVersion: store.policy().version,
      monitorOnly: identity.monitorOnly,
      outboxDepth: outbox.depth(),
      deadLetters: outbox.deadLetters().length,
      consoleReachable: link.reachable(),
      lastUpload: uploader.lastSuccess,
      lastUploadError: uploader.lastError,
      lastHeartbeat,
      capabilities: capabilities.map((c) => c.name),
    },
  }));

  const capabilities: Capability[] = createCapabilities(undefined, paths.dir);
  for (const c of capabilities) {
    try {
      await c.start(ctx, store.policy());
    } catch (e) {
      emit({ type: 'agent.error', data: { stage: 'start', capability: c.name, reason: (e as Error).message } });
      log('error', `capability ${c.name} failed to start: ${(e as Error).message}`);
    }
  }
  await local.start();
  uploader.start();

  const applyPolicy = async (policy: PolicyDocument) => {
    for (const c of capabilities) {
      try {
        await c.applyPolicy(policy);
      } catch (e) {
        emit({ type: 'agent.error', data: { stage: 'applyPolicy', capability: c.name, version: policy.version, reason: (e as Error).message } });
      }
    }
  };

  let lastRejection = '';
  const syncPolicy = async () => {
    const reply = await link.request('GET', '/api/agent/policy');
    if (reply.status !== 200) return;
    const verdict: PolicyVerdict = store.offer(reply.body);
    if (verdict.ok) {
      // Stored (store.offer) before anything else; reported as applied once every capability has
      // it in force (a capability that failed said so with agent.error): a console reading
      // agent.policy_applied may rely on the new rules being enforced.
      await applyPolicy(verdict.policy);
      emit({ type: 'agent.policy_applied', data: { version: verdict.policy.version, issuedBy: verdict.policy.issuedBy } });
      log('info', `policy v${verdict.policy.version} applied`);
      return;
    }
    const raw = isObject(reply.body) && isObject(reply.body.policy) ? reply.body.policy.version : null;
    // What the console offered is reported as it was, but only a number can be a version.
    const offered = typeof raw === 'number' && Number.isFinite(raw) ? raw : null;
    const key = `${verdict.reason}:${String(offered)}:${isObject(reply.body) ? String(reply.body.signature).slice(0, 16) : ''}`;
    if (key !== lastRejection) {
      lastRejection = key;
      emit({ type: 'agent.policy_rejected', data: { source: 'console', reason: verdict.reason, detail: safeText(verdict.detail, 2000), offeredVersion: offered, inForce: store.policy().version } });
      log('error', `policy rejected (${verdict.reason}): ${verdict.detail}; keeping v${store.policy().version}`);
    }
  };

  const beat = async (): Promise<void> => {
    const body: HeartbeatRequest = {
      ts: new Date().toISOString(),
      hostname: hostname(),
      os: osDescription(),
      agentVersion: SEKIMORI_VERSION,
      policyVersion: store.policy().version,
      outboxDepth: outbox.depth(),
      monitorOnly: identity.monitorOnly,
    };
    const sent = Date.now();
    const reply = await link.request('POST', '/api/agent/heartbeat', body, 10_000);
    if (reply.status !== 200 || !isObject(reply.body)) {
      log('warn', `heartbeat refused: HTTP ${reply.status}`);
      return;
    }
    lastHeartbeat = new Date().toISOString();
    uploader.observeConsole(reply.body); // issue 17: re-send what a restored console lacks
    if (typeof reply.body.serverTime === 'string') link.observeServerTime(reply.body.serverTime, sent, Date.now());
    if (typeof reply.body.policyVersion === 'number' && reply.body.policyVersion !== store.policy().version) {
      const before = store.policy().version;
      await syncPolicy();
      // Tell the console at once which version is now in force (its terminal list shows it).
      if (store.policy().version !== before) return beat();
    }
    uploader.poke();
    void renewer.check(); // renews the client certificate when it is due (never throws)
  };

  let running = true;
  let beatTimer: NodeJS.Timeout | null = null;
  let beating: Promise<void> = Promise.resolve();
  const scheduleBeat = (ms: number) => {
    beatTimer = setTimeout(() => {
      beating = beat()
        .catch((e: Error) => log('debug', `heartbeat failed: ${e.message}`))
        .finally(() => {
          if (running) scheduleBeat(store.policy().agent.heartbeatSeconds * 1000);
        });
    }, ms);
  };
  scheduleBeat(0);

  let resolveStopped: () => void = () => {};
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  const stop = async () => {
    if (!running) return stopped;
    running = false;
    if (beatTimer) clearTimeout(beatTimer);
    // A heartbeat still in flight must reach the console before the goodbye, or it would mark the
    // terminal online again right after agent.stopped marked it offline.
    await Promise.race([beating, new Promise((r) => setTimeout(r, 3_000).unref())]);
    emit({ type: 'agent.stopped', data: { pid: process.pid, reason: 'signal' } });
    for (const c of [...capabilities].reverse()) {
      try {
        await c.stop();
      } catch (e) {
        log('error', `capability ${c.name} failed to stop: ${(e as Error).message}`);
      }
    }
    uploader.stop();
    await uploader.flush(Date.now() + 3_000).catch(() => {});
    await local.stop();
    link.close();
    outbox.close();
    resolveStopped();
  };
  return { ctx, stop, stopped };
}

export async function runCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { state: { type: 'string', default: DEFAULT_STATE_DIR } } });
  const agent = await startAgent(values.state);
  agent.ctx.log('info', `running (state ${agent.ctx.stateDir}, monitorOnly=${agent.ctx.monitorOnly}, node ${process.version} ${process.execArgv.join(' ')})`);
  const onSignal = () => {
    // Every event is on disk before it is acted on: a stop that hangs (a capability, an upload in
    // flight) loses nothing by ending here, and a service that does not stop is worse.
    setTimeout(() => {
      agent.ctx.log('warn', 'stop took over 10 s; exiting (the outbox is on disk)');
      process.exit(0);
    }, 10_000).unref();
    void agent.stop();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  await agent.stopped;
  // Everything is closed and on disk: a handle left open somewhere must not keep a stopping service
  // alive until its supervisor kills it (seen once in the single-executable tier). Unref'd: a clean
  // exit does not wait for it.
  setTimeout(() => process.exit(0), 2_000).unref();
  return 0;
}
