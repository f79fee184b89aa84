/**
 * The software inventory's pure parts: the report the agent builds (clipping, order, digest,
 * hostile sizes and text), when it asks the console, what the console accepts (parseInventory:
 * 413 before entries, 400 naming the path, digest must match) and the baseline differences.
 */
import { describe, expect, it } from 'vitest';
import {
  INVENTORY_CONFIRM_MS,
  INVENTORY_MAX_BYTES,
  clip,
  inventoryReport,
  inventoryStep,
  maySendFull,
  retryAfterMs,
  type InventorySyncState,
} from '../../agent/software/inventory.js';
import { SoftwareSync } from '../../agent/software/sync.js';
import type { ConsoleReply } from '../../agent/capability.js';
import type { InstalledProgram } from '../../agent/software/platform.js';
import { inventory, uninstallRoots, UNINSTALL } from '../../agent/software/windows/installed.js';
import { baselineDiff, likeContains } from '../../console/software/inventory.js';
import { parseInventory } from '../../console/software/api.js';
import { HttpError } from '../../console/module.js';
import { MAX_INVENTORY_ENTRIES, canonicalInventory, inventoryDigest, softwareInventoryRequestCheck, type InventoryEntry } from '../../protocol/api.js';

const pkg = (name: string, version = '1.0', arch = 'amd64'): InstalledProgram => ({ name, version, arch });

function thrown(f: () => unknown): HttpError {
  try {
    f();
  } catch (e) {
    if (e instanceof HttpError) return e;
    throw e;
  }
  throw new Error('did not throw');
}

describe('inventoryDigest', () => {
  it('is the same whatever the order and duplicates, and differs for any field', () => {
    const a: InventoryEntry[] = [pkg('b'), pkg('a'), pkg('a')];
    const b: InventoryEntry[] = [pkg('a'), pkg('b')];
    expect(inventoryDigest(a)).toBe(inventoryDigest(b));
    expect(inventoryDigest([pkg('a', '1.1'), pkg('b')])).not.toBe(inventoryDigest(b));
    expect(inventoryDigest([pkg('a', '1.0', 'i386'), pkg('b')])).not.toBe(inventoryDigest(b));
    expect(inventoryDigest([])).toMatch(/^[0-9a-f]{64}$/);
  });
  it.each([
    ['a tab inside a name cannot make two entries look like one', [pkg('a\tb', '1')], [pkg('a', 'b\t1')]],
    ['a newline inside a version', [pkg('a', '1\n["b","2","x"]')], [pkg('a', '1'), pkg('b', '2', 'x')]],
    ['name/version boundary', [pkg('ab', 'c')], [pkg('a', 'bc')]],
  ])('%s', (_n, x, y) => {
    expect(inventoryDigest(x)).not.toBe(inventoryDigest(y));
  });
  it('orders by name, arch, version by code units (no locale)', () => {
    expect(canonicalInventory([pkg('b'), pkg('B'), pkg('a', '2'), pkg('a', '10'), pkg('a', '1', 'i386')]).map((e) => `${e.name}:${e.arch}:${e.version}`)).toEqual([
      'B:amd64:1.0',
      'a:amd64:10',
      'a:amd64:2',
      'a:i386:1',
      'b:amd64:1.0',
    ]);
  });
});

