import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  MemoryRegistry,
  RegExeRegistry,
  RegistryError,
  decodeRegOutput,
  normaliseKey,
  parseRegQuery,
  parseRegQueryTree,
  regFileText,
  regAddArgs,
  subkey,
  type RegExeResult,
  type RegValue,
} from '../../agent/windows/registry.js';

// Captured from wine 10's reg.exe (Debian 13 root, .tools/wine-root) writing to a file, byte for byte.
const WINE_SAMPLE =
  '\r\nHKEY_LOCAL_MACHINE\\Software\\Policies\\SekimoriSample\r\n    (Default)    REG_SZ    default val\r\n    Bin    REG_BINARY    00FF10\r\n    Dash    REG_SZ    /f\r\n    Dw    REG_DWORD    0x1\r\n    Empty    REG_SZ    \r\n    Ex    REG_EXPAND_SZ    %SystemRoot%\\x\r\n    Jp    REG_SZ    USB ???????\r\n    Ms    REG_MULTI_SZ    a b\\0c\\\\d\r\n    Ms2    REG_MULTI_SZ    x\\0y\r\n    Name  with   spaces    REG_SZ    data    with  spaces  \r\n    Nn    REG_NONE    0000\r\n    Quote    REG_SZ    a"b\\\r\n    Qw    REG_QWORD    (null)\r\n    USB\\VID_0781&PID_5567\\AB&C    REG_SZ    USB\\VID_0781&PID_5567\\AB&C\r\n\r\nHKEY_LOCAL_MACHINE\\Software\\Policies\\SekimoriSample\\Sub one\r\n';
// wine lists an unset (Default) for an empty key.
const WINE_EMPTY_KEY = '\r\nHKEY_LOCAL_MACHINE\\Software\\Policies\\SekimoriSample\\Sub one\r\n    (Default)    REG_SZ    \r\n\r\n';

// Windows 10 reg.exe layout (as in public test fixtures of reg query parsers, e.g. JetBrains'
// ParseRegValueTest and appium's registry test): CRLF, blank line, key, 4-space columns, blank
// line, full paths of subkeys. Not captured on a real Windows here: no Windows machine is available.
const WINDOWS_ENUM_SAMPLE = [
  '',
  'HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Enum\\USB\\VID_0781&PID_5567\\4C530001231120115142',
  '    DeviceDesc    REG_SZ    @usbstor.inf,%genericbulkonly.devicedesc%;USB Mass Storage Device',
  '    LocationInformation    REG_SZ    Port_#0002.Hub_#0001',
  '    Capabilities    REG_DWORD    0x84',
  '    Address    REG_DWORD    0x2',
  '    ContainerID    REG_SZ    {d9a1a3c2-8c43-5f0a-a0b1-3c4d5e6f7a8b}',
  '    HardwareID    REG_MULTI_SZ    USB\\VID_0781&PID_5567&REV_0126\\0USB\\VID_0781&PID_5567',
  '    CompatibleIDs    REG_MULTI_SZ    USB\\Class_08&SubClass_06&Prot_50\\0USB\\Class_08&SubClass_06\\0USB\\Class_08',
  '    ClassGUID    REG_SZ    {36fc9e60-c465-11cf-8056-444553540000}',
  '    Service    REG_SZ    USBSTOR',
  '    Driver    REG_SZ    {36fc9e60-c465-11cf-8056-444553540000}\\0011',
  '    Mfg    REG_SZ    @usbstor.inf,%generic.mfg%;Compatible USB storage device',
  '    ConfigFlags    REG_DWORD    0x0',
  '    Big    REG_QWORD    0x100000000',
  '',
  'HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Enum\\USB\\VID_0781&PID_5567\\4C530001231120115142\\Device Parameters',
  'HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Enum\\USB\\VID_0781&PID_5567\\4C530001231120115142\\LogConf',
  'HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Enum\\USB\\VID_0781&PID_5567\\4C530001231120115142\\Properties',
  '',
].join('\r\n');

