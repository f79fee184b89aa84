/**
 * Windows path rules, pure. decide.ts compares POSIX-style keys, so every Windows path is mapped to
 * one key per file before it is judged:
 *
 *   C:\Program Files\App\app.exe      → /C:/PROGRAM FILES/APP/APP.EXE
 *   \\server\share\tools\x.exe        → /UNC/SERVER/SHARE/TOOLS/X.EXE
 *
 * Two keys, because the two questions fail closed in opposite directions:
 * - ruleKey (strict): what path rules, the baseline and restored files match. Anything that does not
 *   name exactly one ordinary file (a stream other than the default one, a segment ending in '.' or
 *   ' ' that only \\?\ can create, a possible 8.3 alias, device and volume paths) gets null, so no
 *   path rule can allow it; it is still judged by content (sha256 rules) and reported.
 * - scopeKey (lenient): whether a path lies in a watched location. It folds what Windows may treat as
 *   the same place (trailing dots and spaces, the stream's host file, \\localhost\C$ = C:\), so a
 *   trick that keeps a file out of the strict key cannot also keep it out of scope.
 * Case: NTFS compares names through its upcase table (simple, one-to-one mappings), so keys use the
 * simple upper-case mapping per code point (no 'ß' → 'SS'); no Unicode normalisation (NTFS has none:
 * NFC and NFD spellings are different files).
 */

export interface WinPath {
  /** 'C:' for drive paths, 'UNC/SERVER/SHARE' for network paths (already case-folded). */
  root: string;
  /** Segments below the root, as written (not case-folded). */
  segments: string[];
  /** Set for \\?\ and \??\ paths: Windows skips normalisation, names are literal. */
  literal: boolean;
}

const MAX_PATH_CHARS = 32_767; // the longest path Windows' wide-character APIs accept

/** Simple upper-case mapping per code point (what NTFS's upcase table does; never changes the length in code points). */
export function foldCase(s: string): string {
  let out = '';
  for (const ch of s) {
    const u = ch.toUpperCase();
    out += [...u].length === 1 ? u : ch;
  }
  return out;
}

// Characters Win32 refuses in names (besides the separators); controls 1–31 too.
// eslint-disable-next-line no-control-regex
const BAD_NAME_CHARS = /[<>"|?*\u0001-\u001f]/;

/**
 * Splits a Windows path into root and segments with Win32's rules (\ and / both separate, empty and
 * '.' segments vanish, '..' climbs but never above the root). Relative, drive-relative (C:foo),
 * rooted-without-drive (\foo), device (\\.\PhysicalDrive0), volume-GUID and malformed paths → null.
 */
export function parseWindowsPath(raw: unknown): WinPath | null {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_PATH_CHARS || raw.includes('\0')) return null;
  let rest: string;
  let root: string;
  let literal = false;
  const lit = /^(?:\\\\\?\\|\\\?\?\\)(.*)$/s.exec(raw);
  const dev = /^[\\/]{2}\.[\\/](.*)$/s.exec(raw);
  if (lit) {
    // \\?\ paths are passed to the file system as they are: '/' is not a separator there.
    literal = true;
    const body = lit[1]!;
    const unc = /^UNC\\([^\\]+)\\([^\\]+)(?:\\(.*))?$/is.exec(body);
    const drive = /^([A-Za-z]):(?:\\(.*))?$/s.exec(body);
    if (unc) {
      root = `UNC/${foldCase(unc[1]!)}/${foldCase(unc[2]!)}`;
      rest = unc[3] ?? '';
    } else if (drive) {
      root = `${drive[1]!.toUpperCase()}:`;
      rest = drive[2] ?? '';
    } else return null; // Volume{GUID}, GLOBALROOT, devices
    if (rest.includes('/')) return null;
  } else if (dev) {
    // \\.\C:\x is the device namespace spelling of C:\x; anything else there is a device.
    const drive = /^([A-Za-z]):(?:[\\/](.*))?$/s.exec(dev[1]!);
    if (!drive) return null;
    root = `${drive[1]!.toUpperCase()}:`;
    rest = drive[2] ?? '';
  } else if (/^[\\/]{2}/.test(raw)) {
    const m = /^[\\/]{2}([^\\/]+)[\\/]([^\\/]+)(?:[\\/](.*))?$/s.exec(raw);
    if (!m) return null;
    root = `UNC/${foldCase(m[1]!)}/${foldCase(m[2]!)}`;
    rest = m[3] ?? '';
  } else {
    const m = /^([A-Za-z]):(?:[\\/](.*))?$/s.exec(raw);
    if (!m || (raw.length > 2 && !/[\\/]/.test(raw[2]!))) return null;
    root = `${m[1]!.toUpperCase()}:`;
    rest = m[2] ?? '';
  }
  if (root.startsWith('UNC/') && BAD_NAME_CHARS.test(root)) return null;
  const segments: string[] = [];
  for (const s of rest.split(literal ? '\\' : /[\\/]/)) {
    if (s === '' || (!literal && s === '.')) continue;
    if (!literal && s === '..') {
      segments.pop();
      continue;
    }
    if (BAD_NAME_CHARS.test(s)) return null;
    segments.push(s);
    if (segments.length > 512) return null;
  }
  return { root, segments, literal };
}

