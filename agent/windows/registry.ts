/**
 * The Windows registry as the agent uses it: a small interface (query / add / delete) with one
 * implementation that runs %SystemRoot%\System32\reg.exe (execFile, no shell, a timeout per call)
 * and an in-memory one for tests. Capabilities depend on the interface only.
 *
 * Only `reg query` OUTPUT is parsed, never reg.exe's messages: they are localised on Windows
 * (Japanese terminals print Japanese) and worded differently by wine's reg.exe. Whether a key or
 * value is missing is learnt from the exit code plus a query of the parent key's listing.
 *
 * Output format (Windows reg.exe and wine 10's reg.exe alike, CRLF line ends):
 *   <blank>
 *   HKEY_LOCAL_MACHINE\Path\Of\Key
 *       Name    REG_TYPE    data
 *   <blank>
 *   HKEY_LOCAL_MACHINE\Path\Of\Key\Subkey
 * REG_MULTI_SZ elements are joined with the two characters `\0`; REG_DWORD is `0x…`; REG_BINARY is
 * upper-case hex; the unnamed value is `(Default)` (localised on Windows: `(既定)`).
 * Encoding: Windows' reg.exe writes to a pipe in the console's OEM code page (CP932 on Japanese
 * Windows); wine writes '?' for characters outside its locale. Values the agent writes and compares
 * are ASCII, so this matters only for display text (device descriptions) — decoded best effort.
 */
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type RegValueType = 'REG_SZ' | 'REG_EXPAND_SZ' | 'REG_MULTI_SZ' | 'REG_DWORD' | 'REG_QWORD' | 'REG_BINARY' | 'REG_NONE';

export type RegData =
  | { type: 'REG_SZ' | 'REG_EXPAND_SZ'; data: string }
  | { type: 'REG_MULTI_SZ'; data: string[] }
  | { type: 'REG_DWORD'; data: number }
  /** Hex digits (no 0x); wine 10's reg.exe prints "(null)" for QWORDs, kept as is. */
  | { type: 'REG_QWORD'; data: string }
  /** Upper-case hex digits. */
  | { type: 'REG_BINARY' | 'REG_NONE'; data: string }
  /** Types the agent never writes (REG_RESOURCE_LIST, REG_LINK, …) or data it could not parse: raw text. */
  | { type: 'REG_OTHER'; rawType: string; data: string };

/** `name` '' is the key's unnamed (default) value. */
export type RegValue = RegData & { name: string };

export interface RegKey {
  /** Normalised path, `HKLM\…`. */
  key: string;
  values: RegValue[];
  /** Names (not paths) of the direct subkeys. */
  subkeys: string[];
}

export interface WindowsRegistry {
  /** The key's values and subkey names; null when the key does not exist. Throws on any other failure. */
  query(key: string): Promise<RegKey | null>;
  /** Creates or overwrites one value (creating the key and its parents as needed). */
  add(key: string, value: RegValue): Promise<void>;
  /** Creates the key (and parents) without values; an existing key is left as it is. */
  addKey(key: string): Promise<void>;
  /** Deletes one value, or with no name the key and everything under it. Already absent = success. */
  delete(key: string, name?: string): Promise<void>;
  /**
   * The key and every key under it (one `reg query /s` run instead of one per key); null when the
   * key does not exist. Keys come with their values and direct subkey names.
   */
  queryTree?(key: string): Promise<RegKey[] | null>;
  /**
   * Runs adds and deletes of values in order as one unit where the registry can (reg import of one
   * file): far fewer process starts. On failure it throws, and how many ran is unknown.
   */
  batch?(ops: readonly RegBatchOp[]): Promise<void>;
}

export type RegBatchOp = { op: 'add'; key: string; value: RegValue } | { op: 'delete'; key: string; name: string };