describe('inventoryReport (agent)', () => {
  it('a Debian-sized list goes whole, sorted, with its digest', () => {
    const list = Array.from({ length: 2500 }, (_, i) => pkg(`pkg${String(i).padStart(4, '0')}`, `1.${i}`));
    const r = inventoryReport(list.reverse());
    expect(r.entries.length).toBe(2500);
    expect(r.total).toBe(2500);
    expect(r.entries[0]!.name).toBe('pkg0000');
    expect(r.digest).toBe(inventoryDigest(r.entries));
    expect(softwareInventoryRequestCheck.errors({ platform: 'linux', digest: r.digest, total: r.total, packages: r.entries })).toEqual([]);
  });
  it.each([
    ['empty names dropped', [pkg(''), pkg('   '), pkg('a')], 1],
    ['duplicates once', [pkg('a'), pkg('a'), pkg('a', '1.0', 'i386')], 2],
  ])('%s', (_n, list, n) => {
    const r = inventoryReport(list);
    expect(r.entries.length).toBe(n);
    expect(r.total).toBe(n);
  });
  it('more than the cap: the first MAX entries go, total says how many there are', () => {
    const list = Array.from({ length: MAX_INVENTORY_ENTRIES + 5 }, (_, i) => pkg(`p${i}`, '1', ''));
    const r = inventoryReport(list);
    expect(r.entries.length).toBe(MAX_INVENTORY_ENTRIES);
    expect(r.total).toBe(MAX_INVENTORY_ENTRIES + 5);
    expect(r.digest).toBe(inventoryDigest(r.entries));
  });
  it('huge names and versions: clipped to the wire limits, and the list kept below the byte budget', () => {
    const long = 'v'.repeat(1_000_000);
    const list = Array.from({ length: 20_000 }, (_, i) => pkg(`${i}`.padEnd(2000, '名'), long, 'x'.repeat(1000)));
    const r = inventoryReport(list);
    expect(r.entries.length).toBeGreaterThan(0);
    expect(r.entries.length).toBeLessThan(20_000);
    expect(r.total).toBe(20_000);
    const bytes = Buffer.byteLength(JSON.stringify(r.entries));
    expect(bytes).toBeLessThanOrEqual(INVENTORY_MAX_BYTES);
    expect(softwareInventoryRequestCheck.errors({ platform: 'windows', digest: r.digest, total: r.total, packages: r.entries })).toEqual([]);
  });
  it.each([
    ['control characters made visible', 'evil\u001b[31m\r\nname', 'evil\\x1b[31m\\x0d\\x0aname'],
    ['invalid surrogates made well-formed', 'a\uD800b', 'a\uFFFDb'],
    ['formula text is kept as data (the CSV neutralises it)', '=cmd|/c calc!A1', '=cmd|/c calc!A1'],
  ])('%s', (_n, raw, want) => {
    expect(inventoryReport([pkg(raw)]).entries[0]!.name).toBe(want);
  });
  it('clip never splits a surrogate pair and stays within the limit', () => {
    for (const max of [1, 2, 3, 10]) {
      const s = clip('😀'.repeat(50), max);
      expect(s.length).toBeLessThanOrEqual(max);
      expect(s.isWellFormed()).toBe(true);
    }
  });
});

describe('inventoryStep (when the agent asks the console)', () => {
  const base: InventorySyncState = { latest: 'a', confirmed: null, confirmedAt: 0, fullNotBefore: 0, notBefore: 0 };
  const now = 1_800_000_000_000;
  it.each([
    ['never read', { latest: null }, 'none'],
    ['not confirmed yet', {}, 'digest'],
    ['confirmed just now', { confirmed: 'a', confirmedAt: now - 1000 }, 'none'],
    ['confirmed a day ago', { confirmed: 'a', confirmedAt: now - INVENTORY_CONFIRM_MS }, 'digest'],
    ['changed since confirmed', { latest: 'b', confirmed: 'a', confirmedAt: now - 1000 }, 'digest'],
    ['console said wait', { notBefore: now + 1 }, 'none'],
    ['clock set back a year', { confirmed: 'a', confirmedAt: now + 365 * INVENTORY_CONFIRM_MS }, 'digest'],
    ['confirmed at year 9999', { confirmed: 'a', confirmedAt: Date.parse('9999-12-31T00:00:00Z') }, 'digest'],
  ] as const)('%s → %s', (_n, patch, want) => {
    expect(inventoryStep({ ...base, ...patch }, now)).toBe(want);
  });
  it('a full list waits after a refused one', () => {
    expect(maySendFull({ ...base, fullNotBefore: now + 1 }, now)).toBe(false);
    expect(maySendFull({ ...base, fullNotBefore: now }, now)).toBe(true);
  });
  it.each([
    ['30', 30_000],
    [5, 5_000],
    ['9007199254740993', 86_400_000],
    ['-1', 60_000],
    ['soon', 60_000],
    [undefined, 60_000],
  ])('Retry-After %s → %i ms', (h, ms) => {
    expect(retryAfterMs(h)).toBe(ms);
  });
});