/** `name:stream[:type]` → the file name and the stream (null for the default ::$DATA stream). */
export function splitStream(segment: string): { name: string; stream: string | null } {
  const i = segment.indexOf(':');
  if (i < 0) return { name: segment, stream: null };
  const name = segment.slice(0, i);
  const tail = segment.slice(i + 1);
  // "file::$DATA" and "file:" name the file itself.
  if (tail === '' || /^:\$DATA$/i.test(tail)) return { name, stream: null };
  return { name, stream: tail };
}

/**
 * Could this segment be an 8.3 alias? Windows makes PROGRA~1 and AB12C4~1.EXE; wine makes hashed
 * ones such as DOWN~NTG and MONI~K2O.EXE. Any 8.3-shaped name with a '~' inside counts: only the
 * file system knows whether it is an alias, so such a path is expanded before its key means
 * anything (an ordinary name like a~b.txt merely costs that one lookup).
 */
export function mayBeShortName(segment: string): boolean {
  const m = /^([^.\s]{1,8})(?:\.[^.\s]{1,3})?$/.exec(segment);
  return m !== null && /~./.test(m[1]!);
}

/** Windows devices that a bare name (CON, nul.txt, COM1.exe) opens instead of a file. */
export function isReservedName(segment: string): boolean {
  const base = segment.replace(/[. ]+$/, '').split('.')[0]!.toUpperCase().trimEnd();
  return /^(?:CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|COM[0-9\u00b9\u00b2\u00b3]|LPT[0-9\u00b9\u00b2\u00b3])$/.test(base);
}

function keyOf(root: string, segments: readonly string[]): string {
  return '/' + [root, ...segments.map(foldCase)].join('/');
}

/** UNC spellings of a local drive: \\localhost\C$\x, \\127.0.0.1\c$\x, \\?\UNC\localhost\C$\x. */
function localAdminShare(root: string): string | null {
  const m = /^UNC\/(LOCALHOST|127\.0\.0\.1|\[?::1\]?|0:0:0:0:0:0:0:1)\/([A-Z])\$$/.exec(root);
  return m ? `${m[2]}:` : null;
}

/** The strict key for rule matching, or null when the path does not name exactly one ordinary file. */
export function ruleKey(raw: unknown): string | null {
  const p = parseWindowsPath(raw);
  if (!p) return null;
  const segments: string[] = [];
  for (let i = 0; i < p.segments.length; i++) {
    const { name, stream } = splitStream(p.segments[i]!);
    if (stream !== null || name === '') return null; // an alternate data stream is not the file
    if (i < p.segments.length - 1 && name !== p.segments[i]) return null; // "dir:x\file"
    if (name.includes(':')) return null;
    if (/[. ]$/.test(name) || name === '..' || name === '.') return null; // only \\?\ creates these
    if (mayBeShortName(name) || isReservedName(name)) return null;
    segments.push(name);
  }
  return keyOf(localAdminShare(p.root) ?? p.root, segments);
}