export class RegistryError extends Error {
  constructor(
    message: string,
    readonly key: string,
    readonly exitCode: number | null = null,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

// ---------------------------------------------------------------------------------------------
// Paths and values: checked before anything runs (a bad path is an error, never "fixed up").

const HIVES: Record<string, string> = {
  HKLM: 'HKLM',
  HKEY_LOCAL_MACHINE: 'HKLM',
  HKCU: 'HKCU',
  HKEY_CURRENT_USER: 'HKCU',
  HKU: 'HKU',
  HKEY_USERS: 'HKU',
  HKCR: 'HKCR',
  HKEY_CLASSES_ROOT: 'HKCR',
};
const LONG_HIVE: Record<string, string> = { HKLM: 'HKEY_LOCAL_MACHINE', HKCU: 'HKEY_CURRENT_USER', HKU: 'HKEY_USERS', HKCR: 'HKEY_CLASSES_ROOT' };

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Splits and checks a key path; throws RegistryError for anything reg.exe could read otherwise. */
export function keyParts(key: string): { hive: string; parts: string[] } {
  if (typeof key !== 'string' || key.length > 4096) throw new RegistryError('registry key: not a string or too long', String(key).slice(0, 80));
  const [hiveName, ...parts] = key.split('\\');
  const hive = HIVES[(hiveName ?? '').toUpperCase()];
  if (!hive) throw new RegistryError('registry key: unknown hive', key);
  for (const p of parts) {
    if (p.length === 0 || p.length > 255) throw new RegistryError('registry key: empty or overlong component', key);
    if (CONTROL.test(p) || p === '.' || p === '..') throw new RegistryError('registry key: control character or dot component', key);
  }
  return { hive, parts };
}

/** `HKLM\A\B` form, the hive spelt short; throws on an invalid path. */
export function normaliseKey(key: string): string {
  const { hive, parts } = keyParts(key);
  return [hive, ...parts].join('\\');
}

/** Joins a key and one subkey name; the name may not contain a backslash (it would climb into another key). */
export function subkey(key: string, name: string): string {
  if (name.includes('\\')) throw new RegistryError('registry subkey name contains a backslash', key);
  return normaliseKey(`${key}\\${name}`);
}

export function parentKey(key: string): string | null {
  const { hive, parts } = keyParts(key);
  return parts.length === 0 ? null : [hive, ...parts.slice(0, -1)].join('\\');
}

const sameKey = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/** Why a value cannot be written through reg.exe safely ('' = fine). */
export function valueProblem(v: RegValue): string {
  if (typeof v.name !== 'string' || v.name.length > 16_383) return 'value name: not a string or too long';
  if (CONTROL.test(v.name)) return 'value name: control character';
  if (v.name.startsWith('/') || v.name.startsWith('-')) return 'value name: starts like a reg.exe switch';
  switch (v.type) {
    case 'REG_SZ':
    case 'REG_EXPAND_SZ':
      return typeof v.data === 'string' && !CONTROL.test(v.data) ? '' : 'string data: control character';
    case 'REG_MULTI_SZ':
      if (!Array.isArray(v.data) || v.data.some((s) => typeof s !== 'string' || CONTROL.test(s) || s.length === 0)) return 'multi-string data: empty element or control character';
      // reg.exe reads "\0" inside elements as a separator: such an element cannot be written exactly.
      return v.data.some((s) => s.includes('\\0')) ? 'multi-string data: element contains \\0' : '';
    case 'REG_DWORD':
      return Number.isInteger(v.data) && v.data >= 0 && v.data <= 0xffffffff ? '' : 'dword data: not a 32-bit unsigned integer';
    case 'REG_QWORD':
      return /^[0-9a-f]{1,16}$/i.test(v.data) ? '' : 'qword data: not hex';
    case 'REG_BINARY':
    case 'REG_NONE':
      return /^(?:[0-9a-f]{2})*$/i.test(v.data) ? '' : 'binary data: not hex bytes';
    default:
      return 'unsupported value type';
  }
}

const MULTI_SEPARATORS = ['|', '#', '~', '^', ';', ',', '!', '@', '%', '`'];

/** The reg.exe arguments for `reg add` (without the executable); throws on a value it cannot write exactly. */
export function regAddArgs(key: string, v: RegValue): string[] {
  const k = normaliseKey(key);
  const problem = valueProblem(v);
  if (problem) throw new RegistryError(problem, k);
  const name = v.name === '' ? ['/ve'] : ['/v', v.name];
  const base = ['add', k, ...name, '/t', v.type];
  switch (v.type) {
    case 'REG_SZ':
    case 'REG_EXPAND_SZ':
      return [...base, '/d', v.data, '/f', '/reg:64'];
    case 'REG_MULTI_SZ': {
      const sep = MULTI_SEPARATORS.find((s) => !v.data.some((e) => e.includes(s)));
      if (!sep) throw new RegistryError('multi-string data: no free separator character', k);
      return [...base, '/s', sep, '/d', v.data.join(sep), '/f', '/reg:64'];
    }
    case 'REG_DWORD':
      return [...base, '/d', String(v.data), '/f', '/reg:64'];
    case 'REG_QWORD':
      return [...base, '/d', '0x' + v.data, '/f', '/reg:64'];
    case 'REG_BINARY':
    case 'REG_NONE':
      return v.data === '' ? [...base, '/f', '/reg:64'] : [...base, '/d', v.data, '/f', '/reg:64'];
    default:
      throw new RegistryError('unsupported value type', k);
  }
}

/** A .reg file's string escaping: backslash and double quote. */
const regFileString = (x: string) => '"' + x.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';

/**
 * The text of a .reg file (Windows Registry Editor Version 5.00) doing these operations in order;
 * null when one cannot be written exactly that way (only REG_SZ and REG_DWORD values are).
 * Throws on anything regAddArgs would refuse: no control character reaches the file.
 */
export function regFileText(ops: readonly RegBatchOp[]): string | null {
  const lines = ['Windows Registry Editor Version 5.00', ''];
  let current = '';
  for (const o of ops) {
    const k = normaliseKey(o.key);
    const { hive, parts } = keyParts(k);
    if (parts.length === 0 || parts.some((p) => p.includes(']') || p.includes('['))) return null;
    if (k !== current) {
      if (current) lines.push('');
      lines.push(`[${[LONG_HIVE[hive]!, ...parts].join('\\')}]`);
      current = k;
    }
    if (o.op === 'delete') {
      const problem = valueProblem({ name: o.name, type: 'REG_SZ', data: '' });
      if (problem) throw new RegistryError(problem, k);
      lines.push(`${o.name === '' ? '@' : regFileString(o.name)}=-`);
      continue;
    }
    regAddArgs(k, o.value); // the same checks as a single add
    const name = o.value.name === '' ? '@' : regFileString(o.value.name);
    if (o.value.type === 'REG_SZ') lines.push(`${name}=${regFileString(o.value.data)}`);
    else if (o.value.type === 'REG_DWORD') lines.push(`${name}=dword:${o.value.data.toString(16).padStart(8, '0')}`);
    else return null;
  }
  return lines.join('\r\n') + '\r\n';
}

// ---------------------------------------------------------------------------------------------
// The `reg query` parser (pure).

const VALUE_LINE = /^ {4}(.*?) {4}(REG_[A-Z0-9_]+)(?: {4}(.*))?$/;
const DEFAULT_NAMES = new Set(['(Default)', '(既定)']);

function parseData(rawType: string, raw: string): RegData {
  switch (rawType) {
    case 'REG_SZ':
    case 'REG_EXPAND_SZ':
      return { type: rawType, data: raw };
    case 'REG_MULTI_SZ':
      return { type: 'REG_MULTI_SZ', data: raw === '' ? [] : raw.split('\\0') };
    case 'REG_DWORD': {
      if (!/^0x[0-9a-f]{1,8}$/i.test(raw)) return { type: 'REG_OTHER', rawType, data: raw };
      return { type: 'REG_DWORD', data: parseInt(raw.slice(2), 16) };
    }
    case 'REG_QWORD':
      return { type: 'REG_QWORD', data: /^0x[0-9a-f]{1,16}$/i.test(raw) ? raw.slice(2).toLowerCase() : raw };
    case 'REG_BINARY':
    case 'REG_NONE':
      if (!/^(?:[0-9a-f]{2})*$/i.test(raw)) return { type: 'REG_OTHER', rawType, data: raw };
      return { type: rawType, data: raw.toUpperCase() };
    default:
      return { type: 'REG_OTHER', rawType, data: raw };
  }
}

/**
 * Parses `reg query KEY` output (no /s) of a successful run (exit 0). Blank output is an empty key;
 * wine 10 prints the key's own line only when it has values (captured below in the tests).
 * Strict: the first key line must be KEY itself, every other
 * non-blank line a value of it or a direct subkey, and a value name may appear once. Anything else
 * (data with a line break that could forge a value line, a foreign key) throws: the caller then
 * treats the key as unreadable, which the enforcer handles by writing its deny values again.
 */
export function parseRegQuery(output: string, key: string): RegKey {
  const want = normaliseKey(key);
  const { hive, parts } = keyParts(want);
  const printed = [LONG_HIVE[hive]!, ...parts].join('\\');
  const lines = output.split(/\r?\n/);
  let headerSeen = false;
  let inSubkeys = false;
  const values: RegValue[] = [];
  const names = new Set<string>();
  const subkeys: string[] = [];
  for (const line of lines) {
    if (line.trim() === '') {
      if (headerSeen) inSubkeys = true;
      continue;
    }
    if (!headerSeen) {
      headerSeen = true;
      if (sameKey(line, printed) || sameKey(line, want)) continue;
      // wine 10 omits the key's own line when it has no values: the listing starts with a subkey.
      inSubkeys = true;
    }
    const m = VALUE_LINE.exec(line);
    if (m && !inSubkeys) {
      const name = DEFAULT_NAMES.has(m[1]!) ? '' : m[1]!;
      if (names.has(name.toLowerCase())) throw new RegistryError(`reg query: value listed twice`, want);
      names.add(name.toLowerCase());
      values.push({ name, ...parseData(m[2]!, m[3] ?? '') });
      continue;
    }
    const prefix = line.slice(0, printed.length + 1);
    if (sameKey(prefix, printed + '\\') || sameKey(line.slice(0, want.length + 1), want + '\\')) {
      const rest = line.slice(sameKey(prefix, printed + '\\') ? printed.length + 1 : want.length + 1);
      if (rest === '' || rest.includes('\\') || CONTROL.test(rest)) throw new RegistryError('reg query: malformed subkey line', want);
      inSubkeys = true;
      subkeys.push(rest);
      continue;
    }
    throw new RegistryError('reg query: unexpected line', want);
  }
  // wine 10 prints only a blank line for an existing key with no values and no subkeys (exit 0).
  if (!headerSeen) return { key: want, values: [], subkeys: [] };
  return { key: want, values, subkeys };
}

/**
 * Parses `reg query KEY /s`: every key line must be KEY or under it, value lines belong to the key
 * line before them, a value name appears once per key. Keys without a line of their own (wine prints
 * a key only when it has values) are implied by their descendants. Anything else throws.
 */
export function parseRegQueryTree(output: string, key: string, maxKeys = 50_000): RegKey[] {
  const want = normaliseKey(key);
  const { hive, parts } = keyParts(want);
  const printed = [LONG_HIVE[hive]!, ...parts].join('\\');
  const keys = new Map<string, { key: string; values: RegValue[]; names: Set<string>; subkeys: Set<string> }>();
  const node = (path: string) => {
    let n = keys.get(path.toLowerCase());
    if (!n) {
      if (keys.size >= maxKeys) throw new RegistryError('reg query /s: too many keys', want);
      n = { key: path, values: [], names: new Set(), subkeys: new Set() };
      keys.set(path.toLowerCase(), n);
    }
    return n;
  };
  node(want);
  let current: ReturnType<typeof node> | null = null;
  for (const line of output.split(/\r?\n/)) {
    if (line.trim() === '') continue;
    const m = VALUE_LINE.exec(line);
    if (m && current) {
      const name = DEFAULT_NAMES.has(m[1]!) ? '' : m[1]!;
      if (current.names.has(name.toLowerCase())) throw new RegistryError('reg query /s: value listed twice', current.key);
      current.names.add(name.toLowerCase());
      current.values.push({ name, ...parseData(m[2]!, m[3] ?? '') });
      continue;
    }
    let rest: string | null = null;
    if (sameKey(line, printed) || sameKey(line, want)) rest = '';
    else if (sameKey(line.slice(0, printed.length + 1), printed + '\\')) rest = line.slice(printed.length + 1);
    else if (sameKey(line.slice(0, want.length + 1), want + '\\')) rest = line.slice(want.length + 1);
    if (rest === null) throw new RegistryError('reg query /s: unexpected line', want);
    const names = rest === '' ? [] : rest.split('\\');
    if (names.some((n) => n === '' || CONTROL.test(n))) throw new RegistryError('reg query /s: malformed key line', want);
    let path = want;
    for (const n of names) {
      node(path).subkeys.add(n);
      path = `${path}\\${n}`;
      node(path);
    }
    current = node(path);
  }
  return [...keys.values()].map((k) => ({ key: k.key, values: k.values, subkeys: [...k.subkeys] }));
}

/** reg.exe output bytes as text: UTF-8 when valid, else the Japanese OEM code page (CP932). */
export function decodeRegOutput(buf: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    try {
      return new TextDecoder('shift_jis').decode(buf);
    } catch {
      return buf.toString('latin1');
    }
  }
}

// ---------------------------------------------------------------------------------------------
// reg.exe implementation.

export interface RegExeResult {
  code: number | null;
  stdout: Buffer;
  stderr: Buffer;
}
export type RegExeRunner = (args: string[]) => Promise<RegExeResult>;

export interface RegExeOptions {
  /** Full path of reg.exe (default %SystemRoot%\System32\reg.exe: never looked up on PATH). */
  regExe?: string;
  /** Per call (default 15 s: reg.exe starts slowly under load and under wine). */
  timeoutMs?: number;
  /** Replaces execFile (tests). */
  run?: RegExeRunner;
  /**
   * A directory only SYSTEM and Administrators can write (the agent's state folder): batches are
   * written there as .reg files and imported. Never a shared temp folder (a file swapped between
   * write and import would be imported as SYSTEM). Unset: batches run value by value.
   */
  importDir?: string;
}

export function defaultRegExe(env: NodeJS.ProcessEnv = process.env): string {
  const root = env.SystemRoot ?? env.SYSTEMROOT ?? 'C:\\Windows';
  return `${root}\\System32\\reg.exe`;
}

function execRunner(exe: string, timeoutMs: number): RegExeRunner {
  return (args) =>
    new Promise((resolve) => {
      execFile(exe, args, { encoding: 'buffer', timeout: timeoutMs, windowsHide: true, maxBuffer: 32 * 1024 * 1024, shell: false }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? ((err as unknown as { code: number }).code) : null) : 0;
        resolve({ code, stdout: Buffer.from(stdout ?? []), stderr: Buffer.from(stderr ?? []) });
      });
    });
}