describe('parseRegQuery: wine 10 output', () => {
  const k = parseRegQuery(WINE_SAMPLE, 'HKLM\\Software\\Policies\\SekimoriSample');
  const byName = Object.fromEntries(k.values.map((v) => [v.name, v]));
  it.each([
    ['', { type: 'REG_SZ', data: 'default val' }],
    ['Bin', { type: 'REG_BINARY', data: '00FF10' }],
    ['Dash', { type: 'REG_SZ', data: '/f' }],
    ['Dw', { type: 'REG_DWORD', data: 1 }],
    ['Empty', { type: 'REG_SZ', data: '' }],
    ['Ex', { type: 'REG_EXPAND_SZ', data: '%SystemRoot%\\x' }],
    ['Jp', { type: 'REG_SZ', data: 'USB ???????' }],
    ['Ms', { type: 'REG_MULTI_SZ', data: ['a b', 'c\\\\d'] }],
    ['Ms2', { type: 'REG_MULTI_SZ', data: ['x', 'y'] }],
    ['Name  with   spaces', { type: 'REG_SZ', data: 'data    with  spaces  ' }],
    ['Nn', { type: 'REG_NONE', data: '0000' }],
    ['Quote', { type: 'REG_SZ', data: 'a"b\\' }],
    ['Qw', { type: 'REG_QWORD', data: '(null)' }],
    ['USB\\VID_0781&PID_5567\\AB&C', { type: 'REG_SZ', data: 'USB\\VID_0781&PID_5567\\AB&C' }],
  ])('value %j', (name, want) => {
    expect(byName[name]).toEqual({ name, ...want });
  });
  it('has exactly the values and the subkey', () => {
    expect(k.values).toHaveLength(14);
    expect(k.subkeys).toEqual(['Sub one']);
    expect(k.key).toBe('HKLM\\Software\\Policies\\SekimoriSample');
  });
  it('an existing key with nothing in it: wine prints one blank line (captured)', () => {
    expect(parseRegQuery('\r\n', 'HKLM\\SYSTEM\\CurrentControlSet\\Enum\\USB')).toEqual({ key: 'HKLM\\SYSTEM\\CurrentControlSet\\Enum\\USB', values: [], subkeys: [] });
    expect(parseRegQuery('', 'HKLM\\A')).toEqual({ key: 'HKLM\\A', values: [], subkeys: [] });
  });
  it('a key with subkeys but no values: wine prints no key line (captured from node.exe under wine)', () => {
    const out = '\r\nHKEY_LOCAL_MACHINE\\Software\\Policies\\Microsoft\\Windows\\DeviceInstall\r\n';
    expect(parseRegQuery(out, 'HKLM\\Software\\Policies\\Microsoft\\Windows')).toEqual({ key: 'HKLM\\Software\\Policies\\Microsoft\\Windows', values: [], subkeys: ['DeviceInstall'] });
  });
  it('empty key', () => {
    expect(parseRegQuery(WINE_EMPTY_KEY, 'HKEY_LOCAL_MACHINE\\Software\\Policies\\SekimoriSample\\Sub one')).toEqual({
      key: 'HKLM\\Software\\Policies\\SekimoriSample\\Sub one',
      values: [{ name: '', type: 'REG_SZ', data: '' }],
      subkeys: [],
    });
  });
});

describe('parseRegQuery: Windows output', () => {
  const key = 'HKLM\\SYSTEM\\CurrentControlSet\\Enum\\USB\\VID_0781&PID_5567\\4C530001231120115142';
  it('parses an Enum\\USB instance key', () => {
    const k = parseRegQuery(WINDOWS_ENUM_SAMPLE, key);
    expect(k.subkeys).toEqual(['Device Parameters', 'LogConf', 'Properties']);
    const v = Object.fromEntries(k.values.map((x) => [x.name, x]));
    expect(v.HardwareID).toEqual({ name: 'HardwareID', type: 'REG_MULTI_SZ', data: ['USB\\VID_0781&PID_5567&REV_0126', 'USB\\VID_0781&PID_5567'] });
    expect(v.CompatibleIDs!.data).toEqual(['USB\\Class_08&SubClass_06&Prot_50', 'USB\\Class_08&SubClass_06', 'USB\\Class_08']);
    expect(v.ConfigFlags).toEqual({ name: 'ConfigFlags', type: 'REG_DWORD', data: 0 });
    expect(v.Capabilities!.data).toBe(0x84);
    expect(v.Big).toEqual({ name: 'Big', type: 'REG_QWORD', data: '100000000' });
    expect(v.Driver!.data).toBe('{36fc9e60-c465-11cf-8056-444553540000}\\0011');
  });
  it('LF-only line ends and the localised default name', () => {
    const out = '\nHKEY_LOCAL_MACHINE\\Software\\X\n    (既定)    REG_SZ    v\n';
    expect(parseRegQuery(out, 'HKLM\\Software\\X').values).toEqual([{ name: '', type: 'REG_SZ', data: 'v' }]);
  });
  it('a key with subkeys only', () => {
    const out = '\r\nHKEY_LOCAL_MACHINE\\Software\\X\r\nHKEY_LOCAL_MACHINE\\Software\\X\\A\r\nHKEY_LOCAL_MACHINE\\Software\\X\\b c\r\n';
    expect(parseRegQuery(out, 'HKLM\\software\\x')).toMatchObject({ values: [], subkeys: ['A', 'b c'] });
  });
});

