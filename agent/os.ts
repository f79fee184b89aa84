/**
 * Which OS the agent runs on (the only place that reads process.platform) and the facts that follow
 * from it without any platform implementation: state folder, local API endpoint, OS description.
 * Kept light: every CLI command (also mfa-verify at login) imports it through state.ts.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { release, type } from 'node:os';
import { join, win32 } from 'node:path';


/** "Debian GNU/Linux 12 (bookworm) / Linux 6.1.0" — shown on the console's terminal page. */
export function osDescription(): string {
  try {
    const m = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'));
    if (m) return `${m[1]} / ${type()} ${release()}`;
  } catch {
    // not Linux, or no os-release
  }
  return `${type()} ${release()}`;
}

export type AgentOs = 'linux' | 'windows' | 'other';

export function agentOs(platform: NodeJS.Platform = process.platform): AgentOs {
  return platform === 'linux' ? 'linux' : platform === 'win32' ? 'windows' : 'other';
}

/** The agent's local API on Windows: a named pipe (pipes live in their own namespace, not in the state folder). */
export const WINDOWS_PIPE = '\\\\.\\pipe\\sekimori-agent';

/** Where an agent keeps its state unless --state says otherwise. */
export function defaultStateDir(os: AgentOs = agentOs(), env: NodeJS.ProcessEnv = process.env): string {
  if (os === 'windows') return win32.join(env.ProgramData ?? env.PROGRAMDATA ?? 'C:\\ProgramData', 'Sekimori', 'agent');
  return '/var/lib/sekimori-agent';
}

/**
 * Where the root-only local API listens. Linux: STATE/agent.sock (unchanged). Windows: the named
 * pipe \\.\pipe\sekimori-agent for the default state folder, and one named after a hash of the
 * folder for any other, so agents with different --state folders still run side by side. The
 * pipe gets Windows' default DACL (full control for SYSTEM, Administrators and the creator; read
 * only for Everyone, which cannot send a request), and Node creates it with
 * FILE_FLAG_FIRST_PIPE_INSTANCE, so a pipe someone else made first makes listen fail instead of
 * being shared.
 */
export function localEndpoint(stateDir: string, os: AgentOs = agentOs(), env: NodeJS.ProcessEnv = process.env): string {
  if (os !== 'windows') return join(stateDir, 'agent.sock');
  const dir = win32.resolve(stateDir).toLowerCase();
  if (dir === win32.resolve(defaultStateDir(os, env)).toLowerCase()) return WINDOWS_PIPE;
  return `${WINDOWS_PIPE}-${createHash('sha256').update(dir).digest('hex').slice(0, 16)}`;
}

/** Whether the endpoint is a Windows named pipe (no chmod, no unlink of a stale socket). */
export const isNamedPipe = (endpoint: string): boolean => /^\\\\[.?]\\pipe\\/i.test(endpoint);
