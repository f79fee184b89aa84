/**
 * Stored databases track migrations per module name (console/core/db.ts): a module renamed, or a
 * migration edited, removed or reordered, would leave existing consoles unable to open or with a
 * different schema. The names and lists are pinned by hash as they were before the feature folders
 * were reshaped (issue 11, commit b1ba865): each module must still start with its pinned list; new
 * migrations are appended after it.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { coreMigrations } from '../../console/core/schema.js';
import { modules } from '../../console/modules.js';

const digest = (m: string[]) => createHash('sha256').update(JSON.stringify(m)).digest('hex').slice(0, 16);

function migrationDigests(): Record<string, { count: number; digest: string }> {
  const out: Record<string, { count: number; digest: string }> = { core: { count: coreMigrations.length, digest: digest(coreMigrations) } };
  for (const m of modules) out[m.name] = { count: m.migrations.length, digest: digest(m.migrations) };
  return out;
}

describe('migrations per module name', () => {
  it('released migrations are unchanged: each pinned module still starts with exactly its pinned list (new ones are appended after it)', () => {
    const byName = new Map<string, string[]>([['core', coreMigrations], ...modules.map((m) => [m.name, m.migrations] as [string, string[]])]);
    if (process.env.SEKIMORI_PRINT_MIGRATIONS) console.log(JSON.stringify(migrationDigests()));
    for (const [name, pin] of Object.entries(PINNED)) {
      const list = byName.get(name);
      expect(list, `module ${name} is gone or renamed`).toBeDefined();
      expect(list!.length, `module ${name} lost migrations`).toBeGreaterThanOrEqual(pin.count);
      expect({ name, count: pin.count, digest: digest(list!.slice(0, pin.count)) }).toEqual({ name, ...pin });
    }
  });
  it('every module has a pin (a new module is pinned once released)', () => {
    expect(modules.map((m) => m.name).filter((n) => !(n in PINNED))).toEqual([]);
  });
  it('every module name is unique (one migration history each)', () => {
    const names = modules.map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
  });
});

/**
 * Pinned prefixes. backbone, mfa, mfa-identity and web as computed at b1ba865 (before the move),
 * software and usb at 9b81490 (before they were reshaped), usb-devices as first released (issue 18).
 * A pin only grows when a release is cut; appending a migration needs no change here.
 */
const PINNED: Record<string, { count: number; digest: string }> = {
  backbone: { count: 0, digest: '4f53cda18c2baa0c' },
  mfa: { count: 3, digest: '01bfc767fd5bb3c5' },
  'mfa-identity': { count: 1, digest: '77d838759d923e15' },
  web: { count: 2, digest: '81e7308644c5a1fa' },
  software: { count: 2, digest: 'cda4b74ad995afa3' },
  usb: { count: 5, digest: 'c32703f9a8118f68' },
  'usb-devices': { count: 3, digest: '464f639866b4153a' },
  report: { count: 0, digest: '4f53cda18c2baa0c' },
  posture: { count: 0, digest: '4f53cda18c2baa0c' }, // issue 16, not released yet
  retention: { count: 0, digest: '4f53cda18c2baa0c' }, // issue 17, not released yet
  siem: { count: 0, digest: '4f53cda18c2baa0c' }, // issue 17, not released yet
  renewal: { count: 0, digest: '4f53cda18c2baa0c' }, // issue 17 (certificate renewal), not released yet
};
