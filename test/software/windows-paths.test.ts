import { describe, expect, it } from 'vitest';
import { compilePolicy, judge, normalizePath } from '../../agent/software/decide.js';
import {
  displayPath,
  foldCase,
  hasShortNameSegment,
  inWindowsScope,
  isReservedName,
  keyUnder,
  looksExecutableWindows,
  mayBeShortName,
  parseWindowsPath,
  policyPathKey,
  ruleKey,
  scopeKey,
  splitStream,
} from '../../agent/software/windows/paths.js';
import { defaultSoftwarePolicy } from '../../protocol/policy-software.js';

describe('ruleKey: one key per file, null when the path does not name exactly one ordinary file', () => {
  const cases: [string, unknown, string | null][] = [
    ['drive path', 'C:\\Program Files\\App\\app.exe', '/C:/PROGRAM FILES/APP/APP.EXE'],
    ['forward slashes', 'c:/program files/app/APP.exe', '/C:/PROGRAM FILES/APP/APP.EXE'],
    ['mixed separators and duplicates', 'C:\\\\Program Files//App\\\\\\app.exe', '/C:/PROGRAM FILES/APP/APP.EXE'],
    ['trailing separator', 'C:\\Users\\bob\\', '/C:/USERS/BOB'],
    ['drive root', 'C:\\', '/C:'],
    ['bare drive root without separator', 'D:', '/D:'],
    ['dot segments folded', 'C:\\Users\\.\\bob\\..\\alice\\x.exe', '/C:/USERS/ALICE/X.EXE'],
    ['.. never climbs above the root', 'C:\\..\\..\\Windows\\x.exe', '/C:/WINDOWS/X.EXE'],
    ['.. out of a watched folder', 'C:\\Program Files\\..\\Users\\x.exe', '/C:/USERS/X.EXE'],
    ['UNC', '\\\\fileserv\\share\\tools\\x.exe', '/UNC/FILESERV/SHARE/TOOLS/X.EXE'],
    ['UNC forward slashes', '//fileserv/share/x.exe', '/UNC/FILESERV/SHARE/X.EXE'],
    ['\\\\?\\UNC form is the same share', '\\\\?\\UNC\\fileserv\\share\\x.exe', '/UNC/FILESERV/SHARE/X.EXE'],
    ['\\\\?\\ drive form', '\\\\?\\C:\\Program Files\\x.exe', '/C:/PROGRAM FILES/X.EXE'],
    ['\\??\\ NT form', '\\??\\C:\\Windows\\x.exe', '/C:/WINDOWS/X.EXE'],
    ['\\\\.\\C: device spelling of a drive', '\\\\.\\C:\\Windows\\x.exe', '/C:/WINDOWS/X.EXE'],
    ['admin share of the local drive', '\\\\localhost\\C$\\Users\\x.exe', '/C:/USERS/X.EXE'],
    ['admin share by loopback address', '\\\\127.0.0.1\\c$\\Users\\x.exe', '/C:/USERS/X.EXE'],
    ['default data stream is the file', 'C:\\x\\app.exe::$DATA', '/C:/X/APP.EXE'],
    ['default data stream, any case', 'C:\\x\\app.exe::$data', '/C:/X/APP.EXE'],
    ['Japanese names keep their characters', 'C:\\Users\\田中\\ダウンロード\\a.exe', '/C:/USERS/田中/ダウンロード/A.EXE'],
    ['ß is not expanded (NTFS upcase is one-to-one)', 'C:\\straße.exe', '/C:/STRAßE.EXE'],
    ['three dots (Windows may trim them): refused', 'C:\\x\\...\\a.exe', null],
    ['name~1 that cannot be 8.3 is an ordinary name', 'C:\\x\\my file~1.exe', '/C:/X/MY FILE~1.EXE'],
    // null: fail closed, no path rule can allow these
    ['alternate data stream', 'C:\\Users\\bob\\notes.txt:evil.exe', null],
    ['typed alternate data stream', 'C:\\x\\a.txt:evil.exe:$DATA', null],
    ['stream on a folder', 'C:\\x:hidden\\a.exe', null],
    ['trailing dot (\\\\?\\ only)', '\\\\?\\C:\\Program Files\\app.exe.', null],
    ['trailing space (\\\\?\\ only)', '\\\\?\\C:\\Program Files \\app.exe', null],
    ['trailing dot in a Win32 path too', 'C:\\Program Files\\app.exe.', null],
    ['literal .. under \\\\?\\', '\\\\?\\C:\\Program Files\\..\\Users\\x.exe', null],
    ['/ is not a separator under \\\\?\\', '\\\\?\\C:\\a/b.exe', null],
    ['8.3 alias needs the file system', 'C:\\PROGRA~1\\App\\app.exe', null],
    ['8.3 alias with extension', 'C:\\Users\\bob\\DOWNLO~1\\SETUP~12.EXE', null],
    ['wine-style hashed alias', 'C:\\users\\root\\DOWN~NTG\\MONI~K2O.EXE', null],
    ['lower-case 8.3 alias', 'c:\\progra~1\\x.exe', null],
    ['reserved device name', 'C:\\x\\CON', null],
    ['reserved device name with extension', 'C:\\x\\nul.txt', null],
    ['COM port name', 'C:\\x\\COM1.exe', null],
    ['volume GUID path', '\\\\?\\Volume{4c1b02c1-d990-11dc-99ae-806e6f6e6963}\\x.exe', null],
    ['device path', '\\\\.\\PhysicalDrive0', null],
    ['GLOBALROOT', '\\\\?\\GLOBALROOT\\Device\\HarddiskVolume1\\x.exe', null],
    ['relative', 'app.exe', null],
    ['relative with dots', '..\\..\\Windows\\x.exe', null],
    ['drive-relative', 'C:app.exe', null],
    ['rooted without drive', '\\Windows\\x.exe', null],
    ['POSIX path', '/usr/bin/ls', null],
    ['UNC without share', '\\\\server', null],
    ['UNC with empty share', '\\\\server\\\\x.exe', null],
    ['NUL inside', 'C:\\x\\a.exe\0.txt', null],
    ['wildcard', 'C:\\x\\*.exe', null],
    ['question mark', 'C:\\x\\a?.exe', null],
    ['pipe', 'C:\\x\\a|b.exe', null],
    ['control character', 'C:\\x\\a\nb.exe', null],
    ['empty', '', null],
    ['not a string', 42, null],
    ['null', null, null],
    ['too long', 'C:\\' + 'a\\'.repeat(20_000), null],
  ];
  it.each(cases)('%s', (_n, raw, want) => {
    expect(ruleKey(raw)).toBe(want);
  });

  it('every non-null key is already what decide.ts normalizePath accepts unchanged', () => {
    for (const [, raw, want] of cases) if (want !== null) expect(normalizePath(ruleKey(raw)!)).toBe(want);
  });
});