let batchCounter = 0;

export class RegExeRegistry implements WindowsRegistry {
  private readonly run: RegExeRunner;
  private readonly importDir: string | undefined;

  constructor(opts: RegExeOptions = {}) {
    this.run = opts.run ?? execRunner(opts.regExe ?? defaultRegExe(), opts.timeoutMs ?? 15_000);
    this.importDir = opts.importDir;
  }

  async batch(ops: readonly RegBatchOp[]): Promise<void> {
    if (ops.length === 0) return;
    const text = this.importDir ? regFileText(ops) : null;
    if (text === null || ops.length < 3) {
      for (const o of ops) await (o.op === 'add' ? this.add(o.key, o.value) : this.delete(o.key, o.name));
      return;
    }
    batchCounter += 1;
    const file = join(this.importDir!, `sekimori-reg-${process.pid}-${batchCounter}.reg`);
    // UTF-16LE with a BOM, as regedit writes; 'wx': never follow or reuse a file someone left there.
    try {
      writeFileSync(file, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]), { flag: 'wx', mode: 0o600 });
    } catch {
      // Nothing imported yet: value by value is as safe, only slower (folder missing, name taken).
      for (const o of ops) await (o.op === 'add' ? this.add(o.key, o.value) : this.delete(o.key, o.name));
      return;
    }
    try {
      const r = await this.run(['import', file, '/reg:64']);
      if (r.code !== 0) throw new RegistryError(`reg import failed (exit ${r.code})`, normaliseKey(ops[0]!.key), r.code);
    } finally {
      rmSync(file, { force: true });
    }
  }

  async query(key: string): Promise<RegKey | null> {
    const k = normaliseKey(key);
    const r = await this.run(['query', k, '/reg:64']);
    if (r.code === 0) return parseRegQuery(decodeRegOutput(r.stdout), k);
    // Failed: missing, or something else (access denied, timeout). Ask the parent's listing.
    if ((await this.keyExists(k)) === false) return null;
    throw new RegistryError(`reg query failed (exit ${r.code})`, k, r.code);
  }

  async queryTree(key: string): Promise<RegKey[] | null> {
    const k = normaliseKey(key);
    const r = await this.run(['query', k, '/s', '/reg:64']);
    if (r.code === 0) return parseRegQueryTree(decodeRegOutput(r.stdout), k);
    if ((await this.keyExists(k)) === false) return null;
    throw new RegistryError(`reg query /s failed (exit ${r.code})`, k, r.code);
  }

  /** true/false from the parent's listing, walking up at most the path's depth; null = cannot tell. */
  private async keyExists(k: string): Promise<boolean | null> {
    const parent = parentKey(k);
    if (parent === null) return null;
    const name = k.slice(parent.length + 1);
    const r = await this.run(['query', parent, '/reg:64']);
    if (r.code === 0) return parseRegQuery(decodeRegOutput(r.stdout), parent).subkeys.some((s) => sameKey(s, name));
    const up = await this.keyExists(parent);
    return up === false ? false : null;
  }

  async add(key: string, value: RegValue): Promise<void> {
    const args = regAddArgs(key, value);
    const r = await this.run(args);
    if (r.code !== 0) throw new RegistryError(`reg add ${value.name === '' ? '(default)' : value.name} failed (exit ${r.code})`, args[1]!, r.code);
  }

  async addKey(key: string): Promise<void> {
    const k = normaliseKey(key);
    if (keyParts(k).parts.length === 0) throw new RegistryError('cannot create a hive', k);
    const r = await this.run(['add', k, '/f', '/reg:64']);
    if (r.code !== 0) throw new RegistryError(`reg add (key) failed (exit ${r.code})`, k, r.code);
  }

  async delete(key: string, name?: string): Promise<void> {
    const k = normaliseKey(key);
    // Never a whole hive or a top-level key: a bug upstream must not be able to wipe HKLM\SOFTWARE.
    if (name === undefined && keyParts(k).parts.length < 2) throw new RegistryError('refusing to delete a hive or top-level key', k);
    if (name !== undefined) {
      const problem = valueProblem({ name, type: 'REG_SZ', data: '' });
      if (problem) throw new RegistryError(problem, k);
    }
    const args = name === undefined ? ['delete', k, '/f', '/reg:64'] : name === '' ? ['delete', k, '/ve', '/f', '/reg:64'] : ['delete', k, '/v', name, '/f', '/reg:64'];
    const r = await this.run(args);
    if (r.code === 0) return;
    // Absent already counts as done; anything still there after a failure is an error.
    const now = await this.query(k).catch(() => undefined);
    if (now === null) return;
    if (now && name !== undefined && !now.values.some((v) => sameKey(v.name, name))) return;
    throw new RegistryError(`reg delete failed (exit ${r.code})`, k, r.code);
  }
}

