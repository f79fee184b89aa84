/**
 * Reading `reg query KEY /s` listings, pure. Registry strings are attacker-controlled (any user
 * writes their own HKU hive; a REG_SZ may hold line breaks, so a value can print lines that look
 * like key headers or other values). So: a listing is only read for the root it was asked for
 * (headers outside it are ignored), each key's values are taken once (reg.exe lists a value once:
 * a second occurrence is injected text, and the first one wins), and lines that fit nothing are
 * skipped. Wine's reg.exe prints the same listing layout as Windows (its messages differ: never
 * parsed here).
 */

export interface RegValue {
  type: string;
  data: string;
}

/** Key path (as printed, case kept) → value name (upper-cased) → value. */
export type RegListing = Map<string, Map<string, RegValue>>;

const VALUE_LINE = /^ {2,}(.*?) {4}(REG_[A-Z_]+)(?: {4}(.*))?$/;

/** Long and short root names reg.exe accepts; listings always print the long form. */
const ROOTS: Record<string, string> = {
  HKLM: 'HKEY_LOCAL_MACHINE',
  HKCU: 'HKEY_CURRENT_USER',
  HKU: 'HKEY_USERS',
  HKCR: 'HKEY_CLASSES_ROOT',
  HKCC: 'HKEY_CURRENT_CONFIG',
};

/** HKLM\x → HKEY_LOCAL_MACHINE\X (upper-cased: registry key names are case-insensitive). */
export function canonicalKey(key: string): string {
  const i = key.indexOf('\\');
  const head = (i < 0 ? key : key.slice(0, i)).toUpperCase();
  const rest = i < 0 ? '' : key.slice(i);
  return ((ROOTS[head] ?? head) + rest).toUpperCase().replace(/\\+$/, '');
}

/** Parses a listing of `root` (and below). Keys outside `root` are dropped. */
export function parseRegListing(text: string, root: string): RegListing {
  const want = canonicalKey(root);
  const out: RegListing = new Map();
  let current: Map<string, RegValue> | null = null;
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length && n < 2_000_000; n++) {
    const line = lines[n]!;
    if (/^HKEY_/i.test(line)) {
      const key = line.replace(/\s+$/, '');
      const c = canonicalKey(key);
      if (c === want || c.startsWith(want + '\\')) {
        current = out.get(key) ?? null;
        if (!current) {
          current = new Map();
          out.set(key, current);
        }
      } else current = null;
      continue;
    }
    if (!current) continue;
    const m = VALUE_LINE.exec(line);
    if (!m) continue;
    const name = m[1]!.toUpperCase();
    if (!current.has(name)) current.set(name, { type: m[2]!, data: m[3] ?? '' });
  }
  return out;
}

/** Direct subkey names of `root` in a listing (`reg query ROOT` without /s). */
export function subkeyNames(listing: RegListing, root: string): string[] {
  const want = canonicalKey(root);
  const out: string[] = [];
  for (const key of listing.keys()) {
    const c = canonicalKey(key);
    if (!c.startsWith(want + '\\')) continue;
    if (c.slice(want.length + 1).includes('\\')) continue; // deeper than a direct subkey
    const name = key.slice(key.lastIndexOf('\\') + 1);
    if (name) out.push(name);
  }
  return out;
}

/** REG_DWORD data as printed (0x1) → number, or null. */
export function dword(v: RegValue | undefined): number | null {
  if (!v || (v.type !== 'REG_DWORD' && v.type !== 'REG_QWORD')) return null;
  const m = /^0x([0-9a-f]{1,16})$/i.exec(v.data.trim());
  return m ? Number.parseInt(m[1]!, 16) : null;
}

/** A REG_SZ / REG_EXPAND_SZ value's text, or null for other types. */
export function str(v: RegValue | undefined): string | null {
  return v && (v.type === 'REG_SZ' || v.type === 'REG_EXPAND_SZ') ? v.data : null;
}

/**
 * %NAME% expansion as Windows does it for REG_EXPAND_SZ (names case-insensitive, unknown ones left
 * as they are). Bounded: no recursion into the values.
 */
export function expandEnv(s: string, env: Readonly<Record<string, string | undefined>>): string {
  const upper = new Map<string, string>();
  for (const [k, v] of Object.entries(env)) if (typeof v === 'string') upper.set(k.toUpperCase(), v);
  return s.replace(/%([^%\r\n]{1,128})%/g, (whole, name: string) => upper.get(name.toUpperCase()) ?? whole);
}
