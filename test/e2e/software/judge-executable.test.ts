/**
 * SoftwareCapability.judgeExecutable — the one function that judges an executable fully (the
 * seam a pre-exec helper is handed) — in this process, against this machine's real dpkg database
 * and files, default policy (no baseline, no rule). Read-only: nothing is run, killed or moved.
 */
import { randomUUID } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsoleUnreachableError, type AgentContext, type NewEvent } from '../../../agent/capability.js';
import { SoftwareCapability } from '../../../agent/software/index.js';
import { identityKey } from '../../../agent/software/observe/hash.js';
import { defaultSeverity, type SekimoriEvent } from '../../../protocol/events.js';
import { builtinPolicy } from '../../../protocol/policy.js';
import { defaultSoftwarePolicy } from '../../../protocol/policy-software.js';
import { requireTools } from '../tools.js';

const linux = process.platform === 'linux';
const tools = requireTools('judgeExecutable against the real dpkg database', ['dpkg-query'], 'apt-get install dpkg', {
  missing: existsSync('/var/lib/dpkg/status') ? [] : ['/var/lib/dpkg/status (a Debian machine)'],
});

describe.skipIf(!tools.ok || !linux)('judgeExecutable (default policy, real dpkg database)', () => {
  const work = mkdtempSync('/tmp/sekimori-judge-exec-');
  const events: NewEvent[] = [];
  const cap = new SoftwareCapability();
  const ctx: AgentContext = {
    agentId: 'test',
    stateDir: join(work, 'state'),
    monitorOnly: true, // judged only: nothing on this machine is acted on
    emit(e: NewEvent): SekimoriEvent {
      events.push(e);
      return { id: randomUUID(), agentId: 'test', seq: events.length, ts: new Date().toISOString(), type: e.type, severity: e.severity ?? defaultSeverity(e.type), user: null, data: e.data, prevHash: '', hash: '' };
    },
    log: () => undefined,
    console: { request: () => Promise.reject(new ConsoleUnreachableError('none')), consoleNow: () => new Date(), reachable: () => false },
    local: { route: () => undefined, socketPath: join(work, 'agent.sock') },
  };

  beforeAll(async () => {
    // The default policy, but the slow folders are not watched by this test (the scan is the same).
    await cap.start(ctx, { ...builtinPolicy(), version: 1, software: { ...defaultSoftwarePolicy(), watchDepth: 0, syncSeconds: 3600 } });
    expect(cap.getStats().ownedPaths).toBeGreaterThan(0);
  }, 60_000);
  afterAll(async () => {
    await cap.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('a dpkg-installed binary is trusted, named by its package; through /bin too', async () => {
    const pkg = (await import('node:child_process')).spawnSync('dpkg-query', ['-S', '/bin/sleep'], { encoding: 'utf8' }).stdout.split(':')[0]!.trim();
    for (const p of ['/usr/bin/sleep', '/bin/sleep']) {
      const j = await cap.judgeExecutable(p);
      expect(j.inScope).toBe(true);
      expect(j.subject.path).toBe('/usr/bin/sleep');
      expect(j.verdict).toMatchObject({ allowed: true, reason: 'package_db' });
      expect(j.verdict.rule).toMatch(new RegExp(`^dpkg ${pkg}=`));
      expect(j.digest && identityKey(j.digest)).toMatch(/^\d+:\d+:/);
    }
  });

  it('a copy in /tmp, a symlink to it, and a missing file are not allowed', async () => {
    const copy = join(work, 'sleep-copy');
    copyFileSync('/usr/bin/sleep', copy);
    chmodSync(copy, 0o755);
    symlinkSync(copy, join(work, 'link'));
    expect((await cap.judgeExecutable(copy)).verdict).toMatchObject({ allowed: false, reason: 'not_allowed' });
    const viaLink = await cap.judgeExecutable(join(work, 'link'));
    expect(viaLink.subject.path).toBe(copy);
    expect(viaLink.verdict.allowed).toBe(false);
    expect((await cap.judgeExecutable(join(work, 'missing'))).verdict).toMatchObject({ allowed: false, reason: 'unreadable' });
  });

  it('hashPath: the bytes judged are the ones named by hashPath (a replaced file), the path is what rules see', async () => {
    const copy = join(work, 'other');
    copyFileSync('/usr/bin/true', copy);
    const j = await cap.judgeExecutable('/usr/bin/sleep', { hashPath: copy });
    expect(j.verdict).toMatchObject({ allowed: false, reason: 'package_modified' });
  });

  it('outside every watched location: allowed without reading it', async () => {
    const j = await cap.judgeExecutable('/etc/hostname');
    expect(j).toMatchObject({ inScope: false, digest: null, verdict: { allowed: true } });
  });

  it('a hostile path (NUL, relative, huge) never throws and is never trusted', async () => {
    for (const p of ['rel/ative', '/tmp/\0x', '/tmp/' + 'a'.repeat(5000), '']) {
      const j = await cap.judgeExecutable(p);
      expect(j.verdict.reason === 'package_db').toBe(false);
    }
  });
});