describe('parseRegQuery: hostile or unexpected output throws (the caller fails closed)', () => {
  const K = 'HKLM\\Software\\X';
  it.each([
    ['another key first', '\r\nHKEY_LOCAL_MACHINE\\Software\\Y\r\n'],
    ['a parent-prefix trick', '\r\nHKEY_LOCAL_MACHINE\\Software\\XY\r\n'],
    ['value listed twice (forged by a line break in data)', '\r\nHKEY_LOCAL_MACHINE\\Software\\X\r\n    A    REG_SZ    1\r\n    A    REG_DWORD    0x0\r\n'],
    ['case-different duplicate', '\r\nHKEY_LOCAL_MACHINE\\Software\\X\r\n    A    REG_SZ    1\r\n    a    REG_SZ    2\r\n'],
    ['stray text line (continuation of multi-line data)', '\r\nHKEY_LOCAL_MACHINE\\Software\\X\r\n    A    REG_SZ    1\r\nmore text\r\n'],
    ['a message instead of a key', 'ERROR: The system was unable to find the specified registry key or value.\r\n'],
    ['wine message', 'reg: Unable to find the specified registry key\r\n'],
    ['nested subkey line (a /s listing)', '\r\nHKEY_LOCAL_MACHINE\\Software\\X\r\n\r\nHKEY_LOCAL_MACHINE\\Software\\X\\A\\B\r\n'],
    ['a foreign key among subkeys', '\r\nHKEY_LOCAL_MACHINE\\Software\\X\r\n\r\nHKEY_LOCAL_MACHINE\\Software\\Z\\A\r\n'],
    ['value line after subkeys', '\r\nHKEY_LOCAL_MACHINE\\Software\\X\r\n\r\nHKEY_LOCAL_MACHINE\\Software\\X\\A\r\n    A    REG_SZ    1\r\n'],
    ['control character in a subkey', '\r\nHKEY_LOCAL_MACHINE\\Software\\X\r\nHKEY_LOCAL_MACHINE\\Software\\X\\a\u0007\r\n'],
  ])('%s', (_n, out) => {
    expect(() => parseRegQuery(out, K)).toThrow(RegistryError);
  });
  it.each([
    ['DWORD not hex', '    A    REG_DWORD    12', { type: 'REG_OTHER', rawType: 'REG_DWORD', data: '12' }],
    ['DWORD overlong', '    A    REG_DWORD    0x100000000', { type: 'REG_OTHER', rawType: 'REG_DWORD', data: '0x100000000' }],
    ['binary odd', '    A    REG_BINARY    ABC', { type: 'REG_OTHER', rawType: 'REG_BINARY', data: 'ABC' }],
    ['unknown type', '    A    REG_RESOURCE_LIST    0100', { type: 'REG_OTHER', rawType: 'REG_RESOURCE_LIST', data: '0100' }],
    ['type without data', '    A    REG_SZ', { type: 'REG_SZ', data: '' }],
    ['empty multi', '    A    REG_MULTI_SZ    ', { type: 'REG_MULTI_SZ', data: [] }],
  ])('unparseable data is kept raw, never guessed: %s', (_n, line, want) => {
    const k = parseRegQuery(`\r\nHKEY_LOCAL_MACHINE\\Software\\X\r\n${line}\r\n`, K);
    expect(k.values).toEqual([{ name: 'A', ...want }]);
  });
});