describe('scopeKey: lenient, so a trick that defeats the strict key cannot leave the watched folders', () => {
  const cases: [string, string, string | null][] = [
    ['plain', 'C:\\Users\\bob\\Downloads\\a.exe', '/C:/USERS/BOB/DOWNLOADS/A.EXE'],
    ['stream → its host file', 'C:\\Users\\bob\\Downloads\\notes.txt:evil.exe', '/C:/USERS/BOB/DOWNLOADS/NOTES.TXT'],
    ['trailing dot stripped', '\\\\?\\C:\\Users\\bob\\Downloads\\evil.exe.', '/C:/USERS/BOB/DOWNLOADS/EVIL.EXE'],
    ['trailing spaces and dots on a folder', '\\\\?\\C:\\Users\\bob\\Downloads. .\\evil.exe', '/C:/USERS/BOB/DOWNLOADS/EVIL.EXE'],
    ['admin share', '\\\\LOCALHOST\\C$\\Users\\bob\\Downloads\\a.exe', '/C:/USERS/BOB/DOWNLOADS/A.EXE'],
    ['literal .. under \\\\?\\ is refused', '\\\\?\\C:\\Users\\..\\x.exe', null],
    ['a name of only dots and spaces is refused', '\\\\?\\C:\\Users\\. .\\x.exe', null],
    ['relative', 'Downloads\\a.exe', null],
  ];
  it.each(cases)('%s', (_n, raw, want) => {
    expect(scopeKey(raw)).toBe(want);
  });
});

