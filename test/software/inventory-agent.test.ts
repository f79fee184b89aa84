/**
 * Software inventory end to end: a real console and a real enrolled agent on loopback (mutual
 * TLS, real SQLite) reporting this machine's dpkg database. The console's list must equal what
 * dpkg-query (an independent reader) says is installed; a package installed later (written to the
 * status file the agent watches, as dpkg does) reaches the console as a replaced list; a restarted
 * agent with an unchanged list reports again and its change time stays.
 *
 * The agent reads a copy of /var/lib/dpkg/status in a folder of the test's own (same content),
 * so that the test can change it without touching the machine's package database.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent, startConsole, tempDir, waitFor, type TestAgent, type TestConsole } from '../integration/harness.js';

const DPKG_STATUS = '/var/lib/dpkg/status';
const haveDpkg = existsSync(DPKG_STATUS) && spawnSync('dpkg-query', ['--version']).status === 0;
if (!haveDpkg) console.warn('SKIPPED software inventory integration: needs a Debian machine (dpkg-query and /var/lib/dpkg/status)');

interface Summary {
  agentId: string;
  platform: string;
  digest: string;
  total: number;
  stored: number;
  changedAt: string;
  reportedAt: string;
}
interface Row {
  name: string;
  version: string;
  arch: string;
}

/** What dpkg itself says is installed (its own parser, not ours). */
function dpkgQuery(admindir: string): Row[] {
  const r = spawnSync('dpkg-query', [`--admindir=${admindir}`, '-W', '-f', '${db:Status-Status}\\t${Package}\\t${Version}\\t${Architecture}\\n'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout
    .split('\n')
    .map((l) => l.split('\t'))
    .filter((f) => f[0] === 'installed')
    .map(([, name, version, arch]) => ({ name: name!, version: version!, arch: arch! }));
}

const key = (r: Row) => `${r.name}\t${r.version}\t${r.arch}`;

describe.skipIf(!haveDpkg || process.platform !== 'linux')('software inventory: real agent, real dpkg database, real console', () => {
  let c: TestConsole;
  let a: TestAgent;
  let admin: string;
  let scope: string;

  beforeAll(async () => {
    const work = tempDir('inventory');
    admin = join(work, 'dpkg');
    scope = join(work, 'scope');
    mkdirSync(join(admin, 'info'), { recursive: true });
    mkdirSync(join(admin, 'updates'), { recursive: true });
    mkdirSync(scope, { recursive: true });
    copyFileSync(DPKG_STATUS, join(admin, 'status'));
    c = await startConsole({
      policy: {
        agent: { heartbeatSeconds: 1, uploadBatchSize: 500 },
        // Monitor mode over an empty folder: the inventory is what is under test, not the allowlist.
        software: { mode: 'monitor', locations: [scope], packages: { adminDir: admin, root: '/' }, syncSeconds: 1 },
      },
    });
    a = await enrollAgent(c);
  }, 120_000);
  afterAll(async () => {
    await a?.cleanup();
    await c?.cleanup();
  });

  const summary = () => c.json<Summary[]>(['software', 'inventory']).find((s) => s.agentId === a.agentId) ?? null;
  const packages = () => c.json<Summary & { packages: Row[] }>(['software', 'inventory', '--agent', a.agentId]).packages;

  it('the console holds exactly what dpkg-query says is installed', async () => {
    const s = await waitFor('inventory at the console', summary, 60_000, 500);
    const want = dpkgQuery(admin);
    expect(want.length).toBeGreaterThan(50); // a real system, not an empty database
    expect(s.platform).toBe('linux');
    expect(s.stored).toBe(want.length);
    expect(s.total).toBe(want.length);
    const got = packages();
    expect(got.map(key).sort()).toEqual(want.map(key).sort());
  }, 90_000);

  it('which terminals have coreutils (and with its exact version)', () => {
    const core = dpkgQuery(admin).find((r) => r.name === 'coreutils');
    expect(core).toBeDefined();
    const hits = c.json<{ agentId: string; version: string }[]>(['software', 'inventory', '--package', 'coreutils']);
    expect(hits.map((h) => [h.agentId, h.version])).toEqual([[a.agentId, core!.version]]);
    expect(c.json<unknown[]>(['software', 'inventory', '--package', 'coreutils', '--version', core!.version])).toHaveLength(1);
    expect(c.json<unknown[]>(['software', 'inventory', '--package', 'coreutils', '--version', '0:no-such-version'])).toHaveLength(0);
    const human = c.cli(['software', 'inventory', '--package', 'coreutils']);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(a.agentId);
  });

  it('a package installed later replaces the list at the console', async () => {
    const before = summary()!;
    const para = ['Package: sekimori-inventory-probe', 'Status: install ok installed', 'Priority: optional', 'Architecture: all', 'Version: 1.2.3-1', 'Description: test entry', ''].join('\n');
    writeFileSync(join(admin, 'status'), readFileSync(join(admin, 'status'), 'utf8').replace(/\n*$/, '\n\n') + para);
    await waitFor('the new package at the console', () => c.json<{ version: string }[]>(['software', 'inventory', '--package', 'sekimori-inventory-probe'])[0], 60_000, 500);
    const after = summary()!;
    expect(after.digest).not.toBe(before.digest);
    expect(after.stored).toBe(before.stored + 1);
    expect(packages().map(key).sort()).toEqual(dpkgQuery(admin).map(key).sort());
    // The same change is an event too (the package watch), recorded by the agent.
    await waitFor('software.installed', () => c.events(['--agent', a.agentId, '--type', 'software.installed']).find((e) => e.data.name === 'sekimori-inventory-probe'), 30_000, 500);
  }, 120_000);

  it('a restarted agent with the same list reports again: same digest, the change time stays, the report time moves', async () => {
    const before = summary()!;
    await a.stop();
    await a.start();
    const after = await waitFor('a new report time', () => {
      const s = summary();
      return s && s.reportedAt > before.reportedAt ? s : null;
    }, 60_000, 500);
    expect(after.digest).toBe(before.digest);
    expect(after.changedAt).toBe(before.changedAt);
  }, 120_000);
});
