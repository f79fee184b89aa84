/**
 * 持ち出しログ on Windows: the pure part (agent/usb/filelog/windows/decide.ts) table-driven with
 * hostile input, and the watcher (windows/filelog.ts) driven on this machine through its seams: a
 * temp folder stands for drive E: (fs.watch recursive works on Linux too; the exclusive open is
 * Windows-only and is exercised under wine by test/e2e/wine/file-log.test.ts).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { UsableMedium } from '../../agent/usb/filelog/decide.js';
import {
  decodeMountedDevice,
  driveTargets,
  mountedLetters,
  PendingFiles,
  relativeName,
  sameStamp,
  serialOfVolumePath,
  windowsFileWrittenData,
  writtenSince,
} from '../../agent/usb/filelog/windows/decide.js';
import { mountedDevicesKey, WindowsFileLog } from '../../agent/usb/filelog/windows/filelog.js';
import type { RegValue } from '../../agent/windows/registry.js';
import { eventDataErrors } from '../../protocol/event-data.js';

const utf16hex = (s: string) => Buffer.from(s, 'utf16le').toString('hex').toUpperCase();
const vol = (serial: string, lun = '0') => `\\??\\STORAGE#Volume#_??_USBSTOR#Disk&Ven_SanDisk&Prod_Cruzer&Rev_1.00#${serial}&${lun}#{53f56307-b6bf-11d0-94f2-00a0c91efb8b}`;
const medium = (serial: string | null, port = `USB\\VID_0781&PID_5567\\${serial ?? 'X&1'}`): UsableMedium => ({
  port,
  access: 'allow',
  exceptionId: null,
  device: {
    port,
    vendorId: '0781',
    productId: '5567',
    serialHex: serial === null ? null : Buffer.from(serial, 'latin1').toString('hex'),
    descriptorHash: '',
    label: 'SanDisk',
    serial: serial ?? '',
    access: 'allow',
    exceptionId: null,
  },
});

describe('MountedDevices → drive letters', () => {
  it.each([
    ['a USBSTOR volume', vol('SEKIW0001'), 'SEKIW0001'],
    ['LUN 1', vol('4C530001', '1'), '4C530001'],
    ['a made-up instance (no serial): has another &', vol('7&2a3b&0'), null],
    ['a UASP (SCSI#) volume', '\\??\\STORAGE#Volume#_??_SCSI#Disk&Ven_X&Prod_Y#5&1&0&000000#{53f56307-b6bf-11d0-94f2-00a0c91efb8b}', null],
    ['a GUID volume', '\\??\\Volume{c1a3c52e-0000-0000-0000-100000000000}', null],
    ['a serial of 300 characters', vol('A'.repeat(300)), null],
  ])('%s', (_n, path, want) => {
    expect(serialOfVolumePath(path)).toBe(want);
  });

  it('decodes UTF-16 device paths and refuses binary (a fixed disk: signature + offset) and junk', () => {
    expect(decodeMountedDevice(utf16hex(vol('S1')))).toBe(vol('S1'));
    expect(decodeMountedDevice('1A2B3C4D0000100000000000')).toBeNull(); // 12 bytes of MBR signature + offset
    expect(decodeMountedDevice('')).toBeNull();
    expect(decodeMountedDevice('zz')).toBeNull();
    expect(decodeMountedDevice(utf16hex('a\u202eb'))).toBeNull(); // not a device path
    expect(decodeMountedDevice('00'.repeat(10_000))).toBeNull(); // bounded
  });

  it('keeps one entry per letter, only \\DosDevices\\X: REG_BINARY values', () => {
    const values: RegValue[] = [
      { name: '\\DosDevices\\E:', type: 'REG_BINARY', data: utf16hex(vol('SEKIW0001')) },
      { name: '\\DosDevices\\e:', type: 'REG_BINARY', data: utf16hex(vol('OTHER')) },
      { name: '\\DosDevices\\C:', type: 'REG_BINARY', data: '1A2B3C4D0000100000000000' },
      { name: '\\??\\Volume{c1a3c52e-0000-0000-0000-100000000000}', type: 'REG_BINARY', data: utf16hex(vol('SEKIW0001')) },
      { name: '\\DosDevices\\F:', type: 'REG_SZ', data: vol('SEKIW0001') },
      { name: '\\DosDevices\\AB:', type: 'REG_BINARY', data: utf16hex(vol('SEKIW0001')) },
    ];
    expect(mountedLetters(values).map((l) => [l.letter, l.serial])).toEqual([['E', 'SEKIW0001']]);
  });

  it('maps usable media to mounted letters: serial case-insensitive, unmounted and serial-less left out, one medium per letter', () => {
    const letters = mountedLetters([
      { name: '\\DosDevices\\E:', type: 'REG_BINARY', data: utf16hex(vol('sekiw0001')) },
      { name: '\\DosDevices\\G:', type: 'REG_BINARY', data: utf16hex(vol('STALE01')) },
      { name: '\\DosDevices\\H:', type: 'REG_BINARY', data: utf16hex(vol('TWIN')) },
    ]);
    const a = medium('SEKIW0001');
    const stale = medium('STALE01');
    const noSerial = medium(null);
    const twin1 = medium('TWIN', 'USB\\VID_0781&PID_5567\\TWIN');
    const twin2 = medium('TWIN', 'USB\\VID_0951&PID_1666\\TWIN');
    const r = driveTargets([a, stale, noSerial, twin1, twin2], letters, (l) => l !== 'G');
    expect(r.targets.map((t) => [t.drive, t.medium.port])).toEqual([
      ['E:', a.port],
      ['H:', twin1.port],
    ]);
    expect(r.unmapped.map((m) => m.port)).toEqual([stale.port, noSerial.port, twin2.port]);
  });

  it('the test seam takes only a key under HKLM\\Software\\SekimoriTest', () => {
    expect(mountedDevicesKey({})).toBe('HKLM\\SYSTEM\\MountedDevices');
    expect(mountedDevicesKey({ SEKIMORI_TEST_MOUNTED_DEVICES_KEY: 'HKLM\\Software\\SekimoriTest\\Mounted' })).toBe('HKLM\\Software\\SekimoriTest\\Mounted');
    expect(mountedDevicesKey({ SEKIMORI_TEST_MOUNTED_DEVICES_KEY: 'HKCU\\Software\\Evil' })).toBe('HKLM\\SYSTEM\\MountedDevices');
    expect(mountedDevicesKey({ SEKIMORI_TEST_MOUNTED_DEVICES_KEY: 'HKLM\\Software\\SekimoriTest\\..\\x' })).toBe('HKLM\\SYSTEM\\MountedDevices');
  });
});

describe('paths, stamps, the bounded queue, the event', () => {
  it.each([
    ['a.txt', 'a.txt'],
    ['\\d\\a.txt', 'd/a.txt'], // wine's names start with a separator
    ['\\\\x', null],
    ['dir\\sub\\a.txt', 'dir/sub/a.txt'],
    ['名簿\\住民.xlsx', '名簿/住民.xlsx'],
    ['..\\x', null],
    ['a\\..\\b', null],
    ['.\\a', null],
    ['\\abs', 'abs'], // one leading separator (wine) is dropped
    ['C:\\x', null],
    ['a:stream', null],
    ['a\0b', null],
    ['', null],
    ['x'.repeat(32_768), null],
  ])('%#: a name → its relative path', (name, want) => {
    expect(relativeName(name)).toBe(want);
  });

  it('written since the watch began: created or modified, not a file only read', () => {
    const since = 1_000_000;
    expect(writtenSince({ size: 1, ino: '1', mtimeMs: 5, birthtimeMs: since + 10, ctimeMs: 5 }, since)).toBe(true); // a copy keeps the old mtime
    expect(writtenSince({ size: 1, ino: '1', mtimeMs: since + 10, birthtimeMs: 5, ctimeMs: 5 }, since)).toBe(true);
    expect(writtenSince({ size: 1, ino: '1', mtimeMs: since - 1999, birthtimeMs: 5, ctimeMs: 5 }, since)).toBe(true); // FAT's 2 s
    expect(writtenSince({ size: 1, ino: '1', mtimeMs: 5, birthtimeMs: 5, ctimeMs: 5 }, since)).toBe(false);
    expect(writtenSince({ size: 1, ino: '1', mtimeMs: 5, birthtimeMs: 5, ctimeMs: since + 1 }, since)).toBe(true); // a copy under wine
    expect(writtenSince({ size: 1, ino: '1', mtimeMs: 253402300799000, birthtimeMs: 5, ctimeMs: 5 }, since)).toBe(true); // year 9999
    const s = { size: 2 ** 53, ino: '9', mtimeMs: 1, birthtimeMs: 2, ctimeMs: 3 };
    expect(sameStamp(undefined, s)).toBe(false);
    expect(sameStamp({ ...s }, s)).toBe(true);
    expect(sameStamp({ ...s, size: 1 }, s)).toBe(false);
  });

  it('100 k names in a burst: at most cap kept, the rest counted; a name changed again is one entry', () => {
    const q = new PendingFiles(4096, 1000);
    let full = 0;
    for (let i = 0; i < 100_000; i++) if (q.changed('E:', `f${i}.bin`, 0) === 'full') full++;
    expect(q.size).toBe(4096);
    expect(full).toBe(100_000 - 4096);
    expect(q.changed('E:', 'F0.BIN', 500)).toBe('merged'); // case-insensitive
    expect(q.takeReady(1000)?.rel).toBe('f1.bin'); // f0 changed again at 500: not quiet yet
    expect(q.nextDue(1000)).toBe(0);
    const d = q.drain('E:');
    expect(d.length).toBe(4095);
    expect(q.size).toBe(0);
    expect(q.nextDue(0)).toBeNull();
  });

  it('the event data has the Linux shape: hostile names escaped, writer unknown (session)', () => {
    for (const rel of ['a\u001b[31m.txt', 'gpj\u202e.exe', 'x'.repeat(300), '..']) {
      const d = windowsFileWrittenData({ medium: medium('S1'), rel, size: 3, sha256: 'a'.repeat(64), skipped: null, fsType: 'windows-volume', mode: 'enforce' });
      expect(eventDataErrors('usb.file_written', d)).toEqual([]);
      expect(d.path).not.toMatch(/[\u0000-\u001f\u202e]/);
      expect(d.pathHash).toBe(createHash('sha256').update(Buffer.from(rel)).digest('hex'));
      expect([d.uid, d.pid, d.userSource]).toEqual([null, null, 'session']);
    }
    const bad = windowsFileWrittenData({ medium: medium('S1'), rel: 'a', size: -1, sha256: 'nothex', skipped: null, fsType: 'x', mode: 'enforce' });
    expect([bad.size, bad.sha256, bad.hashSkipped]).toEqual([0, null, 'unreadable']);
  });
});

describe('the watcher on a folder standing for E:', () => {
  const dirs: string[] = [];
  const logs: WindowsFileLog[] = [];
  afterEach(async () => {
    for (const l of logs.splice(0)) await l.stop();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /** Waits (bounded) for a condition; no timing is asserted. */
  async function until(what: string, f: () => boolean, ms = 20_000): Promise<void> {
    const end = Date.now() + ms;
    while (!f()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  function setup(opts: { letters?: () => RegValue[]; pendingCap?: number } = {}) {
    const root = mkdtempSync(join(tmpdir(), 'sekimori-winfl-'));
    dirs.push(root);
    const events: { type: string; user?: string; data: Record<string, unknown> }[] = [];
    const ctx = { emit: (e: { type: string; user?: string; data: unknown }) => void events.push(e as never), log: () => undefined };
    const fl = new WindowsFileLog(ctx as never, {
      readMountedDevices: async () => (opts.letters ? opts.letters() : [{ name: '\\DosDevices\\E:', type: 'REG_BINARY', data: utf16hex(vol('SEKIW0001')) }]),
      driveRoot: (d) => (d === 'E:' ? root : join(root, 'absent')),
      sessionUser: async () => 'taro',
      mode: () => 'enforce',
      quietMs: 100,
      pollMs: 100_000,
      ...(opts.pendingCap ? { pendingCap: opts.pendingCap } : {}),
    });
    logs.push(fl);
    return { root, events, fl };
  }

  const stick = () => ({
    path: 'USB\\VID_0781&PID_5567\\SEKIW0001',
    busnum: null,
    devnum: null,
    vendorId: '0781',
    productId: '5567',
    bcdDevice: null,
    deviceClass: 0,
    deviceSubclass: 0,
    deviceProtocol: 0,
    manufacturer: null,
    product: null,
    serial: Buffer.from('SEKIW0001'),
    interfaces: [{ number: 0, alt: 0, class: 8, subclass: 6, protocol: 0x50 }],
    descriptorHash: null,
    authorized: true,
  });
  const allowed = { authorizeDevice: true, readonly: false, exceptionId: null, rule: 'registered:stick-w', interfaces: [{ number: 0, classes: ['08/06/50'], allow: true, rule: 'registered:stick-w' }] };

  it('records each written file once with size, SHA-256 and the session user; an old file only read is not recorded', async () => {
    const { root, events, fl } = setup();
    writeFileSync(join(root, 'old.txt'), 'before');
    await fl.start();
    fl.judged(stick() as never, allowed as never, false);
    await fl.refresh();
    await until('the watch', () => fl.stats.watches === 1);
    mkdirSync(join(root, '名簿'));
    const files: [string, Buffer][] = [
      ['a.txt', Buffer.from('hello')],
      ['名簿/住民.csv', Buffer.from('=cmd|"/c calc"!A1\n')],
      ['empty.bin', Buffer.alloc(0)],
    ];
    for (const [rel, body] of files) writeFileSync(join(root, rel), body);
    await until('three records', () => events.filter((e) => e.type === 'usb.file_written').length >= 3);
    await new Promise((r) => setTimeout(r, 400)); // any duplicate would come now (not asserted on time, only on count)
    const written = events.filter((e) => e.type === 'usb.file_written');
    expect(written.map((e) => e.data.path).sort()).toEqual(files.map(([r]) => r).sort());
    for (const [rel, body] of files) {
      const e = written.find((x) => x.data.path === rel)!;
      expect(e.data.size).toBe(body.length);
      expect(e.data.sha256).toBe(createHash('sha256').update(body).digest('hex'));
      expect(e.user).toBe('taro');
      expect(eventDataErrors('usb.file_written', e.data)).toEqual([]);
    }
  });

  it('a stick with no drive letter is recorded as unavailable once; a burst past the cap is counted, memory bounded', async () => {
    const { root, events, fl } = setup({ pendingCap: 8 });
    fl.judged({ ...stick(), path: 'USB\\VID_0781&PID_5567\\NOLETTER', serial: Buffer.from('NOLETTER') } as never, allowed as never, false);
    await fl.refresh();
    await fl.refresh();
    expect(events.filter((e) => e.type === 'usb.file_log_unavailable').length).toBe(1);
    fl.judged(stick() as never, allowed as never, false);
    await fl.refresh();
    await until('the watch', () => fl.stats.watches === 1);
    for (let i = 0; i < 200; i++) writeFileSync(join(root, `f${i}`), String(i));
    await until('the burst seen', () => fl.stats.overflow > 0 || fl.stats.recorded >= 200);
    await fl.stop();
    const over = events.filter((e) => e.type === 'usb.file_log_overflow');
    const recorded = events.filter((e) => e.type === 'usb.file_written').length;
    const counted = over.reduce((n, e) => n + (e.data.count as number), 0);
    expect(fl.waiting).toBe(0);
    expect(recorded + counted).toBeGreaterThanOrEqual(200); // every write recorded or counted
    for (const e of over) expect(eventDataErrors('usb.file_log_overflow', e.data)).toEqual([]);
  });

  it('the drive vanishing (letter gone) stops the watch; waiting files are recorded as medium_gone', async () => {
    let mounted = true;
    const { root, events, fl } = setup({ letters: () => (mounted ? [{ name: '\\DosDevices\\E:', type: 'REG_BINARY', data: utf16hex(vol('SEKIW0001')) }] : []) });
    fl.judged(stick() as never, allowed as never, false);
    await fl.refresh();
    await until('the watch', () => fl.stats.watches === 1);
    writeFileSync(join(root, 'x.bin'), 'x');
    await until('the change seen', () => fl.waiting > 0 || fl.stats.recorded > 0);
    mounted = false;
    await fl.refresh();
    const w = events.filter((e) => e.type === 'usb.file_written');
    expect(w.length).toBe(1);
    expect([null, w[0]!.data.sha256].includes(w[0]!.data.sha256 as null)).toBe(true);
    expect(['medium_gone', null]).toContain(w[0]!.data.hashSkipped);
  });
});
