/**
 * Installed programs on Windows: the entries "Apps & features" lists, read from the Uninstall keys
 * of the 64-bit view, its WOW6432Node twin (32-bit programs) and every loaded user hive
 * (HKU\<sid>: per-user installs). The listing is parsed and filtered purely; diffing against the
 * saved snapshot is the capability's (diffPackages of observe/dpkg.ts, same events as dpkg).
 * Display names and versions are attacker-controlled (a user writes their own hive): callers emit
 * them through safeText, and the key, not the name, identifies an entry.
 */
import type { InstalledProgram } from '../platform.js';
import { canonicalKey, dword, parseRegListing, str, subkeyNames, type RegListing, type RegValue } from './registry-text.js';

export const UNINSTALL = 'SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall';
export const UNINSTALL_WOW = 'SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall';

export interface UninstallRoot {
  /** Registry path queried (`reg query ROOT /s`). */
  key: string;
  /** Stable prefix of the entries' keys: HKLM64, HKLM32, HKU\<sid>. */
  label: string;
  /** 'x64' / 'x86' for the machine views; '' for a user hive (its programs say nothing of it). */
  arch: string;
}

/** The roots to read: both machine views and the Uninstall key of each loaded user hive. */
export function uninstallRoots(userSids: readonly string[]): UninstallRoot[] {
  return [
    { key: `HKLM\\${UNINSTALL}`, label: 'HKLM64', arch: 'x64' },
    { key: `HKLM\\${UNINSTALL_WOW}`, label: 'HKLM32', arch: 'x86' },
    ...userSids.filter(isUserSid).map((sid) => ({ key: `HKU\\${sid}\\${UNINSTALL}`, label: `HKU\\${sid.toUpperCase()}`, arch: '' })),
  ];
}

/**
 * Accounts whose hives hold people's installs: local and domain accounts (S-1-5-21-…) and Entra ID
 * accounts (S-1-12-1-…). Not the service accounts (S-1-5-18/19/20), not the *_Classes hives.
 */
export function isUserSid(sid: string): boolean {
  return /^S-1-(?:5-21|12-1)(?:-\d{1,10}){1,14}$/i.test(sid);
}

const HIDDEN_RELEASE_TYPES = new Set(['UPDATE', 'HOTFIX', 'SECURITY UPDATE', 'SERVICE PACK']);

/**
 * The entries of one root, filtered as "Apps & features" does: a DisplayName is required; entries
 * with SystemComponent=1, a ParentKeyName (updates of another entry) or an update ReleaseType are
 * not programs of their own. Keys: `${label}\${subkey name upper-cased}` (registry names are
 * case-insensitive, so a re-created key in another case is the same entry).
 */
export function uninstallEntries(listing: RegListing, root: UninstallRoot): Map<string, InstalledProgram> {
  const out = new Map<string, InstalledProgram>();
  const want = canonicalKey(root.key);
  const byCanon = new Map<string, Map<string, RegValue>>();
  for (const [k, v] of listing) byCanon.set(canonicalKey(k), v);
  for (const name of subkeyNames(listing, root.key)) {
    const values = byCanon.get(`${want}\\${name.toUpperCase()}`);
    if (!values) continue;
    const displayName = str(values.get('DISPLAYNAME'))?.trim() ?? '';
    if (!displayName) continue;
    if (dword(values.get('SYSTEMCOMPONENT')) === 1) continue;
    if ((str(values.get('PARENTKEYNAME')) ?? '').trim() !== '') continue;
    if (HIDDEN_RELEASE_TYPES.has((str(values.get('RELEASETYPE')) ?? '').trim().toUpperCase())) continue;
    const version = str(values.get('DISPLAYVERSION'))?.trim() ?? '';
    out.set(`${root.label}\\${name.toUpperCase()}`, { name: displayName.slice(0, 4096), version: version.slice(0, 1024), arch: root.arch });
    if (out.size >= 100_000) break;
  }
  return out;
}

/** All roots' entries in one map (the inventory the capability diffs). */
export function inventory(listings: readonly { root: UninstallRoot; text: string | null }[]): Map<string, InstalledProgram> {
  const out = new Map<string, InstalledProgram>();
  for (const { root, text } of listings) {
    if (text === null) continue; // the key does not exist (no 32-bit programs, a user with none)
    for (const [k, p] of uninstallEntries(parseRegListing(text, root.key), root)) out.set(k, p);
  }
  return out;
}

/** Sub-key names of HKEY_USERS (loaded hives) from `reg query HKU`. */
export function loadedUserSids(text: string): string[] {
  return subkeyNames(parseRegListing(text, 'HKU'), 'HKU').filter(isUserSid);
}