describe('key paths and reg add arguments', () => {
  it.each([
    ['HKLM\\Software\\A', 'HKLM\\Software\\A'],
    ['HKEY_LOCAL_MACHINE\\Software\\A', 'HKLM\\Software\\A'],
    ['hklm\\Software\\A b', 'HKLM\\Software\\A b'],
    ['HKLM', 'HKLM'],
  ])('normalises %j', (k, want) => expect(normaliseKey(k)).toBe(want));
  it.each([
    'HKXX\\A',
    'Software\\A',
    'HKLM\\A\\\\B',
    'HKLM\\A\\',
    'HKLM\\A\\..\\B',
    'HKLM\\A\nB',
    'HKLM\\A\u0000B',
    '\\\\server\\HKLM\\A',
    'HKLM\\' + 'x'.repeat(256),
  ])('rejects key %j', (k) => expect(() => normaliseKey(k)).toThrow(RegistryError));
  it('subkey refuses a name that climbs', () => {
    expect(subkey('HKLM\\A', 'B&C')).toBe('HKLM\\A\\B&C');
    expect(() => subkey('HKLM\\A', 'B\\..\\C')).toThrow();
    expect(() => subkey('HKLM\\A', '')).toThrow();
  });
  it.each<[RegValue, string[]]>([
    [{ name: 'Deny_Read', type: 'REG_DWORD', data: 1 }, ['add', 'HKLM\\K', '/v', 'Deny_Read', '/t', 'REG_DWORD', '/d', '1', '/f', '/reg:64']],
    [{ name: '', type: 'REG_SZ', data: 'x' }, ['add', 'HKLM\\K', '/ve', '/t', 'REG_SZ', '/d', 'x', '/f', '/reg:64']],
    [{ name: '1', type: 'REG_SZ', data: 'USB\\VID_0781&PID_5567\\A&B' }, ['add', 'HKLM\\K', '/v', '1', '/t', 'REG_SZ', '/d', 'USB\\VID_0781&PID_5567\\A&B', '/f', '/reg:64']],
    [{ name: 'M', type: 'REG_MULTI_SZ', data: ['a|b', 'c'] }, ['add', 'HKLM\\K', '/v', 'M', '/t', 'REG_MULTI_SZ', '/s', '#', '/d', 'a|b#c', '/f', '/reg:64']],
    [{ name: 'Q', type: 'REG_QWORD', data: 'ff' }, ['add', 'HKLM\\K', '/v', 'Q', '/t', 'REG_QWORD', '/d', '0xff', '/f', '/reg:64']],
    [{ name: 'N', type: 'REG_NONE', data: '' }, ['add', 'HKLM\\K', '/v', 'N', '/t', 'REG_NONE', '/f', '/reg:64']],
  ])('reg add %j', (v, args) => expect(regAddArgs('HKEY_LOCAL_MACHINE\\K', v)).toEqual(args));
  it.each<RegValue>([
    { name: '/f', type: 'REG_SZ', data: 'x' },
    { name: '-x', type: 'REG_SZ', data: 'x' },
    { name: 'a\nb', type: 'REG_SZ', data: 'x' },
    { name: 'a', type: 'REG_SZ', data: 'x\r\n    B    REG_DWORD    0x0' },
    { name: 'a', type: 'REG_DWORD', data: -1 },
    { name: 'a', type: 'REG_DWORD', data: 2 ** 32 },
    { name: 'a', type: 'REG_DWORD', data: 1.5 },
    { name: 'a', type: 'REG_MULTI_SZ', data: ['a\\0b'] },
    { name: 'a', type: 'REG_MULTI_SZ', data: [''] },
    { name: 'a', type: 'REG_MULTI_SZ', data: ['|#~^;,!@%`'] },
    { name: 'a', type: 'REG_BINARY', data: 'xyz' },
    { name: 'a', type: 'REG_OTHER', rawType: 'REG_LINK', data: '' },
  ])('refuses to write %j', (v) => expect(() => regAddArgs('HKLM\\K', v)).toThrow(RegistryError));
});

describe('decodeRegOutput', () => {
  it('UTF-8 when valid, CP932 otherwise', () => {
    expect(decodeRegOutput(Buffer.from('USB 大容量記憶装置'))).toBe('USB 大容量記憶装置');
    // "大容量" in Shift_JIS / CP932
    expect(decodeRegOutput(Buffer.from([0x91, 0xe5, 0x97, 0x65, 0x97, 0xca]))).toBe('大容量');
  });
});

