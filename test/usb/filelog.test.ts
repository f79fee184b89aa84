/** 持ち出しログ, the pure part (agent/usb/filelog/decide.ts): table-driven, hostile input included. */
import { describe, expect, it } from 'vitest';
import { eventDataErrors, readEventData } from '../../protocol/event-data.js';
import { defaultUsbPolicy, type UsbPolicy } from '../../protocol/policy-usb.js';
import { decideUsb } from '../../agent/usb/decide.js';
import type { UsbDeviceInfo } from '../../agent/usb/observe.js';
import {
  devNumber,
  displayPath,
  fileWrittenData,
  hashPlan,
  markLine,
  parseFileLogLine,
  parseMountinfo,
  parsePasswd,
  pathHash,
  relativePath,
  usableMedium,
  watchTargets,
  WriteQueue,
  type UsableMedium,
  type WatchTarget,
  type WrittenFile,
} from '../../agent/usb/filelog/decide.js';

const AGENT = '0b7c3c1e-8d0b-4b8e-9f5e-2d6f1a3b4c5d';
const stick = (over: Partial<UsbDeviceInfo> = {}): UsbDeviceInfo => ({
  path: '1-1',
  busnum: 1,
  devnum: 3,
  vendorId: '0781',
  productId: '5567',
  bcdDevice: '0100',
  deviceClass: 0,
  deviceSubclass: 0,
  deviceProtocol: 0,
  manufacturer: Buffer.from('SanDisk'),
  product: Buffer.from('Cruzer'),
  serial: Buffer.from('4C530001'),
  interfaces: [{ number: 0, alt: 0, class: 8, subclass: 6, protocol: 0x50 }],
  descriptorHash: 'b'.repeat(64),
  authorized: false,
  ...over,
});
const registered = (access: 'allow' | 'readonly'): UsbPolicy => ({
  ...defaultUsbPolicy(),
  registered: [{ id: 'stick-1', vendorId: '0781', productId: '5567', serial: '4C530001', access }],
});
const judge = (policy: UsbPolicy, d: UsbDeviceInfo, exceptions: Parameters<typeof decideUsb>[2]['exceptions'] = []) =>
  decideUsb(policy, d, { agentId: AGENT, now: new Date('2026-11-30T00:00:00Z'), exceptions, others: [] });

describe('which media are usable (watched)', () => {
  const kbd = stick({ interfaces: [{ number: 0, alt: 0, class: 3, subclass: 1, protocol: 1 }] });
  const cases: [string, UsbPolicy, UsbDeviceInfo, boolean, string | null][] = [
    ['a registered allow stick', registered('allow'), stick(), false, 'allow'],
    ['a registered read-only stick: nothing can be written', registered('readonly'), stick(), false, null],
    ['an unregistered stick (blocked)', defaultUsbPolicy(), stick(), false, null],
    ['an unregistered stick in monitor mode: nothing is blocked, so recorded', { ...defaultUsbPolicy(), mode: 'monitor' }, stick(), true, 'monitor'],
    ['a read-only stick in monitor mode (not made read-only there)', { ...registered('readonly'), mode: 'monitor' }, stick(), true, 'monitor'],
    ['a keyboard is no medium', registered('allow'), kbd, false, null],
    ['a keyboard in monitor mode is no medium either', defaultUsbPolicy(), kbd, true, null],
    ["a clone with another serial does not ride on the registration", registered('allow'), stick({ serial: Buffer.from('4C530002') }), false, null],
  ];
  it.each(cases)('%s', (_n, policy, d, monitor, access) => {
    const m = usableMedium(d, judge(policy, d), monitor);
    expect(m?.access ?? null).toBe(access);
    if (m) expect(m.device).toMatchObject({ vendorId: '0781', productId: '5567', port: '1-1', descriptorHash: 'b'.repeat(64) });
  });
  it.each([
    ['allow', 'exception'],
    ['readonly', null],
  ] as const)('an exception (%s) makes it usable as such, a read-only one does not', (access, want) => {
    const d = stick();
    const dec = judge(defaultUsbPolicy(), d, [
      { id: 'ex-1', agentId: AGENT, vendorId: '0781', productId: '5567', serial: '4C530001', serialHex: Buffer.from('4C530001').toString('hex'), access, grantedAt: '2026-11-29T00:00:00.000Z', expiresAt: '2026-12-01T00:00:00.000Z', grantedBy: 'admin', reason: '研修' },
    ]);
    expect(dec.exceptionId).toBe('ex-1');
    const m = usableMedium(d, dec, false);
    expect(m?.access ?? null).toBe(want);
    if (m) expect(m).toMatchObject({ exceptionId: 'ex-1', device: { access: 'exception', exceptionId: 'ex-1' } });
  });
  it('hostile device strings become display text; the serial key stays raw hex', () => {
    const d = stick({ product: Buffer.from('<img src=x onerror=alert(1)>\u001b[2J'), manufacturer: Buffer.from([0xff, 0xfe]), serial: Buffer.from('4C530001') });
    const m = usableMedium(d, judge(registered('allow'), d), false)!;
    expect(m.device.label).not.toMatch(/\u001b/);
    expect(m.device.serialHex).toBe(Buffer.from('4C530001').toString('hex'));
  });
});