describe('SoftwareSync inventory exchange (agent, console faked)', () => {
  function syncWith(answer: (path: string, body: Record<string, unknown>) => ConsoleReply) {
    const sent: { path: string; body: Record<string, unknown> }[] = [];
    const s = new SoftwareSync(
      () => ({
        request: async (_m: string, path: string, body?: unknown) => {
          sent.push({ path, body: body as Record<string, unknown> });
          return answer(path, body as Record<string, unknown>);
        },
        consoleNow: () => new Date(),
        reachable: () => true,
      }),
      () => [],
      () => ({ ok: false }),
      () => false,
    );
    return { s, sent };
  }
  const list = new Map([
    ['a', pkg('a')],
    ['b', pkg('b')],
  ]);

  it('digest first; full list only when the console does not hold it; then quiet until a change', async () => {
    let held = '';
    const { s, sent } = syncWith((path, body) => {
      if (path !== '/api/agent/software/inventory') return { status: 200, body: { restore: [] } };
      expect(softwareInventoryRequestCheck.errors(body)).toEqual([]);
      if (body.packages) {
        held = body.digest as string;
        return { status: 200, body: { status: 'stored' } };
      }
      return { status: 200, body: { status: held === body.digest ? 'current' : 'unknown' } };
    });
    await s.syncInventory(1000);
    expect(sent.length).toBe(0); // nothing read yet
    s.inventoryChanged(list, 'linux');
    await s.syncInventory(2000);
    expect(sent.map((x) => Boolean(x.body.packages))).toEqual([false, true]);
    await s.syncInventory(3000);
    expect(sent.length).toBe(2);
    s.inventoryChanged(new Map(list), 'linux'); // same content: only a confirmation a day later
    await s.syncInventory(4000);
    expect(sent.length).toBe(2);
    await s.syncInventory(2000 + INVENTORY_CONFIRM_MS);
    expect(sent.map((x) => Boolean(x.body.packages))).toEqual([false, true, false]);
    s.inventoryChanged(new Map([['c', pkg('c')]]), 'linux');
    await s.syncInventory(2000 + INVENTORY_CONFIRM_MS + 1);
    expect(sent.map((x) => Boolean(x.body.packages))).toEqual([false, true, false, false, true]);
  });

  it('429 → waits for Retry-After; a refused full list is not resent every period', async () => {
    let mode: 'limited' | 'refuse' = 'limited';
    const { s, sent } = syncWith((_p, body) => {
      if (mode === 'limited') return { status: 429, body: { error: 'rate_limited' }, headers: { 'retry-after': '120' } };
      return body.packages ? { status: 413, body: { error: 'too_many_packages' } } : { status: 200, body: { status: 'unknown' } };
    });
    s.inventoryChanged(list, 'linux');
    await s.syncInventory(0);
    await s.syncInventory(60_000);
    expect(sent.length).toBe(1);
    mode = 'refuse';
    await s.syncInventory(121_000);
    expect(sent.length).toBe(3); // digest + the refused full list
    await s.syncInventory(131_000);
    expect(sent.length).toBe(4); // digest only: the full list waits
  });

  it('a platform name that is not ours is not sent as is', () => {
    const { s } = syncWith(() => ({ status: 500, body: null }));
    s.inventoryChanged(list, 'Windows 11 <script>');
    // internal, but the wire check must pass whatever a platform is called
    expect(softwareInventoryRequestCheck.check({ platform: 'unknown', digest: s.inventory.latest, total: 2 })).toBe(true);
  });
});

describe('parseInventory (console)', () => {
  const entries = [pkg('a'), pkg('b')];
  const ok = { platform: 'linux', digest: inventoryDigest(entries), total: 2, packages: entries };
  it('accepts a digest alone and a list with its digest', () => {
    expect(parseInventory({ platform: 'linux', digest: ok.digest, total: 2 }).entries).toBeNull();
    expect(parseInventory(ok).entries).toEqual(entries);
  });
  it.each([
    ['too many entries → 413 before any entry is judged', { ...ok, packages: Array.from({ length: MAX_INVENTORY_ENTRIES + 1 }, () => 7) }, 413, 'too_many_packages'],
    ['digest of another list', { ...ok, digest: inventoryDigest([pkg('a')]) }, 400, 'digest_mismatch'],
    ['total 2^53', { ...ok, total: 2 ** 53 }, 400, 'invalid_request'],
    ['negative total', { ...ok, total: -1 }, 400, 'invalid_request'],
    ['unknown member', { ...ok, extra: 1 }, 400, 'invalid_request'],
    ['entry with an unknown member', { ...ok, packages: [{ ...pkg('a'), key: 'HKLM' }] }, 400, 'invalid_request'],
    ['empty name', { ...ok, packages: [pkg('')] }, 400, 'invalid_request'],
    ['name over 512', { ...ok, packages: [pkg('x'.repeat(513))] }, 400, 'invalid_request'],
    ['platform with markup', { ...ok, platform: '<b>' }, 400, 'invalid_request'],
    ['digest not hex', { ...ok, digest: 'Z'.repeat(64) }, 400, 'invalid_request'],
    ['not an object', [1, 2], 400, 'invalid_request'],
    ['null', null, 400, 'invalid_request'],
  ])('%s', (_n, body, status, code) => {
    const e = thrown(() => parseInventory(body));
    expect([e.status, e.code]).toEqual([status, code]);
  });
  it('a 400 names the failing path', () => {
    const e = thrown(() => parseInventory({ ...ok, packages: [pkg('a'), { name: 'b', version: 1, arch: '' }] }));
    expect(e.details?.join('\n')).toMatch(/body\.packages\[1\]\.version/);
  });
  it('control characters an agent did not clean are made visible before storing', () => {
    const raw = [pkg('x\u0007y')];
    const r = parseInventory({ platform: 'linux', digest: inventoryDigest(raw), total: 1, packages: raw });
    expect(r.entries![0]!.name).toBe('x\\x07y');
  });
});

