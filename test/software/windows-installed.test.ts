import { describe, expect, it } from 'vitest';
import { diffPackages } from '../../agent/software/observe/dpkg.js';
import { inventory, isUserSid, loadedUserSids, uninstallEntries, uninstallRoots, UNINSTALL } from '../../agent/software/windows/installed.js';
import { canonicalKey, dword, expandEnv, parseRegListing, subkeyNames } from '../../agent/software/windows/registry-text.js';
import {
  dedupeRoots,
  defaultWindowsRoots,
  machinePlaces,
  parseProfileList,
  parseShellFolders,
  profilePlaces,
  windowsWatchedRoots,
} from '../../agent/software/windows/locations.js';
import { DEFAULT_SOFTWARE_LOCATIONS } from '../../protocol/policy-software.js';

const HKLM_U = 'HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall';
const SID = 'S-1-5-21-1004336348-1177238915-682003330-1001';

/** A listing as reg.exe prints it (CRLF, 4-space indents and separators). */
function listing(keys: [string, [string, string, string][]][]): string {
  return keys.map(([k, vals]) => ['', k, ...vals.map(([n, t, d]) => `    ${n}    ${t}    ${d}`)].join('\r\n')).join('\r\n') + '\r\n';
}

const machine = listing([
  [HKLM_U, []],
  [`${HKLM_U}\\7-Zip`, [['DisplayName', 'REG_SZ', '7-Zip 23.01 (x64)'], ['DisplayVersion', 'REG_SZ', '23.01'], ['Publisher', 'REG_SZ', 'Igor Pavlov']]],
  [`${HKLM_U}\\{90160000-008C-0000-1000-0000000FF1CE}`, [['DisplayName', 'REG_SZ', 'Office 16 Click-to-Run Extensibility Component'], ['SystemComponent', 'REG_DWORD', '0x1']]],
  [`${HKLM_U}\\KB5034441`, [['DisplayName', 'REG_SZ', 'Security Update for Windows (KB5034441)'], ['ParentKeyName', 'REG_SZ', 'OperatingSystem']]],
  [`${HKLM_U}\\Hotfix1`, [['DisplayName', 'REG_SZ', 'Hotfix'], ['ReleaseType', 'REG_SZ', 'Security Update']]],
  [`${HKLM_U}\\NoName`, [['DisplayVersion', 'REG_SZ', '1.0'], ['UninstallString', 'REG_SZ', 'x']]],
  [`${HKLM_U}\\Spaces`, [['DisplayName', 'REG_SZ', 'Tool    with    spaces'], ['DisplayVersion', 'REG_SZ', '1.0    beta']]],
  [`${HKLM_U}\\Spaces\\Deeper`, [['DisplayName', 'REG_SZ', 'not a program of its own']]],
  [`${HKLM_U}\\Expand`, [['DisplayName', 'REG_EXPAND_SZ', '%ProgramFiles%\\x'], ['SystemComponent', 'REG_DWORD', '0x0']]],
  [`${HKLM_U}\\WrongType`, [['DisplayName', 'REG_BINARY', '41414141']]],
]);