describe('mountinfo', () => {
  const text = [
    '22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw',
    '95 22 8:17 / /media/user/MY\\040STICK rw,nosuid shared:50 - vfat /dev/sdb1 rw,uid=1000',
    '96 22 8:17 /sub /srv/bind rw - vfat /dev/sdb1 rw',
    '97 22 8:17 / /media/x\\012y\\134z rw - vfat /dev/sdb1 rw',
    'garbage',
    '98 22 notadev / /x rw - vfat /dev/sdb1 rw',
    '99 22 8:18 / /nosep rw vfat /dev/sdb2 rw',
    '',
  ].join('\n');
  it('parses fields, octal escapes (space, newline, backslash) and skips malformed lines', () => {
    const m = parseMountinfo(text);
    expect(m.map((e) => e.mountId)).toEqual([22, 95, 96, 97]);
    expect(m[1]!.mountPoint.toString()).toBe('/media/user/MY STICK');
    expect(m[3]!.mountPoint.toString()).toBe('/media/x\ny\\z');
    expect(m[2]).toMatchObject({ majMin: '8:17', fsType: 'vfat' });
    expect(m[2]!.root.toString()).toBe('/sub');
  });
  it('is bounded', () => {
    const many = Array.from({ length: 1000 }, (_, i) => `${i} 1 8:1 / /m${i} rw - vfat /dev/x rw`).join('\n');
    expect(parseMountinfo(many, 10)).toHaveLength(10);
  });
  it.each([
    ['8:1', '2049'],
    ['8:17', '2065'],
    ['0:38', '38'],
    ['259:0', String((0x100n << 8n) | (3n << 8n))], // 259 = 0x103: major low bits at 8..19
    ['4095:1048575', devNumber('4095:1048575')!],
    ['4294967295:4294967295', ((0xfffff000n << 32n) | (0xfffn << 8n) | (0xffffff00n << 12n) | 0xffn).toString()],
  ])('devNumber(%s) = %s (glibc makedev)', (mm, dev) => expect(devNumber(mm)).toBe(dev));
  it.each(['', '8', '8:', '-1:2', '4294967296:0', '1:2:3', '99999999999:1'])('devNumber refuses %j', (mm) => expect(devNumber(mm)).toBeNull());
});

const medium = (port: string): UsableMedium => ({
  port,
  access: 'allow',
  exceptionId: null,
  device: { port, vendorId: '0781', productId: '5567', serialHex: '41', descriptorHash: '', label: 'SanDisk Cruzer', serial: 'A', access: 'allow', exceptionId: null },
});