/** The lenient key for "is this inside a watched location?" (folds what the strict key refuses). */
export function scopeKey(raw: unknown): string | null {
  const p = parseWindowsPath(raw);
  if (!p) return null;
  const segments: string[] = [];
  for (const s of p.segments) {
    if (s === '.' || s === '..') return null; // literal dot names under \\?\: refuse rather than guess
    const name = splitStream(s).name.replace(/[. ]+$/, '');
    if (name === '') return null;
    segments.push(name);
  }
  return keyOf(localAdminShare(p.root) ?? p.root, segments);
}

/** A path written in a policy: Windows form (C:\x) or the key form a POSIX validator accepts (/C:/x). */
export function policyPathKey(p: string): string | null {
  if (typeof p !== 'string') return null;
  const m = /^\/([A-Za-z]:(?:\/.*)?)$/s.exec(p) ?? /^\/UNC(\/.+)$/is.exec(p);
  if (m) return ruleKey(m[1]!.startsWith('/') ? '/' + m[1]! : m[1]!);
  return ruleKey(p);
}

/** Segment-boundary prefix test on keys (/C:/APP does not cover /C:/APPLE). */
export function keyUnder(key: string, prefix: string): boolean {
  return key === prefix || key.startsWith(prefix + '/');
}

/**
 * Whether a path is in scope. `unresolvedShortName` is set by the platform when the path has a
 * possible 8.3 segment it could not expand: then it is in scope when its drive or share is watched
 * at all (fail closed: PROGRA~1 may be anything).
 */
export function inWindowsScope(raw: string, locationKeys: readonly string[], unresolvedShortName = false): boolean {
  const k = scopeKey(raw);
  if (k === null) return false;
  if (locationKeys.some((l) => keyUnder(k, l))) return true;
  if (!unresolvedShortName) return false;
  const root = k.split('/').slice(0, k.startsWith('/UNC/') ? 4 : 2).join('/');
  return locationKeys.some((l) => keyUnder(l, root));
}

/** Does any segment need the file system to expand an 8.3 alias? */
export function hasShortNameSegment(raw: string): boolean {
  const p = parseWindowsPath(raw);
  return p !== null && p.segments.some((s) => mayBeShortName(splitStream(s).name));
}

const EXECUTABLE_EXTENSIONS = new Set([
  'EXE', 'COM', 'SCR', 'PIF', 'DLL', 'SYS', 'CPL', 'OCX', 'DRV', 'EFI', 'MSI', 'MSP', 'MST', 'APPX', 'MSIX',
  'BAT', 'CMD', 'PS1', 'PSM1', 'VBS', 'VBE', 'JS', 'JSE', 'WSF', 'WSH', 'HTA', 'LNK', 'REG', 'JAR', 'PY', 'PYW',
]);

/**
 * Is this file something Windows (or a script host) will run? The content decides first (an MZ
 * header is a PE image whatever its name), then the extension of the name as Windows would read it
 * (case-insensitive, trailing dots and spaces ignored, the stream's host name).
 */
export function looksExecutableWindows(name: string, head: Uint8Array): boolean {
  if (head.length >= 2 && head[0] === 0x4d && head[1] === 0x5a) return true;
  const base = splitStream(name.split(/[\\/]/).pop() ?? '').name.replace(/[. ]+$/, '');
  const dot = base.lastIndexOf('.');
  return dot >= 0 && EXECUTABLE_EXTENSIONS.has(foldCase(base.slice(dot + 1)));
}

/** The display form of a parsed path (backslashes, original case) for events and logs. */
export function displayPath(p: WinPath): string {
  const root = p.root.startsWith('UNC/') ? '\\\\' + p.root.slice(4).replace(/\//g, '\\') : p.root;
  return [root, ...p.segments].join('\\') + (p.segments.length === 0 && !p.root.startsWith('UNC/') ? '\\' : '');
}

/** Windows path join for platform code (no normalisation beyond the separator). */
export function winJoin(...parts: string[]): string {
  return parts
    .filter((p) => p.length > 0)
    .map((p, i) => (i === 0 ? p.replace(/[\\/]+$/, '') : p.replace(/^[\\/]+|[\\/]+$/g, '')))
    .join('\\');
}
