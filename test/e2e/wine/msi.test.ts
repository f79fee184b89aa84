/**
 * Windows tier: dist/sea/sekimori-agent.msi (npm run package).
 * - Its tables as built (msiinfo, no wine needed): the agent's strictDefaultPlan() as Permanent components,
 *   registry written before the service is installed and started, service auto-start as
 *   LocalSystem, enrolment and Credential Provider settings only when given, the token hidden
 *   from logs, major upgrade.
 * - Under wine 10's msiexec, in a private prefix (other tests read the shared prefix's HKLM):
 *   /i /qn with a real console's one-time token → policy, service and settings registered
 *   (`reg query` listings, parsed; the agent's own enforcer finds nothing to change); the service enrols from the registry, deletes the token and its
 *   agent's agent.started reaches the console; a killed agent is started again; /x unregisters
 *   the product and leaves the device policy (fail closed) and C:\ProgramData\Sekimori (state,
 *   outbox). Wine's RemoveFiles/DeleteServices are not reliable judges: printed, not asserted.
 * Wine's msiexec is not a faithful judge of service start-up on Windows: README says what only
 * real Windows shows.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyRegistryPlan } from '../../../agent/usb/windows/enforcer.js';
import { strictDefaultPlan } from '../../../agent/usb/windows/plan.js';
import { RegExeRegistry } from '../../../agent/windows/registry.js';
import { startConsole, waitFor, type TestConsole } from '../../integration/harness.js';
import { requireTools } from '../tools.js';
import { AGENT_MSI as MSI, clonePrefix, dropPrefix, ensureWindowsPackage, NODE_EXE, PACKAGE_TOOLS, parseRegQuery, requireWine, runWine, startWine, winPath, type WineProcess } from './wine.js';

const POLICY = 'HKEY_LOCAL_MACHINE\\SOFTWARE\\POLICIES\\MICROSOFT\\WINDOWS\\REMOVABLESTORAGEDEVICES';
const CLASSES = ['{53f5630d-b6bf-11d0-94f2-00a0c91efb8b}', '{53f56308-b6bf-11d0-94f2-00a0c91efb8b}', '{6AC27878-A6FA-4155-BA85-F98F491D4F33}', '{F33FDC04-D1AC-4E8E-9A30-19BBD4B108AE}'];
const SERVICE_KEY = 'HKLM\\SYSTEM\\CurrentControlSet\\Services\\SekimoriAgent';
const ENROLL_KEY = 'HKLM\\SOFTWARE\\Sekimori\\Enrollment';
const CP_KEY = 'HKLM\\SOFTWARE\\Netknights GmbH\\PrivacyIDEA-CP';

/** msiinfo export TABLE → rows of named columns. */
function table(name: string): Array<Record<string, string>> {
  const lines = execFileSync('msiinfo', ['export', MSI, name], { encoding: 'utf8' }).split(/\r?\n/).filter((l) => l !== '');
  const cols = lines[0]!.split('\t');
  return lines.slice(3).map((l) => Object.fromEntries(l.split('\t').map((v, i) => [cols[i]!, v])));
}

const msitools = requireTools('Windows package and MSI tables', PACKAGE_TOOLS, 'bash scripts/setup.sh --test');