describe('what is watched', () => {
  const mounts = parseMountinfo(
    [
      '22 1 8:2 / / rw - ext4 /dev/sda2 rw',
      '95 22 8:17 / /media/a rw - vfat /dev/sdb1 rw',
      '96 22 8:17 /sub /srv/bind rw - vfat /dev/sdb1 rw',
      '97 22 8:33 / /media/other rw - vfat /dev/sdc1 rw',
      '98 22 8:16 / /media/whole rw - vfat /dev/sdb rw',
    ].join('\n'),
  );
  it('only mounts of block devices under a usable medium; one target per filesystem with all its mounts', () => {
    const t = watchTargets([medium('1-1')], [{ port: '1-1', majMins: ['8:16', '8:17'] }, { port: '1-2', majMins: ['8:32', '8:33'] }], mounts);
    expect(t.map((x) => [x.dev, x.mounts.map((m) => m.mountPoint.toString())])).toEqual([
      ['2065', ['/media/a', '/srv/bind']],
      ['2064', ['/media/whole']],
    ]);
  });
  it("another port's disk is never watched, nor the system disk", () => {
    expect(watchTargets([medium('1-9')], [{ port: '1-1', majMins: ['8:17'] }], mounts)).toEqual([]);
    expect(watchTargets([], [{ port: '1-1', majMins: ['8:2'] }], mounts)).toEqual([]);
  });
});

describe('relative paths', () => {
  const t: Pick<WatchTarget, 'mounts'> = {
    mounts: [
      { mountPoint: Buffer.from('/media/a'), root: Buffer.from('/') },
      { mountPoint: Buffer.from('/srv/bind'), root: Buffer.from('/sub') },
      { mountPoint: Buffer.from('/'), root: Buffer.from('/') },
    ],
  };
  const two: Pick<WatchTarget, 'mounts'> = { mounts: t.mounts.slice(0, 2) };
  it.each([
    ['/media/a/report.xlsx', 'report.xlsx'],
    ['/media/a/dir/深い/ファイル.txt', 'dir/深い/ファイル.txt'],
    ['/srv/bind/x.txt', 'sub/x.txt'],
    ['/media/ab/x.txt', null], // a sibling with the same prefix is not inside
    ['/media/a', null],
    ['/elsewhere/x', null],
  ])('%s → %s', (abs, rel) => expect(relativePath(two, Buffer.from(abs))?.toString() ?? null).toBe(rel));
  it('a medium mounted at / itself', () => expect(relativePath({ mounts: [t.mounts[2]!] }, Buffer.from('/x/y'))?.toString()).toBe('x/y'));
  it('bytes survive: invalid UTF-8 and newlines in names', () => {
    const abs = Buffer.concat([Buffer.from('/media/a/'), Buffer.from([0xff, 0x0a, 0x41])]);
    expect(relativePath(two, abs)).toEqual(Buffer.from([0xff, 0x0a, 0x41]));
  });
});

describe('display of hostile file names', () => {
  const cases: [string, Buffer, RegExp | null][] = [
    ['a newline cannot forge a second line', Buffer.from('a.txt\nusb.file_written b.txt'), /^a\.txt\\x0ausb/],
    ['invalid UTF-8 becomes U+FFFD', Buffer.from([0x61, 0xff, 0xfe, 0x62]), /^a\uFFFD+b$/],
    ['RTL override shown, not applied', Buffer.from('invoice\u202Egpj.exe'), /^invoice\\u\{202e\}gpj\.exe$/],
    ['isolates and marks too', Buffer.from('a\u2066b\u2069c\u200fd\u061ce'), /^a\\u\{2066\}b\\u\{2069\}c\\u\{200f\}d\\u\{61c\}e$/],
    ['HTML stays text (the console escapes on output)', Buffer.from('<script>alert(1)</script>.txt'), /^<script>/],
    ['ESC sequences', Buffer.from('\u001b]0;pwned\u0007.txt'), /^\\x1b\]0;pwned\\x07\.txt$/],
  ];
  it.each(cases)('%s', (_n, raw, re) => {
    const d = displayPath(raw);
    if (re) expect(d).toMatch(re);
    expect(d).not.toMatch(/[\u0000-\u001f\u202a-\u202e\u2066-\u2069]/);
  });
  it('a 4 kB path is bounded to 4096 characters (plus …) and its hash tells it apart', () => {
    const long = Buffer.from('d/'.repeat(2048));
    const d = displayPath(long);
    expect(Array.from(d).length).toBeLessThanOrEqual(4097);
    expect(pathHash(long)).not.toBe(pathHash(Buffer.concat([long, Buffer.from('x')])));
  });
  it('names that display alike have different path hashes', () => {
    expect(displayPath(Buffer.from([0xff]))).toBe(displayPath(Buffer.from([0xfe])));
    expect(pathHash(Buffer.from([0xff]))).not.toBe(pathHash(Buffer.from([0xfe])));
  });
});