// ---------------------------------------------------------------------------------------------
// In-memory registry for tests of code that uses WindowsRegistry (records every operation and can
// be told to fail one).

export type RegOp = { op: 'query'; key: string } | { op: 'add'; key: string; value: RegValue } | { op: 'addKey'; key: string } | { op: 'delete'; key: string; name?: string };

interface MemKey {
  name: string;
  values: Map<string, RegValue>; // lower-case name → value
  children: Map<string, MemKey>; // lower-case name → key
}

export class MemoryRegistry implements WindowsRegistry {
  readonly ops: RegOp[] = [];
  private readonly roots = new Map<string, MemKey>();
  /** Called before each operation; throwing makes that operation fail without effect. */
  failWhen: ((op: RegOp, index: number) => boolean) | null = null;

  private node(key: string, create: boolean): MemKey | null {
    const { hive, parts } = keyParts(key);
    let cur: MemKey | undefined = this.roots.get(hive);
    if (!cur) {
      if (!create) return null;
      cur = { name: hive, values: new Map(), children: new Map() };
      this.roots.set(hive, cur);
    }
    for (const p of parts) {
      let next: MemKey | undefined = cur.children.get(p.toLowerCase());
      if (!next) {
        if (!create) return null;
        next = { name: p, values: new Map(), children: new Map() };
        cur.children.set(p.toLowerCase(), next);
      }
      cur = next;
    }
    return cur;
  }

