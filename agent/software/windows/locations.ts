/**
 * Where executables are watched on Windows, pure: Program Files (both views), ProgramData, the
 * system Temp, the Public profile and, for every user profile, the places a user can write and
 * run from (Downloads, Desktop, AppData\Local, AppData\Roaming, Temp). Folder locations come from
 * the environment (SystemDrive, ProgramFiles, …) and the registry (ProfileList for the profiles;
 * a loaded hive's User Shell Folders and Environment for redirected Desktop/Downloads/AppData/Temp),
 * never from a hard-coded drive letter unless the environment lacks them.
 *
 * New profiles: Windows adds HKLM\…\ProfileList\<sid> when an account first logs on; the platform
 * re-reads ProfileList whenever the capability asks for the roots (start, every policy apply) and
 * on its own refresh period (rootsChanged), so a new user's folders are watched from then on.
 */
import { DEFAULT_SOFTWARE_LOCATIONS, type SoftwarePolicy } from '../../../protocol/policy-software.js';
import { displayPath, parseWindowsPath, policyPathKey, scopeKey, winJoin } from './paths.js';
import { canonicalKey, expandEnv, parseRegListing, str, subkeyNames } from './registry-text.js';
import { isUserSid } from './installed.js';

export const PROFILE_LIST = 'HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\ProfileList';
export const USER_SHELL_FOLDERS = 'Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\User Shell Folders';
/** FOLDERID_Downloads: its User Shell Folders value name. */
export const DOWNLOADS_GUID = '{374DE290-123F-4565-9164-39C4925E467B}';

export type WinEnv = Readonly<Record<string, string | undefined>>;

export interface UserProfile {
  sid: string;
  /** ProfileImagePath, expanded. */
  path: string;
  /** User Shell Folders values of the loaded hive (upper-cased names → raw REG_EXPAND_SZ text). */
  shellFolders?: ReadonlyMap<string, string>;
  /** The hive's Environment\TEMP (raw). */
  temp?: string;
}

function envGet(env: WinEnv, name: string): string | undefined {
  const want = name.toUpperCase();
  for (const [k, v] of Object.entries(env)) if (k.toUpperCase() === want && v) return v;
  return undefined;
}

/** An absolute Windows path (drive or UNC) in display form, or null. */
function absolute(p: string | undefined): string | null {
  if (!p) return null;
  const parsed = parseWindowsPath(p);
  return parsed ? displayPath(parsed) : null;
}

/** Machine-wide places from the environment (the service runs as SYSTEM: these are the machine's values). */
export function machinePlaces(env: WinEnv): string[] {
  const drive = /^[A-Za-z]:$/.test(envGet(env, 'SystemDrive') ?? '') ? envGet(env, 'SystemDrive')! : 'C:';
  // The environment's value when it is an absolute path, else the Windows default on the system drive.
  const place = (names: string[], dflt: string) => names.map((n) => absolute(envGet(env, n))).find((p) => p !== null) ?? absolute(dflt);
  const systemRoot = place(['SystemRoot', 'windir'], `${drive}\\Windows`);
  const pub = place(['PUBLIC'], `${drive}\\Users\\Public`);
  const out = [
    place(['ProgramW6432', 'ProgramFiles'], `${drive}\\Program Files`),
    place(['ProgramFiles(x86)'], `${drive}\\Program Files (x86)`),
    place(['ProgramData', 'ALLUSERSPROFILE'], `${drive}\\ProgramData`),
    systemRoot && winJoin(systemRoot, 'Temp'), // users may create files here
    pub && winJoin(pub, 'Downloads'),
    pub && winJoin(pub, 'Desktop'),
  ];
  return out.filter((p): p is string => typeof p === 'string' && p.length > 0);
}