describe("the helper's lines", () => {
  const hex = (s: string) => Buffer.from(s).toString('hex');
  const cases: [string, string, unknown][] = [
    ['ready', 'READY 42', { kind: 'ready', pid: 42 }],
    ['marked', 'MARKED 2065 fs', { kind: 'marked', dev: '2065', how: 'fs' }],
    ['mark error', 'ERR mark 116 2065', { kind: 'error', stage: 'mark', errno: 116, dev: '2065' }],
    ['written', `W 10 1000 2065 12 3 ${hex('/m/a')}`, { kind: 'written', pid: 10, uid: 1000, dev: '2065', ino: '12', size: 3, path: Buffer.from('/m/a') }],
    ['writer gone', `W 10 -1 2065 12 3 ${hex('/m/a')}`, { kind: 'written', uid: null }],
    ['an inode past 2^53 stays exact', `W 10 0 2065 18446744073709551615 0 ${hex('/m/a')}`, { kind: 'written', ino: '18446744073709551615' }],
    ['a 64 GB file', `W 10 0 2065 12 68719476736 ${hex('/m/a')}`, { kind: 'written', size: 68719476736 }],
    ['lost', 'O 3', { kind: 'lost', count: 3 }],
    ['mounts changed', 'MNT', { kind: 'mounts_changed' }],
    ['size 2^53 cannot be stated exactly: refused', `W 10 0 2065 12 9007199254740993 ${hex('/m/a')}`, null],
    ['odd hex', 'W 10 0 2065 12 3 abc', null],
    ['uppercase hex', 'W 10 0 2065 12 3 2F6D', null],
    ['a path past 4096 bytes', `W 10 0 2065 12 3 ${'61'.repeat(4097)}`, null],
    ['trailing junk', 'READY 42 x', null],
    ['leading zeros', 'MARKED 02065 fs', null],
    ['injected newline', 'READY 4\n2', null],
    ['empty', '', null],
    ['a huge line', 'W '.repeat(10_000), null],
  ];
  it.each(cases)('%s', (_n, line, want) => {
    const got = parseFileLogLine(line);
    if (want === null) expect(got).toBeNull();
    else expect(got).toMatchObject(want as object);
  });
  it.each([
    [true, '2065', '/media/a b', `M 2065 ${hex('/media/a b')}\n`],
    [false, '2065', '/m', `U 2065 ${hex('/m')}\n`],
    [true, 'x', '/m', null],
    [true, '2065', 'relative', null],
    [true, '2065', '/a\u0000b', null],
    [true, '2065', '/' + 'a'.repeat(5000), null],
  ] as const)('markLine(%s, %s, %j)', (add, dev, p, want) => expect(markLine(add, dev, Buffer.from(p))).toBe(want));
});

const file = (i: number, over: Partial<WrittenFile> = {}): WrittenFile => ({ dev: '2065', ino: String(i), abs: Buffer.from(`/media/a/f${i}`), size: 10, pid: 1, uid: 1000, deleted: false, ...over });