describe('inWindowsScope', () => {
  const locs = ['/C:/PROGRAM FILES', '/C:/USERS/BOB/DOWNLOADS'];
  const cases: [string, string, boolean, boolean][] = [
    ['inside, other case', 'c:\\users\\BOB\\downloads\\x.exe', false, true],
    ['the location itself', 'C:\\Program Files', false, true],
    ['segment boundary', 'C:\\Program Files (x86)\\x.exe', false, false],
    ['sibling folder', 'C:\\Users\\bob\\Documents\\x.exe', false, false],
    ['.. out of scope', 'C:\\Program Files\\..\\Windows\\x.exe', false, false],
    ['.. into scope', 'C:\\Windows\\..\\Program Files\\x.exe', false, true],
    ['stream in scope', 'C:\\Users\\bob\\Downloads\\a.txt:b.exe', false, true],
    ['trailing dot in scope', '\\\\?\\C:\\Users\\bob\\Downloads\\b.exe.', false, true],
    ['admin share in scope', '\\\\localhost\\c$\\Program Files\\x.exe', false, true],
    ['another drive', 'D:\\Program Files\\x.exe', false, false],
    ['unresolved 8.3 alias on a watched drive: in scope', 'C:\\PROGRA~1\\x.exe', true, true],
    ['unresolved 8.3 alias on an unwatched drive', 'D:\\PROGRA~1\\x.exe', true, false],
    ['garbage', 'not a path', true, false],
  ];
  it.each(cases)('%s', (_n, raw, short, want) => {
    expect(inWindowsScope(raw, locs, short)).toBe(want);
  });
});

describe('small pieces', () => {
  it.each([
    ['a.exe', 'a.exe', null],
    ['a.txt:b.exe', 'a.txt', 'b.exe'],
    ['a.txt:b.exe:$DATA', 'a.txt', 'b.exe:$DATA'],
    ['a.exe::$DATA', 'a.exe', null],
    ['a.exe:', 'a.exe', null],
  ])('splitStream %s', (s, name, stream) => expect(splitStream(s)).toEqual({ name, stream }));

  it.each([
    ['PROGRA~1', true],
    ['SETUP~12.EXE', true],
    ['AB12C4~1.TXT', true],
    ['progra~1', true],
    ['DOWN~NTG', true], // wine's hashed aliases
    ['MONI~K2O.EXE', true],
    ['a~b', true], // could be an alias: expanded by the platform, which costs one lookup
    ['~1', true],
    ['Program Files', false],
    ['file~1.backup', false],
    ['TOOLONGNAME~1', false],
    ['abc~', false],
    ['my file~1.exe', false],
  ])('mayBeShortName %s', (s, want) => expect(mayBeShortName(s)).toBe(want));

  it.each([
    ['CON', true],
    ['con.txt', true],
    ['NUL', true],
    ['Com1.exe', true],
    ['LPT9', true],
    ['CONIN$', true],
    ['console.exe', false],
    ['COM10', false],
    ['nul x', false],
  ])('isReservedName %s', (s, want) => expect(isReservedName(s)).toBe(want));

  it('hasShortNameSegment', () => {
    expect(hasShortNameSegment('C:\\PROGRA~1\\x.exe')).toBe(true);
    expect(hasShortNameSegment('C:\\Program Files\\x.exe')).toBe(false);
    expect(hasShortNameSegment('C:\\x\\SETUP~1.EXE:zone')).toBe(true);
  });

  it('foldCase maps one code point to one', () => {
    expect(foldCase('abcß')).toBe('ABCß');
    expect(foldCase('ı')).toBe('I'); // dotless i: simple mapping exists
    expect([...foldCase('ŉ')].length).toBe(1); // U+0149 upper-cases to two code points: kept
    expect(foldCase('K')).toBe('K'); // Kelvin sign stays distinct from K (NTFS does not fold it)
  });

  it('keyUnder is segment-bounded', () => {
    expect(keyUnder('/C:/APP/X', '/C:/APP')).toBe(true);
    expect(keyUnder('/C:/APPLE/X', '/C:/APP')).toBe(false);
    expect(keyUnder('/C:', '/C:')).toBe(true);
  });

  it('displayPath', () => {
    expect(displayPath(parseWindowsPath('c:/Program Files/App')!)).toBe('C:\\Program Files\\App');
    expect(displayPath(parseWindowsPath('C:\\')!)).toBe('C:\\');
    expect(displayPath(parseWindowsPath('\\\\srv\\share\\x')!)).toBe('\\\\SRV\\SHARE\\x');
  });
});