  private record(op: RegOp): void {
    const i = this.ops.length;
    this.ops.push(op);
    if (this.failWhen?.(op, i)) throw new RegistryError(`injected failure of ${op.op}`, op.key, 1);
  }

  async query(key: string): Promise<RegKey | null> {
    const k = normaliseKey(key);
    this.record({ op: 'query', key: k });
    const n = this.node(k, false);
    if (!n) return null;
    return { key: k, values: [...n.values.values()].map((v) => structuredClone(v)), subkeys: [...n.children.values()].map((c) => c.name) };
  }

  async queryTree(key: string): Promise<RegKey[] | null> {
    const k = normaliseKey(key);
    this.record({ op: 'query', key: k });
    const root = this.node(k, false);
    if (!root) return null;
    const out: RegKey[] = [];
    const walk = (path: string, n: MemKey) => {
      out.push({ key: path, values: [...n.values.values()].map((v) => structuredClone(v)), subkeys: [...n.children.values()].map((c) => c.name) });
      for (const c of n.children.values()) walk(`${path}\\${c.name}`, c);
    };
    walk(k, root);
    return out;
  }

  async add(key: string, value: RegValue): Promise<void> {
    regAddArgs(key, value); // the same checks as the real thing
    const k = normaliseKey(key);
    this.record({ op: 'add', key: k, value: structuredClone(value) });
    this.node(k, true)!.values.set(value.name.toLowerCase(), structuredClone(value));
  }