describe('the queue of files to hash', () => {
  it('a flood of small files: bounded at the cap, the rest refused (recorded unhashed by the caller), in order', () => {
    const q = new WriteQueue(100);
    const r = Array.from({ length: 100_000 }, (_, i) => q.push(file(i)));
    expect(r.filter((x) => x === 'queued')).toHaveLength(100);
    expect(r.filter((x) => x === 'full')).toHaveLength(99_900);
    expect(q.shift()!.ino).toBe('0');
    expect(q.size).toBe(99);
  });
  it('the same file closed again while waiting is one entry with the latest size', () => {
    const q = new WriteQueue(10);
    expect(q.push(file(1, { size: 1 }))).toBe('queued');
    expect(q.push(file(2))).toBe('queued');
    expect(q.push(file(1, { size: 99 }))).toBe('merged');
    expect(q.size).toBe(2);
    expect(q.shift()).toMatchObject({ ino: '1', size: 99 });
  });
  it("draining one medium's files leaves the others", () => {
    const q = new WriteQueue(10);
    q.push(file(1));
    q.push(file(2, { dev: '2081' }));
    q.push(file(3));
    expect(q.drain('2065').map((f) => f.ino)).toEqual(['1', '3']);
    expect(q.size).toBe(1);
  });
  it.each([
    [0, 'hash'],
    [4 * 2 ** 30, 'hash'],
    [4 * 2 ** 30 + 1, 'too_large'],
    [64 * 2 ** 30, 'too_large'],
    [Number.MAX_SAFE_INTEGER, 'too_large'],
  ] as const)('a file of %d bytes: %s (cap 4 GiB)', (size, plan) => expect(hashPlan(size, 4 * 2 ** 30)).toBe(plan));
});

describe('usb.file_written data passes its declaration', () => {
  const target: WatchTarget = { dev: '2065', majMin: '8:17', fsType: 'vfat', mounts: [{ mountPoint: Buffer.from('/media/a'), root: Buffer.from('/') }], medium: medium('1-1') };
  const names: [string, Buffer][] = [
    ['plain', Buffer.from('/media/a/report.xlsx')],
    ['newline', Buffer.from('/media/a/a\nb')],
    ['invalid UTF-8', Buffer.from([0x2f, 0x6d, 0xff, 0xfe])],
    ['RTL', Buffer.from('/media/a/x\u202Efdp.exe')],
    ['4 kB', Buffer.from('/media/a/' + 'd/'.repeat(2040))],
    ['4 kB of 4-byte characters', Buffer.from('/media/a/' + '𠮷'.repeat(1000))],
  ];
  it.each(names)('%s', (_n, abs) => {
    const data = fileWrittenData({ target, file: file(1, { abs }), rel: relativePath(target, abs), sha256: 'a'.repeat(64), hashSkipped: null, userSource: 'writer', mode: 'enforce' });
    expect(eventDataErrors('usb.file_written', data)).toEqual([]);
    expect(readEventData('usb.file_written', data)?.pathHash).toBe(pathHash(relativePath(target, abs) ?? abs));
  });
  it.each([
    ['a huge file without a hash', { size: Number.MAX_SAFE_INTEGER }, null, 'too_large'],
    ['removed before hashing', {}, null, 'removed'],
    ['writer unknown', { uid: null, pid: 0 }, null, 'removed'],
    ['a malformed hash is never passed on', {}, 'XYZ', null],
  ] as const)('%s', (_n, over, sha, skipped) => {
    const data = fileWrittenData({ target, file: file(1, over), rel: null, sha256: sha, hashSkipped: skipped, userSource: 'session', mode: 'monitor' });
    expect(eventDataErrors('usb.file_written', data)).toEqual([]);
    expect(data.sha256).toBeNull();
    expect(data.hashSkipped).toBe(skipped ?? 'unreadable');
  });
});

describe('/etc/passwd', () => {
  it('uid → name; malformed lines and duplicates skipped; hostile names made display-safe', () => {
    const m = parsePasswd(['root:x:0:0:root:/root:/bin/bash', 'tanaka:x:1000:1000::/home/tanaka:/bin/bash', 'dup:x:1000:1000::/:/bin/sh', 'bad', 'neg:x:-1:0::/:/bin/sh', 'evil\u001b[2J:x:1001:1001::/:/bin/sh', ''].join('\n'));
    expect([...m]).toEqual([
      [0, 'root'],
      [1000, 'tanaka'],
      [1001, 'evil\\x1b[2J'],
    ]);
  });
});