describe('registry listings', () => {
  it('keys are read only under the root asked for', () => {
    const text = machine + listing([['HKEY_USERS\\S-1-5-21-1-2-3-1001\\Software\\Evil', [['DisplayName', 'REG_SZ', 'x']]]]);
    const l = parseRegListing(text, `HKLM\\${UNINSTALL}`);
    expect([...l.keys()].every((k) => k.startsWith(HKLM_U))).toBe(true);
    expect(subkeyNames(l, `HKLM\\${UNINSTALL}`)).toContain('7-Zip');
    expect(subkeyNames(l, `HKLM\\${UNINSTALL}`)).not.toContain('Deeper');
  });

  it('a value line a REG_SZ forged with a line break cannot replace the real value (first wins)', () => {
    // reg.exe lists each value once; the injected second "DisplayVersion" comes after the real one here.
    const text = listing([
      [`${HKLM_U}\\App`, [['DisplayVersion', 'REG_SZ', '1.0'], ['Comments', 'REG_SZ', 'x\r\n    DisplayVersion    REG_SZ    9.9'], ['DisplayName', 'REG_SZ', 'App']]],
    ]);
    const inv = uninstallEntries(parseRegListing(text, `HKLM\\${UNINSTALL}`), uninstallRoots([])[0]!);
    expect(inv.get('HKLM64\\APP')).toEqual({ name: 'App', version: '1.0', arch: 'x64' });
  });

  it('a header forged inside a user hive cannot add a machine-wide entry', () => {
    const userKey = `HKEY_USERS\\${SID}\\${UNINSTALL}`;
    const text = listing([[`${userKey}\\Mine`, [['DisplayName', 'REG_SZ', `mine\r\n\r\n${HKLM_U}\\Forged\r\n    DisplayName    REG_SZ    Forged`]]]]);
    const roots = uninstallRoots([SID]);
    const inv = inventory([{ root: roots[2]!, text }]);
    expect([...inv.keys()]).toEqual([`HKU\\${SID}\\MINE`]);
  });

  it('dword and expandEnv', () => {
    expect(dword({ type: 'REG_DWORD', data: '0x1' })).toBe(1);
    expect(dword({ type: 'REG_DWORD', data: 'garbage' })).toBe(null);
    expect(dword({ type: 'REG_SZ', data: '0x1' })).toBe(null);
    expect(expandEnv('%SystemDrive%\\Users\\%username%', { SYSTEMDRIVE: 'D:', USERNAME: 'bob' })).toBe('D:\\Users\\bob');
    expect(expandEnv('%NOPE%\\x', {})).toBe('%NOPE%\\x');
    expect(expandEnv('%A%', { A: '%B%', B: 'loop' })).toBe('%B%'); // no recursion
    expect(canonicalKey('hklm\\Software\\')).toBe('HKEY_LOCAL_MACHINE\\SOFTWARE');
  });
});