  async addKey(key: string): Promise<void> {
    const k = normaliseKey(key);
    this.record({ op: 'addKey', key: k });
    this.node(k, true);
  }

  async delete(key: string, name?: string): Promise<void> {
    const k = normaliseKey(key);
    if (name === undefined && keyParts(k).parts.length < 2) throw new RegistryError('refusing to delete a hive or top-level key', k);
    this.record(name === undefined ? { op: 'delete', key: k } : { op: 'delete', key: k, name });
    if (name !== undefined) {
      this.node(k, false)?.values.delete(name.toLowerCase());
      return;
    }
    const parent = parentKey(k)!;
    const last = keyParts(k).parts.at(-1)!;
    this.node(parent, false)?.children.delete(last.toLowerCase());
  }

  /** Test helper: the whole subtree under key as {path: values}, sorted. */
  dump(key: string): Record<string, Record<string, RegData>> {
    const out: Record<string, Record<string, RegData>> = {};
    const walk = (path: string, n: MemKey) => {
      const vals: Record<string, RegData> = {};
      for (const v of [...n.values.values()].sort((a, b) => a.name.localeCompare(b.name))) {
        const { name, ...data } = v;
        vals[name] = data as RegData;
      }
      out[path] = vals;
      for (const c of [...n.children.values()].sort((a, b) => a.name.localeCompare(b.name))) walk(`${path}\\${c.name}`, c);
    };
    const n = this.node(key, false);
    if (n) walk(normaliseKey(key), n);
    return out;
  }
}