/** One profile's user-writable places, honouring redirected known folders of a loaded hive. */
export function profilePlaces(profile: UserProfile, env: WinEnv): string[] {
  const home = absolute(profile.path);
  if (!home) return [];
  const localEnv: Record<string, string | undefined> = { ...env, USERPROFILE: home, HOMEPATH: home.slice(2), HOMEDRIVE: home.slice(0, 2) };
  const local = absolute(expandEnv(profile.shellFolders?.get('LOCAL APPDATA') ?? '', localEnv)) ?? winJoin(home, 'AppData', 'Local');
  localEnv.LOCALAPPDATA = local;
  const pick = (name: string, dflt: string) => absolute(expandEnv(profile.shellFolders?.get(name) ?? '', localEnv)) ?? dflt;
  const out = [
    pick(DOWNLOADS_GUID, winJoin(home, 'Downloads')),
    pick('DESKTOP', winJoin(home, 'Desktop')),
    local,
    pick('APPDATA', winJoin(home, 'AppData', 'Roaming')),
    absolute(expandEnv(profile.temp ?? '', localEnv)) ?? winJoin(local, 'Temp'),
  ];
  // Default places first, so a redirection never removes the folder Windows falls back to.
  return [...new Set([winJoin(home, 'Downloads'), winJoin(home, 'Desktop'), winJoin(home, 'AppData', 'Local'), winJoin(home, 'AppData', 'Roaming'), winJoin(home, 'AppData', 'Local', 'Temp'), ...out])];
}

export interface ProfileList {
  /** ProfilesDirectory (expanded), e.g. C:\Users. */
  profilesDirectory: string | null;
  profiles: { sid: string; path: string }[];
}

/** `reg query ProfileList /s` → the people's profiles (service accounts skipped). */
export function parseProfileList(text: string, env: WinEnv): ProfileList {
  const listing = parseRegListing(text, PROFILE_LIST);
  const rootValues = [...listing].find(([k]) => canonicalKey(k) === canonicalKey(PROFILE_LIST))?.[1];
  const dir = rootValues ? str(rootValues.get('PROFILESDIRECTORY')) : null;
  const profiles: { sid: string; path: string }[] = [];
  for (const sid of subkeyNames(listing, PROFILE_LIST)) {
    // "S-1-5-21-….bak" keys are profiles Windows failed to load: not a live account.
    if (!isUserSid(sid)) continue;
    const values = [...listing].find(([k]) => canonicalKey(k) === `${canonicalKey(PROFILE_LIST)}\\${sid.toUpperCase()}`)?.[1];
    const raw = values ? str(values.get('PROFILEIMAGEPATH')) : null;
    const path = raw ? absolute(expandEnv(raw, env)) : null;
    if (path) profiles.push({ sid: sid.toUpperCase(), path });
  }
  return { profilesDirectory: dir ? absolute(expandEnv(dir, env)) : null, profiles };
}

/** A hive's User Shell Folders listing → upper-cased value names → raw text. */
export function parseShellFolders(text: string, sid: string): Map<string, string> {
  const key = `HKU\\${sid}\\${USER_SHELL_FOLDERS}`;
  const listing = parseRegListing(text, key);
  const out = new Map<string, string>();
  for (const [k, values] of listing) {
    if (canonicalKey(k) !== canonicalKey(key)) continue;
    for (const [name, v] of values) {
      const s = str(v);
      if (s !== null) out.set(name, s);
    }
  }
  return out;
}

/** Drops duplicates (by scope key) and folders inside another watched folder. */
export function dedupeRoots(paths: readonly string[]): string[] {
  const keyed = paths.map((p) => ({ p, k: scopeKey(p) })).filter((x): x is { p: string; k: string } => x.k !== null);
  return keyed.filter((x, i) => !keyed.some((y, j) => (y.k === x.k ? j < i : x.k.startsWith(y.k + '/')))).map((x) => x.p);
}

export function defaultWindowsRoots(env: WinEnv, profiles: readonly UserProfile[]): string[] {
  return dedupeRoots([...machinePlaces(env), ...profiles.flatMap((p) => profilePlaces(p, env))]);
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/**
 * The folders to watch for this policy. The policy's paths are POSIX-shaped (the validator's
 * rule); a Windows policy names folders as /C:/Program Files/App or /UNC/server/share/x. The
 * Linux defaults (or no Windows path at all) mean: this platform's defaults.
 */
export function windowsWatchedRoots(policy: Pick<SoftwarePolicy, 'locations'>, env: WinEnv, profiles: readonly UserProfile[]): string[] {
  if (sameSet(policy.locations, DEFAULT_SOFTWARE_LOCATIONS)) return defaultWindowsRoots(env, profiles);
  const own: string[] = [];
  for (const l of policy.locations) {
    if (policyPathKey(l) === null) continue;
    const parsed = parseWindowsPath(l.startsWith('/') ? (/^\/UNC\//i.test(l) ? '/' + l.slice(4) : l.slice(1)) : l);
    if (parsed) own.push(displayPath(parsed));
  }
  return own.length ? dedupeRoots(own) : defaultWindowsRoots(env, profiles);
}