/** A scripted reg.exe: answers by the argument list, records every call. */
function scripted(answers: (args: string[]) => RegExeResult) {
  const calls: string[][] = [];
  const reg = new RegExeRegistry({
    run: async (args) => {
      calls.push(args);
      return answers(args);
    },
  });
  return { reg, calls };
}
const ok = (out = ''): RegExeResult => ({ code: 0, stdout: Buffer.from(out), stderr: Buffer.alloc(0) });
const fail = (msg = 'ERROR: something localised'): RegExeResult => ({ code: 1, stdout: Buffer.alloc(0), stderr: Buffer.from(msg) });

describe('RegExeRegistry (scripted reg.exe)', () => {
  it('query of a missing key → null, learnt from the parent listing (not the message)', async () => {
    const { reg, calls } = scripted((a) => (a[1] === 'HKLM\\Software\\P' ? ok('\r\nHKEY_LOCAL_MACHINE\\Software\\P\r\n\r\nHKEY_LOCAL_MACHINE\\Software\\P\\Other\r\n') : fail()));
    expect(await reg.query('HKLM\\Software\\P\\Missing')).toBeNull();
    expect(calls).toEqual([
      ['query', 'HKLM\\Software\\P\\Missing', '/reg:64'],
      ['query', 'HKLM\\Software\\P', '/reg:64'],
    ]);
  });
  it('query failing on a key that exists (access denied) throws', async () => {
    const { reg } = scripted((a) => (a[1] === 'HKLM\\Software\\P' ? ok('\r\nHKEY_LOCAL_MACHINE\\Software\\P\r\n\r\nHKEY_LOCAL_MACHINE\\Software\\P\\Locked\r\n') : fail()));
    await expect(reg.query('HKLM\\Software\\P\\locked')).rejects.toThrow(RegistryError);
  });
  it('missing several levels up → null; nothing answers → throws', async () => {
    const a = scripted((x) => (x[1] === 'HKLM\\Software' ? ok('\r\nHKEY_LOCAL_MACHINE\\Software\r\n') : fail()));
    expect(await a.reg.query('HKLM\\Software\\A\\B\\C')).toBeNull();
    const b = scripted(() => fail());
    await expect(b.reg.query('HKLM\\Software\\A')).rejects.toThrow(RegistryError);
  });
  it('timeout (no exit code) throws', async () => {
    const { reg } = scripted((a) => (a[1] === 'HKLM\\Software' ? ok('\r\nHKEY_LOCAL_MACHINE\\Software\r\nHKEY_LOCAL_MACHINE\\Software\\A\r\n') : { code: null, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) }));
    await expect(reg.query('HKLM\\Software\\A')).rejects.toThrow(/exit null/);
  });
  it('delete of an absent value succeeds; of a value still there fails', async () => {
    const present = '\r\nHKEY_LOCAL_MACHINE\\Software\\K\r\n    V    REG_SZ    x\r\n';
    const gone = scripted((a) => (a[0] === 'delete' ? fail() : ok('\r\nHKEY_LOCAL_MACHINE\\Software\\K\r\n')));
    await gone.reg.delete('HKLM\\Software\\K', 'V');
    expect(gone.calls[0]).toEqual(['delete', 'HKLM\\Software\\K', '/v', 'V', '/f', '/reg:64']);
    const stuck = scripted((a) => (a[0] === 'delete' ? fail() : ok(present)));
    await expect(stuck.reg.delete('HKLM\\Software\\K', 'V')).rejects.toThrow(RegistryError);
  });
  it('refuses to delete a hive or a top-level key', async () => {
    const { reg, calls } = scripted(() => ok());
    await expect(reg.delete('HKLM')).rejects.toThrow();
    await expect(reg.delete('HKLM\\SOFTWARE')).rejects.toThrow();
    expect(calls).toEqual([]);
  });
  it('add failing throws with the key', async () => {
    const { reg } = scripted(() => fail());
    await expect(reg.add('HKLM\\Software\\K', { name: 'A', type: 'REG_DWORD', data: 1 })).rejects.toMatchObject({ key: 'HKLM\\Software\\K', exitCode: 1 });
  });
});

