/**
 * Stored databases track migrations per module name (console/core/db.ts): a module renamed, or a
 * migration edited, removed or reordered, would leave existing consoles unable to open or with a
 * different schema. The names and lists are pinned by hash as they were before the feature folders
 * were reshaped (issue 11, commit b1ba865); a new migration is appended and its module's hash updated.
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
  it('are unchanged for the modules this work moved (backbone, mfa, mfa-identity, web, software, usb)', () => {
    const now = migrationDigests();
    if (process.env.SEKIMORI_PRINT_MIGRATIONS) console.log(JSON.stringify(now));
    expect({ backbone: now.backbone, mfa: now.mfa, 'mfa-identity': now['mfa-identity'], web: now.web }).toEqual(PINNED);
    expect({ software: now.software, usb: now.usb }).toEqual(PINNED_USB_SOFTWARE);
  });
  it('every module name is unique (one migration history each)', () => {
    const names = modules.map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).not.toContain('core');
  });
});

// Computed at b1ba865 (before the move) with this test's migrationDigests().
const PINNED = {
  backbone: { count: 0, digest: '4f53cda18c2baa0c' },
  mfa: { count: 3, digest: '01bfc767fd5bb3c5' },
  'mfa-identity': { count: 1, digest: '77d838759d923e15' },
  web: { count: 2, digest: '81e7308644c5a1fa' },
};

// Computed at 9b81490 (before console/usb and console/software were reshaped) with migrationDigests().
const PINNED_USB_SOFTWARE = {
  software: { count: 5, digest: 'ee1cfd17b1656bd4' }, // + software_inventory (issue 14), appended
  usb: { count: 5, digest: 'c32703f9a8118f68' },
};