describe('installed programs from the Uninstall keys', () => {
  it('filters as Apps & features does', () => {
    const inv = uninstallEntries(parseRegListing(machine, `HKLM\\${UNINSTALL}`), uninstallRoots([])[0]!);
    expect(Object.fromEntries(inv)).toEqual({
      'HKLM64\\7-ZIP': { name: '7-Zip 23.01 (x64)', version: '23.01', arch: 'x64' },
      'HKLM64\\SPACES': { name: 'Tool    with    spaces', version: '1.0    beta', arch: 'x64' },
      'HKLM64\\EXPAND': { name: '%ProgramFiles%\\x', version: '', arch: 'x64' },
    });
  });

  it('user SIDs: people only', () => {
    expect(uninstallRoots([SID, 'S-1-5-18', 'S-1-5-19', `${SID}_Classes`, '.DEFAULT', 'S-1-12-1-1-2-3-4']).map((r) => r.label)).toEqual([
      'HKLM64',
      'HKLM32',
      `HKU\\${SID}`,
      'HKU\\S-1-12-1-1-2-3-4',
    ]);
    expect(isUserSid('S-1-5-21-1-2-3-1001;calc')).toBe(false);
    expect(loadedUserSids(['', 'HKEY_USERS\\.DEFAULT', `HKEY_USERS\\${SID}`, `HKEY_USERS\\${SID}_Classes`, 'HKEY_USERS\\S-1-5-18', ''].join('\r\n'))).toEqual([SID]);
  });

  it('diffs into the same changes as dpkg (installed / upgraded / removed), keyed by registry key', () => {
    const roots = uninstallRoots([SID]);
    const before = inventory([
      { root: roots[0]!, text: listing([[`${HKLM_U}\\7-Zip`, [['DisplayName', 'REG_SZ', '7-Zip'], ['DisplayVersion', 'REG_SZ', '23.01']]]]) },
      { root: roots[1]!, text: null },
    ]);
    const after = inventory([
      { root: roots[0]!, text: listing([[`${HKLM_U}\\7-Zip`, [['DisplayName', 'REG_SZ', '7-Zip'], ['DisplayVersion', 'REG_SZ', '24.08']]]]) },
      { root: roots[2]!, text: listing([[`HKEY_USERS\\${SID}\\${UNINSTALL}\\PortableApp`, [['DisplayName', 'REG_SZ', 'ツール\u0007'], ['DisplayVersion', 'REG_SZ', '1']]]]) },
    ]);
    expect(diffPackages(before, after)).toEqual([
      { change: 'upgraded', name: '7-Zip', version: '24.08', arch: 'x64', previousVersion: '23.01' },
      { change: 'installed', name: 'ツール\u0007', version: '1', arch: '' }, // safeText is the emitter's job
    ]);
    expect(diffPackages(after, before).map((c) => c.change)).toEqual(['upgraded', 'removed']);
  });

  it('same display name under two keys is two programs; a key in another case is the same one', () => {
    const roots = uninstallRoots([]);
    const a = inventory([{ root: roots[0]!, text: listing([[`${HKLM_U}\\App`, [['DisplayName', 'REG_SZ', 'App']]], [`${HKLM_U}\\App2`, [['DisplayName', 'REG_SZ', 'App']]]]) }]);
    expect(a.size).toBe(2);
    const b = inventory([{ root: roots[0]!, text: listing([[`${HKLM_U}\\APP`, [['DisplayName', 'REG_SZ', 'App']]], [`${HKLM_U}\\app2`, [['DisplayName', 'REG_SZ', 'App']]]]) }]);
    expect(diffPackages(a, b)).toEqual([]);
  });

  it('hostile text does not break parsing', () => {
    for (const text of ['', '\0\0\0', 'HKEY_', '    DisplayName    REG_SZ    orphan', 'x'.repeat(100_000), `${HKLM_U}\\A\r\n    DisplayName    REG_SZ`]) {
      expect(() => inventory(uninstallRoots([]).map((root) => ({ root, text })))).not.toThrow();
    }
  });
});