describe.skipIf(!msitools.ok)('sekimori-agent.msi tables (msiinfo)', () => {
  beforeAll(() => ensureWindowsPackage(), 600_000);

  it("strict default policy: exactly the agent's strictDefaultPlan(), in Permanent 64-bit components", () => {
    const reg = table('Registry');
    const comps = new Map(table('Component').map((c) => [c.Component!, c]));
    const planned = strictDefaultPlan().keys.filter((k) => k.values.length > 0);
    // The four Removable Storage Access classes are among them, with Deny_Read and Deny_Write at least.
    for (const guid of CLASSES) {
      const k = planned.find((p) => p.key.toLowerCase().endsWith(guid.toLowerCase()));
      expect(k?.values.map((v) => `${v.name}=${String(v.data)}`), guid).toEqual(expect.arrayContaining(['Deny_Read=1', 'Deny_Write=1']));
    }
    for (const k of planned) {
      const rows = reg.filter((r) => r.Root === '2' && `HKLM\\${r.Key}`.toLowerCase() === `${k.key}\\`.toLowerCase());
      const want = k.values.map((v) => `${v.name}=${v.type === 'REG_DWORD' ? `#${v.data}` : String(v.data).replace(/\[/g, '[\\[]').replace(/\]/g, '[\\]]')}`).sort();
      expect(rows.map((r) => `${r.Name}=${r.Value}`).sort(), k.key).toEqual(want);
      const attrs = Number(comps.get(rows[0]!.Component_!)!.Attributes);
      expect(attrs & 16, `${k.key}: msidbComponentAttributesPermanent`).toBe(16);
      expect(attrs & 256, `${k.key}: msidbComponentAttributes64bit`).toBe(256);
    }
  });

  it('the registry is written before the service is installed and started', () => {
    const seq = new Map(table('InstallExecuteSequence').map((r) => [r.Action!, Number(r.Sequence)]));
    expect(seq.get('WriteRegistryValues')!).toBeLessThan(seq.get('InstallServices')!);
    expect(seq.get('InstallServices')!).toBeLessThan(seq.get('StartServices')!);
    expect(seq.has('RemoveExistingProducts')).toBe(true); // major upgrade
    expect(table('Upgrade').length).toBeGreaterThan(0);
  });

  it('service: own process, auto start, LocalSystem; started on install, stopped and removed on uninstall', () => {
    const [svc] = table('ServiceInstall');
    expect(svc).toMatchObject({ Name: 'SekimoriAgent', ServiceType: '16', StartType: '2', StartName: 'LocalSystem' });
    const [ctl] = table('ServiceControl');
    // 1 start on install, 2 stop on install, 32 stop on uninstall, 128 delete on uninstall
    expect(Number(ctl!.Event)).toBe(1 | 2 | 32 | 128);
    const files = table('File').map((f) => f.FileName);
    expect(files.some((f) => f!.endsWith('sekimori-agent.exe'))).toBe(true);
    expect(files.some((f) => f!.endsWith('sekimori-service.exe'))).toBe(true);
    expect(files.some((f) => f!.endsWith('sekimori-proclist.exe'))).toBe(true);
    expect(files.some((f) => f!.endsWith('sekimori-notice.exe'))).toBe(true); // desktop notices (issue 15)
    expect(files.some((f) => f!.endsWith('sekimori-accounts.exe'))).toBe(true); // posture: local accounts (issue 16)
    expect(files.some((f) => f!.endsWith('sekimori-pipebroker.exe'))).toBe(true); // 申請 from a terminal: the user pipe's broker (issue 15)
  });

  it('enrolment and Credential Provider settings only when given; the token and the CP credential hidden from logs', () => {
    const comps = new Map(table('Component').map((c) => [c.Component!, c]));
    expect(comps.get('Enrollment')!.Condition).toBe('TOKEN');
    expect(comps.get('CredentialProvider')!.Condition).toBe('CP_HOSTNAME');
    const props = new Map(table('Property').map((p) => [p.Property!, p.Value!]));
    expect(props.get('MsiHiddenProperties')!.split(';')).toEqual(expect.arrayContaining(['TOKEN', 'CP_REALM']));
    expect(props.get('SecureCustomProperties')!.split(';')).toEqual(expect.arrayContaining(['CONSOLE', 'TOKEN', 'CA_FINGERPRINT', 'CP_HOSTNAME', 'CP_PORT']));
    expect(props.get('CP_PORT')).toBe('8444');
    const cp = table('Registry').filter((r) => r.Component_ === 'CredentialProvider');
    expect(Object.fromEntries(cp.map((r) => [r.Name, r.Value]))).toMatchObject({ hostname: '[CP_HOSTNAME]', custom_port: '[CP_PORT]', ssl_ignore_unknown_ca: '0', ssl_ignore_invalid_cn: '0' });
  });
});

const wine = msitools.ok ? requireWine() : msitools;

describe.skipIf(!wine.ok)('sekimori-agent.msi under wine msiexec', () => {
  let c: TestConsole;
  let prefix = '';
  let keeper: WineProcess | undefined;
  const msi = winPath(MSI);

  /** Windows Installer's Programs and Features entry of this MSI's product. */
  const uninstallKey = () => {
    const code = table('Property').find((p) => p.Property === 'ProductCode')!.Value!;
    return `HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\${code}`;
  };
  const query = async (key: string) => {
    const r = await runWine(['reg', 'query', key, '/s'], { prefix });
    return parseRegQuery(r.stdout);
  };
  const values = async (key: string) => {
    const full = key.replace(/^HKLM\\/, 'HKEY_LOCAL_MACHINE\\').toUpperCase();
    const v = (await query(key)).get(full);
    return v ? Object.fromEntries([...v].map(([n, x]) => [n, x.data])) : undefined;
  };

  beforeAll(async () => {
    ensureWindowsPackage();
    c = await startConsole();
    prefix = clonePrefix('msi');
    // A terminal without any device policy before the install: whatever other tests' agents left in
    // the shared prefix is removed from the clone, so what is found afterwards is the MSI's.
    for (const k of ['HKLM\\Software\\Policies\\Microsoft\\Windows\\RemovableStorageDevices', 'HKLM\\Software\\Policies\\Microsoft\\Windows\\DeviceInstall']) {
      await runWine(['reg', 'delete', k, '/f'], { prefix, timeoutMs: 120_000 });
    }
    // Wine ends its services when the last ordinary process ends: one stays while the test runs.
    keeper = startWine([winPath(NODE_EXE), '-e', 'setTimeout(() => {}, 600000)'], { prefix, timeoutMs: 600_000 });
  }, 600_000);

  afterAll(async () => {
    await keeper?.stop('SIGKILL');
    if (prefix) await dropPrefix(prefix);
    await c?.cleanup();
  });

  it('msiexec /i /qn with enrolment and CP properties: policy, service and settings registered', async () => {
    const tok = c.enrollToken();
    const r = await runWine(
      ['msiexec', '/i', msi, '/qn', `CONSOLE=${c.url}`, `TOKEN=${tok.token}`, `CA_FINGERPRINT=${tok.caFingerprint}`, 'CP_HOSTNAME=console.example.lg.jp', 'CP_EXCLUDED_ACCOUNT=PC01\\breakglass'],
      { prefix, timeoutMs: 300_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    const policy = await query('HKLM\\Software\\Policies\\Microsoft\\Windows\\RemovableStorageDevices');
    for (const guid of CLASSES) {
      const v = policy.get(`${POLICY}\\${guid.toUpperCase()}`);
      expect(v?.get('Deny_Read'), guid).toEqual({ type: 'REG_DWORD', data: '0x1' });
      expect(v?.get('Deny_Write'), guid).toEqual({ type: 'REG_DWORD', data: '0x1' });
    }
    // The agent's own enforcer, reading through wine's reg.exe, finds nothing to change: the MSI
    // wrote exactly its strict default plan before the agent ran.
    const reg = new RegExeRegistry({
      run: async (args) => {
        const x = await runWine(['reg', ...args], { prefix, timeoutMs: 60_000 });
        return { code: x.code, stdout: Buffer.from(x.stdout, 'utf8'), stderr: Buffer.from(x.stderr, 'utf8') };
      },
    });
    const applied = await applyRegistryPlan(reg, strictDefaultPlan().keys);
    expect(applied.errors).toEqual([]);
    expect(applied.wrote).toEqual([]);
    expect(await values(SERVICE_KEY)).toMatchObject({ Start: '0x2', Type: '0x10', ObjectName: 'LocalSystem', ImagePath: 'C:\\Program Files\\Sekimori\\sekimori-service.exe' });
    expect(await values(CP_KEY)).toMatchObject({ hostname: 'console.example.lg.jp', custom_port: '8444', excluded_account: 'PC01\\breakglass', ssl_ignore_unknown_ca: '0' });
    expect(await values('HKLM\\SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\Sekimori')).toMatchObject({ TypesSupported: '0x7' });
    expect(existsSync(join(prefix, 'drive_c/Program Files/Sekimori/sekimori-agent.exe'))).toBe(true);
    expect(await values(uninstallKey())).toMatchObject({ DisplayName: 'Sekimori Agent' });
  }, 360_000);

  it('the service enrols from the registry, deletes the one-time token, and its agent.started reaches the console', async () => {
    const identity = join(prefix, 'drive_c/ProgramData/Sekimori/agent/identity.json');
    // Wine starts the service at install (StartServices); started again here in case it has not.
    await runWine(['sc', 'start', 'SekimoriAgent'], { prefix });
    await waitFor('enrolment by the service (identity.json)', () => existsSync(identity), 180_000, 1000);
    await waitFor('token deleted from the enrolment key', async () => {
      const v = await values(ENROLL_KEY);
      return v !== undefined && !('Token' in v) && v.Console === c.url;
    }, 60_000, 1000);
    const log = () => {
      try {
        return execFileSync('cat', [join(prefix, 'drive_c/ProgramData/Sekimori/agent.log')], { encoding: 'utf8' });
      } catch {
        return '';
      }
    };
    await waitFor('agent.started from the service-run agent', () => c.events(['--type', 'agent.started']).length > 0, 180_000, 1000).catch((e: Error) => {
      throw new Error(`${e.message}\n--- C:\\ProgramData\\Sekimori\\agent.log ---\n${log()}`);
    });
  }, 480_000);

  it('an agent killed under the service is started again (and the restart is seen at the console)', async () => {
    const before = c.events(['--type', 'agent.started']).length;
    const k = await runWine(['taskkill', '/F', '/IM', 'sekimori-agent.exe'], { prefix });
    expect(k.code, k.stdout + k.stderr).toBe(0);
    await waitFor('a second agent.started after the kill', () => c.events(['--type', 'agent.started']).length > before, 180_000, 1000);
  }, 240_000);

  it('msiexec /x: product removed, service stopped; device policy and C:\\ProgramData\\Sekimori stay', async () => {
    // Wine's msiexec does not wait for the service to stop (Windows does: ServiceControl Wait):
    // stop it first, or the running agent's executable cannot be removed.
    await runWine(['sc', 'stop', 'SekimoriAgent'], { prefix });
    await waitFor('service and agent stopped', async () => !/sekimori-(agent|service)\.exe/i.test((await runWine(['tasklist'], { prefix })).stdout), 60_000, 1000);
    await waitFor('service state STOPPED', async () => /STATE\s*:\s*1\b/.test((await runWine(['sc', 'query', 'SekimoriAgent'], { prefix })).stdout), 60_000, 1000);
    const r = await runWine(['msiexec', '/x', msi, '/qn'], { prefix, timeoutMs: 300_000 });
    expect(r.code, r.stderr).toBe(0);
    // Wine's DeleteServices returns success but its services.exe does not always drop the key
    // (seen in about half the runs here); the table asks for deletion on uninstall (checked above
    // with msiinfo) and real Windows does it. Here: the service must at least not be running.
    const q = await runWine(['sc', 'query', 'SekimoriAgent'], { prefix });
    expect(q.stdout).not.toMatch(/STATE\s*:\s*4\b/);
    // The product is unregistered. Wine's RemoveFiles, like its DeleteServices, is not reliable
    // here (the files stayed in some runs although no Sekimori process was left): printed, and
    // checked on real Windows only (README).
    expect(await values(uninstallKey())).toBeUndefined();
    const left = ['sekimori-agent.exe', 'sekimori-service.exe'].filter((f) => existsSync(join(prefix, 'drive_c/Program Files/Sekimori', f)));
    const keyLeft = (await values(SERVICE_KEY)) !== undefined;
    if (left.length > 0 || keyLeft) process.stderr.write(`[wine msi] after /x under wine: files left ${JSON.stringify(left)}, service key left: ${keyLeft}\n`);
    const policy = await query('HKLM\\Software\\Policies\\Microsoft\\Windows\\RemovableStorageDevices');
    for (const guid of CLASSES) expect(policy.get(`${POLICY}\\${guid.toUpperCase()}`)?.get('Deny_Read')?.data, guid).toBe('0x1');
    const restrictions = await values('HKLM\\Software\\Policies\\Microsoft\\Windows\\DeviceInstall\\Restrictions');
    expect(restrictions).toMatchObject({ DenyDeviceIDs: '0x1', DenyDeviceClasses: '0x1' });
    expect(existsSync(join(prefix, 'drive_c/ProgramData/Sekimori/agent/identity.json'))).toBe(true);
  }, 360_000);
});
