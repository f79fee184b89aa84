/**
 * The software capability's console sync, as the console judges it: every request must pass the
 * wire check (protocol/api.ts). Regression: a restore request naming something that is no
 * quarantine id came back as a result with that id, which the console refuses (result ids are
 * UUIDs); the result was put back for the next sync, so every later sync was refused and the
 * terminal's quarantine was never reported again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentContext, ConsoleReply } from '../../agent/capability.js';
import { SoftwareCapability } from '../../agent/software/index.js';
import { softwareSyncRequestCheck } from '../../protocol/api.js';
import { defaultSoftwarePolicy } from '../../protocol/policy-software.js';
import { builtinPolicy, type PolicyDocument } from '../../protocol/policy.js';

const dirs: string[] = [];
const caps: SoftwareCapability[] = [];
afterEach(async () => {
  for (const c of caps.splice(0)) await c.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe.skipIf(process.platform !== 'linux')('software console sync', () => {
  it.each([
    ['not a UUID', 'not-an-id'],
    ['a path', '../../etc/passwd'],
    ['a very long string', 'x'.repeat(10_000)],
  ])('a restore request for %s does not stop later syncs', async (_name, badId) => {
    const state = mkdtempSync(join(tmpdir(), 'sekimori-swsync-'));
    dirs.push(state);
    const requests: { body: unknown; errors: string[] }[] = [];
    const request = async (_m: string, path: string, body?: unknown): Promise<ConsoleReply> => {
      expect(path).toBe('/api/agent/software/sync');
      const errors = softwareSyncRequestCheck.errors(body, 'body');
      requests.push({ body, errors });
      if (errors.length) return { status: 400, body: { error: 'bad_request', details: errors } };
      return { status: 200, body: { restore: requests.length === 1 ? [badId] : [] } };
    };
    const ctx: AgentContext = {
      agentId: 'agent-under-test',
      stateDir: state,
      monitorOnly: false,
      emit: () => ({}) as ReturnType<AgentContext['emit']>,
      log: () => undefined,
      console: { request, consoleNow: () => new Date(), reachable: () => true },
      local: { route: () => undefined, socketPath: join(state, 'agent.sock') },
    };
    // No allowlist: no observers, only the sync runs (every second).
    const policy: PolicyDocument = { ...builtinPolicy(), version: 1, software: { ...defaultSoftwarePolicy(), packages: { adminDir: '', root: '/' }, syncSeconds: 1 } };
    const cap = new SoftwareCapability();
    caps.push(cap);
    await cap.start(ctx, policy);
    for (let i = 0; i < 200 && requests.length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    expect(requests.length).toBeGreaterThanOrEqual(3);
    expect(requests.map((r) => r.errors)).toEqual(requests.map(() => []));
  });
});
