/**
 * Everything an agent keeps lives under its state folder, so several agents can run side by side
 * on one machine (tests, benchmarks, fleet simulation): keys, outbox, policy, socket.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { defaultStateDir, localEndpoint } from './os.js';

export const DEFAULT_STATE_DIR = process.env.SEKIMORI_AGENT_STATE ?? defaultStateDir();

export function agentPaths(stateDir: string) {
  const dir = resolve(stateDir);
  return {
    dir,
    identity: join(dir, 'identity.json'),
    key: join(dir, 'agent-key.pem'),
    cert: join(dir, 'agent-cert.pem'),
    ca: join(dir, 'console-ca.pem'),
    policyKey: join(dir, 'policy-key.pub.pem'),
    policy: join(dir, 'policy.json'),
    outbox: join(dir, 'outbox.db'),
    /** The local API: STATE/agent.sock on Linux, a named pipe on Windows. */
    socket: localEndpoint(dir),
    pid: join(dir, 'agent.pid'),
  };
}
export type AgentPaths = ReturnType<typeof agentPaths>;

export interface Identity {
  agentId: string;
  consoleUrl: string;
  caFingerprint: string;
  enrolledAt: string;
  monitorOnly: boolean;
}

export function loadIdentity(paths: AgentPaths): Identity {
  if (!existsSync(paths.identity)) {
    throw new Error(
      `${paths.dir}: 未登録です。先に sekimori-agent enroll を実行してください / not enrolled: run sekimori-agent enroll first`,
    );
  }
  return JSON.parse(readFileSync(paths.identity, 'utf8')) as Identity;
}

export { readJsonState, writeFileDurably, writeJsonState } from './durable.js';