describe('baselineDiff', () => {
  const B = (name: string, version: string, arch?: string) => ({ name, version, ...(arch ? { arch } : {}) });
  const R = (name: string, version: string, arch = 'amd64') => ({ name, version, arch });
  it.each([
    ['identical', [B('a', '1')], [R('a', '1')], [], [], []],
    ['missing', [B('a', '1'), B('b', '2')], [R('a', '1')], ['b'], [], []],
    ['extra', [B('a', '1')], [R('a', '1'), R('z', '9')], [], ['z'], []],
    ['other version', [B('a', '1')], [R('a', '2')], [], [], ['a']],
    ['multiarch: one approved version is enough', [B('libc6', '2.36')], [R('libc6', '2.36'), R('libc6', '2.35', 'i386')], [], [], []],
    ['two approved versions', [B('k', '1'), B('k', '2')], [R('k', '2')], [], [], []],
    ['empty baseline: everything is extra', [], [R('a', '1'), R('b', '1')], [], ['a', 'b'], []],
    ['empty terminal: everything is missing', [B('a', '1'), B('b', '1')], [], ['a', 'b'], [], []],
    ['names differ by case (dpkg names are exact)', [B('abc', '1')], [R('ABC', '1')], ['abc'], ['ABC'], []],
    ['hostile names stay data', [B('=cmd|x', '1')], [R('<script>', '1'), R('=cmd|x', '1')], [], ['<script>'], []],
  ])('%s', (_n, baseline, installed, missing, extra, other) => {
    const d = baselineDiff(baseline, installed);
    expect(d.missing.map((x) => x.name)).toEqual(missing);
    expect(d.extra.map((x) => x.name)).toEqual(extra);
    expect(d.otherVersion.map((x) => x.name)).toEqual(other);
  });
  it('20 000 × 20 000 answers (no quadratic work)', () => {
    const baseline = Array.from({ length: 20_000 }, (_, i) => B(`p${i}`, '1'));
    const installed = Array.from({ length: 20_000 }, (_, i) => R(`p${i + 10}`, i % 2 ? '1' : '2'));
    const d = baselineDiff(baseline, installed);
    expect(d.missing.length).toBe(10);
    expect(d.extra.length).toBe(10);
    expect(d.otherVersion.length).toBe(9995);
  });
});

describe('likeContains', () => {
  it.each([
    ['plain', 'vim', '%vim%'],
    ['percent and underscore are literal', '50%_off', '%50\\%\\_off%'],
    ['backslash', 'a\\b', '%a\\\\b%'],
  ])('%s', (_n, text, want) => {
    expect(likeContains(text)).toBe(want);
  });
});

describe('Windows installed programs become the same report', () => {
  const HKLM_U = 'HKEY_LOCAL_MACHINE\\' + UNINSTALL;
  const WOW = 'HKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall';
  const listing = (keys: [string, [string, string][]][]) =>
    keys.map(([k, vals]) => ['', k, ...vals.map(([n, d]) => `    ${n}    REG_SZ    ${d}`)].join('\r\n')).join('\r\n') + '\r\n';
  it('both views, side-by-side versions kept, hostile DisplayNames as data', () => {
    const roots = uninstallRoots([]);
    const inv = inventory([
      { root: roots[0]!, text: listing([[HKLM_U, []], [`${HKLM_U}\\7-Zip`, [['DisplayName', '7-Zip 23.01 (x64)'], ['DisplayVersion', '23.01']]], [`${HKLM_U}\\Evil`, [['DisplayName', '=cmd|' + "'/c calc'!A1"], ['DisplayVersion', '<b>1</b>']]]]) },
      { root: roots[1]!, text: listing([[WOW, []], [`${WOW}\\7-Zip`, [['DisplayName', '7-Zip 23.01 (x64)'], ['DisplayVersion', '22.00']]]]) },
    ]);
    const r = inventoryReport(inv.values());
    expect(r.entries).toEqual([
      { name: '7-Zip 23.01 (x64)', version: '23.01', arch: 'x64' },
      { name: '7-Zip 23.01 (x64)', version: '22.00', arch: 'x86' },
      { name: "=cmd|'/c calc'!A1", version: '<b>1</b>', arch: 'x64' },
    ]);
    expect(softwareInventoryRequestCheck.errors({ platform: 'windows', digest: r.digest, total: r.total, packages: r.entries })).toEqual([]);
  });
});