describe('MemoryRegistry', () => {
  it('behaves like the registry and records operations', async () => {
    const m = new MemoryRegistry();
    await m.add('HKLM\\Software\\A\\B', { name: 'X', type: 'REG_DWORD', data: 1 });
    expect(await m.query('hklm\\software\\a')).toEqual({ key: 'HKLM\\software\\a', values: [], subkeys: ['B'] });
    await m.delete('HKLM\\Software\\A\\B', 'x');
    expect((await m.query('HKLM\\Software\\A\\B'))!.values).toEqual([]);
    await m.delete('HKLM\\Software\\A');
    expect(await m.query('HKLM\\Software\\A')).toBeNull();
    m.failWhen = (op) => op.op === 'add';
    await expect(m.add('HKLM\\Software\\A', { name: 'X', type: 'REG_DWORD', data: 1 })).rejects.toThrow();
    expect(await m.query('HKLM\\Software\\A')).toBeNull();
  });
});

describe('parseRegQueryTree (reg query /s)', () => {
  const ROOT = 'HKLM\\SYSTEM\\CurrentControlSet\\Enum\\USB';
  const L = 'HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Enum\\USB';
  it('keys with values, implied keys without a line of their own, subkeys derived', () => {
    const out = [
      '',
      `${L}\\VID_0781&PID_5567\\SER1`,
      '    CompatibleIDs    REG_MULTI_SZ    USB\\Class_08&SubClass_06&Prot_50\\0USB\\Class_08',
      '    ConfigFlags    REG_DWORD    0x40',
      '',
      `${L}\\VID_0781&PID_5567\\SER1\\Device Parameters`,
      '    SymbolicName    REG_SZ    x',
      '',
    ].join('\r\n');
    const t = parseRegQueryTree(out, ROOT);
    const by = Object.fromEntries(t.map((k) => [k.key, k]));
    expect(by[ROOT]!.subkeys).toEqual(['VID_0781&PID_5567']);
    expect(by[`${ROOT}\\VID_0781&PID_5567`]).toEqual({ key: `${ROOT}\\VID_0781&PID_5567`, values: [], subkeys: ['SER1'] });
    expect(by[`${ROOT}\\VID_0781&PID_5567\\SER1`]!.values).toEqual([
      { name: 'CompatibleIDs', type: 'REG_MULTI_SZ', data: ['USB\\Class_08&SubClass_06&Prot_50', 'USB\\Class_08'] },
      { name: 'ConfigFlags', type: 'REG_DWORD', data: 0x40 },
    ]);
    expect(by[`${ROOT}\\VID_0781&PID_5567\\SER1`]!.subkeys).toEqual(['Device Parameters']);
  });
  it('empty output: the key alone', () => expect(parseRegQueryTree('\r\n', ROOT)).toEqual([{ key: ROOT, values: [], subkeys: [] }]));
  it.each([
    ['a key outside the root', `\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\X\r\n    A    REG_SZ    1\r\n`],
    ['a sibling with the root as prefix', `\r\n${L}X\\A\r\n`],
    ['a value before any key line', '\r\n    A    REG_SZ    1\r\n'],
    ['a value listed twice (forged by a line break in data)', `\r\n${L}\\K\r\n    A    REG_SZ    1\r\n    A    REG_SZ    2\r\n`],
    ['an empty path component', `\r\n${L}\\\\K\r\n`],
    ['a control character in a key name', `\r\n${L}\\K\u0007\r\n`],
    ['stray text', `\r\n${L}\\K\r\nEnd of search\r\n`],
  ])('throws on %s', (_n, out) => expect(() => parseRegQueryTree(out, ROOT)).toThrow(RegistryError));
  it('bounded', () => {
    const out = Array.from({ length: 20 }, (_, i) => `${L}\\K${i}`).join('\r\n');
    expect(() => parseRegQueryTree(out, ROOT, 10)).toThrow(/too many keys/);
  });
});

