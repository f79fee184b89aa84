/**
 * A watched folder that does not exist when the agent starts (a user's Downloads, made at first
 * logon) is watched once it appears. Before: the folders were filtered by existence once, at the
 * start, and only a change of the platform's default roots restarted the watch — so a file saved
 * into the new folder was never judged.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentContext, ConsoleReply, NewEvent } from '../../agent/capability.js';
import { SoftwareCapability } from '../../agent/software/index.js';
import { defaultSoftwarePolicy } from '../../protocol/policy-software.js';
import { builtinPolicy, type PolicyDocument } from '../../protocol/policy.js';

const dirs: string[] = [];
const caps: SoftwareCapability[] = [];
afterEach(async () => {
  for (const c of caps.splice(0)) await c.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe.skipIf(process.platform !== 'linux')('software: a watched folder created after the start', () => {
  it('is watched after the next roots check, and a file saved into it is judged', async () => {
    const base = mkdtempSync(join(tmpdir(), 'sekimori-lateroot-'));
    dirs.push(base);
    const state = join(base, 'state');
    const late = join(base, 'home', 'Downloads');
    mkdirSync(state);
    const events: NewEvent[] = [];
    const ctx: AgentContext = {
      agentId: 'agent-under-test',
      stateDir: state,
      monitorOnly: false,
      emit: (e) => {
        events.push(e as NewEvent);
        return {} as ReturnType<AgentContext['emit']>;
      },
      log: () => undefined,
      console: { request: async (): Promise<ConsoleReply> => ({ status: 503, body: {} }), consoleNow: () => new Date(), reachable: () => false },
      local: { route: () => undefined, socketPath: join(state, 'agent.sock') },
    };
    const software = { ...defaultSoftwarePolicy(), locations: [late], packages: { adminDir: '', root: '/' }, rules: [{ kind: 'path' as const, action: 'allow' as const, prefix: '/usr/bin' }] };
    const policy: PolicyDocument = { ...builtinPolicy(), version: 1, software };
    const cap = new SoftwareCapability();
    caps.push(cap);
    await cap.start(ctx, policy);

    mkdirSync(late, { recursive: true });
    await (cap as unknown as { refreshRoots(): Promise<void> }).refreshRoots();
    await (cap as unknown as { watcherReady: Promise<void> }).watcherReady;
    const file = join(late, 'tool');
    writeFileSync(file, '#!/bin/sh\necho hi\n');
    chmodSync(file, 0o755);
    for (let i = 0; i < 200 && !events.some((e) => e.type === 'software.unauthorized_file'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(events.filter((e) => e.type === 'software.unauthorized_file').map((e) => (e.data as { path: string }).path)).toContain(file);
  });
});