describe('looksExecutableWindows', () => {
  const MZ = new Uint8Array([0x4d, 0x5a, 0x90, 0]);
  const TXT = new Uint8Array([0x68, 0x65, 0x6c, 0x6c]);
  it.each([
    ['setup.exe', TXT, true],
    ['SETUP.EXE', TXT, true],
    ['invoice.pdf.exe', TXT, true],
    ['run.bat', TXT, true],
    ['x.PS1', TXT, true],
    ['x.vbs', TXT, true],
    ['x.msi', TXT, true],
    ['evil.exe.', TXT, true],
    ['evil.exe  ', TXT, true],
    ['a.txt:evil.exe', TXT, false], // the host name decides the extension; content is checked too
    ['C:\\Users\\x\\photo.jpg', MZ, true], // a PE image under any name
    ['notes.txt', TXT, false],
    ['exe', TXT, false],
    ['', TXT, false],
    ['archive.exe.zip', TXT, false],
  ])('%s', (name, head, want) => expect(looksExecutableWindows(name, head)).toBe(want));
});

describe('policy paths and decide.ts together', () => {
  it('policyPathKey reads both spellings', () => {
    expect(policyPathKey('/C:/Program Files/App')).toBe('/C:/PROGRAM FILES/APP');
    expect(policyPathKey('C:\\Program Files\\App')).toBe('/C:/PROGRAM FILES/APP');
    expect(policyPathKey('/UNC/srv/share/tools')).toBe('/UNC/SRV/SHARE/TOOLS');
    expect(policyPathKey('/usr/bin')).toBe(null);
    expect(policyPathKey('/C:/PROGRA~1')).toBe(null);
  });

  it('a path allow rule (in key form) allows only ordinary files below it, in any spelling', () => {
    const c = compilePolicy({ ...defaultSoftwarePolicy(), rules: [{ kind: 'path', action: 'allow', prefix: '/C:/PROGRAM FILES/APP' }] });
    const sha = 'a'.repeat(64);
    const verdict = (raw: string) => judge(c, { path: ruleKey(raw) ?? '', sha256: sha }).allowed;
    expect(verdict('C:\\Program Files\\App\\app.exe')).toBe(true);
    expect(verdict('c:/PROGRAM FILES/app/sub/x.exe')).toBe(true);
    expect(verdict('\\\\localhost\\C$\\Program Files\\App\\x.exe')).toBe(true);
    expect(verdict('C:\\Program Files\\Apple\\x.exe')).toBe(false);
    expect(verdict('C:\\Program Files\\App\\..\\..\\Users\\x.exe')).toBe(false);
    expect(verdict('C:\\Program Files\\App\\readme.txt:evil.exe')).toBe(false);
    expect(verdict('\\\\?\\C:\\Program Files\\App\\evil.exe.')).toBe(false);
    expect(verdict('C:\\PROGRA~1\\App\\x.exe')).toBe(false); // unresolved alias: not trusted by path
  });
});