describe('batches: one .reg file, one reg import', () => {
  it('regFileText: sections per key in order, escaping, deletions', () => {
    expect(
      regFileText([
        { op: 'add', key: 'HKLM\\Software\\P\\L', value: { name: '1', type: 'REG_SZ', data: 'USB\\VID_0781&PID_5567\\A"B' } },
        { op: 'add', key: 'HKLM\\Software\\P', value: { name: 'Deny_Read', type: 'REG_DWORD', data: 1 } },
        { op: 'delete', key: 'HKLM\\Software\\P', name: 'Old "x"' },
        { op: 'add', key: 'HKLM\\Software\\P\\L', value: { name: '', type: 'REG_SZ', data: '' } },
      ]),
    ).toBe(
      [
        'Windows Registry Editor Version 5.00',
        '',
        '[HKEY_LOCAL_MACHINE\\Software\\P\\L]',
        '"1"="USB\\\\VID_0781&PID_5567\\\\A\\"B"',
        '',
        '[HKEY_LOCAL_MACHINE\\Software\\P]',
        '"Deny_Read"=dword:00000001',
        '"Old \\"x\\""=-',
        '',
        '[HKEY_LOCAL_MACHINE\\Software\\P\\L]',
        '@=""',
        '',
      ].join('\r\n'),
    );
  });
  it.each([
    ['a multi-string value (not written this way)', { op: 'add', key: 'HKLM\\S\\K', value: { name: 'M', type: 'REG_MULTI_SZ', data: ['a'] } }, null],
    ['a key with a bracket', { op: 'add', key: 'HKLM\\S\\K]x', value: { name: 'A', type: 'REG_SZ', data: 'x' } }, null],
  ] as const)('null for %s', (_n, op, want) => expect(regFileText([op as never])).toBe(want));
  it.each([
    { op: 'add', key: 'HKLM\\S\\K', value: { name: 'A', type: 'REG_SZ', data: 'x\r\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run]' } },
    { op: 'add', key: 'HKLM\\S\\K\n[HKEY_LOCAL_MACHINE\\X]', value: { name: 'A', type: 'REG_SZ', data: 'x' } },
    { op: 'delete', key: 'HKLM\\S\\K', name: 'a\nb' },
  ])('a line break can never start a section of its own: %j throws', (op) => expect(() => regFileText([op as never])).toThrow(RegistryError));
  it('RegExeRegistry.batch: a UTF-16LE file with a BOM in the private folder, imported, then removed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sekimori-regbatch-'));
    try {
      let seen: Buffer | null = null;
      const calls: string[][] = [];
      const reg = new RegExeRegistry({
        importDir: dir,
        run: async (args) => {
          calls.push(args);
          if (args[0] === 'import') seen = readFileSync(args[1]!);
          return ok();
        },
      });
      const ops = [1, 2, 3].map((i) => ({ op: 'add' as const, key: 'HKLM\\Software\\P', value: { name: String(i), type: 'REG_DWORD' as const, data: i } }));
      await reg.batch(ops);
      expect(calls).toHaveLength(1);
      expect(calls[0]![0]).toBe('import');
      expect(calls[0]![2]).toBe('/reg:64');
      expect(seen!.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xfe]));
      expect(seen!.subarray(2).toString('utf16le')).toBe(regFileText(ops));
      expect(readdirSync(dir)).toEqual([]);
      const failing = new RegExeRegistry({ importDir: dir, run: async () => fail() });
      await expect(failing.batch(ops)).rejects.toThrow(/reg import failed/);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('the private folder missing: value by value (nothing was imported)', async () => {
    const calls: string[][] = [];
    const reg = new RegExeRegistry({ importDir: join(tmpdir(), 'sekimori-no-such-dir', 'x'), run: async (a) => (calls.push(a), ok()) });
    await reg.batch([1, 2, 3].map((i) => ({ op: 'add' as const, key: 'HKLM\\Software\\P', value: { name: String(i), type: 'REG_DWORD' as const, data: i } })));
    expect(calls.map((c) => c[0])).toEqual(['add', 'add', 'add']);
  });
  it('without a private folder: value by value', async () => {
    const { reg, calls } = scripted(() => ok());
    await reg.batch([1, 2, 3].map((i) => ({ op: 'add' as const, key: 'HKLM\\Software\\P', value: { name: String(i), type: 'REG_DWORD' as const, data: i } })));
    expect(calls.map((c) => c[0])).toEqual(['add', 'add', 'add']);
    expect(existsSync(join(tmpdir(), 'sekimori-reg-'))).toBe(false);
  });
});
