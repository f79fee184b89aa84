/**
 * Unauthorized software with the real agent and console processes on this machine. Everything
 * the agent watches, kills or quarantines lives in this test's own temp folder (policy
 * `locations`), and the dpkg database is a scratch one (`--admindir`/`--instdir`): the host's
 * software and processes are never touched.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent, runCli, startConsole, tempDir, waitFor, type ConsoleEventJson, type TestAgent, type TestConsole } from '../../integration/harness.js';
import { requireTools } from '../tools.js';

const tools = requireTools('software e2e (dpkg)', ['dpkg', 'dpkg-deb'], 'apt-get install dpkg dpkg-dev');
const linux = process.platform === 'linux';

function localGet(a: TestAgent, path: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: join(a.stateDir, 'agent.sock'), path, method: 'GET', timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

function alive(p: ChildProcess): boolean {
  return p.exitCode === null && p.signalCode === null;
}

describe.skipIf(!tools.ok || !linux)('unauthorized software (real agent, scratch scope)', () => {
  let c: TestConsole;
  let a: TestAgent;
  let work: string;
  let scope: string;
  let admin: string;
  let instdir: string;
  const children: ChildProcess[] = [];
  const events = (type: string): ConsoleEventJson[] => c.events(['--agent', a.agentId, '--type', type]);
  const waitEvent = (type: string, pred: (e: ConsoleEventJson) => boolean, what = type) =>
    waitFor(`${what} at the console`, () => events(type).find(pred), 30_000, 300);
  const start = (cmd: string, args: string[]) => {
    const p = spawn(cmd, args, { stdio: 'ignore' });
    children.push(p);
    return p;
  };

  beforeAll(async () => {
    work = tempDir('software-e2e');
    scope = join(work, 'scope');
    admin = join(work, 'dpkg-admin');
    instdir = join(work, 'instroot');
    for (const d of ['bin', 'tmp', 'home/staff/Downloads', 'home/staff/Desktop']) mkdirSync(join(scope, d), { recursive: true });
    mkdirSync(join(admin, 'info'), { recursive: true });
    mkdirSync(join(admin, 'updates'), { recursive: true });
    mkdirSync(instdir, { recursive: true });
    writeFileSync(join(admin, 'status'), '');
    // The reference terminal's software: two approved binaries.
    copyFileSync('/usr/bin/sleep', join(scope, 'bin', 'approved-sleep'));
    copyFileSync('/usr/bin/true', join(scope, 'bin', 'approved-true'));
    chmodSync(join(scope, 'bin', 'approved-sleep'), 0o755);
    chmodSync(join(scope, 'bin', 'approved-true'), 0o755);
    const baselineFile = join(work, 'baseline.json');
    const b = runCli('agent', ['baseline', '--out', baselineFile, '--scope', join(scope, 'bin'), '--admindir', admin, '--root', instdir]);
    expect(b.code, b.stderr).toBe(0);

    c = await startConsole({
      policy: {
        agent: { heartbeatSeconds: 1, uploadBatchSize: 500 },
        software: {
          mode: 'monitor',
          locations: [scope, join(instdir, 'usr/bin')],
          watchDepth: 6,
          scanIntervalMs: 250,
          packages: { adminDir: admin, root: instdir },
          quarantine: { enabled: true, dir: '' },
          syncSeconds: 1,
        },
      },
    });
    const imported = c.json<{ id: string; status: string }>(['software', 'baseline', 'import', '--file', baselineFile, '--by', 'admin1']);
    expect(imported.status).toBe('pending');
    const approved = c.json<{ policyVersion: number }>(['software', 'baseline', 'approve', imported.id, '--by', 'admin1']);
    expect(approved.policyVersion).toBeGreaterThan(1);
    const pol = c.json<{ policy: { software: { baseline: { id: string; files: unknown[] } } } }>(['policy', 'get']);
    expect(pol.policy.software.baseline.id).toBe(imported.id);
    expect(pol.policy.software.baseline.files.length).toBe(2);
    const admins = c.events(['--type', 'admin.software_baseline_approved']);
    expect(admins.map((e) => e.user)).toContain('admin1');

    a = await enrollAgent(c);
    await waitFor('software capability active and watching', async () => {
      const s = (await localGet(a, '/software/status')) as { stats?: { active?: boolean; watching?: boolean } };
      return s.stats?.active && s.stats.watching;
    });
  });

  afterAll(async () => {
    for (const p of children) if (alive(p)) p.kill('SIGKILL');
    await a?.cleanup();
    await c?.cleanup();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('monitor: a copied binary started from the scope tmp is reported, not killed', async () => {
    const bin = join(scope, 'tmp', 'copied-sleep');
    copyFileSync('/usr/bin/sleep', bin);
    chmodSync(bin, 0o755);
    const p = start(bin, ['30']);
    const e = await waitEvent('software.unauthorized_process', (x) => x.data.pid === p.pid);
    expect(e.data.path).toBe(bin);
    expect(e.data.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(e.data.mode).toBe('monitor');
    expect(e.data.action).toBe('none');
    expect(e.data.rule).toMatch(/default deny/);
    expect(e.user).toBe('root');
    expect(alive(p)).toBe(true); // monitor mode kills nothing
    // The new file itself was reported by the watcher too.
    await waitEvent('software.unauthorized_file', (x) => x.data.path === bin);
    p.kill('SIGKILL');
  });

  it('monitor: an interpreter running a script from the scope is judged by the script', async () => {
    const script = join(scope, 'tmp', 'run.sh');
    writeFileSync(script, '#!/bin/sh\nsleep 30\n');
    const p = start('/bin/sh', [script]);
    const e = await waitEvent('software.unauthorized_process', (x) => x.data.pid === p.pid, 'script process');
    expect(e.data.script).toBe(script);
    expect(e.data.path).toBe(script);
    p.kill('SIGKILL');
  });

  it('nothing in the approved baseline is reported', async () => {
    const p = start(join(scope, 'bin', 'approved-sleep'), ['3']);
    const t = spawnSync(join(scope, 'bin', 'approved-true'));
    expect(t.status).toBe(0);
    await new Promise((r) => setTimeout(r, 2000)); // several scan periods
    expect(alive(p)).toBe(true);
    // A later unauthorized run proves events from this window have been uploaded.
    const marker = join(scope, 'tmp', 'marker-sleep');
    copyFileSync('/usr/bin/sleep', marker);
    chmodSync(marker, 0o755);
    const m = start(marker, ['30']);
    await waitEvent('software.unauthorized_process', (x) => x.data.pid === m.pid, 'marker');
    m.kill('SIGKILL');
    const all = c.events(['--agent', a.agentId]).filter((e) => e.type.startsWith('software.'));
    const inBaseline = all.filter((e) => typeof e.data.path === 'string' && (e.data.path as string).startsWith(join(scope, 'bin') + '/'));
    expect(inBaseline).toEqual([]);
    p.kill('SIGKILL');
  });

  it('installing and removing a test .deb (scratch dpkg database) is reported with name and version', async () => {
    const pkg = join(work, 'pkg');
    mkdirSync(join(pkg, 'DEBIAN'), { recursive: true });
    mkdirSync(join(pkg, 'usr/bin'), { recursive: true });
    writeFileSync(join(pkg, 'DEBIAN/control'), 'Package: sekimori-test-hello\nVersion: 1.0-1\nArchitecture: all\nMaintainer: Sekimori tests <tests@example.invalid>\nDescription: test package\n');
    writeFileSync(join(pkg, 'usr/bin/sekimori-hello'), '#!/bin/sh\necho hello\n', { mode: 0o755 });
    const deb = join(work, 'hello.deb');
    const built = spawnSync('dpkg-deb', ['--build', '--root-owner-group', pkg, deb], { encoding: 'utf8' });
    expect(built.status, built.stderr).toBe(0);
    const dpkg = (args: string[]) => spawnSync('dpkg', [`--admindir=${admin}`, `--instdir=${instdir}`, '--force-not-root', ...args], { encoding: 'utf8' });
    const inst = dpkg(['-i', deb]);
    expect(inst.status, inst.stderr).toBe(0);
    const e = await waitEvent('software.installed', (x) => x.data.name === 'sekimori-test-hello');
    expect(e.data.version).toBe('1.0-1');
    expect(e.data.authorized).toBe(false);
    const rm = dpkg(['--remove', 'sekimori-test-hello']);
    expect(rm.status, rm.stderr).toBe(0);
    const r = await waitEvent('software.removed', (x) => x.data.name === 'sekimori-test-hello');
    expect(r.data.version).toBe('1.0-1');
  });

  describe('enforce mode', () => {
    let prepared: string;
    beforeAll(async () => {
      // Put the binary in place while still in monitor mode, so the watcher reports it but does not move it.
      prepared = join(scope, 'tmp', 'enforce-sleep');
      copyFileSync('/usr/bin/sleep', prepared);
      chmodSync(prepared, 0o755);
      await waitEvent('software.unauthorized_file', (x) => x.data.path === prepared, 'prepared file');
      const current = c.json<{ policy: Record<string, unknown> & { software: Record<string, unknown>; version: number } }>(['policy', 'get']).policy;
      const body = { ...current, software: { ...current.software, mode: 'enforce' } };
      delete (body as Record<string, unknown>).version;
      delete (body as Record<string, unknown>).issuedAt;
      delete (body as Record<string, unknown>).issuedBy;
      const f = join(work, 'enforce.json');
      writeFileSync(f, JSON.stringify(body));
      const r = c.cli(['policy', 'set', '--file', f]);
      expect(r.code, r.stderr).toBe(0);
      await waitFor('enforce policy applied', async () => {
        const s = (await localGet(a, '/software/status')) as { mode?: string };
        return s.mode === 'enforce';
      });
    });

    it('an unauthorized process is killed', async () => {
      const p = start(prepared, ['30']);
      const exited = new Promise<string | null>((r) => p.once('exit', (_code, sig) => r(sig)));
      const k = await waitEvent('software.killed', (x) => x.data.pid === p.pid);
      expect(k.data.path).toBe(prepared);
      expect(await exited).toBe('SIGKILL');
      const u = events('software.unauthorized_process').find((x) => x.data.pid === p.pid)!;
      expect(u.data.action).toBe('kill');
      expect(u.seq).toBeLessThan(k.seq); // recorded before acting
    });

    it('a new executable dropped into a home folder is reported, quarantined and restorable from the console', async () => {
      const dropped = join(scope, 'home/staff/Downloads', 'setup.bin');
      copyFileSync('/usr/bin/true', dropped);
      chmodSync(dropped, 0o750);
      const mtime = statSync(dropped).mtimeMs;
      const u = await waitEvent('software.unauthorized_file', (x) => x.data.path === dropped, 'dropped file');
      expect(u.data.action).toBe('quarantine');
      const q = await waitEvent('software.quarantined', (x) => x.data.path === dropped);
      expect(existsSync(dropped)).toBe(false);
      const qdir = join(a.stateDir, 'software', 'quarantine');
      expect(statSync(qdir).mode & 0o777).toBe(0o700);
      const id = q.data.id as string;
      const listed = await waitFor('quarantine listed at the console', () =>
        c.json<{ id: string; state: string; path: string }[]>(['software', 'quarantine', 'list', '--agent', a.agentId]).find((x) => x.id === id),
      );
      expect(listed.state).toBe('quarantined');
      expect(listed.path).toBe(dropped);
      const req = c.json<{ state: string }>(['software', 'quarantine', 'restore', id, '--by', 'admin1']);
      expect(req.state).toBe('restore_requested');
      await waitEvent('software.restored', (x) => x.data.id === id);
      expect(existsSync(dropped)).toBe(true);
      expect(statSync(dropped).mode & 0o7777).toBe(0o750);
      expect(Math.round(statSync(dropped).mtimeMs)).toBe(Math.round(mtime));
      expect(readFileSync(dropped).equals(readFileSync('/usr/bin/true'))).toBe(true);
      await waitFor('console marks it restored', () => c.json<{ id: string; state: string }[]>(['software', 'quarantine', 'list']).find((x) => x.id === id && x.state === 'restored'));
      expect(c.events(['--type', 'admin.software_restore_requested']).length).toBe(1);
      // Restored by an administrator: not quarantined again.
      await new Promise((r) => setTimeout(r, 1000));
      expect(existsSync(dropped)).toBe(true);
    });
  });
});