describe('watched places', () => {
  const env = {
    SystemDrive: 'C:',
    SystemRoot: 'C:\\WINDOWS',
    ProgramFiles: 'C:\\Program Files',
    'ProgramFiles(x86)': 'C:\\Program Files (x86)',
    ProgramW6432: 'C:\\Program Files',
    ProgramData: 'C:\\ProgramData',
    PUBLIC: 'C:\\Users\\Public',
  };
  const PL = 'HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\ProfileList';
  const profileText = listing([
    [PL, [['ProfilesDirectory', 'REG_EXPAND_SZ', '%SystemDrive%\\Users'], ['Default', 'REG_EXPAND_SZ', '%SystemDrive%\\Users\\Default']]],
    [`${PL}\\S-1-5-18`, [['ProfileImagePath', 'REG_EXPAND_SZ', '%systemroot%\\system32\\config\\systemprofile']]],
    [`${PL}\\${SID}`, [['ProfileImagePath', 'REG_EXPAND_SZ', 'C:\\Users\\tanaka']]],
    [`${PL}\\${SID}.bak`, [['ProfileImagePath', 'REG_EXPAND_SZ', 'C:\\Users\\TEMP']]],
    [`${PL}\\S-1-5-21-9-9-9-1002`, [['ProfileImagePath', 'REG_EXPAND_SZ', 'relative\\path']]],
    [`${PL}\\S-1-5-21-9-9-9-1003`, [['ProfileImagePath', 'REG_EXPAND_SZ', '%SystemDrive%\\Users\\佐藤']]],
  ]);

  it('machine places come from the environment', () => {
    expect(machinePlaces(env)).toEqual(['C:\\Program Files', 'C:\\Program Files (x86)', 'C:\\ProgramData', 'C:\\WINDOWS\\Temp', 'C:\\Users\\Public\\Downloads', 'C:\\Users\\Public\\Desktop']);
    expect(machinePlaces({ SystemDrive: 'D:', ProgramFiles: 'D:\\Apps' })[0]).toBe('D:\\Apps');
    expect(machinePlaces({})[0]).toBe('C:\\Program Files'); // fallback only when the environment says nothing
    expect(machinePlaces({ ProgramData: 'relative', SystemDrive: 'C:' })).toContain('C:\\ProgramData');
  });

  it('ProfileList: people only, expanded, absolute', () => {
    const pl = parseProfileList(profileText, env);
    expect(pl.profilesDirectory).toBe('C:\\Users');
    expect(pl.profiles).toEqual([
      { sid: SID, path: 'C:\\Users\\tanaka' },
      { sid: 'S-1-5-21-9-9-9-1003', path: 'C:\\Users\\佐藤' },
    ]);
  });

  it('per-profile places, and redirected known folders of a loaded hive', () => {
    expect(profilePlaces({ sid: SID, path: 'C:\\Users\\tanaka' }, env)).toEqual([
      'C:\\Users\\tanaka\\Downloads',
      'C:\\Users\\tanaka\\Desktop',
      'C:\\Users\\tanaka\\AppData\\Local',
      'C:\\Users\\tanaka\\AppData\\Roaming',
      'C:\\Users\\tanaka\\AppData\\Local\\Temp',
    ]);
    const usf = parseShellFolders(
      listing([
        [
          `HKEY_USERS\\${SID}\\Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\User Shell Folders`,
          [
            ['Desktop', 'REG_EXPAND_SZ', '%USERPROFILE%\\OneDrive\\Desktop'],
            ['{374DE290-123F-4565-9164-39C4925E467B}', 'REG_EXPAND_SZ', 'D:\\DL'],
            ['AppData', 'REG_EXPAND_SZ', '\\\\fs01\\redirect\\tanaka\\AppData'],
            ['Local AppData', 'REG_EXPAND_SZ', 'relative'],
          ],
        ],
      ]),
      SID,
    );
    const places = profilePlaces({ sid: SID, path: 'C:\\Users\\tanaka', shellFolders: usf, temp: '%USERPROFILE%\\AppData\\Local\\Temp' }, env);
    expect(places).toEqual(expect.arrayContaining(['C:\\Users\\tanaka\\OneDrive\\Desktop', 'D:\\DL', '\\\\FS01\\REDIRECT\\tanaka\\AppData', 'C:\\Users\\tanaka\\Desktop']));
    expect(places).not.toContain('relative');
  });

  it('dedupe by key, nested folders dropped', () => {
    expect(dedupeRoots(['C:\\Users\\a\\AppData\\Local', 'c:\\users\\A\\appdata\\local\\Temp', 'C:\\USERS\\A\\APPDATA\\LOCAL', 'not absolute', 'C:\\Users\\a\\AppData\\LocalLow'])).toEqual([
      'C:\\Users\\a\\AppData\\Local',
      'C:\\Users\\a\\AppData\\LocalLow',
    ]);
  });

  it('the policy: Linux defaults → the platform defaults; Windows paths in key form → those', () => {
    const profiles = parseProfileList(profileText, env).profiles;
    const d = defaultWindowsRoots(env, profiles);
    expect(windowsWatchedRoots({ locations: [...DEFAULT_SOFTWARE_LOCATIONS] }, env, profiles)).toEqual(d);
    expect(d).toContain('C:\\Users\\佐藤\\Downloads');
    expect(d).not.toContain('C:\\Users\\tanaka\\AppData\\Local\\Temp'); // inside AppData\Local, already watched
    expect(windowsWatchedRoots({ locations: ['/C:/Tools', '/UNC/fs01/apps', '/opt'] }, env, profiles)).toEqual(['C:\\Tools', '\\\\FS01\\APPS']);
    expect(windowsWatchedRoots({ locations: ['/opt'] }, env, profiles)).toEqual(d); // nothing Windows: fail closed to the defaults
  });
});
