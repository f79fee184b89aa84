/**
 * Everything an agent keeps lives under its state folder, so several agents can run side by side
 * on one machine (tests, benchmarks, fleet simulation): keys, outbox, policy, socket.
 */
import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export const DEFAULT_STATE_DIR = process.env.SEKIMORI_AGENT_STATE ?? '/var/lib/sekimori-agent';

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
    socket: join(dir, 'agent.sock'),
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

/** Write-to-temp, fsync, rename, fsync the folder: a crash leaves the old file or the new one. */
export function writeFileDurably(path: string, content: string, mode = 0o600): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, mode);
  renameSync(tmp, path);
  const dfd = openSync(dirname(path), 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/**
 * Reads a JSON state file written by writeFileDurably. Missing, unreadable or malformed → undefined
 * (the caller falls back to its fail-closed default). A temp file left by a crash is never read:
 * the rename is the commit point, so the last complete content is what this returns.
 */
export function readJsonState(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/** The one writer of every agent state file: JSON through writeFileDurably (root-only 0600). */
export function writeJsonState(path: string, value: unknown): void {
  writeFileDurably(path, JSON.stringify(value));
}
