/**
 * Windows tier, issue 16 持ち出しログ: the PACKAGED sekimori-agent.exe under wine 10, enrolled with a
 * real console on loopback, records every file a Windows program (wine's cmd.exe) writes to a
 * registered stick as usb.file_written — path, size, SHA-256, the session's user, the device — at
 * the console.
 *
 * The stick: a host folder that wine serves as drive R: (a dosdevices link), the registered stick's
 * instance under Enum\USB (as Windows writes it when the stick is plugged in), and its volume under
 * the MountedDevices test key (SEKIMORI_TEST_MOUNTED_DEVICES_KEY: wine's mount manager owns the real
 * HKLM\SYSTEM\MountedDevices; the agent parses the value exactly as Windows writes it). What only
 * real Windows shows: a real USBSTOR volume's MountedDevices value, NTFS/FAT change notifications,
 * the interactive user's logon name in LogonUI.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConsole, type ConsoleEventJson, type TestConsole } from '../../integration/harness.js';
import { requireTools } from '../tools.js';
import { clonePrefix, dropPrefix, ensureWindowsPackage, PACKAGE_TOOLS, requireWine, runWine, winPath } from './wine.js';
import { EnrolledWineAgent } from './enrolled-agent.js';
import { eventDataErrors } from '../../../protocol/event-data.js';

const tools = requireTools('Windows package (npm run package)', PACKAGE_TOOLS, 'bash scripts/setup.sh --test');
const wine = tools.ok ? requireWine() : tools;

const SERIAL = 'SEKIFL0001';
const ENUM_KEY = `HKLM\\SYSTEM\\CurrentControlSet\\Enum\\USB\\VID_0781&PID_5567\\${SERIAL}`;
const MOUNTED_KEY = 'HKLM\\Software\\SekimoriTest\\MountedDevices';
const LETTER = 'R';
const VOLUME = `\\??\\STORAGE#Volume#_??_USBSTOR#Disk&Ven_SanDisk&Prod_Cruzer_Blade&Rev_1.00#${SERIAL}&0#{53f56307-b6bf-11d0-94f2-00a0c91efb8b}`;
const USB = { registered: [{ id: 'stick-fl', vendorId: '0781', productId: '5567', serial: SERIAL, access: 'allow' }] };
/** Software: monitor with one allow rule for a folder nothing is dropped in (the agent needs a rule to run its watcher; nothing here is enforced). */
const POLICY = { agent: { heartbeatSeconds: 2 }, usb: USB, software: { mode: 'monitor', rules: [{ kind: 'path', action: 'allow', prefix: '/C:/Program Files/Approved' }] } };

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe.skipIf(!wine.ok)('packaged sekimori-agent.exe under wine: 持ち出しログ on a registered stick', () => {
  let c: TestConsole;
  let prefix = '';
  let agent: EnrolledWineAgent;
  const work = mkdtempSync('/tmp/sekimori-wine-fl-');
  const stick = join(work, 'stick');
  const src = join(work, 'src');
  const state = join(work, 'state');
  const pipe = `\\\\.\\pipe\\sekimori-wine-fl-${process.pid}`;
  const reg = async (args: string[]) => {
    const r = await runWine(['reg', 'add', ...args, '/f'], { prefix, timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`reg add ${args.join(' ')}: ${r.stdout} ${r.stderr}`);
  };

  beforeAll(async () => {
    ensureWindowsPackage();
    prefix = clonePrefix('filelog');
    mkdirSync(stick);
    mkdirSync(src);
    symlinkSync(stick, join(prefix, `dosdevices/${LETTER.toLowerCase()}:`));
    // Already on the stick before the agent ran, only read later: not a write, never recorded.
    writeFileSync(join(stick, 'pre.txt'), 'on the stick before');
    utimesSync(join(stick, 'pre.txt'), new Date('2020-01-01'), new Date('2020-01-01'));
    await reg([ENUM_KEY, '/v', 'HardwareID', '/t', 'REG_MULTI_SZ', '/d', 'USB\\VID_0781&PID_5567&REV_0100\\0USB\\VID_0781&PID_5567']);
    await reg([ENUM_KEY, '/v', 'CompatibleIDs', '/t', 'REG_MULTI_SZ', '/d', 'USB\\Class_08&SubClass_06&Prot_50\\0USB\\Class_08&SubClass_06\\0USB\\Class_08']);
    await reg([ENUM_KEY, '/v', 'Service', '/t', 'REG_SZ', '/d', 'USBSTOR']);
    await reg([ENUM_KEY, '/v', 'Driver', '/t', 'REG_SZ', '/d', '{36fc9e60-c465-11cf-8056-444553540000}\\0042']);
    await reg([ENUM_KEY, '/v', 'ConfigFlags', '/t', 'REG_DWORD', '/d', '0']);
    await reg([MOUNTED_KEY, '/v', `\\DosDevices\\${LETTER}:`, '/t', 'REG_BINARY', '/d', Buffer.from(VOLUME, 'utf16le').toString('hex').toUpperCase()]);
    await reg(['HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Authentication\\LogonUI', '/v', 'LastLoggedOnSAMUser', '/t', 'REG_SZ', '/d', 'SEKIWINE\\taro']);
    c = await startConsole({ policy: POLICY });
    agent = new EnrolledWineAgent(c, prefix, state);
  }, 600_000);

  afterAll(async () => {
    await agent?.stop();
    if (prefix) await dropPrefix(prefix);
    await c?.cleanup();
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('enrols and runs; the registered stick is watched at its drive letter', async () => {
    await agent.enroll();
    agent.start({ SEKIMORI_AGENT_PIPE: pipe, SEKIMORI_TEST_MOUNTED_DEVICES_KEY: MOUNTED_KEY });
    await agent.inLog('the agent watching R:', /usb: file log: watching USB\\VID_0781&PID_5567\\SEKIFL0001 at R:/, 180_000);
  }, 400_000);

  it('files written by cmd.exe → one usb.file_written each with the right path, size, SHA-256, user and device; a file only read is not recorded', async () => {
    expect(agent.agentId).not.toBe('');
    const files: [string, Buffer, string][] = [
      ['a.bin', Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) % 256)), 'a.bin'],
      ['old.txt', Buffer.from('copied, last-write time kept from 2020\r\n'), 'old.txt'],
      ['with space.csv', Buffer.from('=cmd|"/c calc"!A1\r\n'), 'dir one/with space.csv'],
    ];
    for (const [name, body] of files) writeFileSync(join(src, name), body);
    utimesSync(join(src, 'old.txt'), new Date('2020-01-01'), new Date('2020-01-01'));
    // A batch file (quotes in one `cmd /c` argument do not survive wine's command-line quoting).
    const bat = join(work, 'write.bat');
    const script = [
      '@echo off',
      `copy /b "${winPath(join(src, 'a.bin'))}" R:\\a.bin || exit /b 1`,
      `copy /b "${winPath(join(src, 'old.txt'))}" R:\\old.txt || exit /b 1`,
      'mkdir "R:\\dir one" || exit /b 1',
      `copy /b "${winPath(join(src, 'with space.csv'))}" "R:\\dir one\\with space.csv" || exit /b 1`,
      'type R:\\pre.txt || exit /b 1',
    ].join('\r\n');
    writeFileSync(bat, script + '\r\n');
    const w = await runWine(['cmd', '/c', winPath(bat)], { prefix, timeoutMs: 120_000 });
    expect(w.code, w.stdout + w.stderr).toBe(0);
    for (const [, body, rel] of files) expect(readFileSync(join(stick, ...rel.split('/')))).toEqual(body);

    let got: ConsoleEventJson[] = [];
    await agent
      .until('three usb.file_written at the console', () => {
        got = agent.events('usb.file_written');
        return files.every(([, , rel]) => got.some((e) => e.data.path === rel && e.data.sha256));
      }, 180_000, 2000)
      .catch((e: Error) => {
        throw new Error(`${JSON.stringify(got.map((x) => x.data))}: ${e.message}`);
      });
    // Anything else recorded would come with them; give the agent's next look a moment (not a timing assertion).
    await new Promise((r) => setTimeout(r, 5000));
    got = agent.events('usb.file_written');
    for (const [, body, rel] of files) {
      const mine = got.filter((e) => e.data.path === rel);
      expect(mine.length, `${rel}: ${JSON.stringify(mine.map((e) => e.data))}`).toBe(1);
      const e = mine[0]!;
      expect(eventDataErrors('usb.file_written', e.data)).toEqual([]);
      expect(e.data.size).toBe(body.length);
      expect(e.data.sha256).toBe(sha(body));
      expect(e.user).toBe('SEKIWINE\\taro');
      expect(e.data.userSource).toBe('session');
      const dev = e.data.device as { vendorId: string; productId: string; serial: string; access: string; port: string };
      expect([dev.vendorId, dev.productId, dev.serial, dev.access, dev.port]).toEqual(['0781', '5567', SERIAL, 'allow', `USB\\VID_0781&PID_5567\\${SERIAL}`]);
    }
    expect(got.filter((e) => !files.some(([, , rel]) => rel === e.data.path)).map((e) => e.data.path)).toEqual([]); // pre.txt (read) and the folder are not
  }, 400_000);
});
